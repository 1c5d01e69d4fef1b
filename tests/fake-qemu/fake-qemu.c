/* fake-qemu - a small stand-in for qemu-system-* that speaks QMP and
 * misbehaves on command, for unit and integration tests.
 *
 * Accepts a QEMU-like argv and ignores what it does not know (an unknown
 * "-opt" takes the next token as its value unless that token starts with '-').
 * Understood:
 *   --version / -version        print "QEMU emulator version 7.2.0 (fake-qemu)", exit 0
 *   -chardev socket,id=ID,path=PATH[,server=on,wait=off]
 *                               listen on PATH (stale file unlinked first)
 *   -mon chardev=ID,mode=control
 *                               serve QMP on that socket (one client at a time,
 *                               any number of clients over time)
 *   -qmp unix:PATH[,server=on,wait=off]
 *                               same, without a -chardev
 *   -chardev file,id=ID,path=PATH + -serial chardev:ID  (or -serial file:PATH)
 *                               append "fake-qemu serial up\n" to PATH
 *   -chardev socket,...,logfile=PATH + -serial chardev:ID
 *                               the same to PATH (the console socket's log)
 *   -fake-mode MODE[,MODE...]   (else $FAKE_QEMU_MODE)
 *
 *   -S                          start in "prelaunch": query-status says so until
 *                               `cont`, which emits RESUME and makes it "running"
 *
 * QMP jobs: snapshot-save / snapshot-load / snapshot-delete with a "job-id"
 * reply {} and then walk JOB_STATUS_CHANGE created -> running -> waiting ->
 * pending -> concluded (a step every JOB_STEP_MS, progress 0..100 in
 * query-jobs); job-dismiss of a concluded job emits status "null".  Mode
 * job-fail goes running -> aborting -> concluded with an error instead;
 * mode job-step=MS sets the time between steps.  query-block lists every
 * -drive (id, node-name, file, format) with an image without snapshots.
 * Mode poweroff-on-cont: the guest powers off right after `cont` (RESUME,
 * then SHUTDOWN guest-shutdown, then exit 0).
 *
 * Mode flood: once running, every negotiated monitor gets RTC_CHANGE events
 * as fast as its reader takes them (a batch whenever less than 64 KiB waits).
 * Modes: normal, flood, ignore-powerdown, ignore-quit, ignore-sigterm, crash-on-start,
 * garbage (every command, qmp_capabilities included, is answered with
 * "this is not json"), die-after=MS, slow-start=MS, paused, plus for client tests:
 * silent (greeting + qmp_capabilities, then never answers), no-greeting
 * (accepts, never writes), oversized (answers every command after
 * qmp_capabilities with a 2 MiB line).
 *
 * Stays in the foreground, writes its pid nowhere, removes its sockets on a
 * clean exit (not on die-after, which simulates a crash).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHARDEVS 32
#define OUT_CAP (8 * 1024 * 1024)
#define POWERDOWN_DELAY_MS 50
#define FLUSH_MS 300
#define JOB_STEP_MS 30
#define MAX_JOBS 8

enum cd_kind { CD_SOCKET, CD_FILE, CD_OTHER };

struct chardev {
	char id[128];
	char path[4096];
	char logfile[4096]; /* socket chardevs: logfile=, written like a file chardev */
	enum cd_kind kind;
	bool qmp;     /* -mon ...,mode=control */
	bool serial;  /* -serial chardev:ID */
	int lfd;      /* listening socket */
	int cfd;      /* current client */
	bool negotiated;
	json_tokener *tok;
	char *out;
	size_t out_len;
};

static struct chardev cds[MAX_CHARDEVS];
static int ncds;

static struct {
	bool ignore_powerdown, ignore_quit, ignore_sigterm, crash_on_start, garbage, paused;
	bool silent, no_greeting, oversized, job_fail, poweroff_on_cont, flood;
	long die_after_ms;  /* <0: off */
	long slow_start_ms; /* <0: off */
	long job_step_ms;   /* time between job steps */
} mode = { .die_after_ms = -1, .slow_start_ms = -1, .job_step_ms = JOB_STEP_MS };

/* -drive ...,id=ID,node-name=NODE,file=FILE: answered by query-block */
#define MAX_DRIVES 16
static struct drive {
	char id[128], node[128], file[4096], format[16];
} drives[MAX_DRIVES];
static int ndrives;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static long parse_ms(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "fake-qemu: invalid %s value '%s'\n", what, s);
		exit(1);
	}
	return v;
}

static void parse_modes(const char *s)
{
	char *copy = strdup(s);
	if (!copy)
		abort();
	for (char *save = NULL, *m = strtok_r(copy, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
		if (!strcmp(m, "flood"))
			mode.flood = true;
		else if (!strcmp(m, "normal"))
			;
		else if (!strcmp(m, "ignore-powerdown"))
			mode.ignore_powerdown = true;
		else if (!strcmp(m, "ignore-quit"))
			mode.ignore_quit = true;
		else if (!strcmp(m, "ignore-sigterm"))
			mode.ignore_sigterm = true;
		else if (!strcmp(m, "crash-on-start"))
			mode.crash_on_start = true;
		else if (!strcmp(m, "garbage"))
			mode.garbage = true;
		else if (!strcmp(m, "paused"))
			mode.paused = true;
		else if (!strcmp(m, "silent"))
			mode.silent = true;
		else if (!strcmp(m, "no-greeting"))
			mode.no_greeting = true;
		else if (!strcmp(m, "oversized"))
			mode.oversized = true;
		else if (!strcmp(m, "poweroff-on-cont"))
			mode.poweroff_on_cont = true;
		else if (!strcmp(m, "job-fail"))
			mode.job_fail = true;
		else if (!strncmp(m, "die-after=", 10))
			mode.die_after_ms = parse_ms(m + 10, "die-after");
		else if (!strncmp(m, "slow-start=", 11))
			mode.slow_start_ms = parse_ms(m + 11, "slow-start");
		else if (!strncmp(m, "job-step=", 9))
			mode.job_step_ms = parse_ms(m + 9, "job-step");
		else
			fprintf(stderr, "fake-qemu: ignoring unknown mode '%s'\n", m);
	}
	free(copy);
}

/* ---- QEMU option strings: "kind,key=val,key=val" with ",," escaping ---- */

/* Copy the next comma-separated item of *sp into buf (unescaping ",,"). */
static bool next_item(const char **sp, char *buf, size_t cap)
{
	const char *s = *sp;
	if (!s)
		return false;
	size_t n = 0;
	for (;;) {
		if (*s == ',' && s[1] == ',') {
			if (n + 1 < cap)
				buf[n++] = ',';
			s += 2;
			continue;
		}
		if (*s == ',' || *s == '\0')
			break;
		if (n + 1 < cap)
			buf[n++] = *s;
		s++;
	}
	buf[n] = '\0';
	*sp = *s == ',' ? s + 1 : NULL;
	return true;
}

/* Value of key in an option string, or NULL.  The first item is also
 * reported as key "" when it has no '='. */
static bool opt_get(const char *opts, const char *key, char *val, size_t cap)
{
	char item[4096];
	const char *s = opts;
	bool first = true;
	while (next_item(&s, item, sizeof(item))) {
		char *eq = strchr(item, '=');
		if (!eq) {
			if (first && !*key) {
				snprintf(val, cap, "%s", item);
				return true;
			}
		} else {
			*eq = '\0';
			if (!strcmp(item, key)) {
				snprintf(val, cap, "%s", eq + 1);
				return true;
			}
		}
		first = false;
	}
	return false;
}

static struct chardev *find_cd(const char *id)
{
	for (int i = 0; i < ncds; i++)
		if (!strcmp(cds[i].id, id))
			return &cds[i];
	return NULL;
}

static struct chardev *new_cd(const char *id)
{
	struct chardev *c = id && *id ? find_cd(id) : NULL;
	if (c)
		return c;
	if (ncds == MAX_CHARDEVS) {
		fprintf(stderr, "fake-qemu: too many chardevs\n");
		exit(1);
	}
	c = &cds[ncds++];
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", id ? id : "");
	c->kind = CD_OTHER;
	c->lfd = c->cfd = -1;
	return c;
}

static void opt_chardev(const char *v)
{
	char kind[64] = "", id[128] = "", path[4096] = "";
	opt_get(v, "", kind, sizeof(kind));
	opt_get(v, "id", id, sizeof(id));
	opt_get(v, "path", path, sizeof(path));
	struct chardev *c = new_cd(id);
	if (!strcmp(kind, "socket") && *path)
		c->kind = CD_SOCKET;
	else if (!strcmp(kind, "file") && *path)
		c->kind = CD_FILE;
	snprintf(c->path, sizeof(c->path), "%s", path);
	opt_get(v, "logfile", c->logfile, sizeof(c->logfile));
}

static void opt_mon(const char *v)
{
	char id[128] = "", m[64] = "readline";
	if (!opt_get(v, "chardev", id, sizeof(id)))
		return;
	opt_get(v, "mode", m, sizeof(m));
	if (strcmp(m, "control"))
		return;
	new_cd(id)->qmp = true;
}

static void opt_qmp(const char *v)
{
	char first[4096] = "";
	opt_get(v, "", first, sizeof(first));
	if (strncmp(first, "unix:", 5))
		return;
	char id[64];
	snprintf(id, sizeof(id), "fake-qmp%d", ncds);
	struct chardev *c = new_cd(id);
	c->kind = CD_SOCKET;
	c->qmp = true;
	snprintf(c->path, sizeof(c->path), "%s", first + 5);
}

static void opt_serial(const char *v)
{
	if (!strncmp(v, "chardev:", 8)) {
		new_cd(v + 8)->serial = true;
	} else if (!strncmp(v, "file:", 5)) {
		char id[64];
		snprintf(id, sizeof(id), "fake-serial%d", ncds);
		struct chardev *c = new_cd(id);
		c->kind = CD_FILE;
		c->serial = true;
		snprintf(c->path, sizeof(c->path), "%s", v + 5);
	}
}

static void opt_device(const char *v)
{
	/* e.g. -device isa-serial,chardev=ID or virtconsole,chardev=ID */
	char drv[128] = "", id[128] = "";
	opt_get(v, "", drv, sizeof(drv));
	if (opt_get(v, "chardev", id, sizeof(id)) && (strstr(drv, "serial") || strstr(drv, "console")))
		new_cd(id)->serial = true;
}

static bool prelaunch; /* -S: CPUs not started yet */

static bool is_flag_option(const char *o)
{
	static const char *const flags[] = {
		"-enable-kvm", "-nographic", "-no-reboot", "-nodefaults", "-S", "-snapshot",
		"-no-shutdown", "-daemonize", "-no-user-config", "-no-hpet", "-no-acpi",
		"-full-screen", "-s", "-preconfig", "-only-migratable", "-no-fd-bootchk",
		"-win2k-hack", "-no-quit", "-nodefconfig",
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strcmp(o, flags[i]))
			return true;
	return false;
}

static void opt_drive(const char *v)
{
	if (ndrives >= MAX_DRIVES)
		return;
	struct drive *d = &drives[ndrives];
	if (!opt_get(v, "id", d->id, sizeof(d->id)))
		snprintf(d->id, sizeof(d->id), "drive%d", ndrives);
	if (!opt_get(v, "node-name", d->node, sizeof(d->node)))
		snprintf(d->node, sizeof(d->node), "#block%d", 100 + ndrives);
	if (!opt_get(v, "file", d->file, sizeof(d->file)))
		d->file[0] = '\0';
	if (!opt_get(v, "format", d->format, sizeof(d->format)))
		snprintf(d->format, sizeof(d->format), "raw");
	ndrives++;
}

static void parse_argv(int argc, char **argv, const char **fake_mode)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			continue; /* positional (legacy disk image): ignore */
		if (a[1] == '-')
			a++; /* QEMU accepts --opt as -opt */
		if (!strcmp(a, "-version")) {
			printf("QEMU emulator version 7.2.0 (fake-qemu)\n");
			fflush(stdout);
			exit(0);
		}
		if (!strcmp(a, "-S"))
			prelaunch = true;
		if (is_flag_option(a))
			continue;
		static const char *const valued[] = { "-chardev", "-mon", "-qmp", "-serial", "-device", "-fake-mode",
						      "-drive" };
		bool known = false;
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
			if (!strcmp(a, valued[k]))
				known = true;
		if (known) {
			if (i + 1 >= argc) {
				fprintf(stderr, "fake-qemu: %s: requires an argument\n", a);
				exit(1);
			}
			const char *v = argv[++i];
			if (!strcmp(a, "-chardev"))
				opt_chardev(v);
			else if (!strcmp(a, "-mon"))
				opt_mon(v);
			else if (!strcmp(a, "-qmp"))
				opt_qmp(v);
			else if (!strcmp(a, "-serial"))
				opt_serial(v);
			else if (!strcmp(a, "-device"))
				opt_device(v);
			else if (!strcmp(a, "-drive"))
				opt_drive(v);
			else
				*fake_mode = v;
			continue;
		}
		/* unknown option: takes a value unless the next token is an option */
		if (i + 1 < argc && argv[i + 1][0] != '-')
			i++;
	}
}

/* ---- output -------------------------------------------------------------- */

static void cd_send_raw(struct chardev *c, const char *s, size_t len)
{
	if (c->cfd < 0)
		return;
	if (c->out_len + len > OUT_CAP)
		return; /* client does not read: drop */
	char *n = realloc(c->out, c->out_len + len);
	if (!n)
		abort();
	c->out = n;
	memcpy(c->out + c->out_len, s, len);
	c->out_len += len;
}

static void cd_send_json(struct chardev *c, json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED);
	cd_send_raw(c, s, strlen(s));
	cd_send_raw(c, "\r\n", 2); /* QEMU ends QMP lines with CRLF */
}

static void cd_flush(struct chardev *c);

static void cd_drop_client(struct chardev *c)
{
	if (c->cfd >= 0)
		close(c->cfd);
	c->cfd = -1;
	c->negotiated = false;
	if (c->tok)
		json_tokener_free(c->tok);
	c->tok = NULL;
	free(c->out);
	c->out = NULL;
	c->out_len = 0;
}

static void cd_flush(struct chardev *c)
{
	while (c->cfd >= 0 && c->out_len) {
		ssize_t n = send(c->cfd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			cd_drop_client(c);
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
}

static json_object *timestamp(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	json_object *t = json_object_new_object();
	json_object_object_add(t, "seconds", json_object_new_int64(tv.tv_sec));
	json_object_object_add(t, "microseconds", json_object_new_int64(tv.tv_usec));
	return t;
}

static void emit_event(const char *name, json_object *data)
{
	for (int i = 0; i < ncds; i++) {
		struct chardev *c = &cds[i];
		if (!c->qmp || c->cfd < 0 || !c->negotiated)
			continue;
		json_object *ev = json_object_new_object();
		json_object_object_add(ev, "event", json_object_new_string(name));
		if (data)
			json_object_object_add(ev, "data", json_object_get(data));
		json_object_object_add(ev, "timestamp", timestamp());
		cd_send_json(c, ev);
		json_object_put(ev);
	}
	json_object_put(data);
}

static void emit_shutdown(bool guest, const char *reason)
{
	json_object *d = json_object_new_object();
	json_object_object_add(d, "guest", json_object_new_boolean(guest));
	json_object_object_add(d, "reason", json_object_new_string(reason));
	emit_event("SHUTDOWN", d);
}

/* ---- lifecycle ----------------------------------------------------------- */

static int64_t exit_at = -1;      /* flush and exit at this time */
static int exit_code;
static int64_t powerdown_at = -1; /* emit SHUTDOWN and exit at this time */
static bool running = true;

static void cleanup_sockets(void)
{
	for (int i = 0; i < ncds; i++) {
		if (cds[i].kind == CD_SOCKET && cds[i].lfd >= 0) {
			close(cds[i].lfd);
			unlink(cds[i].path);
		}
	}
}

static void request_exit(int code)
{
	if (exit_at < 0 || now_ms() < exit_at) {
		exit_at = now_ms();
		exit_code = code;
	}
}

static void do_exit(void)
{
	/* best-effort flush of pending output (events) to clients */
	int64_t until = now_ms() + FLUSH_MS;
	for (;;) {
		struct pollfd p[MAX_CHARDEVS];
		int n = 0;
		for (int i = 0; i < ncds; i++)
			if (cds[i].cfd >= 0 && cds[i].out_len)
				p[n++] = (struct pollfd){ .fd = cds[i].cfd, .events = POLLOUT };
		int64_t left = until - now_ms();
		if (n == 0 || left <= 0)
			break;
		poll(p, (nfds_t)n, (int)left);
		for (int i = 0; i < ncds; i++)
			cd_flush(&cds[i]);
	}
	cleanup_sockets();
	exit(exit_code);
}

/* ---- QMP ----------------------------------------------------------------- */

static void reply(struct chardev *c, json_object *id, json_object *ret)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "return", ret ? ret : json_object_new_object());
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	cd_send_json(c, o);
	json_object_put(o);
}

static void reply_error(struct chardev *c, json_object *id, const char *cls, const char *desc)
{
	json_object *o = json_object_new_object(), *e = json_object_new_object();
	json_object_object_add(e, "class", json_object_new_string(cls));
	json_object_object_add(e, "desc", json_object_new_string(desc));
	json_object_object_add(o, "error", e);
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	cd_send_json(c, o);
	json_object_put(o);
}

/* ---- jobs ---------------------------------------------------------------- */

struct job {
	bool used, failed;
	char id[128];
	char type[32];
	char status[16];
	int step;
	int64_t current;
	int64_t next_at; /* next step, -1 when none */
};

static struct job jobs[MAX_JOBS];

static struct job *find_job(const char *id)
{
	for (int i = 0; i < MAX_JOBS; i++)
		if (jobs[i].used && !strcmp(jobs[i].id, id))
			return &jobs[i];
	return NULL;
}

static bool new_job(const char *id, const char *cmd)
{
	for (int i = 0; i < MAX_JOBS; i++) {
		struct job *j = &jobs[i];
		if (j->used)
			continue;
		memset(j, 0, sizeof(*j));
		j->used = true;
		snprintf(j->id, sizeof(j->id), "%s", id);
		snprintf(j->type, sizeof(j->type), "%s", cmd);
		j->next_at = now_ms() + mode.job_step_ms;
		return true;
	}
	return false;
}

static void job_status(struct job *j, const char *st)
{
	snprintf(j->status, sizeof(j->status), "%s", st);
	json_object *d = json_object_new_object();
	json_object_object_add(d, "id", json_object_new_string(j->id));
	json_object_object_add(d, "status", json_object_new_string(st));
	emit_event("JOB_STATUS_CHANGE", d);
}

/* One step of every job that is due. */
static void jobs_tick(void)
{
	static const char *const ok_steps[] = { "running", "", "", "", "waiting", "pending", "concluded" };
	static const char *const fail_steps[] = { "running", "", "aborting", "concluded" };
	for (int i = 0; i < MAX_JOBS; i++) {
		struct job *j = &jobs[i];
		if (!j->used || j->next_at < 0 || now_ms() < j->next_at)
			continue;
		const char *const *steps = mode.job_fail ? fail_steps : ok_steps;
		int n = mode.job_fail ? 4 : 7;
		const char *st = steps[j->step++];
		if (*st)
			job_status(j, st);
		if (!mode.job_fail && j->current < 100 && j->step > 1)
			j->current += 25; /* "" steps make progress */
		if (mode.job_fail && !strcmp(st, "aborting"))
			j->failed = true;
		j->next_at = j->step < n ? now_ms() + mode.job_step_ms : -1;
	}
}

static int64_t jobs_next(void)
{
	int64_t next = -1;
	for (int i = 0; i < MAX_JOBS; i++)
		if (jobs[i].used && jobs[i].next_at >= 0 && (next < 0 || jobs[i].next_at < next))
			next = jobs[i].next_at;
	return next;
}

static void handle_command(struct chardev *c, json_object *req)
{
	json_object *id = NULL, *ex = NULL;
	json_object_object_get_ex(req, "id", &id);
	if (!json_object_is_type(req, json_type_object) || !json_object_object_get_ex(req, "execute", &ex) ||
	    !json_object_is_type(ex, json_type_string)) {
		reply_error(c, id, "GenericError", "QMP input must be a JSON object with an 'execute' member");
		return;
	}
	const char *cmd = json_object_get_string(ex);
	char desc[512];

	if (mode.garbage) {
		cd_send_raw(c, "this is not json\n", 17);
		return;
	}
	if (!c->negotiated) {
		if (strcmp(cmd, "qmp_capabilities")) {
			reply_error(c, id, "CommandNotFound",
				    "Expecting capabilities negotiation with 'qmp_capabilities'");
			return;
		}
		c->negotiated = true;
		reply(c, id, NULL);
		return;
	}
	if (mode.silent)
		return;
	if (mode.oversized) {
		size_t n = 2 * 1024 * 1024;
		char *big = malloc(n + 64);
		if (!big)
			abort();
		int k = snprintf(big, 64, "{\"return\": {\"pad\": \"");
		memset(big + k, 'x', n);
		memcpy(big + k + n, "\"}}\n", 4);
		cd_send_raw(c, big, (size_t)k + n + 4);
		free(big);
		return;
	}
	if (!strcmp(cmd, "qmp_capabilities")) {
		reply_error(c, id, "CommandNotFound", "Capabilities negotiation is already complete, command ignored");
	} else if (!strcmp(cmd, "query-status")) {
		json_object *r = json_object_new_object();
		json_object_object_add(r, "status",
				       json_object_new_string(running ? "running" : prelaunch ? "prelaunch" : "paused"));
		json_object_object_add(r, "singlestep", json_object_new_boolean(0));
		json_object_object_add(r, "running", json_object_new_boolean(running));
		reply(c, id, r);
	} else if (!strcmp(cmd, "system_powerdown")) {
		reply(c, id, NULL);
		if (!mode.ignore_powerdown) {
			emit_event("POWERDOWN", NULL);
			if (powerdown_at < 0)
				powerdown_at = now_ms() + POWERDOWN_DELAY_MS;
		}
	} else if (!strcmp(cmd, "quit")) {
		reply(c, id, NULL);
		if (!mode.ignore_quit) {
			emit_shutdown(false, "host-qmp-quit");
			request_exit(0);
		}
	} else if (!strcmp(cmd, "stop")) {
		reply(c, id, NULL);
		if (running) {
			running = false;
			emit_event("STOP", NULL);
		}
	} else if (!strcmp(cmd, "cont")) {
		reply(c, id, NULL);
		if (prelaunch && mode.paused) {
			prelaunch = false; /* stays paused */
		} else if (!running) {
			prelaunch = false;
			running = true;
			emit_event("RESUME", NULL);
			if (mode.poweroff_on_cont) {
				/* a guest that powers off at once */
				emit_shutdown(true, "guest-shutdown");
				request_exit(0);
			}
		}
	} else if (!strcmp(cmd, "snapshot-save") || !strcmp(cmd, "snapshot-load") || !strcmp(cmd, "snapshot-delete")) {
		json_object *args = NULL, *jid = NULL;
		json_object_object_get_ex(req, "arguments", &args);
		if (!args || !json_object_object_get_ex(args, "job-id", &jid) || !json_object_is_type(jid, json_type_string)) {
			reply_error(c, id, "GenericError", "Parameter 'job-id' is missing");
		} else if (find_job(json_object_get_string(jid))) {
			snprintf(desc, sizeof(desc), "Job ID '%s' already in use", json_object_get_string(jid));
			reply_error(c, id, "GenericError", desc);
		} else if (!new_job(json_object_get_string(jid), cmd)) {
			reply_error(c, id, "GenericError", "too many jobs");
		} else {
			reply(c, id, NULL);
			job_status(find_job(json_object_get_string(jid)), "created");
		}
	} else if (!strcmp(cmd, "query-block")) {
		json_object *list = json_object_new_array();
		for (int i = 0; i < ndrives; i++) {
			json_object *b = json_object_new_object(), *ins = json_object_new_object(),
				    *img = json_object_new_object();
			json_object_object_add(img, "filename", json_object_new_string(drives[i].file));
			json_object_object_add(img, "format", json_object_new_string(drives[i].format));
			json_object_object_add(ins, "node-name", json_object_new_string(drives[i].node));
			json_object_object_add(ins, "drv", json_object_new_string(drives[i].format));
			json_object_object_add(ins, "image", img);
			json_object_object_add(b, "device", json_object_new_string(drives[i].id));
			json_object_object_add(b, "inserted", ins);
			json_object_array_add(list, b);
		}
		reply(c, id, list);
	} else if (!strcmp(cmd, "query-jobs")) {
		json_object *list = json_object_new_array();
		for (int i = 0; i < MAX_JOBS; i++) {
			struct job *j = &jobs[i];
			if (!j->used)
				continue;
			json_object *o = json_object_new_object();
			json_object_object_add(o, "id", json_object_new_string(j->id));
			json_object_object_add(o, "type", json_object_new_string(j->type));
			json_object_object_add(o, "status", json_object_new_string(j->status));
			json_object_object_add(o, "current-progress", json_object_new_int64(j->current));
			json_object_object_add(o, "total-progress", json_object_new_int64(100));
			if (j->failed)
				json_object_object_add(o, "error", json_object_new_string("fake: snapshot failed: No space left on device"));
			json_object_array_add(list, o);
		}
		reply(c, id, list);
	} else if (!strcmp(cmd, "job-dismiss")) {
		json_object *args = NULL, *jid = NULL;
		json_object_object_get_ex(req, "arguments", &args);
		struct job *j = args && json_object_object_get_ex(args, "id", &jid) ? find_job(json_object_get_string(jid)) : NULL;
		if (!j) {
			reply_error(c, id, "GenericError", "Job not found");
		} else if (strcmp(j->status, "concluded")) {
			snprintf(desc, sizeof(desc), "Job '%s' in state '%s' cannot accept command verb 'dismiss'", j->id,
				 j->status);
			reply_error(c, id, "GenericError", desc);
		} else {
			reply(c, id, NULL);
			job_status(j, "null");
			j->used = false;
		}
	} else {
		snprintf(desc, sizeof(desc), "The command %s has not been found", cmd);
		reply_error(c, id, "CommandNotFound", desc);
	}
}

static void send_greeting(struct chardev *c)
{
	const char *g = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
			"\"package\": \"fake\"}, \"capabilities\": []}}\r\n";
	cd_send_raw(c, g, strlen(g));
}

static void client_input(struct chardev *c)
{
	char buf[65536];
	ssize_t n = recv(c->cfd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		cd_drop_client(c);
		return;
	}
	if (!c->qmp || mode.no_greeting)
		return; /* serial console socket, or mute: input discarded */
	size_t off = 0;
	while (off < (size_t)n && c->cfd >= 0) {
		/* skip whitespace between values */
		if (buf[off] == ' ' || buf[off] == '\n' || buf[off] == '\r' || buf[off] == '\t') {
			off++;
			continue;
		}
		if (!c->tok)
			c->tok = json_tokener_new_ex(64);
		json_object *o = json_tokener_parse_ex(c->tok, buf + off, (int)((size_t)n - off));
		enum json_tokener_error e = json_tokener_get_error(c->tok);
		if (e == json_tokener_continue)
			break; /* wait for more */
		if (e != json_tokener_success) {
			json_tokener_reset(c->tok);
			reply_error(c, NULL, "GenericError", "JSON parse error");
			break; /* drop the rest of this chunk */
		}
		off += json_tokener_get_parse_end(c->tok);
		json_tokener_reset(c->tok);
		handle_command(c, o);
		json_object_put(o);
	}
	cd_flush(c);
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "fake-qemu: socket path '%s' too long\n", path);
		exit(1);
	}
	strcpy(sa.sun_path, path);
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		fprintf(stderr, "fake-qemu: -chardev socket,path=%s: Failed to bind socket: %s\n", path,
			strerror(errno));
		exit(1);
	}
	return fd;
}

static void open_serial_files(void)
{
	for (int i = 0; i < ncds; i++) {
		struct chardev *c = &cds[i];
		const char *path = c->kind == CD_FILE ? c->path : c->logfile;
		if (!*path || (c->kind != CD_FILE && c->kind != CD_SOCKET))
			continue;
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "fake-qemu: -chardev file,path=%s: Could not open '%s': %s\n", c->path,
				c->path, strerror(errno));
			exit(1);
		}
		if (c->serial) {
			const char *msg = "fake-qemu serial up\n";
			ssize_t w = write(fd, msg, strlen(msg));
			(void)w;
		}
		close(fd);
	}
}

int main(int argc, char **argv)
{
	int64_t start = now_ms();
	const char *fake_mode = NULL;
	parse_argv(argc, argv, &fake_mode);
	if (!fake_mode)
		fake_mode = getenv("FAKE_QEMU_MODE");
	if (fake_mode)
		parse_modes(fake_mode);
	running = !mode.paused && !prelaunch;

	/* Signals: never trust inherited dispositions or mask. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t ss;
	sigemptyset(&ss);
	int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (mode.ignore_sigterm) {
			signal(sigs[i], SIG_IGN);
		} else {
			signal(sigs[i], SIG_DFL);
			sigaddset(&ss, sigs[i]);
		}
	}
	sigprocmask(SIG_SETMASK, &ss, NULL);
	int sfd = mode.ignore_sigterm ? -1 : signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);

	if (mode.crash_on_start) {
		fprintf(stderr, "fake-qemu: could not open disk image: Permission denied\n");
		return 1;
	}
	if (mode.slow_start_ms > 0)
		sleep_ms(mode.slow_start_ms);

	open_serial_files();
	for (int i = 0; i < ncds; i++)
		if (cds[i].kind == CD_SOCKET)
			cds[i].lfd = listen_on(cds[i].path);

	for (;;) {
		int64_t t = now_ms();
		if (mode.die_after_ms >= 0 && t >= start + mode.die_after_ms) {
			fprintf(stderr, "fake-qemu: simulated crash after %ld ms\n", mode.die_after_ms);
			_exit(3);
		}
		if (powerdown_at >= 0 && t >= powerdown_at) {
			powerdown_at = -1;
			emit_shutdown(true, "guest-shutdown");
			request_exit(0);
		}
		if (exit_at >= 0 && t >= exit_at)
			do_exit();
		jobs_tick();
		bool flooding = false;
		for (int i = 0; mode.flood && running && !prelaunch && i < ncds; i++) {
			struct chardev *c = &cds[i];
			if (!c->qmp || c->cfd < 0 || !c->negotiated || c->out_len >= 65536)
				continue;
			for (int k = 0; k < 64; k++) {
				json_object *ev = json_object_new_object();
				json_object *d = json_object_new_object();
				json_object_object_add(d, "offset", json_object_new_int64(k));
				json_object_object_add(ev, "event", json_object_new_string("RTC_CHANGE"));
				json_object_object_add(ev, "data", d);
				json_object_object_add(ev, "timestamp", timestamp());
				cd_send_json(c, ev);
				json_object_put(ev);
			}
			flooding = true;
		}
		for (int i = 0; i < ncds; i++)
			cd_flush(&cds[i]);

		struct pollfd p[2 * MAX_CHARDEVS + 1];
		struct chardev *owner[2 * MAX_CHARDEVS + 1];
		bool is_listen[2 * MAX_CHARDEVS + 1];
		nfds_t n = 0;
		if (sfd >= 0) {
			p[n] = (struct pollfd){ .fd = sfd, .events = POLLIN };
			owner[n] = NULL;
			is_listen[n++] = false;
		}
		for (int i = 0; i < ncds; i++) {
			struct chardev *c = &cds[i];
			if (c->kind != CD_SOCKET)
				continue;
			if (c->cfd >= 0) {
				p[n] = (struct pollfd){ .fd = c->cfd,
							.events = (short)(POLLIN | (c->out_len ? POLLOUT : 0)) };
				owner[n] = c;
				is_listen[n++] = false;
			} else {
				p[n] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
				owner[n] = c;
				is_listen[n++] = true;
			}
		}
		int64_t next = -1;
		if (mode.die_after_ms >= 0)
			next = start + mode.die_after_ms;
		if (powerdown_at >= 0 && (next < 0 || powerdown_at < next))
			next = powerdown_at;
		if (exit_at >= 0 && (next < 0 || exit_at < next))
			next = exit_at;
		int64_t jn = jobs_next();
		if (jn >= 0 && (next < 0 || jn < next))
			next = jn;
		int timeout = -1;
		if (next >= 0) {
			int64_t left = next - now_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		if (flooding)
			timeout = 0;
		int r = poll(p, n, timeout);
		if (r < 0 && errno != EINTR) {
			perror("fake-qemu: poll");
			return 1;
		}
		if (r <= 0)
			continue;
		for (nfds_t i = 0; i < n; i++) {
			if (!p[i].revents)
				continue;
			if (!owner[i]) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					fprintf(stderr, "fake-qemu: terminating on signal %u\n", si.ssi_signo);
					emit_shutdown(false, "host-signal");
					request_exit(0);
				}
				continue;
			}
			struct chardev *c = owner[i];
			if (is_listen[i]) {
				int cfd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (cfd < 0)
					continue;
				c->cfd = cfd;
				c->negotiated = false;
				if (c->qmp && !mode.no_greeting)
					send_greeting(c);
				else if (!c->qmp && c->serial)
					cd_send_raw(c, "fake-qemu serial up\r\n", 21);
				cd_flush(c);
				continue;
			}
			if (p[i].revents & POLLOUT)
				cd_flush(c);
			if (c->cfd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				client_input(c);
		}
	}
}
