/* test-qmp.c - QMP client against the fake QEMU (normal and faulty modes),
 * the line parser, and one run against real qemu-system-x86_64. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "reconciler/qmp.h"
#include "util/fileio.h"
#include "util/strbuf.h"
#include "util/strv.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

static const char *fake_path;

struct vm {
	char dir[64];
	char sock[128];
	pid_t pid;
};

static void vm_dir(struct vm *vm)
{
	snprintf(vm->dir, sizeof(vm->dir), "/tmp/mq-qmp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(vm->dir));
	snprintf(vm->sock, sizeof(vm->sock), "%s/q.sock", vm->dir);
}

static void spawn(struct vm *vm, char *const argv[])
{
	vm->pid = fork();
	ck_assert_int_ge(vm->pid, 0);
	if (vm->pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(devnull, 1);
		execv(argv[0], argv);
		_exit(127);
	}
}

/* Start the fake QEMU with one QMP socket and the given -fake-mode. */
static void fake_start(struct vm *vm, const char *mode)
{
	vm_dir(vm);
	char chardev[256];
	snprintf(chardev, sizeof(chardev), "socket,id=mon0,path=%s,server=on,wait=off", vm->sock);
	char *argv[] = { (char *)fake_path, "-nodefaults", "-name", "test", "-m", "64", "-chardev", chardev,
			 "-mon", "chardev=mon0,mode=control", "-enable-kvm", "-fake-mode", (char *)mode, NULL };
	spawn(vm, argv);
}

/* Wait for vm->pid to exit within timeout_ms; returns the wait status. */
static int vm_wait(struct vm *vm, int timeout_ms)
{
	int fd = mq_pidfd_open(vm->pid);
	ck_assert_int_ge(fd, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ck_assert_msg(poll(&p, 1, timeout_ms) == 1, "process %d did not exit within %d ms", (int)vm->pid,
		      timeout_ms);
	close(fd);
	int st = 0;
	ck_assert_int_eq(waitpid(vm->pid, &st, 0), vm->pid);
	vm->pid = -1;
	return st;
}

static void vm_stop(struct vm *vm)
{
	if (vm->pid > 0) {
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, NULL, 0);
		vm->pid = -1;
	}
	unlink(vm->sock);
	rmdir(vm->dir);
}

/* Pump until an event named `name` is queued (returned) or the deadline. */
static json_object *wait_event(struct mq_qmp *q, const char *name, int timeout_ms)
{
	int64_t deadline = mq_mono_ms() + timeout_ms;
	for (;;) {
		json_object *ev;
		while ((ev = mq_qmp_next_event(q))) {
			json_object *n;
			if (json_object_object_get_ex(ev, "event", &n) && !strcmp(json_object_get_string(n), name))
				return ev;
			json_object_put(ev);
		}
		int64_t left = deadline - mq_mono_ms();
		if (left <= 0)
			return NULL;
		struct mq_error *err = NULL;
		int r = mq_qmp_pump(q, (int)left, &err);
		mq_error_free(err);
		if (r < 0 && r != -ETIMEDOUT && !(ev = mq_qmp_next_event(q)))
			return NULL;
		if (r < 0 && r != -ETIMEDOUT) {
			/* EOF after queued events: look at what is left */
			json_object *n;
			do {
				if (json_object_object_get_ex(ev, "event", &n) && !strcmp(json_object_get_string(n), name))
					return ev;
				json_object_put(ev);
			} while ((ev = mq_qmp_next_event(q)));
			return NULL;
		}
	}
}

static const char *shutdown_reason(json_object *ev, bool *guest)
{
	json_object *d, *r, *g;
	ck_assert(json_object_object_get_ex(ev, "data", &d));
	ck_assert(json_object_object_get_ex(d, "reason", &r));
	ck_assert(json_object_object_get_ex(d, "guest", &g));
	*guest = json_object_get_boolean(g);
	ck_assert(json_object_object_get_ex(ev, "timestamp", NULL));
	return json_object_get_string(r);
}

/* ---- normal mode ---------------------------------------------------------- */

START_TEST(fake_normal_status_and_errors)
{
	struct vm vm;
	fake_start(&vm, "normal");
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	int r = mq_qmp_connect(vm.sock, 5000, &q, &err);
	ck_assert_msg(r == 0, "connect: %s", err ? err->msg : "?");
	ck_assert_int_ge(mq_qmp_fd(q), 0);
	ck_assert(fcntl(mq_qmp_fd(q), F_GETFD) & FD_CLOEXEC);

	char *status = NULL;
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, &err), 0);
	ck_assert_str_eq(status, "running");
	free(status);

	json_object *ret = NULL;
	ck_assert_int_eq(mq_qmp_execute(q, "query-status", NULL, 2000, &ret, &err), 0);
	json_object *running;
	ck_assert(json_object_object_get_ex(ret, "running", &running));
	ck_assert(json_object_get_boolean(running));
	json_object_put(ret);

	ret = NULL;
	r = mq_qmp_execute(q, "no-such-command", NULL, 2000, &ret, &err);
	ck_assert_int_eq(r, -EREMOTEIO);
	ck_assert_ptr_null(ret);
	ck_assert_str_eq(err->msg, "qmp command 'no-such-command' failed: The command no-such-command has not been found");
	err = mq_error_free(err);

	/* the connection is still usable after an error reply */
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, NULL), 0);
	ck_assert_str_eq(status, "running");
	free(status);
	ck_assert_ptr_null(mq_qmp_next_event(q));
	ck_assert_int_eq(mq_qmp_pump(q, 100, NULL), -ETIMEDOUT);

	q = mq_qmp_free(q);
	ck_assert_ptr_null(mq_qmp_free(NULL));

	/* a second client after the first one left */
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 2000, &q, &err), 0);
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, NULL), 0);
	ck_assert_str_eq(status, "running");
	free(status);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_events_queued_while_waiting)
{
	struct vm vm;
	fake_start(&vm, "normal");
	struct mq_qmp *q = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, NULL), 0);
	/* stop replies, then emits STOP; the next command skips and queues it */
	ck_assert_int_eq(mq_qmp_execute(q, "stop", NULL, 2000, NULL, NULL), 0);
	char *status = NULL;
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, NULL), 0);
	ck_assert_str_eq(status, "paused");
	free(status);
	json_object *ev = mq_qmp_next_event(q);
	ck_assert_ptr_nonnull(ev);
	json_object *n;
	ck_assert(json_object_object_get_ex(ev, "event", &n));
	ck_assert_str_eq(json_object_get_string(n), "STOP");
	json_object_put(ev);
	ck_assert_ptr_null(mq_qmp_next_event(q));

	/* overflow: 300 events, the queue keeps the newest 256 */
	for (int i = 0; i < 300; i++)
		ck_assert_int_eq(mq_qmp_execute(q, i % 2 ? "stop" : "cont", NULL, 2000, NULL, NULL), 0);
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, NULL), 0);
	ck_assert_str_eq(status, "paused");
	free(status);
	int count = 0;
	while ((ev = mq_qmp_next_event(q))) {
		ck_assert(json_object_object_get_ex(ev, "event", &n));
		/* events 44..299; even ones come from "cont" */
		ck_assert_str_eq(json_object_get_string(n), (44 + count) % 2 ? "STOP" : "RESUME");
		json_object_put(ev);
		count++;
	}
	ck_assert_int_eq(count, 256);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_powerdown_shutdown_exit)
{
	struct vm vm;
	fake_start(&vm, "normal");
	struct mq_qmp *q = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, NULL), 0);
	ck_assert_int_eq(mq_qmp_execute(q, "system_powerdown", NULL, 2000, NULL, NULL), 0);
	json_object *ev = wait_event(q, "POWERDOWN", 3000);
	ck_assert_ptr_nonnull(ev);
	json_object_put(ev);
	ev = wait_event(q, "SHUTDOWN", 3000);
	ck_assert_ptr_nonnull(ev);
	bool guest = false;
	ck_assert_str_eq(shutdown_reason(ev, &guest), "guest-shutdown");
	ck_assert(guest);
	json_object_put(ev);
	struct mq_error *err = NULL;
	/* then the connection closes */
	int r;
	int64_t deadline = mq_mono_ms() + 3000;
	while ((r = mq_qmp_pump(q, 200, &err)) != -ECONNRESET && mq_mono_ms() < deadline)
		err = mq_error_free(err);
	ck_assert_int_eq(r, -ECONNRESET);
	ck_assert_ptr_nonnull(strstr(err->msg, "qmp connection closed"));
	err = mq_error_free(err);
	ck_assert_int_eq(mq_qmp_execute(q, "query-status", NULL, 1000, NULL, &err), -ECONNRESET);
	err = mq_error_free(err);
	int st = vm_wait(&vm, 3000);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	ck_assert_int_eq(access(vm.sock, F_OK), -1); /* socket removed */
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_quit_and_sigterm)
{
	struct vm vm;
	fake_start(&vm, "normal");
	struct mq_qmp *q = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, NULL), 0);
	ck_assert_int_eq(mq_qmp_execute(q, "quit", NULL, 2000, NULL, NULL), 0);
	json_object *ev = wait_event(q, "SHUTDOWN", 3000);
	ck_assert_ptr_nonnull(ev);
	bool guest = true;
	ck_assert_str_eq(shutdown_reason(ev, &guest), "host-qmp-quit");
	ck_assert(!guest);
	json_object_put(ev);
	int st = vm_wait(&vm, 3000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	q = mq_qmp_free(q);
	vm_stop(&vm);

	fake_start(&vm, "normal");
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, NULL), 0);
	ck_assert_int_eq(kill(vm.pid, SIGTERM), 0);
	ev = wait_event(q, "SHUTDOWN", 3000);
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(shutdown_reason(ev, &guest), "host-signal");
	ck_assert(!guest);
	json_object_put(ev);
	st = vm_wait(&vm, 3000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(access(vm.sock, F_OK), -1);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_ignore_modes)
{
	struct vm vm;
	fake_start(&vm, "ignore-powerdown,ignore-quit,ignore-sigterm,paused");
	struct mq_qmp *q = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, NULL), 0);
	char *status = NULL;
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, NULL), 0);
	ck_assert_str_eq(status, "paused");
	free(status);
	ck_assert_int_eq(mq_qmp_execute(q, "system_powerdown", NULL, 2000, NULL, NULL), 0);
	ck_assert_int_eq(mq_qmp_execute(q, "quit", NULL, 2000, NULL, NULL), 0);
	ck_assert_int_eq(kill(vm.pid, SIGTERM), 0);
	/* nothing happens: no events, the process stays */
	ck_assert_int_eq(mq_qmp_pump(q, 300, NULL), -ETIMEDOUT);
	ck_assert_ptr_null(mq_qmp_next_event(q));
	struct mq_pidref ref = { .pid = vm.pid };
	ck_assert_int_eq(mq_proc_stat(vm.pid, &ref.start_time, NULL), 0);
	ck_assert_int_eq(mq_proc_check(&ref), MQ_PROC_ALIVE);
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, NULL), 0);
	free(status);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

/* ---- faulty modes ------------------------------------------------------- */

START_TEST(fake_garbage_is_eproto)
{
	struct vm vm;
	fake_start(&vm, "garbage");
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, &err), -EPROTO);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(err->code, EPROTO);
	ck_assert_msg(strncmp(err->msg, "qmp: invalid reply from '", 25) == 0, "%s", err->msg);
	ck_assert_ptr_nonnull(strstr(err->msg, vm.sock));
	mq_error_free(err);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_oversized_is_eproto)
{
	struct vm vm;
	fake_start(&vm, "oversized");
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, &err), 0);
	ck_assert_int_eq(mq_qmp_execute(q, "query-status", NULL, 5000, NULL, &err), -EPROTO);
	ck_assert_msg(strstr(err->msg, "qmp reply too long") != NULL, "%s", err->msg);
	mq_error_free(err);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_silent_times_out)
{
	struct vm vm;
	fake_start(&vm, "silent");
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, &err), 0);
	int64_t t0 = mq_mono_ms();
	char *status = NULL;
	ck_assert_int_eq(mq_qmp_query_status(q, 300, &status, &err), -ETIMEDOUT);
	int64_t dt = mq_mono_ms() - t0;
	ck_assert_int_ge(dt, 290);
	ck_assert_int_lt(dt, 1500);
	ck_assert_ptr_null(status);
	ck_assert_ptr_nonnull(strstr(err->msg, "timed out"));
	err = mq_error_free(err);
	mq_qmp_free(q);
	vm_stop(&vm);

	/* no greeting at all: connect itself times out */
	fake_start(&vm, "no-greeting");
	t0 = mq_mono_ms();
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 400, &q, &err), -ETIMEDOUT);
	dt = mq_mono_ms() - t0;
	ck_assert_int_lt(dt, 2000);
	ck_assert_ptr_nonnull(strstr(err->msg, "greeting"));
	mq_error_free(err);
	vm_stop(&vm);
}
END_TEST

START_TEST(connect_missing_socket_times_out)
{
	struct vm vm;
	vm_dir(&vm);
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	int64_t t0 = mq_mono_ms();
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 250, &q, &err), -ETIMEDOUT);
	int64_t dt = mq_mono_ms() - t0;
	ck_assert_int_ge(dt, 240);
	ck_assert_int_lt(dt, 1500);
	ck_assert_ptr_null(q);
	ck_assert_ptr_nonnull(strstr(err->msg, vm.sock));
	ck_assert_ptr_nonnull(strstr(err->msg, "cannot connect"));
	err = mq_error_free(err);

	/* timeout 0: a single attempt */
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 0, &q, &err), -ETIMEDOUT);
	err = mq_error_free(err);
	/* a path longer than sun_path */
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	ck_assert_int_eq(mq_qmp_connect(longp, 100, &q, &err), -ENAMETOOLONG);
	mq_error_free(err);
	rmdir(vm.dir);
}
END_TEST

START_TEST(fake_slow_start_then_crash)
{
	struct vm vm;
	fake_start(&vm, "slow-start=300,die-after=800");
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	/* connect() retries until the socket appears */
	int r = mq_qmp_connect(vm.sock, 5000, &q, &err);
	ck_assert_msg(r == 0, "connect: %s", err ? err->msg : "?");
	int64_t deadline = mq_mono_ms() + 5000;
	while ((r = mq_qmp_pump(q, 200, &err)) == -ETIMEDOUT && mq_mono_ms() < deadline)
		err = mq_error_free(err);
	ck_assert_int_eq(r, -ECONNRESET);
	err = mq_error_free(err);
	int st = vm_wait(&vm, 3000);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 3);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_cli_interface)
{
	struct vm vm;
	vm_dir(&vm);
	char out[128], errp[128], serial[128];
	snprintf(out, sizeof(out), "%s/out", vm.dir);
	snprintf(errp, sizeof(errp), "%s/err", vm.dir);
	snprintf(serial, sizeof(serial), "%s/serial.log", vm.dir);

	char *cmd = xasprintf("'%s' --version > '%s'", fake_path, out);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	char *buf = NULL;
	ck_assert_int_eq(mq_read_file(out, 4096, &buf, NULL, NULL), 0);
	ck_assert_str_eq(buf, "QEMU emulator version 7.2.0 (fake-qemu)\n");
	free(buf);

	cmd = xasprintf("FAKE_QEMU_MODE=crash-on-start '%s' -chardev socket,id=m,path='%s',server=on,wait=off "
			"-mon chardev=m,mode=control 2> '%s'",
			fake_path, vm.sock, errp);
	int st = system(cmd);
	free(cmd);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	ck_assert_int_eq(mq_read_file(errp, 4096, &buf, NULL, NULL), 0);
	ck_assert_str_eq(buf, "fake-qemu: could not open disk image: Permission denied\n");
	free(buf);
	ck_assert_int_eq(access(vm.sock, F_OK), -1);

	/* serial file + unknown options with and without values */
	char chardev[256], sock[256];
	snprintf(chardev, sizeof(chardev), "file,id=ser0,path=%s", serial);
	snprintf(sock, sizeof(sock), "socket,id=mon0,path=%s,server=on,wait=off", vm.sock);
	char *argv[] = { (char *)fake_path, "-machine", "q35", "-nographic", "-smp", "2", "-no-reboot",
			 "-drive", "file=x.qcow2,if=virtio", "-S", "-snapshot", "-unknown-flag", "-chardev", chardev,
			 "-serial", "chardev:ser0", "-chardev", sock, "-mon", "chardev=mon0,mode=control", NULL };
	spawn(&vm, argv);
	struct mq_qmp *q = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, NULL), 0);
	ck_assert_int_eq(mq_read_file(serial, 4096, &buf, NULL, NULL), 0);
	ck_assert_str_eq(buf, "fake-qemu serial up\n");
	free(buf);
	mq_qmp_free(q);
	vm_stop(&vm);
	unlink(out);
	unlink(errp);
	unlink(serial);
	rmdir(vm.dir);
}
END_TEST

/* ---- parser -------------------------------------------------------------- */

static int parse(const char *s, json_object **o)
{
	struct mq_error *err = NULL;
	int r = mq_qmp_parse_line(s, strlen(s), o, &err);
	if (r < 0) {
		ck_assert_ptr_nonnull(err);
		ck_assert_int_eq(err->code, EPROTO);
	} else {
		ck_assert_ptr_null(err);
	}
	mq_error_free(err);
	return r;
}

START_TEST(parse_line_cases)
{
	json_object *o = NULL;
	ck_assert_int_eq(parse("{\"return\": {}}", &o), 0);
	ck_assert(json_object_is_type(o, json_type_object));
	ck_assert(json_object_object_get_ex(o, "return", NULL));
	json_object_put(o);
	o = NULL;
	ck_assert_int_eq(parse("{\"return\": {}, \"id\": \"mq-1\"}\r", &o), 0);
	json_object_put(o);
	o = NULL;

	ck_assert_int_eq(parse("[1, 2]", &o), -EPROTO);
	ck_assert_int_eq(parse("\"str\"", &o), -EPROTO);
	ck_assert_int_eq(parse("42", &o), -EPROTO);
	ck_assert_int_eq(parse("null", &o), -EPROTO);
	ck_assert_int_eq(parse("", &o), -EPROTO);
	ck_assert_int_eq(parse("this is not json", &o), -EPROTO);
	ck_assert_int_eq(parse("{\"a\": 1", &o), -EPROTO);
	ck_assert_int_eq(parse("{\"a\": 1} {\"b\": 2}", &o), -EPROTO);
	ck_assert_int_eq(parse("{\"a\": 1} x", &o), -EPROTO);
	ck_assert_int_eq(parse("{\"a\": \"\xff\xfe\"}", &o), -EPROTO);
	ck_assert_ptr_null(o);

	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_parse_line("{\"a\":\0 1}", 9, &o, &err), -EPROTO);
	err = mq_error_free(err);
	ck_assert_int_eq(mq_qmp_parse_line("{}", MQ_QMP_MAX_LINE + 1, &o, &err), -EPROTO);
	ck_assert_ptr_nonnull(strstr(err->msg, "too long"));
	err = mq_error_free(err);

	/* depth: 20 levels fine, 10000 rejected */
	char ok[128] = "", bomb[20010];
	for (int i = 0; i < 20; i++)
		strcat(ok, "{\"a\":");
	strcat(ok, "1");
	for (int i = 0; i < 20; i++)
		strcat(ok, "}");
	ck_assert_int_eq(parse(ok, &o), 0);
	json_object_put(o);
	o = NULL;
	size_t n = 0;
	bomb[n++] = '{';
	bomb[n++] = '"';
	bomb[n++] = 'a';
	bomb[n++] = '"';
	bomb[n++] = ':';
	for (int i = 0; i < 10000; i++)
		bomb[n++] = '[';
	bomb[n] = '\0';
	ck_assert_int_eq(parse(bomb, &o), -EPROTO);
	ck_assert_ptr_null(o);
	/* huge numbers parse (json-c clamps), still an object */
	ck_assert_int_eq(parse("{\"n\": 123456789012345678901234567890}", &o), 0);
	json_object_put(o);
}
END_TEST

/* ---- asynchronous client against an in-process server ---------------------- */

/* A server end: read one line (blocking, with a deadline) from fd. */
static char *srv_read_line(int fd, int timeout_ms)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	int64_t deadline = mq_mono_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - mq_mono_ms();
		ck_assert_msg(left > 0 && poll(&p, 1, (int)left) == 1, "server: no line within %d ms", timeout_ms);
		char c;
		ssize_t n = read(fd, &c, 1);
		ck_assert_int_eq(n, 1);
		if (c == '\n')
			return mq_strbuf_detach(&sb);
		mq_strbuf_addc(&sb, c);
	}
}

static void srv_write(int fd, const char *s)
{
	ck_assert_int_eq(mq_write_all(fd, s, strlen(s)), 0);
}

/* Parse a request line: its command and id (caller frees id). */
static char *req_id(const char *line, const char *want_cmd)
{
	json_object *o = json_tokener_parse(line);
	ck_assert_ptr_nonnull(o);
	json_object *ex, *id;
	ck_assert(json_object_object_get_ex(o, "execute", &ex));
	if (want_cmd)
		ck_assert_str_eq(json_object_get_string(ex), want_cmd);
	ck_assert(json_object_object_get_ex(o, "id", &id));
	char *s = xstrdup(json_object_get_string(id));
	json_object_put(o);
	return s;
}

struct got {
	int calls;
	int status;
	char *value;   /* "return" as json text */
	char *cls, *desc, *msg;
};

static void got_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	(void)q;
	struct got *g = ud;
	g->calls++;
	g->status = r->status;
	if (r->ret)
		g->value = xstrdup(json_object_to_json_string_ext(r->ret, JSON_C_TO_STRING_PLAIN));
	if (r->err_class)
		g->cls = xstrdup(r->err_class);
	if (r->err_desc)
		g->desc = xstrdup(r->err_desc);
	if (r->message)
		g->msg = xstrdup(r->message);
}

static void got_release(struct got *g)
{
	free(g->value);
	free(g->cls);
	free(g->desc);
	free(g->msg);
	memset(g, 0, sizeof(*g));
}

struct seen {
	struct mq_strv events;   /* event names in order */
	int ready, closed;
	int close_code;
};

static void seen_event(struct mq_qmp *q, json_object *ev, void *ud)
{
	(void)q;
	struct seen *s = ud;
	json_object *n;
	ck_assert(json_object_object_get_ex(ev, "event", &n));
	mq_strv_push(&s->events, json_object_get_string(n));
}

static void seen_state(struct mq_qmp *q, enum mq_qmp_state st, const struct mq_error *why, void *ud)
{
	(void)q;
	struct seen *s = ud;
	if (st == MQ_QMP_READY) {
		ck_assert_ptr_null(why);
		s->ready++;
	} else if (st == MQ_QMP_CLOSED) {
		ck_assert_ptr_nonnull(why);
		s->closed++;
		s->close_code = why->code;
	}
}

/* Drive q's loop API until cond or the deadline. */
#define DRIVE_UNTIL(q, cond, ms)                                                                   \
	do {                                                                                       \
		int64_t dl_ = mq_mono_ms() + (ms);                                                  \
		while (!(cond) && mq_mono_ms() < dl_ && mq_qmp_state(q) != MQ_QMP_CLOSED) {         \
			struct pollfd p_ = { .fd = mq_qmp_fd(q), .events = mq_qmp_poll_events(q) }; \
			if (poll(&p_, 1, 50) > 0)                                                    \
				(void)mq_qmp_dispatch(q, p_.revents, NULL);                           \
		}                                                                                  \
	} while (0)

static struct mq_qmp *pair(int *srv, struct seen *s)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*srv = sv[1];
	struct mq_qmp_callbacks cb = { .on_state = seen_state, .on_event = seen_event, .ud = s };
	struct mq_qmp *q = mq_qmp_from_fd(sv[0], "pair", &cb);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_READY);
	ck_assert(fcntl(mq_qmp_fd(q), F_GETFD) & FD_CLOEXEC);
	ck_assert(fcntl(mq_qmp_fd(q), F_GETFL) & O_NONBLOCK);
	return q;
}

/* A command with an fd attached (getfd): the fd arrives with the command's
 * bytes, the reply is matched like any other; refused with output pending. */
START_TEST(async_send_fd)
{
	int srv;
	struct seen s = { MQ_STRV_INIT, 0, 0, 0 };
	struct mq_qmp *q = pair(&srv, &s);
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	json_object *args = json_object_new_object();
	json_object_object_add(args, "fdname", json_object_new_string("x"));
	struct got g = { 0 };
	uint64_t id = 0;
	ck_assert_int_eq(mq_qmp_send_fd(q, "getfd", args, p[1], got_reply, &g, &id, NULL), 0);
	ck_assert_uint_eq(mq_qmp_in_flight(q), 1);
	/* the server side: one message, the fd in its ancillary data */
	char buf[512];
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	ssize_t n = recvmsg(srv, &mh, MSG_CMSG_CLOEXEC);
	ck_assert_int_gt(n, 0);
	buf[n] = 0;
	ck_assert_ptr_nonnull(strstr(buf, "\"execute\":\"getfd\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"fdname\":\"x\""));
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->cmsg_type, SCM_RIGHTS);
	int got_fd;
	memcpy(&got_fd, CMSG_DATA(c), sizeof(int));
	ck_assert_int_eq(write(got_fd, "z", 1), 1); /* the same pipe */
	char z = 0;
	ck_assert_int_eq(read(p[0], &z, 1), 1);
	ck_assert_int_eq(z, 'z');
	close(got_fd);
	char *rid = req_id(buf, "getfd");
	char *out = xasprintf("{\"return\": {}, \"id\": \"%s\"}\n", rid);
	srv_write(srv, out);
	free(out);
	free(rid);
	DRIVE_UNTIL(q, g.calls == 1, 2000);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.status, 0);
	/* output pending: refused, nothing sent */
	ck_assert_int_eq(mq_qmp_send(q, "query-status", NULL, NULL, NULL, NULL, NULL), 0);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_send_fd(q, "getfd", args, p[1], NULL, NULL, NULL, &err), -EBUSY);
	ck_assert_ptr_nonnull(err);
	mq_error_free(err);
	json_object_put(args);
	close(p[0]);
	close(p[1]);
	free(g.value);
	free(g.cls);
	free(g.desc);
	free(g.msg);
	mq_qmp_free(q);
	close(srv);
	mq_strv_clear(&s.events);
}
END_TEST

START_TEST(async_out_of_order_with_events)
{
	int srv;
	struct seen s = { MQ_STRV_INIT, 0, 0, 0 };
	struct mq_qmp *q = pair(&srv, &s);
	struct got g[3] = { { 0 }, { 0 }, { 0 } };
	uint64_t ids[3];
	json_object *args = json_object_new_object();
	json_object_object_add(args, "x", json_object_new_int(1));
	ck_assert_int_eq(mq_qmp_send(q, "cmd-a", NULL, got_reply, &g[0], &ids[0], NULL), 0);
	ck_assert_int_eq(mq_qmp_send(q, "cmd-b", args, got_reply, &g[1], &ids[1], NULL), 0);
	ck_assert_int_eq(mq_qmp_send(q, "cmd-c", NULL, got_reply, &g[2], &ids[2], NULL), 0);
	json_object_put(args);
	ck_assert(!mq_qmp_idle(q, NULL));
	ck_assert(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
	ck_assert_uint_eq(mq_qmp_in_flight(q), 3);
	ck_assert(mq_qmp_poll_events(q) & POLLOUT); /* output pending */
	DRIVE_UNTIL(q, !(mq_qmp_poll_events(q) & POLLOUT), 2000);
	ck_assert_int_eq(mq_qmp_poll_events(q), POLLIN);

	char *l[3], *id[3];
	static const char *const names[] = { "cmd-a", "cmd-b", "cmd-c" };
	for (int i = 0; i < 3; i++) {
		l[i] = srv_read_line(srv, 2000);
		id[i] = req_id(l[i], names[i]);
	}
	ck_assert_ptr_nonnull(strstr(l[1], "\"arguments\":{\"x\":1}"));
	/* answer c, event, a (error), event, b; in one write */
	char *out = xasprintf("{\"return\": {\"c\": 3}, \"id\": \"%s\"}\r\n"
			      "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n"
			      "{\"error\": {\"class\": \"GenericError\", \"desc\": \"a went wrong\"}, \"id\": \"%s\"}\r\n"
			      "\r\n"
			      "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 3}}\r\n"
			      "{\"return\": [1, 2], \"id\": \"%s\"}\r\n",
			      id[2], id[0], id[1]);
	srv_write(srv, out);
	free(out);
	DRIVE_UNTIL(q, g[1].calls == 1, 2000);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(g[i].calls, 1);
	ck_assert(mq_qmp_idle(q, NULL));
	ck_assert_int_eq(g[0].status, -EREMOTEIO);
	ck_assert_str_eq(g[0].cls, "GenericError");
	ck_assert_str_eq(g[0].desc, "a went wrong");
	ck_assert_str_eq(g[0].msg, "qmp command 'cmd-a' failed: a went wrong");
	ck_assert_int_eq(g[1].status, 0);
	ck_assert_str_eq(g[1].value, "[1,2]");
	ck_assert_int_eq(g[2].status, 0);
	ck_assert_str_eq(g[2].value, "{\"c\":3}");
	char *ev = mq_strv_join(&s.events, " ");
	ck_assert_str_eq(ev, "STOP RESUME");
	free(ev);
	ck_assert_uint_eq(mq_qmp_in_flight(q), 0);
	ck_assert_ptr_null(mq_qmp_next_event(q)); /* on_event took them */

	/* a cancelled command's reply is dropped; a reply with an unknown id too */
	struct got gc = { 0 };
	uint64_t cid;
	ck_assert_int_eq(mq_qmp_send(q, "slow", NULL, got_reply, &gc, &cid, NULL), 0);
	mq_qmp_cancel(q, cid);
	DRIVE_UNTIL(q, !(mq_qmp_poll_events(q) & POLLOUT), 2000);
	char *cl = srv_read_line(srv, 2000);
	char *cidstr = req_id(cl, "slow");
	out = xasprintf("{\"return\": {}, \"id\": \"%s\"}\n{\"return\": {}, \"id\": \"other-7\"}\n", cidstr);
	srv_write(srv, out);
	free(out);
	DRIVE_UNTIL(q, mq_qmp_in_flight(q) == 0, 2000);
	ck_assert_int_eq(gc.calls, 0);
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_READY);
	free(cl);
	free(cidstr);

	/* EOF: what is in flight fails with -ECONNRESET, on_state(CLOSED) once */
	struct got ge = { 0 };
	ck_assert_int_eq(mq_qmp_send(q, "never", NULL, got_reply, &ge, NULL, NULL), 0);
	close(srv);
	DRIVE_UNTIL(q, ge.calls == 1, 2000);
	ck_assert_int_eq(ge.status, -ECONNRESET);
	ck_assert_ptr_nonnull(strstr(ge.msg, "qmp connection closed by 'pair'"));
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_CLOSED);
	ck_assert_int_eq(s.closed, 1);
	ck_assert_int_eq(s.close_code, ECONNRESET);
	ck_assert_int_eq(mq_qmp_fd(q), -1);
	ck_assert_int_eq(mq_qmp_poll_events(q), 0);
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_send(q, "late", NULL, NULL, NULL, NULL, &err), -ECONNRESET);
	err = mq_error_free(err);
	ck_assert_int_eq(mq_qmp_dispatch(q, POLLIN, &err), -ECONNRESET);
	mq_error_free(err);

	for (int i = 0; i < 3; i++) {
		free(l[i]);
		free(id[i]);
		got_release(&g[i]);
	}
	got_release(&ge);
	mq_strv_clear(&s.events);
	mq_qmp_free(q);
}
END_TEST

static void oversize_or_deep(bool deep)
{
	int srv;
	struct seen s = { MQ_STRV_INIT, 0, 0, 0 };
	struct mq_qmp *q = pair(&srv, &s);
	struct got g = { 0 };
	ck_assert_int_eq(mq_qmp_send(q, "query-status", NULL, got_reply, &g, NULL, NULL), 0);
	DRIVE_UNTIL(q, !(mq_qmp_poll_events(q) & POLLOUT), 2000);
	if (deep) {
		struct mq_strbuf sb = MQ_STRBUF_INIT;
		mq_strbuf_init(&sb);
		mq_strbuf_adds(&sb, "{\"return\": ");
		for (int i = 0; i < MQ_QMP_MAX_DEPTH + 8; i++)
			mq_strbuf_adds(&sb, "{\"a\": ");
		mq_strbuf_adds(&sb, "1");
		for (int i = 0; i < MQ_QMP_MAX_DEPTH + 8; i++)
			mq_strbuf_adds(&sb, "}");
		mq_strbuf_adds(&sb, "}\n");
		srv_write(srv, sb.buf);
		mq_strbuf_release(&sb);
	} else {
		/* no newline for more than MQ_QMP_MAX_LINE bytes: a writer thread
		 * is not needed, the client reads while we write in chunks */
		char chunk[65536];
		memset(chunk, 'x', sizeof(chunk));
		srv_write(srv, "{\"return\": \"");
		size_t sent = 0;
		int fl = fcntl(srv, F_GETFL);
		fcntl(srv, F_SETFL, fl | O_NONBLOCK);
		while (sent <= MQ_QMP_MAX_LINE + sizeof(chunk) && mq_qmp_state(q) != MQ_QMP_CLOSED) {
			ssize_t n = write(srv, chunk, sizeof(chunk));
			if (n > 0)
				sent += (size_t)n;
			struct pollfd p = { .fd = mq_qmp_fd(q), .events = POLLIN };
			if (poll(&p, 1, 100) > 0)
				(void)mq_qmp_dispatch(q, p.revents, NULL);
		}
	}
	DRIVE_UNTIL(q, g.calls == 1, 3000);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.status, -EPROTO);
	ck_assert_msg(strstr(g.msg, deep ? "invalid json" : "qmp reply too long") != NULL, "%s", g.msg);
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_CLOSED);
	ck_assert_int_eq(s.close_code, EPROTO);
	const struct mq_error *why = mq_qmp_close_reason(q);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strncmp(why->msg, "qmp: invalid reply from 'pair': ", 32) == 0, "%s", why->msg);
	got_release(&g);
	mq_strv_clear(&s.events);
	mq_qmp_free(q);
	close(srv);
}

START_TEST(async_oversized_line)
{
	oversize_or_deep(false);
}
END_TEST

START_TEST(async_depth_cap)
{
	oversize_or_deep(true);
}
END_TEST

/* Listen on a unix socket for the negotiation tests. */
static int listen_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

START_TEST(async_negotiation_and_handover)
{
	struct vm vm;
	vm_dir(&vm);
	struct seen s = { MQ_STRV_INIT, 0, 0, 0 };
	struct mq_qmp_callbacks cb = { .on_state = seen_state, .on_event = seen_event, .ud = &s };
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	/* no socket yet: reported at once, the caller retries */
	ck_assert_int_eq(mq_qmp_open(vm.sock, &cb, &q, &err), -ENOENT);
	ck_assert_ptr_null(q);
	err = mq_error_free(err);
	int lfd = listen_unix(vm.sock);
	ck_assert_int_eq(mq_qmp_open(vm.sock, &cb, &q, &err), 0);
	ck_assert_int_le(mq_qmp_state(q), MQ_QMP_GREETING);
	/* a command queued before READY is held until negotiation is done */
	struct got g = { 0 };
	ck_assert_int_eq(mq_qmp_send(q, "query-status", NULL, got_reply, &g, NULL, NULL), 0);
	int srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(srv, 0);

	/* greeting timeout is the caller's business: nothing happens by itself */
	ck_assert_int_eq(mq_qmp_wait(q, mq_qmp_settled, NULL, -1, mq_mono_ms() + 150, &err), -ETIMEDOUT);
	err = mq_error_free(err);
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_GREETING);

	srv_write(srv, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
	DRIVE_UNTIL(q, mq_qmp_state(q) == MQ_QMP_NEGOTIATING && !(mq_qmp_poll_events(q) & POLLOUT), 2000);
	char *l = srv_read_line(srv, 2000);
	char *id = req_id(l, "qmp_capabilities");
	free(l);
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_NEGOTIATING);
	ck_assert_int_eq(s.ready, 0);
	/* the capabilities reply and an event right behind it, in one write:
	 * the event must stay in the socket for whoever gets the fd */
	char *out = xasprintf("{\"return\": {}, \"id\": \"%s\"}\r\n"
			      "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\r\n",
			      id);
	srv_write(srv, out);
	free(out);
	free(id);
	ck_assert_int_eq(mq_qmp_wait(q, mq_qmp_settled, NULL, -1, mq_mono_ms() + 2000, &err), 0);
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_READY);
	ck_assert_int_eq(s.ready, 1);
	ck_assert_uint_eq(s.events.n, 0);
	/* the held command went out only now */
	l = srv_read_line(srv, 2000);
	char *qid = req_id(l, "query-status");
	free(l);

	int fd = mq_qmp_detach_fd(q);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(g.calls, 1); /* in flight at the handover: failed */
	ck_assert_int_eq(g.status, -ECONNRESET);
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_CLOSED);
	q = mq_qmp_free(q);
	got_release(&g);

	/* the receiving side wraps it and gets the RESUME that was waiting */
	struct seen s2 = { MQ_STRV_INIT, 0, 0, 0 };
	struct mq_qmp_callbacks cb2 = { .on_state = seen_state, .on_event = seen_event, .ud = &s2 };
	q = mq_qmp_from_fd(fd, "handed", &cb2);
	DRIVE_UNTIL(q, s2.events.n == 1, 2000);
	ck_assert_uint_eq(s2.events.n, 1);
	ck_assert_str_eq(s2.events.v[0], "RESUME");
	/* a late reply to a command of the former owner is ignored */
	out = xasprintf("{\"return\": {}, \"id\": \"%s\"}\n{\"event\": \"STOP\"}\n", qid);
	srv_write(srv, out);
	free(out);
	free(qid);
	DRIVE_UNTIL(q, s2.events.n == 2, 2000);
	ck_assert_str_eq(s2.events.v[1], "STOP");
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_READY);

	mq_qmp_free(q);
	mq_strv_clear(&s.events);
	mq_strv_clear(&s2.events);
	close(srv);
	close(lfd);
	unlink(vm.sock);
	rmdir(vm.dir);
}
END_TEST

START_TEST(async_greeting_not_qmp)
{
	struct vm vm;
	vm_dir(&vm);
	int lfd = listen_unix(vm.sock);
	struct mq_qmp *q = NULL;
	ck_assert_int_eq(mq_qmp_open(vm.sock, NULL, &q, NULL), 0);
	int srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	srv_write(srv, "{\"hello\": 1}\n");
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_wait(q, mq_qmp_settled, NULL, -1, mq_mono_ms() + 2000, &err), 0);
	ck_assert_int_eq(mq_qmp_state(q), MQ_QMP_CLOSED);
	ck_assert_int_eq(mq_qmp_close_reason(q)->code, EPROTO);
	ck_assert_ptr_nonnull(strstr(mq_qmp_close_reason(q)->msg, "expected a greeting with 'QMP'"));
	mq_qmp_free(q);
	close(srv);
	close(lfd);
	unlink(vm.sock);
	rmdir(vm.dir);
}
END_TEST

/* ---- jobs against the fake QEMU --------------------------------------------- */

struct progress_log {
	int calls;
	int64_t last_current, last_total;
	struct mq_strv statuses;
};

static void on_progress(void *ud, const char *status, int64_t current, int64_t total)
{
	struct progress_log *p = ud;
	p->calls++;
	p->last_current = current;
	p->last_total = total;
	if (!p->statuses.n || strcmp(p->statuses.v[p->statuses.n - 1], status) != 0)
		mq_strv_push(&p->statuses, status);
}

static json_object *snap_args(const char *tag)
{
	json_object *a = json_object_new_object();
	json_object_object_add(a, "tag", json_object_new_string(tag));
	json_object_object_add(a, "vmstate", json_object_new_string("disk0"));
	json_object *devs = json_object_new_array();
	json_object_array_add(devs, json_object_new_string("disk0"));
	json_object_object_add(a, "devices", devs);
	return a;
}

/* JOB_STATUS_CHANGE statuses of `id` queued on q, joined by " ". */
static char *job_events(struct mq_qmp *q, const char *id)
{
	struct mq_strv v = MQ_STRV_INIT;
	json_object *ev;
	while ((ev = mq_qmp_next_event(q))) {
		json_object *n, *d, *i, *st;
		if (json_object_object_get_ex(ev, "event", &n) && !strcmp(json_object_get_string(n), "JOB_STATUS_CHANGE") &&
		    json_object_object_get_ex(ev, "data", &d) && json_object_object_get_ex(d, "id", &i) &&
		    !strcmp(json_object_get_string(i), id) && json_object_object_get_ex(d, "status", &st))
			mq_strv_push(&v, json_object_get_string(st));
		json_object_put(ev);
	}
	char *j = mq_strv_join(&v, " ");
	mq_strv_clear(&v);
	return j;
}

START_TEST(fake_job_success)
{
	struct vm vm;
	fake_start(&vm, "normal");
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, &err), 0);
	struct progress_log pl = { 0, 0, 0, MQ_STRV_INIT };
	json_object *a = snap_args("snap0");
	int r = mq_qmp_job_run(q, "snapshot-save", a, "save0", 10000, 20, on_progress, &pl, &err);
	ck_assert_msg(r == 0, "job: %s", err ? err->msg : "?");
	ck_assert_int_ge(pl.calls, 2);
	ck_assert_int_eq(pl.last_total, 100);
	ck_assert_int_eq(pl.last_current, 100);
	ck_assert_str_eq(pl.statuses.v[pl.statuses.n - 1], "concluded");
	char *evs = job_events(q, "save0");
	ck_assert_str_eq(evs, "created running waiting pending concluded null");
	free(evs);
	/* dismissed: query-jobs no longer lists it */
	json_object *ret = NULL;
	ck_assert_int_eq(mq_qmp_execute(q, "query-jobs", NULL, 2000, &ret, &err), 0);
	ck_assert_uint_eq(json_object_array_length(ret), 0);
	json_object_put(ret);

	/* the loop API: start, then drive by hand; a second job id in parallel */
	struct mq_qmp_job *j1 = NULL, *j2 = NULL;
	ck_assert_int_eq(mq_qmp_job_start(q, "snapshot-load", a, "load0", &j1, &err), 0);
	ck_assert_int_eq(mq_qmp_job_start(q, "snapshot-delete", a, "del0", &j2, &err), 0);
	ck_assert(!mq_qmp_job_done(j1));
	ck_assert_int_eq(mq_qmp_job_result(j1, &err), -EINPROGRESS);
	err = mq_error_free(err);
	DRIVE_UNTIL(q, mq_qmp_job_done(j1) && mq_qmp_job_done(j2), 5000);
	ck_assert(mq_qmp_job_done(j1) && mq_qmp_job_done(j2));
	ck_assert_int_eq(mq_qmp_job_result(j1, NULL), 0);
	ck_assert_int_eq(mq_qmp_job_result(j2, NULL), 0);
	ck_assert_str_eq(mq_qmp_job_status(j1), "null");
	mq_qmp_job_free(j1);
	mq_qmp_job_free(j2);

	/* refused at once: duplicate job-id is a -EREMOTEIO of the command */
	ck_assert_int_eq(mq_qmp_job_start(q, "snapshot-save", a, "dup", &j1, &err), 0);
	ck_assert_int_eq(mq_qmp_job_start(q, "snapshot-save", a, "dup", &j2, &err), 0);
	DRIVE_UNTIL(q, mq_qmp_job_done(j2), 3000);
	ck_assert_int_eq(mq_qmp_job_result(j2, &err), -EREMOTEIO);
	ck_assert_msg(strstr(err->msg, "already in use") != NULL, "%s", err->msg);
	err = mq_error_free(err);
	DRIVE_UNTIL(q, mq_qmp_job_done(j1), 3000);
	ck_assert_int_eq(mq_qmp_job_result(j1, NULL), 0);
	mq_qmp_job_free(j1);
	mq_qmp_job_free(j2);

	json_object_put(a);
	mq_strv_clear(&pl.statuses);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_job_failure)
{
	struct vm vm;
	fake_start(&vm, "job-fail");
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, &err), 0);
	json_object *a = snap_args("snap0");
	int r = mq_qmp_job_run(q, "snapshot-save", a, "save1", 10000, 0, NULL, NULL, &err);
	ck_assert_int_eq(r, -EIO);
	ck_assert_str_eq(err->msg, "qmp job 'save1' (snapshot-save) failed: fake: snapshot failed: No space left on device");
	err = mq_error_free(err);
	char *evs = job_events(q, "save1");
	ck_assert_str_eq(evs, "created running aborting concluded null");
	free(evs);

	/* the connection closing under a job fails it */
	struct mq_qmp_job *j = NULL;
	ck_assert_int_eq(mq_qmp_job_start(q, "snapshot-save", a, "save2", &j, &err), 0);
	kill(vm.pid, SIGKILL);
	DRIVE_UNTIL(q, mq_qmp_job_done(j), 3000);
	ck_assert_int_eq(mq_qmp_job_result(j, &err), -ECONNRESET);
	ck_assert_ptr_nonnull(strstr(err->msg, "qmp job 'save2' (snapshot-save) failed"));
	mq_error_free(err);
	mq_qmp_job_free(j);
	json_object_put(a);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

START_TEST(fake_prelaunch_cont)
{
	struct vm vm;
	vm_dir(&vm);
	char chardev[256];
	snprintf(chardev, sizeof(chardev), "socket,id=mon0,path=%s,server=on,wait=off", vm.sock);
	char *argv[] = { (char *)fake_path, "-S", "-chardev", chardev, "-mon", "chardev=mon0,mode=control", NULL };
	spawn(&vm, argv);
	struct mq_qmp *q = NULL;
	ck_assert_int_eq(mq_qmp_connect(vm.sock, 5000, &q, NULL), 0);
	char *status = NULL;
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, NULL), 0);
	ck_assert_str_eq(status, "prelaunch");
	free(status);
	ck_assert_int_eq(mq_qmp_execute(q, "cont", NULL, 2000, NULL, NULL), 0);
	json_object *ev = wait_event(q, "RESUME", 2000);
	ck_assert_ptr_nonnull(ev);
	json_object_put(ev);
	ck_assert_int_eq(mq_qmp_query_status(q, 2000, &status, NULL), 0);
	ck_assert_str_eq(status, "running");
	free(status);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

/* ---- real QEMU -------------------------------------------------------------- */

static const char *find_qemu(void)
{
	static const char *const cands[] = { "/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64" };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(cands); i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	return NULL;
}

START_TEST(real_qemu)
{
	const char *qemu = find_qemu();
	if (!qemu) {
		fprintf(stderr, "real_qemu: qemu-system-x86_64 not found, skipped\n");
		return;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	const char *accel = kvm >= 0 ? "kvm" : "tcg";
	if (kvm >= 0)
		close(kvm);
	struct vm vm;
	vm_dir(&vm);
	char chardev[256];
	snprintf(chardev, sizeof(chardev), "socket,id=q,path=%s,server=on,wait=off", vm.sock);
	char *argv[] = { (char *)qemu, "-display", "none", "-nodefaults", "-machine", "none", "-accel", (char *)accel,
			 "-chardev", chardev, "-mon", "chardev=q,mode=control", NULL };
	spawn(&vm, argv);
	struct mq_qmp *q = NULL;
	struct mq_error *err = NULL;
	int r = mq_qmp_connect(vm.sock, 15000, &q, &err);
	ck_assert_msg(r == 0, "connect to real qemu: %s", err ? err->msg : "?");
	char *status = NULL;
	ck_assert_int_eq(mq_qmp_query_status(q, 5000, &status, &err), 0);
	static const char *const known[] = { "running", "prelaunch", "paused", "inmigrate" };
	bool is_known = false;
	for (size_t i = 0; i < MQ_ARRAY_SIZE(known); i++)
		is_known |= !strcmp(status, known[i]);
	ck_assert_msg(is_known, "unexpected status '%s'", status);
	free(status);
	ck_assert_int_eq(mq_qmp_execute(q, "no-such-command", NULL, 5000, NULL, &err), -EREMOTEIO);
	err = mq_error_free(err);
	/* real QEMU sends SHUTDOWN before the quit reply: it must be queued */
	ck_assert_int_eq(mq_qmp_execute(q, "quit", NULL, 5000, NULL, &err), 0);
	json_object *ev = wait_event(q, "SHUTDOWN", 5000);
	ck_assert_ptr_nonnull(ev);
	bool guest = true;
	ck_assert_str_eq(shutdown_reason(ev, &guest), "host-qmp-quit");
	json_object_put(ev);
	int st = vm_wait(&vm, 10000);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mq_qmp_free(q);
	vm_stop(&vm);
}
END_TEST

static Suite *qmp_suite(void)
{
	Suite *s = suite_create("qmp");
	TCase *tc = tcase_create("parser");
	tcase_add_test(tc, parse_line_cases);
	suite_add_tcase(s, tc);

	tc = tcase_create("async");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, async_out_of_order_with_events);
	tcase_add_test(tc, async_send_fd);
	tcase_add_test(tc, async_oversized_line);
	tcase_add_test(tc, async_depth_cap);
	tcase_add_test(tc, async_negotiation_and_handover);
	tcase_add_test(tc, async_greeting_not_qmp);
	suite_add_tcase(s, tc);

	tc = tcase_create("fake");
	tcase_set_timeout(tc, 30);
	if (fake_path) {
		tcase_add_test(tc, fake_normal_status_and_errors);
		tcase_add_test(tc, fake_events_queued_while_waiting);
		tcase_add_test(tc, fake_powerdown_shutdown_exit);
		tcase_add_test(tc, fake_quit_and_sigterm);
		tcase_add_test(tc, fake_ignore_modes);
		tcase_add_test(tc, fake_garbage_is_eproto);
		tcase_add_test(tc, fake_oversized_is_eproto);
		tcase_add_test(tc, fake_silent_times_out);
		tcase_add_test(tc, fake_slow_start_then_crash);
		tcase_add_test(tc, fake_cli_interface);
		tcase_add_test(tc, fake_job_success);
		tcase_add_test(tc, fake_job_failure);
		tcase_add_test(tc, fake_prelaunch_cont);
	}
	tcase_add_test(tc, connect_missing_socket_times_out);
	suite_add_tcase(s, tc);

	tc = tcase_create("real");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, real_qemu);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	fake_path = getenv("MQ_FAKE_QEMU");
	if (fake_path && access(fake_path, X_OK) != 0)
		fake_path = NULL;
	if (!fake_path)
		fprintf(stderr, "test-qmp: MQ_FAKE_QEMU not set, fake-qemu tests skipped\n");
	return mq_check_run(qmp_suite());
}
