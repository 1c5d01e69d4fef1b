/* loadset.c - loading the manifests for a verb through the parse cache
 * (specs/cache.h) kept in the state directory. */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "specs/cache.h"
#include "util/paths.h"
#include "util/xalloc.h"

static bool light_elsewhere(const struct mq_spec *spec, void *ud)
{
	const char *host = ud;
	return spec->placement_host && strcmp(spec->placement_host, host) != 0;
}

static bool light_all(const struct mq_spec *spec, void *ud)
{
	(void)spec;
	(void)ud;
	return true;
}

/* The cache file, when there is a state directory already (a verb that only
 * reads manifests must not create one) and MAQET_NO_CACHE is not set. */
char *mq_cli_cache_path(const struct mq_cli *cli)
{
	const char *no = getenv("MAQET_NO_CACHE");
	if (no && *no && strcmp(no, "0") != 0)
		return NULL;
	struct stat st;
	if (!cli->state_dir || stat(cli->state_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return mq_path_join(cli->state_dir, MQ_MCACHE_FILE);
}

/* A repository of thousands of manifests (a large parse cache): the heap
 * grows from here in transparent huge pages.  The heap is extended by a large top pad now
 * (M_TOP_PAD; no trim below it) and that range is marked MADV_HUGEPAGE, so
 * the load touches a few 2 MiB pages instead of thousands of 4 KiB ones
 * (each first touch costs several microseconds in a virtual machine with
 * shadow paging).  Small repositories and long-lived processes (watch)
 * keep the plain heap; where the kernel has no huge pages for us this
 * changes nothing. */
#define HUGE_HEAP_MIN_CACHE ((off_t)512 << 10) /* a cache file of about 600 manifests */

static void heap_huge_pages(off_t cache_size)
{
	const size_t huge = (size_t)2 << 20, chunk = (size_t)512 << 10;
	/* a load takes about 400 bytes of heap per manifest, and the cache
	 * holds about 900 bytes for each: half its size, with room to spare */
	size_t pad = (size_t)cache_size / 2;
	pad = pad < 2 * huge ? 2 * huge : pad > 16 * huge ? 16 * huge : (pad + huge - 1) / huge * huge;
	char *h0 = sbrk(0);
	if (h0 == (char *)-1)
		return;
	mallopt(M_TOP_PAD, (int)pad);
	mallopt(M_TRIM_THRESHOLD, (int)(4 * pad));
	mallopt(M_MMAP_THRESHOLD, (int)(2 * chunk));
	/* blocks the heap's top cannot hold until it grows (by chunk + pad) */
	void *volatile held[16] = { 0 }; /* volatile: not elided with their free() */
	char *h1 = h0;
	for (size_t i = 0; i < 16 && h1 == h0; i++) {
		held[i] = malloc(chunk);
		h1 = sbrk(0);
	}
	for (size_t i = 0; i < 16; i++)
		free(held[i]);
	if (h1 == (char *)-1 || h1 <= h0)
		return;
	uintptr_t a = ((uintptr_t)h0 + huge - 1) & ~(uintptr_t)(huge - 1);
	if (a < (uintptr_t)h1)
		(void)madvise((void *)a, (uintptr_t)h1 - a, MADV_HUGEPAGE);
}

int mq_cli_load_ex(struct mq_cli *cli, const struct mq_strv *paths, enum mq_cli_light light, const char *host,
		   struct mq_specset **set)
{
	char *path = mq_cli_cache_path(cli);
	struct mq_load_opts o = { 0 };
	struct stat cst;
	if (path && stat(path, &cst) == 0 && cst.st_size >= HUGE_HEAP_MIN_CACHE)
		heap_huge_pages(cst.st_size); /* before the cache's own tables */
	if (path)
		o.cache = mq_mcache_open(path);
	if (light == MQ_CLI_LIGHT_ALL) {
		o.light = light_all;
	} else if (light == MQ_CLI_LIGHT_ELSEWHERE && host) {
		o.light = light_elsewhere;
		o.ud = (void *)host;
	}
	struct mq_strv diags = MQ_STRV_INIT;
	int r = mq_specset_load_opts((const char *const *)paths->v, paths->n, &o, set, &diags);
	if (o.cache) {
		/* a cache that cannot be written only costs time on the next run */
		struct mq_error *err = NULL;
		mq_mcache_save(o.cache, &err);
		mq_error_free(err);
		o.cache = mq_mcache_free(o.cache);
	}
	free(path);
	for (size_t i = 0; i < diags.n; i++)
		fprintf(stderr, "%s\n", diags.v[i]);
	if (r < 0 || !*set) {
		mq_cli_err(cli, "%zu error%s in manifests; nothing was changed", diags.n, diags.n == 1 ? "" : "s");
		mq_strv_clear(&diags);
		return MQ_EXIT_FAILURE;
	}
	mq_strv_clear(&diags);
	return 0;
}
