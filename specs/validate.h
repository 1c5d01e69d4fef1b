/* validate.h - cross-field checks within one vm and cross-vm checks over
 * the whole set.
 *
 * Internal to specs/.  Per-value checks (types, ranges, enum names) happen
 * while each field is parsed (fields.h); what needs two fields or two vms
 * at once lives here.
 */
#ifndef MQ_SPECS_VALIDATE_H
#define MQ_SPECS_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "specs/arguments.h"
#include "specs/diag.h"
#include "specs/spec.h"
#include "specs/value.h"

struct mq_pos {
	int line, col;
	const char *file; /* where written when not the spec's own file (a base), or NULL */
};

/* Positions the set-level checks need, kept beside each spec while loading. */
struct mq_arena;
struct mq_spec_extra {
	struct mq_pos name;  /* the name value */
	struct mq_pos *deps; /* one per spec->depends_on entry */
	struct mq_pos *fwds; /* one per forward, networks in order */
	struct mq_pos placement; /* the placement host value (line 0 when absent) */
	struct mq_arena *arena; /* non-NULL: x, deps and fwds live in it (specs/cache.c) */
};
struct mq_spec_extra *mq_spec_extra_free(struct mq_spec_extra *x);

/* Cross-field: an option rendered from `arguments` that a top-level key also
 * sets (the fields table's `argopt` column), when that key is given.
 * vals/keys are indexed like the fields table. */
void mq_check_argument_conflicts(struct mq_pctx *c, const struct mq_argopts *opts,
				 const struct mq_ynode *const *vals, const struct mq_ynode *const *keys);

/* Cross-vm: unique names, unique host ports, depends_on targets, cycles.
 * `x` (or NULL) gives exact positions.  When `names_incomplete` is set,
 * unknown depends_on targets are not reported (some manifests could not be
 * read). */
bool mq_specs_check_internal(struct mq_spec **specs, struct mq_spec_extra **x /* or NULL */, size_t n,
			     bool names_incomplete, struct mq_diags *d, size_t *order /* or NULL */);
/* The names' sort gives the set's order for free: with `order` (n entries),
 * a check of specs that all have a name fills it with their indices sorted
 * by name (ties by index) and returns true; mq_specs_reorder puts specs in
 * that order (what mq_specset_sort would give a set without duplicates). */
void mq_specs_reorder(struct mq_spec **specs, size_t n, const size_t *order);

/* Sort a set by name (what mq_specset_check does after its checks), for a
 * loader that has run the checks already. */
void mq_specset_sort(struct mq_specset *set);

#endif
