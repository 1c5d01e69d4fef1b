#include "util/strv.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"
#include "util/xalloc.h"

void mq_strv_push_take(struct mq_strv *sv, char *s)
{
	if (sv->n + 2 > sv->alloc) {
		sv->alloc = sv->alloc ? sv->alloc * 2 : 8;
		sv->v = xreallocarray(sv->v, sv->alloc, sizeof(char *));
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void mq_strv_push(struct mq_strv *sv, const char *s)
{
	mq_strv_push_take(sv, xstrdup(s));
}

void mq_strv_pushf(struct mq_strv *sv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mq_strv_push_take(sv, xvasprintf(fmt, ap));
	va_end(ap);
}

void mq_strv_extend(struct mq_strv *sv, const struct mq_strv *from)
{
	for (size_t i = 0; i < from->n; i++)
		mq_strv_push(sv, from->v[i]);
}

long mq_strv_find(const struct mq_strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return (long)i;
	return -1;
}

bool mq_strv_contains(const struct mq_strv *sv, const char *s)
{
	return mq_strv_find(sv, s) >= 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void mq_strv_sort(struct mq_strv *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof(char *), cmp_str);
}

char *mq_strv_join(const struct mq_strv *sv, const char *sep)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	for (size_t i = 0; i < sv->n; i++) {
		if (i)
			mq_strbuf_adds(&sb, sep);
		mq_strbuf_adds(&sb, sv->v[i]);
	}
	return mq_strbuf_detach(&sb);
}

void mq_strv_clear(struct mq_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->alloc = 0;
}
