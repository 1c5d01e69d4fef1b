/* maqet validate: check manifests without touching any state. */
#include <getopt.h>
#include <stdlib.h>

#include "cli/cli.h"

static int run_validate(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_validate = {
	.name = "validate",
	.summary = "check manifests and report every error with file:line:col",
	.usage = "usage: maqet validate -f PATH...\n"
		 "\n"
		 "Parse and validate every manifest under PATH (files or directories) and\n"
		 "report every error as file:line:col: message.  Touches no VM and no record;\n"
		 "when the state directory exists, it refreshes the parse cache there\n"
		 "(manifest-cache; MAQET_NO_CACHE=1 turns the cache off).\n"
		 "\n"
		 "  -f, --file PATH   manifest file or directory (repeatable)\n"
		 "  -h, --help        show this help\n",
	.run = run_validate,
};

static int run_validate(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_strv paths = MQ_STRV_INIT;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			mq_strv_push(&paths, optarg);
			break;
		case 'S':
			break; /* accepted for symmetry; validate never reads state */
		case 'h':
			fputs(mq_cmd_validate.usage, stdout);
			mq_strv_clear(&paths);
			return MQ_EXIT_OK;
		default:
			mq_strv_clear(&paths);
			return mq_cli_usage_error(cli, &mq_cmd_validate, "invalid option");
		}
	}
	for (int i = optind; i < argc; i++)
		mq_strv_push(&paths, argv[i]); /* `maqet validate vms/` is accepted too */
	if (!paths.n)
		return mq_cli_usage_error(cli, &mq_cmd_validate, "no manifests given: pass -f PATH");
	struct mq_specset *set = NULL;
	int rc = mq_cli_load_ex(cli, &paths, MQ_CLI_LIGHT_ALL, NULL, &set);
	mq_strv_clear(&paths);
	if (rc)
		return rc;
	printf("%zu vm%s valid:", set->n, set->n == 1 ? "" : "s");
	for (size_t i = 0; i < set->n; i++)
		printf(" %s", set->specs[i]->name);
	printf("\n");
	mq_specset_free(set);
	return MQ_EXIT_OK;
}
