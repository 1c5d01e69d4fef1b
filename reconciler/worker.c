#include "reconciler/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "util/fdpass.h"

void mq_wmsg_set(char *dst, size_t cap, const char *src)
{
	if (!cap)
		return;
	if (!src)
		src = "";
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* In the child: leave only 0, 1, 2 and the socket (moved to fd 3). */
static int child_hygiene(int sock)
{
	if (sock != 3) {
		if (dup2(sock, 3) < 0)
			return -1;
		close(sock);
	} else {
		int fl = fcntl(3, F_GETFD);
		if (fl >= 0)
			fcntl(3, F_SETFD, fl & ~FD_CLOEXEC);
	}
	if (close_range(4, ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = 4; fd < (max > 0 ? max : 1024); fd++)
			close((int)fd);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	return 3;
}

int mq_worker_start(mq_worker_fn fn, void *ud, struct mq_worker *w, struct mq_error **err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return mq_error_set(err, errno, "cannot create a worker socket: %s", strerror(errno));
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return mq_error_set(err, e, "cannot fork a worker: %s", strerror(e));
	}
	if (pid == 0) {
		close(sv[0]);
		int fd = child_hygiene(sv[1]);
		if (fd < 0)
			_exit(127);
		/* A worker never outlives maqet: one left running by a killed
		 * apply could start a QEMU after the next apply looked for it. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		int rc = fn(fd, ud);
		close(fd);
		_exit(rc);
	}
	close(sv[1]);
	int fl = fcntl(sv[0], F_GETFL);
	if (fl >= 0)
		fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
	w->pid = pid;
	w->fd = sv[0];
	return 0;
}

int mq_wmsg_send(int fd, const struct mq_wmsg *m, int pass_fd)
{
	return mq_fd_send(fd, m, sizeof(*m), pass_fd);
}

int mq_wmsg_recv(int fd, struct mq_wmsg *m, int *fd_out)
{
	struct mq_wmsg tmp;
	int r = mq_fd_recv(fd, &tmp, sizeof(tmp), fd_out);
	if (r != 1)
		return r;
	/* Never trust the peer's strings to be terminated. */
	tmp.accel[sizeof(tmp.accel) - 1] = '\0';
	tmp.step[sizeof(tmp.step) - 1] = '\0';
	tmp.outcome[sizeof(tmp.outcome) - 1] = '\0';
	tmp.path[sizeof(tmp.path) - 1] = '\0';
	tmp.text[sizeof(tmp.text) - 1] = '\0';
	*m = tmp;
	return 1;
}

void mq_worker_finish(struct mq_worker *w, int *status)
{
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	int st = 0;
	if (w->pid > 0) {
		while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
			;
		w->pid = 0;
	}
	if (status)
		*status = st;
}
