/* qemuid.c - is this process that VM's QEMU? (see qemuid.h) */
#include "reconciler/qemuid.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/strbuf.h"
#include "util/xalloc.h"

#define CMDLINE_MAX (1024 * 1024)

int mq_proc_cmdline(pid_t pid, struct mq_strv *out)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	char buf[4096];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = -errno;
			close(fd);
			mq_strbuf_release(&sb);
			return e;
		}
		if (n == 0 || sb.len + (size_t)n > CMDLINE_MAX)
			break;
		mq_strbuf_add(&sb, buf, (size_t)n);
	}
	close(fd);
	for (size_t i = 0; i < sb.len;) {
		size_t l = strnlen(sb.buf + i, sb.len - i);
		char *tok = xstrndup(sb.buf + i, l);
		mq_strv_push(out, tok);
		free(tok);
		i += l + 1;
	}
	mq_strbuf_release(&sb);
	return 0;
}

bool mq_qemu_argv_names(const struct mq_strv *argv, const char *qmp_path)
{
	/* argv.c writes "socket,id=mqmp,path=<path, commas doubled>,server=on,wait=off" */
	struct mq_strbuf want = MQ_STRBUF_INIT;
	mq_strbuf_adds(&want, "socket,id=mqmp,path=");
	for (const char *s = qmp_path; *s; s++) {
		if (*s == ',')
			mq_strbuf_addc(&want, ',');
		mq_strbuf_addc(&want, *s);
	}
	mq_strbuf_addc(&want, ',');
	bool found = false;
	for (size_t i = 0; i + 1 < argv->n && !found; i++)
		found = strcmp(argv->v[i], "-chardev") == 0 &&
			strncmp(argv->v[i + 1], want.buf, want.len) == 0;
	mq_strbuf_release(&want);
	return found;
}

static bool ref_is_vm(const struct mq_pidref *ref, const char *qmp_path, struct mq_strv *argv)
{
	if (ref->pid <= 0 || mq_proc_check(ref) != MQ_PROC_ALIVE)
		return false;
	struct mq_strv a = MQ_STRV_INIT;
	bool ok = mq_proc_cmdline(ref->pid, &a) == 0 && mq_qemu_argv_names(&a, qmp_path) &&
		  mq_proc_check(ref) == MQ_PROC_ALIVE; /* still the same process after reading */
	if (ok && argv)
		mq_strv_extend(argv, &a);
	mq_strv_clear(&a);
	return ok;
}

bool mq_qemu_is_vm(const struct mq_pidref *ref, const char *qmp_path)
{
	return ref_is_vm(ref, qmp_path, NULL);
}

int mq_qemu_find(const char *qmp_path, const struct mq_pidref *hint, struct mq_pidref *out, struct mq_strv *argv)
{
	if (hint && ref_is_vm(hint, qmp_path, argv)) {
		*out = *hint;
		return 1;
	}
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	uid_t me = geteuid();
	struct dirent *e;
	int found = 0;
	while (!found && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid == getpid())
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, 0) < 0 || st.st_uid != me)
			continue;
		struct mq_pidref ref = { .pid = (pid_t)pid };
		char state = 0;
		if (mq_proc_stat(ref.pid, &ref.start_time, &state) < 0 || state == 'Z' || state == 'X')
			continue;
		if (ref_is_vm(&ref, qmp_path, argv)) {
			*out = ref;
			found = 1;
		}
	}
	closedir(d);
	return found;
}
