/* Diagnostics: syslog (facility mail), stderr or a file. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"

enum log_dest { DEST_NONE, DEST_SYSLOG, DEST_FD };

/* The log destination is part of the parsed configuration. */
static enum log_dest dest = DEST_NONE;
static int log_fd = -1;
static log_hook_fn hook;
static void *hook_ctx;

int log_open(const char *where)
{
	log_close();
	if (strcmp(where, "syslog") == 0) {
		openlog(POP3D_NAME, LOG_PID | LOG_NDELAY, LOG_MAIL);
		dest = DEST_SYSLOG;
		return 0;
	}
	if (strcmp(where, "stderr") == 0) {
		log_fd = STDERR_FILENO;
		dest = DEST_FD;
		return 0;
	}
	int fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return -1;
	log_fd = fd;
	dest = DEST_FD;
	return 0;
}

void log_close(void)
{
	if (dest == DEST_SYSLOG)
		closelog();
	if (dest == DEST_FD && log_fd > STDERR_FILENO)
		close(log_fd);
	dest = DEST_NONE;
	log_fd = -1;
}

void log_set_hook(log_hook_fn fn, void *ctx)
{
	hook = fn;
	hook_ctx = ctx;
}

/* One line, written with a single write() so concurrent sessions don't interleave. */
static void log_to_fd(const char *msg)
{
	/*
	 * As long as this line needs (msg is under MAX_LOG_LINE): the one
	 * variable-length array of pop3d, whose page-by-page probes are how
	 * hardening-check sees -fstack-clash-protection at all.
	 */
	char line[LOG_PREFIX_SIZE + strnlen(msg, MAX_LOG_LINE) + 2];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02dZ %s[%ld]: %s\n",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, POP3D_NAME, (long)getpid(), msg);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if ((size_t)n >= sizeof(line))
		line[len - 1] = '\n';
	while (write(log_fd, line, len) < 0 && errno == EINTR)
		;
}

/* ---- Quoting a field ---- */

/* c as it is, or its escape (\x80, \", \\), in out[5]; returns the length. */
static size_t escape_octet(unsigned char c, char out[5])
{
	static const char hex[] = "0123456789abcdef";
	if (c == '"' || c == '\\') {
		out[0] = '\\';
		out[1] = (char)c;
		return 2;
	}
	if (c < 0x20 || c > 0x7e) {
		out[0] = '\\';
		out[1] = 'x';
		out[2] = hex[c >> 4];
		out[3] = hex[c & 15];
		return 4;
	}
	out[0] = (char)c;
	return 1;
}

/* An octet that may stand in a field unquoted: nothing a reader could take for a field's end. */
static bool bare_octet(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '@' || c == '+' || c == '/';
}

/* s as it is: not empty, not "-" (no field), and bare octets only. */
static bool bare_field(const char *s)
{
	if (!*s || strcmp(s, "-") == 0)
		return false;
	for (; *s; s++)
		if (!bare_octet((unsigned char)*s))
			return false;
	return true;
}

const char *log_quote(char *out, size_t size, const char *s)
{
	static const char cut[] = "\"...";
	if (size < sizeof(cut) + 1) {          /* no room even for "" and the mark */
		if (size > 0)
			out[0] = '\0';
		return out;
	}
	if (!s || (bare_field(s) && strlen(s) < size - sizeof(cut))) {
		snprintf(out, size, "%s", s ? s : "-");
		return out;
	}
	size_t n = 0;
	out[n++] = '"';
	for (; *s; s++) {
		char esc[5];
		size_t len = escape_octet((unsigned char)*s, esc);
		if (len > size - n - sizeof(cut)) {    /* keep room for the closing mark */
			memcpy(out + n, cut, sizeof(cut));
			return out;
		}
		memcpy(out + n, esc, len);
		n += len;
	}
	out[n++] = '"';
	out[n] = '\0';
	return out;
}

/* Control characters from a peer must not forge log lines. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void log_msg(int priority, const char *fmt, ...)
{
	if (dest == DEST_NONE && !hook)
		return;
	int saved = errno;
	char msg[MAX_LOG_LINE];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sanitize(msg);
	if (hook)
		hook(priority, msg, hook_ctx);
	if (dest == DEST_SYSLOG)
		syslog(priority, "%s", msg);
	else if (dest == DEST_FD)
		log_to_fd(msg);
	errno = saved;
}
