/* img.h - every qemu-img call of maqet.
 *
 * qemu-img is taken next to an explicit `binary:` path when there is one,
 * else through PATH.  Its diagnostics come back on one line, without the
 * "qemu-img: " and "<image>: " prefixes.
 */
#ifndef MQ_IMG_H
#define MQ_IMG_H

#include <stdbool.h>

#include "specs/spec.h"
#include "util/error.h"
#include "util/strv.h"

/* Create every missing qcow2/raw image of spec with `qemu-img create` (never
 * overwriting; backing_file/backing_format honoured).  An image that does not
 * exist and has no size is an error.  Names of created files are appended to
 * `created` (may be NULL). */
int mq_qemu_prepare_disks(const struct mq_spec *spec, const char *disk_dir, struct mq_strv *created,
			  struct mq_error **err);

/* Internal snapshots of a qcow2 image with `qemu-img snapshot` (offline:
 * the image must not be in use by a running QEMU).  `qemu_img` is the
 * qemu-img binary (NULL = through PATH).
 *   list: `snapshot -l`, one tag per entry appended to `tags`;
 *   create (-c), delete (-d), apply (-a) of snapshot `tag`. */
int mq_img_snapshot_list(const char *qemu_img, const char *image, struct mq_strv *tags, struct mq_error **err);
int mq_img_snapshot_create(const char *qemu_img, const char *image, const char *tag, struct mq_error **err);
int mq_img_snapshot_delete(const char *qemu_img, const char *image, const char *tag, struct mq_error **err);
/* `qemu-img info --output=json [-U] image`: its stdout in *json (caller
 * frees).  force_share (-U) reads an image a running QEMU holds. */
int mq_img_info_json(const char *qemu_img, const char *image, bool force_share, char **json, struct mq_error **err);
/* The qemu-img binary for spec: next to an explicit `binary:` path, else
 * through PATH; NULL when not found.  Caller frees. */
char *mq_img_find(const struct mq_spec *spec);
int mq_img_snapshot_apply(const char *qemu_img, const char *image, const char *tag, struct mq_error **err);
/* `qemu-img check -q -r leaks image`: give back clusters a failed
 * qemu-img snapshot -c left allocated but unused (it bumps refcounts before
 * it writes the snapshot table, so running out of space half-way leaks
 * them).  Harmless when there are none. */
int mq_img_repair_leaks(const char *qemu_img, const char *image, struct mq_error **err);
/* The same three with a callback run every tick_ms while qemu-img works
 * (for a progress bar); op is 'c' (create), 'd' (delete) or 'a' (apply). */
int mq_img_snapshot_op(const char *qemu_img, char op, const char *image, const char *tag, int tick_ms,
		       void (*tick)(void *ud), void *ud, struct mq_error **err);

#endif
