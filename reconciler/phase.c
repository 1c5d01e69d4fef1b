/* phase.c - the one VM phase machine: a static phase x event table, its
 * checks, and the only writer of a record's status.  See phase.h for the
 * table in prose. */
#include "reconciler/phase.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

static const char *const phase_names[MQ_PHASE__COUNT] = {
	[MQ_PHASE_ABSENT] = "absent",
	[MQ_PHASE_CREATED] = MQ_STATUS_CREATED,
	[MQ_PHASE_STARTING] = MQ_STATUS_STARTING,
	[MQ_PHASE_RUNNING] = MQ_STATUS_RUNNING,
	[MQ_PHASE_PAUSED] = "paused",
	[MQ_PHASE_STOPPING] = MQ_STATUS_STOPPING,
	[MQ_PHASE_STOPPED] = MQ_STATUS_STOPPED,
	[MQ_PHASE_STOPPED_BY_GUEST] = MQ_STATUS_GUEST_STOPPED,
	[MQ_PHASE_CRASHED] = MQ_STATUS_CRASHED,
	[MQ_PHASE_CRASH_LOOP] = MQ_STATUS_CRASH_LOOP,
	[MQ_PHASE_FAILED] = MQ_STATUS_FAILED,
	[MQ_PHASE_SNAPSHOTTING] = "snapshotting",
	[MQ_PHASE_RESTORING] = "restoring",
};

static const char *const event_names[MQ_PHASE_EV__COUNT] = {
	[MQ_PHASE_EV_RECORD] = "record",
	[MQ_PHASE_EV_START_BEGIN] = "start-begin",
	[MQ_PHASE_EV_START_OK] = "start-ok",
	[MQ_PHASE_EV_START_FAIL] = "start-fail",
	[MQ_PHASE_EV_STOP_BEGIN] = "stop-begin",
	[MQ_PHASE_EV_STOP_OK] = "stop-ok",
	[MQ_PHASE_EV_STOP_FAIL] = "stop-fail",
	[MQ_PHASE_EV_EXIT_INTENDED] = "exit-intended",
	[MQ_PHASE_EV_EXIT_GUEST] = "exit-guest",
	[MQ_PHASE_EV_EXIT_CRASH] = "exit-crash",
	[MQ_PHASE_EV_OBSERVED_GONE] = "observed-gone",
	[MQ_PHASE_EV_CRASH_LOOP] = "crash-loop",
	[MQ_PHASE_EV_ADOPT] = "adopt",
	[MQ_PHASE_EV_PAUSE] = "pause",
	[MQ_PHASE_EV_RESUME] = "resume",
	[MQ_PHASE_EV_SNAPSHOT_BEGIN] = "snapshot-begin",
	[MQ_PHASE_EV_SNAPSHOT_END] = "snapshot-end",
	[MQ_PHASE_EV_RESTORE_BEGIN] = "restore-begin",
	[MQ_PHASE_EV_RESTORE_END] = "restore-end",
	[MQ_PHASE_EV_FORGET] = "forget",
	[MQ_PHASE_EV_SPAWNED] = "spawned",
};

_Static_assert(MQ_PHASE__COUNT <= 32, "phase masks are 32-bit");

const char *mq_phase_name(enum mq_phase p)
{
	return (unsigned)p < MQ_PHASE__COUNT ? phase_names[p] : NULL;
}

const char *mq_phase_event_name(enum mq_phase_event ev)
{
	return (unsigned)ev < MQ_PHASE_EV__COUNT ? event_names[ev] : NULL;
}

int mq_phase_parse(const char *s, enum mq_phase *out, struct mq_error **err)
{
	for (unsigned i = 0; s && i < MQ_PHASE__COUNT; i++) {
		if (strcmp(s, phase_names[i]) == 0) {
			*out = (enum mq_phase)i;
			return 0;
		}
	}
	return mq_error_set(err, EINVAL, "unknown phase '%s'", s ? s : "(null)");
}

bool mq_phase_is_up(enum mq_phase p)
{
	switch (p) {
	case MQ_PHASE_STARTING:
	case MQ_PHASE_RUNNING:
	case MQ_PHASE_PAUSED:
	case MQ_PHASE_STOPPING:
	case MQ_PHASE_SNAPSHOTTING:
	case MQ_PHASE_RESTORING:
		return true;
	default:
		return false;
	}
}

int mq_phase_of(const struct mq_vm_record *rec, enum mq_phase *out, struct mq_error **err)
{
	if (!rec->status) {
		*out = MQ_PHASE_ABSENT;
		return 0;
	}
	return mq_phase_parse(rec->status, out, err);
}

/* ---- the table ------------------------------------------------------------------ */

struct rule {
	bool allowed;
	enum mq_phase next;  /* when resume == 0 */
	unsigned fx;         /* MQ_PHASE_FX_* */
	unsigned on_reset;   /* effects added when ctx->reset_failures */
	unsigned resume;     /* != 0: next = ctx->resume_phase, which must be in this phase mask */
};

#define P(x) (1u << MQ_PHASE_##x)
#define EV(x) MQ_PHASE_EV_##x
#define TO(phase, effects) { .allowed = true, .next = MQ_PHASE_##phase, .fx = (effects) }
#define BACK(mask, effects) { .allowed = true, .resume = (mask), .fx = (effects) }

enum {
	SET_PROCESS = MQ_PHASE_FX_SET_PROCESS,
	CLEAR_PROCESS = MQ_PHASE_FX_CLEAR_PROCESS,
	END_RUN = MQ_PHASE_FX_END_RUN,
	SET_ERROR = MQ_PHASE_FX_SET_ERROR,
	CLEAR_ERROR = MQ_PHASE_FX_CLEAR_ERROR,
	SET_EXIT_REASON = MQ_PHASE_FX_SET_EXIT_REASON,
	CLEAR_BACKOFF = MQ_PHASE_FX_CLEAR_BACKOFF,
	RESET_FAILURES = MQ_PHASE_FX_RESET_FAILURES,
};

/* Phases a VM is in when no QEMU of it is expected. */
#define DOWN_MASK (P(CREATED) | P(STOPPED) | P(STOPPED_BY_GUEST) | P(CRASHED) | P(CRASH_LOOP) | P(FAILED))
/* Where a snapshot or restore can begin, and so where it returns to. */
#define SNAP_MASK (P(RUNNING) | P(PAUSED) | DOWN_MASK)
/* Where a stop can begin from, other than a retried stop: where a failed stop returns to. */
#define STOP_FROM_MASK (P(STARTING) | P(RUNNING) | P(PAUSED))

/* Every down phase: start it, "stop" it (nothing to signal, records
 * stopped), snapshot or restore its disks offline (no QEMU: the identity of
 * the exited one is dropped, so an offline job is recognised by pid 0 while
 * the state lock is free; vmlock.h), forget it. */
#define DOWN_EVENTS \
	[EV(START_BEGIN)] = TO(STARTING, 0), \
	[EV(STOP_OK)] = TO(STOPPED, CLEAR_PROCESS), \
	[EV(SNAPSHOT_BEGIN)] = TO(SNAPSHOTTING, CLEAR_PROCESS), \
	[EV(RESTORE_BEGIN)] = TO(RESTORING, CLEAR_PROCESS), \
	[EV(FORGET)] = TO(ABSENT, CLEAR_PROCESS)

/* The process of an up VM that nobody is stopping went away. */
#define EXIT_EVENTS \
	[EV(EXIT_GUEST)] = TO(STOPPED_BY_GUEST, END_RUN | CLEAR_ERROR | SET_EXIT_REASON), \
	[EV(EXIT_CRASH)] = TO(CRASHED, END_RUN | SET_ERROR | SET_EXIT_REASON), \
	[EV(OBSERVED_GONE)] = TO(CRASHED, END_RUN | SET_ERROR)

#define ADOPT_EVENT [EV(ADOPT)] = TO(RUNNING, SET_PROCESS | CLEAR_ERROR)
#define FORGET_EVENT [EV(FORGET)] = TO(ABSENT, CLEAR_PROCESS)

static const struct rule table[MQ_PHASE__COUNT][MQ_PHASE_EV__COUNT] = {
	[MQ_PHASE_ABSENT] = {
		[EV(RECORD)] = TO(CREATED, 0),
	},
	[MQ_PHASE_CREATED] = {
		DOWN_EVENTS,
	},
	[MQ_PHASE_STARTING] = {
		[EV(START_BEGIN)] = TO(STARTING, 0), /* an interrupted start, retried */
		[EV(SPAWNED)] = TO(STARTING, SET_PROCESS),
		[EV(START_OK)] = { .allowed = true, .next = MQ_PHASE_RUNNING,
				   .fx = SET_PROCESS | CLEAR_ERROR | CLEAR_BACKOFF, .on_reset = RESET_FAILURES },
		[EV(START_FAIL)] = TO(FAILED, CLEAR_PROCESS | SET_ERROR),
		[EV(STOP_BEGIN)] = TO(STOPPING, 0),
		EXIT_EVENTS,
		ADOPT_EVENT,
		FORGET_EVENT,
	},
	[MQ_PHASE_RUNNING] = {
		[EV(STOP_BEGIN)] = TO(STOPPING, 0),
		EXIT_EVENTS,
		[EV(PAUSE)] = TO(PAUSED, 0),
		[EV(SNAPSHOT_BEGIN)] = TO(SNAPSHOTTING, 0),
		[EV(RESTORE_BEGIN)] = TO(RESTORING, 0),
		FORGET_EVENT,
	},
	[MQ_PHASE_PAUSED] = {
		[EV(STOP_BEGIN)] = TO(STOPPING, 0),
		EXIT_EVENTS,
		[EV(RESUME)] = TO(RUNNING, 0),
		[EV(SNAPSHOT_BEGIN)] = TO(SNAPSHOTTING, 0),
		[EV(RESTORE_BEGIN)] = TO(RESTORING, 0),
		FORGET_EVENT,
	},
	[MQ_PHASE_STOPPING] = {
		[EV(STOP_BEGIN)] = TO(STOPPING, 0), /* a stuck stop, retried */
		[EV(STOP_OK)] = TO(STOPPED, CLEAR_PROCESS | CLEAR_ERROR),
		[EV(STOP_FAIL)] = BACK(STOP_FROM_MASK, SET_ERROR),
		[EV(EXIT_INTENDED)] = TO(STOPPED, CLEAR_PROCESS | CLEAR_ERROR | SET_EXIT_REASON),
		[EV(OBSERVED_GONE)] = TO(STOPPED, CLEAR_PROCESS | CLEAR_ERROR),
		ADOPT_EVENT,
		FORGET_EVENT,
	},
	[MQ_PHASE_STOPPED] = {
		DOWN_EVENTS,
	},
	[MQ_PHASE_STOPPED_BY_GUEST] = {
		DOWN_EVENTS,
		[EV(CRASH_LOOP)] = TO(CRASH_LOOP, CLEAR_BACKOFF),
	},
	[MQ_PHASE_CRASHED] = {
		DOWN_EVENTS,
		[EV(CRASH_LOOP)] = TO(CRASH_LOOP, CLEAR_BACKOFF),
		ADOPT_EVENT,
	},
	[MQ_PHASE_CRASH_LOOP] = {
		DOWN_EVENTS,
	},
	[MQ_PHASE_FAILED] = {
		DOWN_EVENTS,
		[EV(CRASH_LOOP)] = TO(CRASH_LOOP, CLEAR_BACKOFF),
		ADOPT_EVENT,
	},
	[MQ_PHASE_SNAPSHOTTING] = {
		[EV(SNAPSHOT_END)] = BACK(SNAP_MASK, 0),
		EXIT_EVENTS,
		FORGET_EVENT,
	},
	[MQ_PHASE_RESTORING] = {
		[EV(RESTORE_END)] = BACK(SNAP_MASK, 0),
		EXIT_EVENTS,
		FORGET_EVENT,
	},
};

/* ---- transition ------------------------------------------------------------------ */

static const char *pname(enum mq_phase p)
{
	const char *n = mq_phase_name(p);
	return n ? n : "unknown";
}

/* `of` is "" or " of vm 'NAME'", so messages read "invalid transition of vm 'web': ...". */
static int transition(enum mq_phase from, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
		      struct mq_phase_step *out, struct mq_error **err, const char *of)
{
	if ((unsigned)from >= MQ_PHASE__COUNT)
		return mq_error_set(err, EINVAL, "invalid transition%s: unknown phase %d", of, (int)from);
	if ((unsigned)ev >= MQ_PHASE_EV__COUNT)
		return mq_error_set(err, EINVAL, "invalid transition%s: unknown event %d", of, (int)ev);
	const struct rule *r = &table[from][ev];
	const char *evn = event_names[ev];
	if (!r->allowed)
		return mq_error_set(err, EINVAL, "invalid transition%s: '%s' in phase '%s'", of, evn, phase_names[from]);
	struct mq_phase_step step = { .next = r->next, .effects = r->fx };
	if (ctx && ctx->reset_failures)
		step.effects |= r->on_reset;
	if (r->resume) {
		if (!ctx)
			return mq_error_set(err, EINVAL, "invalid transition%s: '%s' in phase '%s' needs the phase to return to",
					    of, evn, phase_names[from]);
		enum mq_phase back = ctx->resume_phase;
		if ((unsigned)back >= MQ_PHASE__COUNT || !(r->resume & (1u << back)))
			return mq_error_set(err, EINVAL, "invalid transition%s: '%s' in phase '%s' cannot return to phase '%s'",
					    of, evn, phase_names[from], pname(back));
		step.next = back;
	}
	if ((step.effects & SET_PROCESS) && !(ctx && ctx->pid > 0 && ctx->start_time != 0))
		return mq_error_set(err, EINVAL, "invalid transition%s: '%s' needs the process's pid and start time", of,
				    evn);
	if ((step.effects & SET_ERROR) && !(ctx && ctx->error && *ctx->error))
		return mq_error_set(err, EINVAL, "invalid transition%s: '%s' needs an error message", of, evn);
	if ((step.effects & SET_EXIT_REASON) && !(ctx && ctx->exit_reason && *ctx->exit_reason))
		return mq_error_set(err, EINVAL, "invalid transition%s: '%s' needs an exit reason", of, evn);
	*out = step;
	return 0;
}

int mq_phase_transition(enum mq_phase from, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
			struct mq_phase_step *out, struct mq_error **err)
{
	return transition(from, ev, ctx, out, err, "");
}

int mq_phase_apply(struct mq_vm_record *rec, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
		   struct mq_error **err)
{
	enum mq_phase from;
	int r = mq_phase_of(rec, &from, err);
	if (r < 0) {
		if (err)
			mq_error_prefix(err, "vm '%s'", rec->name ? rec->name : "?");
		return r;
	}
	char *of = xasprintf(" of vm '%s'", rec->name ? rec->name : "?");
	struct mq_phase_step step;
	r = transition(from, ev, ctx, &step, err, of);
	free(of);
	if (r < 0)
		return r;

	/* Nothing below can fail: the record changes completely or not at all. */
	unsigned fx = step.effects;
	if (fx & CLEAR_PROCESS) {
		rec->pid = 0;
		rec->start_time = 0;
		rec->started_at = 0;
	}
	if (fx & SET_PROCESS) {
		rec->pid = ctx->pid;
		rec->start_time = ctx->start_time;
		rec->started_at = ctx->started_at ? ctx->started_at : mq_now_ms();
		if (ctx->qmp_path)
			mq_vm_record_set(&rec->qmp_path, ctx->qmp_path);
		if (ctx->accel)
			mq_vm_record_set(&rec->accel, ctx->accel);
	}
	if (fx & END_RUN)
		rec->started_at = 0;
	if (fx & CLEAR_ERROR)
		mq_vm_record_set(&rec->last_error, NULL);
	if (fx & SET_ERROR)
		mq_vm_record_set(&rec->last_error, ctx->error);
	if (fx & SET_EXIT_REASON)
		mq_vm_record_set(&rec->exit_reason, ctx->exit_reason);
	if (fx & CLEAR_BACKOFF)
		rec->backoff_until = 0;
	if (fx & RESET_FAILURES) {
		rec->restart_count = 0;
		rec->backoff_until = 0;
	}
	mq_vm_record_set(&rec->status, step.next == MQ_PHASE_ABSENT ? NULL : phase_names[step.next]);
	return 0;
}

enum mq_phase mq_phase_get(const struct mq_vm_record *rec)
{
	enum mq_phase p;
	if (mq_phase_of(rec, &p, NULL) < 0)
		return MQ_PHASE_STOPPED;
	return p;
}
