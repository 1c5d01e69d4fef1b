/* vms.h - vm records of the state store: what maqet last recorded about each
 * vm.  Part of store.h (which includes this header); see there for the store
 * itself. */
#ifndef MQ_VMS_H
#define MQ_VMS_H

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
	/* before_change rollback: the spec that failed to start and was rolled
	 * back (not retried while the manifest still hashes to it), and why */
	char *rolled_back_hash;   /* NULL = none */
	char *rolled_back_reason;
};

/* -ENOENT (no message needed, but err may be set) when absent. */
int mq_store_vm_get(struct mq_store *s, const char *name, struct mq_vm_record **out, struct mq_error **err);
/* All VMs sorted by name.  *out is a malloc'd array of n records. */
int mq_store_vm_list(struct mq_store *s, struct mq_vm_record ***out, size_t *n, struct mq_error **err);
/* Insert or replace the whole row (created_at kept for an existing row;
 * updated_at set to now).  Failures read "cannot record vm 'NAME': ...". */
int mq_store_vm_put(struct mq_store *s, const struct mq_vm_record *rec, struct mq_error **err);
/* Deleting an absent row is not an error.  Failures read "cannot forget vm
 * 'NAME': ...". */
int mq_store_vm_delete(struct mq_store *s, const char *name, struct mq_error **err);

/* Writes that belong together commit together: the record (put or delete)
 * and the event that explains it (vm = the record's name) are one
 * transaction.  When either write fails, neither is left: the record keeps
 * its previous content and no event is added.  Inside the caller's own
 * transaction (mq_store_begin) the pair is a savepoint of it, undone alone on
 * failure.  Messages as for mq_store_vm_put/_delete and mq_store_event_add. */
int mq_store_vm_put_event(struct mq_store *s, const struct mq_vm_record *rec, const char *action,
			  const char *outcome, const char *detail, const char *git_commit, struct mq_error **err);
int mq_store_vm_delete_event(struct mq_store *s, const char *name, const char *action, const char *outcome,
			     const char *detail, const char *git_commit, struct mq_error **err);

struct mq_vm_record *mq_vm_record_new(void);
struct mq_vm_record *mq_vm_record_dup(const struct mq_vm_record *r);
struct mq_vm_record *mq_vm_record_free(struct mq_vm_record *r);
void mq_vm_record_list_free(struct mq_vm_record **list, size_t n);
/* Replace a string field: mq_vm_record_set(&rec->status, "running"). */
void mq_vm_record_set(char **field, const char *value);

#endif
