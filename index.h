/*
 * The optional index file of a mailbox (--index-dir): the scan's result kept
 * between logins, so that a login to an unchanged mailbox, or to one that
 * only grew at the end, does not read again what was read before.
 *
 * It is a cache and never trusted blindly: it is used only when it is a
 * regular file owned by the serving user, its own checksums match, it names
 * the mailbox's device and inode, and the mailbox is the same (size, mtime,
 * ctime) or only longer, with the octets before the old end (a checksum of
 * the last INDEX_TAIL_SIZE of them, and "From " at sampled message starts)
 * still in place. Anything else is ignored and the index is rewritten.
 */
#ifndef POP3D_INDEX_H
#define POP3D_INDEX_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "mbox.h"

/* Index file of mailbox in dir: "dir/<mailbox's last component>.pop3d-index". -1 if too long. */
int index_path(const char *dir, const char *mailbox, char *out, size_t outlen);

enum index_result {
	INDEX_NONE = 0,   /* no usable index: scan everything */
	INDEX_SAME,       /* the mailbox is unchanged: every message loaded */
	INDEX_GROWN,      /* the mailbox grew: scan again from *resume */
};

/*
 * What a usable index holds. For INDEX_GROWN the last indexed message is left
 * out (mail appended after it changes where it ends): *resume is its From_ line.
 */
struct index_loaded {
	struct mbox_msg *msgs;   /* malloc'ed, n entries (NULL when n is 0) */
	size_t n;
	size_t first;            /* 1 when msgs[0] is the hidden pseudo message */
	off_t resume;            /* where scanning goes on (the indexed size for INDEX_SAME) */
};

/*
 * Load the index kept in dir for the mailbox open on fd (st: its fstat now).
 * Never fails loudly: a missing, stale, foreign or corrupt index is INDEX_NONE
 * (logged at debug level when it was there but unusable).
 */
enum index_result index_load(const char *dir, const char *mailbox, int fd, const struct stat *st,
			     struct index_loaded *out);

/*
 * Write the index of mb (scanned up to st->st_size, st: the mailbox's fstat
 * before the scan) into dir, atomically: a temporary file, fsync, rename.
 * dir's last component is created (mode 0700) when missing. 0, or -1 (logged).
 */
int index_save(const char *dir, const char *mailbox, const struct mbox *mb, const struct stat *st);

/*
 * The index files' plumbing, for the mbox index here and the Maildir index
 * (maildir.c). An index file at path, opened to read if it is a regular
 * file of ours of at least min_len octets (*len its length); -1 otherwise
 * (logged at debug level unless missing).
 */
int index_file_open(const char *path, off_t min_len, off_t *len);

/* The index directory dir, ours alone (made 0700 if missing): a descriptor, or -1 (logged). */
int index_dir_open(const char *dir);

/*
 * Replace the index file path (in dir) atomically: write(fd, ctx) fills a
 * new temporary file and fsyncs it, then it is renamed over path.
 * 0, or -1 (logged; the temporary file removed).
 */
int index_replace(const char *dir, const char *path, int (*write)(int fd, const void *ctx),
		  const void *ctx);

#endif
