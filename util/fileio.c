#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

int mq_read_file(const char *path, size_t cap, char **out, size_t *len, struct mq_error **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return mq_error_set(err, errno, "cannot open '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return mq_error_set(err, e, "cannot stat '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return mq_error_set(err, EINVAL, "'%s' is not a regular file", path);
	}
	if ((size_t)st.st_size > cap) {
		close(fd);
		return mq_error_set(err, EFBIG, "'%s' is too large (%lld bytes, limit %zu)", path,
				    (long long)st.st_size, cap);
	}
	/* /proc and /sys files report size 0 and must be read in one go. */
	size_t alloc = (size_t)st.st_size + 1, n = 0;
	if (alloc < 4096)
		alloc = 4096;
	char *buf = xmalloc(alloc + 1);
	for (;;) {
		if (n == alloc) {
			if (alloc > cap) {
				free(buf);
				close(fd);
				return mq_error_set(err, EFBIG, "'%s' is too large (limit %zu bytes)", path, cap);
			}
			alloc *= 2;
			buf = xrealloc(buf, alloc + 1);
		}
		ssize_t r = read(fd, buf + n, alloc - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			close(fd);
			return mq_error_set(err, e, "cannot read '%s': %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > cap) {
		free(buf);
		return mq_error_set(err, EFBIG, "'%s' is too large (limit %zu bytes)", path, cap);
	}
	buf[n] = '\0';
	if (alloc - n >= 1024) /* callers may keep it (watch keeps every manifest): no slack */
		buf = xrealloc(buf, n + 1);
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int mq_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int mq_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, struct mq_error **err)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		int e = errno;
		free(tmp);
		return mq_error_set(err, e, "cannot create '%s': %s", path, strerror(e));
	}
	int r = mq_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		free(tmp);
		return mq_error_set(err, -r, "cannot write '%s': %s", path, strerror(-r));
	}
	free(tmp);
	return 0;
}

char *mq_file_read_tail(const char *path, off_t offset, size_t max_bytes, size_t *len)
{
	if (len)
		*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return xstrdup("");
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size <= offset) {
		close(fd);
		return xstrdup("");
	}
	off_t start = st.st_size - offset > (off_t)max_bytes ? st.st_size - (off_t)max_bytes : offset;
	size_t want = (size_t)(st.st_size - start);
	char *buf = xmalloc(want + 1);
	ssize_t n = pread(fd, buf, want, start);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	if (len)
		*len = (size_t)n;
	return buf;
}

char *mq_file_tail(const char *path, int max_lines, size_t max_bytes)
{
	size_t n = 0;
	char *buf = mq_file_read_tail(path, 0, max_bytes, &n);
	/* trim trailing whitespace */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	char *p = buf + n;
	int lines = 0;
	while (p > buf) {
		if (p[-1] == '\n' && ++lines >= max_lines)
			break;
		p--;
	}
	char *r = xstrdup(p);
	free(buf);
	return r;
}
