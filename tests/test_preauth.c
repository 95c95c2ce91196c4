/* Unit tests for preauth.c: the greeter's account and its empty root directory (as root). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "logcapture.h"
#include "options.h"
#include "preauth.h"
#include "testutil.h"

static void test_account(void **state)
{
	(void)state;
	struct config cfg;
	assert_int_equal(options_defaults(&cfg), 0);
	const char *dir = test_path("acct-empty");
	struct privsep_config ps = {.empty_dir = dir};
	cfg.preauth_user = "root";
	assert_int_equal(preauth_prepare(&cfg, &ps), -1);
	assert_non_null(strstr(logged, "--preauth-user root: refusing an account with uid or gid 0"));
	cfg.preauth_user = "no-such-account-here";
	assert_int_equal(preauth_prepare(&cfg, &ps), -1);
	assert_non_null(strstr(logged, "--preauth-user no-such-account-here: no such account"));
	if (geteuid() != 0)
		skip();   /* the directory is root's to make */
	const struct passwd *nobody = getpwnam("nobody");
	assert_non_null(nobody);
	cfg.preauth_user = "nobody";
	assert_int_equal(preauth_prepare(&cfg, &ps), 0);
	assert_int_equal(ps.preauth_uid, nobody->pw_uid);
	assert_int_equal(ps.preauth_gid, nobody->pw_gid);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0555);
}

static void test_empty_dir(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char parent[MAX_PATH_LEN + 16], dir[MAX_PATH_LEN + 32];
	snprintf(parent, sizeof(parent), "%s", test_path("run"));
	snprintf(dir, sizeof(dir), "%s/empty", parent);
	/* Both made: the parent 0755, the root 0555. */
	assert_int_equal(preauth_empty_dir(dir), 0);
	struct stat st;
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0555);
	/* An existing root made exact again; the parent's mode only checked. */
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chmod(parent, 0711), 0);
	assert_int_equal(preauth_empty_dir(dir), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0555);
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	/* Writable by others, or not root's, or not a directory: refused. */
	assert_int_equal(chmod(parent, 0777), 0);
	logged[0] = '\0';
	assert_int_equal(preauth_empty_dir(dir), -1);
	assert_non_null(strstr(logged, "must be a directory owned by root and writable by nobody else"));
	assert_int_equal(chmod(parent, 0755), 0);
	assert_int_equal(chown(dir, 1, 1), 0);
	assert_int_equal(preauth_empty_dir(dir), -1);
	assert_int_equal(chown(dir, 0, 0), 0);
	char file[MAX_PATH_LEN + 48];
	snprintf(file, sizeof(file), "%s/file", parent);
	test_write_file(file, "", 0);
	assert_int_equal(preauth_empty_dir(file), -1);
	assert_int_equal(chmod(dir, 0755), 0);   /* for the cleanup */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_account, logcapture_setup, logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_empty_dir, logcapture_setup, logcapture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
