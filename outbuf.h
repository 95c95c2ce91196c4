/* Buffered output to a sink: the client socket, or memory in tests. */
#ifndef POP3D_OUTBUF_H
#define POP3D_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes up to len bytes; returns how many (> 0) or -1 on error. */
typedef ssize_t (*outbuf_write_fn)(void *ctx, const void *buf, size_t len);

struct outbuf {
	char *data;
	size_t len;          /* bytes buffered */
	size_t cap;
	outbuf_write_fn write;
	void *ctx;
	bool failed;         /* a write failed: everything after is dropped */
	uint64_t total;      /* bytes handed to the sink so far */
};

int outbuf_init(struct outbuf *ob, size_t cap, outbuf_write_fn fn, void *ctx);
void outbuf_free(struct outbuf *ob);

/* Each returns 0, or -1 once the sink has failed. */
int outbuf_put(struct outbuf *ob, const void *buf, size_t len);
int outbuf_puts(struct outbuf *ob, const char *s);
/* One formatted line of at most MAX_RESPONSE_LINE octets (truncated). */
int outbuf_printf(struct outbuf *ob, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int outbuf_flush(struct outbuf *ob);

/* Room for n (<= cap) bytes written in place, then outbuf_commit(). NULL on failure. */
char *outbuf_reserve(struct outbuf *ob, size_t n);
void outbuf_commit(struct outbuf *ob, size_t n);

/* A sink writing to a file descriptor (ctx points at an int), retrying EINTR. */
ssize_t outbuf_fd_sink(void *ctx, const void *buf, size_t len);

#endif
