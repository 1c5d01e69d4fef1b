/* pty-run: run a command on a fresh pseudo-terminal, for the console tests.
 *
 *   pty-run OUTFILE CMD [ARG...]
 *
 * The child gets the pty's slave as its controlling terminal and stdio.
 * pty-run copies its own stdin to the pty master (what a user types) and the
 * master's output to OUTFILE (flushed at once, so a test can wait for text
 * in it).  It keeps a descriptor of the slave open, so the terminal settings
 * outlive the child: when the child exits, pty-run compares them with those
 * it set up at the start and prints "termios: restored" or
 * "termios: changed" on stderr, then exits with the child's status (128+N
 * for a signal).  SIGTERM/SIGINT to pty-run are passed on to the child.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static pid_t child;

static void pass_on(int sig)
{
	if (child > 0)
		kill(child, sig);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pty-run OUTFILE CMD [ARG...]\n");
		return 64;
	}
	int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		perror(argv[1]);
		return 1;
	}
	int master, slave;
	struct termios start;
	memset(&start, 0, sizeof(start));
	if (openpty(&master, &slave, NULL, NULL, NULL) < 0) {
		perror("openpty");
		return 77;
	}
	fcntl(master, F_SETFD, FD_CLOEXEC);
	tcgetattr(slave, &start);
	child = fork();
	if (child == 0) {
		close(master);
		setsid();
		ioctl(slave, TIOCSCTTY, 0);
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		if (slave > 2)
			close(slave);
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	signal(SIGTERM, pass_on);
	signal(SIGINT, pass_on);
	signal(SIGPIPE, SIG_IGN);
	int in_open = 1, status = 0, done = 0;
	char buf[4096];
	while (!done) {
		struct pollfd pf[2] = { { .fd = master, .events = POLLIN }, { .fd = in_open ? 0 : -1, .events = POLLIN } };
		int r = poll(pf, 2, 100);
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && (pf[0].revents & POLLIN)) {
			ssize_t n = read(master, buf, sizeof(buf));
			if (n > 0)
				(void)!write(out, buf, (size_t)n);
		}
		if (r > 0 && (pf[1].revents & (POLLIN | POLLHUP))) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0)
				in_open = 0; /* keep the pty open: the child decides when to end */
			else
				(void)!write(master, buf, (size_t)n);
		}
		if (waitpid(child, &status, WNOHANG) == child)
			done = 1;
	}
	/* what is left in the master after the child's exit */
	for (;;) {
		struct pollfd pf = { .fd = master, .events = POLLIN };
		if (poll(&pf, 1, 50) <= 0 || !(pf.revents & POLLIN))
			break;
		ssize_t n = read(master, buf, sizeof(buf));
		if (n <= 0)
			break;
		(void)!write(out, buf, (size_t)n);
	}
	struct termios end;
	tcgetattr(slave, &end);
	int same = start.c_iflag == end.c_iflag && start.c_oflag == end.c_oflag && start.c_lflag == end.c_lflag &&
		   start.c_cflag == end.c_cflag;
	fprintf(stderr, "termios: %s\n", same ? "restored" : "changed");
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
