/* worker.h - forked worker processes and the typed messages they send.
 *
 * A worker is a child of maqet that does one VM's slow QEMU work (stop
 * ladder, disk creation, spawn + readiness) so the parent's loop never
 * blocks.  It talks to its parent over one SOCK_SEQPACKET socket: every
 * message is one fixed-layout struct mq_wmsg (no text to parse), optionally
 * carrying one fd (SCM_RIGHTS), e.g. QEMU's already-negotiated QMP event
 * connection.
 *
 * Hygiene, done in the child before the worker function runs: every fd but
 * 0, 1, 2 and its own socket is closed (so no SQLite, lock, inotify, QMP or
 * other worker fd leaks into it or into the QEMU it spawns, and an orphaned
 * worker never holds watch.lock), the signal mask is emptied and every
 * signal disposition reset to its default.  A worker dies with maqet
 * (PR_SET_PDEATHSIG): it never starts a QEMU for a maqet that is gone.
 * Closing fds does not clear SQLite's per-process memory of the files it
 * has open (locks, WAL index): a worker that opens the store itself is
 * started with the parent's connection suspended (mq_store_suspend, as
 * snapwatch.c does).
 */
#ifndef MQ_WORKER_H
#define MQ_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

enum mq_wmsg_kind {
	MQ_WMSG_STEP = 1, /* a stop step: step, outcome, text = detail */
	MQ_WMSG_DISK,     /* a disk image was created: path */
	MQ_WMSG_STOPPED,  /* the stop ladder finished: the process is gone */
	MQ_WMSG_SPAWNED,  /* QEMU exists (not ready yet): pid, start_time */
	MQ_WMSG_STARTED,  /* QEMU is running: pid, start_time, accel, path = qmp socket;
	                     may carry the negotiated QMP event connection's fd */
	MQ_WMSG_ERROR,    /* text = the whole error message */
	MQ_WMSG_ADOPTED,  /* a QEMU of this VM left by an interrupted start was taken over: as
	                     MQ_WMSG_STARTED */
};

struct mq_wmsg {
	uint32_t kind;
	int32_t pid;
	uint64_t start_time;
	char accel[8];
	char step[16];
	char outcome[16];
	char path[512];
	char text[2048];
};

/* Bounded copy into a message field (truncates, always terminated). */
void mq_wmsg_set(char *dst, size_t cap, const char *src);
#define MQ_WMSG_SET(field, src) mq_wmsg_set((field), sizeof(field), (src))

typedef int (*mq_worker_fn)(int fd, void *ud);

struct mq_worker {
	pid_t pid;
	int fd;   /* parent's end, non-blocking, CLOEXEC; -1 once closed */
};

/* Fork a worker that runs fn(fd, ud) and exits with its return value.  The
 * parent gets w->pid and w->fd. */
int mq_worker_start(mq_worker_fn fn, void *ud, struct mq_worker *w, struct mq_error **err);

/* Send one message (from the worker), with pass_fd >= 0 attached.
 * Returns 0 or -errno. */
int mq_wmsg_send(int fd, const struct mq_wmsg *m, int pass_fd);

/* Receive one message (parent side, non-blocking).  Returns 1 with *m filled
 * (and *fd_out set to a received CLOEXEC fd or -1), 0 at EOF (the worker
 * exited or closed its end), -EAGAIN when nothing is there, -EPROTO for a
 * message of the wrong size, or -errno. */
int mq_wmsg_recv(int fd, struct mq_wmsg *m, int *fd_out);

/* Close the parent's end and reap the worker (blocking waitpid: call it
 * after EOF).  *status gets the wait status (may be NULL). */
void mq_worker_finish(struct mq_worker *w, int *status);

#endif
