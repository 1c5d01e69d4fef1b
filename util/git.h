/* git.h - the commit checked out in the git work tree holding a path.
 *
 * The .git files (HEAD, loose refs, packed-refs, the `.git` file of linked
 * worktrees and submodules, commondir) are read directly: the git binary is
 * never run.  Reads are capped, and ref names that could escape the git
 * directory are not followed.  Nothing is cached: every call reads the files
 * again (callers cache per pass if they want to, see reconciler/audit.h).
 */
#ifndef MQ_GIT_H
#define MQ_GIT_H

/* The git commit (full hex, lowercase) of the work tree containing `path`
 * (file or dir; a file need not exist, its directory counts), read from
 * .git/HEAD and refs (loose or packed) without running git; NULL when not
 * inside a git work tree or when HEAD cannot be resolved.  Caller frees. */
char *mq_git_commit_for(const char *path);

#endif
