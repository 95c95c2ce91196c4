/*
 * Fuzz target: the mbox scanner fed arbitrary files, checked against an
 * independent reading of the contract (CONTRACT.md, "Mailbox"):
 *
 *  - the verdict: an empty file is an empty maildrop, a file that does not
 *    start with "From " is refused, more messages than the limit are refused;
 *  - every message's offsets (From_ line, first octet, end before the
 *    separating empty line or the one empty line that ends the file);
 *  - the hidden UW-IMAP / Dovecot pseudo message;
 *  - RETR: the octets sent are the message with CRLF line ends, byte-stuffed,
 *    and the size in the index is what RETR delivers before stuffing;
 *  - TOP n k: the header, the empty line and k body lines of the same;
 *  - UIDL: 1..70 characters 0x21..0x7E, unique; a rescan gives the same hash.
 *
 * Built twice. fuzz_mbox scans the input as the whole file. fuzz_mbox_split
 * (-DMBOX_SPLIT) puts it behind a fixed valid prefix that ends 24 octets
 * before WINDOW_SIZE, so the input straddles the scanner's window
 * boundary (line heads carried over between reads) and the 64 KiB chunks in
 * which messages are sent and rescanned.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "limits.h"
#include "log.h"
#include "mbox.h"
#include "outbuf.h"

#define FZ_MAX_MESSAGES 40      /* low, so the limit is crossed */
#define FZ_MAX_SIZE     ((off_t)4 << 20)
#define HEAD_OCTETS     32      /* a header name and its ':' are looked for this far */
#define SPLIT_BEFORE    24      /* octets of the input before the scanner's window boundary */
#define PSEUDO_MARK     "FOLDER INTERNAL DATA"

/* ---- the reference reading ---------------------------------------------- */

struct ref_msg {
	size_t start;   /* the From_ line */
	size_t body;    /* just after it */
	size_t end;     /* before the separating (or final) empty line */
};

struct ref {
	struct ref_msg *msgs;
	size_t n, cap;
	bool not_mbox;
	bool pseudo;    /* the first message is the hidden pseudo message */
};

static void ref_add(struct ref *r, size_t start, size_t body)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->msgs = realloc(r->msgs, r->cap * sizeof(*r->msgs));
		FZ_CHECK(r->msgs != NULL, "out of memory");
	}
	r->msgs[r->n++] = (struct ref_msg){ start, body, 0 };
}

/* The line at pos: its length, LF included when there is one. */
FZ_UNTRACED static size_t line_len(const char *d, size_t size, size_t pos)
{
	const char *nl = memchr(d + pos, '\n', size - pos);
	return nl ? (size_t)(nl - (d + pos)) + 1 : size - pos;
}

/* "\n" or "\r\n": an empty line. */
FZ_UNTRACED static bool line_empty(const char *l, size_t len)
{
	return (len == 1 && l[0] == '\n') || (len == 2 && l[0] == '\r' && l[1] == '\n');
}

/* A message starts at a "From " line at the start of the file or after an empty line. */
FZ_UNTRACED static void ref_split(const char *d, size_t size, struct ref *r)
{
	bool prev_empty = false;
	size_t prev_start = 0;
	for (size_t pos = 0; pos < size; ) {
		size_t len = line_len(d, size, pos);
		bool from = len >= 5 && memcmp(d + pos, "From ", 5) == 0 && (pos == 0 || prev_empty);
		if (from) {
			if (r->n > 0)
				r->msgs[r->n - 1].end = prev_start;   /* the empty line before */
			ref_add(r, pos, pos + len);
		} else if (r->n == 0) {
			r->not_mbox = true;
			return;
		}
		prev_empty = line_empty(d + pos, len);
		prev_start = pos;
		pos += len;
	}
	if (r->n > 0)   /* the one empty line that ends the file is not part of the message */
		r->msgs[r->n - 1].end = prev_empty ? prev_start : size;
}

/* Is the header line l a field called name (any case, blanks before ':')? */
static bool ref_field_is(const char *l, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	size_t head = len < HEAD_OCTETS ? len : HEAD_OCTETS;
	if (head <= nlen || strncasecmp(l, name, nlen) != 0)
		return false;
	for (size_t i = nlen; i < head; i++) {
		if (l[i] == ':')
			return true;
		if (l[i] != ' ' && l[i] != '\t')
			return false;
	}
	return false;
}

/* Does the text of a Subject field, CRs left out, contain the mark? Streams over its lines. */
struct mark_search {
	char tail[sizeof(PSEUDO_MARK)];   /* the last octets seen, CRs left out */
	size_t have;
	bool found;
};

FZ_UNTRACED static void mark_feed(struct mark_search *m, const char *p, size_t n)
{
	const size_t mlen = sizeof(PSEUDO_MARK) - 1;
	for (size_t i = 0; i < n && !m->found; i++) {
		if (p[i] == '\r')
			continue;
		if (m->have == mlen) {
			memmove(m->tail, m->tail + 1, mlen - 1);
			m->have--;
		}
		m->tail[m->have++] = p[i];
		m->found = m->have == mlen && memcmp(m->tail, PSEUDO_MARK, mlen) == 0;
	}
}

/* The first message hides when its header has an X-IMAP field and a Subject with the mark. */
FZ_UNTRACED static void ref_pseudo(const char *d, struct ref *r)
{
	if (r->n == 0)
		return;
	const struct ref_msg *m = &r->msgs[0];
	bool ximap = false, in_subject = false;
	struct mark_search ms = { .have = 0, .found = false };
	for (size_t pos = m->body; pos < m->end; ) {
		size_t len = line_len(d, m->end, pos);
		const char *l = d + pos;
		pos += len;
		if (line_empty(l, len))
			break;   /* the end of the header */
		size_t text = l[len - 1] == '\n' ? len - 1 : len;
		if (l[0] != ' ' && l[0] != '\t') {
			if (ref_field_is(l, len, "X-IMAP"))
				ximap = true;
			in_subject = ref_field_is(l, len, "Subject");
			ms.have = 0;
		}
		if (in_subject)
			mark_feed(&ms, l, text);
		if (ms.found)
			in_subject = false;
	}
	r->pseudo = ximap && ms.found;
}

/* ---- what RETR and TOP must send ---------------------------------------- */

/* d[from..to) with CRLF line ends, byte-stuffed (stuffed) or not; lines < 0: all, else TOP. */
FZ_UNTRACED static void ref_wire(const char *d, size_t from, size_t to, long lines, bool stuffed,
		     struct fz_sink *out)
{
	bool in_header = true;
	fz_sink_clear(out);
	for (size_t pos = from; pos < to; ) {
		size_t len = line_len(d, to, pos);
		const char *l = d + pos;
		pos += len;
		if (lines >= 0 && !in_header && lines-- == 0)
			break;
		if (stuffed && l[0] == '.')
			fz_sink_write(out, ".", 1);
		size_t text = l[len - 1] == '\n' ? len - 1 : len;
		if (text > 0 && l[text - 1] == '\r' && text < len)
			text--;   /* a stored CR LF is not doubled */
		fz_sink_write(out, l, text);
		fz_sink_write(out, "\r\n", 2);
		if (line_empty(l, len))
			in_header = false;
	}
}

/* ---- checking the scanner against the reference ------------------------- */

static void check_uidl(const char *uid, char (*seen)[MAX_UIDL_LEN + 1], size_t n)
{
	size_t len = strlen(uid);
	FZ_CHECK(len >= 1 && len <= MAX_UIDL_LEN, "UIDL of %zu characters", len);
	for (size_t i = 0; i < len; i++)
		FZ_CHECK(uid[i] >= 0x21 && uid[i] <= 0x7e, "UIDL character 0x%02x",
			 (unsigned char)uid[i]);
	for (size_t i = 0; i < n; i++)
		FZ_CHECK(strcmp(seen[i], uid) != 0, "UIDL %s given twice", uid);
}

/* mbox_send(n, lines) must deliver exactly the reference's stuffed wire form. */
static void check_send(const struct mbox *mb, size_t n, long lines, size_t cap,
		       const char *d, const struct ref_msg *rm, struct fz_sink *got,
		       struct fz_sink *want)
{
	struct outbuf ob;
	fz_sink_clear(got);
	FZ_CHECK(outbuf_init(&ob, cap, fz_sink_write, got) == 0, "outbuf_init");
	FZ_CHECK(mbox_send(mb, n, lines, &ob) == 0, "mbox_send(%zu, %ld) failed", n, lines);
	FZ_CHECK(outbuf_flush(&ob) == 0, "flush");
	outbuf_free(&ob);
	ref_wire(d, rm->body, rm->end, lines, true, want);
	FZ_CHECK(got->len == want->len &&
		 (got->len == 0 || memcmp(got->data, want->data, got->len) == 0),
		 "message %zu, lines %ld: %zu octets sent, %zu expected", n, lines, got->len,
		 want->len);
}

static void check_messages(const struct mbox *mb, const char *d, const struct ref *r)
{
	static struct fz_sink got, want;
	static char seen[FZ_MAX_MESSAGES + 1][MAX_UIDL_LEN + 1];
	FZ_CHECK(mb->nmsgs == r->n, "%zu messages, expected %zu", mb->nmsgs, r->n);
	FZ_CHECK(mb->first == (r->pseudo ? 1u : 0u), "pseudo message: first=%zu, expected %d",
		 mb->first, r->pseudo);
	for (size_t i = 0; i < r->n; i++) {
		const struct mbox_msg *m = &mb->msgs[i];
		const struct ref_msg *rm = &r->msgs[i];
		FZ_CHECK(m->start == (off_t)rm->start && m->body == (off_t)rm->body &&
			 m->end == (off_t)rm->end,
			 "message %zu at %jd/%jd/%jd, expected %zu/%zu/%zu", i, (intmax_t)m->start,
			 (intmax_t)m->body, (intmax_t)m->end, rm->start, rm->body, rm->end);
		uint64_t h[2];
		FZ_CHECK(mbox_rehash(mb, i, h) == 0 && h[0] == m->hash[0] && h[1] == m->hash[1],
			 "message %zu hashes differently when rescanned", i);
		ref_wire(d, rm->body, rm->end, -1, false, &want);
		FZ_CHECK(m->size == (off_t)want.len, "message %zu: size %jd, RETR sends %zu",
			 i, (intmax_t)m->size, want.len);
	}
	for (size_t n = 1; n <= mbox_count(mb); n++) {
		const struct ref_msg *rm = &r->msgs[mb->first + n - 1];
		FZ_CHECK(mbox_check_msg(mb, n, NULL, 0) == 0, "message %zu: From_ line not found", n);
		size_t cap = n % 2 ? OUTBUF_SIZE : 100;   /* small: long lines bypass the buffer */
		check_send(mb, n, -1, cap, d, rm, &got, &want);
		check_send(mb, n, 0, cap, d, rm, &got, &want);
		check_send(mb, n, 2, cap, d, rm, &got, &want);
		mbox_uidl(mb, n, seen[n - 1]);
		check_uidl(seen[n - 1], seen, n - 1);
	}
	FZ_CHECK(mbox_msg(mb, 0) == NULL && mbox_msg(mb, mbox_count(mb) + 1) == NULL,
		 "out-of-range message numbers accepted");
}

static void check_file(int fd, const char *d, size_t size)
{
	struct ref r = { .msgs = NULL };
	ref_split(d, size, &r);
	ref_pseudo(d, &r);
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.max_messages = FZ_MAX_MESSAGES;
	opt.max_size = FZ_MAX_SIZE;
	char why[256] = "";
	struct mbox *mb = NULL;
	int dfd = dup(fd);
	FZ_CHECK(dfd >= 0, "dup");
	enum mbox_status st = mbox_open_fd(&mb, dfd, &opt, why, sizeof(why));
	if (r.not_mbox) {
		FZ_CHECK(st == MBOX_PERM && strstr(why, "not an mbox"), "not an mbox, got %d: %s",
			 (int)st, why);
	} else if (r.n > FZ_MAX_MESSAGES) {
		FZ_CHECK(st == MBOX_PERM && strstr(why, "too many messages"),
			 "%zu messages over the limit, got %d: %s", r.n, (int)st, why);
	} else {
		FZ_CHECK(st == MBOX_OK, "refused (%d): %s", (int)st, why);
		check_messages(mb, d, &r);
	}
	FZ_CHECK((st == MBOX_OK) == (mb != NULL), "status and maildrop disagree");
	mbox_close(mb);
	free(r.msgs);
}

#ifdef MBOX_SPLIT
#define PAD_LINE 4000
_Static_assert(WINDOW_SIZE - SPLIT_BEFORE > 2 * PAD_LINE, "prefix too short");

/* A valid From_ line and header lines, ending SPLIT_BEFORE octets before the buffer boundary. */
static size_t make_prefix(char *buf)
{
	const size_t total = WINDOW_SIZE - SPLIT_BEFORE;
	size_t len = (size_t)sprintf(buf, "From \n");
	while (len < total) {
		/* Few, long lines (each costs the fuzzer's hooks); the last takes the rest. */
		size_t room = total - len;
		size_t line = room >= 2 * PAD_LINE ? PAD_LINE : room;
		memcpy(buf + len, "X-Pad: ", 7);
		memset(buf + len + 7, 'x', line - 8);
		buf[len + line - 1] = '\n';
		len += line;
	}
	return len;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char *file;
	static size_t prefix;
	if (fd < 0) {
		file = malloc(WINDOW_SIZE + (1 << 20));
		FZ_CHECK(file != NULL, "malloc");
#ifdef MBOX_SPLIT
		prefix = make_prefix(file);
		FZ_CHECK(prefix == WINDOW_SIZE - SPLIT_BEFORE, "prefix of %zu octets", prefix);
#endif
		fd = fz_memfd("", 0);
	}
	if (size > (1 << 20))
		return 0;
	memcpy(file + prefix, data, size);
	fz_memfd_set(fd, file, prefix + size);
	check_file(fd, file, prefix + size);
	return 0;
}
