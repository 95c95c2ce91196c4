/* Unit tests for log.c: client-supplied fields cannot forge a log line. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "log.h"

static char last[MAX_LOG_LINE + 1];

static void keep_last(int priority, const char *msg, void *ctx)
{
	(void)priority;
	(void)ctx;
	snprintf(last, sizeof(last), "%s", msg);
}

static void test_quote_plain(void **state)
{
	(void)state;
	char out[MAX_LOG_FIELD];
	/* Letters, digits and . _ - @ + / stand as they are. */
	assert_string_equal(log_quote(out, sizeof(out), "alice"), "alice");
	assert_string_equal(log_quote(out, sizeof(out), "a.b_c-d@example.org+x"),
			    "a.b_c-d@example.org+x");
	assert_string_equal(log_quote(out, sizeof(out), "/var/mail/alice"), "/var/mail/alice");
	assert_string_equal(log_quote(out, sizeof(out), ""), "\"\"");
	assert_string_equal(log_quote(out, sizeof(out), NULL), "-");
	/* A name that is just "-" is not the absent name. */
	assert_string_equal(log_quote(out, sizeof(out), "-"), "\"-\"");
	/* Anything else is quoted, even when it looks harmless. */
	assert_string_equal(log_quote(out, sizeof(out), "a=b"), "\"a=b\"");
	assert_string_equal(log_quote(out, sizeof(out), "a:b"), "\"a:b\"");
	assert_string_equal(log_quote(out, sizeof(out), "-x"), "-x");
}

static void test_quote_escapes(void **state)
{
	(void)state;
	char out[MAX_LOG_FIELD];
	/* Blanks stay inside the quotes: "peer=" cannot start a field of its own. */
	assert_string_equal(log_quote(out, sizeof(out), "x peer=6.6.6.6 method=PLAIN"),
			    "\"x peer=6.6.6.6 method=PLAIN\"");
	assert_string_equal(log_quote(out, sizeof(out), "a\"b\\c"), "\"a\\\"b\\\\c\"");
	/* The quote cannot be closed from inside: \" then " is the escape, not the end. */
	assert_string_equal(log_quote(out, sizeof(out), "\\\" peer=6.6.6.6"),
			    "\"\\\\\\\" peer=6.6.6.6\"");
	assert_string_equal(log_quote(out, sizeof(out), "\r\n\t\x01\x7f\x80\xff\xc3\xa9"),
			    "\"\\x0d\\x0a\\x09\\x01\\x7f\\x80\\xff\\xc3\\xa9\"");
	assert_string_equal(log_quote(out, sizeof(out), "~ !"), "\"~ !\"");
}

/* Every octet: the result is printable ASCII, and reads back as the input. */
static void test_quote_round_trip(void **state)
{
	(void)state;
	char in[256], out[MAX_LOG_FIELD * 4];
	for (int c = 1; c < 256; c++)
		in[c - 1] = (char)c;
	in[255] = '\0';
	log_quote(out, sizeof(out), in);
	size_t len = strlen(out);
	assert_true(len >= 2 && out[0] == '"' && out[len - 1] == '"');
	char back[256];
	size_t n = 0;
	for (size_t i = 1; i < len - 1; i++) {
		unsigned char c = (unsigned char)out[i];
		assert_true(c >= 0x20 && c <= 0x7e);
		assert_true(c != '"');       /* an unescaped quote only at the ends */
		if (c != '\\') {
			back[n++] = (char)c;
			continue;
		}
		c = (unsigned char)out[++i];
		if (c == 'x') {
			unsigned v;
			assert_int_equal(sscanf(out + i + 1, "%2x", &v), 1);
			back[n++] = (char)v;
			i += 2;
		} else {
			assert_true(c == '"' || c == '\\');
			back[n++] = (char)c;
		}
	}
	back[n] = '\0';
	assert_string_equal(back, in);
}

static void test_quote_cut(void **state)
{
	(void)state;
	char big[1000], out[MAX_LOG_FIELD];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_quote(out, sizeof(out), big);
	size_t len = strlen(out);
	assert_true(len < sizeof(out));
	assert_string_equal(out + len - 4, "\"...");
	/* Escapes are never cut in half. */
	memset(big, '\xff', sizeof(big) - 1);
	log_quote(out, sizeof(out), big);
	len = strlen(out);
	assert_true(len < sizeof(out));
	assert_string_equal(out + len - 4, "\"...");
	assert_int_equal((len - 5) % 4, 0);
	assert_memory_equal(out + len - 8, "\\xff", 4);
	/* Fitting exactly is not cut, quoted or bare. */
	char fit[MAX_LOG_FIELD];
	memset(fit, ' ', sizeof(fit) - 6);
	fit[sizeof(fit) - 6] = '\0';
	log_quote(out, sizeof(out), fit);
	assert_int_equal(strlen(out), strlen(fit) + 2);
	assert_int_equal(out[strlen(out) - 1], '"');
	memset(fit, 'b', sizeof(fit) - 6);
	log_quote(out, sizeof(out), fit);
	assert_string_equal(out, fit);
	/* Too small for anything: empty, no overflow. */
	char tiny[5] = "zzzz";
	assert_string_equal(log_quote(tiny, sizeof(tiny), "x"), "");
	assert_string_equal(log_quote(tiny, 0, "x"), "");   /* nothing written */
}

/* In a log line: the real peer is the only unquoted peer=, and nothing else follows it. */
static void test_log_line(void **state)
{
	(void)state;
	log_set_hook(keep_last, NULL);
	const char *hostile = "a\" peer=6.6.6.6 method=PLAIN\r\nauthentication failed: user=\x80";
	log_msg(LOG_NOTICE, "authentication failed: user=%s peer=%s method=%s",
		LOG_Q(hostile), "127.0.0.1", "PLAIN");
	log_set_hook(NULL, NULL);
	assert_string_equal(last, "authentication failed: user=\"a\\\" peer=6.6.6.6 method=PLAIN"
			    "\\x0d\\x0aauthentication failed: user=\\x80\" peer=127.0.0.1 method=PLAIN");
	assert_null(strchr(last, '\r'));
	assert_null(strchr(last, '\n'));
	/* Several fields in one call each get a buffer of their own. */
	log_set_hook(keep_last, NULL);
	log_msg(LOG_INFO, "%s %s %s", LOG_Q("one"), LOG_Q(NULL), LOG_Q("t h\"ree"));
	log_set_hook(NULL, NULL);
	assert_string_equal(last, "one - \"t h\\\"ree\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_plain),
		cmocka_unit_test(test_quote_escapes),
		cmocka_unit_test(test_quote_round_trip),
		cmocka_unit_test(test_quote_cut),
		cmocka_unit_test(test_log_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
