/* rusage: run a command, report its wall time and peak RSS.
 *
 *   rusage [-r RESULT] [-o OUT] [-q] -- COMMAND [ARG...]
 *
 * fork()s, execvp()s COMMAND, waits for it with wait4() and prints one line
 *
 *   wall_us=<µs, CLOCK_MONOTONIC from just before fork to wait4 return> maxrss_kb=<ru_maxrss> status=<exit status>
 *
 * to stderr, or to the file RESULT with -r.  The child keeps stdout and stderr;
 * -o OUT sends its stdout to OUT, -q sends its stdout and stderr to /dev/null.
 * ru_maxrss is the peak resident set of the child; descendants it waited for
 * count into that maximum too (the kernel folds them in), descendants it left
 * running (QEMU after `maqet apply`) do not.
 * Exit status: the child's exit status (128+signal when killed), 125 when the
 * runner itself failed, 127 when COMMAND could not be executed.
 *
 * Built by the bench scripts:  cc -O2 -o rusage bench/rusage.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	const char *out = NULL, *res = NULL;
	int quiet = 0, c;
	while ((c = getopt(argc, argv, "+r:o:q")) != -1) {
		switch (c) {
		case 'r':
			res = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			fprintf(stderr, "usage: rusage [-r RESULT] [-o OUT] [-q] -- COMMAND [ARG...]\n");
			return 125;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: rusage [-r RESULT] [-o OUT] [-q] -- COMMAND [ARG...]\n");
		return 125;
	}
	int outfd = -1;
	if (out || quiet) {
		outfd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (outfd < 0) {
			fprintf(stderr, "rusage: cannot open '%s': %s\n", out ? out : "/dev/null", strerror(errno));
			return 125;
		}
	}

	long long t0 = now_us();
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "rusage: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		if (outfd >= 0) {
			dup2(outfd, 1);
			if (quiet)
				dup2(outfd, 2);
		}
		execvp(argv[optind], &argv[optind]);
		fprintf(stderr, "rusage: cannot exec '%s': %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	int st = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof(ru));
	while (wait4(pid, &st, 0, &ru) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "rusage: wait4: %s\n", strerror(errno));
			return 125;
		}
	}
	long long t1 = now_us();
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 125;
	FILE *rf = res ? fopen(res, "w") : stderr;
	if (!rf) {
		fprintf(stderr, "rusage: cannot open '%s': %s\n", res, strerror(errno));
		return 125;
	}
	fprintf(rf, "wall_us=%lld maxrss_kb=%ld status=%d\n", t1 - t0, ru.ru_maxrss, rc);
	if (rf != stderr && fclose(rf) != 0)
		return 125;
	return rc;
}
