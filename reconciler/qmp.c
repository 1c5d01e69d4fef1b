/* qmp.c - asynchronous QMP client over a unix socket (see qmp.h). */
#include "reconciler/qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
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

static void job_event(struct mq_qmp *q, json_object *ev);
static void jobs_closed(struct mq_qmp *q, int code, const char *msg);

const char *mq_qmp_state_str(enum mq_qmp_state s)
{
	switch (s) {
	case MQ_QMP_CONNECTING:
		return "connecting";
	case MQ_QMP_GREETING:
		return "greeting";
	case MQ_QMP_NEGOTIATING:
		return "negotiating";
	case MQ_QMP_READY:
		return "ready";
	case MQ_QMP_CLOSED:
	default:
		return "closed";
	}
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

/* ---- commands table ------------------------------------------------------- */

static long find_cmd(struct mq_qmp *q, uint64_t id)
{
	for (size_t i = 0; i < q->ncmds; i++)
		if (q->cmds[i].id == id)
			return (long)i;
	return -1;
}

/* Remove command i from the table, returning it (caller frees name/line). */
static struct cmd take_cmd(struct mq_qmp *q, size_t i)
{
	struct cmd c = q->cmds[i];
	memmove(&q->cmds[i], &q->cmds[i + 1], (q->ncmds - i - 1) * sizeof(*q->cmds));
	q->ncmds--;
	return c;
}

static void finish_cmd(struct mq_qmp *q, struct cmd *c, const struct mq_qmp_reply *r)
{
	if (c->fn)
		c->fn(q, r, c->ud);
	free(c->name);
	free(c->line);
}

/* Fail every command in flight with status (negative) and msg. */
static void fail_all(struct mq_qmp *q, int status, const char *msg)
{
	while (q->ncmds) {
		struct cmd c = take_cmd(q, 0);
		char *m = xasprintf("qmp command '%s' failed: %s", c.name, msg);
		struct mq_qmp_reply r = { .status = status, .message = m };
		finish_cmd(q, &c, &r);
		free(m);
	}
}

/* Queue the serialized lines of held commands for sending (once READY). */
static void release_held(struct mq_qmp *q)
{
	for (size_t i = 0; i < q->ncmds; i++) {
		if (q->cmds[i].line) {
			mq_strbuf_adds(&q->out, q->cmds[i].line);
			free(q->cmds[i].line);
			q->cmds[i].line = NULL;
		}
	}
}

/* ---- closing ---------------------------------------------------------------- */

/* Close the connection with reason (code, message); runs the callbacks.
 * Returns -code. */
static int close_with(struct mq_qmp *q, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int close_with(struct mq_qmp *q, int code, const char *fmt, ...)
{
	if (q->state == MQ_QMP_CLOSED)
		return q->why ? -q->why->code : -ECONNRESET;
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	q->state = MQ_QMP_CLOSED;
	mq_error_set(&q->why, code, "%s", msg);
	mq_strbuf_reset(&q->out);
	q->out_off = 0;
	int st = code == EPROTO ? -EPROTO : -ECONNRESET;
	fail_all(q, st, msg);
	jobs_closed(q, st, msg);
	if (q->cb.on_state)
		q->cb.on_state(q, MQ_QMP_CLOSED, q->why, q->cb.ud);
	free(msg);
	return -code;
}

static int closed_eof(struct mq_qmp *q)
{
	return close_with(q, ECONNRESET, "qmp connection closed by '%s'", q->path);
}

/* ---- sending -------------------------------------------------------------- */

static char *serialize(const char *command, json_object *args, uint64_t id)
{
	json_object *req = json_object_new_object();
	json_object_object_add(req, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(req, "arguments", json_object_get(args));
	char ids[32];
	snprintf(ids, sizeof(ids), "mq-%" PRIu64, id);
	json_object_object_add(req, "id", json_object_new_string(ids));
	char *line = xasprintf("%s\n", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	return line;
}

static uint64_t add_cmd(struct mq_qmp *q, const char *command, json_object *args, mq_qmp_reply_fn fn, void *ud)
{
	uint64_t id = ++q->next_id;
	q->cmds = xreallocarray(q->cmds, q->ncmds + 1, sizeof(*q->cmds));
	struct cmd *c = &q->cmds[q->ncmds++];
	c->id = id;
	c->name = xstrdup(command);
	c->line = serialize(command, args, id);
	c->fn = fn;
	c->ud = ud;
	if (q->state == MQ_QMP_READY)
		release_held(q);
	return id;
}

int mq_qmp_send(struct mq_qmp *q, const char *command, json_object *args, mq_qmp_reply_fn fn, void *ud,
		uint64_t *id, struct mq_error **err)
{
	if (!q || !command)
		return mq_error_set(err, EINVAL, "qmp: no connection or command");
	if (q->state == MQ_QMP_CLOSED)
		return mq_error_set(err, ECONNRESET, "qmp command '%s' failed: qmp connection to '%s' is closed",
				    command, q->path);
	uint64_t i = add_cmd(q, command, args, fn, ud);
	if (id)
		*id = i;
	return 0;
}

void mq_qmp_cancel(struct mq_qmp *q, uint64_t id)
{
	if (!q)
		return;
	long i = find_cmd(q, id);
	if (i >= 0)
		q->cmds[i].fn = NULL;
}

size_t mq_qmp_in_flight(const struct mq_qmp *q)
{
	return q ? q->ncmds : 0;
}

/* Write what is pending.  0, or -errno after closing. */
static int flush_out(struct mq_qmp *q)
{
	while (q->state != MQ_QMP_CLOSED && q->out_off < q->out.len) {
		ssize_t n = send(q->fd, q->out.buf + q->out_off, q->out.len - q->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			q->out_off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == EPIPE || errno == ECONNRESET)
			return closed_eof(q);
		int e = errno;
		return close_with(q, e, "qmp: cannot write to '%s': %s", q->path, strerror(e));
	}
	if (q->out_off == q->out.len) {
		mq_strbuf_reset(&q->out);
		q->out_off = 0;
	}
	return 0;
}

/* ---- receiving -------------------------------------------------------------- */

static void caps_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	(void)ud;
	if (r->status == -EREMOTEIO) {
		close_with(q, EPROTO, "qmp: '%s' refused qmp_capabilities: %s", q->path, r->err_desc);
		return;
	}
	if (r->status < 0)
		return; /* closing already */
	if (!json_object_is_type(r->ret, json_type_object) || json_object_object_length(r->ret) != 0) {
		close_with(q, EPROTO, "qmp: invalid reply from '%s': qmp_capabilities did not return {}", q->path);
		return;
	}
	q->state = MQ_QMP_READY;
	release_held(q);
	if (q->cb.on_state)
		q->cb.on_state(q, MQ_QMP_READY, NULL, q->cb.ud);
}

static int handle_reply(struct mq_qmp *q, json_object *obj)
{
	json_object *val = NULL, *e = NULL, *rid = NULL;
	bool has_ret = json_object_object_get_ex(obj, "return", &val);
	bool has_err = json_object_object_get_ex(obj, "error", &e);
	if (!has_ret && !has_err)
		return close_with(q, EPROTO, "qmp: invalid reply from '%s': neither 'return', 'error' nor 'event'",
				  q->path);
	long i = -1;
	if (json_object_object_get_ex(obj, "id", &rid)) {
		const char *s = json_object_is_type(rid, json_type_string) ? json_object_get_string(rid) : NULL;
		uint64_t id = 0;
		if (s && sscanf(s, "mq-%" SCNu64, &id) == 1)
			i = find_cmd(q, id);
		if (i < 0)
			return 0; /* not one of ours (or of a former client of the fd): drop */
	} else {
		/* QEMU omits the id when it could not parse a request at all; only
		 * unambiguous with a single command in flight. */
		size_t sent = 0;
		for (size_t k = 0; k < q->ncmds; k++)
			if (!q->cmds[k].line) {
				sent++;
				i = (long)k;
			}
		if (sent != 1)
			return close_with(q, EPROTO, "qmp: invalid reply from '%s': reply without an id", q->path);
	}
	struct cmd c = take_cmd(q, (size_t)i);
	struct mq_qmp_reply r = { 0 };
	char *msg = NULL;
	if (has_err) {
		json_object *desc = NULL, *cls = NULL;
		const char *d = "unknown error", *k = "GenericError";
		if (json_object_is_type(e, json_type_object)) {
			if (json_object_object_get_ex(e, "desc", &desc) && json_object_is_type(desc, json_type_string))
				d = json_object_get_string(desc);
			if (json_object_object_get_ex(e, "class", &cls) && json_object_is_type(cls, json_type_string))
				k = json_object_get_string(cls);
		}
		msg = xasprintf("qmp command '%s' failed: %s", c.name, d);
		r.status = -EREMOTEIO;
		r.err_class = k;
		r.err_desc = d;
		r.message = msg;
	} else {
		r.ret = val;
	}
	finish_cmd(q, &c, &r);
	free(msg);
	return 0;
}

/* Handle one parsed object (consumed). */
static int handle_obj(struct mq_qmp *q, json_object *obj)
{
	int r = 0;
	if (q->state == MQ_QMP_GREETING) {
		if (!json_object_object_get_ex(obj, "QMP", NULL)) {
			json_object_put(obj);
			return close_with(q, EPROTO, "qmp: invalid reply from '%s': expected a greeting with 'QMP'",
					  q->path);
		}
		json_object_put(obj);
		q->state = MQ_QMP_NEGOTIATING;
		/* negotiation goes out before anything held */
		uint64_t id = ++q->next_id;
		q->cmds = xreallocarray(q->cmds, q->ncmds + 1, sizeof(*q->cmds));
		memmove(&q->cmds[1], &q->cmds[0], q->ncmds * sizeof(*q->cmds));
		q->ncmds++;
		q->cmds[0] = (struct cmd){ .id = id, .name = xstrdup("qmp_capabilities"), .fn = caps_reply };
		char *line = serialize("qmp_capabilities", NULL, id);
		mq_strbuf_adds(&q->out, line);
		free(line);
		return 0;
	}
	if (json_object_object_get_ex(obj, "event", NULL)) {
		job_event(q, obj);
		if (q->cb.on_event) {
			q->cb.on_event(q, obj, q->cb.ud);
			json_object_put(obj);
		} else {
			queue_event(q, obj);
		}
		return 0;
	}
	r = handle_reply(q, obj);
	json_object_put(obj);
	return r;
}

static void consume(struct mq_qmp *q, size_t n)
{
	memmove(q->in.buf, q->in.buf + n, q->in.len - n);
	mq_strbuf_setlen(&q->in, q->in.len - n);
	q->scanned = 0;
}

/* Handle every complete line in the input buffer. */
static int process_lines(struct mq_qmp *q)
{
	while (q->state != MQ_QMP_CLOSED) {
		char *nl = memchr(q->in.buf + q->scanned, '\n', q->in.len - q->scanned);
		if (!nl) {
			q->scanned = q->in.len;
			if (q->in.len > MQ_QMP_MAX_LINE)
				return close_with(q, EPROTO,
						  "qmp: invalid reply from '%s': qmp reply too long (limit %d bytes)",
						  q->path, MQ_QMP_MAX_LINE);
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
		json_object *obj = NULL;
		struct mq_error *perr = NULL;
		int r = mq_qmp_parse_line(q->in.buf, len, &obj, &perr);
		consume(q, len + 1);
		if (r < 0) {
			r = close_with(q, EPROTO, "qmp: invalid reply from '%s': %s", q->path, perr->msg);
			mq_error_free(perr);
			return r;
		}
		r = handle_obj(q, obj);
		if (r < 0)
			return r;
	}
	return q->why ? -q->why->code : -ECONNRESET;
}

/* Read what the socket has.  Until READY, read exactly up to the end of each
 * line (MSG_PEEK first), so that nothing after the qmp_capabilities reply is
 * taken out of the socket: a negotiated fd can be handed over intact. */
/* Reads per mq_qmp_dispatch(): a QEMU flooding its monitor gets at most
 * QMP_READS_PER_DISPATCH * QMP_READ_CHUNK bytes handled per loop turn; the
 * rest stays in the socket (poll is level-triggered), so the loop gets to
 * other VMs' sources, exits and signals in between. */
#define QMP_READS_PER_DISPATCH 1

static int read_input(struct mq_qmp *q)
{
	for (int reads = 0; q->state != MQ_QMP_CLOSED; reads++) {
		if (reads == QMP_READS_PER_DISPATCH)
			return 0;
		bool exact = q->state != MQ_QMP_READY;
		mq_strbuf_grow(&q->in, QMP_READ_CHUNK);
		size_t want = QMP_READ_CHUNK;
		if (exact) {
			ssize_t p = recv(q->fd, q->in.buf + q->in.len, QMP_READ_CHUNK, MSG_DONTWAIT | MSG_PEEK);
			if (p > 0) {
				char *nl = memchr(q->in.buf + q->in.len, '\n', (size_t)p);
				want = nl ? (size_t)(nl - (q->in.buf + q->in.len)) + 1 : (size_t)p;
			}
		}
		ssize_t n = recv(q->fd, q->in.buf + q->in.len, want, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == ECONNRESET)
				return closed_eof(q);
			int e = errno;
			return close_with(q, e, "qmp: cannot read from '%s': %s", q->path, strerror(e));
		}
		if (n == 0) {
			int r = process_lines(q); /* a last line without '\n' is incomplete: dropped */
			if (r < 0)
				return r;
			return closed_eof(q);
		}
		q->got_input = true;
		q->in.len += (size_t)n; /* mq_strbuf_setlen() only shrinks */
		q->in.buf[q->in.len] = '\0';
		int r = process_lines(q);
		if (r < 0)
			return r;
		/* replies may have queued output (qmp_capabilities) */
		r = flush_out(q);
		if (r < 0)
			return r;
		if (exact && q->state == MQ_QMP_READY)
			return 0; /* just negotiated: leave the rest in the socket */
	}
	return q->why ? -q->why->code : -ECONNRESET;
}

/* ---- the loop API ---------------------------------------------------------- */

int mq_qmp_fd(const struct mq_qmp *q)
{
	return q && q->state != MQ_QMP_CLOSED ? q->fd : -1;
}

short mq_qmp_poll_events(const struct mq_qmp *q)
{
	if (!q || q->state == MQ_QMP_CLOSED)
		return 0;
	if (q->state == MQ_QMP_CONNECTING)
		return POLLOUT;
	short ev = POLLIN;
	bool held = false;
	if (q->state == MQ_QMP_READY)
		for (size_t i = 0; i < q->ncmds && !held; i++)
			held = q->cmds[i].line != NULL;
	if (q->out_off < q->out.len || held)
		ev |= POLLOUT;
	return ev;
}

static int copy_why(struct mq_qmp *q, struct mq_error **err)
{
	if (q->why)
		return mq_error_set(err, q->why->code, "%s", q->why->msg);
	return mq_error_set(err, ECONNRESET, "qmp connection to '%s' is closed", q->path);
}

int mq_qmp_dispatch(struct mq_qmp *q, short revents, struct mq_error **err)
{
	if (!q)
		return mq_error_set(err, EINVAL, "qmp: no connection");
	if (q->state == MQ_QMP_CLOSED)
		return copy_why(q, err);
	int r = 0;
	if (q->state == MQ_QMP_CONNECTING) {
		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return 0;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(q->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr) {
			close_with(q, soerr, "cannot connect to qmp socket '%s': %s", q->path, strerror(soerr));
			return copy_why(q, err);
		}
		q->state = MQ_QMP_GREETING;
		revents |= POLLIN; /* the greeting may be there already */
	}
	if (q->state == MQ_QMP_READY)
		release_held(q);
	if (q->state == MQ_QMP_READY || q->out.len)
		r = flush_out(q);
	if (r == 0 && (revents & (POLLIN | POLLHUP | POLLERR)))
		r = read_input(q);
	if (r == 0)
		r = flush_out(q);
	if (r < 0)
		return copy_why(q, err);
	return 0;
}

/* ---- connection --------------------------------------------------------- */

static struct mq_qmp *qmp_new(int fd, const char *path, const struct mq_qmp_callbacks *cb, enum mq_qmp_state st)
{
	struct mq_qmp *q = xcalloc(1, sizeof(*q));
	q->fd = fd;
	q->path = xstrdup(path ? path : "qmp");
	q->state = st;
	if (cb)
		q->cb = *cb;
	mq_strbuf_init(&q->in);
	mq_strbuf_init(&q->out);
	return q;
}

int mq_qmp_open(const char *path, const struct mq_qmp_callbacks *cb, struct mq_qmp **out, struct mq_error **err)
{
	if (!path || !out)
		return mq_error_set(err, EINVAL, "qmp: no socket path");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen = strlen(path);
	if (plen == 0 || plen >= sizeof(sa.sun_path))
		return mq_error_set(err, ENAMETOOLONG, "qmp socket path '%s' is too long (limit %zu bytes)", path,
				    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, plen + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return mq_error_set(err, errno, "cannot create qmp socket: %s", strerror(errno));
	enum mq_qmp_state st = MQ_QMP_GREETING;
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == EINPROGRESS) {
			st = MQ_QMP_CONNECTING;
			break;
		}
		close(fd);
		return mq_error_set(err, e, "cannot connect to qmp socket '%s': %s", path, strerror(e));
	}
	*out = qmp_new(fd, path, cb, st);
	return 0;
}

struct mq_qmp *mq_qmp_from_fd(int fd, const char *name, const struct mq_qmp_callbacks *cb)
{
	if (fd < 0)
		return NULL;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int fdfl = fcntl(fd, F_GETFD);
	if (fdfl >= 0 && !(fdfl & FD_CLOEXEC))
		(void)fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
	return qmp_new(fd, name, cb, MQ_QMP_READY);
}

int mq_qmp_detach_fd(struct mq_qmp *q)
{
	if (!q || q->state == MQ_QMP_CLOSED)
		return -1;
	if (q->in.len)
		return -EBUSY; /* bytes were read past negotiation: they would be lost */
	int fd = q->fd;
	q->fd = -1;
	q->state = MQ_QMP_CLOSED;
	mq_error_set(&q->why, ECONNRESET, "qmp connection to '%s' was handed over", q->path);
	fail_all(q, -ECONNRESET, q->why->msg);
	jobs_closed(q, -ECONNRESET, q->why->msg);
	return fd;
}

enum mq_qmp_state mq_qmp_state(const struct mq_qmp *q)
{
	return q ? q->state : MQ_QMP_CLOSED;
}

const char *mq_qmp_path(const struct mq_qmp *q)
{
	return q ? q->path : NULL;
}

const struct mq_error *mq_qmp_close_reason(const struct mq_qmp *q)
{
	return q && q->state == MQ_QMP_CLOSED ? q->why : NULL;
}

struct mq_qmp *mq_qmp_free(struct mq_qmp *q)
{
	if (!q)
		return NULL;
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	q->state = MQ_QMP_CLOSED;
	fail_all(q, -ECANCELED, "qmp client freed");
	for (size_t i = 0; i < q->njobs; i++)
		q->jobs[i]->q = NULL;
	free(q->jobs);
	json_object *ev;
	while ((ev = mq_qmp_next_event(q)))
		json_object_put(ev);
	mq_strbuf_release(&q->in);
	mq_strbuf_release(&q->out);
	mq_error_free(q->why);
	free(q->cmds);
	free(q->path);
	free(q);
	return NULL;
}

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
			return copy_why(q, err);
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
		r = copy_why(q, err);
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
		return copy_why(q, err);
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
		return copy_why(q, err);
	q->got_input = false;
	struct mq_error *e = NULL;
	int r = mq_qmp_wait(q, got_input, NULL, -1, deadline_from(timeout_ms), &e);
	if (r == 0 && q->state != MQ_QMP_CLOSED) {
		/* take whatever else is immediately available */
		(void)mq_qmp_dispatch(q, POLLIN, NULL);
	}
	mq_error_free(e);
	if (q->state == MQ_QMP_CLOSED)
		return copy_why(q, err);
	if (r == -ETIMEDOUT || !q->got_input)
		return mq_error_set(err, ETIMEDOUT, "qmp: nothing received from '%s' within %d ms", q->path,
				    timeout_ms);
	return r < 0 ? r : 0;
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

static void jobs_closed(struct mq_qmp *q, int code, const char *msg)
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

static void job_event(struct mq_qmp *q, json_object *ev)
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
			break; /* closed: j is done through jobs_closed() */
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
