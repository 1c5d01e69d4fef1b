/* manpage.c - `maqet help --man`: maqet(1) in roff, made from the same help
 * text as `maqet help` and `maqet COMMAND -h` (run at build time by meson and
 * installed). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* Text for roff: backslashes doubled, '-' as \-, a leading '.' or '\''
 * protected with \&. */
static void roff_text(const char *s, size_t n)
{
	bool bol = true;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (bol && (c == '.' || c == '\''))
			fputs("\\&", stdout);
		bol = c == '\n';
		if (c == '\\')
			fputs("\\e", stdout);
		else if (c == '-')
			fputs("\\-", stdout);
		else
			putchar(c);
	}
}

static void roff_str(const char *s) { roff_text(s, strlen(s)); }

/* A block of preformatted help text. */
static void roff_pre(const char *s)
{
	fputs(".nf\n", stdout);
	roff_str(s);
	if (*s && s[strlen(s) - 1] != '\n')
		putchar('\n');
	fputs(".fi\n", stdout);
}

int mq_cli_print_man(struct mq_cli *cli)
{
	(void)cli;
	printf(".TH MAQET 1 \"\" \"maqet %s\" \"User Commands\"\n", MQ_VERSION);
	fputs(".SH NAME\nmaqet \\- declarative reconciler for QEMU virtual machines\n", stdout);
	fputs(".SH SYNOPSIS\n.B maqet\n[\\fB\\-\\-state\\-dir\\fR \\fIDIR\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]\n",
	      stdout);
	fputs(".SH DESCRIPTION\n"
	      "maqet reads VM manifests (YAML), compares them with what it recorded in its state directory and "
	      "what runs, and converges: it creates disks, starts, stops and restarts QEMU.  It also reaches into "
	      "running VMs (console, logs, inspect) and checks the host (doctor).\n",
	      stdout);
	fputs(".SH COMMANDS\n", stdout);
	for (size_t i = 0; mq_cmds[i]; i++) {
		const struct mq_cmd *c = mq_cmds[i];
		if (c->hidden)
			continue;
		fputs(".SS ", stdout);
		roff_str(c->name);
		if (c->alias) {
			fputs(" (", stdout);
			roff_str(c->alias);
			putchar(')');
		}
		putchar('\n');
		roff_str(c->summary);
		fputs(".\n", stdout);
		roff_pre(c->usage);
	}
	fputs(".SH GLOBAL OPTIONS\n", stdout);
	roff_pre(mq_help_global);
	fputs(".SH EXIT STATUS\n", stdout);
	roff_pre(mq_help_exit);
	fputs(".SH ENVIRONMENT\n"
	      ".TP\n.B MAQET_STATE_DIR\nthe state directory when \\-\\-state\\-dir is not given\n"
	      ".TP\n.B MAQET_RUNTIME_DIR\nwhere the per-VM sockets and logs live (default /tmp/maqet\\-UID\\-ID)\n"
	      ".TP\n.B NO_COLOR\nno colours even on a terminal\n",
	      stdout);
	fputs(".SH FILES\n"
	      ".TP\n.I STATE/maqet.db\nthe recorded VMs and the event log\n"
	      ".TP\n.I RUNTIME/NAME.qmp, RUNTIME/NAME.ev\nthe QMP sockets of a VM\n"
	      ".TP\n.I RUNTIME/NAME.console\nthe serial console socket (maqet console)\n"
	      ".TP\n.I RUNTIME/NAME.serial.log, RUNTIME/NAME.qemu.log\n"
	      "the serial console log and QEMU's output; over 8 MiB they are rotated to .1 when the VM starts\n",
	      stdout);
	fputs(".SH SEE ALSO\n.BR qemu\\-system\\-x86_64 (1),\n.BR qemu\\-img (1)\n", stdout);
	return MQ_EXIT_OK;
}
