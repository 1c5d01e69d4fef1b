/* logrot.c - copy-truncate rotation of running VMs' logs.  See logrot.h. */
#include "reconciler/logrot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "reconciler/vmpaths.h"
#include "util/parse.h"
#include "util/paths.h"
#include "util/strv.h"
#include "util/xalloc.h"

#define MIN_CAP 4096ull

unsigned long long mq_log_cap(void)
{
	const char *e = getenv("MAQET_LOG_CAP");
	uint64_t v = 0;
	if (e && *e && mq_parse_size(e, 1, &v) == 0 && v >= MIN_CAP)
		return (unsigned long long)v;
	return MQ_LOG_CAP;
}

bool mq_log_is_vm_log(const char *name)
{
	static const char *const ends[] = { ".serial.log", ".qemu.log" };
	size_t l = strlen(name);
	for (size_t i = 0; i < 2; i++) {
		size_t e = strlen(ends[i]);
		if (l > e && strcmp(name + l - e, ends[i]) == 0)
			return true;
	}
	return false;
}

/* Copy [from, to) of in to the end of out.  0 or -errno. */
static int copy_range(int in, int out, off_t from, off_t to)
{
	while (from < to) {
		off_t pos = from;
		ssize_t n = copy_file_range(in, &pos, out, NULL, (size_t)(to - from), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
			char buf[65536];
			size_t want = (size_t)(to - from) < sizeof(buf) ? (size_t)(to - from) : sizeof(buf);
			n = pread(in, buf, want, from);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(out, buf + off, (size_t)(n - off));
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0)
					return -errno;
				off += w;
			}
		} else if (n < 0) {
			return -errno;
		}
		if (n == 0)
			return 0; /* shrank meanwhile */
		from += n;
	}
	return 0;
}

int mq_log_rotate_live(const char *path, unsigned long long cap)
{
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ELOOP || errno == ENXIO || errno == EACCES ? 0 : -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (unsigned long long)st.st_size <= cap || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return 0;
	}
	/* again under the lock: another rotator may just have truncated it */
	if (fstat(fd, &st) < 0 || (unsigned long long)st.st_size <= cap) {
		close(fd);
		return 0;
	}
	char *tmp = xasprintf("%s.1.tmp", path);
	char *old = xasprintf("%s.1", path);
	(void)unlink(tmp); /* a leftover of a rotator that died */
	int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int r = out < 0 ? -errno : 0;
	/* .1 keeps at most twice the cap: the oldest part of a bigger log is dropped */
	off_t done = st.st_size > (off_t)(2 * cap) ? st.st_size - (off_t)(2 * cap) : 0;
	for (int round = 0; r == 0 && round < 4; round++) {
		r = copy_range(fd, out, done, st.st_size);
		done = st.st_size;
		if (r < 0 || fstat(fd, &st) < 0 || st.st_size <= done)
			break; /* nothing appended meanwhile: truncate now */
	}
	if (r == 0 && ftruncate(fd, 0) < 0)
		r = -errno;
	if (out >= 0 && close(out) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, old) < 0)
		r = -errno;
	if (r < 0 && out >= 0)
		(void)unlink(tmp);
	free(tmp);
	free(old);
	close(fd);
	return r < 0 ? r : 1;
}

int mq_log_rotate_dir(const char *runtime_dir, unsigned long long cap, mq_logrot_fail_fn fail, void *ud)
{
	DIR *d = opendir(runtime_dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!mq_log_is_vm_log(de->d_name))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
		    (unsigned long long)st.st_size <= cap)
			continue;
		char *p = mq_path_join(runtime_dir, de->d_name);
		int r = mq_log_rotate_live(p, cap);
		if (r > 0)
			n++;
		else if (r < 0 && fail)
			fail(ud, p, r);
		free(p);
	}
	closedir(d);
	return n;
}

struct mq_logrot {
	struct mq_loop *loop;
	char *runtime_dir;
	unsigned long long cap;
	struct mq_timer *timer;
	mq_logrot_log_fn log;
	void *ud;
	struct mq_strv reported; /* "path\terrno" failures already logged */
	struct mq_strv seen;     /* failures of the current round */
};

static void on_fail(void *ud, const char *path, int error)
{
	struct mq_logrot *lr = ud;
	char *key = xasprintf("%s\t%d", path, error);
	mq_strv_push(&lr->seen, key);
	if (!mq_strv_contains(&lr->reported, key) && lr->log) {
		const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		const char *dot = strstr(base, ".serial.log");
		if (!dot)
			dot = strstr(base, ".qemu.log");
		char *vm = dot ? xstrndup(base, (size_t)(dot - base)) : NULL;
		char *detail = xasprintf("cannot rotate log '%s': %s", path, strerror(-error));
		lr->log(lr->ud, vm, "log-rotate", "failed", detail);
		free(detail);
		free(vm);
	}
	free(key);
}

static void on_timer(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	(void)l;
	struct mq_logrot *lr = ud;
	mq_log_rotate_dir(lr->runtime_dir, lr->cap, on_fail, lr);
	/* a cause is logged again only after it went away once */
	mq_strv_clear(&lr->reported);
	lr->reported = lr->seen;
	lr->seen = (struct mq_strv)MQ_STRV_INIT;
	mq_timer_reschedule(t, mq_mono_ms() + MQ_LOGROT_INTERVAL_MS);
}

struct mq_logrot *mq_logrot_new(struct mq_loop *l, const char *runtime_dir, mq_logrot_log_fn log, void *ud)
{
	struct mq_logrot *lr = xcalloc(1, sizeof(*lr));
	lr->loop = l;
	lr->runtime_dir = xstrdup(runtime_dir);
	lr->cap = mq_log_cap();
	lr->log = log;
	lr->ud = ud;
	lr->reported = (struct mq_strv)MQ_STRV_INIT;
	lr->seen = (struct mq_strv)MQ_STRV_INIT;
	lr->timer = mq_loop_add_timer_in(l, MQ_LOGROT_INTERVAL_MS, on_timer, lr);
	return lr;
}

struct mq_logrot *mq_logrot_free(struct mq_logrot *lr)
{
	if (!lr)
		return NULL;
	if (lr->timer)
		mq_timer_cancel(lr->timer);
	mq_strv_clear(&lr->reported);
	mq_strv_clear(&lr->seen);
	free(lr->runtime_dir);
	free(lr);
	return NULL;
}
