/*
 * Unit tests for privsep.c: the checks on every message between the roles,
 * and the authenticator's rules, with the real process model (fork, the
 * greeter's seccomp filter) driven by fake role bodies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"
#include "privsep.h"
#include "sandbox.h"
#include "testutil.h"

/* ---- ps_check ---- */

static size_t make(struct ps_packet *p, uint32_t type, uint32_t code, const char *f1,
		   size_t l1, const char *f2, size_t l2)
{
	memset(p, 0, sizeof(*p));
	p->h = (struct ps_header){.type = type, .code = code, .len1 = (uint32_t)l1,
				  .len2 = (uint32_t)l2};
	memcpy(p->data, f1, l1);
	memcpy(p->data + l1, f2, l2);
	return sizeof(p->h) + l1 + l2;
}

static const unsigned ALL = 0xffffffffu;

static int check(const struct ps_packet *p, size_t n, unsigned accept, struct ps_msg *m)
{
	char why[128];
	return ps_check(p, n, accept, m, why, sizeof(why));
}

static void test_check_login(void **state)
{
	(void)state;
	struct ps_packet p;
	struct ps_msg m;
	size_t n = make(&p, PS_LOGIN, 0, "alice", 5, "pass word", 9);
	assert_int_equal(check(&p, n, PS_ACCEPT(PS_LOGIN), &m), 0);
	assert_int_equal(m.type, PS_LOGIN);
	assert_int_equal(m.len1, 5);
	assert_memory_equal(m.f1, "alice", 5);
	assert_int_equal(m.len2, 9);
	assert_memory_equal(m.f2, "pass word", 9);
	char user[8];
	ps_field(m.f1, m.len1, user, sizeof(user));
	assert_string_equal(user, "alice");
}

static void test_check_refuses_unexpected_types(void **state)
{
	(void)state;
	struct ps_packet p;
	struct ps_msg m;
	size_t n = make(&p, PS_LOGIN, 0, "alice", 5, "x", 1);
	assert_int_equal(check(&p, n, PS_ACCEPT(PS_LOG), &m), -1);   /* not now */
	p.h.type = 0;
	assert_int_equal(check(&p, n, ALL, &m), -1);
	p.h.type = PS_TYPES;
	assert_int_equal(check(&p, n, ALL, &m), -1);
	p.h.type = 1000;
	assert_int_equal(check(&p, n, ALL, &m), -1);
}

static void test_check_refuses_bad_lengths(void **state)
{
	(void)state;
	struct ps_packet p;
	struct ps_msg m;
	size_t n = make(&p, PS_LOGIN, 0, "alice", 5, "secret", 6);
	assert_int_equal(check(&p, 0, ALL, &m), -1);
	assert_int_equal(check(&p, sizeof(p.h) - 1, ALL, &m), -1);   /* a cut header */
	assert_int_equal(check(&p, n - 1, ALL, &m), -1);             /* truncated field */
	assert_int_equal(check(&p, n + 1, ALL, &m), -1);             /* octets past the fields */
	p.h.len1 = MAX_SASL_LINE + 1;                                 /* over the type's limit */
	assert_int_equal(check(&p, sizeof(p.h) + p.h.len1 + 6, ALL, &m), -1);
	p.h.len1 = 0xffffffffu;                                       /* would overflow a sum */
	assert_int_equal(check(&p, n, ALL, &m), -1);
	n = make(&p, PS_FAILED, 0, "x", 1, "", 0);                    /* FAILED carries nothing */
	assert_int_equal(check(&p, n, ALL, &m), -1);
	n = make(&p, PS_LOGIN, 0, "", 0, "secret", 6);                /* no user name */
	assert_int_equal(check(&p, n, ALL, &m), -1);
}

static void test_check_text_fields_have_no_nul(void **state)
{
	(void)state;
	struct ps_packet p;
	struct ps_msg m;
	size_t n = make(&p, PS_LOGIN, 0, "al\0ce", 5, "secret", 6);
	assert_int_equal(check(&p, n, ALL, &m), -1);
	n = make(&p, PS_LOGIN, 0, "alice", 5, "sec\0et", 6);
	assert_int_equal(check(&p, n, ALL, &m), -1);
	/* The client's unread octets are octets: a NUL there is the session's to refuse. */
	n = make(&p, PS_HANDOFF, 0, "alice", 5, "NO\0OP\r\n", 7);
	assert_int_equal(check(&p, n, ALL, &m), 0);
	assert_int_equal(m.len2, 7);
}

static void test_check_codes_in_range(void **state)
{
	(void)state;
	struct ps_packet p;
	struct ps_msg m;
	size_t n = make(&p, PS_LOG, LOG_DEBUG, "line", 4, "", 0);
	assert_int_equal(check(&p, n, ALL, &m), 0);
	p.h.code = LOG_DEBUG + 1;
	assert_int_equal(check(&p, n, ALL, &m), -1);
	n = make(&p, PS_ANSWER, LOGIN_DELAY, "", 0, "", 0);
	assert_int_equal(check(&p, n, ALL, &m), 0);
	p.h.code = LOGIN_DELAY + 1;
	assert_int_equal(check(&p, n, ALL, &m), -1);
	n = make(&p, PS_LOGIN, METHOD_PLAIN, "alice", 5, "pw", 2);   /* the method */
	assert_int_equal(check(&p, n, ALL, &m), 0);
	p.h.code = LOGIN_METHODS;
	assert_int_equal(check(&p, n, ALL, &m), -1);
}

/* A packet larger than any message is seen whole (MSG_TRUNC) and refused, not cut to fit. */
static void test_recv_oversized_packet(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	size_t big = sizeof(struct ps_packet) + 100;
	char *buf = calloc(1, big);
	assert_non_null(buf);
	struct ps_header h = {.type = PS_LOG, .len1 = 10};
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(write(sv[0], buf, big), (ssize_t)big);
	struct ps_packet p;
	ssize_t n = ps_recv(sv[1], &p);
	assert_int_equal(n, (ssize_t)big);
	struct ps_msg m;
	assert_int_equal(check(&p, (size_t)n, ALL, &m), -1);
	/* and a good one after it arrives whole */
	assert_int_equal(ps_send(sv[0], PS_LOG, LOG_INFO, 0, "hello", 5, NULL, 0), 0);
	n = ps_recv(sv[1], &p);
	assert_int_equal(check(&p, (size_t)n, ALL, &m), 0);
	assert_memory_equal(m.f1, "hello", 5);
	free(buf);
	close(sv[0]);
	close(sv[1]);
}

/* ---- the authenticator, with fake roles ---- */

/* What the fake greeter does, chosen by the test. */
enum script {
	SCRIPT_WRONG_THEN_RIGHT,    /* fail, PS_FAILED, then log in and hand over */
	SCRIPT_SKIP_DELAY,          /* fail, then PS_LOGIN again without PS_FAILED */
	SCRIPT_TOO_MANY,            /* max failures, then one more PS_LOGIN */
	SCRIPT_GARBAGE,             /* a message with lengths that do not add up */
	SCRIPT_UNASKED_HANDOFF,     /* PS_HANDOFF with no login */
	SCRIPT_IN_USE,              /* the worker cannot take the maildrop: back to the greeter */
	SCRIPT_VIOLATION,           /* a forbidden system call */
	SCRIPT_OTHER_USER,          /* logs in as alice, hands over as bob */
	SCRIPT_FORGED_LOG,          /* a log line that looks like the authenticator's */
};

/* Log lines the authenticator wrote, one after the other. */
struct log_capture {
	char text[16384];
	size_t len;
};

static void capture_reset(struct log_capture *c)
{
	c->len = 0;
	c->text[0] = '\0';
}

static void capture_log(int priority, const char *msg, void *ctx)
{
	struct log_capture *c = ctx;
	(void)priority;
	int n = snprintf(c->text + c->len, sizeof(c->text) - c->len, "%s\n", msg);
	if (n > 0 && (size_t)n < sizeof(c->text) - c->len)
		c->len += (size_t)n;
}

static bool capture_contains(const struct log_capture *c, const char *what)
{
	return strstr(c->text, what) != NULL;
}

/* A whole line that starts with what: the authenticator's own, not one relayed. */
static bool capture_starts_line(const struct log_capture *c, const char *what)
{
	for (const char *at = c->text; (at = strstr(at, what)) != NULL; at++)
		if (at == c->text || at[-1] == '\n')
			return true;
	return false;
}

static enum script current;
static struct log_capture logs;

/* The greeter: exit status 10 + step that went wrong, 0 when all went as expected. */
static int fake_greet(void *ctx, int chan)
{
	(void)ctx;
	char why[MAX_REASON_LEN];
	struct ps_packet p;
	switch (current) {
	case SCRIPT_WRONG_THEN_RIGHT:
		if (privsep_login(chan, "alice", "wrong", METHOD_PLAIN, why, sizeof(why)) != LOGIN_FAILED)
			return 11;
		privsep_login_failed(chan);
		if (privsep_login(chan, "alice", "right", METHOD_USER, why, sizeof(why)) != LOGIN_OK)
			return 12;
		{
			struct session s;
			memset(&s, 0, sizeof(s));
			snprintf(s.user, sizeof(s.user), "alice");
			s.bad_commands = 2;
			s.started = 12345;
			if (privsep_handoff(chan, &s, "STAT\r\n", 6) < 0)
				return 13;
		}
		return 0;
	case SCRIPT_SKIP_DELAY:
		if (privsep_login(chan, "alice", "wrong", METHOD_USER, why, sizeof(why)) != LOGIN_FAILED)
			return 11;
		privsep_login(chan, "alice", "right", METHOD_USER, why, sizeof(why));
		return 12;   /* the authenticator kills us before this */
	case SCRIPT_TOO_MANY:
		for (int i = 0; i < MAX_FAILED_LOGINS; i++) {
			if (privsep_login(chan, "alice", "wrong", METHOD_USER, why, sizeof(why)) != LOGIN_FAILED)
				return 11;
			privsep_login_failed(chan);
		}
		privsep_login(chan, "alice", "right", METHOD_USER, why, sizeof(why));
		return 12;
	case SCRIPT_GARBAGE:
		make(&p, PS_LOGIN, 0, "alice", 5, "x", 1);
		p.h.len2 = 50;
		if (write(chan, &p, sizeof(p.h) + 6) < 0)
			return 11;
		privsep_login_failed(chan);   /* blocks until killed */
		return 12;
	case SCRIPT_UNASKED_HANDOFF: {
		struct session s;
		memset(&s, 0, sizeof(s));
		snprintf(s.user, sizeof(s.user), "alice");
		privsep_handoff(chan, &s, "", 0);
		privsep_login_failed(chan);
		return 12;
	}
	case SCRIPT_IN_USE:
		if (privsep_login(chan, "busy", "right", METHOD_USER, why, sizeof(why)) != LOGIN_IN_USE)
			return 11;
		if (strcmp(why, "held by another session") != 0)
			return 12;
		return 0;
	case SCRIPT_OTHER_USER: {
		if (privsep_login(chan, "alice", "right", METHOD_USER, why, sizeof(why)) != LOGIN_OK)
			return 11;
		struct session s;
		memset(&s, 0, sizeof(s));
		snprintf(s.user, sizeof(s.user), "bob");
		s.bad_commands = 2;
		s.started = 12345;
		return privsep_handoff(chan, &s, "STAT\r\n", 6) < 0 ? 13 : 0;
	}
	case SCRIPT_VIOLATION:
		(void)!getppid();   /* not on the greeter's allowlist */
		return 12;
	case SCRIPT_FORGED_LOG:
		log_msg(LOG_NOTICE, "authentication failed: user=x peer=203.0.113.9 method=USER");
		return 0;
	}
	return 99;
}

static enum auth_result fake_authenticate(void *ctx, const char *user, const char *password,
					  struct account *acct)
{
	(void)ctx;
	memset(acct, 0, sizeof(*acct));
	snprintf(acct->name, sizeof(acct->name), "%s", user);
	return strcmp(password, "right") == 0 ? AUTH_OK : AUTH_FAIL;
}

static enum login_result fake_take(void *ctx, const struct account *acct, struct mbox **mb,
				   char *why, size_t whylen)
{
	(void)ctx;
	*mb = NULL;
	if (strcmp(acct->name, "busy") == 0) {
		snprintf(why, whylen, "held by another session");
		return LOGIN_IN_USE;
	}
	/* As pop3d's role does (enter_worker_sandbox): without NO_NEW_PRIVS the
	 * session process's Landlock is refused to a caller that is not root, and
	 * the package build runs these tests as an ordinary user. */
	return sandbox_no_privileges(why, whylen) < 0 ? LOGIN_FAILED : LOGIN_OK;
}

/* The session process: 42 when the handoff arrived whole. */
static int fake_transact(void *ctx, struct mbox *mb, const struct handoff *h, int keeper)
{
	(void)ctx;
	(void)mb;
	(void)keeper;
	if (strcmp(h->user, "alice") != 0 || h->bad_commands != 2 || h->started != 12345 ||
	    h->pending_len != 6 || memcmp(h->pending, "STAT\r\n", 6) != 0)
		return 43;
	return 42;
}

static enum mbox_status fake_update(void *ctx, struct mbox *mb, char *why, size_t whylen)
{
	(void)ctx;
	(void)mb;
	(void)why;
	(void)whylen;
	return MBOX_OK;
}

static const struct privsep_roles fake_roles = {
	.greet = fake_greet,
	.authenticate = fake_authenticate,
	.take_maildrop = fake_take,
	.transact = fake_transact,
	.update = fake_update,
};

static bool is_dev_null(int fd)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat("/dev/null", &b) == 0 && S_ISCHR(a.st_mode) &&
	       a.st_rdev == b.st_rdev;
}

/* After the last run: the authenticator had let go of its stdin and stdout (the client). */
static bool let_go;

static int run_script(enum script sc)
{
	struct privsep_config cfg = {.root = false, .login_delay = 0,
				     .max_failed_logins = MAX_FAILED_LOGINS, .peer = "192.0.2.1"};
	current = sc;
	capture_reset(&logs);
	log_set_hook(capture_log, &logs);
	/* This process is the authenticator: its stdio (cmocka's) is the "client". */
	fflush(stdout);
	fflush(stderr);
	int saved[3];
	for (int fd = 0; fd < 3; fd++)
		assert_true((saved[fd] = dup(fd)) > 2);
	int status = privsep_run(&cfg, &fake_roles);
	let_go = is_dev_null(STDIN_FILENO) && is_dev_null(STDOUT_FILENO);
	for (int fd = 0; fd < 3; fd++) {
		assert_int_equal(dup2(saved[fd], fd), fd);
		close(saved[fd]);
	}
	log_set_hook(NULL, NULL);
	return status;
}

static void test_login_after_failure_hands_over(void **state)
{
	(void)state;
	/* The session process's status comes back: the handoff reached it whole. */
	assert_int_equal(run_script(SCRIPT_WRONG_THEN_RIGHT), 42);
	assert_true(let_go);   /* the client is the session process's alone */
	/* The failure, logged by the authenticator with its own peer and the method. */
	assert_true(capture_starts_line(&logs, "authentication failed: user=alice "
					       "peer=192.0.2.1 method=PLAIN\n"));
}

static void test_login_without_the_delay_is_refused(void **state)
{
	(void)state;
	assert_int_equal(run_script(SCRIPT_SKIP_DELAY), 1);
	assert_true(capture_contains(&logs, "refused a malformed message from the greeter"));
	assert_true(capture_contains(&logs, "unexpected message type 2"));
}

static void test_login_past_the_limit_is_refused(void **state)
{
	(void)state;
	assert_int_equal(run_script(SCRIPT_TOO_MANY), 1);
	assert_true(capture_contains(&logs, "unexpected message type 2"));
}

static void test_garbage_is_refused(void **state)
{
	(void)state;
	assert_int_equal(run_script(SCRIPT_GARBAGE), 1);
	assert_true(capture_contains(&logs, "does not match its fields"));
}

static void test_unasked_handoff_is_refused(void **state)
{
	(void)state;
	assert_int_equal(run_script(SCRIPT_UNASKED_HANDOFF), 1);
	assert_true(capture_contains(&logs, "unexpected message type 5"));
}

static void test_refused_maildrop_goes_back_to_the_greeter(void **state)
{
	(void)state;
	assert_int_equal(run_script(SCRIPT_IN_USE), 0);
}

static void test_handoff_for_another_user_is_refused(void **state)
{
	(void)state;
	/* Not 42: the session process never ran for bob. */
	assert_int_equal(run_script(SCRIPT_OTHER_USER), 1);
	assert_true(capture_contains(&logs, "refused a handoff for bob (authenticated: alice)"));
}

static void test_violation_is_logged_with_the_call(void **state)
{
	(void)state;
	assert_int_equal(run_script(SCRIPT_VIOLATION), 1);
	assert_true(capture_contains(&logs, "sandbox violation: the greeter"));
	assert_true(capture_contains(&logs, "(getppid)"));
}

/* A child's line is relayed after its role: it cannot pass for the authenticator's. */
static void test_relayed_lines_are_marked(void **state)
{
	(void)state;
	assert_int_equal(run_script(SCRIPT_FORGED_LOG), 0);
	assert_true(capture_contains(&logs, "greeter: authentication failed: user=x "
					    "peer=203.0.113.9 method=USER\n"));
	assert_false(capture_starts_line(&logs, "authentication"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_login),
		cmocka_unit_test(test_check_refuses_unexpected_types),
		cmocka_unit_test(test_check_refuses_bad_lengths),
		cmocka_unit_test(test_check_text_fields_have_no_nul),
		cmocka_unit_test(test_check_codes_in_range),
		cmocka_unit_test(test_recv_oversized_packet),
		cmocka_unit_test(test_login_after_failure_hands_over),
		cmocka_unit_test(test_login_without_the_delay_is_refused),
		cmocka_unit_test(test_login_past_the_limit_is_refused),
		cmocka_unit_test(test_garbage_is_refused),
		cmocka_unit_test(test_unasked_handoff_is_refused),
		cmocka_unit_test(test_refused_maildrop_goes_back_to_the_greeter),
		cmocka_unit_test(test_handoff_for_another_user_is_refused),
		cmocka_unit_test(test_violation_is_logged_with_the_call),
		cmocka_unit_test(test_relayed_lines_are_marked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
