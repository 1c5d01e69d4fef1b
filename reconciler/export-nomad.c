/* export-nomad.c - one VM as a Nomad job in API JSON ({"Job": ...}) with one
 * task group and one task using the qemu driver.
 *
 * The driver's task config takes exactly nine keys: image_path, accelerator,
 * drive_interface, emulator, machine_type, args, graceful_shutdown,
 * guest_agent, port_map (tests/export/nomad-qemu-config-keys.txt).  Only the
 * first disk can be image_path; everything else maqet puts on QEMU's command
 * line goes into args.  Port forwards are `-netdev user,...,hostfwd=` in args
 * (port_map is ignored with group networks), and their host ports are also
 * reserved in the group network so Nomad places around them.
 * Durations in API JSON are nanoseconds. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/export-int.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define NS_PER_S 1000000000LL
#define MHZ_PER_CPU 1000  /* Resources.CPU is MHz: this much per guest cpu */
#define NOMAD_MIN_MB 128  /* the qemu driver refuses less */

enum { P_JOB, P_GROUP, P_TASK, P_CONFIG, P_ARGS, P_RES, P_PORTS };

static void nomad_init(struct mq_export_ctx *x)
{
	const char *n = x->spec->name;
	x->doc = json_object_new_object();
	json_object *job = x->p[P_JOB] = mq_xobj(x->doc, "Job");
	mq_xstr(job, "ID", n);
	mq_xstr(job, "Name", n);
	mq_xstr(job, "Type", "service");
	mq_xpush_str(mq_xarr(job, "Datacenters"), "*");
	json_object *meta = mq_xobj(job, "Meta");
	mq_xstr(meta, "maqet.manifest", x->spec->file ? x->spec->file : "");
	json_object *g = json_object_new_object();
	json_object_array_add(mq_xarr(job, "TaskGroups"), g);
	x->p[P_GROUP] = g;
	mq_xstr(g, "Name", n);
	mq_xint(g, "Count", 1);
	json_object *net = json_object_new_object();
	json_object_array_add(mq_xarr(g, "Networks"), net);
	x->p[P_PORTS] = mq_xarr(net, "ReservedPorts");
	json_object *t = json_object_new_object();
	json_object_array_add(mq_xarr(g, "Tasks"), t);
	x->p[P_TASK] = t;
	mq_xstr(t, "Name", n);
	mq_xstr(t, "Driver", "qemu");
	x->p[P_CONFIG] = mq_xobj(t, "Config");
	mq_xbool(x->p[P_CONFIG], "graceful_shutdown", true);
	x->p[P_ARGS] = mq_xarr(x->p[P_CONFIG], "args");
	x->p[P_RES] = mq_xobj(t, "Resources");
}

static void nomad_finish(struct mq_export_ctx *x)
{
	if (json_object_array_length(x->p[P_PORTS]) == 0)
		json_object_object_del(x->p[P_GROUP], "Networks");
	if (json_object_array_length(x->p[P_ARGS]) == 0)
		json_object_object_del(x->p[P_CONFIG], "args");
}

static void arg(struct mq_export_ctx *x, const char *a)
{
	mq_xpush_str(x->p[P_ARGS], a);
}

static void arg2(struct mq_export_ctx *x, const char *a, const char *b)
{
	arg(x, a);
	arg(x, b);
}

static void map_name(struct mq_export_ctx *x)
{
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "job ID, group and task name '%s'", x->spec->name);
}

static void map_state(struct mq_export_ctx *x)
{
	if (x->spec->state == MQ_DESIRED_STOPPED) {
		mq_xbool(x->p[P_JOB], "Stop", true);
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "Job.Stop = true: registered, not run");
	} else {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "the job runs once registered");
	}
}

static void map_binary(struct mq_export_ctx *x)
{
	const char *b = x->spec->binary ? x->spec->binary : "qemu-system-x86_64";
	mq_xstr(x->p[P_CONFIG], "emulator", b);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "emulator '%s' (looked up on the node)", b);
}

static void map_machine(struct mq_export_ctx *x)
{
	if (x->spec->machine) {
		mq_xstr(x->p[P_CONFIG], "machine_type", x->spec->machine);
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "machine_type '%s'", x->spec->machine);
	} else {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set: the driver's default (pc), as QEMU's");
	}
}

static void map_accel(struct mq_export_ctx *x)
{
	switch (x->spec->accel) {
	case MQ_ACCEL_KVM:
		mq_xstr(x->p[P_CONFIG], "accelerator", "kvm");
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "accelerator kvm");
		break;
	case MQ_ACCEL_TCG:
		mq_xstr(x->p[P_CONFIG], "accelerator", "tcg");
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "accelerator tcg");
		break;
	case MQ_ACCEL_AUTO:
		mq_xstr(x->p[P_CONFIG], "accelerator", "kvm");
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "auto -> accelerator kvm: the driver has no fallback to tcg on a node without kvm");
		break;
	}
}

static void map_memory(struct mq_export_ctx *x)
{
	uint64_t b = x->spec->memory;
	uint64_t mb = b ? (b + (1ull << 20) - 1) >> 20 : NOMAD_MIN_MB;
	if (mb < NOMAD_MIN_MB) {
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "Resources.MemoryMB %d: raised from %" PRIu64 " MiB, the qemu driver refuses less",
			      NOMAD_MIN_MB, mb);
		mb = NOMAD_MIN_MB;
	} else if (!b) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set: Resources.MemoryMB %d, QEMU's default", NOMAD_MIN_MB);
	} else if (b & ((1ull << 20) - 1)) {
		mq_export_row(x, MQ_EXPORT_APPROX, NULL, "Resources.MemoryMB %" PRIu64 " (rounded up to whole MiB)", mb);
	} else {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "Resources.MemoryMB %" PRIu64 " (the driver passes -m)", mb);
	}
	mq_xint(x->p[P_RES], "MemoryMB", (int64_t)mb);
}

static void map_cpu(struct mq_export_ctx *x)
{
	unsigned n = x->spec->cpu ? x->spec->cpu : 1;
	mq_xint(x->p[P_RES], "CPU", (int64_t)n * MHZ_PER_CPU);
	if (x->spec->cpu) {
		char *s = xasprintf("%u", n);
		arg2(x, "-smp", s);
		free(s);
	}
	mq_export_row(x, MQ_EXPORT_APPROX, NULL,
		      "%u guest cpu%s (%s); Resources.CPU %u MHz is an estimate at %d MHz per cpu: Nomad reserves "
		      "MHz, not cores",
		      n, n == 1 ? "" : "s", x->spec->cpu ? "-smp in args" : "QEMU's default", n * MHZ_PER_CPU,
		      MHZ_PER_CPU);
}

static void map_display(struct mq_export_ctx *x)
{
	const char *d = x->spec->display;
	if (!d || strcmp(d, "none") == 0)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "none: the driver always runs QEMU with -nographic");
	else
		mq_export_row(x, MQ_EXPORT_LOST, NULL, "display '%s': the driver always runs QEMU with -nographic", d);
}

static void map_vga(struct mq_export_ctx *x)
{
	if (!x->spec->vga) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
		return;
	}
	arg2(x, "-vga", x->spec->vga);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "-vga %s in args", x->spec->vga);
}

static const char *fmt_of(const struct mq_storage *s)
{
	return s->type == MQ_STORAGE_RAW ? "raw" : "qcow2";
}

/* A disk that is not image_path: -drive (+ -device for sata/scsi) in args. */
static void extra_drive(struct mq_export_ctx *x, const struct mq_storage *s, const char *path, unsigned *n_sata,
			bool *have_ahci, bool *have_scsi)
{
	struct mq_strbuf sb;
	mq_strbuf_init(&sb);
	mq_strbuf_addf(&sb, "file=%s,format=%s,", path, fmt_of(s));
	const char *dev = NULL;
	switch (s->interface) {
	case MQ_IFACE_VIRTIO:
		mq_strbuf_adds(&sb, "if=virtio");
		break;
	case MQ_IFACE_IDE:
		mq_strbuf_adds(&sb, "if=ide");
		break;
	case MQ_IFACE_SATA:
	case MQ_IFACE_SCSI:
	case MQ_IFACE_NONE:
		mq_strbuf_addf(&sb, "if=none,id=drive-%s", s->name);
		dev = s->interface == MQ_IFACE_SATA ? "sata" : s->interface == MQ_IFACE_SCSI ? "scsi" : NULL;
		break;
	}
	arg(x, "-drive");
	arg(x, sb.buf);
	mq_strbuf_release(&sb);
	if (dev && strcmp(dev, "sata") == 0) {
		if (!*have_ahci)
			arg2(x, "-device", "ahci,id=ahci0");
		*have_ahci = true;
		char *d = xasprintf("ide-hd,drive=drive-%s,bus=ahci0.%u", s->name, (*n_sata)++);
		arg2(x, "-device", d);
		free(d);
	} else if (dev) {
		if (!*have_scsi)
			arg2(x, "-device", "virtio-scsi-pci,id=scsi0");
		*have_scsi = true;
		char *d = xasprintf("scsi-hd,drive=drive-%s,bus=scsi0.0", s->name);
		arg2(x, "-device", d);
		free(d);
	}
}

static void map_storage(struct mq_export_ctx *x)
{
	const struct mq_spec *sp = x->spec;
	bool have_image = false, have_ahci = false, have_scsi = false;
	unsigned n_sata = 0;
	for (size_t i = 0; i < sp->n_storage; i++) {
		const struct mq_storage *s = &sp->storage[i];
		if (s->type == MQ_STORAGE_VIRTFS) {
			struct mq_strbuf sb;
			mq_strbuf_init(&sb);
			mq_strbuf_addf(&sb, "local,path=%s,mount_tag=%s,security_model=%s%s", s->path, s->mount_tag,
				       s->security_model ? s->security_model : "mapped-xattr",
				       s->readonly ? ",readonly=on" : "");
			arg2(x, "-virtfs", sb.buf);
			mq_strbuf_release(&sb);
			mq_export_row(x, MQ_EXPORT_APPROX, s->name,
				      "-virtfs in args: %s must exist on the node (Nomad does not ship it)", s->path);
			continue;
		}
		char *path = mq_export_disk_path(x, s);
		struct mq_strbuf how;
		mq_strbuf_init(&how);
		enum mq_export_fidelity f = MQ_EXPORT_EXACT;
		if (!have_image && s->interface != MQ_IFACE_NONE) {
			have_image = true;
			mq_xstr(x->p[P_CONFIG], "image_path", path);
			const char *di = s->interface == MQ_IFACE_VIRTIO ? "virtio"
					 : s->interface == MQ_IFACE_SCSI ? "scsi"
									   : "ide";
			mq_xstr(x->p[P_CONFIG], "drive_interface", di);
			mq_strbuf_addf(&how, "image_path %s, drive_interface %s", path, di);
			if (s->interface == MQ_IFACE_SATA) {
				f = MQ_EXPORT_APPROX;
				mq_strbuf_adds(&how, " (sata is not a drive_interface: ide)");
			} else if (s->interface == MQ_IFACE_SCSI) {
				f = MQ_EXPORT_APPROX;
				mq_strbuf_adds(&how, " (QEMU's default scsi controller, not virtio-scsi)");
			}
			if (s->type == MQ_STORAGE_RAW) {
				f = MQ_EXPORT_APPROX;
				mq_strbuf_adds(&how, "; the driver gives no format: QEMU probes it and restricts writes to "
						     "sector 0 of a raw image");
			}
			mq_strbuf_adds(&how, "; the image must be allowed by the client's image_paths");
		} else {
			extra_drive(x, s, path, &n_sata, &have_ahci, &have_scsi);
			f = MQ_EXPORT_APPROX;
			mq_strbuf_addf(&how, "image_path takes one image: this disk is -drive %s in args, outside Nomad's "
					     "image handling",
				       path);
		}
		if (!s->file) {
			f = MQ_EXPORT_APPROX;
			mq_strbuf_adds(&how, "; default location of this host's state dir");
		}
		if (s->size) {
			f = MQ_EXPORT_APPROX;
			mq_strbuf_adds(&how, "; size: Nomad creates no disk, the image must exist on the node");
		}
		if (s->backing_file) {
			f = MQ_EXPORT_APPROX;
			mq_strbuf_addf(&how, "; backing chain: %s must exist at that path on the node", s->backing_file);
		}
		mq_export_row(x, f, s->name, "%s", how.buf);
		mq_strbuf_release(&how);
		free(path);
	}
	if (!have_image) {
		/* the driver requires image_path: an unattached drive the guest never sees */
		mq_xstr(x->p[P_CONFIG], "image_path", "/dev/null");
		mq_xstr(x->p[P_CONFIG], "drive_interface", "none");
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "no disk to boot from: image_path /dev/null with drive_interface none (a drive the guest "
			      "does not see); the client's image_paths must allow /dev/null");
	}
}

static void map_network(struct mq_export_ctx *x)
{
	const struct mq_spec *sp = x->spec;
	if (!sp->n_network) {
		arg2(x, "-nic", "none");
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "no network: -nic none in args");
		return;
	}
	for (size_t i = 0; i < sp->n_network; i++) {
		const struct mq_network *n = &sp->network[i];
		struct mq_strbuf sb;
		mq_strbuf_init(&sb);
		mq_strbuf_addf(&sb, "user,id=net%zu", i);
		for (size_t j = 0; j < n->n_forwards; j++) {
			const struct mq_forward *f = &n->forwards[j];
			const char *proto = f->proto[0] ? f->proto : "tcp";
			mq_strbuf_addf(&sb, ",hostfwd=%s::%u-:%u", proto, f->host_port, f->guest_port);
			json_object *p = json_object_new_object();
			char *label = xasprintf("%s%u", proto, f->host_port);
			mq_xstr(p, "Label", label);
			mq_xint(p, "Value", f->host_port);
			json_object_array_add(x->p[P_PORTS], p);
			char *item = xasprintf("%s:%u:%u", proto, f->host_port, f->guest_port);
			mq_export_row(x, MQ_EXPORT_EXACT, item,
				      "hostfwd in args (port_map is ignored with group networks); host port %u reserved "
				      "as '%s' in the group network",
				      f->host_port, label);
			free(item);
			free(label);
		}
		arg2(x, "-netdev", sb.buf);
		mq_strbuf_reset(&sb);
		mq_strbuf_addf(&sb, "virtio-net-pci,netdev=net%zu", i);
		arg2(x, "-device", sb.buf);
		mq_strbuf_release(&sb);
		char *item = xasprintf("%zu", i);
		mq_export_row(x, MQ_EXPORT_EXACT, item, "user-mode network: -netdev user + virtio-net-pci in args");
		free(item);
	}
}

static void map_serial(struct mq_export_ctx *x)
{
	if (x->spec->serial == MQ_SERIAL_NONE) {
		arg2(x, "-serial", "none");
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "-serial none in args");
	} else {
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "log: with -nographic the serial console is the task's stdout (nomad alloc logs), no "
			      "console socket");
	}
}

static void map_stop_timeout(struct mq_export_ctx *x)
{
	mq_xint(x->p[P_TASK], "KillTimeout", (int64_t)x->spec->stop_timeout_ms * 1000000LL);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL,
		      "graceful_shutdown (ACPI powerdown), then KillTimeout %" PRIu64 " ms", x->spec->stop_timeout_ms);
}

static void map_restart(struct mq_export_ctx *x)
{
	json_object *rp = mq_xobj(x->p[P_GROUP], "RestartPolicy");
	json_object *sp = mq_xobj(x->p[P_GROUP], "ReschedulePolicy");
	switch (x->spec->restart) {
	case MQ_RESTART_NEVER:
		mq_xint(rp, "Attempts", 0);
		mq_xint(rp, "Interval", 60 * NS_PER_S);
		mq_xint(rp, "Delay", 0);
		mq_xstr(rp, "Mode", "fail");
		mq_xint(sp, "Attempts", 0);
		mq_xbool(sp, "Unlimited", false);
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "restart and reschedule attempts 0; a service job's allocation that exits is marked failed");
		return;
	case MQ_RESTART_ALWAYS:
	case MQ_RESTART_ON_FAILURE:
		mq_xint(rp, "Attempts", 10);
		mq_xint(rp, "Interval", 600 * NS_PER_S);
		mq_xint(rp, "Delay", NS_PER_S);
		mq_xstr(rp, "Mode", "fail");
		mq_xbool(sp, "Unlimited", true);
		mq_xstr(sp, "DelayFunction", "exponential");
		mq_xint(sp, "Delay", 30 * NS_PER_S);
		mq_xint(sp, "MaxDelay", 3600 * NS_PER_S);
		break;
	}
	if (x->spec->restart == MQ_RESTART_ALWAYS)
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "RestartPolicy 10 attempts in 10 min, then reschedule: Nomad's delays replace maqet's "
			      "backoff and crash-loop");
	else
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "RestartPolicy 10 attempts in 10 min, then reschedule: a service task is restarted after a "
			      "guest poweroff too");
}

static void map_depends_on(struct mq_export_ctx *x)
{
	if (!x->spec->depends_on.n) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
		return;
	}
	char *j = mq_strv_join(&x->spec->depends_on, ", ");
	mq_export_row(x, MQ_EXPORT_LOST, NULL, "%s: Nomad has no start ordering between jobs", j);
	free(j);
}

static void map_args(struct mq_export_ctx *x)
{
	const struct mq_strv *a = &x->spec->args;
	for (size_t i = 0; i < a->n; i++)
		arg(x, a->v[i]);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, a->n ? "appended to args verbatim" : "not set");
}

static void map_arguments(struct mq_export_ctx *x)
{
	const struct mq_strv *a = &x->spec->arguments;
	for (size_t i = 0; i < a->n; i++)
		arg(x, a->v[i]);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, a->n ? "rendered and appended to args" : "not set");
}

static void map_snapshots(struct mq_export_ctx *x)
{
	if (!x->spec->snapshots)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
	else
		mq_export_row(x, MQ_EXPORT_LOST, NULL,
			      "Nomad has no disk snapshots: named, scheduled and pre-change snapshots are not kept");
}

static void map_placement(struct mq_export_ctx *x)
{
	if (!x->spec->placement_host) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set: any node with the qemu driver");
		return;
	}
	json_object *c = json_object_new_object();
	mq_xstr(c, "LTarget", "${node.unique.name}");
	mq_xstr(c, "RTarget", x->spec->placement_host);
	mq_xstr(c, "Operand", "=");
	json_object_array_add(mq_xarr(x->p[P_JOB], "Constraints"), c);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "Constraint ${node.unique.name} = %s", x->spec->placement_host);
}

/* one decision per manifest key: map_<key> for every row of the field table */
#define NOMAD_KEY(key, cls, argopt, parse, to_json, from_json) { #key, map_##key },
static const struct mq_export_key nomad_keys[] = { MQ_FIELD_ROWS(NOMAD_KEY) };
_Static_assert(MQ_ARRAY_SIZE(nomad_keys) == MQ_FIELD_COUNT, "one decision per key");

const struct mq_export_engine_ops mq_export_nomad_ops = {
	.init = nomad_init,
	.finish = nomad_finish,
	.keys = nomad_keys,
	.n_keys = MQ_ARRAY_SIZE(nomad_keys),
};
