/* arena.c - refcounted bump-allocated blocks (see arena.h). */
#include "util/arena.h"
#include "util/xalloc.h"

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


#define HDR ((sizeof(struct mq_arena) + 15) & ~(size_t)15)

/* Large arenas are whole, aligned 2 MiB units, marked for transparent huge
 * pages: where the kernel gives them, one fault maps 2 MiB (a virtual
 * machine with shadow paging pays per 4 KiB page touched, several
 * microseconds each, which dominates a load of thousands of manifests).
 * Either way the pages are populated up front. */
#define HUGE ((size_t)2 << 20)

static void *map_huge(size_t total)
{
	unsigned char *raw = mmap(NULL, total + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	uintptr_t at = ((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1);
	unsigned char *p = (unsigned char *)at;
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (raw + total + HUGE > p + total)
		munmap(p + total, (size_t)(raw + total + HUGE - (p + total)));
	(void)madvise(p, total, MADV_HUGEPAGE);
	if (madvise(p, total, MADV_POPULATE_WRITE) < 0) {
		/* before Linux 5.14: touch one byte per page */
		for (size_t i = 0; i < total; i += 4096)
			p[i] = 0;
	}
	return p;
}

struct mq_arena *mq_arena_new(size_t size)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	if (size > SIZE_MAX - HDR - HUGE)
		mq_oom(size);
	void *m;
	size_t total;
	if (size + HDR >= MQ_ARENA_HUGE_MIN) {
		total = (size + HDR + HUGE - 1) / HUGE * HUGE;
		m = map_huge(total);
	} else {
		total = (size + HDR + page - 1) / page * page;
		m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (m == MAP_FAILED)
			m = NULL;
	}
	if (!m)
		mq_oom(total);
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
