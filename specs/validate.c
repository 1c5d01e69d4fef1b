/* validate.c - cross-field and cross-vm checks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "specs/fields.h"
#include "specs/hosts.h"
#include "specs/validate.h"
#include "util/arena.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

struct mq_spec_extra *mq_spec_extra_free(struct mq_spec_extra *x)
{
	if (x && x->arena) {
		mq_arena_unref(x->arena);
	} else if (x) {
		free(x->deps);
		free(x->fwds);
		free(x);
	}
	return NULL;
}

void mq_check_argument_conflicts(struct mq_pctx *c, const struct mq_argopts *opts,
				 const struct mq_ynode *const *vals, const struct mq_ynode *const *keys)
{
	for (size_t i = 0; i < opts->n; i++) {
		const char *o = opts->v[i].name;
		for (size_t f = 0; f < mq_fields_n; f++) {
			const char *argopt = mq_fields[f].argopt;
			if (argopt && strcmp(o, argopt) == 0 && mq_given(vals[f])) {
				mq_diags_add(c->d, opts->v[i].file ? opts->v[i].file : c->file, opts->v[i].line, opts->v[i].col,
					     "option '-%s' in 'arguments' conflicts with '%s' (line %d); set only one of them",
					     o, mq_fields[f].key, keys[f]->line);
				c->errors++;
			}
		}
	}
}

/* ---- set-level checks ---------------------------------------------- */

/* The first 8 bytes of s, big-endian, NUL-padded: comparing two prefixes
 * as integers orders like strcmp on those bytes, and equal prefixes of a
 * string shorter than 8 bytes mean equal strings. */
static uint64_t prefix_key(const char *s)
{
	uint64_t k = 0;
	size_t i = 0;
	for (; i < 8 && s[i]; i++)
		k = k << 8 | (unsigned char)s[i];
	return k << (8 * (8 - i));
}

struct name_ref {
	const char *name;
	size_t idx;
	uint64_t key; /* prefix_key(name) */
};

static int name_ref_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	int c = (x->key & 0xff) ? strcmp(x->name + 8, y->name + 8) : 0;
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

struct port_ref {
	const struct mq_forward *f;
	const char *host; /* placement, NULL = unplaced (sorts first) */
	size_t idx, k;
	uint64_t key;     /* proto (as prefix_key) then host port: the first two sort keys */
};

static uint64_t port_key(const struct mq_forward *f)
{
	char proto[sizeof(f->proto) + 1] = { 0 };
	memcpy(proto, f->proto, sizeof(f->proto));
	/* proto is at most 3 bytes: its key leaves the low 5 bytes zero */
	return prefix_key(proto) | f->host_port;
}

static int port_ref_cmp(const void *a, const void *b)
{
	const struct port_ref *x = a, *y = b;
	int c;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (!x->host != !y->host)
		return x->host ? 1 : -1;
	if (x->host && (c = strcmp(x->host, y->host)) != 0)
		return c;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->k < y->k ? -1 : x->k > y->k;
}

static struct mq_pos pos_name(struct mq_spec **s, struct mq_spec_extra **x, size_t i)
{
	return x && x[i] ? x[i]->name : (struct mq_pos){ s[i]->line, s[i]->col, NULL };
}

static struct mq_pos pos_dep(struct mq_spec **s, struct mq_spec_extra **x, size_t i, size_t j)
{
	return x && x[i] && x[i]->deps ? x[i]->deps[j] : (struct mq_pos){ s[i]->line, s[i]->col, NULL };
}

static struct mq_pos pos_fwd(struct mq_spec **s, struct mq_spec_extra **x, size_t i, size_t k)
{
	return x && x[i] && x[i]->fwds ? x[i]->fwds[k] : (struct mq_pos){ s[i]->line, s[i]->col, NULL };
}

/* Index (into specs) of the first vm called `name`, or -1. */
static long lookup(const struct name_ref *refs, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(refs[mid].name, name);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(refs[lo].name, name) == 0 ? (long)refs[lo].idx : -1;
}

bool mq_specs_check_internal(struct mq_spec **specs, struct mq_spec_extra **x, size_t n, bool names_incomplete,
			     struct mq_diags *d, size_t *order)
{
	/* unique names */
	struct name_ref *refs = xcalloc(n + 1, sizeof(*refs));
	size_t nr = 0;
	for (size_t i = 0; i < n; i++)
		if (specs[i]->name)
			refs[nr++] = (struct name_ref){ specs[i]->name, i, prefix_key(specs[i]->name) };
	if (nr > 1)
		qsort(refs, nr, sizeof(*refs), name_ref_cmp);
	bool ordered = order && nr == n;
	if (ordered)
		for (size_t i = 0; i < nr; i++)
			order[i] = refs[i].idx;
	size_t nu = 0; /* refs[0..nu) = first of each name */
	for (size_t i = 0; i < nr; i++) {
		if (nu > 0 && strcmp(refs[nu - 1].name, refs[i].name) == 0) {
			const struct mq_spec *first = specs[refs[nu - 1].idx];
			struct mq_pos p = pos_name(specs, x, refs[i].idx);
			mq_diags_add(d, p.file ? p.file : specs[refs[i].idx]->file, p.line, p.col,
				     "duplicate vm name '%s' (first defined at %s:%d:%d)", refs[i].name, first->file,
				     first->line, first->col);
			continue;
		}
		refs[nu++] = refs[i];
	}

	/* unique host ports */
	size_t np = 0, ap = 0;
	struct port_ref *ports = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		for (size_t a = 0; a < specs[i]->n_network; a++)
			for (size_t b = 0; b < specs[i]->network[a].n_forwards; b++, k++) {
				if (np == ap) {
					ap = ap ? ap * 2 : 16;
					ports = xreallocarray(ports, ap, sizeof(*ports));
				}
				ports[np++] = (struct port_ref){ &specs[i]->network[a].forwards[b], specs[i]->placement_host,
								 i, k, port_key(&specs[i]->network[a].forwards[b]) };
			}
	}
	if (np > 1)
		qsort(ports, np, sizeof(*ports), port_ref_cmp);
	/* only vms that can run on the same host conflict: the same placement,
	 * or either one unplaced (README "Pinned hosts").  Within one port the
	 * unplaced come first, then each host's run. */
	for (size_t i = 1, f = 0, h = 0; i < np; i++) {
		if (ports[i].key != ports[f].key) {
			f = h = i;
			continue;
		}
		bool same_run = !ports[i].host == !ports[h].host &&
				(!ports[i].host || strcmp(ports[i].host, ports[h].host) == 0);
		if (!same_run)
			h = i;
		size_t j = !ports[f].host ? f : h; /* an unplaced vm conflicts with every host */
		if (j == i)
			continue;
		const struct mq_spec *first = specs[ports[j].idx];
		struct mq_pos fp = pos_fwd(specs, x, ports[j].idx, ports[j].k);
		struct mq_pos p = pos_fwd(specs, x, ports[i].idx, ports[i].k);
		mq_diags_add(d, p.file ? p.file : specs[ports[i].idx]->file, p.line, p.col,
			     "host port %s:%u is already forwarded by vm '%s' (%s:%d:%d)", ports[i].f->proto,
			     (unsigned)ports[i].f->host_port, first->name ? first->name : "?", fp.file ? fp.file : first->file, fp.line,
			     fp.col);
	}
	free(ports);

	/* depends_on targets; edges[i][j] = target index or -1 (nothing to
	 * check, and no cycle possible, when no vm has any) */
	size_t nedges = 0;
	for (size_t i = 0; i < n; i++)
		nedges += specs[i]->depends_on.n;
	if (nedges > 0) {
		long **edges = xcalloc(n + 1, sizeof(*edges));
		long *edge_v = xcalloc(nedges + 1, sizeof(long)); /* every vm's edges, in vm order */
		for (size_t i = 0, at = 0; i < n; i++) {
			const struct mq_spec *s = specs[i];
			edges[i] = edge_v + at;
			at += s->depends_on.n;
			for (size_t j = 0; j < s->depends_on.n; j++) {
				const char *dep = s->depends_on.v[j];
				struct mq_pos p = pos_dep(specs, x, i, j);
				edges[i][j] = -1;
				if (s->name && strcmp(dep, s->name) == 0) {
					mq_diags_add(d, p.file ? p.file : s->file, p.line, p.col, "vm '%s' depends on itself", s->name);
					continue;
				}
				long t = lookup(refs, nu, dep);
				if (t < 0 && !names_incomplete) {
					char *cl = mq_clip(dep);
					mq_diags_add(d, p.file ? p.file : s->file, p.line, p.col, "depends_on: unknown vm '%s'", cl);
					free(cl);
				}
				/* a dependency must run wherever the vm runs: unplaced, or
				 * placed on the same host (starts are ordered per host) */
				const char *th = t >= 0 ? specs[t]->placement_host : NULL;
				if (th && (!s->placement_host || strcmp(th, s->placement_host) != 0))
					mq_diags_add(d, p.file ? p.file : s->file, p.line, p.col,
						     "depends_on: vm '%s' is placed on host %s, but '%s' %s%s (maqet orders starts on "
						     "one host only: place both on the same host, or unplace '%s')",
						     dep, th, s->name ? s->name : "?", s->placement_host ? "is placed on host " : "",
						     s->placement_host ? s->placement_host : "may run on any host", dep);
				edges[i][j] = t;
			}
		}

		/* cycles: iterative DFS over the first vm of each name, in name order;
		 * every back edge is one cycle, reported once. */
		unsigned char *color = xcalloc(n + 1, 1); /* 0 white, 1 on stack, 2 done */
		size_t *stack = xcalloc(n + 1, sizeof(size_t)), *next = xcalloc(n + 1, sizeof(size_t));
		for (size_t r = 0; r < nu; r++) {
			size_t root = refs[r].idx;
			if (color[root])
				continue;
			size_t sp = 0;
			stack[sp] = root;
			next[sp] = 0;
			sp++;
			color[root] = 1;
			while (sp > 0) {
				size_t u = stack[sp - 1];
				if (next[sp - 1] >= specs[u]->depends_on.n) {
					color[u] = 2;
					sp--;
					continue;
				}
				size_t j = next[sp - 1]++;
				long t = edges[u][j];
				if (t < 0 || (size_t)t == u)
					continue;
				if (color[t] == 0) {
					color[t] = 1;
					stack[sp] = (size_t)t;
					next[sp] = 0;
					sp++;
				} else if (color[t] == 1) {
					size_t from = 0;
					while (stack[from] != (size_t)t)
						from++;
					struct mq_strbuf sb = MQ_STRBUF_INIT;
					mq_strbuf_init(&sb);
					for (size_t q = from; q < sp; q++)
						mq_strbuf_addf(&sb, "%s -> ", specs[stack[q]]->name);
					mq_strbuf_adds(&sb, specs[t]->name);
					/* reported at the cycle's first vm, on its edge into the cycle */
					size_t head = stack[from];
					struct mq_pos p = pos_dep(specs, x, head, next[from] - 1);
					mq_diags_add(d, p.file ? p.file : specs[head]->file, p.line, p.col, "dependency cycle: %s", sb.buf);
					mq_strbuf_release(&sb);
				}
			}
		}
		free(color);
		free(stack);
		free(next);
		free(edge_v);
		free(edges);
	}
	free(refs);
	return ordered;
}

static int spec_cmp(const void *a, const void *b)
{
	const struct mq_spec *x = *(struct mq_spec *const *)a, *y = *(struct mq_spec *const *)b;
	return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

void mq_specset_sort(struct mq_specset *set)
{
	if (set->n > 1)
		qsort(set->specs, set->n, sizeof(*set->specs), spec_cmp);
}

void mq_specs_reorder(struct mq_spec **specs, size_t n, const size_t *order)
{
	struct mq_spec **tmp = xcalloc(n + 1, sizeof(*tmp));
	for (size_t i = 0; i < n; i++)
		tmp[i] = specs[order[i]];
	memcpy(specs, tmp, n * sizeof(*specs));
	free(tmp);
}

int mq_specset_check(struct mq_specset *set, struct mq_strv *diags)
{
	struct mq_diags d = { 0 };
	size_t *order = xcalloc(set->n + 1, sizeof(*order));
	bool ordered = mq_specs_check_internal(set->specs, NULL, set->n, false, &d, order);
	mq_hosts_check_specs(set->hosts, set->specs, NULL, set->n, &d);
	if (d.n > 0) {
		free(order);
		mq_diags_flush(&d, diags);
		return -EINVAL;
	}
	if (ordered)
		mq_specs_reorder(set->specs, set->n, order);
	else
		mq_specset_sort(set);
	free(order);
	return 0;
}
