/* maqet watch: keep reconciling, as a supervisor. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "reconciler/watch.h"
#include "specs/hosts.h"
#include "util/parse.h"

static int run_watch(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_watch = {
	.name = "watch",
	.summary = "keep VMs converged: react to manifest changes and VM exits (supervisor)",
	.usage = "usage: maqet watch -f PATH... [--prune [--allow-empty]] [--settle MS] [--resync S]\n"
		 "                   [--log-format text|json] [--jobs N] [--host NAME] [--state-dir DIR]\n"
		 "                   [--git-pull [--pull-interval D] [--pull-timeout D]\n"
		 "                               [--verify-signatures --keyring FILE]]\n"
		 "\n"
		 "Run in the foreground and reconcile on every manifest change (inotify, after a\n"
		 "settle window with no further change), on every VM exit (pidfd), on SIGHUP\n"
		 "and periodically.  Crashed VMs are restarted according to their 'restart'\n"
		 "policy with exponential backoff; a VM that keeps failing goes to crash-loop.\n"
		 "A manifest that fails validation keeps its VM's last valid spec in force.\n"
		 "SIGTERM/SIGINT stop watching and leave every VM running; a later watch\n"
		 "adopts them.  With NOTIFY_SOCKET set, READY=1 is sent after the first pass.\n"
		 "With --git-pull, the git repository holding the -f paths is fetched from its\n"
		 "branch's upstream at start and every interval, and fast-forwarded; local\n"
		 "commits or changes in the way are reported once and left alone.\n"
		 "\n"
		 "  -f, --file PATH         manifest file or directory (repeatable)\n"
		 "      --prune             stop and forget VMs whose manifest was deleted\n"
		 "      --allow-empty       let --prune remove every VM of a source\n"
		 "      --settle MS         quiet time after a change before a pass (default 100)\n"
		 "      --resync S          full resync period in seconds (default 60, 0 = off)\n"
		 "      --log-format FMT    text (default) or json, one line per decision on stderr\n"
		 "  -j, --jobs N            VMs acted on in parallel (default 4)\n"
		 "      --state-dir DIR     state directory\n"
		 "      --git-pull          keep the manifest checkout current (fetch + fast-forward)\n"
		 "      --pull-interval D   time between pulls (default 60s; e.g. 30s, 5m; 1s to 24h)\n"
		 "      --pull-timeout D    a git command taking longer is killed (default 60s)\n"
		 "      --verify-signatures  apply only upstream tips signed by a key of --keyring\n"
		 "      --keyring FILE      the public keys to trust, exported by gpg (binary or armored)\n"
		 "      --host NAME         act as host NAME (default: this machine's host name):\n"
		 "                          VMs placed on another host are left to it\n"
		 "\n"
		 "Restart backoff (defaults suit production; tests shorten them):\n"
		 "      --backoff-initial MS  delay before the second restart (default 1000)\n"
		 "      --backoff-max MS      longest delay (default 300000)\n"
		 "      --stable-after MS     running time that resets the failure count (default 600000)\n"
		 "      --crash-loop-limit N  failures within that window that mean crash-loop (default 10)\n",
	.run = run_watch,
};

struct logctx {
	bool json;
};

static void log_line(void *ud, const char *vm, const char *action, const char *outcome, const char *detail)
{
	struct logctx *lc = ud;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char t[40], stamp[72];
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp, sizeof(stamp), "%s.%03dZ", t, (int)(ts.tv_nsec / 1000000));
	if (lc->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "time", json_object_new_string(stamp));
		json_object_object_add(o, "vm", vm ? json_object_new_string(vm) : NULL);
		json_object_object_add(o, "action", json_object_new_string(action));
		json_object_object_add(o, "outcome", json_object_new_string(outcome));
		json_object_object_add(o, "detail", json_object_new_string(detail ? detail : ""));
		fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		fprintf(stderr, "%s %s %s %s: %s\n", stamp, vm ? vm : "-", action, outcome, detail ? detail : "");
	}
	fflush(stderr);
}

/* Milliseconds: a bare number is ms here (mq_parse_duration would read it as
 * seconds); "2s", "500ms" and the like are accepted too.  *out is left
 * untouched on failure. */
static int parse_ms(const char *arg, int64_t min, int64_t max, int64_t *out)
{
	uint64_t v = 0;
	if (mq_parse_u64(arg, &v) < 0 && mq_parse_duration(arg, &v) < 0)
		return -1;
	if (v > (uint64_t)max || (int64_t)v < min)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* One bad option value: a usage error (exit 64) naming the option, the value
 * and what would be accepted. */
static int bad_value(struct mq_cli *cli, const char *opt, const char *arg, const char *why)
{
	return mq_cli_usage_error(cli, &mq_cmd_watch, "cannot use %s '%s': %s", opt, arg, why);
}

/* Parse watch's options into *wo / *lc / *paths (all initialised by the
 * caller).  Returns -1 to go on, or an exit code after printing (then paths
 * is cleared).  Every value is parsed into a local that is initialised and
 * only copied out on success, so a failed parse never reads garbage. */
static int parse_watch_args(struct mq_cli *cli, int argc, char **argv, struct mq_strv *paths,
			    struct mq_watch_opts *wo, struct logctx *lc)
{
	enum { O_PRUNE = 1000, O_EMPTY, O_SETTLE, O_RESYNC, O_LOGFMT, O_STATE, O_BINIT, O_BMAX, O_STABLE, O_LIMIT,
	       O_GITPULL, O_PULLIVL, O_PULLTMO, O_VERIFY, O_KEYRING, O_HOST };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "prune", no_argument, NULL, O_PRUNE },
		{ "allow-empty", no_argument, NULL, O_EMPTY },
		{ "settle", required_argument, NULL, O_SETTLE },
		{ "resync", required_argument, NULL, O_RESYNC },
		{ "log-format", required_argument, NULL, O_LOGFMT },
		{ "jobs", required_argument, NULL, 'j' },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "backoff-initial", required_argument, NULL, O_BINIT },
		{ "backoff-max", required_argument, NULL, O_BMAX },
		{ "stable-after", required_argument, NULL, O_STABLE },
		{ "crash-loop-limit", required_argument, NULL, O_LIMIT },
		{ "git-pull", no_argument, NULL, O_GITPULL },
		{ "pull-interval", required_argument, NULL, O_PULLIVL },
		{ "pull-timeout", required_argument, NULL, O_PULLTMO },
		{ "verify-signatures", no_argument, NULL, O_VERIFY },
		{ "keyring", required_argument, NULL, O_KEYRING },
		{ "host", required_argument, NULL, O_HOST },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int rc = -1;
	int c;
	const char *pull_opt = NULL; /* --pull-interval / --pull-timeout given */
	bool verify = false;
	optind = 0;
	while (rc < 0 && (c = getopt_long(argc, argv, "f:j:h", opts, NULL)) != -1) {
		int64_t v = 0;
		unsigned u = 0;
		switch (c) {
		case 'f':
			mq_strv_push(paths, optarg);
			break;
		case O_PRUNE:
			wo->prune = true;
			break;
		case O_EMPTY:
			wo->allow_empty = true;
			break;
		case O_SETTLE:
			if (parse_ms(optarg, 0, 600000, &v) < 0)
				rc = bad_value(cli, "--settle", optarg,
					       "not a quiet time (give milliseconds from 0 to 600000, e.g. 100, 500ms or 2s)");
			else
				wo->settle_ms = (int)v;
			break;
		case O_RESYNC:
			if (mq_cli_parse_seconds(optarg, &v) < 0)
				rc = bad_value(cli, "--resync", optarg,
					       "not a resync period (give seconds up to 24h, e.g. 60, 90s or 5m; 0 turns it off)");
			else
				wo->resync_ms = v;
			break;
		case O_LOGFMT:
			if (strcmp(optarg, "json") == 0)
				lc->json = true;
			else if (strcmp(optarg, "text") == 0)
				lc->json = false;
			else
				rc = bad_value(cli, "--log-format", optarg, "unknown log format (use text or json)");
			break;
		case 'j':
			if (mq_parse_uint(optarg, 1, 64, &u) < 0)
				rc = bad_value(cli, "--jobs", optarg, "not a job count (give a number from 1 to 64)");
			else
				wo->jobs = (int)u;
			break;
		case O_STATE:
			rc = mq_cli_state_dir_option(cli, &mq_cmd_watch, optarg);
			break;
		case O_BINIT:
			if (parse_ms(optarg, 1, 3600000, &v) < 0)
				rc = bad_value(cli, "--backoff-initial", optarg,
					       "not a delay (give milliseconds from 1 to 3600000, e.g. 1000 or 1s)");
			else
				wo->backoff.initial_ms = v;
			break;
		case O_BMAX:
			if (parse_ms(optarg, 1, 86400000, &v) < 0)
				rc = bad_value(cli, "--backoff-max", optarg,
					       "not a delay (give milliseconds from 1 to 86400000, e.g. 300000 or 5m)");
			else
				wo->backoff.max_ms = v;
			break;
		case O_STABLE:
			if (parse_ms(optarg, 1, 86400000, &v) < 0)
				rc = bad_value(cli, "--stable-after", optarg,
					       "not a running time (give milliseconds from 1 to 86400000, e.g. 600000 or 10m)");
			else
				wo->backoff.stable_ms = v;
			break;
		case O_LIMIT:
			if (mq_parse_uint(optarg, 1, 1000, &u) < 0)
				rc = bad_value(cli, "--crash-loop-limit", optarg,
					       "not a failure count (give a number from 1 to 1000)");
			else
				wo->backoff.limit = (int)u;
			break;
		case O_GITPULL:
			wo->git_pull.enabled = true;
			break;
		case O_PULLIVL:
			if (mq_cli_parse_seconds(optarg, &v) < 0 || v < 1000)
				rc = bad_value(cli, "--pull-interval", optarg,
					       "not a pull interval (give a duration from 1s to 24h, e.g. 60, 30s or 5m)");
			else
				wo->git_pull.interval_ms = v, pull_opt = "--pull-interval";
			break;
		case O_PULLTMO:
			if (mq_cli_parse_seconds(optarg, &v) < 0 || v < 1000)
				rc = bad_value(cli, "--pull-timeout", optarg,
					       "not a timeout (give a duration from 1s to 24h, e.g. 60, 30s or 5m)");
			else
				wo->git_pull.timeout_ms = v, pull_opt = "--pull-timeout";
			break;
		case O_VERIFY:
			verify = true;
			break;
		case O_KEYRING:
			wo->git_pull.keyring = optarg;
			break;
		case O_HOST:
			if (!mq_host_name_ok(optarg))
				rc = bad_value(cli, "--host", optarg,
					       "not a host name (letters, digits, '-' and '.', at most 63 characters)");
			else
				wo->host = optarg;
			break;
		case 'h':
			fputs(mq_cmd_watch.usage, stdout);
			rc = MQ_EXIT_OK;
			break;
		default:
			rc = mq_cli_usage_error(cli, &mq_cmd_watch, "invalid option");
			break;
		}
	}
	if (rc < 0 && !wo->git_pull.enabled && (pull_opt || verify || wo->git_pull.keyring))
		rc = mq_cli_usage_error(cli, &mq_cmd_watch, "cannot use %s without --git-pull",
					pull_opt ? pull_opt : verify ? "--verify-signatures" : "--keyring");
	else if (rc < 0 && verify != (wo->git_pull.keyring != NULL))
		rc = mq_cli_usage_error(cli, &mq_cmd_watch, "cannot use %s without %s",
					verify ? "--verify-signatures" : "--keyring",
					verify ? "--keyring FILE (the public keys to trust)" : "--verify-signatures");
	if (rc >= 0) {
		mq_strv_clear(paths);
		return rc;
	}
	rc = mq_cli_manifest_args(cli, &mq_cmd_watch, paths, optind, argc, argv); /* clears paths on error */
	return rc ? rc : -1;
}

static int run_watch(struct mq_cli *cli, int argc, char **argv)
{
	struct mq_strv paths = MQ_STRV_INIT;
	struct mq_watch_opts wo = { .settle_ms = 100, .resync_ms = 60000, .jobs = 4, .git_pull.interval_ms = 60000,
				    .git_pull.timeout_ms = 60000 };
	mq_backoff_cfg_default(&wo.backoff);
	struct logctx lc = { .json = false };
	int rc = parse_watch_args(cli, argc, argv, &paths, &wo, &lc);
	if (rc >= 0)
		return rc;
	char *host = NULL;
	rc = mq_cli_host(cli, &mq_cmd_watch, wo.host, &host);
	if (!rc)
		rc = mq_cli_open_store(cli);
	if (rc) {
		mq_strv_clear(&paths);
		free(host);
		return rc;
	}
	wo.host = host;
	wo.paths = (const char *const *)paths.v;
	wo.n_paths = paths.n;
	wo.state_dir = cli->state_dir;
	char *mcache = mq_cli_cache_path(cli);
	wo.manifest_cache = mcache;
	wo.runtime_dir = cli->runtime_dir;
	wo.disk_dir = cli->disk_dir;
	wo.log = log_line;
	wo.ud = &lc;
	struct mq_retention ret;
	if (mq_cli_retention(cli, &ret) < 0) {
		mq_strv_clear(&paths);
		free(host);
		free(mcache);
		return MQ_EXIT_USAGE;
	}
	wo.events_keep = ret.keep_per_vm;
	wo.events_max_age_ms = ret.max_age_ms;
	struct mq_error *err = NULL;
	int r = mq_watch_run(cli->store, &wo, &err);
	mq_strv_clear(&paths);
	free(host);
	free(mcache);
	if (r < 0)
		return mq_cli_fail(cli, err);
	return MQ_EXIT_OK;
}
