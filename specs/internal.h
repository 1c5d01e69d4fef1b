/* internal.h - private interfaces shared by the files of specs/.
 *
 * Not part of the public contract (that is spec.h).  Three pieces:
 *   - a diagnostics list that keeps file/line/col apart so the whole set can
 *     be sorted before it is printed;
 *   - a small YAML node tree built from libyaml events (loader.c), every node
 *     carrying its 1-based line and column;
 *   - the `arguments` renderer (arguments.c) and the canonical JSON builder
 *     (canonical.c) used by spec.c.
 */
#ifndef MQ_SPECS_INTERNAL_H
#define MQ_SPECS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "specs/spec.h"
#include "util/strv.h"

/* ---- diagnostics ---------------------------------------------------- */

struct mq_diag {
	char *file;   /* displayed file name */
	int line, col; /* 1-based; line 0 = whole file ("FILE: message") */
	size_t seq;   /* insertion order, for a stable sort */
	char *msg;
};

struct mq_diags {
	struct mq_diag *v;
	size_t n, alloc;
};

void mq_diags_add(struct mq_diags *d, const char *file, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Sort by file, line, col (stable), append "FILE:LINE:COL: msg" to out and
 * empty d. */
void mq_diags_flush(struct mq_diags *d, struct mq_strv *out);
void mq_diags_release(struct mq_diags *d);

/* ---- YAML node tree ------------------------------------------------- */

#define MQ_MANIFEST_MAX_NODES 100000

enum mq_ynode_type { MQ_YN_SCALAR, MQ_YN_SEQ, MQ_YN_MAP };

struct mq_ynode {
	enum mq_ynode_type type;
	int line, col;      /* 1-based */
	char *text;         /* scalar value (NUL-terminated), NULL for containers */
	size_t len;
	bool plain;         /* plain (unquoted) scalar */
	struct mq_ynode **kids; /* SEQ: items; MAP: key, value, key, value, ... */
	size_t n, alloc;
};

struct mq_ynode *mq_ynode_free(struct mq_ynode *n);
/* Plain scalar meaning null: "", "~", "null", "Null", "NULL". */
bool mq_ynode_is_null(const struct mq_ynode *n);
/* "a string", "a list", "a mapping" or "null", for type errors. */
const char *mq_ynode_kind(const struct mq_ynode *n);

/* Parse every YAML document in buf.  Complete documents are appended to
 * *docs (empty documents are skipped).  Anchors/aliases, duplicate keys,
 * depth > MQ_MANIFEST_MAX_DEPTH, more than MQ_MANIFEST_MAX_NODES nodes and
 * libyaml errors add diags.  Returns 0, or -EINVAL when the file could not
 * be read to its end (docs may still hold the documents before the error). */
int mq_yaml_parse(const char *buf, size_t len, const char *file, struct mq_diags *d,
		  struct mq_ynode ***docs, size_t *n_docs);

/* ---- edit distance -------------------------------------------------- */

/* Closest candidate to `word` (optimal string alignment distance), or NULL
 * when none is close enough to suggest. */
const char *mq_did_you_mean(const char *word, const char *const *candidates, size_t n);

/* ---- arguments ------------------------------------------------------ */

/* One option rendered from `arguments`: its name without dashes and where it
 * was written. */
struct mq_argopt {
	char *name;
	int line, col;
};

struct mq_argopts {
	struct mq_argopt *v;
	size_t n, alloc;
};

void mq_argopts_release(struct mq_argopts *o);

/* Render the `arguments` node (a list, or a single mapping) into argv tokens
 * appended to out, recording each option in opts.  Errors go to d; returns
 * the number of errors added. */
int mq_arguments_render(const struct mq_ynode *node, const char *file, struct mq_diags *d,
			struct mq_strv *out, struct mq_argopts *opts);

/* ---- canonical form ------------------------------------------------- */

/* Build spec->canonical and spec->hash from the typed fields. */
void mq_spec_make_canonical(struct mq_spec *spec);

/* ---- loader --------------------------------------------------------- */

/* Parse one buffer into specs (internal form of mq_spec_parse_buffer):
 * every mapping document becomes a spec appended to `out`, also the invalid
 * ones (any diag rejects the whole set anyway; keeping them lets set-level
 * checks still see their names).  *incomplete is set when the buffer could
 * not be read to its end. */
struct mq_pos {
	int line, col;
};

/* Positions the set-level checks need, kept beside each spec while loading. */
struct mq_spec_extra {
	struct mq_pos name;  /* the name value */
	struct mq_pos *deps; /* one per spec->depends_on entry */
	struct mq_pos *fwds; /* one per forward, networks in order */
};
struct mq_spec_extra *mq_spec_extra_free(struct mq_spec_extra *x);

struct mq_spec_list {
	struct mq_spec **v;
	struct mq_spec_extra **x;
	size_t n, alloc;
};
void mq_spec_list_push(struct mq_spec_list *l, struct mq_spec *s, struct mq_spec_extra *x);
void mq_spec_list_release(struct mq_spec_list *l); /* frees the specs too */

int mq_spec_parse_internal(const char *buf, size_t len, const char *display_name, const char *abs_file,
			   const char *base_dir, const char *source, struct mq_spec_list *out,
			   struct mq_diags *d, bool *incomplete);
/* Set-level checks over specs (names, ports, depends_on, cycles).  When
 * `names_known_incomplete` is set, unknown depends_on targets are not
 * reported (some manifests could not be read). */
void mq_specs_check_internal(struct mq_spec **specs, struct mq_spec_extra **x /* or NULL */, size_t n,
			     bool names_incomplete, struct mq_diags *d);

#endif
