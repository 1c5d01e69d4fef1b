/* maqet plan: show what apply would do. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/xalloc.h"

static int run_plan(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_plan = {
	.name = "plan",
	.summary = "show what apply would change, and why",
	.usage = "usage: maqet plan -f PATH... [--prune [--allow-empty]] [--adopt] [--host NAME] [-o table|json] [--state-dir DIR]\n"
		 "\n"
		 "Compare the manifests with the recorded and live state and print, per VM,\n"
		 "the action apply would take and why.  Changes nothing.\n"
		 "\n"
		 "Symbols:  +  create    >  start    <  stop    -/+  restart    ~  update\n"
		 "          -  delete (--prune)    @  snapshot (declared in 'snapshots:')\n"
		 "          ^  elsewhere (placed on another host: left to it)\n"
		 "\n"
		 "A VM declared here but recorded from another source is shown as a\n"
		 "conflict (`!`).\n"
		 "\n"
		 "Exit status: 0 no changes, 2 changes pending, 1 error or a conflict.\n"
		 "\n"
		 "  -f, --file PATH      manifest file or directory (repeatable)\n"
		 "      --prune          include VMs this source no longer declares\n"
		 "      --allow-empty    let --prune remove every VM of a source\n"
		 "      --adopt          move VMs recorded from another source to this one\n"
		 "                       (without it such a VM is a conflict: refused)\n"
		 "      --host NAME      act as host NAME (default: this machine's host name):\n"
		 "                       VMs placed on another host are left to it\n"
		 "  -o, --output FORMAT  table (default) or json\n"
		 "      --state-dir DIR  state directory\n"
		 "  -h, --help           show this help\n",
	.run = run_plan,
};

static int run_plan(struct mq_cli *cli, int argc, char **argv)
{
	enum { O_PRUNE = 1000, O_EMPTY, O_STATE, O_ADOPT, O_HOST };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "prune", no_argument, NULL, O_PRUNE },
		{ "allow-empty", no_argument, NULL, O_EMPTY },
		{ "adopt", no_argument, NULL, O_ADOPT },
		{ "host", required_argument, NULL, O_HOST },
		{ "output", required_argument, NULL, 'o' },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_strv paths = MQ_STRV_INIT;
	bool prune = false, allow_empty = false, json = false, adopt = false;
	const char *host_arg = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			mq_strv_push(&paths, optarg);
			break;
		case O_PRUNE:
			prune = true;
			break;
		case O_EMPTY:
			allow_empty = true;
			break;
		case O_ADOPT:
			adopt = true;
			break;
		case O_HOST:
			host_arg = optarg;
			break;
		case 'o':
			if (mq_cli_parse_output(optarg, &json) < 0) {
				mq_strv_clear(&paths);
				return mq_cli_usage_error(cli, &mq_cmd_plan, "unknown output format '%s' (use table or json)", optarg);
			}
			break;
		case O_STATE:
			if (mq_cli_state_dir_option(cli, &mq_cmd_plan, optarg) >= 0) {
				mq_strv_clear(&paths);
				return MQ_EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(mq_cmd_plan.usage, stdout);
			mq_strv_clear(&paths);
			return MQ_EXIT_OK;
		default:
			mq_strv_clear(&paths);
			return mq_cli_usage_error(cli, &mq_cmd_plan, "invalid option");
		}
	}
	int arc = mq_cli_manifest_args(cli, &mq_cmd_plan, &paths, optind, argc, argv);
	if (arc)
		return arc;

	char *host = NULL;
	int hrc = mq_cli_host(cli, &mq_cmd_plan, host_arg, &host);
	if (hrc) {
		mq_strv_clear(&paths);
		return hrc;
	}
	struct mq_specset *set = NULL;
	int rc = mq_cli_load_ex(cli, &paths, MQ_CLI_LIGHT_ELSEWHERE, host, &set);
	mq_strv_clear(&paths);
	if (!rc)
		rc = mq_cli_check_host(cli, set, host_arg);
	if (rc) {
		mq_specset_free(set);
		free(host);
		return rc;
	}

	/* Read-only: an absent state dir means nothing recorded (do not create it). */
	struct mq_vm_record **recs = NULL;
	size_t nrec = 0;
	struct mq_error *err = NULL;
	bool have_db = false;
	if (mq_cli_open_store_existing(cli, &have_db)) {
		mq_specset_free(set);
		free(host);
		return MQ_EXIT_FAILURE;
	}
	if (have_db) {
		if (mq_store_vm_list(cli->store, &recs, &nrec, &err) < 0) {
			mq_specset_free(set);
			free(host);
			return mq_cli_fail(cli, err);
		}
	}
	struct mq_plan *plan = NULL;
	struct mq_plan_opts po = { .prune = prune, .allow_empty = allow_empty, .adopt = adopt, .host = host,
				   .disk_dir = cli->disk_dir, .state_dir = cli->state_dir };
	if (mq_plan_build(set, recs, nrec, &po, &plan, &err) < 0) {
		rc = mq_cli_fail(cli, err);
	} else {
		mq_cli_snap_plan(cli, plan);
		mq_cli_print_plan(cli, plan, json);
		rc = plan->conflicts ? MQ_EXIT_FAILURE : mq_plan_changes(plan) ? MQ_EXIT_CHANGES : MQ_EXIT_OK;
	}
	mq_plan_free(plan);
	mq_vm_record_list_free(recs, nrec);
	mq_specset_free(set);
	free(host);
	return rc;
}
