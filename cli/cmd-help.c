/* maqet help [COMMAND] and maqet version. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static int run_help(struct mq_cli *cli, int argc, char **argv);

/* Shared with the man page (cli/manpage.c). */
const char mq_help_global[] =
	"global options:\n"
	"  --state-dir DIR  where state lives (default $MAQET_STATE_DIR, else\n"
	"                   $XDG_STATE_HOME/maqet, else ~/.local/state/maqet)\n"
	"  --version        print the version\n"
	"  -h, --help       show this help; 'maqet COMMAND -h' for a command\n";
const char mq_help_exit[] =
	"exit status: 0 ok, 1 error or a VM action failed, 2 plan has changes,\n"
	"64 usage error.  Colours only on a terminal, never with NO_COLOR set.\n";
static int run_version(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_help = {
	.name = "help",
	.summary = "show help for maqet or one command",
	.usage = "usage: maqet help [COMMAND | --man]\n"
		 "\n"
		 "      --man  print the manual page (roff) made from this help text\n",
	.run = run_help,
};

const struct mq_cmd mq_cmd_version = {
	.name = "version",
	.summary = "print maqet's version",
	.usage = "usage: maqet version   (or maqet --version)\n",
	.run = run_version,
};

static int run_version(struct mq_cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	(void)argv;
	printf("maqet %s\n", MQ_VERSION);
	return MQ_EXIT_OK;
}

static int run_help(struct mq_cli *cli, int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--man") == 0)
		return mq_cli_print_man(cli);
	if (argc > 1 && strcmp(argv[1], "-h") != 0 && strcmp(argv[1], "--help") != 0) {
		const struct mq_cmd *c = mq_cli_find_cmd(argv[1]);
		if (!c)
			return mq_cli_usage_error(cli, NULL, "unknown command '%s'", argv[1]);
		fputs(c->usage, stdout);
		return MQ_EXIT_OK;
	}
	printf("maqet %s - declarative reconciler for QEMU virtual machines\n"
	       "\n"
	       "usage: maqet [--state-dir DIR] COMMAND [ARGS...]\n"
	       "\n"
	       "commands:\n",
	       MQ_VERSION);
	for (size_t i = 0; mq_cmds[i]; i++) {
		if (mq_cmds[i]->hidden)
			continue;
		char name[32];
		if (mq_cmds[i]->alias)
			snprintf(name, sizeof(name), "%s (%s)", mq_cmds[i]->name, mq_cmds[i]->alias);
		else
			snprintf(name, sizeof(name), "%s", mq_cmds[i]->name);
		printf("  %-14s %s\n", name, mq_cmds[i]->summary);
	}
	printf("\n%s\n%s", mq_help_global, mq_help_exit);
	return MQ_EXIT_OK;
}
