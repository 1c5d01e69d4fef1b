/* test-state.c - unit tests for state/ (store.c, vms.c, events.c), the git
 * commit lookup (util/git.c) and the audit trail built on both
 * (reconciler/audit.c).  Check, fork mode; every test works in its own
 * mkdtemp directory under /tmp. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "state/store-int.h" /* struct mq_store, the error mapping */
#include "reconciler/audit.h"
#include "state/store.h"
#include "util/git.h"
#include "util/fileio.h"
#include "util/parse.h"
#include "util/paths.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

/* ---- helpers ------------------------------------------------------------- */

static char *tmpdir;

#define SHA_A_FOR_EVENTS "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

static void setup(void)
{
	char tmpl[] = "/tmp/mq-test-state-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	tmpdir = xstrdup(tmpl);
}

static void teardown(void)
{
	if (tmpdir)
		nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(tmpdir);
	tmpdir = NULL;
}

static char *tpath(const char *rel)
{
	return mq_path_join(tmpdir, rel);
}

static struct mq_store *open_ok(const char *dir)
{
	struct mq_store *s = NULL;
	struct mq_error *err = NULL;
	int r = mq_store_open(dir, &s, &err);
	ck_assert_msg(r == 0, "mq_store_open(%s) = %d: %s", dir, r, err ? err->msg : "(no message)");
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(err);
	return s;
}

static void put_ok(struct mq_store *s, const struct mq_vm_record *rec)
{
	struct mq_error *err = NULL;
	int r = mq_store_vm_put(s, rec, &err);
	ck_assert_msg(r == 0, "vm_put(%s) = %d: %s", rec->name, r, err ? err->msg : "");
}

static struct mq_vm_record *get_ok(struct mq_store *s, const char *name)
{
	struct mq_vm_record *rec = NULL;
	struct mq_error *err = NULL;
	int r = mq_store_vm_get(s, name, &rec, &err);
	ck_assert_msg(r == 0, "vm_get(%s) = %d: %s", name, r, err ? err->msg : "");
	ck_assert_ptr_nonnull(rec);
	return rec;
}

static int get_rc(struct mq_store *s, const char *name)
{
	struct mq_vm_record *rec = NULL;
	struct mq_error *err = NULL;
	int r = mq_store_vm_get(s, name, &rec, &err);
	if (r == 0)
		mq_vm_record_free(rec);
	else
		ck_assert_ptr_null(rec);
	mq_error_free(err);
	return r;
}

/* A record with every string set (so round trips check each column). */
static struct mq_vm_record *sample(const char *name)
{
	struct mq_vm_record *r = mq_vm_record_new();
	mq_vm_record_set(&r->name, name);
	mq_vm_record_set(&r->source, "/srv/vms");
	mq_vm_record_set(&r->spec_json, "{\"name\":\"x\",\"memory\":536870912}");
	mq_vm_record_set(&r->spec_hash, "0123456789abcdef");
	mq_vm_record_set(&r->desired, "running");
	mq_vm_record_set(&r->status, MQ_STATUS_RUNNING);
	r->pid = 4194303;
	r->start_time = (UINT64_C(1) << 32) + 12345;
	mq_vm_record_set(&r->qmp_path, "/run/user/1000/maqet/x.qmp");
	mq_vm_record_set(&r->accel, "kvm");
	r->hold = true;
	mq_vm_record_set(&r->last_error, "cannot start vm 'x': it's broken");
	r->started_at = 1700000000123;
	r->restart_count = 7;
	r->backoff_until = 1700000009999;
	mq_vm_record_set(&r->exit_reason, "killed from outside (host-signal)");
	return r;
}

static void write_bytes(const char *path, const void *data, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, data, len, off), (ssize_t)len);
	close(fd);
}

static void write_text(const char *path, const char *text)
{
	char *dir = mq_path_dirname(path);
	ck_assert_int_eq(mq_mkdir_p(dir, 0755, NULL), 0);
	free(dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(mq_write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* Run SQL on a raw connection (for crafting databases by hand). */
static void raw_exec(const char *dbpath, const char *sql)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	ck_assert_msg(rc == SQLITE_OK, "sql failed: %s", msg ? msg : "?");
	sqlite3_free(msg);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

static int64_t raw_int(const char *dbpath, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Wait (with a deadline) until the wall clock has moved past `t`. */
static void wait_past_ms(int64_t t)
{
	int64_t deadline = t + 2000;
	while (mq_now_ms() <= t) {
		ck_assert_int_lt(mq_now_ms(), deadline);
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

/* ---- open, modes, reopen ------------------------------------------------- */

START_TEST(test_open_creates_private_dir_and_db)
{
	char *dir = tpath("a/b/state");
	struct mq_store *s = open_ok(dir);
	struct stat st;
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0700);

	char *db = mq_path_join(dir, "maqet.db");
	ck_assert_int_eq(stat(db, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(mq_store_schema_version(s), MQ_STORE_SCHEMA_VERSION);
	ck_assert_int_eq(MQ_STORE_SCHEMA_VERSION, 5);

	/* WAL mode: the -wal and -shm files exist while open and are private too. */
	struct mq_vm_record *r = sample("web");
	put_ok(s, r);
	char *wal = xasprintf("%s-wal", db), *shm = xasprintf("%s-shm", db);
	ck_assert_int_eq(stat(wal, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(shm, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	mq_store_free(s);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
	mq_vm_record_free(r);
	free(wal);
	free(shm);
	free(db);
	free(dir);
}
END_TEST

START_TEST(test_open_tightens_existing_db_mode)
{
	char *db = tpath("maqet.db");
	raw_exec(db, "PRAGMA user_version = 0");
	ck_assert_int_eq(chmod(db, 0644), 0);
	struct mq_store *s = open_ok(tmpdir);
	struct stat st;
	ck_assert_int_eq(stat(db, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	mq_store_free(s);
	free(db);
}
END_TEST

START_TEST(test_open_failure_message)
{
	/* The state dir path runs through a regular file: cannot be created. */
	char *file = tpath("plain");
	write_text(file, "x");
	char *dir = tpath("plain/state");
	struct mq_store *s = (struct mq_store *)0x1;
	struct mq_error *err = NULL;
	int r = mq_store_open(dir, &s, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_eq(s, (struct mq_store *)0x1);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(strstr(err->msg, "plain"));
	mq_error_free(err);

	/* maqet.db is a directory: sqlite cannot open it. */
	char *dbdir = tpath("s2/maqet.db");
	ck_assert_int_eq(mq_mkdir_p(dbdir, 0700, NULL), 0);
	char *s2 = tpath("s2");
	err = NULL;
	r = mq_store_open(s2, &s, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_nonnull(err);
	char *want = xasprintf("cannot open state database '%s': ", dbdir);
	ck_assert_msg(strncmp(err->msg, want, strlen(want)) == 0, "got: %s", err->msg);
	mq_error_free(err);
	free(want);
	free(s2);
	free(dbdir);
	free(dir);
	free(file);
}
END_TEST

START_TEST(test_reopen_keeps_data)
{
	struct mq_store *s = open_ok(tmpdir);
	struct mq_vm_record *r = sample("keep");
	put_ok(s, r);
	ck_assert_int_eq(mq_store_event_add(s, "keep", "create", "ok", NULL, NULL, NULL), 0);
	mq_store_free(s);

	s = open_ok(tmpdir);
	struct mq_vm_record *g = get_ok(s, "keep");
	ck_assert_str_eq(g->spec_json, r->spec_json);
	ck_assert_uint_eq(g->start_time, r->start_time);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, NULL, 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(ev[0]->action, "create");
	mq_event_list_free(ev, n);
	mq_vm_record_free(g);
	mq_vm_record_free(r);
	mq_store_free(s);
}
END_TEST

/* ---- vm records ---------------------------------------------------------- */

static void assert_same_record(const struct mq_vm_record *a, const struct mq_vm_record *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_str_eq(a->source, b->source);
	ck_assert_str_eq(a->spec_json, b->spec_json);
	ck_assert_str_eq(a->spec_hash, b->spec_hash);
	ck_assert_str_eq(a->desired, b->desired);
	ck_assert_str_eq(a->status, b->status);
	ck_assert_int_eq(a->pid, b->pid);
	ck_assert_uint_eq(a->start_time, b->start_time);
	ck_assert_pstr_eq(a->qmp_path, b->qmp_path);
	ck_assert_pstr_eq(a->accel, b->accel);
	ck_assert_int_eq(a->hold, b->hold);
	ck_assert_pstr_eq(a->last_error, b->last_error);
	ck_assert_int_eq(a->started_at, b->started_at);
	ck_assert_int_eq(a->restart_count, b->restart_count);
	ck_assert_int_eq(a->backoff_until, b->backoff_until);
	ck_assert_pstr_eq(a->exit_reason, b->exit_reason);
}

START_TEST(test_vm_round_trip)
{
	struct mq_store *s = open_ok(tmpdir);
	struct mq_vm_record *full = sample("zeta");
	full->created_at = 1600000000000;

	struct mq_vm_record *bare = mq_vm_record_new();
	mq_vm_record_set(&bare->name, "alpha");
	mq_vm_record_set(&bare->source, "/srv/vms/alpha.yaml");
	mq_vm_record_set(&bare->spec_json, "{}");
	mq_vm_record_set(&bare->spec_hash, "h");
	mq_vm_record_set(&bare->desired, "stopped");
	mq_vm_record_set(&bare->status, MQ_STATUS_CREATED);
	/* NULL qmp_path/accel/last_error, zero numbers, hold false */

	struct mq_vm_record *huge = sample("mid");
	huge->start_time = UINT64_MAX - 7; /* beyond INT64_MAX: stored as int64 */
	huge->pid = INT64_MAX;
	huge->hold = false;

	int64_t before = mq_now_ms();
	put_ok(s, full);
	put_ok(s, bare);
	put_ok(s, huge);
	int64_t after = mq_now_ms();

	struct mq_vm_record *g = get_ok(s, "zeta");
	assert_same_record(g, full);
	ck_assert_int_eq(g->created_at, 1600000000000);
	ck_assert_int_ge(g->updated_at, before);
	ck_assert_int_le(g->updated_at, after);
	mq_vm_record_free(g);

	g = get_ok(s, "alpha");
	assert_same_record(g, bare);
	ck_assert_ptr_null(g->qmp_path);
	ck_assert_ptr_null(g->accel);
	ck_assert_ptr_null(g->last_error);
	ck_assert(!g->hold);
	ck_assert_int_eq(g->pid, 0);
	ck_assert_uint_eq(g->start_time, 0);
	ck_assert_int_ge(g->created_at, before);
	ck_assert_int_le(g->created_at, after);
	mq_vm_record_free(g);

	g = get_ok(s, "mid");
	ck_assert_uint_eq(g->start_time, UINT64_MAX - 7);
	ck_assert_int_eq(g->pid, INT64_MAX);
	assert_same_record(g, huge);
	mq_vm_record_free(g);

	struct mq_vm_record **list = NULL;
	size_t n = 99;
	ck_assert_int_eq(mq_store_vm_list(s, &list, &n, NULL), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(list[0]->name, "alpha");
	ck_assert_str_eq(list[1]->name, "mid");
	ck_assert_str_eq(list[2]->name, "zeta");
	assert_same_record(list[2], full);
	mq_vm_record_list_free(list, n);

	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_vm_delete(s, "mid", &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(get_rc(s, "mid"), -ENOENT);
	ck_assert_int_eq(mq_store_vm_delete(s, "mid", NULL), 0); /* deleting an absent row is not an error */
	ck_assert_int_eq(mq_store_vm_list(s, &list, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(list[0]->name, "alpha");
	ck_assert_str_eq(list[1]->name, "zeta");
	mq_vm_record_list_free(list, n);

	/* empty list */
	ck_assert_int_eq(mq_store_vm_delete(s, "alpha", NULL), 0);
	ck_assert_int_eq(mq_store_vm_delete(s, "zeta", NULL), 0);
	list = (struct mq_vm_record **)0x1;
	ck_assert_int_eq(mq_store_vm_list(s, &list, &n, NULL), 0);
	ck_assert_uint_eq(n, 0);
	mq_vm_record_list_free(list, n);

	mq_vm_record_free(full);
	mq_vm_record_free(bare);
	mq_vm_record_free(huge);
	mq_store_free(s);
}
END_TEST

START_TEST(test_vm_put_keeps_created_at)
{
	struct mq_store *s = open_ok(tmpdir);
	struct mq_vm_record *r = sample("web");
	r->created_at = 0;
	int64_t before = mq_now_ms();
	put_ok(s, r);
	struct mq_vm_record *g1 = get_ok(s, "web");
	ck_assert_int_ge(g1->created_at, before);
	ck_assert_int_le(g1->created_at, mq_now_ms());
	ck_assert_int_eq(g1->updated_at, g1->created_at);

	wait_past_ms(g1->updated_at);
	r->created_at = 12345; /* ignored for an existing row */
	r->updated_at = 7;     /* always replaced by now */
	mq_vm_record_set(&r->status, MQ_STATUS_STOPPED);
	mq_vm_record_set(&r->last_error, NULL);
	put_ok(s, r);
	struct mq_vm_record *g2 = get_ok(s, "web");
	ck_assert_int_eq(g2->created_at, g1->created_at);
	ck_assert_int_gt(g2->updated_at, g1->updated_at);
	ck_assert_str_eq(g2->status, MQ_STATUS_STOPPED);
	ck_assert_ptr_null(g2->last_error);

	/* A new row takes a caller-supplied created_at. */
	mq_vm_record_set(&r->name, "fresh");
	put_ok(s, r);
	struct mq_vm_record *g3 = get_ok(s, "fresh");
	ck_assert_int_eq(g3->created_at, 12345);
	ck_assert_int_ge(g3->updated_at, g2->updated_at);

	mq_vm_record_free(g1);
	mq_vm_record_free(g2);
	mq_vm_record_free(g3);
	mq_vm_record_free(r);
	mq_store_free(s);
}
END_TEST

START_TEST(test_vm_get_unknown)
{
	struct mq_store *s = open_ok(tmpdir);
	struct mq_vm_record *rec = (struct mq_vm_record *)0x1;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_vm_get(s, "nope", &rec, &err), -ENOENT);
	ck_assert_ptr_eq(rec, (struct mq_vm_record *)0x1); /* untouched on failure */
	if (err) {
		ck_assert_int_eq(err->code, ENOENT);
		ck_assert_ptr_nonnull(strstr(err->msg, "'nope'"));
	}
	mq_error_free(err);
	ck_assert_int_eq(mq_store_vm_get(s, "nope", &rec, NULL), -ENOENT);
	mq_store_free(s);
}
END_TEST

START_TEST(test_vm_put_rejects_missing_fields)
{
	struct mq_store *s = open_ok(tmpdir);
	struct mq_vm_record *r = sample("web");
	mq_vm_record_set(&r->spec_hash, NULL);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_vm_put(s, r, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(strstr(err->msg, "'spec_hash'"));
	ck_assert_ptr_nonnull(strstr(err->msg, "'web'"));
	err = mq_error_free(err);
	mq_vm_record_set(&r->name, NULL);
	ck_assert_int_eq(mq_store_vm_put(s, r, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	err = mq_error_free(err);
	ck_assert_int_eq(get_rc(s, "web"), -ENOENT);
	mq_vm_record_free(r);
	mq_store_free(s);
}
END_TEST

START_TEST(test_record_dup_and_set)
{
	struct mq_vm_record *r = sample("web");
	struct mq_vm_record *d = mq_vm_record_dup(r);
	assert_same_record(d, r);
	ck_assert_ptr_ne(d->name, r->name);
	ck_assert_ptr_ne(d->spec_json, r->spec_json);
	ck_assert_ptr_ne(d->last_error, r->last_error);
	mq_vm_record_set(&d->status, "crashed");
	ck_assert_str_eq(r->status, MQ_STATUS_RUNNING);
	ck_assert_str_eq(d->status, "crashed");
	mq_vm_record_set(&d->accel, NULL);
	ck_assert_ptr_null(d->accel);
	mq_vm_record_set(&d->accel, d->status); /* a value aliasing another field */
	ck_assert_str_eq(d->accel, "crashed");
	mq_vm_record_set(&d->status, d->status); /* self-assignment is safe */
	ck_assert_str_eq(d->status, "crashed");
	ck_assert_ptr_null(mq_vm_record_dup(NULL));
	ck_assert_ptr_null(mq_vm_record_free(NULL));
	ck_assert_ptr_null(mq_vm_record_free(d));
	mq_vm_record_free(r);
	mq_vm_record_list_free(NULL, 0);
	mq_event_list_free(NULL, 0);
	ck_assert_ptr_null(mq_event_free(NULL));
	ck_assert_ptr_null(mq_store_free(NULL));
}
END_TEST

/* ---- events -------------------------------------------------------------- */

START_TEST(test_events)
{
	struct mq_store *s = open_ok(tmpdir);
	int64_t before = mq_now_ms();
	const char *vms[] = { "a", "b", "a", NULL, "a", "b" };
	const char *actions[] = { "create", "create", "start", "apply", "stop.powerdown", "delete" };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(vms); i++) {
		char detail[32];
		snprintf(detail, sizeof(detail), "detail %zu", i);
		struct mq_error *err = NULL;
		int r = mq_store_event_add(s, vms[i], actions[i], i == 4 ? "failed" : "ok", i == 1 ? NULL : detail,
					   i == 2 ? "0123456789abcdef0123456789abcdef01234567" : NULL, &err);
		ck_assert_msg(r == 0, "event_add: %s", err ? err->msg : "");
	}
	int64_t after = mq_now_ms();

	char *user = NULL;
	struct passwd *pw = getpwuid(getuid());
	user = pw ? xstrdup(pw->pw_name) : xasprintf("%u", (unsigned)getuid());

	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, NULL, 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 6);
	for (size_t i = 0; i < n; i++) {
		ck_assert_pstr_eq(ev[i]->vm, vms[i]);
		ck_assert_str_eq(ev[i]->action, actions[i]);
		ck_assert_str_eq(ev[i]->outcome, i == 4 ? "failed" : "ok");
		ck_assert_uint_eq(ev[i]->uid, getuid());
		ck_assert_str_eq(ev[i]->user, user);
		ck_assert_int_ge(ev[i]->time, before);
		ck_assert_int_le(ev[i]->time, after);
		if (i > 0) {
			ck_assert_int_gt(ev[i]->id, ev[i - 1]->id);
			ck_assert_int_ge(ev[i]->time, ev[i - 1]->time);
		}
	}
	ck_assert_ptr_null(ev[1]->detail);
	ck_assert_str_eq(ev[0]->detail, "detail 0");
	ck_assert_str_eq(ev[2]->git_commit, "0123456789abcdef0123456789abcdef01234567");
	ck_assert_ptr_null(ev[3]->git_commit);
	mq_event_list_free(ev, n);

	/* vm filter */
	ck_assert_int_eq(mq_store_event_list(s, "a", 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(ev[0]->action, "create");
	ck_assert_str_eq(ev[1]->action, "start");
	ck_assert_str_eq(ev[2]->action, "stop.powerdown");
	mq_event_list_free(ev, n);

	/* limit: the newest N, oldest first */
	ck_assert_int_eq(mq_store_event_list(s, NULL, 2, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(ev[0]->action, "stop.powerdown");
	ck_assert_str_eq(ev[1]->action, "delete");
	mq_event_list_free(ev, n);

	ck_assert_int_eq(mq_store_event_list(s, "a", 2, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(ev[0]->action, "start");
	ck_assert_str_eq(ev[1]->action, "stop.powerdown");
	mq_event_list_free(ev, n);

	ck_assert_int_eq(mq_store_event_list(s, "b", 100, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	mq_event_list_free(ev, n);

	ck_assert_int_eq(mq_store_event_list(s, "nobody", 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 0);
	mq_event_list_free(ev, n);

	/* events outlive their vm row (no foreign key) */
	struct mq_vm_record *r = sample("a");
	put_ok(s, r);
	ck_assert_int_eq(mq_store_vm_delete(s, "a", NULL), 0);
	ck_assert_int_eq(mq_store_event_list(s, "a", 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 3);
	mq_event_list_free(ev, n);

	/* action and outcome are required */
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_event_add(s, "a", NULL, "ok", NULL, NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	mq_error_free(err);

	mq_vm_record_free(r);
	free(user);
	mq_store_free(s);
}
END_TEST

/* ---- migrations and integrity -------------------------------------------- */

static const char v1_schema[] =
	"CREATE TABLE vms (name TEXT PRIMARY KEY, source TEXT NOT NULL, spec_json TEXT NOT NULL,"
	" spec_hash TEXT NOT NULL, desired TEXT NOT NULL, status TEXT NOT NULL,"
	" pid INTEGER NOT NULL DEFAULT 0, start_time INTEGER NOT NULL DEFAULT 0, qmp_path TEXT, accel TEXT,"
	" hold INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL, started_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, vm TEXT,"
	" action TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT, uid INTEGER NOT NULL, user TEXT NOT NULL,"
	" git_commit TEXT);"
	"PRAGMA user_version = 1;";

START_TEST(test_migration_from_v1)
{
	char *db = tpath("maqet.db");
	raw_exec(db, v1_schema);
	raw_exec(db, "INSERT INTO vms (name, source, spec_json, spec_hash, desired, status, pid, start_time,"
		     " hold, created_at, updated_at) VALUES ('old', '/srv', '{}', 'h', 'running', 'running',"
		     " 42, 8589934592, 1, 1000, 2000);"
		     "INSERT INTO events (time, vm, action, outcome, uid, user) VALUES (5, 'old', 'create', 'ok',"
		     " 0, 'root');");
	ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 1);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'events_vm_id'"), 0);

	struct mq_store *s = open_ok(tmpdir);
	ck_assert_int_eq(mq_store_schema_version(s), 5);
	struct mq_vm_record *g = get_ok(s, "old");
	ck_assert_int_eq(g->pid, 42);
	ck_assert_uint_eq(g->start_time, UINT64_C(8589934592));
	ck_assert(g->hold);
	ck_assert_ptr_null(g->rolled_back_hash); /* schema 5: no rollback recorded */
	ck_assert_ptr_null(g->rolled_back_reason);
	ck_assert_int_eq(g->created_at, 1000);
	ck_assert_int_eq(g->updated_at, 2000);
	ck_assert_ptr_null(g->qmp_path);
	/* columns added by 2 -> 3 start from their defaults */
	ck_assert_int_eq(g->restart_count, 0);
	ck_assert_int_eq(g->backoff_until, 0);
	ck_assert_ptr_null(g->exit_reason);
	mq_vm_record_free(g);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, "old", 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(ev[0]->user, "root");
	mq_event_list_free(ev, n);
	mq_store_free(s);

	ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 5);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM pragma_table_info('snapshots') WHERE name IN"
				     " ('vm', 'name', 'origin', 'created_at')"),
			 4);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM pragma_table_info('vms') WHERE name IN"
				     " ('restart_count', 'backoff_until', 'exit_reason')"),
			 3);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
				     " name = 'events_vm_id' AND tbl_name = 'events'"),
			 1);

	/* Opening an up-to-date database again changes nothing. */
	s = open_ok(tmpdir);
	ck_assert_int_eq(mq_store_schema_version(s), 5);
	mq_store_free(s);
	free(db);
}
END_TEST

START_TEST(test_fresh_db_schema)
{
	struct mq_store *s = open_ok(tmpdir);
	mq_store_free(s);
	char *db = tpath("maqet.db");
	ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), MQ_STORE_SCHEMA_VERSION);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
				     " name IN ('vms', 'events')"),
			 2);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'events_vm_id'"), 1);
	/* every declared column is present */
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM pragma_table_info('vms')"), 20);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM pragma_table_info('events')"), 9);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM pragma_foreign_key_list('events')"), 0);
	free(db);
}
END_TEST

START_TEST(test_future_db_refused)
{
	char *db = tpath("maqet.db");
	raw_exec(db, v1_schema);
	raw_exec(db, "PRAGMA user_version = 99");
	struct mq_store *s = NULL;
	struct mq_error *err = NULL;
	int r = mq_store_open(tmpdir, &s, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(err);
	char *want = xasprintf("state database '%s' has schema version 99, newer than this maqet supports (%d); "
			       "upgrade maqet", db, MQ_STORE_SCHEMA_VERSION);
	ck_assert_str_eq(err->msg, want);
	mq_error_free(err);
	free(want);
	/* and the database was left alone */
	ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 99);
	free(db);
}
END_TEST

START_TEST(test_garbage_db_refused)
{
	char *db = tpath("maqet.db");
	char garbage[8192];
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (char)(i * 7 + 13);
	int fd = open(db, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	write_bytes(db, garbage, sizeof(garbage), 0);

	struct mq_store *s = NULL;
	struct mq_error *err = NULL;
	int r = mq_store_open(tmpdir, &s, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(err);
	char *want = xasprintf("state database '%s' is damaged", db);
	ck_assert_msg(strncmp(err->msg, want, strlen(want)) == 0, "got: %s", err->msg);
	ck_assert_ptr_nonnull(strstr(err->msg, "restore it from a backup"));
	ck_assert_ptr_nonnull(strstr(err->msg, "move the file away"));
	mq_error_free(err);
	free(want);
	free(db);
}
END_TEST

/* Issue 7 item 7: a zero-length maqet.db is damage, not a fresh start; a
 * new database appears only with its schema, and no temporary file stays. */
START_TEST(test_empty_db_refused)
{
	char *db = tpath("maqet.db");
	int fd = open(db, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	struct mq_store *s = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_lt(mq_store_open(tmpdir, &s, &err), 0);
	ck_assert_ptr_null(s);
	char *want = xasprintf("state database '%s' is damaged (the file is empty): restore it from a backup", db);
	ck_assert_msg(err && strncmp(err->msg, want, strlen(want)) == 0, "got: %s", err ? err->msg : "(none)");
	mq_error_free(err);
	free(want);
	struct stat st;
	ck_assert_int_eq(stat(db, &st), 0);
	ck_assert_int_eq(st.st_size, 0); /* left as found */

	/* a fresh one: schema present in the file itself, no temporary left */
	ck_assert_int_eq(unlink(db), 0);
	err = NULL;
	ck_assert_int_eq(mq_store_open(tmpdir, &s, &err), 0);
	ck_assert_int_eq(stat(db, &st), 0);
	ck_assert_int_gt(st.st_size, 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(mq_store_schema_version(s), MQ_STORE_SCHEMA_VERSION);
	mq_store_free(s);
	DIR *d = opendir(tmpdir);
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	while ((e = readdir(d)))
		ck_assert_msg(!strstr(e->d_name, ".new-"), "temporary '%s' left behind", e->d_name);
	closedir(d);
	free(db);
}
END_TEST

/* Overwrite eight pages from page 20 on: past the header, the schema and
 * every table's root page, inside the rows the test wrote. */
static void damage_pages(const char *db)
{
	struct stat st;
	ck_assert_int_eq(stat(db, &st), 0);
	int64_t page = raw_int(db, "PRAGMA page_size");
	ck_assert_int_gt(st.st_size, page * 40);
	size_t len = (size_t)page * 8;
	char *junk = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		junk[i] = (char)(0xA5 ^ (i * 31));
	write_bytes(db, junk, len, (off_t)(page * 20));
	free(junk);
}

/* Damage in the table that says what runs: refused on open. */
START_TEST(test_damaged_pages_refused)
{
	mq_store_free(open_ok(tmpdir));
	char *db = tpath("maqet.db");
	raw_exec(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 400) "
		     "INSERT INTO vms(name, source, spec_json, spec_hash, desired, status, created_at, updated_at) "
		     "SELECT 'vm' || i, 's', printf('%.600c', 'x'), 'h', 'running', 'stopped', 0, 0 FROM c;"
		     "PRAGMA wal_checkpoint(TRUNCATE);");
	damage_pages(db);

	struct mq_error *err = NULL;
	struct mq_store *s = NULL;
	int r = mq_store_open(tmpdir, &s, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(err);
	char *want = xasprintf("state database '%s' is damaged", db);
	ck_assert_msg(strncmp(err->msg, want, strlen(want)) == 0, "got: %s", err->msg);
	mq_error_free(err);
	free(want);
	free(db);
}
END_TEST

/* Damage in the event log is not looked for on open (its check grows with
 * the log); reading the events meets it with the same "damaged" error, and
 * the full check (doctor) finds it. */
START_TEST(test_damaged_event_pages_found)
{
	struct mq_store *s = open_ok(tmpdir);
	char detail[600];
	memset(detail, 'd', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	ck_assert_int_eq(mq_store_begin(s, NULL), 0);
	for (int i = 0; i < 400; i++)
		ck_assert_int_eq(mq_store_event_add(s, "a", "start", "ok", detail, NULL, NULL), 0);
	ck_assert_int_eq(mq_store_commit(s, NULL), 0);
	mq_store_free(s);
	char *db = tpath("maqet.db");
	raw_exec(db, "PRAGMA wal_checkpoint(TRUNCATE);");
	damage_pages(db);

	struct mq_error *err = NULL;
	s = open_ok(tmpdir);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_lt(mq_store_event_list(s, NULL, 0, &ev, &n, &err), 0);
	char *want = xasprintf("state database '%s' is damaged (", db);
	ck_assert_msg(err && strncmp(err->msg, want, strlen(want)) == 0, "got: %s", err ? err->msg : "(none)");
	ck_assert_msg(strstr(err->msg, "restore it from a backup, or move the file away"), "got: %s", err->msg);
	mq_error_free(err);
	err = NULL;
	ck_assert_int_lt(mq_store_integrity_check(s, &err), 0);
	ck_assert_msg(err && strncmp(err->msg, want, strlen(want)) == 0, "got: %s", err ? err->msg : "(none)");
	mq_error_free(err);
	mq_store_free(s);
	free(want);
	free(db);
}
END_TEST

/* ---- transactions and concurrency ---------------------------------------- */

/* n events of ~2 KiB, one transaction each */
static void write_big_events(struct mq_store *s, int n)
{
	char detail[2048];
	memset(detail, 'e', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(mq_store_event_add(s, "a", "start", "ok", detail, NULL, NULL), 0);
}

static off_t file_size(const char *name)
{
	char *p = tpath(name);
	struct stat st;
	off_t n = stat(p, &st) == 0 ? st.st_size : -1;
	free(p);
	return n;
}

/* The last close leaves the log (no checkpoint, no fsyncs); a command's
 * commits checkpoint once it passes MQ_STORE_WAL_PAGES; a connection set to
 * 0 (as watch sets a far larger backstop) never does. */
START_TEST(test_checkpoint_policy)
{
	struct mq_store *s = open_ok(tmpdir);
	off_t db0 = file_size("maqet.db");
	write_big_events(s, 3);
	mq_store_free(s);
	ck_assert_int_eq(file_size("maqet.db"), db0);
	ck_assert_int_gt(file_size("maqet.db-wal"), 3 * 2048);

	s = open_ok(tmpdir);
	mq_store_set_autocheckpoint(s, 0);
	write_big_events(s, 700);
	ck_assert_int_gt(file_size("maqet.db-wal"), (off_t)MQ_STORE_WAL_PAGES * 4096);
	ck_assert_int_eq(file_size("maqet.db"), db0);
	mq_store_free(s);

	s = open_ok(tmpdir); /* the next open reads the whole log */
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, NULL, 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 703);
	mq_event_list_free(ev, n);
	write_big_events(s, 1); /* past the limit: this commit checkpoints */
	ck_assert_int_gt(file_size("maqet.db"), db0 + 700 * 2048);
	mq_store_free(s);
}
END_TEST

/* A child forked while the parent's connection is suspended opens the store
 * with a clean SQLite and works (with the connection open across the fork
 * it inherits the parent's lock and WAL-index state for the file: "locking
 * protocol" errors, or locks taken on whatever fd got the same number); the
 * parent's connection works again after resume, with its settings. */
START_TEST(test_suspend_across_fork)
{
	struct mq_store *s = open_ok(tmpdir);
	mq_store_set_autocheckpoint(s, 0);
	write_big_events(s, 5);
	mq_store_suspend(s);
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		for (int fd = 3; fd < 1024; fd++)
			close(fd); /* as worker.c's hygiene does */
		struct mq_store *c = NULL;
		if (mq_store_open(tmpdir, &c, NULL) < 0)
			_exit(2);
		struct mq_event **ev = NULL;
		size_t n = 0;
		int r = mq_store_event_list(c, NULL, 0, &ev, &n, NULL);
		mq_event_list_free(ev, n);
		if (r < 0 || n != 5 || mq_store_event_add(c, "a", "child", "ok", NULL, NULL, NULL) < 0)
			_exit(3);
		mq_store_free(c);
		_exit(0);
	}
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_resume(s, &err), 0);
	int st;
	ck_assert_int_eq(waitpid(p, &st, 0), p);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", (unsigned)st);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, NULL, 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 6);
	mq_event_list_free(ev, n);
	/* autocheckpoint 0 survived the resume: no checkpoint however long */
	off_t db0 = file_size("maqet.db");
	write_big_events(s, 700);
	ck_assert_int_eq(file_size("maqet.db"), db0);
	mq_store_free(s);
}
END_TEST

START_TEST(test_transactions)
{
	struct mq_store *s = open_ok(tmpdir);
	struct mq_vm_record *r = sample("tx");

	ck_assert_int_eq(mq_store_begin(s, NULL), 0);
	put_ok(s, r);
	ck_assert_int_eq(mq_store_event_add(s, "tx", "create", "ok", NULL, NULL, NULL), 0);
	ck_assert_int_eq(get_rc(s, "tx"), 0); /* visible inside the transaction */
	mq_store_rollback(s);
	ck_assert_int_eq(get_rc(s, "tx"), -ENOENT);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, NULL, 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 0);
	mq_event_list_free(ev, n);
	mq_store_rollback(s); /* nothing open: harmless */

	ck_assert_int_eq(mq_store_begin(s, NULL), 0);
	/* not nestable */
	struct mq_error *err = NULL;
	ck_assert_int_lt(mq_store_begin(s, &err), 0);
	ck_assert_ptr_nonnull(err);
	err = mq_error_free(err);
	put_ok(s, r);
	ck_assert_int_eq(mq_store_commit(s, NULL), 0);
	mq_store_free(s);

	s = open_ok(tmpdir);
	ck_assert_int_eq(get_rc(s, "tx"), 0);
	/* commit without begin fails cleanly */
	ck_assert_int_lt(mq_store_commit(s, &err), 0);
	ck_assert_ptr_nonnull(err);
	mq_error_free(err);
	mq_vm_record_free(r);
	mq_store_free(s);
}
END_TEST

START_TEST(test_two_connections)
{
	struct mq_store *s1 = open_ok(tmpdir);
	struct mq_store *s2 = open_ok(tmpdir);
	struct mq_vm_record *r = sample("one");
	put_ok(s1, r);
	mq_vm_record_set(&r->name, "two");
	put_ok(s2, r);
	ck_assert_int_eq(mq_store_event_add(s1, "one", "create", "ok", NULL, NULL, NULL), 0);
	ck_assert_int_eq(mq_store_event_add(s2, "two", "create", "ok", NULL, NULL, NULL), 0);
	ck_assert_int_eq(get_rc(s1, "two"), 0);
	ck_assert_int_eq(get_rc(s2, "one"), 0);

	/* A write transaction in s1 hides its rows from s2 until commit. */
	ck_assert_int_eq(mq_store_begin(s1, NULL), 0);
	mq_vm_record_set(&r->name, "three");
	put_ok(s1, r);
	ck_assert_int_eq(get_rc(s2, "three"), -ENOENT);
	ck_assert_int_eq(mq_store_commit(s1, NULL), 0);
	ck_assert_int_eq(get_rc(s2, "three"), 0);

	struct mq_vm_record **list = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_vm_list(s2, &list, &n, NULL), 0);
	ck_assert_uint_eq(n, 3);
	mq_vm_record_list_free(list, n);
	mq_vm_record_free(r);
	mq_store_free(s1);
	mq_store_free(s2);
}
END_TEST

/* A child holds the write lock for a while; the parent's write must wait for
 * it (busy timeout) instead of failing with "database is locked". */
START_TEST(test_busy_timeout_waits_for_writer)
{
	struct mq_store *s = open_ok(tmpdir);
	int ready[2];
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		struct mq_store *c = NULL;
		if (mq_store_open(tmpdir, &c, NULL) < 0 || mq_store_begin(c, NULL) < 0)
			_exit(1);
		struct mq_vm_record *r = sample("child");
		if (mq_store_vm_put(c, r, NULL) < 0)
			_exit(2);
		if (write(ready[1], "x", 1) != 1)
			_exit(3);
		struct timespec ts = { 0, 600 * 1000000L }; /* hold the lock */
		nanosleep(&ts, NULL);
		if (mq_store_commit(c, NULL) < 0)
			_exit(4);
		mq_vm_record_free(r);
		mq_store_free(c);
		_exit(0);
	}
	close(ready[1]);
	char b;
	ck_assert_int_eq(read(ready[0], &b, 1), 1);
	close(ready[0]);

	int64_t t0 = mq_now_ms();
	struct mq_vm_record *r = sample("parent");
	put_ok(s, r); /* blocks until the child commits */
	int64_t waited = mq_now_ms() - t0;
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_ge(waited, 300);
	ck_assert_int_eq(get_rc(s, "child"), 0);
	ck_assert_int_eq(get_rc(s, "parent"), 0);
	mq_vm_record_free(r);
	mq_store_free(s);
}
END_TEST

/* The first open switches a fresh database to WAL, which needs an exclusive
 * lock.  While another connection holds the write lock, SQLite answers that
 * switch with SQLITE_BUSY at once, without calling the busy handler: the
 * open must still wait for the writer, as the busy timeout promises. */
START_TEST(test_open_waits_for_wal_switch)
{
	char *db = tpath("maqet.db");
	raw_exec(db, "PRAGMA user_version = 0"); /* a fresh database, rollback journal */
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'delete'"), 1);
	int ready[2];
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		sqlite3 *c = NULL;
		if (sqlite3_open_v2(db, &c, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
		    sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(2);
		struct timespec ts = { 0, 500 * 1000000L }; /* hold the write lock */
		nanosleep(&ts, NULL);
		if (sqlite3_exec(c, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			_exit(3);
		sqlite3_close(c);
		_exit(0);
	}
	close(ready[1]);
	char b;
	ck_assert_int_eq(read(ready[0], &b, 1), 1);
	close(ready[0]);

	int64_t t0 = mq_now_ms();
	struct mq_store *s = open_ok(tmpdir);
	int64_t waited = mq_now_ms() - t0;
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_ge(waited, 250);
	ck_assert_int_eq(mq_store_schema_version(s), MQ_STORE_SCHEMA_VERSION);
	mq_store_free(s);
	ck_assert_int_eq(raw_int(db, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
	free(db);
}
END_TEST

/* Several processes create and migrate the same fresh database at once,
 * released together by a pipe, in several rounds: they race for the lock that
 * switches a fresh database to WAL, which SQLite's busy handler does not
 * cover (see setup_pragmas in store.c). */
START_TEST(test_concurrent_first_open)
{
	enum { N = 8, ROUNDS = 6 };
	for (int round = 0; round < ROUNDS; round++) {
		char rel[32];
		snprintf(rel, sizeof(rel), "state%d", round);
		char *dir = tpath(rel);
		int go[2];
		ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
		pid_t pids[N];
		for (int i = 0; i < N; i++) {
			pids[i] = fork();
			ck_assert_int_ge(pids[i], 0);
			if (pids[i] == 0) {
				close(go[1]);
				char b;
				if (read(go[0], &b, 1) != 0) /* EOF: everyone is forked */
					_exit(3);
				struct mq_store *c = NULL;
				struct mq_error *err = NULL;
				if (mq_store_open(dir, &c, &err) < 0) {
					fprintf(stderr, "child %d: %s\n", i, err ? err->msg : "?");
					_exit(1);
				}
				char name[16];
				snprintf(name, sizeof(name), "vm%d", i);
				struct mq_vm_record *r = sample(name);
				if (mq_store_vm_put(c, r, &err) < 0 ||
				    mq_store_event_add(c, name, "create", "ok", NULL, NULL, &err) < 0) {
					fprintf(stderr, "child %d: %s\n", i, err ? err->msg : "?");
					_exit(2);
				}
				mq_vm_record_free(r);
				mq_store_free(c);
				_exit(0);
			}
		}
		close(go[0]);
		close(go[1]);
		for (int i = 0; i < N; i++) {
			int status;
			ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
			ck_assert(WIFEXITED(status));
			ck_assert_msg(WEXITSTATUS(status) == 0, "round %d: child %d exited %d", round, i,
				      WEXITSTATUS(status));
		}
		struct mq_store *s = open_ok(dir);
		ck_assert_int_eq(mq_store_schema_version(s), MQ_STORE_SCHEMA_VERSION);
		struct mq_vm_record **list = NULL;
		size_t n = 0;
		ck_assert_int_eq(mq_store_vm_list(s, &list, &n, NULL), 0);
		ck_assert_uint_eq(n, N);
		mq_vm_record_list_free(list, n);
		struct mq_event **ev = NULL;
		ck_assert_int_eq(mq_store_event_list(s, NULL, 0, &ev, &n, NULL), 0);
		ck_assert_uint_eq(n, N);
		mq_event_list_free(ev, n);
		mq_store_free(s);
		free(dir);
	}
}
END_TEST

/* ---- error mapping ------------------------------------------------------- */

static void expect_mapped(int rc, int sys_errno, const char *what, int want_rc, const char *want_msg)
{
	struct mq_error *err = NULL;
	int r = mq_store_map_error(rc, sys_errno, what, "/var/lib/maqet", "/var/lib/maqet/maqet.db",
				   sqlite3_errstr(rc), &err);
	ck_assert_msg(r == want_rc, "rc %d errno %d: got %d, want %d", rc, sys_errno, r, want_rc);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, -want_rc);
	ck_assert_str_eq(err->msg, want_msg);
	/* SQLite's own words for these never reach the user */
	ck_assert_ptr_null(strstr(err->msg, "disk I/O error"));
	mq_error_free(err);
}

START_TEST(test_error_mapping_disk)
{
	const char *full_vm = "cannot record vm 'web': no space left on device in state dir '/var/lib/maqet'";
	expect_mapped(SQLITE_FULL, 0, "cannot record vm 'web'", -ENOSPC, full_vm);
	/* a stale errno does not turn SQLITE_FULL into something else */
	expect_mapped(SQLITE_FULL, EIO, "cannot record vm 'web'", -ENOSPC, full_vm);
	/* SQLite reports some full-disk failures as I/O errors: the errno decides */
	expect_mapped(SQLITE_IOERR_WRITE, ENOSPC, "cannot record vm 'web'", -ENOSPC, full_vm);
	expect_mapped(SQLITE_IOERR_SHMSIZE, ENOSPC, "cannot record vm 'web'", -ENOSPC, full_vm);
	expect_mapped(SQLITE_IOERR_TRUNCATE, ENOSPC, "cannot record vm 'web'", -ENOSPC, full_vm);
	expect_mapped(SQLITE_IOERR_FSYNC, ENOSPC, "cannot record vm 'web'", -ENOSPC, full_vm);
	expect_mapped(SQLITE_CANTOPEN, ENOSPC, "cannot record vm 'web'", -ENOSPC, full_vm);
	expect_mapped(SQLITE_IOERR_WRITE, EDQUOT, "cannot record vm 'web'", -EDQUOT,
		      "cannot record vm 'web': disk quota exceeded in state dir '/var/lib/maqet'");
	/* any other I/O error */
	const char *io_vm = "cannot record vm 'web': i/o error in state dir '/var/lib/maqet'";
	expect_mapped(SQLITE_IOERR, 0, "cannot record vm 'web'", -EIO, io_vm);
	expect_mapped(SQLITE_IOERR_WRITE, EIO, "cannot record vm 'web'", -EIO, io_vm);
	expect_mapped(SQLITE_IOERR_FSYNC, 0, "cannot record vm 'web'", -EIO, io_vm);
	expect_mapped(SQLITE_IOERR_READ, EIO, "cannot record vm 'web'", -EIO, io_vm);
	/* events say so */
	expect_mapped(SQLITE_FULL, 0, "cannot record event for vm 'web'", -ENOSPC,
		      "cannot record event for vm 'web': no space left on device in state dir '/var/lib/maqet'");
	expect_mapped(SQLITE_IOERR_WRITE, EIO, "cannot record event for vm 'web'", -EIO,
		      "cannot record event for vm 'web': i/o error in state dir '/var/lib/maqet'");

	int code = 0;
	ck_assert_str_eq(mq_store_disk_cause(SQLITE_IOERR_SHMSIZE, ENOSPC, &code), "no space left on device");
	ck_assert_int_eq(code, ENOSPC);
	ck_assert_ptr_null(mq_store_disk_cause(SQLITE_BUSY, ENOSPC, &code));
	ck_assert_ptr_null(mq_store_disk_cause(SQLITE_CONSTRAINT_TRIGGER, 0, &code));
	ck_assert_ptr_null(mq_store_disk_cause(SQLITE_CANTOPEN, EACCES, &code));
	ck_assert_ptr_null(mq_store_disk_cause(SQLITE_IOERR_NOMEM, 0, &code));
}
END_TEST

START_TEST(test_error_mapping_other)
{
	/* not about the disk: SQLite's message and the database named */
	expect_mapped(SQLITE_BUSY, 0, "cannot record vm 'web'", -EBUSY,
		      "cannot record vm 'web' in state database '/var/lib/maqet/maqet.db': database is locked");
	expect_mapped(SQLITE_CONSTRAINT_TRIGGER, 0, "cannot record event for vm 'web'", -EINVAL,
		      "cannot record event for vm 'web' in state database '/var/lib/maqet/maqet.db': "
		      "constraint failed");
	expect_mapped(SQLITE_CANTOPEN, EACCES, "cannot start transaction", -EACCES,
		      "cannot start transaction in state database '/var/lib/maqet/maqet.db': "
		      "unable to open database file");
	expect_mapped(SQLITE_READONLY, 0, "cannot record vm 'web'", -EROFS,
		      "cannot record vm 'web' in state database '/var/lib/maqet/maqet.db': "
		      "attempt to write a readonly database");
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_map_error(SQLITE_IOERR_NOMEM, 0, "x", "/d", "/d/maqet.db", NULL, &err), -ENOMEM);
	mq_error_free(err);
	ck_assert_int_eq(mq_store_map_error(SQLITE_FULL, 0, "x", "/d", "/d/maqet.db", NULL, NULL), -ENOSPC);
}
END_TEST

/* A database that cannot grow (max_page_count) fails writes with the very
 * SQLITE_FULL a full disk gives: the message and code of a full disk, and
 * nothing half-written. */
START_TEST(test_full_database)
{
	struct mq_store *s = open_ok(tmpdir);
	struct mq_vm_record *r = sample("web");
	put_ok(s, r);
	ck_assert_int_eq(mq_store_event_add(s, "web", "create", "ok", NULL, NULL, NULL), 0);
	struct mq_vm_record *before = get_ok(s, "web");

	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(s->db, "PRAGMA page_count", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t pages = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	char *sql = xasprintf("PRAGMA max_page_count = %lld", (long long)pages);
	ck_assert_int_eq(sqlite3_exec(s->db, sql, NULL, NULL, NULL), SQLITE_OK);
	free(sql);

	size_t big = 256 * 1024;
	char *json = xmalloc(big + 1);
	memset(json, 'x', big);
	json[big] = '\0';
	mq_vm_record_set(&r->spec_json, json);
	mq_vm_record_set(&r->status, MQ_STATUS_STOPPED);

	char *want = xasprintf("cannot record vm 'web': no space left on device in state dir '%s'", tmpdir);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_vm_put(s, r, &err), -ENOSPC);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err->msg, want);
	ck_assert_int_eq(err->code, ENOSPC);
	err = mq_error_free(err);
	ck_assert_int_eq(mq_store_vm_put_event(s, r, "stop", "ok", json, NULL, &err), -ENOSPC);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err->msg, want);
	err = mq_error_free(err);

	/* an event too large for what is left */
	ck_assert_int_eq(mq_store_event_add(s, "web", "start", "ok", json, NULL, &err), -ENOSPC);
	ck_assert_ptr_nonnull(err);
	char *want_ev = xasprintf("cannot record event for vm 'web': no space left on device in state dir '%s'",
				  tmpdir);
	ck_assert_str_eq(err->msg, want_ev);
	err = mq_error_free(err);

	/* nothing changed, and the store still works */
	struct mq_vm_record *after = get_ok(s, "web");
	assert_same_record(after, before);
	ck_assert_int_eq(after->updated_at, before->updated_at);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, NULL, 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	mq_event_list_free(ev, n);
	ck_assert_int_eq(mq_store_begin(s, NULL), 0);
	mq_store_rollback(s);

	free(want_ev);
	free(want);
	free(json);
	mq_vm_record_free(after);
	mq_vm_record_free(before);
	mq_vm_record_free(r);
	mq_store_free(s);
}
END_TEST

/* ---- a record and its event commit together ------------------------------ */

static size_t event_count(struct mq_store *s, const char *vm)
{
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, vm, 0, &ev, &n, NULL), 0);
	mq_event_list_free(ev, n);
	return n;
}

/* Triggers that make one of the two writes fail, installed from a second
 * connection (as a damaged or hostile database could). */
#define FAIL_EVENTS "CREATE TRIGGER fail_events BEFORE INSERT ON events " \
	"BEGIN SELECT RAISE(ABORT, 'injected event failure'); END;"
#define FAIL_VM_WRITES "CREATE TRIGGER fail_vm_insert BEFORE INSERT ON vms " \
	"BEGIN SELECT RAISE(ABORT, 'injected record failure'); END;" \
	"CREATE TRIGGER fail_vm_update BEFORE UPDATE ON vms " \
	"BEGIN SELECT RAISE(ABORT, 'injected record failure'); END;" \
	"CREATE TRIGGER fail_vm_delete BEFORE DELETE ON vms " \
	"BEGIN SELECT RAISE(ABORT, 'injected record failure'); END;"

START_TEST(test_put_event_together)
{
	struct mq_store *s = open_ok(tmpdir);
	char *db = tpath("maqet.db");
	struct mq_vm_record *r = sample("web");
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_vm_put_event(s, r, "create", "ok", "vms/web.yaml", SHA_A_FOR_EVENTS, &err), 0);
	ck_assert_ptr_null(err);
	struct mq_vm_record *before = get_ok(s, "web");
	assert_same_record(before, r);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, "web", 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(ev[0]->action, "create");
	ck_assert_str_eq(ev[0]->outcome, "ok");
	ck_assert_str_eq(ev[0]->detail, "vms/web.yaml");
	ck_assert_str_eq(ev[0]->git_commit, SHA_A_FOR_EVENTS);
	mq_event_list_free(ev, n);

	/* The event insert fails: the record keeps its previous content. */
	raw_exec(db, FAIL_EVENTS);
	wait_past_ms(before->updated_at);
	mq_vm_record_set(&r->status, MQ_STATUS_STOPPED);
	r->pid = 0;
	ck_assert_int_eq(mq_store_vm_put_event(s, r, "stop", "ok", NULL, NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err->msg, "cannot record event for vm 'web'", 32) == 0, "got: %s", err->msg);
	ck_assert_ptr_nonnull(strstr(err->msg, "injected event failure"));
	err = mq_error_free(err);
	struct mq_vm_record *g = get_ok(s, "web");
	assert_same_record(g, before);
	ck_assert_int_eq(g->updated_at, before->updated_at);
	mq_vm_record_free(g);
	ck_assert_uint_eq(event_count(s, NULL), 1);
	/* ... and a new vm is not created */
	struct mq_vm_record *fresh = sample("fresh");
	ck_assert_int_lt(mq_store_vm_put_event(s, fresh, "create", "ok", NULL, NULL, NULL), 0);
	ck_assert_int_eq(get_rc(s, "fresh"), -ENOENT);

	/* Inside the caller's transaction only the pair is undone. */
	ck_assert_int_eq(mq_store_begin(s, NULL), 0);
	put_ok(s, fresh);
	ck_assert_int_lt(mq_store_vm_put_event(s, r, "stop", "ok", NULL, NULL, NULL), 0);
	ck_assert_int_eq(mq_store_commit(s, NULL), 0);
	ck_assert_int_eq(get_rc(s, "fresh"), 0);
	g = get_ok(s, "web");
	ck_assert_str_eq(g->status, MQ_STATUS_RUNNING);
	mq_vm_record_free(g);

	/* Vice versa: the record write fails, so no event is added. */
	raw_exec(db, "DROP TRIGGER fail_events;" FAIL_VM_WRITES);
	ck_assert_int_eq(mq_store_vm_put_event(s, r, "stop", "ok", NULL, NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err->msg, "cannot record vm 'web'", 22) == 0, "got: %s", err->msg);
	ck_assert_ptr_nonnull(strstr(err->msg, "injected record failure"));
	err = mq_error_free(err);
	ck_assert_uint_eq(event_count(s, NULL), 1);
	g = get_ok(s, "web");
	assert_same_record(g, before);
	mq_vm_record_free(g);

	/* Both writes work again: both are there. */
	raw_exec(db, "DROP TRIGGER fail_vm_insert; DROP TRIGGER fail_vm_update; DROP TRIGGER fail_vm_delete;");
	ck_assert_int_eq(mq_store_vm_put_event(s, r, "stop", "ok", "powerdown", NULL, &err), 0);
	g = get_ok(s, "web");
	ck_assert_str_eq(g->status, MQ_STATUS_STOPPED);
	ck_assert_int_eq(g->created_at, before->created_at);
	mq_vm_record_free(g);
	ck_assert_uint_eq(event_count(s, "web"), 2);

	/* a record without a name is refused before anything is written */
	mq_vm_record_set(&fresh->name, NULL);
	ck_assert_int_eq(mq_store_vm_put_event(s, fresh, "create", "ok", NULL, NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	err = mq_error_free(err);
	ck_assert_uint_eq(event_count(s, NULL), 2);
	/* and an event without an action takes the record with it */
	mq_vm_record_set(&r->status, MQ_STATUS_FAILED);
	ck_assert_int_eq(mq_store_vm_put_event(s, r, NULL, "ok", NULL, NULL, NULL), -EINVAL);
	g = get_ok(s, "web");
	ck_assert_str_eq(g->status, MQ_STATUS_STOPPED);
	mq_vm_record_free(g);

	mq_vm_record_free(fresh);
	mq_vm_record_free(before);
	mq_vm_record_free(r);
	free(db);
	mq_store_free(s);
}
END_TEST

START_TEST(test_delete_event_together)
{
	struct mq_store *s = open_ok(tmpdir);
	char *db = tpath("maqet.db");
	struct mq_vm_record *r = sample("web");
	put_ok(s, r);

	/* the event fails: the record stays */
	raw_exec(db, FAIL_EVENTS);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_vm_delete_event(s, "web", "delete", "ok", "deleted", NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err->msg, "cannot record event for vm 'web'", 32) == 0, "got: %s", err->msg);
	err = mq_error_free(err);
	ck_assert_int_eq(get_rc(s, "web"), 0);

	/* the delete fails: no event */
	raw_exec(db, "DROP TRIGGER fail_events;" FAIL_VM_WRITES);
	ck_assert_int_eq(mq_store_vm_delete_event(s, "web", "delete", "ok", "deleted", NULL, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err->msg, "cannot forget vm 'web'", 22) == 0, "got: %s", err->msg);
	err = mq_error_free(err);
	ck_assert_int_eq(get_rc(s, "web"), 0);
	ck_assert_uint_eq(event_count(s, NULL), 0);

	/* both work: both happen */
	raw_exec(db, "DROP TRIGGER fail_vm_insert; DROP TRIGGER fail_vm_update; DROP TRIGGER fail_vm_delete;");
	ck_assert_int_eq(mq_store_vm_delete_event(s, "web", "delete", "ok", "deleted", SHA_A_FOR_EVENTS, &err), 0);
	ck_assert_int_eq(get_rc(s, "web"), -ENOENT);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, "web", 0, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(ev[0]->action, "delete");
	ck_assert_str_eq(ev[0]->detail, "deleted");
	ck_assert_str_eq(ev[0]->git_commit, SHA_A_FOR_EVENTS);
	mq_event_list_free(ev, n);
	/* an absent record: the event alone (deleting nothing is not an error) */
	ck_assert_int_eq(mq_store_vm_delete_event(s, "web", "delete", "ok", NULL, NULL, NULL), 0);
	ck_assert_uint_eq(event_count(s, "web"), 2);
	ck_assert_int_eq(mq_store_vm_delete_event(s, NULL, "delete", "ok", NULL, NULL, &err), -EINVAL);
	mq_error_free(err);

	mq_vm_record_free(r);
	free(db);
	mq_store_free(s);
}
END_TEST

/* ---- fd hygiene ---------------------------------------------------------- */

#define MAX_FDS 1024

static void open_fds(bool present[MAX_FDS], int skip)
{
	memset(present, 0, MAX_FDS * sizeof(bool));
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		int fd;
		ck_assert_int_eq(mq_parse_int(de->d_name, 0, INT_MAX, &fd), 0);
		if (fd == dirfd(d) || fd == skip || fd >= MAX_FDS)
			continue;
		present[fd] = true;
	}
	closedir(d);
}

START_TEST(test_all_fds_cloexec)
{
	/* fds the test harness itself has open are not ours to judge */
	bool before[MAX_FDS], after[MAX_FDS];
	open_fds(before, -1);

	struct mq_store *s = open_ok(tmpdir);
	struct mq_vm_record *r = sample("web");
	put_ok(s, r);
	ck_assert_int_eq(mq_store_event_add(s, "web", "create", "ok", NULL, NULL, NULL), 0);
	struct mq_vm_record *g = get_ok(s, "web");
	mq_vm_record_free(g);

	open_fds(after, -1);
	char *db = tpath("maqet.db");
	int checked = 0;
	bool saw_db = false, saw_wal = false;
	for (int fd = 3; fd < MAX_FDS; fd++) {
		if (!after[fd] || before[fd])
			continue;
		int flags = fcntl(fd, F_GETFD);
		char link[64], target[PATH_MAX];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		ck_assert_msg(flags >= 0 && (flags & FD_CLOEXEC), "fd %d (%s) is not close-on-exec", fd, target);
		checked++;
		if (strcmp(target, db) == 0)
			saw_db = true;
		if (strncmp(target, db, strlen(db)) == 0 && strcmp(target + strlen(db), "-wal") == 0)
			saw_wal = true;
	}
	/* the check must have looked at the database's own fds */
	ck_assert(saw_db);
	ck_assert(saw_wal);
	ck_assert_int_ge(checked, 2);
	free(db);
	mq_vm_record_free(r);
	mq_store_free(s);
}
END_TEST

START_TEST(test_now_ms)
{
	struct timespec ts;
	ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
	int64_t a = (int64_t)ts.tv_sec * 1000;
	int64_t t = mq_now_ms();
	ck_assert_int_ge(t, a);
	ck_assert_int_lt(t, a + 5000);
	ck_assert_int_gt(t, INT64_C(1600000000000)); /* milliseconds, not seconds */
}
END_TEST

/* ---- git ----------------------------------------------------------------- */

#define SHA_A "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
#define SHA_B "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
#define SHA_C "8ab686eafeb1f44702738c8b0f24f2567c36da6d"
#define SHA256_A "6b86b273ff34fce19d6b804eff5a3f5747ada4ea22f1d49c01e52ddb7875b4b8"

static void expect_commit(const char *path, const char *want)
{
	char *got = mq_git_commit_for(path);
	const char *shown = path ? path : "(null)";
	if (!want) {
		ck_assert_msg(got == NULL, "%s: expected no commit, got %s", shown, got ? got : "");
		return;
	}
	ck_assert_msg(got != NULL, "%s: expected %s, got NULL", shown, want);
	ck_assert_str_eq(got, want);
	free(got);
}

static char *repo_file(const char *rel, const char *text)
{
	char *p = tpath(rel);
	write_text(p, text);
	return p;
}

START_TEST(test_git_loose_ref)
{
	free(repo_file("repo/.git/HEAD", "ref: refs/heads/main\n"));
	free(repo_file("repo/.git/refs/heads/main", SHA_A "\n"));
	free(repo_file("repo/.git/config", "[core]\n"));
	char *f = repo_file("repo/vms/deep/web.yaml", "name: web\n");
	expect_commit(f, SHA_A);
	char *d = tpath("repo/vms/deep");
	expect_commit(d, SHA_A);
	char *root = tpath("repo");
	expect_commit(root, SHA_A);
	/* a file that does not exist yet: its directory counts */
	char *nf = tpath("repo/vms/new.yaml");
	expect_commit(nf, SHA_A);
	/* a relative path */
	char *cwd = getcwd(NULL, 0);
	ck_assert_int_eq(chdir(d), 0);
	expect_commit("web.yaml", SHA_A);
	expect_commit(".", SHA_A);
	ck_assert_int_eq(chdir(cwd), 0);
	free(cwd);
	/* a loose ref wins over a stale packed one */
	free(repo_file("repo/.git/packed-refs", SHA_B " refs/heads/main\n"));
	expect_commit(f, SHA_A);
	/* uppercase hex is normalised */
	free(repo_file("repo/.git/refs/heads/main", "3B18E512DBA79E4C8300DD08AEB37F8E728B8DAD\n"));
	expect_commit(f, SHA_A);
	free(nf);
	free(root);
	free(d);
	free(f);
}
END_TEST

START_TEST(test_git_packed_ref)
{
	free(repo_file("repo/.git/HEAD", "ref: refs/heads/dev\n"));
	char *heads = tpath("repo/.git/refs/heads");
	ck_assert_int_eq(mq_mkdir_p(heads, 0755, NULL), 0);
	free(repo_file("repo/.git/packed-refs", "# pack-refs with: peeled fully-peeled sorted \n"
						  SHA_B " refs/heads/de\n"
						  SHA_C " refs/heads/dev\n"
						  SHA_A " refs/heads/dev2\n"
						  SHA_A " refs/tags/v1\n"
						  "^" SHA_B "\n"));
	char *d = tpath("repo");
	expect_commit(d, SHA_C);
	/* symbolic ref chain: HEAD -> refs/heads/alias -> refs/tags/v1 (packed) */
	free(repo_file("repo/.git/HEAD", "ref: refs/heads/alias\n"));
	free(repo_file("repo/.git/refs/heads/alias", "ref: refs/tags/v1\n"));
	expect_commit(d, SHA_A);
	/* unborn branch: no loose ref, not packed */
	free(repo_file("repo/.git/HEAD", "ref: refs/heads/unborn\n"));
	expect_commit(d, NULL);
	free(heads);
	free(d);
}
END_TEST

START_TEST(test_git_detached_and_sha256)
{
	free(repo_file("repo/.git/HEAD", SHA_B "\n"));
	char *d = tpath("repo/sub");
	ck_assert_int_eq(mq_mkdir_p(d, 0755, NULL), 0);
	expect_commit(d, SHA_B);
	free(repo_file("repo/.git/HEAD", SHA256_A "\n"));
	expect_commit(d, SHA256_A);
	free(repo_file("repo/.git/HEAD", "ref: refs/heads/main\n"));
	free(repo_file("repo/.git/refs/heads/main", SHA256_A "\n"));
	expect_commit(d, SHA256_A);
	free(d);
}
END_TEST

START_TEST(test_git_worktree_and_gitfile)
{
	/* main repository with the branch packed */
	free(repo_file("main/.git/HEAD", "ref: refs/heads/main\n"));
	free(repo_file("main/.git/packed-refs", SHA_A " refs/heads/main\n" SHA_C " refs/heads/feature\n"));
	/* linked worktree: .git file -> main/.git/worktrees/wt, commondir ../.. */
	char *wtgit = tpath("main/.git/worktrees/wt");
	char *gitfile = xasprintf("gitdir: %s\n", wtgit);
	free(repo_file("wt/.git", gitfile));
	free(repo_file("main/.git/worktrees/wt/HEAD", "ref: refs/heads/feature\n"));
	free(repo_file("main/.git/worktrees/wt/commondir", "../..\n"));
	char *wt = tpath("wt");
	expect_commit(wt, SHA_C);
	/* a loose ref in the common dir is found too */
	free(repo_file("main/.git/refs/heads/feature", SHA_B "\n"));
	expect_commit(wt, SHA_B);
	char *mainrepo = tpath("main");
	expect_commit(mainrepo, SHA_A);

	/* submodule-style relative gitdir */
	free(repo_file("super/.git/modules/sub/HEAD", SHA_C "\n"));
	free(repo_file("super/sub/.git", "gitdir: ../.git/modules/sub\n"));
	char *f = repo_file("super/sub/vm.yaml", "name: x\n");
	expect_commit(f, SHA_C);
	free(f);
	free(mainrepo);
	free(wt);
	free(gitfile);
	free(wtgit);
}
END_TEST

START_TEST(test_git_invalid)
{
	char *d = tpath("repo");
	free(repo_file("repo/.git/HEAD", "not a hash\n"));
	expect_commit(d, NULL);
	free(repo_file("repo/.git/HEAD", "3b18e512dba79e4c8300dd08aeb37f8e728b8da\n")); /* 39 hex */
	expect_commit(d, NULL);
	free(repo_file("repo/.git/HEAD", "3b18e512dba79e4c8300dd08aeb37f8e728b8dzz\n"));
	expect_commit(d, NULL);
	/* a ref name escaping the git dir is not followed */
	free(repo_file("outside", SHA_A "\n"));
	free(repo_file("repo/.git/HEAD", "ref: refs/../../outside\n"));
	expect_commit(d, NULL);
	free(repo_file("repo/.git/HEAD", "ref: ../outside\n"));
	expect_commit(d, NULL);
	/* a symref loop ends */
	free(repo_file("repo/.git/HEAD", "ref: refs/heads/a\n"));
	free(repo_file("repo/.git/refs/heads/a", "ref: refs/heads/b\n"));
	free(repo_file("repo/.git/refs/heads/b", "ref: refs/heads/a\n"));
	expect_commit(d, NULL);
	/* an oversized HEAD is not read */
	char *big = xmalloc(100000);
	memset(big, 'a', 99999);
	big[99999] = '\0';
	free(repo_file("repo/.git/HEAD", big));
	expect_commit(d, NULL);
	free(big);
	/* a .git file that does not say gitdir */
	free(repo_file("wt/.git", "nonsense\n"));
	char *wt = tpath("wt");
	expect_commit(wt, NULL);
	free(wt);
	/* no HEAD at all */
	char *head = tpath("repo/.git/HEAD");
	ck_assert_int_eq(unlink(head), 0);
	expect_commit(d, NULL);
	free(head);
	free(d);
	expect_commit(NULL, NULL);
	expect_commit("", NULL);
}
END_TEST

START_TEST(test_git_outside_repo)
{
	/* mkdtemp put tmpdir under /tmp; neither /tmp nor / is a work tree here
	 * (checked first, so a failure below means a real bug). */
	struct stat st;
	ck_assert_msg(stat("/tmp/.git", &st) < 0 && stat("/.git", &st) < 0,
		      "/tmp or / holds a .git: this test needs a /tmp outside any repository");
	char *f = repo_file("plain/vm.yaml", "name: x\n");
	expect_commit(f, NULL);
	expect_commit(tmpdir, NULL);
	expect_commit("/tmp", NULL);
	char *missing = tpath("no/such/dir/vm.yaml");
	expect_commit(missing, NULL);
	free(missing);
	free(f);
}
END_TEST

static char *run_capture(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	char buf[256] = "";
	char *ok = fgets(buf, sizeof(buf), p);
	int st = pclose(p);
	if (!ok || st != 0)
		return NULL;
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return xstrdup(buf);
}

/* Cross-check with the real git binary when there is one. */
START_TEST(test_git_real_repository)
{
	if (access("/usr/bin/git", X_OK) != 0 && system("command -v git >/dev/null 2>&1") != 0)
		return; /* optional: the hand-made cases above cover the logic */
	char *repo = tpath("real");
	char *sub = tpath("real/vms");
	ck_assert_int_eq(mq_mkdir_p(sub, 0755, NULL), 0);
	setenv("HOME", tmpdir, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	unsetenv("GIT_DIR");
	unsetenv("GIT_WORK_TREE");
	char *cmd = xasprintf("cd '%s' && git init -q . && echo a > vms/a.yaml && git add vms/a.yaml && "
			      "git -c user.name=t -c user.email=t@example.com -c commit.gpgsign=false "
			      "commit -q -m one && git rev-parse HEAD",
			      repo);
	char *want = run_capture(cmd);
	free(cmd);
	ck_assert_ptr_nonnull(want);
	char *f = tpath("real/vms/a.yaml");
	expect_commit(f, want);

	/* after packing the refs */
	cmd = xasprintf("cd '%s' && git pack-refs --all && git rev-parse HEAD", repo);
	char *want2 = run_capture(cmd);
	free(cmd);
	ck_assert_ptr_nonnull(want2);
	ck_assert_str_eq(want2, want);
	expect_commit(f, want2);

	/* a second commit, then a detached HEAD at the first one */
	cmd = xasprintf("cd '%s' && git -c user.name=t -c user.email=t@example.com -c commit.gpgsign=false "
			"commit -q --allow-empty -m two && git rev-parse HEAD", repo);
	char *want3 = run_capture(cmd);
	free(cmd);
	ck_assert_ptr_nonnull(want3);
	ck_assert_str_ne(want3, want);
	expect_commit(sub, want3);
	cmd = xasprintf("cd '%s' && git -c advice.detachedHead=false checkout -q --detach '%s' && "
			"git rev-parse HEAD", repo, want);
	char *want4 = run_capture(cmd);
	free(cmd);
	ck_assert_ptr_nonnull(want4);
	ck_assert_str_eq(want4, want);
	expect_commit(sub, want);

	/* a linked worktree on a new branch at the second commit */
	char *wt = tpath("real-wt");
	cmd = xasprintf("cd '%s' && git worktree add -q -b side '%s' '%s' && cd '%s' && git rev-parse HEAD",
			repo, wt, want3, wt);
	char *want5 = run_capture(cmd);
	free(cmd);
	ck_assert_ptr_nonnull(want5);
	ck_assert_str_eq(want5, want3);
	expect_commit(wt, want3);

	free(want5);
	free(wt);
	free(want4);
	free(want3);
	free(want2);
	free(want);
	free(f);
	free(sub);
	free(repo);
}
END_TEST

/* ---- audit: events with the git commit, looked up once per pass ----------- */

static const char *last_commit(struct mq_store *s)
{
	static char buf[80];
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(s, NULL, 1, &ev, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	snprintf(buf, sizeof(buf), "%s", ev[0]->git_commit ? ev[0]->git_commit : "(none)");
	mq_event_list_free(ev, n);
	return buf;
}

START_TEST(test_audit_commit_per_pass)
{
	free(repo_file("repo/.git/HEAD", "ref: refs/heads/main\n"));
	free(repo_file("repo/.git/refs/heads/main", SHA_A "\n"));
	char *src = tpath("repo/vms");
	ck_assert_int_eq(mq_mkdir_p(src, 0755, NULL), 0);
	char *state = tpath("state");
	struct mq_store *s = open_ok(state);

	mq_audit_new_pass();
	mq_event(s, "web", src, "create", "ok", NULL);
	ck_assert_str_eq(last_commit(s), SHA_A);
	ck_assert_str_eq(mq_audit_git_commit(src), SHA_A);

	/* The repository moves on: the pass keeps the commit it started with... */
	free(repo_file("repo/.git/refs/heads/main", SHA_B "\n"));
	mq_event(s, "web", src, "start", "ok", NULL);
	ck_assert_str_eq(last_commit(s), SHA_A);
	/* ...and the next pass sees the new one (a watch runs for weeks). */
	mq_audit_new_pass();
	mq_event(s, "web", src, "stop", "ok", NULL);
	ck_assert_str_eq(last_commit(s), SHA_B);

	/* record + event with the commit, in one transaction */
	struct mq_vm_record *r = sample("web");
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_audit_record(s, r, src, "update", "ok", "memory changed", &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(last_commit(s), SHA_B);
	ck_assert_int_eq(get_rc(s, "web"), 0);
	/* a source outside any repository, and none at all */
	mq_event(s, "web", tmpdir, "hold", "ok", NULL);
	ck_assert_str_eq(last_commit(s), "(none)");
	mq_event(s, NULL, NULL, "invalid", "kept-last-valid", NULL);
	ck_assert_str_eq(last_commit(s), "(none)");

	/* a failing event leaves the record as it was */
	char *db = tpath("state/maqet.db");
	raw_exec(db, FAIL_EVENTS);
	mq_vm_record_set(&r->status, MQ_STATUS_STOPPED);
	ck_assert_int_lt(mq_audit_record(s, r, src, "stop", "ok", NULL, &err), 0);
	ck_assert_ptr_nonnull(err);
	err = mq_error_free(err);
	struct mq_vm_record *g = get_ok(s, "web");
	ck_assert_str_eq(g->status, MQ_STATUS_RUNNING);
	mq_vm_record_free(g);
	ck_assert_int_lt(mq_audit_forget(s, "web", src, "delete", "ok", NULL, NULL), 0);
	ck_assert_int_eq(get_rc(s, "web"), 0);
	raw_exec(db, "DROP TRIGGER fail_events");
	ck_assert_int_eq(mq_audit_forget(s, "web", src, "delete", "ok", NULL, &err), 0);
	ck_assert_int_eq(get_rc(s, "web"), -ENOENT);
	ck_assert_str_eq(last_commit(s), SHA_B);

	mq_audit_new_pass();
	mq_audit_new_pass(); /* nothing cached: harmless */
	ck_assert_ptr_null(mq_audit_git_commit(NULL));
	free(db);
	mq_vm_record_free(r);
	mq_store_free(s);
	free(state);
	free(src);
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

static Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc;

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_open_creates_private_dir_and_db);
	tcase_add_test(tc, test_open_tightens_existing_db_mode);
	tcase_add_test(tc, test_open_failure_message);
	tcase_add_test(tc, test_reopen_keeps_data);
	tcase_add_test(tc, test_vm_round_trip);
	tcase_add_test(tc, test_vm_put_keeps_created_at);
	tcase_add_test(tc, test_vm_get_unknown);
	tcase_add_test(tc, test_vm_put_rejects_missing_fields);
	tcase_add_test(tc, test_record_dup_and_set);
	tcase_add_test(tc, test_events);
	tcase_add_test(tc, test_now_ms);
	suite_add_tcase(s, tc);

	tc = tcase_create("together");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_put_event_together);
	tcase_add_test(tc, test_delete_event_together);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_error_mapping_disk);
	tcase_add_test(tc, test_error_mapping_other);
	tcase_add_test(tc, test_full_database);
	suite_add_tcase(s, tc);

	tc = tcase_create("schema");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_migration_from_v1);
	tcase_add_test(tc, test_fresh_db_schema);
	tcase_add_test(tc, test_future_db_refused);
	tcase_add_test(tc, test_garbage_db_refused);
	tcase_add_test(tc, test_damaged_pages_refused);
	tcase_add_test(tc, test_damaged_event_pages_found);
	tcase_add_test(tc, test_checkpoint_policy);
	tcase_add_test(tc, test_suspend_across_fork);
	tcase_add_test(tc, test_empty_db_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_transactions);
	tcase_add_test(tc, test_two_connections);
	tcase_add_test(tc, test_busy_timeout_waits_for_writer);
	tcase_add_test(tc, test_open_waits_for_wal_switch);
	tcase_add_test(tc, test_concurrent_first_open);
	tcase_add_test(tc, test_all_fds_cloexec);
	suite_add_tcase(s, tc);

	tc = tcase_create("git");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_git_loose_ref);
	tcase_add_test(tc, test_git_packed_ref);
	tcase_add_test(tc, test_git_detached_and_sha256);
	tcase_add_test(tc, test_git_worktree_and_gitfile);
	tcase_add_test(tc, test_git_invalid);
	tcase_add_test(tc, test_git_outside_repo);
	tcase_add_test(tc, test_git_real_repository);
	suite_add_tcase(s, tc);

	tc = tcase_create("audit");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_audit_commit_per_pass);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(state_suite());
}
