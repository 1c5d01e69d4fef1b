#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <json-c/json.h>

#include "reconciler/lock.h"
#include "reconciler/snapplan.h"
#include "specs/hosts.h"
#include "util/parse.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

void mq_cli_set_state_dir(struct mq_cli *cli, const char *dir)
{
	free(cli->state_dir);
	free(cli->runtime_dir);
	free(cli->disk_dir);
	char *d = dir ? xstrdup(dir) : mq_default_state_dir();
	if (d[0] != '/') {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof(cwd))) {
			char *abs = mq_path_join(cwd, d);
			free(d);
			d = abs;
		}
	}
	cli->state_dir = mq_path_resolve(d);
	free(d);
	cli->runtime_dir = mq_runtime_dir_for(cli->state_dir);
	cli->disk_dir = mq_path_join(cli->state_dir, "disks");
}

int mq_cli_state_dir_option(struct mq_cli *cli, const struct mq_cmd *cmd, const char *dir)
{
	if (!dir || !*dir)
		return mq_cli_usage_error(cli, cmd, "cannot use --state-dir '': no directory given (give --state-dir DIR)");
	mq_cli_set_state_dir(cli, dir);
	return -1;
}

int mq_cli_open_store(struct mq_cli *cli)
{
	if (cli->store)
		return 0;
	struct mq_error *err = NULL;
	if (mq_store_open(cli->state_dir, &cli->store, &err) < 0)
		return mq_cli_fail(cli, err);
	return 0;
}

int mq_cli_open_store_existing(struct mq_cli *cli, bool *present)
{
	char *db = mq_path_join(cli->state_dir, "maqet.db");
	struct stat st;
	*present = stat(db, &st) == 0;
	free(db);
	return *present ? mq_cli_open_store(cli) : 0;
}

void mq_cli_release(struct mq_cli *cli)
{
	cli->store = mq_store_free(cli->store);
	free(cli->state_dir);
	free(cli->runtime_dir);
	free(cli->disk_dir);
	cli->state_dir = cli->runtime_dir = cli->disk_dir = NULL;
}

const char *mq_c(const struct mq_cli *cli, const char *code)
{
	static char buf[8][16];
	static int slot;
	if (!cli->color)
		return "";
	char *b = buf[slot++ % 8];
	snprintf(b, sizeof(buf[0]), "\033[%sm", code);
	return b;
}

void mq_cli_err(const struct mq_cli *cli, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (cli->color_err)
		fputs("\033[31mmaqet:\033[0m ", stderr);
	else
		fputs("maqet: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int mq_cli_fail(const struct mq_cli *cli, struct mq_error *err)
{
	mq_cli_err(cli, "%s", err && err->msg ? err->msg : "unknown error");
	mq_error_free(err);
	return MQ_EXIT_FAILURE;
}

int mq_cli_usage_error(const struct mq_cli *cli, const struct mq_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	mq_cli_err(cli, "%s", m);
	free(m);
	if (cmd)
		fprintf(stderr, "run 'maqet %s -h' for usage\n", cmd->name);
	else
		fprintf(stderr, "run 'maqet help' for usage\n");
	return MQ_EXIT_USAGE;
}

int mq_cli_manifest_args(struct mq_cli *cli, const struct mq_cmd *cmd, struct mq_strv *paths, int optind_,
			 int argc, char **argv)
{
	int rc = 0;
	if (optind_ < argc)
		rc = mq_cli_usage_error(cli, cmd, "unexpected argument '%s' (manifests are given with -f)", argv[optind_]);
	else if (!paths->n)
		rc = mq_cli_usage_error(cli, cmd, "no manifests given: pass -f PATH");
	if (rc)
		mq_strv_clear(paths);
	return rc;
}

int mq_cli_load(struct mq_cli *cli, const struct mq_strv *paths, struct mq_specset **set)
{
	return mq_cli_load_ex(cli, paths, MQ_CLI_LIGHT_NONE, NULL, set);
}

int mq_cli_host(struct mq_cli *cli, const struct mq_cmd *cmd, const char *given, char **out)
{
	if (given) {
		if (!mq_host_name_ok(given))
			return mq_cli_usage_error(cli, cmd,
						  "invalid --host '%s' (a host name: letters, digits, '-' and '.', at most "
						  "63 characters)",
						  given);
		*out = xstrdup(given);
		return 0;
	}
	struct utsname u;
	if (uname(&u) == 0 && mq_host_name_ok(u.nodename)) {
		*out = xstrdup(u.nodename);
		return 0;
	}
	return mq_cli_usage_error(cli, cmd, "cannot tell this machine's host name; give --host NAME");
}

int mq_cli_check_host(struct mq_cli *cli, const struct mq_specset *set, const char *given)
{
	if (!given || !set->hosts || mq_hosts_has(set->hosts, given))
		return 0;
	char *list = mq_hosts_list_text(set->hosts);
	mq_cli_err(cli, "unknown host '%s' given with --host (hosts.yaml lists %s)", given, list);
	free(list);
	return MQ_EXIT_FAILURE;
}

static const char *action_color(enum mq_action a)
{
	switch (a) {
	case MQ_ACT_CREATE:
	case MQ_ACT_START:
		return MQ_C_GREEN;
	case MQ_ACT_STOP:
	case MQ_ACT_DELETE:
		return MQ_C_RED;
	case MQ_ACT_RESTART:
	case MQ_ACT_UPDATE:
		return MQ_C_YELLOW;
	default:
		return MQ_C_DIM;
	}
}

void mq_cli_print_plan(struct mq_cli *cli, const struct mq_plan *plan, bool json)
{
	if (json) {
		json_object *root = json_object_new_object();
		json_object *items = json_object_new_array();
		for (size_t i = 0; i < plan->n; i++) {
			const struct mq_plan_item *it = &plan->items[i];
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(it->name));
			json_object_object_add(o, "action", json_object_new_string(mq_action_str(it->action)));
			json_object_object_add(o, "reason", json_object_new_string(it->reason));
			json_object *ch = json_object_new_array();
			for (size_t k = 0; k < it->changed.n; k++)
				json_object_array_add(ch, json_object_new_string(it->changed.v[k]));
			json_object_object_add(o, "changed", ch);
			json_object_object_add(o, "observed", json_object_new_string(it->observed));
			json_object_object_add(o, "held", json_object_new_boolean(it->held));
			json_object_object_add(o, "declared", json_object_new_boolean(it->spec != NULL));
			if (it->n_snaps) {
				json_object *sn = json_object_new_array();
				for (size_t k = 0; k < it->n_snaps; k++) {
					const struct mq_snap_act *a = &it->snaps[k];
					json_object *so = json_object_new_object();
					json_object_object_add(so, "action", json_object_new_string("snapshot"));
					json_object_object_add(so, "kind", json_object_new_string(
									    a->kind == MQ_SNAPACT_NAMED       ? "named"
									    : a->kind == MQ_SNAPACT_SCHEDULED ? "scheduled"
													      : "pre-change"));
					json_object_object_add(so, "name", a->name ? json_object_new_string(a->name) : NULL);
					json_object_object_add(so, "reason", json_object_new_string(a->reason));
					json_object_array_add(sn, so);
				}
				json_object_object_add(o, "snapshots", sn);
			}
			json_object_object_add(o, "conflict", json_object_new_boolean(it->conflict));
			json_object_object_add(o, "owner", it->owner ? json_object_new_string(it->owner) : NULL);
			if (it->moving_to)
				json_object_object_add(o, "moving_to", json_object_new_string(it->moving_to));
			if (it->lease_wait)
				json_object_object_add(o, "lease_wait", json_object_new_boolean(true));
			json_object_array_add(items, o);
		}
		json_object_object_add(root, "items", items);
		if (plan->n_away) {
			json_object *aw = json_object_new_array();
			for (size_t i = 0; i < plan->n_away; i++) {
				json_object *o = json_object_new_object();
				json_object_object_add(o, "name", json_object_new_string(plan->away[i].name));
				json_object_object_add(o, "host", json_object_new_string(plan->away[i].host));
				json_object_array_add(aw, o);
			}
			json_object_object_add(root, "elsewhere", aw);
		}
		json_object *sum = json_object_new_object();
		for (int a = 0; a < MQ_ACT__COUNT; a++)
			json_object_object_add(sum, mq_action_str((enum mq_action)a),
					       json_object_new_int64((int64_t)plan->counts[a]));
		json_object_object_add(root, "summary", sum);
		json_object_object_add(root, "changes", json_object_new_int64((int64_t)mq_plan_changes(plan)));
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
									  JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(root);
		return;
	}
	size_t w = 4;
	for (size_t i = 0; i < plan->n; i++)
		if (strlen(plan->items[i].name) > w)
			w = strlen(plan->items[i].name);
	for (size_t i = 0; i < plan->n_away; i++)
		if (strlen(plan->away[i].name) > w)
			w = strlen(plan->away[i].name);
	for (size_t i = 0; i < plan->n; i++) {
		const struct mq_plan_item *it = &plan->items[i];
		if (it->conflict)
			printf("%s%3s %-*s  %-7s%s  %s\n", mq_c(cli, MQ_C_RED), "!", (int)w, it->name, "conflict",
			       mq_c(cli, MQ_C_RESET), it->reason);
		else
			printf("%s%3s %-*s  %-7s%s  %s\n", mq_c(cli, action_color(it->action)),
			       mq_action_symbol(it->action), (int)w, it->name, mq_action_str(it->action),
			       mq_c(cli, MQ_C_RESET), it->reason);
		for (size_t k = 0; k < it->n_snaps; k++)
			printf("%s%3s %-*s  %-7s%s  %s\n", mq_c(cli, MQ_C_CYAN), MQ_SNAP_ACTION_SYMBOL, (int)w, it->name,
			       "snapshot", mq_c(cli, MQ_C_RESET), it->snaps[k].reason);
	}
	for (size_t i = 0; i < plan->n_away; i++)
		printf("%s%3s %-*s  elsewhere (host %s)%s\n", mq_c(cli, MQ_C_DIM), MQ_PLAN_AWAY_SYMBOL, (int)w,
		       plan->away[i].name, plan->away[i].host, mq_c(cli, MQ_C_RESET));
	size_t nsnap = 0;
	for (size_t i = 0; i < plan->n; i++)
		nsnap += plan->items[i].n_snaps;
	if (plan->n || plan->n_away)
		printf("\n");
	printf("%sPlan:%s %zu to create, %zu to start, %zu to stop, %zu to restart, %zu to update, %zu to delete, "
	       "%zu unchanged.\n",
	       mq_c(cli, MQ_C_BOLD), mq_c(cli, MQ_C_RESET), plan->counts[MQ_ACT_CREATE], plan->counts[MQ_ACT_START],
	       plan->counts[MQ_ACT_STOP], plan->counts[MQ_ACT_RESTART], plan->counts[MQ_ACT_UPDATE],
	       plan->counts[MQ_ACT_DELETE], plan->counts[MQ_ACT_NOOP]);
	if (nsnap)
		printf("%sSnapshots:%s %zu to take.\n", mq_c(cli, MQ_C_BOLD), mq_c(cli, MQ_C_RESET), nsnap);
	if (plan->n_away)
		printf("%sElsewhere:%s %zu vm%s placed on other hosts.\n", mq_c(cli, MQ_C_BOLD), mq_c(cli, MQ_C_RESET),
		       plan->n_away, plan->n_away == 1 ? "" : "s");
}

int mq_cli_parse_output(const char *arg, bool *json)
{
	if (strcmp(arg, "json") == 0)
		*json = true;
	else if (strcmp(arg, "table") == 0 || strcmp(arg, "text") == 0)
		*json = false;
	else
		return -1;
	return 0;
}

int mq_cli_parse_seconds(const char *arg, int64_t *ms)
{
	uint64_t v;
	if (mq_parse_duration(arg, &v) < 0 || v > 24ULL * 3600 * 1000)
		return -1;
	*ms = (int64_t)v;
	return 0;
}

int mq_cli_parse_age(const char *s, int64_t *ms)
{
	size_t n = strlen(s);
	if (n >= 2 && s[n - 1] == 'd') {
		char *num = xstrndup(s, n - 1);
		unsigned days;
		int r = mq_parse_uint(num, 1, 100000, &days);
		free(num);
		if (r < 0)
			return -1;
		*ms = (int64_t)days * 86400000LL;
		return 0;
	}
	uint64_t v;
	if (mq_parse_duration(s, &v) < 0 || v == 0 || v > (uint64_t)INT64_MAX)
		return -1;
	*ms = (int64_t)v;
	return 0;
}

int mq_cli_retention(const struct mq_cli *cli, struct mq_retention *out)
{
	out->keep_per_vm = 10000;
	out->max_age_ms = 365LL * 86400000LL;
	const char *e = getenv("MAQET_EVENTS_KEEP");
	if (e && *e) {
		unsigned k;
		if (mq_parse_uint(e, 1, 100000000, &k) < 0) {
			mq_cli_err(cli, "invalid MAQET_EVENTS_KEEP '%s' (a number of events per vm)", e);
			return -1;
		}
		out->keep_per_vm = k;
	}
	e = getenv("MAQET_EVENTS_MAX_AGE");
	if (e && *e) {
		if (mq_cli_parse_age(e, &out->max_age_ms) < 0) {
			mq_cli_err(cli, "invalid MAQET_EVENTS_MAX_AGE '%s' (a duration such as 30d)", e);
			return -1;
		}
	}
	return 0;
}

void mq_cli_prune_events(struct mq_cli *cli)
{
	struct mq_retention ret;
	if (!cli->store || mq_cli_retention(cli, &ret) < 0)
		return;
	struct mq_error *err = NULL;
	(void)mq_store_event_prune(cli->store, ret.keep_per_vm, ret.max_age_ms, mq_now_ms(), NULL, &err);
	mq_error_free(err);
}

void mq_cli_report(void *ud, const struct mq_plan_item *it, enum mq_outcome outcome, const char *msg)
{
	struct mq_cli *cli = ud;
	const char *tag, *col;
	switch (outcome) {
	case MQ_OUT_OK:
		tag = "ok";
		col = MQ_C_GREEN;
		break;
	case MQ_OUT_FAILED:
		tag = "FAILED";
		col = MQ_C_RED;
		break;
	default:
		tag = "skipped";
		col = MQ_C_YELLOW;
		break;
	}
	printf("%s%-7s%s %s: %s: %s\n", mq_c(cli, col), tag, mq_c(cli, MQ_C_RESET), it->name, mq_action_str(it->action),
	       msg);
	fflush(stdout);
}

int mq_cli_single_plan(struct mq_cli *cli, const char *name, struct mq_plan **plan)
{
	struct mq_error *err = NULL;
	struct mq_vm_record *rec = NULL;
	int r = mq_store_vm_get(cli->store, name, &rec, &err);
	if (r == -ENOENT) {
		mq_error_free(err);
		mq_cli_err(cli, "no vm named '%s' in state dir '%s' (run 'maqet status' to list them)", name,
			   cli->state_dir);
		return MQ_EXIT_FAILURE;
	}
	if (r < 0)
		return mq_cli_fail(cli, err);
	struct mq_plan *p = xcalloc(1, sizeof(*p));
	p->items = xcalloc(1, sizeof(*p->items));
	p->n = 1;
	struct mq_plan_item *it = &p->items[0];
	it->name = xstrdup(name);
	it->rec = rec;
	it->observed = mq_observe(rec);
	it->held = rec->hold;
	it->spec = NULL; /* imperative: keep the recorded spec, never the manifest */
	it->action = MQ_ACT_NOOP;
	it->reason = xstrdup("requested");
	*plan = p;
	return 0;
}

int mq_cli_run_single(struct mq_cli *cli, struct mq_plan *plan, struct mq_apply_opts *opts)
{
	struct mq_apply_result res = { 0 };
	struct mq_error *err = NULL;
	for (size_t i = 0; i < plan->n; i++)
		plan->counts[plan->items[i].action]++;
	opts->runtime_dir = cli->runtime_dir;
	opts->state_dir = cli->state_dir;
	opts->disk_dir = cli->disk_dir;
	opts->report = mq_cli_report;
	opts->ud = cli;
	int r = mq_apply(cli->store, plan, opts, &res, &err);
	if (r < 0 && !(r == -EIO && res.store_error_reported)) /* once: not again after the item's line */
		mq_cli_err(cli, "%s", err ? err->msg : "cannot record the result");
	mq_error_free(err);
	return (r < 0 || res.failed) ? MQ_EXIT_FAILURE : MQ_EXIT_OK;
}

size_t mq_cli_snap_plan(struct mq_cli *cli, struct mq_plan *plan)
{
	struct mq_snap_env env = {
		.store = cli->store,
		.runtime_dir = cli->runtime_dir,
		.disk_dir = cli->disk_dir,
		.who = "plan",
	};
	struct mq_strv warn = MQ_STRV_INIT;
	size_t n = mq_snap_plan_add(plan, &mq_snapops_default, &env, mq_now_ms(), &warn);
	for (size_t i = 0; i < warn.n; i++)
		mq_cli_err(cli, "warning: %s (its declared snapshots are not planned)", warn.v[i]);
	mq_strv_clear(&warn);
	return n;
}

void mq_cli_snap_report(void *ud, const char *vm, const struct mq_snap_act *a, const char *name, bool deleted,
			bool ok, const char *msg)
{
	struct mq_cli *cli = ud;
	(void)a;
	(void)name;
	(void)deleted;
	if (ok)
		printf("%s%3s %s%s: %s\n", mq_c(cli, MQ_C_CYAN), MQ_SNAP_ACTION_SYMBOL, vm, mq_c(cli, MQ_C_RESET), msg);
	else
		mq_cli_err(cli, "%s", msg);
	fflush(stdout);
}

int mq_cli_parse_plain(struct mq_cli *cli, const struct mq_cmd *cmd, int argc, char **argv)
{
	enum { O_STATE = 1000 };
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE:
			if (mq_cli_state_dir_option(cli, cmd, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case 'h':
			fputs(cmd->usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, cmd, "invalid option");
		}
	}
	return -1;
}
