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
#include "util/fdpass.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include "reconciler/qmp-int.h"


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
	mq_qmp__jobs_closed(q, st, msg);
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

int mq_qmp_send_fd(struct mq_qmp *q, const char *command, json_object *args, int fd, mq_qmp_reply_fn fn,
		   void *ud, uint64_t *id, struct mq_error **err)
{
	if (!q || !command || fd < 0)
		return mq_error_set(err, EINVAL, "qmp: no connection, command or fd");
	if (q->state != MQ_QMP_READY)
		return mq_error_set(err, ENOTCONN, "cannot send qmp command '%s' with a file descriptor: the qmp "
				    "connection to '%s' is not ready", command, q->path);
	if (q->out_off < q->out.len)
		return mq_error_set(err, EBUSY, "cannot send qmp command '%s' with a file descriptor: output "
				    "pending on '%s'", command, q->path);
	uint64_t i = ++q->next_id;
	char *line = serialize(command, args, i);
	/* The whole line in one message, the fd attached to its first byte:
	 * QEMU's monitor takes the fd before it parses the command. */
	int r = mq_fd_send(q->fd, line, strlen(line), fd);
	free(line);
	if (r < 0)
		return mq_error_set(err, -r, "cannot send qmp command '%s' with a file descriptor to '%s': %s",
				    command, q->path, strerror(-r));
	q->cmds = xreallocarray(q->cmds, q->ncmds + 1, sizeof(*q->cmds));
	struct cmd *c = &q->cmds[q->ncmds++];
	c->id = i;
	c->name = xstrdup(command);
	c->line = NULL; /* sent */
	c->fn = fn;
	c->ud = ud;
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
		mq_qmp__job_event(q, obj);
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

int mq_qmp__copy_why(struct mq_qmp *q, struct mq_error **err)
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
		return mq_qmp__copy_why(q, err);
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
			return mq_qmp__copy_why(q, err);
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
		return mq_qmp__copy_why(q, err);
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
	mq_qmp__jobs_closed(q, -ECONNRESET, q->why->msg);
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

