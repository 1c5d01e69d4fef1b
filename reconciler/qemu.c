/* qemu.c - the QEMU driver: start, readiness, stop (see qemu.h). */
#include "reconciler/qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/qmp.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define STOP_QMP_TIMEOUT_MS 2000
#define STOP_KILL_WAIT_MS 5000
#define START_POLL_MS 5
#define SOCKET_WAIT_MS 2

void mq_start_result_release(struct mq_start_result *res)
{
	if (!res)
		return;
	free(res->qmp_path);
	res->qmp_path = NULL;
}

static int prepare_runtime_dir(const char *dir, struct mq_error **err)
{
	int r = mq_mkdir_p(dir, 0700, err);
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(dir, &st) < 0)
		return mq_error_set(err, errno, "cannot access runtime dir '%s': %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return mq_error_set(err, ENOTDIR, "runtime dir '%s' is not a directory", dir);
	if (st.st_uid != geteuid())
		return mq_error_set(err, EPERM, "runtime dir '%s' is owned by uid %u, not by uid %u", dir,
				    (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) < 0)
		return mq_error_set(err, errno, "cannot chmod runtime dir '%s': %s", dir, strerror(errno));
	return 0;
}

/* Last line QEMU wrote to its log since `offset`, skipping our own lines. */
static char *log_tail_since(const char *log, off_t offset)
{
	size_t n = 0;
	char *buf = mq_file_read_tail(log, offset, 8192, &n);
	char *l = mq_last_line(buf, n, "maqet: starting");
	free(buf);
	return l;
}

/* Kill and reap our own child after a failed start. */
static void kill_child(const struct mq_pidref *ref)
{
	int r = mq_proc_kill(ref, SIGKILL);
	if (r < 0 && r != -ESRCH)
		kill(ref->pid, SIGKILL); /* unreaped child of ours: the pid is still ours */
	int st;
	while (waitpid(ref->pid, &st, 0) < 0 && errno == EINTR)
		;
}

static int wait_ready(const struct mq_spec *spec, const struct mq_pidref *ref, int pidfd, const char *qmp_path,
		      const char *log, off_t log_off, int timeout_ms, struct mq_error **err)
{
	int64_t deadline = mq_mono_ms() + timeout_ms;
	struct mq_qmp *q = NULL;
	char *last_status = NULL;
	int r;

	for (;;) {
		int st = 0;
		pid_t w = waitpid(ref->pid, &st, WNOHANG);
		if (w == ref->pid) {
			char *how = mq_wait_status_str(st);
			char *line = log_tail_since(log, log_off);
			r = mq_error_set(err, ECHILD, "cannot start vm '%s': qemu %s%s%s", spec->name, how,
					 *line ? ": " : "", line);
			free(line);
			free(how);
			goto out_reaped;
		}
		int64_t left = deadline - mq_mono_ms();
		if (left <= 0)
			break;

		struct mq_error *qerr = NULL;
		if (!q && access(qmp_path, F_OK) < 0) {
			/* Socket not bound yet: wait on the pidfd briefly (an early exit
			 * wakes us at once), then look again. */
			struct pollfd p = { .fd = pidfd, .events = POLLIN };
			int t = left < SOCKET_WAIT_MS ? (int)left : SOCKET_WAIT_MS;
			if (pidfd >= 0)
				(void)poll(&p, 1, t);
			else
				(void)poll(NULL, 0, t);
			continue;
		}
		if (!q) {
			/* Bound: the greeting may take a while on a loaded host; give the
			 * whole remaining budget (QEMU dying closes the socket: EOF). */
			r = mq_qmp_connect(qmp_path, (int)left, &q, &qerr);
			if (r == -EPROTO) {
				r = mq_error_set(err, EPROTO, "cannot start vm '%s': %s", spec->name, qerr->msg);
				mq_error_free(qerr);
				goto out_kill;
			}
			if (r < 0)
				q = NULL;
			qerr = mq_error_free(qerr);
		}
		if (q) {
			char *status = NULL;
			int t = left < 2000 ? (int)left : 2000;
			r = mq_qmp_query_status(q, t, &status, &qerr);
			if (r == 0 && strcmp(status, "prelaunch") == 0)
				r = mq_qmp_execute(q, "cont", NULL, t, NULL, &qerr);
			if (r == 0) {
				if (strcmp(status, "running") == 0) {
					free(status);
					r = 0;
					goto out_ok;
				}
				free(last_status);
				last_status = status;
			} else if (r == -EPROTO) {
				r = mq_error_set(err, EPROTO, "cannot start vm '%s': %s", spec->name, qerr->msg);
				mq_error_free(qerr);
				goto out_kill;
			} else {
				q = mq_qmp_free(q); /* connection lost: retry on a new one */
			}
			qerr = mq_error_free(qerr);
		}

		left = deadline - mq_mono_ms();
		if (left <= 0)
			continue; /* one last exit check, then time out */
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int t = left < START_POLL_MS ? (int)left : START_POLL_MS;
		if (pidfd >= 0)
			(void)poll(&p, 1, t);
		else
			(void)poll(NULL, 0, t);
	}
	if (last_status)
		r = mq_error_set(err, ETIMEDOUT, "cannot start vm '%s': qmp not ready after %d ms (status '%s')",
				 spec->name, timeout_ms, last_status);
	else
		r = mq_error_set(err, ETIMEDOUT, "cannot start vm '%s': qmp not ready after %d ms", spec->name,
				 timeout_ms);
out_kill:
	q = mq_qmp_free(q);
	kill_child(ref);
out_reaped:
out_ok:
	mq_qmp_free(q);
	free(last_status);
	return r;
}

int mq_qemu_start(const struct mq_spec *spec, const struct mq_start_opts *opts, struct mq_start_result *res,
		  struct mq_error **err)
{
	int timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	struct mq_vm_paths paths;
	struct mq_strv argv = MQ_STRV_INIT;
	char *bin = NULL, *joined = NULL;
	int logfd = -1, nullfd = -1, pidfd = -1;
	int r;

	if (!opts || !opts->runtime_dir)
		return mq_error_set(err, EINVAL, "cannot start vm '%s': no runtime dir", spec->name);
	r = prepare_runtime_dir(opts->runtime_dir, err);
	if (r < 0)
		return mq_error_prefix(err, "cannot start vm '%s'", spec->name);
	if (opts->disk_dir) {
		r = mq_mkdir_p(opts->disk_dir, 0700, err);
		if (r < 0)
			return mq_error_prefix(err, "cannot start vm '%s'", spec->name);
	}

	mq_vm_paths_init(&paths, opts->runtime_dir, spec->name);
	if (strlen(paths.qmp_ev) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
	    strlen(paths.qmp) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		r = mq_error_set(err, ENAMETOOLONG,
				 "cannot start vm '%s': socket path '%s' is too long for a unix socket "
				 "(set MAQET_RUNTIME_DIR to a shorter directory)",
				 spec->name, paths.qmp_ev);
		goto out;
	}

	const char *binary = spec->binary ? spec->binary : "qemu-system-x86_64";
	bin = mq_spawn_resolve(binary);
	if (!bin) {
		r = mq_error_set(err, ENOENT,
				 "cannot start vm '%s': qemu binary '%s' not found (install qemu-system-x86 or set "
				 "'binary:' in the manifest)",
				 spec->name, binary);
		goto out;
	}

	r = mq_qemu_prepare_disks(spec, opts->disk_dir, NULL, err);
	if (r < 0) {
		mq_error_prefix(err, "cannot start vm '%s'", spec->name);
		goto out;
	}

	const char *accel = mq_accel_resolve(spec->accel);
	r = mq_qemu_build_argv(spec, &paths, accel, opts->disk_dir, &argv, err);
	if (r < 0) {
		mq_error_prefix(err, "cannot start vm '%s'", spec->name);
		goto out;
	}

	/* Stale sockets of a previous instance. */
	if (unlink(paths.qmp) < 0 && errno != ENOENT) {
		r = mq_error_set(err, errno, "cannot start vm '%s': cannot remove stale socket '%s': %s", spec->name,
				 paths.qmp, strerror(errno));
		goto out;
	}
	if (unlink(paths.qmp_ev) < 0 && errno != ENOENT) {
		r = mq_error_set(err, errno, "cannot start vm '%s': cannot remove stale socket '%s': %s", spec->name,
				 paths.qmp_ev, strerror(errno));
		goto out;
	}

	logfd = open(paths.qemu_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0) {
		r = mq_error_set(err, errno, "cannot start vm '%s': cannot open '%s': %s", spec->name, paths.qemu_log,
				 strerror(errno));
		goto out;
	}
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		r = mq_error_set(err, errno, "cannot start vm '%s': cannot open /dev/null: %s", spec->name,
				 strerror(errno));
		goto out;
	}
	{
		char *j = mq_strv_join(&argv, " ");
		joined = xasprintf("maqet: starting %s\n", j);
		free(j);
	}
	(void)mq_write_all(logfd, joined, strlen(joined));
	off_t log_off = lseek(logfd, 0, SEEK_END);
	if (log_off < 0)
		log_off = 0;
	struct mq_spawn_opts spo = { .stdin_fd = nullfd, .stdout_fd = logfd, .stderr_fd = logfd, .setsid = true,
				     .umask077 = true };
	pid_t pid;
	r = mq_spawn(bin, argv.v, &spo, &pid, err);
	close(logfd);
	logfd = -1;
	close(nullfd);
	nullfd = -1;
	if (r < 0) {
		mq_error_prefix(err, "cannot start vm '%s'", spec->name);
		goto out;
	}

	/* Our unreaped child: its /proc entry stays until we wait for it. */
	struct mq_pidref ref = { .pid = pid, .start_time = 0 };
	int sr = mq_proc_stat(pid, &ref.start_time, NULL);
	if (sr < 0) {
		kill(pid, SIGKILL); /* unreaped child of ours */
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		r = mq_error_set(err, -sr, "cannot start vm '%s': cannot read /proc/%d/stat", spec->name, (int)pid);
		goto out;
	}
	pidfd = mq_pidfd_open(pid);

	r = wait_ready(spec, &ref, pidfd, paths.qmp, paths.qemu_log, log_off, timeout_ms, err);
	if (r < 0)
		goto out;

	/* bind() made the sockets 0777 & ~077; the dir is 0700 already, but
	 * make the sockets themselves owner read/write only. */
	(void)chmod(paths.qmp, 0600);
	(void)chmod(paths.qmp_ev, 0600);

	res->ref = ref;
	snprintf(res->accel, sizeof(res->accel), "%s", accel);
	res->qmp_path = xstrdup(paths.qmp);
	r = 0;
out:
	if (pidfd >= 0)
		close(pidfd);
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	free(joined);
	free(bin);
	mq_strv_clear(&argv);
	mq_vm_paths_release(&paths);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Stop                                                                      */

static void step(const struct mq_stop_opts *o, const char *s, const char *outcome, const char *detail)
{
	if (o && o->step)
		o->step(o->ud, s, outcome, detail);
}

/* Reap ref if it is our (exited) child.  The leader of a multi-threaded
 * process such as QEMU shows as a zombie, and its pidfd turns readable, a
 * moment before its last thread is gone and wait() can collect it; retry
 * briefly.  Not our child: waitid() says ECHILD at once. */
static void reap_child(const struct mq_pidref *ref, int timeout_ms)
{
	int fd = mq_pidfd_open(ref->pid);
	if (fd < 0)
		return;
	uint64_t start = 0;
	if (mq_proc_stat(ref->pid, &start, NULL) < 0 || start != ref->start_time) {
		close(fd); /* reaped already, or another process now */
		return;
	}
	int64_t deadline = mq_mono_ms() + timeout_ms;
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		int r = waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EINVAL) {
			/* kernel without P_PIDFD: the open pidfd keeps an unreaped
			 * child's pid from being reused, so waitpid is safe */
			pid_t w = waitpid(ref->pid, NULL, WNOHANG);
			if (w < 0 && errno == EINTR)
				continue;
			r = w < 0 ? -1 : 0;
			si.si_pid = w;
		}
		if (r < 0 || si.si_pid != 0)
			break; /* not our child, or reaped */
		if (mq_mono_ms() >= deadline)
			break;
		(void)poll(NULL, 0, 5);
	}
	close(fd);
}

/* 1 when ref has exited within timeout_ms, 0 when still running, <0 error. */
static int waited_exit(const struct mq_pidref *ref, int timeout_ms)
{
	int r = mq_proc_wait_exit(ref, timeout_ms);
	if (r == 0) {
		reap_child(ref, 2000);
		return 1;
	}
	if (r == -ESTALE || r == -ESRCH)
		return 1; /* -ESTALE here: it was alive a moment ago, so the pid got reused */
	if (r == -ETIMEDOUT)
		return 0;
	return r;
}

static int clamp_ms(uint64_t ms)
{
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

int mq_qemu_stop(const struct mq_pidref *ref, const char *qmp_path, const struct mq_stop_opts *opts,
		 struct mq_error **err)
{
	static const struct mq_stop_opts defaults;
	const struct mq_stop_opts *o = opts ? opts : &defaults;
	int grace = o->grace_ms > 0 ? o->grace_ms : 5000;
	struct mq_qmp *q = NULL;
	struct mq_error *qerr = NULL;
	int r;

	enum mq_proc_state ps = mq_proc_check(ref);
	if (ps == MQ_PROC_GONE) {
		reap_child(ref, 2000); /* a zombie child of ours */
		step(o, "powerdown", "skipped", "already exited");
		return 0;
	}
	if (ps == MQ_PROC_OTHER)
		return mq_error_set(err, ESTALE, "refusing to signal pid %d: it is no longer the recorded process",
				    (int)ref->pid);

	/* 1. ACPI powerdown */
	if (o->force) {
		step(o, "powerdown", "skipped", "forced");
	} else if (!qmp_path) {
		step(o, "powerdown", "failed", "no qmp socket");
	} else {
		r = mq_qmp_connect(qmp_path, STOP_QMP_TIMEOUT_MS, &q, &qerr);
		if (r == 0)
			r = mq_qmp_execute(q, "system_powerdown", NULL, STOP_QMP_TIMEOUT_MS, NULL, &qerr);
		if (r < 0) {
			step(o, "powerdown", "failed", qerr ? qerr->msg : strerror(-r));
			qerr = mq_error_free(qerr);
			q = mq_qmp_free(q);
		} else {
			step(o, "powerdown", "sent", NULL);
			r = waited_exit(ref, clamp_ms(o->timeout_ms));
			if (r < 0)
				goto fail_wait;
			if (r == 1) {
				step(o, "powerdown", "exited", NULL);
				r = 0;
				goto out;
			}
			step(o, "powerdown", "timeout", NULL);
		}
	}

	/* 2. QMP quit (reusing the connection when it is still there) */
	if (!qmp_path) {
		step(o, "quit", "failed", "no qmp socket");
	} else {
		r = q ? 0 : mq_qmp_connect(qmp_path, STOP_QMP_TIMEOUT_MS, &q, &qerr);
		if (r == 0) {
			r = mq_qmp_execute(q, "quit", NULL, STOP_QMP_TIMEOUT_MS, NULL, &qerr);
			/* QEMU may close the socket before the reply arrives */
			if (r == -ECONNRESET || r == -EPIPE)
				r = 0;
		}
		q = mq_qmp_free(q);
		if (r < 0) {
			step(o, "quit", "failed", qerr ? qerr->msg : strerror(-r));
			qerr = mq_error_free(qerr);
		} else {
			qerr = mq_error_free(qerr);
			step(o, "quit", "sent", NULL);
			r = waited_exit(ref, grace);
			if (r < 0)
				goto fail_wait;
			if (r == 1) {
				step(o, "quit", "exited", NULL);
				r = 0;
				goto out;
			}
			step(o, "quit", "timeout", NULL);
		}
	}

	/* 3. SIGTERM, 4. SIGKILL */
	static const struct {
		const char *name;
		int sig;
	} sigs[] = { { "sigterm", SIGTERM }, { "sigkill", SIGKILL } };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(sigs); i++) {
		r = mq_proc_kill(ref, sigs[i].sig);
		if (r == -ESRCH || r == -ESTALE) {
			/* it was alive a moment ago: it has exited since */
			reap_child(ref, 2000);
			step(o, sigs[i].name, "exited", NULL);
			r = 0;
			goto out;
		}
		if (r < 0) {
			step(o, sigs[i].name, "failed", strerror(-r));
			r = mq_error_set(err, -r, "cannot stop pid %d: %s failed: %s", (int)ref->pid, sigs[i].name,
					 strerror(-r));
			goto out;
		}
		step(o, sigs[i].name, "sent", NULL);
		r = waited_exit(ref, sigs[i].sig == SIGKILL ? STOP_KILL_WAIT_MS : grace);
		if (r < 0)
			goto fail_wait;
		if (r == 1) {
			step(o, sigs[i].name, "exited", NULL);
			r = 0;
			goto out;
		}
		step(o, sigs[i].name, "timeout", NULL);
	}
	r = mq_error_set(err, ETIMEDOUT, "cannot stop pid %d: still running %d ms after SIGKILL", (int)ref->pid,
			 STOP_KILL_WAIT_MS);
	goto out;

fail_wait:
	r = mq_error_set(err, -r, "cannot wait for pid %d: %s", (int)ref->pid, strerror(-r));
out:
	mq_qmp_free(q);
	mq_error_free(qerr);
	return r;
}
