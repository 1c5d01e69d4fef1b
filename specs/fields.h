/* fields.h - the one table of manifest keys.
 *
 * Internal to specs/.  Every top-level manifest key is one row of
 * mq_fields[], in canonical key order:
 *
 *   key        the manifest key, also the canonical JSON key
 *   cls        what changing it requires (spec.h enum mq_field_class)
 *   argopt     the `arguments` option that sets the same thing (conflict
 *              check, validate.c), or NULL
 *   parse      YAML node -> typed field, with diags
 *   to_json    typed field -> canonical JSON value
 *   from_json  canonical JSON value -> typed field
 *
 * Everything that lists keys is driven by this table: the parser's known
 * keys and did-you-mean (fields.c), mq_spec_field_class() (fields.c), the
 * canonical writer and mq_spec_diff() (canonical.c) and the reader of the
 * recorded form (fromjson.c).  A new key is one row; how a row without a
 * change class is refused at compile time is explained in fields.c.
 */
#ifndef MQ_SPECS_FIELDS_H
#define MQ_SPECS_FIELDS_H

#include <stddef.h>

#include "specs/spec.h"
#include "specs/validate.h"
#include "specs/value.h"
#include "specs/yamlread.h"

struct json_object;

#define MQ_DEFAULT_BINARY "qemu-system-x86_64"
#define MQ_DEFAULT_STOP_TIMEOUT_MS 30000

/* Called for every row, `v` = the key's value node or NULL when the key is
 * absent (most rows then do nothing; a null value counts as absent). */
typedef void mq_field_parse_fn(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec,
			       struct mq_spec_extra *x);
/* The canonical value; NULL means JSON null, MQ_JSON_ABSENT means "leave
 * the key out of the canonical object" (keys added later, so the canonical
 * JSON and hash of specs that do not use them stay what they were). */
extern const char mq_json_absent_marker;
#define MQ_JSON_ABSENT ((struct json_object *)(void *)&mq_json_absent_marker)
typedef struct json_object *mq_field_to_json_fn(const struct mq_spec *spec);
/* `v` = the recorded value or NULL (absent or null).  Returns 0, or
 * -EINVAL when the record cannot be used without it. */
typedef int mq_field_from_json_fn(struct json_object *v, struct mq_spec *spec);

struct mq_field {
	const char *key;
	enum mq_field_class cls;
	const char *argopt;
	mq_field_parse_fn *parse;
	mq_field_to_json_fn *to_json;
	mq_field_from_json_fn *from_json;
};

extern const struct mq_field mq_fields[];
extern const size_t mq_fields_n;
/* The keys alone, in table order (for mq_collect_keys and did-you-mean). */
extern const char *const mq_field_keys[];

/* Compile-time check of one row (see fields.c): expands to a
 * _Static_assert that `cls` is one of the three change classes. */
#define MQ_FIELD_CLASS_OK(cls) ((cls) == MQ_FIELD_RESTART || (cls) == MQ_FIELD_STATE || (cls) == MQ_FIELD_RECORD)
#define MQ_FIELD_CHECK_ROW(key, cls, argopt, parse, to_json, from_json) \
	_Static_assert(MQ_FIELD_CLASS_OK(cls),                           \
		       "field '" #key "' needs a change class: MQ_FIELD_RESTART, MQ_FIELD_STATE or MQ_FIELD_RECORD");

/* The row of `key`, or NULL. */
const struct mq_field *mq_field_find(const char *key);
/* True for the three classes of enum mq_field_class. */
bool mq_field_class_valid(enum mq_field_class cls);

/* A document's root mapping -> spec: every row parsed in table order, then
 * the cross-field checks and the defaults that depend on several keys. */
void mq_spec_parse_document(struct mq_pctx *c, const struct mq_ynode *root, struct mq_spec *spec,
			    struct mq_spec_extra *x);

/* ---- the field table's lines -------------------------------------------- */

/* One line per manifest key, in canonical key order (changing the order
 * changes every hash).  Columns, all required, positionally:
 *   ROW(key, change class, argopt, parse, to_json, from_json)
 * The key is written as an identifier (its text is #key, and F_key its
 * index).  argopt: the `arguments` option setting the same thing, or NULL.
 * Class: MQ_FIELD_RESTART when the key reaches QEMU's argv, MQ_FIELD_STATE
 * for start/stop, MQ_FIELD_RECORD when only the stored record changes.
 * Only specs/fields.c expands the function columns; other users (the export
 * engines, reconciler/export-*.c) take the key alone and drop the rest. */
#define MQ_FIELD_ROWS(ROW)                                                                                 \
	ROW(name,         MQ_FIELD_RESTART, NULL,      name_parse,         name_to_json,         name_from_json)         \
	ROW(state,        MQ_FIELD_STATE,   NULL,      state_parse,        state_to_json,        state_from_json)        \
	ROW(binary,       MQ_FIELD_RESTART, NULL,      binary_parse,       binary_to_json,       binary_from_json)       \
	ROW(machine,      MQ_FIELD_RESTART, "machine", machine_parse,      machine_to_json,      machine_from_json)      \
	ROW(accel,        MQ_FIELD_RESTART, NULL,      accel_parse,        accel_to_json,        accel_from_json)        \
	ROW(memory,       MQ_FIELD_RESTART, "m",       memory_parse,       memory_to_json,       memory_from_json)       \
	ROW(cpu,          MQ_FIELD_RESTART, "smp",     cpu_parse,          cpu_to_json,          cpu_from_json)          \
	ROW(display,      MQ_FIELD_RESTART, "display", display_parse,      display_to_json,      display_from_json)      \
	ROW(vga,          MQ_FIELD_RESTART, "vga",     vga_parse,          vga_to_json,          vga_from_json)          \
	ROW(storage,      MQ_FIELD_RESTART, NULL,      mq_storage_parse,   mq_storage_to_json,   mq_storage_from_json)   \
	ROW(network,      MQ_FIELD_RESTART, NULL,      mq_network_parse,   mq_network_to_json,   mq_network_from_json)   \
	ROW(serial,       MQ_FIELD_RESTART, NULL,      serial_parse,       serial_to_json,       serial_from_json)       \
	ROW(stop_timeout, MQ_FIELD_RECORD,  NULL,      stop_timeout_parse, stop_timeout_to_json, stop_timeout_from_json) \
	ROW(restart,      MQ_FIELD_RECORD,  NULL,      restart_parse,      restart_to_json,      restart_from_json)      \
	ROW(depends_on,   MQ_FIELD_RECORD,  NULL,      depends_on_parse,   depends_on_to_json,   depends_on_from_json)   \
	ROW(args,         MQ_FIELD_RESTART, NULL,      args_parse,         args_to_json,         args_from_json)         \
	ROW(arguments,    MQ_FIELD_RESTART, NULL,      arguments_parse,    arguments_to_json,    arguments_from_json)    \
	ROW(snapshots,    MQ_FIELD_RECORD,  NULL,      mq_snapshots_parse, mq_snapshots_to_json, mq_snapshots_from_json) \
	ROW(placement,    MQ_FIELD_RECORD,  NULL,      placement_parse,    placement_to_json,    placement_from_json)

/* the number of rows, as a constant expression */
#define MQ_FIELD_ONE(key, cls, argopt, parse, to_json, from_json) +1
enum { MQ_FIELD_COUNT = 0 MQ_FIELD_ROWS(MQ_FIELD_ONE) };

#endif
