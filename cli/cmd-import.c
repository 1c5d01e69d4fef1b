/* maqet import: the Python maqet's instances.db -> one manifest per vm. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "specs/pyimport.h"
#include "state/pydb.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/xalloc.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

static int run_import(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_import = {
	.name = "import",
	.summary = "write manifests for the vms of the Python maqet's instances.db",
	.usage = "usage: maqet import --python-db PATH [--config-dir DIR] -o OUTDIR\n"
		 "\n"
		 "Read the Python maqet's database (read-only) and write one manifest per vm\n"
		 "into OUTDIR (created when missing; existing files are never overwritten).\n"
		 "Each gets 'name:', 'state:' from its last status, storage 'file:' where the\n"
		 "Python maqet kept the disk, and its keys maqet does not read as comments\n"
		 "(also listed on stderr).  A vm that cannot be converted is reported with\n"
		 "the reason; the others are still written.  Nothing outside OUTDIR changes.\n"
		 "\n"
		 "  --python-db PATH   the Python maqet's instances.db\n"
		 "  --config-dir DIR   look for config files here when their recorded\n"
		 "                     config_path no longer exists\n"
		 "  -o, --output DIR   where to write the manifests\n"
		 "  -h, --help         show this help\n",
	.run = run_import,
};

/* The maqet spelling of a Python vm name: lowercase, runs of other
 * characters become '-', no leading/trailing '-', at most 63 chars.  NULL
 * when nothing is left. */
static char *maqet_name(const char *py)
{
	size_t n = strlen(py);
	char *s = xcalloc(n + 1, 1);
	size_t w = 0;
	for (size_t i = 0; i < n && w < 63; i++) {
		char c = py[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			s[w++] = c;
		else if (w > 0 && s[w - 1] != '-')
			s[w++] = '-';
	}
	while (w > 0 && s[w - 1] == '-')
		w--;
	s[w] = '\0';
	if (!w) {
		free(s);
		return NULL;
	}
	return s;
}

struct import_ctx {
	struct mq_cli *cli;
	const char *db;
	const char *config_dir;
	const char *outdir;
	struct mq_strv taken;      /* maqet names written or planned */
	struct mq_strv taken_by;   /* the Python name that took it */
	int failed, written;
};

static void vm_fail(struct import_ctx *c, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void vm_fail(struct import_ctx *c, const char *name, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	mq_cli_err(c->cli, "cannot import vm '%s': %s", name, msg);
	free(msg);
	c->failed++;
}

static void import_one(struct import_ctx *c, const struct mq_pyvm *vm)
{
	const char *pyname = vm->name ? vm->name : "";
	if (!vm->name || !*vm->name) {
		vm_fail(c, vm->id, "it has no name");
		return;
	}
	char *name = maqet_name(pyname);
	if (!name) {
		vm_fail(c, pyname, "its name has no letter or digit to make a maqet name of");
		return;
	}
	long t = mq_strv_find(&c->taken, name);
	if (t >= 0) {
		vm_fail(c, pyname, "its maqet name '%s' is already taken by vm '%s' (rename one of them in the "
			"python maqet, or write this one by hand)", name, c->taken_by.v[t]);
		free(name);
		return;
	}
	mq_strv_push(&c->taken, name);
	mq_strv_push(&c->taken_by, pyname);

	char *out_file = xasprintf("%s/%s.yaml", c->outdir, name);
	struct stat st;
	if (lstat(out_file, &st) == 0) {
		vm_fail(c, pyname, "%s already exists (not overwritten; remove it to import again)", out_file);
		goto out;
	}

	/* its config: config_data, else the file at config_path, else that
	 * file's name in --config-dir */
	char *yaml = NULL, *yaml_file = NULL, *cfg_dir = NULL;
	size_t yaml_len = 0;
	const char *json = vm->config_data && *vm->config_data && strcmp(vm->config_data, "null") != 0
				   ? vm->config_data : NULL;
	if (vm->config_path && *vm->config_path) {
		const char *slash = strrchr(vm->config_path, '/');
		const char *base = slash ? slash + 1 : vm->config_path;
		if (stat(vm->config_path, &st) == 0 && S_ISREG(st.st_mode)) {
			yaml_file = xstrdup(vm->config_path);
		} else if (c->config_dir) {
			char *alt = mq_path_join(c->config_dir, base);
			if (stat(alt, &st) == 0 && S_ISREG(st.st_mode))
				yaml_file = alt;
			else
				free(alt);
		}
		char *p = yaml_file ? realpath(yaml_file, NULL) : NULL;
		cfg_dir = p ? mq_path_dirname(p) : mq_path_dirname(vm->config_path);
		free(p);
		if (cfg_dir[0] != '/') {
			free(cfg_dir);
			cfg_dir = NULL;
		}
	}
	if (!json) {
		if (!yaml_file) {
			if (vm->config_path && *vm->config_path)
				vm_fail(c, pyname, "it has no config_data and its config_path '%s' does not exist%s",
					vm->config_path, c->config_dir ? " (nor in --config-dir)" : " (try --config-dir DIR)");
			else
				vm_fail(c, pyname, "it has neither config_data nor config_path");
			goto out_cfg;
		}
		struct mq_error *err = NULL;
		if (mq_read_file(yaml_file, CONFIG_MAX_BYTES, &yaml, &yaml_len, &err) < 0) {
			vm_fail(c, pyname, "%s", err->msg);
			mq_error_free(err);
			goto out_cfg;
		}
	}

	char *pidtxt = vm->pid ? xasprintf(", pid %lld", vm->pid) : xstrdup("");
	char *header = xasprintf("Imported by 'maqet import' from the python maqet database %s\n"
				 "vm '%s' (id %s), last status %s%s\n"
				 "config from %s",
				 c->db, pyname, vm->id ? vm->id : "?", vm->status ? vm->status : "unknown", pidtxt,
				 json ? "its config_data" : yaml_file);
	struct mq_pyconv_in in = {
		.name = name, .id = vm->id ? vm->id : "0", .status = vm->status, .json = json, .yaml = yaml,
		.yaml_len = yaml_len, .yaml_file = yaml_file, .config_dir = cfg_dir, .header = header,
		.out_file = out_file, .out_dir = c->outdir,
	};
	struct mq_pyconv_out o;
	char *why = NULL;
	if (mq_pyimport_convert(&in, &o, &why) < 0) {
		vm_fail(c, pyname, "%s", why);
		free(why);
	} else {
		struct mq_error *err = NULL;
		if (mq_write_file_atomic(out_file, o.yaml, strlen(o.yaml), 0644, &err) < 0) {
			vm_fail(c, pyname, "%s", err->msg);
			mq_error_free(err);
		} else {
			c->written++;
			printf("imported vm '%s' -> %s\n", pyname, out_file);
			if (strcmp(name, pyname) != 0)
				fprintf(stderr, "maqet: vm '%s' is called '%s' in maqet (names are [a-z0-9-])\n", pyname,
					name);
			for (size_t i = 0; i < o.ignored.n; i++) {
				char *one = xstrdup(o.ignored.v[i]);
				for (char *p = one; *p; p++)
					if (*p == '\n')
						*p = ' ';
				fprintf(stderr, "maqet: vm '%s': key ignored by the python maqet, kept as a comment: %s\n",
					pyname, one);
				free(one);
			}
			for (size_t i = 0; i < o.notes.n; i++)
				fprintf(stderr, "maqet: vm '%s': %s\n", pyname, o.notes.v[i]);
			if (vm->status && strcmp(vm->status, "running") == 0)
				fprintf(stderr, "maqet: vm '%s' was running under the python maqet%s: stop it there "
					"before 'maqet apply', or both will use its disks\n", pyname, pidtxt);
		}
		mq_pyconv_out_release(&o);
	}
	free(header);
	free(pidtxt);
out_cfg:
	free(yaml);
	free(yaml_file);
	free(cfg_dir);
out:
	free(out_file);
	free(name);
}

static int run_import(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "python-db", required_argument, NULL, 'p' },
		{ "config-dir", required_argument, NULL, 'c' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db = NULL, *cdir = NULL, *outdir = NULL;
	int ch;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			db = optarg;
			break;
		case 'c':
			cdir = optarg;
			break;
		case 'o':
			outdir = optarg;
			break;
		case 'h':
			fputs(mq_cmd_import.usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, &mq_cmd_import, "invalid option");
		}
	}
	if (optind < argc)
		return mq_cli_usage_error(cli, &mq_cmd_import, "unexpected argument '%s'", argv[optind]);
	if (!db || !*db)
		return mq_cli_usage_error(cli, &mq_cmd_import, "no database given: pass --python-db PATH");
	if (!outdir || !*outdir)
		return mq_cli_usage_error(cli, &mq_cmd_import, "no output directory given: pass -o OUTDIR");
	struct stat st;
	if (cdir && (stat(cdir, &st) < 0 || !S_ISDIR(st.st_mode))) {
		mq_cli_err(cli, "cannot import: --config-dir '%s' is not a directory", cdir);
		return MQ_EXIT_FAILURE;
	}

	struct mq_pyvms vms = { 0 };
	struct mq_error *err = NULL;
	if (mq_pydb_read(db, &vms, &err) < 0)
		return mq_cli_fail(cli, err);

	char *out = xstrdup(outdir);
	size_t l = strlen(out);
	while (l > 1 && out[l - 1] == '/')
		out[--l] = '\0';
	if (stat(out, &st) < 0) {
		if (mkdir(out, 0755) < 0) {
			char *es = xstrdup(strerror(errno));
			mq_cli_err(cli, "cannot create '%s': %s (its parent must exist)", out, es);
			free(es);
			free(out);
			mq_pyvms_release(&vms);
			return MQ_EXIT_FAILURE;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		mq_cli_err(cli, "cannot import into '%s': not a directory", out);
		free(out);
		mq_pyvms_release(&vms);
		return MQ_EXIT_FAILURE;
	}

	struct import_ctx c = { .cli = cli, .db = db, .config_dir = cdir, .outdir = out };
	/* names that are already valid maqet names claim themselves first, so a
	 * row "Web" cannot take "web" from a row "web" */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < vms.n; i++) {
			char *mn = vms.v[i].name ? maqet_name(vms.v[i].name) : NULL;
			bool exact = mn && strcmp(mn, vms.v[i].name) == 0;
			free(mn);
			if (exact == (pass == 0))
				import_one(&c, &vms.v[i]);
		}
	if (vms.n == 0)
		fprintf(stderr, "maqet: no vms in %s\n", db);
	printf("%d vm%s imported into %s, %d failed\n", c.written, c.written == 1 ? "" : "s", out, c.failed);
	mq_strv_clear(&c.taken);
	mq_strv_clear(&c.taken_by);
	free(out);
	mq_pyvms_release(&vms);
	return c.failed ? MQ_EXIT_FAILURE : MQ_EXIT_OK;
}
