/* argv.c - the QEMU command line of a spec (see argv.h). */
#include "reconciler/argv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/snapshot.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define SATA_PORTS 6

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

	if (!accel) {
		if (spec->accel == MQ_ACCEL_AUTO)
			return mq_error_set(err, EINVAL, "vm '%s': no accelerator given for accel: auto", spec->name);
		accel = spec->accel == MQ_ACCEL_KVM ? "kvm" : "tcg";
	}
	mq_strv_push(&v, spec->binary ? spec->binary : "qemu-system-x86_64");
	add_esc(&sb, spec->name);
	push_opt_take(&v, "-name", &sb);
	if (spec->machine)
		push2(&v, "-machine", spec->machine);
	push2(&v, "-accel", accel);
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
		/* an explicit block node name, so snapshots can address every drive */
		char *node = mq_snap_node_name(spec, i);
		mq_strbuf_adds(&sb, ",node-name=");
		add_esc(&sb, node);
		free(node);
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
		/* Served on a socket for `maqet console`, and logged all the time.
		 * The log is opened by maqet (no-follow, 0600, owned by us:
		 * qemu.c open_serial_log) and handed to QEMU as fd 3 (spawn.h
		 * pass_fd); QEMU reopens it through /dev/fd, never by its path. */
		mq_strbuf_adds(&sb, "socket,id=serial0,path=");
		add_esc(&sb, paths->console);
		mq_strbuf_adds(&sb, ",server=on,wait=off,logfile=" MQ_SERIAL_LOG_FD_PATH ",logappend=on");
		push_opt_take(&v, "-chardev", &sb);
		push2(&v, "-serial", "chardev:serial0");
	} else {
		push2(&v, "-serial", "none");
	}
	push2(&v, "-monitor", "none");
	push2(&v, "-parallel", "none");
	mq_strv_push(&v, "-S"); /* maqet sends `cont` once both monitors are negotiated */

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

