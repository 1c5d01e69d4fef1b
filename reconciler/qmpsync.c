/* qmpsync.c - blocking QMP helpers for code without a loop (see qmp.h). */
#include "reconciler/qmp.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/proc.h"
#include "reconciler/qmp-int.h"
#include "util/xalloc.h"

/* ---- blocking helpers ------------------------------------------------------- */

static int deadline_left(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - mq_mono_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

int mq_qmp_wait(struct mq_qmp *q, mq_qmp_done_fn done, void *arg, int watch_fd, int64_t deadline,
		struct mq_error **err)
{
	if (!q)
		return mq_error_set(err, EINVAL, "qmp: no connection");
	for (;;) {
		if (done && done(q, arg))
			return 0;
		if (q->state == MQ_QMP_CLOSED)
			return mq_qmp__copy_why(q, err);
		struct pollfd p[2] = { { .fd = q->fd, .events = mq_qmp_poll_events(q) },
				       { .fd = watch_fd, .events = POLLIN } };
		int left = deadline_left(deadline);
		int n = poll(p, watch_fd >= 0 ? 2 : 1, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return mq_error_set(err, errno, "qmp: cannot wait on '%s': %s", q->path, strerror(errno));
		}
		if (n == 0) {
			if (done && done(q, arg))
				return 0;
			return mq_error_set(err, ETIMEDOUT, "qmp: timed out waiting for '%s'", q->path);
		}
		if (p[0].revents) {
			struct mq_error *e = NULL;
			(void)mq_qmp_dispatch(q, p[0].revents, &e); /* a close is seen at the loop's top */
			mq_error_free(e);
		}
		if (watch_fd >= 0 && p[1].revents) {
			if (done && done(q, arg))
				return 0;
			return 1;
		}
	}
}

bool mq_qmp_settled(struct mq_qmp *q, void *arg)
{
	(void)arg;
	return q->state == MQ_QMP_READY || q->state == MQ_QMP_CLOSED;
}

bool mq_qmp_idle(struct mq_qmp *q, void *arg)
{
	(void)arg;
	return q->ncmds == 0;
}

static int64_t deadline_from(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : mq_mono_ms() + timeout_ms;
}

int mq_qmp_connect(const char *path, int timeout_ms, struct mq_qmp **out, struct mq_error **err)
{
	if (!path || !out)
		return mq_error_set(err, EINVAL, "qmp: no socket path");
	int64_t deadline = deadline_from(timeout_ms);
	struct mq_qmp *q = NULL;
	for (;;) {
		struct mq_error *e = NULL;
		int r = mq_qmp_open(path, NULL, &q, &e);
		if (r == 0) {
			mq_error_free(e);
			break;
		}
		if (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN) {
			if (err) {
				mq_error_free(*err);
				*err = e;
			} else {
				mq_error_free(e);
			}
			return r;
		}
		mq_error_free(e);
		int left = deadline_left(deadline);
		if (left == 0)
			return mq_error_set(err, ETIMEDOUT,
					    "cannot connect to qmp socket '%s': %s (gave up after %d ms; is qemu running?)",
					    path, strerror(-r), timeout_ms);
		/* see QMP_CONNECT_RETRY_MS */
		(void)poll(NULL, 0, left < 0 || left > QMP_CONNECT_RETRY_MS ? QMP_CONNECT_RETRY_MS : left);
	}
	struct mq_error *e = NULL;
	int r = mq_qmp_wait(q, mq_qmp_settled, NULL, -1, deadline, &e);
	if (r == 0 && q->state == MQ_QMP_READY) {
		mq_error_free(e);
		*out = q;
		return 0;
	}
	if (r == -ETIMEDOUT) {
		if (q->state == MQ_QMP_NEGOTIATING)
			r = mq_error_set(err, ETIMEDOUT, "qmp command 'qmp_capabilities' timed out waiting for '%s'", path);
		else
			r = mq_error_set(err, ETIMEDOUT, "qmp: timed out waiting for the greeting from '%s'", path);
	} else {
		r = mq_qmp__copy_why(q, err);
	}
	mq_error_free(e);
	mq_qmp_free(q);
	return r;
}

struct exec_wait {
	bool done;
	int status;
	json_object *ret;
	char *message;
};

static void exec_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	(void)q;
	struct exec_wait *w = ud;
	w->done = true;
	w->status = r->status;
	if (r->status == 0)
		w->ret = json_object_get(r->ret);
	else
		w->message = xstrdup(r->message ? r->message : "failed");
}

static bool exec_done(struct mq_qmp *q, void *arg)
{
	(void)q;
	return ((struct exec_wait *)arg)->done;
}

int mq_qmp_execute(struct mq_qmp *q, const char *command, json_object *arguments, int timeout_ms,
		   json_object **ret, struct mq_error **err)
{
	if (!q || !command)
		return mq_error_set(err, EINVAL, "qmp: no connection or command");
	struct exec_wait w = { 0 };
	uint64_t id = 0;
	int r = mq_qmp_send(q, command, arguments, exec_reply, &w, &id, err);
	if (r < 0)
		return r;
	struct mq_error *e = NULL;
	r = mq_qmp_wait(q, exec_done, &w, -1, deadline_from(timeout_ms), &e);
	mq_error_free(e);
	if (!w.done) {
		mq_qmp_cancel(q, id);
		if (r == -ETIMEDOUT)
			return mq_error_set(err, ETIMEDOUT, "qmp command '%s' timed out waiting for '%s'", command,
					    q->path);
		return mq_qmp__copy_why(q, err);
	}
	if (w.status < 0) {
		r = mq_error_set(err, -w.status, "%s", w.message);
		free(w.message);
		return r;
	}
	if (ret)
		*ret = w.ret;
	else
		json_object_put(w.ret);
	return 0;
}

int mq_qmp_query_status(struct mq_qmp *q, int timeout_ms, char **status, struct mq_error **err)
{
	json_object *ret = NULL;
	int r = mq_qmp_execute(q, "query-status", NULL, timeout_ms, &ret, err);
	if (r < 0)
		return r;
	json_object *st;
	if (!json_object_is_type(ret, json_type_object) || !json_object_object_get_ex(ret, "status", &st) ||
	    !json_object_is_type(st, json_type_string)) {
		json_object_put(ret);
		return mq_error_set(err, EPROTO, "qmp: invalid reply from '%s': query-status has no 'status' string",
				    q->path);
	}
	if (status)
		*status = xstrdup(json_object_get_string(st));
	json_object_put(ret);
	return 0;
}

static bool got_input(struct mq_qmp *q, void *arg)
{
	(void)arg;
	return q->got_input;
}

int mq_qmp_pump(struct mq_qmp *q, int timeout_ms, struct mq_error **err)
{
	if (!q)
		return mq_error_set(err, EINVAL, "qmp: no connection");
	if (q->state == MQ_QMP_CLOSED)
		return mq_qmp__copy_why(q, err);
	q->got_input = false;
	struct mq_error *e = NULL;
	int r = mq_qmp_wait(q, got_input, NULL, -1, deadline_from(timeout_ms), &e);
	if (r == 0 && q->state != MQ_QMP_CLOSED) {
		/* take whatever else is immediately available */
		(void)mq_qmp_dispatch(q, POLLIN, NULL);
	}
	mq_error_free(e);
	if (q->state == MQ_QMP_CLOSED)
		return mq_qmp__copy_why(q, err);
	if (r == -ETIMEDOUT || !q->got_input)
		return mq_error_set(err, ETIMEDOUT, "qmp: nothing received from '%s' within %d ms", q->path,
				    timeout_ms);
	return r < 0 ? r : 0;
}

