/*
 * Fuzz target: the POP3 state machine fed arbitrary client octets, before and
 * after login. The session runs against a real mbox index (mbox_open_fd on a
 * memfd holding a fixed small mailbox) through a fake backend whose login
 * accepts one user/password, so the fuzzer reaches TRANSACTION (the seeds log
 * in). Nothing sleeps: a failed login costs no delay here.
 *
 * Each input runs twice: fed whole into a large output buffer, and fed in
 * small pieces of changing sizes into a small one. Both transcripts must be
 * identical (line assembly must not depend on how reads split the input), and
 * every transcript must be well-formed: CRLF line ends only, no line longer
 * than MAX_RESPONSE_LINE, no NUL, never the password. No user name that is not
 * UTF-8, or holds a control character, reaches the backend (USER, AUTH PLAIN
 * and AUTH LOGIN, with or without UTF8).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz_util.h"
#include "limits.h"
#include "log.h"
#include "mbox.h"
#include "outbuf.h"
#include "session.h"

#define FZ_USER     "alice"
#define FZ_PASSWORD "s3cr3t-pw"
#define FZ_PREAUTH  2048   /* a small pre-login cap, so the fuzzer can cross it */
#define SMALL_OUTBUF (MAX_RESPONSE_LINE + 88)

/*
 * The maildrop: a hidden pseudo message, dot lines, CRLF lines, a byte-identical
 * pair (UIDL suffixes), an empty message and a last line without LF. Every
 * line is short, so any response line over MAX_RESPONSE_LINE is a bug.
 */
static const char MAILBOX[] =
	"From MAILER-DAEMON Mon Nov  2 09:14:07 2026\n"
	"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
	"X-IMAP: 1604308447 0000000004\n"
	"\n"
	"pseudo\n"
	"\n"
	"From a@example.org Mon Nov  2 10:00:00 2026\n"
	"Subject: one\n"
	"\n"
	".dot\n"
	"..two\n"
	".\n"
	"\n"
	"From b@example.org Mon Nov  2 11:00:00 2026\n"
	"Subject: crlf\r\n"
	"Status: RO\r\n"
	"\r\n"
	"body\r\n"
	">From quoted\r\n"
	"\n"
	"From c@example.org Mon Nov  2 12:00:00 2026\n"
	"Subject: twin\n"
	"\n"
	"same\n"
	"\n"
	"From c@example.org Mon Nov  2 12:00:00 2026\n"
	"Subject: twin\n"
	"\n"
	"same\n"
	"\n"
	"From d@example.org Mon Nov  2 13:00:00 2026\n"
	"\n"
	"From e@example.org Mon Nov  2 14:00:00 2026\n"
	"Subject: no final newline\n"
	"\n"
	"line 1\n"
	"line 2";

/* Piece sizes for the second run, used in turn. */
static const size_t PIECES[] = { 1, 2, 3, 5, 8, 13, 64, 254, 255, 256, 1000 };

struct fz_ctx {
	int mbox_fd;               /* the memfd; each login scans a dup of it */
	const struct session *s;   /* the session being run */
	unsigned updates;
};

/* The log never gets a control character (a client must not forge lines). */
static void check_log(int priority, const char *msg, void *ctx)
{
	(void)priority;
	(void)ctx;
	size_t len = strlen(msg);
	FZ_CHECK(len < 900, "log line of %zu octets", len);
	for (size_t i = 0; i < len; i++)
		FZ_CHECK((unsigned char)msg[i] >= 0x20 && msg[i] != 0x7f,
			 "control character in log line: %s", msg);
}

static enum login_result fz_login(void *ctx, const char *user, const char *password,
				  enum login_method method, struct mbox **mb, char *why,
				  size_t whylen)
{
	struct fz_ctx *c = ctx;
	FZ_CHECK(method < LOGIN_METHODS, "a login method out of range");
	/* Client input before login never runs with a maildrop open. */
	FZ_CHECK(c->s->state == STATE_AUTHORIZATION && c->s->mb == NULL, "login while logged in");
	FZ_CHECK(strlen(user) <= MAX_SASL_LINE && strlen(password) <= MAX_SASL_LINE,
		 "over-long credentials reached the backend");
	/* USER, AUTH PLAIN and AUTH LOGIN all refuse a name that is not UTF-8 before this. */
	FZ_CHECK(!auth_name_encoding_problem(user), "a user name that is %s reached the backend",
		 auth_name_encoding_problem(user));
	if (strcmp(user, "inuse") == 0) {
		snprintf(why, whylen, "mailbox is in use by another session");
		return LOGIN_IN_USE;
	}
	if (strcmp(user, "temp") == 0)
		return LOGIN_SYS_TEMP;   /* no reason: the session supplies one */
	if (strcmp(user, "perm") == 0) {
		snprintf(why, whylen, "not an mbox file");
		return LOGIN_SYS_PERM;
	}
	if (strcmp(user, FZ_USER) != 0 || strcmp(password, FZ_PASSWORD) != 0)
		return LOGIN_FAILED;
	int fd = dup(c->mbox_fd);
	FZ_CHECK(fd >= 0, "dup");
	struct mbox_options opt;
	mbox_default_options(&opt);
	enum mbox_status st = mbox_open_fd(mb, fd, &opt, why, whylen);
	FZ_CHECK(st == MBOX_OK, "the fixed mailbox did not open: %s", why);
	return LOGIN_OK;
}

static void fz_login_failed(void *ctx, unsigned failures)
{
	(void)ctx;
	FZ_CHECK(failures >= 1 && failures <= MAX_FAILED_LOGINS, "failures=%u", failures);
}

/* Applies nothing; "fails" when exactly two messages are deleted, to reach that path. */
static enum mbox_status fz_update(void *ctx, struct mbox *mb, char *why, size_t whylen)
{
	struct fz_ctx *c = ctx;
	c->updates++;
	FZ_CHECK(mb == c->s->mb && c->updates == 1, "update of a foreign maildrop or twice");
	size_t deleted = 0;
	for (size_t i = 1; i <= mbox_count(mb); i++)
		deleted += mbox_msg(mb, i)->deleted;
	FZ_CHECK(deleted > 0, "update without deletions");
	if (deleted == 2) {
		snprintf(why, whylen, "disk full");
		return MBOX_TEMP;
	}
	return MBOX_OK;
}

/* Well-formed transcript: CRLF only, short lines, no NUL, no password. */
static void check_transcript(const char *out, size_t len)
{
	static const char greeting[] = "+OK " POP3D_NAME " ready\r\n";
	FZ_CHECK(len >= sizeof(greeting) - 1 && memcmp(out, greeting, sizeof(greeting) - 1) == 0,
		 "no greeting");
	FZ_CHECK(fz_crlf_only(out, len), "a line does not end in CRLF");
	FZ_CHECK(!memchr(out, '\0', len), "NUL octet in the output");
	FZ_CHECK(!memmem(out, len, FZ_PASSWORD, sizeof(FZ_PASSWORD) - 1), "password echoed");
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (out[i] != '\n')
			continue;
		FZ_CHECK(i + 1 - start <= MAX_RESPONSE_LINE, "line of %zu octets", i + 1 - start);
		start = i + 1;
	}
}

/* After each feed: the state and the end agree; no maildrop before login. */
static void check_state(const struct session *s)
{
	FZ_CHECK((s->state == STATE_DONE) == (s->end != END_NONE), "state %d end %d",
		 (int)s->state, (int)s->end);
	if (s->state == STATE_AUTHORIZATION)
		FZ_CHECK(s->mb == NULL, "maildrop open before login");
	if (s->state == STATE_TRANSACTION)
		FZ_CHECK(s->mb != NULL, "logged in without a maildrop");
	FZ_CHECK(s->failed_logins <= MAX_FAILED_LOGINS && s->bad_commands <= MAX_BAD_COMMANDS,
		 "counters past their limits");
}

struct outcome {
	enum session_end end;
	bool preauth_exceeded;
};

/* One session over data, fed in pieces (whole when piecewise is false). */
static struct outcome run(struct fz_ctx *c, const uint8_t *data, size_t size, bool piecewise,
			  struct fz_sink *sink)
{
	static const struct session_config cfg = {
		.peer = "fuzz",
		.max_failed_logins = MAX_FAILED_LOGINS,
		.max_bad_commands = MAX_BAD_COMMANDS,
		.max_preauth_input = FZ_PREAUTH,
		.plaintext_ok = true,
	};
	const struct session_backend be = {
		.login = fz_login, .login_failed = fz_login_failed, .update = fz_update, .ctx = c,
	};
	struct outbuf ob;
	struct session s;
	fz_sink_clear(sink);
	FZ_CHECK(outbuf_init(&ob, piecewise ? SMALL_OUTBUF : OUTBUF_SIZE, fz_sink_write, sink) == 0,
		 "outbuf_init");
	c->s = &s;
	c->updates = 0;
	session_init(&s, &cfg, &be, &ob);
	session_greeting(&s);
	size_t pos = 0;
	for (unsigned k = 0; pos < size && s.end == END_NONE; k++) {
		size_t n = piecewise ? PIECES[k % (sizeof(PIECES) / sizeof(PIECES[0]))] : size;
		if (n > size - pos)
			n = size - pos;
		session_feed(&s, (const char *)data + pos, n);
		check_state(&s);
		pos += n;
	}
	if (s.end == END_NONE)
		session_abort(&s, END_EOF);
	struct outcome o = { s.end, s.preauth_input > FZ_PREAUTH };
	outbuf_flush(&ob);
	session_log_summary(&s);
	session_free(&s);
	outbuf_free(&ob);
	c->s = NULL;
	check_transcript(sink->data, sink->len);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int mbox_fd = -1;   /* made once: the mailbox never changes */
	static struct fz_sink whole, pieces;
	if (mbox_fd < 0)
		mbox_fd = fz_memfd(MAILBOX, sizeof(MAILBOX) - 1);
	log_set_hook(check_log, NULL);
	struct fz_ctx c = { .mbox_fd = mbox_fd };
	struct outcome a = run(&c, data, size, false, &whole);
	struct outcome b = run(&c, data, size, true, &pieces);
	log_set_hook(NULL, NULL);
	/* The pre-login cap counts octets as they arrive: there the split matters. */
	if (a.preauth_exceeded || b.preauth_exceeded)
		return 0;
	FZ_CHECK(a.end == b.end, "end %d whole, %d in pieces", (int)a.end, (int)b.end);
	FZ_CHECK(whole.len == pieces.len && memcmp(whole.data, pieces.data, whole.len) == 0,
		 "transcripts differ between whole and piecewise input");
	return 0;
}
