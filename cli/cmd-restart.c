/* maqet restart NAME: stop (if running) and start again. */
#include <stdlib.h>

#include "cli/vmcmd.h"
#include "util/xalloc.h"

static int run_restart(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_restart = {
	.name = "restart",
	.summary = "stop and start a VM again (clears the hold)",
	.usage = "usage: maqet restart NAME [--timeout S] [--force] [--lock-timeout S] [--state-dir DIR]\n"
		 "\n"
		 "Stop the VM the way 'maqet stop' does (if it runs), then start it with its\n"
		 "last applied spec.  Clears the hold.\n",
	.run = run_restart,
};

static int choose(struct mq_cli *cli, const struct mq_vmcmd_args *a, struct mq_plan_item *it, struct mq_apply_opts *o)
{
	(void)cli;
	(void)a;
	o->hold = "clear";
	o->reset_failures = true;
	free(it->reason);
	it->action = mq_status_is_up(it->observed) ? MQ_ACT_RESTART : MQ_ACT_START;
	it->reason = xstrdup("requested by 'maqet restart'");
	return -1;
}

static int run_restart(struct mq_cli *cli, int argc, char **argv)
{
	struct mq_vmcmd_args a;
	int rc = mq_vmcmd_parse(cli, &mq_cmd_restart, argc, argv, false, &a);
	if (rc >= 0)
		return rc;
	return mq_vmcmd_run(cli, &a, choose);
}
