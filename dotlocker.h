/*
 * The dotlocker: where the account cannot create files in its mailbox's
 * directory but group mail can (Debian's /var/mail, root:mail 2775), a tiny
 * process of the worker takes and releases ONE dotlock, MAILBOX.lock, for the
 * keeper, as the account with group mail and nothing else (doc/security.md).
 *
 *   keeper ──SOCK_SEQPACKET──> dotlocker (uid the account, gid mail, no groups,
 *          one dl_request,      seccomp allowlist, Landlock: make, remove and
 *          one dl_answer back   read files in the mailbox's directory only)
 *
 * The path is fixed when the dotlocker is forked; a request names none. The
 * dotlock code is lock.c's (the same that runs where the account can write),
 * so the lock holds the dotlocker's pid. A malformed request, or one out of
 * turn, ends the dotlocker (a held lock released first); so does the
 * keeper's end closing. The session process never holds the socket.
 */
#ifndef POP3D_DOTLOCKER_H
#define POP3D_DOTLOCKER_H

#include <stdint.h>
#include <sys/types.h>

#define DOTLOCKER_GROUP "mail"   /* the group Debian's spool lets create files (getgrnam) */

enum dl_op {
	DL_TAKE = 1,      /* take MAILBOX.lock, waiting at most timeout seconds */
	DL_RELEASE = 2,   /* remove it (only after a DL_TAKE that took it) */
};

struct dl_request {
	uint32_t op;        /* enum dl_op */
	uint32_t timeout;   /* DL_TAKE: seconds, at most LOCK_TIMEOUT_MAX; DL_RELEASE: 0 */
};

struct dl_answer {
	int32_t err;        /* 0, or the errno of the failure (ETIMEDOUT: another holds it) */
	uint32_t taken;     /* DL_TAKE: 1 taken, 0 skipped (the directory is not writable) */
};

/*
 * The group that may create files in a directory the account cannot:
 * DOTLOCKER_GROUP's gid, or (gid_t)-1 when there is no such group.
 */
gid_t dotlocker_group(void);

/*
 * As root, in the keeper before its drop: fork the dotlocker for mailbox,
 * running as uid with gid group alone, and route lock.c's dotlocks of
 * mailbox through it (lock_use_dotlocker). 0, or -1 (logged: the dotlock is
 * then skipped as before, with its log line).
 */
int dotlocker_start(const char *mailbox, uid_t uid, gid_t group);

/*
 * The dotlocker's work on fd for mailbox, in the calling process (the
 * forked dotlocker after its sandbox; unit tests directly): answer requests
 * until fd closes or a request is refused; a held lock is released then.
 * 0 after the keeper's end closed, -1 after a refused request (logged).
 */
int dotlocker_serve(int fd, const char *mailbox);

#endif
