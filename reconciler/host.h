/* host.h - what the host offers: KVM, the accelerator to use, the QEMU binary.
 *
 * These are the only host checks of the QEMU driver; argv building takes
 * their answers as parameters.
 */
#ifndef MQ_HOST_H
#define MQ_HOST_H

#include <stdbool.h>

#include "specs/spec.h"
#include "util/error.h"

/* /dev/kvm opens read-write (checked once per process). */
bool mq_kvm_usable(void);
/* "kvm" or "tcg" for a spec's accel setting (auto -> kvm when usable). */
const char *mq_accel_resolve(enum mq_accel a);

/* Resolve `binary` through PATH and run `<binary> --version`.  *version gets
 * the first output line.  A missing binary gives -ENOENT with "qemu binary 'X'
 * not found (install qemu-system-x86 or set 'binary:' in the manifest)".
 * resolved/version may be NULL; untouched on failure. */
int mq_qemu_check_binary(const char *binary, char **resolved, char **version, struct mq_error **err);

/* The same check with a per-process cache of successes: a binary that passed
 * once is not run again while the resolved file is the same (same device,
 * inode, size and mtime).  Failures are not cached.  *resolved (may be NULL)
 * gets a new string. */
int mq_qemu_check_binary_cached(const char *binary, char **resolved, struct mq_error **err);
/* Whether the cache holds a success for binary (no process is run). */
bool mq_qemu_binary_known_good(const char *binary);
/* Record binary as good without running it: a worker just started a QEMU
 * from it (the check ran in that worker; its cache went with it). */
void mq_qemu_binary_remember(const char *binary);
/* Forget the cache (tests). */
void mq_qemu_binary_cache_clear(void);

#endif
