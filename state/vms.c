/* vms.c - vm records in and out of the state store, alone or together with
 * the event that explains the write.  See vms.h. */
#include "state/store-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

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
	d->rolled_back_hash = xstrdup_null(r->rolled_back_hash);
	d->rolled_back_reason = xstrdup_null(r->rolled_back_reason);
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
	free(r->rolled_back_hash);
	free(r->rolled_back_reason);
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
	"hold, last_error, created_at, updated_at, started_at, restart_count, backoff_until, exit_reason, " \
	"rolled_back_hash, rolled_back_reason"

static struct mq_vm_record *vm_from_row(sqlite3_stmt *st)
{
	struct mq_vm_record *r = mq_vm_record_new();
	r->name = mq_store_column_dup(st, 0);
	r->source = mq_store_column_dup(st, 1);
	r->spec_json = mq_store_column_dup(st, 2);
	r->spec_hash = mq_store_column_dup(st, 3);
	r->desired = mq_store_column_dup(st, 4);
	r->status = mq_store_column_dup(st, 5);
	r->pid = sqlite3_column_int64(st, 6);
	r->start_time = (uint64_t)sqlite3_column_int64(st, 7);
	r->qmp_path = mq_store_column_dup(st, 8);
	r->accel = mq_store_column_dup(st, 9);
	r->hold = sqlite3_column_int64(st, 10) != 0;
	r->last_error = mq_store_column_dup(st, 11);
	r->created_at = sqlite3_column_int64(st, 12);
	r->updated_at = sqlite3_column_int64(st, 13);
	r->started_at = sqlite3_column_int64(st, 14);
	r->restart_count = (int)sqlite3_column_int64(st, 15);
	r->backoff_until = sqlite3_column_int64(st, 16);
	r->exit_reason = mq_store_column_dup(st, 17);
	r->rolled_back_hash = mq_store_column_dup(st, 18);
	r->rolled_back_reason = mq_store_column_dup(st, 19);
	return r;
}

int mq_store_vm_get(struct mq_store *s, const char *name, struct mq_vm_record **out, struct mq_error **err)
{
	if (!name)
		return mq_error_set(err, EINVAL, "cannot read vm from state database '%s': no name given", s->path);
	sqlite3_stmt *st;
	char *what = xasprintf("cannot read vm '%s'", name);
	int r = mq_store_prepare(s, "SELECT " VM_COLUMNS " FROM vms WHERE name = ?1", &st, err, what);
	if (r < 0)
		goto out;
	int rc = mq_store_bind_text(st, 1, name);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = vm_from_row(st);
	} else if (rc == SQLITE_DONE) {
		r = mq_error_set(err, ENOENT, "no vm '%s' in state database '%s'", name, s->path);
	} else {
		r = mq_store_db_error(s, rc, err, what);
	}
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

int mq_store_vm_list(struct mq_store *s, struct mq_vm_record ***out, size_t *n, struct mq_error **err)
{
	sqlite3_stmt *st;
	int r = mq_store_prepare(s, "SELECT " VM_COLUMNS " FROM vms ORDER BY name", &st, err, "cannot list vms");
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
		r = mq_store_db_error(s, rc, err, "cannot list vms");
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
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20) "
		"ON CONFLICT(name) DO UPDATE SET "
		"source = excluded.source, spec_json = excluded.spec_json, spec_hash = excluded.spec_hash, "
		"desired = excluded.desired, status = excluded.status, pid = excluded.pid, "
		"start_time = excluded.start_time, qmp_path = excluded.qmp_path, accel = excluded.accel, "
		"hold = excluded.hold, last_error = excluded.last_error, updated_at = excluded.updated_at, "
		"started_at = excluded.started_at, restart_count = excluded.restart_count, "
		"backoff_until = excluded.backoff_until, exit_reason = excluded.exit_reason, "
		"rolled_back_hash = excluded.rolled_back_hash, rolled_back_reason = excluded.rolled_back_reason";
	char *what = xasprintf("cannot record vm '%s'", rec->name);
	sqlite3_stmt *st;
	int r = mq_store_prepare(s, sql, &st, err, what);
	if (r < 0)
		goto out;
	int64_t now = mq_now_ms();
	int rc = SQLITE_OK;
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 1, rec->name);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 2, rec->source);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 3, rec->spec_json);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 4, rec->spec_hash);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 5, rec->desired);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 6, rec->status);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 7, rec->pid);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 8, (sqlite3_int64)rec->start_time);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 9, rec->qmp_path);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 10, rec->accel);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int(st, 11, rec->hold ? 1 : 0);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 12, rec->last_error);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 13, rec->created_at ? rec->created_at : now);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 14, now);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 15, rec->started_at);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 16, rec->restart_count);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 17, rec->backoff_until);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 18, rec->exit_reason);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 19, rec->rolled_back_hash);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 20, rec->rolled_back_reason);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = mq_store_db_error(s, rc, err, what);
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

int mq_store_vm_delete(struct mq_store *s, const char *name, struct mq_error **err)
{
	if (!name)
		return mq_error_set(err, EINVAL, "cannot delete vm from state database '%s': no name given", s->path);
	char *what = xasprintf("cannot forget vm '%s'", name);
	sqlite3_stmt *st;
	int r = mq_store_prepare(s, "DELETE FROM vms WHERE name = ?1", &st, err, what);
	if (r < 0)
		goto out;
	int rc = mq_store_bind_text(st, 1, name);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = mq_store_db_error(s, rc, err, what);
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

/* ---- a record and its event, in one transaction --------------------------- */

int mq_store_vm_put_event(struct mq_store *s, const struct mq_vm_record *rec, const char *action,
			  const char *outcome, const char *detail, const char *git_commit, struct mq_error **err)
{
	if (!rec || !rec->name || !*rec->name)
		return mq_store_vm_put(s, rec, err); /* the same "it has no name" message */
	char *what = xasprintf("cannot record vm '%s'", rec->name);
	struct mq_store_unit u;
	int r = mq_store_unit_begin(s, &u, what, err);
	if (r < 0)
		goto out;
	r = mq_store_vm_put(s, rec, err);
	if (r == 0)
		r = mq_store_event_add(s, rec->name, action, outcome, detail, git_commit, err);
	if (r == 0)
		r = mq_store_unit_commit(s, &u, what, err);
	else
		mq_store_unit_abort(s, &u);
out:
	free(what);
	return r;
}

int mq_store_vm_delete_event(struct mq_store *s, const char *name, const char *action, const char *outcome,
			     const char *detail, const char *git_commit, struct mq_error **err)
{
	if (!name)
		return mq_store_vm_delete(s, name, err); /* the same "no name given" message */
	char *what = xasprintf("cannot forget vm '%s'", name);
	struct mq_store_unit u;
	int r = mq_store_unit_begin(s, &u, what, err);
	if (r < 0)
		goto out;
	r = mq_store_vm_delete(s, name, err);
	if (r == 0)
		r = mq_store_event_add(s, name, action, outcome, detail, git_commit, err);
	if (r == 0)
		r = mq_store_unit_commit(s, &u, what, err);
	else
		mq_store_unit_abort(s, &u);
out:
	free(what);
	return r;
}
