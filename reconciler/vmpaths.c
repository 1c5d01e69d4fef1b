/* vmpaths.c - per-VM runtime file names and default image paths (see vmpaths.h). */
#include "reconciler/vmpaths.h"

#include <stdlib.h>

#include "util/xalloc.h"

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

