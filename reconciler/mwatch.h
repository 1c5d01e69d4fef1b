/* mwatch.h - inotify watcher over manifest paths (files and directories).
 *
 * Watches every directory under the given paths recursively (directories
 * created later included) and, for file arguments, the file's parent
 * directory filtered to that file's name, so saving through
 * rename-into-place works.  Only events that can change the manifest set
 * count: writes, creates, renames in and out, deletes of *.yaml / *.yml
 * files, and creation/removal/rename of directories under a watched
 * directory.  Dotfiles, dot-directories, editor swap/backup files
 * (*~, #*#, .#*, *.swp, *.swx, *.tmp, 4913) and non-YAML files are ignored.
 *
 * Half-written files: a file that got IN_MODIFY (or IN_OPEN for writing)
 * without IN_CLOSE_WRITE yet is "being written"; mq_mwatch_due() stays
 * false while any such file exists (up to a cap, see below), so a
 * truncate-then-write save is never read half-way.
 *
 * The single-threaded caller owns the poll loop:
 *   pfd.fd = mq_mwatch_fd(w); ... when readable: mq_mwatch_dispatch(w, now)
 *   then use mq_mwatch_deadline(w) (CLOCK_MONOTONIC ms, or -1) for its timer,
 *   and when mq_mwatch_due(w, now) is true, run a pass and call
 *   mq_mwatch_consume(w).
 */
#ifndef MQ_MWATCH_H
#define MQ_MWATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"
#include "util/strv.h"

struct mq_mwatch;

struct mq_mwatch_opts {
	int settle_ms;           /* quiet time after the last relevant event; default 100 */
	int max_writer_wait_ms;  /* how long an unclosed writer may delay a pass; default 2000 */
};

/* paths: as given to -f.  Non-existent paths are an error (-ENOENT, message). */
int mq_mwatch_new(const char *const *paths, size_t n, const struct mq_mwatch_opts *opts,
		  struct mq_mwatch **out, struct mq_error **err);
struct mq_mwatch *mq_mwatch_free(struct mq_mwatch *w);
/* Also watch file `path` (its parent directory filtered to its name), as if
 * it had been given as one more path: the shared bases (`extends`) that lie
 * outside the -f paths.  Watching the same file again is a no-op.  Returns 0
 * or a negative errno with err set (then nothing was added). */
int mq_mwatch_add_file(struct mq_mwatch *w, const char *path, struct mq_error **err);
int mq_mwatch_fd(const struct mq_mwatch *w);   /* inotify fd (O_NONBLOCK|O_CLOEXEC) */

/* Read and process all pending inotify events.  now = mq_mono_ms(). */
void mq_mwatch_dispatch(struct mq_mwatch *w, int64_t now);
/* A relevant change is pending (settle window running or elapsed). */
bool mq_mwatch_pending(const struct mq_mwatch *w);
/* An IN_Q_OVERFLOW (or a watched root vanishing and coming back) asked for a
 * full resync; watches have been re-added. Cleared by consume. */
bool mq_mwatch_overflowed(const struct mq_mwatch *w);
/* When the pending change is due (monotonic ms), or -1 when nothing pends. */
int64_t mq_mwatch_deadline(const struct mq_mwatch *w);
/* Pending change whose settle window elapsed and no writer is open (or the
 * writer cap passed). */
bool mq_mwatch_due(const struct mq_mwatch *w, int64_t now);
/* Mark the pending change as handled (called when a pass starts). */
void mq_mwatch_consume(struct mq_mwatch *w);
/* Names (relative to their watched root) of files seen changing since the
 * last consume, for logging; may be empty after an overflow. */
const struct mq_strv *mq_mwatch_changed(const struct mq_mwatch *w);
/* Number of inotify watches held (for tests and benchmarks). */
size_t mq_mwatch_nwatches(const struct mq_mwatch *w);

/* The file-name filter is mq_manifest_name_ok() from specs/spec.h, shared
 * with the loader so both agree on what a manifest is. */

#endif
