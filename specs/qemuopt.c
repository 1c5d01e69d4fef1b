/* qemuopt.c - checks on one raw QEMU option (see qemuopt.h).
 *
 * Host paths QEMU opens, checked against the system-directory policy
 * (util/paths.c mq_path_is_system, the same as `storage`) and, when
 * relative, made absolute against the manifest's directory:
 *   -kernel -initrd -bios -dtb -pflash -hda -hdb -hdc -hdd -cdrom -mtdblock
 *   -sd                                     the whole value
 *   -drive      file=, filename=, *.filename=
 *   -blockdev   filename=, *.filename= (and "filename" anywhere in the JSON form)
 *   -chardev    path= of the file and pipe backends, logfile= of any backend
 *   -virtfs -fsdev                           path=
 *   -device     file= of the loader device
 *   -object     mem-path= of memory-backend-file (and in the JSON form);
 *               /dev/shm/... and /dev/hugepages... are allowed there
 *   -add-fd is not a path; -serial/-parallel file:PATH is refused as a form
 *   maqet cannot check (use -chardev file instead).
 *
 * QEMU's option syntax: suboptions split on ',' and a literal comma in a
 * value is written ",,".  A value rewritten here is escaped the same way.
 */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "specs/qemuopt.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/strv.h"
#include "util/xalloc.h"

/* Options maqet sets itself, each with what to do instead. */
static const struct {
	const char *name, *instead;
} owned[] = {
	{ "name", "the QEMU name is the vm's 'name' key" },
	{ "qmp", "maqet runs QEMU's monitors itself; use maqet's commands (status, stop, restart)" },
	{ "qmp-pretty", "maqet runs QEMU's monitors itself; use maqet's commands (status, stop, restart)" },
	{ "monitor", "maqet runs QEMU's monitors itself; use maqet's commands (status, stop, restart)" },
	{ "mon", "maqet runs QEMU's monitors itself; use maqet's commands (status, stop, restart)" },
	{ "daemonize", "maqet supervises QEMU itself; remove it" },
	{ "pidfile", "maqet records QEMU's pid itself; see 'maqet status'" },
	{ "S", "maqet starts QEMU paused and continues it itself; use 'state: stopped' to keep a vm off" },
	{ "incoming", "maqet starts every vm fresh; incoming migration is not supported" },
	{ "runas", "run maqet itself as that user instead" },
	{ "chroot", "run maqet itself inside that root instead" },
};

static const char *const flags[] = {
	"S", "daemonize", "enable-kvm", "nographic", "snapshot", "nodefaults", "usb", "s", "singlestep",
	"full-screen", "curses", "portrait", "preconfig", "only-migratable", "win2k-hack", "rtc-td-hack",
	"alt-grab", "ctrl-grab", "semihosting", "enable-fips", "version", "help", "h", "xen-attach",
	"enable-sync-profile", "old-param", "sdl", "nodefconfig", "qmp-pretty-no",
};

/* Options whose whole value is a host path. */
static const char *const path_opts[] = {
	"kernel", "initrd", "bios", "dtb", "pflash", "hda", "hdb", "hdc", "hdd", "cdrom", "mtdblock", "sd",
};

bool mq_qemuopt_is_flag(const char *name)
{
	if (strncmp(name, "no-", 3) == 0)
		return true;
	for (size_t i = 0; i < MQ_ARRAY_SIZE(flags); i++)
		if (strcmp(name, flags[i]) == 0)
			return true;
	return false;
}

static int qerr(const struct mq_qemuopt_ctx *c, struct mq_qemuopt_pos at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int qerr(const struct mq_qemuopt_ctx *c, struct mq_qemuopt_pos at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	mq_diags_add(c->d, c->file, at.line, at.col, "%s", msg);
	free(msg);
	return 1;
}

static char *clip(const char *s)
{
	return strlen(s) > 60 ? xasprintf("%.57s...", s) : xstrdup(s);
}

/* ---- suboptions ----------------------------------------------------------- */

struct subopt {
	char *key; /* NULL for a positional item */
	char *val; /* unescaped */
};

struct subopts {
	struct subopt *v;
	size_t n;
};

static void subopts_parse(const char *s, struct subopts *o)
{
	o->v = NULL;
	o->n = 0;
	size_t alloc = 0;
	const char *p = s;
	for (;;) {
		struct mq_strbuf item = MQ_STRBUF_INIT;
		for (; *p; p++) {
			if (*p == ',') {
				if (p[1] == ',') {
					mq_strbuf_addc(&item, ',');
					p++;
					continue;
				}
				break;
			}
			mq_strbuf_addc(&item, *p);
		}
		if (o->n == alloc) {
			alloc = alloc ? alloc * 2 : 8;
			o->v = xreallocarray(o->v, alloc, sizeof(*o->v));
		}
		char *text = mq_strbuf_detach(&item);
		char *eq = strchr(text, '=');
		if (eq) {
			*eq = '\0';
			o->v[o->n++] = (struct subopt){ text, xstrdup(eq + 1) };
		} else {
			o->v[o->n++] = (struct subopt){ NULL, text };
		}
		if (!*p)
			break;
		p++;
	}
}

static void subopts_release(struct subopts *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].key);
		free(o->v[i].val);
	}
	free(o->v);
}

static void add_escaped(struct mq_strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == ',')
			mq_strbuf_addc(sb, ',');
		mq_strbuf_addc(sb, *s);
	}
}

static char *subopts_join(const struct subopts *o)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	for (size_t i = 0; i < o->n; i++) {
		if (i)
			mq_strbuf_addc(&sb, ',');
		if (o->v[i].key) {
			mq_strbuf_adds(&sb, o->v[i].key);
			mq_strbuf_addc(&sb, '=');
		}
		add_escaped(&sb, o->v[i].val);
	}
	return mq_strbuf_detach(&sb);
}

/* The value of `key`, or the first positional item when key is NULL. */
static const char *sub_get(const struct subopts *o, const char *key, const char *implied)
{
	for (size_t i = 0; i < o->n; i++)
		if (o->v[i].key && strcmp(o->v[i].key, key) == 0)
			return o->v[i].val;
	if (implied && o->n && !o->v[0].key)
		return o->v[0].val;
	return NULL;
}

/* ---- paths ------------------------------------------------------------------ */

/* Check one host path; a relative one is replaced in *path by its absolute
 * form (returns 1 in *changed).  Returns the number of errors. */
static int check_path(const struct mq_qemuopt_ctx *c, const char *opt, const char *what, char **path,
		      struct mq_qemuopt_pos at, bool *changed)
{
	const char *text = *path;
	if (!*text)
		return qerr(c, at, "empty %s in option '-%s' in '%s'", what, opt, c->where);
	/* "proto:..." before any '/' is a block protocol (nbd:, iscsi:, http:,
	 * ...), not a host path; "file:" is one, "json:" hides one */
	const char *colon = strchr(text, ':'), *slash = strchr(text, '/');
	if (colon && (!slash || colon < slash)) {
		if (strncmp(text, "json:", 5) == 0)
			return qerr(c, at, "%s 'json:...' of option '-%s' in '%s' hides the paths QEMU opens; write "
				    "the options out (or use -blockdev)", what, opt, c->where);
		if (strncmp(text, "file:", 5) != 0)
			return 0;
		char *rest = xstrdup(text + 5);
		bool ch = false;
		int e = check_path(c, opt, what, &rest, at, &ch);
		if (ch) {
			free(*path);
			*path = xasprintf("file:%s", rest);
			*changed = true;
		}
		free(rest);
		return e;
	}
	char *joined = text[0] == '/' ? xstrdup(text) : mq_path_join(c->base_dir, text);
	char *resolved = mq_path_resolve(joined);
	int errors = 0;
	/* shared memory and hugepage mounts are where file memory backends live */
	bool mem_ok = strcmp(what, "mem-path") == 0 &&
		      (strncmp(resolved, "/dev/shm/", 9) == 0 || strncmp(resolved, "/dev/hugepages", 14) == 0);
	if (!mem_ok && mq_path_is_system(resolved)) {
		char *cl = clip(text);
		errors = qerr(c, at,
			      "%s '%s' of option '-%s' in '%s' resolves to '%s', inside a system directory; "
			      "put files QEMU opens elsewhere",
			      what, cl, opt, c->where, resolved);
		free(cl);
	}
	free(resolved);
	if (!errors && text[0] != '/') {
		free(*path);
		*path = joined;
		*changed = true;
	} else {
		free(joined);
	}
	return errors;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Is suboption `key` of option `opt` (whose positional/driver is `kind`) a
 * host path? */
static bool sub_is_path(const char *opt, const char *kind, const char *key)
{
	if (strcmp(opt, "drive") == 0)
		return strcmp(key, "file") == 0 || strcmp(key, "filename") == 0 || ends_with(key, ".filename");
	if (strcmp(opt, "blockdev") == 0)
		return strcmp(key, "filename") == 0 || ends_with(key, ".filename");
	if (strcmp(opt, "chardev") == 0)
		return strcmp(key, "logfile") == 0 ||
		       (strcmp(key, "path") == 0 && kind && (strcmp(kind, "file") == 0 || strcmp(kind, "pipe") == 0));
	if (strcmp(opt, "virtfs") == 0 || strcmp(opt, "fsdev") == 0)
		return strcmp(key, "path") == 0;
	if (strcmp(opt, "device") == 0)
		return kind && strcmp(kind, "loader") == 0 && strcmp(key, "file") == 0;
	if (strcmp(opt, "object") == 0)
		return kind && strcmp(kind, "memory-backend-file") == 0 && strcmp(key, "mem-path") == 0;
	return false;
}

static const char *kind_key(const char *opt)
{
	if (strcmp(opt, "chardev") == 0)
		return "backend";
	if (strcmp(opt, "device") == 0)
		return "driver";
	if (strcmp(opt, "object") == 0)
		return "qom-type";
	return NULL;
}

/* The JSON form of -blockdev / -object / -device: every "filename" and
 * "mem-path" string, and "file" of a loader device. */
static int check_json(const struct mq_qemuopt_ctx *c, const char *opt, json_object *o, struct mq_qemuopt_pos at,
		      bool *changed)
{
	int errors = 0;
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			errors += check_json(c, opt, json_object_array_get_idx(o, i), at, changed);
		return errors;
	}
	if (!json_object_is_type(o, json_type_object))
		return 0;
	json_object *drv = NULL;
	bool loader = json_object_object_get_ex(o, "driver", &drv) && json_object_is_type(drv, json_type_string) &&
		      strcmp(json_object_get_string(drv), "loader") == 0;
	json_object_object_foreach(o, key, val)
	{
		if (json_object_is_type(val, json_type_string) &&
		    (strcmp(key, "filename") == 0 || strcmp(key, "mem-path") == 0 || (loader && strcmp(key, "file") == 0))) {
			char *p = xstrdup(json_object_get_string(val));
			bool ch = false;
			errors += check_path(c, opt, key, &p, at, &ch);
			if (ch) {
				json_object_object_add(o, key, json_object_new_string(p));
				*changed = true;
			}
			free(p);
		} else {
			errors += check_json(c, opt, val, at, changed);
		}
	}
	return errors;
}

/* ---- ids in maqet's namespace ------------------------------------------------ */

static bool reserved_id(const char *id)
{
	return strncmp(id, "mq", 2) == 0 || strcmp(id, "serial0") == 0;
}

/* ---- the option ------------------------------------------------------------- */

int mq_qemuopt_check(const struct mq_qemuopt_ctx *c, const char *name, struct mq_qemuopt_pos opt_pos,
		     const char *value, struct mq_qemuopt_pos val_pos, char **rewritten)
{
	const char *opt = name;
	if (strcmp(opt, "M") == 0)
		opt = "machine";
	for (size_t i = 0; i < MQ_ARRAY_SIZE(owned); i++)
		if (strcmp(opt, owned[i].name) == 0)
			return qerr(c, opt_pos, "option '-%s' is managed by maqet and cannot be set in '%s' (%s)", name,
				    c->where, owned[i].instead);
	if (!value)
		return 0;

	for (size_t i = 0; i < MQ_ARRAY_SIZE(path_opts); i++) {
		if (strcmp(opt, path_opts[i]) != 0)
			continue;
		char *p = xstrdup(value);
		bool changed = false;
		int errors = check_path(c, opt, "path", &p, val_pos, &changed);
		if (changed)
			*rewritten = p;
		else
			free(p);
		return errors;
	}
	if ((strcmp(opt, "serial") == 0 || strcmp(opt, "parallel") == 0) &&
	    (strncmp(value, "file:", 5) == 0 || strncmp(value, "pipe:", 5) == 0))
		return qerr(c, val_pos, "'-%s %.5s...' in '%s' names a host path maqet cannot check; use '-chardev file,id=ID,path=PATH' and '-%s chardev:ID'",
			    name, value, c->where, name);

	int errors = 0;
	bool changed = false;
	if (value[0] == '{' && (strcmp(opt, "blockdev") == 0 || strcmp(opt, "object") == 0 || strcmp(opt, "device") == 0)) {
		json_object *j = json_tokener_parse(value);
		if (!j)
			return 0; /* QEMU refuses it */
		errors = check_json(c, opt, j, val_pos, &changed);
		if (!errors && changed)
			*rewritten = xstrdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
										   JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
		return errors;
	}

	struct subopts o;
	subopts_parse(value, &o);
	const char *kk = kind_key(opt);
	const char *kind = kk ? sub_get(&o, kk, kk) : NULL;
	for (size_t i = 0; i < o.n; i++) {
		const char *key = o.v[i].key;
		if (!key)
			continue;
		if (((strcmp(opt, "chardev") == 0 && strcmp(key, "id") == 0) || strcmp(key, "chardev") == 0) &&
		    reserved_id(o.v[i].val)) {
			char *cl = clip(o.v[i].val);
			errors += qerr(c, val_pos,
				       "chardev id '%s' in option '-%s' in '%s' is maqet's (ids 'serial0' and "
				       "'mq...' are reserved); choose another id",
				       cl, name, c->where);
			free(cl);
			continue;
		}
		if (sub_is_path(opt, kind, key))
			errors += check_path(c, opt, key, &o.v[i].val, val_pos, &changed);
	}
	if (!errors && changed)
		*rewritten = subopts_join(&o);
	subopts_release(&o);
	return errors;
}
