/* Mailbox locks, as Debian's MDAs take them, and the one-session lock. */
#ifndef POP3D_LOCK_H
#define POP3D_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

enum lock_method {
	LOCK_DOTLOCK = 1,  /* MAILBOX.lock, created with the NFS-safe link method */
	LOCK_FCNTL   = 2,  /* fcntl F_SETLK write lock on the whole file */
	LOCK_FLOCK   = 4,  /* flock LOCK_EX */
};
#define LOCK_DEFAULT (LOCK_DOTLOCK | LOCK_FCNTL)

/* A held mailbox lock. */
struct mail_lock {
	int fd;            /* the mailbox, locked with fcntl/flock; -1 if none */
	char *dotlock;     /* path of our dotlock, NULL if none */
	unsigned held;     /* LOCK_* bits actually held */
	dev_t dotlock_dev; /* identity of our dotlock: unlock removes only that file */
	ino_t dotlock_ino;
	bool dotlock_remote; /* the dotlocker holds it (dotlocker.h) */
};

/* Parse "dotlock,fcntl,flock" (any subset, non-empty). 0 or -1. */
int lock_parse_methods(const char *spec, unsigned *methods);

/*
 * Lock the mailbox at path (fd open on it, or -1 if there is no file yet) with
 * methods, in the fixed order dotlock, fcntl, flock, waiting at most timeout
 * seconds and breaking dotlocks older than DOTLOCK_STALE_AGE. A dotlock that
 * cannot be created because the directory is not writable is skipped with a log
 * line. Returns 0, or -1 with errno (ETIMEDOUT for a timeout) and *why set.
 */
int mailbox_lock(const char *path, int fd, unsigned methods, unsigned timeout,
		 struct mail_lock *lk, char *why, size_t whylen);
void mailbox_unlock(struct mail_lock *lk);

/*
 * The one-session lock on an open mailbox: held for the whole session,
 * separate from the MDA locks (so it never blocks delivery), released by the
 * kernel when the process dies. On a local filesystem it is flock(2) on fd
 * (an abstract socket's name when the MDAs use flock). Where flock is
 * emulated with byte-range locks (NFS, SMB), it is a lock on the file
 * lockfile (created 0600, never removed), so every host sharing the spool
 * sees it; when that file cannot be created (or lockfile is NULL), the socket
 * again, which holds on this host only, with a log line. *holder gets an fd to keep open for the
 * session, or -1 when the lock lives on fd itself. Returns 0, or -1 with
 * errno EWOULDBLOCK when another session holds it.
 */
int session_lock(int fd, const char *lockfile, unsigned methods, int *holder);

/* ---- the dotlocker (dotlocker.h) ---------------------------------------- */

/*
 * From now on the dotlock of mailbox is taken and released by the dotlocker
 * at the other end of fd (a SOCK_SEQPACKET socket, kept by lock.c).
 */
void lock_use_dotlocker(int fd, const char *mailbox);

/* Close the dotlocker's socket in a process that must not hold it (the session process). */
void lock_forget_dotlocker(void);

/*
 * Inside the dotlocker: the dotlock of path, taken and released here as
 * everywhere else (MAILBOX.lock with the NFS-safe link method, holding this
 * process's pid). 0 taken (lk->dotlock set) or skipped, -1 with errno and why.
 */
int dotlock_take_here(const char *path, unsigned timeout, struct mail_lock *lk,
		      char *why, size_t whylen);
void dotlock_release_here(struct mail_lock *lk);

/* ---- who may create files beside a mailbox ------------------------------ */

/*
 * The one answer to "can this account create files in its mailbox's
 * directory, and if not, which group could": the dotlock and the journal
 * both ask it (lock.c, update.c, maildrop.c's become_account).
 */
enum spool_writer {
	SPOOL_ACCOUNT = 0, /* the account itself: dotlock and journal beside the mailbox */
	SPOOL_GROUP,       /* only members of a group the account is not in (group) */
	SPOOL_NOBODY,      /* neither the account nor a group it is not in */
};

struct spool_access {
	enum spool_writer who;
	gid_t group;       /* SPOOL_GROUP: the directory's group, which may write there */
};

/* An account as it will be after the privilege drop. */
struct account_creds {
	uid_t uid;
	gid_t gid;
	const gid_t *groups;   /* supplementary groups */
	size_t ngroups;
};

/*
 * The decision from the directory's stat alone, by the permission bits as
 * the kernel applies them (owner, else group, else other; write and search
 * both needed; uid 0 may always). ACLs and read-only mounts are not looked at.
 */
void spool_access_decide(const struct stat *dir, const struct account_creds *who,
			 struct spool_access *out);

/*
 * The decision for mailbox's directory and the account uid/gid will be:
 * as root (before the drop) with account's groups (getgrouplist; none for a
 * NULL account), as anyone else with the process's own groups. 0, or -1
 * with errno when the directory cannot be examined (out: SPOOL_ACCOUNT, the
 * answer of old).
 */
int spool_access(const char *mailbox, const char *account, uid_t uid, gid_t gid,
		 struct spool_access *out);

/* Whether flock(2) on fd's filesystem is emulated with fcntl-type locks. */
bool flock_is_emulated(int fd);

#endif
