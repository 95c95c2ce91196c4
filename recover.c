/* pop3d --recover: repair a mailbox whose update was interrupted, as its owner, and say what was done. */
#define _GNU_SOURCE
#include "recover.h"

#include <errno.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcode.h"
#include "log.h"
#include "maildrop.h"

/* --recover's outcome: on stdout for whoever ran it, and in the log. */
static void recover_says(const char *path, const struct mbox_recovery *res)
{
	char what[MAX_REASON_LEN];
	if (!res->journal)
		snprintf(what, sizeof(what), "nothing to recover");
	else if (res->replayed && res->deletions >= 0)
		snprintf(what, sizeof(what), "recovered: %ld deletion%s applied", res->deletions,
			 res->deletions == 1 ? "" : "s");
	else if (res->replayed)
		snprintf(what, sizeof(what), "recovered: the deletions applied (not counted: the "
			 "interrupted update had begun moving mail)");
	else
		snprintf(what, sizeof(what), "recovered: no deletions left to apply, the "
			 "journal removed (see the log)");
	log_msg(LOG_NOTICE, "--recover %s: %s", path, what);
	printf("%s: %s\n", path, what);
}

int recover_run(const struct config *cfg, bool root, const struct update_hooks *hooks)
{
	const struct maildrop md = {.cfg = cfg, .root = root};
	const char *path = cfg->recover_path;
	char why[MAX_REASON_LEN] = "";
	struct stat st;
	if (lstat(path, &st) < 0 && errno == ENOENT) {
		config_error(false, "--recover %s: no such mailbox", path);
		return EXIT_NOINPUT;
	}
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (root && maildrop_owner(path, &uid, &gid, why, sizeof(why)) < 0) {
		config_error(false, "--recover %s: %s", path, why);
		return EXIT_CONFIG;
	}
	struct mbox_options opt;
	maildrop_options(&md, &opt);
	/* %u and %h of --journal-dir are those of the account the mailbox is recovered as. */
	struct account self = { .name = "" };
	struct passwd *pw = getpwuid(uid);
	if (pw) {
		snprintf(self.name, sizeof(self.name), "%s", pw->pw_name);
		snprintf(self.home, sizeof(self.home), "%s", pw->pw_dir ? pw->pw_dir : "");
	}
	char journal_dir[MAX_PATH_LEN];
	const char *jdir = maildrop_expand_dir("--journal-dir", cfg->journal_dir, &self, journal_dir);
	if (cfg->journal_dir && !jdir) {
		config_error(false, "--recover %s: cannot expand --journal-dir %s", path,
			     cfg->journal_dir);
		return EXIT_CONFIG;
	}
	/*
	 * The places a session would use, made by root while it still can (an older
	 * layout's journal moved in); recovery only reads, so beside the mailbox
	 * counts as allowed and the default directory is the other place.
	 */
	struct journal_places places;
	if (journal_places_prepare(jdir, path, uid, gid, true, &places, why, sizeof(why)) < 0) {
		config_error(false, "--journal-dir %s: %s", jdir, why);
		return EXIT_CONFIG;
	}
	opt.journal_dir = places.dir[0] ? places.dir : NULL;
	opt.journal_alt_dir = places.alt[0] ? places.alt : NULL;
	if (root) {
		struct spool_access sa;
		spool_access(path, pw ? pw->pw_name : NULL, uid, pw ? pw->pw_gid : gid, &sa);
		maildrop_start_dotlocker(&md, path, uid, &sa);
	}
	if (root && maildrop_drop_to_uid(uid, gid) < 0) {
		config_error(false, "--recover %s: cannot switch to its owner (uid %ju)", path,
			     (uintmax_t)uid);
		return EXIT_CONFIG;
	}
	struct mbox_recovery res;
	if (mbox_recover_report(path, &opt, hooks, &res, why, sizeof(why)) < 0) {
		config_error(false, "--recover %s: recovery failed: %s", path, why);
		return EXIT_UPDATE;
	}
	recover_says(path, &res);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_UPDATE;
}
