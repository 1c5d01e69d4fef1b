/* export.c - the shared model of `maqet export`: engines, the walk over the
 * manifest keys, report rows, and the output writers (JSON, YAML).  The
 * mappings themselves live in export-nomad.c, export-incus.c and
 * export-kubevirt.c. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reconciler/export-int.h"
#include "reconciler/vmpaths.h"
#include "util/xalloc.h"

static const struct {
	const char *name, *suffix;
	bool yaml;
	const struct mq_export_engine_ops *ops;
} engines[MQ_EXPORT_ENGINES] = {
	[MQ_EXPORT_NOMAD] = { "nomad", ".nomad.json", false, &mq_export_nomad_ops },
	[MQ_EXPORT_INCUS] = { "incus", ".incus.yaml", true, &mq_export_incus_ops },
	[MQ_EXPORT_KUBEVIRT] = { "kubevirt", ".kubevirt.yaml", true, &mq_export_kubevirt_ops },
};

int mq_export_engine_from_str(const char *s, enum mq_export_engine *out)
{
	for (int i = 0; s && i < MQ_EXPORT_ENGINES; i++)
		if (strcmp(s, engines[i].name) == 0) {
			*out = (enum mq_export_engine)i;
			return 0;
		}
	return -EINVAL;
}

const char *mq_export_engine_str(enum mq_export_engine e)
{
	return (unsigned)e < MQ_EXPORT_ENGINES ? engines[e].name : "?";
}

const char *mq_export_suffix(enum mq_export_engine e)
{
	return (unsigned)e < MQ_EXPORT_ENGINES ? engines[e].suffix : "";
}

bool mq_export_is_yaml(enum mq_export_engine e)
{
	return (unsigned)e < MQ_EXPORT_ENGINES && engines[e].yaml;
}

const char *mq_export_fidelity_str(enum mq_export_fidelity f)
{
	switch (f) {
	case MQ_EXPORT_EXACT:
		return "exact";
	case MQ_EXPORT_APPROX:
		return "approximate";
	case MQ_EXPORT_LOST:
		return "lost";
	}
	return "?";
}

/* ---- json-c shorthands ---------------------------------------------------- */

json_object *mq_xobj(json_object *parent, const char *key)
{
	json_object *o = json_object_new_object();
	json_object_object_add(parent, key, o);
	return o;
}

json_object *mq_xarr(json_object *parent, const char *key)
{
	json_object *a = json_object_new_array();
	json_object_object_add(parent, key, a);
	return a;
}

void mq_xstr(json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, json_object_new_string(val));
}

void mq_xint(json_object *o, const char *key, int64_t val)
{
	json_object_object_add(o, key, json_object_new_int64(val));
}

void mq_xbool(json_object *o, const char *key, bool val)
{
	json_object_object_add(o, key, json_object_new_boolean(val));
}

void mq_xpush_str(json_object *arr, const char *val)
{
	json_object_array_add(arr, json_object_new_string(val));
}

/* ---- small pure helpers --------------------------------------------------- */

char *mq_export_disk_path(const struct mq_export_ctx *x, const struct mq_storage *s)
{
	return mq_storage_image_path(x->spec, s, x->disk_dir);
}

uint64_t mq_export_ms_to_s(uint64_t ms, bool *exact)
{
	if (exact)
		*exact = ms % 1000 == 0;
	return (ms + 999) / 1000;
}

char *mq_export_dns_label(const char *a, const char *b)
{
	char *s = b ? xasprintf("%s-%s", a, b) : xstrdup(a);
	size_t j = 0;
	for (size_t i = 0; s[i] && j < 63; i++) {
		char c = (char)tolower((unsigned char)s[i]);
		if (!isalnum((unsigned char)c))
			c = '-';
		if (c == '-' && (j == 0 || s[j - 1] == '-'))
			continue;
		s[j++] = c;
	}
	while (j && s[j - 1] == '-')
		j--;
	s[j] = 0;
	if (!j) {
		free(s);
		s = xstrdup("x");
	}
	return s;
}

char *mq_export_quantity(uint64_t bytes, bool iec_b)
{
	const char *b = iec_b ? "B" : "";
	if (bytes && bytes % (1024ull * 1024 * 1024) == 0)
		return xasprintf("%" PRIu64 "Gi%s", (uint64_t)(bytes / (1024ull * 1024 * 1024)), b);
	if (bytes % (1024ull * 1024) == 0)
		return xasprintf("%" PRIu64 "Mi%s", (uint64_t)(bytes / (1024ull * 1024)), b);
	return xasprintf("%" PRIu64 "Ki%s", (bytes + 1023) / 1024, b);
}

char *mq_export_every_cron(uint64_t every_s, bool *exact)
{
	uint64_t m = (every_s + 59) / 60;
	bool ex = every_s % 60 == 0;
	if (m == 0)
		m = 1;
	if (m < 60) {
		if (60 % m) {
			ex = false;
			while (60 % m)
				m++; /* the next divisor of an hour: never more often than asked */
		}
		*exact = ex;
		return m == 1 ? xstrdup("* * * * *") : xasprintf("*/%" PRIu64 " * * * *", m);
	}
	uint64_t h = (m + 59) / 60;
	if (m % 60)
		ex = false;
	if (h < 24) {
		if (24 % h) {
			ex = false;
			while (24 % h)
				h++;
		}
		*exact = ex;
		return h == 1 ? xstrdup("0 * * * *") : xasprintf("0 */%" PRIu64 " * * *", h);
	}
	uint64_t d = (h + 23) / 24;
	if (h % 24)
		ex = false;
	/* day-of-month steps restart each month: only daily is exact */
	*exact = ex && d == 1;
	return d == 1 ? xstrdup("0 0 * * *") : xasprintf("0 0 */%" PRIu64 " * *", d > 31 ? 31 : d);
}

/* ---- the report ------------------------------------------------------------ */

void mq_export_row(struct mq_export_ctx *x, enum mq_export_fidelity f, const char *item, const char *fmt, ...)
{
	struct mq_export_report *r = x->rep;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->v = xreallocarray(r->v, r->cap, sizeof(*r->v));
	}
	va_list ap;
	va_start(ap, fmt);
	r->v[r->n++] = (struct mq_export_row){
		.vm = xstrdup(x->spec->name),
		.key = xstrdup(x->key),
		.item = xstrdup_null(item),
		.fidelity = f,
		.note = xvasprintf(fmt, ap),
	};
	va_end(ap);
}

void mq_export_fail(struct mq_export_ctx *x, const char *fmt, ...)
{
	if (x->error)
		return;
	va_list ap;
	va_start(ap, fmt);
	x->errmsg = xvasprintf(fmt, ap);
	va_end(ap);
	x->error = -EINVAL;
}

static void row_release(struct mq_export_row *row)
{
	free(row->vm);
	free(row->key);
	free(row->item);
	free(row->note);
}

void mq_export_report_release(struct mq_export_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		row_release(&r->v[i]);
	free(r->v);
	*r = (struct mq_export_report){ 0 };
}

size_t mq_export_report_count(const struct mq_export_report *r, enum mq_export_fidelity f)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++)
		n += r->v[i].fidelity == f;
	return n;
}

json_object *mq_export_report_json(const struct mq_export_report *r)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < r->n; i++) {
		const struct mq_export_row *row = &r->v[i];
		json_object *o = json_object_new_object();
		mq_xstr(o, "vm", row->vm);
		mq_xstr(o, "key", row->key);
		json_object_object_add(o, "item", row->item ? json_object_new_string(row->item) : NULL);
		mq_xstr(o, "mapping", mq_export_fidelity_str(row->fidelity));
		mq_xstr(o, "note", row->note);
		json_object_array_add(a, o);
	}
	return a;
}

/* ---- the walk ------------------------------------------------------------- */

static const struct mq_export_key *find_key(const struct mq_export_engine_ops *ops, const char *key)
{
	for (size_t i = 0; i < ops->n_keys; i++)
		if (strcmp(ops->keys[i].key, key) == 0)
			return &ops->keys[i];
	return NULL;
}

const char *mq_export_missing_key(enum mq_export_engine e, const char **stale)
{
	const struct mq_export_engine_ops *ops = engines[e].ops;
	if (stale) {
		*stale = NULL;
		for (size_t i = 0; i < ops->n_keys && !*stale; i++) {
			bool found = false;
			for (size_t k = 0; k < mq_spec_field_count() && !found; k++)
				found = strcmp(ops->keys[i].key, mq_spec_field_key(k)) == 0;
			if (!found)
				*stale = ops->keys[i].key;
		}
	}
	for (size_t k = 0; k < mq_spec_field_count(); k++)
		if (!find_key(ops, mq_spec_field_key(k)))
			return mq_spec_field_key(k);
	return NULL;
}

int mq_export_vm(enum mq_export_engine e, const struct mq_spec *spec, const char *disk_dir, json_object **doc,
		 struct mq_export_report *rep, struct mq_error **err)
{
	if ((unsigned)e >= MQ_EXPORT_ENGINES)
		return mq_error_set(err, EINVAL, "unknown export engine");
	const struct mq_export_engine_ops *ops = engines[e].ops;
	struct mq_export_report mine = { 0 };
	struct mq_export_ctx x = { .spec = spec, .disk_dir = disk_dir, .rep = &mine, .argv = MQ_STRV_INIT };
	int r = 0;
	ops->init(&x);
	for (size_t k = 0; k < mq_spec_field_count() && !x.error; k++) {
		const char *key = mq_spec_field_key(k);
		const struct mq_export_key *m = find_key(ops, key);
		if (!m) {
			r = mq_error_set(err, ENOSYS, "cannot export vm '%s' to %s: no export decision for key '%s'",
					 spec->name, engines[e].name, key);
			goto out;
		}
		size_t before = mine.n;
		x.key = key;
		m->fn(&x);
		if (!x.error && mine.n == before) {
			r = mq_error_set(err, ENOSYS, "cannot export vm '%s' to %s: key '%s' was mapped without a report row",
					 spec->name, engines[e].name, key);
			goto out;
		}
	}
	if (!x.error && ops->finish)
		ops->finish(&x);
	if (x.error) {
		r = mq_error_set(err, -x.error, "cannot export vm '%s' to %s: %s", spec->name, engines[e].name,
				 x.errmsg);
		goto out;
	}
	/* hand over: rows appended, document out */
	for (size_t i = 0; i < mine.n; i++) {
		if (rep->n == rep->cap) {
			rep->cap = rep->cap ? rep->cap * 2 : 64;
			rep->v = xreallocarray(rep->v, rep->cap, sizeof(*rep->v));
		}
		rep->v[rep->n++] = mine.v[i];
	}
	mine.n = 0;
	*doc = x.doc;
	x.doc = NULL;
out:
	mq_export_report_release(&mine);
	json_object_put(x.doc);
	mq_strv_clear(&x.argv);
	free(x.errmsg);
	return r;
}

/* ---- writers ---------------------------------------------------------------- */

static void yaml_string(struct mq_strbuf *sb, const char *s)
{
	/* json-c's own string escaping: a JSON string is a YAML double-quoted scalar */
	json_object *j = json_object_new_string(s);
	mq_strbuf_adds(sb, json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
}

static bool plain_key(const char *k)
{
	static const char *const special[] = { "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~" };
	if (!*k || *k == '-' || *k == '.' || isdigit((unsigned char)*k))
		return false;
	for (const char *p = k; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_./-", *p))
			return false;
	for (size_t i = 0; i < MQ_ARRAY_SIZE(special); i++)
		if (strcasecmp(k, special[i]) == 0)
			return false;
	return true;
}

static void indent(struct mq_strbuf *sb, int n)
{
	for (int i = 0; i < n; i++)
		mq_strbuf_adds(sb, "  ");
}

static bool is_nonempty_container(json_object *v)
{
	return (json_object_is_type(v, json_type_object) && json_object_object_length(v) > 0) ||
	       (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0);
}

static void yaml_scalar(struct mq_strbuf *sb, json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		mq_strbuf_adds(sb, "null");
		break;
	case json_type_boolean:
		mq_strbuf_adds(sb, json_object_get_boolean(v) ? "true" : "false");
		break;
	case json_type_int:
	case json_type_double:
		mq_strbuf_adds(sb, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		break;
	case json_type_string:
		yaml_string(sb, json_object_get_string(v));
		break;
	case json_type_object:
		mq_strbuf_adds(sb, "{}");
		break;
	case json_type_array:
		mq_strbuf_adds(sb, "[]");
		break;
	}
}

static void yaml_node(struct mq_strbuf *sb, json_object *o, int depth);

/* The value after "key:" or "- ": a scalar on the same line, a container below. */
static void yaml_value(struct mq_strbuf *sb, json_object *v, int depth, bool after_dash)
{
	if (!is_nonempty_container(v)) {
		mq_strbuf_addc(sb, ' ');
		yaml_scalar(sb, v);
		mq_strbuf_addc(sb, '\n');
	} else if (after_dash && json_object_is_type(v, json_type_object)) {
		/* "- key: value" with the rest of the mapping aligned under it */
		mq_strbuf_addc(sb, ' ');
		bool first = true;
		json_object_object_foreach(v, k, kv)
		{
			if (!first)
				indent(sb, depth);
			first = false;
			if (plain_key(k))
				mq_strbuf_adds(sb, k);
			else
				yaml_string(sb, k);
			mq_strbuf_addc(sb, ':');
			yaml_value(sb, kv, depth + 1, false);
		}
	} else {
		mq_strbuf_addc(sb, '\n');
		yaml_node(sb, v, depth);
	}
}

static void yaml_node(struct mq_strbuf *sb, json_object *o, int depth)
{
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v)
		{
			indent(sb, depth);
			if (plain_key(k))
				mq_strbuf_adds(sb, k);
			else
				yaml_string(sb, k);
			mq_strbuf_addc(sb, ':');
			yaml_value(sb, v, depth + 1, false);
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			indent(sb, depth);
			mq_strbuf_addc(sb, '-');
			yaml_value(sb, json_object_array_get_idx(o, i), depth + 1, true);
		}
	} else {
		indent(sb, depth);
		yaml_scalar(sb, o);
		mq_strbuf_addc(sb, '\n');
	}
}

void mq_export_yaml(struct mq_strbuf *sb, json_object *o)
{
	if (is_nonempty_container(o))
		yaml_node(sb, o, 0);
	else {
		yaml_scalar(sb, o);
		mq_strbuf_addc(sb, '\n');
	}
}

char *mq_export_render(enum mq_export_engine e, json_object *doc)
{
	struct mq_strbuf sb;
	mq_strbuf_init(&sb);
	if (mq_export_is_yaml(e)) {
		mq_export_yaml(&sb, doc);
	} else {
		mq_strbuf_adds(&sb, json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
									   JSON_C_TO_STRING_SPACED |
									   JSON_C_TO_STRING_NOSLASHESCAPE));
		mq_strbuf_addc(&sb, '\n');
	}
	return mq_strbuf_detach(&sb);
}
