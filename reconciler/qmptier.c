#include "reconciler/qmptier.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

struct tier_row {
	const char *name;
	enum mq_qmp_tier tier;
};

/* Sorted by name (bsearch). */
static const struct tier_row tiers[] = {
	{ "block-commit", MQ_QMP_TIER_DANGEROUS },
	{ "block-stream", MQ_QMP_TIER_DANGEROUS },
	{ "block_resize", MQ_QMP_TIER_PRIVILEGED },
	{ "blockdev-add", MQ_QMP_TIER_DANGEROUS },
	{ "blockdev-backup", MQ_QMP_TIER_DANGEROUS },
	{ "blockdev-change-medium", MQ_QMP_TIER_DANGEROUS },
	{ "blockdev-create", MQ_QMP_TIER_DANGEROUS },
	{ "blockdev-del", MQ_QMP_TIER_PRIVILEGED },
	{ "blockdev-mirror", MQ_QMP_TIER_DANGEROUS },
	{ "blockdev-snapshot", MQ_QMP_TIER_DANGEROUS },
	{ "blockdev-snapshot-sync", MQ_QMP_TIER_DANGEROUS },
	{ "chardev-add", MQ_QMP_TIER_DANGEROUS },
	{ "chardev-change", MQ_QMP_TIER_DANGEROUS },
	{ "chardev-remove", MQ_QMP_TIER_PRIVILEGED },
	{ "cont", MQ_QMP_TIER_PRIVILEGED },
	{ "cpu-add", MQ_QMP_TIER_PRIVILEGED },
	{ "device_add", MQ_QMP_TIER_PRIVILEGED },
	{ "device_del", MQ_QMP_TIER_PRIVILEGED },
	{ "drive-backup", MQ_QMP_TIER_DANGEROUS },
	{ "drive-mirror", MQ_QMP_TIER_DANGEROUS },
	{ "dump-guest-memory", MQ_QMP_TIER_MEMORY_DUMP },
	{ "eject", MQ_QMP_TIER_PRIVILEGED },
	{ "human-monitor-command", MQ_QMP_TIER_DANGEROUS },
	{ "inject-nmi", MQ_QMP_TIER_DANGEROUS },
	{ "job-cancel", MQ_QMP_TIER_PRIVILEGED },
	{ "job-dismiss", MQ_QMP_TIER_PRIVILEGED },
	{ "job-finalize", MQ_QMP_TIER_PRIVILEGED },
	{ "memsave", MQ_QMP_TIER_MEMORY_DUMP },
	{ "migrate", MQ_QMP_TIER_DANGEROUS },
	{ "migrate-incoming", MQ_QMP_TIER_DANGEROUS },
	{ "migrate-recover", MQ_QMP_TIER_DANGEROUS },
	{ "migrate-set-capabilities", MQ_QMP_TIER_DANGEROUS },
	{ "migrate-set-parameters", MQ_QMP_TIER_DANGEROUS },
	{ "netdev_add", MQ_QMP_TIER_DANGEROUS },
	{ "netdev_del", MQ_QMP_TIER_PRIVILEGED },
	{ "object-del", MQ_QMP_TIER_PRIVILEGED },
	{ "pmemsave", MQ_QMP_TIER_MEMORY_DUMP },
	{ "qom-set", MQ_QMP_TIER_DANGEROUS },
	{ "quit", MQ_QMP_TIER_PRIVILEGED },
	{ "screendump", MQ_QMP_TIER_MEMORY_DUMP },
	{ "set_link", MQ_QMP_TIER_PRIVILEGED },
	{ "snapshot-delete", MQ_QMP_TIER_PRIVILEGED },
	{ "snapshot-load", MQ_QMP_TIER_DANGEROUS },
	{ "snapshot-save", MQ_QMP_TIER_PRIVILEGED },
	{ "stop", MQ_QMP_TIER_PRIVILEGED },
	{ "system_powerdown", MQ_QMP_TIER_PRIVILEGED },
	{ "system_reset", MQ_QMP_TIER_PRIVILEGED },
	{ "system_wakeup", MQ_QMP_TIER_PRIVILEGED },
	{ "xen-load-devices-state", MQ_QMP_TIER_DANGEROUS },
	{ "xen-save-devices-state", MQ_QMP_TIER_DANGEROUS },
};

static int cmp_row(const void *k, const void *r)
{
	return strcmp(k, ((const struct tier_row *)r)->name);
}

const char *mq_qmp_tier_name(enum mq_qmp_tier t)
{
	switch (t) {
	case MQ_QMP_TIER_PRIVILEGED: return "privileged";
	case MQ_QMP_TIER_MEMORY_DUMP: return "memory-dump";
	case MQ_QMP_TIER_DANGEROUS: return "dangerous";
	case MQ_QMP_TIER_ALLOWED:
	default: return "allowed";
	}
}

/* object-add of a backend that opens host files, or with any file-naming
 * property, bypasses maqet's path checks. */
static bool object_opens_files(json_object *args)
{
	if (!args || !json_object_is_type(args, json_type_object))
		return false;
	json_object *t = NULL;
	if (json_object_object_get_ex(args, "qom-type", &t) && json_object_is_type(t, json_type_string)) {
		const char *s = json_object_get_string(t);
		if (strstr(s, "file") || strcmp(s, "filter-dump") == 0 || strncmp(s, "tls-creds", 9) == 0)
			return true;
	}
	static const char *const file_keys[] = { "mem-path", "file", "filename", "path", "dir" };
	json_object_object_foreach(args, k, v) {
		(void)v;
		for (size_t i = 0; i < sizeof(file_keys) / sizeof(file_keys[0]); i++)
			if (strcmp(k, file_keys[i]) == 0)
				return true;
	}
	return false;
}

enum mq_qmp_tier mq_qmp_tier_of(const char *command, json_object *args)
{
	if (!command)
		return MQ_QMP_TIER_DANGEROUS;
	if (strncmp(command, "x-", 2) == 0 || strncmp(command, "x_", 2) == 0)
		return MQ_QMP_TIER_DANGEROUS; /* experimental, unstable interfaces */
	if (strcmp(command, "object-add") == 0)
		return object_opens_files(args) ? MQ_QMP_TIER_DANGEROUS : MQ_QMP_TIER_PRIVILEGED;
	const struct tier_row *r = bsearch(command, tiers, sizeof(tiers) / sizeof(tiers[0]), sizeof(tiers[0]), cmp_row);
	return r ? r->tier : MQ_QMP_TIER_ALLOWED;
}

const char *mq_qmp_output_arg(const char *command)
{
	if (!command)
		return NULL;
	if (strcmp(command, "dump-guest-memory") == 0)
		return "protocol";
	if (strcmp(command, "pmemsave") == 0 || strcmp(command, "memsave") == 0 || strcmp(command, "screendump") == 0)
		return "filename";
	return NULL;
}

const char *mq_qmp_output_path(const char *command, const char *value)
{
	if (!command || !value)
		return NULL;
	if (strcmp(command, "dump-guest-memory") == 0)
		return strncmp(value, "file:", 5) == 0 ? value + 5 : NULL;
	return value;
}

bool mq_qmp_key_is_secret(const char *key)
{
	static const char *const words[] = { "password", "passwd", "secret", "passphrase", "token", "credential" };
	if (!key)
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(key, words[i]))
			return true;
	return strcasecmp(key, "key") == 0 || strcasecmp(key, "iv") == 0;
}

static json_object *redact(json_object *v)
{
	if (!v)
		return NULL;
	if (json_object_is_type(v, json_type_object)) {
		json_object *o = json_object_new_object();
		json_object_object_foreach(v, k, val) {
			json_object *c = mq_qmp_key_is_secret(k) ? json_object_new_string("<redacted>") : redact(val);
			json_object_object_add(o, k, c);
		}
		return o;
	}
	if (json_object_is_type(v, json_type_array)) {
		json_object *a = json_object_new_array();
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, redact(json_object_array_get_idx(v, i)));
		return a;
	}
	return json_object_get(v);
}

char *mq_qmp_args_redacted(json_object *args)
{
	if (!args)
		return xstrdup("{}");
	json_object *c = redact(args);
	char *s = xstrdup(json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(c);
	return s;
}

bool mq_qmp_is_stop(const char *command)
{
	return command && (strcmp(command, "quit") == 0 || strcmp(command, "system_powerdown") == 0);
}
