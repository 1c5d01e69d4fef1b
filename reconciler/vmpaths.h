/* vmpaths.h - where a VM's runtime files and default disk images live.
 *
 * Per-VM runtime files, all under the short runtime dir (mode 0700):
 *   <rt>/<name>.qmp         QMP control socket used by maqet commands (0600)
 *   <rt>/<name>.ev          second QMP monitor, for watch mode's event stream (0600)
 *   <rt>/<name>.console     serial console socket served by QEMU (when serial: log);
 *                           `maqet console` connects to it (0600)
 *   <rt>/<name>.serial.log  everything the guest wrote to the serial console
 *                           (QEMU's chardev logfile, appended while nobody or
 *                           somebody is attached)
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
	char *console;
};
void mq_vm_paths_init(struct mq_vm_paths *p, const char *runtime_dir, const char *name);
void mq_vm_paths_release(struct mq_vm_paths *p);

/* Image path of a qcow2/raw storage entry: s->file, or the default
 * <disk_dir>/<vm>-<storage>.<qcow2|raw>.  Caller frees. */
/* Log rotation at VM start: a log of more than the cap (logrot.h
 * mq_log_cap, default MQ_LOG_CAP) is renamed to "<log>.1" (replacing an
 * older "<log>.1").  While QEMU runs, logs are rotated by copy-truncate
 * instead (logrot.h).  Returns 1 when rotated, 0 when not needed (absent or
 * small), -errno on failure. */
#define MQ_LOG_CAP (8ull * 1024 * 1024)
int mq_log_rotate(const char *path, unsigned long long cap);

char *mq_storage_image_path(const struct mq_spec *spec, const struct mq_storage *s, const char *disk_dir);

#endif
