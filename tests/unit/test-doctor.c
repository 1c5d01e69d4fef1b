/* test-doctor.c - doctor's state checks and its safe fixes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/doctor.h"
#include "reconciler/phase.h"
#include "reconciler/proc.h"
#include "reconciler/vmpaths.h"
#include "state/store.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

static char base[64];
static char *state_dir, *rt_dir, *disk_dir;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/mqdoc.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	state_dir = xasprintf("%s/state", base);
	rt_dir = xasprintf("%s/rt", base);
	disk_dir = xasprintf("%s/state/disks", base);
}

static void teardown(void)
{
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(state_dir);
	free(rt_dir);
	free(disk_dir);
}

static void run(bool fix, struct mq_doctor *d)
{
	struct mq_doctor_opts o = { .state_dir = state_dir, .runtime_dir = rt_dir, .disk_dir = disk_dir, .fix = fix,
				    .lock_timeout_ms = 1000 };
	mq_doctor_run(&o, d);
}

/* Worst level of one check's findings; -1 when the check said nothing. */
static int level_of(const struct mq_doctor *d, const char *check)
{
	int w = -1;
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->f[i].check, check) == 0 && (int)d->f[i].level > w)
			w = (int)d->f[i].level;
	return w;
}

static const struct mq_finding *find(const struct mq_doctor *d, const char *check, const char *text)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->f[i].check, check) == 0 && strstr(d->f[i].message, text))
			return &d->f[i];
	return NULL;
}

/* A unix socket file at path: listening or (stale) with nobody behind it. */
static int make_socket(const char *path, bool listening)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (listening) {
		ck_assert_int_eq(listen(fd, 4), 0);
		return fd;
	}
	close(fd);
	return -1;
}

START_TEST(test_fresh)
{
	struct mq_doctor d;
	run(false, &d);
	ck_assert_int_eq(level_of(&d, "state-db"), MQ_CHECK_OK);
	ck_assert_ptr_nonnull(find(&d, "state-db", "no state yet"));
	ck_assert_int_eq(level_of(&d, "runtime-dir"), MQ_CHECK_OK);
	ck_assert_int_eq(level_of(&d, "sockets"), MQ_CHECK_OK);
	ck_assert_int_eq(level_of(&d, "orphans"), MQ_CHECK_OK);
	ck_assert_int_eq(level_of(&d, "disks"), MQ_CHECK_OK);
	ck_assert_int_ge(level_of(&d, "kvm"), MQ_CHECK_OK);
	ck_assert_int_eq(level_of(&d, "disk-space") >= 0, 1);
	struct stat st;
	ck_assert_int_eq(stat(state_dir, &st), -1); /* doctor creates nothing */
	mq_doctor_release(&d);
}
END_TEST

START_TEST(test_sockets)
{
	ck_assert_int_eq(mkdir(rt_dir, 0700), 0);
	char *live = xasprintf("%s/a.qmp", rt_dir), *stale = xasprintf("%s/b.qmp", rt_dir);
	int lfd = make_socket(live, true);
	make_socket(stale, false);
	struct mq_doctor d;
	run(false, &d);
	ck_assert_int_eq(level_of(&d, "sockets"), MQ_CHECK_FAIL);
	ck_assert_ptr_nonnull(find(&d, "sockets", "b.qmp"));
	ck_assert_ptr_null(find(&d, "sockets", "a.qmp"));
	ck_assert_int_eq(mq_doctor_worst(&d), MQ_CHECK_FAIL);
	mq_doctor_release(&d);
	ck_assert_int_eq(access(stale, F_OK), 0); /* without fix: untouched */

	run(true, &d);
	const struct mq_finding *f = find(&d, "sockets", "b.qmp");
	ck_assert_ptr_nonnull(f);
	ck_assert(f->fixed);
	ck_assert_int_eq(f->level, MQ_CHECK_OK);
	ck_assert_int_eq(access(stale, F_OK), -1);
	ck_assert_int_eq(access(live, F_OK), 0);
	mq_doctor_release(&d);
	close(lfd);
	free(live);
	free(stale);
}
END_TEST

START_TEST(test_runtime_dir_mode)
{
	ck_assert_int_eq(mkdir(rt_dir, 0755), 0);
	chmod(rt_dir, 0755);
	struct mq_doctor d;
	run(true, &d);
	ck_assert_int_eq(level_of(&d, "runtime-dir"), MQ_CHECK_FAIL);
	ck_assert_ptr_nonnull(find(&d, "runtime-dir", "mode 0755"));
	mq_doctor_release(&d);
	chmod(rt_dir, 0700);
	run(false, &d);
	ck_assert_int_eq(level_of(&d, "runtime-dir"), MQ_CHECK_OK);
	mq_doctor_release(&d);
}
END_TEST

START_TEST(test_corrupt_db)
{
	ck_assert_int_eq(mkdir(state_dir, 0700), 0);
	char *db = xasprintf("%s/maqet.db", state_dir);
	FILE *f = fopen(db, "w");
	for (int i = 0; i < 4096; i++)
		fputc("garbage!"[i % 8], f);
	fclose(f);
	struct mq_doctor d;
	run(false, &d);
	ck_assert_int_eq(level_of(&d, "state-db"), MQ_CHECK_FAIL);
	ck_assert_int_eq(mq_doctor_worst(&d), MQ_CHECK_FAIL);
	mq_doctor_release(&d);
	free(db);
}
END_TEST

START_TEST(test_big_log)
{
	ck_assert_int_eq(mkdir(rt_dir, 0700), 0);
	char *log = xasprintf("%s/web.serial.log", rt_dir);
	int fd = open(log, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)MQ_LOG_CAP + 1), 0);
	close(fd);
	struct mq_doctor d;
	run(false, &d);
	ck_assert_int_eq(level_of(&d, "logs"), MQ_CHECK_WARN);
	ck_assert_ptr_nonnull(find(&d, "logs", "web.serial.log"));
	mq_doctor_release(&d);
	ck_assert_int_eq(truncate(log, 10), 0);
	run(false, &d);
	ck_assert_int_eq(level_of(&d, "logs"), MQ_CHECK_OK);
	mq_doctor_release(&d);
	free(log);
}
END_TEST

/* A record "running" whose process (a child of ours, reaped) is gone. */
START_TEST(test_dead_record_fixed)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pause();
		_exit(0);
	}
	uint64_t start = 0;
	ck_assert_int_eq(mq_proc_stat(pid, &start, NULL), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	struct mq_store *st = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_open(state_dir, &st, &err), 0);
	struct mq_vm_record *r = mq_vm_record_new();
	mq_vm_record_set(&r->name, "web");
	mq_vm_record_set(&r->spec_json, "{}");
	mq_vm_record_set(&r->source, "/nonexistent/manifests");
	mq_vm_record_set(&r->spec_hash, "x");
	mq_vm_record_set(&r->desired, "running");
	mq_vm_record_set(&r->status, "running");
	r->pid = pid;
	r->start_time = start;
	r->started_at = mq_now_ms();
	ck_assert_int_eq(mq_store_vm_put(st, r, &err), 0);
	mq_vm_record_free(r);
	st = mq_store_free(st);

	struct mq_doctor d;
	run(false, &d);
	ck_assert_int_eq(level_of(&d, "vm-process"), MQ_CHECK_FAIL);
	ck_assert_ptr_nonnull(find(&d, "vm-process", "vm 'web' is recorded running"));
	mq_doctor_release(&d);

	run(true, &d);
	const struct mq_finding *f = find(&d, "vm-process", "vm 'web'");
	ck_assert_ptr_nonnull(f);
	ck_assert(f->fixed);
	mq_doctor_release(&d);

	ck_assert_int_eq(mq_store_open(state_dir, &st, &err), 0);
	ck_assert_int_eq(mq_store_vm_get(st, "web", &r, &err), 0);
	ck_assert_str_eq(r->status, "crashed");
	ck_assert_ptr_nonnull(r->last_error);
	ck_assert_ptr_nonnull(strstr(r->last_error, "doctor --fix"));
	mq_vm_record_free(r);
	struct mq_event **ev = NULL;
	size_t n = 0;
	ck_assert_int_eq(mq_store_event_list(st, "web", 0, &ev, &n, &err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(ev[0]->action, "doctor.fix");
	ck_assert_str_eq(ev[0]->outcome, "observed-gone");
	mq_event_list_free(ev, n);
	mq_store_free(st);

	/* fixed: the next run is clean */
	run(false, &d);
	ck_assert_int_eq(level_of(&d, "vm-process"), MQ_CHECK_OK);
	mq_doctor_release(&d);
}
END_TEST

/* A live record (our own process stands in for QEMU) is left alone. */
START_TEST(test_live_record_untouched)
{
	uint64_t start = 0;
	ck_assert_int_eq(mq_proc_stat(getpid(), &start, NULL), 0);
	struct mq_store *st = NULL;
	struct mq_error *err = NULL;
	ck_assert_int_eq(mq_store_open(state_dir, &st, &err), 0);
	struct mq_vm_record *r = mq_vm_record_new();
	mq_vm_record_set(&r->name, "web");
	mq_vm_record_set(&r->spec_json, "{}");
	mq_vm_record_set(&r->source, "/nonexistent/manifests");
	mq_vm_record_set(&r->spec_hash, "x");
	mq_vm_record_set(&r->desired, "running");
	mq_vm_record_set(&r->status, "running");
	r->pid = getpid();
	r->start_time = start;
	ck_assert_int_eq(mq_store_vm_put(st, r, &err), 0);
	mq_vm_record_free(r);
	struct mq_doctor d;
	run(true, &d);
	ck_assert_int_eq(level_of(&d, "vm-process"), MQ_CHECK_OK);
	mq_doctor_release(&d);
	ck_assert_int_eq(mq_store_vm_get(st, "web", &r, &err), 0);
	ck_assert_str_eq(r->status, "running");
	mq_vm_record_free(r);
	mq_store_free(st);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("doctor");
	TCase *tc = tcase_create("doctor");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_fresh);
	tcase_add_test(tc, test_sockets);
	tcase_add_test(tc, test_runtime_dir_mode);
	tcase_add_test(tc, test_corrupt_db);
	tcase_add_test(tc, test_big_log);
	tcase_add_test(tc, test_dead_record_fixed);
	tcase_add_test(tc, test_live_record_untouched);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
