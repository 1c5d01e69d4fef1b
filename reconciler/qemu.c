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
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reconciler/logrot.h"
#include "reconciler/lease.h"
#include "reconciler/qemuid.h"
#include "reconciler/qmp.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define STOP_QMP_TIMEOUT_MS 2000
#define STOP_KILL_WAIT_MS 5000
#define SOCKET_RETRY_MS 5

void mq_start_result_release(struct mq_start_result *res)
{
	if (!res)
		return;
	free(res->qmp_path);
	res->qmp_path = NULL;
	if (res->ev_fd >= 0)
		close(res->ev_fd);
	res->ev_fd = -1;
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

/* The serial log, opened for QEMU (handed over as fd 3): never through a
 * symlink, never a file someone else owns or can write.  Anything else at
 * that name (a symlink, another owner, group/world-writable, not a regular
 * file) is removed (the runtime dir is ours, 0700) and a fresh 0600 file
 * created in its place; the symlink's target is never touched.  Returns the
 * fd (CLOEXEC) or -errno with err set. */
static int open_serial_log(const struct mq_spec *spec, const char *path, struct mq_error **err)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
		if (fd >= 0) {
			struct stat st;
			if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
			    !(st.st_mode & 022) && st.st_nlink == 1) {
				int fl = fcntl(fd, F_GETFL);
				if (fl >= 0)
					(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
				if ((st.st_mode & 07777) != 0600)
					(void)fchmod(fd, 0600);
				return fd;
			}
			close(fd);
		} else if (errno != ELOOP && errno != ENXIO && errno != EACCES && errno != EPERM) {
			return mq_error_set(err, errno, "cannot start vm '%s': cannot open serial log '%s': %s",
					    spec->name, path, strerror(errno));
		}
		/* not ours to write into: replace it */
		if (unlink(path) < 0 && errno != ENOENT)
			return mq_error_set(err, errno,
					    "cannot start vm '%s': serial log '%s' is not a private file of ours "
					    "and cannot be removed: %s",
					    spec->name, path, strerror(errno));
	}
	return mq_error_set(err, EEXIST, "cannot start vm '%s': cannot create a private serial log '%s'",
			    spec->name, path);
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

/* Kill and reap our own child after a failed start; an adopted QEMU (not
 * our child) only through its proven identity. */
static void kill_child(const struct mq_pidref *ref, bool child)
{
	int r = mq_proc_kill(ref, SIGKILL);
	if (!child) {
		(void)mq_proc_wait_exit(ref, STOP_KILL_WAIT_MS);
		return;
	}
	if (r < 0 && r != -ESRCH)
		kill(ref->pid, SIGKILL); /* unreaped child of ours: the pid is still ours */
	int st;
	while (waitpid(ref->pid, &st, 0) < 0 && errno == EINTR)
		;
}

/* Remove a socket file left by a dead instance.  One that accepts a
 * connection belongs to a live process: refused. */
static int remove_stale_socket(const struct mq_spec *spec, const char *path, struct mq_error **err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : mq_error_set(err, errno, "cannot start vm '%s': cannot access '%s': %s",
							    spec->name, path, strerror(errno));
	if (S_ISSOCK(st.st_mode)) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd >= 0) {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };
			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
			int c = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
			int e = errno;
			close(fd);
			if (c == 0 || e == EAGAIN || e == EINPROGRESS)
				return mq_error_set(err, EBUSY,
						    "cannot start vm '%s': socket '%s' is in use by a process maqet "
						    "does not track (stop it first)",
						    spec->name, path);
		}
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return mq_error_set(err, errno, "cannot start vm '%s': cannot remove stale socket '%s': %s", spec->name,
				    path, strerror(errno));
	return 0;
}

/* ---- readiness ------------------------------------------------------------ */

/* What the main monitor reported while starting. */
struct start_watch {
	bool resumed;         /* RESUME seen */
	bool shutdown;        /* SHUTDOWN seen before RESUME */
	bool shutdown_guest;
	char reason[64];
	/* cont, then query-status */
	bool cont_done, status_done;
	int cont_status;
	char *cont_msg;
	char *status;         /* last query-status answer */
};

static void start_on_event(struct mq_qmp *q, json_object *ev, void *ud)
{
	(void)q;
	struct start_watch *w = ud;
	json_object *name, *data, *v;
	if (!json_object_object_get_ex(ev, "event", &name))
		return;
	const char *e = json_object_get_string(name);
	if (strcmp(e, "RESUME") == 0) {
		w->resumed = true;
	} else if (strcmp(e, "SHUTDOWN") == 0 && !w->resumed) {
		w->shutdown = true;
		if (json_object_object_get_ex(ev, "data", &data)) {
			if (json_object_object_get_ex(data, "guest", &v))
				w->shutdown_guest = json_object_get_boolean(v);
			if (json_object_object_get_ex(data, "reason", &v))
				snprintf(w->reason, sizeof(w->reason), "%s", json_object_get_string(v));
		}
	}
}

static void status_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	(void)q;
	struct start_watch *w = ud;
	w->status_done = true;
	json_object *st;
	if (r->status == 0 && json_object_object_get_ex(r->ret, "status", &st) &&
	    json_object_is_type(st, json_type_string)) {
		free(w->status);
		w->status = xstrdup(json_object_get_string(st));
	}
}

static void cont_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	struct start_watch *w = ud;
	w->cont_done = true;
	w->cont_status = r->status;
	if (r->status < 0) {
		w->cont_msg = xstrdup(r->message);
		return;
	}
	/* RESUME normally came before this reply; ask in case it did not */
	(void)mq_qmp_send(q, "query-status", NULL, status_reply, w, NULL, NULL);
}

static bool start_settled(const struct start_watch *w)
{
	return w->resumed || w->shutdown || (w->cont_done && w->cont_status < 0) ||
	       (w->status && strcmp(w->status, "running") == 0);
}

/* Exit report of our child `pid`, whose pidfd turned readable (or that is
 * known to be exiting): reap it (a blocking wait: the leader of a
 * multi-threaded QEMU is a zombie a moment before it can be collected). */
static int report_exit(const struct mq_spec *spec, pid_t pid, const char *log, off_t log_off, struct mq_error **err)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	char *how = mq_wait_status_str(st);
	char *line = log_tail_since(log, log_off);
	int r = mq_error_set(err, ECHILD, "cannot start vm '%s': qemu %s%s%s", spec->name, how, *line ? ": " : "",
			     line);
	free(line);
	free(how);
	return r;
}

/* Our child has exited?  Without a pidfd (old kernel), waitpid(WNOHANG). */
static bool child_exited(int pidfd, pid_t pid, bool pidfd_readable, int *wst, bool *reaped)
{
	if (pidfd >= 0)
		return pidfd_readable;
	pid_t w = waitpid(pid, wst, WNOHANG);
	*reaped = w == pid;
	return *reaped;
}

/* Connect and negotiate the main monitor and the event monitor, send `cont`
 * on the main one and wait until the guest runs.  Every wait is one poll()
 * on the pidfd (an exit is seen at once), the QMP fds, an inotify watch on
 * the runtime dir (the sockets appearing: QEMU binds and listens at once)
 * and the deadline.  Only a socket that exists but refuses (the microseconds
 * between QEMU's bind() and listen()), or a host without inotify or pidfds,
 * is retried after SOCKET_RETRY_MS.  The event monitor is not read after its
 * qmp_capabilities reply. */
static int wait_ready(const struct mq_spec *spec, const struct mq_pidref *ref, int pidfd, bool child,
		      const struct mq_vm_paths *paths, off_t log_off, int timeout_ms, bool keep_ev, int *ev_fd,
		      struct mq_error **err)
{
	int64_t deadline = mq_mono_ms() + timeout_ms;
	struct start_watch w = { 0 };
	struct mq_qmp_callbacks cb = { .on_event = start_on_event, .ud = &w };
	struct mq_qmp *mon[2] = { NULL, NULL }; /* main, ev */
	const char *path[2] = { paths->qmp, paths->qmp_ev };
	bool cont_sent = false, chmodded = false;
	int r;
	/* the sockets' appearance, instead of a timed retry */
	int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (ino >= 0) {
		char *dir = mq_path_dirname(paths->qmp);
		if (inotify_add_watch(ino, dir, IN_CREATE | IN_MOVED_TO) < 0) {
			close(ino);
			ino = -1;
		}
		free(dir);
	}

	for (;;) {
		bool retry = false;
		for (int i = 0; i < 2; i++) {
			if (mon[i])
				continue;
			struct mq_error *qerr = NULL;
			r = mq_qmp_open(path[i], i == 0 ? &cb : NULL, &mon[i], &qerr);
			if (r == -ENOENT && ino >= 0) {
				/* not there yet: its creation wakes the poll below */
			} else if (r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN) {
				retry = true;
			} else if (r < 0) {
				r = mq_error_set(err, -r, "cannot start vm '%s': %s", spec->name, qerr->msg);
				mq_error_free(qerr);
				goto out_kill;
			}
			mq_error_free(qerr);
		}
		bool ready[2] = { mq_qmp_state(mon[0]) == MQ_QMP_READY && mon[0], mq_qmp_state(mon[1]) == MQ_QMP_READY && mon[1] };
		if (ready[0] && ready[1] && !chmodded) {
			/* bind() made the sockets 0777 & ~077; the dir is 0700
			 * already, but make the sockets owner read/write only. */
			(void)chmod(paths->qmp, 0600);
			(void)chmod(paths->qmp_ev, 0600);
			chmodded = true;
		}
		if (ready[0] && ready[1] && !cont_sent) {
			r = mq_qmp_send(mon[0], "cont", NULL, cont_reply, &w, NULL, err);
			if (r < 0) {
				mq_error_prefix(err, "cannot start vm '%s'", spec->name);
				goto out_kill;
			}
			cont_sent = true;
		}
		if (start_settled(&w))
			break;

		int64_t left = deadline - mq_mono_ms();
		if (left <= 0)
			goto timeout;
		struct pollfd p[4] = { { .fd = pidfd, .events = POLLIN }, { .fd = ino, .events = POLLIN } };
		int np = 2;
		int idx[2] = { -1, -1 };
		for (int i = 0; i < 2; i++) {
			/* never read the event monitor once it is negotiated */
			if (mon[i] && !(i == 1 && ready[1])) {
				idx[i] = np;
				p[np++] = (struct pollfd){ .fd = mq_qmp_fd(mon[i]), .events = mq_qmp_poll_events(mon[i]) };
			}
		}
		int t = (int)(left > INT32_MAX ? INT32_MAX : left);
		if ((retry || pidfd < 0) && t > SOCKET_RETRY_MS)
			t = SOCKET_RETRY_MS;
		int n = poll(p, (nfds_t)np, t);
		if (n < 0 && errno != EINTR) {
			r = mq_error_set(err, errno, "cannot start vm '%s': poll: %s", spec->name, strerror(errno));
			goto out_kill;
		}
		if (n > 0 && ino >= 0 && p[1].revents) {
			char ibuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
			while (read(ino, ibuf, sizeof(ibuf)) > 0)
				;
		}
		/* the monitors first: a RESUME already sent by a QEMU that
		 * exits right after (a guest powering off at once) counts */
		for (int i = 0; i < 2 && n > 0; i++) {
			if (idx[i] < 0 || !p[idx[i]].revents)
				continue;
			struct mq_error *qerr = NULL;
			r = mq_qmp_dispatch(mon[i], p[idx[i]].revents, &qerr);
			if (r == -EPROTO) {
				r = mq_error_set(err, EPROTO, "cannot start vm '%s': %s", spec->name, qerr->msg);
				mq_error_free(qerr);
				goto out_kill;
			}
			if (r < 0 && i == 0 && cont_sent) {
				/* the main monitor went away after cont: QEMU is going */
				mq_error_free(qerr);
				continue;
			}
			if (r < 0)
				mon[i] = mq_qmp_free(mon[i]); /* lost before READY: connect again */
			mq_error_free(qerr);
		}
		if (start_settled(&w))
			break;
		int wst = 0;
		bool reaped = false;
		if (!child && pidfd < 0 && mq_proc_check(ref) != MQ_PROC_ALIVE) {
			r = mq_error_set(err, ECHILD, "cannot adopt vm '%s': its qemu (pid %d) exited", spec->name,
					 (int)ref->pid);
			goto out;
		}
		if (child && child_exited(pidfd, ref->pid, n > 0 && p[0].revents, &wst, &reaped)) {
			if (reaped) {
				char *how = mq_wait_status_str(wst);
				char *line = log_tail_since(paths->qemu_log, log_off);
				r = mq_error_set(err, ECHILD, "cannot start vm '%s': qemu %s%s%s", spec->name, how,
						 *line ? ": " : "", line);
				free(line);
				free(how);
			} else {
				r = report_exit(spec, ref->pid, paths->qemu_log, log_off, err);
			}
			goto out;
		}
		if (!child && pidfd >= 0 && n > 0 && p[0].revents) {
			r = mq_error_set(err, ECHILD, "cannot adopt vm '%s': its qemu (pid %d) exited", spec->name,
					 (int)ref->pid);
			goto out;
		}
		if (n <= 0)
			continue;
		if (mon[0] && mq_qmp_state(mon[0]) == MQ_QMP_CLOSED && !start_settled(&w)) {
			/* closed after cont without RESUME: wait for the exit */
			struct pollfd pp = { .fd = pidfd, .events = POLLIN };
			int64_t l2 = deadline - mq_mono_ms();
			if (child && pidfd >= 0 && l2 > 0 && poll(&pp, 1, (int)(l2 > INT32_MAX ? INT32_MAX : l2)) == 1) {
				r = report_exit(spec, ref->pid, paths->qemu_log, log_off, err);
				goto out;
			}
			goto timeout;
		}
	}

	if (!w.resumed && !(w.status && strcmp(w.status, "running") == 0)) {
		if (w.shutdown)
			r = mq_error_set(err, ECANCELED, "cannot start vm '%s': qemu shut down before running (%s%s)",
					 spec->name, w.shutdown_guest ? "by the guest, reason " : "reason ",
					 w.reason[0] ? w.reason : "unknown");
		else
			r = mq_error_set(err, -w.cont_status, "cannot start vm '%s': %s", spec->name,
					 w.cont_msg ? w.cont_msg : "cont failed");
		goto out_kill;
	}
	*ev_fd = -1;
	if (keep_ev) {
		int fd = mq_qmp_detach_fd(mon[1]);
		if (fd < 0) {
			r = mq_error_set(err, EBUSY, "cannot start vm '%s': cannot hand over the event monitor '%s'",
					 spec->name, paths->qmp_ev);
			goto out_kill;
		}
		*ev_fd = fd;
	}
	r = 0;
	goto out;

timeout:
	if (w.status)
		r = mq_error_set(err, ETIMEDOUT, "cannot start vm '%s': qmp not ready after %d ms (status '%s')",
				 spec->name, timeout_ms, w.status);
	else if (mon[0] && mq_qmp_state(mon[0]) == MQ_QMP_READY && (!mon[1] || mq_qmp_state(mon[1]) != MQ_QMP_READY))
		r = mq_error_set(err, ETIMEDOUT, "cannot start vm '%s': qmp not ready after %d ms (event monitor '%s' "
						 "did not answer)", spec->name, timeout_ms, paths->qmp_ev);
	else
		r = mq_error_set(err, ETIMEDOUT, "cannot start vm '%s': qmp not ready after %d ms", spec->name,
				 timeout_ms);
out_kill:
	kill_child(ref, child);
out:
	if (ino >= 0)
		close(ino);
	mq_qmp_free(mon[0]);
	mq_qmp_free(mon[1]);
	free(w.cont_msg);
	free(w.status);
	return r;
}

int mq_qemu_start(const struct mq_spec *spec, const struct mq_start_opts *opts, struct mq_start_result *res,
		  struct mq_error **err)
{
	int timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	struct mq_vm_paths paths;
	struct mq_strv argv = MQ_STRV_INIT;
	char *bin = NULL, *joined = NULL;
	int logfd = -1, nullfd = -1, pidfd = -1, serialfd = -1, leasefd = -1;
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
	    strlen(paths.qmp) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
	    (spec->serial == MQ_SERIAL_LOG && strlen(paths.console) >= sizeof(((struct sockaddr_un *)0)->sun_path))) {
		r = mq_error_set(err, ENAMETOOLONG,
				 "cannot start vm '%s': socket path '%s' is too long for a unix socket "
				 "(set MAQET_RUNTIME_DIR to a shorter directory)",
				 spec->name, spec->serial == MQ_SERIAL_LOG ? paths.console : paths.qmp_ev);
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
	/* the disk lease, handed to QEMU: held exactly as long as it runs */
	char *lease = mq_lease_path(spec, opts->disk_dir);
	if (lease) {
		struct mq_error *lerr = NULL;
		struct mq_lease_holder h;
		leasefd = mq_lease_take(lease, opts->host, spec->name, &h, &lerr);
		/* held under this vm's own name from this host: a QEMU of it that
		 * has exited (or was stopped just before, as an interrupted start's
		 * orphan) and whose files the kernel is still closing: a moment */
		char self[256];
		const char *me = opts->host ? opts->host : (gethostname(self, sizeof(self)) == 0 ? self : "");
		for (int tries = 0; leasefd == -EBUSY && tries < 400 && strcmp(h.vm, spec->name) == 0 &&
				    strcmp(h.host, me) == 0; tries++) {
			mq_error_free(lerr);
			lerr = NULL;
			struct timespec ts = { 0, 5 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			leasefd = mq_lease_take(lease, opts->host, spec->name, &h, &lerr);
		}
		free(lease);
		/* a lease file that cannot be created (a disk in a directory this
		 * user may not write) only matters for a placed vm */
		bool optional = !spec->placement_host && (leasefd == -EACCES || leasefd == -EROFS || leasefd == -EPERM);
		if (leasefd < 0 && !optional) {
			r = leasefd;
			if (err)
				*err = lerr;
			else
				mq_error_free(lerr);
			mq_error_prefix(err, "cannot start vm '%s'", spec->name);
			goto out;
		}
		mq_error_free(lerr);
	}

	const char *accel = mq_accel_resolve(spec->accel);
	r = mq_qemu_build_argv(spec, &paths, accel, opts->disk_dir, &argv, err);
	if (r < 0) {
		mq_error_prefix(err, "cannot start vm '%s'", spec->name);
		goto out;
	}

	/* Stale sockets of a previous instance; never one something listens
	 * on (a QEMU maqet does not know would lose its monitor). */
	r = remove_stale_socket(spec, paths.qmp, err);
	if (r == 0)
		r = remove_stale_socket(spec, paths.qmp_ev, err);
	if (r < 0)
		goto out;

	if (unlink(paths.console) < 0 && errno != ENOENT) {
		r = mq_error_set(err, errno, "cannot start vm '%s': cannot remove stale socket '%s': %s", spec->name,
				 paths.console, strerror(errno));
		goto out;
	}
	/* No QEMU of this VM writes its logs now: rotate the big ones (vmpaths.h). */
	const char *logs[] = { paths.qemu_log, paths.serial_log };
	for (size_t li = 0; li < 2; li++) {
		int lr = mq_log_rotate(logs[li], mq_log_cap());
		if (lr < 0) {
			r = mq_error_set(err, -lr, "cannot start vm '%s': cannot rotate log '%s': %s", spec->name,
					 logs[li], strerror(-lr));
			goto out;
		}
	}

	logfd = open(paths.qemu_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0) {
		r = mq_error_set(err, errno, "cannot start vm '%s': cannot open '%s': %s", spec->name, paths.qemu_log,
				 strerror(errno));
		goto out;
	}
	if (spec->serial == MQ_SERIAL_LOG) {
		serialfd = open_serial_log(spec, paths.serial_log, err);
		if (serialfd < 0) {
			r = serialfd;
			goto out;
		}
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
				     .umask077 = true, .pass_fd = serialfd > 2 ? serialfd : 0,
				     .lease_fd = leasefd > 2 ? leasefd : 0 };
	pid_t pid;
	r = mq_spawn(bin, argv.v, &spo, &pid, err);
	close(logfd);
	logfd = -1;
	close(nullfd);
	nullfd = -1;
	if (serialfd >= 0)
		close(serialfd);
	serialfd = -1;
	if (leasefd >= 0) {
		if (r == 0) /* the holder named is the QEMU (its exit is what frees it) */
			(void)mq_lease_set_pid(leasefd, pid);
		close(leasefd); /* QEMU holds it now */
	}
	leasefd = -1;
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

	int ev_fd = -1;
	if (opts->spawned)
		opts->spawned(opts->spawned_ud, &ref);
	r = wait_ready(spec, &ref, pidfd, true, &paths, log_off, timeout_ms, opts->keep_ev, &ev_fd, err);
	if (r < 0)
		goto out;

	res->ref = ref;
	snprintf(res->accel, sizeof(res->accel), "%s", accel);
	res->qmp_path = xstrdup(paths.qmp);
	res->ev_fd = ev_fd;
	r = 0;
out:
	if (pidfd >= 0)
		close(pidfd);
	if (leasefd >= 0)
		close(leasefd);
	if (serialfd >= 0)
		close(serialfd);
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

int mq_qemu_adopt(const struct mq_spec *spec, const struct mq_start_opts *opts, const struct mq_pidref *ref,
		  const struct mq_strv *cmdline, struct mq_start_result *res, struct mq_error **err)
{
	int timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	if (!opts || !opts->runtime_dir)
		return mq_error_set(err, EINVAL, "cannot adopt vm '%s': no runtime dir", spec->name);
	struct mq_vm_paths paths;
	mq_vm_paths_init(&paths, opts->runtime_dir, spec->name);
	int pidfd = mq_pidref_open(ref);
	if (pidfd == -ESRCH || pidfd == -ESTALE) {
		mq_vm_paths_release(&paths);
		return mq_error_set(err, ESRCH, "cannot adopt vm '%s': its qemu (pid %d) is gone", spec->name,
				    (int)ref->pid);
	}
	if (pidfd < 0)
		pidfd = -1; /* no pidfds here: pid + start time checks */
	struct stat st;
	off_t log_off = stat(paths.qemu_log, &st) == 0 ? st.st_size : 0;
	int ev_fd = -1;
	int r = wait_ready(spec, ref, pidfd, false, &paths, log_off, timeout_ms, opts->keep_ev, &ev_fd, err);
	if (pidfd >= 0)
		close(pidfd);
	if (r == 0) {
		const char *accel = "tcg";
		for (size_t i = 0; cmdline && i + 1 < cmdline->n; i++)
			if (strcmp(cmdline->v[i], "-accel") == 0)
				accel = cmdline->v[i + 1];
		res->ref = *ref;
		snprintf(res->accel, sizeof(res->accel), "%s", accel);
		res->qmp_path = xstrdup(paths.qmp);
		res->ev_fd = ev_fd;
	}
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
 * moment before its last thread is gone and wait() can collect it: then a
 * blocking waitid() on the pidfd (bounded: the process is known to be
 * exiting, checked by polling the pidfd up to timeout_ms first).  Not our
 * child: waitid() says ECHILD at once. */
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
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;
	while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (n == 1) {
		siginfo_t si;
		int r;
		memset(&si, 0, sizeof(si));
		while ((r = waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG)) < 0 && errno == EINTR)
			;
		if (r == 0 && si.si_pid == 0) {
			/* our child, exiting but not collectable yet */
			while ((r = waitid(P_PIDFD, (id_t)fd, &si, WEXITED)) < 0 && errno == EINTR)
				;
		} else if (r < 0 && errno == EINVAL) {
			/* kernel without P_PIDFD: the open pidfd keeps an unreaped
			 * child's pid from being reused, so waitpid is safe */
			pid_t w = waitpid(ref->pid, NULL, WNOHANG);
			if (w == 0)
				(void)waitpid(ref->pid, NULL, 0);
		}
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
	/* pid + start time say it is the same process; its command line must
	 * also say it is this VM's QEMU (it names the VM's QMP socket) */
	if (qmp_path && !mq_qemu_is_vm(ref, qmp_path)) {
		if (mq_proc_check(ref) == MQ_PROC_GONE) {
			reap_child(ref, 2000);
			step(o, "powerdown", "skipped", "already exited");
			return 0;
		}
		return mq_error_set(err, ESTALE,
				    "refusing to signal pid %d: its command line does not name the qmp socket '%s', "
				    "so it is not this vm's qemu",
				    (int)ref->pid, qmp_path);
	}

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
		if (q && mq_qmp_state(q) != MQ_QMP_READY)
			q = mq_qmp_free(q); /* closed meanwhile: a new connection */
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
