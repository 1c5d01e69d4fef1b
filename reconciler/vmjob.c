#include "reconciler/vmjob.h"
#include "reconciler/host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reconciler/img.h"
#include "reconciler/qemu.h"
#include "reconciler/qemuid.h"
#include "reconciler/vmpaths.h"
#include "reconciler/worker.h"
#include "util/strv.h"
#include "util/xalloc.h"

static void send_error(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_error(int fd, const char *fmt, ...)
{
	struct mq_wmsg m;
	memset(&m, 0, sizeof(m));
	m.kind = MQ_WMSG_ERROR;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m.text, sizeof(m.text), fmt, ap);
	va_end(ap);
	(void)mq_wmsg_send(fd, &m, -1);
}

static void step_cb(void *ud, const char *step, const char *outcome, const char *detail)
{
	int fd = *(int *)ud;
	struct mq_wmsg m;
	memset(&m, 0, sizeof(m));
	m.kind = MQ_WMSG_STEP;
	MQ_WMSG_SET(m.step, step);
	MQ_WMSG_SET(m.outcome, outcome);
	MQ_WMSG_SET(m.text, detail);
	(void)mq_wmsg_send(fd, &m, -1);
}

static void spawned_cb(void *ud, const struct mq_pidref *ref)
{
	int fd = *(int *)ud;
	struct mq_wmsg m;
	memset(&m, 0, sizeof(m));
	m.kind = MQ_WMSG_SPAWNED;
	m.pid = (int32_t)ref->pid;
	m.start_time = ref->start_time;
	(void)mq_wmsg_send(fd, &m, -1);
}

static int stop_one(const struct mq_vmjob *j, int *fd, const struct mq_pidref *ref, const char *qmp_path, bool force)
{
	struct mq_error *err = NULL;
	struct mq_stop_opts so = {
		.timeout_ms = j->stop_timeout_ms,
		.grace_ms = j->stop_grace_ms,
		.force = force,
		.step = step_cb,
		.ud = fd,
	};
	if (mq_qemu_stop(ref, qmp_path, &so, &err) < 0) {
		send_error(*fd, "cannot stop vm '%s': %s", j->name, err ? err->msg : "stop failed");
		mq_error_free(err);
		return -1;
	}
	return 0;
}

/* Does QEMU's command line (cmd) match the argv this spec starts with now?
 * (argv[0] aside: it is the binary as the spec names it.) */
static bool same_argv(const struct mq_vmjob *j, const struct mq_vm_paths *paths, const struct mq_strv *cmd)
{
	struct mq_strv want = MQ_STRV_INIT;
	const char *accel = mq_accel_resolve(j->spec->accel);
	bool same = false;
	if (accel && mq_qemu_build_argv(j->spec, paths, accel, j->disk_dir, &want, NULL) == 0 && want.n == cmd->n) {
		same = true;
		for (size_t i = 1; i < want.n && same; i++)
			same = strcmp(want.v[i], cmd->v[i]) == 0;
	}
	mq_strv_clear(&want);
	return same;
}

/* QEMU runs (started or adopted): say so, with its event connection; the
 * result is released. */
static void send_running(int fd, enum mq_wmsg_kind kind, struct mq_start_result *res)
{
	struct mq_wmsg m;
	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.pid = (int32_t)res->ref.pid;
	m.start_time = res->ref.start_time;
	MQ_WMSG_SET(m.accel, res->accel);
	MQ_WMSG_SET(m.path, res->qmp_path);
	(void)mq_wmsg_send(fd, &m, res->ev_fd);
	mq_start_result_release(res);
}

static void send_step(int fd, const char *step, const char *outcome, const char *text)
{
	step_cb(&fd, step, outcome, text ? text : "");
}

/* Every existing qcow2 image of spec: snapshot (apply = false) or revert
 * to (apply = true) `tag`.  A failed create removes the tag from the images
 * done so far. */
static int pre_change_images(const struct mq_vmjob *j, const char *tag, bool apply, struct mq_error **err)
{
	const struct mq_spec *spec = j->old_spec;
	struct mq_strv done = MQ_STRV_INIT;
	int r = 0;
	for (size_t i = 0; i < spec->n_storage && r == 0; i++) {
		const struct mq_storage *s = &spec->storage[i];
		if (s->type != MQ_STORAGE_QCOW2)
			continue;
		char *path = mq_storage_image_path(spec, s, j->disk_dir);
		if (access(path, F_OK) == 0) {
			r = apply ? mq_img_snapshot_apply(NULL, path, tag, err) : mq_img_snapshot_create(NULL, path, tag, err);
			if (r == 0)
				mq_strv_push(&done, path);
			else if (!apply) /* e.g. out of space half-way: clusters it took */
				(void)mq_img_repair_leaks(NULL, path, NULL);
		}
		free(path);
	}
	if (r < 0 && !apply)
		for (size_t k = 0; k < done.n; k++)
			(void)mq_img_snapshot_delete(NULL, done.v[k], tag, NULL);
	mq_strv_clear(&done);
	return r;
}

static int start_spec(int fd, const struct mq_vmjob *j, const struct mq_spec *spec, struct mq_error **err)
{
	struct mq_wmsg m;
	struct mq_strv created = MQ_STRV_INIT;
	int r = mq_qemu_prepare_disks(spec, j->disk_dir, &created, err);
	for (size_t i = 0; i < created.n; i++) {
		memset(&m, 0, sizeof(m));
		m.kind = MQ_WMSG_DISK;
		MQ_WMSG_SET(m.path, created.v[i]);
		(void)mq_wmsg_send(fd, &m, -1);
	}
	mq_strv_clear(&created);
	if (r < 0)
		return mq_error_prefix(err, "cannot start vm '%s'", j->name);
	struct mq_start_opts so = {
		.runtime_dir = j->runtime_dir,
		.disk_dir = j->disk_dir,
		.host = j->host,
		.timeout_ms = j->start_timeout_ms,
		.keep_ev = j->keep_ev,
		.spawned = spawned_cb,
		.spawned_ud = &fd,
	};
	struct mq_start_result res = { .ev_fd = -1 };
	r = mq_qemu_start(spec, &so, &res, err);
	if (r < 0)
		return r;
	send_running(fd, MQ_WMSG_STARTED, &res);
	return 0;
}

/* The before_change path of a restart: stopped already; snapshot, start
 * the new spec, roll back on failure. */
static int run_pre_change(int fd, const struct mq_vmjob *j)
{
	struct mq_error *err = NULL;
	if (pre_change_images(j, j->pre_change, false, &err) < 0) {
		char *why = xasprintf("cannot take pre-change snapshot '%s': %s; starting the last good spec",
				      j->pre_change, err ? err->msg : "qemu-img failed");
		send_step(fd, "pre-change", "failed", why);
		free(why);
		mq_error_free(err);
		err = NULL;
		if (start_spec(fd, j, j->old_spec, &err) < 0) {
			send_error(fd, "%s", err ? err->msg : "start failed");
			mq_error_free(err);
			return 1;
		}
		return 0;
	}
	send_step(fd, "pre-change", "ok", j->pre_change);
	if (start_spec(fd, j, j->spec, &err) == 0)
		return 0;
	if (!j->rollback) {
		send_error(fd, "%s", err ? err->msg : "start failed");
		mq_error_free(err);
		return 1;
	}
	send_step(fd, "new-start", "failed", err ? err->msg : "start failed");
	mq_error_free(err);
	err = NULL;
	if (pre_change_images(j, j->pre_change, true, &err) < 0) {
		send_step(fd, "rollback", "failed", err ? err->msg : "qemu-img failed");
		send_error(fd, "cannot roll back vm '%s' to snapshot '%s': %s", j->name, j->pre_change,
			   err ? err->msg : "qemu-img failed");
		mq_error_free(err);
		return 1;
	}
	send_step(fd, "rollback", "ok", j->pre_change);
	if (start_spec(fd, j, j->old_spec, &err) < 0) {
		send_error(fd, "cannot start the last good spec of vm '%s' after a rollback: %s", j->name,
			   err ? err->msg : "start failed");
		mq_error_free(err);
		return 1;
	}
	return 0;
}

int mq_vmjob_run(int fd, void *ud)
{
	const struct mq_vmjob *j = ud;
	struct mq_error *err = NULL;
	struct mq_wmsg m;
	struct mq_vm_paths paths = { 0 };
	int rc = 1;
	if (j->runtime_dir)
		mq_vm_paths_init(&paths, j->runtime_dir, j->name);
	/* The binary answers --version before anything is stopped: a restart
	 * whose new binary is missing keeps the old QEMU running.  A binary the
	 * parent already saw start a QEMU is in the cache this fork inherited. */
	if (j->start && j->spec && mq_qemu_check_binary_cached(j->spec->binary, NULL, &err) < 0) {
		send_error(fd, "cannot start vm '%s': %s", j->name, err ? err->msg : "qemu binary check failed");
		mq_error_free(err);
		goto out;
	}
	if (j->stop) {
		if (j->ref.pid > 0 && stop_one(j, &fd, &j->ref, j->qmp_path, j->force_stop) < 0)
			goto out;
		/* An interrupted start may have left a QEMU of this VM that no
		 * record names: it goes too (proven by its command line). */
		struct mq_pidref orphan;
		for (int k = 0; paths.qmp && k < 4 && mq_qemu_find(paths.qmp, NULL, &orphan, NULL) == 1; k++)
			if (stop_one(j, &fd, &orphan, paths.qmp, j->force_stop) < 0)
				goto out;
		memset(&m, 0, sizeof(m));
		m.kind = MQ_WMSG_STOPPED;
		(void)mq_wmsg_send(fd, &m, -1);
	}
	if (!j->start) {
		rc = 0;
		goto out;
	}
	if (j->pre_change && j->old_spec && j->stop) {
		rc = run_pre_change(fd, j);
		goto out;
	}
	struct mq_start_opts so = {
		.runtime_dir = j->runtime_dir,
		.disk_dir = j->disk_dir,
		.host = j->host,
		.timeout_ms = j->start_timeout_ms,
		.keep_ev = j->keep_ev,
		.spawned = spawned_cb,
		.spawned_ud = &fd,
	};
	struct mq_start_result res = { .ev_fd = -1 };
	/* A QEMU of this VM that an interrupted start left behind (recorded
	 * pid, or found by its command line): adopted when it is what this spec
	 * starts, else stopped, so there is never a second one. */
	struct mq_pidref found = { 0 };
	struct mq_strv cmd = MQ_STRV_INIT;
	bool have = paths.qmp && mq_qemu_find(paths.qmp, &j->ref, &found, &cmd) == 1;
	if (have && !j->stop && same_argv(j, &paths, &cmd)) {
		int r = mq_qemu_adopt(j->spec, &so, &found, &cmd, &res, &err);
		mq_strv_clear(&cmd);
		if (r < 0) {
			send_error(fd, "%s", err ? err->msg : "adopt failed");
			mq_error_free(err);
			goto out;
		}
		send_running(fd, MQ_WMSG_ADOPTED, &res);
		rc = 0;
		goto out;
	}
	mq_strv_clear(&cmd);
	if (have && stop_one(j, &fd, &found, paths.qmp, true) < 0)
		goto out;
	if (!j->stop && j->ref.pid > 0 && !(have && found.pid == j->ref.pid)) {
		/* A crashed instance may still be tearing down (watch begins the
		 * restart when its leader is a zombie): wait until it is fully
		 * gone, so its disk locks and sockets are released. */
		(void)mq_proc_wait_exit(&j->ref, 30000);
	}
	struct mq_strv created = MQ_STRV_INIT;
	int r = mq_qemu_prepare_disks(j->spec, j->disk_dir, &created, &err);
	for (size_t i = 0; i < created.n; i++) {
		memset(&m, 0, sizeof(m));
		m.kind = MQ_WMSG_DISK;
		MQ_WMSG_SET(m.path, created.v[i]);
		(void)mq_wmsg_send(fd, &m, -1);
	}
	mq_strv_clear(&created);
	if (r < 0) {
		send_error(fd, "cannot start vm '%s': %s", j->name, err ? err->msg : "disk preparation failed");
		mq_error_free(err);
		goto out;
	}
	r = mq_qemu_start(j->spec, &so, &res, &err);
	if (r < 0) {
		send_error(fd, "%s", err ? err->msg : "start failed");
		mq_error_free(err);
		goto out;
	}
	send_running(fd, MQ_WMSG_STARTED, &res);
	rc = 0;
out:
	if (paths.qmp)
		mq_vm_paths_release(&paths);
	return rc;
}
