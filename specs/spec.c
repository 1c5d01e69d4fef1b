/* spec.c - YAML node tree -> typed, validated struct mq_spec; set-level
 * checks; object lifetimes and enum names. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "specs/internal.h"
#include "specs/spec.h"
#include "util/parse.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define MIB (1024ULL * 1024ULL)
#define MEMORY_MAX (64ULL << 40)   /* 64T */
#define DISK_MAX (1ULL << 50)      /* 1P */
#define STOP_TIMEOUT_MIN 100ULL    /* ms */
#define STOP_TIMEOUT_MAX 3600000ULL /* 1h */

/* ---- enum names ----------------------------------------------------- */

static const char *const desired_names[] = { "running", "stopped" };
static const char *const accel_names[] = { "auto", "kvm", "tcg" };
static const char *const serial_names[] = { "log", "none" };
static const char *const restart_names[] = { "on-failure", "always", "never" };
static const char *const storage_type_names[] = { "qcow2", "raw", "virtfs" };
static const char *const iface_names[] = { "virtio", "sata", "ide", "scsi", "none" };
static const char *const security_models[] = { "none", "passthrough", "mapped", "mapped-xattr", "mapped-file" };

#define ENUM_STR(arr, v) ((size_t)(v) < MQ_ARRAY_SIZE(arr) ? (arr)[v] : "unknown")

const char *mq_desired_str(enum mq_desired d) { return ENUM_STR(desired_names, d); }
const char *mq_accel_str(enum mq_accel a) { return ENUM_STR(accel_names, a); }
const char *mq_restart_str(enum mq_restart r) { return ENUM_STR(restart_names, r); }
const char *mq_storage_type_str(enum mq_storage_type t) { return ENUM_STR(storage_type_names, t); }
const char *mq_iface_str(enum mq_iface i) { return ENUM_STR(iface_names, i); }

/* ---- lifetimes ------------------------------------------------------ */

struct mq_spec *mq_spec_free(struct mq_spec *spec)
{
	if (!spec)
		return NULL;
	free(spec->file);
	free(spec->abs_file);
	free(spec->source);
	free(spec->name);
	free(spec->binary);
	free(spec->machine);
	free(spec->display);
	free(spec->vga);
	for (size_t i = 0; i < spec->n_storage; i++) {
		struct mq_storage *s = &spec->storage[i];
		free(s->name);
		free(s->file);
		free(s->backing_file);
		free(s->backing_format);
		free(s->path);
		free(s->mount_tag);
		free(s->security_model);
	}
	free(spec->storage);
	for (size_t i = 0; i < spec->n_network; i++) {
		free(spec->network[i].type);
		free(spec->network[i].forwards);
	}
	free(spec->network);
	mq_strv_clear(&spec->depends_on);
	mq_strv_clear(&spec->args);
	mq_strv_clear(&spec->arguments);
	free(spec->canonical);
	free(spec);
	return NULL;
}

struct mq_spec_extra *mq_spec_extra_free(struct mq_spec_extra *x)
{
	if (x) {
		free(x->deps);
		free(x->fwds);
		free(x);
	}
	return NULL;
}

struct mq_specset *mq_specset_new(void)
{
	return xcalloc(1, sizeof(struct mq_specset));
}

struct mq_specset *mq_specset_free(struct mq_specset *set)
{
	if (!set)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		mq_spec_free(set->specs[i]);
	free(set->specs);
	mq_strv_clear(&set->sources);
	free(set);
	return NULL;
}

const struct mq_spec *mq_specset_find(const struct mq_specset *set, const char *name)
{
	if (!set || !name)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		if (set->specs[i]->name && strcmp(set->specs[i]->name, name) == 0)
			return set->specs[i];
	return NULL;
}

/* ---- validation context --------------------------------------------- */

struct ctx {
	const char *file;
	const char *base_dir;
	struct mq_diags *d;
	int errors;
};

static void err_at(struct ctx *c, const struct mq_ynode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err_at(struct ctx *c, const struct mq_ynode *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	mq_diags_add(c->d, c->file, n->line, n->col, "%s", msg);
	free(msg);
	c->errors++;
}

/* A short quotable copy of hostile text: at most 60 bytes, cut on a UTF-8
 * character boundary. */
static char *clip(const char *s)
{
	size_t n = strlen(s);
	if (n <= 60)
		return xstrdup(s);
	size_t cut = 57;
	while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
		cut--;
	char *r = xmalloc(cut + 4);
	memcpy(r, s, cut);
	memcpy(r + cut, "...", 4);
	return r;
}

/* What a value is, for "got ..." : 'text', a list, a mapping or null. */
static char *got(const struct mq_ynode *n)
{
	if (n && n->type == MQ_YN_SCALAR && !mq_ynode_is_null(n)) {
		char *cl = clip(n->text);
		char *r = xasprintf("'%s'", cl);
		free(cl);
		return r;
	}
	return xstrdup(mq_ynode_kind(n));
}

static void err_expect(struct ctx *c, const struct mq_ynode *n, const char *what, const char *expected)
{
	char *g = got(n);
	err_at(c, n, "%s must be %s, got %s", what, expected, g);
	free(g);
}

static bool is_scalar(const struct mq_ynode *n)
{
	return n && n->type == MQ_YN_SCALAR && !mq_ynode_is_null(n);
}

/* Non-empty scalar text, or an error naming `what`. */
static const char *want_string(struct ctx *c, const struct mq_ynode *n, const char *what)
{
	if (is_scalar(n) && n->len > 0)
		return n->text;
	err_expect(c, n, what, "a non-empty string");
	return NULL;
}

static bool valid_name(const char *s, bool allow_underscore)
{
	size_t n = strlen(s);
	if (n == 0 || n > MQ_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
		if (i > 0 && (ch == '-' || (allow_underscore && ch == '_')))
			ok = true;
		if (!ok)
			return false;
	}
	return true;
}

static bool parse_enum(struct ctx *c, const struct mq_ynode *n, const char *what, const char *const *names,
		       size_t count, int *out)
{
	if (is_scalar(n)) {
		for (size_t i = 0; i < count; i++)
			if (strcmp(n->text, names[i]) == 0) {
				*out = (int)i;
				return true;
			}
	}
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	for (size_t i = 0; i < count; i++)
		mq_strbuf_addf(&sb, "%s%s", i ? ", " : "", names[i]);
	char *g = got(n);
	const char *hint = is_scalar(n) ? mq_did_you_mean(n->text, names, count) : NULL;
	if (hint)
		err_at(c, n, "%s must be one of %s, got %s (did you mean '%s'?)", what, sb.buf, g, hint);
	else
		err_at(c, n, "%s must be one of %s, got %s", what, sb.buf, g);
	free(g);
	mq_strbuf_release(&sb);
	return false;
}

static bool parse_bool(struct ctx *c, const struct mq_ynode *n, const char *what, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" };
	if (is_scalar(n)) {
		for (size_t i = 0; i < MQ_ARRAY_SIZE(yes); i++) {
			if (strcmp(n->text, yes[i]) == 0) {
				*out = true;
				return true;
			}
			if (strcmp(n->text, no[i]) == 0) {
				*out = false;
				return true;
			}
		}
	}
	err_expect(c, n, what, "true or false");
	return false;
}

/* Resolve a path from the manifest: relative to the manifest's directory,
 * symlinks followed, refused inside system directories. */
static char *want_path(struct ctx *c, const struct mq_ynode *n, const char *what)
{
	const char *text = want_string(c, n, what);
	if (!text)
		return NULL;
	char *joined = text[0] == '/' ? xstrdup(text) : mq_path_join(c->base_dir, text);
	char *resolved = mq_path_resolve(joined);
	free(joined);
	if (mq_path_is_system(resolved)) {
		char *cl = clip(text);
		err_at(c, n, "'%s' resolves to '%s', inside a system directory; put disk images and shares elsewhere",
		       cl, resolved);
		free(cl);
		free(resolved);
		return NULL;
	}
	return resolved;
}

/* Look up keys of a mapping against a table; unknown keys are reported
 * with a did-you-mean.  vals[i] = value of keys[i] (NULL when absent),
 * knodes[i] = its key node. */
static void collect_keys(struct ctx *c, const struct mq_ynode *map, const char *const *keys, size_t nkeys,
			 const struct mq_ynode **vals, const struct mq_ynode **knodes, const char *where)
{
	for (size_t i = 0; i < nkeys; i++)
		vals[i] = knodes[i] = NULL;
	for (size_t p = 0; p + 1 < map->n; p += 2) {
		const struct mq_ynode *k = map->kids[p], *v = map->kids[p + 1];
		size_t i;
		for (i = 0; i < nkeys; i++)
			if (strcmp(k->text, keys[i]) == 0)
				break;
		if (i < nkeys) {
			vals[i] = v;
			knodes[i] = k;
			continue;
		}
		char *cl = clip(k->text);
		const char *hint = mq_did_you_mean(k->text, keys, nkeys);
		if (hint)
			err_at(c, k, "unknown key '%s'%s (did you mean '%s'?)", cl, where, hint);
		else
			err_at(c, k, "unknown key '%s'%s", cl, where);
		free(cl);
	}
}

struct textref {
	const char *text;
	size_t idx;
};

static int textref_cmp(const void *a, const void *b)
{
	const struct textref *x = a, *y = b;
	int c = strcmp(x->text, y->text);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* first[i] = index of the first earlier entry with the same text, or -1
 * (NULL texts never match).  O(n log n): lists come from hostile input. */
static long *find_dups(const char *const *texts, size_t n)
{
	long *first = xcalloc(n + 1, sizeof(long));
	struct textref *refs = xcalloc(n + 1, sizeof(*refs));
	size_t nr = 0;
	for (size_t i = 0; i < n; i++) {
		first[i] = -1;
		if (texts[i])
			refs[nr++] = (struct textref){ texts[i], i };
	}
	if (nr > 1)
		qsort(refs, nr, sizeof(*refs), textref_cmp);
	for (size_t i = 1, f = 0; i < nr; i++) {
		if (strcmp(refs[i].text, refs[f].text) == 0)
			first[refs[i].idx] = (long)refs[f].idx;
		else
			f = i;
	}
	free(refs);
	return first;
}

/* ---- sizes, numbers, durations -------------------------------------- */

static bool parse_memory(struct ctx *c, const struct mq_ynode *n, uint64_t *out)
{
	uint64_t v;
	if (!is_scalar(n) || mq_parse_size(n->text, MIB, &v) < 0) {
		if (is_scalar(n) && mq_parse_size(n->text, MIB, &v) == -ERANGE)
			err_expect(c, n, "'memory'", "at most 64T");
		else
			err_expect(c, n, "'memory'", "a size such as 2048 (MiB) or 4G");
		return false;
	}
	if (v < MIB) {
		err_expect(c, n, "'memory'", "at least 1M");
		return false;
	}
	if (v % MIB) {
		err_expect(c, n, "'memory'", "a whole number of MiB");
		return false;
	}
	if (v > MEMORY_MAX) {
		err_expect(c, n, "'memory'", "at most 64T");
		return false;
	}
	*out = v;
	return true;
}

static bool parse_disk_size(struct ctx *c, const struct mq_ynode *n, const char *what, uint64_t *out)
{
	uint64_t v;
	int r = is_scalar(n) ? mq_parse_size(n->text, 1, &v) : -EINVAL;
	if (r < 0) {
		err_expect(c, n, what, r == -ERANGE ? "at most 1P" : "a size such as 20G (a bare number is bytes)");
		return false;
	}
	if (v < MIB) {
		err_expect(c, n, what, "at least 1M");
		return false;
	}
	if (v > DISK_MAX) {
		err_expect(c, n, what, "at most 1P");
		return false;
	}
	*out = v;
	return true;
}

/* ---- storage -------------------------------------------------------- */

enum { SK_NAME, SK_TYPE, SK_FILE, SK_SIZE, SK_IFACE, SK_BFILE, SK_BFMT, SK_PATH, SK_TAG, SK_SECM, SK_RO,
       SK_OPTIONS, SK_COUNT };
static const char *const storage_keys[SK_COUNT] = {
	"name", "type", "file", "size", "interface", "backing_file", "backing_format",
	"path", "mount_tag", "security_model", "readonly", "options",
};
static const char *const virtfs_option_keys[] = { "mount_tag", "security_model", "readonly" };

static void parse_storage_item(struct ctx *c, const struct mq_ynode *item, size_t idx, struct mq_storage *s,
			       const struct mq_ynode **name_node)
{
	const struct mq_ynode *v[SK_COUNT], *k[SK_COUNT];
	const char *pre_name = NULL;
	for (size_t p = 0; p + 1 < item->n; p += 2)
		if (strcmp(item->kids[p]->text, "name") == 0 && is_scalar(item->kids[p + 1]) &&
		    valid_name(item->kids[p + 1]->text, true))
			pre_name = item->kids[p + 1]->text;
	char *where = pre_name ? xasprintf(" in storage '%s'", pre_name) : xasprintf(" in storage item %zu", idx + 1);
	collect_keys(c, item, storage_keys, SK_COUNT, v, k, where);
	free(where);

	char *label = xasprintf("storage item %zu", idx + 1);
	if (!v[SK_NAME]) {
		err_at(c, item, "storage item %zu needs a 'name'", idx + 1);
	} else if (!is_scalar(v[SK_NAME]) || !valid_name(v[SK_NAME]->text, true)) {
		err_expect(c, v[SK_NAME], "storage 'name'",
			   "a name matching [a-z0-9][a-z0-9_-]{0,62} (lowercase letters, digits, '-' and '_')");
	} else {
		*name_node = v[SK_NAME];
		s->name = xstrdup(v[SK_NAME]->text);
		free(label);
		label = xasprintf("storage '%s'", s->name);
	}

	int t = MQ_STORAGE_QCOW2;
	if (v[SK_TYPE] && !mq_ynode_is_null(v[SK_TYPE])) {
		char *what = xasprintf("'type' of %s", label);
		if (!parse_enum(c, v[SK_TYPE], what, storage_type_names, MQ_ARRAY_SIZE(storage_type_names), &t))
			t = -1;
		free(what);
	}
	if (t < 0) { /* unknown type: cannot tell which keys belong */
		free(label);
		return;
	}
	s->type = (enum mq_storage_type)t;
	bool virtfs = s->type == MQ_STORAGE_VIRTFS;

	for (int i = SK_FILE; i < SK_COUNT; i++) {
		bool for_virtfs = i >= SK_PATH;
		if (v[i] && for_virtfs != virtfs) {
			err_at(c, k[i], "'%s' is not valid for storage type %s (only for %s)", storage_keys[i],
			       storage_type_names[t], for_virtfs ? "virtfs" : "qcow2 and raw");
			v[i] = NULL;
		}
	}

	if (!virtfs) {
		if (v[SK_FILE] && !mq_ynode_is_null(v[SK_FILE])) {
			char *what = xasprintf("'file' of %s", label);
			s->file = want_path(c, v[SK_FILE], what);
			free(what);
		}
		if (v[SK_SIZE] && !mq_ynode_is_null(v[SK_SIZE])) {
			char *what = xasprintf("'size' of %s", label);
			parse_disk_size(c, v[SK_SIZE], what, &s->size);
			free(what);
		}
		bool has_file = v[SK_FILE] && !mq_ynode_is_null(v[SK_FILE]);
		bool has_size = v[SK_SIZE] && !mq_ynode_is_null(v[SK_SIZE]);
		if (!has_file && !has_size)
			err_at(c, item, "%s needs 'size' (to create the image) or 'file'", label);
		if (v[SK_IFACE] && !mq_ynode_is_null(v[SK_IFACE])) {
			char *what = xasprintf("'interface' of %s", label);
			int iface = 0;
			if (parse_enum(c, v[SK_IFACE], what, iface_names, MQ_ARRAY_SIZE(iface_names), &iface))
				s->interface = (enum mq_iface)iface;
			free(what);
		}
		bool has_backing = v[SK_BFILE] && !mq_ynode_is_null(v[SK_BFILE]);
		if (has_backing) {
			if (s->type != MQ_STORAGE_QCOW2) {
				err_at(c, k[SK_BFILE], "'backing_file' needs storage type qcow2, %s is raw", label);
			} else {
				char *what = xasprintf("'backing_file' of %s", label);
				s->backing_file = want_path(c, v[SK_BFILE], what);
				free(what);
			}
		}
		if (v[SK_BFMT] && !mq_ynode_is_null(v[SK_BFMT])) {
			if (!has_backing) {
				err_at(c, k[SK_BFMT], "'backing_format' is only valid with 'backing_file'");
			} else {
				char *what = xasprintf("'backing_format' of %s", label);
				const char *f = want_string(c, v[SK_BFMT], what);
				if (f)
					s->backing_format = xstrdup(f);
				free(what);
			}
		}
		free(label);
		return;
	}

	/* virtfs: mount_tag, security_model and readonly may also sit under
	 * `options:` (the Python maqet's placement), but not in both places. */
	const struct mq_ynode *ov[3] = { NULL, NULL, NULL }, *ok[3] = { NULL, NULL, NULL };
	if (v[SK_OPTIONS] && !mq_ynode_is_null(v[SK_OPTIONS])) {
		if (v[SK_OPTIONS]->type != MQ_YN_MAP) {
			char *what = xasprintf("'options' of %s", label);
			err_expect(c, v[SK_OPTIONS], what, "a mapping");
			free(what);
		} else {
			char *owhere = xasprintf(" in 'options' of %s", label);
			collect_keys(c, v[SK_OPTIONS], virtfs_option_keys, 3, ov, ok, owhere);
			free(owhere);
		}
	}
	for (int i = 0; i < 3; i++) {
		if (!ov[i])
			continue;
		if (v[SK_TAG + i]) {
			err_at(c, ok[i], "'%s' given both in %s and in its 'options' (first at line %d)",
			       virtfs_option_keys[i], label, k[SK_TAG + i]->line);
		} else {
			v[SK_TAG + i] = ov[i];
			k[SK_TAG + i] = ok[i];
		}
	}

	if (!v[SK_PATH] || mq_ynode_is_null(v[SK_PATH])) {
		err_at(c, item, "%s (virtfs) needs 'path', the host directory to share", label);
	} else {
		char *what = xasprintf("'path' of %s", label);
		s->path = want_path(c, v[SK_PATH], what);
		free(what);
	}
	if (!v[SK_TAG] || mq_ynode_is_null(v[SK_TAG])) {
		err_at(c, item, "%s (virtfs) needs 'mount_tag', the tag the guest mounts", label);
	} else {
		char *what = xasprintf("'mount_tag' of %s", label);
		const char *tag = want_string(c, v[SK_TAG], what);
		if (tag)
			s->mount_tag = xstrdup(tag);
		free(what);
	}
	int sm = 3; /* mapped-xattr */
	if (v[SK_SECM] && !mq_ynode_is_null(v[SK_SECM])) {
		char *what = xasprintf("'security_model' of %s", label);
		parse_enum(c, v[SK_SECM], what, security_models, MQ_ARRAY_SIZE(security_models), &sm);
		free(what);
	}
	s->security_model = xstrdup(security_models[sm]);
	if (v[SK_RO] && !mq_ynode_is_null(v[SK_RO])) {
		char *what = xasprintf("'readonly' of %s", label);
		parse_bool(c, v[SK_RO], what, &s->readonly);
		free(what);
	}
	free(label);
}

static void parse_storage(struct ctx *c, const struct mq_ynode *n, struct mq_spec *spec)
{
	if (n->type != MQ_YN_SEQ) {
		err_expect(c, n, "'storage'", "a list of mappings");
		return;
	}
	const struct mq_ynode **name_nodes = xcalloc(n->n + 1, sizeof(*name_nodes));
	spec->storage = xcalloc(n->n ? n->n : 1, sizeof(*spec->storage));
	for (size_t i = 0; i < n->n; i++) {
		const struct mq_ynode *item = n->kids[i];
		if (item->type != MQ_YN_MAP) {
			char *what = xasprintf("storage item %zu", i + 1);
			err_expect(c, item, what, "a mapping with 'name' and 'size' or 'file'");
			free(what);
			continue;
		}
		struct mq_storage *s = &spec->storage[spec->n_storage];
		parse_storage_item(c, item, i, s, &name_nodes[spec->n_storage]);
		spec->n_storage++;
	}
	const char **texts = xcalloc(spec->n_storage + 1, sizeof(*texts));
	for (size_t i = 0; i < spec->n_storage; i++)
		texts[i] = spec->storage[i].name;
	long *first = find_dups(texts, spec->n_storage);
	for (size_t i = 0; i < spec->n_storage; i++)
		if (first[i] >= 0)
			err_at(c, name_nodes[i], "duplicate storage name '%s' (first at line %d)", texts[i],
			       name_nodes[first[i]]->line);
	free(first);
	free(texts);
	free(name_nodes);
}

/* ---- network -------------------------------------------------------- */

static bool parse_forward(const char *s, struct mq_forward *f)
{
	const char *a = strchr(s, ':');
	if (!a)
		return false;
	const char *b = strchr(a + 1, ':');
	if (!b)
		return false;
	size_t pl = (size_t)(a - s);
	if (!((pl == 3 && strncmp(s, "tcp", 3) == 0) || (pl == 3 && strncmp(s, "udp", 3) == 0)))
		return false;
	char host[8];
	size_t hl = (size_t)(b - a - 1);
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, a + 1, hl);
	host[hl] = '\0';
	unsigned hp, gp;
	if (mq_parse_uint(host, 1, 65535, &hp) < 0 || mq_parse_uint(b + 1, 1, 65535, &gp) < 0)
		return false;
	memcpy(f->proto, s, 3);
	f->proto[3] = '\0';
	f->host_port = (uint16_t)hp;
	f->guest_port = (uint16_t)gp;
	return true;
}

static void parse_network(struct ctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	static const char *const keys[] = { "type", "forward" };
	if (n->type != MQ_YN_SEQ) {
		err_expect(c, n, "'network'", "a list of mappings such as {type: user, forward: [tcp:8080:80]}");
		return;
	}
	size_t n_fwd_total = 0;
	spec->network = xcalloc(n->n ? n->n : 1, sizeof(*spec->network));
	for (size_t i = 0; i < n->n; i++) {
		const struct mq_ynode *item = n->kids[i];
		if (item->type != MQ_YN_MAP) {
			char *what = xasprintf("network item %zu", i + 1);
			err_expect(c, item, what, "a mapping such as {type: user}");
			free(what);
			continue;
		}
		const struct mq_ynode *v[2], *k[2];
		collect_keys(c, item, keys, 2, v, k, " in network");
		struct mq_network *net = &spec->network[spec->n_network++];
		net->type = xstrdup("user");
		if (v[0] && !mq_ynode_is_null(v[0]) && !(is_scalar(v[0]) && strcmp(v[0]->text, "user") == 0))
			err_expect(c, v[0], "network 'type'", "user (the only type supported)");
		const struct mq_ynode *fw = v[1];
		if (!fw || mq_ynode_is_null(fw))
			continue;
		const struct mq_ynode *const *items = NULL;
		size_t count = 0;
		if (fw->type == MQ_YN_SEQ) {
			items = (const struct mq_ynode *const *)fw->kids;
			count = fw->n;
		} else if (fw->type == MQ_YN_SCALAR) {
			items = (const struct mq_ynode *const *)&v[1];
			count = 1;
		} else {
			err_expect(c, fw, "'forward'", "a list such as [tcp:8080:80]");
			continue;
		}
		net->forwards = xcalloc(count ? count : 1, sizeof(*net->forwards));
		for (size_t j = 0; j < count; j++) {
			const struct mq_ynode *f = items[j];
			struct mq_forward fwd;
			if (!is_scalar(f) || !parse_forward(f->text, &fwd)) {
				char *g = got(f);
				err_at(c, f,
				       "'forward' entries must look like tcp:HOSTPORT:GUESTPORT (tcp or udp, ports 1 to 65535), got %s",
				       g);
				free(g);
				continue;
			}
			net->forwards[net->n_forwards++] = fwd;
			x->fwds = xreallocarray(x->fwds, n_fwd_total + 1, sizeof(*x->fwds));
			x->fwds[n_fwd_total++] = (struct mq_pos){ f->line, f->col };
		}
	}
}

/* ---- string lists --------------------------------------------------- */

static void parse_depends(struct ctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	const struct mq_ynode *const *items;
	size_t count;
	if (n->type == MQ_YN_SEQ) {
		items = (const struct mq_ynode *const *)n->kids;
		count = n->n;
	} else if (is_scalar(n)) {
		items = &n;
		count = 1;
	} else {
		err_expect(c, n, "'depends_on'", "a list of vm names");
		return;
	}
	const char **texts = xcalloc(count + 1, sizeof(*texts));
	for (size_t i = 0; i < count; i++) {
		if (is_scalar(items[i]))
			texts[i] = items[i]->text;
		else
			err_expect(c, items[i], "'depends_on' entries", "vm names");
	}
	long *first = find_dups(texts, count);
	x->deps = xcalloc(count + 1, sizeof(*x->deps));
	for (size_t i = 0; i < count; i++) {
		const struct mq_ynode *it = items[i];
		if (!texts[i])
			continue;
		if (first[i] >= 0) {
			char *cl = clip(it->text);
			err_at(c, it, "'%s' is listed twice in 'depends_on' (first at line %d)", cl,
			       items[first[i]]->line);
			free(cl);
			continue;
		}
		x->deps[spec->depends_on.n] = (struct mq_pos){ it->line, it->col };
		mq_strv_push(&spec->depends_on, it->text);
	}
	free(first);
	free(texts);
}

static void parse_args(struct ctx *c, const struct mq_ynode *n, struct mq_spec *spec)
{
	if (is_scalar(n)) {
		mq_strv_push(&spec->args, n->text);
		return;
	}
	if (n->type != MQ_YN_SEQ) {
		err_expect(c, n, "'args'", "a list of strings");
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct mq_ynode *it = n->kids[i];
		if (it->type != MQ_YN_SCALAR || mq_ynode_is_null(it)) {
			err_expect(c, it, "'args' entries", "strings");
			continue;
		}
		mq_strv_push(&spec->args, it->text);
	}
}

/* ---- the document ---------------------------------------------------- */

enum { K_NAME, K_STATE, K_BINARY, K_MACHINE, K_ACCEL, K_MEMORY, K_CPU, K_DISPLAY, K_VGA, K_STORAGE, K_NETWORK,
       K_SERIAL, K_STOP_TIMEOUT, K_RESTART, K_DEPENDS_ON, K_ARGS, K_ARGUMENTS, K_COUNT };
static const char *const top_keys[K_COUNT] = {
	"name", "state", "binary", "machine", "accel", "memory", "cpu", "display", "vga", "storage", "network",
	"serial", "stop_timeout", "restart", "depends_on", "args", "arguments",
};

/* Options in `arguments` that a top-level key also sets. */
static const struct {
	const char *opt;
	int key;
} conflicts[] = {
	{ "m", K_MEMORY }, { "smp", K_CPU }, { "display", K_DISPLAY }, { "vga", K_VGA }, { "machine", K_MACHINE },
};

static bool given(const struct mq_ynode *v)
{
	return v && !mq_ynode_is_null(v);
}

static void parse_document(struct ctx *c, const struct mq_ynode *root, struct mq_spec *spec,
			   struct mq_spec_extra *x)
{
	const struct mq_ynode *v[K_COUNT], *k[K_COUNT];
	collect_keys(c, root, top_keys, K_COUNT, v, k, "");

	if (!given(v[K_NAME])) {
		if (v[K_NAME])
			err_expect(c, v[K_NAME], "'name'", "a vm name");
		else
			err_at(c, root, "missing required key 'name'");
	} else if (!is_scalar(v[K_NAME]) || !valid_name(v[K_NAME]->text, false)) {
		err_expect(c, v[K_NAME], "'name'",
			   "a name matching [a-z0-9][a-z0-9-]{0,62} (lowercase letters, digits and '-')");
	} else {
		spec->name = xstrdup(v[K_NAME]->text);
		x->name = (struct mq_pos){ v[K_NAME]->line, v[K_NAME]->col };
	}

	int e;
	if (given(v[K_STATE]) && parse_enum(c, v[K_STATE], "'state'", desired_names, 2, &e))
		spec->state = (enum mq_desired)e;
	if (given(v[K_BINARY])) {
		const char *s = want_string(c, v[K_BINARY], "'binary'");
		if (s) {
			free(spec->binary);
			spec->binary = xstrdup(s);
		}
	}
	if (given(v[K_MACHINE])) {
		const char *s = want_string(c, v[K_MACHINE], "'machine'");
		if (s)
			spec->machine = xstrdup(s);
	}
	if (given(v[K_ACCEL]) && parse_enum(c, v[K_ACCEL], "'accel'", accel_names, 3, &e))
		spec->accel = (enum mq_accel)e;
	if (given(v[K_MEMORY]))
		parse_memory(c, v[K_MEMORY], &spec->memory);
	if (given(v[K_CPU])) {
		if (!is_scalar(v[K_CPU]) || mq_parse_uint(v[K_CPU]->text, 1, 1024, &spec->cpu) < 0)
			err_expect(c, v[K_CPU], "'cpu'", "an integer from 1 to 1024");
	}
	if (given(v[K_DISPLAY])) {
		const char *s = want_string(c, v[K_DISPLAY], "'display'");
		if (s)
			spec->display = xstrdup(s);
	}
	if (given(v[K_VGA])) {
		const char *s = want_string(c, v[K_VGA], "'vga'");
		if (s)
			spec->vga = xstrdup(s);
	}
	if (given(v[K_STORAGE]))
		parse_storage(c, v[K_STORAGE], spec);
	if (given(v[K_NETWORK]))
		parse_network(c, v[K_NETWORK], spec, x);
	if (given(v[K_SERIAL]) && parse_enum(c, v[K_SERIAL], "'serial'", serial_names, 2, &e))
		spec->serial = (enum mq_serial)e;
	if (given(v[K_STOP_TIMEOUT])) {
		uint64_t ms;
		if (!is_scalar(v[K_STOP_TIMEOUT]) || mq_parse_duration(v[K_STOP_TIMEOUT]->text, &ms) < 0)
			err_expect(c, v[K_STOP_TIMEOUT], "'stop_timeout'", "a duration such as 30s, 500ms or 2m");
		else if (ms < STOP_TIMEOUT_MIN || ms > STOP_TIMEOUT_MAX)
			err_expect(c, v[K_STOP_TIMEOUT], "'stop_timeout'", "between 100ms and 1h");
		else
			spec->stop_timeout_ms = ms;
	}
	if (given(v[K_RESTART]) && parse_enum(c, v[K_RESTART], "'restart'", restart_names, 3, &e))
		spec->restart = (enum mq_restart)e;
	if (given(v[K_DEPENDS_ON]))
		parse_depends(c, v[K_DEPENDS_ON], spec, x);
	if (given(v[K_ARGS]))
		parse_args(c, v[K_ARGS], spec);

	bool args_display = false;
	if (given(v[K_ARGUMENTS])) {
		struct mq_argopts opts = { 0 };
		c->errors += mq_arguments_render(v[K_ARGUMENTS], c->file, c->d, &spec->arguments, &opts);
		for (size_t i = 0; i < opts.n; i++) {
			const char *o = opts.v[i].name;
			if (strcmp(o, "display") == 0)
				args_display = true;
			for (size_t j = 0; j < MQ_ARRAY_SIZE(conflicts); j++) {
				int key = conflicts[j].key;
				if (strcmp(o, conflicts[j].opt) == 0 && given(v[key])) {
					mq_diags_add(c->d, c->file, opts.v[i].line, opts.v[i].col,
						     "option '-%s' in 'arguments' conflicts with '%s' (line %d); set only one of them",
						     o, top_keys[key], k[key]->line);
					c->errors++;
				}
			}
		}
		mq_argopts_release(&opts);
	}
	if (!spec->display && !args_display && !given(v[K_DISPLAY]))
		spec->display = xstrdup("none");
}

static struct mq_spec *spec_new(const char *display_name, const char *abs_file, const char *source)
{
	struct mq_spec *spec = xcalloc(1, sizeof(*spec));
	spec->file = xstrdup(display_name);
	spec->abs_file = xstrdup(abs_file);
	spec->source = xstrdup_null(source);
	spec->binary = xstrdup("qemu-system-x86_64");
	spec->stop_timeout_ms = 30000;
	return spec;
}

int mq_spec_parse_internal(const char *buf, size_t len, const char *display_name, const char *abs_file,
			   const char *base_dir, const char *source, struct mq_spec_list *out,
			   struct mq_diags *d, bool *incomplete)
{
	struct mq_ynode **docs = NULL;
	size_t n_docs = 0;
	size_t before = d->n;
	if (mq_yaml_parse(buf, len, display_name, d, &docs, &n_docs) < 0)
		*incomplete = true;
	for (size_t i = 0; i < n_docs; i++) {
		struct mq_ynode *root = docs[i];
		struct ctx c = { .file = display_name, .base_dir = base_dir, .d = d };
		if (root->type != MQ_YN_MAP) {
			err_expect(&c, root, "a manifest", "a mapping of keys such as name and memory");
			*incomplete = true;
		} else {
			struct mq_spec *spec = spec_new(display_name, abs_file, source);
			struct mq_spec_extra *x = xcalloc(1, sizeof(*x));
			spec->line = root->line;
			spec->col = root->col;
			x->name = (struct mq_pos){ root->line, root->col };
			parse_document(&c, root, spec, x);
			if (!spec->name)
				*incomplete = true; /* a vm whose name we could not read */
			if (c.errors == 0)
				mq_spec_make_canonical(spec);
			mq_spec_list_push(out, spec, x);
		}
		mq_ynode_free(root);
	}
	free(docs);
	return d->n > before ? -EINVAL : 0;
}

int mq_spec_parse_buffer(const char *buf, size_t len, const char *display_name, const char *base_dir,
			 const char *source, struct mq_specset *set, struct mq_strv *diags)
{
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
	mq_spec_parse_internal(buf ? buf : "", buf ? len : 0, display_name, abs, base, source, &l, &d, &incomplete);
	free(cwd);
	free(base);
	free(abs);
	if (d.n > 0) {
		mq_diags_flush(&d, diags);
		mq_spec_list_release(&l);
		return -EINVAL;
	}
	set->specs = xreallocarray(set->specs, set->n + l.n + 1, sizeof(*set->specs));
	for (size_t i = 0; i < l.n; i++) {
		set->specs[set->n++] = l.v[i];
		mq_spec_extra_free(l.x[i]);
	}
	free(l.v);
	free(l.x);
	return 0;
}

/* ---- set-level checks ---------------------------------------------- */

struct name_ref {
	const char *name;
	size_t idx;
};

static int name_ref_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

struct port_ref {
	const struct mq_forward *f;
	size_t idx, k;
};

static int port_ref_cmp(const void *a, const void *b)
{
	const struct port_ref *x = a, *y = b;
	int c = strcmp(x->f->proto, y->f->proto);
	if (c)
		return c;
	if (x->f->host_port != y->f->host_port)
		return x->f->host_port < y->f->host_port ? -1 : 1;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->k < y->k ? -1 : x->k > y->k;
}

static struct mq_pos pos_name(struct mq_spec **s, struct mq_spec_extra **x, size_t i)
{
	return x && x[i] ? x[i]->name : (struct mq_pos){ s[i]->line, s[i]->col };
}

static struct mq_pos pos_dep(struct mq_spec **s, struct mq_spec_extra **x, size_t i, size_t j)
{
	return x && x[i] && x[i]->deps ? x[i]->deps[j] : (struct mq_pos){ s[i]->line, s[i]->col };
}

static struct mq_pos pos_fwd(struct mq_spec **s, struct mq_spec_extra **x, size_t i, size_t k)
{
	return x && x[i] && x[i]->fwds ? x[i]->fwds[k] : (struct mq_pos){ s[i]->line, s[i]->col };
}

/* Index (into specs) of the first vm called `name`, or -1. */
static long lookup(const struct name_ref *refs, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(refs[mid].name, name);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(refs[lo].name, name) == 0 ? (long)refs[lo].idx : -1;
}

void mq_specs_check_internal(struct mq_spec **specs, struct mq_spec_extra **x, size_t n, bool names_incomplete,
			     struct mq_diags *d)
{
	/* unique names */
	struct name_ref *refs = xcalloc(n + 1, sizeof(*refs));
	size_t nr = 0;
	for (size_t i = 0; i < n; i++)
		if (specs[i]->name)
			refs[nr++] = (struct name_ref){ specs[i]->name, i };
	if (nr > 1)
		qsort(refs, nr, sizeof(*refs), name_ref_cmp);
	size_t nu = 0; /* refs[0..nu) = first of each name */
	for (size_t i = 0; i < nr; i++) {
		if (nu > 0 && strcmp(refs[nu - 1].name, refs[i].name) == 0) {
			const struct mq_spec *first = specs[refs[nu - 1].idx];
			struct mq_pos p = pos_name(specs, x, refs[i].idx);
			mq_diags_add(d, specs[refs[i].idx]->file, p.line, p.col,
				     "duplicate vm name '%s' (first defined at %s:%d:%d)", refs[i].name, first->file,
				     first->line, first->col);
			continue;
		}
		refs[nu++] = refs[i];
	}

	/* unique host ports */
	size_t np = 0, ap = 0;
	struct port_ref *ports = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		for (size_t a = 0; a < specs[i]->n_network; a++)
			for (size_t b = 0; b < specs[i]->network[a].n_forwards; b++, k++) {
				if (np == ap) {
					ap = ap ? ap * 2 : 16;
					ports = xreallocarray(ports, ap, sizeof(*ports));
				}
				ports[np++] = (struct port_ref){ &specs[i]->network[a].forwards[b], i, k };
			}
	}
	if (np > 1)
		qsort(ports, np, sizeof(*ports), port_ref_cmp);
	for (size_t i = 1, f = 0; i < np; i++) {
		if (strcmp(ports[i].f->proto, ports[f].f->proto) != 0 || ports[i].f->host_port != ports[f].f->host_port) {
			f = i;
			continue;
		}
		const struct mq_spec *first = specs[ports[f].idx];
		struct mq_pos fp = pos_fwd(specs, x, ports[f].idx, ports[f].k);
		struct mq_pos p = pos_fwd(specs, x, ports[i].idx, ports[i].k);
		mq_diags_add(d, specs[ports[i].idx]->file, p.line, p.col,
			     "host port %s:%u is already forwarded by vm '%s' (%s:%d:%d)", ports[i].f->proto,
			     (unsigned)ports[i].f->host_port, first->name ? first->name : "?", first->file, fp.line,
			     fp.col);
	}
	free(ports);

	/* depends_on targets; edges[i][j] = target index or -1 */
	long **edges = xcalloc(n + 1, sizeof(*edges));
	for (size_t i = 0; i < n; i++) {
		const struct mq_spec *s = specs[i];
		edges[i] = xcalloc(s->depends_on.n + 1, sizeof(long));
		for (size_t j = 0; j < s->depends_on.n; j++) {
			const char *dep = s->depends_on.v[j];
			struct mq_pos p = pos_dep(specs, x, i, j);
			edges[i][j] = -1;
			if (s->name && strcmp(dep, s->name) == 0) {
				mq_diags_add(d, s->file, p.line, p.col, "vm '%s' depends on itself", s->name);
				continue;
			}
			long t = lookup(refs, nu, dep);
			if (t < 0 && !names_incomplete) {
				char *cl = clip(dep);
				mq_diags_add(d, s->file, p.line, p.col, "depends_on: unknown vm '%s'", cl);
				free(cl);
			}
			edges[i][j] = t;
		}
	}

	/* cycles: iterative DFS over the first vm of each name, in name order;
	 * every back edge is one cycle, reported once. */
	unsigned char *color = xcalloc(n + 1, 1); /* 0 white, 1 on stack, 2 done */
	size_t *stack = xcalloc(n + 1, sizeof(size_t)), *next = xcalloc(n + 1, sizeof(size_t));
	for (size_t r = 0; r < nu; r++) {
		size_t root = refs[r].idx;
		if (color[root])
			continue;
		size_t sp = 0;
		stack[sp] = root;
		next[sp] = 0;
		sp++;
		color[root] = 1;
		while (sp > 0) {
			size_t u = stack[sp - 1];
			if (next[sp - 1] >= specs[u]->depends_on.n) {
				color[u] = 2;
				sp--;
				continue;
			}
			size_t j = next[sp - 1]++;
			long t = edges[u][j];
			if (t < 0 || (size_t)t == u)
				continue;
			if (color[t] == 0) {
				color[t] = 1;
				stack[sp] = (size_t)t;
				next[sp] = 0;
				sp++;
			} else if (color[t] == 1) {
				size_t from = 0;
				while (stack[from] != (size_t)t)
					from++;
				struct mq_strbuf sb = MQ_STRBUF_INIT;
				mq_strbuf_init(&sb);
				for (size_t q = from; q < sp; q++)
					mq_strbuf_addf(&sb, "%s -> ", specs[stack[q]]->name);
				mq_strbuf_adds(&sb, specs[t]->name);
				/* reported at the cycle's first vm, on its edge into the cycle */
				size_t head = stack[from];
				struct mq_pos p = pos_dep(specs, x, head, next[from] - 1);
				mq_diags_add(d, specs[head]->file, p.line, p.col, "dependency cycle: %s", sb.buf);
				mq_strbuf_release(&sb);
			}
		}
	}
	free(color);
	free(stack);
	free(next);
	for (size_t i = 0; i < n; i++)
		free(edges[i]);
	free(edges);
	free(refs);
}

static int spec_cmp(const void *a, const void *b)
{
	const struct mq_spec *x = *(struct mq_spec *const *)a, *y = *(struct mq_spec *const *)b;
	return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

int mq_specset_check(struct mq_specset *set, struct mq_strv *diags)
{
	struct mq_diags d = { 0 };
	mq_specs_check_internal(set->specs, NULL, set->n, false, &d);
	if (d.n > 0) {
		mq_diags_flush(&d, diags);
		return -EINVAL;
	}
	if (set->n > 1)
		qsort(set->specs, set->n, sizeof(*set->specs), spec_cmp);
	return 0;
}
