/* maqet status (ls): recorded VMs with their observed state. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "reconciler/proc.h"
#include "util/xalloc.h"

static int run_status(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_status = {
	.name = "status",
	.alias = "ls",
	.summary = "list VMs: desired and observed state, pid, uptime, hold, last error",
	.usage = "usage: maqet status [NAME] [-o table|json] [--state-dir DIR]\n"
		 "       maqet ls ...\n"
		 "\n"
		 "Show every recorded VM (or one) with its desired state, the status observed\n"
		 "now (a recorded-running VM whose process is gone shows as crashed, one whose\n"
		 "QEMU is stopped by a signal or traced as unresponsive), pid,\n"
		 "uptime, accelerator, hold flag and last error.\n"
		 "\n"
		 "  -o, --output FORMAT  table (default) or json\n"
		 "      --state-dir DIR  state directory\n"
		 "  -h, --help           show this help\n",
	.run = run_status,
};

static void fmt_uptime(int64_t ms, char *buf, size_t n)
{
	int64_t s = ms / 1000;
	if (s < 60)
		snprintf(buf, n, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, n, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, n, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else
		snprintf(buf, n, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

static const char *status_color(const char *s)
{
	if (strcmp(s, MQ_STATUS_RUNNING) == 0)
		return MQ_C_GREEN;
	if (strcmp(s, MQ_STATUS_CRASHED) == 0 || strcmp(s, MQ_STATUS_FAILED) == 0 ||
	    strcmp(s, MQ_STATUS_CRASH_LOOP) == 0)
		return MQ_C_RED;
	if (strcmp(s, MQ_STATUS_STOPPED) == 0 || strcmp(s, MQ_STATUS_CREATED) == 0)
		return MQ_C_DIM;
	return MQ_C_YELLOW;
}

static int run_status(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (mq_cli_parse_output(optarg, &json) < 0)
				return mq_cli_usage_error(cli, &mq_cmd_status, "unknown output format '%s' (use table or json)", optarg);
			break;
		case 'S':
			if (mq_cli_state_dir_option(cli, &mq_cmd_status, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case 'h':
			fputs(mq_cmd_status.usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, &mq_cmd_status, "invalid option");
		}
	}
	const char *name = optind < argc ? argv[optind] : NULL;
	if (optind + 1 < argc)
		return mq_cli_usage_error(cli, &mq_cmd_status, "too many arguments");

	struct mq_vm_record **recs = NULL;
	size_t nrec = 0;
	struct mq_error *err = NULL;
	bool have_db = false;
	if (mq_cli_open_store_existing(cli, &have_db)) {
		return MQ_EXIT_FAILURE;
	}
	if (have_db) {
		if (mq_store_vm_list(cli->store, &recs, &nrec, &err) < 0)
			return mq_cli_fail(cli, err);
	}
	size_t shown = 0;
	json_object *arr = json ? json_object_new_array() : NULL;
	size_t w = 4;
	for (size_t i = 0; i < nrec; i++)
		if (strlen(recs[i]->name) > w)
			w = strlen(recs[i]->name);
	if (!json)
		printf("%s%-*s  %-8s  %-16s  %-8s  %-8s  %-5s  %-4s  %s%s\n", mq_c(cli, MQ_C_BOLD), (int)w, "NAME", "DESIRED",
		       "STATUS", "PID", "UPTIME", "ACCEL", "HOLD", "LAST ERROR", mq_c(cli, MQ_C_RESET));
	int64_t now = mq_now_ms();
	for (size_t i = 0; i < nrec; i++) {
		const struct mq_vm_record *r = recs[i];
		if (name && strcmp(name, r->name) != 0)
			continue;
		shown++;
		const char *obs = mq_observe(r);
		bool up = mq_status_is_up(obs);
		/* a QEMU that is stopped (SIGSTOP) or traced answers nothing */
		if (up && r->pid > 0) {
			uint64_t t = 0;
			char pst = 0;
			if (mq_proc_stat((pid_t)r->pid, &t, &pst) == 0 && t == r->start_time && (pst == 'T' || pst == 't'))
				obs = "unresponsive";
		}
		int64_t uptime = up && r->started_at ? now - r->started_at : 0;
		const char *desired = r->hold ? "stopped" : (r->desired ? r->desired : "?");
		if (json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(r->name));
			json_object_object_add(o, "desired", json_object_new_string(desired));
			json_object_object_add(o, "declared", json_object_new_string(r->desired ? r->desired : ""));
			json_object_object_add(o, "status", json_object_new_string(obs));
			json_object_object_add(o, "pid", up ? json_object_new_int64(r->pid) : NULL);
			json_object_object_add(o, "uptime_s", up ? json_object_new_int64(uptime / 1000) : NULL);
			json_object_object_add(o, "accel", up && r->accel ? json_object_new_string(r->accel) : NULL);
			json_object_object_add(o, "hold", json_object_new_boolean(r->hold));
			json_object_object_add(o, "last_error", r->last_error ? json_object_new_string(r->last_error) : NULL);
			json_object_object_add(o, "source", r->source ? json_object_new_string(r->source) : NULL);
			json_object_object_add(o, "spec_hash", r->spec_hash ? json_object_new_string(r->spec_hash) : NULL);
			json_object_object_add(o, "restart_count", json_object_new_int64(r->restart_count));
			json_object_object_add(o, "exit_reason", r->exit_reason ? json_object_new_string(r->exit_reason) : NULL);
			json_object_object_add(o, "backoff_until_ms",
					       r->backoff_until ? json_object_new_int64(r->backoff_until) : NULL);
			json_object *rb = NULL;
			if (r->rolled_back_hash) {
				rb = json_object_new_object();
				json_object_object_add(rb, "refused_spec_hash", json_object_new_string(r->rolled_back_hash));
				json_object_object_add(rb, "reason", r->rolled_back_reason
									     ? json_object_new_string(r->rolled_back_reason)
									     : NULL);
			}
			json_object_object_add(o, "rolled_back", rb);
			json_object_array_add(arr, o);
			continue;
		}
		char pid[24] = "-", upt[24] = "-";
		if (up) {
			snprintf(pid, sizeof(pid), "%lld", (long long)r->pid);
			fmt_uptime(uptime, upt, sizeof(upt));
		}
		/* a running VM whose last restart-class change was rolled back
		 * (snapshots.before_change) shows as rolled-back, with the reason */
		const char *shown_status = up && r->rolled_back_hash ? "rolled-back" : obs;
		printf("%-*s  %-8s  %s%-16s%s  %-8s  %-8s  %-5s  %-4s  %s\n", (int)w, r->name, desired,
		       mq_c(cli, up && r->rolled_back_hash ? MQ_C_YELLOW : status_color(obs)), shown_status, mq_c(cli, MQ_C_RESET), pid, upt, up && r->accel ? r->accel : "-",
		       r->hold ? "yes" : "-",
		       r->last_error ? r->last_error : (!up && r->exit_reason ? r->exit_reason : ""));
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
									 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	}
	mq_vm_record_list_free(recs, nrec);
	if (name && !shown) {
		mq_cli_err(cli, "no vm named '%s' in state dir '%s'", name, cli->state_dir);
		return MQ_EXIT_FAILURE;
	}
	return MQ_EXIT_OK;
}
