/* notify-recv - a tiny $NOTIFY_SOCKET receiver for the watch integration tests.
 *
 *   notify-recv PATH TIMEOUT_MS [MATCH]
 *
 * Binds a SOCK_DGRAM unix socket at PATH (a stale file there is removed
 * first), waits up to TIMEOUT_MS for a datagram and prints it to stdout
 * followed by a newline.  With MATCH, datagrams that do not contain MATCH
 * are printed too but the wait goes on until one does (within the same
 * deadline).  Exit 0 when a (matching) datagram was received, 1 on timeout,
 * 2 on a usage or system error.  PATH is unlinked before exiting.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: notify-recv PATH TIMEOUT_MS [MATCH]\n");
		return 2;
	}
	const char *path = argv[1];
	const char *match = argc == 4 ? argv[3] : NULL;
	char *end;
	errno = 0;
	long timeout = strtol(argv[2], &end, 10);
	if (errno || end == argv[2] || *end || timeout < 0) {
		fprintf(stderr, "notify-recv: invalid timeout '%s'\n", argv[2]);
		return 2;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify-recv: path too long: %s\n", path);
		return 2;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("notify-recv: socket");
		return 2;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("notify-recv: bind");
		return 2;
	}
	int rc = 1;
	long long deadline = mono_ms() + timeout;
	for (;;) {
		long long left = deadline - mono_ms();
		if (left < 0)
			break;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("notify-recv: poll");
			rc = 2;
			break;
		}
		if (n == 0)
			continue;
		char buf[4096];
		ssize_t len = recv(fd, buf, sizeof(buf) - 1, 0);
		if (len < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			perror("notify-recv: recv");
			rc = 2;
			break;
		}
		buf[len] = '\0';
		printf("%s\n", buf);
		fflush(stdout);
		if (!match || strstr(buf, match)) {
			rc = 0;
			break;
		}
	}
	close(fd);
	unlink(path);
	return rc;
}
