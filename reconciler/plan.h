/* plan.h - desired (specs) vs actual (records + live processes) -> actions.
 *
 * Planning is pure except for the liveness probe (mq_observe), so the whole
 * decision table can be unit-tested through mq_plan_decide().
 */
#ifndef MQ_PLAN_H
#define MQ_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "specs/spec.h"
#include "state/store.h"
#include "util/error.h"
#include "util/strv.h"

enum mq_action {
	MQ_ACT_NOOP = 0,
	MQ_ACT_CREATE,   /* new VM: record it, start it when desired running */
	MQ_ACT_START,
	MQ_ACT_STOP,
	MQ_ACT_RESTART,  /* argv-affecting change on a running VM */
	MQ_ACT_DELETE,   /* --prune: stop and forget */
	MQ_ACT_UPDATE,   /* record-only change */
	MQ_ACT__COUNT
};

const char *mq_action_str(enum mq_action a);   /* "create", "start", ... "no-op" */
const char *mq_action_symbol(enum mq_action a); /* "+", "~", "-", ... terraform-like */

/* Observed status of a record: the recorded status, corrected by a liveness
 * check of pid + start time ("running" whose process is gone or reused ->
 * "crashed").  Returns a static string (one of MQ_STATUS_*). */
const char *mq_observe(const struct mq_vm_record *rec);
bool mq_status_is_up(const char *observed); /* running / starting / stopping */

/* Inputs of the decision for one VM. */
struct mq_decide_in {
	bool declared;          /* a spec exists in the manifests */
	bool recorded;          /* a record exists */
	bool want_running;      /* spec state (declared only) */
	bool up;                /* observed process alive */
	bool held;              /* hold flag from `maqet stop` */
	bool paused;            /* phase paused (`maqet pause`): left alone until `maqet resume` */
	bool restart_changed;   /* argv-affecting fields changed */
	bool other_changed;     /* record-only / state fields changed */
	bool prune;             /* --prune and the record belongs to one of the sources */
	bool blocked;           /* restart policy forbids starting it now (guest poweroff,
	                           crash-loop, backoff, restart: never); a manifest change
	                           lifts it */
};
enum mq_action mq_plan_decide(const struct mq_decide_in *in);

struct mq_snap_act;
struct mq_plan_item {
	char *name;
	enum mq_action action;
	char *reason;               /* human-readable why */
	struct mq_strv changed;     /* changed canonical keys */
	const struct mq_spec *spec; /* borrowed from the set; NULL for delete / undeclared */
	struct mq_vm_record *rec;   /* owned copy; NULL when new */
	const char *observed;       /* static status string, "absent" when unrecorded */
	bool held;
	bool blocked;               /* see mq_decide_in.blocked */
	char *block_reason;         /* why, when blocked */
	int64_t wake_at;            /* wall ms when a backoff ends (0 = none): re-plan then */
	struct mq_snap_act *snaps;  /* declared snapshot actions (reconciler/snapplan.h), owned */
	size_t n_snaps;
	char *owner;                /* the recorded source when it differs from the declaring one
	                               (an ownership conflict without adopt, a move with it) */
	bool conflict;              /* declared here, owned by `owner`, no adopt: left alone
	                               (action no-op, blocked, reason says so) */
	char *moving_to;            /* placed on another host now: a delete here means stop and
	                               forget, never its disks (README "Pinned hosts") */
	bool lease_wait;            /* would start, but its disk lease is held (another host's
	                               QEMU runs it): no-op, blocked; watch re-plans soon */
	long long lease_pid;        /* lease_wait: the holder's pid as the lease file names it */
	bool lease_own_exit;        /* lease_wait, and the holder is this vm's own QEMU that has
	                               exited: the kernel is still tearing it down (its fds close
	                               last); watch waits on its pidfd, not a timer */
};

/* A vm placed on another host, which this host leaves alone (plan shows it
 * as `elsewhere (host b)`); nothing else is done or recorded for it. */
#define MQ_PLAN_AWAY_SYMBOL "^"
struct mq_plan_away {
	const char *name;           /* borrowed from the spec */
	const char *host;
};

struct mq_plan {
	struct mq_plan_item *items; /* sorted by name: declared VMs, then prunable records */
	size_t n;
	size_t counts[MQ_ACT__COUNT];
	size_t conflicts;           /* items with conflict set */
	struct mq_plan_away *away;  /* placed elsewhere and not recorded here, by name */
	size_t n_away;
};

struct mq_plan_opts {
	bool prune;
	bool allow_empty;   /* allow a prune that removes every VM of a source */
	bool supervise;     /* watch mode: also honour `restart: never` and backoff */
	int64_t now_ms;     /* wall clock for backoff decisions (0 = mq_now_ms()) */
	bool adopt;         /* --adopt: a VM recorded from another source moves to this one */
	const char *host;   /* --host: act on vms placed here and unplaced ones (NULL = on all) */
	const char *disk_dir; /* default disk location: set = check disk leases before starts
	                         and shared storage before moves (lease.h, placement.h) */
	const char *state_dir; /* optional: name the holder of a busy VM's per-VM lock (vmlock.h) */
};

/* Build the plan.  Records not declared and not prunable are left out
 * (another source owns them), except undeclared records of the same sources
 * without --prune, which appear as no-op "no longer declared (use --prune)".
 * A prune that would remove every VM of a source without allow_empty fails
 * with -EPERM and a message. */
int mq_plan_build(const struct mq_specset *set, struct mq_vm_record *const *recs, size_t nrec,
		  const struct mq_plan_opts *opts, struct mq_plan **out, struct mq_error **err);
struct mq_plan *mq_plan_free(struct mq_plan *p);
size_t mq_plan_changes(const struct mq_plan *p); /* items whose action is not no-op, plus snapshot actions */

#endif
