/* Unit tests for reconciler/qmptier: the tier of each command named in the
 * issue, object-add by its arguments, output arguments of memory-dump
 * commands, and redaction of secret-looking argument values. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/qmptier.h"
#include "tests/unit/check-run.h"

START_TEST(test_tiers_of_named_commands)
{
	static const struct {
		const char *cmd;
		enum mq_qmp_tier t;
	} rows[] = {
		{ "human-monitor-command", MQ_QMP_TIER_DANGEROUS }, { "inject-nmi", MQ_QMP_TIER_DANGEROUS },
		{ "migrate", MQ_QMP_TIER_DANGEROUS },              { "blockdev-add", MQ_QMP_TIER_DANGEROUS },
		{ "x-debug-query-block-graph", MQ_QMP_TIER_DANGEROUS }, { "snapshot-load", MQ_QMP_TIER_DANGEROUS },
		{ "system_powerdown", MQ_QMP_TIER_PRIVILEGED },   { "system_reset", MQ_QMP_TIER_PRIVILEGED },
		{ "quit", MQ_QMP_TIER_PRIVILEGED },               { "stop", MQ_QMP_TIER_PRIVILEGED },
		{ "cont", MQ_QMP_TIER_PRIVILEGED },               { "device_del", MQ_QMP_TIER_PRIVILEGED },
		{ "blockdev-del", MQ_QMP_TIER_PRIVILEGED },       { "pmemsave", MQ_QMP_TIER_MEMORY_DUMP },
		{ "memsave", MQ_QMP_TIER_MEMORY_DUMP },           { "dump-guest-memory", MQ_QMP_TIER_MEMORY_DUMP },
		{ "screendump", MQ_QMP_TIER_MEMORY_DUMP },        { "query-status", MQ_QMP_TIER_ALLOWED },
		{ "query-commands", MQ_QMP_TIER_ALLOWED },        { "send-key", MQ_QMP_TIER_ALLOWED },
		{ "no-such-command", MQ_QMP_TIER_ALLOWED },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		ck_assert_msg(mq_qmp_tier_of(rows[i].cmd, NULL) == rows[i].t, "%s: got %s want %s", rows[i].cmd,
			      mq_qmp_tier_name(mq_qmp_tier_of(rows[i].cmd, NULL)), mq_qmp_tier_name(rows[i].t));
	ck_assert_int_eq(mq_qmp_tier_of(NULL, NULL), MQ_QMP_TIER_DANGEROUS);
}
END_TEST

START_TEST(test_tier_names)
{
	ck_assert_str_eq(mq_qmp_tier_name(MQ_QMP_TIER_ALLOWED), "allowed");
	ck_assert_str_eq(mq_qmp_tier_name(MQ_QMP_TIER_PRIVILEGED), "privileged");
	ck_assert_str_eq(mq_qmp_tier_name(MQ_QMP_TIER_MEMORY_DUMP), "memory-dump");
	ck_assert_str_eq(mq_qmp_tier_name(MQ_QMP_TIER_DANGEROUS), "dangerous");
}
END_TEST

START_TEST(test_object_add_by_backend)
{
	json_object *file = json_tokener_parse("{\"qom-type\":\"memory-backend-file\",\"id\":\"m\",\"mem-path\":\"/x\"}");
	json_object *ram = json_tokener_parse("{\"qom-type\":\"memory-backend-ram\",\"id\":\"m\",\"size\":1048576}");
	json_object *path = json_tokener_parse("{\"qom-type\":\"rng-random\",\"id\":\"r\",\"filename\":\"/dev/urandom\"}");
	ck_assert_int_eq(mq_qmp_tier_of("object-add", file), MQ_QMP_TIER_DANGEROUS);
	ck_assert_int_eq(mq_qmp_tier_of("object-add", ram), MQ_QMP_TIER_PRIVILEGED);
	ck_assert_int_eq(mq_qmp_tier_of("object-add", path), MQ_QMP_TIER_DANGEROUS);
	ck_assert_int_eq(mq_qmp_tier_of("object-add", NULL), MQ_QMP_TIER_PRIVILEGED);
	json_object_put(file);
	json_object_put(ram);
	json_object_put(path);
}
END_TEST

START_TEST(test_output_args)
{
	ck_assert_str_eq(mq_qmp_output_arg("pmemsave"), "filename");
	ck_assert_str_eq(mq_qmp_output_arg("screendump"), "filename");
	ck_assert_str_eq(mq_qmp_output_arg("dump-guest-memory"), "protocol");
	ck_assert_ptr_null(mq_qmp_output_arg("query-status"));
	ck_assert_str_eq(mq_qmp_output_path("dump-guest-memory", "file:/tmp/x"), "/tmp/x");
	ck_assert_ptr_null(mq_qmp_output_path("dump-guest-memory", "fd:dump"));
	ck_assert_str_eq(mq_qmp_output_path("memsave", "out.bin"), "out.bin");
}
END_TEST

START_TEST(test_redaction)
{
	ck_assert(mq_qmp_key_is_secret("password"));
	ck_assert(mq_qmp_key_is_secret("new-Password"));
	ck_assert(mq_qmp_key_is_secret("key-secret"));
	ck_assert(mq_qmp_key_is_secret("passphrase"));
	ck_assert(!mq_qmp_key_is_secret("keys"));
	ck_assert(!mq_qmp_key_is_secret("filename"));
	json_object *a = json_tokener_parse(
		"{\"protocol\":\"vnc\",\"password\":\"hunter2\",\"opts\":{\"secret\":\"s3\",\"list\":[{\"token\":\"t\",\"n\":1}]}}");
	char *s = mq_qmp_args_redacted(a);
	ck_assert_ptr_null(strstr(s, "hunter2"));
	ck_assert_ptr_null(strstr(s, "s3"));
	ck_assert_ptr_null(strstr(s, "\"t\""));
	ck_assert_ptr_nonnull(strstr(s, "\"password\":\"<redacted>\""));
	ck_assert_ptr_nonnull(strstr(s, "\"protocol\":\"vnc\""));
	ck_assert_ptr_nonnull(strstr(s, "\"n\":1"));
	/* the original is untouched */
	json_object *pw = NULL;
	ck_assert(json_object_object_get_ex(a, "password", &pw));
	ck_assert_str_eq(json_object_get_string(pw), "hunter2");
	free(s);
	json_object_put(a);
	s = mq_qmp_args_redacted(NULL);
	ck_assert_str_eq(s, "{}");
	free(s);
}
END_TEST

START_TEST(test_stop_commands)
{
	ck_assert(mq_qmp_is_stop("quit"));
	ck_assert(mq_qmp_is_stop("system_powerdown"));
	ck_assert(!mq_qmp_is_stop("system_reset"));
	ck_assert(!mq_qmp_is_stop(NULL));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("qmptier");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_tiers_of_named_commands);
	tcase_add_test(tc, test_tier_names);
	tcase_add_test(tc, test_object_add_by_backend);
	tcase_add_test(tc, test_output_args);
	tcase_add_test(tc, test_redaction);
	tcase_add_test(tc, test_stop_commands);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
