/* Unit tests for reconciler/plan: the desired x actual -> action table,
 * liveness-based observation, and whole-plan building (reasons, changed
 * fields, prune scoping and its guard). */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/lease.h"
#include "reconciler/plan.h"
#include "reconciler/proc.h"
#include "specs/spec.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

/* --- the decision table --------------------------------------------------- */

struct row {
	bool declared, recorded, want_running, up, held, restart_changed, other_changed, prune;
	enum mq_action want;
};

#define T true
#define F false
static const struct row table[] = {
	/* decl rec  run  up   held rchg ochg prune -> action */
	{ T, F, T, F, F, F, F, F, MQ_ACT_CREATE },
	{ T, F, F, F, F, F, F, F, MQ_ACT_CREATE },   /* recorded only; started later */
	{ T, T, T, T, F, F, F, F, MQ_ACT_NOOP },     /* converged */
	{ T, T, T, F, F, F, F, F, MQ_ACT_START },    /* stopped/crashed/failed -> start */
	{ T, T, T, F, F, T, F, F, MQ_ACT_START },    /* changed while down: start with new spec */
	{ T, T, T, T, F, T, F, F, MQ_ACT_RESTART },  /* argv change while up */
	{ T, T, T, T, F, T, T, F, MQ_ACT_RESTART },
	{ T, T, T, T, F, F, T, F, MQ_ACT_UPDATE },   /* restart/stop_timeout/depends_on only */
	{ T, T, F, T, F, F, T, F, MQ_ACT_STOP },     /* state: stopped while up */
	{ T, T, F, T, F, T, T, F, MQ_ACT_STOP },
	{ T, T, F, F, F, F, F, F, MQ_ACT_NOOP },     /* stopped and meant to be */
	{ T, T, F, F, F, T, F, F, MQ_ACT_UPDATE },   /* change recorded, stays stopped */
	{ T, T, T, F, T, F, F, F, MQ_ACT_NOOP },     /* held: never started by a reconcile */
	{ T, T, T, F, T, T, F, F, MQ_ACT_UPDATE },   /* held: change recorded only */
	{ T, T, T, T, T, T, F, F, MQ_ACT_UPDATE },   /* held and (somehow) up: never restarted */
	{ F, T, T, T, F, F, F, F, MQ_ACT_NOOP },     /* undeclared without --prune */
	{ F, T, T, T, F, F, F, T, MQ_ACT_DELETE },   /* undeclared with --prune */
	{ F, T, F, F, T, F, F, T, MQ_ACT_DELETE },   /* prune ignores hold */
	{ F, F, F, F, F, F, F, T, MQ_ACT_NOOP },
};
#undef T
#undef F

START_TEST(test_decide_table)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const struct row *r = &table[i];
		struct mq_decide_in in = {
			.declared = r->declared, .recorded = r->recorded, .want_running = r->want_running,
			.up = r->up, .held = r->held, .restart_changed = r->restart_changed,
			.other_changed = r->other_changed, .prune = r->prune,
		};
		enum mq_action got = mq_plan_decide(&in);
		ck_assert_msg(got == r->want, "row %zu: got %s, want %s", i, mq_action_str(got), mq_action_str(r->want));
	}
}
END_TEST

START_TEST(test_decide_blocked)
{
	/* blocked only matters for a declared, recorded, down vm meant to run */
	struct mq_decide_in in = { .declared = true, .recorded = true, .want_running = true, .blocked = true };
	ck_assert_int_eq(mq_plan_decide(&in), MQ_ACT_NOOP);
	in.blocked = false;
	ck_assert_int_eq(mq_plan_decide(&in), MQ_ACT_START);
	in.blocked = true;
	in.up = true;
	in.restart_changed = true;
	ck_assert_int_eq(mq_plan_decide(&in), MQ_ACT_RESTART);
	in.up = false;
	in.want_running = false;
	in.restart_changed = false;
	ck_assert_int_eq(mq_plan_decide(&in), MQ_ACT_NOOP);
}
END_TEST

START_TEST(test_decide_paused)
{
	/* a paused vm is left alone whatever changed or is desired */
	struct mq_decide_in in = { .declared = true, .recorded = true, .want_running = true, .up = true,
				   .paused = true, .restart_changed = true };
	ck_assert_int_eq(mq_plan_decide(&in), MQ_ACT_NOOP);
	in.restart_changed = false;
	in.other_changed = true;
	ck_assert_int_eq(mq_plan_decide(&in), MQ_ACT_NOOP);
	in.want_running = false; /* desired stopped: still paused until resume */
	ck_assert_int_eq(mq_plan_decide(&in), MQ_ACT_NOOP);
	in.paused = false;
	ck_assert_int_eq(mq_plan_decide(&in), MQ_ACT_STOP);
}
END_TEST

START_TEST(test_action_names)
{
	ck_assert_str_eq(mq_action_str(MQ_ACT_CREATE), "create");
	ck_assert_str_eq(mq_action_str(MQ_ACT_RESTART), "restart");
	ck_assert_str_eq(mq_action_symbol(MQ_ACT_CREATE), "+");
	ck_assert_str_eq(mq_action_symbol(MQ_ACT_DELETE), "-");
	ck_assert_str_eq(mq_action_symbol(MQ_ACT_UPDATE), "~");
}
END_TEST

/* --- observation through liveness ------------------------------------------ */

static struct mq_vm_record *rec_with(const char *name, const char *status, pid_t pid, uint64_t st)
{
	struct mq_vm_record *r = mq_vm_record_new();
	mq_vm_record_set(&r->name, name);
	mq_vm_record_set(&r->status, status);
	mq_vm_record_set(&r->source, "/src");
	mq_vm_record_set(&r->desired, "running");
	r->pid = pid;
	r->start_time = st;
	return r;
}

START_TEST(test_observe_live_dead_reused)
{
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	uint64_t st = 0;
	char state = 0;
	ck_assert_int_eq(mq_proc_stat(child, &st, &state), 0);

	struct mq_vm_record *r = rec_with("a", MQ_STATUS_RUNNING, child, st);
	ck_assert_str_eq(mq_observe(r), MQ_STATUS_RUNNING);

	/* same pid, other start time: someone else's process -> crashed */
	struct mq_vm_record *reused = rec_with("b", MQ_STATUS_RUNNING, child, st + 12345);
	ck_assert_str_eq(mq_observe(reused), MQ_STATUS_CRASHED);

	/* recorded stopped stays stopped regardless of pid */
	struct mq_vm_record *stopped = rec_with("c", MQ_STATUS_STOPPED, 0, 0);
	ck_assert_str_eq(mq_observe(stopped), MQ_STATUS_STOPPED);

	/* running without pid */
	struct mq_vm_record *nopid = rec_with("d", MQ_STATUS_RUNNING, 0, 0);
	ck_assert_str_eq(mq_observe(nopid), MQ_STATUS_CRASHED);

	/* kill it but do not reap: a zombie counts as dead */
	kill(child, SIGKILL);
	struct mq_pidref ref = { child, st };
	ck_assert_int_eq(mq_proc_wait_exit(&ref, 5000), 0);
	/* mq_proc_wait_exit reaps our child; either way it is gone now */
	ck_assert_str_eq(mq_observe(r), MQ_STATUS_CRASHED);
	waitpid(child, NULL, WNOHANG);

	mq_vm_record_free(r);
	mq_vm_record_free(reused);
	mq_vm_record_free(stopped);
	mq_vm_record_free(nopid);
}
END_TEST

START_TEST(test_observe_zombie)
{
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	uint64_t st = 0;
	ck_assert_int_eq(mq_proc_stat(child, &st, NULL), 0);
	struct mq_vm_record *r = rec_with("z", MQ_STATUS_RUNNING, child, st);
	kill(child, SIGKILL);
	/* wait until it is a zombie (not reaped) with a deadline */
	char state = 0;
	int64_t deadline = mq_mono_ms() + 5000;
	while (mq_mono_ms() < deadline) {
		if (mq_proc_stat(child, NULL, &state) == 0 && state == 'Z')
			break;
		usleep(1000);
	}
	ck_assert_int_eq(state, 'Z');
	ck_assert_str_eq(mq_observe(r), MQ_STATUS_CRASHED);
	waitpid(child, NULL, 0);
	mq_vm_record_free(r);
}
END_TEST

/* --- building plans from specs and records ---------------------------------- */

static struct mq_specset *parse(const char *yaml, const char *source)
{
	struct mq_specset *set = mq_specset_new();
	struct mq_strv diags = MQ_STRV_INIT;
	int rc = mq_spec_parse_buffer(yaml, strlen(yaml), "t.yaml", "/tmp", source, set, &diags);
	ck_assert_msg(rc == 0, "parse failed: %s", diags.n ? diags.v[0] : "?");
	ck_assert_int_eq(mq_specset_check(set, &diags), 0);
	mq_strv_push(&set->sources, source);
	mq_strv_clear(&diags);
	return set;
}

static struct mq_vm_record *rec_from_spec(const struct mq_spec *s, const char *status)
{
	struct mq_vm_record *r = rec_with(s->name, status, 0, 0);
	mq_vm_record_set(&r->source, s->source);
	mq_vm_record_set(&r->spec_json, s->canonical);
	mq_vm_record_set(&r->spec_hash, s->hash);
	mq_vm_record_set(&r->desired, mq_desired_str(s->state));
	return r;
}

static const struct mq_plan_item *item(const struct mq_plan *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return &p->items[i];
	return NULL;
}

START_TEST(test_build_paused)
{
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	uint64_t st = 0;
	ck_assert_int_eq(mq_proc_stat(child, &st, NULL), 0);
	struct mq_specset *old = parse("name: a\nmemory: 64M\n---\nname: b\nmemory: 64M\n", "/src");
	struct mq_specset *now = parse("name: a\nmemory: 128M\n---\nname: b\nmemory: 64M\n", "/src");
	struct mq_vm_record *recs[2];
	recs[0] = rec_from_spec(mq_specset_find(old, "a"), "paused");
	recs[1] = rec_from_spec(mq_specset_find(old, "b"), "paused");
	for (int i = 0; i < 2; i++) {
		recs[i]->pid = child;
		recs[i]->start_time = st;
	}
	struct mq_plan *p = NULL;
	ck_assert_int_eq(mq_plan_build(now, recs, 2, NULL, &p, NULL), 0);
	const struct mq_plan_item *a = item(p, "a"), *b = item(p, "b");
	ck_assert_int_eq(a->action, MQ_ACT_NOOP);
	ck_assert_str_eq(a->observed, "paused");
	ck_assert_str_eq(a->reason, "paused (maqet resume a); changed: memory, applied after resume");
	ck_assert_int_eq(b->action, MQ_ACT_NOOP);
	ck_assert_str_eq(b->reason, "paused (maqet resume b)");
	ck_assert_uint_eq(mq_plan_changes(p), 0);
	mq_plan_free(p);
	for (int i = 0; i < 2; i++)
		mq_vm_record_free(recs[i]);
	mq_specset_free(old);
	mq_specset_free(now);
	kill(child, SIGKILL);
}
END_TEST

START_TEST(test_build_changes_and_reasons)
{
	struct mq_specset *old = parse("name: a\nmemory: 64M\n---\nname: b\nmemory: 64M\nstate: stopped\n"
				       "---\nname: c\nmemory: 64M\n---\nname: d\nmemory: 64M\n",
				       "/src");
	struct mq_specset *now = parse("name: a\nmemory: 128M\n---\nname: b\nmemory: 64M\nstate: stopped\n"
				       "---\nname: c\nmemory: 64M\nstop_timeout: 5s\n---\nname: d\nmemory: 64M\n"
				       "---\nname: e\n",
				       "/src");
	struct mq_vm_record *recs[4];
	recs[0] = rec_from_spec(mq_specset_find(old, "a"), MQ_STATUS_STOPPED);
	recs[1] = rec_from_spec(mq_specset_find(old, "b"), MQ_STATUS_STOPPED);
	recs[2] = rec_from_spec(mq_specset_find(old, "c"), MQ_STATUS_STOPPED);
	recs[3] = rec_from_spec(mq_specset_find(old, "d"), MQ_STATUS_STOPPED);
	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { 0 };
	ck_assert_int_eq(mq_plan_build(now, recs, 4, &po, &p, NULL), 0);
	ck_assert_uint_eq(p->n, 5);

	const struct mq_plan_item *a = item(p, "a");
	ck_assert_int_eq(a->action, MQ_ACT_START); /* down + changed -> start with new spec */
	ck_assert(mq_strv_contains(&a->changed, "memory"));
	ck_assert_ptr_nonnull(strstr(a->reason, "memory"));

	ck_assert_int_eq(item(p, "b")->action, MQ_ACT_NOOP);
	const struct mq_plan_item *c = item(p, "c");
	ck_assert_int_eq(c->action, MQ_ACT_START);
	ck_assert(mq_strv_contains(&c->changed, "stop_timeout"));
	ck_assert_int_eq(item(p, "d")->action, MQ_ACT_START);
	ck_assert_int_eq(item(p, "e")->action, MQ_ACT_CREATE);
	ck_assert_uint_eq(p->counts[MQ_ACT_START], 3);
	ck_assert_uint_eq(mq_plan_changes(p), 4);
	mq_plan_free(p);
	for (int i = 0; i < 4; i++)
		mq_vm_record_free(recs[i]);
	mq_specset_free(old);
	mq_specset_free(now);
}
END_TEST

START_TEST(test_build_running_restart_vs_update)
{
	/* a live process (this test's child) stands in for QEMU */
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	uint64_t st = 0;
	ck_assert_int_eq(mq_proc_stat(child, &st, NULL), 0);
	struct mq_specset *old = parse("name: a\nmemory: 64M\n---\nname: b\nmemory: 64M\n---\nname: c\n", "/src");
	struct mq_specset *now = parse("name: a\nmemory: 96M\n---\nname: b\nmemory: 64M\nrestart: always\n"
				       "---\nname: c\nstate: stopped\n",
				       "/src");
	struct mq_vm_record *recs[3];
	const char *names[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		recs[i] = rec_from_spec(mq_specset_find(old, names[i]), MQ_STATUS_RUNNING);
		recs[i]->pid = child;
		recs[i]->start_time = st;
	}
	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { 0 };
	ck_assert_int_eq(mq_plan_build(now, recs, 3, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "a")->action, MQ_ACT_RESTART);
	ck_assert_int_eq(item(p, "b")->action, MQ_ACT_UPDATE);
	ck_assert_ptr_nonnull(strstr(item(p, "b")->reason, "no restart needed"));
	ck_assert_int_eq(item(p, "c")->action, MQ_ACT_STOP);
	mq_plan_free(p);

	/* hold: a held running vm with a change is only recorded */
	recs[0]->hold = true;
	ck_assert_int_eq(mq_plan_build(now, recs, 3, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "a")->action, MQ_ACT_UPDATE);
	ck_assert(item(p, "a")->held);
	mq_plan_free(p);

	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	for (int i = 0; i < 3; i++)
		mq_vm_record_free(recs[i]);
	mq_specset_free(old);
	mq_specset_free(now);
}
END_TEST

/* A changed key whose value was written in a shared base: the reason names
 * the base (spec.h origin_keys/origin_files, filled by the loader). */
START_TEST(test_build_reason_names_base)
{
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	uint64_t st = 0;
	ck_assert_int_eq(mq_proc_stat(child, &st, NULL), 0);
	struct mq_specset *old = parse("name: a\nmemory: 64M\n---\nname: b\n---\nname: c\nmemory: 64M\n", "/src");
	struct mq_specset *now = parse("name: a\nmemory: 96M\n---\nname: b\nrestart: always\n---\nname: c\n"
				       "memory: 96M\n",
				       "/src");
	struct mq_spec *sa = (struct mq_spec *)mq_specset_find(now, "a");
	mq_strv_push(&sa->origin_keys, "memory");
	mq_strv_push(&sa->origin_files, "vms/_bases/small.yaml");
	struct mq_spec *sb = (struct mq_spec *)mq_specset_find(now, "b");
	mq_strv_push(&sb->origin_keys, "restart");
	mq_strv_push(&sb->origin_files, "vms/_bases/policy.yaml");
	struct mq_vm_record *recs[3];
	const char *names[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		recs[i] = rec_from_spec(mq_specset_find(old, names[i]), MQ_STATUS_RUNNING);
		recs[i]->pid = child;
		recs[i]->start_time = st;
	}
	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { 0 };
	ck_assert_int_eq(mq_plan_build(now, recs, 3, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "a")->action, MQ_ACT_RESTART);
	ck_assert_str_eq(item(p, "a")->reason, "changed: memory (needs restart; from vms/_bases/small.yaml)");
	ck_assert_int_eq(item(p, "b")->action, MQ_ACT_UPDATE);
	ck_assert_str_eq(item(p, "b")->reason, "changed: restart (no restart needed; from vms/_bases/policy.yaml)");
	/* written in the manifest itself: no base named */
	ck_assert_str_eq(item(p, "c")->reason, "changed: memory (needs restart)");
	mq_plan_free(p);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	/* down: start, with the base after the reason */
	for (int i = 0; i < 3; i++) {
		recs[i]->pid = 0;
		mq_vm_record_set(&recs[i]->status, MQ_STATUS_STOPPED);
	}
	ck_assert_int_eq(mq_plan_build(now, recs, 3, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "a")->action, MQ_ACT_START);
	ck_assert_ptr_nonnull(strstr(item(p, "a")->reason, "changed: memory (from vms/_bases/small.yaml)"));
	mq_plan_free(p);
	for (int i = 0; i < 3; i++)
		mq_vm_record_free(recs[i]);
	mq_specset_free(old);
	mq_specset_free(now);
}
END_TEST

START_TEST(test_build_prune_scope_and_guard)
{
	struct mq_specset *now = parse("name: keep\n", "/src");
	struct mq_specset *old = parse("name: keep\n---\nname: gone\n", "/src");
	struct mq_specset *other = parse("name: foreign\n", "/other");
	struct mq_vm_record *recs[3];
	recs[0] = rec_from_spec(mq_specset_find(old, "gone"), MQ_STATUS_STOPPED);
	recs[1] = rec_from_spec(mq_specset_find(old, "keep"), MQ_STATUS_STOPPED);
	recs[2] = rec_from_spec(mq_specset_find(other, "foreign"), MQ_STATUS_STOPPED);

	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { .prune = false };
	ck_assert_int_eq(mq_plan_build(now, recs, 3, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "gone")->action, MQ_ACT_NOOP);
	ck_assert_ptr_nonnull(strstr(item(p, "gone")->reason, "--prune"));
	ck_assert_ptr_null(item(p, "foreign")); /* another source's vm is not even listed */
	mq_plan_free(p);

	po.prune = true;
	ck_assert_int_eq(mq_plan_build(now, recs, 3, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "gone")->action, MQ_ACT_DELETE);
	ck_assert_int_eq(item(p, "keep")->action, MQ_ACT_START);
	ck_assert_ptr_null(item(p, "foreign"));
	mq_plan_free(p);

	/* pruning everything of a source needs allow_empty */
	struct mq_specset *empty = mq_specset_new();
	mq_strv_push(&empty->sources, "/src");
	struct mq_error *err = NULL;
	p = NULL;
	ck_assert_int_eq(mq_plan_build(empty, recs, 3, &po, &p, &err), -EPERM);
	ck_assert_ptr_null(p);
	ck_assert_ptr_nonnull(strstr(err->msg, "--allow-empty"));
	err = mq_error_free(err);
	po.allow_empty = true;
	ck_assert_int_eq(mq_plan_build(empty, recs, 3, &po, &p, &err), 0);
	ck_assert_uint_eq(p->counts[MQ_ACT_DELETE], 2);
	ck_assert_ptr_null(item(p, "foreign"));
	mq_plan_free(p);

	for (int i = 0; i < 3; i++)
		mq_vm_record_free(recs[i]);
	mq_specset_free(now);
	mq_specset_free(old);
	mq_specset_free(other);
	mq_specset_free(empty);
}
END_TEST

/* Records no spec declares are found by marking (not a scan of the set per
 * record) and listed after the specs in the caller's record order. */
START_TEST(test_build_undeclared_records_in_caller_order)
{
	struct mq_specset *now = parse("name: b\n", "/src");
	struct mq_specset *old = parse("name: z\n---\nname: b\n---\nname: a\n", "/src");
	struct mq_vm_record *recs[3];
	recs[0] = rec_from_spec(mq_specset_find(old, "z"), MQ_STATUS_STOPPED);
	recs[1] = rec_from_spec(mq_specset_find(old, "b"), MQ_STATUS_STOPPED);
	recs[2] = rec_from_spec(mq_specset_find(old, "a"), MQ_STATUS_STOPPED);
	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { .prune = true };
	ck_assert_int_eq(mq_plan_build(now, recs, 3, &po, &p, NULL), 0);
	ck_assert_uint_eq(p->n, 3);
	ck_assert_str_eq(p->items[0].name, "b");
	ck_assert_int_eq(p->items[0].action, MQ_ACT_START);
	ck_assert_str_eq(p->items[1].name, "z");
	ck_assert_int_eq(p->items[1].action, MQ_ACT_DELETE);
	ck_assert_str_eq(p->items[2].name, "a");
	ck_assert_int_eq(p->items[2].action, MQ_ACT_DELETE);
	mq_plan_free(p);
	for (int i = 0; i < 3; i++)
		mq_vm_record_free(recs[i]);
	mq_specset_free(now);
	mq_specset_free(old);
}
END_TEST

START_TEST(test_build_idempotent)
{
	struct mq_specset *now = parse("name: a\n# comment\nmemory: 1G\ncpu: 2\n", "/src");
	struct mq_specset *reordered = parse("cpu: \"2\"\nmemory: 1024\nname: a\n", "/src");
	struct mq_vm_record *r = rec_from_spec(mq_specset_find(now, "a"), MQ_STATUS_STOPPED);
	mq_vm_record_set(&r->desired, "stopped");
	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { 0 };
	/* same spec, different formatting: only the observed state matters */
	ck_assert_int_eq(mq_plan_build(reordered, &r, 1, &po, &p, NULL), 0);
	ck_assert_uint_eq(p->items[0].changed.n, 0);
	mq_plan_free(p);
	mq_vm_record_free(r);
	mq_specset_free(now);
	mq_specset_free(reordered);
}
END_TEST

START_TEST(test_build_restart_policy)
{
	struct mq_specset *set = parse("name: g\n---\nname: ga\nrestart: always\n---\nname: cl\n---\n"
				       "name: nv\nrestart: never\n---\nname: bo\n",
				       "/src");
	struct mq_vm_record *recs[5];
	recs[0] = rec_from_spec(mq_specset_find(set, "g"), MQ_STATUS_GUEST_STOPPED);
	recs[1] = rec_from_spec(mq_specset_find(set, "ga"), MQ_STATUS_GUEST_STOPPED);
	recs[2] = rec_from_spec(mq_specset_find(set, "cl"), MQ_STATUS_CRASH_LOOP);
	recs[2]->restart_count = 10;
	recs[3] = rec_from_spec(mq_specset_find(set, "nv"), MQ_STATUS_CRASHED);
	recs[4] = rec_from_spec(mq_specset_find(set, "bo"), MQ_STATUS_CRASHED);
	recs[4]->backoff_until = 1000000 + 4000;
	recs[4]->restart_count = 3;

	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { .now_ms = 1000000 };
	/* CLI apply: guest-stopped and crash-loop stay down; crashes are converged */
	ck_assert_int_eq(mq_plan_build(set, recs, 5, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "g")->action, MQ_ACT_NOOP);
	ck_assert_ptr_nonnull(strstr(item(p, "g")->reason, "stopped by guest"));
	ck_assert_int_eq(item(p, "ga")->action, MQ_ACT_START);
	ck_assert_int_eq(item(p, "cl")->action, MQ_ACT_NOOP);
	ck_assert_ptr_nonnull(strstr(item(p, "cl")->reason, "crash-loop after 10 failures"));
	ck_assert_int_eq(item(p, "nv")->action, MQ_ACT_START);
	ck_assert_int_eq(item(p, "bo")->action, MQ_ACT_START);
	mq_plan_free(p);

	/* watch: restart: never and backoff are honoured too */
	po.supervise = true;
	ck_assert_int_eq(mq_plan_build(set, recs, 5, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "nv")->action, MQ_ACT_NOOP);
	ck_assert_ptr_nonnull(strstr(item(p, "nv")->reason, "restart: never"));
	ck_assert_int_eq(item(p, "bo")->action, MQ_ACT_NOOP);
	ck_assert_int_eq(item(p, "bo")->wake_at, 1004000);
	ck_assert_ptr_nonnull(strstr(item(p, "bo")->reason, "backoff"));
	mq_plan_free(p);
	po.now_ms = 1004000; /* backoff over */
	ck_assert_int_eq(mq_plan_build(set, recs, 5, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "bo")->action, MQ_ACT_START);
	mq_plan_free(p);

	/* a manifest change lifts every block */
	struct mq_specset *changed = parse("name: g\nmemory: 64M\n---\nname: ga\nrestart: always\n---\n"
					   "name: cl\nmemory: 64M\n---\nname: nv\nrestart: never\nmemory: 64M\n"
					   "---\nname: bo\n",
					   "/src");
	po.now_ms = 1000000;
	ck_assert_int_eq(mq_plan_build(changed, recs, 5, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "g")->action, MQ_ACT_START);
	ck_assert_int_eq(item(p, "cl")->action, MQ_ACT_START);
	ck_assert_int_eq(item(p, "nv")->action, MQ_ACT_START);
	mq_plan_free(p);
	for (int i = 0; i < 5; i++)
		mq_vm_record_free(recs[i]);
	mq_specset_free(set);
	mq_specset_free(changed);
}
END_TEST

/* before_change rollback: the refused spec (its hash in the record) is a
 * blocked no-op until the manifest changes again; snapshots: alone is an
 * update, never a restart. */
START_TEST(test_build_rolled_back)
{
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	uint64_t st = 0;
	ck_assert_int_eq(mq_proc_stat(child, &st, NULL), 0);
	struct mq_specset *good = parse("name: a\nmemory: 64M\n", "/src");
	struct mq_specset *bad = parse("name: a\nmemory: 64M\nargs: [-bad]\n", "/src");
	struct mq_specset *other = parse("name: a\nmemory: 96M\n", "/src");
	struct mq_specset *snaps = parse("name: a\nmemory: 64M\nstorage: [{name: d, size: 1M}]\n"
					 "snapshots: {named: [g]}\n", "/src");
	struct mq_specset *nosnaps = parse("name: a\nmemory: 64M\nstorage: [{name: d, size: 1M}]\n", "/src");
	struct mq_vm_record *r = rec_from_spec(mq_specset_find(good, "a"), MQ_STATUS_RUNNING);
	r->pid = child;
	r->start_time = st;
	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { 0 };
	/* without a rollback mark: a restart */
	ck_assert_int_eq(mq_plan_build(bad, &r, 1, &po, &p, NULL), 0);
	ck_assert_int_eq(p->items[0].action, MQ_ACT_RESTART);
	mq_plan_free(p);
	/* rolled back from exactly this spec: no-op, blocked, with the reason */
	mq_vm_record_set(&r->rolled_back_hash, mq_specset_find(bad, "a")->hash);
	mq_vm_record_set(&r->rolled_back_reason, "rolled back to snapshot 'pre-change-x': qemu exited");
	ck_assert_int_eq(mq_plan_build(bad, &r, 1, &po, &p, NULL), 0);
	ck_assert_int_eq(p->items[0].action, MQ_ACT_NOOP);
	ck_assert(p->items[0].blocked);
	ck_assert_str_eq(p->items[0].reason, "rolled-back: rolled back to snapshot 'pre-change-x': qemu exited; "
					     "change the manifest to try again");
	ck_assert_uint_eq(mq_plan_changes(p), 0);
	mq_plan_free(p);
	/* the manifest changed again: tried normally */
	ck_assert_int_eq(mq_plan_build(other, &r, 1, &po, &p, NULL), 0);
	ck_assert_int_eq(p->items[0].action, MQ_ACT_RESTART);
	mq_plan_free(p);
	mq_vm_record_free(r);

	/* adding or changing snapshots: on a running vm is record-only */
	r = rec_from_spec(mq_specset_find(nosnaps, "a"), MQ_STATUS_RUNNING);
	r->pid = child;
	r->start_time = st;
	ck_assert_int_eq(mq_plan_build(snaps, &r, 1, &po, &p, NULL), 0);
	ck_assert_int_eq(p->items[0].action, MQ_ACT_UPDATE);
	ck_assert(mq_strv_contains(&p->items[0].changed, "snapshots"));
	mq_plan_free(p);
	mq_vm_record_free(r);

	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	mq_specset_free(good);
	mq_specset_free(bad);
	mq_specset_free(other);
	mq_specset_free(snaps);
	mq_specset_free(nosnaps);
}
END_TEST

/* Issue 7: one owner per VM name, and interrupted starts/stops. */
START_TEST(test_build_owner_and_interrupted)
{
	struct mq_specset *a = parse("name: db\nmemory: 64M\n---\nname: s\n---\nname: t\n", "/lab-a");
	struct mq_specset *b = parse("name: db\nmemory: 96M\n", "/lab-b");
	struct mq_vm_record *recs[3];
	recs[0] = rec_from_spec(mq_specset_find(a, "db"), MQ_STATUS_STOPPED);
	recs[0]->updated_at = 1;
	/* a record left in starting without a pid (killed before it was recorded) */
	recs[1] = rec_from_spec(mq_specset_find(a, "s"), MQ_STATUS_STARTING);
	/* one left in stopping whose process is this test (alive) */
	recs[2] = rec_from_spec(mq_specset_find(a, "t"), MQ_STATUS_STOPPING);
	recs[2]->pid = getpid();
	ck_assert_int_eq(mq_proc_stat(getpid(), &recs[2]->start_time, NULL), 0);
	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { 0 };
	ck_assert_int_eq(mq_plan_build(b, recs, 3, &po, &p, NULL), 0);
	const struct mq_plan_item *db = item(p, "db");
	ck_assert(db->conflict);
	ck_assert_int_eq(db->action, MQ_ACT_NOOP);
	ck_assert_str_eq(db->owner, "/lab-a");
	ck_assert_msg(strstr(db->reason, "vm 'db' belongs to source '/lab-a' (last applied ") &&
			      strstr(db->reason, "); use --adopt to move it"),
		      "%s", db->reason);
	ck_assert_uint_eq(p->conflicts, 1);
	mq_plan_free(p);
	po.adopt = true;
	ck_assert_int_eq(mq_plan_build(b, recs, 3, &po, &p, NULL), 0);
	db = item(p, "db");
	ck_assert(!db->conflict);
	ck_assert_int_eq(db->action, MQ_ACT_START); /* down, changed: started with lab-b's spec */
	ck_assert_ptr_nonnull(strstr(db->reason, "moved from source '/lab-a' (--adopt)"));
	ck_assert_uint_eq(p->conflicts, 0);
	mq_plan_free(p);

	po.adopt = false;
	ck_assert_int_eq(mq_plan_build(a, recs, 3, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "s")->action, MQ_ACT_START);
	ck_assert_ptr_nonnull(strstr(item(p, "s")->reason, "an interrupted start"));
	ck_assert_int_eq(item(p, "t")->action, MQ_ACT_RESTART);
	ck_assert_ptr_nonnull(strstr(item(p, "t")->reason, "an interrupted stop"));
	mq_plan_free(p);
	for (int i = 0; i < 3; i++)
		mq_vm_record_free(recs[i]);
	mq_specset_free(a);
	mq_specset_free(b);
}
END_TEST

/* --host: vms placed elsewhere are left out (away), one recorded here is a
 * move (delete, moving_to); a start whose disk lease is held waits. */
START_TEST(test_build_placement)
{
	char dir[] = "/tmp/mq-plan-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *yaml = xasprintf("name: a\nplacement: {host: h1}\n---\nname: b\nplacement: {host: h2}\n---\nname: c\n"
			       "---\nname: d\nplacement: {host: h2}\n---\nname: e\nplacement: {host: h1}\n"
			       "storage: [{name: r, type: raw, file: %s/e.img}]\n",
			       dir);
	struct mq_specset *set = parse(yaml, "/src");
	struct mq_vm_record *recs[1] = { rec_from_spec(mq_specset_find(set, "d"), MQ_STATUS_STOPPED) };
	struct mq_plan *p = NULL;
	struct mq_plan_opts po = { .host = "h1" };
	ck_assert_int_eq(mq_plan_build(set, recs, 1, &po, &p, NULL), 0);
	ck_assert_uint_eq(p->n, 4);
	ck_assert_int_eq(item(p, "a")->action, MQ_ACT_CREATE);
	ck_assert_int_eq(item(p, "c")->action, MQ_ACT_CREATE);
	ck_assert_int_eq(item(p, "e")->action, MQ_ACT_CREATE);
	ck_assert_ptr_null(item(p, "b"));
	ck_assert_uint_eq(p->n_away, 1);
	ck_assert_str_eq(p->away[0].name, "b");
	ck_assert_str_eq(p->away[0].host, "h2");
	const struct mq_plan_item *d = item(p, "d");
	ck_assert_int_eq(d->action, MQ_ACT_DELETE);
	ck_assert_str_eq(d->moving_to, "h2");
	ck_assert_str_eq(d->reason, "placed on host h2 now: forget it here (observed stopped)");
	mq_plan_free(p);

	/* no --host: every vm is this host's */
	ck_assert_int_eq(mq_plan_build(set, recs, 1, NULL, &p, NULL), 0);
	ck_assert_uint_eq(p->n, 5);
	ck_assert_uint_eq(p->n_away, 0);
	ck_assert_ptr_null(item(p, "d")->moving_to);
	mq_plan_free(p);

	/* e's disk lease held by another host: e waits, recorded nowhere */
	char *lease = xasprintf("%s/e.img%s", dir, MQ_LEASE_SUFFIX);
	int fd = mq_lease_take(lease, "h9", "e", NULL, NULL);
	ck_assert_int_ge(fd, 0);
	po.disk_dir = dir;
	ck_assert_int_eq(mq_plan_build(set, recs, 1, &po, &p, NULL), 0);
	const struct mq_plan_item *e = item(p, "e");
	ck_assert_int_eq(e->action, MQ_ACT_NOOP);
	ck_assert(e->lease_wait && e->blocked);
	ck_assert_msg(strncmp(e->reason, "waiting for host h9 to release (disk lease ", 43) == 0, "%s", e->reason);
	ck_assert_int_eq(item(p, "a")->action, MQ_ACT_CREATE); /* no disk, no lease */
	mq_plan_free(p);
	close(fd);
	ck_assert_int_eq(mq_plan_build(set, recs, 1, &po, &p, NULL), 0);
	ck_assert_int_eq(item(p, "e")->action, MQ_ACT_CREATE);
	ck_assert(!item(p, "e")->lease_wait);
	mq_plan_free(p);
	unlink(lease);
	rmdir(dir);
	free(lease);
	free(yaml);
	mq_vm_record_free(recs[0]);
	mq_specset_free(set);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("decide");
	tcase_add_test(tc, test_decide_table);
	tcase_add_test(tc, test_decide_blocked);
	tcase_add_test(tc, test_decide_paused);
	tcase_add_test(tc, test_build_paused);
	tcase_add_test(tc, test_action_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("observe");
	tcase_add_test(tc, test_observe_live_dead_reused);
	tcase_add_test(tc, test_observe_zombie);
	suite_add_tcase(s, tc);
	tc = tcase_create("build");
	tcase_add_test(tc, test_build_changes_and_reasons);
	tcase_add_test(tc, test_build_running_restart_vs_update);
	tcase_add_test(tc, test_build_reason_names_base);
	tcase_add_test(tc, test_build_rolled_back);
	tcase_add_test(tc, test_build_owner_and_interrupted);
	tcase_add_test(tc, test_build_prune_scope_and_guard);
	tcase_add_test(tc, test_build_undeclared_records_in_caller_order);
	tcase_add_test(tc, test_build_idempotent);
	tcase_add_test(tc, test_build_restart_policy);
	tcase_add_test(tc, test_build_placement);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
