/* wtime: wall-clock plumbing for the `maqet watch` benchmarks.
 *
 * maqet watch stamps every log line with CLOCK_REALTIME in milliseconds, so
 * the moments the benchmarks compare against it are taken with the same clock,
 * right next to the syscall that starts the measured reaction:
 *
 *   wtime now
 *       print CLOCK_REALTIME in ms with 3 decimals ("1700000000123.456")
 *   wtime mv SRC DST
 *       read the clock, rename(SRC, DST), print the time read
 *   wtime kill SIG PID
 *       read the clock, kill(PID, SIG), print the time read
 *   wtime iso STAMP
 *       "YYYY-MM-DDTHH:MM:SS.mmmZ" (watch's log "time") as epoch ms
 *   wtime waitlog FILE OFFSET TIMEOUT_MS PATTERN...
 *       read FILE from byte OFFSET on, growing, until a complete line holds
 *       every PATTERN (a PATTERN "a|b" holds when "a" or "b" is a substring);
 *       print "<epoch ms of its "time" field> <byte offset after it> <line>".
 *       Re-reads every 2 ms (cheap: one read() on a quiet file).  Exit 1 on
 *       timeout.
 *   wtime procpoll INTERVAL_MS TIMEOUT_MS PID...
 *       the polling supervisor peer: every INTERVAL_MS, look at
 *       /proc/PID/stat of each PID; a PID whose entry is gone or whose state
 *       is Z (zombie) or X (dead) has died.  Print "<ms, 3 decimals> <pid>"
 *       (CLOCK_REALTIME when the death was noticed) and exit 0; exit 1 after
 *       TIMEOUT_MS with none dead.  The sleep is relative (nanosleep), like a
 *       `while kill -0 $pid; do sleep 0.1; done` loop, without its fork cost.
 *       A leader thread that is a zombie while the rest of the process still
 *       tears down counts as dead: the reading most favourable to the peer.
 *   wtime pidfdwait TIMEOUT_MS PID
 *       the kernel floor: pidfd_open(PID), print "armed", poll() the pidfd,
 *       print the time (ms, 3 decimals) it became readable -- the earliest
 *       moment any supervisor can know that the whole process exited.  Exit 1
 *       on timeout.
 *
 * Exit status 2 on usage or system error.
 * Built by the bench scripts:  cc -O2 -o wtime bench/wtime.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" -> epoch ms, -1 when malformed. */
static long long iso_ms(const char *s)
{
	struct tm tm;
	int ms = 0, n = 0;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
		   &tm.tm_sec, &ms, &n) != 7 ||
	    s[n] != 'Z')
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm) * 1000 + ms;
}

/* One PATTERN: alternatives separated by '|', any one a substring of line. */
static int holds(const char *line, const char *pat)
{
	char *copy = strdup(pat), *save = NULL;
	int ok = 0;
	for (char *a = strtok_r(copy, "|", &save); a && !ok; a = strtok_r(NULL, "|", &save))
		ok = strstr(line, a) != NULL;
	free(copy);
	return ok;
}

static int waitlog(const char *file, long long offset, long timeout, char **pats, int npats)
{
	static char buf[1 << 20];
	size_t len = 0;
	long long deadline = mono_ms() + timeout, pos = offset;
	int fd = -1;
	for (;;) {
		if (fd < 0)
			fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = pread(fd, buf + len, sizeof(buf) - 1 - len, pos + (long long)len);
			if (n > 0)
				len += (size_t)n;
			char *start = buf, *nl;
			while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
				*nl = '\0';
				int all = 1;
				for (int i = 0; i < npats && all; i++)
					all = holds(start, pats[i]);
				if (all) {
					const char *t = strstr(start, "\"time\":\"");
					long long ms = t ? iso_ms(t + 8) : -1;
					printf("%lld %lld %s\n", ms, pos + (nl + 1 - buf), start);
					return 0;
				}
				start = nl + 1;
			}
			size_t used = (size_t)(start - buf);
			memmove(buf, start, len - used);
			len -= used;
			pos += (long long)used;
			if (len == sizeof(buf) - 1)
				len = 0; /* an absurdly long line: skip it */
		}
		if (mono_ms() >= deadline)
			return 1;
		sleep_ms(2);
	}
}

/* 1 when /proc/PID says the process is gone (no entry, zombie or dead). */
static int gone(int pid)
{
	char path[64], st[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	ssize_t n = read(fd, st, sizeof(st) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	st[n] = '\0';
	const char *p = strrchr(st, ')'); /* comm may hold anything */
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static int procpoll(long interval, long timeout, char **pids, int npids)
{
	long long deadline = mono_ms() + timeout;
	for (;;) {
		for (int i = 0; i < npids; i++) {
			int pid = atoi(pids[i]);
			if (gone(pid)) {
				printf("%.3f %d\n", real_ms(), pid);
				return 0;
			}
		}
		if (mono_ms() >= deadline)
			return 1;
		sleep_ms(interval);
	}
}

static int pidfdwait(long timeout, int pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		fprintf(stderr, "wtime: pidfd_open %d: %s\n", pid, strerror(errno));
		return 2;
	}
	printf("armed\n");
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;
	while ((r = poll(&p, 1, (int)timeout)) < 0 && errno == EINTR)
		;
	if (r <= 0)
		return 1;
	printf("%.3f %d\n", real_ms(), pid);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "now") == 0) {
		printf("%.3f\n", real_ms());
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "mv") == 0) {
		double t = real_ms();
		if (rename(argv[2], argv[3]) < 0) {
			fprintf(stderr, "wtime: rename %s: %s\n", argv[2], strerror(errno));
			return 2;
		}
		printf("%.3f\n", t);
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "kill") == 0) {
		double t = real_ms();
		if (kill(atoi(argv[3]), atoi(argv[2])) < 0) {
			fprintf(stderr, "wtime: kill %s: %s\n", argv[3], strerror(errno));
			return 2;
		}
		printf("%.3f\n", t);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "iso") == 0) {
		long long ms = iso_ms(argv[2]);
		if (ms < 0)
			return 2;
		printf("%lld\n", ms);
		return 0;
	}
	if (argc >= 6 && strcmp(argv[1], "waitlog") == 0)
		return waitlog(argv[2], atoll(argv[3]), atol(argv[4]), argv + 5, argc - 5);
	if (argc == 4 && strcmp(argv[1], "pidfdwait") == 0)
		return pidfdwait(atol(argv[2]), atoi(argv[3]));
	if (argc >= 5 && strcmp(argv[1], "procpoll") == 0 && atol(argv[2]) > 0)
		return procpoll(atol(argv[2]), atol(argv[3]), argv + 4, argc - 4);
	fprintf(stderr, "usage: wtime now | mv SRC DST | kill SIG PID | iso STAMP\n"
			"       wtime waitlog FILE OFFSET TIMEOUT_MS PATTERN...\n"
			"       wtime procpoll INTERVAL_MS TIMEOUT_MS PID...\n"
			"       wtime pidfdwait TIMEOUT_MS PID\n");
	return 2;
}
