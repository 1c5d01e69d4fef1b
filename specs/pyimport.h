/* pyimport.h - one vm of the Python maqet -> one maqet manifest.
 *
 * Public (used by cli/cmd-import.c); knows nothing of SQLite (the rows come
 * from state/pydb.h) nor of the terminal.  The Python maqet kept a vm's
 * config as JSON (instances.db config_data) or as the YAML file it was added
 * from (config_path).  Conversion:
 *   - `name:` is the row's name, `state:` running when its last status was
 *     "running", stopped otherwise;
 *   - every key of maqet's fields table is copied as written (maqet then
 *     validates it strictly);
 *   - qcow2/raw storage without `file:` gets the file the Python maqet used,
 *     /tmp/maqet-<id>-<storage name>.<type>; relative `file:`/`path:` values
 *     are made absolute against the directory of the config file;
 *   - every other key (log_file, enable_kvm, machine_type, cdrom, ...) is
 *     returned in `ignored` and written as a comment at the end;
 *   - the result is validated like any manifest before it is returned.
 */
#ifndef MQ_SPECS_PYIMPORT_H
#define MQ_SPECS_PYIMPORT_H

#include <stddef.h>

#include "util/strv.h"

struct mq_pyconv_in {
	const char *name;        /* maqet name (already checked) */
	const char *id;          /* the Python vm id, for default disk names */
	const char *status;      /* last status, or NULL */
	const char *json;        /* config_data, or NULL */
	const char *yaml;        /* or the config file's text */
	size_t yaml_len;
	const char *yaml_file;   /* displayed name of that file */
	const char *config_dir;  /* directory relative paths resolve against, or NULL */
	const char *header;      /* comment lines (without '#') put at the top */
	const char *out_file;    /* where it will be written (for validation messages) */
	const char *out_dir;
};

struct mq_pyconv_out {
	char *yaml;              /* the manifest */
	struct mq_strv ignored;  /* "key: value" of every key maqet does not read */
	struct mq_strv notes;    /* other things the user should know */
};

/* Returns 0 and fills out, or -EINVAL and *why (caller frees) saying why this
 * vm cannot be converted. */
int mq_pyimport_convert(const struct mq_pyconv_in *in, struct mq_pyconv_out *out, char **why);
void mq_pyconv_out_release(struct mq_pyconv_out *o);

#endif
