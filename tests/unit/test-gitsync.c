/* test-gitsync.c - `watch --git-pull` on a private loop: setup refusals, a
 * cycle that finds the checkout current and then fast-forwards it, a
 * diverged checkout reported once, and index.lock holding reloads.
 *
 * A bare repository in a temp dir is the remote; git runs with the user's
 * configuration switched off.  Every wait is a loop run bounded by a
 * deadline.
 */
#include <check.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/gitsync.h"
#include "reconciler/loop.h"
#include "reconciler/proc.h"
#include "reconciler/spawn.h"
#include "util/git.h"
#include "util/strv.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

static char tmpdir[64];
static char *git_bin;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mq-gitsync-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
	setenv("GIT_AUTHOR_NAME", "t", 1);
	setenv("GIT_AUTHOR_EMAIL", "t@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "t", 1);
	setenv("GIT_COMMITTER_EMAIL", "t@example.com", 1);
	git_bin = mq_spawn_resolve("git");
}

static void teardown(void)
{
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(git_bin);
}

static char *tp(const char *rel)
{
	return xasprintf("%s/%s", tmpdir, rel);
}

/* git -C DIR ARGS... must succeed. */
static void git(const char *rel, ...)
{
	struct mq_strv a = MQ_STRV_INIT;
	mq_strv_push(&a, git_bin);
	if (rel) {
		mq_strv_push(&a, "-C");
		mq_strv_push_take(&a, tp(rel));
	}
	va_list ap;
	va_start(ap, rel);
	for (const char *s; (s = va_arg(ap, const char *));)
		mq_strv_push(&a, s);
	va_end(ap);
	char *out = NULL;
	int st = 0;
	ck_assert_int_eq(mq_spawn_capture(git_bin, a.v, 30000, &out, &st, NULL), 0);
	char *cmd = mq_strv_join(&a, " ");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed: %s", cmd, out);
	free(cmd);
	free(out);
	mq_strv_clear(&a);
}

static void write_rel(const char *rel, const char *data)
{
	char *p = tp(rel);
	FILE *f = fopen(p, "we");
	ck_assert_ptr_nonnull(f);
	fputs(data, f);
	fclose(f);
	free(p);
}

/* remote.git (bare, branch main), seed (pushes), host (the checkout). */
static void make_repos(void)
{
	char *remote = tp("remote.git"), *seed = tp("seed"), *host = tp("host");
	git(NULL, "init", "-q", "--bare", "-b", "main", remote, NULL);
	git(NULL, "init", "-q", "-b", "main", seed, NULL);
	write_rel("seed/a.yaml", "name: a\n");
	git("seed", "add", "a.yaml", NULL);
	git("seed", "commit", "-q", "-m", "one", NULL);
	git("seed", "remote", "add", "origin", remote, NULL);
	git("seed", "push", "-q", "-u", "origin", "main", NULL);
	git(NULL, "clone", "-q", remote, host, NULL);
	free(remote);
	free(seed);
	free(host);
}

struct rec {
	struct mq_strv outcomes;
	struct mq_strv details;
	struct mq_strv commits;
	int events;
	int reloads;
};

static void on_report(void *ud, const char *outcome, const char *detail, const char *commit, bool event)
{
	struct rec *r = ud;
	mq_strv_push(&r->outcomes, outcome);
	mq_strv_push(&r->details, detail);
	mq_strv_push(&r->commits, commit ? commit : "");
	r->events += event;
}

static void on_reload(void *ud)
{
	((struct rec *)ud)->reloads++;
}

static void rec_clear(struct rec *r)
{
	mq_strv_clear(&r->outcomes);
	mq_strv_clear(&r->details);
	mq_strv_clear(&r->commits);
}

static int count(const struct rec *r, const char *outcome)
{
	int n = 0;
	for (size_t i = 0; i < r->outcomes.n; i++)
		n += strcmp(r->outcomes.v[i], outcome) == 0;
	return n;
}

static bool run_until(struct mq_loop *l, const struct rec *r, const char *outcome, int n, int64_t ms)
{
	int64_t end = mq_mono_ms() + ms;
	while (count(r, outcome) < n) {
		if (mq_mono_ms() > end)
			return false;
		ck_assert_int_ge(mq_loop_run_once(l, 50, NULL), 0);
	}
	return true;
}

static void run_for(struct mq_loop *l, int64_t ms)
{
	int64_t end = mq_mono_ms() + ms;
	while (mq_mono_ms() < end)
		ck_assert_int_ge(mq_loop_run_once(l, 20, NULL), 0);
}

static int open_gs(struct mq_loop *l, const char *rel, struct rec *r, struct mq_gitsync **gs, struct mq_error **err)
{
	char *p = tp(rel);
	const char *paths[] = { p };
	char *rt = tp("rt");
	struct mq_gitsync_opts o = {
		.loop = l, .paths = paths, .n_paths = 1, .runtime_dir = rt,
		.cfg = { .enabled = true, .interval_ms = 100, .timeout_ms = 20000 },
		.report = on_report, .reload = on_reload, .ud = r,
	};
	int rc = mq_gitsync_new(&o, gs, err);
	free(p);
	free(rt);
	return rc;
}

START_TEST(refuses_a_path_outside_git)
{
	char *plain = tp("plain");
	ck_assert_int_eq(mkdir(plain, 0755), 0);
	free(plain);
	struct mq_loop *l = NULL;
	ck_assert_int_eq(mq_loop_new(&l, NULL), 0);
	struct rec r = { 0 };
	struct mq_gitsync *gs = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_lt(open_gs(l, "plain", &r, &gs, &err), 0);
	ck_assert_ptr_null(gs);
	ck_assert_ptr_nonnull(strstr(err->msg, "is not in a git work tree"));
	mq_error_free(err);
	mq_loop_free(l);
}
END_TEST

START_TEST(refuses_no_upstream_and_detached_head)
{
	make_repos();
	struct mq_loop *l = NULL;
	ck_assert_int_eq(mq_loop_new(&l, NULL), 0);
	struct rec r = { 0 };
	struct mq_gitsync *gs = NULL;
	struct mq_error *err = NULL;
	git("host", "branch", "-q", "--unset-upstream", NULL);
	ck_assert_int_lt(open_gs(l, "host", &r, &gs, &err), 0);
	ck_assert_msg(strstr(err->msg, "branch 'main' has no upstream"), "%s", err->msg);
	err = mq_error_free(err);
	git("host", "checkout", "-q", "--detach", NULL);
	ck_assert_int_lt(open_gs(l, "host", &r, &gs, &err), 0);
	ck_assert_msg(strstr(err->msg, "HEAD is detached"), "%s", err->msg);
	mq_error_free(err);
	ck_assert_int_eq(r.outcomes.n, 0);
	mq_loop_free(l);
}
END_TEST

START_TEST(current_then_fast_forward)
{
	make_repos();
	struct mq_loop *l = NULL;
	ck_assert_int_eq(mq_loop_new(&l, NULL), 0);
	struct rec r = { 0 };
	struct mq_gitsync *gs = NULL;
	ck_assert_int_eq(open_gs(l, "host", &r, &gs, NULL), 0);
	ck_assert_str_eq(mq_gitsync_upstream(gs), "origin/main");
	mq_gitsync_start(gs);
	ck_assert(run_until(l, &r, "current", 1, 20000));
	ck_assert_int_eq(r.events, 0);   /* "current" only goes to the log */
	ck_assert_int_eq(r.reloads, 0);
	write_rel("seed/a.yaml", "name: a\nmemory: 1G\n");
	git("seed", "commit", "-q", "-am", "two", NULL);
	git("seed", "push", "-q", NULL);
	char *seed = tp("seed"), *host = tp("host");
	char *want = mq_git_commit_for(seed);
	ck_assert(run_until(l, &r, "ok", 1, 20000));
	ck_assert_int_eq(r.events, 1);
	ck_assert_int_eq(r.reloads, 1);
	ck_assert_str_eq(r.commits.v[r.commits.n - 1], want);
	char *now = mq_git_commit_for(host);
	ck_assert_str_eq(now, want);
	/* the next cycles find it current: nothing more is reported */
	run_for(l, 500);
	ck_assert_int_eq(count(&r, "ok"), 1);
	ck_assert_int_eq(count(&r, "current"), 1);
	ck_assert_int_eq(r.reloads, 1);
	free(now);
	free(want);
	free(seed);
	free(host);
	mq_gitsync_free(gs);
	mq_loop_free(l);
	rec_clear(&r);
}
END_TEST

START_TEST(diverged_is_reported_once_and_left_alone)
{
	make_repos();
	write_rel("host/notes", "local\n");
	git("host", "add", "notes", NULL);
	git("host", "commit", "-q", "-m", "local", NULL);
	write_rel("seed/a.yaml", "name: a\nmemory: 2G\n");
	git("seed", "commit", "-q", "-am", "upstream", NULL);
	git("seed", "push", "-q", NULL);
	char *host = tp("host");
	char *before = mq_git_commit_for(host);
	struct mq_loop *l = NULL;
	ck_assert_int_eq(mq_loop_new(&l, NULL), 0);
	struct rec r = { 0 };
	struct mq_gitsync *gs = NULL;
	ck_assert_int_eq(open_gs(l, "host", &r, &gs, NULL), 0);
	mq_gitsync_start(gs);
	ck_assert(run_until(l, &r, "diverged", 1, 20000));
	ck_assert_msg(strstr(r.details.v[0], "has 1 local commit not in origin/main"), "%s", r.details.v[0]);
	run_for(l, 800); /* several more 100 ms cycles */
	ck_assert_int_eq(count(&r, "diverged"), 1);
	ck_assert_int_eq(r.outcomes.n, 1);
	char *after = mq_git_commit_for(host);
	ck_assert_str_eq(after, before);
	ck_assert_int_eq(r.reloads, 0);
	free(after);
	free(before);
	free(host);
	mq_gitsync_free(gs);
	mq_loop_free(l);
	rec_clear(&r);
}
END_TEST

START_TEST(index_lock_holds_reload_until_it_goes)
{
	make_repos();
	struct mq_loop *l = NULL;
	ck_assert_int_eq(mq_loop_new(&l, NULL), 0);
	struct rec r = { 0 };
	struct mq_gitsync *gs = NULL;
	ck_assert_int_eq(open_gs(l, "host", &r, &gs, NULL), 0);
	ck_assert(!mq_gitsync_hold(gs));
	write_rel("host/.git/index.lock", "");
	ck_assert(mq_gitsync_hold(gs));
	run_for(l, 1300);
	ck_assert_int_eq(r.reloads, 0);
	ck_assert_int_eq(count(&r, "held"), 1); /* a lock older than a second is logged once */
	char *lock = tp("host/.git/index.lock");
	ck_assert_int_eq(unlink(lock), 0);
	free(lock);
	int64_t end = mq_mono_ms() + 5000;
	while (r.reloads == 0 && mq_mono_ms() < end)
		ck_assert_int_ge(mq_loop_run_once(l, 50, NULL), 0);
	ck_assert_int_eq(r.reloads, 1);
	ck_assert(!mq_gitsync_hold(gs));
	mq_gitsync_free(gs);
	mq_loop_free(l);
	rec_clear(&r);
}
END_TEST

static Suite *gitsync_suite(void)
{
	Suite *s = suite_create("gitsync");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, refuses_a_path_outside_git);
	tcase_add_test(tc, refuses_no_upstream_and_detached_head);
	tcase_add_test(tc, current_then_fast_forward);
	tcase_add_test(tc, diverged_is_reported_once_and_left_alone);
	tcase_add_test(tc, index_lock_holds_reload_until_it_goes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(gitsync_suite());
}
