/* snapplan.h - the snapshots a manifest declares (`snapshots:`), as plan
 * actions, and carrying them out.
 *
 * Per declared VM with `snapshots:`, after mq_plan_build():
 *   named       each name missing from the disks -> "named snapshot 'g' missing"
 *   schedule    due by reconciler/schedule.h (catch-up once) ->
 *               "scheduled snapshot due (last 6h12m ago)" / "(none yet)";
 *               skipped while the VM runs when `live: false`
 * Actions are listed in plan items (struct mq_plan_item.snaps) with their own
 * symbol "@" and count as changes (`maqet plan` exits 2, `maqet apply` acts),
 * so a cron job running `maqet apply` keeps the schedule without watch.
 *
 * Execution (mq_snap_exec) runs after the pass of the plan (the VM may have
 * been created or started by it), on the record as it is then: the snapshot
 * is live when the VM runs, offline (qemu-img) when it is stopped.  Names:
 * scheduled "auto-<UTC yyyymmddThhmmssZ>" (origin "scheduled"); after each
 * scheduled snapshot, retention deletes the oldest scheduled ones beyond
 * `keep` (never any other origin).  Calls block: CLI, or a watch worker.
 *
 * The snapshot operations are reached through struct mq_snapops, so the
 * pure planning is unit-tested with a fake and the library can be swapped:
 * mq_snapops_default is the snapshot library (reconciler/snapshot.h), which
 * for a VM that never ran first gets its images created.
 */
#ifndef MQ_SNAPPLAN_H
#define MQ_SNAPPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reconciler/plan.h"
#include "reconciler/snapshot.h"

#define MQ_SNAP_ACTION_SYMBOL "@"

enum mq_snap_act_kind {
	MQ_SNAPACT_NAMED = 1,   /* create `name` (origin declared) */
	MQ_SNAPACT_SCHEDULED,   /* create auto-<time> (origin scheduled), then retention */
	MQ_SNAPACT_PRE_CHANGE,  /* taken by the restart job itself (apply.c, vmjob.h: stop,
	                           snapshot pre-change-<time>, start, roll back on failure);
	                           mq_snap_exec only applies before_change.keep afterwards */
};

struct mq_snap_act {
	enum mq_snap_act_kind kind;
	char *name;     /* NAMED: the name; SCHEDULED: NULL (named when taken) */
	char *reason;
};

struct mq_snap_acts {
	struct mq_snap_act *v;
	size_t n;
};
void mq_snap_acts_release(struct mq_snap_acts *a);

/* Pure: the actions for one VM. */
struct mq_snap_plan_in {
	const struct mq_snapshots *decl;   /* may be NULL: nothing */
	const struct mq_snap_list *list;   /* what the disks hold (may be NULL: nothing yet) */
	bool running;
	int64_t now_ms;
};
void mq_snap_plan_vm(const struct mq_snap_plan_in *in, struct mq_snap_acts *out);

/* Pure: when the schedule is next due (wall ms; may be <= now), or -1 when
 * there is no schedule (or it is skipped because the VM runs and live is
 * false). */
int64_t mq_snap_next_due(const struct mq_snapshots *decl, const struct mq_snap_list *list, bool running,
			 int64_t now_ms);

struct mq_snapops {
	int (*list)(const struct mq_snap_env *env, const struct mq_vm_record *rec, struct mq_snap_list *out,
		    struct mq_error **err);
	int (*create)(const struct mq_snap_env *env, struct mq_vm_record *rec, const struct mq_snap_create_opts *o,
		      struct mq_snap_result *res, struct mq_error **err);
	int (*del)(const struct mq_snap_env *env, struct mq_vm_record *rec, const char *name,
		   struct mq_snap_result *res, struct mq_error **err);
	void (*list_release)(struct mq_snap_list *l);
	void (*result_release)(struct mq_snap_result *r);
};
extern const struct mq_snapops mq_snapops_default;

/* Fill plan->items[*].snaps for declared VMs with `snapshots:` (listing
 * each recorded VM's snapshots through ops).  A VM whose snapshots cannot
 * be listed gets no snapshot actions; its error is appended to `warnings`.
 * Returns the number of snapshot actions added. */
size_t mq_snap_plan_add(struct mq_plan *plan, const struct mq_snapops *ops, const struct mq_snap_env *env,
			int64_t now_ms, struct mq_strv *warnings);

/* One finished snapshot action (or a retention delete: kind SCHEDULED,
 * deleted = true). */
typedef void (*mq_snap_report_fn)(void *ud, const char *vm, const struct mq_snap_act *a, const char *name,
				  bool deleted, bool ok, const char *message);

struct mq_snap_exec_result {
	size_t ok, failed, deleted;
};

/* Carry out the snapshot actions of every item of the plan, each on the
 * VM's current record (read from env->store).  The caller holds the state
 * lock. */
void mq_snap_exec(const struct mq_plan *plan, const struct mq_snapops *ops, const struct mq_snap_env *env,
		  mq_snap_report_fn report, void *ud, struct mq_snap_exec_result *res);

/* One VM's scheduled snapshot now, then retention (watch workers). */
int mq_snap_take_scheduled(const struct mq_snapops *ops, const struct mq_snap_env *env, const char *vm,
			   const struct mq_snapshots *decl, int64_t now_ms, mq_snap_report_fn report, void *ud,
			   struct mq_snap_exec_result *res);

#endif
