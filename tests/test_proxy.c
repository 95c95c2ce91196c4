/* Unit tests for proxy.c: PROXY protocol v1 and v2 headers, every malformed shape, --trusted-proxy. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy.h"

static enum proxy_status parse(const void *buf, size_t len, size_t *used, struct proxy_info *pi)
{
	char why[128];
	return proxy_parse(buf, len, used, pi, why, sizeof(why));
}

static enum proxy_status parse_str(const char *s, size_t *used, struct proxy_info *pi)
{
	return parse(s, strlen(s), used, pi);
}

/* ---- v1 ---- */

static void test_v1_tcp4_and_what_follows(void **state)
{
	(void)state;
	const char *in = "PROXY TCP4 203.0.113.7 192.0.2.1 40000 110\r\nUSER alice\r\n";
	size_t used;
	struct proxy_info pi;
	assert_int_equal(parse_str(in, &used, &pi), PROXY_OK);
	assert_int_equal(used, strlen("PROXY TCP4 203.0.113.7 192.0.2.1 40000 110\r\n"));
	assert_true(pi.have_addr);
	assert_string_equal(pi.addr, "203.0.113.7");
	assert_false(pi.tls);
}

static void test_v1_tcp6_canonical(void **state)
{
	(void)state;
	size_t used;
	struct proxy_info pi;
	assert_int_equal(parse_str("PROXY TCP6 2001:DB8:0:0::1 ::1 1 65535\r\n", &used, &pi), PROXY_OK);
	assert_string_equal(pi.addr, "2001:db8::1");
}

/* A dual-stack HAProxy's IPv4 client: the IPv4 address, as the socket path gives it. */
static void test_v1_tcp6_v4_mapped(void **state)
{
	(void)state;
	size_t used;
	struct proxy_info pi;
	assert_int_equal(parse_str("PROXY TCP6 ::ffff:192.0.2.55 ::ffff:10.0.0.1 1234 110\r\n",
				   &used, &pi), PROXY_OK);
	assert_true(pi.have_addr);
	assert_string_equal(pi.addr, "192.0.2.55");
}

static void test_v1_unknown_keeps_the_proxy(void **state)
{
	(void)state;
	size_t used;
	struct proxy_info pi;
	assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &used, &pi), PROXY_OK);
	assert_false(pi.have_addr);
	assert_int_equal(used, 15);
	assert_int_equal(parse_str("PROXY UNKNOWN ffff::1 ::1 1 2\r\nX", &used, &pi), PROXY_OK);
	assert_false(pi.have_addr);
	assert_int_equal(used, 31);
}

static void test_v1_prefixes_want_more(void **state)
{
	(void)state;
	const char *full = "PROXY TCP4 203.0.113.7 192.0.2.1 40000 110\r\n";
	size_t used;
	struct proxy_info pi;
	for (size_t n = 0; n < strlen(full); n++)
		assert_int_equal(parse(full, n, &used, &pi), PROXY_MORE);
}

static void test_v1_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"PROXY TCP4 203.0.113.7 192.0.2.1 40000 110\n",        /* LF without CR */
		"PROXY TCP4 203.0.113.7 192.0.2.1 40000\r\n",          /* a field missing */
		"PROXY TCP4 203.0.113.7 192.0.2.1 40000 110 7\r\n",    /* one too many */
		"PROXY TCP4  203.0.113.7 192.0.2.1 40000 110\r\n",     /* doubled space */
		"PROXY TCP4 203.0.113.7 192.0.2.1 40000 110 \r\n",     /* trailing space */
		"PROXY TCP4 2001:db8::1 192.0.2.1 40000 110\r\n",      /* v6 address as TCP4 */
		"PROXY TCP6 203.0.113.7 ::1 40000 110\r\n",            /* v4 address as TCP6 */
		"PROXY TCP4 203.0.113.777 192.0.2.1 40000 110\r\n",    /* not an address */
		"PROXY TCP4 203.0.113.7 192.0.2.1 65536 110\r\n",      /* port too large */
		"PROXY TCP4 203.0.113.7 192.0.2.1 040000 110\r\n",     /* leading zero */
		"PROXY TCP4 203.0.113.7 192.0.2.1 -1 110\r\n",         /* sign */
		"PROXY UDP4 203.0.113.7 192.0.2.1 40000 110\r\n",      /* not TCP */
		"PROXY tcp4 203.0.113.7 192.0.2.1 40000 110\r\n",      /* case */
		"proxy TCP4 203.0.113.7 192.0.2.1 40000 110\r\n",      /* not the prefix */
		"USER alice\r\n",                                      /* no header at all */
		"PROXY TCP4 203.0.113.7\r192.0.2.1 40000 110\r\n",     /* CR inside */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t used;
		struct proxy_info pi;
		if (parse_str(bad[i], &used, &pi) != PROXY_BAD)
			fail_msg("accepted: %s", bad[i]);
	}
	/* A NUL inside and a line past 107 octets without its end. */
	char nul[] = "PROXY TCP4 203.0.113.7 192.0.2.1 4\0000 110\r\n";
	size_t used;
	struct proxy_info pi;
	assert_int_equal(parse(nul, sizeof(nul) - 1, &used, &pi), PROXY_BAD);
	char longline[200];
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "PROXY UNKNOWN ", 14);
	assert_int_equal(parse(longline, 107, &used, &pi), PROXY_BAD);
	assert_int_equal(parse(longline, 106, &used, &pi), PROXY_MORE);
}

/* ---- v2 ---- */

static size_t v2(unsigned char *out, unsigned cmd, unsigned fam, const void *body, size_t len)
{
	static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A,
					      0x51, 0x55, 0x49, 0x54, 0x0A};
	memcpy(out, sig, 12);
	out[12] = (unsigned char)(0x20 | cmd);
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(len >> 8);
	out[15] = (unsigned char)len;
	memcpy(out + 16, body, len);
	return 16 + len;
}

static void test_v2_tcp4_tcp6(void **state)
{
	(void)state;
	unsigned char buf[600], body[64];
	memset(body, 0, sizeof(body));
	const unsigned char a4[12] = {203, 0, 113, 7, 192, 0, 2, 1, 0x9c, 0x40, 0, 110};
	size_t n = v2(buf, 1, 0x11, a4, sizeof(a4));
	memcpy(buf + n, "QUIT\r\n", 6);
	size_t used;
	struct proxy_info pi;
	assert_int_equal(parse(buf, n + 6, &used, &pi), PROXY_OK);
	assert_int_equal(used, n);
	assert_string_equal(pi.addr, "203.0.113.7");
	body[0] = 0x20;
	body[1] = 0x01;
	body[2] = 0x0d;
	body[3] = 0xb8;
	body[15] = 1;
	n = v2(buf, 1, 0x21, body, 36);
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_OK);
	assert_string_equal(pi.addr, "2001:db8::1");
	for (size_t k = 0; k < n; k++)   /* every prefix of it: more */
		assert_int_equal(parse(buf, k, &used, &pi), PROXY_MORE);
}

static void test_v2_tcp6_v4_mapped(void **state)
{
	(void)state;
	unsigned char buf[64], body[36];
	memset(body, 0, sizeof(body));
	const unsigned char src[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 55};
	memcpy(body, src, sizeof(src));
	size_t n = v2(buf, 1, 0x21, body, sizeof(body));
	size_t used;
	struct proxy_info pi;
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_OK);
	assert_true(pi.have_addr);
	assert_string_equal(pi.addr, "192.0.2.55");
}

static void test_v2_local_unspec_keep_the_proxy(void **state)
{
	(void)state;
	unsigned char buf[64];
	size_t used;
	struct proxy_info pi;
	size_t n = v2(buf, 0, 0x00, "", 0);   /* HAProxy's health check */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_OK);
	assert_false(pi.have_addr);
	assert_int_equal(used, 16);
	const unsigned char a4[12] = {203, 0, 113, 7};
	n = v2(buf, 0, 0x11, a4, sizeof(a4));   /* LOCAL with addresses: still the proxy's */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_OK);
	assert_false(pi.have_addr);
	n = v2(buf, 1, 0x00, "", 0);            /* PROXY UNSPEC */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_OK);
	assert_false(pi.have_addr);
	n = v2(buf, 1, 0x12, a4, sizeof(a4));   /* UDP: no TCP client */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_OK);
	assert_false(pi.have_addr);
}

static void test_v2_ssl_tlv(void **state)
{
	(void)state;
	unsigned char buf[128], body[64];
	const unsigned char a4[12] = {203, 0, 113, 7, 192, 0, 2, 1, 0, 1, 0, 110};
	memcpy(body, a4, 12);
	/* PP2_TYPE_ALPN "pop3", then PP2_TYPE_SSL: client SSL, verify 0 */
	const unsigned char tlvs[] = {0x01, 0, 4, 'p', 'o', 'p', '3', 0x20, 0, 5, 0x01, 0, 0, 0, 0};
	memcpy(body + 12, tlvs, sizeof(tlvs));
	size_t n = v2(buf, 1, 0x11, body, 12 + sizeof(tlvs));
	size_t used;
	struct proxy_info pi;
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_OK);
	assert_true(pi.tls);
	body[12 + 8] = 0;   /* a TLV whose length runs past the header */
	body[12 + 9] = 9;
	n = v2(buf, 1, 0x11, body, 12 + sizeof(tlvs));
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_BAD);
}

static void test_v2_malformed(void **state)
{
	(void)state;
	unsigned char buf[700];
	const unsigned char a4[12] = {203, 0, 113, 7};
	size_t used;
	struct proxy_info pi;
	size_t n = v2(buf, 1, 0x11, a4, sizeof(a4));
	buf[12] = 0x11;   /* version 1 */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_BAD);
	n = v2(buf, 2, 0x11, a4, sizeof(a4));   /* command 2 */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_BAD);
	n = v2(buf, 1, 0x11, a4, 8);             /* shorter than a TCP4 address block */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_BAD);
	n = v2(buf, 1, 0x21, a4, 12);            /* TCP6 with a TCP4 block */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_BAD);
	unsigned char big[PROXY_V2_MAX_LEN + 1];
	memset(big, 0, sizeof(big));
	n = v2(buf, 1, 0x11, big, sizeof(big));  /* past our cap */
	assert_int_equal(parse(buf, 16, &used, &pi), PROXY_BAD);
	buf[3] = 0x0B;                           /* a broken signature */
	assert_int_equal(parse(buf, n, &used, &pi), PROXY_BAD);
}

/* ---- --trusted-proxy ---- */

static void test_trust_lists(void **state)
{
	(void)state;
	struct proxy_trust t;
	char why[128];
	assert_int_equal(proxy_trust_parse("127.0.0.0/8,2001:db8::/32,192.0.2.1", &t, why,
					   sizeof(why)), 0);
	assert_int_equal(t.count, 3);
	assert_true(proxy_trusted(&t, "127.1.2.3"));
	assert_false(proxy_trusted(&t, "128.0.0.1"));
	assert_true(proxy_trusted(&t, "2001:db8:ffff::1"));
	assert_false(proxy_trusted(&t, "2001:db9::1"));
	assert_true(proxy_trusted(&t, "192.0.2.1"));
	assert_false(proxy_trusted(&t, "192.0.2.2"));
	assert_false(proxy_trusted(&t, "local"));
	assert_int_equal(proxy_trust_parse("10.0.0.0/12", &t, why, sizeof(why)), 0);
	assert_true(proxy_trusted(&t, "10.15.255.255"));
	assert_false(proxy_trusted(&t, "10.16.0.0"));
	assert_int_equal(proxy_trust_parse("0.0.0.0/0", &t, why, sizeof(why)), 0);
	assert_true(proxy_trusted(&t, "203.0.113.7"));
	assert_false(proxy_trusted(&t, "::1"));   /* a v4 network never matches v6 */
	/* Addresses and networks compare in the canonical form: v4-mapped is IPv4. */
	assert_int_equal(proxy_trust_parse("::ffff:10.0.0.0/104", &t, why, sizeof(why)), 0);
	assert_true(proxy_trusted(&t, "10.0.0.9"));
	assert_true(proxy_trusted(&t, "::ffff:10.0.0.9"));
	assert_false(proxy_trusted(&t, "11.0.0.9"));
	assert_int_equal(proxy_trust_parse("10.0.0.0/8", &t, why, sizeof(why)), 0);
	assert_true(proxy_trusted(&t, "::ffff:10.1.2.3"));
	assert_int_equal(proxy_trust_parse("::ffff:0:0/95", &t, why, sizeof(why)), -1);
	static const char *const bad[] = {"", ",", "10.0.0.0/33", "::/129", "10.0.0.0/",
					  "10.0.0.0/x", "host.example", "10.0.0.0/8,"
					  "1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6,7.7.7.7,"
					  "8.8.8.8,9.9.9.9,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,"
					  "1.1.1.7,1.1.1.8,1.1.1.9"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (proxy_trust_parse(bad[i], &t, why, sizeof(why)) == 0)
			fail_msg("accepted --trusted-proxy %s", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4_and_what_follows),
		cmocka_unit_test(test_v1_tcp6_canonical),
		cmocka_unit_test(test_v1_tcp6_v4_mapped),
		cmocka_unit_test(test_v1_unknown_keeps_the_proxy),
		cmocka_unit_test(test_v1_prefixes_want_more),
		cmocka_unit_test(test_v1_malformed),
		cmocka_unit_test(test_v2_tcp4_tcp6),
		cmocka_unit_test(test_v2_tcp6_v4_mapped),
		cmocka_unit_test(test_v2_local_unspec_keep_the_proxy),
		cmocka_unit_test(test_v2_ssl_tlv),
		cmocka_unit_test(test_v2_malformed),
		cmocka_unit_test(test_trust_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
