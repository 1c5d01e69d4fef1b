/* parse.h - strict number, size and duration parsers (no atoi).
 *
 * All return 0 on success or -EINVAL / -ERANGE, and leave *out untouched on
 * failure.  Leading/trailing whitespace, signs, empty strings and trailing
 * garbage are rejected.
 */
#ifndef MQ_PARSE_H
#define MQ_PARSE_H

#include <stdint.h>

int mq_parse_u64(const char *s, uint64_t *out);
int mq_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);
int mq_parse_int(const char *s, int min, int max, int *out);

/* "512", "512M", "2G", "1T", "64K", also "2GB"/"2GiB" (binary units).  A bare
 * number is multiplied by `bare_unit` (1 for bytes, 1024*1024 for QEMU's -m
 * style megabytes).  Result in bytes. */
int mq_parse_size(const char *s, uint64_t bare_unit, uint64_t *bytes);

/* "30", "30s", "500ms", "2m", "1h", "1m30s".  A bare number is seconds.
 * Result in milliseconds. */
int mq_parse_duration(const char *s, uint64_t *ms);

/* Format bytes as the shortest exact "<n><K|M|G|T>" (e.g. 536870912 -> "512M"),
 * or plain bytes when not a whole multiple of 1K.  buf >= 32 bytes. */
void mq_format_size(uint64_t bytes, char *buf, unsigned long buflen);

#endif
