/* lease.c - the disk lease (see lease.h). */
#include "reconciler/lease.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "reconciler/vmpaths.h"
#include "state/store.h"
#include "util/xalloc.h"

char *mq_lease_path(const struct mq_spec *spec, const char *disk_dir)
{
	for (size_t i = 0; i < spec->n_storage; i++) {
		const struct mq_storage *s = &spec->storage[i];
		if (s->type != MQ_STORAGE_QCOW2 && s->type != MQ_STORAGE_RAW)
			continue;
		char *img = mq_storage_image_path(spec, s, disk_dir);
		char *p = xasprintf("%s%s", img, MQ_LEASE_SUFFIX);
		free(img);
		return p;
	}
	return NULL;
}

static void copy_field(char *dst, size_t n, const char *src, size_t len)
{
	if (len >= n)
		len = n - 1;
	for (size_t i = 0; i < len; i++)
		dst[i] = (src[i] >= 0x21 && src[i] < 0x7f) ? src[i] : '?';
	dst[len] = '\0';
}

/* The holder as written by mq_lease_take: "host NAME\nvm NAME\npid N\nsince MS\n". */
static void read_holder(int fd, struct mq_lease_holder *h)
{
	memset(h, 0, sizeof(*h));
	char buf[512];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		size_t len = next ? (size_t)(next - line) : strlen(line);
		if (next)
			*next++ = '\0';
		char *sp = memchr(line, ' ', len);
		if (!sp)
			continue;
		const char *v = sp + 1;
		size_t vl = len - (size_t)(v - line);
		if (strncmp(line, "host ", 5) == 0)
			copy_field(h->host, sizeof(h->host), v, vl);
		else if (strncmp(line, "vm ", 3) == 0)
			copy_field(h->vm, sizeof(h->vm), v, vl);
		else if (strncmp(line, "pid ", 4) == 0)
			h->pid = strtoll(v, NULL, 10);
		else if (strncmp(line, "since ", 6) == 0)
			h->since_ms = strtoll(v, NULL, 10);
	}
}

static int write_holder(int fd, const char *host, const char *vm, long long pid, int64_t since_ms)
{
	char *text = xasprintf("host %s\nvm %s\npid %lld\nsince %lld\n", host, vm, pid, (long long)since_ms);
	size_t len = strlen(text);
	errno = 0;
	int r = ftruncate(fd, 0) < 0 || pwrite(fd, text, len, 0) != (ssize_t)len ? -1 : 0;
	free(text);
	return r;
}

int mq_lease_set_pid(int fd, pid_t pid)
{
	struct mq_lease_holder h;
	read_holder(fd, &h);
	if (write_holder(fd, h.host, h.vm, (long long)pid, h.since_ms) < 0)
		return -(errno ? errno : EIO);
	return 0;
}

int mq_lease_probe(const char *path, struct mq_lease_holder *h)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	int r = 0;
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		r = -errno;
	else if (fl.l_type != F_UNLCK) {
		r = 1;
		if (h)
			read_holder(fd, h);
	}
	close(fd);
	return r;
}

int mq_lease_take(const char *path, const char *host, const char *vm, struct mq_lease_holder *h,
		  struct mq_error **err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		int e = errno;
		return mq_error_set(err, e, "cannot take the disk lease '%s': %s", path, strerror(e));
	}
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;
		if (e == EAGAIN || e == EACCES) {
			struct mq_lease_holder tmp;
			read_holder(fd, &tmp);
			if (h)
				*h = tmp;
			close(fd);
			char who[160];
			return mq_error_set(err, EBUSY, "its disk lease '%s' is held by %s", path,
					    mq_lease_holder_str(&tmp, who, sizeof(who)));
		}
		close(fd);
		return mq_error_set(err, e, "cannot lock the disk lease '%s': %s", path, strerror(e));
	}
	struct utsname u;
	if (!host)
		host = uname(&u) == 0 ? u.nodename : "?";
	int r = 0;
	if (write_holder(fd, host, vm, getpid(), mq_now_ms()) < 0)
		r = mq_error_set(err, errno ? errno : EIO, "cannot write the disk lease '%s': %s", path,
				 strerror(errno ? errno : EIO));
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

const char *mq_lease_holder_str(const struct mq_lease_holder *h, char *buf, size_t n)
{
	if (h->host[0])
		snprintf(buf, n, "host %s", h->host);
	else
		snprintf(buf, n, "an unknown holder");
	return buf;
}
