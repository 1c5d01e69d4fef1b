/* snaprestore.c - snapshot restore and delete (see snapshot.h). */
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
		long k = mq_snapop_storage_index(op->spec, drives->v[i]);
		char *img = mq_snapop_image_of(op, (size_t)k);
		int r = mq_snapop_img_op(op, 'a', img, tag, true, i, drives->n, err);
		free(img);
		if (r < 0)
			return r;
		*done = i + 1;
		mq_snapop_progress(op, "running", (int64_t)i + 1, (int64_t)drives->n);
	}
	return 0;
}

/* Stop the running VM with the usual ladder (phases and events as a stop). */
static int stop_vm(struct op *op, enum mq_phase from, struct mq_error **err)
{
	int r = mq_snapop_phase_write(op, MQ_PHASE_EV_STOP_BEGIN, NULL, "stop", "started",
				      "to restore a disk-only snapshot", err);
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
		(void)mq_snapop_phase_write(op, MQ_PHASE_EV_STOP_FAIL, &ctx, "stop", "failed", e->msg, NULL);
		*err = e;
		return r;
	}
	op->running = false;
	return mq_snapop_phase_write(op, MQ_PHASE_EV_STOP_OK, NULL, "stop", "ok", "to restore a disk-only snapshot", err);
}

static int start_vm(struct op *op, struct mq_error **err)
{
	int r = mq_snapop_phase_write(op, MQ_PHASE_EV_START_BEGIN, NULL, "start", "started",
				      "after restoring a snapshot", err);
	if (r < 0)
		return r;
	struct mq_start_opts so = { .runtime_dir = op->env->runtime_dir, .disk_dir = op->env->disk_dir };
	struct mq_start_result sr = { .ev_fd = -1 };
	struct mq_error *e = NULL;
	r = mq_qemu_start(op->spec, &so, &sr, &e);
	if (r < 0) {
		struct mq_phase_ctx ctx = { .error = e->msg };
		(void)mq_snapop_phase_write(op, MQ_PHASE_EV_START_FAIL, &ctx, "start", "failed", e->msg, NULL);
		*err = e;
		return r;
	}
	struct mq_phase_ctx ctx = {
		.pid = sr.ref.pid, .start_time = sr.ref.start_time, .qmp_path = sr.qmp_path, .accel = sr.accel,
	};
	char *d = xasprintf("pid %d, accel %s, after restoring a snapshot", (int)sr.ref.pid, sr.accel);
	r = mq_snapop_phase_write(op, MQ_PHASE_EV_START_OK, &ctx, "start", "ok", d, err);
	free(d);
	if (r < 0) { /* nothing would know about this qemu: stop it again */
		(void)mq_proc_kill(&sr.ref, SIGKILL);
		(void)mq_proc_wait_exit(&sr.ref, 5000);
	} else {
		op->running = true;
		r = mq_qmp_connect(op->rec->qmp_path, 5000, &op->q, NULL);
		if (r == 0)
			(void)mq_snapop_query_blocks(op, NULL, NULL);
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
		r = mq_snapop_list(op, &l, &e);
	const struct mq_snapshot *sn = r == 0 ? mq_snap_list_find(&l, o->name) : NULL;
	if (r == 0 && !sn)
		r = mq_error_set(&e, ENOENT, "it has no snapshot '%s' (see 'maqet snapshot list %s')", o->name, vm);
	if (r == 0 && op->running && !o->force)
		r = mq_error_set(&e, EBUSY,
				 "it is running, and restoring throws away its current memory state (add --force)");
	struct mq_strv drives = MQ_STRV_INIT;
	for (size_t i = 0; sn && i < sn->n_drives; i++) {
		long k = mq_snapop_storage_index(op->spec, sn->drives[i]);
		if (k >= 0)
			mq_strv_push(&drives, sn->drives[i]);
	}
	bool live_load = r == 0 && op->running && sn->vmstate;
	if (r == 0 && op->running)
		r = mq_snapop_need_nodes(op, &drives, &e);
	enum mq_phase resume = MQ_PHASE_STOPPED;
	if (r == 0)
		r = mq_snapop_check_phase(op, "restore", &resume, &e);
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
		return mq_snapop_refuse(op, "snapshot-restore", err);
	}
	/* the backup: a mistaken restore can be undone */
	if (!o->no_backup) {
		struct mq_snap_create_opts bo = {
			.name = NULL,
			.origin = MQ_SNAP_PRE_RESTORE,
			.mode = MQ_SNAP_MODE_AUTO,
			.no_vmstate = !mq_snapop_vmstate_possible(op->spec),
		};
		char *bname = mq_snap_auto_name("pre-restore-", mq_now_ms());
		bo.name = bname;
		r = mq_snapop_create_in(op, &bo, NULL, &e);
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
		r = mq_snapop_state_lock(op, &e);
		held = r == 0;
		if (r == 0)
			r = stop_vm(op, resume, &e);
		if (r < 0) {
			if (held)
				mq_snapop_state_unlock(op);
			mq_strv_clear(&drives);
			free(vmstate_drive);
			*err = e;
			return mq_error_prefix(err, "cannot restore vm '%s'", vm);
		}
		restarted = true;
		resume = MQ_PHASE_STOPPED;
	}
	char *d = mq_snapop_event_detail(op, o->name, origin, mode, -1, NULL);
	r = mq_snapop_phase_write(op, MQ_PHASE_EV_RESTORE_BEGIN, NULL, "snapshot-restore", "started", d, &e);
	free(d);
	if (r == 0 && live_load) {
		long kv = mq_snapop_storage_index(op->spec, vmstate_drive);
		json_object *args = json_object_new_object();
		json_object_object_add(args, "tag", json_object_new_string(o->name));
		json_object_object_add(args, "vmstate", json_object_new_string(op->nodes[kv]));
		json_object_object_add(args, "devices", mq_snapop_node_array(op, &drives));
		char *st = NULL;
		bool was_running = mq_snapop_query_running_status(op, &st) == 0 && strcmp(st, "running") == 0;
		free(st);
		r = mq_snapop_run_job(op, "snapshot-load", args, &e);
		json_object_put(args);
		if (r < 0)
			mq_snapop_resume_if_needed(op, was_running);
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
		r = mq_snapop_finish(op, MQ_PHASE_EV_RESTORE_END, resume, "snapshot-restore", o->name, origin, mode, t0,
				     r, &e);
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
		mq_snapop_state_unlock(op);
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
	int r = mq_snapop_vm_begin(env, rec, what, &vl, &e);
	free(what);
	if (r == 0)
		r = mq_snapop_open(env, rec, &op, &e);
	if (r == 0) {
		r = restore_in(&op, o, res, &e);
		mq_snapop_release(&op);
	} else {
		r = mq_error_prefix(&e, "cannot restore vm '%s'", rec->name);
	}
	mq_snapop_vm_end(&vl);
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
		r = mq_snapop_list(op, &l, &e);
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
		r = mq_snapop_check_phase(op, "delete a snapshot of", &resume, &e);
	if (r < 0) {
		mq_strv_clear(&drives);
		*err = e;
		if (strncmp(e->msg, "cannot ", 7) != 0)
			r = mq_error_prefix(err, "cannot delete snapshot '%s' of vm '%s'", name, vm);
		return mq_snapop_refuse(op, "snapshot-delete", err);
	}
	const char *mode = op->running ? "live" : "offline";
	char *d = mq_snapop_event_detail(op, name, origin, mode, -1, NULL);
	r = mq_snapop_phase_write(op, MQ_PHASE_EV_SNAPSHOT_BEGIN, NULL, "snapshot-delete", "started", d, &e);
	free(d);
	if (r == 0)
		r = mq_snapop_delete_on(op, name, &drives, true, &e);
	if (r == 0)
		r = mq_store_snap_delete(op->env->store, vm, name, &e);
	if (mq_phase_get(op->rec) == MQ_PHASE_SNAPSHOTTING) {
		r = mq_snapop_finish(op, MQ_PHASE_EV_SNAPSHOT_END, resume, "snapshot-delete", name, origin, mode, t0, r,
				     &e);
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
	int r = mq_snapop_vm_begin(env, rec, what, &vl, &e);
	free(what);
	if (r == 0)
		r = mq_snapop_open(env, rec, &op, &e);
	if (r == 0) {
		r = delete_in(&op, name, res, &e);
		mq_snapop_release(&op);
	} else {
		r = mq_error_prefix(&e, "cannot delete snapshot '%s' of vm '%s'", name ? name : "", rec->name);
	}
	mq_snapop_vm_end(&vl);
	if (err)
		*err = e;
	else
		mq_error_free(e);
	return r;
}
