/* cache.h - the manifest parse cache: a file whose identity has not changed
 * is not read again (git's index, for manifests).
 *
 * One file, `<state>/manifest-cache`, maps each manifest (by the path it was
 * walked as, its realpath and the -f source that named it) to its identity
 * (st_dev, st_ino, st_size, mtime ns, ctime ns), the sha256 of its content,
 * the identities of the bases it extends, and the parsed result: for each
 * document the name, state, placement host, depends_on and forwards with their
 * positions (what the set-level checks need), the sha256 hash and the
 * canonical JSON the full spec is rebuilt from (fromjson.c).
 *
 * A file is taken from the cache when its display path, realpath and source
 * match, its stat identity matches, every base's stat identity matches, and
 * the entry is not racily clean: the entry was verified at `stamp` (a
 * CLOCK_REALTIME reading taken before the file was stat'ed and read); when
 * mtime or ctime is not at least MQ_MCACHE_RACY_NS older than that stamp, a
 * write in the same timestamp tick could have kept the stat unchanged, so the
 * file is read and its content hash compared instead (a match refreshes the
 * stamp).  When only the stat differs (a touch, a checkout writing the same
 * bytes), the content hash decides the same way, without parsing.
 *
 * Only files that parsed without any diagnostic are stored: a file with
 * errors is parsed every time, so its located errors are always printed.
 * Set-level checks (names, ports, depends_on, cycles) are never cached.
 * The file also names the maqet binary that wrote it (the identity of
 * /proc/self/exe): another build parses differently, so its cache is ignored.
 *
 * Format (native byte order; the version field changes with the layout):
 *   header  "MQMCACHE", u32 version, u32 flags, u64 exe dev, ino, size,
 *           mtime ns, u64 entry count, u64 meta bytes, u64 blob bytes,
 *           u64 FNV-1a of the meta section
 *   meta    entries, each u32 length then its fields (strings are u32 length
 *           + bytes + NUL so they are used in place; length ~0 = NULL)
 *   blob    canonical JSON documents, NUL-terminated, referenced by offset
 * The file is mapped read-only and read in place; canonical JSON sits apart
 * so that the pages of vms that are not rebuilt are never touched.  Entries
 * are written in the order the load used them (the walk order), so the next
 * load of the same repository finds each one next in line without hashing
 * its path (an index by path is built only when a lookup is out of order).
 * Light specs are made in arenas (util/arena.h) that they keep alive, so
 * they outlive the cache; a full spec is rebuilt from its canonical JSON.  It is
 * written whole (temp file + rename) only when something changed.  A file
 * that is truncated, from another version or fails its checksum is ignored
 * (and rewritten); a canonical document is checked against its hash before
 * use.  Deleting the file is always safe.
 */
#ifndef MQ_SPECS_CACHE_H
#define MQ_SPECS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "specs/spec.h"
#include "util/error.h"

#define MQ_MCACHE_FILE "manifest-cache"
#define MQ_MCACHE_RACY_NS (2LL * 1000000000LL)

struct mq_mcache;

struct mq_mcache_stats {
	size_t hits;     /* taken by stat identity alone */
	size_t in_order; /* lookups that found their entry next in file order (no index needed) */
	size_t rehashed; /* stat differed or was racy; content hash matched */
	size_t misses;   /* parsed */
	size_t stored;   /* parsed and valid: stored */
	bool loaded;     /* an existing cache file was read */
	bool written;    /* mq_mcache_save wrote the file */
};

/* Open the cache at `path` (NULL: an in-memory cache that is never saved).
 * A missing, unreadable or invalid file gives an empty cache: never fails. */
struct mq_mcache *mq_mcache_open(const char *path);
/* Write the file when anything changed since it was read (atomically).
 * Returns 0 or -errno with *err; the cache stays usable either way. */
int mq_mcache_save(struct mq_mcache *c, struct mq_error **err);
struct mq_mcache *mq_mcache_free(struct mq_mcache *c);
const struct mq_mcache_stats *mq_mcache_stats(const struct mq_mcache *c);
/* Entries the cache holds: about how many manifests the next load walks
 * (a loader reserves its tables for that many, instead of growing them). */
size_t mq_mcache_size(const struct mq_mcache *c);
/* Start a new load: the entries used by the next walk replace the current
 * ones at the next save (watch mode calls this before each reload). */
void mq_mcache_begin(struct mq_mcache *c);

/* The clock the cache stamps its checks with (CLOCK_REALTIME ns). */
int64_t mq_mcache_now(void);
/* True when a file with this stat, seen at `stamp` (mq_mcache_now() taken
 * before the stat), cannot have changed since without its stat changing:
 * its mtime and ctime are older than stamp by more than the racy margin. */
bool mq_mcache_stat_trusted(const struct stat *st, int64_t stamp);

/* For unit tests only: the racy margin (default MQ_MCACHE_RACY_NS), so a
 * test can see stat-only hits without waiting for the clock. */
void mq_mcache_test_set_racy_margin(int64_t ns);

/* ---- internal to specs/ (load.c) ---------------------------------------- */
struct mq_spec_list;
struct mq_mcache_entry;

/* The entry for this file when its key and identity still hold (reading and
 * hashing the file when the stat alone cannot tell).  On a miss, *buf may
 * hold the file's content already read (caller frees; len in *len). */
const struct mq_mcache_entry *mq_mcache_lookup(struct mq_mcache *c, const char *display, const char *abs,
					       const char *source, const struct stat *st, char **buf, size_t *len);
/* Append the entry's specs to `out` (full specs, or light ones for the vms
 * `light` says).  Returns 0, or -EINVAL when the entry cannot be used (then
 * nothing was appended and the caller parses the file). */
int mq_mcache_emit(struct mq_mcache *c, const struct mq_mcache_entry *e, bool (*light)(const struct mq_spec *, void *),
		   void *ud, struct mq_spec_list *out);
/* The file's content, read now and checked against the entry's content hash
 * (0), or -ESTALE when it differs, or -errno. */
int mq_mcache_content(const struct mq_mcache_entry *e, const char *abs, char **buf, size_t *len);
/* Store the specs parsed from a file (out->v[from..out->n)) that had no
 * diagnostic; `buf` is the content they were parsed from. */
void mq_mcache_store(struct mq_mcache *c, const char *display, const char *abs, const char *source,
		     const struct stat *st, const char *buf, size_t len, const struct mq_spec_list *out, size_t from);

#endif
