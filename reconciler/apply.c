#include "reconciler/apply.h"
#include "reconciler/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "reconciler/proc.h"
#include "reconciler/qemu.h"
#include "specs/fromjson.h"
#include "util/fileio.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

/* ---- worker protocol ------------------------------------------------------
 * A worker writes lines to its pipe:
 *   step <step> <outcome> <detail>
 *   disk <path>
 *   started <pid> <start_time> <accel> <qmp_path>
 *   stopped
 *   error <message>
 */

static void wline(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wline(int fd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	size_t n = strlen(s);
	char *line = xmalloc(n + 2);
	memcpy(line, s, n);
	line[n] = '\n';
	(void)mq_write_all(fd, line, n + 1);
	free(line);
	free(s);
}

struct stop_ud {
	int fd;
};

static void stop_step_cb(void *ud, const char *step, const char *outcome, const char *detail)
{
	struct stop_ud *u = ud;
	wline(u->fd, "step %s %s %s", step, outcome, detail ? detail : "");
}

struct job {
	size_t item;                 /* index in plan */
	struct mq_spec *spec;        /* spec to start (borrowed or owned) */
	struct mq_spec *owned_spec;
	struct mq_pidref ref;        /* process to stop */
	char *qmp_path;
	uint64_t stop_timeout_ms;
	bool needs_stop, needs_start;
	/* runtime */
	pid_t worker;
	int fd;
	struct mq_strbuf buf;
	enum { J_PENDING, J_RUNNING, J_DONE } phase;
	enum mq_outcome outcome;
	char *message;
	bool started;
	struct mq_start_result sr;
	char *stop_how;
};

static int worker_main(struct job *j, const char *name, const struct mq_apply_opts *o, int fd)
{
	struct mq_error *err = NULL;
	if (j->needs_stop && j->ref.pid > 0) {
		struct stop_ud u = { fd };
		struct mq_stop_opts so = {
			.timeout_ms = j->stop_timeout_ms,
			.grace_ms = o->stop_grace_ms,
			.force = o->force_stop,
			.step = stop_step_cb,
			.ud = &u,
		};
		int r = mq_qemu_stop(&j->ref, j->qmp_path, &so, &err);
		if (r < 0) {
			wline(fd, "error cannot stop vm '%s': %s", name, err ? err->msg : "stop failed");
			return 1;
		}
		wline(fd, "stopped");
	}
	if (j->needs_start && !j->needs_stop && j->ref.pid > 0) {
		/* A crashed instance may still be tearing down (watch begins the
		 * restart when its leader is a zombie): wait until it is fully gone,
		 * so its disk locks and sockets are released. */
		(void)mq_proc_wait_exit(&j->ref, 30000);
	}
	if (j->needs_start) {
		struct mq_strv created = MQ_STRV_INIT;
		int r = mq_qemu_prepare_disks(j->spec, o->disk_dir, &created, &err);
		for (size_t i = 0; i < created.n; i++)
			wline(fd, "disk %s", created.v[i]);
		mq_strv_clear(&created);
		if (r < 0) {
			wline(fd, "error cannot start vm '%s': %s", j->spec->name, err ? err->msg : "disk preparation failed");
			return 1;
		}
		struct mq_start_opts so = {
			.runtime_dir = o->runtime_dir,
			.disk_dir = o->disk_dir,
			.timeout_ms = o->start_timeout_ms,
		};
		struct mq_start_result res = { 0 };
		r = mq_qemu_start(j->spec, &so, &res, &err);
		if (r < 0) {
			wline(fd, "error %s", err ? err->msg : "start failed");
			return 1;
		}
		wline(fd, "started %d %llu %s %s", (int)res.ref.pid, (unsigned long long)res.ref.start_time,
		      res.accel, res.qmp_path ? res.qmp_path : "");
	}
	return 0;
}

/* ---- parent side ---------------------------------------------------------- */

struct run {
	struct mq_store *st;
	const struct mq_plan *plan;
	const struct mq_apply_opts *o;
	struct job *jobs;         /* one per plan item */
	bool *active;             /* item needs a worker */
	struct mq_apply_result *res;
	char **binary_checked;    /* binaries already checked, NULL-terminated list */
	size_t n_checked;
	char **binary_error;
	struct mq_spec **recspecs;  /* per item: the recorded spec, rebuilt from JSON */
	int jobs_max;
	struct mq_apply_result own_res;
};

static const char *item_source(const struct mq_plan_item *it)
{
	if (it->spec && it->spec->source)
		return it->spec->source;
	return it->rec ? it->rec->source : NULL;
}

static void finish(struct run *r, size_t i, enum mq_outcome out, const char *msg)
{
	struct job *j = &r->jobs[i];
	j->phase = J_DONE;
	j->outcome = out;
	free(j->message);
	j->message = xstrdup(msg ? msg : "");
	if (out == MQ_OUT_OK)
		r->res->ok++;
	else if (out == MQ_OUT_FAILED)
		r->res->failed++;
	else
		r->res->skipped++;
	if (r->o->report)
		r->o->report(r->o->ud, &r->plan->items[i], out, j->message);
}

/* Fresh record for an item from its current record and spec. */
static struct mq_vm_record *record_for(const struct mq_plan_item *it)
{
	struct mq_vm_record *rec = it->rec ? mq_vm_record_dup(it->rec) : mq_vm_record_new();
	if (!it->rec) {
		mq_vm_record_set(&rec->name, it->name);
		mq_vm_record_set(&rec->status, MQ_STATUS_CREATED);
	}
	if (it->spec) {
		mq_vm_record_set(&rec->source, it->spec->source);
		mq_vm_record_set(&rec->spec_json, it->spec->canonical);
		mq_vm_record_set(&rec->spec_hash, it->spec->hash);
		mq_vm_record_set(&rec->desired, mq_desired_str(it->spec->state));
	}
	return rec;
}

static void put(struct run *r, const struct mq_vm_record *rec)
{
	struct mq_error *err = NULL;
	if (mq_store_vm_put(r->st, rec, &err) < 0) {
		/* Keep going: the next pass re-observes reality. */
		mq_event(r->st, rec->name, rec->source, "record", "failed", err ? err->msg : "cannot write record");
	}
	mq_error_free(err);
}

static void apply_hold(struct run *r, struct mq_vm_record *rec)
{
	if (!r->o->hold)
		return;
	bool set = strcmp(r->o->hold, "set") == 0;
	if (rec->hold != set) {
		rec->hold = set;
		mq_event(r->st, rec->name, rec->source, set ? "hold" : "release", "ok",
			 set ? "held by 'maqet stop': reconciles leave it stopped" : "hold cleared by 'maqet start'");
	}
}

static uint64_t stop_timeout_for(const struct mq_plan_item *it, const struct mq_apply_opts *o, struct mq_spec *recspec)
{
	if (o->stop_timeout_ms > 0)
		return (uint64_t)o->stop_timeout_ms;
	if (it->spec)
		return it->spec->stop_timeout_ms;
	if (recspec)
		return recspec->stop_timeout_ms;
	return 30000;
}

/* QEMU binaries that answered --version, for the life of the process (a
 * watch runs for months): reused while the resolved file keeps its identity
 * (device, inode, size, mtime), checked again when it is replaced. */
struct bin_ok {
	char *binary;
	char *resolved;
	struct stat st;
};
static struct bin_ok *bin_cache;
static size_t bin_cache_n;

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int check_binary(struct run *r, const char *binary, const char **errmsg)
{
	for (size_t i = 0; i < bin_cache_n; i++) {
		struct stat st;
		if (strcmp(bin_cache[i].binary, binary) == 0 && stat(bin_cache[i].resolved, &st) == 0 &&
		    same_file(&st, &bin_cache[i].st))
			return 0;
	}
	/* Failures are remembered for this pass only: a missing binary fails fast. */
	for (size_t i = 0; i < r->n_checked; i++)
		if (strcmp(r->binary_checked[i], binary) == 0) {
			*errmsg = r->binary_error[i];
			return -1;
		}
	struct mq_error *err = NULL;
	char *resolved = NULL;
	int rc = mq_qemu_check_binary(binary, &resolved, NULL, &err);
	struct stat st;
	if (rc == 0 && resolved && stat(resolved, &st) == 0) {
		bin_cache = xreallocarray(bin_cache, bin_cache_n + 1, sizeof(*bin_cache));
		bin_cache[bin_cache_n].binary = xstrdup(binary);
		bin_cache[bin_cache_n].resolved = resolved;
		bin_cache[bin_cache_n].st = st;
		bin_cache_n++;
		resolved = NULL;
	}
	free(resolved);
	if (rc < 0) {
		r->binary_checked = xreallocarray(r->binary_checked, r->n_checked + 1, sizeof(char *));
		r->binary_error = xreallocarray(r->binary_error, r->n_checked + 1, sizeof(char *));
		r->binary_checked[r->n_checked] = xstrdup(binary);
		r->binary_error[r->n_checked] = xstrdup(err ? err->msg : "qemu binary check failed");
		*errmsg = r->binary_error[r->n_checked];
		r->n_checked++;
	}
	mq_error_free(err);
	return rc < 0 ? -1 : 0;
}

static long find_item(const struct mq_plan *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* 1 ready, 0 wait, -1 blocked (message in *why, caller frees). */
static int readiness(struct run *r, size_t i, char **why)
{
	const struct mq_plan_item *it = &r->plan->items[i];
	struct job *j = &r->jobs[i];
	if (j->needs_start && j->spec) {
		for (size_t d = 0; d < j->spec->depends_on.n; d++) {
			const char *dep = j->spec->depends_on.v[d];
			long k = find_item(r->plan, dep);
			if (k < 0) {
				/* Not part of this pass (an imperative start): ask the store. */
				struct mq_vm_record *drec = NULL;
				struct mq_error *e2 = NULL;
				bool dup = false;
				const char *obs = "absent";
				if (mq_store_vm_get(r->st, dep, &drec, &e2) == 0) {
					obs = mq_observe(drec);
					dup = mq_status_is_up(obs);
				}
				mq_vm_record_free(drec);
				mq_error_free(e2);
				if (!dup) {
					*why = xasprintf("dependency '%s' is not running (observed %s)", dep, obs);
					return -1;
				}
				continue;
			}
			const struct mq_plan_item *di = &r->plan->items[k];
			struct job *dj = &r->jobs[k];
			if (r->active[k] && dj->needs_start) {
				if (dj->phase != J_DONE)
					return 0;
				if (dj->outcome != MQ_OUT_OK || !dj->started) {
					*why = xasprintf("dependency '%s' did not start", dep);
					return -1;
				}
				continue;
			}
			if (r->active[k] && dj->phase != J_DONE)
				return 0; /* dependency being stopped: wait, then judge */
			bool up = mq_status_is_up(di->observed) && !(r->active[k] && dj->needs_stop && !dj->needs_start);
			if (!up) {
				*why = xasprintf("dependency '%s' is not running (observed %s)", dep, di->observed);
				return -1;
			}
		}
	}
	if (j->needs_stop) {
		/* Reverse order: wait for every active dependent that stops too. */
		for (size_t k = 0; k < r->plan->n; k++) {
			if (k == i || !r->active[k])
				continue;
			struct job *dj = &r->jobs[k];
			if (!dj->needs_stop || dj->phase == J_DONE || !dj->spec)
				continue;
			if (mq_strv_contains(&dj->spec->depends_on, it->name))
				return 0;
		}
	}
	return 1;
}

static int launch(struct run *r, size_t i)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		close(p[0]);
		int rc = worker_main(j, it->name, r->o, p[1]);
		close(p[1]);
		_exit(rc);
	}
	close(p[1]);
	j->worker = pid;
	j->fd = p[0];
	j->phase = J_RUNNING;
	mq_strbuf_init(&j->buf);

	/* Mark transitional status in the store. */
	struct mq_vm_record *rec = record_for(it);
	if (j->needs_stop && it->rec && mq_status_is_up(it->observed))
		mq_vm_record_set(&rec->status, MQ_STATUS_STOPPING);
	else if (j->needs_start)
		mq_vm_record_set(&rec->status, MQ_STATUS_STARTING);
	put(r, rec);
	mq_vm_record_free(rec);
	return 0;
}

static void handle_line(struct run *r, size_t i, char *line)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	const char *src = item_source(it);
	if (strncmp(line, "step ", 5) == 0) {
		char *step = line + 5;
		char *outcome = strchr(step, ' ');
		char *detail = NULL;
		if (outcome) {
			*outcome++ = '\0';
			detail = strchr(outcome, ' ');
			if (detail)
				*detail++ = '\0';
		}
		char *action = xasprintf("stop.%s", step);
		mq_event(r->st, it->name, src, action, outcome ? outcome : "?", detail && *detail ? detail : NULL);
		free(action);
		if (outcome && strcmp(outcome, "exited") == 0) {
			free(j->stop_how);
			j->stop_how = xstrdup(step);
		}
	} else if (strncmp(line, "disk ", 5) == 0) {
		mq_event(r->st, it->name, src, "disk.create", "ok", line + 5);
	} else if (strcmp(line, "stopped") == 0) {
		struct mq_vm_record *rec = record_for(it);
		mq_vm_record_set(&rec->status, MQ_STATUS_STOPPED);
		rec->pid = 0;
		rec->start_time = 0;
		rec->started_at = 0;
		mq_vm_record_set(&rec->last_error, NULL);
		apply_hold(r, rec);
		put(r, rec);
		mq_vm_record_free(rec);
		mq_event(r->st, it->name, src, "stop", "ok", j->stop_how ? j->stop_how : NULL);
	} else if (strncmp(line, "started ", 8) == 0) {
		int pid = 0;
		unsigned long long stt = 0;
		char accel[8] = "", qmp[4096] = "";
		if (sscanf(line + 8, "%d %llu %7s %4095s", &pid, &stt, accel, qmp) >= 3) {
			j->started = true;
			j->sr.ref.pid = pid;
			j->sr.ref.start_time = stt;
			memcpy(j->sr.accel, accel, sizeof(accel));
			free(j->sr.qmp_path);
			j->sr.qmp_path = xstrdup(qmp);
			struct mq_vm_record *rec = record_for(it);
			mq_vm_record_set(&rec->status, MQ_STATUS_RUNNING);
			rec->pid = pid;
			rec->start_time = stt;
			rec->started_at = mq_now_ms();
			mq_vm_record_set(&rec->qmp_path, qmp);
			mq_vm_record_set(&rec->accel, accel);
			mq_vm_record_set(&rec->last_error, NULL);
			rec->backoff_until = 0;
			/* An explicit start, or a manifest change that lifted a crash-loop,
			 * begins a fresh failure window. */
			if (r->o->reset_failures ||
			    (it->rec && it->rec->status && strcmp(it->rec->status, MQ_STATUS_CRASH_LOOP) == 0))
				rec->restart_count = 0;
			apply_hold(r, rec);
			put(r, rec);
			mq_vm_record_free(rec);
			char *d = xasprintf("pid %d, accel %s", pid, accel);
			mq_event(r->st, it->name, src, "start", "ok", d);
			free(d);
		}
	} else if (strncmp(line, "error ", 6) == 0) {
		free(j->message);
		j->message = xstrdup(line + 6);
	}
}

static void reap_worker(struct run *r, size_t i)
{
	struct job *j = &r->jobs[i];
	const struct mq_plan_item *it = &r->plan->items[i];
	int status = 0;
	while (waitpid(j->worker, &status, 0) < 0 && errno == EINTR)
		;
	close(j->fd);
	j->fd = -1;
	mq_strbuf_release(&j->buf);
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	const char *src = item_source(it);
	if (!ok) {
		char *msg = j->message && *j->message
				    ? xstrdup(j->message)
				    : xasprintf("cannot %s vm '%s': its worker died unexpectedly (status %d)",
						j->needs_start ? "start" : "stop", it->name, status);
		struct mq_vm_record *rec = record_for(it);
		if (j->needs_start && !j->started) {
			bool stopped_ok = !j->needs_stop || j->stop_how;
			mq_vm_record_set(&rec->status, stopped_ok || !it->rec ? MQ_STATUS_FAILED : it->observed);
			if (stopped_ok || !it->rec) {
				rec->pid = 0;
				rec->start_time = 0;
				rec->started_at = 0;
			}
		} else if (j->needs_stop) {
			/* stop failed: the process may still be there; keep its identity */
			mq_vm_record_set(&rec->status, it->observed);
		}
		mq_vm_record_set(&rec->last_error, msg);
		put(r, rec);
		mq_vm_record_free(rec);
		mq_event(r->st, it->name, src, mq_action_str(it->action), "failed", msg);
		finish(r, i, MQ_OUT_FAILED, msg);
		free(msg);
		return;
	}
	char *msg;
	switch (it->action) {
	case MQ_ACT_RESTART:
		msg = xasprintf("restarted (pid %lld -> %d, %s)", it->rec ? (long long)it->rec->pid : 0LL,
				(int)j->sr.ref.pid, j->sr.accel);
		break;
	case MQ_ACT_DELETE: {
		msg = NULL;
		break;
	}
	default:
		if (j->started)
			msg = xasprintf("started (pid %d, %s)", (int)j->sr.ref.pid, j->sr.accel);
		else
			msg = xasprintf("stopped (%s)", j->stop_how ? j->stop_how : "was not running");
		break;
	}
	if (it->action == MQ_ACT_DELETE)
		return; /* the caller completes deletes (record + disks) */
	finish(r, i, MQ_OUT_OK, msg);
	free(msg);
}

static void delete_disks(struct run *r, const struct mq_plan_item *it, struct mq_spec *spec, struct mq_strbuf *note)
{
	if (!spec)
		return;
	for (size_t k = 0; k < spec->n_storage; k++) {
		const struct mq_storage *s = &spec->storage[k];
		if (s->type == MQ_STORAGE_VIRTFS)
			continue;
		char *path = mq_storage_image_path(spec, s, r->o->disk_dir);
		if (unlink(path) == 0) {
			mq_event(r->st, it->name, item_source(it), "disk.delete", "ok", path);
			mq_strbuf_addf(note, ", deleted %s", path);
		} else if (errno != ENOENT) {
			char *d = xasprintf("%s: %s", path, strerror(errno));
			mq_event(r->st, it->name, item_source(it), "disk.delete", "failed", d);
			free(d);
		}
		free(path);
	}
}

static void complete_delete(struct run *r, size_t i, struct mq_spec *recspec)
{
	const struct mq_plan_item *it = &r->plan->items[i];
	struct mq_error *err = NULL;
	struct mq_strbuf note = MQ_STRBUF_INIT;
	mq_strbuf_init(&note);
	mq_strbuf_adds(&note, "deleted");
	if (r->o->delete_disks)
		delete_disks(r, it, recspec, &note);
	else if (recspec && recspec->n_storage)
		mq_strbuf_adds(&note, " (disks kept; use --delete-disks to remove them)");
	if (mq_store_vm_delete(r->st, it->name, &err) < 0) {
		mq_event(r->st, it->name, item_source(it), "delete", "failed", err ? err->msg : NULL);
		char *m = xasprintf("cannot delete vm '%s': %s", it->name, err ? err->msg : "cannot delete its record");
		finish(r, i, MQ_OUT_FAILED, m);
		free(m);
	} else {
		mq_event(r->st, it->name, item_source(it), "delete", "ok", note.buf);
		finish(r, i, MQ_OUT_OK, note.buf);
	}
	mq_strbuf_release(&note);
	mq_error_free(err);
}

void mq_apply_record_observations(struct mq_store *st, const struct mq_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++) {
		const struct mq_plan_item *it = &plan->items[i];
		if (!it->rec || !it->rec->status)
			continue;
		if (strcmp(it->observed, MQ_STATUS_CRASHED) == 0 && strcmp(it->rec->status, MQ_STATUS_CRASHED) != 0) {
			struct mq_vm_record *rec = mq_vm_record_dup(it->rec);
			char *d = xasprintf("process %lld (start time %llu) is gone", (long long)rec->pid,
					    (unsigned long long)rec->start_time);
			mq_vm_record_set(&rec->status, MQ_STATUS_CRASHED);
			mq_vm_record_set(&rec->last_error, d);
			struct mq_error *err = NULL;
			mq_store_vm_put(st, rec, &err);
			mq_error_free(err);
			mq_event(st, rec->name, rec->source, "crash", "detected", d);
			free(d);
			mq_vm_record_free(rec);
		}
	}
}

int mq_applier_start(struct mq_store *st, const struct mq_plan *plan, const struct mq_apply_opts *o,
		     struct mq_applier **out)
{
	struct run *rp = xcalloc(1, sizeof(*rp));
	struct run *r = rp;
	r->st = st;
	r->plan = plan;
	r->o = o;
	r->res = &r->own_res;
	r->jobs = xcalloc(plan->n + 1, sizeof(*r->jobs));
	r->active = xcalloc(plan->n + 1, sizeof(*r->active));
	r->recspecs = xcalloc(plan->n + 1, sizeof(*r->recspecs));
	r->jobs_max = o->jobs > 0 ? o->jobs : 4;
	struct mq_spec **recspecs = r->recspecs;

	mq_apply_record_observations(st, plan);

	for (size_t i = 0; i < plan->n; i++) {
		const struct mq_plan_item *it = &plan->items[i];
		struct job *j = &r->jobs[i];
		j->item = i;
		j->fd = -1;
		j->phase = J_DONE;
		if (it->rec && it->rec->spec_json) {
			struct mq_error *e2 = NULL;
			mq_spec_from_canonical(it->rec->spec_json, it->rec->source, &recspecs[i], &e2);
			mq_error_free(e2);
		}
		j->spec = (struct mq_spec *)it->spec;
		if (!j->spec && recspecs[i])
			j->spec = recspecs[i];
		if (it->rec) {
			j->ref.pid = (pid_t)it->rec->pid;
			j->ref.start_time = it->rec->start_time;
			j->qmp_path = xstrdup_null(it->rec->qmp_path);
		}
		j->stop_timeout_ms = stop_timeout_for(it, o, recspecs[i]);
		bool up = mq_status_is_up(it->observed);
		switch (it->action) {
		case MQ_ACT_NOOP:
			break;
		case MQ_ACT_UPDATE: {
			struct mq_vm_record *rec = record_for(it);
			apply_hold(r, rec);
			put(r, rec);
			mq_vm_record_free(rec);
			mq_event(st, it->name, item_source(it), "update", "ok", it->reason);
			finish(r, i, MQ_OUT_OK, "record updated");
			break;
		}
		case MQ_ACT_CREATE: {
			struct mq_vm_record *rec = record_for(it);
			put(r, rec);
			mq_vm_record_free(rec);
			mq_event(st, it->name, item_source(it), "create", "ok", it->spec ? it->spec->file : NULL);
			if (it->spec && it->spec->state == MQ_DESIRED_RUNNING) {
				j->needs_start = true;
			} else {
				finish(r, i, MQ_OUT_OK, "created (desired stopped)");
			}
			break;
		}
		case MQ_ACT_START:
			j->needs_start = true;
			j->needs_stop = up; /* e.g. `maqet restart` of a stopped vm is a start */
			break;
		case MQ_ACT_STOP:
			j->needs_stop = up;
			break;
		case MQ_ACT_RESTART:
			j->needs_stop = up;
			j->needs_start = true;
			break;
		case MQ_ACT_DELETE:
			j->needs_stop = up;
			break;
		default:
			break;
		}
		if (j->needs_start && !j->spec) {
			char *m = xasprintf("cannot start vm '%s': no spec recorded for it (apply its manifest again)", it->name);
			finish(r, i, MQ_OUT_FAILED, m);
			free(m);
			continue;
		}
		if (j->needs_stop || j->needs_start) {
			r->active[i] = true;
			j->phase = J_PENDING;
		} else if (it->action == MQ_ACT_DELETE) {
			complete_delete(r, i, recspecs[i]);
		} else if (it->action == MQ_ACT_STOP) {
			/* nothing to stop (already gone) */
			struct mq_vm_record *rec = record_for(it);
			mq_vm_record_set(&rec->status, MQ_STATUS_STOPPED);
			rec->pid = 0;
			apply_hold(r, rec);
			put(r, rec);
			mq_vm_record_free(rec);
			finish(r, i, MQ_OUT_OK, "already stopped");
		}
	}
	*out = (struct mq_applier *)rp;
	return 0;
}

bool mq_applier_step(struct mq_applier *a)
{
	struct run *r = (struct run *)a;
	const struct mq_plan *plan = r->plan;
	struct mq_store *st = r->st;
	for (;;) {
		size_t running = 0, pending = 0;
		for (size_t i = 0; i < plan->n; i++) {
			if (!r->active[i])
				continue;
			if (r->jobs[i].phase == J_RUNNING)
				running++;
			else if (r->jobs[i].phase == J_PENDING)
				pending++;
		}
		bool progressed = false;
		for (size_t i = 0; i < plan->n && running < (size_t)r->jobs_max; i++) {
			struct job *j = &r->jobs[i];
			if (!r->active[i] || j->phase != J_PENDING)
				continue;
			char *why = NULL;
			int rd = readiness(r, i, &why);
			if (rd < 0) {
				const struct mq_plan_item *it = &plan->items[i];
				char *cause = why;
				why = xasprintf("cannot %s vm '%s': %s", j->needs_start ? "start" : "stop", it->name, cause);
				free(cause);
				mq_event(st, it->name, item_source(it), mq_action_str(it->action), "skipped", why);
				struct mq_vm_record *rec = record_for(it);
				if (!it->rec)
					mq_vm_record_set(&rec->status, MQ_STATUS_CREATED);
				mq_vm_record_set(&rec->last_error, why);
				put(r, rec);
				mq_vm_record_free(rec);
				finish(r, i, MQ_OUT_SKIPPED, why);
				free(why);
				pending--;
				progressed = true;
				continue;
			}
			if (rd == 0)
				continue;
			if (j->needs_start) {
				const char *bmsg = NULL;
				if (check_binary(r, j->spec->binary, &bmsg) < 0) {
					const struct mq_plan_item *it = &plan->items[i];
					char *m = xasprintf("cannot start vm '%s': %s", it->name, bmsg);
					struct mq_vm_record *rec = record_for(it);
					mq_vm_record_set(&rec->status, it->rec && mq_status_is_up(it->observed) ? it->observed
														: MQ_STATUS_FAILED);
					mq_vm_record_set(&rec->last_error, m);
					put(r, rec);
					mq_vm_record_free(rec);
					mq_event(st, it->name, item_source(it), mq_action_str(it->action), "failed", m);
					finish(r, i, MQ_OUT_FAILED, m);
					free(m);
					pending--;
					progressed = true;
					continue;
				}
			}
			int lr = launch(r, i);
			if (lr < 0) {
				char *m = xasprintf("cannot %s vm '%s': cannot fork a worker: %s",
						    j->needs_start ? "start" : "stop", plan->items[i].name, strerror(-lr));
				finish(r, i, MQ_OUT_FAILED, m);
				free(m);
				pending--;
				progressed = true;
				continue;
			}
			running++;
			pending--;
			progressed = true;
		}
		if (running > 0)
			return false;
		if (pending == 0)
			return true;
		if (!progressed) {
			/* Only possible with a dependency loop among records. */
			for (size_t i = 0; i < plan->n; i++)
				if (r->active[i] && r->jobs[i].phase == J_PENDING)
					finish(r, i, MQ_OUT_SKIPPED, "waiting on a dependency that never finished");
			return true;
		}
	}
}

size_t mq_applier_pollfds(struct mq_applier *a, struct pollfd *pfds, size_t max)
{
	struct run *r = (struct run *)a;
	size_t np = 0;
	for (size_t i = 0; i < r->plan->n && np < max; i++)
		if (r->active[i] && r->jobs[i].phase == J_RUNNING) {
			pfds[np].fd = r->jobs[i].fd;
			pfds[np].events = POLLIN;
			pfds[np].revents = 0;
			np++;
		}
	return np;
}

void mq_applier_handle(struct mq_applier *a, int fd)
{
	struct run *r = (struct run *)a;
	for (size_t i = 0; i < r->plan->n; i++) {
		struct job *j = &r->jobs[i];
		if (!r->active[i] || j->phase != J_RUNNING || j->fd != fd)
			continue;
		char buf[4096];
		ssize_t n = read(j->fd, buf, sizeof(buf));
		if (n > 0) {
			mq_strbuf_add(&j->buf, buf, (size_t)n);
			char *nl;
			while ((nl = memchr(j->buf.buf, '\n', j->buf.len))) {
				*nl = '\0';
				char *line = xstrdup(j->buf.buf);
				size_t consumed = (size_t)(nl - j->buf.buf) + 1;
				memmove(j->buf.buf, nl + 1, j->buf.len - consumed);
				mq_strbuf_setlen(&j->buf, j->buf.len - consumed);
				handle_line(r, i, line);
				free(line);
			}
			return;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		reap_worker(r, i);
		if (r->plan->items[i].action == MQ_ACT_DELETE && j->phase != J_DONE)
			complete_delete(r, i, r->recspecs[i]);
		return;
	}
}

void mq_applier_result(const struct mq_applier *a, struct mq_apply_result *res)
{
	const struct run *r = (const struct run *)a;
	*res = r->own_res;
}

struct mq_applier *mq_applier_free(struct mq_applier *a)
{
	struct run *r = (struct run *)a;
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->plan->n; i++) {
		struct job *j = &r->jobs[i];
		if (j->fd >= 0)
			close(j->fd);
		mq_strbuf_release(&j->buf);
		free(j->message);
		free(j->qmp_path);
		free(j->stop_how);
		free(j->sr.qmp_path);
		mq_spec_free(r->recspecs[i]);
	}
	for (size_t i = 0; i < r->n_checked; i++) {
		free(r->binary_checked[i]);
		free(r->binary_error[i]);
	}
	free(r->binary_checked);
	free(r->binary_error);
	free(r->recspecs);
	free(r->jobs);
	free(r->active);
	free(r);
	return NULL;
}

int mq_apply(struct mq_store *st, const struct mq_plan *plan, const struct mq_apply_opts *o,
	     struct mq_apply_result *res, struct mq_error **err)
{
	struct mq_applier *a = NULL;
	int r = mq_applier_start(st, plan, o, &a);
	if (r < 0)
		return r;
	struct pollfd *pfds = xcalloc(plan->n + 1, sizeof(*pfds));
	while (!mq_applier_step(a)) {
		size_t np = mq_applier_pollfds(a, pfds, plan->n + 1);
		int pr = poll(pfds, np, -1);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			r = mq_error_set(err, errno, "poll failed: %s", strerror(errno));
			break;
		}
		for (size_t k = 0; k < np; k++)
			if (pfds[k].revents)
				mq_applier_handle(a, pfds[k].fd);
	}
	free(pfds);
	struct mq_apply_result local;
	mq_applier_result(a, &local);
	if (res)
		*res = local;
	mq_applier_free(a);
	if (r < 0)
		return r;
	return local.failed ? -EIO : 0;
}
