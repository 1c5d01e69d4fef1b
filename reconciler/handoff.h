/* handoff.h - a running `maqet watch` takes over the QMP event connection of
 * a VM that another maqet (a CLI `apply`, `start`, `restart`) just started.
 *
 * Every QEMU is started paused; its event monitor is negotiated before
 * `cont` and never read afterwards, so every event of the guest's life is
 * still in that socket.  The starting process sends the connection, with the
 * VM's name and pid + start time, to the watch of the same state dir over
 * `<state>/watch.sock` (SOCK_SEQPACKET, the fd as SCM_RIGHTS); the watch
 * follows the VM at once, so a guest that powers off a millisecond after
 * boot is a guest poweroff there too, not a crash.  No watch: nothing to do.
 */
#ifndef MQ_HANDOFF_H
#define MQ_HANDOFF_H

#include <stdint.h>

#include "reconciler/proc.h"
#include "util/error.h"

#define MQ_HANDOFF_SOCKET "watch.sock"

struct mq_handoff_msg {
	char name[64];
	int32_t pid;
	uint64_t start_time;
};

/* The watch: listen on <state_dir>/watch.sock (non-blocking, CLOEXEC; a
 * stale socket file is replaced: the caller holds watch.lock).  Returns the
 * fd, or -errno with *err (e.g. a state dir path too long for a socket). */
int mq_handoff_listen(const char *state_dir, struct mq_error **err);
/* The watch, on POLLIN of a connection it accepted: 1 with *m and *ev_fd
 * (CLOEXEC, owned by the caller) filled, -EAGAIN when nothing came yet, or
 * -errno / -EPROTO (close the connection). */
int mq_handoff_recv(int conn, struct mq_handoff_msg *m, int *ev_fd);
/* The starter: hand ev_fd (not consumed) over if a watch listens.  0 when
 * handed over, -ENOENT/-ECONNREFUSED when no watch runs, -errno else.
 * Never blocks for long: a local connect and one send. */
int mq_handoff_send(const char *state_dir, const char *name, const struct mq_pidref *ref, int ev_fd);

#endif
