/* strmap.c - string -> pointer hash map. */
#include "util/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct mq_strmap_slot *find(const struct mq_strmap *m, const char *key, uint64_t h)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = (size_t)(h ^ (h >> 32)) & mask;; i = (i + 1) & mask) {
		struct mq_strmap_slot *s = &m->slots[i];
		if (!s->key || (s->hash == h && strcmp(s->key, key) == 0))
			return s;
	}
}

void *mq_strmap_get(const struct mq_strmap *m, const char *key)
{
	struct mq_strmap_slot *s = find(m, key, hash_str(key));
	return s && s->key ? s->val : NULL;
}

bool mq_strmap_has(const struct mq_strmap *m, const char *key)
{
	struct mq_strmap_slot *s = find(m, key, hash_str(key));
	return s && s->key;
}

static void rehash(struct mq_strmap *m, size_t cap)
{
	struct mq_strmap old = *m;
	m->cap = cap;
	m->slots = xcalloc(m->cap, sizeof(*m->slots));
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			*find(m, old.slots[i].key, old.slots[i].hash) = old.slots[i];
	free(old.slots);
}

void mq_strmap_reserve(struct mq_strmap *m, size_t n)
{
	size_t cap = m->cap ? m->cap : 16;
	while (n * 4 > cap * 3)
		cap *= 2;
	if (cap != m->cap)
		rehash(m, cap);
}

void mq_strmap_put(struct mq_strmap *m, const char *key, void *val)
{
	if ((m->n + 1) * 4 > m->cap * 3) /* load factor <= 3/4 */
		rehash(m, m->cap ? m->cap * 2 : 16);
	uint64_t h = hash_str(key);
	struct mq_strmap_slot *s = find(m, key, h);
	if (!s->key)
		m->n++;
	/* an existing key takes the new pointer too: the caller may free the
	 * old key once its value is replaced */
	s->key = key;
	s->hash = h;
	s->val = val;
}

bool mq_strmap_add(struct mq_strmap *m, const char *key, void *val)
{
	if ((m->n + 1) * 4 > m->cap * 3)
		rehash(m, m->cap ? m->cap * 2 : 16);
	uint64_t h = hash_str(key);
	struct mq_strmap_slot *s = find(m, key, h);
	if (s->key)
		return false;
	m->n++;
	s->key = key;
	s->hash = h;
	s->val = val;
	return true;
}

void mq_strmap_release(struct mq_strmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->n = m->cap = 0;
}
