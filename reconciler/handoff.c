#include "reconciler/handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/fdpass.h"

static int sock_path(const char *state_dir, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", state_dir, MQ_HANDOFF_SOCKET);
	return n < 0 || (size_t)n >= sizeof(sa->sun_path) ? -ENAMETOOLONG : 0;
}

int mq_handoff_listen(const char *state_dir, struct mq_error **err)
{
	struct sockaddr_un sa;
	if (sock_path(state_dir, &sa) < 0)
		return mq_error_set(err, ENAMETOOLONG, "state dir '%s' is too long for a unix socket path", state_dir);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return mq_error_set(err, errno, "cannot create a socket: %s", strerror(errno));
	(void)unlink(sa.sun_path); /* ours: the caller holds watch.lock */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		return mq_error_set(err, e, "cannot listen on '%s': %s", sa.sun_path, strerror(e));
	}
	(void)chmod(sa.sun_path, 0600);
	return fd;
}

int mq_handoff_recv(int conn, struct mq_handoff_msg *m, int *ev_fd)
{
	struct mq_handoff_msg tmp;
	int got = -1;
	int r = mq_fd_recv(conn, &tmp, sizeof(tmp), &got);
	if (r == 0)
		return -EPROTO; /* the sender hung up without a message */
	if (r < 0)
		return r;
	if (got < 0)
		return -EPROTO;
	tmp.name[sizeof(tmp.name) - 1] = '\0';
	*m = tmp;
	*ev_fd = got;
	return 1;
}

int mq_handoff_send(const char *state_dir, const char *name, const struct mq_pidref *ref, int ev_fd)
{
	struct sockaddr_un sa;
	if (!state_dir || ev_fd < 0 || sock_path(state_dir, &sa) < 0)
		return -EINVAL;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	struct mq_handoff_msg m;
	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "%s", name);
	m.pid = (int32_t)ref->pid;
	m.start_time = ref->start_time;
	int r = mq_fd_send(fd, &m, sizeof(m), ev_fd);
	close(fd);
	return r;
}
