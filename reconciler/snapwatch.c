/* snapwatch.c - see snapwatch.h. */
#include "reconciler/snapwatch.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/lock.h"
#include "reconciler/snapplan.h"
#include "reconciler/worker.h"
#include "specs/fromjson.h"
#include "state/store.h"
#include "util/parse.h"
#include "util/xalloc.h"

#define RECHECK_MS (60 * 60 * 1000) /* named only: look again hourly */
#define RETRY_MS (60 * 1000)        /* after a failure */

struct vmw {
	struct mq_snapwatch *sw;
	char *name;
	char hash[65];
	struct mq_spec *spec;        /* owned copy of the declared spec (hash-identified) */
	struct mq_timer *timer;
	struct mq_worker w;
	struct mq_source *src;
	bool running, gone;
	int64_t next_due;            /* wall ms reported by the worker, -1 = none */
};

struct mq_snapwatch {
	struct mq_loop *loop;
	struct mq_snapwatch_opts o;
	struct vmw **v;
	size_t n;
};

/* ---- the worker ---------------------------------------------------------- */

struct wctx {
	int fd;
	const struct mq_snapwatch_opts *o;
	const struct mq_spec *spec;
};

static void send_step(int fd, const char *step, const char *outcome, const char *text)
{
	struct mq_wmsg m = { .kind = MQ_WMSG_STEP };
	MQ_WMSG_SET(m.step, step);
	MQ_WMSG_SET(m.outcome, outcome);
	MQ_WMSG_SET(m.text, text ? text : "");
	(void)mq_wmsg_send(fd, &m, -1);
}

static void w_report(void *ud, const char *vm, const struct mq_snap_act *a, const char *name, bool deleted, bool ok,
		     const char *msg)
{
	struct wctx *c = ud;
	(void)vm;
	(void)a;
	(void)name;
	send_step(c->fd, deleted ? "retention" : "snapshot", ok ? "ok" : "failed", msg);
}

static int snap_worker(int fd, void *ud)
{
	struct wctx *c = ud;
	c->fd = fd;
	const struct mq_snapshots *decl = c->spec->snapshots;
	struct mq_error *err = NULL;
	struct mq_store *st = NULL;
	int rc = 1;
	/* No state lock across the jobs: the library holds the VM's per-VM
	 * lock and takes the state lock for each record step (snapshot.h), so
	 * watch's passes go on meanwhile. */
	if (mq_store_open(c->o->state_dir, &st, &err) < 0) {
		send_step(fd, "snapshot", "failed", err ? err->msg : "cannot open the state");
		goto out;
	}
	struct mq_snap_env env = {
		.store = st, .runtime_dir = c->o->runtime_dir, .disk_dir = c->o->disk_dir, .who = "watch",
		.state_dir = c->o->state_dir, .lock_timeout_ms = c->o->lock_timeout_ms,
	};
	struct mq_vm_record *rec = NULL;
	if (mq_store_vm_get(st, c->spec->name, &rec, &err) < 0) {
		/* not recorded yet (the pass creating it runs): look again soon */
		char buf[32];
		snprintf(buf, sizeof(buf), "%lld", (long long)(mq_now_ms() + 1000));
		send_step(fd, "next", "ok", buf);
		rc = 0;
		goto out;
	}
	const struct mq_snapops *ops = &mq_snapops_default;
	struct mq_snap_list list = { 0 };
	if (ops->list(&env, rec, &list, &err) < 0) {
		send_step(fd, "snapshot", "failed", err ? err->msg : "cannot list snapshots");
		mq_vm_record_free(rec);
		goto out;
	}
	bool running = mq_snap_vm_running(rec);
	struct mq_snap_plan_in in = { decl, &list, running, mq_now_ms() };
	struct mq_snap_acts acts = { 0 };
	mq_snap_plan_vm(&in, &acts);
	ops->list_release(&list);
	struct mq_plan_item item = { .name = c->spec->name, .spec = c->spec, .snaps = acts.v, .n_snaps = acts.n };
	struct mq_plan plan = { .items = &item, .n = 1 };
	struct mq_snap_exec_result res = { 0 };
	mq_snap_exec(&plan, ops, &env, w_report, c, &res);
	mq_snap_acts_release(&acts);
	/* the next due time, from the disks as they are now */
	mq_vm_record_free(rec);
	rec = NULL;
	int64_t next = -1;
	if (mq_store_vm_get(st, c->spec->name, &rec, NULL) == 0 && ops->list(&env, rec, &list, NULL) == 0) {
		next = mq_snap_next_due(decl, &list, mq_snap_vm_running(rec), mq_now_ms());
		ops->list_release(&list);
	}
	mq_vm_record_free(rec);
	char buf[32];
	snprintf(buf, sizeof(buf), "%lld", (long long)next);
	send_step(fd, "next", "ok", buf);
	rc = res.failed ? 1 : 0;
out:
	mq_error_free(err);
	mq_store_free(st);
	return rc;
}

/* ---- the parent ------------------------------------------------------------ */

static void on_timer(struct mq_loop *l, struct mq_timer *t, void *ud);

static void arm(struct vmw *v, int64_t after_ms)
{
	mq_timer_cancel(v->timer);
	v->timer = mq_loop_add_timer_in(v->sw->loop, after_ms < 0 ? 0 : after_ms, on_timer, v);
}

static void vmw_free(struct vmw *v)
{
	mq_timer_cancel(v->timer);
	mq_source_remove(v->src);
	if (v->w.fd >= 0)
		close(v->w.fd); /* the worker finishes on its own */
	mq_spec_free(v->spec);
	free(v->name);
	free(v);
}

static void on_worker(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	struct vmw *v = ud;
	struct mq_snapwatch *sw = v->sw;
	for (int n = 0; n < 64; n++) {
		struct mq_wmsg m;
		int pfd = -1;
		int rc = mq_wmsg_recv(fd, &m, &pfd);
		if (pfd >= 0)
			close(pfd);
		if (rc == -EAGAIN)
			return;
		if (rc == 1) {
			if (m.kind != MQ_WMSG_STEP)
				continue;
			if (strcmp(m.step, "next") == 0) {
				long long t;
				v->next_due = sscanf(m.text, "%lld", &t) == 1 ? (int64_t)t : -1;
			} else if (sw->o.log) {
				sw->o.log(sw->o.ud, v->name, strcmp(m.step, "retention") == 0 ? "snapshot.retention"
											   : "snapshot",
					  m.outcome, m.text);
			}
			continue;
		}
		/* EOF: reap, then arm for the next due time */
		mq_source_remove(v->src);
		v->src = NULL;
		int status = 0;
		mq_worker_finish(&v->w, &status);
		v->running = false;
		if (v->gone) {
			for (size_t i = 0; i < sw->n; i++)
				if (sw->v[i] == v) {
					sw->v[i] = sw->v[--sw->n];
					break;
				}
			vmw_free(v);
			return;
		}
		int64_t now = mq_now_ms();
		if (v->next_due >= 0)
			arm(v, v->next_due - now);
		else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			arm(v, RETRY_MS); /* a failure: try again later, not in a tight loop */
		else
			arm(v, RECHECK_MS);
		return;
	}
}

static void on_timer(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct vmw *v = ud;
	v->timer = NULL;
	if (v->running)
		return;
	struct wctx *c = xcalloc(1, sizeof(*c));
	c->o = &v->sw->o;
	c->spec = v->spec;
	struct mq_error *err = NULL;
	v->next_due = -1;
	mq_store_suspend(v->sw->o.store);
	int wr = mq_worker_start(snap_worker, c, &v->w, &err);
	struct mq_error *rerr = NULL;
	if (v->sw->o.store && mq_store_resume(v->sw->o.store, &rerr) < 0 && v->sw->o.log)
		v->sw->o.log(v->sw->o.ud, NULL, "state", "failed", rerr ? rerr->msg : "cannot reopen the state");
	mq_error_free(rerr);
	if (wr < 0) {
		if (v->sw->o.log)
			v->sw->o.log(v->sw->o.ud, v->name, "snapshot", "failed", err ? err->msg : "cannot fork a worker");
		mq_error_free(err);
		free(c);
		arm(v, 5000);
		return;
	}
	free(c); /* the child has its own copy */
	v->running = true;
	v->src = mq_loop_add_fd(v->sw->loop, v->w.fd, POLLIN, on_worker, v);
}

struct mq_snapwatch *mq_snapwatch_new(struct mq_loop *loop, const struct mq_snapwatch_opts *o)
{
	struct mq_snapwatch *sw = xcalloc(1, sizeof(*sw));
	sw->loop = loop;
	sw->o = *o;
	return sw;
}

static struct mq_spec *spec_copy(const struct mq_spec *s)
{
	struct mq_spec *c = NULL;
	if (mq_spec_from_canonical(s->canonical, s->source, &c, NULL) < 0)
		return NULL;
	return c;
}

void mq_snapwatch_sync(struct mq_snapwatch *sw, const struct mq_specset *set)
{
	/* drop what is no longer declared with snapshots (or changed); one
	 * whose worker still runs is only marked, and freed when it ends */
	for (size_t i = 0; i < sw->n;) {
		struct vmw *v = sw->v[i];
		const struct mq_spec *s = set ? mq_specset_find(set, v->name) : NULL;
		if (v->gone || (s && s->snapshots && strcmp(s->hash, v->hash) == 0)) {
			i++;
			continue;
		}
		if (v->running) {
			v->gone = true;
			mq_timer_cancel(v->timer);
			v->timer = NULL;
			i++;
			continue;
		}
		sw->v[i] = sw->v[--sw->n];
		vmw_free(v);
	}
	for (size_t i = 0; set && i < set->n; i++) {
		const struct mq_spec *s = set->specs[i];
		if (!s->snapshots || (!s->snapshots->named.n && !s->snapshots->schedule))
			continue;
		bool have = false;
		for (size_t k = 0; k < sw->n; k++)
			if (!sw->v[k]->gone && strcmp(sw->v[k]->name, s->name) == 0)
				have = true;
		if (have)
			continue;
		struct vmw *v = xcalloc(1, sizeof(*v));
		v->sw = sw;
		v->name = xstrdup(s->name);
		memcpy(v->hash, s->hash, sizeof(v->hash));
		v->spec = spec_copy(s);
		v->w.fd = -1;
		v->next_due = -1;
		if (!v->spec) {
			vmw_free(v);
			continue;
		}
		sw->v = xrealloc(sw->v, (sw->n + 1) * sizeof(*sw->v));
		sw->v[sw->n++] = v;
		arm(v, 0);
	}
}

struct mq_snapwatch *mq_snapwatch_free(struct mq_snapwatch *sw)
{
	if (!sw)
		return NULL;
	for (size_t i = 0; i < sw->n; i++)
		vmw_free(sw->v[i]);
	free(sw->v);
	free(sw);
	return NULL;
}
