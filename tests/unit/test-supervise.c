/* Unit tests for reconciler/supervise: exit classification and its human
 * description, the restart-policy table, the backoff schedule and the
 * crash-loop window. */
#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/supervise.h"
#include "specs/spec.h"
#include "tests/unit/check-run.h"

#define T true
#define F false

/* --- classification -------------------------------------------------------- */

struct class_row {
	bool intended, saw_panic, saw_shutdown, guest;
	const char *reason;
	enum mq_exit_kind want;
	const char *describe;
};

static const struct class_row class_table[] = {
	/* intended wins over everything */
	{ T, F, F, F, "", MQ_EXIT_INTENDED, "stopped by maqet" },
	{ T, F, T, T, "guest-shutdown", MQ_EXIT_INTENDED, "stopped by maqet" },
	{ T, F, T, F, "host-signal", MQ_EXIT_INTENDED, "stopped by maqet" },
	{ T, F, T, F, "host-qmp-quit", MQ_EXIT_INTENDED, "stopped by maqet" },
	{ T, T, F, F, "", MQ_EXIT_INTENDED, "stopped by maqet" },
	{ T, T, T, T, "guest-panic", MQ_EXIT_INTENDED, "stopped by maqet" },
	/* panic is a crash, whatever shutdown followed */
	{ F, T, F, F, "", MQ_EXIT_CRASH, "guest panicked" },
	{ F, T, T, T, "guest-shutdown", MQ_EXIT_CRASH, "guest panicked" },
	{ F, T, T, T, "guest-panic", MQ_EXIT_CRASH, "guest panicked" },
	{ F, F, T, T, "guest-panic", MQ_EXIT_CRASH, "guest panicked" }, /* -action panic=shutdown */
	/* guest-initiated power-off */
	{ F, F, T, T, "guest-shutdown", MQ_EXIT_GUEST_POWEROFF, "guest powered off (guest-shutdown)" },
	{ F, F, T, T, "guest-reset", MQ_EXIT_GUEST_POWEROFF, "guest powered off (guest-reset)" },
	/* a guest reason without guest=true, or guest=true with a host reason */
	{ F, F, T, F, "guest-shutdown", MQ_EXIT_CRASH, "qemu shut down (guest-shutdown)" },
	{ F, F, T, T, "host-signal", MQ_EXIT_CRASH, "killed from outside (host-signal)" },
	{ F, F, T, T, "guest-", MQ_EXIT_CRASH, "qemu shut down (guest-)" },
	{ F, F, T, T, "", MQ_EXIT_CRASH, "qemu shut down without a reason" },
	/* shut down from outside, not by maqet */
	{ F, F, T, F, "host-signal", MQ_EXIT_CRASH, "killed from outside (host-signal)" },
	{ F, F, T, F, "host-qmp-quit", MQ_EXIT_CRASH, "quit over qmp by someone else (host-qmp-quit)" },
	{ F, F, T, F, "host-ui", MQ_EXIT_CRASH, "closed from the qemu user interface (host-ui)" },
	{ F, F, T, F, "host-error", MQ_EXIT_CRASH, "qemu stopped on an error (host-error)" },
	{ F, F, T, F, "", MQ_EXIT_CRASH, "qemu shut down without a reason" },
	/* no SHUTDOWN event at all: SIGKILL or a QEMU error exit */
	{ F, F, F, F, "", MQ_EXIT_CRASH, "qemu exited without a shutdown event (killed or crashed)" },
	{ F, F, F, T, "guest-shutdown", MQ_EXIT_CRASH, "qemu exited without a shutdown event (killed or crashed)" },
};

static struct mq_exit_info mkinfo(const struct class_row *r)
{
	struct mq_exit_info e;
	memset(&e, 0, sizeof(e));
	e.intended = r->intended;
	e.saw_panic = r->saw_panic;
	e.saw_shutdown = r->saw_shutdown;
	e.shutdown_guest = r->guest;
	snprintf(e.reason, sizeof(e.reason), "%s", r->reason);
	return e;
}

START_TEST(test_classify_table)
{
	const struct class_row *r = &class_table[_i];
	struct mq_exit_info e = mkinfo(r);
	enum mq_exit_kind k = mq_classify_exit(&e);
	ck_assert_msg(k == r->want, "row %d (intended=%d panic=%d shutdown=%d guest=%d reason='%s'): got %s, want %s",
		      _i, r->intended, r->saw_panic, r->saw_shutdown, r->guest, r->reason, mq_exit_kind_str(k),
		      mq_exit_kind_str(r->want));
	char *d = mq_exit_describe(&e);
	ck_assert_ptr_nonnull(d);
	ck_assert_msg(strcmp(d, r->describe) == 0, "row %d: describe '%s', want '%s'", _i, d, r->describe);
	free(d);
}
END_TEST

START_TEST(test_kind_str)
{
	ck_assert_str_eq(mq_exit_kind_str(MQ_EXIT_INTENDED), "intended");
	ck_assert_str_eq(mq_exit_kind_str(MQ_EXIT_GUEST_POWEROFF), "guest-poweroff");
	ck_assert_str_eq(mq_exit_kind_str(MQ_EXIT_CRASH), "crash");
}
END_TEST

/* A reason that fills the whole array without a NUL must not be over-read:
 * exactly its 48 bytes end up in the description. */
START_TEST(test_unterminated_reason)
{
	struct mq_exit_info e;
	memset(&e, 0, sizeof(e));
	e.saw_shutdown = true;
	e.shutdown_guest = true;
	memset(e.reason, 'x', sizeof(e.reason));
	memcpy(e.reason, "guest-", 6);
	ck_assert_int_eq(mq_classify_exit(&e), MQ_EXIT_GUEST_POWEROFF);
	char *d = mq_exit_describe(&e);
	ck_assert_uint_eq(strlen(d), strlen("guest powered off ()") + sizeof(e.reason));
	free(d);
}
END_TEST

/* --- policy ------------------------------------------------------------------ */

struct policy_row {
	enum mq_restart policy;
	enum mq_exit_kind kind;
	bool want;
};

static const struct policy_row policy_table[] = {
	{ MQ_RESTART_NEVER, MQ_EXIT_INTENDED, F },
	{ MQ_RESTART_NEVER, MQ_EXIT_GUEST_POWEROFF, F },
	{ MQ_RESTART_NEVER, MQ_EXIT_CRASH, F },
	{ MQ_RESTART_ALWAYS, MQ_EXIT_INTENDED, F },
	{ MQ_RESTART_ALWAYS, MQ_EXIT_GUEST_POWEROFF, T },
	{ MQ_RESTART_ALWAYS, MQ_EXIT_CRASH, T },
	{ MQ_RESTART_ON_FAILURE, MQ_EXIT_INTENDED, F },
	{ MQ_RESTART_ON_FAILURE, MQ_EXIT_GUEST_POWEROFF, F },
	{ MQ_RESTART_ON_FAILURE, MQ_EXIT_CRASH, T },
};

START_TEST(test_policy_table)
{
	const struct policy_row *r = &policy_table[_i];
	ck_assert_msg(mq_policy_restarts(r->policy, r->kind) == r->want, "policy %s after %s: want %s",
		      mq_restart_str(r->policy), mq_exit_kind_str(r->kind), r->want ? "restart" : "no restart");
}
END_TEST

/* --- backoff schedule ---------------------------------------------------------- */

struct delay_row {
	int n;
	int64_t want;
};

static const struct delay_row default_delays[] = {
	{ INT_MIN, 0 }, { -1, 0 }, { 0, 0 }, { 1, 0 },
	{ 2, 1000 }, { 3, 2000 }, { 4, 4000 }, { 5, 8000 }, { 6, 16000 }, { 7, 32000 },
	{ 8, 64000 }, { 9, 128000 }, { 10, 256000 },
	{ 11, 300000 }, { 12, 300000 }, { 64, 300000 }, { 65, 300000 }, { 1000, 300000 },
	{ INT_MAX, 300000 },
};

START_TEST(test_backoff_default_schedule)
{
	struct mq_backoff_cfg c;
	mq_backoff_cfg_default(&c);
	const struct delay_row *r = &default_delays[_i];
	int64_t d = mq_backoff_delay(&c, r->n);
	ck_assert_msg(d == r->want, "delay(%d) = %lld, want %lld", r->n, (long long)d, (long long)r->want);
}
END_TEST

START_TEST(test_backoff_cfg_default)
{
	struct mq_backoff_cfg c;
	memset(&c, 0xa5, sizeof(c));
	mq_backoff_cfg_default(&c);
	ck_assert_int_eq(c.initial_ms, 1000);
	ck_assert_int_eq(c.max_ms, 300000);
	ck_assert_int_eq(c.stable_ms, 600000);
	ck_assert_int_eq(c.limit, 10);
}
END_TEST

static const struct mq_backoff_cfg short_cfg = { .initial_ms = 50, .max_ms = 400, .stable_ms = 1000, .limit = 4 };

static const struct delay_row short_delays[] = {
	{ 1, 0 }, { 2, 50 }, { 3, 100 }, { 4, 200 }, { 5, 400 }, { 6, 400 }, { 100, 400 }, { INT_MAX, 400 },
};

START_TEST(test_backoff_short_schedule)
{
	const struct delay_row *r = &short_delays[_i];
	int64_t d = mq_backoff_delay(&short_cfg, r->n);
	ck_assert_msg(d == r->want, "delay(%d) = %lld, want %lld", r->n, (long long)d, (long long)r->want);
}
END_TEST

/* Large initial/max values near INT64_MAX must cap, not overflow (UBSan). */
START_TEST(test_backoff_no_overflow)
{
	struct mq_backoff_cfg c = { .initial_ms = INT64_MAX / 3, .max_ms = INT64_MAX, .stable_ms = 1, .limit = 10 };
	ck_assert_int_eq(mq_backoff_delay(&c, 2), INT64_MAX / 3);
	ck_assert_int_eq(mq_backoff_delay(&c, 3), (INT64_MAX / 3) * 2);
	ck_assert_int_eq(mq_backoff_delay(&c, 4), INT64_MAX);
	ck_assert_int_eq(mq_backoff_delay(&c, INT_MAX), INT64_MAX);

	struct mq_backoff_cfg big = { .initial_ms = 500000, .max_ms = 300000, .stable_ms = 1, .limit = 10 };
	ck_assert_int_eq(mq_backoff_delay(&big, 1), 0);
	ck_assert_int_eq(mq_backoff_delay(&big, 2), 300000); /* initial above the cap is capped */

	/* backoff_until saturates instead of wrapping */
	struct mq_backoff_state s = { 0 };
	mq_backoff_failure(&c, &s, INT64_MAX - 10, 0);
	mq_backoff_failure(&c, &s, INT64_MAX - 5, 0);
	ck_assert_int_eq(s.count, 2);
	ck_assert(!s.crash_loop);
	ck_assert_int_eq(s.backoff_until, INT64_MAX);
}
END_TEST

/* --- failure sequences ----------------------------------------------------------- */

#define T0 INT64_C(1700000000000) /* a plausible wall-clock ms */

/* 10 failures in quick succession (each start lasts 100 ms, or never comes
 * up): the schedule is 0, 1s, 2s, ... and crash-loop is declared exactly at
 * the 10th failure, not before. */
START_TEST(test_quick_failures_crash_loop_at_limit)
{
	struct mq_backoff_cfg c;
	mq_backoff_cfg_default(&c);
	struct mq_backoff_state s = { 0 };
	static const int64_t want_delay[] = { 0, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000 };
	int64_t now = T0;
	for (int i = 1; i <= 10; i++) {
		int64_t started_at = (i % 3 == 0) ? 0 : now - 100; /* sometimes the start itself failed */
		mq_backoff_failure(&c, &s, now, started_at);
		ck_assert_int_eq(s.count, i);
		if (i < 10) {
			ck_assert_msg(!s.crash_loop, "crash-loop declared early at failure %d", i);
			ck_assert_int_eq(s.backoff_until, now + want_delay[i - 1]);
			now = s.backoff_until + 100;
		} else {
			ck_assert_msg(s.crash_loop, "crash-loop not declared at failure %d", i);
			ck_assert_int_eq(s.backoff_until, 0);
		}
	}
}
END_TEST

/* A VM that ran for >= stable_ms before failing starts its count again: the
 * failure counts as the 1st (delay 0), even after a crash-loop. */
START_TEST(test_stable_run_resets_count)
{
	struct mq_backoff_cfg c;
	mq_backoff_cfg_default(&c);
	struct mq_backoff_state s = { 0 };
	int64_t now = T0;
	for (int i = 0; i < 5; i++) {
		mq_backoff_failure(&c, &s, now, now - 10);
		now += 1000000;
	}
	ck_assert_int_eq(s.count, 5);

	/* one ms short of stable: still counting */
	int64_t started = now;
	now = started + c.stable_ms - 1;
	mq_backoff_failure(&c, &s, now, started);
	ck_assert_int_eq(s.count, 6);
	ck_assert_int_eq(s.backoff_until, now + 16000);

	/* exactly stable_ms: count restarts at 1, restart immediately */
	started = now + 16000;
	now = started + c.stable_ms;
	mq_backoff_failure(&c, &s, now, started);
	ck_assert_int_eq(s.count, 1);
	ck_assert(!s.crash_loop);
	ck_assert_int_eq(s.backoff_until, now);

	/* a start that never came up (started_at = 0) never resets the count */
	s = (struct mq_backoff_state){ .count = 3 };
	mq_backoff_failure(&c, &s, now + 10 * c.stable_ms, 0);
	ck_assert_int_eq(s.count, 4);

	/* after a crash-loop, a long healthy run clears it */
	s = (struct mq_backoff_state){ .count = 10, .crash_loop = true };
	started = now;
	now = started + 2 * c.stable_ms;
	mq_backoff_failure(&c, &s, now, started);
	ck_assert_int_eq(s.count, 1);
	ck_assert(!s.crash_loop);
	ck_assert_int_eq(s.backoff_until, now);
}
END_TEST

START_TEST(test_short_cfg_sequence)
{
	struct mq_backoff_state s = { 0 };
	int64_t now = T0;

	mq_backoff_failure(&short_cfg, &s, now, now - 10);
	ck_assert_int_eq(s.count, 1);
	ck_assert(!s.crash_loop);
	ck_assert_int_eq(s.backoff_until, now);

	now += 20;
	mq_backoff_failure(&short_cfg, &s, now, now - 10);
	ck_assert_int_eq(s.count, 2);
	ck_assert_int_eq(s.backoff_until, now + 50);

	now += 999; /* ran 999 ms < stable 1000 */
	mq_backoff_failure(&short_cfg, &s, now, now - 999);
	ck_assert_int_eq(s.count, 3);
	ck_assert(!s.crash_loop);
	ck_assert_int_eq(s.backoff_until, now + 100);

	now += 200;
	mq_backoff_failure(&short_cfg, &s, now, 0);
	ck_assert_int_eq(s.count, 4);
	ck_assert(s.crash_loop);
	ck_assert_int_eq(s.backoff_until, 0);

	/* ran 1000 ms: fresh window */
	now += 5000;
	mq_backoff_failure(&short_cfg, &s, now, now - 1000);
	ck_assert_int_eq(s.count, 1);
	ck_assert(!s.crash_loop);
	ck_assert_int_eq(s.backoff_until, now);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("supervise");
	TCase *tc = tcase_create("classify");
	tcase_add_loop_test(tc, test_classify_table, 0, (int)(sizeof(class_table) / sizeof(class_table[0])));
	tcase_add_test(tc, test_kind_str);
	tcase_add_test(tc, test_unterminated_reason);
	suite_add_tcase(s, tc);

	tc = tcase_create("policy");
	tcase_add_loop_test(tc, test_policy_table, 0, (int)(sizeof(policy_table) / sizeof(policy_table[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("backoff");
	tcase_add_test(tc, test_backoff_cfg_default);
	tcase_add_loop_test(tc, test_backoff_default_schedule, 0,
			    (int)(sizeof(default_delays) / sizeof(default_delays[0])));
	tcase_add_loop_test(tc, test_backoff_short_schedule, 0, (int)(sizeof(short_delays) / sizeof(short_delays[0])));
	tcase_add_test(tc, test_backoff_no_overflow);
	tcase_add_test(tc, test_quick_failures_crash_loop_at_limit);
	tcase_add_test(tc, test_stable_run_resets_count);
	tcase_add_test(tc, test_short_cfg_sequence);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
