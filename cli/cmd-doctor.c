/* maqet doctor [-o json] [--fix]: check the host and the state (see
 * reconciler/doctor.h for the checks), print one line per finding. */
#include <getopt.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "reconciler/doctor.h"

static int run_doctor(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_doctor = {
	.name = "doctor",
	.summary = "check the host and the state dir; --fix repairs what is safe",
	.usage = "usage: maqet doctor [-o table|json] [--fix] [--lock-timeout S] [--state-dir DIR]\n"
		 "\n"
		 "Check the host and the state and print one line per finding, ok / warn /\n"
		 "fail, with a hint: /dev/kvm access, the QEMU binaries and their version,\n"
		 "qemu-img, the runtime dir's owner and mode, the state database (full\n"
		 "integrity check), free space for state, disks and runtime files, VMs\n"
		 "recorded up whose QEMU is gone, QEMUs using this runtime dir that no\n"
		 "record owns (orphans), stale sockets, declared disks that are missing.\n"
		 "\n"
		 "      --fix              safe repairs only: remove stale sockets, record VMs\n"
		 "                         whose QEMU is provably gone (pid + start time); never\n"
		 "                         kills a process\n"
		 "      --lock-timeout S   wait up to S seconds for the state lock (default 10)\n"
		 "  -o, --output FORMAT    table (default) or json\n"
		 "\n"
		 "exit status: 0 when nothing fails (warnings allowed), 1 when a check fails.\n",
	.run = run_doctor,
};

static int run_doctor(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "fix", no_argument, NULL, 'F' },
		{ "lock-timeout", required_argument, NULL, 'L' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, fix = false;
	int64_t lock_ms = 10000;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (mq_cli_parse_output(optarg, &json) < 0)
				return mq_cli_usage_error(cli, &mq_cmd_doctor, "unknown output format '%s' (use table or json)",
							  optarg);
			break;
		case 'F':
			fix = true;
			break;
		case 'L':
			if (mq_cli_parse_seconds(optarg, &lock_ms) < 0)
				return mq_cli_usage_error(cli, &mq_cmd_doctor, "invalid --lock-timeout '%s'", optarg);
			break;
		case 'S':
			if (mq_cli_state_dir_option(cli, &mq_cmd_doctor, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case 'h':
			fputs(mq_cmd_doctor.usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, &mq_cmd_doctor, "invalid option");
		}
	}
	if (optind < argc)
		return mq_cli_usage_error(cli, &mq_cmd_doctor, "unexpected argument '%s'", argv[optind]);

	struct mq_doctor_opts o = { .state_dir = cli->state_dir, .runtime_dir = cli->runtime_dir,
				    .disk_dir = cli->disk_dir, .fix = fix, .lock_timeout_ms = (int)lock_ms };
	struct mq_doctor d;
	mq_doctor_run(&o, &d);
	if (json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < d.n; i++) {
			const struct mq_finding *f = &d.f[i];
			json_object *e = json_object_new_object();
			json_object_object_add(e, "check", json_object_new_string(f->check));
			json_object_object_add(e, "status", json_object_new_string(mq_check_level_name(f->level)));
			json_object_object_add(e, "message", json_object_new_string(f->message));
			json_object_object_add(e, "hint", f->hint && f->level != MQ_CHECK_OK ? json_object_new_string(f->hint)
											   : NULL);
			json_object_object_add(e, "fixed", json_object_new_boolean(f->fixed));
			json_object_array_add(a, e);
		}
		puts(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(a);
	} else {
		for (size_t i = 0; i < d.n; i++) {
			const struct mq_finding *f = &d.f[i];
			const char *col = f->level == MQ_CHECK_FAIL ? MQ_C_RED : f->level == MQ_CHECK_WARN ? MQ_C_YELLOW
													    : MQ_C_GREEN;
			printf("%s%-4s%s  %-11s %s", mq_c(cli, col), mq_check_level_name(f->level), mq_c(cli, MQ_C_RESET),
			       f->check, f->message);
			if (f->hint && f->level != MQ_CHECK_OK)
				printf("%s  (%s)%s", mq_c(cli, MQ_C_DIM), f->hint, mq_c(cli, MQ_C_RESET));
			putchar('\n');
		}
	}
	int rc = mq_doctor_worst(&d) == MQ_CHECK_FAIL ? MQ_EXIT_FAILURE : MQ_EXIT_OK;
	mq_doctor_release(&d);
	return rc;
}
