/* vmpaths.h - where a VM's runtime files and default disk images live.
 *
 * Per-VM runtime files, all under the short runtime dir (mode 0700):
 *   <rt>/<name>.qmp         QMP control socket used by maqet commands (0600)
 *   <rt>/<name>.ev          second QMP monitor, for watch mode's event stream (0600)
 *   <rt>/<name>.serial.log  serial console (when serial: log)
 *   <rt>/<name>.qemu.log    QEMU's stdout + stderr
 */
#ifndef MQ_VMPATHS_H
#define MQ_VMPATHS_H

#include "specs/spec.h"

struct mq_vm_paths {
	char *qmp;
	char *qmp_ev;
	char *serial_log;
	char *qemu_log;
};
void mq_vm_paths_init(struct mq_vm_paths *p, const char *runtime_dir, const char *name);
void mq_vm_paths_release(struct mq_vm_paths *p);

/* Image path of a qcow2/raw storage entry: s->file, or the default
 * <disk_dir>/<vm>-<storage>.<qcow2|raw>.  Caller frees. */
char *mq_storage_image_path(const struct mq_spec *spec, const struct mq_storage *s, const char *disk_dir);

#endif
