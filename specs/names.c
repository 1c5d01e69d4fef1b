/* names.c - enum <-> manifest spelling. */
#include <string.h>

#include "specs/names.h"
#include "util/xalloc.h"

const char *const mq_desired_names[2] = { "running", "stopped" };
const char *const mq_accel_names[3] = { "auto", "kvm", "tcg" };
const char *const mq_serial_names[2] = { "log", "none" };
const char *const mq_restart_names[3] = { "on-failure", "always", "never" };
const char *const mq_storage_type_names[3] = { "qcow2", "raw", "virtfs" };
const char *const mq_iface_names[5] = { "virtio", "sata", "ide", "scsi", "none" };
const char *const mq_security_models[5] = { "none", "passthrough", "mapped", "mapped-xattr", "mapped-file" };

_Static_assert(MQ_DESIRED_STOPPED == 1 && MQ_ACCEL_TCG == 2 && MQ_SERIAL_NONE == 1 && MQ_RESTART_NEVER == 2 &&
		       MQ_STORAGE_VIRTFS == 2 && MQ_IFACE_NONE == 4,
	       "the name tables above follow the enums of spec.h");

#define ENUM_STR(arr, v) ((size_t)(v) < MQ_ARRAY_SIZE(arr) ? (arr)[v] : "unknown")

const char *mq_desired_str(enum mq_desired d) { return ENUM_STR(mq_desired_names, d); }
const char *mq_accel_str(enum mq_accel a) { return ENUM_STR(mq_accel_names, a); }
const char *mq_restart_str(enum mq_restart r) { return ENUM_STR(mq_restart_names, r); }
const char *mq_storage_type_str(enum mq_storage_type t) { return ENUM_STR(mq_storage_type_names, t); }
const char *mq_iface_str(enum mq_iface i) { return ENUM_STR(mq_iface_names, i); }
/* As the canonical form always wrote it: anything but "none" is the log. */
const char *mq_serial_str(enum mq_serial s) { return s == MQ_SERIAL_NONE ? "none" : "log"; }

int mq_name_index(const char *s, const char *const *names, size_t n, int dflt)
{
	if (!s)
		return dflt;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return dflt;
}
