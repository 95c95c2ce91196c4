/*
 * Unit tests for index.c: a login with an index file sees exactly what a
 * login without one sees, whatever happened to the mailbox or the index.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index.h"
#include "limits.h"
#include "mbox.h"
#include "testutil.h"
#include "update.h"

/* ---- building mailboxes ------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + len + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	buf_add(b, tmp, (size_t)n);
}

static void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/*
 * Message `serial` with the line kinds the scanner cares about: CRLF and bare
 * LF, dots, empty lines, quoted From, long lines. `body_lines` sets its length.
 */
static void add_message(struct buf *b, unsigned serial, unsigned body_lines)
{
	buf_printf(b, "From sender%u@example.org Mon Jan  1 00:00:%02u 2024\n", serial, serial % 60);
	buf_printf(b, "Subject: message %u\n%s", serial, serial % 3 ? "" : "Status: RO\r\n");
	buf_printf(b, "Message-ID: <%u@example.org>\n\n", serial);
	for (unsigned i = 0; i < body_lines; i++) {
		switch ((serial * 7 + i) % 9) {
		case 0: buf_printf(b, ".dotted %u\n", i); break;
		case 1: buf_printf(b, "crlf line %u\r\n", i); break;
		case 2: buf_printf(b, "\n>From quoted %u\n", i); break;
		case 3: buf_printf(b, "\r\n"); break;
		case 4:
			for (int k = 0; k < 3; k++)
				buf_printf(b, "long long long long long long long long long long long ");
			buf_printf(b, "end\n");
			break;
		default: buf_printf(b, "plain text line %u of message %u\n", i, serial); break;
		}
	}
	buf_printf(b, "\n");   /* the separator */
}

/* Messages first..first+n-1 appended. */
static void add_messages(struct buf *b, unsigned first, unsigned n, unsigned body_lines)
{
	for (unsigned i = first; i < first + n; i++)
		add_message(b, i, body_lines + i % 5);
}

/* The UW-IMAP pseudo message that a mailbox may start with. */
static void add_pseudo(struct buf *b)
{
	buf_printf(b, "From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
		      "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
		      "X-IMAP: 1700000000 0000000010\n\nThis text is part of the internal format.\n\n");
}

/* ---- opening and comparing ---------------------------------------------- */

struct paths {
	char mbox[MAX_PATH_LEN];
	char dir[MAX_PATH_LEN];     /* the index directory */
	char index[MAX_PATH_LEN];   /* the index file in it */
};

/* Mailbox `name`, its index directory `name`.index (one per test: no test sees another's). */
static void make_paths(struct paths *p, const char *name)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s.index", name);
	snprintf(p->mbox, sizeof(p->mbox), "%s", test_path(name));
	snprintf(p->dir, sizeof(p->dir), "%s", test_path(dir));
	assert_int_equal(index_path(p->dir, p->mbox, p->index, sizeof(p->index)), 0);
}

static struct mbox *open_mbox(const char *path, const char *index_dir)
{
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 1;
	opt.index_dir = index_dir;
	struct mbox *mb = NULL;
	char why[256] = "";
	enum mbox_status st = mbox_open(&mb, path, &opt, why, sizeof(why));
	if (st != MBOX_OK)
		fail_msg("mbox_open %s: %d %s", path, st, why);
	return mb;
}

/* Everything a client can see (STAT, LIST, UIDL) and where RETR reads, as text. */
static char *describe(struct mbox *mb)
{
	struct buf d = { 0 };
	buf_printf(&d, "count %zu first %zu scanned %jd\n", mbox_count(mb), mb->first,
		   (intmax_t)mb->scanned);
	for (size_t i = 0; i < mb->nmsgs; i++) {
		const struct mbox_msg *m = &mb->msgs[i];
		char uidl[MAX_UIDL_LEN + 1] = "";
		if (i >= mb->first)
			mbox_uidl(mb, i - mb->first + 1, uidl);
		buf_printf(&d, "%zu %jd %jd %jd %jd %s\n", i, (intmax_t)m->start, (intmax_t)m->body,
			   (intmax_t)m->end, (intmax_t)m->size, uidl);
	}
	return d.p;
}

static char *describe_path(const char *path, const char *index_dir)
{
	struct mbox *mb = open_mbox(path, index_dir);
	char *d = describe(mb);
	mbox_close(mb);
	return d;
}

/* A login with the index sees what a login without one sees. */
static void assert_same_as_unindexed(const struct paths *p)
{
	char *want = describe_path(p->mbox, NULL);
	char *got = describe_path(p->mbox, p->dir);
	assert_string_equal(got, want);
	free(want);
	free(got);
}

/* index_load's verdict on the index as it is now, for the mailbox as it is now. */
static enum index_result load_result(const struct paths *p, struct index_loaded *out)
{
	int fd = open(p->mbox, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	struct index_loaded tmp;
	struct index_loaded *dst = out ? out : &tmp;
	enum index_result r = index_load(p->dir, p->mbox, fd, &st, dst);
	if (!out)
		free(tmp.msgs);
	close(fd);
	return r;
}

static void append_str(const char *path, const char *text)
{
	test_append_file(path, text, strlen(text));
}

static void write_mbox(const struct paths *p, const struct buf *b)
{
	test_write_file(p->mbox, b->p, b->len);
}

/* A mailbox of n messages with its index built by a first login. */
static void setup_indexed(struct paths *p, const char *name, struct buf *b, unsigned n)
{
	make_paths(p, name);
	add_messages(b, 1, n, 12);
	write_mbox(p, b);
	free(describe_path(p->mbox, p->dir));
	assert_int_equal(load_result(p, NULL), INDEX_SAME);
}

static ino_t inode_of(const char *path)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	return st.st_ino;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_index_written_then_used(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	make_paths(&p, "mbox");
	add_messages(&b, 1, 40, 12);
	write_mbox(&p, &b);
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);   /* none yet */

	char *want = describe_path(p.mbox, NULL);
	char *first = describe_path(p.mbox, p.dir);   /* scans, writes the index */
	assert_string_equal(first, want);

	struct stat st;
	assert_int_equal(lstat(p.index, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(lstat(p.dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	struct index_loaded idx;
	assert_int_equal(load_result(&p, &idx), INDEX_SAME);
	assert_int_equal(idx.n, 40);
	assert_int_equal(idx.resume, (off_t)b.len);
	free(idx.msgs);

	ino_t before = inode_of(p.index);
	char *second = describe_path(p.mbox, p.dir);   /* from the index alone */
	assert_string_equal(second, want);
	assert_true(inode_of(p.index) == before);   /* an index that was right is not rewritten */

	/* Written atomically: nothing but the index in its directory. */
	DIR *d = opendir(p.dir);
	assert_non_null(d);
	int files = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (e->d_name[0] != '.' || strlen(e->d_name) > 2)
			files++;
	closedir(d);
	assert_int_equal(files, 1);
	free(want);
	free(first);
	free(second);
	buf_free(&b);
}

static void test_index_grown_scans_only_the_end(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "grown", &b, 30);
	off_t last_start = 0;
	{
		struct mbox *mb = open_mbox(p.mbox, NULL);
		last_start = mb->msgs[mb->nmsgs - 1].start;
		mbox_close(mb);
	}
	struct buf more = { 0 };
	add_messages(&more, 31, 5, 20);
	test_append_file(p.mbox, more.p, more.len);

	struct index_loaded idx;
	assert_int_equal(load_result(&p, &idx), INDEX_GROWN);
	assert_int_equal(idx.n, 29);                 /* the last one is scanned again */
	assert_int_equal(idx.resume, last_start);
	free(idx.msgs);

	assert_same_as_unindexed(&p);
	assert_int_equal(load_result(&p, &idx), INDEX_SAME);   /* rewritten for the new size */
	assert_int_equal(idx.n, 35);
	free(idx.msgs);
	buf_free(&more);
	buf_free(&b);
}

/* Appended text that is not a new message belongs to the last one. */
static void test_index_grown_last_message_goes_on(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "goes-on", &b, 10);
	append_str(p.mbox, "more body\n.dot\r\n");   /* after the final empty line */
	assert_int_equal(load_result(&p, NULL), INDEX_GROWN);
	assert_same_as_unindexed(&p);

	append_str(p.mbox, "no final newline");
	assert_same_as_unindexed(&p);
	append_str(p.mbox, "\n\nFrom x Mon Jan  1 00:00:00 2024\nSubject: y\n\nz\n");
	assert_same_as_unindexed(&p);
	buf_free(&b);
}

/* Rewrite the mailbox in place with b's octets, then put its old mtime back. */
static void rewrite_in_place(const struct paths *p, const struct buf *b, const struct stat *old)
{
	int fd = open(p->mbox, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b->p, b->len, 0), (ssize_t)b->len);
	const struct timespec times[2] = { old->st_atim, old->st_mtim };
	assert_int_equal(futimens(fd, times), 0);
	close(fd);
}

/* A header rewritten in place, same length: the UIDL must follow it. */
static void test_index_rewritten_same_size(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "same-size", &b, 20);
	struct stat old;
	assert_int_equal(stat(p.mbox, &old), 0);
	char *at = strstr(b.p, "Subject: message 7\n");
	assert_non_null(at);
	memcpy(at, "Subject: MESSAGE 7\n", 19);
	rewrite_in_place(&p, &b, &old);   /* even with the old mtime put back, the ctime tells */
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);
	assert_same_as_unindexed(&p);
	buf_free(&b);
}

/* A message boundary gone: "From " of message 12 became body text, same size. */
static void test_index_boundary_moved(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "boundary", &b, 20);
	struct stat old;
	assert_int_equal(stat(p.mbox, &old), 0);
	char *from = strstr(b.p, "\nFrom sender12@");
	assert_non_null(from);
	from[1] = 'X';
	rewrite_in_place(&p, &b, &old);
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);
	char *want = describe_path(p.mbox, NULL);
	assert_non_null(strstr(want, "count 19 "));
	free(want);
	assert_same_as_unindexed(&p);
	buf_free(&b);
}

/*
 * Rewritten near its old end, then grown: every From_ line is where it was,
 * but the octets before the old end changed (the tail checksum tells).
 */
static void test_index_changed_before_old_end_then_grown(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "tail", &b, 200);
	struct stat old;
	assert_int_equal(stat(p.mbox, &old), 0);
	char *at = strstr(b.p, "Subject: message 198\n");
	assert_non_null(at);
	assert_true((size_t)(at - b.p) > b.len - INDEX_TAIL_SIZE);
	memcpy(at, "Subject: MESSAGE 198\n", 21);
	rewrite_in_place(&p, &b, &old);
	struct buf more = { 0 };
	add_messages(&more, 500, 1, 3);
	test_append_file(p.mbox, more.p, more.len);
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);
	assert_same_as_unindexed(&p);
	buf_free(&more);
	buf_free(&b);
}

static void test_index_shrunk(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "shrunk", &b, 20);
	char *cut = strstr(b.p, "From sender15@");
	assert_non_null(cut);
	assert_int_equal(truncate(p.mbox, cut - b.p), 0);
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);
	assert_same_as_unindexed(&p);

	/* Shrunk, then grown past the old size: the old end's octets have moved. */
	struct buf more = { 0 };
	add_messages(&more, 100, 12, 30);
	test_append_file(p.mbox, more.p, more.len);
	assert_same_as_unindexed(&p);
	buf_free(&more);
	buf_free(&b);
}

/* The same octets in another file (another inode) are another mailbox. */
static void test_index_other_inode(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "inode", &b, 15);
	const char *tmp = test_path("inode.new");
	test_write_file(tmp, b.p, b.len);
	assert_int_equal(rename(tmp, p.mbox), 0);
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);
	assert_same_as_unindexed(&p);

	/* A copy that then grew: the octets before the old end match, the inode does not. */
	test_write_file(tmp, b.p, b.len);
	append_str(tmp, "From new Mon Jan  1 00:00:00 2024\nSubject: new\n\nnew\n");
	assert_int_equal(rename(tmp, p.mbox), 0);
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);
	assert_same_as_unindexed(&p);
	buf_free(&b);
}

#define IDX_ENTRY 48   /* octets of an index entry: sizeof(struct mbox_msg) */

static void test_index_corrupt_bytes(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "corrupt", &b, 25);
	size_t len;
	char *good = test_read_file(p.index, &len);
	assert_non_null(good);
	const size_t spots[] = { 0, 9, 20, 60, 100, 111, 112, 150, 112 + IDX_ENTRY * 3 + 30, len - 1 };
	for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		char *bad = malloc(len);
		assert_non_null(bad);
		memcpy(bad, good, len);
		bad[spots[i]] ^= 0x10;
		test_write_file(p.index, bad, len);
		free(bad);
		if (load_result(&p, NULL) != INDEX_NONE)
			fail_msg("a flipped bit at %zu went unnoticed", spots[i]);
		assert_same_as_unindexed(&p);   /* and rewrites it */
		assert_int_equal(load_result(&p, NULL), INDEX_SAME);
	}
	free(good);
	buf_free(&b);
}

static void test_index_truncated(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "truncated", &b, 25);
	size_t len;
	char *good = test_read_file(p.index, &len);
	assert_non_null(good);
	const size_t lens[] = { 0, 7, 111, 112, 112 + IDX_ENTRY, len - IDX_ENTRY, len - 1 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		test_write_file(p.index, good, lens[i]);
		assert_int_equal(load_result(&p, NULL), INDEX_NONE);
		assert_same_as_unindexed(&p);
	}
	/* Too long is no better. */
	test_write_file(p.index, good, len);
	test_append_file(p.index, good + 112, IDX_ENTRY);
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);
	free(good);
	buf_free(&b);
}

/* Another mailbox's index under this one's name is not believed. */
static void test_index_of_another_mailbox(void **state)
{
	(void)state;
	struct paths a, c;
	struct buf ba = { 0 }, bc = { 0 };
	setup_indexed(&a, "alice", &ba, 12);
	make_paths(&c, "carol");
	add_messages(&bc, 50, 12, 12);
	write_mbox(&c, &bc);
	size_t len;
	char *idx = test_read_file(a.index, &len);
	assert_non_null(idx);
	assert_int_equal(mkdir(c.dir, 0700), 0);
	test_write_file(c.index, idx, len);
	assert_int_equal(load_result(&c, NULL), INDEX_NONE);
	assert_same_as_unindexed(&c);

	/* Even with byte-identical contents. */
	write_mbox(&c, &ba);
	test_write_file(c.index, idx, len);
	assert_int_equal(load_result(&c, NULL), INDEX_NONE);
	free(idx);
	buf_free(&ba);
	buf_free(&bc);
}

static void test_index_symlink_not_followed(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "symlink", &b, 8);
	const char *real = test_path("real-index");
	assert_int_equal(rename(p.index, real), 0);
	assert_int_equal(symlink(real, p.index), 0);
	assert_int_equal(load_result(&p, NULL), INDEX_NONE);
	assert_same_as_unindexed(&p);   /* and replaces the link by a file */
	struct stat st;
	assert_int_equal(lstat(p.index, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	buf_free(&b);
}

/* A directory others may write to is not used at all; the login still works. */
static void test_index_unsafe_directory(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	make_paths(&p, "unsafe");
	add_messages(&b, 1, 5, 5);
	write_mbox(&p, &b);
	assert_int_equal(mkdir(p.dir, 0700), 0);
	assert_int_equal(chmod(p.dir, 0770), 0);
	assert_same_as_unindexed(&p);
	assert_int_equal(access(p.index, F_OK), -1);
	buf_free(&b);
}

static void test_index_pseudo_message(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	make_paths(&p, "pseudo");
	add_pseudo(&b);
	write_mbox(&p, &b);
	assert_same_as_unindexed(&p);
	/* Only the pseudo message was indexed; it is scanned again with what follows. */
	struct buf more = { 0 };
	add_messages(&more, 1, 6, 8);
	test_append_file(p.mbox, more.p, more.len);
	assert_same_as_unindexed(&p);
	char *d = describe_path(p.mbox, p.dir);
	assert_non_null(strstr(d, "count 6 first 1 "));
	free(d);
	test_append_file(p.mbox, more.p, more.len);   /* duplicates: "-N" UIDLs */
	assert_same_as_unindexed(&p);
	buf_free(&more);
	buf_free(&b);
}

/*
 * An update writes the index of the file it leaves: the next login takes it
 * as it is (INDEX_SAME, or INDEX_GROWN when mail came meanwhile) and sees
 * what a scan sees, duplicate UIDLs renumbered included.
 */
static void check_index_after_update(const char *name, bool pseudo, const size_t *del,
				     size_t ndel, bool mail_meanwhile)
{
	struct paths p;
	struct buf b = { 0 };
	make_paths(&p, name);
	if (pseudo)
		add_pseudo(&b);
	add_messages(&b, 1, 30, 12);
	add_messages(&b, 1, 5, 12);   /* copies of 1..5: UIDLs with "-1" */
	write_mbox(&p, &b);
	struct mbox *mb = open_mbox(p.mbox, p.dir);   /* scans, writes the index */
	for (size_t i = 0; i < ndel; i++)
		mb->msgs[mb->first + del[i]].deleted = true;
	if (mail_meanwhile) {
		struct buf more = { 0 };
		add_messages(&more, 40, 3, 7);
		test_append_file(p.mbox, more.p, more.len);
		buf_free(&more);
	}
	char why[256] = "";
	assert_int_equal(mbox_update(mb, why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
	assert_int_equal(load_result(&p, NULL), mail_meanwhile ? INDEX_GROWN : INDEX_SAME);
	assert_same_as_unindexed(&p);
	buf_free(&b);
}

static void test_index_after_update(void **state)
{
	(void)state;
	/* the first, the original of a duplicate, one in the middle, the last */
	const size_t moved[] = { 0, 2, 17, 34 };
	check_index_after_update("upd-moved", false, moved, 4, false);
	const size_t tail[] = { 31, 32, 33, 34 };   /* a plain truncate */
	check_index_after_update("upd-tail", false, tail, 4, false);
	const size_t some[] = { 1, 4, 29 };
	check_index_after_update("upd-pseudo-grown", true, some, 3, true);
}

/* Of two copies, the first is deleted: the one left is no longer a "-1". */
static void test_index_after_update_last_copy(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	make_paths(&p, "upd-copy");
	add_messages(&b, 1, 1, 12);
	add_messages(&b, 1, 1, 12);   /* the same message again */
	write_mbox(&p, &b);
	struct mbox *mb = open_mbox(p.mbox, p.dir);
	assert_int_equal(mb->msgs[1].dup, 1);
	mb->msgs[0].deleted = true;
	char why[256] = "";
	assert_int_equal(mbox_update(mb, why, sizeof(why)), MBOX_OK);
	assert_int_equal(mb->nmsgs, 1);
	assert_int_equal(mb->msgs[0].dup, 0);
	mbox_close(mb);
	assert_int_equal(load_result(&p, NULL), INDEX_SAME);
	assert_same_as_unindexed(&p);
	buf_free(&b);
}

/* Large enough for several windows, grown a few times. */
static void test_index_large_mailbox_grown_repeatedly(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	make_paths(&p, "large");
	add_messages(&b, 1, 3000, 20);
	assert_true(b.len > 3 * WINDOW_SIZE);
	write_mbox(&p, &b);
	assert_same_as_unindexed(&p);
	for (unsigned round = 0; round < 3; round++) {
		struct buf more = { 0 };
		add_messages(&more, 5000 + round * 100, 50 + round, 40);
		test_append_file(p.mbox, more.p, more.len);
		assert_int_equal(load_result(&p, NULL), INDEX_GROWN);
		assert_same_as_unindexed(&p);
		buf_free(&more);
	}
	buf_free(&b);
}

/* An index never lets a login past --max-messages. */
static void test_index_respects_message_limit(void **state)
{
	(void)state;
	struct paths p;
	struct buf b = { 0 };
	setup_indexed(&p, "limit", &b, 10);
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 1;
	opt.index_dir = p.dir;
	opt.max_messages = 5;
	struct mbox *mb = NULL;
	char why[256] = "";
	assert_int_equal(mbox_open(&mb, p.mbox, &opt, why, sizeof(why)), MBOX_PERM);
	assert_null(mb);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_written_then_used),
		cmocka_unit_test(test_index_grown_scans_only_the_end),
		cmocka_unit_test(test_index_grown_last_message_goes_on),
		cmocka_unit_test(test_index_rewritten_same_size),
		cmocka_unit_test(test_index_boundary_moved),
		cmocka_unit_test(test_index_changed_before_old_end_then_grown),
		cmocka_unit_test(test_index_shrunk),
		cmocka_unit_test(test_index_other_inode),
		cmocka_unit_test(test_index_corrupt_bytes),
		cmocka_unit_test(test_index_truncated),
		cmocka_unit_test(test_index_of_another_mailbox),
		cmocka_unit_test(test_index_symlink_not_followed),
		cmocka_unit_test(test_index_unsafe_directory),
		cmocka_unit_test(test_index_pseudo_message),
		cmocka_unit_test(test_index_after_update),
		cmocka_unit_test(test_index_after_update_last_copy),
		cmocka_unit_test(test_index_large_mailbox_grown_repeatedly),
		cmocka_unit_test(test_index_respects_message_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
