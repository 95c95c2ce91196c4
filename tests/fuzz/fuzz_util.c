/* Helpers shared by the fuzz targets. */
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: check failed: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

FZ_UNTRACED ssize_t fz_sink_write(void *ctx, const void *buf, size_t len)
{
	struct fz_sink *s = ctx;
	if (len == 0)
		return 0;
	if (len > s->cap - s->len) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap - s->len < len) {
			if (cap > SIZE_MAX / 2)
				fz_fail(__FILE__, __LINE__, "cap", "sink too large");
			cap *= 2;
		}
		char *p = realloc(s->data, cap);
		if (!p)
			fz_fail(__FILE__, __LINE__, "realloc", "out of memory");
		s->data = p;
		s->cap = cap;
	}
	memcpy(s->data + s->len, buf, len);
	s->len += len;
	return (ssize_t)len;
}

void fz_sink_clear(struct fz_sink *s)
{
	s->len = 0;
}

void fz_memfd_set(int fd, const void *data, size_t len)
{
	if (ftruncate(fd, 0) < 0)
		fz_fail(__FILE__, __LINE__, "ftruncate", "%s", strerror(errno));
	const char *p = data;
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, p + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fz_fail(__FILE__, __LINE__, "pwrite", "%s", strerror(errno));
		done += (size_t)n;
	}
}

int fz_memfd(const void *data, size_t len)
{
	int fd = memfd_create("pop3d-fuzz", MFD_CLOEXEC);
	if (fd < 0)
		fz_fail(__FILE__, __LINE__, "memfd_create", "%s", strerror(errno));
	fz_memfd_set(fd, data, len);
	return fd;
}

FZ_UNTRACED bool fz_crlf_only(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			return false;
	return len == 0 || (len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n');
}
