/* Who the client is, and the one canonical text of its address (peer.h). */
#include "peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the canonical form ---- */

/*
 * The one decision on the form of an address: a v4-mapped IPv6 address
 * (::ffff:a.b.c.d, as xinetd's and HAProxy's dual-stack sockets give IPv4
 * clients) is that IPv4 address. out gets the octets; the family, 0 if unknown.
 */
static int unmap(int family, const unsigned char *in, unsigned char out[16])
{
	if (family == AF_INET) {
		memcpy(out, in, 4);
		return AF_INET;
	}
	if (family != AF_INET6)
		return 0;
	static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (memcmp(in, v4_mapped, sizeof(v4_mapped)) == 0) {
		memcpy(out, in + 12, 4);
		return AF_INET;
	}
	memcpy(out, in, 16);
	return AF_INET6;
}

/* Text to octets: dotted IPv4, IPv6, or IPv6 in brackets (socat). The family, 0 if none. */
static int parse_text(const char *text, unsigned char out[16])
{
	char bare[INET6_ADDRSTRLEN];
	size_t len = strlen(text);
	if (inet_pton(AF_INET, text, out) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, text, out) == 1)
		return AF_INET6;
	if (len < 2 || text[0] != '[' || text[len - 1] != ']' || len - 2 >= sizeof(bare))
		return 0;
	memcpy(bare, text + 1, len - 2);
	bare[len - 2] = '\0';
	return inet_pton(AF_INET6, bare, out) == 1 ? AF_INET6 : 0;
}

bool peer_canonical(int family, const void *bytes, char *out, size_t size)
{
	unsigned char a[16];
	if (size > 0)
		out[0] = '\0';
	int f = unmap(family, bytes, a);
	if (!f || inet_ntop(f, a, out, (socklen_t)size) == NULL) {
		if (size > 0)
			out[0] = '\0';
		return false;
	}
	return true;
}

bool peer_canonical_text(const char *text, char *out, size_t size)
{
	unsigned char a[16];
	int f = parse_text(text, a);
	if (!f) {
		if (size > 0)
			out[0] = '\0';
		return false;
	}
	return peer_canonical(f, a, out, size);
}

int peer_address_bytes(const char *text, unsigned char out[16])
{
	unsigned char a[16];
	int f = parse_text(text, a);
	if (!f)
		return 0;
	return unmap(f, a, out) == AF_INET ? 4 : 16;
}

bool peer_is_loopback_text(const char *text)
{
	unsigned char a[16];
	switch (peer_address_bytes(text, a)) {
	case 4:
		return a[0] == 127;
	case 16:
		return memcmp(a, &in6addr_loopback, sizeof(a)) == 0;
	default:
		return false;
	}
}

/* ---- where the address comes from ---- */

/* Keep only characters an address can have, so the log can't be forged. */
static void copy_address(char *out, size_t size, const char *in)
{
	size_t o = 0;
	for (; *in && o + 1 < size; in++) {
		char c = *in;
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '.' || c == ':' || c == '-' || c == '_' || c == '[' || c == ']')
			out[o++] = c;
	}
	out[o] = '\0';
	if (!o)
		snprintf(out, size, PEER_UNKNOWN);
}

/* The TCP peer of stdin, if stdin is a TCP socket. */
static bool tcp_peer(struct peer *p)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getpeername(STDIN_FILENO, (struct sockaddr *)&ss, &len) < 0)
		return false;   /* not a socket (pipes, a terminal), or not connected */
	bool ok = false;
	if (ss.ss_family == AF_INET)
		ok = peer_canonical(AF_INET, &((const struct sockaddr_in *)&ss)->sin_addr,
				    p->addr, sizeof(p->addr));
	else if (ss.ss_family == AF_INET6)
		ok = peer_canonical(AF_INET6, &((const struct sockaddr_in6 *)&ss)->sin6_addr,
				    p->addr, sizeof(p->addr));
	if (!ok)
		return false;   /* a socketpair (stunnel's exec): the environment says */
	p->tcp = true;
	p->loopback = peer_is_loopback_text(p->addr);
	return true;
}

/* The address a front end put in the environment; its text as it is if not an address. */
static void find_env_peer(char *out, size_t size)
{
	static const char *const vars[] = {
		"REMOTE_HOST",     /* stunnel exec */
		"REMOTE_ADDR",     /* systemd Accept=yes */
		"TCPREMOTEIP",     /* tcpserver */
		"SOCAT_PEERADDR",  /* socat */
	};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);
		if (v && *v) {
			char text[MAX_PEER_TEXT];
			copy_address(text, sizeof(text), v);
			if (!peer_canonical_text(text, out, size))
				snprintf(out, size, "%s", text);
			return;
		}
	}
	snprintf(out, size, PEER_LOCAL);
}

void peer_find(struct peer *p)
{
	memset(p, 0, sizeof(*p));
	if (tcp_peer(p)) {
		p->encrypted = p->loopback;
		return;
	}
	/* stunnel's exec gives a socketpair and sets REMOTE_HOST: TLS ends in stunnel. */
	p->encrypted = getenv("REMOTE_HOST") != NULL;
	find_env_peer(p->addr, sizeof(p->addr));
}

int peer_from_proxy(struct peer *p, const char *addr, bool tls)
{
	char canonical[MAX_PEER_TEXT];
	/* proxy.c's text already, but the authenticator has it from the greeter: check it. */
	if (!peer_canonical_text(addr, canonical, sizeof(canonical)))
		return -1;
	snprintf(p->addr, sizeof(p->addr), "%s", canonical);
	p->loopback = peer_is_loopback_text(canonical);
	p->encrypted = p->loopback || tls;
	return 0;
}

bool peer_plaintext_ok(const struct peer *p, bool tls_only)
{
	return !tls_only || p->encrypted;
}

const char *peer_source(const struct peer *p)
{
	return strcmp(p->addr, PEER_LOCAL) == 0 || strcmp(p->addr, PEER_UNKNOWN) == 0 ?
	       NULL : p->addr;
}
