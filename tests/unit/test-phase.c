/* Unit tests for reconciler/phase: names and parsing of every phase and
 * event, the whole phase x event table (every pair, against an expected table
 * written out here independently of phase.c's), what each transition needs
 * from its context, and mq_phase_apply() on records: the fields each effect
 * writes, and a record left untouched on every failure. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/phase.h"
#include "state/store.h"
#include "util/error.h"
#include "tests/unit/check-run.h"

#define NPHASE ((int)MQ_PHASE__COUNT)
#define NEV ((int)MQ_PHASE_EV__COUNT)

/* --- names -------------------------------------------------------------------- */

struct phase_row {
	enum mq_phase p;
	const char *name;
	bool up;
};

static const struct phase_row phases[] = {
	{ MQ_PHASE_ABSENT, "absent", false },
	{ MQ_PHASE_CREATED, "created", false },
	{ MQ_PHASE_STARTING, "starting", true },
	{ MQ_PHASE_RUNNING, "running", true },
	{ MQ_PHASE_PAUSED, "paused", true },
	{ MQ_PHASE_STOPPING, "stopping", true },
	{ MQ_PHASE_STOPPED, "stopped", false },
	{ MQ_PHASE_STOPPED_BY_GUEST, "stopped-by-guest", false },
	{ MQ_PHASE_CRASHED, "crashed", false },
	{ MQ_PHASE_CRASH_LOOP, "crash-loop", false },
	{ MQ_PHASE_FAILED, "failed", false },
	{ MQ_PHASE_SNAPSHOTTING, "snapshotting", true },
	{ MQ_PHASE_RESTORING, "restoring", true },
};

static const char *const event_names[] = {
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

static const char *want_phase_name(enum mq_phase p)
{
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
		if (phases[i].p == p)
			return phases[i].name;
	ck_abort_msg("phase %d missing from the test's table", (int)p);
	return NULL;
}

START_TEST(test_phase_names)
{
	ck_assert_int_eq((int)(sizeof(phases) / sizeof(phases[0])), NPHASE);
	const struct phase_row *r = &phases[_i];
	ck_assert_str_eq(mq_phase_name(r->p), r->name);
	enum mq_phase got = MQ_PHASE__COUNT;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_phase_parse(r->name, &got, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(got, r->p);
	ck_assert_int_eq(mq_phase_is_up(r->p), r->up);
}
END_TEST

START_TEST(test_event_names)
{
	ck_assert_int_eq((int)(sizeof(event_names) / sizeof(event_names[0])), NEV);
	ck_assert_ptr_nonnull(event_names[_i]);
	ck_assert_str_eq(mq_phase_event_name((enum mq_phase_event)_i), event_names[_i]);
}
END_TEST

START_TEST(test_names_out_of_range)
{
	ck_assert_ptr_null(mq_phase_name(MQ_PHASE__COUNT));
	ck_assert_ptr_null(mq_phase_name((enum mq_phase)-1));
	ck_assert_ptr_null(mq_phase_event_name(MQ_PHASE_EV__COUNT));
	ck_assert(!mq_phase_is_up(MQ_PHASE__COUNT));
}
END_TEST

/* Today's stored status strings keep their meaning. */
START_TEST(test_store_status_strings)
{
	static const struct {
		const char *s;
		enum mq_phase p;
	} m[] = {
		{ MQ_STATUS_CREATED, MQ_PHASE_CREATED },   { MQ_STATUS_STARTING, MQ_PHASE_STARTING },
		{ MQ_STATUS_RUNNING, MQ_PHASE_RUNNING },   { MQ_STATUS_STOPPING, MQ_PHASE_STOPPING },
		{ MQ_STATUS_STOPPED, MQ_PHASE_STOPPED },   { MQ_STATUS_CRASHED, MQ_PHASE_CRASHED },
		{ MQ_STATUS_FAILED, MQ_PHASE_FAILED },     { MQ_STATUS_GUEST_STOPPED, MQ_PHASE_STOPPED_BY_GUEST },
		{ MQ_STATUS_CRASH_LOOP, MQ_PHASE_CRASH_LOOP },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		enum mq_phase p = MQ_PHASE__COUNT;
		ck_assert_int_eq(mq_phase_parse(m[i].s, &p, NULL), 0);
		ck_assert_int_eq(p, m[i].p);
	}
}
END_TEST

START_TEST(test_parse_unknown)
{
	static const char *const bad[] = { "", "Running", "runnin", "running ", "stopped_by_guest", "zombie" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum mq_phase p = MQ_PHASE_RUNNING;
		struct mq_error *err = NULL;
		ck_assert_int_eq(mq_phase_parse(bad[i], &p, &err), -EINVAL);
		ck_assert_int_eq(p, MQ_PHASE_RUNNING); /* untouched */
		ck_assert_ptr_nonnull(err);
		char want[64];
		snprintf(want, sizeof(want), "unknown phase '%s'", bad[i]);
		ck_assert_str_eq(err->msg, want);
		mq_error_free(err);
	}
	enum mq_phase p = MQ_PHASE_RUNNING;
	ck_assert_int_eq(mq_phase_parse(NULL, &p, NULL), -EINVAL);
	ck_assert_int_eq(p, MQ_PHASE_RUNNING);
}
END_TEST

/* --- the expected table ----------------------------------------------------------- */

#define SP MQ_PHASE_FX_SET_PROCESS
#define CP MQ_PHASE_FX_CLEAR_PROCESS
#define ER MQ_PHASE_FX_END_RUN
#define SE MQ_PHASE_FX_SET_ERROR
#define CE MQ_PHASE_FX_CLEAR_ERROR
#define XR MQ_PHASE_FX_SET_EXIT_REASON
#define CB MQ_PHASE_FX_CLEAR_BACKOFF
#define RF MQ_PHASE_FX_RESET_FAILURES

#define PH(x) MQ_PHASE_##x
#define E(x) MQ_PHASE_EV_##x
#define M(x) (1u << MQ_PHASE_##x)

/* Phases a stop-fail may return to, and a snapshot or restore. */
#define STOP_BACK (M(STARTING) | M(RUNNING) | M(PAUSED))
#define SNAP_BACK (M(RUNNING) | M(PAUSED) | M(CREATED) | M(STOPPED) | M(STOPPED_BY_GUEST) | M(CRASHED) | \
		   M(CRASH_LOOP) | M(FAILED))

struct row {
	enum mq_phase from;
	enum mq_phase_event ev;
	enum mq_phase to;   /* ignored when back != 0 */
	unsigned fx;
	unsigned back;      /* phases ctx->resume_phase may name */
};

#define R(f, e, t, x) { PH(f), E(e), PH(t), (x), 0 }
#define B(f, e, mask, x) { PH(f), E(e), PH(ABSENT), (x), (mask) }

static const struct row allowed[] = {
	R(ABSENT, RECORD, CREATED, 0),

	R(CREATED, START_BEGIN, STARTING, 0),
	R(CREATED, STOP_OK, STOPPED, CP),
	R(CREATED, SNAPSHOT_BEGIN, SNAPSHOTTING, CP),
	R(CREATED, RESTORE_BEGIN, RESTORING, CP),
	R(CREATED, FORGET, ABSENT, CP),

	R(STARTING, START_BEGIN, STARTING, 0),
	R(STARTING, SPAWNED, STARTING, SP),
	R(STARTING, START_OK, RUNNING, SP | CE | CB),
	R(STARTING, START_FAIL, FAILED, CP | SE),
	R(STARTING, STOP_BEGIN, STOPPING, 0),
	R(STARTING, EXIT_GUEST, STOPPED_BY_GUEST, ER | CE | XR),
	R(STARTING, EXIT_CRASH, CRASHED, ER | SE | XR),
	R(STARTING, OBSERVED_GONE, CRASHED, ER | SE),
	R(STARTING, ADOPT, RUNNING, SP | CE),
	R(STARTING, FORGET, ABSENT, CP),

	R(RUNNING, STOP_BEGIN, STOPPING, 0),
	R(RUNNING, EXIT_GUEST, STOPPED_BY_GUEST, ER | CE | XR),
	R(RUNNING, EXIT_CRASH, CRASHED, ER | SE | XR),
	R(RUNNING, OBSERVED_GONE, CRASHED, ER | SE),
	R(RUNNING, PAUSE, PAUSED, 0),
	R(RUNNING, SNAPSHOT_BEGIN, SNAPSHOTTING, 0),
	R(RUNNING, RESTORE_BEGIN, RESTORING, 0),
	R(RUNNING, FORGET, ABSENT, CP),

	R(PAUSED, STOP_BEGIN, STOPPING, 0),
	R(PAUSED, EXIT_GUEST, STOPPED_BY_GUEST, ER | CE | XR),
	R(PAUSED, EXIT_CRASH, CRASHED, ER | SE | XR),
	R(PAUSED, OBSERVED_GONE, CRASHED, ER | SE),
	R(PAUSED, RESUME, RUNNING, 0),
	R(PAUSED, SNAPSHOT_BEGIN, SNAPSHOTTING, 0),
	R(PAUSED, RESTORE_BEGIN, RESTORING, 0),
	R(PAUSED, FORGET, ABSENT, CP),

	R(STOPPING, STOP_BEGIN, STOPPING, 0),
	R(STOPPING, STOP_OK, STOPPED, CP | CE),
	B(STOPPING, STOP_FAIL, STOP_BACK, SE),
	R(STOPPING, EXIT_INTENDED, STOPPED, CP | CE | XR),
	R(STOPPING, OBSERVED_GONE, STOPPED, CP | CE),
	R(STOPPING, ADOPT, RUNNING, SP | CE),
	R(STOPPING, FORGET, ABSENT, CP),

	R(STOPPED, START_BEGIN, STARTING, 0),
	R(STOPPED, STOP_OK, STOPPED, CP),
	R(STOPPED, SNAPSHOT_BEGIN, SNAPSHOTTING, CP),
	R(STOPPED, RESTORE_BEGIN, RESTORING, CP),
	R(STOPPED, FORGET, ABSENT, CP),

	R(STOPPED_BY_GUEST, START_BEGIN, STARTING, 0),
	R(STOPPED_BY_GUEST, STOP_OK, STOPPED, CP),
	R(STOPPED_BY_GUEST, CRASH_LOOP, CRASH_LOOP, CB),
	R(STOPPED_BY_GUEST, SNAPSHOT_BEGIN, SNAPSHOTTING, CP),
	R(STOPPED_BY_GUEST, RESTORE_BEGIN, RESTORING, CP),
	R(STOPPED_BY_GUEST, FORGET, ABSENT, CP),

	R(CRASHED, START_BEGIN, STARTING, 0),
	R(CRASHED, STOP_OK, STOPPED, CP),
	R(CRASHED, CRASH_LOOP, CRASH_LOOP, CB),
	R(CRASHED, ADOPT, RUNNING, SP | CE),
	R(CRASHED, SNAPSHOT_BEGIN, SNAPSHOTTING, CP),
	R(CRASHED, RESTORE_BEGIN, RESTORING, CP),
	R(CRASHED, FORGET, ABSENT, CP),

	R(CRASH_LOOP, START_BEGIN, STARTING, 0),
	R(CRASH_LOOP, STOP_OK, STOPPED, CP),
	R(CRASH_LOOP, SNAPSHOT_BEGIN, SNAPSHOTTING, CP),
	R(CRASH_LOOP, RESTORE_BEGIN, RESTORING, CP),
	R(CRASH_LOOP, FORGET, ABSENT, CP),

	R(FAILED, START_BEGIN, STARTING, 0),
	R(FAILED, STOP_OK, STOPPED, CP),
	R(FAILED, CRASH_LOOP, CRASH_LOOP, CB),
	R(FAILED, ADOPT, RUNNING, SP | CE),
	R(FAILED, SNAPSHOT_BEGIN, SNAPSHOTTING, CP),
	R(FAILED, RESTORE_BEGIN, RESTORING, CP),
	R(FAILED, FORGET, ABSENT, CP),

	B(SNAPSHOTTING, SNAPSHOT_END, SNAP_BACK, 0),
	R(SNAPSHOTTING, EXIT_GUEST, STOPPED_BY_GUEST, ER | CE | XR),
	R(SNAPSHOTTING, EXIT_CRASH, CRASHED, ER | SE | XR),
	R(SNAPSHOTTING, OBSERVED_GONE, CRASHED, ER | SE),
	R(SNAPSHOTTING, FORGET, ABSENT, CP),

	B(RESTORING, RESTORE_END, SNAP_BACK, 0),
	R(RESTORING, EXIT_GUEST, STOPPED_BY_GUEST, ER | CE | XR),
	R(RESTORING, EXIT_CRASH, CRASHED, ER | SE | XR),
	R(RESTORING, OBSERVED_GONE, CRASHED, ER | SE),
	R(RESTORING, FORGET, ABSENT, CP),
};
#define NALLOWED ((int)(sizeof(allowed) / sizeof(allowed[0])))

static const struct row *find_row(enum mq_phase from, enum mq_phase_event ev)
{
	const struct row *found = NULL;
	for (int i = 0; i < NALLOWED; i++) {
		if (allowed[i].from == from && allowed[i].ev == ev) {
			ck_assert_msg(!found, "test table lists %d/%d twice", (int)from, (int)ev);
			found = &allowed[i];
		}
	}
	return found;
}

/* A context carrying everything any transition may need. */
static struct mq_phase_ctx full_ctx(void)
{
	struct mq_phase_ctx c = {
		.pid = 4242,
		.start_time = 777,
		.started_at = 1000,
		.qmp_path = "/run/maqet/web/qmp.sock",
		.accel = "kvm",
		.error = "boom",
		.exit_reason = "guest powered off (guest-shutdown)",
		.resume_phase = MQ_PHASE_RUNNING,
	};
	return c;
}

static const struct mq_phase_step sentinel = { .next = MQ_PHASE_RESTORING, .effects = 0xdead };

static void assert_untouched(const struct mq_phase_step *s)
{
	ck_assert_int_eq(s->next, sentinel.next);
	ck_assert_uint_eq(s->effects, sentinel.effects);
}

static void assert_einval(enum mq_phase from, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
			  const char *want_msg)
{
	struct mq_phase_step step = sentinel;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_phase_transition(from, ev, ctx, &step, &err), -EINVAL);
	assert_untouched(&step);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, EINVAL);
	ck_assert_msg(strcmp(err->msg, want_msg) == 0, "%s / %s: got '%s', want '%s'", want_phase_name(from),
		      event_names[ev], err->msg, want_msg);
	mq_error_free(err);
	/* err may be NULL */
	step = sentinel;
	ck_assert_int_eq(mq_phase_transition(from, ev, ctx, &step, NULL), -EINVAL);
	assert_untouched(&step);
}

/* One (phase, event) pair per iteration: the whole table. */
START_TEST(test_table_pair)
{
	enum mq_phase from = (enum mq_phase)(_i / NEV);
	enum mq_phase_event ev = (enum mq_phase_event)(_i % NEV);
	const char *pn = want_phase_name(from), *en = event_names[ev];
	const struct row *r = find_row(from, ev);
	struct mq_phase_ctx ctx = full_ctx();
	char msg[256];

	if (!r) {
		snprintf(msg, sizeof(msg), "invalid transition: '%s' in phase '%s'", en, pn);
		assert_einval(from, ev, &ctx, msg);
		assert_einval(from, ev, NULL, msg);
		return;
	}

	if (!r->back) {
		struct mq_phase_step step = sentinel;
		struct mq_error *err = NULL;
		ck_assert_msg(mq_phase_transition(from, ev, &ctx, &step, &err) == 0, "%s / %s: %s", pn, en,
			      err ? err->msg : "?");
		ck_assert_ptr_null(err);
		ck_assert_msg(step.next == r->to, "%s / %s: next %s, want %s", pn, en, want_phase_name(step.next),
			      want_phase_name(r->to));
		ck_assert_msg(step.effects == r->fx, "%s / %s: effects %#x, want %#x", pn, en, step.effects, r->fx);
		/* the resume phase is ignored where it is not used */
		ctx.resume_phase = MQ_PHASE_ABSENT;
		step = sentinel;
		ck_assert_int_eq(mq_phase_transition(from, ev, &ctx, &step, NULL), 0);
		ck_assert_int_eq(step.next, r->to);
	} else {
		/* every phase as the resume phase (and one out of range) */
		for (int b = 0; b <= NPHASE; b++) {
			ctx.resume_phase = (enum mq_phase)b;
			if (b < NPHASE && (r->back & (1u << b))) {
				struct mq_phase_step step = sentinel;
				ck_assert_int_eq(mq_phase_transition(from, ev, &ctx, &step, NULL), 0);
				ck_assert_int_eq(step.next, (enum mq_phase)b);
				ck_assert_uint_eq(step.effects, r->fx);
			} else {
				snprintf(msg, sizeof(msg), "invalid transition: '%s' in phase '%s' cannot return to phase '%s'",
					 en, pn, b < NPHASE ? want_phase_name((enum mq_phase)b) : "unknown");
				assert_einval(from, ev, &ctx, msg);
			}
		}
		ctx.resume_phase = MQ_PHASE_RUNNING;
		snprintf(msg, sizeof(msg), "invalid transition: '%s' in phase '%s' needs the phase to return to", en, pn);
		assert_einval(from, ev, NULL, msg);
	}

	/* reset_failures adds reset-failures to start-ok, and to nothing else */
	{
		struct mq_phase_ctx c = full_ctx();
		c.reset_failures = true;
		if (r->back)
			c.resume_phase = (enum mq_phase)__builtin_ctz(r->back);
		struct mq_phase_step step = sentinel;
		ck_assert_int_eq(mq_phase_transition(from, ev, &c, &step, NULL), 0);
		unsigned want = r->fx | (from == MQ_PHASE_STARTING && ev == MQ_PHASE_EV_START_OK ? RF : 0);
		ck_assert_msg(step.effects == want, "%s / %s with reset_failures: effects %#x, want %#x", pn, en,
			      step.effects, want);
	}

	/* what the effects need from the context */
	if (r->fx & SP) {
		snprintf(msg, sizeof(msg), "invalid transition: '%s' needs the process's pid and start time", en);
		struct mq_phase_ctx c = full_ctx();
		c.pid = 0;
		assert_einval(from, ev, &c, msg);
		c = full_ctx();
		c.pid = -5;
		assert_einval(from, ev, &c, msg);
		c = full_ctx();
		c.start_time = 0;
		assert_einval(from, ev, &c, msg);
	}
	if (r->fx & SE) {
		snprintf(msg, sizeof(msg), "invalid transition: '%s' needs an error message", en);
		struct mq_phase_ctx c = full_ctx();
		c.error = NULL;
		if (r->back)
			c.resume_phase = (enum mq_phase)__builtin_ctz(r->back);
		assert_einval(from, ev, &c, msg);
		c.error = "";
		assert_einval(from, ev, &c, msg);
	}
	if (r->fx & XR) {
		snprintf(msg, sizeof(msg), "invalid transition: '%s' needs an exit reason", en);
		struct mq_phase_ctx c = full_ctx();
		c.exit_reason = NULL;
		assert_einval(from, ev, &c, msg);
		c.exit_reason = "";
		assert_einval(from, ev, &c, msg);
	}
	if (!(r->fx & (SP | SE | XR)) && !r->back) {
		/* needs nothing: a NULL context will do */
		struct mq_phase_step step = sentinel;
		ck_assert_int_eq(mq_phase_transition(from, ev, NULL, &step, NULL), 0);
		ck_assert_int_eq(step.next, r->to);
		ck_assert_uint_eq(step.effects, r->fx);
	}
}
END_TEST

/* The test's table has no row outside the enums and no unknown effect bit. */
START_TEST(test_expected_table_sane)
{
	for (int i = 0; i < NALLOWED; i++) {
		ck_assert_int_lt(allowed[i].from, NPHASE);
		ck_assert_int_lt(allowed[i].ev, NEV);
		ck_assert_uint_eq(allowed[i].fx & ~(SP | CP | ER | SE | CE | XR | CB | RF), 0);
		ck_assert_ptr_eq(find_row(allowed[i].from, allowed[i].ev), &allowed[i]);
	}
}
END_TEST

START_TEST(test_out_of_range)
{
	struct mq_phase_ctx ctx = full_ctx();
	char msg[64];
	snprintf(msg, sizeof(msg), "invalid transition: unknown phase %d", NPHASE);
	assert_einval(MQ_PHASE__COUNT, MQ_PHASE_EV_FORGET, &ctx, msg);
	snprintf(msg, sizeof(msg), "invalid transition: unknown event %d", NEV);
	assert_einval(MQ_PHASE_RUNNING, MQ_PHASE_EV__COUNT, &ctx, msg);
}
END_TEST

/* Sequences the current code performs, end to end. */
static enum mq_phase walk(enum mq_phase p, const enum mq_phase_event *evs, size_t n, const struct mq_phase_ctx *c)
{
	for (size_t i = 0; i < n; i++) {
		struct mq_phase_step s;
		struct mq_error *err = NULL;
		ck_assert_msg(mq_phase_transition(p, evs[i], c, &s, &err) == 0, "%s", err ? err->msg : "?");
		p = s.next;
	}
	return p;
}

START_TEST(test_sequences)
{
	struct mq_phase_ctx c = full_ctx();
	/* create + start */
	enum mq_phase_event create[] = { E(RECORD), E(START_BEGIN), E(START_OK) };
	ck_assert_int_eq(walk(PH(ABSENT), create, 3, &c), PH(RUNNING));
	/* restart = stop then start */
	enum mq_phase_event restart[] = { E(STOP_BEGIN), E(STOP_OK), E(START_BEGIN), E(START_OK) };
	ck_assert_int_eq(walk(PH(RUNNING), restart, 4, &c), PH(RUNNING));
	/* a failed stop leaves the process up, where it was */
	c.resume_phase = PH(PAUSED);
	enum mq_phase_event failstop[] = { E(PAUSE), E(STOP_BEGIN), E(STOP_FAIL) };
	ck_assert_int_eq(walk(PH(RUNNING), failstop, 3, &c), PH(PAUSED));
	/* crash detected by a liveness check, then restarted by the watch */
	enum mq_phase_event crash[] = { E(OBSERVED_GONE), E(START_BEGIN), E(START_FAIL), E(CRASH_LOOP), E(START_BEGIN),
					E(START_OK) };
	ck_assert_int_eq(walk(PH(RUNNING), crash, 6, &c), PH(RUNNING));
	/* `maqet stop` of a crashed VM, then `maqet rm` */
	enum mq_phase_event stopcrashed[] = { E(EXIT_CRASH), E(STOP_OK), E(FORGET) };
	ck_assert_int_eq(walk(PH(RUNNING), stopcrashed, 3, &c), PH(ABSENT));
	/* live snapshot of a paused VM returns to paused; offline of a stopped one to stopped */
	c.resume_phase = PH(PAUSED);
	enum mq_phase_event snap[] = { E(SNAPSHOT_BEGIN), E(SNAPSHOT_END) };
	ck_assert_int_eq(walk(PH(PAUSED), snap, 2, &c), PH(PAUSED));
	c.resume_phase = PH(STOPPED);
	enum mq_phase_event restore[] = { E(RESTORE_BEGIN), E(RESTORE_END) };
	ck_assert_int_eq(walk(PH(STOPPED), restore, 2, &c), PH(STOPPED));
	/* a QEMU that came up although its start was interrupted is adopted */
	enum mq_phase_event adopt[] = { E(START_BEGIN), E(OBSERVED_GONE), E(ADOPT) };
	ck_assert_int_eq(walk(PH(CRASHED), adopt, 3, &c), PH(RUNNING));
	/* issue 7 item 1: the pid is recorded as soon as QEMU exists, the phase
	 * stays starting; the next maqet adopts it (or it comes up) */
	enum mq_phase_event spawned[] = { E(START_BEGIN), E(SPAWNED), E(START_OK) };
	ck_assert_int_eq(walk(PH(STOPPED), spawned, 3, &c), PH(RUNNING));
	enum mq_phase_event spawned_adopt[] = { E(START_BEGIN), E(SPAWNED), E(START_BEGIN), E(ADOPT) };
	ck_assert_int_eq(walk(PH(CREATED), spawned_adopt, 4, &c), PH(RUNNING));
}
END_TEST

/* --- mq_phase_apply ---------------------------------------------------------------- */

/* A record in phase p with every field set to something recognisable. */
static struct mq_vm_record *mkrec(enum mq_phase p)
{
	struct mq_vm_record *r = mq_vm_record_new();
	mq_vm_record_set(&r->name, "web");
	mq_vm_record_set(&r->source, "/srv/vms");
	mq_vm_record_set(&r->spec_json, "{}");
	mq_vm_record_set(&r->spec_hash, "abc");
	mq_vm_record_set(&r->desired, "running");
	mq_vm_record_set(&r->status, p == MQ_PHASE_ABSENT ? NULL : want_phase_name(p));
	r->pid = 11;
	r->start_time = 22;
	mq_vm_record_set(&r->qmp_path, "/old/qmp");
	mq_vm_record_set(&r->accel, "tcg");
	r->hold = true;
	mq_vm_record_set(&r->last_error, "old error");
	r->created_at = 100;
	r->updated_at = 200;
	r->started_at = 300;
	r->restart_count = 3;
	r->backoff_until = 400;
	mq_vm_record_set(&r->exit_reason, "old reason");
	return r;
}

static void assert_str_eq_null(const char *a, const char *b, const char *what)
{
	if (!a || !b)
		ck_assert_msg(a == b, "%s: '%s' vs '%s'", what, a ? a : "(null)", b ? b : "(null)");
	else
		ck_assert_msg(strcmp(a, b) == 0, "%s: '%s' vs '%s'", what, a, b);
}

static void assert_same_record(const struct mq_vm_record *a, const struct mq_vm_record *b)
{
	assert_str_eq_null(a->name, b->name, "name");
	assert_str_eq_null(a->source, b->source, "source");
	assert_str_eq_null(a->spec_json, b->spec_json, "spec_json");
	assert_str_eq_null(a->spec_hash, b->spec_hash, "spec_hash");
	assert_str_eq_null(a->desired, b->desired, "desired");
	assert_str_eq_null(a->status, b->status, "status");
	ck_assert_int_eq(a->pid, b->pid);
	ck_assert_uint_eq(a->start_time, b->start_time);
	assert_str_eq_null(a->qmp_path, b->qmp_path, "qmp_path");
	assert_str_eq_null(a->accel, b->accel, "accel");
	ck_assert_int_eq(a->hold, b->hold);
	assert_str_eq_null(a->last_error, b->last_error, "last_error");
	ck_assert_int_eq(a->created_at, b->created_at);
	ck_assert_int_eq(a->updated_at, b->updated_at);
	ck_assert_int_eq(a->started_at, b->started_at);
	ck_assert_int_eq(a->restart_count, b->restart_count);
	ck_assert_int_eq(a->backoff_until, b->backoff_until);
	assert_str_eq_null(a->exit_reason, b->exit_reason, "exit_reason");
}

/* Every allowed row applied to a record: the status and each field as its
 * effects say, every other field as it was. */
START_TEST(test_apply_row)
{
	const struct row *r = &allowed[_i];
	struct mq_phase_ctx ctx = full_ctx();
	enum mq_phase to = r->to;
	if (r->back) {
		to = (enum mq_phase)__builtin_ctz(r->back);
		ctx.resume_phase = to;
	}
	struct mq_vm_record *rec = mkrec(r->from);
	struct mq_vm_record *want = mkrec(to);
	struct mq_error *err = NULL;
	ck_assert_msg(mq_phase_apply(rec, r->ev, &ctx, &err) == 0, "%s", err ? err->msg : "?");
	ck_assert_ptr_null(err);

	if (r->fx & CP) {
		want->pid = 0;
		want->start_time = 0;
		want->started_at = 0;
	}
	if (r->fx & SP) {
		want->pid = 4242;
		want->start_time = 777;
		want->started_at = 1000;
		mq_vm_record_set(&want->qmp_path, "/run/maqet/web/qmp.sock");
		mq_vm_record_set(&want->accel, "kvm");
	}
	if (r->fx & ER)
		want->started_at = 0;
	if (r->fx & CE)
		mq_vm_record_set(&want->last_error, NULL);
	if (r->fx & SE)
		mq_vm_record_set(&want->last_error, "boom");
	if (r->fx & XR)
		mq_vm_record_set(&want->exit_reason, "guest powered off (guest-shutdown)");
	if (r->fx & CB)
		want->backoff_until = 0;
	assert_same_record(rec, want);
	mq_vm_record_free(rec);
	mq_vm_record_free(want);
}
END_TEST

/* Every forbidden pair leaves the record exactly as it was. */
START_TEST(test_apply_forbidden_untouched)
{
	enum mq_phase from = (enum mq_phase)(_i / NEV);
	enum mq_phase_event ev = (enum mq_phase_event)(_i % NEV);
	if (find_row(from, ev))
		return;
	struct mq_phase_ctx ctx = full_ctx();
	struct mq_vm_record *rec = mkrec(from);
	struct mq_vm_record *orig = mkrec(from);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_phase_apply(rec, ev, &ctx, &err), -EINVAL);
	char want[256];
	snprintf(want, sizeof(want), "invalid transition of vm 'web': '%s' in phase '%s'", event_names[ev],
		 want_phase_name(from));
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err->msg, want);
	mq_error_free(err);
	assert_same_record(rec, orig);
	ck_assert_int_eq(mq_phase_apply(rec, ev, &ctx, NULL), -EINVAL);
	assert_same_record(rec, orig);
	mq_vm_record_free(rec);
	mq_vm_record_free(orig);
}
END_TEST

START_TEST(test_apply_fresh_record)
{
	struct mq_vm_record *rec = mq_vm_record_new();
	mq_vm_record_set(&rec->name, "db");
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_RECORD, NULL, NULL), 0);
	ck_assert_str_eq(rec->status, "created");
	ck_assert_int_eq(rec->pid, 0);
	/* recorded once: a second record is a bug */
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_RECORD, NULL, &err), -EINVAL);
	ck_assert_str_eq(err->msg, "invalid transition of vm 'db': 'record' in phase 'created'");
	mq_error_free(err);
	ck_assert_str_eq(rec->status, "created");
	mq_vm_record_free(rec);
}
END_TEST

START_TEST(test_apply_start_ok_details)
{
	/* started_at 0 = now; qmp_path / accel NULL = keep; reset_failures resets */
	struct mq_vm_record *rec = mkrec(MQ_PHASE_STARTING);
	struct mq_phase_ctx ctx = { .pid = 99, .start_time = 5, .reset_failures = true };
	int64_t before = mq_now_ms();
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_START_OK, &ctx, NULL), 0);
	int64_t after = mq_now_ms();
	ck_assert_str_eq(rec->status, "running");
	ck_assert_int_eq(rec->pid, 99);
	ck_assert_uint_eq(rec->start_time, 5);
	ck_assert_int_ge(rec->started_at, before);
	ck_assert_int_le(rec->started_at, after);
	ck_assert_str_eq(rec->qmp_path, "/old/qmp");
	ck_assert_str_eq(rec->accel, "tcg");
	ck_assert_ptr_null(rec->last_error);
	ck_assert_int_eq(rec->restart_count, 0);
	ck_assert_int_eq(rec->backoff_until, 0);
	ck_assert_str_eq(rec->exit_reason, "old reason"); /* kept: the last exit's reason */
	mq_vm_record_free(rec);

	/* without reset_failures the failure count survives a start */
	rec = mkrec(MQ_PHASE_STARTING);
	ctx.reset_failures = false;
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_START_OK, &ctx, NULL), 0);
	ck_assert_int_eq(rec->restart_count, 3);
	ck_assert_int_eq(rec->backoff_until, 0);
	mq_vm_record_free(rec);
}
END_TEST

START_TEST(test_apply_exit_keeps_identity)
{
	struct mq_vm_record *rec = mkrec(MQ_PHASE_RUNNING);
	struct mq_phase_ctx ctx = { .error = "killed from outside (host-signal)",
				    .exit_reason = "killed from outside (host-signal)" };
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_EXIT_CRASH, &ctx, NULL), 0);
	ck_assert_str_eq(rec->status, "crashed");
	ck_assert_int_eq(rec->pid, 11);
	ck_assert_uint_eq(rec->start_time, 22);
	ck_assert_int_eq(rec->started_at, 0);
	ck_assert_str_eq(rec->last_error, "killed from outside (host-signal)");
	ck_assert_str_eq(rec->exit_reason, "killed from outside (host-signal)");
	ck_assert_int_eq(rec->restart_count, 3); /* counting is the restart policy's */
	mq_vm_record_free(rec);
}
END_TEST

START_TEST(test_apply_forget_and_bad_status)
{
	struct mq_vm_record *rec = mkrec(MQ_PHASE_CRASHED);
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_FORGET, NULL, NULL), 0);
	ck_assert_ptr_null(rec->status);
	ck_assert_int_eq(rec->pid, 0);
	mq_vm_record_free(rec);

	rec = mkrec(MQ_PHASE_RUNNING);
	mq_vm_record_set(&rec->status, "zombie");
	struct mq_vm_record *orig = mq_vm_record_dup(rec);
	struct mq_error *err = NULL;
	struct mq_phase_ctx ctx = full_ctx();
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_STOP_BEGIN, &ctx, &err), -EINVAL);
	ck_assert_str_eq(err->msg, "vm 'web': unknown phase 'zombie'");
	mq_error_free(err);
	assert_same_record(rec, orig);
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_STOP_BEGIN, &ctx, NULL), -EINVAL);
	assert_same_record(rec, orig);
	mq_vm_record_free(orig);
	mq_vm_record_free(rec);
}
END_TEST

START_TEST(test_apply_missing_ctx_untouched)
{
	/* a valid pair whose context lacks what it needs changes nothing */
	struct mq_vm_record *rec = mkrec(MQ_PHASE_STOPPING);
	struct mq_vm_record *orig = mq_vm_record_dup(rec);
	struct mq_phase_ctx ctx = full_ctx();
	ctx.resume_phase = MQ_PHASE_STOPPED;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_STOP_FAIL, &ctx, &err), -EINVAL);
	ck_assert_str_eq(err->msg,
			 "invalid transition of vm 'web': 'stop-fail' in phase 'stopping' cannot return to phase 'stopped'");
	mq_error_free(err);
	assert_same_record(rec, orig);
	ctx.resume_phase = MQ_PHASE_RUNNING;
	ctx.error = NULL;
	err = NULL;
	ck_assert_int_eq(mq_phase_apply(rec, MQ_PHASE_EV_STOP_FAIL, &ctx, &err), -EINVAL);
	ck_assert_str_eq(err->msg, "invalid transition of vm 'web': 'stop-fail' needs an error message");
	mq_error_free(err);
	assert_same_record(rec, orig);
	mq_vm_record_free(orig);
	mq_vm_record_free(rec);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("phase");
	TCase *tc = tcase_create("names");
	tcase_add_loop_test(tc, test_phase_names, 0, (int)(sizeof(phases) / sizeof(phases[0])));
	tcase_add_loop_test(tc, test_event_names, 0, NEV);
	tcase_add_test(tc, test_names_out_of_range);
	tcase_add_test(tc, test_store_status_strings);
	tcase_add_test(tc, test_parse_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_add_test(tc, test_expected_table_sane);
	tcase_add_loop_test(tc, test_table_pair, 0, NPHASE * NEV);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_sequences);
	suite_add_tcase(s, tc);

	tc = tcase_create("apply");
	tcase_add_loop_test(tc, test_apply_row, 0, NALLOWED);
	tcase_add_loop_test(tc, test_apply_forbidden_untouched, 0, NPHASE * NEV);
	tcase_add_test(tc, test_apply_fresh_record);
	tcase_add_test(tc, test_apply_start_ok_details);
	tcase_add_test(tc, test_apply_exit_keeps_identity);
	tcase_add_test(tc, test_apply_forget_and_bad_status);
	tcase_add_test(tc, test_apply_missing_ctx_untouched);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
