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

/* mbox_update / mbox_recover with hooks (NULL: none). */
enum mbox_status mbox_update_hooked(struct mbox *mb, const struct update_hooks *hooks,
				    char *why, size_t whylen);
int mbox_recover_hooked(const char *path, const struct mbox_options *opt,
			const struct update_hooks *hooks, char *why, size_t whylen);

#endif
