/* test-cache.c - the manifest parse cache (specs/cache.c): loading through
 * it never changes the result, whatever path the cache took. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reconciler/desired.h"
#include "specs/cache.h"
#include "specs/canonical.h"
#include "specs/spec.h"
#include "util/arena.h"
#include "util/paths.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"
#include "tests/unit/tmpfiles.h"

/* A repository that exercises every part of an entry: several documents in
 * one file, a base (positions in the base), depends_on, forwards, args,
 * arguments, snapshots, placement. */
static void make_repo(const char *dir)
{
	write_file(dir, "vms/_bases/small.yaml", "memory: 64M\ncpu: 1\nserial: none\n"
						 "network:\n  - type: user\n    forward: [\"tcp:2300:22\"]\n");
	write_file(dir, "vms/web.yaml", "name: web\nextends: _bases/small.yaml\ndepends_on: [db]\n"
					"args: [\"-no-reboot\"]\nplacement:\n  host: a\n");
	write_file(dir, "vms/db.yaml", "name: db\nmemory: 128M\nstate: stopped\n"
				       "storage:\n  - name: root\n    type: qcow2\n    size: 1G\n"
				       "snapshots:\n  named: [clean]\n"
				       "---\nname: cache\nmemory: 32M\nnetwork:\n  - type: user\n"
				       "    forward: [\"tcp:2400:22\", \"udp:2401:53\"]\n");
	write_file(dir, "vms/sub/tools.yaml", "name: tools\nmemory: 48M\nstate: stopped\ndepends_on: [web, db]\nplacement: {host: a}\n");
}

static struct mq_specset *load(const char *dir, struct mq_mcache *c)
{
	char *p = xasprintf("%s/vms", dir);
	const char *paths[] = { p };
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	struct mq_load_opts o = { .cache = c };
	int r = mq_specset_load_opts(paths, 1, &o, &set, &diags);
	for (size_t i = 0; i < diags.n; i++)
		fprintf(stderr, "%s\n", diags.v[i]);
	ck_assert_int_eq(r, 0);
	mq_strv_clear(&diags);
	free(p);
	return set;
}

static void assert_strv_eq(const struct mq_strv *a, const struct mq_strv *b)
{
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		ck_assert_str_eq(a->v[i], b->v[i]);
}

static void assert_same(const struct mq_specset *a, const struct mq_specset *b)
{
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		struct mq_spec *x = a->specs[i], *y = b->specs[i];
		ck_assert_str_eq(x->name, y->name);
		ck_assert_str_eq(x->file, y->file);
		ck_assert_str_eq(x->abs_file, y->abs_file);
		ck_assert_str_eq(x->source, y->source);
		ck_assert_int_eq(x->line, y->line);
		ck_assert_int_eq(x->col, y->col);
		ck_assert_str_eq(x->canonical, y->canonical);
		ck_assert_str_eq(x->hash, y->hash);
		assert_strv_eq(&x->bases, &y->bases);
		assert_strv_eq(&x->bases_abs, &y->bases_abs);
		assert_strv_eq(&x->origin_keys, &y->origin_keys);
		assert_strv_eq(&x->origin_files, &y->origin_files);
		ck_assert(!y->light);
		/* the rebuilt struct canonicalises to the same document: every
		 * field came back, not only the JSON text */
		free(y->canonical);
		y->canonical = NULL;
		mq_spec_make_canonical(y);
		ck_assert_str_eq(x->canonical, y->canonical);
	}
}

static struct mq_mcache *open_cache(const char *dir)
{
	char *p = xasprintf("%s/manifest-cache", dir);
	struct mq_mcache *c = mq_mcache_open(p);
	free(p);
	return c;
}

static void save_free(struct mq_mcache *c)
{
	ck_assert_int_eq(mq_mcache_save(c, NULL), 0);
	mq_mcache_free(c);
}

START_TEST(test_same_result_cold_warm_rehashed)
{
	mq_mcache_test_set_racy_margin(0);
	char *dir = mq_test_tmpdir("cache");
	make_repo(dir);
	struct mq_specset *plain = load(dir, NULL);
	ck_assert_uint_eq(plain->n, 4);

	/* cold: every file parsed and stored */
	struct mq_mcache *c = open_cache(dir);
	struct mq_specset *cold = load(dir, c);
	ck_assert(!mq_mcache_stats(c)->loaded);
	ck_assert_uint_eq(mq_mcache_stats(c)->misses, 3);
	ck_assert_uint_eq(mq_mcache_stats(c)->stored, 3);
	save_free(c);
	assert_same(plain, cold);

	/* warm: nothing parsed, every file taken by its stat */
	c = open_cache(dir);
	struct mq_specset *warm = load(dir, c);
	ck_assert(mq_mcache_stats(c)->loaded);
	ck_assert_uint_eq(mq_mcache_stats(c)->hits, 3);
	ck_assert_uint_eq(mq_mcache_stats(c)->misses, 0);
	save_free(c);
	assert_same(plain, warm);

	/* racily clean (the default margin: files written just now): read and
	 * hashed, not parsed, same result; a file whose base is racily clean
	 * is parsed again */
	mq_mcache_test_set_racy_margin(MQ_MCACHE_RACY_NS);
	c = open_cache(dir);
	struct mq_specset *racy = load(dir, c);
	ck_assert_uint_eq(mq_mcache_stats(c)->hits, 0);
	ck_assert_uint_eq(mq_mcache_stats(c)->rehashed, 2);
	ck_assert_uint_eq(mq_mcache_stats(c)->misses, 1);
	save_free(c);
	assert_same(plain, racy);

	mq_specset_free(plain);
	mq_specset_free(cold);
	mq_specset_free(warm);
	mq_specset_free(racy);
	rm_rf(dir);
	free(dir);
}
END_TEST

static const struct mq_spec *find(const struct mq_specset *s, const char *name)
{
	const struct mq_spec *x = mq_specset_find(s, name);
	ck_assert_ptr_nonnull(x);
	return x;
}

/* The test repository, loaded once through a new cache that is saved:
 * the state every "what the next load does" test starts from. */
static char *warm_repo(void)
{
	mq_mcache_test_set_racy_margin(0);
	char *dir = mq_test_tmpdir("cache");
	make_repo(dir);
	struct mq_mcache *c = open_cache(dir);
	mq_specset_free(load(dir, c));
	save_free(c);
	return dir;
}

START_TEST(test_same_size_same_mtime_edit)
{
	char *dir = warm_repo();

	/* same size, mtime put back: only ctime (and the content) tell */
	char *p = xasprintf("%s/vms/sub/tools.yaml", dir);
	struct stat before;
	ck_assert_int_eq(stat(p, &before), 0);
	write_file(dir, "vms/sub/tools.yaml", "name: tools\nmemory: 96M\nstate: stopped\ndepends_on: [web, db]\nplacement: {host: a}\n");
	struct timespec ts[2] = { before.st_atim, before.st_mtim };
	ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
	struct stat after;
	ck_assert_int_eq(stat(p, &after), 0);
	ck_assert_int_eq(after.st_size, before.st_size);
	ck_assert_int_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

	struct mq_mcache *c = open_cache(dir);
	struct mq_specset *s = load(dir, c);
	ck_assert_uint_eq(find(s, "tools")->memory, 96ull << 20);
	ck_assert_uint_eq(mq_mcache_stats(c)->misses, 1);
	ck_assert_uint_eq(mq_mcache_stats(c)->hits, 2);
	save_free(c);
	struct mq_specset *plain = load(dir, NULL);
	assert_same(plain, s);
	mq_specset_free(s);
	mq_specset_free(plain);
	free(p);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_base_change_reparses)
{
	char *dir = warm_repo();
	write_file(dir, "vms/_bases/small.yaml", "memory: 80M\ncpu: 1\nserial: none\n"
						 "network:\n  - type: user\n    forward: [\"tcp:2300:22\"]\n");
	struct mq_mcache *c = open_cache(dir);
	struct mq_specset *s = load(dir, c);
	ck_assert_uint_eq(find(s, "web")->memory, 80ull << 20);
	ck_assert_uint_eq(mq_mcache_stats(c)->misses, 1); /* web.yaml only */
	save_free(c);
	mq_specset_free(s);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_errors_never_cached)
{
	mq_mcache_test_set_racy_margin(0);
	char *dir = mq_test_tmpdir("cache");
	make_repo(dir);
	write_file(dir, "vms/bad.yaml", "name: bad\nmemroy: 1G\n");
	char *p = xasprintf("%s/vms", dir);
	const char *paths[] = { p };
	for (int round = 0; round < 2; round++) {
		struct mq_mcache *c = open_cache(dir);
		struct mq_load_opts o = { .cache = c };
		struct mq_specset *set = NULL;
		struct mq_strv diags = MQ_STRV_INIT;
		ck_assert_int_eq(mq_specset_load_opts(paths, 1, &o, &set, &diags), -EINVAL);
		ck_assert_ptr_null(set);
		ck_assert_uint_eq(diags.n, 1);
		ck_assert_ptr_nonnull(strstr(diags.v[0], "bad.yaml:2:1: unknown key 'memroy'"));
		ck_assert_uint_eq(mq_mcache_stats(c)->stored, round == 0 ? 3 : 0);
		ck_assert_uint_eq(mq_mcache_stats(c)->hits, round == 0 ? 0 : 3);
		ck_assert_uint_eq(mq_mcache_stats(c)->misses, round == 0 ? 4 : 1);
		mq_strv_clear(&diags);
		save_free(c);
	}
	free(p);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_damaged_cache_ignored)
{
	char *dir = warm_repo();
	/* flip one byte in the middle of the file: the checksum catches it */
	char *p = xasprintf("%s/manifest-cache", dir);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	unsigned char b;
	ck_assert_int_eq(pread(fd, &b, 1, st.st_size / 3), 1);
	b ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &b, 1, st.st_size / 3), 1);
	close(fd);
	struct mq_mcache *c = open_cache(dir);
	ck_assert(!mq_mcache_stats(c)->loaded);
	struct mq_specset *s = load(dir, c);
	ck_assert_uint_eq(mq_mcache_stats(c)->misses, 3);
	save_free(c);
	struct mq_specset *plain = load(dir, NULL);
	assert_same(plain, s);
	mq_specset_free(s);
	mq_specset_free(plain);
	/* truncated */
	ck_assert_int_eq(truncate(p, 40), 0);
	c = open_cache(dir);
	ck_assert(!mq_mcache_stats(c)->loaded);
	mq_mcache_free(c);
	free(p);
	rm_rf(dir);
	free(dir);
}
END_TEST

static bool light_not_a(const struct mq_spec *s, void *ud)
{
	(void)ud;
	return !s->placement_host || strcmp(s->placement_host, "a") != 0;
}

START_TEST(test_light_specs_same_from_cache_and_parse)
{
	size_t arenas = mq_arena_live();
	mq_mcache_test_set_racy_margin(0);
	char *dir = mq_test_tmpdir("cache");
	make_repo(dir);
	char *p = xasprintf("%s/vms", dir);
	const char *paths[] = { p };
	struct mq_specset *sets[3];
	for (int round = 0; round < 3; round++) {
		struct mq_mcache *c = round ? open_cache(dir) : NULL;
		struct mq_load_opts o = { .cache = c, .light = light_not_a };
		struct mq_strv diags = MQ_STRV_INIT;
		ck_assert_int_eq(mq_specset_load_opts(paths, 1, &o, &sets[round], &diags), 0);
		mq_strv_clear(&diags);
		if (c)
			save_free(c);
	}
	for (int round = 0; round < 3; round++) {
		const struct mq_specset *s = sets[round];
		ck_assert_uint_eq(s->n, 4);
		for (size_t i = 0; i < s->n; i++) {
			const struct mq_spec *x = s->specs[i], *y = sets[0]->specs[i];
			bool light = strcmp(x->name, "web") != 0 && strcmp(x->name, "tools") != 0; /* the two placed on a */
			ck_assert_int_eq(x->light, light);
			ck_assert_int_eq(x->canonical == NULL, light);
			ck_assert_str_eq(x->name, y->name);
			ck_assert_str_eq(x->hash, y->hash);
			ck_assert_int_eq(x->state, y->state);
			ck_assert_uint_eq(x->depends_on.n, y->depends_on.n);
			ck_assert_uint_eq(x->n_network, y->n_network);
			ck_assert_int_eq(x->line, y->line);
			if (!light)
				ck_assert_str_eq(x->canonical, y->canonical);
		}
	}
	/* the light specs outlived their caches (freed above): their arenas
	 * go with the last spec */
	ck_assert_uint_gt(mq_arena_live(), arenas);
	for (int round = 0; round < 3; round++)
		mq_specset_free(sets[round]);
	ck_assert_uint_eq(mq_arena_live(), arenas);
	free(p);
	rm_rf(dir);
	free(dir);
}
END_TEST


/* Entries are looked up in the order the cache file lists them (the last
 * walk's) without hashing; a walk that skips an entry (a removed file) or
 * meets a new file falls back to the index and gives the same result; the
 * file is written in walk order, so the next load finds everything in
 * order again. */
static void load_expect(const char *dir, size_t hits, size_t in_order, size_t stored)
{
	struct mq_specset *plain = load(dir, NULL);
	struct mq_mcache *c = open_cache(dir);
	struct mq_specset *s = load(dir, c);
	assert_same(plain, s);
	ck_assert_uint_eq(mq_mcache_stats(c)->hits, hits);
	ck_assert_uint_eq(mq_mcache_stats(c)->in_order, in_order);
	ck_assert_uint_eq(mq_mcache_stats(c)->stored, stored);
	ck_assert_uint_eq(mq_mcache_stats(c)->misses, stored);
	mq_specset_free(s);
	mq_specset_free(plain);
	save_free(c);
}

START_TEST(test_lookups_in_walk_order)
{
	mq_mcache_test_set_racy_margin(0);
	char *dir = mq_test_tmpdir("cache");
	make_repo(dir); /* walked: db.yaml, sub/tools.yaml, web.yaml */
	load_expect(dir, 0, 0, 3);
	load_expect(dir, 3, 3, 0);
	/* tools.yaml removed: web's entry is not next in the file */
	char *tools = xasprintf("%s/vms/sub/tools.yaml", dir);
	ck_assert_int_eq(unlink(tools), 0);
	free(tools);
	load_expect(dir, 2, 1, 0);
	load_expect(dir, 2, 2, 0);
	/* a new file between db and web */
	write_file(dir, "vms/dns.yaml", "name: dns\nmemory: 16M\nstate: stopped\n");
	load_expect(dir, 2, 2, 1);
	load_expect(dir, 3, 3, 0);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* Watch mode keeps one cache open over many reloads (mq_mcache_begin
 * between them): edits replace entries, and the results stay the same as
 * without the cache. */
START_TEST(test_reloads_in_one_cache)
{
	mq_mcache_test_set_racy_margin(0);
	char *dir = mq_test_tmpdir("cache");
	make_repo(dir);
	struct mq_mcache *c = open_cache(dir);
	for (int round = 0; round < 4; round++) {
		if (round)
			mq_mcache_begin(c);
		if (round == 1 || round == 3) {
			char *mem = xasprintf("name: tools\nmemory: %dM\nstate: stopped\ndepends_on: [web, db]\nplacement: {host: a}\n", 40 + round);
			write_file(dir, "vms/sub/tools.yaml", mem);
			free(mem);
		}
		struct mq_specset *s = load(dir, c);
		struct mq_specset *plain = load(dir, NULL);
		assert_same(plain, s);
		ck_assert_uint_eq(mq_mcache_stats(c)->misses, round == 1 || round == 3 ? 1 : (round == 0 ? 3 : 0));
		ck_assert_int_eq(mq_mcache_save(c, NULL), 0);
		mq_specset_free(s);
		mq_specset_free(plain);
	}
	mq_mcache_free(c);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* Watch's desired view over the cache: a reload of an unchanged repository
 * keeps the set in force (stat only); any edit, new or removed file, base
 * change, or a stat too recent to trust builds a new one, the same as a
 * load without the cache. */
static void assert_view_plain(const char *dir, const struct mq_specset *s)
{
	struct mq_specset *plain = load(dir, NULL);
	ck_assert_uint_eq(plain->n, s->n);
	for (size_t i = 0; i < s->n; i++) {
		ck_assert_str_eq(plain->specs[i]->name, s->specs[i]->name);
		ck_assert_str_eq(plain->specs[i]->hash, s->specs[i]->hash);
	}
	mq_specset_free(plain);
}

START_TEST(test_view_unchanged_resync_keeps_set)
{
	mq_mcache_test_set_racy_margin(0);
	char *dir = mq_test_tmpdir("cache");
	make_repo(dir);
	char *vms = xasprintf("%s/vms", dir);
	char *cpath = xasprintf("%s/manifest-cache", dir);
	const char *paths[] = { vms };
	struct mq_desired_view *d = mq_desired_new(paths, 1, NULL, NULL);
	mq_desired_use_cache(d, cpath, NULL);
	const struct mq_specset *a = mq_desired_reload(d);
	ck_assert_uint_eq(a->n, 4);
	ck_assert(!mq_desired_unresolved(d));
	/* unchanged: the same set */
	ck_assert_ptr_eq(mq_desired_reload(d), a);
	ck_assert_ptr_eq(mq_desired_reload(d), a);

	/* same size, mtime put back: ctime tells */
	char *p = xasprintf("%s/vms/sub/tools.yaml", dir);
	struct stat before;
	ck_assert_int_eq(stat(p, &before), 0);
	write_file(dir, "vms/sub/tools.yaml", "name: tools\nmemory: 96M\nstate: stopped\ndepends_on: [web, db]\nplacement: {host: a}\n");
	struct timespec ts[2] = { before.st_atim, before.st_mtim };
	ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
	const struct mq_specset *b = mq_desired_reload(d);
	ck_assert_ptr_ne(b, a);
	ck_assert_uint_eq(find(b, "tools")->memory, 96ull << 20);
	assert_view_plain(dir, b);
	ck_assert_ptr_eq(mq_desired_reload(d), b);

	/* a base */
	write_file(dir, "vms/_bases/small.yaml", "memory: 80M\ncpu: 1\nserial: none\n"
						 "network:\n  - type: user\n    forward: [\"tcp:2300:22\"]\n");
	const struct mq_specset *c = mq_desired_reload(d);
	ck_assert_ptr_ne(c, b);
	ck_assert_uint_eq(find(c, "web")->memory, 80ull << 20);
	assert_view_plain(dir, c);
	ck_assert_ptr_eq(mq_desired_reload(d), c);

	/* a new file, then removed */
	write_file(dir, "vms/sub/extra.yaml", "name: extra\nmemory: 32M\nstate: stopped\n");
	const struct mq_specset *e = mq_desired_reload(d);
	ck_assert_uint_eq(e->n, 5);
	assert_view_plain(dir, e);
	char *x = xasprintf("%s/vms/sub/extra.yaml", dir);
	ck_assert_int_eq(unlink(x), 0);
	const struct mq_specset *f = mq_desired_reload(d);
	ck_assert_uint_eq(f->n, 4);
	assert_view_plain(dir, f);
	ck_assert_ptr_eq(mq_desired_reload(d), f);

	/* files changed too recently to trust their stat: built again */
	mq_mcache_test_set_racy_margin(MQ_MCACHE_RACY_NS);
	const struct mq_specset *g = mq_desired_reload(d);
	ck_assert_ptr_ne(g, f);
	ck_assert_ptr_ne(mq_desired_reload(d), g);
	mq_mcache_test_set_racy_margin(0);
	mq_desired_gc(d);
	mq_desired_free(d);
	free(x);
	free(p);
	free(vms);
	free(cpath);
	rm_rf(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");
	tcase_add_test(tc, test_same_result_cold_warm_rehashed);
	tcase_add_test(tc, test_same_size_same_mtime_edit);
	tcase_add_test(tc, test_base_change_reparses);
	tcase_add_test(tc, test_errors_never_cached);
	tcase_add_test(tc, test_damaged_cache_ignored);
	tcase_add_test(tc, test_light_specs_same_from_cache_and_parse);
	tcase_add_test(tc, test_reloads_in_one_cache);
	tcase_add_test(tc, test_lookups_in_walk_order);
	tcase_add_test(tc, test_view_unchanged_resync_keeps_set);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
