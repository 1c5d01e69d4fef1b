/* apply.c - execute a plan: record-only work at once, QEMU work in workers.
 *
 * The parent never blocks on QEMU: each VM's stop/start runs in a worker
 * (reconciler/worker.h, reconciler/vmjob.h) whose typed messages arrive on
 * a loop source.  Every status change goes through the phase machine
 * (reconciler/phase.h); every record write is one transaction with the
 * event that explains it (reconciler/audit.h).
 */
#include "reconciler/apply.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/audit.h"
#include "reconciler/handoff.h"
#include "reconciler/loop.h"
#include "reconciler/lease.h"
#include "reconciler/host.h"
#include "reconciler/phase.h"
#include "reconciler/proc.h"
#include "reconciler/qemu.h"
#include "reconciler/snapplan.h"
#include "reconciler/vmjob.h"
#include "reconciler/worker.h"
#include "specs/fromjson.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

struct job {
	struct run *run;
	size_t item;                 /* index in plan */
	struct mq_spec *spec;        /* spec to start (borrowed from the plan or recspecs) */
	struct mq_vmjob vj;          /* what the worker does */
	char *qmp_path;
	bool needs_stop, needs_start;
	/* runtime */
	struct mq_worker w;
	struct mq_source *src;
	enum { J_PENDING, J_RUNNING, J_DONE } phase;
	enum mq_outcome outcome;
	char *message;
	bool started, stopped;
	bool adopted;                /* started = took over the QEMU of an interrupted start */
	char *store_msg;             /* what was done but could not be recorded (the item fails) */
	struct mq_pidref new_ref;
	char accel[8];
	char *stop_how;
	struct mq_vm_record *cur;    /* the record as last written in this pass */
	char *pre_change;            /* before_change snapshot tag of a restart, or NULL */
	bool rolled_back;            /* the new spec was not started: the last good one runs */
	char *rollback_reason;
};

struct run {
	struct mq_store *st;
	const struct mq_plan *plan;
	const struct mq_apply_opts *o;
	struct mq_loop *loop;
	mq_apply_done_fn done;
	void *done_ud;
	bool step_queued, done_queued, finished;
	struct job *jobs;            /* one per plan item */
	bool *active;                /* item needs a worker */
	struct mq_apply_result res;
	struct mq_spec **recspecs;   /* per item: the recorded spec, rebuilt from JSON */
	int jobs_max;
};

static const char *item_source(const struct mq_plan_item *it)
{
	if (it->spec && it->spec->source)
		return it->spec->source;
	return it->rec ? it->rec->source : NULL;
}

static void finish(struct run *r, size_t i, enum mq_outcome out, const char *msg)
{
	struct job *j = &r->jobs[i];
	j->phase = J_DONE;
	j->outcome = out;
	free(j->message);
	j->message = xstrdup(msg ? msg : "");
	if (out == MQ_OUT_FAILED && r->res.store_error && strstr(j->message, r->res.store_error))
		r->res.store_error_reported = true;
	if (out == MQ_OUT_OK)
		r->res.ok++;
	else if (out == MQ_OUT_FAILED)
		r->res.failed++;
	else
		r->res.skipped++;
	if (r->o->report)
		r->o->report(r->o->ud, &r->plan->items[i], out, j->message);
}

/* Change a record's phase; a refused transition is reported in the record's
 * last_error and leaves the phase as it was (the next pass re-observes). */
static void phase(struct mq_vm_record *rec, enum mq_phase_event ev, const struct mq_phase_ctx *ctx)
{
	struct mq_error *err = NULL;
	if (mq_phase_apply(rec, ev, ctx, &err) < 0)
		mq_vm_record_set(&rec->last_error, err ? err->msg : "invalid phase transition");
	mq_error_free(err);
}

/* The item's record as last written in this pass (or as planned), with
 * its spec applied: a copy for the caller to change and put().  A record
 * whose process was observed gone is first moved to crashed. */
static struct mq_vm_record *record_for(struct run *r, size_t i)
{
	const struct mq_plan_item *it = &r->plan->items[i];
	struct job *j = &r->jobs[i];
	if (j->cur)
		return mq_vm_record_dup(j->cur);
	struct mq_vm_record *rec = it->rec ? mq_vm_record_dup(it->rec) : mq_vm_record_new();
	if (!it->rec) {
		mq_vm_record_set(&rec->name, it->name);
		phase(rec, MQ_PHASE_EV_RECORD, NULL);
	} else if (mq_phase_is_up(mq_phase_get(rec)) && !mq_status_is_up(it->observed)) {
		char *d = xasprintf("process %lld (start time %llu) is gone", (long long)rec->pid,
				    (unsigned long long)rec->start_time);
		struct mq_phase_ctx ctx = { .error = d };
		phase(rec, MQ_PHASE_EV_OBSERVED_GONE, &ctx);
		free(d);
	}
	if (it->spec) {
		mq_vm_record_set(&rec->source, it->spec->source);
		mq_vm_record_set(&rec->spec_json, it->spec->canonical);
		mq_vm_record_set(&rec->spec_hash, it->spec->hash);
		mq_vm_record_set(&rec->desired, mq_desired_str(it->spec->state));
	}
	return rec;
}

static long find_item(const struct mq_plan *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* Write rec together with the event that explains it.  A failed write
 * counts against the pass (res.store_errors) and its message is returned
 * (caller frees) so the item can report it; NULL on success. */
static char *put(struct run *r, const struct mq_vm_record *rec, const char *source, const char *action,
		 const char *outcome, const char *detail)
{
	struct mq_error *err = NULL;
	char *msg = NULL;
	if (mq_audit_record(r->st, rec, source, action, outcome, detail, &err) < 0) {
		r->res.store_errors++;
		msg = xstrdup(err ? err->msg : "cannot write the state");
		free(r->res.store_error);
		r->res.store_error = xstrdup(msg);
		r->res.store_error_reported = false;
	} else {
		long k = find_item(r->plan, rec->name);
		if (k >= 0) {
			mq_vm_record_free(r->jobs[k].cur);
			r->jobs[k].cur = mq_vm_record_dup(rec);
		}
	}
	mq_error_free(err);
	return msg;
}

static void event(struct run *r, const char *vm, const char *source, const char *action, const char *outcome,
		  const char *detail)
{
	struct mq_error *err = NULL;
	if (mq_audit_event(r->st, vm, source, action, outcome, detail, &err) < 0) {
		r->res.store_errors++;
		free(r->res.store_error);
		r->res.store_error = xstrdup(err ? err->msg : "cannot write an event");
		r->res.store_error_reported = false;
	}
	mq_error_free(err);
}

/* Set or clear the hold as the command asks; NULL when unchanged, else the
 * note for the event that explains the record write. */
static const char *apply_hold(struct run *r, struct mq_vm_record *rec)
{
	if (!r->o->hold)
		return NULL;
	bool set = strcmp(r->o->hold, "set") == 0;
	if (rec->hold == set)
		return NULL;
	rec->hold = set;
	event(r, rec->name, rec->source, set ? "hold" : "release", "ok",
	      set ? "held by 'maqet stop': reconciles leave it stopped" : "hold cleared by 'maqet start'");
	return set ? "; held" : "; hold cleared";
}

static uint64_t stop_timeout_for(const struct mq_plan_item *it, const struct mq_apply_opts *o, struct mq_spec *recspec)
{
	if (o->stop_timeout_ms > 0)
		return (uint64_t)o->stop_timeout_ms;
	if (it->spec)
		return it->spec->stop_timeout_ms;
	if (recspec)
		return recspec->stop_timeout_ms;
	return 30000;
}



/* 1 ready, 0 wait, -1 blocked (message in *why, caller frees). */
static int readiness(struct run *r, size_t i, char **why)
{
	const struct mq_plan_item *it = &r->plan->items[i];
	struct job *j = &r->jobs[i];
	if (j->needs_start && j->spec) {
		for (size_t d = 0; d < j->spec->depends_on.n; d++) {
			const char *dep = j->spec->depends_on.v[d];
			long k = find_item(r->plan, dep);
			if (k < 0) {
				/* Not part of this pass (an imperative start): ask the store. */
				struct mq_vm_record *drec = NULL;
				struct mq_error *e2 = NULL;
				bool dup = false;
				const char *obs = "absent";
				if (mq_store_vm_get(r->st, dep, &drec, &e2) == 0) {
					obs = mq_observe(drec);
					dup = mq_status_is_up(obs);
				}
				mq_vm_record_free(drec);
				mq_error_free(e2);
				if (!dup) {
					*why = xasprintf("dependency '%s' is not running (observed %s)", dep, obs);
					return -1;
				}
				continue;
			}
			const struct mq_plan_item *di = &r->plan->items[k];
			struct job *dj = &r->jobs[k];
			if (r->active[k] && dj->needs_start) {
				if (dj->phase != J_DONE)
					return 0;
				if (dj->outcome != MQ_OUT_OK || !dj->started) {
					*why = xasprintf("dependency '%s' did not start", dep);
					return -1;
				}
				continue;
			}
			if (r->active[k] && dj->phase != J_DONE)
				return 0; /* dependency being stopped: wait, then judge */
			bool up = mq_status_is_up(di->observed) && !(r->active[k] && dj->needs_stop && !dj->needs_start);
			if (!up) {
				*why = xasprintf("dependency '%s' is not running (observed %s)", dep, di->observed);
				return -1;
			}
		}
	}
	if (j->needs_stop) {
		/* Reverse order: wait for every active dependent that stops too. */
		for (size_t k = 0; k < r->plan->n; k++) {
			if (k == i || !r->active[k])
				continue;
			struct job *dj = &r->jobs[k];
			if (!dj->needs_stop || dj->phase == J_DONE || !dj->spec)
				continue;
			if (mq_strv_contains(&dj->spec->depends_on, it->name))
				return 0;
		}
	}
	return 1;
}

static void queue_step(struct run *r);
static void on_worker(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud);

/* Fail item i: record the failure (phase per what the worker got done). */
static void fail_item(struct run *r, size_t i, const char *msg)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	struct mq_vm_record *rec = record_for(r, i);
	struct mq_phase_ctx ctx = { .error = msg };
	enum mq_phase ph = mq_phase_get(rec);
	if (j->needs_start && !j->started && (!j->needs_stop || j->stopped || !mq_phase_is_up(ph))) {
		if (ph != MQ_PHASE_STARTING)
			phase(rec, MQ_PHASE_EV_START_BEGIN, NULL);
		phase(rec, MQ_PHASE_EV_START_FAIL, &ctx);
	} else if (j->needs_stop && !j->stopped && ph == MQ_PHASE_STOPPING) {
		/* the process may still be there: back to where it was */
		enum mq_phase prev = MQ_PHASE_RUNNING;
		if (mq_phase_parse(it->observed, &prev, NULL) < 0 || !mq_phase_is_up(prev) || prev == MQ_PHASE_STOPPING)
			prev = MQ_PHASE_RUNNING;
		ctx.resume_phase = prev;
		phase(rec, MQ_PHASE_EV_STOP_FAIL, &ctx);
		/* the old QEMU runs on: the record keeps the spec it runs, so
		 * the next apply tries the change again, and a manifest put
		 * back is no change at all */
		if (it->rec) {
			mq_vm_record_set(&rec->spec_json, it->rec->spec_json);
			mq_vm_record_set(&rec->spec_hash, it->rec->spec_hash);
		}
	} else {
		mq_vm_record_set(&rec->last_error, msg);
	}
	char *werr = put(r, rec, item_source(it), mq_action_str(it->action), "failed", msg);
	mq_vm_record_free(rec);
	free(werr);
	finish(r, i, MQ_OUT_FAILED, msg);
}

static int launch(struct run *r, size_t i)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	/* Mark the transitional phase first: a record we cannot write means we
	 * must not touch the VM (nothing would know about it). */
	struct mq_vm_record *rec = record_for(r, i);
	const char *what;
	if (j->needs_stop && mq_phase_is_up(mq_phase_get(rec))) {
		phase(rec, MQ_PHASE_EV_STOP_BEGIN, NULL);
		what = "stop.begin";
	} else if (!j->needs_start) {
		/* nothing recorded up: only looking for a QEMU an interrupted
		 * start left unrecorded */
		what = "stop.begin";
	} else {
		phase(rec, MQ_PHASE_EV_START_BEGIN, NULL);
		what = "start.begin";
	}
	char *werr = put(r, rec, item_source(it), what, "ok", it->reason);
	mq_vm_record_free(rec);
	if (werr) {
		char *m = xasprintf("cannot %s vm '%s': %s", j->needs_start ? "start" : "stop", it->name, werr);
		free(werr);
		finish(r, i, MQ_OUT_FAILED, m);
		free(m);
		return 0;
	}
	j->vj.name = it->name;
	j->vj.spec = j->spec;
	j->vj.stop = j->needs_stop;
	j->vj.start = j->needs_start;
	j->vj.qmp_path = j->qmp_path;
	j->vj.runtime_dir = r->o->runtime_dir;
	j->vj.disk_dir = r->o->disk_dir;
	j->vj.host = r->o->host;
	j->vj.start_timeout_ms = r->o->start_timeout_ms;
	j->vj.stop_grace_ms = r->o->stop_grace_ms;
	j->vj.force_stop = r->o->force_stop;
	j->vj.keep_ev = true; /* for the watch: ours (started) or another's (handoff) */
	struct mq_error *err = NULL;
	if (mq_worker_start(mq_vmjob_run, &j->vj, &j->w, &err) < 0) {
		char *m = xasprintf("cannot %s vm '%s': %s", j->needs_start ? "start" : "stop", it->name,
				    err ? err->msg : "cannot fork a worker");
		mq_error_free(err);
		fail_item(r, i, m);
		free(m);
		return 0;
	}
	j->phase = J_RUNNING;
	j->src = mq_loop_add_fd(r->loop, j->w.fd, POLLIN, on_worker, j);
	return 1;
}

static void on_stopped(struct run *r, size_t i)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	j->stopped = true;
	struct mq_vm_record *rec = record_for(r, i);
	phase(rec, MQ_PHASE_EV_STOP_OK, NULL);
	const char *hold = j->needs_start ? NULL : apply_hold(r, rec);
	if (j->needs_start)
		phase(rec, MQ_PHASE_EV_START_BEGIN, NULL);
	char *d = xasprintf("%s%s", j->stop_how ? j->stop_how : "was not running", hold ? hold : "");
	char *werr = put(r, rec, item_source(it), "stop", "ok", d);
	free(d);
	mq_vm_record_free(rec);
	if (werr && !j->needs_start) {
		/* the QEMU is gone but the record (and its hold) is not saved:
		 * never reported as a success */
		free(j->store_msg);
		j->store_msg = xasprintf("cannot stop vm '%s': its qemu was stopped, but %s%s", it->name,
					 r->o->hold && strcmp(r->o->hold, "set") == 0 ? "the hold was not saved: " : "",
					 werr);
	}
	free(werr);
}

/* QEMU exists but is not ready: record its identity at once (phase stays
 * starting), so an interrupted start leaves a recorded pid. */
static void on_spawned(struct run *r, size_t i, const struct mq_wmsg *m)
{
	const struct mq_plan_item *it = &r->plan->items[i];
	struct mq_vm_record *rec = record_for(r, i);
	if (mq_phase_get(rec) != MQ_PHASE_STARTING)
		phase(rec, MQ_PHASE_EV_START_BEGIN, NULL);
	struct mq_phase_ctx ctx = { .pid = m->pid, .start_time = m->start_time };
	phase(rec, MQ_PHASE_EV_SPAWNED, &ctx);
	char *d = xasprintf("pid %d", (int)m->pid);
	free(put(r, rec, item_source(it), "start.spawned", "ok", d)); /* a failure shows at start-ok */
	free(d);
	mq_vm_record_free(rec);
}

static void on_started(struct run *r, size_t i, const struct mq_wmsg *m, int ev_fd, bool adopted)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	j->new_ref.pid = m->pid;
	j->new_ref.start_time = m->start_time;
	memcpy(j->accel, m->accel, sizeof(j->accel));
	struct mq_vm_record *rec = record_for(r, i);
	if (mq_phase_get(rec) != MQ_PHASE_STARTING)
		phase(rec, MQ_PHASE_EV_START_BEGIN, NULL);
	/* An explicit start, or a manifest change that lifted a crash-loop,
	 * begins a fresh failure window. */
	struct mq_phase_ctx ctx = {
		.pid = m->pid,
		.start_time = m->start_time,
		.qmp_path = m->path[0] ? m->path : NULL,
		.accel = m->accel[0] ? m->accel : NULL,
		.reset_failures = r->o->reset_failures ||
				  (it->rec && it->rec->status && strcmp(it->rec->status, MQ_STATUS_CRASH_LOOP) == 0),
	};
	phase(rec, adopted ? MQ_PHASE_EV_ADOPT : MQ_PHASE_EV_START_OK, &ctx);
	if (j->rolled_back && it->rec && it->spec) {
		/* the last good spec runs: keep it recorded, and remember the
		 * refused one so it is not tried again until the manifest changes */
		mq_vm_record_set(&rec->spec_json, it->rec->spec_json);
		mq_vm_record_set(&rec->spec_hash, it->rec->spec_hash);
		mq_vm_record_set(&rec->rolled_back_hash, it->spec->hash);
		char *why = xasprintf("rolled back to snapshot '%s': the new spec failed to start: %s", j->pre_change,
				      j->rollback_reason ? j->rollback_reason : "unknown reason");
		mq_vm_record_set(&rec->rolled_back_reason, why);
		mq_vm_record_set(&rec->last_error, why);
		free(why);
	} else if (it->spec) {
		mq_vm_record_set(&rec->rolled_back_hash, NULL);
		mq_vm_record_set(&rec->rolled_back_reason, NULL);
	}
	const char *hold = apply_hold(r, rec);
	char *d = xasprintf("%spid %d, accel %s%s", adopted ? "adopted the qemu of an interrupted start, " : "",
			    (int)m->pid, m->accel, hold ? hold : "");
	char *werr = put(r, rec, item_source(it), adopted ? "adopt" : "start", "ok", d);
	free(d);
	mq_vm_record_free(rec);
	if (werr) {
		/* Nothing would know about this QEMU: stop it again. */
		(void)mq_proc_kill(&j->new_ref, SIGKILL);
		(void)mq_proc_wait_exit(&j->new_ref, 5000);
		free(j->message);
		j->message = xasprintf("cannot start vm '%s': %s (the qemu it started was stopped again)", it->name, werr);
		free(werr);
		if (ev_fd >= 0)
			close(ev_fd);
		return;
	}
	j->started = true;
	j->adopted = adopted;
	if (r->o->started) {
		r->o->started(r->o->ud, it->name, &j->new_ref, ev_fd); /* takes ev_fd */
	} else if (ev_fd >= 0) {
		if (r->o->state_dir)
			(void)mq_handoff_send(r->o->state_dir, it->name, &j->new_ref, ev_fd); /* no watch: fine */
		close(ev_fd);
	}
}

/* The steps of a restart with snapshots.before_change (vmjob.h). */
static bool before_change_step(struct run *r, size_t i, const struct mq_wmsg *m)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	const char *src = item_source(it);
	if (strcmp(m->step, "pre-change") == 0) {
		if (strcmp(m->outcome, "ok") == 0) {
			struct mq_error *err = NULL;
			if (mq_store_snap_put(r->st, it->name, m->text, "pre-change", mq_now_ms(), &err) < 0) {
				event(r, it->name, src, "snapshot.pre-change", "failed", err ? err->msg : "cannot record");
				mq_error_free(err);
			}
			char *d = xasprintf("snapshot '%s' (origin pre-change, offline) before restart", m->text);
			event(r, it->name, src, "snapshot.pre-change", "ok", d);
			free(d);
		} else {
			event(r, it->name, src, "snapshot.pre-change", "failed", m->text);
			j->rolled_back = true;
			free(j->rollback_reason);
			j->rollback_reason = xstrdup(m->text);
		}
		return true;
	}
	if (strcmp(m->step, "new-start") == 0) {
		event(r, it->name, src, "start", "failed", m->text);
		free(j->rollback_reason);
		j->rollback_reason = xstrdup(m->text);
		return true;
	}
	if (strcmp(m->step, "rollback") == 0) {
		char *d = xasprintf("disks reverted to snapshot '%s'%s%s", m->text, strcmp(m->outcome, "ok") ? ": " : "",
				    strcmp(m->outcome, "ok") ? m->text : "");
		event(r, it->name, src, "rollback", m->outcome, d);
		free(d);
		if (strcmp(m->outcome, "ok") == 0)
			j->rolled_back = true;
		return true;
	}
	return false;
}

static void handle_msg(struct run *r, size_t i, const struct mq_wmsg *m, int fd)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	const char *src = item_source(it);
	switch (m->kind) {
	case MQ_WMSG_STEP: {
		if (before_change_step(r, i, m))
			break;
		char *action = xasprintf("stop.%s", m->step);
		event(r, it->name, src, action, m->outcome, m->text[0] ? m->text : NULL);
		free(action);
		if (strcmp(m->outcome, "exited") == 0) {
			free(j->stop_how);
			j->stop_how = xstrdup(m->step);
		}
		break;
	}
	case MQ_WMSG_DISK:
		event(r, it->name, src, "disk.create", "ok", m->path);
		break;
	case MQ_WMSG_STOPPED:
		on_stopped(r, i);
		break;
	case MQ_WMSG_SPAWNED:
		on_spawned(r, i, m);
		break;
	case MQ_WMSG_STARTED:
	case MQ_WMSG_ADOPTED:
		if (j->spec) /* its worker's binary check passed: the next worker skips it */
			mq_qemu_binary_remember(j->spec->binary);
		on_started(r, i, m, fd, m->kind == MQ_WMSG_ADOPTED);
		fd = -1;
		break;
	case MQ_WMSG_ERROR:
		free(j->message);
		j->message = xstrdup(m->text);
		break;
	default:
		break;
	}
	if (fd >= 0)
		close(fd);
}

static void complete_delete(struct run *r, size_t i, struct mq_spec *recspec);

static void reap_worker(struct run *r, size_t i)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	mq_source_remove(j->src);
	j->src = NULL;
	int status = 0;
	mq_worker_finish(&j->w, &status);
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && (!j->needs_start || j->started);
	if (!ok) {
		char *msg = j->message && *j->message
				    ? xstrdup(j->message)
				    : xasprintf("cannot %s vm '%s': its worker died unexpectedly (status %d)",
						j->needs_start ? "start" : "stop", it->name, status);
		fail_item(r, i, msg);
		free(msg);
		return;
	}
	if (it->action == MQ_ACT_DELETE) {
		complete_delete(r, i, r->recspecs[i]);
		return;
	}
	if (j->store_msg) {
		finish(r, i, MQ_OUT_FAILED, j->store_msg);
		return;
	}
	char *msg;
	if (j->rolled_back) {
		msg = xasprintf("cannot restart vm '%s' with its new spec: %s; rolled back to pre-change snapshot '%s' "
				"and started its last good spec (pid %d); not retried until the manifest changes",
				it->name, j->rollback_reason ? j->rollback_reason : "unknown reason", j->pre_change,
				(int)j->new_ref.pid);
		finish(r, i, MQ_OUT_FAILED, msg);
		free(msg);
		return;
	}
	if (it->action == MQ_ACT_RESTART)
		msg = xasprintf("restarted (pid %lld -> %d, %s)", it->rec ? (long long)it->rec->pid : 0LL,
				(int)j->new_ref.pid, j->accel);
	else if (j->started && j->adopted)
		msg = xasprintf("adopted (pid %d, %s, left by an interrupted start)", (int)j->new_ref.pid, j->accel);
	else if (j->started)
		msg = xasprintf("started (pid %d, %s)", (int)j->new_ref.pid, j->accel);
	else
		msg = xasprintf("stopped (%s)", j->stop_how ? j->stop_how : "was not running");
	finish(r, i, MQ_OUT_OK, msg);
	free(msg);
}

static void on_worker(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	struct job *j = ud;
	struct run *r = j->run;
	size_t i = j->item;
	for (int n = 0; n < 64; n++) {
		struct mq_wmsg m;
		int pfd = -1;
		int rc = mq_wmsg_recv(fd, &m, &pfd);
		if (rc == -EAGAIN)
			return;
		if (rc == 1) {
			handle_msg(r, i, &m, pfd);
			continue;
		}
		/* EOF, or a broken worker: reap it and move on */
		reap_worker(r, i);
		queue_step(r);
		return;
	}
}

static void delete_disks(struct run *r, const struct mq_plan_item *it, struct mq_spec *spec, struct mq_strbuf *note)
{
	if (!spec)
		return;
	for (size_t k = 0; k < spec->n_storage; k++) {
		const struct mq_storage *s = &spec->storage[k];
		if (s->type == MQ_STORAGE_VIRTFS)
			continue;
		char *path = mq_storage_image_path(spec, s, r->o->disk_dir);
		char *lease = xasprintf("%s%s", path, MQ_LEASE_SUFFIX);
		(void)unlink(lease); /* its disk lease (lease.h), free since the vm is down */
		free(lease);
		if (unlink(path) == 0) {
			event(r, it->name, item_source(it), "disk.delete", "ok", path);
			mq_strbuf_addf(note, ", deleted %s", path);
		} else if (errno != ENOENT) {
			char *d = xasprintf("%s: %s", path, strerror(errno));
			event(r, it->name, item_source(it), "disk.delete", "failed", d);
			free(d);
		}
		free(path);
	}
}

static void complete_delete(struct run *r, size_t i, struct mq_spec *recspec)
{
	const struct mq_plan_item *it = &r->plan->items[i];
	struct mq_error *err = NULL;
	struct mq_strbuf note = MQ_STRBUF_INIT;
	mq_strbuf_init(&note);
	mq_strbuf_adds(&note, "deleted");
	if (it->moving_to)
		mq_strbuf_addf(&note, " here: placed on host %s now (disks kept)", it->moving_to);
	else if (r->o->delete_disks)
		delete_disks(r, it, recspec, &note);
	else if (recspec && recspec->n_storage)
		mq_strbuf_adds(&note, " (disks kept; use --delete-disks to remove them)");
	if (mq_audit_forget(r->st, it->name, item_source(it), "delete", "ok", note.buf, &err) < 0) {
		r->res.store_errors++;
		free(r->res.store_error);
		r->res.store_error = xstrdup(err ? err->msg : "cannot delete the record");
		r->res.store_error_reported = false;
		char *m = xasprintf("cannot delete vm '%s': %s", it->name, err ? err->msg : "cannot delete its record");
		finish(r, i, MQ_OUT_FAILED, m);
		free(m);
	} else {
		finish(r, i, MQ_OUT_OK, note.buf);
	}
	mq_strbuf_release(&note);
	mq_error_free(err);
}

void mq_apply_record_observations(struct mq_store *st, const struct mq_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++) {
		const struct mq_plan_item *it = &plan->items[i];
		if (!it->rec || !it->rec->status)
			continue;
		if (strcmp(it->observed, MQ_STATUS_CRASHED) == 0 && strcmp(it->rec->status, MQ_STATUS_CRASHED) != 0) {
			struct mq_vm_record *rec = mq_vm_record_dup(it->rec);
			char *d = xasprintf("process %lld (start time %llu) is gone", (long long)rec->pid,
					    (unsigned long long)rec->start_time);
			struct mq_phase_ctx ctx = { .error = d };
			phase(rec, MQ_PHASE_EV_OBSERVED_GONE, &ctx);
			struct mq_error *err = NULL;
			mq_audit_record(st, rec, rec->source, "crash", "detected", d, &err);
			mq_error_free(err);
			free(d);
			mq_vm_record_free(rec);
		}
	}
}

/* Start what is ready, within the jobs bound; finish when nothing is left. */
static void step(struct run *r)
{
	const struct mq_plan *plan = r->plan;
	for (;;) {
		size_t running = 0, pending = 0;
		for (size_t i = 0; i < plan->n; i++) {
			if (!r->active[i])
				continue;
			if (r->jobs[i].phase == J_RUNNING)
				running++;
			else if (r->jobs[i].phase == J_PENDING)
				pending++;
		}
		bool progressed = false;
		for (size_t i = 0; i < plan->n && running < (size_t)r->jobs_max; i++) {
			struct job *j = &r->jobs[i];
			if (!r->active[i] || j->phase != J_PENDING)
				continue;
			const struct mq_plan_item *it = &plan->items[i];
			char *why = NULL;
			int rd = readiness(r, i, &why);
			if (rd == 0)
				continue;
			pending--;
			progressed = true;
			if (rd < 0) {
				char *m = xasprintf("cannot %s vm '%s': %s", j->needs_start ? "start" : "stop", it->name, why);
				free(why);
				struct mq_vm_record *rec = record_for(r, i);
				mq_vm_record_set(&rec->last_error, m);
				free(put(r, rec, item_source(it), mq_action_str(it->action), "skipped", m));
				mq_vm_record_free(rec);
				finish(r, i, MQ_OUT_SKIPPED, m);
				free(m);
				continue;
			}
			/* The QEMU binary is checked (`--version`) by the VM's
			 * worker before it stops anything (vmjob.c): a restart
			 * whose new binary is missing keeps the old QEMU, and
			 * this loop never waits for a process. */
			running += (size_t)launch(r, i);
		}
		if (running > 0)
			return;
		if (pending == 0)
			break;
		if (!progressed) {
			/* Only possible with a dependency loop among records. */
			for (size_t i = 0; i < plan->n; i++)
				if (r->active[i] && r->jobs[i].phase == J_PENDING)
					finish(r, i, MQ_OUT_SKIPPED, "waiting on a dependency that never finished");
			break;
		}
	}
	if (!r->finished) {
		r->finished = true;
		if (r->done)
			r->done(r->done_ud);
	}
}

static void deferred_step(struct mq_loop *l, void *ud)
{
	struct run *r = ud;
	r->step_queued = false;
	step(r);
}

static void queue_step(struct run *r)
{
	if (r->step_queued || r->finished)
		return;
	r->step_queued = true;
	mq_loop_defer(r->loop, deferred_step, r);
}

int mq_applier_start(struct mq_store *st, const struct mq_plan *plan, const struct mq_apply_opts *o,
		     struct mq_loop *loop, mq_apply_done_fn done, void *done_ud, struct mq_applier **out)
{
	struct run *r = xcalloc(1, sizeof(*r));
	r->st = st;
	r->plan = plan;
	r->o = o;
	r->loop = loop;
	r->done = done;
	r->done_ud = done_ud;
	r->jobs = xcalloc(plan->n + 1, sizeof(*r->jobs));
	r->active = xcalloc(plan->n + 1, sizeof(*r->active));
	r->recspecs = xcalloc(plan->n + 1, sizeof(*r->recspecs));
	r->jobs_max = o->jobs > 0 ? o->jobs : 4;

	mq_audit_new_pass();
	mq_apply_record_observations(st, plan);

	for (size_t i = 0; i < plan->n; i++) {
		const struct mq_plan_item *it = &plan->items[i];
		struct job *j = &r->jobs[i];
		j->run = r;
		j->item = i;
		j->w.fd = -1;
		j->phase = J_DONE;
		if (it->rec && it->rec->spec_json) {
			struct mq_error *e2 = NULL;
			mq_spec_from_canonical(it->rec->spec_json, it->rec->source, &r->recspecs[i], &e2);
			mq_error_free(e2);
		}
		j->spec = (struct mq_spec *)it->spec;
		if (!j->spec && r->recspecs[i])
			j->spec = r->recspecs[i];
		if (it->rec) {
			j->vj.ref.pid = (pid_t)it->rec->pid;
			j->vj.ref.start_time = it->rec->start_time;
			j->qmp_path = xstrdup_null(it->rec->qmp_path);
		}
		j->vj.stop_timeout_ms = stop_timeout_for(it, o, r->recspecs[i]);
		if (it->owner && !it->conflict && it->spec) {
			/* --adopt: the VM moves to this source */
			char *d = xasprintf("moved from source '%s' to '%s' (--adopt)", it->owner, it->spec->source);
			event(r, it->name, it->spec->source, "owner", "ok", d);
			free(d);
		}
		bool up = mq_status_is_up(it->observed);
		/* An interrupted start (a maqet killed mid-start): its QEMU may
		 * run with or without a recorded pid.  A start adopts it (the
		 * worker finds it), a stop or delete looks for it. */
		bool interrupted = it->rec && it->rec->status && strcmp(it->rec->status, MQ_STATUS_STARTING) == 0;
		switch (it->action) {
		case MQ_ACT_NOOP:
			break;
		case MQ_ACT_UPDATE: {
			struct mq_vm_record *rec = record_for(r, i);
			const char *hold = apply_hold(r, rec);
			char *d = xasprintf("%s%s", it->reason, hold ? hold : "");
			char *werr = put(r, rec, item_source(it), "update", "ok", d);
			free(d);
			mq_vm_record_free(rec);
			finish(r, i, werr ? MQ_OUT_FAILED : MQ_OUT_OK, werr ? werr : "record updated");
			free(werr);
			break;
		}
		case MQ_ACT_CREATE: {
			struct mq_vm_record *rec = record_for(r, i);
			char *werr = put(r, rec, item_source(it), "create", "ok", it->spec ? it->spec->file : NULL);
			mq_vm_record_free(rec);
			if (werr) {
				char *m = xasprintf("cannot create vm '%s': %s", it->name, werr);
				finish(r, i, MQ_OUT_FAILED, m);
				free(m);
				free(werr);
			} else if (it->spec && it->spec->state == MQ_DESIRED_RUNNING) {
				j->needs_start = true;
			} else {
				finish(r, i, MQ_OUT_OK, "created (desired stopped)");
			}
			break;
		}
		case MQ_ACT_START:
			j->needs_start = true;
			j->needs_stop = up && !interrupted; /* e.g. `maqet restart` of a stopped vm is a start */
			break;
		case MQ_ACT_STOP:
		case MQ_ACT_DELETE:
			j->needs_stop = up || interrupted;
			break;
		case MQ_ACT_RESTART: {
			j->needs_stop = up;
			j->needs_start = true;
			const struct mq_snapshots *sn = it->spec ? it->spec->snapshots : NULL;
			if (up && sn && sn->before_change && sn->before_change->enabled && r->recspecs[i]) {
				j->pre_change = mq_snap_auto_name("pre-change-", mq_now_ms() / 1000 * 1000);
				j->vj.pre_change = j->pre_change;
				j->vj.old_spec = r->recspecs[i];
				j->vj.rollback = sn->before_change->rollback;
			}
			break;
		}
		default:
			break;
		}
		if (j->needs_start && !j->spec) {
			char *m = xasprintf("cannot start vm '%s': no spec recorded for it (apply its manifest again)", it->name);
			finish(r, i, MQ_OUT_FAILED, m);
			free(m);
			continue;
		}
		if (j->needs_stop || j->needs_start) {
			r->active[i] = true;
			j->phase = J_PENDING;
		} else if (it->action == MQ_ACT_DELETE) {
			complete_delete(r, i, r->recspecs[i]);
		} else if (it->action == MQ_ACT_STOP) {
			/* nothing to stop (already gone) */
			struct mq_vm_record *rec = record_for(r, i);
			phase(rec, MQ_PHASE_EV_STOP_OK, NULL);
			const char *hold = apply_hold(r, rec);
			char *d = xasprintf("was not running%s", hold ? hold : "");
			char *werr = put(r, rec, item_source(it), "stop", "ok", d);
			free(d);
			mq_vm_record_free(rec);
			finish(r, i, werr ? MQ_OUT_FAILED : MQ_OUT_OK, werr ? werr : "already stopped");
			free(werr);
		}
	}
	queue_step(r);
	*out = (struct mq_applier *)r;
	return 0;
}

bool mq_applier_done(const struct mq_applier *a)
{
	return ((const struct run *)a)->finished;
}

void mq_applier_result(const struct mq_applier *a, struct mq_apply_result *res)
{
	const struct run *r = (const struct run *)a;
	*res = r->res;
	res->store_error = NULL; /* borrowed: use mq_applier_store_error() */
}

const char *mq_applier_store_error(const struct mq_applier *a)
{
	return ((const struct run *)a)->res.store_error;
}

struct mq_applier *mq_applier_free(struct mq_applier *a)
{
	struct run *r = (struct run *)a;
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->plan->n; i++) {
		struct job *j = &r->jobs[i];
		mq_source_remove(j->src);
		if (j->w.fd >= 0)
			close(j->w.fd);
		free(j->message);
		free(j->qmp_path);
		free(j->stop_how);
		free(j->pre_change);
		free(j->rollback_reason);
		free(j->store_msg);
		mq_vm_record_free(j->cur);
		mq_spec_free(r->recspecs[i]);
	}
	free(r->res.store_error);
	free(r->recspecs);
	free(r->jobs);
	free(r->active);
	free(r);
	return NULL;
}

static void apply_done(void *ud)
{
	mq_loop_quit(ud, 0);
}

int mq_apply(struct mq_store *st, const struct mq_plan *plan, const struct mq_apply_opts *o,
	     struct mq_apply_result *res, struct mq_error **err)
{
	struct mq_loop *loop = NULL;
	int r = mq_loop_new(&loop, err);
	if (r < 0)
		return r;
	struct mq_applier *a = NULL;
	mq_applier_start(st, plan, o, loop, apply_done, loop, &a);
	r = mq_loop_run(loop, err);
	if (r < 0) {
		/* The loop itself failed: let the workers finish, then report. */
		while (!mq_applier_done(a) && mq_loop_run_once(loop, -1, NULL) >= 0)
			;
	}
	struct mq_apply_result local;
	mq_applier_result(a, &local);
	if (res)
		*res = local;
	if (r >= 0 && local.store_errors) {
		r = mq_error_set(err, EIO, "%s", mq_applier_store_error(a));
		r = -EIO;
	}
	mq_applier_free(a);
	mq_loop_free(loop);
	return r < 0 ? r : 0;
}
