/* check-run.h - the one way every unit test binary runs its suite. */
#ifndef MQ_CHECK_RUN_H
#define MQ_CHECK_RUN_H

#include <check.h>
#include <stdlib.h>

/* Run every test of s (each in its own process unless CK_FORK=no is set,
 * e.g. to debug one under gdb); EXIT_SUCCESS when none failed. */
static inline int mq_check_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
