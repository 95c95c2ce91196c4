/*
 * The PROXY protocol, versions 1 and 2 (HAProxy's specification), as sent
 * by a load balancer or a mail proxy in front of pop3d, and the list of
 * peers trusted to send it (--trusted-proxy).
 */
#ifndef POP3D_PROXY_H
#define POP3D_PROXY_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

enum proxy_status {
	PROXY_MORE,   /* a valid beginning: read more (up to PROXY_MAX_HEADER) */
	PROXY_OK,     /* a complete header */
	PROXY_BAD,    /* not a PROXY header, or a malformed one */
};

struct proxy_info {
	bool have_addr;             /* false: LOCAL (v2), UNKNOWN (v1), or not TCP: keep the proxy's */
	char addr[INET6_ADDRSTRLEN];   /* the client's address, peer_canonical()'s text */
	bool tls;                   /* v2 said the client connected over TLS (PP2_CLIENT_SSL) */
};

/*
 * Parse the header at the start of buf (len octets). PROXY_OK: *used is its
 * length (what follows belongs to the session) and *pi what it says.
 * PROXY_BAD: why says what is wrong.
 */
enum proxy_status proxy_parse(const unsigned char *buf, size_t len, size_t *used,
			      struct proxy_info *pi, char *why, size_t whylen);

/* One network of --trusted-proxy. */
struct proxy_net {
	int family;                 /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;            /* bits */
};

struct proxy_trust {
	struct proxy_net nets[MAX_TRUSTED_PROXIES];
	size_t count;
};

/* "CIDR[,CIDR...]" (a bare address is a /32 or /128). 0, or -1 with why. */
int proxy_trust_parse(const char *list, struct proxy_trust *t, char *why, size_t whylen);

/* Is the address (text, as pop3d logs it) in one of the networks? */
bool proxy_trusted(const struct proxy_trust *t, const char *addr);

#endif
