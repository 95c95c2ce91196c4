/* Applying deletions at QUIT: verified, journaled, crash-safe. */
#ifndef POP3D_UPDATE_H
#define POP3D_UPDATE_H

#include <stddef.h>

#include "mbox.h"

/*
 * Remove the messages marked deleted, under the mailbox lock, keeping every
 * octet appended since the scan. If the scanned part changed, nothing is
 * applied (MBOX_TEMP). MBOX_OK when there was nothing to do.
 */
enum mbox_status mbox_update(struct mbox *mb, char *why, size_t whylen);

/*
 * Repair a mailbox left mid-update (a journal next to it), under the mailbox
 * lock. 0 when there was nothing to do or it was repaired, -1 on failure.
 */
int mbox_recover(const char *path, const struct mbox_options *opt, char *why, size_t whylen);

#endif
