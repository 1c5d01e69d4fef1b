/* placement.c - shared or local storage for placement moves (placement.h). */
#include "reconciler/placement.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#include "util/paths.h"
#include "util/xalloc.h"

/* f_type values from statfs(2) / linux/magic.h */
static const struct {
	unsigned long magic;
	const char *name;
	bool network;
} fs_types[] = {
	{ 0x6969UL, "nfs", true },           { 0xFF534D42UL, "cifs", true },  { 0xFE534D42UL, "smb2", true },
	{ 0x517BUL, "smb", true },           { 0x00C36400UL, "ceph", true },  { 0x01161970UL, "gfs2", true },
	{ 0x7461636FUL, "ocfs2", true },     { 0x65735546UL, "fuse", true },  { 0x01021997UL, "9p", true },
	{ 0x5346414FUL, "afs", true },       { 0x6B414653UL, "afs", true },   { 0x0BD00BD0UL, "lustre", true },
	{ 0x47504653UL, "gpfs", true },      { 0x013111A8UL, "ibrix", true }, { 0xAAD7AAEAUL, "panfs", true },
	{ 0xEF53UL, "ext4", false },         { 0x58465342UL, "xfs", false },  { 0x9123683EUL, "btrfs", false },
	{ 0x01021994UL, "tmpfs", false },    { 0x2FC12FC1UL, "zfs", false },  { 0x794C7630UL, "overlayfs", false },
	{ 0xF2F52010UL, "f2fs", false },     { 0x4D44UL, "vfat", false },     { 0x5346544EUL, "ntfs", false },
	{ 0x3153464AUL, "jfs", false },      { 0x52654973UL, "reiserfs", false },
	{ 0xCA451A4EUL, "bcachefs", false },
};

const char *mq_placement_fs_name(long f_type, bool *network)
{
	unsigned long m = (unsigned long)f_type & 0xFFFFFFFFUL;
	for (size_t i = 0; i < sizeof(fs_types) / sizeof(fs_types[0]); i++)
		if (fs_types[i].magic == m) {
			if (network)
				*network = fs_types[i].network;
			return fs_types[i].name;
		}
	if (network)
		*network = false;
	return NULL;
}

bool mq_placement_disk_shared(const struct mq_hosts *hosts, const char *path, char **why)
{
	if (mq_hosts_shared_dir(hosts, path))
		return true;
	struct statfs sf;
	int r = statfs(path, &sf);
	if (r < 0 && errno == ENOENT) {
		char *dir = mq_path_dirname(path);
		r = statfs(dir, &sf);
		free(dir);
	}
	if (r < 0) {
		if (why)
			*why = xasprintf("on a filesystem maqet cannot inspect (%s)", strerror(errno));
		return false;
	}
	bool network = false;
	const char *name = mq_placement_fs_name((long)sf.f_type, &network);
	if (network)
		return true;
	if (why)
		*why = name ? xasprintf("on local %s", name)
			    : xasprintf("on a local filesystem (type 0x%lx)", (unsigned long)sf.f_type & 0xFFFFFFFFUL);
	return false;
}
