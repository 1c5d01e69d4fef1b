/* Unit tests for reconciler/notify: the sd_notify datagram reaches a socket
 * bound at a path or an abstract name, nothing is sent without
 * NOTIFY_SOCKET, and bad addresses fail with -errno instead of crashing. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "reconciler/notify.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

static const char msg[] = "READY=1\nSTATUS=x";

static char *tmpdir;

static void setup(void)
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base || strlen(base) > 40)
		base = "/tmp";
	tmpdir = xasprintf("%s/mq-notify-XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char *sock = xasprintf("%s/notify", tmpdir);
	unlink(sock);
	free(sock);
	rmdir(tmpdir);
	free(tmpdir);
	tmpdir = NULL;
}

/* Bind a datagram socket at `path`, or at an abstract name when `abstract`. */
static int bind_dgram(const char *name, bool abstract)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	size_t n = strlen(name);
	socklen_t len;
	if (abstract) {
		ck_assert_uint_lt(n + 1, sizeof(sa.sun_path));
		memcpy(sa.sun_path + 1, name, n);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	} else {
		ck_assert_uint_lt(n, sizeof(sa.sun_path));
		memcpy(sa.sun_path, name, n);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	ck_assert_msg(bind(fd, (struct sockaddr *)&sa, len) == 0, "bind '%s': %s", name, strerror(errno));
	return fd;
}

/* Receive one datagram, waiting at most timeout_ms; returns its length, or
 * -1 on timeout. */
static ssize_t recv_one(int fd, char *buf, size_t cap, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, timeout_ms);
	ck_assert_int_ge(r, 0);
	if (r == 0)
		return -1;
	ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
	ck_assert_int_ge(n, 0);
	return n;
}

static void assert_received(int fd)
{
	char buf[256];
	ssize_t n = recv_one(fd, buf, sizeof(buf), 5000);
	ck_assert_msg(n >= 0, "no datagram within 5 s");
	ck_assert_int_eq(n, (ssize_t)strlen(msg));
	ck_assert(memcmp(buf, msg, (size_t)n) == 0);
	/* exactly one datagram */
	ck_assert_int_eq(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);
}

START_TEST(test_path_socket)
{
	char *path = xasprintf("%s/notify", tmpdir);
	int fd = bind_dgram(path, false);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	ck_assert_int_eq(mq_notify(msg), 0);
	assert_received(fd);
	close(fd);
	free(path);
}
END_TEST

START_TEST(test_abstract_socket)
{
	char *name = xasprintf("maqet-test-%ld", (long)getpid());
	int fd = bind_dgram(name, true);
	char *env = xasprintf("@%s", name);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", env, 1), 0);
	ck_assert_int_eq(mq_notify(msg), 0);
	assert_received(fd);

	close(fd);
	free(env);
	free(name);
}
END_TEST

START_TEST(test_unset_or_empty_sends_nothing)
{
	char *path = xasprintf("%s/notify", tmpdir);
	int fd = bind_dgram(path, false);
	char buf[64];

	ck_assert_int_eq(unsetenv("NOTIFY_SOCKET"), 0);
	ck_assert_int_eq(mq_notify(msg), 0);
	ck_assert_int_eq(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);

	ck_assert_int_eq(setenv("NOTIFY_SOCKET", "", 1), 0);
	ck_assert_int_eq(mq_notify(msg), 0);
	ck_assert_int_eq(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);

	close(fd);
	free(path);
}
END_TEST

START_TEST(test_too_long)
{
	struct sockaddr_un sa;
	size_t n = sizeof(sa.sun_path) + 10;
	char *p = xmalloc(n + 1);
	memset(p, 'a', n);
	p[0] = '/';
	p[n] = '\0';
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", p, 1), 0);
	ck_assert_int_eq(mq_notify(msg), -ENAMETOOLONG);

	/* a path of exactly sizeof(sun_path) bytes has no room for its NUL */
	p[sizeof(sa.sun_path)] = '\0';
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", p, 1), 0);
	ck_assert_int_eq(mq_notify(msg), -ENAMETOOLONG);

	/* abstract: the name may use sun_path[1..107], not more */
	p[0] = '@';
	p[sizeof(sa.sun_path)] = 'a';
	p[sizeof(sa.sun_path) + 1] = '\0'; /* '@' + 108 bytes */
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", p, 1), 0);
	ck_assert_int_eq(mq_notify(msg), -ENAMETOOLONG);
	p[sizeof(sa.sun_path)] = '\0';     /* '@' + 107 bytes: fits, nobody listens */
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", p, 1), 0);
	ck_assert_int_eq(mq_notify(msg), -ECONNREFUSED);
	free(p);
}
END_TEST

START_TEST(test_missing_socket)
{
	char *path = xasprintf("%s/does-not-exist", tmpdir);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	ck_assert_int_eq(mq_notify(msg), -ENOENT);
	free(path);

	/* a socket file nobody listens on any more */
	path = xasprintf("%s/notify", tmpdir);
	close(bind_dgram(path, false));
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	ck_assert_int_eq(mq_notify(msg), -ECONNREFUSED);
	free(path);
}
END_TEST

START_TEST(test_unsupported_address)
{
	static const char *bad[] = { "notify.sock", "vsock:2:1234", "./notify" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(setenv("NOTIFY_SOCKET", bad[i], 1), 0);
		ck_assert_msg(mq_notify(msg) == -EAFNOSUPPORT, "'%s' accepted", bad[i]);
	}
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", "@", 1), 0);
	ck_assert_int_eq(mq_notify(msg), -EINVAL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_path_socket);
	tcase_add_test(tc, test_abstract_socket);
	tcase_add_test(tc, test_unset_or_empty_sends_nothing);
	tcase_add_test(tc, test_too_long);
	tcase_add_test(tc, test_missing_socket);
	tcase_add_test(tc, test_unsupported_address);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
