/* extends.h - shared bases: `extends` merged under a document at the YAML
 * node level.
 *
 * Internal to specs/.  A document may say `extends: PATH` or
 * `extends: [PATH, ...]` (relative to the directory of the file that says
 * it).  A base is a file holding one mapping document with any key but
 * `name`; it may extend other bases itself (at most MQ_EXTENDS_MAX_DEPTH
 * levels below the manifest).  The bases are merged in order, then the
 * document on top:
 *   - mapping + mapping: key by key, recursively;
 *   - top-level `storage`, `network` and `snapshots` lists: entries that are
 *     mappings with a `name` merge into the base's entry of the same name
 *     (recursively), every other entry is appended;
 *   - anything else (scalars, other lists, null, a type change): the later
 *     value replaces the earlier one.
 * Every node keeps its line/column and the file it was written in
 * (mq_ynode.file/dir), so errors found in the merged result point at the base
 * or the manifest, and relative paths resolve against their own file.
 *
 * `extends` is not a row of the fields table (fields.c): it is consumed here,
 * before the table sees the document, and never reaches the canonical spec or
 * the hash.  Which files are bases: those under a directory named `_bases`
 * (mq_path_in_bases_dir); the -f walk never reads them as vms.
 */
#ifndef MQ_SPECS_EXTENDS_H
#define MQ_SPECS_EXTENDS_H

#include <stdbool.h>

#include "specs/diag.h"
#include "specs/spec.h"
#include "specs/yamlread.h"

#define MQ_EXTENDS_MAX_DEPTH 8

/* Base files read so far (each read and resolved once), and the strings the
 * merged nodes borrow: keep it alive until the diags and positions that
 * point into it have been used. */
struct mq_bases;
struct mq_bases *mq_bases_new(void);
struct mq_bases *mq_bases_free(struct mq_bases *b);

/* What one document extends (after a failure, also the bases that do not
 * exist yet, so watch mode can wait for them). */
struct mq_extends_result {
	struct mq_strv bases;      /* displayed names, chain order (deepest first) */
	struct mq_strv bases_abs;
};
void mq_extends_result_release(struct mq_extends_result *r);

/* Resolve and remove the `extends` key of `root` (a mapping written in file
 * `display`, whose directory is `dir` and absolute path `abs`), merging its
 * bases under it in place.  Returns 0 (also when there is no `extends`), or
 * -EINVAL after adding diags (root then holds the document without
 * `extends`, merged as far as possible). */
int mq_extends_resolve(struct mq_bases *b, struct mq_ynode *root, const char *display, const char *abs,
		       const char *dir, struct mq_diags *d, struct mq_extends_result *out);

/* Per top-level key of a merged root: the distinct base files (node->file
 * != NULL) its key or value nodes were written in, ", "-joined, appended to
 * keys/files (keys written only in the document itself are left out). */
void mq_extends_origins(const struct mq_ynode *root, struct mq_strv *keys, struct mq_strv *files);

#endif
