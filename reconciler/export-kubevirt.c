/* export-kubevirt.c - one VM as a KubeVirt VirtualMachine (kubevirt.io/v1),
 * written as YAML and checked in tests against the VirtualMachine JSON
 * schema (tests/export/schema/).
 *
 * runStrategy comes from state + restart; each disk becomes a disk on a
 * PersistentVolumeClaim named <vm>-<disk> that the image has to be imported
 * into (KubeVirt has no host image path without a feature gate); the first
 * user network becomes the pod network with a masquerade interface and the
 * guest ports of its forwards. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/export-int.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

enum { P_META, P_VMSPEC, P_SPEC, P_DOMAIN, P_DEVICES, P_DISKS, P_VOLUMES };

static void kv_init(struct mq_export_ctx *x)
{
	x->doc = json_object_new_object();
	mq_xstr(x->doc, "apiVersion", "kubevirt.io/v1");
	mq_xstr(x->doc, "kind", "VirtualMachine");
	json_object *meta = x->p[P_META] = mq_xobj(x->doc, "metadata");
	mq_xstr(meta, "name", x->spec->name);
	json_object *ann = mq_xobj(meta, "annotations");
	mq_xstr(ann, "maqet.io/manifest", x->spec->file ? x->spec->file : "");
	json_object *vmspec = x->p[P_VMSPEC] = mq_xobj(x->doc, "spec");
	json_object *tmpl = mq_xobj(vmspec, "template");
	mq_xstr(mq_xobj(mq_xobj(tmpl, "metadata"), "labels"), "kubevirt.io/vm", x->spec->name);
	json_object *spec = x->p[P_SPEC] = mq_xobj(tmpl, "spec");
	json_object *dom = x->p[P_DOMAIN] = mq_xobj(spec, "domain");
	x->p[P_DEVICES] = mq_xobj(dom, "devices");
	x->p[P_DISKS] = mq_xarr(x->p[P_DEVICES], "disks");
	x->p[P_VOLUMES] = mq_xarr(spec, "volumes");
}

static void kv_finish(struct mq_export_ctx *x)
{
	if (!json_object_array_length(x->p[P_DISKS]))
		json_object_object_del(x->p[P_DEVICES], "disks");
	if (!json_object_array_length(x->p[P_VOLUMES]))
		json_object_object_del(x->p[P_SPEC], "volumes");
}

static void map_name(struct mq_export_ctx *x)
{
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "metadata.name '%s'", x->spec->name);
}

/* state and restart together give runStrategy: written under `restart`,
 * reported under both. */
static void map_state(struct mq_export_ctx *x)
{
	if (x->spec->state == MQ_DESIRED_STOPPED)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "runStrategy Halted");
	else
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "runStrategy from restart (see restart)");
}

static void map_restart(struct mq_export_ctx *x)
{
	const char *rs;
	enum mq_export_fidelity f = MQ_EXPORT_EXACT;
	const char *why = "";
	if (x->spec->state == MQ_DESIRED_STOPPED) {
		rs = "Halted";
		if (x->spec->restart != MQ_RESTART_NEVER) {
			f = MQ_EXPORT_APPROX;
			why = ": while Halted no restart policy is kept; virtctl start runs it as Manual";
		}
	} else if (x->spec->restart == MQ_RESTART_ALWAYS) {
		rs = "Always";
	} else if (x->spec->restart == MQ_RESTART_ON_FAILURE) {
		rs = "RerunOnFailure";
		why = ": restarted after a failure, not after a guest poweroff";
	} else {
		rs = "Manual";
		f = MQ_EXPORT_APPROX;
		why = ": nothing restarts it, and nothing starts it either: virtctl start once";
	}
	mq_xstr(x->p[P_VMSPEC], "runStrategy", rs);
	mq_export_row(x, f, NULL, "runStrategy %s%s", rs, why);
}

static void map_binary(struct mq_export_ctx *x)
{
	const char *b = x->spec->binary;
	if (!b || strcmp(b, "qemu-system-x86_64") == 0)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "virt-launcher's own QEMU (x86_64)");
	else
		mq_export_row(x, MQ_EXPORT_LOST, NULL, "'%s': virt-launcher runs its own QEMU", b);
}

static void map_machine(struct mq_export_ctx *x)
{
	const char *m = x->spec->machine;
	if (!m) {
		mq_export_row(x, MQ_EXPORT_APPROX, NULL, "not set: KubeVirt's default (q35) where QEMU's is pc");
		return;
	}
	mq_xstr(mq_xobj(x->p[P_DOMAIN], "machine"), "type", m);
	if (strncmp(m, "q35", 3) == 0 || strncmp(m, "pc-q35", 6) == 0)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "domain.machine.type %s", m);
	else
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "domain.machine.type %s: the cluster must list it in emulatedMachines (default q35 only)",
			      m);
}

static void map_accel(struct mq_export_ctx *x)
{
	if (x->spec->accel == MQ_ACCEL_TCG)
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "tcg: only cluster-wide (useEmulation in the KubeVirt resource), not per vm");
	else
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "kvm (KubeVirt's default)");
}

static void map_memory(struct mq_export_ctx *x)
{
	uint64_t b = x->spec->memory ? x->spec->memory : 128ull << 20;
	char *q = mq_export_quantity(b, false);
	mq_xstr(mq_xobj(x->p[P_DOMAIN], "memory"), "guest", q);
	mq_export_row(x, b % 1024 ? MQ_EXPORT_APPROX : MQ_EXPORT_EXACT, NULL, "domain.memory.guest %s%s", q,
		      x->spec->memory ? "" : " (QEMU's default)");
	free(q);
}

static void map_cpu(struct mq_export_ctx *x)
{
	unsigned n = x->spec->cpu ? x->spec->cpu : 1;
	mq_xint(mq_xobj(x->p[P_DOMAIN], "cpu"), "cores", n);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "domain.cpu.cores %u", n);
}

static void map_display(struct mq_export_ctx *x)
{
	const char *d = x->spec->display;
	if (!d || strcmp(d, "none") == 0) {
		mq_xbool(x->p[P_DEVICES], "autoattachGraphicsDevice", false);
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "none: autoattachGraphicsDevice false");
	} else {
		mq_export_row(x, MQ_EXPORT_APPROX, NULL, "'%s': the graphical console is VNC through virtctl vnc", d);
	}
}

static void map_vga(struct mq_export_ctx *x)
{
	const char *v = x->spec->vga;
	if (!v) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
		return;
	}
	const char *t = strcmp(v, "std") == 0 ? "vga" : strcmp(v, "virtio") == 0 ? "virtio" : "vga";
	if (strcmp(v, "none") == 0) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "none: no video device (see display)");
		return;
	}
	mq_xstr(mq_xobj(x->p[P_DEVICES], "video"), "type", t);
	bool same = strcmp(v, "std") == 0 || strcmp(v, "virtio") == 0;
	mq_export_row(x, same ? MQ_EXPORT_EXACT : MQ_EXPORT_APPROX, NULL, "devices.video.type %s%s", t,
		      same ? "" : " (no such KubeVirt video type)");
}

static void map_storage(struct mq_export_ctx *x)
{
	const struct mq_spec *sp = x->spec;
	unsigned boot = 1;
	for (size_t i = 0; i < sp->n_storage; i++) {
		const struct mq_storage *s = &sp->storage[i];
		if (s->type == MQ_STORAGE_VIRTFS) {
			mq_export_row(x, MQ_EXPORT_LOST, s->name,
				      "virtfs share of %s: KubeVirt file systems are virtiofs from a PVC, ConfigMap or "
				      "Secret, not a 9p host path",
				      s->path);
			continue;
		}
		if (s->interface == MQ_IFACE_NONE) {
			mq_export_row(x, MQ_EXPORT_LOST, s->name,
				      "interface none (a drive for raw -device args): KubeVirt has no raw QEMU args");
			continue;
		}
		char *label = mq_export_dns_label(s->name, NULL);
		char *claim = mq_export_dns_label(sp->name, s->name);
		char *path = mq_export_disk_path(x, s);
		const char *bus = s->interface == MQ_IFACE_VIRTIO ? "virtio"
				  : s->interface == MQ_IFACE_SCSI ? "scsi"
								  : "sata";
		json_object *d = json_object_new_object();
		mq_xstr(d, "name", label);
		mq_xstr(mq_xobj(d, "disk"), "bus", bus);
		mq_xint(d, "bootOrder", boot++);
		json_object_array_add(x->p[P_DISKS], d);
		json_object *v = json_object_new_object();
		mq_xstr(v, "name", label);
		mq_xstr(mq_xobj(v, "persistentVolumeClaim"), "claimName", claim);
		json_object_array_add(x->p[P_VOLUMES], v);
		struct mq_strbuf how;
		mq_strbuf_init(&how);
		mq_strbuf_addf(&how, "disk '%s' (bus %s) on PVC '%s': import %s into it (e.g. virtctl image-upload)",
			       label, bus, claim, path);
		if (s->interface == MQ_IFACE_IDE)
			mq_strbuf_adds(&how, "; ide: KubeVirt has no ide bus");
		if (s->size)
			mq_strbuf_adds(&how, "; size: the PVC is not created here");
		mq_export_row(x, MQ_EXPORT_APPROX, s->name, "%s", how.buf);
		mq_strbuf_release(&how);
		if (s->backing_file) {
			char *item = xasprintf("%s.backing_file", s->name);
			mq_export_row(x, MQ_EXPORT_LOST, item,
				      "qcow2 backing chain (%s): a PVC holds one image, flatten it first "
				      "(qemu-img convert)",
				      s->backing_file);
			free(item);
		}
		free(label);
		free(claim);
		free(path);
	}
	if (!sp->n_storage)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "no disks");
}

static void map_network(struct mq_export_ctx *x)
{
	const struct mq_spec *sp = x->spec;
	if (!sp->n_network) {
		mq_xbool(x->p[P_DEVICES], "autoattachPodInterface", false);
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "no network: autoattachPodInterface false");
		return;
	}
	json_object *ifc = json_object_new_object();
	mq_xstr(ifc, "name", "default");
	mq_xobj(ifc, "masquerade");
	json_object *ports = NULL;
	json_object_array_add(mq_xarr(x->p[P_DEVICES], "interfaces"), ifc);
	json_object *net = json_object_new_object();
	mq_xstr(net, "name", "default");
	mq_xobj(net, "pod");
	json_object_array_add(mq_xarr(x->p[P_SPEC], "networks"), net);
	for (size_t i = 0; i < sp->n_network; i++) {
		const struct mq_network *n = &sp->network[i];
		char *item = xasprintf("%zu", i);
		if (i == 0)
			mq_export_row(x, MQ_EXPORT_APPROX, item,
				      "user-mode network -> pod network with a masquerade interface (NAT as well, but "
				      "addresses are the cluster's)");
		else
			mq_export_row(x, MQ_EXPORT_LOST, item,
				      "a second user-mode network: a vm has one pod network (more need Multus)");
		free(item);
		for (size_t j = 0; i == 0 && j < n->n_forwards; j++) {
			const struct mq_forward *f = &n->forwards[j];
			const char *proto = f->proto[0] ? f->proto : "tcp";
			if (!ports)
				ports = mq_xarr(ifc, "ports");
			json_object *p = json_object_new_object();
			mq_xint(p, "port", f->guest_port);
			mq_xstr(p, "protocol", strcmp(proto, "udp") == 0 ? "UDP" : "TCP");
			json_object_array_add(ports, p);
			char *fi = xasprintf("%s:%u:%u", proto, f->host_port, f->guest_port);
			mq_export_row(x, MQ_EXPORT_APPROX, fi,
				      "guest port %u/%s exposed on the pod; host port %u needs a Service (NodePort or "
				      "LoadBalancer)",
				      f->guest_port, strcmp(proto, "udp") == 0 ? "UDP" : "TCP", f->host_port);
			free(fi);
		}
	}
}

static void map_serial(struct mq_export_ctx *x)
{
	if (x->spec->serial == MQ_SERIAL_NONE) {
		mq_xbool(x->p[P_DEVICES], "autoattachSerialConsole", false);
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "none: autoattachSerialConsole false");
	} else {
		mq_xbool(x->p[P_DEVICES], "logSerialConsole", true);
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "log: logSerialConsole true (the guest-console-log container), console via virtctl "
			      "console");
	}
}

static void map_stop_timeout(struct mq_export_ctx *x)
{
	bool exact;
	uint64_t s = mq_export_ms_to_s(x->spec->stop_timeout_ms, &exact);
	mq_xint(x->p[P_SPEC], "terminationGracePeriodSeconds", (int64_t)s);
	mq_export_row(x, exact ? MQ_EXPORT_EXACT : MQ_EXPORT_APPROX, NULL, "terminationGracePeriodSeconds %" PRIu64 "%s",
		      s, exact ? "" : " (rounded up)");
}

static void map_depends_on(struct mq_export_ctx *x)
{
	if (!x->spec->depends_on.n) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
		return;
	}
	char *j = mq_strv_join(&x->spec->depends_on, ", ");
	mq_export_row(x, MQ_EXPORT_LOST, NULL, "%s: KubeVirt has no start ordering between vms", j);
	free(j);
}

static void map_argv(struct mq_export_ctx *x, const struct mq_strv *a)
{
	if (!a->n) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
		return;
	}
	char *j = mq_strv_join(a, " ");
	mq_export_row(x, MQ_EXPORT_LOST, NULL, "%s: KubeVirt takes no raw QEMU options (only a sidecar hook could)",
		      j);
	free(j);
}

static void map_args(struct mq_export_ctx *x)
{
	map_argv(x, &x->spec->args);
}

static void map_arguments(struct mq_export_ctx *x)
{
	map_argv(x, &x->spec->arguments);
}

static void map_snapshots(struct mq_export_ctx *x)
{
	if (!x->spec->snapshots)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
	else
		mq_export_row(x, MQ_EXPORT_LOST, NULL,
			      "not part of a VirtualMachine: VirtualMachineSnapshot objects, made by hand, with no "
			      "schedule or pre-change snapshots");
}

static void map_placement(struct mq_export_ctx *x)
{
	if (!x->spec->placement_host) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set: any node");
		return;
	}
	mq_xstr(mq_xobj(x->p[P_SPEC], "nodeSelector"), "kubernetes.io/hostname", x->spec->placement_host);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "nodeSelector kubernetes.io/hostname = %s", x->spec->placement_host);
}

/* one decision per manifest key: map_<key> for every row of the field table */
#define KV_KEY(key, cls, argopt, parse, to_json, from_json) { #key, map_##key },
static const struct mq_export_key kv_keys[] = { MQ_FIELD_ROWS(KV_KEY) };
_Static_assert(MQ_ARRAY_SIZE(kv_keys) == MQ_FIELD_COUNT, "one decision per key");

const struct mq_export_engine_ops mq_export_kubevirt_ops = {
	.init = kv_init,
	.finish = kv_finish,
	.keys = kv_keys,
	.n_keys = MQ_ARRAY_SIZE(kv_keys),
};
