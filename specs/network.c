/* network.c - the `network` row: parse, canonical JSON, read back.
 *
 * Each item is {type: user, forward: [PROTO:HOSTPORT:GUESTPORT, ...]}; the
 * canonical form keeps forwards as those strings.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "specs/jsonval.h"
#include "specs/network.h"
#include "util/parse.h"
#include "util/xalloc.h"

/* The keys of a network item, for the parser, the canonical writer and the
 * reader alike (canonical order). */
enum { NK_TYPE, NK_FORWARD, NK_COUNT };
static const char *const network_keys[NK_COUNT] = { "type", "forward" };

static bool parse_forward(const char *s, struct mq_forward *f)
{
	const char *a = strchr(s, ':');
	if (!a)
		return false;
	const char *b = strchr(a + 1, ':');
	if (!b)
		return false;
	size_t pl = (size_t)(a - s);
	if (!((pl == 3 && strncmp(s, "tcp", 3) == 0) || (pl == 3 && strncmp(s, "udp", 3) == 0)))
		return false;
	char host[8];
	size_t hl = (size_t)(b - a - 1);
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, a + 1, hl);
	host[hl] = '\0';
	unsigned hp, gp;
	if (mq_parse_uint(host, 1, 65535, &hp) < 0 || mq_parse_uint(b + 1, 1, 65535, &gp) < 0)
		return false;
	memcpy(f->proto, s, 3);
	f->proto[3] = '\0';
	f->host_port = (uint16_t)hp;
	f->guest_port = (uint16_t)gp;
	return true;
}

void mq_network_parse(struct mq_pctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	if (!mq_given(n))
		return;
	if (n->type != MQ_YN_SEQ) {
		mq_err_expect(c, n, "'network'", "a list of mappings such as {type: user, forward: [tcp:8080:80]}");
		return;
	}
	size_t n_fwd_total = 0;
	spec->network = xcalloc(n->n ? n->n : 1, sizeof(*spec->network));
	for (size_t i = 0; i < n->n; i++) {
		const struct mq_ynode *item = n->kids[i];
		if (item->type != MQ_YN_MAP) {
			char *what = xasprintf("network item %zu", i + 1);
			mq_err_expect(c, item, what, "a mapping such as {type: user}");
			free(what);
			continue;
		}
		const struct mq_ynode *v[NK_COUNT], *k[NK_COUNT];
		mq_collect_keys(c, item, network_keys, NK_COUNT, v, k, " in network");
		struct mq_network *net = &spec->network[spec->n_network++];
		net->type = xstrdup("user");
		const struct mq_ynode *t = v[NK_TYPE];
		if (t && !mq_ynode_is_null(t) && !(mq_is_scalar(t) && strcmp(t->text, "user") == 0))
			mq_err_expect(c, t, "network 'type'", "user (the only type supported)");
		const struct mq_ynode *fw = v[NK_FORWARD];
		if (!fw || mq_ynode_is_null(fw))
			continue;
		const struct mq_ynode *const *items = NULL;
		size_t count = 0;
		if (fw->type == MQ_YN_SEQ) {
			items = (const struct mq_ynode *const *)fw->kids;
			count = fw->n;
		} else if (fw->type == MQ_YN_SCALAR) {
			items = (const struct mq_ynode *const *)&v[NK_FORWARD];
			count = 1;
		} else {
			mq_err_expect(c, fw, "'forward'", "a list such as [tcp:8080:80]");
			continue;
		}
		net->forwards = xcalloc(count ? count : 1, sizeof(*net->forwards));
		for (size_t j = 0; j < count; j++) {
			const struct mq_ynode *f = items[j];
			struct mq_forward fwd;
			if (!mq_is_scalar(f) || !parse_forward(f->text, &fwd)) {
				char *g = mq_got(f);
				mq_err_at(c, f,
				       "'forward' entries must look like tcp:HOSTPORT:GUESTPORT (tcp or udp, ports 1 to 65535), got %s",
				       g);
				free(g);
				continue;
			}
			net->forwards[net->n_forwards++] = fwd;
			x->fwds = xreallocarray(x->fwds, n_fwd_total + 1, sizeof(*x->fwds));
			x->fwds[n_fwd_total++] = (struct mq_pos){ f->line, f->col, f->file };
		}
	}
}

json_object *mq_network_to_json(const struct mq_spec *spec)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < spec->n_network; i++) {
		const struct mq_network *n = &spec->network[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, network_keys[NK_TYPE], json_object_new_string(n->type ? n->type : "user"));
		json_object *f = json_object_new_array();
		for (size_t k = 0; k < n->n_forwards; k++) {
			char buf[32];
			snprintf(buf, sizeof(buf), "%s:%u:%u", n->forwards[k].proto, (unsigned)n->forwards[k].host_port,
				 (unsigned)n->forwards[k].guest_port);
			json_object_array_add(f, json_object_new_string(buf));
		}
		json_object_object_add(o, network_keys[NK_FORWARD], f);
		json_object_array_add(a, o);
	}
	return a;
}

/* "tcp:8080:80" as the canonical form writes it; false for anything else. */
static bool forward_from_string(const char *f, struct mq_forward *fwd)
{
	char proto[8] = "", hp[8] = "", gp[8] = "";
	const char *c1 = f ? strchr(f, ':') : NULL;
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	unsigned h, g;
	if (!c1 || !c2 || (size_t)(c1 - f) >= sizeof(proto) || (size_t)(c2 - c1 - 1) >= sizeof(hp) ||
	    strlen(c2 + 1) >= sizeof(gp))
		return false;
	memcpy(proto, f, (size_t)(c1 - f));
	memcpy(hp, c1 + 1, (size_t)(c2 - c1 - 1));
	memcpy(gp, c2 + 1, strlen(c2 + 1) + 1);
	if (mq_parse_uint(hp, 1, 65535, &h) < 0 || mq_parse_uint(gp, 1, 65535, &g) < 0 || strlen(proto) > 3)
		return false;
	memcpy(fwd->proto, proto, strlen(proto) + 1);
	fwd->host_port = (uint16_t)h;
	fwd->guest_port = (uint16_t)g;
	return true;
}

int mq_network_from_json(json_object *v, struct mq_spec *spec)
{
	if (!v || !json_object_is_type(v, json_type_array))
		return 0;
	size_t n = json_object_array_length(v);
	spec->network = xcalloc(n + 1, sizeof(*spec->network));
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		struct mq_network *nw = &spec->network[spec->n_network++];
		const char *type = mq_json_to_str(mq_json_get(e, network_keys[NK_TYPE]));
		nw->type = xstrdup(type ? type : "user");
		json_object *fw = mq_json_get(e, network_keys[NK_FORWARD]);
		if (!fw || !json_object_is_type(fw, json_type_array))
			continue;
		size_t m = json_object_array_length(fw);
		nw->forwards = xcalloc(m + 1, sizeof(*nw->forwards));
		for (size_t k = 0; k < m; k++) {
			const char *f = json_object_get_string(json_object_array_get_idx(fw, k));
			if (forward_from_string(f, &nw->forwards[nw->n_forwards]))
				nw->n_forwards++;
		}
	}
	return 0;
}
