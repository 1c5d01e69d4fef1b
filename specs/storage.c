/* storage.c - the `storage` row: parse, canonical JSON, read back.
 *
 * Each item is a qcow2 or raw disk (name, file and/or size, interface,
 * backing_file, backing_format) or a virtfs share (name, path, mount_tag,
 * security_model, readonly; the last three may also sit under `options:`,
 * the Python maqet's placement, but not in both places).
 */
#include <errno.h>
#include <stddef.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "specs/jsonval.h"
#include "specs/names.h"
#include "specs/storage.h"
#include "util/parse.h"
#include "util/xalloc.h"

#define MIB (1024ULL * 1024ULL)
#define DISK_MAX (1ULL << 50) /* 1P */

static bool parse_disk_size(struct mq_pctx *c, const struct mq_ynode *n, const char *what, uint64_t *out)
{
	uint64_t v;
	int r = mq_is_scalar(n) ? mq_parse_size(n->text, 1, &v) : -EINVAL;
	if (r < 0) {
		mq_err_expect(c, n, what, r == -ERANGE ? "at most 1P" : "a size such as 20G (a bare number is bytes)");
		return false;
	}
	if (v < MIB) {
		mq_err_expect(c, n, what, "at least 1M");
		return false;
	}
	if (v > DISK_MAX) {
		mq_err_expect(c, n, what, "at most 1P");
		return false;
	}
	*out = v;
	return true;
}

/* ---- the keys of a storage item ---------------------------------------- */

/* One table of the keys of a storage item, in canonical order, driving the
 * parser's known keys, the canonical writer and the reader below.
 *   K(index, key, for which types, how its value is stored, member offset)
 * The member's type follows from the kind (SV_STR: char *, SV_SIZE:
 * uint64_t, SV_BOOL: bool, SV_TYPE/SV_IFACE: the enums).  `options` is read
 * by the parser only: it holds mount_tag, security_model and readonly. */
enum sv_for { FOR_ALL, FOR_DISK, FOR_VIRTFS };
enum sv_kind { SV_NAME, SV_TYPE, SV_STR, SV_SIZE, SV_IFACE, SV_BOOL, SV_PARSE_ONLY };
#define OFF(m) offsetof(struct mq_storage, m)
#define STORAGE_KEYS(K)                                                  \
	K(SK_NAME,    name,           FOR_ALL,    SV_NAME,       OFF(name))           \
	K(SK_TYPE,    type,           FOR_ALL,    SV_TYPE,       OFF(type))           \
	K(SK_FILE,    file,           FOR_DISK,   SV_STR,        OFF(file))           \
	K(SK_SIZE,    size,           FOR_DISK,   SV_SIZE,       OFF(size))           \
	K(SK_IFACE,   interface,      FOR_DISK,   SV_IFACE,      OFF(interface))      \
	K(SK_BFILE,   backing_file,   FOR_DISK,   SV_STR,        OFF(backing_file))   \
	K(SK_BFMT,    backing_format, FOR_DISK,   SV_STR,        OFF(backing_format)) \
	K(SK_PATH,    path,           FOR_VIRTFS, SV_STR,        OFF(path))           \
	K(SK_TAG,     mount_tag,      FOR_VIRTFS, SV_STR,        OFF(mount_tag))      \
	K(SK_SECM,    security_model, FOR_VIRTFS, SV_STR,        OFF(security_model)) \
	K(SK_RO,      readonly,       FOR_VIRTFS, SV_BOOL,       OFF(readonly))       \
	K(SK_OPTIONS, options,        FOR_VIRTFS, SV_PARSE_ONLY, 0)

#define SK_ID(id, key, for_, kind, off) id,
enum { STORAGE_KEYS(SK_ID) SK_COUNT };
#define SK_KEY(id, key, for_, kind, off) #key,
static const char *const storage_keys[SK_COUNT] = { STORAGE_KEYS(SK_KEY) };
#define SK_ROW(id, key, for_, kind, off) { for_, kind, off },
static const struct {
	enum sv_for for_;
	enum sv_kind kind;
	size_t off;
} storage_rows[SK_COUNT] = { STORAGE_KEYS(SK_ROW) };

/* The keys that may also sit under `options:`, consecutive in the table. */
#define VIRTFS_OPTION_KEYS (storage_keys + SK_TAG)
_Static_assert(SK_SECM == SK_TAG + 1 && SK_RO == SK_TAG + 2, "mount_tag, security_model, readonly in a row");

static void parse_storage_item(struct mq_pctx *c, const struct mq_ynode *item, size_t idx, struct mq_storage *s,
			       const struct mq_ynode **name_node)
{
	const struct mq_ynode *v[SK_COUNT], *k[SK_COUNT];
	const char *pre_name = NULL;
	for (size_t p = 0; p + 1 < item->n; p += 2)
		if (strcmp(item->kids[p]->text, "name") == 0 && mq_is_scalar(item->kids[p + 1]) &&
		    mq_valid_name(item->kids[p + 1]->text, true))
			pre_name = item->kids[p + 1]->text;
	char *where = pre_name ? xasprintf(" in storage '%s'", pre_name) : xasprintf(" in storage item %zu", idx + 1);
	mq_collect_keys(c, item, storage_keys, SK_COUNT, v, k, where);
	free(where);

	char *label = xasprintf("storage item %zu", idx + 1);
	if (!v[SK_NAME]) {
		mq_err_at(c, item, "storage item %zu needs a 'name'", idx + 1);
	} else if (!mq_is_scalar(v[SK_NAME]) || !mq_valid_name(v[SK_NAME]->text, true)) {
		mq_err_expect(c, v[SK_NAME], "storage 'name'",
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
		if (!mq_parse_enum(c, v[SK_TYPE], what, mq_storage_type_names, MQ_ARRAY_SIZE(mq_storage_type_names), &t))
			t = -1;
		free(what);
	}
	if (t < 0) { /* unknown type: cannot tell which keys belong */
		free(label);
		return;
	}
	s->type = (enum mq_storage_type)t;
	bool virtfs = s->type == MQ_STORAGE_VIRTFS;

	for (int i = 0; i < SK_COUNT; i++) {
		if (storage_rows[i].for_ == FOR_ALL)
			continue;
		bool for_virtfs = storage_rows[i].for_ == FOR_VIRTFS;
		if (v[i] && for_virtfs != virtfs) {
			mq_err_at(c, k[i], "'%s' is not valid for storage type %s (only for %s)", storage_keys[i],
			       mq_storage_type_names[t], for_virtfs ? "virtfs" : "qcow2 and raw");
			v[i] = NULL;
		}
	}

	if (!virtfs) {
		if (v[SK_FILE] && !mq_ynode_is_null(v[SK_FILE])) {
			char *what = xasprintf("'file' of %s", label);
			s->file = mq_want_path(c, v[SK_FILE], what);
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
			mq_err_at(c, item, "%s needs 'size' (to create the image) or 'file'", label);
		if (v[SK_IFACE] && !mq_ynode_is_null(v[SK_IFACE])) {
			char *what = xasprintf("'interface' of %s", label);
			int iface = 0;
			if (mq_parse_enum(c, v[SK_IFACE], what, mq_iface_names, MQ_ARRAY_SIZE(mq_iface_names), &iface))
				s->interface = (enum mq_iface)iface;
			free(what);
		}
		bool has_backing = v[SK_BFILE] && !mq_ynode_is_null(v[SK_BFILE]);
		if (has_backing) {
			if (s->type != MQ_STORAGE_QCOW2) {
				mq_err_at(c, k[SK_BFILE], "'backing_file' needs storage type qcow2, %s is raw", label);
			} else {
				char *what = xasprintf("'backing_file' of %s", label);
				s->backing_file = mq_want_path(c, v[SK_BFILE], what);
				free(what);
			}
		}
		if (v[SK_BFMT] && !mq_ynode_is_null(v[SK_BFMT])) {
			if (!has_backing) {
				mq_err_at(c, k[SK_BFMT], "'backing_format' is only valid with 'backing_file'");
			} else {
				char *what = xasprintf("'backing_format' of %s", label);
				const char *f = mq_want_string(c, v[SK_BFMT], what);
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
			mq_err_expect(c, v[SK_OPTIONS], what, "a mapping");
			free(what);
		} else {
			char *owhere = xasprintf(" in 'options' of %s", label);
			mq_collect_keys(c, v[SK_OPTIONS], VIRTFS_OPTION_KEYS, 3, ov, ok, owhere);
			free(owhere);
		}
	}
	for (int i = 0; i < 3; i++) {
		if (!ov[i])
			continue;
		if (v[SK_TAG + i]) {
			mq_err_at(c, ok[i], "'%s' given both in %s and in its 'options' (first at line %d)",
			       VIRTFS_OPTION_KEYS[i], label, k[SK_TAG + i]->line);
		} else {
			v[SK_TAG + i] = ov[i];
			k[SK_TAG + i] = ok[i];
		}
	}

	if (!v[SK_PATH] || mq_ynode_is_null(v[SK_PATH])) {
		mq_err_at(c, item, "%s (virtfs) needs 'path', the host directory to share", label);
	} else {
		char *what = xasprintf("'path' of %s", label);
		s->path = mq_want_path(c, v[SK_PATH], what);
		free(what);
	}
	if (!v[SK_TAG] || mq_ynode_is_null(v[SK_TAG])) {
		mq_err_at(c, item, "%s (virtfs) needs 'mount_tag', the tag the guest mounts", label);
	} else {
		char *what = xasprintf("'mount_tag' of %s", label);
		const char *tag = mq_want_string(c, v[SK_TAG], what);
		if (tag)
			s->mount_tag = xstrdup(tag);
		free(what);
	}
	int sm = MQ_SECURITY_MODEL_DEFAULT;
	if (v[SK_SECM] && !mq_ynode_is_null(v[SK_SECM])) {
		char *what = xasprintf("'security_model' of %s", label);
		mq_parse_enum(c, v[SK_SECM], what, mq_security_models, MQ_ARRAY_SIZE(mq_security_models), &sm);
		free(what);
	}
	s->security_model = xstrdup(mq_security_models[sm]);
	if (v[SK_RO] && !mq_ynode_is_null(v[SK_RO])) {
		char *what = xasprintf("'readonly' of %s", label);
		mq_parse_bool(c, v[SK_RO], what, &s->readonly);
		free(what);
	}
	free(label);
}

void mq_storage_parse(struct mq_pctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	if (!mq_given(n))
		return;
	if (n->type != MQ_YN_SEQ) {
		mq_err_expect(c, n, "'storage'", "a list of mappings");
		return;
	}
	const struct mq_ynode **name_nodes = xcalloc(n->n + 1, sizeof(*name_nodes));
	spec->storage = xcalloc(n->n ? n->n : 1, sizeof(*spec->storage));
	for (size_t i = 0; i < n->n; i++) {
		const struct mq_ynode *item = n->kids[i];
		if (item->type != MQ_YN_MAP) {
			char *what = xasprintf("storage item %zu", i + 1);
			mq_err_expect(c, item, what, "a mapping with 'name' and 'size' or 'file'");
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
	long *first = mq_find_dups(texts, spec->n_storage);
	for (size_t i = 0; i < spec->n_storage; i++)
		if (first[i] >= 0)
			mq_err_at(c, name_nodes[i], "duplicate storage name '%s' (first at line %d)", texts[i],
			       name_nodes[first[i]]->line);
	free(first);
	free(texts);
	free(name_nodes);
}

/* The member at `off` of a storage item, as `type`. */
#define MEMBER(s, type, off) ((type *)(void *)((char *)(s) + (off)))
#define CMEMBER(s, type, off) ((type *)(const void *)((const char *)(s) + (off)))

static json_object *item_to_json(const struct mq_storage *s)
{
	bool virtfs = s->type == MQ_STORAGE_VIRTFS;
	json_object *o = json_object_new_object();
	for (size_t i = 0; i < SK_COUNT; i++) {
		size_t off = storage_rows[i].off;
		json_object *v;
		if (storage_rows[i].for_ == (virtfs ? FOR_DISK : FOR_VIRTFS))
			continue;
		switch (storage_rows[i].kind) {
		case SV_NAME:
		case SV_STR: v = mq_json_str_or_null(*CMEMBER(s, char *const, off)); break;
		case SV_TYPE: v = json_object_new_string(mq_storage_type_str(s->type)); break;
		case SV_IFACE: v = json_object_new_string(mq_iface_str(s->interface)); break;
		case SV_SIZE: {
			uint64_t n = *CMEMBER(s, const uint64_t, off);
			v = n ? json_object_new_uint64(n) : NULL;
			break;
		}
		case SV_BOOL: v = json_object_new_boolean(*CMEMBER(s, const bool, off)); break;
		case SV_PARSE_ONLY:
		default: continue;
		}
		json_object_object_add(o, storage_keys[i], v);
	}
	return o;
}

json_object *mq_storage_to_json(const struct mq_spec *spec)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < spec->n_storage; i++)
		json_object_array_add(a, item_to_json(&spec->storage[i]));
	return a;
}

/* Every member the record has is read, whatever the type. */
static void item_from_json(json_object *e, struct mq_storage *st)
{
	for (size_t i = 0; i < SK_COUNT; i++) {
		size_t off = storage_rows[i].off;
		json_object *v = mq_json_get(e, storage_keys[i]);
		const char *str = mq_json_to_str(v);
		switch (storage_rows[i].kind) {
		case SV_NAME: *MEMBER(st, char *, off) = xstrdup(str ? str : "disk"); break;
		case SV_STR: *MEMBER(st, char *, off) = xstrdup_null(str); break;
		case SV_TYPE:
			st->type = (enum mq_storage_type)mq_name_index(str, mq_storage_type_names,
								       MQ_ARRAY_SIZE(mq_storage_type_names), 0);
			break;
		case SV_IFACE:
			st->interface = (enum mq_iface)mq_name_index(str, mq_iface_names, MQ_ARRAY_SIZE(mq_iface_names), 0);
			break;
		case SV_SIZE: *MEMBER(st, uint64_t, off) = (uint64_t)mq_json_to_int(v, 0); break;
		case SV_BOOL: *MEMBER(st, bool, off) = mq_json_to_bool(v); break;
		case SV_PARSE_ONLY: break;
		}
	}
}

int mq_storage_from_json(json_object *v, struct mq_spec *spec)
{
	if (!v || !json_object_is_type(v, json_type_array))
		return 0;
	size_t n = json_object_array_length(v);
	spec->storage = xcalloc(n + 1, sizeof(*spec->storage));
	for (size_t i = 0; i < n; i++)
		item_from_json(json_object_array_get_idx(v, i), &spec->storage[spec->n_storage++]);
	return 0;
}
