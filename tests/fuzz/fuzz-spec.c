/* fuzz-spec.c - fuzz target: arbitrary bytes -> mq_spec_parse_buffer().
 * Built with replay.c it replays tests/fuzz/corpus-spec/ under meson test;
 * built with -fsanitize=fuzzer it is an ordinary libFuzzer target. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "specs/spec.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * MQ_MANIFEST_MAX_BYTES)
		return 0;
	char *buf = xmalloc(size + 1);
	if (size)
		memcpy(buf, data, size);
	buf[size] = '\0';
	struct mq_specset *set = mq_specset_new();
	struct mq_strv diags = MQ_STRV_INIT;
	if (mq_spec_parse_buffer(buf, size, "fuzz.yaml", "/tmp/maqet-fuzz", "/tmp/maqet-fuzz", set, &diags) == 0) {
		/* valid input: set-level checks and the canonical form must hold */
		mq_specset_check(set, &diags);
		for (size_t i = 0; i < set->n; i++)
			if (!set->specs[i]->canonical || strlen(set->specs[i]->hash) != 64)
				abort();
	} else if (diags.n == 0) {
		abort(); /* rejected without saying why */
	}
	mq_strv_clear(&diags);
	mq_specset_free(set);
	free(buf);
	return 0;
}
