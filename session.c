/*
 * The POP3 protocol state machine (RFC 1939, RFC 2449 CAPA, RFC 3206, RFC 5034
 * SASL with PLAIN and LOGIN, RFC 6856 UTF8).
 */
#include "session.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "log.h"

#define CRLF "\r\n"

/* USER and SASL are left out where the TLS policy refuses plaintext logins. */
static const char capa_head[] =
	"+OK Capability list follows" CRLF
	"TOP" CRLF
	"UIDL" CRLF
	"RESP-CODES" CRLF
	"AUTH-RESP-CODE" CRLF
	"PIPELINING" CRLF
	"UTF8 USER" CRLF;   /* RFC 6856: UTF-8 user names (and passwords) */
static const char capa_login[] =
	"USER" CRLF
	"SASL PLAIN LOGIN" CRLF;
static const char capa_tail[] =
	"IMPLEMENTATION " POP3D_NAME CRLF
	"." CRLF;

/* The prompts of AUTH LOGIN (draft-murchison-sasl-login): "Username:", "Password:". */
#define LOGIN_ASK_USER "VXNlcm5hbWU6"
#define LOGIN_ASK_PASS "UGFzc3dvcmQ6"

/* ---- output helpers ---- */

static void reply(struct session *s, const char *line)
{
	outbuf_puts(s->out, line);
	outbuf_puts(s->out, CRLF);
}

/* A -ERR for a malformed or misplaced command; too many end the session. */
static void bad_command(struct session *s, const char *why)
{
	s->bad_commands++;
	if (s->bad_commands >= s->cfg->max_bad_commands) {
		outbuf_printf(s->out, "-ERR %s; too many bad commands, closing" CRLF, why);
		log_msg(LOG_NOTICE, "too many bad commands: user=%s peer=%s",
			LOG_Q(s->state == STATE_TRANSACTION ? s->user : NULL), s->cfg->peer);
		s->end = END_TOO_MANY_FAILURES;
		s->state = STATE_DONE;
		return;
	}
	outbuf_printf(s->out, "-ERR %s" CRLF, why);
}

/* Decimal digits of v into buf (at least 21 bytes), returns the length. */
static size_t fmt_u64(char *buf, uint64_t v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

/* "<n> <size>\r\n" or "<n> <uidl>\r\n", without printf: LIST of 100 000 lines is hot. */
static void put_listing(struct session *s, size_t n, const char *text, uint64_t size)
{
	char line[32 + MAX_UIDL_LEN + 3];
	size_t len = fmt_u64(line, n);
	line[len++] = ' ';
	if (text) {
		size_t tl = strlen(text);
		memcpy(line + len, text, tl);
		len += tl;
	} else {
		len += fmt_u64(line + len, size);
	}
	line[len++] = '\r';
	line[len++] = '\n';
	outbuf_put(s->out, line, len);
}

/* ---- argument parsing ---- */

/* Strict decimal: digits only, no sign, no junk, no overflow. */
static int parse_number(const char *arg, unsigned long *out)
{
	unsigned long v = 0;
	if (!arg || !*arg)
		return -1;
	for (const char *p = arg; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned digit = (unsigned)(*p - '0');
		if (v > (ULONG_MAX - digit) / 10)
			return -1;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}

/* Split "CMD arg1 arg2" in place; returns the argument count (0..3, 3 meaning "too many"). */
static int split_args(char *line, char **cmd, char *args[2])
{
	char *p = line;
	args[0] = args[1] = NULL;
	*cmd = p;
	int n = 0;
	while ((p = strchr(p, ' ')) != NULL) {
		*p++ = '\0';
		if (n == 2)
			return 3;
		args[n++] = p;
	}
	for (int i = 0; i < n; i++)
		if (!*args[i])
			return 3;  /* empty argument: doubled or trailing space */
	return n;
}

/* ---- maildrop views ---- */

struct totals {
	size_t count;
	uint64_t octets;
};

static struct totals maildrop_totals(const struct session *s)
{
	struct totals t = {0, 0};
	size_t n = mbox_count(s->mb);
	for (size_t i = 1; i <= n; i++) {
		const struct mbox_msg *m = mbox_msg(s->mb, i);
		if (!m->deleted) {
			t.count++;
			t.octets += (uint64_t)m->size;
		}
	}
	return t;
}

/* The message named by arg, or NULL after answering -ERR. */
static struct mbox_msg *lookup_message(struct session *s, const char *arg, size_t *num)
{
	unsigned long n;
	if (parse_number(arg, &n) < 0) {
		bad_command(s, "invalid message number");
		return NULL;
	}
	struct mbox_msg *m = n ? mbox_msg(s->mb, n) : NULL;
	if (!m) {
		outbuf_printf(s->out, "-ERR no such message" CRLF);
		return NULL;
	}
	if (m->deleted) {
		outbuf_printf(s->out, "-ERR message %lu already deleted" CRLF, n);
		return NULL;
	}
	*num = n;
	return m;
}

/* ---- AUTHORIZATION state ---- */

static bool plaintext_refused(struct session *s)
{
	if (s->cfg->plaintext_ok)
		return false;
	bad_command(s, "[AUTH] Plaintext authentication disallowed on an unencrypted "
		       "connection; use POP3S (port 995)");
	return true;
}

/* "1 message", "2 messages": every count of messages the client reads. */
static const char *messages_word(size_t n)
{
	return n == 1 ? "message" : "messages";
}

static bool ascii_only(const char *text)
{
	for (; *text; text++)
		if ((unsigned char)*text >= 0x80)
			return false;
	return true;
}

static void login_succeeded(struct session *s)
{
	struct totals t = maildrop_totals(s);
	s->state = STATE_TRANSACTION;
	s->logged_in = true;
	/* Response lines stay ASCII (no LANG, RFC 6856 section 3): a UTF-8 name is not echoed. */
	outbuf_printf(s->out, "+OK %s has %zu %s (%llu octets)" CRLF,
		      ascii_only(s->user) ? s->user : "maildrop", t.count, messages_word(t.count),
		      (unsigned long long)t.octets);
	log_msg(LOG_INFO, "login: user=%s peer=%s messages=%zu octets=%llu",
		LOG_Q(s->user), s->cfg->peer, t.count, (unsigned long long)t.octets);
}

/* A failed login (why: for the client), counted here; the backend that checked it has logged it. */
static void login_failed(struct session *s, const char *why)
{
	s->failed_logins++;
	if (s->be->login_failed)
		s->be->login_failed(s->be->ctx, s->failed_logins);
	if (s->failed_logins >= s->cfg->max_failed_logins) {
		outbuf_printf(s->out, "-ERR [AUTH] %s; too many failures, closing" CRLF, why);
		s->end = END_TOO_MANY_FAILURES;
		s->state = STATE_DONE;
		return;
	}
	outbuf_printf(s->out, "-ERR [AUTH] %s" CRLF, why);
}

/*
 * A name as the client sent it (USER, AUTH PLAIN, AUTH LOGIN), checked by the
 * one UTF-8 check (auth.c). false after a -ERR that says what is wrong: a
 * malformed argument, not a failed login (no password was checked).
 */
static bool name_acceptable(struct session *s, const char *name)
{
	const char *why = auth_name_encoding_problem(name);
	if (!why)
		return true;
	log_msg(LOG_NOTICE, "user name refused: user=%s peer=%s reason=%s", LOG_Q(name),
		s->cfg->peer, LOG_Q(why));
	char text[MAX_REASON_LEN];
	snprintf(text, sizeof(text), "invalid user name: %s", why);
	bad_command(s, text);
	return false;
}

/* Credentials are complete: authenticate and open the maildrop. */
static void try_login(struct session *s, const char *password, enum login_method method)
{
	char why[MAX_REASON_LEN] = "";
	struct mbox *mb = NULL;
	enum login_result r = s->be->login(s->be->ctx, s->user, password, method, &mb, why,
					   sizeof(why));
	s->have_user = false;
	switch (r) {
	case LOGIN_OK:
		s->mb = mb;
		login_succeeded(s);
		return;
	case LOGIN_HANDOFF:   /* the worker answers this line and serves the rest */
		s->end = END_HANDOFF;
		s->state = STATE_DONE;
		return;
	case LOGIN_FAILED:
		login_failed(s, "Authentication failed");
		return;
	case LOGIN_IN_USE:
		outbuf_printf(s->out, "-ERR [IN-USE] %s" CRLF, why[0] ? why : "maildrop in use");
		break;
	case LOGIN_SYS_TEMP:
		outbuf_printf(s->out, "-ERR [SYS/TEMP] %s" CRLF, why[0] ? why : "try again later");
		break;
	case LOGIN_SYS_PERM:
		outbuf_printf(s->out, "-ERR [SYS/PERM] %s" CRLF, why[0] ? why : "maildrop unavailable");
		break;
	case LOGIN_DELAY:   /* no password was checked: not a failed login (logged by the throttle) */
		outbuf_printf(s->out, "-ERR [LOGIN-DELAY] %s" CRLF, why[0] ? why : "try again later");
		return;
	}
	log_msg(LOG_WARNING, "login refused: user=%s peer=%s reason=%s",
		LOG_Q(s->user), s->cfg->peer, LOG_Q(why[0] ? why : NULL));
}

static void cmd_user(struct session *s, int argc, char **args)
{
	if (plaintext_refused(s))
		return;
	if (argc != 1) {
		bad_command(s, "usage: USER name");
		return;
	}
	s->have_user = false;
	if (!name_acceptable(s, args[0]))
		return;
	snprintf(s->user, sizeof(s->user), "%s", args[0]);
	s->have_user = true;
	reply(s, "+OK send PASS");  /* the same for every name: no user enumeration */
}

/* PASS takes the rest of the line: passwords may contain spaces. */
static void cmd_pass(struct session *s, const char *rest)
{
	if (plaintext_refused(s))
		return;
	if (!s->have_user) {
		bad_command(s, "USER first");
		return;
	}
	if (!rest) {
		bad_command(s, "usage: PASS password");
		return;
	}
	try_login(s, rest, METHOD_USER);
}

/* A SASL response that says nothing to check: a failed login, answered with what was wrong. */
static void sasl_malformed(struct session *s, const char *mech, const char *what)
{
	char text[MAX_REASON_LEN];
	/* No password to check: not the failed-login line, which only the checker writes. */
	snprintf(s->user, sizeof(s->user), "%s", "-");
	log_msg(LOG_NOTICE, "malformed AUTH %s response: peer=%s problem=%s", mech, s->cfg->peer,
		LOG_Q(what));
	snprintf(text, sizeof(text), "malformed AUTH %s response: %s", mech, what);
	login_failed(s, text);
}

/* Ask for the next SASL response. */
static void sasl_prompt(struct session *s, enum sasl_step next, const char *challenge)
{
	s->sasl = next;
	outbuf_printf(s->out, "+ %s" CRLF, challenge);
}

static void sasl_plain_response(struct session *s, const char *b64)
{
	char pass[MAX_SASL_LINE + 1];
	if (sasl_plain_decode(b64, s->user, pass, sizeof(pass)) < 0)
		sasl_malformed(s, "PLAIN", "not base64 of [authzid] NUL user NUL password");
	else if (name_acceptable(s, s->user))
		try_login(s, pass, METHOD_PLAIN);
	explicit_bzero(pass, sizeof(pass));
}

/* Why an AUTH LOGIN response that sasl_text_decode refused (rc < 0) is no string. */
static const char *login_response_problem(long rc)
{
	return rc == -2 ? "a NUL octet in it" : "not base64";
}

/* AUTH LOGIN's first response: the user name; then ask for the password. */
static void sasl_login_user(struct session *s, const char *b64)
{
	long n = sasl_text_decode(b64, s->user, sizeof(s->user));
	if (n < 0)
		sasl_malformed(s, "LOGIN", login_response_problem(n));
	else if (n == 0)
		sasl_malformed(s, "LOGIN", "an empty user name");
	else if (name_acceptable(s, s->user))
		sasl_prompt(s, SASL_LOGIN_PASS, LOGIN_ASK_PASS);
}

/* AUTH LOGIN's second response: the password. */
static void sasl_login_pass(struct session *s, const char *b64)
{
	char pass[MAX_SASL_LINE + 1];
	long n = sasl_text_decode(b64, pass, sizeof(pass));
	if (n < 0)
		sasl_malformed(s, "LOGIN", login_response_problem(n));
	else
		try_login(s, pass, METHOD_LOGIN);
	explicit_bzero(pass, sizeof(pass));
}

static bool is_cmd(const char *cmd, const char *name)
{
	return strcasecmp(cmd, name) == 0;
}

static void cmd_auth(struct session *s, int argc, char **args)
{
	if (argc == 0) {  /* mechanism list, as many servers answer a bare AUTH */
		outbuf_puts(s->out, "+OK" CRLF "PLAIN" CRLF "LOGIN" CRLF "." CRLF);
		return;
	}
	if (plaintext_refused(s))
		return;
	bool plain = is_cmd(args[0], "PLAIN");
	if (!plain && !is_cmd(args[0], "LOGIN")) {
		bad_command(s, "[AUTH] unsupported authentication mechanism");
		return;
	}
	s->have_user = false;
	if (plain && argc == 2)
		sasl_plain_response(s, args[1]);
	else if (plain)
		sasl_prompt(s, SASL_PLAIN, "");
	else if (argc == 2)   /* the initial response (RFC 5034) skips "Username:" */
		sasl_login_user(s, args[1]);
	else
		sasl_prompt(s, SASL_LOGIN_USER, LOGIN_ASK_USER);
}

static void sasl_continuation(struct session *s, char *line)
{
	enum sasl_step step = s->sasl;
	s->sasl = SASL_NONE;
	if (strcmp(line, "*") == 0) {
		reply(s, "-ERR [AUTH] authentication cancelled");
		return;
	}
	if (step == SASL_PLAIN)
		sasl_plain_response(s, line);
	else if (step == SASL_LOGIN_USER)
		sasl_login_user(s, line);
	else
		sasl_login_pass(s, line);
}

/* RFC 6856: UTF-8 user names are taken with or without it; messages go as stored. */
static void cmd_utf8(struct session *s, int argc)
{
	if (argc != 0) {
		bad_command(s, "usage: UTF8");
		return;
	}
	reply(s, "+OK UTF8 enabled (user names may be UTF-8; messages are sent as stored)");
}

/* ---- TRANSACTION state ---- */

static void cmd_stat(struct session *s, int argc)
{
	if (argc != 0) {
		bad_command(s, "usage: STAT");
		return;
	}
	struct totals t = maildrop_totals(s);
	outbuf_printf(s->out, "+OK %zu %llu" CRLF, t.count, (unsigned long long)t.octets);
}

/* LIST and UIDL share their shape: one message, or all undeleted ones. */
static void cmd_listing(struct session *s, int argc, char **args, bool uidl)
{
	char uid[MAX_UIDL_LEN + 1];
	if (argc > 1) {
		bad_command(s, uidl ? "usage: UIDL [msg]" : "usage: LIST [msg]");
		return;
	}
	if (argc == 1) {
		size_t n;
		struct mbox_msg *m = lookup_message(s, args[0], &n);
		if (!m)
			return;
		if (uidl)
			mbox_uidl(s->mb, n, uid);
		outbuf_puts(s->out, "+OK ");
		put_listing(s, n, uidl ? uid : NULL, (uint64_t)m->size);
		return;
	}
	if (uidl) {
		outbuf_puts(s->out, "+OK unique-id listing follows" CRLF);
	} else {
		struct totals t = maildrop_totals(s);
		outbuf_printf(s->out, "+OK %zu %s (%llu octets)" CRLF,
			      t.count, messages_word(t.count), (unsigned long long)t.octets);
	}
	size_t count = mbox_count(s->mb);
	for (size_t i = 1; i <= count; i++) {
		const struct mbox_msg *m = mbox_msg(s->mb, i);
		if (m->deleted)
			continue;
		if (uidl)
			mbox_uidl(s->mb, i, uid);
		put_listing(s, i, uidl ? uid : NULL, (uint64_t)m->size);
	}
	reply(s, ".");
}

/* RETR (lines < 0) and TOP. */
static void send_message(struct session *s, size_t n, const struct mbox_msg *m, long lines)
{
	char why[MAX_REASON_LEN];
	if (mbox_check_msg(s->mb, n, why, sizeof(why)) < 0) {
		outbuf_printf(s->out, "-ERR [SYS/TEMP] %s" CRLF, why);
		log_msg(LOG_WARNING, "message %zu not sent: %s: user=%s peer=%s", n, why,
			LOG_Q(s->user), s->cfg->peer);
		return;
	}
	if (lines < 0)
		outbuf_printf(s->out, "+OK %llu octets" CRLF, (unsigned long long)m->size);
	else
		reply(s, "+OK top of message follows");
	if (mbox_send(s->mb, n, lines, s->out) < 0) {
		/* Mid-message: the client can't be told cleanly; drop the connection. */
		if (!s->out->failed)
			log_msg(LOG_ERR, "cannot read message %zu: user=%s peer=%s",
				n, LOG_Q(s->user), s->cfg->peer);
		s->end = END_IO_ERROR;
		s->state = STATE_DONE;
		return;
	}
	reply(s, ".");
	if (lines < 0) {
		s->retrieved_msgs++;
		s->retrieved_bytes += (uint64_t)m->size;
	}
}

static void cmd_retr(struct session *s, int argc, char **args)
{
	if (argc != 1) {
		bad_command(s, "usage: RETR msg");
		return;
	}
	size_t n;
	struct mbox_msg *m = lookup_message(s, args[0], &n);
	if (m)
		send_message(s, n, m, -1);
}

static void cmd_top(struct session *s, int argc, char **args)
{
	unsigned long lines;
	if (argc != 2) {
		bad_command(s, "usage: TOP msg lines");
		return;
	}
	if (parse_number(args[1], &lines) < 0 || lines > (unsigned long)LONG_MAX) {
		bad_command(s, "invalid line count");
		return;
	}
	size_t n;
	struct mbox_msg *m = lookup_message(s, args[0], &n);
	if (m)
		send_message(s, n, m, (long)lines);
}

static void cmd_dele(struct session *s, int argc, char **args)
{
	if (argc != 1) {
		bad_command(s, "usage: DELE msg");
		return;
	}
	size_t n;
	struct mbox_msg *m = lookup_message(s, args[0], &n);
	if (!m)
		return;
	m->deleted = true;
	outbuf_printf(s->out, "+OK message %zu deleted" CRLF, n);
}

static void cmd_rset(struct session *s, int argc)
{
	if (argc != 0) {
		bad_command(s, "usage: RSET");
		return;
	}
	size_t count = mbox_count(s->mb);
	for (size_t i = 1; i <= count; i++)
		mbox_msg(s->mb, i)->deleted = false;
	struct totals t = maildrop_totals(s);
	outbuf_printf(s->out, "+OK maildrop has %zu %s (%llu octets)" CRLF,
		      t.count, messages_word(t.count), (unsigned long long)t.octets);
}

static void count_deletions(struct session *s)
{
	size_t count = mbox_count(s->mb);
	for (size_t i = 1; i <= count; i++) {
		const struct mbox_msg *m = mbox_msg(s->mb, i);
		if (m->deleted) {
			s->deleted_msgs++;
			s->deleted_bytes += (uint64_t)m->size;
		}
	}
}

/*
 * Give the maildrop up before the QUIT answer goes out: a client that logs in
 * again as soon as it reads it must not find it still in use.
 */
static void release_maildrop(struct session *s)
{
	mbox_close(s->mb);
	s->mb = NULL;
	if (s->be->release)
		s->be->release(s->be->ctx);
}

/* QUIT in TRANSACTION: the UPDATE state. */
static void cmd_quit_update(struct session *s)
{
	char why[MAX_REASON_LEN] = "";
	count_deletions(s);
	s->state = STATE_DONE;
	if (s->deleted_msgs > 0 &&
	    s->be->update(s->be->ctx, s->mb, why, sizeof(why)) != MBOX_OK) {
		outbuf_printf(s->out, "-ERR [SYS/TEMP] %s; no messages were deleted" CRLF,
			      why[0] ? why : "update failed");
		log_msg(LOG_ERR, "update failed: user=%s peer=%s reason=%s",
			LOG_Q(s->user), s->cfg->peer, LOG_Q(why[0] ? why : NULL));
		s->deleted_msgs = s->deleted_bytes = 0;
		s->end = END_UPDATE_FAILED;
		release_maildrop(s);
		return;
	}
	struct totals t = maildrop_totals(s);
	release_maildrop(s);
	outbuf_printf(s->out, "+OK %s signing off (%zu %s left)" CRLF, POP3D_NAME, t.count,
		      messages_word(t.count));
	s->end = END_QUIT;
}

/* ---- dispatch ---- */

static void dispatch_authorization(struct session *s, const char *cmd, int argc,
				   char **args)
{
	if (is_cmd(cmd, "USER"))
		cmd_user(s, argc, args);
	else if (is_cmd(cmd, "AUTH"))
		cmd_auth(s, argc, args);
	else if (is_cmd(cmd, "UTF8"))
		cmd_utf8(s, argc);
	else if (is_cmd(cmd, "APOP"))
		bad_command(s, "APOP is not supported; use USER/PASS or AUTH");
	else if (is_cmd(cmd, "STAT") || is_cmd(cmd, "LIST") || is_cmd(cmd, "RETR") ||
		 is_cmd(cmd, "DELE") || is_cmd(cmd, "NOOP") || is_cmd(cmd, "RSET") ||
		 is_cmd(cmd, "TOP") || is_cmd(cmd, "UIDL"))
		bad_command(s, "not logged in: use USER/PASS or AUTH first");
	else
		bad_command(s, "unknown command");
}

static void dispatch_transaction(struct session *s, const char *cmd, int argc, char **args)
{
	if (is_cmd(cmd, "STAT"))
		cmd_stat(s, argc);
	else if (is_cmd(cmd, "LIST"))
		cmd_listing(s, argc, args, false);
	else if (is_cmd(cmd, "UIDL"))
		cmd_listing(s, argc, args, true);
	else if (is_cmd(cmd, "RETR"))
		cmd_retr(s, argc, args);
	else if (is_cmd(cmd, "TOP"))
		cmd_top(s, argc, args);
	else if (is_cmd(cmd, "DELE"))
		cmd_dele(s, argc, args);
	else if (is_cmd(cmd, "RSET"))
		cmd_rset(s, argc);
	else if (is_cmd(cmd, "NOOP"))
		argc ? bad_command(s, "usage: NOOP") : reply(s, "+OK");
	else if (is_cmd(cmd, "USER") || is_cmd(cmd, "AUTH") ||
		 is_cmd(cmd, "APOP"))
		bad_command(s, "already logged in");
	else if (is_cmd(cmd, "UTF8"))   /* RFC 6856 section 2: an AUTHORIZATION command */
		bad_command(s, "UTF8 is valid only before login");
	else
		bad_command(s, "unknown command");
}

static bool is_known(const char *cmd)
{
	static const char *const known[] = {
		"USER", "PASS", "AUTH", "APOP", "STAT", "LIST", "RETR", "DELE", "NOOP",
		"RSET", "TOP", "UIDL", "QUIT", "CAPA", "STLS", "UTF8",
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (is_cmd(cmd, known[i]))
			return true;
	return false;
}

/* One complete command line, terminator removed. */
static void execute_line(struct session *s, char *line)
{
	if (s->sasl != SASL_NONE) {
		sasl_continuation(s, line);
		return;
	}
	/* PASS keeps everything after "PASS " verbatim: passwords may contain spaces. */
	if (strncasecmp(line, "PASS", 4) == 0 && (line[4] == ' ' || line[4] == '\0')) {
		if (s->state == STATE_AUTHORIZATION)
			cmd_pass(s, line[4] && line[5] ? line + 5 : NULL);
		else
			bad_command(s, "already logged in");
		return;
	}
	char *cmd, *args[2];
	int argc = split_args(line, &cmd, args);
	if (!*cmd) {
		bad_command(s, "empty command");
		return;
	}
	if (is_cmd(cmd, "CAPA")) {
		if (argc) {
			bad_command(s, "usage: CAPA");
			return;
		}
		outbuf_puts(s->out, capa_head);
		if (s->cfg->plaintext_ok)
			outbuf_puts(s->out, capa_login);
		outbuf_puts(s->out, capa_tail);
		return;
	}
	if (is_cmd(cmd, "QUIT")) {
		if (argc != 0) {
			bad_command(s, "usage: QUIT");
		} else if (s->state == STATE_TRANSACTION) {
			cmd_quit_update(s);
		} else {
			reply(s, "+OK " POP3D_NAME " signing off");
			s->state = STATE_DONE;
			s->end = END_QUIT;
		}
		return;
	}
#ifdef POP3D_FAULT_INJECTION
	if (is_cmd(cmd, "XTEST") && s->be->test) {   /* test builds: sandbox probes */
		s->be->test(s->be->ctx, argc, args, s->out);
		return;
	}
#endif
	if (is_cmd(cmd, "STLS")) {
		bad_command(s, "STLS is not supported; use POP3S (port 995)");
		return;
	}
	if (argc > 2) {
		/* An unknown command is unknown whatever follows it (a PROXY line from an untrusted peer). */
		bad_command(s, is_known(cmd) ? "too many arguments" : "unknown command");
		return;
	}
	if (s->state == STATE_AUTHORIZATION)
		dispatch_authorization(s, cmd, argc, args);
	else
		dispatch_transaction(s, cmd, argc, args);
}

/* A complete line is in s->line: strip the terminator, check it, run it. */
static void finish_line(struct session *s)
{
	size_t len = s->line_len;
	bool overlong = s->overlong;
	s->line_len = 0;
	s->overlong = false;
	if (overlong) {
		s->sasl = SASL_NONE;
		bad_command(s, "line too long");
		return;
	}
	len--;  /* the LF */
	if (len > 0 && s->line[len - 1] == '\r')
		len--;
	s->line[len] = '\0';
	if (memchr(s->line, '\0', len)) {
		s->sasl = SASL_NONE;
		bad_command(s, "NUL octet in command");
		return;
	}
	execute_line(s, s->line);
}

/* ---- public interface ---- */

void session_init(struct session *s, const struct session_config *cfg,
		  const struct session_backend *be, struct outbuf *out)
{
	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->be = be;
	s->out = out;
	s->state = STATE_AUTHORIZATION;
	s->started = time(NULL);
}

void session_resume(struct session *s, const char *user, unsigned bad_commands,
		    time_t started, struct mbox *mb)
{
	snprintf(s->user, sizeof(s->user), "%s", user);
	s->bad_commands = bad_commands;
	s->started = started;
	s->mb = mb;
	login_succeeded(s);
}

void session_greeting(struct session *s)
{
	reply(s, "+OK " POP3D_NAME " ready");
}

/* Before login nobody may make us buffer and parse without bound. */
static bool preauth_input_exceeded(struct session *s, size_t len)
{
	if (s->state != STATE_AUTHORIZATION || !s->cfg->max_preauth_input)
		return false;
	s->preauth_input += len;
	if (s->preauth_input <= s->cfg->max_preauth_input)
		return false;
	reply(s, "-ERR too much input before login, closing");
	log_msg(LOG_NOTICE, "too much input before login: peer=%s", s->cfg->peer);
	s->end = END_TOO_MANY_FAILURES;
	s->state = STATE_DONE;
	return true;
}

enum session_end session_feed(struct session *s, const char *data, size_t len)
{
	if (s->end == END_NONE && preauth_input_exceeded(s, len))
		return s->end;
	while (len > 0 && s->end == END_NONE) {
		const char *nl = memchr(data, '\n', len);
		size_t seg = nl ? (size_t)(nl - data) + 1 : len;
		size_t limit = s->sasl != SASL_NONE ? MAX_SASL_LINE : MAX_COMMAND_LINE;
		if (!s->overlong && seg > limit - s->line_len) {
			s->overlong = true;  /* keep discarding until the LF */
			s->line_len = 0;
		}
		if (!s->overlong) {
			memcpy(s->line + s->line_len, data, seg);
			s->line_len += seg;
		} else if (nl) {
			s->line_len = 1;  /* finish_line only needs to see the end */
		}
		data += seg;
		len -= seg;
		if (nl)
			finish_line(s);
		if (s->out->failed && s->end == END_NONE) {
			s->end = END_IO_ERROR;
			s->state = STATE_DONE;
		}
	}
	s->unread = len;
	return s->end;
}

void session_abort(struct session *s, enum session_end why)
{
	if (s->end == END_NONE)
		s->end = why;
	s->state = STATE_DONE;
}

static const char *end_name(enum session_end e)
{
	switch (e) {
	case END_NONE: return "running";
	case END_QUIT: return "quit";
	case END_UPDATE_FAILED: return "update-failed";
	case END_TOO_MANY_FAILURES: return "too-many-failures";
	case END_EOF: return "disconnected";
	case END_TIMEOUT: return "timeout";
	case END_IO_ERROR: return "io-error";
	case END_HANDOFF: return "handoff";
	}
	return "unknown";
}

void session_log_summary(const struct session *s)
{
	log_msg(LOG_INFO,
		"session end: user=%s peer=%s retrieved=%llu/%llu deleted=%llu/%llu "
		"duration=%lds end=%s",
		LOG_Q(s->logged_in ? s->user : NULL), s->cfg->peer,
		(unsigned long long)s->retrieved_msgs, (unsigned long long)s->retrieved_bytes,
		(unsigned long long)s->deleted_msgs, (unsigned long long)s->deleted_bytes,
		(long)(time(NULL) - s->started), end_name(s->end));
}

void session_free(struct session *s)
{
	if (s->mb)
		mbox_close(s->mb);
	s->mb = NULL;
	explicit_bzero(s->line, sizeof(s->line));
}

/* ---- SASL responses: base64, AUTH PLAIN, AUTH LOGIN ---- */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

/* Strict RFC 4648 base64 into out; returns the decoded length or -1. */
static long b64_decode(const char *in, unsigned char *out, size_t outsize)
{
	size_t len = strlen(in), o = 0;
	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			unsigned char c = (unsigned char)in[i + j];
			if (c == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad || (v[j] = b64_value(c)) < 0)
				return -1;
		}
		unsigned triple = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
		size_t n = 3 - (size_t)pad;
		if (o + n > outsize)
			return -1;
		out[o++] = (unsigned char)(triple >> 16);
		if (n > 1)
			out[o++] = (unsigned char)(triple >> 8);
		if (n > 2)
			out[o++] = (unsigned char)triple;
	}
	return (long)o;
}

/* A SASL response's octets: "=" is the empty response (RFC 5034), else base64. */
static long sasl_response_decode(const char *b64, unsigned char raw[MAX_SASL_LINE])
{
	return strcmp(b64, "=") == 0 ? 0 : b64_decode(b64, raw, MAX_SASL_LINE);
}

int sasl_plain_decode(const char *b64, char *user, char *pass, size_t bufsize)
{
	unsigned char raw[MAX_SASL_LINE];
	long n = sasl_response_decode(b64, raw);
	int rc = -1;
	if (n < 0)
		return -1;
	const unsigned char *authz = raw, *end = raw + n;
	const unsigned char *nul1 = memchr(authz, '\0', (size_t)n);
	const unsigned char *authc = nul1 ? nul1 + 1 : NULL;
	const unsigned char *nul2 = authc ? memchr(authc, '\0', (size_t)(end - authc)) : NULL;
	if (nul2) {
		const unsigned char *pw = nul2 + 1;
		size_t zlen = (size_t)(nul1 - authz), clen = (size_t)(nul2 - authc);
		size_t plen = (size_t)(end - pw);
		bool authz_ok = zlen == 0 || (zlen == clen && memcmp(authz, authc, zlen) == 0);
		if (authz_ok && clen > 0 && clen < bufsize && plen < bufsize &&
		    !memchr(pw, '\0', plen)) {
			memcpy(user, authc, clen);
			user[clen] = '\0';
			memcpy(pass, pw, plen);
			pass[plen] = '\0';
			rc = 0;
		}
	}
	explicit_bzero(raw, sizeof(raw));
	return rc;
}

long sasl_text_decode(const char *b64, char *out, size_t size)
{
	unsigned char raw[MAX_SASL_LINE];
	long n = sasl_response_decode(b64, raw);
	long rc = n;
	if (n >= 0 && memchr(raw, '\0', (size_t)n))
		rc = -2;
	else if (n >= 0 && (size_t)n >= size)
		rc = -1;
	else if (n >= 0) {
		memcpy(out, raw, (size_t)n);
		out[n] = '\0';
	}
	explicit_bzero(raw, sizeof(raw));
	return rc;
}
