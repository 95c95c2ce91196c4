/* Unit tests for hashcmd.c: pop3d --hash reads one password line and prints a hash that verifies. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcode.h"
#include "hashcmd.h"
#include "limits.h"

/* hashcmd_run in a child with input on stdin; its exit status, stdout and stderr. */
static int run(const char *input, size_t len, char *out, size_t outlen, char *err, size_t errlen)
{
	int in[2], o[2], e[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(o), 0);
	assert_int_equal(pipe(e), 0);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(o[1], STDOUT_FILENO);
		dup2(e[1], STDERR_FILENO);
		close(in[1]);
		int rc = hashcmd_run();
		fflush(NULL);
		_exit(rc);
	}
	close(in[0]);
	close(o[1]);
	close(e[1]);
	assert_int_equal(write(in[1], input, len), (ssize_t)len);
	close(in[1]);
	ssize_t n = read(o[0], out, outlen - 1);
	out[n > 0 ? n : 0] = '\0';
	n = read(e[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(o[0]);
	close(e[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* out is one line, a crypt(3) hash that password verifies against. */
static void verifies(const char *out, const char *password)
{
	char hash[512];
	snprintf(hash, sizeof(hash), "%s", out);
	size_t len = strlen(hash);
	assert_true(len > 1 && hash[len - 1] == '\n');
	hash[len - 1] = '\0';
	assert_true(hash[0] == '$');
	struct crypt_data cd;
	memset(&cd, 0, sizeof(cd));
	const char *again = crypt_r(password, hash, &cd);
	assert_non_null(again);
	assert_string_equal(again, hash);
}

static void test_hash(void **state)
{
	(void)state;
	char out[1024], err[1024];
	assert_int_equal(run("s3cret pass\n", 12, out, sizeof(out), err, sizeof(err)), EXIT_OK);
	verifies(out, "s3cret pass");
	assert_string_equal(err, "");   /* not a terminal: no prompt */
	/* CRLF, and a last line without its newline. */
	assert_int_equal(run("crlf\r\n", 6, out, sizeof(out), err, sizeof(err)), EXIT_OK);
	verifies(out, "crlf");
	assert_int_equal(run("bare", 4, out, sizeof(out), err, sizeof(err)), EXIT_OK);
	verifies(out, "bare");
	/* UTF-8 is octets like any other. */
	assert_int_equal(run("p\xc3\xa4ss\n", 6, out, sizeof(out), err, sizeof(err)), EXIT_OK);
	verifies(out, "p\xc3\xa4ss");
}

static void test_refused(void **state)
{
	(void)state;
	char out[1024], err[1024];
	assert_int_equal(run("", 0, out, sizeof(out), err, sizeof(err)), EXIT_USAGE);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "pop3d: no password on standard input (at most"));
	assert_int_equal(run("\n", 1, out, sizeof(out), err, sizeof(err)), EXIT_USAGE);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "pop3d: --hash: "));
	assert_non_null(strstr(err, "refused: no login accepts it"));
	/* One octet longer than a password may be. */
	char longer[MAX_PASSWORD + 3];
	memset(longer, 'x', MAX_PASSWORD + 1);
	longer[MAX_PASSWORD + 1] = '\n';
	assert_int_equal(run(longer, MAX_PASSWORD + 2, out, sizeof(out), err, sizeof(err)),
			 EXIT_USAGE);
	assert_string_equal(out, "");
	/* The longest one is fine. */
	longer[MAX_PASSWORD] = '\n';
	assert_int_equal(run(longer, MAX_PASSWORD + 1, out, sizeof(out), err, sizeof(err)), EXIT_OK);
	longer[MAX_PASSWORD] = '\0';
	verifies(out, longer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
