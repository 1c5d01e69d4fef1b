#include "reconciler/vmjob.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "reconciler/qemu.h"
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

int mq_vmjob_run(int fd, void *ud)
{
	const struct mq_vmjob *j = ud;
	struct mq_error *err = NULL;
	struct mq_wmsg m;
	if (j->stop && j->ref.pid > 0) {
		struct mq_stop_opts so = {
			.timeout_ms = j->stop_timeout_ms,
			.grace_ms = j->stop_grace_ms,
			.force = j->force_stop,
			.step = step_cb,
			.ud = &fd,
		};
		if (mq_qemu_stop(&j->ref, j->qmp_path, &so, &err) < 0) {
			send_error(fd, "cannot stop vm '%s': %s", j->name, err ? err->msg : "stop failed");
			mq_error_free(err);
			return 1;
		}
		memset(&m, 0, sizeof(m));
		m.kind = MQ_WMSG_STOPPED;
		(void)mq_wmsg_send(fd, &m, -1);
	}
	if (!j->start)
		return 0;
	if (!j->stop && j->ref.pid > 0) {
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
		return 1;
	}
	struct mq_start_opts so = {
		.runtime_dir = j->runtime_dir,
		.disk_dir = j->disk_dir,
		.timeout_ms = j->start_timeout_ms,
		.keep_ev = j->keep_ev,
	};
	struct mq_start_result res = { .ev_fd = -1 };
	r = mq_qemu_start(j->spec, &so, &res, &err);
	if (r < 0) {
		send_error(fd, "%s", err ? err->msg : "start failed");
		mq_error_free(err);
		return 1;
	}
	memset(&m, 0, sizeof(m));
	m.kind = MQ_WMSG_STARTED;
	m.pid = (int32_t)res.ref.pid;
	m.start_time = res.ref.start_time;
	MQ_WMSG_SET(m.accel, res.accel);
	MQ_WMSG_SET(m.path, res.qmp_path);
	(void)mq_wmsg_send(fd, &m, res.ev_fd);
	mq_start_result_release(&res);
	return 0;
}
