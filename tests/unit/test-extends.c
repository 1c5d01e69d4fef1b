/* test-extends.c - shared bases (specs/extends.c), render (specs/render.c)
 * and the Python maqet conversion (specs/pyimport.c). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "specs/pyimport.h"
#include "specs/spec.h"
#include "util/paths.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"
#include "tests/unit/tmpfiles.h"

/* Load DIR/rel from inside DIR (so diags show relative names). */
static int load_in(const char *dir, const char *rel, struct mq_specset **set, struct mq_strv *diags)
{
	ck_assert_int_eq(chdir(dir), 0);
	const char *paths[] = { rel };
	return mq_specset_load(paths, 1, set, diags);
}

static struct mq_specset *load_ok(const char *dir, const char *rel)
{
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	int r = load_in(dir, rel, &set, &diags);
	if (r < 0) {
		char *all = mq_strv_join(&diags, "\n");
		ck_abort_msg("load failed:\n%s", all);
	}
	mq_strv_clear(&diags);
	return set;
}

/* The diags of a load that must fail, joined by newlines. */
static char *load_err(const char *dir, const char *rel)
{
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	ck_assert_int_eq(load_in(dir, rel, &set, &diags), -EINVAL);
	ck_assert_ptr_null(set);
	char *all = mq_strv_join(&diags, "\n");
	mq_strv_clear(&diags);
	return all;
}

START_TEST(test_merge_kinds)
{
	char *dir = mq_test_tmpdir("extends");
	write_file(dir, "vms/_bases/base.yaml",
		   "machine: pc\n"
		   "memory: 256M\n"
		   "cpu: 2\n"
		   "args: [\"-no-reboot\", \"-no-hpet\"]\n"
		   "depends_on: [db]\n"
		   "storage:\n"
		   "  - name: root\n"
		   "    type: raw\n"
		   "    file: ../../root.img\n"
		   "    interface: ide\n"
		   "  - name: share\n"
		   "    type: virtfs\n"
		   "    path: ../../share\n"
		   "    options:\n"
		   "      mount_tag: s\n"
		   "      security_model: none\n"
		   "network:\n"
		   "  - type: user\n"
		   "    forward: [\"tcp:2222:22\"]\n");
	write_file(dir, "root.img", "x");
	write_file(dir, "share/f", "x");
	write_file(dir, "vms/db.yaml", "name: db\n");
	write_file(dir, "vms/web.yaml",
		   "name: web\n"
		   "extends: _bases/base.yaml\n"
		   "memory: 512M\n"                    /* scalar replaced */
		   "cpu: null\n"                       /* null resets to the default */
		   "args: [\"-no-shutdown\"]\n"        /* list replaced, not appended */
		   "storage:\n"
		   "  - name: root\n"                  /* named entry merged */
		   "    interface: virtio\n"
		   "  - name: share\n"
		   "    options:\n"                    /* nested map merged key by key */
		   "      readonly: true\n"
		   "  - name: data\n"                  /* new entry appended */
		   "    size: 1G\n");
	struct mq_specset *set = load_ok(dir, "vms");
	ck_assert_uint_eq(set->n, 2); /* the base is not a vm */
	const struct mq_spec *s = mq_specset_find(set, "web");
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s->machine, "pc");
	ck_assert_uint_eq(s->memory, 512ULL << 20);
	ck_assert_uint_eq(s->cpu, 0);
	ck_assert_uint_eq(s->args.n, 1);
	ck_assert_str_eq(s->args.v[0], "-no-shutdown");
	ck_assert_uint_eq(s->depends_on.n, 1);
	ck_assert_uint_eq(s->n_storage, 3);
	ck_assert_str_eq(s->storage[0].name, "root");
	ck_assert_int_eq(s->storage[0].type, MQ_STORAGE_RAW);
	ck_assert_int_eq(s->storage[0].interface, MQ_IFACE_VIRTIO);
	char *img = xasprintf("%s/root.img", dir); /* relative to the base's directory */
	ck_assert_str_eq(s->storage[0].file, img);
	free(img);
	ck_assert_str_eq(s->storage[1].name, "share");
	ck_assert_str_eq(s->storage[1].mount_tag, "s");
	ck_assert_str_eq(s->storage[1].security_model, "none");
	ck_assert(s->storage[1].readonly);
	ck_assert_str_eq(s->storage[2].name, "data");
	ck_assert_uint_eq(s->n_network, 1);
	ck_assert_uint_eq(s->network[0].n_forwards, 1);
	/* where values came from */
	ck_assert_str_eq(mq_spec_origin(s, "machine"), "vms/_bases/base.yaml");
	ck_assert_str_eq(mq_spec_origin(s, "storage"), "vms/_bases/base.yaml");
	ck_assert_ptr_null(mq_spec_origin(s, "memory"));
	ck_assert_ptr_null(mq_spec_origin(s, "args"));
	ck_assert_ptr_null(mq_spec_origin(s, "name"));
	ck_assert_uint_eq(s->bases.n, 1);
	ck_assert_str_eq(s->bases.v[0], "vms/_bases/base.yaml");
	char *babs = xasprintf("%s/vms/_bases/base.yaml", dir);
	ck_assert_uint_eq(set->bases.n, 1);
	ck_assert_str_eq(set->bases.v[0], babs);
	free(babs);
	/* the canonical spec has no trace of extends */
	ck_assert_ptr_null(strstr(s->canonical, "\"extends\""));
	mq_specset_free(set);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_list_and_chain_order)
{
	char *dir = mq_test_tmpdir("extends");
	write_file(dir, "_bases/a.yaml", "extends: c.yaml\nmemory: 128M\ncpu: 1\n");
	write_file(dir, "_bases/b.yaml", "memory: 256M\n");
	write_file(dir, "_bases/c.yaml", "machine: pc\ncpu: 4\nmemory: 64M\n");
	write_file(dir, "web.yaml", "name: web\nextends: [_bases/a.yaml, _bases/b.yaml]\n");
	struct mq_specset *set = load_ok(dir, "web.yaml");
	const struct mq_spec *s = set->specs[0];
	ck_assert_uint_eq(s->memory, 256ULL << 20); /* b, applied after a */
	ck_assert_uint_eq(s->cpu, 1);               /* a over c */
	ck_assert_str_eq(s->machine, "pc");         /* c, through a */
	ck_assert_uint_eq(s->bases.n, 3);
	ck_assert_str_eq(s->bases.v[0], "_bases/c.yaml");
	ck_assert_str_eq(s->bases.v[1], "_bases/a.yaml");
	ck_assert_str_eq(s->bases.v[2], "_bases/b.yaml");
	ck_assert_str_eq(mq_spec_origin(s, "memory"), "_bases/b.yaml");
	ck_assert_str_eq(mq_spec_origin(s, "machine"), "_bases/c.yaml");
	mq_specset_free(set);

	/* a chain exactly 8 deep loads, 9 deep does not */
	for (int i = 1; i <= 9; i++) {
		char *rel = xasprintf("_bases/d%d.yaml", i);
		char *body = i < 9 ? xasprintf("extends: d%d.yaml\ncpu: %d\n", i + 1, i) : xasprintf("cpu: 9\n");
		write_file(dir, rel, body);
		free(rel);
		free(body);
	}
	write_file(dir, "deep8.yaml", "name: deep8\nextends: _bases/d2.yaml\n");
	set = load_ok(dir, "deep8.yaml");
	ck_assert_uint_eq(set->specs[0]->cpu, 2);
	ck_assert_uint_eq(set->specs[0]->bases.n, 8);
	mq_specset_free(set);
	write_file(dir, "deep9.yaml", "name: deep9\nextends: _bases/d1.yaml\n");
	char *e = load_err(dir, "deep9.yaml");
	ck_assert_msg(strstr(e, "_bases/d8.yaml:1:10: base 'd9.yaml' is more than 8 levels of extends deep"), "%s", e);
	free(e);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_hash_unchanged_when_moving_values)
{
	char *dir = mq_test_tmpdir("extends");
	write_file(dir, "disk.img", "x");
	/* everything in the manifest */
	write_file(dir, "one/web.yaml",
		   "name: web\nmachine: pc\nmemory: 512M\nstorage:\n  - name: root\n    type: raw\n"
		   "    file: ../disk.img\n");
	/* memory, machine and the disk (with a path relative to the base) in a base */
	write_file(dir, "two/_bases/b.yaml",
		   "machine: pc\nmemory: 512M\nstorage:\n  - name: root\n    type: raw\n    file: ../../disk.img\n");
	write_file(dir, "two/web.yaml", "name: web\nextends: _bases/b.yaml\n");
	/* split: the base has the disk, the manifest memory */
	write_file(dir, "three/_bases/b.yaml", "storage:\n  - name: root\n    file: ../../disk.img\nmemory: 1G\n");
	write_file(dir, "three/web.yaml",
		   "name: web\nextends: _bases/b.yaml\nmemory: 512M\nmachine: pc\nstorage:\n  - name: root\n"
		   "    type: raw\n");
	struct mq_specset *a = load_ok(dir, "one"), *b = load_ok(dir, "two"), *c = load_ok(dir, "three");
	ck_assert_str_eq(a->specs[0]->canonical, b->specs[0]->canonical);
	ck_assert_str_eq(a->specs[0]->hash, b->specs[0]->hash);
	ck_assert_str_eq(a->specs[0]->hash, c->specs[0]->hash);
	mq_specset_free(a);
	mq_specset_free(b);
	mq_specset_free(c);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_errors_located)
{
	char *dir = mq_test_tmpdir("extends");
	write_file(dir, "_bases/bad.yaml", "machine: pc\nmemory: lots\nstorage:\n  - name: root\n    type: floppy\n");
	write_file(dir, "_bases/good.yaml", "machine: pc\n");
	write_file(dir, "_bases/named.yaml", "memory: 1G\nname: x\n");
	write_file(dir, "_bases/loop1.yaml", "extends: loop2.yaml\n");
	write_file(dir, "_bases/loop2.yaml", "extends: [good.yaml, loop1.yaml]\n");
	write_file(dir, "_bases/dup.yaml", "cpu: 1\ncpu: 2\n");
	write_file(dir, "_bases/two.yaml", "cpu: 1\n---\ncpu: 2\n");

	write_file(dir, "inbase.yaml", "name: web\nextends: _bases/bad.yaml\n");
	char *e = load_err(dir, "inbase.yaml");
	ck_assert_str_eq(e, "_bases/bad.yaml:2:9: 'memory' must be a size such as 2048 (MiB) or 4G, got 'lots'\n"
			    "_bases/bad.yaml:5:11: 'type' of storage 'root' must be one of qcow2, raw, virtfs, got "
			    "'floppy'");
	free(e);

	write_file(dir, "inmanifest.yaml", "name: web\nextends: _bases/good.yaml\ncpu: 0\n");
	e = load_err(dir, "inmanifest.yaml");
	ck_assert_str_eq(e, "inmanifest.yaml:3:6: 'cpu' must be an integer from 1 to 1024, got '0'");
	free(e);

	write_file(dir, "missing.yaml", "name: web\nextends:\n  - _bases/good.yaml\n  - _bases/nope.yaml\n");
	e = load_err(dir, "missing.yaml");
	ck_assert_msg(strstr(e, "missing.yaml:4:5: base '_bases/nope.yaml' cannot be read: no such file or directory"),
		      "%s", e);
	free(e);

	write_file(dir, "named.yaml", "name: web\nextends: _bases/named.yaml\n");
	e = load_err(dir, "named.yaml");
	ck_assert_msg(strstr(e, "named.yaml:2:10: base '_bases/named.yaml' sets 'name' (line 2)"), "%s", e);
	free(e);

	write_file(dir, "loop.yaml", "name: web\nextends: _bases/loop1.yaml\n");
	e = load_err(dir, "loop.yaml");
	ck_assert_str_eq(e, "_bases/loop2.yaml:1:22: base 'loop1.yaml' makes a cycle of extends: loop.yaml -> "
			    "_bases/loop1.yaml -> _bases/loop2.yaml -> _bases/loop1.yaml (remove one of them)");
	free(e);

	/* the manifest extending itself */
	write_file(dir, "self.yaml", "name: web\nextends: self.yaml\n");
	e = load_err(dir, "self.yaml");
	ck_assert_msg(strstr(e, "self.yaml:2:10: base 'self.yaml' makes a cycle of extends: self.yaml -> self.yaml"),
		      "%s", e);
	free(e);

	write_file(dir, "dup.yaml", "name: web\nextends: _bases/dup.yaml\n");
	e = load_err(dir, "dup.yaml");
	ck_assert_str_eq(e, "_bases/dup.yaml:2:1: duplicate key 'cpu' (first at line 1)");
	free(e);

	write_file(dir, "two.yaml", "name: web\nextends: _bases/two.yaml\n");
	e = load_err(dir, "two.yaml");
	ck_assert_msg(strstr(e, "two.yaml:2:10: base '_bases/two.yaml' holds 2 documents"), "%s", e);
	free(e);

	write_file(dir, "dev.yaml", "name: web\nextends: [/dev/stdin, _bases, /proc/self/status]\n");
	e = load_err(dir, "dev.yaml");
	ck_assert_str_eq(e, "dev.yaml:2:11: base '/dev/stdin' is not a regular file\n"
			    "dev.yaml:2:23: base '_bases' is not a regular file\n"
			    "dev.yaml:2:31: base '/proc/self/status' is not a regular file");
	free(e);

	char *big = xcalloc(2 << 20, 1);
	memset(big, '#', (2 << 20) - 1);
	write_file(dir, "_bases/big.yaml", big);
	free(big);
	write_file(dir, "big.yaml", "name: web\nextends: _bases/big.yaml\n");
	e = load_err(dir, "big.yaml");
	ck_assert_str_eq(e, "big.yaml:2:10: base '_bases/big.yaml' cannot be read: manifest is too large (limit "
			    "1048576 bytes)");
	free(e);

	write_file(dir, "typo.yaml", "name: web\nextend: _bases/good.yaml\n");
	e = load_err(dir, "typo.yaml");
	ck_assert_str_eq(e, "typo.yaml:2:1: unknown key 'extend' (did you mean 'extends'?)");
	free(e);

	write_file(dir, "badtype.yaml", "name: web\nextends: [[a]]\n");
	e = load_err(dir, "badtype.yaml");
	ck_assert_str_eq(e, "badtype.yaml:2:11: 'extends' entries must be paths of base files, got a list");
	free(e);

	/* the same bad base used by two vms: its error is reported once */
	write_file(dir, "pair/a.yaml", "name: a\nextends: ../_bases/bad.yaml\n");
	write_file(dir, "pair/b.yaml", "name: b\nextends: ../_bases/bad.yaml\n");
	e = load_err(dir, "pair");
	ck_assert_str_eq(e, "pair/../_bases/bad.yaml:2:9: 'memory' must be a size such as 2048 (MiB) or 4G, got 'lots'\n"
			    "pair/../_bases/bad.yaml:5:11: 'type' of storage 'root' must be one of qcow2, raw, virtfs, "
			    "got 'floppy'");
	free(e);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_bases_dir_rule)
{
	char *dir = mq_test_tmpdir("extends");
	/* a nameless file outside _bases/ that a vm extends: a clear error */
	write_file(dir, "vms/common.yaml", "memory: 256M\n");
	write_file(dir, "vms/web.yaml", "name: web\nextends: common.yaml\n");
	char *e = load_err(dir, "vms");
	ck_assert_msg(strstr(e, "vms/common.yaml:1:1: missing required key 'name'"), "%s", e);
	ck_assert_msg(strstr(e, "vms/common.yaml:1:1: this file is extended as a base but sits outside a _bases/ "
				"directory, so it is also read as a vm (move it into a directory named _bases)"),
		      "%s", e);
	free(e);
	/* the same base moved into _bases/: fine, and never a vm, even as -f */
	write_file(dir, "ok/_bases/common.yaml", "memory: 256M\n");
	write_file(dir, "ok/web.yaml", "name: web\nextends: _bases/common.yaml\n");
	struct mq_specset *set = load_ok(dir, "ok");
	ck_assert_uint_eq(set->n, 1);
	mq_specset_free(set);
	set = load_ok(dir, "ok/_bases");
	ck_assert_uint_eq(set->n, 0);
	mq_specset_free(set);
	/* a file argument outside the walked tree can be a base too */
	write_file(dir, "shared/_bases/x.yaml", "cpu: 3\n");
	write_file(dir, "lone/web.yaml", "name: web\nextends: ../shared/_bases/x.yaml\n");
	set = load_ok(dir, "lone/web.yaml");
	ck_assert_uint_eq(set->specs[0]->cpu, 3);
	mq_specset_free(set);
	ck_assert(mq_path_in_bases_dir("_bases/x.yaml"));
	ck_assert(mq_path_in_bases_dir("a/_bases/x.yaml"));
	ck_assert(!mq_path_in_bases_dir("a/my_bases/x.yaml"));
	ck_assert(!mq_path_in_bases_dir("a/_bases.yaml"));
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_parse_buffer_resolves_bases)
{
	/* the watch loop parses file by file through mq_spec_parse_buffer */
	char *dir = mq_test_tmpdir("extends");
	write_file(dir, "_bases/b.yaml", "memory: 300M\n");
	struct mq_specset *set = mq_specset_new();
	struct mq_strv diags = MQ_STRV_INIT;
	const char *y = "name: web\nextends: _bases/b.yaml\n";
	ck_assert_int_eq(mq_spec_parse_buffer(y, strlen(y), "web.yaml", dir, dir, set, &diags), 0);
	ck_assert_uint_eq(set->specs[0]->memory, 300ULL << 20);
	ck_assert_uint_eq(set->bases.n, 1);
	mq_specset_free(set);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_render)
{
	char *dir = mq_test_tmpdir("extends");
	write_file(dir, "vms/_bases/b.yaml", "memory: 256M\nmachine: pc\nargs: [\"-a\"]\n");
	write_file(dir, "vms/web.yaml", "extends: _bases/b.yaml\nname: web\nmemory: \"512M\"\n");
	write_file(dir, "vms/db.yaml", "name: db\ncpu: 2\n");
	ck_assert_int_eq(chdir(dir), 0);
	const char *paths[] = { "vms" };
	struct mq_strv diags = MQ_STRV_INIT;
	char *out = NULL;
	ck_assert_int_eq(mq_manifests_render(paths, 1, "web", &out, &diags), 0);
	ck_assert_str_eq(out, "# vm 'web' from vms/web.yaml\n"
			      "# extends vms/_bases/b.yaml\n"
			      "#   machine: from vms/_bases/b.yaml\n"
			      "#   args: from vms/_bases/b.yaml\n"
			      "name: web\n"
			      "machine: pc\n"
			      "memory: \"512M\"\n"
			      "args:\n"
			      "- \"-a\"\n");
	free(out);
	ck_assert_int_eq(mq_manifests_render(paths, 1, NULL, &out, &diags), 0);
	ck_assert_ptr_nonnull(strstr(out, "# vm 'db' from vms/db.yaml\nname: db\ncpu: 2\n---\n# vm 'web'"));
	free(out);
	ck_assert_int_eq(mq_manifests_render(paths, 1, "nope", &out, &diags), -ENOENT);
	ck_assert_str_eq(diags.v[0], "no vm named 'nope' in the manifests given");
	mq_strv_clear(&diags);
	write_file(dir, "vms/bad.yaml", "name: bad\nextends: _bases/none.yaml\n");
	ck_assert_int_eq(mq_manifests_render(paths, 1, "web", &out, &diags), -EINVAL);
	ck_assert_uint_eq(diags.n, 1);
	mq_strv_clear(&diags);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_pyimport_convert)
{
	char *dir = mq_test_tmpdir("extends");
	char *outf = xasprintf("%s/web.yaml", dir);
	struct mq_pyconv_in in = {
		.name = "web", .id = "abc", .status = "running",
		.json = "{\"name\": \"Web\", \"memory\": \"1G\", \"log_file\": \"/var/log/w.log\", \"enable_kvm\": true,"
			" \"storage\": [{\"name\": \"hdd\", \"type\": \"qcow2\", \"size\": \"2G\"},"
			" {\"name\": \"raw1\", \"type\": \"raw\", \"file\": \"disks/r.img\", \"size\": \"1M\"}]}",
		.config_dir = "/srv/cfg", .header = "from a test\nline two", .out_file = outf, .out_dir = dir,
	};
	struct mq_pyconv_out o;
	char *why = NULL;
	ck_assert_int_eq(mq_pyimport_convert(&in, &o, &why), 0);
	ck_assert_str_eq(o.yaml, "# from a test\n"
				 "# line two\n"
				 "name: web\n"
				 "state: running\n"
				 "memory: \"1G\"\n"
				 "storage:\n"
				 "- name: \"hdd\"\n"
				 "  type: \"qcow2\"\n"
				 "  size: \"2G\"\n"
				 "  file: \"/tmp/maqet-abc-hdd.qcow2\"\n"
				 "- name: \"raw1\"\n"
				 "  type: \"raw\"\n"
				 "  file: \"/srv/cfg/disks/r.img\"\n"
				 "  size: \"1M\"\n"
				 "# Ignored by the python maqet and not read by maqet either:\n"
				 "#   log_file: \"/var/log/w.log\"\n"
				 "#   enable_kvm: true\n");
	ck_assert_uint_eq(o.ignored.n, 2);
	ck_assert_uint_ge(o.notes.n, 2); /* the name, the default disk */
	mq_pyconv_out_release(&o);

	/* stopped/created -> stopped; yaml config */
	in.json = NULL;
	in.status = "created";
	in.yaml = "memory: 512M\ncdrom: /x.iso\n";
	in.yaml_len = strlen(in.yaml);
	in.yaml_file = "web.yaml";
	ck_assert_int_eq(mq_pyimport_convert(&in, &o, &why), 0);
	ck_assert_ptr_nonnull(strstr(o.yaml, "state: stopped\nmemory: 512M\n"));
	ck_assert_ptr_nonnull(strstr(o.yaml, "#   cdrom: /x.iso\n"));
	mq_pyconv_out_release(&o);

	/* no config file: a relative path cannot be resolved, and says so */
	in.yaml = NULL;
	in.config_dir = NULL;
	in.json = "{\"storage\": [{\"name\": \"d\", \"type\": \"raw\", \"file\": \"d.img\", \"size\": \"1M\"}]}";
	ck_assert_int_eq(mq_pyimport_convert(&in, &o, &why), 0);
	ck_assert_uint_eq(o.notes.n, 1);
	ck_assert_ptr_nonnull(strstr(o.notes.v[0], "'file: d.img' is relative"));
	mq_pyconv_out_release(&o);

	/* cannot be converted: the reason */
	in.yaml = NULL;
	in.json = "{\"memory\": ";
	ck_assert_int_eq(mq_pyimport_convert(&in, &o, &why), -EINVAL);
	ck_assert_msg(strncmp(why, "config_data is not valid json", 29) == 0, "%s", why);
	free(why);
	in.json = "[1]";
	ck_assert_int_eq(mq_pyimport_convert(&in, &o, &why), -EINVAL);
	ck_assert_str_eq(why, "config_data is not a json object");
	free(why);
	in.json = "{\"memory\": \"lots\"}";
	ck_assert_int_eq(mq_pyimport_convert(&in, &o, &why), -EINVAL);
	ck_assert_msg(strstr(why, "the converted manifest does not validate: ") && strstr(why, "'memory' must be"),
		      "%s", why);
	free(why);
	free(outf);
	rm_rf(dir);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("extends");
	TCase *tc = tcase_create("extends");
	tcase_add_test(tc, test_merge_kinds);
	tcase_add_test(tc, test_list_and_chain_order);
	tcase_add_test(tc, test_hash_unchanged_when_moving_values);
	tcase_add_test(tc, test_errors_located);
	tcase_add_test(tc, test_bases_dir_rule);
	tcase_add_test(tc, test_parse_buffer_resolves_bases);
	tcase_add_test(tc, test_render);
	tcase_add_test(tc, test_pyimport_convert);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
