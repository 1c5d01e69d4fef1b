/* proc-sample - sample the process table for the multi-host tests.
 *
 *   proc-sample OUT STOPFILE INTERVAL_MS < PATTERNS
 *
 * Reads up to 16 patterns from stdin, one per line (not from argv, so that
 * neither this process nor a pgrep of the test matches its own command
 * line).  Every INTERVAL_MS, scans /proc and appends one line to OUT: per
 * pattern, the number of live processes (not zombies) whose command line
 * (arguments joined by spaces) contains it, space-separated.  Stops when
 * STOPFILE exists.  A scan that takes longer than INTERVAL_MS (a loaded
 * machine) is followed by the next one at once.  A shell loop around pgrep cannot keep a 10 ms pace: each fork
 * and exec costs more than that on a loaded machine.
 * Exit 0 when stopped, 2 on a usage or system error.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static ssize_t read_small(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = '\0';
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: proc-sample OUT STOPFILE INTERVAL_MS < PATTERNS\n");
		return 2;
	}
	static char pats[16][512];
	int np = 0;
	while (np < 16 && fgets(pats[np], sizeof(pats[np]), stdin)) {
		pats[np][strcspn(pats[np], "\n")] = '\0';
		if (pats[np][0])
			np++;
	}
	if (np == 0) {
		fprintf(stderr, "proc-sample: no patterns on stdin\n");
		return 2;
	}
	char self[32];
	snprintf(self, sizeof(self), "%d", (int)getpid());
	FILE *out = fopen(argv[1], "a");
	if (!out) {
		perror(argv[1]);
		return 2;
	}
	long interval = strtol(argv[3], NULL, 10);
	if (interval < 1)
		interval = 10;
	long counts[16];
	static char buf[65536];
	char path[300];
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (access(argv[2], F_OK) != 0) {
		memset(counts, 0, sizeof(counts));
		DIR *d = opendir("/proc");
		if (!d) {
			perror("/proc");
			return 2;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] < '0' || e->d_name[0] > '9' || strcmp(e->d_name, self) == 0)
				continue;
			/* a zombie's command line is empty: it is not counted */
			snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
			ssize_t n = read_small(path, buf, sizeof(buf));
			if (n <= 0)
				continue;
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] == '\0')
					buf[i] = ' ';
			for (int k = 0; k < np; k++)
				if (strstr(buf, pats[k]))
					counts[k]++;
		}
		closedir(d);
		for (int k = 0; k < np; k++)
			fprintf(out, "%s%ld", k ? " " : "", counts[k]);
		fputc('\n', out);
		fflush(out);
		/* the next sample INTERVAL_MS after this one began (at once when
		 * the scan took longer) */
		next.tv_nsec += (interval % 1000) * 1000000L;
		next.tv_sec += interval / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now;
		else
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	fclose(out);
	return 0;
}
