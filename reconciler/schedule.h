/* schedule.h - when declared snapshots are due, and which scheduled ones
 * retention deletes.  Pure: no I/O, no clock (the caller passes `now`), so
 * every rule is unit-tested (tests/unit/test-schedule.c).
 *
 * Times are wall-clock milliseconds (UTC), like struct mq_snapshot.created_at.
 *
 * Due rule (the catch-up rule): the next scheduled snapshot is due at
 *   every: last + every
 *   cron:  the first cron slot strictly after the minute of `last`
 * where `last` is the creation time of the newest scheduled snapshot on the
 * disks.  With no scheduled snapshot at all it is due at once.  A snapshot
 * whose slot passed while nobody was looking (watch down, no apply) is due
 * now, and taking it moves `last` to now: however many slots were missed,
 * exactly one snapshot is taken on catch-up, never one per missed slot.
 *
 * Retention: only snapshots of origin "scheduled" (or "pre-change", for
 * before_change.keep) are candidates; the oldest beyond `keep` are
 * selected.  Manual, declared, external and pre-restore snapshots are never
 * selected, whatever their names.
 */
#ifndef MQ_SCHEDULE_H
#define MQ_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reconciler/snapshot.h"
#include "specs/spec.h"
#include "util/strv.h"

/* Creation time of the newest snapshot of `origin` in l, or -1. */
int64_t mq_sched_last(const struct mq_snap_list *l, enum mq_snap_origin origin);

/* When the next scheduled snapshot is due (wall ms), given the newest one
 * (`last_ms`, -1 = none) and now.  The result may be <= now (due: take one
 * now).  -1 when a cron expression never matches (validation refuses those)
 * or does not parse. */
int64_t mq_sched_due_at(const struct mq_snap_schedule *s, int64_t last_ms, int64_t now_ms);

/* Names to delete so that at most `keep` snapshots of `origin` remain: the
 * oldest first (created_at, then name).  Appended to `out`; returns how
 * many. */
size_t mq_sched_retention(const struct mq_snap_list *l, enum mq_snap_origin origin, unsigned keep,
			  struct mq_strv *out);

/* A short age: "45s", "6m", "6h12m", "3d4h".  Negative counts as 0.
 * buf >= 32 bytes. */
void mq_sched_format_age(int64_t ms, char *buf, size_t len);

#endif
