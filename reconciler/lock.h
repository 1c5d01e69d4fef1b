/* lock.h - the state-dir lock: one mutating reconcile pass at a time.
 *
 * An flock(2) on <state_dir>/lock, released by the kernel when the holder
 * exits (never a stale lock to clear by hand).  The holder writes its pid
 * into the file so a waiter can name it.  The fd is O_CLOEXEC, so QEMU never
 * inherits it.
 */
#ifndef MQ_LOCK_H
#define MQ_LOCK_H

#include <sys/types.h>

#include "util/error.h"

struct mq_lock {
	int fd;
	char *path;
};

/* Wait up to timeout_ms (0 = try once) for the lock.  On timeout:
 * -EWOULDBLOCK with "state dir 'D' is locked by maqet pid N (waited S s);
 * try again later or raise --lock-timeout". */
int mq_lock_acquire(struct mq_lock *l, const char *state_dir, const char *what, int timeout_ms,
		    struct mq_error **err);
/* Same, on another file of the state dir (watch mode holds "watch.lock" for
 * its whole life so that a second watch is refused). */
int mq_lock_acquire_named(struct mq_lock *l, const char *state_dir, const char *file, const char *what,
			  int timeout_ms, struct mq_error **err);
void mq_lock_release(struct mq_lock *l);
/* Pid recorded by the current holder, 0 if none/unknown. */
pid_t mq_lock_holder_named(const char *state_dir, const char *file);

#endif
