/* maqet events [NAME]: the audit trail of every mutation. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "util/parse.h"

static int run_events(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_events = {
	.name = "events",
	.summary = "show the event log (who did what to which VM, from which commit)",
	.usage = "usage: maqet events [NAME] [-n N] [-o table|json] [--state-dir DIR]\n"
		 "\n"
		 "Print recorded events, oldest first: time, VM, action, outcome, user, git\n"
		 "commit of the manifest source, detail.\n"
		 "\n"
		 "  -n, --limit N        only the newest N events (default 50 for the table,\n"
		 "                       all for json)\n"
		 "  -o, --output FORMAT  table (default) or json\n",
	.run = run_events,
};

static int run_events(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	unsigned limit = 0;
	bool limit_set = false;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "n:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (mq_parse_uint(optarg, 1, 1000000, &limit) < 0)
				return mq_cli_usage_error(cli, &mq_cmd_events, "invalid --limit '%s'", optarg);
			limit_set = true;
			break;
		case 'o':
			if (mq_cli_parse_output(optarg, &json) < 0)
				return mq_cli_usage_error(cli, &mq_cmd_events, "unknown output format '%s' (use table or json)", optarg);
			break;
		case 'S':
			if (mq_cli_state_dir_option(cli, &mq_cmd_events, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case 'h':
			fputs(mq_cmd_events.usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, &mq_cmd_events, "invalid option");
		}
	}
	const char *name = optind < argc ? argv[optind] : NULL;
	if (optind + 1 < argc)
		return mq_cli_usage_error(cli, &mq_cmd_events, "too many arguments");
	if (!limit_set && !json)
		limit = 50;
	bool have_db = false;
	if (mq_cli_open_store_existing(cli, &have_db)) {
		return MQ_EXIT_FAILURE;
	}
	struct mq_event **ev = NULL;
	size_t n = 0;
	struct mq_error *err = NULL;
	if (have_db) {
		if (mq_store_event_list(cli->store, name, limit, &ev, &n, &err) < 0)
			return mq_cli_fail(cli, err);
	}
	if (json) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "id", json_object_new_int64(ev[i]->id));
			json_object_object_add(o, "time_ms", json_object_new_int64(ev[i]->time));
			json_object_object_add(o, "vm", ev[i]->vm ? json_object_new_string(ev[i]->vm) : NULL);
			json_object_object_add(o, "action", json_object_new_string(ev[i]->action));
			json_object_object_add(o, "outcome", json_object_new_string(ev[i]->outcome));
			json_object_object_add(o, "detail", ev[i]->detail ? json_object_new_string(ev[i]->detail) : NULL);
			json_object_object_add(o, "uid", json_object_new_int64(ev[i]->uid));
			json_object_object_add(o, "user", json_object_new_string(ev[i]->user ? ev[i]->user : ""));
			json_object_object_add(o, "git_commit",
					       ev[i]->git_commit ? json_object_new_string(ev[i]->git_commit) : NULL);
			json_object_array_add(arr, o);
		}
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
									 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	} else {
		for (size_t i = 0; i < n; i++) {
			time_t t = (time_t)(ev[i]->time / 1000);
			struct tm tm;
			char ts[32];
			localtime_r(&t, &tm);
			strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
			char commit[13] = "-";
			if (ev[i]->git_commit)
				snprintf(commit, sizeof(commit), "%.12s", ev[i]->git_commit);
			printf("%s  %-16s %-16s %-8s %-8s %-12s %s\n", ts, ev[i]->vm ? ev[i]->vm : "-", ev[i]->action,
			       ev[i]->outcome, ev[i]->user ? ev[i]->user : "?", commit, ev[i]->detail ? ev[i]->detail : "");
		}
	}
	mq_event_list_free(ev, n);
	return MQ_EXIT_OK;
}
