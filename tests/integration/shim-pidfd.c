/* shim-pidfd: an LD_PRELOAD library that makes pidfd_open(2) fail, to test
 * how `maqet watch` copes with a kernel (or sandbox) without pidfds, or with
 * its fd table full.
 *
 *   MQ_SHIM_PIDFD=enosys   pidfd_open fails with ENOSYS (kernel < 5.3,
 *                          seccomp filter)
 *   MQ_SHIM_PIDFD=emfile   pidfd_open fails with EMFILE (fd limit reached)
 *   unset / other          no effect
 *
 * Both glibc's pidfd_open() wrapper and syscall(SYS_pidfd_open, ...) are
 * intercepted; every other syscall() number is forwarded to the real
 * syscall() with its six arguments.  The mode is read once at load, and
 * LD_PRELOAD is removed from the environment then, so that processes the
 * shimmed program starts (QEMU, qemu-img) run without the shim.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int pidfd_open(pid_t pid, unsigned int flags);
long syscall(long number, ...);

static int shim_err = -1; /* -1: not read yet, 0: off */

static int fault(void)
{
	if (shim_err < 0) {
		const char *m = getenv("MQ_SHIM_PIDFD");
		shim_err = !m ? 0 : strcmp(m, "enosys") == 0 ? ENOSYS : strcmp(m, "emfile") == 0 ? EMFILE : 0;
	}
	return shim_err;
}

__attribute__((constructor)) static void shim_init(void)
{
	(void)fault();
	unsetenv("LD_PRELOAD");
}

typedef long (*syscall_fn)(long, ...);

static long real_syscall(long n, long a, long b, long c, long d, long e, long f)
{
	static syscall_fn real;
	if (!real) {
		void *p = dlsym(RTLD_NEXT, "syscall");
		memcpy(&real, &p, sizeof(real));
	}
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return real(n, a, b, c, d, e, f);
}

int pidfd_open(pid_t pid, unsigned int flags)
{
	int e = fault();
	if (e) {
		errno = e;
		return -1;
	}
	return (int)real_syscall(SYS_pidfd_open, (long)pid, (long)flags, 0, 0, 0, 0);
}

long syscall(long number, ...)
{
	long a[6];
	va_list ap;
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (number == SYS_pidfd_open) {
		int e = fault();
		if (e) {
			errno = e;
			return -1;
		}
	}
	return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
