#include "util/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

static char empty_buf[1];

void mq_strbuf_init(struct mq_strbuf *sb)
{
	sb->buf = empty_buf;
	sb->len = 0;
	sb->alloc = 0;
}

void mq_strbuf_release(struct mq_strbuf *sb)
{
	if (sb->alloc)
		free(sb->buf);
	mq_strbuf_init(sb);
}

char *mq_strbuf_detach(struct mq_strbuf *sb)
{
	char *r;
	if (sb->alloc)
		r = sb->buf;
	else
		r = xstrdup("");
	mq_strbuf_init(sb);
	return r;
}

void mq_strbuf_grow(struct mq_strbuf *sb, size_t extra)
{
	if (!sb->buf)
		mq_strbuf_init(sb);
	size_t need = sb->len + extra + 1;
	if (need <= sb->alloc)
		return;
	size_t n = sb->alloc ? sb->alloc : 64;
	while (n < need)
		n *= 2;
	if (sb->alloc) {
		sb->buf = xrealloc(sb->buf, n);
	} else {
		char *b = xmalloc(n);
		memcpy(b, sb->buf, sb->len + 1);
		sb->buf = b;
	}
	sb->alloc = n;
}

void mq_strbuf_add(struct mq_strbuf *sb, const void *data, size_t len)
{
	mq_strbuf_grow(sb, len);
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void mq_strbuf_adds(struct mq_strbuf *sb, const char *s)
{
	mq_strbuf_add(sb, s, strlen(s));
}

void mq_strbuf_addc(struct mq_strbuf *sb, char c)
{
	mq_strbuf_add(sb, &c, 1);
}

void mq_strbuf_vaddf(struct mq_strbuf *sb, const char *fmt, va_list ap)
{
	/* Try into the spare room first; grow and retry when it did not fit.
	 * (Measuring with vsnprintf(NULL, 0, ...) trips gcc's format-truncation
	 * analysis under -fsanitize.) */
	mq_strbuf_grow(sb, 64);
	va_list cp;
	va_copy(cp, ap);
	size_t room = sb->alloc - sb->len;
	int n = vsnprintf(sb->buf + sb->len, room, fmt, cp);
	va_end(cp);
	if (n < 0) {
		sb->buf[sb->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		mq_strbuf_grow(sb, (size_t)n);
		vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	}
	sb->len += (size_t)n;
}

void mq_strbuf_addf(struct mq_strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mq_strbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

void mq_strbuf_reset(struct mq_strbuf *sb)
{
	mq_strbuf_setlen(sb, 0);
}

void mq_strbuf_setlen(struct mq_strbuf *sb, size_t len)
{
	if (!sb->buf)
		mq_strbuf_init(sb);
	if (len > sb->len)
		len = sb->len;
	sb->len = len;
	if (sb->alloc)
		sb->buf[len] = '\0';
}
