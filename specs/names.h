/* names.h - the manifest spelling of every enum value of spec.h.
 *
 * Internal to specs/.  Index i of each table is the enum value i; the
 * public mq_*_str() helpers of spec.h read the same tables, so parsing,
 * the canonical JSON and reading it back all spell values one way.
 */
#ifndef MQ_SPECS_NAMES_H
#define MQ_SPECS_NAMES_H

#include <stddef.h>

#include "specs/spec.h"

extern const char *const mq_desired_names[2];      /* running stopped */
extern const char *const mq_accel_names[3];        /* auto kvm tcg */
extern const char *const mq_serial_names[2];       /* log none */
extern const char *const mq_restart_names[3];      /* on-failure always never */
extern const char *const mq_storage_type_names[3]; /* qcow2 raw virtfs */
extern const char *const mq_iface_names[5];        /* virtio sata ide scsi none */
extern const char *const mq_security_models[5];    /* none passthrough mapped mapped-xattr mapped-file */
#define MQ_SECURITY_MODEL_DEFAULT 3                /* mapped-xattr */

const char *mq_serial_str(enum mq_serial s);

/* Index of `s` in names[0..n), or dflt when s is NULL or not there. */
int mq_name_index(const char *s, const char *const *names, size_t n, int dflt);

#endif
