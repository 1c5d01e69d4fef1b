/* strmap.h - a string -> pointer hash map (open addressing, linear probing).
 *
 * Keys are borrowed: the caller keeps each key alive and unchanged while it
 * is in the map.  No removal (the users build a map, look things up, drop it).
 * For the sets that grow with the number of manifests (seen files, the parse
 * cache's index), where a linear search would make loading O(n^2).
 */
#ifndef MQ_STRMAP_H
#define MQ_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mq_strmap_slot {
	const char *key; /* NULL = empty */
	void *val;
	uint64_t hash;   /* of key: probes compare it before the strings */
};

struct mq_strmap {
	struct mq_strmap_slot *slots;
	size_t n, cap; /* cap is 0 or a power of two */
};

#define MQ_STRMAP_INIT { NULL, 0, 0 }

/* The value stored for key, or NULL. */
void *mq_strmap_get(const struct mq_strmap *m, const char *key);
bool mq_strmap_has(const struct mq_strmap *m, const char *key);
/* Store key -> val (replacing the value of an existing key, whose stored
 * key pointer becomes `key`). */
void mq_strmap_put(struct mq_strmap *m, const char *key, void *val);
/* Store key -> val only when key is not in the map yet (one lookup for
 * both): true when stored, false (map unchanged) when it was there. */
bool mq_strmap_add(struct mq_strmap *m, const char *key, void *val);
void mq_strmap_release(struct mq_strmap *m);
/* Make room for n keys in all (no growth while they are put). */
void mq_strmap_reserve(struct mq_strmap *m, size_t n); /* frees the table, not keys or values */

#endif
