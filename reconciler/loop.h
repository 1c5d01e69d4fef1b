/* loop.h - single-threaded poll() event loop: fd sources, deadline timers,
 * deferred work (after s6 iopause, redis ae, systemd sd-event).
 *
 * One turn of the loop (mq_loop_run_once) is:
 *   1. arm the loop's one timerfd to the nearest timer deadline;
 *   2. poll() every enabled fd source plus the timerfd, sleeping at most
 *      max_wait_ms, or not at all when deferred work is queued or quit was
 *      requested;
 *   3. take the deferred work queued so far (step 6 runs exactly that batch);
 *   4. call the callback of every fd source that poll() reported ready, in
 *      the order the sources were added;
 *   5. fire every timer whose deadline has passed, in deadline order;
 *   6. run the batch of deferred work taken in step 3, in queue order.
 * Anything queued, added or re-armed while steps 4-6 run waits for the next
 * turn and its poll(): a callback that keeps re-queueing work can never
 * starve an fd (a signalfd, say) that became ready in the meantime.
 *
 * Threads: none.  Every function must be called from the thread that runs
 * the loop; nothing here is async-signal-safe (use a signalfd source, see
 * mq_loop_add_signals, not a signal handler).
 *
 * Callbacks never block.  From inside any callback it is fine to add,
 * modify and remove sources, add/reschedule/cancel timers, defer work and
 * call mq_loop_quit.  It is NOT allowed to call mq_loop_run, mq_loop_run_once,
 * mq_loop_run_n (they fail with -EBUSY) or mq_loop_free (undefined).
 *
 * Clock: timer deadlines are absolute milliseconds on CLOCK_MONOTONIC, the
 * clock of mq_mono_ms() (reconciler/proc.h).
 *
 * Errors follow util/error.h: 0 or -errno, and *err filled.  Out of memory
 * aborts.  Every fd the loop opens is close-on-exec and non-blocking.
 */
#ifndef MQ_LOOP_H
#define MQ_LOOP_H

#include <signal.h>
#include <stdint.h>
#include <sys/signalfd.h>

#include "util/error.h"

struct mq_loop;
struct mq_source;
struct mq_timer;

/* revents: what poll() reported (POLLIN, POLLOUT, POLLHUP, POLLERR,
 * POLLNVAL...).  A callback that gets POLLHUP/POLLERR/POLLNVAL and neither
 * removes the source nor disables it (events 0) is called again on every
 * turn, because poll() keeps reporting the condition. */
typedef void (*mq_io_fn)(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud);
typedef void (*mq_timer_fn)(struct mq_loop *l, struct mq_timer *t, void *ud);
typedef void (*mq_defer_fn)(struct mq_loop *l, void *ud);
/* One call per signal read from the signalfd (si->ssi_signo etc.). */
typedef void (*mq_signal_fn)(struct mq_loop *l, struct mq_source *s,
			     const struct signalfd_siginfo *si, void *ud);

/* Create a loop (and its timerfd).  0, or -errno with *err set; *out is left
 * untouched on failure. */
int mq_loop_new(struct mq_loop **out, struct mq_error **err);
/* Free the loop: every source (closing only the fds the loop opened itself,
 * i.e. signalfds), every timer and all queued deferred work, none of whose
 * callbacks is called; user data is not touched.  Every source and timer
 * handle becomes invalid.  Not from inside a callback.  Accepts NULL,
 * returns NULL. */
struct mq_loop *mq_loop_free(struct mq_loop *l);

/* ---- fd sources ------------------------------------------------------
 * A source handle is owned by the loop.  It stays valid until
 * mq_source_remove() (or mq_loop_free); after that the caller must not use
 * it again (NULL your pointer).  */

/* Watch fd (not taken over: the loop never closes it) for events
 * (POLLIN|POLLOUT|...).  events == 0 adds the source disabled.  A source
 * added inside a callback is first polled on the next turn.  cb must not be
 * NULL.  Several sources may watch the same fd.  Never fails. */
struct mq_source *mq_loop_add_fd(struct mq_loop *l, int fd, short events, mq_io_fn cb, void *ud);
/* Change the events mask; takes effect at the next poll().  events == 0
 * disables the source completely: its fd is not polled at all, so not even
 * POLLHUP/POLLERR are reported, until events are set again. */
void mq_source_set_events(struct mq_source *s, short events);
short mq_source_get_events(const struct mq_source *s);
int mq_source_fd(const struct mq_source *s);
/* Remove the source.  Its callback is never called again, not even later
 * in the current turn when it was also ready.  Safe from inside any
 * callback, including its own; the memory is reclaimed when the current
 * dispatch ends.  Does not close the fd, unless the loop opened it (signal
 * sources).  Accepts NULL. */
void mq_source_remove(struct mq_source *s);

/* Block the signals in *set (sigprocmask, so the process must have a single
 * thread) and add a source on a new signalfd (SFD_CLOEXEC|SFD_NONBLOCK) that
 * calls cb once per signal received.  The loop owns the signalfd and closes
 * it when the source is removed; the signals stay blocked (restore the mask
 * yourself if needed, and before exec'ing a child).  On success *out (if
 * not NULL) receives the source; on failure the old signal mask is restored,
 * *out is untouched, -errno is returned and *err set. */
int mq_loop_add_signals(struct mq_loop *l, const sigset_t *set, mq_signal_fn cb, void *ud,
			struct mq_source **out, struct mq_error **err);

/* ---- timers ----------------------------------------------------------
 * One-shot deadline timers kept in a binary min-heap ordered by (deadline,
 * arming order): timers with equal deadlines fire in the order they were
 * added or last rescheduled.  The loop owns a timer handle, which stays
 * valid until exactly one of:
 *   - mq_timer_cancel(t): freed (or, from inside its own callback, freed
 *     when the callback returns);
 *   - t fired and its callback returned without mq_timer_reschedule(t):
 *     freed right after the callback;
 *   - mq_loop_free.
 * So NULL your pointer when you cancel, and in the callback unless you
 * reschedule it there.
 * Deadlines in the past are fine: such a timer fires on the next turn.  A
 * timer that becomes due during a turn (added, or rescheduled, by a
 * callback of that turn) fires on a later turn, never in the same one. */

/* Add a timer for deadline_mono_ms (absolute CLOCK_MONOTONIC ms).  cb must
 * not be NULL.  Never fails. */
struct mq_timer *mq_loop_add_timer(struct mq_loop *l, int64_t deadline_mono_ms, mq_timer_fn cb,
				   void *ud);
/* Convenience: mq_loop_add_timer(l, mq_mono_ms() + after_ms, ...). */
struct mq_timer *mq_loop_add_timer_in(struct mq_loop *l, int64_t after_ms, mq_timer_fn cb,
				      void *ud);
/* Move a live timer to a new deadline, O(log n).  Works on an armed timer,
 * on a timer that is due in the current turn but has not fired yet (it is
 * then not fired in this turn), and inside the timer's own callback (it
 * then stays alive and fires again at the new deadline).  Must not be called
 * on a cancelled or freed timer. */
void mq_timer_reschedule(struct mq_timer *t, int64_t deadline_mono_ms);
/* Cancel and free a timer, O(log n): its callback is never called after
 * this, even if it was due in the current turn.  From inside the timer's own
 * callback it only undoes a reschedule made there (the timer is freed when
 * the callback returns).  Accepts NULL. */
void mq_timer_cancel(struct mq_timer *t);
int64_t mq_timer_deadline(const struct mq_timer *t);

/* ---- deferred work ---------------------------------------------------- */

/* Queue cb(l, ud) to run once, on a later turn, after that turn's poll()
 * (which then does not sleep).  FIFO.  Work queued while deferred work or
 * any other callback runs waits for the next poll(), so a callback that
 * re-defers itself runs at most once per turn and every ready fd is still
 * dispatched on every turn.  Queued work cannot be cancelled; on
 * mq_loop_free it is dropped without being called.  Never fails. */
void mq_loop_defer(struct mq_loop *l, mq_defer_fn cb, void *ud);

/* ---- running ---------------------------------------------------------- */

/* Ask mq_loop_run / mq_loop_run_n to return after the current turn, with
 * code, which must be >= 0 (negative values are reserved for errors).  The
 * last call wins.  The request is consumed by the run that returns it. */
void mq_loop_quit(struct mq_loop *l, int code);
/* Run turns until mq_loop_quit() is called; returns the quit code, or
 * -errno (with *err set) if poll() or the timerfd fails, or -EBUSY from
 * inside a callback.  Sleeps as long as needed (no timeout of its own). */
int mq_loop_run(struct mq_loop *l, struct mq_error **err);
/* One turn, sleeping at most max_wait_ms (-1: until an fd or timer is
 * ready; 0: do not sleep).  Returns the number of callbacks called (fd,
 * signal, timer and deferred; 0 when poll() timed out or was interrupted by
 * a signal handler), or -errno with *err set.  Does not consume a pending
 * quit request, but does not sleep while one is pending. */
int mq_loop_run_once(struct mq_loop *l, int max_wait_ms, struct mq_error **err);
/* Up to n turns of mq_loop_run_once(l, max_wait_ms), stopping early when
 * quit is requested (the request is then consumed).  Returns the number of
 * turns run (>= 0), or -errno with *err set.  The quit code, if any, can be
 * read with mq_loop_quit_code() before running again. */
int mq_loop_run_n(struct mq_loop *l, unsigned n, int max_wait_ms, struct mq_error **err);
/* Code of the last quit request consumed by mq_loop_run_n / mq_loop_run, or
 * -1 if none was ever made. */
int mq_loop_quit_code(const struct mq_loop *l);

/* ---- counters --------------------------------------------------------
 * Monotonic counters since mq_loop_new, for tests and CPU-spin checks (a
 * loop that is idle except for one timer 50 ms away must show one poll, not
 * thousands). */
struct mq_loop_stats {
	uint64_t iterations;   /* turns: counted when a turn's poll() returns, so
				* inside a callback it numbers the current turn */
	uint64_t polls;        /* poll() system calls */
	uint64_t polls_nowait; /* of which with a zero timeout */
	uint64_t io_dispatched;      /* fd source callbacks called (signal sources: once per read batch) */
	uint64_t timers_fired;       /* timer callbacks called */
	uint64_t deferred_run;       /* deferred callbacks called */
	uint64_t timerfd_arms;       /* timerfd_settime() calls */
	/* current sizes */
	uint64_t sources;      /* live sources */
	uint64_t timers;       /* live timers (armed, due or firing) */
	uint64_t deferred_pending;   /* deferred callbacks queued */
};
void mq_loop_get_stats(const struct mq_loop *l, struct mq_loop_stats *out);

#endif
