/* snapwatch.h - watch mode's declared snapshots: each VM with `snapshots:`
 * (named or schedule) has a timer on the loop; when it fires (at once for a
 * VM newly declared or whose `snapshots:` changed, then at the schedule's
 * next due time), a worker process (reconciler/worker.h) does the blocking
 * part: it takes the state lock, lists the VM's snapshots, creates missing
 * named ones and a due scheduled one (the catch-up rule of schedule.h: one
 * snapshot after any number of missed slots), applies retention, and
 * reports each result and the next due time back.  Nothing blocks the loop;
 * one worker per VM at a time.
 */
#ifndef MQ_SNAPWATCH_H
#define MQ_SNAPWATCH_H

#include "reconciler/loop.h"
#include "specs/spec.h"

typedef void (*mq_snapwatch_log_fn)(void *ud, const char *vm, const char *action, const char *outcome,
				    const char *detail);

struct mq_store;

struct mq_snapwatch_opts {
	const char *state_dir, *runtime_dir, *disk_dir;
	int lock_timeout_ms;     /* worker's wait for the state lock; 0 = 60000 */
	struct mq_store *store;  /* the caller's connection, suspended across each worker's
	                            fork (the worker opens its own: store.h) */
	mq_snapwatch_log_fn log;
	void *ud;
};

struct mq_snapwatch;
struct mq_snapwatch *mq_snapwatch_new(struct mq_loop *loop, const struct mq_snapwatch_opts *o);
/* After each pass: follow the declared set (VMs gone or without
 * `snapshots:` are dropped; new or changed ones are checked at once). */
void mq_snapwatch_sync(struct mq_snapwatch *sw, const struct mq_specset *set);
/* Accepts NULL.  Running workers are left to finish on their own. */
struct mq_snapwatch *mq_snapwatch_free(struct mq_snapwatch *sw);

#endif
