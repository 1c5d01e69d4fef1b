/* export.h - translate validated specs into another engine's VM definition
 * (`maqet export nomad|incus|kubevirt`), with a lossiness report.
 *
 * Library code: nothing here prints or writes files.  mq_export_vm() turns
 * one spec into one document (a json-c object) and appends to the report one
 * row or more per manifest key -- every key of the specs field table
 * (mq_spec_field_key()), in table order, present or not -- saying whether the
 * key maps exactly, approximately (and how) or is lost (and why).
 *
 * Each engine (export-nomad.c, export-incus.c, export-kubevirt.c) is a table
 * of { key, mapping function }.  A manifest key without a row in an engine's
 * table is refused at export time (-ENOSYS, "no export decision for key ...")
 * and fails the unit test that walks every engine against the field table
 * (tests/unit/test-export.c), so a new manifest key cannot be exported
 * silently (and deleting a row leaves its mapping function unused, a compile
 * error under -Werror).  A mapping function that adds no row is refused at
 * export time the same way.
 */
#ifndef MQ_EXPORT_H
#define MQ_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "specs/spec.h"
#include "util/error.h"
#include "util/strbuf.h"

struct json_object;

enum mq_export_engine { MQ_EXPORT_NOMAD = 0, MQ_EXPORT_INCUS, MQ_EXPORT_KUBEVIRT };
#define MQ_EXPORT_ENGINES 3

/* How well one key (or one item of it: a disk, a forward) carries over. */
enum mq_export_fidelity { MQ_EXPORT_EXACT = 0, MQ_EXPORT_APPROX, MQ_EXPORT_LOST };

struct mq_export_row {
	char *vm;
	char *key;                    /* the manifest key */
	char *item;                   /* a storage name, a forward, ...; NULL for the key as a whole */
	enum mq_export_fidelity fidelity;
	char *note;                   /* how it maps, what is approximated, or why it is lost */
};

struct mq_export_report {
	struct mq_export_row *v;
	size_t n, cap;
};

/* "nomad" | "incus" | "kubevirt" -> engine; 0 or -EINVAL. */
int mq_export_engine_from_str(const char *s, enum mq_export_engine *out);
const char *mq_export_engine_str(enum mq_export_engine e);
/* The file name suffix of one VM's document: ".nomad.json", ".incus.yaml",
 * ".kubevirt.yaml". */
const char *mq_export_suffix(enum mq_export_engine e);
/* True when the engine's documents are YAML (incus, kubevirt). */
bool mq_export_is_yaml(enum mq_export_engine e);
/* "exact" | "approximate" | "lost" */
const char *mq_export_fidelity_str(enum mq_export_fidelity f);

/* One VM -> one document (*doc, caller puts it) and its report rows.
 * `disk_dir` is where disks without a `file` live on this host (the
 * reconciler's default).  Returns 0, or -errno with *err (then nothing is
 * appended to the report and *doc is untouched). */
int mq_export_vm(enum mq_export_engine e, const struct mq_spec *spec, const char *disk_dir,
		 struct json_object **doc, struct mq_export_report *rep, struct mq_error **err);

/* A document as text: pretty JSON for nomad, YAML for incus and kubevirt
 * (no leading "---"); ends with a newline.  Caller frees. */
char *mq_export_render(enum mq_export_engine e, struct json_object *doc);

/* A json-c value as block YAML: maps and lists indented by two spaces,
 * every string double-quoted with JSON escapes (valid YAML 1.1 and 1.2),
 * keys plain when they are [A-Za-z0-9_./-]+ and do not look like another
 * type, empty maps / lists as {} / []. */
void mq_export_yaml(struct mq_strbuf *sb, struct json_object *o);

/* A schedule interval as a 5-field cron expression: exact for divisors of a
 * minute-, hour- or day-based period, else the nearest coarser one
 * (*exact = false).  Caller frees. */
char *mq_export_every_cron(uint64_t every_s, bool *exact);

/* Memory as a quantity: unit "Mi"/"Ki" (Kubernetes) or "MiB"/"KiB" (Incus),
 * whichever divides exactly; bytes rounded up to KiB otherwise. */
char *mq_export_quantity(uint64_t bytes, bool iec_b);

/* A DNS-1123 label from "a-b" (lowercase, [a-z0-9-], at most 63). Caller frees. */
char *mq_export_dns_label(const char *a, const char *b);

/* The first manifest key (mq_spec_field_key order) that engine `e` has no
 * decision for, or NULL when it has one for every key; `stale` gets a key
 * of the engine's table that is not a manifest key (or NULL). */
const char *mq_export_missing_key(enum mq_export_engine e, const char **stale);

void mq_export_report_release(struct mq_export_report *r);
size_t mq_export_report_count(const struct mq_export_report *r, enum mq_export_fidelity f);
/* [{"vm":..,"key":..,"item":..|null,"mapping":"exact|approximate|lost","note":..}, ...] */
struct json_object *mq_export_report_json(const struct mq_export_report *r);

#endif
