/* extends.c - shared bases merged under a document (see extends.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "specs/extends.h"
#include "specs/value.h"
#include "util/paths.h"
#include "util/xalloc.h"

enum base_state { BASE_RESOLVING = 1, BASE_OK, BASE_FAILED };

struct base {
	char *abs, *display, *dir;
	enum base_state state;
	char *why;                 /* BASE_FAILED: "... (how to fix)", after "base 'x' " */
	struct mq_ynode *root;     /* BASE_OK: resolved (its own bases merged in) */
	int height;                /* levels of bases from this one down, itself included */
	struct mq_extends_result chain;
};

struct mq_bases {
	struct base **v;
	size_t n;
};

struct mq_bases *mq_bases_new(void)
{
	return xcalloc(1, sizeof(struct mq_bases));
}

struct mq_bases *mq_bases_free(struct mq_bases *b)
{
	if (!b)
		return NULL;
	for (size_t i = 0; i < b->n; i++) {
		struct base *e = b->v[i];
		free(e->abs);
		free(e->display);
		free(e->dir);
		free(e->why);
		mq_ynode_free(e->root);
		mq_extends_result_release(&e->chain);
		free(e);
	}
	free(b->v);
	free(b);
	return NULL;
}

void mq_extends_result_release(struct mq_extends_result *r)
{
	mq_strv_clear(&r->bases);
	mq_strv_clear(&r->bases_abs);
}

static void result_add(struct mq_extends_result *r, const char *display, const char *abs)
{
	if (mq_strv_contains(&r->bases_abs, abs))
		return;
	mq_strv_push(&r->bases, display);
	mq_strv_push(&r->bases_abs, abs);
}

static void result_extend(struct mq_extends_result *r, const struct mq_extends_result *from)
{
	for (size_t i = 0; i < from->bases.n; i++)
		result_add(r, from->bases.v[i], from->bases_abs.v[i]);
}

/* ---- merging ------------------------------------------------------------ */

static bool named_list_key(const char *k)
{
	return strcmp(k, "storage") == 0 || strcmp(k, "network") == 0 || strcmp(k, "snapshots") == 0;
}

static void node_append(struct mq_ynode *parent, struct mq_ynode *kid)
{
	if (parent->n == parent->alloc) {
		parent->alloc = parent->alloc ? parent->alloc * 2 : 4;
		parent->kids = xreallocarray(parent->kids, parent->alloc, sizeof(*parent->kids));
	}
	parent->kids[parent->n++] = kid;
}

/* Free a container whose kids were moved out. */
static void shell_free(struct mq_ynode *n)
{
	n->n = 0;
	mq_ynode_free(n);
}

static void merge_map(struct mq_ynode *dst, struct mq_ynode *src, bool top);

static const char *entry_name(const struct mq_ynode *item)
{
	const struct mq_ynode *nm = mq_ynode_get(item, "name", NULL);
	return mq_is_scalar(nm) ? nm->text : NULL;
}

/* storage/network/snapshots: entries with a name merge into the earlier
 * entry of that name, the others are appended.  src's items are consumed. */
static void merge_named(struct mq_ynode *dst, struct mq_ynode *src)
{
	size_t base_n = dst->n;
	for (size_t i = 0; i < src->n; i++) {
		struct mq_ynode *it = src->kids[i];
		const char *nm = entry_name(it);
		struct mq_ynode *match = NULL;
		for (size_t j = 0; nm && j < base_n && !match; j++) {
			const char *dn = entry_name(dst->kids[j]);
			if (dn && strcmp(dn, nm) == 0)
				match = dst->kids[j];
		}
		if (match) {
			merge_map(match, it, false);
			shell_free(it);
		} else {
			node_append(dst, it);
		}
	}
	src->n = 0;
}

/* src on top of dst; src's kids are consumed (src is left empty). */
static void merge_map(struct mq_ynode *dst, struct mq_ynode *src, bool top)
{
	for (size_t i = 0; i + 1 < src->n; i += 2) {
		struct mq_ynode *k = src->kids[i], *v = src->kids[i + 1];
		size_t j = 0;
		struct mq_ynode *dv = k->type == MQ_YN_SCALAR ? mq_ynode_get(dst, k->text, &j) : NULL;
		if (!dv) {
			node_append(dst, k);
			node_append(dst, v);
		} else if (dv->type == MQ_YN_MAP && v->type == MQ_YN_MAP) {
			merge_map(dv, v, false);
			shell_free(v);
			mq_ynode_free(k);
		} else if (top && named_list_key(k->text) && dv->type == MQ_YN_SEQ && v->type == MQ_YN_SEQ) {
			merge_named(dv, v);
			shell_free(v);
			mq_ynode_free(k);
		} else {
			/* replaced: key and value now both where the later file wrote them */
			mq_ynode_free(dst->kids[2 * j]);
			mq_ynode_free(dst->kids[2 * j + 1]);
			dst->kids[2 * j] = k;
			dst->kids[2 * j + 1] = v;
		}
	}
	src->n = 0;
}

/* ---- reading bases -------------------------------------------------------- */

struct stack {
	const char *abs[MQ_EXTENDS_MAX_DEPTH + 2];
	const char *display[MQ_EXTENDS_MAX_DEPTH + 2];
	size_t n;
};

static int resolve_doc(struct mq_bases *b, struct mq_ynode *root, const char *display, const char *dir,
		       struct stack *st, struct mq_diags *d, struct mq_extends_result *out, int *height);

static struct base *base_find(struct mq_bases *b, const char *abs)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->v[i]->abs, abs) == 0)
			return b->v[i];
	return NULL;
}

static void base_fail(struct base *e, char *why)
{
	e->state = BASE_FAILED;
	e->why = why;
	e->root = mq_ynode_free(e->root);
}

/* Read, check and resolve base `abs` (not in the cache yet). */
static struct base *base_load(struct mq_bases *b, const char *abs, const char *display, struct stack *st,
			      struct mq_diags *d)
{
	struct base *e = xcalloc(1, sizeof(*e));
	e->abs = xstrdup(abs);
	e->display = xstrdup(display);
	e->dir = mq_path_dirname(abs);
	e->state = BASE_RESOLVING;
	b->v = xreallocarray(b->v, b->n + 1, sizeof(*b->v));
	b->v[b->n++] = e;

	char *buf = NULL;
	size_t len = 0;
	struct mq_diags own = { 0 };
	if (mq_yaml_read_file(abs, &own, &buf, &len) < 0) {
		base_fail(e, own.n ? xasprintf("cannot be read: %s", own.v[0].msg) : xstrdup("cannot be read"));
		mq_diags_release(&own);
		return e;
	}
	struct mq_ynode **docs = NULL;
	size_t n_docs = 0;
	size_t before = d->n;
	mq_yaml_parse(buf, len, e->display, d, &docs, &n_docs);
	free(buf);
	mq_diags_release(&own);
	if (d->n > before) {
		base_fail(e, NULL); /* the yaml errors are reported in it */
	} else if (n_docs != 1) {
		base_fail(e, xasprintf("holds %zu documents (a base is exactly one mapping of manifest keys)", n_docs));
	} else if (docs[0]->type != MQ_YN_MAP) {
		base_fail(e, xasprintf("must be a mapping of manifest keys, got %s", mq_ynode_kind(docs[0])));
	} else {
		const struct mq_ynode *nm = NULL;
		size_t idx = 0;
		nm = mq_ynode_get(docs[0], "name", &idx);
		if (nm) {
			const struct mq_ynode *k = docs[0]->kids[2 * idx];
			base_fail(e, xasprintf("sets 'name' (line %d); a base is shared by several vms: set 'name' in "
					       "each manifest, not in the base", k->line));
		} else {
			e->root = docs[0];
			docs[0] = NULL;
			mq_ynode_set_origin(e->root, e->display, e->dir);
			st->abs[st->n] = e->abs;
			st->display[st->n] = e->display;
			st->n++;
			int h = 0;
			int r = resolve_doc(b, e->root, e->display, e->dir, st, d, &e->chain, &h);
			st->n--;
			if (r < 0) {
				base_fail(e, NULL); /* reported where its own extends are written */
			} else {
				e->state = BASE_OK;
				e->height = h + 1;
			}
		}
	}
	for (size_t i = 0; i < n_docs; i++)
		mq_ynode_free(docs[i]);
	free(docs);
	return e;
}

static char *cycle_text(const struct stack *st, size_t from, const char *again)
{
	struct mq_strv parts = MQ_STRV_INIT;
	for (size_t i = from; i < st->n; i++)
		mq_strv_push(&parts, st->display[i]);
	mq_strv_push(&parts, again);
	char *s = mq_strv_join(&parts, " -> ");
	mq_strv_clear(&parts);
	return s;
}

static void ext_err(struct mq_diags *d, const struct mq_ynode *n, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void ext_err(struct mq_diags *d, const struct mq_ynode *n, const char *file, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	mq_diags_add(d, n->file ? n->file : file, n->line, n->col, "%s", msg);
	free(msg);
}

/* /proc, /sys and /dev hold "regular" files whose reads can block
 * (/proc/kmsg) or never end. */
static bool pseudo_fs(const char *abs)
{
	static const char *const dirs[] = { "/proc", "/sys", "/dev" };
	for (size_t i = 0; i < 3; i++) {
		size_t l = strlen(dirs[i]);
		if (strncmp(abs, dirs[i], l) == 0 && (abs[l] == '/' || abs[l] == '\0'))
			return true;
	}
	return false;
}

/* One entry of `extends`: the resolved base (cloned), or NULL after a diag. */
static struct mq_ynode *extend_one(struct mq_bases *b, const struct mq_ynode *it, const char *display,
				   const char *dir, struct stack *st, struct mq_diags *d,
				   struct mq_extends_result *out, int *height, bool *failed)
{
	const char *file = it->file ? it->file : display;
	const char *here = it->dir ? it->dir : dir;
	if (!mq_is_scalar(it) || it->len == 0) {
		char *g = mq_got(it);
		ext_err(d, it, display, "'extends' entries must be paths of base files, got %s", g);
		free(g);
		return NULL;
	}
	char *cl = mq_clip(it->text);
	char *joined = it->text[0] == '/' ? xstrdup(it->text) : mq_path_join(here, it->text);
	char *fdir = mq_path_dirname(file);
	char *shown = it->text[0] == '/' || strcmp(fdir, ".") == 0 ? xstrdup(it->text) : mq_path_join(fdir, it->text);
	free(fdir);
	char *abs = realpath(joined, NULL);
	struct mq_ynode *res = NULL;
	if (!abs) {
		int e = errno;
		char *es = mq_strerror_lower(e);
		ext_err(d, it, display, "base '%s' cannot be read: %s (paths in 'extends' are relative to the file "
			"that names them)", cl, es);
		free(es);
		if (e == ENOENT) { /* listed all the same, so watch mode sees it appear */
			char *guess = mq_path_resolve(joined);
			result_add(out, shown, guess);
			free(guess);
		}
		goto out;
	}
	for (size_t i = 0; i < st->n; i++) {
		if (strcmp(st->abs[i], abs) == 0) {
			char *cy = cycle_text(st, 0, shown);
			ext_err(d, it, display, "base '%s' makes a cycle of extends: %s (remove one of them)", cl, cy);
			free(cy);
			goto out;
		}
	}
	if (st->n > MQ_EXTENDS_MAX_DEPTH) {
		char *cy = cycle_text(st, 0, shown);
		ext_err(d, it, display, "base '%s' is more than %d levels of extends deep: %s (flatten the chain)",
			cl, MQ_EXTENDS_MAX_DEPTH, cy);
		free(cy);
		goto out;
	}
	struct stat sb;
	if (pseudo_fs(abs) || stat(abs, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		/* a fifo or a device could block the loader (and the watch loop) */
		ext_err(d, it, display, "base '%s' is not a regular file", cl);
		goto out;
	}
	struct base *e = base_find(b, abs);
	if (!e)
		e = base_load(b, abs, shown, st, d);
	if (e->state == BASE_RESOLVING) { /* reached again through a cached path: a cycle */
		ext_err(d, it, display, "base '%s' makes a cycle of extends (remove one of them)", cl);
		goto out;
	}
	if (e->state == BASE_FAILED) {
		/* without a why, the errors are reported inside the base (once) */
		if (e->why)
			ext_err(d, it, display, "base '%s' %s", cl, e->why);
		else
			*failed = true;
		result_add(out, e->display, e->abs); /* watch mode waits for its fix */
		goto out;
	}
	if ((int)st->n - 1 + e->height > MQ_EXTENDS_MAX_DEPTH) {
		ext_err(d, it, display, "base '%s' is more than %d levels of extends deep (flatten the chain)", cl,
			MQ_EXTENDS_MAX_DEPTH);
		goto out;
	}
	if (e->height > *height)
		*height = e->height;
	result_extend(out, &e->chain);
	result_add(out, e->display, e->abs);
	res = mq_ynode_clone(e->root);
out:
	free(abs);
	free(shown);
	free(joined);
	free(cl);
	return res;
}

static int resolve_doc(struct mq_bases *b, struct mq_ynode *root, const char *display, const char *dir,
		       struct stack *st, struct mq_diags *d, struct mq_extends_result *out, int *height)
{
	size_t idx = 0;
	struct mq_ynode *ext = mq_ynode_get(root, "extends", &idx);
	if (!ext)
		return 0;
	struct mq_ynode *key = root->kids[2 * idx];
	memmove(&root->kids[2 * idx], &root->kids[2 * idx + 2], (root->n - 2 * idx - 2) * sizeof(*root->kids));
	root->n -= 2;
	size_t before = d->n;
	bool failed = false;
	struct mq_ynode *acc = NULL;
	if (!mq_ynode_is_null(ext)) {
		struct mq_ynode *const *items = &ext;
		size_t count = 1;
		if (ext->type == MQ_YN_SEQ) {
			items = ext->kids;
			count = ext->n;
		} else if (ext->type == MQ_YN_MAP) {
			ext_err(d, ext, display, "'extends' must be a base file path or a list of them, got a mapping");
			count = 0;
		}
		for (size_t i = 0; i < count; i++) {
			struct mq_ynode *m = extend_one(b, items[i], display, dir, st, d, out, height, &failed);
			if (!m)
				continue;
			if (!acc) {
				acc = m;
			} else {
				merge_map(acc, m, true);
				shell_free(m);
			}
		}
	}
	mq_ynode_free(key);
	mq_ynode_free(ext);
	if (acc) {
		merge_map(acc, root, true);
		/* root keeps its own position and origin; it takes acc's pairs */
		free(root->kids);
		root->kids = acc->kids;
		root->n = acc->n;
		root->alloc = acc->alloc;
		acc->kids = NULL;
		acc->n = acc->alloc = 0;
		mq_ynode_free(acc);
	}
	return d->n > before || failed ? -EINVAL : 0;
}

int mq_extends_resolve(struct mq_bases *b, struct mq_ynode *root, const char *display, const char *abs,
		       const char *dir, struct mq_diags *d, struct mq_extends_result *out)
{
	if (!root || root->type != MQ_YN_MAP)
		return 0;
	struct stack st = { .n = 1 };
	st.abs[0] = abs;
	st.display[0] = display;
	int h = 0;
	return resolve_doc(b, root, display, dir, &st, d, out, &h);
}

/* ---- origins ---------------------------------------------------------------- */

static void collect_files(const struct mq_ynode *n, struct mq_strv *files)
{
	if (n->file && !mq_strv_contains(files, n->file))
		mq_strv_push(files, n->file);
	for (size_t i = 0; i < n->n; i++)
		collect_files(n->kids[i], files);
}

void mq_extends_origins(const struct mq_ynode *root, struct mq_strv *keys, struct mq_strv *files)
{
	if (!root || root->type != MQ_YN_MAP)
		return;
	for (size_t i = 0; i + 1 < root->n; i += 2) {
		const struct mq_ynode *k = root->kids[i];
		if (k->type != MQ_YN_SCALAR)
			continue;
		struct mq_strv f = MQ_STRV_INIT;
		collect_files(k, &f);
		collect_files(root->kids[i + 1], &f);
		if (f.n) {
			mq_strv_push(keys, k->text);
			mq_strv_push_take(files, mq_strv_join(&f, ", "));
		}
		mq_strv_clear(&f);
	}
}
