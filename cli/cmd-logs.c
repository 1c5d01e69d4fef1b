/* maqet logs NAME [-f] [-n N] [--qemu]: the serial log or QEMU's own log.
 *
 * -f follows with inotify on the runtime dir (no sleep loop): appended data
 * is printed as it arrives, and when the log is rotated or recreated (the VM
 * restarted) the old file is read to its end and the new one from its start;
 * a copy-truncate rotation (logrot.h) is seen as the file shrinking under
 * the read offset, and reading starts over at 0.
 *
 * A log over the cap is rotated after it was printed (logrot.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/vmrec.h"
#include "reconciler/logrot.h"
#include "util/parse.h"
#include "util/paths.h"
#include "util/xalloc.h"

static int run_logs(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_logs = {
	.name = "logs",
	.summary = "print a VM's serial console log (or QEMU's log), optionally following it",
	.usage = "usage: maqet logs NAME [-f] [-n N] [--qemu] [--state-dir DIR]\n"
		 "\n"
		 "Print the VM's serial console log (<runtime>/NAME.serial.log), or with\n"
		 "--qemu QEMU's own output (<runtime>/NAME.qemu.log).  A log never grows\n"
		 "without bound: over the cap (8 MiB, or MAQET_LOG_CAP) its content moves\n"
		 "to NAME.*.log.1 (replacing the older .1) when the VM starts, every\n"
		 "second under 'maqet watch', after 'maqet apply', and after this command\n"
		 "printed it.\n"
		 "\n"
		 "  -n, --lines N  only the last N lines\n"
		 "  -f, --follow   keep printing what is appended (also across a restart of\n"
		 "                 the VM) until interrupted\n"
		 "      --qemu     QEMU's log instead of the serial console\n",
	.run = run_logs,
};

static int out_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Offset where the last `lines` lines of fd begin (size = file size). */
static off_t tail_offset(int fd, off_t size, unsigned lines)
{
	char buf[65536];
	off_t pos = size;
	unsigned seen = 0;
	bool first = true;
	while (pos > 0) {
		size_t chunk = pos > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)pos;
		pos -= (off_t)chunk;
		ssize_t n = pread(fd, buf, chunk, pos);
		if (n <= 0)
			return 0;
		for (ssize_t i = n - 1; i >= 0; i--) {
			if (buf[i] != '\n')
				continue;
			/* a final newline ends the last line, it does not start one */
			if (first && pos + i == size - 1) {
				first = false;
				continue;
			}
			first = false;
			if (++seen == lines)
				return pos + i + 1;
		}
		first = false;
	}
	return 0;
}

/* Copy fd from its current offset to its end. */
static int drain(int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		int r = out_all(buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

static int follow(struct mq_cli *cli, const char *path, int fd)
{
	char *dir = mq_path_dirname(path);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int in = inotify_init1(IN_CLOEXEC);
	if (in < 0 || inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		mq_cli_err(cli, "cannot follow '%s': inotify: %s", path, strerror(errno));
		free(dir);
		if (in >= 0)
			close(in);
		return MQ_EXIT_FAILURE;
	}
	free(dir);
	/* written between the first drain and the watch (and a rotation of
	 * ours just before: the file shrank under our offset) */
	struct stat st0;
	if (fd >= 0 && fstat(fd, &st0) == 0 && lseek(fd, 0, SEEK_CUR) > st0.st_size)
		lseek(fd, 0, SEEK_SET);
	if (fd >= 0 && drain(fd) < 0)
		goto out;
	for (;;) {
		char ev[sizeof(struct inotify_event) + NAME_MAX + 1] __attribute__((aligned(8)));
		ssize_t n = read(in, ev, sizeof(ev));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			mq_cli_err(cli, "cannot follow '%s': %s", path, strerror(errno));
			break;
		}
		for (char *p = ev; p < ev + n;) {
			struct inotify_event *ie = (struct inotify_event *)p;
			p += sizeof(*ie) + ie->len;
			if (!ie->len || strcmp(ie->name, base) != 0)
				continue;
			if (ie->mask & (IN_CREATE | IN_MOVED_TO)) {
				/* a new file under the name: finish the old one, then start over */
				if (fd >= 0) {
					(void)drain(fd);
					close(fd);
				}
				fd = open(path, O_RDONLY | O_CLOEXEC);
			} else if (fd < 0) {
				fd = open(path, O_RDONLY | O_CLOEXEC);
			}
			if (fd < 0)
				continue;
			struct stat st;
			off_t cur = lseek(fd, 0, SEEK_CUR);
			if (fstat(fd, &st) == 0 && cur > st.st_size) /* truncated */
				lseek(fd, 0, SEEK_SET);
			if (drain(fd) < 0)
				goto out;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	close(in);
	return MQ_EXIT_FAILURE;
}

static int run_logs(struct mq_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lines", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ "qemu", no_argument, NULL, 'Q' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned lines = 0;
	bool fol = false, qemu = false, lines_set = false;
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "n:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (mq_parse_uint(optarg, 0, 100000000, &lines) < 0)
				return mq_cli_usage_error(cli, &mq_cmd_logs, "invalid --lines '%s'", optarg);
			lines_set = true;
			break;
		case 'f':
			fol = true;
			break;
		case 'Q':
			qemu = true;
			break;
		case 'S':
			if (mq_cli_state_dir_option(cli, &mq_cmd_logs, optarg) >= 0)
				return MQ_EXIT_USAGE;
			break;
		case 'h':
			fputs(mq_cmd_logs.usage, stdout);
			return MQ_EXIT_OK;
		default:
			return mq_cli_usage_error(cli, &mq_cmd_logs, "invalid option");
		}
	}
	if (optind >= argc)
		return mq_cli_usage_error(cli, &mq_cmd_logs, "no vm name given");
	if (optind + 1 < argc)
		return mq_cli_usage_error(cli, &mq_cmd_logs, "too many arguments");
	const char *name = argv[optind];
	struct mq_cli_vm vm;
	int rc = mq_cli_vm_load(cli, name, "read the logs of", &vm);
	if (rc)
		return rc;
	if (!qemu && vm.spec->serial != MQ_SERIAL_LOG) {
		mq_cli_err(cli, "cannot read the logs of vm '%s': its serial console is off (serial: none); "
				"QEMU's own log is 'maqet logs --qemu %s'", name, name);
		mq_cli_vm_release(&vm);
		return MQ_EXIT_FAILURE;
	}
	const char *path = qemu ? vm.paths.qemu_log : vm.paths.serial_log;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (errno != ENOENT || !fol)) {
		if (errno == ENOENT)
			mq_cli_err(cli, "cannot read the logs of vm '%s': no log yet ('%s': the vm never ran here)", name,
				   path);
		else
			mq_cli_err(cli, "cannot read the logs of vm '%s': cannot open '%s': %s", name, path,
				   strerror(errno));
		mq_cli_vm_release(&vm);
		return MQ_EXIT_FAILURE;
	}
	if (fd >= 0) {
		struct stat st;
		off_t start = 0;
		if (fstat(fd, &st) == 0) {
			if (lines_set && lines == 0)
				start = st.st_size;
			else if (lines_set)
				start = tail_offset(fd, st.st_size, lines);
		}
		lseek(fd, start, SEEK_SET);
		if (drain(fd) < 0 && errno != EPIPE) {
			close(fd);
			mq_cli_vm_release(&vm);
			return MQ_EXIT_FAILURE;
		}
	}
	if (mq_log_is_vm_log(strrchr(path, '/') ? strrchr(path, '/') + 1 : path)) {
		int rr = mq_log_rotate_live(path, mq_log_cap());
		if (rr < 0)
			mq_cli_err(cli, "warning: cannot rotate log '%s': %s", path, strerror(-rr));
	}
	if (fol) {
		char *p = xstrdup(path);
		mq_cli_vm_release(&vm);
		rc = follow(cli, p, fd);
		free(p);
		return rc;
	}
	close(fd);
	mq_cli_vm_release(&vm);
	return MQ_EXIT_OK;
}
