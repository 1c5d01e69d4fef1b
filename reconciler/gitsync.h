/* gitsync.h - `maqet watch --git-pull`: keep the manifest checkout current.
 *
 * Every interval (and once at start) the manifest repository's upstream is
 * fetched and the checkout is fast-forwarded to it, by running git as child
 * processes followed on the watch's loop (a pidfd per child, its output on a
 * non-blocking pipe, a deadline that kills a hung git and its process group).
 * Nothing here blocks the loop, except mq_gitsync_new(), which runs before
 * the loop does.
 *
 * One cycle is a small state machine, one git child per step:
 *
 *   idle --timer--> fetch --> revparse (HEAD, @{upstream})
 *        equal: current, back to idle
 *        --> count (git rev-list --left-right --count HEAD...UP)
 *            local commits not upstream: diverged (reported once), idle
 *        --> verify (git verify-commit UP; only with a keyring)
 *            bad or missing signature: refused (reported once per tip), idle
 *        --> [held while .git/index.lock exists] --> merge
 *            (git merge --ff-only --no-autostash --no-verify-signatures UP)
 *            refused by git (uncommitted changes it would overwrite):
 *            diverged, idle
 *        --> applied: reported with old -> new commit, reload asked for.
 *
 * Why `merge --ff-only` to the exact commit that was checked (and verified):
 * git itself refuses anything that is not a fast-forward and any local
 * change it would overwrite, before it touches a file, so local work is
 * never merged, stashed or rewritten; and a ref that moves meanwhile cannot
 * slip an unverified commit in.
 *
 * A complete checkout only: while the merge child runs, or while
 * .git/index.lock exists (any git command updating the index or the work
 * tree), mq_gitsync_hold() says so and the watch keeps its manifests in force
 * without re-reading them; reload() is called once the checkout is complete
 * again.
 *
 * Signatures (keyring set): the keyring is a file of exported public keys
 * (`gpg --export KEYID... > FILE`, binary or armored), imported at start into
 * a private GnuPG home (a fresh 0700 directory under the runtime dir, with
 * no-autostart, removed by mq_gitsync_free); git verify-commit runs with
 * GNUPGHOME set to it and gpg.minTrustLevel=undefined: every key in the file
 * is trusted, no other key is, and the user's own keyring is never read.
 * Only the upstream tip is verified (as Flux does); the checkout's HEAD must
 * verify at start.
 *
 * reconciler code never prints: everything goes to the report callback.
 */
#ifndef MQ_GITSYNC_H
#define MQ_GITSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "reconciler/loop.h"
#include "util/error.h"

/* What the CLI asks for (part of struct mq_watch_opts). */
struct mq_gitsync_cfg {
	bool enabled;
	int64_t interval_ms;       /* default 60000 */
	int64_t timeout_ms;        /* per git child, then it is killed; default 60000 */
	const char *keyring;       /* NULL: no signature verification */
};

/* outcome: "ok" (fast-forwarded), "current", "diverged", "refused",
 * "held", "failed".  Each distinct report is made once (until the state
 * changes).  event: the report belongs in the audit trail (the caller writes
 * an event `git-pull` with `commit` as its git commit); false for "current"
 * and "held", which only go to the log. */
typedef void (*mq_gitsync_report_fn)(void *ud, const char *outcome, const char *detail, const char *commit,
				     bool event);
/* The checkout is complete again after an update (or a hold ended): reload. */
typedef void (*mq_gitsync_reload_fn)(void *ud);

struct mq_gitsync_opts {
	struct mq_loop *loop;
	const char *const *paths;  /* the -f paths: all in one git work tree */
	size_t n_paths;
	const char *runtime_dir;   /* the private GnuPG home goes here */
	struct mq_gitsync_cfg cfg;
	mq_gitsync_report_fn report;
	mq_gitsync_reload_fn reload;
	void *ud;
};

struct mq_gitsync;

/* Check the setup, synchronously (before the loop runs): git found, every
 * path in one work tree, HEAD on a branch with an upstream, and with a
 * keyring: gpg found, at least one key imported, HEAD verifies.  Errors are
 * "cannot use --git-pull ...: why (how to fix)".  Nothing runs on the loop
 * until mq_gitsync_start(). */
int mq_gitsync_new(const struct mq_gitsync_opts *o, struct mq_gitsync **out, struct mq_error **err);
/* Start cycling: the first cycle begins on the next loop turn. */
void mq_gitsync_start(struct mq_gitsync *gs);
/* True while the checkout may be incomplete (our merge runs, or
 * .git/index.lock exists): do not read manifests now.  reload() is called
 * once it is complete again. */
bool mq_gitsync_hold(struct mq_gitsync *gs);
/* The work tree top and the upstream (e.g. "origin/main"), for messages. */
const char *mq_gitsync_top(const struct mq_gitsync *gs);
const char *mq_gitsync_upstream(const struct mq_gitsync *gs);
/* Kill a git child still running (its process group), reap it, remove the
 * private GnuPG home.  Accepts NULL, returns NULL. */
struct mq_gitsync *mq_gitsync_free(struct mq_gitsync *gs);

#endif
