/*
 * Taking the maildrop at login, in the worker: the account that owns it
 * become for good (privileges dropped, verified), its journal places made
 * while root still can, the worker's sandbox (Landlock to the maildrop's
 * directories, then seccomp), an interrupted update recovered, the mailbox
 * opened. --recover uses the same steps.
 */
#ifndef POP3D_MAILDROP_H
#define POP3D_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "auth.h"
#include "limits.h"
#include "lock.h"
#include "mbox.h"
#include "options.h"
#include "session.h"
#include "update.h"

struct maildrop {
	const struct config *cfg;
	bool root;                      /* started as root: must drop privileges */
	struct journal_places journal;  /* the account's journal places: live as long as the mailbox */
	const struct update_hooks *recover_hooks;  /* test builds: faults in a recovery; NULL */
	void (*sandboxed)(void);        /* test builds: probes the keeper's sandbox; NULL */
};

/*
 * The maildrop of acct into *mb: as its account, in the sandbox. why: a
 * reason for the client (the log has the details, paths included).
 */
enum login_result maildrop_take(struct maildrop *md, const struct account *acct, struct mbox **mb,
				char *why, size_t whylen);

/*
 * Who owns the mailbox at path (or, while it does not exist yet, its
 * directory). Root is never an answer: we do not serve mailboxes as root.
 * 0, or -1 with a reason in why (and a log line for what was found).
 */
int maildrop_owner(const char *path, uid_t *uid, gid_t *gid, char *why, size_t whylen);

/* Become uid for good: as its account when it has one, else with gid and no groups. */
int maildrop_drop_to_uid(uid_t uid, gid_t gid);

/* Debian's spool: the dotlock through a process with group mail, forked while we are root. */
void maildrop_start_dotlocker(const struct maildrop *md, const char *mailbox, uid_t uid,
			     const struct spool_access *sa);

/* The mailbox options the configuration sets (locks, limits). */
void maildrop_options(const struct maildrop *md, struct mbox_options *opt);

/* A directory template (--index-dir, --journal-dir) for this account into out, or NULL (logged). */
const char *maildrop_expand_dir(const char *option, const char *tmpl, const struct account *acct,
				char out[MAX_PATH_LEN]);

#endif
