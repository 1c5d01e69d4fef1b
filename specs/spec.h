/* spec.h - desired-state VM specs: YAML manifests -> typed, validated specs.
 *
 * specs/ knows nothing of SQLite, QEMU processes or the terminal.
 *
 * Loading:   mq_specset_load() reads every manifest named by the paths
 *            (files, or directories walked recursively in sorted order,
 *            taking *.yaml / *.yml, skipping dotfiles, dot-directories and
 *            editor leftovers such as *~, #*#, *.swp), parses every YAML
 *            document in them as one VM, validates each spec and then the set
 *            (unique names, unique host ports, depends_on targets, cycles).
 *            Every problem is appended to `diags` as
 *            "FILE:LINE:COL: message" (FILE as the user named it, joined with
 *            the relative path walked, LINE/COL 1-based from libyaml marks).
 *            Returns 0 when the set is valid, -EINVAL when any diag was
 *            added (and then *out is NULL: the whole set is rejected).
 *            Files under a directory named _bases are shared bases, read
 *            only through a document's `extends` (specs/extends.h), whose
 *            merged result is what gets validated; diags inside a base
 *            name the base file.
 *
 * Canonical: every valid spec has `canonical` (compact JSON from json-c,
 *            fixed key order, every default filled in, paths absolute) and
 *            `hash` = sha256 hex of it.  Key order, comments and formatting
 *            in the YAML never change either.
 */
#ifndef MQ_SPEC_H
#define MQ_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "util/error.h"
#include "util/strv.h"

#define MQ_MANIFEST_MAX_BYTES (1024 * 1024)
#define MQ_MANIFEST_MAX_DEPTH 32
#define MQ_NAME_MAX 63

enum mq_desired { MQ_DESIRED_RUNNING = 0, MQ_DESIRED_STOPPED };
enum mq_accel { MQ_ACCEL_AUTO = 0, MQ_ACCEL_KVM, MQ_ACCEL_TCG };
enum mq_serial { MQ_SERIAL_LOG = 0, MQ_SERIAL_NONE };
enum mq_restart { MQ_RESTART_ON_FAILURE = 0, MQ_RESTART_ALWAYS, MQ_RESTART_NEVER };
enum mq_storage_type { MQ_STORAGE_QCOW2 = 0, MQ_STORAGE_RAW, MQ_STORAGE_VIRTFS };
enum mq_iface { MQ_IFACE_VIRTIO = 0, MQ_IFACE_SATA, MQ_IFACE_IDE, MQ_IFACE_SCSI, MQ_IFACE_NONE };

struct mq_storage {
	char *name;
	enum mq_storage_type type;
	/* qcow2 / raw */
	char *file;            /* absolute, resolved; NULL = default location chosen by the reconciler
	                          (<state>/disks/<vm>-<name>.<qcow2|raw>) */
	uint64_t size;         /* bytes; 0 = not given (then the image must exist) */
	enum mq_iface interface;
	char *backing_file;    /* absolute or NULL */
	char *backing_format;  /* NULL = not given */
	/* virtfs */
	char *path;            /* absolute, resolved */
	char *mount_tag;
	char *security_model;  /* default "mapped-xattr" */
	bool readonly;
};

struct mq_forward {
	char proto[4];         /* "tcp" or "udp" */
	uint16_t host_port;
	uint16_t guest_port;
};

struct mq_network {
	char *type;            /* only "user" for now */
	struct mq_forward *forwards;
	size_t n_forwards;
};

/* `snapshots:` (specs/snapshots.c).  NULL in struct mq_spec when the key
 * is absent, and then the canonical JSON has no "snapshots" member at all
 * (so specs written before the key existed keep their hash). */
struct mq_snap_schedule {
	uint64_t every_s;      /* `every`, seconds; 0 when `cron` is used */
	char *cron;            /* `cron` expression (util/cron.h), or NULL */
	unsigned keep;         /* scheduled snapshots kept (>= 1) */
	bool live;             /* default true: live while running; false = skip while running */
};
struct mq_snap_before {
	bool enabled;          /* default true */
	unsigned keep;         /* pre-change snapshots kept, default 3 */
	bool rollback;         /* default true */
};
struct mq_snapshots {
	struct mq_strv named;           /* must exist; manifest order */
	struct mq_snap_schedule *schedule;   /* NULL = none */
	struct mq_snap_before *before_change; /* NULL = none */
};

struct mq_arena;
struct mq_spec {
	/* where it came from */
	char *file;            /* manifest path as displayed in messages */
	char *abs_file;        /* absolute path of the manifest */
	char *source;          /* realpath of the -f argument (dir or file) that named this file */
	int line, col;         /* position of the document's root mapping */

	/* desired state */
	char *name;
	enum mq_desired state;
	char *binary;          /* default "qemu-system-x86_64" (looked up in PATH at start) */
	char *machine;         /* NULL = QEMU default */
	enum mq_accel accel;
	uint64_t memory;       /* bytes; 0 = QEMU default */
	unsigned cpu;          /* -smp count; 0 = QEMU default */
	char *display;         /* default "none" */
	char *vga;             /* NULL = QEMU default */
	struct mq_storage *storage;
	size_t n_storage;
	struct mq_network *network;
	size_t n_network;
	enum mq_serial serial;
	uint64_t stop_timeout_ms;   /* default 30000 */
	enum mq_restart restart;
	struct mq_strv depends_on;
	struct mq_strv args;        /* raw args, verbatim */
	struct mq_strv arguments;   /* structured `arguments` rendered to argv tokens, in order */
	struct mq_snapshots *snapshots; /* NULL = no `snapshots:` key */
	char *placement_host;  /* `placement: {host: NAME}`; NULL = no placement (runs on any host) */
	/* A light spec (mq_load_opts.light, specs/cache.h) holds only file, abs_file,
	 * source, line, col, name, state, placement_host, depends_on, network
	 * (forwards), hash, bases and bases_abs; canonical is NULL and every other
	 * field is zero.  Loaders hand out light specs only where asked to, for vms
	 * the caller never plans (e.g. placed on another host). */
	bool light;
	/* Non-NULL: the spec and every string and array it points to live in
	 * this arena (util/arena.h; the light specs the parse cache hands out,
	 * specs/cache.c): read-only, mq_spec_free only drops its reference. */
	struct mq_arena *arena;

	char *canonical;       /* canonical JSON */
	char hash[65];         /* sha256 hex of canonical */

	/* shared bases (`extends`, see README "Shared bases"); not part of the
	 * canonical JSON or the hash, which see the merged result only */
	struct mq_strv bases;        /* displayed names of every base merged in, chain order */
	struct mq_strv bases_abs;    /* the same, absolute */
	struct mq_strv origin_keys;  /* top-level keys whose value was written (wholly or */
	struct mq_strv origin_files; /* partly) in a base: the base file(s), ", "-joined */
};

struct mq_hosts;
struct mq_specset {
	struct mq_spec **specs;     /* sorted by name */
	size_t n;
	struct mq_strv sources;     /* realpath of every -f argument, in the order given */
	struct mq_strv bases;       /* realpath of every base file some spec extends (for watch) */
	struct mq_hosts *hosts;     /* hosts.yaml of the -f directories (specs/hosts.h); NULL = none */
};

int mq_specset_load(const char *const *paths, size_t n_paths, struct mq_specset **out,
		    struct mq_strv *diags);
/* The same with options: a parse cache (specs/cache.h; files whose identity
 * is unchanged are not read) and which specs may stay light (`light` returns
 * true for them; NULL: none).  The result is the same with or without the
 * cache. */
struct mq_mcache;
struct mq_load_opts {
	struct mq_mcache *cache;
	bool (*light)(const struct mq_spec *spec, void *ud);
	void *ud;
};
int mq_specset_load_opts(const char *const *paths, size_t n_paths, const struct mq_load_opts *opts,
			 struct mq_specset **out, struct mq_strv *diags);
/* Watch mode's per-file loading through the parse cache (o->cache; light
 * specs where o->light says): mq_spec_load_cached appends the specs of
 * manifest `f` (stat `st`) from the cache and returns 1 when its identity is
 * unchanged, with its content in *content when content is not NULL (read and
 * checked against the cached hash); else returns 0 and the caller reads and
 * parses it with mq_spec_parse_file, which is mq_spec_parse_buffer storing a
 * valid result in the cache. */
struct mq_manifest_file;
int mq_spec_load_cached(const struct mq_load_opts *o, const struct mq_manifest_file *f, const struct stat *st,
			struct mq_specset *set, char **content, size_t *len);
int mq_spec_parse_file(const struct mq_load_opts *o, const struct mq_manifest_file *f, const struct stat *st,
		       const char *buf, size_t len, struct mq_specset *set, struct mq_strv *diags);
/* Drop everything a light spec does not hold (see `light` above). */
void mq_spec_lighten(struct mq_spec *spec);
/* Parse one YAML buffer (for tests, fuzzing and watch mode): `display_name`
 * is used in diags, `base_dir` resolves relative paths and `extends` (the
 * bases are read from disk), `source` is stored in each spec; the bases used
 * are added to set->bases.
 * Specs are appended to `set` (which may already hold specs); per-spec
 * validation only, no set-level checks.  Returns 0 or -EINVAL with diags. */
int mq_spec_parse_buffer(const char *buf, size_t len, const char *display_name, const char *base_dir,
			 const char *source, struct mq_specset *set, struct mq_strv *diags);
/* Set-level checks (duplicate names, host ports, depends_on, cycles) and
 * sorting by name.  Returns 0 or -EINVAL with diags. */
int mq_specset_check(struct mq_specset *set, struct mq_strv *diags);

/* The manifest files named by paths, walked exactly as mq_specset_load does
 * (for watch mode, which parses file by file).  Missing paths or unreadable
 * directories add diags and return -EINVAL (the list holds what was found). */
struct mq_manifest_file {
	char *display;   /* as shown in messages */
	char *abs;       /* realpath */
	char *source;    /* realpath of the -f argument */
	struct stat st;  /* its stat when listed (have_st) */
	bool have_st;
};
struct mq_manifest_list {
	struct mq_manifest_file *v;
	size_t n, alloc;
	struct mq_strv sources;
};
int mq_manifest_list(const char *const *paths, size_t n_paths, struct mq_manifest_list *out,
		     struct mq_strv *diags);
void mq_manifest_list_release(struct mq_manifest_list *l);
/* A file name maqet reads as a manifest: *.yaml / *.yml, not hidden, not an
 * editor leftover (*~, #*#, .#*, *.swp, *.swx, *.tmp). */
bool mq_manifest_name_ok(const char *basename);

struct mq_specset *mq_specset_new(void);
const struct mq_spec *mq_specset_find(const struct mq_specset *set, const char *name);
struct mq_specset *mq_specset_free(struct mq_specset *set);
struct mq_spec *mq_spec_free(struct mq_spec *spec);

/* What a change of a canonical top-level field requires.  Each manifest key
 * has its class in the one fields table (specs/fields.c).  There is no zero
 * value on purpose: a table row whose class was left out does not compile. */
enum mq_field_class {
	MQ_FIELD_RESTART = 1, /* argv-affecting: binary machine accel memory cpu display vga storage
	                         network serial args arguments name */
	MQ_FIELD_STATE,       /* state: start or stop */
	MQ_FIELD_RECORD,      /* restart stop_timeout depends_on snapshots placement: only the record changes */
};
/* The class of a canonical key; a key that is not a manifest field (or
 * NULL) is MQ_FIELD_RESTART, the safe answer. */
enum mq_field_class mq_spec_field_class(const char *key);
/* The manifest keys in table order (specs/fields.c), for code outside specs/
 * that must make a decision per key (reconciler/export.c): i < count. */
size_t mq_spec_field_count(void);
const char *mq_spec_field_key(size_t i);

/* The merged manifests as YAML (render): validates the set like
 * mq_specset_load, then every vm (or only `name`) as one YAML document with
 * its bases merged in and a comment saying where it and each key came from.
 * Returns 0 and *out (caller frees), -EINVAL with diags, or -ENOENT when no
 * vm is called `name`. */
int mq_manifests_render(const char *const *paths, size_t n_paths, const char *name, char **out,
			struct mq_strv *diags);

/* The base file(s) a top-level key's value was written in, or NULL when it
 * comes from the manifest itself (or is a default). */
const char *mq_spec_origin(const struct mq_spec *spec, const char *key);
/* A path with a directory component named "_bases": such files are shared
 * bases, never read as vms by the -f walk. */
bool mq_path_in_bases_dir(const char *path);

/* Compare two canonical JSON documents; append the names of changed top-level
 * keys to `changed` in canonical key order.  Returns 0, or -EINVAL when either
 * document does not parse (then every key counts as changed). */
int mq_spec_diff(const char *old_canonical, const char *new_canonical, struct mq_strv *changed);

/* Snapshot names: [A-Za-z0-9._-]{1,64}. */
#define MQ_SNAPSHOT_NAME_MAX 64
bool mq_snapshot_name_ok(const char *name);
/* The reserved prefix ("auto-", "pre-change-", "pre-restore-") that `name`
 * starts with, or NULL: those are maqet's own snapshots. */
const char *mq_snapshot_reserved_prefix(const char *name);

/* Enum <-> string helpers ("running", "kvm", "on-failure", "qcow2", "virtio", ...). */
const char *mq_desired_str(enum mq_desired d);
const char *mq_accel_str(enum mq_accel a);
const char *mq_restart_str(enum mq_restart r);
const char *mq_storage_type_str(enum mq_storage_type t);
const char *mq_iface_str(enum mq_iface i);

#endif
