/* Unit tests for peer.c: every form an address arrives in gives the one canonical text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"
#include "proxy.h"

/* ---- binary, as getpeername and the PROXY v2 header give it ---- */

static void test_binary_forms(void **state)
{
	(void)state;
	char out[MAX_PEER_TEXT];
	const unsigned char v4[4] = {192, 0, 2, 55};
	assert_true(peer_canonical(AF_INET, v4, out, sizeof(out)));
	assert_string_equal(out, "192.0.2.55");
	unsigned char v6[16] = {0x20, 0x01, 0x0d, 0xb8};
	v6[15] = 1;
	assert_true(peer_canonical(AF_INET6, v6, out, sizeof(out)));
	assert_string_equal(out, "2001:db8::1");
	const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 55};
	assert_true(peer_canonical(AF_INET6, mapped, out, sizeof(out)));
	assert_string_equal(out, "192.0.2.55");
	/* ::ffff:0:a.b.c.d (SIIT) and ::a.b.c.d (compatible) are not v4-mapped: IPv6 stays. */
	const unsigned char siit[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 192, 0, 2, 55};
	assert_true(peer_canonical(AF_INET6, siit, out, sizeof(out)));
	assert_string_equal(out, "::ffff:0:c000:237");
	const unsigned char compat[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 55};
	assert_true(peer_canonical(AF_INET6, compat, out, sizeof(out)));
	assert_string_equal(out, "::192.0.2.55");
	assert_false(peer_canonical(AF_UNIX, v4, out, sizeof(out)));
	assert_string_equal(out, "");
	char tiny[8];
	assert_false(peer_canonical(AF_INET6, v6, tiny, sizeof(tiny)));
	assert_string_equal(tiny, "");
}

/* ---- text, as front ends write it ---- */

static void test_text_forms(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"198.51.100.7", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
		{"::FFFF:198.51.100.7", "198.51.100.7"},
		{"0:0:0:0:0:ffff:c633:6407", "198.51.100.7"},
		{"[0000:0000:0000:0000:0000:ffff:c000:0237]", "192.0.2.55"},   /* socat */
		{"[0000:0000:0000:0000:0000:0000:0000:0001]", "::1"},
		{"[2001:0db8:0000:0000:0000:0000:0000:0001]", "2001:db8::1"},
		{"2001:DB8:0:0::1", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"::1", "::1"},
	};
	char out[MAX_PEER_TEXT];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!peer_canonical_text(cases[i].in, out, sizeof(out)))
			fail_msg("not an address: %s", cases[i].in);
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("%s gave %s, not %s", cases[i].in, out, cases[i].out);
	}
	static const char *const not_addresses[] = {
		"", "unknown", "local", "host.example", "1.2.3", "1.2.3.4.5", "256.1.1.1",
		"[1.2.3.4]", "[::1", "::1]", "[]", "1.2.3.4 ", " ::1", "2001:db8::1%eth0",
		"[0000:0000:0000:0000:0000:ffff:c000:0237:0000]",
	};
	for (size_t i = 0; i < sizeof(not_addresses) / sizeof(not_addresses[0]); i++) {
		strcpy(out, "x");
		if (peer_canonical_text(not_addresses[i], out, sizeof(out)))
			fail_msg("taken as an address: '%s'", not_addresses[i]);
		assert_string_equal(out, "");
	}
}

static void test_address_bytes(void **state)
{
	(void)state;
	unsigned char a[16];
	assert_int_equal(peer_address_bytes("198.51.100.7", a), 4);
	assert_memory_equal(a, ((const unsigned char[]){198, 51, 100, 7}), 4);
	memset(a, 0, sizeof(a));
	assert_int_equal(peer_address_bytes("::ffff:1.2.3.4", a), 4);
	assert_memory_equal(a, ((const unsigned char[]){1, 2, 3, 4}), 4);
	memset(a, 0, sizeof(a));
	assert_int_equal(peer_address_bytes("[0000:0000:0000:0000:0000:ffff:c000:0237]", a), 4);
	assert_memory_equal(a, ((const unsigned char[]){192, 0, 2, 55}), 4);
	assert_int_equal(peer_address_bytes("2001:db8::1", a), 16);
	const unsigned char v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	assert_memory_equal(a, v6, 16);
	assert_int_equal(peer_address_bytes("unknown", a), 0);
	assert_int_equal(peer_address_bytes("local", a), 0);
	assert_int_equal(peer_address_bytes("", a), 0);
}

static void test_loopback(void **state)
{
	(void)state;
	assert_true(peer_is_loopback_text("127.0.0.1"));
	assert_true(peer_is_loopback_text("127.255.0.9"));
	assert_true(peer_is_loopback_text("::1"));
	assert_true(peer_is_loopback_text("::ffff:127.0.0.1"));
	assert_false(peer_is_loopback_text("128.0.0.1"));
	assert_false(peer_is_loopback_text("::2"));
	assert_false(peer_is_loopback_text("local"));
	assert_false(peer_is_loopback_text("unknown"));
}

/* ---- the PROXY header goes through the same form ---- */

static void test_proxy_v4_mapped(void **state)
{
	(void)state;
	const char *v1 = "PROXY TCP6 ::ffff:192.0.2.55 ::ffff:10.0.0.1 1234 110\r\n";
	size_t used;
	struct proxy_info pi;
	char why[128];
	assert_int_equal(proxy_parse((const unsigned char *)v1, strlen(v1), &used, &pi, why,
				     sizeof(why)), PROXY_OK);
	assert_true(pi.have_addr);
	assert_string_equal(pi.addr, "192.0.2.55");
	unsigned char v2[16 + 36] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
				     0x54, 0x0A, 0x21, 0x21, 0, 36};
	const unsigned char src[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 55};
	memcpy(v2 + 16, src, 16);
	assert_int_equal(proxy_parse(v2, sizeof(v2), &used, &pi, why, sizeof(why)), PROXY_OK);
	assert_true(pi.have_addr);
	assert_string_equal(pi.addr, "192.0.2.55");
}

/* ---- peer_find: the environment, and the socket ---- */

static const char *const env_vars[] = {"REMOTE_HOST", "REMOTE_ADDR", "TCPREMOTEIP",
				       "SOCAT_PEERADDR"};

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
		assert_int_equal(unsetenv(env_vars[i]), 0);
}

/* peer_find with fd 0 replaced by fd (then restored). */
static void find_with_stdin(int fd, struct peer *p)
{
	int saved = dup(STDIN_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDIN_FILENO) == STDIN_FILENO);
	peer_find(p);
	assert_true(dup2(saved, STDIN_FILENO) == STDIN_FILENO);
	assert_int_equal(close(saved), 0);
}

static void find_from_env(const char *var, const char *value, struct peer *p)
{
	clear_env();
	if (var)
		assert_int_equal(setenv(var, value, 1), 0);
	int null = open("/dev/null", O_RDONLY);
	assert_true(null >= 0);
	find_with_stdin(null, p);
	assert_int_equal(close(null), 0);
	clear_env();
}

static void test_find_env(void **state)
{
	(void)state;
	static const struct {
		const char *var, *value, *addr;
		bool encrypted;
	} cases[] = {
		{"REMOTE_ADDR", "::ffff:198.51.100.7", "198.51.100.7", false},   /* systemd, dual stack */
		{"REMOTE_ADDR", "2001:db8::7", "2001:db8::7", false},
		{"REMOTE_HOST", "::FFFF:198.51.100.7", "198.51.100.7", true},    /* stunnel */
		{"REMOTE_HOST", "198.51.100.7", "198.51.100.7", true},
		{"TCPREMOTEIP", "198.51.100.7", "198.51.100.7", false},          /* tcpserver */
		{"TCPREMOTEIP", "::ffff:198.51.100.7", "198.51.100.7", false},
		{"SOCAT_PEERADDR", "[0000:0000:0000:0000:0000:ffff:c633:6407]", "198.51.100.7", false},
		{"SOCAT_PEERADDR", "[2001:0db8:0000:0000:0000:0000:0000:0007]", "2001:db8::7", false},
		{"SOCAT_PEERADDR", "198.51.100.7", "198.51.100.7", false},
		/* Not addresses: the filtered text as it is, "unknown" when nothing is left. */
		{"REMOTE_ADDR", "host.example", "host.example", false},
		{"REMOTE_ADDR", "evil\n peer=1.2.3.4", "evilpeer1.2.3.4", false},
		{"REMOTE_ADDR", " 198.51.100.7\n", "198.51.100.7", false},   /* filtered, then an address */
		{"REMOTE_ADDR", "\n\t ", "unknown", false},
		{NULL, NULL, "local", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct peer p;
		find_from_env(cases[i].var, cases[i].value, &p);
		if (strcmp(p.addr, cases[i].addr) != 0)
			fail_msg("%s=%s gave %s, not %s", cases[i].var, cases[i].value, p.addr,
				 cases[i].addr);
		assert_false(p.tcp);
		assert_false(p.loopback);
		assert_int_equal(p.encrypted, cases[i].encrypted);
	}
	/* The first variable set wins, in the order stunnel, systemd, tcpserver, socat. */
	clear_env();
	assert_int_equal(setenv("SOCAT_PEERADDR", "192.0.2.9", 1), 0);
	assert_int_equal(setenv("TCPREMOTEIP", "::ffff:192.0.2.8", 1), 0);
	int null = open("/dev/null", O_RDONLY);
	assert_true(null >= 0);
	struct peer p;
	find_with_stdin(null, &p);
	assert_int_equal(close(null), 0);
	assert_string_equal(p.addr, "192.0.2.8");
	clear_env();
}

/* A connection to a listener of family fam on loopback; the accepted end, or -1. */
static int loopback_pair(int fam, int *client)
{
	int l = socket(fam, SOCK_STREAM, 0);
	if (l < 0)
		return -1;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t len;
	if (fam == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_any;   /* dual stack: IPv4 clients arrive v4-mapped */
		len = sizeof(*s6);
	}
	int off = 0;
	if ((fam == AF_INET6 && setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0) ||
	    bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&ss, &len) < 0) {
		close(l);
		return -1;
	}
	/* Connect over IPv4 to the listener's port either way. */
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	to.sin_port = fam == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				     : ((struct sockaddr_in6 *)&ss)->sin6_port;
	*client = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*client >= 0);
	assert_int_equal(connect(*client, (struct sockaddr *)&to, sizeof(to)), 0);
	int a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(close(l), 0);
	return a;
}

static void test_find_socket(void **state)
{
	(void)state;
	static const int fams[] = {AF_INET, AF_INET6};
	for (size_t i = 0; i < 2; i++) {
		int client;
		int a = loopback_pair(fams[i], &client);
		if (a < 0) {
			assert_int_equal(fams[i], AF_INET6);   /* only IPv6 may be missing */
			continue;
		}
		clear_env();
		assert_int_equal(setenv("REMOTE_ADDR", "203.0.113.1", 1), 0);  /* the socket wins */
		struct peer p;
		find_with_stdin(a, &p);
		clear_env();
		assert_string_equal(p.addr, "127.0.0.1");   /* AF_INET6: ::ffff:127.0.0.1 */
		assert_true(p.tcp);
		assert_true(p.loopback);
		assert_true(p.encrypted);
		assert_int_equal(close(a), 0);
		assert_int_equal(close(client), 0);
	}
	/* A socketpair (stunnel's exec) is not TCP: the environment says. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	clear_env();
	assert_int_equal(setenv("REMOTE_HOST", "::ffff:203.0.113.1", 1), 0);
	struct peer p;
	find_with_stdin(sv[0], &p);
	clear_env();
	assert_string_equal(p.addr, "203.0.113.1");
	assert_false(p.tcp);
	assert_true(p.encrypted);
	assert_int_equal(close(sv[0]), 0);
	assert_int_equal(close(sv[1]), 0);
}

/* ---- the client a PROXY header names (peer_from_proxy): one decision for every path ---- */

/* A parsed header's client into p, as the greeter and the authenticator take it. */
static int from_header(struct peer *p, const char *header)
{
	struct proxy_info pi;
	size_t used;
	char why[128];
	assert_int_equal(proxy_parse((const unsigned char *)header, strlen(header), &used, &pi,
				     why, sizeof(why)), PROXY_OK);
	assert_true(pi.have_addr);
	return peer_from_proxy(p, pi.addr, pi.tls);
}

static void test_from_proxy(void **state)
{
	(void)state;
	struct peer p = {.addr = "10.0.0.1", .tcp = true};
	/* v4-mapped through a dual-stack proxy: the IPv4 client, not from here. */
	assert_int_equal(from_header(&p, "PROXY TCP6 ::ffff:198.51.100.7 ::1 1 110\r\n"), 0);
	assert_string_equal(p.addr, "198.51.100.7");
	assert_false(p.loopback);
	assert_false(p.encrypted);
	assert_false(peer_plaintext_ok(&p, true));
	assert_true(peer_plaintext_ok(&p, false));
	/* Loopback through the proxy (stunnel in front of HAProxy here): encrypted. */
	assert_int_equal(from_header(&p, "PROXY TCP6 ::ffff:127.0.0.2 ::1 1 110\r\n"), 0);
	assert_string_equal(p.addr, "127.0.0.2");
	assert_true(p.loopback);
	assert_true(p.encrypted);
	assert_true(peer_plaintext_ok(&p, true));
	assert_int_equal(peer_from_proxy(&p, "::1", false), 0);
	assert_true(p.loopback && p.encrypted);
	/* The text the authenticator is sent is taken in the same canonical form. */
	assert_int_equal(peer_from_proxy(&p, "0:0:0:0:0:ffff:c633:6407", false), 0);
	assert_string_equal(p.addr, "198.51.100.7");
	assert_false(p.loopback);
	/* TLS said by the proxy (PP2_CLIENT_SSL): encrypted from anywhere. */
	assert_int_equal(peer_from_proxy(&p, "2001:db8::5", true), 0);
	assert_string_equal(p.addr, "2001:db8::5");
	assert_false(p.loopback);
	assert_true(p.encrypted);
	assert_true(peer_plaintext_ok(&p, true));
	/* Garbage is no client: refused, and p left as it was. */
	struct peer before = p;
	assert_int_equal(peer_from_proxy(&p, "", false), -1);
	assert_int_equal(peer_from_proxy(&p, "local", true), -1);
	assert_int_equal(peer_from_proxy(&p, "1.2.3.4; rm", false), -1);
	assert_int_equal(peer_from_proxy(&p, "127.0.0.1\n", true), -1);
	assert_memory_equal(&p, &before, sizeof(p));
}

/* --tls-only asks for encryption; without it, anything goes in the clear. */
static void test_plaintext_ok(void **state)
{
	(void)state;
	struct peer clear = {.addr = "192.0.2.1", .tcp = true};
	struct peer stunnel = {.addr = "192.0.2.1", .encrypted = true};
	assert_true(peer_plaintext_ok(&clear, false));
	assert_false(peer_plaintext_ok(&clear, true));
	assert_true(peer_plaintext_ok(&stunnel, true));
	assert_true(peer_plaintext_ok(&stunnel, false));
}

/* The throttle's source: every address, but nothing for a pipe or a front end's junk. */
static void test_source(void **state)
{
	(void)state;
	struct peer p;
	find_from_env("REMOTE_ADDR", "::ffff:198.51.100.7", &p);
	assert_string_equal(peer_source(&p), "198.51.100.7");
	find_from_env("REMOTE_ADDR", "host.example", &p);
	assert_string_equal(peer_source(&p), "host.example");
	find_from_env("REMOTE_ADDR", "\n\t ", &p);
	assert_null(peer_source(&p));
	find_from_env(NULL, NULL, &p);
	assert_null(peer_source(&p));
	assert_int_equal(peer_from_proxy(&p, "::ffff:203.0.113.9", false), 0);
	assert_string_equal(peer_source(&p), "203.0.113.9");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binary_forms),
		cmocka_unit_test(test_text_forms),
		cmocka_unit_test(test_address_bytes),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_proxy_v4_mapped),
		cmocka_unit_test(test_find_env),
		cmocka_unit_test(test_find_socket),
		cmocka_unit_test(test_from_proxy),
		cmocka_unit_test(test_plaintext_ok),
		cmocka_unit_test(test_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
