/* lease.h - the disk lease: no vm runs on two hosts at once.
 *
 * Before QEMU starts, maqet takes an exclusive OFD lock (fcntl F_OFD_SETLK)
 * on `<first disk>.maqet-lease` and writes the holder (host, vm, pid, time)
 * into the file.  The locked fd is handed to QEMU (spawn.h lease_fd), so the
 * lock lives exactly as long as that QEMU: the kernel drops it when QEMU
 * exits, whatever happens to maqet.  Another host (or state dir) that finds
 * it held does not start the vm.  On a shared filesystem this needs working
 * OFD locks across hosts (NFSv4, GFS2, OCFS2, CephFS; README "Pinned hosts").
 *
 * A vm without a qcow2/raw disk has no lease.
 */
#ifndef MQ_LEASE_H
#define MQ_LEASE_H

#include <stdint.h>
#include <sys/types.h>

#include "specs/spec.h"
#include "util/error.h"

#define MQ_LEASE_SUFFIX ".maqet-lease"
/* watch re-plans a vm waiting for a lease this often (it also re-plans on
 * every other wake-up) */
#define MQ_LEASE_RECHECK_MS 500

struct mq_lease_holder {
	char host[64];    /* "" when the file names none */
	char vm[64];
	long long pid;
	int64_t since_ms; /* wall ms, 0 = unknown */
};

/* "<image path of the first qcow2/raw storage>.maqet-lease", or NULL when
 * the vm has none.  Caller frees. */
char *mq_lease_path(const struct mq_spec *spec, const char *disk_dir);

/* Is the lease held?  0 = free (or no lease file), 1 = held (*h filled from
 * the file), -errno when it cannot be checked. */
int mq_lease_probe(const char *path, struct mq_lease_holder *h);

/* Take the lease for `vm` as `host` (NULL = this machine's host name) and
 * record it in the file.  Returns the locked fd (O_CLOEXEC: hand it to QEMU
 * and close it), -EBUSY when held (*h filled when h), or -errno, with *err. */
int mq_lease_take(const char *path, const char *host, const char *vm, struct mq_lease_holder *h,
		  struct mq_error **err);

/* Name pid (the QEMU just started with the lease fd) as the holder in the
 * file, in place of the process that took it.  0 or -errno. */
int mq_lease_set_pid(int fd, pid_t pid);

/* "host a" / "host a (pid 123)" text for messages, into buf. */
const char *mq_lease_holder_str(const struct mq_lease_holder *h, char *buf, size_t n);

#endif
