/* img.c - qemu-img calls (see img.h). */
#include "reconciler/img.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/spawn.h"
#include "reconciler/vmpaths.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define QEMU_IMG_TIMEOUT_MS 60000

static void push2(struct mq_strv *v, const char *a, const char *b)
{
	mq_strv_push(v, a);
	mq_strv_push(v, b);
}

/* qemu-img next to an explicit binary path, else through PATH. */
char *mq_img_find(const struct mq_spec *spec)
{
	if (spec->binary && strchr(spec->binary, '/')) {
		char *dir = mq_path_dirname(spec->binary);
		char *cand = xasprintf("%s/qemu-img", dir);
		free(dir);
		char *r = mq_spawn_resolve(cand);
		free(cand);
		if (r)
			return r;
	}
	return mq_spawn_resolve("qemu-img");
}

/* qemu-img's diagnostics on one line: non-empty lines joined by "; ", each
 * without the "qemu-img: " and "<image>: " prefixes (its last line alone,
 * "Could not open backing image.", would hide the reason). */
static char *qemu_img_message(const char *out, const char *img)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	size_t il = strlen(img);
	for (const char *l = out; *l;) {
		size_t n = strcspn(l, "\r\n");
		const char *e = l + n;
		while (n && (*l == ' ' || *l == '\t')) {
			l++;
			n--;
		}
		while (n && (l[n - 1] == ' ' || l[n - 1] == '\t'))
			n--;
		if (n >= 10 && memcmp(l, "qemu-img: ", 10) == 0) {
			l += 10;
			n -= 10;
		}
		if (n >= il + 2 && memcmp(l, img, il) == 0 && l[il] == ':' && l[il + 1] == ' ') {
			l += il + 2;
			n -= il + 2;
		}
		if (n) {
			if (sb.len)
				mq_strbuf_adds(&sb, "; ");
			mq_strbuf_add(&sb, l, n);
		}
		l = e;
		while (*l == '\r' || *l == '\n')
			l++;
	}
	return mq_strbuf_detach(&sb);
}

static int create_image(const struct mq_spec *spec, const struct mq_storage *s, const char *img,
			bool default_dir, struct mq_error **err)
{
	const char *fmt = s->type == MQ_STORAGE_RAW ? "raw" : "qcow2";
	char *dir = mq_path_dirname(img);
	int r = mq_mkdir_p(dir, default_dir ? 0700 : 0755, err);
	free(dir);
	if (r < 0)
		return mq_error_prefix(err, "storage '%s' of vm '%s'", s->name, spec->name);

	char *qimg = mq_img_find(spec);
	if (!qimg)
		return mq_error_set(err, ENOENT,
				    "storage '%s' of vm '%s': cannot create image '%s': qemu-img not found "
				    "(install qemu-utils)",
				    s->name, spec->name, img);

	/* Reserve the name: O_EXCL never follows or replaces anything that
	 * appeared since the caller's lstat(), so qemu-img only ever rewrites
	 * the empty file created here. */
	int fd = open(img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;
		free(qimg);
		if (e == EEXIST)
			return 0; /* appeared meanwhile: leave it alone */
		return mq_error_set(err, e, "storage '%s' of vm '%s': cannot create image '%s': %s", s->name,
				    spec->name, img, strerror(e));
	}
	close(fd);

	struct mq_strv av = MQ_STRV_INIT;
	mq_strv_push(&av, qimg);
	mq_strv_push(&av, "create");
	mq_strv_push(&av, "-q");
	push2(&av, "-f", fmt);
	if (s->backing_file) {
		push2(&av, "-b", s->backing_file);
		push2(&av, "-F", s->backing_format ? s->backing_format : "qcow2");
	}
	mq_strv_push(&av, img);
	if (s->size)
		mq_strv_pushf(&av, "%llu", (unsigned long long)s->size);

	char *out = NULL;
	int st = 0;
	r = mq_spawn_capture(qimg, av.v, QEMU_IMG_TIMEOUT_MS, &out, &st, err);
	if (r < 0) {
		mq_error_prefix(err, "storage '%s' of vm '%s': cannot create image '%s'", s->name, spec->name, img);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *line = qemu_img_message(out, img);
		if (!*line) {
			free(line);
			char *how = mq_wait_status_str(st);
			line = xasprintf("qemu-img %s", how);
			free(how);
		}
		r = mq_error_set(err, EIO, "storage '%s' of vm '%s': cannot create image '%s': %s", s->name,
				 spec->name, img, line);
		free(line);
	}
	free(out);
	mq_strv_clear(&av);
	free(qimg);
	if (r < 0)
		unlink(img); /* only ever the file reserved above */
	return r;
}

int mq_qemu_prepare_disks(const struct mq_spec *spec, const char *disk_dir, struct mq_strv *created,
			  struct mq_error **err)
{
	for (size_t i = 0; i < spec->n_storage; i++) {
		const struct mq_storage *s = &spec->storage[i];
		struct stat st;
		if (s->type == MQ_STORAGE_VIRTFS) {
			const char *p = s->path ? s->path : "";
			if (stat(p, &st) < 0)
				return mq_error_set(err, errno, "storage '%s' of vm '%s': shared path '%s': %s", s->name,
						    spec->name, p, strerror(errno));
			if (!S_ISDIR(st.st_mode))
				return mq_error_set(err, ENOTDIR,
						    "storage '%s' of vm '%s': shared path '%s' is not a directory",
						    s->name, spec->name, p);
			continue;
		}
		if (!s->file && !disk_dir)
			return mq_error_set(err, EINVAL, "storage '%s' of vm '%s': no 'file' and no disk directory",
					    s->name, spec->name);
		char *img = mq_storage_image_path(spec, s, disk_dir);
		if (lstat(img, &st) == 0) {
			free(img); /* existing images are never touched */
			continue;
		}
		if (errno != ENOENT) {
			int e = errno;
			int r = mq_error_set(err, e, "storage '%s' of vm '%s': cannot access image '%s': %s", s->name,
					     spec->name, img, strerror(e));
			free(img);
			return r;
		}
		if (!s->size && !s->backing_file) {
			int r = mq_error_set(err, ENOENT,
					     "storage '%s' of vm '%s': image '%s' does not exist and no 'size' is given",
					     s->name, spec->name, img);
			free(img);
			return r;
		}
		int r = create_image(spec, s, img, s->file == NULL, err);
		if (r < 0) {
			free(img);
			return r;
		}
		if (created)
			mq_strv_push_take(created, img);
		else
			free(img);
	}
	return 0;
}


/* ---- snapshots ------------------------------------------------------------ */

/* Run `qemu-img snapshot <op> [tag] image`; output in *out (may be NULL). */
static int img_snapshot_tick(const char *qemu_img, const char *op, const char *tag, const char *image, char **out,
			     int tick_ms, void (*tick)(void *ud), void *ud, struct mq_error **err)
{
	char *qimg = qemu_img ? xstrdup(qemu_img) : mq_spawn_resolve("qemu-img");
	if (!qimg)
		return mq_error_set(err, ENOENT, "qemu-img not found (install qemu-utils)");
	struct mq_strv av = MQ_STRV_INIT;
	mq_strv_push(&av, qimg);
	mq_strv_push(&av, "snapshot");
	if (strcmp(op, "-l") != 0)
		mq_strv_push(&av, "-q");
	mq_strv_push(&av, op);
	if (tag)
		mq_strv_push(&av, tag);
	mq_strv_push(&av, image);
	char *o = NULL;
	int st = 0;
	int r = mq_spawn_capture_tick(qimg, av.v, QEMU_IMG_TIMEOUT_MS, tick_ms, tick, ud, &o, &st, err);
	if (r == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
		char *line = qemu_img_message(o, image);
		if (!*line) {
			free(line);
			char *how = mq_wait_status_str(st);
			line = xasprintf("qemu-img %s", how);
			free(how);
		}
		r = mq_error_set(err, EIO, "%s", line);
		free(line);
	}
	if (r == 0 && out)
		*out = o;
	else
		free(o);
	mq_strv_clear(&av);
	free(qimg);
	return r;
}

static int img_snapshot(const char *qemu_img, const char *op, const char *tag, const char *image, char **out,
			struct mq_error **err)
{
	return img_snapshot_tick(qemu_img, op, tag, image, out, 0, NULL, NULL, err);
}

int mq_img_snapshot_op(const char *qemu_img, char op, const char *image, const char *tag, int tick_ms,
		       void (*tick)(void *ud), void *ud, struct mq_error **err)
{
	static const char *const what[] = { "create", "delete", "apply" };
	int k = op == 'c' ? 0 : op == 'd' ? 1 : op == 'a' ? 2 : -1;
	if (k < 0)
		return mq_error_set(err, EINVAL, "unknown qemu-img snapshot operation '%c'", op);
	char flag[3] = { '-', op, '\0' };
	int r = img_snapshot_tick(qemu_img, flag, tag, image, NULL, tick_ms, tick, ud, err);
	return r < 0 ? mq_error_prefix(err, "cannot %s snapshot '%s' of '%s'", what[k], tag, image) : 0;
}

int mq_img_repair_leaks(const char *qemu_img, const char *image, struct mq_error **err)
{
	char *qimg = qemu_img ? xstrdup(qemu_img) : mq_spawn_resolve("qemu-img");
	if (!qimg)
		return mq_error_set(err, ENOENT, "qemu-img not found (install qemu-utils)");
	char *const av[] = { qimg, "check", "-q", "-r", "leaks", (char *)image, NULL };
	char *o = NULL;
	int st = 0;
	int r = mq_spawn_capture(qimg, av, QEMU_IMG_TIMEOUT_MS, &o, &st, err);
	if (r == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
		char *line = qemu_img_message(o, image);
		r = mq_error_set(err, EIO, "cannot repair leaked clusters of '%s': %s", image,
				 *line ? line : "qemu-img check failed");
		free(line);
	}
	free(o);
	free(qimg);
	return r;
}

int mq_img_snapshot_list(const char *qemu_img, const char *image, struct mq_strv *tags, struct mq_error **err)
{
	char *out = NULL;
	int r = img_snapshot(qemu_img, "-l", NULL, image, &out, err);
	if (r < 0)
		return mq_error_prefix(err, "cannot list snapshots of '%s'", image);
	/* "Snapshot list:" / header "ID  TAG  VM SIZE ..." / one row per snapshot */
	struct mq_strv got = MQ_STRV_INIT;
	bool header = false;
	for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "ID", 2) == 0) {
			header = true;
			continue;
		}
		if (!header)
			continue;
		char *s2 = NULL;
		char *id = strtok_r(l, " \t", &s2);
		char *tag = id ? strtok_r(NULL, " \t", &s2) : NULL;
		if (tag)
			mq_strv_push(&got, tag);
	}
	free(out);
	mq_strv_extend(tags, &got);
	mq_strv_clear(&got);
	return 0;
}

int mq_img_snapshot_create(const char *qemu_img, const char *image, const char *tag, struct mq_error **err)
{
	int r = img_snapshot(qemu_img, "-c", tag, image, NULL, err);
	return r < 0 ? mq_error_prefix(err, "cannot create snapshot '%s' of '%s'", tag, image) : 0;
}

int mq_img_snapshot_delete(const char *qemu_img, const char *image, const char *tag, struct mq_error **err)
{
	int r = img_snapshot(qemu_img, "-d", tag, image, NULL, err);
	return r < 0 ? mq_error_prefix(err, "cannot delete snapshot '%s' of '%s'", tag, image) : 0;
}

int mq_img_snapshot_apply(const char *qemu_img, const char *image, const char *tag, struct mq_error **err)
{
	int r = img_snapshot(qemu_img, "-a", tag, image, NULL, err);
	return r < 0 ? mq_error_prefix(err, "cannot apply snapshot '%s' of '%s'", tag, image) : 0;
}

int mq_img_info_json(const char *qemu_img, const char *image, bool force_share, char **json, struct mq_error **err)
{
	char *qimg = qemu_img ? xstrdup(qemu_img) : mq_spawn_resolve("qemu-img");
	if (!qimg)
		return mq_error_set(err, ENOENT, "qemu-img not found (install qemu-utils)");
	struct mq_strv av = MQ_STRV_INIT;
	mq_strv_push(&av, qimg);
	mq_strv_push(&av, "info");
	mq_strv_push(&av, "--output=json");
	if (force_share)
		mq_strv_push(&av, "-U");
	mq_strv_push(&av, image);
	char *o = NULL;
	int st = 0;
	int r = mq_spawn_capture(qimg, av.v, QEMU_IMG_TIMEOUT_MS, &o, &st, err);
	if (r == 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
		char *line = qemu_img_message(o, image);
		if (!*line) {
			free(line);
			char *how = mq_wait_status_str(st);
			line = xasprintf("qemu-img %s", how);
			free(how);
		}
		r = mq_error_set(err, EIO, "cannot read '%s': %s", image, line);
		free(line);
	}
	if (r == 0)
		*json = o;
	else
		free(o);
	mq_strv_clear(&av);
	free(qimg);
	return r;
}
