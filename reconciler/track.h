/* track.h - the running VMs watch mode follows: one pidfd (or, when no
 * pidfd can be had, a shared liveness timer) and one QMP event connection
 * per VM, all loop sources; nothing here blocks.
 *
 * The event connection is the VM's second QMP monitor.  For a VM this
 * watch started it is handed over already negotiated by the worker that
 * started QEMU paused (-S) and sent `cont` only after negotiating it, so no
 * event of the guest's life is missed.  For an adopted VM (running before
 * the watch, or started by a CLI command) it is connected here without
 * blocking: connect retries and the greeting wait are timers, and a QEMU
 * that accepts but never greets (SIGSTOPped, hung) is given up on after a
 * deadline, its exits then classified without QMP events.
 *
 * An exit is noticed through the pidfd, the fallback timer, the kernel's
 * process-events connector (mq_tracker_pid_exited) or the event monitor
 * hanging up while the process is provably gone; then whatever QEMU wrote
 * before dying (SHUTDOWN, GUEST_PANICKED) is read without waiting, and the
 * exit is handed to the owner's callback with what was seen.
 *
 * Without pidfds (pidfd_open failing with ENOSYS before Linux 5.3, or
 * EMFILE/ENFILE), every such VM is checked by pid + start time on one timer
 * (MQ_TRACK_FALLBACK_MS); the loop stays asleep between checks.
 */
#ifndef MQ_TRACK_H
#define MQ_TRACK_H

#include <stdbool.h>
#include <stddef.h>

#include "reconciler/loop.h"
#include "reconciler/proc.h"
#include "reconciler/supervise.h"

#define MQ_TRACK_FALLBACK_MS 250     /* liveness check period without pidfds */
#define MQ_TRACK_GREETING_MS 5000    /* give up on a QMP event monitor that does not greet */
#define MQ_TRACK_EVENTS_PER_TURN 64  /* QMP events read per VM per loop turn, at most (about) */
#define MQ_TRACK_THROTTLE_MS 20      /* then its event monitor rests this long */

struct mq_tracker;

/* The exit of a tracked VM, with the QMP events seen before it. */
typedef void (*mq_track_exit_fn)(void *ud, const char *name, const struct mq_pidref *ref,
				 const struct mq_exit_info *info);
typedef void (*mq_track_log_fn)(void *ud, const char *vm, const char *action, const char *outcome,
				const char *detail);

struct mq_track_opts {
	struct mq_loop *loop;
	const char *runtime_dir;
	mq_track_exit_fn on_exit;
	mq_track_log_fn log;
	void *ud;
};

struct mq_tracker *mq_tracker_new(const struct mq_track_opts *o);
struct mq_tracker *mq_tracker_free(struct mq_tracker *t);

/* Follow name's QEMU ref.  ev_fd: its negotiated event connection (taken
 * over), or -1 to connect to <runtime>/<name>.ev here.  A VM already
 * followed under another identity is replaced.  A process already gone is
 * reported through on_exit from a later loop turn. */
void mq_tracker_add(struct mq_tracker *t, const char *name, const struct mq_pidref *ref, int ev_fd,
		    bool adopting);
/* Stop following name (no callback). */
void mq_tracker_remove(struct mq_tracker *t, const char *name);
/* Is name followed with exactly this identity? */
bool mq_tracker_has(const struct mq_tracker *t, const char *name, const struct mq_pidref *ref);
size_t mq_tracker_count(const struct mq_tracker *t);
/* Names followed, for reconciling with the records (borrowed; index < count). */
const char *mq_tracker_name(const struct mq_tracker *t, size_t i);
/* Check every followed VM now (lost connector messages, before a pass):
 * exits found are reported through on_exit before this returns. */
void mq_tracker_check_all(struct mq_tracker *t);
/* name's process is known to be gone: report its exit now (through
 * on_exit, with the events read so far), so nobody classifies it without
 * them.  Nothing when name is not followed. */
void mq_tracker_collect(struct mq_tracker *t, const char *name);
/* The kernel reported pid's exit (process-events connector). */
void mq_tracker_pid_exited(struct mq_tracker *t, pid_t pid);

#endif
