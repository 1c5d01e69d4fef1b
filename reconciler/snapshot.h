/* snapshot.h - internal qcow2 snapshots of one VM: list, create, restore,
 * delete; offline through qemu-img, live through QMP jobs.
 *
 * The disk images are the truth: a snapshot exists when its tag is in the
 * VM's qcow2 images (qemu-img info --output=json for a stopped VM, QMP
 * query-block / query-named-block-nodes for a running one).  The state store
 * (state/snapshots.h) only adds who made it (the origin); a tag found in the
 * images without a row there is "external".  Rows whose tag is on no drive
 * any more are dropped when found.
 *
 * Running or not: the VM is running when its record's phase is up and its
 * recorded process (pid + start time) is alive; the QMP socket is the
 * record's qmp_path.  The spec used is the record's canonical spec
 * (mq_spec_from_canonical(rec->spec_json, rec->source)), i.e. what the VM
 * was started with, so drive names match QEMU's.
 *
 * Block nodes: every qcow2/raw drive is `-drive ...,id=<storage>,
 * node-name=<mq_snap_node_name()>`; a running VM's node of drive D is looked
 * up with query-block (device D -> inserted.node-name), so VMs started by an
 * older maqet (auto-generated node names) work as well.
 *
 * CONTRACT for callers (CLI, apply, watch workers):
 *   - Locks, two ways.  env->state_dir NULL: the caller holds the state lock
 *     (lock.h, <state_dir>/lock) for the whole call (apply's pass).
 *     env->state_dir set (the CLI, watch's snapshot workers): the caller
 *     holds NO lock; the library takes the VM's per-VM lock (vmlock.h) for
 *     the whole operation (waiting up to env->lock_timeout_ms, calling
 *     env->waiting once when it must wait) and the state lock only around
 *     each record step.  Each step re-reads the record under the state lock
 *     and refuses (-ESTALE) when it changed meanwhile (e.g. watch recorded
 *     that QEMU exited during the job): the failure is reported and the
 *     phase watch wrote is kept.  Other writers leave a VM in a busy phase
 *     alone (plan marks it busy).  Exception: a disk-only restore of a
 *     running VM holds the state lock from its stop to its start again, so
 *     no watch pass restarts the VM with half-reverted disks.  list needs
 *     no lock.
 *   - Calls BLOCK (qemu-img runs, QMP jobs are waited for with poll() and a
 *     deadline; nothing sleeps).  Never call from inside watch's loop: run
 *     them in a worker (worker.h) or from the CLI/apply.
 *   - Library code: nothing is printed; 0 or -errno with *err
 *     "cannot snapshot vm 'NAME': ..." / "cannot restore vm 'NAME': ..." /
 *     "cannot delete snapshot 'S' of vm 'NAME': ...".
 *   - Refusals happen before anything is changed: bad name, reserved prefix
 *     for MQ_SNAP_MANUAL, name exists (without overwrite), unknown drive,
 *     no qcow2 drive, --live on a stopped VM / --offline on a running one,
 *     memory state with a raw drive or a virtfs share (the message names the
 *     drive / share and why), missing snapshot, restore of a running VM that
 *     would lose its memory state without force.
 *   - Phases: create and delete go snapshot-begin -> snapshot-end (resume =
 *     the phase before); restore restore-begin -> restore-end; each written with
 *     mq_audit_record() (vm record + event in one transaction).  A disk-only
 *     restore of a running VM is stop-begin/stop-ok (qemu.c stop ladder),
 *     restore-begin/-end, start-begin/start-ok (mq_qemu_start).  `rec` is
 *     updated in place to the last record written (the caller may keep using
 *     it); it must be the current row of the store.
 *   - Events (state events table, via audit.c): action "snapshot-create",
 *     "snapshot-restore", "snapshot-delete"; outcome "started" (with the
 *     begin transition), then "ok" / "failed" (with the end transition), or
 *     "refused" alone (nothing was changed); detail "snapshot 'S' (origin O,
 *     MODE) by WHO in N ms[: error]", MODE "offline", "live, memory",
 *     "live, disks only", "stop, offline, start" (restore), "live" (delete).
 *     The stop and start of a disk-only restore are "stop" / "start" events.
 *   - A phase "snapshotting"/"restoring" found at the start (a maqet that
 *     died half-way: the caller or this call holds the per-VM lock, so no job
 *     of a live maqet runs) is ended first (event outcome "failed",
 *     "interrupted").
 *     A VM "starting"/"stopping", or recorded up with its process gone, is
 *     refused.
 *   - env->store is an open store of the calling process (a worker opens
 *     its own).  runtime_dir/disk_dir as for apply (mq_start_opts).
 *   - Atomicity: a create that fails half-way deletes the tag from the drives
 *     where it was created (and its store row), and a running VM keeps
 *     running (snapshot-save stops the CPUs only while it runs and QEMU
 *     resumes them itself).
 *   - Progress: env->progress (may be NULL) is called with the job's status
 *     and current/total from query-jobs at least 4 times a second while a QMP
 *     job runs; offline ("running", drives done, drives) at the start of
 *     each drive and every 200 ms while qemu-img works on it.
 */
#ifndef MQ_SNAPSHOT_H
#define MQ_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "specs/spec.h"
#include "state/store.h"
#include "util/error.h"

#define MQ_SNAP_NAME_MAX 64

/* Who made a snapshot.  Stored as its name in the store. */
enum mq_snap_origin {
	MQ_SNAP_EXTERNAL = 0, /* "external": found on the disks, not made by maqet */
	MQ_SNAP_MANUAL,       /* "manual": maqet snapshot create */
	MQ_SNAP_DECLARED,     /* "declared": manifest snapshots.named */
	MQ_SNAP_SCHEDULED,    /* "scheduled": manifest snapshots.schedule (names "auto-...") */
	MQ_SNAP_PRE_CHANGE,   /* "pre-change": before a restart-class change ("pre-change-...") */
	MQ_SNAP_PRE_RESTORE,  /* "pre-restore": taken by restore as a backup ("pre-restore-...") */
	MQ_SNAP_ORIGIN__COUNT
};
const char *mq_snap_origin_name(enum mq_snap_origin o); /* NULL out of range */
/* Exact names; -EINVAL "unknown snapshot origin 'x'". */
int mq_snap_origin_parse(const char *s, enum mq_snap_origin *out, struct mq_error **err);

/* Name rules: [A-Za-z0-9._-]{1,64}, and not digits only (QEMU would take
 * such a name for a snapshot id).  For MQ_SNAP_MANUAL and MQ_SNAP_DECLARED
 * the reserved prefixes "auto-", "pre-change-", "pre-restore-" are refused
 * ("snapshot name 'auto-x' is reserved: the prefix 'auto-' is for maqet's
 * own snapshots"); maqet's own origins may use them.  -EINVAL. */
int mq_snap_name_check(const char *name, enum mq_snap_origin origin, struct mq_error **err);
/* A name for maqet's own snapshots: "<prefix><UTC yyyymmddThhmmss[.mmm]Z>"
 * from wall ms `now_ms`, e.g. mq_snap_auto_name("pre-restore-", t) ->
 * "pre-restore-20261201T120000Z" (milliseconds added only when not 0).
 * Caller frees. */
char *mq_snap_auto_name(const char *prefix, int64_t now_ms);

/* The block node name maqet gives drive `storage` on the QEMU command line
 * ("mq-" + storage name, when that fits QEMU's rules (letter first, then
 * [A-Za-z0-9_.-], <= 31 chars); otherwise "mqdrive<index>", which no
 * "mq-" name can equal).  Caller frees. */
char *mq_snap_node_name(const struct mq_spec *spec, size_t storage_index);

/* One snapshot of a VM (a tag, on one or more of its drives). */
struct mq_snapshot {
	char *name;
	char **drives;          /* storage names holding the tag, in spec order */
	size_t n_drives;
	bool vmstate;           /* memory state included (vm-state-size > 0 on a drive) */
	char *vmstate_drive;    /* the drive holding it, or NULL */
	uint64_t vmstate_size;  /* bytes */
	int64_t created_at;     /* wall ms (date-sec/date-nsec of the image) */
	uint64_t vm_clock_ns;   /* guest clock at the snapshot */
	enum mq_snap_origin origin;
};

struct mq_snap_list {
	struct mq_snapshot *items; /* sorted by created_at, then name */
	size_t n;
	bool live;                 /* read from QMP (the VM was running) */
};
void mq_snap_list_release(struct mq_snap_list *l);
/* Find by name; NULL when absent. */
const struct mq_snapshot *mq_snap_list_find(const struct mq_snap_list *l, const char *name);

/* Parse the "snapshots" array of `qemu-img info --output=json` or of a QMP
 * block node's "image" (same fields: id, name, vm-state-size, date-sec,
 * date-nsec, vm-clock-sec, vm-clock-nsec) and merge it into l as drive
 * `drive`.  Exposed for unit tests.  -EPROTO on malformed input. */
int mq_snap_list_merge_json(struct mq_snap_list *l, const char *drive, const char *json, struct mq_error **err);

typedef void (*mq_snap_progress_fn)(void *ud, const char *status, int64_t current, int64_t total);

/* Where and by whom. */
struct mq_snap_env {
	struct mq_store *store;
	const char *runtime_dir;
	const char *disk_dir;       /* default image location */
	const char *who;            /* recorded in events: "cli", "apply", "watch", ... */
	int job_timeout_ms;         /* per QMP job / qemu-img call; 0 = 600000 */
	int stop_timeout_ms;        /* disk-only restore of a running VM: ACPI wait; 0 = spec's stop_timeout */
	mq_snap_progress_fn progress; /* may be NULL */
	void *ud;
	const char *state_dir;      /* non-NULL: the library locks (see CONTRACT) */
	bool caller_locked;         /* with state_dir: the caller holds the state lock after all (apply):
	                               no locking, but a VM whose per-VM lock is held is refused as busy */
	int lock_timeout_ms;        /* with state_dir: per-VM and state lock waits; 0 = 60000 */
	void (*waiting)(void *ud, const char *holder); /* with state_dir: called once before waiting for the
	                                                  per-VM lock (holder may be NULL); may be NULL */
};

/* Is the VM of rec running (up phase + live recorded process)? */
bool mq_snap_vm_running(const struct mq_vm_record *rec);

/* Every snapshot of the VM, with origins from the store.  No lock needed. */
int mq_snap_list(const struct mq_snap_env *env, const struct mq_vm_record *rec, struct mq_snap_list *out,
		 struct mq_error **err);

enum mq_snap_mode {
	MQ_SNAP_MODE_AUTO = 0, /* live when running, else offline */
	MQ_SNAP_MODE_LIVE,     /* refused when not running */
	MQ_SNAP_MODE_OFFLINE,  /* refused when running */
};

struct mq_snap_create_opts {
	const char *name;
	enum mq_snap_origin origin;  /* MQ_SNAP_EXTERNAL is refused */
	const char *const *drives;   /* storage names; NULL/0 = every qcow2 drive */
	size_t n_drives;
	enum mq_snap_mode mode;
	bool overwrite;              /* an existing tag of that name is deleted first */
	bool no_vmstate;             /* live: disks only (no memory state) */
};

/* What an operation did. */
struct mq_snap_result {
	bool live;                   /* done through QMP on the running VM */
	bool vmstate;                /* create: memory state saved; restore: memory state loaded */
	bool restarted;              /* restore: the VM was stopped and started again */
	char *backup;                /* restore: name of the pre-restore snapshot taken, or NULL */
	size_t n_drives;
	int64_t duration_ms;
};
void mq_snap_result_release(struct mq_snap_result *r);

int mq_snap_create(const struct mq_snap_env *env, struct mq_vm_record *rec, const struct mq_snap_create_opts *o,
		   struct mq_snap_result *res, struct mq_error **err);

struct mq_snap_restore_opts {
	const char *name;
	bool force;       /* running VM: allow throwing away its current memory state */
	bool no_backup;   /* do not take a pre-restore-<time> snapshot first */
};

/* Restore: a snapshot with memory state on a running VM -> snapshot-load job
 * (needs force).  A disk-only snapshot on a running VM -> stop (needs force),
 * qemu-img snapshot -a on each drive, start again.  A stopped VM -> qemu-img
 * snapshot -a (a memory state is ignored: the VM boots from the disks).
 * Every drive holding the tag is reverted; drives without it are left alone.
 * Unless no_backup, a pre-restore snapshot (origin pre-restore, same mode as
 * the restore, with memory state when the VM is running and allows it) is
 * taken first and named in res->backup. */
int mq_snap_restore(const struct mq_snap_env *env, struct mq_vm_record *rec, const struct mq_snap_restore_opts *o,
		    struct mq_snap_result *res, struct mq_error **err);

/* Delete the tag from every drive holding it (snapshot-delete job when
 * running, qemu-img snapshot -d when stopped) and its store row. */
int mq_snap_delete(const struct mq_snap_env *env, struct mq_vm_record *rec, const char *name,
		   struct mq_snap_result *res, struct mq_error **err);

#endif
