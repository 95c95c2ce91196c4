/*
 * Fuzz target: the AUTH PLAIN decoder (sasl_plain_decode) fed arbitrary
 * response lines, checked against an independent decoder written from RFC 4648
 * (strict base64, padding only at the end) and RFC 4616 (authzid NUL authcid
 * NUL passwd; an authzid other than "" or the authcid is refused). A decoded
 * response is encoded again and must decode to the same credentials. The same
 * lines go to the AUTH LOGIN decoder (sasl_text_decode): one string, no NUL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "limits.h"
#include "session.h"

#define SMALL_BUF 65   /* as for a user name of MAX_USER_NAME octets */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Strict base64: -1 when malformed, else the decoded length. "=" alone is empty (RFC 5034). */
static long ref_b64_decode(const char *in, unsigned char *out, size_t outsize)
{
	size_t len = strlen(in), o = 0;
	if (strcmp(in, "=") == 0)
		return 0;
	if (len % 4)
		return -1;
	size_t pad = 0;
	if (len >= 4 && in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	uint32_t acc = 0;
	for (size_t i = 0; i < len; i++) {
		const char *p = in[i] ? strchr(B64, in[i]) : NULL;
		bool padding = i >= len - pad;
		if (!padding && !p)
			return -1;
		acc = acc << 6 | (padding ? 0u : (uint32_t)(p - B64));
		if (i % 4 == 3) {
			size_t n = i == len - 1 ? 3 - pad : 3;
			if (o + n > outsize)
				return -1;
			for (size_t k = 0; k < n; k++)
				out[o++] = (unsigned char)(acc >> (16 - 8 * k));
			acc = 0;
		}
	}
	return (long)o;
}

static void b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = B64[v >> 18 & 63];
		out[o++] = B64[v >> 12 & 63];
		out[o++] = i + 1 < len ? B64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? B64[v & 63] : '=';
	}
	out[o] = '\0';
}

struct creds {
	bool ok;
	char user[MAX_SASL_LINE + 1];
	char pass[MAX_SASL_LINE + 1];
};

/* RFC 4616 on the decoded octets, for buffers of bufsize. */
static void ref_plain(const unsigned char *raw, long n, size_t bufsize, struct creds *c)
{
	c->ok = false;
	if (n < 0)
		return;
	const unsigned char *end = raw + n;
	const unsigned char *z = raw;
	const unsigned char *nul1 = memchr(z, '\0', (size_t)n);
	if (!nul1)
		return;
	const unsigned char *u = nul1 + 1;
	const unsigned char *nul2 = memchr(u, '\0', (size_t)(end - u));
	if (!nul2)
		return;
	const unsigned char *p = nul2 + 1;
	size_t zl = (size_t)(nul1 - z), ul = (size_t)(nul2 - u), pl = (size_t)(end - p);
	if (memchr(p, '\0', pl) || ul == 0 || ul >= bufsize || pl >= bufsize)
		return;
	if (zl != 0 && (zl != ul || memcmp(z, u, zl) != 0))
		return;
	memcpy(c->user, u, ul);
	c->user[ul] = '\0';
	memcpy(c->pass, p, pl);
	c->pass[pl] = '\0';
	c->ok = true;
}

static void check_one(const char *line, size_t bufsize)
{
	static unsigned char raw[4 * MAX_SASL_LINE];
	struct creds want, got;
	ref_plain(raw, ref_b64_decode(line, raw, MAX_SASL_LINE), bufsize, &want);
	memset(&got, 0x55, sizeof(got));
	got.ok = sasl_plain_decode(line, got.user, got.pass, bufsize) == 0;
	FZ_CHECK(got.ok == want.ok, "decoder says %s, reference says %s", got.ok ? "ok" : "bad",
		 want.ok ? "ok" : "bad");
	if (!got.ok)
		return;
	FZ_CHECK(strcmp(got.user, want.user) == 0 && strcmp(got.pass, want.pass) == 0,
		 "credentials differ from the reference");

	/* Encode "\0user\0pass" again: it must decode to the same. */
	static char again[4 * MAX_SASL_LINE];
	size_t ul = strlen(want.user), pl = strlen(want.pass);
	raw[0] = '\0';
	memcpy(raw + 1, want.user, ul + 1);
	memcpy(raw + 2 + ul, want.pass, pl);
	b64_encode(raw, 2 + ul + pl, again);
	struct creds back;
	FZ_CHECK(sasl_plain_decode(again, back.user, back.pass, bufsize) == 0 &&
		 strcmp(back.user, want.user) == 0 && strcmp(back.pass, want.pass) == 0,
		 "re-encoded credentials do not decode");
}

/* AUTH LOGIN: the reference's octets as one string, -2 for a NUL, -1 when bad or too long. */
static void check_text(const char *line, size_t bufsize)
{
	static unsigned char raw[4 * MAX_SASL_LINE];
	static char got[MAX_SASL_LINE + 1];
	long n = ref_b64_decode(line, raw, MAX_SASL_LINE);
	long want = n < 0 ? -1 : memchr(raw, '\0', (size_t)n) ? -2 : (size_t)n >= bufsize ? -1 : n;
	memset(got, 0x55, sizeof(got));
	long rc = sasl_text_decode(line, got, bufsize);
	FZ_CHECK(rc == want, "sasl_text_decode says %ld, the reference %ld", rc, want);
	if (rc >= 0)
		FZ_CHECK(got[rc] == '\0' && memcmp(got, raw, (size_t)rc) == 0,
			 "decoded text differs from the reference");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* What the session hands over: one line, at most MAX_SASL_LINE octets, no NUL. */
	char line[MAX_SASL_LINE + 1];
	if (size > MAX_SASL_LINE || memchr(data, '\0', size))
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	check_one(line, MAX_SASL_LINE + 1);
	check_one(line, SMALL_BUF);
	check_text(line, MAX_SASL_LINE + 1);
	check_text(line, SMALL_BUF);
	return 0;
}
