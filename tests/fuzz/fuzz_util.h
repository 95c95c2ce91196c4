/* Helpers shared by the fuzz targets: checks that abort, a memory sink, a memfd. */
#ifndef POP3D_FUZZ_UTIL_H
#define POP3D_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * For the checking code's byte loops: they need no coverage feedback, and
 * their comparison hooks would slow the fuzzer down several times.
 */
#if defined(__clang__)
#define FZ_UNTRACED __attribute__((no_sanitize("coverage")))
#else
#define FZ_UNTRACED
#endif

/* The entry point every target defines (libFuzzer's, also used by AFL++ and driver.c). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken property is a crash: the fuzzer saves the input that caused it. */
#define FZ_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
			fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

/* An outbuf sink collecting everything in memory. */
struct fz_sink {
	char *data;
	size_t len;
	size_t cap;
};
FZ_UNTRACED ssize_t fz_sink_write(void *ctx, const void *buf, size_t len);
void fz_sink_clear(struct fz_sink *s);   /* empty, memory kept */

/* A memfd holding exactly data[0..len); aborts on failure. */
int fz_memfd(const void *data, size_t len);
/* Replace the contents of a memfd. */
void fz_memfd_set(int fd, const void *data, size_t len);

/* Every LF is preceded by a CR, and the data ends with CRLF (or is empty). */
FZ_UNTRACED bool fz_crlf_only(const char *data, size_t len);

#endif
