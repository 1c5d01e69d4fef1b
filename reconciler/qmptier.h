/* qmptier.h - security tiers of QMP commands sent through `maqet qmp`.
 *
 * Every passthrough command falls in one tier, decided from its name (and,
 * for a few commands, its arguments) before anything is sent:
 *
 *   dangerous    refused unless the caller says --allow-dangerous: commands
 *                that can crash the guest or bypass maqet (human-monitor-
 *                command, inject-nmi, migrate*, blockdev-add, chardev-add,
 *                netdev_add, snapshot-load, x-* experimental commands,
 *                object-add of a file backend, ...);
 *   privileged   allowed with a warning: commands that change the VM's run
 *                state or remove hardware (quit, system_powerdown,
 *                system_reset, stop, cont, device_del, blockdev-del, ...);
 *   memory-dump  allowed, but the output path is checked like a disk path
 *                (no system directories) and created by maqet mode 0600:
 *                pmemsave, memsave, dump-guest-memory, screendump;
 *   allowed      everything else (queries and the like).
 *
 * Arguments are recorded in events with the values of secret-looking keys
 * (password, secret, passphrase, token, key-secret, ...) redacted.
 */
#ifndef MQ_QMPTIER_H
#define MQ_QMPTIER_H

#include <stdbool.h>

#include <json-c/json.h>

enum mq_qmp_tier {
	MQ_QMP_TIER_ALLOWED = 0,
	MQ_QMP_TIER_PRIVILEGED,
	MQ_QMP_TIER_MEMORY_DUMP,
	MQ_QMP_TIER_DANGEROUS,
};

/* "allowed", "privileged", "memory-dump", "dangerous". */
const char *mq_qmp_tier_name(enum mq_qmp_tier t);
/* The tier of `command` with `args` (may be NULL). */
enum mq_qmp_tier mq_qmp_tier_of(const char *command, json_object *args);

/* For a memory-dump command: the argument naming the output file ("filename",
 * or "protocol" for dump-guest-memory), NULL for other commands. */
const char *mq_qmp_output_arg(const char *command);
/* The file path inside that argument's value: the value itself, or what
 * follows "file:" in a dump-guest-memory protocol.  NULL when the value
 * names no plain file (e.g. "fd:NAME"). */
const char *mq_qmp_output_path(const char *command, const char *value);

/* True for key names whose values must not be recorded (case-insensitive
 * "password", "secret", "passphrase", "token", "passwd", "key" as a whole
 * word part such as "key-secret" or "iv"). */
bool mq_qmp_key_is_secret(const char *key);
/* A deep copy of args (NULL -> "{}") as compact JSON with every secret
 * key's value replaced by "<redacted>" at any depth.  Caller frees. */
char *mq_qmp_args_redacted(json_object *args);

/* The commands the passthrough must send as intended stops (quit,
 * system_powerdown): recorded as stopping and held before they are sent. */
bool mq_qmp_is_stop(const char *command);

#endif
