/*
 * The client's connection on stdin/stdout: reads with a timeout, writes given
 * up when the client stops reading, the PROXY header a --trusted-proxy sends
 * first, and the loop that feeds a session until it ends.
 */
#ifndef POP3D_CLIENT_H
#define POP3D_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "options.h"
#include "outbuf.h"
#include "proxy.h"
#include "session.h"

/* The client's output: stdout, with its stall timer. */
struct client_out {
	int fd;
	unsigned timeout;
	bool armed;          /* the stall timer is running ... */
	time_t armed_at;     /* ... since this second (CLOCK_MONOTONIC_COARSE) */
	bool stalled;        /* the timer cut a write short: the client stopped reading */
};

/* SIGPIPE ignored (EPIPE instead), SIGALRM the stall timer's. 0, or -1 with errno. */
int client_install_signals(void);

/* ob buffers the client's output through co (stdout, timeout seconds a write may stall). */
int client_open(struct client_out *co, struct outbuf *ob, unsigned timeout);

/*
 * No write is under way: the session waits for input, or logs in or updates
 * the mailbox (lock waits, a scan, an fsync a stray SIGALRM must not cut). co may be NULL.
 */
void client_disarm(struct client_out *co);

/* Wait up to timeout seconds for input on stdin: >0 octets read, 0 EOF, -1 error, -2 timeout. */
ssize_t client_read(char *buf, size_t size, unsigned timeout);

/* How long one half of the session may last, counted from the session's start. */
struct time_limit {
	unsigned seconds;
	const char *what;   /* "session" or "login": the log line and the -ERR say which */
};

/* The session process's: --max-session-time. */
struct time_limit client_session_limit(const struct config *cfg);

/* The greeter's: --login-timeout, unless the session's lifetime ends first. */
struct time_limit client_greeter_limit(const struct config *cfg);

/*
 * The session's input loop, until the session ends (idle timeout, time limit,
 * EOF, QUIT, handoff). buf (CLIENT_READ_SIZE octets) holds *pending octets to
 * feed first; when the session is handed over, the octets it left unread are
 * moved to the start of buf and *pending is their count.
 */
void client_serve(struct session *s, struct outbuf *ob, struct client_out *co,
		  const struct time_limit *limit, char *buf, size_t *pending);

/* The exit status of a session that ended so. */
int client_exit_status(enum session_end end);

/*
 * The greeter, before its greeting: the whole PROXY header within
 * PROXY_TIMEOUT, mandatory from a trusted peer (peer: its address, for the
 * log). 0 with *pi what it says; what follows it stays in buf (CLIENT_READ_SIZE
 * octets, *pending of them) for the session: nothing read is lost, nothing
 * guessed. -1 (logged) for a bad header, a timeout or the connection closed.
 */
int client_read_proxy_header(const char *peer, char *buf, size_t *pending, struct proxy_info *pi);

#endif
