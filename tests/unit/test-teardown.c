/* test-teardown.c - waiting on the loop for exited processes to be torn
 * down (reconciler/teardown.c). */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/loop.h"
#include "reconciler/proc.h"
#include "reconciler/teardown.h"
#include "tests/unit/check-run.h"

static int calls;
static void count_cb(void *ud)
{
	(void)ud;
	calls++;
}

static struct mq_loop *L;
static struct mq_teardown *T;

static void setup(void)
{
	calls = 0;
	ck_assert_int_eq(mq_loop_new(&L, NULL), 0);
	T = mq_teardown_new(L, count_cb, NULL);
}

static void teardown(void)
{
	mq_teardown_free(T); /* accepts what a test freed already: NULL */
	mq_loop_free(L);
}

/* Turn the loop until cb has run `want` times or deadline_ms passed. */
static void run_until(struct mq_loop *l, int want, int deadline_ms)
{
	int64_t end = mq_mono_ms() + deadline_ms;
	while (calls < want && mq_mono_ms() < end)
		ck_assert_int_ge(mq_loop_run_once(l, 50, NULL), 0);
}

static pid_t child_sleeping(void)
{
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		pause();
		_exit(0);
	}
	return p;
}

START_TEST(test_live_process_then_exit)
{
	struct mq_loop *l = L;
	struct mq_teardown *t = T;
	pid_t p = child_sleeping();
	ck_assert_int_eq(mq_teardown_wait(t, p), 0);
	ck_assert_int_eq(mq_teardown_wait(t, p), 0); /* the same pid is not added twice */
	ck_assert_uint_eq(mq_teardown_count(t), 1);
	/* alive: nothing happens */
	ck_assert_int_ge(mq_loop_run_once(l, 100, NULL), 0);
	ck_assert_int_eq(calls, 0);
	kill(p, SIGKILL);
	run_until(l, 1, 5000);
	ck_assert_int_eq(calls, 1);
	ck_assert_uint_eq(mq_teardown_count(t), 0);
	/* a zombie counts as gone (the pidfd stays readable): it is not reaped yet */
	ck_assert_int_eq(mq_teardown_wait(t, p), 0);
	run_until(l, 2, 5000);
	ck_assert_int_eq(calls, 2);
	int st;
	ck_assert_int_eq(waitpid(p, &st, 0), p);
}
END_TEST

/* A pid with no process at all: cb after a short back-off that doubles on
 * every ask, never in a loop. */
START_TEST(test_gone_pid_backs_off)
{
	struct mq_loop *l = L;
	struct mq_teardown *t = T;
	pid_t p = child_sleeping();
	kill(p, SIGKILL);
	int st;
	ck_assert_int_eq(waitpid(p, &st, 0), p); /* reaped: pidfd_open fails */
	int64_t gaps[4];
	for (int i = 0; i < 4; i++) {
		int64_t t0 = mq_mono_ms();
		ck_assert_int_eq(mq_teardown_wait(t, p), 0);
		ck_assert_uint_eq(mq_teardown_count(t), 0);
		/* not synchronously */
		ck_assert_int_eq(calls, i);
		run_until(l, i + 1, 5000);
		ck_assert_int_eq(calls, i + 1);
		gaps[i] = mq_mono_ms() - t0;
	}
	/* 2, 4, 8, 16 ms: the fourth wait is at least 16 ms, the first well under */
	ck_assert_int_ge(gaps[3], 16);
	ck_assert_int_ge(gaps[3], gaps[0]);
	/* four more asks, then it gives up: not that process's teardown */
	for (int i = 4; i < 8; i++) {
		ck_assert_int_eq(mq_teardown_wait(t, p), 0);
		run_until(l, i + 1, 5000);
		ck_assert_int_eq(calls, i + 1);
	}
	ck_assert_int_eq(mq_teardown_wait(t, p), -ESRCH);
	ck_assert_int_ge(mq_loop_run_once(l, 300, NULL), 0);
	ck_assert_int_eq(calls, 8); /* no timer was armed */
}
END_TEST

/* Freed with waiters and a timer armed: nothing leaks, nothing fires. */
START_TEST(test_free_while_waiting)
{
	struct mq_loop *l = L;
	struct mq_teardown *t = T;
	pid_t p = child_sleeping();
	ck_assert_int_eq(mq_teardown_wait(t, p), 0);
	pid_t q = child_sleeping();
	kill(q, SIGKILL);
	int st;
	ck_assert_int_eq(waitpid(q, &st, 0), q);
	ck_assert_int_eq(mq_teardown_wait(t, q), 0);
	mq_teardown_free(t);
	T = NULL;
	kill(p, SIGKILL);
	ck_assert_int_eq(waitpid(p, &st, 0), p);
	ck_assert_int_ge(mq_loop_run_once(l, 100, NULL), 0);
	ck_assert_int_eq(calls, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("teardown");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_live_process_then_exit);
	tcase_add_test(tc, test_gone_pid_backs_off);
	tcase_add_test(tc, test_free_while_waiting);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
