/* maqet screendump NAME FILE: the VM's screen as a PNG, written by maqet. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/vmqmp.h"
#include "util/paths.h"
#include "util/xalloc.h"

static int run_screendump(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_screendump = {
	.name = "screendump",
	.summary = "save a VM's screen as a PNG file",
	.usage = "usage: maqet screendump NAME FILE [--state-dir DIR]\n"
		 "\n"
		 "Save the VM's display as PNG into FILE (relative to the working directory).\n"
		 "QEMU writes into a private file of maqet's runtime directory (QMP\n"
		 "'screendump' with format png, QEMU 7.1 or newer); maqet checks it is a PNG\n"
		 "and copies it to FILE as the calling user.  QEMU never writes a path the\n"
		 "caller chose.\n",
	.run = run_screendump,
};

static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

/* Copy the PNG at tmp into dst (created with the caller's ownership and
 * umask, replaced atomically).  0 or -errno with *err. */
static int copy_png(const char *tmp, const char *dst, struct mq_error **err)
{
	int in = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return mq_error_set(err, errno, "cannot read qemu's screendump '%s': %s", tmp, strerror(errno));
	unsigned char head[8];
	ssize_t got = read(in, head, sizeof(head));
	if (got != (ssize_t)sizeof(head) || memcmp(head, png_sig, sizeof(head)) != 0) {
		close(in);
		return mq_error_set(err, EPROTO, "qemu's screendump is not a PNG (qemu 7.1 or newer writes PNG)");
	}
	char *dir = mq_path_dirname(dst);
	char *part = xasprintf("%s/.%s.XXXXXX", dir, strrchr(dst, '/') ? strrchr(dst, '/') + 1 : dst);
	free(dir);
	int out = mkostemp(part, O_CLOEXEC);
	if (out < 0) {
		int e = errno;
		close(in);
		mq_error_set(err, e, "cannot create '%s': %s", dst, strerror(e));
		free(part);
		return -e;
	}
	mode_t um = umask(0);
	umask(um);
	int r = fchmod(out, 0666 & ~um) < 0 ? -errno : 0;
	if (r == 0 && write(out, head, sizeof(head)) != (ssize_t)sizeof(head))
		r = -EIO;
	char buf[65536];
	while (r == 0) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n && r == 0;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno != EINTR)
				r = -errno;
			else if (w > 0)
				off += w;
		}
	}
	close(in);
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(part, dst) < 0)
		r = -errno;
	if (r < 0) {
		unlink(part);
		mq_error_set(err, -r, "cannot write '%s': %s", dst, strerror(-r));
	}
	free(part);
	return r;
}

static int run_screendump(struct mq_cli *cli, int argc, char **argv)
{
	const struct mq_cmd *cmd = &mq_cmd_screendump;
	int prc = mq_cli_parse_plain(cli, cmd, argc, argv);
	if (prc >= 0)
		return prc;
	if (optind >= argc)
		return mq_cli_usage_error(cli, cmd, "missing vm name");
	if (optind + 1 >= argc)
		return mq_cli_usage_error(cli, cmd, "missing output file");
	if (optind + 2 < argc)
		return mq_cli_usage_error(cli, cmd, "too many arguments");
	const char *name = argv[optind], *file = argv[optind + 1];
	if (!*file)
		return mq_cli_usage_error(cli, cmd, "empty output file");
	char *dst;
	if (file[0] == '/') {
		dst = xstrdup(file);
	} else {
		char *cwd = getcwd(NULL, 0);
		if (!cwd) {
			mq_cli_err(cli, "cannot read the working directory: %s", strerror(errno));
			return MQ_EXIT_FAILURE;
		}
		dst = mq_path_join(cwd, file);
		free(cwd);
	}
	struct stat st;
	if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
		mq_cli_err(cli, "cannot save the screen of vm '%s': '%s' is a directory", name, dst);
		free(dst);
		return MQ_EXIT_FAILURE;
	}
	struct mq_vmop op;
	int rc = mq_vmop_lookup(cli, &op, name, "save the screen of");
	if (rc < 0)
		rc = mq_vmop_connect(cli, &op);
	char *tmp = NULL;
	if (rc < 0) {
		tmp = xasprintf("%s/%s.screendump.XXXXXX", cli->runtime_dir, name);
		int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600, in the 0700 runtime dir */
		if (fd < 0) {
			mq_cli_err(cli, "cannot save the screen of vm '%s': cannot create a file in '%s': %s", name,
				   cli->runtime_dir, strerror(errno));
			free(tmp);
			tmp = NULL;
			rc = MQ_EXIT_FAILURE;
		} else {
			close(fd);
		}
	}
	if (rc < 0) {
		json_object *args = json_object_new_object();
		json_object_object_add(args, "filename", json_object_new_string(tmp));
		json_object_object_add(args, "format", json_object_new_string("png"));
		struct mq_error *err = NULL;
		int r = mq_vmop_exec(&op, "screendump", args, NULL, NULL, &err);
		json_object_put(args);
		if (r == 0)
			r = copy_png(tmp, dst, &err);
		if (r < 0) {
			mq_vmop_event(cli, &op, "screendump", "failed", err ? err->msg : "?");
			mq_error_prefix(&err, "cannot save the screen of vm '%s'", name);
			rc = mq_cli_fail(cli, err);
		} else {
			mq_vmop_event(cli, &op, "screendump", "ok", dst);
			printf("%s\n", dst);
			rc = MQ_EXIT_OK;
		}
	}
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dst);
	mq_vmop_close(&op);
	return rc;
}
