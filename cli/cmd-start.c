/* maqet start NAME: start a VM and clear its hold. */
#include <stdlib.h>

#include "cli/vmcmd.h"
#include "util/xalloc.h"

static int run_start(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_start = {
	.name = "start",
	.summary = "start a VM and clear the hold set by 'maqet stop'",
	.usage = "usage: maqet start NAME [--lock-timeout S] [--state-dir DIR]\n"
		 "\n"
		 "Start a recorded VM with its last applied spec and clear its hold, so later\n"
		 "reconciles keep it running again.  The manifest is never rewritten.\n",
	.run = run_start,
};

static int choose(struct mq_cli *cli, const struct mq_vmcmd_args *a, struct mq_plan_item *it, struct mq_apply_opts *o)
{
	(void)cli;
	(void)a;
	o->hold = "clear";
	o->reset_failures = true;
	free(it->reason);
	if (mq_status_is_up(it->observed)) {
		it->action = MQ_ACT_UPDATE;
		it->reason = xstrdup("already running");
	} else {
		it->action = MQ_ACT_START;
		it->reason = xasprintf("requested by 'maqet start' (observed %s)", it->observed);
	}
	return -1;
}

static int run_start(struct mq_cli *cli, int argc, char **argv)
{
	struct mq_vmcmd_args a;
	int rc = mq_vmcmd_parse(cli, &mq_cmd_start, argc, argv, false, &a);
	if (rc >= 0)
		return rc;
	return mq_vmcmd_run(cli, &a, choose);
}
