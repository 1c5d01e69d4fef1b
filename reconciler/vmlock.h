/* vmlock.h - the per-VM lock, and the busy phases it guards.
 *
 * <state_dir>/vm-NAME.lock is an flock(2) like the state lock (lock.h): the
 * kernel drops it when its holder exits, so a dead holder never leaves it
 * taken.  The holder writes "PID WHAT" into it (WHAT e.g. "snapshot 'x'").
 * It serialises the long operations on one VM: the operator verbs that talk
 * to its QEMU (cli/vmqmp.c), snapshot create/restore/delete (snap*.c,
 * held for the whole job while the state lock is taken only for the short
 * record steps), and stop/start/restart/rm (cli/vmcmd.c waits for it).
 *
 * Lock order: the per-VM lock first, then the state lock.  Code that holds
 * the state lock (watch passes, apply) only ever TRIES the per-VM lock
 * (mq_vmlock_busy), so nothing waits in a cycle.
 *
 * A VM in phase snapshotting/restoring is "busy" while a live process holds
 * its per-VM lock: plans leave it alone.  Found in such a phase with nobody
 * holding the lock, the maqet that ran the job died: mq_vmlock_recover()
 * ends the phase by observation (QEMU alive -> running, gone -> crashed, no
 * QEMU recorded -> stopped) with a "failed" event "interrupted: ...".
 */
#ifndef MQ_VMLOCK_H
#define MQ_VMLOCK_H

#include <stdbool.h>

#include "reconciler/lock.h"
#include "state/store.h"
#include "util/error.h"

/* Take vm-NAME.lock, waiting up to timeout_ms (0 = try once).  When it is
 * not free at once and `waiting` is not NULL, waiting(ud, holder) is called
 * once before the wait (holder: "maqet pid N: WHAT", or NULL). */
int mq_vmlock_acquire(struct mq_lock *l, const char *state_dir, const char *vm, const char *what, int timeout_ms,
		      void (*waiting)(void *ud, const char *holder), void *ud, struct mq_error **err);

/* Is vm-NAME.lock held by a live process (possibly this one, on another
 * fd)?  When held and `holder` is not NULL, *holder = "maqet pid N: WHAT"
 * (caller frees). */
bool mq_vmlock_busy(const char *state_dir, const char *vm, char **holder);

/* Is rec in a busy phase (snapshotting, restoring)? */
bool mq_vmlock_busy_phase(const struct mq_vm_record *rec);

/* Caller holds the state lock.  If rec is in a busy phase and nobody holds
 * its per-VM lock, end the phase by observation and write it with its event
 * (who: "watch", "apply", ...).  rec is updated in place.  Returns 1 when
 * recovered, 0 when nothing to do (not busy, or a live job), -errno.
 * state_dir NULL: the caller holds this VM's per-VM lock itself, so a busy
 * phase is stale by definition. */
int mq_vmlock_recover(struct mq_store *st, const char *state_dir, struct mq_vm_record *rec, const char *who,
		      struct mq_error **err);
/* The same for every recorded VM; returns how many were recovered or the
 * first -errno. */
int mq_vmlock_recover_all(struct mq_store *st, const char *state_dir, const char *who, struct mq_error **err);

#endif
