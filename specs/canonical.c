/* canonical.c - canonical JSON of a spec, its hash, diffs and field classes.
 *
 * The canonical form is built from the typed fields only, in a fixed key
 * order with every default filled in (unset = null), so YAML key order,
 * comments, formatting, `cpu: 2` vs `cpu: "2"` or `memory: 1024` vs
 * `memory: 1G` never change it, and any change of value does.
 */
#include <errno.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "specs/internal.h"
#include "specs/spec.h"
#include "util/sha256.h"
#include "util/xalloc.h"

static const char *const canonical_keys[] = {
	"name", "state", "binary", "machine", "accel", "memory", "cpu", "display", "vga", "storage", "network",
	"serial", "stop_timeout", "restart", "depends_on", "args", "arguments",
};

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *strv_array(const struct mq_strv *sv)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < sv->n; i++)
		json_object_array_add(a, json_object_new_string(sv->v[i]));
	return a;
}

static json_object *storage_json(const struct mq_storage *s)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", str_or_null(s->name));
	json_object_object_add(o, "type", json_object_new_string(mq_storage_type_str(s->type)));
	if (s->type == MQ_STORAGE_VIRTFS) {
		json_object_object_add(o, "path", str_or_null(s->path));
		json_object_object_add(o, "mount_tag", str_or_null(s->mount_tag));
		json_object_object_add(o, "security_model", str_or_null(s->security_model));
		json_object_object_add(o, "readonly", json_object_new_boolean(s->readonly));
	} else {
		json_object_object_add(o, "file", str_or_null(s->file));
		json_object_object_add(o, "size", s->size ? json_object_new_uint64(s->size) : NULL);
		json_object_object_add(o, "interface", json_object_new_string(mq_iface_str(s->interface)));
		json_object_object_add(o, "backing_file", str_or_null(s->backing_file));
		json_object_object_add(o, "backing_format", str_or_null(s->backing_format));
	}
	return o;
}

static json_object *network_json(const struct mq_network *n)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(n->type ? n->type : "user"));
	json_object *f = json_object_new_array();
	for (size_t i = 0; i < n->n_forwards; i++) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%s:%u:%u", n->forwards[i].proto, (unsigned)n->forwards[i].host_port,
			 (unsigned)n->forwards[i].guest_port);
		json_object_array_add(f, json_object_new_string(buf));
	}
	json_object_object_add(o, "forward", f);
	return o;
}

void mq_spec_make_canonical(struct mq_spec *spec)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", str_or_null(spec->name));
	json_object_object_add(o, "state", json_object_new_string(mq_desired_str(spec->state)));
	json_object_object_add(o, "binary", str_or_null(spec->binary));
	json_object_object_add(o, "machine", str_or_null(spec->machine));
	json_object_object_add(o, "accel", json_object_new_string(mq_accel_str(spec->accel)));
	json_object_object_add(o, "memory", spec->memory ? json_object_new_uint64(spec->memory) : NULL);
	json_object_object_add(o, "cpu", spec->cpu ? json_object_new_int64(spec->cpu) : NULL);
	json_object_object_add(o, "display", str_or_null(spec->display));
	json_object_object_add(o, "vga", str_or_null(spec->vga));
	json_object *st = json_object_new_array();
	for (size_t i = 0; i < spec->n_storage; i++)
		json_object_array_add(st, storage_json(&spec->storage[i]));
	json_object_object_add(o, "storage", st);
	json_object *net = json_object_new_array();
	for (size_t i = 0; i < spec->n_network; i++)
		json_object_array_add(net, network_json(&spec->network[i]));
	json_object_object_add(o, "network", net);
	json_object_object_add(o, "serial", json_object_new_string(spec->serial == MQ_SERIAL_NONE ? "none" : "log"));
	json_object_object_add(o, "stop_timeout", json_object_new_uint64(spec->stop_timeout_ms));
	json_object_object_add(o, "restart", json_object_new_string(mq_restart_str(spec->restart)));
	struct mq_strv deps = MQ_STRV_INIT;
	mq_strv_extend(&deps, &spec->depends_on);
	mq_strv_sort(&deps);
	json_object_object_add(o, "depends_on", strv_array(&deps));
	mq_strv_clear(&deps);
	json_object_object_add(o, "args", strv_array(&spec->args));
	json_object_object_add(o, "arguments", strv_array(&spec->arguments));

	free(spec->canonical);
	spec->canonical = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	mq_sha256_hex(spec->canonical, strlen(spec->canonical), spec->hash);
}

enum mq_field_class mq_spec_field_class(const char *key)
{
	if (!key)
		return MQ_FIELD_RESTART;
	if (strcmp(key, "state") == 0)
		return MQ_FIELD_STATE;
	if (strcmp(key, "restart") == 0 || strcmp(key, "stop_timeout") == 0 || strcmp(key, "depends_on") == 0)
		return MQ_FIELD_RECORD;
	return MQ_FIELD_RESTART;
}

static json_object *parse_object(const char *s)
{
	if (!s)
		return NULL;
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		return NULL;
	json_object *o = json_tokener_parse_ex(tok, s, (int)strnlen(s, 1 << 30));
	if (o && (json_tokener_get_error(tok) != json_tokener_success || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

int mq_spec_diff(const char *old_canonical, const char *new_canonical, struct mq_strv *changed)
{
	json_object *a = parse_object(old_canonical), *b = parse_object(new_canonical);
	int r = 0;
	if (!a || !b) {
		for (size_t i = 0; i < MQ_ARRAY_SIZE(canonical_keys); i++)
			mq_strv_push(changed, canonical_keys[i]);
		r = -EINVAL;
	} else {
		for (size_t i = 0; i < MQ_ARRAY_SIZE(canonical_keys); i++) {
			json_object *x = NULL, *y = NULL;
			bool hx = json_object_object_get_ex(a, canonical_keys[i], &x);
			bool hy = json_object_object_get_ex(b, canonical_keys[i], &y);
			if (hx != hy || !json_object_equal(x, y))
				mq_strv_push(changed, canonical_keys[i]);
		}
	}
	json_object_put(a);
	json_object_put(b);
	return r;
}
