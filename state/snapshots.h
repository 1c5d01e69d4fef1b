/* snapshots.h - who made each snapshot: the origin rows of the state store.
 * Part of store.h (which includes this header).
 *
 * The disk images are the truth about which snapshots exist (see
 * reconciler/snapshot.h); this table only remembers the origin ("manual",
 * "declared", "scheduled", "pre-change", "pre-restore") of the ones maqet
 * made.  Table `snapshots` (schema version 4): vm, name, origin, created_at
 * (wall ms); primary key (vm, name).  Rows are not tied to the vms row by a
 * foreign key: forgetting a VM leaves its images, and so its snapshots.
 */
#ifndef MQ_SNAPSHOTS_H
#define MQ_SNAPSHOTS_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct mq_store;

struct mq_snap_row {
	char *vm;
	char *name;
	char *origin;
	int64_t created_at;
};

/* Insert or replace the row of (vm, name).  Failures read "cannot record
 * snapshot 'NAME' of vm 'VM': ..." (disk failures as in store.h). */
int mq_store_snap_put(struct mq_store *s, const char *vm, const char *name, const char *origin,
		      int64_t created_at, struct mq_error **err);
/* Deleting an absent row is not an error. */
int mq_store_snap_delete(struct mq_store *s, const char *vm, const char *name, struct mq_error **err);
/* Rows of vm (NULL = every vm), sorted by vm, created_at, name. */
int mq_store_snap_list(struct mq_store *s, const char *vm, struct mq_snap_row **out, size_t *n,
		       struct mq_error **err);
void mq_snap_rows_free(struct mq_snap_row *rows, size_t n);

#endif
