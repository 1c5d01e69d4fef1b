/* maqet rm NAME: forget a VM (stop it first with --force). */
#include <stdlib.h>

#include "cli/vmcmd.h"
#include "util/xalloc.h"

static int run_rm(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_rm = {
	.name = "rm",
	.summary = "forget a VM (--force stops it first, --delete-disks removes its images)",
	.usage = "usage: maqet rm NAME [--force] [--delete-disks] [--lock-timeout S] [--state-dir DIR]\n"
		 "\n"
		 "Remove a VM from the state.  A running VM is refused unless --force, which\n"
		 "stops it first.  Disk images are kept unless --delete-disks.  A VM that is\n"
		 "still declared in a manifest comes back on the next apply.\n",
	.run = run_rm,
};

static int choose(struct mq_cli *cli, const struct mq_vmcmd_args *a, struct mq_plan_item *it, struct mq_apply_opts *o)
{
	(void)o;
	if (mq_status_is_up(it->observed) && !a->force) {
		mq_cli_err(cli, "vm '%s' is %s (pid %lld); stop it first or pass --force", it->name, it->observed,
			   (long long)it->rec->pid);
		return MQ_EXIT_FAILURE;
	}
	free(it->reason);
	it->action = MQ_ACT_DELETE;
	it->reason = xstrdup("requested by 'maqet rm'");
	return -1;
}

static int run_rm(struct mq_cli *cli, int argc, char **argv)
{
	struct mq_vmcmd_args a;
	int rc = mq_vmcmd_parse(cli, &mq_cmd_rm, argc, argv, true, &a);
	if (rc >= 0)
		return rc;
	return mq_vmcmd_run(cli, &a, choose);
}
