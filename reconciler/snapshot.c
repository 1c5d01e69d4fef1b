/* snapshot.c - internal qcow2 snapshots of one VM: names, origins and create (see snapshot.h;
 * the operation context is snapop.c, restore and delete snaprestore.c). */
#include "reconciler/snapshot-int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "reconciler/audit.h"
#include "reconciler/phase.h"
#include "reconciler/qcow2snap.h"
#include "reconciler/qemu.h"
#include "reconciler/qmp.h"
#include "reconciler/vmlock.h"
#include "specs/fromjson.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

/* ---- names and origins ------------------------------------------------------ */

static const char *const origin_names[MQ_SNAP_ORIGIN__COUNT] = {
	[MQ_SNAP_EXTERNAL] = "external",   [MQ_SNAP_MANUAL] = "manual",
	[MQ_SNAP_DECLARED] = "declared",   [MQ_SNAP_SCHEDULED] = "scheduled",
	[MQ_SNAP_PRE_CHANGE] = "pre-change", [MQ_SNAP_PRE_RESTORE] = "pre-restore",
};

static const char *const reserved_prefixes[] = { "auto-", "pre-change-", "pre-restore-" };

const char *mq_snap_origin_name(enum mq_snap_origin o)
{
	return (unsigned)o < MQ_SNAP_ORIGIN__COUNT ? origin_names[o] : NULL;
}

int mq_snap_origin_parse(const char *s, enum mq_snap_origin *out, struct mq_error **err)
{
	for (unsigned i = 0; s && i < MQ_SNAP_ORIGIN__COUNT; i++) {
		if (strcmp(s, origin_names[i]) == 0) {
			*out = (enum mq_snap_origin)i;
			return 0;
		}
	}
	return mq_error_set(err, EINVAL, "unknown snapshot origin '%s'", s ? s : "");
}

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

int mq_snap_name_check(const char *name, enum mq_snap_origin origin, struct mq_error **err)
{
	static const char how[] = "use 1 to 64 letters, digits, '.', '_' or '-'";
	if (!name || !*name)
		return mq_error_set(err, EINVAL, "snapshot name is empty (%s)", how);
	size_t len = strlen(name);
	bool digits = true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!name_char_ok((char)c)) {
			if (c > 0x20 && c < 0x7f)
				return mq_error_set(err, EINVAL, "invalid snapshot name '%s': character '%c' is not allowed (%s)",
						    name, c, how);
			return mq_error_set(err, EINVAL,
					    "invalid snapshot name: byte 0x%02x at position %zu is not allowed (%s)", c,
					    i + 1, how);
		}
		if (c < '0' || c > '9')
			digits = false;
	}
	if (len > MQ_SNAP_NAME_MAX)
		return mq_error_set(err, EINVAL, "invalid snapshot name '%.20s...': %zu characters, at most %d", name, len,
				    MQ_SNAP_NAME_MAX);
	if (digits)
		return mq_error_set(err, EINVAL,
				    "invalid snapshot name '%s': digits only would be taken for a snapshot id by qemu "
				    "(add a letter)",
				    name);
	if (origin == MQ_SNAP_MANUAL || origin == MQ_SNAP_DECLARED) {
		for (size_t i = 0; i < sizeof(reserved_prefixes) / sizeof(reserved_prefixes[0]); i++) {
			size_t pl = strlen(reserved_prefixes[i]);
			if (strncmp(name, reserved_prefixes[i], pl) == 0)
				return mq_error_set(err, EINVAL,
						    "snapshot name '%s' is reserved: the prefix '%s' is for maqet's own "
						    "snapshots (choose another name)",
						    name, reserved_prefixes[i]);
		}
	}
	return 0;
}

char *mq_snap_auto_name(const char *prefix, int64_t now_ms)
{
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	int ms = (int)(now_ms % 1000);
	char frac[8] = "";
	if (ms)
		snprintf(frac, sizeof(frac), ".%03d", ms);
	return xasprintf("%s%04d%02d%02dT%02d%02d%02d%sZ", prefix ? prefix : "", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

char *mq_snap_node_name(const struct mq_spec *spec, size_t storage_index)
{
	const char *n = spec->storage[storage_index].name;
	size_t len = n ? strlen(n) : 0;
	bool ok = len > 0 && len + 3 <= 31;
	for (size_t i = 0; ok && i < len; i++)
		ok = name_char_ok(n[i]);
	return ok ? xasprintf("mq-%s", n) : xasprintf("mqdrive%zu", storage_index);
}

/* ---- create --------------------------------------------------------------- */

/* Which drives, and whether memory state is possible, checked before
 * anything changes. */
static int plan_create(struct op *op, const struct mq_snap_create_opts *o, bool live, bool vmstate,
		       struct mq_strv *drives, struct mq_error **err)
{
	const struct mq_spec *spec = op->spec;
	if (o->n_drives) {
		for (size_t i = 0; i < o->n_drives; i++) {
			long k = mq_snapop_storage_index(spec, o->drives[i]);
			if (k < 0)
				return mq_error_set(err, ENOENT, "vm '%s' has no drive '%s'", op->rec->name, o->drives[i]);
			if (spec->storage[k].type == MQ_STORAGE_VIRTFS)
				return mq_error_set(err, EINVAL,
						    "'%s' is a virtfs share, not a drive: it cannot be snapshotted",
						    o->drives[i]);
			if (spec->storage[k].type == MQ_STORAGE_RAW)
				return mq_error_set(err, EINVAL,
						    "drive '%s' is raw: internal snapshots need a qcow2 image", o->drives[i]);
			if (!mq_strv_contains(drives, o->drives[i]))
				mq_strv_push(drives, o->drives[i]);
		}
	} else {
		for (size_t i = 0; i < spec->n_storage; i++) {
			if (spec->storage[i].type == MQ_STORAGE_QCOW2)
				mq_strv_push(drives, spec->storage[i].name);
		}
		if (!drives->n)
			return mq_error_set(err, EINVAL, "vm '%s' has no qcow2 drive to hold a snapshot", op->rec->name);
	}
	if (live && vmstate) {
		for (size_t i = 0; i < spec->n_storage; i++) {
			const struct mq_storage *s = &spec->storage[i];
			if (s->type == MQ_STORAGE_RAW)
				return mq_error_set(err, EINVAL,
						    "drive '%s' is raw: a snapshot with memory state must capture every "
						    "disk, and a raw image cannot hold a snapshot (use --no-vmstate for "
						    "the qcow2 drives only)",
						    s->name);
			if (s->type == MQ_STORAGE_VIRTFS)
				return mq_error_set(err, EINVAL,
						    "virtfs share '%s' blocks migration, and saving memory state is a "
						    "migration into the image (use --no-vmstate for a disk-only snapshot)",
						    s->name);
			if (s->type == MQ_STORAGE_QCOW2 && !mq_strv_contains(drives, s->name))
				return mq_error_set(err, EINVAL,
						    "a snapshot with memory state must include every drive, and '%s' was "
						    "left out (drop --drive or add --no-vmstate)",
						    s->name);
		}
	}
	if (live)
		return mq_snapop_need_nodes(op, drives, err);
	for (size_t i = 0; i < drives->n; i++) {
		char *img = mq_snapop_image_of(op, (size_t)mq_snapop_storage_index(spec, drives->v[i]));
		bool there = access(img, F_OK) == 0;
		int r = there ? 0
			      : mq_error_set(err, ENOENT, "drive '%s' has no image yet at '%s' (start the vm once first)",
					     drives->v[i], img);
		free(img);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Does the VM allow a snapshot with memory state (no raw drive, no virtfs)? */
bool mq_snapop_vmstate_possible(const struct mq_spec *spec)
{
	for (size_t i = 0; i < spec->n_storage; i++) {
		if (spec->storage[i].type != MQ_STORAGE_QCOW2)
			return false;
	}
	return spec->n_storage > 0;
}

int mq_snapop_query_running_status(struct op *op, char **status)
{
	return mq_qmp_query_status(op->q, QMP_TIMEOUT_MS, status, NULL);
}

/* After a failed live operation: the VM runs as it did before. */
void mq_snapop_resume_if_needed(struct op *op, bool was_running)
{
	char *st = NULL;
	if (!was_running || mq_snapop_query_running_status(op, &st) < 0) {
		free(st);
		return;
	}
	if (strcmp(st, "paused") == 0 || strcmp(st, "postmigrate") == 0 || strcmp(st, "finish-migrate") == 0 ||
	    strcmp(st, "save-vm") == 0)
		(void)mq_qmp_execute(op->q, "cont", NULL, QMP_TIMEOUT_MS, NULL, NULL);
	free(st);
}

/* Which of `drives` hold `tag` now (re-read). */
static void drives_holding(struct op *op, const char *tag, const struct mq_strv *drives, struct mq_strv *out)
{
	struct mq_snap_list l = { 0 };
	struct mq_error *e = NULL;
	if (mq_snapop_list(op, &l, &e) == 0) {
		const struct mq_snapshot *s = mq_snap_list_find(&l, tag);
		for (size_t i = 0; s && i < drives->n; i++) {
			if (mq_snapop_has_drive(s, drives->v[i]))
				mq_strv_push(out, drives->v[i]);
		}
	} else {
		mq_strv_extend(out, drives); /* unknown: try them all */
	}
	mq_error_free(e);
	mq_snap_list_release(&l);
}

/* QEMU reports a memory state that did not fit as "Error while writing VM
 * state: Input/output error": say when the filesystem holding a drive has
 * less room than the guest's memory, which the state may need. */
static void space_hint(const struct op *op, const struct mq_strv *drives, struct mq_error **err)
{
	uint64_t need = op->spec->memory ? op->spec->memory : 128ull << 20; /* QEMU's default */
	for (size_t i = 0; i < drives->n; i++) {
		char *img = mq_snapop_image_of(op, (size_t)mq_snapop_storage_index(op->spec, drives->v[i]));
		struct statvfs sv;
		if (statvfs(img, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < need) {
			uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
			char *m = xasprintf("%s (the filesystem holding '%s' has %llu MiB free, less than the %llu MiB "
					    "of guest memory the memory state may need: free some space, or use "
					    "--no-vmstate)",
					    (*err)->msg, img, (unsigned long long)(avail >> 20),
					    (unsigned long long)(need >> 20));
			mq_error_set(err, ENOSPC, "%s", m);
			free(m);
			free(img);
			return;
		}
		free(img);
	}
}

static int do_create(struct op *op, const char *name, const struct mq_strv *drives, bool vmstate,
		     struct mq_error **err)
{
	if (!op->running) {
		for (size_t i = 0; i < drives->n; i++) {
			long k = mq_snapop_storage_index(op->spec, drives->v[i]);
			char *img = mq_snapop_image_of(op, (size_t)k);
			int r = mq_snapop_img_op(op, 'c', img, name, true, i, drives->n, err);
			if (r < 0) /* e.g. out of space half-way: clusters it took */
				(void)mq_img_repair_leaks(op->qemu_img, img, NULL);
			free(img);
			if (r < 0) {
				struct mq_strv done = { .v = drives->v, .n = i };
				(void)mq_snapop_delete_on(op, name, &done, false, NULL);
				return r;
			}
			mq_snapop_progress(op, "running", (int64_t)i + 1, (int64_t)drives->n);
		}
		return 0;
	}
	char *st = NULL;
	bool was_running = mq_snapop_query_running_status(op, &st) == 0 && strcmp(st, "running") == 0;
	free(st);
	int r;
	if (vmstate) {
		long k0 = mq_snapop_storage_index(op->spec, drives->v[0]);
		json_object *args = json_object_new_object();
		json_object_object_add(args, "tag", json_object_new_string(name));
		json_object_object_add(args, "vmstate", json_object_new_string(op->nodes[k0]));
		json_object_object_add(args, "devices", mq_snapop_node_array(op, drives));
		r = mq_snapop_run_job(op, "snapshot-save", args, err);
		json_object_put(args);
	} else {
		/* disks only: one transaction, all drives or none */
		json_object *actions = json_object_new_array();
		for (size_t i = 0; i < drives->n; i++) {
			long k = mq_snapop_storage_index(op->spec, drives->v[i]);
			json_object *a = json_object_new_object(), *d = json_object_new_object();
			json_object_object_add(d, "device", json_object_new_string(op->nodes[k]));
			json_object_object_add(d, "name", json_object_new_string(name));
			json_object_object_add(a, "type", json_object_new_string("blockdev-snapshot-internal-sync"));
			json_object_object_add(a, "data", d);
			json_object_array_add(actions, a);
		}
		json_object *args = json_object_new_object();
		json_object_object_add(args, "actions", actions);
		mq_snapop_progress(op, "running", 0, 1);
		r = mq_qmp_execute(op->q, "transaction", args, mq_snapop_job_timeout(op), NULL, err);
		json_object_put(args);
		if (r == 0)
			mq_snapop_progress(op, "concluded", 1, 1);
	}
	if (r < 0 && vmstate && err && *err)
		space_hint(op, drives, err);
	if (r < 0) {
		struct mq_strv left = MQ_STRV_INIT;
		drives_holding(op, name, drives, &left);
		if (left.n)
			(void)mq_snapop_delete_on(op, name, &left, false, NULL);
		mq_strv_clear(&left);
		mq_snapop_resume_if_needed(op, was_running);
	}
	return r;
}

int mq_snapop_create_in(struct op *op, const struct mq_snap_create_opts *o, struct mq_snap_result *res,
		     struct mq_error **err)
{
	int64_t t0 = mq_mono_ms();
	const char *vm = op->rec->name;
	struct mq_error *e = NULL;
	int r = 0;
	if (o->origin == MQ_SNAP_EXTERNAL || (unsigned)o->origin >= MQ_SNAP_ORIGIN__COUNT)
		r = mq_error_set(&e, EINVAL, "a snapshot made by maqet needs an origin other than 'external'");
	if (r == 0)
		r = mq_snap_name_check(o->name, o->origin, &e);
	bool live = op->running;
	if (r == 0 && o->mode == MQ_SNAP_MODE_LIVE && !op->running)
		r = mq_error_set(&e, EINVAL, "it is not running, so a live snapshot is not possible (drop --live)");
	if (r == 0 && o->mode == MQ_SNAP_MODE_OFFLINE && op->running)
		r = mq_error_set(&e, EBUSY,
				 "it is running and qemu holds its images (stop it first, or drop --offline for a "
				 "live snapshot)");
	bool vmstate = live && !o->no_vmstate;
	struct mq_strv drives = MQ_STRV_INIT;
	if (r == 0)
		r = plan_create(op, o, live, vmstate, &drives, &e);
	struct mq_snap_list l = { 0 };
	if (r == 0)
		r = mq_snapop_list(op, &l, &e);
	const struct mq_snapshot *old = r == 0 ? mq_snap_list_find(&l, o->name) : NULL;
	if (r == 0 && old && !o->overwrite)
		r = mq_error_set(&e, EEXIST, "snapshot '%s' already exists (add --overwrite to replace it)", o->name);
	enum mq_phase resume = MQ_PHASE_STOPPED;
	if (r == 0)
		r = mq_snapop_check_phase(op, "snapshot", &resume, &e);
	if (r < 0) {
		mq_snap_list_release(&l);
		mq_strv_clear(&drives);
		if (strncmp(e->msg, "cannot ", 7) != 0)
			r = mq_error_prefix(&e, "cannot snapshot vm '%s'", vm);
		*err = e;
		return mq_snapop_refuse(op, "snapshot-create", err);
	}
	const char *mode = live ? (vmstate ? "live, memory" : "live, disks only") : "offline";
	char *d = mq_snapop_event_detail(op, o->name, o->origin, mode, -1, NULL);
	r = mq_snapop_phase_write(op, MQ_PHASE_EV_SNAPSHOT_BEGIN, NULL, "snapshot-create", "started", d, &e);
	free(d);
	if (r < 0) {
		mq_snap_list_release(&l);
		mq_strv_clear(&drives);
		*err = e;
		return mq_error_prefix(err, "cannot snapshot vm '%s'", vm);
	}
	if (old) {
		struct mq_strv had = MQ_STRV_INIT;
		for (size_t i = 0; i < old->n_drives; i++)
			mq_strv_push(&had, old->drives[i]);
		r = mq_snapop_delete_on(op, o->name, &had, false, &e);
		mq_strv_clear(&had);
		if (r == 0)
			(void)mq_store_snap_delete(op->env->store, vm, o->name, NULL);
		else
			(void)mq_error_prefix(&e, "cannot remove the old snapshot '%s'", o->name);
	}
	mq_snap_list_release(&l);
	if (r == 0)
		r = do_create(op, o->name, &drives, vmstate, &e);
	if (r == 0) {
		r = mq_store_snap_put(op->env->store, vm, o->name, mq_snap_origin_name(o->origin), mq_now_ms(), &e);
		if (r < 0) /* without its origin it would look external: take it back */
			(void)mq_snapop_delete_on(op, o->name, &drives, false, NULL);
	}
	r = mq_snapop_finish(op, MQ_PHASE_EV_SNAPSHOT_END, resume, "snapshot-create", o->name, o->origin, mode, t0, r,
			     &e);
	if (r < 0) {
		mq_strv_clear(&drives);
		*err = e;
		return mq_error_prefix(err, "cannot snapshot vm '%s'", vm);
	}
	if (res) {
		res->live = live;
		res->vmstate = vmstate;
		res->n_drives = drives.n;
		res->duration_ms = mq_mono_ms() - t0;
	}
	mq_strv_clear(&drives);
	return 0;
}

int mq_snap_create(const struct mq_snap_env *env, struct mq_vm_record *rec, const struct mq_snap_create_opts *o,
		   struct mq_snap_result *res, struct mq_error **err)
{
	struct op op;
	struct mq_error *e = NULL;
	struct mq_lock vl;
	char *what = xasprintf("snapshot '%s' of vm '%s'", o->name ? o->name : "", rec->name);
	int r = mq_snapop_vm_begin(env, rec, what, &vl, &e);
	free(what);
	if (r == 0)
		r = mq_snapop_open(env, rec, &op, &e);
	if (r < 0) {
		mq_snapop_vm_end(&vl);
		if (err)
			*err = e;
		else
			mq_error_free(e);
		return mq_error_prefix(err, "cannot snapshot vm '%s'", rec->name);
	}
	if (res)
		memset(res, 0, sizeof(*res));
	r = mq_snapop_create_in(&op, o, res, &e);
	mq_snapop_release(&op);
	mq_snapop_vm_end(&vl);
	if (err)
		*err = e;
	else
		mq_error_free(e);
	return r;
}
