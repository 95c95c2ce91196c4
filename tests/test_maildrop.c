/* Unit tests for maildrop.c and recover.c: whose a mailbox is, what a login is refused, --recover. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcode.h"
#include "log.h"
#include "logcapture.h"
#include "maildrop.h"
#include "options.h"
#include "privsep.h"
#include "recover.h"
#include "testutil.h"

/* An absolute path in the test's directory (templates and mailboxes must be absolute). */
static const char *abs_path(const char *name)
{
	static char dir[MAX_PATH_LEN], out[4][MAX_PATH_LEN + 64];
	static int next;
	if (!dir[0])
		assert_non_null(realpath(test_tmpdir(), dir));
	char *p = out[next++ % 4];
	snprintf(p, sizeof(out[0]), "%s/%s", dir, name);
	return p;
}

/* ---- whose the mailbox is ---- */

static void test_owner(void **state)
{
	(void)state;
	char why[256];
	uid_t uid = 4242;
	gid_t gid = 4242;
	const char *box = abs_path("owned");
	test_write_file(box, "", 0);
	int rc = maildrop_owner(box, &uid, &gid, why, sizeof(why));
	if (geteuid() == 0) {   /* this test's files are root's: never an answer */
		assert_int_equal(rc, -1);
		assert_string_equal(why, "mailbox belongs to root: set --user to serve it");
		assert_non_null(strstr(logged, "expected a file (or, while there is none, a "
				       "directory) of the account to serve it as, not root's"));
		assert_int_equal(uid, 4242);
	} else {
		assert_int_equal(rc, 0);
		assert_int_equal(uid, geteuid());
		/* None yet: its directory's owner. */
		assert_int_equal(maildrop_owner(abs_path("none-yet"), &uid, &gid, why, sizeof(why)), 0);
		assert_int_equal(uid, geteuid());
	}
	/* A directory that is no Maildir is no mailbox, whoever owns it. */
	logged[0] = '\0';
	char dir[MAX_PATH_LEN];
	snprintf(dir, sizeof(dir), "%s", abs_path("plain-dir"));
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(maildrop_owner(dir, &uid, &gid, why, sizeof(why)), -1);
	assert_string_equal(why, "mailbox is not a regular file");
	assert_non_null(strstr(logged, ": found a directory, mode "));
	/* With a trailing '/' it is a Maildir: its owner serves it (root never does). */
	strcat(dir, "/");
	uid = 4242;
	rc = maildrop_owner(dir, &uid, &gid, why, sizeof(why));
	assert_int_equal(rc, geteuid() == 0 ? -1 : 0);
	assert_int_equal(uid, geteuid() == 0 ? 4242 : geteuid());
	/* A file where a Maildir is expected is refused. */
	assert_int_equal(maildrop_owner(abs_path("owned/"), &uid, &gid, why, sizeof(why)), -1);
	assert_string_equal(why, "mailbox is not a Maildir");
	assert_int_equal(maildrop_owner("/nonexistent-dir/box", &uid, &gid, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "cannot find the mailbox's owner: No such file"));
}

/* ---- settings for this account ---- */

static void test_expand_and_options(void **state)
{
	(void)state;
	struct account acct = {.name = "alice", .home = "/home/alice"};
	char out[MAX_PATH_LEN];
	assert_null(maildrop_expand_dir("--index-dir", NULL, &acct, out));
	assert_string_equal(maildrop_expand_dir("--index-dir", "/var/idx/%u", &acct, out),
			    "/var/idx/alice");
	assert_string_equal(maildrop_expand_dir("--journal-dir", "%h/.j", &acct, out),
			    "/home/alice/.j");
	acct.home[0] = '\0';
	logged[0] = '\0';
	assert_null(maildrop_expand_dir("--journal-dir", "%h/.j", &acct, out));
	assert_non_null(strstr(logged, "--journal-dir %h/.j for alice: too long, bad % sequence "
			       "or %h without a home"));
	struct config cfg;
	assert_int_equal(options_defaults(&cfg), 0);
	cfg.lock_methods = LOCK_FLOCK;
	cfg.max_messages = 12;
	cfg.max_mailbox_size = 3 << 20;
	const struct maildrop md = {.cfg = &cfg};
	struct mbox_options opt;
	maildrop_options(&md, &opt);
	assert_int_equal(opt.lock_methods, LOCK_FLOCK);
	assert_int_equal(opt.max_messages, 12);
	assert_true(opt.max_size == 3 << 20);
}

/* ---- a login's maildrop, in a child: the worker's sandbox is for good ---- */

/* maildrop_take for a mailbox at path, not as root; the login result. */
static enum login_result take(const char *path)
{
	fflush(stdout);
	pid_t pid = privsep_fork();   /* as the worker is: bound to its parent */
	assert_true(pid >= 0);
	if (pid == 0) {
		struct config cfg;
		if (options_defaults(&cfg) < 0)
			_exit(100);
		struct maildrop md = {.cfg = &cfg};
		struct account acct = {.name = "alice"};
		snprintf(acct.mailbox, sizeof(acct.mailbox), "%s", path);
		struct mbox *mb = NULL;
		char why[256];
		enum login_result lr = maildrop_take(&md, &acct, &mb, why, sizeof(why));
		if (lr == LOGIN_OK && (!mb || mbox_count(mb) != 1))
			_exit(101);
		_exit(lr);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return (enum login_result)WEXITSTATUS(st);
}

static void test_take(void **state)
{
	(void)state;
	static const char mail[] = "From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nhi\n";
	const char *box = abs_path("alice");
	test_write_file(box, mail, sizeof(mail) - 1);
	assert_int_equal(chmod(box, 0600), 0);
	assert_int_equal(take(box), LOGIN_OK);
	/* A second name makes it another mailbox's file, or a way to one. */
	const char *other = abs_path("alice-too");
	assert_int_equal(link(box, other), 0);
	assert_int_equal(take(box), LOGIN_SYS_PERM);
	assert_int_equal(unlink(other), 0);
	/* Not readable and writable by its owner. */
	assert_int_equal(chmod(box, 0400), 0);
	assert_int_equal(take(box), LOGIN_SYS_PERM);
	/* A side file's name is never a mailbox. */
	char lock[MAX_PATH_LEN + 16];
	snprintf(lock, sizeof(lock), "%s.lock", box);
	assert_int_equal(take(lock), LOGIN_SYS_PERM);
}

/* ---- --recover ---- */

/* recover_run for path (not as root) in a child; its exit status, stdout in out. */
static int recover(const char *path, char *out, size_t outlen)
{
	int o[2];
	assert_int_equal(pipe(o), 0);
	fflush(stdout);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(o[1], STDOUT_FILENO);
		struct config cfg;
		if (options_defaults(&cfg) < 0)
			_exit(100);
		cfg.recover_path = path;
		_exit(recover_run(&cfg, false, NULL));
	}
	close(o[1]);
	ssize_t n = read(o[0], out, outlen - 1);
	out[n > 0 ? n : 0] = '\0';
	close(o[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_recover(void **state)
{
	(void)state;
	char out[1024], expect[MAX_PATH_LEN + 64];
	const char *missing = abs_path("no-such-box");
	assert_int_equal(recover(missing, out, sizeof(out)), EXIT_NOINPUT);
	assert_string_equal(out, "");
	const char *box = abs_path("carol");
	test_write_file(box, "", 0);
	assert_int_equal(chmod(box, 0600), 0);
	assert_int_equal(recover(box, out, sizeof(out)), EXIT_OK);
	snprintf(expect, sizeof(expect), "%s: nothing to recover\n", box);
	assert_string_equal(out, expect);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_owner, logcapture_setup, logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_expand_and_options, logcapture_setup, logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_take, logcapture_setup, logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_recover, logcapture_setup, logcapture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
