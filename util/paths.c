#include "util/paths.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sha256.h"
#include "util/strbuf.h"
#include "util/strv.h"
#include "util/xalloc.h"

char *mq_path_join(const char *a, const char *b)
{
	if (b[0] == '/' || !a || !*a)
		return xstrdup(b);
	/* by hand, not xasprintf: called per manifest file, thousands of times */
	size_t la = strlen(a), lb = strlen(b);
	bool slash = a[la - 1] != '/';
	char *r = xmalloc(la + slash + lb + 1);
	memcpy(r, a, la);
	if (slash)
		r[la] = '/';
	memcpy(r + la + slash, b, lb + 1);
	return r;
}

char *mq_path_dirname(const char *p)
{
	const char *s = strrchr(p, '/');
	if (!s)
		return xstrdup(".");
	if (s == p)
		return xstrdup("/");
	return xstrndup(p, (size_t)(s - p));
}

int mq_mkdir_p(const char *path, mode_t mode, struct mq_error **err)
{
	if (!path || !*path) /* p + 1 below would point past the terminator */
		return mq_error_set(err, ENOENT, "cannot create directory '': empty path (give a directory name)");
	char *p = xstrdup(path);
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				int e = errno;
				int r = mq_error_set(err, e, "cannot create directory '%s': %s", p, strerror(e));
				free(p);
				return r;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(p);
		return mq_error_set(err, ENOTDIR, "'%s' is not a directory", path);
	}
	free(p);
	return 0;
}

/* Lexically normalise an absolute path: fold "//", "." and "..". */
static char *normalise(const char *path)
{
	struct mq_strv parts = MQ_STRV_INIT;
	const char *s = path;
	while (*s) {
		while (*s == '/')
			s++;
		const char *e = s;
		while (*e && *e != '/')
			e++;
		size_t n = (size_t)(e - s);
		if (n == 0 || (n == 1 && s[0] == '.')) {
			/* skip */
		} else if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (parts.n) {
				free(parts.v[--parts.n]);
				parts.v[parts.n] = NULL;
			}
		} else {
			mq_strv_push_take(&parts, xstrndup(s, n));
		}
		s = e;
	}
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	for (size_t i = 0; i < parts.n; i++) {
		mq_strbuf_addc(&sb, '/');
		mq_strbuf_adds(&sb, parts.v[i]);
	}
	if (sb.len == 0)
		mq_strbuf_addc(&sb, '/');
	mq_strv_clear(&parts);
	return mq_strbuf_detach(&sb);
}

char *mq_path_resolve(const char *path)
{
	char *norm = normalise(path);
	char *real = realpath(norm, NULL);
	if (real) {
		free(norm);
		return real;
	}
	/* Walk back to the longest existing prefix. */
	size_t len = strlen(norm);
	char *prefix = xstrdup(norm);
	for (;;) {
		char *slash = strrchr(prefix, '/');
		if (!slash || slash == prefix) {
			free(prefix);
			char *r = realpath("/", NULL);
			free(r);
			return norm;
		}
		*slash = '\0';
		real = realpath(prefix, NULL);
		if (real) {
			const char *rest = norm + strlen(prefix);
			char *joined = xasprintf("%s%s", strcmp(real, "/") == 0 ? "" : real, rest);
			free(real);
			free(prefix);
			free(norm);
			char *n2 = normalise(joined);
			free(joined);
			return n2;
		}
	}
	(void)len;
}

static bool under(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

bool mq_path_is_system(const char *p)
{
	static const char *const sys[] = { "/etc", "/usr", "/bin", "/sbin", "/boot", "/proc",
					   "/sys", "/dev", "/root" };
	if (p[0] != '/' || strcmp(p, "/") == 0) /* "" or relative: not a resolved path, refuse */
		return true;
	for (size_t i = 0; i < MQ_ARRAY_SIZE(sys); i++)
		if (under(p, sys[i]))
			return true;
	if (strncmp(p, "/lib", 4) == 0) /* /lib, /lib64, /libx32, /lib32 */
		return true;
	if (under(p, "/var") && !under(p, "/var/tmp"))
		return true;
	return false;
}

char *mq_default_state_dir(void)
{
	const char *e = getenv("MAQET_STATE_DIR");
	if (e && *e)
		return xstrdup(e);
	e = getenv("XDG_STATE_HOME");
	if (e && e[0] == '/')
		return mq_path_join(e, "maqet");
	e = getenv("HOME");
	if (e && e[0] == '/')
		return xasprintf("%s/.local/state/maqet", e);
	return xstrdup("/tmp/maqet-state");
}

char *mq_runtime_dir_for(const char *state_dir)
{
	const char *e = getenv("MAQET_RUNTIME_DIR");
	if (e && *e)
		return xstrdup(e);
	char hex[65];
	mq_sha256_hex(state_dir, strlen(state_dir), hex);
	hex[8] = '\0';
	e = getenv("XDG_RUNTIME_DIR");
	if (e && e[0] == '/' && strlen(e) < 32)
		return xasprintf("%s/maqet-%s", e, hex);
	return xasprintf("/tmp/maqet-%u-%s", (unsigned)getuid(), hex);
}
