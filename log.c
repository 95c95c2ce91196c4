/* Diagnostics: syslog (facility mail), stderr or a file. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
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
	char line[1024];
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
