/* test-qemu.c - unit tests for reconciler/qemu.c (argv, disks, binary check,
 * start/stop against real QEMU and the fake QEMU). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "reconciler/qemu.h"
#include "reconciler/logrot.h"
#include "reconciler/qmp.h"
#include "specs/spec.h"
#include "util/error.h"
#include "util/strbuf.h"
#include "util/strv.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/mqq-XXXXXX";
	char *d = mkdtemp(tmpl);
	ck_assert_ptr_nonnull(d);
	return xstrdup(d);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void rm_rf(char *d)
{
	if (d)
		nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
}

static struct mq_spec *spec_new(const char *name)
{
	struct mq_spec *s = xcalloc(1, sizeof(*s));
	s->name = xstrdup(name);
	s->binary = xstrdup("qemu-system-x86_64");
	s->display = xstrdup("none");
	s->accel = MQ_ACCEL_TCG;
	s->serial = MQ_SERIAL_NONE;
	s->stop_timeout_ms = 30000;
	return s;
}

#define MAX_TEST_STORAGE 16

static struct mq_storage *add_storage(struct mq_spec *s, const char *name, enum mq_storage_type t)
{
	/* fixed capacity, so pointers returned earlier stay valid */
	ck_assert_uint_lt(s->n_storage, MAX_TEST_STORAGE);
	if (!s->storage)
		s->storage = xcalloc(MAX_TEST_STORAGE, sizeof(*s->storage));
	struct mq_storage *st = &s->storage[s->n_storage++];
	memset(st, 0, sizeof(*st));
	st->name = xstrdup(name);
	st->type = t;
	if (t == MQ_STORAGE_VIRTFS)
		st->security_model = xstrdup("mapped-xattr");
	return st;
}

static struct mq_network *add_network(struct mq_spec *s)
{
	s->network = xreallocarray(s->network, s->n_network + 1, sizeof(*s->network));
	struct mq_network *n = &s->network[s->n_network++];
	memset(n, 0, sizeof(*n));
	n->type = xstrdup("user");
	return n;
}

static void add_forward(struct mq_network *n, const char *proto, uint16_t host, uint16_t guest)
{
	n->forwards = xreallocarray(n->forwards, n->n_forwards + 1, sizeof(*n->forwards));
	struct mq_forward *f = &n->forwards[n->n_forwards++];
	memset(f, 0, sizeof(*f));
	snprintf(f->proto, sizeof(f->proto), "%s", proto);
	f->host_port = host;
	f->guest_port = guest;
}

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = xstrdup_null(v);
}

/* Check that argv is exactly `want` (NULL-terminated). */
static void assert_argv_eq(const struct mq_strv *argv, const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	for (size_t i = 0; i < n && i < argv->n; i++)
		ck_assert_msg(strcmp(argv->v[i], want[i]) == 0, "argv[%zu] is '%s', expected '%s'", i, argv->v[i],
			      want[i]);
	ck_assert_msg(argv->n == n, "argv has %zu tokens, expected %zu", argv->n, n);
	ck_assert_ptr_null(argv->v[argv->n]);
}

/* Index of the token sequence a, b in argv (a followed directly by b), or -1. */
static long find_pair(const struct mq_strv *argv, const char *a, const char *b)
{
	for (size_t i = 0; i + 1 < argv->n; i++)
		if (strcmp(argv->v[i], a) == 0 && (!b || strcmp(argv->v[i + 1], b) == 0))
			return (long)i;
	return -1;
}

static size_t count_tok(const struct mq_strv *argv, const char *t)
{
	size_t c = 0;
	for (size_t i = 0; i < argv->n; i++)
		c += strcmp(argv->v[i], t) == 0;
	return c;
}

static const struct mq_vm_paths fixed_paths = {
	.qmp = (char *)"/run/mq/web.qmp",
	.qmp_ev = (char *)"/run/mq/web.ev",
	.serial_log = (char *)"/run/mq/web.serial.log",
	.console = (char *)"/run/mq/web.console",
	.qemu_log = (char *)"/run/mq/web.qemu.log",
};

static bool have_qemu(void)
{
	return access("/usr/bin/qemu-system-x86_64", X_OK) == 0 ||
	       mq_qemu_check_binary("qemu-system-x86_64", NULL, NULL, NULL) == 0;
}

static bool have_qemu_img(void)
{
	const char *path = getenv("PATH");
	if (!path)
		return false;
	char *copy = xstrdup(path), *save = NULL;
	bool found = false;
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char *c = xasprintf("%s/qemu-img", d);
		found = access(c, X_OK) == 0;
		free(c);
	}
	free(copy);
	return found;
}

static void write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static char *read_small(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = xmalloc(65537);
	ssize_t n = read(fd, buf, 65536);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	if (len)
		*len = (size_t)n;
	return buf;
}

/* ------------------------------------------------------------------------ */
/* paths, accel                                                              */

START_TEST(test_paths)
{
	struct mq_vm_paths p;
	mq_vm_paths_init(&p, "/run/x", "web");
	ck_assert_str_eq(p.qmp, "/run/x/web.qmp");
	ck_assert_str_eq(p.qmp_ev, "/run/x/web.ev");
	ck_assert_str_eq(p.serial_log, "/run/x/web.serial.log");
	ck_assert_str_eq(p.qemu_log, "/run/x/web.qemu.log");
	ck_assert_str_eq(p.console, "/run/x/web.console");
	mq_vm_paths_release(&p);
	ck_assert_ptr_null(p.qmp);
	ck_assert_ptr_null(p.qemu_log);
}
END_TEST

START_TEST(test_log_rotate)
{
	char dir[] = "/tmp/mqrot.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *log = xasprintf("%s/v.serial.log", dir), *old = xasprintf("%s/v.serial.log.1", dir);
	ck_assert_int_eq(mq_log_rotate(log, 10), 0); /* absent: nothing to do */
	FILE *f = fopen(log, "w");
	fputs("0123456789", f); /* exactly the cap: kept */
	fclose(f);
	ck_assert_int_eq(mq_log_rotate(log, 10), 0);
	ck_assert_int_eq(access(old, F_OK), -1);
	f = fopen(log, "a");
	fputs("x", f); /* over the cap: rotated, an older .1 replaced */
	fclose(f);
	f = fopen(old, "w");
	fputs("older", f);
	fclose(f);
	ck_assert_int_eq(mq_log_rotate(log, 10), 1);
	ck_assert_int_eq(access(log, F_OK), -1);
	struct stat st;
	ck_assert_int_eq(stat(old, &st), 0);
	ck_assert_int_eq(st.st_size, 11);
	unlink(old);
	rmdir(dir);
	free(log);
	free(old);
}
END_TEST

/* Copy-truncate under an O_APPEND writer (logrot.h). */
START_TEST(test_log_rotate_live)
{
	char dir[] = "/tmp/mqrotl.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *log = xasprintf("%s/v.serial.log", dir), *old = xasprintf("%s/v.serial.log.1", dir);
	ck_assert_int_eq(mq_log_rotate_live(log, 4096), 0); /* absent */
	int w = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	ck_assert_int_ge(w, 0);
	char buf[5000];
	memset(buf, 'a', sizeof(buf));
	ck_assert_int_eq(write(w, buf, 4096), 4096);
	ck_assert_int_eq(mq_log_rotate_live(log, 4096), 0); /* at the cap: kept */
	ck_assert_int_eq(access(old, F_OK), -1);
	ck_assert_int_eq(write(w, "b", 1), 1);
	ck_assert_int_eq(mq_log_rotate_live(log, 4096), 1);
	struct stat st;
	ck_assert_int_eq(stat(old, &st), 0);
	ck_assert_int_eq(st.st_size, 4097);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(log, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	/* the writer's next append lands at the new end, not at its old offset */
	ck_assert_int_eq(write(w, "c", 1), 1);
	ck_assert_int_eq(stat(log, &st), 0);
	ck_assert_int_eq(st.st_size, 1);
	/* a log of more than twice the cap keeps its newest 2 x cap in .1 */
	ck_assert_int_eq(write(w, buf, 5000), 5000);
	ck_assert_int_eq(write(w, buf, 5000), 5000);
	ck_assert_int_eq(mq_log_rotate_live(log, 4096), 1);
	ck_assert_int_eq(stat(old, &st), 0);
	ck_assert_int_eq(st.st_size, 8192);
	close(w);
	/* a symlink is never followed */
	char *target = xasprintf("%s/target", dir);
	int t = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_eq(write(t, buf, 5000), 5000);
	close(t);
	unlink(log);
	ck_assert_int_eq(symlink(target, log), 0);
	ck_assert_int_eq(mq_log_rotate_live(log, 4096), 0);
	ck_assert_int_eq(stat(target, &st), 0);
	ck_assert_int_eq(st.st_size, 5000);
	/* the directory sweep sees only VM logs */
	ck_assert(mq_log_is_vm_log("web.serial.log"));
	ck_assert(mq_log_is_vm_log("web.qemu.log"));
	ck_assert(!mq_log_is_vm_log("web.serial.log.1"));
	ck_assert(!mq_log_is_vm_log(".qemu.log"));
	unlink(log);
	unlink(old);
	unlink(target);
	rmdir(dir);
	free(log);
	free(old);
	free(target);
}
END_TEST

START_TEST(test_image_path)
{
	struct mq_spec *s = spec_new("web");
	struct mq_storage *a = add_storage(s, "root", MQ_STORAGE_QCOW2);
	struct mq_storage *b = add_storage(s, "data", MQ_STORAGE_RAW);
	struct mq_storage *c = add_storage(s, "ext", MQ_STORAGE_QCOW2);
	c->file = xstrdup("/srv/img/ext.qcow2");
	char *p = mq_storage_image_path(s, &s->storage[0], "/var/tmp/disks");
	ck_assert_str_eq(p, "/var/tmp/disks/web-root.qcow2");
	free(p);
	p = mq_storage_image_path(s, &s->storage[1], "/var/tmp/disks");
	ck_assert_str_eq(p, "/var/tmp/disks/web-data.raw");
	free(p);
	p = mq_storage_image_path(s, &s->storage[2], "/var/tmp/disks");
	ck_assert_str_eq(p, "/srv/img/ext.qcow2");
	free(p);
	(void)a;
	(void)b;
	mq_spec_free(s);
}
END_TEST

START_TEST(test_accel)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	bool usable = fd >= 0;
	if (fd >= 0)
		close(fd);
	ck_assert(mq_kvm_usable() == usable);
	ck_assert(mq_kvm_usable() == usable); /* cached, same answer */
	ck_assert_str_eq(mq_accel_resolve(MQ_ACCEL_KVM), "kvm");
	ck_assert_str_eq(mq_accel_resolve(MQ_ACCEL_TCG), "tcg");
	ck_assert_str_eq(mq_accel_resolve(MQ_ACCEL_AUTO), usable ? "kvm" : "tcg");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* argv from hand-built specs                                                */

START_TEST(test_argv_minimal)
{
	struct mq_spec *s = spec_new("web");
	struct mq_strv argv = MQ_STRV_INIT;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_build_argv(s, &fixed_paths, "tcg", "/d", &argv, &err), 0);
	ck_assert_ptr_null(err);
	static const char *const want[] = {
		"qemu-system-x86_64", "-name", "web", "-accel", "tcg", "-display", "none",
		"-nic", "none", "-serial", "none", "-monitor", "none", "-parallel", "none", "-S",
		"-chardev", "socket,id=mqmp,path=/run/mq/web.qmp,server=on,wait=off",
		"-mon", "chardev=mqmp,mode=control",
		"-chardev", "socket,id=mqev,path=/run/mq/web.ev,server=on,wait=off",
		"-mon", "chardev=mqev,mode=control",
		NULL,
	};
	assert_argv_eq(&argv, want);
	mq_strv_clear(&argv);
	mq_spec_free(s);
}
END_TEST

START_TEST(test_argv_full)
{
	struct mq_spec *s = spec_new("web");
	set_str(&s->binary, "/opt/qemu/bin/qemu-system-x86_64");
	set_str(&s->machine, "q35");
	s->accel = MQ_ACCEL_KVM;
	s->memory = 1024ull * 1024 * 1024;
	s->cpu = 2;
	set_str(&s->display, "gtk");
	set_str(&s->vga, "std");
	add_storage(s, "root", MQ_STORAGE_QCOW2);                       /* virtio, default path */
	struct mq_storage *st = add_storage(s, "d1", MQ_STORAGE_RAW);    /* sata */
	st->file = xstrdup("/srv/a,b.raw");
	st->interface = MQ_IFACE_SATA;
	st = add_storage(s, "d2", MQ_STORAGE_QCOW2); /* sata again: one ahci controller */
	st->interface = MQ_IFACE_SATA;
	st = add_storage(s, "d3", MQ_STORAGE_QCOW2);
	st->interface = MQ_IFACE_IDE;
	st = add_storage(s, "d4", MQ_STORAGE_QCOW2);
	st->interface = MQ_IFACE_SCSI;
	st = add_storage(s, "d5", MQ_STORAGE_RAW);
	st->interface = MQ_IFACE_SCSI;
	st = add_storage(s, "d6", MQ_STORAGE_QCOW2);
	st->interface = MQ_IFACE_NONE;
	st = add_storage(s, "share", MQ_STORAGE_VIRTFS);
	st->path = xstrdup("/srv/sh,are");
	st->mount_tag = xstrdup("host0");
	st->readonly = true;
	st = add_storage(s, "rw", MQ_STORAGE_VIRTFS);
	st->path = xstrdup("/srv/rw");
	st->mount_tag = xstrdup("host1");
	set_str(&st->security_model, "none");
	struct mq_network *n = add_network(s);
	add_forward(n, "tcp", 2222, 22);
	add_forward(n, "udp", 5353, 53);
	add_network(s);
	s->serial = MQ_SERIAL_LOG;
	mq_strv_push(&s->arguments, "-device");
	mq_strv_push(&s->arguments, "virtio-rng-pci");
	mq_strv_push(&s->arguments, "-no-reboot");
	mq_strv_push(&s->args, "-boot");
	mq_strv_push(&s->args, "order=c");

	struct mq_strv argv = MQ_STRV_INIT;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_build_argv(s, &fixed_paths, "kvm", "/var/d,isks", &argv, &err), 0);
	static const char *const want[] = {
		"/opt/qemu/bin/qemu-system-x86_64", "-name", "web", "-machine", "q35", "-accel", "kvm",
		"-m", "1024M", "-smp", "2", "-display", "gtk", "-vga", "std",
		"-drive", "file=/var/d,,isks/web-root.qcow2,format=qcow2,if=virtio,id=root,node-name=mq-root",
		"-drive", "file=/srv/a,,b.raw,format=raw,if=none,id=d1,node-name=mq-d1",
		"-device", "ahci,id=ahci0",
		"-device", "ide-hd,drive=d1,bus=ahci0.0",
		"-drive", "file=/var/d,,isks/web-d2.qcow2,format=qcow2,if=none,id=d2,node-name=mq-d2",
		"-device", "ide-hd,drive=d2,bus=ahci0.1",
		"-drive", "file=/var/d,,isks/web-d3.qcow2,format=qcow2,if=ide,id=d3,node-name=mq-d3",
		"-drive", "file=/var/d,,isks/web-d4.qcow2,format=qcow2,if=none,id=d4,node-name=mq-d4",
		"-device", "virtio-scsi-pci,id=scsi0",
		"-device", "scsi-hd,drive=d4,bus=scsi0.0",
		"-drive", "file=/var/d,,isks/web-d5.raw,format=raw,if=none,id=d5,node-name=mq-d5",
		"-device", "scsi-hd,drive=d5,bus=scsi0.0",
		"-drive", "file=/var/d,,isks/web-d6.qcow2,format=qcow2,if=none,id=d6,node-name=mq-d6",
		"-virtfs", "local,path=/srv/sh,,are,mount_tag=host0,security_model=mapped-xattr,readonly=on,id=share",
		"-virtfs", "local,path=/srv/rw,mount_tag=host1,security_model=none,id=rw",
		"-netdev", "user,id=net0,hostfwd=tcp::2222-:22,hostfwd=udp::5353-:53",
		"-device", "virtio-net-pci,netdev=net0",
		"-netdev", "user,id=net1",
		"-device", "virtio-net-pci,netdev=net1",
		"-chardev", "socket,id=serial0,path=/run/mq/web.console,server=on,wait=off,logfile=/dev/fd/3,logappend=on",
		"-serial", "chardev:serial0",
		"-monitor", "none", "-parallel", "none", "-S",
		"-chardev", "socket,id=mqmp,path=/run/mq/web.qmp,server=on,wait=off",
		"-mon", "chardev=mqmp,mode=control",
		"-chardev", "socket,id=mqev,path=/run/mq/web.ev,server=on,wait=off",
		"-mon", "chardev=mqev,mode=control",
		"-device", "virtio-rng-pci", "-no-reboot",
		"-boot", "order=c",
		NULL,
	};
	assert_argv_eq(&argv, want);
	mq_strv_clear(&argv);
	mq_spec_free(s);
}
END_TEST

START_TEST(test_argv_display_null_and_memory_rounding)
{
	struct mq_spec *s = spec_new("vm1");
	set_str(&s->display, NULL); /* `arguments` provides it */
	s->memory = 64ull * 1024 * 1024 + 1; /* rounds up to whole MiB */
	mq_strv_push(&s->arguments, "-display");
	mq_strv_push(&s->arguments, "vnc=:1");
	struct mq_strv argv = MQ_STRV_INIT;
	ck_assert_int_eq(mq_qemu_build_argv(s, &fixed_paths, "tcg", "/d", &argv, NULL), 0);
	ck_assert_uint_eq(count_tok(&argv, "-display"), 1);
	ck_assert_int_eq(find_pair(&argv, "-display", "vnc=:1"), (long)argv.n - 2);
	ck_assert_int_ge(find_pair(&argv, "-m", "65M"), 0);
	ck_assert_int_lt(find_pair(&argv, "-vga", NULL), 0);
	ck_assert_int_lt(find_pair(&argv, "-machine", NULL), 0);
	ck_assert_int_lt(find_pair(&argv, "-smp", NULL), 0);
	mq_strv_clear(&argv);
	mq_spec_free(s);
}
END_TEST

START_TEST(test_argv_appends_to_existing)
{
	struct mq_spec *s = spec_new("vm1");
	struct mq_strv argv = MQ_STRV_INIT;
	mq_strv_push(&argv, "keep");
	ck_assert_int_eq(mq_qemu_build_argv(s, &fixed_paths, "tcg", "/d", &argv, NULL), 0);
	ck_assert_str_eq(argv.v[0], "keep");
	ck_assert_str_eq(argv.v[1], "qemu-system-x86_64");
	mq_strv_clear(&argv);
	mq_spec_free(s);
}
END_TEST

START_TEST(test_argv_too_many_sata)
{
	struct mq_spec *s = spec_new("vm1");
	for (int i = 0; i < 7; i++) {
		char name[8];
		snprintf(name, sizeof(name), "s%d", i);
		add_storage(s, name, MQ_STORAGE_QCOW2)->interface = MQ_IFACE_SATA;
	}
	struct mq_strv argv = MQ_STRV_INIT;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_build_argv(s, &fixed_paths, "tcg", "/d", &argv, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err->msg, "storage 's6' of vm 'vm1': at most 6 sata disks are supported");
	ck_assert_uint_eq(argv.n, 0); /* untouched on failure */
	mq_error_free(err);
	mq_spec_free(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* argv from YAML through specs/                                             */

static struct mq_specset *parse_yaml(const char *yaml, const char *base)
{
	struct mq_specset *set = mq_specset_new();
	struct mq_strv diags = MQ_STRV_INIT;
	int r = mq_spec_parse_buffer(yaml, strlen(yaml), "t.yaml", base, base, set, &diags);
	if (r < 0) {
		char *j = mq_strv_join(&diags, "\n");
		ck_abort_msg("yaml did not parse: %s", j);
	}
	mq_strv_clear(&diags);
	ck_assert_uint_eq(set->n, 1);
	return set;
}

static void yaml_argv(const char *yaml, struct mq_strv *argv)
{
	struct mq_specset *set = parse_yaml(yaml, "/srv/vms");
	const struct mq_spec *s = set->specs[0];
	struct mq_error *err = NULL;
	int r = mq_qemu_build_argv(s, &fixed_paths, mq_accel_resolve(s->accel), "/var/disks", argv, &err);
	ck_assert_msg(r == 0, "build_argv: %s", err ? err->msg : "?");
	mq_specset_free(set);
}

START_TEST(test_yaml_minimal_defaults)
{
	struct mq_strv argv = MQ_STRV_INIT;
	yaml_argv("name: web\naccel: tcg\n", &argv);
	static const char *const want[] = {
		"qemu-system-x86_64", "-name", "web", "-accel", "tcg", "-display", "none",
		"-nic", "none",
		"-chardev", "socket,id=serial0,path=/run/mq/web.console,server=on,wait=off,logfile=/dev/fd/3,logappend=on", "-serial", "chardev:serial0",
		"-monitor", "none", "-parallel", "none", "-S",
		"-chardev", "socket,id=mqmp,path=/run/mq/web.qmp,server=on,wait=off",
		"-mon", "chardev=mqmp,mode=control",
		"-chardev", "socket,id=mqev,path=/run/mq/web.ev,server=on,wait=off",
		"-mon", "chardev=mqev,mode=control",
		NULL,
	};
	assert_argv_eq(&argv, want);
	mq_strv_clear(&argv);
}
END_TEST

START_TEST(test_yaml_every_key)
{
	struct mq_strv argv = MQ_STRV_INIT;
	yaml_argv("name: web\n"
		  "binary: /opt/q/qemu-system-x86_64\n"
		  "machine: q35\n"
		  "accel: kvm\n"
		  "memory: 1G\n"
		  "cpu: 2\n"
		  "display: gtk\n"
		  "vga: std\n"
		  "serial: none\n"
		  "storage:\n"
		  "  - name: root\n"
		  "    type: qcow2\n"
		  "    size: 1G\n"
		  "    interface: virtio\n"
		  "  - name: data\n"
		  "    type: raw\n"
		  "    file: /srv/img/da,ta.raw\n"
		  "    interface: sata\n"
		  "  - name: ide0\n"
		  "    type: qcow2\n"
		  "    size: 1G\n"
		  "    interface: ide\n"
		  "  - name: sc\n"
		  "    type: qcow2\n"
		  "    size: 1G\n"
		  "    interface: scsi\n"
		  "  - name: loose\n"
		  "    type: raw\n"
		  "    size: 1M\n"
		  "    interface: none\n"
		  "  - name: share\n"
		  "    type: virtfs\n"
		  "    path: /srv/share\n"
		  "    mount_tag: host0\n"
		  "    readonly: true\n"
		  "network:\n"
		  "  - type: user\n"
		  "    forward:\n"
		  "      - tcp:2222:22\n"
		  "      - udp:5353:53\n"
		  "  - type: user\n"
		  "arguments:\n"
		  "  - no-reboot: null\n"
		  "args:\n"
		  "  - -boot\n"
		  "  - order=c\n",
		  &argv);
	ck_assert_str_eq(argv.v[0], "/opt/q/qemu-system-x86_64");
	ck_assert_int_eq(find_pair(&argv, "-name", "web"), 1);
	ck_assert_int_eq(find_pair(&argv, "-machine", "q35"), 3);
	ck_assert_int_eq(find_pair(&argv, "-accel", "kvm"), 5);
	ck_assert_int_eq(find_pair(&argv, "-m", "1024M"), 7);
	ck_assert_int_eq(find_pair(&argv, "-smp", "2"), 9);
	ck_assert_int_eq(find_pair(&argv, "-display", "gtk"), 11);
	ck_assert_int_eq(find_pair(&argv, "-vga", "std"), 13);
	ck_assert_int_ge(find_pair(&argv, "-drive", "file=/var/disks/web-root.qcow2,format=qcow2,if=virtio,id=root,node-name=mq-root"), 0);
	ck_assert_int_ge(find_pair(&argv, "-drive", "file=/srv/img/da,,ta.raw,format=raw,if=none,id=data,node-name=mq-data"), 0);
	ck_assert_int_ge(find_pair(&argv, "-device", "ahci,id=ahci0"), 0);
	ck_assert_int_ge(find_pair(&argv, "-device", "ide-hd,drive=data,bus=ahci0.0"), 0);
	ck_assert_int_ge(find_pair(&argv, "-drive", "file=/var/disks/web-ide0.qcow2,format=qcow2,if=ide,id=ide0,node-name=mq-ide0"), 0);
	ck_assert_int_ge(find_pair(&argv, "-drive", "file=/var/disks/web-sc.qcow2,format=qcow2,if=none,id=sc,node-name=mq-sc"), 0);
	ck_assert_int_ge(find_pair(&argv, "-device", "virtio-scsi-pci,id=scsi0"), 0);
	ck_assert_int_ge(find_pair(&argv, "-device", "scsi-hd,drive=sc,bus=scsi0.0"), 0);
	ck_assert_int_ge(find_pair(&argv, "-drive", "file=/var/disks/web-loose.raw,format=raw,if=none,id=loose,node-name=mq-loose"), 0);
	ck_assert_int_ge(find_pair(&argv, "-virtfs",
				   "local,path=/srv/share,mount_tag=host0,security_model=mapped-xattr,readonly=on,id=share"),
			 0);
	ck_assert_int_ge(find_pair(&argv, "-netdev", "user,id=net0,hostfwd=tcp::2222-:22,hostfwd=udp::5353-:53"), 0);
	ck_assert_int_ge(find_pair(&argv, "-device", "virtio-net-pci,netdev=net0"), 0);
	ck_assert_int_ge(find_pair(&argv, "-netdev", "user,id=net1"), 0);
	ck_assert_int_ge(find_pair(&argv, "-device", "virtio-net-pci,netdev=net1"), 0);
	ck_assert_int_lt(find_pair(&argv, "-nic", "none"), 0);
	ck_assert_int_ge(find_pair(&argv, "-serial", "none"), 0);
	ck_assert_int_lt(find_pair(&argv, "-chardev", "file,id=serial0,path=/dev/fd/3"), 0);
	/* `arguments` then `args`, verbatim, at the very end */
	ck_assert_uint_ge(argv.n, 3);
	ck_assert_str_eq(argv.v[argv.n - 3], "-no-reboot");
	ck_assert_str_eq(argv.v[argv.n - 2], "-boot");
	ck_assert_str_eq(argv.v[argv.n - 1], "order=c");
	ck_assert_str_eq(argv.v[argv.n - 4], "chardev=mqev,mode=control");
	mq_strv_clear(&argv);
}
END_TEST

START_TEST(test_yaml_accel_auto_and_tcg)
{
	struct mq_strv argv = MQ_STRV_INIT;
	yaml_argv("name: a\n", &argv);
	ck_assert_int_ge(find_pair(&argv, "-accel", mq_kvm_usable() ? "kvm" : "tcg"), 0);
	ck_assert_int_lt(find_pair(&argv, "-m", NULL), 0);
	ck_assert_int_lt(find_pair(&argv, "-smp", NULL), 0);
	mq_strv_clear(&argv);
	yaml_argv("name: a\naccel: tcg\nmemory: 64M\n", &argv);
	ck_assert_int_ge(find_pair(&argv, "-accel", "tcg"), 0);
	ck_assert_int_ge(find_pair(&argv, "-m", "64M"), 0);
	mq_strv_clear(&argv);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* prepare_disks                                                             */

START_TEST(test_disks_create_qcow2_raw)
{
	if (!have_qemu_img())
		return; /* reported as pass: nothing to check without qemu-img */
	char *dir = make_tmpdir();
	char *disks = xasprintf("%s/state/disks", dir);
	struct mq_spec *s = spec_new("web");
	add_storage(s, "root", MQ_STORAGE_QCOW2)->size = 64ull * 1024 * 1024;
	add_storage(s, "data", MQ_STORAGE_RAW)->size = 1024 * 1024;
	struct mq_storage *ext = add_storage(s, "ext", MQ_STORAGE_QCOW2);
	ext->file = xasprintf("%s/ext dir/e,x.qcow2", dir);
	ext->size = 1024 * 1024;
	struct mq_strv created = MQ_STRV_INIT;
	struct mq_error *err = NULL;
	int r = mq_qemu_prepare_disks(s, disks, &created, &err);
	ck_assert_msg(r == 0, "prepare_disks: %s", err ? err->msg : "?");
	ck_assert_uint_eq(created.n, 3);
	char *root = xasprintf("%s/web-root.qcow2", disks);
	char *data = xasprintf("%s/web-data.raw", disks);
	ck_assert_str_eq(created.v[0], root);
	ck_assert_str_eq(created.v[1], data);
	ck_assert_str_eq(created.v[2], ext->file);

	size_t len = 0;
	char *hdr = read_small(root, &len);
	ck_assert_ptr_nonnull(hdr);
	ck_assert_uint_ge(len, 4);
	ck_assert_int_eq(memcmp(hdr, "QFI\xfb", 4), 0);
	free(hdr);
	hdr = read_small(ext->file, &len);
	ck_assert_ptr_nonnull(hdr);
	ck_assert_int_eq(memcmp(hdr, "QFI\xfb", 4), 0);
	free(hdr);
	struct stat st;
	ck_assert_int_eq(stat(data, &st), 0);
	ck_assert_int_eq(st.st_size, 1024 * 1024);
	ck_assert_int_eq(stat(disks, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);

	/* second run: everything exists, nothing created */
	mq_strv_clear(&created);
	ck_assert_int_eq(mq_qemu_prepare_disks(s, disks, &created, &err), 0);
	ck_assert_uint_eq(created.n, 0);
	free(root);
	free(data);
	free(disks);
	mq_spec_free(s);
	rm_rf(dir);
}
END_TEST

START_TEST(test_disks_never_overwrite)
{
	char *dir = make_tmpdir();
	struct mq_spec *s = spec_new("web");
	struct mq_storage *d = add_storage(s, "root", MQ_STORAGE_QCOW2);
	d->file = xasprintf("%s/existing.qcow2", dir);
	d->size = 1024 * 1024;
	write_file(d->file, "marker: not an image\n");
	struct mq_storage *l = add_storage(s, "link", MQ_STORAGE_RAW);
	l->file = xasprintf("%s/dangling.raw", dir);
	l->size = 1024 * 1024;
	char *target = xasprintf("%s/target-must-not-appear", dir);
	ck_assert_int_eq(symlink(target, l->file), 0);

	struct mq_strv created = MQ_STRV_INIT;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_prepare_disks(s, dir, &created, &err), 0);
	ck_assert_uint_eq(created.n, 0);
	char *c = read_small(d->file, NULL);
	ck_assert_str_eq(c, "marker: not an image\n");
	free(c);
	ck_assert_int_eq(access(target, F_OK), -1); /* no write through a dangling symlink */
	free(target);
	mq_spec_free(s);
	rm_rf(dir);
}
END_TEST

START_TEST(test_disks_missing_without_size)
{
	char *dir = make_tmpdir();
	struct mq_spec *s = spec_new("web");
	struct mq_storage *d = add_storage(s, "root", MQ_STORAGE_QCOW2);
	d->file = xasprintf("%s/nope.qcow2", dir);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_prepare_disks(s, dir, NULL, &err), -ENOENT);
	char *want = xasprintf("storage 'root' of vm 'web': image '%s' does not exist and no 'size' is given",
			       d->file);
	ck_assert_str_eq(err->msg, want);
	ck_assert_int_eq(access(d->file, F_OK), -1);
	free(want);
	mq_error_free(err);
	mq_spec_free(s);
	rm_rf(dir);
}
END_TEST

START_TEST(test_disks_backing_file)
{
	if (!have_qemu_img())
		return;
	char *dir = make_tmpdir();
	struct mq_spec *s = spec_new("web");
	struct mq_storage *b = add_storage(s, "base", MQ_STORAGE_QCOW2);
	b->file = xasprintf("%s/base.qcow2", dir);
	b->size = 4 * 1024 * 1024;
	struct mq_storage *o = add_storage(s, "overlay", MQ_STORAGE_QCOW2);
	o->file = xasprintf("%s/overlay.qcow2", dir);
	o->size = 4 * 1024 * 1024;
	o->backing_file = xstrdup(b->file);
	o->backing_format = xstrdup("qcow2");
	struct mq_storage *o2 = add_storage(s, "overlay2", MQ_STORAGE_QCOW2); /* size taken from the backing file */
	o2->file = xasprintf("%s/overlay2.qcow2", dir);
	o2->backing_file = xstrdup(b->file);
	struct mq_error *err = NULL;
	struct mq_strv created = MQ_STRV_INIT;
	int r = mq_qemu_prepare_disks(s, dir, &created, &err);
	ck_assert_msg(r == 0, "prepare_disks: %s", err ? err->msg : "?");
	ck_assert_uint_eq(created.n, 3);
	size_t len = 0;
	for (size_t i = 1; i < 3; i++) {
		char *hdr = read_small(created.v[i], &len);
		ck_assert_int_eq(memcmp(hdr, "QFI\xfb", 4), 0);
		/* the header records the backing file name */
		ck_assert_ptr_nonnull(memmem(hdr, len, b->file, strlen(b->file)));
		free(hdr);
	}
	mq_strv_clear(&created);
	mq_spec_free(s);
	rm_rf(dir);
}
END_TEST

START_TEST(test_disks_qemu_img_failure)
{
	if (!have_qemu_img())
		return;
	char *dir = make_tmpdir();
	struct mq_spec *s = spec_new("web");
	struct mq_storage *o = add_storage(s, "overlay", MQ_STORAGE_QCOW2);
	o->file = xasprintf("%s/overlay.qcow2", dir);
	o->size = 1024 * 1024;
	o->backing_file = xasprintf("%s/missing-base.qcow2", dir);
	struct mq_error *err = NULL;
	ck_assert_int_lt(mq_qemu_prepare_disks(s, dir, NULL, &err), 0);
	char *prefix = xasprintf("storage 'overlay' of vm 'web': cannot create image '%s': ", o->file);
	ck_assert_msg(strncmp(err->msg, prefix, strlen(prefix)) == 0, "message: %s", err->msg);
	ck_assert_msg(strstr(err->msg, "missing-base.qcow2") != NULL, "message: %s", err->msg);
	ck_assert_ptr_null(strchr(err->msg, '\n'));
	ck_assert_int_eq(access(o->file, F_OK), -1); /* the reserved file is removed */
	free(prefix);
	mq_error_free(err);
	mq_spec_free(s);
	rm_rf(dir);
}
END_TEST

START_TEST(test_disks_virtfs)
{
	char *dir = make_tmpdir();
	struct mq_spec *s = spec_new("web");
	struct mq_storage *v = add_storage(s, "share", MQ_STORAGE_VIRTFS);
	v->path = xstrdup(dir);
	v->mount_tag = xstrdup("host0");
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_prepare_disks(s, NULL, NULL, &err), 0);

	free(v->path);
	v->path = xasprintf("%s/missing", dir);
	ck_assert_int_eq(mq_qemu_prepare_disks(s, NULL, NULL, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err->msg, "storage 'share' of vm 'web': shared path"));

	free(v->path);
	v->path = xasprintf("%s/file", dir);
	write_file(v->path, "x");
	ck_assert_int_eq(mq_qemu_prepare_disks(s, NULL, NULL, &err), -ENOTDIR);
	ck_assert_ptr_nonnull(strstr(err->msg, "is not a directory"));
	mq_error_free(err);
	mq_spec_free(s);
	rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* check_binary                                                              */

START_TEST(test_check_binary_real)
{
	if (!have_qemu())
		return;
	char *resolved = NULL, *version = NULL;
	struct mq_error *err = NULL;
	int r = mq_qemu_check_binary("qemu-system-x86_64", &resolved, &version, &err);
	ck_assert_msg(r == 0, "check_binary: %s", err ? err->msg : "?");
	ck_assert_ptr_nonnull(resolved);
	ck_assert_int_eq(resolved[0], '/');
	ck_assert_int_eq(access(resolved, X_OK), 0);
	ck_assert_msg(strncmp(version, "QEMU emulator version", 21) == 0, "version: %s", version);
	ck_assert_ptr_null(strchr(version, '\n'));
	free(resolved);
	free(version);
	ck_assert_int_eq(mq_qemu_check_binary("qemu-system-x86_64", NULL, NULL, NULL), 0);
}
END_TEST

START_TEST(test_check_binary_missing)
{
	char *resolved = (char *)"untouched";
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_check_binary("qemu-system-nonexistent-arch", &resolved, NULL, &err), -ENOENT);
	ck_assert_str_eq(err->msg, "qemu binary 'qemu-system-nonexistent-arch' not found (install qemu-system-x86 "
				   "or set 'binary:' in the manifest)");
	ck_assert_str_eq(resolved, "untouched");
	err = mq_error_free(err);
	ck_assert_int_eq(mq_qemu_check_binary("/nonexistent/qemu", NULL, NULL, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err->msg, "'/nonexistent/qemu' not found"));
	mq_error_free(err);
}
END_TEST

START_TEST(test_check_binary_failing)
{
	char *dir = make_tmpdir();
	char *bin = xasprintf("%s/bad-qemu", dir);
	write_file(bin, "#!/bin/sh\necho first >&2\necho 'boom: cannot run' >&2\nexit 3\n");
	ck_assert_int_eq(chmod(bin, 0755), 0);
	struct mq_error *err = NULL;
	char *version = (char *)"untouched";
	ck_assert_int_lt(mq_qemu_check_binary(bin, NULL, &version, &err), 0);
	ck_assert_msg(strstr(err->msg, "exited with status 3: boom: cannot run") != NULL, "message: %s", err->msg);
	ck_assert_str_eq(version, "untouched");
	mq_error_free(err);
	free(bin);
	rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* start / stop                                                              */

struct steps {
	struct mq_strv v; /* "step:outcome" */
};

static void record_step(void *ud, const char *step, const char *outcome, const char *detail)
{
	struct steps *s = ud;
	(void)detail;
	mq_strv_pushf(&s->v, "%s:%s", step, outcome);
}

static bool no_children_left(void)
{
	int st;
	return waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD;
}

struct env {
	char *dir;
	char *rt;
	char *disks;
};

static void env_init(struct env *e)
{
	e->dir = make_tmpdir();
	e->rt = xasprintf("%s/rt", e->dir);
	e->disks = xasprintf("%s/disks", e->dir);
}

static void env_release(struct env *e)
{
	free(e->rt);
	free(e->disks);
	rm_rf(e->dir);
}

START_TEST(test_start_stop_real_qemu)
{
	if (!have_qemu())
		return;
	struct env e;
	env_init(&e);
	ck_assert_int_eq(mkdir(e.rt, 0755), 0); /* start tightens it to 0700 */
	ck_assert_int_eq(chmod(e.rt, 0755), 0);

	/* a marker file opened without O_CLOEXEC must not reach QEMU */
	char *mdir = xasprintf("%s/marker", e.dir);
	ck_assert_int_eq(mkdir(mdir, 0700), 0);
	char *mfile = xasprintf("%s/leak", mdir);
	int leak = open(mfile, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(leak, 3);

	struct mq_spec *s = spec_new("real");
	s->memory = 64ull * 1024 * 1024;
	s->accel = MQ_ACCEL_AUTO;
	struct mq_start_opts so = { .runtime_dir = e.rt, .disk_dir = e.disks, .timeout_ms = 30000 };
	struct mq_start_result res;
	memset(&res, 0, sizeof(res));
	struct mq_error *err = NULL;
	int r = mq_qemu_start(s, &so, &res, &err);
	ck_assert_msg(r == 0, "start: %s", err ? err->msg : "?");
	ck_assert_int_gt(res.ref.pid, 0);
	ck_assert_int_eq(mq_proc_check(&res.ref), MQ_PROC_ALIVE);
	ck_assert_str_eq(res.accel, mq_kvm_usable() ? "kvm" : "tcg");
	char *qmp = xasprintf("%s/real.qmp", e.rt);
	char *ev = xasprintf("%s/real.ev", e.rt);
	char *log = xasprintf("%s/real.qemu.log", e.rt);
	ck_assert_str_eq(res.qmp_path, qmp);

	struct stat st;
	ck_assert_int_eq(stat(e.rt, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	ck_assert_int_eq(lstat(qmp, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(lstat(ev, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(lstat(log, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);

	/* QEMU's fds: stdin /dev/null, stdout+stderr the log, nothing of ours */
	char *fddir = xasprintf("/proc/%d/fd", (int)res.ref.pid);
	DIR *d = opendir(fddir);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	int seen = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char lp[PATH_MAX], target[PATH_MAX];
		snprintf(lp, sizeof(lp), "%s/%s", fddir, de->d_name);
		ssize_t n = readlink(lp, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		seen++;
		ck_assert_msg(strncmp(target, mdir, strlen(mdir)) != 0, "qemu inherited fd %s -> %s", de->d_name,
			      target);
		if (strcmp(de->d_name, "0") == 0)
			ck_assert_str_eq(target, "/dev/null");
		if (strcmp(de->d_name, "1") == 0 || strcmp(de->d_name, "2") == 0)
			ck_assert_str_eq(target, log);
	}
	closedir(d);
	ck_assert_int_ge(seen, 3);
	/* QEMU runs in its own session */
	ck_assert_int_eq(getsid(res.ref.pid), res.ref.pid);

	char *logtxt = read_small(log, NULL);
	ck_assert_ptr_nonnull(strstr(logtxt, "maqet: starting "));
	ck_assert_ptr_nonnull(strstr(logtxt, "-name real"));
	free(logtxt);

	/* no guest OS: ACPI powerdown is ignored, quit does it */
	struct steps steps = { MQ_STRV_INIT };
	struct mq_stop_opts to = { .timeout_ms = 1000, .grace_ms = 10000, .step = record_step, .ud = &steps };
	r = mq_qemu_stop(&res.ref, res.qmp_path, &to, &err);
	ck_assert_msg(r == 0, "stop: %s", err ? err->msg : "?");
	char *j = mq_strv_join(&steps.v, " ");
	ck_assert_str_eq(j, "powerdown:sent powerdown:timeout quit:sent quit:exited");
	free(j);
	ck_assert_int_eq(mq_proc_check(&res.ref), MQ_PROC_GONE);
	ck_assert(no_children_left()); /* reaped */

	/* stopping again: already gone */
	mq_strv_clear(&steps.v);
	ck_assert_int_eq(mq_qemu_stop(&res.ref, res.qmp_path, &to, &err), 0);
	j = mq_strv_join(&steps.v, " ");
	ck_assert_str_eq(j, "powerdown:skipped");
	free(j);

	mq_strv_clear(&steps.v);
	close(leak);
	free(fddir);
	free(qmp);
	free(ev);
	free(log);
	free(mfile);
	free(mdir);
	mq_start_result_release(&res);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_start_missing_binary)
{
	struct env e;
	env_init(&e);
	struct mq_spec *s = spec_new("nobin");
	set_str(&s->binary, "qemu-system-nonexistent-arch");
	struct mq_start_opts so = { .runtime_dir = e.rt, .disk_dir = e.disks, .timeout_ms = 2000 };
	struct mq_start_result res;
	memset(&res, 0, sizeof(res));
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_start(s, &so, &res, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err->msg, "cannot start vm 'nobin': qemu binary 'qemu-system-nonexistent-arch' "
					       "not found"));
	ck_assert_ptr_null(res.qmp_path);
	ck_assert(no_children_left());
	mq_error_free(err);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_start_socket_path_too_long)
{
	struct env e;
	env_init(&e);
	/* a runtime dir so deep that <rt>/<name>.qmp exceeds sun_path */
	char *deep = xstrdup(e.rt);
	while (strlen(deep) < 110) {
		char *n = xasprintf("%s/dddddddddd", deep);
		free(deep);
		deep = n;
	}
	struct mq_spec *s = spec_new("x");
	struct mq_start_opts so = { .runtime_dir = deep, .timeout_ms = 2000 };
	struct mq_start_result res;
	memset(&res, 0, sizeof(res));
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_start(s, &so, &res, &err), -ENAMETOOLONG);
	ck_assert_msg(strstr(err->msg, "cannot start vm 'x': socket path '") == err->msg, "message: %s", err->msg);
	ck_assert_ptr_nonnull(strstr(err->msg, "too long for a unix socket"));
	ck_assert(no_children_left());
	mq_error_free(err);
	free(deep);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

/* fake QEMU ---------------------------------------------------------------- */

static const char *fake_qemu(void)
{
	const char *f = getenv("MQ_FAKE_QEMU");
	if (!f || access(f, X_OK) != 0)
		return NULL;
	return f;
}

static struct mq_spec *fake_spec(const char *name, const char *mode)
{
	struct mq_spec *s = spec_new(name);
	set_str(&s->binary, fake_qemu());
	mq_strv_push(&s->args, "-fake-mode");
	mq_strv_push(&s->args, mode);
	return s;
}

static int fake_start(struct env *e, struct mq_spec *s, int timeout_ms, struct mq_start_result *res,
		      struct mq_error **err)
{
	struct mq_start_opts so = { .runtime_dir = e->rt, .disk_dir = e->disks, .timeout_ms = timeout_ms };
	memset(res, 0, sizeof(*res));
	return mq_qemu_start(s, &so, res, err);
}

/* Start fake QEMU in `mode`, stop it, return the steps joined by " ". */
static char *fake_start_stop(const char *mode, int stop_timeout, int grace)
{
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("fk", mode);
	struct mq_start_result res;
	struct mq_error *err = NULL;
	int r = fake_start(&e, s, 10000, &res, &err);
	ck_assert_msg(r == 0, "start: %s", err ? err->msg : "?");
	ck_assert_int_eq(mq_proc_check(&res.ref), MQ_PROC_ALIVE);
	struct steps steps = { MQ_STRV_INIT };
	struct mq_stop_opts to = { .timeout_ms = (uint64_t)stop_timeout, .grace_ms = grace, .step = record_step,
				   .ud = &steps };
	r = mq_qemu_stop(&res.ref, res.qmp_path, &to, &err);
	ck_assert_msg(r == 0, "stop: %s", err ? err->msg : "?");
	ck_assert_int_eq(mq_proc_check(&res.ref), MQ_PROC_GONE);
	ck_assert(no_children_left());
	char *j = mq_strv_join(&steps.v, " ");
	mq_strv_clear(&steps.v);
	mq_start_result_release(&res);
	mq_spec_free(s);
	env_release(&e);
	return j;
}

#define REQUIRE_FAKE()                                                        \
	do {                                                                  \
		if (!fake_qemu()) {                                           \
			fprintf(stderr, "MQ_FAKE_QEMU not set: skipping\n"); \
			return;                                               \
		}                                                             \
	} while (0)

START_TEST(test_fake_crash_on_start)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("crash", "crash-on-start");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	int r = fake_start(&e, s, 10000, &res, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_msg(strstr(err->msg, "cannot start vm 'crash': qemu exited with status 1: ") == err->msg,
		      "message: %s", err->msg);
	ck_assert_msg(strstr(err->msg, "could not open disk image") != NULL, "message: %s", err->msg);
	ck_assert_ptr_null(strstr(err->msg, "maqet: starting"));
	ck_assert_ptr_null(res.qmp_path);
	ck_assert(no_children_left());

	/* a second failing start reports its own line, not an older one */
	err = mq_error_free(err);
	r = fake_start(&e, s, 10000, &res, &err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_nonnull(strstr(err->msg, "could not open disk image"));
	mq_error_free(err);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_fake_normal)
{
	REQUIRE_FAKE();
	char *j = fake_start_stop("normal", 5000, 5000);
	ck_assert_str_eq(j, "powerdown:sent powerdown:exited");
	free(j);
}
END_TEST

START_TEST(test_fake_ignore_powerdown)
{
	REQUIRE_FAKE();
	char *j = fake_start_stop("ignore-powerdown", 300, 5000);
	ck_assert_str_eq(j, "powerdown:sent powerdown:timeout quit:sent quit:exited");
	free(j);
}
END_TEST

START_TEST(test_fake_ignore_quit)
{
	REQUIRE_FAKE();
	char *j = fake_start_stop("ignore-powerdown,ignore-quit", 300, 300);
	ck_assert_str_eq(j, "powerdown:sent powerdown:timeout quit:sent quit:timeout sigterm:sent sigterm:exited");
	free(j);
}
END_TEST

START_TEST(test_fake_ignore_sigterm)
{
	REQUIRE_FAKE();
	char *j = fake_start_stop("ignore-powerdown,ignore-quit,ignore-sigterm", 300, 300);
	ck_assert_str_eq(j, "powerdown:sent powerdown:timeout quit:sent quit:timeout sigterm:sent sigterm:timeout "
			    "sigkill:sent sigkill:exited");
	free(j);
}
END_TEST

START_TEST(test_fake_force)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("fk", "normal");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	ck_assert_int_eq(fake_start(&e, s, 10000, &res, &err), 0);
	struct steps steps = { MQ_STRV_INIT };
	struct mq_stop_opts to = { .timeout_ms = 5000, .grace_ms = 5000, .force = true, .step = record_step,
				   .ud = &steps };
	ck_assert_int_eq(mq_qemu_stop(&res.ref, res.qmp_path, &to, &err), 0);
	char *j = mq_strv_join(&steps.v, " ");
	ck_assert_str_eq(j, "powerdown:skipped quit:sent quit:exited");
	free(j);
	mq_strv_clear(&steps.v);
	mq_start_result_release(&res);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_fake_stale_ref)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("fk", "normal");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	ck_assert_int_eq(fake_start(&e, s, 10000, &res, &err), 0);
	struct mq_pidref wrong = res.ref;
	wrong.start_time += 12345;
	struct steps steps = { MQ_STRV_INIT };
	struct mq_stop_opts to = { .timeout_ms = 300, .grace_ms = 300, .step = record_step, .ud = &steps };
	ck_assert_int_eq(mq_qemu_stop(&wrong, res.qmp_path, &to, &err), -ESTALE);
	char *want = xasprintf("refusing to signal pid %d: it is no longer the recorded process", (int)res.ref.pid);
	ck_assert_str_eq(err->msg, want);
	free(want);
	ck_assert_uint_eq(steps.v.n, 0);
	/* untouched: still alive and still answering */
	ck_assert_int_eq(mq_proc_check(&res.ref), MQ_PROC_ALIVE);
	ck_assert_int_eq(mq_proc_wait_exit(&res.ref, 300), -ETIMEDOUT);
	ck_assert_int_eq(mq_qemu_stop(&res.ref, res.qmp_path, &to, NULL), 0);
	ck_assert_int_eq(mq_proc_check(&res.ref), MQ_PROC_GONE);
	mq_strv_clear(&steps.v);
	mq_error_free(err);
	mq_start_result_release(&res);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_fake_garbage)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("garb", "garbage");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	int r = fake_start(&e, s, 5000, &res, &err);
	ck_assert_int_eq(r, -EPROTO);
	ck_assert_msg(strncmp(err->msg, "cannot start vm 'garb': ", 24) == 0, "message: %s", err->msg);
	ck_assert(no_children_left()); /* killed and reaped */
	mq_error_free(err);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_fake_slow_start)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("slow", "slow-start=500");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	int64_t t0 = mq_mono_ms();
	int r = fake_start(&e, s, 10000, &res, &err);
	ck_assert_msg(r == 0, "start: %s", err ? err->msg : "?");
	ck_assert_int_ge(mq_mono_ms() - t0, 400);
	ck_assert_int_eq(mq_qemu_stop(&res.ref, res.qmp_path, &(struct mq_stop_opts){ .timeout_ms = 5000 }, NULL),
			 0);
	mq_start_result_release(&res);
	mq_spec_free(s);

	/* too slow for the timeout: killed, reaped, clear message */
	s = fake_spec("slow", "slow-start=5000");
	r = fake_start(&e, s, 300, &res, &err);
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert_msg(strncmp(err->msg, "cannot start vm 'slow': qmp not ready after 300 ms", 50) == 0, "message: %s",
		      err->msg);
	ck_assert(no_children_left());
	mq_error_free(err);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_fake_paused)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("pz", "paused");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	int r = fake_start(&e, s, 700, &res, &err);
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert_msg(strstr(err->msg, "cannot start vm 'pz': qmp not ready after 700 ms") == err->msg, "message: %s",
		      err->msg);
	ck_assert_msg(strstr(err->msg, "paused") != NULL, "message: %s", err->msg);
	ck_assert(no_children_left());
	mq_error_free(err);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_fake_die_after)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("dies", "die-after=200");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	int r = fake_start(&e, s, 10000, &res, &err);
	ck_assert_msg(r == 0, "start: %s", err ? err->msg : "?");
	/* wait for it to die on its own (a zombie child of ours counts as gone) */
	int64_t deadline = mq_mono_ms() + 5000;
	while (mq_proc_check(&res.ref) == MQ_PROC_ALIVE && mq_mono_ms() < deadline) {
		int pfd = mq_pidfd_open(res.ref.pid);
		if (pfd >= 0) {
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			poll(&p, 1, 100);
			close(pfd);
		}
	}
	ck_assert_int_eq(mq_proc_check(&res.ref), MQ_PROC_GONE);
	struct steps steps = { MQ_STRV_INIT };
	struct mq_stop_opts to = { .timeout_ms = 300, .step = record_step, .ud = &steps };
	ck_assert_int_eq(mq_qemu_stop(&res.ref, res.qmp_path, &to, &err), 0);
	char *j = mq_strv_join(&steps.v, " ");
	ck_assert_str_eq(j, "powerdown:skipped");
	free(j);
	ck_assert(no_children_left()); /* the zombie was reaped */
	mq_strv_clear(&steps.v);
	mq_start_result_release(&res);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_fake_stale_socket_removed)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	ck_assert_int_eq(mkdir(e.rt, 0700), 0);
	char *qmp = xasprintf("%s/st.qmp", e.rt);
	char *ev = xasprintf("%s/st.ev", e.rt);
	write_file(qmp, "stale");
	write_file(ev, "stale");
	struct mq_spec *s = fake_spec("st", "normal");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	int r = fake_start(&e, s, 10000, &res, &err);
	ck_assert_msg(r == 0, "start: %s", err ? err->msg : "?");
	struct stat st;
	ck_assert_int_eq(lstat(qmp, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(mq_qemu_stop(&res.ref, res.qmp_path, &(struct mq_stop_opts){ .timeout_ms = 5000 }, NULL),
			 0);
	free(qmp);
	free(ev);
	mq_start_result_release(&res);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

START_TEST(test_argv_needs_accel_for_auto)
{
	struct mq_spec *s = spec_new("web");
	s->accel = MQ_ACCEL_AUTO;
	struct mq_strv argv = MQ_STRV_INIT;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_build_argv(s, &fixed_paths, NULL, "/d", &argv, &err), -EINVAL);
	ck_assert_uint_eq(argv.n, 0);
	err = mq_error_free(err);
	s->accel = MQ_ACCEL_TCG; /* explicit: taken from the spec */
	ck_assert_int_eq(mq_qemu_build_argv(s, &fixed_paths, NULL, "/d", &argv, &err), 0);
	ck_assert_int_ge(find_pair(&argv, "-accel", "tcg"), 0);
	ck_assert_uint_eq(count_tok(&argv, "-S"), 1);
	mq_strv_clear(&argv);
	mq_spec_free(s);
}
END_TEST

START_TEST(test_spawn_exec_failure)
{
	char *dir = make_tmpdir();
	char *bin = xasprintf("%s/not-executable", dir);
	write_file(bin, "#!/bin/sh\nexit 0\n");
	char *argv[] = { bin, NULL };
	pid_t pid = -1;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_spawn(bin, argv, NULL, &pid, &err), -EACCES);
	ck_assert_int_eq(pid, -1);
	char *want = xasprintf("cannot exec '%s': %s", bin, strerror(EACCES));
	ck_assert_str_eq(err->msg, want);
	free(want);
	err = mq_error_free(err);
	ck_assert(no_children_left()); /* reaped */

	/* a good one: output captured, status reported */
	char *out = NULL;
	int st = 0;
	char *sh[] = { (char *)"/bin/sh", (char *)"-c", (char *)"echo out; echo err >&2; exit 4", NULL };
	ck_assert_int_eq(mq_spawn_capture("/bin/sh", sh, 5000, &out, &st, &err), 0);
	ck_assert_str_eq(out, "out\nerr\n");
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 4);
	char *how = mq_wait_status_str(st);
	ck_assert_str_eq(how, "exited with status 4");
	free(how);
	free(out);
	char *l = mq_last_line("a\nmaqet: x\n  b c  \n\n", 19, NULL);
	ck_assert_str_eq(l, "b c");
	free(l);
	free(bin);
	rm_rf(dir);
}
END_TEST

START_TEST(test_img_snapshots)
{
	if (!have_qemu_img())
		return;
	char *dir = make_tmpdir();
	struct mq_spec *s = spec_new("web");
	struct mq_storage *st = add_storage(s, "root", MQ_STORAGE_QCOW2);
	st->size = 1024 * 1024;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qemu_prepare_disks(s, dir, NULL, &err), 0);
	char *img = mq_storage_image_path(s, st, dir);
	ck_assert_int_eq(mq_img_snapshot_create(NULL, img, "one", &err), 0);
	ck_assert_int_eq(mq_img_snapshot_create(NULL, img, "two", &err), 0);
	struct mq_strv tags = MQ_STRV_INIT;
	ck_assert_int_eq(mq_img_snapshot_list(NULL, img, &tags, &err), 0);
	char *j = mq_strv_join(&tags, " ");
	ck_assert_str_eq(j, "one two");
	free(j);
	mq_strv_clear(&tags);
	ck_assert_int_eq(mq_img_snapshot_apply(NULL, img, "one", &err), 0);
	ck_assert_int_eq(mq_img_snapshot_delete(NULL, img, "one", &err), 0);
	ck_assert_int_eq(mq_img_snapshot_list(NULL, img, &tags, &err), 0);
	ck_assert_uint_eq(tags.n, 1);
	ck_assert_str_eq(tags.v[0], "two");
	mq_strv_clear(&tags);
	ck_assert_int_lt(mq_img_snapshot_apply(NULL, img, "nope", &err), 0);
	ck_assert_msg(strstr(err->msg, "cannot apply snapshot 'nope' of '") == err->msg, "message: %s", err->msg);
	mq_error_free(err);
	free(img);
	mq_spec_free(s);
	rm_rf(dir);
}
END_TEST

START_TEST(test_host_binary_cache)
{
	REQUIRE_FAKE();
	char *dir = make_tmpdir();
	char *bin = xasprintf("%s/qemu-counting", dir);
	char *count = xasprintf("%s/count", dir);
	char *script = xasprintf("#!/bin/sh\necho x >> '%s'\necho 'QEMU emulator version 9.9.9'\n", count);
	write_file(bin, script);
	ck_assert_int_eq(chmod(bin, 0755), 0);
	mq_qemu_binary_cache_clear();
	char *resolved = NULL;
	ck_assert_int_eq(mq_qemu_check_binary_cached(bin, &resolved, NULL), 0);
	ck_assert_str_eq(resolved, bin);
	free(resolved);
	ck_assert_int_eq(mq_qemu_check_binary_cached(bin, NULL, NULL), 0);
	size_t n = 0;
	char *c = read_small(count, &n);
	ck_assert_uint_eq(n, 2); /* ran once */
	free(c);
	mq_qemu_binary_cache_clear();
	free(script);
	free(count);
	free(bin);
	rm_rf(dir);
}
END_TEST

/* keep_ev: the event monitor comes back negotiated and unread; wrapped, it
 * delivers the RESUME of `cont`, and for a guest that powers off at once,
 * the guest SHUTDOWN: never mistaken for a crash. */
static void keep_ev_case(const char *mode, const char *want_events)
{
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("kev", mode);
	struct mq_start_opts so = { .runtime_dir = e.rt, .disk_dir = e.disks, .timeout_ms = 10000, .keep_ev = true };
	struct mq_start_result res;
	memset(&res, 0, sizeof(res));
	struct mq_error *err = NULL;
	int r = mq_qemu_start(s, &so, &res, &err);
	ck_assert_msg(r == 0, "start: %s", err ? err->msg : "?");
	ck_assert_int_ge(res.ev_fd, 0);
	ck_assert(fcntl(res.ev_fd, F_GETFD) & FD_CLOEXEC);
	struct mq_qmp *q = mq_qmp_from_fd(res.ev_fd, "ev", NULL);
	res.ev_fd = -1; /* the client owns it now */
	struct mq_strv got = MQ_STRV_INIT;
	int64_t deadline = mq_mono_ms() + 5000;
	bool eof = false;
	while (mq_mono_ms() < deadline) {
		json_object *ev;
		while ((ev = mq_qmp_next_event(q))) {
			json_object *n, *d, *g;
			ck_assert(json_object_object_get_ex(ev, "event", &n));
			if (!strcmp(json_object_get_string(n), "SHUTDOWN")) {
				ck_assert(json_object_object_get_ex(ev, "data", &d));
				ck_assert(json_object_object_get_ex(d, "guest", &g));
				mq_strv_pushf(&got, "SHUTDOWN(guest=%d)", json_object_get_boolean(g));
			} else {
				mq_strv_push(&got, json_object_get_string(n));
			}
			json_object_put(ev);
		}
		char *j = mq_strv_join(&got, " ");
		bool enough = !strcmp(j, want_events);
		free(j);
		if (enough || eof)
			break;
		eof = mq_qmp_pump(q, 200, NULL) == -ECONNRESET; /* one more pass takes what it queued */
	}
	char *j = mq_strv_join(&got, " ");
	ck_assert_str_eq(j, want_events);
	free(j);
	mq_strv_clear(&got);
	mq_qmp_free(q);
	(void)mq_qemu_stop(&res.ref, res.qmp_path, &(struct mq_stop_opts){ .timeout_ms = 2000 }, NULL);
	ck_assert_int_eq(mq_proc_wait_exit(&res.ref, 5000), 0);
	mq_start_result_release(&res);
	mq_spec_free(s);
	env_release(&e);
}

START_TEST(test_fake_keep_ev)
{
	REQUIRE_FAKE();
	keep_ev_case("normal", "RESUME");
}
END_TEST

START_TEST(test_fake_poweroff_at_once)
{
	REQUIRE_FAKE();
	keep_ev_case("poweroff-on-cont", "RESUME SHUTDOWN(guest=1)");
}
END_TEST

START_TEST(test_fake_no_keep_ev)
{
	REQUIRE_FAKE();
	struct env e;
	env_init(&e);
	struct mq_spec *s = fake_spec("nk", "normal");
	struct mq_start_result res;
	struct mq_error *err = NULL;
	ck_assert_int_eq(fake_start(&e, s, 10000, &res, &err), 0);
	ck_assert_int_eq(res.ev_fd, -1);
	/* the event monitor is free again for watch mode */
	char *ev = xasprintf("%s/nk.ev", e.rt);
	struct mq_qmp *q = NULL;
	ck_assert_int_eq(mq_qmp_connect(ev, 5000, &q, &err), 0);
	mq_qmp_free(q);
	free(ev);
	ck_assert_int_eq(mq_qemu_stop(&res.ref, res.qmp_path, &(struct mq_stop_opts){ .timeout_ms = 5000 }, NULL), 0);
	mq_start_result_release(&res);
	mq_spec_free(s);
	env_release(&e);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *qemu_suite(void)
{
	Suite *s = suite_create("qemu");
	TCase *tc = tcase_create("argv");
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_image_path);
	tcase_add_test(tc, test_log_rotate);
	tcase_add_test(tc, test_log_rotate_live);
	tcase_add_test(tc, test_accel);
	tcase_add_test(tc, test_argv_minimal);
	tcase_add_test(tc, test_argv_full);
	tcase_add_test(tc, test_argv_display_null_and_memory_rounding);
	tcase_add_test(tc, test_argv_appends_to_existing);
	tcase_add_test(tc, test_argv_too_many_sata);
	tcase_add_test(tc, test_argv_needs_accel_for_auto);
	tcase_add_test(tc, test_spawn_exec_failure);
	tcase_add_test(tc, test_yaml_minimal_defaults);
	tcase_add_test(tc, test_yaml_every_key);
	tcase_add_test(tc, test_yaml_accel_auto_and_tcg);
	suite_add_tcase(s, tc);

	tc = tcase_create("disks");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_disks_create_qcow2_raw);
	tcase_add_test(tc, test_disks_never_overwrite);
	tcase_add_test(tc, test_disks_missing_without_size);
	tcase_add_test(tc, test_disks_backing_file);
	tcase_add_test(tc, test_disks_qemu_img_failure);
	tcase_add_test(tc, test_disks_virtfs);
	tcase_add_test(tc, test_img_snapshots);
	suite_add_tcase(s, tc);

	tc = tcase_create("binary");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_check_binary_real);
	tcase_add_test(tc, test_check_binary_missing);
	tcase_add_test(tc, test_check_binary_failing);
	tcase_add_test(tc, test_host_binary_cache);
	suite_add_tcase(s, tc);

	tc = tcase_create("run");
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_start_stop_real_qemu);
	tcase_add_test(tc, test_start_missing_binary);
	tcase_add_test(tc, test_start_socket_path_too_long);
	tcase_add_test(tc, test_fake_crash_on_start);
	tcase_add_test(tc, test_fake_normal);
	tcase_add_test(tc, test_fake_ignore_powerdown);
	tcase_add_test(tc, test_fake_ignore_quit);
	tcase_add_test(tc, test_fake_ignore_sigterm);
	tcase_add_test(tc, test_fake_force);
	tcase_add_test(tc, test_fake_stale_ref);
	tcase_add_test(tc, test_fake_garbage);
	tcase_add_test(tc, test_fake_slow_start);
	tcase_add_test(tc, test_fake_paused);
	tcase_add_test(tc, test_fake_die_after);
	tcase_add_test(tc, test_fake_stale_socket_removed);
	tcase_add_test(tc, test_fake_keep_ev);
	tcase_add_test(tc, test_fake_poweroff_at_once);
	tcase_add_test(tc, test_fake_no_keep_ev);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mq_check_run(qemu_suite());
}
