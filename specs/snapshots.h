/* snapshots.h - the `snapshots` row of the fields table (fields.h):
 * declared snapshots, schedules with keep-N retention and before_change.
 * Internal to specs/ (the typed form is struct mq_snapshots in spec.h).
 *
 *   snapshots:
 *     named: [golden]               # names that must exist
 *     schedule:                     # exactly one of every / cron
 *       every: 6h                   # a duration, at least 1s, whole seconds
 *       cron: "0 *\/6 * * *"         # util/cron.h syntax, UTC
 *       keep: 4                     # required, >= 1
 *       live: true                  # default true
 *     before_change: {enabled: true, keep: 3, rollback: true}  # the defaults
 *
 * Canonical form: absent key -> no member; otherwise
 *   {"named":[..],"schedule":{"every":N|null,"cron":S|null,"keep":N,"live":B}|null,
 *    "before_change":{"enabled":B,"keep":N,"rollback":B}|null}
 */
#ifndef MQ_SPECS_SNAPSHOTS_H
#define MQ_SPECS_SNAPSHOTS_H

#include "specs/fields.h"

mq_field_parse_fn mq_snapshots_parse;
mq_field_to_json_fn mq_snapshots_to_json;
mq_field_from_json_fn mq_snapshots_from_json;

struct mq_snapshots *mq_snapshots_free(struct mq_snapshots *s);

#endif
