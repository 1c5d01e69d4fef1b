/* yamlread.h - reading manifests with libyaml into a small node tree, treating
 * the input as hostile.
 *
 * Internal to specs/.  The caps, all reported as diags with file:line:col:
 *   - file size      MQ_MANIFEST_MAX_BYTES (mq_yaml_read_file)
 *   - nesting depth  MQ_MANIFEST_MAX_DEPTH
 *   - node count     MQ_MANIFEST_MAX_NODES
 *   - anchors and aliases: refused outright (no billion laughs)
 *   - duplicate keys and non-string keys: reported, the later pair dropped
 *   - invalid UTF-8: libyaml's reader error, with the offending byte
 * Every node carries its 1-based line and column.
 */
#ifndef MQ_SPECS_YAMLREAD_H
#define MQ_SPECS_YAMLREAD_H

#include <stdbool.h>
#include <stddef.h>

#include "specs/diag.h"
#include "specs/spec.h"

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
	/* Where the node was written when that is not the document's own file
	 * (a base merged in by `extends`, see extends.h): its displayed name and
	 * the directory relative paths resolve against.  NULL = the document's
	 * file (mq_pctx.file / base_dir).  Borrowed from the base cache. */
	const char *file;
	const char *dir;
};

struct mq_ynode *mq_ynode_free(struct mq_ynode *n);
/* A deep copy (origin pointers shared). */
struct mq_ynode *mq_ynode_clone(const struct mq_ynode *n);
/* Set file/dir of n and every node below it. */
void mq_ynode_set_origin(struct mq_ynode *n, const char *file, const char *dir);
/* The value of `key` in mapping `map` (NULL when absent or not a mapping);
 * *idx = its pair index. */
struct mq_ynode *mq_ynode_get(const struct mq_ynode *map, const char *key, size_t *idx);
/* Plain scalar meaning null: "", "~", "null", "Null", "NULL". */
bool mq_ynode_is_null(const struct mq_ynode *n);
/* "a string", "a list", "a mapping" or "null", for type errors. */
const char *mq_ynode_kind(const struct mq_ynode *n);

/* Read a manifest file of at most MQ_MANIFEST_MAX_BYTES into *buf (caller
 * frees).  Returns 0, or a negative errno after adding a diag for `path`. */
int mq_yaml_read_file(const char *path, struct mq_diags *d, char **buf, size_t *len);

/* Parse every YAML document in buf.  Complete documents are appended to
 * *docs (empty documents are skipped).  Anchors/aliases, duplicate keys,
 * depth > MQ_MANIFEST_MAX_DEPTH, more than MQ_MANIFEST_MAX_NODES nodes and
 * libyaml errors add diags.  Returns 0, or -EINVAL when the file could not
 * be read to its end (docs may still hold the documents before the error). */
int mq_yaml_parse(const char *buf, size_t len, const char *file, struct mq_diags *d,
		  struct mq_ynode ***docs, size_t *n_docs);

/* Emit one node tree as a YAML document (block style; scalars that were
 * quoted stay quoted) appended to out.  Implemented in render.c. */
struct mq_strbuf;
int mq_yaml_emit(const struct mq_ynode *root, struct mq_strbuf *out);

#endif
