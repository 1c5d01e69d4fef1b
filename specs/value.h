/* value.h - reading typed values out of YAML nodes, with diagnostics.
 *
 * Internal to specs/.  Every helper reports a failure itself (at the node's
 * file:line:col, counted in ctx->errors) and leaves its out-parameter alone.
 * `what` names the value in messages, quoted as the user wrote it:
 * "'memory'", "'size' of storage 'root'".
 */
#ifndef MQ_SPECS_VALUE_H
#define MQ_SPECS_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "specs/diag.h"
#include "specs/yamlread.h"

struct mq_argopts;

/* The state of parsing one document. */
struct mq_pctx {
	const char *file;       /* displayed file name */
	const char *base_dir;   /* relative paths resolve against it */
	struct mq_diags *d;
	int errors;
	const struct mq_ynode *root;   /* the document's mapping */
	struct mq_argopts *argopts;    /* options rendered from `arguments` */
};

void mq_err_at(struct mq_pctx *c, const struct mq_ynode *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "WHAT must be EXPECTED, got 'text'|a list|a mapping|null" */
void mq_err_expect(struct mq_pctx *c, const struct mq_ynode *n, const char *what, const char *expected);
/* What a value is, for "got ...": 'text', a list, a mapping or null. */
char *mq_got(const struct mq_ynode *n);

/* A non-null scalar. */
bool mq_is_scalar(const struct mq_ynode *n);
/* Present and not null. */
bool mq_given(const struct mq_ynode *n);
/* [a-z0-9][a-z0-9-]{0,62}, with '_' too when allow_underscore. */
bool mq_valid_name(const char *s, bool allow_underscore);

/* A host name for `placement` and hosts.yaml: [A-Za-z0-9][A-Za-z0-9.-]{0,62}. */
bool mq_valid_host_name(const char *s);

/* Non-empty scalar text, or an error naming `what`. */
const char *mq_want_string(struct mq_pctx *c, const struct mq_ynode *n, const char *what);
/* A path resolved against base_dir, symlinks followed, refused inside system
 * directories.  Caller frees; NULL after an error. */
char *mq_want_path(struct mq_pctx *c, const struct mq_ynode *n, const char *what);
/* One of names[0..count) (with a did-you-mean), or an error. */
bool mq_parse_enum(struct mq_pctx *c, const struct mq_ynode *n, const char *what, const char *const *names,
		   size_t count, int *out);
bool mq_parse_bool(struct mq_pctx *c, const struct mq_ynode *n, const char *what, bool *out);

/* Look up the keys of a mapping against `keys`; unknown keys are reported
 * with a did-you-mean ("unknown key 'x'WHERE").  vals[i] = value of keys[i]
 * (NULL when absent), knodes[i] = its key node. */
void mq_collect_keys(struct mq_pctx *c, const struct mq_ynode *map, const char *const *keys, size_t nkeys,
		     const struct mq_ynode **vals, const struct mq_ynode **knodes, const char *where);

/* first[i] = index of the first earlier entry with the same text, or -1
 * (NULL texts never match).  O(n log n).  Caller frees. */
long *mq_find_dups(const char *const *texts, size_t n);

#endif
