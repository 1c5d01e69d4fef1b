/* tmpfiles.h - temp directories and files for the unit tests that read
 * manifest trees (test-specs, test-extends, test-cache). */
#ifndef MQ_TEST_TMPFILES_H
#define MQ_TEST_TMPFILES_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/paths.h"
#include "util/xalloc.h"

/* A new directory /tmp/mq-test-TAG-XXXXXX, as its real path (caller frees). */
static inline char *mq_test_tmpdir(const char *tag)
{
	char *tmpl = xasprintf("/tmp/mq-test-%s-XXXXXX", tag);
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	char *real = realpath(tmpl, NULL);
	ck_assert_ptr_nonnull(real);
	free(tmpl);
	return real;
}

/* dir/rel with content, making rel's directories. */
static inline void write_file(const char *dir, const char *rel, const char *content)
{
	char *p = xasprintf("%s/%s", dir, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	ck_assert_int_eq(mq_mkdir_p(p, 0755, NULL), 0);
	*slash = '/';
	FILE *f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
	free(p);
}

static inline void rm_rf(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}

#endif
