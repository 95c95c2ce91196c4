/* Unit tests for outbuf.c: buffering, pass-through, short writes, failures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "outbuf.h"
#include "testutil.h"

/* ---- Helpers ---- */

/* A sink that accepts one byte per call, forwarding to a memsink. */
static ssize_t one_byte_sink(void *ctx, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	return memsink_write(ctx, buf, 1);
}

/* A sink that claims to have written nothing: must count as a failure. */
static ssize_t zero_sink(void *ctx, const void *buf, size_t len)
{
	(void)buf;
	(void)len;
	(*(int *)ctx)++;
	return 0;
}

static void new_sink(struct memsink *ms)
{
	memset(ms, 0, sizeof(*ms));
	memsink_reset(ms);
}

/* ---- Tests ---- */

static void test_put_buffers_until_flush(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	new_sink(&ms);
	assert_int_equal(outbuf_init(&ob, 64, memsink_write, &ms), 0);

	assert_int_equal(outbuf_put(&ob, "+OK", 3), 0);
	assert_int_equal(outbuf_puts(&ob, " hello\r\n"), 0);
	assert_int_equal(ms.len, 0);          /* still buffered */
	assert_int_equal(ob.len, 11);
	assert_int_equal(ob.total, 0);

	assert_int_equal(outbuf_flush(&ob), 0);
	assert_int_equal(ms.len, 11);
	assert_string_equal(memsink_str(&ms), "+OK hello\r\n");
	assert_int_equal(ob.len, 0);
	assert_int_equal(ob.total, 11);

	/* An empty flush hands nothing to the sink. */
	int writes = ms.writes;
	assert_int_equal(outbuf_flush(&ob), 0);
	assert_int_equal(ms.len, 11);
	assert_int_equal(ob.total, 11);
	assert_int_equal(ms.writes, writes);

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_printf_formats(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	new_sink(&ms);
	assert_int_equal(outbuf_init(&ob, 128, memsink_write, &ms), 0);

	assert_int_equal(outbuf_printf(&ob, "+OK %d %s (%zu)\r\n", 42, "msgs", (size_t)7), 0);
	assert_int_equal(outbuf_printf(&ob, "%s", ""), 0);
	assert_int_equal(outbuf_flush(&ob), 0);
	assert_string_equal(memsink_str(&ms), "+OK 42 msgs (7)\r\n");

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_printf_truncates_to_response_line(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	char big[MAX_RESPONSE_LINE * 2];
	new_sink(&ms);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(outbuf_init(&ob, 4096, memsink_write, &ms), 0);

	assert_int_equal(outbuf_printf(&ob, "-ERR %s\r\n", big), 0);
	assert_int_equal(outbuf_flush(&ob), 0);
	assert_int_equal(ms.len, MAX_RESPONSE_LINE);
	assert_memory_equal(ms.data, "-ERR xxx", 8);
	/* The last two octets are left free: a truncated line may end in CRLF. */
	for (size_t i = 5; i < MAX_RESPONSE_LINE - 2; i++)
		assert_int_equal(ms.data[i], 'x');

	/* Exactly MAX_RESPONSE_LINE octets pass untouched. */
	memsink_reset(&ms);
	big[MAX_RESPONSE_LINE - 2] = '\0';
	assert_int_equal(outbuf_printf(&ob, "%s\r\n", big), 0);
	assert_int_equal(outbuf_flush(&ob), 0);
	assert_int_equal(ms.len, MAX_RESPONSE_LINE);
	assert_memory_equal(ms.data + MAX_RESPONSE_LINE - 2, "\r\n", 2);

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_put_flushes_when_full(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	new_sink(&ms);
	assert_int_equal(outbuf_init(&ob, 8, memsink_write, &ms), 0);

	assert_int_equal(outbuf_put(&ob, "abcdef", 6), 0);
	assert_int_equal(ms.len, 0);
	assert_int_equal(outbuf_put(&ob, "gh", 2), 0);  /* exactly fills the buffer */
	assert_int_equal(ms.len, 0);
	assert_int_equal(outbuf_put(&ob, "ij", 2), 0);  /* no room: the 8 go out first */
	assert_int_equal(ms.len, 8);
	assert_int_equal(ob.len, 2);
	assert_int_equal(outbuf_flush(&ob), 0);
	assert_string_equal(memsink_str(&ms), "abcdefghij");
	assert_int_equal(ob.total, 10);

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_big_put_passes_straight_through(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	char big[100];
	new_sink(&ms);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('A' + i % 26);
	assert_int_equal(outbuf_init(&ob, 16, memsink_write, &ms), 0);

	assert_int_equal(outbuf_put(&ob, "12345678", 8), 0);
	assert_int_equal(outbuf_put(&ob, big, sizeof(big)), 0);
	/* Both are out without a flush, in order, and nothing stays buffered. */
	assert_int_equal(ob.len, 0);
	assert_int_equal(ms.len, 8 + sizeof(big));
	assert_memory_equal(ms.data, "12345678", 8);
	assert_memory_equal(ms.data + 8, big, sizeof(big));
	assert_int_equal(ob.total, 8 + sizeof(big));

	/* Into an empty buffer: cap octets fit and are buffered, cap + 1 go straight out. */
	assert_int_equal(outbuf_put(&ob, big, 16), 0);
	assert_int_equal(ob.len, 16);
	assert_int_equal(ms.len, 8 + sizeof(big));
	assert_int_equal(outbuf_flush(&ob), 0);
	assert_int_equal(outbuf_put(&ob, big, 17), 0);
	assert_int_equal(ob.len, 0);
	assert_int_equal(ms.len, 8 + sizeof(big) + 16 + 17);
	assert_memory_equal(ms.data + 8 + sizeof(big) + 16, big, 17);

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_reserve_commit(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	new_sink(&ms);
	assert_int_equal(outbuf_init(&ob, 16, memsink_write, &ms), 0);

	char *p = outbuf_reserve(&ob, 5);
	assert_non_null(p);
	memcpy(p, "hello", 5);
	outbuf_commit(&ob, 5);
	assert_int_equal(ob.len, 5);

	/* A reservation may be only partly used. */
	p = outbuf_reserve(&ob, 10);
	assert_non_null(p);
	memcpy(p, " you", 4);
	outbuf_commit(&ob, 4);
	assert_int_equal(ms.len, 0);

	/* Not enough room left: reserve flushes what is buffered first. */
	p = outbuf_reserve(&ob, 12);
	assert_non_null(p);
	assert_ptr_equal(p, ob.data);
	assert_int_equal(ms.len, 9);
	memcpy(p, " there", 6);
	outbuf_commit(&ob, 6);

	/* More than the whole buffer can never be reserved. */
	assert_null(outbuf_reserve(&ob, 17));
	/* The whole buffer can. */
	p = outbuf_reserve(&ob, 16);
	assert_non_null(p);
	memcpy(p, "!", 1);
	outbuf_commit(&ob, 1);

	assert_int_equal(outbuf_flush(&ob), 0);
	assert_string_equal(memsink_str(&ms), "hello you there!");

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_short_writing_sink_delivers_in_order(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	char expect[4096];
	size_t elen = 0;
	char big[300];
	new_sink(&ms);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	assert_int_equal(outbuf_init(&ob, 8, one_byte_sink, &ms), 0);

	for (int i = 0; i < 20; i++) {
		char line[32];
		int n = snprintf(line, sizeof(line), "%d ", i);
		assert_int_equal(outbuf_printf(&ob, "%d ", i), 0);
		memcpy(expect + elen, line, (size_t)n);
		elen += (size_t)n;
	}
	assert_int_equal(outbuf_put(&ob, big, sizeof(big)), 0);  /* pass-through, 1 by 1 */
	memcpy(expect + elen, big, sizeof(big));
	elen += sizeof(big);
	char *p = outbuf_reserve(&ob, 8);
	assert_non_null(p);
	memcpy(p, "END\r\n", 5);
	outbuf_commit(&ob, 5);
	memcpy(expect + elen, "END\r\n", 5);
	elen += 5;
	assert_int_equal(outbuf_flush(&ob), 0);

	assert_false(ob.failed);
	assert_int_equal(ms.len, elen);
	assert_memory_equal(ms.data, expect, elen);
	assert_int_equal(ob.total, elen);
	assert_int_equal(ms.writes, (int)elen);  /* it really was one octet per call */

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_failing_sink_sets_failed(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	new_sink(&ms);
	ms.fail_after = 1;  /* the first write succeeds, then EPIPE */
	assert_int_equal(outbuf_init(&ob, 16, memsink_write, &ms), 0);

	assert_int_equal(outbuf_puts(&ob, "first\r\n"), 0);
	assert_int_equal(outbuf_flush(&ob), 0);
	assert_string_equal(memsink_str(&ms), "first\r\n");

	assert_int_equal(outbuf_puts(&ob, "second\r\n"), 0);  /* only buffered */
	assert_false(ob.failed);
	assert_int_equal(outbuf_flush(&ob), -1);
	assert_true(ob.failed);

	/* Everything after the failure is refused. */
	assert_int_equal(outbuf_put(&ob, "x", 1), -1);
	assert_int_equal(outbuf_puts(&ob, "x"), -1);
	assert_int_equal(outbuf_printf(&ob, "%d", 1), -1);
	assert_null(outbuf_reserve(&ob, 1));
	assert_int_equal(outbuf_flush(&ob), -1);
	assert_int_equal(ms.len, 7);
	assert_int_equal(ob.total, 7);

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_failure_during_pass_through(void **state)
{
	(void)state;
	struct memsink ms;
	struct outbuf ob;
	char big[64];
	memset(big, 'z', sizeof(big));
	new_sink(&ms);
	ms.fail_after = 0;
	assert_int_equal(outbuf_init(&ob, 16, memsink_write, &ms), 0);

	assert_int_equal(outbuf_put(&ob, big, sizeof(big)), -1);
	assert_true(ob.failed);
	assert_int_equal(outbuf_put(&ob, "a", 1), -1);
	assert_int_equal(ms.len, 0);

	outbuf_free(&ob);
	memsink_reset(&ms);
}

static void test_zero_write_is_a_failure(void **state)
{
	(void)state;
	int calls = 0;
	struct outbuf ob;
	assert_int_equal(outbuf_init(&ob, 16, zero_sink, &calls), 0);

	assert_int_equal(outbuf_puts(&ob, "data"), 0);
	assert_int_equal(outbuf_flush(&ob), -1);  /* and no endless retry loop */
	assert_true(ob.failed);
	assert_int_equal(calls, 1);
	assert_int_equal(ob.total, 0);

	outbuf_free(&ob);
}

static void test_fd_sink_writes_to_fd(void **state)
{
	(void)state;
	int fds[2];
	struct outbuf ob;
	char got[64];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(outbuf_init(&ob, 16, outbuf_fd_sink, &fds[1]), 0);

	assert_int_equal(outbuf_puts(&ob, "+OK over a pipe\r\n"), 0);
	assert_int_equal(outbuf_flush(&ob), 0);
	ssize_t n = read(fds[0], got, sizeof(got));
	assert_int_equal(n, 17);
	assert_memory_equal(got, "+OK over a pipe\r\n", 17);

	/* A closed reader: EPIPE (SIGPIPE ignored) fails the buffer. */
	close(fds[0]);
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	assert_int_equal(outbuf_puts(&ob, "lost"), 0);
	assert_int_equal(outbuf_flush(&ob), -1);
	assert_true(ob.failed);
	signal(SIGPIPE, old);

	close(fds[1]);
	outbuf_free(&ob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_buffers_until_flush),
		cmocka_unit_test(test_printf_formats),
		cmocka_unit_test(test_printf_truncates_to_response_line),
		cmocka_unit_test(test_put_flushes_when_full),
		cmocka_unit_test(test_big_put_passes_straight_through),
		cmocka_unit_test(test_reserve_commit),
		cmocka_unit_test(test_short_writing_sink_delivers_in_order),
		cmocka_unit_test(test_failing_sink_sets_failed),
		cmocka_unit_test(test_failure_during_pass_through),
		cmocka_unit_test(test_zero_write_is_a_failure),
		cmocka_unit_test(test_fd_sink_writes_to_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
