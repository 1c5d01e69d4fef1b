/* canonical.h - the canonical JSON of a spec and its hash.
 *
 * Internal to specs/ (mq_spec_diff() is public, in spec.h).  The canonical
 * form is built from the typed fields only, one member per row of the
 * fields table in table order, every default filled in (unset = null), so
 * YAML key order, comments, formatting, `cpu: 2` vs `cpu: "2"` or
 * `memory: 1024` vs `memory: 1G` never change it, and any change of value
 * does.  Compact json-c output; hash = sha256 hex of that text.
 */
#ifndef MQ_SPECS_CANONICAL_H
#define MQ_SPECS_CANONICAL_H

#include "specs/spec.h"

/* Build spec->canonical and spec->hash from the typed fields. */
void mq_spec_make_canonical(struct mq_spec *spec);

#endif
