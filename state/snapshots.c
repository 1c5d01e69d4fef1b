/* snapshots.c - origin rows of the snapshots maqet made.  See snapshots.h. */
#include "state/store-int.h"

#include <errno.h>
#include <stdlib.h>

#include "util/xalloc.h"

int mq_store_snap_put(struct mq_store *s, const char *vm, const char *name, const char *origin,
		      int64_t created_at, struct mq_error **err)
{
	if (!vm || !name || !origin)
		return mq_error_set(err, EINVAL, "cannot record snapshot in state database '%s': %s is missing",
				    s->path, !vm ? "vm" : !name ? "name" : "origin");
	char *what = xasprintf("cannot record snapshot '%s' of vm '%s'", name, vm);
	sqlite3_stmt *st;
	int r = mq_store_prepare(s,
				 "INSERT INTO snapshots (vm, name, origin, created_at) VALUES (?1, ?2, ?3, ?4) "
				 "ON CONFLICT(vm, name) DO UPDATE SET origin = excluded.origin, "
				 "created_at = excluded.created_at",
				 &st, err, what);
	if (r < 0)
		goto out;
	int rc = mq_store_bind_text(st, 1, vm);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 2, name);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 3, origin);
	if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, created_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = mq_store_db_error(s, rc, err, what);
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

int mq_store_snap_delete(struct mq_store *s, const char *vm, const char *name, struct mq_error **err)
{
	if (!vm || !name)
		return mq_error_set(err, EINVAL, "cannot forget snapshot in state database '%s': %s is missing",
				    s->path, !vm ? "vm" : "name");
	char *what = xasprintf("cannot forget snapshot '%s' of vm '%s'", name, vm);
	sqlite3_stmt *st;
	int r = mq_store_prepare(s, "DELETE FROM snapshots WHERE vm = ?1 AND name = ?2", &st, err, what);
	if (r < 0)
		goto out;
	int rc = mq_store_bind_text(st, 1, vm);
	if (rc == SQLITE_OK) rc = mq_store_bind_text(st, 2, name);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		r = mq_store_db_error(s, rc, err, what);
	sqlite3_finalize(st);
out:
	free(what);
	return r;
}

int mq_store_snap_list(struct mq_store *s, const char *vm, struct mq_snap_row **out, size_t *n,
		       struct mq_error **err)
{
	sqlite3_stmt *st;
	int r = mq_store_prepare(s,
				 "SELECT vm, name, origin, created_at FROM snapshots "
				 "WHERE ?1 IS NULL OR vm = ?1 ORDER BY vm, created_at, name",
				 &st, err, "cannot list snapshots");
	if (r < 0)
		return r;
	struct mq_snap_row *rows = NULL;
	size_t count = 0;
	int rc = mq_store_bind_text(st, 1, vm);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		rows = xreallocarray(rows, count + 1, sizeof(*rows));
		rows[count].vm = mq_store_column_dup(st, 0);
		rows[count].name = mq_store_column_dup(st, 1);
		rows[count].origin = mq_store_column_dup(st, 2);
		rows[count].created_at = sqlite3_column_int64(st, 3);
		count++;
	}
	if (rc != SQLITE_DONE) {
		r = mq_store_db_error(s, rc, err, "cannot list snapshots");
		sqlite3_finalize(st);
		mq_snap_rows_free(rows, count);
		return r;
	}
	sqlite3_finalize(st);
	*out = rows;
	*n = count;
	return 0;
}

void mq_snap_rows_free(struct mq_snap_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].vm);
		free(rows[i].name);
		free(rows[i].origin);
	}
	free(rows);
}
