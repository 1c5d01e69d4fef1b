/* canonical.c - canonical JSON of a spec, its hash, and diffs, all driven by
 * the fields table (fields.h). */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "specs/canonical.h"
#include "specs/fields.h"
#include "util/sha256.h"
#include "util/xalloc.h"

void mq_spec_make_canonical(struct mq_spec *spec)
{
	json_object *o = json_object_new_object();
	for (size_t i = 0; i < mq_fields_n; i++) {
		json_object *v = mq_fields[i].to_json(spec);
		if (v != MQ_JSON_ABSENT) /* an optional key left out: no member at all */
			json_object_object_add(o, mq_fields[i].key, v);
	}
	free(spec->canonical);
	spec->canonical = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	mq_sha256_hex(spec->canonical, strlen(spec->canonical), spec->hash);
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
		for (size_t i = 0; i < mq_fields_n; i++)
			mq_strv_push(changed, mq_fields[i].key);
		r = -EINVAL;
	} else {
		for (size_t i = 0; i < mq_fields_n; i++) {
			const char *key = mq_fields[i].key;
			json_object *x = NULL, *y = NULL;
			bool hx = json_object_object_get_ex(a, key, &x);
			bool hy = json_object_object_get_ex(b, key, &y);
			if (hx != hy || !json_object_equal(x, y))
				mq_strv_push(changed, key);
		}
	}
	json_object_put(a);
	json_object_put(b);
	return r;
}
