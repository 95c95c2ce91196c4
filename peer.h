/*
 * Who the client is: its address from the socket on stdin or from the front
 * end's environment, and the one canonical text form every address takes
 * (the socket's, the environment's, the PROXY header's), so that logs,
 * --trusted-proxy, --tls-only and the throttle all see the same client.
 */
#ifndef POP3D_PEER_H
#define POP3D_PEER_H

#include <stdbool.h>
#include <stddef.h>

#include "limits.h"

/* What we know of the client's end of the connection. */
struct peer {
	char addr[MAX_PEER_TEXT]; /* canonical address, or the front end's text, "local", "unknown" */
	bool tcp;        /* stdin is a TCP socket (inetd, xinetd, systemd, tcpserver) */
	bool loopback;   /* ... from this host */
	bool encrypted;  /* stunnel exec, or loopback (stunnel connecting locally) */
};

/* From the socket on stdin, else from what the front end put in the environment. */
void peer_find(struct peer *p);

/*
 * The client a --trusted-proxy's PROXY header names (in the greeter, and in
 * the authenticator the greeter tells): addr in the canonical form, loopback
 * from it, encrypted when loopback or tls (the proxy said TLS). -1, p as it
 * was, when addr is not an address.
 */
int peer_from_proxy(struct peer *p, const char *addr, bool tls);

/* May USER, PASS and AUTH go over p's connection: always, or with --tls-only if encrypted. */
bool peer_plaintext_ok(const struct peer *p, bool tls_only);

/* The texts of a peer without an address: a pipe or terminal, a front end's junk. */
#define PEER_LOCAL   "local"
#define PEER_UNKNOWN "unknown"

/*
 * The source the throttle counts and knows: p->addr, or NULL for a peer
 * without an address (PEER_LOCAL, PEER_UNKNOWN), which has no source.
 */
const char *peer_source(const struct peer *p);

/*
 * A binary AF_INET (4 octets) or AF_INET6 (16 octets) address as text:
 * v4-mapped IPv6 as dotted IPv4, other IPv6 in inet_ntop's compressed form.
 * False (out empty) for another family or an out too small.
 */
bool peer_canonical(int family, const void *bytes, char *out, size_t size);

/*
 * An address as front ends write it ("1.2.3.4", "::ffff:1.2.3.4",
 * socat's "[0000:...:0001]", "2001:db8::1") in the form of peer_canonical.
 * False (out empty) when text is not an address.
 */
bool peer_canonical_text(const char *text, char *out, size_t size);

/*
 * The octets of text's canonical address: 4 (IPv4, v4-mapped included),
 * 16 (IPv6), 0 when text is not an address.
 */
int peer_address_bytes(const char *text, unsigned char out[16]);

/* Is text an address of this host (127.0.0.0/8, ::1, v4-mapped 127/8)? */
bool peer_is_loopback_text(const char *text);

#endif
