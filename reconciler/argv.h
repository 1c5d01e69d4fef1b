/* argv.h - the QEMU command line of a spec: pure, no host checks.
 *
 * The accelerator is passed in (see host.h mq_accel_resolve()).
 */
#ifndef MQ_ARGV_H
#define MQ_ARGV_H

#include "reconciler/vmpaths.h"
#include "specs/spec.h"
#include "util/error.h"
#include "util/strv.h"

/* Full argv (argv[0] = spec->binary) for spec, without a shell, appended to
 * *argv (untouched on failure).  Order: binary, -name, -machine, -accel, -m,
 * -smp, -display, -vga, storage, network (or -nic none), serial, -monitor
 * none, -parallel none, -S, the two QMP monitors, `arguments`, `args`.
 *
 * -S is always added by maqet: QEMU starts with its CPUs stopped, so that
 * maqet connects and negotiates both monitors before the guest runs a single
 * instruction, then sends `cont` (see qemu.h mq_qemu_start()).
 *
 * `accel` is "kvm" or "tcg"; NULL means the spec's own accel when it is
 * explicit, and is an error (-EINVAL) for accel: auto. */
/* Where QEMU finds the serial log (serial: log): fd 3, opened by maqet. */
#define MQ_SERIAL_LOG_FD 3
#define MQ_SERIAL_LOG_FD_PATH "/dev/fd/3"

int mq_qemu_build_argv(const struct mq_spec *spec, const struct mq_vm_paths *paths, const char *accel,
		       const char *disk_dir, struct mq_strv *argv, struct mq_error **err);

#endif
