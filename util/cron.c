/* cron.c - see cron.h. */
#include "util/cron.h"

#include <errno.h>
#include <string.h>
#include <time.h>

struct field_def {
	unsigned lo, hi;
	const char *range_err;
};

static const struct field_def fields[5] = {
	{ 0, 59, "minute out of range 0-59" },
	{ 0, 23, "hour out of range 0-23" },
	{ 1, 31, "day of month out of range 1-31" },
	{ 1, 12, "month out of range 1-12" },
	{ 0, 7, "day of week out of range 0-7" },
};

/* A decimal number at *p (at most 3 digits). */
static int num(const char **p, const char *end, unsigned *out)
{
	const char *s = *p;
	unsigned v = 0;
	int nd = 0;
	while (s < end && *s >= '0' && *s <= '9') {
		if (++nd > 3)
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		s++;
	}
	if (nd == 0)
		return -1;
	*p = s;
	*out = v;
	return 0;
}

/* One field [s, end) -> bits; *star when it is exactly "*" (or "*\/1"). */
static int field_parse(const char *s, const char *end, const struct field_def *f, uint64_t *bits, bool *star,
		       const char **why)
{
	uint64_t b = 0;
	*star = false;
	const char *p = s;
	for (;;) {
		const char *item_end = p;
		while (item_end < end && *item_end != ',')
			item_end++;
		if (item_end == p) {
			*why = "empty list item";
			return -EINVAL;
		}
		unsigned lo, hi, step = 1;
		bool is_star = false;
		if (*p == '*') {
			lo = f->lo;
			hi = f->hi;
			p++;
			is_star = true;
		} else {
			if (num(&p, item_end, &lo) < 0) {
				*why = "expected a number, '*', a range A-B or a step /N";
				return -EINVAL;
			}
			hi = lo;
			if (p < item_end && *p == '-') {
				p++;
				if (num(&p, item_end, &hi) < 0) {
					*why = "expected a number after '-'";
					return -EINVAL;
				}
			}
		}
		bool ranged = is_star || hi != lo;
		if (p < item_end && *p == '/') {
			p++;
			if (num(&p, item_end, &step) < 0 || step == 0) {
				*why = "expected a step of at least 1 after '/'";
				return -EINVAL;
			}
			if (!ranged)
				hi = f->hi; /* "5/20" = 5-max/20 */
		}
		if (p != item_end) {
			*why = "unexpected character";
			return -EINVAL;
		}
		if (lo < f->lo || hi > f->hi || lo > f->hi) {
			*why = f->range_err;
			return -EINVAL;
		}
		if (lo > hi) {
			*why = "range start after its end";
			return -EINVAL;
		}
		for (unsigned v = lo; v <= hi; v += step)
			b |= 1ULL << v;
		if (item_end == end)
			break;
		p = item_end + 1;
		if (p == end) {
			*why = "empty list item";
			return -EINVAL;
		}
	}
	*bits = b;
	*star = end - s == 1 && *s == '*';
	return 0;
}

int mq_cron_parse(const char *expr, struct mq_cron *out, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	if (!expr) {
		*why = "expected 5 fields";
		return -EINVAL;
	}
	const char *start[5], *end[5];
	int n = 0;
	const char *p = expr;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n == 5) {
			*why = "expected 5 fields (minute hour day-of-month month day-of-week), got more";
			return -EINVAL;
		}
		start[n] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		end[n++] = p;
	}
	if (n != 5) {
		*why = "expected 5 fields (minute hour day-of-month month day-of-week)";
		return -EINVAL;
	}
	uint64_t bits[5];
	bool star[5];
	for (int i = 0; i < 5; i++)
		if (field_parse(start[i], end[i], &fields[i], &bits[i], &star[i], why) < 0)
			return -EINVAL;
	struct mq_cron c = { 0 };
	c.minute = bits[0];
	c.hour = (uint32_t)bits[1];
	c.dom = (uint32_t)bits[2];
	c.month = (uint16_t)bits[3];
	uint64_t dow = bits[4];
	if (dow & (1ULL << 7))
		dow |= 1;
	c.dow = (uint8_t)(dow & 0x7f);
	c.dom_star = star[2];
	c.dow_star = star[4];
	*out = c;
	return 0;
}

static bool day_ok(const struct mq_cron *c, const struct tm *t)
{
	bool d = (c->dom >> t->tm_mday) & 1, w = (c->dow >> t->tm_wday) & 1;
	if (c->dom_star || c->dow_star)
		return d && w;
	return d || w;
}

int64_t mq_cron_next(const struct mq_cron *c, int64_t after)
{
	time_t t = (time_t)(after - (after % 60 + 60) % 60 + 60); /* next whole minute */
	time_t limit = (time_t)after + (time_t)8 * 366 * 86400;
	struct tm tm;
	while (t <= limit) {
		if (!gmtime_r(&t, &tm))
			return -1;
		if (!((c->month >> (tm.tm_mon + 1)) & 1)) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
			t = timegm(&tm);
			continue;
		}
		if (!day_ok(c, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
			t = timegm(&tm);
			continue;
		}
		if (!((c->hour >> tm.tm_hour) & 1)) {
			t += 3600 - tm.tm_min * 60 - tm.tm_sec;
			continue;
		}
		if (!((c->minute >> tm.tm_min) & 1)) {
			t += 60 - tm.tm_sec;
			continue;
		}
		return (int64_t)t;
	}
	return -1;
}
