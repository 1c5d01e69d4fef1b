/* maqet pause NAME / maqet resume NAME: stop and continue a VM's vcpus. */
#include <getopt.h>
#include <string.h>

#include "cli/vmqmp.h"

static int run_pause(struct mq_cli *cli, int argc, char **argv);
static int run_resume(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_pause = {
	.name = "pause",
	.summary = "pause a running VM (vcpus stopped; apply and watch leave it paused)",
	.usage = "usage: maqet pause NAME [--state-dir DIR]\n"
		 "\n"
		 "Stop the VM's vcpus (QMP 'stop').  Its phase becomes 'paused': status shows\n"
		 "it, 'maqet watch' does not count it as hung or crashed, and 'maqet apply'\n"
		 "leaves it paused (plan: \"paused (maqet resume NAME)\") until 'maqet resume'.\n",
	.run = run_pause,
};

const struct mq_cmd mq_cmd_resume = {
	.name = "resume",
	.summary = "resume a paused VM",
	.usage = "usage: maqet resume NAME [--state-dir DIR]\n"
		 "\n"
		 "Continue the vcpus of a VM paused by 'maqet pause' (QMP 'cont'); its phase\n"
		 "becomes 'running' again.\n",
	.run = run_resume,
};

static int run(struct mq_cli *cli, const struct mq_cmd *cmd, int argc, char **argv, bool pause)
{
	int prc = mq_cli_parse_plain(cli, cmd, argc, argv);
	if (prc >= 0)
		return prc;
	if (optind >= argc)
		return mq_cli_usage_error(cli, cmd, "missing vm name");
	if (optind + 1 < argc)
		return mq_cli_usage_error(cli, cmd, "too many arguments");
	struct mq_vmop op;
	int rc = mq_vmop_lookup(cli, &op, argv[optind], cmd->name);
	if (rc < 0)
		rc = mq_vmop_connect(cli, &op);
	if (rc < 0)
		rc = mq_vmop_pause(cli, &op, pause, true);
	mq_vmop_close(&op);
	return rc;
}

static int run_pause(struct mq_cli *cli, int argc, char **argv)
{
	return run(cli, &mq_cmd_pause, argc, argv, true);
}

static int run_resume(struct mq_cli *cli, int argc, char **argv)
{
	return run(cli, &mq_cmd_resume, argc, argv, false);
}
