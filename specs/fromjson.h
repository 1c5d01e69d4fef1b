/* fromjson.h - rebuild a struct mq_spec from its canonical JSON.
 *
 * The store keeps each VM's canonical spec; imperative commands (start,
 * restart) and prune/stop of undeclared VMs need the typed spec back without
 * the manifest.  The canonical form already holds resolved absolute paths and
 * the rendered `arguments`, so the rebuilt spec produces the same argv.
 * Each member is read by the from_json column of its row in the fields
 * table (fields.h); a member the record lacks takes the manifest default.
 */
#ifndef MQ_SPEC_FROMJSON_H
#define MQ_SPEC_FROMJSON_H

#include "specs/spec.h"
#include "util/error.h"

/* source: stored in spec->source (may be NULL).  Recomputes canonical + hash
 * from the given text. */
int mq_spec_from_canonical(const char *json, const char *source, struct mq_spec **out, struct mq_error **err);

#endif
