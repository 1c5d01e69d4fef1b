/* schedule.c - see schedule.h. */
#include "reconciler/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cron.h"
#include "util/xalloc.h"

int64_t mq_sched_last(const struct mq_snap_list *l, enum mq_snap_origin origin)
{
	int64_t last = -1;
	for (size_t i = 0; l && i < l->n; i++)
		if (l->items[i].origin == origin && l->items[i].created_at > last)
			last = l->items[i].created_at;
	return last;
}

int64_t mq_sched_due_at(const struct mq_snap_schedule *s, int64_t last_ms, int64_t now_ms)
{
	if (last_ms < 0)
		return now_ms;
	if (!s->cron)
		return last_ms + (int64_t)s->every_s * 1000;
	struct mq_cron c;
	if (mq_cron_parse(s->cron, &c, NULL) < 0)
		return -1;
	int64_t next = mq_cron_next(&c, last_ms / 1000);
	return next < 0 ? -1 : next * 1000;
}

struct cand {
	const char *name;
	int64_t at;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return strcmp(x->name, y->name);
}

size_t mq_sched_retention(const struct mq_snap_list *l, enum mq_snap_origin origin, unsigned keep,
			  struct mq_strv *out)
{
	if (!l || l->n == 0)
		return 0;
	struct cand *c = xcalloc(l->n, sizeof(*c));
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i].origin == origin)
			c[n++] = (struct cand){ l->items[i].name, l->items[i].created_at };
	size_t del = 0;
	if (n > keep) {
		qsort(c, n, sizeof(*c), cand_cmp);
		del = n - keep;
		for (size_t i = 0; i < del; i++)
			mq_strv_push(out, c[i].name);
	}
	free(c);
	return del;
}

void mq_sched_format_age(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms < 0 ? 0 : ms / 1000;
	int64_t d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
	if (d)
		snprintf(buf, len, "%lldd%lldh", (long long)d, (long long)h);
	else if (h)
		snprintf(buf, len, "%lldh%lldm", (long long)h, (long long)m);
	else if (m)
		snprintf(buf, len, "%lldm", (long long)m);
	else
		snprintf(buf, len, "%llds", (long long)s);
}
