/* arguments.c - the Python maqet's structured `arguments` -> QEMU argv.
 *
 * `arguments` is a list (or a single mapping, each key one option in
 * document order).  Each item renders to "-OPT" and, when there is one, a
 * value token:
 *
 *   enable-kvm                      -> -enable-kvm     (a leading '-' is kept)
 *   {smp: 2}                        -> -smp 2          (scalar text verbatim)
 *   {nographic: null}  / ~ / ""     -> -nographic
 *   {k: {a: 1, b: 2}}               -> -k a=1,b=2
 *   {k: {a: {b: {c: 1}}}}           -> -k a.b.c=1      (nested maps: dotted keys)
 *   {display: {gtk: null, zoom-to-fit: on}} -> -display gtk,zoom-to-fit=on
 *   {k: [a, b]}                     -> -k a,b          (top-level list: comma-joined)
 *   {k: {x: [1, 2]}}                -> -k x.0=1,x.1=2  (list under a key: QEMU's dotted
 *                                                       list convention, as in -object
 *                                                       ...,host-nodes.0=0,host-nodes.1=1)
 *   {display: gtk, zoom-to-fit: on} -> -display gtk,zoom-to-fit=on
 *                                      (first key is the option, its value positional
 *                                       unless null; further keys are suboptions)
 *
 * Values are not comma-escaped: a scalar is passed exactly as written, so
 * "file=a,,b" reaches QEMU as the user typed it.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "specs/arguments.h"
#include "specs/qemuopt.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

struct actx {
	const char *file;
	struct mq_diags *d;
	struct mq_qemuopt_ctx q; /* maqet-owned options, reserved ids, host paths */
	int errors;
	struct mq_strv *out;
	struct mq_argopts *opts;
	int once_line[14]; /* line of the first use of once_opts[i], 0 = unused */
};

/* QEMU options that may appear only once on a command line (14 of them:
 * see actx.once_line). */
static const char *const once_opts[14] = {
	"m", "smp", "machine", "display", "vga", "cpu", "name", "boot", "bios", "kernel", "initrd", "append",
	"pidfile", "daemonize",
};
static void aerr(struct actx *c, const struct mq_ynode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void aerr(struct actx *c, const struct mq_ynode *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	mq_diags_add(c->d, n->file ? n->file : c->file, n->line, n->col, "%s", msg);
	free(msg);
	c->errors++;
}

void mq_argopts_release(struct mq_argopts *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->v[i].name);
	free(o->v);
	o->v = NULL;
	o->n = o->alloc = 0;
}

/* null, "~", or an empty string: "no value". */
static bool no_value(const struct mq_ynode *n)
{
	return mq_ynode_is_null(n) || (n->type == MQ_YN_SCALAR && n->len == 0);
}

static bool valid_opt_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '_' || ch == '.'))
			return false;
	}
	return true;
}

/* Flatten a suboption value under `prefix` into "k=v" parts. */
static void flatten(struct actx *c, const char *prefix, const struct mq_ynode *n, struct mq_strv *parts)
{
	if (no_value(n)) {
		mq_strv_push(parts, prefix);
		return;
	}
	switch (n->type) {
	case MQ_YN_SCALAR:
		mq_strv_pushf(parts, "%s=%s", prefix, n->text);
		return;
	case MQ_YN_MAP:
		if (n->n == 0) {
			mq_strv_push(parts, prefix);
			return;
		}
		for (size_t i = 0; i + 1 < n->n; i += 2) {
			const struct mq_ynode *k = n->kids[i];
			if (k->len == 0) {
				aerr(c, k, "empty suboption name in 'arguments'");
				continue;
			}
			char *sub = xasprintf("%s.%s", prefix, k->text);
			flatten(c, sub, n->kids[i + 1], parts);
			free(sub);
		}
		return;
	case MQ_YN_SEQ:
		for (size_t i = 0; i < n->n; i++) {
			char *sub = xasprintf("%s.%zu", prefix, i);
			flatten(c, sub, n->kids[i], parts);
			free(sub);
		}
		return;
	}
}

/* A mapping at the top of an option's value: each key is a suboption. */
static void flatten_map(struct actx *c, const struct mq_ynode *n, struct mq_strv *parts)
{
	for (size_t i = 0; i + 1 < n->n; i += 2) {
		const struct mq_ynode *k = n->kids[i];
		if (k->len == 0) {
			aerr(c, k, "empty suboption name in 'arguments'");
			continue;
		}
		flatten(c, k->text, n->kids[i + 1], parts);
	}
}

/* Render one option: `key` names it, `value` is its positional value
 * (may be NULL), `extra` holds further key, value pairs (suboptions). */
static void render_option(struct actx *c, const struct mq_ynode *key, const struct mq_ynode *value,
			  struct mq_ynode *const *extra, size_t n_extra)
{
	const char *text = key->text;
	const char *name = text;
	if (name[0] == '-')
		name++;
	if (name[0] == '-')
		name++;
	if (!valid_opt_name(name)) {
		char *shown = strlen(text) > 60 ? xstrndup(text, 57) : xstrdup(text);
		aerr(c, key, "invalid option name '%s' in 'arguments'; write an option and its value as {m: 2G}",
		     shown);
		free(shown);
		return;
	}
	const char *canon = strcmp(name, "M") == 0 ? "machine" : name;
	struct mq_qemuopt_pos kpos = { key->line, key->col };
	char *rewritten = NULL;
	if (mq_qemuopt_check(&c->q, name, kpos, NULL, kpos, &rewritten)) { /* options maqet owns */
		c->errors++;
		return;
	}
	for (size_t i = 0; i < MQ_ARRAY_SIZE(once_opts); i++) {
		if (strcmp(canon, once_opts[i]) != 0)
			continue;
		if (c->once_line[i]) {
			aerr(c, key, "option '-%s' given twice in 'arguments' (first at line %d)", name,
			     c->once_line[i]);
			return;
		}
		c->once_line[i] = key->line;
	}

	struct mq_strv parts = MQ_STRV_INIT;
	int errors_before = c->errors;
	if (value && !no_value(value)) {
		switch (value->type) {
		case MQ_YN_SCALAR:
			mq_strv_push(&parts, value->text);
			break;
		case MQ_YN_MAP:
			flatten_map(c, value, &parts);
			break;
		case MQ_YN_SEQ:
			for (size_t i = 0; i < value->n; i++) {
				const struct mq_ynode *it = value->kids[i];
				if (no_value(it))
					aerr(c, it, "empty item in the list of option '-%s'", name);
				else if (it->type == MQ_YN_SCALAR)
					mq_strv_push(&parts, it->text);
				else if (it->type == MQ_YN_MAP)
					flatten_map(c, it, &parts);
				else
					aerr(c, it, "nested lists are not supported in option '-%s'", name);
			}
			break;
		}
	}
	for (size_t i = 0; i + 1 < 2 * n_extra; i += 2) {
		const struct mq_ynode *k = extra[i];
		if (k->len == 0) {
			aerr(c, k, "empty suboption name in 'arguments'");
			continue;
		}
		flatten(c, k->text, extra[i + 1], &parts);
	}
	char *joined = mq_strv_join(&parts, ",");
	mq_strv_clear(&parts);

	/* reserved chardev ids and host paths (relative ones made absolute) */
	int qerrs = mq_qemuopt_check(&c->q, name, kpos, joined[0] ? joined : NULL, kpos, &rewritten);
	c->errors += qerrs;
	if (rewritten) {
		free(joined);
		joined = rewritten;
	}
	if (c->errors == errors_before) {
		if (text[0] == '-')
			mq_strv_push(c->out, text);
		else
			mq_strv_pushf(c->out, "-%s", text);
		if (joined[0])
			mq_strv_push(c->out, joined);
	}
	free(joined);

	struct mq_argopts *o = c->opts;
	if (o->n == o->alloc) {
		o->alloc = o->alloc ? o->alloc * 2 : 8;
		o->v = xreallocarray(o->v, o->alloc, sizeof(*o->v));
	}
	o->v[o->n++] = (struct mq_argopt){ xstrdup(canon), key->line, key->col, key->file };
}

int mq_arguments_render(const struct mq_ynode *node, const char *file, const char *base_dir, struct mq_diags *d,
			struct mq_strv *out, struct mq_argopts *opts)
{
	struct actx c = { .file = file, .d = d, .out = out, .opts = opts,
			  .q = { .file = file, .base_dir = base_dir, .d = d, .where = "arguments" } };
	if (node->type == MQ_YN_MAP) {
		for (size_t i = 0; i + 1 < node->n; i += 2)
			render_option(&c, node->kids[i], node->kids[i + 1], NULL, 0);
		return c.errors;
	}
	if (node->type != MQ_YN_SEQ) {
		aerr(&c, node, "'arguments' must be a list of options such as [enable-kvm, {smp: 2}], got a string");
		return c.errors;
	}
	for (size_t i = 0; i < node->n; i++) {
		const struct mq_ynode *it = node->kids[i];
		if (no_value(it)) {
			aerr(&c, it, "empty item in 'arguments'");
		} else if (it->type == MQ_YN_SCALAR) {
			render_option(&c, it, NULL, NULL, 0);
		} else if (it->type == MQ_YN_MAP) {
			if (it->n < 2)
				aerr(&c, it, "empty mapping in 'arguments'");
			else
				render_option(&c, it->kids[0], it->kids[1], it->kids + 2, (it->n - 2) / 2);
		} else {
			aerr(&c, it, "'arguments' items must be strings or mappings, got a list");
		}
	}
	return c.errors;
}
