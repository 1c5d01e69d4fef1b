/* Unit tests for util/: strict parsers, sizes, durations, strbuf, strv,
 * sha256, path resolution and the system-directory guard. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/arena.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/parse.h"
#include "util/paths.h"
#include "util/sha256.h"
#include "util/strbuf.h"
#include "util/strmap.h"
#include "util/strv.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

START_TEST(test_parse_u64)
{
	uint64_t v = 7;
	ck_assert_int_eq(mq_parse_u64("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(mq_parse_u64("18446744073709551615", &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	v = 7;
	ck_assert_int_eq(mq_parse_u64("18446744073709551616", &v), -ERANGE);
	ck_assert_int_eq(mq_parse_u64("", &v), -EINVAL);
	ck_assert_int_eq(mq_parse_u64(" 1", &v), -EINVAL);
	ck_assert_int_eq(mq_parse_u64("1 ", &v), -EINVAL);
	ck_assert_int_eq(mq_parse_u64("-1", &v), -EINVAL);
	ck_assert_int_eq(mq_parse_u64("+1", &v), -EINVAL);
	ck_assert_int_eq(mq_parse_u64("12a", &v), -EINVAL);
	ck_assert_uint_eq(v, 7); /* untouched on failure */
	unsigned u;
	ck_assert_int_eq(mq_parse_uint("64", 1, 64, &u), 0);
	ck_assert_uint_eq(u, 64);
	ck_assert_int_eq(mq_parse_uint("65", 1, 64, &u), -ERANGE);
	ck_assert_int_eq(mq_parse_uint("0", 1, 64, &u), -ERANGE);
	int i;
	ck_assert_int_eq(mq_parse_int("-5", -10, 10, &i), 0);
	ck_assert_int_eq(i, -5);
	ck_assert_int_eq(mq_parse_int("-11", -10, 10, &i), -ERANGE);
}
END_TEST

START_TEST(test_parse_size)
{
	static const struct {
		const char *in;
		uint64_t bare;
		int rc;
		uint64_t out;
	} cases[] = {
		{ "512", 1, 0, 512 },
		{ "512", 1ULL << 20, 0, 512ULL << 20 },
		{ "64K", 1, 0, 64ULL << 10 },
		{ "128M", 1, 0, 128ULL << 20 },
		{ "2G", 1, 0, 2ULL << 30 },
		{ "2g", 1, 0, 2ULL << 30 },
		{ "1T", 1, 0, 1ULL << 40 },
		{ "2GB", 1, 0, 2ULL << 30 },
		{ "2GiB", 1, 0, 2ULL << 30 },
		{ "100B", 1ULL << 20, 0, 100 },
		{ "2X", 1, -EINVAL, 0 },
		{ "G", 1, -EINVAL, 0 },
		{ "", 1, -EINVAL, 0 },
		{ "1.5G", 1, -EINVAL, 0 },
		{ "-1G", 1, -EINVAL, 0 },
		{ "2Gx", 1, -EINVAL, 0 },
		{ "99999999999T", 1, -ERANGE, 0 },
	};
	for (size_t k = 0; k < MQ_ARRAY_SIZE(cases); k++) {
		uint64_t v = 0;
		int rc = mq_parse_size(cases[k].in, cases[k].bare, &v);
		ck_assert_msg(rc == cases[k].rc, "size '%s': rc %d, want %d", cases[k].in, rc, cases[k].rc);
		if (rc == 0)
			ck_assert_msg(v == cases[k].out, "size '%s': %llu", cases[k].in, (unsigned long long)v);
	}
	char buf[32];
	mq_format_size(512ULL << 20, buf, sizeof(buf));
	ck_assert_str_eq(buf, "512M");
	mq_format_size(3ULL << 30, buf, sizeof(buf));
	ck_assert_str_eq(buf, "3G");
	mq_format_size(1000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1000");
}
END_TEST

START_TEST(test_parse_duration)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t ms;
	} cases[] = {
		{ "30", 0, 30000 },   { "30s", 0, 30000 }, { "500ms", 0, 500 }, { "2m", 0, 120000 },
		{ "1h", 0, 3600000 }, { "1m30s", 0, 90000 }, { "", -EINVAL, 0 }, { "s", -EINVAL, 0 },
		{ "5x", -EINVAL, 0 }, { "1m30", -EINVAL, 0 }, { "-3s", -EINVAL, 0 },
	};
	for (size_t k = 0; k < MQ_ARRAY_SIZE(cases); k++) {
		uint64_t v = 0;
		int rc = mq_parse_duration(cases[k].in, &v);
		ck_assert_msg(rc == cases[k].rc, "duration '%s': rc %d", cases[k].in, rc);
		if (rc == 0)
			ck_assert_uint_eq(v, cases[k].ms);
	}
}
END_TEST

START_TEST(test_strbuf_strv)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	ck_assert_str_eq(sb.buf, "");
	for (int i = 0; i < 1000; i++)
		mq_strbuf_addf(&sb, "%d,", i);
	ck_assert_uint_eq(sb.len, strlen(sb.buf));
	ck_assert(strncmp(sb.buf, "0,1,2,", 6) == 0);
	mq_strbuf_setlen(&sb, 2);
	ck_assert_str_eq(sb.buf, "0,");
	char *d = mq_strbuf_detach(&sb);
	ck_assert_str_eq(d, "0,");
	ck_assert_uint_eq(sb.len, 0);
	free(d);

	struct mq_strv sv = MQ_STRV_INIT;
	mq_strv_push(&sv, "b");
	mq_strv_pushf(&sv, "%s", "a");
	mq_strv_push(&sv, "c");
	ck_assert_ptr_null(sv.v[sv.n]);
	ck_assert(mq_strv_contains(&sv, "a"));
	ck_assert(!mq_strv_contains(&sv, "z"));
	mq_strv_sort(&sv);
	char *j = mq_strv_join(&sv, ", ");
	ck_assert_str_eq(j, "a, b, c");
	free(j);
	mq_strv_clear(&sv);
	ck_assert_uint_eq(sv.n, 0);
}
END_TEST

START_TEST(test_sha256)
{
	char hex[65];
	mq_sha256_hex("", 0, hex);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	mq_sha256_hex("abc", 3, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	mq_sha256_hex(two, strlen(two), hex);
	ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(test_paths)
{
	char *j = mq_path_join("a/", "b");
	ck_assert_str_eq(j, "a/b");
	free(j);
	j = mq_path_join("a", "/abs");
	ck_assert_str_eq(j, "/abs");
	free(j);
	j = mq_path_dirname("/x/y/z.yaml");
	ck_assert_str_eq(j, "/x/y");
	free(j);

	char tmpl[] = "/tmp/mq-util-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	char *real = realpath(tmpl, NULL);
	char *p = xasprintf("%s/a/../b/./c.img", tmpl);
	char *r = mq_path_resolve(p);
	char *want = xasprintf("%s/b/c.img", real);
	ck_assert_str_eq(r, want);
	free(p);
	free(r);
	free(want);
	/* a symlink into /etc resolves into /etc */
	char *link = xasprintf("%s/etc-link", tmpl);
	ck_assert_int_eq(symlink("/etc", link), 0);
	char *through = xasprintf("%s/disk.qcow2", link);
	r = mq_path_resolve(through);
	ck_assert_str_eq(r, "/etc/disk.qcow2");
	ck_assert(mq_path_is_system(r));
	free(r);
	free(through);
	unlink(link);
	free(link);

	static const char *const sys[] = { "/", "/etc", "/etc/x", "/usr/lib/x", "/bin/sh", "/sbin", "/lib",
					   "/lib64/x", "/boot/vmlinuz", "/proc/1", "/sys/x", "/dev/sda",
					   "/root/disk", "/var/lib/x", "/var" };
	for (size_t k = 0; k < MQ_ARRAY_SIZE(sys); k++)
		ck_assert_msg(mq_path_is_system(sys[k]), "%s should be refused", sys[k]);
	static const char *const ok[] = { "/tmp/x", "/var/tmp/x", "/home/u/vm.qcow2", "/srv/vms", "/opt/x",
					  "/etcetera/x", "/variable" };
	for (size_t k = 0; k < MQ_ARRAY_SIZE(ok); k++)
		ck_assert_msg(!mq_path_is_system(ok[k]), "%s should be allowed", ok[k]);

	struct mq_error *err = NULL;
	char *deep = xasprintf("%s/d1/d2/d3", tmpl);
	ck_assert_int_eq(mq_mkdir_p(deep, 0700, &err), 0);
	struct stat st;
	ck_assert_int_eq(stat(deep, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	free(deep);
	free(real);
	char *cmd = xasprintf("rm -rf '%s'", tmpl);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}
END_TEST

/* "" and "/" through every path helper: nothing may read before or past the
 * terminator (run under ASan), and each gives a defined answer. */
START_TEST(test_paths_empty_and_root)
{
	/* mq_mkdir_p("") used to start scanning at path + 1, past the terminator. */
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_mkdir_p("", 0700, &err), -ENOENT);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err->msg, "cannot create directory ''") == err->msg, "message: %s", err->msg);
	err = mq_error_free(err);
	ck_assert_int_eq(mq_mkdir_p("/", 0700, &err), 0);
	ck_assert_ptr_null(err);

	static const struct {
		const char *a, *b, *want;
	} joins[] = {
		{ "", "", "" }, { "", "/", "/" }, { "/", "", "/" }, { "/", "/", "/" },
		{ "", "x", "x" }, { "/", "x", "/x" }, { "x", "", "x/" }, { NULL, "", "" },
	};
	for (size_t k = 0; k < MQ_ARRAY_SIZE(joins); k++) {
		char *j = mq_path_join(joins[k].a, joins[k].b);
		ck_assert_msg(strcmp(j, joins[k].want) == 0, "join('%s', '%s') = '%s', want '%s'",
			      joins[k].a ? joins[k].a : "(null)", joins[k].b, j, joins[k].want);
		free(j);
	}

	char *d = mq_path_dirname("");
	ck_assert_str_eq(d, ".");
	free(d);
	d = mq_path_dirname("/");
	ck_assert_str_eq(d, "/");
	free(d);

	char *r = mq_path_resolve("");
	ck_assert_str_eq(r, "/");
	free(r);
	r = mq_path_resolve("/");
	ck_assert_str_eq(r, "/");
	free(r);

	ck_assert(mq_path_is_system("/"));
	ck_assert_msg(mq_path_is_system(""), "an empty path is not a resolved path and must be refused");
	ck_assert_msg(mq_path_is_system("tmp/x"), "a relative path is not a resolved path and must be refused");

	unsetenv("MAQET_RUNTIME_DIR");
	unsetenv("XDG_RUNTIME_DIR");
	char *rt_empty = mq_runtime_dir_for("");
	char *rt_root = mq_runtime_dir_for("/");
	ck_assert_msg(strncmp(rt_empty, "/tmp/maqet-", 11) == 0, "runtime dir for '': %s", rt_empty);
	ck_assert_msg(strncmp(rt_root, "/tmp/maqet-", 11) == 0, "runtime dir for '/': %s", rt_root);
	ck_assert_str_ne(rt_empty, rt_root);
	free(rt_empty);
	free(rt_root);
}
END_TEST

START_TEST(test_runtime_dir_short)
{
	unsetenv("MAQET_RUNTIME_DIR");
	unsetenv("XDG_RUNTIME_DIR");
	char longdir[300];
	memset(longdir, 'x', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	char *rt = mq_runtime_dir_for(longdir);
	/* <rt>/<63-char name>.serial.log must stay well under the 107-byte socket limit for .qmp */
	ck_assert_uint_lt(strlen(rt) + 1 + 63 + 4, 107);
	char *rt2 = mq_runtime_dir_for("/other/state");
	ck_assert_str_ne(rt, rt2);
	free(rt);
	free(rt2);
}
END_TEST

START_TEST(test_fileio)
{
	char tmpl[] = "/tmp/mq-fio-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	char *f = xasprintf("%s/f", tmpl);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_write_file_atomic(f, "one\ntwo\nthree\n", 14, 0600, &err), 0);
	char *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(mq_read_file(f, 100, &buf, &len, &err), 0);
	ck_assert_uint_eq(len, 14);
	free(buf);
	ck_assert_int_eq(mq_read_file(f, 10, &buf, &len, &err), -EFBIG);
	ck_assert_ptr_nonnull(strstr(err->msg, "too large"));
	err = mq_error_free(err);
	char *t = mq_file_tail(f, 1, 4096);
	ck_assert_str_eq(t, "three");
	free(t);
	t = mq_file_tail(f, 2, 4096);
	ck_assert_str_eq(t, "two\nthree");
	free(t);
	unlink(f);
	rmdir(tmpl);
	free(f);
}
END_TEST

START_TEST(test_strmap_add)
{
	struct mq_strmap m = MQ_STRMAP_INIT;
	char keys[200][8];
	int vals[200];
	for (int i = 0; i < 200; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		ck_assert(mq_strmap_add(&m, keys[i], &vals[i])); /* grows past 16 slots */
	}
	char again[8] = "k17";
	int other = 0;
	ck_assert(!mq_strmap_add(&m, again, &other)); /* present: unchanged */
	ck_assert_ptr_eq(mq_strmap_get(&m, "k17"), &vals[17]);
	ck_assert_uint_eq(m.n, 200);
	for (int i = 0; i < 200; i++)
		ck_assert_ptr_eq(mq_strmap_get(&m, keys[i]), &vals[i]);
	ck_assert(!mq_strmap_has(&m, "k200"));
	mq_strmap_release(&m);
}
END_TEST

START_TEST(test_arena)
{
	size_t live = mq_arena_live();
	struct mq_arena *a = mq_arena_new(100);
	ck_assert_uint_eq(mq_arena_live(), live + 1);
	ck_assert_uint_ge(mq_arena_room(a), 100);
	unsigned char *p = mq_arena_alloc(a, 10, 1);
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(p[i], 0); /* zeroed */
	memset(p, 0xab, 10);
	double *d = mq_arena_alloc(a, sizeof(double), _Alignof(double));
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq((uintptr_t)d % _Alignof(double), 0);
	ck_assert_ptr_null(mq_arena_alloc(a, mq_arena_room(a) + 1, 1)); /* does not fit: no reference */
	unsigned char *rest = mq_arena_alloc(a, mq_arena_room(a), 1);
	ck_assert_ptr_nonnull(rest);
	ck_assert_uint_eq(mq_arena_room(a), 0);
	ck_assert_ptr_null(mq_arena_alloc(a, 1, 1));
	/* the creator's reference goes first: the objects keep it alive */
	ck_assert_ptr_null(mq_arena_unref(a));
	ck_assert_uint_eq(mq_arena_live(), live + 1);
	ck_assert_uint_eq(p[9], 0xab);
	mq_arena_unref(a); /* p */
	mq_arena_unref(a); /* d */
	ck_assert_uint_eq(mq_arena_live(), live + 1);
	mq_arena_unref(a); /* rest: the last one */
	ck_assert_uint_eq(mq_arena_live(), live);
	ck_assert_ptr_null(mq_arena_unref(NULL));

	/* a large arena (aligned huge-page units): zeroed and writable to its end */
	a = mq_arena_new(MQ_ARENA_HUGE_MIN + 12345);
	ck_assert_uint_eq(mq_arena_live(), live + 1);
	size_t room = mq_arena_room(a);
	ck_assert_uint_ge(room, MQ_ARENA_HUGE_MIN + 12345);
	unsigned char *big = mq_arena_alloc(a, room, 1);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < room; i += 4096) {
		ck_assert_uint_eq(big[i], 0);
		big[i] = 1;
	}
	ck_assert_uint_eq(big[room - 1], 0);
	big[room - 1] = 1;
	mq_arena_unref(a);
	ck_assert_uint_eq(mq_arena_live(), live + 1);
	mq_arena_unref(a);
	ck_assert_uint_eq(mq_arena_live(), live);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_parse_u64);
	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_strbuf_strv);
	tcase_add_test(tc, test_sha256);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_paths_empty_and_root);
	tcase_add_test(tc, test_runtime_dir_short);
	tcase_add_test(tc, test_fileio);
	tcase_add_test(tc, test_strmap_add);
	tcase_add_test(tc, test_arena);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
