/* qemu.h - the QEMU driver: argv, disks, spawn, readiness, stop.
 *
 * Reconciler code never prints; every failure comes back as -errno plus a
 * struct mq_error message such as
 *   "cannot start vm 'web': qemu exited with status 1: <last line of qemu stderr>".
 */
#ifndef MQ_QEMU_H
#define MQ_QEMU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "reconciler/proc.h"
#include "specs/spec.h"
#include "util/error.h"
#include "util/strv.h"

/* Per-VM runtime files, all under the short runtime dir (mode 0700):
 *   <rt>/<name>.qmp         QMP control socket used by maqet commands (0600)
 *   <rt>/<name>.ev          second QMP monitor, for watch mode's event stream (0600)
 *   <rt>/<name>.serial.log  serial console (when serial: log)
 *   <rt>/<name>.qemu.log    QEMU's stdout + stderr */
struct mq_vm_paths {
	char *qmp;
	char *qmp_ev;
	char *serial_log;
	char *qemu_log;
};
void mq_vm_paths_init(struct mq_vm_paths *p, const char *runtime_dir, const char *name);
void mq_vm_paths_release(struct mq_vm_paths *p);

/* Image path of a qcow2/raw storage entry: s->file, or the default
 * <disk_dir>/<vm>-<storage>.<qcow2|raw>.  Caller frees. */
char *mq_storage_image_path(const struct mq_spec *spec, const struct mq_storage *s, const char *disk_dir);

/* /dev/kvm opens read-write. */
bool mq_kvm_usable(void);
/* "kvm" or "tcg" for a spec's accel setting (auto -> kvm when usable). */
const char *mq_accel_resolve(enum mq_accel a);

/* Full argv (argv[0] = spec->binary) for spec, without a shell.  Order:
 * binary, -name, -machine, -accel, -m, -smp, -display, -vga, storage,
 * network (or -nic none), serial, the two QMP monitors, `arguments`, `args`. */
int mq_qemu_build_argv(const struct mq_spec *spec, const struct mq_vm_paths *paths, const char *accel,
		       const char *disk_dir, struct mq_strv *argv, struct mq_error **err);

/* Resolve `binary` through PATH and run `<binary> --version` (once per run is
 * the caller's business).  *version gets the first output line.  A missing
 * binary gives -ENOENT with "qemu binary 'X' not found (install qemu-system-x86
 * or set 'binary:')".  resolved/version may be NULL. */
int mq_qemu_check_binary(const char *binary, char **resolved, char **version, struct mq_error **err);

/* Create every missing qcow2/raw image of spec with `qemu-img create` (never
 * overwriting; backing_file/backing_format honoured).  An image that does not
 * exist and has no size is an error.  Names of created files are appended to
 * `created` (may be NULL). */
int mq_qemu_prepare_disks(const struct mq_spec *spec, const char *disk_dir, struct mq_strv *created,
			  struct mq_error **err);

struct mq_start_opts {
	const char *runtime_dir;  /* created 0700 if missing */
	const char *disk_dir;     /* default image location, created 0700 if missing */
	int timeout_ms;           /* for QMP readiness; 0 = 30000 */
};

struct mq_start_result {
	struct mq_pidref ref;
	char accel[8];            /* "kvm" / "tcg" */
	char *qmp_path;           /* caller frees */
};

/* Spawn QEMU for spec so that it survives maqet exiting: fork, setsid, umask
 * 077, stdin from /dev/null, stdout+stderr appended to <name>.qemu.log, every
 * other fd closed, signal mask and dispositions reset, execvp.  Then wait
 * until QMP answers query-status with "running".  If QEMU exits first, the
 * error names its exit status and the last line of its stderr; on timeout the
 * process is killed.  Stale sockets of a dead previous instance are removed. */
int mq_qemu_start(const struct mq_spec *spec, const struct mq_start_opts *opts,
		  struct mq_start_result *res, struct mq_error **err);
void mq_start_result_release(struct mq_start_result *res);

/* Called for every stop step: step is "powerdown", "quit", "sigterm" or
 * "sigkill"; outcome "sent", "exited", "timeout", "failed" or "skipped". */
typedef void (*mq_stop_step_fn)(void *ud, const char *step, const char *outcome, const char *detail);

struct mq_stop_opts {
	uint64_t timeout_ms;      /* wait after system_powerdown (spec stop_timeout) */
	int grace_ms;             /* wait after quit and after SIGTERM; 0 = 5000 */
	bool force;               /* skip the ACPI step */
	mq_stop_step_fn step;
	void *ud;
};

/* Stop ref: QMP system_powerdown, wait up to timeout_ms, then QMP quit, then
 * SIGTERM, then SIGKILL, waiting for exit between steps (pidfd).  A process
 * that is already gone returns 0 at once; one whose identity cannot be proven
 * is never signalled (-ESTALE). */
int mq_qemu_stop(const struct mq_pidref *ref, const char *qmp_path, const struct mq_stop_opts *opts,
		 struct mq_error **err);

#endif
