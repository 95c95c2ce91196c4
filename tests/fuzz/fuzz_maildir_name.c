/*
 * Fuzz target: the Maildir file name parser (maildir_name_parse) and the
 * unique-id it gives (maildir_uidl_of), fed arbitrary octets, checked
 * against an independent reading of maildir.h:
 *
 *  - accepted exactly when 1..NAME_MAX octets, not starting with '.', with
 *    no '/', NUL or control character (below 0x20, or 0x7f);
 *  - base_len: the octets before the first ':' (never past the input); the
 *    stamp: the leading digits, UINT64_MAX when they overflow; ",S=" and
 *    ",W=": the first such field of the base whose digits run to the next
 *    ',' or the base's end without overflowing;
 *  - the unique-id, for any input: 1..70 characters of 0x21..0x7E; the base
 *    itself when that is one, else "X" and 32 lowercase hexadecimal digits;
 *    the same for the same input, and for the base alone (flags do not count).
 */
#include <linux/limits.h>   /* NAME_MAX (<limits.h> would find ./limits.h through -iquote) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "maildir.h"

#define NAME_FUZZ_MAX (2 * NAME_MAX)

/* The reference reading of name[0..n). */
struct ref {
	bool ok;
	size_t base_len;
	uint64_t stamp;
	bool has_size, has_vsize;
	uint64_t size, vsize;
};

/* digits d[0..n) (all digits, at least one) as a number; false when it overflows */
static FZ_UNTRACED bool ref_number(const char *d, size_t n, uint64_t *v)
{
	unsigned __int128 x = 0;
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (d[i] < '0' || d[i] > '9')
			return false;
		x = x * 10 + (unsigned)(d[i] - '0');
		if (x > UINT64_MAX)
			return false;
	}
	*v = (uint64_t)x;
	return true;
}

static FZ_UNTRACED void ref_parse(const char *name, size_t n, struct ref *r)
{
	memset(r, 0, sizeof(*r));
	r->ok = n >= 1 && n <= NAME_MAX && name[0] != '.';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			r->ok = false;
	}
	r->base_len = n;
	for (size_t i = 0; i < n; i++)
		if (name[i] == ':') {
			r->base_len = i;
			break;
		}
	size_t digits = 0;
	while (digits < r->base_len && name[digits] >= '0' && name[digits] <= '9')
		digits++;
	if (digits > 0 && !ref_number(name, digits, &r->stamp))
		r->stamp = UINT64_MAX;
	/* the fields: what lies between one ',' and the next (or the base's end) */
	for (size_t i = 0; i < r->base_len; i++) {
		if (name[i] != ',')
			continue;
		size_t end = i + 1;
		while (end < r->base_len && name[end] != ',')
			end++;
		const char *f = name + i + 1;
		size_t flen = end - i - 1;
		uint64_t v;
		if (flen >= 2 && f[1] == '=' && ref_number(f + 2, flen - 2, &v)) {
			if (f[0] == 'S' && !r->has_size) {
				r->has_size = true;
				r->size = v;
			} else if (f[0] == 'W' && !r->has_vsize) {
				r->has_vsize = true;
				r->vsize = v;
			}
		}
	}
}

static FZ_UNTRACED bool uidl_chars_ok(const char *u, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e)
			return false;
	return true;
}

static FZ_UNTRACED bool is_derived(const char *u)
{
	if (u[0] != 'X' || strlen(u) != 33)
		return false;
	for (int i = 1; i < 33; i++)
		if (!((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f')))
			return false;
	return true;
}

/* maildir_uidl_of on an exact-size copy (ASan sees a read past it), into a canary-guarded buffer. */
static void uidl(const char *d, size_t n, char out[MAX_UIDL_LEN + 1])
{
	char *copy = malloc(n ? n : 1);
	FZ_CHECK(copy != NULL, "malloc");
	memcpy(copy, d, n);
	char buf[MAX_UIDL_LEN + 1 + 8];
	memset(buf, 0x5a, sizeof(buf));
	maildir_uidl_of(copy, n, buf);
	free(copy);
	for (size_t i = MAX_UIDL_LEN + 1; i < sizeof(buf); i++)
		FZ_CHECK((unsigned char)buf[i] == 0x5a, "the unique-id ran past its buffer");
	FZ_CHECK(memchr(buf, '\0', MAX_UIDL_LEN + 1) != NULL, "the unique-id is not terminated");
	memcpy(out, buf, MAX_UIDL_LEN + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > NAME_FUZZ_MAX)
		return 0;
	const char *name = (const char *)data;
	char *copy = malloc(size ? size : 1);
	FZ_CHECK(copy != NULL, "malloc");
	memcpy(copy, data, size);
	struct maildir_name nm;
	int rc = maildir_name_parse(copy, size, &nm);
	free(copy);

	struct ref r;
	ref_parse(name, size, &r);
	FZ_CHECK(rc == 0 || rc == -1, "maildir_name_parse returned %d", rc);
	FZ_CHECK((rc == 0) == r.ok, "accepted %d, the reference says %d", rc == 0, r.ok);
	if (rc == 0) {
		FZ_CHECK(nm.base_len <= size, "base_len %zu of %zu", nm.base_len, size);
		FZ_CHECK(nm.base_len == r.base_len, "base_len %zu, want %zu", nm.base_len, r.base_len);
		FZ_CHECK(nm.stamp == r.stamp, "stamp %llu, want %llu",
			 (unsigned long long)nm.stamp, (unsigned long long)r.stamp);
		FZ_CHECK(nm.has_size == r.has_size && (!r.has_size || nm.size == r.size),
			 "S= %d %llu, want %d %llu", nm.has_size, (unsigned long long)nm.size,
			 r.has_size, (unsigned long long)r.size);
		FZ_CHECK(nm.has_vsize == r.has_vsize && (!r.has_vsize || nm.vsize == r.vsize),
			 "W= %d %llu, want %d %llu", nm.has_vsize, (unsigned long long)nm.vsize,
			 r.has_vsize, (unsigned long long)r.vsize);
	}

	char u[MAX_UIDL_LEN + 1], again[MAX_UIDL_LEN + 1], base[MAX_UIDL_LEN + 1];
	uidl(name, size, u);
	size_t ulen = strlen(u);
	FZ_CHECK(ulen >= 1 && ulen <= MAX_UIDL_LEN && uidl_chars_ok(u, ulen), "unique-id \"%s\"", u);
	uidl(name, size, again);
	FZ_CHECK(strcmp(u, again) == 0, "the same name, two unique-ids");
	uidl(name, r.base_len, base);
	FZ_CHECK(strcmp(u, base) == 0, "the flags change the unique-id");
	bool as_is = r.base_len >= 1 && r.base_len <= MAX_UIDL_LEN && uidl_chars_ok(name, r.base_len);
	if (as_is)
		FZ_CHECK(ulen == r.base_len && memcmp(u, name, ulen) == 0, "not the base itself");
	else
		FZ_CHECK(is_derived(u), "derived unique-id \"%s\"", u);
	return 0;
}
