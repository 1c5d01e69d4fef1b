/* qcow2snap.h - the internal snapshot table of a qcow2 image, read straight
 * from the file (no qemu-img process).
 *
 * The layout is the one documented in QEMU's docs/interop/qcow2.txt: the
 * header holds nb_snapshots (offset 60) and snapshots_offset (64); each
 * table entry is l1_table_offset, l1_size, id_str_size, name_size,
 * date_sec, date_nsec, vm_clock_nsec, vm_state_size (32 bits),
 * extra_data_size, the extra data (vm_state_size_large from 8 bytes on),
 * the id string and the name, padded to 8 bytes.  All big-endian.
 *
 * Used for stopped VMs (snapop.c), where it answers in microseconds what
 * `qemu-img info --output=json` answers in tens of milliseconds; the result
 * has the same shape as qemu-img's, so both feed the same parser.  The
 * image must not be written meanwhile (the caller holds the state lock, or
 * only lists).
 */
#ifndef MQ_QCOW2SNAP_H
#define MQ_QCOW2SNAP_H

#include <json-c/json.h>

#include "util/error.h"

/* A new json object {"snapshots": [{"id", "name", "vm-state-size",
 * "date-sec", "date-nsec", "vm-clock-sec", "vm-clock-nsec"}, ...]} (the
 * fields of `qemu-img info --output=json`) in *out (caller puts it).
 * -ENOTSUP when the file is not a qcow2 image of version 2 or 3 (the caller
 * may ask qemu-img instead), -EPROTO on a malformed table, -errno when it
 * cannot be read; *err says which file and why. */
int mq_qcow2_snapshots(const char *path, json_object **out, struct mq_error **err);

#endif
