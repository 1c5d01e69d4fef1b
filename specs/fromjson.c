#include "specs/fromjson.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"
#include "util/sha256.h"
#include "util/xalloc.h"

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

static bool jbool(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v))
		return false;
	return json_object_get_boolean(v);
}

/* Enum value whose name (as spec.h's mq_*_str() spells it) is s, else dflt. */
static int lookup(const char *s, const char *(*name_of)(int), int count, int dflt)
{
	if (!s)
		return dflt;
	for (int i = 0; i < count; i++)
		if (strcmp(s, name_of(i)) == 0)
			return i;
	return dflt;
}

/* adapters: spec.h's helpers take their own enum types */
static const char *desired_name(int v) { return mq_desired_str((enum mq_desired)v); }
static const char *accel_name(int v) { return mq_accel_str((enum mq_accel)v); }
static const char *restart_name(int v) { return mq_restart_str((enum mq_restart)v); }
static const char *stype_name(int v) { return mq_storage_type_str((enum mq_storage_type)v); }
static const char *iface_name(int v) { return mq_iface_str((enum mq_iface)v); }
static const char *serial_name(int v) { return v == MQ_SERIAL_NONE ? "none" : "log"; }

static void strv_from(json_object *o, const char *key, struct mq_strv *sv)
{
	json_object *a;
	if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		mq_strv_push(sv, json_object_get_string(e));
	}
}

int mq_spec_from_canonical(const char *json, const char *source, struct mq_spec **out, struct mq_error **err)
{
	json_object *o = json ? json_tokener_parse(json) : NULL;
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return mq_error_set(err, EINVAL, "recorded spec is not valid json");
	}
	const char *name = jstr(o, "name");
	if (!name) {
		json_object_put(o);
		return mq_error_set(err, EINVAL, "recorded spec has no name");
	}
	struct mq_spec *s = xcalloc(1, sizeof(*s));
	s->name = xstrdup(name);
	s->source = xstrdup_null(source);
	s->file = xstrdup("(recorded spec)");
	s->abs_file = xstrdup_null(source);
	s->state = (enum mq_desired)lookup(jstr(o, "state"), desired_name, 2, 0);
	s->binary = xstrdup(jstr(o, "binary") ? jstr(o, "binary") : "qemu-system-x86_64");
	s->machine = xstrdup_null(jstr(o, "machine"));
	s->accel = (enum mq_accel)lookup(jstr(o, "accel"), accel_name, 3, 0);
	s->memory = (uint64_t)jint(o, "memory", 0);
	s->cpu = (unsigned)jint(o, "cpu", 0);
	s->display = xstrdup_null(jstr(o, "display"));
	s->vga = xstrdup_null(jstr(o, "vga"));
	s->serial = (enum mq_serial)lookup(jstr(o, "serial"), serial_name, 2, 0);
	s->stop_timeout_ms = (uint64_t)jint(o, "stop_timeout", 30000);
	s->restart = (enum mq_restart)lookup(jstr(o, "restart"), restart_name, 3, 0);
	strv_from(o, "depends_on", &s->depends_on);
	strv_from(o, "args", &s->args);
	strv_from(o, "arguments", &s->arguments);

	json_object *arr;
	if (json_object_object_get_ex(o, "storage", &arr) && json_object_is_type(arr, json_type_array)) {
		size_t n = json_object_array_length(arr);
		s->storage = xcalloc(n + 1, sizeof(*s->storage));
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_array_get_idx(arr, i);
			struct mq_storage *st = &s->storage[s->n_storage++];
			st->name = xstrdup(jstr(e, "name") ? jstr(e, "name") : "disk");
			st->type = (enum mq_storage_type)lookup(jstr(e, "type"), stype_name, 3, 0);
			st->file = xstrdup_null(jstr(e, "file"));
			st->size = (uint64_t)jint(e, "size", 0);
			st->interface = (enum mq_iface)lookup(jstr(e, "interface"), iface_name, 5, 0);
			st->backing_file = xstrdup_null(jstr(e, "backing_file"));
			st->backing_format = xstrdup_null(jstr(e, "backing_format"));
			st->path = xstrdup_null(jstr(e, "path"));
			st->mount_tag = xstrdup_null(jstr(e, "mount_tag"));
			st->security_model = xstrdup_null(jstr(e, "security_model"));
			st->readonly = jbool(e, "readonly");
		}
	}
	if (json_object_object_get_ex(o, "network", &arr) && json_object_is_type(arr, json_type_array)) {
		size_t n = json_object_array_length(arr);
		s->network = xcalloc(n + 1, sizeof(*s->network));
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_array_get_idx(arr, i);
			struct mq_network *nw = &s->network[s->n_network++];
			nw->type = xstrdup(jstr(e, "type") ? jstr(e, "type") : "user");
			json_object *fw;
			if (json_object_object_get_ex(e, "forward", &fw) && json_object_is_type(fw, json_type_array)) {
				size_t m = json_object_array_length(fw);
				nw->forwards = xcalloc(m + 1, sizeof(*nw->forwards));
				for (size_t k = 0; k < m; k++) {
					const char *f = json_object_get_string(json_object_array_get_idx(fw, k));
					char proto[8] = "", hp[8] = "", gp[8] = "";
					const char *c1 = f ? strchr(f, ':') : NULL;
					const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
					unsigned h, g;
					if (!c1 || !c2 || (size_t)(c1 - f) >= sizeof(proto) || (size_t)(c2 - c1 - 1) >= sizeof(hp) ||
					    strlen(c2 + 1) >= sizeof(gp))
						continue;
					memcpy(proto, f, (size_t)(c1 - f));
					memcpy(hp, c1 + 1, (size_t)(c2 - c1 - 1));
					memcpy(gp, c2 + 1, strlen(c2 + 1) + 1);
					if (mq_parse_uint(hp, 1, 65535, &h) < 0 || mq_parse_uint(gp, 1, 65535, &g) < 0 ||
					    strlen(proto) > 3)
						continue;
					struct mq_forward *fwd = &nw->forwards[nw->n_forwards++];
					memcpy(fwd->proto, proto, strlen(proto) + 1);
					fwd->host_port = (uint16_t)h;
					fwd->guest_port = (uint16_t)g;
				}
			}
		}
	}
	s->canonical = xstrdup(json);
	mq_sha256_hex(json, strlen(json), s->hash);
	json_object_put(o);
	*out = s;
	return 0;
}
