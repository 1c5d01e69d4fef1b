/* value.c - typed values out of YAML nodes, with diagnostics. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "specs/value.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

void mq_err_at(struct mq_pctx *c, const struct mq_ynode *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	mq_diags_add(c->d, n->file ? n->file : c->file, n->line, n->col, "%s", msg);
	free(msg);
	c->errors++;
}

/* What a value is, for "got ..." : 'text', a list, a mapping or null. */
char *mq_got(const struct mq_ynode *n)
{
	if (n && n->type == MQ_YN_SCALAR && !mq_ynode_is_null(n)) {
		char *cl = mq_clip(n->text);
		char *r = xasprintf("'%s'", cl);
		free(cl);
		return r;
	}
	return xstrdup(mq_ynode_kind(n));
}

void mq_err_expect(struct mq_pctx *c, const struct mq_ynode *n, const char *what, const char *expected)
{
	char *g = mq_got(n);
	mq_err_at(c, n, "%s must be %s, got %s", what, expected, g);
	free(g);
}

bool mq_is_scalar(const struct mq_ynode *n)
{
	return n && n->type == MQ_YN_SCALAR && !mq_ynode_is_null(n);
}

bool mq_given(const struct mq_ynode *v)
{
	return v && !mq_ynode_is_null(v);
}

/* Non-empty scalar text, or an error naming `what`. */
const char *mq_want_string(struct mq_pctx *c, const struct mq_ynode *n, const char *what)
{
	if (mq_is_scalar(n) && n->len > 0)
		return n->text;
	mq_err_expect(c, n, what, "a non-empty string");
	return NULL;
}

bool mq_valid_host_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MQ_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
		if (!alnum && !(i > 0 && (ch == '-' || ch == '.')))
			return false;
	}
	return true;
}

bool mq_valid_name(const char *s, bool allow_underscore)
{
	size_t n = strlen(s);
	if (n == 0 || n > MQ_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
		if (i > 0 && (ch == '-' || (allow_underscore && ch == '_')))
			ok = true;
		if (!ok)
			return false;
	}
	return true;
}

bool mq_parse_enum(struct mq_pctx *c, const struct mq_ynode *n, const char *what, const char *const *names,
		       size_t count, int *out)
{
	if (mq_is_scalar(n)) {
		for (size_t i = 0; i < count; i++)
			if (strcmp(n->text, names[i]) == 0) {
				*out = (int)i;
				return true;
			}
	}
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	for (size_t i = 0; i < count; i++)
		mq_strbuf_addf(&sb, "%s%s", i ? ", " : "", names[i]);
	char *g = mq_got(n);
	const char *hint = mq_is_scalar(n) ? mq_did_you_mean(n->text, names, count) : NULL;
	if (hint)
		mq_err_at(c, n, "%s must be one of %s, got %s (did you mean '%s'?)", what, sb.buf, g, hint);
	else
		mq_err_at(c, n, "%s must be one of %s, got %s", what, sb.buf, g);
	free(g);
	mq_strbuf_release(&sb);
	return false;
}

bool mq_parse_bool(struct mq_pctx *c, const struct mq_ynode *n, const char *what, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	if (mq_is_scalar(n)) {
		for (size_t i = 0; i < MQ_ARRAY_SIZE(yes); i++) {
			if (strcmp(n->text, yes[i]) == 0) {
				*out = true;
				return true;
			}
			if (strcmp(n->text, no[i]) == 0) {
				*out = false;
				return true;
			}
		}
	}
	mq_err_expect(c, n, what, "true or false");
	return false;
}

/* Resolve a path from the manifest: relative to the manifest's directory,
 * symlinks followed, refused inside system directories. */
char *mq_want_path(struct mq_pctx *c, const struct mq_ynode *n, const char *what)
{
	const char *text = mq_want_string(c, n, what);
	if (!text)
		return NULL;
	char *joined = text[0] == '/' ? xstrdup(text) : mq_path_join(n->dir ? n->dir : c->base_dir, text);
	char *resolved = mq_path_resolve(joined);
	free(joined);
	if (mq_path_is_system(resolved)) {
		char *cl = mq_clip(text);
		mq_err_at(c, n, "'%s' resolves to '%s', inside a system directory; put disk images and shares elsewhere",
		       cl, resolved);
		free(cl);
		free(resolved);
		return NULL;
	}
	return resolved;
}

/* Look up keys of a mapping against a table; unknown keys are reported
 * with a did-you-mean.  vals[i] = value of keys[i] (NULL when absent),
 * knodes[i] = its key node. */
void mq_collect_keys(struct mq_pctx *c, const struct mq_ynode *map, const char *const *keys, size_t nkeys,
			 const struct mq_ynode **vals, const struct mq_ynode **knodes, const char *where)
{
	for (size_t i = 0; i < nkeys; i++)
		vals[i] = knodes[i] = NULL;
	for (size_t p = 0; p + 1 < map->n; p += 2) {
		const struct mq_ynode *k = map->kids[p], *v = map->kids[p + 1];
		size_t i;
		for (i = 0; i < nkeys; i++)
			if (strcmp(k->text, keys[i]) == 0)
				break;
		if (i < nkeys) {
			vals[i] = v;
			knodes[i] = k;
			continue;
		}
		char *cl = mq_clip(k->text);
		const char *hint = mq_did_you_mean(k->text, keys, nkeys);
		if (hint)
			mq_err_at(c, k, "unknown key '%s'%s (did you mean '%s'?)", cl, where, hint);
		else
			mq_err_at(c, k, "unknown key '%s'%s", cl, where);
		free(cl);
	}
}

struct textref {
	const char *text;
	size_t idx;
};

static int textref_cmp(const void *a, const void *b)
{
	const struct textref *x = a, *y = b;
	int c = strcmp(x->text, y->text);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* first[i] = index of the first earlier entry with the same text, or -1
 * (NULL texts never match).  O(n log n): lists come from hostile input. */
long *mq_find_dups(const char *const *texts, size_t n)
{
	long *first = xcalloc(n + 1, sizeof(long));
	struct textref *refs = xcalloc(n + 1, sizeof(*refs));
	size_t nr = 0;
	for (size_t i = 0; i < n; i++) {
		first[i] = -1;
		if (texts[i])
			refs[nr++] = (struct textref){ texts[i], i };
	}
	if (nr > 1)
		qsort(refs, nr, sizeof(*refs), textref_cmp);
	for (size_t i = 1, f = 0; i < nr; i++) {
		if (strcmp(refs[i].text, refs[f].text) == 0)
			first[refs[i].idx] = (long)refs[f].idx;
		else
			f = i;
	}
	free(refs);
	return first;
}
