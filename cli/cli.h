/* cli.h - shared pieces of the command-line front end.
 *
 * cli/ is the only place that parses argv, prints, picks exit codes and
 * colours.  Each verb lives in cli/cmd-<verb>.c and exports one struct mq_cmd
 * listed in the table in cli/main.c.
 */
#ifndef MQ_CLI_H
#define MQ_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "reconciler/apply.h"
#include "reconciler/plan.h"
#include "specs/spec.h"
#include "state/store.h"
#include "util/error.h"
#include "util/strv.h"

/* Exit codes (documented in README.md). */
enum {
	MQ_EXIT_OK = 0,
	MQ_EXIT_FAILURE = 1,   /* an error, invalid manifests, or a VM action failed */
	MQ_EXIT_CHANGES = 2,   /* plan: there are changes to make */
	MQ_EXIT_USAGE = 64,    /* bad command line */
};

struct mq_cli {
	char *state_dir;       /* absolute */
	char *runtime_dir;
	char *disk_dir;
	struct mq_store *store;
	bool color;            /* stdout is a TTY and NO_COLOR is not set */
	bool color_err;
	const char *prog;
};

struct mq_cmd {
	const char *name;
	const char *alias;       /* or NULL */
	const char *summary;     /* one line for `maqet help` */
	const char *usage;       /* full help text */
	int (*run)(struct mq_cli *cli, int argc, char **argv);
	bool hidden;             /* not listed by help, the man page or completion */
};

/* Resolve state/runtime/disk dirs from --state-dir / env / default. */
void mq_cli_set_state_dir(struct mq_cli *cli, const char *dir);
/* A verb's --state-dir DIR: -1 when set, or MQ_EXIT_USAGE after printing when
 * DIR is empty (which would make the working directory the state dir). */
int mq_cli_state_dir_option(struct mq_cli *cli, const struct mq_cmd *cmd, const char *dir);
/* Open (create) the store; prints the error and returns MQ_EXIT_FAILURE on failure. */
int mq_cli_open_store(struct mq_cli *cli);
/* Read-only commands: open the store only when it exists (never create the
 * state dir).  *present tells which; returns 0 or MQ_EXIT_FAILURE. */
int mq_cli_open_store_existing(struct mq_cli *cli, bool *present);
void mq_cli_release(struct mq_cli *cli);

/* Print "maqet: <msg>" to stderr (red "error:" on a TTY). */
void mq_cli_err(const struct mq_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print an mq_error and free it; returns MQ_EXIT_FAILURE. */
int mq_cli_fail(const struct mq_cli *cli, struct mq_error *err);
/* Options of a verb that takes only --state-dir and -h/--help: -1 to go on
 * (optind at the first operand), or the exit code to return now. */
int mq_cli_parse_plain(struct mq_cli *cli, const struct mq_cmd *cmd, int argc, char **argv);
int mq_cli_usage_error(const struct mq_cli *cli, const struct mq_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ANSI colour helpers ("" when colour is off). */
const char *mq_c(const struct mq_cli *cli, const char *code);
#define MQ_C_RESET "0"
#define MQ_C_BOLD "1"
#define MQ_C_RED "31"
#define MQ_C_GREEN "32"
#define MQ_C_YELLOW "33"
#define MQ_C_CYAN "36"
#define MQ_C_DIM "2"

/* After option parsing of a verb taking -f: no positional arguments and at
 * least one path.  Returns 0, or MQ_EXIT_USAGE after printing (and clearing
 * paths). */
int mq_cli_manifest_args(struct mq_cli *cli, const struct mq_cmd *cmd, struct mq_strv *paths, int optind_,
			 int argc, char **argv);
/* Load and validate manifests; prints every diag to stderr.  Returns 0 and
 * *set, or MQ_EXIT_FAILURE. */
int mq_cli_load(struct mq_cli *cli, const struct mq_strv *paths, struct mq_specset **set);
/* The same through the parse cache in the state directory (cli/loadset.c),
 * with light specs (spec.h) for the vms placed on another host than `host`
 * (MQ_CLI_LIGHT_ELSEWHERE) or for every vm (MQ_CLI_LIGHT_ALL: names only). */
enum mq_cli_light { MQ_CLI_LIGHT_NONE = 0, MQ_CLI_LIGHT_ELSEWHERE, MQ_CLI_LIGHT_ALL };
int mq_cli_load_ex(struct mq_cli *cli, const struct mq_strv *paths, enum mq_cli_light light, const char *host,
		   struct mq_specset **set);
/* <state>/manifest-cache when the state directory exists and MAQET_NO_CACHE
 * is not set, else NULL (caller frees). */
char *mq_cli_cache_path(const struct mq_cli *cli);

/* Pinned hosts (README "More than one host"): the host this maqet acts for,
 * --host NAME or else the machine's host name (uname).  *out is allocated.
 * Returns 0, or MQ_EXIT_USAGE after printing when the name is not a host
 * name.  mq_cli_check_host: an explicit --host must be in hosts.yaml when
 * there is one (0, or MQ_EXIT_FAILURE after printing). */
int mq_cli_host(struct mq_cli *cli, const struct mq_cmd *cmd, const char *given, char **out);
int mq_cli_check_host(struct mq_cli *cli, const struct mq_specset *set, const char *given);

/* Print a plan as a table (or JSON when json). */
void mq_cli_print_plan(struct mq_cli *cli, const struct mq_plan *plan, bool json);

/* Parse "-o table|json"; returns 0 / -1. */
int mq_cli_parse_output(const char *arg, bool *json);
/* Parse a seconds value (duration syntax accepted: "30", "30s", "500ms"). */
int mq_cli_parse_seconds(const char *arg, int64_t *ms);

/* Event retention: keep_per_vm events per vm and none older than max_age_ms.
 * Defaults 10000 and 365 days, or $MAQET_EVENTS_KEEP / $MAQET_EVENTS_MAX_AGE
 * (a duration such as 30d).  -1 after printing when a variable is invalid. */
struct mq_retention {
	size_t keep_per_vm;
	int64_t max_age_ms;
};
int mq_cli_retention(const struct mq_cli *cli, struct mq_retention *out);
/* "30d" (days) or any duration mq_parse_duration() takes ("12h", "90m"); > 0. */
int mq_cli_parse_age(const char *s, int64_t *ms);
/* Apply the retention after a command that wrote events (errors ignored:
 * the command's own work is done; `maqet events --prune` reports them). */
void mq_cli_prune_events(struct mq_cli *cli);

/* Run a one-item plan for an imperative command under the state lock. */
int mq_cli_run_single(struct mq_cli *cli, struct mq_plan *plan, struct mq_apply_opts *opts);
/* Fill a one-item plan for record `name`; action chosen by the caller.
 * Returns 0, or MQ_EXIT_FAILURE after printing (unknown vm). */
int mq_cli_single_plan(struct mq_cli *cli, const char *name, struct mq_plan **plan);

void mq_cli_report(void *ud, const struct mq_plan_item *it, enum mq_outcome outcome, const char *msg);

/* Declared snapshots (reconciler/snapplan.h): add the snapshot actions to a
 * plan (warnings printed), and the report callback of mq_snap_exec. */
struct mq_snap_act;
size_t mq_cli_snap_plan(struct mq_cli *cli, struct mq_plan *plan);
void mq_cli_snap_report(void *ud, const char *vm, const struct mq_snap_act *a, const char *name, bool deleted,
			bool ok, const char *msg);

extern const struct mq_cmd mq_cmd_apply, mq_cmd_plan, mq_cmd_watch, mq_cmd_validate, mq_cmd_status, mq_cmd_start,
	mq_cmd_stop, mq_cmd_restart, mq_cmd_rm, mq_cmd_events, mq_cmd_help, mq_cmd_version;
extern const struct mq_cmd mq_cmd_qmp, mq_cmd_pause, mq_cmd_resume, mq_cmd_send_keys, mq_cmd_type, mq_cmd_screendump;
extern const struct mq_cmd mq_cmd_console, mq_cmd_logs, mq_cmd_inspect, mq_cmd_doctor;
extern const struct mq_cmd mq_cmd_complete;
/* The help text pieces that help and the man page share (cli/cmd-help.c). */
extern const char mq_help_global[], mq_help_exit[];
/* `maqet help --man`: the manual page in roff, from the help text (cli/manpage.c). */
int mq_cli_print_man(struct mq_cli *cli);
extern const struct mq_cmd mq_cmd_snapshot;
extern const struct mq_cmd mq_cmd_render;
extern const struct mq_cmd mq_cmd_import;
extern const struct mq_cmd mq_cmd_export;
extern const struct mq_cmd *const mq_cmds[];
const struct mq_cmd *mq_cli_find_cmd(const char *name);

#endif
