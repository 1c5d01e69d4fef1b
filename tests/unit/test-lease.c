/* test-lease.c - the disk lease (reconciler/lease.c) and shared storage for
 * placement moves (reconciler/placement.c, specs/hosts.c). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/lease.h"
#include "reconciler/placement.h"
#include "reconciler/spawn.h"
#include "specs/hosts.h"
#include "util/fileio.h"
#include "util/xalloc.h"
#include "tests/unit/check-run.h"

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static char *tmpdir(void)
{
	char *d = xstrdup("/tmp/mq-lease-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	ck_assert_int_eq(mq_read_file(path, 4096, &buf, &len, NULL), 0);
	return buf;
}

START_TEST(lease_take_probe_release)
{
	char *d = tmpdir();
	char *p = xasprintf("%s/disk.img%s", d, MQ_LEASE_SUFFIX);
	struct mq_lease_holder h;
	ck_assert_int_eq(mq_lease_probe(p, &h), 0); /* no file: free */

	struct mq_error *err = NULL;
	int fd = mq_lease_take(p, "a", "v", NULL, &err);
	ck_assert_int_ge(fd, 3);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	char *text = slurp(p);
	ck_assert_ptr_nonnull(strstr(text, "host a\nvm v\npid "));
	free(text);

	/* another open file description conflicts, even in this process */
	ck_assert_int_eq(mq_lease_probe(p, &h), 1);
	ck_assert_str_eq(h.host, "a");
	ck_assert_str_eq(h.vm, "v");
	ck_assert_int_gt(h.since_ms, 0);
	ck_assert_int_eq(mq_lease_take(p, "b", "v", &h, &err), -EBUSY);
	ck_assert_str_eq(h.host, "a");
	ck_assert_ptr_nonnull(strstr(err->msg, "is held by host a"));
	mq_error_free(err);
	err = NULL;
	/* the loser wrote nothing */
	text = slurp(p);
	ck_assert_ptr_nonnull(strstr(text, "host a\n"));
	free(text);

	close(fd);
	ck_assert_int_eq(mq_lease_probe(p, &h), 0);
	fd = mq_lease_take(p, "b", "v", NULL, &err);
	ck_assert_int_ge(fd, 0);
	text = slurp(p);
	ck_assert_ptr_nonnull(strstr(text, "host b\nvm v\n"));
	ck_assert_ptr_null(strstr(text, "host a"));
	free(text);
	close(fd);
	nftw(d, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(p);
	free(d);
}
END_TEST

/* The lease handed to a child through spawn outlives our copy and ends with
 * the child; the child has fds 0-2 and the lease, nothing else. */
START_TEST(lease_lives_with_the_child)
{
	char *d = tmpdir();
	char *p = xasprintf("%s/disk.img%s", d, MQ_LEASE_SUFFIX);
	int fd = mq_lease_take(p, "a", "v", NULL, NULL);
	ck_assert_int_ge(fd, 0);
	int stray = open("/dev/null", O_RDONLY | O_CLOEXEC); /* must not leak */
	ck_assert_int_ge(stray, 0);
	struct mq_spawn_opts so = { .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .lease_fd = fd };
	char *argv[] = { "sleep", "30", NULL };
	pid_t pid;
	ck_assert_int_eq(mq_spawn("/bin/sleep", argv, &so, &pid, NULL), 0);
	close(fd);
	close(stray);
	struct mq_lease_holder h;
	ck_assert_int_eq(mq_lease_probe(p, &h), 1);

	/* sleep(1) itself may hold a locale file open for a moment after exec:
	 * wait (with a deadline) until it has only what it inherited */
	char *fddir = xasprintf("/proc/%d/fd", (int)pid);
	int n = 0;
	for (int tries = 0; tries < 200; tries++) {
		DIR *dir = opendir(fddir);
		ck_assert_ptr_nonnull(dir);
		struct dirent *e;
		n = 0;
		while ((e = readdir(dir)))
			if (e->d_name[0] != '.')
				n++;
		closedir(dir);
		if (n == 4)
			break;
		poll(NULL, 0, 10);
	}
	ck_assert_int_eq(n, 4);
	char *fd3 = xasprintf("%s/3", fddir), link[4096];
	ssize_t l = readlink(fd3, link, sizeof(link) - 1);
	ck_assert_int_gt(l, 0);
	link[l] = '\0';
	ck_assert_str_eq(link, p);

	kill(pid, SIGKILL);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_int_eq(mq_lease_probe(p, &h), 0);
	free(fd3);
	free(fddir);
	nftw(d, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(p);
	free(d);
}
END_TEST

START_TEST(shared_storage)
{
	bool net = true;
	ck_assert_str_eq(mq_placement_fs_name(0x6969, &net), "nfs");
	ck_assert(net);
	ck_assert_str_eq(mq_placement_fs_name(0x01161970, &net), "gfs2");
	ck_assert(net);
	ck_assert_str_eq(mq_placement_fs_name(0xEF53, &net), "ext4");
	ck_assert(!net);
	ck_assert_ptr_null(mq_placement_fs_name(0x12345678, &net));

	struct mq_hosts h = { MQ_STRV_INIT, MQ_STRV_INIT, MQ_STRV_INIT };
	mq_strv_push(&h.shared, "/srv/vm");
	ck_assert_str_eq(mq_hosts_shared_dir(&h, "/srv/vm/a.img"), "/srv/vm");
	ck_assert_ptr_null(mq_hosts_shared_dir(&h, "/srv/vmdisks/a.img"));
	ck_assert(mq_placement_disk_shared(&h, "/srv/vm/sub/a.img", NULL));

	/* a real directory: shared exactly when its filesystem is a network one */
	char *d = tmpdir();
	char *img = xasprintf("%s/missing.img", d);
	struct statfs sf;
	ck_assert_int_eq(statfs(d, &sf), 0);
	bool network = false;
	const char *name = mq_placement_fs_name((long)sf.f_type, &network);
	char *why = NULL;
	ck_assert(mq_placement_disk_shared(&h, img, &why) == network);
	if (!network) {
		ck_assert_ptr_nonnull(why);
		ck_assert_ptr_nonnull(strstr(why, name ? name : "type 0x"));
	}
	free(why);
	mq_strv_push(&h.shared, d);
	ck_assert(mq_placement_disk_shared(&h, img, NULL));
	mq_strv_clear(&h.shared);
	rmdir(d);
	free(img);
	free(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lease");
	TCase *tc = tcase_create("lease");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, lease_take_probe_release);
	tcase_add_test(tc, lease_lives_with_the_child);
	tcase_add_test(tc, shared_storage);
	suite_add_tcase(s, tc);
	return mq_check_run(s);
}
