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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "reconciler/qmp.h"
#include "util/fileio.h"
#include "util/xalloc.h"

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
	SRunner *sr = srunner_create(qmp_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
