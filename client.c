/* The client's connection: reads with timeouts, writes with a stall timer, the serve loop. */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exitcode.h"
#include "log.h"

/* Set by SIGALRM: a write to the client has stalled past the timeout. */
static volatile sig_atomic_t write_timed_out;

/*
 * Start the stall timer for a write. alarm(2) is a system call, and RETR of
 * a large message is thousands of writes: the timer is re-armed at most once
 * a second, for one second more than the timeout, so that a write stalls for
 * at least the timeout (and at most a second longer) before it is given up.
 */
static void arm_write_timer(struct client_out *co)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &now) < 0)
		now.tv_sec = co->armed_at + 1;   /* no clock: re-arm every time */
	if (co->armed && now.tv_sec == co->armed_at)
		return;
	write_timed_out = 0;
	alarm(co->timeout + 1);
	co->armed = true;
	co->armed_at = now.tv_sec;
}

/*
 * No write is under way: the session waits for input, or logs in or updates
 * the mailbox (lock waits, a scan, an fsync a stray SIGALRM must not cut).
 */
void client_disarm(struct client_out *co)
{
	if (!co || !co->armed)
		return;
	alarm(0);
	co->armed = false;
	write_timed_out = 0;
}

static void on_alarm(int sig)
{
	(void)sig;
	write_timed_out = 1;
}

int client_install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;  /* a closed connection shows up as EPIPE */
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -1;
	sa.sa_handler = on_alarm;  /* no SA_RESTART: a stalled write returns EINTR */
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGALRM, &sa, NULL);
}

/* Writes to the client, giving up when one write stalls for the whole timeout. */
static ssize_t client_write(void *ctx, const void *buf, size_t len)
{
	struct client_out *co = ctx;
	if (co->stalled) {   /* not another whole timeout for the rest of a cut write */
		errno = ETIMEDOUT;
		return -1;
	}
	arm_write_timer(co);
	ssize_t n;
	do {
		n = write(co->fd, buf, len);
	} while (n < 0 && errno == EINTR && !write_timed_out);
	if (write_timed_out && (n < 0 || (size_t)n < len)) {
		co->stalled = true;
		log_msg(LOG_NOTICE, "the client stopped reading: a write stalled for %u s",
			co->timeout);
	}
	return n;
}

/* Wait for input: >0 bytes read, 0 EOF, -1 error, -2 timeout. */
ssize_t client_read(char *buf, size_t size, unsigned timeout)
{
	struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
	for (;;) {
		int r = poll(&pfd, 1, (int)timeout * 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return -2;
		ssize_t n = read(STDIN_FILENO, buf, size);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n;
	}
}

struct time_limit client_session_limit(const struct config *cfg)
{
	return (struct time_limit){.seconds = cfg->max_session_time, .what = "session"};
}

struct time_limit client_greeter_limit(const struct config *cfg)
{
	if (cfg->login_timeout < cfg->max_session_time)
		return (struct time_limit){.seconds = cfg->login_timeout, .what = "login"};
	return client_session_limit(cfg);
}

/* Seconds until the session's lifetime ends (at least 1 while it lasts). */
static unsigned lifetime_left(const struct session *s, unsigned max_time)
{
	time_t used = time(NULL) - s->started;
	if (used < 0)
		used = 0;
	return (time_t)max_time > used ? (unsigned)((time_t)max_time - used) : 0;
}

void client_serve(struct session *s, struct outbuf *ob, struct client_out *co,
		  const struct time_limit *limit, char *buf, size_t *pending)
{
	unsigned timeout = co->timeout;
	if (*pending)
		session_feed(s, buf, *pending);
	ssize_t n = (ssize_t)*pending;
	while (s->end == END_NONE) {
		if (outbuf_flush(ob) < 0) {
			session_abort(s, END_IO_ERROR);
			break;
		}
		unsigned left = lifetime_left(s, limit->seconds);
		if (left == 0) {
			log_msg(LOG_NOTICE, "%s time limit of %u s reached: peer=%s", limit->what,
				limit->seconds, s->cfg->peer);
			outbuf_printf(ob, "-ERR %s time limit reached, closing\r\n", limit->what);
			session_abort(s, END_TIMEOUT);
			break;
		}
		client_disarm(co);
		n = client_read(buf, CLIENT_READ_SIZE, left < timeout ? left : timeout);
		if (n == -2 && left <= timeout)
			continue;  /* the lifetime, not the idle timer, ran out */
		if (n == -2) {
			log_msg(LOG_NOTICE, "autologout timer expired after %u s: peer=%s",
				timeout, s->cfg->peer);
			outbuf_puts(ob, "-ERR autologout timer expired, closing\r\n");
			session_abort(s, END_TIMEOUT);
		} else if (n <= 0) {
			session_abort(s, n == 0 ? END_EOF : END_IO_ERROR);
		} else {
			session_feed(s, buf, (size_t)n);
		}
	}
	*pending = 0;
	if (s->end == END_HANDOFF && n > 0 && s->unread > 0) {
		memmove(buf, buf + (size_t)n - s->unread, s->unread);
		*pending = s->unread;
	}
	outbuf_flush(ob);
	client_disarm(co);
	if (ob->failed && s->end == END_QUIT)
		log_msg(LOG_NOTICE, "connection lost before the QUIT answer: peer=%s", s->cfg->peer);
}

int client_exit_status(enum session_end end)
{
	switch (end) {
	case END_QUIT: return EXIT_OK;
	case END_UPDATE_FAILED: return EXIT_UPDATE;
	default: return EXIT_SESSION;
	}
}

int client_open(struct client_out *co, struct outbuf *ob, unsigned timeout)
{
	*co = (struct client_out){.fd = STDOUT_FILENO, .timeout = timeout};
	if (outbuf_init(ob, OUTBUF_SIZE, client_write, co) < 0) {
		log_msg(LOG_ERR, "out of memory");
		return -1;
	}
	return 0;
}

int client_read_proxy_header(const char *peer, char *buf, size_t *pending, struct proxy_info *pi)
{
	time_t deadline = time(NULL) + PROXY_TIMEOUT;
	size_t len = 0;
	for (;;) {
		size_t used;
		char why[MAX_REASON_LEN];
		enum proxy_status st = proxy_parse((const unsigned char *)buf, len, &used, pi,
						   why, sizeof(why));
		if (st == PROXY_OK) {
			memmove(buf, buf + used, len - used);
			*pending = len - used;
			return 0;
		}
		if (st == PROXY_BAD) {
			log_msg(LOG_WARNING, "bad PROXY header from trusted peer %s: %s; closing",
				peer, why);
			return -1;
		}
		time_t left = deadline - time(NULL);
		ssize_t n = left > 0 ? client_read(buf + len, CLIENT_READ_SIZE - len, (unsigned)left) : -2;
		if (n <= 0) {
			log_msg(LOG_WARNING, "%s PROXY header from trusted peer %s; closing",
				n == -2 ? "timeout waiting for the" : "connection closed before the",
				peer);
			return -1;
		}
		len += (size_t)n;
	}
}
