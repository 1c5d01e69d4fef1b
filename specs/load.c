/* load.c - walking -f paths, files -> documents -> specs, and the public
 * loading entry points of spec.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "specs/cache.h"
#include "specs/canonical.h"
#include "specs/extends.h"
#include "specs/fields.h"
#include "specs/hosts.h"
#include "specs/load.h"
#include "specs/value.h"
#include "specs/yamlread.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/strmap.h"
#include "util/xalloc.h"

/* ---- documents -> specs ------------------------------------------------ */

static struct mq_spec *spec_new(const char *display_name, const char *abs_file, const char *source)
{
	struct mq_spec *spec = xcalloc(1, sizeof(*spec));
	spec->file = xstrdup(display_name);
	spec->abs_file = xstrdup(abs_file);
	spec->source = xstrdup_null(source);
	spec->binary = xstrdup(MQ_DEFAULT_BINARY);
	spec->stop_timeout_ms = MQ_DEFAULT_STOP_TIMEOUT_MS;
	return spec;
}

int mq_spec_parse_internal(const char *buf, size_t len, const char *display_name, const char *abs_file,
			   const char *base_dir, const char *source, struct mq_spec_list *out,
			   struct mq_diags *d, bool *incomplete, struct mq_bases *bases)
{
	struct mq_ynode **docs = NULL;
	size_t n_docs = 0;
	size_t before = d->n;
	if (mq_yaml_parse(buf, len, display_name, d, &docs, &n_docs) < 0)
		*incomplete = true;
	for (size_t i = 0; i < n_docs; i++) {
		struct mq_ynode *root = docs[i];
		struct mq_pctx c = { .file = display_name, .base_dir = base_dir, .d = d };
		if (root->type != MQ_YN_MAP) {
			mq_err_expect(&c, root, "a manifest", "a mapping of keys such as name and memory");
			*incomplete = true;
		} else {
			struct mq_spec *spec = spec_new(display_name, abs_file, source);
			struct mq_spec_extra *x = xcalloc(1, sizeof(*x));
			spec->line = root->line;
			spec->col = root->col;
			x->name = (struct mq_pos){ root->line, root->col, NULL };
			struct mq_extends_result ext = { 0 };
			int er = mq_extends_resolve(bases, root, display_name, abs_file, base_dir, d, &ext);
			mq_spec_parse_document(&c, root, spec, x);
			mq_strv_extend(&spec->bases, &ext.bases);
			mq_strv_extend(&spec->bases_abs, &ext.bases_abs);
			mq_extends_result_release(&ext);
			mq_extends_origins(root, &spec->origin_keys, &spec->origin_files);
			if (!spec->name)
				*incomplete = true; /* a vm whose name we could not read */
			if (c.errors == 0 && er == 0)
				mq_spec_make_canonical(spec);
			mq_spec_list_push(out, spec, x);
		}
		mq_ynode_free(root);
	}
	free(docs);
	return d->n > before ? -EINVAL : 0;
}

/* mq_spec_parse_buffer, storing a valid result in the cache `c` (when not
 * NULL) under manifest `f` with stat `st`. */
/* Move the parsed specs of l into set (with the bases they read) and free l. */
static void add_to_set(struct mq_specset *set, struct mq_spec_list *l)
{
	set->specs = xreallocarray(set->specs, set->n + l->n + 1, sizeof(*set->specs));
	for (size_t i = 0; i < l->n; i++) {
		for (size_t j = 0; j < l->v[i]->bases_abs.n; j++)
			if (!mq_strv_contains(&set->bases, l->v[i]->bases_abs.v[j]))
				mq_strv_push(&set->bases, l->v[i]->bases_abs.v[j]);
		set->specs[set->n++] = l->v[i];
		mq_spec_extra_free(l->x[i]);
	}
	free(l->v);
	free(l->x);
}

static int parse_buffer(const char *buf, size_t len, const char *display_name, const char *base_dir,
			const char *source, struct mq_specset *set, struct mq_strv *diags, const struct mq_load_opts *o,
			const struct mq_manifest_file *f, const struct stat *st)
{
	struct mq_mcache *c = o ? o->cache : NULL;
	if (!display_name)
		display_name = "<input>";
	char *cwd = getcwd(NULL, 0);
	if (!cwd)
		cwd = xstrdup("/");
	char *base = base_dir ? mq_path_join(cwd, base_dir) : xstrdup(cwd);
	const char *slash = strrchr(display_name, '/');
	char *abs = mq_path_join(base, slash ? slash + 1 : display_name);
	struct mq_diags d = { 0 };
	struct mq_spec_list l = { 0 };
	bool incomplete = false;
	struct mq_bases *bases = mq_bases_new();
	mq_spec_parse_internal(buf ? buf : "", buf ? len : 0, display_name, abs, base, source, &l, &d, &incomplete,
			       bases);
	free(cwd);
	free(base);
	free(abs);
	if (d.n > 0) {
		/* the bases are still worth watching: fixing one fixes this file */
		for (size_t i = 0; i < l.n; i++)
			for (size_t j = 0; j < l.v[i]->bases_abs.n; j++)
				if (!mq_strv_contains(&set->bases, l.v[i]->bases_abs.v[j]))
					mq_strv_push(&set->bases, l.v[i]->bases_abs.v[j]);
		mq_diags_flush(&d, diags);
		mq_spec_list_release(&l);
		mq_bases_free(bases);
		return -EINVAL;
	}
	if (c && f && st && !incomplete)
		mq_mcache_store(c, f->display, f->abs, f->source, st, buf ? buf : "", buf ? len : 0, &l, 0);
	if (o && o->light)
		for (size_t i = 0; i < l.n; i++)
			if (l.v[i]->canonical && o->light(l.v[i], o->ud))
				mq_spec_lighten(l.v[i]);
	mq_bases_free(bases);
	add_to_set(set, &l);
	return 0;
}

int mq_spec_parse_buffer(const char *buf, size_t len, const char *display_name, const char *base_dir,
			 const char *source, struct mq_specset *set, struct mq_strv *diags)
{
	return parse_buffer(buf, len, display_name, base_dir, source, set, diags, NULL, NULL, NULL);
}

int mq_spec_parse_file(const struct mq_load_opts *o, const struct mq_manifest_file *f, const struct stat *st,
		       const char *buf, size_t len, struct mq_specset *set, struct mq_strv *diags)
{
	char *dir = mq_path_dirname(f->abs);
	int r = parse_buffer(buf, len, f->display, dir, f->source, set, diags, o, f, st);
	free(dir);
	return r;
}

int mq_spec_load_cached(const struct mq_load_opts *o, const struct mq_manifest_file *f, const struct stat *st,
			struct mq_specset *set, char **content, size_t *len)
{
	struct mq_mcache *c = o ? o->cache : NULL;
	if (content) {
		*content = NULL;
		*len = 0;
	}
	if (!c)
		return 0;
	char *buf = NULL;
	size_t blen = 0;
	const struct mq_mcache_entry *e = mq_mcache_lookup(c, f->display, f->abs, f->source, st, &buf, &blen);
	free(buf); /* on a miss the caller reads the file itself, as it always did */
	if (!e)
		return 0;
	if (content && mq_mcache_content(e, f->abs, content, len) < 0)
		return 0;
	struct mq_spec_list l = { 0 };
	if (mq_mcache_emit(c, e, o->light, o->ud, &l) < 0) {
		if (content) {
			free(*content);
			*content = NULL;
			*len = 0;
		}
		return 0;
	}
	add_to_set(set, &l);
	return 1;
}

/* ---- spec lists ----------------------------------------------------- */

void mq_spec_list_push(struct mq_spec_list *l, struct mq_spec *s, struct mq_spec_extra *x)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 8;
		l->v = xreallocarray(l->v, l->alloc, sizeof(*l->v));
		l->x = xreallocarray(l->x, l->alloc, sizeof(*l->x));
	}
	l->v[l->n] = s;
	l->x[l->n] = x;
	l->n++;
}

void mq_spec_list_release(struct mq_spec_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		mq_spec_free(l->v[i]);
		mq_spec_extra_free(l->x[i]);
	}
	free(l->v);
	free(l->x);
	l->v = NULL;
	l->x = NULL;
	l->n = l->alloc = 0;
}

/* ---- walking -------------------------------------------------------- */

struct walk {
	struct mq_diags *d;
	struct mq_spec_list specs;
	struct mq_strv seen; /* realpaths of manifests already read */
	struct mq_strmap seen_map; /* the same, for lookups */
	bool incomplete;
	const struct mq_load_opts *o; /* cache and light specs, or NULL */
	struct mq_manifest_list *list; /* list-only mode: record files, parse nothing */
	struct mq_bases *bases;
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static bool ignored_name(const char *name)
{
	size_t n = strlen(name);
	if (name[0] == '.') /* dotfiles, dot-directories, .#lock files */
		return true;
	if (n && name[n - 1] == '~')
		return true;
	if (name[0] == '#' && n > 1 && name[n - 1] == '#')
		return true;
	return ends_with(name, ".swp") || ends_with(name, ".swx") || ends_with(name, ".tmp");
}

bool mq_manifest_name_ok(const char *name)
{
	return !ignored_name(name) && (ends_with(name, ".yaml") || ends_with(name, ".yml"));
}

/* `abs` is the file's realpath when the caller knows it (NULL: look it
 * up), `st` its stat when known. */
static void load_file(struct walk *w, const char *display, const char *source, const char *abs_known,
		      const struct stat *st_known)
{
	if (mq_path_in_bases_dir(display))
		return; /* a shared base: read only through `extends` */
	char *abs = abs_known ? xstrdup(abs_known) : realpath(display, NULL);
	if (!abs) {
		char *e = mq_strerror_lower(errno);
		mq_diags_add(w->d, display, 0, 0, "%s", e);
		free(e);
		w->incomplete = true;
		return;
	}
	if (!mq_strmap_add(&w->seen_map, abs, NULL)) {
		free(abs);
		return;
	}
	mq_strv_push_take(&w->seen, abs); /* abs stays valid (borrowed) until the walk ends */
	if (w->list) {
		struct mq_manifest_list *l = w->list;
		if (l->n == l->alloc) {
			l->alloc = l->alloc ? l->alloc * 2 : 64;
			l->v = xreallocarray(l->v, l->alloc, sizeof(*l->v));
		}
		l->v[l->n].display = xstrdup(display);
		l->v[l->n].abs = xstrdup(abs);
		l->v[l->n].source = xstrdup(source);
		l->v[l->n].have_st = st_known != NULL;
		if (st_known)
			l->v[l->n].st = *st_known;
		l->n++;
		return;
	}
	struct mq_mcache *cache = w->o ? w->o->cache : NULL;
	struct stat st;
	bool have_st = false;
	if (cache) {
		if (st_known) {
			st = *st_known;
			have_st = true;
		} else {
			have_st = stat(display, &st) == 0;
		}
	}
	char *buf = NULL;
	size_t len = 0;
	if (have_st) {
		const struct mq_mcache_entry *e = mq_mcache_lookup(cache, display, abs, source, &st, &buf, &len);
		if (e && mq_mcache_emit(cache, e, w->o->light, w->o->ud, &w->specs) == 0)
			return;
	}
	if (!buf && mq_yaml_read_file(display, w->d, &buf, &len) < 0) {
		w->incomplete = true;
		return;
	}
	char *dir = mq_path_dirname(abs);
	bool inc = false;
	size_t before = w->d->n, from = w->specs.n;
	mq_spec_parse_internal(buf, len, display, abs, dir, source, &w->specs, w->d, &inc, w->bases);
	if (inc)
		w->incomplete = true;
	if (have_st && !inc && w->d->n == before) /* errors are never cached */
		mq_mcache_store(cache, display, abs, source, &st, buf, len, &w->specs, from);
	if (w->o && w->o->light && w->d->n == before)
		for (size_t i = from; i < w->specs.n; i++)
			if (w->specs.v[i]->canonical && w->o->light(w->specs.v[i], w->o->ud))
				mq_spec_lighten(w->specs.v[i]);
	free(dir);
	free(buf);
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* sb = dir and the slash mq_path_join(dir, name) puts before a name */
static void join_prefix(struct mq_strbuf *sb, const char *dir)
{
	mq_strbuf_adds(sb, dir);
	if (*dir && dir[strlen(dir) - 1] != '/')
		mq_strbuf_adds(sb, "/");
}

static void walk_dir(struct walk *w, const char *display, const char *source, int level)
{
	if (level > MQ_MANIFEST_MAX_DEPTH) {
		mq_diags_add(w->d, display, 0, 0, "directories nested too deep (limit %d levels)",
			     MQ_MANIFEST_MAX_DEPTH);
		w->incomplete = true;
		return;
	}
	struct dirent **ents = NULL;
	int n = scandir(display, &ents, NULL, name_cmp);
	if (n < 0) {
		char *e = mq_strerror_lower(errno);
		mq_diags_add(w->d, display, 0, 0, "cannot read directory: %s", e);
		free(e);
		w->incomplete = true;
		return;
	}
	/* the directory's realpath, once: a file in it that is not a symlink
	 * has realpath dir/name (realpath per file costs a readlink per
	 * component, which adds up over thousands of manifests) */
	char *rdir = realpath(display, NULL);
	/* stat relative to the directory: no path walk from / per file */
	int dfd = open(display, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* display/name and rdir/name (as mq_path_join), in two buffers reused per name */
	struct mq_strbuf pb = MQ_STRBUF_INIT, ab = MQ_STRBUF_INIT;
	mq_strbuf_init(&pb);
	mq_strbuf_init(&ab);
	join_prefix(&pb, display);
	size_t pl = pb.len, al = 0;
	if (rdir) {
		join_prefix(&ab, rdir);
		al = ab.len;
	}
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		if (!ignored_name(name) && !(level == 0 && strcmp(name, MQ_HOSTS_FILE) == 0)) {
			mq_strbuf_setlen(&pb, pl);
			mq_strbuf_adds(&pb, name);
			const char *p = pb.buf;
			struct stat st;
			if ((dfd >= 0 ? fstatat(dfd, name, &st, 0) : stat(p, &st)) == 0) {
				if (S_ISDIR(st.st_mode)) {
					walk_dir(w, p, source, level + 1);
				} else if (S_ISREG(st.st_mode) && (ends_with(name, ".yaml") || ends_with(name, ".yml"))) {
					unsigned char dt = ents[i]->d_type;
					struct stat lst;
					bool plain = rdir && (dt == DT_REG || (dt == DT_UNKNOWN && dfd >= 0 &&
										  fstatat(dfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
										  S_ISREG(lst.st_mode)));
					if (plain) {
						mq_strbuf_setlen(&ab, al);
						mq_strbuf_adds(&ab, name);
					}
					load_file(w, p, source, plain ? ab.buf : NULL, &st);
				}
			}
		}
		free(ents[i]);
	}
	mq_strbuf_release(&pb);
	mq_strbuf_release(&ab);
	if (dfd >= 0)
		close(dfd);
	free(rdir);
	free(ents);
}

static void walk_paths(struct walk *wp, struct mq_diags *d, const char *const *paths, size_t n_paths,
		       struct mq_strv *sources)
{
	for (size_t i = 0; i < n_paths; i++) {
		/* "vms/" and "vms" both display as "vms/web.yaml" */
		char *display = xstrdup(paths[i]);
		size_t l = strlen(display);
		while (l > 1 && display[l - 1] == '/')
			display[--l] = '\0';
		struct stat st;
		if (l == 0 || stat(display, &st) < 0) {
			int e = l == 0 ? ENOENT : errno;
			char *es = mq_strerror_lower(e);
			mq_diags_add(d, paths[i], 0, 0, "%s", es);
			free(es);
			free(display);
			wp->incomplete = true;
			continue;
		}
		char *source = realpath(display, NULL);
		if (!source)
			source = xstrdup(display);
		mq_strv_push(sources, source);
		if (S_ISDIR(st.st_mode))
			walk_dir(wp, display, source, 0);
		else if (S_ISREG(st.st_mode))
			load_file(wp, display, source, NULL, &st);
		else
			mq_diags_add(d, display, 0, 0, "not a regular file or directory");
		free(source);
		free(display);
	}

}

int mq_specset_load(const char *const *paths, size_t n_paths, struct mq_specset **out, struct mq_strv *diags)
{
	return mq_specset_load_opts(paths, n_paths, NULL, out, diags);
}

int mq_specset_load_opts(const char *const *paths, size_t n_paths, const struct mq_load_opts *opts,
			 struct mq_specset **out, struct mq_strv *diags)
{
	struct mq_diags d = { 0 };
	struct walk w = { .d = &d, .bases = mq_bases_new(), .o = opts };
	struct mq_specset *set = mq_specset_new();
	size_t expect = mq_mcache_size(opts ? opts->cache : NULL);
	if (expect > 0) {
		/* sized once for the manifests the cache knows: no growing tables */
		mq_strmap_reserve(&w.seen_map, expect + 16);
		w.seen.alloc = expect + 16;
		w.seen.v = xreallocarray(NULL, w.seen.alloc, sizeof(*w.seen.v));
		w.seen.v[0] = NULL;
		w.specs.alloc = expect + 16;
		w.specs.v = xreallocarray(NULL, w.specs.alloc, sizeof(*w.specs.v));
		w.specs.x = xreallocarray(NULL, w.specs.alloc, sizeof(*w.specs.x));
	}

	walk_paths(&w, &d, paths, n_paths, &set->sources);
	mq_hosts_read(paths, n_paths, &set->hosts, &d);

	size_t *order = xcalloc(w.specs.n + 1, sizeof(*order));
	bool ordered = mq_specs_check_internal(w.specs.v, w.specs.x, w.specs.n, w.incomplete, &d, order);
	mq_hosts_check_specs(set->hosts, w.specs.v, w.specs.x, w.specs.n, &d);
	mq_strv_clear(&w.seen);
	mq_strmap_release(&w.seen_map);

	/* every base in use; a nameless file outside _bases/ that some vm
	 * extends was read as a vm too: say where it belongs */
	for (size_t i = 0; i < w.specs.n; i++)
		for (size_t j = 0; j < w.specs.v[i]->bases_abs.n; j++)
			if (!mq_strv_contains(&set->bases, w.specs.v[i]->bases_abs.v[j]))
				mq_strv_push(&set->bases, w.specs.v[i]->bases_abs.v[j]);
	for (size_t i = 0; i < w.specs.n; i++) {
		const struct mq_spec *s = w.specs.v[i];
		if (!s->name && mq_strv_contains(&set->bases, s->abs_file))
			mq_diags_add(&d, s->file, s->line, s->col,
				     "this file is extended as a base but sits outside a _bases/ directory, so it is "
				     "also read as a vm (move it into a directory named _bases)");
	}

	if (d.n > 0) {
		free(order);
		mq_diags_flush(&d, diags);
		mq_spec_list_release(&w.specs);
		mq_specset_free(set);
		mq_bases_free(w.bases);
		return -EINVAL;
	}
	mq_diags_release(&d);
	mq_bases_free(w.bases);
	set->specs = xreallocarray(set->specs, w.specs.n + 1, sizeof(*set->specs));
	for (size_t i = 0; i < w.specs.n; i++) {
		set->specs[set->n++] = w.specs.v[i];
		mq_spec_extra_free(w.specs.x[i]);
	}
	free(w.specs.v);
	free(w.specs.x);
	/* sorting: the checks ran above, over the same specs with their
	 * positions, and sorted the names already */
	if (ordered)
		mq_specs_reorder(set->specs, set->n, order);
	else
		mq_specset_sort(set);
	free(order);
	*out = set;
	return 0;
}

int mq_manifest_list(const char *const *paths, size_t n_paths, struct mq_manifest_list *out, struct mq_strv *diags)
{
	struct mq_diags d = { 0 };
	struct walk w = { .d = &d, .list = out };
	memset(out, 0, sizeof(*out));
	walk_paths(&w, &d, paths, n_paths, &out->sources);
	mq_strv_clear(&w.seen);
	mq_strmap_release(&w.seen_map);
	if (d.n > 0) {
		mq_diags_flush(&d, diags);
		return -EINVAL;
	}
	mq_diags_release(&d);
	return 0;
}

void mq_manifest_list_release(struct mq_manifest_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].display);
		free(l->v[i].abs);
		free(l->v[i].source);
	}
	free(l->v);
	mq_strv_clear(&l->sources);
	memset(l, 0, sizeof(*l));
}
