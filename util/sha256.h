/* sha256.h - SHA-256 (FIPS 180-4), used for spec hashes and short dir ids. */
#ifndef MQ_SHA256_H
#define MQ_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct mq_sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char buf[64];
	size_t used;
};

void mq_sha256_init(struct mq_sha256 *c);
void mq_sha256_update(struct mq_sha256 *c, const void *data, size_t len);
void mq_sha256_final(struct mq_sha256 *c, unsigned char out[32]);
/* One-shot: lowercase hex digest into out[65] (NUL-terminated). */
void mq_sha256_hex(const void *data, size_t len, char out[65]);

#endif
