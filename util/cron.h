/* cron.h - a small, pure 5-field cron expression parser and next-match
 * finder (UTC), used by `snapshots: schedule: cron:` (specs/ validates with
 * it, reconciler/schedule.c computes due times with it).
 *
 * Syntax: "MIN HOUR DOM MONTH DOW", fields separated by blanks.  Each field
 * is a comma list of items; an item is `*`, `N`, `A-B`, optionally followed
 * by `/STEP` (`*\/15`, `0-30/10`, `5/20` = 5-max step 20).  Ranges: minute
 * 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7 (0 and 7
 * are Sunday).  No names (jan, mon), no `@hourly`, no seconds field.  As in
 * classic cron, when both day of month and day of week are restricted (not
 * `*`), a day matches when EITHER matches.
 */
#ifndef MQ_CRON_H
#define MQ_CRON_H

#include <stdbool.h>
#include <stdint.h>

struct mq_cron {
	uint64_t minute;  /* bit i = minute i */
	uint32_t hour;    /* bit i = hour i */
	uint32_t dom;     /* bit i = day i (1..31) */
	uint16_t month;   /* bit i = month i (1..12) */
	uint8_t dow;      /* bit i = weekday i (0..6, Sunday = 0) */
	bool dom_star, dow_star;
};

/* Parse `expr`.  Returns 0, or -EINVAL with *why (static text, may be
 * NULL) saying what is wrong: "expected 5 fields", "minute 61 out of range
 * 0-59", ... *out is untouched on failure. */
int mq_cron_parse(const char *expr, struct mq_cron *out, const char **why);

/* The first matching minute strictly after `after` (unix seconds, UTC), in
 * unix seconds; -1 when none within 8 years (e.g. "0 0 31 2 *"). */
int64_t mq_cron_next(const struct mq_cron *c, int64_t after);

#endif
