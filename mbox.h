/* A Unix mbox maildrop: scanned into an index at login, streamed from the file. */
#ifndef POP3D_MBOX_H
#define POP3D_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "limits.h"
#include "outbuf.h"

/* Outcome of opening or updating a maildrop; maps onto RFC 3206 codes. */
enum mbox_status {
	MBOX_OK = 0,
	MBOX_IN_USE,    /* another session holds the maildrop: [IN-USE] */
	MBOX_TEMP,      /* lock timeout, I/O error, changed underneath: [SYS/TEMP] */
	MBOX_PERM,      /* not an mbox, too large, not a regular file: [SYS/PERM] */
};

/* One message. Offsets are into the file. */
/*
 * One message; 48 octets, since a mailbox may hold a million of them.
 * Offsets stay below MAX_MAILBOX_SIZE (2^40) and sizes below twice that,
 * so bit-fields hold them (checked below and in mbox.c).
 */
struct mbox_msg {
	off_t start;          /* the "From " line */
	off_t end;            /* end of the message, before the separating empty line */
	uint64_t hash[2];     /* of the From_ line and header (UIDL) */
	int64_t body : 44;    /* first octet of the message, just after the From_ line */
	uint64_t dup : 20;    /* how many earlier messages have the same hash */
	int64_t size : 63;    /* octets as sent: CRLF line ends, +2 without a final newline */
	bool deleted : 1;
};
_Static_assert(sizeof(struct mbox_msg) == 48, "struct mbox_msg is packed into 48 octets");
_Static_assert(MAX_MAILBOX_SIZE <= ((off_t)1 << 43), "body offsets fit in 44 signed bits");
_Static_assert(MAX_MESSAGES < (1 << 20), "duplicate counts fit in 20 bits");

struct mbox_options {
	unsigned lock_methods;   /* LOCK_* bits from lock.h */
	unsigned lock_timeout;   /* seconds */
	size_t max_messages;
	off_t max_size;
	const char *index_dir;   /* expanded --index-dir, or NULL: no index (read by mbox_open only) */
	const char *journal_dir; /* expanded --journal-dir, or NULL: journal beside the mailbox */
	const char *journal_alt_dir; /* where an older journal may also be (update.h), or NULL */
	bool no_mmap;            /* read the file with pread(2) only, never map it (tests) */
};

struct maildir;

/* Made only by mbox_open() / mbox_open_fd(): mbox.c keeps private state behind it. */
struct mbox {
	int fd;                  /* -1 for a missing (empty) maildrop */
	int session_fd;          /* keeps the one-session lock, -1 if none (see lock.h) */
	char *path;              /* NULL when opened with mbox_open_fd() */
	struct mbox_options opt;
	struct mbox_msg *msgs;   /* every message of the file, pseudo message included */
	size_t nmsgs;
	size_t first;            /* 1 when msgs[0] is the hidden pseudo message, else 0 */
	off_t scanned;           /* octets of the file covered by the scan */
	dev_t dev;
	ino_t ino;
	struct maildir *maildir; /* a Maildir (maildir.h), NULL for an mbox file */
};

void mbox_default_options(struct mbox_options *opt);

/*
 * Open path: take the session lock (IN_USE if held), take the mailbox lock,
 * scan, release the mailbox lock. A missing file is an empty maildrop.
 * On failure *why gets a reason for the client and the log.
 */
enum mbox_status mbox_open(struct mbox **out, const char *path,
			   const struct mbox_options *opt, char *why, size_t whylen);
/* Scan an already open file, without locks (tests, fuzzing). Takes ownership of fd. */
enum mbox_status mbox_open_fd(struct mbox **out, int fd,
			      const struct mbox_options *opt, char *why, size_t whylen);
void mbox_close(struct mbox *mb);

/* Client-visible messages, numbered 1..mbox_count(). Inline: STAT and QUIT walk all of them. */
static inline size_t mbox_count(const struct mbox *mb)
{
	return mb->nmsgs - mb->first;
}

/* NULL when n is out of range (deleted messages are still returned). */
static inline struct mbox_msg *mbox_msg(const struct mbox *mb, size_t n)
{
	if (n == 0 || n > mbox_count(mb))
		return NULL;
	return &mb->msgs[mb->first + n - 1];
}
/* Unique-id of message n into buf (MAX_UIDL_LEN + 1 bytes). */
void mbox_uidl(const struct mbox *mb, size_t n, char *buf);

/*
 * Stream message n to ob: CRLF line ends, byte-stuffed, without the final
 * ".\r\n". lines < 0 sends it all; else the header, the empty line and at most
 * `lines` body lines (TOP). Returns 0, or -1 (read error, file changed, sink failed).
 */
int mbox_send(const struct mbox *mb, size_t n, long lines, struct outbuf *ob);

/*
 * Before mbox_send(): 0 when message n is still where the scan found it
 * (an mbox: its From_ line; a Maildir: its file, now opened), else -1 with
 * a reason for the client in why.
 */
int mbox_check_msg(const struct mbox *mb, size_t n, char *why, size_t whylen);

/*
 * Stream len octets of the file open on fd, from its current offset, as
 * mbox_send() streams a message (read(2), no mapping; Maildir messages).
 * 0, or -1 (read error, the file shorter than len, sink failed).
 */
int mbox_stream_fd(int fd, off_t len, long lines, struct outbuf *ob);

/* A struct mbox with no messages yet (mbox_open; tests build one by hand). NULL: out of memory. */
struct mbox *mbox_alloc(const struct mbox_options *opt);

/*
 * After mbox_update() removed the deleted messages: mb->msgs becomes the
 * list of the file as it now is (as a scan would give it), and with
 * --index-dir the index is written for it, so that the next login need not
 * scan. The file is not read again.
 */
void mbox_updated(struct mbox *mb);

/*
 * Does every message still start where the scan found it: "From " after an
 * LF (or at offset 0)? 1 if so; 0 if not, *bad the first message that does
 * not (the file may also have shrunk below it); -1 on a read error.
 */
int mbox_starts_intact(const struct mbox *mb, size_t *bad);

/*
 * Recompute the UIDL hash of msgs[i] (index into mb->msgs, pseudo message
 * included) from the file as it is now. 0, or -1 on a read error.
 */
int mbox_rehash(const struct mbox *mb, size_t i, uint64_t hash[2]);

/*
 * Path of a file pop3d keeps for a mailbox, into buf: MAILBOX<suffix> beside
 * it, or, with journal_dir, JOURNAL_DIR/NAME.HASH<suffix> (HASH of the whole
 * mailbox path, so mailboxes sharing the directory never collide). The update
 * journal (JOURNAL_SUFFIX) and the session lock file where flock is emulated
 * (SESSION_LOCK_SUFFIX). -1 if too long.
 */
int mbox_sidecar_path(const char *mailbox, const char *journal_dir, const char *suffix,
		      char *buf, size_t buflen);
int mbox_journal_path(const char *mailbox, const char *journal_dir, char *buf, size_t buflen);

/*
 * Is path's last component the name of a side file of some other mailbox:
 * a dotlock (NAME.lock), a temporary lock file (.lk...), or any name pop3d
 * makes (it carries SIDE_FILE_MARK: journal, its rewrite, session lock,
 * index)? The one place that knows every such name.
 */
bool mbox_is_side_file(const char *path);

/*
 * Such a path is never a mailbox: side files then cannot collide with any
 * mailbox a template produces. MBOX_PERM (logged, *why set) or MBOX_OK.
 */
enum mbox_status mbox_check_name(const char *path, char *why, size_t whylen);

/*
 * Why the file st describes is no mailbox to serve as this process's uid
 * (NULL: it is one): not a regular file, another owner, a second name, a
 * mode that denies its owner reading or writing. For the client: no path.
 */
const char *mbox_file_problem(const struct stat *st);

/* What mbox_file_problem() expects, for the log; the uid follows. */
#define MBOX_EXPECTED "a regular file, mode rw for its owner, 1 link, owner uid"

/*
 * "a regular file, mode 0600, 1 link, owner uid 0 (root)": what was found,
 * for the log; owner is the owner's account name, NULL when not known.
 */
void mbox_describe_file(const struct stat *st, const char *owner, char *out, size_t outlen);

#endif
