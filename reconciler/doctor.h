/* doctor.h - health checks of the host and of one state dir, with safe fixes.
 *
 * Every check yields one or more findings (one per thing looked at: one per
 * VM, one per socket, ...), each ok / warn / fail with a message and, when
 * not ok, a hint saying how to fix it.  The checks, in order:
 *   kvm          /dev/kvm opens read-write (warn otherwise: TCG is slow, not broken)
 *   qemu         the QEMU binaries (default and every recorded spec's) run, with their version
 *   qemu-img     qemu-img is on PATH
 *   runtime-dir  owned by us, mode 0700 (absent is fine: created on first start)
 *   state-db     opens, migrates and passes PRAGMA integrity_check
 *   disk-space   free space where state, disks and runtime files live
 *                (warn under 1 GiB, fail under 64 MiB)
 *   vm-process   each VM recorded up has its QEMU (pid + start time) alive
 *   orphans      no QEMU uses this runtime dir's sockets without a record owning
 *                it (scan of /proc/PID/cmdline for "path=<runtime dir>/")
 *   sockets      every socket in the runtime dir has a listener (a connect
 *                refused with ECONNREFUSED is stale)
 *   disks        every declared disk image / virtfs dir of a recorded VM exists
 *                (fail when it cannot be recreated: no size, or the VM is up;
 *                warn when the next start creates it)
 *   logs         warn: a log in the runtime dir is over the rotation cap
 *                (logrot.h mq_log_cap; watch rotates running VMs' logs; with
 *                fix, a VM log over the cap is rotated by copy-truncate)
 *
 * With fix set, only safe repairs are made, and each finding says so
 * (fixed = true, level ok):
 *   - a stale socket is unlinked (nothing listens on it: no process loses it);
 *   - a record of a VM whose QEMU is provably gone (no such pid, a zombie, or
 *     the pid now belongs to another process: pid + start time differ) goes
 *     through the phase machine's observed-gone event and is written with its
 *     event by mq_audit_record, under the state lock.
 * No process is ever signalled: an orphan is reported with its pid, never
 * killed.
 *
 * Library code: no printing; the CLI (cli/cmd-doctor.c) prints the findings.
 */
#ifndef MQ_DOCTOR_H
#define MQ_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

enum mq_check_level { MQ_CHECK_OK = 0, MQ_CHECK_WARN, MQ_CHECK_FAIL };

struct mq_finding {
	const char *check;        /* static: "kvm", "qemu", ... */
	enum mq_check_level level;
	char *message;
	char *hint;               /* NULL when ok */
	bool fixed;               /* --fix repaired it (level is then ok) */
};

struct mq_doctor_opts {
	const char *state_dir;
	const char *runtime_dir;
	const char *disk_dir;
	bool fix;
	int lock_timeout_ms;      /* for the fixes that write records */
};

struct mq_doctor {
	struct mq_finding *f;
	size_t n, alloc;
};

/* Run every check.  Never fails as a whole: a check that cannot run is a
 * finding of its own. */
void mq_doctor_run(const struct mq_doctor_opts *o, struct mq_doctor *out);
/* Worst level of all findings. */
enum mq_check_level mq_doctor_worst(const struct mq_doctor *d);
const char *mq_check_level_name(enum mq_check_level l); /* "ok" "warn" "fail" */
void mq_doctor_release(struct mq_doctor *d);

#endif
