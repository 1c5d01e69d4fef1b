/* maqet events [NAME]: the audit trail of every mutation. */
#include <errno.h>
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
		 "       maqet events --prune [--keep N] [--max-age DURATION] [--state-dir DIR]\n"
		 "\n"
		 "Print recorded events, oldest first: time, VM, action, outcome, user, git\n"
		 "commit of the manifest source, detail.  json is streamed row by row.\n"
		 "\n"
		 "  -n, --limit N        only the newest N events (default 50 for the table,\n"
		 "                       all for json)\n"
		 "  -o, --output FORMAT  table (default) or json\n"
		 "      --prune          delete events beyond the retention now and print how many\n"
		 "      --keep N         events kept per vm (default $MAQET_EVENTS_KEEP or 10000)\n"
		 "      --max-age D      events kept this long, e.g. 30d (default\n"
		 "                       $MAQET_EVENTS_MAX_AGE or 365d)\n",
	.run = run_events,
};

struct stream {
	bool first;
};

static int print_json(const struct mq_event *e, void *ud)
{
	struct stream *st = ud;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_int64(e->id));
	json_object_object_add(o, "time_ms", json_object_new_int64(e->time));
	json_object_object_add(o, "vm", e->vm ? json_object_new_string(e->vm) : NULL);
	json_object_object_add(o, "action", json_object_new_string(e->action ? e->action : ""));
	json_object_object_add(o, "outcome", json_object_new_string(e->outcome ? e->outcome : ""));
	json_object_object_add(o, "detail", e->detail ? json_object_new_string(e->detail) : NULL);
	json_object_object_add(o, "uid", json_object_new_int64(e->uid));
	json_object_object_add(o, "user", json_object_new_string(e->user ? e->user : ""));
	json_object_object_add(o, "git_commit", e->git_commit ? json_object_new_string(e->git_commit) : NULL);
	fputs(st->first ? "\n  " : ",\n  ", stdout);
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE), stdout);
	json_object_put(o);
	st->first = false;
	return ferror(stdout) ? -EIO : 0;
}

static int run_events(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "prune", no_argument, NULL, 'P' },
		{ "keep", required_argument, NULL, 'K' },
		{ "max-age", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	unsigned limit = 0;
	bool limit_set = false;
	bool prune = false;
	struct mq_retention ret;
	if (mq_cli_retention(cli, &ret) < 0)
		return MQ_EXIT_USAGE;
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
		case 'P':
			prune = true;
			break;
		case 'K': {
			unsigned k;
			if (mq_parse_uint(optarg, 1, 100000000, &k) < 0)
				return mq_cli_usage_error(cli, &mq_cmd_events, "invalid --keep '%s'", optarg);
			ret.keep_per_vm = k;
			break;
		}
		case 'A': {
			if (mq_cli_parse_age(optarg, &ret.max_age_ms) < 0)
				return mq_cli_usage_error(cli, &mq_cmd_events, "invalid --max-age '%s' (e.g. 30d, 12h)", optarg);
			break;
		}
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
	if (prune) {
		if (optind < argc || limit_set || json)
			return mq_cli_usage_error(cli, &mq_cmd_events, "--prune takes only --keep and --max-age");
		if (mq_cli_open_store(cli))
			return MQ_EXIT_FAILURE;
		int64_t deleted = 0;
		struct mq_error *err = NULL;
		if (mq_store_event_prune(cli->store, ret.keep_per_vm, ret.max_age_ms, mq_now_ms(), &deleted, &err) < 0)
			return mq_cli_fail(cli, err);
		printf("Pruned %lld event%s (keeping %zu per vm, %lld days).\n", (long long)deleted,
		       deleted == 1 ? "" : "s", ret.keep_per_vm, (long long)(ret.max_age_ms / 86400000));
		return MQ_EXIT_OK;
	}
	if (!limit_set && !json)
		limit = 50;
	bool have_db = false;
	if (mq_cli_open_store_existing(cli, &have_db)) {
		return MQ_EXIT_FAILURE;
	}
	struct mq_event **ev = NULL;
	size_t n = 0;
	struct mq_error *err = NULL;
	if (json) {
		/* streamed: one row in memory at a time, whatever the log's size */
		struct stream st = { .first = true };
		fputs("[", stdout);
		if (have_db && mq_store_event_each(cli->store, name, limit, print_json, &st, &err) < 0) {
			fputs("]\n", stdout);
			return mq_cli_fail(cli, err);
		}
		fputs(st.first ? "]\n" : "\n]\n", stdout);
		return fflush(stdout) == 0 ? MQ_EXIT_OK : MQ_EXIT_FAILURE;
	}
	if (have_db) {
		if (mq_store_event_list(cli->store, name, limit, &ev, &n, &err) < 0)
			return mq_cli_fail(cli, err);
	}
	{
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
