/* audit.h - the audit trail of a reconcile pass: events, and vm records
 * written together with the event that explains them, each stamped with the
 * git commit of the manifest source they came from.
 *
 * The commit of a source is looked up once per pass and cached until the
 * next pass begins: call mq_audit_new_pass() at the start of every pass
 * (apply, each watch pass, an imperative verb).  A watch runs for weeks while
 * the repository moves on, so the cache must never outlive a pass.  The cache
 * is process-wide (one pass runs at a time; maqet is single-threaded), which
 * keeps mq_event()'s signature free of a per-pass object.
 */
#ifndef MQ_AUDIT_H
#define MQ_AUDIT_H

#include "state/store.h"
#include "util/error.h"

/* Drop the cached git commits: the next event of each source reads its
 * repository again.  Cheap; safe to call when nothing is cached. */
void mq_audit_new_pass(void);

/* The git commit of `source` for this pass (NULL when `source` is NULL or
 * not in a git work tree).  Owned by the cache: valid until the next
 * mq_audit_new_pass(). */
const char *mq_audit_git_commit(const char *source);

/* Append an event, with the git commit of `source` when it lies in a git
 * work tree.  Best effort: an event that cannot be written does not abort the
 * pass (the vm row itself carries the state); use mq_audit_record() when the
 * event explains a record write. */
void mq_event(struct mq_store *st, const char *vm, const char *source, const char *action,
	      const char *outcome, const char *detail);

/* Append an event and say whether it was written (the store's message,
 * e.g. "no space left on device in state dir ...", in *err). */
int mq_audit_event(struct mq_store *st, const char *vm, const char *source, const char *action,
		   const char *outcome, const char *detail, struct mq_error **err);

/* Write `rec` and the event explaining it (vm = rec->name) in one
 * transaction, with the git commit of `source`: both or neither (see
 * mq_store_vm_put_event).  0 or -errno with *err "cannot record vm 'NAME':
 * ..." / "cannot record event for vm 'NAME': ...". */
int mq_audit_record(struct mq_store *st, const struct mq_vm_record *rec, const char *source, const char *action,
		    const char *outcome, const char *detail, struct mq_error **err);

/* Delete the record of vm `name` and add the event explaining it, in one
 * transaction (see mq_store_vm_delete_event). */
int mq_audit_forget(struct mq_store *st, const char *name, const char *source, const char *action,
		    const char *outcome, const char *detail, struct mq_error **err);

#endif
