/* proc.c - process identity and liveness (see proc.h). */
#include "reconciler/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/parse.h"

/* /proc/PID/stat is a few hundred bytes; comm is at most 16 bytes. */
#define STAT_BUF 4096
#define STAT_STARTTIME_FIELD 22

int mq_proc_stat(pid_t pid, uint64_t *start_time, char *state)
{
	if (pid <= 0)
		return -EINVAL;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return (errno == ENOENT || errno == ESRCH) ? -ENOENT : -errno;

	char buf[STAT_BUF];
	size_t n = 0;
	for (;;) {
		if (n == sizeof(buf) - 1) {
			close(fd);
			return -EINVAL; /* absurdly long: refuse rather than truncate */
		}
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			/* the task died between open() and read() */
			return (e == ESRCH || e == ENOENT) ? -ENOENT : -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n == 0)
		return -ENOENT;
	buf[n] = '\0';
	if (memchr(buf, '\0', n))
		return -EINVAL;

	/* comm may contain anything, including ") ", so skip to the LAST ')'. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EINVAL;
	p += 2;

	/* p now points at field 3 (state); walk fields separated by single spaces. */
	char st = 0;
	uint64_t start = 0;
	int field = 3;
	while (field <= STAT_STARTTIME_FIELD) {
		char *end = p;
		while (*end && *end != ' ' && *end != '\n')
			end++;
		size_t len = (size_t)(end - p);
		if (len == 0)
			return -EINVAL;
		if (field == 3) {
			if (len != 1)
				return -EINVAL;
			st = *p;
		} else if (field == STAT_STARTTIME_FIELD) {
			char num[32];
			if (len >= sizeof(num))
				return -EINVAL;
			memcpy(num, p, len);
			num[len] = '\0';
			if (mq_parse_u64(num, &start) < 0)
				return -EINVAL;
			break;
		}
		if (*end != ' ')
			return -EINVAL; /* line ended before field 22 */
		p = end + 1;
		field++;
	}
	if (start_time)
		*start_time = start;
	if (state)
		*state = st;
	return 0;
}

static bool state_is_dead(char s)
{
	return s == 'Z' || s == 'X' || s == 'x';
}

enum mq_proc_state mq_proc_check(const struct mq_pidref *ref)
{
	if (!ref || ref->pid <= 0)
		return MQ_PROC_GONE;
	uint64_t start;
	char st;
	if (mq_proc_stat(ref->pid, &start, &st) < 0)
		return MQ_PROC_GONE;
	if (start != ref->start_time)
		return MQ_PROC_OTHER;
	if (state_is_dead(st))
		return MQ_PROC_GONE;
	return MQ_PROC_ALIVE;
}

const char *mq_proc_state_str(enum mq_proc_state s)
{
	switch (s) {
	case MQ_PROC_GONE:
		return "gone";
	case MQ_PROC_ALIVE:
		return "alive";
	case MQ_PROC_OTHER:
		return "other";
	}
	return "unknown";
}

int mq_pidfd_open(pid_t pid)
{
	if (pid <= 0)
		return -EINVAL;
	long fd = syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return -errno;
	return (int)fd;
}

int mq_pidref_open(const struct mq_pidref *ref)
{
	if (!ref || ref->pid <= 0)
		return -ESRCH;
	int fd = mq_pidfd_open(ref->pid);
	if (fd < 0)
		return fd == -ESRCH || fd == -ENOENT ? -ESRCH : fd;
	/* The pidfd now pins this exact task; prove it is the one we mean.  If
	 * the pid was reused before pidfd_open(), the start time differs. */
	switch (mq_proc_check(ref)) {
	case MQ_PROC_ALIVE:
		return fd;
	case MQ_PROC_OTHER:
		close(fd);
		return -ESTALE;
	case MQ_PROC_GONE:
		break;
	}
	close(fd);
	return -ESRCH;
}

bool mq_pidfd_unavailable(int r)
{
	return r == -ENOSYS || r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -EPERM;
}

int mq_proc_kill(const struct mq_pidref *ref, int sig)
{
	int fd = mq_pidref_open(ref);
	if (fd < 0 && mq_pidfd_unavailable(fd)) {
		/* Fallback without pidfds (kernel < 5.3, or out of fds): prove the
		 * identity, then kill(2).  The pid could be reused only if the
		 * process exited and the pid space wrapped in between these two
		 * calls: a window of microseconds, accepted and documented. */
		switch (mq_proc_check(ref)) {
		case MQ_PROC_ALIVE:
			return kill(ref->pid, sig) < 0 ? -errno : 0;
		case MQ_PROC_OTHER:
			return -ESTALE;
		case MQ_PROC_GONE:
			return -ESRCH;
		}
	}
	if (fd < 0)
		return fd;
	int r = 0;
	if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* Reap the process behind pidfd if it is our child.  waitid(P_PIDFD) hits
 * exactly that process; ECHILD (not ours, or already reaped) is fine.  While
 * it is our unreaped zombie its pid cannot be reused, so the waitpid()
 * fallback for older kernels is safe too. */
static void reap_if_child(int pidfd, pid_t pid)
{
	siginfo_t si;
	int r;
	do
		r = waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EINVAL) {
		while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
			;
	}
}

/* Fallback of mq_proc_wait_exit() when no pidfd can be had: look at
 * /proc/PID/stat with a growing interval (1 ms doubling to 50 ms).  Only
 * used in that fault mode, never in the watch loop itself. */
static int wait_exit_nopidfd(const struct mq_pidref *ref, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mq_mono_ms() + timeout_ms;
	int step = 1;
	for (;;) {
		enum mq_proc_state s = mq_proc_check(ref);
		if (s == MQ_PROC_OTHER)
			return -ESTALE;
		if (s == MQ_PROC_GONE) {
			while (waitpid(ref->pid, NULL, WNOHANG) < 0 && errno == EINTR)
				;
			return 0;
		}
		if (deadline >= 0 && mq_mono_ms() >= deadline)
			return -ETIMEDOUT;
		(void)poll(NULL, 0, step);
		if (step < 50)
			step *= 2;
	}
}

int mq_proc_wait_exit(const struct mq_pidref *ref, int timeout_ms)
{
	if (!ref || ref->pid <= 0)
		return 0;
	int fd = mq_pidfd_open(ref->pid);
	if (fd == -ESRCH || fd == -ENOENT)
		return 0; /* no such task at all, not even a zombie */
	if (fd < 0 && mq_pidfd_unavailable(fd))
		return wait_exit_nopidfd(ref, timeout_ms);
	if (fd < 0)
		return fd;
	/* Prove identity after opening the pidfd (see mq_pidref_open). */
	enum mq_proc_state s = mq_proc_check(ref);
	if (s == MQ_PROC_OTHER) {
		close(fd);
		return -ESTALE;
	}
	if (s == MQ_PROC_ALIVE) {
		int64_t deadline = timeout_ms < 0 ? -1 : mq_mono_ms() + timeout_ms;
		for (;;) {
			int wait = -1;
			if (deadline >= 0) {
				int64_t left = deadline - mq_mono_ms();
				wait = left > 0 ? (int)left : 0;
			}
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int r = poll(&pfd, 1, wait);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				int e = errno;
				close(fd);
				return -e;
			}
			if (r == 0) {
				close(fd);
				return -ETIMEDOUT;
			}
			break; /* readable (or HUP): the process has exited */
		}
	}
	reap_if_child(fd, ref->pid);
	close(fd);
	return 0;
}

int64_t mq_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long mq_clk_tck(void)
{
	static long tck;
	if (tck <= 0) {
		long v = sysconf(_SC_CLK_TCK);
		tck = v > 0 ? v : 100;
	}
	return tck;
}

uint64_t mq_proc_uptime_ticks(void)
{
	/* start_time in /proc/PID/stat is derived from the boot-based clock. */
	struct timespec ts;
	if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
		return 0;
	uint64_t tck = (uint64_t)mq_clk_tck();
	return (uint64_t)ts.tv_sec * tck + (uint64_t)ts.tv_nsec * tck / 1000000000ull;
}
