/* spawn.c - fork/exec without a shell (see spawn.h). */
#include "reconciler/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define RUN_OUTPUT_CAP (64 * 1024)

struct linux_dirent64_hdr {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Close every fd >= from (3 or 4) except `keep`. */
static void child_close_fds(int from, int keep)
{
#ifdef SYS_close_range
	if ((keep <= from || syscall(SYS_close_range, (unsigned)from, (unsigned)keep - 1, 0U) == 0) &&
	    syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U) == 0)
		return;
#endif
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		char buf[4096] __attribute__((aligned(8)));
		long n;
		while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct linux_dirent64_hdr *d = (struct linux_dirent64_hdr *)(void *)(buf + off);
				off += d->d_reclen;
				int fd = 0;
				const char *c = d->d_name;
				if (*c < '0' || *c > '9')
					continue;
				for (; *c >= '0' && *c <= '9' && fd < 1000000000 / 10; c++)
					fd = fd * 10 + (*c - '0');
				if (*c == '\0' && fd >= from && fd != dfd && fd != keep)
					close(fd);
			}
		}
		close(dfd);
		return;
	}
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = from; fd < max; fd++)
		if (fd != keep)
			close(fd);
}

static void child_reset_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	(void)sigprocmask(SIG_SETMASK, &set, NULL);
}

/* The child's side: set up fds and exec; on failure send errno over the
 * CLOEXEC pipe (a successful exec closes it: EOF for the parent). */
__attribute__((noreturn)) static void child_exec(const char *path, char *const argv[], const struct mq_spawn_opts *o, int nullfd,
		       int errfd)
{
	if (o->setsid)
		(void)setsid();
	if (o->umask077)
		umask(077);
	child_reset_signals();
	int in = o->stdin_fd >= 0 ? o->stdin_fd : nullfd;
	int out = o->stdout_fd >= 0 ? o->stdout_fd : nullfd;
	int er = o->stderr_fd >= 0 ? o->stderr_fd : nullfd;
	int e = 0;
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(er, 2) < 0)
		e = errno;
	int from = 3;
	int want[2] = { o->pass_fd > 2 ? o->pass_fd : -1, o->lease_fd > 2 ? o->lease_fd : -1 };
	if (!e && (want[0] >= 0 || want[1] >= 0)) {
		/* fds 3 (and 4) for the passed fds, in order: first move the
		 * error pipe and the sources above them, so no dup2 clobbers one */
		if ((errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 16)) < 0)
			_exit(127);
		for (int k = 0; k < 2; k++)
			if (want[k] >= 0 && (want[k] = fcntl(want[k], F_DUPFD_CLOEXEC, 16)) < 0)
				e = errno;
		for (int k = 0; k < 2 && !e; k++)
			if (want[k] >= 0) {
				if (dup2(want[k], from) < 0) /* the copy is not CLOEXEC */
					e = errno;
				from++;
			}
	}
	if (!e) {
		child_close_fds(from, errfd);
		if (o->envp)
			execve(path, argv, o->envp);
		else
			execv(path, argv);
		e = errno;
	}
	while (write(errfd, &e, sizeof(e)) < 0 && errno == EINTR)
		;
	_exit(127);
}

int mq_spawn(const char *path, char *const argv[], const struct mq_spawn_opts *o, pid_t *pid, struct mq_error **err)
{
	static const struct mq_spawn_opts defaults = { .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
	if (!o)
		o = &defaults;
	int nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd < 0)
		return mq_error_set(err, errno, "cannot open /dev/null: %s", strerror(errno));
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0) {
		int e = errno;
		close(nullfd);
		return mq_error_set(err, e, "cannot create pipe: %s", strerror(e));
	}
	pid_t p = fork();
	if (p < 0) {
		int e = errno;
		close(nullfd);
		close(ep[0]);
		close(ep[1]);
		return mq_error_set(err, e, "cannot fork: %s", strerror(e));
	}
	if (p == 0) {
		close(ep[0]);
		child_exec(path, argv, o, nullfd, ep[1]);
	}
	close(ep[1]);
	close(nullfd);
	int child_errno = 0;
	ssize_t n;
	while ((n = read(ep[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
		;
	close(ep[0]);
	if (n == (ssize_t)sizeof(child_errno)) {
		int st;
		while (waitpid(p, &st, 0) < 0 && errno == EINTR)
			;
		if (child_errno <= 0)
			child_errno = EIO;
		return mq_error_set(err, child_errno, "cannot exec '%s': %s", path, strerror(child_errno));
	}
	*pid = p;
	return 0;
}

char *mq_wait_status_str(int st)
{
	if (WIFEXITED(st))
		return xasprintf("exited with status %d", WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return xasprintf("killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	return xasprintf("ended with wait status 0x%x", (unsigned)st);
}

char *mq_last_line(const char *buf, size_t len, const char *skip)
{
	size_t end = len;
	while (end > 0) {
		while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r' || buf[end - 1] == ' ' ||
				   buf[end - 1] == '\t'))
			end--;
		if (end == 0)
			break;
		size_t start = end;
		while (start > 0 && buf[start - 1] != '\n')
			start--;
		const char *l = buf + start;
		size_t ll = end - start;
		while (ll && (*l == ' ' || *l == '\t')) {
			l++;
			ll--;
		}
		if (ll && !(skip && ll >= strlen(skip) && memcmp(l, skip, strlen(skip)) == 0))
			return xstrndup(l, ll);
		end = start;
	}
	return xstrdup("");
}

char *mq_spawn_resolve(const char *name)
{
	if (!name || !*name)
		return NULL;
	if (strchr(name, '/')) {
		struct stat st;
		if (stat(name, &st) == 0 && S_ISREG(st.st_mode) && access(name, X_OK) == 0)
			return xstrdup(name);
		return NULL;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	const char *p = path;
	for (;;) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char *cand = n ? xasprintf("%.*s/%s", (int)n, p, name) : xasprintf("./%s", name);
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
			return cand;
		free(cand);
		if (!e)
			break;
		p = e + 1;
	}
	return NULL;
}

int mq_spawn_capture(const char *path, char *const argv[], int timeout_ms, char **out, int *status,
		     struct mq_error **err)
{
	return mq_spawn_capture_tick(path, argv, timeout_ms, 0, NULL, NULL, out, status, err);
}

static int capture(const char *path, char *const argv[], char *const envp[], int timeout_ms, int tick_ms,
		   void (*tick)(void *ud), void *ud, char **out, int *status, struct mq_error **err);

int mq_spawn_capture_tick(const char *path, char *const argv[], int timeout_ms, int tick_ms, void (*tick)(void *ud),
			  void *ud, char **out, int *status, struct mq_error **err)
{
	return capture(path, argv, NULL, timeout_ms, tick_ms, tick, ud, out, status, err);
}

int mq_spawn_capture_env(const char *path, char *const argv[], char *const envp[], int timeout_ms, char **out,
			 int *status, struct mq_error **err)
{
	return capture(path, argv, envp, timeout_ms, 0, NULL, NULL, out, status, err);
}

/* Run, capture stdout+stderr (capped), wait with a deadline; tick(ud) every
 * tick_ms (<= 0: 250) while the child runs when tick is not NULL. */
static int capture(const char *path, char *const argv[], char *const envp[], int timeout_ms, int tick_ms,
		   void (*tick)(void *ud), void *ud, char **out, int *status, struct mq_error **err)
{
	if (tick_ms <= 0)
		tick_ms = 250;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return mq_error_set(err, errno, "cannot create pipe: %s", strerror(errno));
	struct mq_spawn_opts so = { .stdin_fd = -1, .stdout_fd = pfd[1], .stderr_fd = pfd[1], .envp = envp };
	pid_t pid;
	int rc = mq_spawn(path, argv, &so, &pid, err);
	close(pfd[1]);
	if (rc < 0) {
		close(pfd[0]);
		return rc;
	}

	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	int64_t deadline = mq_mono_ms() + timeout_ms;
	int64_t next_tick = mq_mono_ms() + tick_ms;
	bool timed_out = false;
	for (;;) {
		int64_t now = mq_mono_ms();
		int64_t left = deadline - now;
		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (tick && now >= next_tick) {
			tick(ud);
			next_tick = now + tick_ms;
		}
		if (tick && next_tick - now < left)
			left = next_tick - now;
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (r == 0)
			continue;
		char buf[4096];
		ssize_t n = read(pfd[0], buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		if (n == 0)
			break;
		if (sb.len < RUN_OUTPUT_CAP)
			mq_strbuf_add(&sb, buf, (size_t)n);
	}
	close(pfd[0]);
	if (timed_out)
		kill(pid, SIGKILL); /* our own unreaped child: the pid cannot have been reused */
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			int e = errno;
			mq_strbuf_release(&sb);
			return mq_error_set(err, e, "cannot wait for '%s': %s", path, strerror(e));
		}
	}
	if (timed_out) {
		mq_strbuf_release(&sb);
		return mq_error_set(err, ETIMEDOUT, "'%s' did not finish within %d ms", path, timeout_ms);
	}
	*out = mq_strbuf_detach(&sb);
	*status = st;
	return 0;
}
