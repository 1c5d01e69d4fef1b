/* fileio.h - small file helpers. */
#ifndef MQ_FILEIO_H
#define MQ_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* Read a whole regular file of at most `cap` bytes into a NUL-terminated
 * buffer.  -EFBIG (with message) when larger. */
int mq_read_file(const char *path, size_t cap, char **out, size_t *len, struct mq_error **err);
/* Write data to path atomically (tmp + rename), mode. */
int mq_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, struct mq_error **err);
/* The bytes of `path` from `offset` to its end, at most the last `max_bytes`
 * of them, NUL-terminated ("" when missing or shorter than offset).  *len
 * (may be NULL) gets the byte count.  Caller frees. */
char *mq_file_read_tail(const char *path, off_t offset, size_t max_bytes, size_t *len);
/* Return the last `max_lines` lines (at most `max_bytes` bytes) of a file,
 * trimmed of trailing whitespace; "" if missing.  Caller frees. */
char *mq_file_tail(const char *path, int max_lines, size_t max_bytes);
/* Loop over write() until all is written or an error; returns 0 / -errno. */
int mq_write_all(int fd, const void *data, size_t len);

#endif
