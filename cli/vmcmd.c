#include "cli/vmcmd.h"

#include <getopt.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/lock.h"
#include "reconciler/vmlock.h"
#include "util/xalloc.h"

int mq_vmcmd_parse(struct mq_cli *cli, const struct mq_cmd *cmd, int argc, char **argv, bool allow_delete_disks,
		   struct mq_vmcmd_args *a)
{
	enum { O_TIMEOUT = 1000, O_FORCE, O_DELDISKS, O_LOCK, O_STATE };
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "force", no_argument, NULL, O_FORCE },
		{ "delete-disks", no_argument, NULL, O_DELDISKS },
		{ "lock-timeout", required_argument, NULL, O_LOCK },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(a, 0, sizeof(*a));
	a->lock_ms = 60000;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_TIMEOUT:
			if (mq_cli_parse_seconds(optarg, &a->timeout_ms) < 0 || a->timeout_ms == 0)
				return mq_cli_usage_error(cli, cmd, "invalid --timeout '%s' (seconds, e.g. 30 or 500ms)", optarg);
			break;
		case O_FORCE:
			a->force = true;
			break;
		case O_DELDISKS:
			if (!allow_delete_disks)
				return mq_cli_usage_error(cli, cmd, "--delete-disks is only valid for 'maqet rm'");
			a->delete_disks = true;
			break;
		case O_LOCK:
			if (mq_cli_parse_seconds(optarg, &a->lock_ms) < 0)
				return mq_cli_usage_error(cli, cmd, "invalid --lock-timeout '%s'", optarg);
			break;
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
	if (optind >= argc)
		return mq_cli_usage_error(cli, cmd, "missing vm name");
	if (optind + 1 < argc)
		return mq_cli_usage_error(cli, cmd, "too many arguments");
	a->name = argv[optind];
	return -1;
}

static void waiting(void *ud, const char *holder)
{
	(void)ud;
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "waiting for %s to finish...\n", holder ? holder : "another operation on the vm");
}

int mq_vmcmd_run(struct mq_cli *cli, const struct mq_vmcmd_args *a,
		 int (*choose)(struct mq_cli *cli, const struct mq_vmcmd_args *a, struct mq_plan_item *it,
			       struct mq_apply_opts *o))
{
	struct mq_lock lock, vmlock = { .fd = -1 };
	struct mq_error *err = NULL;
	int rc = mq_cli_open_store(cli);
	if (rc)
		return rc;
	/* A snapshot/restore job on the VM (phase snapshotting/restoring)
	 * holds the VM's own lock (vmlock.h): wait for it to end, before the
	 * state lock (lock order).  Not busy: no per-VM lock needed, since a
	 * job starting meanwhile finds the record changed and gives up. */
	struct mq_vm_record *rec = NULL;
	bool busy = mq_store_vm_get(cli->store, a->name, &rec, NULL) == 0 && mq_vmlock_busy_phase(rec);
	rec = mq_vm_record_free(rec);
	if (busy && mq_vmlock_acquire(&vmlock, cli->state_dir, a->name, "imperative", (int)a->lock_ms, waiting, cli,
				      &err) < 0)
		return mq_cli_fail(cli, err);
	if (mq_lock_acquire(&lock, cli->state_dir, "imperative", (int)a->lock_ms, &err) < 0) {
		mq_lock_release(&vmlock);
		return mq_cli_fail(cli, err);
	}
	/* still busy: its job's maqet died (we hold its lock), or a job began
	 * since we looked */
	if (mq_store_vm_get(cli->store, a->name, &rec, NULL) == 0 && mq_vmlock_busy_phase(rec) &&
	    mq_vmlock_recover(cli->store, vmlock.fd >= 0 ? NULL : cli->state_dir, rec, "imperative", NULL) == 0) {
		mq_cli_err(cli, "cannot change vm '%s': it is busy (%s in progress); try again when it is done", a->name,
			   rec->status);
		mq_vm_record_free(rec);
		mq_lock_release(&lock);
		mq_lock_release(&vmlock);
		return MQ_EXIT_FAILURE;
	}
	rec = mq_vm_record_free(rec);
	struct mq_plan *plan = NULL;
	rc = mq_cli_single_plan(cli, a->name, &plan);
	if (rc == 0) {
		struct mq_apply_opts o = { .stop_timeout_ms = a->timeout_ms, .force_stop = a->force,
					   .delete_disks = a->delete_disks };
		rc = choose(cli, a, &plan->items[0], &o);
		if (rc < 0)
			rc = mq_cli_run_single(cli, plan, &o);
	}
	mq_plan_free(plan);
	mq_lock_release(&lock);
	mq_lock_release(&vmlock);
	return rc;
}
