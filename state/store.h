/* store.h - maqet's actual-state store (SQLite).
 *
 * state/ knows nothing of QEMU or the terminal.  One database file
 * `<state_dir>/maqet.db`, opened with WAL, a busy timeout, foreign keys on,
 * a schema version (PRAGMA user_version) migrated forward step by step from
 * version 1, and a quick integrity check on open.  Every fd is CLOEXEC.
 *
 * The module is three files, one per role, and including this header gives
 * all of it:
 *   store.h/.c   open, schema and migrations, transactions, error mapping
 *   vms.h/vms.c  vm records in and out (with the event explaining a write)
 *   events.h/.c  the event log
 *   snapshots.h/.c  origins of the snapshots maqet made
 *
 * Failures of the disk under the state dir read the same everywhere:
 *   cannot record vm 'web': no space left on device in state dir '/var/lib/maqet'   (-ENOSPC)
 *   cannot record event for vm 'web': i/o error in state dir '/var/lib/maqet'     (-EIO)
 * never SQLite's "disk I/O error" for a full disk.
 *
 * Times are milliseconds since the Unix epoch (CLOCK_REALTIME).
 */
#ifndef MQ_STORE_H
#define MQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct mq_store;

#include "state/events.h"
#include "state/snapshots.h"
#include "state/vms.h"

#define MQ_STORE_DB_NAME "maqet.db" /* in the state dir, with its -wal and -shm */

/* Create `dir` (0700) if needed and open/migrate the database. */
int mq_store_open(const char *dir, struct mq_store **out, struct mq_error **err);
struct mq_store *mq_store_free(struct mq_store *s);   /* closes; accepts NULL */
int mq_store_schema_version(struct mq_store *s);      /* current user_version */
/* Log length (pages of 4 KiB) at which a commit checkpoints the WAL into
 * the database; connections are opened with it (the last close does not
 * checkpoint: ARCHITECTURE.md, state/). */
#define MQ_STORE_WAL_PAGES 256
/* Pages at which this connection's commits checkpoint (0 = never); watch
 * sets far more than MQ_STORE_WAL_PAGES so that its loop leaves the fsyncs
 * to CLI commands. */
void mq_store_set_autocheckpoint(struct mq_store *s, int pages);
/* Close the connection and open it again (same settings, no checks).
 * SQLite keeps per-process state for every open database file (locks, the
 * WAL index mapping) that a forked child inherits and must not use: a
 * process that forks a child which opens the store itself (watch's snapshot
 * worker) suspends around the fork.  Between the two calls the store must
 * not be used; a failed resume leaves every later call failing. */
void mq_store_suspend(struct mq_store *s);
int mq_store_resume(struct mq_store *s, struct mq_error **err);
/* The full PRAGMA integrity_check (open checks only the vms and snapshots
 * tables): 0, or -EIO with "state database 'P' is damaged (...): restore it ...". */
int mq_store_integrity_check(struct mq_store *s, struct mq_error **err);
#define MQ_STORE_SCHEMA_VERSION 5

/* Transactions (BEGIN IMMEDIATE / COMMIT / ROLLBACK).  Not nestable; the
 * combined writes of vms.h (mq_store_vm_put_event, ...) may run inside one. */
int mq_store_begin(struct mq_store *s, struct mq_error **err);
int mq_store_commit(struct mq_store *s, struct mq_error **err);
void mq_store_rollback(struct mq_store *s);

int64_t mq_now_ms(void);

#endif
