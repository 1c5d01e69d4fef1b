/* events.c - the event log of the state store.  See events.h. */
#include "state/store-int.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/xalloc.h"

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
	char *what = vm ? xasprintf("cannot record event for vm '%s'", vm) : xstrdup("cannot record event");
	sqlite3_stmt *st;
	int r = mq_store_prepare(s,
				 "INSERT INTO events (time, vm, action, outcome, detail, uid, user, git_commit) "
				 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
				 &st, err, what);
	if (r < 0)
		goto out;
	int rc = sqlite3_bind_int64(st, 1, mq_now_ms());
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 2, vm);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 3, action);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 4, outcome);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 5, detail);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 6, (sqlite3_int64)uid);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 7, user);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 8, git_commit);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = mq_store_db_error(s, rc, err, what);
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

#define EVENT_COLUMNS "id, time, vm, action, outcome, detail, uid, user, git_commit"

int mq_store_event_each(struct mq_store *s, const char *vm, size_t limit, mq_event_fn fn, void *ud,
			struct mq_error **err)
{
	/* The newest `limit` rows, handed over oldest first, one at a time.
	 * LIMIT -1 = all. */
	static const char sql_all[] =
		"SELECT " EVENT_COLUMNS " FROM (SELECT " EVENT_COLUMNS " FROM events "
		"ORDER BY id DESC LIMIT ?1) ORDER BY id";
	static const char sql_vm[] =
		"SELECT " EVENT_COLUMNS " FROM (SELECT " EVENT_COLUMNS " FROM events WHERE vm = ?2 "
		"ORDER BY id DESC LIMIT ?1) ORDER BY id";
	static const char sql_all_nolimit[] = "SELECT " EVENT_COLUMNS " FROM events ORDER BY id";
	static const char sql_vm_nolimit[] = "SELECT " EVENT_COLUMNS " FROM events WHERE vm = ?2 ORDER BY id";
	bool all = limit == 0 || limit > (size_t)INT64_MAX;
	const char *sql = vm ? (all ? sql_vm_nolimit : sql_vm) : (all ? sql_all_nolimit : sql_all);
	sqlite3_stmt *st;
	int r = mq_store_prepare(s, sql, &st, err, "cannot list events");
	if (r < 0)
		return r;
	int rc = SQLITE_OK;
	if (!all)
		rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
	if (rc == SQLITE_OK && vm)
		rc = mq_store_bind_text(st, 2, vm);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			/* borrowed column texts: valid until the next step */
			struct mq_event e = {
				.id = sqlite3_column_int64(st, 0),
				.time = sqlite3_column_int64(st, 1),
				.vm = (char *)sqlite3_column_text(st, 2),
				.action = (char *)sqlite3_column_text(st, 3),
				.outcome = (char *)sqlite3_column_text(st, 4),
				.detail = (char *)sqlite3_column_text(st, 5),
				.uid = (uint32_t)sqlite3_column_int64(st, 6),
				.user = (char *)sqlite3_column_text(st, 7),
				.git_commit = (char *)sqlite3_column_text(st, 8),
			};
			int fr = fn(&e, ud);
			if (fr < 0) {
				sqlite3_finalize(st);
				return fr;
			}
		}
	}
	if (rc != SQLITE_DONE) {
		r = mq_store_db_error(s, rc, err, "cannot list events");
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	return 0;
}

struct collect {
	struct mq_event **list;
	size_t n;
};

static char *dup_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static int collect_one(const struct mq_event *e, void *ud)
{
	struct collect *c = ud;
	struct mq_event *d = xcalloc(1, sizeof(*d));
	*d = *e;
	d->vm = dup_null(e->vm);
	d->action = dup_null(e->action);
	d->outcome = dup_null(e->outcome);
	d->detail = dup_null(e->detail);
	d->user = dup_null(e->user);
	d->git_commit = dup_null(e->git_commit);
	c->list = xreallocarray(c->list, c->n + 1, sizeof(*c->list));
	c->list[c->n++] = d;
	return 0;
}

int mq_store_event_list(struct mq_store *s, const char *vm, size_t limit, struct mq_event ***out,
			size_t *n, struct mq_error **err)
{
	struct collect c = { NULL, 0 };
	int r = mq_store_event_each(s, vm, limit, collect_one, &c, err);
	if (r < 0) {
		mq_event_list_free(c.list, c.n);
		return r;
	}
	*out = c.list;
	*n = c.n;
	return 0;
}

int mq_store_event_prune(struct mq_store *s, size_t keep_per_vm, int64_t max_age_ms, int64_t now_ms,
			 int64_t *deleted, struct mq_error **err)
{
	int64_t total = 0;
	int r = mq_store_begin(s, err);
	if (r < 0)
		return r;
	if (max_age_ms > 0) {
		sqlite3_stmt *st;
		r = mq_store_prepare(s, "DELETE FROM events WHERE time < ?1", &st, err, "cannot prune events");
		if (r == 0) {
			int rc = sqlite3_bind_int64(st, 1, now_ms - max_age_ms);
			if (rc == SQLITE_OK)
				rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				r = mq_store_db_error(s, rc, err, "cannot prune events");
			else
				total += sqlite3_changes(s->db);
			sqlite3_finalize(st);
		}
	}
	if (r == 0 && keep_per_vm > 0) {
		sqlite3_stmt *st;
		r = mq_store_prepare(s,
				     "DELETE FROM events WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
				     "(PARTITION BY vm ORDER BY id DESC) AS rn FROM events) WHERE rn > ?1)",
				     &st, err, "cannot prune events");
		if (r == 0) {
			int rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)keep_per_vm);
			if (rc == SQLITE_OK)
				rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				r = mq_store_db_error(s, rc, err, "cannot prune events");
			else
				total += sqlite3_changes(s->db);
			sqlite3_finalize(st);
		}
	}
	if (r < 0) {
		mq_store_rollback(s);
		return r;
	}
	r = mq_store_commit(s, err);
	if (r == 0 && deleted)
		*deleted = total;
	return r;
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
