/* gitsync.c - fetch and fast-forward the manifest checkout, one git child at
 * a time, followed on the watch's loop.  See gitsync.h. */
#include "reconciler/gitsync.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reconciler/proc.h"
#include "reconciler/spawn.h"
#include "util/fileio.h"
#include "util/git.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/strv.h"
#include "util/xalloc.h"

extern char **environ;

#define OUTPUT_CAP (64 * 1024)
#define REAP_POLL_MS 50      /* without a pidfd: waitpid(WNOHANG) this often */
#define HOLD_POLL_MS 100     /* .git/index.lock present: look again this often */
#define HOLD_REPORT_MS 1000  /* a lock older than this is reported (git's own are shorter) */
#define SETUP_TIMEOUT_MS 30000

enum gs_state { GS_IDLE, GS_FETCH, GS_REVPARSE, GS_COUNT, GS_VERIFY, GS_HELD, GS_MERGE };

struct child {
	pid_t pid; /* 0: none */
	int pidfd, outfd;
	struct mq_source *pid_src, *out_src;
	struct mq_timer *deadline, *reap_timer;
	struct mq_strbuf out;
	bool timed_out;
};

struct mq_gitsync {
	struct mq_loop *loop;
	struct mq_gitsync_cfg cfg;
	int64_t timeout_ms;
	mq_gitsync_report_fn report;
	mq_gitsync_reload_fn reload;
	void *ud;

	char *git, *gpg;
	char *top, *gitdir, *branch, *upstream;
	char *keyring, *gnupghome;
	struct mq_strv env;

	enum gs_state st;
	struct child ch;
	struct mq_timer *cycle_timer, *merge_retry, *hold_poll;
	char *head, *up;     /* this cycle's commits */
	char *refused;       /* upstream tip whose signature did not verify (reported) */
	char *last_key;      /* the last report made (each distinct one once) */
	bool hold_waiting;   /* mq_gitsync_hold() said yes: reload() when complete */
	int64_t locked_since; /* index.lock first seen (monotonic ms), 0 = not seen */
	bool held_reported;
};

/* ---- reports ------------------------------------------------------------------ */

static void report(struct mq_gitsync *gs, const char *outcome, const char *key, const char *commit, bool event,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void report(struct mq_gitsync *gs, const char *outcome, const char *key, const char *commit, bool event,
		   const char *fmt, ...)
{
	if (gs->last_key && strcmp(gs->last_key, key) == 0)
		return;
	free(gs->last_key);
	gs->last_key = xstrdup(key);
	va_list ap;
	va_start(ap, fmt);
	char *d = xvasprintf(fmt, ap);
	va_end(ap);
	if (gs->report)
		gs->report(gs->ud, outcome, d, commit, event);
	free(d);
}

static char *short_sha(const char *sha)
{
	return xstrndup(sha ? sha : "?", 12);
}

/* The last meaningful line of a git child's output (or `none`). */
static char *last_line_or(const struct mq_strbuf *out, const char *none)
{
	char *l = mq_last_line(out->buf ? out->buf : "", out->len, NULL);
	if (!*l) {
		free(l);
		return xstrdup(none);
	}
	return l;
}

/* ---- children on the loop ------------------------------------------------------- */

static void step_done(struct mq_gitsync *gs, int status);

static void child_close(struct child *c)
{
	mq_source_remove(c->pid_src);
	mq_source_remove(c->out_src);
	c->pid_src = c->out_src = NULL;
	mq_timer_cancel(c->deadline);
	mq_timer_cancel(c->reap_timer);
	c->deadline = c->reap_timer = NULL;
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->outfd >= 0)
		close(c->outfd);
	c->pidfd = c->outfd = -1;
	c->pid = 0;
}

/* Read what the pipe holds now (non-blocking); false on EOF or error. */
static bool child_read(struct child *c)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(c->outfd, buf, sizeof(buf));
		if (n > 0) {
			if (c->out.len < OUTPUT_CAP)
				mq_strbuf_add(&c->out, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
}

static void on_child_out(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	struct mq_gitsync *gs = ud;
	if (!child_read(&gs->ch)) {
		/* EOF: the exit itself comes from the pidfd (a grandchild may
		 * still hold the pipe; it is not waited for) */
		mq_source_remove(s);
		gs->ch.out_src = NULL;
		close(gs->ch.outfd);
		gs->ch.outfd = -1;
	}
}

/* The child may have exited: reap it without blocking and go on. */
static void child_try_reap(struct mq_gitsync *gs)
{
	int status = 0;
	pid_t r;
	while ((r = waitpid(gs->ch.pid, &status, WNOHANG)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return;
	if (r < 0)
		status = 0xff00; /* lost: count as a failure (exit status 255) */
	if (gs->ch.outfd >= 0)
		(void)child_read(&gs->ch);
	bool timed_out = gs->ch.timed_out;
	child_close(&gs->ch);
	if (timed_out) {
		mq_strbuf_reset(&gs->ch.out);
		mq_strbuf_addf(&gs->ch.out, "git did not finish within %lld s and was killed",
			       (long long)(gs->timeout_ms / 1000));
		status = 0xff00;
	}
	step_done(gs, status);
}

static void on_child_pidfd(struct mq_loop *l, struct mq_source *s, int fd, short revents, void *ud)
{
	child_try_reap(ud);
}

static void on_child_reap_timer(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct mq_gitsync *gs = ud;
	mq_timer_reschedule(t, mq_mono_ms() + REAP_POLL_MS);
	child_try_reap(gs); /* may cancel t: that undoes the reschedule */
}

static void on_child_deadline(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct mq_gitsync *gs = ud;
	gs->ch.deadline = NULL;
	gs->ch.timed_out = true;
	/* our own unreaped child, leader of its own session: neither its pid
	 * nor its group can have been reused */
	(void)kill(-gs->ch.pid, SIGKILL);
	(void)kill(gs->ch.pid, SIGKILL);
}

/* git -C TOP [-c ...] ARGS...: one child on the loop; step_done() follows. */
static void run_git(struct mq_gitsync *gs, enum gs_state st, const char *const *args)
{
	struct mq_strv a = MQ_STRV_INIT;
	mq_strv_push(&a, gs->git);
	mq_strv_push(&a, "-C");
	mq_strv_push(&a, gs->top);
	if (gs->gpg) {
		mq_strv_push(&a, "-c");
		mq_strv_pushf(&a, "gpg.program=%s", gs->gpg);
		mq_strv_push(&a, "-c");
		mq_strv_push(&a, "gpg.minTrustLevel=undefined");
	}
	for (size_t i = 0; args[i]; i++)
		mq_strv_push(&a, args[i]);
	gs->st = st;
	mq_strbuf_reset(&gs->ch.out);
	gs->ch.timed_out = false;
	int p[2] = { -1, -1 };
	struct mq_error *err = NULL;
	int r = -1;
	/* only our end is non-blocking: git writes to a blocking pipe */
	if (pipe2(p, O_CLOEXEC) < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		mq_error_set(&err, errno, "cannot create pipe: %s", strerror(errno));
		if (p[0] >= 0) {
			close(p[0]);
			close(p[1]);
		}
	} else {
		struct mq_spawn_opts so = {
			.stdin_fd = -1, .stdout_fd = p[1], .stderr_fd = p[1], .setsid = true, .envp = gs->env.v,
		};
		pid_t pid;
		r = mq_spawn(gs->git, a.v, &so, &pid, &err);
		close(p[1]);
		if (r < 0) {
			close(p[0]);
		} else {
			gs->ch.pid = pid;
			gs->ch.outfd = p[0];
		}
	}
	mq_strv_clear(&a);
	if (r < 0) {
		mq_strbuf_adds(&gs->ch.out, err ? err->msg : "cannot run git");
		mq_error_free(err);
		step_done(gs, 0xff00);
		return;
	}
	gs->ch.out_src = mq_loop_add_fd(gs->loop, gs->ch.outfd, POLLIN, on_child_out, gs);
	gs->ch.deadline = mq_loop_add_timer_in(gs->loop, gs->timeout_ms, on_child_deadline, gs);
	int pfd = mq_pidfd_open(gs->ch.pid);
	if (pfd >= 0) {
		gs->ch.pidfd = pfd;
		gs->ch.pid_src = mq_loop_add_fd(gs->loop, pfd, POLLIN, on_child_pidfd, gs);
	} else {
		gs->ch.reap_timer = mq_loop_add_timer_in(gs->loop, REAP_POLL_MS, on_child_reap_timer, gs);
	}
}

/* ---- the cycle ----------------------------------------------------------------- */

static void on_cycle(struct mq_loop *l, struct mq_timer *t, void *ud);

static void end_cycle(struct mq_gitsync *gs)
{
	gs->st = GS_IDLE;
	free(gs->head);
	free(gs->up);
	gs->head = gs->up = NULL;
	mq_timer_cancel(gs->cycle_timer);
	gs->cycle_timer = mq_loop_add_timer_in(gs->loop, gs->cfg.interval_ms, on_cycle, gs);
}

static void fail(struct mq_gitsync *gs, const char *what)
{
	char *line = last_line_or(&gs->ch.out, "no output");
	char *key = xasprintf("failed %s %s", what, line);
	report(gs, "failed", key, NULL, true, "cannot %s in '%s': %s; retrying every %llds", what, gs->top, line,
	       (long long)(gs->cfg.interval_ms / 1000));
	free(key);
	free(line);
	end_cycle(gs);
}

static void on_cycle(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct mq_gitsync *gs = ud;
	gs->cycle_timer = NULL;
	static const char *const args[] = { "fetch", "--quiet", "--no-recurse-submodules", NULL };
	run_git(gs, GS_FETCH, args);
}

static bool index_locked(const struct mq_gitsync *gs)
{
	char *p = mq_path_join(gs->gitdir, "index.lock");
	struct stat sb;
	bool locked = lstat(p, &sb) == 0;
	free(p);
	return locked;
}

static void try_merge(struct mq_gitsync *gs);

static void on_merge_retry(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct mq_gitsync *gs = ud;
	gs->merge_retry = NULL;
	try_merge(gs);
}

/* Is .git/index.lock there?  A lock that stays is reported once (log only):
 * the checkout is left alone until it goes. */
static bool check_lock(struct mq_gitsync *gs)
{
	if (!index_locked(gs)) {
		gs->locked_since = 0;
		gs->held_reported = false;
		return false;
	}
	int64_t now = mq_mono_ms();
	if (!gs->locked_since)
		gs->locked_since = now;
	if (!gs->held_reported && now - gs->locked_since >= HOLD_REPORT_MS && gs->report) {
		gs->held_reported = true;
		char *d = xasprintf("'%s/index.lock' exists: a git command is changing the checkout (or one died and "
				    "left the file: remove it then); %s", gs->gitdir,
				    gs->st == GS_HELD ? "the pull waits for it to go"
						      : "manifests are read again once it is gone");
		gs->report(gs->ud, "held", d, NULL, false);
		free(d);
	}
	return true;
}

static void try_merge(struct mq_gitsync *gs)
{
	gs->st = GS_HELD;
	if (check_lock(gs)) {
		gs->merge_retry = mq_loop_add_timer_in(gs->loop, HOLD_POLL_MS, on_merge_retry, gs);
		return;
	}
	const char *args[] = { "merge", "--ff-only", "--quiet", "--no-autostash", "--no-verify-signatures",
			       gs->up, NULL };
	run_git(gs, GS_MERGE, args);
}

static bool is_sha(const char *s, size_t n)
{
	if (n != 40 && n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static void revparse_done(struct mq_gitsync *gs)
{
	const char *b = gs->ch.out.buf;
	const char *nl = strchr(b, '\n');
	const char *b2 = nl ? nl + 1 : "";
	const char *nl2 = strchr(b2, '\n');
	if (!nl || !nl2 || !is_sha(b, (size_t)(nl - b)) || !is_sha(b2, (size_t)(nl2 - b2))) {
		fail(gs, "resolve HEAD and its upstream");
		return;
	}
	gs->head = xstrndup(b, (size_t)(nl - b));
	gs->up = xstrndup(b2, (size_t)(nl2 - b2));
	if (strcmp(gs->head, gs->up) == 0) {
		char *key = xasprintf("current %s", gs->head);
		char *s = short_sha(gs->head);
		report(gs, "current", key, gs->head, false, "checkout '%s' at %s is current with %s", gs->top, s,
		       gs->upstream);
		free(s);
		free(key);
		end_cycle(gs);
		return;
	}
	char *range = xasprintf("%s...%s", gs->head, gs->up);
	const char *args[] = { "rev-list", "--left-right", "--count", range, NULL };
	run_git(gs, GS_COUNT, args);
	free(range);
}

static void count_done(struct mq_gitsync *gs)
{
	unsigned long long ahead = 0, behind = 0;
	char tail = 0;
	if (sscanf(gs->ch.out.buf, "%llu %llu%c", &ahead, &behind, &tail) < 2) {
		fail(gs, "compare HEAD with its upstream");
		return;
	}
	char *h = short_sha(gs->head), *u = short_sha(gs->up);
	if (ahead > 0) {
		char *key = xasprintf("diverged %s", gs->head); /* once per local HEAD */
		if (behind > 0)
			report(gs, "diverged", key, gs->head, true,
			       "checkout '%s' at %s has %llu local commit%s not in %s (at %s, %llu new): not pulled; "
			       "push or drop them (git -C %s reset --keep %s) to resume", gs->top, h, ahead,
			       ahead == 1 ? "" : "s", gs->upstream, u, behind, gs->top, gs->upstream);
		else
			report(gs, "diverged", key, gs->head, true,
			       "checkout '%s' at %s has %llu local commit%s not in %s: nothing is pulled until they "
			       "are pushed or dropped", gs->top, h, ahead, ahead == 1 ? "" : "s", gs->upstream);
		free(key);
		free(h);
		free(u);
		end_cycle(gs);
		return;
	}
	free(h);
	free(u);
	if (gs->gpg) {
		if (gs->refused && strcmp(gs->refused, gs->up) == 0) {
			end_cycle(gs); /* reported already: wait for a new tip */
			return;
		}
		const char *args[] = { "verify-commit", gs->up, NULL };
		run_git(gs, GS_VERIFY, args);
		return;
	}
	try_merge(gs);
}

static void verify_done(struct mq_gitsync *gs, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		try_merge(gs);
		return;
	}
	if (gs->ch.timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 1) {
		/* not a verdict on the signature (a hung gpg, a missing object):
		 * try again next cycle */
		fail(gs, "check the signature");
		return;
	}
	free(gs->refused);
	gs->refused = xstrdup(gs->up);
	char *line = last_line_or(&gs->ch.out, "the commit is not signed");
	char *key = xasprintf("refused %s", gs->up);
	char *h = short_sha(gs->head), *u = short_sha(gs->up);
	report(gs, "refused", key, gs->head, true,
	       "%s is at %s whose signature does not verify with keyring '%s': %s; the manifests of %s (the last "
	       "verified commit) stay in force", gs->upstream, u, gs->keyring, line, h);
	free(h);
	free(u);
	free(key);
	free(line);
	end_cycle(gs);
}

/* Names git lists (tab-indented) after "would be overwritten", joined. */
static char *overwritten_files(const char *out)
{
	struct mq_strv f = MQ_STRV_INIT;
	for (const char *p = out; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n > 1 && p[0] == '\t' && f.n < 10)
			mq_strv_push_take(&f, xstrndup(p + 1, n - 1));
		p = e ? e + 1 : NULL;
	}
	char *j = f.n ? mq_strv_join(&f, ", ") : xstrdup("files");
	mq_strv_clear(&f);
	return j;
}

static void merge_done(struct mq_gitsync *gs, bool ok)
{
	if (!ok && strstr(gs->ch.out.buf, "index.lock': File exists")) {
		/* another git command took the lock first: wait for it, as for a
		 * lock seen before starting (git changed nothing) */
		gs->st = GS_HELD;
		(void)check_lock(gs);
		gs->merge_retry = mq_loop_add_timer_in(gs->loop, HOLD_POLL_MS, on_merge_retry, gs);
		return;
	}
	bool want_reload = ok || gs->hold_waiting;
	gs->hold_waiting = false;
	char *h = short_sha(gs->head), *u = short_sha(gs->up);
	if (ok) {
		char *now = mq_git_commit_for(gs->top);
		const char *applied = now ? now : gs->up;
		char *key = xasprintf("ok %s", applied);
		char *n = short_sha(applied);
		report(gs, "ok", key, applied, true, "fast-forwarded '%s' (%s) from %s to %s (%s)", gs->top,
		       gs->branch, h, n, gs->upstream);
		free(n);
		free(key);
		/* the next cycle finds it current: no news */
		free(gs->last_key);
		gs->last_key = xasprintf("current %s", applied);
		free(now);
		free(gs->refused);
		gs->refused = NULL;
	} else if (strstr(gs->ch.out.buf, "would be overwritten")) {
		char *files = overwritten_files(gs->ch.out.buf);
		char *key = xasprintf("dirty %s %s %s", gs->head, gs->up, files);
		report(gs, "diverged", key, gs->head, true,
		       "uncommitted changes to %s in '%s' would be overwritten by the fast-forward from %s to %s: not "
		       "pulled; commit, stash or discard them to resume", files, gs->top, h, u);
		free(key);
		free(files);
	} else {
		free(h);
		free(u);
		fail(gs, "fast-forward");
		if (want_reload && gs->reload)
			gs->reload(gs->ud);
		return;
	}
	free(h);
	free(u);
	end_cycle(gs);
	if (want_reload && gs->reload)
		gs->reload(gs->ud);
}

static void step_done(struct mq_gitsync *gs, int status)
{
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	switch (gs->st) {
	case GS_FETCH:
		if (!ok) {
			char *what = xasprintf("fetch %s", gs->upstream);
			fail(gs, what);
			free(what);
			return;
		}
		{
			static const char *const args[] = { "rev-parse", "HEAD", "@{upstream}", NULL };
			run_git(gs, GS_REVPARSE, args);
		}
		return;
	case GS_REVPARSE:
		if (!ok)
			fail(gs, "resolve HEAD and its upstream");
		else
			revparse_done(gs);
		return;
	case GS_COUNT:
		if (!ok)
			fail(gs, "compare HEAD with its upstream");
		else
			count_done(gs);
		return;
	case GS_VERIFY:
		verify_done(gs, status);
		return;
	case GS_MERGE:
		merge_done(gs, ok);
		return;
	case GS_IDLE:
	case GS_HELD:
		break;
	}
	end_cycle(gs);
}

/* ---- holds ------------------------------------------------------------------------ */

static void on_hold_poll(struct mq_loop *l, struct mq_timer *t, void *ud)
{
	struct mq_gitsync *gs = ud;
	if (gs->st == GS_MERGE) {
		gs->hold_poll = NULL; /* the merge's end calls reload() */
		return;
	}
	if (check_lock(gs)) {
		mq_timer_reschedule(t, mq_mono_ms() + HOLD_POLL_MS);
		return;
	}
	gs->hold_poll = NULL;
	gs->hold_waiting = false;
	if (gs->reload)
		gs->reload(gs->ud);
}

bool mq_gitsync_hold(struct mq_gitsync *gs)
{
	if (!gs)
		return false;
	if (gs->st == GS_MERGE) {
		gs->hold_waiting = true;
		return true;
	}
	if (!check_lock(gs))
		return false;
	gs->hold_waiting = true;
	if (!gs->hold_poll)
		gs->hold_poll = mq_loop_add_timer_in(gs->loop, HOLD_POLL_MS, on_hold_poll, gs);
	return true;
}

/* ---- setup ------------------------------------------------------------------------- */

/* Run a setup command (before the loop runs).  *out gets the output; returns
 * the exit status (0 = success), or -1 with *err set when it could not run. */
static int setup_run(const struct mq_gitsync *gs, const char *path, const char *const *argv, char **out,
		     struct mq_error **err)
{
	int status = 0;
	int r = mq_spawn_capture_env(path, (char *const *)argv, gs->env.v, SETUP_TIMEOUT_MS, out, &status, err);
	if (r < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static char *first_line(const char *s)
{
	return xstrndup(s, strcspn(s, "\n"));
}

static bool env_dropped(const char *e, bool keyring)
{
	static const char *const drop[] = {
		"GIT_DIR=", "GIT_WORK_TREE=", "GIT_INDEX_FILE=", "GIT_OBJECT_DIRECTORY=",
		"GIT_ALTERNATE_OBJECT_DIRECTORIES=", "GIT_COMMON_DIR=", "GIT_NAMESPACE=", "GIT_TERMINAL_PROMPT=",
		"LC_ALL=", "LANGUAGE=", NULL,
	};
	for (size_t i = 0; drop[i]; i++)
		if (strncmp(e, drop[i], strlen(drop[i])) == 0)
			return true;
	return keyring && strncmp(e, "GNUPGHOME=", 10) == 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	(void)remove(p);
	return 0;
}

static void remove_tree(const char *dir)
{
	if (dir)
		(void)nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* The keyring imported into a fresh private GnuPG home; HEAD must verify. */
static int setup_keyring(struct mq_gitsync *gs, const char *runtime_dir, struct mq_error **err)
{
	gs->gpg = mq_spawn_resolve("gpg");
	if (!gs->gpg)
		return mq_error_set(err, ENOENT, "cannot use --verify-signatures: gpg is not installed (install the "
				    "gnupg package)");
	struct stat sb;
	if (stat(gs->keyring, &sb) < 0)
		return mq_error_set(err, errno, "cannot use --keyring '%s': %s", gs->keyring, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return mq_error_set(err, EINVAL, "cannot use --keyring '%s': not a regular file (give a file of "
				    "exported public keys: gpg --export KEYID > FILE)", gs->keyring);
	int r = mq_mkdir_p(runtime_dir, 0700, err);
	if (r < 0)
		return r;
	char *tmpl = mq_path_join(runtime_dir, "gitpull-gnupg.XXXXXX");
	if (!mkdtemp(tmpl)) {
		int e = errno;
		free(tmpl);
		return mq_error_set(err, e, "cannot create a GnuPG home in '%s': %s", runtime_dir, strerror(e));
	}
	gs->gnupghome = tmpl;
	char *conf = mq_path_join(gs->gnupghome, "gpg.conf");
	static const char confdata[] = "no-autostart\n";
	r = mq_write_file_atomic(conf, confdata, sizeof(confdata) - 1, 0600, err);
	free(conf);
	if (r < 0)
		return r;
	mq_strv_pushf(&gs->env, "GNUPGHOME=%s", gs->gnupghome);

	char *out = NULL;
	const char *imp[] = { gs->gpg, "--batch", "--quiet", "--homedir", gs->gnupghome, "--import", gs->keyring,
			      NULL };
	r = setup_run(gs, gs->gpg, imp, &out, err);
	if (r < 0)
		return mq_error_prefix(err, "cannot use --keyring '%s'", gs->keyring);
	char *line = mq_last_line(out, strlen(out), NULL);
	free(out);
	out = NULL;
	const char *ls[] = { gs->gpg, "--batch", "--homedir", gs->gnupghome, "--with-colons", "--list-keys", NULL };
	int r2 = setup_run(gs, gs->gpg, ls, &out, err);
	if (r2 < 0) {
		free(line);
		return mq_error_prefix(err, "cannot use --keyring '%s'", gs->keyring);
	}
	bool any = strncmp(out, "pub:", 4) == 0 || strstr(out, "\npub:");
	free(out);
	out = NULL;
	if (!any) {
		int e = mq_error_set(err, EINVAL, "cannot use --keyring '%s': no public key in it%s%s (give a file "
				     "of exported public keys: gpg --export KEYID > FILE)", gs->keyring,
				     r && *line ? ": " : "", r ? line : "");
		free(line);
		return e;
	}
	free(line);

	char *gprog = xasprintf("gpg.program=%s", gs->gpg);
	const char *vc[] = { gs->git, "-C", gs->top, "-c", gprog, "-c", "gpg.minTrustLevel=undefined",
			     "verify-commit", "HEAD", NULL };
	r = setup_run(gs, gs->git, vc, &out, err);
	free(gprog);
	if (r < 0)
		return mq_error_prefix(err, "cannot use --verify-signatures");
	if (r != 0) {
		char *why = mq_last_line(out, strlen(out), NULL);
		char *head = mq_git_commit_for(gs->top);
		char *h = short_sha(head);
		int e = mq_error_set(err, EPERM, "cannot use --verify-signatures: HEAD (%s) of '%s' does not verify "
				     "with keyring '%s': %s (check out a commit signed by one of its keys first)", h,
				     gs->top, gs->keyring, *why ? why : "the commit is not signed");
		free(h);
		free(head);
		free(why);
		free(out);
		return e;
	}
	free(out);
	return 0;
}

int mq_gitsync_new(const struct mq_gitsync_opts *o, struct mq_gitsync **out, struct mq_error **err)
{
	struct mq_gitsync *gs = xcalloc(1, sizeof(*gs));
	gs->loop = o->loop;
	gs->cfg = o->cfg;
	if (gs->cfg.interval_ms <= 0)
		gs->cfg.interval_ms = 60000;
	gs->timeout_ms = o->cfg.timeout_ms > 0 ? o->cfg.timeout_ms : 60000;
	gs->report = o->report;
	gs->reload = o->reload;
	gs->ud = o->ud;
	gs->keyring = xstrdup_null(o->cfg.keyring);
	gs->cfg.keyring = gs->keyring;
	gs->ch.pidfd = gs->ch.outfd = -1;
	mq_strbuf_init(&gs->ch.out);
	for (char **e = environ; e && *e; e++)
		if (!env_dropped(*e, gs->keyring != NULL))
			mq_strv_push(&gs->env, *e);
	mq_strv_push(&gs->env, "GIT_TERMINAL_PROMPT=0");
	mq_strv_push(&gs->env, "LC_ALL=C");

	int r = 0;
	char *res = NULL;
	gs->git = mq_spawn_resolve("git");
	if (!gs->git) {
		r = mq_error_set(err, ENOENT, "cannot use --git-pull: git is not installed (install the git package)");
		goto fail;
	}
	for (size_t i = 0; i < o->n_paths; i++) {
		struct stat sb;
		char *dir = stat(o->paths[i], &sb) == 0 && S_ISDIR(sb.st_mode) ? xstrdup(o->paths[i])
									       : mq_path_dirname(o->paths[i]);
		const char *argv[] = { gs->git, "-C", dir, "rev-parse", "--show-toplevel", "--absolute-git-dir", NULL };
		int st = setup_run(gs, gs->git, argv, &res, err);
		free(dir);
		if (st < 0)
			goto fail_r;
		const char *nl = strchr(res, '\n');
		if (st != 0 || !nl || nl == res || !nl[1]) {
			r = mq_error_set(err, ENOTDIR, "cannot use --git-pull: '%s' is not in a git work tree (clone "
					 "the manifest repository and give -f paths inside it)", o->paths[i]);
			goto fail;
		}
		char *top = first_line(res);
		if (gs->top && strcmp(gs->top, top) != 0) {
			r = mq_error_set(err, EINVAL, "cannot use --git-pull: '%s' is in the work tree '%s', not in '%s' "
					 "like '%s' (give -f paths of one repository)", o->paths[i], top, gs->top,
					 o->paths[0]);
			free(top);
			goto fail;
		}
		if (!gs->top) {
			gs->top = top;
			gs->gitdir = first_line(nl + 1);
		} else {
			free(top);
		}
		free(res);
		res = NULL;
	}
	if (!gs->top) {
		r = mq_error_set(err, EINVAL, "cannot use --git-pull: no -f path given");
		goto fail;
	}
	{
		const char *argv[] = { gs->git, "-C", gs->top, "symbolic-ref", "-q", "--short", "HEAD", NULL };
		int st = setup_run(gs, gs->git, argv, &res, err);
		if (st < 0)
			goto fail_r;
		if (st != 0 || !*res) {
			r = mq_error_set(err, EINVAL, "cannot use --git-pull on '%s': HEAD is detached (check out the "
					 "branch to follow: git -C %s switch BRANCH)", gs->top, gs->top);
			goto fail;
		}
		gs->branch = first_line(res);
		free(res);
		res = NULL;
	}
	{
		const char *argv[] = { gs->git, "-C", gs->top, "rev-parse", "--abbrev-ref", "--symbolic-full-name",
				       "@{upstream}", NULL };
		int st = setup_run(gs, gs->git, argv, &res, err);
		if (st < 0)
			goto fail_r;
		if (st != 0 || !*res) {
			r = mq_error_set(err, EINVAL, "cannot use --git-pull on '%s': branch '%s' has no upstream (set "
					 "one: git -C %s branch --set-upstream-to=origin/%s)", gs->top, gs->branch,
					 gs->top, gs->branch);
			goto fail;
		}
		gs->upstream = first_line(res);
		free(res);
		res = NULL;
	}
	if (gs->keyring && (r = setup_keyring(gs, o->runtime_dir, err)) < 0)
		goto fail;
	*out = gs;
	return 0;
fail_r:
	r = mq_error_prefix(err, "cannot use --git-pull");
fail:
	free(res);
	mq_gitsync_free(gs);
	return r < 0 ? r : -EINVAL;
}

void mq_gitsync_start(struct mq_gitsync *gs)
{
	if (gs && !gs->cycle_timer && gs->st == GS_IDLE)
		gs->cycle_timer = mq_loop_add_timer_in(gs->loop, 0, on_cycle, gs);
}

const char *mq_gitsync_top(const struct mq_gitsync *gs)
{
	return gs->top;
}

const char *mq_gitsync_upstream(const struct mq_gitsync *gs)
{
	return gs->upstream;
}

struct mq_gitsync *mq_gitsync_free(struct mq_gitsync *gs)
{
	if (!gs)
		return NULL;
	if (gs->ch.pid > 0) {
		(void)kill(-gs->ch.pid, SIGKILL);
		(void)kill(gs->ch.pid, SIGKILL);
		while (waitpid(gs->ch.pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	child_close(&gs->ch);
	mq_timer_cancel(gs->cycle_timer);
	mq_timer_cancel(gs->merge_retry);
	mq_timer_cancel(gs->hold_poll);
	mq_strbuf_release(&gs->ch.out);
	remove_tree(gs->gnupghome);
	free(gs->gnupghome);
	free(gs->keyring);
	free(gs->git);
	free(gs->gpg);
	free(gs->top);
	free(gs->gitdir);
	free(gs->branch);
	free(gs->upstream);
	free(gs->head);
	free(gs->up);
	free(gs->refused);
	free(gs->last_key);
	mq_strv_clear(&gs->env);
	free(gs);
	return NULL;
}
