#include "reconciler/plan.h"
#include "reconciler/snapplan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconciler/lease.h"
#include "reconciler/phase.h"
#include "reconciler/placement.h"
#include "specs/fromjson.h"
#include "reconciler/proc.h"
#include "reconciler/vmlock.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

static const char *const action_names[MQ_ACT__COUNT] = {
	[MQ_ACT_NOOP] = "no-op",     [MQ_ACT_CREATE] = "create", [MQ_ACT_START] = "start",
	[MQ_ACT_STOP] = "stop",      [MQ_ACT_RESTART] = "restart", [MQ_ACT_DELETE] = "delete",
	[MQ_ACT_UPDATE] = "update",
};

static const char *const action_symbols[MQ_ACT__COUNT] = {
	[MQ_ACT_NOOP] = " ",   [MQ_ACT_CREATE] = "+", [MQ_ACT_START] = ">",
	[MQ_ACT_STOP] = "<",   [MQ_ACT_RESTART] = "-/+", [MQ_ACT_DELETE] = "-",
	[MQ_ACT_UPDATE] = "~",
};

const char *mq_action_str(enum mq_action a)
{
	return a < MQ_ACT__COUNT ? action_names[a] : "?";
}

const char *mq_action_symbol(enum mq_action a)
{
	return a < MQ_ACT__COUNT ? action_symbols[a] : "?";
}

bool mq_status_is_up(const char *s)
{
	enum mq_phase p;
	return s && mq_phase_parse(s, &p, NULL) == 0 && mq_phase_is_up(p);
}

const char *mq_observe(const struct mq_vm_record *rec)
{
	if (!rec->status)
		return MQ_STATUS_CREATED;
	enum mq_phase p;
	if (mq_phase_parse(rec->status, &p, NULL) < 0 || p == MQ_PHASE_ABSENT)
		return MQ_STATUS_STOPPED; /* a status this version does not know */
	if (mq_phase_is_up(p)) {
		if (rec->pid <= 0) /* an offline snapshot/restore runs with no qemu */
			return mq_vmlock_busy_phase(rec) ? mq_phase_name(p) : MQ_STATUS_CRASHED;
		struct mq_pidref ref = { .pid = (pid_t)rec->pid, .start_time = rec->start_time };
		if (mq_proc_check(&ref) != MQ_PROC_ALIVE)
			return MQ_STATUS_CRASHED;
	}
	return mq_phase_name(p);
}

enum mq_action mq_plan_decide(const struct mq_decide_in *in)
{
	if (in->declared && !in->recorded)
		return MQ_ACT_CREATE;
	if (!in->declared)
		return (in->recorded && in->prune) ? MQ_ACT_DELETE : MQ_ACT_NOOP;
	bool changed = in->restart_changed || in->other_changed;
	if (in->paused)
		return MQ_ACT_NOOP; /* not even a record-only update: the change waits for resume */
	if (in->held)
		return changed ? MQ_ACT_UPDATE : MQ_ACT_NOOP;
	if (in->want_running) {
		if (!in->up)
			return in->blocked ? MQ_ACT_NOOP : MQ_ACT_START;
		if (in->restart_changed)
			return MQ_ACT_RESTART;
		return in->other_changed ? MQ_ACT_UPDATE : MQ_ACT_NOOP;
	}
	if (in->up)
		return MQ_ACT_STOP;
	return changed ? MQ_ACT_UPDATE : MQ_ACT_NOOP;
}

static int rec_cmp(const void *a, const void *b)
{
	return strcmp((*(struct mq_vm_record *const *)a)->name, (*(struct mq_vm_record *const *)b)->name);
}

/* recs sorted by name (a copy of the pointers), for lookups in O(log n):
 * a fleet repository declares far more vms than one host records.
 * Index of the first record called name in sorted (n when none). */
static size_t rec_lower(struct mq_vm_record *const *sorted, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(sorted[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* find_rec (the first record called name), marking every record so called. */
static const struct mq_vm_record *find_rec_mark(struct mq_vm_record *const *sorted, size_t n, const char *name,
						bool *declared)
{
	if (!name)
		return NULL;
	size_t lo = rec_lower(sorted, n, name);
	for (size_t i = lo; i < n && strcmp(sorted[i]->name, name) == 0; i++)
		declared[i] = true;
	return lo < n && strcmp(sorted[lo]->name, name) == 0 ? sorted[lo] : NULL;
}

/* Was rec marked (found by its name among the records called so)? */
static bool declared_rec(struct mq_vm_record *const *sorted, size_t n, const struct mq_vm_record *rec, bool *declared)
{
	for (size_t i = rec_lower(sorted, n, rec->name); i < n && strcmp(sorted[i]->name, rec->name) == 0; i++)
		if (declared[i])
			return true;
	return false;
}

static bool placed_elsewhere(const struct mq_spec *spec, const struct mq_plan_opts *o)
{
	return o && o->host && spec->placement_host && strcmp(spec->placement_host, o->host) != 0;
}

static bool in_sources(const struct mq_specset *set, const char *source)
{
	return source && mq_strv_contains(&set->sources, source);
}

static char *join_changed(const struct mq_strv *keys)
{
	return mq_strv_join(keys, ", ");
}

/* The base files (shared bases, `extends`) that changed keys were written
 * in, ", "-joined, or NULL when every changed key is the manifest's own. */
static char *changed_origins(const struct mq_spec *spec, const struct mq_strv *a, const struct mq_strv *b)
{
	if (!spec)
		return NULL;
	struct mq_strv files = MQ_STRV_INIT;
	const struct mq_strv *lists[2] = { a, b };
	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; i < lists[l]->n; i++) {
			const char *o = mq_spec_origin(spec, lists[l]->v[i]);
			if (o && !mq_strv_contains(&files, o))
				mq_strv_push(&files, o);
		}
	char *r = files.n ? mq_strv_join(&files, ", ") : NULL;
	mq_strv_clear(&files);
	return r;
}

static char *make_reason(const struct mq_plan_item *it, const struct mq_decide_in *in, const struct mq_strv *restart_keys,
			 const struct mq_strv *other_keys)
{
	struct mq_strbuf sb = MQ_STRBUF_INIT;
	mq_strbuf_init(&sb);
	char *rk = join_changed(restart_keys), *ok = join_changed(other_keys);
	char *from = changed_origins(it->spec, restart_keys, other_keys);
	bool from_done = false;
	switch (it->action) {
	case MQ_ACT_CREATE:
		mq_strbuf_adds(&sb, in->want_running ? "new vm" : "new vm, desired state stopped: record only");
		break;
	case MQ_ACT_START:
		mq_strbuf_addf(&sb, "not running (observed %s)", it->observed);
		if (restart_keys->n || other_keys->n)
			mq_strbuf_addf(&sb, "; changed: %s%s%s", rk, restart_keys->n && other_keys->n ? ", " : "", ok);
		break;
	case MQ_ACT_RESTART:
		mq_strbuf_addf(&sb, "changed: %s (needs restart%s%s)", rk, from ? "; from " : "", from ? from : "");
		from_done = true;
		if (other_keys->n)
			mq_strbuf_addf(&sb, "; also %s", ok);
		break;
	case MQ_ACT_STOP:
		mq_strbuf_addf(&sb, "desired state is stopped (observed %s)", it->observed);
		break;
	case MQ_ACT_DELETE:
		mq_strbuf_addf(&sb, "no longer declared in '%s' (--prune)", it->rec && it->rec->source ? it->rec->source : "?");
		break;
	case MQ_ACT_UPDATE:
		if (in->held)
			mq_strbuf_addf(&sb, "changed: %s%s%s; held by 'maqet stop', record only", rk,
				       restart_keys->n && other_keys->n ? ", " : "", ok);
		else if (restart_keys->n)
			mq_strbuf_addf(&sb, "changed: %s%s%s; not running, record only", rk,
				       other_keys->n ? ", " : "", ok);
		else {
			mq_strbuf_addf(&sb, "changed: %s (no restart needed%s%s)", ok, from ? "; from " : "",
				       from ? from : "");
			from_done = true;
		}
		break;
	case MQ_ACT_NOOP:
	default:
		if (in->paused && in->declared) {
			mq_strbuf_addf(&sb, "paused (maqet resume %s)", it->name);
			if (restart_keys->n || other_keys->n)
				mq_strbuf_addf(&sb, "; changed: %s%s%s, applied after resume", rk,
					       restart_keys->n && other_keys->n ? ", " : "", ok);
		} else if (in->blocked && it->block_reason)
			mq_strbuf_adds(&sb, it->block_reason);
		else if (!in->declared)
			mq_strbuf_addf(&sb, "no longer declared (observed %s); use --prune to remove it", it->observed);
		else if (in->held)
			mq_strbuf_addf(&sb, "held by 'maqet stop' (observed %s); run 'maqet start %s' to release",
				       it->observed, it->name);
		else
			mq_strbuf_addf(&sb, "up to date (observed %s)", it->observed);
		break;
	}
	if (from && !from_done && (restart_keys->n || other_keys->n) && it->action != MQ_ACT_CREATE &&
	    it->action != MQ_ACT_NOOP)
		mq_strbuf_addf(&sb, " (from %s)", from);
	free(from);
	free(rk);
	free(ok);
	return mq_strbuf_detach(&sb);
}

/* Restart policy: should this down VM be left down for now?  Fills
 * it->block_reason / it->wake_at. */
static bool policy_blocks(struct mq_plan_item *it, const struct mq_spec *spec, const struct mq_vm_record *rec,
			  const struct mq_plan_opts *o)
{
	const char *obs = it->observed;
	const char *why = rec->exit_reason ? rec->exit_reason : "unknown reason";
	if (strcmp(obs, MQ_STATUS_CRASH_LOOP) == 0) {
		it->block_reason = xasprintf("crash-loop after %d failures (last: %s); change the manifest or run "
					     "'maqet start %s'",
					     rec->restart_count, why, it->name);
		return true;
	}
	if (strcmp(obs, MQ_STATUS_GUEST_STOPPED) == 0 && spec->restart != MQ_RESTART_ALWAYS) {
		it->block_reason = xasprintf("stopped by guest (%s); restart: %s leaves it stopped; run 'maqet start "
					     "%s' or change the manifest",
					     why, mq_restart_str(spec->restart), it->name);
		return true;
	}
	if (!o || !o->supervise)
		return false;
	bool failed = strcmp(obs, MQ_STATUS_CRASHED) == 0 || strcmp(obs, MQ_STATUS_FAILED) == 0;
	if (failed && spec->restart == MQ_RESTART_NEVER) {
		it->block_reason = xasprintf("%s (%s); restart: never leaves it down", obs, why);
		return true;
	}
	int64_t now = o->now_ms ? o->now_ms : mq_now_ms();
	if ((failed || strcmp(obs, MQ_STATUS_GUEST_STOPPED) == 0) && rec->backoff_until > now) {
		it->wake_at = rec->backoff_until;
		it->block_reason = xasprintf("backoff: restart in %.1fs (failure %d, %s)",
					     (double)(rec->backoff_until - now) / 1000.0, rec->restart_count, why);
		return true;
	}
	return false;
}

static void fill_item(struct mq_plan_item *it, const struct mq_spec *spec, const struct mq_vm_record *rec,
		      const struct mq_specset *set, bool prune, const struct mq_plan_opts *popts)
{
	struct mq_strv restart_keys = MQ_STRV_INIT, other_keys = MQ_STRV_INIT;
	struct mq_decide_in in = { 0 };
	in.declared = spec != NULL;
	in.recorded = rec != NULL;
	it->spec = spec;
	it->name = xstrdup(spec ? spec->name : rec->name);
	it->rec = rec ? mq_vm_record_dup(rec) : NULL;
	it->observed = rec ? mq_observe(rec) : "absent";
	it->held = rec && rec->hold;
	in.held = it->held;
	in.up = rec && mq_status_is_up(it->observed);
	in.paused = rec && strcmp(it->observed, "paused") == 0;
	if (spec)
		in.want_running = spec->state == MQ_DESIRED_RUNNING;
	/* A record left in starting or stopping belongs to a maqet that was
	 * killed mid-way (a pass never plans a VM while its own job runs).  Its
	 * QEMU may be up, with or without a recorded pid: to run it, a start
	 * adopts that QEMU (or starts one) and an interrupted stop is finished
	 * and started again; neither waits for a restart policy. */
	bool interrupted_start = rec && rec->status && strcmp(rec->status, MQ_STATUS_STARTING) == 0;
	bool interrupted_stop = rec && rec->status && strcmp(rec->status, MQ_STATUS_STOPPING) == 0;
	if (in.want_running && interrupted_start)
		in.up = false;
	if (spec && rec) {
		if (!rec->spec_hash || strcmp(rec->spec_hash, spec->hash) != 0)
			mq_spec_diff(rec->spec_json ? rec->spec_json : "", spec->canonical, &it->changed);
		if (!rec->source || strcmp(rec->source, spec->source) != 0)
			mq_strv_push(&it->changed, "source");
		for (size_t i = 0; i < it->changed.n; i++) {
			const char *k = it->changed.v[i];
			if (strcmp(k, "source") != 0 && mq_spec_field_class(k) == MQ_FIELD_RESTART)
				mq_strv_push(&restart_keys, k);
			else
				mq_strv_push(&other_keys, k);
		}
		in.restart_changed = restart_keys.n > 0;
		in.other_changed = other_keys.n > 0;
		if (rec->rolled_back_hash && strcmp(rec->rolled_back_hash, spec->hash) == 0) {
			/* this spec failed to start and was rolled back: not
			 * retried until the manifest changes again */
			in.restart_changed = in.other_changed = false;
			in.blocked = true;
			it->block_reason = xasprintf("rolled-back: %s; change the manifest to try again",
						     rec->rolled_back_reason ? rec->rolled_back_reason : "unknown reason");
		}
	}
	in.prune = !spec && rec && prune && in_sources(set, rec->source);
	if (spec && rec && in.want_running && !in.up && !in.restart_changed && !in.other_changed && !in.blocked &&
	    !interrupted_start)
		in.blocked = policy_blocks(it, spec, rec, popts);
	it->blocked = in.blocked;
	it->action = mq_plan_decide(&in);
	it->reason = make_reason(it, &in, &restart_keys, &other_keys);
	if (rec && mq_vmlock_busy_phase(rec) && mq_status_is_up(it->observed)) {
		/* a snapshot/restore job runs on it (reconciler/vmlock.h): left
		 * alone until it ends; a dead job's phase is recovered by the next
		 * pass that takes the state lock */
		char *holder = NULL;
		bool live = !popts || !popts->state_dir || mq_vmlock_busy(popts->state_dir, it->name, &holder);
		free(it->reason);
		it->reason = live ? xasprintf("busy (%s in progress%s%s)", mq_phase_get(rec) == MQ_PHASE_RESTORING
										? "restore" : "snapshot",
					      holder ? ": " : "", holder ? holder : "")
				  : xasprintf("busy (%s interrupted: its maqet went away; the next apply or watch pass "
					      "recovers it)", rec->status);
		free(holder);
		free(it->block_reason);
		it->block_reason = xstrdup(it->reason);
		it->blocked = true;
		it->action = MQ_ACT_NOOP;
		mq_strv_clear(&restart_keys);
		mq_strv_clear(&other_keys);
		return;
	}
	/* One owner per VM name: a VM recorded from another source is not this
	 * source's to change, unless moved explicitly (--adopt). */
	if (spec && rec && rec->source && strcmp(rec->source, spec->source) != 0) {
		it->owner = xstrdup(rec->source);
		if (!(popts && popts->adopt)) {
			char when[32] = "never";
			time_t t = (time_t)(rec->updated_at / 1000);
			struct tm tm;
			if (rec->updated_at > 0 && localtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
			free(it->reason);
			it->reason = xasprintf("vm '%s' belongs to source '%s' (last applied %s); use --adopt to move it",
					       it->name, rec->source, when);
			free(it->block_reason);
			it->block_reason = xstrdup(it->reason);
			it->conflict = true;
			it->blocked = true;
			it->action = MQ_ACT_NOOP;
			mq_strv_clear(&restart_keys);
			mq_strv_clear(&other_keys);
			return;
		}
		char *r2 = xasprintf("moved from source '%s' (--adopt); %s", rec->source, it->reason);
		free(it->reason);
		it->reason = r2;
	}
	if (interrupted_stop && in.want_running && !in.held && in.up &&
	    (it->action == MQ_ACT_NOOP || it->action == MQ_ACT_UPDATE)) {
		it->action = MQ_ACT_RESTART;
		free(it->reason);
		it->reason = xstrdup("an interrupted stop: stop it, then start it again");
	} else if (interrupted_start && in.want_running && it->action == MQ_ACT_START) {
		free(it->reason);
		it->reason = xstrdup("an interrupted start: adopt its qemu if it runs, else start it");
	}
	mq_strv_clear(&restart_keys);
	mq_strv_clear(&other_keys);
}

/* A vm recorded here and placed on another host now.  Running here on a
 * disk the other host cannot see, it keeps running (stopping it would only
 * take it down); otherwise it is stopped here and forgotten once down. */
static void plan_move(struct mq_plan_item *it, const struct mq_spec *spec, const struct mq_specset *set,
		      const struct mq_plan_opts *o)
{
	const char *to = spec->placement_host;
	bool up = mq_status_is_up(it->observed);
	free(it->reason);
	it->reason = NULL;
	/* the disk the vm runs on here is the recorded spec's (the manifest's
	 * spec of a vm placed elsewhere may be a light one, without storage) */
	struct mq_spec *ran = NULL;
	if (up && it->rec && it->rec->spec_json)
		(void)mq_spec_from_canonical(it->rec->spec_json, it->rec->source, &ran, NULL);
	char *disk = o->disk_dir ? mq_lease_path(ran ? ran : spec, o->disk_dir) : NULL;
	ran = mq_spec_free(ran);
	if (disk && up) {
		disk[strlen(disk) - strlen(MQ_LEASE_SUFFIX)] = '\0'; /* the image itself */
		char *why = NULL;
		if (!mq_placement_disk_shared(set->hosts, disk, &why)) {
			it->action = MQ_ACT_NOOP;
			it->blocked = true;
			it->reason = xasprintf("cannot move to host %s: disk %s is %s, not shared (declare it in "
					       "hosts.yaml shared_storage if it is); it keeps running here",
					       to, disk, why ? why : "local");
			it->block_reason = xstrdup(it->reason);
			free(why);
			free(disk);
			return;
		}
	}
	free(disk);
	it->moving_to = xstrdup(to);
	it->action = MQ_ACT_DELETE;
	it->reason = up ? xasprintf("placed on host %s now: stop it here, then forget it (observed %s)", to,
				    it->observed)
			: xasprintf("placed on host %s now: forget it here (observed %s)", to, it->observed);
}

/* A start of a vm whose disk lease another QEMU holds waits instead. */
static void plan_lease(struct mq_plan_item *it, const struct mq_plan_opts *o)
{
	if (!o || !o->disk_dir || !it->spec)
		return;
	bool starts = it->action == MQ_ACT_START ||
		      (it->action == MQ_ACT_CREATE && it->spec->state == MQ_DESIRED_RUNNING);
	/* an interrupted start adopts its own QEMU, which holds the lease */
	if (!starts || (it->rec && it->rec->status && strcmp(it->rec->status, MQ_STATUS_STARTING) == 0))
		return;
	char *path = mq_lease_path(it->spec, o->disk_dir);
	struct mq_lease_holder h;
	if (path && mq_lease_probe(path, &h) == 1) {
		char who[160];
		free(it->reason);
		/* a QEMU of this vm from this host whose main thread has died
		 * (a zombie leader) or that is gone: the lock goes when the
		 * kernel closes its fds, milliseconds after its exit was seen */
		char state = 0;
		int ps = h.pid > 0 && h.pid < INT32_MAX ? mq_proc_stat((pid_t)h.pid, NULL, &state) : -EINVAL;
		bool own = strcmp(h.vm, it->name) == 0 && (!o->host || strcmp(h.host, o->host) == 0);
		if (own && !(ps == 0 && (state == 'Z' || state == 'X'))) {
			/* held under this vm's name by this host, and not by a
			 * QEMU dying right now: a QEMU an interrupted start left
			 * (its start adopts or stops it, vmjob.c) or one the kernel
			 * is still closing (the start waits a moment for it,
			 * qemu.c): blocking here would wait for ever */
			free(path);
			return;
		}
		it->lease_own_exit = own;
		it->lease_pid = h.pid;
		if (it->lease_own_exit)
			it->reason = xasprintf("waiting for its exited QEMU (pid %lld) to release the disk lease %s",
					       h.pid, path);
		else
			it->reason = xasprintf("waiting for %s to release (disk lease %s)",
					       mq_lease_holder_str(&h, who, sizeof(who)), path);
		free(it->block_reason);
		it->block_reason = xstrdup(it->reason);
		it->action = MQ_ACT_NOOP;
		it->blocked = true;
		it->lease_wait = true;
	}
	free(path);
}

int mq_plan_build(const struct mq_specset *set, struct mq_vm_record *const *recs, size_t nrec,
		  const struct mq_plan_opts *opts, struct mq_plan **out, struct mq_error **err)
{
	bool prune = opts && opts->prune;
	/* Guard: a prune that empties a source needs allow_empty. */
	if (prune && !(opts && opts->allow_empty)) {
		for (size_t s = 0; s < set->sources.n; s++) {
			const char *src = set->sources.v[s];
			size_t recorded = 0, declared = 0;
			for (size_t i = 0; i < nrec; i++)
				if (recs[i]->source && strcmp(recs[i]->source, src) == 0)
					recorded++;
			for (size_t i = 0; i < set->n; i++)
				if (strcmp(set->specs[i]->source, src) == 0)
					declared++;
			if (recorded > 0 && declared == 0)
				return mq_error_set(err, EPERM,
						    "refusing to prune every vm applied from '%s' (%zu vm%s): it declares none; "
						    "pass --allow-empty to remove them all",
						    src, recorded, recorded == 1 ? "" : "s");
		}
	}

	struct mq_plan *p = xcalloc(1, sizeof(*p));
	struct mq_vm_record **sorted = xcalloc(nrec + 1, sizeof(*sorted));
	if (nrec)
		memcpy(sorted, recs, nrec * sizeof(*sorted));
	if (nrec > 1)
		qsort(sorted, nrec, sizeof(*sorted), rec_cmp);
	size_t n_local = set->n;
	if (opts && opts->host) {
		n_local = 0;
		for (size_t i = 0; i < set->n; i++)
			n_local += !placed_elsewhere(set->specs[i], opts);
		if (set->n > n_local)
			p->away = xcalloc(set->n - n_local, sizeof(*p->away));
	}
	p->items = xcalloc(n_local + nrec + 1, sizeof(*p->items));
	/* the records some spec names (what mq_specset_find would say, without
	 * scanning every spec per record) */
	bool *declared = xcalloc(nrec + 1, sizeof(*declared));
	for (size_t i = 0; i < set->n; i++) {
		const struct mq_spec *spec = set->specs[i];
		const struct mq_vm_record *rec = find_rec_mark(sorted, nrec, spec->name, declared);
		if (!placed_elsewhere(spec, opts)) {
			fill_item(&p->items[p->n], spec, rec, set, prune, opts);
			plan_lease(&p->items[p->n++], opts);
		} else if (rec && rec->source && strcmp(rec->source, spec->source) == 0) {
			/* moved away: stopped and forgotten here like a removed manifest */
			struct mq_plan_item *it = &p->items[p->n++];
			fill_item(it, NULL, rec, set, false, opts);
			plan_move(it, spec, set, opts);
		} else {
			p->away[p->n_away++] = (struct mq_plan_away){ spec->name, spec->placement_host };
		}
	}
	/* in the caller's record order */
	for (size_t i = 0; i < nrec; i++) {
		if (declared_rec(sorted, nrec, recs[i], declared))
			continue;
		if (!in_sources(set, recs[i]->source))
			continue; /* another source's vm: never touched */
		fill_item(&p->items[p->n++], NULL, recs[i], set, prune, opts);
	}
	free(declared);
	free(sorted);
	for (size_t i = 0; i < p->n; i++) {
		p->counts[p->items[i].action]++;
		if (p->items[i].conflict)
			p->conflicts++;
	}
	*out = p;
	return 0;
}

struct mq_plan *mq_plan_free(struct mq_plan *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n; i++) {
		free(p->items[i].name);
		free(p->items[i].reason);
		free(p->items[i].block_reason);
		free(p->items[i].owner);
		free(p->items[i].moving_to);
		mq_strv_clear(&p->items[i].changed);
		mq_vm_record_free(p->items[i].rec);
		struct mq_snap_acts sa = { p->items[i].snaps, p->items[i].n_snaps };
		mq_snap_acts_release(&sa);
	}
	free(p->items);
	free(p->away);
	free(p);
	return NULL;
}

size_t mq_plan_changes(const struct mq_plan *p)
{
	size_t n = p->n - p->counts[MQ_ACT_NOOP];
	for (size_t i = 0; i < p->n; i++)
		for (size_t k = 0; k < p->items[i].n_snaps; k++)
			n += p->items[i].snaps[k].kind != MQ_SNAPACT_PRE_CHANGE; /* part of its restart */
	return n;
}
