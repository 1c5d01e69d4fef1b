/* qmp-int.h - internals shared by qmp.c (the client), qmpsync.c (blocking
 * helpers) and qmpjob.c (QMP jobs).  Not for other modules. */
#ifndef MQ_QMP_INT_H
#define MQ_QMP_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "reconciler/qmp.h"
#include "util/strbuf.h"

#define QMP_EVENT_QUEUE 256
#define QMP_READ_CHUNK 65536
/* mq_qmp_connect(): a socket file gives no event when QEMU starts listening
 * on it, so a refused/missing socket is tried again after this long (a poll()
 * timeout, not a sleep loop on the caller's thread of control). */
#define QMP_CONNECT_RETRY_MS 5
#define JOB_PROGRESS_MS 500

struct cmd {
	uint64_t id;
	char *name;
	char *line;         /* serialized; NULL once in the output buffer */
	mq_qmp_reply_fn fn; /* NULL: cancelled, the reply is dropped */
	void *ud;
};

struct mq_qmp {
	int fd;
	char *path;
	enum mq_qmp_state state;
	struct mq_qmp_callbacks cb;
	struct mq_strbuf in;  /* bytes received, not yet consumed */
	size_t scanned;       /* prefix of `in` known to hold no '\n' */
	struct mq_strbuf out; /* bytes to send */
	size_t out_off;
	uint64_t next_id;
	struct cmd *cmds;     /* sent or held, waiting for a reply */
	size_t ncmds;
	json_object *events[QMP_EVENT_QUEUE];
	size_t ev_head, ev_count;
	struct mq_error *why; /* close reason */
	struct mq_qmp_job **jobs;
	size_t njobs;
	bool got_input;       /* for mq_qmp_pump() */
};

struct mq_qmp_job {
	struct mq_qmp *q;
	char *id;
	char *command;
	char status[16];
	int64_t current, total;
	bool done, dismissing;
	int result;           /* 0, -EIO, -EREMOTEIO, -ECONNRESET ... */
	char *error;          /* message for result < 0 */
	uint64_t start_id, query_id, dismiss_id;
	mq_qmp_progress_fn progress;
	void *progress_ud;
};

/* qmpjob.c: route a JOB_STATUS_CHANGE event; fail every job when the
 * connection closes. */
void mq_qmp__job_event(struct mq_qmp *q, json_object *ev);
void mq_qmp__jobs_closed(struct mq_qmp *q, int code, const char *msg);
/* qmp.c: the close reason as the caller's error (returns its code). */
int mq_qmp__copy_why(struct mq_qmp *q, struct mq_error **err);

#endif
