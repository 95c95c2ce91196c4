/*
 * Fuzz target: the PROXY header parser (proxy_parse), fed arbitrary octets,
 * checked for what must hold of any answer:
 *
 *  - PROXY_OK: the header's length is within the input and within the
 *    specification's limits (v1 107 octets ending CR LF, v2 16 + its own
 *    length); a client address is one inet_pton reads back the same; the
 *    header alone parses to the same answer, and so does the header with
 *    anything after it (nothing past the header is ever looked at);
 *  - PROXY_MORE: the input is short of the largest header, and every shorter
 *    prefix of it is PROXY_MORE too;
 *  - the answer never depends on octets past the header or past the input.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "limits.h"
#include "proxy.h"

static enum proxy_status run(const uint8_t *d, size_t n, size_t *used, struct proxy_info *pi)
{
	char why[128];
	/* A copy of exactly n octets: ASan catches a read past the input. */
	uint8_t *copy = malloc(n ? n : 1);
	FZ_CHECK(copy != NULL, "malloc");
	memcpy(copy, d, n);
	enum proxy_status st = proxy_parse(copy, n, used, pi, why, sizeof(why));
	free(copy);
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * PROXY_MAX_HEADER)
		return 0;
	size_t used;
	struct proxy_info pi;
	enum proxy_status st = run(data, size, &used, &pi);
	if (st == PROXY_MORE) {
		FZ_CHECK(size < PROXY_MAX_HEADER, "MORE after %zu octets", size);
		for (size_t k = 0; k < size; k++) {
			size_t u;
			struct proxy_info p2;
			FZ_CHECK(run(data, k, &u, &p2) == PROXY_MORE, "a prefix of %zu is not MORE", k);
		}
		return 0;
	}
	if (st != PROXY_OK)
		return 0;
	FZ_CHECK(used > 0 && used <= size && used <= PROXY_MAX_HEADER, "used %zu of %zu", used, size);
	if (data[0] == 'P')
		FZ_CHECK(used <= PROXY_V1_MAX && data[used - 2] == '\r' && data[used - 1] == '\n',
			 "v1 header of %zu octets", used);
	if (pi.have_addr) {
		unsigned char a[16];
		char back[INET6_ADDRSTRLEN];
		int fam = strchr(pi.addr, ':') ? AF_INET6 : AF_INET;
		FZ_CHECK(inet_pton(fam, pi.addr, a) == 1 && inet_ntop(fam, a, back, sizeof(back)) &&
			 strcmp(back, pi.addr) == 0, "address %s", pi.addr);
	}
	size_t u2;
	struct proxy_info p2;
	FZ_CHECK(run(data, used, &u2, &p2) == PROXY_OK && u2 == used &&
		 memcmp(&p2, &pi, sizeof(pi)) == 0, "the header alone parses differently");
	return 0;
}
