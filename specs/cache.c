/* cache.c - the manifest parse cache (see cache.h for the rules and format). */
#include "specs/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "specs/fromjson.h"
#include "specs/load.h"
#include "util/arena.h"
#include "util/fileio.h"
#include "util/sha256.h"
#include "util/strbuf.h"
#include "util/strmap.h"
#include "util/xalloc.h"

#define MAGIC "MQMCACHE"
#define VERSION 1u
#define NIL_LEN 0xffffffffu
#define HDR_SIZE (8 + 4 + 4 + 8 * 8)
/* fixed part of an entry after its u32 length: blob off, blob len, dev, ino,
 * size, mtime, ctime, stamp, content sha256 */
#define FIX_BLOB_OFF 0
#define FIX_DEV 16
#define FIX_STAMP 56
#define FIX_CONTENT 64
#define FIX_SIZE 96

struct ident {
	uint64_t dev, ino, size, mtime, ctime;
};

struct mq_mcache_entry {
	const unsigned char *meta; /* the entry without its u32 length */
	size_t meta_len;
	const char *blob;          /* its canonical documents */
	size_t blob_len;
	unsigned char *owned;      /* meta (+ blob) when not in the map */
	const char *display;       /* the index key (points into meta) */
	bool used;
	bool in_block;             /* one of the entries read from the file (c->block) */
	bool superseded;           /* a newer entry for the same display path exists */
	size_t pos;                /* index in c->v */
	size_t used_at;            /* when this load used it (save writes in that order) */
};

struct base_state {
	struct ident id;
	bool ok; /* stat succeeded */
};

struct mq_mcache {
	char *path;
	unsigned char *map;
	size_t map_len;
	struct ident exe;
	bool exe_ok;
	int64_t stamp; /* CLOCK_REALTIME ns at open/begin, before any stat */

	struct mq_mcache_entry **v; /* every entry, old and new */
	struct mq_mcache_entry *block; /* the entries read from the file, one allocation */
	size_t n, alloc;
	size_t n_old_valid;         /* entries read from the file */
	struct mq_strmap index;     /* display -> entry (the newest); built on first need */
	bool indexed;               /* index holds every entry */
	size_t cursor;              /* c->v index of the entry after the last one looked up */
	size_t use_clock;           /* counts the entries used by this load */
	struct mq_strmap bases;     /* abs -> struct base_state, per load */
	struct mq_strv base_keys;
	bool dirty;
	struct mq_mcache_stats st;
	struct mq_arena *arena;     /* where light specs are made (util/arena.h) */
	size_t arena_next;          /* size of the next arena */
};

/* Arenas for light specs: 256 KiB first (a small repository), then one
 * 2 MiB huge page each (util/arena.h; 10,000 light specs take about 7 MiB). */
#define ARENA_FIRST ((size_t)256 << 10)
#define ARENA_NEXT (((size_t)2 << 20) - 4096)

/* ---- small readers over a bounded buffer --------------------------------- */

struct rd {
	const unsigned char *p, *end;
	bool bad;
};

static uint32_t rd_u32(struct rd *r)
{
	uint32_t v = 0;
	if (r->bad || (size_t)(r->end - r->p) < 4) {
		r->bad = true;
		return 0;
	}
	memcpy(&v, r->p, 4);
	r->p += 4;
	return v;
}

static uint64_t rd_u64(struct rd *r)
{
	uint64_t v = 0;
	if (r->bad || (size_t)(r->end - r->p) < 8) {
		r->bad = true;
		return 0;
	}
	memcpy(&v, r->p, 8);
	r->p += 8;
	return v;
}

static int32_t rd_i32(struct rd *r)
{
	uint32_t u = rd_u32(r);
	int32_t v;
	memcpy(&v, &u, 4);
	return v;
}

/* A string in place (NULL for the nil string). */
static const char *rd_str(struct rd *r)
{
	uint32_t n = rd_u32(r);
	if (r->bad || n == NIL_LEN)
		return NULL;
	if ((size_t)(r->end - r->p) < (size_t)n + 1 || r->p[n] != '\0' || memchr(r->p, '\0', n)) {
		r->bad = true;
		return NULL;
	}
	const char *s = (const char *)r->p;
	r->p += n + 1;
	return s;
}

static const unsigned char *rd_bytes(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	const unsigned char *b = r->p;
	r->p += n;
	return b;
}

static struct ident rd_ident(struct rd *r)
{
	struct ident id;
	id.dev = rd_u64(r);
	id.ino = rd_u64(r);
	id.size = rd_u64(r);
	id.mtime = rd_u64(r);
	id.ctime = rd_u64(r);
	return id;
}

/* ---- writers ----------------------------------------------------------- */

static void wr_u32(struct mq_strbuf *b, uint32_t v)
{
	mq_strbuf_add(b, &v, 4);
}

static void wr_u64(struct mq_strbuf *b, uint64_t v)
{
	mq_strbuf_add(b, &v, 8);
}

static void wr_i32(struct mq_strbuf *b, int32_t v)
{
	mq_strbuf_add(b, &v, 4);
}

static void wr_str(struct mq_strbuf *b, const char *s)
{
	if (!s) {
		wr_u32(b, NIL_LEN);
		return;
	}
	size_t n = strlen(s);
	wr_u32(b, (uint32_t)n);
	mq_strbuf_add(b, s, n + 1);
}

static void wr_ident(struct mq_strbuf *b, const struct ident *id)
{
	wr_u64(b, id->dev);
	wr_u64(b, id->ino);
	wr_u64(b, id->size);
	wr_u64(b, id->mtime);
	wr_u64(b, id->ctime);
}

static void wr_strv(struct mq_strbuf *b, const struct mq_strv *v)
{
	wr_u32(b, (uint32_t)v->n);
	for (size_t i = 0; i < v->n; i++)
		wr_str(b, v->v[i]);
}

static void wr_pos(struct mq_strbuf *b, struct mq_pos p)
{
	wr_i32(b, p.line);
	wr_i32(b, p.col);
	wr_str(b, p.file);
}

/* ---- identities ------------------------------------------------------- */

static uint64_t ts_ns(struct timespec t)
{
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static struct ident ident_of(const struct stat *st)
{
	return (struct ident){ (uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size, ts_ns(st->st_mtim),
			       ts_ns(st->st_ctim) };
}

static bool ident_eq(const struct ident *a, const struct ident *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime == b->mtime && a->ctime == b->ctime;
}

/* Racily clean: changed too close to the moment it was verified for the stat
 * alone to prove it unchanged since. */
static uint64_t racy_margin = (uint64_t)MQ_MCACHE_RACY_NS;

static bool trusted(const struct ident *id, uint64_t stamp)
{
	return id->mtime + racy_margin < stamp && id->ctime + racy_margin < stamp;
}

void mq_mcache_test_set_racy_margin(int64_t ns)
{
	racy_margin = (uint64_t)ns;
}

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)ts_ns(t);
}

int64_t mq_mcache_now(void)
{
	return now_ns();
}

bool mq_mcache_stat_trusted(const struct stat *st, int64_t stamp)
{
	struct ident id = ident_of(st);
	return stamp > 0 && trusted(&id, (uint64_t)stamp);
}

/* Checksum of the meta section: FNV-1a over 64-bit words (a byte at a
 * time for the tail), so the check costs little next to the stat calls.
 * It guards against a damaged file, not against an adversary (the state
 * directory is the user's own). */
struct csum {
	uint64_t h;
	unsigned char tail[8];
	size_t nt;
};

static void csum_init(struct csum *c)
{
	c->h = 1469598103934665603ULL;
	c->nt = 0;
}

static void csum_word(struct csum *c, uint64_t w)
{
	c->h ^= w;
	c->h *= 1099511628211ULL;
	c->h ^= c->h >> 29;
}

static void csum_add(struct csum *c, const unsigned char *p, size_t n)
{
	while (n > 0 && c->nt > 0) {
		c->tail[c->nt++] = *p++;
		n--;
		if (c->nt == 8) {
			uint64_t w;
			memcpy(&w, c->tail, 8);
			csum_word(c, w);
			c->nt = 0;
		}
	}
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		csum_word(c, w);
	}
	while (n-- > 0)
		c->tail[c->nt++] = *p++;
}

static uint64_t csum_end(struct csum *c)
{
	for (size_t i = 0; i < c->nt; i++)
		csum_word(c, c->tail[i]);
	csum_word(c, 0x9e3779b97f4a7c15ULL ^ c->nt);
	return c->h;
}

static uint64_t fnv64(const unsigned char *p, size_t n)
{
	struct csum c;
	csum_init(&c);
	csum_add(&c, p, n);
	return csum_end(&c);
}

/* ---- opening ---------------------------------------------------------- */

/* The file lists its entries in the order the last load walked the
 * manifests, so an unchanged repository is looked up in order (c->cursor)
 * without hashing a path; the index by display path is built the first
 * time a lookup is out of order or a new entry is added. */
static void ensure_index(struct mq_mcache *c)
{
	if (c->indexed)
		return;
	mq_strmap_reserve(&c->index, c->n + 64);
	for (size_t i = 0; i < c->n; i++) {
		struct mq_mcache_entry *old = mq_strmap_get(&c->index, c->v[i]->display);
		if (old)
			old->superseded = true;
		mq_strmap_put(&c->index, c->v[i]->display, c->v[i]);
	}
	c->indexed = true;
}

static void append_entry(struct mq_mcache *c, struct mq_mcache_entry *e)
{
	if (c->n == c->alloc) {
		c->alloc = c->alloc ? c->alloc * 2 : 64;
		c->v = xreallocarray(c->v, c->alloc, sizeof(*c->v));
	}
	e->pos = c->n;
	c->v[c->n++] = e;
}

/* A new entry (stored or refreshed): the newest for its display path. */
static void push_entry(struct mq_mcache *c, struct mq_mcache_entry *e)
{
	ensure_index(c);
	append_entry(c, e);
	struct mq_mcache_entry *old = mq_strmap_get(&c->index, e->display);
	if (old)
		old->superseded = true;
	mq_strmap_put(&c->index, e->display, e);
}

static void drop_map(struct mq_mcache *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i]->owned);
		if (!c->v[i]->in_block)
			free(c->v[i]);
	}
	c->n = 0;
	c->cursor = 0;
	free(c->block);
	c->block = NULL;
	mq_strmap_release(&c->index);
	c->indexed = false;
	if (c->map)
		munmap(c->map, c->map_len);
	c->map = NULL;
	c->map_len = 0;
}

static bool read_map(struct mq_mcache *c)
{
	int fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < HDR_SIZE) {
		close(fd);
		return false;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return false;
	c->map = m;
	c->map_len = (size_t)st.st_size;
	struct rd r = { c->map, c->map + c->map_len, false };
	const unsigned char *magic = rd_bytes(&r, 8);
	uint32_t version = rd_u32(&r);
	(void)rd_u32(&r);
	uint64_t edev = rd_u64(&r), eino = rd_u64(&r), esize = rd_u64(&r), emtime = rd_u64(&r);
	uint64_t count = rd_u64(&r), meta_len = rd_u64(&r), blob_len = rd_u64(&r), sum = rd_u64(&r);
	if (r.bad || memcmp(magic, MAGIC, 8) != 0 || version != VERSION || !c->exe_ok || edev != c->exe.dev ||
	    eino != c->exe.ino || esize != c->exe.size || emtime != c->exe.mtime || meta_len > c->map_len - HDR_SIZE ||
	    blob_len != c->map_len - HDR_SIZE - meta_len)
		return false;
	const unsigned char *meta = c->map + HDR_SIZE;
	const char *blob = (const char *)(meta + meta_len);
	/* every meta byte is read (checksum, lookups): map its pages in one go
	 * rather than fault by fault (the blob stays unmapped until used);
	 * a kernel without MADV_POPULATE_READ (before 5.14) just faults */
	(void)madvise(c->map, (size_t)(HDR_SIZE + meta_len), MADV_POPULATE_READ);
	if (fnv64(meta, meta_len) != sum)
		return false;
	struct rd m2 = { meta, meta + meta_len, false };
	if (count > meta_len / FIX_SIZE)
		return false;
	c->alloc = (size_t)count + 64;
	c->v = xreallocarray(c->v, c->alloc, sizeof(*c->v));
	c->block = xcalloc((size_t)count + 1, sizeof(*c->block));
	for (uint64_t i = 0; i < count; i++) {
		uint32_t len = rd_u32(&m2);
		const unsigned char *p = rd_bytes(&m2, len);
		if (m2.bad || len < FIX_SIZE)
			return false;
		struct rd er = { p, p + len, false };
		uint64_t boff = rd_u64(&er), blen = rd_u64(&er);
		if (boff > blob_len || blen > blob_len - boff)
			return false;
		er.p = p + FIX_SIZE;
		const char *display = rd_str(&er);
		if (er.bad || !display)
			return false;
		struct mq_mcache_entry *e = &c->block[i];
		e->in_block = true;
		e->meta = p;
		e->meta_len = len;
		e->blob = blob + boff;
		e->blob_len = blen;
		e->display = display;
		append_entry(c, e);
	}
	if (m2.p != m2.end)
		return false;
	c->n_old_valid = c->n;
	return true;
}

struct mq_mcache *mq_mcache_open(const char *path)
{
	struct mq_mcache *c = xcalloc(1, sizeof(*c));
	c->path = xstrdup_null(path);
	struct stat st;
	if (stat("/proc/self/exe", &st) == 0) {
		c->exe = ident_of(&st);
		c->exe_ok = true;
	}
	c->stamp = now_ns();
	if (c->path) {
		if (read_map(c))
			c->st.loaded = true;
		else
			drop_map(c);
	}
	c->dirty = !c->st.loaded && c->path != NULL;
	return c;
}

const struct mq_mcache_stats *mq_mcache_stats(const struct mq_mcache *c)
{
	return &c->st;
}

size_t mq_mcache_size(const struct mq_mcache *c)
{
	return c ? c->n : 0;
}

static void bases_reset(struct mq_mcache *c)
{
	for (size_t i = 0; i < c->base_keys.n; i++)
		free(mq_strmap_get(&c->bases, c->base_keys.v[i]));
	mq_strmap_release(&c->bases);
	mq_strv_clear(&c->base_keys);
}

void mq_mcache_begin(struct mq_mcache *c)
{
	/* keep only the newest entry per display path, all marked unused */
	ensure_index(c);
	size_t k = 0;
	for (size_t i = 0; i < c->n; i++) {
		struct mq_mcache_entry *e = c->v[i];
		if (mq_strmap_get(&c->index, e->display) == e) {
			e->used = false;
			e->pos = k;
			c->v[k++] = e;
		} else {
			/* owned entries may be pointed at by nothing else */
			free(e->owned);
			if (!e->in_block)
				free(e);
		}
	}
	c->n = k;
	c->cursor = 0;
	bases_reset(c);
	c->stamp = now_ns();
	memset(&c->st, 0, sizeof(c->st));
}

struct mq_mcache *mq_mcache_free(struct mq_mcache *c)
{
	if (c) {
		drop_map(c);
		free(c->v);
		bases_reset(c);
		mq_arena_unref(c->arena);
		free(c->path);
		free(c);
	}
	return NULL;
}

/* ---- lookup ----------------------------------------------------------- */

static const struct base_state *base_stat(struct mq_mcache *c, const char *abs)
{
	struct base_state *b = mq_strmap_get(&c->bases, abs);
	if (b)
		return b;
	b = xcalloc(1, sizeof(*b));
	struct stat st;
	if (stat(abs, &st) == 0) {
		b->id = ident_of(&st);
		b->ok = true;
	}
	mq_strv_push(&c->base_keys, abs);
	mq_strmap_put(&c->bases, c->base_keys.v[c->base_keys.n - 1], b);
	return b;
}

static struct ident entry_ident(const struct mq_mcache_entry *e)
{
	struct rd r = { e->meta + FIX_DEV, e->meta + e->meta_len, false };
	return rd_ident(&r);
}

static uint64_t entry_stamp(const struct mq_mcache_entry *e)
{
	uint64_t s;
	memcpy(&s, e->meta + FIX_STAMP, 8);
	return s;
}

/* Position after the fixed part and the three key strings; checks them. */
static bool entry_key(const struct mq_mcache_entry *e, const char *display, const char *abs, const char *source,
		      struct rd *r)
{
	*r = (struct rd){ e->meta + FIX_SIZE, e->meta + e->meta_len, false };
	const char *d = rd_str(r), *a = rd_str(r), *s = rd_str(r);
	return !r->bad && d && a && s && strcmp(d, display) == 0 && strcmp(a, abs) == 0 && strcmp(s, source) == 0;
}

static bool bases_hold(struct mq_mcache *c, struct rd *r, uint64_t stamp)
{
	uint32_t nb = rd_u32(r);
	for (uint32_t i = 0; i < nb && !r->bad; i++) {
		const char *abs = rd_str(r);
		struct ident id = rd_ident(r);
		if (r->bad || !abs)
			return false;
		const struct base_state *b = base_stat(c, abs);
		if (!b->ok || !ident_eq(&b->id, &id) || !trusted(&id, stamp))
			return false;
	}
	return !r->bad;
}

/* A copy of e that we own, with a new identity and stamp. */
static struct mq_mcache_entry *refreshed(struct mq_mcache *c, const struct mq_mcache_entry *e, const struct stat *st)
{
	struct mq_mcache_entry *n = xcalloc(1, sizeof(*n));
	n->owned = xmalloc(e->meta_len + e->blob_len);
	memcpy(n->owned, e->meta, e->meta_len);
	memcpy(n->owned + e->meta_len, e->blob, e->blob_len);
	n->meta = n->owned;
	n->meta_len = e->meta_len;
	n->blob = (const char *)n->owned + e->meta_len;
	n->blob_len = e->blob_len;
	struct ident id = ident_of(st);
	uint64_t f[5] = { id.dev, id.ino, id.size, id.mtime, id.ctime };
	memcpy(n->owned + FIX_DEV, f, sizeof(f));
	uint64_t stamp = (uint64_t)c->stamp;
	memcpy(n->owned + FIX_STAMP, &stamp, 8);
	n->display = (const char *)n->owned + (e->display - (const char *)e->meta);
	return n;
}

static const struct mq_mcache_entry *lookup(struct mq_mcache *c, const char *display, const char *abs,
					       const char *source, const struct stat *st, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	struct mq_mcache_entry *e = NULL;
	if (c->cursor < c->n && !c->v[c->cursor]->superseded && strcmp(c->v[c->cursor]->display, display) == 0) {
		e = c->v[c->cursor];
		c->st.in_order++;
	} else {
		ensure_index(c);
		e = mq_strmap_get(&c->index, display);
	}
	if (e)
		c->cursor = e->pos + 1;
	struct rd r;
	if (!e || !entry_key(e, display, abs, source, &r))
		return NULL;
	uint64_t stamp = entry_stamp(e);
	if (!bases_hold(c, &r, stamp))
		return NULL;
	struct ident now = ident_of(st), was = entry_ident(e);
	if (ident_eq(&now, &was) && trusted(&was, stamp)) {
		e->used = true;
		e->used_at = c->use_clock++;
		c->st.hits++;
		return e;
	}
	/* stat changed, or racily clean: the content decides */
	struct mq_error *err = NULL;
	if (mq_read_file(abs, MQ_MANIFEST_MAX_BYTES, buf, len, &err) < 0) {
		mq_error_free(err);
		return NULL;
	}
	unsigned char h[32];
	struct mq_sha256 s;
	mq_sha256_init(&s);
	mq_sha256_update(&s, *buf, *len);
	mq_sha256_final(&s, h);
	if (memcmp(h, e->meta + FIX_CONTENT, 32) != 0)
		return NULL;
	free(*buf);
	*buf = NULL;
	*len = 0;
	struct mq_mcache_entry *n = refreshed(c, e, st);
	n->used = true;
	n->used_at = c->use_clock++;
	push_entry(c, n);
	c->dirty = true;
	c->st.rehashed++;
	return n;
}

int mq_mcache_content(const struct mq_mcache_entry *e, const char *abs, char **buf, size_t *len)
{
	struct mq_error *err = NULL;
	int r = mq_read_file(abs, MQ_MANIFEST_MAX_BYTES, buf, len, &err);
	mq_error_free(err);
	if (r < 0)
		return r;
	unsigned char h[32];
	struct mq_sha256 s;
	mq_sha256_init(&s);
	mq_sha256_update(&s, *buf, *len);
	mq_sha256_final(&s, h);
	if (memcmp(h, e->meta + FIX_CONTENT, 32) != 0) {
		free(*buf);
		*buf = NULL;
		*len = 0;
		return -ESTALE;
	}
	return 0;
}

const struct mq_mcache_entry *mq_mcache_lookup(struct mq_mcache *c, const char *display, const char *abs,
					       const char *source, const struct stat *st, char **buf, size_t *len)
{
	const struct mq_mcache_entry *e = lookup(c, display, abs, source, st, buf, len);
	if (!e)
		c->st.misses++;
	return e;
}

/* ---- emitting specs ---------------------------------------------------- */

static struct mq_pos rd_pos(struct rd *r)
{
	struct mq_pos p;
	p.line = rd_i32(r);
	p.col = rd_i32(r);
	p.file = rd_str(r);
	return p;
}

static void rd_strv(struct rd *r, struct mq_strv *out)
{
	uint32_t n = rd_u32(r);
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		const char *s = rd_str(r);
		if (!r->bad)
			mq_strv_push(out, s ? s : "");
	}
}

/* A light spec is one allocation in the cache's arena (spec->arena) and its
 * positions another (x->arena): one pass over the entry measures both, a
 * second fills them.
 * `pk` is a bump allocator over a block; without a block it only counts. */
struct pk {
	char *base;
	size_t off;
};

static void *pk_alloc(struct pk *k, size_t n, size_t align)
{
	k->off = (k->off + align - 1) / align * align;
	void *p = k->base ? k->base + k->off : NULL;
	k->off += n;
	return p;
}

static char *pk_str(struct pk *k, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *p = pk_alloc(k, n, 1);
	if (p)
		memcpy(p, s, n);
	return p;
}

/* A read-only strv in the block (NULL strings read as ""). */
static void pk_strv(struct pk *k, struct rd *r, struct mq_strv *out)
{
	uint32_t n = rd_u32(r);
	if (r->bad || n == 0)
		return;
	if (n > (uint32_t)(r->end - r->p)) {
		r->bad = true;
		return;
	}
	char **v = pk_alloc(k, ((size_t)n + 1) * sizeof(*v), _Alignof(char *));
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		const char *str = rd_str(r);
		char *c = pk_str(k, str ? str : "");
		if (v)
			v[i] = c;
	}
	if (v) {
		v[n] = NULL;
		out->v = v;
		out->n = n;
		out->alloc = (size_t)n + 1;
	}
}

/* Reads one document's light part from r into s and x (both NULL while
 * measuring: then only ks, kx and *nfwd advance). */
static void read_light(struct rd *r, const char *display, const char *abs, const char *source, struct pk *ks,
		       struct pk *kx, size_t *nfwd, struct mq_spec *s, struct mq_spec_extra *x)
{
	struct mq_spec tmp_s;
	struct mq_spec_extra tmp_x;
	bool fill = s != NULL;
	if (!fill) {
		s = &tmp_s;
		x = &tmp_x;
	}
	s->file = pk_str(ks, display);
	s->abs_file = pk_str(ks, abs);
	s->source = pk_str(ks, source);
	s->name = pk_str(ks, rd_str(r));
	s->placement_host = pk_str(ks, rd_str(r));
	s->state = (enum mq_desired)rd_u32(r);
	s->line = rd_i32(r);
	s->col = rd_i32(r);
	x->name = rd_pos(r);
	uint32_t nd = rd_u32(r);
	if (!r->bad && nd > 0 && nd <= (uint32_t)(r->end - r->p)) {
		char **v = pk_alloc(ks, ((size_t)nd + 1) * sizeof(*v), _Alignof(char *));
		struct mq_pos *deps = pk_alloc(kx, nd * sizeof(*deps), _Alignof(struct mq_pos));
		for (uint32_t i = 0; i < nd && !r->bad; i++) {
			const char *dep = rd_str(r);
			char *c = pk_str(ks, dep ? dep : "");
			struct mq_pos p = rd_pos(r);
			if (fill) {
				v[i] = c;
				deps[i] = p;
			}
		}
		if (fill) {
			v[nd] = NULL;
			s->depends_on = (struct mq_strv){ v, nd, (size_t)nd + 1 };
			x->deps = deps;
		}
	} else if (nd > 0) {
		r->bad = true;
	}
	uint32_t nn = rd_u32(r);
	size_t k = 0;
	if (!r->bad && nn > 0 && nn <= (uint32_t)(r->end - r->p)) {
		struct mq_network *net = pk_alloc(ks, nn * sizeof(*net), _Alignof(struct mq_network));
		/* every forward's position, networks in order (*nfwd from the measuring pass) */
		struct mq_pos *fwds = pk_alloc(kx, (*nfwd + 1) * sizeof(*fwds), _Alignof(struct mq_pos));
		for (uint32_t a = 0; a < nn && !r->bad; a++) {
			char *type = pk_str(ks, rd_str(r));
			uint32_t nf = rd_u32(r);
			if (r->bad || nf > (uint32_t)(r->end - r->p)) {
				r->bad = true;
				break;
			}
			struct mq_forward *fw = pk_alloc(ks, ((size_t)nf + 1) * sizeof(*fw), _Alignof(struct mq_forward));
			if (fill) {
				memset(fw, 0, ((size_t)nf + 1) * sizeof(*fw));
				net[a] = (struct mq_network){ type, fw, nf };
			}
			for (uint32_t b = 0; b < nf && !r->bad; b++, k++) {
				struct mq_forward f = { 0 };
				const unsigned char *pr = rd_bytes(r, sizeof(f.proto));
				if (pr) {
					memcpy(f.proto, pr, sizeof(f.proto));
					f.proto[sizeof(f.proto) - 1] = '\0';
				}
				uint32_t ports = rd_u32(r);
				f.host_port = (uint16_t)(ports >> 16);
				f.guest_port = (uint16_t)(ports & 0xffff);
				struct mq_pos p = rd_pos(r);
				if (fill && k < *nfwd) {
					fw[b] = f;
					fwds[k] = p;
				}
			}
		}
		if (fill) {
			s->network = net;
			s->n_network = nn;
			x->fwds = fwds;
		}
	} else if (nn > 0) {
		r->bad = true;
	}
	if (!fill) {
		*nfwd = k;
		kx->off += k * sizeof(struct mq_pos); /* the filling pass sizes fwds by k */
	} else if (k != *nfwd)
		r->bad = true; /* cannot happen: both passes read the same bytes */
	x->placement = rd_pos(r);
	pk_strv(ks, r, &s->bases);
	pk_strv(ks, r, &s->bases_abs);
}

/* One document: a light spec and its positions; full when `light` says no. */
/* n zeroed bytes in the cache's current arena (a new one when they do not
 * fit), with a reference on it in *owner. */
static void *arena_get(struct mq_mcache *c, size_t n, size_t align, struct mq_arena **owner)
{
	void *p = c->arena ? mq_arena_alloc(c->arena, n, align) : NULL;
	if (!p) {
		c->arena = mq_arena_unref(c->arena);
		size_t size = c->arena_next ? c->arena_next : ARENA_FIRST;
		c->arena_next = ARENA_NEXT;
		c->arena = mq_arena_new(size > n + align ? size : n + align);
		p = mq_arena_alloc(c->arena, n, align);
	}
	*owner = c->arena;
	return p;
}

static int emit_doc(struct mq_mcache *c, const struct mq_mcache_entry *e, struct rd *r, const char *display,
		    const char *abs,
		    const char *source, bool (*light)(const struct mq_spec *, void *), void *ud, struct mq_spec **sp,
		    struct mq_spec_extra **xp)
{
	/* measure, then fill */
	struct rd r0 = *r;
	struct pk ks = { NULL, sizeof(struct mq_spec) }, kx = { NULL, sizeof(struct mq_spec_extra) };
	size_t nfwd = 0;
	read_light(&r0, display, abs, source, &ks, &kx, &nfwd, NULL, NULL);
	if (r0.bad)
		return -EINVAL;
	struct mq_arena *sa, *xa;
	struct mq_spec *s = arena_get(c, ks.off, _Alignof(max_align_t), &sa);
	struct mq_spec_extra *x = arena_get(c, kx.off, _Alignof(max_align_t), &xa);
	s->arena = sa;
	x->arena = xa;
	ks = (struct pk){ (char *)s, sizeof(*s) };
	kx = (struct pk){ (char *)x, sizeof(*x) };
	read_light(r, display, abs, source, &ks, &kx, &nfwd, s, x);
	/* a light spec holds no origins (spec.h): skip them */
	const unsigned char *origins = r->p;
	for (int t = 0; t < 2 && !r->bad; t++) {
		uint32_t n = rd_u32(r);
		for (uint32_t i = 0; i < n && !r->bad; i++)
			(void)rd_str(r);
	}
	const unsigned char *hash = rd_bytes(r, 64);
	uint64_t coff = rd_u64(r);
	uint32_t clen = rd_u32(r);
	if (r->bad || coff > e->blob_len || (uint64_t)clen + 1 > e->blob_len - coff)
		goto bad;
	memcpy(s->hash, hash, 64);
	s->hash[64] = '\0';
	s->light = true;
	if (light && light(s, ud)) {
		/* the canonical document is not read: its pages stay untouched */
		*sp = s;
		*xp = x;
		return 0;
	}
	if (e->blob[coff + clen] != '\0')
		goto bad;
	/* the full spec, rebuilt from the canonical document (checked against its hash) */
	struct mq_spec *full = NULL;
	struct mq_error *err = NULL;
	if (mq_spec_from_canonical(e->blob + coff, source, &full, &err) < 0) {
		mq_error_free(err);
		goto bad;
	}
	if (strcmp(full->hash, s->hash) != 0) {
		mq_spec_free(full);
		goto bad;
	}
	free(full->file);
	free(full->abs_file);
	full->file = xstrdup(s->file);
	full->abs_file = xstrdup(s->abs_file);
	full->line = s->line;
	full->col = s->col;
	mq_strv_extend(&full->bases, &s->bases);
	mq_strv_extend(&full->bases_abs, &s->bases_abs);
	struct rd ro = { origins, r->end, false };
	rd_strv(&ro, &full->origin_keys);
	rd_strv(&ro, &full->origin_files);
	mq_spec_free(s);
	*sp = full;
	*xp = x;
	return 0;
bad:
	mq_spec_free(s);
	mq_spec_extra_free(x);
	return -EINVAL;
}

int mq_mcache_emit(struct mq_mcache *c, const struct mq_mcache_entry *e, bool (*light)(const struct mq_spec *, void *),
		   void *ud, struct mq_spec_list *out)
{
	struct rd r = { e->meta + FIX_SIZE, e->meta + e->meta_len, false };
	const char *display = rd_str(&r), *abs = rd_str(&r), *source = rd_str(&r);
	uint32_t nb = rd_u32(&r);
	for (uint32_t i = 0; i < nb && !r.bad; i++) {
		(void)rd_str(&r);
		(void)rd_ident(&r);
	}
	uint32_t ndocs = rd_u32(&r);
	if (r.bad || !display || !abs || !source)
		return -EINVAL;
	struct mq_spec_list tmp = { 0 };
	for (uint32_t i = 0; i < ndocs; i++) {
		struct mq_spec *s = NULL;
		struct mq_spec_extra *x = NULL;
		if (emit_doc(c, e, &r, display, abs, source, light, ud, &s, &x) < 0) {
			mq_spec_list_release(&tmp);
			return -EINVAL;
		}
		mq_spec_list_push(&tmp, s, x);
	}
	if (r.p != r.end) {
		mq_spec_list_release(&tmp);
		return -EINVAL;
	}
	for (size_t i = 0; i < tmp.n; i++)
		mq_spec_list_push(out, tmp.v[i], tmp.x[i]);
	free(tmp.v);
	free(tmp.x);
	return 0;
}

/* ---- storing ----------------------------------------------------------- */

static struct mq_pos pos_or(const struct mq_pos *v, size_t i, const struct mq_spec *s)
{
	return v ? v[i] : (struct mq_pos){ s->line, s->col, NULL };
}

void mq_mcache_store(struct mq_mcache *c, const char *display, const char *abs, const char *source,
		     const struct stat *st, const char *buf, size_t len, const struct mq_spec_list *out, size_t from)
{
	for (size_t i = from; i < out->n; i++)
		if (!out->v[i]->canonical || !out->v[i]->name || out->v[i]->light)
			return; /* not a complete, valid result */
	struct mq_strbuf m = MQ_STRBUF_INIT, b = MQ_STRBUF_INIT;
	mq_strbuf_init(&m);
	mq_strbuf_init(&b);
	/* fixed part: blob off/len are set at save time, stamp now */
	wr_u64(&m, 0);
	wr_u64(&m, 0);
	struct ident id = ident_of(st);
	wr_ident(&m, &id);
	wr_u64(&m, (uint64_t)c->stamp);
	unsigned char h[32];
	struct mq_sha256 sh;
	mq_sha256_init(&sh);
	mq_sha256_update(&sh, buf, len);
	mq_sha256_final(&sh, h);
	mq_strbuf_add(&m, h, 32);
	size_t display_off = m.len + 4;
	wr_str(&m, display);
	wr_str(&m, abs);
	wr_str(&m, source);
	/* bases: every base of every document, once */
	struct mq_strv seen = MQ_STRV_INIT;
	for (size_t i = from; i < out->n; i++)
		for (size_t j = 0; j < out->v[i]->bases_abs.n; j++)
			if (!mq_strv_contains(&seen, out->v[i]->bases_abs.v[j]))
				mq_strv_push(&seen, out->v[i]->bases_abs.v[j]);
	wr_u32(&m, (uint32_t)seen.n);
	bool ok = true;
	for (size_t j = 0; j < seen.n; j++) {
		const struct base_state *bs = base_stat(c, seen.v[j]);
		ok = ok && bs->ok;
		wr_str(&m, seen.v[j]);
		wr_ident(&m, &bs->id);
	}
	mq_strv_clear(&seen);
	wr_u32(&m, (uint32_t)(out->n - from));
	for (size_t i = from; i < out->n; i++) {
		const struct mq_spec *s = out->v[i];
		const struct mq_spec_extra *x = out->x[i];
		wr_str(&m, s->name);
		wr_str(&m, s->placement_host);
		wr_u32(&m, (uint32_t)s->state);
		wr_i32(&m, s->line);
		wr_i32(&m, s->col);
		wr_pos(&m, x ? x->name : (struct mq_pos){ s->line, s->col, NULL });
		wr_u32(&m, (uint32_t)s->depends_on.n);
		for (size_t j = 0; j < s->depends_on.n; j++) {
			wr_str(&m, s->depends_on.v[j]);
			wr_pos(&m, pos_or(x ? x->deps : NULL, j, s));
		}
		wr_u32(&m, (uint32_t)s->n_network);
		size_t k = 0;
		for (size_t a = 0; a < s->n_network; a++) {
			wr_str(&m, s->network[a].type);
			wr_u32(&m, (uint32_t)s->network[a].n_forwards);
			for (size_t f = 0; f < s->network[a].n_forwards; f++, k++) {
				const struct mq_forward *fw = &s->network[a].forwards[f];
				char proto[sizeof(fw->proto)] = { 0 };
				memcpy(proto, fw->proto, sizeof(proto));
				mq_strbuf_add(&m, proto, sizeof(proto));
				wr_u32(&m, ((uint32_t)fw->host_port << 16) | fw->guest_port);
				wr_pos(&m, pos_or(x ? x->fwds : NULL, k, s));
			}
		}
		wr_pos(&m, x ? x->placement : (struct mq_pos){ 0, 0, NULL });
		wr_strv(&m, &s->bases);
		wr_strv(&m, &s->bases_abs);
		wr_strv(&m, &s->origin_keys);
		wr_strv(&m, &s->origin_files);
		mq_strbuf_add(&m, s->hash, 64);
		size_t cl = strlen(s->canonical);
		wr_u64(&m, b.len);
		wr_u32(&m, (uint32_t)cl);
		mq_strbuf_add(&b, s->canonical, cl + 1);
	}
	if (!ok || m.len > UINT32_MAX) {
		mq_strbuf_release(&m);
		mq_strbuf_release(&b);
		return;
	}
	struct mq_mcache_entry *e = xcalloc(1, sizeof(*e));
	e->owned = xmalloc(m.len + b.len + 1);
	memcpy(e->owned, m.buf, m.len);
	memcpy(e->owned + m.len, b.buf, b.len);
	e->meta = e->owned;
	e->meta_len = m.len;
	e->blob = (const char *)e->owned + m.len;
	e->blob_len = b.len;
	e->display = (const char *)e->owned + display_off;
	e->used = true;
	e->used_at = c->use_clock++;
	mq_strbuf_release(&m);
	mq_strbuf_release(&b);
	push_entry(c, e);
	c->dirty = true;
	c->st.stored++;
}

/* ---- saving ------------------------------------------------------------ */

static int flush_buf(int fd, struct mq_strbuf *sb)
{
	int r = mq_write_all(fd, sb->buf, sb->len);
	mq_strbuf_reset(sb);
	return r;
}

static int used_at_cmp(const void *a, const void *b)
{
	const struct mq_mcache_entry *x = *(struct mq_mcache_entry *const *)a, *y = *(struct mq_mcache_entry *const *)b;
	return x->used_at < y->used_at ? -1 : x->used_at > y->used_at;
}

int mq_mcache_save(struct mq_mcache *c, struct mq_error **err)
{
	if (!c->path)
		return 0;
	/* the entries in force: the newest per display path that this load used */
	size_t used = 0;
	uint64_t meta_len = 0, blob_len = 0;
	struct mq_strbuf sum_buf = MQ_STRBUF_INIT;
	for (size_t i = 0; i < c->n; i++) {
		struct mq_mcache_entry *e = c->v[i];
		if (!e->used || e->superseded)
			continue;
		used++;
		meta_len += 4 + e->meta_len;
		blob_len += e->blob_len;
	}
	if (!c->dirty && used == c->n_old_valid)
		return 0;
	/* in the order this load used them: the walk order, which the next
	 * load looks them up in (c->cursor) */
	struct mq_mcache_entry **in = xcalloc(used + 1, sizeof(*in));
	for (size_t i = 0, k = 0; i < c->n; i++)
		if (c->v[i]->used && !c->v[i]->superseded)
			in[k++] = c->v[i];
	if (used > 1)
		qsort(in, used, sizeof(*in), used_at_cmp);
	/* checksum first (a pass over the meta bytes as they will be written) */
	uint64_t boff = 0;
	struct csum cs;
	csum_init(&cs);
	mq_strbuf_init(&sum_buf);
	for (size_t i = 0; i < used; i++) {
		struct mq_mcache_entry *e = in[i];
		mq_strbuf_reset(&sum_buf);
		wr_u32(&sum_buf, (uint32_t)e->meta_len);
		wr_u64(&sum_buf, boff);
		wr_u64(&sum_buf, e->blob_len);
		mq_strbuf_add(&sum_buf, e->meta + 16, e->meta_len - 16);
		csum_add(&cs, (const unsigned char *)sum_buf.buf, sum_buf.len);
		boff += e->blob_len;
	}
	char *tmp = xasprintf("%s.tmp.%ld", c->path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		mq_strbuf_release(&sum_buf);
		free(in);
		free(tmp);
		return mq_error_set(err, e, "cannot create '%s': %s", c->path, strerror(e));
	}
	struct mq_strbuf w = MQ_STRBUF_INIT;
	mq_strbuf_init(&w);
	mq_strbuf_add(&w, MAGIC, 8);
	wr_u32(&w, VERSION);
	wr_u32(&w, 0);
	wr_u64(&w, c->exe.dev);
	wr_u64(&w, c->exe.ino);
	wr_u64(&w, c->exe.size);
	wr_u64(&w, c->exe.mtime);
	wr_u64(&w, (uint64_t)used);
	wr_u64(&w, meta_len);
	wr_u64(&w, blob_len);
	wr_u64(&w, csum_end(&cs));
	int r = 0;
	boff = 0;
	for (size_t pass = 0; pass < 2 && r == 0; pass++) {
		for (size_t i = 0; i < used && r == 0; i++) {
			struct mq_mcache_entry *e = in[i];
			if (pass == 0) {
				wr_u32(&w, (uint32_t)e->meta_len);
				wr_u64(&w, boff);
				wr_u64(&w, e->blob_len);
				mq_strbuf_add(&w, e->meta + 16, e->meta_len - 16);
				boff += e->blob_len;
			} else {
				mq_strbuf_add(&w, e->blob, e->blob_len);
			}
			if (w.len >= 65536)
				r = flush_buf(fd, &w);
		}
	}
	if (r == 0)
		r = flush_buf(fd, &w);
	mq_strbuf_release(&w);
	mq_strbuf_release(&sum_buf);
	free(in);
	close(fd);
	if (r == 0 && rename(tmp, c->path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		free(tmp);
		return mq_error_set(err, -r, "cannot write '%s': %s", c->path, strerror(-r));
	}
	free(tmp);
	c->dirty = false;
	c->n_old_valid = used;
	c->st.written = true;
	return 0;
}
