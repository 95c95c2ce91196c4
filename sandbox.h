/*
 * The sandbox layers of each role: no new privileges, no capabilities,
 * seccomp filters and Landlock rules. Every process's rights are written
 * down here and in sandbox.c, each with the reason it needs them.
 *
 *   greeter   reads the client before login. As root: the --preauth-user
 *             account, no groups, chrooted in the empty directory.
 *             Always: NO_NEW_PRIVS, no capabilities, a seccomp allowlist
 *             (read its input and channel, write its output and channel,
 *             poll, the write timer, exit). It opens nothing.
 *   keeper    the worker's first process: the mailbox's account, NO_NEW_PRIVS,
 *             no capabilities, the worker's seccomp denylist (no exec, no
 *             socket but AF_UNIX, no connect, no ptrace; no chmod, chown,
 *             utime, xattr or truncate by path; no signal but kill(pid, 0)
 *             and to itself; prlimit, setpriority, sched_set* only on
 *             itself; no F_SETOWN ...), Landlock: only the mailbox's
 *             directory, --journal-dir and --index-dir, and from ABI 6 no
 *             signal out of its domain. It takes the maildrop and applies the
 *             deletions at QUIT; it never reads a client byte.
 *   session   the worker's second process, which reads the client after
 *             login: all the keeper has, less every path: Landlock lets it
 *             open nothing at all, and its own seccomp filter (on top of the
 *             worker's) makes every open or lookup fail (EACCES) and traps
 *             every link, rename, unlink, mkdir, change to a descriptor's file,
 *             socket, bind and kill: it holds only the descriptors the keeper
 *             gave it. It reads the mailbox through the descriptor the keeper
 *             opened and asks the keeper to update.
 *   dotlocker only where the account cannot create files beside its mailbox
 *             and group mail can (Debian's /var/mail 2775 root:mail): a child
 *             of the keeper forked as root, then the account's uid with gid
 *             mail and no other group, NO_NEW_PRIVS, no capabilities, its own
 *             seccomp allowlist (sandbox_seccomp_dotlocker), Landlock: read,
 *             make and remove files in the mailbox's directory only. It takes
 *             and releases MAILBOX.lock, the one path fixed at its fork, when
 *             the keeper asks (dotlocker.h); the session process has no way
 *             to reach it.
 *   authenticator  the process started by the front end (root when started
 *             as root): it never reads a client byte, only the fixed-format
 *             messages of its children (privsep.c).
 */
#ifndef POP3D_SANDBOX_H
#define POP3D_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* Exit status of a process whose sandbox stopped a system call. */
#define EXIT_SANDBOX 159   /* 128 + SIGSYS, as a shell reports a SIGSYS death */

/* What the keeper may reach by path. NULL members are left out. */
struct sandbox_paths {
	const char *mailbox;      /* its directory: lock, journal, temporary files */
	const char *journal_dir;  /* where journals are written (update.h: journal_places) */
	const char *journal_alt_dir; /* where an older journal may be */
	const char *index_dir;    /* --index-dir, expanded (created here if missing) */
	bool dotlock_only;        /* the dotlocker: in the mailbox's directory only read, make
				     and remove files (no truncate; no other path at all) */
};

/* PR_SET_NO_NEW_PRIVS and an empty capability set. 0, or -1 with why. */
int sandbox_no_privileges(char *why, size_t whylen);

/*
 * Landlock: paths NULL denies every path. Returns the ABI enforced (1 or
 * more), 0 when the kernel has no Landlock (why says so), -1 on failure (why).
 */
int sandbox_landlock(const struct sandbox_paths *paths, char *why, size_t whylen);

/*
 * The oldest Landlock ABI that keeps virtual users sharing one uid (--user)
 * apart, with the seccomp filters below: 1. What later ABIs add for it
 * (TRUNCATE in 3, IOCTL_DEV in 5, signal and abstract-socket scoping in 6)
 * the filters deny on every kernel; what only Landlock can do is confine the
 * keeper, which parses the mail, to its directories. So Debian 12's ABI 2 is
 * served, and a kernel without Landlock is not (--sandbox=no-landlock).
 */
#define SANDBOX_SHARED_UID_LANDLOCK_ABI 1

/*
 * A forbidden system call traps into a handler that sends the number of the
 * call to report_fd (one privsep violation message) and exits EXIT_SANDBOX;
 * the call itself never runs. Installed by the two filters below.
 */
void sandbox_report_to(int report_fd);

/* The greeter's allowlist: reads on in_fd and chan_fd, writes on out_fd and chan_fd. */
int sandbox_seccomp_greeter(int in_fd, int out_fd, int chan_fd, char *why, size_t whylen);

/* The worker's denylist: no exec, sockets, ptrace, mounts, id changes ... */
int sandbox_seccomp_worker(char *why, size_t whylen);

/* The session process's, on top of the worker's: no path, no socket, no signal. */
int sandbox_seccomp_session(char *why, size_t whylen);

/*
 * The dotlocker's allowlist (dotlocker.h): its requests on sock; write (log
 * lines, its lock's pid); open a file only to read it or to create a new one
 * (O_CREAT|O_EXCL); link, unlink, fsync; kill(pid, 0); sleep; nothing else.
 */
int sandbox_seccomp_dotlocker(int sock, char *why, size_t whylen);

/* True under valgrind, where the seccomp filters are not loaded. */
bool sandbox_seccomp_skipped(void);

/* The name of a system call number of this architecture, for the log. */
void sandbox_syscall_name(int nr, char *out, size_t size);

#endif
