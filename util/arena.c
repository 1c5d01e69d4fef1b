/* arena.c - refcounted bump-allocated blocks (see arena.h). */
#include "util/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>


struct mq_arena {
	size_t size; /* of the mapping, this header included */
	size_t used;
	size_t refs;
};

static size_t live;

static void oom(size_t n)
{
	fprintf(stderr, "maqet: out of memory (mapping %zu bytes)\n", n);
	abort();
}

#define HDR ((sizeof(struct mq_arena) + 15) & ~(size_t)15)

struct mq_arena *mq_arena_new(size_t size)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	if (size > SIZE_MAX - HDR - page)
		oom(size);
	size_t total = (size + HDR + page - 1) / page * page;
	void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (m == MAP_FAILED)
		oom(total);
	struct mq_arena *a = m;
	a->size = total;
	a->used = HDR;
	a->refs = 1;
	live++;
	return a;
}

void *mq_arena_alloc(struct mq_arena *a, size_t n, size_t align)
{
	size_t at = (a->used + align - 1) & ~(align - 1);
	if (at < a->used || at > a->size || n > a->size - at)
		return NULL;
	a->used = at + n;
	a->refs++;
	return (unsigned char *)a + at;
}

struct mq_arena *mq_arena_unref(struct mq_arena *a)
{
	if (a && --a->refs == 0) {
		live--;
		munmap(a, a->size);
	}
	return NULL;
}

size_t mq_arena_room(const struct mq_arena *a)
{
	return a->size - a->used;
}

size_t mq_arena_live(void)
{
	return live;
}
