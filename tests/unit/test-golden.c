/* test-golden.c - `maqet validate` golden files: every tests/golden/NAME.yaml
 * is loaded (from inside MQ_GOLDEN_DIR, so messages carry "NAME.yaml") and
 * the joined diags must equal NAME.err exactly (OpenBSD vmd regress style). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "specs/spec.h"
#include "util/fileio.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

static const char *golden_dir;
static struct mq_strv cases = MQ_STRV_INIT; /* "NAME" of every NAME.yaml, sorted */

static void scan_cases(void)
{
	DIR *d = opendir(golden_dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (e->d_name[0] != '.' && n > 5 && strcmp(e->d_name + n - 5, ".yaml") == 0)
			mq_strv_push_take(&cases, xstrndup(e->d_name, n - 5));
	}
	closedir(d);
	mq_strv_sort(&cases);
}

START_TEST(test_enough_cases)
{
	ck_assert_ptr_nonnull(golden_dir);
	ck_assert_uint_ge(cases.n, 10);
}
END_TEST

START_TEST(test_golden_case)
{
	const char *name = cases.v[_i];
	ck_assert_int_eq(chdir(golden_dir), 0);
	char *yaml = xasprintf("%s.yaml", name), *errf = xasprintf("%s.err", name);
	char *expected = NULL;
	struct mq_error *err = NULL;
	if (mq_read_file(errf, 1 << 20, &expected, NULL, &err) < 0)
		ck_abort_msg("%s: missing golden output: %s", name, err->msg);

	struct mq_specset *set = NULL;
	struct mq_strv diags = MQ_STRV_INIT;
	const char *paths[] = { yaml };
	int r = mq_specset_load(paths, 1, &set, &diags);
	char *got = mq_strv_join(&diags, "\n");
	char *got_nl = diags.n ? xasprintf("%s\n", got) : xstrdup("");
	ck_assert_msg(strcmp(got_nl, expected) == 0, "%s: diags differ\n--- expected\n%s--- got\n%s", name, expected,
		      got_nl);
	if (expected[0]) {
		ck_assert_int_eq(r, -EINVAL);
		ck_assert_ptr_null(set);
	} else {
		ck_assert_int_eq(r, 0);
		ck_assert_ptr_nonnull(set);
	}
	mq_specset_free(set);
	mq_strv_clear(&diags);
	free(got);
	free(got_nl);
	free(expected);
	free(yaml);
	free(errf);
}
END_TEST

int main(void)
{
	golden_dir = getenv("MQ_GOLDEN_DIR");
	if (!golden_dir || !*golden_dir) {
		fprintf(stderr, "MQ_GOLDEN_DIR is not set\n");
		return 77;
	}
	scan_cases();
	Suite *s = suite_create("golden");
	TCase *tc = tcase_create("golden");
	tcase_add_test(tc, test_enough_cases);
	if (cases.n)
		tcase_add_loop_test(tc, test_golden_case, 0, (int)cases.n);
	suite_add_tcase(s, tc);
	int rc = mq_check_run(s);
	mq_strv_clear(&cases);
	return rc;
}
