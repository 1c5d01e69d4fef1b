/* vmpaths.c - per-VM runtime file names and default image paths (see vmpaths.h). */
#include "reconciler/vmpaths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "util/xalloc.h"

void mq_vm_paths_init(struct mq_vm_paths *p, const char *runtime_dir, const char *name)
{
	p->qmp = xasprintf("%s/%s.qmp", runtime_dir, name);
	p->qmp_ev = xasprintf("%s/%s.ev", runtime_dir, name);
	p->serial_log = xasprintf("%s/%s.serial.log", runtime_dir, name);
	p->qemu_log = xasprintf("%s/%s.qemu.log", runtime_dir, name);
	p->console = xasprintf("%s/%s.console", runtime_dir, name);
}

void mq_vm_paths_release(struct mq_vm_paths *p)
{
	if (!p)
		return;
	free(p->qmp);
	free(p->qmp_ev);
	free(p->serial_log);
	free(p->qemu_log);
	free(p->console);
	p->qmp = p->qmp_ev = p->serial_log = p->qemu_log = p->console = NULL;
}

char *mq_storage_image_path(const struct mq_spec *spec, const struct mq_storage *s, const char *disk_dir)
{
	if (s->file)
		return xstrdup(s->file);
	return xasprintf("%s/%s-%s.%s", disk_dir ? disk_dir : ".", spec->name, s->name,
			 s->type == MQ_STORAGE_RAW ? "raw" : "qcow2");
}


int mq_log_rotate(const char *path, unsigned long long cap)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(st.st_mode) || (unsigned long long)st.st_size <= cap)
		return 0;
	char *old = xasprintf("%s.1", path);
	int r = rename(path, old) < 0 ? -errno : 1;
	free(old);
	return r;
}
