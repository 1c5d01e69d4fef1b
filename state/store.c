/* store.c - maqet's actual-state store (SQLite): open, schema and forward
 * migrations, transactions, error mapping.  See store.h; vm records are in
 * vms.c, events in events.c. */
#include "state/store-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/paths.h"
#include "util/xalloc.h"

#define MQ_STORE_BUSY_TIMEOUT_MS 10000

/* Schema migrations: migrations[i] takes user_version i to i + 1.  Each runs
 * inside its own BEGIN IMMEDIATE transaction together with the user_version
 * bump.  Append only; never edit a step that has shipped. */
static const char *const migrations[] = {
	/* 0 -> 1: initial schema */
	"CREATE TABLE vms ("
	" name TEXT PRIMARY KEY,"
	" source TEXT NOT NULL,"
	" spec_json TEXT NOT NULL,"
	" spec_hash TEXT NOT NULL,"
	" desired TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" pid INTEGER NOT NULL DEFAULT 0,"
	" start_time INTEGER NOT NULL DEFAULT 0,"
	" qmp_path TEXT,"
	" accel TEXT,"
	" hold INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" started_at INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time INTEGER NOT NULL,"
	" vm TEXT,"
	" action TEXT NOT NULL,"
	" outcome TEXT NOT NULL,"
	" detail TEXT,"
	" uid INTEGER NOT NULL,"
	" user TEXT NOT NULL,"
	" git_commit TEXT"
	");",
	/* 1 -> 2: per-VM event history lookups */
	"CREATE INDEX events_vm_id ON events(vm, id);",
	/* 2 -> 3: watch mode's restart bookkeeping (backoff survives a restarted watch) */
	"ALTER TABLE vms ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE vms ADD COLUMN backoff_until INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE vms ADD COLUMN exit_reason TEXT;",
	/* 3 -> 4: origin of the snapshots maqet made (state/snapshots.h) */
	"CREATE TABLE snapshots ("
	" vm TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" origin TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" PRIMARY KEY (vm, name)"
	");",
	/* 4 -> 5: a restart-class change that failed to start and was rolled
	 * back (snapshots.before_change.rollback): the refused spec's hash and why */
	"ALTER TABLE vms ADD COLUMN rolled_back_hash TEXT;"
	"ALTER TABLE vms ADD COLUMN rolled_back_reason TEXT;",
};

_Static_assert(MQ_ARRAY_SIZE(migrations) == MQ_STORE_SCHEMA_VERSION,
	       "one migration step per schema version");

int64_t mq_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Map an SQLite result code to a positive errno value (disk failures are
 * classified first, by mq_store_disk_cause). */
static int sqlite_errno(int rc, int sys_errno)
{
	if (rc == SQLITE_IOERR_NOMEM)
		return ENOMEM;
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EBUSY;
	case SQLITE_NOMEM:
		return ENOMEM;
	case SQLITE_READONLY:
		return EROFS;
	case SQLITE_FULL:
		return ENOSPC;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return EACCES;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_TOOBIG:
		return EINVAL;
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
		return sys_errno > 0 ? sys_errno : EIO;
	default:
		return EIO;
	}
}

const char *mq_store_disk_cause(int rc, int sys_errno, int *code)
{
	int primary = rc & 0xff;
	bool os = primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN;
	if (primary == SQLITE_FULL || (os && sys_errno == ENOSPC)) {
		*code = ENOSPC;
		return "no space left on device";
	}
	if (os && sys_errno == EDQUOT) {
		*code = EDQUOT;
		return "disk quota exceeded";
	}
	if (primary == SQLITE_IOERR && rc != SQLITE_IOERR_NOMEM) {
		*code = EIO;
		return "i/o error";
	}
	return NULL;
}

/* The size a restarted log is cut back to: MQ_STORE_WAL_PAGES (store.h)
 * pages of 4 KiB and 64 KiB. */
#define MQ_STORE_WAL_LIMIT 1114112
_Static_assert(MQ_STORE_WAL_LIMIT == MQ_STORE_WAL_PAGES * 4096 + 65536, "MQ_STORE_WAL_LIMIT follows the page count");
#define MQ_STR2(x) #x
#define MQ_STR(x) MQ_STR2(x)

#define MQ_STORE_DAMAGED_FIX \
	"restore it from a backup, or move the file away (with its -wal and -shm files) to start with an empty state"

int mq_store_map_error(int rc, int sys_errno, const char *what, const char *dir, const char *dbpath,
		       const char *sqlmsg, struct mq_error **err)
{
	int code;
	const char *cause = mq_store_disk_cause(rc, sys_errno, &code);
	if (cause)
		return mq_error_set(err, code, "%s: %s in state dir '%s'", what, cause, dir);
	if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
		/* damage the check on open does not cover (the event log) */
		return mq_error_set(err, EIO, "state database '%s' is damaged (%s: %s): " MQ_STORE_DAMAGED_FIX, dbpath,
				    what, sqlmsg ? sqlmsg : sqlite3_errstr(rc));
	return mq_error_set(err, sqlite_errno(rc, sys_errno), "%s in state database '%s': %s", what, dbpath,
			    sqlmsg ? sqlmsg : sqlite3_errstr(rc));
}

int mq_store_db_error(struct mq_store *s, int rc, struct mq_error **err, const char *what)
{
	/* Statement results carry extended codes (sqlite3_extended_result_codes
	 * is on); ask the connection in case a caller passed a primary one. */
	if (rc == (rc & 0xff) && (sqlite3_extended_errcode(s->db) & 0xff) == rc)
		rc = sqlite3_extended_errcode(s->db);
	return mq_store_map_error(rc, sqlite3_system_errno(s->db), what, s->dir, s->path, sqlite3_errmsg(s->db),
				  err);
}

int mq_store_prepare(struct mq_store *s, const char *sql, sqlite3_stmt **st, struct mq_error **err,
		     const char *what)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	if (rc != SQLITE_OK) {
		*st = NULL;
		return mq_store_db_error(s, rc, err, what);
	}
	return 0;
}

int mq_store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

char *mq_store_column_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? xstrdup((const char *)t) : NULL;
}

/* Run a constant statement (no values, no rows wanted). */
static int exec_const(struct mq_store *s, const char *sql, struct mq_error **err, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return mq_store_db_error(s, rc, err, what);
	return 0;
}

static int read_user_version(struct mq_store *s, int *out, struct mq_error **err)
{
	sqlite3_stmt *st;
	int r = mq_store_prepare(s, "PRAGMA user_version", &st, err, "cannot read schema version");
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = mq_store_db_error(s, rc, err, "cannot read schema version");
		sqlite3_finalize(st);
		return r;
	}
	*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

static int too_new(struct mq_store *s, int v, struct mq_error **err)
{
	return mq_error_set(err, ENOTSUP,
			    "state database '%s' has schema version %d, newer than this maqet supports (%d); "
			    "upgrade maqet", s->path, v, MQ_STORE_SCHEMA_VERSION);
}

static bool is_corruption(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

static int corrupt_error(struct mq_store *s, const char *why, struct mq_error **err)
{
	return mq_error_set(err, EIO,
			    "state database '%s' is damaged (%s): " MQ_STORE_DAMAGED_FIX, s->path, why);
}

/* PRAGMA quick_check / integrity_check must return exactly one row "ok". */
static int integrity_pragma(struct mq_store *s, const char *pragma, struct mq_error **err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, pragma, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		if (is_corruption(rc))
			return corrupt_error(s, sqlite3_errmsg(s->db), err);
		return mq_store_db_error(s, rc, err, "cannot check integrity");
	}
	rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		if (!t || strcmp(t, "ok") != 0)
			r = corrupt_error(s, t ? t : "integrity check failed", err);
	} else if (is_corruption(rc)) {
		r = corrupt_error(s, sqlite3_errmsg(s->db), err);
	} else {
		r = mq_store_db_error(s, rc, err, "cannot check integrity");
	}
	sqlite3_finalize(st);
	return r;
}

/* On every open: the tables that decide what runs and what is kept (vms,
 * snapshots).  A full quick_check walks every page, so its cost grows with
 * the event log (about 95 ms at 15 MB) and every CLI command paid it; the
 * event log is checked by `maqet doctor` (PRAGMA integrity_check), and damage
 * met by any later read or write is reported with the same "damaged" error
 * (mq_store_map_error).  A write that fails on damage fails its whole record
 * transaction, and the transitional record goes first (reconciler/apply.c),
 * so no VM is touched on the strength of a record that was not written. */
static int integrity_check(struct mq_store *s, struct mq_error **err)
{
	int v;
	int r = read_user_version(s, &v, err);
	if (r == 0 && v >= 1)
		r = integrity_pragma(s, "PRAGMA quick_check(vms)", err);
	if (r == 0 && v >= 4 && v <= MQ_STORE_SCHEMA_VERSION) /* the step that made it; a newer one is refused */
		r = integrity_pragma(s, "PRAGMA quick_check(snapshots)", err);
	return r;
}

void mq_store_set_autocheckpoint(struct mq_store *s, int pages)
{
	s->autockpt = pages;
	(void)sqlite3_wal_autocheckpoint(s->db, pages);
}

int mq_store_integrity_check(struct mq_store *s, struct mq_error **err)
{
	return integrity_pragma(s, "PRAGMA integrity_check", err);
}

/* Apply migrations one step at a time.  Each step re-reads the version inside
 * its write transaction, so concurrent openers never apply a step twice. */
static int migrate(struct mq_store *s, struct mq_error **err)
{
	int v;
	int r = read_user_version(s, &v, err);
	if (r < 0)
		return r;
	if (v > MQ_STORE_SCHEMA_VERSION)
		return too_new(s, v, err);
	if (v < 0)
		return corrupt_error(s, "negative schema version", err);
	while (v < MQ_STORE_SCHEMA_VERSION) {
		r = exec_const(s, "BEGIN IMMEDIATE", err, "cannot start migration");
		if (r < 0)
			return r;
		r = read_user_version(s, &v, err);
		if (r < 0)
			goto fail;
		if (v > MQ_STORE_SCHEMA_VERSION) {
			r = too_new(s, v, err);
			goto fail;
		}
		if (v < 0) {
			r = corrupt_error(s, "negative schema version", err);
			goto fail;
		}
		if (v == MQ_STORE_SCHEMA_VERSION) {
			/* someone else finished the job */
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			break;
		}
		int rc = sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			char *what = xasprintf("cannot migrate from schema version %d to %d", v, v + 1);
			r = mq_store_db_error(s, rc, err, what);
			free(what);
			goto fail;
		}
		/* PRAGMA takes no bound parameters; the value is our own integer. */
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		r = exec_const(s, sql, err, "cannot set schema version");
		if (r < 0)
			goto fail;
		r = exec_const(s, "COMMIT", err, "cannot commit migration");
		if (r < 0)
			goto fail;
		v++;
	}
	return 0;
fail:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* The database file must not be readable by others; the -wal and -shm files
 * SQLite creates later copy the database file's mode. */
static int restrict_mode(struct mq_store *s, struct mq_error **err)
{
	struct stat st;
	if (stat(s->path, &st) < 0) {
		int e = errno;
		return mq_error_set(err, e, "cannot stat state database '%s': %s", s->path, strerror(e));
	}
	if ((st.st_mode & 07777) == 0600)
		return 0;
	if (chmod(s->path, 0600) < 0) {
		int e = errno;
		return mq_error_set(err, e, "cannot set mode 0600 on state database '%s': %s", s->path,
				    strerror(e));
	}
	return 0;
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup_pragmas(struct mq_store *s, struct mq_error **err)
{
	/* Switching a fresh database to WAL needs an exclusive lock.  When
	 * several processes open it at once, each holds a shared lock while it
	 * asks, and SQLite answers SQLITE_BUSY at once rather than deadlock:
	 * a connection that already holds a read lock never gets its busy
	 * handler called, so sqlite3_busy_timeout() (set in mq_store_open) does
	 * not help here: without this loop an open while another connection
	 * writes, or several first opens at once, fail with "database is locked"
	 * (test-state: test_open_waits_for_wal_switch, test_concurrent_first_open).
	 * So the loop stays; it only ever waits while the database is not yet in
	 * WAL mode (for a WAL database the pragma changes nothing and takes no
	 * lock), and gives up at the same deadline as the busy timeout. */
	int64_t deadline = monotonic_ms() + MQ_STORE_BUSY_TIMEOUT_MS;
	long delay_us = 500 + (long)(getpid() % 500);
	sqlite3_stmt *st;
	int r, rc;
	for (;;) {
		r = mq_store_prepare(s, "PRAGMA journal_mode=WAL", &st, err, "cannot enable write-ahead logging");
		if (r < 0)
			return r;
		rc = sqlite3_step(st);
		if ((rc & 0xff) != SQLITE_BUSY || monotonic_ms() >= deadline)
			break;
		sqlite3_finalize(st);
		struct timespec ts = { 0, delay_us * 1000 };
		nanosleep(&ts, NULL);
		if (delay_us < 20000)
			delay_us *= 2;
	}
	if (rc != SQLITE_ROW) {
		r = mq_store_db_error(s, rc, err, "cannot enable write-ahead logging");
		sqlite3_finalize(st);
		return r;
	}
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode || strcmp(mode, "wal") != 0)
		r = mq_error_set(err, EIO, "cannot enable write-ahead logging in state database '%s': "
				 "journal mode is '%s'", s->path, mode ? mode : "unknown");
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	r = exec_const(s, "PRAGMA foreign_keys=ON", err, "cannot enable foreign keys");
	if (r < 0)
		return r;
	r = exec_const(s, "PRAGMA synchronous=NORMAL", err, "cannot set synchronous mode");
	if (r < 0)
		return r;
	/* The first open of a command rebuilds the WAL index from every frame
	 * in the log (its -shm is reset when no other connection is open), so
	 * the log is kept short: checkpointed at MQ_STORE_WAL_PAGES pages and
	 * cut back to that size when it restarts. */
	r = exec_const(s, "PRAGMA wal_autocheckpoint=" MQ_STR(MQ_STORE_WAL_PAGES), err,
		       "cannot set the checkpoint interval");
	if (r < 0)
		return r;
	return exec_const(s, "PRAGMA journal_size_limit=" MQ_STR(MQ_STORE_WAL_LIMIT), err,
			  "cannot set the log size limit");
}

static int open_error(struct mq_store *s, const char *path, int rc, struct mq_error **err)
{
	if (!s->db)
		return mq_error_set(err, ENOMEM, "cannot open state database '%s': out of memory", path);
	int sys = sqlite3_system_errno(s->db), code;
	const char *cause = mq_store_disk_cause(rc, sys, &code);
	if (cause)
		return mq_error_set(err, code, "cannot open state database '%s': %s in state dir '%s'", path, cause,
				    s->dir);
	return mq_error_set(err, sqlite_errno(rc, sys), "cannot open state database '%s': %s", path,
			    sqlite3_errmsg(s->db));
}

/* Create the database with its schema as <db>.new-<pid> (rollback journal,
 * so nothing of it lives in a WAL), then link it to <db>: link() never
 * replaces a database another first open put there meanwhile. */
static int create_new(struct mq_store *s, struct mq_error **err)
{
	char *tmp = xasprintf("%s.new-%ld", s->path, (long)getpid());
	char *final = s->path;
	(void)unlink(tmp);
	s->path = tmp;
	int r = 0;
	int rc = sqlite3_open_v2(tmp, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = open_error(s, tmp, rc, err);
	} else {
		sqlite3_extended_result_codes(s->db, 1);
		sqlite3_busy_timeout(s->db, MQ_STORE_BUSY_TIMEOUT_MS);
		r = restrict_mode(s, err);
		if (r == 0)
			r = migrate(s, err);
	}
	if (s->db) {
		if (sqlite3_close(s->db) != SQLITE_OK && r == 0)
			r = mq_error_set(err, EIO, "cannot close new state database '%s'", tmp);
		s->db = NULL;
	}
	s->path = final;
	if (r == 0) {
		int fd = open(tmp, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (fsync(fd) < 0 && r == 0)
				r = mq_error_set(err, errno, "cannot write state database '%s': %s", tmp, strerror(errno));
			close(fd);
		}
	}
	if (r == 0 && link(tmp, final) < 0 && errno != EEXIST)
		r = mq_error_set(err, errno, "cannot create state database '%s': %s", final, strerror(errno));
	(void)unlink(tmp);
	free(tmp);
	return r;
}

/* Open s->path and configure the connection (no checks, no migration). */
static int open_connection(struct mq_store *s, struct mq_error **err)
{
	int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int r = open_error(s, s->path, rc, err);
		sqlite3_close(s->db);
		s->db = NULL;
		return r;
	}
	sqlite3_extended_result_codes(s->db, 1);
#ifdef SQLITE_DBCONFIG_DEFENSIVE
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
#endif
	sqlite3_busy_timeout(s->db, MQ_STORE_BUSY_TIMEOUT_MS);
	/* Keep the -wal file when the last connection closes: re-creating it
	 * on every command's first write cost a WAL header sync and a sync of
	 * the state dir (~7 ms per CLI command on ext4). */
	int persist = 1;
	(void)sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	/* And no checkpoint when the last connection closes: it cost three
	 * fsyncs (log, state dir, database) at the end of every CLI command,
	 * and the first write of the next one a sync of the restarted log's
	 * header.  The log is checkpointed instead when it passes
	 * MQ_STORE_WAL_PAGES (PRAGMA wal_autocheckpoint, by the committing
	 * connection), which bounds what the next first open must read to
	 * rebuild the WAL index.  Nothing committed is lost when maqet dies; a
	 * power loss can lose the last commits, as synchronous=NORMAL already
	 * allowed, and takes the QEMUs they describe with it. */
	(void)sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
	return 0;
}

void mq_store_suspend(struct mq_store *s)
{
	if (s && s->db) {
		sqlite3_close(s->db);
		s->db = NULL;
	}
}

int mq_store_resume(struct mq_store *s, struct mq_error **err)
{
	if (s->db)
		return 0;
	int r = open_connection(s, err);
	if (r == 0)
		r = setup_pragmas(s, err);
	if (r == 0 && s->autockpt >= 0)
		(void)sqlite3_wal_autocheckpoint(s->db, s->autockpt);
	if (r < 0 && s->db) {
		sqlite3_close(s->db);
		s->db = NULL;
	}
	return r;
}

int mq_store_open(const char *dir, struct mq_store **out, struct mq_error **err)
{
	int r = mq_mkdir_p(dir, 0700, err);
	if (r < 0)
		return r;

	struct mq_store *s = xcalloc(1, sizeof(*s));
	s->autockpt = -1;
	s->dir = xstrdup(dir);
	s->path = mq_path_join(dir, MQ_STORE_DB_NAME);

	/* A new database is created under a temporary name and linked into
	 * place only once its schema exists, so an empty maqet.db can only
	 * mean damage, never "no state yet" (which would start every VM again
	 * beside the running ones). */
	struct stat dbst;
	if (lstat(s->path, &dbst) == 0 && S_ISREG(dbst.st_mode) && dbst.st_size == 0) {
		r = corrupt_error(s, "the file is empty", err);
		mq_store_free(s);
		return r;
	}
	if (lstat(s->path, &dbst) < 0 && errno == ENOENT) {
		r = create_new(s, err);
		if (r < 0) {
			mq_store_free(s);
			return r;
		}
	}

	r = open_connection(s, err);
	if (r < 0) {
		mq_store_free(s);
		return r;
	}
	r = restrict_mode(s, err);
	if (r == 0)
		r = integrity_check(s, err);
	if (r == 0)
		r = setup_pragmas(s, err);
	if (r == 0)
		r = migrate(s, err);
	if (r < 0) {
		mq_store_free(s);
		return r;
	}
	*out = s;
	return 0;
}

struct mq_store *mq_store_free(struct mq_store *s)
{
	if (!s)
		return NULL;
	if (s->db)
		sqlite3_close(s->db);
	free(s->dir);
	free(s->path);
	free(s->user);
	free(s);
	return NULL;
}

int mq_store_schema_version(struct mq_store *s)
{
	int v;
	int r = read_user_version(s, &v, NULL);
	return r < 0 ? r : v;
}

int mq_store_begin(struct mq_store *s, struct mq_error **err)
{
	return exec_const(s, "BEGIN IMMEDIATE", err, "cannot start transaction");
}

int mq_store_commit(struct mq_store *s, struct mq_error **err)
{
	int r = exec_const(s, "COMMIT", err, "cannot commit transaction");
	/* Never leave a half-finished transaction behind on failure. */
	if (r < 0 && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

void mq_store_rollback(struct mq_store *s)
{
	if (s && s->db && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}


/* ---- units of writes that commit together -------------------------------- */

int mq_store_unit_begin(struct mq_store *s, struct mq_store_unit *u, const char *what, struct mq_error **err)
{
	u->savepoint = !sqlite3_get_autocommit(s->db);
	return exec_const(s, u->savepoint ? "SAVEPOINT mq_unit" : "BEGIN IMMEDIATE", err, what);
}

int mq_store_unit_commit(struct mq_store *s, struct mq_store_unit *u, const char *what, struct mq_error **err)
{
	int r = exec_const(s, u->savepoint ? "RELEASE mq_unit" : "COMMIT", err, what);
	if (r < 0)
		mq_store_unit_abort(s, u);
	return r;
}

void mq_store_unit_abort(struct mq_store *s, struct mq_store_unit *u)
{
	/* After some errors (a full disk, an I/O error) SQLite has already
	 * rolled the whole transaction back: then there is nothing left to undo. */
	if (sqlite3_get_autocommit(s->db))
		return;
	if (u->savepoint)
		sqlite3_exec(s->db, "ROLLBACK TO mq_unit; RELEASE mq_unit", NULL, NULL, NULL);
	else
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}
