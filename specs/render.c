/* render.c - the merged manifests as YAML (mq_manifests_render, spec.h):
 * what a vm really is once its shared bases are merged in. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "specs/extends.h"
#include "specs/fields.h"
#include "specs/spec.h"
#include "specs/yamlread.h"
#include "util/paths.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static int write_sb(void *data, unsigned char *buffer, size_t size)
{
	mq_strbuf_add((struct mq_strbuf *)data, buffer, size);
	return 1;
}

static int emit_node(yaml_emitter_t *em, const struct mq_ynode *n)
{
	yaml_event_t ev;
	switch (n->type) {
	case MQ_YN_SCALAR:
		yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)n->text, (int)n->len, n->plain, !n->plain,
					     n->plain ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
		return yaml_emitter_emit(em, &ev);
	case MQ_YN_SEQ:
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if (!yaml_emitter_emit(em, &ev))
			return 0;
		for (size_t i = 0; i < n->n; i++)
			if (!emit_node(em, n->kids[i]))
				return 0;
		yaml_sequence_end_event_initialize(&ev);
		return yaml_emitter_emit(em, &ev);
	case MQ_YN_MAP:
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (!yaml_emitter_emit(em, &ev))
			return 0;
		for (size_t i = 0; i < n->n; i++)
			if (!emit_node(em, n->kids[i]))
				return 0;
		yaml_mapping_end_event_initialize(&ev);
		return yaml_emitter_emit(em, &ev);
	}
	return 0;
}

static size_t key_rank(const struct mq_ynode *k)
{
	for (size_t i = 0; i < mq_fields_n; i++)
		if (k->type == MQ_YN_SCALAR && strcmp(mq_fields[i].key, k->text) == 0)
			return i;
	return mq_fields_n;
}

/* Relative paths in storage entries written in a base resolve against the
 * base's directory: show them absolute, so the output means the same. */
static void absolute_base_paths(struct mq_ynode *root)
{
	struct mq_ynode *st = mq_ynode_get(root, "storage", NULL);
	if (!st || st->type != MQ_YN_SEQ)
		return;
	static const char *const keys[] = { "file", "path", "backing_file" };
	for (size_t i = 0; i < st->n; i++)
		for (size_t k = 0; k < 3; k++) {
			struct mq_ynode *v = mq_ynode_get(st->kids[i], keys[k], NULL);
			if (v && v->type == MQ_YN_SCALAR && v->dir && v->len && v->text[0] != '/' &&
			    !mq_ynode_is_null(v)) {
				char *abs = mq_path_join(v->dir, v->text);
				char *res = mq_path_resolve(abs);
				free(abs);
				free(v->text);
				v->text = res;
				v->len = strlen(res);
				v->plain = false;
			}
		}
}

/* Top-level keys in the fields table's order (stable for the rest). */
static void sort_top(struct mq_ynode *root)
{
	size_t pairs = root->n / 2;
	for (size_t i = 1; i < pairs; i++) {
		struct mq_ynode *k = root->kids[2 * i], *v = root->kids[2 * i + 1];
		size_t r = key_rank(k), j = i;
		while (j > 0 && key_rank(root->kids[2 * (j - 1)]) > r) {
			root->kids[2 * j] = root->kids[2 * (j - 1)];
			root->kids[2 * j + 1] = root->kids[2 * (j - 1) + 1];
			j--;
		}
		root->kids[2 * j] = k;
		root->kids[2 * j + 1] = v;
	}
}

int mq_yaml_emit(const struct mq_ynode *root, struct mq_strbuf *out)
{
	yaml_emitter_t em;
	if (!yaml_emitter_initialize(&em))
		return -ENOMEM;
	yaml_emitter_set_output(&em, write_sb, out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_event_t ev;
	int ok = 1;
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	ok = ok && yaml_emitter_emit(&em, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	ok = ok && yaml_emitter_emit(&em, &ev);
	ok = ok && emit_node(&em, root);
	yaml_document_end_event_initialize(&ev, 1);
	ok = ok && yaml_emitter_emit(&em, &ev);
	yaml_stream_end_event_initialize(&ev);
	ok = ok && yaml_emitter_emit(&em, &ev);
	yaml_emitter_delete(&em);
	return ok ? 0 : -EINVAL;
}

int mq_manifests_render(const char *const *paths, size_t n_paths, const char *name, char **out,
			struct mq_strv *diags)
{
	struct mq_specset *set = NULL;
	int r = mq_specset_load(paths, n_paths, &set, diags);
	if (r < 0)
		return r;
	if (name && !mq_specset_find(set, name)) {
		mq_strv_pushf(diags, "no vm named '%s' in the manifests given", name);
		mq_specset_free(set);
		return -ENOENT;
	}
	mq_specset_free(set);

	struct mq_manifest_list list;
	r = mq_manifest_list(paths, n_paths, &list, diags);
	if (r < 0) {
		mq_manifest_list_release(&list);
		return r;
	}
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	struct mq_diags d = { 0 };
	struct mq_bases *bases = mq_bases_new();
	size_t shown = 0;
	for (size_t f = 0; f < list.n && r == 0; f++) {
		const struct mq_manifest_file *mf = &list.v[f];
		char *buf = NULL;
		size_t len = 0;
		if (mq_yaml_read_file(mf->display, &d, &buf, &len) < 0) {
			r = -EIO;
			break;
		}
		struct mq_ynode **docs = NULL;
		size_t n_docs = 0;
		mq_yaml_parse(buf, len, mf->display, &d, &docs, &n_docs);
		free(buf);
		char *dir = mq_path_dirname(mf->abs);
		for (size_t i = 0; i < n_docs; i++) {
			struct mq_ynode *root = docs[i];
			const struct mq_ynode *nm = mq_ynode_get(root, "name", NULL);
			if (r == 0 && root->type == MQ_YN_MAP && nm && nm->type == MQ_YN_SCALAR &&
			    (!name || strcmp(nm->text, name) == 0)) {
				struct mq_extends_result ext = { 0 };
				mq_extends_resolve(bases, root, mf->display, mf->abs, dir, &d, &ext);
				sort_top(root);
				absolute_base_paths(root);
				mq_strbuf_addf(&sb, "%s# vm '%s' from %s\n", shown ? "---\n" : "", nm->text, mf->display);
				if (ext.bases.n) {
					char *b = mq_strv_join(&ext.bases, ", ");
					mq_strbuf_addf(&sb, "# extends %s\n", b);
					free(b);
					struct mq_strv keys = MQ_STRV_INIT, files = MQ_STRV_INIT;
					mq_extends_origins(root, &keys, &files);
					for (size_t k = 0; k < keys.n; k++)
						mq_strbuf_addf(&sb, "#   %s: from %s\n", keys.v[k], files.v[k]);
					mq_strv_clear(&keys);
					mq_strv_clear(&files);
				}
				mq_extends_result_release(&ext);
				if (mq_yaml_emit(root, &sb) < 0)
					r = -EINVAL;
				shown++;
			}
			mq_ynode_free(root);
		}
		free(docs);
		free(dir);
	}
	mq_bases_free(bases);
	mq_manifest_list_release(&list);
	if (d.n > 0) {
		/* the files changed between the load and this read */
		mq_diags_flush(&d, diags);
		r = r ? r : -EINVAL;
	}
	mq_diags_release(&d);
	if (r < 0) {
		mq_strbuf_release(&sb);
		return r;
	}
	*out = mq_strbuf_detach(&sb);
	return 0;
}
