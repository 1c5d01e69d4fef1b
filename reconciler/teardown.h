/* teardown.h - wait, on the loop, for exited processes to be torn down.
 *
 * The process-events connector (procexit.h) reports a QEMU's exit when its
 * main thread dies; its other threads and its open files (the disk lease,
 * QEMU's own image locks) go a few milliseconds later, and only then does
 * its pidfd turn readable.  A restart planned in between finds the disk lease
 * still held by the dead QEMU.  Watch hands such pids here and re-plans when
 * the pidfd says the process is gone, instead of polling on a timer.
 */
#ifndef MQ_TEARDOWN_H
#define MQ_TEARDOWN_H

#include <stddef.h>
#include <sys/types.h>

#include "reconciler/loop.h"

struct mq_teardown;

/* cb runs (from the loop) once per mq_teardown_wait() whose process is gone. */
struct mq_teardown *mq_teardown_new(struct mq_loop *l, void (*cb)(void *ud), void *ud);
/* Watch pid until it is gone; a pid already watched is not added again.
 * Returns 0 when armed; for a pid already gone (its last files are closed by
 * a kernel workqueue a little later) cb runs after 2, 4, 8 ... 128 ms on
 * repeated calls, and after 8 of them -ESRCH: what holds the lease is not
 * that process.  -errno when no pidfd can be had.  On an error the caller
 * waits (and says so) its usual way. */
int mq_teardown_wait(struct mq_teardown *t, pid_t pid);
size_t mq_teardown_count(const struct mq_teardown *t);
void mq_teardown_free(struct mq_teardown *t);

#endif
