/*
 * Fuzz target: the authenticator's check of its children's messages
 * (ps_check), fed arbitrary packets, against an independent reading of
 * privsep.h's format: a header, then field 1 and field 2; each type with its
 * own field limits, text fields without NUL, codes in range, a user name
 * where one is due. The first input octet chooses which types the receiver
 * accepts (as the authenticator's state does). An accepted packet is sent
 * again with ps_send over a SOCK_SEQPACKET pair and must come back, through
 * ps_recv and ps_check, the same message.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "limits.h"
#include "privsep.h"

struct ref_limits {
	size_t max1, max2;
	bool text1, text2, user;
};

static bool ref_limits(uint32_t type, struct ref_limits *l)
{
	*l = (struct ref_limits){0};
	switch (type) {
	case PS_LOG: *l = (struct ref_limits){MAX_LOG_LINE, 0, true, false, false}; return true;
	case PS_LOGIN: *l = (struct ref_limits){MAX_SASL_LINE, MAX_SASL_LINE, true, true, true}; return true;
	case PS_ANSWER: *l = (struct ref_limits){MAX_REASON_LEN, 0, true, false, false}; return true;
	case PS_HANDOFF: *l = (struct ref_limits){MAX_SASL_LINE, CLIENT_READ_SIZE, true, false, true}; return true;
	case PS_PEER: *l = (struct ref_limits){INET6_ADDRSTRLEN, 0, true, false, true}; return true;
	case PS_FAILED: case PS_VIOLATION: case PS_UPDATE: case PS_RELEASE: return true;
	default: return false;
	}
}

static FZ_UNTRACED bool has_nul(const char *p, size_t n)
{
	return memchr(p, '\0', n) != NULL;
}

/* The reference verdict: would a careful receiver take this packet? */
static bool ref_accepts(const struct ps_packet *p, size_t n, unsigned accept)
{
	struct ref_limits l;
	if (n < sizeof(p->h) || !ref_limits(p->h.type, &l) || !(accept & (1u << p->h.type)))
		return false;
	uint64_t want = (uint64_t)sizeof(p->h) + p->h.len1 + p->h.len2;
	if (p->h.len1 > l.max1 || p->h.len2 > l.max2 || want != n)
		return false;
	if ((l.text1 && has_nul(p->data, p->h.len1)) ||
	    (l.text2 && has_nul(p->data + p->h.len1, p->h.len2)))
		return false;
	if (l.user && p->h.len1 == 0)
		return false;
	if (p->h.type == PS_LOG && p->h.code > 7)
		return false;
	if (p->h.type == PS_ANSWER && p->h.code > LOGIN_DELAY)
		return false;
	if (p->h.type == PS_PEER && p->h.code > 1)
		return false;
	if (p->h.type == PS_LOGIN && p->h.code > 2)   /* the method: USER 0, PLAIN 1 or LOGIN 2 */
		return false;
	return true;
}

static int pair[2] = {-1, -1};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size - 1 > sizeof(struct ps_packet))
		return 0;
	unsigned accept = (unsigned)data[0] << 1 | (data[0] & 1u) << 9;   /* bits 1..9 */
	struct ps_packet p;
	memset(&p, 0, sizeof(p));
	memcpy(&p, data + 1, size - 1);
	size_t n = size - 1;
	struct ps_msg m;
	char why[128];
	int rc = ps_check(&p, n, accept, &m, why, sizeof(why));
	bool ref = ref_accepts(&p, n, accept);
	FZ_CHECK((rc == 0) == ref, "ps_check says %d, the reference %d (%s)", rc, ref,
		 rc ? why : "accepted");
	if (rc != 0)
		return 0;
	FZ_CHECK(m.type == p.h.type && m.code == p.h.code && m.len1 == p.h.len1 &&
		 m.len2 == p.h.len2 && m.f1 == p.data && m.f2 == p.data + p.h.len1, "fields");
	if (pair[0] < 0 && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair) < 0)
		return 0;
	FZ_CHECK(ps_send(pair[0], m.type, m.code, m.stamp, m.f1, m.len1, m.f2, m.len2) == 0, "send");
	struct ps_packet q;
	ssize_t got = ps_recv(pair[1], &q);
	FZ_CHECK(got == (ssize_t)n, "received %zd of %zu", got, n);
	struct ps_msg m2;
	FZ_CHECK(ps_check(&q, (size_t)got, accept, &m2, why, sizeof(why)) == 0, "again: %s", why);
	FZ_CHECK(m2.type == m.type && m2.code == m.code && m2.stamp == m.stamp &&
		 m2.len1 == m.len1 && m2.len2 == m.len2 && !memcmp(m2.f1, m.f1, m.len1) &&
		 !memcmp(m2.f2, m.f2, m.len2), "round trip");
	return 0;
}
