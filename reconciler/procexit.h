/* procexit.h - early notice of process exits through the kernel's process
 * events connector (netlink NETLINK_CONNECTOR, CN_IDX_PROC).
 *
 * When QEMU is SIGKILLed, its main thread becomes a zombie within a fraction
 * of a millisecond, but the pidfd only turns readable once the kernel has torn
 * the whole (KVM) process down, which takes tens of milliseconds.  The
 * connector reports the main thread's exit at once.  It is an accelerator
 * only: it needs CAP_NET_ADMIN, messages can be dropped under load, and every
 * exit it reports is re-verified through pid + start time before use; the
 * pidfds remain the authority.
 */
#ifndef MQ_PROCEXIT_H
#define MQ_PROCEXIT_H

#include <stddef.h>
#include <sys/types.h>

/* Subscribe; returns a non-blocking CLOEXEC fd, or -errno (-EPERM without
 * CAP_NET_ADMIN, -EPROTONOSUPPORT without the connector). */
int mq_procexit_open(void);
/* Drain pending messages; append the pids of exited thread-group leaders to
 * pids (at most max).  Returns the count, or -errno (-ENOBUFS: messages were
 * lost, callers fall back to their pidfds). */
int mq_procexit_read(int fd, pid_t *pids, size_t max);

#endif
