/* qcow2snap.c - a qcow2 image's snapshot table (see qcow2snap.h). */
#include "reconciler/qcow2snap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

#define QCOW2_MAGIC 0x514649fbu  /* "QFI\xfb" */
#define MAX_SNAPSHOTS 65536      /* QEMU's QCOW_MAX_SNAPSHOTS */
#define MAX_EXTRA 1024           /* QEMU's QCOW_MAX_SNAPSHOT_EXTRA_DATA */
#define ENTRY_FIXED 40

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPROTO; /* past the end of the file */
		got += (size_t)n;
	}
	return 0;
}

int mq_qcow2_snapshots(const char *path, json_object **out, struct mq_error **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return mq_error_set(err, errno, "cannot open image '%s': %s", path, strerror(errno));
	struct stat st;
	unsigned char h[72];
	int r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0 && (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(h)))
		r = -ENOTSUP;
	if (r == 0)
		r = read_at(fd, h, sizeof(h), 0);
	if (r == 0 && (be(h, 4) != QCOW2_MAGIC || (be(h + 4, 4) != 2 && be(h + 4, 4) != 3)))
		r = -ENOTSUP;
	if (r < 0) {
		close(fd);
		if (r == -ENOTSUP)
			return mq_error_set(err, ENOTSUP, "'%s' is not a qcow2 image of version 2 or 3", path);
		return mq_error_set(err, -r, "cannot read image '%s': %s", path,
				    r == -EPROTO ? "too short" : strerror(-r));
	}
	uint64_t n = be(h + 60, 4), off = be(h + 64, 8);
	if (n > MAX_SNAPSHOTS || (n && (off % 8 || off >= (uint64_t)st.st_size))) {
		close(fd);
		return mq_error_set(err, EPROTO, "image '%s': bad snapshot table (%llu entries at offset %llu)", path,
				    (unsigned long long)n, (unsigned long long)off);
	}
	json_object *arr = json_object_new_array();
	char *text = NULL;
	for (uint64_t i = 0; i < n && r == 0; i++) {
		unsigned char e[ENTRY_FIXED];
		r = read_at(fd, e, sizeof(e), off);
		if (r < 0)
			break;
		size_t id_len = (size_t)be(e + 12, 2), name_len = (size_t)be(e + 14, 2);
		uint32_t extra_len = (uint32_t)be(e + 36, 4);
		if (extra_len > MAX_EXTRA) {
			r = -EPROTO;
			break;
		}
		size_t var = extra_len + id_len + name_len;
		text = xrealloc(text, var + 1);
		if (var)
			r = read_at(fd, text, var, off + ENTRY_FIXED);
		if (r < 0)
			break;
		uint64_t vm_state = be(e + 32, 4);
		if (extra_len >= 8)
			vm_state = be((unsigned char *)text, 8);
		uint64_t clock = be(e + 24, 8);
		json_object *s = json_object_new_object();
		json_object_object_add(s, "id", json_object_new_string_len(text + extra_len, (int)id_len));
		json_object_object_add(s, "name", json_object_new_string_len(text + extra_len + id_len, (int)name_len));
		json_object_object_add(s, "vm-state-size", json_object_new_int64((int64_t)vm_state));
		json_object_object_add(s, "date-sec", json_object_new_int64((int64_t)be(e + 16, 4)));
		json_object_object_add(s, "date-nsec", json_object_new_int64((int64_t)be(e + 20, 4)));
		json_object_object_add(s, "vm-clock-sec", json_object_new_int64((int64_t)(clock / 1000000000u)));
		json_object_object_add(s, "vm-clock-nsec", json_object_new_int64((int64_t)(clock % 1000000000u)));
		json_object_array_add(arr, s);
		off += (ENTRY_FIXED + var + 7) & ~(uint64_t)7;
	}
	free(text);
	close(fd);
	if (r < 0) {
		json_object_put(arr);
		return mq_error_set(err, -r, "image '%s': cannot read its snapshot table: %s", path,
				    r == -EPROTO ? "malformed or truncated" : strerror(-r));
	}
	json_object *o = json_object_new_object();
	json_object_object_add(o, "snapshots", arr);
	*out = o;
	return 0;
}
