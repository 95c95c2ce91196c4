/* The greeter's place, as root: its unprivileged account (--preauth-user) and its empty root directory. */
#include "preauth.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "limits.h"
#include "log.h"

/* The greeter's account: --preauth-user, else pop3d, else nobody; never root. */
static int find_preauth_account(const struct config *cfg, struct privsep_config *ps)
{
	const char *name = cfg->preauth_user ? cfg->preauth_user : PREAUTH_USER;
	struct passwd *pw = getpwnam(name);
	if (!pw && !cfg->preauth_user) {
		log_msg(LOG_NOTICE, "no account %s for the pre-login process: using %s",
			PREAUTH_USER, PREAUTH_FALLBACK_USER);
		name = PREAUTH_FALLBACK_USER;
		pw = getpwnam(name);
	}
	if (!pw) {
		log_msg(LOG_ERR, "--preauth-user %s: no such account", name);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		log_msg(LOG_ERR, "--preauth-user %s: refusing an account with uid or gid 0", name);
		return -1;
	}
	ps->preauth_uid = pw->pw_uid;
	ps->preauth_gid = pw->pw_gid;
	return 0;
}

/*
 * dir exists as a root-owned directory nobody else may write, made with
 * mode if missing; exact: its mode made mode if it is not (no chmod when it is).
 */
static int root_owned_dir(const char *dir, mode_t mode, bool exact)
{
	struct stat st;
	if (mkdir(dir, mode) < 0 && errno != EEXIST) {
		log_msg(LOG_ERR, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		log_msg(LOG_ERR, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		log_msg(LOG_ERR, "%s must be a directory owned by root and writable by nobody else",
			dir);
		return -1;
	}
	if (exact && (st.st_mode & 07777) != mode && chmod(dir, mode) < 0) {
		log_msg(LOG_ERR, "chmod %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int preauth_empty_dir(const char *dir)
{
	char parent[MAX_PATH_LEN];
	if (parent_dir(dir, parent, sizeof(parent)) < 0) {
		log_msg(LOG_ERR, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (root_owned_dir(parent, 0755, false) < 0)
		return -1;
	return root_owned_dir(dir, 0555, true);
}

int preauth_prepare(const struct config *cfg, struct privsep_config *ps)
{
	if (find_preauth_account(cfg, ps) < 0 || preauth_empty_dir(ps->empty_dir) < 0)
		return -1;
	return 0;
}
