/* diag.h - manifest diagnostics: a list of "FILE:LINE:COL: message" kept
 * apart so the whole set can be sorted before it is handed to the caller,
 * plus the did-you-mean and quoting helpers every message uses.
 *
 * Internal to specs/ (the public contract is spec.h).  Never prints.
 */
#ifndef MQ_SPECS_DIAG_H
#define MQ_SPECS_DIAG_H

#include <stddef.h>

#include "util/strv.h"

struct mq_diag {
	char *file;   /* displayed file name */
	int line, col; /* 1-based; line 0 = whole file ("FILE: message") */
	size_t seq;   /* insertion order, for a stable sort */
	char *msg;
};

struct mq_diags {
	struct mq_diag *v;
	size_t n, alloc;
};

/* Append one diag; control characters in the message become '?' so each
 * diag stays on one printable line (names come from hostile input). */
void mq_diags_add(struct mq_diags *d, const char *file, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Sort by file, line, col (stable), append "FILE:LINE:COL: msg" to out
 * (may be NULL) and empty d. */
void mq_diags_flush(struct mq_diags *d, struct mq_strv *out);
void mq_diags_release(struct mq_diags *d);

/* Closest candidate to `word` (optimal string alignment distance), or NULL
 * when none is close enough to suggest. */
const char *mq_did_you_mean(const char *word, const char *const *candidates, size_t n);

/* A short quotable copy of hostile text: at most 60 bytes, cut on a UTF-8
 * character boundary and ended with "...".  Caller frees. */
char *mq_clip(const char *s);

/* strerror(e) starting lowercase, for messages.  Caller frees. */
char *mq_strerror_lower(int e);

#endif
