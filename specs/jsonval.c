/* jsonval.c - json-c helpers for the canonical form. */
#include "specs/jsonval.h"

json_object *mq_json_str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

json_object *mq_json_strv(const struct mq_strv *sv)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < sv->n; i++)
		json_object_array_add(a, json_object_new_string(sv->v[i]));
	return a;
}

json_object *mq_json_get(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

const char *mq_json_to_str(json_object *v)
{
	if (!v || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int64_t mq_json_to_int(json_object *v, int64_t dflt)
{
	if (!v || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

bool mq_json_to_bool(json_object *v)
{
	return v ? json_object_get_boolean(v) : false;
}

void mq_json_to_strv(json_object *v, struct mq_strv *sv)
{
	if (!v || !json_object_is_type(v, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *e = json_object_array_get_idx(v, i);
		mq_strv_push(sv, json_object_get_string(e));
	}
}
