/* maqet inspect NAME [-o json|yaml]: everything maqet knows about one VM. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli/vmrec.h"
#include "reconciler/argv.h"
#include "reconciler/host.h"
#include "reconciler/phase.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define INSPECT_EVENTS 10

static int run_inspect(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_inspect = {
	.name = "inspect",
	.summary = "show a VM's recorded spec, QEMU argv, paths, phase and last events",
	.usage = "usage: maqet inspect NAME [-o yaml|json] [--state-dir DIR]\n"
		 "\n"
		 "Print what maqet recorded about a VM: the canonical spec and its hash,\n"
		 "the exact QEMU command line (rebuilt from the recorded spec and the\n"
		 "accelerator recorded at its last start), its paths (sockets, logs,\n"
		 "disks, each with whether it exists), the phase with its reason, the\n"
		 "restart bookkeeping and the last " "10 events.\n"
		 "\n"
		 "  -o, --output FORMAT  yaml (default) or json\n",
	.run = run_inspect,
};

static json_object *jstr(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *jpath(const char *p)
{
	json_object *o = json_object_new_object();
	struct stat st;
	json_object_object_add(o, "path", json_object_new_string(p));
	json_object_object_add(o, "exists", json_object_new_boolean(lstat(p, &st) == 0));
	return o;
}

/* YAML emitter for the json tree (block style, strings always quoted as JSON
 * strings, which YAML reads as double-quoted scalars). */
static void yaml_scalar(struct mq_strbuf *sb, json_object *v)
{
	if (!v)
		mq_strbuf_adds(sb, "null");
	else
		mq_strbuf_adds(sb, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static bool yaml_is_block(json_object *v)
{
	if (json_object_is_type(v, json_type_object))
		return json_object_object_length(v) > 0;
	if (json_object_is_type(v, json_type_array))
		return json_object_array_length(v) > 0;
	return false;
}

static void yaml_emit(struct mq_strbuf *sb, json_object *v, int indent);

static void yaml_value_after_key(struct mq_strbuf *sb, json_object *v, int indent)
{
	if (yaml_is_block(v)) {
		mq_strbuf_addc(sb, '\n');
		yaml_emit(sb, v, indent + 2);
	} else {
		mq_strbuf_addc(sb, ' ');
		yaml_scalar(sb, v);
		mq_strbuf_addc(sb, '\n');
	}
}

static void yaml_emit(struct mq_strbuf *sb, json_object *v, int indent)
{
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val) {
			mq_strbuf_addf(sb, "%*s%s:", indent, "", key);
			yaml_value_after_key(sb, val, indent);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *e = json_object_array_get_idx(v, i);
			mq_strbuf_addf(sb, "%*s-", indent, "");
			yaml_value_after_key(sb, e, indent);
		}
	} else {
		mq_strbuf_addf(sb, "%*s", indent, "");
		yaml_scalar(sb, v);
		mq_strbuf_addc(sb, '\n');
	}
}

static const char *phase_reason(const struct mq_vm_record *r, enum mq_phase ph)
{
	if (r->hold && !mq_phase_is_up(ph))
		return "held by 'maqet stop' (until 'maqet start')";
	if (r->last_error)
		return r->last_error;
	if (r->exit_reason)
		return r->exit_reason;
	return NULL;
}

static int run_inspect(struct mq_cli *cli, int argc, char **argv)
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
			if (strcmp(optarg, "json") == 0)
				json = true;
			else if (strcmp(optarg, "yaml") == 0)
				json = false;
			else
				return mq_cli_usage_error(cli, &mq_cmd_inspect, "unknown output format '%s' (use yaml or json)",
							  optarg);
			break;
		case 'S':
			if (mq_cli_state_dir_option(cli, &mq_cmd_inspect, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case 'h':
			fputs(mq_cmd_inspect.usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, &mq_cmd_inspect, "invalid option");
		}
	}
	if (optind >= argc)
		return mq_cli_usage_error(cli, &mq_cmd_inspect, "no vm name given");
	if (optind + 1 < argc)
		return mq_cli_usage_error(cli, &mq_cmd_inspect, "too many arguments");
	const char *name = argv[optind];
	struct mq_cli_vm vm;
	int rc = mq_cli_vm_load(cli, name, "inspect", &vm);
	if (rc)
		return rc;
	const struct mq_vm_record *r = vm.rec;
	enum mq_phase ph = mq_phase_get(r);
	struct mq_error *err = NULL;

	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", jstr(r->name));
	json_object_object_add(o, "source", jstr(r->source));
	json_object_object_add(o, "spec_hash", jstr(r->spec_hash));
	json_object_object_add(o, "spec", json_tokener_parse(r->spec_json));
	json_object_object_add(o, "desired", jstr(r->desired));

	json_object *p = json_object_new_object();
	json_object_object_add(p, "phase", json_object_new_string(mq_phase_name(ph)));
	json_object_object_add(p, "reason", jstr(phase_reason(r, ph)));
	json_object_object_add(p, "hold", json_object_new_boolean(r->hold));
	json_object_object_add(p, "last_error", jstr(r->last_error));
	json_object_object_add(p, "pid", r->pid ? json_object_new_int64(r->pid) : NULL);
	json_object_object_add(p, "start_time", r->start_time ? json_object_new_uint64(r->start_time) : NULL);
	json_object_object_add(p, "started_at", r->started_at ? json_object_new_int64(r->started_at) : NULL);
	json_object_object_add(p, "updated_at", json_object_new_int64(r->updated_at));
	json_object_object_add(o, "status", p);

	json_object *rs = json_object_new_object();
	json_object_object_add(rs, "policy", NULL);
	json_object *pol = NULL;
	json_object *spec_j = json_object_object_get(o, "spec");
	if (spec_j && json_object_object_get_ex(spec_j, "restart", &pol))
		json_object_object_add(rs, "policy", json_object_get(pol));
	json_object_object_add(rs, "count", json_object_new_int(r->restart_count));
	json_object_object_add(rs, "backoff_until", r->backoff_until ? json_object_new_int64(r->backoff_until) : NULL);
	json_object_object_add(rs, "exit_reason", jstr(r->exit_reason));
	json_object_object_add(o, "restart", rs);

	/* The argv as maqet runs it: the recorded accel of the last start, else
	 * what this host would pick now. */
	const char *accel = r->accel;
	const char *accel_from = "recorded";
	if (!accel) {
		accel = mq_accel_resolve(vm.spec->accel);
		accel_from = "host";
	}
	struct mq_strv av = MQ_STRV_INIT;
	json_object_object_add(o, "accel", json_object_new_string(accel));
	json_object_object_add(o, "accel_from", json_object_new_string(accel_from));
	if (mq_qemu_build_argv(vm.spec, &vm.paths, accel, cli->disk_dir, &av, &err) == 0) {
		json_object *a = json_object_new_array();
		for (size_t i = 0; i < av.n; i++)
			json_object_array_add(a, json_object_new_string(av.v[i]));
		json_object_object_add(o, "argv", a);
	} else {
		json_object_object_add(o, "argv", NULL);
		json_object_object_add(o, "argv_error", jstr(err ? err->msg : NULL));
		err = mq_error_free(err);
	}
	mq_strv_clear(&av);

	json_object *paths = json_object_new_object();
	json_object_object_add(paths, "qmp", jpath(vm.paths.qmp));
	json_object_object_add(paths, "events", jpath(vm.paths.qmp_ev));
	if (vm.spec->serial == MQ_SERIAL_LOG) {
		json_object_object_add(paths, "console", jpath(vm.paths.console));
		json_object_object_add(paths, "serial_log", jpath(vm.paths.serial_log));
	}
	json_object_object_add(paths, "qemu_log", jpath(vm.paths.qemu_log));
	json_object *disks = json_object_new_array();
	for (size_t i = 0; i < vm.spec->n_storage; i++) {
		const struct mq_storage *s = &vm.spec->storage[i];
		char *ip = s->type == MQ_STORAGE_VIRTFS ? xstrdup(s->path ? s->path : "")
							: mq_storage_image_path(vm.spec, s, cli->disk_dir);
		json_object *d = jpath(ip);
		json_object_object_add(d, "name", json_object_new_string(s->name));
		json_object_object_add(d, "type", json_object_new_string(s->type == MQ_STORAGE_VIRTFS ? "virtfs"
									 : s->type == MQ_STORAGE_RAW  ? "raw"
												      : "qcow2"));
		json_object_array_add(disks, d);
		free(ip);
	}
	json_object_object_add(paths, "disks", disks);
	json_object_object_add(o, "paths", paths);

	struct mq_event **ev = NULL;
	size_t n = 0;
	json_object *evs = json_object_new_array();
	if (mq_store_event_list(cli->store, name, INSPECT_EVENTS, &ev, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_new_object();
			json_object_object_add(e, "time", json_object_new_int64(ev[i]->time));
			json_object_object_add(e, "action", jstr(ev[i]->action));
			json_object_object_add(e, "outcome", jstr(ev[i]->outcome));
			json_object_object_add(e, "user", jstr(ev[i]->user));
			json_object_object_add(e, "git_commit", jstr(ev[i]->git_commit));
			json_object_object_add(e, "detail", jstr(ev[i]->detail));
			json_object_array_add(evs, e);
		}
		mq_event_list_free(ev, n);
	} else {
		mq_cli_err(cli, "cannot list the events of vm '%s': %s", name, err && err->msg ? err->msg : "error");
		err = mq_error_free(err);
	}
	json_object_object_add(o, "events", evs);

	if (json) {
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		struct mq_strbuf sb = MQ_STRBUF_INIT;
		yaml_emit(&sb, o, 0);
		fputs(sb.buf ? sb.buf : "", stdout);
		mq_strbuf_release(&sb);
	}
	json_object_put(o);
	mq_cli_vm_release(&vm);
	return MQ_EXIT_OK;
}
