/* supervise.h - restart policy for watch mode: how a VM's exit is classified
 * and when (if ever) it is restarted.  Pure functions, table-tested.
 */
#ifndef MQ_SUPERVISE_H
#define MQ_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>

#include "specs/spec.h"

/* What was known when the process exit was noticed. */
struct mq_exit_info {
	bool saw_shutdown;        /* a QMP SHUTDOWN event arrived before the exit */
	bool shutdown_guest;      /* its data.guest */
	char reason[48];          /* its data.reason, e.g. "guest-shutdown", "host-signal",
	                             "host-qmp-quit", "guest-panic", "" when none */
	bool saw_panic;           /* GUEST_PANICKED arrived */
	bool intended;            /* maqet itself was stopping it (record status "stopping") */
};

enum mq_exit_kind {
	MQ_EXIT_INTENDED = 0,     /* maqet's own stop: not a failure */
	MQ_EXIT_GUEST_POWEROFF,   /* guest-initiated shutdown: not a crash */
	MQ_EXIT_CRASH,            /* killed from outside, QEMU error exit, panic, vanished */
};

enum mq_exit_kind mq_classify_exit(const struct mq_exit_info *e);
const char *mq_exit_kind_str(enum mq_exit_kind k);   /* "intended", "guest-poweroff", "crash" */
/* Human reason, e.g. "guest powered off (guest-shutdown)", "killed (host-signal)",
 * "guest panicked", "process vanished without a qmp shutdown event".  Caller frees. */
char *mq_exit_describe(const struct mq_exit_info *e);

/* Does the policy restart after this kind of exit? (intended: never) */
bool mq_policy_restarts(enum mq_restart policy, enum mq_exit_kind kind);

struct mq_backoff_cfg {
	int64_t initial_ms;       /* delay before the 2nd restart; default 1000 */
	int64_t max_ms;           /* cap; default 300000 (5 min) */
	int64_t stable_ms;        /* uninterrupted running that resets the count; default 600000 */
	int limit;                /* failures within the window that mean crash-loop; default 10 */
};
void mq_backoff_cfg_default(struct mq_backoff_cfg *c);

struct mq_backoff_state {
	int count;                /* failures in the current window */
	int64_t backoff_until;    /* wall ms; 0 = none */
	bool crash_loop;
};

/* Record one failure (crash, or a failed start) at wall time `now` of a VM
 * that had been running since `started_at` (0 = it never came up).  If it
 * ran uninterrupted for at least stable_ms, the count restarts from zero.
 * Then count += 1; count >= limit -> crash_loop; otherwise backoff_until =
 * now + delay where the delay is 0 for the 1st failure, then initial_ms,
 * 2*initial_ms, 4*initial_ms, ... capped at max_ms. */
void mq_backoff_failure(const struct mq_backoff_cfg *c, struct mq_backoff_state *s, int64_t now,
			int64_t started_at);
/* Delay (ms) that the n-th failure (1-based) waits before its restart. */
int64_t mq_backoff_delay(const struct mq_backoff_cfg *c, int n);

#endif
