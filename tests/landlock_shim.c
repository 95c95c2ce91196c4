/*
 * An LD_PRELOAD shim for tests/security/isolation.py: pop3d on an older
 * kernel's Landlock, emulated on this one. It replaces glibc's syscall(3),
 * through which pop3d makes every Landlock call (sandbox.c).
 *
 *   POP3D_LANDLOCK_ABI=N  (N >= 1) the ABI version query answers N; the
 *                         ruleset pop3d then asks for (the rights ABI N
 *                         knows) is the real kernel's, so ABI N's rules
 *                         are enforced for real
 *   POP3D_LANDLOCK_ABI=0  no Landlock: every Landlock call fails, ENOSYS
 *                         for the version query as a kernel without it
 *                         answers, EOPNOTSUPP for the rest (disabled at boot)
 *
 * Anything else passes through unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif

typedef long (*syscall_fn)(long, ...);

static syscall_fn real;
static int abi = -1;   /* -1: pass everything through */

/* At load time: later the caller may be under a seccomp filter that allows no lookup. */
__attribute__((constructor)) static void shim_init(void)
{
	real = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
	const char *v = getenv("POP3D_LANDLOCK_ABI");
	if (v && *v)
		abi = atoi(v);
}

static long landlock(long nr, const long a[6])
{
	if (abi == 0) {
		errno = nr == SYS_landlock_create_ruleset &&
			(unsigned long)a[2] == LANDLOCK_CREATE_RULESET_VERSION ? ENOSYS : EOPNOTSUPP;
		return -1;
	}
	if (nr == SYS_landlock_create_ruleset && a[0] == 0 && a[1] == 0 &&
	    (unsigned long)a[2] == LANDLOCK_CREATE_RULESET_VERSION)
		return abi;
	return -2;   /* the real call */
}

long syscall(long nr, ...)
{
	long a[6];
	va_list ap;
	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (abi >= 0 && (nr == SYS_landlock_create_ruleset || nr == SYS_landlock_add_rule ||
			 nr == SYS_landlock_restrict_self)) {
		long r = landlock(nr, a);
		if (r != -2)
			return r;
	}
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
