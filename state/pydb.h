/* pydb.h - reading the Python maqet's instances.db, read-only.
 *
 * The Python maqet kept one row per vm in table `vm_instances` (name,
 * config_path, config_data JSON, status, pid, ...).  mq_pydb_read() opens
 * the file with SQLITE_OPEN_READONLY (URI mode=ro: no journal, no -wal or
 * -shm is created, nothing is written) and returns every row, columns looked
 * up by name so older and newer schemas both read; a missing column reads
 * as NULL.
 */
#ifndef MQ_STATE_PYDB_H
#define MQ_STATE_PYDB_H

#include <stddef.h>

#include "util/error.h"

struct mq_pyvm {
	char *id;          /* `id` column as text, or the rowid */
	char *name;
	char *config_path; /* or NULL */
	char *config_data; /* JSON text, or NULL */
	char *status;      /* or NULL */
	long long pid;     /* 0 = none */
};

struct mq_pyvms {
	struct mq_pyvm *v;
	size_t n;
};

/* Returns 0, or a negative errno with err set ("cannot read python maqet
 * database 'PATH': ..."). */
int mq_pydb_read(const char *path, struct mq_pyvms *out, struct mq_error **err);
void mq_pyvms_release(struct mq_pyvms *l);

#endif
