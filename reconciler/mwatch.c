/* mwatch.c - inotify watcher over manifest paths (see mwatch.h).
 *
 * Watches live in an array sorted by wd.  Each entry is a directory and
 * serves one or both of two roles: "whole" (a directory under a directory
 * argument: every manifest name in it counts, subdirectories are watched
 * too) and "only" (the parent of a file argument: just those names count).
 * inotify gives the same wd for the same inode, so overlapping arguments
 * share one entry.
 *
 * Nothing here sleeps or loops without progress: dispatch reads until
 * EAGAIN, the caller's poll loop does the waiting.
 */
#include "reconciler/mwatch.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "specs/spec.h"
#include "util/paths.h"
#include "util/xalloc.h"

#define MWATCH_MAX_WATCHES 8192
#define MWATCH_MAX_DEPTH MQ_MANIFEST_MAX_DEPTH /* same limit as the loader */
#define MWATCH_MAX_CHANGED 1000
#define MWATCH_MAX_WRITERS 1024
#define MWATCH_DEFAULT_SETTLE_MS 100
#define MWATCH_DEFAULT_WRITER_WAIT_MS 2000

/* IN_OPEN is left out on purpose: readers (maqet's own loader included)
 * would trigger it.  IN_MODIFY stands for "a writer has it open". */
#define MWATCH_DIR_MASK                                                                         \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY |      \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

struct watch {
	int wd;
	char *path;           /* absolute directory path */
	size_t root;          /* root that reached it as "whole" */
	char *rel;            /* path relative to that root ("" for the root itself) */
	int depth;            /* levels below that root */
	bool whole;
	struct mq_strv only;  /* file-argument names in this directory */
	unsigned gen;         /* last scan that touched it */
	unsigned whole_gen;   /* last scan that walked it as "whole" (loop breaker) */
};

struct root {
	char *given;          /* as given, trailing slashes stripped */
	char *dir;            /* absolute directory watched at the base */
	char *fname;          /* file argument: its name in dir; NULL for a directory */
	int wd;               /* base watch, -1 while the root is missing */
};

struct writer {
	char *key;            /* absolute path */
	int64_t since;
};

struct mq_mwatch {
	int fd;
	int settle_ms;
	int max_writer_wait_ms;

	struct root *roots;
	size_t nroots;

	struct watch *w;      /* sorted by wd */
	size_t nw, aw;
	unsigned gen;

	bool pending;
	bool overflow;
	int64_t last_event;

	struct writer *wr;
	size_t nwr, awr;

	struct mq_strv changed;
};

/* ---- small helpers -------------------------------------------------- */

static char *lower_strerror(int e)
{
	char *s = xstrdup(strerror(e));
	if (s[0])
		s[0] = (char)tolower((unsigned char)s[0]);
	return s;
}

static char *rel_join(const char *rel, const char *name)
{
	return rel && rel[0] ? xasprintf("%s/%s", rel, name) : xstrdup(name);
}

static bool has_prefix_dir(const char *s, const char *dir)
{
	size_t l = strlen(dir);
	return strncmp(s, dir, l) == 0 && (s[l] == '\0' || s[l] == '/');
}

/* ---- the wd map ----------------------------------------------------- */

static size_t watch_pos(const struct mq_mwatch *m, int wd)
{
	size_t lo = 0, hi = m->nw;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->w[mid].wd < wd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct watch *watch_find(struct mq_mwatch *m, int wd)
{
	size_t i = watch_pos(m, wd);
	return i < m->nw && m->w[i].wd == wd ? &m->w[i] : NULL;
}

static struct watch *watch_insert(struct mq_mwatch *m, int wd, const char *path)
{
	size_t i = watch_pos(m, wd);
	if (m->nw == m->aw) {
		m->aw = m->aw ? 2 * m->aw : 16;
		m->w = xreallocarray(m->w, m->aw, sizeof(*m->w));
	}
	memmove(&m->w[i + 1], &m->w[i], (m->nw - i) * sizeof(*m->w));
	m->nw++;
	struct watch *e = &m->w[i];
	memset(e, 0, sizeof(*e));
	e->wd = wd;
	e->path = xstrdup(path);
	return e;
}

static void watch_release(struct watch *e)
{
	free(e->path);
	free(e->rel);
	mq_strv_clear(&e->only);
}

/* Forget entry i (the kernel watch is already gone or removed by the caller). */
static void watch_drop_at(struct mq_mwatch *m, size_t i)
{
	int wd = m->w[i].wd;
	for (size_t r = 0; r < m->nroots; r++)
		if (m->roots[r].wd == wd)
			m->roots[r].wd = -1;
	watch_release(&m->w[i]);
	memmove(&m->w[i], &m->w[i + 1], (m->nw - i - 1) * sizeof(*m->w));
	m->nw--;
}

/* Remove the watches of directory `path` and everything below it. */
static void watch_remove_tree(struct mq_mwatch *m, const char *path)
{
	size_t i = 0;
	while (i < m->nw) {
		if (has_prefix_dir(m->w[i].path, path)) {
			inotify_rm_watch(m->fd, m->w[i].wd);
			watch_drop_at(m, i);
		} else {
			i++;
		}
	}
}

/* ---- change bookkeeping --------------------------------------------- */

static void note_change(struct mq_mwatch *m, int64_t now, const char *name)
{
	m->pending = true;
	m->last_event = now;
	if (name && m->changed.n < MWATCH_MAX_CHANGED && !mq_strv_contains(&m->changed, name))
		mq_strv_push(&m->changed, name);
}

static void writer_add(struct mq_mwatch *m, const char *key, int64_t now)
{
	for (size_t i = 0; i < m->nwr; i++)
		if (strcmp(m->wr[i].key, key) == 0)
			return;
	if (m->nwr >= MWATCH_MAX_WRITERS)
		return;
	if (m->nwr == m->awr) {
		m->awr = m->awr ? 2 * m->awr : 8;
		m->wr = xreallocarray(m->wr, m->awr, sizeof(*m->wr));
	}
	m->wr[m->nwr].key = xstrdup(key);
	m->wr[m->nwr].since = now;
	m->nwr++;
}

/* Drop the writer for `key`, or (dir = true) every writer under directory key. */
static void writer_del(struct mq_mwatch *m, const char *key, bool dir)
{
	size_t i = 0;
	while (i < m->nwr) {
		if (dir ? has_prefix_dir(m->wr[i].key, key) : strcmp(m->wr[i].key, key) == 0) {
			free(m->wr[i].key);
			m->wr[i] = m->wr[--m->nwr];
		} else {
			i++;
		}
	}
}

static int64_t first_writer(const struct mq_mwatch *m)
{
	int64_t t = INT64_MAX;
	for (size_t i = 0; i < m->nwr; i++)
		if (m->wr[i].since < t)
			t = m->wr[i].since;
	return t;
}

/* ---- adding watches ------------------------------------------------- */

static int add_watch_err(const char *path, int e, struct mq_error **err)
{
	if (e == ENOSPC)
		return mq_error_set(err, e, "cannot watch '%s': inotify watch limit reached "
				    "(raise fs.inotify.max_user_watches)", path);
	if (e == EMFILE)
		return mq_error_set(err, e, "cannot watch '%s': too many inotify instances "
				    "(raise fs.inotify.max_user_instances)", path);
	char *es = lower_strerror(e);
	int r = mq_error_set(err, e, "cannot watch '%s': %s", path, es);
	free(es);
	return r;
}

/* inotify_add_watch with the total cap; returns the entry or NULL (error set). */
static struct watch *add_one(struct mq_mwatch *m, const char *path, const char *shown, int *rc,
			     struct mq_error **err)
{
	int wd = inotify_add_watch(m->fd, path, MWATCH_DIR_MASK);
	if (wd < 0) {
		*rc = add_watch_err(shown, errno, err);
		return NULL;
	}
	struct watch *e = watch_find(m, wd);
	if (!e) {
		if (m->nw >= MWATCH_MAX_WATCHES) {
			inotify_rm_watch(m->fd, wd);
			*rc = mq_error_set(err, ENOSPC, "cannot watch '%s': too many directories "
					   "(limit %d watches)", shown, MWATCH_MAX_WATCHES);
			return NULL;
		}
		e = watch_insert(m, wd, path);
	}
	e->gen = m->gen;
	return e;
}

/* Watch directory `path` (reached from root `ri` as `rel`) and all its
 * subdirectories.  With `scan`, manifests already inside count as changes
 * (a directory that appeared while we were not watching it yet).  Returns
 * the wd, or a negative code with err set. */
static int add_dir(struct mq_mwatch *m, size_t ri, const char *path, const char *rel, int depth,
		   bool scan, int64_t now, struct mq_error **err)
{
	const char *shown = rel[0] ? path : m->roots[ri].given;
	if (depth > MWATCH_MAX_DEPTH)
		return mq_error_set(err, ELOOP, "cannot watch '%s': directories nested too deep "
				    "(limit %d levels)", shown, MWATCH_MAX_DEPTH);
	int r = 0;
	struct watch *e = add_one(m, path, shown, &r, err);
	if (!e)
		return r;
	int wd = e->wd;
	if (e->whole && e->whole_gen == m->gen)
		return wd; /* already walked in this scan (symlink loop, overlapping roots) */
	if (strcmp(e->path, path) != 0) { /* moved since it was added */
		free(e->path);
		e->path = xstrdup(path);
	}
	free(e->rel);
	e->rel = xstrdup(rel);
	e->root = ri;
	e->depth = depth;
	e->whole = true;
	e->whole_gen = m->gen;
	/* e may move when the array grows: no use of it below */

	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return wd; /* gone already: its IN_IGNORED will follow */
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return wd;
	}
	struct mq_strv subdirs = MQ_STRV_INIT;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (name[0] == '.') /* ".", "..", dot-directories, dotfiles */
			continue;
		bool is_dir = de->d_type == DT_DIR, is_reg = de->d_type == DT_REG;
		if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
			struct stat st; /* follow symlinks, like the loader */
			if (fstatat(dirfd(d), name, &st, 0) == 0) {
				is_dir = S_ISDIR(st.st_mode);
				is_reg = S_ISREG(st.st_mode);
			}
		}
		if (is_dir)
			mq_strv_push(&subdirs, name);
		else if (is_reg && scan && mq_manifest_name_ok(name)) {
			char *rn = rel_join(rel, name);
			note_change(m, now, rn);
			free(rn);
		}
	}
	closedir(d);

	for (size_t i = 0; i < subdirs.n; i++) {
		char *cp = mq_path_join(path, subdirs.v[i]);
		char *cr = rel_join(rel, subdirs.v[i]);
		r = add_dir(m, ri, cp, cr, depth + 1, scan, now, err);
		free(cp);
		free(cr);
		/* a subdirectory that vanished meanwhile is not an error */
		if (r < 0 && r != -ENOENT && r != -ENOTDIR)
			break;
		r = 0;
	}
	mq_strv_clear(&subdirs);
	return r < 0 ? r : wd;
}

/* Add root ri's watches.  Returns 0 or a negative code with err set. */
static int add_root(struct mq_mwatch *m, size_t ri, bool scan, int64_t now, struct mq_error **err)
{
	struct root *rt = &m->roots[ri];
	if (!rt->fname) {
		int wd = add_dir(m, ri, rt->dir, "", 0, scan, now, err);
		if (wd < 0)
			return wd;
		rt->wd = wd;
		return 0;
	}
	int r = 0;
	struct watch *e = add_one(m, rt->dir, rt->given, &r, err);
	if (!e)
		return r;
	if (!mq_strv_contains(&e->only, rt->fname))
		mq_strv_push(&e->only, rt->fname);
	rt->wd = e->wd;
	return 0;
}

/* Full resync: re-add every root, then drop watches no scan reached. */
static void rescan(struct mq_mwatch *m, int64_t now)
{
	m->gen++;
	for (size_t i = 0; i < m->nw; i++) {
		m->w[i].whole = false;
		mq_strv_clear(&m->w[i].only);
	}
	for (size_t ri = 0; ri < m->nroots; ri++) {
		m->roots[ri].wd = -1;
		add_root(m, ri, false, now, NULL);
	}
	size_t i = 0;
	while (i < m->nw) {
		if (m->w[i].gen != m->gen) {
			inotify_rm_watch(m->fd, m->w[i].wd);
			watch_drop_at(m, i);
		} else {
			i++;
		}
	}
}

static void handle_overflow(struct mq_mwatch *m, int64_t now)
{
	m->overflow = true;
	note_change(m, now, NULL);
	rescan(m, now);
}

/* Test-only hook: the kernel's IN_Q_OVERFLOW cannot be forced without
 * changing global sysctls, so tests call this instead.  Not in mwatch.h. */
void mq_mwatch_test_inject_overflow(struct mq_mwatch *w);
void mq_mwatch_test_inject_overflow(struct mq_mwatch *w)
{
	handle_overflow(w, mq_mono_ms());
}

/* A root whose base watch went away: try to get it back (once it exists
 * again) and ask for a full resync when it does. */
static void recheck_roots(struct mq_mwatch *m, int64_t now)
{
	for (size_t ri = 0; ri < m->nroots; ri++) {
		struct root *rt = &m->roots[ri];
		if (rt->wd >= 0)
			continue;
		struct stat st;
		if (stat(rt->given, &st) < 0)
			continue;
		if (rt->fname ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))
			continue;
		m->gen++;
		if (add_root(m, ri, false, now, NULL) == 0) {
			m->overflow = true;
			note_change(m, now, NULL);
		}
	}
}

/* ---- events --------------------------------------------------------- */

static void handle_event(struct mq_mwatch *m, const struct inotify_event *ev, int64_t now)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		handle_overflow(m, now);
		return;
	}
	struct watch *e = watch_find(m, ev->wd);
	if (!e)
		return; /* a watch we already dropped */

	if (ev->mask & IN_IGNORED) {
		bool was_root = false;
		for (size_t r = 0; r < m->nroots; r++)
			was_root |= m->roots[r].wd == ev->wd;
		watch_drop_at(m, (size_t)(e - m->w));
		if (was_root)
			note_change(m, now, NULL); /* a watched root went away */
		return;
	}
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
		bool is_root = false;
		for (size_t r = 0; r < m->nroots; r++)
			is_root |= m->roots[r].wd == ev->wd;
		if (!is_root)
			return; /* a subdirectory: its parent reports it */
		note_change(m, now, NULL);
		if (ev->mask & IN_MOVE_SELF) {
			/* the inode lives on elsewhere: stop following it */
			char *p = xstrdup(e->path);
			writer_del(m, p, true);
			watch_remove_tree(m, p);
			free(p);
		}
		return;
	}
	if (ev->len == 0 || ev->name[0] == '\0')
		return;
	const char *name = ev->name;

	if (ev->mask & IN_ISDIR) {
		if (!e->whole || name[0] == '.')
			return;
		char *child = mq_path_join(e->path, name);
		char *crel = rel_join(e->rel, name);
		char *shown = xasprintf("%s/", crel);
		size_t ri = e->root;
		int depth = e->depth + 1;
		if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
			if (ev->mask & IN_MOVED_TO)
				watch_remove_tree(m, child); /* stale entries under the same path */
			note_change(m, now, shown);
			m->gen++;
			add_dir(m, ri, child, crel, depth, true, now, NULL);
		} else if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
			writer_del(m, child, true);
			if (ev->mask & IN_MOVED_FROM)
				watch_remove_tree(m, child);
			note_change(m, now, shown);
		}
		free(shown);
		free(crel);
		free(child);
		return;
	}

	bool by_name = e->whole && mq_manifest_name_ok(name);
	if (!by_name && !mq_strv_contains(&e->only, name))
		return;
	char *key = mq_path_join(e->path, name);
	char *rn = by_name ? rel_join(e->rel, name) : xstrdup(name);
	if (ev->mask & IN_MODIFY)
		writer_add(m, key, now);
	if (ev->mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO))
		writer_del(m, key, false);
	note_change(m, now, rn);
	free(rn);
	free(key);
}

void mq_mwatch_dispatch(struct mq_mwatch *w, int64_t now)
{
	if (!w)
		return;
	_Alignas(struct inotify_event) char buf[8192];
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* EAGAIN: drained */
		size_t off = 0;
		while (off + sizeof(struct inotify_event) <= (size_t)n) {
			const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
			size_t sz = sizeof(struct inotify_event) + ev->len;
			if (off + sz > (size_t)n)
				break; /* the kernel never splits an event; be safe anyway */
			handle_event(w, ev, now);
			off += sz;
		}
	}
	recheck_roots(w, now);
}

/* ---- public API ----------------------------------------------------- */

int mq_mwatch_new(const char *const *paths, size_t n, const struct mq_mwatch_opts *opts,
		  struct mq_mwatch **out, struct mq_error **err)
{
	struct mq_mwatch *m = xcalloc(1, sizeof(*m));
	m->settle_ms = opts && opts->settle_ms > 0 ? opts->settle_ms : MWATCH_DEFAULT_SETTLE_MS;
	m->max_writer_wait_ms = opts && opts->max_writer_wait_ms > 0 ? opts->max_writer_wait_ms
								      : MWATCH_DEFAULT_WRITER_WAIT_MS;
	m->roots = xcalloc(n ? n : 1, sizeof(*m->roots));
	m->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int r = 0;
	if (m->fd < 0) {
		int e = errno;
		if (e == EMFILE)
			r = mq_error_set(err, e, "cannot start watching: too many inotify instances "
					 "(raise fs.inotify.max_user_instances)");
		else {
			char *es = lower_strerror(e);
			r = mq_error_set(err, e, "cannot start watching: %s", es);
			free(es);
		}
		goto fail;
	}

	for (size_t i = 0; i < n; i++) {
		char *given = xstrdup(paths[i]);
		size_t l = strlen(given);
		while (l > 1 && given[l - 1] == '/')
			given[--l] = '\0';
		struct root *rt = &m->roots[m->nroots++];
		rt->given = given;
		rt->wd = -1;
		struct stat st;
		if (l == 0 || stat(given, &st) < 0) {
			int e = l == 0 ? ENOENT : errno;
			char *es = lower_strerror(e);
			r = mq_error_set(err, e, "cannot watch '%s': %s", paths[i], es);
			free(es);
			goto fail;
		}
		if (S_ISDIR(st.st_mode)) {
			rt->dir = realpath(given, NULL);
		} else if (S_ISREG(st.st_mode)) {
			char *parent = mq_path_dirname(given);
			rt->dir = realpath(parent, NULL);
			free(parent);
			const char *slash = strrchr(given, '/');
			rt->fname = xstrdup(slash ? slash + 1 : given);
		} else {
			r = mq_error_set(err, EINVAL, "cannot watch '%s': not a regular file or directory",
					 paths[i]);
			goto fail;
		}
		if (!rt->dir) {
			int e = errno;
			char *es = lower_strerror(e);
			r = mq_error_set(err, e, "cannot watch '%s': %s", paths[i], es);
			free(es);
			goto fail;
		}
	}

	m->gen = 1;
	for (size_t i = 0; i < m->nroots; i++) {
		r = add_root(m, i, false, 0, err);
		if (r < 0)
			goto fail;
	}
	*out = m;
	return 0;
fail:
	mq_mwatch_free(m);
	return r;
}

int mq_mwatch_add_file(struct mq_mwatch *w, const char *path, struct mq_error **err)
{
	char *parent = mq_path_dirname(path);
	char *dir = realpath(parent, NULL);
	free(parent);
	if (!dir) {
		char *es = lower_strerror(errno);
		int r = mq_error_set(err, errno, "cannot watch '%s': %s", path, es);
		free(es);
		return r;
	}
	const char *slash = strrchr(path, '/');
	const char *fname = slash ? slash + 1 : path;
	for (size_t i = 0; i < w->nroots; i++) {
		const struct root *rt = &w->roots[i];
		if (rt->fname && strcmp(rt->fname, fname) == 0 && strcmp(rt->dir, dir) == 0) {
			free(dir);
			return 0;
		}
	}
	w->roots = xreallocarray(w->roots, w->nroots + 1, sizeof(*w->roots));
	size_t ri = w->nroots++;
	struct root *rt = &w->roots[ri];
	memset(rt, 0, sizeof(*rt));
	rt->given = xstrdup(path);
	rt->dir = dir;
	rt->fname = xstrdup(fname);
	rt->wd = -1;
	int r = add_root(w, ri, false, 0, err);
	if (r < 0) { /* dropped again: the next call retries */
		free(rt->given);
		free(rt->dir);
		free(rt->fname);
		w->nroots--;
	}
	return r;
}

struct mq_mwatch *mq_mwatch_free(struct mq_mwatch *w)
{
	if (!w)
		return NULL;
	if (w->fd >= 0)
		close(w->fd); /* drops every watch with it */
	for (size_t i = 0; i < w->nw; i++)
		watch_release(&w->w[i]);
	free(w->w);
	for (size_t i = 0; i < w->nroots; i++) {
		free(w->roots[i].given);
		free(w->roots[i].dir);
		free(w->roots[i].fname);
	}
	free(w->roots);
	for (size_t i = 0; i < w->nwr; i++)
		free(w->wr[i].key);
	free(w->wr);
	mq_strv_clear(&w->changed);
	free(w);
	return NULL;
}

int mq_mwatch_fd(const struct mq_mwatch *w)
{
	return w ? w->fd : -1;
}

bool mq_mwatch_pending(const struct mq_mwatch *w)
{
	return w && w->pending;
}

bool mq_mwatch_overflowed(const struct mq_mwatch *w)
{
	return w && w->overflow;
}

int64_t mq_mwatch_deadline(const struct mq_mwatch *w)
{
	if (!w || !w->pending)
		return -1;
	int64_t d = w->last_event + w->settle_ms;
	if (w->nwr > 0) {
		/* the caller's timer wakes at the writer cap to re-check; a close
		 * before that is an event and re-arms anyway */
		int64_t cap = first_writer(w) + w->max_writer_wait_ms;
		if (cap > d)
			d = cap;
	}
	return d;
}

bool mq_mwatch_due(const struct mq_mwatch *w, int64_t now)
{
	if (!w || !w->pending || now < w->last_event + w->settle_ms)
		return false;
	return w->nwr == 0 || now >= first_writer(w) + w->max_writer_wait_ms;
}

void mq_mwatch_consume(struct mq_mwatch *w)
{
	if (!w)
		return;
	w->pending = false;
	w->overflow = false;
	mq_strv_clear(&w->changed); /* writers still open stay tracked */
}

const struct mq_strv *mq_mwatch_changed(const struct mq_mwatch *w)
{
	static const struct mq_strv empty = MQ_STRV_INIT;
	return w ? &w->changed : &empty;
}

size_t mq_mwatch_nwatches(const struct mq_mwatch *w)
{
	return w ? w->nw : 0;
}
