/*
 * Sandbox layers: NO_NEW_PRIVS, capabilities, seccomp (libseccomp) and
 * Landlock. The rules of every role are here, one comment per rule.
 */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/ioprio.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "privsep.h"

/*
 * Under valgrind every system call of valgrind itself would meet the filter:
 * there, and only there, the seccomp layer is left out (sandbox_seccomp_skipped).
 */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#else
#define UNDER_VALGRIND() 0
#endif

/* ---- no new privileges, no capabilities ---- */

int sandbox_no_privileges(char *why, size_t whylen)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(why, whylen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	/* Whatever the uid, the permitted, effective and inheritable sets become empty. */
	struct __user_cap_header_struct head = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &head, data) < 0) {
		snprintf(why, whylen, "capset: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		snprintf(why, whylen, "clearing ambient capabilities: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- Landlock ---- */

/* Rights newer than the kernel headers of Debian 12 (Linux 6.1). */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)    /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)   /* ABI 5 */
#endif
#define LL_NET_BIND_TCP    (1ULL << 0)              /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)   /* ABI 6 */
#define LL_SCOPE_SIGNAL               (1ULL << 1)

/* The ruleset attribute as ABI 6 knows it; older kernels are given the members they know. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;   /* ABI 4 */
	uint64_t scoped;               /* ABI 6 */
};

static int ll_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return v < 0 ? -1 : (int)v;
}

/* Every file system right the kernel's ABI handles: what is not granted is denied. */
static uint64_t ll_handled_fs(int abi)
{
	uint64_t fs = ((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1);   /* ABI 1: bits 0-12 */
	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return fs;
}

/*
 * The keeper's rights under each directory it is given: read, write and
 * truncate the mailbox, its journal and index; create and remove the dotlock,
 * its temporary file and the journal; open the directory to fsync it.
 * No exec, no directories, devices, sockets, fifos or symlinks made.
 */
static uint64_t ll_dir_rights(int abi)
{
	uint64_t r = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		     LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
		     LANDLOCK_ACCESS_FS_REMOVE_FILE;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	return r;
}

/*
 * The dotlocker's rights in the mailbox's directory: make its temporary file
 * and link it to MAILBOX.lock, read a lock to judge it, remove its own and a
 * stale one, open the directory to fsync it. Writing is needed for the pid in
 * its new file; its seccomp filter lets it open for writing only a file it
 * creates (O_CREAT|O_EXCL), never a mailbox of group mail. No truncate.
 */
static uint64_t ll_dotlocker_rights(void)
{
	return LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
	       LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
	       LANDLOCK_ACCESS_FS_REMOVE_FILE;
}

static int ll_allow_dir(int ruleset, const char *dir, uint64_t rights, char *why, size_t whylen)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;   /* nothing there to allow: a later open fails as it would anyway */
		snprintf(why, whylen, "Landlock: %s: %s", dir, strerror(errno));
		return -1;
	}
	struct landlock_path_beneath_attr pb = {.allowed_access = rights, .parent_fd = fd};
	int rc = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	int err = errno;
	close(fd);
	if (rc < 0) {
		snprintf(why, whylen, "Landlock rule for %s: %s", dir, strerror(err));
		return -1;
	}
	return 0;
}

/* The directory part of a path ("." for a bare name). */
static void dir_of(const char *path, char *out, size_t size)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(out, size, ".");
	else if (slash == path)
		snprintf(out, size, "/");
	else
		snprintf(out, size, "%.*s", (int)(slash - path), path);
}

static int ll_add_paths(int ruleset, int abi, const struct sandbox_paths *p,
			char *why, size_t whylen)
{
	uint64_t rights = p->dotlock_only ? ll_dotlocker_rights() : ll_dir_rights(abi);
	char dir[4096];
	if (p->mailbox) {
		dir_of(p->mailbox, dir, sizeof(dir));
		if (ll_allow_dir(ruleset, dir, rights, why, whylen) < 0)
			return -1;
	}
	if (p->journal_dir && ll_allow_dir(ruleset, p->journal_dir, rights, why, whylen) < 0)
		return -1;
	if (p->journal_alt_dir && ll_allow_dir(ruleset, p->journal_alt_dir, rights, why, whylen) < 0)
		return -1;
	if (p->index_dir) {
		/* Made here, not by the index code later: Landlock grants nothing to a directory not yet there. */
		if (mkdir(p->index_dir, 0700) < 0 && errno != EEXIST)
			return 0;   /* no index then: the login goes on unindexed */
		if (ll_allow_dir(ruleset, p->index_dir, rights, why, whylen) < 0)
			return -1;
	}
	return 0;
}

int sandbox_landlock(const struct sandbox_paths *paths, char *why, size_t whylen)
{
	if (UNDER_VALGRIND()) {   /* valgrind does not know the Landlock calls */
		snprintf(why, whylen, "Landlock is not available under valgrind");
		return 0;
	}
	int abi = ll_abi();
	if (abi < 1) {
		snprintf(why, whylen, "Landlock is not available in this kernel (%s)", strerror(errno));
		return 0;
	}
	struct ll_ruleset_attr attr = {.handled_access_fs = ll_handled_fs(abi)};
	size_t size = offsetof(struct ll_ruleset_attr, handled_access_net);
	if (abi >= 4) {   /* no TCP bind or connect either: the worker has no business on the network */
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 6) {
		/*
		 * No signal to a process outside its domain (kill, sigqueue, pidfd,
		 * F_SETOWN's SIGIO): not to another user's keeper under the same
		 * uid. kill(pid, 0) of a dotlock's pid still tells a dead one
		 * (ESRCH) from a live one (EPERM). No connection to an abstract
		 * socket bound outside (seccomp denies connect(2) as well).
		 */
		attr.scoped = LL_SCOPE_SIGNAL | LL_SCOPE_ABSTRACT_UNIX_SOCKET;
		size = sizeof(attr);
	}
	int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (ruleset < 0) {
		snprintf(why, whylen, "Landlock ruleset: %s", strerror(errno));
		return -1;
	}
	int rc = paths ? ll_add_paths(ruleset, abi, paths, why, whylen) : 0;
	if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		snprintf(why, whylen, "Landlock restrict_self: %s", strerror(errno));
		rc = -1;
	}
	close(ruleset);
	return rc < 0 ? -1 : abi;
}

/* ---- seccomp ---- */

/* Where a trapped system call is reported: set once, before the filter. */
static int report_fd = -1;

/* Async-signal-safe: one write of a fixed message, then exit. The call never ran. */
static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)uctx;
	struct ps_header h = {.type = PS_VIOLATION, .code = (uint32_t)si->si_syscall};
	if (report_fd >= 0)
		(void)!write(report_fd, &h, sizeof(h));
	_exit(EXIT_SANDBOX);
}

void sandbox_report_to(int fd)
{
	report_fd = fd;
}

static int install_sigsys_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);   /* a second violation inside the handler kills outright */
	return sigaction(SIGSYS, &sa, NULL);
}

/* Argument arg compared with op to a (and b, the mask's value for MASKED_EQ). */
static struct scmp_arg_cmp arg_is(unsigned arg, enum scmp_compare op, scmp_datum_t a,
				  scmp_datum_t b)
{
	struct scmp_arg_cmp c = {.arg = arg, .op = op, .datum_a = a, .datum_b = b};
	return c;
}

/* A rule by name; a call this architecture does not have is skipped. */
static int rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned argc,
		const struct scmp_arg_cmp *args)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return 0;
	return seccomp_rule_add_array(ctx, action, nr, argc, args);
}

static int allow(scmp_filter_ctx ctx, const char *name)
{
	return rule(ctx, SCMP_ACT_ALLOW, name, 0, NULL);
}

/* name allowed only with its first argument (a descriptor) equal to fd. */
static int allow_on_fd(scmp_filter_ctx ctx, const char *name, int fd)
{
	struct scmp_arg_cmp a = arg_is(0, SCMP_CMP_EQ, (scmp_datum_t)fd, 0);
	return rule(ctx, SCMP_ACT_ALLOW, name, 1, &a);
}

bool sandbox_seccomp_skipped(void)
{
	return UNDER_VALGRIND();
}

static int load(scmp_filter_ctx ctx, int rc, const char *role, char *why, size_t whylen)
{
	if (rc == 0 && install_sigsys_handler() < 0)
		rc = -errno;
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		snprintf(why, whylen, "seccomp filter of the %s: %s", role, strerror(-rc));
		return -1;
	}
	return 0;
}

/* A filter whose calls without a rule get dflt; NULL with why. */
static scmp_filter_ctx new_filter(uint32_t dflt, char *why, size_t whylen)
{
	scmp_filter_ctx ctx = seccomp_init(dflt);
	if (!ctx)
		snprintf(why, whylen, "seccomp_init failed");
	return ctx;
}

/*
 * The greeter: only what the AUTHORIZATION state needs. It opens nothing,
 * makes no socket, forks nothing, signals nobody.
 */
int sandbox_seccomp_greeter(int in_fd, int out_fd, int chan_fd, char *why, size_t whylen)
{
	if (sandbox_seccomp_skipped())
		return 0;   /* not even seccomp_init: it probes with seccomp(2), unknown to valgrind */
	scmp_filter_ctx ctx = new_filter(SCMP_ACT_TRAP, why, whylen);
	if (!ctx)
		return -1;
	struct scmp_arg_cmp no_exec = arg_is(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	int rc = 0;
	rc |= allow_on_fd(ctx, "read", in_fd);       /* the client's commands */
	rc |= allow_on_fd(ctx, "recvfrom", chan_fd); /* the authenticator's answers (recv(2)) */
	rc |= allow_on_fd(ctx, "write", out_fd);     /* the client's responses */
	rc |= allow_on_fd(ctx, "write", chan_fd);    /* credentials, log lines, the handoff */
	rc |= allow(ctx, "poll");                    /* the idle timer: poll(2) with a timeout */
	rc |= allow(ctx, "ppoll");                   /* ... as poll(2) is on some architectures */
	rc |= allow(ctx, "alarm");                   /* the stalled-write timer */
	rc |= allow(ctx, "setitimer");               /* ... alarm(3) where there is no alarm(2) */
	rc |= allow(ctx, "rt_sigreturn");            /* return from the SIGALRM handler */
	rc |= allow(ctx, "clock_gettime");           /* time(3), the timers, when not in the vDSO */
	rc |= allow(ctx, "gettimeofday");            /* ... */
	rc |= allow(ctx, "time");                    /* ... */
	rc |= allow(ctx, "brk");                     /* malloc(3) inside libc (vsnprintf) */
	rc |= rule(ctx, SCMP_ACT_ALLOW, "mmap", 1, &no_exec);  /* ..., never executable */
	rc |= allow(ctx, "munmap");                  /* ... */
	rc |= allow(ctx, "exit_group");              /* the end of the session */
	rc |= allow(ctx, "exit");                    /* ... */
#if defined(__SANITIZE_ADDRESS__)
	/* Sanitizer builds only (make SANITIZE=1): the runtime's own bookkeeping. */
	rc |= allow(ctx, "madvise");
	rc |= allow(ctx, "sigaltstack");
	rc |= allow(ctx, "rt_sigprocmask");
	rc |= allow(ctx, "getpid");
	rc |= allow(ctx, "gettid");
	rc |= allow(ctx, "sched_yield");
#endif
	return load(ctx, rc, "greeter", why, whylen);
}

/* A call the worker must not make. */
static int deny(scmp_filter_ctx ctx, const char *name)
{
	return rule(ctx, SCMP_ACT_TRAP, name, 0, NULL);
}

/* name trapped when argument arg compares with op to a. */
static int deny_if(scmp_filter_ctx ctx, const char *name, unsigned arg, enum scmp_compare op,
		   scmp_datum_t a)
{
	struct scmp_arg_cmp c = arg_is(arg, op, a, 0);
	return rule(ctx, SCMP_ACT_TRAP, name, 1, &c);
}

/* name trapped when its 32-bit argument arg (a command: int in the kernel) is value. */
static int deny_cmd(scmp_filter_ctx ctx, const char *name, unsigned arg, uint32_t value)
{
	struct scmp_arg_cmp c = arg_is(arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, value);
	return rule(ctx, SCMP_ACT_TRAP, name, 1, &c);
}

/*
 * A call newer than the libseccomp this was built with may not resolve by
 * name: then its number, which every architecture shares since Linux 5.1
 * (424 and up), is used where the numbering is that shared one.
 */
struct named_call {
	const char *name;
	int nr;            /* the shared number, or 0 */
};

#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__) || defined(__arm__) || \
	defined(__riscv) || defined(__powerpc__) || defined(__s390x__)
#define SHARED_NUMBERS 1
#else
#define SHARED_NUMBERS 0
#endif

static int call_rule(scmp_filter_ctx ctx, uint32_t action, const struct named_call *c)
{
	int nr = seccomp_syscall_resolve_name(c->name);
	if (nr == __NR_SCMP_ERROR || nr < 0)
		nr = SHARED_NUMBERS && c->nr ? c->nr : -1;
	return nr < 0 ? 0 : seccomp_rule_add_array(ctx, action, nr, 0, NULL);
}

static int call_rules(scmp_filter_ctx ctx, uint32_t action, const struct named_call *calls,
		      size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		rc |= call_rule(ctx, action, &calls[i]);
	return rc;
}
#define CALL_RULES(ctx, action, calls) \
	call_rules(ctx, action, calls, sizeof(calls) / sizeof(calls[0]))

/*
 * The worker (keeper and session): a denylist, since the mailbox code uses
 * much of the file API. What it must never do after login:
 */
static const char *const worker_denied[] = {
	"execve", "execveat",                          /* run another program */
	"socketpair", "connect",                       /* reach the network or local daemons */
	"listen", "accept", "accept4",
	"ptrace", "process_vm_readv", "process_vm_writev",   /* read other processes */
	"pidfd_open", "pidfd_getfd", "kcmp",
	"mount", "umount2", "pivot_root", "chroot",    /* change its view of the files */
	"unshare", "setns", "clone3",                  /* new namespaces */
	"fsopen", "fsmount", "fsconfig", "move_mount", "open_tree", "mount_setattr",
	"setuid", "setgid", "setreuid", "setregid",    /* change ids (already final) */
	"setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid", "capset",
	"init_module", "finit_module", "delete_module",   /* the kernel itself */
	"kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
	"bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
	"io_uring_setup", "io_uring_enter", "io_uring_register",   /* syscalls past this filter */
	"personality", "acct", "quotactl", "syslog", "iopl", "ioperm", "vhangup",
	"settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
	"sethostname", "setdomainname", "mknod", "mknodat",
	"open_by_handle_at", "name_to_handle_at", "fanotify_init", "lookup_dcookie",
	/*
	 * Signals by other means than kill(2), which is ruled below: every
	 * virtual user's keeper runs as the same uid, so the kernel's own check
	 * lets any of them signal any other. The worker sends none.
	 */
	"rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal",
	"process_madvise", "process_mrelease",         /* another process's memory */
};

/*
 * Changes to a file's mode, owner, times, extended attributes or size by
 * path: neither worker process makes one (the keeper truncates and writes
 * through the descriptors it opens, update.c), and Landlock does not handle
 * them (chmod, chown, utime, xattrs in no ABI; truncate only from ABI 3).
 * Under one shared uid they would reach another user's mailbox.
 */
static const struct named_call path_changes[] = {
	{"truncate", 0}, {"truncate64", 0},
	{"chmod", 0}, {"fchmodat", 0}, {"fchmodat2", 452},
	{"chown", 0}, {"lchown", 0}, {"fchownat", 0}, {"chown32", 0}, {"lchown32", 0},
	{"utime", 0}, {"utimes", 0}, {"futimesat", 0},
	{"setxattr", 0}, {"lsetxattr", 0}, {"removexattr", 0}, {"lremovexattr", 0},
	{"setxattrat", 463}, {"removexattrat", 466}, {"file_setattr", 469},
	{"symlink", 0}, {"symlinkat", 0},              /* and no symlink to plant */
};

/*
 * Calls that act on another process given its pid: only on itself (pid 0,
 * which is how libc makes them). Under one shared uid the kernel would let
 * alice's worker lower bob's limits (prlimit: RLIMIT_FSIZE kills his keeper
 * at its next write), renice him or move his memory.
 */
static const char *const own_pid_only[] = {
	"prlimit64", "sched_setaffinity", "sched_setparam", "sched_setscheduler",
	"sched_setattr", "migrate_pages", "move_pages",
};

static int rules_on_other_processes(scmp_filter_ctx ctx)
{
	int rc = 0;
	for (size_t i = 0; i < sizeof(own_pid_only) / sizeof(own_pid_only[0]); i++)
		rc |= deny_if(ctx, own_pid_only[i], 0, SCMP_CMP_NE, 0);
	/* setpriority(2)/ioprio_set(2): PRIO_PROCESS / IOPRIO_WHO_PROCESS of pid 0 only (not a uid: all users). */
	rc |= deny_if(ctx, "setpriority", 0, SCMP_CMP_NE, PRIO_PROCESS);
	rc |= deny_if(ctx, "setpriority", 1, SCMP_CMP_NE, 0);
	rc |= deny_if(ctx, "ioprio_set", 0, SCMP_CMP_NE, IOPRIO_WHO_PROCESS);
	rc |= deny_if(ctx, "ioprio_set", 1, SCMP_CMP_NE, 0);
	/* No owner for a descriptor's SIGIO (F_SETSIG makes it any signal, SIGKILL too). */
	static const char *const fcntls[] = {"fcntl", "fcntl64"};
	for (size_t i = 0; i < 2; i++) {
		rc |= deny_cmd(ctx, fcntls[i], 1, F_SETOWN);
		rc |= deny_cmd(ctx, fcntls[i], 1, F_SETOWN_EX);
		rc |= deny_cmd(ctx, fcntls[i], 1, F_SETSIG);
	}
	rc |= deny_cmd(ctx, "ioctl", 1, FIOSETOWN);
	rc |= deny_cmd(ctx, "ioctl", 1, SIOCSPGRP);
	return rc;
}

int sandbox_seccomp_worker(char *why, size_t whylen)
{
	if (sandbox_seccomp_skipped())
		return 0;
	scmp_filter_ctx ctx = new_filter(SCMP_ACT_ALLOW, why, whylen);
	if (!ctx)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < sizeof(worker_denied) / sizeof(worker_denied[0]); i++)
		rc |= deny(ctx, worker_denied[i]);
	rc |= CALL_RULES(ctx, SCMP_ACT_TRAP, path_changes);
	/* utimensat(2) with a path; futimens(3), its descriptor form (NULL path), stays allowed. */
	rc |= deny_if(ctx, "utimensat", 1, SCMP_CMP_NE, 0);
	rc |= deny_if(ctx, "utimensat_time64", 1, SCMP_CMP_NE, 0);
	rc |= rules_on_other_processes(ctx);
	/*
	 * seccomp(2) only to add a filter (the session process's, below): a
	 * filter can only take rights away, never give back what ours denies.
	 */
	rc |= deny_if(ctx, "seccomp", 0, SCMP_CMP_NE, SECCOMP_SET_MODE_FILTER);
	rc |= deny_if(ctx, "seccomp", 1, SCMP_CMP_NE, 0);
	/* fork(2) for the session process, as glibc does it: clone, never with a namespace flag. */
	static const unsigned long ns_flags[] = {CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID,
		CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP};
	for (size_t i = 0; i < sizeof(ns_flags) / sizeof(ns_flags[0]); i++) {
		struct scmp_arg_cmp a = arg_is(0, SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
		rc |= rule(ctx, SCMP_ACT_TRAP, "clone", 1, &a);
	}
	/*
	 * socket(2) only for an AF_UNIX stream, with bind(2): the session lock of
	 * --lock=...,flock is an abstract socket's name (lock.c). connect(2)
	 * stays denied and a stream cannot send unconnected, so no daemon can be
	 * reached (a datagram socket could sendto /dev/log); TCP is Landlock's too.
	 * The session process may not even do that (its filter below).
	 */
	struct scmp_arg_cmp not_unix = arg_is(0, SCMP_CMP_NE, AF_UNIX, 0);
	rc |= rule(ctx, SCMP_ACT_TRAP, "socket", 1, &not_unix);
	static const int other_types[] = {SOCK_DGRAM, SOCK_SEQPACKET, SOCK_RAW, SOCK_RDM};
	for (size_t i = 0; i < sizeof(other_types) / sizeof(other_types[0]); i++) {
		struct scmp_arg_cmp t = arg_is(1, SCMP_CMP_MASKED_EQ, 0xf, (scmp_datum_t)other_types[i]);
		rc |= rule(ctx, SCMP_ACT_TRAP, "socket", 1, &t);
	}
	/* kill(2): signal 0 only (is a dotlock's pid alive?), or itself (test builds' crash points). */
	struct scmp_arg_cmp other_sig = arg_is(1, SCMP_CMP_NE, 0, 0);
	struct scmp_arg_cmp not_self = arg_is(0, SCMP_CMP_NE, (scmp_datum_t)getpid(), 0);
	struct scmp_arg_cmp kill_args[2] = {other_sig, not_self};
	rc |= rule(ctx, SCMP_ACT_TRAP, "kill", 2, kill_args);
	rc |= deny(ctx, "tkill");
	rc |= deny(ctx, "tgkill");
	return load(ctx, rc, "worker", why, whylen);
}

/*
 * The session process, on top of the worker's filter: it reads the client
 * and needs no path and no new socket at all, so what Landlock does not
 * cover on every kernel (or at all, where there is none) is denied here.
 *
 * Opening or looking up any path fails with EACCES, as under Landlock.
 */
static const struct named_call session_no_lookup[] = {
	{"open", 0}, {"openat", 0}, {"openat2", 437}, {"creat", 0},
	{"stat", 0}, {"lstat", 0}, {"newfstatat", 0}, {"fstatat64", 0}, {"statx", 0},
	{"stat64", 0}, {"lstat64", 0}, {"access", 0}, {"faccessat", 0}, {"faccessat2", 439},
	{"readlink", 0}, {"readlinkat", 0}, {"statfs", 0}, {"statfs64", 0},
	{"getxattr", 0}, {"lgetxattr", 0}, {"listxattr", 0}, {"llistxattr", 0},
	{"getxattrat", 464}, {"listxattrat", 465}, {"file_getattr", 468},
	{"chdir", 0}, {"inotify_add_watch", 0}, {"uselib", 0},
};

/* Anything else that changes a file or makes a name is a violation. */
static const struct named_call session_denied[] = {
	{"link", 0}, {"linkat", 0}, {"rename", 0}, {"renameat", 0}, {"renameat2", 0},
	{"unlink", 0}, {"unlinkat", 0}, {"mkdir", 0}, {"mkdirat", 0}, {"rmdir", 0},
	{"utimensat", 0}, {"utimensat_time64", 0}, {"fanotify_mark", 0}, {"quotactl_fd", 443},
	{"open_tree_attr", 467},
	/* Its own descriptors: the mailbox is the keeper's to change. */
	{"ftruncate", 0}, {"ftruncate64", 0}, {"fallocate", 0}, {"fchmod", 0}, {"fchown", 0},
	{"fchown32", 0}, {"fsetxattr", 0}, {"fremovexattr", 0},
	/*
	 * No socket, and no name for one it has: bind(2) of the keeper's channel
	 * to another user's abstract session-lock name (lock.c) would lock him out.
	 */
	{"socket", 0}, {"bind", 0},
};

/* System calls newer than this filter (Linux 6.17's file_setattr is 469): none is needed. */
#define NEWEST_KNOWN_SYSCALL 469
#define UNKNOWN_SYSCALLS 64

int sandbox_seccomp_session(char *why, size_t whylen)
{
	if (sandbox_seccomp_skipped())
		return 0;
	scmp_filter_ctx ctx = new_filter(SCMP_ACT_ALLOW, why, whylen);
	if (!ctx)
		return -1;
	int rc = CALL_RULES(ctx, SCMP_ACT_ERRNO(EACCES), session_no_lookup);
	rc |= CALL_RULES(ctx, SCMP_ACT_TRAP, session_denied);
	/* kill(2): not even signal 0; the worker's filter already denies the rest. */
	rc |= deny_if(ctx, "kill", 0, SCMP_CMP_NE, (scmp_datum_t)getpid());
	for (int nr = NEWEST_KNOWN_SYSCALL + 1; SHARED_NUMBERS &&
	     nr <= NEWEST_KNOWN_SYSCALL + UNKNOWN_SYSCALLS; nr++)
		rc |= seccomp_rule_add_array(ctx, SCMP_ACT_TRAP, nr, 0, NULL);
	return load(ctx, rc, "session process", why, whylen);
}

/* open(2)/openat(2) (flags argument arg): to read, or to create a new file, nothing else. */
static int allow_safe_open(scmp_filter_ctx ctx, const char *name, unsigned arg)
{
	/* Read only: no O_TRUNC (which truncates even O_RDONLY), no O_CREAT. */
	struct scmp_arg_cmp rd = arg_is(arg, SCMP_CMP_MASKED_EQ, O_ACCMODE | O_TRUNC | O_CREAT,
					O_RDONLY);
	/* A new file (O_EXCL: never an existing one, never through a symlink), not truncating. */
	struct scmp_arg_cmp excl = arg_is(arg, SCMP_CMP_MASKED_EQ, O_CREAT | O_EXCL | O_TRUNC,
					  O_CREAT | O_EXCL);
	return rule(ctx, SCMP_ACT_ALLOW, name, 1, &rd) | rule(ctx, SCMP_ACT_ALLOW, name, 1, &excl);
}

int sandbox_seccomp_dotlocker(int sock, char *why, size_t whylen)
{
	if (sandbox_seccomp_skipped())
		return 0;
	scmp_filter_ctx ctx = new_filter(SCMP_ACT_TRAP, why, whylen);
	if (!ctx)
		return -1;
	struct scmp_arg_cmp no_exec = arg_is(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	struct scmp_arg_cmp sig0 = arg_is(1, SCMP_CMP_EQ, 0, 0);
	int rc = 0;
	rc |= allow_on_fd(ctx, "recvfrom", sock);    /* the keeper's requests */
	rc |= allow_on_fd(ctx, "sendto", sock);      /* its answers */
	rc |= allow(ctx, "write");                   /* log lines; the pid into its new file */
	rc |= allow_safe_open(ctx, "openat", 2);
	rc |= allow_safe_open(ctx, "open", 1);
	rc |= allow(ctx, "close");
	rc |= allow(ctx, "read");                    /* a lock's pid */
	rc |= allow(ctx, "pread64");                 /* ... */
	rc |= allow(ctx, "fstat");                   /* is it still the file we judged? */
	rc |= allow(ctx, "newfstatat");              /* lstat(2), fstat(2) as glibc makes them */
	rc |= allow(ctx, "lstat");
	rc |= allow(ctx, "stat");
	rc |= allow(ctx, "statx");
	rc |= allow(ctx, "fstatat64");
	rc |= allow(ctx, "fstat64");
	rc |= allow(ctx, "lstat64");
	rc |= allow(ctx, "link");                    /* the NFS-safe link method */
	rc |= allow(ctx, "linkat");
	rc |= allow(ctx, "unlink");                  /* its temporary file, its lock, a stale lock */
	rc |= allow(ctx, "unlinkat");
	rc |= allow(ctx, "fsync");                   /* the lock durable, its removal too */
	rc |= rule(ctx, SCMP_ACT_ALLOW, "kill", 1, &sig0);   /* is a lock's holder alive? */
	rc |= allow(ctx, "getpid");                  /* the pid it writes */
	rc |= allow(ctx, "uname");                   /* gethostname(3): the temporary file's name */
	rc |= allow(ctx, "clock_gettime");           /* the deadline, the lock's age */
	rc |= allow(ctx, "clock_nanosleep");         /* the pause between attempts */
	rc |= allow(ctx, "nanosleep");
	rc |= allow(ctx, "gettimeofday");
	rc |= allow(ctx, "time");
	rc |= allow(ctx, "brk");                     /* malloc(3) */
	rc |= rule(ctx, SCMP_ACT_ALLOW, "mmap", 1, &no_exec);
	rc |= allow(ctx, "munmap");
	rc |= allow(ctx, "mremap");
	rc |= allow(ctx, "madvise");
	rc |= allow(ctx, "rt_sigreturn");
	rc |= allow(ctx, "exit_group");
	rc |= allow(ctx, "exit");
#if defined(__SANITIZE_ADDRESS__)
	rc |= allow(ctx, "sigaltstack");
	rc |= allow(ctx, "rt_sigprocmask");
	rc |= allow(ctx, "gettid");
	rc |= allow(ctx, "sched_yield");
#endif
	return load(ctx, rc, "dotlocker", why, whylen);
}

void sandbox_syscall_name(int nr, char *out, size_t size)
{
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	snprintf(out, size, "%s", name ? name : "unknown");
	free(name);
}
