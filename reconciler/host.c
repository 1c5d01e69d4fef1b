/* host.c - KVM, accelerator and QEMU binary checks (see host.h). */
#include "reconciler/host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/spawn.h"
#include "util/xalloc.h"

#define VERSION_TIMEOUT_MS 10000

bool mq_kvm_usable(void)
{
	static int cached = -1;
	if (cached < 0) {
		int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		cached = fd >= 0;
		if (fd >= 0)
			close(fd);
	}
	return cached == 1;
}

const char *mq_accel_resolve(enum mq_accel a)
{
	switch (a) {
	case MQ_ACCEL_KVM:
		return "kvm";
	case MQ_ACCEL_TCG:
		return "tcg";
	case MQ_ACCEL_AUTO:
	default:
		return mq_kvm_usable() ? "kvm" : "tcg";
	}
}


int mq_qemu_check_binary(const char *binary, char **resolved, char **version, struct mq_error **err)
{
	if (!binary)
		binary = "qemu-system-x86_64";
	char *path = mq_spawn_resolve(binary);
	if (!path)
		return mq_error_set(err, ENOENT,
				    "qemu binary '%s' not found (install qemu-system-x86 or set 'binary:' in the manifest)",
				    binary);
	char *argv[] = { path, (char *)"--version", NULL };
	char *out = NULL;
	int st = 0;
	int r = mq_spawn_capture(path, argv, VERSION_TIMEOUT_MS, &out, &st, err);
	if (r < 0) {
		mq_error_prefix(err, "cannot run '%s --version'", path);
		free(path);
		return r;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *how = mq_wait_status_str(st);
		char *line = mq_last_line(out, strlen(out), NULL);
		r = mq_error_set(err, EINVAL, "'%s --version' %s%s%s", path, how, *line ? ": " : "", line);
		free(line);
		free(how);
		free(out);
		free(path);
		return r;
	}
	if (version) {
		size_t n = strcspn(out, "\r\n");
		*version = xstrndup(out, n);
	}
	free(out);
	if (resolved)
		*resolved = path;
	else
		free(path);
	return 0;
}


/* ---- per-process cache of successful checks ------------------------------- */

struct bin_cache_entry {
	char *binary;
	char *resolved;
	struct stat st;
};

static struct bin_cache_entry *bin_cache;
static size_t bin_cache_n;

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static const struct bin_cache_entry *cache_find(const char *binary)
{
	for (size_t i = 0; i < bin_cache_n; i++) {
		struct stat st;
		if (strcmp(bin_cache[i].binary, binary) == 0 && stat(bin_cache[i].resolved, &st) == 0 &&
		    same_file(&st, &bin_cache[i].st))
			return &bin_cache[i];
	}
	return NULL;
}

static void cache_add(const char *binary, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return;
	for (size_t i = 0; i < bin_cache_n; i++)
		if (strcmp(bin_cache[i].binary, binary) == 0) { /* replaced (an upgrade) */
			free(bin_cache[i].resolved);
			bin_cache[i].resolved = xstrdup(path);
			bin_cache[i].st = st;
			return;
		}
	bin_cache = xreallocarray(bin_cache, bin_cache_n + 1, sizeof(*bin_cache));
	bin_cache[bin_cache_n].binary = xstrdup(binary);
	bin_cache[bin_cache_n].resolved = xstrdup(path);
	bin_cache[bin_cache_n].st = st;
	bin_cache_n++;
}

int mq_qemu_check_binary_cached(const char *binary, char **resolved, struct mq_error **err)
{
	if (!binary)
		binary = "qemu-system-x86_64";
	const struct bin_cache_entry *e = cache_find(binary);
	if (e) {
		if (resolved)
			*resolved = xstrdup(e->resolved);
		return 0;
	}
	char *path = NULL;
	int r = mq_qemu_check_binary(binary, &path, NULL, err);
	if (r < 0)
		return r;
	cache_add(binary, path);
	if (resolved)
		*resolved = path;
	else
		free(path);
	return 0;
}

bool mq_qemu_binary_known_good(const char *binary)
{
	return cache_find(binary ? binary : "qemu-system-x86_64") != NULL;
}

void mq_qemu_binary_remember(const char *binary)
{
	if (!binary)
		binary = "qemu-system-x86_64";
	if (cache_find(binary))
		return;
	char *path = mq_spawn_resolve(binary);
	if (path)
		cache_add(binary, path);
	free(path);
}

void mq_qemu_binary_cache_clear(void)
{
	for (size_t i = 0; i < bin_cache_n; i++) {
		free(bin_cache[i].binary);
		free(bin_cache[i].resolved);
	}
	free(bin_cache);
	bin_cache = NULL;
	bin_cache_n = 0;
}
