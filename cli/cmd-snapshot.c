/* maqet snapshot create|list|restore|delete: on-demand snapshots of a VM
 * (reconciler/snapshot.h does the work; this file parses, prints, exits). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "reconciler/audit.h"
#include "reconciler/lock.h"
#include "reconciler/proc.h"
#include "reconciler/snapshot.h"
#include "util/strv.h"
#include "util/xalloc.h"

static int run_snapshot(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_snapshot = {
	.name = "snapshot",
	.summary = "create, list, restore or delete snapshots of a VM",
	.usage = "usage: maqet snapshot create VM NAME [--drive D]... [--live | --offline] [--overwrite]\n"
		 "                              [--no-vmstate] [-o table|json]\n"
		 "       maqet snapshot list [VM] [-o table|json]\n"
		 "       maqet snapshot restore VM NAME [--force] [--no-backup] [-o table|json]\n"
		 "       maqet snapshot delete VM NAME [-o table|json]\n"
		 "\n"
		 "Internal qcow2 snapshots.  A running VM is snapshotted live (QMP\n"
		 "snapshot-save, with its memory state unless --no-vmstate); a stopped one\n"
		 "offline with qemu-img.  A job holds the VM's own lock, not the state\n"
		 "lock: watch keeps supervising the other VMs, plan/apply leave this one\n"
		 "alone (busy), stop/restart/rm of it wait.  Names: 1-64 of [A-Za-z0-9._-];\n"
		 "the prefixes auto-, pre-change- and pre-restore- are maqet's own.\n"
		 "Restore first takes a pre-restore-<time> snapshot (unless --no-backup);\n"
		 "restoring a running VM throws its memory state away and needs --force.\n"
		 "\n"
		 "      --drive D        only drive D (repeatable; default every qcow2 drive)\n"
		 "      --live           require a live snapshot (the VM must be running)\n"
		 "      --offline        require an offline snapshot (the VM must be stopped)\n"
		 "      --overwrite      replace a snapshot of the same name\n"
		 "      --no-vmstate     live: disks only, no memory state\n"
		 "      --force          restore: allow throwing away a running VM's memory state\n"
		 "      --no-backup      restore: skip the pre-restore snapshot\n"
		 "  -o, --output FORMAT  table (default) or json (one object at the end)\n"
		 "      --lock-timeout S seconds to wait for the vm's or the state lock (default 60)\n"
		 "      --state-dir DIR  state directory\n"
		 "  -h, --help           show this help\n"
		 "\n"
		 "A progress bar is drawn on stderr when it is a terminal (not with -o json).\n",
	.run = run_snapshot,
};

enum sub { SUB_CREATE, SUB_LIST, SUB_RESTORE, SUB_DELETE };

struct args {
	enum sub sub;
	const char *vm, *name;
	struct mq_strv drives;
	bool live, offline, overwrite, no_vmstate, force, no_backup, json;
	int64_t lock_ms;
};

/* ---- progress bar ---------------------------------------------------------- */

struct bar {
	bool on;
	const char *what;
	int64_t t0;
	bool drawn;
};

static void bar_cb(void *ud, const char *status, int64_t cur, int64_t total)
{
	struct bar *b = ud;
	if (!b->on)
		return;
	double el = (double)(mq_mono_ms() - b->t0) / 1000.0;
	char line[160];
	int pct = total > 0 ? (int)(cur * 100 / total) : -1;
	if (pct > 100)
		pct = 100;
	char cells[31];
	int fill = pct >= 0 ? pct * 30 / 100 : -1;
	for (int i = 0; i < 30; i++) {
		if (fill >= 0)
			cells[i] = i < fill ? '#' : '.';
		else /* no total yet: a moving marker shows it is alive */
			cells[i] = (i == (int)(el * 10) % 30) ? '#' : '.';
	}
	cells[30] = '\0';
	if (pct >= 0)
		snprintf(line, sizeof(line), "%s [%s] %3d%% %-10s %6.1fs", b->what, cells, pct, status ? status : "",
			 el);
	else
		snprintf(line, sizeof(line), "%s [%s]  --  %-10s %6.1fs", b->what, cells, status ? status : "", el);
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	b->drawn = true;
}

static void bar_end(struct bar *b)
{
	if (b->on && b->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

/* ---- parsing --------------------------------------------------------------- */

static int parse(struct mq_cli *cli, int argc, char **argv, struct args *a)
{
	const struct mq_cmd *cmd = &mq_cmd_snapshot;
	enum { O_DRIVE = 1000, O_LIVE, O_OFFLINE, O_OVERWRITE, O_NOVM, O_FORCE, O_NOBACKUP, O_LOCK, O_STATE };
	static const struct option opts[] = {
		{ "drive", required_argument, NULL, O_DRIVE },
		{ "live", no_argument, NULL, O_LIVE },
		{ "offline", no_argument, NULL, O_OFFLINE },
		{ "overwrite", no_argument, NULL, O_OVERWRITE },
		{ "no-vmstate", no_argument, NULL, O_NOVM },
		{ "force", no_argument, NULL, O_FORCE },
		{ "no-backup", no_argument, NULL, O_NOBACKUP },
		{ "output", required_argument, NULL, 'o' },
		{ "lock-timeout", required_argument, NULL, O_LOCK },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc < 2)
		return mq_cli_usage_error(cli, cmd, "missing subcommand (create, list, restore or delete)");
	const char *s = argv[1];
	if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
		fputs(cmd->usage, stdout);
		return MQ_EXIT_OK;
	}
	if (strcmp(s, "create") == 0)
		a->sub = SUB_CREATE;
	else if (strcmp(s, "list") == 0 || strcmp(s, "ls") == 0)
		a->sub = SUB_LIST;
	else if (strcmp(s, "restore") == 0)
		a->sub = SUB_RESTORE;
	else if (strcmp(s, "delete") == 0 || strcmp(s, "rm") == 0)
		a->sub = SUB_DELETE;
	else
		return mq_cli_usage_error(cli, cmd, "unknown subcommand '%s' (use create, list, restore or delete)", s);
	a->lock_ms = 60000;
	argc--;
	argv++;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case O_DRIVE:
			if (!*optarg)
				return mq_cli_usage_error(cli, cmd, "--drive needs a drive name");
			mq_strv_push(&a->drives, optarg);
			break;
		case O_LIVE:
			a->live = true;
			break;
		case O_OFFLINE:
			a->offline = true;
			break;
		case O_OVERWRITE:
			a->overwrite = true;
			break;
		case O_NOVM:
			a->no_vmstate = true;
			break;
		case O_FORCE:
			a->force = true;
			break;
		case O_NOBACKUP:
			a->no_backup = true;
			break;
		case 'o':
			if (mq_cli_parse_output(optarg, &a->json) < 0)
				return mq_cli_usage_error(cli, cmd, "unknown output format '%s' (use table or json)", optarg);
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
	const char *sub = s;
	bool create = a->sub == SUB_CREATE, restore = a->sub == SUB_RESTORE;
	if (!create && (a->drives.n || a->live || a->offline || a->overwrite || a->no_vmstate))
		return mq_cli_usage_error(cli, cmd, "--drive, --live, --offline, --overwrite and --no-vmstate are only "
						    "for 'maqet snapshot create'");
	if (!restore && (a->force || a->no_backup))
		return mq_cli_usage_error(cli, cmd, "--force and --no-backup are only for 'maqet snapshot restore'");
	if (a->live && a->offline)
		return mq_cli_usage_error(cli, cmd, "--live and --offline exclude each other");
	if (a->offline && a->no_vmstate)
		return mq_cli_usage_error(cli, cmd, "--no-vmstate is for live snapshots (an offline one has no memory "
						    "state anyway)");
	int npos = argc - optind;
	if (a->sub == SUB_LIST) {
		if (npos > 1)
			return mq_cli_usage_error(cli, cmd, "too many arguments for 'snapshot list'");
		a->vm = npos ? argv[optind] : NULL;
		return -1;
	}
	if (npos < 1)
		return mq_cli_usage_error(cli, cmd, "missing vm name for 'snapshot %s'", sub);
	if (npos < 2)
		return mq_cli_usage_error(cli, cmd, "missing snapshot name for 'snapshot %s'", sub);
	if (npos > 2)
		return mq_cli_usage_error(cli, cmd, "too many arguments for 'snapshot %s'", sub);
	a->vm = argv[optind];
	a->name = argv[optind + 1];
	return -1;
}

/* ---- output ---------------------------------------------------------------- */

static void print_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void fmt_time(int64_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_size(uint64_t b, char *buf, size_t n)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)b);
	else
		snprintf(buf, n, "%.1f %s", v, u[i]);
}

static json_object *snap_json(const char *vm, const struct mq_snapshot *s)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "vm", json_object_new_string(vm));
	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object *d = json_object_new_array();
	for (size_t i = 0; i < s->n_drives; i++)
		json_object_array_add(d, json_object_new_string(s->drives[i]));
	json_object_object_add(o, "drives", d);
	json_object_object_add(o, "vmstate", json_object_new_boolean(s->vmstate));
	json_object_object_add(o, "vmstate_size", json_object_new_int64((int64_t)s->vmstate_size));
	json_object_object_add(o, "created_at_ms", json_object_new_int64(s->created_at));
	json_object_object_add(o, "origin", json_object_new_string(mq_snap_origin_name(s->origin)));
	return o;
}

static void env_init(struct mq_cli *cli, struct mq_snap_env *env, struct bar *b)
{
	memset(env, 0, sizeof(*env));
	env->store = cli->store;
	env->runtime_dir = cli->runtime_dir;
	env->disk_dir = cli->disk_dir;
	env->who = "cli";
	env->progress = bar_cb;
	env->ud = b;
}

/* ---- list ------------------------------------------------------------------ */

static int do_list(struct mq_cli *cli, const struct args *a)
{
	bool have_db = false;
	if (mq_cli_open_store_existing(cli, &have_db))
		return MQ_EXIT_FAILURE;
	struct mq_vm_record **recs = NULL;
	size_t nrec = 0;
	struct mq_error *err = NULL;
	if (have_db && mq_store_vm_list(cli->store, &recs, &nrec, &err) < 0)
		return mq_cli_fail(cli, err);
	size_t shown = 0;
	for (size_t i = 0; i < nrec; i++)
		shown += !a->vm || strcmp(a->vm, recs[i]->name) == 0;
	if (a->vm && !shown) {
		mq_vm_record_list_free(recs, nrec);
		mq_cli_err(cli, "no vm named '%s' in state dir '%s'", a->vm, cli->state_dir);
		return MQ_EXIT_FAILURE;
	}
	struct mq_snap_env env;
	struct bar b = { 0 };
	env_init(cli, &env, &b);
	env.progress = NULL;
	int rc = MQ_EXIT_OK;
	struct mq_snap_list *lists = xcalloc(nrec ? nrec : 1, sizeof(*lists));
	bool *ok = xcalloc(nrec ? nrec : 1, sizeof(*ok));
	int wv = 2, wn = 4, wd = 6;
	size_t total = 0;
	for (size_t i = 0; i < nrec; i++) {
		if (a->vm && strcmp(a->vm, recs[i]->name) != 0)
			continue;
		if (mq_snap_list(&env, recs[i], &lists[i], &err) < 0) {
			mq_cli_fail(cli, err);
			err = NULL;
			rc = MQ_EXIT_FAILURE;
			continue;
		}
		ok[i] = true;
		for (size_t k = 0; k < lists[i].n; k++) {
			const struct mq_snapshot *s = &lists[i].items[k];
			size_t dl = 0;
			for (size_t j = 0; j < s->n_drives; j++)
				dl += strlen(s->drives[j]) + (j ? 1 : 0);
			if ((int)strlen(recs[i]->name) > wv)
				wv = (int)strlen(recs[i]->name);
			if ((int)strlen(s->name) > wn)
				wn = (int)strlen(s->name);
			if ((int)dl > wd)
				wd = (int)dl;
			total++;
		}
	}
	json_object *arr = a->json ? json_object_new_array() : NULL;
	if (!arr && total)
		printf("%s%-*s  %-*s  %-*s  %-6s  %-9s  %-19s  %s%s\n", mq_c(cli, MQ_C_BOLD), wv, "VM", wn, "NAME", wd,
		       "DRIVES", "MEMORY", "SIZE", "CREATED", "ORIGIN", mq_c(cli, MQ_C_RESET));
	for (size_t i = 0; i < nrec; i++) {
		for (size_t k = 0; ok[i] && k < lists[i].n; k++) {
			const struct mq_snapshot *s = &lists[i].items[k];
			if (arr) {
				json_object_array_add(arr, snap_json(recs[i]->name, s));
				continue;
			}
			struct mq_strv d = MQ_STRV_INIT;
			for (size_t j = 0; j < s->n_drives; j++)
				mq_strv_push(&d, s->drives[j]);
			char *drives = mq_strv_join(&d, ",");
			mq_strv_clear(&d);
			char when[32], size[24] = "-";
			fmt_time(s->created_at, when, sizeof(when));
			if (s->vmstate)
				fmt_size(s->vmstate_size, size, sizeof(size));
			printf("%-*s  %-*s  %-*s  %-6s  %-9s  %-19s  %s\n", wv, recs[i]->name, wn, s->name, wd, drives,
			       s->vmstate ? "yes" : "no", size, when, mq_snap_origin_name(s->origin));
			free(drives);
		}
		mq_snap_list_release(&lists[i]);
	}
	free(lists);
	free(ok);
	mq_vm_record_list_free(recs, nrec);
	if (arr) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "snapshots", arr);
		print_json(o);
		json_object_put(o);
	} else if (!total && rc == MQ_EXIT_OK) {
		printf("no snapshots\n");
	}
	return rc;
}

/* ---- create / restore / delete --------------------------------------------- */

static const char *verb_of(enum sub s)
{
	return s == SUB_CREATE ? "create" : s == SUB_RESTORE ? "restore" : "delete";
}

/* The per-VM lock is taken: say whom we wait for (on a terminal only). */
static void on_waiting(void *ud, const char *holder)
{
	(void)ud;
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "waiting for %s to finish...\n", holder ? holder : "another maqet");
}

/* No state lock here: the library takes the VM's per-VM lock for the whole
 * job and the state lock only for its record steps (snapshot.h), so watch
 * keeps supervising the other VMs meanwhile. */
static int do_change(struct mq_cli *cli, const struct args *a)
{
	struct mq_error *err = NULL;
	int rc = mq_cli_open_store(cli);
	if (rc)
		return rc;
	mq_audit_new_pass();
	struct mq_vm_record *rec = NULL;
	if (mq_store_vm_get(cli->store, a->vm, &rec, &err) < 0) {
		if (err && err->code == ENOENT) {
			err = mq_error_free(err);
			mq_cli_err(cli, "cannot %s snapshot of vm '%s': no vm named '%s' in state dir '%s'",
				   verb_of(a->sub), a->vm, a->vm, cli->state_dir);
			return MQ_EXIT_FAILURE;
		}
		return mq_cli_fail(cli, err);
	}
	struct bar b = { .on = isatty(STDERR_FILENO) && !a->json, .t0 = mq_mono_ms() };
	struct mq_snap_env env;
	env_init(cli, &env, &b);
	env.state_dir = cli->state_dir;
	env.lock_timeout_ms = (int)a->lock_ms;
	env.waiting = on_waiting;
	struct mq_snap_result res = { 0 };
	int r;
	switch (a->sub) {
	case SUB_CREATE: {
		b.what = "snapshot";
		struct mq_snap_create_opts o = {
			.name = a->name,
			.origin = MQ_SNAP_MANUAL,
			.drives = (const char *const *)a->drives.v,
			.n_drives = a->drives.n,
			.mode = a->live ? MQ_SNAP_MODE_LIVE : a->offline ? MQ_SNAP_MODE_OFFLINE : MQ_SNAP_MODE_AUTO,
			.overwrite = a->overwrite,
			.no_vmstate = a->no_vmstate,
		};
		r = mq_snap_create(&env, rec, &o, &res, &err);
		break;
	}
	case SUB_RESTORE: {
		b.what = "restore";
		struct mq_snap_restore_opts o = { .name = a->name, .force = a->force, .no_backup = a->no_backup };
		r = mq_snap_restore(&env, rec, &o, &res, &err);
		break;
	}
	case SUB_DELETE:
	default:
		b.what = "delete";
		r = mq_snap_delete(&env, rec, a->name, &res, &err);
		break;
	}
	bar_end(&b);
	mq_vm_record_free(rec);
	if (a->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "vm", json_object_new_string(a->vm));
		json_object_object_add(o, "snapshot", json_object_new_string(a->name));
		json_object_object_add(o, "action", json_object_new_string(verb_of(a->sub)));
		json_object_object_add(o, "ok", json_object_new_boolean(r == 0));
		if (r == 0) {
			json_object_object_add(o, "live", json_object_new_boolean(res.live));
			json_object_object_add(o, "vmstate", json_object_new_boolean(res.vmstate));
			json_object_object_add(o, "drives", json_object_new_int64((int64_t)res.n_drives));
			json_object_object_add(o, "duration_ms", json_object_new_int64(res.duration_ms));
			if (a->sub == SUB_RESTORE) {
				json_object_object_add(o, "restarted", json_object_new_boolean(res.restarted));
				json_object_object_add(o, "backup", res.backup ? json_object_new_string(res.backup) : NULL);
			}
		} else {
			json_object_object_add(o, "error", json_object_new_string(err && err->msg ? err->msg : "failed"));
		}
		print_json(o);
		json_object_put(o);
	}
	if (r < 0) {
		mq_snap_result_release(&res);
		return mq_cli_fail(cli, err);
	}
	if (!a->json) {
		double secs = (double)res.duration_ms / 1000.0;
		if (a->sub == SUB_CREATE)
			printf("snapshot '%s' of vm '%s' created (%s, %zu drive%s) in %.1fs\n", a->name, a->vm,
			       res.live ? (res.vmstate ? "live, with memory state" : "live, disks only") : "offline",
			       res.n_drives, res.n_drives == 1 ? "" : "s", secs);
		else if (a->sub == SUB_RESTORE)
			printf("vm '%s' restored to snapshot '%s' (%s) in %.1fs\n", a->vm, a->name,
			       res.live ? "live, with memory state"
			       : res.restarted ? "stopped, reverted, started again"
					       : "offline",
			       secs);
		else
			printf("snapshot '%s' of vm '%s' deleted in %.1fs\n", a->name, a->vm, secs);
		if (a->sub == SUB_RESTORE && res.backup)
			printf("backup snapshot: %s (maqet snapshot restore %s %s)\n", res.backup, a->vm, res.backup);
	}
	mq_snap_result_release(&res);
	return MQ_EXIT_OK;
}

static int run_snapshot(struct mq_cli *cli, int argc, char **argv)
{
	struct args a;
	memset(&a, 0, sizeof(a));

	int rc = parse(cli, argc, argv, &a);
	if (rc < 0)
		rc = a.sub == SUB_LIST ? do_list(cli, &a) : do_change(cli, &a);
	mq_strv_clear(&a.drives);
	return rc;
}
