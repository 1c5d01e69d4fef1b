/* snapops-img.c - the default struct mq_snapops while the snapshot library
 * (reconciler/snapshot.h) is not linked in: offline snapshots only, with
 * qemu-img on every qcow2 drive of a STOPPED VM, and the origin rows of the
 * state store (state/snapshots.h).  A running VM is refused with a message
 * saying live snapshots are not available (nothing is changed).
 */
#include "reconciler/snapplan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reconciler/img.h"
#include "reconciler/vmpaths.h"
#include "specs/fromjson.h"
#include "util/paths.h"
#include "util/xalloc.h"

static void img_list_release(struct mq_snap_list *l)
{
	for (size_t i = 0; l && i < l->n; i++) {
		struct mq_snapshot *s = &l->items[i];
		free(s->name);
		for (size_t k = 0; k < s->n_drives; k++)
			free(s->drives[k]);
		free(s->drives);
	}
	if (l) {
		free(l->items);
		l->items = NULL;
		l->n = 0;
	}
}

static void img_result_release(struct mq_snap_result *r)
{
	if (r) {
		free(r->backup);
		r->backup = NULL;
	}
}

static bool running(const struct mq_vm_record *rec)
{
	return mq_status_is_up(mq_observe(rec));
}

static struct mq_snapshot *find(struct mq_snap_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i].name, name) == 0)
			return &l->items[i];
	return NULL;
}

static int origin_of(const char *s)
{
	static const char *const names[] = { "external", "manual", "declared", "scheduled", "pre-change", "pre-restore" };
	for (size_t i = 0; s && i < MQ_ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return MQ_SNAP_EXTERNAL;
}

static const char *origin_str(enum mq_snap_origin o)
{
	static const char *const names[] = { "external", "manual", "declared", "scheduled", "pre-change", "pre-restore" };
	return (size_t)o < MQ_ARRAY_SIZE(names) ? names[o] : "external";
}

static int recspec(const struct mq_vm_record *rec, struct mq_spec **out, struct mq_error **err)
{
	if (!rec->spec_json)
		return mq_error_set(err, ENOENT, "vm '%s' has no recorded spec", rec->name);
	return mq_spec_from_canonical(rec->spec_json, rec->source, out, err);
}

static int img_list(const struct mq_snap_env *env, const struct mq_vm_record *rec, struct mq_snap_list *out,
		    struct mq_error **err)
{
	struct mq_spec *spec = NULL;
	int r = recspec(rec, &spec, err);
	if (r < 0)
		return r;
	if (running(rec)) {
		mq_spec_free(spec);
		return mq_error_set(err, EBUSY,
				    "cannot list snapshots of vm '%s': it is running and live snapshot listing is not "
				    "available in this build",
				    rec->name);
	}
	struct mq_snap_list l = { 0 };
	for (size_t i = 0; i < spec->n_storage && r == 0; i++) {
		const struct mq_storage *s = &spec->storage[i];
		if (s->type != MQ_STORAGE_QCOW2)
			continue;
		char *path = mq_storage_image_path(spec, s, env->disk_dir);
		struct mq_strv tags = MQ_STRV_INIT;
		if (access(path, F_OK) == 0)
			r = mq_img_snapshot_list(NULL, path, &tags, err);
		free(path);
		for (size_t k = 0; k < tags.n; k++) {
			struct mq_snapshot *sn = find(&l, tags.v[k]);
			if (!sn) {
				l.items = xrealloc(l.items, (l.n + 1) * sizeof(*l.items));
				sn = &l.items[l.n++];
				memset(sn, 0, sizeof(*sn));
				sn->name = xstrdup(tags.v[k]);
				sn->origin = MQ_SNAP_EXTERNAL;
			}
			sn->drives = xrealloc(sn->drives, (sn->n_drives + 1) * sizeof(*sn->drives));
			sn->drives[sn->n_drives++] = xstrdup(s->name);
		}
		mq_strv_clear(&tags);
	}
	mq_spec_free(spec);
	if (r == 0 && env->store) {
		struct mq_snap_row *rows = NULL;
		size_t n = 0;
		r = mq_store_snap_list(env->store, rec->name, &rows, &n, err);
		for (size_t i = 0; r == 0 && i < n; i++) {
			struct mq_snapshot *sn = find(&l, rows[i].name);
			if (sn) {
				sn->origin = (enum mq_snap_origin)origin_of(rows[i].origin);
				sn->created_at = rows[i].created_at;
			}
		}
		mq_snap_rows_free(rows, n);
	}
	if (r < 0) {
		img_list_release(&l);
		return r;
	}
	*out = l;
	return 0;
}

static int img_create(const struct mq_snap_env *env, struct mq_vm_record *rec, const struct mq_snap_create_opts *o,
		      struct mq_snap_result *res, struct mq_error **err)
{
	if (running(rec))
		return mq_error_set(err, EBUSY,
				    "cannot snapshot vm '%s': it is running and live snapshots are not available in this "
				    "build (stop it, or use a build with the snapshot library)",
				    rec->name);
	struct mq_spec *spec = NULL;
	int r = recspec(rec, &spec, err);
	if (r < 0)
		return r;
	int64_t t0 = mq_now_ms();
	struct mq_strv done = MQ_STRV_INIT;
	/* a declared snapshot of a VM never started yet: its images first */
	if (env->disk_dir)
		r = mq_mkdir_p(env->disk_dir, 0700, err);
	if (r == 0)
		r = mq_qemu_prepare_disks(spec, env->disk_dir, NULL, err);
	for (size_t i = 0; i < spec->n_storage && r == 0; i++) {
		const struct mq_storage *s = &spec->storage[i];
		if (s->type != MQ_STORAGE_QCOW2)
			continue;
		char *path = mq_storage_image_path(spec, s, env->disk_dir);
		r = mq_img_snapshot_create(NULL, path, o->name, err);
		if (r == 0)
			mq_strv_push(&done, path);
		free(path);
	}
	if (r == 0 && done.n == 0)
		r = mq_error_set(err, ENOENT, "vm '%s' has no qcow2 drive", rec->name);
	if (r == 0 && env->store)
		r = mq_store_snap_put(env->store, rec->name, o->name, origin_str(o->origin), t0, err);
	if (r < 0) {
		/* leave no partial snapshot behind */
		for (size_t k = 0; k < done.n; k++)
			(void)mq_img_snapshot_delete(NULL, done.v[k], o->name, NULL);
		r = mq_error_prefix(err, "cannot snapshot vm '%s'", rec->name);
	} else if (res) {
		res->live = false;
		res->n_drives = done.n;
		res->duration_ms = mq_now_ms() - t0;
	}
	mq_strv_clear(&done);
	mq_spec_free(spec);
	return r;
}

static int img_delete(const struct mq_snap_env *env, struct mq_vm_record *rec, const char *name,
		      struct mq_snap_result *res, struct mq_error **err)
{
	if (running(rec))
		return mq_error_set(err, EBUSY,
				    "cannot delete snapshot '%s' of vm '%s': it is running and live snapshot deletion is "
				    "not available in this build",
				    name, rec->name);
	struct mq_spec *spec = NULL;
	int r = recspec(rec, &spec, err);
	if (r < 0)
		return r;
	int64_t t0 = mq_now_ms();
	size_t n = 0;
	for (size_t i = 0; i < spec->n_storage && r == 0; i++) {
		const struct mq_storage *s = &spec->storage[i];
		if (s->type != MQ_STORAGE_QCOW2)
			continue;
		char *path = mq_storage_image_path(spec, s, env->disk_dir);
		struct mq_strv tags = MQ_STRV_INIT;
		r = mq_img_snapshot_list(NULL, path, &tags, err);
		if (r == 0 && mq_strv_contains(&tags, name)) {
			r = mq_img_snapshot_delete(NULL, path, name, err);
			n++;
		}
		mq_strv_clear(&tags);
		free(path);
	}
	if (r == 0 && env->store)
		r = mq_store_snap_delete(env->store, rec->name, name, err);
	if (r < 0)
		r = mq_error_prefix(err, "cannot delete snapshot '%s' of vm '%s'", name, rec->name);
	else if (res) {
		res->n_drives = n;
		res->duration_ms = mq_now_ms() - t0;
	}
	mq_spec_free(spec);
	return r;
}

const struct mq_snapops mq_snapops_default = {
	.list = img_list,
	.create = img_create,
	.del = img_delete,
	.list_release = img_list_release,
	.result_release = img_result_release,
};
