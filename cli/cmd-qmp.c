/* maqet qmp NAME COMMAND [ARGS]: QMP passthrough with security tiers. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/vmqmp.h"
#include "reconciler/proc.h"
#include "reconciler/qmptier.h"
#include "specs/fromjson.h"
#include "util/paths.h"
#include "util/xalloc.h"

static int run_qmp(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_qmp = {
	.name = "qmp",
	.summary = "run one QMP command on a running VM (security tiers, audited)",
	.usage = "usage: maqet qmp NAME COMMAND [JSON-OBJECT | KEY=VALUE...] [--allow-dangerous] [-o json|pretty]\n"
		 "       maqet qmp NAME --list [-o json]\n"
		 "\n"
		 "Run one QMP command through the VM's control monitor and print QEMU's\n"
		 "\"return\" value (or its error class and description, exit 1).  Arguments are\n"
		 "one JSON object, or KEY=VALUE pairs whose VALUE is taken as JSON when it\n"
		 "parses as JSON (numbers, true/false, null, objects, arrays, \"strings\") and\n"
		 "as a plain string otherwise.  Tiers, checked before connecting:\n"
		 "  dangerous    (human-monitor-command, inject-nmi, migrate, blockdev-add, ...)\n"
		 "               refused unless --allow-dangerous\n"
		 "  privileged   (quit, system_powerdown, system_reset, stop, cont, device_del,\n"
		 "               ...) allowed, with a warning on stderr\n"
		 "  memory-dump  (pmemsave, memsave, dump-guest-memory, screendump) the output\n"
		 "               file is checked like a disk path and created by maqet (mode\n"
		 "               0600, it must not exist yet); QEMU never opens that path\n"
		 "  allowed      everything else\n"
		 "Every command, sent or refused, is an event.  'quit' and 'system_powerdown'\n"
		 "are recorded as an intended stop before they are sent, and the VM is held\n"
		 "as after 'maqet stop' until 'maqet start'.\n"
		 "\n"
		 "      --list             list the commands this QEMU supports with their tier\n"
		 "      --allow-dangerous  run a command of the dangerous tier\n"
		 "  -o, --output FORMAT    pretty (default) or json (one line)\n",
	.run = run_qmp,
};

/* Parse all of `text` as one JSON value (depth capped like QMP input).
 * 0 or -1. */
static int parse_json(const char *text, json_object **out)
{
	json_tokener *tok = json_tokener_new_ex(MQ_QMP_MAX_DEPTH);
	size_t len = strlen(text);
	/* the terminating NUL ends a bare number ("0" alone would wait for more) */
	json_object *v = json_tokener_parse_ex(tok, text, (int)len + 1);
	size_t end = json_tokener_get_parse_end(tok);
	bool ok = v && json_tokener_get_error(tok) == json_tokener_success && (end == len || end == len + 1);
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(v);
		return -1;
	}
	*out = v;
	return 0;
}

/* KEY=VALUE... or one JSON object into an object.  NULL after printing. */
static json_object *parse_args(struct mq_cli *cli, int n, char **v)
{
	if (n == 0)
		return NULL;
	if (n == 1 && v[0][0] == '{') {
		json_object *o = NULL;
		if (parse_json(v[0], &o) < 0 || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			mq_cli_err(cli, "invalid JSON arguments '%s' (give one JSON object, e.g. '{\"key\": 1}')", v[0]);
			return (json_object *)-1;
		}
		return o;
	}
	json_object *o = json_object_new_object();
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(v[i], '=');
		if (!eq || eq == v[i]) {
			mq_cli_err(cli, "invalid argument '%s' (give KEY=VALUE pairs or one JSON object)", v[i]);
			json_object_put(o);
			return (json_object *)-1;
		}
		char *key = xstrndup(v[i], (size_t)(eq - v[i]));
		json_object *val = NULL;
		if (parse_json(eq + 1, &val) < 0)
			val = json_object_new_string(eq + 1);
		json_object_object_add(o, key, val);
		free(key);
	}
	return o;
}

static void print_json(json_object *v, bool pretty)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE | (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
							    : JSON_C_TO_STRING_PLAIN);
	if (!v)
		puts("{}");
	else
		puts(json_object_to_json_string_ext(v, flags));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of query-commands, sorted.  -errno with *err. */
static int query_commands(struct mq_vmop *op, struct mq_strv *names, struct mq_error **err)
{
	json_object *ret = NULL;
	int r = mq_vmop_exec(op, "query-commands", NULL, &ret, NULL, err);
	if (r < 0)
		return r;
	size_t n = json_object_is_type(ret, json_type_array) ? json_object_array_length(ret) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *name = NULL;
		if (json_object_object_get_ex(json_object_array_get_idx(ret, i), "name", &name))
			mq_strv_push(names, json_object_get_string(name));
	}
	json_object_put(ret);
	if (names->n)
		qsort(names->v, names->n, sizeof(names->v[0]), cmp_str);
	return 0;
}

static int do_list(struct mq_cli *cli, struct mq_vmop *op, bool json)
{
	struct mq_strv names = MQ_STRV_INIT;
	struct mq_error *err = NULL;
	if (query_commands(op, &names, &err) < 0) {
		mq_error_prefix(&err, "cannot list qmp commands of vm '%s'", op->name);
		return mq_cli_fail(cli, err);
	}
	if (json) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < names.n; i++) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "name", json_object_new_string(names.v[i]));
			json_object_object_add(o, "tier",
					       json_object_new_string(mq_qmp_tier_name(mq_qmp_tier_of(names.v[i], NULL))));
			json_object_array_add(a, o);
		}
		print_json(a, false);
		json_object_put(a);
	} else {
		for (size_t i = 0; i < names.n; i++)
			printf("%-40s %s\n", names.v[i], mq_qmp_tier_name(mq_qmp_tier_of(names.v[i], NULL)));
	}
	mq_strv_clear(&names);
	return MQ_EXIT_OK;
}

/* Memory-dump tier.  QEMU never opens the caller's path: maqet creates the
 * output file itself (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, the caller's
 * ownership) and either hands QEMU the fd (dump-guest-memory: getfd +
 * "fd:NAME") or, for the commands that only take a file name and fopen() it
 * (pmemsave, memsave, screendump), lets QEMU write into a private 0700
 * directory of the VM's runtime dir and copies the result into the file. */
#define DUMP_FDNAME "maqet-dump"
struct dump_out {
	char *path;    /* the caller's file, resolved */
	int dirfd;     /* its directory */
	char *base;    /* its name in dirfd */
	int fd;        /* the caller's file, created by us */
	char *privdir; /* QEMU writes privfile in here (file-name commands) */
	char *privfile;
	bool via_fd;   /* dump-guest-memory: protocol fd:DUMP_FDNAME */
};

static void dump_init(struct dump_out *d)
{
	memset(d, 0, sizeof(*d));
	d->dirfd = d->fd = -1;
}

/* Remove the private directory; with `keep` false, also the caller's file
 * (only if the name still is the file we created). */
static void dump_finish(struct dump_out *d, bool keep)
{
	if (d->privfile)
		unlink(d->privfile);
	if (d->privdir)
		rmdir(d->privdir);
	if (!keep && d->fd >= 0 && d->dirfd >= 0) {
		struct stat a, b;
		if (fstat(d->fd, &a) == 0 && fstatat(d->dirfd, d->base, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			(void)unlinkat(d->dirfd, d->base, 0);
	}
	if (d->fd >= 0)
		close(d->fd);
	if (d->dirfd >= 0)
		close(d->dirfd);
	free(d->path);
	free(d->base);
	free(d->privdir);
	free(d->privfile);
	dump_init(d);
}

/* The real path of an open directory (its /proc/self/fd link).  Caller frees. */
static char *fd_path(int fd)
{
	char link[64], buf[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	return xstrdup(buf);
}

/* Check and create the output file; rewrite the argument to what QEMU gets
 * (after *shown has the caller's resolved path, for the event).  -1 to go
 * on, or an exit code after printing; *why gets the refusal for the event. */
static int prepare_output(struct mq_cli *cli, struct mq_vmop *op, const char *command, json_object *args,
			  struct dump_out *d, char **shown, char **why)
{
	const char *key = mq_qmp_output_arg(command);
	json_object *v = NULL;
	if (!args || !json_object_object_get_ex(args, key, &v) || !json_object_is_type(v, json_type_string)) {
		*why = xasprintf("missing '%s' argument", key);
		goto refuse;
	}
	const char *value = json_object_get_string(v);
	const char *path = mq_qmp_output_path(command, value);
	if (!path || !*path) {
		*why = xasprintf("'%s' must name a file (file:PATH)", key);
		goto refuse;
	}
	char *abs;
	if (path[0] == '/') {
		abs = xstrdup(path);
	} else {
		char *cwd = getcwd(NULL, 0);
		if (!cwd) {
			*why = xasprintf("cannot read the working directory: %s", strerror(errno));
			goto refuse;
		}
		abs = mq_path_join(cwd, path);
		free(cwd);
	}
	const char *slash = strrchr(abs, '/');
	const char *base = slash + 1;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		*why = xasprintf("output '%s' does not name a file", abs);
		free(abs);
		goto refuse;
	}
	char *dir = slash == abs ? xstrdup("/") : xstrndup(abs, (size_t)(slash - abs));
	char *rdir = mq_path_resolve(dir);
	free(dir);
	d->base = xstrdup(base);
	free(abs);
	d->path = mq_path_join(rdir, d->base);
	free(rdir);
	/* the directory as opened, not as named: a symlink swapped in between
	 * the check and the open cannot redirect us */
	char *dpath = NULL;
	char *pd = mq_path_dirname(d->path);
	d->dirfd = open(pd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(pd);
	if (d->dirfd >= 0)
		dpath = fd_path(d->dirfd);
	if (d->dirfd < 0 || !dpath) {
		*why = xasprintf("cannot create '%s': %s", d->path, strerror(d->dirfd < 0 ? errno : EIO));
		free(dpath);
		goto refuse;
	}
	char *real = mq_path_join(dpath, d->base);
	free(dpath);
	if (mq_path_is_system(d->path) || mq_path_is_system(real)) {
		*why = xasprintf("output '%s' is in a system directory", mq_path_is_system(d->path) ? d->path : real);
		free(real);
		mq_cli_err(cli, "cannot run qmp command '%s': %s (choose a path under your home or /tmp)", command, *why);
		return MQ_EXIT_FAILURE;
	}
	free(real);
	d->fd = openat(d->dirfd, d->base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (d->fd < 0) {
		int e = errno;
		if (e == EEXIST)
			*why = xasprintf("output '%s' already exists (maqet creates a new file and never writes through an "
					 "existing path: remove it or choose another name)", d->path);
		else
			*why = xasprintf("cannot create '%s': %s", d->path, strerror(e));
		goto refuse;
	}
	if (fchmod(d->fd, 0600) < 0) {
		*why = xasprintf("cannot create '%s': %s", d->path, strerror(errno));
		goto refuse;
	}
	/* the event shows the caller's file */
	char *nv = strcmp(key, "protocol") == 0 ? xasprintf("file:%s", d->path) : xstrdup(d->path);
	json_object_object_add(args, key, json_object_new_string(nv));
	free(nv);
	*shown = mq_qmp_args_redacted(args);
	if (strcmp(command, "dump-guest-memory") == 0) {
		d->via_fd = true;
		json_object_object_add(args, key, json_object_new_string("fd:" DUMP_FDNAME));
		return -1;
	}
	char *rt = mq_path_dirname(op->rec->qmp_path);
	d->privdir = xasprintf("%s/%s.dump.XXXXXX", rt, op->name);
	free(rt);
	if (!mkdtemp(d->privdir)) { /* mode 0700 */
		*why = xasprintf("cannot create a private directory '%s': %s", d->privdir, strerror(errno));
		free(d->privdir);
		d->privdir = NULL;
		free(*shown);
		*shown = NULL;
		goto refuse;
	}
	d->privfile = xasprintf("%s/out", d->privdir);
	json_object_object_add(args, key, json_object_new_string(d->privfile));
	return -1;
refuse:
	mq_cli_err(cli, "cannot run qmp command '%s': %s", command, *why);
	return MQ_EXIT_FAILURE;
}

/* After QEMU wrote the private file: copy it into the caller's file.  0 or
 * -errno with *err. */
static int dump_collect(struct dump_out *d, struct mq_error **err)
{
	if (!d->privfile)
		return 0;
	int in = open(d->privfile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = in < 0 ? errno : EINVAL;
		if (in >= 0)
			close(in);
		return mq_error_set(err, e, "cannot read qemu's output '%s': %s", d->privfile, strerror(e));
	}
	int r = 0;
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n && r == 0;) {
			ssize_t w = write(d->fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno != EINTR)
				r = -errno;
			else if (w > 0)
				off += w;
		}
		if (r < 0)
			break;
	}
	close(in);
	if (r == 0 && fsync(d->fd) < 0 && errno != EINVAL)
		r = -errno;
	if (r < 0)
		return mq_error_set(err, -r, "cannot write '%s': %s", d->path, strerror(-r));
	return 0;
}

/* quit / system_powerdown: wait for the process, then record stopped (or,
 * when it stays up, back to its phase, still held). */
static int finish_stop(struct mq_cli *cli, struct mq_vmop *op, const char *command, enum mq_phase before)
{
	int timeout_ms = 10000;
	if (strcmp(command, "system_powerdown") == 0) {
		struct mq_spec *spec = NULL;
		if (op->rec->spec_json && mq_spec_from_canonical(op->rec->spec_json, op->rec->source, &spec, NULL) == 0) {
			if (spec->stop_timeout_ms > 0)
				timeout_ms = (int)spec->stop_timeout_ms;
			mq_spec_free(spec);
		}
	}
	struct mq_pidref ref = { .pid = (pid_t)op->rec->pid, .start_time = op->rec->start_time };
	op->q = mq_qmp_free(op->q);
	int w = mq_proc_wait_exit(&ref, timeout_ms);
	struct mq_error *err = NULL;
	if (w == 0 || w == -ESTALE) {
		char *d = xasprintf("qemu exited after '%s' from 'maqet qmp'; held until 'maqet start %s'", command, op->name);
		int r = mq_vmop_record(cli, op, MQ_PHASE_EV_STOP_OK, NULL, 1, true, "stop", "ok", d, &err);
		free(d);
		if (r < 0)
			return mq_cli_fail(cli, err);
		fprintf(stderr, "maqet: vm '%s' stopped and held; 'maqet start %s' releases it\n", op->name, op->name);
		return MQ_EXIT_OK;
	}
	char *msg = xasprintf("'%s' sent through 'maqet qmp' but qemu still runs after %d ms", command, timeout_ms);
	struct mq_phase_ctx ctx = { .resume_phase = before, .error = msg };
	int r = mq_vmop_record(cli, op, MQ_PHASE_EV_STOP_FAIL, &ctx, 1, true, "stop", "failed", msg, &err);
	if (r < 0)
		mq_cli_fail(cli, err);
	fprintf(stderr, "maqet: vm '%s': %s; it stays held ('maqet stop %s' stops it)\n", op->name, msg, op->name);
	free(msg);
	return MQ_EXIT_OK;
}

/* The event of a command refused before a VM operation exists (bad
 * arguments, unknown or stopped VM): recorded under the name given, when a
 * state database exists (none is created for it). */
static void refusal_event(struct mq_cli *cli, const char *name, const char *command, json_object *args,
			  const char *rargs, const char *why)
{
	bool present = false;
	if (!cli->store && (mq_cli_open_store_existing(cli, &present) != 0 || !present))
		return;
	struct mq_vmop op;
	memset(&op, 0, sizeof(op));
	op.name = name;
	char *d = xasprintf("command=%s tier=%s args=%s: %s", command,
			    mq_qmp_tier_name(mq_qmp_tier_of(command, args)), rargs, why);
	mq_vmop_event(cli, &op, "qmp", "refused", d);
	free(d);
}

static int run_qmp(struct mq_cli *cli, int argc, char **argv)
{
	const struct mq_cmd *cmd = &mq_cmd_qmp;
	enum { O_STATE = 1000, O_LIST, O_DANGER };
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "list", no_argument, NULL, O_LIST },
		{ "allow-dangerous", no_argument, NULL, O_DANGER },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool list = false, danger = false, pretty = true;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "+ho:", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE:
			if (mq_cli_state_dir_option(cli, cmd, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case O_LIST:
			list = true;
			break;
		case O_DANGER:
			danger = true;
			break;
		case 'o':
			if (strcmp(optarg, "json") == 0)
				pretty = false;
			else if (strcmp(optarg, "pretty") == 0 || strcmp(optarg, "table") == 0)
				pretty = true;
			else
				return mq_cli_usage_error(cli, cmd, "invalid output format '%s' (json or pretty)", optarg);
			break;
		case 'h':
			fputs(cmd->usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, cmd, "invalid option");
		}
	}
	/* options may also follow the command and its arguments */
	struct mq_strv pos = MQ_STRV_INIT;
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "--allow-dangerous") == 0)
			danger = true;
		else if (strcmp(argv[i], "--list") == 0)
			list = true;
		else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) {
			const char *f = argv[++i];
			if (strcmp(f, "json") == 0)
				pretty = false;
			else if (strcmp(f, "pretty") == 0)
				pretty = true;
			else {
				mq_strv_clear(&pos);
				return mq_cli_usage_error(cli, cmd, "invalid output format '%s' (json or pretty)", f);
			}
		} else
			mq_strv_push(&pos, argv[i]);
	}
	int rc;
	if (pos.n == 0) {
		rc = mq_cli_usage_error(cli, cmd, "missing vm name");
		goto out_pos;
	}
	if (!list && pos.n < 2) {
		rc = mq_cli_usage_error(cli, cmd, "missing qmp command (or --list)");
		goto out_pos;
	}
	if (list && pos.n > 1) {
		rc = mq_cli_usage_error(cli, cmd, "--list takes no command");
		goto out_pos;
	}
	const char *name = pos.v[0];
	const char *command = list ? "query-commands" : pos.v[1];
	json_object *args = list ? NULL : parse_args(cli, (int)pos.n - 2, pos.v + 2);
	if (args == (json_object *)-1) {
		/* the raw text may hold a secret: not recorded */
		refusal_event(cli, name, command, NULL, "<unparsed>", "invalid arguments");
		rc = MQ_EXIT_FAILURE;
		goto out_pos;
	}
	if (!list && strcmp(command, "qmp_capabilities") == 0) {
		char *ra = mq_qmp_args_redacted(args);
		refusal_event(cli, name, command, args, ra, "negotiated by maqet itself");
		free(ra);
		rc = mq_cli_usage_error(cli, cmd, "'qmp_capabilities' is negotiated by maqet itself");
		json_object_put(args);
		goto out_pos;
	}
	struct mq_vmop op;
	rc = mq_vmop_lookup(cli, &op, name, "run qmp on");
	if (rc >= 0) {
		if ((op.not_running || op.unknown) && !list) {
			char *ra = mq_qmp_args_redacted(args);
			char *why = op.unknown ? xstrdup("no such vm")
					       : xasprintf("vm not running (observed %s)", mq_observe(op.rec));
			refusal_event(cli, name, command, args, ra, why);
			free(why);
			free(ra);
		}
		goto out;
	}
	if (list) {
		rc = mq_vmop_connect(cli, &op);
		if (rc < 0)
			rc = do_list(cli, &op, !pretty);
		goto out;
	}

	enum mq_qmp_tier tier = mq_qmp_tier_of(command, args);
	const char *tname = mq_qmp_tier_name(tier);
	char *rargs = mq_qmp_args_redacted(args);
	char *why = NULL;
	struct dump_out dump;
	dump_init(&dump);
	bool keep = false;
	char *detail = NULL;
#define EVENT(outcome, ...)                                                       \
	do {                                                                      \
		char *x_ = xasprintf(__VA_ARGS__);                                 \
		detail = xasprintf("command=%s tier=%s args=%s%s%s", command, tname, rargs, *x_ ? ": " : "", x_); \
		mq_vmop_event(cli, &op, "qmp", outcome, detail);                   \
		free(detail);                                                     \
		free(x_);                                                         \
	} while (0)

	if (tier == MQ_QMP_TIER_DANGEROUS && !danger) {
		EVENT("refused", "dangerous command without --allow-dangerous");
		mq_cli_err(cli, "refusing qmp command '%s' on vm '%s': it is in the dangerous tier (it can crash the guest "
			   "or bypass maqet); pass --allow-dangerous to run it",
			   command, name);
		rc = MQ_EXIT_FAILURE;
		goto out_file;
	}
	if (tier == MQ_QMP_TIER_MEMORY_DUMP) {
		char *shown = NULL;
		rc = prepare_output(cli, &op, command, args, &dump, &shown, &why);
		if (shown) { /* with the resolved path of the caller's file */
			free(rargs);
			rargs = shown;
		}
		if (rc >= 0) {
			EVENT("refused", "%s", why);
			goto out_file;
		}
	}
	rc = mq_vmop_connect(cli, &op);
	if (rc >= 0) {
		EVENT("failed", "cannot connect to the control monitor");
		goto out_file;
	}
	struct mq_strv names = MQ_STRV_INIT;
	struct mq_error *err = NULL;
	if (query_commands(&op, &names, &err) < 0) {
		EVENT("failed", "%s", err ? err->msg : "query-commands failed");
		mq_error_prefix(&err, "cannot run qmp command '%s' on vm '%s'", command, name);
		rc = mq_cli_fail(cli, err);
		goto out_file;
	}
	bool known = mq_strv_contains(&names, command);
	mq_strv_clear(&names);
	if (!known) {
		EVENT("refused", "unknown command");
		mq_cli_err(cli, "cannot run qmp command '%s' on vm '%s': this qemu has no such command (see 'maqet qmp %s "
			   "--list')",
			   command, name, name);
		rc = MQ_EXIT_FAILURE;
		goto out_file;
	}
	if (tier == MQ_QMP_TIER_DANGEROUS)
		mq_cli_err(cli, "warning: running dangerous qmp command '%s' on vm '%s' (--allow-dangerous)", command, name);
	else if (tier == MQ_QMP_TIER_PRIVILEGED)
		mq_cli_err(cli, "warning: '%s' is a privileged qmp command; it changes vm '%s'", command, name);

	enum mq_phase before = mq_phase_get(op.rec);
	bool stop = mq_qmp_is_stop(command);
	if (stop) {
		/* Intended before it is sent: a watch sees phase stopping and
		 * calls the exit intended, and the hold keeps it down. */
		char *d = xasprintf("'%s' from 'maqet qmp'; held until 'maqet start %s'", command, name);
		rc = mq_vmop_record(cli, &op, MQ_PHASE_EV_STOP_BEGIN, NULL, 1, false, "stop", "begin", d, &err);
		free(d);
		if (rc < 0) {
			EVENT("refused", "%s", err ? err->msg : "cannot record the stop");
			mq_error_prefix(&err, "cannot run qmp command '%s' on vm '%s'", command, name);
			rc = mq_cli_fail(cli, err);
			goto out_file;
		}
	}
	json_object *ret = NULL;
	char *eclass = NULL;
	int r = 0;
	if (dump.via_fd) {
		json_object *ga = json_object_new_object();
		json_object_object_add(ga, "fdname", json_object_new_string(DUMP_FDNAME));
		r = mq_vmop_exec_fd(&op, "getfd", ga, dump.fd, NULL, NULL, &err);
		json_object_put(ga);
	}
	if (r == 0)
		r = mq_vmop_exec(&op, command, args, &ret, &eclass, &err);
	if (dump.via_fd && r < 0 && op.q) { /* QEMU keeps the fd only when the dump took it */
		json_object *ca = json_object_new_object();
		json_object_object_add(ca, "fdname", json_object_new_string(DUMP_FDNAME));
		(void)mq_vmop_exec(&op, "closefd", ca, NULL, NULL, NULL);
		json_object_put(ca);
	}
	if (r == 0 && dump.privfile)
		r = dump_collect(&dump, &err);
	if (r < 0 && !(stop && strcmp(command, "quit") == 0 && r == -ECONNRESET)) {
		EVENT("failed", "%s", err ? err->msg : "?");
		if (stop) {
			struct mq_phase_ctx ctx = { .resume_phase = before, .error = err ? err->msg : "qmp command failed" };
			(void)mq_vmop_record(cli, &op, MQ_PHASE_EV_STOP_FAIL, &ctx, 0, true, "stop", "failed",
					     "the qmp command failed; hold released", NULL);
		}
		mq_error_prefix(&err, "qmp command '%s' on vm '%s' failed", command, name);
		rc = mq_cli_fail(cli, err);
		free(eclass);
		json_object_put(ret); /* a dump that could not be copied */
		goto out_file;
	}
	mq_error_free(err);
	err = NULL;
	EVENT("ok", "%s", "");
	print_json(ret, pretty);
	json_object_put(ret);
	rc = MQ_EXIT_OK;
	keep = true; /* the output, if any */
	if (stop)
		rc = finish_stop(cli, &op, command, before);
	else if (strcmp(command, "stop") == 0 || strcmp(command, "cont") == 0)
		(void)mq_vmop_pause(cli, &op, strcmp(command, "stop") == 0, false);
out_file:
	dump_finish(&dump, keep);
#undef EVENT
	free(why);
	free(rargs);
out:
	json_object_put(args);
	mq_vmop_close(&op);
out_pos:
	mq_strv_clear(&pos);
	return rc;
}
