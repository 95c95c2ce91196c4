/* Taking the maildrop at login: its account become for good, the worker's sandbox, recovery, opening. */
#define _GNU_SOURCE
#include "maildrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dotlocker.h"
#include "fileio.h"
#include "found.h"
#include "lock.h"
#include "log.h"
#include "maildir.h"
#include "privsep.h"
#include "sandbox.h"

/*
 * Become uid/gid for good, with the groups of account `name`, or none at all
 * for a uid without an account (name NULL); verify there is no way back.
 */
static int drop_privileges(const char *name, uid_t uid, gid_t gid)
{
	const char *who = name ? name : "a uid without an account";
	if (uid == 0) {
		log_msg(LOG_ERR, "refusing to serve a mailbox as root (user %s)", LOG_Q(who));
		return -1;
	}
	int groups = name ? initgroups(name, gid) : setgroups(0, NULL);
	if (groups < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_msg(LOG_ERR, "cannot drop privileges to %s (%ld:%ld): %s",
			LOG_Q(who), (long)uid, (long)gid, strerror(errno));
		return -1;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
	    setuid(0) == 0) {
		log_msg(LOG_ERR, "privilege drop to %s did not take effect", LOG_Q(who));
		return -1;
	}
	return 0;
}

int maildrop_owner(const char *path, uid_t *uid, gid_t *gid, char *why, size_t whylen)
{
	struct stat st;
	char found[MAX_FOUND_TEXT];
	char dir[MAX_PATH_LEN];
	bool maildir = maildir_path_is(path);
	if (maildir && maildir_dir_path(path, dir, sizeof(dir)) == 0)
		path = dir;   /* its own name, without the trailing '/' lstat would follow */
	int rc = lstat(path, &st);
	if (rc < 0 && errno == ENOENT) {
		rc = parent_dir(path, dir, sizeof(dir)) < 0 ? -1 : lstat(dir, &st);
	} else if (rc == 0 && maildir && !S_ISDIR(st.st_mode)) {
		found_describe(&st, found, sizeof(found));
		log_msg(LOG_ERR, "Maildir %s: found %s; expected a directory", LOG_Q(path), found);
		snprintf(why, whylen, "mailbox is not a Maildir");
		return -1;
	} else if (rc == 0 && !maildir && !S_ISREG(st.st_mode)) {
		found_describe(&st, found, sizeof(found));
		log_msg(LOG_ERR, "mailbox %s: found %s; expected a regular file", LOG_Q(path), found);
		snprintf(why, whylen, "mailbox is not a regular file");
		return -1;
	}
	if (rc < 0) {
		snprintf(why, whylen, "cannot find the mailbox's owner: %s", strerror(errno));
		return -1;
	}
	if (st.st_uid == 0) {
		found_describe(&st, found, sizeof(found));
		log_msg(LOG_ERR, "mailbox %s: found %s; expected a file (or, while there is none, "
			"a directory) of the account to serve it as, not root's; or --user to name "
			"that account", LOG_Q(path), found);
		snprintf(why, whylen, "mailbox belongs to root: set --user to serve it");
		return -1;
	}
	*uid = st.st_uid;
	*gid = st.st_gid;
	return 0;
}

/*
 * The mailbox cannot even be looked up (EACCES): name the directory on its
 * path that denies this uid the search (x) permission, rather than say
 * "Permission denied".
 */
static enum login_result explain_unreachable(const struct account *acct, char *why,
					     size_t whylen)
{
	char dir[MAX_PATH_LEN];
	snprintf(dir, sizeof(dir), "%s", acct->mailbox);
	struct stat st;
	char found[MAX_FOUND_TEXT] = "a directory it cannot look into";
	/* The deepest directory that can still be looked up is the one in the way. */
	for (char *slash = strrchr(dir, '/'); slash && slash > dir; slash = strrchr(dir, '/')) {
		*slash = '\0';
		if (stat(dir, &st) == 0) {
			found_describe(&st, found, sizeof(found));
			break;
		}
	}
	struct passwd *me = getpwuid(geteuid());
	log_msg(LOG_ERR, "mailbox %s for %s refused: directory %s denies search: found %s; "
		"expected search (x) permission for uid %ju (%s)", LOG_Q(acct->mailbox),
		LOG_Q(acct->name), LOG_Q(dir), found, (uintmax_t)geteuid(),
		me ? me->pw_name : "no account");
	snprintf(why, whylen, "mailbox directory is not accessible");
	return LOGIN_SYS_PERM;
}

/*
 * Before the worker's sandbox, which has no account names to look up: a
 * mailbox mbox_open would refuse (mbox_file_problem, the one rule) is refused
 * here, with the owner found and the one expected, by uid and name.
 */
static enum login_result check_mailbox_file(const struct account *acct, bool maildir,
					    char *why, size_t whylen)
{
	struct stat st;
	char path[MAX_PATH_LEN];
	if (maildir && maildir_dir_path(acct->mailbox, path, sizeof(path)) < 0) {
		snprintf(why, whylen, "mailbox path is too long");
		return LOGIN_SYS_PERM;
	}
	if (lstat(maildir ? path : acct->mailbox, &st) < 0)
		return errno == EACCES ? explain_unreachable(acct, why, whylen) : LOGIN_OK;
	/* missing: an empty maildrop */
	const char *problem = maildir ? maildir_dir_problem(&st) : mbox_file_problem(&st);
	if (!problem)
		return LOGIN_OK;
	char found[MAX_FOUND_TEXT];
	found_describe(&st, found, sizeof(found));
	struct passwd *me = getpwuid(geteuid());
	log_msg(LOG_ERR, "mailbox %s for %s refused: %s: found %s; expected %s %ju (%s)",
		LOG_Q(acct->mailbox), LOG_Q(acct->name), problem, found,
		maildir ? MAILDIR_EXPECTED : MBOX_EXPECTED, (uintmax_t)geteuid(),
		me ? me->pw_name : "no account");
	snprintf(why, whylen, "%s", problem);
	return LOGIN_SYS_PERM;
}

int maildrop_drop_to_uid(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	return drop_privileges(pw ? pw->pw_name : NULL, uid, pw ? pw->pw_gid : gid);
}

void maildrop_start_dotlocker(const struct maildrop *md, const char *mailbox, uid_t uid,
			     const struct spool_access *sa)
{
	if (md->root && sa->who == SPOOL_GROUP && sa->group == dotlocker_group() &&
	    (md->cfg->lock_methods & LOCK_DOTLOCK))
		dotlocker_start(mailbox, uid, sa->group);
}

/*
 * Switch, for good, to the account that owns the maildrop: the system account,
 * --user for virtual users, or without --user the mailbox file's owner. The
 * worker of each login attempt is a process of its own.
 */
static enum login_result become_account(struct maildrop *md, const struct account *acct,
					bool maildir, const char *journal_dir, char *why,
					size_t whylen)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (md->root) {
		uid = acct->system ? acct->uid : md->cfg->virt_uid;
		gid = acct->system ? acct->gid : md->cfg->virt_gid;
	}
	bool by_owner = md->root && !acct->system && !md->cfg->virtual_user;
	if (by_owner && maildrop_owner(acct->mailbox, &uid, &gid, why, whylen) < 0) {
		log_msg(LOG_ERR, "no account to serve %s for %s as: %s", LOG_Q(acct->mailbox),
			LOG_Q(acct->name), why);
		return LOGIN_SYS_PERM;
	}
	/* Who may write beside the mailbox, asked as root of the account uid is about to be. */
	const char *name = !md->root ? NULL : acct->system ? acct->name : md->cfg->virtual_user;
	struct passwd *pw = by_owner ? getpwuid(uid) : NULL;
	struct spool_access sa;
	spool_access(acct->mailbox, pw ? pw->pw_name : name, uid, pw ? pw->pw_gid : gid, &sa);
	/* A Maildir's journal is in it, and it takes no MDA lock: neither is made for it. */
	if (!maildir) {
		maildrop_start_dotlocker(md, acct->mailbox, uid, &sa);
		/* The account's own journal directory, made by root while it still can. */
		if (journal_places_prepare(journal_dir, acct->mailbox, uid, gid,
					   sa.who == SPOOL_ACCOUNT, &md->journal, why, whylen) < 0)
			return LOGIN_SYS_TEMP;
	}
	if (!md->root)
		return LOGIN_OK;  /* an ordinary user serves mailboxes as itself */
	int rc = by_owner ? maildrop_drop_to_uid(uid, gid)
			  : drop_privileges(acct->system ? acct->name : md->cfg->virtual_user,
					    uid, gid);
	if (rc < 0) {
		snprintf(why, whylen, "cannot switch to the mailbox owner");
		return uid == 0 ? LOGIN_SYS_PERM : LOGIN_SYS_TEMP;
	}
	return LOGIN_OK;
}

/* A mailbox status as a login result. */
static enum login_result map_status(enum mbox_status st)
{
	switch (st) {
	case MBOX_OK: return LOGIN_OK;
	case MBOX_IN_USE: return LOGIN_IN_USE;
	case MBOX_PERM: return LOGIN_SYS_PERM;
	case MBOX_TEMP: break;
	}
	return LOGIN_SYS_TEMP;
}

/* What a client is told when its maildrop is stuck on something only the admin can fix. */
static const char temp_reason[] = "mailbox is temporarily unavailable; try again later";

void maildrop_options(const struct maildrop *md, struct mbox_options *opt)
{
	mbox_default_options(opt);
	opt->lock_methods = md->cfg->lock_methods;
	opt->max_messages = md->cfg->max_messages;
	opt->max_size = md->cfg->max_mailbox_size;
}

const char *maildrop_expand_dir(const char *option, const char *tmpl, const struct account *acct,
			      char out[MAX_PATH_LEN])
{
	if (!tmpl)
		return NULL;
	if (auth_expand_mailbox(tmpl, acct->name, acct->home, out, MAX_PATH_LEN) < 0) {
		log_msg(LOG_ERR, "%s %s for %s: too long, bad %% sequence or %%h without a home",
			option, tmpl, LOG_Q(acct->name));
		return NULL;
	}
	return out;
}

/*
 * Virtual users sharing the --user account's uid, whom only the sandbox
 * keeps apart: Landlock is required (SANDBOX_SHARED_UID_LANDLOCK_ABI)
 * unless --sandbox=no-landlock. valgrind, which can load no sandbox at
 * all, was logged at start.
 */
static bool needs_landlock(const struct maildrop *md, int ll)
{
	return md->root && md->cfg->virtual_user && md->cfg->passwd_file &&
	       !md->cfg->sandbox_no_landlock && !sandbox_seccomp_skipped() &&
	       ll < SANDBOX_SHARED_UID_LANDLOCK_ABI;
}

/* The keeper's sandbox: Landlock to the maildrop's directories, then seccomp. */
static int enter_worker_sandbox(const struct maildrop *md, const struct sandbox_paths *paths,
				char *why, size_t whylen)
{
	char err[MAX_REASON_LEN] = "";
	if (sandbox_no_privileges(err, sizeof(err)) < 0)
		goto refuse;
	int ll = sandbox_landlock(paths, err, sizeof(err));
	if (ll < 0 || (ll == 0 && md->cfg->sandbox_strict))
		goto refuse;
	if (needs_landlock(md, ll)) {
		log_msg(LOG_ERR, "refusing to serve: virtual users share the uid of --user %s "
			"and need the kernel's Landlock (ABI %d or later) to be kept apart: %s; "
			"--sandbox=no-landlock serves them with seccomp alone",
			md->cfg->virtual_user, SANDBOX_SHARED_UID_LANDLOCK_ABI, err);
		snprintf(why, whylen, "%s", temp_reason);
		return -1;
	}
	if (ll == 0)
		log_msg(LOG_WARNING, "serving without Landlock: %s", err);
	if (sandbox_seccomp_worker(err, sizeof(err)) < 0)
		goto refuse;
	return 0;
refuse:
	log_msg(LOG_ERR, "worker sandbox: %s%s", err,
		md->cfg->sandbox_strict ? " (--sandbox=strict)" : "");
	snprintf(why, whylen, "%s", temp_reason);
	return -1;
}

enum login_result maildrop_take(struct maildrop *md, const struct account *acct, struct mbox **mb,
				char *why, size_t whylen)
{
	/* A name of another mailbox's side file is never served (nor recovered). */
	enum mbox_status named = mbox_check_name(acct->mailbox, why, whylen);
	if (named != MBOX_OK)
		return map_status(named);
	/* Where an interrupted update's journal would be is not optional. */
	char journal_dir[MAX_PATH_LEN];
	const char *jdir = maildrop_expand_dir("--journal-dir", md->cfg->journal_dir, acct, journal_dir);
	if (md->cfg->journal_dir && !jdir) {
		snprintf(why, whylen, "%s", temp_reason);
		return LOGIN_SYS_TEMP;
	}
	/*
	 * Which store, decided once; a Maildir is named with its trailing '/'
	 * from here on (no lookup asks again). Landlock goes beneath the
	 * Maildir itself, not the directory it is in.
	 */
	bool maildir = maildir_path_is(acct->mailbox);
	char maildir_path[MAX_PATH_LEN + 1];
	if (maildir && maildir_dir_path(acct->mailbox, maildir_path, sizeof(maildir_path) - 1) < 0) {
		snprintf(why, whylen, "mailbox path is too long");
		return LOGIN_SYS_PERM;
	}
	if (maildir)
		strcat(maildir_path, "/");
	const char *path = maildir ? maildir_path : acct->mailbox;
	enum login_result lr = become_account(md, acct, maildir, jdir, why, whylen);
	if (lr != LOGIN_OK) {
		if (lr == LOGIN_SYS_TEMP)
			snprintf(why, whylen, "%s", temp_reason);
		return lr;
	}
	privsep_die_with_parent();   /* the drop cleared it */
	struct mbox_options opt;
	maildrop_options(md, &opt);
	char index_dir[MAX_PATH_LEN];
	/* Without a usable index directory the login goes on, unindexed. */
	opt.index_dir = maildrop_expand_dir("--index-dir", md->cfg->index_dir, acct, index_dir);
	opt.journal_dir = md->journal.dir[0] ? md->journal.dir : NULL;   /* journal_places_prepare */
	opt.journal_alt_dir = md->journal.alt[0] ? md->journal.alt : NULL;
	struct sandbox_paths paths = {.mailbox = path,
				      .journal_dir = opt.journal_dir,
				      .journal_alt_dir = opt.journal_alt_dir,
				      .index_dir = opt.index_dir};
	if ((lr = check_mailbox_file(acct, maildir, why, whylen)) != LOGIN_OK)
		return lr;
	if (enter_worker_sandbox(md, &paths, why, whylen) < 0)
		return LOGIN_SYS_TEMP;
	if (md->sandboxed)
		md->sandboxed();
	if (mbox_recover_hooked(path, &opt, md->recover_hooks, why, whylen) < 0) {
		log_msg(LOG_ERR, "recovery of %s failed: %s", LOG_Q(acct->mailbox), why);
		snprintf(why, whylen, "%s", temp_reason);
		return LOGIN_SYS_TEMP;
	}
	enum mbox_status st = mbox_open(mb, path, &opt, why, whylen);
	/* mbox's reasons name no path: the client may see them. */
	if (st != MBOX_OK)
		log_msg(LOG_WARNING, "cannot open mailbox %s for %s: %s", LOG_Q(acct->mailbox),
			LOG_Q(acct->name), why);
	return map_status(st);
}
