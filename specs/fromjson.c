/* fromjson.c - rebuild a struct mq_spec from its recorded canonical JSON,
 * one row of the fields table (fields.h) at a time. */
#include "specs/fromjson.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "specs/fields.h"
#include "specs/jsonval.h"
#include "util/sha256.h"
#include "util/xalloc.h"

int mq_spec_from_canonical(const char *json, const char *source, struct mq_spec **out, struct mq_error **err)
{
	json_object *o = json ? json_tokener_parse(json) : NULL;
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return mq_error_set(err, EINVAL, "recorded spec is not valid json");
	}
	struct mq_spec *s = xcalloc(1, sizeof(*s));
	for (size_t i = 0; i < mq_fields_n; i++) {
		if (mq_fields[i].from_json(mq_json_get(o, mq_fields[i].key), s) < 0) {
			int r = mq_error_set(err, EINVAL, "recorded spec has no %s", mq_fields[i].key);
			mq_spec_free(s);
			json_object_put(o);
			return r;
		}
	}
	s->source = xstrdup_null(source);
	s->file = xstrdup("(recorded spec)");
	s->abs_file = xstrdup_null(source);
	s->canonical = xstrdup(json);
	mq_sha256_hex(json, strlen(json), s->hash);
	json_object_put(o);
	*out = s;
	return 0;
}
