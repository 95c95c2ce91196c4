/* Unit tests for options.c: every option, its defaults, and every refusal in words. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcode.h"
#include "lock.h"
#include "log.h"
#include "logcapture.h"
#include "options.h"
#include "testutil.h"

/* ---- helpers ---- */

/* Also closes a log a test opened. */
static int teardown(void **state)
{
	log_close();
	return logcapture_teardown(state);
}

/* Parse "pop3d" followed by the NULL-terminated arguments into cfg (defaults first). */
static int parse(struct config *cfg, ...)
{
	static char *argv[32];
	int argc = 0;
	argv[argc++] = (char *)"pop3d";
	va_list ap;
	va_start(ap, cfg);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(options_defaults(cfg), 0);
	logged[0] = '\0';
	optind = 0;
	return options_parse(argc, argv, cfg);
}

/* One argument refused, with a log line containing each of the texts. */
static void refused(const char *arg, const char *says)
{
	struct config cfg;
	if (parse(&cfg, arg, (char *)NULL) != -1)
		fail_msg("%s was accepted", arg);
	if (!strstr(logged, says))
		fail_msg("%s: log says \"%s\", expected \"%s\"", arg, logged, says);
	assert_non_null(strstr(logged, "usage error: "));
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	(void)state;
	struct config cfg;
	assert_int_equal(parse(&cfg, (char *)NULL), 0);
	assert_string_equal(cfg.mailbox_template, "/var/mail/%u");
	assert_string_equal(cfg.log_dest, "syslog");
	assert_string_equal(cfg.state_dir, DEFAULT_STATE_DIR);
	assert_null(cfg.passwd_file);
	assert_null(cfg.virtual_user);
	assert_null(cfg.index_dir);
	assert_null(cfg.journal_dir);
	assert_null(cfg.preauth_user);
	assert_null(cfg.recover_path);
	assert_int_equal(cfg.timeout, DEFAULT_TIMEOUT);
	assert_int_equal(cfg.login_delay, DEFAULT_LOGIN_DELAY);
	assert_int_equal(cfg.lock_methods, LOCK_DEFAULT);
	assert_int_equal(cfg.max_messages, MAX_MESSAGES);
	assert_true(cfg.max_mailbox_size == MAX_MAILBOX_SIZE);
	assert_int_equal(cfg.max_session_time, DEFAULT_SESSION_TIME);
	assert_int_equal(cfg.login_timeout, DEFAULT_LOGIN_TIMEOUT);
	assert_int_equal(cfg.throttle.known_days, DEFAULT_KNOWN_DAYS);
	struct throttle_rate r;
	assert_int_equal(throttle_parse_rate(DEFAULT_THROTTLE_ACCOUNT, &r), 0);
	assert_memory_equal(&r, &cfg.throttle.account, sizeof(r));
	assert_int_equal(throttle_parse_rate(DEFAULT_THROTTLE_KNOWN, &r), 0);
	assert_memory_equal(&r, &cfg.throttle.known, sizeof(r));
	assert_int_equal(throttle_parse_rate(DEFAULT_THROTTLE_SOURCE, &r), 0);
	assert_memory_equal(&r, &cfg.throttle.source, sizeof(r));
	assert_int_equal(cfg.trusted_proxies.count, 0);
	assert_false(cfg.hash_mode || cfg.tls_only || cfg.sandbox_strict || cfg.sandbox_no_landlock);
	assert_string_equal(logged, "");
}

/* ---- every option, long and short ---- */

static void test_long_options(void **state)
{
	(void)state;
	struct config cfg;
	assert_int_equal(parse(&cfg, "--passwd=/etc/p", "--mailbox=/m/%u", "--user=vmail",
			       "--timeout=30", "--log=stderr", "--hash", "--lock=flock",
			       "--login-delay=0", "--recover=/m/x", "--tls-only",
			       "--max-messages=7", "--max-mailbox-size=5M", "--max-session-time=99",
			       "--login-timeout=12", "--index-dir=/i/%u", "--journal-dir=/j/%u",
			       "--preauth-user=nobody", "--sandbox=strict",
			       "--trusted-proxy=10.0.0.0/8,::1", "--state-dir=/s",
			       "--throttle-account=3/60", "--throttle-known=0",
			       "--throttle-source=9/10", "--known-source-days=0", (char *)NULL), 0);
	assert_string_equal(cfg.passwd_file, "/etc/p");
	assert_string_equal(cfg.mailbox_template, "/m/%u");
	assert_string_equal(cfg.virtual_user, "vmail");
	assert_int_equal(cfg.timeout, 30);
	assert_string_equal(cfg.log_dest, "stderr");
	assert_true(cfg.hash_mode);
	assert_int_equal(cfg.lock_methods, LOCK_FLOCK);
	assert_int_equal(cfg.login_delay, 0);
	assert_string_equal(cfg.recover_path, "/m/x");
	assert_true(cfg.tls_only);
	assert_int_equal(cfg.max_messages, 7);
	assert_true(cfg.max_mailbox_size == 5 << 20);
	assert_int_equal(cfg.max_session_time, 99);
	assert_int_equal(cfg.login_timeout, 12);
	assert_string_equal(cfg.index_dir, "/i/%u");
	assert_string_equal(cfg.journal_dir, "/j/%u");
	assert_string_equal(cfg.preauth_user, "nobody");
	assert_true(cfg.sandbox_strict);
	assert_false(cfg.sandbox_no_landlock);
	assert_int_equal(cfg.trusted_proxies.count, 2);
	assert_true(proxy_trusted(&cfg.trusted_proxies, "10.1.2.3"));
	assert_false(proxy_trusted(&cfg.trusted_proxies, "11.1.2.3"));
	assert_string_equal(cfg.state_dir, "/s");
	struct throttle_rate r;
	assert_int_equal(throttle_parse_rate("3/60", &r), 0);
	assert_memory_equal(&r, &cfg.throttle.account, sizeof(r));
	assert_int_equal(throttle_parse_rate("0", &r), 0);
	assert_memory_equal(&r, &cfg.throttle.known, sizeof(r));
	assert_int_equal(throttle_parse_rate("9/10", &r), 0);
	assert_memory_equal(&r, &cfg.throttle.source, sizeof(r));
	assert_int_equal(cfg.throttle.known_days, 0);
	/* The separate-argument form, and what 'none' means. */
	assert_int_equal(parse(&cfg, "--state-dir", "none", "--sandbox", "no-landlock",
			       "--max-mailbox-size", "2048", (char *)NULL), 0);
	assert_null(cfg.state_dir);
	assert_true(cfg.sandbox_no_landlock);
	assert_true(cfg.max_mailbox_size == 2048);
}

static void test_short_options(void **state)
{
	(void)state;
	struct config cfg;
	assert_int_equal(parse(&cfg, "-P", "/etc/p", "-m/m/%u", "-u", "vmail", "-t", "45",
			       "-L", "stderr", "-H", "-l", "dotlock,fcntl,flock", "-d", "3",
			       "-R", "/m/y", "-T", (char *)NULL), 0);
	assert_string_equal(cfg.passwd_file, "/etc/p");
	assert_string_equal(cfg.mailbox_template, "/m/%u");
	assert_string_equal(cfg.virtual_user, "vmail");
	assert_int_equal(cfg.timeout, 45);
	assert_string_equal(cfg.log_dest, "stderr");
	assert_true(cfg.hash_mode);
	assert_int_equal(cfg.lock_methods, LOCK_DOTLOCK | LOCK_FCNTL | LOCK_FLOCK);
	assert_int_equal(cfg.login_delay, 3);
	assert_string_equal(cfg.recover_path, "/m/y");
	assert_true(cfg.tls_only);
}

/* ---- what is refused, and what the log says ---- */

static void test_bad_numbers(void **state)
{
	(void)state;
	refused("--timeout=0", "--timeout 0: expected a positive number of seconds");
	refused("--timeout=-5", "--timeout -5: expected a positive");
	refused("--timeout=10s", "--timeout 10s: expected a positive");
	refused("--timeout=1000001", "--timeout 1000001: expected a positive");
	refused("-t", "option '-t' needs an argument");
	refused("--login-delay=x", "--login-delay x: expected a number of seconds");
	refused("--max-session-time=0", "--max-session-time 0: expected a positive number");
	refused("--login-timeout=", "--login-timeout : expected a positive number");
	refused("--max-messages=0", "--max-messages 0: expected a number from 1 to");
	refused("--max-messages=99999999999", "--max-messages 99999999999: expected");
	refused("--known-source-days=3651", "--known-source-days 3651: expected a number from 0 to 3650");
	refused("--lock=nfs", "--lock nfs: expected a comma list of dotlock, fcntl, flock");
	struct config cfg;
	assert_int_equal(parse(&cfg, "--timeout=1000000", "--login-delay=0", (char *)NULL), 0);
	assert_int_equal(cfg.timeout, 1000000);
}

static void test_sizes(void **state)
{
	(void)state;
	static const struct {
		const char *arg;
		long long size;
	} ok[] = {
		{"--max-mailbox-size=1", 1}, {"--max-mailbox-size=1k", 1024},
		{"--max-mailbox-size=3K", 3072}, {"--max-mailbox-size=2m", 2LL << 20},
		{"--max-mailbox-size=7G", 7LL << 30}, {"--max-mailbox-size=1T", 1LL << 40},
		{"--max-mailbox-size=1024G", 1LL << 40},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct config cfg;
		assert_int_equal(parse(&cfg, ok[i].arg, (char *)NULL), 0);
		assert_true((long long)cfg.max_mailbox_size == ok[i].size);
	}
	refused("--max-mailbox-size=0", "expected a size like 500M, at most 1T");
	refused("--max-mailbox-size=2T", "--max-mailbox-size 2T: expected a size like 500M");
	refused("--max-mailbox-size=1025G", "expected a size like 500M, at most 1T");
	refused("--max-mailbox-size=5P", "expected a size like 500M");
	refused("--max-mailbox-size=5MB", "expected a size like 500M");
	refused("--max-mailbox-size=M", "expected a size like 500M");
	/* Past what the shift can hold: no wrap-around to a small size. */
	refused("--max-mailbox-size=16777216T", "expected a size like 500M");
	refused("--max-mailbox-size=99999999999999999999", "expected a size like 500M");
}

static void test_throttle_rates(void **state)
{
	(void)state;
	refused("--throttle-account=5", "--throttle-account 5: expected N/SECS");
	refused("--throttle-known=0/60", "--throttle-known 0/60: expected N/SECS");
	refused("--throttle-source=1/0", "--throttle-source 1/0: expected N/SECS");
	refused("--throttle-source=x", "or 0");
	struct config cfg;
	assert_int_equal(parse(&cfg, "--throttle-source=0", (char *)NULL), 0);
	struct throttle_rate off;
	assert_int_equal(throttle_parse_rate("0", &off), 0);
	assert_memory_equal(&off, &cfg.throttle.source, sizeof(off));
}

static void test_paths_and_words(void **state)
{
	(void)state;
	refused("--state-dir=relative", "--state-dir relative: expected an absolute path or 'none'");
	refused("--trusted-proxy=10.0.0.0/33", "--trusted-proxy 10.0.0.0/33: ");
	refused("--trusted-proxy=host.example", "--trusted-proxy host.example: ");
	refused("--sandbox=loose", "--sandbox loose: expected 'strict' or 'no-landlock'");
}

static void test_sandbox_contradiction(void **state)
{
	(void)state;
	struct config cfg;
	assert_int_equal(parse(&cfg, "--sandbox=strict", "--sandbox=strict", (char *)NULL), 0);
	assert_int_equal(parse(&cfg, "--sandbox=strict", "--sandbox=no-landlock", (char *)NULL), -1);
	assert_non_null(strstr(logged, "--sandbox=strict and --sandbox=no-landlock contradict"));
	assert_int_equal(parse(&cfg, "--sandbox=no-landlock", "--sandbox=strict", (char *)NULL), -1);
	assert_non_null(strstr(logged, "contradict each other"));
}

static void test_unknown_options(void **state)
{
	(void)state;
	refused("--bogus", "unrecognized or ambiguous option '--bogus'");
	refused("--max", "unrecognized or ambiguous option '--max'");   /* three begin so */
	refused("-x", "unrecognized option '-x'");
	refused("--timeout", "option '--timeout' needs an argument");
	refused("--hash=yes", "unrecognized or ambiguous option '--hash=yes'");
	refused("extra", "unexpected argument 'extra'");
	/* An unambiguous prefix is the option. */
	struct config cfg;
	assert_int_equal(parse(&cfg, "--tls", "--max-messages=4", (char *)NULL), 0);
	assert_true(cfg.tls_only);
}

/* ---- --help, --version, and where errors go ---- */

/* Run options_parse on args in a child; its stdout into out, its exit status returned. */
static int run_child(char *const *args, int argc, char *out, size_t outlen)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(stdout);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		struct config cfg;
		if (options_defaults(&cfg) < 0)
			_exit(90);
		optind = 0;
		_exit(options_parse(argc, (char **)args, &cfg) == 0 ? 91 : 92);
	}
	close(p[1]);
	size_t len = 0;
	ssize_t n;
	while (len + 1 < outlen && (n = read(p[0], out + len, outlen - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_help_and_version(void **state)
{
	(void)state;
	static char out[16384];
	char *const help[] = {"pop3d", "--timeout=5", "-h", NULL};
	assert_int_equal(run_child(help, 3, out, sizeof(out)), EXIT_OK);
	assert_non_null(strstr(out, "Usage: pop3d [OPTION]..."));
	/* Every long option is in --help. */
	static const char *const names[] = {"--passwd", "--mailbox", "--user", "--timeout",
		"--log", "--hash", "--lock", "--login-delay", "--tls-only", "--recover",
		"--max-messages", "--max-mailbox-size", "--max-session-time", "--login-timeout",
		"--index-dir", "--journal-dir", "--preauth-user", "--trusted-proxy",
		"--sandbox=strict", "--sandbox=no-landlock", "--state-dir", "--throttle-account",
		"--throttle-known", "--throttle-source", "--known-source-days", "--version",
		"--help"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strstr(out, names[i]))
			fail_msg("--help does not list %s", names[i]);
	char exits[128];
	snprintf(exits, sizeof(exits), "%d for a usage error,\n%d for a configuration error, %d when",
		 EXIT_USAGE, EXIT_CONFIG, EXIT_UPDATE);
	assert_non_null(strstr(out, exits));
	char *const version[] = {"pop3d", "--version", NULL};
	assert_int_equal(run_child(version, 2, out, sizeof(out)), EXIT_OK);
	assert_string_equal(out, POP3D_NAME " " POP3D_VERSION "\n");
	/* A bad option before --help: the error, not the help. */
	char *const bad_first[] = {"pop3d", "--timeout=0", "--help", NULL};
	assert_int_equal(run_child(bad_first, 3, out, sizeof(out)), 92);
	assert_string_equal(out, "");
}

/* --log is found wherever it stands: an error before it lands there too. */
static void test_log_found_first(void **state)
{
	(void)state;
	const char *path = test_path("options.log");
	char arg[512];
	snprintf(arg, sizeof(arg), "--log=%s", path);
	char *argv[] = {"pop3d", "--timeout=zero", arg, NULL};
	struct config cfg;
	optind = 0;   /* as at start: no getopt before */
	assert_int_equal(options_start(3, argv, &cfg), 0);
	options_serving();   /* the test's stderr stays quiet */
	assert_string_equal(cfg.log_dest, path);
	assert_int_equal(options_parse(3, argv, &cfg), -1);
	log_close();
	size_t len;
	char *text = test_read_file(path, &len);
	assert_non_null(text);
	assert_non_null(strstr(text, "usage error: --timeout zero: expected a positive number"));
	free(text);
	/* A --log that cannot be opened: syslog instead, and the reason said. */
	char *bad[] = {"pop3d", "--log=/nonexistent-dir/x.log", NULL};
	logged[0] = '\0';
	optind = 0;
	assert_int_equal(options_start(2, bad, &cfg), -1);
	assert_non_null(strstr(logged, "--log /nonexistent-dir/x.log: cannot open: No such file"));
}

/* The client's one line, and its exit status handed back. */
static void test_refuse_client(void **state)
{
	(void)state;
	int out[2], in[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, out), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, in), 0);
	assert_int_equal(write(in[1], "USER x\r\n", 8), 8);
	int saved_out = dup(STDOUT_FILENO), saved_in = dup(STDIN_FILENO);
	dup2(out[0], STDOUT_FILENO);
	dup2(in[0], STDIN_FILENO);
	int rc = refuse_client(EXIT_USAGE);
	dup2(saved_out, STDOUT_FILENO);
	dup2(saved_in, STDIN_FILENO);
	close(saved_out);
	close(saved_in);
	/* What the client sent was read: nothing is left for a reset. */
	char rest[16];
	assert_int_equal(recv(in[1], rest, sizeof(rest), MSG_DONTWAIT), -1);
	assert_int_equal(recv(in[0], rest, sizeof(rest), MSG_DONTWAIT), -1);
	close(out[0]);
	close(in[0]);
	assert_int_equal(rc, EXIT_USAGE);
	char line[128] = "";
	ssize_t n = read(out[1], line, sizeof(line) - 1);
	assert_true(n > 0);
	line[n] = '\0';
	assert_string_equal(line, "-ERR [SYS/TEMP] server configuration error, see the server log\r\n");
	close(out[1]);
	close(in[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_options, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_options, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_numbers, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttle_rates, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths_and_words, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sandbox_contradiction, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_options, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_help_and_version, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_found_first, logcapture_setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_client, logcapture_setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
