/* apply.h - execute a plan: the one reconcile implementation.
 *
 * `maqet apply` runs the plan built from the manifests; the imperative verbs
 * (start/stop/restart/rm) run a plan of one item through the same code.
 *
 * QEMU work (disk creation, spawn + QMP readiness, the stop sequence) runs in
 * forked worker processes, at most `jobs` at a time, so independent VMs
 * proceed in parallel; workers report typed messages over a socket
 * (reconciler/worker.h) and the parent alone writes the store, each record
 * with the event that explains it in one transaction (reconciler/audit.h).  A VM starts only after every VM it depends on is running; stops
 * and deletes go in reverse dependency order.  One VM's failure is recorded
 * (status, last_error, an event) and does not stop the others.
 *
 * The caller holds the state lock (reconciler/lock.h) for the whole pass.
 */
#ifndef MQ_APPLY_H
#define MQ_APPLY_H

#include <stdbool.h>

#include "reconciler/audit.h"
#include "reconciler/plan.h"
#include "reconciler/proc.h"
#include "state/store.h"
#include "util/error.h"

enum mq_outcome { MQ_OUT_OK = 0, MQ_OUT_FAILED, MQ_OUT_SKIPPED };

/* Called once per item with an action (not for no-ops), when it finishes. */
typedef void (*mq_apply_report_fn)(void *ud, const struct mq_plan_item *it, enum mq_outcome outcome,
				   const char *message);
/* Called when a VM's QEMU runs and its record says so, before the item's
 * report: ev_fd is QEMU's already-negotiated QMP event connection (the
 * callee owns it and must close it), or -1.  Watch mode starts following the
 * VM here, so an exit right after boot is never missed. */
typedef void (*mq_apply_started_fn)(void *ud, const char *name, const struct mq_pidref *ref, int ev_fd);
/* Called once when the whole pass is done (from a loop callback). */
typedef void (*mq_apply_done_fn)(void *ud);

struct mq_apply_opts {
	const char *runtime_dir;
	const char *disk_dir;
	const char *host;         /* written into disk leases (lease.h); NULL = uname */
	int jobs;                 /* parallel workers; <= 0 means 4 */
	bool delete_disks;        /* delete: also remove the VM's disk images */
	int start_timeout_ms;     /* QMP readiness; 0 = 30000 */
	int stop_grace_ms;        /* after quit / SIGTERM; 0 = 5000 */
	int64_t stop_timeout_ms;  /* > 0 overrides the spec's stop_timeout (maqet stop --timeout) */
	bool force_stop;          /* skip the ACPI step */
	const char *hold;         /* NULL = leave hold; "set" / "clear" = change it on the items */
	bool reset_failures;      /* a successful start clears the restart count (maqet start) */
	mq_apply_report_fn report;
	mq_apply_started_fn started; /* optional; set: workers hand over the event connection */
	const char *state_dir;    /* without `started`: hand the event connection of a VM started
	                             here to a running watch of this state dir (handoff.h) */
	void *ud;
};

struct mq_apply_result {
	size_t ok, failed, skipped;
	size_t store_errors;      /* record/event writes that failed */
	char *store_error;        /* the last of them (see mq_applier_result) */
	bool store_error_reported; /* that last one is part of an item's reported failure
	                              message: a caller that prints items need not print it again */
};

/* Record what liveness observed (a recorded-running VM whose process is gone
 * becomes "crashed", with an event) for every item of the plan. */
void mq_apply_record_observations(struct mq_store *st, const struct mq_plan *plan);

/* Run the pass on a private loop until it is done.  Returns 0 when every
 * record write succeeded (item failures are in *res), -EIO with the store's
 * message when one did not (the pass still ran to its end: whatever it could
 * not record was not started), or -errno when the loop itself failed. */
int mq_apply(struct mq_store *st, const struct mq_plan *plan, const struct mq_apply_opts *o,
	     struct mq_apply_result *res, struct mq_error **err);

/* The same pass, on the caller's loop (watch mode): record-only work happens
 * at once, QEMU work in workers whose sockets are loop sources; `done` is
 * called (from a loop callback) when every item has finished.  `plan` and
 * `opts` must outlive the applier.  Never fails. */
struct mq_applier;
struct mq_loop;
int mq_applier_start(struct mq_store *st, const struct mq_plan *plan, const struct mq_apply_opts *opts,
		     struct mq_loop *loop, mq_apply_done_fn done, void *done_ud, struct mq_applier **out);
bool mq_applier_done(const struct mq_applier *a);
/* Counts; res->store_error is NULL here: mq_applier_store_error() borrows it. */
void mq_applier_result(const struct mq_applier *a, struct mq_apply_result *res);
const char *mq_applier_store_error(const struct mq_applier *a);
/* Frees the applier; a pass still running loses its workers' reports (the
 * workers finish on their own).  Accepts NULL. */
struct mq_applier *mq_applier_free(struct mq_applier *a);

#endif
