/* apply.h - execute a plan: the one reconcile implementation.
 *
 * `maqet apply` runs the plan built from the manifests; the imperative verbs
 * (start/stop/restart/rm) run a plan of one item through the same code.
 *
 * QEMU work (disk creation, spawn + QMP readiness, the stop sequence) runs in
 * forked worker processes, at most `jobs` at a time, so independent VMs
 * proceed in parallel; workers report over a pipe and the parent alone writes
 * the store.  A VM starts only after every VM it depends on is running; stops
 * and deletes go in reverse dependency order.  One VM's failure is recorded
 * (status, last_error, an event) and does not stop the others.
 *
 * The caller holds the state lock (reconciler/lock.h) for the whole pass.
 */
#ifndef MQ_APPLY_H
#define MQ_APPLY_H

#include <stdbool.h>

#include "reconciler/audit.h" /* mq_event() and friends */
#include "reconciler/plan.h"
#include "state/store.h"
#include "util/error.h"

enum mq_outcome { MQ_OUT_OK = 0, MQ_OUT_FAILED, MQ_OUT_SKIPPED };

/* Called once per item with an action (not for no-ops), when it finishes. */
typedef void (*mq_apply_report_fn)(void *ud, const struct mq_plan_item *it, enum mq_outcome outcome,
				   const char *message);

struct mq_apply_opts {
	const char *runtime_dir;
	const char *disk_dir;
	int jobs;                 /* parallel workers; <= 0 means 4 */
	bool delete_disks;        /* delete: also remove the VM's disk images */
	int start_timeout_ms;     /* QMP readiness; 0 = 30000 */
	int stop_grace_ms;        /* after quit / SIGTERM; 0 = 5000 */
	int64_t stop_timeout_ms;  /* > 0 overrides the spec's stop_timeout (maqet stop --timeout) */
	bool force_stop;          /* skip the ACPI step */
	const char *hold;         /* NULL = leave hold; "set" / "clear" = change it on the items */
	bool reset_failures;      /* a successful start clears the restart count (maqet start) */
	mq_apply_report_fn report;
	void *ud;
};

struct mq_apply_result {
	size_t ok, failed, skipped;
};

/* Record what liveness observed (a recorded-running VM whose process is gone
 * becomes "crashed", with an event) for every item of the plan. */
void mq_apply_record_observations(struct mq_store *st, const struct mq_plan *plan);

int mq_apply(struct mq_store *st, const struct mq_plan *plan, const struct mq_apply_opts *opts,
	     struct mq_apply_result *res, struct mq_error **err);

/* The same pass, driven from the caller's own poll loop (watch mode):
 *   mq_applier_start(...);                 synchronous record-only work
 *   while (!mq_applier_step(a)) {          launch what is ready
 *       n = mq_applier_pollfds(a, pfds, max);   add to the loop's poll set
 *       ... for each readable fd: mq_applier_handle(a, fd);
 *   }
 *   mq_applier_result(a, &res); mq_applier_free(a);
 * `plan` and `opts` must outlive the applier.  mq_apply() is exactly this
 * loop with a private poll(). */
struct mq_applier;
struct pollfd;
int mq_applier_start(struct mq_store *st, const struct mq_plan *plan, const struct mq_apply_opts *opts,
		     struct mq_applier **out);
bool mq_applier_step(struct mq_applier *a);
size_t mq_applier_pollfds(struct mq_applier *a, struct pollfd *pfds, size_t max);
void mq_applier_handle(struct mq_applier *a, int fd);
void mq_applier_result(const struct mq_applier *a, struct mq_apply_result *res);
struct mq_applier *mq_applier_free(struct mq_applier *a);

#endif
