/* Unit tests: every log line kept in memory (log.h's hook), so a test asserts what was said. */
#ifndef POP3D_TEST_LOGCAPTURE_H
#define POP3D_TEST_LOGCAPTURE_H

#include <stdio.h>
#include <string.h>

#include "log.h"

/* Every log line since the capture began or was emptied (logged[0] = '\0'), one after the other. */
static char logged[8192];

static inline void logcapture_line(int priority, const char *msg, void *ctx)
{
	(void)priority;
	(void)ctx;
	size_t len = strlen(logged);
	snprintf(logged + len, sizeof(logged) - len, "%s\n", msg);
}

/* cmocka setup: capture from an empty buffer. */
static inline int logcapture_setup(void **state)
{
	(void)state;
	logged[0] = '\0';
	log_set_hook(logcapture_line, NULL);
	return 0;
}

/* cmocka teardown: stop capturing. */
static inline int logcapture_teardown(void **state)
{
	(void)state;
	log_set_hook(NULL, NULL);
	return 0;
}

#endif
