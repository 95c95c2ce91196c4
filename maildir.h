/*
 * A Maildir maildrop (new/ and cur/; tmp/ is never read). Opened through
 * mbox_open(), which asks maildir_path_is() and hands a Maildir over to
 * maildir_open(): the rest of pop3d sees one struct mbox either way.
 *
 * For a Maildir, each struct mbox_msg of mb->msgs describes one file:
 *   start  offset of its path below the Maildir ("new/NAME" or "cur/NAME")
 *          in mb->maildir->names;
 *   end    the file's size in octets (st_size when scanned);
 *   size   octets as sent: every LF not after a CR counted as CR LF (the
 *          ",W=" size Dovecot and Courier write into the name);
 *   body, hash, dup: unused (0).
 */
#ifndef POP3D_MAILDIR_H
#define POP3D_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "limits.h"
#include "mbox.h"
#include "outbuf.h"
#include "update.h"

struct maildir {
	int dirfd;               /* the Maildir, O_DIRECTORY; -1: missing (an empty maildrop) */
	char *names;             /* "new/NAME\0cur/NAME\0...": every message's path below it */
	size_t names_len;
	size_t names_cap;
	char *index_dir;         /* --index-dir (strdup'ed), NULL: no index */
	/*
	 * How a message file is opened: maildir_open_msg() where paths may be
	 * opened; in the session process, which opens no path, a request to the
	 * keeper (privsep.c). Returns a descriptor, or -1 with a reason in why.
	 */
	int (*open_msg)(void *ctx, const struct mbox *mb, size_t n, char *why, size_t whylen);
	void *open_ctx;
	int msg_fd;              /* the file mbox_check_msg() opened for mbox_send(); -1 */
	size_t msg_n;            /* ... and its message number */
};

/* The path of msgs[i] (index into mb->msgs) below the Maildir: "new/NAME" or "cur/NAME". */
static inline const char *maildir_msg_path(const struct mbox *mb, size_t i)
{
	return mb->maildir->names + mb->msgs[i].start;
}

/*
 * Is path a Maildir: it ends in '/', or it is a directory (not followed if a
 * symbolic link) holding cur/, new/ and tmp/? The one place this is decided.
 */
bool maildir_path_is(const char *path);

/* A Maildir's path without its trailing '/'s ("/" stays "/"). 0, or -1 if it does not fit. */
int maildir_dir_path(const char *path, char *out, size_t outlen);

/*
 * Why the directory st describes is no Maildir to serve as this process's
 * uid (NULL: it may be one): not a directory, another owner, a mode that
 * denies its owner rwx. For the client: no path. The one rule, asked
 * before the sandbox (maildrop.c) and at open.
 */
const char *maildir_dir_problem(const struct stat *st);

/* What maildir_dir_problem() expects, for the log; the uid follows. */
#define MAILDIR_EXPECTED "a directory, mode rwx for its owner, owner uid"

/*
 * What a Maildir's file name says. A name is accepted when it is 1 to
 * NAME_MAX octets, does not start with '.', and has no '/', NUL or control
 * character (below 0x20, or 0x7f).
 */
struct maildir_name {
	uint64_t stamp;          /* leading decimal digits (delivery time); 0 when none */
	size_t base_len;         /* octets before the first ':' (the whole name when none) */
	bool has_size;           /* ",S=<digits>" in the base */
	uint64_t size;           /* ... the file's octets */
	bool has_vsize;          /* ",W=<digits>" in the base */
	uint64_t vsize;          /* ... the octets with CRLF line ends */
};

/* Parse name[0..len). 0, or -1 when it is not an acceptable message name. */
int maildir_name_parse(const char *name, size_t len, struct maildir_name *out);

/*
 * The unique-id of a message named name[0..len) (its base, before the
 * first ':'), into buf (MAX_UIDL_LEN + 1 octets): the base itself when it is
 * 1 to MAX_UIDL_LEN octets of 0x21..0x7E, else a stable derived form
 * (documented in doc/administration.md). The same on every host.
 *
 * The derived form: "X" followed by the first 32 lowercase hexadecimal
 * digits of the SHA-256 of the base's octets (33 characters; the same as
 * `printf %s BASE | sha256sum | cut -c1-32`). No real base gives the same
 * answer in practice: MDAs name files from the delivery time (digits
 * first), and a base that is "X" and exactly the 32 digits of another
 * base's hash would take a SHA-256 preimage of 128 bits; two derived forms
 * meet with odds of 2^-128 per pair.
 */
void maildir_uidl_of(const char *name, size_t len, char *buf);

/*
 * mbox_open() of a Maildir: mb is allocated, mb->path set (as given; made to
 * end in '/' here), mb->opt the options. Takes the session lock (MBOX_IN_USE when held),
 * refuses a Maildir an interrupted update left (MBOX_TEMP), scans new/ and
 * cur/ (with the index when mb->opt.index_dir), and sets mb->maildir,
 * mb->msgs and mb->nmsgs. A missing Maildir is an empty maildrop; a
 * directory that is not a Maildir is MBOX_PERM and never touched.
 */
enum mbox_status maildir_open(struct mbox *mb, char *why, size_t whylen);

/* Frees what maildir_open() set up (called by mbox_close()). */
void maildir_free(struct maildir *md);

/* mbox_uidl() of a Maildir. */
void maildir_uidl(const struct mbox *mb, size_t n, char *buf);

/*
 * Open message n's file for reading (openat from the Maildir, never
 * following a link, never blocking on a FIFO): a regular file of the size
 * the scan found. When it was moved between new/ and cur/ or its flags
 * changed, it is looked up by its base name. -1 with why (ENOENT: "message
 * N was removed by another program") when it is gone or changed.
 */
int maildir_open_msg(const struct mbox *mb, size_t n, char *why, size_t whylen);

/* mbox_check_msg() of a Maildir: open message n (through md->open_msg) for mbox_send(). */
int maildir_check_msg(const struct mbox *mb, size_t n, char *why, size_t whylen);

/* mbox_send() of a Maildir: the file mbox_check_msg() opened (it is closed here). */
int maildir_send(const struct mbox *mb, size_t n, long lines, struct outbuf *ob);

/*
 * Apply the deletions at QUIT (update.c's mbox_update_hooked() hands a
 * Maildir over): journal the names, fsync, unlink, fsync new/ and cur/,
 * record them in maildirsize (Maildir++) when it exists, remove the
 * journal. A file already gone is not an error. MBOX_OK when done; the
 * deleted messages are then dropped from mb->msgs.
 */
enum mbox_status maildir_update(struct mbox *mb, const struct update_hooks *hooks,
				char *why, size_t whylen);

/*
 * Finish an update a crash interrupted (the journal in the Maildir): the
 * recovery mbox_recover_report() hands a Maildir over. Only under the
 * session lock (taken with lock_methods, as maildir_open() takes it): a
 * Maildir a session holds is left alone (its update may be under way).
 * 0 (nothing to do, or done; *res says which), -1 on failure.
 */
int maildir_recover(const char *path, unsigned lock_methods, const struct update_hooks *hooks,
		    struct mbox_recovery *res, char *why, size_t whylen);

/*
 * Is fd (open on the Maildir's journal) one of maildir_update()'s, complete
 * or torn: a regular file of our uid with one link in its format (its own,
 * not update.h's journal_is_ours())? 1, 0 (someone else's: never trusted nor
 * removed, it blocks nothing), -1 with errno. maildir_open() refuses a
 * Maildir holding one: the recovery before it could not finish it.
 */
int maildir_journal_is_ours(int fd);

#endif
