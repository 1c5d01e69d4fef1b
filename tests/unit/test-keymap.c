/* Unit tests for reconciler/keymap: key specs with combos and aliases,
 * unknown names (with did-you-mean), text with shift and escapes, characters
 * without a key rejected before anything, and the send-key arguments. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/keymap.h"
#include "tests/unit/check-run.h"

static void want_combo(const char *spec, const char *const *keys, size_t n)
{
	struct mq_keycombo c;
	struct mq_error *err = NULL;
	ck_assert_msg(mq_key_parse_combo(spec, &c, &err) == 0, "%s: %s", spec, err ? err->msg : "?");
	ck_assert_uint_eq(c.n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(c.keys[i], keys[i]);
}

START_TEST(test_combos)
{
	want_combo("ctrl-alt-delete", (const char *const[]){ "ctrl", "alt", "delete" }, 3);
	want_combo("ctrl-alt-f2", (const char *const[]){ "ctrl", "alt", "f2" }, 3);
	want_combo("ret", (const char *const[]){ "ret" }, 1);
	want_combo("Enter", (const char *const[]){ "ret" }, 1);
	want_combo("ctrl-alt-del", (const char *const[]){ "ctrl", "alt", "delete" }, 3);
	want_combo("shift-a", (const char *const[]){ "shift", "a" }, 2);
	want_combo("kp_enter", (const char *const[]){ "kp_enter" }, 1);
	want_combo("super-space", (const char *const[]){ "meta_l", "spc" }, 2);
}
END_TEST

START_TEST(test_bad_combos)
{
	struct mq_keycombo c = { .n = 42 };
	struct mq_error *err = NULL;
	ck_assert_int_lt(mq_key_parse_combo("ctrl-alt-dlete", &c, &err), 0);
	ck_assert_str_eq(err->msg, "unknown key 'dlete' in 'ctrl-alt-dlete' (did you mean 'delete'?)");
	mq_error_free(err);
	err = NULL;
	ck_assert_int_lt(mq_key_parse_combo("ctrl--a", &c, &err), 0);
	ck_assert_str_eq(err->msg, "empty key name in 'ctrl--a'");
	mq_error_free(err);
	err = NULL;
	ck_assert_int_lt(mq_key_parse_combo("zzzzzzzz", &c, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->msg, "unknown key 'zzzzzzzz'"));
	mq_error_free(err);
	err = NULL;
	ck_assert_int_lt(mq_key_parse_combo("a-b-c-d-e-f-g-h-i", &c, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->msg, "too many keys"));
	mq_error_free(err);
	err = NULL;
	ck_assert_int_lt(mq_key_parse_combo("", &c, &err), 0);
	mq_error_free(err);
	ck_assert_uint_eq(c.n, 42); /* untouched on failure */
}
END_TEST

START_TEST(test_text)
{
	struct mq_keycombo *v = NULL;
	size_t n = 0;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_key_text("Hi!\\n a_\\\\\n", &v, &n, &err), 0);
	ck_assert_uint_eq(n, 9);
	/* H */
	ck_assert_uint_eq(v[0].n, 2);
	ck_assert_str_eq(v[0].keys[0], "shift");
	ck_assert_str_eq(v[0].keys[1], "h");
	ck_assert_uint_eq(v[1].n, 1);
	ck_assert_str_eq(v[1].keys[0], "i");
	ck_assert_str_eq(v[2].keys[0], "shift"); /* ! */
	ck_assert_str_eq(v[2].keys[1], "1");
	ck_assert_str_eq(v[3].keys[0], "ret");   /* \n escape */
	ck_assert_str_eq(v[4].keys[0], "spc");
	ck_assert_str_eq(v[5].keys[0], "a");
	ck_assert_str_eq(v[6].keys[0], "shift"); /* _ */
	ck_assert_str_eq(v[6].keys[1], "minus");
	ck_assert_uint_eq(v[7].n, 1);            /* \\ escape */
	ck_assert_str_eq(v[7].keys[0], "backslash");
	ck_assert_str_eq(v[8].keys[0], "ret");   /* real newline */
	free(v);
}
END_TEST

START_TEST(test_text_unmapped)
{
	struct mq_keycombo *v = (void *)1;
	size_t n = 7;
	struct mq_error *err = NULL;
	ck_assert_int_lt(mq_key_text("ab\xc3\xa9z", &v, &n, &err), 0);
	ck_assert_str_eq(err->msg, "no key for character '\xc3\xa9' (U+00E9) at offset 2; nothing was typed");
	ck_assert_ptr_eq(v, (void *)1);
	ck_assert_uint_eq(n, 7);
	mq_error_free(err);
	err = NULL;
	ck_assert_int_lt(mq_key_text("a\x01", &v, &n, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->msg, "control character U+0001"));
	mq_error_free(err);
}
END_TEST

START_TEST(test_send_args)
{
	struct mq_keycombo c;
	ck_assert_int_eq(mq_key_parse_combo("ctrl-alt-delete", &c, NULL), 0);
	json_object *a = mq_key_send_args(&c, 50);
	ck_assert_str_eq(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN),
			 "{\"keys\":[{\"type\":\"qcode\",\"data\":\"ctrl\"},{\"type\":\"qcode\",\"data\":\"alt\"},"
			 "{\"type\":\"qcode\",\"data\":\"delete\"}],\"hold-time\":50}");
	json_object_put(a);
	a = mq_key_send_args(&c, 0);
	ck_assert(!json_object_object_get_ex(a, "hold-time", NULL));
	json_object_put(a);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("keymap");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_combos);
	tcase_add_test(tc, test_bad_combos);
	tcase_add_test(tc, test_text);
	tcase_add_test(tc, test_text_unmapped);
	tcase_add_test(tc, test_send_args);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(suite());
}
