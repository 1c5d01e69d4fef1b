/* vmqmp.h - shared plumbing of the operator verbs that talk to a running
 * VM's QEMU (qmp, send-keys, type, screendump, pause, resume).
 *
 * They reach QEMU through the VM's control monitor (the record's qmp_path,
 * <name>.qmp), never through watch's event connection (<name>.ev), under a
 * short per-VM lock (<state>/vm-NAME.lock, reconciler/vmlock.h) so two
 * operator commands on one VM do not interleave, nor one with a snapshot
 * job (which holds that lock for its whole run).  Record writes (pause, resume, an intended stop)
 * also take the state lock for the read-modify-write, like every other
 * writer.
 */
#ifndef MQ_CLI_VMQMP_H
#define MQ_CLI_VMQMP_H

#include <stdbool.h>

#include "cli/cli.h"
#include "reconciler/lock.h"
#include "reconciler/phase.h"
#include "reconciler/qmp.h"

#define MQ_VMOP_QMP_TIMEOUT_MS 10000
#define MQ_VMOP_LOCK_TIMEOUT_MS 30000

struct mq_vmop {
	const char *name;
	const char *verb;            /* "pause", "send keys to", ... for messages */
	struct mq_vm_record *rec;    /* as read by mq_vmop_lookup */
	struct mq_qmp *q;            /* after mq_vmop_connect */
	struct mq_lock vmlock;
	bool vmlocked;
	bool not_running;            /* lookup failed because the vm is down (rec is set) */
	bool unknown;                /* lookup failed because no record has that name */
};

/* Open the store, read the record of `name` and check that it is up (a live
 * QEMU with a control socket).  Returns -1 to continue, or an exit code
 * after printing ("no vm named 'x'", "cannot VERB vm 'x': not running
 * (observed stopped); start it with 'maqet start x'"). */
int mq_vmop_lookup(struct mq_cli *cli, struct mq_vmop *op, const char *name, const char *verb);
/* Take the per-VM lock and connect to the control monitor.  -1 or an exit
 * code after printing. */
int mq_vmop_connect(struct mq_cli *cli, struct mq_vmop *op);
/* Run one command on the connection (args borrowed).  0, or -errno with
 * *err; for a QMP error reply, *err_class (if non-NULL) gets the class. */
int mq_vmop_exec(struct mq_vmop *op, const char *command, json_object *args, json_object **ret, char **err_class,
		 struct mq_error **err);
/* The same with `fd` passed along (SCM_RIGHTS; getfd). */
int mq_vmop_exec_fd(struct mq_vmop *op, const char *command, json_object *args, int fd, json_object **ret,
		    char **err_class, struct mq_error **err);
/* Close the connection, drop the locks, free the record. */
void mq_vmop_close(struct mq_vmop *op);

/* Under the state lock: read the record again, check it still describes the
 * process looked up, apply `ev` (ctx may be NULL), set the hold flag when
 * hold > 0 (clear when 0, keep when < 0), and write it with an event
 * (action, outcome, detail).  When `ev` is not allowed in the current phase
 * and tolerate is true, nothing is written and 1 is returned.  Returns 0,
 * 1, or -errno with *err. */
int mq_vmop_record(struct mq_cli *cli, struct mq_vmop *op, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
		   int hold, bool tolerate, const char *action, const char *outcome, const char *detail,
		   struct mq_error **err);
/* An event about the VM (best effort: a failure is printed as a warning). */
void mq_vmop_event(struct mq_cli *cli, struct mq_vmop *op, const char *action, const char *outcome,
		   const char *detail);

/* Pause / resume on an open operation: QMP stop / cont, then the phase
 * machine's pause / resume recorded with its event.  Returns an exit code
 * after printing. */
int mq_vmop_pause(struct mq_cli *cli, struct mq_vmop *op, bool pause, bool send);

/* Sleep ms milliseconds (poll with no fds). */
void mq_vmop_sleep_ms(int ms);

#endif
