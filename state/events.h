/* events.h - the event log of the state store: what maqet did, to which vm,
 * with what outcome, by whom, from which git commit.  Part of store.h (which
 * includes this header); see there for the store itself. */
#ifndef MQ_EVENTS_H
#define MQ_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct mq_store;

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

/* Append an event; uid/user filled from getuid()/getpwuid(); time = now.
 * Failures read "cannot record event for vm 'NAME': ..." (see store.h).
 * To write an event together with the vm record it explains, use
 * mq_store_vm_put_event() / mq_store_vm_delete_event() (vms.h). */
int mq_store_event_add(struct mq_store *s, const char *vm, const char *action, const char *outcome,
		       const char *detail, const char *git_commit, struct mq_error **err);
/* Newest last; vm NULL = all; limit 0 = no limit (the newest `limit`). */
int mq_store_event_list(struct mq_store *s, const char *vm, size_t limit, struct mq_event ***out,
			size_t *n, struct mq_error **err);
/* The same rows, one at a time (constant memory): fn gets each event with
 * borrowed strings valid only during the call; a negative return stops the
 * walk and is returned. */
typedef int (*mq_event_fn)(const struct mq_event *e, void *ud);
int mq_store_event_each(struct mq_store *s, const char *vm, size_t limit, mq_event_fn fn, void *ud,
			struct mq_error **err);
/* Retention, in one transaction: delete events older than max_age_ms
 * (before now_ms; 0 = no age limit), then all but the newest keep_per_vm
 * events of each vm (set-wide events count as one vm; 0 = no count limit).
 * *deleted (may be NULL) gets the number of rows removed. */
int mq_store_event_prune(struct mq_store *s, size_t keep_per_vm, int64_t max_age_ms, int64_t now_ms,
			 int64_t *deleted, struct mq_error **err);
struct mq_event *mq_event_free(struct mq_event *e);
void mq_event_list_free(struct mq_event **list, size_t n);

#endif
