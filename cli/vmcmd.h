/* vmcmd.h - shared argument parsing of the single-VM verbs
 * (start, stop, restart, rm). */
#ifndef MQ_CLI_VMCMD_H
#define MQ_CLI_VMCMD_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"

struct mq_vmcmd_args {
	const char *name;
	int64_t timeout_ms;      /* --timeout, 0 = spec's stop_timeout */
	bool force;
	bool delete_disks;
	int64_t lock_ms;
};

/* Parses NAME [--timeout S] [--force] [--delete-disks (rm only)]
 * [--lock-timeout S] [--state-dir DIR] [-h].  Returns -1 to continue, or an
 * exit code to return. */
int mq_vmcmd_parse(struct mq_cli *cli, const struct mq_cmd *cmd, int argc, char **argv, bool allow_delete_disks,
		   struct mq_vmcmd_args *out);
/* Lock, open the store, build a one-item plan, let `choose` pick the action,
 * run it.  Returns the exit code. */
int mq_vmcmd_run(struct mq_cli *cli, const struct mq_vmcmd_args *a,
		 int (*choose)(struct mq_cli *cli, const struct mq_vmcmd_args *a, struct mq_plan_item *it,
			       struct mq_apply_opts *o));

#endif
