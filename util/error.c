#include "util/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include "util/xalloc.h"

int mq_error_set(struct mq_error **err, int code, const char *fmt, ...)
{
	if (code < 0)
		code = -code;
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		char *msg = xvasprintf(fmt, ap);
		va_end(ap);
		if (*err)
			*err = mq_error_free(*err);
		*err = xmalloc(sizeof(**err));
		(*err)->code = code;
		(*err)->msg = msg;
	}
	return code ? -code : -EIO;
}

int mq_error_prefix(struct mq_error **err, const char *fmt, ...)
{
	if (!err || !*err)
		return -EIO;
	va_list ap;
	va_start(ap, fmt);
	char *pre = xvasprintf(fmt, ap);
	va_end(ap);
	char *msg = xasprintf("%s: %s", pre, (*err)->msg);
	free(pre);
	free((*err)->msg);
	(*err)->msg = msg;
	return (*err)->code ? -(*err)->code : -EIO;
}

struct mq_error *mq_error_free(struct mq_error *e)
{
	if (e) {
		free(e->msg);
		free(e);
	}
	return NULL;
}
