/* Unit tests for reconciler/snapshot (and its store rows, state/snapshots.c):
 * name rules, origins, automatic names, block node names, parsing of
 * snapshot lists (qemu-img info --output=json and QMP image objects), the
 * origin rows, and the list of a stopped VM read from real qcow2 images made
 * here with qemu-img (a tag made outside maqet lists as external, a stale
 * origin row is dropped). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/qcow2snap.h"
#include "reconciler/snapshot.h"
#include "specs/spec.h"
#include "state/store.h"
#include "util/error.h"
#include "util/strv.h"
#include "tests/unit/check-run.h"

static char tmpdir[] = "/tmp/mq-snap-unit.XXXXXX";

static void setup(void)
{
	memcpy(tmpdir, "/tmp/mq-snap-unit.XXXXXX", sizeof(tmpdir));
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- names --------------------------------------------------------------- */

static void name_ok(const char *n, enum mq_snap_origin o)
{
	struct mq_error *err = NULL;
	int r = mq_snap_name_check(n, o, &err);
	ck_assert_msg(r == 0, "'%s' refused: %s", n, err ? err->msg : "?");
}

static void name_bad(const char *n, enum mq_snap_origin o, const char *want)
{
	struct mq_error *err = NULL;
	int r = mq_snap_name_check(n, o, &err);
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err->msg, want), "message '%s' lacks '%s'", err->msg, want);
	mq_error_free(err);
}

START_TEST(test_names)
{
	name_ok("golden", MQ_SNAP_MANUAL);
	name_ok("a", MQ_SNAP_MANUAL);
	name_ok("v1.2_rc-3", MQ_SNAP_MANUAL);
	name_ok("0day", MQ_SNAP_MANUAL);
	char max[MQ_SNAP_NAME_MAX + 2];
	memset(max, 'x', MQ_SNAP_NAME_MAX);
	max[MQ_SNAP_NAME_MAX] = '\0';
	name_ok(max, MQ_SNAP_MANUAL);
	max[MQ_SNAP_NAME_MAX] = 'y';
	max[MQ_SNAP_NAME_MAX + 1] = '\0';
	name_bad(max, MQ_SNAP_MANUAL, "65 characters, at most 64");
	name_bad("", MQ_SNAP_MANUAL, "snapshot name is empty");
	name_bad(NULL, MQ_SNAP_MANUAL, "snapshot name is empty");
	name_bad("a b", MQ_SNAP_MANUAL, "byte 0x20 at position 2");
	name_bad("a/b", MQ_SNAP_MANUAL, "character '/' is not allowed");
	name_bad("x\ny", MQ_SNAP_MANUAL, "byte 0x0a at position 2");
	name_bad("caf\xc3\xa9", MQ_SNAP_MANUAL, "byte 0xc3 at position 4");
	name_bad("42", MQ_SNAP_MANUAL, "digits only");
	/* reserved prefixes: refused for users and manifests, fine for maqet's own */
	name_bad("auto-1", MQ_SNAP_MANUAL, "prefix 'auto-' is for maqet's own snapshots");
	name_bad("pre-change-x", MQ_SNAP_DECLARED, "prefix 'pre-change-'");
	name_bad("pre-restore-x", MQ_SNAP_MANUAL, "prefix 'pre-restore-'");
	name_ok("auto-20261201T000000Z", MQ_SNAP_SCHEDULED);
	name_ok("pre-change-x", MQ_SNAP_PRE_CHANGE);
	name_ok("pre-restore-x", MQ_SNAP_PRE_RESTORE);
	name_ok("autopilot", MQ_SNAP_MANUAL); /* only the prefix with its dash is reserved */
	name_ok("pre-changes", MQ_SNAP_MANUAL);
}
END_TEST

START_TEST(test_origins)
{
	static const char *const names[] = { "external", "manual", "declared", "scheduled", "pre-change",
					     "pre-restore" };
	ck_assert_int_eq((int)(sizeof(names) / sizeof(names[0])), MQ_SNAP_ORIGIN__COUNT);
	for (int i = 0; i < MQ_SNAP_ORIGIN__COUNT; i++) {
		ck_assert_str_eq(mq_snap_origin_name((enum mq_snap_origin)i), names[i]);
		enum mq_snap_origin o = MQ_SNAP_ORIGIN__COUNT;
		ck_assert_int_eq(mq_snap_origin_parse(names[i], &o, NULL), 0);
		ck_assert_int_eq(o, i);
	}
	ck_assert_ptr_null(mq_snap_origin_name(MQ_SNAP_ORIGIN__COUNT));
	struct mq_error *err = NULL;
	enum mq_snap_origin o = MQ_SNAP_MANUAL;
	ck_assert_int_eq(mq_snap_origin_parse("Manual", &o, &err), -EINVAL);
	ck_assert_str_eq(err->msg, "unknown snapshot origin 'Manual'");
	ck_assert_int_eq(o, MQ_SNAP_MANUAL);
	mq_error_free(err);
}
END_TEST

START_TEST(test_auto_name)
{
	/* 2026-12-01 12:00:00 UTC = 1796126400 s */
	char *n = mq_snap_auto_name("pre-restore-", INT64_C(1796126400000));
	ck_assert_str_eq(n, "pre-restore-20261201T120000Z");
	ck_assert_int_eq(mq_snap_name_check(n, MQ_SNAP_PRE_RESTORE, NULL), 0);
	ck_assert_int_eq(mq_snap_name_check(n, MQ_SNAP_MANUAL, NULL), -EINVAL);
	free(n);
	n = mq_snap_auto_name("auto-", INT64_C(1796126400042));
	ck_assert_str_eq(n, "auto-20261201T120000.042Z");
	ck_assert_int_eq(mq_snap_name_check(n, MQ_SNAP_SCHEDULED, NULL), 0);
	free(n);
}
END_TEST

START_TEST(test_node_names)
{
	struct mq_storage st[3];
	memset(st, 0, sizeof(st));
	st[0].name = "root";
	st[1].name = "a-very-long-storage-name-beyond-31";
	st[2].name = "data";
	struct mq_spec spec;
	memset(&spec, 0, sizeof(spec));
	spec.storage = st;
	spec.n_storage = 3;
	char *n = mq_snap_node_name(&spec, 0);
	ck_assert_str_eq(n, "mq-root");
	free(n);
	n = mq_snap_node_name(&spec, 1);
	ck_assert_str_eq(n, "mqdrive1");
	free(n);
	n = mq_snap_node_name(&spec, 2);
	ck_assert_str_eq(n, "mq-data");
	free(n);
}
END_TEST

/* ---- list parsing --------------------------------------------------------- */

static const char info_root[] =
	"{\n"
	"    \"snapshots\": [\n"
	"        {\"icount\": 0, \"vm-clock-nsec\": 500, \"name\": \"golden\", \"date-sec\": 1796126400,\n"
	"         \"date-nsec\": 250000000, \"vm-clock-sec\": 3, \"id\": \"1\", \"vm-state-size\": 970000},\n"
	"        {\"vm-clock-nsec\": 0, \"name\": \"disks\", \"date-sec\": 1796126300, \"date-nsec\": 0,\n"
	"         \"vm-clock-sec\": 0, \"id\": \"2\", \"vm-state-size\": 0}\n"
	"    ],\n"
	"    \"virtual-size\": 8388608, \"filename\": \"root.qcow2\", \"format\": \"qcow2\"\n"
	"}\n";
/* QMP query-block "image" of the second drive */
static const char image_data[] =
	"{\"virtual-size\": 4194304, \"format\": \"qcow2\", \"snapshots\": ["
	"{\"name\": \"golden\", \"date-sec\": 1796126401, \"date-nsec\": 0, \"vm-state-size\": 0, \"id\": \"1\"},"
	"{\"name\": \"only-data\", \"date-sec\": 1796126500, \"date-nsec\": 0, \"vm-state-size\": 0, \"id\": \"2\"}]}";

START_TEST(test_list_parse)
{
	struct mq_snap_list l = { 0 };
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_snap_list_merge_json(&l, "root", info_root, &err), 0);
	ck_assert_int_eq(mq_snap_list_merge_json(&l, "data", image_data, &err), 0);
	ck_assert_uint_eq(l.n, 3);
	const struct mq_snapshot *g = mq_snap_list_find(&l, "golden");
	ck_assert_ptr_nonnull(g);
	ck_assert_uint_eq(g->n_drives, 2);
	ck_assert_str_eq(g->drives[0], "root");
	ck_assert_str_eq(g->drives[1], "data");
	ck_assert(g->vmstate);
	ck_assert_uint_eq(g->vmstate_size, 970000);
	ck_assert_str_eq(g->vmstate_drive, "root");
	ck_assert_int_eq(g->created_at, INT64_C(1796126400250)); /* the earliest drive's time */
	ck_assert_uint_eq(g->vm_clock_ns, UINT64_C(3000000500));
	ck_assert_int_eq(g->origin, MQ_SNAP_EXTERNAL);
	const struct mq_snapshot *d = mq_snap_list_find(&l, "disks");
	ck_assert(!d->vmstate);
	ck_assert_ptr_null(d->vmstate_drive);
	ck_assert_uint_eq(d->n_drives, 1);
	const struct mq_snapshot *o = mq_snap_list_find(&l, "only-data");
	ck_assert_str_eq(o->drives[0], "data");
	ck_assert_ptr_null(mq_snap_list_find(&l, "nope"));
	/* an image without snapshots adds nothing */
	ck_assert_int_eq(mq_snap_list_merge_json(&l, "empty", "{\"format\": \"qcow2\"}", &err), 0);
	ck_assert_uint_eq(l.n, 3);
	mq_snap_list_release(&l);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_ptr_null(l.items);
}
END_TEST

START_TEST(test_list_parse_bad)
{
	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "not json", "is not valid json" },
		{ "{\"snapshots\": [", "is not valid json" },
		{ "[1, 2]", "is not a json object" },
		{ "{\"snapshots\": {}}", "not a json array" },
		{ "{\"snapshots\": [{\"id\": \"1\"}]}", "snapshot 1 of drive 'root': no name" },
		{ "{\"snapshots\": [{\"name\": 5}]}", "no name" },
		{ "{\"snapshots\": [7]}", "no name" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mq_snap_list l = { 0 };
		struct mq_error *err = NULL;
		ck_assert_int_eq(mq_snap_list_merge_json(&l, "root", bad[i].json, &err), -EPROTO);
		ck_assert_msg(strstr(err->msg, bad[i].want), "'%s': message '%s' lacks '%s'", bad[i].json, err->msg,
			      bad[i].want);
		mq_error_free(err);
		mq_snap_list_release(&l);
	}
	/* nesting deeper than the QMP cap is refused, not parsed */
	char deep[256] = "{\"snapshots\": ";
	size_t dl = strlen(deep);
	memset(deep + dl, '[', 40);
	deep[dl + 40] = '\0';
	struct mq_snap_list l = { 0 };
	ck_assert_int_eq(mq_snap_list_merge_json(&l, "root", deep, NULL), -EPROTO);
	mq_snap_list_release(&l);
}
END_TEST

/* ---- store rows ------------------------------------------------------------ */

START_TEST(test_store_rows)
{
	struct mq_store *s = NULL;
	ck_assert_int_eq(mq_store_open(tmpdir, &s, NULL), 0);
	ck_assert_int_eq(mq_store_snap_put(s, "web", "b", "manual", 2000, NULL), 0);
	ck_assert_int_eq(mq_store_snap_put(s, "web", "a", "scheduled", 1000, NULL), 0);
	ck_assert_int_eq(mq_store_snap_put(s, "db", "a", "declared", 500, NULL), 0);
	/* upsert: the origin of (web, b) changes, no second row */
	ck_assert_int_eq(mq_store_snap_put(s, "web", "b", "pre-restore", 3000, NULL), 0);
	struct mq_snap_row *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_snap_list(s, "web", &rows, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(rows[0].name, "a");
	ck_assert_str_eq(rows[0].origin, "scheduled");
	ck_assert_str_eq(rows[1].name, "b");
	ck_assert_str_eq(rows[1].origin, "pre-restore");
	ck_assert_int_eq(rows[1].created_at, 3000);
	mq_snap_rows_free(rows, n);
	ck_assert_int_eq(mq_store_snap_list(s, NULL, &rows, &n, NULL), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(rows[0].vm, "db");
	mq_snap_rows_free(rows, n);
	ck_assert_int_eq(mq_store_snap_delete(s, "web", "a", NULL), 0);
	ck_assert_int_eq(mq_store_snap_delete(s, "web", "a", NULL), 0); /* absent: not an error */
	ck_assert_int_eq(mq_store_snap_list(s, "web", &rows, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	mq_snap_rows_free(rows, n);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_snap_put(s, "web", NULL, "manual", 1, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err->msg, "name is missing"));
	mq_error_free(err);
	mq_store_free(s);
}
END_TEST

/* ---- the list of a stopped VM, from real images ----------------------------- */

/* run a shell command inside the test's temp dir */
static void sh(const char *what)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cd '%s' && %s", tmpdir, what);
	int st = system(cmd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "command failed: %s", cmd);
}

/* ---- the qcow2 snapshot table read from the file ---------------------------- */

/* stdout of a shell command run in the temp dir (caller frees) */
static char *sh_out(const char *what)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cd '%s' && %s", tmpdir, what);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0)
		len += n;
	buf[len] = '\0';
	ck_assert_int_eq(pclose(f), 0);
	return buf;
}

/* the reader's table equals qemu-img info's, field by field */
static void same_as_qemu_img(const char *file)
{
	char path[512], cmd[600];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
	snprintf(cmd, sizeof(cmd), "qemu-img info --output=json '%s'", file);
	char *out = sh_out(cmd);
	json_object *want = json_tokener_parse(out), *wa = NULL, *ga = NULL;
	free(out);
	ck_assert_ptr_nonnull(want);
	json_object *got = NULL;
	struct mq_error *err = NULL;
	ck_assert_msg(mq_qcow2_snapshots(path, &got, &err) == 0, "%s", err ? err->msg : "");
	ck_assert(json_object_object_get_ex(got, "snapshots", &ga));
	size_t n = json_object_object_get_ex(want, "snapshots", &wa) ? json_object_array_length(wa) : 0;
	ck_assert_uint_eq(json_object_array_length(ga), n);
	static const char *const keys[] = { "id", "name", "vm-state-size", "date-sec", "date-nsec", "vm-clock-sec",
					    "vm-clock-nsec" };
	for (size_t i = 0; i < n; i++) {
		json_object *w = json_object_array_get_idx(wa, i), *g = json_object_array_get_idx(ga, i), *wv, *gv;
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			ck_assert_msg(json_object_object_get_ex(w, keys[k], &wv), "qemu-img: no %s", keys[k]);
			ck_assert_msg(json_object_object_get_ex(g, keys[k], &gv), "reader: no %s", keys[k]);
			ck_assert_msg(strcmp(json_object_get_string(wv), json_object_get_string(gv)) == 0,
				      "%s snapshot %zu %s: qemu-img %s, reader %s", file, i, keys[k],
				      json_object_get_string(wv), json_object_get_string(gv));
		}
	}
	json_object_put(want);
	json_object_put(got);
}

START_TEST(test_qcow2_table)
{
	/* version 3 and version 2 (compat=0.10) images; names of odd lengths
	 * (entry padding), duplicates, and guest data between snapshots */
	sh("qemu-img create -q -f qcow2 v3.qcow2 64M && qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 64M");
	same_as_qemu_img("v3.qcow2");
	for (int i = 0; i < 12; i++) {
		char cmd[256];
		snprintf(cmd, sizeof(cmd),
			 "qemu-io -f qcow2 -c 'write -q -P %d %dM 1M' v3.qcow2 && qemu-img snapshot -c s%.*s v3.qcow2 "
			 "&& qemu-img snapshot -c t%.*s v2.qcow2",
			 i + 1, i, i + 1, "abcdefghijklmnop", i + 1, "abcdefghijklmnop");
		sh(cmd);
	}
	sh("qemu-img snapshot -c sa v3.qcow2 && qemu-img snapshot -d sab v3.qcow2");
	same_as_qemu_img("v3.qcow2");
	same_as_qemu_img("v2.qcow2");

	/* not qcow2: ENOTSUP (the caller asks qemu-img); truncated table: EPROTO */
	char path[512];
	json_object *got = NULL;
	struct mq_error *err = NULL;
	sh("head -c 4096 /dev/zero > zero.img && head -c 200000 v3.qcow2 > cut.qcow2");
	snprintf(path, sizeof(path), "%s/zero.img", tmpdir);
	ck_assert_int_eq(mq_qcow2_snapshots(path, &got, &err), -ENOTSUP);
	ck_assert_ptr_nonnull(err);
	err = mq_error_free(err);
	snprintf(path, sizeof(path), "%s/cut.qcow2", tmpdir);
	int r = mq_qcow2_snapshots(path, &got, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_int_ne(r, -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(err->msg, "cut.qcow2"));
	err = mq_error_free(err);
	snprintf(path, sizeof(path), "%s/missing.qcow2", tmpdir);
	ck_assert_int_eq(mq_qcow2_snapshots(path, &got, &err), -ENOENT);
	err = mq_error_free(err);
}
END_TEST

START_TEST(test_list_stopped_vm)
{
	char yaml[1024];
	snprintf(yaml, sizeof(yaml),
		 "name: web\n"
		 "storage:\n"
		 "  - {name: root, file: %s/root.qcow2}\n"
		 "  - {name: data, file: %s/data.qcow2}\n"
		 "  - {name: scratch, type: raw, file: %s/scratch.raw}\n",
		 tmpdir, tmpdir, tmpdir);
	struct mq_specset *set = mq_specset_new();
	struct mq_strv diags = MQ_STRV_INIT;
	int r = mq_spec_parse_buffer(yaml, strlen(yaml), "t.yaml", tmpdir, tmpdir, set, &diags);
	ck_assert_msg(r == 0, "yaml: %s", diags.n ? diags.v[0] : "?");
	mq_strv_clear(&diags);
	sh("qemu-img create -q -f qcow2 root.qcow2 4M && qemu-img create -q -f qcow2 data.qcow2 4M && "
	   "truncate -s 1M scratch.raw");
	sh("qemu-img snapshot -c golden root.qcow2 && qemu-img snapshot -c golden data.qcow2 && "
	   "qemu-img snapshot -c by-hand data.qcow2");

	struct mq_store *s = NULL;
	ck_assert_int_eq(mq_store_open(tmpdir, &s, NULL), 0);
	struct mq_vm_record *rec = mq_vm_record_new();
	mq_vm_record_set(&rec->name, "web");
	mq_vm_record_set(&rec->source, tmpdir);
	mq_vm_record_set(&rec->spec_json, set->specs[0]->canonical);
	mq_vm_record_set(&rec->spec_hash, set->specs[0]->hash);
	mq_vm_record_set(&rec->desired, "stopped");
	mq_vm_record_set(&rec->status, "stopped");
	ck_assert_int_eq(mq_store_vm_put(s, rec, NULL), 0);
	ck_assert_int_eq(mq_store_snap_put(s, "web", "golden", "declared", 1, NULL), 0);
	ck_assert_int_eq(mq_store_snap_put(s, "web", "gone", "manual", 1, NULL), 0);

	struct mq_snap_env env = { .store = s, .runtime_dir = tmpdir, .disk_dir = tmpdir, .who = "test" };
	struct mq_snap_list l = { 0 };
	struct mq_error *err = NULL;
	r = mq_snap_list(&env, rec, &l, &err);
	ck_assert_msg(r == 0, "list: %s", err ? err->msg : "?");
	ck_assert(!l.live);
	ck_assert_uint_eq(l.n, 2);
	const struct mq_snapshot *g = mq_snap_list_find(&l, "golden");
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(g->origin, MQ_SNAP_DECLARED);
	ck_assert_uint_eq(g->n_drives, 2);
	ck_assert(!g->vmstate);
	const struct mq_snapshot *h = mq_snap_list_find(&l, "by-hand");
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(h->origin, MQ_SNAP_EXTERNAL);
	ck_assert_uint_eq(h->n_drives, 1);
	ck_assert_str_eq(h->drives[0], "data");
	mq_snap_list_release(&l);
	/* the row of a tag found on no drive was dropped */
	struct mq_snap_row *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_snap_list(s, "web", &rows, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(rows[0].name, "golden");
	mq_snap_rows_free(rows, n);

	/* refusals happen before anything changes: a raw drive named */
	const char *raw[] = { "scratch" };
	struct mq_snap_create_opts o = { .name = "x", .origin = MQ_SNAP_MANUAL, .drives = raw, .n_drives = 1 };
	r = mq_snap_create(&env, rec, &o, NULL, &err);
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_str_eq(err->msg, "cannot snapshot vm 'web': drive 'scratch' is raw: internal snapshots need a "
				   "qcow2 image");
	err = mq_error_free(err);
	/* an existing name without overwrite */
	o.drives = NULL;
	o.n_drives = 0;
	o.name = "golden";
	ck_assert_int_eq(mq_snap_create(&env, rec, &o, NULL, &err), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err->msg, "already exists (add --overwrite"));
	err = mq_error_free(err);
	/* an offline create on every qcow2 drive, then its origin */
	o.name = "fresh";
	struct mq_snap_result res;
	r = mq_snap_create(&env, rec, &o, &res, &err);
	ck_assert_msg(r == 0, "create: %s", err ? err->msg : "?");
	ck_assert(!res.live);
	ck_assert_uint_eq(res.n_drives, 2);
	ck_assert_str_eq(rec->status, "stopped"); /* back where it was */
	ck_assert_int_eq(mq_snap_list(&env, rec, &l, NULL), 0);
	const struct mq_snapshot *f = mq_snap_list_find(&l, "fresh");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(f->origin, MQ_SNAP_MANUAL);
	ck_assert_uint_eq(f->n_drives, 2);
	mq_snap_list_release(&l);
	/* delete: gone from the images and from the rows */
	ck_assert_int_eq(mq_snap_delete(&env, rec, "fresh", NULL, NULL), 0);
	ck_assert_int_eq(mq_snap_list(&env, rec, &l, NULL), 0);
	ck_assert_ptr_null(mq_snap_list_find(&l, "fresh"));
	mq_snap_list_release(&l);
	ck_assert_int_eq(mq_snap_delete(&env, rec, "fresh", NULL, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err->msg, "it has no snapshot 'fresh'"));
	mq_error_free(err);

	/* a phase left by a maqet that died half-way is ended first */
	mq_vm_record_set(&rec->status, "snapshotting");
	ck_assert_int_eq(mq_store_vm_put(s, rec, NULL), 0);
	r = mq_snap_delete(&env, rec, "golden", NULL, &err);
	ck_assert_msg(r == 0, "delete: %s", err ? err->msg : "?");
	ck_assert_str_eq(rec->status, "stopped");
	struct mq_event **ev = NULL;
	size_t nev = 0;
	ck_assert_int_eq(mq_store_event_list(s, "web", 0, &ev, &nev, NULL), 0);
	bool interrupted = false;
	for (size_t i = 0; i < nev; i++)
		interrupted |= ev[i]->detail && strstr(ev[i]->detail, "interrupted") && !strcmp(ev[i]->outcome, "failed");
	mq_event_list_free(ev, nev);
	ck_assert(interrupted);
	struct mq_vm_record *back = NULL;
	ck_assert_int_eq(mq_store_vm_get(s, "web", &back, NULL), 0);
	ck_assert_str_eq(back->status, "stopped");
	mq_vm_record_free(back);
	/* an up phase whose process is gone is refused, nothing changed */
	mq_vm_record_set(&rec->status, "running");
	rec->pid = 999999;
	rec->start_time = 1;
	mq_vm_record_set(&rec->qmp_path, "/nonexistent/qmp");
	ck_assert_int_eq(mq_store_vm_put(s, rec, NULL), 0);
	o.name = "again";
	ck_assert_int_eq(mq_snap_create(&env, rec, &o, NULL, &err), -ESRCH);
	ck_assert_ptr_nonnull(strstr(err->msg, "it is recorded running but its qemu process is gone"));
	mq_error_free(err);

	mq_vm_record_free(rec);
	mq_store_free(s);
	mq_specset_free(set);
}
END_TEST

static Suite *snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("names");
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_origins);
	tcase_add_test(tc, test_auto_name);
	tcase_add_test(tc, test_node_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("list");
	tcase_add_test(tc, test_list_parse);
	tcase_add_test(tc, test_list_parse_bad);
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_store_rows);
	tcase_add_test(tc, test_list_stopped_vm);
	tcase_add_test(tc, test_qcow2_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(snapshot_suite());
}
