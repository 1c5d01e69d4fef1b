/* Unit tests for reconciler/export: every manifest key of the specs field
 * table has a mapping decision in each engine (and no engine maps a key that
 * is not a manifest key), every key gets report rows for a parsed spec, the
 * YAML writer's quoting, schedule intervals as cron, quantities and labels. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/export.h"
#include "util/strbuf.h"
#include "tests/unit/check-run.h"

static const enum mq_export_engine all[] = { MQ_EXPORT_NOMAD, MQ_EXPORT_INCUS, MQ_EXPORT_KUBEVIRT };

START_TEST(test_every_key_decided)
{
	ck_assert_uint_gt(mq_spec_field_count(), 10);
	ck_assert_ptr_null(mq_spec_field_key(mq_spec_field_count()));
	for (size_t i = 0; i < 3; i++) {
		const char *stale = "x";
		const char *missing = mq_export_missing_key(all[i], &stale);
		ck_assert_msg(!missing, "%s has no export decision for manifest key '%s' (add a row to its table)",
			      mq_export_engine_str(all[i]), missing);
		ck_assert_msg(!stale, "%s maps '%s', which is not a manifest key", mq_export_engine_str(all[i]), stale);
	}
}
END_TEST

static struct mq_specset *parse(const char *yaml)
{
	struct mq_specset *set = mq_specset_new();
	struct mq_strv diags = MQ_STRV_INIT;
	int r = mq_spec_parse_buffer(yaml, strlen(yaml), "t.yaml", "/tmp", "/tmp", set, &diags);
	ck_assert_msg(r == 0, "%s", diags.n ? diags.v[0] : "?");
	mq_strv_clear(&diags);
	return set;
}

START_TEST(test_rows_for_every_key)
{
	struct mq_specset *set = parse("name: a\nmemory: 100M\nstorage:\n  - name: d\n    file: /tmp/d.qcow2\n"
				       "  - name: e\n    file: /tmp/e.qcow2\n");
	for (size_t i = 0; i < 3; i++) {
		struct mq_export_report rep = { 0 };
		json_object *doc = NULL;
		struct mq_error *err = NULL;
		ck_assert_int_eq(mq_export_vm(all[i], set->specs[0], "/var/disks", &doc, &rep, &err), 0);
		ck_assert_ptr_nonnull(doc);
		for (size_t k = 0; k < mq_spec_field_count(); k++) {
			size_t n = 0;
			for (size_t r = 0; r < rep.n; r++)
				n += strcmp(rep.v[r].key, mq_spec_field_key(k)) == 0;
			ck_assert_msg(n >= 1, "%s: no report row for '%s'", mq_export_engine_str(all[i]),
				      mq_spec_field_key(k));
		}
		/* two disks: one row each */
		size_t disks = 0;
		for (size_t r = 0; r < rep.n; r++)
			disks += strcmp(rep.v[r].key, "storage") == 0 && rep.v[r].item;
		ck_assert_uint_eq(disks, 2);
		char *text = mq_export_render(all[i], doc);
		ck_assert_ptr_nonnull(strstr(text, "/tmp/d.qcow2") ? text : strstr(text, "a-d"));
		free(text);
		json_object_put(doc);
		mq_export_report_release(&rep);
	}
	mq_specset_free(set);
}
END_TEST

static char *yaml_of(json_object *o)
{
	struct mq_strbuf sb;
	mq_strbuf_init(&sb);
	mq_export_yaml(&sb, o);
	json_object_put(o);
	return mq_strbuf_detach(&sb);
}

START_TEST(test_yaml_writer)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "plain.key", json_object_new_string("yes"));
	json_object_object_add(o, "on", json_object_new_string("a: b # c\n'd\" \\ \t"));
	json_object_object_add(o, "1x", json_object_new_int(3));
	json_object_object_add(o, "empty", json_object_new_object());
	json_object *a = json_object_new_array();
	json_object *item = json_object_new_object();
	json_object_object_add(item, "name", json_object_new_string("d"));
	json_object *inner = json_object_new_object();
	json_object_object_add(inner, "bus", json_object_new_string("virtio"));
	json_object_object_add(item, "disk", inner);
	json_object_array_add(a, item);
	json_object_array_add(a, json_object_new_boolean(1));
	json_object_object_add(o, "list", a);
	json_object_object_add(o, "nothing", json_object_new_array());
	char *y = yaml_of(o);
	ck_assert_str_eq(y, "plain.key: \"yes\"\n"
			    "\"on\": \"a: b # c\\n'd\\\" \\\\ \\t\"\n"
			    "\"1x\": 3\n"
			    "empty: {}\n"
			    "list:\n"
			    "  - name: \"d\"\n"
			    "    disk:\n"
			    "      bus: \"virtio\"\n"
			    "  - true\n"
			    "nothing: []\n");
	free(y);
}
END_TEST

static void want_cron(uint64_t s, const char *cron, bool exact)
{
	bool ex = !exact;
	char *c = mq_export_every_cron(s, &ex);
	ck_assert_msg(strcmp(c, cron) == 0 && ex == exact, "%llu s: got '%s' (%s), want '%s' (%s)",
		      (unsigned long long)s, c, ex ? "exact" : "approximate", cron, exact ? "exact" : "approximate");
	free(c);
}

START_TEST(test_every_cron)
{
	want_cron(60, "* * * * *", true);
	want_cron(15 * 60, "*/15 * * * *", true);
	want_cron(7 * 60, "*/10 * * * *", false);   /* 7 does not divide an hour: the next divisor */
	want_cron(90, "*/2 * * * *", false);
	want_cron(3600, "0 * * * *", true);
	want_cron(6 * 3600, "0 */6 * * *", true);
	want_cron(5 * 3600, "0 */6 * * *", false);
	want_cron(90 * 60, "0 */2 * * *", false);
	want_cron(86400, "0 0 * * *", true);
	want_cron(2 * 86400, "0 0 */2 * *", false); /* day-of-month steps restart each month */
	want_cron(30, "* * * * *", false);
}
END_TEST

START_TEST(test_quantity_and_labels)
{
	char *q;
	ck_assert_str_eq(q = mq_export_quantity(128ull << 20, false), "128Mi");
	free(q);
	ck_assert_str_eq(q = mq_export_quantity(2ull << 30, true), "2GiB");
	free(q);
	ck_assert_str_eq(q = mq_export_quantity(1536ull << 10, false), "1536Ki");
	free(q);
	ck_assert_str_eq(q = mq_export_quantity(1000, true), "1KiB");
	free(q);
	ck_assert_str_eq(q = mq_export_dns_label("Web_VM", "Root.Disk"), "web-vm-root-disk");
	free(q);
}
END_TEST

START_TEST(test_engine_names)
{
	enum mq_export_engine e;
	ck_assert_int_eq(mq_export_engine_from_str("kubevirt", &e), 0);
	ck_assert_int_eq(e, MQ_EXPORT_KUBEVIRT);
	ck_assert_int_lt(mq_export_engine_from_str("docker", &e), 0);
	ck_assert_str_eq(mq_export_suffix(MQ_EXPORT_NOMAD), ".nomad.json");
	ck_assert(!mq_export_is_yaml(MQ_EXPORT_NOMAD));
	ck_assert(mq_export_is_yaml(MQ_EXPORT_INCUS));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("export");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_every_key_decided);
	tcase_add_test(tc, test_rows_for_every_key);
	tcase_add_test(tc, test_yaml_writer);
	tcase_add_test(tc, test_every_cron);
	tcase_add_test(tc, test_quantity_and_labels);
	tcase_add_test(tc, test_engine_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
