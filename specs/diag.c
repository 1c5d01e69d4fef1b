/* diag.c - manifest diagnostics, did-you-mean and quoting of hostile text. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "specs/diag.h"
#include "util/xalloc.h"

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
		/* the same message twice (a bad value in a base shared by
		 * several vms) is reported once */
		if (i > 0 && x->line == d->v[i - 1].line && x->col == d->v[i - 1].col &&
		    strcmp(x->file, d->v[i - 1].file) == 0 && strcmp(x->msg, d->v[i - 1].msg) == 0)
			continue;
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

/* A short quotable copy of hostile text: at most 60 bytes, cut on a UTF-8
 * character boundary. */
char *mq_clip(const char *s)
{
	size_t n = strlen(s);
	if (n <= 60)
		return xstrdup(s);
	size_t cut = 57;
	while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	char *r = xmalloc(cut + 4);
	memcpy(r, s, cut);
	memcpy(r + cut, "...", 4);
	return r;
}

char *mq_strerror_lower(int e)
{
	char *s = xstrdup(strerror(e));
	if (s[0])
		s[0] = (char)tolower((unsigned char)s[0]);
	return s;
}
