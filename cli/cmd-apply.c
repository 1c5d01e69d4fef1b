/* maqet apply: make reality match the manifests. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "reconciler/snapplan.h"
#include "reconciler/lock.h"
#include "reconciler/logrot.h"
#include "reconciler/vmlock.h"
#include "util/parse.h"
#include "util/xalloc.h"

static int run_apply(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_apply = {
	.name = "apply",
	.summary = "converge VMs to the manifests (start, stop, restart, prune)",
	.usage = "usage: maqet apply -f PATH... [--prune [--allow-empty] [--delete-disks]] [--adopt] [--dry-run]\n"
		 "                   [--host NAME] [--jobs N] [--lock-timeout S] [--state-dir DIR]\n"
		 "\n"
		 "Validate every manifest under PATH (files or directories), compare them with\n"
		 "the recorded and live state, and create, start, stop or restart VMs until\n"
		 "reality matches.  Nothing is changed when any manifest is invalid.\n"
		 "\n"
		 "  -f, --file PATH      manifest file or directory (repeatable)\n"
		 "      --prune          stop and forget VMs this source applied earlier and no\n"
		 "                       longer declares (VMs of other sources are never touched)\n"
		 "      --allow-empty    let --prune remove every VM of a source\n"
		 "      --adopt          move VMs recorded from another source to this one\n"
		 "                       (without it such a VM is a conflict: refused)\n"
		 "      --host NAME      act as host NAME (default: this machine's host name):\n"
		 "                       VMs placed on another host are left to it\n"
		 "      --delete-disks   with --prune, also delete the pruned VMs' disk images\n"
		 "      --dry-run        print the plan, change nothing\n"
		 "  -j, --jobs N         VMs acted on in parallel (default 4)\n"
		 "      --lock-timeout S wait up to S seconds for another maqet (default 60)\n"
		 "      --state-dir DIR  state directory (default $MAQET_STATE_DIR or\n"
		 "                       $XDG_STATE_HOME/maqet)\n"
		 "  -h, --help           show this help\n",
	.run = run_apply,
};

static void rotate_failed(void *ud, const char *path, int error)
{
	mq_cli_err(ud, "warning: cannot rotate log '%s': %s", path, strerror(-error));
}

static int run_apply(struct mq_cli *cli, int argc, char **argv)
{
	enum { O_PRUNE = 1000, O_DRY, O_LOCK, O_DELDISKS, O_EMPTY, O_STATE, O_ADOPT, O_HOST };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "prune", no_argument, NULL, O_PRUNE },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "jobs", required_argument, NULL, 'j' },
		{ "lock-timeout", required_argument, NULL, O_LOCK },
		{ "delete-disks", no_argument, NULL, O_DELDISKS },
		{ "allow-empty", no_argument, NULL, O_EMPTY },
		{ "adopt", no_argument, NULL, O_ADOPT },
		{ "host", required_argument, NULL, O_HOST },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_strv paths = MQ_STRV_INIT;
	bool prune = false, dry = false, deldisks = false, allow_empty = false, adopt = false;
	unsigned jobs = 4;
	int64_t lock_ms = 60000;
	const char *host_arg = NULL;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "f:j:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			mq_strv_push(&paths, optarg);
			break;
		case O_PRUNE:
			prune = true;
			break;
		case O_DRY:
			dry = true;
			break;
		case 'j':
			if (mq_parse_uint(optarg, 1, 64, &jobs) < 0) {
				mq_strv_clear(&paths);
				return mq_cli_usage_error(cli, &mq_cmd_apply, "--jobs must be a number from 1 to 64, got '%s'", optarg);
			}
			break;
		case O_LOCK:
			if (mq_cli_parse_seconds(optarg, &lock_ms) < 0) {
				mq_strv_clear(&paths);
				return mq_cli_usage_error(cli, &mq_cmd_apply, "invalid --lock-timeout '%s'", optarg);
			}
			break;
		case O_DELDISKS:
			deldisks = true;
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
		case O_STATE:
			if (mq_cli_state_dir_option(cli, &mq_cmd_apply, optarg) >= 0) {
				mq_strv_clear(&paths);
				return MQ_EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(mq_cmd_apply.usage, stdout);
			mq_strv_clear(&paths);
			return MQ_EXIT_OK;
		default:
			mq_strv_clear(&paths);
			return mq_cli_usage_error(cli, &mq_cmd_apply, "invalid option");
		}
	}
	int arc = mq_cli_manifest_args(cli, &mq_cmd_apply, &paths, optind, argc, argv);
	if (arc)
		return arc;
	if (deldisks && !prune) {
		mq_strv_clear(&paths);
		return mq_cli_usage_error(cli, &mq_cmd_apply, "--delete-disks only makes sense with --prune");
	}

	/* 1. Parse and validate the whole desired set before touching anything. */
	char *host = NULL;
	int hrc = mq_cli_host(cli, &mq_cmd_apply, host_arg, &host);
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

	/* 2. One mutating pass at a time. */
	struct mq_lock lock;
	struct mq_error *err = NULL;
	if (mq_lock_acquire(&lock, cli->state_dir, "apply", (int)lock_ms, &err) < 0) {
		mq_specset_free(set);
		free(host);
		return mq_cli_fail(cli, err);
	}
	rc = mq_cli_open_store(cli);
	if (rc) {
		mq_lock_release(&lock);
		mq_specset_free(set);
		free(host);
		return rc;
	}

	/* A snapshot/restore job whose maqet died left its VM busy: end that
	 * phase first (reconciler/vmlock.h).  Best effort: the plan says busy. */
	(void)mq_vmlock_recover_all(cli->store, cli->state_dir, "apply", NULL);

	/* 3. Plan against recorded + live state. */
	struct mq_vm_record **recs = NULL;
	size_t nrec = 0;
	struct mq_plan *plan = NULL;
	if (mq_store_vm_list(cli->store, &recs, &nrec, &err) < 0) {
		rc = mq_cli_fail(cli, err);
		goto out;
	}
	struct mq_plan_opts po = { .prune = prune, .allow_empty = allow_empty, .adopt = adopt, .host = host,
				   .disk_dir = cli->disk_dir, .state_dir = cli->state_dir };
	if (mq_plan_build(set, recs, nrec, &po, &plan, &err) < 0) {
		rc = mq_cli_fail(cli, err);
		goto out;
	}
	mq_cli_snap_plan(cli, plan);
	if (dry) {
		mq_cli_print_plan(cli, plan, false);
		rc = plan->conflicts ? MQ_EXIT_FAILURE : MQ_EXIT_OK;
		goto out;
	}
	if (plan->conflicts) {
		/* one owner per VM name: refused as a whole, like invalid manifests */
		for (size_t i = 0; i < plan->n; i++)
			if (plan->items[i].conflict)
				mq_cli_err(cli, "%s", plan->items[i].reason);
		mq_cli_err(cli, "%zu vm%s owned by another source; nothing was changed", plan->conflicts,
			   plan->conflicts == 1 ? "" : "s");
		rc = MQ_EXIT_FAILURE;
		goto out;
	}
	for (size_t i = 0; i < plan->n; i++)
		if (plan->items[i].lease_wait) /* another host runs it: not started here (README "Pinned hosts") */
			printf("%s%3s %s%s: %s\n", mq_c(cli, MQ_C_BOLD), "=", plan->items[i].name, mq_c(cli, MQ_C_RESET),
			       plan->items[i].reason);
	/* a VM with a snapshot/restore job running is skipped, not waited for
	 * (like kubectl/compose, apply does not wait for other operations):
	 * said once here; the exit code stays 0 */
	for (size_t i = 0; i < plan->n; i++) {
		const struct mq_plan_item *it = &plan->items[i];
		if (it->blocked && it->rec && mq_vmlock_busy_phase(it->rec))
			mq_cli_err(cli, "warning: vm '%s' skipped: %s; run apply again when it is done", it->name,
				   it->reason);
	}
	if (mq_plan_changes(plan) == 0) {
		mq_apply_record_observations(cli->store, plan);
		if (plan->n_away)
			printf("No changes: %zu vm%s up to date, %zu placed on other hosts.\n", plan->n,
			       plan->n == 1 ? "" : "s", plan->n_away);
		else
			printf("No changes: %zu vm%s up to date.\n", plan->n, plan->n == 1 ? "" : "s");
		rc = MQ_EXIT_OK;
		goto out;
	}
	for (size_t i = 0; i < plan->n; i++) {
		const struct mq_plan_item *it = &plan->items[i];
		if (it->action != MQ_ACT_NOOP)
			printf("%s%3s %s%s: %s: %s\n", mq_c(cli, MQ_C_BOLD), mq_action_symbol(it->action), it->name,
			       mq_c(cli, MQ_C_RESET), mq_action_str(it->action), it->reason);
		for (size_t k = 0; k < it->n_snaps; k++)
			printf("%s%3s %s%s: snapshot: %s\n", mq_c(cli, MQ_C_BOLD), MQ_SNAP_ACTION_SYMBOL, it->name,
			       mq_c(cli, MQ_C_RESET), it->snaps[k].reason);
	}
	fflush(stdout);

	/* 4. Act. */
	struct mq_apply_opts ao = {
		.state_dir = cli->state_dir,
		.runtime_dir = cli->runtime_dir,
		.disk_dir = cli->disk_dir,
		.host = host,
		.jobs = (int)jobs,
		.delete_disks = deldisks,
		.report = mq_cli_report,
		.ud = cli,
	};
	struct mq_apply_result res = { 0 };
	int ar = mq_apply(cli->store, plan, &ao, &res, &err);
	if (ar < 0 && !(ar == -EIO && res.store_error_reported)) {
		/* the pass ran to its end, but something could not be recorded
		 * (once: not when an item's failure line already said it) */
		mq_cli_err(cli, "%s", err ? err->msg : "cannot record the result of the apply");
	}
	mq_error_free(err);
	err = NULL;
	if (ar == 0)
		mq_cli_prune_events(cli); /* event retention (README: "Events") */
	/* 5. Declared snapshots, on the VMs as the pass left them.  Not under
	 * the state lock: each job holds its VM's lock and takes the state lock
	 * for its record steps only (snapshot.h), so a watch keeps supervising
	 * the other VMs while a long one runs. */
	mq_lock_release(&lock);
	struct mq_snap_exec_result sres = { 0 };
	struct mq_snap_env senv = {
		.store = cli->store,
		.runtime_dir = cli->runtime_dir,
		.disk_dir = cli->disk_dir,
		.who = "apply",
		.state_dir = cli->state_dir,
		.lock_timeout_ms = (int)lock_ms,
	};
	mq_snap_exec(plan, &mq_snapops_default, &senv, mq_cli_snap_report, cli, &sres);
	printf("%sApply:%s %zu ok, %zu failed, %zu skipped, %zu unchanged.\n", mq_c(cli, MQ_C_BOLD),
	       mq_c(cli, MQ_C_RESET), res.ok, res.failed, res.skipped, plan->counts[MQ_ACT_NOOP]);
	if (sres.ok || sres.failed || sres.deleted)
		printf("%sSnapshots:%s %zu taken, %zu deleted by retention, %zu failed.\n", mq_c(cli, MQ_C_BOLD),
		       mq_c(cli, MQ_C_RESET), sres.ok, sres.deleted, sres.failed);
	rc = (ar < 0 || res.failed || res.skipped || sres.failed) ? MQ_EXIT_FAILURE : MQ_EXIT_OK;
out:
	/* running VMs' logs over the cap (README: "Logs"), also when nothing changed */
	if (!dry)
		(void)mq_log_rotate_dir(cli->runtime_dir, mq_log_cap(), rotate_failed, cli);
	mq_plan_free(plan);
	mq_vm_record_list_free(recs, nrec);
	mq_lock_release(&lock);
	mq_specset_free(set);
	free(host);
	return rc;
}
