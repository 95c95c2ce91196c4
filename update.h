/* Applying deletions at QUIT: verified, journaled, crash-safe. */
#ifndef POP3D_UPDATE_H
#define POP3D_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fileio.h"
#include "limits.h"
#include "mbox.h"

/* A journal's first octets and its header's size (the format: update.c). */
#define JOURNAL_MAGIC       "P3DJRNL\n"
#define JOURNAL_MAGIC_LEN   8
#define JOURNAL_HEADER_SIZE 64

/*
 * Is fd a journal of ours, complete or cut short: a plain file of our uid
 * with one link that is empty, starts with the magic, or whose header is
 * still all zero (it is written last)? 1, 0 (someone else's file: never
 * trusted, never removed), -1 with errno (cannot tell).
 */
static inline int journal_is_ours(int fd)
{
	return is_own_file_of_format(fd, JOURNAL_MAGIC, JOURNAL_MAGIC_LEN, JOURNAL_HEADER_SIZE);
}

/*
 * Remove the messages marked deleted, under the mailbox lock, keeping every
 * octet appended since the scan. If the scanned part changed, nothing is
 * applied (MBOX_TEMP). MBOX_OK when there was nothing to do.
 */
enum mbox_status mbox_update(struct mbox *mb, char *why, size_t whylen);

/*
 * The journal directory of one account: DIR/UID (dir is the expanded
 * --journal-dir), a directory of uid's own, mode JOURNAL_DIR_MODE, so that no
 * other account can put a file where this one's journals are looked for. As
 * root (before the switch to uid): made, or its owner and mode repaired,
 * through a descriptor opened without following symbolic links; anything
 * else in its place (a file, a link, another account's directory) is moved
 * aside to DIR/UID.planted.N with a log line. Not as root: DIR/UID if it is
 * ours (made if DIR lets us). Then a journal of mailbox left in DIR itself
 * by an older version (the flat layout) is moved in, if it is uid's, to be
 * recovered. Where DIR/UID cannot be had (not root, or root squashed on
 * NFS): DIR itself, with a log line. out gets the directory to use. 0, or
 * -1 (logged, *why set) when the path is too long or an older layout's
 * journal cannot be moved in (the mailbox may be half updated: no login).
 */
int journal_dir_prepare(const char *dir, const char *mailbox, uid_t uid, gid_t gid,
			char *out, size_t outlen, char *why, size_t whylen);

/* Where an account's journals are written, and where an older one may also be. */
struct journal_places {
	char dir[MAX_PATH_LEN];   /* journals are written here; "" beside the mailbox */
	char alt[MAX_PATH_LEN];   /* another directory one may have been left in, "" none
				     (beside the mailbox is always looked at too) */
};

/*
 * Choose and prepare (journal_dir_prepare, as root before the switch to uid)
 * the journal places of uid's mailbox. configured: the expanded
 * --journal-dir, always used when given. Else beside the mailbox when
 * beside_ok (spool_access: the account can create files there), else
 * POP3D_JOURNAL_DIR/UID; where that directory is missing too, a log line
 * says what to do and the journal stays beside (an update then fails, as it
 * would have). alt: POP3D_JOURNAL_DIR/UID when it exists and is not dir, so
 * that a changed spool mode never strands a journal. 0, or -1 as
 * journal_dir_prepare.
 */
int journal_places_prepare(const char *configured, const char *mailbox, uid_t uid, gid_t gid,
			   bool beside_ok, struct journal_places *out, char *why, size_t whylen);

/*
 * Does an interrupted update's journal keep a login out: is the file name
 * (opened at dirfd; journal: its path, for the log) one is_ours says is a
 * journal of ours (mbox's journal_is_ours, maildir_journal_is_ours)?
 * MBOX_OK when there is none, or it is someone else's file (recovery logged
 * it: it blocks nothing); else MBOX_TEMP, "mailbox needs recovery" (logged
 * for mailbox) or the error.
 */
enum mbox_status journal_blocks_login(int dirfd, const char *name, const char *journal,
				      const char *mailbox, int (*is_ours)(int fd),
				      char *why, size_t whylen);

/*
 * An update's or a recovery's error (mbox or Maildir), errno its cause: the
 * log gets "<what>: <error>" (what may name files, "disk full: " first for
 * ENOSPC or EDQUOT); why, which a client may see, only "disk full" or
 * "cannot update the mailbox" and the error. errno is kept.
 */
void update_error(const char *what, char *why, size_t whylen);

/*
 * Repair a mailbox left mid-update (a journal next to it), under the mailbox
 * lock. 0 when there was nothing to do or it was repaired, -1 on failure.
 * Call it before scanning a mailbox (mbox_open), not while a scan is held.
 */
int mbox_recover(const char *path, const struct mbox_options *opt, char *why, size_t whylen);

/*
 * Fault injection for tests (and a test build of pop3d reading
 * POP3D_CRASH_AT_STEP). fault is called at every distinct point of an update
 * or a recovery with an increasing step number (from 1 in each call) and a
 * short name of the point ("journal-synced", "data-chunk", ...). It returns
 *   0   carry on;
 *   > 0 "crash here": return at once, leaving every file exactly as it is
 *       (only the locks are released, as the kernel would);
 *   < 0 "this step failed with errno -ret": take the ordinary error path.
 */
typedef int (*update_fault_fn)(void *ctx, int step, const char *what);

struct update_hooks {
	update_fault_fn fault;
	void *ctx;
};

/* What a recovery did (pop3d --recover tells it). */
struct mbox_recovery {
	bool journal;      /* there was a journal of ours: the mailbox was repaired */
	bool replayed;     /* its deletions were applied now (else: already, or none begun) */
	long deletions;    /* messages the replay removed; -1 when they could not be counted */
};

/* mbox_recover_hooked, and what it did in *res. */
int mbox_recover_report(const char *path, const struct mbox_options *opt,
			const struct update_hooks *hooks, struct mbox_recovery *res,
			char *why, size_t whylen);

/* mbox_update / mbox_recover with hooks (NULL: none). */
enum mbox_status mbox_update_hooked(struct mbox *mb, const struct update_hooks *hooks,
				    char *why, size_t whylen);
int mbox_recover_hooked(const char *path, const struct mbox_options *opt,
			const struct update_hooks *hooks, char *why, size_t whylen);

#endif
