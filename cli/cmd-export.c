/* maqet export: manifests as another engine's VM definitions (Nomad, Incus,
 * KubeVirt) with a report of what carries over (reconciler/export.h). */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "reconciler/export.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static int run_export(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_export = {
	.name = "export",
	.summary = "translate manifests to Nomad, Incus or KubeVirt, with a lossiness report",
	.usage = "usage: maqet export nomad|incus|kubevirt -f PATH... [-o DIR|-] [--report table|json] [--strict]\n"
		 "\n"
		 "Validate the manifests like `validate` and write one definition per vm:\n"
		 "  nomad     a job in API JSON ({\"Job\": ...}, qemu driver)  DIR/<vm>.nomad.json\n"
		 "  incus     an instance, fed to `incus create` on stdin    DIR/<vm>.incus.yaml\n"
		 "  kubevirt  a VirtualMachine (kubevirt.io/v1)              DIR/<vm>.kubevirt.yaml\n"
		 "To stdout (the default, or -o -): nomad as one JSON array of jobs, incus and\n"
		 "kubevirt as YAML documents each starting with ---.\n"
		 "For every vm and every manifest key, a report row says whether it maps\n"
		 "exactly, approximately (and how) or is lost (and why); it goes to stderr.\n"
		 "Nothing is written when a manifest is invalid, or with --strict when a\n"
		 "mapping is not exact; files are replaced atomically.\n"
		 "\n"
		 "  -f, --file PATH        manifest file or directory (repeatable)\n"
		 "  -o, --output DIR       write one file per vm into DIR (created if missing); - = stdout\n"
		 "      --report table|json  the report's format on stderr (default table)\n"
		 "      --strict           exit 1 when any mapping is approximate or lost\n"
		 "  -h, --help             show this help\n",
	.run = run_export,
};

static void print_table(const struct mq_export_report *r)
{
	size_t wv = 2, wk = 3, wm = 7;
	for (size_t i = 0; i < r->n; i++) {
		size_t k = strlen(r->v[i].key) + (r->v[i].item ? strlen(r->v[i].item) + 2 : 0);
		if (strlen(r->v[i].vm) > wv)
			wv = strlen(r->v[i].vm);
		if (k > wk)
			wk = k;
		if (strlen(mq_export_fidelity_str(r->v[i].fidelity)) > wm)
			wm = strlen(mq_export_fidelity_str(r->v[i].fidelity));
	}
	fprintf(stderr, "%-*s  %-*s  %-*s  %s\n", (int)wv, "VM", (int)wk, "KEY", (int)wm, "MAPPING", "NOTE");
	for (size_t i = 0; i < r->n; i++) {
		const struct mq_export_row *row = &r->v[i];
		char *k = row->item ? xasprintf("%s[%s]", row->key, row->item) : xstrdup(row->key);
		fprintf(stderr, "%-*s  %-*s  %-*s  %s\n", (int)wv, row->vm, (int)wk, k, (int)wm,
			mq_export_fidelity_str(row->fidelity), row->note);
		free(k);
	}
}

static int run_export(struct mq_cli *cli, int argc, char **argv)
{
	enum { OPT_REPORT = 256, OPT_STRICT };
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "report", required_argument, NULL, OPT_REPORT },
		{ "strict", no_argument, NULL, OPT_STRICT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mq_strv paths = MQ_STRV_INIT;
	const char *outdir = NULL;
	bool json = false, strict = false;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			mq_strv_push(&paths, optarg);
			break;
		case 'o':
			outdir = optarg;
			break;
		case OPT_REPORT:
			if (mq_cli_parse_output(optarg, &json) < 0) {
				mq_strv_clear(&paths);
				return mq_cli_usage_error(cli, &mq_cmd_export, "--report takes table or json, not '%s'",
							  optarg);
			}
			break;
		case OPT_STRICT:
			strict = true;
			break;
		case 'h':
			fputs(mq_cmd_export.usage, stdout);
			mq_strv_clear(&paths);
			return MQ_EXIT_OK;
		default:
			mq_strv_clear(&paths);
			return mq_cli_usage_error(cli, &mq_cmd_export, "invalid option");
		}
	}
	enum mq_export_engine engine;
	if (optind >= argc) {
		mq_strv_clear(&paths);
		return mq_cli_usage_error(cli, &mq_cmd_export, "no engine given: nomad, incus or kubevirt");
	}
	if (mq_export_engine_from_str(argv[optind], &engine) < 0) {
		mq_strv_clear(&paths);
		return mq_cli_usage_error(cli, &mq_cmd_export, "unknown engine '%s' (nomad, incus or kubevirt)",
					  argv[optind]);
	}
	if (outdir && !*outdir) {
		mq_strv_clear(&paths);
		return mq_cli_usage_error(cli, &mq_cmd_export, "-o needs a directory, or - for stdout");
	}
	if (outdir && strcmp(outdir, "-") == 0)
		outdir = NULL;
	if (optind + 1 < argc) {
		mq_strv_clear(&paths);
		return mq_cli_usage_error(cli, &mq_cmd_export, "unexpected argument '%s'", argv[optind + 1]);
	}
	if (!paths.n)
		return mq_cli_usage_error(cli, &mq_cmd_export, "no manifests given: pass -f PATH");

	struct mq_specset *set = NULL;
	int rc = mq_cli_load(cli, &paths, &set);
	mq_strv_clear(&paths);
	if (rc)
		return rc;

	struct mq_export_report rep = { 0 };
	char **texts = xcalloc(set->n ? set->n : 1, sizeof(*texts));
	rc = MQ_EXIT_OK;
	for (size_t i = 0; i < set->n && rc == MQ_EXIT_OK; i++) {
		json_object *doc = NULL;
		struct mq_error *err = NULL;
		if (mq_export_vm(engine, set->specs[i], cli->disk_dir, &doc, &rep, &err) < 0) {
			rc = mq_cli_fail(cli, err);
			break;
		}
		texts[i] = mq_export_render(engine, doc);
		json_object_put(doc);
	}
	if (rc == MQ_EXIT_OK) {
		if (json) {
			json_object *j = mq_export_report_json(&rep);
			fprintf(stderr, "%s\n",
				json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
									  JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(j);
		} else {
			print_table(&rep);
		}
		size_t na = mq_export_report_count(&rep, MQ_EXPORT_APPROX),
		       nl = mq_export_report_count(&rep, MQ_EXPORT_LOST);
		if (!json)
			fprintf(stderr, "export %s: %zu vm%s, %zu rows: %zu exact, %zu approximate, %zu lost\n",
				mq_export_engine_str(engine), set->n, set->n == 1 ? "" : "s", rep.n,
				mq_export_report_count(&rep, MQ_EXPORT_EXACT), na, nl);
		if (strict && (na || nl)) {
			mq_cli_err(cli, "cannot export to %s with --strict: %zu approximate and %zu lost mapping%s (see "
					"the report); nothing written",
				   mq_export_engine_str(engine), na, nl, na + nl == 1 ? "" : "s");
			rc = MQ_EXIT_FAILURE;
		}
	}
	if (rc == MQ_EXIT_OK && outdir) {
		if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
			mq_cli_err(cli, "cannot create directory '%s': %s", outdir, strerror(errno));
			rc = MQ_EXIT_FAILURE;
		}
		for (size_t i = 0; i < set->n && rc == MQ_EXIT_OK; i++) {
			char *base = xasprintf("%s%s", set->specs[i]->name, mq_export_suffix(engine));
			char *path = mq_path_join(outdir, base);
			struct mq_error *err = NULL;
			if (mq_write_file_atomic(path, texts[i], strlen(texts[i]), 0644, &err) < 0)
				rc = mq_cli_fail(cli, err);
			else
				printf("%s\n", path);
			free(path);
			free(base);
		}
	} else if (rc == MQ_EXIT_OK) {
		struct mq_strbuf sb;
		mq_strbuf_init(&sb);
		if (!mq_export_is_yaml(engine))
			mq_strbuf_adds(&sb, "[\n");
		for (size_t i = 0; i < set->n; i++) {
			if (mq_export_is_yaml(engine)) {
				mq_strbuf_adds(&sb, "---\n");
				mq_strbuf_adds(&sb, texts[i]);
			} else {
				mq_strbuf_adds(&sb, texts[i]);
				if (i + 1 < set->n) {
					mq_strbuf_setlen(&sb, sb.len - 1); /* the document's own newline */
					mq_strbuf_adds(&sb, ",\n");
				}
			}
		}
		if (!mq_export_is_yaml(engine))
			mq_strbuf_adds(&sb, "]\n");
		if (fwrite(sb.buf, 1, sb.len, stdout) != sb.len || fflush(stdout) != 0) {
			mq_cli_err(cli, "cannot write to stdout: %s", strerror(errno));
			rc = MQ_EXIT_FAILURE;
		}
		mq_strbuf_release(&sb);
	}
	for (size_t i = 0; i < set->n; i++)
		free(texts[i]);
	free(texts);
	mq_export_report_release(&rep);
	mq_specset_free(set);
	return rc;
}
