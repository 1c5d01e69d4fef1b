/* qmpjob.c - QMP jobs: job-id, JOB_STATUS_CHANGE, query-jobs, job-dismiss (see qmp.h). */
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

static int64_t deadline_from(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : mq_mono_ms() + timeout_ms;
}

/* ---- QMP jobs ------------------------------------------------------------------ */

static void job_finish(struct mq_qmp_job *j, int result, const char *msg)
{
	if (j->done)
		return;
	j->done = true;
	j->result = result;
	char *m = msg ? xstrdup(msg) : NULL; /* msg may be j->error itself */
	free(j->error);
	j->error = m;
}

void mq_qmp__jobs_closed(struct mq_qmp *q, int code, const char *msg)
{
	for (size_t i = 0; i < q->njobs; i++) {
		struct mq_qmp_job *j = q->jobs[i];
		if (!j->done) {
			char *m = xasprintf("qmp job '%s' (%s) failed: %s", j->id, j->command, msg);
			job_finish(j, code, m);
			free(m);
		}
	}
}

static void job_dismiss_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	(void)q;
	struct mq_qmp_job *j = ud;
	j->dismiss_id = 0;
	if (r->status < 0 && r->status != -EREMOTEIO) {
		job_finish(j, r->status, r->message);
		return;
	}
	/* dismissed (or already gone): the job's own outcome stands */
	if (r->status == 0)
		snprintf(j->status, sizeof(j->status), "null");
	if (j->error)
		job_finish(j, -EIO, j->error);
	else
		job_finish(j, 0, NULL);
}

/* Update j from a query-jobs answer. */
static void job_update_from(struct mq_qmp_job *j, json_object *list)
{
	size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *info = json_object_array_get_idx(list, i), *v;
		if (!json_object_object_get_ex(info, "id", &v) || !json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), j->id) != 0)
			continue;
		if (json_object_object_get_ex(info, "current-progress", &v))
			j->current = json_object_get_int64(v);
		if (json_object_object_get_ex(info, "total-progress", &v))
			j->total = json_object_get_int64(v);
		if (json_object_object_get_ex(info, "status", &v) && json_object_is_type(v, json_type_string))
			snprintf(j->status, sizeof(j->status), "%s", json_object_get_string(v));
		if (json_object_object_get_ex(info, "error", &v) && json_object_is_type(v, json_type_string) &&
		    !j->error)
			j->error = xasprintf("qmp job '%s' (%s) failed: %s", j->id, j->command, json_object_get_string(v));
	}
}

static void job_dismiss(struct mq_qmp_job *j)
{
	if (j->dismissing || !j->q)
		return;
	j->dismissing = true;
	json_object *a = json_object_new_object();
	json_object_object_add(a, "id", json_object_new_string(j->id));
	(void)mq_qmp_send(j->q, "job-dismiss", a, job_dismiss_reply, j, &j->dismiss_id, NULL);
	json_object_put(a);
}

static void job_query_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	(void)q;
	struct mq_qmp_job *j = ud;
	j->query_id = 0;
	if (r->status == 0) {
		job_update_from(j, r->ret);
		if (j->progress)
			j->progress(j->progress_ud, j->status, j->current, j->total);
	}
	/* concluded: the query above fetched the job's error; now dismiss it */
	if (strcmp(j->status, "concluded") == 0)
		job_dismiss(j);
}

static void job_start_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	(void)q;
	struct mq_qmp_job *j = ud;
	j->start_id = 0;
	if (r->status < 0) {
		char *m = xasprintf("qmp job '%s' (%s) failed: %s", j->id, j->command,
				    r->status == -EREMOTEIO ? r->err_desc : r->message);
		job_finish(j, r->status, m);
		free(m);
	}
}

int mq_qmp_job_query(struct mq_qmp_job *j, struct mq_error **err)
{
	if (!j || !j->q)
		return mq_error_set(err, ENOTCONN, "qmp job has no connection");
	if (j->query_id)
		return 0; /* one query at a time */
	return mq_qmp_send(j->q, "query-jobs", NULL, job_query_reply, j, &j->query_id, err);
}

void mq_qmp__job_event(struct mq_qmp *q, json_object *ev)
{
	json_object *name, *data, *id, *status;
	if (!q->njobs || !json_object_object_get_ex(ev, "event", &name) ||
	    strcmp(json_object_get_string(name), "JOB_STATUS_CHANGE") != 0 ||
	    !json_object_object_get_ex(ev, "data", &data) || !json_object_object_get_ex(data, "id", &id) ||
	    !json_object_object_get_ex(data, "status", &status))
		return;
	for (size_t i = 0; i < q->njobs; i++) {
		struct mq_qmp_job *j = q->jobs[i];
		if (j->done || strcmp(j->id, json_object_get_string(id)) != 0)
			continue;
		snprintf(j->status, sizeof(j->status), "%s", json_object_get_string(status));
		if (strcmp(j->status, "concluded") == 0) {
			j->query_id = 0; /* a query in flight would not see the error: ask again */
			(void)mq_qmp_job_query(j, NULL);
		} else if (strcmp(j->status, "null") == 0) {
			/* dismissed (by us or someone else) */
			if (j->error)
				job_finish(j, -EIO, j->error);
			else
				job_finish(j, 0, NULL);
		}
	}
}

int mq_qmp_job_start(struct mq_qmp *q, const char *command, json_object *args, const char *job_id,
		     struct mq_qmp_job **out, struct mq_error **err)
{
	if (!q || !command || !job_id || !out)
		return mq_error_set(err, EINVAL, "qmp: no connection, command or job id");
	json_object *a = json_object_new_object();
	if (args) {
		json_object_object_foreach(args, k, v)
			json_object_object_add(a, k, json_object_get(v));
	}
	json_object_object_add(a, "job-id", json_object_new_string(job_id));
	struct mq_qmp_job *j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->id = xstrdup(job_id);
	j->command = xstrdup(command);
	int r = mq_qmp_send(q, command, a, job_start_reply, j, &j->start_id, err);
	json_object_put(a);
	if (r < 0) {
		free(j->id);
		free(j->command);
		free(j);
		return r;
	}
	q->jobs = xreallocarray(q->jobs, q->njobs + 1, sizeof(*q->jobs));
	q->jobs[q->njobs++] = j;
	*out = j;
	return 0;
}

const char *mq_qmp_job_status(const struct mq_qmp_job *j)
{
	return j ? j->status : "";
}

void mq_qmp_job_progress(const struct mq_qmp_job *j, int64_t *current, int64_t *total)
{
	if (current)
		*current = j ? j->current : 0;
	if (total)
		*total = j ? j->total : 0;
}

bool mq_qmp_job_done(const struct mq_qmp_job *j)
{
	return !j || j->done;
}

int mq_qmp_job_result(const struct mq_qmp_job *j, struct mq_error **err)
{
	if (!j)
		return mq_error_set(err, EINVAL, "no qmp job");
	if (!j->done)
		return mq_error_set(err, EINPROGRESS, "qmp job '%s' (%s) is still %s", j->id, j->command,
				    j->status[0] ? j->status : "starting");
	if (j->result < 0)
		return mq_error_set(err, -j->result, "%s", j->error ? j->error : "qmp job failed");
	return 0;
}

struct mq_qmp_job *mq_qmp_job_free(struct mq_qmp_job *j)
{
	if (!j)
		return NULL;
	if (j->q) {
		mq_qmp_cancel(j->q, j->start_id);
		mq_qmp_cancel(j->q, j->query_id);
		mq_qmp_cancel(j->q, j->dismiss_id);
		for (size_t i = 0; i < j->q->njobs; i++)
			if (j->q->jobs[i] == j) {
				j->q->jobs[i] = j->q->jobs[--j->q->njobs];
				break;
			}
	}
	free(j->id);
	free(j->command);
	free(j->error);
	free(j);
	return NULL;
}

static bool job_is_done(struct mq_qmp *q, void *arg)
{
	(void)q;
	return ((struct mq_qmp_job *)arg)->done;
}

int mq_qmp_job_run(struct mq_qmp *q, const char *command, json_object *args, const char *job_id, int timeout_ms,
		   int progress_ms, mq_qmp_progress_fn progress, void *ud, struct mq_error **err)
{
	struct mq_qmp_job *j = NULL;
	int r = mq_qmp_job_start(q, command, args, job_id, &j, err);
	if (r < 0)
		return r;
	j->progress = progress;
	j->progress_ud = ud;
	int64_t deadline = deadline_from(timeout_ms);
	int every = progress_ms > 0 ? progress_ms : JOB_PROGRESS_MS;
	for (;;) {
		int64_t next = mq_mono_ms() + every;
		if (deadline >= 0 && next > deadline)
			next = deadline;
		struct mq_error *e = NULL;
		r = mq_qmp_wait(q, job_is_done, j, -1, next, &e);
		mq_error_free(e);
		if (r == 0 || j->done)
			break;
		if (r != -ETIMEDOUT)
			break; /* closed: j is done through mq_qmp__jobs_closed() */
		if (deadline >= 0 && mq_mono_ms() >= deadline) {
			r = mq_error_set(err, ETIMEDOUT, "qmp job '%s' (%s) did not finish within %d ms (status '%s')",
					 job_id, command, timeout_ms, j->status[0] ? j->status : "starting");
			mq_qmp_job_free(j);
			return r;
		}
		(void)mq_qmp_job_query(j, NULL);
	}
	r = mq_qmp_job_result(j, err);
	mq_qmp_job_free(j);
	return r;
}
