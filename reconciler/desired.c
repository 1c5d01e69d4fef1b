#include "reconciler/desired.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "specs/cache.h"
#include "specs/hosts.h"
#include "specs/spec.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/sha256.h"
#include "util/strmap.h"
#include "util/xalloc.h"

/* Per manifest file: the last content that validated. */
struct file_cache {
	char *abs;
	char *last_valid;
	size_t len;
	char invalid_hash[65]; /* content whose errors were already reported */
	bool seen;
};

/* What the last clean reload read: every listed file, every base the set
 * extends and every hosts.yaml, with its stat (present false: absent). */
struct seen_file {
	char *abs, *display, *source;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	mode_t mode;
	bool present;
};

struct slot {
	char *name;
	char hash[65];
};

struct mq_desired_view {
	const char *const *paths;
	size_t n_paths;
	mq_desired_report_fn report;
	void *ud;
	struct file_cache **fc;
	size_t nfc;
	struct mq_strmap fc_map; /* abs -> file_cache */
	struct mq_mcache *cache; /* the parse cache (specs/cache.h), or NULL */
	char *host;              /* vms placed on another host are loaded light */
	struct mq_load_opts lo;
	struct slot *slots;
	size_t nslots;
	struct mq_specset *set;
	struct mq_specset **retired; /* replaced sets that plans in flight may still borrow from */
	size_t nretired;
	bool unresolved;
	struct seen_file *seen; /* the unchanged-repository check (reload_unchanged) */
	size_t nseen;
	int64_t seen_stamp;     /* mq_mcache_now() before those stats; 0: none */
};

static void seen_clear(struct mq_desired_view *d)
{
	for (size_t i = 0; i < d->nseen; i++) {
		free(d->seen[i].abs);
		free(d->seen[i].display);
		free(d->seen[i].source);
	}
	free(d->seen);
	d->seen = NULL;
	d->nseen = 0;
	d->seen_stamp = 0;
}

static void seen_set(struct seen_file *f, const struct stat *st)
{
	f->present = true;
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->size = st->st_size;
	f->mtim = st->st_mtim;
	f->ctim = st->st_ctim;
	f->mode = st->st_mode;
}

static void seen_fill(struct seen_file *f, const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0)
		seen_set(f, &st);
	else
		f->present = false;
}

static bool seen_same(const struct seen_file *a, const struct seen_file *b, int64_t stamp)
{
	if (a->present != b->present)
		return false;
	if (!a->present)
		return true;
	if (a->dev != b->dev || a->ino != b->ino || a->size != b->size || a->mode != b->mode ||
	    a->mtim.tv_sec != b->mtim.tv_sec || a->mtim.tv_nsec != b->mtim.tv_nsec ||
	    a->ctim.tv_sec != b->ctim.tv_sec || a->ctim.tv_nsec != b->ctim.tv_nsec)
		return false;
	struct stat st = { .st_mtim = b->mtim, .st_ctim = b->ctim };
	return mq_mcache_stat_trusted(&st, stamp);
}

static void seen_push(struct seen_file **v, size_t *n, size_t *alloc, const char *abs, const char *display,
		      const char *source, const struct stat *st)
{
	if (*n == *alloc) {
		*alloc = *alloc ? *alloc * 2 : 64;
		*v = xreallocarray(*v, *alloc, sizeof(**v));
	}
	struct seen_file *f = &(*v)[(*n)++];
	memset(f, 0, sizeof(*f));
	f->abs = xstrdup(abs);
	f->display = xstrdup_null(display);
	f->source = xstrdup_null(source);
	if (st)
		seen_set(f, st);
	else
		seen_fill(f, abs);
}

/* The files a reload of d->paths depends on besides the listed manifests:
 * each path itself and its hosts.yaml, then every base the set extends. */
static void seen_extra(const struct mq_desired_view *d, const struct mq_specset *set, struct seen_file **v,
		       size_t *n, size_t *alloc)
{
	for (size_t i = 0; i < d->n_paths; i++) {
		seen_push(v, n, alloc, d->paths[i], NULL, NULL, NULL);
		char *h = mq_path_join(d->paths[i], MQ_HOSTS_FILE);
		seen_push(v, n, alloc, h, NULL, NULL, NULL);
		free(h);
	}
	for (size_t i = 0; set && i < set->bases.n; i++)
		seen_push(v, n, alloc, set->bases.v[i], NULL, NULL, NULL);
}

static bool str_eq_null(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether nothing a reload reads changed since the last clean one: the same
 * files listed (same paths, same sources), each with the same stat, that
 * stat old enough to be trusted (as the parse cache trusts it), and the same
 * hosts.yaml and bases.  Then the set in force is what a reload would build. */
static bool reload_unchanged(const struct mq_desired_view *d, const struct mq_manifest_list *list)
{
	if (!d->seen_stamp || !d->set || list->n > d->nseen)
		return false;
	for (size_t i = 0; i < list->n; i++) {
		const struct seen_file *a = &d->seen[i];
		const struct mq_manifest_file *f = &list->v[i];
		if (!a->display || strcmp(a->abs, f->abs) != 0 || !str_eq_null(a->display, f->display) ||
		    !str_eq_null(a->source, f->source))
			return false;
		struct seen_file b = { 0 };
		if (f->have_st) /* stat'd by the listing, after it was made */
			seen_set(&b, &f->st);
		else
			seen_fill(&b, f->abs);
		if (!seen_same(a, &b, d->seen_stamp))
			return false;
	}
	size_t k = list->n;
	for (size_t i = 0; i < d->n_paths; i++) {
		for (int j = 0; j < 2; j++, k++) {
			if (k >= d->nseen || d->seen[k].display)
				return false;
			struct seen_file b = { 0 };
			seen_fill(&b, d->seen[k].abs);
			if (!seen_same(&d->seen[k], &b, d->seen_stamp))
				return false;
		}
	}
	for (; k < d->nseen; k++) {
		struct seen_file b = { 0 };
		seen_fill(&b, d->seen[k].abs);
		if (d->seen[k].display || !seen_same(&d->seen[k], &b, d->seen_stamp))
			return false;
	}
	return true;
}

struct mq_desired_view *mq_desired_new(const char *const *paths, size_t n_paths, mq_desired_report_fn report, void *ud)
{
	struct mq_desired_view *d = xcalloc(1, sizeof(*d));
	d->paths = paths;
	d->n_paths = n_paths;
	d->report = report;
	d->ud = ud;
	return d;
}

struct mq_desired_view *mq_desired_free(struct mq_desired_view *d)
{
	if (!d)
		return NULL;
	for (size_t i = 0; i < d->nfc; i++) {
		free(d->fc[i]->abs);
		free(d->fc[i]->last_valid);
		free(d->fc[i]);
	}
	free(d->fc);
	mq_strmap_release(&d->fc_map);
	mq_mcache_free(d->cache);
	free(d->host);
	for (size_t i = 0; i < d->nslots; i++)
		free(d->slots[i].name);
	free(d->slots);
	mq_specset_free(d->set);
	mq_desired_gc(d);
	free(d->retired);
	seen_clear(d);
	free(d);
	return NULL;
}

static void report_hashed(struct mq_desired_view *d, char hash_slot[65], const struct mq_strv *diags, const char *source)
{
	char *joined = mq_strv_join(diags, "\n");
	char h[65];
	mq_sha256_hex(joined, strlen(joined), h);
	if (strcmp(h, hash_slot) != 0) {
		memcpy(hash_slot, h, sizeof(h));
		if (d->report)
			d->report(d->ud, diags, source);
	}
	free(joined);
}

static struct slot *slot_get(struct mq_desired_view *d, const char *name)
{
	for (size_t i = 0; i < d->nslots; i++)
		if (strcmp(d->slots[i].name, name) == 0)
			return &d->slots[i];
	d->slots = xreallocarray(d->slots, d->nslots + 1, sizeof(*d->slots));
	struct slot *s = &d->slots[d->nslots++];
	s->name = xstrdup(name);
	s->hash[0] = '\0';
	return s;
}

void mq_desired_report_once(struct mq_desired_view *d, const char *slot, const struct mq_strv *diags, const char *source)
{
	report_hashed(d, slot_get(d, slot)->hash, diags, source);
}

void mq_desired_clear_slot(struct mq_desired_view *d, const char *slot)
{
	slot_get(d, slot)->hash[0] = '\0';
}

static struct file_cache *cache_get(struct mq_desired_view *d, const char *abs)
{
	struct file_cache *c = mq_strmap_get(&d->fc_map, abs);
	if (c)
		return c;
	d->fc = xreallocarray(d->fc, d->nfc + 1, sizeof(*d->fc));
	c = xcalloc(1, sizeof(*c));
	d->fc[d->nfc++] = c;
	c->abs = xstrdup(abs);
	mq_strmap_put(&d->fc_map, c->abs, c);
	return c;
}

static void cache_sweep(struct mq_desired_view *d)
{
	size_t k = 0;
	mq_strmap_release(&d->fc_map);
	for (size_t i = 0; i < d->nfc; i++) {
		struct file_cache *c = d->fc[i];
		if (c->seen) {
			c->seen = false;
			d->fc[k++] = c;
			mq_strmap_put(&d->fc_map, c->abs, c);
		} else {
			free(c->abs);
			free(c->last_valid);
			free(c);
		}
	}
	d->nfc = k;
}

static bool light_elsewhere(const struct mq_spec *spec, void *ud)
{
	const char *host = ud;
	return spec->placement_host && strcmp(spec->placement_host, host) != 0;
}

void mq_desired_use_cache(struct mq_desired_view *d, const char *path, const char *host)
{
	d->cache = mq_mcache_free(d->cache);
	d->cache = mq_mcache_open(path);
	free(d->host);
	d->host = xstrdup_null(host);
	d->lo = (struct mq_load_opts){ .cache = d->cache };
	if (d->host) {
		d->lo.light = light_elsewhere;
		d->lo.ud = d->host;
	}
}

/* Parse a file's last valid content into set; false when there is none. */
static bool use_last_valid(struct file_cache *c, const struct mq_manifest_file *f, struct mq_specset *set)
{
	if (!c->last_valid)
		return false;
	char *dir = mq_path_dirname(f->abs);
	struct mq_strv dd = MQ_STRV_INIT;
	/* fails when a base it extends is invalid now: the file is unresolved */
	int r = mq_spec_parse_buffer(c->last_valid, c->len, f->display, dir, f->source, set, &dd);
	mq_strv_clear(&dd);
	free(dir);
	return r == 0;
}

const struct mq_specset *mq_desired_reload(struct mq_desired_view *d)
{
	struct mq_manifest_list list;
	struct mq_strv diags = MQ_STRV_INIT;
	bool unresolved = false;
	int64_t stamp = d->cache ? mq_mcache_now() : 0; /* before any stat */
	if (mq_manifest_list(d->paths, d->n_paths, &list, &diags) < 0) {
		mq_desired_report_once(d, "list", &diags, NULL);
		unresolved = true;
	}
	mq_strv_clear(&diags);
	/* a resync of an unchanged repository: stat only, the set stays */
	if (!unresolved && d->cache && reload_unchanged(d, &list)) {
		mq_manifest_list_release(&list);
		return d->set;
	}

	struct mq_specset *set = mq_specset_new();
	mq_strv_extend(&set->sources, &list.sources);
	if (d->cache)
		mq_mcache_begin(d->cache);
	for (size_t i = 0; i < list.n; i++) {
		const struct mq_manifest_file *f = &list.v[i];
		char *buf = NULL;
		size_t len = 0;
		struct mq_error *err = NULL;
		/* unchanged since parsed (the parse cache, by stat identity): no parse;
		 * its content is read once to be the file's last valid version */
		struct stat st;
		bool have_st = false;
		if (d->cache && f->have_st) { /* the listing's stat */
			st = f->st;
			have_st = true;
		} else if (d->cache) {
			have_st = stat(f->abs, &st) == 0;
		}
		if (have_st) {
			struct file_cache *c = cache_get(d, f->abs);
			char *content = NULL;
			size_t clen = 0;
			if (mq_spec_load_cached(&d->lo, f, &st, set, c->last_valid ? NULL : &content, &clen) == 1) {
				c->seen = true;
				if (content) {
					c->last_valid = content;
					c->len = clen;
				}
				c->invalid_hash[0] = '\0';
				continue;
			}
		}
		if (mq_read_file(f->abs, MQ_MANIFEST_MAX_BYTES, &buf, &len, &err) < 0) {
			if (err && err->code != ENOENT) {
				struct mq_strv d1 = MQ_STRV_INIT;
				mq_strv_pushf(&d1, "%s: %s", f->display, err->msg);
				struct file_cache *c = cache_get(d, f->abs);
				c->seen = true;
				report_hashed(d, c->invalid_hash, &d1, f->source);
				mq_strv_clear(&d1);
				if (!use_last_valid(c, f, set))
					unresolved = true;
			}
			mq_error_free(err);
			continue; /* vanished between listing and reading: deleted */
		}
		struct file_cache *c = cache_get(d, f->abs);
		c->seen = true;
		char *dir = mq_path_dirname(f->abs);
		struct mq_strv pd = MQ_STRV_INIT;
		if (mq_spec_parse_file(have_st ? &d->lo : NULL, f, have_st ? &st : NULL, buf, len, set, &pd) == 0) {
			free(c->last_valid);
			c->last_valid = buf;
			c->len = len;
			c->invalid_hash[0] = '\0';
			buf = NULL;
		} else {
			report_hashed(d, c->invalid_hash, &pd, f->source);
			if (!use_last_valid(c, f, set))
				unresolved = true;
		}
		mq_strv_clear(&pd);
		free(dir);
		free(buf);
	}
	cache_sweep(d);
	/* what this reload read, stat'd after the stamp: a later change to any
	 * of it either shows in its stat or leaves it too recent to trust */
	struct seen_file *seen = NULL;
	size_t nseen = 0, aseen = 0;
	if (stamp && !unresolved)
		for (size_t i = 0; i < list.n; i++)
			seen_push(&seen, &nseen, &aseen, list.v[i].abs, list.v[i].display, list.v[i].source,
				  list.v[i].have_st ? &list.v[i].st : NULL);
	mq_manifest_list_release(&list);
	if (d->cache) {
		struct mq_error *err = NULL;
		mq_mcache_save(d->cache, &err); /* not written: only the next start is slower */
		mq_error_free(err);
	}

	struct mq_strv sd = MQ_STRV_INIT;
	/* the host inventory: an invalid hosts.yaml keeps the set in force */
	int hr = mq_hosts_load(d->paths, d->n_paths, &set->hosts, &sd);
	if (hr == 0)
		mq_desired_clear_slot(d, "hosts");
	else
		mq_desired_report_once(d, "hosts", &sd, NULL);
	if (hr < 0) {
		mq_specset_free(set);
		unresolved = true;
		if (!d->set)
			d->set = mq_specset_new();
	} else if (mq_specset_check(set, &sd) < 0) {
		mq_desired_report_once(d, "set", &sd, NULL);
		mq_specset_free(set);
		unresolved = true; /* keep the set in force */
		if (!d->set)
			d->set = mq_specset_new();
	} else {
		mq_desired_clear_slot(d, "set");
		if (d->set) {
			d->retired = xreallocarray(d->retired, d->nretired + 1, sizeof(*d->retired));
			d->retired[d->nretired++] = d->set;
		}
		d->set = set;
	}
	mq_strv_clear(&sd);
	d->unresolved = unresolved;
	seen_clear(d);
	if (stamp && !unresolved && d->set == set) {
		seen_extra(d, set, &seen, &nseen, &aseen);
		d->seen = seen;
		d->nseen = nseen;
		d->seen_stamp = stamp;
	} else {
		for (size_t i = 0; i < nseen; i++) {
			free(seen[i].abs);
			free(seen[i].display);
			free(seen[i].source);
		}
		free(seen);
	}
	return d->set;
}

const struct mq_specset *mq_desired_set(const struct mq_desired_view *d)
{
	return d->set;
}

bool mq_desired_unresolved(const struct mq_desired_view *d)
{
	return d->unresolved;
}

void mq_desired_gc(struct mq_desired_view *d)
{
	for (size_t i = 0; i < d->nretired; i++)
		mq_specset_free(d->retired[i]);
	d->nretired = 0;
}
