/* Applying a Maildir's deletions at QUIT, journaled; finishing one a crash interrupted. */
#define _GNU_SOURCE
#include "maildir.h"

#include "fileio.h"
#include "log.h"

/* ---- stubs: replaced by the update (helper H2) ---- */

enum mbox_status maildir_update(struct mbox *mb, const struct update_hooks *hooks,
				char *why, size_t whylen)
{
	(void)mb; (void)hooks;
	set_why(why, whylen, "Maildir updates are not supported yet");
	return MBOX_TEMP;
}

int maildir_recover(const char *path, const struct update_hooks *hooks,
		    struct mbox_recovery *res, char *why, size_t whylen)
{
	(void)path; (void)hooks; (void)res; (void)why; (void)whylen;
	return 0;
}
