/* teardown.c - wait, on the loop, for exited processes to be torn down (see teardown.h). */
#include "reconciler/teardown.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "util/xalloc.h"

struct waiter {
	struct mq_teardown *t;
	pid_t pid;
	struct mq_source *src;
};

/* A pid with no process left whose lease was still held when asked: the
 * kernel drops the last file references of an exited process from a
 * workqueue, a jiffy or more after its /proc entry is gone. */
struct gone {
	pid_t pid;
	int tries;
	int64_t last_ms;
};

struct mq_teardown {
	struct mq_loop *loop;
	void (*cb)(void *ud);
	void *ud;
	struct waiter **w;
	size_t n;
	struct gone *g;
	size_t ng;
	struct mq_timer *timer;
};

struct mq_teardown *mq_teardown_new(struct mq_loop *l, void (*cb)(void *ud), void *ud)
{
	struct mq_teardown *t = xcalloc(1, sizeof(*t));
	t->loop = l;
	t->cb = cb;
	t->ud = ud;
	return t;
}

static void drop(struct mq_teardown *t, size_t i)
{
	struct waiter *w = t->w[i];
	int fd = mq_source_fd(w->src);
	mq_source_remove(w->src);
	close(fd);
	free(w);
	t->w[i] = t->w[--t->n];
}

static void on_gone(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	(void)l;
	(void)s;
	(void)fd;
	(void)revents;
	struct waiter *w = ud;
	struct mq_teardown *t = w->t;
	for (size_t i = 0; i < t->n; i++)
		if (t->w[i] == w) {
			drop(t, i);
			break;
		}
	t->cb(t->ud);
}

static void on_timer(struct mq_loop *l, struct mq_timer *tm, void *ud)
{
	(void)l;
	(void)tm;
	struct mq_teardown *t = ud;
	t->timer = NULL;
	t->cb(t->ud);
}

/* The process is gone but its lease was still held: ask again after 2, 4,
 * 8 ... 128 ms, not in a loop; entries not asked about for 10 s are
 * forgotten.  After GONE_TRIES asks (about 0.4 s) the holder is not this
 * process's teardown (a lease naming a pid that never held it, e.g. one
 * written by an older maqet): -ESRCH, and the caller waits its usual way. */
#define GONE_TRIES 8
static int retry_gone(struct mq_teardown *t, pid_t pid)
{
	int64_t now = mq_mono_ms();
	struct gone *g = NULL;
	for (size_t i = 0; i < t->ng;) {
		if (t->g[i].pid == pid) {
			g = &t->g[i++];
		} else if (now - t->g[i].last_ms > 10000) {
			t->g[i] = t->g[--t->ng];
		} else {
			i++;
		}
	}
	if (!g) {
		t->g = xreallocarray(t->g, t->ng + 1, sizeof(*t->g));
		g = &t->g[t->ng++];
		*g = (struct gone){ .pid = pid };
	}
	if (g->tries >= GONE_TRIES) {
		g->last_ms = now;
		return -ESRCH;
	}
	g->tries++;
	g->last_ms = now;
	int64_t at = now + (1 << (g->tries < 7 ? g->tries : 7));
	if (!t->timer)
		t->timer = mq_loop_add_timer(t->loop, at, on_timer, t);
	else if (mq_timer_deadline(t->timer) > at)
		mq_timer_reschedule(t->timer, at);
	return 0;
}

int mq_teardown_wait(struct mq_teardown *t, pid_t pid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->w[i]->pid == pid)
			return 0;
	int fd = mq_pidfd_open(pid);
	if (fd == -ESRCH)
		return retry_gone(t, pid);
	if (fd < 0)
		return fd;
	struct waiter *w = xcalloc(1, sizeof(*w));
	w->t = t;
	w->pid = pid;
	w->src = mq_loop_add_fd(t->loop, fd, POLLIN, on_gone, w);
	t->w = xreallocarray(t->w, t->n + 1, sizeof(*t->w));
	t->w[t->n++] = w;
	return 0;
}

size_t mq_teardown_count(const struct mq_teardown *t)
{
	return t ? t->n : 0;
}

void mq_teardown_free(struct mq_teardown *t)
{
	if (!t)
		return;
	while (t->n)
		drop(t, t->n - 1);
	mq_timer_cancel(t->timer);
	free(t->w);
	free(t->g);
	free(t);
}
