/* strv.h - owned, NULL-terminated vector of strings (usable as an argv).
 *
 * `v` is NULL until the first push; after that v[n] == NULL always, so
 * `execv(sv.v[0], sv.v)` works.  Every element is owned by the vector.
 */
#ifndef MQ_STRV_H
#define MQ_STRV_H

#include <stdbool.h>
#include <stddef.h>

struct mq_strv {
	char **v;
	size_t n;
	size_t alloc;
};

#define MQ_STRV_INIT { NULL, 0, 0 }

void mq_strv_push(struct mq_strv *sv, const char *s);       /* copies s */
void mq_strv_push_take(struct mq_strv *sv, char *s);        /* takes s */
void mq_strv_pushf(struct mq_strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mq_strv_extend(struct mq_strv *sv, const struct mq_strv *from); /* copies */
/* Index of the first element equal to s, or -1. */
long mq_strv_find(const struct mq_strv *sv, const char *s);
bool mq_strv_contains(const struct mq_strv *sv, const char *s);
void mq_strv_sort(struct mq_strv *sv);
/* Join elements with sep into a new string (caller frees). */
char *mq_strv_join(const struct mq_strv *sv, const char *sep);
void mq_strv_clear(struct mq_strv *sv);

#endif
