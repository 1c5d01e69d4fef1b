/* maqet render: the merged manifests as YAML (shared bases merged in). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

#include "cli/cli.h"

static int run_render(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_render = {
	.name = "render",
	.summary = "print the merged manifests (bases from 'extends' merged in) as YAML",
	.usage = "usage: maqet render -f PATH... [NAME]\n"
		 "\n"
		 "Validate the manifests under PATH like 'maqet validate', then print every\n"
		 "vm (or only NAME) as one YAML document with its shared bases merged in,\n"
		 "each headed by comments naming its file, its bases and the keys that\n"
		 "came from them.  Touches no state.\n"
		 "\n"
		 "  -f, --file PATH   manifest file or directory (repeatable)\n"
		 "  -h, --help        show this help\n",
	.run = run_render,
};

static int run_render(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
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
		case 'h':
			fputs(mq_cmd_render.usage, stdout);
			mq_strv_clear(&paths);
			return MQ_EXIT_OK;
		default:
			mq_strv_clear(&paths);
			return mq_cli_usage_error(cli, &mq_cmd_render, "invalid option");
		}
	}
	if (argc - optind > 1) {
		mq_strv_clear(&paths);
		return mq_cli_usage_error(cli, &mq_cmd_render, "at most one vm name");
	}
	const char *name = optind < argc ? argv[optind] : NULL;
	if (!paths.n)
		return mq_cli_usage_error(cli, &mq_cmd_render, "no manifests given: pass -f PATH");
	struct mq_strv diags = MQ_STRV_INIT;
	char *out = NULL;
	int r = mq_manifests_render((const char *const *)paths.v, paths.n, name, &out, &diags);
	mq_strv_clear(&paths);
	if (r == -ENOENT) {
		mq_cli_err(cli, "%s", diags.n ? diags.v[0] : "no such vm");
	} else {
		for (size_t i = 0; i < diags.n; i++)
			fprintf(stderr, "%s\n", diags.v[i]);
		if (r < 0)
			mq_cli_err(cli, "%zu error%s in manifests", diags.n, diags.n == 1 ? "" : "s");
	}
	mq_strv_clear(&diags);
	if (r < 0)
		return MQ_EXIT_FAILURE;
	fputs(out, stdout);
	free(out);
	return MQ_EXIT_OK;
}
