/* jsonval.h - small json-c readers and writers shared by the field rows.
 *
 * Internal to specs/.  Readers take a value that may be NULL (absent or
 * JSON null) and never fail: a wrong type reads as "not given".
 */
#ifndef MQ_SPECS_JSONVAL_H
#define MQ_SPECS_JSONVAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/strv.h"

/* ---- writers (canonical form) ---- */
json_object *mq_json_str_or_null(const char *s);   /* NULL = JSON null */
json_object *mq_json_strv(const struct mq_strv *sv);

/* ---- readers (recorded canonical form) ---- */
/* The member `key` of object o, or NULL. */
json_object *mq_json_get(json_object *o, const char *key);
const char *mq_json_to_str(json_object *v);           /* NULL unless a string */
int64_t mq_json_to_int(json_object *v, int64_t dflt);  /* dflt unless an integer */
bool mq_json_to_bool(json_object *v);                 /* false when NULL */
/* Append every element of an array to sv (nothing unless an array). */
void mq_json_to_strv(json_object *v, struct mq_strv *sv);

#endif
