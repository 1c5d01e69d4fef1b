/* qmp.h - minimal QEMU Machine Protocol client over a unix socket.
 *
 * Blocking with explicit timeouts (poll), single connection.  Every line read
 * is capped (MQ_QMP_MAX_LINE) and parsed with a json-c tokener whose depth is
 * capped (MQ_QMP_MAX_DEPTH); anything that is not a JSON object, an oversized
 * line, or a reply without "return"/"error" is a protocol error (-EPROTO) with
 * a clear message.  Asynchronous events received while waiting for a reply
 * are queued and can be taken with mq_qmp_next_event().
 */
#ifndef MQ_QMP_H
#define MQ_QMP_H

#include <stdbool.h>
#include <json-c/json.h>

#include "util/error.h"

#define MQ_QMP_MAX_LINE (1024 * 1024)
#define MQ_QMP_MAX_DEPTH 32

struct mq_qmp;

/* Connect to `path`, read the greeting and negotiate (qmp_capabilities).
 * Retries connect() on ENOENT/ECONNREFUSED until timeout_ms passes, so it can
 * be used right after spawning QEMU. */
int mq_qmp_connect(const char *path, int timeout_ms, struct mq_qmp **out, struct mq_error **err);
struct mq_qmp *mq_qmp_free(struct mq_qmp *q);    /* closes; accepts NULL */
int mq_qmp_fd(const struct mq_qmp *q);

/* Run `command` with optional `arguments` (borrowed).  On success *ret (if
 * non-NULL) receives a new reference to the "return" value.  A QMP "error"
 * reply gives -EREMOTEIO with "qmp command 'X' failed: <desc>". */
int mq_qmp_execute(struct mq_qmp *q, const char *command, json_object *arguments, int timeout_ms,
		   json_object **ret, struct mq_error **err);
/* query-status: *status receives e.g. "running", "paused", "shutdown" (caller frees). */
int mq_qmp_query_status(struct mq_qmp *q, int timeout_ms, char **status, struct mq_error **err);
/* Take the oldest queued event (new reference) or NULL. */
json_object *mq_qmp_next_event(struct mq_qmp *q);
/* Read whatever is available within timeout_ms and queue events.  Returns
 * 0, -ETIMEDOUT when nothing arrived, -ECONNRESET on EOF. */
int mq_qmp_pump(struct mq_qmp *q, int timeout_ms, struct mq_error **err);

/* Parse one QMP line into a JSON object with the caps above (exposed for unit
 * tests and fuzzing).  Returns 0 or -EPROTO. */
int mq_qmp_parse_line(const char *line, size_t len, json_object **out, struct mq_error **err);

#endif
