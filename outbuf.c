/* Buffered output to a sink. */
#include "outbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"

int outbuf_init(struct outbuf *ob, size_t cap, outbuf_write_fn fn, void *ctx)
{
	memset(ob, 0, sizeof(*ob));
	ob->data = malloc(cap);
	if (!ob->data)
		return -1;
	ob->cap = cap;
	ob->write = fn;
	ob->ctx = ctx;
	return 0;
}

void outbuf_free(struct outbuf *ob)
{
	free(ob->data);
	ob->data = NULL;
	ob->len = ob->cap = 0;
}

/* Hand buf to the sink, looping over short writes. */
static int sink_all(struct outbuf *ob, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = ob->write(ob->ctx, buf, len);
		if (n <= 0) {
			ob->failed = true;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		ob->total += (uint64_t)n;
	}
	return 0;
}

int outbuf_flush(struct outbuf *ob)
{
	if (ob->failed)
		return -1;
	int rc = sink_all(ob, ob->data, ob->len);
	ob->len = 0;
	return rc;
}

int outbuf_put(struct outbuf *ob, const void *buf, size_t len)
{
	if (ob->failed)
		return -1;
	if (len > ob->cap - ob->len) {
		if (outbuf_flush(ob) < 0)
			return -1;
		if (len >= ob->cap)  /* too big to buffer: straight through */
			return sink_all(ob, buf, len);
	}
	memcpy(ob->data + ob->len, buf, len);
	ob->len += len;
	return 0;
}

int outbuf_puts(struct outbuf *ob, const char *s)
{
	return outbuf_put(ob, s, strlen(s));
}

int outbuf_printf(struct outbuf *ob, const char *fmt, ...)
{
	char line[MAX_RESPONSE_LINE + 1];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	size_t len = (size_t)n;
	if (len >= sizeof(line)) {  /* cut to the limit, but still end the line */
		len = sizeof(line) - 1;
		if (len >= 2 && line[len - 1] != '\n') {
			line[len - 2] = '\r';
			line[len - 1] = '\n';
		}
	}
	return outbuf_put(ob, line, len);
}

char *outbuf_reserve(struct outbuf *ob, size_t n)
{
	if (ob->failed || n > ob->cap)
		return NULL;
	if (n > ob->cap - ob->len && outbuf_flush(ob) < 0)
		return NULL;
	return ob->data + ob->len;
}

void outbuf_commit(struct outbuf *ob, size_t n)
{
	ob->len += n;
}

ssize_t outbuf_fd_sink(void *ctx, const void *buf, size_t len)
{
	int fd = *(const int *)ctx;
	for (;;) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}
