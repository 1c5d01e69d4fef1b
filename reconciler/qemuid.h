/* qemuid.h - is this process that VM's QEMU?  Identity beyond pid + start
 * time: QEMU's command line names the VM's QMP socket in this state's
 * runtime dir (`-chardev socket,id=mqmp,path=<rt>/<name>.qmp,...`), which no
 * other VM, no other state dir and no other program has.
 *
 * Used before adopting a QEMU left by an interrupted start (no pid recorded
 * yet, or one recorded but never confirmed running), and before signalling a
 * recorded pid.  Reads /proc only; never signals.
 */
#ifndef MQ_QEMUID_H
#define MQ_QEMUID_H

#include <stdbool.h>

#include "reconciler/proc.h"
#include "util/strv.h"

/* The command line of pid as a string vector (NUL-separated in
 * /proc/PID/cmdline).  0 or -errno (-ENOENT when gone). */
int mq_proc_cmdline(pid_t pid, struct mq_strv *out);

/* True when argv (a QEMU command line) names qmp_path as maqet's main QMP
 * socket. */
bool mq_qemu_argv_names(const struct mq_strv *argv, const char *qmp_path);

/* True when ref is alive (pid + start time) and its command line names
 * qmp_path as maqet's main QMP socket. */
bool mq_qemu_is_vm(const struct mq_pidref *ref, const char *qmp_path);

/* Find a live QEMU of this VM: `hint` first (a recorded pid, may be NULL or
 * pid 0), then every process of this user in /proc whose command line names
 * qmp_path.  Returns 1 with *out (and its command line in *argv when not
 * NULL), 0 when there is none. */
int mq_qemu_find(const char *qmp_path, const struct mq_pidref *hint, struct mq_pidref *out, struct mq_strv *argv);

#endif
