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

/*
 * A regular file of the effective uid with no other name: what a file found in
 * a shared directory (journal, session lock, throttle table) must be before it
 * is trusted, since anyone who can write there may plant or link one.
 */
bool is_own_plain_file(const struct stat *st);

/* A reason for the caller into why (ignored when why is NULL or whylen 0). */
void set_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
