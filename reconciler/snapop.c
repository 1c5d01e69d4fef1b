/* snapop.c - what every snapshot operation stands on (snapshot-int.h): the listing
 * from images or QMP, the operation context, its locks, phases and events, QMP jobs with progress
 * and qemu-img steps. */
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

#define JOB_TIMEOUT_MS 600000
#define TICK_MS 200 /* progress callbacks: 5 a second while a job runs */

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

bool mq_snapop_has_drive(const struct mq_snapshot *s, const char *drive)
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
		if (!mq_snapop_has_drive(s, drive)) {
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


/* ---- locks (env->state_dir set, see the CONTRACT in snapshot.h) ------------ */

static bool self_locking(const struct mq_snap_env *env)
{
	return env->state_dir && !env->caller_locked;
}

static int lock_ms(const struct mq_snap_env *env)
{
	return env->lock_timeout_ms > 0 ? env->lock_timeout_ms : 60000;
}

int mq_snapop_state_lock(struct op *op, struct mq_error **err)
{
	if (!self_locking(op->env) || op->st_depth++ > 0)
		return 0;
	int r = mq_lock_acquire(&op->st, op->env->state_dir, "snapshot step", lock_ms(op->env), err);
	if (r < 0)
		op->st_depth = 0;
	return r;
}

void mq_snapop_state_unlock(struct op *op)
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
int mq_snapop_vm_begin(const struct mq_snap_env *env, struct mq_vm_record *rec, const char *what, struct mq_lock *vl,
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

void mq_snapop_vm_end(struct mq_lock *vl)
{
	if (vl->fd >= 0)
		mq_lock_release(vl);
}

int mq_snapop_job_timeout(const struct op *op)
{
	return op->env->job_timeout_ms > 0 ? op->env->job_timeout_ms : JOB_TIMEOUT_MS;
}

void mq_snapop_release(struct op *op)
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

char *mq_snapop_image_of(const struct op *op, size_t i)
{
	return mq_storage_image_path(op->spec, &op->spec->storage[i], op->env->disk_dir);
}

long mq_snapop_storage_index(const struct mq_spec *spec, const char *name)
{
	for (size_t i = 0; i < spec->n_storage; i++) {
		if (strcmp(spec->storage[i].name, name) == 0)
			return (long)i;
	}
	return -1;
}

/* query-block: the node name of every drive, and each image (for lists). */
int mq_snapop_query_blocks(struct op *op, json_object **blocks, struct mq_error **err)
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
		long i = mq_snapop_storage_index(op->spec, json_object_get_string(dev));
		if (i >= 0)
			op->nodes[i] = xstrdup(json_object_get_string(node));
	}
	if (blocks)
		*blocks = ret;
	else
		json_object_put(ret);
	return 0;
}

int mq_snapop_open(const struct mq_snap_env *env, struct mq_vm_record *rec, struct op *op, struct mq_error **err)
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
			r = mq_snapop_query_blocks(op, &op->blocks, err);
		if (r < 0) {
			mq_snapop_release(op);
			return r;
		}
	}
	return 0;
}

/* The list, from the images or QMP, with origins from the store. */
int mq_snapop_list(struct op *op, struct mq_snap_list *out, struct mq_error **err)
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
		/* mq_snapop_open's answer when nothing was done since (every
		 * create/restore/delete and the list itself start so): one
		 * query-block round trip, and one parse of its snapshot
		 * tables, less */
		json_object *blocks = op->blocks;
		op->blocks = NULL;
		if (!blocks)
			r = mq_snapop_query_blocks(op, &blocks, err);
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
			char *img = mq_snapop_image_of(op, i);
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
	int r = mq_snapop_open(env, copy, &op, err);
	if (r == 0) {
		r = mq_snapop_list(&op, out, err);
		mq_snapop_release(&op);
	}
	mq_vm_record_free(copy);
	return r;
}

/* ---- phases and events ----------------------------------------------------- */

/* Apply `ev` to the record and write it with its event; rec is updated in
 * place on success. */
int mq_snapop_phase_write(struct op *op, enum mq_phase_event ev, const struct mq_phase_ctx *ctx, const char *action,
		       const char *outcome, const char *detail, struct mq_error **err)
{
	int r = mq_snapop_state_lock(op, err);
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
	mq_snapop_state_unlock(op);
	return r;
}

static const char *who(const struct op *op)
{
	return op->env->who ? op->env->who : "maqet";
}

/* A phase this module can start from.  A snapshotting/restoring phase left
 * by a maqet that died half-way is ended first (the caller holds the state
 * lock, so no other operation is running). */
int mq_snapop_check_phase(struct op *op, const char *verb, enum mq_phase *resume, struct mq_error **err)
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
		int r = mq_snapop_phase_write(op, p == MQ_PHASE_SNAPSHOTTING ? MQ_PHASE_EV_SNAPSHOT_END : MQ_PHASE_EV_RESTORE_END,
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

char *mq_snapop_event_detail(const struct op *op, const char *name, enum mq_snap_origin origin, const char *mode,
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

/* The operation's closing phase write (ev, back to `resume`) with its
 * event, outcome r (and *e) of the operation: the operation's own error
 * wins; a failed record write is the error of an operation that worked. */
int mq_snapop_finish(struct op *op, enum mq_phase_event ev, enum mq_phase resume, const char *action,
		     const char *name, enum mq_snap_origin origin, const char *mode, int64_t t0, int r,
		     struct mq_error **e)
{
	char *d = mq_snapop_event_detail(op, name, origin, mode, t0, r < 0 ? *e : NULL);
	struct mq_phase_ctx ctx = { .resume_phase = resume };
	struct mq_error *pe = NULL;
	int pr = mq_snapop_phase_write(op, ev, &ctx, action, r < 0 ? "failed" : "ok", d, &pe);
	free(d);
	if (r == 0 && pr < 0) {
		*e = pe;
		return pr;
	}
	mq_error_free(pe);
	return r;
}

/* A refusal: the event (best effort) and the error. */
int mq_snapop_refuse(struct op *op, const char *action, struct mq_error **err)
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

void mq_snapop_progress(const struct op *op, const char *status, int64_t cur, int64_t total)
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
	mq_snapop_progress(t->op, "running", t->done, t->total);
}

int mq_snapop_img_op(const struct op *op, char c, const char *img, const char *tag, bool with_progress, size_t done,
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
int mq_snapop_run_job(struct op *op, const char *command, json_object *args, struct mq_error **err)
{
	char *id = xasprintf("mq-%s-%d-%u", command, (int)getpid(), ++op->job_seq);
	struct mq_qmp_job *j = NULL;
	int r = mq_qmp_job_start(op->q, command, args, id, &j, err);
	if (r < 0) {
		free(id);
		return r;
	}
	int64_t deadline = mq_mono_ms() + mq_snapop_job_timeout(op);
	mq_snapop_progress(op, "created", 0, 0);
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
					 command, mq_snapop_job_timeout(op), mq_qmp_job_status(j));
			mq_qmp_job_free(j);
			free(id);
			return r;
		}
		if (mq_qmp_in_flight(op->q) == 0)
			(void)mq_qmp_job_query(j, NULL);
		int64_t cur, total;
		mq_qmp_job_progress(j, &cur, &total);
		const char *st = mq_qmp_job_status(j);
		mq_snapop_progress(op, *st ? st : "created", cur, total);
	}
	r = mq_qmp_job_result(j, err);
	if (r == 0) {
		int64_t cur, total;
		mq_qmp_job_progress(j, &cur, &total);
		mq_snapop_progress(op, "concluded", total > 0 ? total : 1, total > 0 ? total : 1);
	}
	mq_qmp_job_free(j);
	free(id);
	return r;
}

json_object *mq_snapop_node_array(const struct op *op, const struct mq_strv *drives)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < drives->n; i++) {
		long k = mq_snapop_storage_index(op->spec, drives->v[i]);
		json_object_array_add(a, json_object_new_string(op->nodes[k]));
	}
	return a;
}

int mq_snapop_need_nodes(const struct op *op, const struct mq_strv *drives, struct mq_error **err)
{
	for (size_t i = 0; i < drives->n; i++) {
		long k = mq_snapop_storage_index(op->spec, drives->v[i]);
		if (k < 0 || !op->nodes[k])
			return mq_error_set(err, ENODEV, "drive '%s' is not attached to the running qemu", drives->v[i]);
	}
	return 0;
}

/* Delete tag from drives: snapshot-delete job when running, qemu-img -d. */
int mq_snapop_delete_on(struct op *op, const char *tag, const struct mq_strv *drives, bool with_progress,
		     struct mq_error **err)
{
	if (op->running) {
		int r = mq_snapop_need_nodes(op, drives, err);
		if (r < 0)
			return r;
		json_object *args = json_object_new_object();
		json_object_object_add(args, "tag", json_object_new_string(tag));
		json_object_object_add(args, "devices", mq_snapop_node_array(op, drives));
		struct mq_snap_env env2 = *op->env;
		const struct mq_snap_env *orig = op->env;
		if (!with_progress) {
			env2.progress = NULL;
			op->env = &env2;
		}
		r = mq_snapop_run_job(op, "snapshot-delete", args, err);
		op->env = orig;
		json_object_put(args);
		return r;
	}
	int ret = 0;
	for (size_t i = 0; i < drives->n; i++) {
		long k = mq_snapop_storage_index(op->spec, drives->v[i]);
		char *img = mq_snapop_image_of(op, (size_t)k);
		struct mq_error *e = NULL;
		int r = mq_snapop_img_op(op, 'd', img, tag, with_progress, i, drives->n, &e);
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
			mq_snapop_progress(op, "running", (int64_t)i + 1, (int64_t)drives->n);
	}
	return ret;
}
