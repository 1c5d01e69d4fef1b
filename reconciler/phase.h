/* phase.h - the one VM phase machine.
 *
 * A VM's phase is what `vms.status` stores and what users see.  It changes
 * only through an event, and only where the table below allows that event in
 * the current phase.  mq_phase_apply() is THE ONLY code that writes
 * rec->status in the whole program: everything else (apply, watch, the CLI)
 * describes what happened as an event and lets this module decide the next
 * phase and the fields that go with it (process identity, last_error,
 * exit_reason, backoff).  A forbidden pair is a bug or a race made visible:
 * it fails with -EINVAL and "invalid transition: 'EVENT' in phase 'PHASE'".
 *
 * Pure: no I/O, no store, no clock except mq_now_ms() for a SET_PROCESS whose
 * ctx->started_at is 0.
 *
 * The table (copy into ARCHITECTURE.md)
 * -------------------------------------
 * Phases: absent (no record), created, starting, running, paused, stopping,
 * stopped, stopped-by-guest, crashed, crash-loop, failed, snapshotting,
 * restoring.  "Up" phases expect a QEMU process (pid + start time) to exist:
 * starting, running, paused, stopping, snapshotting, restoring.  "Down"
 * phases: created, stopped, stopped-by-guest, crashed, crash-loop, failed.
 *
 *   from                 event            -> to                effects
 *   absent               record           -> created           -
 *   down (any)           start-begin      -> starting          -
 *   starting             start-begin      -> starting          -   (an interrupted start, retried)
 *   starting             spawned          -> starting          set-process   (QEMU exists, not ready yet:
 *                                                              its identity is recorded at once)
 *   starting             start-ok         -> running           set-process clear-error clear-backoff
 *                                                              [+ reset-failures when ctx asks]
 *   starting             start-fail       -> failed            clear-process set-error
 *   starting|running|    stop-begin       -> stopping          -
 *     paused|stopping                                              (stopping: a stuck stop, retried)
 *   stopping             stop-ok          -> stopped           clear-process clear-error
 *   down (any)           stop-ok          -> stopped           clear-process  (nothing to stop; keeps last_error)
 *   stopping             stop-fail        -> ctx->resume_phase set-error      (process still up:
 *                                            in starting|running|paused        back where it was)
 *   stopping             exit-intended    -> stopped           clear-process clear-error set-exit-reason
 *   stopping             observed-gone    -> stopped           clear-process clear-error
 *                                                              (it was being stopped: the watch calls
 *                                                              such an exit intended too)
 *   up except stopping   exit-guest       -> stopped-by-guest  end-run clear-error set-exit-reason
 *   up except stopping   exit-crash       -> crashed           end-run set-error set-exit-reason
 *   up except stopping   observed-gone    -> crashed           end-run set-error
 *   crashed|failed|      crash-loop       -> crash-loop        clear-backoff
 *     stopped-by-guest
 *   starting|stopping|   adopt            -> running           set-process clear-error
 *     crashed|failed
 *   running              pause            -> paused            -
 *   paused               resume           -> running           -
 *   running|paused       snapshot-begin   -> snapshotting      -   (live)
 *   down (any)           snapshot-begin   -> snapshotting      clear-process  (offline: no QEMU)
 *   snapshotting         snapshot-end     -> ctx->resume_phase -   (running|paused|any down phase)
 *   running|paused       restore-begin    -> restoring         -
 *   down (any)           restore-begin    -> restoring         clear-process
 *   restoring            restore-end      -> ctx->resume_phase -   (running|paused|any down phase)
 *   any but absent       forget           -> absent            clear-process  (caller deletes the row;
 *                                                              stop an up VM first)
 *
 * Everything else is forbidden.  Notably: start-ok only from starting (a
 * restart is stop-begin, stop-ok, start-begin, start-ok); no start-begin from
 * an up phase other than starting; no stop-begin during a snapshot or restore
 * (finish or cancel the job first); exit-* in stopping is not an event (the
 * exit of a VM being stopped is exit-intended); crash-loop only from a down
 * phase that a restart policy counts (an up VM is never put in crash-loop).
 *
 * Effects (what mq_phase_apply() writes besides status):
 *   set-process     pid, start_time from ctx (both required, non-zero),
 *                   started_at = ctx->started_at (0 = now), qmp_path and
 *                   accel from ctx when not NULL
 *   clear-process   pid, start_time, started_at = 0
 *   end-run         started_at = 0; pid + start_time are KEPT as the identity
 *                   of the exited process, so a restart can wait until that
 *                   exact process is fully gone
 *   set-error       last_error = ctx->error (required, non-empty)
 *   clear-error     last_error = NULL
 *   set-exit-reason exit_reason = ctx->exit_reason (required, non-empty)
 *   clear-backoff   backoff_until = 0
 *   reset-failures  restart_count = 0, backoff_until = 0
 * Failure counting itself (restart_count, backoff_until after a crash) stays
 * with the restart policy (supervise.h mq_backoff_failure): whether a failure
 * counts depends on the VM's `restart:` policy, which this table does not
 * know; when it reports a crash loop, the caller sends crash-loop.  The hold
 * flag is not part of the phase either (`maqet stop`/`start` set it).
 */
#ifndef MQ_PHASE_H
#define MQ_PHASE_H

#include <stdbool.h>
#include <stdint.h>

#include "state/store.h"
#include "util/error.h"

enum mq_phase {
	MQ_PHASE_ABSENT = 0,      /* "absent": no record (stored status NULL) */
	MQ_PHASE_CREATED,         /* "created": recorded, never started */
	MQ_PHASE_STARTING,        /* "starting" */
	MQ_PHASE_RUNNING,         /* "running" */
	MQ_PHASE_PAUSED,          /* "paused" */
	MQ_PHASE_STOPPING,        /* "stopping" */
	MQ_PHASE_STOPPED,         /* "stopped" */
	MQ_PHASE_STOPPED_BY_GUEST, /* "stopped-by-guest": the guest powered itself off */
	MQ_PHASE_CRASHED,         /* "crashed": the process went away unexpectedly */
	MQ_PHASE_CRASH_LOOP,      /* "crash-loop": too many failures, no automatic restarts */
	MQ_PHASE_FAILED,          /* "failed": the last start failed */
	MQ_PHASE_SNAPSHOTTING,    /* "snapshotting" */
	MQ_PHASE_RESTORING,       /* "restoring" */
	MQ_PHASE__COUNT
};

enum mq_phase_event {
	MQ_PHASE_EV_RECORD = 0,     /* "record": a new record is written */
	MQ_PHASE_EV_START_BEGIN,    /* "start-begin": a start is launched */
	MQ_PHASE_EV_START_OK,       /* "start-ok": QEMU is up (pid + start time known) */
	MQ_PHASE_EV_START_FAIL,     /* "start-fail" */
	MQ_PHASE_EV_STOP_BEGIN,     /* "stop-begin" */
	MQ_PHASE_EV_STOP_OK,        /* "stop-ok": the process is gone (or there was none) */
	MQ_PHASE_EV_STOP_FAIL,      /* "stop-fail": the process may still be up */
	MQ_PHASE_EV_EXIT_INTENDED,  /* "exit-intended": exit seen while maqet was stopping it */
	MQ_PHASE_EV_EXIT_GUEST,     /* "exit-guest": the guest powered off */
	MQ_PHASE_EV_EXIT_CRASH,     /* "exit-crash": the process went away unexpectedly */
	MQ_PHASE_EV_OBSERVED_GONE,  /* "observed-gone": a liveness check found a recorded-up
	                               VM's process gone or its pid reused */
	MQ_PHASE_EV_CRASH_LOOP,     /* "crash-loop": too many failures */
	MQ_PHASE_EV_ADOPT,          /* "adopt": a live QEMU proven to be this VM's is taken over */
	MQ_PHASE_EV_PAUSE,          /* "pause" */
	MQ_PHASE_EV_RESUME,         /* "resume" */
	MQ_PHASE_EV_SNAPSHOT_BEGIN, /* "snapshot-begin" */
	MQ_PHASE_EV_SNAPSHOT_END,   /* "snapshot-end" (done or failed: back to ctx->resume_phase) */
	MQ_PHASE_EV_RESTORE_BEGIN,  /* "restore-begin" */
	MQ_PHASE_EV_RESTORE_END,    /* "restore-end" (done or failed: back to ctx->resume_phase) */
	MQ_PHASE_EV_FORGET,         /* "forget": the record is deleted */
	MQ_PHASE_EV_SPAWNED,        /* "spawned": the starting VM's QEMU exists (pid + start time
	                               known), before it is ready */
	MQ_PHASE_EV__COUNT
};

/* Effects: bit flags, see the table above. */
enum {
	MQ_PHASE_FX_SET_PROCESS     = 1u << 0,
	MQ_PHASE_FX_CLEAR_PROCESS   = 1u << 1,
	MQ_PHASE_FX_END_RUN         = 1u << 2,
	MQ_PHASE_FX_SET_ERROR       = 1u << 3,
	MQ_PHASE_FX_CLEAR_ERROR     = 1u << 4,
	MQ_PHASE_FX_SET_EXIT_REASON = 1u << 5,
	MQ_PHASE_FX_CLEAR_BACKOFF   = 1u << 6,
	MQ_PHASE_FX_RESET_FAILURES  = 1u << 7,
};

/* What the event carries.  Only the fields the transition's effects (or its
 * resume) need are read; ctx may be NULL when it needs none. */
struct mq_phase_ctx {
	int64_t pid;               /* set-process: > 0 */
	uint64_t start_time;       /* set-process: field 22 of /proc/PID/stat, != 0 */
	int64_t started_at;        /* set-process: wall ms; 0 = mq_now_ms() */
	const char *qmp_path;      /* set-process: NULL = leave the record's */
	const char *accel;         /* set-process: NULL = leave the record's */
	const char *error;         /* set-error */
	const char *exit_reason;   /* set-exit-reason */
	enum mq_phase resume_phase; /* stop-fail, snapshot-end, restore-end: the phase the VM
	                               was in before stop-begin / snapshot-begin / restore-begin */
	bool reset_failures;       /* start-ok only: an explicit start, or a manifest change
	                              that lifted a crash-loop, begins a fresh failure window */
};

struct mq_phase_step {
	enum mq_phase next;
	unsigned effects;          /* MQ_PHASE_FX_* */
};

/* "running", "stopped-by-guest", ... ("absent" for MQ_PHASE_ABSENT);
 * NULL for a value out of range. */
const char *mq_phase_name(enum mq_phase p);
/* Exact names only (including "absent"); -EINVAL "unknown phase 'x'". */
int mq_phase_parse(const char *s, enum mq_phase *out, struct mq_error **err);
/* A QEMU process is expected to exist: starting, running, paused, stopping,
 * snapshotting, restoring. */
bool mq_phase_is_up(enum mq_phase p);
/* "start-ok", "observed-gone", ...; NULL for a value out of range. */
const char *mq_phase_event_name(enum mq_phase_event ev);

/* The record's phase: status NULL = absent; an unknown string is -EINVAL. */
int mq_phase_of(const struct mq_vm_record *rec, enum mq_phase *out, struct mq_error **err);

/* The record's phase for readers that only branch on it: absent for no
 * status, and a status this version does not know reads as stopped (a
 * newer maqet's phase: never treated as up). */
enum mq_phase mq_phase_get(const struct mq_vm_record *rec);

/* Next phase and effects of `ev` in phase `from`.  -EINVAL for a forbidden
 * pair ("invalid transition: 'start-ok' in phase 'stopped'"), a resume phase
 * the event cannot return to, or a ctx lacking what the effects need.  *out
 * is untouched on failure. */
int mq_phase_transition(enum mq_phase from, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
			struct mq_phase_step *out, struct mq_error **err);

/* Transition from the record's phase and write the result into it: status
 * (NULL when the next phase is absent: the caller deletes the row) and the
 * fields of the effects.  Does not touch the store.  On failure the record is
 * untouched and the message names the vm. */
int mq_phase_apply(struct mq_vm_record *rec, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
		   struct mq_error **err);

#endif
