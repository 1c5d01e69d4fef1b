/* Unit tests for reconciler/procexit: the kernel's process-exit events. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "reconciler/procexit.h"
#include "tests/unit/check-run.h"

static int fd = -1;

static pid_t spawn_sleeper(void)
{
	pid_t c = fork();
	if (c == 0) {
		signal(SIGTERM, SIG_DFL); /* Check's handler must not run in the child */
		pause();
		_exit(0);
	}
	return c;
}

/* Wait (bounded) until `pid` shows up in the exit events. */
static int wait_exit_event(pid_t pid, int timeout_ms)
{
	int64_t deadline = mq_mono_ms() + timeout_ms;
	while (mq_mono_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)(deadline - mq_mono_ms())) <= 0)
			break;
		pid_t pids[256];
		int n = mq_procexit_read(fd, pids, 256);
		ck_assert_int_ge(n, 0);
		for (int i = 0; i < n; i++)
			if (pids[i] == pid)
				return 0;
	}
	return -ETIMEDOUT;
}

START_TEST(test_leader_exit_reported)
{
	pid_t c = spawn_sleeper();
	ck_assert_int_gt(c, 0);
	uint64_t st;
	ck_assert_int_eq(mq_proc_stat(c, &st, NULL), 0);
	kill(c, SIGKILL);
	ck_assert_int_eq(wait_exit_event(c, 5000), 0);
	/* the event arrives while the child is still an unreaped zombie */
	struct mq_pidref ref = { c, st };
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_GONE);
	waitpid(c, NULL, 0);
}
END_TEST

START_TEST(test_live_process_not_reported)
{
	pid_t a = spawn_sleeper(), b = spawn_sleeper();
	kill(b, SIGKILL);
	ck_assert_int_eq(wait_exit_event(b, 5000), 0);
	waitpid(b, NULL, 0);
	/* a is alive: no event for it within a short window */
	ck_assert_int_eq(wait_exit_event(a, 200), -ETIMEDOUT);
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
}
END_TEST

START_TEST(test_read_empty_is_zero)
{
	pid_t pids[4];
	/* drain whatever the host produced, then a read with nothing pending is 0 */
	while (mq_procexit_read(fd, pids, 4) > 0)
		;
	int n = mq_procexit_read(fd, pids, 4);
	ck_assert_int_ge(n, 0);
	ck_assert_int_le(n, 4);
}
END_TEST

int main(void)
{
	fd = mq_procexit_open();
	if (fd == -EPERM || fd == -EPROTONOSUPPORT || fd == -EACCES) {
		/* no CAP_NET_ADMIN / no connector: maqet falls back to pidfds */
		return 77;
	}
	if (fd < 0)
		return 1;
	Suite *s = suite_create("procexit");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_leader_exit_reported);
	tcase_add_test(tc, test_live_process_not_reported);
	tcase_add_test(tc, test_read_empty_is_zero);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
