/* maqet console NAME: the VM's serial console on this terminal.
 *
 * QEMU serves the serial port on <rt>/<name>.console (a socket chardev that
 * also appends everything to <name>.serial.log), so the console is logged
 * whether or not someone is attached.  This client holds no maqet lock:
 * `maqet stop` never waits for it; when QEMU exits the socket closes and the
 * console ends.  The terminal goes to raw mode and is restored on every exit
 * path: detach (Ctrl-]), end of input, the VM going away, and SIGINT,
 * SIGTERM, SIGHUP, SIGQUIT (taken through a signalfd, then restored).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cli/vmrec.h"
#include "reconciler/phase.h"

#define DETACH_BYTE 0x1d /* Ctrl-] */

static int run_console(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_console = {
	.name = "console",
	.summary = "attach this terminal to a VM's serial console (detach with Ctrl-])",
	.usage = "usage: maqet console NAME [--state-dir DIR]\n"
		 "\n"
		 "Attach the terminal to the serial console of a running VM (serial: log).\n"
		 "The terminal is put in raw mode: every key, Ctrl-C included, goes to the\n"
		 "guest.  Ctrl-] detaches and restores the terminal; so do SIGINT, SIGTERM,\n"
		 "SIGHUP and the VM stopping.  The console stays logged in the serial log\n"
		 "('maqet logs NAME') while attached or not.  One console at a time: a\n"
		 "second one waits until the first detaches.  Holds no lock: 'maqet stop'\n"
		 "is never blocked by an open console.\n"
		 "\n"
		 "exit status: 0 detached or end of input, 1 error or the VM went away,\n"
		 "128+N on signal N.\n",
	.run = run_console,
};

static int write_all_fd(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pf = { .fd = fd, .events = POLLOUT };
				(void)poll(&pf, 1, 1000);
				continue;
			}
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int run_console(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			if (mq_cli_state_dir_option(cli, &mq_cmd_console, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case 'h':
			fputs(mq_cmd_console.usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, &mq_cmd_console, "invalid option");
		}
	}
	if (optind >= argc)
		return mq_cli_usage_error(cli, &mq_cmd_console, "no vm name given");
	if (optind + 1 < argc)
		return mq_cli_usage_error(cli, &mq_cmd_console, "too many arguments");
	const char *name = argv[optind];

	struct mq_cli_vm vm;
	int rc = mq_cli_vm_load(cli, name, "attach to", &vm);
	if (rc)
		return rc;
	enum mq_phase ph = mq_phase_get(vm.rec);
	if (vm.spec->serial != MQ_SERIAL_LOG) {
		mq_cli_err(cli, "cannot attach to vm '%s': its serial console is off (set 'serial: log' in the manifest)",
			   name);
		mq_cli_vm_release(&vm);
		return MQ_EXIT_FAILURE;
	}
	if (!mq_phase_is_up(ph)) {
		mq_cli_err(cli, "cannot attach to vm '%s': not running (phase %s; start it with 'maqet start %s')", name,
			   mq_phase_name(ph), name);
		mq_cli_vm_release(&vm);
		return MQ_EXIT_FAILURE;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(vm.paths.console) >= sizeof(sa.sun_path)) {
		mq_cli_err(cli, "cannot attach to vm '%s': socket path '%s' is too long", name, vm.paths.console);
		mq_cli_vm_release(&vm);
		return MQ_EXIT_FAILURE;
	}
	memcpy(sa.sun_path, vm.paths.console, strlen(vm.paths.console) + 1);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		mq_cli_err(cli, "cannot attach to vm '%s': cannot connect to '%s': %s%s", name, vm.paths.console,
			   strerror(e),
			   e == ENOENT ? " (a QEMU started by an older maqet has no console socket: restart the vm)"
			   : e == ECONNREFUSED ? " (nothing listens: is its qemu gone? see 'maqet doctor')"
					       : "");
		if (sock >= 0)
			close(sock);
		mq_cli_vm_release(&vm);
		return MQ_EXIT_FAILURE;
	}

	/* Signals arrive through a signalfd so that the terminal is restored
	 * by the code below, never inside a handler. */
	sigset_t mask, oldmask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	struct termios saved;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		struct termios raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	fprintf(stderr, "maqet: connected to the console of '%s'; detach with Ctrl-]%s", name, tty ? "\r\n" : "\n");

	enum { END_DETACH, END_EOF, END_CLOSED, END_SIGNAL, END_ERROR } end = END_ERROR;
	int signo = 0, eno = 0;
	char buf[4096];
	for (;;) {
		struct pollfd pf[3] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = sock, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			eno = errno;
			break;
		}
		if (pf[2].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				signo = (int)si.ssi_signo;
				end = END_SIGNAL;
				break;
			}
		}
		if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(sock, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				eno = n < 0 ? errno : 0;
				end = END_CLOSED;
				break;
			}
			if (n > 0 && write_all_fd(STDOUT_FILENO, buf, (size_t)n) < 0) {
				eno = errno;
				break;
			}
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				end = END_EOF;
				break;
			}
			if (n > 0) {
				char *d = memchr(buf, DETACH_BYTE, (size_t)n);
				size_t len = d ? (size_t)(d - buf) : (size_t)n;
				if (len && write_all_fd(sock, buf, len) < 0) {
					eno = errno;
					end = END_CLOSED;
					break;
				}
				if (d) {
					end = END_DETACH;
					break;
				}
			}
		}
	}
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	close(sock);
	if (sfd >= 0)
		close(sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);

	switch (end) {
	case END_DETACH:
		fprintf(stderr, "\nmaqet: detached from the console of '%s'\n", name);
		rc = MQ_EXIT_OK;
		break;
	case END_EOF:
		fprintf(stderr, "\nmaqet: end of input: detached from the console of '%s'\n", name);
		rc = MQ_EXIT_OK;
		break;
	case END_CLOSED:
		fputc('\n', stderr);
		mq_cli_err(cli, "console of vm '%s' closed%s%s (the vm stopped?)", name, eno ? ": " : "",
			   eno ? strerror(eno) : "");
		rc = MQ_EXIT_FAILURE;
		break;
	case END_SIGNAL:
		fprintf(stderr, "\nmaqet: %s: detached from the console of '%s'\n", strsignal(signo), name);
		rc = 128 + signo;
		break;
	case END_ERROR:
	default:
		mq_cli_err(cli, "console of vm '%s': %s", name, strerror(eno ? eno : EIO));
		rc = MQ_EXIT_FAILURE;
		break;
	}
	mq_cli_vm_release(&vm);
	return rc;
}
