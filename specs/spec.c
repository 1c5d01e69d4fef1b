/* spec.c - object lifetimes of spec.h: specs and spec sets.
 *
 * The rest of specs/, by role:
 *   diag.c       diagnostics list, did-you-mean, quoting
 *   yamlread.c   libyaml -> node tree, hostile-input caps
 *   value.c      typed values out of nodes, with diagnostics
 *   fields.c     THE table of manifest keys, rows of the simple keys
 *   storage.c    the `storage` row      network.c   the `network` row
 *   arguments.c  structured `arguments` -> argv tokens
 *   names.c      enum <-> manifest spelling
 *   validate.c   cross-field and cross-vm checks
 *   load.c       -f paths -> files -> documents -> specs
 *   extends.c    `extends`: shared bases merged under a document
 *   canonical.c  canonical JSON, hash, diff   fromjson.c  reading it back
 *   jsonval.c    json-c helpers
 */
#include <stdlib.h>
#include <string.h>

#include "specs/spec.h"
#include "specs/hosts.h"
#include "specs/snapshots.h"
#include "util/arena.h"
#include "util/xalloc.h"

struct mq_spec *mq_spec_free(struct mq_spec *spec)
{
	if (!spec)
		return NULL;
	if (spec->arena) {
		mq_arena_unref(spec->arena);
		return NULL;
	}
	free(spec->file);
	free(spec->abs_file);
	free(spec->source);
	free(spec->name);
	free(spec->binary);
	free(spec->machine);
	free(spec->display);
	free(spec->vga);
	free(spec->placement_host);
	for (size_t i = 0; i < spec->n_storage; i++) {
		struct mq_storage *s = &spec->storage[i];
		free(s->name);
		free(s->file);
		free(s->backing_file);
		free(s->backing_format);
		free(s->path);
		free(s->mount_tag);
		free(s->security_model);
	}
	free(spec->storage);
	for (size_t i = 0; i < spec->n_network; i++) {
		free(spec->network[i].type);
		free(spec->network[i].forwards);
	}
	free(spec->network);
	mq_strv_clear(&spec->depends_on);
	mq_strv_clear(&spec->args);
	mq_strv_clear(&spec->arguments);
	mq_snapshots_free(spec->snapshots);
	free(spec->canonical);
	mq_strv_clear(&spec->bases);
	mq_strv_clear(&spec->bases_abs);
	mq_strv_clear(&spec->origin_keys);
	mq_strv_clear(&spec->origin_files);
	free(spec);
	return NULL;
}

void mq_spec_lighten(struct mq_spec *spec)
{
	struct mq_spec *old = xcalloc(1, sizeof(*old));
	*old = *spec;
	memset(spec, 0, sizeof(*spec));
#define MQ_MOVE(f) (spec->f = old->f, memset(&old->f, 0, sizeof(old->f)))
	MQ_MOVE(file);
	MQ_MOVE(abs_file);
	MQ_MOVE(source);
	MQ_MOVE(name);
	MQ_MOVE(placement_host);
	MQ_MOVE(depends_on);
	MQ_MOVE(network);
	MQ_MOVE(n_network);
	MQ_MOVE(bases);
	MQ_MOVE(bases_abs);
#undef MQ_MOVE
	spec->line = old->line;
	spec->col = old->col;
	spec->state = old->state;
	memcpy(spec->hash, old->hash, sizeof(spec->hash));
	spec->light = true;
	mq_spec_free(old);
}

struct mq_specset *mq_specset_new(void)
{
	return xcalloc(1, sizeof(struct mq_specset));
}

struct mq_specset *mq_specset_free(struct mq_specset *set)
{
	if (!set)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		mq_spec_free(set->specs[i]);
	free(set->specs);
	mq_strv_clear(&set->sources);
	mq_strv_clear(&set->bases);
	mq_hosts_free(set->hosts);
	free(set);
	return NULL;
}

const struct mq_spec *mq_specset_find(const struct mq_specset *set, const char *name)
{
	if (!set || !name)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		if (set->specs[i]->name && strcmp(set->specs[i]->name, name) == 0)
			return set->specs[i];
	return NULL;
}

const char *mq_spec_origin(const struct mq_spec *spec, const char *key)
{
	if (!spec || !key)
		return NULL;
	for (size_t i = 0; i < spec->origin_keys.n && i < spec->origin_files.n; i++)
		if (strcmp(spec->origin_keys.v[i], key) == 0)
			return spec->origin_files.v[i];
	return NULL;
}

bool mq_path_in_bases_dir(const char *path)
{
	const char *p = path;
	while ((p = strstr(p, "_bases/"))) {
		if (p == path || p[-1] == '/')
			return true;
		p++;
	}
	return false;
}
