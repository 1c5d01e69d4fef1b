/* supervise.c - restart policy for watch mode: exit classification, policy
 * decision and crash-loop backoff.  Pure functions; no I/O. */
#include "reconciler/supervise.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "util/xalloc.h"

/* e->reason is a fixed array filled from QMP data; never trust it to be
 * NUL-terminated. */
static size_t reason_len(const struct mq_exit_info *e)
{
	return strnlen(e->reason, sizeof(e->reason));
}

static bool reason_is(const struct mq_exit_info *e, const char *s)
{
	size_t n = reason_len(e);
	return strlen(s) == n && memcmp(e->reason, s, n) == 0;
}

/* A guest-initiated shutdown reason: "guest-shutdown" and any other "guest-*"
 * except "guest-panic" (a panic is a crash even when QEMU reports it through
 * SHUTDOWN, e.g. with -action panic=shutdown). */
static bool reason_is_guest_poweroff(const struct mq_exit_info *e)
{
	size_t n = reason_len(e);
	static const char prefix[] = "guest-";
	if (n <= sizeof(prefix) - 1 || memcmp(e->reason, prefix, sizeof(prefix) - 1) != 0)
		return false;
	return !reason_is(e, "guest-panic");
}

enum mq_exit_kind mq_classify_exit(const struct mq_exit_info *e)
{
	if (e->intended)
		return MQ_EXIT_INTENDED;
	if (e->saw_panic)
		return MQ_EXIT_CRASH;
	if (e->saw_shutdown && e->shutdown_guest && reason_is_guest_poweroff(e))
		return MQ_EXIT_GUEST_POWEROFF;
	return MQ_EXIT_CRASH;
}

const char *mq_exit_kind_str(enum mq_exit_kind k)
{
	switch (k) {
	case MQ_EXIT_INTENDED:
		return "intended";
	case MQ_EXIT_GUEST_POWEROFF:
		return "guest-poweroff";
	case MQ_EXIT_CRASH:
		return "crash";
	}
	return "unknown";
}

char *mq_exit_describe(const struct mq_exit_info *e)
{
	int n = (int)reason_len(e);
	const char *r = e->reason;

	if (e->intended)
		return xstrdup("stopped by maqet");
	if (e->saw_panic || reason_is(e, "guest-panic"))
		return xstrdup("guest panicked");
	if (!e->saw_shutdown)
		return xstrdup("qemu exited without a shutdown event (killed or crashed)");
	if (e->shutdown_guest && reason_is_guest_poweroff(e))
		return xasprintf("guest powered off (%.*s)", n, r);
	if (reason_is(e, "host-signal"))
		return xasprintf("killed from outside (%.*s)", n, r);
	if (reason_is(e, "host-qmp-quit"))
		return xasprintf("quit over qmp by someone else (%.*s)", n, r);
	if (reason_is(e, "host-ui"))
		return xasprintf("closed from the qemu user interface (%.*s)", n, r);
	if (reason_is(e, "host-error"))
		return xasprintf("qemu stopped on an error (%.*s)", n, r);
	if (n == 0)
		return xstrdup("qemu shut down without a reason");
	return xasprintf("qemu shut down (%.*s)", n, r);
}

bool mq_policy_restarts(enum mq_restart policy, enum mq_exit_kind kind)
{
	if (kind == MQ_EXIT_INTENDED)
		return false;
	switch (policy) {
	case MQ_RESTART_NEVER:
		return false;
	case MQ_RESTART_ALWAYS:
		return kind == MQ_EXIT_GUEST_POWEROFF || kind == MQ_EXIT_CRASH;
	case MQ_RESTART_ON_FAILURE:
		return kind == MQ_EXIT_CRASH;
	}
	return false;
}

void mq_backoff_cfg_default(struct mq_backoff_cfg *c)
{
	c->initial_ms = 1000;
	c->max_ms = 300000;
	c->stable_ms = 600000;
	c->limit = 10;
}

int64_t mq_backoff_delay(const struct mq_backoff_cfg *c, int n)
{
	if (n <= 1 || c->initial_ms <= 0 || c->max_ms <= 0)
		return 0;
	int64_t d = c->initial_ms;
	if (d >= c->max_ms)
		return c->max_ms;
	/* Doubling from >= 1 passes any int64 max within 63 steps, so this loop
	 * is short even for n = INT_MAX. */
	for (int i = 2; i < n; i++) {
		if (d > c->max_ms / 2)
			return c->max_ms;
		d *= 2;
	}
	return d < c->max_ms ? d : c->max_ms;
}

void mq_backoff_failure(const struct mq_backoff_cfg *c, struct mq_backoff_state *s, int64_t now,
			int64_t started_at)
{
	if (started_at > 0 && now >= started_at && now - started_at >= c->stable_ms)
		s->count = 0;
	if (s->count < 0)
		s->count = 0;
	if (s->count < INT_MAX)
		s->count++;
	s->crash_loop = s->count >= c->limit;
	if (s->crash_loop) {
		s->backoff_until = 0;
		return;
	}
	int64_t d = mq_backoff_delay(c, s->count);
	s->backoff_until = now > INT64_MAX - d ? INT64_MAX : now + d;
}
