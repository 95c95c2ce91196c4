/* Diagnostics: syslog (facility mail), stderr or a file. Never the client. */
#ifndef POP3D_LOG_H
#define POP3D_LOG_H

#include <syslog.h>

/* dest: "syslog", "stderr" or a file path. Returns 0, or -1 with errno. */
int log_open(const char *dest);
void log_close(void);

/* Until log_open() is called, messages are discarded (unit tests stay quiet). */
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Tests: every message is also passed to hook (NULL to remove). */
typedef void (*log_hook_fn)(int priority, const char *msg, void *ctx);
void log_set_hook(log_hook_fn hook, void *ctx);

#endif
