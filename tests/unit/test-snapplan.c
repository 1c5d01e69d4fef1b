/* test-snapplan.c - reconciler/snapplan.c: the pure planning of declared
 * snapshots (named missing, scheduled due with the catch-up rule, live:
 * false while running) and maqet's snapshot names. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/snapplan.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

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
	l->items = NULL;
	l->n = 0;
}

#define H (3600 * 1000LL)

START_TEST(test_named)
{
	struct mq_snapshots d = { .named = MQ_STRV_INIT };
	mq_strv_push(&d.named, "golden");
	mq_strv_push(&d.named, "base");
	struct mq_snap_list l = { 0 };
	add(&l, "base", 5, MQ_SNAP_EXTERNAL); /* made outside maqet: it exists, that is enough */
	struct mq_snap_plan_in in = { &d, &l, false, 100 * H };
	struct mq_snap_acts a = { 0 };
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_int_eq(a.v[0].kind, MQ_SNAPACT_NAMED);
	ck_assert_str_eq(a.v[0].name, "golden");
	ck_assert_str_eq(a.v[0].reason, "named snapshot 'golden' missing");
	mq_snap_acts_release(&a);
	/* nothing listed yet (new vm): both missing */
	in.list = NULL;
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 2);
	mq_snap_acts_release(&a);
	/* no declaration: nothing */
	in.decl = NULL;
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 0);
	list_free(&l);
	mq_strv_clear(&d.named);
}
END_TEST

START_TEST(test_scheduled)
{
	struct mq_snap_schedule sc = { .every_s = 6 * 3600, .keep = 2, .live = true };
	struct mq_snapshots d = { .named = MQ_STRV_INIT, .schedule = &sc };
	struct mq_snap_list l = { 0 };
	int64_t now = 1000 * H;
	struct mq_snap_plan_in in = { &d, &l, false, now };
	struct mq_snap_acts a = { 0 };
	/* none yet */
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_int_eq(a.v[0].kind, MQ_SNAPACT_SCHEDULED);
	ck_assert_ptr_null(a.v[0].name);
	ck_assert_str_eq(a.v[0].reason, "scheduled snapshot due (none yet)");
	mq_snap_acts_release(&a);
	/* a manual / pre-restore / external one does not count as the last
	 * scheduled one */
	add(&l, "mine", now - 60000, MQ_SNAP_MANUAL);
	add(&l, "pre-restore-x", now - 60000, MQ_SNAP_PRE_RESTORE);
	add(&l, "auto-ext", now - 60000, MQ_SNAP_EXTERNAL);
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_str_eq(a.v[0].reason, "scheduled snapshot due (none yet)");
	mq_snap_acts_release(&a);
	/* last 6h12m ago: due */
	add(&l, "auto-a", now - 6 * H - 12 * 60000, MQ_SNAP_SCHEDULED);
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_str_eq(a.v[0].reason, "scheduled snapshot due (last 6h12m ago)");
	mq_snap_acts_release(&a);
	ck_assert_int_eq(mq_snap_next_due(&d, &l, false, now), now - 12 * 60000);
	/* catch-up: a week without snapshots is still one action */
	list_free(&l);
	add(&l, "auto-old", now - 7 * 24 * H, MQ_SNAP_SCHEDULED);
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_str_eq(a.v[0].reason, "scheduled snapshot due (last 7d0h ago)");
	mq_snap_acts_release(&a);
	/* last 1h ago: not due; next in 5h */
	add(&l, "auto-b", now - H, MQ_SNAP_SCHEDULED);
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 0);
	ck_assert_int_eq(mq_snap_next_due(&d, &l, false, now), now + 5 * H);
	/* live: false skips while running, not while stopped */
	list_free(&l);
	sc.live = false;
	in.running = true;
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 0);
	ck_assert_int_eq(mq_snap_next_due(&d, &l, true, now), -1);
	in.running = false;
	mq_snap_plan_vm(&in, &a);
	ck_assert_uint_eq(a.n, 1);
	mq_snap_acts_release(&a);
	/* no schedule */
	ck_assert_int_eq(mq_snap_next_due(NULL, &l, false, now), -1);
	d.schedule = NULL;
	ck_assert_int_eq(mq_snap_next_due(&d, &l, false, now), -1);
}
END_TEST

START_TEST(test_time_name)
{
	/* 2026-12-01T12:00:00Z = 1796126400 */
	/* maqet's names come from the snapshot library's mq_snap_auto_name */
	char *n = mq_snap_auto_name("auto-", 1796126400000LL);
	ck_assert_str_eq(n, "auto-20261201T120000Z");
	free(n);
	n = mq_snap_auto_name("pre-change-", 1796126400042LL);
	ck_assert_str_eq(n, "pre-change-20261201T120000.042Z");
	ck_assert(mq_snapshot_name_ok(n));
	ck_assert_str_eq(mq_snapshot_reserved_prefix(n), "pre-change-");
	free(n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("snapplan");
	TCase *tc = tcase_create("plan");
	tcase_add_test(tc, test_named);
	tcase_add_test(tc, test_scheduled);
	tcase_add_test(tc, test_time_name);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
