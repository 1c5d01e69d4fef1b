/* desired.h - the desired set watch mode keeps in force.
 *
 * Manifests are re-read on every reload; a file that stops validating keeps
 * its last valid content in force (its errors are reported once per distinct
 * content), a vanished file drops out.  A set that fails the cross-VM checks
 * keeps the previous set.  Diagnostics go to the report callback, each
 * distinct batch once.
 */
#ifndef MQ_DESIRED_H
#define MQ_DESIRED_H

#include <stdbool.h>

#include "specs/spec.h"
#include "util/strv.h"

/* A batch of diagnostics that was not reported before; source may be NULL. */
typedef void (*mq_desired_report_fn)(void *ud, const struct mq_strv *diags, const char *source);

struct mq_desired_view;

struct mq_desired_view *mq_desired_new(const char *const *paths, size_t n_paths, mq_desired_report_fn report, void *ud);
struct mq_desired_view *mq_desired_free(struct mq_desired_view *d);
/* Reload through the parse cache at `path` (specs/cache.h): a manifest whose
 * identity is unchanged is not parsed again.  With `host`, the vms placed on
 * another host are light specs (spec.h: name, placement, state, ... only). */
void mq_desired_use_cache(struct mq_desired_view *d, const char *path, const char *host);
/* Re-read every manifest.  Returns the set in force (borrowed, never NULL). */
const struct mq_specset *mq_desired_reload(struct mq_desired_view *d);
const struct mq_specset *mq_desired_set(const struct mq_desired_view *d); /* NULL before the first reload */
/* A reload keeps the sets it replaces, because plans in flight borrow
 * their specs: free them once no plan is in flight. */
void mq_desired_gc(struct mq_desired_view *d);
/* An invalid file had no last valid version (so --prune must not act). */
bool mq_desired_unresolved(const struct mq_desired_view *d);
/* Report batch once: the same diagnostics in the same slot are reported
 * only once until they change (slot is any stable string, e.g. "prune"). */
void mq_desired_report_once(struct mq_desired_view *d, const char *slot, const struct mq_strv *diags, const char *source);
void mq_desired_clear_slot(struct mq_desired_view *d, const char *slot);

#endif
