/* The PROXY protocol v1 and v2 (HAProxy's proxy-protocol.txt) and --trusted-proxy. */
#include "proxy.h"
#include "peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const unsigned char v2_signature[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};
static const char v1_prefix[] = "PROXY ";

enum {
	V2_HEADER = 16,          /* signature, version/command, family, length */
	V2_CMD_LOCAL = 0x0,
	V2_CMD_PROXY = 0x1,
	V2_TCP4 = 0x11,
	V2_TCP6 = 0x21,
	V2_TLV_SSL = 0x20,
	V2_CLIENT_SSL = 0x01,
};

static enum proxy_status bad(char *why, size_t whylen, const char *what)
{
	snprintf(why, whylen, "%s", what);
	return PROXY_BAD;
}

/* Does buf (len octets) still agree with the first octets of what? */
static bool agrees(const unsigned char *buf, size_t len, const void *what, size_t wlen)
{
	return memcmp(buf, what, len < wlen ? len : wlen) == 0;
}

/* ---- version 1: "PROXY TCP4 src dst sport dport\r\n" ---- */

/* A port: 1-5 decimal digits, no leading zero, at most 65535. */
static bool v1_port(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v <= 65535;
}

/* Split the line at single spaces into at most 6 words; -1 on a doubled or trailing space. */
static int v1_words(char *line, char *w[6])
{
	int n = 0;
	for (char *p = line;;) {
		if (n == 6 || *p == ' ' || *p == '\0')
			return -1;
		w[n++] = p;
		p = strchr(p, ' ');
		if (!p)
			return n;
		*p++ = '\0';
	}
}

static enum proxy_status v1_parse(const unsigned char *buf, size_t len, size_t *used,
				  struct proxy_info *pi, char *why, size_t whylen)
{
	const unsigned char *lf = memchr(buf, '\n', len < PROXY_V1_MAX ? len : PROXY_V1_MAX);
	if (!lf)
		return len < PROXY_V1_MAX ? PROXY_MORE : bad(why, whylen, "v1 line longer than 107 octets");
	size_t n = (size_t)(lf - buf) + 1;
	if (n < 2 || buf[n - 2] != '\r')
		return bad(why, whylen, "v1 line does not end in CR LF");
	char line[PROXY_V1_MAX + 1];
	memcpy(line, buf, n - 2);
	line[n - 2] = '\0';
	if (memchr(line, '\0', n - 2) || memchr(line, '\r', n - 2))
		return bad(why, whylen, "v1 line with a NUL or CR");
	*used = n;
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 && (line[13] == '\0' || line[13] == ' '))
		return PROXY_OK;   /* the proxy's own address stands */
	char *w[6];
	if (v1_words(line, w) != 6)
		return bad(why, whylen, "v1 line without six fields");
	int family = strcmp(w[1], "TCP4") == 0 ? AF_INET : strcmp(w[1], "TCP6") == 0 ? AF_INET6 : 0;
	unsigned char a[16];
	if (!family)
		return bad(why, whylen, "v1 protocol is not TCP4, TCP6 or UNKNOWN");
	if (inet_pton(family, w[3], a) != 1 || inet_pton(family, w[2], a) != 1)
		return bad(why, whylen, "v1 address does not match its protocol");
	if (!v1_port(w[4]) || !v1_port(w[5]))
		return bad(why, whylen, "v1 port is not a number from 0 to 65535");
	pi->have_addr = peer_canonical(family, a, pi->addr, sizeof(pi->addr));
	return PROXY_OK;
}

/* ---- version 2: binary ---- */

/* The TLVs after the address: only PP2_TYPE_SSL matters here. */
static bool v2_tlvs(const unsigned char *p, size_t len, struct proxy_info *pi)
{
	while (len > 0) {
		if (len < 3)
			return false;
		size_t vlen = (size_t)p[1] << 8 | p[2];
		if (vlen > len - 3)
			return false;
		if (p[0] == V2_TLV_SSL && vlen >= 1 && (p[3] & V2_CLIENT_SSL))
			pi->tls = true;
		p += 3 + vlen;
		len -= 3 + vlen;
	}
	return true;
}

static enum proxy_status v2_parse(const unsigned char *buf, size_t len, size_t *used,
				  struct proxy_info *pi, char *why, size_t whylen)
{
	if (len < V2_HEADER)
		return PROXY_MORE;
	unsigned version = buf[12] >> 4, command = buf[12] & 0x0F, family = buf[13];
	size_t body = (size_t)buf[14] << 8 | buf[15];
	if (version != 2)
		return bad(why, whylen, "v2 header with a version other than 2");
	if (command != V2_CMD_LOCAL && command != V2_CMD_PROXY)
		return bad(why, whylen, "v2 command is neither LOCAL nor PROXY");
	if (body > PROXY_V2_MAX_LEN)
		return bad(why, whylen, "v2 header longer than pop3d accepts");
	if (len < V2_HEADER + body)
		return PROXY_MORE;
	*used = V2_HEADER + body;
	const unsigned char *a = buf + V2_HEADER;
	if (command == V2_CMD_LOCAL)
		return PROXY_OK;   /* a health check: the proxy speaks for itself */
	/* The address block by family (high nibble), whatever the transport (low nibble). */
	size_t alen;
	switch (family >> 4) {
	case 0x0: alen = 0; break;     /* AF_UNSPEC */
	case 0x1: alen = 12; break;    /* AF_INET: two addresses, two ports */
	case 0x2: alen = 36; break;    /* AF_INET6 */
	case 0x3: alen = 216; break;   /* AF_UNIX: two 108-octet paths */
	default: return bad(why, whylen, "v2 address family unknown");
	}
	if ((family & 0x0F) > 2)
		return bad(why, whylen, "v2 transport unknown");
	if (body < alen)
		return bad(why, whylen, "v2 header shorter than its addresses");
	if (!v2_tlvs(a + alen, body - alen, pi))
		return bad(why, whylen, "v2 TLV running past the header");
	if (family != V2_TCP4 && family != V2_TCP6)
		return PROXY_OK;   /* UNSPEC, UDP, UNIX: no TCP client address to take */
	pi->have_addr = peer_canonical(family == V2_TCP4 ? AF_INET : AF_INET6, a, pi->addr,
				       sizeof(pi->addr));
	return PROXY_OK;
}

enum proxy_status proxy_parse(const unsigned char *buf, size_t len, size_t *used,
			      struct proxy_info *pi, char *why, size_t whylen)
{
	memset(pi, 0, sizeof(*pi));
	*used = 0;
	if (len == 0)
		return PROXY_MORE;
	if (agrees(buf, len, v2_signature, sizeof(v2_signature)))
		return len < sizeof(v2_signature) ? PROXY_MORE : v2_parse(buf, len, used, pi, why, whylen);
	if (agrees(buf, len, v1_prefix, sizeof(v1_prefix) - 1))
		return len < sizeof(v1_prefix) - 1 ? PROXY_MORE : v1_parse(buf, len, used, pi, why, whylen);
	return bad(why, whylen, "no PROXY header");
}

/* ---- --trusted-proxy ---- */

/*
 * A v4-mapped network (::ffff:a.b.c.d/96 or longer) as the IPv4 network it
 * is: addresses are matched in their canonical form (peer.h), where a
 * v4-mapped address is IPv4. A shorter prefix spans more than IPv4: refused.
 */
static int unmap_net(struct proxy_net *net)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (net->family != AF_INET6 || memcmp(net->addr, mapped, sizeof(mapped)) != 0)
		return 0;
	if (net->prefix < 96)
		return -1;
	net->family = AF_INET;
	memmove(net->addr, net->addr + 12, 4);
	memset(net->addr + 4, 0, 12);
	net->prefix -= 96;
	return 0;
}

static int parse_net(const char *s, struct proxy_net *net)
{
	char text[INET6_ADDRSTRLEN + 8];
	if (strlen(s) >= sizeof(text))
		return -1;
	snprintf(text, sizeof(text), "%s", s);
	char *slash = strchr(text, '/');
	if (slash)
		*slash = '\0';
	memset(net, 0, sizeof(*net));
	net->family = strchr(text, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(net->family, text, net->addr) != 1)
		return -1;
	unsigned max = net->family == AF_INET ? 32 : 128;
	net->prefix = max;
	if (slash) {
		char *end;
		unsigned long p = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || p > max)
			return -1;
		net->prefix = (unsigned)p;
	}
	return unmap_net(net);
}

int proxy_trust_parse(const char *list, struct proxy_trust *t, char *why, size_t whylen)
{
	char buf[MAX_TRUSTED_PROXIES * (INET6_ADDRSTRLEN + 6)];
	memset(t, 0, sizeof(*t));
	if (strlen(list) >= sizeof(buf)) {
		snprintf(why, whylen, "too long");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", list);
	char *save = NULL;
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (t->count == MAX_TRUSTED_PROXIES) {
			snprintf(why, whylen, "more than %d networks", MAX_TRUSTED_PROXIES);
			return -1;
		}
		if (parse_net(item, &t->nets[t->count]) < 0) {
			snprintf(why, whylen, "'%s' is not an address or CIDR network", item);
			return -1;
		}
		t->count++;
	}
	if (t->count == 0) {
		snprintf(why, whylen, "no network given");
		return -1;
	}
	return 0;
}

static bool in_net(const struct proxy_net *n, const unsigned char *a)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;
	if (memcmp(n->addr, a, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xFF << (8 - rest));
	return (n->addr[full] & mask) == (a[full] & mask);
}

bool proxy_trusted(const struct proxy_trust *t, const char *addr)
{
	unsigned char a[16];
	int len = peer_address_bytes(addr, a);   /* canonical: v4-mapped is IPv4 */
	for (size_t i = 0; i < t->count; i++) {
		const struct proxy_net *n = &t->nets[i];
		if ((len == 4 && n->family == AF_INET && in_net(n, a)) ||
		    (len == 16 && n->family == AF_INET6 && in_net(n, a)))
			return true;
	}
	return false;
}
