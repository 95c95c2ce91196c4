/* Start-up checks of the configuration: what every login would trip over, found before the greeting. */
#define _GNU_SOURCE
#include "config_check.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "found.h"
#include "log.h"

/* --user: the account virtual users are served as (as root), and its home for %h. */
static int setup_virtual_user(struct config *cfg, bool root)
{
	if (!cfg->virtual_user)
		return 0;  /* as root, virtual mailboxes are then served as their owners */
	struct passwd *pw = getpwnam(cfg->virtual_user);
	if (!pw) {
		config_error(false, "--user %s: no such account (expected the name of a system "
			     "account)", cfg->virtual_user);
		return -1;
	}
	if (root && pw->pw_uid == 0) {
		config_error(false, "--user %s: an account with uid 0 (expected an unprivileged "
			     "one: mailboxes are never served as root)", cfg->virtual_user);
		return -1;
	}
	if (!root)
		log_msg(LOG_NOTICE, "not started as root: --user %s is ignored (its home is "
			"still used for %%h)", cfg->virtual_user);
	cfg->virt_uid = pw->pw_uid;
	cfg->virt_gid = pw->pw_gid;
	snprintf(cfg->virt_home, sizeof(cfg->virt_home), "%s", pw->pw_dir ? pw->pw_dir : "");
	return 0;
}

/*
 * A path template (--mailbox, --index-dir, --journal-dir; NULL: not set):
 * absolute, known % escapes (auth.c knows them), %h only where there is a
 * home, and the directory no expansion changes exists (/var/mail of
 * /var/mail/%u): else every login would fail, or find an empty maildrop.
 */
static int check_template(const struct config *cfg, const char *option, const char *tmpl)
{
	if (!tmpl)
		return 0;
	const char *problem = auth_template_problem(tmpl);
	if (problem) {
		config_error(false, "%s %s: %s", option, tmpl, problem);
		return -1;
	}
	if (cfg->passwd_file && strstr(tmpl, "%h") && !cfg->virt_home[0]) {
		config_error(false, "%s %s uses %%h, which virtual users only have with --user",
			     option, tmpl);
		return -1;
	}
	char dir[MAX_PATH_LEN];
	struct stat st;
	if (auth_template_fixed_dir(tmpl, dir, sizeof(dir)) == 0)
		return 0;   /* %h/...: each home is its own */
	if (stat(dir, &st) < 0) {
		config_error(false, "%s %s: directory %s: %s (expected an existing directory)",
			     option, tmpl, dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		config_error(false, "%s %s: %s is not a directory (expected an existing directory)",
			     option, tmpl, dir);
		return -1;
	}
	return 0;
}

/* --passwd names a file pop3d can open and read (auth.c then reads its lines). */
static int check_passwd_file(const char *path)
{
	int fd;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	while (fd < 0 && errno == EINTR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		config_error(false, "--passwd %s: %s (expected a readable file of "
			     "name:hash[:mailbox] lines)", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);   /* read-only: nothing to lose */
	/* A directory cannot be read, a FIFO would hang every login; /dev/null is no users. */
	if (S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
		char found[MAX_FOUND_TEXT];
		found_describe(&st, found, sizeof(found));
		config_error(false, "--passwd %s: found %s (expected a regular file of "
			     "name:hash[:mailbox] lines)", path, found);
		return -1;
	}
	return 0;
}

int config_check(struct config *cfg, bool root)
{
	if (setup_virtual_user(cfg, root) < 0)
		return -1;
	if (check_template(cfg, "--mailbox", cfg->mailbox_template) < 0 ||
	    check_template(cfg, "--index-dir", cfg->index_dir) < 0 ||
	    check_template(cfg, "--journal-dir", cfg->journal_dir) < 0)
		return -1;
	/* Readable, and its malformed lines logged (once: logins do not repeat them). */
	if (cfg->passwd_file && (check_passwd_file(cfg->passwd_file) < 0 ||
				 auth_check_passwd_file(cfg->passwd_file) < 0))
		return -1;
	return 0;
}
