/* snapshots.c - the `snapshots` row of the fields table; see snapshots.h. */
#include "specs/snapshots.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "specs/jsonval.h"
#include "util/cron.h"
#include "util/parse.h"
#include "util/xalloc.h"

#define SNAP_KEEP_MAX 1000
#define SNAP_BEFORE_KEEP_DEFAULT 3

static const char *const reserved_prefixes[] = { "auto-", "pre-change-", "pre-restore-" };

bool mq_snapshot_name_ok(const char *name)
{
	if (!name)
		return false;
	size_t n = strlen(name);
	if (n < 1 || n > MQ_SNAPSHOT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

const char *mq_snapshot_reserved_prefix(const char *name)
{
	for (size_t i = 0; name && i < MQ_ARRAY_SIZE(reserved_prefixes); i++)
		if (strncmp(name, reserved_prefixes[i], strlen(reserved_prefixes[i])) == 0)
			return reserved_prefixes[i];
	return NULL;
}

struct mq_snapshots *mq_snapshots_free(struct mq_snapshots *s)
{
	if (s) {
		mq_strv_clear(&s->named);
		if (s->schedule)
			free(s->schedule->cron);
		free(s->schedule);
		free(s->before_change);
		free(s);
	}
	return NULL;
}

static bool has_qcow2(const struct mq_spec *spec)
{
	for (size_t i = 0; i < spec->n_storage; i++)
		if (spec->storage[i].type == MQ_STORAGE_QCOW2)
			return true;
	return false;
}

static bool want_map(struct mq_pctx *c, const struct mq_ynode *n, const char *what)
{
	if (n->type != MQ_YN_MAP) {
		mq_err_expect(c, n, what, "a mapping");
		return false;
	}
	return true;
}

static void keep_parse(struct mq_pctx *c, const struct mq_ynode *n, const char *what, unsigned *out)
{
	if (!mq_is_scalar(n) || mq_parse_uint(n->text, 1, SNAP_KEEP_MAX, out) < 0)
		mq_err_expect(c, n, what, "an integer from 1 to 1000");
}

static void named_parse(struct mq_pctx *c, const struct mq_ynode *n, struct mq_snapshots *s)
{
	const struct mq_ynode *const *items;
	size_t count;
	if (n->type == MQ_YN_SEQ) {
		items = (const struct mq_ynode *const *)n->kids;
		count = n->n;
	} else if (mq_is_scalar(n)) {
		items = &n;
		count = 1;
	} else {
		mq_err_expect(c, n, "'snapshots.named'", "a list of snapshot names");
		return;
	}
	const char **texts = xcalloc(count + 1, sizeof(*texts));
	for (size_t i = 0; i < count; i++)
		if (mq_is_scalar(items[i]))
			texts[i] = items[i]->text;
	long *first = mq_find_dups(texts, count);
	for (size_t i = 0; i < count; i++) {
		const struct mq_ynode *it = items[i];
		if (!texts[i]) {
			mq_err_expect(c, it, "'snapshots.named' entries", "snapshot names");
			continue;
		}
		char *cl = mq_clip(it->text);
		const char *pre = mq_snapshot_reserved_prefix(it->text);
		if (!mq_snapshot_name_ok(it->text))
			mq_err_at(c, it, "snapshot name '%s' is not valid (use 1 to 64 of A-Z a-z 0-9 . _ -)", cl);
		else if (pre)
			mq_err_at(c, it, "snapshot name '%s' uses the prefix '%s' reserved for maqet's own snapshots "
				  "(choose another name)", cl, pre);
		else if (first[i] >= 0)
			mq_err_at(c, it, "'%s' is listed twice in 'snapshots.named' (first at line %d)", cl,
				  items[first[i]]->line);
		else
			mq_strv_push(&s->named, it->text);
		free(cl);
	}
	free(first);
	free(texts);
}

enum { SC_EVERY, SC_CRON, SC_KEEP, SC_LIVE, SC_COUNT };
static const char *const schedule_keys[SC_COUNT] = { "every", "cron", "keep", "live" };

static struct mq_snap_schedule *schedule_parse(struct mq_pctx *c, const struct mq_ynode *n)
{
	if (!want_map(c, n, "'snapshots.schedule'"))
		return NULL;
	const struct mq_ynode *v[SC_COUNT], *k[SC_COUNT];
	mq_collect_keys(c, n, schedule_keys, SC_COUNT, v, k, " in 'snapshots.schedule'");
	struct mq_snap_schedule *sc = xcalloc(1, sizeof(*sc));
	sc->live = true;
	int errors = c->errors;
	if (mq_given(v[SC_EVERY]) && mq_given(v[SC_CRON])) {
		mq_err_at(c, k[SC_CRON], "'snapshots.schedule' has both 'every' (line %d) and 'cron'; set only one of them",
			  k[SC_EVERY]->line);
	} else if (mq_given(v[SC_EVERY])) {
		uint64_t ms;
		const struct mq_ynode *e = v[SC_EVERY];
		if (!mq_is_scalar(e) || mq_parse_duration(e->text, &ms) < 0)
			mq_err_expect(c, e, "'snapshots.schedule.every'", "a duration such as 6h, 30m or 90s");
		else if (ms < 1000 || ms % 1000)
			mq_err_expect(c, e, "'snapshots.schedule.every'", "a whole number of seconds, at least 1s");
		else
			sc->every_s = ms / 1000;
	} else if (mq_given(v[SC_CRON])) {
		const struct mq_ynode *e = v[SC_CRON];
		struct mq_cron cr;
		const char *why = NULL;
		if (!mq_is_scalar(e)) {
			mq_err_expect(c, e, "'snapshots.schedule.cron'", "a cron expression such as \"0 */6 * * *\"");
		} else if (mq_cron_parse(e->text, &cr, &why) < 0) {
			char *cl = mq_clip(e->text);
			mq_err_at(c, e, "cannot parse cron expression '%s': %s (use 5 fields such as \"0 */6 * * *\")", cl,
				  why ? why : "invalid");
			free(cl);
		} else if (mq_cron_next(&cr, 0) < 0) {
			char *cl = mq_clip(e->text);
			mq_err_at(c, e, "cron expression '%s' never matches a date", cl);
			free(cl);
		} else {
			sc->cron = xstrdup(e->text);
		}
	} else {
		mq_err_at(c, n, "'snapshots.schedule' needs 'every' (a duration) or 'cron' (an expression)");
	}
	if (mq_given(v[SC_KEEP]))
		keep_parse(c, v[SC_KEEP], "'snapshots.schedule.keep'", &sc->keep);
	else
		mq_err_at(c, n, "'snapshots.schedule' needs 'keep' (how many scheduled snapshots to keep, at least 1)");
	if (mq_given(v[SC_LIVE]))
		mq_parse_bool(c, v[SC_LIVE], "'snapshots.schedule.live'", &sc->live);
	if (c->errors != errors) {
		free(sc->cron);
		free(sc);
		return NULL;
	}
	return sc;
}

enum { BC_ENABLED, BC_KEEP, BC_ROLLBACK, BC_COUNT };
static const char *const before_keys[BC_COUNT] = { "enabled", "keep", "rollback" };

static struct mq_snap_before *before_parse(struct mq_pctx *c, const struct mq_ynode *n)
{
	if (!want_map(c, n, "'snapshots.before_change'"))
		return NULL;
	const struct mq_ynode *v[BC_COUNT], *k[BC_COUNT];
	mq_collect_keys(c, n, before_keys, BC_COUNT, v, k, " in 'snapshots.before_change'");
	struct mq_snap_before *b = xcalloc(1, sizeof(*b));
	b->enabled = true;
	b->rollback = true;
	b->keep = SNAP_BEFORE_KEEP_DEFAULT;
	if (mq_given(v[BC_ENABLED]))
		mq_parse_bool(c, v[BC_ENABLED], "'snapshots.before_change.enabled'", &b->enabled);
	if (mq_given(v[BC_KEEP]))
		keep_parse(c, v[BC_KEEP], "'snapshots.before_change.keep'", &b->keep);
	if (mq_given(v[BC_ROLLBACK]))
		mq_parse_bool(c, v[BC_ROLLBACK], "'snapshots.before_change.rollback'", &b->rollback);
	return b;
}

enum { SN_NAMED, SN_SCHEDULE, SN_BEFORE, SN_COUNT };
static const char *const snap_keys[SN_COUNT] = { "named", "schedule", "before_change" };

void mq_snapshots_parse(struct mq_pctx *c, const struct mq_ynode *n, struct mq_spec *spec, struct mq_spec_extra *x)
{
	(void)x;
	if (!mq_given(n))
		return;
	if (!want_map(c, n, "'snapshots'"))
		return;
	const struct mq_ynode *v[SN_COUNT], *k[SN_COUNT];
	mq_collect_keys(c, n, snap_keys, SN_COUNT, v, k, " in 'snapshots'");
	struct mq_snapshots *s = xcalloc(1, sizeof(*s));
	if (mq_given(v[SN_NAMED]))
		named_parse(c, v[SN_NAMED], s);
	if (mq_given(v[SN_SCHEDULE]))
		s->schedule = schedule_parse(c, v[SN_SCHEDULE]);
	if (mq_given(v[SN_BEFORE]))
		s->before_change = before_parse(c, v[SN_BEFORE]);
	/* Every form needs a qcow2 disk: raw images and virtfs shares have no
	 * internal snapshots. */
	if (!has_qcow2(spec)) {
		static const char *const what[SN_COUNT] = { "named snapshots", "a snapshot schedule",
							    "before_change snapshots" };
		for (int i = 0; i < SN_COUNT; i++) {
			if (!mq_given(v[i]) || (i == SN_BEFORE && s->before_change && !s->before_change->enabled))
				continue;
			mq_err_at(c, k[i],
				  "%s need%s a qcow2 disk, but vm '%s' has %s (raw images and virtfs shares have no "
				  "internal snapshots; add a qcow2 storage entry or remove 'snapshots.%s')",
				  what[i], i == SN_SCHEDULE ? "s" : "", spec->name ? spec->name : "?",
				  spec->n_storage ? "no qcow2 storage" : "no storage", snap_keys[i]);
		}
	}
	spec->snapshots = s;
}

json_object *mq_snapshots_to_json(const struct mq_spec *spec)
{
	const struct mq_snapshots *s = spec->snapshots;
	if (!s)
		return MQ_JSON_ABSENT;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "named", mq_json_strv(&s->named));
	json_object *sc = NULL;
	if (s->schedule) {
		sc = json_object_new_object();
		json_object_object_add(sc, "every", s->schedule->every_s ? json_object_new_uint64(s->schedule->every_s) : NULL);
		json_object_object_add(sc, "cron", mq_json_str_or_null(s->schedule->cron));
		json_object_object_add(sc, "keep", json_object_new_int64(s->schedule->keep));
		json_object_object_add(sc, "live", json_object_new_boolean(s->schedule->live));
	}
	json_object_object_add(o, "schedule", sc);
	json_object *bc = NULL;
	if (s->before_change) {
		bc = json_object_new_object();
		json_object_object_add(bc, "enabled", json_object_new_boolean(s->before_change->enabled));
		json_object_object_add(bc, "keep", json_object_new_int64(s->before_change->keep));
		json_object_object_add(bc, "rollback", json_object_new_boolean(s->before_change->rollback));
	}
	json_object_object_add(o, "before_change", bc);
	return o;
}

int mq_snapshots_from_json(json_object *v, struct mq_spec *spec)
{
	if (!v || !json_object_is_type(v, json_type_object))
		return 0; /* recorded before the key existed, or not used */
	struct mq_snapshots *s = xcalloc(1, sizeof(*s));
	mq_json_to_strv(mq_json_get(v, "named"), &s->named);
	json_object *sc = mq_json_get(v, "schedule");
	if (sc && json_object_is_type(sc, json_type_object)) {
		s->schedule = xcalloc(1, sizeof(*s->schedule));
		int64_t every = mq_json_to_int(mq_json_get(sc, "every"), 0);
		s->schedule->every_s = every > 0 ? (uint64_t)every : 0;
		s->schedule->cron = xstrdup_null(mq_json_to_str(mq_json_get(sc, "cron")));
		int64_t keep = mq_json_to_int(mq_json_get(sc, "keep"), 1);
		s->schedule->keep = keep > 0 ? (unsigned)keep : 1;
		s->schedule->live = mq_json_to_bool(mq_json_get(sc, "live"));
	}
	json_object *bc = mq_json_get(v, "before_change");
	if (bc && json_object_is_type(bc, json_type_object)) {
		s->before_change = xcalloc(1, sizeof(*s->before_change));
		s->before_change->enabled = mq_json_to_bool(mq_json_get(bc, "enabled"));
		int64_t keep = mq_json_to_int(mq_json_get(bc, "keep"), SNAP_BEFORE_KEEP_DEFAULT);
		s->before_change->keep = keep > 0 ? (unsigned)keep : 1;
		s->before_change->rollback = mq_json_to_bool(mq_json_get(bc, "rollback"));
	}
	spec->snapshots = s;
	return 0;
}
