/* test-proc.c - process identity, liveness and pidfd signalling. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "util/parse.h"
#include "tests/unit/check-run.h"

/* In a forked child: drop the handlers inherited from Check (its SIGTERM
 * handler kills the whole process group) and unblock everything. */
static void child_reset(void)
{
	int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGALRM };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigset_t ss;
	sigemptyset(&ss);
	sigprocmask(SIG_SETMASK, &ss, NULL);
}

/* Fork a child that just waits for signals; returns once its handlers are
 * reset (so a signal cannot reach Check's inherited handler). */
static pid_t spawn_pauser(void)
{
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_reset();
		close(pfd[0]);
		close(pfd[1]); /* EOF tells the parent we are ready */
		for (;;)
			pause();
	}
	close(pfd[1]);
	char c;
	ck_assert_int_eq(read(pfd[0], &c, 1), 0);
	close(pfd[0]);
	return pid;
}

/* Read a small /proc file in one read() (sysctl files do not support reads
 * at a non-zero offset). */
static void read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ssize_t n = read(fd, buf, cap - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	close(fd);
}

static struct mq_pidref ref_of(pid_t pid)
{
	struct mq_pidref ref = { .pid = pid };
	ck_assert_int_eq(mq_proc_stat(pid, &ref.start_time, NULL), 0);
	return ref;
}

/* Wait (with a deadline) until pid is a zombie, without reaping it. */
static void wait_zombie(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	/* WNOWAIT: block until it has exited but leave it unreaped. */
	ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	ck_assert_int_eq(si.si_pid, pid);
	char st = 0;
	ck_assert_int_eq(mq_proc_stat(pid, NULL, &st), 0);
	ck_assert_int_eq(st, 'Z');
}

static void kill_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

START_TEST(own_pid_alive)
{
	struct mq_pidref me = ref_of(getpid());
	ck_assert_uint_gt(me.start_time, 0);
	ck_assert_uint_le(me.start_time, mq_proc_uptime_ticks());
	ck_assert_int_eq(mq_proc_check(&me), MQ_PROC_ALIVE);
	ck_assert_str_eq(mq_proc_state_str(MQ_PROC_ALIVE), "alive");
	ck_assert_str_eq(mq_proc_state_str(MQ_PROC_GONE), "gone");
	ck_assert_str_eq(mq_proc_state_str(MQ_PROC_OTHER), "other");
	char st = 0;
	ck_assert_int_eq(mq_proc_stat(getpid(), NULL, &st), 0);
	ck_assert(st == 'R' || st == 'S');
}
END_TEST

START_TEST(child_alive_kill_wait_gone)
{
	uint64_t before = mq_proc_uptime_ticks();
	pid_t pid = spawn_pauser();
	struct mq_pidref ref = ref_of(pid);
	uint64_t after = mq_proc_uptime_ticks();
	/* start time is in clock ticks since boot, taken around the fork */
	ck_assert_uint_ge(ref.start_time + 1, before);
	ck_assert_uint_le(ref.start_time, after + 1);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_ALIVE);

	ck_assert_int_eq(mq_proc_kill(&ref, SIGTERM), 0);
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 5000), 0);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_GONE);
	/* wait_exit reaped our child */
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	ck_assert_int_eq(mq_proc_kill(&ref, SIGTERM), -ESRCH);
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 100), 0);
}
END_TEST

START_TEST(zombie_is_gone_and_never_signalled)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(7);
	struct mq_pidref ref = { .pid = pid };
	/* start time is still readable for a zombie */
	wait_zombie(pid);
	ck_assert_int_eq(mq_proc_stat(pid, &ref.start_time, NULL), 0);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_GONE);
	ck_assert_int_eq(mq_pidref_open(&ref), -ESRCH);
	ck_assert_int_eq(mq_proc_kill(&ref, SIGKILL), -ESRCH);
	/* the exit status is still the original one */
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 7);
}
END_TEST

START_TEST(zombie_wait_exit_reaps)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	struct mq_pidref ref = { .pid = pid };
	ck_assert_int_eq(mq_proc_stat(pid, &ref.start_time, NULL), 0);
	wait_zombie(pid);
	int64_t t0 = mq_mono_ms();
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 5000), 0);
	ck_assert_int_lt(mq_mono_ms() - t0, 1000);
	ck_assert_int_eq(mq_proc_stat(pid, NULL, NULL), -ENOENT);
}
END_TEST

/* A zombie that is someone else's child (its parent does not reap) counts as
 * gone: wait_exit returns promptly instead of waiting for the reaper. */
START_TEST(foreign_zombie_wait_exit)
{
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t mid = fork();
	ck_assert_int_ge(mid, 0);
	if (mid == 0) {
		pid_t g = fork();
		if (g < 0)
			_exit(1);
		if (g == 0) {
			child_reset();
			for (;;)
				pause();
		}
		ssize_t w = write(pfd[1], &g, sizeof(g));
		(void)w;
		for (;;)
			pause(); /* never reaps g */
	}
	close(pfd[1]);
	pid_t g = 0;
	ck_assert_int_eq(read(pfd[0], &g, sizeof(g)), (ssize_t)sizeof(g));
	close(pfd[0]);
	struct mq_pidref ref = ref_of(g);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_ALIVE);
	ck_assert_int_eq(mq_proc_kill(&ref, SIGKILL), 0);
	int64_t t0 = mq_mono_ms();
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 5000), 0);
	ck_assert_int_lt(mq_mono_ms() - t0, 2000);
	char st = 0;
	ck_assert_int_eq(mq_proc_stat(g, NULL, &st), 0);
	ck_assert_int_eq(st, 'Z'); /* still there, unreaped by its parent */
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_GONE);
	ck_assert_int_eq(mq_proc_kill(&ref, SIGKILL), -ESRCH);
	kill_reap(mid);
}
END_TEST

START_TEST(reused_pid_is_other_and_not_signalled)
{
	pid_t pid = spawn_pauser();
	struct mq_pidref ref = ref_of(pid);
	struct mq_pidref stale = { .pid = pid, .start_time = ref.start_time - 1 };
	ck_assert_int_eq(mq_proc_check(&stale), MQ_PROC_OTHER);
	ck_assert_int_eq(mq_pidref_open(&stale), -ESTALE);
	ck_assert_int_eq(mq_proc_kill(&stale, SIGKILL), -ESTALE);
	ck_assert_int_eq(mq_proc_wait_exit(&stale, 100), -ESTALE);
	/* still alive: give a stray signal time to land, then check unreaped state */
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 200), -ETIMEDOUT);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_ALIVE);
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
	kill_reap(pid);
}
END_TEST

START_TEST(comm_with_spaces_and_parens)
{
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_reset();
		prctl(PR_SET_NAME, "a) b (c", 0, 0, 0);
		char c = 'x';
		ssize_t w = write(pfd[1], &c, 1);
		(void)w;
		for (;;)
			pause();
	}
	close(pfd[1]);
	char c;
	ck_assert_int_eq(read(pfd[0], &c, 1), 1);
	close(pfd[0]);

	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	read_small(path, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "(a) b (c)"));
	/* independent parse of field 22 from the same text */
	char *p = strrchr(buf, ')') + 2;
	for (int f = 3; f < 22; f++)
		p = strchr(p, ' ') + 1;
	char num[32];
	size_t len = strcspn(p, " ");
	memcpy(num, p, len);
	num[len] = '\0';
	uint64_t expect = 0;
	ck_assert_int_eq(mq_parse_u64(num, &expect), 0);

	uint64_t st_time = 0;
	char st = 0;
	ck_assert_int_eq(mq_proc_stat(pid, &st_time, &st), 0);
	ck_assert_uint_eq(st_time, expect);
	ck_assert(st == 'S' || st == 'R');
	struct mq_pidref ref = { pid, st_time };
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_ALIVE);
	kill_reap(pid);
}
END_TEST

START_TEST(nonexistent_pid_gone)
{
	char buf[64];
	read_small("/proc/sys/kernel/pid_max", buf, sizeof(buf));
	buf[strcspn(buf, "\n")] = '\0';
	uint64_t pid_max = 0;
	ck_assert_int_eq(mq_parse_u64(buf, &pid_max), 0);
	ck_assert_uint_lt(pid_max, (uint64_t)INT32_MAX);
	pid_t pid = (pid_t)(pid_max + 1);
	struct mq_pidref ref = { pid, 12345 };
	ck_assert_int_eq(mq_proc_stat(pid, NULL, NULL), -ENOENT);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_GONE);
	ck_assert_int_eq(mq_pidref_open(&ref), -ESRCH);
	ck_assert_int_eq(mq_proc_kill(&ref, SIGKILL), -ESRCH);
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 100), 0);

	/* a pid known dead: a reaped child */
	pid_t dead = fork();
	ck_assert_int_ge(dead, 0);
	if (dead == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(dead, NULL, 0), dead);
	struct mq_pidref dref = { dead, 1 };
	ck_assert(mq_proc_check(&dref) != MQ_PROC_ALIVE);

	/* invalid pids are never "alive" and never signalled */
	struct mq_pidref zero = { 0, 0 }, neg = { -1, 0 };
	ck_assert_int_eq(mq_proc_check(&zero), MQ_PROC_GONE);
	ck_assert_int_eq(mq_proc_kill(&zero, SIGKILL), -ESRCH);
	ck_assert_int_eq(mq_proc_kill(&neg, SIGKILL), -ESRCH);
	ck_assert_int_eq(mq_proc_stat(0, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(wait_exit_timeout)
{
	pid_t pid = spawn_pauser();
	struct mq_pidref ref = ref_of(pid);
	int64_t t0 = mq_mono_ms();
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 300), -ETIMEDOUT);
	int64_t dt = mq_mono_ms() - t0;
	ck_assert_int_ge(dt, 290);
	ck_assert_int_lt(dt, 1500);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_ALIVE);
	/* SIGKILL via the pidfd, then the wait returns as soon as it dies */
	ck_assert_int_eq(mq_proc_kill(&ref, SIGKILL), 0);
	t0 = mq_mono_ms();
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 5000), 0);
	ck_assert_int_lt(mq_mono_ms() - t0, 2000);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_GONE);
}
END_TEST

START_TEST(pidfd_and_clocks)
{
	int fd = mq_pidfd_open(getpid());
	ck_assert_int_ge(fd, 0);
	int fl = fcntl(fd, F_GETFD);
	ck_assert(fl & FD_CLOEXEC);
	close(fd);
	ck_assert_int_eq(mq_pidfd_open(0), -EINVAL);

	ck_assert_int_gt(mq_clk_tck(), 0);
	int64_t a = mq_mono_ms();
	uint64_t u1 = mq_proc_uptime_ticks();
	ck_assert_int_gt(a, 0);
	ck_assert_uint_gt(u1, 0);
	ck_assert_int_ge(mq_mono_ms(), a);
	ck_assert_uint_ge(mq_proc_uptime_ticks(), u1);
}
END_TEST

static Suite *proc_suite(void)
{
	Suite *s = suite_create("proc");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, own_pid_alive);
	tcase_add_test(tc, child_alive_kill_wait_gone);
	tcase_add_test(tc, zombie_is_gone_and_never_signalled);
	tcase_add_test(tc, zombie_wait_exit_reaps);
	tcase_add_test(tc, foreign_zombie_wait_exit);
	tcase_add_test(tc, reused_pid_is_other_and_not_signalled);
	tcase_add_test(tc, comm_with_spaces_and_parens);
	tcase_add_test(tc, nonexistent_pid_gone);
	tcase_add_test(tc, wait_exit_timeout);
	tcase_add_test(tc, pidfd_and_clocks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(proc_suite());
}
