/* export-incus.c - one VM as an Incus instance definition, the YAML that
 * `incus create --vm --empty NAME < NAME.incus.yaml` (or `incus init`)
 * reads: description, config (instance options, all values strings) and
 * devices.  Keys used are checked against Incus's documented instance and
 * device options (tests/export/incus-keys.txt).
 *
 * Disks become `disk` devices with the image as host path source, the first
 * one booting first; virtfs shares become file system `disk` devices with a
 * mount path; forwards become `proxy` devices in NAT mode (the only mode
 * Incus supports for VMs); what maqet passes to QEMU and Incus has no key for
 * goes into raw.qemu. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/export-int.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

enum { P_CONFIG, P_DEVICES };

/* raw.qemu is split like a shell command line: quote what needs it. */
static void quote_token(struct mq_strbuf *sb, const char *tok)
{
	bool plain = *tok != 0;
	for (const char *p = tok; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_=,./:@%+-", *p))
			plain = false;
	if (plain) {
		mq_strbuf_adds(sb, tok);
		return;
	}
	mq_strbuf_addc(sb, '\'');
	for (const char *p = tok; *p; p++) {
		if (*p == '\'')
			mq_strbuf_adds(sb, "'\\''");
		else
			mq_strbuf_addc(sb, *p);
	}
	mq_strbuf_addc(sb, '\'');
}

static void cfg(struct mq_export_ctx *x, const char *key, const char *val)
{
	mq_xstr(x->p[P_CONFIG], key, val);
}

static void incus_init(struct mq_export_ctx *x)
{
	x->doc = json_object_new_object();
	char *d = xasprintf("maqet vm %s (exported from %s)", x->spec->name, x->spec->file ? x->spec->file : "?");
	mq_xstr(x->doc, "description", d);
	free(d);
	x->p[P_CONFIG] = mq_xobj(x->doc, "config");
	x->p[P_DEVICES] = mq_xobj(x->doc, "devices");
}

static void incus_finish(struct mq_export_ctx *x)
{
	if (!x->argv.n)
		return;
	struct mq_strbuf sb;
	mq_strbuf_init(&sb);
	for (size_t i = 0; i < x->argv.n; i++) {
		if (i)
			mq_strbuf_addc(&sb, ' ');
		quote_token(&sb, x->argv.v[i]);
	}
	cfg(x, "raw.qemu", sb.buf);
	mq_strbuf_release(&sb);
}

static void map_name(struct mq_export_ctx *x)
{
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "instance name '%s' (given to incus create)", x->spec->name);
}

static void map_state(struct mq_export_ctx *x)
{
	if (x->spec->state == MQ_DESIRED_STOPPED) {
		cfg(x, "boot.autostart", "false");
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "boot.autostart false: created, not started");
	} else {
		cfg(x, "boot.autostart", "true");
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "boot.autostart true; incus create does not start it: run incus start once");
	}
}

static void map_binary(struct mq_export_ctx *x)
{
	const char *b = x->spec->binary;
	if (!b || strcmp(b, "qemu-system-x86_64") == 0)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "Incus runs its own qemu-system-x86_64");
	else
		mq_export_row(x, MQ_EXPORT_LOST, NULL, "'%s': Incus runs its own QEMU for the host architecture", b);
}

static void map_machine(struct mq_export_ctx *x)
{
	if (x->spec->machine)
		mq_export_row(x, MQ_EXPORT_LOST, NULL, "'%s': Incus chooses the machine type (q35 on x86)",
			      x->spec->machine);
	else
		mq_export_row(x, MQ_EXPORT_APPROX, NULL, "not set: Incus uses q35 where QEMU's default is pc");
}

static void map_accel(struct mq_export_ctx *x)
{
	if (x->spec->accel == MQ_ACCEL_TCG)
		mq_export_row(x, MQ_EXPORT_LOST, NULL, "tcg: Incus virtual machines always use kvm");
	else
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "kvm (Incus virtual machines need it)");
}

static void map_memory(struct mq_export_ctx *x)
{
	uint64_t b = x->spec->memory ? x->spec->memory : 128ull << 20;
	char *q = mq_export_quantity(b, true);
	cfg(x, "limits.memory", q);
	mq_export_row(x, b % 1024 ? MQ_EXPORT_APPROX : MQ_EXPORT_EXACT, NULL, "limits.memory %s%s", q,
		      x->spec->memory ? "" : " (QEMU's default; Incus's own would be 1GiB)");
	free(q);
}

static void map_cpu(struct mq_export_ctx *x)
{
	char *n = xasprintf("%u", x->spec->cpu ? x->spec->cpu : 1);
	cfg(x, "limits.cpu", n);
	mq_export_row(x, MQ_EXPORT_EXACT, NULL, "limits.cpu %s", n);
	free(n);
}

static void map_display(struct mq_export_ctx *x)
{
	const char *d = x->spec->display;
	if (!d || strcmp(d, "none") == 0)
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "none: Incus always gives the vm a graphical console (incus console --type=vga)");
	else
		mq_export_row(x, MQ_EXPORT_LOST, NULL, "'%s': Incus provides its own SPICE console", d);
}

static void map_vga(struct mq_export_ctx *x)
{
	if (!x->spec->vga) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
		return;
	}
	mq_strv_push(&x->argv, "-vga");
	mq_strv_push(&x->argv, x->spec->vga);
	mq_export_row(x, MQ_EXPORT_APPROX, NULL, "-vga %s in raw.qemu, beside the video device Incus adds itself",
		      x->spec->vga);
}

static void map_storage(struct mq_export_ctx *x)
{
	const struct mq_spec *sp = x->spec;
	bool first = true;
	for (size_t i = 0; i < sp->n_storage; i++) {
		const struct mq_storage *s = &sp->storage[i];
		if (s->type == MQ_STORAGE_VIRTFS) {
			char *dn = xasprintf("fs-%s", s->name);
			char *mnt = xasprintf("/mnt/%s", s->mount_tag);
			json_object *d = mq_xobj(x->p[P_DEVICES], dn);
			mq_xstr(d, "type", "disk");
			mq_xstr(d, "source", s->path);
			mq_xstr(d, "path", mnt);
			mq_xstr(d, "io.bus", "9p");
			if (s->readonly)
				mq_xstr(d, "readonly", "true");
			mq_export_row(x, MQ_EXPORT_APPROX, s->name,
				      "file system disk device '%s' over 9p: the incus agent mounts it at %s; mount tag "
				      "'%s' and security_model are not kept",
				      dn, mnt, s->mount_tag);
			free(dn);
			free(mnt);
			continue;
		}
		if (s->interface == MQ_IFACE_NONE) {
			mq_export_row(x, MQ_EXPORT_LOST, s->name,
				      "interface none (a drive for raw -device args): Incus attaches every disk itself");
			continue;
		}
		char *path = mq_export_disk_path(x, s);
		char *dn = xasprintf("disk-%s", s->name);
		json_object *d = mq_xobj(x->p[P_DEVICES], dn);
		mq_xstr(d, "type", "disk");
		mq_xstr(d, "source", path);
		const char *bus = s->interface == MQ_IFACE_VIRTIO ? "virtio-blk" : "virtio-scsi";
		mq_xstr(d, "io.bus", bus);
		if (first)
			mq_xstr(d, "boot.priority", "10");
		struct mq_strbuf how;
		mq_strbuf_init(&how);
		mq_strbuf_addf(&how, "disk device '%s' (source %s, io.bus %s%s); the profile's root disk stays", dn, path,
			       bus, first ? ", boots first" : "");
		if (s->interface == MQ_IFACE_SATA || s->interface == MQ_IFACE_IDE)
			mq_strbuf_addf(&how, "; %s: Incus has no such bus", mq_iface_str(s->interface));
		if (!s->file)
			mq_strbuf_adds(&how, "; default location of this host's state dir");
		if (s->size)
			mq_strbuf_adds(&how, "; size: Incus does not create a host path disk, the image must exist");
		if (s->backing_file)
			mq_strbuf_addf(&how, "; backing chain: %s must exist at that path", s->backing_file);
		mq_export_row(x, MQ_EXPORT_APPROX, s->name, "%s", how.buf);
		mq_strbuf_release(&how);
		first = false;
		free(dn);
		free(path);
	}
	if (!sp->n_storage)
		mq_export_row(x, MQ_EXPORT_APPROX, NULL, "no disks: the profile's root disk remains");
}

static void map_network(struct mq_export_ctx *x)
{
	const struct mq_spec *sp = x->spec;
	if (!sp->n_network) {
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "no network: the profile's nic remains (create with --no-profiles to drop it)");
		return;
	}
	for (size_t i = 0; i < sp->n_network; i++) {
		const struct mq_network *n = &sp->network[i];
		for (size_t j = 0; j < n->n_forwards; j++) {
			const struct mq_forward *f = &n->forwards[j];
			const char *proto = f->proto[0] ? f->proto : "tcp";
			char *dn = xasprintf("fwd-%s-%u", proto, f->host_port);
			char *l = xasprintf("%s:0.0.0.0:%u", proto, f->host_port);
			char *c = xasprintf("%s:0.0.0.0:%u", proto, f->guest_port);
			json_object *d = mq_xobj(x->p[P_DEVICES], dn);
			mq_xstr(d, "type", "proxy");
			mq_xstr(d, "listen", l);
			mq_xstr(d, "connect", c);
			mq_xstr(d, "nat", "true");
			char *item = xasprintf("%s:%u:%u", proto, f->host_port, f->guest_port);
			mq_export_row(x, MQ_EXPORT_APPROX, item,
				      "proxy device '%s' in NAT mode (listen %s, connect %s): VMs support only NAT mode, "
				      "which needs the host to be the nic's gateway",
				      dn, l, c);
			free(item);
			free(dn);
			free(l);
			free(c);
		}
		char *item = xasprintf("%zu", i);
		mq_export_row(x, MQ_EXPORT_APPROX, item,
			      "user-mode network: the guest gets the profile's bridged nic instead");
		free(item);
	}
}

static void map_serial(struct mq_export_ctx *x)
{
	if (x->spec->serial == MQ_SERIAL_NONE)
		mq_export_row(x, MQ_EXPORT_APPROX, NULL, "none: Incus always attaches a serial console");
	else
		mq_export_row(x, MQ_EXPORT_APPROX, NULL, "log: incus console (--show-log) instead of a log file");
}

static void map_stop_timeout(struct mq_export_ctx *x)
{
	bool exact;
	uint64_t s = mq_export_ms_to_s(x->spec->stop_timeout_ms, &exact);
	char *v = xasprintf("%" PRIu64, s);
	cfg(x, "boot.host_shutdown_timeout", v);
	mq_export_row(x, MQ_EXPORT_APPROX, NULL,
		      "boot.host_shutdown_timeout %s s%s: used when the host shuts down; incus stop takes --timeout", v,
		      exact ? "" : " (rounded up)");
	free(v);
}

static void map_restart(struct mq_export_ctx *x)
{
	switch (x->spec->restart) {
	case MQ_RESTART_NEVER:
		cfg(x, "boot.autorestart", "false");
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "boot.autorestart false");
		break;
	case MQ_RESTART_ON_FAILURE:
		cfg(x, "boot.autorestart", "true");
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "boot.autorestart true: up to 10 restarts a minute on unexpected exit, not maqet's backoff");
		break;
	case MQ_RESTART_ALWAYS:
		cfg(x, "boot.autorestart", "true");
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "boot.autorestart true: restarts after an unexpected exit only, not after a guest poweroff");
		break;
	}
}

static void map_depends_on(struct mq_export_ctx *x)
{
	if (!x->spec->depends_on.n) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
		return;
	}
	char *j = mq_strv_join(&x->spec->depends_on, ", ");
	mq_export_row(x, MQ_EXPORT_LOST, NULL,
		      "%s: no start ordering across a cluster (boot.autostart.priority orders one member only)", j);
	free(j);
}

static void map_argv(struct mq_export_ctx *x, const struct mq_strv *a)
{
	for (size_t i = 0; i < a->n; i++)
		mq_strv_push(&x->argv, a->v[i]);
	if (a->n)
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "appended to raw.qemu: options that clash with the command line Incus generates fail "
			      "at start");
	else
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
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
	const struct mq_snapshots *s = x->spec->snapshots;
	if (!s) {
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set");
		return;
	}
	if (s->schedule) {
		bool exact = true;
		char *cron = s->schedule->cron ? xstrdup(s->schedule->cron)
					       : mq_export_every_cron(s->schedule->every_s, &exact);
		cfg(x, "snapshots.schedule", cron);
		cfg(x, "snapshots.pattern", "auto-%d");
		mq_export_row(x, MQ_EXPORT_APPROX, "schedule",
			      "snapshots.schedule '%s'%s; keep %u: Incus expires snapshots by age "
			      "(snapshots.expiry), not by count",
			      cron, exact ? "" : " (nearest cron)", s->schedule->keep);
		free(cron);
	}
	if (s->named.n) {
		char *j = mq_strv_join(&s->named, ", ");
		mq_export_row(x, MQ_EXPORT_LOST, "named", "%s: create once with incus snapshot create", j);
		free(j);
	}
	if (s->before_change && s->before_change->enabled)
		mq_export_row(x, MQ_EXPORT_LOST, "before_change", "Incus takes no snapshot before a change");
	if (!s->schedule && !s->named.n && !(s->before_change && s->before_change->enabled))
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "nothing declared");
}

static void map_placement(struct mq_export_ctx *x)
{
	if (!x->spec->placement_host)
		mq_export_row(x, MQ_EXPORT_EXACT, NULL, "not set: any cluster member");
	else
		mq_export_row(x, MQ_EXPORT_APPROX, NULL,
			      "not part of the instance config: create with incus create --target %s",
			      x->spec->placement_host);
}

/* one decision per manifest key: map_<key> for every row of the field table */
#define INCUS_KEY(key, cls, argopt, parse, to_json, from_json) { #key, map_##key },
static const struct mq_export_key incus_keys[] = { MQ_FIELD_ROWS(INCUS_KEY) };
_Static_assert(MQ_ARRAY_SIZE(incus_keys) == MQ_FIELD_COUNT, "one decision per key");

const struct mq_export_engine_ops mq_export_incus_ops = {
	.init = incus_init,
	.finish = incus_finish,
	.keys = incus_keys,
	.n_keys = MQ_ARRAY_SIZE(incus_keys),
};
