/* git.c - find the commit checked out in the work tree holding a path, by
 * reading .git files directly (the git binary is never run).  See git.h. */
#include "util/git.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fileio.h"
#include "util/paths.h"
#include "util/xalloc.h"

#define GIT_SMALL_FILE_CAP 4096u                  /* HEAD, loose refs, .git, commondir */
#define GIT_PACKED_REFS_CAP (16u * 1024u * 1024u) /* packed-refs of a large repository */
#define GIT_SYMREF_DEPTH 5

static char *read_capped(const char *path, size_t cap)
{
	char *buf = NULL;
	size_t len = 0;
	if (mq_read_file(path, cap, &buf, &len, NULL) < 0)
		return NULL;
	if (strlen(buf) != len) { /* embedded NUL: not a text ref file */
		free(buf);
		return NULL;
	}
	return buf;
}

static void rtrim(char *s)
{
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* A full object name: 40 (SHA-1) or 64 (SHA-256) hex digits.  Returns a
 * lowercase copy, or NULL. */
static char *object_name(const char *s, size_t n)
{
	if (n != 40 && n != 64)
		return NULL;
	char *out = xstrndup(s, n);
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)out[i])) {
			free(out);
			return NULL;
		}
		out[i] = (char)tolower((unsigned char)out[i]);
	}
	return out;
}

/* Only accept ref names that cannot escape the git directory. */
static bool valid_refname(const char *r)
{
	if (strncmp(r, "refs/", 5) != 0)
		return false;
	const char *p = r;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || p[0] == '.')
			return false;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c < 0x20 || c == 0x7f || c == '\\' || c == ':' || c == '?' || c == '*' || c == '[' ||
			    c == '~' || c == '^' || c == ' ')
				return false;
			if (c == '.' && i + 1 < n && p[i + 1] == '.')
				return false;
		}
		if (!e)
			break;
		p = e + 1;
		if (!*p) /* trailing slash */
			return false;
	}
	return true;
}

/* Look `ref` up in <commondir>/packed-refs: lines "<hex> <refname>", with
 * "# ..." header and "^<hex>" peeled lines skipped. */
static char *packed_ref(const char *commondir, const char *ref)
{
	char *path = mq_path_join(commondir, "packed-refs");
	char *buf = read_capped(path, GIT_PACKED_REFS_CAP);
	free(path);
	if (!buf)
		return NULL;
	char *result = NULL;
	size_t rlen = strlen(ref);
	for (char *line = buf; line && *line && !result;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		rtrim(line);
		if (line[0] != '#' && line[0] != '^') {
			char *sp = strchr(line, ' ');
			if (sp && strlen(sp + 1) == rlen && memcmp(sp + 1, ref, rlen) == 0)
				result = object_name(line, (size_t)(sp - line));
		}
		line = nl ? nl + 1 : NULL;
	}
	free(buf);
	return result;
}

/* Parse the content of HEAD or a loose ref: "ref: <name>" or a hex name. */
static char *resolve_content(const char *gitdir, const char *commondir, char *content, int depth);

static char *resolve_ref(const char *gitdir, const char *commondir, const char *ref, int depth)
{
	if (depth > GIT_SYMREF_DEPTH || !valid_refname(ref))
		return NULL;
	/* Per-worktree refs live in the worktree's gitdir, shared ones in the
	 * common dir; for a plain repository both are the same. */
	const char *bases[] = { gitdir, commondir };
	for (size_t i = 0; i < MQ_ARRAY_SIZE(bases); i++) {
		if (i == 1 && strcmp(gitdir, commondir) == 0)
			break;
		char *path = mq_path_join(bases[i], ref);
		char *content = read_capped(path, GIT_SMALL_FILE_CAP);
		free(path);
		if (content)
			return resolve_content(gitdir, commondir, content, depth + 1);
	}
	return packed_ref(commondir, ref);
}

static char *resolve_content(const char *gitdir, const char *commondir, char *content, int depth)
{
	rtrim(content);
	char *result;
	if (strncmp(content, "ref:", 4) == 0) {
		const char *ref = content + 4;
		while (*ref == ' ' || *ref == '\t')
			ref++;
		result = resolve_ref(gitdir, commondir, ref, depth);
	} else {
		result = object_name(content, strlen(content));
	}
	free(content);
	return result;
}

/* `dir/.git` as a git directory: a directory, or a file "gitdir: X" (X
 * relative to dir) as left by worktrees and submodules.  NULL if neither. */
static char *gitdir_at(const char *dir)
{
	char *dotgit = mq_path_join(dir, ".git");
	struct stat st;
	if (stat(dotgit, &st) < 0) {
		free(dotgit);
		return NULL;
	}
	if (S_ISDIR(st.st_mode))
		return dotgit;
	char *content = S_ISREG(st.st_mode) ? read_capped(dotgit, GIT_SMALL_FILE_CAP) : NULL;
	free(dotgit);
	if (!content)
		return NULL;
	rtrim(content);
	char *result = NULL;
	if (strncmp(content, "gitdir:", 7) == 0) {
		const char *p = content + 7;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p)
			result = mq_path_join(dir, p);
	}
	free(content);
	return result;
}

char *mq_git_commit_for(const char *path)
{
	if (!path || !*path)
		return NULL;
	struct stat st;
	char *start = (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ? xstrdup(path) : mq_path_dirname(path);
	char *cur = realpath(start, NULL);
	free(start);
	if (!cur)
		return NULL;

	char *gitdir = NULL;
	for (;;) {
		gitdir = gitdir_at(cur);
		if (gitdir || strcmp(cur, "/") == 0)
			break;
		char *parent = mq_path_dirname(cur);
		free(cur);
		cur = parent;
	}
	free(cur);
	if (!gitdir)
		return NULL;

	char *commondir = NULL;
	char *cpath = mq_path_join(gitdir, "commondir");
	char *c = read_capped(cpath, GIT_SMALL_FILE_CAP);
	free(cpath);
	if (c) {
		rtrim(c);
		if (*c)
			commondir = mq_path_join(gitdir, c);
		free(c);
	}
	if (!commondir)
		commondir = xstrdup(gitdir);

	char *result = NULL;
	char *hpath = mq_path_join(gitdir, "HEAD");
	char *head = read_capped(hpath, GIT_SMALL_FILE_CAP);
	free(hpath);
	if (head)
		result = resolve_content(gitdir, commondir, head, 0);
	free(gitdir);
	free(commondir);
	return result;
}
