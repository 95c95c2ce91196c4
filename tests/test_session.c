/* Unit tests for session.c: the POP3 state machine over a real mbox and a fake backend. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "log.h"
#include "mbox.h"
#include "outbuf.h"
#include "session.h"
#include "testutil.h"
#include "update.h"

/* ---- The test mailbox ---- */

/* Three messages: LF lines, dot lines and a ">From", stored CRLF lines. */
static const char MBOX[] =
	"From alice@example.org Mon Jan  1 00:00:00 2024\n"
	"Subject: one\n"
	"From: alice@example.org\n"
	"\n"
	"Hello\n"
	"\n"
	"From bob@example.org Tue Jan  2 00:00:00 2024\n"
	"Subject: two\n"
	"\n"
	".dot line\n"
	"..two dots\n"
	".\n"
	">From quoted\n"
	"last\n"
	"\n"
	"From carol@example.org Wed Jan  3 00:00:00 2024\n"
	"Subject: three\r\n"
	"\r\n"
	"b1\r\n"
	"b2\r\n"
	"b3\r\n"
	"b4\r\n";

/* The messages as RETR delivers them before byte-stuffing. */
static const char MSG1[] = "Subject: one\r\nFrom: alice@example.org\r\n\r\nHello\r\n";
static const char MSG2[] =
	"Subject: two\r\n\r\n.dot line\r\n..two dots\r\n.\r\n>From quoted\r\nlast\r\n";
static const char MSG3[] = "Subject: three\r\n\r\nb1\r\nb2\r\nb3\r\nb4\r\n";
/* Message 2 as it goes over the wire. */
static const char MSG2_STUFFED[] =
	"Subject: two\r\n\r\n..dot line\r\n...two dots\r\n..\r\n>From quoted\r\nlast\r\n";

#define USER_OK "alice"
#define PASS_OK "secret"

/* ---- The fake backend ---- */

struct fake {
	const char *user;            /* the one account that exists */
	const char *pass;
	bool any_user;               /* accept every name (with pass) */
	enum login_result force;     /* != LOGIN_OK: answer this without opening */
	const char *force_why;
	const char *mbox_path;
	int login_calls;
	char got_user[MAX_SASL_LINE + 1];
	char got_pass[MAX_SASL_LINE + 1];
	enum login_method got_method;
	unsigned failures[8];        /* arguments of login_failed, in order */
	int nfailures;
	int update_calls;
	enum mbox_status update_result;
	bool real_update;            /* call mbox_update() instead of update_result */
};

static enum login_result status_to_login(enum mbox_status st)
{
	switch (st) {
	case MBOX_OK: return LOGIN_OK;
	case MBOX_IN_USE: return LOGIN_IN_USE;
	case MBOX_TEMP: return LOGIN_SYS_TEMP;
	case MBOX_PERM: return LOGIN_SYS_PERM;
	}
	return LOGIN_SYS_TEMP;
}

static enum login_result fake_login(void *ctx, const char *user, const char *password,
				    enum login_method method, struct mbox **mb, char *why,
				    size_t whylen)
{
	struct fake *f = ctx;
	f->login_calls++;
	f->got_method = method;
	snprintf(f->got_user, sizeof(f->got_user), "%s", user);
	snprintf(f->got_pass, sizeof(f->got_pass), "%s", password);
	if (f->force != LOGIN_OK) {
		if (f->force_why)
			snprintf(why, whylen, "%s", f->force_why);
		return f->force;
	}
	if (!f->any_user && strcmp(user, f->user) != 0)
		return LOGIN_FAILED;
	if (strcmp(password, f->pass) != 0)
		return LOGIN_FAILED;
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 2;
	return status_to_login(mbox_open(mb, f->mbox_path, &opt, why, whylen));
}

static void fake_login_failed(void *ctx, unsigned failures)
{
	struct fake *f = ctx;
	if (f->nfailures < (int)(sizeof(f->failures) / sizeof(f->failures[0])))
		f->failures[f->nfailures] = failures;
	f->nfailures++;
}

static enum mbox_status fake_update(void *ctx, struct mbox *mb, char *why, size_t whylen)
{
	struct fake *f = ctx;
	f->update_calls++;
	if (f->real_update)
		return mbox_update(mb, why, whylen);
	if (f->update_result != MBOX_OK)
		snprintf(why, whylen, "%s", "disk on fire");
	return f->update_result;
}

/* ---- The fixture: one session at a time, talking into a memsink ---- */

struct fx {
	struct fake fake;
	struct session_backend be;
	struct session_config cfg;
	struct memsink sink;
	struct outbuf out;
	struct session s;
	bool running;
	char path[512];
};

/* Every line the server sent ends in CRLF and is at most MAX_RESPONSE_LINE octets. */
static void assert_lines_ok(const char *data, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		assert_true(i > start);
		assert_int_equal(data[i - 1], '\r');
		assert_in_range(i + 1 - start, 2, MAX_RESPONSE_LINE);
		start = i + 1;
	}
	assert_int_equal(start, len);  /* nothing after the last CRLF */
}

static void fx_start_cap(struct fx *x, size_t cap)
{
	assert_false(x->running);
	memsink_reset(&x->sink);
	assert_int_equal(outbuf_init(&x->out, cap, memsink_write, &x->sink), 0);
	session_init(&x->s, &x->cfg, &x->be, &x->out);
	session_greeting(&x->s);
	outbuf_flush(&x->out);
	x->running = true;
}

static void fx_start(struct fx *x)
{
	fx_start_cap(x, OUTBUF_SIZE);
}

/* End the session (checking its whole transcript) and release it. */
static void fx_stop(struct fx *x)
{
	if (!x->running)
		return;
	outbuf_flush(&x->out);
	bool failed = x->out.failed;
	session_free(&x->s);
	outbuf_free(&x->out);
	x->running = false;
	if (!failed)
		assert_lines_ok(x->sink.data ? x->sink.data : "", x->sink.len);
}

static int setup(void **state)
{
	static int serial;
	struct fx *x = calloc(1, sizeof(*x));
	if (!x)
		return -1;
	memsink_reset(&x->sink);
	snprintf(x->path, sizeof(x->path), "%s", test_path(""));
	snprintf(x->path + strlen(x->path), sizeof(x->path) - strlen(x->path),
		 "mbox.%d", ++serial);
	test_write_file(x->path, MBOX, sizeof(MBOX) - 1);
	x->fake.user = USER_OK;
	x->fake.pass = PASS_OK;
	x->fake.force = LOGIN_OK;
	x->fake.update_result = MBOX_OK;
	x->fake.mbox_path = x->path;
	x->be.login = fake_login;
	x->be.login_failed = fake_login_failed;
	x->be.update = fake_update;
	x->be.ctx = &x->fake;
	x->cfg.peer = "test-peer";
	x->cfg.max_failed_logins = MAX_FAILED_LOGINS;
	x->cfg.max_bad_commands = MAX_BAD_COMMANDS;
	x->cfg.plaintext_ok = true;
	fx_start(x);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	log_set_hook(NULL, NULL);
	fx_stop(x);
	memsink_reset(&x->sink);
	free(x);
	return 0;
}

/* Feed len octets, flush, and return what the server answered (valid until the next call). */
static const char *say_n(struct fx *x, const char *input, size_t len)
{
	size_t mark = x->sink.len;
	session_feed(&x->s, input, len);
	outbuf_flush(&x->out);
	return memsink_str(&x->sink) + mark;
}

static const char *say(struct fx *x, const char *input)
{
	return say_n(x, input, strlen(input));
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* One complete "-ERR" line beginning with prefix, nothing more. */
static void assert_err(const char *out, const char *prefix)
{
	if (!starts_with(out, prefix))
		fail_msg("expected \"%s...\", got \"%s\"", prefix, out);
	const char *crlf = strstr(out, "\r\n");
	assert_non_null(crlf);
	assert_string_equal(crlf, "\r\n");
}

#define assert_one_err(out) assert_err((out), "-ERR")

/* One "+OK" line, nothing more. */
static void assert_one_ok(const char *out)
{
	assert_err(out, "+OK");
}

static void login(struct fx *x)
{
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	assert_one_ok(say(x, "PASS " PASS_OK "\r\n"));
	assert_int_equal(x->s.state, STATE_TRANSACTION);
	assert_int_equal(x->s.end, END_NONE);
}

static void assert_still_running(const struct fx *x, enum session_state st)
{
	assert_int_equal(x->s.end, END_NONE);
	assert_int_equal(x->s.state, st);
}

/* base64 of len octets of raw into out (RFC 4648, padded). */
static void b64_raw(const unsigned char *raw, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)raw[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)raw[i + 1] << 8;
		if (i + 2 < len)
			v |= raw[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

/* base64 of authzid NUL authcid NUL password, as a client sends it. */
static void plain_b64(const char *authz, const char *authc, const char *pass, char *out)
{
	unsigned char raw[2048];
	size_t len = 0;
	size_t zl = strlen(authz), cl = strlen(authc), pl = strlen(pass);
	assert_true(zl + cl + pl + 2 <= sizeof(raw));
	memcpy(raw, authz, zl);
	len += zl;
	raw[len++] = '\0';
	memcpy(raw + len, authc, cl);
	len += cl;
	raw[len++] = '\0';
	memcpy(raw + len, pass, pl);
	len += pl;
	b64_raw(raw, len, out);
}

/* base64 of a string: one AUTH LOGIN response. */
static void b64(const char *text, char *out)
{
	b64_raw((const unsigned char *)text, strlen(text), out);
}

/*
 * RETR/TOP output -> the message before byte-stuffing (malloc'd). Asserts the
 * framing: a +OK line, CRLF lines, every dot line stuffed, ".\r\n" at the end.
 */
static char *unstuff(const char *out, size_t *size)
{
	if (!starts_with(out, "+OK"))
		fail_msg("expected +OK, got \"%s\"", out);
	const char *body = strstr(out, "\r\n");
	assert_non_null(body);
	body += 2;
	size_t len = strlen(body);
	assert_true(len >= 3);
	assert_string_equal(body + len - 3, ".\r\n");
	len -= 3;
	if (len > 0) {
		assert_true(len >= 2);
		assert_memory_equal(body + len - 2, "\r\n", 2);
	}
	char *msg = malloc(len + 1);
	assert_non_null(msg);
	size_t o = 0;
	bool at_line_start = true;
	for (size_t i = 0; i < len; i++) {
		if (at_line_start && body[i] == '.') {
			assert_true(i + 1 < len);
			assert_int_equal(body[i + 1], '.');  /* stuffed */
			i++;
		}
		msg[o++] = body[i];
		at_line_start = body[i] == '\n';
	}
	msg[o] = '\0';
	*size = o;
	return msg;
}

/* RETR n: the delivered message and its size (octets before stuffing). */
static char *retr(struct fx *x, size_t n, size_t *size)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "RETR %zu\r\n", n);
	return unstuff(say(x, cmd), size);
}

/* ---- Greeting, CAPA ---- */

static void test_greeting(void **state)
{
	struct fx *x = *state;
	const char *g = memsink_str(&x->sink);
	assert_true(starts_with(g, "+OK"));
	assert_non_null(strstr(g, "\r\n"));
	assert_string_equal(strstr(g, "\r\n"), "\r\n");  /* one line */
	assert_still_running(x, STATE_AUTHORIZATION);
}

/* The CAPA answer lists every capability we promise, one per line, and ends ".\r\n". */
static void assert_capa(const char *out)
{
	static const char *const needed[] = {
		"TOP", "USER", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
	};
	assert_true(starts_with(out, "+OK"));
	size_t len = strlen(out);
	assert_true(len >= 5);
	assert_ptr_equal(strstr(out, "\r\n.\r\n"), out + len - 5);  /* one terminator, last */
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "\r\n%s\r\n", needed[i]);
		if (!strstr(out, line))
			fail_msg("CAPA lacks %s: %s", needed[i], out);
	}
	const char *sasl = strstr(out, "\r\nSASL ");
	assert_non_null(sasl);
	const char *eol = strstr(sasl + 2, "\r\n");
	const char *plain = strstr(sasl, " PLAIN");
	assert_true(plain && plain < eol && (plain[6] == '\r' || plain[6] == ' '));
	const char *login = strstr(sasl, " LOGIN");
	assert_true(login && login < eol && (login[6] == '\r' || login[6] == ' '));
	assert_non_null(strstr(out, "\r\nUTF8 USER\r\n"));   /* RFC 6856 */
	const char *impl = strstr(out, "\r\nIMPLEMENTATION ");
	assert_non_null(impl);
	assert_true(impl[17] != '\r');  /* it names something */
}

static void test_capa_in_both_states(void **state)
{
	struct fx *x = *state;
	assert_capa(say(x, "CAPA\r\n"));
	assert_still_running(x, STATE_AUTHORIZATION);
	login(x);
	assert_capa(say(x, "CAPA\r\n"));
	assert_still_running(x, STATE_TRANSACTION);
	assert_one_err(say(x, "CAPA now\r\n"));
}

/* ---- Commands in the wrong state, unknown commands, syntax ---- */

static void test_transaction_commands_before_login(void **state)
{
	struct fx *x = *state;
	static const char *const cmds[] = {
		"STAT\r\n", "LIST\r\n", "LIST 1\r\n", "RETR 1\r\n", "DELE 1\r\n",
		"NOOP\r\n", "RSET\r\n", "TOP 1 1\r\n", "UIDL\r\n", "UIDL 1\r\n",
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_one_err(say(x, cmds[i]));
		assert_still_running(x, STATE_AUTHORIZATION);
	}
	assert_int_equal(x->fake.login_calls, 0);
	login(x);
	/* Nothing was deleted by the refused DELE. */
	char *m = NULL;
	size_t size;
	m = retr(x, 1, &size);
	assert_string_equal(m, MSG1);
	free(m);
}

static void test_authorization_commands_after_login(void **state)
{
	struct fx *x = *state;
	char b64[256];
	plain_b64("", USER_OK, PASS_OK, b64);
	login(x);
	char line[300];
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
	const char *cmds[] = {
		"USER " USER_OK "\r\n", "PASS " PASS_OK "\r\n", "PASS\r\n", line,
		"AUTH PLAIN\r\n", "AUTH\r\n", "APOP alice 0123456789abcdef0123456789abcdef\r\n",
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_one_err(say(x, cmds[i]));
		assert_still_running(x, STATE_TRANSACTION);
	}
	assert_int_equal(x->fake.login_calls, 1);
	assert_int_equal(x->fake.nfailures, 0);
}

static void test_unknown_and_empty_commands(void **state)
{
	struct fx *x = *state;
	static const char *const cmds[] = {
		"FOO\r\n", "XTND XMIT\r\n", "\r\n", "\n", " \r\n", "STLS\r\n", "STATUS\r\n",
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_one_err(say(x, cmds[i]));
		assert_still_running(x, STATE_AUTHORIZATION);
	}
	login(x);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_one_err(say(x, cmds[i]));
		assert_still_running(x, STATE_TRANSACTION);
	}
}

static void test_commands_are_case_insensitive(void **state)
{
	struct fx *x = *state;
	assert_capa(say(x, "capa\r\n"));
	assert_one_ok(say(x, "uSeR " USER_OK "\r\n"));
	assert_one_ok(say(x, "pAsS " PASS_OK "\r\n"));
	assert_string_equal(x->fake.got_user, USER_OK);
	assert_string_equal(x->fake.got_pass, PASS_OK);
	char expect[64];
	snprintf(expect, sizeof(expect), "+OK 3 %zu\r\n",
		 strlen(MSG1) + strlen(MSG2) + strlen(MSG3));
	assert_string_equal(say(x, "stat\r\n"), expect);
	char *mixed = strdup(say(x, "Uidl 1\r\n"));
	assert_non_null(mixed);
	assert_true(starts_with(mixed, "+OK 1 "));
	assert_string_equal(mixed, say(x, "UIDL 1\r\n"));
	free(mixed);
	snprintf(expect, sizeof(expect), "+OK 1 %zu\r\n", strlen(MSG1));
	assert_string_equal(say(x, "list 1\r\n"), expect);
	assert_string_equal(say(x, "noop\r\n"), "+OK\r\n");
	size_t size;
	char *m = unstuff(say(x, "rEtR 1\r\n"), &size);
	assert_string_equal(m, MSG1);
	free(m);
	assert_one_ok(say(x, "dele 1\r\n"));
	assert_one_ok(say(x, "rset\r\n"));
	assert_one_ok(say(x, "Quit\r\n"));
	assert_int_equal(x->s.end, END_QUIT);
}

static void test_commands_are_case_insensitive_auth(void **state)
{
	struct fx *x = *state;
	char b64[256], line[300];
	plain_b64("", USER_OK, PASS_OK, b64);
	snprintf(line, sizeof(line), "auth plain %s\r\n", b64);
	assert_one_ok(say(x, line));
	assert_int_equal(x->s.state, STATE_TRANSACTION);
}

/* A script run in one session; returns its whole transcript (malloc'd). */
static char *run_script(struct fx *x, const char *const *parts, size_t nparts)
{
	fx_stop(x);
	fx_start(x);
	for (size_t i = 0; i < nparts; i++)
		say(x, parts[i]);
	char *t = strdup(memsink_str(&x->sink));
	assert_non_null(t);
	fx_stop(x);
	return t;
}

static void test_bare_lf_equals_crlf(void **state)
{
	struct fx *x = *state;
	static const char *const crlf[] = {
		"USER alice\r\n", "PASS secret\r\n", "STAT\r\n", "LIST\r\n", "UIDL\r\n",
		"RETR 2\r\n", "TOP 3 1\r\n", "DELE 1\r\n", "NOOP\r\n", "QUIT\r\n",
	};
	static const char *const lf[] = {
		"USER alice\n", "PASS secret\n", "STAT\n", "LIST\n", "UIDL\n",
		"RETR 2\n", "TOP 3 1\n", "DELE 1\n", "NOOP\n", "QUIT\n",
	};
	char *a = run_script(x, crlf, sizeof(crlf) / sizeof(crlf[0]));
	char *b = run_script(x, lf, sizeof(lf) / sizeof(lf[0]));
	assert_string_equal(a, b);
	assert_non_null(strstr(a, MSG2_STUFFED));
	assert_true(x->s.end == END_QUIT);
	free(a);
	free(b);
}

static const char PIPELINE[] =
	"CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\n"
	"RETR 2\r\nTOP 3 2\r\nDELE 2\r\nLIST 2\r\nSTAT\r\nBOGUS\r\nRSET\r\nNOOP\r\n"
	"QUIT\r\nNOOP\r\n";

/* The same script one command per feed: the reference transcript. */
static char *pipeline_reference(struct fx *x)
{
	char *lines[32];
	size_t n = 0;
	for (const char *p = PIPELINE; *p; n++) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_true(n < 32);
		lines[n] = strndup(p, (size_t)(nl - p) + 1);
		assert_non_null(lines[n]);
		p = nl + 1;
	}
	char *t = run_script(x, (const char *const *)lines, n);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	return t;
}

static void test_pipelining_in_one_feed(void **state)
{
	struct fx *x = *state;
	char *ref = pipeline_reference(x);
	fx_start(x);
	size_t mark = x->sink.len;
	session_feed(&x->s, PIPELINE, sizeof(PIPELINE) - 1);
	outbuf_flush(&x->out);
	assert_int_equal(x->s.end, END_QUIT);
	assert_string_equal(memsink_str(&x->sink), ref);
	/* The NOOP after QUIT was not answered: the transcript ends with the QUIT reply. */
	const char *out = memsink_str(&x->sink) + mark;
	const char *last = out + strlen(out) - 2;
	while (last > out && !(last[-1] == '\n'))
		last--;
	assert_true(starts_with(last, "+OK"));
	assert_int_equal(x->fake.update_calls, 0);  /* RSET undid the DELE */
	free(ref);
}

static void test_pipelining_byte_by_byte(void **state)
{
	struct fx *x = *state;
	char *ref = pipeline_reference(x);
	fx_start(x);
	for (size_t i = 0; i < sizeof(PIPELINE) - 1; i++) {
		size_t before = x->sink.len;
		session_feed(&x->s, PIPELINE + i, 1);
		outbuf_flush(&x->out);
		if (PIPELINE[i] != '\n')
			assert_int_equal(x->sink.len, before);  /* nothing before the LF */
	}
	assert_int_equal(x->s.end, END_QUIT);
	assert_string_equal(memsink_str(&x->sink), ref);
	free(ref);
}

/* ---- USER / PASS ---- */

static void test_user_pass_success(void **state)
{
	struct fx *x = *state;
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	assert_int_equal(x->fake.login_calls, 0);
	const char *out = say(x, "PASS " PASS_OK "\r\n");
	assert_one_ok(out);
	assert_int_equal(x->fake.login_calls, 1);
	assert_string_equal(x->fake.got_user, USER_OK);
	assert_string_equal(x->fake.got_pass, PASS_OK);
	assert_int_equal(x->s.state, STATE_TRANSACTION);
	assert_int_equal(x->fake.nfailures, 0);
}

static void test_password_with_spaces(void **state)
{
	struct fx *x = *state;
	x->fake.pass = "correct horse  battery staple ";
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	assert_one_ok(say(x, "PASS correct horse  battery staple \r\n"));
	assert_string_equal(x->fake.got_pass, "correct horse  battery staple ");
	assert_int_equal(x->s.state, STATE_TRANSACTION);
}

static void test_pass_without_user(void **state)
{
	struct fx *x = *state;
	assert_one_err(say(x, "PASS " PASS_OK "\r\n"));
	assert_int_equal(x->fake.login_calls, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	/* After a failed PASS, USER must be given again (RFC 1939). */
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	assert_err(say(x, "PASS wrong\r\n"), "-ERR [AUTH]");
	assert_one_err(say(x, "PASS " PASS_OK "\r\n"));
	assert_int_equal(x->fake.login_calls, 1);
	assert_one_err(say(x, "USER\r\n"));
	assert_still_running(x, STATE_AUTHORIZATION);
	login(x);
}

static void test_failed_logins_end_session_after_max(void **state)
{
	struct fx *x = *state;
	/* The contract: the first 2 failed logins do not end the session. */
	assert_true(MAX_FAILED_LOGINS >= 3);
	assert_int_equal(x->cfg.max_failed_logins, 3);
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	char *wrong_pass = strdup(say(x, "PASS wrong\r\n"));
	assert_err(wrong_pass, "-ERR [AUTH]");
	assert_int_equal(x->fake.nfailures, 1);
	assert_int_equal(x->fake.failures[0], 1);
	assert_still_running(x, STATE_AUTHORIZATION);

	/* An unknown user gets the very same answer as a wrong password. */
	assert_one_ok(say(x, "USER mallory\r\n"));
	const char *unknown = say(x, "PASS " PASS_OK "\r\n");
	assert_string_equal(unknown, wrong_pass);
	assert_string_equal(x->fake.got_user, "mallory");
	assert_int_equal(x->fake.nfailures, 2);
	assert_int_equal(x->fake.failures[1], 2);
	assert_still_running(x, STATE_AUTHORIZATION);

	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	assert_err(say(x, "PASS wrong again\r\n"), "-ERR [AUTH]");
	assert_int_equal(x->fake.nfailures, 3);
	assert_int_equal(x->fake.failures[2], 3);
	assert_int_equal(x->s.end, END_TOO_MANY_FAILURES);
	assert_int_equal(x->s.state, STATE_DONE);

	/* Closed: nothing more is read or answered. */
	assert_int_equal(session_feed(&x->s, "USER alice\r\n", 12), END_TOO_MANY_FAILURES);
	assert_string_equal(say(x, "CAPA\r\n"), "");
	assert_int_equal(x->fake.login_calls, 3);
	free(wrong_pass);
}

static void test_login_refusals_keep_authorization(void **state)
{
	struct fx *x = *state;
	static const struct {
		enum login_result r;
		const char *code;
	} cases[] = {
		{LOGIN_IN_USE, "-ERR [IN-USE]"},
		{LOGIN_SYS_TEMP, "-ERR [SYS/TEMP]"},
		{LOGIN_SYS_PERM, "-ERR [SYS/PERM]"},
	};
	for (size_t i = 0; i < 3; i++) {
		x->fake.force = cases[i].r;
		x->fake.force_why = i == 0 ? NULL : "reason from the backend";
		assert_one_ok(say(x, "USER " USER_OK "\r\n"));
		assert_err(say(x, "PASS " PASS_OK "\r\n"), cases[i].code);
		assert_still_running(x, STATE_AUTHORIZATION);
	}
	/* Not counted as failed logins: more than MAX_FAILED_LOGINS and still going. */
	x->fake.force = LOGIN_IN_USE;
	char b64[256], line[300];
	plain_b64("", USER_OK, PASS_OK, b64);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
	assert_err(say(x, line), "-ERR [IN-USE]");
	assert_int_equal(x->fake.nfailures, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	x->fake.force = LOGIN_OK;
	login(x);
}

static void test_not_an_mbox_is_sys_perm(void **state)
{
	struct fx *x = *state;
	static const char junk[] = "this is not an mbox\nFrom nobody\n";
	test_write_file(x->path, junk, sizeof(junk) - 1);
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	assert_err(say(x, "PASS " PASS_OK "\r\n"), "-ERR [SYS/PERM]");
	assert_still_running(x, STATE_AUTHORIZATION);
	assert_int_equal(x->fake.nfailures, 0);
	assert_one_ok(say(x, "QUIT\r\n"));
	fx_stop(x);
	size_t len;
	char *after = test_read_file(x->path, &len);
	assert_non_null(after);
	assert_int_equal(len, sizeof(junk) - 1);
	assert_memory_equal(after, junk, len);
	free(after);
}

static void test_missing_mailbox_is_empty_maildrop(void **state)
{
	struct fx *x = *state;
	snprintf(x->path + strlen(x->path), sizeof(x->path) - strlen(x->path), ".missing");
	login(x);
	assert_string_equal(say(x, "STAT\r\n"), "+OK 0 0\r\n");
	const char *list = say(x, "LIST\r\n");
	assert_true(starts_with(list, "+OK"));
	assert_string_equal(strstr(list, "\r\n"), "\r\n.\r\n");
	const char *uidl = say(x, "UIDL\r\n");
	assert_true(starts_with(uidl, "+OK"));
	assert_string_equal(strstr(uidl, "\r\n"), "\r\n.\r\n");
	assert_one_err(say(x, "RETR 1\r\n"));
	assert_one_err(say(x, "LIST 1\r\n"));
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_int_equal(x->s.end, END_QUIT);
	assert_int_equal(x->fake.update_calls, 0);
}

static void test_plaintext_refused_by_policy(void **state)
{
	struct fx *x = *state;
	x->cfg.plaintext_ok = false;
	char b64[256], line[300];
	plain_b64("", USER_OK, PASS_OK, b64);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
	assert_one_err(say(x, "USER " USER_OK "\r\n"));
	assert_one_err(say(x, "PASS " PASS_OK "\r\n"));
	assert_one_err(say(x, line));
	assert_int_equal(x->fake.login_calls, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
}

/* ---- AUTH PLAIN ---- */

static void test_auth_plain_initial_response(void **state)
{
	struct fx *x = *state;
	char b64[256], line[300];
	plain_b64("", USER_OK, PASS_OK, b64);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
	assert_one_ok(say(x, line));
	assert_int_equal(x->s.state, STATE_TRANSACTION);
	assert_int_equal(x->fake.login_calls, 1);
	assert_string_equal(x->fake.got_user, USER_OK);
	assert_string_equal(x->fake.got_pass, PASS_OK);
}

static void test_auth_plain_continuation(void **state)
{
	struct fx *x = *state;
	char b64[256], line[300];
	plain_b64("", USER_OK, PASS_OK, b64);
	snprintf(line, sizeof(line), "%s\r\n", b64);
	assert_string_equal(say(x, "AUTH PLAIN\r\n"), "+ \r\n");
	assert_int_equal(x->fake.login_calls, 0);
	assert_one_ok(say(x, line));
	assert_int_equal(x->s.state, STATE_TRANSACTION);
	assert_string_equal(x->fake.got_user, USER_OK);
	assert_string_equal(x->fake.got_pass, PASS_OK);
}

static void test_auth_plain_cancel(void **state)
{
	struct fx *x = *state;
	assert_string_equal(say(x, "AUTH PLAIN\r\n"), "+ \r\n");
	assert_one_err(say(x, "*\r\n"));
	assert_int_equal(x->fake.login_calls, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	/* The exchange is over: the next line is a command again. */
	assert_capa(say(x, "CAPA\r\n"));
	login(x);
}

static void test_auth_plain_continuation_is_not_a_command(void **state)
{
	struct fx *x = *state;
	assert_string_equal(say(x, "AUTH PLAIN\r\n"), "+ \r\n");
	assert_err(say(x, "QUIT\r\n"), "-ERR [AUTH]");
	assert_still_running(x, STATE_AUTHORIZATION);
	assert_int_equal(x->fake.nfailures, 1);
}

static void test_auth_plain_bad_base64(void **state)
{
	struct fx *x = *state;
	static const char *const bad[] = {
		"AUTH PLAIN !!!!\r\n", "AUTH PLAIN AGFsaWNl\x01\r\n",
	};
	assert_err(say(x, bad[0]), "-ERR [AUTH]");
	assert_int_equal(x->fake.nfailures, 1);
	assert_int_equal(x->fake.failures[0], 1);
	assert_string_equal(say(x, "AUTH PLAIN\r\n"), "+ \r\n");
	assert_err(say(x, "not base64 at all\r\n"), "-ERR [AUTH]");
	assert_int_equal(x->fake.nfailures, 2);
	assert_int_equal(x->fake.login_calls, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	assert_err(say(x, bad[1]), "-ERR [AUTH]");
	assert_int_equal(x->s.end, END_TOO_MANY_FAILURES);
}

static void test_auth_plain_authzid(void **state)
{
	struct fx *x = *state;
	char b64[256], line[300];
	plain_b64("bob", USER_OK, PASS_OK, b64);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
	assert_err(say(x, line), "-ERR [AUTH]");
	assert_int_equal(x->fake.login_calls, 0);
	assert_int_equal(x->fake.nfailures, 1);
	assert_still_running(x, STATE_AUTHORIZATION);

	plain_b64(USER_OK, USER_OK, PASS_OK, b64);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
	assert_one_ok(say(x, line));
	assert_string_equal(x->fake.got_user, USER_OK);
	assert_int_equal(x->s.state, STATE_TRANSACTION);
}

static void test_auth_plain_empty_response(void **state)
{
	struct fx *x = *state;
	assert_err(say(x, "AUTH PLAIN =\r\n"), "-ERR [AUTH]");
	assert_int_equal(x->fake.login_calls, 0);
	assert_int_equal(x->fake.nfailures, 1);
	assert_still_running(x, STATE_AUTHORIZATION);
}

static void test_auth_plain_wrong_password(void **state)
{
	struct fx *x = *state;
	char b64[256], line[300];
	plain_b64("", USER_OK, "nope", b64);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
	assert_err(say(x, line), "-ERR [AUTH]");
	assert_int_equal(x->fake.login_calls, 1);
	assert_string_equal(x->fake.got_pass, "nope");
	assert_int_equal(x->fake.nfailures, 1);
	assert_int_equal(x->fake.failures[0], 1);
	assert_still_running(x, STATE_AUTHORIZATION);
}

static void test_bare_auth_lists_plain(void **state)
{
	struct fx *x = *state;
	assert_string_equal(say(x, "AUTH\r\n"), "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
	assert_still_running(x, STATE_AUTHORIZATION);
}

static void test_auth_unsupported_mechanism(void **state)
{
	struct fx *x = *state;
	assert_one_err(say(x, "AUTH CRAM-MD5\r\n"));
	assert_one_err(say(x, "AUTH DIGEST-MD5\r\n"));
	assert_one_err(say(x, "AUTH GSSAPI dGVzdA==\r\n"));
	assert_int_equal(x->fake.login_calls, 0);
	assert_int_equal(x->fake.nfailures, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	login(x);
}

static void test_sasl_plain_decode(void **state)
{
	(void)state;
	char user[64], pass[64], b64[256];

	/* RFC 4616's example: "" NUL "tim" NUL "tanstaaftanstaaf". */
	assert_int_equal(sasl_plain_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", user, pass,
					   sizeof(user)), 0);
	assert_string_equal(user, "tim");
	assert_string_equal(pass, "tanstaaftanstaaf");

	plain_b64("", "u", "pass with spaces", b64);
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), 0);
	assert_string_equal(user, "u");
	assert_string_equal(pass, "pass with spaces");

	plain_b64("tim", "tim", "pw", b64);  /* authzid == authcid */
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), 0);
	assert_string_equal(user, "tim");
	assert_string_equal(pass, "pw");

	plain_b64("root", "tim", "pw", b64);  /* acting for someone else */
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), -1);
	plain_b64("tim2", "tim", "pw", b64);
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), -1);
	plain_b64("ti", "tim", "pw", b64);
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), -1);

	plain_b64("", "", "pw", b64);  /* no authcid */
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), -1);
	plain_b64("", "tim", "pw\0x", b64);  /* strlen stops at the NUL: just "pw" */
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), 0);
	assert_string_equal(pass, "pw");

	/* "\0tim\0pw\0x": a NUL inside the password. */
	assert_int_equal(sasl_plain_decode("AHRpbQBwdwB4", user, pass, sizeof(user)), -1);
	/* "\0tim" only: no password field. */
	assert_int_equal(sasl_plain_decode("AHRpbQ==", user, pass, sizeof(user)), -1);
	/* "tim": no NUL at all. */
	assert_int_equal(sasl_plain_decode("dGlt", user, pass, sizeof(user)), -1);

	assert_int_equal(sasl_plain_decode("=", user, pass, sizeof(user)), -1);
	assert_int_equal(sasl_plain_decode("", user, pass, sizeof(user)), -1);
	assert_int_equal(sasl_plain_decode("!!!!", user, pass, sizeof(user)), -1);
	assert_int_equal(sasl_plain_decode("AHRpbQBwdw", user, pass, sizeof(user)), -1);
	assert_int_equal(sasl_plain_decode("AHRp bQBwdw==", user, pass, sizeof(user)), -1);
	assert_int_equal(sasl_plain_decode("AH==bQBwdw==", user, pass, sizeof(user)), -1);
	assert_int_equal(sasl_plain_decode("AHRpbQBwdw=A", user, pass, sizeof(user)), -1);
	assert_int_equal(sasl_plain_decode("AHRpbQBwdw===", user, pass, sizeof(user)), -1);

	/* Too long for the caller's buffers. */
	char longname[80];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	plain_b64("", longname, "pw", b64);
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), -1);
	plain_b64("", "tim", longname, b64);
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), -1);
	/* One octet less than the buffer fits exactly. */
	longname[sizeof(user) - 1] = '\0';
	plain_b64("", longname, "pw", b64);
	assert_int_equal(sasl_plain_decode(b64, user, pass, sizeof(user)), 0);
	assert_string_equal(user, longname);
}

/* ---- TRANSACTION: STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP ---- */

static void test_sizes_match_retrieved_octets(void **state)
{
	struct fx *x = *state;
	static const char *const expect[] = {MSG1, MSG2, MSG3};
	size_t size[4], total = 0;
	char line[128], all[512];
	login(x);
	for (size_t n = 1; n <= 3; n++) {
		char *m = retr(x, n, &size[n]);
		assert_string_equal(m, expect[n - 1]);
		free(m);
		total += size[n];
	}
	snprintf(line, sizeof(line), "+OK 3 %zu\r\n", total);
	assert_string_equal(say(x, "STAT\r\n"), line);
	for (size_t n = 1; n <= 3; n++) {
		snprintf(line, sizeof(line), "LIST %zu\r\n", n);
		char want[64];
		snprintf(want, sizeof(want), "+OK %zu %zu\r\n", n, size[n]);
		assert_string_equal(say(x, line), want);
	}
	const char *list = say(x, "LIST\r\n");
	assert_true(starts_with(list, "+OK"));
	snprintf(all, sizeof(all), "\r\n1 %zu\r\n2 %zu\r\n3 %zu\r\n.\r\n",
		 size[1], size[2], size[3]);
	assert_string_equal(strstr(list, "\r\n"), all);
}

/* UIDL listing -> uids[1..count]; checks every line's shape and UIDL n. */
static void collect_uidls(struct fx *x, size_t count, char uids[][MAX_UIDL_LEN + 1])
{
	char *listing = strdup(say(x, "UIDL\r\n"));  /* say() may move the sink's buffer */
	assert_non_null(listing);
	assert_true(starts_with(listing, "+OK"));
	const char *p = strstr(listing, "\r\n") + 2;
	for (size_t n = 1; n <= count; n++) {
		char *end;
		unsigned long num = strtoul(p, &end, 10);
		assert_int_equal(num, n);
		assert_int_equal(*end, ' ');
		const char *uid = end + 1;
		size_t len = strcspn(uid, "\r");
		assert_in_range(len, 1, MAX_UIDL_LEN);
		for (size_t i = 0; i < len; i++)
			assert_in_range((unsigned char)uid[i], 0x21, 0x7e);
		memcpy(uids[n], uid, len);
		uids[n][len] = '\0';
		p = uid + len;
		assert_true(starts_with(p, "\r\n"));
		p += 2;
	}
	assert_string_equal(p, ".\r\n");
	free(listing);
	for (size_t n = 1; n <= count; n++) {
		char cmd[32], want[128];
		snprintf(cmd, sizeof(cmd), "UIDL %zu\r\n", n);
		snprintf(want, sizeof(want), "+OK %zu %s\r\n", n, uids[n]);
		assert_string_equal(say(x, cmd), want);
		for (size_t j = n + 1; j <= count; j++)
			assert_string_not_equal(uids[n], uids[j]);
	}
}

static void test_uidl(void **state)
{
	struct fx *x = *state;
	char first[4][MAX_UIDL_LEN + 1], second[4][MAX_UIDL_LEN + 1];
	login(x);
	collect_uidls(x, 3, first);
	assert_one_err(say(x, "UIDL 4\r\n"));
	assert_one_ok(say(x, "QUIT\r\n"));
	fx_stop(x);
	/* Stable across sessions. */
	fx_start(x);
	login(x);
	collect_uidls(x, 3, second);
	for (size_t n = 1; n <= 3; n++)
		assert_string_equal(first[n], second[n]);
}

static void test_uidl_unique_for_duplicates(void **state)
{
	struct fx *x = *state;
	static const char dup[] =
		"From a@b Mon Jan  1 00:00:00 2024\nSubject: same\n\nbody\n\n"
		"From a@b Mon Jan  1 00:00:00 2024\nSubject: same\n\nbody\n\n"
		"From a@b Mon Jan  1 00:00:00 2024\nSubject: same\n\nbody\n";
	char uids[4][MAX_UIDL_LEN + 1];
	test_write_file(x->path, dup, sizeof(dup) - 1);
	login(x);
	collect_uidls(x, 3, uids);  /* asserts they differ */
}

static void test_retr_byte_stuffing(void **state)
{
	struct fx *x = *state;
	login(x);
	const char *out = say(x, "RETR 2\r\n");
	assert_true(starts_with(out, "+OK"));
	const char *body = strstr(out, "\r\n") + 2;
	char want[512];
	snprintf(want, sizeof(want), "%s.\r\n", MSG2_STUFFED);
	assert_string_equal(body, want);
	assert_one_err(say(x, "RETR 4\r\n"));
	assert_one_err(say(x, "RETR\r\n"));
	assert_still_running(x, STATE_TRANSACTION);
}

static void test_top(void **state)
{
	struct fx *x = *state;
	size_t size;
	login(x);
	char *m = unstuff(say(x, "TOP 3 0\r\n"), &size);
	assert_string_equal(m, "Subject: three\r\n\r\n");
	free(m);
	m = unstuff(say(x, "TOP 3 2\r\n"), &size);
	assert_string_equal(m, "Subject: three\r\n\r\nb1\r\nb2\r\n");
	free(m);
	const char *out = say(x, "TOP 2 1\r\n");  /* stuffing applies to TOP too */
	assert_string_equal(strstr(out, "\r\n") + 2, "Subject: two\r\n\r\n..dot line\r\n.\r\n");
	m = unstuff(say(x, "TOP 1 100\r\n"), &size);
	assert_string_equal(m, MSG1);
	free(m);
	assert_one_err(say(x, "TOP 4 0\r\n"));
	assert_one_err(say(x, "TOP 1\r\n"));
	assert_one_err(say(x, "TOP 1 -1\r\n"));
	assert_one_err(say(x, "TOP 1 x\r\n"));
	assert_still_running(x, STATE_TRANSACTION);
}

static void test_dele_and_rset(void **state)
{
	struct fx *x = *state;
	char want[128];
	size_t s1 = strlen(MSG1), s2 = strlen(MSG2), s3 = strlen(MSG3);
	login(x);
	assert_one_ok(say(x, "DELE 1\r\n"));
	assert_one_err(say(x, "DELE 1\r\n"));
	assert_one_err(say(x, "RETR 1\r\n"));
	assert_one_err(say(x, "LIST 1\r\n"));
	assert_one_err(say(x, "UIDL 1\r\n"));
	assert_one_err(say(x, "TOP 1 0\r\n"));
	snprintf(want, sizeof(want), "+OK 2 %zu\r\n", s2 + s3);
	assert_string_equal(say(x, "STAT\r\n"), want);
	const char *list = say(x, "LIST\r\n");
	snprintf(want, sizeof(want), "\r\n2 %zu\r\n3 %zu\r\n.\r\n", s2, s3);
	assert_string_equal(strstr(list, "\r\n"), want);
	const char *uidl = say(x, "UIDL\r\n");
	assert_true(starts_with(strstr(uidl, "\r\n"), "\r\n2 "));
	assert_still_running(x, STATE_TRANSACTION);

	/* Message numbers do not shift: 2 is still 2. */
	size_t size;
	char *m = retr(x, 2, &size);
	assert_string_equal(m, MSG2);
	free(m);

	assert_one_ok(say(x, "RSET\r\n"));
	snprintf(want, sizeof(want), "+OK 3 %zu\r\n", s1 + s2 + s3);
	assert_string_equal(say(x, "STAT\r\n"), want);
	snprintf(want, sizeof(want), "+OK 1 %zu\r\n", s1);
	assert_string_equal(say(x, "LIST 1\r\n"), want);
	m = retr(x, 1, &size);
	assert_string_equal(m, MSG1);
	free(m);
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_int_equal(x->fake.update_calls, 0);  /* nothing left to delete */
}

static void test_noop(void **state)
{
	struct fx *x = *state;
	login(x);
	assert_string_equal(say(x, "NOOP\r\n"), "+OK\r\n");
	assert_one_err(say(x, "NOOP 1\r\n"));
	assert_still_running(x, STATE_TRANSACTION);
}

static void test_numeric_arguments_are_strict(void **state)
{
	struct fx *x = *state;
	static const char *const verbs[] = {"RETR", "LIST", "UIDL", "DELE", "TOP"};
	static const char *const args[] = {
		"0", "-1", "+1", "1x", "x1", " 1", "1 ", "01a", "0x1", "1.0",
		"99999999999999999999999", "18446744073709551616", "18446744073709551615",
		"4", "1000000",
	};
	/* Many deliberate errors in one session: lift the bad-command limit for it. */
	x->cfg.max_bad_commands = 1000;
	login(x);
	for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
		for (size_t a = 0; a < sizeof(args) / sizeof(args[0]); a++) {
			char cmd[128];
			snprintf(cmd, sizeof(cmd), "%s %s%s\r\n", verbs[v], args[a],
				 strcmp(verbs[v], "TOP") == 0 ? " 0" : "");
			const char *out = say(x, cmd);
			if (!starts_with(out, "-ERR"))
				fail_msg("\"%s\" was accepted: %s", cmd, out);
			assert_one_err(out);
			assert_still_running(x, STATE_TRANSACTION);
		}
	}
	/* "TOP 1 n" with a bad line count. */
	for (size_t a = 1; a < 12; a++) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "TOP 1 %s\r\n", args[a]);
		assert_one_err(say(x, cmd));
	}
	/* Nothing was deleted by any of them. */
	char want[64];
	snprintf(want, sizeof(want), "+OK 3 %zu\r\n",
		 strlen(MSG1) + strlen(MSG2) + strlen(MSG3));
	assert_string_equal(say(x, "STAT\r\n"), want);
	/* Leading zeros are still a number. */
	snprintf(want, sizeof(want), "+OK 1 %zu\r\n", strlen(MSG1));
	assert_string_equal(say(x, "LIST 001\r\n"), want);
}

static void test_too_many_arguments(void **state)
{
	struct fx *x = *state;
	static const char *const cmds[] = {
		"STAT 1\r\n", "NOOP x\r\n", "RSET 1\r\n", "LIST 1 2\r\n", "UIDL 1 2\r\n",
		"RETR 1 2\r\n", "DELE 1 2\r\n", "TOP 1 2 3\r\n", "QUIT now\r\n",
		"LIST  1\r\n", "STAT \r\n",
	};
	login(x);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_one_err(say(x, cmds[i]));
		assert_still_running(x, STATE_TRANSACTION);
	}
	assert_int_equal(x->fake.update_calls, 0);
	assert_one_err(say(x, "USER a b\r\n"));
}

/* ---- QUIT and the UPDATE state ---- */

static void test_quit_in_authorization(void **state)
{
	struct fx *x = *state;
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_int_equal(x->s.end, END_QUIT);
	assert_int_equal(x->s.state, STATE_DONE);
	assert_int_equal(x->fake.update_calls, 0);
}

static void test_quit_without_deletions(void **state)
{
	struct fx *x = *state;
	login(x);
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_int_equal(x->s.end, END_QUIT);
	assert_int_equal(x->fake.update_calls, 0);
}

static void test_quit_with_deletions(void **state)
{
	struct fx *x = *state;
	login(x);
	assert_one_ok(say(x, "DELE 2\r\n"));
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_int_equal(x->fake.update_calls, 1);
	assert_int_equal(x->s.end, END_QUIT);
	assert_int_equal(x->s.state, STATE_DONE);
}

/* One message is "1 message" wherever a count is told: STAT's neighbours, RSET, QUIT. */
static void test_one_message_singular(void **state)
{
	struct fx *x = *state;
	login(x);
	assert_one_ok(say(x, "DELE 1\r\n"));
	assert_one_ok(say(x, "DELE 2\r\n"));
	const char *list = say(x, "LIST\r\n");
	assert_true(starts_with(list, "+OK 1 message ("));
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_non_null(strstr(memsink_str(&x->sink), "signing off (1 message left)\r\n"));
}

/* RSET tells the count back: three are "messages", never "message". */
static void test_rset_count_plural(void **state)
{
	struct fx *x = *state;
	login(x);
	const char *r = say(x, "RSET\r\n");
	assert_true(starts_with(r, "+OK maildrop has 3 messages ("));
}

static void test_quit_update_fails(void **state)
{
	struct fx *x = *state;
	x->fake.update_result = MBOX_TEMP;
	login(x);
	assert_one_ok(say(x, "DELE 1\r\n"));
	assert_err(say(x, "QUIT\r\n"), "-ERR [SYS/TEMP]");
	assert_int_equal(x->fake.update_calls, 1);
	assert_int_equal(x->s.end, END_UPDATE_FAILED);
	assert_int_equal(x->s.state, STATE_DONE);
}

/* The maildrop is free as soon as the QUIT answer exists: an eager client's next login works. */
static void test_quit_releases_maildrop_before_answering(void **state)
{
	struct fx *x = *state;
	x->fake.real_update = true;
	login(x);
	assert_one_ok(say(x, "DELE 1\r\n"));
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_null(x->s.mb);
	struct mbox_options opt;
	mbox_default_options(&opt);
	struct mbox *again = NULL;
	char why[256] = "";
	/* The session itself is not freed yet: only the release before the answer makes this work. */
	assert_int_equal(mbox_open(&again, x->path, &opt, why, sizeof(why)), MBOX_OK);
	mbox_close(again);
}

static void test_abort_applies_nothing(void **state)
{
	struct fx *x = *state;
	login(x);
	assert_one_ok(say(x, "DELE 1\r\n"));
	assert_one_ok(say(x, "DELE 3\r\n"));
	session_abort(&x->s, END_EOF);
	assert_int_equal(x->s.end, END_EOF);
	assert_int_equal(x->s.state, STATE_DONE);
	assert_string_equal(say(x, "QUIT\r\n"), "");  /* too late */
	assert_int_equal(x->s.end, END_EOF);
	fx_stop(x);
	assert_int_equal(x->fake.update_calls, 0);
	size_t len;
	char *after = test_read_file(x->path, &len);
	assert_non_null(after);
	assert_int_equal(len, sizeof(MBOX) - 1);
	assert_memory_equal(after, MBOX, len);
	free(after);
}

static void test_quit_applies_deletions_with_real_update(void **state)
{
	struct fx *x = *state;
	x->fake.real_update = true;
	login(x);
	assert_one_ok(say(x, "DELE 2\r\n"));
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_int_equal(x->s.end, END_QUIT);
	fx_stop(x);
	fx_start(x);
	login(x);
	char want[64];
	snprintf(want, sizeof(want), "+OK 2 %zu\r\n", strlen(MSG1) + strlen(MSG3));
	assert_string_equal(say(x, "STAT\r\n"), want);
	size_t size;
	char *m = retr(x, 2, &size);
	assert_string_equal(m, MSG3);
	free(m);
}

/* ---- Line length, bad commands, NUL ---- */

static void test_line_limit_255(void **state)
{
	struct fx *x = *state;
	char line[400];
	/* "USER " + name + CRLF = exactly MAX_COMMAND_LINE octets. */
	size_t name_len = MAX_COMMAND_LINE - 5 - 2;
	memcpy(line, "USER ", 5);
	memset(line + 5, 'u', name_len);
	memcpy(line + 5 + name_len, "\r\n", 3);
	assert_int_equal(strlen(line), MAX_COMMAND_LINE);
	assert_one_ok(say(x, line));
	x->fake.any_user = true;
	assert_one_err(say(x, "PASS wrong\r\n"));
	assert_int_equal(strlen(x->fake.got_user), name_len);

	/* With a bare LF the same number of octets is accepted too. */
	memset(line + 5, 'v', name_len + 1);
	memcpy(line + 5 + name_len + 1, "\n", 2);
	assert_int_equal(strlen(line), MAX_COMMAND_LINE);
	assert_one_ok(say(x, line));
	assert_one_err(say(x, "PASS wrong\r\n"));
	assert_int_equal(strlen(x->fake.got_user), name_len + 1);
	assert_int_equal(x->fake.login_calls, 2);

	/* One octet more: a single -ERR, and the USER did not happen. */
	memset(line + 5, 'w', name_len + 1);
	memcpy(line + 5 + name_len + 1, "\r\n", 3);
	assert_int_equal(strlen(line), MAX_COMMAND_LINE + 1);
	assert_one_err(say(x, line));
	assert_one_err(say(x, "PASS " PASS_OK "\r\n"));  /* no USER is pending */
	assert_int_equal(x->fake.login_calls, 2);
	assert_still_running(x, STATE_AUTHORIZATION);
	x->fake.any_user = false;
	login(x);
}

static void test_overlong_line_is_not_executed(void **state)
{
	struct fx *x = *state;
	char line[400];
	memset(line, 'A', 300);
	memcpy(line + 300, "QUIT\r\n", 7);
	assert_one_err(say(x, line));
	assert_still_running(x, STATE_AUTHORIZATION);
	/* Also when the tail looks like a full command after a CR. */
	memcpy(line + 296, "\rQUIT\r\n", 8);
	assert_one_err(say(x, line));
	assert_still_running(x, STATE_AUTHORIZATION);
	login(x);
	memset(line, 'B', 300);
	memcpy(line + 300, "DELE 1\r\n", 9);
	assert_one_err(say(x, line));
	assert_one_ok(say(x, "LIST 1\r\n"));  /* not deleted */
	assert_one_ok(say(x, "QUIT\r\n"));
	assert_int_equal(x->fake.update_calls, 0);
}

static void test_huge_line_in_chunks(void **state)
{
	struct fx *x = *state;
	char chunk[1000];
	memset(chunk, 'Z', sizeof(chunk));
	login(x);
	for (int i = 0; i < 200; i++)
		assert_string_equal(say_n(x, chunk, sizeof(chunk)), "");
	assert_one_err(say(x, "\r\n"));
	assert_still_running(x, STATE_TRANSACTION);
	assert_string_equal(say(x, "NOOP\r\n"), "+OK\r\n");
	/* A line that crosses the limit only in its last chunk. */
	memset(chunk, 'Y', 200);
	assert_string_equal(say_n(x, chunk, 200), "");
	assert_string_equal(say_n(x, chunk, 54), "");
	assert_one_err(say(x, "\r\n"));  /* 254 + CRLF = 256 */
	assert_string_equal(say(x, "NOOP\r\n"), "+OK\r\n");
}

static void test_overlong_sasl_line(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 100];
	assert_string_equal(say(x, "AUTH PLAIN\r\n"), "+ \r\n");
	memset(line, 'A', MAX_SASL_LINE + 10);
	memcpy(line + MAX_SASL_LINE + 10, "\r\n", 3);
	assert_one_err(say(x, line));
	assert_int_equal(x->fake.login_calls, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	/* The exchange is over: commands work again. */
	assert_capa(say(x, "CAPA\r\n"));
	/* A long but legal continuation line (longer than a command line) is accepted. */
	char b64[MAX_SASL_LINE];
	char pass[600];
	memset(pass, 'p', sizeof(pass) - 1);
	pass[sizeof(pass) - 1] = '\0';
	x->fake.pass = pass;
	plain_b64("", USER_OK, pass, b64);
	assert_true(strlen(b64) + 2 > MAX_COMMAND_LINE);
	assert_true(strlen(b64) + 2 <= MAX_SASL_LINE);
	snprintf(line, sizeof(line), "%s\r\n", b64);
	assert_string_equal(say(x, "AUTH PLAIN\r\n"), "+ \r\n");
	assert_one_ok(say(x, line));
	assert_string_equal(x->fake.got_pass, pass);
	assert_int_equal(x->s.state, STATE_TRANSACTION);
}

static void test_bad_command_limit(void **state)
{
	struct fx *x = *state;
	/* The contract: the first 10 bad commands are answered and the session goes on. */
	assert_true(MAX_BAD_COMMANDS > 10);
	unsigned i;
	for (i = 1; i < MAX_BAD_COMMANDS; i++) {
		assert_one_err(say(x, i % 2 ? "BOGUS\r\n" : "STAT\r\n"));
		assert_still_running(x, STATE_AUTHORIZATION);
	}
	assert_one_err(say(x, "BOGUS\r\n"));
	assert_int_equal(x->s.end, END_TOO_MANY_FAILURES);
	assert_int_equal(x->s.state, STATE_DONE);
	assert_string_equal(say(x, "CAPA\r\n"), "");
}

static void test_bad_command_limit_in_transaction(void **state)
{
	struct fx *x = *state;
	login(x);
	for (unsigned i = 1; i < MAX_BAD_COMMANDS; i++) {
		assert_one_err(say(x, "RETR x\r\n"));
		assert_still_running(x, STATE_TRANSACTION);
	}
	assert_one_ok(say(x, "DELE 1\r\n"));
	assert_one_err(say(x, "XYZZY\r\n"));
	assert_int_equal(x->s.end, END_TOO_MANY_FAILURES);
	assert_int_equal(x->fake.update_calls, 0);  /* no QUIT, no update */
}

static void test_nul_octet(void **state)
{
	struct fx *x = *state;
	assert_one_err(say_n(x, "QU\0IT\r\n", 7));
	assert_still_running(x, STATE_AUTHORIZATION);
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	/* A password cut at a NUL must not log in with the prefix. */
	static const char nul_pass[] = "PASS " PASS_OK "\0junk\r\n";
	assert_one_err(say_n(x, nul_pass, sizeof(nul_pass) - 1));
	assert_int_equal(x->fake.login_calls, 0);
	login(x);
	assert_one_err(say_n(x, "NOOP\0\r\n", 7));
	assert_still_running(x, STATE_TRANSACTION);
}

/* ---- Response line length ---- */

static void test_response_lines_fit_512(void **state)
{
	struct fx *x = *state;
	char why[400];
	/* A long reason from the backend. */
	memset(why, 'r', sizeof(why) - 1);
	why[sizeof(why) - 1] = '\0';
	x->fake.force = LOGIN_SYS_TEMP;
	x->fake.force_why = why;
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	assert_err(say(x, "PASS " PASS_OK "\r\n"), "-ERR [SYS/TEMP]");
	x->fake.force = LOGIN_OK;
	login(x);
	say(x, "CAPA\r\nSTAT\r\nLIST\r\nUIDL\r\nLIST 1\r\nUIDL 2\r\nRSET\r\nNOOP\r\nDELE 1\r\n");
	say(x, "QUIT\r\n");
	fx_stop(x);  /* checks every line of the transcript */
}

/*
 * A very long user name, accepted by the backend through AUTH PLAIN (the
 * continuation line may be up to MAX_SASL_LINE octets): the +OK line that
 * echoes the name must still be a CRLF-terminated line of at most 512 octets.
 */
static void test_long_user_name_status_line(void **state)
{
	struct fx *x = *state;
	char name[700], b64[MAX_SASL_LINE], line[MAX_SASL_LINE + 8];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	x->fake.any_user = true;
	plain_b64("", name, PASS_OK, b64);
	snprintf(line, sizeof(line), "%s\r\n", b64);
	assert_string_equal(say(x, "AUTH PLAIN\r\n"), "+ \r\n");
	const char *out = say(x, line);
	assert_true(starts_with(out, "+OK"));
	assert_string_equal(x->fake.got_user, name);
	assert_int_equal(x->s.state, STATE_TRANSACTION);
	assert_string_equal(say(x, "NOOP\r\n"), "+OK\r\n");
	fx_stop(x);  /* every line CRLF-terminated and at most 512 octets */
}

/* ---- Output failures ---- */

static void test_sink_failure_ends_session(void **state)
{
	struct fx *x = *state;
	fx_stop(x);
	fx_start_cap(x, 64);
	x->sink.fail_after = x->sink.writes;  /* every write from now on fails */
	assert_int_equal(session_feed(&x->s, "CAPA\r\n", 6), END_IO_ERROR);
	assert_int_equal(x->s.state, STATE_DONE);
	assert_int_equal(session_feed(&x->s, "QUIT\r\n", 6), END_IO_ERROR);
}

static void test_sink_failure_after_flush(void **state)
{
	struct fx *x = *state;
	login(x);
	x->sink.fail_after = x->sink.writes;
	assert_int_equal(session_feed(&x->s, "NOOP\r\n", 6), END_NONE);  /* only buffered */
	assert_int_equal(outbuf_flush(&x->out), -1);  /* the main loop's flush fails */
	assert_int_equal(session_feed(&x->s, "DELE 1\r\nQUIT\r\n", 14), END_IO_ERROR);
	assert_int_equal(x->fake.update_calls, 0);
}

static void test_sink_failure_mid_retr(void **state)
{
	struct fx *x = *state;
	/* One message much larger than the output buffer. */
	size_t body = 3 * OUTBUF_SIZE;
	const char head[] = "From big@example.org Mon Jan  1 00:00:00 2024\nSubject: big\n\n";
	char *big = malloc(sizeof(head) - 1 + body);
	assert_non_null(big);
	memcpy(big, head, sizeof(head) - 1);
	for (size_t i = 0; i < body; i++)
		big[sizeof(head) - 1 + i] = (i % 64 == 63) ? '\n' : 'x';
	test_write_file(x->path, big, sizeof(head) - 1 + body);
	free(big);
	login(x);
	x->sink.fail_after = x->sink.writes + 1;  /* one more write, then EPIPE */
	assert_int_equal(session_feed(&x->s, "RETR 1\r\nNOOP\r\n", 14), END_IO_ERROR);
	assert_int_equal(x->s.state, STATE_DONE);
	assert_true(x->sink.len < body);
}

/* ---- The summary log line ---- */

struct log_capture {
	int count;
	char line[16][1024];
};

static void capture_hook(int priority, const char *msg, void *ctx)
{
	(void)priority;
	struct log_capture *c = ctx;
	if (c->count < 16)
		snprintf(c->line[c->count], sizeof(c->line[0]), "%s", msg);
	c->count++;
}

static void test_log_summary(void **state)
{
	struct fx *x = *state;
	struct log_capture cap;
	char want[128];
	login(x);
	size_t size;
	free(retr(x, 1, &size));
	assert_one_ok(say(x, "DELE 2\r\n"));
	assert_one_ok(say(x, "QUIT\r\n"));

	memset(&cap, 0, sizeof(cap));
	log_set_hook(capture_hook, &cap);
	session_log_summary(&x->s);
	log_set_hook(NULL, NULL);
	assert_int_equal(cap.count, 1);
	const char *l = cap.line[0];
	assert_non_null(strstr(l, "user=" USER_OK));
	assert_non_null(strstr(l, "peer=test-peer"));
	snprintf(want, sizeof(want), "retrieved=1/%zu", strlen(MSG1));
	assert_non_null(strstr(l, want));
	snprintf(want, sizeof(want), "deleted=1/%zu", strlen(MSG2));
	assert_non_null(strstr(l, want));
	assert_non_null(strstr(l, "end=quit"));
	assert_null(strchr(l, '\n'));
}

static void test_log_summary_without_login(void **state)
{
	struct fx *x = *state;
	struct log_capture cap;
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	session_abort(&x->s, END_EOF);

	memset(&cap, 0, sizeof(cap));
	log_set_hook(capture_hook, &cap);
	session_log_summary(&x->s);
	log_set_hook(NULL, NULL);
	assert_int_equal(cap.count, 1);
	assert_non_null(strstr(cap.line[0], "user=-"));
	assert_non_null(strstr(cap.line[0], "peer=test-peer"));
	assert_non_null(strstr(cap.line[0], "retrieved=0"));
	assert_non_null(strstr(cap.line[0], "deleted=0"));
	assert_null(strstr(cap.line[0], "end=quit"));
}

/*
 * The backend is told the method, and a wrong password is its to log: the
 * session (in pop3d the client-facing greeter) writes no failed-login line.
 */
static void test_failed_login_method_and_log(void **state)
{
	struct fx *x = *state;
	struct log_capture cap;
	char b64[256], line[300];
	memset(&cap, 0, sizeof(cap));
	log_set_hook(capture_hook, &cap);
	assert_one_ok(say(x, "USER " USER_OK "\r\n"));
	assert_one_err(say(x, "PASS wrong\r\n"));
	assert_int_equal(x->fake.got_method, METHOD_USER);
	plain_b64("", USER_OK, "wrong", b64);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", b64);
	assert_one_err(say(x, line));
	assert_int_equal(x->fake.got_method, METHOD_PLAIN);
	log_set_hook(NULL, NULL);
	for (int i = 0; i < cap.count && i < 16; i++)
		assert_null(strstr(cap.line[i], "authentication failed"));
	assert_int_equal(x->fake.nfailures, 2);
}

/* ---- AUTH LOGIN (draft-murchison-sasl-login) ---- */

#define ASK_USER "+ VXNlcm5hbWU6\r\n"   /* "Username:" */
#define ASK_PASS "+ UGFzc3dvcmQ6\r\n"   /* "Password:" */

/* One AUTH LOGIN response line for text. */
static const char *login_line(const char *text, char *buf)
{
	char enc[MAX_SASL_LINE];
	b64(text, enc);
	sprintf(buf, "%s\r\n", enc);
	return buf;
}

static void test_auth_login_continuation(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 8];
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_string_equal(say(x, login_line(USER_OK, line)), ASK_PASS);
	assert_int_equal(x->fake.login_calls, 0);
	assert_one_ok(say(x, login_line(PASS_OK, line)));
	assert_int_equal(x->s.state, STATE_TRANSACTION);
	assert_int_equal(x->fake.login_calls, 1);
	assert_string_equal(x->fake.got_user, USER_OK);
	assert_string_equal(x->fake.got_pass, PASS_OK);
	assert_int_equal(x->fake.got_method, METHOD_LOGIN);
}

/* RFC 5034 allows the first response on the AUTH line: no "Username:" prompt. */
static void test_auth_login_initial_response(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 8], enc[64];
	b64(USER_OK, enc);
	snprintf(line, sizeof(line), "auth login %s\r\n", enc);
	assert_string_equal(say(x, line), ASK_PASS);
	assert_one_ok(say(x, login_line(PASS_OK, line)));
	assert_string_equal(x->fake.got_user, USER_OK);
	assert_int_equal(x->fake.got_method, METHOD_LOGIN);
	assert_int_equal(x->s.state, STATE_TRANSACTION);
}

static void test_auth_login_password_with_spaces(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 8];
	x->fake.pass = "  two  spaces ";
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_string_equal(say(x, login_line(USER_OK, line)), ASK_PASS);
	assert_one_ok(say(x, login_line("  two  spaces ", line)));
	assert_string_equal(x->fake.got_pass, "  two  spaces ");
}

static void test_auth_login_cancel(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 8];
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_err(say(x, "*\r\n"), "-ERR [AUTH] authentication cancelled");
	assert_still_running(x, STATE_AUTHORIZATION);
	assert_capa(say(x, "CAPA\r\n"));   /* a command again */
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_string_equal(say(x, login_line(USER_OK, line)), ASK_PASS);
	assert_err(say(x, "*\r\n"), "-ERR [AUTH] authentication cancelled");
	assert_int_equal(x->fake.login_calls, 0);
	assert_int_equal(x->fake.nfailures, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	login(x);
}

static void test_auth_login_wrong_password(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 8];
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_string_equal(say(x, login_line(USER_OK, line)), ASK_PASS);
	assert_err(say(x, login_line("nope", line)), "-ERR [AUTH] Authentication failed");
	assert_int_equal(x->fake.login_calls, 1);
	assert_int_equal(x->fake.got_method, METHOD_LOGIN);
	assert_int_equal(x->fake.nfailures, 1);
	assert_int_equal(x->fake.failures[0], 1);
	assert_still_running(x, STATE_AUTHORIZATION);
	/* The exchange is over: the next line is a command. */
	assert_string_equal(say(x, "NOOP\r\n"), "-ERR not logged in: use USER/PASS or AUTH first\r\n");
}

/* Not base64: a clear answer at either step, no password checked. */
static void test_auth_login_bad_base64(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 8];
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	const char *out = say(x, "not base64!\r\n");
	assert_err(out, "-ERR [AUTH]");
	assert_non_null(strstr(out, "base64"));
	assert_still_running(x, STATE_AUTHORIZATION);
	out = say(x, "AUTH LOGIN YWxpY2U\r\n");   /* unpadded */
	assert_non_null(strstr(out, "base64"));
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_string_equal(say(x, login_line(USER_OK, line)), ASK_PASS);
	out = say(x, "c2VjcmV0=\r\n");
	assert_err(out, "-ERR [AUTH]");
	assert_non_null(strstr(out, "base64"));
	assert_int_equal(x->fake.login_calls, 0);
	assert_int_equal(x->s.end, END_TOO_MANY_FAILURES);   /* counted as failed logins: 3 */
}

/* An empty or NUL-carrying user name is refused before a password is asked for. */
static void test_auth_login_empty_user(void **state)
{
	struct fx *x = *state;
	static const char *const empty[] = { "AUTH LOGIN =\r\n", "AUTH LOGIN\r\n\r\n",
					     "AUTH LOGIN\r\n=\r\n" };
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		const char *out = say(x, empty[i]);
		if (starts_with(out, ASK_USER))
			out += strlen(ASK_USER);
		assert_err(out, "-ERR [AUTH]");
		assert_non_null(strstr(out, "empty"));
		assert_int_equal(x->s.end, i + 1 < MAX_FAILED_LOGINS ? END_NONE : END_TOO_MANY_FAILURES);
	}
	assert_int_equal(x->fake.login_calls, 0);
}

static void test_auth_login_nul_in_user(void **state)
{
	struct fx *x = *state;
	char enc[64], line[80];
	b64_raw((const unsigned char *)"ali\0ce", 6, enc);
	snprintf(line, sizeof(line), "AUTH LOGIN %s\r\n", enc);
	assert_err(say(x, line), "-ERR [AUTH]");
	assert_int_equal(x->fake.login_calls, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
}

/* A continuation may be longer than a command line, up to MAX_SASL_LINE; longer is refused. */
static void test_auth_login_long_lines(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 100], pass[600];
	memset(pass, 'p', sizeof(pass) - 1);
	pass[sizeof(pass) - 1] = '\0';
	x->fake.pass = pass;
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_string_equal(say(x, login_line(USER_OK, line)), ASK_PASS);
	memset(line, 'A', MAX_SASL_LINE + 10);
	memcpy(line + MAX_SASL_LINE + 10, "\r\n", 3);
	assert_err(say(x, line), "-ERR line too long");
	assert_int_equal(x->fake.login_calls, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_string_equal(say(x, login_line(USER_OK, line)), ASK_PASS);
	login_line(pass, line);
	assert_true(strlen(line) > MAX_COMMAND_LINE);
	assert_one_ok(say(x, line));
	assert_string_equal(x->fake.got_pass, pass);
}

static void test_auth_login_refused_by_policy(void **state)
{
	struct fx *x = *state;
	x->cfg.plaintext_ok = false;
	assert_err(say(x, "AUTH LOGIN\r\n"), "-ERR [AUTH] Plaintext authentication disallowed");
	assert_err(say(x, "AUTH LOGIN YWxpY2U=\r\n"), "-ERR [AUTH] Plaintext");
	assert_int_equal(x->fake.login_calls, 0);
	assert_int_equal(x->s.sasl, SASL_NONE);
	/* CAPA hides SASL (and USER) then. */
	const char *capa = say(x, "CAPA\r\n");
	assert_null(strstr(capa, "SASL"));
	assert_null(strstr(capa, "\r\nUSER\r\n"));
}

/* ---- RFC 6856 UTF8 and UTF-8 user names ---- */

#define JUERGEN "j\xc3\xbcrgen"   /* jürgen */

static void test_utf8_command(void **state)
{
	struct fx *x = *state;
	assert_one_ok(say(x, "UTF8\r\n"));
	assert_one_ok(say(x, "utf8\r\n"));     /* again: still on */
	assert_one_err(say(x, "UTF8 now\r\n"));
	assert_still_running(x, STATE_AUTHORIZATION);
	login(x);
	/* RFC 6856 section 2: valid in the AUTHORIZATION state only. */
	const char *out = say(x, "UTF8\r\n");
	assert_one_err(out);
	assert_non_null(strstr(out, "before login"));
	assert_still_running(x, STATE_TRANSACTION);
}

static void login_as(struct fx *x, const char *user)
{
	char line[256];
	x->fake.user = user;
	snprintf(line, sizeof(line), "USER %s\r\n", user);
	assert_one_ok(say(x, line));
	assert_one_ok(say(x, "PASS " PASS_OK "\r\n"));
	assert_string_equal(x->fake.got_user, user);
	assert_int_equal(x->s.state, STATE_TRANSACTION);
}

static void test_utf8_user_after_utf8(void **state)
{
	struct fx *x = *state;
	assert_one_ok(say(x, "UTF8\r\n"));
	login_as(x, JUERGEN);
}

/* RFC 6856 section 2.2: UTF8 USER advertised, a client need not send UTF8 first. */
static void test_utf8_user_without_utf8(void **state)
{
	struct fx *x = *state;
	login_as(x, JUERGEN);
}

/* The +OK of a login names the user only when the name is ASCII (LANG is not offered). */
static void test_utf8_user_not_echoed(void **state)
{
	struct fx *x = *state;
	char line[256];
	x->fake.user = JUERGEN;
	snprintf(line, sizeof(line), "USER %s\r\n", JUERGEN);
	assert_one_ok(say(x, line));
	const char *out = say(x, "PASS " PASS_OK "\r\n");
	assert_true(starts_with(out, "+OK maildrop has 3 messages"));
	for (const char *p = out; *p; p++)
		assert_true((unsigned char)*p < 0x80);
}

static void test_utf8_user_auth(void **state)
{
	struct fx *x = *state;
	char enc[256], line[300];
	x->fake.user = JUERGEN;
	plain_b64("", JUERGEN, PASS_OK, enc);
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", enc);
	assert_one_ok(say(x, line));
	assert_string_equal(x->fake.got_user, JUERGEN);
	assert_int_equal(x->s.state, STATE_TRANSACTION);
}

static void test_utf8_user_auth_login(void **state)
{
	struct fx *x = *state;
	char line[MAX_SASL_LINE + 8];
	x->fake.user = JUERGEN;
	assert_one_ok(say(x, "UTF8\r\n"));
	assert_string_equal(say(x, "AUTH LOGIN\r\n"), ASK_USER);
	assert_string_equal(say(x, login_line(JUERGEN, line)), ASK_PASS);
	assert_one_ok(say(x, login_line(PASS_OK, line)));
	assert_string_equal(x->fake.got_user, JUERGEN);
}

/* Invalid UTF-8 and control characters: a clear -ERR naming the problem, logged, no login. */
static const struct { const char *name; const char *why; } bad_names[] = {
	{ "j\xfcrgen", "UTF-8" },             /* Latin-1 */
	{ "\xc0\xaf" "etc", "UTF-8" },        /* overlong '/' */
	{ "a\xe0\x80\xaf", "UTF-8" },         /* overlong, 3 octets */
	{ "a\xf0\x80\x80\xaf", "UTF-8" },     /* overlong, 4 octets */
	{ "a\xed\xa0\x80", "UTF-8" },         /* surrogate U+D800 */
	{ "a\xf4\x90\x80\x80", "UTF-8" },     /* U+110000 */
	{ "a\xf8\x88\x80\x80\x80", "UTF-8" }, /* 5 octets */
	{ "j\xc3", "UTF-8" },                 /* cut at the end */
	{ "j\xe2\x82x", "UTF-8" },            /* cut before an ASCII octet */
	{ "\x80x", "UTF-8" },                 /* a lone continuation octet */
	{ "a\x01z", "control" },
	{ "a\x7fz", "control" },
	{ "a\xc2\x85z", "control" },          /* C1: NEL */
};

static void assert_name_refused(const char *out, const char *why)
{
	assert_one_err(out);
	assert_false(starts_with(out, "-ERR [AUTH] Authentication failed"));
	if (!strstr(out, why))
		fail_msg("expected a -ERR naming \"%s\", got \"%s\"", why, out);
}

static void test_utf8_invalid_user(void **state)
{
	struct fx *x = *state;
	struct log_capture cap;
	char line[256];
	memset(&cap, 0, sizeof(cap));
	log_set_hook(capture_hook, &cap);
	assert_one_ok(say(x, "UTF8\r\n"));
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		snprintf(line, sizeof(line), "USER %s\r\n", bad_names[i].name);
		assert_name_refused(say(x, line), bad_names[i].why);
		assert_one_err(say(x, "PASS " PASS_OK "\r\n"));   /* no USER was accepted */
		assert_still_running(x, STATE_AUTHORIZATION);
		assert_int_equal(x->fake.nfailures, 0);
		x->s.bad_commands = 0;
	}
	log_set_hook(NULL, NULL);
	assert_int_equal(x->fake.login_calls, 0);
	/* Logged, escaped as log.c quotes every client-supplied name. */
	bool found = false;
	for (int i = 0; i < cap.count && i < 16; i++)
		found |= strstr(cap.line[i], "user=\"j\\xfcrgen\"") != NULL &&
			 strstr(cap.line[i], "UTF-8") != NULL;
	assert_true(found);
}

static void test_utf8_invalid_user_auth(void **state)
{
	struct fx *x = *state;
	char enc[256], line[300];
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		plain_b64("", bad_names[i].name, PASS_OK, enc);
		snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", enc);
		assert_name_refused(say(x, line), bad_names[i].why);
		/* AUTH LOGIN: refused before the password is asked for. */
		b64(bad_names[i].name, enc);
		snprintf(line, sizeof(line), "AUTH LOGIN %s\r\n", enc);
		assert_name_refused(say(x, line), bad_names[i].why);
		assert_int_equal(x->s.sasl, SASL_NONE);
		x->s.bad_commands = 0;
	}
	assert_int_equal(x->fake.login_calls, 0);
	assert_int_equal(x->fake.nfailures, 0);
	assert_still_running(x, STATE_AUTHORIZATION);
	login(x);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_greeting),
		T(test_capa_in_both_states),
		T(test_transaction_commands_before_login),
		T(test_authorization_commands_after_login),
		T(test_unknown_and_empty_commands),
		T(test_commands_are_case_insensitive),
		T(test_commands_are_case_insensitive_auth),
		T(test_bare_lf_equals_crlf),
		T(test_pipelining_in_one_feed),
		T(test_pipelining_byte_by_byte),
		T(test_user_pass_success),
		T(test_password_with_spaces),
		T(test_pass_without_user),
		T(test_failed_logins_end_session_after_max),
		T(test_login_refusals_keep_authorization),
		T(test_not_an_mbox_is_sys_perm),
		T(test_missing_mailbox_is_empty_maildrop),
		T(test_plaintext_refused_by_policy),
		T(test_auth_plain_initial_response),
		T(test_auth_plain_continuation),
		T(test_auth_plain_cancel),
		T(test_auth_plain_continuation_is_not_a_command),
		T(test_auth_plain_bad_base64),
		T(test_auth_plain_authzid),
		T(test_auth_plain_empty_response),
		T(test_auth_plain_wrong_password),
		T(test_bare_auth_lists_plain),
		T(test_auth_unsupported_mechanism),
		T(test_auth_login_continuation),
		T(test_auth_login_initial_response),
		T(test_auth_login_password_with_spaces),
		T(test_auth_login_cancel),
		T(test_auth_login_wrong_password),
		T(test_auth_login_bad_base64),
		T(test_auth_login_empty_user),
		T(test_auth_login_nul_in_user),
		T(test_auth_login_long_lines),
		T(test_auth_login_refused_by_policy),
		T(test_utf8_command),
		T(test_utf8_user_after_utf8),
		T(test_utf8_user_without_utf8),
		T(test_utf8_user_not_echoed),
		T(test_utf8_user_auth),
		T(test_utf8_user_auth_login),
		T(test_utf8_invalid_user),
		T(test_utf8_invalid_user_auth),
		cmocka_unit_test(test_sasl_plain_decode),
		T(test_sizes_match_retrieved_octets),
		T(test_uidl),
		T(test_uidl_unique_for_duplicates),
		T(test_retr_byte_stuffing),
		T(test_top),
		T(test_dele_and_rset),
		T(test_noop),
		T(test_numeric_arguments_are_strict),
		T(test_too_many_arguments),
		T(test_quit_in_authorization),
		T(test_quit_without_deletions),
		T(test_quit_with_deletions),
		T(test_one_message_singular),
		T(test_rset_count_plural),
		T(test_quit_update_fails),
		T(test_quit_releases_maildrop_before_answering),
		T(test_abort_applies_nothing),
		T(test_quit_applies_deletions_with_real_update),
		T(test_line_limit_255),
		T(test_overlong_line_is_not_executed),
		T(test_huge_line_in_chunks),
		T(test_overlong_sasl_line),
		T(test_bad_command_limit),
		T(test_bad_command_limit_in_transaction),
		T(test_nul_octet),
		T(test_response_lines_fit_512),
		T(test_long_user_name_status_line),
		T(test_sink_failure_ends_session),
		T(test_sink_failure_after_flush),
		T(test_sink_failure_mid_retr),
		T(test_log_summary),
		T(test_log_summary_without_login),
		T(test_failed_login_method_and_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
