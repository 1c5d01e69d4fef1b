/* placement.h - can a vm's disk follow it to another host?
 *
 * A placement move stops the vm on the old host and starts it on the new
 * one from the same disk, so the disk must be on storage both hosts see:
 * a directory hosts.yaml declares in `shared_storage`, or a network or
 * cluster filesystem (NFS, CIFS/SMB, CephFS, GFS2, OCFS2, GlusterFS and
 * other FUSE filesystems, 9p, AFS, Lustre), told by statfs f_type.
 */
#ifndef MQ_PLACEMENT_H
#define MQ_PLACEMENT_H

#include <stdbool.h>

#include "specs/hosts.h"

/* Whether `path` (a disk image; its directory when it does not exist) is on
 * shared storage.  When not, *why (caller frees) says where it is, e.g.
 * "on local ext4". */
bool mq_placement_disk_shared(const struct mq_hosts *hosts, const char *path, char **why);

/* The filesystem name for a statfs f_type ("ext4", "nfs", ...), or NULL. */
const char *mq_placement_fs_name(long f_type, bool *network);

#endif
