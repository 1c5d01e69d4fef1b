/* shim-eio - LD_PRELOAD library for t-state-eio: while the file named by
 * $MQ_SHIM_EIO_FLAG exists, every write to maqet's state database (maqet.db
 * and its -wal) fails with EIO, as a failing disk would.  Other
 * writes go through untouched. */
/* both pwrite and pwrite64 are defined here: no header renaming */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int failing(int fd)
{
	const char *flag = getenv("MQ_SHIM_EIO_FLAG");
	if (!flag || access(flag, F_OK) != 0)
		return 0;
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	/* the database and its write-ahead log (not the -shm index every open
	 * needs: the disk fails where records are written) */
	size_t len = strlen(path);
	return (len >= 9 && strcmp(path + len - 9, "/maqet.db") == 0) ||
	       (len >= 13 && strcmp(path + len - 13, "/maqet.db-wal") == 0);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	if (!real)
		real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
	if (failing(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, count, off);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	if (!real)
		real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	if (failing(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, count, off);
}

ssize_t write(int fd, const void *buf, size_t count)
{
	static ssize_t (*real)(int, const void *, size_t);
	if (!real)
		real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (failing(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, count);
}
