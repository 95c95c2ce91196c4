/* The POP3 protocol state machine: command lines in, responses out. */
#ifndef POP3D_SESSION_H
#define POP3D_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "limits.h"
#include "mbox.h"
#include "outbuf.h"

enum login_result {
	LOGIN_OK = 0,
	LOGIN_FAILED,     /* wrong user or password: [AUTH] */
	LOGIN_IN_USE,     /* [IN-USE] */
	LOGIN_SYS_TEMP,   /* [SYS/TEMP] */
	LOGIN_SYS_PERM,   /* [SYS/PERM] */
	LOGIN_HANDOFF,    /* authenticated, the worker holds the maildrop: hand the session over */
	LOGIN_DELAY,      /* refused without a check by the failed-login throttle: [LOGIN-DELAY] */
};

/* How the client sent its credentials: method=USER|PLAIN|LOGIN in the failed-login line. */
enum login_method {
	METHOD_USER = 0,  /* USER and PASS */
	METHOD_PLAIN,     /* AUTH PLAIN */
	METHOD_LOGIN,     /* AUTH LOGIN */
	LOGIN_METHODS
};

/* Which SASL response the next line is (AUTH without its response on the line). */
enum sasl_step {
	SASL_NONE = 0,    /* none: the next line is a command */
	SASL_PLAIN,       /* AUTH PLAIN's one response */
	SASL_LOGIN_USER,  /* AUTH LOGIN, answering "Username:" */
	SASL_LOGIN_PASS,  /* AUTH LOGIN, answering "Password:" */
};

/* What the session needs from the outside world, so tests can fake it. */
struct session_backend {
	/*
	 * Authenticate and open the maildrop (*mb). why: a reason for the client.
	 * The one that checks the password logs a wrong one (the line fail2ban
	 * counts): in pop3d the authenticator, never the client-facing process.
	 */
	enum login_result (*login)(void *ctx, const char *user, const char *password,
				   enum login_method method, struct mbox **mb, char *why,
				   size_t whylen);
	/* Called after each failed login, with the number of failures so far. */
	void (*login_failed)(void *ctx, unsigned failures);
	/* Apply deletions at QUIT (mbox_update in production). */
	enum mbox_status (*update)(void *ctx, struct mbox *mb, char *why, size_t whylen);
	/* Optional: called when the maildrop has been given up (QUIT), before the answer. */
	void (*release)(void *ctx);
	/* Test builds only (POP3D_FAULT_INJECTION): the XTEST command. */
	void (*test)(void *ctx, int argc, char **args, struct outbuf *out);
	void *ctx;
};

struct session_config {
	const char *peer;              /* for log lines */
	unsigned max_failed_logins;
	unsigned max_bad_commands;
	size_t max_preauth_input;      /* octets accepted before login */
	bool plaintext_ok;             /* USER/PASS/AUTH allowed (TLS policy) */
};

enum session_state {
	STATE_AUTHORIZATION,
	STATE_TRANSACTION,
	STATE_DONE,
};

/* How the session ended; decides the exit status. */
enum session_end {
	END_NONE = 0,           /* still running */
	END_QUIT,               /* QUIT, update (if any) succeeded */
	END_UPDATE_FAILED,      /* QUIT, but the update failed */
	END_TOO_MANY_FAILURES,  /* failed logins or bad commands */
	END_EOF,                /* connection closed without QUIT */
	END_TIMEOUT,
	END_IO_ERROR,           /* write failed, mailbox unreadable mid-RETR */
	END_HANDOFF,            /* logged in: the worker goes on with the session */
};

struct session {
	enum session_state state;
	enum session_end end;
	const struct session_config *cfg;
	const struct session_backend *be;
	struct outbuf *out;
	struct mbox *mb;

	char user[MAX_SASL_LINE + 1];  /* as given: auth validates it */
	bool have_user;             /* USER was accepted, PASS may follow */
	enum sasl_step sasl;        /* waiting for an AUTH continuation line */
	bool logged_in;             /* a login succeeded (the maildrop may be closed by now) */
	unsigned failed_logins;
	unsigned bad_commands;
	size_t preauth_input;       /* octets received before login */
	size_t unread;              /* octets of the last session_feed() left unprocessed (handoff) */

	char line[MAX_SASL_LINE + 1];
	size_t line_len;            /* octets of the current line so far */
	bool overlong;              /* current line exceeded the limit: discarding */

	/* Figures for the summary log line. */
	time_t started;
	uint64_t retrieved_msgs;
	uint64_t retrieved_bytes;
	uint64_t deleted_msgs;
	uint64_t deleted_bytes;
};

void session_init(struct session *s, const struct session_config *cfg,
		  const struct session_backend *be, struct outbuf *out);
/*
 * The worker's half of a login the greeter began: the maildrop is open, the
 * counters come from the greeter. Answers the login line as try_login would.
 */
void session_resume(struct session *s, const char *user, unsigned bad_commands,
		    time_t started, struct mbox *mb);
/* The +OK greeting. */
void session_greeting(struct session *s);
/*
 * Process input octets; complete lines are executed in order. Returns s->end.
 * Stops after a login line answered LOGIN_HANDOFF: s->unread octets are left.
 */
enum session_end session_feed(struct session *s, const char *data, size_t len);
/* End without QUIT (EOF, timeout): nothing is deleted. */
void session_abort(struct session *s, enum session_end why);
/* One summary log line: user, peer, retrieved, deleted, duration, how it ended. */
void session_log_summary(const struct session *s);
/* Releases the maildrop. */
void session_free(struct session *s);

/*
 * Decode an AUTH PLAIN response (base64 of authzid NUL authcid NUL passwd)
 * into user/pass (each bufsize octets). An authzid other than "" or the
 * authcid is refused. Returns 0, or -1 for anything malformed.
 */
int sasl_plain_decode(const char *b64, char *user, char *pass, size_t bufsize);

/*
 * Decode one AUTH LOGIN response (base64 of a string; "=" or "" is the empty
 * one) into out (size octets, NUL-terminated). Returns its length, -1 when it
 * is not strict base64 or does not fit, -2 when it holds a NUL octet.
 */
long sasl_text_decode(const char *b64, char *out, size_t size);

#endif
