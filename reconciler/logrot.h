/* logrot.h - the size cap of a VM's logs while QEMU writes them.
 *
 * Each log in the runtime dir (<name>.serial.log, <name>.qemu.log) is kept
 * at or under a cap (8 MiB by default, MAQET_LOG_CAP=SIZE to change it, e.g.
 * "64K", "32M"), with one older generation in "<log>.1".  At VM start a big
 * log is renamed (vmpaths.h mq_log_rotate).  While QEMU runs it holds the
 * log open with O_APPEND (the serial log through the chardev's
 * logappend=on, its own output through the fd maqet opened), so a running
 * VM's log is rotated by copy-truncate: its content is copied to "<log>.1"
 * (a temporary file renamed over the older generation), then the live file
 * is truncated to zero and QEMU's next append lands at the new end.  What
 * QEMU writes in the instant between the last copy and the truncation is
 * lost: the price of not restarting QEMU.  Two rotators of one log (watch's
 * timer, `maqet logs`, `maqet apply`, `doctor --fix`) are serialized by an
 * flock on the live log; the loser skips.
 *
 * `maqet watch` checks every log of its runtime dir every
 * MQ_LOGROT_INTERVAL_MS (a readdir and an fstat per log; the copy is bounded
 * by twice the cap and done with copy_file_range in the kernel).
 */
#ifndef MQ_LOGROT_H
#define MQ_LOGROT_H

#include <stdbool.h>

#include "reconciler/loop.h"

#define MQ_LOGROT_INTERVAL_MS 1000

/* The cap in bytes: MAQET_LOG_CAP when set and valid (at least 4 KiB),
 * else MQ_LOG_CAP (vmpaths.h). */
unsigned long long mq_log_cap(void);

/* Copy-truncate `path` when it is a regular file of ours over `cap` bytes.
 * Returns 1 when rotated, 0 when not needed (absent, small, not ours,
 * another rotator busy), -errno on failure. */
int mq_log_rotate_live(const char *path, unsigned long long cap);

/* A log file name of the runtime dir (".serial.log" / ".qemu.log")? */
bool mq_log_is_vm_log(const char *name);

/* Every VM log of `runtime_dir` over `cap`.  Calls fail(ud, path, -errno)
 * for each failure (fail may be NULL).  Returns the number rotated. */
typedef void (*mq_logrot_fail_fn)(void *ud, const char *path, int error);
int mq_log_rotate_dir(const char *runtime_dir, unsigned long long cap, mq_logrot_fail_fn fail, void *ud);

/* Watch's timer: mq_log_rotate_dir every MQ_LOGROT_INTERVAL_MS.  log(ud, vm,
 * action, outcome, detail) reports a failure once per log and cause. */
struct mq_logrot;
typedef void (*mq_logrot_log_fn)(void *ud, const char *vm, const char *action, const char *outcome,
				 const char *detail);
struct mq_logrot *mq_logrot_new(struct mq_loop *l, const char *runtime_dir, mq_logrot_log_fn log, void *ud);
struct mq_logrot *mq_logrot_free(struct mq_logrot *r);

#endif
