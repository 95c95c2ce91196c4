/* Small file helpers shared by the modules that touch the mailbox. */
#ifndef POP3D_FILEIO_H
#define POP3D_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* pread until len octets or end of file, retrying EINTR. Octets read, or -1 with errno. */
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);

/* pwrite all len octets at off, retrying EINTR and short writes. 0, or -1 with errno. */
int pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* fsync, retrying EINTR. 0, or -1 with errno. */
int fsync_retry(int fd);

/* "a regular file", "a directory", "a FIFO" ...: what mode says st is, for log lines. */
const char *file_kind(mode_t mode);

/* The directory part of path into dir ("." without a slash, "/" for "/name"). 0, or -1 ENAMETOOLONG. */
int parent_dir(const char *path, char *dir, size_t size);

/*
 * Make a create, link or unlink in path's directory durable: fsync the
 * directory (a file system that cannot sync one, EINVAL, counts as done).
 * 0, or -1 with errno.
 */
int fsync_parent_dir(const char *path);

/*
 * A regular file of the effective uid with no other name: what a file found in
 * a shared directory (journal, session lock, throttle table) must be before it
 * is trusted, since anyone who can write there may plant or link one.
 */
bool is_own_plain_file(const struct stat *st);

/*
 * Is fd a file pop3d made in this format: is_own_plain_file, and empty, or
 * beginning with magic, or with zero_len zero octets (a header not written
 * yet when a crash cut the writing short; no mail begins so)? 1 if so, 0 if
 * not, -1 with errno when it cannot be told.
 */
#define FORMAT_HEAD_MAX 64   /* the most magic_len and zero_len may be */
int is_own_file_of_format(int fd, const char *magic, size_t magic_len, size_t zero_len);
/* The same for a file that must belong to uid (root judging an account's file). */
int is_file_of_format(int fd, uid_t uid, const char *magic, size_t magic_len, size_t zero_len);

/* Does path (not followed) still name the file open on fd? */
bool path_names_fd(const char *path, int fd);

/* A reason for the caller into why (ignored when why is NULL or whylen 0). */
void set_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
