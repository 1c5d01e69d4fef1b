/* xalloc.h - allocation wrappers that abort on out-of-memory.
 *
 * maqet never half-handles a NULL from malloc: these wrappers print a short
 * message and abort().  Every function returns a valid pointer.
 */
#ifndef MQ_XALLOC_H
#define MQ_XALLOC_H

#include "util/banned.h"

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grow an array of nmemb elements of size sz, checking for overflow. */
void *xreallocarray(void *p, size_t nmemb, size_t sz);
char *xstrdup(const char *s);
/* xstrdup(NULL) == NULL, otherwise a copy. */
char *xstrdup_null(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Free *p and set it to NULL; for use with __attribute__((cleanup)). */
void mq_freep(void *p);
#define _cleanup_free_ __attribute__((cleanup(mq_freep)))

/* Take a pointer out of a cleanup variable (systemd TAKE_PTR). */
#define TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tf = (fd); (fd) = -1; _tf; })

void mq_closep(int *fd);
#define _cleanup_close_ __attribute__((cleanup(mq_closep)))

#define MQ_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The one out-of-memory end: a message on stderr and abort() (the only
 * print in util/, as no caller can recover). */
__attribute__((noreturn)) void mq_oom(size_t n);

#endif
