/* qemuopt.h - checks on one raw QEMU option written in `args` or
 * `arguments`: options maqet owns, chardev ids in maqet's namespace, and
 * every host path QEMU will open (system-directory policy, relative paths
 * resolved against the manifest's directory).
 *
 * The list of options and suboptions whose value is a host path is in
 * qemuopt.c (path_opts / the per-option rules) and in README.md.
 *
 * Internal to specs/.
 */
#ifndef MQ_SPECS_QEMUOPT_H
#define MQ_SPECS_QEMUOPT_H

#include <stdbool.h>

#include "specs/diag.h"

struct mq_qemuopt_ctx {
	const char *file;     /* displayed manifest name */
	const char *base_dir; /* relative paths resolve against it (absolute) */
	struct mq_diags *d;
	const char *where;    /* "args" or "arguments", for messages */
};

/* A located part of the manifest, for errors. */
struct mq_qemuopt_pos {
	int line, col;
};

/* Check option `name` (leading dashes removed, "M" already "machine" or
 * not) with its value (NULL when it has none).  Errors at `opt_pos` (the
 * option) or `val_pos` (its value) go to c->d; returns the number added.
 * When a host path in the value was relative, *rewritten is set to the value
 * with that path made absolute against c->base_dir (caller frees); otherwise
 * it is left NULL. */
int mq_qemuopt_check(const struct mq_qemuopt_ctx *c, const char *name, struct mq_qemuopt_pos opt_pos,
		     const char *value, struct mq_qemuopt_pos val_pos, char **rewritten);

/* True for QEMU options that never take a value (-S, -daemonize,
 * -enable-kvm, -nographic, -no-*, ...): used to walk raw `args`, where the
 * token after any other option is its value. */
bool mq_qemuopt_is_flag(const char *name);

#endif
