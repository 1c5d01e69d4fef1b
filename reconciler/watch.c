/* watch.c - `maqet watch`: the reconcile loop as a supervisor, on the event
 * loop (reconciler/loop.h).
 *
 * Sources: the signalfd, the manifest watcher (mwatch), an inotify watch on
 * the state lock, the process-events connector, the tracked VMs
 * (reconciler/track.h) and the workers of the pass in flight
 * (reconciler/apply.h).  Timers: the settle window, periodic resync,
 * backoff wake-up, lock retry, store-failure retry.
 *
 * A pass is only ever started from deferred work, which the loop runs after
 * a poll(): a pass that asks for another pass can never starve the signalfd.
 */
#include "reconciler/watch.h"
#include "reconciler/vmlock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "reconciler/apply.h"
#include "reconciler/audit.h"
#include "reconciler/desired.h"
#include "reconciler/gitsync.h"
#include "reconciler/lease.h"
#include "reconciler/handoff.h"
#include "reconciler/lock.h"
#include "reconciler/loop.h"
#include "reconciler/mwatch.h"
#include "reconciler/notify.h"
#include "reconciler/phase.h"
#include "reconciler/plan.h"
#include "reconciler/proc.h"
#include "reconciler/snapwatch.h"
#include "reconciler/teardown.h"
#include "reconciler/logrot.h"
#include "reconciler/procexit.h"
#include "reconciler/track.h"
#include "specs/fromjson.h"
#include "util/paths.h"
#include "util/xalloc.h"

#define LOCK_RETRY_MS 50
#define STORE_RETRY_MIN_MS 500
#define STORE_RETRY_MAX_MS 30000

/* One plan being applied on the loop. */
struct pass {
	struct watch *w;
	struct mq_plan *plan;
	struct mq_applier *applier;
	struct mq_apply_opts aopts;
	char trigger[32];
};

/* An exit noticed by the tracker, waiting for the next pass to record it. */
struct pending_exit {
	char *name;
	struct mq_pidref ref;
	struct mq_exit_info info;
};

struct watch {
	struct mq_store *st;
	int64_t pruned_at;            /* monotonic ms of the last event retention pass (0 = never) */
	const struct mq_watch_opts *o;
	struct mq_loop *loop;
	struct mq_mwatch *mw;
	struct mq_desired_view *desired;
	struct mq_tracker *tracker;
	int lockfd;                   /* inotify on the state lock, -1 when unavailable */
	int pxfd;                     /* process-exit connector, -1 when unavailable */
	int hofd;                     /* <state>/watch.sock: event connections handed over, -1 if none */
	struct mq_timer *settle_timer, *resync_timer, *backoff_timer, *retry_timer;
	struct mq_snapwatch *snaps;   /* declared snapshots: timers + workers (snapwatch.h) */
	struct mq_logrot *logrot;     /* running VMs' logs kept under the cap (logrot.h) */
	struct mq_gitsync *gs;        /* --git-pull (gitsync.h), NULL without */
	struct mq_teardown *teardown; /* exited QEMUs still holding a disk lease (teardown.h) */
	unsigned resyncs;             /* periodic resyncs so far */
	bool inotify_blind;           /* a -f path on a filesystem whose changes inotify may miss */

	struct pending_exit *px;
	size_t npx;

	/* pass scheduling */
	bool pass_wanted, reload_wanted, pass_queued;
	char trigger[32];
	bool waiting_retry;           /* a lock or store retry timer is armed */
	int64_t store_retry_ms;       /* current store-failure backoff, 0 = none */
	char *store_error;            /* last store failure reported (once per cause) */

	/* passes in flight: the first takes the state lock, later ones (for VMs
	 * the others do not touch, e.g. one that just crashed) share it */
	struct pass **passes;
	size_t npasses;
	struct mq_lock lock;
	bool locked;
	bool busy_deferred;           /* a pass left VMs to another: plan again when all end */

	bool ready, stop_requested;
	struct mq_strv preexisting;   /* "name pid starttime" of VMs running before the first pass */
	struct mq_strv undeclared_logged;
	struct mq_strv blocked_logged; /* "name\twake" already logged; pruned to the current plan */
};

static void wlog(struct watch *w, const char *vm, const char *action, const char *outcome, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void wlog(struct watch *w, const char *vm, const char *action, const char *outcome, const char *fmt, ...)
{
	if (!w->o->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *d = xvasprintf(fmt, ap);
	va_end(ap);
	w->o->log(w->o->ud, vm, action, outcome, d);
	free(d);
}

static void log_cb(void *ud, const char *vm, const char *action, const char *outcome, const char *detail)
{
	struct watch *w = ud;
	if (w->o->log)
		w->o->log(w->o->ud, vm, action, outcome, detail);
}

static void start_pass(struct mq_loop *l, void *ud);
static void drain_handoffs(struct watch *w);

/* Ask for a pass.  It starts from deferred work (after a poll), unless one
 * is in flight or a retry timer is armed: those ask again when they end. */
static void want_pass(struct watch *w, const char *trigger, bool reload)
{
	if (!w->pass_wanted)
		snprintf(w->trigger, sizeof(w->trigger), "%s", trigger);
	w->pass_wanted = true;
	if (reload)
		w->reload_wanted = true;
	if (!w->pass_queued && !w->waiting_retry && !w->stop_requested) {
		w->pass_queued = true;
		mq_loop_defer(w->loop, start_pass, w);
	}
}

/* ---- store failures ------------------------------------------------------------ */

/* A pass could not write the store: report each distinct cause once, keep
 * every VM as it is, and try again on a backoff timer. */
static void on_retry(struct mq_loop *l, struct mq_timer *t, void *ud);

static void store_failed(struct watch *w, const char *msg)
{
	if (!w->store_error || strcmp(w->store_error, msg) != 0) {
		free(w->store_error);
		w->store_error = xstrdup(msg);
		wlog(w, NULL, "store", "failed", "%s; vms are left as they are, retrying", msg);
	}
	w->store_retry_ms = w->store_retry_ms ? w->store_retry_ms * 2 : STORE_RETRY_MIN_MS;
	if (w->store_retry_ms > STORE_RETRY_MAX_MS)
		w->store_retry_ms = STORE_RETRY_MAX_MS;
	w->pass_wanted = true;
	w->waiting_retry = true;
	mq_timer_cancel(w->retry_timer);
	w->retry_timer = mq_loop_add_timer_in(w->loop, w->store_retry_ms, on_retry, w);
}

static void store_ok(struct watch *w)
{
	if (w->store_error) {
		wlog(w, NULL, "store", "recovered", "state writes succeed again");
		free(w->store_error);
		w->store_error = NULL;
	}
	w->store_retry_ms = 0;
}

static void on_retry(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct watch *w = ud;
	w->retry_timer = NULL;
	w->waiting_retry = false;
	want_pass(w, w->trigger[0] ? w->trigger : "retry", false);
}

/* ---- exits ------------------------------------------------------------------------ */

static void on_exit_cb(void *ud, const char *name, const struct mq_pidref *ref, const struct mq_exit_info *info)
{
	struct watch *w = ud;
	struct mq_exit_info in = *info;
	/* A stop that some maqet (this watch's pass or a CLI command) is doing
	 * shows as phase "stopping": report it now; nothing else to decide. */
	struct mq_vm_record *rec = NULL;
	if (mq_store_vm_get(w->st, name, &rec, NULL) == 0) {
		bool same = rec->pid == ref->pid && rec->start_time == ref->start_time;
		enum mq_phase ph = mq_phase_get(rec);
		in.intended = (same && ph == MQ_PHASE_STOPPING) || !same || !mq_phase_is_up(ph);
	}
	mq_vm_record_free(rec);
	if (in.intended) {
		char *desc = mq_exit_describe(&in);
		wlog(w, name, "exit", mq_exit_kind_str(MQ_EXIT_INTENDED), "pid %d: %s", (int)ref->pid, desc);
		free(desc);
	}
	w->px = xreallocarray(w->px, w->npx + 1, sizeof(*w->px));
	struct pending_exit *p = &w->px[w->npx++];
	p->name = xstrdup(name);
	p->ref = *ref;
	p->info = in;
	want_pass(w, "exit", false);
}

/* Is name being worked on by a pass in flight? */
static bool busy(const struct watch *w, const char *name)
{
	for (size_t p = 0; p < w->npasses; p++) {
		const struct mq_plan *pl = w->passes[p]->plan;
		for (size_t i = 0; pl && i < pl->n; i++)
			if (pl->items[i].action != MQ_ACT_NOOP && strcmp(pl->items[i].name, name) == 0)
				return true;
	}
	return false;
}

static enum mq_restart policy_of(struct watch *w, const struct mq_vm_record *rec)
{
	const struct mq_specset *set = mq_desired_set(w->desired);
	const struct mq_spec *s = set ? mq_specset_find(set, rec->name) : NULL;
	if (s && !s->light) /* a light spec (placed elsewhere) has no policy: the record's */
		return s->restart;
	enum mq_restart p = MQ_RESTART_ON_FAILURE;
	struct mq_spec *rs = NULL;
	if (rec->spec_json && mq_spec_from_canonical(rec->spec_json, rec->source, &rs, NULL) == 0) {
		p = rs->restart;
		mq_spec_free(rs);
	}
	return p;
}

/* Count a failure against rec's restart budget; true when it entered
 * crash-loop (detail in *loopmsg, caller frees). */
static bool count_failure(struct watch *w, struct mq_vm_record *rec, int64_t started_at, char **loopmsg)
{
	struct mq_backoff_state bs = { .count = rec->restart_count, .backoff_until = rec->backoff_until };
	mq_backoff_failure(&w->o->backoff, &bs, mq_now_ms(), started_at);
	rec->restart_count = bs.count;
	rec->backoff_until = bs.backoff_until;
	if (!bs.crash_loop)
		return false;
	(void)mq_phase_apply(rec, MQ_PHASE_EV_CRASH_LOOP, NULL, NULL);
	rec->backoff_until = 0;
	*loopmsg = xasprintf("%d failures within %llds; no more automatic restarts until the manifest changes "
			     "or 'maqet start %s'",
			     bs.count, (long long)(w->o->backoff.stable_ms / 1000), rec->name);
	return true;
}

static int write_record(struct watch *w, const struct mq_vm_record *rec, const char *action, const char *outcome,
			const char *detail)
{
	struct mq_error *err = NULL;
	int r = mq_audit_record(w->st, rec, rec->source, action, outcome, detail, &err);
	if (r < 0)
		store_failed(w, err ? err->msg : "cannot write the state");
	mq_error_free(err);
	return r;
}

/* Record every exit seen (and every recorded-up VM whose process is gone)
 * with its classification, restart bookkeeping and an event.  Under the
 * lock.  Returns -1 when the store could not be read or written. */
static int record_exits(struct watch *w)
{
	mq_tracker_check_all(w->tracker); /* exits not yet noticed, with their events */
	/* a snapshot/restore whose maqet died: end its phase (vmlock.h) */
	(void)mq_vmlock_recover_all(w->st, w->o->state_dir, "watch", NULL);
	struct mq_vm_record **recs = NULL;
	size_t n = 0;
	struct mq_error *err = NULL;
	if (mq_store_vm_list(w->st, &recs, &n, &err) < 0) {
		store_failed(w, err ? err->msg : "cannot read the state");
		mq_error_free(err);
		return -1;
	}
	int rc = 0;
	for (size_t k = 0; k < n && rc == 0; k++) {
		struct mq_vm_record *r = recs[k];
		if (!mq_phase_is_up(mq_phase_get(r)) || busy(w, r->name) || mq_status_is_up(mq_observe(r)))
			continue;
		/* died since the check above: collect it now, with its QMP events */
		struct mq_pidref rref = { .pid = (pid_t)r->pid, .start_time = r->start_time };
		if (mq_tracker_has(w->tracker, r->name, &rref))
			mq_tracker_collect(w->tracker, r->name);
		struct mq_exit_info info = { 0 };
		for (size_t i = 0; i < w->npx; i++)
			if (strcmp(w->px[i].name, r->name) == 0 && w->px[i].ref.pid == r->pid &&
			    w->px[i].ref.start_time == r->start_time)
				info = w->px[i].info;
		info.intended = mq_phase_get(r) == MQ_PHASE_STOPPING;
		enum mq_exit_kind kind = mq_classify_exit(&info);
		if (kind == MQ_EXIT_INTENDED)
			continue;
		char *desc = mq_exit_describe(&info);
		enum mq_restart policy = policy_of(w, r);
		int64_t started_at = r->started_at;
		struct mq_phase_ctx ctx = { .error = kind == MQ_EXIT_CRASH ? desc : NULL, .exit_reason = desc };
		(void)mq_phase_apply(r, kind == MQ_EXIT_GUEST_POWEROFF ? MQ_PHASE_EV_EXIT_GUEST : MQ_PHASE_EV_EXIT_CRASH, &ctx, NULL);
		char *d = xasprintf("%s; restart: %s%s", desc, mq_restart_str(policy),
				    mq_policy_restarts(policy, kind) ? "" : " (left stopped)");
		char *loopmsg = NULL;
		if (mq_policy_restarts(policy, kind))
			count_failure(w, r, started_at, &loopmsg);
		if (write_record(w, r, "exit", mq_exit_kind_str(kind), d) < 0) {
			rc = -1;
		} else {
			wlog(w, r->name, "exit", mq_exit_kind_str(kind), "%s", d);
			if (loopmsg) {
				struct mq_error *e2 = NULL;
				if (mq_audit_event(w->st, r->name, r->source, "crash-loop", "entered", loopmsg, &e2) < 0)
					rc = -1, store_failed(w, e2 ? e2->msg : "cannot write an event");
				mq_error_free(e2);
				wlog(w, r->name, "crash-loop", "entered", "%s", loopmsg);
			}
		}
		free(loopmsg);
		free(d);
		free(desc);
	}
	mq_vm_record_list_free(recs, n);
	if (rc == 0) {
		/* keep the exits of VMs a pass in flight works on: theirs come later */
		size_t keep = 0;
		for (size_t i = 0; i < w->npx; i++) {
			if (busy(w, w->px[i].name))
				w->px[keep++] = w->px[i];
			else
				free(w->px[i].name);
		}
		w->npx = keep;
	}
	return rc;
}

/* ---- tracking ---------------------------------------------------------------------- */

/* Make the tracked set match the records: every up VM is followed. */
static void sync_tracking(struct watch *w)
{
	struct mq_vm_record **recs = NULL;
	size_t n = 0;
	if (mq_store_vm_list(w->st, &recs, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < mq_tracker_count(w->tracker);) {
		const char *name = mq_tracker_name(w->tracker, i);
		bool keep = false;
		for (size_t k = 0; k < n; k++) {
			struct mq_pidref ref = { .pid = (pid_t)recs[k]->pid, .start_time = recs[k]->start_time };
			if (strcmp(recs[k]->name, name) == 0 && mq_tracker_has(w->tracker, name, &ref) &&
			    mq_phase_is_up(mq_phase_get(recs[k])))
				keep = true;
		}
		if (keep)
			i++;
		else
			mq_tracker_remove(w->tracker, name);
	}
	for (size_t k = 0; k < n; k++) {
		const struct mq_vm_record *r = recs[k];
		if (!mq_phase_is_up(mq_phase_get(r)) || busy(w, r->name) || (r->pid <= 0 && mq_vmlock_busy_phase(r)))
			continue; /* down, a pass in flight is starting/stopping it, or an offline snapshot job */
		struct mq_pidref ref = { .pid = (pid_t)r->pid, .start_time = r->start_time };
		if (mq_tracker_has(w->tracker, r->name, &ref))
			continue;
		if (!mq_status_is_up(mq_observe(r))) {
			want_pass(w, "exit", false);
			continue;
		}
		char *key = xasprintf("%s %lld %llu", r->name, (long long)r->pid, (unsigned long long)r->start_time);
		mq_tracker_add(w->tracker, r->name, &ref, -1, mq_strv_contains(&w->preexisting, key));
		free(key);
	}
	mq_vm_record_list_free(recs, n);
}

/* ---- passes -------------------------------------------------------------------------- */

static void on_report(void *ud, const struct mq_plan_item *it, enum mq_outcome outcome, const char *msg)
{
	struct watch *w = ud;
	static const char *const names[] = { "ok", "failed", "skipped" };
	wlog(w, it->name, mq_action_str(it->action), names[outcome], "%s (%s)", msg, it->reason);
	bool start_kind = it->action == MQ_ACT_START || it->action == MQ_ACT_RESTART ||
			  (it->action == MQ_ACT_CREATE && it->spec && it->spec->state == MQ_DESIRED_RUNNING);
	if (outcome == MQ_OUT_FAILED && start_kind) {
		struct mq_vm_record *rec = NULL;
		if (mq_store_vm_get(w->st, it->name, &rec, NULL) == 0) {
			if (!rec->exit_reason)
				mq_vm_record_set(&rec->exit_reason, "start failed");
			char *loopmsg = NULL;
			count_failure(w, rec, 0, &loopmsg);
			if (write_record(w, rec, loopmsg ? "crash-loop" : "backoff", loopmsg ? "entered" : "counted",
					 loopmsg ? loopmsg : "start failed") == 0 && loopmsg)
				wlog(w, rec->name, "crash-loop", "entered", "%s", loopmsg);
			free(loopmsg);
		}
		mq_vm_record_free(rec);
	}
}

static void on_started(void *ud, const char *name, const struct mq_pidref *ref, int ev_fd)
{
	struct watch *w = ud;
	mq_tracker_add(w->tracker, name, ref, ev_fd, false);
}

static void on_backoff(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct watch *w = ud;
	w->backoff_timer = NULL;
	want_pass(w, "backoff", false);
}

static void on_teardown(void *ud)
{
	want_pass(ud, "exit", false);
}

static void log_plan_notes(struct watch *w, const struct mq_plan *p)
{
	int64_t wake = 0;
	struct mq_strv still_blocked = MQ_STRV_INIT;
	for (size_t i = 0; i < p->n; i++) {
		const struct mq_plan_item *it = &p->items[i];
		if (it->wake_at && (!wake || it->wake_at < wake))
			wake = it->wake_at;
		if (it->lease_wait) { /* another host's QEMU holds its disk: look again soon */
			int64_t again = mq_now_ms() + MQ_LEASE_RECHECK_MS;
			if (!wake || again < wake)
				wake = again;
		}
		/* its own QEMU, exited and still being torn down: re-plan the
		 * moment its pidfd says it is gone (the timer above stays as the
		 * fallback); a few milliseconds, not worth a log line */
		bool quiet = it->lease_own_exit && mq_teardown_wait(w->teardown, (pid_t)it->lease_pid) == 0;
		if (!quiet && it->action == MQ_ACT_NOOP && it->blocked && it->block_reason) {
			char *key = xasprintf("%s\t%lld", it->name, (long long)it->wake_at);
			if (!mq_strv_contains(&w->blocked_logged, key))
				wlog(w, it->name, it->wake_at ? "backoff" : "blocked", it->wake_at ? "waiting" : "kept", "%s",
				     it->block_reason);
			mq_strv_push(&still_blocked, key);
			free(key);
		}
		long k = mq_strv_find(&w->undeclared_logged, it->name);
		if (!it->spec && it->action == MQ_ACT_NOOP) {
			if (k < 0) {
				mq_strv_push(&w->undeclared_logged, it->name);
				wlog(w, it->name, "undeclared", "kept", "%s", it->reason);
			}
		} else if (k >= 0) {
			free(w->undeclared_logged.v[k]);
			w->undeclared_logged.v[k] = w->undeclared_logged.v[--w->undeclared_logged.n];
			w->undeclared_logged.v[w->undeclared_logged.n] = NULL;
		}
	}
	/* Only what is blocked now is remembered: the set cannot grow without bound. */
	mq_strv_clear(&w->blocked_logged);
	w->blocked_logged = still_blocked;
	mq_timer_cancel(w->backoff_timer);
	w->backoff_timer = NULL;
	if (wake) {
		int64_t wall = mq_now_ms();
		w->backoff_timer =
			mq_loop_add_timer_in(w->loop, (wake > wall ? wake - wall : 0) + 1, on_backoff, w);
	}
}

static void drain_lockwatch(int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Release the pass lock; the inotify events of our own release (the lock
 * file is truncated) are queued by now: drop them, they are no news. */
static void release_lock(struct watch *w)
{
	if (w->locked) {
		mq_lock_release(&w->lock);
		w->locked = false;
		drain_lockwatch(w->lockfd);
	}
}

static void remove_pass(struct watch *w, struct pass *p)
{
	for (size_t i = 0; i < w->npasses; i++)
		if (w->passes[i] == p) {
			w->passes[i] = w->passes[--w->npasses];
			break;
		}
	mq_applier_free(p->applier);
	mq_plan_free(p->plan);
	free(p);
}

static void end_pass(struct watch *w, struct pass *p, const struct mq_apply_result *res)
{
	size_t changes = p->plan ? mq_plan_changes(p->plan) : 0;
	if (res)
		wlog(w, NULL, "pass", "done", "trigger %s; %zu change%s: %zu ok, %zu failed, %zu skipped", p->trigger,
		     changes, changes == 1 ? "" : "s", res->ok, res->failed, res->skipped);
	else
		wlog(w, NULL, "pass", "done", "trigger %s; no changes", p->trigger);
	remove_pass(w, p);
	/* event retention: after the first pass, then at most once an hour */
	if ((w->o->events_keep || w->o->events_max_age_ms) &&
	    (w->pruned_at == 0 || mq_mono_ms() - w->pruned_at >= 3600000)) {
		int64_t deleted = 0;
		struct mq_error *perr = NULL;
		w->pruned_at = mq_mono_ms();
		if (mq_store_event_prune(w->st, w->o->events_keep, w->o->events_max_age_ms, mq_now_ms(), &deleted,
					 &perr) < 0)
			wlog(w, NULL, "events.prune", "failed", "%s", perr ? perr->msg : "cannot prune events");
		else
			wlog(w, NULL, "events.prune", "ok", "%lld old event%s deleted", (long long)deleted,
			     deleted == 1 ? "" : "s");
		mq_error_free(perr);
	}
	if (w->npasses == 0) {
		release_lock(w);
		mq_desired_gc(w->desired);
	}
	sync_tracking(w);
	mq_snapwatch_sync(w->snaps, mq_desired_set(w->desired));
	if (!w->ready && w->npasses == 0) {
		w->ready = true;
		const struct mq_specset *set = mq_desired_set(w->desired);
		size_t nvms = set ? set->n : 0;
		wlog(w, NULL, "ready", "ok", "watching %zu path%s, %zu vm%s declared, %zu running", w->o->n_paths,
		     w->o->n_paths == 1 ? "" : "s", nvms, nvms == 1 ? "" : "s", mq_tracker_count(w->tracker));
		char *st = xasprintf("READY=1\nSTATUS=watching %zu vms", nvms);
		mq_notify(st);
		free(st);
	}
	if (w->stop_requested && w->npasses == 0) {
		mq_loop_quit(w->loop, 0);
	} else if (w->busy_deferred && w->npasses == 0) {
		w->busy_deferred = false;
		want_pass(w, "deferred", false);
	} else if (w->pass_wanted) {
		want_pass(w, w->trigger, false);
	}
}

static void pass_done_deferred(struct mq_loop *l, void *ud)
{
	struct pass *p = ud;
	struct watch *w = p->w;
	struct mq_apply_result res;
	mq_applier_result(p->applier, &res);
	const char *serr = mq_applier_store_error(p->applier);
	if (res.store_errors && serr)
		store_failed(w, serr);
	else
		store_ok(w);
	end_pass(w, p, &res);
}

static void on_pass_done(void *ud)
{
	struct pass *p = ud;
	/* called from inside the applier: free it from a later turn */
	mq_loop_defer(p->w->loop, pass_done_deferred, p);
}

/* Shared bases outside the -f paths are watched too (mq_mwatch_add_file is a
 * no-op for those already watched); one that cannot be watched is retried
 * on the next pass. */
static void watch_bases(struct watch *w)
{
	const struct mq_specset *set = mq_desired_set(w->desired);
	for (size_t i = 0; set && i < set->bases.n; i++) {
		struct mq_error *err = NULL;
		mq_mwatch_add_file(w->mw, set->bases.v[i], &err);
		mq_error_free(err);
	}
}

static void abort_pass(struct watch *w, struct pass *p)
{
	remove_pass(w, p);
	if (w->npasses == 0) {
		release_lock(w);
		mq_desired_gc(w->desired);
	}
	if (w->stop_requested && w->npasses == 0)
		mq_loop_quit(w->loop, 0);
}

/* Leave the VMs a pass in flight works on to that pass. */
static void drop_busy(struct watch *w, struct mq_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++) {
		struct mq_plan_item *it = &plan->items[i];
		if (!busy(w, it->name))
			continue;
		/* its record is the other pass's to change: no observation either */
		if (it->rec && it->rec->status)
			it->observed = mq_phase_name(mq_phase_get(it->rec));
		if (it->action == MQ_ACT_NOOP)
			continue;
		plan->counts[it->action]--;
		plan->counts[MQ_ACT_NOOP]++;
		it->action = MQ_ACT_NOOP;
		w->busy_deferred = true;
	}
}

static void start_pass(struct mq_loop *l, void *ud)
{
	struct watch *w = ud;
	w->pass_queued = false;
	if (w->stop_requested || !w->pass_wanted || w->npasses >= 8)
		return;
	/* --git-pull: manifests are read only from a complete checkout; a held
	 * reload waits for gitsync's call back (the first pass waits whole). */
	bool held = (w->reload_wanted || !mq_desired_set(w->desired)) && mq_gitsync_hold(w->gs);
	if (held && !mq_desired_set(w->desired))
		return;
	struct mq_error *err = NULL;
	if (!w->locked && mq_lock_acquire(&w->lock, w->o->state_dir, "watch pass", 0, &err) < 0) {
		mq_error_free(err);
		/* Held by a CLI command: its release shows on the lock watch;
		 * the timer is the fallback when inotify is unavailable. */
		w->waiting_retry = true;
		mq_timer_cancel(w->retry_timer);
		w->retry_timer = mq_loop_add_timer_in(w->loop, LOCK_RETRY_MS, on_retry, w);
		return;
	}
	w->locked = true;
	struct pass *p = xcalloc(1, sizeof(*p));
	p->w = w;
	snprintf(p->trigger, sizeof(p->trigger), "%s", w->trigger);
	w->passes = xreallocarray(w->passes, w->npasses + 1, sizeof(*w->passes));
	w->passes[w->npasses++] = p;
	bool reload = !held && (w->reload_wanted || !mq_desired_set(w->desired));
	w->pass_wanted = false;
	w->reload_wanted = held;
	mq_audit_new_pass();
	drain_handoffs(w); /* VMs a CLI command started before it released the lock */
	if (reload) {
		mq_desired_reload(w->desired);
		watch_bases(w);
	}
	if (record_exits(w) < 0) {
		abort_pass(w, p);
		return;
	}
	const struct mq_specset *set = mq_desired_set(w->desired);
	struct mq_plan_opts po = {
		.prune = w->o->prune && !mq_desired_unresolved(w->desired),
		.allow_empty = w->o->allow_empty,
		.supervise = true,
		.host = w->o->host,
		.disk_dir = w->o->disk_dir,
		.state_dir = w->o->state_dir,
	};
	/* A VM that dies while planning would be planned as "observed crashed"
	 * without its classification: record it and plan again. */
	struct mq_plan *plan = NULL;
	for (int again = 0; again < 3; again++) {
		struct mq_vm_record **recs = NULL;
		size_t nrec = 0;
		if (mq_store_vm_list(w->st, &recs, &nrec, &err) < 0) {
			store_failed(w, err ? err->msg : "cannot read the state");
			mq_error_free(err);
			mq_plan_free(plan);
			abort_pass(w, p);
			return;
		}
		plan = mq_plan_free(plan);
		if (mq_plan_build(set, recs, nrec, &po, &plan, &err) < 0) {
			struct mq_strv d = MQ_STRV_INIT;
			mq_strv_push(&d, err ? err->msg : "prune refused");
			mq_error_free(err);
			err = NULL;
			mq_desired_report_once(w->desired, "prune", &d, NULL);
			mq_strv_clear(&d);
			po.prune = false;
			mq_plan_build(set, recs, nrec, &po, &plan, NULL);
		} else if (po.prune) {
			mq_desired_clear_slot(w->desired, "prune");
		}
		mq_vm_record_list_free(recs, nrec);
		bool unrecorded = false;
		for (size_t i = 0; plan && i < plan->n; i++) {
			const struct mq_plan_item *it = &plan->items[i];
			if (it->rec && mq_status_is_up(it->rec->status) && !mq_status_is_up(it->observed) &&
			    !busy(w, it->name))
				unrecorded = true;
		}
		if (!unrecorded || record_exits(w) < 0)
			break;
	}
	if (!plan) {
		abort_pass(w, p);
		return;
	}
	drop_busy(w, plan);
	p->plan = plan;
	log_plan_notes(w, plan);
	if (mq_plan_changes(plan) == 0) {
		end_pass(w, p, NULL);
		return;
	}
	p->aopts = (struct mq_apply_opts){
		.host = w->o->host,
		.runtime_dir = w->o->runtime_dir,
		.disk_dir = w->o->disk_dir,
		.jobs = w->o->jobs,
		.report = on_report,
		.started = on_started,
		.ud = w,
	};
	mq_applier_start(w->st, plan, &p->aopts, w->loop, on_pass_done, p, &p->applier);
}

/* ---- sources and timers ------------------------------------------------------------ */

static void arm_settle(struct watch *w);

static void on_settle(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct watch *w = ud;
	w->settle_timer = NULL;
	int64_t now = mq_mono_ms();
	if (mq_mwatch_due(w->mw, now)) {
		bool overflow = mq_mwatch_overflowed(w->mw);
		want_pass(w, overflow ? "resync" : "manifests", true);
		mq_mwatch_consume(w->mw);
	}
	arm_settle(w);
}

static void arm_settle(struct watch *w)
{
	int64_t d = mq_mwatch_deadline(w->mw);
	if (d <= 0) {
		mq_timer_cancel(w->settle_timer);
		w->settle_timer = NULL;
	} else if (w->settle_timer) {
		mq_timer_reschedule(w->settle_timer, d);
	} else {
		w->settle_timer = mq_loop_add_timer(w->loop, d, on_settle, w);
	}
}

static void on_mwatch(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	struct watch *w = ud;
	mq_mwatch_dispatch(w->mw, mq_mono_ms());
	arm_settle(w);
}

/* A periodic resync re-plans every VM.  It also re-stats every manifest
 * where inotify can miss a change (a network or FUSE filesystem: other
 * hosts' writes; overlayfs: writes to a lower layer), and elsewhere every
 * MQ_WATCH_WALK_EVERY-th time only: there inotify reports every write,
 * create, rename and delete (an IN_Q_OVERFLOW or SIGHUP resyncs in full at
 * once), and a stat of 10,000 manifests every minute was most of an idle
 * watch's CPU on a fleet repository (bench/fleet-noop.sh). */
#define MQ_WATCH_WALK_EVERY 10

static bool fs_inotify_blind(const char *path)
{
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return true; /* cannot tell: walk */
	switch ((unsigned long)sf.f_type) {
	case 0x6969UL:     /* NFS */
	case 0x517BUL:     /* SMB */
	case 0xFF534D42UL: /* CIFS */
	case 0xFE534D42UL: /* SMB2 */
	case 0x65735546UL: /* FUSE */
	case 0x00C36400UL: /* Ceph */
	case 0x01021997UL: /* 9p */
	case 0x5346414FUL: /* AFS */
	case 0x01161970UL: /* GFS2 */
	case 0x7461636FUL: /* OCFS2 */
	case 0x47504653UL: /* GPFS */
	case 0x794C7630UL: /* overlayfs */
		return true;
	default:
		return false;
	}
}

static void on_resync(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct watch *w = ud;
	w->resyncs++;
	want_pass(w, "resync", w->inotify_blind || w->resyncs % MQ_WATCH_WALK_EVERY == 0);
	mq_timer_reschedule(t, mq_mono_ms() + w->o->resync_ms);
}

static void on_lockwatch(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	struct watch *w = ud;
	drain_lockwatch(fd);
	if (w->locked)
		return;
	/* Another maqet finished a pass: pick up its result; a pass waiting
	 * for the lock can try again at once. */
	if (w->waiting_retry && !w->store_retry_ms) {
		mq_timer_cancel(w->retry_timer);
		w->retry_timer = NULL;
		w->waiting_retry = false;
	}
	want_pass(w, "state", false);
}

static void on_procexit(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	struct watch *w = ud;
	pid_t pids[512];
	int n = mq_procexit_read(fd, pids, 512);
	if (n == -ENOBUFS) {
		mq_tracker_check_all(w->tracker); /* messages lost: look at every tracked VM */
		return;
	}
	for (int k = 0; k < n; k++)
		mq_tracker_pid_exited(w->tracker, pids[k]);
}

static void on_signal(struct mq_loop *l, struct mq_source *s, const struct signalfd_siginfo *si, void *ud)
{
	struct watch *w = ud;
	if (si->ssi_signo == SIGHUP) {
		want_pass(w, "signal", true);
	} else if (si->ssi_signo == SIGTERM || si->ssi_signo == SIGINT) {
		w->stop_requested = true;
		/* A pass in flight finishes first (its workers' results must be
		 * recorded); otherwise leave now. */
		if (w->npasses == 0)
			mq_loop_quit(w->loop, 0);
	}
}

static void desired_report(void *ud, const struct mq_strv *diags, const char *source)
{
	struct watch *w = ud;
	for (size_t i = 0; i < diags->n; i++)
		wlog(w, NULL, "invalid", "kept-last-valid", "%s", diags->v[i]);
	char *joined = mq_strv_join(diags, "\n");
	struct mq_error *err = NULL;
	if (mq_audit_event(w->st, NULL, source, "invalid", "kept-last-valid", joined, &err) < 0)
		store_failed(w, err ? err->msg : "cannot write an event");
	mq_error_free(err);
	free(joined);
}

/* A VM another maqet just started: follow it at once with the event
 * connection it hands over (handoff.h).  Read one handed-over connection; false when its message is not there yet. */
static bool take_handoff(struct watch *w, int fd, bool hup)
{
	struct mq_handoff_msg m;
	int ev_fd = -1;
	int r = mq_handoff_recv(fd, &m, &ev_fd);
	if (r == -EAGAIN && !hup)
		return false;
	if (r == 1) {
		struct mq_pidref ref = { .pid = m.pid, .start_time = m.start_time };
		if (mq_proc_check(&ref) != MQ_PROC_OTHER && !mq_tracker_has(w->tracker, m.name, &ref))
			mq_tracker_add(w->tracker, m.name, &ref, ev_fd, false);
		else
			close(ev_fd);
	}
	close(fd);
	return true;
}

static void on_handoff_conn(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	if (take_handoff(ud, fd, revents & (POLLHUP | POLLERR)))
		mq_source_remove(s);
}

/* Accept every pending handoff; a starter sends its message before it
 * releases the state lock, so a pass that holds the lock sees them all. */
static void drain_handoffs(struct watch *w)
{
	for (int i = 0; w->hofd >= 0 && i < 64; i++) {
		int c = accept4(w->hofd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0)
			return;
		if (!take_handoff(w, c, false))
			mq_loop_add_fd(w->loop, c, POLLIN, on_handoff_conn, w);
	}
}

static void on_handoff(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	drain_handoffs(ud);
}

/* --git-pull: each report is logged; those that belong in the audit trail
 * become `git-pull` events carrying the commit they concern. */
static void gitsync_report(void *ud, const char *outcome, const char *detail, const char *commit, bool event)
{
	struct watch *w = ud;
	wlog(w, NULL, "git-pull", outcome, "%s", detail);
	struct mq_error *err = NULL;
	if (event && mq_store_event_add(w->st, NULL, "git-pull", outcome, detail, commit, &err) < 0)
		store_failed(w, err ? err->msg : "cannot write an event");
	mq_error_free(err);
}

static void gitsync_reload(void *ud)
{
	want_pass(ud, "git-pull", true);
}

static int setup(struct watch *w, struct mq_error **err)
{
	int r = mq_loop_new(&w->loop, err);
	if (r < 0)
		return r;
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	r = mq_loop_add_signals(w->loop, &mask, on_signal, w, NULL, err);
	if (r < 0)
		return r;
	struct mq_mwatch_opts mo = { .settle_ms = w->o->settle_ms };
	r = mq_mwatch_new(w->o->paths, w->o->n_paths, &mo, &w->mw, err);
	if (r < 0)
		return r;
	mq_loop_add_fd(w->loop, mq_mwatch_fd(w->mw), POLLIN, on_mwatch, w);
	w->desired = mq_desired_new(w->o->paths, w->o->n_paths, desired_report, w);
	if (w->o->manifest_cache)
		mq_desired_use_cache(w->desired, w->o->manifest_cache, w->o->host);
	struct mq_track_opts to = {
		.loop = w->loop,
		.runtime_dir = w->o->runtime_dir,
		.on_exit = on_exit_cb,
		.log = log_cb,
		.ud = w,
	};
	w->tracker = mq_tracker_new(&to);
	struct mq_snapwatch_opts so = {
		.store = w->st,
		.state_dir = w->o->state_dir,
		.runtime_dir = w->o->runtime_dir,
		.disk_dir = w->o->disk_dir,
		.log = log_cb,
		.ud = w,
	};
	w->snaps = mq_snapwatch_new(w->loop, &so);
	w->logrot = mq_logrot_new(w->loop, w->o->runtime_dir, log_cb, w);
	w->teardown = mq_teardown_new(w->loop, on_teardown, w);
	/* The loop must not wait for a checkpoint's fsyncs (seconds on a disk
	 * busy with another VM's snapshot): CLI commands checkpoint at
	 * MQ_STORE_WAL_PAGES; watch's own commits only far beyond, as a
	 * backstop on a host where no command runs. */
	mq_store_set_autocheckpoint(w->st, MQ_STORE_WAL_PAGES * 16);
	if (w->o->git_pull.enabled) {
		struct mq_gitsync_opts go = {
			.loop = w->loop, .paths = w->o->paths, .n_paths = w->o->n_paths,
			.runtime_dir = w->o->runtime_dir, .cfg = w->o->git_pull,
			.report = gitsync_report, .reload = gitsync_reload, .ud = w,
		};
		r = mq_gitsync_new(&go, &w->gs, err);
		if (r < 0)
			return r;
		mq_gitsync_start(w->gs);
	}
	/* Another maqet finishing a pass truncates the lock file on release. */
	w->lockfd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (w->lockfd >= 0) {
		char *lp = mq_path_join(w->o->state_dir, "lock");
		int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		if (inotify_add_watch(w->lockfd, lp, IN_MODIFY | IN_CLOSE_WRITE) < 0) {
			close(w->lockfd);
			w->lockfd = -1;
		} else {
			mq_loop_add_fd(w->loop, w->lockfd, POLLIN, on_lockwatch, w);
		}
		free(lp);
	}
	for (size_t i = 0; i < w->o->n_paths && !w->inotify_blind; i++)
		w->inotify_blind = fs_inotify_blind(w->o->paths[i]);
	if (w->o->resync_ms > 0)
		w->resync_timer = mq_loop_add_timer_in(w->loop, w->o->resync_ms, on_resync, w);
	/* VMs started by CLI commands while we run hand their event monitor over. */
	struct mq_error *herr = NULL;
	w->hofd = mq_handoff_listen(w->o->state_dir, &herr);
	if (w->hofd >= 0)
		mq_loop_add_fd(w->loop, w->hofd, POLLIN, on_handoff, w);
	else
		wlog(w, NULL, "handoff", "unavailable", "%s; vms started by other maqet commands are followed from "
		     "the next pass", herr ? herr->msg : "cannot listen");
	mq_error_free(herr);
	/* Optional early exit notices (needs CAP_NET_ADMIN); pidfds stay the authority. */
	w->pxfd = mq_procexit_open();
	if (w->pxfd >= 0)
		mq_loop_add_fd(w->loop, w->pxfd, POLLIN, on_procexit, w);
	else
		w->pxfd = -1;
	/* VMs already running now are adopted (not started) by this watch. */
	struct mq_vm_record **recs = NULL;
	size_t n = 0;
	if (mq_store_vm_list(w->st, &recs, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++)
			if (mq_status_is_up(mq_observe(recs[i])))
				mq_strv_pushf(&w->preexisting, "%s %lld %llu", recs[i]->name, (long long)recs[i]->pid,
					      (unsigned long long)recs[i]->start_time);
		mq_vm_record_list_free(recs, n);
	}
	return 0;
}

int mq_watch_run(struct mq_store *st, const struct mq_watch_opts *o, struct mq_error **err)
{
	struct mq_lock instance;
	struct mq_error *lerr = NULL;
	if (mq_lock_acquire_named(&instance, o->state_dir, "watch.lock", "watch", 0, &lerr) < 0) {
		pid_t holder = mq_lock_holder_named(o->state_dir, "watch.lock");
		mq_error_free(lerr);
		if (holder > 0)
			return mq_error_set(err, EBUSY, "another maqet watch (pid %d) is running on state dir '%s'",
					    (int)holder, o->state_dir);
		return mq_error_set(err, EBUSY, "another maqet watch is running on state dir '%s'", o->state_dir);
	}
	struct watch wv;
	memset(&wv, 0, sizeof(wv));
	struct watch *w = &wv;
	w->st = st;
	w->o = o;
	w->lockfd = w->pxfd = w->hofd = -1;
	w->lock.fd = -1;
	int r = setup(w, err);
	if (r >= 0) {
		want_pass(w, "startup", true);
		r = mq_loop_run(w->loop, err);
		/* SIGTERM during a pass: it ran to its end above (end_pass quits). */
		wlog(w, NULL, "shutdown", "ok", "leaving %zu vm%s running", mq_tracker_count(w->tracker),
		     mq_tracker_count(w->tracker) == 1 ? "" : "s");
		mq_notify("STOPPING=1");
	}
	for (size_t i = 0; i < w->npx; i++)
		free(w->px[i].name);
	free(w->px);
	while (w->npasses)
		remove_pass(w, w->passes[w->npasses - 1]);
	free(w->passes);
	release_lock(w);
	mq_tracker_free(w->tracker);
	mq_snapwatch_free(w->snaps);
	mq_logrot_free(w->logrot);
	mq_gitsync_free(w->gs);
	mq_desired_free(w->desired);
	mq_teardown_free(w->teardown);
	mq_loop_free(w->loop);
	mq_mwatch_free(w->mw);
	mq_strv_clear(&w->undeclared_logged);
	mq_strv_clear(&w->blocked_logged);
	mq_strv_clear(&w->preexisting);
	free(w->store_error);
	if (w->lockfd >= 0)
		close(w->lockfd);
	if (w->pxfd >= 0)
		close(w->pxfd);
	if (w->hofd >= 0) {
		close(w->hofd);
		char *hp = mq_path_join(o->state_dir, MQ_HANDOFF_SOCKET);
		(void)unlink(hp);
		free(hp);
	}
	mq_lock_release(&instance);
	return r < 0 ? r : 0;
}
