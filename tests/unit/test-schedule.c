/* test-schedule.c - util/cron.c and reconciler/schedule.c: cron parsing and
 * next matches, due times with the catch-up rule, retention. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconciler/schedule.h"
#include "util/cron.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

/* unix seconds of a UTC date */
static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s };
	return (int64_t)timegm(&tm);
}

static struct mq_cron cron_ok(const char *e)
{
	struct mq_cron c;
	const char *why = NULL;
	ck_assert_msg(mq_cron_parse(e, &c, &why) == 0, "'%s' refused: %s", e, why ? why : "?");
	return c;
}

static void cron_bad(const char *e, const char *why_expected)
{
	struct mq_cron c;
	memset(&c, 0xaa, sizeof(c));
	struct mq_cron before = c;
	const char *why = NULL;
	ck_assert_int_eq(mq_cron_parse(e, &c, &why), -EINVAL);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, why_expected), "'%s': why '%s', expected '%s'", e, why, why_expected);
	ck_assert(memcmp(&c, &before, sizeof(c)) == 0); /* untouched */
}

START_TEST(test_cron_parse)
{
	struct mq_cron c = cron_ok("* * * * *");
	ck_assert(c.minute == (1ULL << 60) - 1);
	ck_assert_uint_eq(c.hour, (1U << 24) - 1);
	ck_assert_uint_eq(c.dom, 0xfffffffeU);
	ck_assert_uint_eq(c.month, 0x1ffe);
	ck_assert_uint_eq(c.dow, 0x7f);
	ck_assert(c.dom_star && c.dow_star);

	c = cron_ok("0 */6 * * *");
	ck_assert(c.minute == 1);
	ck_assert_uint_eq(c.hour, (1U << 0) | (1U << 6) | (1U << 12) | (1U << 18));

	c = cron_ok("5,10-12,50-59/5 0-23/12 1,15 2-3 1-5");
	ck_assert(c.minute == ((1ULL << 5) | (7ULL << 10) | (1ULL << 50) | (1ULL << 55)));
	ck_assert_uint_eq(c.hour, (1U << 0) | (1U << 12));
	ck_assert_uint_eq(c.dom, (1U << 1) | (1U << 15));
	ck_assert_uint_eq(c.month, (1U << 2) | (1U << 3));
	ck_assert_uint_eq(c.dow, 0x3e);
	ck_assert(!c.dom_star && !c.dow_star);

	/* N/step = N..max; 7 = Sunday = 0; blanks around */
	c = cron_ok("  30/10\t* * * 7 ");
	ck_assert(c.minute == ((1ULL << 30) | (1ULL << 40) | (1ULL << 50)));
	ck_assert_uint_eq(c.dow, 1);
	ck_assert(c.dom_star && !c.dow_star);

	cron_bad("", "expected 5 fields");
	cron_bad("* * * *", "expected 5 fields");
	cron_bad("* * * * * *", "got more");
	cron_bad("60 * * * *", "minute out of range");
	cron_bad("* 24 * * *", "hour out of range");
	cron_bad("* * 0 * *", "day of month out of range");
	cron_bad("* * 32 * *", "day of month out of range");
	cron_bad("* * * 13 *", "month out of range");
	cron_bad("* * * 0 *", "month out of range");
	cron_bad("* * * * 8", "day of week out of range");
	cron_bad("*/0 * * * *", "step of at least 1");
	cron_bad("5-1 * * * *", "range start after its end");
	cron_bad("1,,2 * * * *", "empty list item");
	cron_bad("1, * * * *", "empty list item");
	cron_bad("a * * * *", "expected a number");
	cron_bad("1-x * * * *", "after '-'");
	cron_bad("1x * * * *", "unexpected character");
	cron_bad("1000 * * * *", "expected a number");
	cron_bad("@hourly", "expected 5 fields");
	ck_assert_int_eq(mq_cron_parse(NULL, &c, NULL), -EINVAL);
}
END_TEST

START_TEST(test_cron_next)
{
	struct mq_cron c = cron_ok("0 */6 * * *");
	/* strictly after: from 06:00:00 the next is 12:00 */
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 12, 1, 6, 0, 0)), utc(2026, 12, 1, 12, 0, 0));
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 12, 1, 5, 59, 59)), utc(2026, 12, 1, 6, 0, 0));
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 12, 31, 23, 0, 0)), utc(2027, 1, 1, 0, 0, 0));

	c = cron_ok("* * * * *");
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 1, 1, 0, 0, 30)), utc(2026, 1, 1, 0, 1, 0));

	/* 29 February: next leap year */
	c = cron_ok("30 12 29 2 *");
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 3, 1, 0, 0, 0)), utc(2028, 2, 29, 12, 30, 0));
	/* never */
	c = cron_ok("0 0 31 2 *");
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 1, 1, 0, 0, 0)), -1);

	/* day of month OR day of week when both are restricted: the 13th or a
	 * Friday; 2026-12-01 is a Tuesday, the first Friday is the 4th */
	c = cron_ok("0 0 13 * 5");
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 12, 1, 0, 0, 0)), utc(2026, 12, 4, 0, 0, 0));
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 12, 11, 0, 0, 0)), utc(2026, 12, 13, 0, 0, 0));
	/* only day of week restricted: Sundays (7) */
	c = cron_ok("15 3 * * 7");
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 12, 1, 0, 0, 0)), utc(2026, 12, 6, 3, 15, 0));
	/* month restriction crossing a year */
	c = cron_ok("0 0 1 1,7 *");
	ck_assert_int_eq(mq_cron_next(&c, utc(2026, 7, 1, 0, 0, 0)), utc(2027, 1, 1, 0, 0, 0));
}
END_TEST

static struct mq_snap_schedule every(uint64_t s)
{
	return (struct mq_snap_schedule){ .every_s = s, .keep = 1, .live = true };
}

START_TEST(test_due_every)
{
	struct mq_snap_schedule s = every(6 * 3600);
	int64_t now = utc(2026, 12, 1, 12, 0, 0) * 1000;
	/* none yet: due at once */
	ck_assert_int_eq(mq_sched_due_at(&s, -1, now), now);
	/* last 1h ago: due in 5h */
	ck_assert_int_eq(mq_sched_due_at(&s, now - 3600000, now), now + 5 * 3600000LL);
	/* catch-up: last 3 days ago (12 missed slots): due in the past, so one
	 * snapshot now; once it is taken (last = now) the next is 6h later, not
	 * the next missed slot */
	int64_t due = mq_sched_due_at(&s, now - 3 * 86400000LL, now);
	ck_assert(due <= now);
	ck_assert_int_eq(mq_sched_due_at(&s, now, now), now + 6 * 3600000LL);
	/* a snapshot taken 300 ms late moves the next slot with it */
	ck_assert_int_eq(mq_sched_due_at(&s, now + 300, now + 300), now + 300 + 6 * 3600000LL);
	s = every(2);
	ck_assert_int_eq(mq_sched_due_at(&s, 10000, 10500), 12000);
}
END_TEST

START_TEST(test_due_cron)
{
	struct mq_snap_schedule s = { .cron = (char *)"0 */6 * * *", .keep = 2, .live = true };
	int64_t now = utc(2026, 12, 1, 13, 0, 0) * 1000;
	ck_assert_int_eq(mq_sched_due_at(&s, -1, now), now);
	/* last at 12:00:05: next slot 18:00 */
	ck_assert_int_eq(mq_sched_due_at(&s, utc(2026, 12, 1, 12, 0, 5) * 1000, now), utc(2026, 12, 1, 18, 0, 0) * 1000);
	/* last taken two days ago at 06:00: the 12:00 slot of that day is due
	 * (in the past), one catch-up; after it (last = now = 13:00) next is 18:00 */
	int64_t due = mq_sched_due_at(&s, utc(2026, 11, 29, 6, 0, 0) * 1000, now);
	ck_assert_int_eq(due, utc(2026, 11, 29, 12, 0, 0) * 1000);
	ck_assert(due <= now);
	ck_assert_int_eq(mq_sched_due_at(&s, now, now), utc(2026, 12, 1, 18, 0, 0) * 1000);
	/* a snapshot taken in the slot's minute (12:00:40) does not make the
	 * same slot due again */
	ck_assert_int_eq(mq_sched_due_at(&s, utc(2026, 12, 1, 12, 0, 40) * 1000 + 999, now),
			 utc(2026, 12, 1, 18, 0, 0) * 1000);
	/* unparsable (refused by validation anyway) */
	s.cron = (char *)"nope";
	ck_assert_int_eq(mq_sched_due_at(&s, 0, now), -1);
}
END_TEST

static void add(struct mq_snap_list *l, const char *name, int64_t at, enum mq_snap_origin o)
{
	l->items = xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
	memset(&l->items[l->n], 0, sizeof(l->items[l->n]));
	l->items[l->n].name = xstrdup(name);
	l->items[l->n].created_at = at;
	l->items[l->n].origin = o;
	l->n++;
}

static void list_free(struct mq_snap_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].name);
	free(l->items);
}

START_TEST(test_retention)
{
	struct mq_snap_list l = { 0 };
	/* scheduled ones out of order, with every other origin mixed in; some
	 * non-scheduled ones even carry an auto- name or are older */
	add(&l, "auto-3", 3000, MQ_SNAP_SCHEDULED);
	add(&l, "golden", 100, MQ_SNAP_DECLARED);
	add(&l, "auto-1", 1000, MQ_SNAP_SCHEDULED);
	add(&l, "mine", 50, MQ_SNAP_MANUAL);
	add(&l, "auto-0", 10, MQ_SNAP_EXTERNAL);
	add(&l, "pre-restore-1", 20, MQ_SNAP_PRE_RESTORE);
	add(&l, "auto-4", 4000, MQ_SNAP_SCHEDULED);
	add(&l, "auto-2", 2000, MQ_SNAP_SCHEDULED);
	add(&l, "pre-change-1", 30, MQ_SNAP_PRE_CHANGE);
	add(&l, "pre-change-2", 40, MQ_SNAP_PRE_CHANGE);

	struct mq_strv del = MQ_STRV_INIT;
	ck_assert_uint_eq(mq_sched_retention(&l, MQ_SNAP_SCHEDULED, 2, &del), 2);
	ck_assert_uint_eq(del.n, 2);
	ck_assert_str_eq(del.v[0], "auto-1");
	ck_assert_str_eq(del.v[1], "auto-2");
	mq_strv_clear(&del);
	/* keep >= count: nothing */
	ck_assert_uint_eq(mq_sched_retention(&l, MQ_SNAP_SCHEDULED, 4, &del), 0);
	ck_assert_uint_eq(mq_sched_retention(&l, MQ_SNAP_SCHEDULED, 9, &del), 0);
	ck_assert_uint_eq(del.n, 0);
	/* keep 1 leaves only the newest scheduled; nothing else is touched */
	ck_assert_uint_eq(mq_sched_retention(&l, MQ_SNAP_SCHEDULED, 1, &del), 3);
	for (size_t i = 0; i < del.n; i++)
		ck_assert_msg(strncmp(del.v[i], "auto-", 5) == 0 && strcmp(del.v[i], "auto-0") != 0 &&
				      strcmp(del.v[i], "auto-4") != 0,
			      "selected %s", del.v[i]);
	mq_strv_clear(&del);
	/* pre-change retention is separate */
	ck_assert_uint_eq(mq_sched_retention(&l, MQ_SNAP_PRE_CHANGE, 1, &del), 1);
	ck_assert_str_eq(del.v[0], "pre-change-1");
	mq_strv_clear(&del);
	/* same time: by name */
	add(&l, "auto-4b", 4000, MQ_SNAP_SCHEDULED);
	ck_assert_uint_eq(mq_sched_retention(&l, MQ_SNAP_SCHEDULED, 4, &del), 1);
	ck_assert_str_eq(del.v[0], "auto-1");
	mq_strv_clear(&del);
	/* last */
	ck_assert_int_eq(mq_sched_last(&l, MQ_SNAP_SCHEDULED), 4000);
	ck_assert_int_eq(mq_sched_last(&l, MQ_SNAP_PRE_CHANGE), 40);
	ck_assert_int_eq(mq_sched_last(&l, MQ_SNAP_MANUAL), 50);
	list_free(&l);
	struct mq_snap_list empty = { 0 };
	ck_assert_int_eq(mq_sched_last(&empty, MQ_SNAP_SCHEDULED), -1);
	ck_assert_int_eq(mq_sched_last(NULL, MQ_SNAP_SCHEDULED), -1);
	ck_assert_uint_eq(mq_sched_retention(&empty, MQ_SNAP_SCHEDULED, 1, &del), 0);
}
END_TEST

START_TEST(test_format_age)
{
	char b[32];
	mq_sched_format_age(-5, b, sizeof(b));
	ck_assert_str_eq(b, "0s");
	mq_sched_format_age(45999, b, sizeof(b));
	ck_assert_str_eq(b, "45s");
	mq_sched_format_age(6 * 60000 + 5000, b, sizeof(b));
	ck_assert_str_eq(b, "6m");
	mq_sched_format_age((6 * 3600 + 12 * 60) * 1000LL, b, sizeof(b));
	ck_assert_str_eq(b, "6h12m");
	mq_sched_format_age((3 * 86400 + 4 * 3600 + 59) * 1000LL, b, sizeof(b));
	ck_assert_str_eq(b, "3d4h");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("schedule");
	TCase *tc = tcase_create("cron");
	tcase_add_test(tc, test_cron_parse);
	tcase_add_test(tc, test_cron_next);
	suite_add_tcase(s, tc);
	tc = tcase_create("schedule");
	tcase_add_test(tc, test_due_every);
	tcase_add_test(tc, test_due_cron);
	tcase_add_test(tc, test_retention);
	tcase_add_test(tc, test_format_age);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
