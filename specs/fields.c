/* fields.c - the table of manifest keys (see fields.h) and the rows of the
 * simple keys; `storage` and `network` rows live in storage.c and network.c.
 *
 * How a row without a change class is refused at compile time:
 *   - rows exist only as lines of MQ_FIELD_ROWS(ROW) (fields.h), and ROW takes
 *     every column positionally: a missing column is a preprocessor error
 *     ("macro requires 6 arguments"), an empty one a syntax error;
 *   - enum mq_field_class (spec.h) has no zero value, so a class left 0 is
 *     not a class;
 *   - MQ_FIELD_CHECK_ROW (fields.h) expands to one _Static_assert per row
 *     that its class is one of MQ_FIELD_RESTART, MQ_FIELD_STATE or
 *     MQ_FIELD_RECORD (tests/unit/meson.build checks at setup time that a
 *     row with class 0 does not compile and one with a class does).
 * mq_fields[], mq_field_keys[] and the row index enum are all expanded from
 * the same MQ_FIELD_ROWS list, so nothing else can name a key.  The unit
 * test test_fields_table also walks the table at run time.
 *
 * `extends` (shared bases) is deliberately not a row: it is not part of the
 * spec.  specs/extends.c consumes it and merges the bases in before the
 * table sees the document, so the rows, the canonical JSON and the hash only
 * ever see the merged result.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "specs/arguments.h"
#include "specs/fields.h"
#include "specs/jsonval.h"
#include "specs/names.h"
#include "specs/network.h"
#include "specs/snapshots.h"
#include "specs/qemuopt.h"
#include "specs/storage.h"
#include "specs/validate.h"
#include "util/parse.h"
#include "util/xalloc.h"

#define MIB (1024ULL * 1024ULL)
#define MEMORY_MAX (64ULL << 40)   /* 64T */
#define STOP_TIMEOUT_MIN 100ULL    /* ms */
#define STOP_TIMEOUT_MAX 3600000ULL /* 1h */

/* ---- parse: YAML node -> typed field ---------------------------------- */

static void name_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	if (!mq_given(v)) {
		if (v)
			mq_err_expect(c, v, "'name'", "a vm name");
		else
			mq_err_at(c, c->root, "missing required key 'name'");
	} else if (!mq_is_scalar(v) || !mq_valid_name(v->text, false)) {
		mq_err_expect(c, v, "'name'",
			      "a name matching [a-z0-9][a-z0-9-]{0,62} (lowercase letters, digits and '-')");
	} else {
		spec->name = xstrdup(v->text);
		x->name = (struct mq_pos){ v->line, v->col, v->file };
	}
}

/* An optional non-empty string replacing *field. */
static void string_parse(struct mq_pctx *c, const struct mq_ynode *v, const char *what, char **field)
{
	if (!mq_given(v))
		return;
	const char *s = mq_want_string(c, v, what);
	if (s) {
		free(*field);
		*field = xstrdup(s);
	}
}

/* An optional enum value: *out = index in names, unchanged after an error. */
#define ENUM_PARSE(c, v, what, names, out)                                                  \
	do {                                                                                \
		int e_;                                                                     \
		if (mq_given(v) && mq_parse_enum(c, v, what, names, MQ_ARRAY_SIZE(names), &e_)) \
			*(out) = e_;                                                        \
	} while (0)

static void state_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	int e = (int)spec->state;
	ENUM_PARSE(c, v, "'state'", mq_desired_names, &e);
	spec->state = (enum mq_desired)e;
}

static void binary_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	string_parse(c, v, "'binary'", &spec->binary);
}

static void machine_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	string_parse(c, v, "'machine'", &spec->machine);
}

static void accel_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	int e = (int)spec->accel;
	ENUM_PARSE(c, v, "'accel'", mq_accel_names, &e);
	spec->accel = (enum mq_accel)e;
}

static void memory_parse(struct mq_pctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	if (!mq_given(n))
		return;
	uint64_t *out = &spec->memory;
	uint64_t v;
	if (!mq_is_scalar(n) || mq_parse_size(n->text, MIB, &v) < 0) {
		if (mq_is_scalar(n) && mq_parse_size(n->text, MIB, &v) == -ERANGE)
			mq_err_expect(c, n, "'memory'", "at most 64T");
		else
			mq_err_expect(c, n, "'memory'", "a size such as 2048 (MiB) or 4G");
		return;
	}
	if (v < MIB) {
		mq_err_expect(c, n, "'memory'", "at least 1M");
		return;
	}
	if (v % MIB) {
		mq_err_expect(c, n, "'memory'", "a whole number of MiB");
		return;
	}
	if (v > MEMORY_MAX) {
		mq_err_expect(c, n, "'memory'", "at most 64T");
		return;
	}
	*out = v;
}


static void cpu_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	if (mq_given(v) && (!mq_is_scalar(v) || mq_parse_uint(v->text, 1, 1024, &spec->cpu) < 0))
		mq_err_expect(c, v, "'cpu'", "an integer from 1 to 1024");
}

static void display_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	string_parse(c, v, "'display'", &spec->display);
}

static void vga_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	string_parse(c, v, "'vga'", &spec->vga);
}

static void serial_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	int e = (int)spec->serial;
	ENUM_PARSE(c, v, "'serial'", mq_serial_names, &e);
	spec->serial = (enum mq_serial)e;
}

static void stop_timeout_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec,
			       struct mq_spec_extra *x)
{
	(void)x;
	if (!mq_given(v))
		return;
	uint64_t ms;
	if (!mq_is_scalar(v) || mq_parse_duration(v->text, &ms) < 0)
		mq_err_expect(c, v, "'stop_timeout'", "a duration such as 30s, 500ms or 2m");
	else if (ms < STOP_TIMEOUT_MIN || ms > STOP_TIMEOUT_MAX)
		mq_err_expect(c, v, "'stop_timeout'", "between 100ms and 1h");
	else
		spec->stop_timeout_ms = ms;
}

static void restart_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	int e = (int)spec->restart;
	ENUM_PARSE(c, v, "'restart'", mq_restart_names, &e);
	spec->restart = (enum mq_restart)e;
}

static void depends_on_parse(struct mq_pctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	if (!mq_given(n))
		return;
	const struct mq_ynode *const *items;
	size_t count;
	if (n->type == MQ_YN_SEQ) {
		items = (const struct mq_ynode *const *)n->kids;
		count = n->n;
	} else if (mq_is_scalar(n)) {
		items = &n;
		count = 1;
	} else {
		mq_err_expect(c, n, "'depends_on'", "a list of vm names");
		return;
	}
	const char **texts = xcalloc(count + 1, sizeof(*texts));
	for (size_t i = 0; i < count; i++) {
		if (mq_is_scalar(items[i]))
			texts[i] = items[i]->text;
		else
			mq_err_expect(c, items[i], "'depends_on' entries", "vm names");
	}
	long *first = mq_find_dups(texts, count);
	x->deps = xcalloc(count + 1, sizeof(*x->deps));
	for (size_t i = 0; i < count; i++) {
		const struct mq_ynode *it = items[i];
		if (!texts[i])
			continue;
		if (first[i] >= 0) {
			char *cl = mq_clip(it->text);
			mq_err_at(c, it, "'%s' is listed twice in 'depends_on' (first at line %d)", cl,
			       items[first[i]]->line);
			free(cl);
			continue;
		}
		x->deps[spec->depends_on.n] = (struct mq_pos){ it->line, it->col, it->file };
		mq_strv_push(&spec->depends_on, it->text);
	}
	free(first);
	free(texts);
}

/* `placement: {host: NAME}`: exactly one host.  Lists and selectors are
 * scheduling, which maqet leaves to a cluster engine (`maqet export`). */
static void placement_parse(struct mq_pctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	if (!mq_given(n))
		return;
	if (n->type != MQ_YN_MAP) {
		mq_err_expect(c, n, "'placement'", "a mapping such as {host: lab1}");
		return;
	}
	static const char *const keys[] = { "host" };
	const struct mq_ynode *v[1], *k[1];
	/* keys a scheduler would take get a pointer to export, not a did-you-mean */
	for (size_t i = 0; i < n->n; i += 2) {
		const struct mq_ynode *key = n->kids[i];
		if (mq_is_scalar(key) && (strcmp(key->text, "hosts") == 0 || strcmp(key->text, "selector") == 0 ||
					  strcmp(key->text, "labels") == 0 || strcmp(key->text, "affinity") == 0)) {
			mq_err_at(c, key,
				  "'placement' pins a vm to exactly one host: '%s' is scheduling, which maqet does not do "
				  "(use 'placement: {host: NAME}', or 'maqet export nomad|incus|kubevirt' to run the vm on a "
				  "cluster engine that schedules)",
				  key->text);
			return;
		}
	}
	mq_collect_keys(c, n, keys, 1, v, k, " in 'placement'");
	const struct mq_ynode *h = v[0];
	if (!h) {
		mq_err_at(c, n, "'placement' needs 'host' (the one host this vm runs on)");
		return;
	}
	if (h->type == MQ_YN_SEQ) {
		mq_err_at(c, h,
			  "'host' in 'placement' must be exactly one host name, got a list (maqet pins, it does not "
			  "schedule: use 'maqet export nomad|incus|kubevirt' for placement over several hosts)");
		return;
	}
	if (!mq_is_scalar(h) || !mq_valid_host_name(h->text)) {
		mq_err_expect(c, h, "'host' in 'placement'",
			      "a host name (letters, digits, '-' and '.', at most 63 characters)");
		return;
	}
	spec->placement_host = xstrdup(h->text);
	x->placement = (struct mq_pos){ h->line, h->col, h->file };
}

/* Raw args are checked like `arguments` (specs/qemuopt.h): a token starting
 * with '-' is an option and, unless it is a flag or the next token is an
 * option too, the next token is its value.  Relative host paths in values
 * are made absolute, so only such manifests change their canonical form. */
static void args_parse(struct mq_pctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	if (!mq_given(n))
		return;
	const struct mq_ynode *const *items = (const struct mq_ynode *const *)&n;
	size_t count = 1;
	if (!mq_is_scalar(n)) {
		if (n->type != MQ_YN_SEQ) {
			mq_err_expect(c, n, "'args'", "a list of strings");
			return;
		}
		items = (const struct mq_ynode *const *)n->kids;
		count = n->n;
	}
	struct mq_qemuopt_ctx q = { .file = c->file, .base_dir = c->base_dir, .d = c->d, .where = "args" };
	for (size_t i = 0; i < count; i++) {
		const struct mq_ynode *it = items[i];
		if (it->type != MQ_YN_SCALAR || mq_ynode_is_null(it)) {
			mq_err_expect(c, it, "'args' entries", "strings");
			continue;
		}
		mq_strv_push(&spec->args, it->text);
		if (it->text[0] != '-' || it->text[1] == '\0')
			continue;
		const char *name = it->text + (it->text[1] == '-' ? 2 : 1);
		const struct mq_ynode *val = NULL;
		if (!mq_qemuopt_is_flag(name) && i + 1 < count && items[i + 1]->type == MQ_YN_SCALAR &&
		    !mq_ynode_is_null(items[i + 1]) && items[i + 1]->text[0] != '-')
			val = items[i + 1];
		char *rewritten = NULL;
		struct mq_qemuopt_pos opos = { it->line, it->col };
		struct mq_qemuopt_pos vpos = val ? (struct mq_qemuopt_pos){ val->line, val->col } : opos;
		c->errors += mq_qemuopt_check(&q, name, opos, val ? val->text : NULL, vpos, &rewritten);
		if (val) {
			mq_strv_push(&spec->args, rewritten ? rewritten : val->text);
			i++;
		}
		free(rewritten);
	}
}

/* Rendered into spec->arguments; the options go to c->argopts for the
 * cross-field checks of mq_spec_parse_document(). */
static void arguments_parse(struct mq_pctx *c, const struct mq_ynode *v, struct mq_spec *spec,
			    struct mq_spec_extra *x)
{
	(void)x;
	if (mq_given(v))
		c->errors += mq_arguments_render(v, c->file, c->base_dir, c->d, &spec->arguments, c->argopts);
}

/* ---- to_json: typed field -> canonical value --------------------------- */

static json_object *name_to_json(const struct mq_spec *s) { return mq_json_str_or_null(s->name); }
static json_object *state_to_json(const struct mq_spec *s) { return json_object_new_string(mq_desired_str(s->state)); }
static json_object *binary_to_json(const struct mq_spec *s) { return mq_json_str_or_null(s->binary); }
static json_object *machine_to_json(const struct mq_spec *s) { return mq_json_str_or_null(s->machine); }
static json_object *accel_to_json(const struct mq_spec *s) { return json_object_new_string(mq_accel_str(s->accel)); }
static json_object *memory_to_json(const struct mq_spec *s)
{
	return s->memory ? json_object_new_uint64(s->memory) : NULL;
}
static json_object *cpu_to_json(const struct mq_spec *s) { return s->cpu ? json_object_new_int64(s->cpu) : NULL; }
static json_object *display_to_json(const struct mq_spec *s) { return mq_json_str_or_null(s->display); }
static json_object *vga_to_json(const struct mq_spec *s) { return mq_json_str_or_null(s->vga); }
static json_object *serial_to_json(const struct mq_spec *s) { return json_object_new_string(mq_serial_str(s->serial)); }
static json_object *stop_timeout_to_json(const struct mq_spec *s) { return json_object_new_uint64(s->stop_timeout_ms); }
static json_object *restart_to_json(const struct mq_spec *s)
{
	return json_object_new_string(mq_restart_str(s->restart));
}
/* Sorted: the order of depends_on does not matter to anyone. */
static json_object *depends_on_to_json(const struct mq_spec *s)
{
	struct mq_strv deps = MQ_STRV_INIT;
	mq_strv_extend(&deps, &s->depends_on);
	mq_strv_sort(&deps);
	json_object *a = mq_json_strv(&deps);
	mq_strv_clear(&deps);
	return a;
}
static json_object *args_to_json(const struct mq_spec *s) { return mq_json_strv(&s->args); }
static json_object *arguments_to_json(const struct mq_spec *s) { return mq_json_strv(&s->arguments); }

/* ---- from_json: canonical value -> typed field ------------------------- */

static int name_from_json(json_object *v, struct mq_spec *s)
{
	const char *name = mq_json_to_str(v);
	if (!name)
		return -EINVAL;
	s->name = xstrdup(name);
	return 0;
}

#define ENUM_FROM_JSON(v, names) mq_name_index(mq_json_to_str(v), names, MQ_ARRAY_SIZE(names), 0)

static int state_from_json(json_object *v, struct mq_spec *s)
{
	s->state = (enum mq_desired)ENUM_FROM_JSON(v, mq_desired_names);
	return 0;
}
static int binary_from_json(json_object *v, struct mq_spec *s)
{
	const char *b = mq_json_to_str(v);
	free(s->binary);
	s->binary = xstrdup(b ? b : MQ_DEFAULT_BINARY);
	return 0;
}
static int machine_from_json(json_object *v, struct mq_spec *s)
{
	s->machine = xstrdup_null(mq_json_to_str(v));
	return 0;
}
static int accel_from_json(json_object *v, struct mq_spec *s)
{
	s->accel = (enum mq_accel)ENUM_FROM_JSON(v, mq_accel_names);
	return 0;
}
static int memory_from_json(json_object *v, struct mq_spec *s)
{
	s->memory = (uint64_t)mq_json_to_int(v, 0);
	return 0;
}
static int cpu_from_json(json_object *v, struct mq_spec *s)
{
	s->cpu = (unsigned)mq_json_to_int(v, 0);
	return 0;
}
static int display_from_json(json_object *v, struct mq_spec *s)
{
	s->display = xstrdup_null(mq_json_to_str(v));
	return 0;
}
static int vga_from_json(json_object *v, struct mq_spec *s)
{
	s->vga = xstrdup_null(mq_json_to_str(v));
	return 0;
}
static int serial_from_json(json_object *v, struct mq_spec *s)
{
	s->serial = (enum mq_serial)ENUM_FROM_JSON(v, mq_serial_names);
	return 0;
}
static int stop_timeout_from_json(json_object *v, struct mq_spec *s)
{
	s->stop_timeout_ms = (uint64_t)mq_json_to_int(v, MQ_DEFAULT_STOP_TIMEOUT_MS);
	return 0;
}
static int restart_from_json(json_object *v, struct mq_spec *s)
{
	s->restart = (enum mq_restart)ENUM_FROM_JSON(v, mq_restart_names);
	return 0;
}
static int depends_on_from_json(json_object *v, struct mq_spec *s)
{
	mq_json_to_strv(v, &s->depends_on);
	return 0;
}
static json_object *placement_to_json(const struct mq_spec *s)
{
	if (!s->placement_host)
		return MQ_JSON_ABSENT; /* specs without placement keep their hash */
	json_object *o = json_object_new_object();
	json_object_object_add(o, "host", json_object_new_string(s->placement_host));
	return o;
}
static int placement_from_json(json_object *v, struct mq_spec *s)
{
	if (!v || !json_object_is_type(v, json_type_object))
		return 0;
	s->placement_host = xstrdup_null(mq_json_to_str(mq_json_get(v, "host")));
	return 0;
}
static int args_from_json(json_object *v, struct mq_spec *s)
{
	mq_json_to_strv(v, &s->args);
	return 0;
}
static int arguments_from_json(json_object *v, struct mq_spec *s)
{
	mq_json_to_strv(v, &s->arguments);
	return 0;
}

const char mq_json_absent_marker = 0;

/* ---- the table ---------------------------------------------------------- */

/* MQ_FIELD_ROWS, the table's lines, is in fields.h (export engines expand
 * its key column too). */
MQ_FIELD_ROWS(MQ_FIELD_CHECK_ROW)
_Static_assert(!MQ_FIELD_CLASS_OK(0), "enum mq_field_class must have no zero value, so a forgotten class is not a class");

#define ID_ROW(key, cls, argopt, parse, to_json, from_json) F_##key,
enum { MQ_FIELD_ROWS(ID_ROW) F_COUNT };

#define TABLE_ROW(key, cls, argopt, parse, to_json, from_json) { #key, cls, argopt, parse, to_json, from_json },
const struct mq_field mq_fields[] = { MQ_FIELD_ROWS(TABLE_ROW) };
const size_t mq_fields_n = F_COUNT;
_Static_assert(MQ_ARRAY_SIZE(mq_fields) == F_COUNT, "one table row per key");

#define KEY_ROW(key, cls, argopt, parse, to_json, from_json) #key,
const char *const mq_field_keys[] = { MQ_FIELD_ROWS(KEY_ROW) };

bool mq_field_class_valid(enum mq_field_class cls)
{
	return MQ_FIELD_CLASS_OK(cls);
}

const struct mq_field *mq_field_find(const char *key)
{
	if (!key)
		return NULL;
	for (size_t i = 0; i < F_COUNT; i++)
		if (strcmp(mq_fields[i].key, key) == 0)
			return &mq_fields[i];
	return NULL;
}

/* Keys that are not manifest fields (the reconciler's "source", or NULL)
 * count as restart: the safe answer for something unknown. */
enum mq_field_class mq_spec_field_class(const char *key)
{
	const struct mq_field *f = mq_field_find(key);
	return f ? f->cls : MQ_FIELD_RESTART;
}

size_t mq_spec_field_count(void)
{
	return F_COUNT;
}

const char *mq_spec_field_key(size_t i)
{
	return i < F_COUNT ? mq_field_keys[i] : NULL;
}

/* ---- the document --------------------------------------------------------- */

void mq_spec_parse_document(struct mq_pctx *c, const struct mq_ynode *root, struct mq_spec *spec,
			    struct mq_spec_extra *x)
{
	/* the rows, and `extends` (already consumed by extends.c, listed so a
	 * typo such as `extend:` gets a did-you-mean) */
	static const char *const doc_keys[F_COUNT + 1] = { MQ_FIELD_ROWS(KEY_ROW) "extends" };
	const struct mq_ynode *v[F_COUNT + 1], *k[F_COUNT + 1];
	struct mq_argopts opts = { 0 };
	c->root = root;
	c->argopts = &opts;
	mq_collect_keys(c, root, doc_keys, F_COUNT + 1, v, k, "");
	for (size_t i = 0; i < F_COUNT; i++)
		mq_fields[i].parse(c, v[i], spec, x);

	/* cross-field */
	mq_check_argument_conflicts(c, &opts, v, k);
	bool args_display = false;
	for (size_t i = 0; i < opts.n; i++)
		if (strcmp(opts.v[i].name, "display") == 0)
			args_display = true;
	if (!spec->display && !args_display && !mq_given(v[F_display]))
		spec->display = xstrdup("none");
	mq_argopts_release(&opts);
	c->argopts = NULL;
}
