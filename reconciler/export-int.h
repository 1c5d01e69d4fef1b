/* export-int.h - internals shared by export.c and the three engines
 * (export-nomad.c, export-incus.c, export-kubevirt.c).  Not for other modules. */
#ifndef MQ_EXPORT_INT_H
#define MQ_EXPORT_INT_H

#include <json-c/json.h>

#include "reconciler/export.h"
#include "specs/fields.h"
#include "util/strv.h"

/* The translation of one VM under way. */
struct mq_export_ctx {
	const struct mq_spec *spec;
	const char *disk_dir;
	const char *key;               /* the manifest key being mapped */
	struct mq_export_report *rep;
	json_object *doc;              /* the document (owned by the ctx until handed out) */
	json_object *p[8];             /* engine-defined places inside doc (borrowed) */
	struct mq_strv argv;           /* engine scratch: QEMU tokens collected over several keys */
	int error;                     /* set by a mapping that cannot produce a document */
	char *errmsg;
};

typedef void mq_export_key_fn(struct mq_export_ctx *x);
struct mq_export_key {
	const char *key;
	mq_export_key_fn *fn;
};
struct mq_export_engine_ops {
	void (*init)(struct mq_export_ctx *x);    /* build the skeleton of doc */
	void (*finish)(struct mq_export_ctx *x);  /* drop empty places, ... (may be NULL) */
	const struct mq_export_key *keys;
	size_t n_keys;
};
extern const struct mq_export_engine_ops mq_export_nomad_ops, mq_export_incus_ops, mq_export_kubevirt_ops;

/* Append a row for the current key (item may be NULL). */
void mq_export_row(struct mq_export_ctx *x, enum mq_export_fidelity f, const char *item, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Refuse the VM: mq_export_vm() fails with -EINVAL and this message. */
void mq_export_fail(struct mq_export_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* json-c shorthands */
json_object *mq_xobj(json_object *parent, const char *key);    /* new object added under key */
json_object *mq_xarr(json_object *parent, const char *key);    /* new array added under key */
void mq_xstr(json_object *o, const char *key, const char *val);
void mq_xint(json_object *o, const char *key, int64_t val);
void mq_xbool(json_object *o, const char *key, bool val);
void mq_xpush_str(json_object *arr, const char *val);

/* Image path of a disk (its file, or the default location under disk_dir). */
char *mq_export_disk_path(const struct mq_export_ctx *x, const struct mq_storage *s);
/* Seconds from milliseconds, rounded up; *exact when no rounding happened. */
uint64_t mq_export_ms_to_s(uint64_t ms, bool *exact);

#endif
