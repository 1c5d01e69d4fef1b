/* doctor.c - health checks and safe fixes (see doctor.h). */
#include "reconciler/doctor.h"
#include "reconciler/logrot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "reconciler/audit.h"
#include "reconciler/host.h"
#include "reconciler/lock.h"
#include "reconciler/phase.h"
#include "reconciler/proc.h"
#include "reconciler/spawn.h"
#include "reconciler/vmpaths.h"
#include "specs/fromjson.h"
#include "state/store.h"
#include "util/paths.h"
#include "util/strv.h"
#include "util/xalloc.h"

#define SPACE_WARN (1024ull * 1024 * 1024)
#define SPACE_FAIL (64ull * 1024 * 1024)

__attribute__((format(printf, 5, 6))) static struct mq_finding *add(struct mq_doctor *d, const char *check,
								     enum mq_check_level lvl, const char *hint,
								     const char *fmt, ...)
{
	if (d->n == d->alloc) {
		d->alloc = d->alloc ? d->alloc * 2 : 16;
		d->f = xrealloc(d->f, d->alloc * sizeof(*d->f));
	}
	struct mq_finding *f = &d->f[d->n++];
	memset(f, 0, sizeof(*f));
	f->check = check;
	f->level = lvl;
	va_list ap;
	va_start(ap, fmt);
	f->message = xvasprintf(fmt, ap);
	va_end(ap);
	f->hint = hint ? xstrdup(hint) : NULL;
	return f;
}

static void mark_fixed(struct mq_finding *f, const char *what)
{
	char *m = xasprintf("%s (fixed: %s)", f->message, what);
	free(f->message);
	f->message = m;
	f->level = MQ_CHECK_OK;
	f->fixed = true;
}

/* ---- context shared by the checks ---- */

struct vmrow {
	struct mq_vm_record *rec;
	struct mq_spec *spec; /* NULL when the recorded spec cannot be read */
};

struct ctx {
	const struct mq_doctor_opts *o;
	struct mq_doctor *d;
	struct mq_store *st;
	char *db_error;       /* state db open failure */
	struct vmrow *vms;
	size_t n_vms;
};

static void check_kvm(struct ctx *c)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		add(c->d, "kvm", MQ_CHECK_OK, NULL, "/dev/kvm is usable: VMs with accel auto use KVM");
		return;
	}
	int e = errno;
	if (e == ENOENT)
		add(c->d, "kvm", MQ_CHECK_WARN,
		    "enable virtualization in the firmware and load the kvm module (modprobe kvm_intel or kvm_amd)",
		    "no /dev/kvm: VMs run under TCG emulation (slow)");
	else
		add(c->d, "kvm", MQ_CHECK_WARN, "add your user to the 'kvm' group, then log in again",
		    "cannot open /dev/kvm: %s: VMs run under TCG emulation (slow)", strerror(e));
}

static void check_qemu(struct ctx *c)
{
	struct mq_strv bins = MQ_STRV_INIT;
	mq_strv_push(&bins, "qemu-system-x86_64");
	for (size_t i = 0; i < c->n_vms; i++) {
		const char *b = c->vms[i].spec ? c->vms[i].spec->binary : NULL;
		if (b && !mq_strv_contains(&bins, b))
			mq_strv_push(&bins, b);
	}
	for (size_t i = 0; i < bins.n; i++) {
		char *resolved = NULL, *version = NULL;
		struct mq_error *err = NULL;
		if (mq_qemu_check_binary(bins.v[i], &resolved, &version, &err) == 0) {
			add(c->d, "qemu", MQ_CHECK_OK, NULL, "%s: %s", resolved, version ? version : "(no version)");
		} else {
			add(c->d, "qemu", MQ_CHECK_FAIL,
			    "install qemu-system-x86 (or fix 'binary:' in the manifests that name it)", "%s",
			    err && err->msg ? err->msg : "qemu binary unusable");
		}
		mq_error_free(err);
		free(resolved);
		free(version);
	}
	mq_strv_clear(&bins);
}

static void check_qemu_img(struct ctx *c)
{
	char *p = mq_spawn_resolve("qemu-img");
	if (p)
		add(c->d, "qemu-img", MQ_CHECK_OK, NULL, "%s", p);
	else
		add(c->d, "qemu-img", MQ_CHECK_FAIL, "install qemu-utils (qemu-img creates the disk images)",
		    "qemu-img not found on PATH");
	free(p);
}

static void check_runtime_dir(struct ctx *c)
{
	const char *rt = c->o->runtime_dir;
	struct stat st;
	if (lstat(rt, &st) < 0) {
		if (errno == ENOENT)
			add(c->d, "runtime-dir", MQ_CHECK_OK, NULL, "%s: not created yet (made 0700 at the first start)",
			    rt);
		else
			add(c->d, "runtime-dir", MQ_CHECK_FAIL, "check the permissions of its parent directory",
			    "cannot stat '%s': %s", rt, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		add(c->d, "runtime-dir", MQ_CHECK_FAIL, "move it away or set MAQET_RUNTIME_DIR elsewhere",
		    "'%s' is not a directory", rt);
	} else if (st.st_uid != geteuid()) {
		add(c->d, "runtime-dir", MQ_CHECK_FAIL,
		    "another user owns it: set MAQET_RUNTIME_DIR to a directory of your own",
		    "'%s' is owned by uid %u, not by you (uid %u)", rt, (unsigned)st.st_uid, (unsigned)geteuid());
	} else if (st.st_mode & 077) {
		char hint[64 + 4096];
		snprintf(hint, sizeof(hint), "chmod 700 '%s'", rt);
		add(c->d, "runtime-dir", MQ_CHECK_FAIL, hint, "'%s' has mode %04o: others can reach the QMP sockets",
		    rt, (unsigned)(st.st_mode & 07777));
	} else {
		add(c->d, "runtime-dir", MQ_CHECK_OK, NULL, "%s: yours, mode 0700", rt);
	}
}

static void open_state(struct ctx *c)
{
	char *db = mq_path_join(c->o->state_dir, "maqet.db");
	struct stat st;
	if (stat(db, &st) < 0) {
		free(db);
		return; /* no state yet */
	}
	free(db);
	struct mq_error *err = NULL;
	if (mq_store_open(c->o->state_dir, &c->st, &err) < 0 || mq_store_integrity_check(c->st, &err) < 0) {
		c->db_error = xstrdup(err && err->msg ? err->msg : "cannot open the state database");
		mq_error_free(err);
		c->st = mq_store_free(c->st);
		return;
	}
	struct mq_vm_record **recs = NULL;
	size_t n = 0;
	if (mq_store_vm_list(c->st, &recs, &n, &err) < 0) {
		c->db_error = xstrdup(err && err->msg ? err->msg : "cannot list vm records");
		mq_error_free(err);
		return;
	}
	c->vms = xcalloc(n ? n : 1, sizeof(*c->vms));
	c->n_vms = n;
	for (size_t i = 0; i < n; i++) {
		c->vms[i].rec = recs[i];
		if (mq_spec_from_canonical(recs[i]->spec_json, recs[i]->source, &c->vms[i].spec, &err) < 0)
			err = mq_error_free(err);
	}
	free(recs);
}

static void check_state_db(struct ctx *c)
{
	if (c->db_error)
		add(c->d, "state-db", MQ_CHECK_FAIL,
		    "restore maqet.db from a backup, or move it (with -wal and -shm) away to start empty; running "
		    "QEMUs are then orphans",
		    "%s", c->db_error);
	else if (!c->st)
		add(c->d, "state-db", MQ_CHECK_OK, NULL, "%s/maqet.db: no state yet", c->o->state_dir);
	else
		add(c->d, "state-db", MQ_CHECK_OK, NULL, "%s/maqet.db: integrity ok, schema %d, %zu vm%s",
		    c->o->state_dir, mq_store_schema_version(c->st), c->n_vms, c->n_vms == 1 ? "" : "s");
}

/* Nearest existing ancestor (a dir that does not exist yet lives there). */
static char *existing(const char *p)
{
	char *cur = xstrdup(p);
	struct stat st;
	while (stat(cur, &st) < 0 && strcmp(cur, "/") != 0) {
		char *up = mq_path_dirname(cur);
		free(cur);
		cur = up;
	}
	return cur;
}

static void check_space(struct ctx *c)
{
	const char *what[] = { "state", "disks", "runtime" };
	const char *dirs[] = { c->o->state_dir, c->o->disk_dir, c->o->runtime_dir };
	for (size_t i = 0; i < 3; i++) {
		char *e = existing(dirs[i]);
		struct statvfs vf;
		if (statvfs(e, &vf) < 0) {
			add(c->d, "disk-space", MQ_CHECK_WARN, NULL, "%s (%s): cannot statvfs '%s': %s", what[i], dirs[i],
			    e, strerror(errno));
			free(e);
			continue;
		}
		unsigned long long avail = (unsigned long long)vf.f_bavail * vf.f_frsize;
		unsigned long long mib = avail / (1024 * 1024);
		if (avail < SPACE_FAIL)
			add(c->d, "disk-space", MQ_CHECK_FAIL, "free space on that file system (or move the state dir)",
			    "%s (%s): only %llu MiB free", what[i], dirs[i], mib);
		else if (avail < SPACE_WARN)
			add(c->d, "disk-space", MQ_CHECK_WARN, "free space on that file system before disks grow",
			    "%s (%s): %llu MiB free", what[i], dirs[i], mib);
		else
			add(c->d, "disk-space", MQ_CHECK_OK, NULL, "%s (%s): %llu MiB free", what[i], dirs[i], mib);
		free(e);
	}
}

/* Mark the record of a VM whose QEMU is provably gone: observed-gone through
 * the phase machine, written with its event, under the state lock (and
 * re-checked under it: a concurrent maqet may have moved on). */
static int fix_gone(struct ctx *c, const char *name, struct mq_error **err)
{
	struct mq_lock lock;
	int r = mq_lock_acquire(&lock, c->o->state_dir, "doctor --fix", c->o->lock_timeout_ms, err);
	if (r < 0)
		return r;
	struct mq_vm_record *rec = NULL;
	r = mq_store_vm_get(c->st, name, &rec, err);
	if (r < 0)
		goto out;
	enum mq_phase ph = mq_phase_get(rec);
	struct mq_pidref ref = { .pid = (pid_t)rec->pid, .start_time = rec->start_time };
	if (!mq_phase_is_up(ph) || (rec->pid > 0 && mq_proc_check(&ref) == MQ_PROC_ALIVE)) {
		r = -EAGAIN;
		mq_error_set(err, EAGAIN, "vm '%s' changed meanwhile; run doctor again", name);
		goto out;
	}
	char *why = xasprintf("qemu (pid %lld) is gone; found by 'maqet doctor --fix'", (long long)rec->pid);
	struct mq_phase_ctx pc = { .error = why };
	r = mq_phase_apply(rec, MQ_PHASE_EV_OBSERVED_GONE, &pc, err);
	if (r == 0) {
		mq_audit_new_pass();
		r = mq_audit_record(c->st, rec, rec->source, "doctor.fix", "observed-gone", why, err);
	}
	free(why);
out:
	mq_vm_record_free(rec);
	mq_lock_release(&lock);
	return r;
}

static void check_vm_processes(struct ctx *c)
{
	size_t bad = 0, up = 0;
	for (size_t i = 0; i < c->n_vms; i++) {
		struct mq_vm_record *r = c->vms[i].rec;
		enum mq_phase ph = mq_phase_get(r);
		if (!mq_phase_is_up(ph))
			continue;
		up++;
		if (r->pid <= 0) {
			bad++;
			add(c->d, "vm-process", MQ_CHECK_WARN, "wait for the start in progress, or run 'maqet status'",
			    "vm '%s' is %s without a recorded process", r->name, mq_phase_name(ph));
			continue;
		}
		struct mq_pidref ref = { .pid = (pid_t)r->pid, .start_time = r->start_time };
		enum mq_proc_state ps = mq_proc_check(&ref);
		if (ps == MQ_PROC_ALIVE)
			continue;
		bad++;
		struct mq_finding *f = add(
			c->d, "vm-process", MQ_CHECK_FAIL,
			"run 'maqet doctor --fix' to record it as gone (or 'maqet start' / 'maqet apply' to start it again)",
			"vm '%s' is recorded %s but its qemu (pid %lld) is %s", r->name, mq_phase_name(ph),
			(long long)r->pid, ps == MQ_PROC_GONE ? "gone" : "gone (the pid now belongs to another process)");
		if (c->o->fix) {
			struct mq_error *err = NULL;
			if (fix_gone(c, r->name, &err) == 0) {
				mark_fixed(f, "recorded as crashed/stopped");
			} else {
				char *m = xasprintf("%s (not fixed: %s)", f->message, err && err->msg ? err->msg : "error");
				free(f->message);
				f->message = m;
			}
			mq_error_free(err);
		}
	}
	if (!bad)
		add(c->d, "vm-process", MQ_CHECK_OK, NULL, "%zu vm%s recorded up, each with its qemu alive", up,
		    up == 1 ? "" : "s");
}

/* The vm name a runtime-dir path of an argument names: "<rt>/<name>.<ext>". */
static char *arg_vm(const char *arg, const char *prefix)
{
	const char *p = strstr(arg, prefix);
	if (!p)
		return NULL;
	p += strlen(prefix);
	size_t n = strcspn(p, ".,/");
	return n ? xstrndup(p, n) : NULL;
}

static void check_orphans(struct ctx *c)
{
	char *pfx_path = xasprintf("path=%s/", c->o->runtime_dir);
	char *pfx_unix = xasprintf("unix:%s/", c->o->runtime_dir);
	size_t orphans = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == (long)getpid())
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		static char buf[65536];
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		char *name = NULL;
		for (char *a = buf; a < buf + n && !name; a += strlen(a) + 1) {
			name = arg_vm(a, pfx_path);
			if (!name)
				name = arg_vm(a, pfx_unix);
		}
		if (!name)
			continue;
		uint64_t start = 0;
		char state = 0;
		if (mq_proc_stat((pid_t)pid, &start, &state) < 0 || state == 'Z' || state == 'X') {
			free(name);
			continue;
		}
		bool owned = false;
		for (size_t i = 0; i < c->n_vms && !owned; i++)
			owned = c->vms[i].rec->pid == pid && c->vms[i].rec->start_time == start;
		if (!owned) {
			orphans++;
			char hint[128];
			snprintf(hint, sizeof(hint),
				 "not started by this state (or its record is gone): if you do not need it, kill %ld", pid);
			add(c->d, "orphans", MQ_CHECK_FAIL, hint,
			    "process %ld uses this runtime dir's sockets (vm '%s') but no record owns it", pid, name);
		}
		free(name);
	}
	if (d)
		closedir(d);
	if (!orphans)
		add(c->d, "orphans", MQ_CHECK_OK, NULL, "no qemu uses %s without a record", c->o->runtime_dir);
	free(pfx_path);
	free(pfx_unix);
}

static void check_sockets(struct ctx *c)
{
	size_t live = 0, stale = 0;
	DIR *d = opendir(c->o->runtime_dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char *p = mq_path_join(c->o->runtime_dir, de->d_name);
		struct stat st;
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		if (lstat(p, &st) < 0 || !S_ISSOCK(st.st_mode) || strlen(p) >= sizeof(sa.sun_path)) {
			free(p);
			continue;
		}
		memcpy(sa.sun_path, p, strlen(p) + 1);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int r = fd < 0 ? -errno : (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0);
		if (fd >= 0)
			close(fd);
		if (r == 0 || r == -EAGAIN || r == -EINPROGRESS) {
			live++;
		} else if (r == -ECONNREFUSED) {
			stale++;
			struct mq_finding *f = add(c->d, "sockets", MQ_CHECK_FAIL,
						   "run 'maqet doctor --fix' to remove it (nothing listens on it)",
						   "stale socket '%s': nothing listens on it", p);
			if (c->o->fix) {
				if (unlink(p) == 0 || errno == ENOENT)
					mark_fixed(f, "removed");
			}
		} else {
			add(c->d, "sockets", MQ_CHECK_WARN, NULL, "cannot probe socket '%s': %s", p, strerror(-r));
		}
		free(p);
	}
	if (d)
		closedir(d);
	if (!stale)
		add(c->d, "sockets", MQ_CHECK_OK, NULL, "%zu socket%s in the runtime dir, each with a listener", live,
		    live == 1 ? "" : "s");
}

static void check_disks(struct ctx *c)
{
	size_t missing = 0, total = 0;
	for (size_t i = 0; i < c->n_vms; i++) {
		const struct mq_spec *s = c->vms[i].spec;
		if (!s)
			continue;
		bool up = mq_phase_is_up(mq_phase_get(c->vms[i].rec));
		for (size_t j = 0; j < s->n_storage; j++) {
			const struct mq_storage *g = &s->storage[j];
			bool virtfs = g->type == MQ_STORAGE_VIRTFS;
			char *p = virtfs ? xstrdup(g->path ? g->path : "") : mq_storage_image_path(s, g, c->o->disk_dir);
			struct stat st;
			total++;
			if (stat(p, &st) < 0) {
				missing++;
				bool recreated = !virtfs && g->size > 0 && !up;
				add(c->d, "disks", recreated ? MQ_CHECK_WARN : MQ_CHECK_FAIL,
				    recreated ? "the next start creates it empty: restore it first if it held data"
				    : virtfs  ? "create the directory or fix 'path:' in the manifest"
					      : "restore the image, or give the disk a size so that maqet creates it",
				    "vm '%s': %s '%s' is missing: %s", s->name, virtfs ? "virtfs dir" : "disk", g->name, p);
			}
			free(p);
		}
	}
	if (!missing)
		add(c->d, "disks", MQ_CHECK_OK, NULL, "%zu declared disk%s present", total, total == 1 ? "" : "s");
}

/* A log over the cap (logrot.h): a running VM's log is rotated by watch
 * every second, so one seen here means no watch runs; --fix rotates it
 * (copy-truncate, safe while QEMU appends). */
static void check_logs(struct ctx *c)
{
	size_t big = 0;
	unsigned long long cap = mq_log_cap();
	DIR *d = opendir(c->o->runtime_dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 4 || strcmp(de->d_name + l - 4, ".log") != 0)
			continue;
		char *p = mq_path_join(c->o->runtime_dir, de->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (unsigned long long)st.st_size > cap) {
			big++;
			struct mq_finding *f =
				add(c->d, "logs", MQ_CHECK_WARN,
				    "'maqet watch' rotates running vms' logs; 'maqet doctor --fix' or 'maqet logs' rotates "
				    "this one",
				    "'%s' is %llu KiB, over the %llu KiB cap", p, (unsigned long long)st.st_size / 1024,
				    cap / 1024);
			if (c->o->fix && mq_log_is_vm_log(de->d_name) && mq_log_rotate_live(p, cap) > 0)
				mark_fixed(f, "rotated to .1");
		}
		free(p);
	}
	if (d)
		closedir(d);
	if (!big)
		add(c->d, "logs", MQ_CHECK_OK, NULL, "no log over the %llu KiB cap", cap / 1024);
}

void mq_doctor_run(const struct mq_doctor_opts *o, struct mq_doctor *out)
{
	struct ctx c = { .o = o, .d = out };
	memset(out, 0, sizeof(*out));
	open_state(&c);
	check_kvm(&c);
	check_qemu(&c);
	check_qemu_img(&c);
	check_runtime_dir(&c);
	check_state_db(&c);
	check_space(&c);
	if (c.st) {
		check_vm_processes(&c);
	}
	check_orphans(&c);
	check_sockets(&c);
	check_disks(&c);
	check_logs(&c);
	for (size_t i = 0; i < c.n_vms; i++) {
		mq_vm_record_free(c.vms[i].rec);
		mq_spec_free(c.vms[i].spec);
	}
	free(c.vms);
	free(c.db_error);
	mq_store_free(c.st);
}

enum mq_check_level mq_doctor_worst(const struct mq_doctor *d)
{
	enum mq_check_level w = MQ_CHECK_OK;
	for (size_t i = 0; i < d->n; i++)
		if (d->f[i].level > w)
			w = d->f[i].level;
	return w;
}

const char *mq_check_level_name(enum mq_check_level l)
{
	return l == MQ_CHECK_FAIL ? "fail" : l == MQ_CHECK_WARN ? "warn" : "ok";
}

void mq_doctor_release(struct mq_doctor *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->f[i].message);
		free(d->f[i].hint);
	}
	free(d->f);
	memset(d, 0, sizeof(*d));
}
