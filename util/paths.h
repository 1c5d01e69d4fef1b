/* paths.h - path helpers and maqet's directory layout. */
#ifndef MQ_PATHS_H
#define MQ_PATHS_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"

/* "a" + "/" + "b" (b absolute -> copy of b).  Caller frees. */
char *mq_path_join(const char *a, const char *b);
/* Directory part of a path ("." when none).  Caller frees. */
char *mq_path_dirname(const char *p);
/* mkdir -p with mode for every created component.  "" is -ENOENT. */
int mq_mkdir_p(const char *path, mode_t mode, struct mq_error **err);
/* Resolve as much of `path` as exists through realpath() and append the rest
 * lexically (".." and "." folded).  Works for files that do not exist yet.
 * path must be absolute; "" resolves to "/".  Caller frees. */
char *mq_path_resolve(const char *path);
/* True when an absolute, resolved path lies in a system directory where maqet
 * must not place disks or shares (/etc, /usr, /bin, /sbin, /lib*, /boot,
 * /proc, /sys, /dev, /root, /var except /var/tmp) or is "/" itself.  "" and
 * relative paths are not resolved paths and are refused too. */
bool mq_path_is_system(const char *resolved);

/* Default state directory: $MAQET_STATE_DIR, else $XDG_STATE_HOME/maqet, else
 * $HOME/.local/state/maqet.  Caller frees. */
char *mq_default_state_dir(void);
/* Short runtime directory for sockets and logs belonging to state dir
 * `state_dir` (absolute): $MAQET_RUNTIME_DIR if set, else
 * $XDG_RUNTIME_DIR/maqet-<id8> if XDG_RUNTIME_DIR is set and short, else
 * /tmp/maqet-<uid>-<id8>, where id8 = first 8 hex chars of sha256(state_dir).
 * Caller frees.  Does not create it. */
char *mq_runtime_dir_for(const char *state_dir);

#endif
