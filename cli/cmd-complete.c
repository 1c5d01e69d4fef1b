/* maqet __complete: answers for the bash completion script
 * (completion/maqet.bash), all taken from the command table and the help
 * text, so completion never goes stale:
 *   __complete commands          the command names and aliases
 *   __complete options CMD       the options CMD's usage text mentions
 *   __complete argopts CMD       those of them that take a value
 *   __complete values CMD OPT    the values of OPT written "OPT a|b|c" in the usage
 *   __complete vms CMD           the recorded VM names, when CMD takes a NAME
 * Prints nothing (exit 0) when there is nothing to offer; never creates the
 * state dir. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "util/paths.h"
#include "util/strv.h"
#include "util/xalloc.h"

static int run_complete(struct mq_cli *cli, int argc, char **argv);

const struct mq_cmd mq_cmd_complete = {
	.name = "__complete",
	.summary = "answers for shell completion",
	.usage = "usage: maqet __complete commands | options CMD | argopts CMD | values CMD OPT | vms CMD\n",
	.run = run_complete,
	.hidden = true,
};

/* Options of a usage text: tokens "-x" / "--long-name"; *takes_arg when the
 * next word is a placeholder (upper case, or a|b list) or "=..." follows. */
static void scan_options(const char *usage, struct mq_strv *all, struct mq_strv *witharg)
{
	const char *p = usage;
	while ((p = strchr(p, '-'))) {
		bool start = p == usage || strchr(" [|(,\n", p[-1]);
		size_t n = 0;
		if (start && p[1] == '-' && isalpha((unsigned char)p[2]))
			n = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
		else if (start && isalpha((unsigned char)p[1]) && !isalnum((unsigned char)p[2]) && p[2] != '-')
			n = 2;
		if (!n) {
			p++;
			continue;
		}
		char *opt = xstrndup(p, n);
		const char *q = p + n;
		bool arg = false;
		if (*q == ' ' || *q == '=') {
			/* one space then a placeholder: DIR, S, N, PATH... or a|b */
			const char *w = q + 1;
			size_t wl = strcspn(w, " ]\n.,");
			size_t up = strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
			arg = wl && (up == wl || memchr(w, '|', wl));
		}
		/* "-j, --jobs N": the short form takes what the long one takes */
		if (n == 2 && strncmp(q, ", --", 4) == 0) {
			const char *l = q + 4;
			const char *w = l + strspn(l, "abcdefghijklmnopqrstuvwxyz-");
			if (*w == ' ' && isupper((unsigned char)w[1]))
				arg = true;
		}
		if (!mq_strv_contains(all, opt))
			mq_strv_push(all, opt);
		if (arg && !mq_strv_contains(witharg, opt))
			mq_strv_push(witharg, opt);
		free(opt);
		p = q;
	}
}

/* "OPT a|b|c" in the usage: print a, b, c. */
static void print_values(const char *usage, const char *opt)
{
	size_t n = strlen(opt);
	for (const char *p = strstr(usage, opt); p; p = strstr(p + 1, opt)) {
		const char *q = p + n;
		if (*q != ' ')
			continue;
		q++;
		size_t w = strcspn(q, " ]\n");
		if (!memchr(q, '|', w))
			continue;
		char *vals = xstrndup(q, w);
		for (char *t = strtok(vals, "|"); t; t = strtok(NULL, "|"))
			printf("%s\n", t);
		free(vals);
		return;
	}
}

/* Does the command's first usage line take a vm NAME? */
static bool takes_vm(const struct mq_cmd *c)
{
	char *prefix = xasprintf("usage: maqet %s ", c->name);
	bool r = false;
	if (strncmp(c->usage, prefix, strlen(prefix)) == 0) {
		const char *w = c->usage + strlen(prefix);
		r = strncmp(w, "NAME", 4) == 0 || strncmp(w, "[NAME]", 6) == 0 || strncmp(w, "VM", 2) == 0 ||
		    strncmp(w, "[VM]", 4) == 0;
	}
	free(prefix);
	return r;
}

static void print_vms(struct mq_cli *cli)
{
	char *db = mq_path_join(cli->state_dir, "maqet.db");
	struct stat st;
	bool present = stat(db, &st) == 0;
	free(db);
	if (!present)
		return;
	struct mq_error *err = NULL;
	if (mq_store_open(cli->state_dir, &cli->store, &err) < 0) {
		mq_error_free(err);
		return;
	}
	struct mq_vm_record **recs = NULL;
	size_t n = 0;
	if (mq_store_vm_list(cli->store, &recs, &n, &err) < 0) {
		mq_error_free(err);
		return;
	}
	for (size_t i = 0; i < n; i++)
		printf("%s\n", recs[i]->name);
	mq_vm_record_list_free(recs, n);
}

static int run_complete(struct mq_cli *cli, int argc, char **argv)
{
	if (argc < 2)
		return mq_cli_usage_error(cli, &mq_cmd_complete, "what to complete?");
	const char *what = argv[1];
	if (strcmp(what, "commands") == 0) {
		for (size_t i = 0; mq_cmds[i]; i++) {
			if (mq_cmds[i]->hidden)
				continue;
			printf("%s\n", mq_cmds[i]->name);
			if (mq_cmds[i]->alias)
				printf("%s\n", mq_cmds[i]->alias);
		}
		return MQ_EXIT_OK;
	}
	if (argc < 3)
		return mq_cli_usage_error(cli, &mq_cmd_complete, "'%s' needs a command name", what);
	const struct mq_cmd *c = mq_cli_find_cmd(argv[2]);
	if (!c || c->hidden)
		return MQ_EXIT_OK;
	if (strcmp(what, "options") == 0 || strcmp(what, "argopts") == 0) {
		struct mq_strv all = MQ_STRV_INIT, witharg = MQ_STRV_INIT;
		scan_options(c->usage, &all, &witharg);
		if (!mq_strv_contains(&all, "--help"))
			mq_strv_push(&all, "--help");
		const struct mq_strv *v = strcmp(what, "options") == 0 ? &all : &witharg;
		for (size_t i = 0; i < v->n; i++)
			printf("%s\n", v->v[i]);
		mq_strv_clear(&all);
		mq_strv_clear(&witharg);
		return MQ_EXIT_OK;
	}
	if (strcmp(what, "values") == 0) {
		if (argc < 4)
			return mq_cli_usage_error(cli, &mq_cmd_complete, "'values' needs a command and an option");
		print_values(c->usage, argv[3]);
		return MQ_EXIT_OK;
	}
	if (strcmp(what, "vms") == 0) {
		if (takes_vm(c))
			print_vms(cli);
		return MQ_EXIT_OK;
	}
	return mq_cli_usage_error(cli, &mq_cmd_complete, "unknown completion '%s'", what);
}
