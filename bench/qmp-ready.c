/* qmp-ready: the bare-loop floor of bench/apply-cold.sh.
 *
 *   qmp-ready [-t TIMEOUT_MS] [-i RETRY_MS] SOCKET
 *       wait until the QMP socket SOCKET accepts a connection and QEMU reports
 *       "status": "running" (sending `cont` once to a QEMU started paused with -S,
 *       as maqet does).
 *   qmp-ready [-t TIMEOUT_MS] [-i RETRY_MS] -l LOG -- QEMU-ARGV...
 *       start QEMU first, the way maqet does: fork, setsid, stdin /dev/null,
 *       stdout and stderr appended to LOG, execvp(QEMU-ARGV); the socket is the
 *       path= of the `-chardev socket,id=mqmp,...` argument.  Prints the QEMU
 *       pid on stdout once it is running, and fails at once if QEMU exits.
 *   qmp-ready [-t TIMEOUT_MS] [-i RETRY_MS] -a ARGV-FILE...
 *       the bare loop: for each file in turn, start the QEMU argv it holds (one
 *       line, tokens joined by single spaces, as maqet logs it after
 *       "maqet: starting ") with the log ARGV-FILE.log and wait until it runs,
 *       then the next.  Prints one pid a line.  The QEMUs are left running.
 *
 * Waiting is exactly what maqet waits for: connect (retrying every RETRY_MS,
 * default 1, while the socket is missing or refuses), read the greeting, send
 * {"execute":"qmp_capabilities"}, then {"execute":"query-status"} until the
 * reply says "status": "running" (re-asked every RETRY_MS otherwise).
 * Exit status 0 when running, 1 on timeout (TIMEOUT_MS per VM, default 30000), QEMU
 * exit or protocol error, 2 on usage error.
 *
 * Built by the bench scripts:
 *   cc -O2 -o qmp-ready bench/qmp-ready.c $(pkg-config --cflags --libs json-c)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long deadline_ms;
static int retry_ms = 1;
static pid_t child = -1;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "qmp-ready: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	if (child > 0)
		kill(child, SIGKILL); /* do not leave a half-started QEMU behind */
	exit(1);
}

/* Fail at once when the QEMU we started has exited. */
static void check_child(void)
{
	int st;
	if (child > 0 && waitpid(child, &st, WNOHANG) == child) {
		child = -1; /* reaped: nothing left to kill */
		die("qemu exited before it was running (%s)", WIFEXITED(st) ? "exit" : "signal");
	}
}

static int left_ms(void)
{
	long long l = deadline_ms - now_ms();
	if (l <= 0)
		die("timed out%s", "");
	return l > 1000 ? 1000 : (int)l;
}

static int connect_retry(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		die("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN && e != EINTR)
			die("connect: %s", strerror(e));
		check_child();
		left_ms();
		poll(NULL, 0, retry_ms);
	}
}

/* Line-buffered reader: QMP sends one JSON object per line. */
static char buf[65536];
static size_t blen;

static json_object *read_obj(int fd)
{
	for (;;) {
		char *nl = memchr(buf, '\n', blen);
		if (nl) {
			*nl = '\0';
			json_object *o = json_tokener_parse(buf);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, blen - used);
			blen -= used;
			if (!o || !json_object_is_type(o, json_type_object))
				die("invalid reply from qemu%s", "");
			if (json_object_object_get_ex(o, "event", NULL)) {
				json_object_put(o); /* asynchronous event: not our answer */
				continue;
			}
			return o;
		}
		if (blen == sizeof(buf))
			die("reply too long%s", "");
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, left_ms());
		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (r <= 0)
			continue;
		ssize_t n = read(fd, buf + blen, sizeof(buf) - blen);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			die("read: %s", strerror(errno));
		if (n == 0)
			die("qemu closed the qmp connection%s", "");
		if (n > 0)
			blen += (size_t)n;
	}
}

static json_object *execute(int fd, const char *cmd)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "{\"execute\":\"%s\"}\n", cmd);
	if (write(fd, line, (size_t)n) != n)
		die("write: %s", strerror(errno));
	json_object *o = read_obj(fd), *ret = NULL;
	if (!json_object_object_get_ex(o, "return", &ret))
		die("%s failed", cmd);
	json_object_get(ret);
	json_object_put(o);
	return ret;
}

/* The path= of "socket,id=mqmp,path=P[,...]" (",," is an escaped comma). */
static char *mqmp_path(char **argv)
{
	for (; *argv; argv++) {
		if (strcmp(argv[0], "-chardev") || !argv[1] || strncmp(argv[1], "socket,id=mqmp,", 15))
			continue;
		const char *p = strstr(argv[1], ",path=");
		if (!p)
			break;
		p += 6;
		char *out = malloc(strlen(p) + 1), *o = out;
		while (*p && !(p[0] == ',' && p[1] != ',')) {
			if (p[0] == ',')
				p++;
			*o++ = *p++;
		}
		*o = '\0';
		return out;
	}
	die("no '-chardev socket,id=mqmp,path=...' in the qemu argv%s", "");
	return NULL;
}

static pid_t start_qemu(const char *log, char **argv)
{
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0)
		die("cannot open %s", logfd < 0 ? log : "/dev/null");
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		setsid();
		signal(SIGPIPE, SIG_DFL); /* ignored in this helper only */
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		/* maqet opens the serial log itself and hands it to QEMU as fd 3
		 * (its argv says /dev/fd/3): do the same with a file beside log */
		char serial[4096];
		snprintf(serial, sizeof(serial), "%s.serial", log);
		int sfd = open(serial, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (sfd < 0 || (sfd != 3 && dup2(sfd, 3) < 0))
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(logfd);
	close(nullfd);
	return pid;
}

/* Wait until the QMP socket at path says "running" (and, when we started
 * QEMU, fail at once if it exits first). */
static void wait_running(const char *path)
{
	blen = 0;
	int fd = connect_retry(path);
	json_object *greeting = read_obj(fd);
	if (!json_object_object_get_ex(greeting, "QMP", NULL))
		die("no QMP greeting on %s", path);
	json_object_put(greeting);
	json_object_put(execute(fd, "qmp_capabilities"));
	for (int cont_sent = 0;;) {
		json_object *ret = execute(fd, "query-status"), *st = NULL;
		const char *status = json_object_object_get_ex(ret, "status", &st) ? json_object_get_string(st) : "";
		int running = strcmp(status, "running") == 0;
		/* maqet starts QEMU paused (-S) and sends cont once its monitors
		 * are negotiated: the bare loop does the same minimum */
		int prelaunch = strcmp(status, "prelaunch") == 0;
		json_object_put(ret);
		if (running)
			break;
		if (prelaunch && !cont_sent) {
			json_object_put(execute(fd, "cont"));
			cont_sent = 1;
			continue;
		}
		check_child();
		left_ms();
		poll(NULL, 0, retry_ms);
	}
	close(fd);
}

/* Start QEMU with argv, log to log, wait until it runs; prints its pid. */
static void start_and_wait(const char *log, char **argv)
{
	char *path = mqmp_path(argv);
	unlink(path); /* stale socket of an earlier run, as maqet does */
	child = start_qemu(log, argv);
	wait_running(path);
	printf("%d\n", (int)child);
	child = -1; /* running: the caller owns it now */
	free(path);
}

/* One argv file: the argv joined by single spaces on one line (tokens
 * contain no spaces), as maqet logs it after "maqet: starting ". */
static char **read_argv(const char *file)
{
	FILE *f = fopen(file, "r");
	static char line[65536];
	if (!f || !fgets(line, sizeof(line), f))
		die("cannot read %s", file);
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	size_t n = 0;
	char **v = calloc(strlen(line) / 2 + 2, sizeof(*v));
	for (char *save = NULL, *t = strtok_r(line, " ", &save); t; t = strtok_r(NULL, " ", &save))
		v[n++] = t;
	if (!n)
		die("empty argv in %s", file);
	return v;
}

int main(int argc, char **argv)
{
	const char *log = NULL;
	int timeout = 30000, files = 0, c;
	while ((c = getopt(argc, argv, "+t:i:l:a")) != -1) {
		switch (c) {
		case 't':
			timeout = atoi(optarg);
			break;
		case 'i':
			retry_ms = atoi(optarg);
			break;
		case 'l':
			log = optarg;
			break;
		case 'a':
			files = 1;
			break;
		default:
			goto usage;
		}
	}
	if (optind >= argc || (log && files) || (!log && !files && optind + 1 != argc) || timeout <= 0 ||
	    retry_ms < 0)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (files) {
		for (int i = optind; i < argc; i++) {
			char **v = read_argv(argv[i]);
			char *lg = malloc(strlen(argv[i]) + 5);
			sprintf(lg, "%s.log", argv[i]);
			deadline_ms = now_ms() + timeout;
			start_and_wait(lg, v);
			free(lg);
			free(v);
		}
	} else if (log) {
		deadline_ms = now_ms() + timeout;
		start_and_wait(log, &argv[optind]);
	} else {
		deadline_ms = now_ms() + timeout;
		wait_running(argv[optind]);
	}
	return 0;
usage:
	fprintf(stderr, "usage: qmp-ready [-t TIMEOUT_MS] [-i RETRY_MS] SOCKET\n"
			"       qmp-ready [-t TIMEOUT_MS] [-i RETRY_MS] -l LOG -- QEMU-ARGV...\n"
			"       qmp-ready [-t TIMEOUT_MS] [-i RETRY_MS] -a ARGV-FILE...\n");
	return 2;
}
