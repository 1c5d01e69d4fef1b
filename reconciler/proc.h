/* proc.h - process identity and liveness (pid + start time, pidfds).
 *
 * A process is identified by pid + start time (field 22 of /proc/PID/stat,
 * in clock ticks since boot), never by pid alone.  A zombie ('Z') or a dead
 * task ('X') counts as gone.  Nothing here ever signals a process whose
 * identity could not be proven: signals go through a pidfd opened *before*
 * the start time is re-checked, so a pid reused in between cannot be hit.
 */
#ifndef MQ_PROC_H
#define MQ_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct mq_pidref {
	pid_t pid;
	uint64_t start_time;
};

enum mq_proc_state {
	MQ_PROC_GONE = 0,  /* no such process, or a zombie */
	MQ_PROC_ALIVE,     /* same pid and same start time, not a zombie */
	MQ_PROC_OTHER,     /* the pid now belongs to a different process */
};

/* Read start time (field 22) and state letter (field 3) of /proc/PID/stat,
 * parsing past the parenthesised comm (which may hold spaces and ')').
 * Returns 0, or -ENOENT / -EINVAL.  state may be NULL. */
int mq_proc_stat(pid_t pid, uint64_t *start_time, char *state);
enum mq_proc_state mq_proc_check(const struct mq_pidref *ref);
const char *mq_proc_state_str(enum mq_proc_state s);

/* pidfd_open() wrapper (syscall), O_CLOEXEC implied by the kernel. */
int mq_pidfd_open(pid_t pid);
/* Open a pidfd for ref and prove identity after opening it.  Returns the fd,
 * or -ESRCH (gone / zombie) or -ESTALE (pid reused by another process). */
int mq_pidref_open(const struct mq_pidref *ref);
/* True for the pidfd_open() failures that mean "no pidfd can be had here"
 * (ENOSYS before Linux 5.3, EMFILE/ENFILE/ENOMEM, EPERM under seccomp):
 * callers fall back to pid + start time checks. */
bool mq_pidfd_unavailable(int r);
/* Send sig to ref through a pidfd (without pidfds: identity check + kill(2)).  0, -ESRCH, -ESTALE or -errno. */
int mq_proc_kill(const struct mq_pidref *ref, int sig);
/* Wait until ref has exited, up to timeout_ms (poll on a pidfd; no busy
 * loop).  Reaps it with waitpid(WNOHANG) if it is our child.  Returns 0 when
 * gone, -ETIMEDOUT, or -ESTALE when the pid is not ref. */
int mq_proc_wait_exit(const struct mq_pidref *ref, int timeout_ms);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t mq_mono_ms(void);
/* Clock ticks since boot now (to compute uptime from start_time). */
uint64_t mq_proc_uptime_ticks(void);
long mq_clk_tck(void);

#endif
