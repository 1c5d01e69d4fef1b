/* test-loop.c - event loop: timer order and heap, cancel/reschedule from
 * callbacks, source removal during dispatch, deferred-work fairness against
 * a signalfd and an eventfd, timerfd re-arming without busy polling, quit.
 *
 * Assertions are about order and counts (callbacks, poll() calls), never
 * about tight wall-clock bounds.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "reconciler/loop.h"
#include "reconciler/proc.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

/* Test-only hook defined in reconciler/loop.c (not part of loop.h). */
int mq_loop_test_check_heap(const struct mq_loop *l);

#define MAXREC 16384

/* What fired, in order. */
static int rec[MAXREC];
static int64_t rec_at[MAXREC];
static size_t nrec;

static void record(int id)
{
	ck_assert_uint_lt(nrec, MAXREC);
	rec_at[nrec] = mq_mono_ms();
	rec[nrec++] = id;
}

static void setup(void)
{
	nrec = 0;
}

static struct mq_loop *new_loop(void)
{
	struct mq_loop *l = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_loop_new(&l, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_ptr_nonnull(l);
	return l;
}

static int once(struct mq_loop *l, int max_wait)
{
	struct mq_error *err = NULL;
	int r = mq_loop_run_once(l, max_wait, &err);
	ck_assert_msg(r >= 0, "run_once: %s", err ? err->msg : "?");
	return r;
}

static struct mq_loop_stats stats(struct mq_loop *l)
{
	struct mq_loop_stats st;
	mq_loop_get_stats(l, &st);
	return st;
}

#define ID(ud) ((int)(intptr_t)(ud))
#define UD(id) ((void *)(intptr_t)(id))

static void rec_timer(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	record(ID(ud));
}

/* ---- timers ----------------------------------------------------------- */

START_TEST(timers_fire_in_deadline_order_ties_in_arming_order)
{
	struct mq_loop *l = new_loop();
	int64_t base = mq_mono_ms() - 1000;
	/* id = expected position; added out of order, ties among 2,3,4 and 6,7 */
	static const struct { int id; int64_t off; } add[] = {
		{ 5, 40 }, { 2, 30 }, { 0, 10 }, { 3, 30 }, { 6, 50 }, { 1, 20 },
		{ 4, 30 }, { 7, 50 }, { 8, 900 },
	};
	for (size_t i = 0; i < MQ_ARRAY_SIZE(add); i++)
		ck_assert_ptr_nonnull(mq_loop_add_timer(l, base + add[i].off, rec_timer, UD(add[i].id)));
	/* one in the future must not fire */
	struct mq_timer *future = mq_loop_add_timer_in(l, 100000, rec_timer, UD(99));
	ck_assert_int_eq(mq_loop_test_check_heap(l), 0);
	ck_assert_uint_eq(stats(l).timers, 10);

	ck_assert_int_eq(once(l, 0), 9);
	ck_assert_uint_eq(nrec, 9);
	for (size_t i = 0; i < nrec; i++)
		ck_assert_int_eq(rec[i], (int)i);
	/* fired timers are one-shot and freed */
	ck_assert_uint_eq(stats(l).timers, 1);
	ck_assert_uint_eq(stats(l).timers_fired, 9);
	ck_assert_int_eq(once(l, 0), 0);
	ck_assert_uint_eq(nrec, 9);
	ck_assert_int_eq(mq_timer_deadline(future) > mq_mono_ms(), 1);
	mq_timer_cancel(future);
	ck_assert_uint_eq(stats(l).timers, 0);
	mq_loop_free(l);
}
END_TEST

static struct mq_timer *tm[8];

/* 0 cancels 2; 1 pushes 3 into the far future and 4 into the past (so 4 is
 * not fired in this turn but in the next); 5 re-arms itself twice, then
 * re-arms and cancels itself; 6 adds a new past timer 7. */
static int self_count;
static void ctl_timer(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	int id = ID(ud);
	record(id);
	ck_assert_ptr_eq(t, tm[id]);
	switch (id) {
	case 0:
		mq_timer_cancel(tm[2]);
		tm[2] = NULL;
		break;
	case 1:
		mq_timer_reschedule(tm[3], mq_mono_ms() + 100000);
		mq_timer_reschedule(tm[4], 0);
		break;
	case 5:
		if (++self_count < 3) {
			mq_timer_reschedule(t, 0);
		} else {
			mq_timer_reschedule(t, 0);
			mq_timer_cancel(t);
			tm[5] = NULL;
		}
		return;
	case 6:
		tm[7] = mq_loop_add_timer(l, 0, ctl_timer, UD(7));
		break;
	default:
		break;
	}
	tm[id] = NULL; /* fired and not rescheduled: freed */
}

START_TEST(cancel_and_reschedule_from_callbacks)
{
	struct mq_loop *l = new_loop();
	int64_t past = mq_mono_ms() - 100;
	for (int i = 0; i < 7; i++)
		tm[i] = mq_loop_add_timer(l, past + i, ctl_timer, UD(i));
	self_count = 0;

	/* turn 1: 0 (cancels 2), 1 (moves 3 away, 4 to now), 5, 6 */
	ck_assert_int_eq(once(l, 0), 4);
	ck_assert_uint_eq(nrec, 4);
	ck_assert_int_eq(rec[0], 0);
	ck_assert_int_eq(rec[1], 1);
	ck_assert_int_eq(rec[2], 5);
	ck_assert_int_eq(rec[3], 6);
	ck_assert_int_eq(mq_loop_test_check_heap(l), 0);
	/* left: 3 (future), 4, 5 (self re-armed), 7 */
	ck_assert_uint_eq(stats(l).timers, 4);

	/* turn 2: 4 (deadline 0) before 5 and 7 (both 0, armed later) */
	ck_assert_int_eq(once(l, 0), 3);
	ck_assert_uint_eq(nrec, 7);
	ck_assert_int_eq(rec[4], 4);
	ck_assert_int_eq(rec[5], 5);
	ck_assert_int_eq(rec[6], 7);

	/* turn 3: 5 fires a third time and cancels itself after re-arming */
	ck_assert_int_eq(once(l, 0), 1);
	ck_assert_int_eq(rec[7], 5);
	ck_assert_ptr_null(tm[5]);
	ck_assert_uint_eq(stats(l).timers, 1);
	ck_assert_int_eq(once(l, 0), 0);
	ck_assert_uint_eq(nrec, 8);

	ck_assert_ptr_nonnull(tm[3]);
	mq_timer_cancel(tm[3]);
	ck_assert_uint_eq(stats(l).timers, 0);
	mq_timer_cancel(NULL);
	mq_loop_free(l);
}
END_TEST

/* A timer due in this turn but rescheduled by an earlier callback of the
 * same turn, then cancelled by a later one, must be neither fired nor
 * freed twice (the sanitizer build checks the latter). */
static struct mq_timer *t_a, *t_b, *t_c;
static void a_cb(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	record(1);
	mq_timer_reschedule(t_c, 0); /* t_c was due this turn: re-armed */
}
static void b_cb(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	record(2);
	mq_timer_cancel(t_c);
	t_c = NULL;
}

START_TEST(due_timer_rescheduled_then_cancelled_in_same_turn)
{
	struct mq_loop *l = new_loop();
	int64_t past = mq_mono_ms() - 100;
	t_a = mq_loop_add_timer(l, past, a_cb, NULL);
	t_b = mq_loop_add_timer(l, past + 2, b_cb, NULL);
	t_c = mq_loop_add_timer(l, past + 1 + 2, rec_timer, UD(3)); /* due after b */
	ck_assert_int_eq(once(l, 0), 2);
	ck_assert_uint_eq(nrec, 2);
	ck_assert_int_eq(rec[0], 1);
	ck_assert_int_eq(rec[1], 2);
	ck_assert_uint_eq(stats(l).timers, 0);
	ck_assert_int_eq(once(l, 0), 0);
	ck_assert_uint_eq(nrec, 2);
	mq_loop_free(l);
}
END_TEST

START_TEST(ten_thousand_timers_keep_the_heap)
{
	enum { N = 10000 };
	struct mq_loop *l = new_loop();
	static struct mq_timer *h[N];
	static int64_t dl[N];
	static int alive[N];
	int64_t base = mq_mono_ms() - 100000;
	srand(12345);
	for (int i = 0; i < N; i++) {
		dl[i] = base + rand() % 5000;
		h[i] = mq_loop_add_timer(l, dl[i], rec_timer, UD(i));
		alive[i] = 1;
	}
	ck_assert_int_eq(mq_loop_test_check_heap(l), 0);
	int live = N;
	for (int k = 0; k < 3000; k++) {
		int i = rand() % N;
		if (!alive[i])
			continue;
		if (k % 2) {
			mq_timer_cancel(h[i]);
			h[i] = NULL;
			alive[i] = 0;
			live--;
		} else {
			dl[i] = base + rand() % 5000;
			mq_timer_reschedule(h[i], dl[i]);
		}
		if (k % 500 == 0)
			ck_assert_int_eq(mq_loop_test_check_heap(l), 0);
	}
	ck_assert_int_eq(mq_loop_test_check_heap(l), 0);
	ck_assert_uint_eq(stats(l).timers, (uint64_t)live);

	ck_assert_int_eq(once(l, 0), live);
	ck_assert_uint_eq(nrec, (size_t)live);
	for (size_t j = 0; j < nrec; j++) {
		ck_assert_int_eq(alive[rec[j]], 1);
		alive[rec[j]] = 2; /* once */
		if (j > 0)
			ck_assert_int_le(dl[rec[j - 1]], dl[rec[j]]);
	}
	ck_assert_uint_eq(stats(l).timers, 0);
	mq_loop_free(l);
}
END_TEST

/* ---- timerfd: sleep until the nearest deadline --------------------------- */

static void quit_timer(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	record(ID(ud));
	mq_loop_quit(l, ID(ud));
}

START_TEST(sleeps_until_nearest_deadline_without_busy_polling)
{
	struct mq_loop *l = new_loop();
	int64_t d = mq_mono_ms() + 50;
	mq_loop_add_timer(l, d, rec_timer, UD(1));
	/* a far max wait: the timerfd must wake the poll() */
	ck_assert_int_eq(once(l, 10000), 1);
	ck_assert_uint_eq(nrec, 1);
	ck_assert_int_ge(rec_at[0], d);
	struct mq_loop_stats st = stats(l);
	ck_assert_uint_eq(st.polls, 1);
	ck_assert_uint_eq(st.polls_nowait, 0);
	ck_assert_uint_eq(st.iterations, 1);

	/* moved earlier after the timerfd was armed for them: both far away,
	 * then A -> 30 and B -> 60.  run() has no timeout of its own, so only a
	 * re-armed timerfd can end it */
	int64_t now = mq_mono_ms();
	struct mq_timer *a = mq_loop_add_timer(l, now + 100000, rec_timer, UD(2));
	struct mq_timer *b = mq_loop_add_timer(l, now + 100000, quit_timer, UD(3));
	ck_assert_int_eq(once(l, 0), 0);
	uint64_t arms = stats(l).timerfd_arms;
	mq_timer_reschedule(b, now + 60);
	mq_timer_reschedule(a, now + 30);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_loop_run(l, &err), 3);
	ck_assert_uint_eq(nrec, 3);
	ck_assert_int_eq(rec[1], 2);
	ck_assert_int_eq(rec[2], 3);
	st = stats(l);
	/* one poll per timer, and one timerfd_settime per new nearest deadline */
	ck_assert_uint_eq(st.polls, 1 + 1 + 2);
	ck_assert_uint_eq(st.polls_nowait, 1);
	ck_assert_uint_eq(st.timerfd_arms, arms + 2);

	/* moved later after arming: A (20 -> 80) now after B (50); the first
	 * wake-up is for B, not for A's old deadline */
	now = mq_mono_ms();
	a = mq_loop_add_timer(l, now + 20, rec_timer, UD(4));
	mq_loop_add_timer(l, now + 50, rec_timer, UD(5));
	ck_assert_int_eq(once(l, 0), 0);
	mq_timer_reschedule(a, now + 80);
	ck_assert_int_eq(once(l, 10000), 1);
	ck_assert_uint_eq(nrec, 4);
	ck_assert_int_eq(rec[3], 5);
	ck_assert_int_eq(once(l, 10000), 1);
	ck_assert_uint_eq(nrec, 5);
	ck_assert_int_eq(rec[4], 4);
	ck_assert_int_ge(rec_at[4], now + 80);
	ck_assert_uint_eq(stats(l).timers, 0);

	/* nothing armed, no sources: run_once(0) returns at once with nothing */
	ck_assert_int_eq(once(l, 0), 0);
	mq_loop_free(l);
}
END_TEST

/* ---- fd sources ---------------------------------------------------------- */

struct pipe_src {
	int fd[2];
	struct mq_source *s;
	int calls;
};
static struct pipe_src ps[3];
static struct mq_source *late;
static int late_calls;

static void make_pipe(struct pipe_src *p)
{
	ck_assert_int_eq(pipe2(p->fd, O_CLOEXEC | O_NONBLOCK), 0);
	ck_assert_int_eq(write(p->fd[1], "x", 1), 1);
	p->calls = 0;
}

static void late_cb(struct mq_loop *l, struct mq_source *s, int fd, short rev, void *ud)
{
	late_calls++;
}

/* ps[0] removes ps[1] (later in the same turn) and itself, and adds a new
 * source on its own fd */
static void pipe_cb(struct mq_loop *l, struct mq_source *s, int fd, short rev, void *ud)
{
	struct pipe_src *p = ud;
	ck_assert_ptr_eq(s, p->s);
	ck_assert_int_eq(fd, p->fd[0]);
	ck_assert(rev & POLLIN);
	p->calls++;
	if (p == &ps[0]) {
		mq_source_remove(ps[1].s);
		mq_source_remove(s);
		late = mq_loop_add_fd(l, fd, POLLIN, late_cb, NULL);
	}
}

START_TEST(source_removed_during_dispatch_is_never_called)
{
	struct mq_loop *l = new_loop();
	for (int i = 0; i < 3; i++) {
		make_pipe(&ps[i]);
		ps[i].s = mq_loop_add_fd(l, ps[i].fd[0], POLLIN, pipe_cb, &ps[i]);
	}
	late_calls = 0;
	ck_assert_uint_eq(stats(l).sources, 3);
	ck_assert_int_eq(once(l, 1000), 2);
	ck_assert_int_eq(ps[0].calls, 1);
	ck_assert_int_eq(ps[1].calls, 0);
	ck_assert_int_eq(ps[2].calls, 1);
	/* the source added in the callback waits for the next poll() */
	ck_assert_int_eq(late_calls, 0);
	ck_assert_uint_eq(stats(l).sources, 2);

	ck_assert_int_eq(once(l, 1000), 2);
	ck_assert_int_eq(late_calls, 1);
	ck_assert_int_eq(ps[1].calls, 0);
	ck_assert_int_eq(ps[2].calls, 2);

	/* removal outside dispatch, then the fds are still ours to close */
	mq_source_remove(late);
	mq_source_remove(ps[2].s);
	mq_source_remove(NULL);
	ck_assert_uint_eq(stats(l).sources, 0);
	ck_assert_int_eq(once(l, 0), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(fcntl(ps[i].fd[0], F_GETFD), FD_CLOEXEC);
		close(ps[i].fd[0]);
		close(ps[i].fd[1]);
	}
	mq_loop_free(l);
}
END_TEST

static void disable_cb(struct mq_loop *l, struct mq_source *s, int fd, short rev, void *ud)
{
	(*(int *)ud)++;
	mq_source_set_events(s, 0);
}

START_TEST(zero_events_disables_a_source)
{
	struct mq_loop *l = new_loop();
	struct pipe_src p;
	make_pipe(&p);
	int calls = 0;
	struct mq_source *s = mq_loop_add_fd(l, p.fd[0], POLLIN, disable_cb, &calls);
	ck_assert_int_eq(once(l, 1000), 1);
	ck_assert_int_eq(calls, 1);
	ck_assert_int_eq(mq_source_get_events(s), 0);
	/* still readable, and even closing the writer (POLLHUP) is not reported */
	close(p.fd[1]);
	ck_assert_int_eq(once(l, 20), 0);
	ck_assert_int_eq(calls, 1);
	mq_source_set_events(s, POLLIN);
	ck_assert_int_eq(once(l, 1000), 1);
	ck_assert_int_eq(calls, 2);
	ck_assert_int_eq(mq_source_fd(s), p.fd[0]);
	mq_loop_free(l); /* frees the source, never closes our fd */
	ck_assert_int_eq(fcntl(p.fd[0], F_GETFD), FD_CLOEXEC);
	close(p.fd[0]);
}
END_TEST

/* ---- deferred work ------------------------------------------------------- */

struct fair {
	int runs;            /* deferred callback runs */
	int trigger_at;      /* run on which the fd is made ready */
	uint64_t trigger_iter;
	uint64_t seen_iter;  /* turn on which the fd source was dispatched */
	int efd;
	int max_per_turn;
	uint64_t last_iter;
	int this_turn;
};

static void forever(struct mq_loop *l, void *ud)
{
	struct fair *f = ud;
	uint64_t it = stats(l).iterations;
	f->this_turn = it == f->last_iter ? f->this_turn + 1 : 1;
	f->last_iter = it;
	if (f->this_turn > f->max_per_turn)
		f->max_per_turn = f->this_turn;
	if (++f->runs == f->trigger_at) {
		f->trigger_iter = it;
		if (f->efd >= 0) {
			uint64_t one = 1;
			ck_assert_int_eq(write(f->efd, &one, sizeof(one)), sizeof(one));
		} else {
			ck_assert_int_eq(raise(SIGUSR1), 0);
		}
	}
	mq_loop_defer(l, forever, f);
}

static void on_signal(struct mq_loop *l, struct mq_source *s, const struct signalfd_siginfo *si,
		      void *ud)
{
	struct fair *f = ud;
	ck_assert_uint_eq(si->ssi_signo, SIGUSR1);
	f->seen_iter = stats(l).iterations;
	mq_loop_quit(l, 5);
}

static void on_eventfd(struct mq_loop *l, struct mq_source *s, int fd, short rev, void *ud)
{
	struct fair *f = ud;
	uint64_t v;
	ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
	f->seen_iter = stats(l).iterations;
	mq_loop_quit(l, 6);
}

static void check_fair(struct mq_loop *l, struct fair *f, int code)
{
	struct mq_error *err = NULL;
	/* a long max wait: deferred work must make every poll() non-blocking */
	int turns = mq_loop_run_n(l, 1000, 5000, &err);
	ck_assert_msg(turns >= 0, "run_n: %s", err ? err->msg : "?");
	ck_assert_int_eq(mq_loop_quit_code(l), code);
	ck_assert_uint_ne(f->trigger_iter, 0);
	ck_assert_uint_ne(f->seen_iter, 0);
	/* dispatched on the turn after the one that made it ready */
	ck_assert_uint_le(f->seen_iter, f->trigger_iter + 2);
	ck_assert_int_lt(turns, 1000);
	/* the self re-deferring callback ran once per turn, never twice */
	ck_assert_int_eq(f->max_per_turn, 1);
	ck_assert_int_eq(f->runs, turns);
	struct mq_loop_stats st = stats(l);
	ck_assert_uint_eq(st.polls, st.polls_nowait);
	ck_assert_uint_eq(st.deferred_pending, 1);
}

START_TEST(self_redeferring_work_cannot_starve_a_signalfd)
{
	struct mq_loop *l = new_loop();
	struct fair f = { .trigger_at = 5, .efd = -1 };
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	struct mq_source *s = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_loop_add_signals(l, &set, on_signal, &f, &s, &err), 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(fcntl(mq_source_fd(s), F_GETFD), FD_CLOEXEC);
	ck_assert(fcntl(mq_source_fd(s), F_GETFL) & O_NONBLOCK);
	mq_loop_defer(l, forever, &f);
	check_fair(l, &f, 5);
	mq_loop_free(l);
}
END_TEST

START_TEST(self_redeferring_work_cannot_starve_an_eventfd)
{
	struct mq_loop *l = new_loop();
	struct fair f = { .trigger_at = 7 };
	f.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ck_assert_int_ge(f.efd, 0);
	mq_loop_add_fd(l, f.efd, POLLIN, on_eventfd, &f);
	mq_loop_defer(l, forever, &f);
	check_fair(l, &f, 6);
	mq_loop_free(l);
	close(f.efd);
}
END_TEST

static void rec_defer(struct mq_loop *l, void *ud)
{
	record(ID(ud));
}

static void defer_from_io(struct mq_loop *l, struct mq_source *s, int fd, short rev, void *ud)
{
	char c;
	ck_assert_int_eq(read(fd, &c, 1), 1);
	record(100);
	mq_loop_defer(l, rec_defer, UD(101));
	mq_loop_defer(l, rec_defer, UD(102));
}

START_TEST(work_deferred_by_a_callback_waits_for_the_next_poll)
{
	struct mq_loop *l = new_loop();
	struct pipe_src p;
	make_pipe(&p);
	mq_loop_add_fd(l, p.fd[0], POLLIN, defer_from_io, NULL);
	mq_loop_defer(l, rec_defer, UD(1)); /* queued before the first poll() */
	ck_assert_int_eq(once(l, 1000), 2);
	ck_assert_uint_eq(nrec, 2);
	ck_assert_int_eq(rec[0], 100);
	ck_assert_int_eq(rec[1], 1);
	ck_assert_uint_eq(stats(l).deferred_pending, 2);
	uint64_t polls = stats(l).polls;
	/* the next poll() does not sleep although nothing else is ready */
	ck_assert_int_eq(once(l, 10000), 2);
	ck_assert_uint_eq(stats(l).polls, polls + 1);
	ck_assert_uint_eq(stats(l).polls_nowait, 2); /* both turns had work queued */
	ck_assert_uint_eq(nrec, 4);
	ck_assert_int_eq(rec[2], 101);
	ck_assert_int_eq(rec[3], 102);
	ck_assert_uint_eq(stats(l).deferred_run, 3);
	/* dropped, not called, by free */
	mq_loop_defer(l, rec_defer, UD(7));
	mq_loop_free(l);
	ck_assert_uint_eq(nrec, 4);
	close(p.fd[0]);
	close(p.fd[1]);
}
END_TEST

/* ---- running and quitting ----------------------------------------------- */

static int nested_r;
static void nested_cb(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct mq_error *err = NULL;
	nested_r = mq_loop_run_once(l, 0, &err);
	ck_assert_ptr_nonnull(err);
	mq_error_free(err);
	mq_loop_quit(l, 0);
}

START_TEST(quit_code_and_reruns)
{
	struct mq_loop *l = new_loop();
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_loop_quit_code(l), -1);
	mq_loop_add_timer_in(l, 5, quit_timer, UD(42));
	ck_assert_int_eq(mq_loop_run(l, &err), 42);
	ck_assert_int_eq(mq_loop_quit_code(l), 42);
	/* the request was consumed: the loop runs again */
	mq_loop_add_timer_in(l, 5, quit_timer, UD(3));
	ck_assert_int_eq(mq_loop_run(l, &err), 3);

	/* run_n: stops early on quit, else runs exactly n turns */
	uint64_t it0 = stats(l).iterations;
	ck_assert_int_eq(mq_loop_run_n(l, 4, 0, &err), 4);
	ck_assert_uint_eq(stats(l).iterations, it0 + 4);
	mq_loop_add_timer(l, 0, quit_timer, UD(9));
	ck_assert_int_eq(mq_loop_run_n(l, 100, 0, &err), 1);
	ck_assert_int_eq(mq_loop_quit_code(l), 9);

	/* a pending quit keeps run_once from sleeping */
	mq_loop_quit(l, 11);
	ck_assert_int_eq(once(l, 10000), 0);
	ck_assert_int_eq(mq_loop_run(l, &err), 11);

	/* running the loop from a callback is refused */
	mq_loop_add_timer(l, 0, nested_cb, NULL);
	ck_assert_int_eq(mq_loop_run(l, &err), 0);
	ck_assert_int_eq(nested_r, -EBUSY);
	ck_assert_ptr_null(err);
	mq_loop_free(l);
	mq_loop_free(NULL);
}
END_TEST

/* ---- fds ----------------------------------------------------------------- */

static int fd_open_set(char *open_fds, int max)
{
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	int dfd = dirfd(d), n = 0;
	struct dirent *e;
	memset(open_fds, 0, (size_t)max);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		long fd = strtol(e->d_name, NULL, 10);
		if (fd == dfd || fd < 0 || fd >= max)
			continue;
		open_fds[fd] = 1;
		n++;
	}
	closedir(d);
	return n;
}

START_TEST(every_loop_fd_is_cloexec_and_nonblocking)
{
	enum { MAXFD = 1024 };
	static char before[MAXFD], after[MAXFD];
	fd_open_set(before, MAXFD);
	struct mq_loop *l = new_loop();
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_loop_add_signals(l, &set, on_signal, NULL, NULL, &err), 0);
	mq_loop_add_timer_in(l, 100000, rec_timer, NULL);
	ck_assert_int_eq(once(l, 0), 0); /* arms the timerfd */
	int n = fd_open_set(after, MAXFD);
	int fresh = 0;
	for (int fd = 0; fd < MAXFD; fd++) {
		if (!after[fd] || before[fd])
			continue;
		fresh++;
		ck_assert_int_eq(fcntl(fd, F_GETFD), FD_CLOEXEC);
		ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
	}
	ck_assert_int_eq(fresh, 2); /* one timerfd, one signalfd */
	mq_loop_free(l);
	ck_assert_int_eq(fd_open_set(after, MAXFD), n - 2);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, timers_fire_in_deadline_order_ties_in_arming_order);
	tcase_add_test(tc, cancel_and_reschedule_from_callbacks);
	tcase_add_test(tc, due_timer_rescheduled_then_cancelled_in_same_turn);
	tcase_add_test(tc, ten_thousand_timers_keep_the_heap);
	tcase_add_test(tc, sleeps_until_nearest_deadline_without_busy_polling);
	tcase_add_test(tc, source_removed_during_dispatch_is_never_called);
	tcase_add_test(tc, zero_events_disables_a_source);
	tcase_add_test(tc, self_redeferring_work_cannot_starve_a_signalfd);
	tcase_add_test(tc, self_redeferring_work_cannot_starve_an_eventfd);
	tcase_add_test(tc, work_deferred_by_a_callback_waits_for_the_next_poll);
	tcase_add_test(tc, quit_code_and_reruns);
	tcase_add_test(tc, every_loop_fd_is_cloexec_and_nonblocking);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(loop_suite());
}
