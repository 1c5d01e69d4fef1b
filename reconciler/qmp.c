/* qmp.c - minimal QMP client over a unix socket (see qmp.h). */
#include "reconciler/qmp.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#define QMP_EVENT_QUEUE 256
#define QMP_READ_CHUNK 65536
#define QMP_CONNECT_RETRY_MS 2

struct mq_qmp {
	int fd;
	char *path;
	struct mq_strbuf in;   /* bytes received, not yet consumed */
	size_t scanned;        /* prefix of `in` known to hold no '\n' */
	bool discarding;       /* dropping the rest of an oversized line */
	bool eof;
	uint64_t next_id;
	json_object *events[QMP_EVENT_QUEUE];
	size_t ev_head, ev_count;
};

/* ---- deadlines ---------------------------------------------------------- */

static int64_t deadline_from(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : mq_mono_ms() + timeout_ms;
}

static int deadline_left(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - mq_mono_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* ---- parsing ------------------------------------------------------------ */

int mq_qmp_parse_line(const char *line, size_t len, json_object **out, struct mq_error **err)
{
	if (len > MQ_QMP_MAX_LINE)
		return mq_error_set(err, EPROTO, "qmp reply too long (%zu bytes, limit %d)", len,
				    MQ_QMP_MAX_LINE);
	/* json-c would stop at an embedded NUL; QMP never sends one. */
	if (memchr(line, '\0', len))
		return mq_error_set(err, EPROTO, "invalid json: embedded nul byte");
	if (len > INT32_MAX)
		return mq_error_set(err, EPROTO, "qmp reply too long");

	json_tokener *tok = json_tokener_new_ex(MQ_QMP_MAX_DEPTH);
	if (!tok)
		return mq_error_set(err, ENOMEM, "cannot allocate json tokener");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *obj = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (jerr == json_tokener_continue || (!obj && jerr == json_tokener_success)) {
		json_object_put(obj);
		return mq_error_set(err, EPROTO, "invalid json: incomplete value");
	}
	if (jerr != json_tokener_success) {
		json_object_put(obj);
		return mq_error_set(err, EPROTO, "invalid json: %s", json_tokener_error_desc(jerr));
	}
	for (size_t i = used; i < len; i++) {
		char c = line[i];
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			json_object_put(obj);
			return mq_error_set(err, EPROTO, "invalid json: trailing data after value");
		}
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return mq_error_set(err, EPROTO, "json value is not an object");
	}
	*out = obj;
	return 0;
}

/* ---- event queue -------------------------------------------------------- */

static void queue_event(struct mq_qmp *q, json_object *ev)
{
	if (q->ev_count == QMP_EVENT_QUEUE) {
		/* full: drop the oldest */
		json_object_put(q->events[q->ev_head]);
		q->events[q->ev_head] = NULL;
		q->ev_head = (q->ev_head + 1) % QMP_EVENT_QUEUE;
		q->ev_count--;
	}
	q->events[(q->ev_head + q->ev_count) % QMP_EVENT_QUEUE] = ev;
	q->ev_count++;
}

json_object *mq_qmp_next_event(struct mq_qmp *q)
{
	if (!q || q->ev_count == 0)
		return NULL;
	json_object *ev = q->events[q->ev_head];
	q->events[q->ev_head] = NULL;
	q->ev_head = (q->ev_head + 1) % QMP_EVENT_QUEUE;
	q->ev_count--;
	return ev;
}

/* ---- low-level I/O ------------------------------------------------------ */

static void consume(struct mq_qmp *q, size_t n)
{
	memmove(q->in.buf, q->in.buf + n, q->in.len - n);
	mq_strbuf_setlen(&q->in, q->in.len - n);
	q->scanned = 0;
}

/* Wait up to the deadline for input and append it to q->in.  0 when bytes
 * arrived, -ETIMEDOUT, -ECONNRESET on EOF, or -errno. */
static int fill(struct mq_qmp *q, int64_t deadline, struct mq_error **err)
{
	if (q->eof)
		return mq_error_set(err, ECONNRESET, "qmp connection closed by '%s'", q->path);
	for (;;) {
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		int r = poll(&pfd, 1, deadline_left(deadline));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return mq_error_set(err, errno, "qmp: cannot wait on '%s': %s", q->path, strerror(errno));
		}
		if (r == 0)
			return mq_error_set(err, ETIMEDOUT, "qmp: timed out waiting for a reply from '%s'", q->path);
		mq_strbuf_grow(&q->in, QMP_READ_CHUNK);
		ssize_t n = recv(q->fd, q->in.buf + q->in.len, QMP_READ_CHUNK, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			if (errno == ECONNRESET) {
				q->eof = true;
				return mq_error_set(err, ECONNRESET, "qmp connection closed by '%s'", q->path);
			}
			return mq_error_set(err, errno, "qmp: cannot read from '%s': %s", q->path, strerror(errno));
		}
		if (n == 0) {
			q->eof = true;
			return mq_error_set(err, ECONNRESET, "qmp connection closed by '%s'", q->path);
		}
		if (q->discarding) {
			char *nl = memchr(q->in.buf + q->in.len, '\n', (size_t)n);
			if (!nl)
				continue; /* still inside the oversized line: drop it */
			size_t keep = (size_t)(q->in.buf + q->in.len + n - (nl + 1));
			memmove(q->in.buf, nl + 1, keep);
			q->in.len = keep;
			q->in.buf[keep] = '\0';
			q->scanned = 0;
			q->discarding = false;
			return 0;
		}
		q->in.len += (size_t)n; /* mq_strbuf_setlen() only shrinks */
		q->in.buf[q->in.len] = '\0';
		return 0;
	}
}

/* Take one complete line out of the buffer, if there is one: 1 with *obj set,
 * 0 when no complete line is buffered, or -EPROTO. */
static int take_line(struct mq_qmp *q, json_object **obj, struct mq_error **err)
{
	for (;;) {
		char *nl = memchr(q->in.buf + q->scanned, '\n', q->in.len - q->scanned);
		if (!nl) {
			q->scanned = q->in.len;
			if (q->in.len > MQ_QMP_MAX_LINE) {
				mq_strbuf_reset(&q->in);
				q->scanned = 0;
				q->discarding = true;
				return mq_error_set(err, EPROTO, "qmp: invalid reply from '%s': qmp reply too long (limit %d bytes)",
						    q->path, MQ_QMP_MAX_LINE);
			}
			return 0;
		}
		size_t len = (size_t)(nl - q->in.buf);
		size_t s = 0;
		while (s < len && (q->in.buf[s] == ' ' || q->in.buf[s] == '\t' || q->in.buf[s] == '\r'))
			s++;
		if (s == len) { /* blank line */
			consume(q, len + 1);
			continue;
		}
		int r = mq_qmp_parse_line(q->in.buf, len, obj, err);
		consume(q, len + 1);
		if (r < 0)
			return mq_error_prefix(err, "qmp: invalid reply from '%s'", q->path);
		return 1;
	}
}

/* Read the next JSON object within the deadline. */
static int read_obj(struct mq_qmp *q, int64_t deadline, json_object **obj, struct mq_error **err)
{
	for (;;) {
		int r = take_line(q, obj, err);
		if (r != 0)
			return r < 0 ? r : 0;
		r = fill(q, deadline, err);
		if (r < 0)
			return r;
	}
}

static int send_all(struct mq_qmp *q, const char *data, size_t len, int64_t deadline, struct mq_error **err)
{
	while (len) {
		ssize_t n = send(q->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET) {
			q->eof = true;
			return mq_error_set(err, ECONNRESET, "qmp connection closed by '%s'", q->path);
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return mq_error_set(err, errno, "qmp: cannot write to '%s': %s", q->path, strerror(errno));
		struct pollfd pfd = { .fd = q->fd, .events = POLLOUT };
		int r = poll(&pfd, 1, deadline_left(deadline));
		if (r < 0 && errno != EINTR)
			return mq_error_set(err, errno, "qmp: cannot wait on '%s': %s", q->path, strerror(errno));
		if (r == 0)
			return mq_error_set(err, ETIMEDOUT, "qmp: timed out writing to '%s'", q->path);
	}
	return 0;
}

/* ---- commands ----------------------------------------------------------- */

static bool id_matches(json_object *reply, const char *id)
{
	json_object *rid;
	if (!json_object_object_get_ex(reply, "id", &rid))
		return true; /* QEMU omits the id on e.g. parse errors: take it */
	return json_object_is_type(rid, json_type_string) && strcmp(json_object_get_string(rid), id) == 0;
}

static int execute_deadline(struct mq_qmp *q, const char *command, json_object *arguments, int64_t deadline,
			    json_object **ret, struct mq_error **err)
{
	char id[32];
	snprintf(id, sizeof(id), "mq-%" PRIu64, ++q->next_id);

	json_object *req = json_object_new_object();
	json_object_object_add(req, "execute", json_object_new_string(command));
	if (arguments)
		json_object_object_add(req, "arguments", json_object_get(arguments));
	json_object_object_add(req, "id", json_object_new_string(id));
	struct mq_strbuf line = MQ_STRBUF_INIT;
	mq_strbuf_adds(&line, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	mq_strbuf_addc(&line, '\n');
	json_object_put(req);

	int r = send_all(q, line.buf, line.len, deadline, err);
	mq_strbuf_release(&line);
	if (r < 0)
		return mq_error_prefix(err, "qmp command '%s' failed", command);

	for (;;) {
		json_object *obj = NULL;
		r = read_obj(q, deadline, &obj, err);
		if (r < 0)
			return r == -ETIMEDOUT ? mq_error_set(err, ETIMEDOUT,
							       "qmp command '%s' timed out waiting for '%s'",
							       command, q->path)
					       : r;
		if (json_object_object_get_ex(obj, "event", NULL)) {
			queue_event(q, obj);
			continue;
		}
		json_object *val, *e;
		bool has_ret = json_object_object_get_ex(obj, "return", &val);
		bool has_err = json_object_object_get_ex(obj, "error", &e);
		if (!has_ret && !has_err) {
			json_object_put(obj);
			return mq_error_set(err, EPROTO,
					    "qmp: invalid reply from '%s': neither 'return' nor 'error' in reply to '%s'",
					    q->path, command);
		}
		if (!id_matches(obj, id)) {
			/* a late reply to an earlier command that timed out */
			json_object_put(obj);
			continue;
		}
		if (has_err) {
			json_object *desc = NULL, *cls = NULL;
			const char *msg = "unknown error";
			if (json_object_is_type(e, json_type_object)) {
				if (json_object_object_get_ex(e, "desc", &desc) &&
				    json_object_is_type(desc, json_type_string))
					msg = json_object_get_string(desc);
				else if (json_object_object_get_ex(e, "class", &cls) &&
					 json_object_is_type(cls, json_type_string))
					msg = json_object_get_string(cls);
			}
			r = mq_error_set(err, EREMOTEIO, "qmp command '%s' failed: %s", command, msg);
			json_object_put(obj);
			return r;
		}
		if (ret)
			*ret = json_object_get(val);
		json_object_put(obj);
		return 0;
	}
}

int mq_qmp_execute(struct mq_qmp *q, const char *command, json_object *arguments, int timeout_ms,
		   json_object **ret, struct mq_error **err)
{
	if (!q || !command)
		return mq_error_set(err, EINVAL, "qmp: no connection or command");
	return execute_deadline(q, command, arguments, deadline_from(timeout_ms), ret, err);
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

int mq_qmp_pump(struct mq_qmp *q, int timeout_ms, struct mq_error **err)
{
	int64_t deadline = deadline_from(timeout_ms);
	bool got = false;
	int r = 0;
	for (;;) {
		json_object *obj = NULL;
		r = take_line(q, &obj, err);
		if (r < 0)
			return r;
		if (r > 0) {
			got = true;
			if (json_object_object_get_ex(obj, "event", NULL))
				queue_event(q, obj);
			else
				json_object_put(obj); /* stray reply to a command that timed out */
			continue;
		}
		/* Nothing complete buffered: wait for the first bytes until the
		 * deadline, then only take what is immediately available. */
		r = fill(q, got ? mq_mono_ms() : deadline, err);
		if (r == -ETIMEDOUT) {
			if (got) {
				if (err && *err)
					*err = mq_error_free(*err);
				return 0;
			}
			return r;
		}
		if (r < 0)
			return r; /* EOF: events read before it stay queued */
		got = true;
	}
}

/* ---- connection --------------------------------------------------------- */

int mq_qmp_fd(const struct mq_qmp *q)
{
	return q ? q->fd : -1;
}

struct mq_qmp *mq_qmp_free(struct mq_qmp *q)
{
	if (!q)
		return NULL;
	if (q->fd >= 0)
		close(q->fd);
	json_object *ev;
	while ((ev = mq_qmp_next_event(q)))
		json_object_put(ev);
	mq_strbuf_release(&q->in);
	free(q->path);
	free(q);
	return NULL;
}

static int connect_retry(const char *path, int64_t deadline, int timeout_ms, struct mq_error **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen = strlen(path);
	if (plen == 0 || plen >= sizeof(sa.sun_path))
		return mq_error_set(err, ENAMETOOLONG, "qmp socket path '%s' is too long (limit %zu bytes)", path,
				    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, plen + 1);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return mq_error_set(err, errno, "cannot create qmp socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (e == EINTR)
			continue;
		if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN)
			return mq_error_set(err, e, "cannot connect to qmp socket '%s': %s", path, strerror(e));
		int left = deadline_left(deadline);
		if (left == 0)
			return mq_error_set(err, ETIMEDOUT,
					    "cannot connect to qmp socket '%s': %s (gave up after %d ms; is qemu running?)",
					    path, strerror(e), timeout_ms);
		int nap = left < 0 || left > QMP_CONNECT_RETRY_MS ? QMP_CONNECT_RETRY_MS : left;
		poll(NULL, 0, nap);
	}
}

int mq_qmp_connect(const char *path, int timeout_ms, struct mq_qmp **out, struct mq_error **err)
{
	if (!path || !out)
		return mq_error_set(err, EINVAL, "qmp: no socket path");
	int64_t deadline = deadline_from(timeout_ms);
	int fd = connect_retry(path, deadline, timeout_ms, err);
	if (fd < 0)
		return fd;

	struct mq_qmp *q = xcalloc(1, sizeof(*q));
	q->fd = fd;
	q->path = xstrdup(path);
	mq_strbuf_init(&q->in);

	json_object *greeting = NULL;
	int r = read_obj(q, deadline, &greeting, err);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			mq_error_set(err, ETIMEDOUT, "qmp: timed out waiting for the greeting from '%s'", path);
		mq_qmp_free(q);
		return r;
	}
	bool ok = json_object_object_get_ex(greeting, "QMP", NULL);
	json_object_put(greeting);
	if (!ok) {
		mq_qmp_free(q);
		return mq_error_set(err, EPROTO, "qmp: invalid reply from '%s': expected a greeting with 'QMP'", path);
	}

	json_object *ret = NULL;
	r = execute_deadline(q, "qmp_capabilities", NULL, deadline, &ret, err);
	if (r < 0) {
		mq_qmp_free(q);
		return r;
	}
	ok = json_object_is_type(ret, json_type_object) && json_object_object_length(ret) == 0;
	json_object_put(ret);
	if (!ok) {
		mq_qmp_free(q);
		return mq_error_set(err, EPROTO, "qmp: invalid reply from '%s': qmp_capabilities did not return {}",
				    path);
	}
	*out = q;
	return 0;
}
