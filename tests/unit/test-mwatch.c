/* test-mwatch.c - inotify manifest watcher: relevance filter, settle window,
 * open writers, recursion, file arguments, overflow resync.
 *
 * Every wait is bounded by a deadline and done with poll() on the watcher's
 * fd; the settle/writer logic is also checked at exact instants through the
 * `now` argument, so the assertions do not depend on scheduling luck.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reconciler/mwatch.h"
#include "reconciler/proc.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

/* Test-only hook defined in reconciler/mwatch.c (not part of mwatch.h). */
void mq_mwatch_test_inject_overflow(struct mq_mwatch *w);

#define SETTLE 100
#define WRITER_WAIT 1000

static char tmpdir[64];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mq-mwatch-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tp(const char *rel)
{
	return xasprintf("%s/%s", tmpdir, rel);
}

static void write_rel(const char *rel, const char *data)
{
	char *p = tp(rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	ck_assert_int_eq(close(fd), 0);
	free(p);
}

static void mkdir_rel(const char *rel)
{
	char *p = tp(rel);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	free(p);
}

static void rename_rel(const char *a, const char *b)
{
	char *pa = tp(a), *pb = tp(b);
	ck_assert_int_eq(rename(pa, pb), 0);
	free(pa);
	free(pb);
}

static void unlink_rel(const char *rel)
{
	char *p = tp(rel);
	ck_assert_int_eq(unlink(p), 0);
	free(p);
}

/* Poll the fd and dispatch until `ms` have passed. */
static void pump(struct mq_mwatch *w, int ms)
{
	int64_t deadline = mq_mono_ms() + ms;
	for (;;) {
		int64_t left = deadline - mq_mono_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = { .fd = mq_mwatch_fd(w), .events = POLLIN };
		int r = poll(&pfd, 1, (int)left);
		ck_assert_int_ge(r, 0);
		if (r > 0)
			mq_mwatch_dispatch(w, mq_mono_ms());
	}
}

/* Like the real loop: sleep on the fd until the watcher's own deadline (or
 * the overall limit) and return the instant it became due, or -1. */
static int64_t pump_until_due(struct mq_mwatch *w, int limit_ms)
{
	int64_t limit = mq_mono_ms() + limit_ms;
	for (;;) {
		int64_t now = mq_mono_ms();
		if (mq_mwatch_due(w, now))
			return now;
		if (now >= limit)
			return -1;
		int64_t until = mq_mwatch_deadline(w);
		if (until < 0 || until > limit)
			until = limit;
		int timeout = until > now ? (int)(until - now) : 0;
		struct pollfd pfd = { .fd = mq_mwatch_fd(w), .events = POLLIN };
		int r = poll(&pfd, 1, timeout);
		ck_assert_int_ge(r, 0);
		if (r > 0)
			mq_mwatch_dispatch(w, mq_mono_ms());
	}
}

static struct mq_mwatch *watch_paths(const char *const *paths, size_t n)
{
	struct mq_mwatch_opts o = { .settle_ms = SETTLE, .max_writer_wait_ms = WRITER_WAIT };
	struct mq_mwatch *w = NULL;
	struct mq_error *err = NULL;
	int r = mq_mwatch_new(paths, n, &o, &w, &err);
	ck_assert_msg(r == 0, "mq_mwatch_new: %s", err ? err->msg : "?");
	ck_assert_ptr_nonnull(w);
	return w;
}

static struct mq_mwatch *watch_tmp(void)
{
	const char *p[] = { tmpdir };
	return watch_paths(p, 1);
}

static void assert_changed_is(struct mq_mwatch *w, const char *name)
{
	const struct mq_strv *c = mq_mwatch_changed(w);
	ck_assert_uint_eq(c->n, 1);
	ck_assert_str_eq(c->v[0], name);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ---- tests ---------------------------------------------------------- */

START_TEST(new_file_pending_then_due_after_settle)
{
	struct mq_mwatch *w = watch_tmp();
	ck_assert(!mq_mwatch_pending(w));
	ck_assert_int_eq(mq_mwatch_deadline(w), -1);
	ck_assert(!mq_mwatch_due(w, mq_mono_ms() + 100000));

	int64_t t0 = mq_mono_ms();
	write_rel("vm.yaml", "name: vm\n");
	pump(w, 30);
	int64_t t1 = mq_mono_ms();
	ck_assert(mq_mwatch_pending(w));
	ck_assert(!mq_mwatch_overflowed(w));
	assert_changed_is(w, "vm.yaml");

	int64_t d = mq_mwatch_deadline(w);
	ck_assert_int_ge(d, t0 + SETTLE);
	ck_assert_int_le(d, t1 + SETTLE);
	ck_assert(!mq_mwatch_due(w, d - 1));
	ck_assert(mq_mwatch_due(w, d));

	int64_t due = pump_until_due(w, 2000);
	ck_assert_int_ge(due, t0 + SETTLE);
	mq_mwatch_consume(w);
	ck_assert(!mq_mwatch_pending(w));
	ck_assert_uint_eq(mq_mwatch_changed(w)->n, 0);
	ck_assert_int_eq(mq_mwatch_deadline(w), -1);
	pump(w, 50);
	ck_assert(!mq_mwatch_pending(w));
	mq_mwatch_free(w);
}
END_TEST

START_TEST(burst_of_writes_is_one_change_due_after_last)
{
	write_rel("vm.yaml", "name: vm\n");
	struct mq_mwatch *w = watch_tmp();
	int64_t before_last = 0;
	for (int i = 0; i < 20; i++) {
		before_last = mq_mono_ms();
		char buf[64];
		snprintf(buf, sizeof(buf), "name: vm\nmemory: %dM\n", 256 + i);
		write_rel("vm.yaml", buf);
		pump(w, 3);
		ck_assert(mq_mwatch_pending(w));
		/* the window restarts with every write */
		ck_assert(!mq_mwatch_due(w, before_last + SETTLE - 1));
	}
	pump(w, 10);
	assert_changed_is(w, "vm.yaml");
	int64_t d = mq_mwatch_deadline(w);
	ck_assert_int_ge(d, before_last + SETTLE);
	ck_assert(!mq_mwatch_due(w, d - 1));
	int64_t due = pump_until_due(w, 2000);
	ck_assert_int_ge(due, before_last + SETTLE);
	mq_mwatch_consume(w);
	pump(w, 50);
	ck_assert(!mq_mwatch_pending(w));
	mq_mwatch_free(w);
}
END_TEST

START_TEST(rename_into_place_counts_once)
{
	write_rel("web.yaml", "name: web\n");
	struct mq_mwatch *w = watch_tmp();
	write_rel(".web.yaml.tmp", "name: web\nmemory: 1G\n");
	pump(w, SETTLE + 50);
	ck_assert(!mq_mwatch_pending(w)); /* the hidden temp file alone is not relevant */
	ck_assert_int_eq(mq_mwatch_deadline(w), -1);

	rename_rel(".web.yaml.tmp", "web.yaml");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	assert_changed_is(w, "web.yaml");
	ck_assert_int_ge(pump_until_due(w, 2000), 0);
	mq_mwatch_consume(w);
	pump(w, SETTLE + 50);
	ck_assert(!mq_mwatch_pending(w)); /* no second change from the same save */
	mq_mwatch_free(w);
}
END_TEST

START_TEST(truncate_then_write_waits_for_writer)
{
	write_rel("web.yaml", "name: web\n");
	struct mq_mwatch *w = watch_tmp();
	char *p = tp("web.yaml");
	int64_t t_open = mq_mono_ms();
	int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);

	pump(w, SETTLE * 3);
	int64_t now = mq_mono_ms();
	ck_assert(mq_mwatch_pending(w));
	ck_assert(!mq_mwatch_due(w, now)); /* the writer is still open */
	/* the deadline is the writer cap, so the caller's timer re-checks then */
	int64_t d = mq_mwatch_deadline(w);
	ck_assert_int_ge(d, t_open + WRITER_WAIT);
	ck_assert_int_le(d, now + WRITER_WAIT);
	ck_assert(!mq_mwatch_due(w, t_open + WRITER_WAIT - 1));

	int64_t t_write = mq_mono_ms();
	ck_assert_int_eq(write(fd, "name: web\n", 10), 10);
	ck_assert_int_eq(close(fd), 0);
	pump(w, 20);
	/* closed: due a settle window after the close, not at the cap */
	d = mq_mwatch_deadline(w);
	ck_assert_int_ge(d, t_write + SETTLE);
	ck_assert_int_lt(d, t_open + WRITER_WAIT);
	ck_assert(!mq_mwatch_due(w, d - 1));
	int64_t due = pump_until_due(w, 2000);
	ck_assert_int_ge(due, t_write + SETTLE);
	ck_assert_int_lt(due, t_open + WRITER_WAIT);
	assert_changed_is(w, "web.yaml");
	free(p);
	mq_mwatch_free(w);
}
END_TEST

START_TEST(open_writer_cap)
{
	write_rel("web.yaml", "name: web\n");
	struct mq_mwatch *w = watch_tmp();
	char *p = tp("web.yaml");
	int64_t t_open = mq_mono_ms();
	int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "name: ", 6), 6);
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	int64_t d = mq_mwatch_deadline(w);
	ck_assert_int_ge(d, t_open + WRITER_WAIT);
	int64_t due = pump_until_due(w, WRITER_WAIT * 3);
	ck_assert_int_ge(due, t_open + WRITER_WAIT); /* fd still open: the cap let it through */

	/* a writer that stays open does not hold up the next change past the cap */
	mq_mwatch_consume(w);
	int64_t t_other = mq_mono_ms();
	write_rel("other.yaml", "name: other\n");
	due = pump_until_due(w, 2000);
	ck_assert_int_ge(due, t_other + SETTLE);
	ck_assert_int_lt(due, t_other + WRITER_WAIT);
	assert_changed_is(w, "other.yaml");
	close(fd);
	free(p);
	mq_mwatch_free(w);
}
END_TEST

START_TEST(delete_is_relevant)
{
	write_rel("web.yaml", "name: web\n");
	write_rel("db.yml", "name: db\n");
	struct mq_mwatch *w = watch_tmp();
	unlink_rel("web.yaml");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	assert_changed_is(w, "web.yaml");
	mq_mwatch_consume(w);
	unlink_rel("db.yml");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	assert_changed_is(w, "db.yml");
	mq_mwatch_free(w);
}
END_TEST

START_TEST(ignored_names_do_not_start_a_window)
{
	write_rel("web.yaml", "name: web\n");
	struct mq_mwatch *w = watch_tmp();
	const char *names[] = { ".hidden.yaml", ".web.yaml.swp", "web.yaml.swp", "web.yaml.swx",
				"web.yaml~", "4913", "notes.txt", "#web.yaml#", ".#web.yaml",
				"web.yaml.tmp" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		write_rel(names[i], "x\n");       /* create, modify, close_write */
		rename_rel(names[i], ".renamed"); /* moved_from */
		rename_rel(".renamed", names[i]); /* moved_to */
		unlink_rel(names[i]);             /* delete */
	}
	mkdir_rel(".git");
	write_rel(".git/inside.yaml", "name: x\n");
	pump(w, SETTLE + 50);
	ck_assert(!mq_mwatch_pending(w));
	ck_assert_int_eq(mq_mwatch_deadline(w), -1);
	ck_assert_uint_eq(mq_mwatch_changed(w)->n, 0);
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 1); /* the dot-directory is not watched */
	/* reading a manifest is not a change either */
	char *p = tp("web.yaml");
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	char buf[32];
	ck_assert_int_gt(read(fd, buf, sizeof(buf)), 0);
	close(fd);
	pump(w, 30);
	ck_assert(!mq_mwatch_pending(w));
	free(p);
	mq_mwatch_free(w);
}
END_TEST

START_TEST(new_subdirectory_is_watched)
{
	struct mq_mwatch *w = watch_tmp();
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 1);
	mkdir_rel("sub");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w)); /* a new directory counts */
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 2);
	mq_mwatch_consume(w);

	write_rel("sub/vm.yaml", "name: vm\n");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	assert_changed_is(w, "sub/vm.yaml");
	mq_mwatch_consume(w);

	/* mkdir -p a/b && cp x.yaml a/b/ racing the watch on a */
	mkdir_rel("a");
	mkdir_rel("a/b");
	write_rel("a/b/x.yaml", "name: x\n");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 4);
	ck_assert(mq_mwatch_changed(w)->n >= 1);
	ck_assert(mq_strv_contains(mq_mwatch_changed(w), "a/b/x.yaml"));
	mq_mwatch_consume(w);

	/* later writes deep inside are seen */
	write_rel("a/b/x.yaml", "name: x\nmemory: 1G\n");
	pump(w, 30);
	assert_changed_is(w, "a/b/x.yaml");
	mq_mwatch_consume(w);

	/* removing a directory is relevant and drops its watches */
	unlink_rel("a/b/x.yaml");
	char *ab = tp("a/b"), *a = tp("a");
	ck_assert_int_eq(rmdir(ab), 0);
	ck_assert_int_eq(rmdir(a), 0);
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 2);
	free(ab);
	free(a);
	mq_mwatch_free(w);
}
END_TEST

START_TEST(directory_moved_out_and_in)
{
	mkdir_rel("vms");
	mkdir_rel("vms/sub");
	write_rel("vms/sub/a.yaml", "name: a\n");
	char *vms = tp("vms");
	const char *paths[] = { vms };
	struct mq_mwatch *w = watch_paths(paths, 1);
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 2);

	rename_rel("vms/sub", "away");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 1);
	mq_mwatch_consume(w);
	write_rel("away/a.yaml", "name: a\nmemory: 1G\n");
	pump(w, SETTLE);
	ck_assert(!mq_mwatch_pending(w)); /* no longer under the watched root */

	rename_rel("away", "vms/back");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 2);
	ck_assert(mq_strv_contains(mq_mwatch_changed(w), "back/a.yaml"));
	mq_mwatch_consume(w);
	write_rel("vms/back/a.yaml", "name: a\n");
	pump(w, 30);
	assert_changed_is(w, "back/a.yaml");
	free(vms);
	mq_mwatch_free(w);
}
END_TEST

START_TEST(file_argument_watches_only_that_name)
{
	write_rel("web.yaml", "name: web\n");
	write_rel("db.yaml", "name: db\n");
	char *web = tp("web.yaml");
	const char *paths[] = { web };
	struct mq_mwatch *w = watch_paths(paths, 1);
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 1);

	write_rel("db.yaml", "name: db\nmemory: 1G\n");
	write_rel("new.yaml", "name: new\n");
	mkdir_rel("sub");
	pump(w, SETTLE + 50);
	ck_assert(!mq_mwatch_pending(w));
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 1); /* no recursion for a file argument */

	write_rel(".web.yaml.tmp", "name: web\nmemory: 2G\n");
	rename_rel(".web.yaml.tmp", "web.yaml");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	assert_changed_is(w, "web.yaml");
	ck_assert_int_ge(pump_until_due(w, 2000), 0);
	mq_mwatch_consume(w);

	/* in-place write of the file itself */
	write_rel("web.yaml", "name: web\n");
	pump(w, 30);
	assert_changed_is(w, "web.yaml");
	free(web);
	mq_mwatch_free(w);
}
END_TEST

/* A shared base outside the watched paths, added later: its saves count,
 * its neighbours do not, adding it twice is a no-op, a missing one fails. */
START_TEST(added_file_is_watched)
{
	mkdir_rel("vms");
	mkdir_rel("outside");
	write_rel("vms/web.yaml", "name: web\n");
	write_rel("outside/base.yaml", "memory: 1G\n");
	write_rel("outside/other.yaml", "memory: 1G\n");
	char *vms = tp("vms"), *base = tp("outside/base.yaml"), *missing = tp("outside/none.yaml");
	const char *paths[] = { vms };
	struct mq_mwatch *w = watch_paths(paths, 1);
	size_t n0 = mq_mwatch_nwatches(w);

	write_rel("outside/base.yaml", "memory: 2G\n");
	pump(w, SETTLE + 50);
	ck_assert(!mq_mwatch_pending(w)); /* not watched yet */

	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_mwatch_add_file(w, base, &err), 0);
	ck_assert_int_eq(mq_mwatch_add_file(w, base, &err), 0);
	ck_assert_uint_eq(mq_mwatch_nwatches(w), n0 + 1);
	ck_assert_int_eq(mq_mwatch_add_file(w, missing, &err), 0); /* its directory exists */
	mq_mwatch_consume(w);

	write_rel("outside/other.yaml", "memory: 2G\n");
	pump(w, SETTLE + 50);
	ck_assert(!mq_mwatch_pending(w)); /* only the added name counts */

	write_rel("outside/.base.yaml.tmp", "memory: 3G\n");
	rename_rel("outside/.base.yaml.tmp", "outside/base.yaml");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	assert_changed_is(w, "base.yaml");
	ck_assert_int_ge(pump_until_due(w, 2000), 0);
	mq_mwatch_consume(w);

	char *gone = tp("nodir/base.yaml");
	ck_assert_int_lt(mq_mwatch_add_file(w, gone, &err), 0);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(strstr(err->msg, "cannot watch"));
	mq_error_free(err);
	free(gone);
	free(vms);
	free(base);
	free(missing);
	mq_mwatch_free(w);
}
END_TEST

START_TEST(overflow_rescans_and_resyncs)
{
	mkdir_rel("root");
	mkdir_rel("root/sub");
	char *root = tp("root");
	const char *paths[] = { root };
	struct mq_mwatch *w = watch_paths(paths, 1);
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 2);
	/* changes the watcher has not read yet: the rescan must pick them up */
	mkdir_rel("root/sub2");
	mkdir_rel("root/sub3");
	rename_rel("root/sub", "gone"); /* out of the watched tree */

	mq_mwatch_test_inject_overflow(w);
	ck_assert(mq_mwatch_overflowed(w));
	ck_assert(mq_mwatch_pending(w));
	ck_assert_int_ge(mq_mwatch_deadline(w), 0);
	/* root + sub2 + sub3, and sub's watch dropped (nothing was read yet) */
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 3);

	pump(w, 30); /* the queued events agree with the rescan */
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 3);
	ck_assert_int_ge(pump_until_due(w, 2000), 0);
	mq_mwatch_consume(w);
	ck_assert(!mq_mwatch_overflowed(w));
	ck_assert(!mq_mwatch_pending(w));

	write_rel("gone/y.yaml", "name: y\n");
	pump(w, SETTLE);
	ck_assert(!mq_mwatch_pending(w)); /* the moved-away directory is no longer followed */
	write_rel("root/sub2/x.yaml", "name: x\n");
	pump(w, 30);
	ck_assert(mq_mwatch_pending(w));
	assert_changed_is(w, "sub2/x.yaml");
	free(root);
	mq_mwatch_free(w);
}
END_TEST

START_TEST(nonexistent_path_is_enoent)
{
	char *nope = tp("nope");
	const char *paths[] = { tmpdir, nope };
	struct mq_mwatch *w = (struct mq_mwatch *)0x1;
	struct mq_error *err = NULL;
	int before = count_fds();
	int r = mq_mwatch_new(paths, 2, NULL, &w, &err);
	ck_assert_int_eq(r, -ENOENT);
	ck_assert_ptr_eq(w, (struct mq_mwatch *)0x1); /* out untouched */
	ck_assert_ptr_nonnull(err);
	char *want = xasprintf("cannot watch '%s': no such file or directory", nope);
	ck_assert_str_eq(err->msg, want);
	ck_assert_int_eq(count_fds(), before); /* nothing leaked on failure */
	mq_error_free(err);
	free(want);
	free(nope);
}
END_TEST

START_TEST(too_deep_is_an_error)
{
	char rel[512] = "d";
	mkdir_rel(rel);
	for (int i = 0; i < 33; i++) {
		strcat(rel, "/d");
		mkdir_rel(rel);
	}
	const char *paths[] = { tmpdir };
	struct mq_mwatch *w = NULL;
	struct mq_error *err = NULL;
	int r = mq_mwatch_new(paths, 1, NULL, &w, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_null(w);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(strstr(err->msg, "nested too deep (limit 32 levels)"));
	mq_error_free(err);
}
END_TEST

START_TEST(fd_is_cloexec_nonblocking_and_only_one)
{
	mkdir_rel("sub");
	mkdir_rel("sub/deeper");
	write_rel("sub/a.yaml", "name: a\n");
	int before = count_fds();
	struct mq_mwatch *w = watch_tmp();
	ck_assert_int_eq(count_fds(), before + 1); /* directory scans closed their fds */
	int fd = mq_mwatch_fd(w);
	ck_assert_int_ge(fd, 0);
	int fdf = fcntl(fd, F_GETFD);
	ck_assert_int_ge(fdf, 0);
	ck_assert(fdf & FD_CLOEXEC);
	int fl = fcntl(fd, F_GETFL);
	ck_assert_int_ge(fl, 0);
	ck_assert(fl & O_NONBLOCK);
	ck_assert_uint_eq(mq_mwatch_nwatches(w), 3);
	/* dispatch with nothing queued returns at once */
	mq_mwatch_dispatch(w, mq_mono_ms());
	ck_assert(!mq_mwatch_pending(w));
	mq_mwatch_free(w);
	ck_assert_int_eq(count_fds(), before);
	ck_assert_ptr_null(mq_mwatch_free(NULL));
}
END_TEST

static Suite *mwatch_suite(void)
{
	Suite *s = suite_create("mwatch");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, new_file_pending_then_due_after_settle);
	tcase_add_test(tc, burst_of_writes_is_one_change_due_after_last);
	tcase_add_test(tc, rename_into_place_counts_once);
	tcase_add_test(tc, truncate_then_write_waits_for_writer);
	tcase_add_test(tc, open_writer_cap);
	tcase_add_test(tc, delete_is_relevant);
	tcase_add_test(tc, ignored_names_do_not_start_a_window);
	tcase_add_test(tc, new_subdirectory_is_watched);
	tcase_add_test(tc, directory_moved_out_and_in);
	tcase_add_test(tc, file_argument_watches_only_that_name);
	tcase_add_test(tc, added_file_is_watched);
	tcase_add_test(tc, overflow_rescans_and_resyncs);
	tcase_add_test(tc, nonexistent_path_is_enoent);
	tcase_add_test(tc, too_deep_is_an_error);
	tcase_add_test(tc, fd_is_cloexec_nonblocking_and_only_one);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(mwatch_suite());
}
