/* notify.c - sd_notify protocol without libsystemd: one datagram to
 * $NOTIFY_SOCKET ("/path" or "@abstract-name"). */
#include "reconciler/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/xalloc.h"

/* Fill *sa from a NOTIFY_SOCKET value; returns the address length or -errno. */
static int notify_addr(const char *e, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(e);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (e[0] == '@') {
		/* Abstract namespace: leading NUL, then exactly the name bytes; the
		 * length says where the name ends (no trailing NUL). */
		if (n < 2)
			return -EINVAL;
		if (n - 1 > sizeof(sa->sun_path) - 1)
			return -ENAMETOOLONG;
		memcpy(sa->sun_path + 1, e + 1, n - 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return 0;
	}
	if (e[0] == '/') {
		if (n >= sizeof(sa->sun_path))
			return -ENAMETOOLONG;
		memcpy(sa->sun_path, e, n);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	return -EAFNOSUPPORT;
}

int mq_notify(const char *state)
{
	const char *e = getenv("NOTIFY_SOCKET");
	if (!e || !*e)
		return 0;
	if (!state)
		return -EINVAL;

	struct sockaddr_un sa;
	socklen_t salen = 0;
	int r = notify_addr(e, &sa, &salen);
	if (r < 0)
		return r;

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;

	size_t len = strlen(state);
	ssize_t w = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
	if (w < 0)
		return -errno;
	if ((size_t)w != len)
		return -EIO;
	return 0;
}
