/* vmjob.h - what a worker does for one VM: the slow QEMU work of a pass.
 *
 * Runs inside a worker process (reconciler/worker.h) and reports every step
 * to the parent as typed messages; the parent alone writes the store:
 *   MQ_WMSG_STEP     per stop-ladder step (step, outcome, detail)
 *   MQ_WMSG_STOPPED  the old process is gone
 *   MQ_WMSG_DISK     per disk image created
 *   MQ_WMSG_SPAWNED  QEMU exists (pid, start time), before it is ready
 *   MQ_WMSG_ADOPTED  a QEMU of this VM left by an interrupted start (the
 *                    recorded pid, or found by its command line naming this
 *                    VM's QMP socket, reconciler/qemuid.h) whose command line
 *                    is what the spec starts was taken over instead of
 *                    starting another; one that differs is stopped first
 *   MQ_WMSG_STARTED  QEMU runs (pid, start time, accel, QMP path), with the
 *                    negotiated QMP event connection attached when asked
 *   MQ_WMSG_ERROR    the failure, as the whole user-facing message
 * A stop also stops any QEMU of this VM found by its command line (left by an
 * interrupted start that never recorded it).
 * The worker exits 0 on success, 1 after an MQ_WMSG_ERROR.
 */
#ifndef MQ_VMJOB_H
#define MQ_VMJOB_H

#include <stdbool.h>
#include <stdint.h>

#include "reconciler/proc.h"
#include "specs/spec.h"

struct mq_vmjob {
	const char *name;
	const struct mq_spec *spec;  /* to start; NULL when only stopping */
	bool stop, start;
	struct mq_pidref ref;        /* process to stop / wait for */
	const char *qmp_path;        /* its QMP socket, may be NULL */
	uint64_t stop_timeout_ms;
	int stop_grace_ms;
	bool force_stop;
	const char *runtime_dir, *disk_dir;
	const char *host;            /* disk lease holder name (lease.h); NULL = uname */
	int start_timeout_ms;
	bool keep_ev;                /* hand the QMP event connection to the parent */
	/* snapshots.before_change (restart-class change of a running VM):
	 * after the stop, snapshot every existing qcow2 image of old_spec as
	 * `pre_change` (offline, qemu-img) and report MQ_WMSG_STEP
	 * "pre-change"/ok/tag (or /failed/why: then old_spec is started again
	 * and the new spec is not tried).  With `rollback`, a start of the new
	 * spec that fails is reported as STEP "new-start"/failed/why, the images
	 * are reverted to the tag (STEP "rollback"/ok|failed) and old_spec is
	 * started instead (then MQ_WMSG_STARTED as usual). */
	const char *pre_change;      /* NULL = no pre-change snapshot */
	const struct mq_spec *old_spec;
	bool rollback;
};

/* mq_worker_fn for a struct mq_vmjob. */
int mq_vmjob_run(int fd, void *job);

#endif
