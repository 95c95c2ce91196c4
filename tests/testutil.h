/* Helpers shared by the cmocka unit tests. */
#ifndef POP3D_TESTUTIL_H
#define POP3D_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "outbuf.h"

/* An outbuf sink that collects everything in memory. */
struct memsink {
	char *data;
	size_t len;
	size_t cap;
	int fail_after;   /* >= 0: fail once this many writes succeeded */
	int writes;
};
ssize_t memsink_write(void *ctx, const void *buf, size_t len);
void memsink_reset(struct memsink *ms);
/* NUL-terminated copy of what was collected (owned by the sink). */
const char *memsink_str(struct memsink *ms);

/* A fresh private directory under tests/tmp (removed by rm -rf at the end). */
const char *test_tmpdir(void);
/* dir/name; static buffer rotated over 4 calls. */
const char *test_path(const char *name);
/* Write / append len bytes; abort the test on error. */
void test_write_file(const char *path, const void *data, size_t len);
void test_append_file(const char *path, const void *data, size_t len);
/* Whole file into a malloc'd NUL-terminated buffer; *len its size. NULL if missing. */
char *test_read_file(const char *path, size_t *len);
/* An fd open on an unlinked temporary file holding data. */
int test_memfd(const void *data, size_t len);

#endif
