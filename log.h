/* Diagnostics: syslog (facility mail), stderr or a file. Never the client. */
#ifndef POP3D_LOG_H
#define POP3D_LOG_H

#include <stddef.h>
#include <syslog.h>

#include "limits.h"

/* dest: "syslog", "stderr" or a file path. Returns 0, or -1 with errno. */
int log_open(const char *dest);
void log_close(void);

/* Until log_open() is called, messages are discarded (unit tests stay quiet). */
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * s as one log field that a client cannot forge. A string of letters, digits
 * and . _ - @ + / only stays as it is (user=alice); any other is put in double
 * quotes, with '"' and '\' escaped by a '\' and every octet outside
 * 0x20..0x7e written as \xNN (user="a b\"\x80"): no blank ends it early, no
 * CR or LF a line. NULL, no such field, is -; a string "-" or "" is quoted.
 * A quoted field longer than out[size] is cut at an escape's boundary and
 * marked by ... after the closing quote. Returns out.
 * Every client-supplied string (user names, what is derived from them: the
 * mailbox path of a virtual user) goes into a log line through this function.
 */
const char *log_quote(char *out, size_t size, const char *s);

/* log_quote() into a buffer of the enclosing block: log_msg(..., "user=%s", LOG_Q(name)). */
#define LOG_Q(s) log_quote((char[MAX_LOG_FIELD]){""}, MAX_LOG_FIELD, (s))

/* Tests: every message is also passed to hook (NULL to remove). */
typedef void (*log_hook_fn)(int priority, const char *msg, void *ctx);
void log_set_hook(log_hook_fn hook, void *ctx);

#endif
