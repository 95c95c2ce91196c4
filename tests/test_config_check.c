/* Unit tests for config_check.c and found.c: what start-up refuses, and how it says so. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>


#include <pwd.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "config_check.h"
#include "found.h"
#include "log.h"
#include "logcapture.h"
#include "options.h"
#include "testutil.h"

/* The test's directory as an absolute path (templates must be). */
static const char *tmpdir(void)
{
	static char dir[MAX_PATH_LEN];
	if (!dir[0])
		assert_non_null(realpath(test_tmpdir(), dir));
	return dir;
}

/* The defaults with a --mailbox in the test's directory. */
static void base(struct config *cfg, char *mailbox, size_t size)
{
	assert_int_equal(options_defaults(cfg), 0);
	snprintf(mailbox, size, "%s/%%u", tmpdir());
	cfg->mailbox_template = mailbox;
	logged[0] = '\0';
}

/* config_check refuses cfg, and the log says says. */
static void refused(struct config *cfg, bool root, const char *says)
{
	logged[0] = '\0';
	assert_int_equal(config_check(cfg, root), -1);
	if (!strstr(logged, says))
		fail_msg("log says \"%s\", expected \"%s\"", logged, says);
}

static void test_templates(void **state)
{
	(void)state;
	struct config cfg;
	char mailbox[MAX_PATH_LEN + 16], other[MAX_PATH_LEN + 16];
	base(&cfg, mailbox, sizeof(mailbox));
	assert_int_equal(config_check(&cfg, false), 0);
	assert_string_equal(logged, "");
	cfg.mailbox_template = "var/mail/%u";
	refused(&cfg, false, "--mailbox var/mail/%u: ");
	cfg.mailbox_template = "/var/mail/%x";
	refused(&cfg, false, "--mailbox /var/mail/%x: ");
	snprintf(other, sizeof(other), "%s/missing/%%u", tmpdir());
	cfg.mailbox_template = other;
	refused(&cfg, false, "/missing: No such file or directory (expected an existing directory)");
	snprintf(other, sizeof(other), "%s/plain/%%u", tmpdir());
	test_write_file(test_path("plain"), "x", 1);
	cfg.mailbox_template = other;
	refused(&cfg, false, "/plain is not a directory (expected an existing directory)");
	/* The other templates are held to the same rules. */
	base(&cfg, mailbox, sizeof(mailbox));
	cfg.index_dir = "relative/%u";
	refused(&cfg, false, "--index-dir relative/%u: ");
	cfg.index_dir = NULL;
	snprintf(other, sizeof(other), "%s/nojournals/%%u", tmpdir());
	cfg.journal_dir = other;
	refused(&cfg, false, "--journal-dir ");
	/* %h: every system account has a home; each is its own directory. */
	base(&cfg, mailbox, sizeof(mailbox));
	cfg.mailbox_template = "%h/mbox";
	assert_int_equal(config_check(&cfg, false), 0);
}

static void test_virtual_users(void **state)
{
	(void)state;
	struct config cfg;
	char mailbox[MAX_PATH_LEN + 16];
	base(&cfg, mailbox, sizeof(mailbox));
	const char *pw = test_path("passwd");
	test_write_file(pw, "alice:$6$x$y\n", 13);
	cfg.passwd_file = pw;
	/* Virtual users have no home without --user. */
	cfg.index_dir = "%h/.pop3d";
	refused(&cfg, false, "--index-dir %h/.pop3d uses %h, which virtual users only have with --user");
	cfg.index_dir = NULL;
	cfg.virtual_user = "no-such-account-here";
	refused(&cfg, true, "--user no-such-account-here: no such account");
	cfg.virtual_user = "root";
	refused(&cfg, true, "--user root: an account with uid 0 (expected an unprivileged one");
	/* Not as root: --user is only a home, and is said to be ignored. */
	logged[0] = '\0';
	assert_int_equal(config_check(&cfg, false), 0);
	assert_non_null(strstr(logged, "not started as root: --user root is ignored"));
	const struct passwd *rootpw = getpwnam("root");
	assert_non_null(rootpw);
	assert_string_equal(cfg.virt_home, rootpw->pw_dir);
	assert_int_equal(cfg.virt_uid, 0);
	/* With the home, %h is fine for virtual users. */
	cfg.index_dir = "%h/.pop3d";
	assert_int_equal(config_check(&cfg, false), 0);
}

static void test_passwd_file(void **state)
{
	(void)state;
	struct config cfg;
	char mailbox[MAX_PATH_LEN + 16], missing[MAX_PATH_LEN + 16];
	base(&cfg, mailbox, sizeof(mailbox));
	snprintf(missing, sizeof(missing), "%s/no-passwd", tmpdir());
	cfg.passwd_file = missing;
	refused(&cfg, false, "/no-passwd: No such file or directory (expected a readable file of "
		"name:hash[:mailbox] lines)");
	cfg.passwd_file = tmpdir();
	refused(&cfg, false, ": found a directory, mode ");
	assert_non_null(strstr(logged, "(expected a regular file of name:hash[:mailbox] lines)"));
	const char *fifo = test_path("fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	cfg.passwd_file = fifo;
	refused(&cfg, false, ": found a FIFO, mode 0600, 1 link, owner uid ");
	/* /dev/null: no users, but no reason to refuse. */
	cfg.passwd_file = "/dev/null";
	assert_int_equal(config_check(&cfg, false), 0);
}

static void test_found(void **state)
{
	(void)state;
	char out[MAX_FOUND_TEXT];
	struct stat st = {.st_mode = S_IFIFO | 0640, .st_nlink = 1, .st_uid = 0};
	found_describe(&st, out, sizeof(out));
	assert_string_equal(out, "a FIFO, mode 0640, 1 link, owner uid 0 (root)");
	st = (struct stat){.st_mode = S_IFREG | 0600, .st_nlink = 2, .st_uid = 3999999999u};
	found_describe(&st, out, sizeof(out));
	assert_string_equal(out, "a regular file, mode 0600, 2 links, owner uid 3999999999 "
			    "(no account)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_templates, logcapture_setup, logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_virtual_users, logcapture_setup, logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_passwd_file, logcapture_setup, logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_found, logcapture_setup, logcapture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
