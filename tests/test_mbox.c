/* Unit tests for mbox.c: the mbox rules, sizes, sending, TOP, UIDL, limits, opening. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "limits.h"
#include "lock.h"
#include "log.h"
#include "mbox.h"
#include "testutil.h"

/* ---- a growable byte string for building mailboxes ---------------------- */

struct str {
	char *p;
	size_t len, cap;
};

static void str_add(struct str *s, const void *data, size_t len)
{
	if (s->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		while (cap < s->len + len + 1)
			cap *= 2;
		s->p = realloc(s->p, cap);
		assert_non_null(s->p);
		s->cap = cap;
	}
	memcpy(s->p + s->len, data, len);
	s->len += len;
	s->p[s->len] = '\0';
}

static void str_adds(struct str *s, const char *text)
{
	str_add(s, text, strlen(text));
}

static void str_fill(struct str *s, char c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		str_add(s, &c, 1);
}

static void str_free(struct str *s)
{
	free(s->p);
	memset(s, 0, sizeof(*s));
}

/* ---- reference behaviour, written the slow and obvious way -------------- */

/* What RETR sends for raw message octets: CRLF line ends, byte-stuffed, final CRLF added. */
static void ref_convert(const char *raw, size_t len, struct str *out)
{
	char prev = '\n';
	for (size_t i = 0; i < len; i++) {
		char c = raw[i];
		if (prev == '\n' && c == '.')
			str_add(out, ".", 1);
		if (c == '\n' && prev != '\r')
			str_add(out, "\r", 1);
		str_add(out, &c, 1);
		prev = c;
	}
	if (len > 0 && prev != '\n')
		str_add(out, "\r\n", 2);
}

/* The raw octets TOP sends: header, its empty line, then `lines` body lines. */
static size_t ref_top_len(const char *raw, size_t len, long lines)
{
	size_t i = 0;
	bool in_header = true;
	while (i < len) {
		const char *nl = memchr(raw + i, '\n', len - i);
		size_t next = nl ? (size_t)(nl - raw) + 1 : len;
		size_t linelen = next - i;
		if (in_header) {
			bool empty = (linelen == 1 && nl) || (linelen == 2 && nl && raw[i] == '\r');
			i = next;
			if (empty) {
				in_header = false;
				if (lines == 0)
					return i;
			}
		} else {
			i = next;
			if (--lines == 0)
				return i;
		}
	}
	return len;
}

/* The length RETR sends before byte-stuffing: the length the size must report. */
static size_t unstuffed_len(const char *out, size_t len)
{
	size_t dots = 0;
	for (size_t i = 0; i < len; i++)
		if (out[i] == '.' && (i == 0 || out[i - 1] == '\n'))
			dots++;
	return len - dots;
}

/* ---- opening and sending ------------------------------------------------ */

static struct mbox *open_data_opt(const void *data, size_t len, const struct mbox_options *opt)
{
	struct mbox *mb = NULL;
	char why[256] = "";
	enum mbox_status st = mbox_open_fd(&mb, test_memfd(data, len), opt, why, sizeof(why));
	if (st != MBOX_OK)
		fail_msg("mbox_open_fd: %d %s", st, why);
	return mb;
}

static struct mbox *open_data(const void *data, size_t len)
{
	return open_data_opt(data, len, NULL);
}

static struct mbox *open_str(const char *text)
{
	return open_data(text, strlen(text));
}

static enum mbox_status open_path(struct mbox **mb, const char *path, char *why, size_t whylen)
{
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 1;
	return mbox_open(mb, path, &opt, why, whylen);
}

/* mbox_send into out (reset first); returns its result. */
static int send_into(struct mbox *mb, size_t n, long lines, struct str *out, size_t cap)
{
	struct memsink ms;
	memset(&ms, 0, sizeof(ms));
	memsink_reset(&ms);
	struct outbuf ob;
	assert_int_equal(outbuf_init(&ob, cap, memsink_write, &ms), 0);
	int rc = mbox_send(mb, n, lines, &ob);
	if (rc == 0)
		rc = outbuf_flush(&ob);
	outbuf_free(&ob);
	out->len = 0;
	str_add(out, ms.data ? ms.data : "", ms.len);
	memsink_reset(&ms);
	return rc;
}

/* Message n must be sent as exactly `expected`, and its size must match. */
static void assert_message(struct mbox *mb, size_t n, const char *expected, size_t explen)
{
	struct str out = { 0 };
	assert_int_equal(send_into(mb, n, -1, &out, OUTBUF_SIZE), 0);
	if (out.len != explen || memcmp(out.p, expected, explen) != 0)
		fail_msg("message %zu: got %zu octets \"%.*s\", want %zu \"%.*s\"", n, out.len,
			 (int)(out.len < 200 ? out.len : 200), out.p, explen,
			 (int)(explen < 200 ? explen : 200), expected);
	assert_int_equal(mbox_msg(mb, n)->size, unstuffed_len(out.p, out.len));
	str_free(&out);
}

static void assert_message_str(struct mbox *mb, size_t n, const char *expected)
{
	assert_message(mb, n, expected, strlen(expected));
}

static void assert_top(struct mbox *mb, size_t n, long lines, const char *expected)
{
	struct str out = { 0 };
	assert_int_equal(send_into(mb, n, lines, &out, OUTBUF_SIZE), 0);
	assert_string_equal(out.p, expected);
	str_free(&out);
}

static void uidl_of(struct mbox *mb, size_t n, char *buf)
{
	mbox_uidl(mb, n, buf);
	assert_true(buf[0] != '\0');
}

/* UIDL of the only message of a small mailbox. */
static void uidl_of_text(const char *text, char *buf)
{
	struct mbox *mb = open_str(text);
	assert_int_equal(mbox_count(mb), 1);
	uidl_of(mb, 1, buf);
	mbox_close(mb);
}

/* ---- the From_ rules ---------------------------------------------------- */

static void test_from_rules(void **state)
{
	(void)state;
	const char *text =
		"From alice@example.org Mon Jan  1 00:00:00 2024\n"
		"Subject: one\n"
		"\n"
		"body\n"
		"From not after an empty line\n"
		">From quoted\n"
		"\n"
		"From bob@example.org Tue Jan  2 00:00:00 2024\n"
		"Subject: two\n"
		"\n"
		"body2\n";
	struct mbox *mb = open_str(text);
	assert_int_equal(mbox_count(mb), 2);
	assert_int_equal(mb->first, 0);
	assert_message_str(mb, 1, "Subject: one\r\n\r\nbody\r\nFrom not after an empty line\r\n"
			   ">From quoted\r\n");
	assert_message_str(mb, 2, "Subject: two\r\n\r\nbody2\r\n");

	const struct mbox_msg *m1 = mbox_msg(mb, 1), *m2 = mbox_msg(mb, 2);
	assert_int_equal(m1->start, 0);
	assert_int_equal(m1->body, strchr(text, '\n') - text + 1);
	const char *sep = strstr(text, "\n\nFrom bob");
	assert_int_equal(m1->end, sep - text + 1);   /* the separating empty line is excluded */
	assert_int_equal(m2->start, sep - text + 2);
	assert_int_equal(m2->end, (off_t)strlen(text));
	assert_int_equal(mb->scanned, (off_t)strlen(text));
	assert_null(mbox_msg(mb, 0));
	assert_null(mbox_msg(mb, 3));
	mbox_close(mb);
}

static void test_from_line_needs_the_space(void **state)
{
	(void)state;
	struct mbox *mb = open_str("From a\nX: 1\n\nbody\n\nFromage\n\nFrom\tb\n\nFrom b\nY: 2\n");
	assert_int_equal(mbox_count(mb), 2);
	assert_message_str(mb, 1, "X: 1\r\n\r\nbody\r\n\r\nFromage\r\n\r\nFrom\tb\r\n");
	assert_message_str(mb, 2, "Y: 2\r\n");
	mbox_close(mb);
}

static void test_final_empty_line_excluded_once(void **state)
{
	(void)state;
	struct mbox *mb = open_str("From a\nX: 1\n\nbody\n\n");
	assert_int_equal(mbox_count(mb), 1);
	assert_message_str(mb, 1, "X: 1\r\n\r\nbody\r\n");
	mbox_close(mb);

	mb = open_str("From a\nX: 1\n\nbody\n\n\n");   /* only the last empty line goes */
	assert_message_str(mb, 1, "X: 1\r\n\r\nbody\r\n\r\n");
	mbox_close(mb);

	mb = open_str("From a\nX: 1\n\nbody\n");   /* no final empty line at all */
	assert_message_str(mb, 1, "X: 1\r\n\r\nbody\r\n");
	mbox_close(mb);
}

static void test_no_final_newline(void **state)
{
	(void)state;
	struct mbox *mb = open_str("From a\nSubject: x\n\nlast line");
	assert_int_equal(mbox_count(mb), 1);
	const struct mbox_msg *m = mbox_msg(mb, 1);
	assert_int_equal(m->size, strlen("Subject: x\r\n\r\nlast line\r\n"));
	assert_message_str(mb, 1, "Subject: x\r\n\r\nlast line\r\n");
	mbox_close(mb);

	mb = open_str("From a\nSubject: x\n\nends in CR\r");   /* a bare CR at the end stays */
	assert_message_str(mb, 1, "Subject: x\r\n\r\nends in CR\r\r\n");
	mbox_close(mb);
}

static void test_empty_messages(void **state)
{
	(void)state;
	struct mbox *mb = open_str("From a\n\nFrom b\nX: 1\n\nFrom c\n");
	assert_int_equal(mbox_count(mb), 3);
	assert_message_str(mb, 1, "");
	assert_int_equal(mbox_msg(mb, 1)->size, 0);
	assert_message_str(mb, 2, "X: 1\r\n");
	assert_message_str(mb, 3, "");
	mbox_close(mb);

	mb = open_str("From only a From_ line, no LF");
	assert_int_equal(mbox_count(mb), 1);
	assert_message_str(mb, 1, "");
	mbox_close(mb);
}

static void test_crlf_mailbox(void **state)
{
	(void)state;
	const char *text =
		"From a\r\n"
		"Subject: x\r\n"
		"\r\n"
		"line one\r\n"
		"\r\n"
		"From b\r\n"
		"Subject: y\r\n"
		"\r\n"
		"mixed\n"
		"crlf\r\n"
		"bare\rcr\n"
		"\r\n";
	struct mbox *mb = open_str(text);
	assert_int_equal(mbox_count(mb), 2);
	assert_message_str(mb, 1, "Subject: x\r\n\r\nline one\r\n");
	assert_int_equal(mbox_msg(mb, 1)->size, 24);   /* no doubled CR */
	assert_message_str(mb, 2, "Subject: y\r\n\r\nmixed\r\ncrlf\r\nbare\rcr\r\n");
	mbox_close(mb);
}

static void test_pseudo_message_hidden(void **state)
{
	(void)state;
	const char *text =
		"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
		"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
		"From: Mail System Internal Data <MAILER-DAEMON@host>\n"
		"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
		"X-IMAP: 1700000000 0000000002\n"
		"Status: RO\n"
		"\n"
		"This text is part of the internal format of your mail folder.\n"
		"\n"
		"From a\n"
		"Subject: real\n"
		"\n"
		"hello\n";
	struct mbox *mb = open_str(text);
	assert_int_equal(mb->nmsgs, 2);
	assert_int_equal(mb->first, 1);
	assert_int_equal(mbox_count(mb), 1);
	assert_message_str(mb, 1, "Subject: real\r\n\r\nhello\r\n");
	assert_null(mbox_msg(mb, 2));
	mbox_close(mb);

	/* the mark found after a false start ("FF...") and in another case of X-IMAP */
	mb = open_str("From MAILER-DAEMON\nSubject: FFOLDER INTERNAL DATA\nx-imap: 1 2\n\n"
		      "internal\n\nFrom a\nSubject: real\n\nhello\n");
	assert_int_equal(mb->first, 1);
	assert_int_equal(mbox_count(mb), 1);
	mbox_close(mb);
}

static void test_pseudo_message_variants_visible(void **state)
{
	(void)state;
	/* a real message that merely carries X-IMAPbase */
	struct mbox *mb = open_str("From a\nX-IMAPbase: 1700000000 5\n"
				   "Subject: FOLDER INTERNAL DATA\n\nbody\n");
	assert_int_equal(mb->first, 0);
	assert_int_equal(mbox_count(mb), 1);
	mbox_close(mb);
	/* X-IMAP without the subject */
	mb = open_str("From a\nX-IMAP: 1 2\nSubject: hello\n\nbody\n");
	assert_int_equal(mbox_count(mb), 1);
	mbox_close(mb);
	/* the subject without X-IMAP */
	mb = open_str("From a\nSubject: FOLDER INTERNAL DATA\n\nbody\n");
	assert_int_equal(mbox_count(mb), 1);
	mbox_close(mb);
	/* the markers in the body, not the header */
	mb = open_str("From a\nSubject: x\n\nX-IMAP: 1 2\nSubject: FOLDER INTERNAL DATA\n");
	assert_int_equal(mbox_count(mb), 1);
	mbox_close(mb);
	/* not the first message */
	mb = open_str("From a\nSubject: x\n\nbody\n\n"
		      "From b\nX-IMAP: 1 2\nSubject: FOLDER INTERNAL DATA\n\nbody\n");
	assert_int_equal(mbox_count(mb), 2);
	mbox_close(mb);
}

static void test_pseudo_message_folded_subject_across_scan_buffer(void **state)
{
	(void)state;
	/* a long header pushes the Subject across the first read boundary */
	struct str s = { 0 };
	str_adds(&s, "From MAILER-DAEMON\nX-IMAP: 1 2\nX-Long: ");
	str_fill(&s, 'a', WINDOW_SIZE - 30 - s.len);
	str_adds(&s, "\nSubject: DON'T DELETE -- FOLDER\n INTERNAL DATA\n\ninternal\n\n"
		 "From a\nSubject: real\n\nhello\n");
	assert_true(strstr(s.p, "INTERNAL") - s.p > WINDOW_SIZE - 20);
	struct mbox *mb = open_data(s.p, s.len);
	assert_int_equal(mb->first, 1);
	assert_int_equal(mbox_count(mb), 1);
	mbox_close(mb);
	str_free(&s);
}

static void test_empty_file(void **state)
{
	(void)state;
	struct mbox *mb = open_data("", 0);
	assert_int_equal(mbox_count(mb), 0);
	assert_null(mbox_msg(mb, 1));
	assert_int_equal(mb->scanned, 0);
	mbox_close(mb);
}

static void test_missing_file(void **state)
{
	(void)state;
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, test_path("does-not-exist"), why, sizeof(why)), MBOX_OK);
	assert_non_null(mb);
	assert_int_equal(mb->fd, -1);
	assert_int_equal(mbox_count(mb), 0);
	struct str out = { 0 };
	assert_int_equal(send_into(mb, 1, -1, &out, OUTBUF_SIZE), -1);
	mbox_close(mb);
	str_free(&out);
}

static void test_not_an_mbox(void **state)
{
	(void)state;
	const char *samples[] = {
		"Return-Path: <a@b>\nSubject: x\n\nbody\n",
		"\nFrom a\n\nbody\n",          /* a leading empty line */
		"From\nX: 1\n",                /* no space after From */
		"from a\n\nbody\n",            /* case matters */
		"Fro",
		">From a\n",
	};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const char *path = test_path("notmbox");
		test_write_file(path, samples[i], strlen(samples[i]));
		struct mbox *mb = NULL;
		char why[256] = "";
		assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_PERM);
		assert_null(mb);
		assert_non_null(strstr(why, "not an mbox"));
		size_t len;
		char *after = test_read_file(path, &len);
		assert_int_equal(len, strlen(samples[i]));   /* never modified */
		assert_memory_equal(after, samples[i], len);
		free(after);
		unlink(path);
	}
}

static void test_nul_bytes(void **state)
{
	(void)state;
	static const char text[] = "From a\nX: \0y\n\nbo\0dy\n\0\n.\0\n";
	struct mbox *mb = open_data(text, sizeof(text) - 1);
	assert_int_equal(mbox_count(mb), 1);
	static const char want[] = "X: \0y\r\n\r\nbo\0dy\r\n\0\r\n..\0\r\n";
	assert_message(mb, 1, want, sizeof(want) - 1);
	mbox_close(mb);
}

static void test_long_line(void **state)
{
	(void)state;
	struct str s = { 0 }, want = { 0 };
	str_adds(&s, "From a\nSubject: long\n\n");
	str_fill(&s, 'x', 100 * 1024);
	str_adds(&s, "\nshort\n\nFrom b\n\nafter\n");
	str_adds(&want, "Subject: long\r\n\r\n");
	str_fill(&want, 'x', 100 * 1024);
	str_adds(&want, "\r\nshort\r\n");
	struct mbox *mb = open_data(s.p, s.len);
	assert_int_equal(mbox_count(mb), 2);
	assert_message(mb, 1, want.p, want.len);
	assert_message_str(mb, 2, "\r\nafter\r\n");
	mbox_close(mb);
	str_free(&s);
	str_free(&want);
}

static void test_huge_nul_line_longer_than_scan_buffer(void **state)
{
	(void)state;
	struct str s = { 0 };
	str_adds(&s, "From a\n\n");
	str_fill(&s, '\0', 3 * WINDOW_SIZE + 17);
	str_adds(&s, "\n\nFrom b\n\nafter\n");
	struct mbox *mb = open_data(s.p, s.len);
	assert_int_equal(mbox_count(mb), 2);
	assert_int_equal(mbox_msg(mb, 1)->size, 2 + 3 * WINDOW_SIZE + 17 + 2);
	assert_message_str(mb, 2, "\r\nafter\r\n");
	mbox_close(mb);
	str_free(&s);
}

/* ---- line starts split across a window boundary ------------------------- */

/* Body lines so that the text reaches exactly `target` octets, ending in LF. */
static void fill_to(struct str *s, size_t target)
{
	while (target - s->len > 80) {
		str_fill(s, 'f', 63);
		str_adds(s, "\n");
	}
	assert_true(target - s->len >= 2);
	str_fill(s, 'g', target - s->len - 1);
	str_adds(s, "\n");
}

static void check_separator_split(const char *eol, size_t k)
{
	struct str s = { 0 }, want1 = { 0 };
	str_adds(&s, "From a\nSubject: one\n\n");
	size_t sep = WINDOW_SIZE - k;   /* the boundary falls k octets into "EOL From " */
	fill_to(&s, sep);
	str_adds(&s, eol);
	str_adds(&s, "From b\nSubject: two\n\nbody two\n");
	assert_memory_equal(s.p + sep + strlen(eol), "From ", 5);

	ref_convert(s.p + 7, sep - 7, &want1);
	struct mbox *mb = open_data(s.p, s.len);
	assert_int_equal(mbox_count(mb), 2);
	assert_message(mb, 1, want1.p, want1.len);
	assert_message_str(mb, 2, "Subject: two\r\n\r\nbody two\r\n");
	assert_int_equal(mbox_msg(mb, 2)->start, (off_t)(sep + strlen(eol)));
	mbox_close(mb);
	str_free(&s);
	str_free(&want1);
}

static void test_separator_split_across_scan_buffer(void **state)
{
	(void)state;
	for (size_t k = 0; k <= 6; k++)
		check_separator_split("\n", k);
	for (size_t k = 0; k <= 7; k++)
		check_separator_split("\r\n", k);
}

static void test_body_from_split_across_scan_buffer(void **state)
{
	(void)state;
	/* "From " not after an empty line stays body text, wherever the boundary is */
	for (size_t k = 0; k <= 6; k++) {
		struct str s = { 0 };
		str_adds(&s, "From a\nSubject: one\n\n");
		fill_to(&s, WINDOW_SIZE - k);
		str_adds(&s, "From c, just text\nmore\n");
		struct mbox *mb = open_data(s.p, s.len);
		assert_int_equal(mbox_count(mb), 1);
		assert_int_equal(mbox_msg(mb, 1)->end, (off_t)s.len);
		mbox_close(mb);
		str_free(&s);
	}
}

static void test_header_name_split_across_scan_buffer(void **state)
{
	(void)state;
	char want[MAX_UIDL_LEN + 1], got[MAX_UIDL_LEN + 1];
	uidl_of_text("From b\nSubject: two\n\nbody\n", want);
	for (size_t k = 0; k <= 16; k++) {
		struct str s = { 0 };
		str_adds(&s, "From a\nSubject: one\n\n");
		size_t msg2 = WINDOW_SIZE - k - strlen("\nFrom b\nSubject: two\n");
		fill_to(&s, msg2);
		str_adds(&s, "\nFrom b\nSubject: two\n");
		assert_int_equal(s.len, WINDOW_SIZE - k);
		str_adds(&s, "Content-Length: 5\n\nbody\n");   /* split k octets in */
		struct mbox *mb = open_data(s.p, s.len);
		assert_int_equal(mbox_count(mb), 2);
		uidl_of(mb, 2, got);
		assert_string_equal(got, want);
		mbox_close(mb);
		str_free(&s);
	}
}

/* ---- generated mailboxes: sizes and contents against the reference ------ */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

/* One random message body (raw octets): every line kind the rules care about. */
static void gen_message(struct str *m, int serial, bool last)
{
	char line[128];
	snprintf(line, sizeof(line), "Subject: message %d\n", serial);
	str_adds(m, line);
	if (rnd(3) == 0)
		str_adds(m, "Status: RO\n");
	bool prev_empty = false;
	if (rnd(4)) {   /* mostly with a header/body separator */
		str_adds(m, rnd(2) ? "\n" : "\r\n");
		prev_empty = true;
	}
	int lines = (int)rnd(40);
	for (int i = 0; i < lines; i++) {
		bool empty = false;
		switch (rnd(12)) {
		case 0: str_adds(m, ".dot line\n"); break;
		case 1: str_adds(m, ".\r\n"); break;
		case 2: str_adds(m, prev_empty ? ">From quoted\n" : "From in the body\n"); break;
		case 3: str_adds(m, "\n"); empty = true; break;
		case 4: str_adds(m, "\r\n"); empty = true; break;
		case 5: str_adds(m, "bare\rcr\n"); break;
		case 6: str_adds(m, "crlf line\r\n"); break;
		case 7: str_add(m, "nul\0nul\n", 8); break;
		case 8:
			if (rnd(8) == 0) {   /* now and then a long one, across windows */
				str_fill(m, 'L', rnd(WINDOW_SIZE / 2));
				str_adds(m, rnd(2) ? "\n" : "\r\n");
			} else {
				str_adds(m, "plain\n");
			}
			break;
		case 9: str_adds(m, "\r\r\n"); break;
		case 10: str_adds(m, "..two dots\n"); break;
		default: str_adds(m, "text text text\n"); break;
		}
		prev_empty = empty;
	}
	if (last && rnd(2))
		str_adds(m, "no final newline");
}

struct generated {
	struct str file;
	struct str *msgs;
	size_t n;
};

static void generate(struct generated *g, size_t n, uint64_t seed)
{
	rng_state = seed;
	memset(g, 0, sizeof(*g));
	g->n = n;
	g->msgs = calloc(n, sizeof(*g->msgs));
	assert_non_null(g->msgs);
	for (size_t i = 0; i < n; i++) {
		char from[80];
		snprintf(from, sizeof(from), "From sender%zu@example.org Mon Jan  1 00:00:00 2024%s",
			 i, rnd(4) == 0 ? "\r\n" : "\n");
		str_adds(&g->file, from);
		gen_message(&g->msgs[i], (int)i, i + 1 == n);
		str_add(&g->file, g->msgs[i].p, g->msgs[i].len);
		if (i + 1 < n)
			str_adds(&g->file, rnd(2) ? "\n" : "\r\n");   /* the separator */
		else if (g->msgs[i].p[g->msgs[i].len - 1] == '\n' && rnd(2))
			str_adds(&g->file, "\n");   /* the one final empty line */
	}
}

static void generated_free(struct generated *g)
{
	for (size_t i = 0; i < g->n; i++)
		str_free(&g->msgs[i]);
	free(g->msgs);
	str_free(&g->file);
}

static void test_generated_sizes_and_contents(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 6; seed++) {
		struct generated g;
		generate(&g, 150, seed * 0x9E3779B97F4A7C15ULL);
		struct mbox_options opt;
		mbox_default_options(&opt);
		opt.no_mmap = seed > 4;   /* the same through pread(2) */
		struct mbox *mb = open_data_opt(g.file.p, g.file.len, &opt);
		assert_int_equal(mbox_count(mb), g.n);
		for (size_t i = 0; i < g.n; i++) {
			struct str want = { 0 };
			ref_convert(g.msgs[i].p, g.msgs[i].len, &want);
			assert_message(mb, i + 1, want.p, want.len);
			assert_int_equal(mbox_msg(mb, i + 1)->size, unstuffed_len(want.p, want.len));
			assert_int_equal(mbox_check_msg(mb, i + 1, NULL, 0), 0);
			uint64_t h[2];
			assert_int_equal(mbox_rehash(mb, i, h), 0);
			assert_true(h[0] == mb->msgs[i].hash[0] && h[1] == mb->msgs[i].hash[1]);
			str_free(&want);
		}
		mbox_close(mb);
		generated_free(&g);
	}
}

static void test_generated_top(void **state)
{
	(void)state;
	struct generated g;
	generate(&g, 60, 77);
	struct mbox *mb = open_data(g.file.p, g.file.len);
	assert_int_equal(mbox_count(mb), g.n);
	const long counts[] = { 0, 1, 2, 3, 7, 1000 };
	for (size_t i = 0; i < g.n; i++) {
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			size_t rawlen = ref_top_len(g.msgs[i].p, g.msgs[i].len, counts[c]);
			struct str want = { 0 }, out = { 0 };
			ref_convert(g.msgs[i].p, rawlen, &want);
			assert_int_equal(send_into(mb, i + 1, counts[c], &out, OUTBUF_SIZE), 0);
			assert_int_equal(out.len, want.len);
			assert_memory_equal(out.p, want.p, want.len);
			str_free(&want);
			str_free(&out);
		}
	}
	mbox_close(mb);
	generated_free(&g);
}

/* ---- sending: byte-stuffing, TOP, chunk boundaries ---------------------- */

static void test_byte_stuffing(void **state)
{
	(void)state;
	struct mbox *mb = open_str("From a\n.starts with a dot\n\n.\n..\nmid.dot\n.\r\n");
	assert_message_str(mb, 1, "..starts with a dot\r\n\r\n..\r\n...\r\nmid.dot\r\n..\r\n");
	assert_int_equal(mbox_msg(mb, 1)->size,
			 strlen(".starts with a dot\r\n\r\n.\r\n..\r\nmid.dot\r\n.\r\n"));
	mbox_close(mb);
}

static void test_top(void **state)
{
	(void)state;
	struct mbox *mb = open_str("From a\nH1: a\nH2: b\n continued\n\nl1\n.l2\nl3\n\n"
				   "From b\nH: only a header\nH2: x\n\n"
				   "From c\r\nH: crlf\r\n\r\nc1\r\nc2\r\n\n"
				   "From d\nH: x\n\n\n\nafter two empty lines\n");
	assert_int_equal(mbox_count(mb), 4);
	assert_top(mb, 1, 0, "H1: a\r\nH2: b\r\n continued\r\n\r\n");
	assert_top(mb, 1, 1, "H1: a\r\nH2: b\r\n continued\r\n\r\nl1\r\n");
	assert_top(mb, 1, 2, "H1: a\r\nH2: b\r\n continued\r\n\r\nl1\r\n..l2\r\n");
	assert_top(mb, 1, 3, "H1: a\r\nH2: b\r\n continued\r\n\r\nl1\r\n..l2\r\nl3\r\n");
	assert_top(mb, 1, 100, "H1: a\r\nH2: b\r\n continued\r\n\r\nl1\r\n..l2\r\nl3\r\n");
	/* no empty line: all of it is header */
	assert_top(mb, 2, 0, "H: only a header\r\nH2: x\r\n");
	assert_top(mb, 3, 0, "H: crlf\r\n\r\n");
	assert_top(mb, 3, 1, "H: crlf\r\n\r\nc1\r\n");
	/* empty body lines count as lines */
	assert_top(mb, 4, 1, "H: x\r\n\r\n\r\n");
	assert_top(mb, 4, 2, "H: x\r\n\r\n\r\n\r\n");
	assert_top(mb, 4, 3, "H: x\r\n\r\n\r\n\r\nafter two empty lines\r\n");
	mbox_close(mb);

	mb = open_str("From a\nH: x\n\nno newline");   /* TOP reaching the end adds the CRLF */
	assert_top(mb, 1, 5, "H: x\r\n\r\nno newline\r\n");
	assert_top(mb, 1, 0, "H: x\r\n\r\n");
	mbox_close(mb);
}

/* Add a line of `c` so that its LF lands at raw offset lf (raw = s from `base`). */
static void line_with_lf_at(struct str *s, size_t base, size_t lf, char c, bool crlf)
{
	size_t fill = lf - (s->len - base) - (crlf ? 1 : 0);
	str_fill(s, c, fill);
	str_adds(s, crlf ? "\r\n" : "\n");
	assert_int_equal(s->len - base - 1, lf);
}

static void check_window_boundaries(bool no_mmap)
{
	/* A RETR's windows begin at the page of its body: at file offset 0 here. */
	const size_t C = WINDOW_SIZE;
	struct str s = { 0 };
	str_adds(&s, "From a\n");
	size_t base = 0;   /* offsets below are file offsets */
	str_adds(&s, "Subject: big\n\n");
	line_with_lf_at(&s, base, C, 'A', true);              /* CR ends window 1, LF starts window 2 */
	line_with_lf_at(&s, base, 2 * C - 1, 'B', false);     /* window 3 starts a line ... */
	str_adds(&s, ".dot at a chunk start\n");               /* ... with a dot */
	line_with_lf_at(&s, base, 3 * C, 'C', false);         /* a bare LF starts window 4 */
	line_with_lf_at(&s, base, 4 * C - 2, 'D', false);
	str_adds(&s, "\r");                                    /* a bare CR ends window 4 ... */
	str_adds(&s, "x bare CR before\n");                    /* ... not followed by LF */
	str_adds(&s, "end\n");
	assert_int_equal(s.p[base + C - 1], '\r');
	assert_int_equal(s.p[base + C], '\n');
	assert_int_equal(s.p[base + 2 * C], '.');
	assert_int_equal(s.p[base + 3 * C], '\n');
	assert_int_equal(s.p[base + 3 * C - 1], 'C');
	assert_int_equal(s.p[base + 4 * C - 1], '\r');

	struct str want = { 0 };
	ref_convert(s.p + 7, s.len - 7, &want);
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.no_mmap = no_mmap;
	struct mbox *mb = open_data_opt(s.p, s.len, &opt);
	assert_int_equal(mbox_count(mb), 1);
	assert_message(mb, 1, want.p, want.len);
	/* the same through a small output buffer (lines longer than the buffer) */
	struct str out = { 0 };
	assert_int_equal(send_into(mb, 1, -1, &out, 1000), 0);
	assert_int_equal(out.len, want.len);
	assert_memory_equal(out.p, want.p, want.len);
	mbox_close(mb);
	str_free(&s);
	str_free(&want);
	str_free(&out);
}

/* A large RETR reaches the client in writes of nearly the buffer's size, not half of it. */
static void test_retr_fills_the_buffer(void **state)
{
	(void)state;
	const char *path = test_path("fill");
	const char line[] = "0123456789012345678901234567890123456789012345678901234567890123456789\n";
	size_t nlines = 20000;
	struct str s = { 0 };
	str_add(&s, "From a\nSubject: big\n\n", strlen("From a\nSubject: big\n\n"));
	for (size_t i = 0; i < nlines; i++)
		str_add(&s, line, sizeof(line) - 1);
	test_write_file(path, s.p, s.len);
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	struct memsink ms;
	memset(&ms, 0, sizeof(ms));
	memsink_reset(&ms);
	struct outbuf ob;
	assert_int_equal(outbuf_init(&ob, OUTBUF_SIZE, memsink_write, &ms), 0);
	assert_int_equal(mbox_send(mb, 1, -1, &ob), 0);
	assert_int_equal(outbuf_flush(&ob), 0);
	size_t sent = ms.len;
	assert_int_equal(sent, strlen("Subject: big\r\n\r\n") + nlines * sizeof(line));
	size_t most = (sent + OUTBUF_SIZE - SEND_MIN_ROOM - 1) / (OUTBUF_SIZE - SEND_MIN_ROOM);
	assert_true((size_t)ms.writes <= most);
	outbuf_free(&ob);
	memsink_reset(&ms);
	mbox_close(mb);
	str_free(&s);
}

static void test_window_boundaries(void **state)
{
	(void)state;
	check_window_boundaries(false);
	check_window_boundaries(true);
}

static void test_send_errors(void **state)
{
	(void)state;
	/* the file is truncated underneath: a short read is an error */
	const char *path = test_path("truncated");
	struct str s = { 0 };
	str_adds(&s, "From a\nX: 1\n\n");
	str_fill(&s, 'z', 200000);
	str_adds(&s, "\n");
	test_write_file(path, s.p, s.len);
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	assert_int_equal(truncate(path, 1000), 0);
	struct str out = { 0 };
	assert_int_equal(send_into(mb, 1, -1, &out, OUTBUF_SIZE), -1);
	assert_int_equal(send_into(mb, 2, -1, &out, OUTBUF_SIZE), -1);   /* no such message */
	mbox_close(mb);

	/* the sink fails */
	mb = open_data(s.p, s.len);
	struct memsink ms;
	memset(&ms, 0, sizeof(ms));
	memsink_reset(&ms);
	ms.fail_after = 0;
	struct outbuf ob;
	assert_int_equal(outbuf_init(&ob, OUTBUF_SIZE, memsink_write, &ms), 0);
	assert_int_equal(mbox_send(mb, 1, -1, &ob), -1);
	outbuf_free(&ob);
	memsink_reset(&ms);
	mbox_close(mb);
	str_free(&s);
	str_free(&out);
}

/* Bodies of random CR, LF, '.' and letters, every length to 300: RETR against the reference. */
static void test_conversion_every_alignment(void **state)
{
	(void)state;
	static const char alphabet[] = "ab.\n\r.\nxyz\n";
	rng_state = 12345;
	for (size_t len = 0; len <= 300; len++) {
		for (int round = 0; round < 4; round++) {
			struct str s = { 0 }, body = { 0 }, want = { 0 }, out = { 0 };
			for (size_t i = 0; i < len; i++)
				str_add(&body, &alphabet[rnd(sizeof(alphabet) - 1)], 1);
			str_adds(&body, "\nEND\n");   /* no empty line at the end of the file */
			str_adds(&s, "From x\n");
			str_add(&s, body.p, body.len);
			ref_convert(body.p, body.len, &want);
			struct mbox *mb = open_data(s.p, s.len);
			assert_int_equal(mbox_count(mb), 1);
			assert_message(mb, 1, want.p, want.len);
			/* small output buffers cut the input into pieces of every size */
			size_t cap = 2 + rnd(90);
			assert_int_equal(send_into(mb, 1, -1, &out, cap), 0);
			assert_int_equal(out.len, want.len);
			assert_memory_equal(out.p, want.p, want.len);
			mbox_close(mb);
			str_free(&s);
			str_free(&body);
			str_free(&want);
			str_free(&out);
		}
	}
}

/* Message 1 small, message 2 over three windows, message 3 small at the end. */
static void write_three_windows(const char *path, struct str *s)
{
	str_adds(s, "From a\nSubject: one\n\nbody one\n\nFrom b\nSubject: two\n\n");
	while (s->len < 3 * WINDOW_SIZE) {
		str_fill(s, 'w', 70);
		str_adds(s, "\n");
	}
	str_adds(s, "\nFrom c\nSubject: three\n\nbody three\n");
	test_write_file(path, s->p, s->len);
}

/* Cut short by another program while open: what lies past the cut fails cleanly. */
static void check_truncated_underneath(bool no_mmap)
{
	const char *path = test_path(no_mmap ? "cut-read" : "cut-mapped");
	struct str s = { 0 };
	write_three_windows(path, &s);
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 1;
	opt.no_mmap = no_mmap;
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(mbox_open(&mb, path, &opt, why, sizeof(why)), MBOX_OK);
	assert_int_equal(mbox_count(mb), 3);
	struct str out = { 0 };
	assert_int_equal(send_into(mb, 2, -1, &out, OUTBUF_SIZE), 0);   /* maps its windows */
	assert_int_equal(truncate(path, 5000), 0);   /* page 1 is the last, in part */
	/* pages past the cut are gone from a mapping: touching them raises SIGBUS */
	assert_int_equal(send_into(mb, 2, -1, &out, OUTBUF_SIZE), -1);
	assert_int_equal(send_into(mb, 2, 1000, &out, OUTBUF_SIZE), -1);   /* TOP too */
	assert_int_equal(send_into(mb, 3, -1, &out, OUTBUF_SIZE), -1);
	assert_int_equal(mbox_check_msg(mb, 3, NULL, 0), -1);
	size_t bad = 99;
	assert_int_equal(mbox_starts_intact(mb, &bad), 0);
	assert_int_equal(bad, 2);   /* the first message past the cut */
	uint64_t h[2];
	assert_int_equal(mbox_rehash(mb, 2, h), -1);
	/* what is still there reads as before */
	assert_int_equal(mbox_check_msg(mb, 2, NULL, 0), 0);
	assert_int_equal(mbox_rehash(mb, 1, h), 0);
	assert_true(h[0] == mb->msgs[1].hash[0] && h[1] == mb->msgs[1].hash[1]);
	assert_message_str(mb, 1, "Subject: one\r\n\r\nbody one\r\n");
	/* and once the octets are back, so is everything */
	test_write_file(path, s.p, s.len);
	assert_int_equal(send_into(mb, 2, -1, &out, OUTBUF_SIZE), 0);
	assert_message_str(mb, 3, "Subject: three\r\n\r\nbody three\r\n");
	assert_int_equal(mbox_check_msg(mb, 3, NULL, 0), 0);
	assert_int_equal(mbox_rehash(mb, 2, h), 0);
	assert_int_equal(mbox_starts_intact(mb, &bad), 1);
	mbox_close(mb);
	str_free(&s);
	str_free(&out);
}

static void test_truncated_underneath(void **state)
{
	(void)state;
	check_truncated_underneath(false);
	check_truncated_underneath(true);
}

/* The SIGBUS handler takes only faults in its window: any other still kills. */
static void test_foreign_sigbus_still_kills(void **state)
{
	(void)state;
	const char *path = test_path("foreign-bus");
	struct str s = { 0 };
	write_three_windows(path, &s);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct mbox *mb = NULL;
		char why[256] = "";
		if (open_path(&mb, path, why, sizeof(why)) != MBOX_OK || mbox_check_msg(mb, 2, NULL, 0) != 0)
			_exit(2);
		struct sigaction old;   /* mbox's handler is in place: it is what must let go */
		if (sigaction(SIGBUS, NULL, &old) < 0 || !(old.sa_flags & SA_SIGINFO))
			_exit(5);
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		int fd = open(path, O_RDONLY);
		char *p = fd < 0 ? MAP_FAILED : mmap(NULL, 3 * page, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED || ftruncate(open(path, O_WRONLY), 10) < 0)
			_exit(3);
		volatile char c = p[2 * page];   /* past the end: SIGBUS, not ours */
		(void)c;
		_exit(4);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
	str_free(&s);
}

/* ---- UIDL --------------------------------------------------------------- */

static void assert_uidl_format(const char *u)
{
	size_t len = strlen(u);
	assert_true(len >= 1 && len <= MAX_UIDL_LEN);
	for (size_t i = 0; i < len; i++)
		assert_true(u[i] >= 0x21 && u[i] <= 0x7e);
	for (size_t i = 0; i < 32; i++)
		assert_true((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'));
	assert_true(u[32] == '\0' || u[32] == '-');
}

static void test_uidl_format_and_uniqueness(void **state)
{
	(void)state;
	struct generated g;
	generate(&g, 200, 5);
	struct mbox *mb = open_data(g.file.p, g.file.len);
	char (*u)[MAX_UIDL_LEN + 1] = calloc(g.n, sizeof(*u));
	assert_non_null(u);
	for (size_t i = 0; i < g.n; i++) {
		uidl_of(mb, i + 1, u[i]);
		assert_uidl_format(u[i]);
		assert_int_equal(strlen(u[i]), 32);   /* every message differs */
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(u[i], u[j]);
	}
	char out_of_range[MAX_UIDL_LEN + 1] = "x";
	mbox_uidl(mb, g.n + 1, out_of_range);
	assert_string_equal(out_of_range, "");
	free(u);
	mbox_close(mb);
	generated_free(&g);
}

static void test_uidl_duplicates(void **state)
{
	(void)state;
	const char *a = "From x Mon Jan  1 00:00:00 2024\nSubject: same\n\nbody\n";
	struct str s = { 0 };
	str_adds(&s, a);
	str_adds(&s, "\nFrom y\nSubject: other\n\n\n");
	str_adds(&s, a);
	str_adds(&s, "\n");
	str_adds(&s, a);
	struct mbox *mb = open_data(s.p, s.len);
	assert_int_equal(mbox_count(mb), 4);
	char u1[MAX_UIDL_LEN + 1], u2[MAX_UIDL_LEN + 1], u3[MAX_UIDL_LEN + 1],
	     u4[MAX_UIDL_LEN + 1], want[MAX_UIDL_LEN + 8];
	uidl_of(mb, 1, u1);
	uidl_of(mb, 2, u2);
	uidl_of(mb, 3, u3);
	uidl_of(mb, 4, u4);
	assert_int_equal(strlen(u1), 32);
	snprintf(want, sizeof(want), "%s-1", u1);
	assert_string_equal(u3, want);
	snprintf(want, sizeof(want), "%s-2", u1);
	assert_string_equal(u4, want);
	assert_uidl_format(u3);
	assert_string_not_equal(u2, u1);
	mbox_close(mb);

	/* the first copy deleted: the next copy takes over its UIDL */
	str_free(&s);
	str_adds(&s, "From y\nSubject: other\n\n\n");
	str_adds(&s, a);
	str_adds(&s, "\n");
	str_adds(&s, a);
	mb = open_data(s.p, s.len);
	uidl_of(mb, 1, want);
	assert_string_equal(want, u2);
	uidl_of(mb, 2, want);
	assert_string_equal(want, u1);
	uidl_of(mb, 3, want);
	assert_string_equal(want, u3);
	mbox_close(mb);
	str_free(&s);
}

/* Thousands of messages, some of them copies: dup counts the earlier copies, as the obvious way does. */
static void test_uidl_duplicates_among_many(void **state)
{
	(void)state;
	struct str s = { 0 };
	enum { N = 6000 };
	static size_t which[N];   /* equal which: byte-identical messages, nothing else */
	rng_state = 99;
	for (size_t i = 0; i < N; i++) {
		char msg[96];
		/* one in four is a copy of one of 30 messages */
		which[i] = rnd(4) == 0 ? rnd(30) : 1000 + i;
		snprintf(msg, sizeof(msg), "From s%zu\nSubject: %zu\n\nbody\n", which[i], which[i]);
		if (i > 0)
			str_adds(&s, "\n");
		str_adds(&s, msg);
	}
	struct mbox *mb = open_data(s.p, s.len);
	assert_int_equal(mbox_count(mb), N);
	for (size_t i = 0; i < N; i++) {
		uint32_t earlier = 0;   /* from the messages themselves, not from their hashes */
		for (size_t j = 0; j < i; j++)
			earlier += which[j] == which[i];
		assert_int_equal(mb->msgs[i].dup, earlier);
	}
	mbox_close(mb);
	str_free(&s);
}

static void test_uidl_stable_when_mail_arrives_or_goes(void **state)
{
	(void)state;
	const char *path = test_path("stable");
	struct generated g;
	generate(&g, 20, 11);
	/* keep the last message newline-terminated so appending works */
	if (g.file.p[g.file.len - 1] != '\n')
		str_adds(&g.file, "\n");
	test_write_file(path, g.file.p, g.file.len);
	char why[256] = "";
	struct mbox *mb = NULL;
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	size_t n = mbox_count(mb);
	char (*before)[MAX_UIDL_LEN + 1] = calloc(n, sizeof(*before));
	assert_non_null(before);
	for (size_t i = 0; i < n; i++)
		uidl_of(mb, i + 1, before[i]);
	mbox_close(mb);

	/* a new message arrives */
	const char *newmsg = "\nFrom new@example.org Tue Jan  2 00:00:00 2024\nSubject: new\n\nhi\n";
	test_append_file(path, newmsg, strlen(newmsg));
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	assert_int_equal(mbox_count(mb), n + 1);
	char u[MAX_UIDL_LEN + 1];
	for (size_t i = 0; i < n; i++) {
		uidl_of(mb, i + 1, u);
		assert_string_equal(u, before[i]);
	}

	/* an earlier message is removed (the file rewritten without it) */
	const struct mbox_msg *m1 = mbox_msg(mb, 1), *m2 = mbox_msg(mb, 2);
	size_t len;
	char *all = test_read_file(path, &len);
	struct str rest = { 0 };
	str_add(&rest, all + m2->start, len - (size_t)m2->start);
	assert_int_equal(m1->start, 0);
	mbox_close(mb);
	free(all);
	test_write_file(path, rest.p, rest.len);
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	assert_int_equal(mbox_count(mb), n);
	for (size_t i = 1; i < n; i++) {
		uidl_of(mb, i, u);
		assert_string_equal(u, before[i]);
	}
	mbox_close(mb);
	str_free(&rest);
	free(before);
	generated_free(&g);
}

static void test_uidl_ignores_rewritten_headers(void **state)
{
	(void)state;
	char plain[MAX_UIDL_LEN + 1], u[MAX_UIDL_LEN + 1];
	uidl_of_text("From a Mon Jan  1 00:00:00 2024\nSubject: hi\nTo: b\n\nbody\n", plain);

	const char *same[] = {
		/* marked read by a local MUA, with every rewritten field */
		("From a Mon Jan  1 00:00:00 2024\nSubject: hi\nStatus: RO\nX-Status: A\n"
		 "X-Keywords: $Label1\n  $Label2\nX-UID: 42\nTo: b\nContent-Length: 5\nLines: 1\n"
		 "X-IMAP: 1 2\nX-IMAPbase: 3 4\n\nbody\n"),
		/* names in any case, blanks before the colon, folded */
		("From a Mon Jan  1 00:00:00 2024\nstatus: O\nSubject: hi\nSTATUS : RO\n"
		 "x-keywords:\n\tjunk\n more junk\nTo: b\n\nbody\n"),
		/* CRLF line ends */
		"From a Mon Jan  1 00:00:00 2024\r\nSubject: hi\r\nTo: b\r\n\r\nbody\r\n",
		/* a different body, or none */
		"From a Mon Jan  1 00:00:00 2024\nSubject: hi\nTo: b\n\nanother body\n",
		"From a Mon Jan  1 00:00:00 2024\nSubject: hi\nTo: b\n\n",
	};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		uidl_of_text(same[i], u);
		assert_string_equal(u, plain);
	}

	const char *different[] = {
		"From a Mon Jan  1 00:00:00 2024\nSubject: hi!\nTo: b\n\nbody\n",
		"From a Mon Jan  1 00:00:01 2024\nSubject: hi\nTo: b\n\nbody\n",
		/* only the listed names are left out, not names that start like them */
		"From a Mon Jan  1 00:00:00 2024\nSubject: hi\nTo: b\nStatus-Like: x\n\nbody\n",
		"From a Mon Jan  1 00:00:00 2024\nSubject: hi\nTo: b\nX-UIDL: 7\n\nbody\n",
		/* a continuation of a kept field is hashed, even after a skipped one */
		"From a Mon Jan  1 00:00:00 2024\nSubject: hi\nStatus: RO\n x\nTo: b\n c\n\nbody\n",
		/* a CR that is not part of a line end counts */
		"From a Mon Jan  1 00:00:00 2024\nSubject: hi\rTo: b\n\nbody\n",
	};
	for (size_t i = 0; i < sizeof(different) / sizeof(different[0]); i++) {
		uidl_of_text(different[i], u);
		assert_string_not_equal(u, plain);
	}
}

static void test_rehash_and_check_msg(void **state)
{
	(void)state;
	const char *path = test_path("rehash");
	const char *text = "From a\nSubject: one\nStatus: O\n\nbody\n\n"
			   "From b\nSubject: two\nStatus: O\n\nbody\n";
	test_write_file(path, text, strlen(text));
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	uint64_t h[2];
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(mbox_rehash(mb, i, h), 0);
		assert_true(h[0] == mb->msgs[i].hash[0] && h[1] == mb->msgs[i].hash[1]);
		assert_int_equal(mbox_check_msg(mb, i + 1, NULL, 0), 0);
	}
	assert_int_equal(mbox_rehash(mb, 2, h), -1);
	assert_int_equal(mbox_check_msg(mb, 3, NULL, 0), -1);
	assert_int_equal(mbox_check_msg(mb, 0, NULL, 0), -1);
	size_t bad = 99;
	assert_int_equal(mbox_starts_intact(mb, &bad), 1);

	/* another program overwrote the second From_ line: the starts check says which */
	char *clobbered = strdup(text);
	*strstr(clobbered, "From b") = 'X';
	test_write_file(path, clobbered, strlen(clobbered));
	assert_int_equal(mbox_starts_intact(mb, &bad), 0);
	assert_int_equal(bad, 1);
	free(clobbered);
	test_write_file(path, text, strlen(text));
	assert_int_equal(mbox_starts_intact(mb, &bad), 1);

	/* a MUA marks message 2 read in place: same hash */
	char *edited = strdup(text);
	memcpy(strstr(strstr(edited, "From b"), "Status: O"), "Status: R", 9);
	test_write_file(path, edited, strlen(edited));
	assert_int_equal(mbox_rehash(mb, 1, h), 0);
	assert_true(h[0] == mb->msgs[1].hash[0] && h[1] == mb->msgs[1].hash[1]);
	assert_int_equal(mbox_starts_intact(mb, &bad), 1);
	/* its subject changes: a different hash */
	memcpy(strstr(edited, "Subject: two"), "Subject: TWO", 12);
	test_write_file(path, edited, strlen(edited));
	assert_int_equal(mbox_rehash(mb, 1, h), 0);
	assert_false(h[0] == mb->msgs[1].hash[0] && h[1] == mb->msgs[1].hash[1]);
	/* everything moved: the From_ line is no longer where it was */
	test_write_file(path, edited + 1, strlen(edited) - 1);
	assert_int_equal(mbox_check_msg(mb, 2, NULL, 0), -1);
	assert_int_equal(mbox_rehash(mb, 1, h), -1);
	assert_int_equal(mbox_check_msg(mb, 1, NULL, 0), -1);
	assert_int_equal(mbox_starts_intact(mb, &bad), 0);
	assert_int_equal(bad, 0);
	free(edited);
	mbox_close(mb);
}

/* ---- limits ------------------------------------------------------------- */

static void test_limits(void **state)
{
	(void)state;
	const char *text = "From a\n\n1\n\nFrom b\n\n2\n\nFrom c\n\n3\n";
	struct mbox_options opt;
	mbox_default_options(&opt);
	assert_int_equal(opt.lock_methods, LOCK_DEFAULT);
	assert_int_equal(opt.lock_timeout, LOCK_TIMEOUT);
	assert_int_equal(opt.max_messages, MAX_MESSAGES);
	assert_int_equal(opt.max_size, MAX_MAILBOX_SIZE);

	struct mbox *mb = NULL;
	char why[256] = "";
	opt.max_messages = 3;
	assert_int_equal(mbox_open_fd(&mb, test_memfd(text, strlen(text)), &opt, why, sizeof(why)),
			 MBOX_OK);
	assert_int_equal(mbox_count(mb), 3);
	mbox_close(mb);
	opt.max_messages = 2;
	assert_int_equal(mbox_open_fd(&mb, test_memfd(text, strlen(text)), &opt, why, sizeof(why)),
			 MBOX_PERM);
	assert_null(mb);
	assert_non_null(strstr(why, "too many messages"));

	mbox_default_options(&opt);
	opt.max_size = (off_t)strlen(text);
	assert_int_equal(mbox_open_fd(&mb, test_memfd(text, strlen(text)), &opt, why, sizeof(why)),
			 MBOX_OK);
	mbox_close(mb);
	opt.max_size = (off_t)strlen(text) - 1;
	assert_int_equal(mbox_open_fd(&mb, test_memfd(text, strlen(text)), &opt, why, sizeof(why)),
			 MBOX_PERM);
	assert_non_null(strstr(why, "too large"));
}

static void test_many_messages_grow_the_index(void **state)
{
	(void)state;
	struct str s = { 0 };
	const size_t n = 5000;
	for (size_t i = 0; i < n; i++) {
		char msg[96];
		snprintf(msg, sizeof(msg), "From s%zu\nSubject: %zu\n\n%s\n", i, i,
			 i % 3 ? "x" : "same");
		str_adds(&s, msg);
		if (i + 1 < n)
			str_adds(&s, "\n");
	}
	struct mbox *mb = open_data(s.p, s.len);
	assert_int_equal(mbox_count(mb), n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(mbox_msg(mb, i + 1)->dup, 0);
	char u[MAX_UIDL_LEN + 1];
	mbox_uidl(mb, n, u);
	assert_int_equal(strlen(u), 32);
	mbox_close(mb);
	str_free(&s);
}

/* ---- opening files ------------------------------------------------------ */

static void test_fifo_symlink_directory_refused(void **state)
{
	(void)state;
	struct mbox *mb = NULL;
	char why[256] = "";
	const char *fifo = test_path("fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(open_path(&mb, fifo, why, sizeof(why)), MBOX_PERM);
	assert_null(mb);
	assert_non_null(strstr(why, "not a regular file"));

	const char *target = test_path("target");
	test_write_file(target, "From a\n\nx\n", 10);
	const char *link = test_path("symlink");
	assert_int_equal(symlink("target", link), 0);
	assert_int_equal(open_path(&mb, link, why, sizeof(why)), MBOX_PERM);
	assert_null(mb);
	assert_non_null(strstr(why, "symbolic link"));

	const char *dir = test_path("adir");
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(open_path(&mb, dir, why, sizeof(why)), MBOX_PERM);
	assert_null(mb);

	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[1]);
	assert_int_equal(mbox_open_fd(&mb, p[0], NULL, why, sizeof(why)), MBOX_PERM);
	assert_null(mb);
}

static void test_second_open_in_use(void **state)
{
	(void)state;
	const char *path = test_path("inuse");
	test_write_file(path, "From a\n\nx\n", 10);
	const unsigned variants[] = { LOCK_DEFAULT, LOCK_DOTLOCK | LOCK_FCNTL | LOCK_FLOCK };
	for (size_t v = 0; v < 2; v++) {
		struct mbox_options opt;
		mbox_default_options(&opt);
		opt.lock_methods = variants[v];
		opt.lock_timeout = 1;
		struct mbox *a = NULL, *b = NULL;
		char why[256] = "";
		assert_int_equal(mbox_open(&a, path, &opt, why, sizeof(why)), MBOX_OK);
		assert_int_equal(mbox_count(a), 1);
		assert_string_equal(a->path, path);
		assert_int_equal(mbox_open(&b, path, &opt, why, sizeof(why)), MBOX_IN_USE);
		assert_null(b);
		assert_non_null(strstr(why, "in use by another session"));
		/* the MDA locks are not held for the session */
		char lockpath[600];
		snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
		assert_int_equal(access(lockpath, F_OK), -1);
		struct mail_lock lk;
		int fd = open(path, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(mailbox_lock(path, fd, opt.lock_methods, 0, &lk, why, sizeof(why)), 0);
		mailbox_unlock(&lk);
		close(fd);
		mbox_close(a);
		assert_int_equal(mbox_open(&b, path, &opt, why, sizeof(why)), MBOX_OK);
		mbox_close(b);
	}
}

static void test_locked_by_mda_is_temp(void **state)
{
	(void)state;
	const char *path = test_path("mdalock");
	test_write_file(path, "From a\n\nx\n", 10);
	char lockpath[600];
	snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
	test_write_file(lockpath, "1\n", 2);
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_TEMP);
	assert_null(mb);
	assert_non_null(strstr(why, "locked"));
	assert_int_equal(unlink(lockpath), 0);
	/* the session lock was given back: a retry works */
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
}

static void test_journal_present_is_temp(void **state)
{
	(void)state;
	const char *path = test_path("journaled");
	test_write_file(path, "From a\n\nx\n", 10);
	char journal[600];
	assert_int_equal(mbox_journal_path(path, NULL, journal, sizeof(journal)), 0);
	char want[600];
	snprintf(want, sizeof(want), "%s%s", path, JOURNAL_SUFFIX);
	assert_string_equal(journal, want);
	char tiny[8];
	assert_int_equal(mbox_journal_path(path, NULL, tiny, sizeof(tiny)), -1);

	/* Someone else's file at that name is no journal: it blocks nothing. */
	test_write_file(journal, "j", 1);
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
	mb = NULL;
	/* One of ours, cut short before its header was written: the mailbox needs recovery. */
	char cut[80] = { 0 };
	memcpy(cut + 64, "kept data", 9);
	test_write_file(journal, cut, sizeof(cut));
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_TEMP);
	assert_null(mb);
	assert_non_null(strstr(why, "needs recovery"));
	unlink(journal);
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
}

static void test_open_records_identity(void **state)
{
	(void)state;
	const char *path = test_path("ident");
	test_write_file(path, "From a\n\nx\n", 10);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	assert_true(mb->dev == st.st_dev && mb->ino == st.st_ino);
	assert_int_equal(mb->scanned, 10);
	int flags = fcntl(mb->fd, F_GETFL);
	assert_true((flags & O_ACCMODE) == O_RDWR && !(flags & O_NONBLOCK));
	assert_true(fcntl(mb->fd, F_GETFD) & FD_CLOEXEC);
	mbox_close(mb);
}

struct logbuf {
	char text[4096];
};

static void collect_log(int priority, const char *msg, void *ctx)
{
	struct logbuf *lb = ctx;
	size_t used = strlen(lb->text);
	(void)priority;
	snprintf(lb->text + used, sizeof(lb->text) - used, "%s\n", msg);
}

/* The one rule of what is a mailbox to serve, and how a file is described in the log. */
static void test_file_problem_and_description(void **state)
{
	(void)state;
	struct stat st = {.st_mode = S_IFREG | 0600, .st_nlink = 1, .st_uid = geteuid()};
	assert_null(mbox_file_problem(&st));
	st.st_mode = S_IFREG | 0400;   /* its owner cannot write it: the update would fail */
	assert_non_null(strstr(mbox_file_problem(&st), "mode"));
	st.st_mode = S_IFLNK | 0777;
	assert_string_equal(mbox_file_problem(&st), "mailbox is a symbolic link");
	st.st_mode = S_IFDIR | 0700;
	assert_string_equal(mbox_file_problem(&st), "mailbox is not a regular file");
	st.st_mode = S_IFREG | 0600;
	st.st_uid = geteuid() + 1;
	assert_non_null(strstr(mbox_file_problem(&st), "not owned by"));
	char out[200];
	st.st_uid = 0;
	st.st_nlink = 2;
	mbox_describe_file(&st, "root", out, sizeof(out));
	assert_string_equal(out, "a regular file, mode 0600, 2 links, owner uid 0 (root)");
	st.st_mode = S_IFIFO | 0644;
	st.st_nlink = 1;
	mbox_describe_file(&st, NULL, out, sizeof(out));
	assert_string_equal(out, "a FIFO, mode 0644, 1 link, owner uid 0");
}

/* A missing mailbox is an empty maildrop; a missing directory too, with a log line. */
static void test_missing_directory_logged(void **state)
{
	(void)state;
	char path[600];
	snprintf(path, sizeof(path), "%s/no-such-dir/inbox", test_path("missing-dir"));
	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	assert_int_equal(mbox_count(mb), 0);
	mbox_close(mb);
	assert_non_null(strstr(lb.text, "no-such-dir does not exist"));
	assert_non_null(strstr(lb.text, "serving an empty maildrop"));
	/* A missing file in an existing directory is just no mail yet: nothing logged. */
	lb.text[0] = '\0';
	assert_int_equal(open_path(&mb, test_path("missing-file"), why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
	log_set_hook(NULL, NULL);
	assert_string_equal(lb.text, "");
}

/* A mailbox with a second name (a hard link): refused, saying what was found and expected. */
static void test_hard_linked_mailbox_refused(void **state)
{
	(void)state;
	const char *path = test_path("linked");
	test_write_file(path, "From a\n\nx\n", 10);
	char other[600];
	snprintf(other, sizeof(other), "%s-other", path);
	assert_int_equal(link(path, other), 0);
	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_PERM);
	log_set_hook(NULL, NULL);
	assert_null(mb);
	assert_non_null(strstr(why, "hard link"));
	assert_non_null(strstr(lb.text, "found a regular file, mode 0"));
	assert_non_null(strstr(lb.text, ", 2 links, owner uid "));
	assert_non_null(strstr(lb.text, "expected a regular file, mode rw for its owner, 1 link"));
	assert_int_equal(unlink(other), 0);
	assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
}

/*
 * A mailbox named like another's side file (user "alice.lock" under
 * /var/mail/%u) is refused at login, logged, and its file never touched;
 * every name pop3d makes for a mailbox is such a name.
 */
static void test_side_file_names_refused(void **state)
{
	(void)state;
	static const char mail[] = "From a\n\nx\n";
	const char *side[] = { "alice.lock", "alice.pop3d-journal", "alice.pop3d-journal.new",
			       "alice.pop3d-session", "alice.pop3d-index", "alice.pop3d-index.123",
			       ".lk.pop3d.12.0.host", ".lk01234host" };
	for (size_t i = 0; i < sizeof(side) / sizeof(side[0]); i++) {
		const char *path = test_path(side[i]);
		test_write_file(path, mail, sizeof(mail) - 1);
		struct logbuf lb = { "" };
		log_set_hook(collect_log, &lb);
		struct mbox *mb = NULL;
		char why[256] = "";
		assert_int_equal(open_path(&mb, path, why, sizeof(why)), MBOX_PERM);
		log_set_hook(NULL, NULL);
		assert_null(mb);
		assert_non_null(strstr(lb.text, "side file"));
		assert_true(mbox_is_side_file(path));
		size_t len;
		char *data = test_read_file(path, &len);
		assert_int_equal(len, sizeof(mail) - 1);
		free(data);
	}
	const char *fine[] = { "alice", "alice.locked", "lockbox", "alice.lock.mbox", "pop3d-journal",
			       "alice.lk" };
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
		assert_false(mbox_is_side_file(fine[i]));
	/* Every name the code makes is one: beside the mailbox and in --journal-dir. */
	const char *suffixes[] = { JOURNAL_SUFFIX, JOURNAL_SUFFIX JOURNAL_TEMP_SUFFIX,
				   SESSION_LOCK_SUFFIX, INDEX_SUFFIX, DOTLOCK_SUFFIX };
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char buf[600];
		assert_int_equal(mbox_sidecar_path("/var/mail/alice", NULL, suffixes[i], buf,
						   sizeof(buf)), 0);
		assert_true(mbox_is_side_file(buf));
		assert_int_equal(mbox_sidecar_path("/var/mail/alice", "/var/lib/j/1000", suffixes[i],
						   buf, sizeof(buf)), 0);
		assert_true(mbox_is_side_file(buf));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_rules),
		cmocka_unit_test(test_from_line_needs_the_space),
		cmocka_unit_test(test_final_empty_line_excluded_once),
		cmocka_unit_test(test_no_final_newline),
		cmocka_unit_test(test_empty_messages),
		cmocka_unit_test(test_crlf_mailbox),
		cmocka_unit_test(test_pseudo_message_hidden),
		cmocka_unit_test(test_pseudo_message_variants_visible),
		cmocka_unit_test(test_pseudo_message_folded_subject_across_scan_buffer),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_not_an_mbox),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_huge_nul_line_longer_than_scan_buffer),
		cmocka_unit_test(test_separator_split_across_scan_buffer),
		cmocka_unit_test(test_body_from_split_across_scan_buffer),
		cmocka_unit_test(test_header_name_split_across_scan_buffer),
		cmocka_unit_test(test_generated_sizes_and_contents),
		cmocka_unit_test(test_generated_top),
		cmocka_unit_test(test_byte_stuffing),
		cmocka_unit_test(test_top),
		cmocka_unit_test(test_retr_fills_the_buffer),
		cmocka_unit_test(test_window_boundaries),
		cmocka_unit_test(test_send_errors),
		cmocka_unit_test(test_conversion_every_alignment),
		cmocka_unit_test(test_truncated_underneath),
		cmocka_unit_test(test_foreign_sigbus_still_kills),
		cmocka_unit_test(test_uidl_format_and_uniqueness),
		cmocka_unit_test(test_uidl_duplicates),
		cmocka_unit_test(test_uidl_duplicates_among_many),
		cmocka_unit_test(test_uidl_stable_when_mail_arrives_or_goes),
		cmocka_unit_test(test_uidl_ignores_rewritten_headers),
		cmocka_unit_test(test_rehash_and_check_msg),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_many_messages_grow_the_index),
		cmocka_unit_test(test_fifo_symlink_directory_refused),
		cmocka_unit_test(test_second_open_in_use),
		cmocka_unit_test(test_locked_by_mda_is_temp),
		cmocka_unit_test(test_journal_present_is_temp),
		cmocka_unit_test(test_open_records_identity),
		cmocka_unit_test(test_hard_linked_mailbox_refused),
		cmocka_unit_test(test_file_problem_and_description),
		cmocka_unit_test(test_missing_directory_logged),
		cmocka_unit_test(test_side_file_names_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
