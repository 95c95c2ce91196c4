/* Unit tests for client.c: reads and their timeouts, the stall timer, the PROXY header, the serve loop. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "exitcode.h"
#include "log.h"
#include "logcapture.h"
#include "session.h"

/* The test's ends of the client's connection: stdin and stdout are the other ends. */
static int to_server = -1, from_server = -1;
static int saved_in = -1, saved_out = -1;

static int setup(void **state)
{
	int in[2], out[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, in), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, out), 0);
	saved_in = dup(STDIN_FILENO);
	saved_out = dup(STDOUT_FILENO);
	fflush(stdout);
	dup2(in[0], STDIN_FILENO);
	dup2(out[0], STDOUT_FILENO);
	close(in[0]);
	close(out[0]);
	to_server = in[1];
	from_server = out[1];
	assert_int_equal(client_install_signals(), 0);
	return logcapture_setup(state);
}

static int teardown(void **state)
{
	fflush(stdout);
	dup2(saved_in, STDIN_FILENO);
	dup2(saved_out, STDOUT_FILENO);
	close(saved_in);
	close(saved_out);
	if (to_server >= 0)
		close(to_server);
	close(from_server);
	to_server = -1;
	return logcapture_teardown(state);
}

static void send_text(const char *text)
{
	assert_int_equal(write(to_server, text, strlen(text)), (ssize_t)strlen(text));
}

/* What the server wrote so far (waits for it, briefly). */
static const char *received(void)
{
	static char buf[8192];
	size_t len = 0;
	ssize_t n;
	while (len + 1 < sizeof(buf) &&
	       (n = recv(from_server, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

/* ---- reading ---- */

static void test_read(void **state)
{
	(void)state;
	char buf[64];   /* its timeout (-2): test_serve's autologout */
	send_text("NOOP\r\n");
	assert_int_equal(client_read(buf, sizeof(buf), 1), 6);
	assert_memory_equal(buf, "NOOP\r\n", 6);
	close(to_server);
	to_server = -1;
	assert_int_equal(client_read(buf, sizeof(buf), 1), 0);
}

/* ---- the PROXY header ---- */

static void test_proxy_header(void **state)
{
	(void)state;
	char buf[CLIENT_READ_SIZE];
	size_t pending = 99;
	struct proxy_info pi;
	send_text("PROXY TCP6 ::ffff:198.51.100.7 ::1 4000 110\r\nCAPA\r\nUS");
	assert_int_equal(client_read_proxy_header("10.0.0.1", buf, &pending, &pi), 0);
	assert_true(pi.have_addr);
	assert_string_equal(pi.addr, "198.51.100.7");
	assert_false(pi.tls);
	assert_int_equal(pending, 8);   /* what followed: the session's */
	assert_memory_equal(buf, "CAPA\r\nUS", 8);
	assert_string_equal(logged, "");
}

static void test_proxy_header_bad(void **state)
{
	(void)state;
	char buf[CLIENT_READ_SIZE];
	size_t pending = 0;
	struct proxy_info pi;
	send_text("USER alice\r\n");
	assert_int_equal(client_read_proxy_header("10.0.0.1", buf, &pending, &pi), -1);
	assert_non_null(strstr(logged, "bad PROXY header from trusted peer 10.0.0.1: "));
	logged[0] = '\0';
	send_text("PROXY TCP4 192.0.2.1");   /* then the proxy goes away */
	close(to_server);
	to_server = -1;
	assert_int_equal(client_read_proxy_header("10.0.0.1", buf, &pending, &pi), -1);
	assert_non_null(strstr(logged, "connection closed before the PROXY header from trusted "
			       "peer 10.0.0.1; closing"));
}

/* ---- limits ---- */

static void test_limits(void **state)
{
	(void)state;
	struct config cfg = {.max_session_time = 100, .login_timeout = 30};
	struct time_limit l = client_greeter_limit(&cfg);
	assert_int_equal(l.seconds, 30);
	assert_string_equal(l.what, "login");
	l = client_session_limit(&cfg);
	assert_int_equal(l.seconds, 100);
	assert_string_equal(l.what, "session");
	cfg.login_timeout = 100;   /* the lifetime ends first, or together: it is the session's */
	l = client_greeter_limit(&cfg);
	assert_int_equal(l.seconds, 100);
	assert_string_equal(l.what, "session");
	assert_int_equal(client_exit_status(END_QUIT), EXIT_OK);
	assert_int_equal(client_exit_status(END_UPDATE_FAILED), EXIT_UPDATE);
	assert_int_equal(client_exit_status(END_EOF), EXIT_SESSION);
	assert_int_equal(client_exit_status(END_TIMEOUT), EXIT_SESSION);
	assert_int_equal(client_exit_status(END_HANDOFF), EXIT_SESSION);
}

/* ---- the serve loop, with a session that cannot log in ---- */

static enum login_result refuse_login(void *ctx, const char *user, const char *password,
				      enum login_method method, struct mbox **mb, char *why,
				      size_t whylen)
{
	(void)ctx, (void)user, (void)password, (void)method, (void)mb;
	snprintf(why, whylen, "no");
	return LOGIN_SYS_TEMP;
}

static const struct session_config scfg = {
	.peer = "192.0.2.9", .max_failed_logins = 3, .max_bad_commands = 20,
	.max_preauth_input = 65536, .plaintext_ok = true,
};
static const struct session_backend be = {.login = refuse_login};

/* Serve a fresh session with these limits; its end returned, its output in *out. */
static enum session_end serve(unsigned timeout, unsigned limit, time_t age, const char *pending_in)
{
	struct client_out co;
	struct outbuf ob;
	assert_int_equal(client_open(&co, &ob, timeout), 0);
	struct session s;
	session_init(&s, &scfg, &be, &ob);
	s.started = time(NULL) - age;
	char buf[CLIENT_READ_SIZE];
	size_t pending = strlen(pending_in);
	memcpy(buf, pending_in, pending);
	struct time_limit tl = {.seconds = limit, .what = "login"};
	client_serve(&s, &ob, &co, &tl, buf, &pending);
	enum session_end end = s.end;
	session_free(&s);
	outbuf_free(&ob);
	return end;
}

static void test_serve(void **state)
{
	(void)state;
	/* Octets read before (the PROXY header's remainder) come first. */
	send_text("\r\nQUIT\r\n");
	assert_int_equal(serve(5, 100, 0, "NOOP"), END_QUIT);
	const char *out = received();
	assert_non_null(strstr(out, "-ERR"));      /* NOOP before login */
	assert_non_null(strstr(out, "+OK"));       /* QUIT */
	/* Idle: the autologout timer. */
	assert_int_equal(serve(1, 100, 0, ""), END_TIMEOUT);
	assert_string_equal(received(), "-ERR autologout timer expired, closing\r\n");
	assert_non_null(strstr(logged, "autologout timer expired after 1 s: peer=192.0.2.9"));
	/* The lifetime already spent: the time limit, whatever the idle timer. */
	assert_int_equal(serve(600, 10, 20, ""), END_TIMEOUT);
	assert_string_equal(received(), "-ERR login time limit reached, closing\r\n");
	assert_non_null(strstr(logged, "login time limit of 10 s reached: peer=192.0.2.9"));
	/* The client goes away. */
	close(to_server);
	to_server = -1;
	assert_int_equal(serve(600, 100, 0, ""), END_EOF);
}

/* ---- writing: a client that stops reading ---- */

static void test_write_stall(void **state)
{
	(void)state;
	int sz = 4096;
	setsockopt(STDOUT_FILENO, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	struct client_out co;
	struct outbuf ob;
	assert_int_equal(client_open(&co, &ob, 1), 0);
	static char big[1 << 20];
	memset(big, 'x', sizeof(big));
	time_t t0 = time(NULL);
	int rc = outbuf_put(&ob, big, sizeof(big));
	if (rc == 0)
		rc = outbuf_flush(&ob);
	assert_int_equal(rc, -1);
	time_t took = time(NULL) - t0;
	assert_true(took >= 1 && took <= 4);   /* the timeout, and at most a second or two more */
	assert_true(co.stalled);
	assert_non_null(strstr(logged, "the client stopped reading: a write stalled for 1 s"));
	client_disarm(&co);
	assert_false(co.armed);
	outbuf_free(&ob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proxy_header_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_stall, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
