/* snapshot-int.h - shared by the snapshot modules (snapshot.c: names,
 * origins, create; snapop.c: the operation context; snaprestore.c: restore
 * and delete).  Not an API outside reconciler/snap*.c. */
#ifndef MQ_SNAPSHOT_INT_H
#define MQ_SNAPSHOT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "reconciler/lock.h"
#include "reconciler/phase.h"
#include "reconciler/qmp.h"
#include "reconciler/snapshot.h"
#include "util/strv.h"

#define QMP_TIMEOUT_MS 30000

/* One operation on one VM: its record, spec, QMP connection (running only),
 * block node names and the state lock's nesting. */
struct op {
	const struct mq_snap_env *env;
	struct mq_vm_record *rec;
	struct mq_spec *spec;
	char *qemu_img;
	bool running;
	struct mq_qmp *q;
	char **nodes; /* per storage index: the block node name (running only) */
	json_object *blocks; /* mq_snapop_open's query-block answer, for the first mq_snapop_list */
	unsigned job_seq;
	struct mq_lock st; /* the state lock, while st_depth > 0 (env->state_dir mode) */
	int st_depth;
};

/* snapop.c */
int mq_snapop_check_phase(struct op *op, const char *verb, enum mq_phase *resume, struct mq_error **err);
int mq_snapop_delete_on(struct op *op, const char *tag, const struct mq_strv *drives, bool with_progress,
		struct mq_error **err);
char *mq_snapop_event_detail(const struct op *op, const char *name, enum mq_snap_origin origin,
		const char *mode, int64_t t0, const struct mq_error *e);
char *mq_snapop_image_of(const struct op *op, size_t i);
int mq_snapop_img_op(const struct op *op, char c, const char *img, const char *tag, bool with_progress,
		size_t done, size_t total, struct mq_error **err);
int mq_snapop_job_timeout(const struct op *op);
int mq_snapop_need_nodes(const struct op *op, const struct mq_strv *drives, struct mq_error **err);
json_object *mq_snapop_node_array(const struct op *op, const struct mq_strv *drives);
int mq_snapop_list(struct op *op, struct mq_snap_list *out, struct mq_error **err);
int mq_snapop_open(const struct mq_snap_env *env, struct mq_vm_record *rec, struct op *op, struct mq_error **err);
void mq_snapop_release(struct op *op);
int mq_snapop_phase_write(struct op *op, enum mq_phase_event ev, const struct mq_phase_ctx *ctx,
		const char *action, const char *outcome, const char *detail, struct mq_error **err);
void mq_snapop_progress(const struct op *op, const char *status, int64_t cur, int64_t total);
int mq_snapop_query_blocks(struct op *op, json_object **blocks, struct mq_error **err);
int mq_snapop_refuse(struct op *op, const char *action, struct mq_error **err);
int mq_snapop_run_job(struct op *op, const char *command, json_object *args, struct mq_error **err);
bool mq_snapop_has_drive(const struct mq_snapshot *s, const char *drive);
int mq_snapop_state_lock(struct op *op, struct mq_error **err);
void mq_snapop_state_unlock(struct op *op);
long mq_snapop_storage_index(const struct mq_spec *spec, const char *name);
int mq_snapop_vm_begin(const struct mq_snap_env *env, struct mq_vm_record *rec, const char *what,
		struct mq_lock *vl, struct mq_error **err);
void mq_snapop_vm_end(struct mq_lock *vl);

int mq_snapop_finish(struct op *op, enum mq_phase_event ev, enum mq_phase resume, const char *action,
		     const char *name, enum mq_snap_origin origin, const char *mode, int64_t t0, int r,
		     struct mq_error **e);

/* snapshot.c */
int mq_snapop_create_in(struct op *op, const struct mq_snap_create_opts *o, struct mq_snap_result *res,
		struct mq_error **err);
int mq_snapop_query_running_status(struct op *op, char **status);
void mq_snapop_resume_if_needed(struct op *op, bool was_running);
bool mq_snapop_vmstate_possible(const struct mq_spec *spec);

#endif
