/* maqet stop NAME: stop a VM and hold it stopped. */
#include <stdlib.h>

#include "cli/vmcmd.h"
#include "util/xalloc.h"

static int run_stop(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_stop = {
	.name = "stop",
	.summary = "stop a VM (ACPI, then quit, SIGTERM, SIGKILL) and hold it stopped",
	.usage = "usage: maqet stop NAME [--timeout S] [--force] [--lock-timeout S] [--state-dir DIR]\n"
		 "\n"
		 "Stop a VM: ACPI powerdown, wait up to its stop_timeout (or --timeout), then\n"
		 "QMP quit, then SIGTERM, then SIGKILL.  The VM is put on hold: later\n"
		 "reconciles leave it stopped (plan and status say so) until 'maqet start'.\n"
		 "\n"
		 "      --timeout S  seconds to wait for the guest to power off\n"
		 "      --force      skip the ACPI request and quit QEMU at once\n",
	.run = run_stop,
};

static int choose(struct mq_cli *cli, const struct mq_vmcmd_args *a, struct mq_plan_item *it, struct mq_apply_opts *o)
{
	(void)cli;
	(void)a;
	o->hold = "set";
	free(it->reason);
	if (mq_status_is_up(it->observed)) {
		it->action = MQ_ACT_STOP;
		it->reason = xstrdup("requested by 'maqet stop'");
	} else {
		it->action = MQ_ACT_STOP; /* records the hold; nothing to signal */
		it->reason = xasprintf("not running (observed %s)", it->observed);
	}
	return -1;
}

static int run_stop(struct mq_cli *cli, int argc, char **argv)
{
	struct mq_vmcmd_args a;
	int rc = mq_vmcmd_parse(cli, &mq_cmd_stop, argc, argv, false, &a);
	if (rc >= 0)
		return rc;
	return mq_vmcmd_run(cli, &a, choose);
}
