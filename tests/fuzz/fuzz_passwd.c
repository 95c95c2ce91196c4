/*
 * Fuzz target: the --passwd file parser, fed arbitrary files. Checked against
 * an independent reading of the format (CONTRACT.md, "Virtual users file"):
 *
 *  - passwd_parse_line() on every line gives the reference's verdict and fields;
 *  - auth_login() reads the whole file through its own line reader (4 KiB
 *    reads, over-long lines, a last line without newline, NUL octets) and
 *    finds the same first entry: the right password logs in with the expected
 *    mailbox, a wrong one and an unknown user fail.
 *
 * crypt(3) is replaced by a stand-in below: a hash in the file chooses the
 * real algorithm's cost (bcrypt $2b$31$ runs for days), which would only
 * measure libxcrypt. The stand-in accepts FZ_PASSWORD for any setting.
 */
#define _GNU_SOURCE
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fuzz_util.h"
#include "limits.h"

#define FZ_PASSWORD "pw"
#define FZ_TEMPLATE "/var/mail/%u"
#define FZ_HOME     "/home/vmail"
#define FZ_UNKNOWN  "zz-nobody-zz"

/* The stand-in for libxcrypt's crypt_rn: the setting itself for FZ_PASSWORD, else failure. */
char *crypt_rn(const char *phrase, const char *setting, void *data, int size)
{
	struct crypt_data *cd = data;
	FZ_CHECK(phrase && setting && size >= (int)sizeof(*cd), "crypt_rn arguments");
	size_t len = strlen(setting);
	if (strcmp(phrase, FZ_PASSWORD) != 0 || len >= sizeof(cd->output)) {
		strcpy(cd->output, "*0");   /* libxcrypt's failure token */
		return cd->output;
	}
	memcpy(cd->output, setting, len + 1);
	return cd->output;
}

/* ---- the reference reading ---------------------------------------------- */

struct ref_entry {
	int verdict;                 /* 1 entry, 0 blank/comment, -1 malformed */
	char name[MAX_PASSWD_LINE + 1];
	char hash[MAX_PASSWD_LINE + 1];
	char mailbox[MAX_PASSWD_LINE + 1];
	bool has_mailbox;
};

/* Octets in [lo, hi]. */
static bool in(unsigned char c, unsigned lo, unsigned hi)
{
	return c >= lo && c <= hi;
}

/*
 * The length of the UTF-8 character at s (RFC 3629 section 4's ABNF, row by
 * row), 0 when none starts there or it is a C1 control (U+0080..U+009F).
 */
static size_t ref_utf8_char(const unsigned char *s, size_t left)
{
	if (left >= 2 && in(s[0], 0xc2, 0xdf) && in(s[1], 0x80, 0xbf))
		return s[0] == 0xc2 && s[1] <= 0x9f ? 0 : 2;
	if (left >= 3 && in(s[2], 0x80, 0xbf) &&
	    ((s[0] == 0xe0 && in(s[1], 0xa0, 0xbf)) || (in(s[0], 0xe1, 0xec) && in(s[1], 0x80, 0xbf)) ||
	     (s[0] == 0xed && in(s[1], 0x80, 0x9f)) || (in(s[0], 0xee, 0xef) && in(s[1], 0x80, 0xbf))))
		return 3;
	if (left >= 4 && in(s[2], 0x80, 0xbf) && in(s[3], 0x80, 0xbf) &&
	    ((s[0] == 0xf0 && in(s[1], 0x90, 0xbf)) || (in(s[0], 0xf1, 0xf3) && in(s[1], 0x80, 0xbf)) ||
	     (s[0] == 0xf4 && in(s[1], 0x80, 0x8f))))
		return 4;
	return 0;
}

/* Printable ASCII but / % : and blanks, or well-formed UTF-8 without C1 controls. */
static bool ref_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > MAX_USER_NAME || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			size_t n = ref_utf8_char((const unsigned char *)s + i, len - i);
			if (n == 0)
				return false;
			i += n;
			continue;
		}
		if (c < 0x21 || c > 0x7e || c == '/' || c == '%' || c == ':')
			return false;
		if (c == '.' && i + 1 < len && s[i + 1] == '.')
			return false;
		i++;
	}
	return true;
}

static bool ref_hash_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return len > 0;
}

/* Absolute, no control character, and every '%' starts one of %u, %h, %%. */
static bool ref_mailbox_ok(const char *s, size_t len)
{
	if (len == 0 || s[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%')
			continue;
		if (i + 1 == len || (s[i + 1] != 'u' && s[i + 1] != 'h' && s[i + 1] != '%'))
			return false;
		i++;
	}
	return true;
}

static void copy_field(char *dst, const char *src, size_t len)
{
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* One line as stored, LF included when it has one. */
static void ref_parse(const char *l, size_t len, struct ref_entry *e)
{
	e->verdict = -1;
	e->has_mailbox = false;
	if (len > MAX_PASSWD_LINE || memchr(l, '\0', len))
		return;   /* over-long lines and NUL octets are malformed */
	if (len > 0 && l[len - 1] == '\n') {
		len--;
		if (len > 0 && l[len - 1] == '\r')
			len--;
	}
	size_t blank = 0;
	while (blank < len && (l[blank] == ' ' || l[blank] == '\t'))
		blank++;
	if ((len > 0 && l[0] == '#') || blank == len) {
		e->verdict = 0;
		return;
	}
	const char *c1 = memchr(l, ':', len);
	if (!c1)
		return;
	const char *h = c1 + 1, *end = l + len;
	const char *c2 = memchr(h, ':', (size_t)(end - h));
	const char *hend = c2 ? c2 : end;
	if (c2 && memchr(c2 + 1, ':', (size_t)(end - c2 - 1)))
		return;
	if (!ref_name_ok(l, (size_t)(c1 - l)) || !ref_hash_ok(h, (size_t)(hend - h)))
		return;
	if (c2 && !ref_mailbox_ok(c2 + 1, (size_t)(end - c2 - 1)))
		return;
	copy_field(e->name, l, (size_t)(c1 - l));
	copy_field(e->hash, h, (size_t)(hend - h));
	if (c2) {
		copy_field(e->mailbox, c2 + 1, (size_t)(end - c2 - 1));
		e->has_mailbox = true;
	}
	e->verdict = 1;
}

/* %u, %h, %% expanded; false when malformed or too long. */
static bool ref_expand(const char *tmpl, const char *user, char *out)
{
	size_t o = 0;
	for (const char *p = tmpl; *p; p++) {
		const char *add = p;
		size_t n = 1;
		if (*p == '%') {
			p++;
			if (*p == 'u')
				add = user, n = strlen(user);
			else if (*p == 'h')
				add = FZ_HOME, n = strlen(FZ_HOME);
			else if (*p != '%')
				return false;
		}
		if (n >= MAX_PATH_LEN - o)
			return false;
		memcpy(out + o, add, n);
		o += n;
	}
	out[o] = '\0';
	return true;
}

/* ---- checks ------------------------------------------------------------- */

/* passwd_parse_line agrees with the reference on one line. */
static void check_line(const char *l, size_t len, struct ref_entry *want)
{
	static char buf[MAX_PASSWD_LINE + 2];
	ref_parse(l, len, want);
	if (len > MAX_PASSWD_LINE || memchr(l, '\0', len))
		return;   /* the reader refuses these before parsing */
	copy_field(buf, l, len);
	struct passwd_entry e;
	int got = passwd_parse_line(buf, &e);
	FZ_CHECK(got == want->verdict, "verdict %d, expected %d", got, want->verdict);
	if (got != 1)
		return;
	FZ_CHECK(strcmp(e.name, want->name) == 0 && strcmp(e.hash, want->hash) == 0,
		 "name/hash differ");
	FZ_CHECK((e.mailbox != NULL) == want->has_mailbox &&
		 (!e.mailbox || strcmp(e.mailbox, want->mailbox) == 0), "mailbox field differs");
	FZ_CHECK(auth_valid_username(e.name), "entry with an invalid name");
}

static void check_login(const struct auth_config *cfg, const char *user, const char *pass,
			const struct ref_entry *entry)
{
	struct account acct;
	enum auth_result got = auth_login(cfg, user, pass, &acct);
	enum auth_result want = AUTH_FAIL;
	char mailbox[MAX_PATH_LEN];
	bool usable = entry && entry->hash[0] != '!' && entry->hash[0] != '*' &&
		      strlen(entry->hash) < CRYPT_OUTPUT_SIZE;
	if (usable && strcmp(pass, FZ_PASSWORD) == 0)
		want = ref_expand(entry->has_mailbox ? entry->mailbox : FZ_TEMPLATE, user, mailbox)
		       ? AUTH_OK : AUTH_ERROR;
	FZ_CHECK(got == want, "login %s/%s: %d, expected %d", user, pass, (int)got, (int)want);
	if (got == AUTH_OK)
		FZ_CHECK(!acct.system && strcmp(acct.name, user) == 0 &&
			 strcmp(acct.mailbox, mailbox) == 0 && strcmp(acct.home, FZ_HOME) == 0,
			 "account %s: mailbox %s, expected %s", acct.name, acct.mailbox, mailbox);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	static struct ref_entry line, first;
	if (fd < 0) {
		fd = fz_memfd("", 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	const char *d = (const char *)data;
	bool found = false, unknown_listed = false;
	for (size_t pos = 0; pos < size; ) {
		const char *nl = memchr(d + pos, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - (d + pos)) + 1 : size - pos;
		check_line(d + pos, len, &line);
		if (line.verdict == 1 && !found) {
			first = line;
			found = true;
		}
		if (line.verdict == 1 && strcmp(line.name, FZ_UNKNOWN) == 0)
			unknown_listed = true;
		pos += len;
	}
	fz_memfd_set(fd, data, size);
	const struct auth_config cfg = {
		.passwd_file = path, .mailbox_template = FZ_TEMPLATE, .virtual_home = FZ_HOME,
	};
	if (!unknown_listed)
		check_login(&cfg, FZ_UNKNOWN, FZ_PASSWORD, NULL);
	if (found) {
		check_login(&cfg, first.name, FZ_PASSWORD, &first);
		check_login(&cfg, first.name, "wrong", &first);
	}
	return 0;
}
