/* Replay driver for libFuzzer-style targets: runs LLVMFuzzerTestOneInput()
 * over every regular file in the directories/files given on the command line.
 * Under meson test this replays the committed corpus as an ordinary test (a
 * crash, a sanitizer report or a hang fails it).  Built with
 * -fsanitize=fuzzer instead, the target file is used without this driver. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fileio.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	struct mq_error *err = NULL;
	if (mq_read_file(path, 16 * 1024 * 1024, &buf, &len, &err) < 0) {
		fprintf(stderr, "replay: %s\n", err->msg);
		mq_error_free(err);
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: cannot stat '%s'\n", argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 1;
			files++;
			continue;
		}
		struct dirent **ents = NULL;
		int n = scandir(argv[i], &ents, NULL, alphasort);
		if (n < 0) {
			fprintf(stderr, "replay: cannot read '%s'\n", argv[i]);
			return 1;
		}
		for (int k = 0; k < n; k++) {
			if (ents[k]->d_name[0] != '.') {
				char *p = xasprintf("%s/%s", argv[i], ents[k]->d_name);
				if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
					if (run_file(p) < 0)
						return 1;
					files++;
				}
				free(p);
			}
			free(ents[k]);
		}
		free(ents);
	}
	if (files == 0) {
		fprintf(stderr, "replay: no corpus files found\n");
		return 1;
	}
	printf("replayed %d corpus files\n", files);
	return 0;
}
