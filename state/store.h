/* store.h - maqet's actual-state store (SQLite).
 *
 * state/ knows nothing of QEMU or the terminal.  One database file
 * `<state_dir>/maqet.db`, opened with WAL, a busy timeout, foreign keys on,
 * a schema version (PRAGMA user_version) migrated forward step by step from
 * version 1, and a quick integrity check on open.  Every fd is CLOEXEC.
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

/* Observed status strings stored in vms.status. */
#define MQ_STATUS_CREATED  "created"   /* recorded, never started */
#define MQ_STATUS_STARTING "starting"
#define MQ_STATUS_RUNNING  "running"
#define MQ_STATUS_STOPPING "stopping"
#define MQ_STATUS_STOPPED  "stopped"
#define MQ_STATUS_CRASHED  "crashed"   /* recorded running, process gone */
#define MQ_STATUS_FAILED   "failed"    /* last start failed */
#define MQ_STATUS_GUEST_STOPPED "stopped-by-guest" /* guest powered itself off */
#define MQ_STATUS_CRASH_LOOP "crash-loop" /* too many failures: no more automatic restarts */

struct mq_vm_record {
	char *name;
	char *source;        /* canonical dir or file it was applied from */
	char *spec_json;     /* canonical spec */
	char *spec_hash;
	char *desired;       /* "running" | "stopped" (from the manifest) */
	char *status;        /* MQ_STATUS_* */
	int64_t pid;         /* 0 = none */
	uint64_t start_time; /* field 22 of /proc/PID/stat, 0 = none */
	char *qmp_path;      /* NULL = none */
	char *accel;         /* accelerator in use ("kvm"/"tcg"), NULL = none */
	bool hold;           /* set by `maqet stop`, cleared by `maqet start` */
	char *last_error;    /* NULL = none */
	int64_t created_at, updated_at, started_at; /* started_at 0 = not running */
	/* watch mode's restart bookkeeping */
	int restart_count;   /* failures in the current backoff window */
	int64_t backoff_until; /* wall ms before which no automatic restart; 0 = none */
	char *exit_reason;   /* why the process last exited, NULL = unknown/none */
};

struct mq_event {
	int64_t id;
	int64_t time;        /* ms since epoch */
	char *vm;            /* may be NULL for set-wide events */
	char *action;        /* e.g. "start", "stop.powerdown", "stop.quit", "stop.sigterm",
	                        "stop.sigkill", "create", "update", "delete", "crash", "hold" */
	char *outcome;       /* "ok" | "failed" | "skipped" | ... */
	char *detail;        /* may be NULL */
	uint32_t uid;
	char *user;          /* user name for uid, or the number as text */
	char *git_commit;    /* may be NULL */
};

/* Create `dir` (0700) if needed and open/migrate the database. */
int mq_store_open(const char *dir, struct mq_store **out, struct mq_error **err);
struct mq_store *mq_store_free(struct mq_store *s);   /* closes; accepts NULL */
int mq_store_schema_version(struct mq_store *s);      /* current user_version */
#define MQ_STORE_SCHEMA_VERSION 3

/* Transactions (BEGIN IMMEDIATE / COMMIT / ROLLBACK).  Not nestable. */
int mq_store_begin(struct mq_store *s, struct mq_error **err);
int mq_store_commit(struct mq_store *s, struct mq_error **err);
void mq_store_rollback(struct mq_store *s);

/* -ENOENT (no message needed, but err may be set) when absent. */
int mq_store_vm_get(struct mq_store *s, const char *name, struct mq_vm_record **out, struct mq_error **err);
/* All VMs sorted by name.  *out is a malloc'd array of n records. */
int mq_store_vm_list(struct mq_store *s, struct mq_vm_record ***out, size_t *n, struct mq_error **err);
/* Insert or replace the whole row (created_at kept for an existing row;
 * updated_at set to now). */
int mq_store_vm_put(struct mq_store *s, const struct mq_vm_record *rec, struct mq_error **err);
int mq_store_vm_delete(struct mq_store *s, const char *name, struct mq_error **err);

struct mq_vm_record *mq_vm_record_new(void);
struct mq_vm_record *mq_vm_record_dup(const struct mq_vm_record *r);
struct mq_vm_record *mq_vm_record_free(struct mq_vm_record *r);
void mq_vm_record_list_free(struct mq_vm_record **list, size_t n);
/* Replace a string field: mq_vm_record_set(&rec->status, "running"). */
void mq_vm_record_set(char **field, const char *value);

/* Append an event; uid/user filled from getuid()/getpwuid(); time = now. */
int mq_store_event_add(struct mq_store *s, const char *vm, const char *action, const char *outcome,
		       const char *detail, const char *git_commit, struct mq_error **err);
/* Newest last; vm NULL = all; limit 0 = no limit (the newest `limit`). */
int mq_store_event_list(struct mq_store *s, const char *vm, size_t limit, struct mq_event ***out,
			size_t *n, struct mq_error **err);
struct mq_event *mq_event_free(struct mq_event *e);
void mq_event_list_free(struct mq_event **list, size_t n);

int64_t mq_now_ms(void);

/* The git commit (full hex) of the work tree containing `path` (file or dir),
 * read from .git/HEAD and refs (loose or packed) without running git; NULL
 * when not inside a git work tree.  Caller frees. */
char *mq_git_commit_for(const char *path);

#endif
