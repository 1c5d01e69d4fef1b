/* watch.h - the reconcile loop as a supervisor (`maqet watch`).
 *
 * One single-threaded poll() loop over: the manifest inotify watcher
 * (mwatch), a signalfd (TERM/INT: leave VMs running and exit; HUP: full
 * resync), one timerfd for the nearest deadline (settle window, periodic
 * resync, backoff expiry, lock retry), an inotify watch on the state lock
 * (another maqet finished a pass: pick up its result), one pidfd and one QMP
 * event connection (the VM's second monitor) per running VM, and the pipes of
 * the pass in flight.
 *
 * Every pass is the same plan + apply as `maqet apply` (mq_plan_build with
 * supervise = true, then the steppable applier), under the same state lock,
 * which is taken without blocking and retried.  Process exits are classified
 * with the QMP events seen before them (supervise.h) and feed the restart
 * policy and backoff, whose state lives in the VM records.
 *
 * reconciler code never prints: every decision goes to opts->log.
 */
#ifndef MQ_WATCH_H
#define MQ_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "reconciler/gitsync.h"
#include "reconciler/supervise.h"
#include "state/store.h"
#include "util/error.h"

typedef void (*mq_watch_log_fn)(void *ud, const char *vm, const char *action, const char *outcome,
				const char *detail);

struct mq_watch_opts {
	const char *const *paths;
	size_t n_paths;
	bool prune;
	bool allow_empty;
	const char *host;         /* act on vms placed here and unplaced ones (NULL = on all) */
	int settle_ms;            /* default 100 */
	int64_t resync_ms;        /* default 60000; 0 disables */
	int jobs;
	const char *state_dir;
	const char *manifest_cache; /* the parse cache file (specs/cache.h), or NULL */
	const char *runtime_dir;
	const char *disk_dir;
	struct mq_backoff_cfg backoff;
	/* Event retention (state/events.h mq_store_event_prune), applied after
	 * the first pass and then at most once an hour; both 0 = never. */
	size_t events_keep;
	int64_t events_max_age_ms;
	/* --git-pull: keep the manifest checkout current (gitsync.h); a setup
	 * that cannot work (no git work tree, no upstream, a keyring that does
	 * not verify HEAD) makes mq_watch_run fail before the first pass. */
	struct mq_gitsync_cfg git_pull;
	mq_watch_log_fn log;
	void *ud;
};

/* Refuses to start (-EBUSY, message names the pid) when another watch holds
 * the state dir.  Returns 0 after SIGTERM/SIGINT. */
int mq_watch_run(struct mq_store *st, const struct mq_watch_opts *opts, struct mq_error **err);

#endif
