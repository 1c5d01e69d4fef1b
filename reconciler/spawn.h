/* spawn.h - running children without a shell.
 *
 * argv vectors are built in full before fork(); the child only calls
 * async-signal-safe functions (dup2, close, sigaction, sigprocmask, setsid,
 * umask, execv[e], write, _exit).  An exec failure is reported to the parent
 * through a CLOEXEC pipe as the errno number and formatted there.
 */
#ifndef MQ_SPAWN_H
#define MQ_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"

struct mq_spawn_opts {
	int stdin_fd;      /* dup'ed to 0; -1 = /dev/null */
	int stdout_fd;     /* dup'ed to 1; -1 = /dev/null */
	int stderr_fd;     /* dup'ed to 2; -1 = /dev/null */
	bool setsid;       /* own session (survives the caller's terminal) */
	bool umask077;     /* umask 077 in the child */
	int pass_fd;       /* > 2: dup'ed to fd 3 in the child and kept open across exec
	                      (QEMU's serial log, opened by maqet); 0 = none */
	char *const *envp; /* the child's environment (built before fork); NULL = ours */
	int lease_fd;      /* > 2: inherited across exec as the next fd (4 after a pass_fd,
	                      else 3), unreferenced: QEMU holds the disk lease's OFD lock
	                      (reconciler/lease.h) for as long as it runs; 0 = none */
};

/* fork + exec `path` (no PATH search) with argv.  The child resets signal
 * dispositions and mask and closes every fd but 0-2.  On success *pid is the
 * running child (caller reaps it).  When exec fails the child is reaped here
 * and -errno comes back with "cannot exec 'PATH': <strerror>". */
int mq_spawn(const char *path, char *const argv[], const struct mq_spawn_opts *o, pid_t *pid,
	     struct mq_error **err);

/* Run path with argv, stdin from /dev/null, stdout+stderr captured together
 * (capped at 64 KiB), at most timeout_ms (then SIGKILL).  *out gets the
 * output, *status the wait status.  Returns 0 (whatever the exit status),
 * -ETIMEDOUT or -errno. */
int mq_spawn_capture(const char *path, char *const argv[], int timeout_ms, char **out, int *status,
		     struct mq_error **err);
/* The same, calling tick(ud) every tick_ms while the child runs (tick may
 * be NULL; tick_ms <= 0 means 250) -- e.g. to redraw a progress bar. */
int mq_spawn_capture_tick(const char *path, char *const argv[], int timeout_ms, int tick_ms, void (*tick)(void *ud),
			  void *ud, char **out, int *status, struct mq_error **err);
/* The same with the child's environment given (NULL = ours). */
int mq_spawn_capture_env(const char *path, char *const argv[], char *const envp[], int timeout_ms, char **out,
			 int *status, struct mq_error **err);

/* Look `name` up like execvp does; NULL when not found.  Caller frees. */
char *mq_spawn_resolve(const char *name);

/* "exited with status N" / "killed by signal S (name)".  Caller frees. */
char *mq_wait_status_str(int st);
/* Last non-empty line of buf (trimmed), skipping lines starting with `skip`
 * (may be NULL).  A new string, "" when none. */
char *mq_last_line(const char *buf, size_t len, const char *skip);

#endif
