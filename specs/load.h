/* load.h - files -> documents -> specs: walking the -f paths, reading each
 * manifest (yamlread.h), turning each document into a spec (fields.h) and
 * handing the set to the cross-vm checks (validate.h).
 *
 * Internal to specs/; the public entry points (mq_specset_load,
 * mq_spec_parse_buffer, mq_manifest_list, ...) are declared in spec.h.
 */
#ifndef MQ_SPECS_LOAD_H
#define MQ_SPECS_LOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "specs/diag.h"
#include "specs/spec.h"
#include "specs/validate.h"

/* Specs with their positions, in load order. */
struct mq_spec_list {
	struct mq_spec **v;
	struct mq_spec_extra **x;
	size_t n, alloc;
};
void mq_spec_list_push(struct mq_spec_list *l, struct mq_spec *s, struct mq_spec_extra *x);
void mq_spec_list_release(struct mq_spec_list *l); /* frees the specs too */

/* Parse one buffer into specs (internal form of mq_spec_parse_buffer):
 * every mapping document becomes a spec appended to `out`, also the invalid
 * ones (any diag rejects the whole set anyway; keeping them lets set-level
 * checks still see their names).  *incomplete is set when the buffer could
 * not be read to its end or a vm's name could not be read.  `extends` is
 * resolved through `bases` (extends.h), which must outlive the diags.   Returns 0, or
 * -EINVAL when diags were added. */
struct mq_bases;
int mq_spec_parse_internal(const char *buf, size_t len, const char *display_name, const char *abs_file,
			   const char *base_dir, const char *source, struct mq_spec_list *out,
			   struct mq_diags *d, bool *incomplete, struct mq_bases *bases);

#endif
