/* Unit tests for auth.c: names, passwd lines, hashes, templates, logins. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <crypt.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "testutil.h"

/* ---- Helpers ---- */

#define MAX_CAPTURED 64

struct log_capture {
	int count;
	int priority[MAX_CAPTURED];
	char line[MAX_CAPTURED][1024];
};

static void capture_hook(int priority, const char *msg, void *ctx)
{
	struct log_capture *c = ctx;
	if (c->count >= MAX_CAPTURED)
		return;
	c->priority[c->count] = priority;
	snprintf(c->line[c->count], sizeof(c->line[0]), "%s", msg);
	c->count++;
}

/* Index of the first captured line containing needle, or -1. */
static int log_find(const struct log_capture *c, const char *needle)
{
	for (int i = 0; i < c->count; i++)
		if (strstr(c->line[i], needle))
			return i;
	return -1;
}

static int setup_capture(void **state)
{
	struct log_capture *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	log_set_hook(capture_hook, c);
	*state = c;
	return 0;
}

static int teardown_capture(void **state)
{
	log_set_hook(NULL, NULL);
	free(*state);
	return 0;
}

/* A cheap hash for tests: prefix with count rounds (0: method default). */
static void make_hash(const char *prefix, unsigned long count, const char *password,
		      char *out, size_t outlen)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	assert_non_null(crypt_gensalt_rn(prefix, count, NULL, 0, setting, sizeof(setting)));
	struct crypt_data data;
	memset(&data, 0, sizeof(data));
	const char *h = crypt_rn(password, setting, &data, (int)sizeof(data));
	assert_non_null(h);
	assert_true(strlen(h) < outlen);
	strcpy(out, h);
}

static void cheap_hash(const char *password, char *out, size_t outlen)
{
	make_hash("$5$", 1000, password, out, outlen);
}

/* ---- auth_valid_username ---- */

static void test_valid_username(void **state)
{
	(void)state;
	char longest[MAX_USER_NAME + 1], too_long[MAX_USER_NAME + 2];
	memset(longest, 'a', MAX_USER_NAME);
	longest[MAX_USER_NAME] = '\0';
	memset(too_long, 'a', MAX_USER_NAME + 1);
	too_long[MAX_USER_NAME + 1] = '\0';
	static const struct { const char *name; bool ok; } cases[] = {
		{ "alice", true }, { "a", true }, { "bob.smith", true },
		{ "a-b", true }, { "user_1", true }, { "x@example.org", true },
		{ "a.b.c", true }, { "~!", true },
		{ "", false }, { ".", false }, { "..", false }, { ".hidden", false },
		{ "-rf", false }, { "a/b", false }, { "/etc", false }, { "a%b", false },
		{ "%u", false }, { "a:b", false }, { "a..b", false }, { "a..", false },
		{ "a b", false }, { " a", false }, { "a\tb", false }, { "a\nb", false },
		{ "a\rb", false }, { "a\x7f", false },
		/* UTF-8 (RFC 6856): well-formed, and the same rules for its ASCII part. */
		{ "\xc3\xa9t\xc3\xa9", true }, { "j\xc3\xbcrgen", true },
		{ "\xe6\x97\xa5\xe6\x9c\xac", true }, { "\xf0\x9d\x84\x9e", true },
		{ "\xf4\x8f\xbf\xbf", true }, { "\xc2\xa0", true },
		{ "j\xc3\xbc/rgen", false }, { ".j\xc3\xbcrgen", false }, { "j\xc3\xbc:x", false },
		{ "j\xc3\xbc..x", false }, { "j\xc3\xbc%u", false }, { "j\xc3\xbc x", false },
		{ "j\xfcrgen", false }, { "\xc0\xaf", false }, { "\xed\xa0\x80", false },
		{ "\xf4\x90\x80\x80", false }, { "j\xc3", false }, { "\x80", false },
		{ "a\xc2\x85", false }, { "a\xc2\x9f", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (auth_valid_username(cases[i].name) != cases[i].ok)
			fail_msg("auth_valid_username(\"%s\") should be %d", cases[i].name,
				 cases[i].ok);
	}
	assert_true(auth_valid_username(longest));
	assert_false(auth_valid_username(too_long));
	assert_false(auth_valid_username(NULL));
	/* The limit counts octets: 32 two-octet characters fit, one octet more does not. */
	char wide[MAX_USER_NAME + 2] = "";
	for (int i = 0; i < MAX_USER_NAME / 2; i++)
		strcat(wide, "\xc3\xa9");
	assert_true(auth_valid_username(wide));
	strcat(wide, "a");
	assert_false(auth_valid_username(wide));
}

/* ---- auth_name_encoding_problem: the one UTF-8 check ---- */

static void test_name_encoding_problem(void **state)
{
	(void)state;
	static const char *const good[] = {
		"alice", "j\xc3\xbcrgen", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9d\x84\x9e",
		"\xc2\xa0", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbd", "\xf0\x90\x80\x80",
		"\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80", "a b", "",
	};
	static const char *const not_utf8[] = {
		"j\xfcrgen", "\xc0\x80", "\xc1\xbf", "\xe0\x80\xaf", "\xe0\x9f\xbf",
		"\xf0\x80\x80\xaf", "\xf0\x8f\xbf\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff",
		"\x80", "a\xbf", "j\xc3", "\xe2\x82", "\xe2\x82x", "\xf0\x9d\x84", "\xc3\xc3\xbc",
	};
	static const char *const control[] = {
		"a\x01", "\x1f", "a\tb", "a\nb", "a\rb", "\x7f", "\xc2\x80", "a\xc2\x85", "\xc2\x9f",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (auth_name_encoding_problem(good[i]))
			fail_msg("good[%zu] refused: %s", i, auth_name_encoding_problem(good[i]));
	for (size_t i = 0; i < sizeof(not_utf8) / sizeof(not_utf8[0]); i++) {
		const char *why = auth_name_encoding_problem(not_utf8[i]);
		if (!why || !strstr(why, "UTF-8"))
			fail_msg("not_utf8[%zu]: %s", i, why ? why : "accepted");
	}
	for (size_t i = 0; i < sizeof(control) / sizeof(control[0]); i++) {
		const char *why = auth_name_encoding_problem(control[i]);
		if (!why || !strstr(why, "control"))
			fail_msg("control[%zu]: %s", i, why ? why : "accepted");
	}
}

/* ---- passwd_parse_line ---- */

static void test_parse_line(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		int rc;
		const char *name, *hash, *mailbox;
	} cases[] = {
		{ "alice:$5$abc$def\n", 1, "alice", "$5$abc$def", NULL },
		{ "alice:$5$abc$def\r\n", 1, "alice", "$5$abc$def", NULL },
		{ "alice:$5$abc$def", 1, "alice", "$5$abc$def", NULL },
		{ "bob:$y$j9T$x$y:/srv/mail/%u\n", 1, "bob", "$y$j9T$x$y", "/srv/mail/%u" },
		{ "bob:h:/srv/mail box/%u\r\n", 1, "bob", "h", "/srv/mail box/%u" },
		{ "locked:!$5$abc$def\n", 1, "locked", "!$5$abc$def", NULL },
		{ "", 0, NULL, NULL, NULL },
		{ "\n", 0, NULL, NULL, NULL },
		{ "\r\n", 0, NULL, NULL, NULL },
		{ "  \t \n", 0, NULL, NULL, NULL },
		{ " \t\r\n", 0, NULL, NULL, NULL },
		{ "# a comment\n", 0, NULL, NULL, NULL },
		{ "#alice:$5$abc$def\r\n", 0, NULL, NULL, NULL },
		{ "alice\n", -1, NULL, NULL, NULL },            /* one field */
		{ ":hash\n", -1, NULL, NULL, NULL },            /* empty name */
		{ "alice:\n", -1, NULL, NULL, NULL },           /* empty hash */
		{ "alice::/m\n", -1, NULL, NULL, NULL },        /* empty hash */
		{ "alice:h:/m:x\n", -1, NULL, NULL, NULL },     /* four fields */
		{ "alice:h:/m:\n", -1, NULL, NULL, NULL },      /* four fields */
		{ "alice:h:\n", -1, NULL, NULL, NULL },         /* empty mailbox */
		{ "alice:h:mail/%u\n", -1, NULL, NULL, NULL },  /* relative */
		{ "alice:h:%h/mbox\n", -1, NULL, NULL, NULL },  /* not absolute */
		{ "alice:h:/m/\x01x\n", -1, NULL, NULL, NULL }, /* control char */
		{ "alice:ha sh\n", -1, NULL, NULL, NULL },      /* space in hash */
		{ "alice:h\tx\n", -1, NULL, NULL, NULL },       /* tab in hash */
		{ "alice:h\x01\n", -1, NULL, NULL, NULL },      /* control in hash */
		{ "alice:h\rx\n", -1, NULL, NULL, NULL },       /* CR in hash */
		{ "alice:h\r\r\n", -1, NULL, NULL, NULL },      /* only one CRLF stripped */
		{ "alice:h \n", -1, NULL, NULL, NULL },         /* trailing space */
		{ " alice:h\n", -1, NULL, NULL, NULL },         /* space in name */
		{ "../x:h\n", -1, NULL, NULL, NULL },           /* invalid name */
		{ "a/b:h\n", -1, NULL, NULL, NULL },            /* invalid name */
		{ "-x:h\n", -1, NULL, NULL, NULL },             /* invalid name */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s", cases[i].line);
		struct passwd_entry e;
		int rc = passwd_parse_line(buf, &e);
		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d, expected %d", i, rc, cases[i].rc);
		if (rc != 1)
			continue;
		assert_string_equal(e.name, cases[i].name);
		assert_string_equal(e.hash, cases[i].hash);
		if (cases[i].mailbox)
			assert_string_equal(e.mailbox, cases[i].mailbox);
		else
			assert_null(e.mailbox);
	}
}

/* A malformed line says why (the log line carries it). */
static void test_parse_line_reasons(void **state)
{
	(void)state;
	static const struct {
		const char *line, *problem;
	} cases[] = {
		{ "alice\n", "no ':' after the name" },
		{ ":hash\n", "empty name" },
		{ "-x:h\n", "invalid user name" },
		{ "alice:\n", "empty hash" },
		{ "alice::/m\n", "empty hash" },
		{ "alice:ha sh\n", "hash not crypt(3)-like" },
		{ "alice:h:/m:x\n", "more than three fields" },
		{ "alice:h:mail/%u\n", "mailbox field not an absolute path" },
		{ "alice:h:\n", "mailbox field not an absolute path" },
		{ "alice:h:/m/%U\n", "bad % escape in the mailbox field" },
		{ "alice:h:/m/%\n", "bad % escape in the mailbox field" },
		{ "alice:h:/m/\x01x\n", "control character in the mailbox field" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s", cases[i].line);
		struct passwd_entry e;
		assert_int_equal(passwd_parse_line(buf, &e), -1);
		assert_non_null(e.problem);
		if (strncmp(e.problem, cases[i].problem, strlen(cases[i].problem)) != 0)
			fail_msg("case %zu: \"%s\", expected \"%s\"", i, e.problem, cases[i].problem);
	}
	char ok[] = "bob:$y$x:/srv/%u/mbox\n";
	struct passwd_entry e;
	assert_int_equal(passwd_parse_line(ok, &e), 1);
	assert_null(e.problem);
}

/* ---- auth_check_hash / auth_make_hash ---- */

static void test_make_hash_round_trip(void **state)
{
	(void)state;
	char hash[CRYPT_OUTPUT_SIZE];
	assert_int_equal(auth_make_hash("correct horse", hash, sizeof(hash)), 0);
	const char *method = crypt_preferred_method();
	assert_non_null(method);
	assert_memory_equal(hash, method, strlen(method));
	assert_true(auth_check_hash("correct horse", hash));
	assert_false(auth_check_hash("correct horsE", hash));
	assert_false(auth_check_hash("correct horse ", hash));
	assert_false(auth_check_hash("", hash));

	/* A fresh salt every time. */
	char again[CRYPT_OUTPUT_SIZE];
	assert_int_equal(auth_make_hash("correct horse", again, sizeof(again)), 0);
	assert_string_not_equal(hash, again);

	/* Exactly fitting works; one octet less is refused, never truncated. */
	char exact[CRYPT_OUTPUT_SIZE];
	size_t need = strlen(hash) + 1;
	assert_int_equal(auth_make_hash("x", exact, need), 0);
	assert_int_equal(strlen(exact), need - 1);
	assert_int_equal(auth_make_hash("x", exact, need - 1), -1);
	assert_int_equal(auth_make_hash("x", exact, 0), -1);
}

static void test_check_hash_methods(void **state)
{
	(void)state;
	static const struct { const char *prefix; unsigned long count; } methods[] = {
		{ "$y$", 1 }, { "$6$", 1000 }, { "$5$", 1000 }, { "$2b$", 4 },
	};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char hash[CRYPT_OUTPUT_SIZE];
		make_hash(methods[i].prefix, methods[i].count, "s3cret", hash, sizeof(hash));
		assert_memory_equal(hash, methods[i].prefix, strlen(methods[i].prefix));
		if (!auth_check_hash("s3cret", hash))
			fail_msg("%s: right password rejected", methods[i].prefix);
		if (auth_check_hash("s3cre", hash) || auth_check_hash("S3cret", hash))
			fail_msg("%s: wrong password accepted", methods[i].prefix);
	}
}

static void test_check_hash_unusable(void **state)
{
	(void)state;
	char hash[CRYPT_OUTPUT_SIZE], mangled[CRYPT_OUTPUT_SIZE + 2];
	cheap_hash("pw", hash, sizeof(hash));
	assert_true(auth_check_hash("pw", hash));

	snprintf(mangled, sizeof(mangled), "!%s", hash);   /* usermod -L */
	assert_false(auth_check_hash("pw", mangled));
	snprintf(mangled, sizeof(mangled), "*%s", hash);
	assert_false(auth_check_hash("pw", mangled));
	snprintf(mangled, sizeof(mangled), "%s", hash);    /* truncated */
	mangled[strlen(mangled) - 1] = '\0';
	assert_false(auth_check_hash("pw", mangled));
	snprintf(mangled, sizeof(mangled), "%sA", hash);   /* one octet more */
	assert_false(auth_check_hash("pw", mangled));
	snprintf(mangled, sizeof(mangled), "%s", hash);    /* last octet changed */
	mangled[strlen(mangled) - 1] ^= 1;
	assert_false(auth_check_hash("pw", mangled));

	/* The setting alone (no checksum) must not match its own crypt output. */
	const char *last = strrchr(hash, '$');
	assert_non_null(last);
	snprintf(mangled, sizeof(mangled), "%.*s", (int)(last - hash), hash);
	assert_false(auth_check_hash("pw", mangled));

	assert_false(auth_check_hash("pw", ""));
	assert_false(auth_check_hash("", ""));
	assert_false(auth_check_hash("pw", "!"));
	assert_false(auth_check_hash("pw", "*"));
	assert_false(auth_check_hash("pw", "*0"));
	assert_false(auth_check_hash("pw", "garbage"));
	assert_false(auth_check_hash("pw", "$9$nonsense$"));
	assert_false(auth_check_hash("pw", NULL));
}

/* ---- auth_expand_mailbox ---- */

static void test_expand_mailbox(void **state)
{
	(void)state;
	static const struct {
		const char *tmpl, *user, *home, *want;   /* want NULL: -1 */
	} cases[] = {
		{ "/var/mail/%u", "alice", "/home/alice", "/var/mail/alice" },
		{ "%h/Mail/inbox", "alice", "/home/alice", "/home/alice/Mail/inbox" },
		{ "/m/%u/%u", "bob", NULL, "/m/bob/bob" },
		{ "/m/%%u", "bob", NULL, "/m/%u" },
		{ "/m/100%%", "bob", NULL, "/m/100%" },
		{ "%h/%u%%%h", "u", "/h", "/h/u%/h" },
		{ "/plain", "bob", NULL, "/plain" },
		{ "", "bob", NULL, "" },
		{ "/m/%", "bob", "/h", NULL },       /* trailing lone % */
		{ "%", "bob", "/h", NULL },
		{ "/m/%d", "bob", "/h", NULL },      /* unknown escape */
		{ "/m/%U", "bob", "/h", NULL },
		{ "/m/%/x", "bob", "/h", NULL },
		{ "%h/mbox", "bob", NULL, NULL },    /* %h without a home */
		{ "%h/mbox", "bob", "", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		memset(out, 'X', sizeof(out));
		int rc = auth_expand_mailbox(cases[i].tmpl, cases[i].user, cases[i].home,
					     out, sizeof(out));
		if (!cases[i].want) {
			if (rc != -1)
				fail_msg("case %zu (%s): expected -1, got \"%s\"", i,
					 cases[i].tmpl, out);
			continue;
		}
		if (rc != 0)
			fail_msg("case %zu (%s): failed", i, cases[i].tmpl);
		assert_string_equal(out, cases[i].want);
	}
}

/* The template checks of start-up: the same escapes as the expansion. */
static void test_template_problem(void **state)
{
	(void)state;
	static const struct {
		const char *tmpl, *problem;   /* problem NULL: fine; else how the reason starts */
	} cases[] = {
		{ "/var/mail/%u", NULL },
		{ "%h/Mail/inbox", NULL },
		{ "%h", NULL },
		{ "/m/100%%/%u", NULL },
		{ "/plain", NULL },
		{ "/m/%U", "unknown escape %U" },
		{ "/m/%d/x", "unknown escape %d" },
		{ "/m/%", "a lone '%'" },
		{ "mail/%u", "not an absolute path" },
		{ "%u/mbox", "not an absolute path" },
		{ "%%/x", "not an absolute path" },
		{ "", "not an absolute path" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = auth_template_problem(cases[i].tmpl);
		if (!cases[i].problem && p)
			fail_msg("case %zu (%s): refused: %s", i, cases[i].tmpl, p);
		if (cases[i].problem && (!p || strncmp(p, cases[i].problem,
						       strlen(cases[i].problem)) != 0))
			fail_msg("case %zu (%s): \"%s\", expected \"%s\"", i, cases[i].tmpl,
				 p ? p : "(accepted)", cases[i].problem);
	}
	/* Longer than any path: refused, not cut. */
	char longer[MAX_PATH_LEN + 8];
	memset(longer, 'x', sizeof(longer) - 1);
	longer[0] = '/';
	longer[sizeof(longer) - 1] = '\0';
	assert_string_equal(auth_template_problem(longer), "too long");
}

static void test_template_fixed_dir(void **state)
{
	(void)state;
	static const struct {
		const char *tmpl, *dir;
	} cases[] = {
		{ "/var/mail/%u", "/var/mail" },
		{ "/var/mail/nonexistent-dir/%u", "/var/mail/nonexistent-dir" },
		{ "/var/mail/all", "/var/mail" },
		{ "/srv/%u/inbox", "/srv" },
		{ "/srv/x%u/inbox", "/srv" },
		{ "/m/100%%/%u", "/m" },
		{ "/%u", "/" },
		{ "%h/Mail/inbox", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		size_t n = auth_template_fixed_dir(cases[i].tmpl, out, sizeof(out));
		assert_string_equal(out, cases[i].dir);
		assert_int_equal(n, strlen(cases[i].dir));
	}
	char small[4];
	assert_int_equal(auth_template_fixed_dir("/var/mail/%u", small, sizeof(small)), 0);
	assert_string_equal(small, "");
}

static void test_expand_mailbox_overflow(void **state)
{
	(void)state;
	char out[32];
	/* "/var/mail/alice" is 15 octets: 16 with the NUL fits, 15 does not. */
	assert_int_equal(auth_expand_mailbox("/var/mail/%u", "alice", NULL, out, 16), 0);
	assert_string_equal(out, "/var/mail/alice");
	assert_int_equal(auth_expand_mailbox("/var/mail/%u", "alice", NULL, out, 15), -1);
	assert_int_equal(auth_expand_mailbox("/var/mail/%u", "alice", NULL, out, 1), -1);
	assert_int_equal(auth_expand_mailbox("/var/mail/%u", "alice", NULL, out, 0), -1);
	/* The overflow may come from the home too. */
	assert_int_equal(auth_expand_mailbox("%h/x", "a", "/h", out, 5), 0);
	assert_int_equal(auth_expand_mailbox("%h/x", "a", "/h", out, 4), -1);
	/* A template far longer than the buffer. */
	char big[MAX_PATH_LEN * 2];
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	char path[MAX_PATH_LEN];
	assert_int_equal(auth_expand_mailbox(big, "a", NULL, path, sizeof(path)), -1);
	big[MAX_PATH_LEN - 1] = '\0';
	assert_int_equal(auth_expand_mailbox(big, "a", NULL, path, sizeof(path)), 0);
	assert_int_equal(strlen(path), MAX_PATH_LEN - 1);
}

/* ---- auth_login: virtual users ---- */

/* Hashes of the fixture users, made once per test. */
struct fixture {
	char alice[CRYPT_OUTPUT_SIZE];    /* "alice-pw" */
	char bob[CRYPT_OUTPUT_SIZE];      /* "bob-pw" */
	char carol[CRYPT_OUTPUT_SIZE];    /* "carol-pw" */
	char other[CRYPT_OUTPUT_SIZE];    /* "other-pw" */
};

static void fixture_init(struct fixture *f)
{
	cheap_hash("alice-pw", f->alice, sizeof(f->alice));
	cheap_hash("bob-pw", f->bob, sizeof(f->bob));
	cheap_hash("carol-pw", f->carol, sizeof(f->carol));
	cheap_hash("other-pw", f->other, sizeof(f->other));
}

/* Write the standard passwd file; returns its path. */
static const char *write_fixture_file(const struct fixture *f, const char *file)
{
	char text[8192];
	int n = snprintf(text, sizeof(text),
			 "# pop3d virtual users\n"               /* 1 */
			 "\n"                                    /* 2 */
			 "alice:%s\n"                            /* 3 */
			 "bob:%s:/srv/mail/%%u.mbox\n"           /* 4 */
			 "this line is broken\n"                 /* 5 */
			 "carol:%s\r\n"                          /* 6 */
			 "alice:%s:/srv/evil\n"                  /* 7: duplicate */
			 "dave:\n",                              /* 8: empty hash */
			 f->alice, f->bob, f->carol, f->other);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	const char *path = test_path(file);
	test_write_file(path, text, (size_t)n);
	return path;
}

static struct auth_config virtual_config(const char *path)
{
	struct auth_config cfg = {
		.passwd_file = path,
		.mailbox_template = "/var/mail/%u",
		.virtual_home = NULL,
	};
	return cfg;
}

static void test_login_virtual_ok(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct auth_config cfg = virtual_config(write_fixture_file(&f, "passwd-ok"));
	struct account acct;

	assert_int_equal(auth_login(&cfg, "alice", "alice-pw", &acct), AUTH_OK);
	assert_string_equal(acct.name, "alice");
	assert_false(acct.system);
	assert_string_equal(acct.home, "");
	assert_string_equal(acct.mailbox, "/var/mail/alice");

	/* The per-user third field overrides the template, %-expanded. */
	assert_int_equal(auth_login(&cfg, "bob", "bob-pw", &acct), AUTH_OK);
	assert_string_equal(acct.mailbox, "/srv/mail/bob.mbox");

	/* A CRLF line works. */
	assert_int_equal(auth_login(&cfg, "carol", "carol-pw", &acct), AUTH_OK);
	assert_string_equal(acct.mailbox, "/var/mail/carol");

	/* With a --user home, %h expands and home is set. */
	cfg.virtual_home = "/srv/vmail";
	cfg.mailbox_template = "%h/%u/mbox";
	assert_int_equal(auth_login(&cfg, "alice", "alice-pw", &acct), AUTH_OK);
	assert_string_equal(acct.home, "/srv/vmail");
	assert_string_equal(acct.mailbox, "/srv/vmail/alice/mbox");
}

static void test_login_virtual_fail(void **state)
{
	struct log_capture *log = *state;
	struct fixture f;
	fixture_init(&f);
	struct auth_config cfg = virtual_config(write_fixture_file(&f, "passwd-fail"));
	struct account acct;

	assert_int_equal(auth_login(&cfg, "alice", "Sekr1t-XYZ", &acct), AUTH_FAIL);
	assert_string_equal(acct.mailbox, "");
	int i = log_find(log, "login failed for alice: wrong password");
	assert_true(i >= 0);
	assert_int_equal(log->priority[i], LOG_NOTICE);
	assert_int_equal(log_find(log, "Sekr1t"), -1);   /* never log a password */

	/* Passwords differing only in case or length fail. */
	assert_int_equal(auth_login(&cfg, "alice", "Alice-pw", &acct), AUTH_FAIL);
	assert_int_equal(auth_login(&cfg, "alice", "alice-p", &acct), AUTH_FAIL);
	assert_int_equal(auth_login(&cfg, "alice", "", &acct), AUTH_FAIL);

	/* Unknown users fail like wrong passwords. */
	assert_int_equal(auth_login(&cfg, "zoe", "alice-pw", &acct), AUTH_FAIL);
	assert_true(log_find(log, "login failed for zoe: unknown user") >= 0);

	/* A name that matches only case-insensitively is another user. */
	assert_int_equal(auth_login(&cfg, "Alice", "alice-pw", &acct), AUTH_FAIL);

	/* A line with an empty hash is no account. */
	assert_int_equal(auth_login(&cfg, "dave", "", &acct), AUTH_FAIL);

	/* Invalid names fail without being looked up, and are not logged as given. */
	assert_int_equal(auth_login(&cfg, "../alice", "alice-pw", &acct), AUTH_FAIL);
	assert_int_equal(auth_login(&cfg, "", "alice-pw", &acct), AUTH_FAIL);
	assert_int_equal(auth_login(&cfg, NULL, "alice-pw", &acct), AUTH_FAIL);
	assert_true(log_find(log, "login failed: invalid user name") >= 0);
	assert_int_equal(log_find(log, "../alice"), -1);
}

static void test_login_virtual_malformed_logged(void **state)
{
	struct log_capture *log = *state;
	struct fixture f;
	fixture_init(&f);
	struct auth_config cfg = virtual_config(write_fixture_file(&f, "passwd-mal"));
	struct account acct;
	assert_int_equal(auth_login(&cfg, "carol", "carol-pw", &acct), AUTH_OK);
	int i = log_find(log, "line 5: malformed, skipped");
	assert_true(i >= 0);
	assert_int_equal(log->priority[i], LOG_WARNING);
	assert_non_null(strstr(log->line[i], cfg.passwd_file));
	assert_true(log_find(log, "line 8: malformed, skipped") >= 0);
	/* Each says why. */
	for (int k = 0; k < log->count; k++)
		if (strstr(log->line[k], "malformed, skipped"))
			assert_non_null(strstr(log->line[k], "skipped: "));
	/* Once per session: the next lookups read the file again, but say nothing new. */
	int lines = log->count;
	assert_int_equal(auth_login(&cfg, "carol", "carol-pw", &acct), AUTH_OK);
	assert_int_equal(auth_login(&cfg, "nobody-here", "x", &acct), AUTH_FAIL);
	for (int k = lines; k < log->count; k++)
		assert_null(strstr(log->line[k], "malformed"));
	/* Comments, blank lines and good entries are not reported. */
	for (int line = 1; line <= 7; line++) {
		char needle[32];
		snprintf(needle, sizeof(needle), "line %d:", line);
		if (line != 5)
			assert_int_equal(log_find(log, needle), -1);
	}
}

static void test_login_virtual_duplicate_first_wins(void **state)
{
	(void)state;
	struct fixture f;
	fixture_init(&f);
	struct auth_config cfg = virtual_config(write_fixture_file(&f, "passwd-dup"));
	struct account acct;
	/* Line 7 has alice with other-pw and a mailbox: it never applies. */
	assert_int_equal(auth_login(&cfg, "alice", "other-pw", &acct), AUTH_FAIL);
	assert_int_equal(auth_login(&cfg, "alice", "alice-pw", &acct), AUTH_OK);
	assert_string_equal(acct.mailbox, "/var/mail/alice");
}

static void test_login_virtual_missing_file(void **state)
{
	struct log_capture *log = *state;
	struct auth_config cfg = virtual_config(test_path("no-such-passwd"));
	struct account acct;
	assert_int_equal(auth_login(&cfg, "alice", "alice-pw", &acct), AUTH_ERROR);
	int i = log_find(log, "no-such-passwd");
	assert_true(i >= 0);
	assert_int_equal(log->priority[i], LOG_ERR);

	/* A directory cannot be read either. */
	cfg.passwd_file = test_tmpdir();
	assert_int_equal(auth_login(&cfg, "alice", "alice-pw", &acct), AUTH_ERROR);
}

static void test_login_virtual_long_line_skipped(void **state)
{
	struct log_capture *log = *state;
	char hash[CRYPT_OUTPUT_SIZE];
	cheap_hash("pw", hash, sizeof(hash));

	/* Line 1 is over-long, line 2 would fit, line 3 is fine. */
	size_t longlen = MAX_PASSWD_LINE + 100;
	size_t cap = longlen + 2 * MAX_PASSWD_LINE;
	char *text = malloc(cap);
	assert_non_null(text);
	int n = snprintf(text, cap, "long:%s:/", hash);
	assert_true(n > 0);
	memset(text + n, 'x', longlen - (size_t)n);
	size_t len = longlen;
	n = snprintf(text + len, cap - len, "\nuser:%s\n", hash);
	assert_true(n > 0);
	len += (size_t)n;
	const char *path = test_path("passwd-long");
	test_write_file(path, text, len);
	free(text);

	struct auth_config cfg = virtual_config(path);
	struct account acct;
	assert_int_equal(auth_login(&cfg, "user", "pw", &acct), AUTH_OK);
	assert_true(log_find(log, "line 1: malformed, skipped") >= 0);
	assert_int_equal(log_find(log, "line 2:"), -1);
	assert_int_equal(auth_login(&cfg, "long", "pw", &acct), AUTH_FAIL);
}

static void test_login_virtual_line_limit_exact(void **state)
{
	(void)state;
	char hash[CRYPT_OUTPUT_SIZE];
	cheap_hash("pw", hash, sizeof(hash));
	/* A line of exactly MAX_PASSWD_LINE octets, newline included, is accepted. */
	char *text = malloc(2 * MAX_PASSWD_LINE);
	assert_non_null(text);
	int n = snprintf(text, 2 * MAX_PASSWD_LINE, "u:%s:/", hash);
	assert_true(n > 0);
	memset(text + n, 'm', MAX_PASSWD_LINE - 1 - (size_t)n);
	text[MAX_PASSWD_LINE - 1] = '\n';
	const char *path = test_path("passwd-exact");
	test_write_file(path, text, MAX_PASSWD_LINE);

	struct auth_config cfg = virtual_config(path);
	struct account acct;
	assert_int_equal(auth_login(&cfg, "u", "pw", &acct), AUTH_OK);
	assert_int_equal(strlen(acct.mailbox), MAX_PASSWD_LINE - (size_t)n);
	assert_int_equal(auth_login(&cfg, "u", "wrong", &acct), AUTH_FAIL);

	/* One octet more and the line is skipped: the user is unknown. */
	memmove(text + n + 1, text + n, MAX_PASSWD_LINE - (size_t)n);
	test_write_file(path, text, MAX_PASSWD_LINE + 1);
	assert_int_equal(auth_login(&cfg, "u", "pw", &acct), AUTH_FAIL);
	free(text);
}

static void test_login_virtual_odd_lines(void **state)
{
	struct log_capture *log = *state;
	char hash[CRYPT_OUTPUT_SIZE];
	cheap_hash("pw", hash, sizeof(hash));
	char text[1024];
	/* Line 1 has a NUL byte; the last line has no newline. */
	int n = snprintf(text, sizeof(text), "nul:%s\n-bad:%s\nlast:%s", hash, hash, hash);
	assert_true(n > 0);
	text[2] = '\0';   /* "nu\0:..." */
	const char *path = test_path("passwd-odd");
	test_write_file(path, text, (size_t)n);

	struct auth_config cfg = virtual_config(path);
	struct account acct;
	assert_int_equal(auth_login(&cfg, "last", "pw", &acct), AUTH_OK);
	assert_int_equal(auth_login(&cfg, "nu", "pw", &acct), AUTH_FAIL);
	assert_true(log_find(log, "line 1: malformed, skipped") >= 0);
	assert_true(log_find(log, "line 2: malformed, skipped") >= 0);
}

static void test_login_virtual_locked(void **state)
{
	struct log_capture *log = *state;
	char hash[CRYPT_OUTPUT_SIZE];
	cheap_hash("pw", hash, sizeof(hash));
	char text[1024];
	int n = snprintf(text, sizeof(text), "locked:!%s\nstar:*\n", hash);
	assert_true(n > 0);
	const char *path = test_path("passwd-locked");
	test_write_file(path, text, (size_t)n);

	struct auth_config cfg = virtual_config(path);
	struct account acct;
	assert_int_equal(auth_login(&cfg, "locked", "pw", &acct), AUTH_FAIL);
	assert_true(log_find(log, "login failed for locked: account locked") >= 0);
	assert_int_equal(auth_login(&cfg, "star", "", &acct), AUTH_FAIL);
	/* No usable hash in the file at all: the dummy comes from crypt_gensalt. */
	assert_int_equal(auth_login(&cfg, "nobody-here", "pw", &acct), AUTH_FAIL);
}

static void test_login_virtual_password_limit(void **state)
{
	struct log_capture *log = *state;
	char at_limit[MAX_PASSWORD + 1], over[MAX_PASSWORD + 2];
	memset(at_limit, 'p', MAX_PASSWORD);
	at_limit[MAX_PASSWORD] = '\0';
	memset(over, 'p', MAX_PASSWORD + 1);
	over[MAX_PASSWORD + 1] = '\0';
	char h1[CRYPT_OUTPUT_SIZE], h2[CRYPT_OUTPUT_SIZE];
	cheap_hash(at_limit, h1, sizeof(h1));
	cheap_hash(over, h2, sizeof(h2));
	/* The hash itself would verify: only the limit refuses it. */
	assert_true(auth_check_hash(over, h2));

	char text[1024];
	int n = snprintf(text, sizeof(text), "max:%s\nover:%s\n", h1, h2);
	assert_true(n > 0);
	const char *path = test_path("passwd-pwlimit");
	test_write_file(path, text, (size_t)n);

	struct auth_config cfg = virtual_config(path);
	struct account acct;
	assert_int_equal(auth_login(&cfg, "max", at_limit, &acct), AUTH_OK);
	assert_int_equal(auth_login(&cfg, "over", over, &acct), AUTH_FAIL);
	assert_true(log_find(log, "login failed for over: password too long") >= 0);
}

static void test_login_virtual_home_required(void **state)
{
	struct log_capture *log = *state;
	struct fixture f;
	fixture_init(&f);
	struct auth_config cfg = virtual_config(write_fixture_file(&f, "passwd-home"));
	cfg.mailbox_template = "%h/mbox";
	struct account acct;

	/* Only after the password is right is the missing home a config error. */
	assert_int_equal(auth_login(&cfg, "alice", "wrong", &acct), AUTH_FAIL);
	assert_int_equal(log_find(log, "cannot be expanded"), -1);
	assert_int_equal(auth_login(&cfg, "alice", "alice-pw", &acct), AUTH_ERROR);
	int i = log_find(log, "cannot be expanded");
	assert_true(i >= 0);
	assert_int_equal(log->priority[i], LOG_ERR);
	assert_string_equal(acct.mailbox, "");

	cfg.virtual_home = "";
	assert_int_equal(auth_login(&cfg, "alice", "alice-pw", &acct), AUTH_ERROR);
	/* bob's own mailbox field has no %h: fine without a home. */
	cfg.virtual_home = NULL;
	assert_int_equal(auth_login(&cfg, "bob", "bob-pw", &acct), AUTH_OK);
	assert_string_equal(acct.mailbox, "/srv/mail/bob.mbox");
}

/* An empty password never logs in, whatever the hash says of it. */
static void test_login_empty_password(void **state)
{
	struct log_capture *log = *state;
	assert_non_null(auth_password_problem(""));
	assert_non_null(auth_password_problem(NULL));
	assert_null(auth_password_problem("x"));

	char hash[CRYPT_OUTPUT_SIZE];
	assert_int_equal(auth_make_hash("", hash, sizeof(hash)), -1);   /* pop3d --hash */
	static const char *const prefixes[] = { "$5$", "$6$", "$y$" };
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		make_hash(prefixes[i], prefixes[i][1] == 'y' ? 1 : 1000, "", hash, sizeof(hash));
		assert_false(auth_check_hash("", hash));

		/* crypt(3) verifies "" against it; pop3d refuses it before asking. */
		char text[1024];
		int n = snprintf(text, sizeof(text), "eve:%s\n", hash);
		assert_true(n > 0 && (size_t)n < sizeof(text));
		const char *path = test_path("passwd-empty");
		test_write_file(path, text, (size_t)n);
		struct auth_config cfg = virtual_config(path);
		struct account acct;
		assert_int_equal(auth_login(&cfg, "eve", "", &acct), AUTH_FAIL);
		assert_string_equal(acct.mailbox, "");
	}
	assert_true(log_find(log, "login failed for eve: empty password") >= 0);
}

/* A UTF-8 name in the passwd file logs in; its mailbox path holds it as it is. */
static void test_login_virtual_utf8(void **state)
{
	struct log_capture *log = *state;
	char hash[CRYPT_OUTPUT_SIZE], text[512];
	cheap_hash("j\xc3\xbc-pw", hash, sizeof(hash));
	int n = snprintf(text, sizeof(text), "j\xc3\xbcrgen:%s\nj\xfcrgen:%s\n", hash, hash);
	const char *path = test_path("passwd-utf8");
	test_write_file(path, text, (size_t)n);
	struct auth_config cfg = virtual_config(path);
	struct account acct;
	assert_int_equal(auth_check_passwd_file(path), 0);
	assert_true(log_find(log, "line 2: malformed, skipped: invalid user name") >= 0);
	assert_int_equal(log_find(log, "line 1:"), -1);
	assert_int_equal(auth_login(&cfg, "j\xc3\xbcrgen", "j\xc3\xbc-pw", &acct), AUTH_OK);
	assert_string_equal(acct.name, "j\xc3\xbcrgen");
	assert_string_equal(acct.mailbox, "/var/mail/j\xc3\xbcrgen");
	/* Octet for octet: the NFD spelling (u + U+0308) is another name. */
	assert_int_equal(auth_login(&cfg, "ju\xcc\x88rgen", "j\xc3\xbc-pw", &acct), AUTH_FAIL);
	assert_int_equal(auth_login(&cfg, "j\xc3\xbcrgen", "wrong", &acct), AUTH_FAIL);
	/* Logged with log.c's escapes: non-ASCII octets as \xNN. */
	assert_true(log_find(log, "login failed for \"j\\xc3\\xbcrgen\": wrong password") >= 0);
	assert_int_equal(auth_login(&cfg, "j\xfcrgen", "j\xc3\xbc-pw", &acct), AUTH_FAIL);
	assert_true(log_find(log, "login failed: invalid user name") >= 0);
}

/* A valid name may hold '"', '\\', "peer=": logged quoted, one field. */
static void test_login_failure_logged_quoted(void **state)
{
	struct log_capture *log = *state;
	struct fixture f;
	fixture_init(&f);
	struct auth_config cfg = virtual_config(write_fixture_file(&f, "passwd-quoted"));
	struct account acct;
	assert_true(auth_valid_username("x\"peer=6.6.6.6\\"));
	assert_int_equal(auth_login(&cfg, "x\"peer=6.6.6.6\\", "pw", &acct), AUTH_FAIL);
	assert_true(log_find(log, "login failed for \"x\\\"peer=6.6.6.6\\\\\": unknown user") >= 0);
}

/* ---- auth_login: system accounts ---- */

static void test_login_system_unknown(void **state)
{
	struct log_capture *log = *state;
	const char *name = "pop3d-no-such-user-7q";
	assert_null(getpwnam(name));
	struct auth_config cfg = { .passwd_file = NULL, .mailbox_template = "/var/mail/%u",
				   .virtual_home = NULL };
	struct account acct;
	assert_int_equal(auth_login(&cfg, name, "pw", &acct), AUTH_FAIL);
	assert_true(log_find(log, "unknown user") >= 0);
	assert_int_equal(auth_login(&cfg, "../root", "pw", &acct), AUTH_FAIL);
}

static void test_login_system_root_refused(void **state)
{
	struct log_capture *log = *state;
	struct passwd *pw = getpwnam("root");
	if (!pw || pw->pw_uid != 0)
		skip();
	struct auth_config cfg = { .passwd_file = NULL, .mailbox_template = "/var/mail/%u",
				   .virtual_home = NULL };
	struct account acct;
	assert_int_equal(auth_login(&cfg, "root", "anything", &acct), AUTH_FAIL);
	int i = log_find(log, "root may not log in");
	assert_true(i >= 0);
	assert_int_equal(log->priority[i], LOG_NOTICE);
	assert_false(acct.system);
	assert_string_equal(acct.mailbox, "");
}

/* A locked system account (Debian's "nobody" has "*" in shadow) fails. */
static void test_login_system_locked(void **state)
{
	struct log_capture *log = *state;
	struct passwd *pw = getpwnam("nobody");
	if (!pw || pw->pw_uid == 0)
		skip();
	struct auth_config cfg = { .passwd_file = NULL, .mailbox_template = "/var/mail/%u",
				   .virtual_home = NULL };
	struct account acct;
	assert_int_equal(auth_login(&cfg, "nobody", "", &acct), AUTH_FAIL);
	assert_int_equal(auth_login(&cfg, "nobody", "*", &acct), AUTH_FAIL);
	assert_true(log_find(log, "login failed for nobody") >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_username),
		cmocka_unit_test(test_name_encoding_problem),
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_parse_line_reasons),
		cmocka_unit_test(test_template_problem),
		cmocka_unit_test(test_template_fixed_dir),
		cmocka_unit_test(test_make_hash_round_trip),
		cmocka_unit_test(test_check_hash_methods),
		cmocka_unit_test(test_check_hash_unusable),
		cmocka_unit_test(test_expand_mailbox),
		cmocka_unit_test(test_expand_mailbox_overflow),
		cmocka_unit_test(test_login_virtual_ok),
		cmocka_unit_test_setup_teardown(test_login_virtual_fail, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_virtual_malformed_logged,
						setup_capture, teardown_capture),
		cmocka_unit_test(test_login_virtual_duplicate_first_wins),
		cmocka_unit_test_setup_teardown(test_login_virtual_missing_file, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_virtual_long_line_skipped,
						setup_capture, teardown_capture),
		cmocka_unit_test(test_login_virtual_line_limit_exact),
		cmocka_unit_test_setup_teardown(test_login_virtual_odd_lines, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_virtual_locked, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_virtual_password_limit,
						setup_capture, teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_virtual_home_required,
						setup_capture, teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_empty_password, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_failure_logged_quoted, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_virtual_utf8, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_system_unknown, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_system_root_refused, setup_capture,
						teardown_capture),
		cmocka_unit_test_setup_teardown(test_login_system_locked, setup_capture,
						teardown_capture),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
