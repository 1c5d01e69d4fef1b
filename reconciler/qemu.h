/* qemu.h - the QEMU driver: start, readiness, stop.
 *
 * The other roles live in their own modules, included here so that callers
 * only need this header: argv.h (command line), spawn.h (fork/exec),
 * img.h (qemu-img), host.h (kvm, accelerator, binary check), vmpaths.h
 * (runtime file names).
 *
 * Reconciler code never prints; every failure comes back as -errno plus a
 * struct mq_error message such as
 *   "cannot start vm 'web': qemu exited with status 1: <last line of qemu stderr>".
 * Nothing here sleeps: every wait is a poll() on the QEMU pidfd and/or a QMP
 * socket with a deadline.
 */
#ifndef MQ_QEMU_H
#define MQ_QEMU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "reconciler/argv.h"
#include "reconciler/host.h"
#include "reconciler/img.h"
#include "reconciler/proc.h"
#include "reconciler/spawn.h"
#include "reconciler/vmpaths.h"
#include "specs/spec.h"
#include "util/error.h"
#include "util/strv.h"

struct mq_start_opts {
	const char *runtime_dir;  /* created 0700 if missing */
	const char *disk_dir;     /* default image location, created 0700 if missing */
	int timeout_ms;           /* for QMP readiness; 0 = 30000 */
	bool keep_ev;             /* return the negotiated event-monitor fd in ev_fd */
	const char *host;         /* holder written into the disk lease (lease.h); NULL = uname */
	/* Called once QEMU exists (spawned, start time read, not ready yet),
	 * so the caller can record its identity before waiting: an interrupted
	 * start then leaves a recorded pid, never an untracked QEMU.  May be
	 * NULL. */
	void (*spawned)(void *ud, const struct mq_pidref *ref);
	void *spawned_ud;
};

struct mq_start_result {
	struct mq_pidref ref;
	char accel[8];            /* "kvm" / "tcg" */
	char *qmp_path;           /* caller frees */
	/* With keep_ev: the connected, negotiated event monitor (<name>.ev),
	 * CLOEXEC and non-blocking, of which nothing was read after the
	 * qmp_capabilities reply, so every event since `cont` is still in it
	 * (wrap it with mq_qmp_from_fd(), possibly in another process after
	 * SCM_RIGHTS).  -1 otherwise.  The caller owns it. */
	int ev_fd;
};

/* Spawn QEMU for spec so that it survives maqet exiting: setsid, umask 077,
 * stdin from /dev/null, stdout+stderr appended to <name>.qemu.log, every
 * other fd closed, signal mask and dispositions reset, execv.  QEMU starts
 * with -S (CPUs stopped); maqet connects and negotiates the main monitor and
 * the event monitor, sends `cont` on the main one and waits until the status
 * is "running" (query-status / RESUME).  So a guest that powers off at once is
 * seen on the event monitor as a guest shutdown, never as a crash.
 * If QEMU exits first, the error names its exit status and the last line of
 * its stderr; a SHUTDOWN before "running" is reported as such; on timeout the
 * process is killed.  Stale sockets of a dead previous instance are removed.
 * *res is only written on success. */
int mq_qemu_start(const struct mq_spec *spec, const struct mq_start_opts *opts,
		  struct mq_start_result *res, struct mq_error **err);
/* Take over ref, a live QEMU proven to be spec's (reconciler/qemuid.h)
 * left by an interrupted start: connect and negotiate both monitors, send
 * `cont` (a QEMU still paused by -S runs; one running already stays so) and
 * wait until it runs, exactly as mq_qemu_start() does after spawning.
 * res->accel is read from the command line.  On failure the process is
 * killed (it is proven to be this VM's and would otherwise stay untracked). */
int mq_qemu_adopt(const struct mq_spec *spec, const struct mq_start_opts *opts, const struct mq_pidref *ref,
		  const struct mq_strv *cmdline, struct mq_start_result *res, struct mq_error **err);

/* Frees qmp_path and closes ev_fd (when >= 0); only for a result that a
 * successful mq_qemu_start() filled. */
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
 * SIGTERM, then SIGKILL, waiting for exit between steps (poll on a pidfd).
 * A process that is already gone returns 0 at once; one whose identity
 * cannot be proven is never signalled (-ESTALE). */
int mq_qemu_stop(const struct mq_pidref *ref, const char *qmp_path, const struct mq_stop_opts *opts,
		 struct mq_error **err);

#endif
