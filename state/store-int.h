/* store-int.h - what store.c, vms.c and events.c share; not for callers
 * outside state/ (git's refs/refs-internal.h).  The unit tests include it to
 * test the error mapping directly.
 */
#ifndef MQ_STORE_INT_H
#define MQ_STORE_INT_H

#include <sqlite3.h>
#include <stdbool.h>

#include "state/store.h"

struct mq_store {
	sqlite3 *db;
	char *dir;    /* the state dir, for messages about the disk */
	char *path;   /* <dir>/maqet.db, for messages about the database */
	char *user;   /* cached user name for event rows */
	int autockpt; /* mq_store_set_autocheckpoint, kept across a resume; -1 = default */
};

/* The part of a failure that is about the disk under the state dir, or NULL
 * when it is not: SQLITE_FULL, and any SQLITE_IOERR_* or SQLITE_CANTOPEN
 * whose system errno is ENOSPC, read "no space left on device" (*code
 * ENOSPC) - SQLite reports some full-disk writes (the -shm file, a
 * truncate) as I/O errors; EDQUOT reads "disk quota exceeded"; any other
 * SQLITE_IOERR reads "i/o error" (*code EIO).  `rc` is the extended result
 * code, `sys_errno` what sqlite3_system_errno() said (0 = unknown). */
const char *mq_store_disk_cause(int rc, int sys_errno, int *code);

/* Fill *err for a failed SQLite call and return -errno:
 *   disk failures:  "<what>: no space left on device in state dir '<dir>'"
 *                   "<what>: i/o error in state dir '<dir>'" ...
 *   anything else:  "<what> in state database '<dbpath>': <sqlite message>"
 * Pure (no database handle), so it is testable on its own. */
int mq_store_map_error(int rc, int sys_errno, const char *what, const char *dir, const char *dbpath,
		       const char *sqlmsg, struct mq_error **err);

/* mq_store_map_error() with the connection's last error. */
int mq_store_db_error(struct mq_store *s, int rc, struct mq_error **err, const char *what);

int mq_store_prepare(struct mq_store *s, const char *sql, sqlite3_stmt **st, struct mq_error **err,
		     const char *what);
int mq_store_bind_text(sqlite3_stmt *st, int i, const char *v);
char *mq_store_column_dup(sqlite3_stmt *st, int i);

/* Writes that commit together.  Outside a transaction a unit is its own
 * BEGIN IMMEDIATE ... COMMIT; inside the caller's transaction
 * (mq_store_begin) it is a savepoint, so a failed unit is undone without
 * undoing the caller's earlier writes.  `what` names the failure of the
 * commit ("cannot record vm 'web'"): in WAL mode the pages reach the disk
 * at COMMIT, so a full disk can fail there. */
struct mq_store_unit {
	bool savepoint;
};
int mq_store_unit_begin(struct mq_store *s, struct mq_store_unit *u, const char *what, struct mq_error **err);
int mq_store_unit_commit(struct mq_store *s, struct mq_store_unit *u, const char *what, struct mq_error **err);
void mq_store_unit_abort(struct mq_store *s, struct mq_store_unit *u);

#endif
