/* fdpass.h - one message with at most one file descriptor over a unix
 * socket (SCM_RIGHTS), for the worker and handoff sockets. */
#ifndef MQ_FDPASS_H
#define MQ_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Send len bytes as one message with pass_fd attached (none when < 0).
 * Returns 0, -EPROTO for a short send, or -errno. */
int mq_fd_send(int sock, const void *buf, size_t len, int pass_fd);

/* Receive one message of exactly len bytes without blocking.  Returns 1
 * with *fd_out set to the first received fd (CLOEXEC) or -1, 0 at EOF,
 * -EAGAIN when nothing is there, -EPROTO for a message of another size or a
 * truncated one, or -errno.  Extra fds, and any fd of a rejected message,
 * are closed. */
int mq_fd_recv(int sock, void *buf, size_t len, int *fd_out);

#endif
