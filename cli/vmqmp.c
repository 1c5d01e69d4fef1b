#include "cli/vmqmp.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "reconciler/audit.h"
#include "reconciler/proc.h"
#include "reconciler/vmlock.h"
#include "util/xalloc.h"

int mq_vmop_lookup(struct mq_cli *cli, struct mq_vmop *op, const char *name, const char *verb)
{
	memset(op, 0, sizeof(*op));
	op->name = name;
	op->verb = verb;
	op->vmlock.fd = -1;
	bool present = false;
	int rc = mq_cli_open_store_existing(cli, &present);
	if (rc)
		return rc;
	struct mq_error *err = NULL;
	int r = present ? mq_store_vm_get(cli->store, name, &op->rec, &err) : -ENOENT;
	if (r == -ENOENT) {
		op->unknown = true;
		mq_error_free(err);
		mq_cli_err(cli, "no vm named '%s' in state dir '%s' (run 'maqet status' to list them)", name,
			   cli->state_dir);
		return MQ_EXIT_FAILURE;
	}
	if (r < 0)
		return mq_cli_fail(cli, err);
	const char *obs = mq_observe(op->rec);
	if (!mq_status_is_up(obs)) {
		op->not_running = true;
		mq_cli_err(cli, "cannot %s vm '%s': not running (observed %s); start it with 'maqet start %s'", verb, name,
			   obs, name);
		return MQ_EXIT_FAILURE;
	}
	if (!op->rec->qmp_path || !*op->rec->qmp_path) {
		mq_cli_err(cli, "cannot %s vm '%s': no qmp socket recorded", verb, name);
		return MQ_EXIT_FAILURE;
	}
	return -1;
}

int mq_vmop_connect(struct mq_cli *cli, struct mq_vmop *op)
{
	struct mq_error *err = NULL;
	char *what = xasprintf("maqet %s", op->verb);
	int r = mq_vmlock_acquire(&op->vmlock, cli->state_dir, op->name, what, MQ_VMOP_LOCK_TIMEOUT_MS, NULL, NULL,
				  &err);
	free(what);
	if (r < 0) {
		mq_error_prefix(&err, "cannot %s vm '%s'", op->verb, op->name);
		return mq_cli_fail(cli, err);
	}
	op->vmlocked = true;
	if (mq_qmp_connect(op->rec->qmp_path, 2000, &op->q, &err) < 0) {
		mq_error_prefix(&err, "cannot %s vm '%s'", op->verb, op->name);
		return mq_cli_fail(cli, err);
	}
	return -1;
}

struct exec_state {
	bool done;
	int status;
	json_object *ret;
	char *err_class;
	char *message;
};

static void exec_reply(struct mq_qmp *q, const struct mq_qmp_reply *r, void *ud)
{
	(void)q;
	struct exec_state *s = ud;
	s->done = true;
	s->status = r->status;
	if (r->status == 0) {
		s->ret = json_object_get(r->ret);
	} else {
		s->err_class = r->err_class ? xstrdup(r->err_class) : NULL;
		s->message = xstrdup(r->err_desc ? r->err_desc : r->message ? r->message : "failed");
	}
}

static bool exec_done(struct mq_qmp *q, void *arg)
{
	(void)q;
	return ((struct exec_state *)arg)->done;
}

int mq_vmop_exec(struct mq_vmop *op, const char *command, json_object *args, json_object **ret, char **err_class,
		 struct mq_error **err)
{
	return mq_vmop_exec_fd(op, command, args, -1, ret, err_class, err);
}

int mq_vmop_exec_fd(struct mq_vmop *op, const char *command, json_object *args, int fd, json_object **ret,
		    char **err_class, struct mq_error **err)
{
	struct exec_state s = { 0 };
	uint64_t id = 0;
	int r = fd >= 0 ? mq_qmp_send_fd(op->q, command, args, fd, exec_reply, &s, &id, err)
			: mq_qmp_send(op->q, command, args, exec_reply, &s, &id, err);
	if (r < 0)
		return r;
	r = mq_qmp_wait(op->q, exec_done, &s, -1, mq_mono_ms() + MQ_VMOP_QMP_TIMEOUT_MS, err);
	if (r < 0 || !s.done) {
		if (!s.done)
			mq_qmp_cancel(op->q, id);
		if (r == -ETIMEDOUT)
			mq_error_set(err, ETIMEDOUT, "no reply to '%s' within %d s", command, MQ_VMOP_QMP_TIMEOUT_MS / 1000);
		return r < 0 ? r : -EIO;
	}
	if (s.status < 0) {
		mq_error_set(err, s.status == -EREMOTEIO ? EREMOTEIO : -s.status, "%s%s%s", s.err_class ? s.err_class : "",
			     s.err_class ? ": " : "", s.message);
		if (err_class)
			*err_class = s.err_class;
		else
			free(s.err_class);
		free(s.message);
		return s.status;
	}
	if (ret)
		*ret = s.ret;
	else
		json_object_put(s.ret);
	return 0;
}

void mq_vmop_close(struct mq_vmop *op)
{
	op->q = mq_qmp_free(op->q);
	if (op->vmlocked)
		mq_lock_release(&op->vmlock);
	op->vmlocked = false;
	op->rec = mq_vm_record_free(op->rec);
}

int mq_vmop_record(struct mq_cli *cli, struct mq_vmop *op, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
		   int hold, bool tolerate, const char *action, const char *outcome, const char *detail,
		   struct mq_error **err)
{
	struct mq_lock lock;
	char *what = xasprintf("maqet %s", op->verb);
	int r = mq_lock_acquire(&lock, cli->state_dir, what, MQ_VMOP_LOCK_TIMEOUT_MS, err);
	free(what);
	if (r < 0)
		return r;
	struct mq_vm_record *rec = NULL;
	r = mq_store_vm_get(cli->store, op->name, &rec, err);
	if (r == 0 && (rec->pid != op->rec->pid || rec->start_time != op->rec->start_time)) {
		r = mq_error_set(err, ESTALE, "cannot record vm '%s': its process changed meanwhile (pid %lld now)",
				 op->name, (long long)rec->pid);
	}
	if (r == 0) {
		struct mq_error *perr = NULL;
		r = mq_phase_apply(rec, ev, ctx, &perr);
		if (r < 0 && tolerate) {
			mq_error_free(perr);
			r = 1;
		} else if (r < 0) {
			if (err)
				*err = perr;
			else
				mq_error_free(perr);
		}
	}
	if (r == 0) {
		if (hold >= 0)
			rec->hold = hold > 0;
		r = mq_audit_record(cli->store, rec, rec->source, action, outcome, detail, err);
		if (r == 0) {
			mq_vm_record_free(op->rec);
			op->rec = rec;
			rec = NULL;
		}
	}
	mq_vm_record_free(rec);
	mq_lock_release(&lock);
	return r;
}

void mq_vmop_event(struct mq_cli *cli, struct mq_vmop *op, const char *action, const char *outcome,
		   const char *detail)
{
	struct mq_error *err = NULL;
	if (mq_audit_event(cli->store, op->name, op->rec ? op->rec->source : NULL, action, outcome, detail, &err) < 0) {
		mq_cli_err(cli, "warning: cannot record the %s event of vm '%s': %s", action, op->name,
			   err ? err->msg : "?");
		mq_error_free(err);
	}
}

int mq_vmop_pause(struct mq_cli *cli, struct mq_vmop *op, bool pause, bool send)
{
	enum mq_phase ph = mq_phase_get(op->rec);
	const char *verb = pause ? "pause" : "resume";
	if (send) {
		if (pause && ph == MQ_PHASE_PAUSED) {
			printf("vm '%s' is already paused\n", op->name);
			return MQ_EXIT_OK;
		}
		if (!pause && ph == MQ_PHASE_RUNNING) {
			/* QEMU may still be stopped by a passthrough 'stop' of an
			 * older maqet: cont is harmless on a running VM. */
		} else if ((pause && ph != MQ_PHASE_RUNNING) || (!pause && ph != MQ_PHASE_PAUSED)) {
			mq_cli_err(cli, "cannot %s vm '%s': it is %s", verb, op->name, mq_phase_name(ph));
			return MQ_EXIT_FAILURE;
		}
		struct mq_error *err = NULL;
		if (mq_vmop_exec(op, pause ? "stop" : "cont", NULL, NULL, NULL, &err) < 0) {
			mq_error_prefix(&err, "cannot %s vm '%s'", verb, op->name);
			return mq_cli_fail(cli, err);
		}
	}
	struct mq_error *err = NULL;
	bool tolerate = !send || (!pause && ph == MQ_PHASE_RUNNING);
	int r = mq_vmop_record(cli, op, pause ? MQ_PHASE_EV_PAUSE : MQ_PHASE_EV_RESUME, NULL, -1, tolerate, verb, "ok",
			       pause ? "vcpus stopped (qmp stop); 'maqet resume' continues"
				     : "vcpus running again (qmp cont)",
			       &err);
	if (r < 0) {
		if (send) /* undo, so QEMU and the record agree */
			(void)mq_vmop_exec(op, pause ? "cont" : "stop", NULL, NULL, NULL, NULL);
		mq_error_prefix(&err, "cannot %s vm '%s'", verb, op->name);
		return mq_cli_fail(cli, err);
	}
	if (r == 1 && send)
		mq_vmop_event(cli, op, verb, "ok", "qmp cont sent; the record already said running");
	if (send)
		printf("%s %s\n", op->name, pause ? "paused" : "resumed");
	return MQ_EXIT_OK;
}

void mq_vmop_sleep_ms(int ms)
{
	if (ms > 0)
		(void)poll(NULL, 0, ms);
}
