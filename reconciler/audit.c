/* audit.c - events and record writes stamped with the git commit of their
 * source, looked up once per pass.  See audit.h. */
#include "reconciler/audit.h"

#include <stdlib.h>
#include <string.h>

#include "util/git.h"
#include "util/xalloc.h"

struct git_cache_ent {
	char *source;
	char *commit; /* NULL: not in a git work tree (remembered too) */
};

/* This pass's lookups; emptied by mq_audit_new_pass(). */
static struct git_cache_ent *git_cache;
static size_t git_cache_n;

void mq_audit_new_pass(void)
{
	for (size_t i = 0; i < git_cache_n; i++) {
		free(git_cache[i].source);
		free(git_cache[i].commit);
	}
	free(git_cache);
	git_cache = NULL;
	git_cache_n = 0;
}

const char *mq_audit_git_commit(const char *source)
{
	if (!source)
		return NULL;
	for (size_t i = 0; i < git_cache_n; i++)
		if (strcmp(git_cache[i].source, source) == 0)
			return git_cache[i].commit;
	git_cache = xreallocarray(git_cache, git_cache_n + 1, sizeof(*git_cache));
	git_cache[git_cache_n].source = xstrdup(source);
	git_cache[git_cache_n].commit = mq_git_commit_for(source);
	return git_cache[git_cache_n++].commit;
}

void mq_event(struct mq_store *st, const char *vm, const char *source, const char *action, const char *outcome,
	      const char *detail)
{
	/* An event that cannot be written must not abort the pass; the store
	 * error is rare (disk full) and the vm row itself carries the state. */
	struct mq_error *err = NULL;
	mq_store_event_add(st, vm, action, outcome, detail, mq_audit_git_commit(source), &err);
	mq_error_free(err);
}

int mq_audit_event(struct mq_store *st, const char *vm, const char *source, const char *action, const char *outcome,
		   const char *detail, struct mq_error **err)
{
	return mq_store_event_add(st, vm, action, outcome, detail, mq_audit_git_commit(source), err);
}

int mq_audit_record(struct mq_store *st, const struct mq_vm_record *rec, const char *source, const char *action,
		    const char *outcome, const char *detail, struct mq_error **err)
{
	return mq_store_vm_put_event(st, rec, action, outcome, detail, mq_audit_git_commit(source), err);
}

int mq_audit_forget(struct mq_store *st, const char *name, const char *source, const char *action,
		    const char *outcome, const char *detail, struct mq_error **err)
{
	return mq_store_vm_delete_event(st, name, action, outcome, detail, mq_audit_git_commit(source), err);
}
