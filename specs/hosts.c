/* hosts.c - the host inventory (hosts.yaml): reading, validating, and the
 * check of every vm's placement against it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "specs/hosts.h"
#include "specs/spec.h"
#include "specs/validate.h"
#include "specs/value.h"
#include "specs/yamlread.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

struct mq_hosts *mq_hosts_free(struct mq_hosts *h)
{
	if (h) {
		mq_strv_clear(&h->names);
		mq_strv_clear(&h->shared);
		mq_strv_clear(&h->files);
		free(h);
	}
	return NULL;
}

bool mq_host_name_ok(const char *name)
{
	return name && mq_valid_host_name(name);
}

bool mq_hosts_has(const struct mq_hosts *h, const char *name)
{
	return h && name && mq_strv_contains(&h->names, name);
}

const char *mq_hosts_shared_dir(const struct mq_hosts *h, const char *abs_path)
{
	if (!h || !abs_path)
		return NULL;
	for (size_t i = 0; i < h->shared.n; i++) {
		const char *d = h->shared.v[i];
		size_t n = strlen(d);
		if (strcmp(d, "/") == 0)
			return d;
		if (strncmp(abs_path, d, n) == 0 && (abs_path[n] == '/' || abs_path[n] == '\0'))
			return d;
	}
	return NULL;
}

char *mq_hosts_list_text(const struct mq_hosts *h)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	size_t n = h ? h->names.n : 0, shown = n > 8 ? 8 : n;
	for (size_t i = 0; i < shown; i++)
		mq_strbuf_addf(&sb, "%s%s", i ? ", " : "", h->names.v[i]);
	if (n > shown)
		mq_strbuf_addf(&sb, " and %zu more", n - shown);
	return mq_strbuf_detach(&sb);
}

/* One hosts.yaml into h; errors counted in c->errors. */
static void parse_hosts(struct mq_pctx *c, const struct mq_ynode *root, struct mq_hosts *h)
{
	if (root->type != MQ_YN_MAP) {
		mq_err_expect(c, root, "hosts.yaml", "a mapping with 'hosts' (a list of host names)");
		return;
	}
	static const char *const keys[] = { "hosts", "shared_storage" };
	const struct mq_ynode *v[2], *k[2];
	mq_collect_keys(c, root, keys, 2, v, k, " in hosts.yaml (it takes 'hosts' and 'shared_storage')");
	if (!mq_given(v[0])) {
		mq_err_at(c, v[0] ? v[0] : root, "hosts.yaml needs 'hosts': the list of host names vms may be placed on");
	} else if (v[0]->type != MQ_YN_SEQ || v[0]->n == 0) {
		mq_err_expect(c, v[0], "'hosts'", "a non-empty list of host names such as [lab1, lab2]");
	} else {
		struct mq_strv here = MQ_STRV_INIT;
		for (size_t i = 0; i < v[0]->n; i++) {
			const struct mq_ynode *e = v[0]->kids[i];
			if (!mq_is_scalar(e) || !mq_valid_host_name(e->text)) {
				mq_err_expect(c, e, "a host in 'hosts'",
					      "a host name (letters, digits, '-' and '.', at most 63 characters)");
				continue;
			}
			if (mq_strv_contains(&here, e->text)) {
				mq_err_at(c, e, "duplicate host '%s' in 'hosts'", e->text);
				continue;
			}
			mq_strv_push(&here, e->text);
			if (!mq_strv_contains(&h->names, e->text))
				mq_strv_push(&h->names, e->text);
		}
		mq_strv_clear(&here);
	}
	if (mq_given(v[1])) {
		if (v[1]->type != MQ_YN_SEQ) {
			mq_err_expect(c, v[1], "'shared_storage'", "a list of absolute directories such as [/srv/vmdisks]");
			return;
		}
		for (size_t i = 0; i < v[1]->n; i++) {
			const struct mq_ynode *e = v[1]->kids[i];
			if (!mq_is_scalar(e) || e->text[0] != '/') {
				mq_err_expect(c, e, "a directory in 'shared_storage'",
					      "an absolute path (the same on every host)");
				continue;
			}
			char *r = mq_path_resolve(e->text);
			if (!mq_strv_contains(&h->shared, r))
				mq_strv_push(&h->shared, r);
			free(r);
		}
	}
}

int mq_hosts_read(const char *const *paths, size_t n_paths, struct mq_hosts **out, struct mq_diags *dd)
{
	struct mq_diags d = { 0 };
	struct mq_hosts *h = NULL;
	for (size_t i = 0; i < n_paths; i++) {
		struct stat st;
		if (stat(paths[i], &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		char *display = xstrdup(paths[i]);
		size_t l = strlen(display);
		while (l > 1 && display[l - 1] == '/')
			display[--l] = '\0';
		char *file = mq_path_join(display, MQ_HOSTS_FILE);
		free(display);
		if (stat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
			free(file);
			continue;
		}
		if (!h)
			h = xcalloc(1, sizeof(*h));
		if (mq_strv_contains(&h->files, file)) {
			free(file);
			continue;
		}
		mq_strv_push(&h->files, file);
		char *buf = NULL;
		size_t len = 0;
		if (mq_yaml_read_file(file, &d, &buf, &len) == 0) {
			struct mq_ynode **docs = NULL;
			size_t n_docs = 0;
			if (mq_yaml_parse(buf, len, file, &d, &docs, &n_docs) == 0 && n_docs != 1 && d.n == 0)
				mq_diags_add(&d, file, 0, 0, "hosts.yaml must hold exactly one document, found %zu", n_docs);
			for (size_t k = 0; k < n_docs; k++) {
				struct mq_pctx c = { .file = file, .d = &d };
				if (k == 0)
					parse_hosts(&c, docs[k], h);
				mq_ynode_free(docs[k]);
			}
			free(docs);
		}
		free(buf);
		free(file);
	}
	if (d.n > 0) {
		for (size_t i = 0; i < d.n; i++)
			mq_diags_add(dd, d.v[i].file, d.v[i].line, d.v[i].col, "%s", d.v[i].msg);
		mq_diags_release(&d);
		mq_hosts_free(h);
		return -EINVAL;
	}
	mq_diags_release(&d);
	*out = h;
	return 0;
}

int mq_hosts_load(const char *const *paths, size_t n_paths, struct mq_hosts **out, struct mq_strv *diags)
{
	struct mq_diags d = { 0 };
	int r = mq_hosts_read(paths, n_paths, out, &d);
	if (r < 0)
		mq_diags_flush(&d, diags);
	mq_diags_release(&d);
	return r;
}

void mq_hosts_check_specs(const struct mq_hosts *h, struct mq_spec **specs, struct mq_spec_extra **x, size_t n,
			  struct mq_diags *d)
{
	if (!h)
		return;
	char *list = NULL;
	const char *known = NULL; /* the last host found listed: vms come in runs per host */
	for (size_t i = 0; i < n; i++) {
		const struct mq_spec *s = specs[i];
		if (!s->placement_host || (known && strcmp(s->placement_host, known) == 0))
			continue;
		if (mq_hosts_has(h, s->placement_host)) {
			known = s->placement_host;
			continue;
		}
		if (!list)
			list = mq_hosts_list_text(h);
		struct mq_pos p = x && x[i] && x[i]->placement.line ? x[i]->placement
								     : (struct mq_pos){ s->line, s->col, NULL };
		const char *hint = mq_did_you_mean(s->placement_host, (const char *const *)h->names.v, h->names.n);
		char *cl = mq_clip(s->placement_host);
		if (hint)
			mq_diags_add(d, p.file ? p.file : s->file, p.line, p.col,
				     "unknown host '%s' (did you mean '%s'? hosts.yaml lists %s)", cl, hint, list);
		else
			mq_diags_add(d, p.file ? p.file : s->file, p.line, p.col, "unknown host '%s' (hosts.yaml lists %s)",
				     cl, list);
		free(cl);
	}
	free(list);
}
