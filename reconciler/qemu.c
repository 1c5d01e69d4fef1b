/* qemu.c - the QEMU driver: argv, disks, spawn, readiness, stop.
 *
 * Everything here runs children without a shell: argv vectors are built in
 * full before fork(), and the child only calls async-signal-safe functions
 * (dup2, close, sigaction, setsid, umask, execv, write, _exit).
 */
#include "reconciler/qemu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/qmp.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define RUN_OUTPUT_CAP (64 * 1024)
#define VERSION_TIMEOUT_MS 10000
#define QEMU_IMG_TIMEOUT_MS 60000
#define STOP_QMP_TIMEOUT_MS 2000
#define STOP_KILL_WAIT_MS 5000
#define START_POLL_MS 5
#define SOCKET_WAIT_MS 2
#define SATA_PORTS 6

/* ------------------------------------------------------------------------ */
/* Paths                                                                     */

void mq_vm_paths_init(struct mq_vm_paths *p, const char *runtime_dir, const char *name)
{
	p->qmp = xasprintf("%s/%s.qmp", runtime_dir, name);
	p->qmp_ev = xasprintf("%s/%s.ev", runtime_dir, name);
	p->serial_log = xasprintf("%s/%s.serial.log", runtime_dir, name);
	p->qemu_log = xasprintf("%s/%s.qemu.log", runtime_dir, name);
}

void mq_vm_paths_release(struct mq_vm_paths *p)
{
	if (!p)
		return;
	free(p->qmp);
	free(p->qmp_ev);
	free(p->serial_log);
	free(p->qemu_log);
	p->qmp = p->qmp_ev = p->serial_log = p->qemu_log = NULL;
}

char *mq_storage_image_path(const struct mq_spec *spec, const struct mq_storage *s, const char *disk_dir)
{
	if (s->file)
		return xstrdup(s->file);
	return xasprintf("%s/%s-%s.%s", disk_dir ? disk_dir : ".", spec->name, s->name,
			 s->type == MQ_STORAGE_RAW ? "raw" : "qcow2");
}

/* ------------------------------------------------------------------------ */
/* Accelerator                                                               */

bool mq_kvm_usable(void)
{
	static int cached = -1;
	if (cached < 0) {
		int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		cached = fd >= 0;
		if (fd >= 0)
			close(fd);
	}
	return cached == 1;
}

const char *mq_accel_resolve(enum mq_accel a)
{
	switch (a) {
	case MQ_ACCEL_KVM:
		return "kvm";
	case MQ_ACCEL_TCG:
		return "tcg";
	case MQ_ACCEL_AUTO:
	default:
		return mq_kvm_usable() ? "kvm" : "tcg";
	}
}

/* ------------------------------------------------------------------------ */
/* argv                                                                      */

/* QEMU option values: a ',' inside a value is written ",,". */
static void add_esc(struct mq_strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == ',')
			mq_strbuf_addc(sb, ',');
		mq_strbuf_addc(sb, *s);
	}
}

static const char *iface_if(enum mq_iface i)
{
	switch (i) {
	case MQ_IFACE_VIRTIO:
		return "virtio";
	case MQ_IFACE_IDE:
		return "ide";
	case MQ_IFACE_SATA:
	case MQ_IFACE_SCSI:
	case MQ_IFACE_NONE:
	default:
		return "none";
	}
}

static void push2(struct mq_strv *v, const char *a, const char *b)
{
	mq_strv_push(v, a);
	mq_strv_push(v, b);
}

static void push_opt_take(struct mq_strv *v, const char *opt, struct mq_strbuf *sb)
{
	mq_strv_push(v, opt);
	mq_strv_push_take(v, mq_strbuf_detach(sb));
}

int mq_qemu_build_argv(const struct mq_spec *spec, const struct mq_vm_paths *paths, const char *accel,
		       const char *disk_dir, struct mq_strv *argv, struct mq_error **err)
{
	struct mq_strv v = MQ_STRV_INIT;
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	unsigned n_sata = 0;
	bool scsi = false;

	mq_strv_push(&v, spec->binary ? spec->binary : "qemu-system-x86_64");
	add_esc(&sb, spec->name);
	push_opt_take(&v, "-name", &sb);
	if (spec->machine)
		push2(&v, "-machine", spec->machine);
	push2(&v, "-accel", accel ? accel : mq_accel_resolve(spec->accel));
	if (spec->memory) {
		uint64_t mib = (spec->memory + (1024 * 1024 - 1)) / (1024 * 1024);
		mq_strv_push(&v, "-m");
		mq_strv_pushf(&v, "%lluM", (unsigned long long)mib);
	}
	if (spec->cpu) {
		mq_strv_push(&v, "-smp");
		mq_strv_pushf(&v, "%u", spec->cpu);
	}
	if (spec->display)
		push2(&v, "-display", spec->display);
	if (spec->vga)
		push2(&v, "-vga", spec->vga);

	for (size_t i = 0; i < spec->n_storage; i++) {
		const struct mq_storage *s = &spec->storage[i];
		if (s->type == MQ_STORAGE_VIRTFS) {
			mq_strbuf_adds(&sb, "local,path=");
			add_esc(&sb, s->path ? s->path : "");
			mq_strbuf_adds(&sb, ",mount_tag=");
			add_esc(&sb, s->mount_tag ? s->mount_tag : s->name);
			mq_strbuf_adds(&sb, ",security_model=");
			add_esc(&sb, s->security_model ? s->security_model : "mapped-xattr");
			if (s->readonly)
				mq_strbuf_adds(&sb, ",readonly=on");
			mq_strbuf_adds(&sb, ",id=");
			add_esc(&sb, s->name);
			push_opt_take(&v, "-virtfs", &sb);
			continue;
		}
		if (!s->file && !disk_dir) {
			mq_strbuf_release(&sb);
			mq_strv_clear(&v);
			return mq_error_set(err, EINVAL, "storage '%s' of vm '%s': no 'file' and no disk directory",
					    s->name, spec->name);
		}
		if (s->interface == MQ_IFACE_SATA && n_sata >= SATA_PORTS) {
			mq_strbuf_release(&sb);
			mq_strv_clear(&v);
			return mq_error_set(err, EINVAL, "storage '%s' of vm '%s': at most %d sata disks are supported",
					    s->name, spec->name, SATA_PORTS);
		}
		char *img = mq_storage_image_path(spec, s, disk_dir);
		mq_strbuf_adds(&sb, "file=");
		add_esc(&sb, img);
		free(img);
		mq_strbuf_addf(&sb, ",format=%s,if=%s,id=", s->type == MQ_STORAGE_RAW ? "raw" : "qcow2",
			       iface_if(s->interface));
		add_esc(&sb, s->name);
		push_opt_take(&v, "-drive", &sb);

		if (s->interface == MQ_IFACE_SATA) {
			if (n_sata == 0)
				push2(&v, "-device", "ahci,id=ahci0");
			mq_strbuf_adds(&sb, "ide-hd,drive=");
			add_esc(&sb, s->name);
			mq_strbuf_addf(&sb, ",bus=ahci0.%u", n_sata++);
			push_opt_take(&v, "-device", &sb);
		} else if (s->interface == MQ_IFACE_SCSI) {
			if (!scsi)
				push2(&v, "-device", "virtio-scsi-pci,id=scsi0");
			scsi = true;
			mq_strbuf_adds(&sb, "scsi-hd,drive=");
			add_esc(&sb, s->name);
			mq_strbuf_adds(&sb, ",bus=scsi0.0");
			push_opt_take(&v, "-device", &sb);
		}
	}

	for (size_t i = 0; i < spec->n_network; i++) {
		const struct mq_network *n = &spec->network[i];
		if (n->type && strcmp(n->type, "user") != 0) {
			mq_strbuf_release(&sb);
			mq_strv_clear(&v);
			return mq_error_set(err, EINVAL, "vm '%s': unsupported network type '%s'", spec->name, n->type);
		}
		mq_strbuf_addf(&sb, "user,id=net%zu", i);
		for (size_t j = 0; j < n->n_forwards; j++) {
			const struct mq_forward *f = &n->forwards[j];
			mq_strbuf_addf(&sb, ",hostfwd=%s::%u-:%u", f->proto[0] ? f->proto : "tcp",
				       (unsigned)f->host_port, (unsigned)f->guest_port);
		}
		push_opt_take(&v, "-netdev", &sb);
		mq_strbuf_addf(&sb, "virtio-net-pci,netdev=net%zu", i);
		push_opt_take(&v, "-device", &sb);
	}
	if (spec->n_network == 0)
		push2(&v, "-nic", "none");

	if (spec->serial == MQ_SERIAL_LOG) {
		mq_strbuf_adds(&sb, "file,id=serial0,path=");
		add_esc(&sb, paths->serial_log);
		push_opt_take(&v, "-chardev", &sb);
		push2(&v, "-serial", "chardev:serial0");
	} else {
		push2(&v, "-serial", "none");
	}
	push2(&v, "-monitor", "none");
	push2(&v, "-parallel", "none");

	mq_strbuf_adds(&sb, "socket,id=mqmp,path=");
	add_esc(&sb, paths->qmp);
	mq_strbuf_adds(&sb, ",server=on,wait=off");
	push_opt_take(&v, "-chardev", &sb);
	push2(&v, "-mon", "chardev=mqmp,mode=control");
	mq_strbuf_adds(&sb, "socket,id=mqev,path=");
	add_esc(&sb, paths->qmp_ev);
	mq_strbuf_adds(&sb, ",server=on,wait=off");
	push_opt_take(&v, "-chardev", &sb);
	push2(&v, "-mon", "chardev=mqev,mode=control");

	mq_strv_extend(&v, &spec->arguments);
	mq_strv_extend(&v, &spec->args);

	mq_strbuf_release(&sb);
	mq_strv_extend(argv, &v);
	mq_strv_clear(&v);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Child process helpers (async-signal-safe only after fork)                 */

struct linux_dirent64_hdr {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static void child_close_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
#endif
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		char buf[4096] __attribute__((aligned(8)));
		long n;
		while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct linux_dirent64_hdr *d = (struct linux_dirent64_hdr *)(void *)(buf + off);
				off += d->d_reclen;
				int fd = 0;
				const char *c = d->d_name;
				if (*c < '0' || *c > '9')
					continue;
				for (; *c >= '0' && *c <= '9' && fd < 1000000000 / 10; c++)
					fd = fd * 10 + (*c - '0');
				if (*c == '\0' && fd >= 3 && fd != dfd)
					close(fd);
			}
		}
		close(dfd);
		return;
	}
	long max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = 3; fd < max; fd++)
		close(fd);
}

static void child_reset_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	(void)sigprocmask(SIG_SETMASK, &set, NULL);
}

static void child_write_str(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len) {
		ssize_t w = write(fd, s, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

/* Describe a wait status: "exited with status N" / "killed by signal S". */
static char *wait_status_str(int st)
{
	if (WIFEXITED(st))
		return xasprintf("exited with status %d", WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return xasprintf("killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	return xasprintf("ended with wait status 0x%x", (unsigned)st);
}

/* Last non-empty line of buf (trimmed), skipping lines starting with `skip`
 * (may be NULL).  Returns a new string, "" when none. */
static char *last_line(const char *buf, size_t len, const char *skip)
{
	size_t end = len;
	while (end > 0) {
		while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r' || buf[end - 1] == ' ' ||
				   buf[end - 1] == '\t'))
			end--;
		if (end == 0)
			break;
		size_t start = end;
		while (start > 0 && buf[start - 1] != '\n')
			start--;
		const char *l = buf + start;
		size_t ll = end - start;
		while (ll && (*l == ' ' || *l == '\t')) {
			l++;
			ll--;
		}
		if (ll && !(skip && ll >= strlen(skip) && memcmp(l, skip, strlen(skip)) == 0))
			return xstrndup(l, ll);
		end = start;
	}
	return xstrdup("");
}

/* Look `name` up like execvp does; NULL when not found.  Caller frees. */
static char *resolve_in_path(const char *name)
{
	if (!name || !*name)
		return NULL;
	if (strchr(name, '/')) {
		struct stat st;
		if (stat(name, &st) == 0 && S_ISREG(st.st_mode) && access(name, X_OK) == 0)
			return xstrdup(name);
		return NULL;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	const char *p = path;
	for (;;) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char *cand = n ? xasprintf("%.*s/%s", (int)n, p, name) : xasprintf("./%s", name);
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
			return cand;
		free(cand);
		if (!e)
			break;
		p = e + 1;
	}
	return NULL;
}

/* Run path with argv, stdin from /dev/null, stdout+stderr captured together
 * (capped), at most timeout_ms (then SIGKILL).  *out gets the output,
 * *status the wait status.  Returns 0 (whatever the exit status), -ETIMEDOUT
 * or -errno. */
static int run_capture(const char *path, char *const argv[], int timeout_ms, char **out, int *status,
		       struct mq_error **err)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return mq_error_set(err, errno, "cannot create pipe: %s", strerror(errno));
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		return mq_error_set(err, e, "cannot open /dev/null: %s", strerror(e));
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		close(nullfd);
		return mq_error_set(err, e, "cannot fork: %s", strerror(e));
	}
	if (pid == 0) {
		child_reset_signals();
		if (dup2(nullfd, 0) < 0 || dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
			_exit(127);
		child_close_fds();
		execv(path, argv);
		child_write_str(2, "cannot exec '");
		child_write_str(2, path);
		child_write_str(2, "': ");
		child_write_str(2, strerror(errno));
		child_write_str(2, "\n");
		_exit(127);
	}
	close(pfd[1]);
	close(nullfd);

	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	int64_t deadline = mq_mono_ms() + timeout_ms;
	bool timed_out = false;
	for (;;) {
		int64_t left = deadline - mq_mono_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (r == 0)
			continue;
		char buf[4096];
		ssize_t n = read(pfd[0], buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		if (n == 0)
			break;
		if (sb.len < RUN_OUTPUT_CAP)
			mq_strbuf_add(&sb, buf, (size_t)n);
	}
	close(pfd[0]);
	if (timed_out)
		kill(pid, SIGKILL); /* our own unreaped child: the pid cannot have been reused */
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			int e = errno;
			mq_strbuf_release(&sb);
			return mq_error_set(err, e, "cannot wait for '%s': %s", path, strerror(e));
		}
	}
	if (timed_out) {
		mq_strbuf_release(&sb);
		return mq_error_set(err, ETIMEDOUT, "'%s' did not finish within %d ms", path, timeout_ms);
	}
	*out = mq_strbuf_detach(&sb);
	*status = st;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Binary check                                                              */

int mq_qemu_check_binary(const char *binary, char **resolved, char **version, struct mq_error **err)
{
	if (!binary)
		binary = "qemu-system-x86_64";
	char *path = resolve_in_path(binary);
	if (!path)
		return mq_error_set(err, ENOENT,
				    "qemu binary '%s' not found (install qemu-system-x86 or set 'binary:' in the manifest)",
				    binary);
	char *argv[] = { path, (char *)"--version", NULL };
	char *out = NULL;
	int st = 0;
	int r = run_capture(path, argv, VERSION_TIMEOUT_MS, &out, &st, err);
	if (r < 0) {
		mq_error_prefix(err, "cannot run '%s --version'", path);
		free(path);
		return r;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *how = wait_status_str(st);
		char *line = last_line(out, strlen(out), NULL);
		r = mq_error_set(err, EINVAL, "'%s --version' %s%s%s", path, how, *line ? ": " : "", line);
		free(line);
		free(how);
		free(out);
		free(path);
		return r;
	}
	if (version) {
		size_t n = strcspn(out, "\r\n");
		*version = xstrndup(out, n);
	}
	free(out);
	if (resolved)
		*resolved = path;
	else
		free(path);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Disks                                                                     */

/* qemu-img next to an explicit binary path, else through PATH. */
static char *find_qemu_img(const struct mq_spec *spec)
{
	if (spec->binary && strchr(spec->binary, '/')) {
		char *dir = mq_path_dirname(spec->binary);
		char *cand = xasprintf("%s/qemu-img", dir);
		free(dir);
		char *r = resolve_in_path(cand);
		free(cand);
		if (r)
			return r;
	}
	return resolve_in_path("qemu-img");
}

/* qemu-img's diagnostics on one line: non-empty lines joined by "; ", each
 * without the "qemu-img: " and "<image>: " prefixes (its last line alone,
 * "Could not open backing image.", would hide the reason). */
static char *qemu_img_message(const char *out, const char *img)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	size_t il = strlen(img);
	for (const char *l = out; *l;) {
		size_t n = strcspn(l, "\r\n");
		const char *e = l + n;
		while (n && (*l == ' ' || *l == '\t')) {
			l++;
			n--;
		}
		while (n && (l[n - 1] == ' ' || l[n - 1] == '\t'))
			n--;
		if (n >= 10 && memcmp(l, "qemu-img: ", 10) == 0) {
			l += 10;
			n -= 10;
		}
		if (n >= il + 2 && memcmp(l, img, il) == 0 && l[il] == ':' && l[il + 1] == ' ') {
			l += il + 2;
			n -= il + 2;
		}
		if (n) {
			if (sb.len)
				mq_strbuf_adds(&sb, "; ");
			mq_strbuf_add(&sb, l, n);
		}
		l = e;
		while (*l == '\r' || *l == '\n')
			l++;
	}
	return mq_strbuf_detach(&sb);
}

static int create_image(const struct mq_spec *spec, const struct mq_storage *s, const char *img,
			bool default_dir, struct mq_error **err)
{
	const char *fmt = s->type == MQ_STORAGE_RAW ? "raw" : "qcow2";
	char *dir = mq_path_dirname(img);
	int r = mq_mkdir_p(dir, default_dir ? 0700 : 0755, err);
	free(dir);
	if (r < 0)
		return mq_error_prefix(err, "storage '%s' of vm '%s'", s->name, spec->name);

	char *qimg = find_qemu_img(spec);
	if (!qimg)
		return mq_error_set(err, ENOENT,
				    "storage '%s' of vm '%s': cannot create image '%s': qemu-img not found "
				    "(install qemu-utils)",
				    s->name, spec->name, img);

	/* Reserve the name: O_EXCL never follows or replaces anything that
	 * appeared since the caller's lstat(), so qemu-img only ever rewrites
	 * the empty file created here. */
	int fd = open(img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;
		free(qimg);
		if (e == EEXIST)
			return 0; /* appeared meanwhile: leave it alone */
		return mq_error_set(err, e, "storage '%s' of vm '%s': cannot create image '%s': %s", s->name,
				    spec->name, img, strerror(e));
	}
	close(fd);

	struct mq_strv av = MQ_STRV_INIT;
	mq_strv_push(&av, qimg);
	mq_strv_push(&av, "create");
	mq_strv_push(&av, "-q");
	push2(&av, "-f", fmt);
	if (s->backing_file) {
		push2(&av, "-b", s->backing_file);
		push2(&av, "-F", s->backing_format ? s->backing_format : "qcow2");
	}
	mq_strv_push(&av, img);
	if (s->size)
		mq_strv_pushf(&av, "%llu", (unsigned long long)s->size);

	char *out = NULL;
	int st = 0;
	r = run_capture(qimg, av.v, QEMU_IMG_TIMEOUT_MS, &out, &st, err);
	if (r < 0) {
		mq_error_prefix(err, "storage '%s' of vm '%s': cannot create image '%s'", s->name, spec->name, img);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *line = qemu_img_message(out, img);
		if (!*line) {
			free(line);
			char *how = wait_status_str(st);
			line = xasprintf("qemu-img %s", how);
			free(how);
		}
		r = mq_error_set(err, EIO, "storage '%s' of vm '%s': cannot create image '%s': %s", s->name,
				 spec->name, img, line);
		free(line);
	}
	free(out);
	mq_strv_clear(&av);
	free(qimg);
	if (r < 0)
		unlink(img); /* only ever the file reserved above */
	return r;
}

int mq_qemu_prepare_disks(const struct mq_spec *spec, const char *disk_dir, struct mq_strv *created,
			  struct mq_error **err)
{
	for (size_t i = 0; i < spec->n_storage; i++) {
		const struct mq_storage *s = &spec->storage[i];
		struct stat st;
		if (s->type == MQ_STORAGE_VIRTFS) {
			const char *p = s->path ? s->path : "";
			if (stat(p, &st) < 0)
				return mq_error_set(err, errno, "storage '%s' of vm '%s': shared path '%s': %s", s->name,
						    spec->name, p, strerror(errno));
			if (!S_ISDIR(st.st_mode))
				return mq_error_set(err, ENOTDIR,
						    "storage '%s' of vm '%s': shared path '%s' is not a directory",
						    s->name, spec->name, p);
			continue;
		}
		if (!s->file && !disk_dir)
			return mq_error_set(err, EINVAL, "storage '%s' of vm '%s': no 'file' and no disk directory",
					    s->name, spec->name);
		char *img = mq_storage_image_path(spec, s, disk_dir);
		if (lstat(img, &st) == 0) {
			free(img); /* existing images are never touched */
			continue;
		}
		if (errno != ENOENT) {
			int e = errno;
			int r = mq_error_set(err, e, "storage '%s' of vm '%s': cannot access image '%s': %s", s->name,
					     spec->name, img, strerror(e));
			free(img);
			return r;
		}
		if (!s->size && !s->backing_file) {
			int r = mq_error_set(err, ENOENT,
					     "storage '%s' of vm '%s': image '%s' does not exist and no 'size' is given",
					     s->name, spec->name, img);
			free(img);
			return r;
		}
		int r = create_image(spec, s, img, s->file == NULL, err);
		if (r < 0) {
			free(img);
			return r;
		}
		if (created)
			mq_strv_push_take(created, img);
		else
			free(img);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Start                                                                     */

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
	char *l = last_line(buf, n, "maqet: starting");
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
			char *how = wait_status_str(st);
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
	bin = resolve_in_path(binary);
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
	char cant_exec[512];
	snprintf(cant_exec, sizeof(cant_exec), "maqet: cannot exec '%s': ", bin);

	pid_t pid = fork();
	if (pid < 0) {
		r = mq_error_set(err, errno, "cannot start vm '%s': cannot fork: %s", spec->name, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		(void)setsid();
		umask(077);
		child_reset_signals();
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		child_close_fds();
		execv(bin, argv.v);
		int e = errno;
		child_write_str(2, cant_exec);
		child_write_str(2, strerror(e));
		child_write_str(2, "\n");
		_exit(127);
	}
	close(logfd);
	logfd = -1;
	close(nullfd);
	nullfd = -1;

	struct mq_pidref ref = { .pid = pid, .start_time = 0 };
	int sr = -ENOENT;
	for (int i = 0; i < 100 && sr < 0; i++) {
		sr = mq_proc_stat(pid, &ref.start_time, NULL);
		if (sr < 0)
			(void)poll(NULL, 0, 2);
	}
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
