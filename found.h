/* A file found where another was expected, described for the log with its owner's account. */
#ifndef POP3D_FOUND_H
#define POP3D_FOUND_H

#include <stddef.h>
#include <sys/stat.h>

/*
 * "a FIFO, mode 0644, 1 link, owner uid 1000 (alice)" (mbox_describe_file's
 * words, with the owner's account name looked up: only before a sandbox).
 */
void found_describe(const struct stat *st, char *out, size_t outlen);

#endif
