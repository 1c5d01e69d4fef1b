/* strbuf.h - growable NUL-terminated byte buffer (git strbuf style).
 *
 * `buf` is always NUL-terminated and never NULL after mq_strbuf_init().
 * Release with mq_strbuf_release(), or take ownership with mq_strbuf_detach().
 */
#ifndef MQ_STRBUF_H
#define MQ_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct mq_strbuf {
	char *buf;
	size_t len;
	size_t alloc;
};

#define MQ_STRBUF_INIT { NULL, 0, 0 }

void mq_strbuf_init(struct mq_strbuf *sb);
void mq_strbuf_release(struct mq_strbuf *sb);
/* Return the buffer (caller frees) and reset sb to empty. */
char *mq_strbuf_detach(struct mq_strbuf *sb);
void mq_strbuf_grow(struct mq_strbuf *sb, size_t extra);
void mq_strbuf_add(struct mq_strbuf *sb, const void *data, size_t len);
void mq_strbuf_adds(struct mq_strbuf *sb, const char *s);
void mq_strbuf_addc(struct mq_strbuf *sb, char c);
void mq_strbuf_addf(struct mq_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mq_strbuf_vaddf(struct mq_strbuf *sb, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void mq_strbuf_reset(struct mq_strbuf *sb);
void mq_strbuf_setlen(struct mq_strbuf *sb, size_t len);

#endif
