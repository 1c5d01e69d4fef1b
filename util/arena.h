/* arena.h - refcounted blocks for many small objects that are never freed
 * one by one (the parse cache's light specs, specs/cache.c).
 *
 * One arena is one anonymous mapping, populated when it is made (the kernel
 * fills its pages in one go instead of one page fault per 4 KiB touched;
 * large arenas ask for transparent huge pages too); objects are
 * bump-allocated in it, already zeroed.  Each object
 * allocated takes a reference, and so does the creator; the mapping goes when
 * the last reference is dropped, whoever holds it.  So an object can live
 * exactly as long as its owner wants, as if it had been malloc'ed, while the
 * arena's memory is only given back once all of them are gone.
 */
#ifndef MQ_ARENA_H
#define MQ_ARENA_H

#include <stddef.h>

struct mq_arena;

/* Arenas of at least this many bytes are made of aligned 2 MiB units
 * marked for transparent huge pages (smaller ones are plain pages). */
#define MQ_ARENA_HUGE_MIN ((size_t)1 << 20)

/* A new arena with room for at least `size` bytes; the caller holds one
 * reference.  Out of memory aborts (xalloc.h). */
struct mq_arena *mq_arena_new(size_t size);
/* n zeroed bytes aligned to `align` (a power of two), with a reference on a
 * taken for them; NULL (and no reference) when they do not fit. */
void *mq_arena_alloc(struct mq_arena *a, size_t n, size_t align);
/* Drop one reference (a NULL a is a no-op); returns NULL. */
struct mq_arena *mq_arena_unref(struct mq_arena *a);
/* Room left in a. */
size_t mq_arena_room(const struct mq_arena *a);
/* Arenas alive in this process (for tests). */
size_t mq_arena_live(void);

#endif
