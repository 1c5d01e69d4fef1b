/* pyimport.c - one Python maqet vm -> one manifest (see pyimport.h). */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "specs/diag.h"
#include "specs/fields.h"
#include "specs/pyimport.h"
#include "specs/yamlread.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define JSON_MAX_DEPTH 32

static struct mq_ynode *ynode(enum mq_ynode_type t, const char *text, bool plain)
{
	struct mq_ynode *n = xcalloc(1, sizeof(*n));
	n->type = t;
	n->line = n->col = 1;
	if (text) {
		n->text = xstrdup(text);
		n->len = strlen(text);
	}
	n->plain = plain;
	return n;
}

static void yadd(struct mq_ynode *p, struct mq_ynode *k)
{
	p->kids = xreallocarray(p->kids, p->n + 1, sizeof(*p->kids));
	p->kids[p->n++] = k;
	p->alloc = p->n;
}

static void ypair(struct mq_ynode *map, const char *key, struct mq_ynode *v)
{
	yadd(map, ynode(MQ_YN_SCALAR, key, true));
	yadd(map, v);
}

static struct mq_ynode *from_json(json_object *j, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return NULL;
	switch (json_object_get_type(j)) {
	case json_type_null:
		return ynode(MQ_YN_SCALAR, "null", true);
	case json_type_boolean:
	case json_type_int:
	case json_type_double:
		return ynode(MQ_YN_SCALAR, json_object_get_string(j), true);
	case json_type_string:
		return ynode(MQ_YN_SCALAR, json_object_get_string(j), false);
	case json_type_array: {
		struct mq_ynode *s = ynode(MQ_YN_SEQ, NULL, false);
		for (size_t i = 0; i < json_object_array_length(j); i++) {
			struct mq_ynode *k = from_json(json_object_array_get_idx(j, i), depth + 1);
			if (!k)
				return mq_ynode_free(s);
			yadd(s, k);
		}
		return s;
	}
	case json_type_object: {
		struct mq_ynode *m = ynode(MQ_YN_MAP, NULL, false);
		json_object_object_foreach(j, key, val) {
			struct mq_ynode *k = from_json(val, depth + 1);
			if (!k)
				return mq_ynode_free(m);
			ypair(m, key, k);
		}
		return m;
	}
	}
	return NULL;
}

static char *one_line(const struct mq_ynode *key, const struct mq_ynode *val)
{
	struct mq_ynode *m = ynode(MQ_YN_MAP, NULL, false);
	yadd(m, mq_ynode_clone(key));
	yadd(m, mq_ynode_clone(val));
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	mq_yaml_emit(m, &sb);
	mq_ynode_free(m);
	char *s = mq_strbuf_detach(&sb);
	size_t l = strlen(s);
	while (l && s[l - 1] == '\n')
		s[--l] = '\0';
	return s;
}

static void set_pair(struct mq_ynode *map, const char *key, struct mq_ynode *v)
{
	size_t idx;
	if (mq_ynode_get(map, key, &idx)) {
		mq_ynode_free(map->kids[2 * idx + 1]);
		map->kids[2 * idx + 1] = v;
	} else {
		ypair(map, key, v);
	}
}

static void absolutize(struct mq_ynode *entry, const char *key, const char *dir, struct mq_strv *notes)
{
	size_t idx;
	struct mq_ynode *v = mq_ynode_get(entry, key, &idx);
	if (!v || v->type != MQ_YN_SCALAR || v->len == 0 || v->text[0] == '/' || mq_ynode_is_null(v))
		return;
	if (!dir) {
		mq_strv_pushf(notes, "'%s: %s' is relative and there is no config file to resolve it against: it "
			      "now resolves against the output directory, check it", key, v->text);
		return;
	}
	char *abs = mq_path_join(dir, v->text);
	set_pair(entry, key, ynode(MQ_YN_SCALAR, abs, false));
	free(abs);
}

/* Storage entries: the Python maqet's default disk location, absolute paths. */
static void fix_storage(struct mq_ynode *st, const struct mq_pyconv_in *in, struct mq_strv *notes)
{
	if (st->type != MQ_YN_SEQ)
		return;
	for (size_t i = 0; i < st->n; i++) {
		struct mq_ynode *e = st->kids[i];
		if (e->type != MQ_YN_MAP)
			continue;
		const struct mq_ynode *type = mq_ynode_get(e, "type", NULL);
		const char *t = type && type->type == MQ_YN_SCALAR && !mq_ynode_is_null(type) ? type->text : "qcow2";
		absolutize(e, "file", in->config_dir, notes);
		absolutize(e, "path", in->config_dir, notes);
		absolutize(e, "backing_file", in->config_dir, notes);
		if (strcmp(t, "qcow2") != 0 && strcmp(t, "raw") != 0)
			continue;
		const struct mq_ynode *f = mq_ynode_get(e, "file", NULL);
		if (f && !mq_ynode_is_null(f))
			continue;
		const struct mq_ynode *nm = mq_ynode_get(e, "name", NULL);
		const char *sn = nm && nm->type == MQ_YN_SCALAR && !mq_ynode_is_null(nm) ? nm->text : NULL;
		if (!sn)
			continue; /* maqet's validation says a name is needed */
		char *path = xasprintf("/tmp/maqet-%s-%s.%s", in->id, sn, t);
		set_pair(e, "file", ynode(MQ_YN_SCALAR, path, false));
		mq_strv_pushf(notes, "storage '%s' uses the python maqet's default file %s", sn, path);
		free(path);
	}
}

static struct mq_ynode *read_config(const struct mq_pyconv_in *in, char **why)
{
	if (in->json) {
		struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
		json_object *j = json_tokener_parse_ex(tok, in->json, (int)strlen(in->json));
		enum json_tokener_error e = json_tokener_get_error(tok);
		json_tokener_free(tok);
		if (!j || e != json_tokener_success) {
			*why = xasprintf("config_data is not valid json: %s", json_tokener_error_desc(e));
			json_object_put(j);
			return NULL;
		}
		if (!json_object_is_type(j, json_type_object)) {
			*why = xstrdup("config_data is not a json object");
			json_object_put(j);
			return NULL;
		}
		struct mq_ynode *r = from_json(j, 0);
		json_object_put(j);
		if (!r)
			*why = xstrdup("config_data is nested too deep");
		return r;
	}
	struct mq_diags d = { 0 };
	struct mq_ynode **docs = NULL;
	size_t n = 0;
	mq_yaml_parse(in->yaml ? in->yaml : "", in->yaml ? in->yaml_len : 0, in->yaml_file, &d, &docs, &n);
	struct mq_ynode *r = NULL;
	if (d.n) {
		struct mq_strv msgs = MQ_STRV_INIT;
		mq_diags_flush(&d, &msgs);
		*why = xasprintf("config file is not valid: %s", msgs.v[0]);
		mq_strv_clear(&msgs);
	} else if (n != 1 || docs[0]->type != MQ_YN_MAP) {
		*why = xasprintf("config file %s does not hold one mapping of settings", in->yaml_file);
	} else {
		r = docs[0];
		docs[0] = NULL;
	}
	for (size_t i = 0; i < n; i++)
		mq_ynode_free(docs[i]);
	free(docs);
	mq_diags_release(&d);
	return r;
}

int mq_pyimport_convert(const struct mq_pyconv_in *in, struct mq_pyconv_out *out, char **why)
{
	memset(out, 0, sizeof(*out));
	struct mq_ynode *cfg = read_config(in, why);
	if (!cfg)
		return -EINVAL;
	struct mq_ynode *m = ynode(MQ_YN_MAP, NULL, false);
	ypair(m, "name", ynode(MQ_YN_SCALAR, in->name, true));
	bool running = in->status && strcmp(in->status, "running") == 0;
	ypair(m, "state", ynode(MQ_YN_SCALAR, running ? "running" : "stopped", true));
	for (size_t i = 0; i + 1 < cfg->n; i += 2) {
		struct mq_ynode *k = cfg->kids[i], *v = cfg->kids[i + 1];
		if (k->type != MQ_YN_SCALAR)
			continue;
		if (strcmp(k->text, "name") == 0) {
			if (v->type == MQ_YN_SCALAR && strcmp(v->text, in->name) != 0)
				mq_strv_pushf(&out->notes, "its config says name '%s'; the database name '%s' is used",
					      v->text, in->name);
			continue;
		}
		if (!mq_field_find(k->text) || strcmp(k->text, "state") == 0) {
			mq_strv_push_take(&out->ignored, one_line(k, v));
			continue;
		}
		if (strcmp(k->text, "storage") == 0)
			fix_storage(v, in, &out->notes);
		cfg->kids[i] = NULL;
		cfg->kids[i + 1] = NULL;
		yadd(m, k);
		yadd(m, v);
	}
	/* the moved pairs are NULL in cfg now */
	size_t w = 0;
	for (size_t i = 0; i < cfg->n; i++)
		if (cfg->kids[i])
			cfg->kids[w++] = cfg->kids[i];
	cfg->n = w;
	mq_ynode_free(cfg);

	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	if (in->header) {
		const char *p = in->header;
		while (*p) {
			const char *nl = strchr(p, '\n');
			size_t l = nl ? (size_t)(nl - p) : strlen(p);
			mq_strbuf_adds(&sb, "# ");
			mq_strbuf_add(&sb, p, l);
			mq_strbuf_addc(&sb, '\n');
			p += l + (nl ? 1 : 0);
		}
	}
	int r = mq_yaml_emit(m, &sb);
	mq_ynode_free(m);
	if (r < 0) {
		*why = xstrdup("its config cannot be written as yaml");
		mq_strbuf_release(&sb);
		mq_pyconv_out_release(out);
		return -EINVAL;
	}
	if (out->ignored.n) {
		mq_strbuf_adds(&sb, "# Ignored by the python maqet and not read by maqet either:\n");
		for (size_t i = 0; i < out->ignored.n; i++) {
			const char *p = out->ignored.v[i];
			while (*p) {
				const char *nl = strchr(p, '\n');
				size_t l = nl ? (size_t)(nl - p) : strlen(p);
				mq_strbuf_adds(&sb, "#   ");
				mq_strbuf_add(&sb, p, l);
				mq_strbuf_addc(&sb, '\n');
				p += l + (nl ? 1 : 0);
			}
		}
	}
	out->yaml = mq_strbuf_detach(&sb);

	/* validate it like any manifest */
	struct mq_specset *set = mq_specset_new();
	struct mq_strv diags = MQ_STRV_INIT;
	r = mq_spec_parse_buffer(out->yaml, strlen(out->yaml), in->out_file, in->out_dir, in->out_dir, set, &diags);
	mq_specset_free(set);
	if (r < 0) {
		char *all = mq_strv_join(&diags, "; ");
		*why = xasprintf("the converted manifest does not validate: %s", all);
		free(all);
		mq_strv_clear(&diags);
		mq_pyconv_out_release(out);
		return -EINVAL;
	}
	mq_strv_clear(&diags);
	return 0;
}

void mq_pyconv_out_release(struct mq_pyconv_out *o)
{
	free(o->yaml);
	o->yaml = NULL;
	mq_strv_clear(&o->ignored);
	mq_strv_clear(&o->notes);
}
