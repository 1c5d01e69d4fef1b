/* fuzz-qmp.c - libFuzzer target for the QMP line parser: the input is split
 * on '\n' and every line goes through mq_qmp_parse_line(). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reconciler/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	while (p <= end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_object *obj = NULL;
		struct mq_error *err = NULL;
		int r = mq_qmp_parse_line(p, len, &obj, &err);
		if (r == 0) {
			/* exercise the result a little: it must be an object */
			if (!json_object_is_type(obj, json_type_object))
				__builtin_trap();
			(void)json_object_to_json_string(obj);
		} else if (!err || obj) {
			__builtin_trap();
		}
		json_object_put(obj);
		mq_error_free(err);
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}
