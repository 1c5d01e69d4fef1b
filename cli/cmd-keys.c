/* maqet send-keys NAME KEY... / maqet type NAME TEXT: keyboard input through
 * QMP send-key. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/vmqmp.h"
#include "reconciler/keymap.h"
#include "util/parse.h"
#include "util/xalloc.h"

static int run_send_keys(struct mq_cli *cli, int argc, char **argv);
static int run_type(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_send_keys = {
	.name = "send-keys",
	.summary = "press keys in a VM (ctrl-alt-delete, ctrl-alt-f2, ret, QEMU qcodes)",
	.usage = "usage: maqet send-keys NAME KEY... [--hold MS] [--state-dir DIR]\n"
		 "\n"
		 "Press each KEY in turn through QMP send-key.  A KEY is a QEMU qcode (ctrl,\n"
		 "alt, delete, ret, f2, a, kp_enter, ...) or an alias (enter, space, esc, del,\n"
		 "super, pageup, ...); join keys with '-' to press them together:\n"
		 "ctrl-alt-delete, ctrl-alt-f2, shift-a.  Every KEY is checked before anything\n"
		 "is sent.\n"
		 "\n"
		 "      --hold MS  how long each combination is held (QEMU's default: 100)\n",
	.run = run_send_keys,
};

const struct mq_cmd mq_cmd_type = {
	.name = "type",
	.summary = "type text into a VM through its keyboard",
	.usage = "usage: maqet type NAME TEXT [--delay MS] [--state-dir DIR]\n"
		 "\n"
		 "Type TEXT on the VM's keyboard (US layout) through QMP send-key: capitals and\n"
		 "shifted symbols are sent with shift, a newline or the two characters \\n press\n"
		 "Return, \\t presses Tab and \\\\ types a backslash.  A character with no key\n"
		 "(e.g. 'e' with an accent) is an error before anything is typed.  The text is\n"
		 "not recorded in events (it may be a password), only its length.\n"
		 "\n"
		 "      --delay MS  pause between characters (default 10)\n",
	.run = run_type,
};

struct keyopts {
	int hold_ms;
	int delay_ms;
};

/* Options; positional arguments stay in argv[optind..].  -1 or an exit code. */
static int parse(struct mq_cli *cli, const struct mq_cmd *cmd, int argc, char **argv, struct keyopts *ko)
{
	enum { O_STATE = 1000, O_HOLD, O_DELAY };
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "hold", required_argument, NULL, O_HOLD },
		{ "delay", required_argument, NULL, O_DELAY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool is_type = cmd == &mq_cmd_type;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		uint64_t v;
		switch (c) {
		case O_STATE:
			if (mq_cli_state_dir_option(cli, cmd, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case O_HOLD:
		case O_DELAY:
			if ((c == O_HOLD) == is_type)
				return mq_cli_usage_error(cli, cmd, "invalid option '%s'", c == O_HOLD ? "--hold" : "--delay");
			if (mq_parse_u64(optarg, &v) < 0 || v > 10000)
				return mq_cli_usage_error(cli, cmd, "invalid %s '%s' (milliseconds, 0 to 10000)",
							  c == O_HOLD ? "--hold" : "--delay", optarg);
			if (c == O_HOLD)
				ko->hold_ms = (int)v;
			else
				ko->delay_ms = (int)v;
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
	if (optind + 1 >= argc)
		return mq_cli_usage_error(cli, cmd, is_type ? "missing text" : "missing key");
	if (is_type && optind + 2 < argc)
		return mq_cli_usage_error(cli, cmd, "too many arguments (quote the text)");
	return -1;
}

/* Send the combos in order; -1... returns an exit code. */
static int send_all(struct mq_cli *cli, struct mq_vmop *op, const struct mq_keycombo *v, size_t n, int hold_ms,
		    int delay_ms, const char *action, const char *detail)
{
	int rc = mq_vmop_connect(cli, op);
	if (rc >= 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		json_object *args = mq_key_send_args(&v[i], hold_ms);
		struct mq_error *err = NULL;
		int r = mq_vmop_exec(op, "send-key", args, NULL, NULL, &err);
		json_object_put(args);
		if (r < 0) {
			char *d = xasprintf("%s; failed after %zu of %zu: %s", detail, i, n, err ? err->msg : "?");
			mq_vmop_event(cli, op, action, "failed", d);
			free(d);
			mq_error_prefix(&err, "cannot %s vm '%s'", op->verb, op->name);
			return mq_cli_fail(cli, err);
		}
		if (delay_ms && i + 1 < n)
			mq_vmop_sleep_ms(delay_ms);
	}
	mq_vmop_event(cli, op, action, "ok", detail);
	return MQ_EXIT_OK;
}

static int run_send_keys(struct mq_cli *cli, int argc, char **argv)
{
	struct keyopts ko = { 0 };
	int rc = parse(cli, &mq_cmd_send_keys, argc, argv, &ko);
	if (rc >= 0)
		return rc;
	const char *name = argv[optind];
	size_t n = (size_t)(argc - optind - 1);
	struct mq_keycombo *v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		struct mq_error *err = NULL;
		if (mq_key_parse_combo(argv[optind + 1 + (int)i], &v[i], &err) < 0) {
			free(v);
			mq_error_prefix(&err, "cannot send keys to vm '%s'", name);
			return mq_cli_fail(cli, err);
		}
	}
	struct mq_strv keys = MQ_STRV_INIT;
	for (size_t i = 0; i < n; i++)
		mq_strv_push(&keys, argv[optind + 1 + (int)i]);
	char *joined = mq_strv_join(&keys, " ");
	mq_strv_clear(&keys);
	struct mq_vmop op;
	rc = mq_vmop_lookup(cli, &op, name, "send keys to");
	if (rc < 0)
		rc = send_all(cli, &op, v, n, ko.hold_ms, 0, "send-keys", joined);
	mq_vmop_close(&op);
	free(joined);
	free(v);
	return rc;
}

static int run_type(struct mq_cli *cli, int argc, char **argv)
{
	struct keyopts ko = { .delay_ms = 10 };
	int rc = parse(cli, &mq_cmd_type, argc, argv, &ko);
	if (rc >= 0)
		return rc;
	const char *name = argv[optind];
	struct mq_keycombo *v = NULL;
	size_t n = 0;
	struct mq_error *err = NULL;
	if (mq_key_text(argv[optind + 1], &v, &n, &err) < 0) {
		mq_error_prefix(&err, "cannot type into vm '%s'", name);
		return mq_cli_fail(cli, err);
	}
	struct mq_vmop op;
	rc = mq_vmop_lookup(cli, &op, name, "type into");
	if (rc < 0) {
		char *d = xasprintf("%zu key presses (text not recorded)", n);
		rc = send_all(cli, &op, v, n, 0, ko.delay_ms, "type", d);
		free(d);
	}
	mq_vmop_close(&op);
	free(v);
	return rc;
}
