/* vmlock.c - see vmlock.h. */
#include "reconciler/vmlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "reconciler/audit.h"
#include "reconciler/phase.h"
#include "reconciler/proc.h"
#include "util/paths.h"
#include "util/xalloc.h"

static char *lock_path(const char *state_dir, const char *vm)
{
	char *file = xasprintf("vm-%s.lock", vm);
	char *p = mq_path_join(state_dir, file);
	free(file);
	return p;
}

/* "maqet pid N: WHAT" from the file's "N WHAT\n", or NULL. */
static char *read_holder(const char *path)
{
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	char *sp = strchr(buf, ' ');
	if (sp)
		*sp++ = '\0';
	if (!*buf)
		return NULL;
	return sp && *sp ? xasprintf("maqet pid %s: %s", buf, sp) : xasprintf("maqet pid %s", buf);
}

bool mq_vmlock_busy(const char *state_dir, const char *vm, char **holder)
{
	char *path = lock_path(state_dir, vm);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	bool busy = false;
	if (fd >= 0) {
		busy = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
		close(fd); /* drops our shared lock, if taken */
	}
	if (busy && holder)
		*holder = read_holder(path);
	free(path);
	return busy;
}

int mq_vmlock_acquire(struct mq_lock *l, const char *state_dir, const char *vm, const char *what, int timeout_ms,
		      void (*waiting)(void *ud, const char *holder), void *ud, struct mq_error **err)
{
	char *file = xasprintf("vm-%s.lock", vm);
	int r = mq_lock_acquire_named(l, state_dir, file, what, 0, NULL);
	if (r < 0 && timeout_ms > 0) {
		if (waiting) {
			char *holder = NULL;
			(void)mq_vmlock_busy(state_dir, vm, &holder);
			waiting(ud, holder);
			free(holder);
		}
		r = mq_lock_acquire_named(l, state_dir, file, what, timeout_ms, err);
	} else if (r < 0) {
		r = mq_lock_acquire_named(l, state_dir, file, what, 0, err);
	}
	free(file);
	if (r == -EWOULDBLOCK && err && *err) {
		char *holder = NULL;
		(void)mq_vmlock_busy(state_dir, vm, &holder);
		mq_error_free(*err);
		*err = NULL;
		r = mq_error_set(err, EWOULDBLOCK,
				 "vm '%s' is busy: locked by %s (waited %.1f s); try again later or raise --lock-timeout", vm,
				 holder ? holder : "another maqet", (timeout_ms > 0 ? timeout_ms : 0) / 1000.0);
		free(holder);
	}
	return r;
}

bool mq_vmlock_busy_phase(const struct mq_vm_record *rec)
{
	enum mq_phase p = mq_phase_get(rec);
	return p == MQ_PHASE_SNAPSHOTTING || p == MQ_PHASE_RESTORING;
}

int mq_vmlock_recover(struct mq_store *st, const char *state_dir, struct mq_vm_record *rec, const char *who,
		      struct mq_error **err)
{
	if (!mq_vmlock_busy_phase(rec))
		return 0;
	char *holder = NULL;
	if (state_dir && mq_vmlock_busy(state_dir, rec->name, &holder)) {
		free(holder);
		return 0;
	}
	if (state_dir) { /* what the dead holder was doing is still in the file */
		char *path = lock_path(state_dir, rec->name);
		holder = read_holder(path);
		free(path);
	}
	enum mq_phase p = mq_phase_get(rec);
	bool snap = p == MQ_PHASE_SNAPSHOTTING;
	struct mq_vm_record *n = mq_vm_record_dup(rec);
	struct mq_pidref ref = { .pid = (pid_t)rec->pid, .start_time = rec->start_time };
	bool alive = rec->pid > 0 && mq_proc_check(&ref) == MQ_PROC_ALIVE;
	char *detail;
	int r;
	if (rec->pid > 0 && !alive) {
		detail = xasprintf("interrupted: the maqet running it went away (%s), and qemu is gone too; found by %s",
				   holder ? holder : "unknown", who);
		struct mq_phase_ctx ctx = { .error = "qemu exited while a snapshot job ran (interrupted)" };
		r = mq_phase_apply(n, MQ_PHASE_EV_OBSERVED_GONE, &ctx, err);
	} else {
		detail = xasprintf("interrupted: the maqet running it went away (%s); back to %s, found by %s; a "
				   "half-made snapshot may be listed as 'external' (check 'maqet snapshot list %s')",
				   holder ? holder : "unknown", alive ? "running" : "stopped", who, rec->name);
		struct mq_phase_ctx ctx = { .resume_phase = alive ? MQ_PHASE_RUNNING : MQ_PHASE_STOPPED };
		r = mq_phase_apply(n, snap ? MQ_PHASE_EV_SNAPSHOT_END : MQ_PHASE_EV_RESTORE_END, &ctx, err);
	}
	if (r == 0)
		r = mq_audit_record(st, n, n->source, snap ? "snapshot-create" : "snapshot-restore", "failed", detail,
				    err);
	if (r == 0) {
		/* swap contents, keeping rec's name pointer */
		struct mq_vm_record tmp = *rec;
		*rec = *n;
		*n = tmp;
		char *name = rec->name;
		rec->name = n->name;
		n->name = name;
	}
	mq_vm_record_free(n);
	free(detail);
	free(holder);
	return r < 0 ? r : 1;
}

int mq_vmlock_recover_all(struct mq_store *st, const char *state_dir, const char *who, struct mq_error **err)
{
	struct mq_vm_record **recs = NULL;
	size_t n = 0;
	int r = mq_store_vm_list(st, &recs, &n, err);
	if (r < 0)
		return r;
	int done = 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		if (!mq_vmlock_busy_phase(recs[i]))
			continue;
		r = mq_vmlock_recover(st, state_dir, recs[i], who, err);
		if (r > 0)
			done++;
	}
	mq_vm_record_list_free(recs, n);
	return r < 0 ? r : done;
}
