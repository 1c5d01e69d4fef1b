/* qmp.h - an asynchronous QEMU Machine Protocol client over a unix socket.
 *
 * Non-blocking, driven from a poll() loop:
 *
 *     pfd.fd = mq_qmp_fd(q); pfd.events = mq_qmp_poll_events(q);
 *     poll(...);
 *     mq_qmp_dispatch(q, pfd.revents, &err);
 *
 * A connection goes CONNECTING -> GREETING -> NEGOTIATING -> READY, or to
 * CLOSED from any state; on_state is called on READY and on CLOSED.  Any
 * number of commands can be in flight; each gets a unique "id" and its reply
 * is matched by id to the command's callback.  Events go to on_event, or,
 * when there is none, to a bounded queue read with mq_qmp_next_event().
 *
 * Input is hostile: every line is capped (MQ_QMP_MAX_LINE) and parsed with a
 * json-c tokener whose depth is capped (MQ_QMP_MAX_DEPTH).  A line that is not
 * a JSON object, an oversized line, a reply without "return"/"error", or a
 * reply without an id while several commands are in flight is a protocol
 * error: the connection is closed (-EPROTO) with a clear message, and every
 * command in flight fails with it.  A reply whose id is not one of ours (a
 * cancelled command, or a former owner's of a handed-over fd) is dropped.
 *
 * Blocking wrappers for code without a loop (CLI, apply workers) are at the
 * end: they poll() the socket until done or a deadline, and never sleep.
 */
#ifndef MQ_QMP_H
#define MQ_QMP_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "util/error.h"

#define MQ_QMP_MAX_LINE (1024 * 1024)
#define MQ_QMP_MAX_DEPTH 32

struct mq_qmp;

enum mq_qmp_state {
	MQ_QMP_CONNECTING = 0, /* non-blocking connect() in progress */
	MQ_QMP_GREETING,       /* connected, waiting for {"QMP": ...} */
	MQ_QMP_NEGOTIATING,    /* qmp_capabilities sent */
	MQ_QMP_READY,
	MQ_QMP_CLOSED,
};
const char *mq_qmp_state_str(enum mq_qmp_state s);

/* The outcome of one command.  status: 0 ("return" in ret, borrowed),
 * -EREMOTEIO (a QMP error: err_class and err_desc set), -ECONNRESET (the
 * connection closed first), -EPROTO (protocol error), -ECANCELED (the client
 * was freed).  message: a ready-made error message for status < 0. */
struct mq_qmp_reply {
	int status;
	json_object *ret;
	const char *err_class;
	const char *err_desc;
	const char *message;
};
typedef void (*mq_qmp_reply_fn)(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud);
/* Called on READY and on CLOSED (why: the reason, NULL on READY). */
typedef void (*mq_qmp_state_fn)(struct mq_qmp *q, enum mq_qmp_state s, const struct mq_error *why, void *ud);
/* ev is borrowed; take a reference to keep it. */
typedef void (*mq_qmp_event_fn)(struct mq_qmp *q, json_object *ev, void *ud);

struct mq_qmp_callbacks {
	mq_qmp_state_fn on_state;
	mq_qmp_event_fn on_event; /* NULL: events are queued (the newest 256) */
	void *ud;
};

/* Start a non-blocking connect to `path`.  Returns 0 with *out in state
 * CONNECTING or GREETING; the greeting and qmp_capabilities then happen in
 * mq_qmp_dispatch().  A socket that does not exist yet (-ENOENT), refuses
 * (-ECONNREFUSED) or whose backlog is full (-EAGAIN) is reported at once with
 * *out untouched: the caller retries on its own timer.  cb may be NULL. */
int mq_qmp_open(const char *path, const struct mq_qmp_callbacks *cb, struct mq_qmp **out, struct mq_error **err);
/* Wrap an fd that is already connected AND negotiated (e.g. received over
 * SCM_RIGHTS from the process that negotiated it): state READY.  Takes the
 * fd (made CLOEXEC and non-blocking); `name` (may be NULL) is used in
 * messages.  Nothing buffered in the socket is lost. */
struct mq_qmp *mq_qmp_from_fd(int fd, const char *name, const struct mq_qmp_callbacks *cb);
/* Close; commands in flight get -ECANCELED (callbacks run), on_state is not
 * called.  Accepts NULL; returns NULL. */
struct mq_qmp *mq_qmp_free(struct mq_qmp *q);
/* Give the fd up (-1 if closed): the client keeps no reference to it and
 * becomes CLOSED.  Used to hand over a negotiated connection. */
int mq_qmp_detach_fd(struct mq_qmp *q);

enum mq_qmp_state mq_qmp_state(const struct mq_qmp *q);
const char *mq_qmp_path(const struct mq_qmp *q);
/* Why the connection closed (NULL while open). */
const struct mq_error *mq_qmp_close_reason(const struct mq_qmp *q);

/* ---- the loop API ---------------------------------------------------------- */

int mq_qmp_fd(const struct mq_qmp *q);                /* -1 when closed */
short mq_qmp_poll_events(const struct mq_qmp *q);     /* POLLIN, | POLLOUT while connecting or output pending */
/* Handle revents: finish the connect, write pending output, read and handle
 * every complete line.  Callbacks run from here.  Returns 0, or -errno when
 * the connection closed during this call (err gets the reason; state CLOSED).
 * Calling it on a CLOSED client returns the close reason's code again. */
int mq_qmp_dispatch(struct mq_qmp *q, short revents, struct mq_error **err);

/* Queue a command (args borrowed, may be NULL).  Allowed before READY: it is
 * sent once negotiation is done.  fn (may be NULL) is called exactly once.
 * *id (may be NULL) receives the command's id for mq_qmp_cancel().
 * -ENOTCONN when CLOSED. */
int mq_qmp_send(struct mq_qmp *q, const char *command, json_object *args, mq_qmp_reply_fn fn, void *ud,
		uint64_t *id, struct mq_error **err);
/* Like mq_qmp_send, with `fd` attached to the command's bytes (SCM_RIGHTS;
 * fd stays the caller's), for QMP's getfd / add-fd.  Sent at once: the
 * connection must be READY with no output pending (-ENOTCONN, -EBUSY). */
int mq_qmp_send_fd(struct mq_qmp *q, const char *command, json_object *args, int fd, mq_qmp_reply_fn fn,
		   void *ud, uint64_t *id, struct mq_error **err);
/* Forget the callback of command `id` (its reply will be dropped). */
void mq_qmp_cancel(struct mq_qmp *q, uint64_t id);
/* Number of commands waiting for a reply. */
size_t mq_qmp_in_flight(const struct mq_qmp *q);

/* Take the oldest queued event (new reference) or NULL. */
json_object *mq_qmp_next_event(struct mq_qmp *q);

/* ---- blocking helpers (no loop) ------------------------------------------ */

typedef bool (*mq_qmp_done_fn)(struct mq_qmp *q, void *arg);

/* poll() q's fd (and watch_fd, if >= 0, for POLLIN) and dispatch until
 * done(q, arg) is true or deadline (CLOCK_MONOTONIC ms as mq_mono_ms(); -1 =
 * none).  done is checked before each wait, so it may turn true through the
 * connection closing.  Returns 0 when done, 1 when watch_fd became readable,
 * -ETIMEDOUT, or the connection's error when it closed with done still false. */
int mq_qmp_wait(struct mq_qmp *q, mq_qmp_done_fn done, void *arg, int watch_fd, int64_t deadline,
		struct mq_error **err);
/* done functions: the connection is READY or CLOSED; no command is waiting
 * for its reply (every callback has run). */
bool mq_qmp_settled(struct mq_qmp *q, void *arg);
bool mq_qmp_idle(struct mq_qmp *q, void *arg);

/* Connect to `path`, read the greeting and negotiate.  Retries connect() on
 * ENOENT/ECONNREFUSED until timeout_ms passes (timeout 0: one attempt); the
 * retries wait with a short poll() timeout, since a socket file gives no
 * event when it starts listening.  Callers that spawned QEMU should wait for
 * the socket with its pidfd instead (see qemu.c). */
int mq_qmp_connect(const char *path, int timeout_ms, struct mq_qmp **out, struct mq_error **err);

/* Run `command` with optional `arguments` (borrowed) and wait for its reply.
 * On success *ret (if non-NULL) receives a new reference to the "return"
 * value.  A QMP "error" reply gives -EREMOTEIO with "qmp command 'X' failed:
 * <desc>"; -ETIMEDOUT, -ECONNRESET, -EPROTO otherwise. */
int mq_qmp_execute(struct mq_qmp *q, const char *command, json_object *arguments, int timeout_ms,
		   json_object **ret, struct mq_error **err);
/* query-status: *status receives e.g. "running", "paused", "shutdown" (caller frees). */
int mq_qmp_query_status(struct mq_qmp *q, int timeout_ms, char **status, struct mq_error **err);
/* Read whatever arrives within timeout_ms (events are queued or handed to
 * on_event).  Returns 0 when something arrived, -ETIMEDOUT when nothing did,
 * -ECONNRESET on EOF (events read before it stay queued), -EPROTO. */
int mq_qmp_pump(struct mq_qmp *q, int timeout_ms, struct mq_error **err);

/* ---- QMP jobs ---------------------------------------------------------------
 *
 * Long operations (snapshot-save/-load/-delete, block jobs) run as QMP jobs:
 * the command gets a "job-id"; JOB_STATUS_CHANGE events for that id are
 * followed (created, running, ..., pending, concluded); query-jobs gives
 * current-progress/total-progress (and the error of a failed job);
 * job-dismiss removes a concluded job.  A job handle belongs to its client:
 * free jobs before the client, or let mq_qmp_free() detach them. */

struct mq_qmp_job;

/* Send `command` with `args` (borrowed, may be NULL) plus "job-id": job_id,
 * and follow the job.  Events of the job still reach on_event / the queue. */
int mq_qmp_job_start(struct mq_qmp *q, const char *command, json_object *args, const char *job_id,
		     struct mq_qmp_job **out, struct mq_error **err);
/* Ask query-jobs for the job's progress (non-blocking; the answer updates
 * mq_qmp_job_progress()). */
int mq_qmp_job_query(struct mq_qmp_job *j, struct mq_error **err);
/* Last status seen ("created", "running", "pending", "concluded", "null",
 * or "" before the first event). */
const char *mq_qmp_job_status(const struct mq_qmp_job *j);
void mq_qmp_job_progress(const struct mq_qmp_job *j, int64_t *current, int64_t *total);
/* The job has concluded (or failed to start) and was dismissed. */
bool mq_qmp_job_done(const struct mq_qmp_job *j);
/* After done: 0 when concluded without error; -EIO with "qmp job 'ID'
 * (COMMAND) failed: <job error>", -EREMOTEIO when the command itself was
 * refused, -ECONNRESET when the connection closed meanwhile. */
int mq_qmp_job_result(const struct mq_qmp_job *j, struct mq_error **err);
struct mq_qmp_job *mq_qmp_job_free(struct mq_qmp_job *j);

/* Blocking: start the job, follow it until dismissed or timeout_ms, asking
 * query-jobs every progress_ms (0 = 500) and calling progress (may be NULL)
 * with each answer.  Returns mq_qmp_job_result() or -ETIMEDOUT. */
typedef void (*mq_qmp_progress_fn)(void *ud, const char *status, int64_t current, int64_t total);
int mq_qmp_job_run(struct mq_qmp *q, const char *command, json_object *args, const char *job_id, int timeout_ms,
		   int progress_ms, mq_qmp_progress_fn progress, void *ud, struct mq_error **err);

/* Parse one QMP line into a JSON object with the caps above (exposed for unit
 * tests and fuzzing).  Returns 0 or -EPROTO. */
int mq_qmp_parse_line(const char *line, size_t len, json_object **out, struct mq_error **err);

#endif
