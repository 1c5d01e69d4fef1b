/* maqet - declarative reconciler for QEMU virtual machines. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

const struct mq_cmd *const mq_cmds[] = {
	&mq_cmd_apply, &mq_cmd_plan, &mq_cmd_watch, &mq_cmd_validate, &mq_cmd_status, &mq_cmd_start, &mq_cmd_stop,
	&mq_cmd_restart, &mq_cmd_rm, &mq_cmd_events, &mq_cmd_help, &mq_cmd_version,
	&mq_cmd_qmp, &mq_cmd_pause, &mq_cmd_resume, &mq_cmd_send_keys, &mq_cmd_type, &mq_cmd_screendump,
	&mq_cmd_console, &mq_cmd_logs, &mq_cmd_inspect, &mq_cmd_doctor,
	&mq_cmd_complete,
	&mq_cmd_snapshot,
	&mq_cmd_render,
	&mq_cmd_import,
	&mq_cmd_export,
	NULL,
};

const struct mq_cmd *mq_cli_find_cmd(const char *name)
{
	for (size_t i = 0; mq_cmds[i]; i++)
		if (strcmp(mq_cmds[i]->name, name) == 0 || (mq_cmds[i]->alias && strcmp(mq_cmds[i]->alias, name) == 0))
			return mq_cmds[i];
	return NULL;
}

static bool want_color(int fd)
{
	const char *nc = getenv("NO_COLOR");
	if (nc && *nc)
		return false;
	const char *term = getenv("TERM");
	if (term && strcmp(term, "dumb") == 0)
		return false;
	return isatty(fd);
}

int main(int argc, char **argv)
{
	struct mq_cli cli = { 0 };
	cli.prog = "maqet";
	cli.color = want_color(STDOUT_FILENO);
	cli.color_err = want_color(STDERR_FILENO);
	/* A closed pipe on stdout must not kill us mid-apply. */
	signal(SIGPIPE, SIG_IGN);

	const char *state_dir = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf("maqet %s\n", MQ_VERSION);
			return MQ_EXIT_OK;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			char *hargv[] = { "help", NULL };
			return mq_cmd_help.run(&cli, 1, hargv);
		} else if (strcmp(a, "--state-dir") == 0 || strncmp(a, "--state-dir=", 12) == 0) {
			state_dir = a[11] == '=' ? a + 12 : (i + 1 < argc ? argv[++i] : NULL);
			/* "" would silently make the working directory the state dir */
			if (!state_dir || !*state_dir)
				return mq_cli_usage_error(&cli, NULL,
							  "cannot use --state-dir: no directory given (write --state-dir DIR "
							  "before the command)");
		} else {
			return mq_cli_usage_error(&cli, NULL, "unknown global option '%s'", a);
		}
	}
	if (i >= argc) {
		char *hargv[] = { "help", NULL };
		mq_cmd_help.run(&cli, 1, hargv);
		return MQ_EXIT_USAGE;
	}
	const struct mq_cmd *cmd = mq_cli_find_cmd(argv[i]);
	if (!cmd)
		return mq_cli_usage_error(&cli, NULL, "unknown command '%s'", argv[i]);
	mq_cli_set_state_dir(&cli, state_dir);
	int rc = cmd->run(&cli, argc - i, argv + i);
	fflush(stdout);
	mq_cli_release(&cli);
	return rc;
}
