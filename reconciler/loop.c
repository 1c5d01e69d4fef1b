/* loop.c - single-threaded poll() loop; see loop.h for the contracts.
 *
 * Sources live in an array in the order they were added; removal during a
 * dispatch only marks a source dead (its memory stays valid for the rest of
 * the turn) and the array is compacted when the dispatch ends.  Timers live
 * in a binary min-heap keyed by (deadline, seq) where each timer records its
 * heap index, so cancel and reschedule are O(log n).  One timerfd is armed
 * (absolute) to the heap's minimum before every poll().
 */
#include "reconciler/loop.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "util/xalloc.h"

enum src_kind { SRC_FD, SRC_SIGNAL };

struct mq_source {
	struct mq_loop *loop;
	enum src_kind kind;
	int fd;
	short events;
	bool dead;
	mq_io_fn cb;
	mq_signal_fn sigcb;
	void *ud;
};

enum timer_state {
	T_ARMED,   /* in the heap */
	T_DUE,     /* taken out of the heap for the current pass, not fired yet */
	T_FIRING,  /* its callback is running */
	T_DEAD,    /* cancelled while the current pass still references it */
};

#define NO_INDEX ((size_t)-1)

struct mq_timer {
	struct mq_loop *loop;
	int64_t deadline;
	uint64_t seq;     /* arming order: ties between equal deadlines */
	size_t idx;       /* heap index, NO_INDEX when not in the heap */
	enum timer_state state;
	bool in_pass;     /* referenced by loop->due: must not be freed yet */
	mq_timer_fn cb;
	void *ud;
};

struct defer {
	struct defer *next;
	mq_defer_fn cb;
	void *ud;
};

struct mq_loop {
	struct mq_source **src;
	size_t nsrc, src_cap, ndead;
	struct pollfd *pfd;
	size_t pfd_cap;

	struct mq_timer **heap;
	size_t nheap, heap_cap;
	uint64_t next_seq;
	struct mq_timer **due;
	size_t ndue, due_cap;
	struct mq_timer *firing; /* the timer whose callback runs, or NULL */

	int timerfd;
	bool tfd_armed;
	int64_t tfd_deadline;

	struct defer *dq_head, *dq_tail;
	size_t dq_len;

	bool running;     /* inside run_once: re-entrancy guard */
	bool dispatching; /* inside steps 4-6: removals are deferred */
	bool quit;
	int quit_code;
	int last_quit_code;

	struct mq_loop_stats st;
};

/* ---- heap ------------------------------------------------------------- */

static bool t_before(const struct mq_timer *a, const struct mq_timer *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_place(struct mq_loop *l, size_t i, struct mq_timer *t)
{
	l->heap[i] = t;
	t->idx = i;
}

static void sift_up(struct mq_loop *l, size_t i)
{
	struct mq_timer *t = l->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!t_before(t, l->heap[p]))
			break;
		heap_place(l, i, l->heap[p]);
		i = p;
	}
	heap_place(l, i, t);
}

static void sift_down(struct mq_loop *l, size_t i)
{
	struct mq_timer *t = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && t_before(l->heap[c + 1], l->heap[c]))
			c++;
		if (!t_before(l->heap[c], t))
			break;
		heap_place(l, i, l->heap[c]);
		i = c;
	}
	heap_place(l, i, t);
}

static void heap_push(struct mq_loop *l, struct mq_timer *t)
{
	if (l->nheap == l->heap_cap) {
		l->heap_cap = l->heap_cap ? 2 * l->heap_cap : 16;
		l->heap = xreallocarray(l->heap, l->heap_cap, sizeof(*l->heap));
	}
	t->seq = l->next_seq++;
	heap_place(l, l->nheap++, t);
	sift_up(l, t->idx);
}

static void heap_remove(struct mq_loop *l, struct mq_timer *t)
{
	size_t i = t->idx;
	assert(i < l->nheap && l->heap[i] == t);
	t->idx = NO_INDEX;
	struct mq_timer *last = l->heap[--l->nheap];
	if (i == l->nheap)
		return;
	heap_place(l, i, last);
	/* last may belong above or below position i */
	if (i > 0 && t_before(last, l->heap[(i - 1) / 2]))
		sift_up(l, i);
	else
		sift_down(l, i);
}

/* Test-only hook (not part of loop.h): 0 when every heap index back-pointer
 * is right and every parent is before its children, else -1. */
int mq_loop_test_check_heap(const struct mq_loop *l);
int mq_loop_test_check_heap(const struct mq_loop *l)
{
	for (size_t i = 0; i < l->nheap; i++) {
		if (l->heap[i]->idx != i || l->heap[i]->state != T_ARMED)
			return -1;
		if (i > 0 && t_before(l->heap[i], l->heap[(i - 1) / 2]))
			return -1;
	}
	return 0;
}

/* ---- loop ------------------------------------------------------------- */

int mq_loop_new(struct mq_loop **out, struct mq_error **err)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return mq_error_set(err, errno, "cannot create event loop: timerfd_create: %s",
				    strerror(errno));
	struct mq_loop *l = xcalloc(1, sizeof(*l));
	l->timerfd = fd;
	l->last_quit_code = -1;
	*out = l;
	return 0;
}

static void source_free(struct mq_source *s)
{
	if (s->kind == SRC_SIGNAL && s->fd >= 0)
		close(s->fd);
	free(s);
}

struct mq_loop *mq_loop_free(struct mq_loop *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->nsrc; i++)
		source_free(l->src[i]);
	free(l->src);
	free(l->pfd);
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	free(l->heap);
	free(l->due);
	for (struct defer *d = l->dq_head, *n; d; d = n) {
		n = d->next;
		free(d);
	}
	if (l->timerfd >= 0)
		close(l->timerfd);
	free(l);
	return NULL;
}

/* ---- sources ---------------------------------------------------------- */

static struct mq_source *source_add(struct mq_loop *l, enum src_kind kind, int fd, short events,
				    void *ud)
{
	struct mq_source *s = xcalloc(1, sizeof(*s));
	s->loop = l;
	s->kind = kind;
	s->fd = fd;
	s->events = events;
	s->ud = ud;
	if (l->nsrc == l->src_cap) {
		l->src_cap = l->src_cap ? 2 * l->src_cap : 8;
		l->src = xreallocarray(l->src, l->src_cap, sizeof(*l->src));
	}
	l->src[l->nsrc++] = s;
	return s;
}

struct mq_source *mq_loop_add_fd(struct mq_loop *l, int fd, short events, mq_io_fn cb, void *ud)
{
	assert(cb);
	struct mq_source *s = source_add(l, SRC_FD, fd, events, ud);
	s->cb = cb;
	return s;
}

void mq_source_set_events(struct mq_source *s, short events)
{
	if (!s->dead)
		s->events = events;
}

short mq_source_get_events(const struct mq_source *s)
{
	return s->events;
}

int mq_source_fd(const struct mq_source *s)
{
	return s->fd;
}

/* Drop dead sources from the array, keeping the order of the others. */
static void reap_sources(struct mq_loop *l)
{
	if (!l->ndead)
		return;
	size_t j = 0;
	for (size_t i = 0; i < l->nsrc; i++) {
		if (l->src[i]->dead)
			source_free(l->src[i]);
		else
			l->src[j++] = l->src[i];
	}
	l->nsrc = j;
	l->ndead = 0;
}

void mq_source_remove(struct mq_source *s)
{
	if (!s || s->dead)
		return;
	struct mq_loop *l = s->loop;
	s->dead = true;
	s->events = 0;
	l->ndead++;
	if (!l->dispatching)
		reap_sources(l);
}

int mq_loop_add_signals(struct mq_loop *l, const sigset_t *set, mq_signal_fn cb, void *ud,
			struct mq_source **out, struct mq_error **err)
{
	assert(cb);
	sigset_t old;
	if (sigprocmask(SIG_BLOCK, set, &old) < 0)
		return mq_error_set(err, errno, "cannot block signals: %s", strerror(errno));
	int fd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return mq_error_set(err, e, "cannot create signalfd: %s", strerror(e));
	}
	struct mq_source *s = source_add(l, SRC_SIGNAL, fd, POLLIN, ud);
	s->sigcb = cb;
	if (out)
		*out = s;
	return 0;
}

/* ---- timers ----------------------------------------------------------- */

struct mq_timer *mq_loop_add_timer(struct mq_loop *l, int64_t deadline_mono_ms, mq_timer_fn cb,
				   void *ud)
{
	assert(cb);
	struct mq_timer *t = xcalloc(1, sizeof(*t));
	t->loop = l;
	t->deadline = deadline_mono_ms;
	t->cb = cb;
	t->ud = ud;
	t->state = T_ARMED;
	heap_push(l, t);
	l->st.timers++;
	return t;
}

struct mq_timer *mq_loop_add_timer_in(struct mq_loop *l, int64_t after_ms, mq_timer_fn cb,
				      void *ud)
{
	return mq_loop_add_timer(l, mq_mono_ms() + after_ms, cb, ud);
}

void mq_timer_reschedule(struct mq_timer *t, int64_t deadline_mono_ms)
{
	struct mq_loop *l = t->loop;
	switch (t->state) {
	case T_ARMED:
		heap_remove(l, t);
		break;
	case T_DUE:
	case T_FIRING:
		break;
	case T_DEAD:
		assert(!"mq_timer_reschedule on a cancelled timer");
		return;
	}
	t->deadline = deadline_mono_ms;
	t->state = T_ARMED;
	heap_push(l, t);
}

static void timer_free(struct mq_timer *t)
{
	t->loop->st.timers--;
	free(t);
}

void mq_timer_cancel(struct mq_timer *t)
{
	if (!t)
		return;
	struct mq_loop *l = t->loop;
	switch (t->state) {
	case T_ARMED:
		heap_remove(l, t);
		if (t->in_pass || l->firing == t) {
			/* rescheduled after being taken out for this pass, or inside
			 * its own callback: the pass still holds the pointer and
			 * frees it */
			t->state = T_DEAD;
			return;
		}
		timer_free(t);
		return;
	case T_DUE:
		t->state = T_DEAD; /* the pass frees it */
		return;
	case T_FIRING:
		t->state = T_DEAD; /* freed when its callback returns */
		return;
	case T_DEAD:
		return;
	}
}

int64_t mq_timer_deadline(const struct mq_timer *t)
{
	return t->deadline;
}

/* Fire every timer due at `now`.  The due set is taken out of the heap
 * first, so a timer armed by one of these callbacks waits for a later turn. */
static int run_timers(struct mq_loop *l, int64_t now)
{
	l->ndue = 0;
	while (l->nheap && l->heap[0]->deadline <= now) {
		struct mq_timer *t = l->heap[0];
		heap_remove(l, t);
		t->state = T_DUE;
		t->in_pass = true;
		if (l->ndue == l->due_cap) {
			l->due_cap = l->due_cap ? 2 * l->due_cap : 16;
			l->due = xreallocarray(l->due, l->due_cap, sizeof(*l->due));
		}
		l->due[l->ndue++] = t;
	}
	int n = 0;
	for (size_t i = 0; i < l->ndue; i++) {
		struct mq_timer *t = l->due[i];
		t->in_pass = false;
		if (t->state == T_DEAD) {
			timer_free(t);
			continue;
		}
		if (t->state != T_DUE)
			continue; /* rescheduled before its turn came: armed again */
		t->state = T_FIRING;
		l->st.timers_fired++;
		n++;
		l->firing = t;
		t->cb(l, t, t->ud);
		l->firing = NULL;
		if (t->state == T_FIRING || t->state == T_DEAD)
			timer_free(t);
	}
	l->ndue = 0;
	return n;
}

static int arm_timerfd(struct mq_loop *l, struct mq_error **err)
{
	struct itimerspec its = { 0 };
	int64_t d = 0;
	if (l->nheap) {
		d = l->heap[0]->deadline;
		if (l->tfd_armed && l->tfd_deadline == d)
			return 0;
		if (d <= 0) {
			its.it_value.tv_nsec = 1; /* all zeros would disarm it */
		} else {
			its.it_value.tv_sec = d / 1000;
			its.it_value.tv_nsec = (long)(d % 1000) * 1000000L;
		}
	} else if (!l->tfd_armed) {
		return 0;
	}
	if (timerfd_settime(l->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return mq_error_set(err, errno, "cannot arm event loop timer: %s", strerror(errno));
	l->st.timerfd_arms++;
	l->tfd_armed = l->nheap > 0;
	l->tfd_deadline = d;
	return 0;
}

/* ---- deferred work ---------------------------------------------------- */

void mq_loop_defer(struct mq_loop *l, mq_defer_fn cb, void *ud)
{
	assert(cb);
	struct defer *d = xmalloc(sizeof(*d));
	d->next = NULL;
	d->cb = cb;
	d->ud = ud;
	if (l->dq_tail)
		l->dq_tail->next = d;
	else
		l->dq_head = d;
	l->dq_tail = d;
	l->dq_len++;
}

/* ---- running ---------------------------------------------------------- */

void mq_loop_quit(struct mq_loop *l, int code)
{
	assert(code >= 0);
	l->quit = true;
	l->quit_code = code;
}

int mq_loop_quit_code(const struct mq_loop *l)
{
	return l->last_quit_code;
}

static int dispatch_signals(struct mq_loop *l, struct mq_source *s)
{
	int n = 0;
	while (!s->dead) {
		struct signalfd_siginfo si;
		ssize_t r = read(s->fd, &si, sizeof(si));
		if (r != (ssize_t)sizeof(si))
			break; /* EAGAIN: drained (EINTR cannot happen on a nonblocking read of a signalfd) */
		n++;
		s->sigcb(l, s, &si, s->ud);
	}
	return n;
}

int mq_loop_run_once(struct mq_loop *l, int max_wait_ms, struct mq_error **err)
{
	if (l->running)
		return mq_error_set(err, EBUSY, "cannot run event loop: already running (called from a callback)");
	int r = arm_timerfd(l, err);
	if (r < 0)
		return r;

	size_t npoll = l->nsrc;
	if (l->pfd_cap < npoll + 1) {
		l->pfd_cap = npoll + 1;
		l->pfd = xreallocarray(l->pfd, l->pfd_cap, sizeof(*l->pfd));
	}
	l->pfd[0] = (struct pollfd){ .fd = l->timerfd, .events = POLLIN };
	for (size_t i = 0; i < npoll; i++) {
		struct mq_source *s = l->src[i];
		l->pfd[i + 1] = (struct pollfd){ .fd = s->events ? s->fd : -1, .events = s->events };
	}
	int timeout = (l->dq_head || l->quit) ? 0 : max_wait_ms < 0 ? -1 : max_wait_ms;
	l->st.polls++;
	if (timeout == 0)
		l->st.polls_nowait++;
	int ready = poll(l->pfd, npoll + 1, timeout);
	if (ready < 0) {
		if (errno != EINTR)
			return mq_error_set(err, errno, "cannot wait for events: poll: %s", strerror(errno));
		ready = 0;
		for (size_t i = 0; i <= npoll; i++)
			l->pfd[i].revents = 0;
	}
	l->st.iterations++;

	/* 3. the batch of deferred work this turn runs */
	struct defer *batch = l->dq_head;
	l->dq_head = l->dq_tail = NULL;
	l->dq_len = 0;

	l->running = l->dispatching = true;
	int n = 0;
	/* 4. fd sources, in the order they were added; sources added by these
	 * callbacks sit past npoll and wait for the next poll() */
	if (l->pfd[0].revents) {
		uint64_t ticks;
		if (read(l->timerfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks))
			l->tfd_armed = false; /* expired: arm again even for the same deadline */
	}
	for (size_t i = 0; i < npoll && ready > 0; i++) {
		short rev = l->pfd[i + 1].revents;
		struct mq_source *s = l->src[i];
		if (!rev || s->dead)
			continue;
		l->st.io_dispatched++;
		if (s->kind == SRC_SIGNAL) {
			n += dispatch_signals(l, s);
		} else {
			n++;
			s->cb(l, s, s->fd, rev, s->ud);
		}
	}
	/* 5. timers */
	n += run_timers(l, mq_mono_ms());
	/* 6. deferred work queued before this turn's poll() */
	while (batch) {
		struct defer *d = batch;
		batch = d->next;
		l->st.deferred_run++;
		n++;
		d->cb(l, d->ud);
		free(d);
	}
	l->dispatching = false;
	reap_sources(l);
	l->running = false;
	return n;
}

int mq_loop_run_n(struct mq_loop *l, unsigned n, int max_wait_ms, struct mq_error **err)
{
	if (l->running)
		return mq_error_set(err, EBUSY, "cannot run event loop: already running (called from a callback)");
	unsigned i = 0;
	while (i < n && !l->quit) {
		int r = mq_loop_run_once(l, max_wait_ms, err);
		if (r < 0)
			return r;
		i++;
	}
	if (l->quit) {
		l->quit = false;
		l->last_quit_code = l->quit_code;
	}
	return (int)i;
}

int mq_loop_run(struct mq_loop *l, struct mq_error **err)
{
	if (l->running)
		return mq_error_set(err, EBUSY, "cannot run event loop: already running (called from a callback)");
	while (!l->quit) {
		int r = mq_loop_run_once(l, -1, err);
		if (r < 0)
			return r;
	}
	l->quit = false;
	l->last_quit_code = l->quit_code;
	return l->quit_code;
}

void mq_loop_get_stats(const struct mq_loop *l, struct mq_loop_stats *out)
{
	*out = l->st;
	out->sources = l->nsrc - l->ndead;
	out->deferred_pending = l->dq_len;
}
