/* Unit tests for reconciler/worker: typed messages over the worker socket,
 * fd passing, and the child's hygiene (only its own socket and stdio open,
 * empty signal mask, default dispositions). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/worker.h"
#include "tests/unit/check-run.h"

static struct mq_wmsg wait_msg(struct mq_worker *w, int *fd, int *rc)
{
	struct mq_wmsg m;
	memset(&m, 0, sizeof(m));
	for (;;) {
		struct pollfd p = { .fd = w->fd, .events = POLLIN };
		ck_assert_int_eq(poll(&p, 1, 10000), 1);
		*rc = mq_wmsg_recv(w->fd, &m, fd);
		if (*rc != -EAGAIN)
			return m;
	}
}

static int send_two(int fd, void *ud)
{
	(void)ud;
	struct mq_wmsg m;
	memset(&m, 0, sizeof(m));
	m.kind = MQ_WMSG_STARTED;
	m.pid = 4242;
	m.start_time = 123456789012ull;
	MQ_WMSG_SET(m.accel, "tcg");
	MQ_WMSG_SET(m.path, "/run/x.qmp");
	int p[2];
	if (pipe(p) < 0)
		return 2;
	if (write(p[1], "hi", 2) != 2)
		return 2;
	if (mq_wmsg_send(fd, &m, p[0]) < 0)
		return 3;
	memset(&m, 0, sizeof(m));
	m.kind = MQ_WMSG_ERROR;
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	MQ_WMSG_SET(m.text, big); /* truncated, terminated */
	if (mq_wmsg_send(fd, &m, -1) < 0)
		return 4;
	return 7;
}

START_TEST(test_messages_and_fd)
{
	struct mq_worker w;
	ck_assert_int_eq(mq_worker_start(send_two, NULL, &w, NULL), 0);
	int fd, rc;
	struct mq_wmsg m = wait_msg(&w, &fd, &rc);
	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(m.kind, MQ_WMSG_STARTED);
	ck_assert_int_eq(m.pid, 4242);
	ck_assert_uint_eq(m.start_time, 123456789012ull);
	ck_assert_str_eq(m.accel, "tcg");
	ck_assert_str_eq(m.path, "/run/x.qmp");
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	char buf[4] = "";
	ck_assert_int_eq(read(fd, buf, 2), 2);
	ck_assert_int_eq(memcmp(buf, "hi", 2), 0);
	close(fd);
	m = wait_msg(&w, &fd, &rc);
	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(m.kind, MQ_WMSG_ERROR);
	ck_assert_int_eq(fd, -1);
	ck_assert_uint_eq(strlen(m.text), sizeof(m.text) - 1);
	m = wait_msg(&w, &fd, &rc);
	ck_assert_int_eq(rc, 0); /* EOF */
	int st = -1;
	mq_worker_finish(&w, &st);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 7);
	ck_assert_int_eq(w.fd, -1);
}
END_TEST

/* The child reports every fd it has open and its signal state. */
static int report_hygiene(int fd, void *ud)
{
	(void)ud;
	struct mq_wmsg m;
	memset(&m, 0, sizeof(m));
	m.kind = MQ_WMSG_STEP;
	char list[2048] = "";
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 2;
	int dfd = dirfd(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || atoi(de->d_name) == dfd)
			continue;
		size_t n = strlen(list);
		snprintf(list + n, sizeof(list) - n, "%s ", de->d_name);
	}
	closedir(d);
	MQ_WMSG_SET(m.text, list);
	sigset_t cur;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	struct sigaction sa;
	sigaction(SIGPIPE, NULL, &sa);
	snprintf(m.path, sizeof(m.path), "masked=%d pipe_default=%d", sigismember(&cur, SIGTERM),
		 sa.sa_handler == SIG_DFL);
	MQ_WMSG_SET(m.outcome, fd == 3 ? "fd3" : "other");
	return mq_wmsg_send(fd, &m, -1) < 0 ? 3 : 0;
}

START_TEST(test_child_hygiene)
{
	/* fds the child must not inherit: a non-CLOEXEC pipe, and a blocked signal */
	int leak[2];
	ck_assert_int_eq(pipe(leak), 0);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct mq_worker w;
	ck_assert_int_eq(mq_worker_start(report_hygiene, NULL, &w, NULL), 0);
	int fd, rc;
	struct mq_wmsg m = wait_msg(&w, &fd, &rc);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(m.outcome, "fd3");
	/* only stdio (whatever of it is open) and the socket on 3 */
	char *save = NULL;
	for (char *tok = strtok_r(m.text, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		int n = atoi(tok);
		ck_assert_msg(n <= 3, "worker inherited fd %d", n);
	}
	ck_assert_str_eq(m.path, "masked=0 pipe_default=1");
	int st;
	mq_worker_finish(&w, &st);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(leak[0]);
	close(leak[1]);
}
END_TEST

START_TEST(test_recv_rejects_short_message)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(write(sv[1], "short", 5), 5);
	struct mq_wmsg m;
	int fd;
	ck_assert_int_eq(mq_wmsg_recv(sv[0], &m, &fd), -EPROTO);
	ck_assert_int_eq(mq_wmsg_recv(sv[0], &m, &fd), -EAGAIN);
	close(sv[1]);
	ck_assert_int_eq(mq_wmsg_recv(sv[0], &m, &fd), 0);
	close(sv[0]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("worker");
	TCase *tc = tcase_create("worker");
	tcase_add_test(tc, test_messages_and_fd);
	tcase_add_test(tc, test_child_hygiene);
	tcase_add_test(tc, test_recv_rejects_short_message);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
