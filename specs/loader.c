/* loader.c - reading manifests: diagnostics list, YAML -> node tree with
 * hard limits, directory walking and mq_specset_load(). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "specs/internal.h"
#include "specs/spec.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

/* ---- diagnostics ---------------------------------------------------- */

void mq_diags_add(struct mq_diags *d, const char *file, int line, int col, const char *fmt, ...)
{
	if (d->n == d->alloc) {
		d->alloc = d->alloc ? d->alloc * 2 : 16;
		d->v = xreallocarray(d->v, d->alloc, sizeof(*d->v));
	}
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	/* Names in messages come from hostile input: keep every diag on one
	 * printable line. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	d->v[d->n] = (struct mq_diag){ .file = xstrdup(file ? file : "<input>"), .line = line, .col = col,
				       .seq = d->n, .msg = msg };
	d->n++;
}

static int diag_cmp(const void *a, const void *b)
{
	const struct mq_diag *x = a, *y = b;
	int c = strcmp(x->file, y->file);
	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void mq_diags_flush(struct mq_diags *d, struct mq_strv *out)
{
	if (d->n > 1)
		qsort(d->v, d->n, sizeof(*d->v), diag_cmp);
	for (size_t i = 0; i < d->n; i++) {
		struct mq_diag *x = &d->v[i];
		if (out) {
			if (x->line > 0)
				mq_strv_pushf(out, "%s:%d:%d: %s", x->file, x->line, x->col, x->msg);
			else
				mq_strv_pushf(out, "%s: %s", x->file, x->msg);
		}
	}
	mq_diags_release(d);
}

void mq_diags_release(struct mq_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->alloc = 0;
}

/* ---- edit distance -------------------------------------------------- */

static size_t osa_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t *prev2 = xcalloc(lb + 1, sizeof(size_t));
	size_t *prev = xcalloc(lb + 1, sizeof(size_t));
	size_t *cur = xcalloc(lb + 1, sizeof(size_t));
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev[j] + 1;
			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;
			if (prev[j - 1] + cost < v)
				v = prev[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < v)
				v = prev2[j - 2] + 1;
			cur[j] = v;
		}
		size_t *t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	size_t r = prev[lb];
	free(prev2);
	free(prev);
	free(cur);
	return r;
}

const char *mq_did_you_mean(const char *word, const char *const *candidates, size_t n)
{
	size_t lw = strlen(word);
	if (lw == 0 || lw > 64)
		return NULL;
	size_t limit = lw <= 3 ? 1 : lw <= 6 ? 2 : 3;
	const char *best = NULL;
	size_t best_d = limit + 1;
	for (size_t i = 0; i < n; i++) {
		size_t lc = strlen(candidates[i]);
		if ((lc > lw ? lc - lw : lw - lc) > limit) /* distance >= length difference */
			continue;
		size_t dist = osa_distance(word, candidates[i]);
		if (dist < best_d) {
			best_d = dist;
			best = candidates[i];
		}
	}
	return best;
}

/* ---- YAML node tree ------------------------------------------------- */

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

/* ---- spec lists ----------------------------------------------------- */

void mq_spec_list_push(struct mq_spec_list *l, struct mq_spec *s, struct mq_spec_extra *x)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 8;
		l->v = xreallocarray(l->v, l->alloc, sizeof(*l->v));
		l->x = xreallocarray(l->x, l->alloc, sizeof(*l->x));
	}
	l->v[l->n] = s;
	l->x[l->n] = x;
	l->n++;
}

void mq_spec_list_release(struct mq_spec_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		mq_spec_free(l->v[i]);
		mq_spec_extra_free(l->x[i]);
	}
	free(l->v);
	free(l->x);
	l->v = NULL;
	l->x = NULL;
	l->n = l->alloc = 0;
}

/* ---- walking -------------------------------------------------------- */

struct walk {
	struct mq_diags *d;
	struct mq_spec_list specs;
	struct mq_strv seen; /* realpaths of manifests already read */
	bool incomplete;
	struct mq_manifest_list *list; /* list-only mode: record files, parse nothing */
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static bool ignored_name(const char *name)
{
	size_t n = strlen(name);
	if (name[0] == '.') /* dotfiles, dot-directories, .#lock files */
		return true;
	if (n && name[n - 1] == '~')
		return true;
	if (name[0] == '#' && n > 1 && name[n - 1] == '#')
		return true;
	return ends_with(name, ".swp") || ends_with(name, ".swx") || ends_with(name, ".tmp");
}

bool mq_manifest_name_ok(const char *name)
{
	return !ignored_name(name) && (ends_with(name, ".yaml") || ends_with(name, ".yml"));
}

static char *lower_strerror(int e)
{
	char *s = xstrdup(strerror(e));
	if (s[0])
		s[0] = (char)tolower((unsigned char)s[0]);
	return s;
}

static void load_file(struct walk *w, const char *display, const char *source)
{
	char *abs = realpath(display, NULL);
	if (!abs) {
		char *e = lower_strerror(errno);
		mq_diags_add(w->d, display, 0, 0, "%s", e);
		free(e);
		w->incomplete = true;
		return;
	}
	if (mq_strv_contains(&w->seen, abs)) {
		free(abs);
		return;
	}
	mq_strv_push(&w->seen, abs);
	if (w->list) {
		struct mq_manifest_list *l = w->list;
		l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
		l->v[l->n].display = xstrdup(display);
		l->v[l->n].abs = abs;
		l->v[l->n].source = xstrdup(source);
		l->n++;
		return;
	}
	char *buf = NULL;
	size_t len = 0;
	struct mq_error *err = NULL;
	int r = mq_read_file(display, MQ_MANIFEST_MAX_BYTES, &buf, &len, &err);
	if (r < 0) {
		if (r == -EFBIG) {
			mq_diags_add(w->d, display, 0, 0, "manifest is too large (limit %d bytes)",
				     MQ_MANIFEST_MAX_BYTES);
		} else {
			char *e = lower_strerror(-r);
			mq_diags_add(w->d, display, 0, 0, "cannot read manifest: %s", e);
			free(e);
		}
		mq_error_free(err);
		free(abs);
		w->incomplete = true;
		return;
	}
	char *dir = mq_path_dirname(abs);
	bool inc = false;
	mq_spec_parse_internal(buf, len, display, abs, dir, source, &w->specs, w->d, &inc);
	if (inc)
		w->incomplete = true;
	free(dir);
	free(buf);
	free(abs);
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void walk_dir(struct walk *w, const char *display, const char *source, int level)
{
	if (level > MQ_MANIFEST_MAX_DEPTH) {
		mq_diags_add(w->d, display, 0, 0, "directories nested too deep (limit %d levels)",
			     MQ_MANIFEST_MAX_DEPTH);
		w->incomplete = true;
		return;
	}
	struct dirent **ents = NULL;
	int n = scandir(display, &ents, NULL, name_cmp);
	if (n < 0) {
		char *e = lower_strerror(errno);
		mq_diags_add(w->d, display, 0, 0, "cannot read directory: %s", e);
		free(e);
		w->incomplete = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		if (!ignored_name(name)) {
			char *p = mq_path_join(display, name);
			struct stat st;
			if (stat(p, &st) == 0) {
				if (S_ISDIR(st.st_mode))
					walk_dir(w, p, source, level + 1);
				else if (S_ISREG(st.st_mode) && (ends_with(name, ".yaml") || ends_with(name, ".yml")))
					load_file(w, p, source);
			}
			free(p);
		}
		free(ents[i]);
	}
	free(ents);
}

static void walk_paths(struct walk *wp, struct mq_diags *d, const char *const *paths, size_t n_paths,
		       struct mq_strv *sources)
{
	for (size_t i = 0; i < n_paths; i++) {
		/* "vms/" and "vms" both display as "vms/web.yaml" */
		char *display = xstrdup(paths[i]);
		size_t l = strlen(display);
		while (l > 1 && display[l - 1] == '/')
			display[--l] = '\0';
		struct stat st;
		if (l == 0 || stat(display, &st) < 0) {
			int e = l == 0 ? ENOENT : errno;
			char *es = lower_strerror(e);
			mq_diags_add(d, paths[i], 0, 0, "%s", es);
			free(es);
			free(display);
			wp->incomplete = true;
			continue;
		}
		char *source = realpath(display, NULL);
		if (!source)
			source = xstrdup(display);
		mq_strv_push(sources, source);
		if (S_ISDIR(st.st_mode))
			walk_dir(wp, display, source, 0);
		else if (S_ISREG(st.st_mode))
			load_file(wp, display, source);
		else
			mq_diags_add(d, display, 0, 0, "not a regular file or directory");
		free(source);
		free(display);
	}

}

int mq_specset_load(const char *const *paths, size_t n_paths, struct mq_specset **out, struct mq_strv *diags)
{
	struct mq_diags d = { 0 };
	struct walk w = { .d = &d };
	struct mq_specset *set = mq_specset_new();

	walk_paths(&w, &d, paths, n_paths, &set->sources);

	mq_specs_check_internal(w.specs.v, w.specs.x, w.specs.n, w.incomplete, &d);
	mq_strv_clear(&w.seen);

	if (d.n > 0) {
		mq_diags_flush(&d, diags);
		mq_spec_list_release(&w.specs);
		mq_specset_free(set);
		return -EINVAL;
	}
	mq_diags_release(&d);
	set->specs = xreallocarray(set->specs, w.specs.n + 1, sizeof(*set->specs));
	for (size_t i = 0; i < w.specs.n; i++) {
		set->specs[set->n++] = w.specs.v[i];
		mq_spec_extra_free(w.specs.x[i]);
	}
	free(w.specs.v);
	free(w.specs.x);
	/* sorting (and the checks, again: cheap and keeps one code path) */
	struct mq_strv none = MQ_STRV_INIT;
	mq_specset_check(set, &none);
	mq_strv_clear(&none);
	*out = set;
	return 0;
}

int mq_manifest_list(const char *const *paths, size_t n_paths, struct mq_manifest_list *out, struct mq_strv *diags)
{
	struct mq_diags d = { 0 };
	struct walk w = { .d = &d, .list = out };
	memset(out, 0, sizeof(*out));
	walk_paths(&w, &d, paths, n_paths, &out->sources);
	mq_strv_clear(&w.seen);
	if (d.n > 0) {
		mq_diags_flush(&d, diags);
		return -EINVAL;
	}
	mq_diags_release(&d);
	return 0;
}

void mq_manifest_list_release(struct mq_manifest_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].display);
		free(l->v[i].abs);
		free(l->v[i].source);
	}
	free(l->v);
	mq_strv_clear(&l->sources);
	memset(l, 0, sizeof(*l));
}
