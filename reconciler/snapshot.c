/* snapshot.c - internal qcow2 snapshots of one VM (see snapshot.h). */
#include "reconciler/snapshot.h"

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

#define JOB_TIMEOUT_MS 600000
#define QMP_TIMEOUT_MS 30000
#define TICK_MS 200 /* progress callbacks: 5 a second while a job runs */

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

/* ---- lists ---------------------------------------------------------------- */

static void snapshot_release(struct mq_snapshot *s)
{
	free(s->name);
	for (size_t i = 0; i < s->n_drives; i++)
		free(s->drives[i]);
	free(s->drives);
	free(s->vmstate_drive);
}

void mq_snap_list_release(struct mq_snap_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		snapshot_release(&l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

const struct mq_snapshot *mq_snap_list_find(const struct mq_snap_list *l, const char *name)
{
	for (size_t i = 0; l && name && i < l->n; i++) {
		if (strcmp(l->items[i].name, name) == 0)
			return &l->items[i];
	}
	return NULL;
}

static bool snap_has_drive(const struct mq_snapshot *s, const char *drive)
{
	for (size_t i = 0; i < s->n_drives; i++) {
		if (strcmp(s->drives[i], drive) == 0)
			return true;
	}
	return false;
}

static int64_t get_i64(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	return json_object_get_int64(v);
}

/* Merge the "snapshots" array of one image (object) into l. */
static int merge_image(struct mq_snap_list *l, const char *drive, json_object *image, struct mq_error **err)
{
	json_object *arr;
	if (!json_object_is_type(image, json_type_object))
		return mq_error_set(err, EPROTO, "image information of drive '%s' is not a json object", drive);
	if (!json_object_object_get_ex(image, "snapshots", &arr))
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return mq_error_set(err, EPROTO, "snapshots of drive '%s': not a json array", drive);
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i), *nm;
		if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "name", &nm) ||
		    !json_object_is_type(nm, json_type_string))
			return mq_error_set(err, EPROTO, "snapshot %zu of drive '%s': no name", i + 1, drive);
		const char *name = json_object_get_string(nm);
		struct mq_snapshot *s = (struct mq_snapshot *)mq_snap_list_find(l, name);
		int64_t created = get_i64(e, "date-sec") * 1000 + get_i64(e, "date-nsec") / 1000000;
		if (!s) {
			l->items = xreallocarray(l->items, l->n + 1, sizeof(*l->items));
			s = &l->items[l->n++];
			memset(s, 0, sizeof(*s));
			s->name = xstrdup(name);
			s->created_at = created;
			s->vm_clock_ns = (uint64_t)get_i64(e, "vm-clock-sec") * 1000000000u +
					 (uint64_t)get_i64(e, "vm-clock-nsec");
		}
		if (created < s->created_at)
			s->created_at = created;
		int64_t vs = get_i64(e, "vm-state-size");
		if (vs > 0 && !s->vmstate) {
			s->vmstate = true;
			s->vmstate_size = (uint64_t)vs;
			s->vmstate_drive = xstrdup(drive);
		}
		if (!snap_has_drive(s, drive)) {
			s->drives = xreallocarray(s->drives, s->n_drives + 1, sizeof(*s->drives));
			s->drives[s->n_drives++] = xstrdup(drive);
		}
	}
	return 0;
}

int mq_snap_list_merge_json(struct mq_snap_list *l, const char *drive, const char *json, struct mq_error **err)
{
	json_tokener *tok = json_tokener_new_ex(MQ_QMP_MAX_DEPTH);
	if (!tok)
		return mq_error_set(err, ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *o = json_tokener_parse_ex(tok, json, (int)strlen(json));
	enum json_tokener_error je = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || je != json_tokener_success) {
		json_object_put(o);
		return mq_error_set(err, EPROTO, "image information of drive '%s' is not valid json: %s", drive,
				    json_tokener_error_desc(je));
	}
	int r = merge_image(l, drive, o, err);
	json_object_put(o);
	return r;
}

static int cmp_snap(const void *a, const void *b)
{
	const struct mq_snapshot *x = a, *y = b;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	return strcmp(x->name, y->name);
}

void mq_snap_result_release(struct mq_snap_result *r)
{
	if (!r)
		return;
	free(r->backup);
	memset(r, 0, sizeof(*r));
}

/* ---- the operation context ------------------------------------------------ */

bool mq_snap_vm_running(const struct mq_vm_record *rec)
{
	if (!rec || !mq_phase_is_up(mq_phase_get(rec)) || rec->pid <= 0 || !rec->start_time || !rec->qmp_path)
		return false;
	struct mq_pidref ref = { .pid = (pid_t)rec->pid, .start_time = rec->start_time };
	return mq_proc_check(&ref) == MQ_PROC_ALIVE;
}

struct op {
	const struct mq_snap_env *env;
	struct mq_vm_record *rec;
	struct mq_spec *spec;
	char *qemu_img;
	bool running;
	struct mq_qmp *q;
	char **nodes; /* per storage index: the block node name (running only) */
	json_object *blocks; /* op_open's query-block answer, for the first op_list to use */
	unsigned job_seq;
	struct mq_lock st; /* the state lock, while st_depth > 0 (env->state_dir mode) */
	int st_depth;
};

/* ---- locks (env->state_dir set, see the CONTRACT in snapshot.h) ------------ */

static bool self_locking(const struct mq_snap_env *env)
{
	return env->state_dir && !env->caller_locked;
}

static int lock_ms(const struct mq_snap_env *env)
{
	return env->lock_timeout_ms > 0 ? env->lock_timeout_ms : 60000;
}

static int state_lock(struct op *op, struct mq_error **err)
{
	if (!self_locking(op->env) || op->st_depth++ > 0)
		return 0;
	int r = mq_lock_acquire(&op->st, op->env->state_dir, "snapshot step", lock_ms(op->env), err);
	if (r < 0)
		op->st_depth = 0;
	return r;
}

static void state_unlock(struct op *op)
{
	if (!self_locking(op->env) || op->st_depth <= 0)
		return;
	if (--op->st_depth == 0)
		mq_lock_release(&op->st);
}

/* Replace rec's contents with src's, keeping rec->name (callers hold on to
 * that string); src gets the old contents. */
static void rec_swap(struct mq_vm_record *rec, struct mq_vm_record *src)
{
	struct mq_vm_record tmp = *rec;
	*rec = *src;
	*src = tmp;
	char *name = rec->name;
	rec->name = src->name;
	src->name = name;
}

/* Take the VM's per-VM lock for a whole operation and read its record again
 * (it may have changed while we waited).  No-op unless self-locking. */
static int vm_begin(const struct mq_snap_env *env, struct mq_vm_record *rec, const char *what, struct mq_lock *vl,
		    struct mq_error **err)
{
	vl->fd = -1;
	vl->path = NULL;
	if (!self_locking(env))
		return 0;
	int r = mq_vmlock_acquire(vl, env->state_dir, rec->name, what, lock_ms(env), env->waiting, env->ud, err);
	if (r < 0)
		return r;
	struct mq_vm_record *cur = NULL;
	r = mq_store_vm_get(env->store, rec->name, &cur, err);
	if (r < 0) {
		mq_lock_release(vl);
		return r;
	}
	rec_swap(rec, cur);
	mq_vm_record_free(cur);
	return 0;
}

static void vm_end(struct mq_lock *vl)
{
	if (vl->fd >= 0)
		mq_lock_release(vl);
}

static int job_timeout(const struct op *op)
{
	return op->env->job_timeout_ms > 0 ? op->env->job_timeout_ms : JOB_TIMEOUT_MS;
}

static void op_release(struct op *op)
{
	if (op->nodes) {
		for (size_t i = 0; op->spec && i < op->spec->n_storage; i++)
			free(op->nodes[i]);
		free(op->nodes);
	}
	json_object_put(op->blocks);
	op->q = mq_qmp_free(op->q);
	op->spec = mq_spec_free(op->spec);
	free(op->qemu_img);
	if (op->st_depth > 0 && op->env && self_locking(op->env))
		mq_lock_release(&op->st);
	memset(op, 0, sizeof(*op));
}

static char *image_of(const struct op *op, size_t i)
{
	return mq_storage_image_path(op->spec, &op->spec->storage[i], op->env->disk_dir);
}

static long storage_index(const struct mq_spec *spec, const char *name)
{
	for (size_t i = 0; i < spec->n_storage; i++) {
		if (strcmp(spec->storage[i].name, name) == 0)
			return (long)i;
	}
	return -1;
}

/* query-block: the node name of every drive, and each image (for lists). */
static int query_blocks(struct op *op, json_object **blocks, struct mq_error **err)
{
	json_object_put(op->blocks); /* a newer answer replaces any kept one */
	op->blocks = NULL;
	json_object *ret = NULL;
	int r = mq_qmp_execute(op->q, "query-block", NULL, QMP_TIMEOUT_MS, &ret, err);
	if (r < 0)
		return r;
	if (!json_object_is_type(ret, json_type_array)) {
		json_object_put(ret);
		return mq_error_set(err, EPROTO, "query-block did not return an array");
	}
	for (size_t i = 0; i < op->spec->n_storage; i++) {
		free(op->nodes[i]);
		op->nodes[i] = NULL;
	}
	size_t n = json_object_array_length(ret);
	for (size_t k = 0; k < n; k++) {
		json_object *b = json_object_array_get_idx(ret, k), *dev, *ins, *node;
		if (!json_object_object_get_ex(b, "device", &dev) || !json_object_object_get_ex(b, "inserted", &ins) ||
		    !json_object_object_get_ex(ins, "node-name", &node))
			continue;
		long i = storage_index(op->spec, json_object_get_string(dev));
		if (i >= 0)
			op->nodes[i] = xstrdup(json_object_get_string(node));
	}
	if (blocks)
		*blocks = ret;
	else
		json_object_put(ret);
	return 0;
}

static int op_open(const struct mq_snap_env *env, struct mq_vm_record *rec, struct op *op, struct mq_error **err)
{
	memset(op, 0, sizeof(*op));
	op->env = env;
	op->rec = rec;
	if (!rec->spec_json)
		return mq_error_set(err, EINVAL, "vm '%s' has no recorded spec", rec->name);
	int r = mq_spec_from_canonical(rec->spec_json, rec->source, &op->spec, err);
	if (r < 0)
		return mq_error_prefix(err, "recorded spec of vm '%s'", rec->name);
	op->qemu_img = mq_img_find(op->spec);
	op->nodes = xcalloc(op->spec->n_storage ? op->spec->n_storage : 1, sizeof(*op->nodes));
	op->running = mq_snap_vm_running(rec);
	if (op->running) {
		r = mq_qmp_connect(rec->qmp_path, 5000, &op->q, err);
		if (r == 0)
			r = query_blocks(op, &op->blocks, err);
		if (r < 0) {
			op_release(op);
			return r;
		}
	}
	return 0;
}

/* The list, from the images or QMP, with origins from the store. */
static int op_list(struct op *op, struct mq_snap_list *out, struct mq_error **err)
{
	struct mq_snap_row *rows = NULL;
	size_t nrows = 0;
	struct mq_snap_list l = { .live = op->running };
	/* rows first, then the disks: a row read here was written after its
	 * snapshot was made, so a row whose tag is not found is really stale */
	int r = op->env->store ? mq_store_snap_list(op->env->store, op->rec->name, &rows, &nrows, err) : 0;
	if (r < 0)
		return r;
	if (op->running) {
		/* op_open's answer when nothing was done since (every
		 * create/restore/delete and the list itself start so): one
		 * query-block round trip, and one parse of its snapshot
		 * tables, less */
		json_object *blocks = op->blocks;
		op->blocks = NULL;
		if (!blocks)
			r = query_blocks(op, &blocks, err);
		for (size_t i = 0; r == 0 && i < op->spec->n_storage; i++) {
			if (op->spec->storage[i].type != MQ_STORAGE_QCOW2)
				continue;
			size_t n = json_object_array_length(blocks);
			for (size_t k = 0; r == 0 && k < n; k++) {
				json_object *b = json_object_array_get_idx(blocks, k), *dev, *ins, *img;
				if (!json_object_object_get_ex(b, "device", &dev) ||
				    strcmp(json_object_get_string(dev), op->spec->storage[i].name) != 0 ||
				    !json_object_object_get_ex(b, "inserted", &ins) ||
				    !json_object_object_get_ex(ins, "image", &img))
					continue;
				r = merge_image(&l, op->spec->storage[i].name, img, err);
			}
		}
		json_object_put(blocks);
	} else {
		for (size_t i = 0; r == 0 && i < op->spec->n_storage; i++) {
			if (op->spec->storage[i].type != MQ_STORAGE_QCOW2)
				continue;
			char *img = image_of(op, i);
			if (access(img, F_OK) == 0) {
				/* the image's own snapshot table; qemu-img for what
				 * the reader does not know */
				json_object *tab = NULL;
				struct mq_error *qe = NULL;
				r = mq_qcow2_snapshots(img, &tab, &qe);
				if (r == 0) {
					r = merge_image(&l, op->spec->storage[i].name, tab, err);
					json_object_put(tab);
				} else if (r == -ENOTSUP) {
					char *json = NULL;
					r = mq_img_info_json(op->qemu_img, img, true, &json, err);
					if (r == 0)
						r = mq_snap_list_merge_json(&l, op->spec->storage[i].name, json, err);
					free(json);
				} else if (err) {
					*err = qe;
					qe = NULL;
				}
				mq_error_free(qe);
			}
			free(img);
		}
	}
	if (r < 0) {
		mq_snap_rows_free(rows, nrows);
		mq_snap_list_release(&l);
		return mq_error_prefix(err, "cannot list snapshots of vm '%s'", op->rec->name);
	}
	for (size_t i = 0; i < nrows; i++) {
		struct mq_snapshot *s = (struct mq_snapshot *)mq_snap_list_find(&l, rows[i].name);
		enum mq_snap_origin o;
		if (s && mq_snap_origin_parse(rows[i].origin, &o, NULL) == 0)
			s->origin = o;
		else if (!s)
			(void)mq_store_snap_delete(op->env->store, op->rec->name, rows[i].name, NULL);
	}
	mq_snap_rows_free(rows, nrows);
	if (l.n > 1)
		qsort(l.items, l.n, sizeof(*l.items), cmp_snap);
	*out = l;
	return 0;
}

int mq_snap_list(const struct mq_snap_env *env, const struct mq_vm_record *rec, struct mq_snap_list *out,
		 struct mq_error **err)
{
	struct op op;
	struct mq_vm_record *copy = mq_vm_record_dup(rec);
	int r = op_open(env, copy, &op, err);
	if (r == 0) {
		r = op_list(&op, out, err);
		op_release(&op);
	}
	mq_vm_record_free(copy);
	return r;
}

/* ---- phases and events ----------------------------------------------------- */

/* Apply `ev` to the record and write it with its event; rec is updated in
 * place on success. */
static int phase_write(struct op *op, enum mq_phase_event ev, const struct mq_phase_ctx *ctx, const char *action,
		       const char *outcome, const char *detail, struct mq_error **err)
{
	int r = state_lock(op, err);
	if (r < 0)
		return r;
	struct mq_vm_record *n = NULL;
	if (self_locking(op->env)) {
		/* the state lock was free since the last step: has anyone
		 * (watch recording an exit) written the record meanwhile? */
		r = mq_store_vm_get(op->env->store, op->rec->name, &n, err);
		if (r == 0 && (n->pid != op->rec->pid || n->start_time != op->rec->start_time ||
			       !n->status != !op->rec->status ||
			       (n->status && strcmp(n->status, op->rec->status) != 0))) {
			r = mq_error_set(err, ESTALE,
					 "vm '%s' changed while the job ran: it is now %s%s%s (left as recorded)",
					 op->rec->name, n->status ? n->status : "absent",
					 n->last_error ? ": " : "", n->last_error ? n->last_error : "");
			rec_swap(op->rec, n);
		}
	} else {
		n = mq_vm_record_dup(op->rec);
	}
	if (r == 0)
		r = mq_phase_apply(n, ev, ctx, err);
	if (r == 0)
		r = mq_audit_record(op->env->store, n, n->source, action, outcome, detail, err);
	if (r == 0)
		rec_swap(op->rec, n);
	mq_vm_record_free(n);
	state_unlock(op);
	return r;
}

static const char *who(const struct op *op)
{
	return op->env->who ? op->env->who : "maqet";
}

/* A phase this module can start from.  A snapshotting/restoring phase left
 * by a maqet that died half-way is ended first (the caller holds the state
 * lock, so no other operation is running). */
static int check_phase(struct op *op, const char *verb, enum mq_phase *resume, struct mq_error **err)
{
	enum mq_phase p = mq_phase_get(op->rec);
	char *holder = NULL;
	if ((p == MQ_PHASE_SNAPSHOTTING || p == MQ_PHASE_RESTORING) && op->env->state_dir && op->env->caller_locked &&
	    mq_vmlock_busy(op->env->state_dir, op->rec->name, &holder)) {
		int r = mq_error_set(err, EBUSY, "cannot %s vm '%s': it is busy (%s %s in progress: %s); try again when "
					 "that is done",
				     verb, op->rec->name, p == MQ_PHASE_SNAPSHOTTING ? "a snapshot" : "a restore",
				     "job", holder ? holder : "another maqet");
		free(holder);
		return r;
	}
	if (p == MQ_PHASE_SNAPSHOTTING || p == MQ_PHASE_RESTORING) {
		struct mq_phase_ctx ctx = { .resume_phase = op->running ? MQ_PHASE_RUNNING : MQ_PHASE_STOPPED };
		int r = phase_write(op, p == MQ_PHASE_SNAPSHOTTING ? MQ_PHASE_EV_SNAPSHOT_END : MQ_PHASE_EV_RESTORE_END,
				    &ctx, p == MQ_PHASE_SNAPSHOTTING ? "snapshot-create" : "snapshot-restore", "failed",
				    "interrupted: the maqet running it went away", err);
		if (r < 0)
			return r;
		p = mq_phase_get(op->rec);
	}
	if (p == MQ_PHASE_ABSENT)
		return mq_error_set(err, ENOENT, "cannot %s vm '%s': it is not recorded", verb, op->rec->name);
	if (p == MQ_PHASE_STARTING || p == MQ_PHASE_STOPPING)
		return mq_error_set(err, EBUSY, "cannot %s vm '%s': it is %s (try again when that is done)", verb,
				    op->rec->name, mq_phase_name(p));
	if (mq_phase_is_up(p) && !op->running)
		return mq_error_set(err, ESRCH,
				    "cannot %s vm '%s': it is recorded %s but its qemu process is gone "
				    "(run 'maqet status %s' to update it)",
				    verb, op->rec->name, mq_phase_name(p), op->rec->name);
	*resume = p;
	return 0;
}

static char *event_detail(const struct op *op, const char *name, enum mq_snap_origin origin, const char *mode,
			  int64_t t0, const struct mq_error *e)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	mq_strbuf_addf(&sb, "snapshot '%s' (", name);
	if (origin != MQ_SNAP_ORIGIN__COUNT)
		mq_strbuf_addf(&sb, "origin %s, ", mq_snap_origin_name(origin));
	mq_strbuf_addf(&sb, "%s) by %s", mode, who(op));
	if (t0 >= 0)
		mq_strbuf_addf(&sb, " in %lld ms", (long long)(mq_mono_ms() - t0));
	if (e && e->msg)
		mq_strbuf_addf(&sb, ": %s", e->msg);
	return mq_strbuf_detach(&sb);
}

/* A refusal: the event (best effort) and the error. */
static int refuse(struct op *op, const char *action, struct mq_error **err)
{
	if (op->env->store && err && *err)
		mq_event(op->env->store, op->rec->name, op->rec->source, action, "refused", (*err)->msg);
	return err && *err ? -(*err)->code : -EINVAL;
}

/* ---- QMP jobs with progress ----------------------------------------------- */

static bool job_done(struct mq_qmp *q, void *arg)
{
	(void)q;
	return mq_qmp_job_done(arg);
}

static void progress(const struct op *op, const char *status, int64_t cur, int64_t total)
{
	if (op->env->progress)
		op->env->progress(op->env->ud, status, cur, total);
}

/* One qemu-img snapshot call on drive image `img` (drive done+1 of total);
 * with progress, the callback runs at its start and every TICK_MS while
 * qemu-img works, so a bar keeps moving (elapsed time) between drives. */
struct img_tick {
	const struct op *op;
	int64_t done, total;
};

static void img_tick_cb(void *ud)
{
	const struct img_tick *t = ud;
	progress(t->op, "running", t->done, t->total);
}

static int img_op(const struct op *op, char c, const char *img, const char *tag, bool with_progress, size_t done,
		  size_t total, struct mq_error **err)
{
	struct img_tick t = { op, (int64_t)done, (int64_t)total };
	bool tick = with_progress && op->env->progress;
	if (tick)
		img_tick_cb(&t);
	return mq_img_snapshot_op(op->qemu_img, c, img, tag, TICK_MS, tick ? img_tick_cb : NULL, &t, err);
}

/* Run a QMP job; the progress callback runs every TICK_MS while it does
 * (also while QEMU is busy and does not answer query-jobs). */
static int run_job(struct op *op, const char *command, json_object *args, struct mq_error **err)
{
	char *id = xasprintf("mq-%s-%d-%u", command, (int)getpid(), ++op->job_seq);
	struct mq_qmp_job *j = NULL;
	int r = mq_qmp_job_start(op->q, command, args, id, &j, err);
	if (r < 0) {
		free(id);
		return r;
	}
	int64_t deadline = mq_mono_ms() + job_timeout(op);
	progress(op, "created", 0, 0);
	for (;;) {
		int64_t next = mq_mono_ms() + TICK_MS;
		if (next > deadline)
			next = deadline;
		struct mq_error *e = NULL;
		r = mq_qmp_wait(op->q, job_done, j, -1, next, &e);
		mq_error_free(e);
		if (mq_qmp_job_done(j))
			break;
		if (r != -ETIMEDOUT && r != 0)
			break;
		if (mq_mono_ms() >= deadline) {
			r = mq_error_set(err, ETIMEDOUT, "qmp job '%s' (%s) did not finish within %d ms (status '%s')", id,
					 command, job_timeout(op), mq_qmp_job_status(j));
			mq_qmp_job_free(j);
			free(id);
			return r;
		}
		if (mq_qmp_in_flight(op->q) == 0)
			(void)mq_qmp_job_query(j, NULL);
		int64_t cur, total;
		mq_qmp_job_progress(j, &cur, &total);
		const char *st = mq_qmp_job_status(j);
		progress(op, *st ? st : "created", cur, total);
	}
	r = mq_qmp_job_result(j, err);
	if (r == 0) {
		int64_t cur, total;
		mq_qmp_job_progress(j, &cur, &total);
		progress(op, "concluded", total > 0 ? total : 1, total > 0 ? total : 1);
	}
	mq_qmp_job_free(j);
	free(id);
	return r;
}

static json_object *node_array(const struct op *op, const struct mq_strv *drives)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < drives->n; i++) {
		long k = storage_index(op->spec, drives->v[i]);
		json_object_array_add(a, json_object_new_string(op->nodes[k]));
	}
	return a;
}

static int need_nodes(const struct op *op, const struct mq_strv *drives, struct mq_error **err)
{
	for (size_t i = 0; i < drives->n; i++) {
		long k = storage_index(op->spec, drives->v[i]);
		if (k < 0 || !op->nodes[k])
			return mq_error_set(err, ENODEV, "drive '%s' is not attached to the running qemu", drives->v[i]);
	}
	return 0;
}

/* Delete tag from drives: snapshot-delete job when running, qemu-img -d. */
static int delete_on(struct op *op, const char *tag, const struct mq_strv *drives, bool with_progress,
		     struct mq_error **err)
{
	if (op->running) {
		int r = need_nodes(op, drives, err);
		if (r < 0)
			return r;
		json_object *args = json_object_new_object();
		json_object_object_add(args, "tag", json_object_new_string(tag));
		json_object_object_add(args, "devices", node_array(op, drives));
		struct mq_snap_env env2 = *op->env;
		const struct mq_snap_env *orig = op->env;
		if (!with_progress) {
			env2.progress = NULL;
			op->env = &env2;
		}
		r = run_job(op, "snapshot-delete", args, err);
		op->env = orig;
		json_object_put(args);
		return r;
	}
	int ret = 0;
	for (size_t i = 0; i < drives->n; i++) {
		long k = storage_index(op->spec, drives->v[i]);
		char *img = image_of(op, (size_t)k);
		struct mq_error *e = NULL;
		int r = img_op(op, 'd', img, tag, with_progress, i, drives->n, &e);
		free(img);
		if (r < 0 && ret == 0) {
			ret = r;
			if (err) {
				mq_error_free(*err);
				*err = e;
				e = NULL;
			}
		}
		mq_error_free(e);
		if (with_progress)
			progress(op, "running", (int64_t)i + 1, (int64_t)drives->n);
	}
	return ret;
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
			long k = storage_index(spec, o->drives[i]);
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
		return need_nodes(op, drives, err);
	for (size_t i = 0; i < drives->n; i++) {
		char *img = image_of(op, (size_t)storage_index(spec, drives->v[i]));
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
static bool vmstate_possible(const struct mq_spec *spec)
{
	for (size_t i = 0; i < spec->n_storage; i++) {
		if (spec->storage[i].type != MQ_STORAGE_QCOW2)
			return false;
	}
	return spec->n_storage > 0;
}

static int query_running_status(struct op *op, char **status)
{
	return mq_qmp_query_status(op->q, QMP_TIMEOUT_MS, status, NULL);
}

/* After a failed live operation: the VM runs as it did before. */
static void resume_if_needed(struct op *op, bool was_running)
{
	char *st = NULL;
	if (!was_running || query_running_status(op, &st) < 0) {
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
	if (op_list(op, &l, &e) == 0) {
		const struct mq_snapshot *s = mq_snap_list_find(&l, tag);
		for (size_t i = 0; s && i < drives->n; i++) {
			if (snap_has_drive(s, drives->v[i]))
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
		char *img = image_of(op, (size_t)storage_index(op->spec, drives->v[i]));
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
			long k = storage_index(op->spec, drives->v[i]);
			char *img = image_of(op, (size_t)k);
			int r = img_op(op, 'c', img, name, true, i, drives->n, err);
			if (r < 0) /* e.g. out of space half-way: clusters it took */
				(void)mq_img_repair_leaks(op->qemu_img, img, NULL);
			free(img);
			if (r < 0) {
				struct mq_strv done = { .v = drives->v, .n = i };
				(void)delete_on(op, name, &done, false, NULL);
				return r;
			}
			progress(op, "running", (int64_t)i + 1, (int64_t)drives->n);
		}
		return 0;
	}
	char *st = NULL;
	bool was_running = query_running_status(op, &st) == 0 && strcmp(st, "running") == 0;
	free(st);
	int r;
	if (vmstate) {
		long k0 = storage_index(op->spec, drives->v[0]);
		json_object *args = json_object_new_object();
		json_object_object_add(args, "tag", json_object_new_string(name));
		json_object_object_add(args, "vmstate", json_object_new_string(op->nodes[k0]));
		json_object_object_add(args, "devices", node_array(op, drives));
		r = run_job(op, "snapshot-save", args, err);
		json_object_put(args);
	} else {
		/* disks only: one transaction, all drives or none */
		json_object *actions = json_object_new_array();
		for (size_t i = 0; i < drives->n; i++) {
			long k = storage_index(op->spec, drives->v[i]);
			json_object *a = json_object_new_object(), *d = json_object_new_object();
			json_object_object_add(d, "device", json_object_new_string(op->nodes[k]));
			json_object_object_add(d, "name", json_object_new_string(name));
			json_object_object_add(a, "type", json_object_new_string("blockdev-snapshot-internal-sync"));
			json_object_object_add(a, "data", d);
			json_object_array_add(actions, a);
		}
		json_object *args = json_object_new_object();
		json_object_object_add(args, "actions", actions);
		progress(op, "running", 0, 1);
		r = mq_qmp_execute(op->q, "transaction", args, job_timeout(op), NULL, err);
		json_object_put(args);
		if (r == 0)
			progress(op, "concluded", 1, 1);
	}
	if (r < 0 && vmstate && err && *err)
		space_hint(op, drives, err);
	if (r < 0) {
		struct mq_strv left = MQ_STRV_INIT;
		drives_holding(op, name, drives, &left);
		if (left.n)
			(void)delete_on(op, name, &left, false, NULL);
		mq_strv_clear(&left);
		resume_if_needed(op, was_running);
	}
	return r;
}

static int create_in(struct op *op, const struct mq_snap_create_opts *o, struct mq_snap_result *res,
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
		r = op_list(op, &l, &e);
	const struct mq_snapshot *old = r == 0 ? mq_snap_list_find(&l, o->name) : NULL;
	if (r == 0 && old && !o->overwrite)
		r = mq_error_set(&e, EEXIST, "snapshot '%s' already exists (add --overwrite to replace it)", o->name);
	enum mq_phase resume = MQ_PHASE_STOPPED;
	if (r == 0)
		r = check_phase(op, "snapshot", &resume, &e);
	if (r < 0) {
		mq_snap_list_release(&l);
		mq_strv_clear(&drives);
		if (strncmp(e->msg, "cannot ", 7) != 0)
			r = mq_error_prefix(&e, "cannot snapshot vm '%s'", vm);
		*err = e;
		return refuse(op, "snapshot-create", err);
	}
	const char *mode = live ? (vmstate ? "live, memory" : "live, disks only") : "offline";
	char *d = event_detail(op, o->name, o->origin, mode, -1, NULL);
	r = phase_write(op, MQ_PHASE_EV_SNAPSHOT_BEGIN, NULL, "snapshot-create", "started", d, &e);
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
		r = delete_on(op, o->name, &had, false, &e);
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
			(void)delete_on(op, o->name, &drives, false, NULL);
	}
	d = event_detail(op, o->name, o->origin, mode, t0, r < 0 ? e : NULL);
	struct mq_phase_ctx ctx = { .resume_phase = resume };
	struct mq_error *pe = NULL;
	int pr = phase_write(op, MQ_PHASE_EV_SNAPSHOT_END, &ctx, "snapshot-create", r < 0 ? "failed" : "ok", d, &pe);
	free(d);
	if (r == 0 && pr < 0) {
		r = pr;
		e = pe;
		pe = NULL;
	}
	mq_error_free(pe);
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
	int r = vm_begin(env, rec, what, &vl, &e);
	free(what);
	if (r == 0)
		r = op_open(env, rec, &op, &e);
	if (r < 0) {
		vm_end(&vl);
		if (err)
			*err = e;
		else
			mq_error_free(e);
		return mq_error_prefix(err, "cannot snapshot vm '%s'", rec->name);
	}
	if (res)
		memset(res, 0, sizeof(*res));
	r = create_in(&op, o, res, &e);
	op_release(&op);
	vm_end(&vl);
	if (err)
		*err = e;
	else
		mq_error_free(e);
	return r;
}

/* ---- restore -------------------------------------------------------------- */

static void step_ignore(void *ud, const char *step, const char *outcome, const char *detail)
{
	(void)ud;
	(void)step;
	(void)outcome;
	(void)detail;
}

static int apply_offline(struct op *op, const char *tag, const struct mq_strv *drives, size_t *done,
			 struct mq_error **err)
{
	for (size_t i = 0; i < drives->n; i++) {
		long k = storage_index(op->spec, drives->v[i]);
		char *img = image_of(op, (size_t)k);
		int r = img_op(op, 'a', img, tag, true, i, drives->n, err);
		free(img);
		if (r < 0)
			return r;
		*done = i + 1;
		progress(op, "running", (int64_t)i + 1, (int64_t)drives->n);
	}
	return 0;
}

/* Stop the running VM with the usual ladder (phases and events as a stop). */
static int stop_vm(struct op *op, enum mq_phase from, struct mq_error **err)
{
	int r = phase_write(op, MQ_PHASE_EV_STOP_BEGIN, NULL, "stop", "started", "to restore a disk-only snapshot", err);
	if (r < 0)
		return r;
	op->q = mq_qmp_free(op->q); /* the stop ladder uses its own connection */
	struct mq_pidref ref = { .pid = (pid_t)op->rec->pid, .start_time = op->rec->start_time };
	struct mq_stop_opts so = {
		.timeout_ms = op->env->stop_timeout_ms > 0 ? (uint64_t)op->env->stop_timeout_ms
							   : op->spec->stop_timeout_ms,
		.step = step_ignore,
	};
	struct mq_error *e = NULL;
	r = mq_qemu_stop(&ref, op->rec->qmp_path, &so, &e);
	if (r < 0) {
		struct mq_phase_ctx ctx = { .resume_phase = from, .error = e->msg };
		(void)phase_write(op, MQ_PHASE_EV_STOP_FAIL, &ctx, "stop", "failed", e->msg, NULL);
		*err = e;
		return r;
	}
	op->running = false;
	return phase_write(op, MQ_PHASE_EV_STOP_OK, NULL, "stop", "ok", "to restore a disk-only snapshot", err);
}

static int start_vm(struct op *op, struct mq_error **err)
{
	int r = phase_write(op, MQ_PHASE_EV_START_BEGIN, NULL, "start", "started", "after restoring a snapshot", err);
	if (r < 0)
		return r;
	struct mq_start_opts so = { .runtime_dir = op->env->runtime_dir, .disk_dir = op->env->disk_dir };
	struct mq_start_result sr = { .ev_fd = -1 };
	struct mq_error *e = NULL;
	r = mq_qemu_start(op->spec, &so, &sr, &e);
	if (r < 0) {
		struct mq_phase_ctx ctx = { .error = e->msg };
		(void)phase_write(op, MQ_PHASE_EV_START_FAIL, &ctx, "start", "failed", e->msg, NULL);
		*err = e;
		return r;
	}
	struct mq_phase_ctx ctx = {
		.pid = sr.ref.pid, .start_time = sr.ref.start_time, .qmp_path = sr.qmp_path, .accel = sr.accel,
	};
	char *d = xasprintf("pid %d, accel %s, after restoring a snapshot", (int)sr.ref.pid, sr.accel);
	r = phase_write(op, MQ_PHASE_EV_START_OK, &ctx, "start", "ok", d, err);
	free(d);
	if (r < 0) { /* nothing would know about this qemu: stop it again */
		(void)mq_proc_kill(&sr.ref, SIGKILL);
		(void)mq_proc_wait_exit(&sr.ref, 5000);
	} else {
		op->running = true;
		r = mq_qmp_connect(op->rec->qmp_path, 5000, &op->q, NULL);
		if (r == 0)
			(void)query_blocks(op, NULL, NULL);
		r = 0;
	}
	mq_start_result_release(&sr);
	return r;
}

static int restore_in(struct op *op, const struct mq_snap_restore_opts *o, struct mq_snap_result *res,
		      struct mq_error **err)
{
	int64_t t0 = mq_mono_ms();
	const char *vm = op->rec->name;
	struct mq_error *e = NULL;
	struct mq_snap_list l = { 0 };
	int r = mq_snap_name_check(o->name, MQ_SNAP_PRE_RESTORE, &e);
	if (r == 0)
		r = op_list(op, &l, &e);
	const struct mq_snapshot *sn = r == 0 ? mq_snap_list_find(&l, o->name) : NULL;
	if (r == 0 && !sn)
		r = mq_error_set(&e, ENOENT, "it has no snapshot '%s' (see 'maqet snapshot list %s')", o->name, vm);
	if (r == 0 && op->running && !o->force)
		r = mq_error_set(&e, EBUSY,
				 "it is running, and restoring throws away its current memory state (add --force)");
	struct mq_strv drives = MQ_STRV_INIT;
	for (size_t i = 0; sn && i < sn->n_drives; i++) {
		long k = storage_index(op->spec, sn->drives[i]);
		if (k >= 0)
			mq_strv_push(&drives, sn->drives[i]);
	}
	bool live_load = r == 0 && op->running && sn->vmstate;
	if (r == 0 && op->running)
		r = need_nodes(op, &drives, &e);
	enum mq_phase resume = MQ_PHASE_STOPPED;
	if (r == 0)
		r = check_phase(op, "restore", &resume, &e);
	enum mq_snap_origin origin = MQ_SNAP_EXTERNAL;
	char *vmstate_drive = sn && sn->vmstate_drive ? xstrdup(sn->vmstate_drive) : NULL;
	if (sn)
		origin = sn->origin;
	mq_snap_list_release(&l);
	if (r < 0) {
		mq_strv_clear(&drives);
		free(vmstate_drive);
		if (strncmp(e->msg, "cannot ", 7) != 0)
			r = mq_error_prefix(&e, "cannot restore vm '%s'", vm);
		*err = e;
		return refuse(op, "snapshot-restore", err);
	}
	/* the backup: a mistaken restore can be undone */
	if (!o->no_backup) {
		struct mq_snap_create_opts bo = {
			.name = NULL,
			.origin = MQ_SNAP_PRE_RESTORE,
			.mode = MQ_SNAP_MODE_AUTO,
			.no_vmstate = !vmstate_possible(op->spec),
		};
		char *bname = mq_snap_auto_name("pre-restore-", mq_now_ms());
		bo.name = bname;
		r = create_in(op, &bo, NULL, &e);
		if (r < 0) {
			mq_strv_clear(&drives);
			free(vmstate_drive);
			free(bname);
			*err = e;
			return mq_error_prefix(err, "cannot restore vm '%s': the pre-restore backup failed", vm);
		}
		if (res)
			res->backup = bname;
		else
			free(bname);
	}
	const char *mode = live_load ? "live, memory" : op->running ? "stop, offline, start" : "offline";
	bool restarted = false;
	bool held = false;
	if (op->running && !live_load) {
		/* from the stop to the start again, under the state lock: with it
		 * free, a watch pass would see the VM stopped between the steps and
		 * start it with half-reverted disks (or stop it while starting) */
		r = state_lock(op, &e);
		held = r == 0;
		if (r == 0)
			r = stop_vm(op, resume, &e);
		if (r < 0) {
			if (held)
				state_unlock(op);
			mq_strv_clear(&drives);
			free(vmstate_drive);
			*err = e;
			return mq_error_prefix(err, "cannot restore vm '%s'", vm);
		}
		restarted = true;
		resume = MQ_PHASE_STOPPED;
	}
	char *d = event_detail(op, o->name, origin, mode, -1, NULL);
	r = phase_write(op, MQ_PHASE_EV_RESTORE_BEGIN, NULL, "snapshot-restore", "started", d, &e);
	free(d);
	if (r == 0 && live_load) {
		long kv = storage_index(op->spec, vmstate_drive);
		json_object *args = json_object_new_object();
		json_object_object_add(args, "tag", json_object_new_string(o->name));
		json_object_object_add(args, "vmstate", json_object_new_string(op->nodes[kv]));
		json_object_object_add(args, "devices", node_array(op, &drives));
		char *st = NULL;
		bool was_running = query_running_status(op, &st) == 0 && strcmp(st, "running") == 0;
		free(st);
		r = run_job(op, "snapshot-load", args, &e);
		json_object_put(args);
		if (r < 0)
			resume_if_needed(op, was_running);
	} else if (r == 0) {
		size_t done = 0;
		r = apply_offline(op, o->name, &drives, &done, &e);
		if (r < 0 && done && res && res->backup) {
			/* some drives were reverted: put them back to the backup */
			struct mq_strv back = { .v = drives.v, .n = done };
			size_t d2 = 0;
			(void)apply_offline(op, res->backup, &back, &d2, NULL);
		}
	}
	if (mq_phase_get(op->rec) == MQ_PHASE_RESTORING) {
		d = event_detail(op, o->name, origin, mode, t0, r < 0 ? e : NULL);
		struct mq_phase_ctx ctx = { .resume_phase = resume };
		struct mq_error *pe = NULL;
		int pr = phase_write(op, MQ_PHASE_EV_RESTORE_END, &ctx, "snapshot-restore", r < 0 ? "failed" : "ok", d,
				     &pe);
		free(d);
		if (r == 0 && pr < 0) {
			r = pr;
			e = pe;
			pe = NULL;
		}
		mq_error_free(pe);
	}
	if (restarted) { /* running again, as before, whether the revert worked or not */
		struct mq_error *se = NULL;
		int sr = start_vm(op, &se);
		if (sr < 0 && r == 0) {
			r = sr;
			e = se;
			se = NULL;
		} else if (sr < 0) {
			char *m = xasprintf("%s; and starting it again failed: %s", e->msg, se->msg);
			int code = e->code;
			mq_error_set(&e, code, "%s", m);
			free(m);
		}
		mq_error_free(se);
	}
	if (held)
		state_unlock(op);
	size_t nd = drives.n;
	mq_strv_clear(&drives);
	free(vmstate_drive);
	if (r < 0) {
		*err = e;
		return mq_error_prefix(err, "cannot restore vm '%s'", vm);
	}
	if (res) {
		res->live = live_load;
		res->vmstate = live_load;
		res->restarted = restarted;
		res->n_drives = nd;
		res->duration_ms = mq_mono_ms() - t0;
	}
	return 0;
}

int mq_snap_restore(const struct mq_snap_env *env, struct mq_vm_record *rec, const struct mq_snap_restore_opts *o,
		    struct mq_snap_result *res, struct mq_error **err)
{
	struct op op;
	struct mq_error *e = NULL;
	if (res)
		memset(res, 0, sizeof(*res));
	struct mq_lock vl;
	char *what = xasprintf("restore of vm '%s' to snapshot '%s'", rec->name, o->name ? o->name : "");
	int r = vm_begin(env, rec, what, &vl, &e);
	free(what);
	if (r == 0)
		r = op_open(env, rec, &op, &e);
	if (r == 0) {
		r = restore_in(&op, o, res, &e);
		op_release(&op);
	} else {
		r = mq_error_prefix(&e, "cannot restore vm '%s'", rec->name);
	}
	vm_end(&vl);
	if (err)
		*err = e;
	else
		mq_error_free(e);
	return r;
}

/* ---- delete --------------------------------------------------------------- */

static int delete_in(struct op *op, const char *name, struct mq_snap_result *res, struct mq_error **err)
{
	int64_t t0 = mq_mono_ms();
	const char *vm = op->rec->name;
	struct mq_error *e = NULL;
	struct mq_snap_list l = { 0 };
	int r = mq_snap_name_check(name, MQ_SNAP_PRE_RESTORE, &e);
	if (r == 0)
		r = op_list(op, &l, &e);
	const struct mq_snapshot *sn = r == 0 ? mq_snap_list_find(&l, name) : NULL;
	if (r == 0 && !sn)
		r = mq_error_set(&e, ENOENT, "it has no snapshot '%s' (see 'maqet snapshot list %s')", name, vm);
	struct mq_strv drives = MQ_STRV_INIT;
	for (size_t i = 0; sn && i < sn->n_drives; i++)
		mq_strv_push(&drives, sn->drives[i]);
	enum mq_snap_origin origin = sn ? sn->origin : MQ_SNAP_EXTERNAL;
	mq_snap_list_release(&l);
	enum mq_phase resume = MQ_PHASE_STOPPED;
	if (r == 0)
		r = check_phase(op, "delete a snapshot of", &resume, &e);
	if (r < 0) {
		mq_strv_clear(&drives);
		*err = e;
		if (strncmp(e->msg, "cannot ", 7) != 0)
			r = mq_error_prefix(err, "cannot delete snapshot '%s' of vm '%s'", name, vm);
		return refuse(op, "snapshot-delete", err);
	}
	const char *mode = op->running ? "live" : "offline";
	char *d = event_detail(op, name, origin, mode, -1, NULL);
	r = phase_write(op, MQ_PHASE_EV_SNAPSHOT_BEGIN, NULL, "snapshot-delete", "started", d, &e);
	free(d);
	if (r == 0)
		r = delete_on(op, name, &drives, true, &e);
	if (r == 0)
		r = mq_store_snap_delete(op->env->store, vm, name, &e);
	if (mq_phase_get(op->rec) == MQ_PHASE_SNAPSHOTTING) {
		d = event_detail(op, name, origin, mode, t0, r < 0 ? e : NULL);
		struct mq_phase_ctx ctx = { .resume_phase = resume };
		struct mq_error *pe = NULL;
		int pr = phase_write(op, MQ_PHASE_EV_SNAPSHOT_END, &ctx, "snapshot-delete", r < 0 ? "failed" : "ok", d,
				     &pe);
		free(d);
		if (r == 0 && pr < 0) {
			r = pr;
			e = pe;
			pe = NULL;
		}
		mq_error_free(pe);
	}
	if (r < 0) {
		mq_strv_clear(&drives);
		*err = e;
		return mq_error_prefix(err, "cannot delete snapshot '%s' of vm '%s'", name, vm);
	}
	if (res) {
		res->live = op->running;
		res->n_drives = drives.n;
		res->duration_ms = mq_mono_ms() - t0;
	}
	mq_strv_clear(&drives);
	return 0;
}

int mq_snap_delete(const struct mq_snap_env *env, struct mq_vm_record *rec, const char *name,
		   struct mq_snap_result *res, struct mq_error **err)
{
	struct op op;
	struct mq_error *e = NULL;
	if (res)
		memset(res, 0, sizeof(*res));
	struct mq_lock vl;
	char *what = xasprintf("delete of snapshot '%s' of vm '%s'", name ? name : "", rec->name);
	int r = vm_begin(env, rec, what, &vl, &e);
	free(what);
	if (r == 0)
		r = op_open(env, rec, &op, &e);
	if (r == 0) {
		r = delete_in(&op, name, res, &e);
		op_release(&op);
	} else {
		r = mq_error_prefix(&e, "cannot delete snapshot '%s' of vm '%s'", name ? name : "", rec->name);
	}
	vm_end(&vl);
	if (err)
		*err = e;
	else
		mq_error_free(e);
	return r;
}
