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
	int r = mq_store_prepare(s, vm ? sql_vm : sql_all, &st, err, "cannot list events");
	if (r < 0)
		return r;
	sqlite3_int64 lim = (limit == 0 || limit > (size_t)INT64_MAX) ? -1 : (sqlite3_int64)limit;
	int rc = sqlite3_bind_int64(st, 1, lim);
	if (rc == SQLITE_OK && vm)
		rc = mq_store_bind_text(st, 2, vm);
	struct mq_event **list = NULL;
	size_t count = 0;
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct mq_event *e = xcalloc(1, sizeof(*e));
			e->id = sqlite3_column_int64(st, 0);
			e->time = sqlite3_column_int64(st, 1);
			e->vm = mq_store_column_dup(st, 2);
			e->action = mq_store_column_dup(st, 3);
			e->outcome = mq_store_column_dup(st, 4);
			e->detail = mq_store_column_dup(st, 5);
			e->uid = (uint32_t)sqlite3_column_int64(st, 6);
			e->user = mq_store_column_dup(st, 7);
			e->git_commit = mq_store_column_dup(st, 8);
			list = xreallocarray(list, count + 1, sizeof(*list));
			list[count++] = e;
		}
	}
	if (rc != SQLITE_DONE) {
		r = mq_store_db_error(s, rc, err, "cannot list events");
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
