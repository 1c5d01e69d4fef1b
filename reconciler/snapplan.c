/* snapplan.c - see snapplan.h. */
#include "reconciler/snapplan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/img.h"
#include "reconciler/schedule.h"
#include "reconciler/vmlock.h"
#include "specs/fromjson.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

void mq_snap_acts_release(struct mq_snap_acts *a)
{
	for (size_t i = 0; a && i < a->n; i++) {
		free(a->v[i].name);
		free(a->v[i].reason);
	}
	if (a) {
		free(a->v);
		a->v = NULL;
		a->n = 0;
	}
}

static void push(struct mq_snap_acts *out, enum mq_snap_act_kind kind, const char *name, char *reason)
{
	out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
	out->v[out->n++] = (struct mq_snap_act){ kind, xstrdup_null(name), reason };
}

static bool has_name(const struct mq_snap_list *l, const char *name)
{
	for (size_t i = 0; l && i < l->n; i++)
		if (strcmp(l->items[i].name, name) == 0)
			return true;
	return false;
}

int64_t mq_snap_next_due(const struct mq_snapshots *decl, const struct mq_snap_list *list, bool running,
			 int64_t now_ms)
{
	if (!decl || !decl->schedule || (running && !decl->schedule->live))
		return -1;
	return mq_sched_due_at(decl->schedule, mq_sched_last(list, MQ_SNAP_SCHEDULED), now_ms);
}

void mq_snap_plan_vm(const struct mq_snap_plan_in *in, struct mq_snap_acts *out)
{
	const struct mq_snapshots *d = in->decl;
	if (!d)
		return;
	for (size_t i = 0; i < d->named.n; i++)
		if (!has_name(in->list, d->named.v[i]))
			push(out, MQ_SNAPACT_NAMED, d->named.v[i],
			     xasprintf("named snapshot '%s' missing", d->named.v[i]));
	int64_t due = mq_snap_next_due(d, in->list, in->running, in->now_ms);
	if (due >= 0 && due <= in->now_ms) {
		int64_t last = mq_sched_last(in->list, MQ_SNAP_SCHEDULED);
		if (last < 0) {
			push(out, MQ_SNAPACT_SCHEDULED, NULL, xstrdup("scheduled snapshot due (none yet)"));
		} else {
			char age[32];
			mq_sched_format_age(in->now_ms - last, age, sizeof(age));
			push(out, MQ_SNAPACT_SCHEDULED, NULL, xasprintf("scheduled snapshot due (last %s ago)", age));
		}
	}
}

size_t mq_snap_plan_add(struct mq_plan *plan, const struct mq_snapops *ops, const struct mq_snap_env *env,
			int64_t now_ms, struct mq_strv *warnings)
{
	size_t added = 0;
	for (size_t i = 0; i < plan->n; i++) {
		struct mq_plan_item *it = &plan->items[i];
		if (!it->spec || !it->spec->snapshots || it->action == MQ_ACT_DELETE)
			continue;
		if (it->blocked && it->rec && mq_vmlock_busy_phase(it->rec))
			continue; /* a job runs on it: its snapshots wait for the next pass */
		struct mq_snap_list list = { 0 };
		bool have = false;
		if (it->rec && it->rec->spec_json) {
			struct mq_error *err = NULL;
			if (ops->list(env, it->rec, &list, &err) < 0) {
				if (warnings)
					mq_strv_push(warnings, err ? err->msg : "cannot list snapshots");
				mq_error_free(err);
				continue;
			}
			have = true;
		}
		/* running after the pass: up now and not being stopped, or started by it */
		bool running = it->spec->state == MQ_DESIRED_RUNNING && !it->held;
		if (it->action == MQ_ACT_NOOP || it->action == MQ_ACT_UPDATE)
			running = mq_status_is_up(it->observed);
		struct mq_snap_plan_in in = { it->spec->snapshots, have ? &list : NULL, running, now_ms };
		struct mq_snap_acts acts = { 0 };
		const struct mq_snap_before *bc = it->spec->snapshots->before_change;
		if (it->action == MQ_ACT_RESTART && bc && bc->enabled && mq_status_is_up(it->observed))
			push(&acts, MQ_SNAPACT_PRE_CHANGE, NULL,
			     xstrdup(bc->rollback ? "pre-change snapshot before restart (rollback if the new spec fails)"
						  : "pre-change snapshot before restart"));
		mq_snap_plan_vm(&in, &acts);
		if (have)
			ops->list_release(&list);
		it->snaps = acts.v;
		it->n_snaps = acts.n;
		added += acts.n;
	}
	return added;
}

/* Re-read the VM's record: the pass may have changed it. */
static struct mq_vm_record *current(const struct mq_snap_env *env, const char *vm, struct mq_error **err)
{
	struct mq_vm_record *rec = NULL;
	int r = mq_store_vm_get(env->store, vm, &rec, err);
	if (r == -ENOENT && err && !*err)
		mq_error_set(err, ENOENT, "vm '%s' is not recorded", vm);
	return r < 0 ? NULL : rec;
}

static void retention(const struct mq_snapops *ops, const struct mq_snap_env *env, struct mq_vm_record *rec,
		      enum mq_snap_origin origin, unsigned keep, const struct mq_snap_act *a, mq_snap_report_fn report,
		      void *ud, struct mq_snap_exec_result *res)
{
	struct mq_snap_list list = { 0 };
	struct mq_error *err = NULL;
	if (ops->list(env, rec, &list, &err) < 0) {
		if (report)
			report(ud, rec->name, a, NULL, true, false, err ? err->msg : "cannot list snapshots");
		res->failed++;
		mq_error_free(err);
		return;
	}
	struct mq_strv del = MQ_STRV_INIT;
	mq_sched_retention(&list, origin, keep, &del);
	ops->list_release(&list);
	for (size_t k = 0; k < del.n; k++) {
		struct mq_snap_result sr = { 0 };
		err = NULL;
		int r = ops->del(env, rec, del.v[k], &sr, &err);
		ops->result_release(&sr);
		if (r < 0)
			res->failed++;
		else
			res->deleted++;
		if (report) {
			char *m = r < 0 ? NULL
					: xasprintf("deleted %s snapshot '%s' (keep %u)",
						    origin == MQ_SNAP_PRE_CHANGE ? "pre-change" : "scheduled", del.v[k], keep);
			report(ud, rec->name, a, del.v[k], true, r == 0, r < 0 ? (err ? err->msg : "cannot delete") : m);
			free(m);
		}
		mq_error_free(err);
	}
	mq_strv_clear(&del);
}

static int take(const struct mq_snapops *ops, const struct mq_snap_env *env, const char *vm,
		const struct mq_snapshots *decl, const struct mq_snap_act *a, int64_t now_ms, mq_snap_report_fn report,
		void *ud, struct mq_snap_exec_result *res)
{
	struct mq_error *err = NULL;
	struct mq_vm_record *rec = current(env, vm, &err);
	char *name = a->kind == MQ_SNAPACT_NAMED ? xstrdup(a->name) : mq_snap_auto_name("auto-", now_ms - now_ms % 1000);
	int r = -ENOENT;
	if (rec) {
		bool running = mq_status_is_up(mq_observe(rec));
		if (a->kind == MQ_SNAPACT_SCHEDULED && running && decl->schedule && !decl->schedule->live) {
			/* live: false and the VM runs now: skip, not a failure */
			if (report)
				report(ud, vm, a, name, false, true, "skipped: the vm is running and 'live' is false");
			free(name);
			mq_vm_record_free(rec);
			return 0;
		}
		struct mq_snap_create_opts co = {
			.name = name,
			.origin = a->kind == MQ_SNAPACT_NAMED ? MQ_SNAP_DECLARED : MQ_SNAP_SCHEDULED,
			.mode = MQ_SNAP_MODE_AUTO,
		};
		struct mq_snap_result sr = { 0 };
		r = ops->create(env, rec, &co, &sr, &err);
		if (r == 0) {
			res->ok++;
			if (report) {
				char *m = xasprintf("snapshot '%s' taken (%s, %zu drive%s, %lld ms)", name,
						    sr.live ? "live" : "offline", sr.n_drives, sr.n_drives == 1 ? "" : "s",
						    (long long)sr.duration_ms);
				report(ud, vm, a, name, false, true, m);
				free(m);
			}
		}
		ops->result_release(&sr);
		if (r == 0 && a->kind == MQ_SNAPACT_SCHEDULED && decl->schedule)
			retention(ops, env, rec, MQ_SNAP_SCHEDULED, decl->schedule->keep, a, report, ud, res);
	}
	if (r < 0) {
		res->failed++;
		if (report)
			report(ud, vm, a, name, false, false, err ? err->msg : "cannot take snapshot");
	}
	mq_error_free(err);
	mq_vm_record_free(rec);
	free(name);
	return r;
}

void mq_snap_exec(const struct mq_plan *plan, const struct mq_snapops *ops, const struct mq_snap_env *env,
		  mq_snap_report_fn report, void *ud, struct mq_snap_exec_result *res)
{
	struct mq_snap_exec_result local = { 0 };
	for (size_t i = 0; i < plan->n; i++) {
		const struct mq_plan_item *it = &plan->items[i];
		for (size_t k = 0; k < it->n_snaps; k++) {
			struct mq_snap_act a = { it->snaps[k].kind, it->snaps[k].name, it->snaps[k].reason };
			if (a.kind == MQ_SNAPACT_PRE_CHANGE) {
				/* taken by the restart itself: only its retention here */
				const struct mq_snap_before *bc = it->spec->snapshots->before_change;
				struct mq_vm_record *rec = current(env, it->name, NULL);
				if (rec && bc)
					retention(ops, env, rec, MQ_SNAP_PRE_CHANGE, bc->keep, &a, report, ud, &local);
				mq_vm_record_free(rec);
				continue;
			}
			take(ops, env, it->name, it->spec->snapshots, &a, mq_now_ms(), report, ud, &local);
		}
	}
	if (res)
		*res = local;
}

int mq_snap_take_scheduled(const struct mq_snapops *ops, const struct mq_snap_env *env, const char *vm,
			   const struct mq_snapshots *decl, int64_t now_ms, mq_snap_report_fn report, void *ud,
			   struct mq_snap_exec_result *res)
{
	struct mq_snap_act a = { MQ_SNAPACT_SCHEDULED, NULL, (char *)"scheduled snapshot due" };
	return take(ops, env, vm, decl, &a, now_ms, report, ud, res);
}

/* ---- the default operations: the snapshot library ----------------------- */

/* A declared snapshot of a VM that never ran: create its images first
 * (the library refuses drives without an image). */
static int lib_create(const struct mq_snap_env *env, struct mq_vm_record *rec, const struct mq_snap_create_opts *o,
		      struct mq_snap_result *res, struct mq_error **err)
{
	if (!mq_snap_vm_running(rec) && rec->spec_json) {
		struct mq_spec *spec = NULL;
		int r = mq_spec_from_canonical(rec->spec_json, rec->source, &spec, err);
		if (r == 0 && env->disk_dir)
			r = mq_mkdir_p(env->disk_dir, 0700, err);
		if (r == 0)
			r = mq_qemu_prepare_disks(spec, env->disk_dir, NULL, err);
		mq_spec_free(spec);
		if (r < 0)
			return mq_error_prefix(err, "cannot snapshot vm '%s'", rec->name);
	}
	return mq_snap_create(env, rec, o, res, err);
}

const struct mq_snapops mq_snapops_default = {
	.list = mq_snap_list,
	.create = lib_create,
	.del = mq_snap_delete,
	.list_release = mq_snap_list_release,
	.result_release = mq_snap_result_release,
};
