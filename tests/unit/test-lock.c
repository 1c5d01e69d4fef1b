/* test-lock.c - the state-dir lock: waiting without sleep-polling. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/lock.h"
#include "reconciler/proc.h"
#include "reconciler/vmlock.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

/* A child holds the lock for hold_ms, then releases it (or just exits). */
static pid_t holder(const char *dir, int hold_ms, bool by_exit, int ready_fd)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct mq_lock l;
		if (mq_lock_acquire(&l, dir, "holder", 0, NULL) < 0)
			_exit(2);
		(void)!write(ready_fd, "x", 1);
		poll(NULL, 0, hold_ms);
		if (!by_exit)
			mq_lock_release(&l);
		_exit(0);
	}
	char c;
	ck_assert_int_eq(read(ready_fd - 1, &c, 1), 1); /* pipe: [r, w] adjacent */
	return pid;
}

static void wait_released(bool by_exit)
{
	char tmpl[] = "/tmp/mqlock-XXXXXX";
	char *dir = mkdtemp(tmpl);
	ck_assert_ptr_nonnull(dir);
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(p[1], p[0] + 1);
	pid_t pid = holder(dir, 300, by_exit, p[1]);

	/* timeout 0: one try, the message names the holder */
	struct mq_lock l;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_lock_acquire(&l, dir, "me", 0, &err), -EWOULDBLOCK);
	char *want = xasprintf("state dir '%s' is locked by maqet pid %d (waited 0.0 s); try again later or raise "
			       "--lock-timeout",
			       dir, (int)pid);
	ck_assert_str_eq(err->msg, want);
	free(want);
	err = mq_error_free(err);

	/* waiting: woken by the release, not by a timer */
	int64_t t0 = mq_mono_ms();
	ck_assert_int_eq(mq_lock_acquire(&l, dir, "me", 10000, &err), 0);
	int64_t dt = mq_mono_ms() - t0;
	ck_assert_int_ge(dt, 150);
	ck_assert_int_lt(dt, 2000);
	ck_assert_int_eq(mq_lock_holder_named(dir, "lock"), getpid());
	mq_lock_release(&l);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(p[0]);
	close(p[1]);
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

START_TEST(lock_wait_release)
{
	wait_released(false);
}
END_TEST

START_TEST(lock_wait_holder_exit)
{
	wait_released(true);
}
END_TEST

START_TEST(lock_timeout)
{
	char tmpl[] = "/tmp/mqlock-XXXXXX";
	char *dir = mkdtemp(tmpl);
	ck_assert_ptr_nonnull(dir);
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = holder(dir, 5000, false, p[1]);
	struct mq_lock l;
	struct mq_error *err = NULL;
	int64_t t0 = mq_mono_ms();
	ck_assert_int_eq(mq_lock_acquire(&l, dir, "me", 300, &err), -EWOULDBLOCK);
	int64_t dt = mq_mono_ms() - t0;
	ck_assert_int_ge(dt, 290);
	ck_assert_int_lt(dt, 2000);
	ck_assert_ptr_nonnull(strstr(err->msg, "(waited 0.3 s)"));
	mq_error_free(err);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(p[0]);
	close(p[1]);
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/* The per-VM lock: busy while a live process holds it (named with what it
 * does), free again once that process is killed; a waiter gives up with a
 * message naming the vm and the holder. */
START_TEST(vmlock_busy_and_dead_holder)
{
	char tmpl[] = "/tmp/mqlock-XXXXXX";
	char *dir = mkdtemp(tmpl);
	ck_assert_ptr_nonnull(dir);
	char *holder_txt = NULL;
	ck_assert(!mq_vmlock_busy(dir, "web", &holder_txt)); /* no file yet */
	ck_assert_ptr_null(holder_txt);
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct mq_lock l;
		if (mq_vmlock_acquire(&l, dir, "web", "snapshot 'x' of vm 'web'", 0, NULL, NULL, NULL) < 0)
			_exit(2);
		(void)!write(p[1], "x", 1);
		poll(NULL, 0, 10000);
		_exit(0);
	}
	char c;
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert(mq_vmlock_busy(dir, "web", &holder_txt));
	char *want = xasprintf("maqet pid %d: snapshot 'x' of vm 'web'", (int)pid);
	ck_assert_str_eq(holder_txt, want);
	free(holder_txt);
	holder_txt = NULL;
	ck_assert(!mq_vmlock_busy(dir, "other", NULL));
	struct mq_lock l;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_vmlock_acquire(&l, dir, "web", "me", 0, NULL, NULL, &err), -EWOULDBLOCK);
	char *msg = xasprintf("vm 'web' is busy: locked by %s (waited 0.0 s); try again later or raise --lock-timeout",
			      want);
	ck_assert_str_eq(err->msg, msg);
	free(msg);
	free(want);
	err = mq_error_free(err);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	ck_assert(!mq_vmlock_busy(dir, "web", NULL)); /* a dead holder holds nothing */
	ck_assert_int_eq(mq_vmlock_acquire(&l, dir, "web", "me", 0, NULL, NULL, &err), 0);
	ck_assert(mq_vmlock_busy(dir, "web", NULL)); /* held by us, on another fd */
	mq_lock_release(&l);
	close(p[0]);
	close(p[1]);
	nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lock");
	TCase *tc = tcase_create("wait");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, lock_wait_release);
	tcase_add_test(tc, lock_wait_holder_exit);
	tcase_add_test(tc, lock_timeout);
	tcase_add_test(tc, vmlock_busy_and_dead_holder);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
