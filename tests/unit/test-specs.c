/* test-specs.c - unit tests for specs/: YAML -> typed specs, validation,
 * `arguments` rendering, canonical form, loading from files and dirs. */
#include <check.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "specs/canonical.h"
#include "specs/fields.h"
#include "specs/fromjson.h"
#include "specs/spec.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"
#include "tests/unit/tmpfiles.h"

/* ---- helpers -------------------------------------------------------- */

struct parsed {
	struct mq_specset *set;
	struct mq_strv diags;
	int r;
};

static struct parsed parse(const char *yaml)
{
	struct parsed p = { mq_specset_new(), MQ_STRV_INIT, 0 };
	p.r = mq_spec_parse_buffer(yaml, strlen(yaml), "t.yaml", "/tmp/mq-base", "/tmp/mq-src", p.set, &p.diags);
	return p;
}

static void parsed_release(struct parsed *p)
{
	mq_specset_free(p->set);
	mq_strv_clear(&p->diags);
}

static char *joined(const struct mq_strv *sv)
{
	return mq_strv_join(sv, "\n");
}

/* Parse a single valid VM; fail the test with the diags otherwise. */
static struct parsed ok1(const char *yaml)
{
	struct parsed p = parse(yaml);
	char *d = joined(&p.diags);
	ck_assert_msg(p.r == 0, "unexpected diags:\n%s", d);
	free(d);
	ck_assert_uint_eq(p.set->n, 1);
	ck_assert_ptr_nonnull(p.set->specs[0]->canonical);
	return p;
}

/* Parse, expect rejection with a diag equal to `expected` (exact line). */
static void expect_diag(const char *yaml, const char *expected)
{
	struct parsed p = parse(yaml);
	char *d = joined(&p.diags);
	ck_assert_msg(p.r == -EINVAL, "expected rejection for:\n%s", yaml);
	ck_assert_uint_eq(p.set->n, 0);
	ck_assert_msg(mq_strv_contains(&p.diags, expected), "missing diag '%s'; got:\n%s", expected, d);
	free(d);
	parsed_release(&p);
}

/* Rendered `arguments` of a one-VM manifest, tokens joined with '|'. */
static char *render(const char *arguments_yaml)
{
	char *yaml = xasprintf("name: t\narguments:\n%s", arguments_yaml);
	struct parsed p = ok1(yaml);
	char *r = mq_strv_join(&p.set->specs[0]->arguments, "|");
	parsed_release(&p);
	free(yaml);
	return r;
}

static void check_render(const char *arguments_yaml, const char *expected)
{
	char *r = render(arguments_yaml);
	ck_assert_msg(strcmp(r, expected) == 0, "arguments %s: expected '%s', got '%s'", arguments_yaml, expected, r);
	free(r);
}

static char *hash_of(const char *yaml)
{
	struct parsed p = ok1(yaml);
	char *h = xstrdup(p.set->specs[0]->hash);
	parsed_release(&p);
	return h;
}

/* ---- defaults and keys ---------------------------------------------- */

START_TEST(test_defaults)
{
	struct parsed p = ok1("name: web\n");
	const struct mq_spec *s = p.set->specs[0];
	ck_assert_str_eq(s->name, "web");
	ck_assert_int_eq(s->state, MQ_DESIRED_RUNNING);
	ck_assert_str_eq(s->binary, "qemu-system-x86_64");
	ck_assert_ptr_null(s->machine);
	ck_assert_int_eq(s->accel, MQ_ACCEL_AUTO);
	ck_assert_uint_eq(s->memory, 0);
	ck_assert_uint_eq(s->cpu, 0);
	ck_assert_str_eq(s->display, "none");
	ck_assert_ptr_null(s->vga);
	ck_assert_uint_eq(s->n_storage, 0);
	ck_assert_uint_eq(s->n_network, 0);
	ck_assert_int_eq(s->serial, MQ_SERIAL_LOG);
	ck_assert_uint_eq(s->stop_timeout_ms, 30000);
	ck_assert_int_eq(s->restart, MQ_RESTART_ON_FAILURE);
	ck_assert_uint_eq(s->depends_on.n, 0);
	ck_assert_uint_eq(s->args.n, 0);
	ck_assert_uint_eq(s->arguments.n, 0);
	ck_assert_str_eq(s->file, "t.yaml");
	ck_assert_str_eq(s->source, "/tmp/mq-src");
	ck_assert_int_eq(s->line, 1);
	ck_assert_int_eq(s->col, 1);
	ck_assert_str_eq(s->canonical,
			 "{\"name\":\"web\",\"state\":\"running\",\"binary\":\"qemu-system-x86_64\",\"machine\":null,"
			 "\"accel\":\"auto\",\"memory\":null,\"cpu\":null,\"display\":\"none\",\"vga\":null,\"storage\":[],"
			 "\"network\":[],\"serial\":\"log\",\"stop_timeout\":30000,\"restart\":\"on-failure\","
			 "\"depends_on\":[],\"args\":[],\"arguments\":[]}");
	ck_assert_uint_eq(strlen(s->hash), 64);
	parsed_release(&p);
}
END_TEST

START_TEST(test_every_key)
{
	struct parsed p = ok1("name: web-1\n"
			      "state: stopped\n"
			      "binary: /opt/qemu/bin/qemu-system-aarch64\n"
			      "machine: q35\n"
			      "accel: tcg\n"
			      "memory: 2G\n"
			      "cpu: 4\n"
			      "display: gtk\n"
			      "vga: virtio\n"
			      "storage:\n"
			      "  - name: root\n"
			      "    file: disks/root.qcow2\n"
			      "    size: 20G\n"
			      "    interface: scsi\n"
			      "    backing_file: /srv/base.qcow2\n"
			      "    backing_format: qcow2\n"
			      "  - {name: scratch_1, type: raw, size: 1048576, interface: none}\n"
			      "  - name: share\n"
			      "    type: virtfs\n"
			      "    path: shared\n"
			      "    mount_tag: host0\n"
			      "    security_model: passthrough\n"
			      "    readonly: on\n"
			      "network:\n"
			      "  - type: user\n"
			      "    forward: [tcp:8080:80, 'udp:5353:53']\n"
			      "serial: none\n"
			      "stop_timeout: 1m30s\n"
			      "restart: never\n"
			      "depends_on: [db, cache]\n"
			      "args: [-usb, 1, true]\n");
	const struct mq_spec *s = p.set->specs[0];
	ck_assert_str_eq(s->name, "web-1");
	ck_assert_int_eq(s->state, MQ_DESIRED_STOPPED);
	ck_assert_str_eq(s->binary, "/opt/qemu/bin/qemu-system-aarch64");
	ck_assert_str_eq(s->machine, "q35");
	ck_assert_int_eq(s->accel, MQ_ACCEL_TCG);
	ck_assert_uint_eq(s->memory, 2ULL << 30);
	ck_assert_uint_eq(s->cpu, 4);
	ck_assert_str_eq(s->display, "gtk");
	ck_assert_str_eq(s->vga, "virtio");
	ck_assert_uint_eq(s->n_storage, 3);
	ck_assert_str_eq(s->storage[0].name, "root");
	ck_assert_int_eq(s->storage[0].type, MQ_STORAGE_QCOW2);
	ck_assert_str_eq(s->storage[0].file, "/tmp/mq-base/disks/root.qcow2");
	ck_assert_uint_eq(s->storage[0].size, 20ULL << 30);
	ck_assert_int_eq(s->storage[0].interface, MQ_IFACE_SCSI);
	ck_assert_str_eq(s->storage[0].backing_file, "/srv/base.qcow2");
	ck_assert_str_eq(s->storage[0].backing_format, "qcow2");
	ck_assert_str_eq(s->storage[1].name, "scratch_1");
	ck_assert_int_eq(s->storage[1].type, MQ_STORAGE_RAW);
	ck_assert_ptr_null(s->storage[1].file);
	ck_assert_uint_eq(s->storage[1].size, 1048576);
	ck_assert_int_eq(s->storage[1].interface, MQ_IFACE_NONE);
	ck_assert_int_eq(s->storage[2].type, MQ_STORAGE_VIRTFS);
	ck_assert_str_eq(s->storage[2].path, "/tmp/mq-base/shared");
	ck_assert_str_eq(s->storage[2].mount_tag, "host0");
	ck_assert_str_eq(s->storage[2].security_model, "passthrough");
	ck_assert(s->storage[2].readonly);
	ck_assert_uint_eq(s->n_network, 1);
	ck_assert_str_eq(s->network[0].type, "user");
	ck_assert_uint_eq(s->network[0].n_forwards, 2);
	ck_assert_str_eq(s->network[0].forwards[0].proto, "tcp");
	ck_assert_uint_eq(s->network[0].forwards[0].host_port, 8080);
	ck_assert_uint_eq(s->network[0].forwards[0].guest_port, 80);
	ck_assert_str_eq(s->network[0].forwards[1].proto, "udp");
	ck_assert_uint_eq(s->network[0].forwards[1].host_port, 5353);
	ck_assert_int_eq(s->serial, MQ_SERIAL_NONE);
	ck_assert_uint_eq(s->stop_timeout_ms, 90000);
	ck_assert_int_eq(s->restart, MQ_RESTART_NEVER);
	ck_assert_uint_eq(s->depends_on.n, 2);
	ck_assert_str_eq(s->depends_on.v[0], "db");
	ck_assert_str_eq(s->depends_on.v[1], "cache");
	ck_assert_uint_eq(s->args.n, 3);
	ck_assert_str_eq(s->args.v[0], "-usb");
	ck_assert_str_eq(s->args.v[1], "1");
	ck_assert_str_eq(s->args.v[2], "true");
	/* canonical: fixed order, depends_on sorted, forwards as strings */
	ck_assert_ptr_nonnull(strstr(s->canonical, "\"depends_on\":[\"cache\",\"db\"]"));
	ck_assert_ptr_nonnull(strstr(s->canonical, "\"forward\":[\"tcp:8080:80\",\"udp:5353:53\"]"));
	ck_assert_ptr_nonnull(strstr(s->canonical,
				     "{\"name\":\"scratch_1\",\"type\":\"raw\",\"file\":null,\"size\":1048576,"
				     "\"interface\":\"none\",\"backing_file\":null,\"backing_format\":null}"));
	ck_assert_ptr_nonnull(strstr(s->canonical,
				     "{\"name\":\"share\",\"type\":\"virtfs\",\"path\":\"\\/tmp\\/mq-base\\/shared\","
				     "\"mount_tag\":\"host0\",\"security_model\":\"passthrough\",\"readonly\":true}"));
	ck_assert_ptr_nonnull(strstr(s->canonical, "\"memory\":2147483648,\"cpu\":4,"));
	ck_assert_ptr_nonnull(strstr(s->canonical, "\"stop_timeout\":90000,"));
	parsed_release(&p);
}
END_TEST

START_TEST(test_single_string_forms)
{
	struct parsed p = ok1("name: a\ndepends_on: b\nargs: -nographic\nnetwork: [{forward: tcp:2222:22}]\n");
	const struct mq_spec *s = p.set->specs[0];
	ck_assert_uint_eq(s->depends_on.n, 1);
	ck_assert_str_eq(s->depends_on.v[0], "b");
	ck_assert_uint_eq(s->args.n, 1);
	ck_assert_str_eq(s->args.v[0], "-nographic");
	ck_assert_uint_eq(s->network[0].forwards[0].host_port, 2222);
	ck_assert_str_eq(s->network[0].type, "user");
	parsed_release(&p);
}
END_TEST

START_TEST(test_enum_errors)
{
	expect_diag("name: a\nstate: paused\n", "t.yaml:2:8: 'state' must be one of running, stopped, got 'paused'");
	expect_diag("name: a\naccel: kvmm\n",
		    "t.yaml:2:8: 'accel' must be one of auto, kvm, tcg, got 'kvmm' (did you mean 'kvm'?)");
	expect_diag("name: a\nserial: file\n", "t.yaml:2:9: 'serial' must be one of log, none, got 'file'");
	expect_diag("name: a\nrestart: [x]\n",
		    "t.yaml:2:10: 'restart' must be one of on-failure, always, never, got a list");
	expect_diag("name: a\nmemroy: 1G\n", "t.yaml:2:1: unknown key 'memroy' (did you mean 'memory'?)");
	expect_diag("name: a\nzzz: 1\n", "t.yaml:2:1: unknown key 'zzz'");
	expect_diag("memory: 1G\n", "t.yaml:1:1: missing required key 'name'");
	expect_diag("name: a\ndisplay: [gtk]\n", "t.yaml:2:10: 'display' must be a non-empty string, got a list");
	expect_diag("name: a\nbinary: ''\n", "t.yaml:2:9: 'binary' must be a non-empty string, got ''");
}
END_TEST

START_TEST(test_name_regex)
{
	char name63[64], name64[65];
	memset(name63, 'a', 63);
	name63[63] = '\0';
	memset(name64, 'b', 64);
	name64[64] = '\0';
	const char *good[] = { "a", "0", "a-", "web-1", "9lives", name63 };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(good); i++) {
		char *y = xasprintf("name: '%s'\n", good[i]);
		struct parsed p = ok1(y);
		ck_assert_str_eq(p.set->specs[0]->name, good[i]);
		parsed_release(&p);
		free(y);
	}
	const char *bad[] = { "-a", "A", "a_b", "web.1", "wéb", name64, "a b" };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(bad); i++) {
		char *y = xasprintf("name: '%s'\n", bad[i]);
		struct parsed p = parse(y);
		ck_assert_int_eq(p.r, -EINVAL);
		ck_assert_uint_eq(p.diags.n, 1);
		ck_assert_msg(strstr(p.diags.v[0], "[a-z0-9][a-z0-9-]{0,62}"), "no regex in '%s'", p.diags.v[0]);
		parsed_release(&p);
		free(y);
	}
	/* storage names also allow '_' */
	struct parsed p = ok1("name: a\nstorage: [{name: my_disk, size: 1G}]\n");
	ck_assert_str_eq(p.set->specs[0]->storage[0].name, "my_disk");
	parsed_release(&p);
	expect_diag("name: a\nstorage: [{name: My, size: 1G}]\n",
		    "t.yaml:2:18: storage 'name' must be a name matching [a-z0-9][a-z0-9_-]{0,62} "
		    "(lowercase letters, digits, '-' and '_'), got 'My'");
}
END_TEST

START_TEST(test_cpu)
{
	struct parsed p = ok1("name: a\ncpu: '2'\n");
	ck_assert_uint_eq(p.set->specs[0]->cpu, 2);
	parsed_release(&p);
	p = ok1("name: a\ncpu: 1024\n");
	ck_assert_uint_eq(p.set->specs[0]->cpu, 1024);
	parsed_release(&p);
	expect_diag("name: a\ncpu: lots\n", "t.yaml:2:6: 'cpu' must be an integer from 1 to 1024, got 'lots'");
	expect_diag("name: a\ncpu: 0\n", "t.yaml:2:6: 'cpu' must be an integer from 1 to 1024, got '0'");
	expect_diag("name: a\ncpu: 1025\n", "t.yaml:2:6: 'cpu' must be an integer from 1 to 1024, got '1025'");
	expect_diag("name: a\ncpu: -1\n", "t.yaml:2:6: 'cpu' must be an integer from 1 to 1024, got '-1'");
}
END_TEST

START_TEST(test_sizes)
{
	const char *same[] = { "1024", "'1024'", "1G", "1024M", "1GiB", "1048576K" };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(same); i++) {
		char *y = xasprintf("name: a\nmemory: %s\n", same[i]);
		struct parsed p = ok1(y);
		ck_assert_uint_eq(p.set->specs[0]->memory, 1ULL << 30);
		parsed_release(&p);
		free(y);
	}
	struct parsed p = ok1("name: a\nmemory: 1\n");
	ck_assert_uint_eq(p.set->specs[0]->memory, 1ULL << 20);
	parsed_release(&p);
	expect_diag("name: a\nmemory: 4Q\n", "t.yaml:2:9: 'memory' must be a size such as 2048 (MiB) or 4G, got '4Q'");
	expect_diag("name: a\nmemory: 512K\n", "t.yaml:2:9: 'memory' must be at least 1M, got '512K'");
	expect_diag("name: a\nmemory: 1536K\n", "t.yaml:2:9: 'memory' must be a whole number of MiB, got '1536K'");
	expect_diag("name: a\nmemory: 0\n", "t.yaml:2:9: 'memory' must be at least 1M, got '0'");
	expect_diag("name: a\nmemory: 1000T\n", "t.yaml:2:9: 'memory' must be at most 64T, got '1000T'");
	/* storage sizes: bare number = bytes, at least 1M */
	p = ok1("name: a\nstorage: [{name: d, size: 2097152}, {name: e, size: 10G}]\n");
	ck_assert_uint_eq(p.set->specs[0]->storage[0].size, 2097152);
	ck_assert_uint_eq(p.set->specs[0]->storage[1].size, 10ULL << 30);
	parsed_release(&p);
	expect_diag("name: a\nstorage: [{name: d, size: 1000}]\n",
		    "t.yaml:2:27: 'size' of storage 'd' must be at least 1M, got '1000'");
	expect_diag("name: a\nstorage: [{name: d, size: big}]\n",
		    "t.yaml:2:27: 'size' of storage 'd' must be a size such as 20G (a bare number is bytes), got 'big'");
}
END_TEST

START_TEST(test_durations)
{
	static const struct {
		const char *in;
		uint64_t ms;
	} cases[] = { { "30", 30000 }, { "30s", 30000 }, { "500ms", 500 }, { "2m", 120000 }, { "1m30s", 90000 },
		      { "1h", 3600000 }, { "100ms", 100 } };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(cases); i++) {
		char *y = xasprintf("name: a\nstop_timeout: %s\n", cases[i].in);
		struct parsed p = ok1(y);
		ck_assert_uint_eq(p.set->specs[0]->stop_timeout_ms, cases[i].ms);
		parsed_release(&p);
		free(y);
	}
	expect_diag("name: a\nstop_timeout: 50ms\n", "t.yaml:2:15: 'stop_timeout' must be between 100ms and 1h, got '50ms'");
	expect_diag("name: a\nstop_timeout: 2h\n", "t.yaml:2:15: 'stop_timeout' must be between 100ms and 1h, got '2h'");
	expect_diag("name: a\nstop_timeout: soon\n",
		    "t.yaml:2:15: 'stop_timeout' must be a duration such as 30s, 500ms or 2m, got 'soon'");
}
END_TEST

/* ---- storage -------------------------------------------------------- */

START_TEST(test_storage_errors)
{
	expect_diag("name: a\nstorage:\n  - name: x\n", "t.yaml:3:5: storage 'x' needs 'size' (to create the image) or 'file'");
	expect_diag("name: a\nstorage:\n  - {size: 1G}\n", "t.yaml:3:5: storage item 1 needs a 'name'");
	expect_diag("name: a\nstorage:\n  - {name: x, type: qcow3, size: 1G}\n",
		    "t.yaml:3:21: 'type' of storage 'x' must be one of qcow2, raw, virtfs, got 'qcow3' (did you mean 'qcow2'?)");
	expect_diag("name: a\nstorage:\n  - {name: x, size: 1G}\n  - {name: x, size: 2G}\n",
		    "t.yaml:4:12: duplicate storage name 'x' (first at line 3)");
	expect_diag("name: a\nstorage:\n  - {name: x, size: 1G, mount_tag: t}\n",
		    "t.yaml:3:25: 'mount_tag' is not valid for storage type qcow2 (only for virtfs)");
	expect_diag("name: a\nstorage:\n  - {name: x, type: virtfs, path: /srv, mount_tag: t, size: 1G}\n",
		    "t.yaml:3:55: 'size' is not valid for storage type virtfs (only for qcow2 and raw)");
	expect_diag("name: a\nstorage:\n  - {name: x, size: 1G, backing_format: qcow2}\n",
		    "t.yaml:3:25: 'backing_format' is only valid with 'backing_file'");
	expect_diag("name: a\nstorage:\n  - {name: x, type: virtfs, path: /srv}\n",
		    "t.yaml:3:5: storage 'x' (virtfs) needs 'mount_tag', the tag the guest mounts");
	expect_diag("name: a\nstorage:\n  - {name: x, type: virtfs, mount_tag: t}\n",
		    "t.yaml:3:5: storage 'x' (virtfs) needs 'path', the host directory to share");
	expect_diag("name: a\nstorage:\n  - {name: x, type: virtfs, path: /srv, mount_tag: t, readonly: maybe}\n",
		    "t.yaml:3:65: 'readonly' of storage 'x' must be true or false, got 'maybe'");
	expect_diag("name: a\nstorage:\n  - {name: x, type: virtfs, path: /srv, mount_tag: t, security_model: open}\n",
		    "t.yaml:3:71: 'security_model' of storage 'x' must be one of none, passthrough, mapped, mapped-xattr, "
		    "mapped-file, got 'open'");
	expect_diag("name: a\nstorage: {name: x}\n", "t.yaml:2:10: 'storage' must be a list of mappings, got a mapping");
	expect_diag("name: a\nstorage:\n  - {name: x, sise: 1G}\n", "t.yaml:3:15: unknown key 'sise' in storage 'x' (did you mean 'size'?)");
}
END_TEST

START_TEST(test_virtfs_options)
{
	/* the Python maqet's nested `options:` and the flat keys give the same spec */
	char *h1 = hash_of("name: a\nstorage:\n  - {name: s, type: virtfs, path: /srv/s, mount_tag: t, "
			   "security_model: none, readonly: true}\n");
	char *h2 = hash_of("name: a\nstorage:\n  - name: s\n    type: virtfs\n    path: /srv/s\n    options:\n"
			   "      mount_tag: t\n      security_model: none\n      readonly: yes\n");
	ck_assert_str_eq(h1, h2);
	free(h1);
	free(h2);
	struct parsed p = ok1("name: a\nstorage:\n  - {name: s, type: virtfs, path: /srv/s, options: {mount_tag: t}}\n");
	ck_assert_str_eq(p.set->specs[0]->storage[0].mount_tag, "t");
	ck_assert_str_eq(p.set->specs[0]->storage[0].security_model, "mapped-xattr");
	ck_assert(!p.set->specs[0]->storage[0].readonly);
	parsed_release(&p);
	expect_diag("name: a\nstorage:\n  - name: s\n    type: virtfs\n    path: /srv/s\n    mount_tag: t\n"
		    "    options: {mount_tag: u}\n",
		    "t.yaml:7:15: 'mount_tag' given both in storage 's' and in its 'options' (first at line 6)");
	expect_diag("name: a\nstorage:\n  - {name: s, type: virtfs, path: /srv/s, mount_tag: t, options: {tag: u}}\n",
		    "t.yaml:3:67: unknown key 'tag' in 'options' of storage 's'");
	expect_diag("name: a\nstorage:\n  - {name: s, size: 1G, options: {mount_tag: u}}\n",
		    "t.yaml:3:25: 'options' is not valid for storage type qcow2 (only for virtfs)");
}
END_TEST

START_TEST(test_network_errors)
{
	expect_diag("name: a\nnetwork: [{type: tap}]\n",
		    "t.yaml:2:18: network 'type' must be user (the only type supported), got 'tap'");
	const char *bad[] = { "tcp:0:80", "tcp:65536:80", "sctp:1:1", "tcp:80", "tcp:80:", "tcp::80", "8080:80",
			      "tcp:8080:80:1", "tcp:+80:80" };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(bad); i++) {
		char *y = xasprintf("name: a\nnetwork: [{forward: ['%s']}]\n", bad[i]);
		char *e = xasprintf("t.yaml:2:22: 'forward' entries must look like tcp:HOSTPORT:GUESTPORT (tcp or udp, "
				    "ports 1 to 65535), got '%s'",
				    bad[i]);
		expect_diag(y, e);
		free(y);
		free(e);
	}
	struct parsed p = ok1("name: a\nnetwork: [{forward: ['udp:65535:1']}]\n");
	ck_assert_uint_eq(p.set->specs[0]->network[0].forwards[0].host_port, 65535);
	parsed_release(&p);
}
END_TEST

/* ---- arguments ------------------------------------------------------ */

START_TEST(test_arguments_forms)
{
	/* bare string, '-'-prefixed string kept as is */
	check_render("  - enable-kvm\n  - -nodefaults\n  - --no-reboot\n", "-enable-kvm|-nodefaults|--no-reboot");
	/* 2. scalar value verbatim */
	check_render("  - {smp: 2}\n  - {zoom: on}\n  - {rtc: 'base=utc'}\n", "-smp|2|-zoom|on|-rtc|base=utc");
	/* 3. null / ~ / empty value: the bare option */
	check_render("  - {nographic: null}\n  - {usb: ~}\n  - {s: }\n  - {snapshot: ''}\n", "-nographic|-usb|-s|-snapshot");
	/* 4. mapping value: key=value, nested maps dotted, null = bare key */
	check_render("  - {k: {a: 1, b: 2}}\n", "-k|a=1,b=2");
	check_render("  - {k: {a: {b: {c: 1}}}}\n", "-k|a.b.c=1");
	check_render("  - {display: {gtk: null, zoom-to-fit: on}}\n", "-display|gtk,zoom-to-fit=on");
	/* 5. lists: comma-joined at the top, dotted indexes under a key */
	check_render("  - {boot: [c, d]}\n", "-boot|c,d");
	check_render("  - {k: {x: [1, 2]}}\n", "-k|x.0=1,x.1=2");
	check_render("  - {drive: [{file: a.img}, {if: virtio}]}\n", "-drive|file=/tmp/mq-base/a.img,if=virtio");
	/* 6. multi-key map: first key is the option, the rest suboptions */
	check_render("  - {display: gtk, zoom-to-fit: on}\n", "-display|gtk,zoom-to-fit=on");
	check_render("  - {netdev: user, id: n0, hostfwd: 'tcp::2222-:22', ipv6: null, x: {y: 1}}\n",
		     "-netdev|user,id=n0,hostfwd=tcp::2222-:22,ipv6,x.y=1");
	check_render("  - {device: null, driver: e1000}\n", "-device|driver=e1000");
	/* numbers and booleans keep their written text */
	check_render("  - {m: 0x800}\n  - {accel: kvm}\n  - {accel: tcg}\n  - {global: yes}\n",
		     "-m|0x800|-accel|kvm|-accel|tcg|-global|yes");
	/* the whole of `arguments` as one mapping, document order */
	check_render("  enable-kvm: ~\n  smp: 4\n  m: 1G\n  display: {sdl: null, gl: on}\n",
		     "-enable-kvm|-smp|4|-m|1G|-display|sdl,gl=on");
}
END_TEST

START_TEST(test_arguments_errors)
{
	expect_diag("name: a\narguments:\n  - {m: 1G}\n  - {smp: 2}\n  - {m: 2G}\n",
		    "t.yaml:5:6: option '-m' given twice in 'arguments' (first at line 3)");
	expect_diag("name: a\narguments: {machine: q35, M: pc}\n",
		    "t.yaml:2:27: option '-M' given twice in 'arguments' (first at line 2)");
	expect_diag("name: a\nmemory: 1G\narguments:\n  - {m: 2G}\n",
		    "t.yaml:4:6: option '-m' in 'arguments' conflicts with 'memory' (line 2); set only one of them");
	expect_diag("name: a\ncpu: 2\narguments: [{smp: 2}]\n",
		    "t.yaml:3:14: option '-smp' in 'arguments' conflicts with 'cpu' (line 2); set only one of them");
	expect_diag("name: a\nvga: std\narguments: [{vga: qxl}]\n",
		    "t.yaml:3:14: option '-vga' in 'arguments' conflicts with 'vga' (line 2); set only one of them");
	expect_diag("name: a\nmachine: q35\narguments: [{machine: pc}]\n",
		    "t.yaml:3:14: option '-machine' in 'arguments' conflicts with 'machine' (line 2); set only one of them");
	expect_diag("name: a\ndisplay: gtk\narguments: [{display: sdl}]\n",
		    "t.yaml:3:14: option '-display' in 'arguments' conflicts with 'display' (line 2); set only one of them");
	expect_diag("name: a\narguments: [{qmp: 'unix:/x'}]\n",
		    "t.yaml:2:14: option '-qmp' is managed by maqet and cannot be set in 'arguments' (maqet runs QEMU's "
		    "monitors itself; use maqet's commands (status, stop, restart))");
	expect_diag("name: a\narguments: [-daemonize]\n",
		    "t.yaml:2:13: option '-daemonize' is managed by maqet and cannot be set in 'arguments' (maqet "
		    "supervises QEMU itself; remove it)");
	expect_diag("name: a\narguments: [{name: b}]\n",
		    "t.yaml:2:14: option '-name' is managed by maqet and cannot be set in 'arguments' (the QEMU name is "
		    "the vm's 'name' key)");
	expect_diag("name: a\narguments: [{monitor: stdio}]\n",
		    "t.yaml:2:14: option '-monitor' is managed by maqet and cannot be set in 'arguments' (maqet runs "
		    "QEMU's monitors itself; use maqet's commands (status, stop, restart))");
	expect_diag("name: a\narguments: [{pidfile: /tmp/p}]\n",
		    "t.yaml:2:14: option '-pidfile' is managed by maqet and cannot be set in 'arguments' (maqet records "
		    "QEMU's pid itself; see 'maqet status')");
	expect_diag("name: a\narguments: [{chardev: socket, id: mqmp, path: /tmp/x}]\n",
		    "t.yaml:2:14: chardev id 'mqmp' in option '-chardev' in 'arguments' is maqet's (ids 'serial0' and "
		    "'mq...' are reserved); choose another id");
	expect_diag("name: a\narguments: ['m 2G']\n",
		    "t.yaml:2:13: invalid option name 'm 2G' in 'arguments'; write an option and its value as {m: 2G}");
	expect_diag("name: a\narguments: [[x]]\n", "t.yaml:2:13: 'arguments' items must be strings or mappings, got a list");
	/* a harmless chardev is fine */
	check_render("  - {chardev: socket, id: ser0, path: /tmp/s}\n", "-chardev|socket,id=ser0,path=/tmp/s");
}
END_TEST

/* Item 3 of issue 7: `args` gets the same checks as `arguments`. */
START_TEST(test_args_owned_options)
{
	static const char *const owned[] = { "-daemonize", "-pidfile", "-qmp", "-qmp-pretty", "-monitor", "-mon",
					     "-name", "-S", "-incoming", "-runas", "-chroot" };
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		char *yaml = xasprintf("name: a\nargs: [-usb, '%s', x]\n", owned[i]);
		char *want = xasprintf("t.yaml:2:14: option '%s' is managed by maqet and cannot be set in 'args' (",
				       owned[i]);
		struct parsed p = parse(yaml);
		ck_assert_msg(p.r == -EINVAL, "%s accepted in args", owned[i]);
		ck_assert_uint_eq(p.diags.n, 1);
		ck_assert_msg(strncmp(p.diags.v[0], want, strlen(want)) == 0, "got '%s'", p.diags.v[0]);
		parsed_release(&p);
		free(want);
		free(yaml);
	}
	expect_diag("name: a\nargs: [--daemonize]\n",
		    "t.yaml:2:8: option '-daemonize' is managed by maqet and cannot be set in 'args' (maqet supervises "
		    "QEMU itself; remove it)");
	expect_diag("name: a\nargs: [-chardev, 'socket,id=mqev,path=/tmp/s']\n",
		    "t.yaml:2:18: chardev id 'mqev' in option '-chardev' in 'args' is maqet's (ids 'serial0' and "
		    "'mq...' are reserved); choose another id");
	expect_diag("name: a\nargs: [-device, 'virtserialport,chardev=mqmp']\n",
		    "t.yaml:2:17: chardev id 'mqmp' in option '-device' in 'args' is maqet's (ids 'serial0' and "
		    "'mq...' are reserved); choose another id");
	expect_diag("name: a\narguments: [{chardev: file, id: serial0, path: /tmp/x}]\n",
		    "t.yaml:2:14: chardev id 'serial0' in option '-chardev' in 'arguments' is maqet's (ids 'serial0' "
		    "and 'mq...' are reserved); choose another id");
	/* a value that merely looks like an owned option is no option */
	struct parsed p = ok1("name: a\nargs: [-append, 'x', -chardev, 'socket,id=ser0,path=/tmp/s']\n");
	ck_assert_uint_eq(p.set->specs[0]->args.n, 4);
	parsed_release(&p);
}
END_TEST

/* Item 4 of issue 7: host paths QEMU opens, in args and arguments. */
START_TEST(test_host_paths)
{
	expect_diag("name: a\narguments: [{drive: {file: /etc/shadow}}]\n",
		    "t.yaml:2:14: file '/etc/shadow' of option '-drive' in 'arguments' resolves to '/etc/shadow', "
		    "inside a system directory; put files QEMU opens elsewhere");
	expect_diag("name: a\nargs: [-drive, 'if=virtio,file=/etc/shadow']\n",
		    "t.yaml:2:16: file '/etc/shadow' of option '-drive' in 'args' resolves to '/etc/shadow', "
		    "inside a system directory; put files QEMU opens elsewhere");
	expect_diag("name: a\nargs: [-blockdev, 'driver=file,node-name=f,filename=../../etc/x']\n",
		    "t.yaml:2:19: filename '../../etc/x' of option '-blockdev' in 'args' resolves to '/etc/x', "
		    "inside a system directory; put files QEMU opens elsewhere");
	expect_diag("name: a\nargs: [-blockdev, '{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/usr/x\"}}']\n",
		    "t.yaml:2:19: filename '/usr/x' of option '-blockdev' in 'args' resolves to '/usr/x', "
		    "inside a system directory; put files QEMU opens elsewhere");
	static const char *const whole[] = { "kernel", "initrd", "bios", "dtb", "pflash" };
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		char *yaml = xasprintf("name: a\narguments: [{%s: /boot/f}]\n", whole[i]);
		char *want = xasprintf("t.yaml:2:14: path '/boot/f' of option '-%s' in 'arguments' resolves to '/boot/f', "
				       "inside a system directory; put files QEMU opens elsewhere", whole[i]);
		expect_diag(yaml, want);
		free(want);
		free(yaml);
		yaml = xasprintf("name: a\nargs: ['-%s', /boot/f]\n", whole[i]);
		struct parsed p = parse(yaml);
		ck_assert_msg(p.r == -EINVAL, "-%s /boot/f accepted in args", whole[i]);
		parsed_release(&p);
		free(yaml);
	}
	expect_diag("name: a\narguments: [{chardev: file, id: c0, path: /etc/motd}]\n",
		    "t.yaml:2:14: path '/etc/motd' of option '-chardev' in 'arguments' resolves to '/etc/motd', "
		    "inside a system directory; put files QEMU opens elsewhere");
	expect_diag("name: a\narguments: [{chardev: socket, id: c0, path: /tmp/s, logfile: /var/log/x}]\n",
		    "t.yaml:2:14: logfile '/var/log/x' of option '-chardev' in 'arguments' resolves to '/var/log/x', "
		    "inside a system directory; put files QEMU opens elsewhere");
	expect_diag("name: a\narguments: [{virtfs: local, path: /, mount_tag: r, security_model: none}]\n",
		    "t.yaml:2:14: path '/' of option '-virtfs' in 'arguments' resolves to '/', inside a system "
		    "directory; put files QEMU opens elsewhere");
	expect_diag("name: a\nargs: [-fsdev, 'local,id=f,path=/root,security_model=none']\n",
		    "t.yaml:2:16: path '/root' of option '-fsdev' in 'args' resolves to '/root', inside a system "
		    "directory; put files QEMU opens elsewhere");
	expect_diag("name: a\nargs: [-device, 'loader,file=/boot/x,addr=0x1000']\n",
		    "t.yaml:2:17: file '/boot/x' of option '-device' in 'args' resolves to '/boot/x', inside a system "
		    "directory; put files QEMU opens elsewhere");
	expect_diag("name: a\nargs: [-object, 'memory-backend-file,id=m,size=1G,mem-path=/etc/m']\n",
		    "t.yaml:2:17: mem-path '/etc/m' of option '-object' in 'args' resolves to '/etc/m', inside a "
		    "system directory; put files QEMU opens elsewhere");
	expect_diag("name: a\nargs: [-serial, 'file:/tmp/x']\n",
		    "t.yaml:2:17: '-serial file:...' in 'args' names a host path maqet cannot check; use "
		    "'-chardev file,id=ID,path=PATH' and '-serial chardev:ID'");

	/* relative paths resolve against the manifest's directory (/tmp/mq-base here), commas stay escaped */
	struct parsed p = ok1("name: a\nargs: [-kernel, vmlinuz, -drive, 'file=d,,1.img,if=virtio', -nographic]\n"
			      "arguments:\n  - {initrd: ./boot/initrd}\n  - {device: loader, file: fw.bin}\n"
			      "  - {object: memory-backend-file, id: m, size: 1G, mem-path: /dev/shm/m}\n"
			      "  - {blockdev: '{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"x.img\"}'}\n");
	const struct mq_spec *s = p.set->specs[0];
	char *a = mq_strv_join(&s->args, "|"), *b = mq_strv_join(&s->arguments, "|");
	ck_assert_str_eq(a, "-kernel|/tmp/mq-base/vmlinuz|-drive|file=/tmp/mq-base/d,,1.img,if=virtio|-nographic");
	ck_assert_str_eq(b, "-initrd|/tmp/mq-base/./boot/initrd|-device|loader,file=/tmp/mq-base/fw.bin|"
			    "-object|memory-backend-file,id=m,size=1G,mem-path=/dev/shm/m|"
			    "-blockdev|{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"/tmp/mq-base/x.img\"}");
	free(a);
	free(b);
	parsed_release(&p);
	/* block protocols are no host paths; file: is one; json: is refused */
	check_render("  - {drive: {file: 'nbd://host:10809/x', if: virtio}}\n", "-drive|file=nbd://host:10809/x,if=virtio");
	check_render("  - {drive: {file: 'file:rel.img'}}\n", "-drive|file=file:/tmp/mq-base/rel.img");
	expect_diag("name: a\narguments: [{drive: {file: 'file:/etc/shadow'}}]\n",
		    "t.yaml:2:14: file '/etc/shadow' of option '-drive' in 'arguments' resolves to '/etc/shadow', "
		    "inside a system directory; put files QEMU opens elsewhere");
	expect_diag("name: a\nargs: [-drive, 'file=json:{\"file.filename\":\"/etc/shadow\"}']\n",
		    "t.yaml:2:16: file 'json:...' of option '-drive' in 'args' hides the paths QEMU opens; write the "
		    "options out (or use -blockdev)");
	/* a blockdev 'file' naming another node is no path */
	check_render("  - {blockdev: 'driver=qcow2,node-name=q,file=f'}\n", "-blockdev|driver=qcow2,node-name=q,file=f");
}
END_TEST

START_TEST(test_arguments_display_default)
{
	struct parsed p = ok1("name: a\narguments: [{display: gtk}]\n");
	ck_assert_ptr_null(p.set->specs[0]->display);
	ck_assert_ptr_nonnull(strstr(p.set->specs[0]->canonical, "\"display\":null"));
	parsed_release(&p);
	p = ok1("name: a\narguments: [{m: 1G}]\n");
	ck_assert_str_eq(p.set->specs[0]->display, "none");
	ck_assert_uint_eq(p.set->specs[0]->memory, 0);
	parsed_release(&p);
}
END_TEST

/* ---- canonical form, diff, classes ---------------------------------- */

START_TEST(test_hash_stability)
{
	char *h1 = hash_of("name: web\nmemory: 1024\ncpu: 2\nstorage:\n  - name: root\n    size: 10G\n"
			   "depends_on: [b, a]\n");
	char *h2 = hash_of("# comment\ndepends_on:\n  - a   # first\n  - b\ncpu: \"2\"\n\n"
			   "storage: [{size: 10240M, name: root, type: qcow2, interface: virtio}]\n"
			   "memory: 1G\nname: 'web'\nstate: running\nstop_timeout: 30s\n");
	char *h3 = hash_of("{name: web, memory: 1G, cpu: 2, storage: [{name: root, size: 10737418240}], depends_on: [a, b], "
			   "display: none, binary: qemu-system-x86_64, restart: on-failure, serial: log, accel: auto}\n");
	ck_assert_str_eq(h1, h2);
	ck_assert_str_eq(h1, h3);
	/* any value change changes the hash */
	const char *changed[] = {
		"name: web\nmemory: 2048\ncpu: 2\nstorage: [{name: root, size: 10G}]\ndepends_on: [a, b]\n",
		"name: web\nmemory: 1G\ncpu: 3\nstorage: [{name: root, size: 10G}]\ndepends_on: [a, b]\n",
		"name: web\nmemory: 1G\ncpu: 2\nstorage: [{name: root, size: 11G}]\ndepends_on: [a, b]\n",
		"name: web\nmemory: 1G\ncpu: 2\nstorage: [{name: root, size: 10G}]\ndepends_on: [a]\n",
		"name: web\nmemory: 1G\ncpu: 2\nstorage: [{name: root, size: 10G}]\ndepends_on: [a, b]\nstate: stopped\n",
		"name: web\nmemory: 1G\ncpu: 2\nstorage: [{name: root, size: 10G}]\ndepends_on: [a, b]\nstop_timeout: 31s\n",
		"name: wab\nmemory: 1G\ncpu: 2\nstorage: [{name: root, size: 10G}]\ndepends_on: [a, b]\n",
		"name: web\nmemory: 1G\ncpu: 2\nstorage: [{name: root, size: 10G}]\ndepends_on: [a, b]\nargs: [-s]\n",
		"name: web\nmemory: 1G\ncpu: 2\nstorage: [{name: root, size: 10G}]\ndepends_on: [a, b]\nplacement: {host: a}\n",
	};
	for (size_t i = 0; i < MQ_ARRAY_SIZE(changed); i++) {
		char *h = hash_of(changed[i]);
		ck_assert_msg(strcmp(h, h1) != 0, "hash unchanged for case %zu", i);
		free(h);
	}
	free(h1);
	free(h2);
	free(h3);
}
END_TEST

START_TEST(test_diff_and_classes)
{
	struct parsed a = ok1("name: web\nmemory: 1G\nrestart: always\n");
	struct parsed b = ok1("name: web\nmemory: 2G\nrestart: never\nstate: stopped\ndepends_on: [x]\n");
	struct mq_strv changed = MQ_STRV_INIT;
	ck_assert_int_eq(mq_spec_diff(a.set->specs[0]->canonical, b.set->specs[0]->canonical, &changed), 0);
	char *j = mq_strv_join(&changed, ",");
	ck_assert_str_eq(j, "state,memory,restart,depends_on");
	free(j);
	mq_strv_clear(&changed);
	ck_assert_int_eq(mq_spec_diff(a.set->specs[0]->canonical, a.set->specs[0]->canonical, &changed), 0);
	ck_assert_uint_eq(changed.n, 0);
	ck_assert_int_eq(mq_spec_diff("not json", a.set->specs[0]->canonical, &changed), -EINVAL);
	ck_assert_uint_eq(changed.n, 19);
	ck_assert_str_eq(changed.v[0], "name");
	ck_assert_str_eq(changed.v[16], "arguments");
	ck_assert_str_eq(changed.v[17], "snapshots");
	ck_assert_str_eq(changed.v[18], "placement");
	mq_strv_clear(&changed);
	parsed_release(&a);
	parsed_release(&b);

	ck_assert_int_eq(mq_spec_field_class("state"), MQ_FIELD_STATE);
	ck_assert_int_eq(mq_spec_field_class("restart"), MQ_FIELD_RECORD);
	ck_assert_int_eq(mq_spec_field_class("stop_timeout"), MQ_FIELD_RECORD);
	ck_assert_int_eq(mq_spec_field_class("depends_on"), MQ_FIELD_RECORD);
	const char *restart_keys[] = { "name", "binary", "machine", "accel", "memory", "cpu", "display", "vga",
				       "storage", "network", "serial", "args", "arguments" };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(restart_keys); i++)
		ck_assert_int_eq(mq_spec_field_class(restart_keys[i]), MQ_FIELD_RESTART);
}
END_TEST

/* A regression pin: the canonical JSON and sha256 of a manifest using every
 * key (and every storage/network form) were computed by the code before
 * specs/ was split by role.  The hash is stored for every running VM, so any
 * change here would restart every VM on upgrade: never "fix" these strings;
 * a deliberate format change needs a migration. */
static const char pin_manifest[] =
"name: web-1\n"
"state: stopped\n"
"binary: /opt/qemu/bin/qemu-system-aarch64\n"
"machine: q35\n"
"accel: kvm\n"
"memory: 2G\n"
"cpu: 4\n"
"display: gtk\n"
"vga: virtio\n"
"storage:\n"
"  - name: root\n"
"    file: disks/root.qcow2\n"
"    size: 20G\n"
"    interface: scsi\n"
"    backing_file: /srv/base.qcow2\n"
"    backing_format: qcow2\n"
"  - {name: scratch_1, type: raw, size: 1048576, interface: none}\n"
"  - {name: data, file: /srv/data.img, type: raw, interface: sata}\n"
"  - name: share\n"
"    type: virtfs\n"
"    path: shared\n"
"    options: {mount_tag: host0, security_model: passthrough, readonly: on}\n"
"  - {name: share2, type: virtfs, path: /srv/x, mount_tag: t2}\n"
"network:\n"
"  - type: user\n"
"    forward: [tcp:8080:80, 'udp:5353:53']\n"
"  - {forward: tcp:2222:22}\n"
"serial: none\n"
"stop_timeout: 1m30s\n"
"restart: always\n"
"depends_on: [db, cache]\n"
"args: [-usb, 1, true, \"caf\\u00e9 \\\"q\\\" /x\"]\n"
"arguments:\n"
"  - enable-kvm\n"
"  - {device: {driver: virtio-net-pci, netdev: n0, mac: '52:54:00:12:34:56'}}\n"
"  - {object: memory-backend-ram, id: mem0, size: 1G, host-nodes: [0, 1]}\n"
"  - {boot: {order: c, menu: on}}\n"
"  - {nodefaults: null}\n"
"---\n"
"name: db\n"
"arguments: {display: gtk, zoom-to-fit: on}\n";

static const char *const pin_canonical[2] = {
	"{\"name\":\"web-1\",\"state\":\"stopped\",\"binary\":\"\\/opt\\/qemu\\/bin\\/qemu-system-aarch64\",\""
		"machine\":\"q35\",\"accel\":\"kvm\",\"memory\":2147483648,\"cpu\":4,\"display\":\"gtk\",\"vga\":\"vi"
		"rtio\",\"storage\":[{\"name\":\"root\",\"type\":\"qcow2\",\"file\":\"\\/tmp\\/mq-base\\/disks\\/root"
		".qcow2\",\"size\":21474836480,\"interface\":\"scsi\",\"backing_file\":\"\\/srv\\/base.qcow2\",\"back"
		"ing_format\":\"qcow2\"},{\"name\":\"scratch_1\",\"type\":\"raw\",\"file\":null,\"size\":1048576,\"in"
		"terface\":\"none\",\"backing_file\":null,\"backing_format\":null},{\"name\":\"data\",\"type\":\"raw\""
		",\"file\":\"\\/srv\\/data.img\",\"size\":null,\"interface\":\"sata\",\"backing_file\":null,\"backing"
		"_format\":null},{\"name\":\"share\",\"type\":\"virtfs\",\"path\":\"\\/tmp\\/mq-base\\/shared\",\"mou"
		"nt_tag\":\"host0\",\"security_model\":\"passthrough\",\"readonly\":true},{\"name\":\"share2\",\"type"
		"\":\"virtfs\",\"path\":\"\\/srv\\/x\",\"mount_tag\":\"t2\",\"security_model\":\"mapped-xattr\",\"rea"
		"donly\":false}],\"network\":[{\"type\":\"user\",\"forward\":[\"tcp:8080:80\",\"udp:5353:53\"]},{\"ty"
		"pe\":\"user\",\"forward\":[\"tcp:2222:22\"]}],\"serial\":\"none\",\"stop_timeout\":90000,\"restart\""
		":\"always\",\"depends_on\":[\"cache\",\"db\"],\"args\":[\"-usb\",\"1\",\"true\",\"café \\\"q\\\" \\/"
		"x\"],\"arguments\":[\"-enable-kvm\",\"-device\",\"driver=virtio-net-pci,netdev=n0,mac=52:54:00:12:34"
		":56\",\"-object\",\"memory-backend-ram,id=mem0,size=1G,host-nodes.0=0,host-nodes.1=1\",\"-boot\",\"o"
		"rder=c,menu=on\",\"-nodefaults\"]}",
	"{\"name\":\"db\",\"state\":\"running\",\"binary\":\"qemu-system-x86_64\",\"machine\":null,\"accel\":"
		"\"auto\",\"memory\":null,\"cpu\":null,\"display\":null,\"vga\":null,\"storage\":[],\"network\":[],\""
		"serial\":\"log\",\"stop_timeout\":30000,\"restart\":\"on-failure\",\"depends_on\":[],\"args\":[],\"a"
		"rguments\":[\"-display\",\"gtk\",\"-zoom-to-fit\",\"on\"]}",
};
static const char *const pin_hash[2] = {
	"74ce7a2f022afc3d1f32f10eb1be7cdfe8cbfb2d051295d2337a8722983ef9c2",
	"920720c59390156c7900999d0f2d215273d54b1a5c31ae1e06dafdb56b628f86",
};

START_TEST(test_canonical_pin)
{
	struct parsed p = parse(pin_manifest);
	char *d = joined(&p.diags);
	ck_assert_msg(p.r == 0, "unexpected diags:\n%s", d);
	free(d);
	ck_assert_uint_eq(p.set->n, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct mq_spec *s = p.set->specs[i];
		ck_assert_str_eq(s->canonical, pin_canonical[i]);
		ck_assert_str_eq(s->hash, pin_hash[i]);
		/* reading the recorded form back gives the same spec */
		struct mq_spec *back = NULL;
		struct mq_error *err = NULL;
		ck_assert_int_eq(mq_spec_from_canonical(s->canonical, "/tmp/mq-src", &back, &err), 0);
		ck_assert_str_eq(back->canonical, pin_canonical[i]);
		ck_assert_str_eq(back->hash, pin_hash[i]);
		ck_assert_str_eq(back->name, s->name);
		ck_assert_int_eq(back->state, s->state);
		ck_assert_str_eq(back->binary, s->binary);
		ck_assert_int_eq(back->accel, s->accel);
		ck_assert_uint_eq(back->memory, s->memory);
		ck_assert_uint_eq(back->cpu, s->cpu);
		ck_assert_uint_eq(back->n_storage, s->n_storage);
		for (size_t j = 0; j < s->n_storage; j++) {
			ck_assert_str_eq(back->storage[j].name, s->storage[j].name);
			ck_assert_int_eq(back->storage[j].type, s->storage[j].type);
			ck_assert_uint_eq(back->storage[j].size, s->storage[j].size);
			ck_assert_int_eq(back->storage[j].interface, s->storage[j].interface);
			ck_assert_int_eq(back->storage[j].readonly, s->storage[j].readonly);
		}
		ck_assert_uint_eq(back->n_network, s->n_network);
		for (size_t j = 0; j < s->n_network; j++) {
			ck_assert_uint_eq(back->network[j].n_forwards, s->network[j].n_forwards);
			for (size_t k = 0; k < s->network[j].n_forwards; k++) {
				ck_assert_str_eq(back->network[j].forwards[k].proto, s->network[j].forwards[k].proto);
				ck_assert_uint_eq(back->network[j].forwards[k].host_port,
						  s->network[j].forwards[k].host_port);
				ck_assert_uint_eq(back->network[j].forwards[k].guest_port,
						  s->network[j].forwards[k].guest_port);
			}
		}
		ck_assert_int_eq(back->serial, s->serial);
		ck_assert_uint_eq(back->stop_timeout_ms, s->stop_timeout_ms);
		ck_assert_int_eq(back->restart, s->restart);
		ck_assert_uint_eq(back->depends_on.n, s->depends_on.n);
		ck_assert_uint_eq(back->args.n, s->args.n);
		ck_assert_uint_eq(back->arguments.n, s->arguments.n);
		mq_spec_free(back);
	}
	parsed_release(&p);
}
END_TEST

/* The fields table (specs/fields.h) is the only list of manifest keys: walk
 * it, and check it against what the parser accepts and what the canonical
 * form holds, which are found here without reading the table. */
START_TEST(test_fields_table)
{
	ck_assert_uint_ge(mq_fields_n, 17);
	for (size_t i = 0; i < mq_fields_n; i++) {
		const struct mq_field *f = &mq_fields[i];
		ck_assert_ptr_nonnull(f->key);
		ck_assert_str_eq(mq_field_keys[i], f->key);
		ck_assert_msg(f->cls == MQ_FIELD_RESTART || f->cls == MQ_FIELD_STATE || f->cls == MQ_FIELD_RECORD,
			      "field '%s' has no valid change class (%d)", f->key, (int)f->cls);
		ck_assert(mq_field_class_valid(f->cls));
		ck_assert_int_eq(mq_spec_field_class(f->key), f->cls);
		ck_assert_ptr_eq(mq_field_find(f->key), f);
		ck_assert_ptr_nonnull(f->parse);
		ck_assert_ptr_nonnull(f->to_json);
		ck_assert_ptr_nonnull(f->from_json);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(mq_fields[j].key, f->key);
	}
	ck_assert(!mq_field_class_valid((enum mq_field_class)0));
	ck_assert_ptr_null(mq_field_find("memroy"));
	ck_assert_ptr_null(mq_field_find(NULL));

	/* every key of the canonical form (parsed with json-c) has a row, in
	 * table order, and every row is in the canonical form */
	struct parsed p = parse(pin_manifest);
	ck_assert_int_eq(p.r, 0);
	json_object *o = json_tokener_parse(p.set->specs[0]->canonical);
	ck_assert_ptr_nonnull(o);
	size_t n = 0;
	json_object_object_foreach(o, key, val)
	{
		(void)val;
		ck_assert_msg(n < mq_fields_n, "canonical key '%s' beyond the table", key);
		ck_assert_str_eq(key, mq_fields[n].key);
		n++;
	}
	/* the pin manifest has no `snapshots:` and no `placement:`, the two
	 * optional rows (left out of the canonical form when absent) */
	ck_assert_uint_eq(n, mq_fields_n - 2);
	ck_assert_str_eq(mq_fields[n].key, "snapshots");
	ck_assert_str_eq(mq_fields[n + 1].key, "placement");
	json_object_put(o);
	parsed_release(&p);

	/* every key the parser accepts has a row: each row's key is accepted
	 * (given as null, which every key but 'name' allows), and a key without
	 * a row is refused */
	for (size_t i = 0; i < mq_fields_n; i++) {
		if (strcmp(mq_fields[i].key, "name") == 0)
			continue;
		char *yaml = xasprintf("name: t\n%s: ~\n", mq_fields[i].key);
		struct parsed q = parse(yaml);
		char *d = joined(&q.diags);
		ck_assert_msg(q.r == 0, "key '%s' refused:\n%s", mq_fields[i].key, d);
		free(d);
		parsed_release(&q);
		free(yaml);
	}
	expect_diag("name: t\nsource: x\n", "t.yaml:2:1: unknown key 'source'");
	expect_diag("name: t\nstop-timeout: 1s\n", "t.yaml:2:1: unknown key 'stop-timeout' (did you mean 'stop_timeout'?)");
}
END_TEST

/* Each row's from_json reads back exactly what its to_json wrote. */
START_TEST(test_fields_roundtrip)
{
	struct parsed p = parse(pin_manifest);
	ck_assert_int_eq(p.r, 0);
	for (size_t i = 0; i < p.set->n; i++) {
		struct mq_spec *back = NULL;
		struct mq_error *err = NULL;
		ck_assert_int_eq(mq_spec_from_canonical(p.set->specs[i]->canonical, NULL, &back, &err), 0);
		free(back->canonical);
		back->canonical = NULL;
		mq_spec_make_canonical(back);
		ck_assert_str_eq(back->canonical, pin_canonical[i]);
		ck_assert_str_eq(back->hash, pin_hash[i]);
		mq_spec_free(back);
	}
	parsed_release(&p);

	/* a record without a name is refused, naming the key */
	struct mq_spec *s = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_spec_from_canonical("{\"memory\":1048576}", NULL, &s, &err), -EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err->msg, "recorded spec has no name");
	mq_error_free(err);
}
END_TEST

START_TEST(test_enum_strings)
{
	ck_assert_str_eq(mq_desired_str(MQ_DESIRED_STOPPED), "stopped");
	ck_assert_str_eq(mq_accel_str(MQ_ACCEL_KVM), "kvm");
	ck_assert_str_eq(mq_restart_str(MQ_RESTART_ON_FAILURE), "on-failure");
	ck_assert_str_eq(mq_storage_type_str(MQ_STORAGE_VIRTFS), "virtfs");
	ck_assert_str_eq(mq_iface_str(MQ_IFACE_SATA), "sata");
}
END_TEST

/* ---- documents and hostile input ------------------------------------ */

START_TEST(test_multi_document)
{
	struct parsed p = parse("# leading comment\n---\nname: a\n---\n# only a comment\n---\n---\nname: b\n...\n---\n");
	ck_assert_int_eq(p.r, 0);
	ck_assert_uint_eq(p.set->n, 2);
	ck_assert_str_eq(p.set->specs[0]->name, "a");
	ck_assert_int_eq(p.set->specs[0]->line, 3);
	ck_assert_str_eq(p.set->specs[1]->name, "b");
	ck_assert_int_eq(p.set->specs[1]->line, 8);
	ck_assert_int_eq(mq_specset_check(p.set, &p.diags), 0);
	ck_assert_ptr_nonnull(mq_specset_find(p.set, "b"));
	ck_assert_ptr_null(mq_specset_find(p.set, "c"));
	parsed_release(&p);
	p = parse("");
	ck_assert_int_eq(p.r, 0);
	ck_assert_uint_eq(p.set->n, 0);
	parsed_release(&p);
	expect_diag("- a\n- b\n", "t.yaml:1:1: a manifest must be a mapping of keys such as name and memory, got a list");
}
END_TEST

START_TEST(test_hostile_input)
{
	expect_diag("name: a\nbase: &m 1G\nmemory: *m\n", "t.yaml:2:7: yaml aliases and anchors are not allowed");
	expect_diag("a: &x [1]\nb: [*x, *x]\n", "t.yaml:1:4: yaml aliases and anchors are not allowed");
	expect_diag("name: a\n\nmemory: 1G\ncpu: 2\nmemory: 2G\n", "t.yaml:5:1: duplicate key 'memory' (first at line 3)");
	expect_diag("name: a\nstorage: [{name: x, size: 1G, size: 2G}]\n",
		    "t.yaml:2:31: duplicate key 'size' (first at line 2)");
	expect_diag("name: a\ndisplay: \"caf\xe9\"\n", "t.yaml:2:15: invalid yaml input: invalid trailing UTF-8 octet (#x22)");
	expect_diag("name: a\xff\n", "t.yaml:1:8: invalid yaml input: invalid leading UTF-8 octet (#xff)");
	expect_diag("name: a\nmemory: [1G\ncpu: 2\n",
		    "t.yaml:3:4: invalid yaml: did not find expected ',' or ']' (while parsing a flow sequence at line 2)");

	/* depth bomb: flow and block nesting */
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	mq_strbuf_adds(&sb, "name: a\nx: ");
	for (int i = 0; i < 100000; i++)
		mq_strbuf_addc(&sb, '[');
	struct parsed p = parse(sb.buf);
	ck_assert_int_eq(p.r, -EINVAL);
	ck_assert_uint_eq(p.diags.n, 1);
	ck_assert_ptr_nonnull(strstr(p.diags.v[0], "yaml nesting is too deep (limit 32 levels)"));
	parsed_release(&p);
	mq_strbuf_reset(&sb);
	for (int i = 0; i < 40; i++)
		mq_strbuf_addf(&sb, "%*sk%d:\n", 2 * i, "", i);
	p = parse(sb.buf);
	ck_assert_int_eq(p.r, -EINVAL);
	ck_assert_ptr_nonnull(strstr(p.diags.v[0], "nesting is too deep"));
	parsed_release(&p);

	/* node bomb: many small nodes */
	mq_strbuf_reset(&sb);
	mq_strbuf_adds(&sb, "name: a\nargs: [");
	for (int i = 0; i < 150000; i++)
		mq_strbuf_adds(&sb, "1,");
	mq_strbuf_adds(&sb, "]\n");
	p = parse(sb.buf);
	ck_assert_int_eq(p.r, -EINVAL);
	ck_assert_ptr_nonnull(strstr(p.diags.v[p.diags.n - 1], "too many yaml nodes (limit 100000)"));
	parsed_release(&p);

	/* many duplicate depends_on entries stay cheap (sorted, not quadratic) */
	mq_strbuf_reset(&sb);
	mq_strbuf_adds(&sb, "name: a\ndepends_on: [");
	for (int i = 0; i < 60000; i++)
		mq_strbuf_addf(&sb, "d%d,", i);
	mq_strbuf_adds(&sb, "d1]\n");
	p = parse(sb.buf);
	ck_assert_int_eq(p.r, -EINVAL);
	ck_assert_uint_eq(p.diags.n, 1);
	ck_assert_ptr_nonnull(strstr(p.diags.v[0], "'d1' is listed twice in 'depends_on'"));
	parsed_release(&p);

	/* control characters in names never reach the terminal */
	p = parse("name: a\n\"bad\\x1b[31mkey\": 1\n");
	ck_assert_int_eq(p.r, -EINVAL);
	ck_assert_ptr_null(strchr(p.diags.v[0], '\x1b'));
	parsed_release(&p);
	mq_strbuf_release(&sb);
}
END_TEST

/* ---- files and directories ------------------------------------------ */

static int load(const char *path, struct mq_specset **set, struct mq_strv *diags)
{
	const char *paths[] = { path };
	return mq_specset_load(paths, 1, set, diags);
}

START_TEST(test_directory_walk)
{
	char *dir = mq_test_tmpdir("specs");
	write_file(dir, "vms/b.yaml", "name: b\n");
	write_file(dir, "vms/a.yml", "name: a\n");
	write_file(dir, "vms/sub/c.yaml", "name: c\n---\nname: d\n");
	write_file(dir, "vms/.hidden.yaml", "name: hidden\n");
	write_file(dir, "vms/.git/e.yaml", "name: git\n");
	write_file(dir, "vms/.#b.yaml", "broken: [\n");
	write_file(dir, "vms/b.yaml~", "broken: [\n");
	write_file(dir, "vms/#b.yaml#", "broken: [\n");
	write_file(dir, "vms/b.yaml.swp", "broken: [\n");
	write_file(dir, "vms/b.swx", "broken: [\n");
	write_file(dir, "vms/x.tmp", "broken: [\n");
	write_file(dir, "vms/notes.txt", "broken: [\n");
	write_file(dir, "empty/README", "nothing here\n");
	ck_assert_int_eq(chdir(dir), 0);

	const char *forms[] = { "vms", "vms/", "vms//" };
	for (size_t f = 0; f < MQ_ARRAY_SIZE(forms); f++) {
		struct mq_specset *set = NULL;
		struct mq_strv diags = MQ_STRV_INIT;
		int r = load(forms[f], &set, &diags);
		char *d = joined(&diags);
		ck_assert_msg(r == 0, "load %s: %s", forms[f], d);
		free(d);
		ck_assert_uint_eq(set->n, 4);
		/* sorted by name, files displayed as given + walked path */
		ck_assert_str_eq(set->specs[0]->name, "a");
		ck_assert_str_eq(set->specs[0]->file, "vms/a.yml");
		ck_assert_str_eq(set->specs[1]->file, "vms/b.yaml");
		ck_assert_str_eq(set->specs[2]->file, "vms/sub/c.yaml");
		ck_assert_str_eq(set->specs[3]->name, "d");
		ck_assert_int_eq(set->specs[3]->line, 3);
		char *abs = xasprintf("%s/vms/sub/c.yaml", dir);
		ck_assert_str_eq(set->specs[2]->abs_file, abs);
		free(abs);
		char *src = xasprintf("%s/vms", dir);
		ck_assert_str_eq(set->specs[2]->source, src);
		ck_assert_uint_eq(set->sources.n, 1);
		ck_assert_str_eq(set->sources.v[0], src);
		free(src);
		mq_specset_free(set);
		mq_strv_clear(&diags);
	}

	/* a directory without manifests is an empty set */
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	ck_assert_int_eq(load("empty", &set, &diags), 0);
	ck_assert_uint_eq(set->n, 0);
	set = mq_specset_free(set);

	/* a missing path is an error and rejects the set */
	const char *two[] = { "vms", "nope" };
	ck_assert_int_eq(mq_specset_load(two, 2, &set, &diags), -EINVAL);
	ck_assert_ptr_null(set);
	ck_assert_uint_eq(diags.n, 1);
	ck_assert_str_eq(diags.v[0], "nope: no such file or directory");
	mq_strv_clear(&diags);

	/* a file named directly is read whatever its name */
	write_file(dir, "single.conf", "name: single\n");
	ck_assert_int_eq(load("single.conf", &set, &diags), 0);
	ck_assert_uint_eq(set->n, 1);
	ck_assert_str_eq(set->specs[0]->file, "single.conf");
	set = mq_specset_free(set);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_relative_paths)
{
	char *dir = mq_test_tmpdir("specs");
	write_file(dir, "vms/web.yaml",
		   "name: web\nstorage:\n  - {name: root, file: ../disks/root.qcow2, backing_file: base.qcow2}\n"
		   "  - {name: s, type: virtfs, path: ./share, mount_tag: s}\n");
	ck_assert_int_eq(chdir("/"), 0);
	char *arg = xasprintf("%s/vms", dir);
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	int r = load(arg, &set, &diags);
	char *d = joined(&diags);
	ck_assert_msg(r == 0, "%s", d);
	free(d);
	char *want = xasprintf("%s/disks/root.qcow2", dir);
	ck_assert_str_eq(set->specs[0]->storage[0].file, want);
	free(want);
	want = xasprintf("%s/vms/base.qcow2", dir);
	ck_assert_str_eq(set->specs[0]->storage[0].backing_file, want);
	free(want);
	want = xasprintf("%s/vms/share", dir);
	ck_assert_str_eq(set->specs[0]->storage[1].path, want);
	free(want);
	/* canonical paths are absolute (json-c's plain output escapes '/') */
	ck_assert_ptr_nonnull(strstr(set->specs[0]->canonical, "\"path\":\"\\/"));
	ck_assert_ptr_nonnull(strstr(set->specs[0]->canonical, "\\/vms\\/share\""));
	mq_specset_free(set);
	free(arg);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_system_dirs_refused)
{
	char *dir = mq_test_tmpdir("specs");
	char *link = xasprintf("%s/etc-link", dir);
	ck_assert_int_eq(symlink("/etc", link), 0);
	write_file(dir, "web.yaml",
		   "name: web\nstorage:\n  - {name: a, file: etc-link/disk.qcow2}\n  - {name: b, file: /usr/lib/x.img}\n"
		   "  - {name: c, type: virtfs, path: /, mount_tag: root}\n  - {name: d, size: 1G, file: /var/tmp/ok.qcow2}\n");
	ck_assert_int_eq(chdir(dir), 0);
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	ck_assert_int_eq(load("web.yaml", &set, &diags), -EINVAL);
	ck_assert_ptr_null(set);
	char *d = joined(&diags);
	ck_assert_msg(diags.n == 3, "%s", d);
	free(d);
	ck_assert_str_eq(diags.v[0], "web.yaml:3:21: 'etc-link/disk.qcow2' resolves to '/etc/disk.qcow2', inside a "
				     "system directory; put disk images and shares elsewhere");
	ck_assert_str_eq(diags.v[1], "web.yaml:4:21: '/usr/lib/x.img' resolves to '/usr/lib/x.img', inside a system "
				     "directory; put disk images and shares elsewhere");
	ck_assert_str_eq(diags.v[2], "web.yaml:5:35: '/' resolves to '/', inside a system directory; put disk images "
				     "and shares elsewhere");
	mq_strv_clear(&diags);
	free(link);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_big_file)
{
	char *dir = mq_test_tmpdir("specs");
	char *p = xasprintf("%s/big.yaml", dir);
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs("name: big\n", f);
	for (int i = 0; i < MQ_MANIFEST_MAX_BYTES / 16 + 10; i++)
		fputs("# padding......\n", f);
	fclose(f);
	ck_assert_int_eq(chdir(dir), 0);
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	ck_assert_int_eq(load("big.yaml", &set, &diags), -EINVAL);
	ck_assert_ptr_null(set);
	ck_assert_uint_eq(diags.n, 1);
	ck_assert_str_eq(diags.v[0], "big.yaml: manifest is too large (limit 1048576 bytes)");
	mq_strv_clear(&diags);
	free(p);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_errors_from_several_files)
{
	char *dir = mq_test_tmpdir("specs");
	write_file(dir, "vms/b.yaml", "name: b\ncpu: lots\n");
	write_file(dir, "vms/a.yaml", "name: a\nmemory: 4Q\nzzz: 1\n");
	write_file(dir, "vms/c.yaml", "name: [\n");
	ck_assert_int_eq(chdir(dir), 0);
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	ck_assert_int_eq(load("vms/", &set, &diags), -EINVAL);
	ck_assert_ptr_null(set);
	char *d = joined(&diags);
	ck_assert_str_eq(d, "vms/a.yaml:2:9: 'memory' must be a size such as 2048 (MiB) or 4G, got '4Q'\n"
			    "vms/a.yaml:3:1: unknown key 'zzz'\n"
			    "vms/b.yaml:2:6: 'cpu' must be an integer from 1 to 1024, got 'lots'\n"
			    "vms/c.yaml:2:1: invalid yaml: did not find expected node content (while parsing a flow node at line 2)");
	free(d);
	mq_strv_clear(&diags);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_set_checks)
{
	char *dir = mq_test_tmpdir("specs");
	write_file(dir, "vms/a.yaml", "name: a\nnetwork:\n  - forward:\n      - tcp:8080:80\ndepends_on: [b]\n");
	write_file(dir, "vms/b.yaml", "name: b\ndepends_on: [c]\n---\nname: c\ndepends_on: [a, b, db, c]\n");
	write_file(dir, "vms/d.yaml", "name: a\nnetwork: [{forward: [udp:8080:80, tcp:8080:8080]}]\n");
	ck_assert_int_eq(chdir(dir), 0);
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	ck_assert_int_eq(load("vms", &set, &diags), -EINVAL);
	ck_assert_ptr_null(set);
	char *d = joined(&diags);
	ck_assert_str_eq(d, "vms/a.yaml:5:14: dependency cycle: a -> b -> c -> a\n"
			    "vms/b.yaml:2:14: dependency cycle: b -> c -> b\n"
			    "vms/b.yaml:5:20: depends_on: unknown vm 'db'\n"
			    "vms/b.yaml:5:24: vm 'c' depends on itself\n"
			    "vms/d.yaml:1:7: duplicate vm name 'a' (first defined at vms/a.yaml:1:1)\n"
			    "vms/d.yaml:2:35: host port tcp:8080 is already forwarded by vm 'a' (vms/a.yaml:4:9)");
	free(d);
	mq_strv_clear(&diags);

	/* mq_specset_check on a set built by hand from buffers */
	struct mq_specset *s2 = mq_specset_new();
	ck_assert_int_eq(mq_spec_parse_buffer("name: y\ndepends_on: x\n", 22, "y.yaml", dir, dir, s2, &diags), 0);
	ck_assert_int_eq(mq_spec_parse_buffer("name: x\n", 8, "x.yaml", dir, dir, s2, &diags), 0);
	ck_assert_int_eq(mq_specset_check(s2, &diags), 0);
	ck_assert_str_eq(s2->specs[0]->name, "x"); /* sorted by name */
	ck_assert_int_eq(mq_spec_parse_buffer("name: z\ndepends_on: w\n", 22, "z.yaml", dir, dir, s2, &diags), 0);
	ck_assert_int_eq(mq_specset_check(s2, &diags), -EINVAL);
	ck_assert_uint_eq(diags.n, 1);
	ck_assert_str_eq(diags.v[0], "z.yaml:1:1: depends_on: unknown vm 'w'");
	mq_strv_clear(&diags);
	mq_specset_free(s2);
	rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_valid_set_loads)
{
	char *dir = mq_test_tmpdir("specs");
	write_file(dir, "vms/db.yaml", "name: db\nnetwork: [{forward: [tcp:5432:5432]}]\n");
	write_file(dir, "vms/web.yaml", "name: web\ndepends_on: [db]\nnetwork: [{forward: [tcp:8080:80, udp:8080:80]}]\n");
	write_file(dir, "other.yaml", "name: cache\n");
	ck_assert_int_eq(chdir(dir), 0);
	const char *paths[] = { "vms", "other.yaml" };
	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	ck_assert_int_eq(mq_specset_load(paths, 2, &set, &diags), 0);
	ck_assert_uint_eq(diags.n, 0);
	ck_assert_uint_eq(set->n, 3);
	ck_assert_str_eq(set->specs[0]->name, "cache");
	ck_assert_str_eq(set->specs[1]->name, "db");
	ck_assert_str_eq(set->specs[2]->name, "web");
	ck_assert_uint_eq(set->sources.n, 2);
	char *want = xasprintf("%s/other.yaml", dir);
	ck_assert_str_eq(set->sources.v[1], want);
	ck_assert_str_eq(mq_specset_find(set, "cache")->source, want);
	free(want);
	mq_specset_free(set);
	rm_rf(dir);
	free(dir);
}
END_TEST

/* ---- snapshots: ------------------------------------------------------------ */

START_TEST(test_snapshots_parse_and_canonical)
{
	struct parsed p = ok1("name: a\nstorage: [{name: d, size: 1M}]\nsnapshots:\n  named: [golden, v1.0_x]\n"
			      "  schedule: {every: 1h30m, keep: 4, live: false}\n  before_change: {}\n");
	const struct mq_spec *s = p.set->specs[0];
	ck_assert_ptr_nonnull(s->snapshots);
	ck_assert_uint_eq(s->snapshots->named.n, 2);
	ck_assert_str_eq(s->snapshots->named.v[1], "v1.0_x");
	ck_assert_uint_eq(s->snapshots->schedule->every_s, 5400);
	ck_assert_ptr_null(s->snapshots->schedule->cron);
	ck_assert_uint_eq(s->snapshots->schedule->keep, 4);
	ck_assert(!s->snapshots->schedule->live);
	ck_assert(s->snapshots->before_change->enabled);
	ck_assert(s->snapshots->before_change->rollback);
	ck_assert_uint_eq(s->snapshots->before_change->keep, 3);
	const char *tail = strstr(s->canonical, ",\"snapshots\":");
	ck_assert_ptr_nonnull(tail);
	ck_assert_str_eq(tail, ",\"snapshots\":{\"named\":[\"golden\",\"v1.0_x\"],\"schedule\":{\"every\":5400,\"cron\":null,"
			       "\"keep\":4,\"live\":false},\"before_change\":{\"enabled\":true,\"keep\":3,\"rollback\":true}}}");
	/* read back from the record: same canonical form and hash */
	struct mq_spec *back = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_spec_from_canonical(s->canonical, "/tmp/mq-src", &back, &err), 0);
	ck_assert_uint_eq(back->snapshots->schedule->every_s, 5400);
	ck_assert(!back->snapshots->schedule->live);
	ck_assert_uint_eq(back->snapshots->before_change->keep, 3);
	mq_spec_make_canonical(back);
	ck_assert_str_eq(back->canonical, s->canonical);
	mq_spec_free(back);
	parsed_release(&p);

	p = ok1("name: a\nstorage: [{name: d, size: 1M}]\nsnapshots:\n  schedule: {cron: '0 */6 * * 1-5', keep: 1}\n");
	ck_assert_str_eq(p.set->specs[0]->snapshots->schedule->cron, "0 */6 * * 1-5");
	ck_assert(p.set->specs[0]->snapshots->schedule->live);
	ck_assert_ptr_null(p.set->specs[0]->snapshots->before_change);
	parsed_release(&p);
}
END_TEST

START_TEST(test_snapshots_absent_keeps_hash)
{
	/* without the key the canonical form has no "snapshots" member at all,
	 * so hashes recorded before the key existed do not change */
	struct parsed p = ok1("name: a\nstorage: [{name: d, size: 1M}]\n");
	ck_assert_ptr_null(p.set->specs[0]->snapshots);
	ck_assert_ptr_null(strstr(p.set->specs[0]->canonical, "snapshots"));
	struct mq_spec *back = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_spec_from_canonical(p.set->specs[0]->canonical, NULL, &back, &err), 0);
	ck_assert_ptr_null(back->snapshots);
	mq_spec_make_canonical(back);
	ck_assert_str_eq(back->canonical, p.set->specs[0]->canonical);
	mq_spec_free(back);
	parsed_release(&p);
	/* `snapshots: ~` counts as absent too */
	char *h1 = hash_of("name: a\nstorage: [{name: d, size: 1M}]\n");
	char *h2 = hash_of("name: a\nstorage: [{name: d, size: 1M}]\nsnapshots: ~\n");
	ck_assert_str_eq(h1, h2);
	free(h1);
	free(h2);
}
END_TEST

START_TEST(test_snapshots_record_class)
{
	ck_assert_int_eq(mq_spec_field_class("snapshots"), MQ_FIELD_RECORD);
	struct parsed a = ok1("name: a\nstorage: [{name: d, size: 1M}]\n");
	struct parsed b = ok1("name: a\nstorage: [{name: d, size: 1M}]\nsnapshots: {named: [g]}\n");
	struct mq_strv changed = MQ_STRV_INIT;
	ck_assert_int_eq(mq_spec_diff(a.set->specs[0]->canonical, b.set->specs[0]->canonical, &changed), 0);
	ck_assert_uint_eq(changed.n, 1);
	ck_assert_str_eq(changed.v[0], "snapshots");
	mq_strv_clear(&changed);
	parsed_release(&a);
	parsed_release(&b);
}
END_TEST

START_TEST(test_snapshots_errors)
{
	const char *disk = "name: a\nstorage: [{name: d, size: 1M}]\n";
	char *y;
#define SNAP_DIAG(body, expected)          \
	y = xasprintf("%s%s", disk, body); \
	expect_diag(y, expected);          \
	free(y)
	SNAP_DIAG("snapshots: [x]\n", "t.yaml:3:12: 'snapshots' must be a mapping, got a list");
	SNAP_DIAG("snapshots: {nmaed: [x]}\n", "t.yaml:3:13: unknown key 'nmaed' in 'snapshots' (did you mean 'named'?)");
	SNAP_DIAG("snapshots: {schedule: {keep: 2}}\n",
		  "t.yaml:3:23: 'snapshots.schedule' needs 'every' (a duration) or 'cron' (an expression)");
	SNAP_DIAG("snapshots: {schedule: {every: 6h}}\n",
		  "t.yaml:3:23: 'snapshots.schedule' needs 'keep' (how many scheduled snapshots to keep, at least 1)");
	SNAP_DIAG("snapshots: {schedule: {every: 500ms, keep: 1}}\n",
		  "t.yaml:3:31: 'snapshots.schedule.every' must be a whole number of seconds, at least 1s, got '500ms'");
	SNAP_DIAG("snapshots: {schedule: {every: soon, keep: 1}}\n",
		  "t.yaml:3:31: 'snapshots.schedule.every' must be a duration such as 6h, 30m or 90s, got 'soon'");
	SNAP_DIAG("snapshots: {schedule: {cron: '0 0 31 2 *', keep: 1}}\n",
		  "t.yaml:3:30: cron expression '0 0 31 2 *' never matches a date");
	SNAP_DIAG("snapshots: {schedule: {cron: '0 0 * * 8', keep: 1}}\n",
		  "t.yaml:3:30: cannot parse cron expression '0 0 * * 8': day of week out of range 0-7 (use 5 fields such as \"0 */6 * * *\")");
	SNAP_DIAG("snapshots: {schedule: {every: 1h, keep: 1, live: maybe}}\n",
		  "t.yaml:3:50: 'snapshots.schedule.live' must be true or false, got 'maybe'");
	SNAP_DIAG("snapshots: {before_change: {enabled: 2}}\n",
		  "t.yaml:3:38: 'snapshots.before_change.enabled' must be true or false, got '2'");
	SNAP_DIAG("snapshots: {named: {a: b}}\n", "t.yaml:3:20: 'snapshots.named' must be a list of snapshot names, got a mapping");
#undef SNAP_DIAG
	/* no qcow2 disk: no storage at all; a disabled before_change needs none */
	expect_diag("name: a\nsnapshots: {named: [g]}\n",
		    "t.yaml:2:13: named snapshots need a qcow2 disk, but vm 'a' has no storage (raw images and virtfs "
		    "shares have no internal snapshots; add a qcow2 storage entry or remove 'snapshots.named')");
	struct parsed p = ok1("name: a\nsnapshots: {before_change: {enabled: false}}\n");
	parsed_release(&p);
}
END_TEST

START_TEST(test_snapshot_names)
{
	ck_assert(mq_snapshot_name_ok("golden"));
	ck_assert(mq_snapshot_name_ok("A.b_c-9"));
	ck_assert(!mq_snapshot_name_ok(""));
	ck_assert(!mq_snapshot_name_ok(NULL));
	ck_assert(!mq_snapshot_name_ok("a b"));
	ck_assert(!mq_snapshot_name_ok("a/b"));
	char long_name[66];
	memset(long_name, 'x', 65);
	long_name[65] = 0;
	ck_assert(!mq_snapshot_name_ok(long_name));
	long_name[64] = 0;
	ck_assert(mq_snapshot_name_ok(long_name));
	ck_assert_str_eq(mq_snapshot_reserved_prefix("auto-1"), "auto-");
	ck_assert_str_eq(mq_snapshot_reserved_prefix("pre-change-x"), "pre-change-");
	ck_assert_str_eq(mq_snapshot_reserved_prefix("pre-restore-x"), "pre-restore-");
	ck_assert_ptr_null(mq_snapshot_reserved_prefix("automatic"));
	ck_assert_ptr_null(mq_snapshot_reserved_prefix("pre-changes"));
}
END_TEST

/* The set's order comes from the names' sort in the checks (compared by an
 * 8-byte prefix key, then the rest): the same as strcmp order, also for
 * names that share a long prefix or are shorter than 8 bytes; ports are
 * keyed by protocol and port (tcp and udp on one port do not conflict). */
START_TEST(test_set_order_and_port_keys)
{
	static const char *const names[] = { "vm-long-name-b", "vm-long-name-a", "vm", "vm-long-name-a2",
					     "vm-lon", "vm-long-n", "a", "vm-long-name", "zz" };
	struct mq_specset *set = mq_specset_new();
	struct mq_strv diags = MQ_STRV_INIT;
	for (size_t i = 0; i < MQ_ARRAY_SIZE(names); i++) {
		char *y = xasprintf("name: %s\nnetwork:\n  - type: user\n    forward: [\"%s:%zu:22\"]\n", names[i],
				    i % 2 ? "udp" : "tcp", 7000 + i / 2);
		char *f = xasprintf("%s.yaml", names[i]);
		ck_assert_int_eq(mq_spec_parse_buffer(y, strlen(y), f, "/", "/", set, &diags), 0);
		free(y);
		free(f);
	}
	/* pairs (tcp:7000, udp:7000), (tcp:7001, udp:7001), ... never conflict */
	ck_assert_int_eq(mq_specset_check(set, &diags), 0);
	ck_assert_uint_eq(set->n, MQ_ARRAY_SIZE(names));
	for (size_t i = 1; i < set->n; i++)
		ck_assert_int_lt(strcmp(set->specs[i - 1]->name, set->specs[i]->name), 0);
	ck_assert_str_eq(set->specs[0]->name, "a");
	ck_assert_str_eq(set->specs[1]->name, "vm");
	ck_assert_str_eq(set->specs[2]->name, "vm-lon");
	ck_assert_str_eq(set->specs[3]->name, "vm-long-n");
	ck_assert_str_eq(set->specs[4]->name, "vm-long-name");
	ck_assert_str_eq(set->specs[5]->name, "vm-long-name-a");
	ck_assert_str_eq(set->specs[6]->name, "vm-long-name-a2");
	/* the same protocol and port twice: located at the second */
	const char *dup = "name: late\nnetwork:\n  - type: user\n    forward: [\"udp:7000:53\"]\n";
	ck_assert_int_eq(mq_spec_parse_buffer(dup, strlen(dup), "late.yaml", "/", "/", set, &diags), 0);
	ck_assert_int_eq(mq_specset_check(set, &diags), -EINVAL);
	ck_assert_uint_eq(diags.n, 1);
	ck_assert_str_eq(diags.v[0], "late.yaml:1:1: host port udp:7000 is already forwarded by vm 'vm-long-name-a' "
				     "(vm-long-name-a.yaml:1:1)");
	mq_strv_clear(&diags);
	mq_specset_free(set);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("specs");
	TCase *keys = tcase_create("keys");
	tcase_add_test(keys, test_defaults);
	tcase_add_test(keys, test_every_key);
	tcase_add_test(keys, test_single_string_forms);
	tcase_add_test(keys, test_enum_errors);
	tcase_add_test(keys, test_name_regex);
	tcase_add_test(keys, test_cpu);
	tcase_add_test(keys, test_sizes);
	tcase_add_test(keys, test_durations);
	tcase_add_test(keys, test_storage_errors);
	tcase_add_test(keys, test_virtfs_options);
	tcase_add_test(keys, test_network_errors);
	suite_add_tcase(s, keys);

	TCase *args = tcase_create("arguments");
	tcase_add_test(args, test_arguments_forms);
	tcase_add_test(args, test_arguments_errors);
	tcase_add_test(args, test_arguments_display_default);
	tcase_add_test(args, test_args_owned_options);
	tcase_add_test(args, test_host_paths);
	suite_add_tcase(s, args);

	TCase *canon = tcase_create("canonical");
	tcase_add_test(canon, test_hash_stability);
	tcase_add_test(canon, test_canonical_pin);
	tcase_add_test(canon, test_fields_table);
	tcase_add_test(canon, test_fields_roundtrip);
	tcase_add_test(canon, test_diff_and_classes);
	tcase_add_test(canon, test_enum_strings);
	suite_add_tcase(s, canon);

	TCase *input = tcase_create("input");
	/* hostile input must be rejected quickly: the timeout is the bound */
	tcase_set_timeout(input, 20);
	tcase_add_test(input, test_multi_document);
	tcase_add_test(input, test_hostile_input);
	tcase_add_test(input, test_big_file);
	suite_add_tcase(s, input);

	TCase *snaps = tcase_create("snapshots");
	tcase_add_test(snaps, test_snapshots_parse_and_canonical);
	tcase_add_test(snaps, test_snapshots_absent_keeps_hash);
	tcase_add_test(snaps, test_snapshots_record_class);
	tcase_add_test(snaps, test_snapshots_errors);
	tcase_add_test(snaps, test_snapshot_names);
	suite_add_tcase(s, snaps);

	TCase *files = tcase_create("files");
	tcase_add_test(files, test_directory_walk);
	tcase_add_test(files, test_relative_paths);
	tcase_add_test(files, test_system_dirs_refused);
	tcase_add_test(files, test_errors_from_several_files);
	tcase_add_test(files, test_set_checks);
	tcase_add_test(files, test_valid_set_loads);
	tcase_add_test(files, test_set_order_and_port_keys);
	suite_add_tcase(s, files);

	return mq_check_run(s);
}
