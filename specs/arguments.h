/* arguments.h - the Python maqet's structured `arguments` -> QEMU argv
 * (the forms are listed at the top of arguments.c).
 *
 * Internal to specs/.
 */
#ifndef MQ_SPECS_ARGUMENTS_H
#define MQ_SPECS_ARGUMENTS_H

#include <stddef.h>

#include "specs/diag.h"
#include "specs/yamlread.h"
#include "util/strv.h"

/* One option rendered from `arguments`: its name without dashes and where it
 * was written. */
struct mq_argopt {
	char *name;
	int line, col;
	const char *file; /* NULL = the document's file */
};

struct mq_argopts {
	struct mq_argopt *v;
	size_t n, alloc;
};

void mq_argopts_release(struct mq_argopts *o);

/* Render the `arguments` node (a list, or a single mapping) into argv tokens
 * appended to out, recording each option in opts.  Options maqet owns,
 * reserved chardev ids and host paths are checked (specs/qemuopt.h); relative
 * host paths are made absolute against base_dir.  Errors go to d; returns
 * the number of errors added. */
int mq_arguments_render(const struct mq_ynode *node, const char *file, const char *base_dir, struct mq_diags *d,
			struct mq_strv *out, struct mq_argopts *opts);

#endif
