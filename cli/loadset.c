/* loadset.c - loading the manifests for a verb through the parse cache
 * (specs/cache.h) kept in the state directory. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "specs/cache.h"
#include "util/paths.h"
#include "util/xalloc.h"

static bool light_elsewhere(const struct mq_spec *spec, void *ud)
{
	const char *host = ud;
	return spec->placement_host && strcmp(spec->placement_host, host) != 0;
}

static bool light_all(const struct mq_spec *spec, void *ud)
{
	(void)spec;
	(void)ud;
	return true;
}

/* The cache file, when there is a state directory already (a verb that only
 * reads manifests must not create one) and MAQET_NO_CACHE is not set. */
char *mq_cli_cache_path(const struct mq_cli *cli)
{
	const char *no = getenv("MAQET_NO_CACHE");
	if (no && *no && strcmp(no, "0") != 0)
		return NULL;
	struct stat st;
	if (!cli->state_dir || stat(cli->state_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return mq_path_join(cli->state_dir, MQ_MCACHE_FILE);
}

int mq_cli_load_ex(struct mq_cli *cli, const struct mq_strv *paths, enum mq_cli_light light, const char *host,
		   struct mq_specset **set)
{
	char *path = mq_cli_cache_path(cli);
	struct mq_load_opts o = { 0 };
	if (path)
		o.cache = mq_mcache_open(path);
	if (light == MQ_CLI_LIGHT_ALL) {
		o.light = light_all;
	} else if (light == MQ_CLI_LIGHT_ELSEWHERE && host) {
		o.light = light_elsewhere;
		o.ud = (void *)host;
	}
	struct mq_strv diags = MQ_STRV_INIT;
	int r = mq_specset_load_opts((const char *const *)paths->v, paths->n, &o, set, &diags);
	if (o.cache) {
		/* a cache that cannot be written only costs time on the next run */
		struct mq_error *err = NULL;
		mq_mcache_save(o.cache, &err);
		mq_error_free(err);
		o.cache = mq_mcache_free(o.cache);
	}
	free(path);
	for (size_t i = 0; i < diags.n; i++)
		fprintf(stderr, "%s\n", diags.v[i]);
	if (r < 0 || !*set) {
		mq_cli_err(cli, "%zu error%s in manifests; nothing was changed", diags.n, diags.n == 1 ? "" : "s");
		mq_strv_clear(&diags);
		return MQ_EXIT_FAILURE;
	}
	mq_strv_clear(&diags);
	return 0;
}
