#include "reconciler/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "util/fileio.h"
#include "util/parse.h"
#include "util/paths.h"
#include "util/xalloc.h"

static pid_t read_holder(const char *path)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *nl = strpbrk(buf, " \n");
	if (nl)
		*nl = '\0';
	unsigned v;
	if (mq_parse_uint(buf, 1, 0x7fffffff, &v) < 0)
		return 0;
	return (pid_t)v;
}

pid_t mq_lock_holder_named(const char *state_dir, const char *file)
{
	char *path = mq_path_join(state_dir, file);
	pid_t p = read_holder(path);
	free(path);
	return p;
}

int mq_lock_acquire(struct mq_lock *l, const char *state_dir, const char *what, int timeout_ms,
		    struct mq_error **err)
{
	return mq_lock_acquire_named(l, state_dir, "lock", what, timeout_ms, err);
}

int mq_lock_acquire_named(struct mq_lock *l, const char *state_dir, const char *file, const char *what,
			  int timeout_ms, struct mq_error **err)
{
	l->fd = -1;
	l->path = NULL;
	int r = mq_mkdir_p(state_dir, 0700, err);
	if (r < 0)
		return r;
	char *path = mq_path_join(state_dir, file);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = mq_error_set(err, errno, "cannot open lock file '%s': %s", path, strerror(errno));
		free(path);
		return r;
	}
	int64_t deadline = mq_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	/* flock has no timed wait.  The holder's last close of the file (its
	 * release, or its exit) raises IN_CLOSE_WRITE on it: watch for that and
	 * try again on every wake-up, until the deadline.  The watch is set up
	 * before the first try so a release in between is not missed.  Without
	 * inotify (out of instances), one more try at the deadline. */
	int ifd = -1;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			r = mq_error_set(err, errno, "cannot lock '%s': %s", path, strerror(errno));
			goto fail;
		}
		int64_t now = mq_mono_ms();
		if (now >= deadline) {
			pid_t holder = read_holder(path);
			char who[48];
			if (holder > 0)
				snprintf(who, sizeof(who), "maqet pid %d", (int)holder);
			else
				snprintf(who, sizeof(who), "another maqet");
			r = mq_error_set(err, EWOULDBLOCK,
					 "state dir '%s' is locked by %s (waited %.1f s); try again later or raise --lock-timeout",
					 state_dir, who, (timeout_ms > 0 ? timeout_ms : 0) / 1000.0);
			goto fail;
		}
		if (ifd < 0) {
			ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
			if (ifd >= 0 && inotify_add_watch(ifd, path, IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_DELETE_SELF) < 0) {
				close(ifd);
				ifd = -1;
			}
			if (ifd >= 0)
				continue; /* watching now: try again before waiting */
		}
		struct pollfd p = { .fd = ifd, .events = POLLIN };
		int64_t left = deadline - now;
		(void)poll(&p, ifd >= 0 ? 1 : 0, left > INT32_MAX ? INT32_MAX : (int)left);
		if (ifd >= 0) {
			char ebuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
			while (read(ifd, ebuf, sizeof(ebuf)) > 0)
				; /* drain: every wake-up is just a reason to try again */
		}
	}
	if (ifd >= 0)
		close(ifd);
	/* "PID WHAT\n" names the holder for whoever waits (WHAT may be long:
	 * "snapshot 'NAME' of vm 'VM'"); snprintf returns the untruncated length */
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "%d %s\n", (int)getpid(), what ? what : "");
	if (n < 0)
		n = 0;
	else if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1, buf[n - 1] = '\n';
	if (ftruncate(fd, 0) == 0)
		(void)mq_write_all(fd, buf, (size_t)n);
	l->fd = fd;
	l->path = path;
	return 0;

fail:
	if (ifd >= 0)
		close(ifd);
	close(fd);
	free(path);
	return r;
}

void mq_lock_release(struct mq_lock *l)
{
	if (l->fd >= 0) {
		if (ftruncate(l->fd, 0) < 0) {
			/* nothing useful to do: the kernel releases the lock anyway */
		}
		flock(l->fd, LOCK_UN);
		close(l->fd);
	}
	l->fd = -1;
	free(l->path);
	l->path = NULL;
}
