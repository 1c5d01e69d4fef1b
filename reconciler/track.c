#include "reconciler/track.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "reconciler/qmp.h"
#include "reconciler/vmpaths.h"
#include "util/xalloc.h"

struct tvm {
	struct mq_tracker *t;
	char *name;
	struct mq_pidref ref;
	int pidfd;
	struct mq_source *pidsrc;
	bool fallback;              /* no pidfd: checked on the shared timer */
	struct mq_timer *gone_timer; /* already gone when added: report next turn */
	/* QMP event connection */
	struct mq_qmp *ev;
	struct mq_source *evsrc;
	struct mq_timer *evtimer;   /* connect retry, or the greeting deadline */
	int ev_tries;
	int64_t ev_deadline;
	struct mq_timer *hup_timer; /* monitor hung up, process not yet provably gone */
	int turn_events;            /* events read in the current on_ev() */
	struct mq_timer *throttle_timer; /* event monitor paused after a burst */
	int hup_checks;
	struct mq_exit_info info;
};

struct mq_tracker {
	struct mq_track_opts o;
	struct tvm **v;
	size_t n;
	struct mq_timer *fallback_timer;
};

static void tlog(struct mq_tracker *t, const char *vm, const char *action, const char *outcome, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void tlog(struct mq_tracker *t, const char *vm, const char *action, const char *outcome, const char *fmt, ...)
{
	if (!t->o.log)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *d = xvasprintf(fmt, ap);
	va_end(ap);
	t->o.log(t->o.ud, vm, action, outcome, d);
	free(d);
}

static void ev_close(struct tvm *v)
{
	mq_source_remove(v->evsrc);
	v->evsrc = NULL;
	mq_timer_cancel(v->evtimer);
	v->evtimer = NULL;
	mq_timer_cancel(v->hup_timer);
	v->hup_timer = NULL;
	mq_timer_cancel(v->throttle_timer);
	v->throttle_timer = NULL;
	v->ev = mq_qmp_free(v->ev);
}

static void tvm_free(struct tvm *v)
{
	ev_close(v);
	mq_source_remove(v->pidsrc);
	mq_timer_cancel(v->gone_timer);
	if (v->pidfd >= 0)
		close(v->pidfd);
	free(v->name);
	free(v);
}

static long find(const struct mq_tracker *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i]->name, name) == 0)
			return (long)i;
	return -1;
}

static void detach(struct mq_tracker *t, struct tvm *v)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i] == v) {
			t->v[i] = t->v[--t->n];
			return;
		}
}

/* ---- QMP events ------------------------------------------------------------ */

static void note_event(struct mq_qmp *q, json_object *ev, void *ud)
{
	struct tvm *v = ud;
	json_object *name, *data, *x;
	v->turn_events++;
	if (!json_object_object_get_ex(ev, "event", &name))
		return;
	const char *e = json_object_get_string(name);
	if (!e)
		return;
	if (strcmp(e, "SHUTDOWN") == 0) {
		v->info.saw_shutdown = true;
		v->info.shutdown_guest = false;
		v->info.reason[0] = '\0';
		if (json_object_object_get_ex(ev, "data", &data)) {
			if (json_object_object_get_ex(data, "guest", &x))
				v->info.shutdown_guest = json_object_get_boolean(x);
			if (json_object_object_get_ex(data, "reason", &x))
				snprintf(v->info.reason, sizeof(v->info.reason), "%s", json_object_get_string(x));
		}
	} else if (strcmp(e, "GUEST_PANICKED") == 0) {
		v->info.saw_panic = true;
	}
}

/* Read whatever the event monitor already has, without waiting. */
static void drain_ev(struct tvm *v)
{
	if (!v->ev)
		return;
	for (int i = 0; i < 64 && v->ev; i++) {
		struct pollfd p = { .fd = mq_qmp_fd(v->ev), .events = POLLIN };
		if (poll(&p, 1, 0) != 1)
			break;
		if (mq_qmp_dispatch(v->ev, p.revents, NULL) < 0) {
			ev_close(v);
			break;
		}
	}
}

/* ---- exits ----------------------------------------------------------------- */

static void report_exit(struct tvm *v)
{
	struct mq_tracker *t = v->t;
	drain_ev(v);
	detach(t, v);
	struct mq_exit_info info = v->info;
	struct mq_pidref ref = v->ref;
	char *name = xstrdup(v->name);
	tvm_free(v);
	if (t->o.on_exit)
		t->o.on_exit(t->o.ud, name, &ref, &info);
	free(name);
}

static void on_pidfd(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	report_exit(ud);
}

static void on_gone_timer(struct mq_loop *l, struct mq_timer *tm, void *ud)
{
	struct tvm *v = ud;
	v->gone_timer = NULL;
	report_exit(v);
}

static void on_hup_timer(struct mq_loop *l, struct mq_timer *tm, void *ud)
{
	struct tvm *v = ud;
	if (mq_proc_check(&v->ref) != MQ_PROC_ALIVE) {
		v->hup_timer = NULL;
		report_exit(v);
		return;
	}
	/* Still alive a moment after the hang-up: the pidfd (or the fallback
	 * timer) reports the exit; stop looking after ~100 ms. */
	if (++v->hup_checks < 50)
		mq_timer_reschedule(tm, mq_mono_ms() + 2);
	else
		v->hup_timer = NULL;
}

static void ev_connect(struct tvm *v);

static void on_throttle_timer(struct mq_loop *l, struct mq_timer *tm, void *ud)
{
	(void)l;
	(void)tm;
	struct tvm *v = ud;
	v->throttle_timer = NULL;
	if (v->ev && v->evsrc)
		mq_source_set_events(v->evsrc, mq_qmp_poll_events(v->ev));
}

static void on_ev(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	struct tvm *v = ud;
	bool was_ready = mq_qmp_state(v->ev) == MQ_QMP_READY;
	v->turn_events = 0;
	if (mq_qmp_dispatch(v->ev, revents, NULL) < 0) {
		ev_close(v);
		/* The event monitor hangs up as QEMU dies, well before the kernel
		 * reports a KVM process's exit on the pidfd: begin at once when
		 * the process is provably exiting, else look again shortly. */
		if (mq_proc_check(&v->ref) != MQ_PROC_ALIVE) {
			report_exit(v);
			return;
		}
		v->hup_checks = 0;
		v->hup_timer = mq_loop_add_timer_in(v->t->o.loop, 2, on_hup_timer, v);
		return;
	}
	if (!was_ready && mq_qmp_state(v->ev) == MQ_QMP_READY) {
		mq_timer_cancel(v->evtimer);
		v->evtimer = NULL;
	}
	/* A QEMU flooding its event monitor: after a burst, this VM's monitor
	 * is not read for MQ_TRACK_THROTTLE_MS, so it costs watch a bounded
	 * share of CPU.  Its exit still shows at once on its pidfd. */
	if (v->turn_events >= MQ_TRACK_EVENTS_PER_TURN && !v->throttle_timer) {
		mq_source_set_events(v->evsrc, 0);
		v->throttle_timer = mq_loop_add_timer_in(v->t->o.loop, MQ_TRACK_THROTTLE_MS, on_throttle_timer, v);
		return;
	}
	if (!v->throttle_timer)
		mq_source_set_events(v->evsrc, mq_qmp_poll_events(v->ev));
}

static void on_ev_timer(struct mq_loop *l, struct mq_timer *tm, void *ud)
{
	struct tvm *v = ud;
	v->evtimer = NULL;
	if (v->ev) {
		/* connected but no greeting: a stopped or hung QEMU */
		tlog(v->t, v->name, "qmp-events", "unavailable",
		     "no qmp greeting within %d ms (qemu stopped or hung?); exits will be classified without qmp events",
		     MQ_TRACK_GREETING_MS);
		ev_close(v);
		return;
	}
	ev_connect(v);
}

static void ev_attach(struct tvm *v)
{
	v->evsrc = mq_loop_add_fd(v->t->o.loop, mq_qmp_fd(v->ev), mq_qmp_poll_events(v->ev), on_ev, v);
}

static void ev_connect(struct tvm *v)
{
	struct mq_vm_paths paths;
	mq_vm_paths_init(&paths, v->t->o.runtime_dir, v->name);
	struct mq_error *err = NULL;
	struct mq_qmp_callbacks cb = { .on_event = note_event, .ud = v };
	int r = mq_qmp_open(paths.qmp_ev, &cb, &v->ev, &err);
	mq_vm_paths_release(&paths);
	if (r == 0) {
		ev_attach(v);
		v->evtimer = mq_loop_add_timer_in(v->t->o.loop, MQ_TRACK_GREETING_MS, on_ev_timer, v);
	} else if ((r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN) && ++v->ev_tries < 12) {
		/* socket not there yet (QEMU still starting): retry 20 ms .. 1 s */
		int64_t d = 20LL << (v->ev_tries < 6 ? v->ev_tries : 6);
		v->evtimer = mq_loop_add_timer_in(v->t->o.loop, d > 1000 ? 1000 : d, on_ev_timer, v);
	} else {
		tlog(v->t, v->name, "qmp-events", "unavailable", "%s; exits will be classified without qmp events",
		     err ? err->msg : "cannot connect");
	}
	mq_error_free(err);
}

/* ---- fallback without pidfds ------------------------------------------------- */

static void on_fallback(struct mq_loop *l, struct mq_timer *tm, void *ud)
{
	struct mq_tracker *t = ud;
	bool any = false;
	for (size_t i = 0; i < t->n;) {
		struct tvm *v = t->v[i];
		if (v->fallback && mq_proc_check(&v->ref) != MQ_PROC_ALIVE) {
			report_exit(v); /* reorders t->v: look at i again */
			continue;
		}
		any = any || v->fallback;
		i++;
	}
	if (any) {
		mq_timer_reschedule(tm, mq_mono_ms() + MQ_TRACK_FALLBACK_MS);
	} else {
		t->fallback_timer = NULL;
	}
}

/* ---- API ------------------------------------------------------------------------ */

struct mq_tracker *mq_tracker_new(const struct mq_track_opts *o)
{
	struct mq_tracker *t = xcalloc(1, sizeof(*t));
	t->o = *o;
	return t;
}

struct mq_tracker *mq_tracker_free(struct mq_tracker *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		tvm_free(t->v[i]);
	free(t->v);
	mq_timer_cancel(t->fallback_timer);
	free(t);
	return NULL;
}

void mq_tracker_remove(struct mq_tracker *t, const char *name)
{
	long i = find(t, name);
	if (i < 0)
		return;
	struct tvm *v = t->v[i];
	detach(t, v);
	tvm_free(v);
}

void mq_tracker_add(struct mq_tracker *t, const char *name, const struct mq_pidref *ref, int ev_fd, bool adopting)
{
	mq_tracker_remove(t, name);
	struct tvm *v = xcalloc(1, sizeof(*v));
	v->t = t;
	v->name = xstrdup(name);
	v->ref = *ref;
	v->pidfd = -1;
	t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
	t->v[t->n++] = v;
	if (ev_fd >= 0) {
		struct mq_qmp_callbacks cb = { .on_event = note_event, .ud = v };
		v->ev = mq_qmp_from_fd(ev_fd, name, &cb);
		ev_attach(v);
	}
	int fd = mq_pidref_open(ref);
	if (fd >= 0) {
		v->pidfd = fd;
		v->pidsrc = mq_loop_add_fd(t->o.loop, fd, POLLIN, on_pidfd, v);
	} else if (mq_pidfd_unavailable(fd)) {
		v->fallback = true;
		if (!t->fallback_timer)
			t->fallback_timer = mq_loop_add_timer_in(t->o.loop, MQ_TRACK_FALLBACK_MS, on_fallback, t);
		if (mq_proc_check(ref) != MQ_PROC_ALIVE)
			v->gone_timer = mq_loop_add_timer(t->o.loop, 0, on_gone_timer, v);
	} else {
		/* gone (or the pid is someone else's) already */
		v->gone_timer = mq_loop_add_timer(t->o.loop, 0, on_gone_timer, v);
	}
	if (!v->ev && !v->gone_timer)
		ev_connect(v);
	if (adopting)
		tlog(t, name, "adopt", "ok", "pid %d (start time %llu)%s", (int)ref->pid,
		     (unsigned long long)ref->start_time, v->fallback ? ", checked by pid + start time (no pidfd)" : "");
}

bool mq_tracker_has(const struct mq_tracker *t, const char *name, const struct mq_pidref *ref)
{
	long i = find(t, name);
	return i >= 0 && t->v[i]->ref.pid == ref->pid && t->v[i]->ref.start_time == ref->start_time;
}

size_t mq_tracker_count(const struct mq_tracker *t)
{
	return t->n;
}

const char *mq_tracker_name(const struct mq_tracker *t, size_t i)
{
	return i < t->n ? t->v[i]->name : NULL;
}

void mq_tracker_check_all(struct mq_tracker *t)
{
	for (size_t i = 0; i < t->n;) {
		struct tvm *v = t->v[i];
		bool gone = false;
		if (v->pidfd >= 0) {
			struct pollfd p = { .fd = v->pidfd, .events = POLLIN };
			gone = poll(&p, 1, 0) == 1 && p.revents;
		}
		/* A multi-threaded QEMU shows as a zombie (main thread gone) a
		 * moment before its pidfd turns readable: count that as exited. */
		if (!gone)
			gone = mq_proc_check(&v->ref) != MQ_PROC_ALIVE;
		if (gone)
			report_exit(v);
		else
			i++;
	}
}

void mq_tracker_pid_exited(struct mq_tracker *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i]->ref.pid == pid && mq_proc_check(&t->v[i]->ref) != MQ_PROC_ALIVE) {
			report_exit(t->v[i]);
			return;
		}
}

void mq_tracker_collect(struct mq_tracker *t, const char *name)
{
	long i = find(t, name);
	if (i >= 0)
		report_exit(t->v[i]);
}
