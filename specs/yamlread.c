/* yamlread.c - libyaml events -> node tree, with the hostile-input caps listed
 * in yamlread.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "specs/yamlread.h"
#include "util/fileio.h"
#include "util/xalloc.h"

struct mq_ynode *mq_ynode_free(struct mq_ynode *n)
{
	if (!n)
		return NULL;
	/* Iterative enough: depth is capped at MQ_MANIFEST_MAX_DEPTH. */
	for (size_t i = 0; i < n->n; i++)
		mq_ynode_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n);
	return NULL;
}

struct mq_ynode *mq_ynode_clone(const struct mq_ynode *n)
{
	if (!n)
		return NULL;
	struct mq_ynode *c = xcalloc(1, sizeof(*c));
	*c = *n;
	c->text = n->text ? xstrndup(n->text, n->len) : NULL;
	c->kids = NULL;
	c->n = c->alloc = 0;
	if (n->n) {
		c->kids = xcalloc(n->n, sizeof(*c->kids));
		c->alloc = n->n;
		for (size_t i = 0; i < n->n; i++)
			c->kids[c->n++] = mq_ynode_clone(n->kids[i]);
	}
	return c;
}

void mq_ynode_set_origin(struct mq_ynode *n, const char *file, const char *dir)
{
	if (!n)
		return;
	n->file = file;
	n->dir = dir;
	for (size_t i = 0; i < n->n; i++)
		mq_ynode_set_origin(n->kids[i], file, dir);
}

struct mq_ynode *mq_ynode_get(const struct mq_ynode *map, const char *key, size_t *idx)
{
	if (!map || map->type != MQ_YN_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct mq_ynode *k = map->kids[i];
		if (k->type == MQ_YN_SCALAR && strcmp(k->text, key) == 0) {
			if (idx)
				*idx = i / 2;
			return map->kids[i + 1];
		}
	}
	return NULL;
}

bool mq_ynode_is_null(const struct mq_ynode *n)
{
	if (!n)
		return true;
	if (n->type != MQ_YN_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
	       strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

const char *mq_ynode_kind(const struct mq_ynode *n)
{
	if (mq_ynode_is_null(n))
		return "null";
	switch (n->type) {
	case MQ_YN_SEQ: return "a list";
	case MQ_YN_MAP: return "a mapping";
	case MQ_YN_SCALAR: break;
	}
	return "a string";
}

static void ynode_add(struct mq_ynode *parent, struct mq_ynode *kid)
{
	if (parent->n == parent->alloc) {
		parent->alloc = parent->alloc ? parent->alloc * 2 : 4;
		parent->kids = xreallocarray(parent->kids, parent->alloc, sizeof(*parent->kids));
	}
	parent->kids[parent->n++] = kid;
}

struct keyref {
	const struct mq_ynode *key;
	size_t idx; /* pair index */
};

static int keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	size_t n = x->key->len < y->key->len ? x->key->len : y->key->len;
	int c = memcmp(x->key->text, y->key->text, n);
	if (c)
		return c;
	if (x->key->len != y->key->len)
		return x->key->len < y->key->len ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Report duplicate and non-scalar keys of a finished mapping and drop those
 * pairs, so validation sees each key once (its first value). */
static void check_mapping(struct mq_ynode *map, const char *file, struct mq_diags *d)
{
	size_t pairs = map->n / 2;
	if (pairs == 0)
		return;
	bool *drop = xcalloc(pairs, sizeof(bool));
	struct keyref *refs = xcalloc(pairs, sizeof(*refs));
	size_t nr = 0;
	for (size_t i = 0; i < pairs; i++) {
		const struct mq_ynode *k = map->kids[2 * i];
		if (k->type != MQ_YN_SCALAR) {
			mq_diags_add(d, file, k->line, k->col, "mapping keys must be strings, got %s",
				     mq_ynode_kind(k));
			drop[i] = true;
			continue;
		}
		refs[nr++] = (struct keyref){ k, i };
	}
	if (nr > 1)
		qsort(refs, nr, sizeof(*refs), keyref_cmp);
	for (size_t i = 1; i < nr; i++) {
		const struct mq_ynode *a = refs[i - 1].key, *b = refs[i].key;
		if (a->len == b->len && memcmp(a->text, b->text, a->len) == 0) {
			/* refs sorted by index within equal keys: find the first */
			size_t j = i - 1;
			while (j > 0 && refs[j - 1].key->len == b->len &&
			       memcmp(refs[j - 1].key->text, b->text, b->len) == 0)
				j--;
			const struct mq_ynode *first = refs[j].key;
			mq_diags_add(d, file, b->line, b->col, "duplicate key '%s' (first at line %d)", b->text,
				     first->line);
			drop[refs[i].idx] = true;
		}
	}
	size_t w = 0;
	for (size_t i = 0; i < pairs; i++) {
		if (drop[i]) {
			mq_ynode_free(map->kids[2 * i]);
			mq_ynode_free(map->kids[2 * i + 1]);
		} else {
			map->kids[w++] = map->kids[2 * i];
			map->kids[w++] = map->kids[2 * i + 1];
		}
	}
	map->n = w;
	free(drop);
	free(refs);
}

static void offset_to_pos(const char *buf, size_t len, size_t off, int *line, int *col)
{
	int l = 1, c = 1;
	if (off > len)
		off = len;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

static void yaml_error_diag(yaml_parser_t *p, const char *buf, size_t len, const char *file, struct mq_diags *d)
{
	const char *problem = p->problem ? p->problem : "unknown error";
	switch (p->error) {
	case YAML_MEMORY_ERROR:
		mq_diags_add(d, file, 0, 0, "out of memory while reading yaml");
		return;
	case YAML_READER_ERROR: {
		int line, col;
		offset_to_pos(buf, len, p->problem_offset, &line, &col);
		if (p->problem_value != -1)
			mq_diags_add(d, file, line, col, "invalid yaml input: %s (#x%02x)", problem,
				     (unsigned)p->problem_value & 0xffu);
		else
			mq_diags_add(d, file, line, col, "invalid yaml input: %s", problem);
		return;
	}
	default:
		break;
	}
	int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
	if (p->context)
		mq_diags_add(d, file, line, col, "invalid yaml: %s (%s at line %d)", problem, p->context,
			     (int)p->context_mark.line + 1);
	else
		mq_diags_add(d, file, line, col, "invalid yaml: %s", problem);
}

static bool has_anchor(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT: return ev->data.scalar.anchor != NULL;
	case YAML_SEQUENCE_START_EVENT: return ev->data.sequence_start.anchor != NULL;
	case YAML_MAPPING_START_EVENT: return ev->data.mapping_start.anchor != NULL;
	default: return false;
	}
}

static void push_doc(struct mq_ynode ***docs, size_t *n_docs, size_t *alloc, struct mq_ynode *root)
{
	if (*n_docs == *alloc) {
		*alloc = *alloc ? *alloc * 2 : 4;
		*docs = xreallocarray(*docs, *alloc, sizeof(**docs));
	}
	(*docs)[(*n_docs)++] = root;
}

int mq_yaml_parse(const char *buf, size_t len, const char *file, struct mq_diags *d,
		  struct mq_ynode ***docs, size_t *n_docs)
{
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		mq_diags_add(d, file, 0, 0, "out of memory while reading yaml");
		return -EINVAL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

	struct mq_ynode *stack[MQ_MANIFEST_MAX_DEPTH + 1];
	size_t depth = 0, nodes = 0, alloc = *n_docs;
	struct mq_ynode *root = NULL;
	int r = 0;
	bool done = false;

	while (!done) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			yaml_error_diag(&parser, buf, len, file, d);
			r = -EINVAL;
			break;
		}
		int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
		if (ev.type == YAML_ALIAS_EVENT || has_anchor(&ev)) {
			mq_diags_add(d, file, line, col, "yaml aliases and anchors are not allowed");
			yaml_event_delete(&ev);
			r = -EINVAL;
			break;
		}
		struct mq_ynode *node = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			root = NULL;
			depth = 0;
			break;
		case YAML_DOCUMENT_END_EVENT:
			if (root && !mq_ynode_is_null(root))
				push_doc(docs, n_docs, &alloc, root);
			else
				mq_ynode_free(root);
			root = NULL;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (++nodes > MQ_MANIFEST_MAX_NODES) {
				mq_diags_add(d, file, line, col, "too many yaml nodes (limit %d)",
					     MQ_MANIFEST_MAX_NODES);
				r = -EINVAL;
				break;
			}
			if (ev.type != YAML_SCALAR_EVENT && depth >= MQ_MANIFEST_MAX_DEPTH) {
				mq_diags_add(d, file, line, col, "yaml nesting is too deep (limit %d levels)",
					     MQ_MANIFEST_MAX_DEPTH);
				r = -EINVAL;
				break;
			}
			node = xcalloc(1, sizeof(*node));
			node->line = line;
			node->col = col;
			if (ev.type == YAML_SCALAR_EVENT) {
				node->type = MQ_YN_SCALAR;
				node->len = ev.data.scalar.length;
				node->text = xstrndup((const char *)ev.data.scalar.value, node->len);
				/* a scalar holding "\0" escapes: keep len consistent with text */
				node->len = strlen(node->text);
				node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			} else {
				node->type = ev.type == YAML_MAPPING_START_EVENT ? MQ_YN_MAP : MQ_YN_SEQ;
			}
			if (depth > 0)
				ynode_add(stack[depth - 1], node);
			else
				root = node;
			if (node->type != MQ_YN_SCALAR)
				stack[depth++] = node;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0) {
				struct mq_ynode *c = stack[--depth];
				if (c->type == MQ_YN_MAP)
					check_mapping(c, file, d);
			}
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (r < 0)
			break;
	}
	if (r < 0)
		mq_ynode_free(root); /* the unfinished document */
	yaml_parser_delete(&parser);
	return r;
}

int mq_yaml_read_file(const char *path, struct mq_diags *d, char **buf, size_t *len)
{
	struct mq_error *err = NULL;
	int r = mq_read_file(path, MQ_MANIFEST_MAX_BYTES, buf, len, &err);
	if (r < 0) {
		if (r == -EFBIG) {
			mq_diags_add(d, path, 0, 0, "manifest is too large (limit %d bytes)", MQ_MANIFEST_MAX_BYTES);
		} else {
			char *e = mq_strerror_lower(-r);
			mq_diags_add(d, path, 0, 0, "cannot read manifest: %s", e);
			free(e);
		}
		mq_error_free(err);
	}
	return r;
}
