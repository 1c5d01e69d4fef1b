#include "reconciler/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "reconciler/apply.h"
#include "reconciler/lock.h"
#include "reconciler/mwatch.h"
#include "reconciler/notify.h"
#include "reconciler/plan.h"
#include "reconciler/proc.h"
#include "reconciler/procexit.h"
#include "reconciler/qemu.h"
#include "reconciler/qmp.h"
#include "specs/fromjson.h"
#include "specs/spec.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/sha256.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

/* A running VM the loop holds a pidfd (and, when it could connect, a QMP
 * event connection) for. */
struct tracked {
	char *name;
	struct mq_pidref ref;
	int pidfd;
	struct mq_qmp *ev;
	struct mq_exit_info info;
};

/* An exit noticed through a pidfd, waiting for the next pass to be recorded. */
struct pending_exit {
	char *name;
	struct mq_pidref ref;
	struct mq_exit_info info;
};

/* Per manifest file: the last content that validated, so an invalid edit
 * keeps the VM's last valid spec in force. */
struct file_cache {
	char *abs;
	char *last_valid;
	size_t len;
	char invalid_hash[65]; /* content whose errors were already logged */
	bool seen;
};

struct watch {
	struct mq_store *st;
	const struct mq_watch_opts *o;
	struct mq_mwatch *mw;
	int sigfd, timerfd, lockfd;
	int pxfd;                    /* process-exit connector, -1 when unavailable */

	struct tracked *tr;
	size_t ntr;
	struct pending_exit *px;
	size_t npx;
	struct file_cache *fc;
	size_t nfc;

	struct mq_specset *set;      /* desired set in force (last good) */
	bool unresolved_invalid;     /* an invalid file without a last valid version */
	char list_error_hash[65];
	char set_error_hash[65];
	char prune_error_hash[65];

	/* pass scheduling */
	bool pass_wanted, reload_wanted;
	char trigger[32];
	int64_t lock_retry_at;       /* mono ms, 0 = none */
	int64_t next_resync;         /* mono ms, 0 = none */
	int64_t backoff_wake;        /* wall ms, 0 = none */

	/* pass in flight */
	struct mq_plan *plan;
	struct mq_applier *applier;
	struct mq_apply_opts aopts;
	struct mq_lock lock;
	bool locked;
	char pass_trigger[32];

	bool ready, stop_requested;
	struct mq_strv preexisting;  /* "name pid starttime" of VMs running before the first pass */
	struct mq_strv undeclared_logged;
	struct mq_strv blocked_logged;
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

static void want_pass(struct watch *w, const char *trigger, bool reload)
{
	if (!w->pass_wanted)
		snprintf(w->trigger, sizeof(w->trigger), "%s", trigger);
	w->pass_wanted = true;
	if (reload)
		w->reload_wanted = true;
}

/* ---- manifests ------------------------------------------------------------ */

static struct file_cache *cache_get(struct watch *w, const char *abs)
{
	for (size_t i = 0; i < w->nfc; i++)
		if (strcmp(w->fc[i].abs, abs) == 0)
			return &w->fc[i];
	w->fc = xreallocarray(w->fc, w->nfc + 1, sizeof(*w->fc));
	struct file_cache *c = &w->fc[w->nfc++];
	memset(c, 0, sizeof(*c));
	c->abs = xstrdup(abs);
	return c;
}

static void cache_sweep(struct watch *w)
{
	size_t k = 0;
	for (size_t i = 0; i < w->nfc; i++) {
		if (w->fc[i].seen) {
			w->fc[i].seen = false;
			w->fc[k++] = w->fc[i];
		} else {
			free(w->fc[i].abs);
			free(w->fc[i].last_valid);
		}
	}
	w->nfc = k;
}

static void log_diags_once(struct watch *w, char hash_slot[65], const struct mq_strv *diags, const char *source)
{
	char *joined = mq_strv_join(diags, "\n");
	char h[65];
	mq_sha256_hex(joined, strlen(joined), h);
	if (strcmp(h, hash_slot) != 0) {
		memcpy(hash_slot, h, sizeof(h));
		for (size_t i = 0; i < diags->n; i++)
			wlog(w, NULL, "invalid", "kept-last-valid", "%s", diags->v[i]);
		mq_event(w->st, NULL, source, "invalid", "kept-last-valid", joined);
	}
	free(joined);
}

static void load_manifests(struct watch *w)
{
	struct mq_manifest_list list;
	struct mq_strv diags = MQ_STRV_INIT;
	bool unresolved = false;
	if (mq_manifest_list(w->o->paths, w->o->n_paths, &list, &diags) < 0) {
		log_diags_once(w, w->list_error_hash, &diags, NULL);
		unresolved = true;
	}
	mq_strv_clear(&diags);

	struct mq_specset *set = mq_specset_new();
	mq_strv_extend(&set->sources, &list.sources);
	for (size_t i = 0; i < list.n; i++) {
		const struct mq_manifest_file *f = &list.v[i];
		char *buf = NULL;
		size_t len = 0;
		struct mq_error *err = NULL;
		if (mq_read_file(f->abs, MQ_MANIFEST_MAX_BYTES, &buf, &len, &err) < 0) {
			if (err && err->code != ENOENT) {
				struct mq_strv d1 = MQ_STRV_INIT;
				mq_strv_pushf(&d1, "%s: %s", f->display, err->msg);
				struct file_cache *c = cache_get(w, f->abs);
				c->seen = true;
				log_diags_once(w, c->invalid_hash, &d1, f->source);
				mq_strv_clear(&d1);
				if (c->last_valid) {
					char *dir = mq_path_dirname(f->abs);
					mq_spec_parse_buffer(c->last_valid, c->len, f->display, dir, f->source, set, &d1);
					free(dir);
					mq_strv_clear(&d1);
				} else {
					unresolved = true;
				}
			}
			mq_error_free(err);
			continue; /* vanished between listing and reading: deleted */
		}
		struct file_cache *c = cache_get(w, f->abs);
		c->seen = true;
		char *dir = mq_path_dirname(f->abs);
		struct mq_strv pd = MQ_STRV_INIT;
		if (mq_spec_parse_buffer(buf, len, f->display, dir, f->source, set, &pd) == 0) {
			free(c->last_valid);
			c->last_valid = buf;
			c->len = len;
			c->invalid_hash[0] = '\0';
			buf = NULL;
		} else {
			log_diags_once(w, c->invalid_hash, &pd, f->source);
			if (c->last_valid) {
				struct mq_strv d2 = MQ_STRV_INIT;
				mq_spec_parse_buffer(c->last_valid, c->len, f->display, dir, f->source, set, &d2);
				mq_strv_clear(&d2);
			} else {
				unresolved = true;
			}
		}
		mq_strv_clear(&pd);
		free(dir);
		free(buf);
	}
	cache_sweep(w);
	mq_manifest_list_release(&list);

	struct mq_strv sd = MQ_STRV_INIT;
	if (mq_specset_check(set, &sd) < 0) {
		log_diags_once(w, w->set_error_hash, &sd, NULL);
		mq_specset_free(set);
		unresolved = true; /* keep the set in force */
		if (!w->set)
			w->set = mq_specset_new();
	} else {
		w->set_error_hash[0] = '\0';
		mq_specset_free(w->set);
		w->set = set;
	}
	mq_strv_clear(&sd);
	w->unresolved_invalid = unresolved;
}

/* ---- tracking running VMs --------------------------------------------------- */

static void untrack_at(struct watch *w, size_t i)
{
	struct tracked *t = &w->tr[i];
	if (t->pidfd >= 0)
		close(t->pidfd);
	mq_qmp_free(t->ev);
	free(t->name);
	w->tr[i] = w->tr[--w->ntr];
}

static long find_tracked(struct watch *w, const char *name)
{
	for (size_t i = 0; i < w->ntr; i++)
		if (strcmp(w->tr[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void note_event(struct tracked *t, json_object *ev)
{
	json_object *name, *data, *v;
	if (!json_object_object_get_ex(ev, "event", &name))
		return;
	const char *e = json_object_get_string(name);
	if (!e)
		return;
	if (strcmp(e, "SHUTDOWN") == 0) {
		t->info.saw_shutdown = true;
		t->info.shutdown_guest = false;
		t->info.reason[0] = '\0';
		if (json_object_object_get_ex(ev, "data", &data)) {
			if (json_object_object_get_ex(data, "guest", &v))
				t->info.shutdown_guest = json_object_get_boolean(v);
			if (json_object_object_get_ex(data, "reason", &v))
				snprintf(t->info.reason, sizeof(t->info.reason), "%s", json_object_get_string(v));
		}
	} else if (strcmp(e, "GUEST_PANICKED") == 0) {
		t->info.saw_panic = true;
	}
}

static void drain_events(struct tracked *t)
{
	json_object *ev;
	while (t->ev && (ev = mq_qmp_next_event(t->ev))) {
		note_event(t, ev);
		json_object_put(ev);
	}
}

/* Read what the QMP event connection has; close it on EOF. */
static void pump_ev(struct tracked *t, int timeout_ms)
{
	if (!t->ev)
		return;
	int r = mq_qmp_pump(t->ev, timeout_ms, NULL);
	drain_events(t);
	if (r < 0 && r != -ETIMEDOUT)
		t->ev = mq_qmp_free(t->ev);
}

static void track(struct watch *w, const struct mq_vm_record *rec, bool adopting)
{
	struct mq_pidref ref = { .pid = (pid_t)rec->pid, .start_time = rec->start_time };
	int fd = mq_pidref_open(&ref);
	if (fd < 0) {
		want_pass(w, "exit", false); /* gone already: the next pass records it */
		return;
	}
	w->tr = xreallocarray(w->tr, w->ntr + 1, sizeof(*w->tr));
	struct tracked *t = &w->tr[w->ntr++];
	memset(t, 0, sizeof(*t));
	t->name = xstrdup(rec->name);
	t->ref = ref;
	t->pidfd = fd;
	struct mq_vm_paths paths;
	mq_vm_paths_init(&paths, w->o->runtime_dir, rec->name);
	struct mq_error *err = NULL;
	if (mq_qmp_connect(paths.qmp_ev, 1000, &t->ev, &err) < 0) {
		wlog(w, rec->name, "qmp-events", "unavailable", "%s; exits will be classified without qmp events",
		     err ? err->msg : "cannot connect");
		t->ev = NULL;
	}
	mq_error_free(err);
	mq_vm_paths_release(&paths);
	if (adopting)
		wlog(w, rec->name, "adopt", "ok", "pid %d (start time %llu)%s", (int)ref.pid,
		     (unsigned long long)ref.start_time, t->ev ? "" : ", without qmp events");
}

/* Make the tracked set match the records: every running VM has a pidfd. */
static void sync_tracking(struct watch *w)
{
	struct mq_vm_record **recs = NULL;
	size_t n = 0;
	if (mq_store_vm_list(w->st, &recs, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < w->ntr;) {
		bool keep = false;
		for (size_t k = 0; k < n; k++)
			if (strcmp(recs[k]->name, w->tr[i].name) == 0 && recs[k]->pid == w->tr[i].ref.pid &&
			    recs[k]->start_time == w->tr[i].ref.start_time && mq_status_is_up(recs[k]->status))
				keep = true;
		if (keep)
			i++;
		else
			untrack_at(w, i);
	}
	for (size_t k = 0; k < n; k++) {
		const struct mq_vm_record *r = recs[k];
		if (!mq_status_is_up(r->status))
			continue;
		const char *obs = mq_observe(r);
		if (!mq_status_is_up(obs)) {
			want_pass(w, "exit", false);
			continue;
		}
		if (find_tracked(w, r->name) >= 0)
			continue;
		char *key = xasprintf("%s %lld %llu", r->name, (long long)r->pid, (unsigned long long)r->start_time);
		track(w, r, mq_strv_contains(&w->preexisting, key));
		free(key);
	}
	mq_vm_record_list_free(recs, n);
}

static void handle_exit(struct watch *w, size_t i, bool wait_eof)
{
	struct tracked *t = &w->tr[i];
	if (wait_eof) {
		/* QEMU sends SHUTDOWN before it exits; read up to the connection's EOF. */
		int64_t deadline = mq_mono_ms() + 100;
		while (t->ev && mq_mono_ms() < deadline)
			pump_ev(t, (int)(deadline - mq_mono_ms()));
	} else {
		/* Early notice (main thread gone): an event QEMU wrote before dying
		 * is already in the socket; do not wait for the hang-up. */
		pump_ev(t, 0);
	}
	drain_events(t);
	/* A stop that some maqet (this watch's pass or a CLI command) is doing
	 * shows as status "stopping": report it now; nothing else to decide. */
	struct mq_vm_record *rec = NULL;
	bool by_maqet = false;
	if (mq_store_vm_get(w->st, t->name, &rec, NULL) == 0) {
		bool same = rec->pid == t->ref.pid && rec->start_time == t->ref.start_time;
		/* being stopped, or already recorded as stopped/replaced by whoever stopped it */
		by_maqet = (same && rec->status && strcmp(rec->status, MQ_STATUS_STOPPING) == 0) || !same ||
			   !mq_status_is_up(rec->status);
	}
	if (by_maqet) {
		t->info.intended = true;
		char *desc = mq_exit_describe(&t->info);
		wlog(w, t->name, "exit", mq_exit_kind_str(MQ_EXIT_INTENDED), "pid %d: %s", (int)t->ref.pid, desc);
		free(desc);
	}
	mq_vm_record_free(rec);
	w->px = xreallocarray(w->px, w->npx + 1, sizeof(*w->px));
	struct pending_exit *p = &w->px[w->npx++];
	p->name = xstrdup(t->name);
	p->ref = t->ref;
	p->info = t->info;
	untrack_at(w, i);
	want_pass(w, "exit", false);
}

/* Handle every tracked VM that has exited, so a pass never classifies an
 * exit without the QMP events that came with it. */
static void collect_exits(struct watch *w)
{
	for (size_t i = w->ntr; i-- > 0;) {
		struct pollfd p = { .fd = w->tr[i].pidfd, .events = POLLIN };
		/* A multi-threaded QEMU shows as a zombie (main thread gone) a
		 * moment before its pidfd turns readable: count that as exited. */
		if (poll(&p, 1, 0) == 1 && p.revents)
			handle_exit(w, i, true);
		else if (mq_proc_check(&w->tr[i].ref) != MQ_PROC_ALIVE)
			handle_exit(w, i, false);
	}
}

static enum mq_restart policy_of(struct watch *w, const struct mq_vm_record *rec)
{
	const struct mq_spec *s = w->set ? mq_specset_find(w->set, rec->name) : NULL;
	if (s)
		return s->restart;
	enum mq_restart p = MQ_RESTART_ON_FAILURE;
	struct mq_spec *rs = NULL;
	if (rec->spec_json && mq_spec_from_canonical(rec->spec_json, rec->source, &rs, NULL) == 0) {
		p = rs->restart;
		mq_spec_free(rs);
	}
	return p;
}

static void record_failure(struct watch *w, struct mq_vm_record *rec, int64_t started_at)
{
	struct mq_backoff_state bs = { .count = rec->restart_count, .backoff_until = rec->backoff_until };
	mq_backoff_failure(&w->o->backoff, &bs, mq_now_ms(), started_at);
	rec->restart_count = bs.count;
	rec->backoff_until = bs.backoff_until;
	if (bs.crash_loop) {
		mq_vm_record_set(&rec->status, MQ_STATUS_CRASH_LOOP);
		rec->backoff_until = 0;
		char *d = xasprintf("%d failures within %llds; no more automatic restarts until the manifest changes "
				    "or 'maqet start %s'",
				    bs.count, (long long)(w->o->backoff.stable_ms / 1000), rec->name);
		mq_event(w->st, rec->name, rec->source, "crash-loop", "entered", d);
		wlog(w, rec->name, "crash-loop", "entered", "%s", d);
		free(d);
	}
}

/* Record every exit seen (and every recorded-running VM whose process is gone)
 * with its classification, restart bookkeeping and an event.  A VM still
 * tracked is collected here first, with its QMP events.  Under the lock. */
static void record_exits(struct watch *w)
{
	struct mq_vm_record **recs = NULL;
	size_t n = 0;
	if (mq_store_vm_list(w->st, &recs, &n, NULL) == 0) {
		for (size_t k = 0; k < n; k++) {
			struct mq_vm_record *r = recs[k];
			if (!mq_status_is_up(r->status) || mq_status_is_up(mq_observe(r)))
				continue;
			/* still tracked: collect its exit now, with its QMP events */
			long ti = find_tracked(w, r->name);
			if (ti >= 0 && w->tr[ti].ref.pid == r->pid && w->tr[ti].ref.start_time == r->start_time)
				handle_exit(w, (size_t)ti, false);
			struct mq_exit_info info = { 0 };
			for (size_t i = 0; i < w->npx; i++)
				if (strcmp(w->px[i].name, r->name) == 0 && w->px[i].ref.pid == r->pid &&
				    w->px[i].ref.start_time == r->start_time)
					info = w->px[i].info;
			info.intended = strcmp(r->status, MQ_STATUS_STOPPING) == 0;
			enum mq_exit_kind kind = mq_classify_exit(&info);
			if (kind == MQ_EXIT_INTENDED)
				continue;
			char *desc = mq_exit_describe(&info);
			enum mq_restart policy = policy_of(w, r);
			int64_t started_at = r->started_at;
			mq_vm_record_set(&r->status,
					 kind == MQ_EXIT_GUEST_POWEROFF ? MQ_STATUS_GUEST_STOPPED : MQ_STATUS_CRASHED);
			mq_vm_record_set(&r->exit_reason, desc);
			mq_vm_record_set(&r->last_error, kind == MQ_EXIT_CRASH ? desc : NULL);
			/* pid + start time stay: the restart waits for that process to be
			 * fully gone (its status no longer says it runs). */
			r->started_at = 0;
			char *d = xasprintf("%s; restart: %s%s", desc, mq_restart_str(policy),
				      mq_policy_restarts(policy, kind) ? "" : " (left stopped)");
			mq_event(w->st, r->name, r->source, "exit", mq_exit_kind_str(kind), d);
			wlog(w, r->name, "exit", mq_exit_kind_str(kind), "%s", d);
			free(d);
			if (mq_policy_restarts(policy, kind))
				record_failure(w, r, started_at);
			mq_store_vm_put(w->st, r, NULL);
			free(desc);
		}
		mq_vm_record_list_free(recs, n);
	}
	for (size_t i = 0; i < w->npx; i++)
		free(w->px[i].name);
	w->npx = 0;
}

/* ---- passes -------------------------------------------------------------------- */

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
			record_failure(w, rec, 0);
			mq_store_vm_put(w->st, rec, NULL);
		}
		mq_vm_record_free(rec);
	}
}

static void log_plan_notes(struct watch *w, const struct mq_plan *p)
{
	w->backoff_wake = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct mq_plan_item *it = &p->items[i];
		if (it->wake_at && (!w->backoff_wake || it->wake_at < w->backoff_wake))
			w->backoff_wake = it->wake_at;
		if (it->action == MQ_ACT_NOOP && it->blocked && it->block_reason) {
			char *key = xasprintf("%s\t%lld", it->name, (long long)it->wake_at);
			if (!mq_strv_contains(&w->blocked_logged, key)) {
				mq_strv_push(&w->blocked_logged, key);
				wlog(w, it->name, it->wake_at ? "backoff" : "blocked", it->wake_at ? "waiting" : "kept",
				     "%s", it->block_reason);
			}
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
}

static void drain_lockwatch(struct watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (w->lockfd >= 0 && read(w->lockfd, buf, sizeof(buf)) > 0)
		;
}

static void end_pass(struct watch *w, size_t changes, const struct mq_apply_result *res)
{
	if (res)
		wlog(w, NULL, "pass", "done", "trigger %s; %zu change%s: %zu ok, %zu failed, %zu skipped", w->pass_trigger,
		     changes, changes == 1 ? "" : "s", res->ok, res->failed, res->skipped);
	else
		wlog(w, NULL, "pass", "done", "trigger %s; no changes", w->pass_trigger);
	w->plan = mq_plan_free(w->plan);
	mq_lock_release(&w->lock);
	w->locked = false;
	drain_lockwatch(w);
	sync_tracking(w);
	if (!w->ready) {
		w->ready = true;
		size_t nvms = w->set ? w->set->n : 0;
		wlog(w, NULL, "ready", "ok", "watching %zu path%s, %zu vm%s declared, %zu running", w->o->n_paths,
		     w->o->n_paths == 1 ? "" : "s", nvms, nvms == 1 ? "" : "s", w->ntr);
		char *st = xasprintf("READY=1\nSTATUS=watching %zu vms", nvms);
		mq_notify(st);
		free(st);
	}
}

static void try_start_pass(struct watch *w)
{
	struct mq_error *err = NULL;
	if (mq_lock_acquire(&w->lock, w->o->state_dir, "watch pass", 0, &err) < 0) {
		mq_error_free(err);
		w->lock_retry_at = mq_mono_ms() + 50;
		return;
	}
	w->locked = true;
	w->lock_retry_at = 0;
	snprintf(w->pass_trigger, sizeof(w->pass_trigger), "%s", w->trigger);
	bool reload = w->reload_wanted || !w->set;
	w->pass_wanted = w->reload_wanted = false;
	if (reload)
		load_manifests(w);
	record_exits(w);

	struct mq_vm_record **recs = NULL;
	size_t nrec = 0;
	if (mq_store_vm_list(w->st, &recs, &nrec, &err) < 0) {
		wlog(w, NULL, "pass", "failed", "%s", err ? err->msg : "cannot read the state");
		mq_error_free(err);
		mq_lock_release(&w->lock);
		w->locked = false;
		return;
	}
	struct mq_plan_opts po = {
		.prune = w->o->prune && !w->unresolved_invalid,
		.allow_empty = w->o->allow_empty,
		.supervise = true,
	};
	if (mq_plan_build(w->set, recs, nrec, &po, &w->plan, &err) < 0) {
		struct mq_strv d = MQ_STRV_INIT;
		mq_strv_push(&d, err ? err->msg : "prune refused");
		mq_error_free(err);
		err = NULL;
		log_diags_once(w, w->prune_error_hash, &d, NULL);
		mq_strv_clear(&d);
		po.prune = false;
		mq_plan_build(w->set, recs, nrec, &po, &w->plan, NULL);
	} else {
		w->prune_error_hash[0] = '\0';
	}
	mq_vm_record_list_free(recs, nrec);
	/* A VM that died after its exit was collected above would be planned as
	 * "observed crashed" without its classification: record it, plan again. */
	for (int again = 0; w->plan && again < 3; again++) {
		bool unrecorded = false;
		for (size_t i = 0; i < w->plan->n; i++) {
			const struct mq_plan_item *it = &w->plan->items[i];
			if (it->rec && mq_status_is_up(it->rec->status) && !mq_status_is_up(it->observed))
				unrecorded = true;
		}
		if (!unrecorded)
			break;
		w->plan = mq_plan_free(w->plan);
		record_exits(w);
		if (mq_store_vm_list(w->st, &recs, &nrec, NULL) < 0)
			break;
		mq_plan_build(w->set, recs, nrec, &po, &w->plan, NULL);
		mq_vm_record_list_free(recs, nrec);
	}
	if (!w->plan) {
		mq_lock_release(&w->lock);
		w->locked = false;
		return;
	}
	log_plan_notes(w, w->plan);
	if (mq_plan_changes(w->plan) == 0) {
		end_pass(w, 0, NULL);
		return;
	}
	w->aopts = (struct mq_apply_opts){
		.runtime_dir = w->o->runtime_dir,
		.disk_dir = w->o->disk_dir,
		.jobs = w->o->jobs,
		.report = on_report,
		.ud = w,
	};
	mq_applier_start(w->st, w->plan, &w->aopts, &w->applier);
}

static void finish_pass_if_done(struct watch *w)
{
	if (!w->applier || !mq_applier_step(w->applier))
		return;
	struct mq_apply_result res;
	mq_applier_result(w->applier, &res);
	w->applier = mq_applier_free(w->applier);
	end_pass(w, mq_plan_changes(w->plan), &res);
}

/* ---- the loop ------------------------------------------------------------------ */

static void arm_timer(struct watch *w)
{
	int64_t now = mq_mono_ms();
	int64_t next = -1;
#define CONSIDER(t)                                  \
	do {                                         \
		int64_t _t = (t);                    \
		if (_t > 0 && (next < 0 || _t < next)) \
			next = _t;                   \
	} while (0)
	CONSIDER(mq_mwatch_deadline(w->mw));
	CONSIDER(w->next_resync);
	if (w->pass_wanted && !w->applier)
		CONSIDER(w->lock_retry_at);
	if (w->backoff_wake) {
		int64_t wall = mq_now_ms();
		CONSIDER(now + (w->backoff_wake > wall ? w->backoff_wake - wall : 0) + 1);
	}
#undef CONSIDER
	struct itimerspec its = { 0 };
	if (next >= 0) {
		if (next <= now)
			next = now + 1;
		its.it_value.tv_sec = next / 1000;
		its.it_value.tv_nsec = (next % 1000) * 1000000;
	}
	timerfd_settime(w->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_timer(struct watch *w)
{
	uint64_t ticks;
	while (read(w->timerfd, &ticks, sizeof(ticks)) > 0)
		;
	int64_t now = mq_mono_ms();
	if (mq_mwatch_due(w->mw, now)) {
		bool overflow = mq_mwatch_overflowed(w->mw);
		want_pass(w, overflow ? "resync" : "manifests", true);
		mq_mwatch_consume(w->mw);
	}
	if (w->next_resync && now >= w->next_resync) {
		want_pass(w, "resync", true);
		w->next_resync = now + w->o->resync_ms;
	}
	if (w->backoff_wake && mq_now_ms() >= w->backoff_wake) {
		w->backoff_wake = 0;
		want_pass(w, "backoff", false);
	}
}

/* The kernel says some thread-group leaders exited: if one is ours (and
 * pid + start time prove it is gone), begin at once. */
static void on_procexit(struct watch *w)
{
	pid_t pids[512];
	int n = mq_procexit_read(w->pxfd, pids, 512);
	if (n == -ENOBUFS) {
		collect_exits(w); /* messages lost: look at every tracked VM */
		return;
	}
	for (int k = 0; k < n; k++)
		for (size_t i = 0; i < w->ntr; i++)
			if (w->tr[i].ref.pid == pids[k] && mq_proc_check(&w->tr[i].ref) != MQ_PROC_ALIVE) {
				handle_exit(w, i, false);
				break;
			}
}

static void on_signal(struct watch *w)
{
	struct signalfd_siginfo si;
	while (read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			want_pass(w, "signal", true);
		else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			w->stop_requested = true;
	}
}

static int setup(struct watch *w, struct mq_error **err)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return mq_error_set(err, errno, "cannot block signals: %s", strerror(errno));
	w->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (w->sigfd < 0)
		return mq_error_set(err, errno, "cannot create signalfd: %s", strerror(errno));
	w->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (w->timerfd < 0)
		return mq_error_set(err, errno, "cannot create timerfd: %s", strerror(errno));
	struct mq_mwatch_opts mo = { .settle_ms = w->o->settle_ms };
	int r = mq_mwatch_new(w->o->paths, w->o->n_paths, &mo, &w->mw, err);
	if (r < 0)
		return r;
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
		}
		free(lp);
	}
	if (w->o->resync_ms > 0)
		w->next_resync = mq_mono_ms() + w->o->resync_ms;
	/* Optional early exit notices (needs CAP_NET_ADMIN); pidfds stay the authority. */
	w->pxfd = mq_procexit_open();
	if (w->pxfd < 0)
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
	w->sigfd = w->timerfd = w->lockfd = w->pxfd = -1;
	w->lock.fd = -1;
	int r = setup(w, err);
	if (r < 0)
		goto out;

	want_pass(w, "startup", true);
	struct pollfd *pfds = NULL;
	size_t cap = 0;
	for (;;) {
		if (!w->applier && !w->locked && w->pass_wanted && !w->stop_requested &&
		    (!w->lock_retry_at || mq_mono_ms() >= w->lock_retry_at))
			try_start_pass(w);
		finish_pass_if_done(w);
		if (w->stop_requested && !w->applier)
			break;
		if (!w->applier && w->pass_wanted && !w->lock_retry_at)
			continue; /* a pass became due while finishing one */

		size_t need = 5 + 2 * w->ntr + (w->plan ? w->plan->n : 0);
		if (need > cap) {
			cap = need * 2;
			pfds = xreallocarray(pfds, cap, sizeof(*pfds));
		}
		size_t np = 0;
		pfds[np++] = (struct pollfd){ .fd = w->sigfd, .events = POLLIN };
		pfds[np++] = (struct pollfd){ .fd = w->timerfd, .events = POLLIN };
		pfds[np++] = (struct pollfd){ .fd = mq_mwatch_fd(w->mw), .events = POLLIN };
		pfds[np++] = (struct pollfd){ .fd = w->lockfd, .events = POLLIN };
		pfds[np++] = (struct pollfd){ .fd = w->pxfd, .events = POLLIN };
		size_t tr_base = np;
		for (size_t i = 0; i < w->ntr; i++) {
			pfds[np++] = (struct pollfd){ .fd = w->tr[i].pidfd, .events = POLLIN };
			pfds[np++] = (struct pollfd){ .fd = w->tr[i].ev ? mq_qmp_fd(w->tr[i].ev) : -1, .events = POLLIN };
		}
		size_t ap_base = np;
		if (w->applier)
			np += mq_applier_pollfds(w->applier, pfds + np, cap - np);
		arm_timer(w);
		int pr = poll(pfds, np, -1);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			r = mq_error_set(err, errno, "poll failed: %s", strerror(errno));
			break;
		}
		if (pfds[0].revents)
			on_signal(w);
		if (pfds[1].revents)
			on_timer(w);
		if (pfds[2].revents)
			mq_mwatch_dispatch(w->mw, mq_mono_ms());
		if (pfds[3].revents) {
			drain_lockwatch(w);
			if (!w->locked)
				want_pass(w, "state", false);
		}
		if (pfds[4].revents)
			on_procexit(w);
		/* applier pipes first: their fds are only valid while it lives */
		if (w->applier)
			for (size_t k = ap_base; k < np; k++)
				if (pfds[k].revents)
					mq_applier_handle(w->applier, pfds[k].fd);
		/* exits and events: look VMs up by fd (handling an exit reorders w->tr) */
		for (size_t k = tr_base; k < ap_base; k++) {
			if (!pfds[k].revents || pfds[k].fd < 0)
				continue;
			for (size_t i = 0; i < w->ntr; i++) {
				struct tracked *t = &w->tr[i];
				bool is_ev = t->ev && mq_qmp_fd(t->ev) == pfds[k].fd;
				if (t->pidfd != pfds[k].fd && !is_ev)
					continue;
				bool exited = t->pidfd == pfds[k].fd;
				if (is_ev) {
					pump_ev(t, 0);
					/* The event monitor hangs up as QEMU dies, well before the
					 * kernel reports a KVM process's exit on the pidfd.  Begin
					 * at once when the process is provably exiting (its main
					 * thread is a zombie); look again for a few ms. */
					for (int n = 0; !exited && !t->ev && n < 5; n++) {
						if (mq_proc_check(&t->ref) != MQ_PROC_ALIVE) {
							exited = true;
							break;
						}
						struct pollfd pp = { .fd = t->pidfd, .events = POLLIN };
						if (poll(&pp, 1, 1) == 1)
							exited = true;
					}
				}
				if (exited)
					handle_exit(w, i, true);
				break;
			}
		}
	}
	free(pfds);
	wlog(w, NULL, "shutdown", "ok", "leaving %zu vm%s running", w->ntr, w->ntr == 1 ? "" : "s");
	mq_notify("STOPPING=1");
	r = r < 0 ? r : 0;
out:
	while (w->ntr)
		untrack_at(w, w->ntr - 1);
	free(w->tr);
	for (size_t i = 0; i < w->npx; i++)
		free(w->px[i].name);
	free(w->px);
	for (size_t i = 0; i < w->nfc; i++) {
		free(w->fc[i].abs);
		free(w->fc[i].last_valid);
	}
	free(w->fc);
	mq_plan_free(w->plan);
	mq_applier_free(w->applier);
	if (w->locked)
		mq_lock_release(&w->lock);
	mq_specset_free(w->set);
	mq_mwatch_free(w->mw);
	mq_strv_clear(&w->undeclared_logged);
	mq_strv_clear(&w->blocked_logged);
	mq_strv_clear(&w->preexisting);
	if (w->sigfd >= 0)
		close(w->sigfd);
	if (w->timerfd >= 0)
		close(w->timerfd);
	if (w->lockfd >= 0)
		close(w->lockfd);
	if (w->pxfd >= 0)
		close(w->pxfd);
	mq_lock_release(&instance);
	return r;
}
