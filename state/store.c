/* store.c - maqet's actual-state store (SQLite).  See store.h. */
#include "state/store.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/paths.h"
#include "util/xalloc.h"

#define MQ_STORE_DB_NAME "maqet.db"
#define MQ_STORE_BUSY_TIMEOUT_MS 10000

struct mq_store {
	sqlite3 *db;
	char *path;   /* <dir>/maqet.db, for messages */
	char *user;   /* cached user name for event rows */
};

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
};

_Static_assert(MQ_ARRAY_SIZE(migrations) == MQ_STORE_SCHEMA_VERSION,
	       "one migration step per schema version");

int64_t mq_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Map an SQLite result code to a positive errno value. */
static int sqlite_errno(sqlite3 *db, int rc)
{
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
	case SQLITE_IOERR: {
		int e = db ? sqlite3_system_errno(db) : 0;
		return e > 0 ? e : EIO;
	}
	default:
		return EIO;
	}
}

static int db_error(struct mq_store *s, int rc, struct mq_error **err, const char *what)
{
	return mq_error_set(err, sqlite_errno(s->db, rc), "%s in state database '%s': %s", what, s->path,
			    sqlite3_errmsg(s->db));
}

static int prepare(struct mq_store *s, const char *sql, sqlite3_stmt **st, struct mq_error **err,
		   const char *what)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	if (rc != SQLITE_OK) {
		*st = NULL;
		return db_error(s, rc, err, what);
	}
	return 0;
}

/* Run a constant statement (no values, no rows wanted). */
static int exec_const(struct mq_store *s, const char *sql, struct mq_error **err, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_error(s, rc, err, what);
	return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

static char *column_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? xstrdup((const char *)t) : NULL;
}

static int read_user_version(struct mq_store *s, int *out, struct mq_error **err)
{
	sqlite3_stmt *st;
	int r = prepare(s, "PRAGMA user_version", &st, err, "cannot read schema version");
	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = db_error(s, rc, err, "cannot read schema version");
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
			    "state database '%s' is damaged (%s): restore it from a backup, or move the file "
			    "away (with its -wal and -shm files) to start with an empty state", s->path, why);
}

/* PRAGMA quick_check must return exactly one row "ok". */
static int integrity_check(struct mq_store *s, struct mq_error **err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		if (is_corruption(rc))
			return corrupt_error(s, sqlite3_errmsg(s->db), err);
		return db_error(s, rc, err, "cannot check integrity");
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
		r = db_error(s, rc, err, "cannot check integrity");
	}
	sqlite3_finalize(st);
	return r;
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
			r = mq_error_set(err, sqlite_errno(s->db, rc),
					 "cannot migrate state database '%s' from schema version %d to %d: %s",
					 s->path, v, v + 1, sqlite3_errmsg(s->db));
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
	 * asks, and SQLite answers SQLITE_BUSY at once rather than deadlock
	 * (the busy handler is not called), so retry until the busy timeout. */
	int64_t deadline = monotonic_ms() + MQ_STORE_BUSY_TIMEOUT_MS;
	long delay_us = 500 + (long)(getpid() % 500);
	sqlite3_stmt *st;
	int r, rc;
	for (;;) {
		r = prepare(s, "PRAGMA journal_mode=WAL", &st, err, "cannot enable write-ahead logging");
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
		r = db_error(s, rc, err, "cannot enable write-ahead logging");
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
	return exec_const(s, "PRAGMA synchronous=NORMAL", err, "cannot set synchronous mode");
}

int mq_store_open(const char *dir, struct mq_store **out, struct mq_error **err)
{
	int r = mq_mkdir_p(dir, 0700, err);
	if (r < 0)
		return r;

	struct mq_store *s = xcalloc(1, sizeof(*s));
	s->path = mq_path_join(dir, MQ_STORE_DB_NAME);

	int rc = sqlite3_open_v2(s->path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (!s->db) {
			r = mq_error_set(err, ENOMEM, "cannot open state database '%s': out of memory", s->path);
		} else {
			r = mq_error_set(err, sqlite_errno(s->db, rc), "cannot open state database '%s': %s",
					 s->path, sqlite3_errmsg(s->db));
		}
		mq_store_free(s);
		return r;
	}
	sqlite3_extended_result_codes(s->db, 1);
#ifdef SQLITE_DBCONFIG_DEFENSIVE
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
#endif
	sqlite3_busy_timeout(s->db, MQ_STORE_BUSY_TIMEOUT_MS);

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

/* ---- VM records ---------------------------------------------------------- */

struct mq_vm_record *mq_vm_record_new(void)
{
	return xcalloc(1, sizeof(struct mq_vm_record));
}

struct mq_vm_record *mq_vm_record_dup(const struct mq_vm_record *r)
{
	if (!r)
		return NULL;
	struct mq_vm_record *d = mq_vm_record_new();
	*d = *r;
	d->name = xstrdup_null(r->name);
	d->source = xstrdup_null(r->source);
	d->spec_json = xstrdup_null(r->spec_json);
	d->spec_hash = xstrdup_null(r->spec_hash);
	d->desired = xstrdup_null(r->desired);
	d->status = xstrdup_null(r->status);
	d->qmp_path = xstrdup_null(r->qmp_path);
	d->accel = xstrdup_null(r->accel);
	d->last_error = xstrdup_null(r->last_error);
	d->exit_reason = xstrdup_null(r->exit_reason);
	return d;
}

struct mq_vm_record *mq_vm_record_free(struct mq_vm_record *r)
{
	if (!r)
		return NULL;
	free(r->name);
	free(r->source);
	free(r->spec_json);
	free(r->spec_hash);
	free(r->desired);
	free(r->status);
	free(r->qmp_path);
	free(r->accel);
	free(r->last_error);
	free(r->exit_reason);
	free(r);
	return NULL;
}

void mq_vm_record_list_free(struct mq_vm_record **list, size_t n)
{
	if (!list)
		return;
	for (size_t i = 0; i < n; i++)
		mq_vm_record_free(list[i]);
	free(list);
}

void mq_vm_record_set(char **field, const char *value)
{
	char *copy = xstrdup_null(value);
	free(*field);
	*field = copy;
}

#define VM_COLUMNS \
	"name, source, spec_json, spec_hash, desired, status, pid, start_time, qmp_path, accel, " \
	"hold, last_error, created_at, updated_at, started_at, restart_count, backoff_until, exit_reason"

static struct mq_vm_record *vm_from_row(sqlite3_stmt *st)
{
	struct mq_vm_record *r = mq_vm_record_new();
	r->name = column_dup(st, 0);
	r->source = column_dup(st, 1);
	r->spec_json = column_dup(st, 2);
	r->spec_hash = column_dup(st, 3);
	r->desired = column_dup(st, 4);
	r->status = column_dup(st, 5);
	r->pid = sqlite3_column_int64(st, 6);
	r->start_time = (uint64_t)sqlite3_column_int64(st, 7);
	r->qmp_path = column_dup(st, 8);
	r->accel = column_dup(st, 9);
	r->hold = sqlite3_column_int64(st, 10) != 0;
	r->last_error = column_dup(st, 11);
	r->created_at = sqlite3_column_int64(st, 12);
	r->updated_at = sqlite3_column_int64(st, 13);
	r->started_at = sqlite3_column_int64(st, 14);
	r->restart_count = (int)sqlite3_column_int64(st, 15);
	r->backoff_until = sqlite3_column_int64(st, 16);
	r->exit_reason = column_dup(st, 17);
	return r;
}

int mq_store_vm_get(struct mq_store *s, const char *name, struct mq_vm_record **out, struct mq_error **err)
{
	if (!name)
		return mq_error_set(err, EINVAL, "cannot read vm from state database '%s': no name given", s->path);
	sqlite3_stmt *st;
	char *what = xasprintf("cannot read vm '%s'", name);
	int r = prepare(s, "SELECT " VM_COLUMNS " FROM vms WHERE name = ?1", &st, err, what);
	if (r < 0)
		goto out;
	int rc = bind_text(st, 1, name);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = vm_from_row(st);
	} else if (rc == SQLITE_DONE) {
		r = mq_error_set(err, ENOENT, "no vm '%s' in state database '%s'", name, s->path);
	} else {
		r = db_error(s, rc, err, what);
	}
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

int mq_store_vm_list(struct mq_store *s, struct mq_vm_record ***out, size_t *n, struct mq_error **err)
{
	sqlite3_stmt *st;
	int r = prepare(s, "SELECT " VM_COLUMNS " FROM vms ORDER BY name", &st, err, "cannot list vms");
	if (r < 0)
		return r;
	struct mq_vm_record **list = NULL;
	size_t count = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		list = xreallocarray(list, count + 1, sizeof(*list));
		list[count++] = vm_from_row(st);
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, rc, err, "cannot list vms");
		sqlite3_finalize(st);
		mq_vm_record_list_free(list, count);
		return r;
	}
	sqlite3_finalize(st);
	*out = list;
	*n = count;
	return 0;
}

int mq_store_vm_put(struct mq_store *s, const struct mq_vm_record *rec, struct mq_error **err)
{
	if (!rec || !rec->name || !*rec->name)
		return mq_error_set(err, EINVAL, "cannot store vm in state database '%s': it has no name", s->path);
	const struct {
		const char *name, *value;
	} required[] = {
		{ "source", rec->source },   { "spec_json", rec->spec_json }, { "spec_hash", rec->spec_hash },
		{ "desired", rec->desired }, { "status", rec->status },
	};
	for (size_t i = 0; i < MQ_ARRAY_SIZE(required); i++) {
		if (!required[i].value)
			return mq_error_set(err, EINVAL, "cannot store vm '%s' in state database '%s': field '%s' is missing",
					    rec->name, s->path, required[i].name);
	}

	static const char sql[] =
		"INSERT INTO vms (" VM_COLUMNS ") "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) "
		"ON CONFLICT(name) DO UPDATE SET "
		"source = excluded.source, spec_json = excluded.spec_json, spec_hash = excluded.spec_hash, "
		"desired = excluded.desired, status = excluded.status, pid = excluded.pid, "
		"start_time = excluded.start_time, qmp_path = excluded.qmp_path, accel = excluded.accel, "
		"hold = excluded.hold, last_error = excluded.last_error, updated_at = excluded.updated_at, "
		"started_at = excluded.started_at, restart_count = excluded.restart_count, "
		"backoff_until = excluded.backoff_until, exit_reason = excluded.exit_reason";
	char *what = xasprintf("cannot store vm '%s'", rec->name);
	sqlite3_stmt *st;
	int r = prepare(s, sql, &st, err, what);
	if (r < 0)
		goto out;
	int64_t now = mq_now_ms();
	int rc = SQLITE_OK;
	if (rc == SQLITE_OK) rc = bind_text(st, 1, rec->name);
	if (rc == SQLITE_OK) rc = bind_text(st, 2, rec->source);
	if (rc == SQLITE_OK) rc = bind_text(st, 3, rec->spec_json);
	if (rc == SQLITE_OK) rc = bind_text(st, 4, rec->spec_hash);
	if (rc == SQLITE_OK) rc = bind_text(st, 5, rec->desired);
	if (rc == SQLITE_OK) rc = bind_text(st, 6, rec->status);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 7, rec->pid);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)rec->start_time);
	if (rc == SQLITE_OK) rc = bind_text(st, 9, rec->qmp_path);
	if (rc == SQLITE_OK) rc = bind_text(st, 10, rec->accel);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 11, rec->hold ? 1 : 0);
	if (rc == SQLITE_OK) rc = bind_text(st, 12, rec->last_error);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 13, rec->created_at ? rec->created_at : now);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 14, now);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 15, rec->started_at);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 16, rec->restart_count);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 17, rec->backoff_until);
	if (rc == SQLITE_OK) rc = bind_text(st, 18, rec->exit_reason);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_error(s, rc, err, what);
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

int mq_store_vm_delete(struct mq_store *s, const char *name, struct mq_error **err)
{
	if (!name)
		return mq_error_set(err, EINVAL, "cannot delete vm from state database '%s': no name given", s->path);
	char *what = xasprintf("cannot delete vm '%s'", name);
	sqlite3_stmt *st;
	int r = prepare(s, "DELETE FROM vms WHERE name = ?1", &st, err, what);
	if (r < 0)
		goto out;
	int rc = bind_text(st, 1, name);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_error(s, rc, err, what);
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

/* ---- events -------------------------------------------------------------- */

static const char *current_user(struct mq_store *s, uid_t uid)
{
	if (s->user)
		return s->user;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t len = sz > 0 ? (size_t)sz : 16384;
	char *buf = NULL;
	for (;;) {
		struct passwd pw, *res = NULL;
		buf = xrealloc(buf, len);
		int e = getpwuid_r(uid, &pw, buf, len, &res);
		if (e == ERANGE && len < (1u << 20)) {
			len *= 2;
			continue;
		}
		if (e == 0 && res && res->pw_name && *res->pw_name)
			s->user = xstrdup(res->pw_name);
		break;
	}
	free(buf);
	if (!s->user)
		s->user = xasprintf("%lu", (unsigned long)uid);
	return s->user;
}

int mq_store_event_add(struct mq_store *s, const char *vm, const char *action, const char *outcome,
		       const char *detail, const char *git_commit, struct mq_error **err)
{
	if (!action || !outcome)
		return mq_error_set(err, EINVAL, "cannot record event in state database '%s': %s is missing",
				    s->path, !action ? "action" : "outcome");
	uid_t uid = getuid();
	const char *user = current_user(s, uid);
	sqlite3_stmt *st;
	int r = prepare(s,
			"INSERT INTO events (time, vm, action, outcome, detail, uid, user, git_commit) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
			&st, err, "cannot record event");
	if (r < 0)
		return r;
	int rc = sqlite3_bind_int64(st, 1, mq_now_ms());
	if (rc == SQLITE_OK) rc = bind_text(st, 2, vm);
	if (rc == SQLITE_OK) rc = bind_text(st, 3, action);
	if (rc == SQLITE_OK) rc = bind_text(st, 4, outcome);
	if (rc == SQLITE_OK) rc = bind_text(st, 5, detail);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 6, (sqlite3_int64)uid);
	if (rc == SQLITE_OK) rc = bind_text(st, 7, user);
	if (rc == SQLITE_OK) rc = bind_text(st, 8, git_commit);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = db_error(s, rc, err, "cannot record event");
	sqlite3_finalize(st);
	return r;
}

#define EVENT_COLUMNS "id, time, vm, action, outcome, detail, uid, user, git_commit"

int mq_store_event_list(struct mq_store *s, const char *vm, size_t limit, struct mq_event ***out,
			size_t *n, struct mq_error **err)
{
	/* The newest `limit` rows, handed back oldest first.  LIMIT -1 = all. */
	static const char sql_all[] =
		"SELECT " EVENT_COLUMNS " FROM (SELECT " EVENT_COLUMNS " FROM events "
		"ORDER BY id DESC LIMIT ?1) ORDER BY id";
	static const char sql_vm[] =
		"SELECT " EVENT_COLUMNS " FROM (SELECT " EVENT_COLUMNS " FROM events WHERE vm = ?2 "
		"ORDER BY id DESC LIMIT ?1) ORDER BY id";
	sqlite3_stmt *st;
	int r = prepare(s, vm ? sql_vm : sql_all, &st, err, "cannot list events");
	if (r < 0)
		return r;
	sqlite3_int64 lim = (limit == 0 || limit > (size_t)INT64_MAX) ? -1 : (sqlite3_int64)limit;
	int rc = sqlite3_bind_int64(st, 1, lim);
	if (rc == SQLITE_OK && vm)
		rc = bind_text(st, 2, vm);
	struct mq_event **list = NULL;
	size_t count = 0;
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct mq_event *e = xcalloc(1, sizeof(*e));
			e->id = sqlite3_column_int64(st, 0);
			e->time = sqlite3_column_int64(st, 1);
			e->vm = column_dup(st, 2);
			e->action = column_dup(st, 3);
			e->outcome = column_dup(st, 4);
			e->detail = column_dup(st, 5);
			e->uid = (uint32_t)sqlite3_column_int64(st, 6);
			e->user = column_dup(st, 7);
			e->git_commit = column_dup(st, 8);
			list = xreallocarray(list, count + 1, sizeof(*list));
			list[count++] = e;
		}
	}
	if (rc != SQLITE_DONE) {
		r = db_error(s, rc, err, "cannot list events");
		sqlite3_finalize(st);
		mq_event_list_free(list, count);
		return r;
	}
	sqlite3_finalize(st);
	*out = list;
	*n = count;
	return 0;
}

struct mq_event *mq_event_free(struct mq_event *e)
{
	if (!e)
		return NULL;
	free(e->vm);
	free(e->action);
	free(e->outcome);
	free(e->detail);
	free(e->user);
	free(e->git_commit);
	free(e);
	return NULL;
}

void mq_event_list_free(struct mq_event **list, size_t n)
{
	if (!list)
		return;
	for (size_t i = 0; i < n; i++)
		mq_event_free(list[i]);
	free(list);
}
