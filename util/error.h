/* error.h - error reporting for library code.
 *
 * Functions return 0 on success or a negative errno-style code, and fill
 * a `struct mq_error **err` out-parameter with a human message.  Messages are
 * lowercase, no trailing full stop, failure first, names quoted.
 *
 *   int r = mq_store_open(dir, &store, &err);
 *   if (r < 0) { fprintf(stderr, "maqet: %s\n", err->msg); err = mq_error_free(err); }
 *
 * `err` may be NULL: the message is then discarded.  Setting an error when one
 * is already set replaces it.
 */
#ifndef MQ_ERROR_H
#define MQ_ERROR_H

#include "util/banned.h"

struct mq_error {
	int code; /* positive errno value, or 0 when there is none */
	char *msg;
};

/* Set *err (if err != NULL) and return -code (or -EIO when code is 0). */
int mq_error_set(struct mq_error **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepend "prefix: " to an existing message; returns -(*err)->code or -EIO. */
int mq_error_prefix(struct mq_error **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Accepts NULL, returns NULL. */
struct mq_error *mq_error_free(struct mq_error *e);

#endif
