/* Unit tests for maildir.c: names, unique-ids, the scan, sizes, the index, sending. */
#define _GNU_SOURCE
#include <linux/limits.h>   /* NAME_MAX (<limits.h> would find ./limits.h through -iquote) */
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
#include <sys/stat.h>
#include <unistd.h>

#include "limits.h"
#include "logcapture.h"
#include "maildir.h"
#include "mbox.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------- */

/* A fresh Maildir (cur/ new/ tmp/) under the test directory; its path ends in '/'. */
static const char *make_maildir(const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, sizeof(paths[0]), "%s/%s/", test_tmpdir(), name);
	assert_int_equal(mkdir(p, 0700), 0);
	const char *subs[] = { "cur", "new", "tmp" };
	for (int i = 0; i < 3; i++) {
		char sub[600];
		snprintf(sub, sizeof(sub), "%s%s", p, subs[i]);
		assert_int_equal(mkdir(sub, 0700), 0);
	}
	return p;
}

/* The path of rel (e.g. "new/NAME") in the Maildir md; rotated over 4 calls. */
static const char *in_md(const char *md, const char *rel)
{
	static char bufs[4][1024];
	static int next;
	char *b = bufs[next++ % 4];
	snprintf(b, sizeof(bufs[0]), "%s%s", md, rel);
	return b;
}

static void put(const char *md, const char *rel, const char *text)
{
	test_write_file(in_md(md, rel), text, strlen(text));
}

static enum mbox_status open_md(const char *path, struct mbox **mb, const char *index_dir,
				char *why, size_t whylen)
{
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 1;
	opt.index_dir = index_dir;
	return mbox_open(mb, path, &opt, why, whylen);
}

static struct mbox *open_ok(const char *path, const char *index_dir)
{
	struct mbox *mb = NULL;
	char why[MAX_REASON_LEN] = "";
	enum mbox_status st = open_md(path, &mb, index_dir, why, sizeof(why));
	if (st != MBOX_OK)
		fail_msg("open %s: %d %s", path, (int)st, why);
	assert_non_null(mb->maildir);
	return mb;
}

/* What mbox_send(n, lines) sends, NUL-terminated (malloc'ed); *len its length. */
static char *sent(struct mbox *mb, size_t n, long lines, int *rc)
{
	struct memsink ms;
	memset(&ms, 0, sizeof(ms));
	memsink_reset(&ms);
	struct outbuf ob;
	assert_int_equal(outbuf_init(&ob, OUTBUF_SIZE, memsink_write, &ms), 0);
	*rc = mbox_send(mb, n, lines, &ob);
	if (*rc == 0)
		*rc = outbuf_flush(&ob);
	outbuf_free(&ob);
	char *out = strdup(memsink_str(&ms));
	memsink_reset(&ms);
	return out;
}

static void assert_sent(struct mbox *mb, size_t n, long lines, const char *want)
{
	char why[MAX_REASON_LEN] = "";
	if (mbox_check_msg(mb, n, why, sizeof(why)) != 0)
		fail_msg("check %zu: %s", n, why);
	int rc;
	char *got = sent(mb, n, lines, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(got, want);
	free(got);
}

static const char *name_of(const struct mbox *mb, size_t n)
{
	return maildir_msg_path(mb, mb->first + n - 1);
}

static void uidl_of_str(const char *name, char *buf)
{
	maildir_uidl_of(name, strlen(name), buf);
}

/* ---- names ------------------------------------------------------------------ */

static void test_name_fields(void **state)
{
	(void)state;
	struct maildir_name nm;
	const char *n = "1733590000.M1P2.host,S=1234,W=1260:2,S";
	assert_int_equal(maildir_name_parse(n, strlen(n), &nm), 0);
	assert_true(nm.stamp == 1733590000);
	assert_int_equal(nm.base_len, strlen("1733590000.M1P2.host,S=1234,W=1260"));
	assert_true(nm.has_size && nm.size == 1234);
	assert_true(nm.has_vsize && nm.vsize == 1260);

	n = "1733590000.M1P2.host";
	assert_int_equal(maildir_name_parse(n, strlen(n), &nm), 0);
	assert_int_equal(nm.base_len, strlen(n));
	assert_false(nm.has_size);
	assert_false(nm.has_vsize);

	/* fields after the ':' are flags, not sizes; malformed fields are not fields */
	n = "17.x:2,S=5,W=6";
	assert_int_equal(maildir_name_parse(n, strlen(n), &nm), 0);
	assert_false(nm.has_size || nm.has_vsize);
	n = "17.x,S=12a,W=5";
	assert_int_equal(maildir_name_parse(n, strlen(n), &nm), 0);
	assert_false(nm.has_size);
	assert_true(nm.has_vsize && nm.vsize == 5);
	n = "17.x,S=,W=99999999999999999999999";
	assert_int_equal(maildir_name_parse(n, strlen(n), &nm), 0);
	assert_false(nm.has_size || nm.has_vsize);
	n = "17.x,W=3,W=4,S=1,x";
	assert_int_equal(maildir_name_parse(n, strlen(n), &nm), 0);
	assert_true(nm.has_vsize && nm.vsize == 3 && nm.has_size && nm.size == 1);
	n = "17.xS=4";   /* no comma before it */
	assert_int_equal(maildir_name_parse(n, strlen(n), &nm), 0);
	assert_false(nm.has_size);
}

static void test_name_stamps(void **state)
{
	(void)state;
	struct maildir_name nm;
	assert_int_equal(maildir_name_parse("x17", 3, &nm), 0);
	assert_true(nm.stamp == 0);
	assert_int_equal(maildir_name_parse("0042.a", 6, &nm), 0);
	assert_true(nm.stamp == 42);
	const char *big = "18446744073709551615.a";   /* UINT64_MAX itself */
	assert_int_equal(maildir_name_parse(big, strlen(big), &nm), 0);
	assert_true(nm.stamp == UINT64_MAX);
	const char *over = "99999999999999999999999999.a";   /* saturates */
	assert_int_equal(maildir_name_parse(over, strlen(over), &nm), 0);
	assert_true(nm.stamp == UINT64_MAX);
	assert_int_equal(maildir_name_parse("12:2,S", 6, &nm), 0);
	assert_true(nm.stamp == 12);
	assert_int_equal(nm.base_len, 2);
}

static void test_name_invalid(void **state)
{
	(void)state;
	struct maildir_name nm;
	assert_int_equal(maildir_name_parse("", 0, &nm), -1);
	assert_int_equal(maildir_name_parse(".x", 2, &nm), -1);
	assert_int_equal(maildir_name_parse("a/b", 3, &nm), -1);
	assert_int_equal(maildir_name_parse("a\nb", 3, &nm), -1);
	assert_int_equal(maildir_name_parse("a\x7f", 2, &nm), -1);
	assert_int_equal(maildir_name_parse("a\x01", 2, &nm), -1);
	assert_int_equal(maildir_name_parse("a\0b", 3, &nm), -1);
	char longname[NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname));
	assert_int_equal(maildir_name_parse(longname, NAME_MAX, &nm), 0);
	assert_int_equal(maildir_name_parse(longname, NAME_MAX + 1, &nm), -1);
	/* octets above 0x7f and blanks are file names like any other */
	assert_int_equal(maildir_name_parse("caf\xc3\xa9 x", 7, &nm), 0);
	assert_int_equal(maildir_name_parse(":2,S", 4, &nm), 0);
	assert_int_equal(nm.base_len, 0);
}

/* ---- unique-ids ------------------------------------------------------------- */

static void test_uidl_plain_and_flags(void **state)
{
	(void)state;
	char u[MAX_UIDL_LEN + 1];
	uidl_of_str("1733590000.M1P2.host,S=1234,W=1260:2,S", u);
	assert_string_equal(u, "1733590000.M1P2.host,S=1234,W=1260");
	uidl_of_str("1733590000.M1P2.host,S=1234,W=1260", u);
	assert_string_equal(u, "1733590000.M1P2.host,S=1234,W=1260");
	uidl_of_str("1733590000.M1P2.host,S=1234,W=1260:2,FRS", u);
	assert_string_equal(u, "1733590000.M1P2.host,S=1234,W=1260");
	char seventy[71];
	memset(seventy, 'y', 70);
	seventy[70] = '\0';
	uidl_of_str(seventy, u);
	assert_string_equal(u, seventy);
}

static void test_uidl_derived(void **state)
{
	(void)state;
	char u[MAX_UIDL_LEN + 1], v[MAX_UIDL_LEN + 1];
	/* X + the first 32 hex digits of SHA-256(base): printf %s BASE | sha256sum */
	char base71[80];
	memset(base71, 'x', 71);
	base71[71] = '\0';
	uidl_of_str(base71, u);
	assert_string_equal(u, "X87a1e4c1c92b7b7a7c46433d780de6cc");
	strcat(base71, ":2,S");   /* flags still do not count */
	uidl_of_str(base71, v);
	assert_string_equal(u, v);
	uidl_of_str("caf\xc3\xa9", u);
	assert_string_equal(u, "X850f7dc43910ff890f8879c0ed26fe69");
	uidl_of_str("caf\xc3\xa9:2,S", v);
	assert_string_equal(u, v);
	uidl_of_str("a b", u);   /* a blank: not a unique-id character */
	assert_int_equal(strlen(u), 33);
	assert_int_equal(u[0], 'X');
	uidl_of_str(":2,S", u);   /* an empty base */
	assert_string_equal(u, "Xe3b0c44298fc1c149afbf4c8996fb924");
	/* the hash over a long input (several SHA-256 blocks): "a" x 1000 */
	char thousand[1001];
	memset(thousand, 'a', 1000);
	thousand[1000] = '\0';
	uidl_of_str(thousand, u);
	assert_string_equal(u, "X41edece42d63e8d9bf515a9ba6932e1c");
}

/* ---- the scan --------------------------------------------------------------- */

static void test_scan_order_and_tmp_ignored(void **state)
{
	(void)state;
	const char *md = make_maildir("order");
	put(md, "new/1700000002.a.host", "Subject: a\n\na\n");
	put(md, "cur/1700000001.b.host:2,S", "Subject: b\n\nb\n");
	put(md, "new/999.c", "Subject: c\n\nc\n");
	put(md, "cur/nostamp:2,", "Subject: d\n\nd\n");
	put(md, "new/1700000001.a.host", "Subject: e\n\ne\n");
	put(md, "tmp/1.tmp", "Subject: t\n\nt\n");
	struct mbox *mb = open_ok(md, NULL);
	assert_int_equal(mbox_count(mb), 5);
	assert_string_equal(name_of(mb, 1), "cur/nostamp:2,");
	assert_string_equal(name_of(mb, 2), "new/999.c");
	assert_string_equal(name_of(mb, 3), "new/1700000001.a.host");
	assert_string_equal(name_of(mb, 4), "cur/1700000001.b.host:2,S");
	assert_string_equal(name_of(mb, 5), "new/1700000002.a.host");
	char u[MAX_UIDL_LEN + 1];
	mbox_uidl(mb, 4, u);
	assert_string_equal(u, "1700000001.b.host");
	for (size_t n = 1; n <= 5; n++) {
		const struct mbox_msg *m = mbox_msg(mb, n);
		assert_int_equal(m->end, 14);
		assert_int_equal(m->size, 17);
		assert_true(m->body == 0 && m->hash[0] == 0 && m->hash[1] == 0 && m->dup == 0);
	}
	assert_true(mb->dev != 0 || mb->ino != 0);
	mbox_close(mb);
}

static void test_sizes_from_names_and_files(void **state)
{
	(void)state;
	const char *md = make_maildir("sizes");
	/* "a\nb\n": 4 octets, 6 as sent. The W= given is 7: used as it is, the file unread. */
	put(md, "new/1.x,S=4,W=7", "a\nb\n");
	/* S= disagrees with the file: W= is not trusted, the size is computed */
	put(md, "new/2.x,S=99,W=7", "a\nb\n");
	/* W= impossible for the file (more than twice its size): computed */
	put(md, "new/3.x,W=9", "a\nb\n");
	/* no W=: computed; CR LF pairs are not doubled; no final LF adds nothing */
	put(md, "new/4.x", "a\r\nb\nc");
	put(md, "new/5.x,W=6", "a\nb\n");   /* W= alone */
	struct mbox *mb = open_ok(md, NULL);
	assert_int_equal(mbox_count(mb), 5);
	assert_int_equal(mbox_msg(mb, 1)->size, 7);
	assert_int_equal(mbox_msg(mb, 2)->size, 6);
	assert_int_equal(mbox_msg(mb, 3)->size, 6);
	assert_int_equal(mbox_msg(mb, 4)->size, 7);
	assert_int_equal(mbox_msg(mb, 4)->end, 6);
	assert_int_equal(mbox_msg(mb, 5)->size, 6);
	mbox_close(mb);
}

static void test_bad_entries_skipped_and_logged(void **state)
{
	(void)state;
	const char *md = make_maildir("bad");
	put(md, "new/1.good", "Subject: ok\n\nok\n");
	put(md, "new/2.target", "Subject: t\n\nt\n");
	assert_int_equal(symlink("2.target", in_md(md, "cur/3.link:2,S")), 0);
	assert_int_equal(mkfifo(in_md(md, "new/4.fifo"), 0600), 0);
	assert_int_equal(mkdir(in_md(md, "cur/5.dir:2,"), 0700), 0);
	put(md, "new/6.empty", "");
	put(md, "new/.7.hidden", "Subject: h\n\nh\n");
	put(md, "cur/8.bad\x01name", "Subject: c\n\nc\n");
	put(md, "new/9.noheader", "From someone\nno header here\n");
	struct mbox *mb = open_ok(md, NULL);
	assert_int_equal(mbox_count(mb), 3);
	assert_string_equal(name_of(mb, 1), "new/1.good");
	assert_string_equal(name_of(mb, 2), "new/2.target");
	assert_string_equal(name_of(mb, 3), "new/9.noheader");   /* served, but logged */
	assert_non_null(strstr(logged, "cur/3.link:2,S\" skipped: a symbolic link"));
	assert_non_null(strstr(logged, "new/4.fifo skipped: a FIFO"));
	assert_non_null(strstr(logged, "cur/5.dir:2,\" skipped: a directory"));
	assert_non_null(strstr(logged, "new/6.empty skipped: an empty file"));
	assert_non_null(strstr(logged, "cur/8.bad\\x01name\" skipped: not a message file name"));
	assert_non_null(strstr(logged, "new/9.noheader does not begin with a header field"));
	assert_non_null(strstr(logged, "new/.7.hidden skipped: a dot name is never a message"));
	assert_null(strstr(logged, "1.good"));
	mbox_close(mb);
}

static void test_missing_maildir_is_empty(void **state)
{
	(void)state;
	char path[512];
	snprintf(path, sizeof(path), "%s/nosuch/", test_tmpdir());
	struct mbox *mb = open_ok(path, NULL);
	assert_int_equal(mbox_count(mb), 0);
	assert_int_equal(mb->maildir->dirfd, -1);
	assert_null(strstr(logged, "does not exist"));   /* its parent does */
	mbox_close(mb);
	snprintf(path, sizeof(path), "%s/noparent/Maildir/", test_tmpdir());
	mb = open_ok(path, NULL);
	assert_int_equal(mbox_count(mb), 0);
	assert_non_null(strstr(logged, "does not exist"));
	mbox_close(mb);
}

static void test_not_a_maildir_refused(void **state)
{
	(void)state;
	char path[512], sub[600];
	snprintf(path, sizeof(path), "%s/notmd/", test_tmpdir());
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(sub, sizeof(sub), "%scur", path);
	assert_int_equal(mkdir(sub, 0700), 0);
	struct mbox *mb = NULL;
	char why[MAX_REASON_LEN] = "";
	assert_int_equal(open_md(path, &mb, NULL, why, sizeof(why)), MBOX_PERM);
	assert_null(mb);
	assert_string_equal(why, "mailbox is not a Maildir");
	assert_non_null(strstr(logged, "a directory without new/"));
	struct stat st;
	snprintf(sub, sizeof(sub), "%snew", path);
	assert_int_equal(stat(sub, &st), -1);   /* never touched */

	/* a regular file named as a Maildir */
	snprintf(path, sizeof(path), "%s/plainfile", test_tmpdir());
	test_write_file(path, "x", 1);
	strcat(path, "/");
	assert_int_equal(open_md(path, &mb, NULL, why, sizeof(why)), MBOX_PERM);
	assert_string_equal(why, "mailbox is not a Maildir");
}

static void test_dir_problem(void **state)
{
	(void)state;
	struct stat st = { 0 };
	st.st_mode = S_IFDIR | 0700;
	st.st_uid = geteuid();
	assert_null(maildir_dir_problem(&st));
	st.st_mode = S_IFDIR | 0755;
	assert_null(maildir_dir_problem(&st));
	st.st_mode = S_IFDIR | 0500;
	assert_non_null(maildir_dir_problem(&st));
	st.st_mode = S_IFREG | 0700;
	assert_string_equal(maildir_dir_problem(&st), "mailbox is not a Maildir (not a directory)");
	st.st_mode = S_IFDIR | 0700;
	st.st_uid = geteuid() + 1;
	assert_string_equal(maildir_dir_problem(&st), "Maildir belongs to another account");

	/* and maildir_open asks it of what it opened */
	const char *md = make_maildir("mode");
	assert_int_equal(chmod(md, 0500), 0);
	struct mbox *mb = NULL;
	char why[MAX_REASON_LEN] = "";
	assert_int_equal(open_md(md, &mb, NULL, why, sizeof(why)), MBOX_PERM);
	assert_non_null(strstr(why, "mode"));
	assert_int_equal(chmod(md, 0700), 0);
}

static void test_in_use_and_journal(void **state)
{
	(void)state;
	const char *md = make_maildir("inuse");
	put(md, "new/1.a", "Subject: a\n\na\n");
	struct mbox *mb = open_ok(md, NULL), *mb2 = NULL;
	char why[MAX_REASON_LEN] = "";
	assert_int_equal(open_md(md, &mb2, NULL, why, sizeof(why)), MBOX_IN_USE);
	assert_string_equal(why, "mailbox is in use by another session");
	mbox_close(mb);
	mb = open_ok(md, NULL);   /* released with the first session */
	mbox_close(mb);

	/* not a journal of maildir_update's: blocks nothing */
	put(md, ".pop3d-journal", "some other program's file\n");
	mb = open_ok(md, NULL);
	mbox_close(mb);
	assert_null(strstr(logged, "run pop3d --recover"));

	put(md, ".pop3d-journal", "");   /* one cut short before its first octet */
	assert_int_equal(open_md(md, &mb2, NULL, why, sizeof(why)), MBOX_TEMP);
	assert_string_equal(why, "mailbox needs recovery");
	assert_non_null(strstr(logged, "run pop3d --recover"));
}

static void test_path_without_slash(void **state)
{
	(void)state;
	const char *md = make_maildir("noslash");
	put(md, "new/1.a", "Subject: a\n\na\n");
	char path[512];
	snprintf(path, sizeof(path), "%s", md);
	path[strlen(path) - 1] = '\0';
	struct mbox *mb = open_ok(path, NULL);
	assert_int_equal(mbox_count(mb), 1);
	assert_int_equal(mb->path[strlen(mb->path) - 1], '/');
	mbox_close(mb);
}

static void test_limits(void **state)
{
	(void)state;
	const char *md = make_maildir("limits");
	put(md, "new/1.a", "Subject: a\n\na\n");
	put(md, "new/2.a", "Subject: a\n\na\n");
	put(md, "new/3.a", "Subject: a\n\na\n");
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.max_messages = 2;
	struct mbox *mb = NULL;
	char why[MAX_REASON_LEN] = "";
	assert_int_equal(mbox_open(&mb, md, &opt, why, sizeof(why)), MBOX_PERM);
	assert_non_null(strstr(why, "too many messages"));
	mbox_default_options(&opt);
	opt.max_size = 41;   /* three files of 14 octets */
	assert_int_equal(mbox_open(&mb, md, &opt, why, sizeof(why)), MBOX_PERM);
	assert_non_null(strstr(why, "too large"));
	opt.max_size = 42;
	assert_int_equal(mbox_open(&mb, md, &opt, why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
}

static void test_duplicate_base_served_once(void **state)
{
	(void)state;
	const char *md = make_maildir("dup");
	put(md, "new/5.same", "Subject: a\n\na\n");
	put(md, "cur/5.same:2,S", "Subject: a\n\na\n");
	struct mbox *mb = open_ok(md, NULL);
	assert_int_equal(mbox_count(mb), 1);
	assert_string_equal(name_of(mb, 1), "cur/5.same:2,S");
	assert_non_null(strstr(logged, "are one message"));
	mbox_close(mb);
}

/* ---- the index -------------------------------------------------------------- */

static void test_index_second_open_reads_no_file(void **state)
{
	(void)state;
	const char *md = make_maildir("idx");
	char idx[512];
	snprintf(idx, sizeof(idx), "%s/index", test_tmpdir());
	put(md, "new/1.a", "Subject: a\n\na\nb\n");                 /* 16, 20 as sent */
	put(md, "cur/2.b:2,S", "Subject: b\r\n\r\nb\r\n");          /* 17, 17 */
	put(md, "new/3.c,S=4,W=6", "a\nb\n");                       /* from its name */
	struct mbox *mb = open_ok(md, idx);
	assert_int_equal(mbox_msg(mb, 1)->size, 20);
	assert_int_equal(mbox_msg(mb, 2)->size, 17);
	assert_null(mb->opt.index_dir);
	mbox_close(mb);
	/* the index file: <Maildir's name>.<hash>.pop3d-maildir-index */
	int n = 0;
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "ls %s | grep -c '^idx\\.[0-9a-f]\\{16\\}%s$'", idx,
		 MAILDIR_INDEX_SUFFIX);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &n), 1);
	pclose(f);
	assert_int_equal(n, 1);

	/* Same names and sizes, other contents: a reading would count 4 and 5 bare LFs. */
	put(md, "new/1.a", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
	put(md, "cur/2.b:2,S", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
	mb = open_ok(md, idx);
	assert_int_equal(mbox_msg(mb, 1)->size, 20);   /* the index's, no file read */
	assert_int_equal(mbox_msg(mb, 2)->size, 17);
	assert_int_equal(mbox_msg(mb, 3)->size, 6);
	mbox_close(mb);

	/* Moved to cur/ with flags by another client: the same base, the same entry. */
	assert_int_equal(rename(in_md(md, "new/1.a"), in_md(md, "cur/1.a:2,S")), 0);
	mb = open_ok(md, idx);
	assert_string_equal(name_of(mb, 1), "cur/1.a:2,S");
	assert_int_equal(mbox_msg(mb, 1)->size, 20);
	mbox_close(mb);
	assert_int_equal(rename(in_md(md, "cur/1.a:2,S"), in_md(md, "new/1.a")), 0);

	/* A changed st_size makes the entry stale: read again. */
	put(md, "new/1.a", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
	mb = open_ok(md, idx);
	assert_int_equal(mbox_msg(mb, 1)->size, 36);
	assert_int_equal(mbox_msg(mb, 2)->size, 17);   /* still the index's */
	mbox_close(mb);
}

/* Flip one octet of the single index file in dir. */
static void damage_index(const char *dir, off_t at)
{
	char cmd[800], path[700];
	snprintf(cmd, sizeof(cmd), "ls %s/*%s", dir, MAILDIR_INDEX_SUFFIX);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	assert_non_null(fgets(path, sizeof(path), f));
	pclose(f);
	path[strcspn(path, "\n")] = '\0';
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	unsigned char c;
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

static void test_index_damaged_or_foreign_ignored(void **state)
{
	(void)state;
	const char *md = make_maildir("idx2");
	char idx[512];
	snprintf(idx, sizeof(idx), "%s/index2", test_tmpdir());
	put(md, "new/1.a", "Subject: a\n\na\nb\n");
	put(md, "new/2.a", "Subject: a\n\na\nb\n");
	mbox_close(open_ok(md, idx));
	put(md, "new/1.a", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");
	put(md, "new/2.a", "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n");

	/* an entry's octet flipped (the second entry's size): the checksum refuses it all */
	damage_index(idx, 64 + 18 + 3 + 8);
	struct mbox *mb = open_ok(md, idx);
	assert_int_equal(mbox_msg(mb, 1)->size, 32);   /* both read again */
	assert_int_equal(mbox_msg(mb, 2)->size, 32);
	mbox_close(mb);

	/* the index of another Maildir (its header names another inode) */
	const char *other = make_maildir("idx2other");
	char idx3[512];
	snprintf(idx3, sizeof(idx3), "%s/index3", test_tmpdir());
	put(other, "new/1.a", "Subject: a\r\n\r\nab");   /* 16 octets, 16 as sent */
	mbox_close(open_ok(other, idx3));
	char cmd[1600];
	snprintf(cmd, sizeof(cmd), "cp %s/idx2other.*%s %s/$(ls %s | grep ^idx2\\\\.)", idx3,
		 MAILDIR_INDEX_SUFFIX, idx, idx);
	assert_int_equal(system(cmd), 0);
	put(md, "new/1.a", "Subject: a\n\na\nb\n");   /* 20 as sent, 16 octets */
	mb = open_ok(md, idx);
	assert_int_equal(mbox_msg(mb, 1)->size, 20);
	assert_int_equal(mbox_msg(mb, 2)->size, 32);
	mbox_close(mb);
}

/*
 * More messages than the first allocations hold (entries, names pool) and an
 * index longer than its read buffer (entries cut at every refill): all in
 * order, every size right, the second login from the index alone.
 */
static void test_many_messages_and_a_long_index(void **state)
{
	(void)state;
	const char *md = make_maildir("many");
	char idx[512];
	snprintf(idx, sizeof(idx), "%s/index-many", test_tmpdir());
	enum { N = 1500 };
	char rel[200];
	for (int i = 0; i < N; i++) {
		/* stamps in reverse order of creation, names long enough for a 100 KiB index */
		snprintf(rel, sizeof(rel), "%s/%d.M%dP4242Q%d.a-rather-long-host-name.example.org%s",
			 i % 3 ? "cur" : "new", 1800000000 - i, i, i * 7, i % 3 ? ":2,S" : "");
		char body[64];
		int len = snprintf(body, sizeof(body), "Subject: %d\n\n%.*s", i, i % 5,
				   "\n\n\n\n\n");
		test_write_file(in_md(md, rel), body, (size_t)len);
	}
	struct mbox *mb = open_ok(md, idx);
	assert_int_equal(mbox_count(mb), N);
	for (int n = 1; n <= N; n++) {
		int i = N - n;   /* the oldest stamp first */
		const struct mbox_msg *m = mbox_msg(mb, (size_t)n);
		char want[64];
		snprintf(want, sizeof(want), "%d.M%dP", 1800000000 - i, i);
		const char *name = name_of(mb, (size_t)n) + 4;
		if (strncmp(name, want, strlen(want)) != 0)
			fail_msg("message %d is %s, want %s...", n, name, want);
		int lfs = 2 + i % 5;
		assert_int_equal(m->size, m->end + lfs);
	}
	mbox_close(mb);
	/* every file emptied of line ends, same sizes: only the index can say them */
	for (int i = 0; i < N; i++) {
		snprintf(rel, sizeof(rel), "%s/%d.M%dP4242Q%d.a-rather-long-host-name.example.org%s",
			 i % 3 ? "cur" : "new", 1800000000 - i, i, i * 7, i % 3 ? ":2,S" : "");
		struct stat st;
		assert_int_equal(stat(in_md(md, rel), &st), 0);
		char body[64];
		memset(body, 'x', sizeof(body));
		test_write_file(in_md(md, rel), body, (size_t)st.st_size);
	}
	mb = open_ok(md, idx);
	assert_int_equal(mbox_count(mb), N);
	for (int n = 1; n <= N; n++) {
		const struct mbox_msg *m = mbox_msg(mb, (size_t)n);
		assert_int_equal(m->size, m->end + 2 + (N - n) % 5);
	}
	mbox_close(mb);
}

/* Deliveries within one second: by their microseconds, as Dovecot numbers them, not as text. */
static void test_scan_order_within_a_second(void **state)
{
	(void)state;
	const char *md = make_maildir("usecs");
	put(md, "new/1700000001.M100P7.host", "Subject: a\n\na\n");
	put(md, "cur/1700000001.M99P9.host:2,S", "Subject: b\n\nb\n");
	put(md, "new/1700000001.V803I1a2bM5.host", "Subject: c\n\nc\n");   /* Postfix */
	put(md, "new/1700000001.M1000000P1.host", "Subject: d\n\nd\n");
	put(md, "new/1700000000.M999999P1.host", "Subject: e\n\ne\n");
	put(md, "new/1700000001.12345_1.host", "Subject: f\n\nf\n");   /* qmail: none, 0 */
	char idx[512];
	snprintf(idx, sizeof(idx), "%s/index-usecs", test_tmpdir());
	for (int round = 0; round < 2; round++) {   /* the index kept in that order too */
		struct mbox *mb = open_ok(md, idx);
		assert_int_equal(mbox_count(mb), 6);
		assert_string_equal(name_of(mb, 1), "new/1700000000.M999999P1.host");
		assert_string_equal(name_of(mb, 2), "new/1700000001.12345_1.host");
		assert_string_equal(name_of(mb, 3), "new/1700000001.V803I1a2bM5.host");
		assert_string_equal(name_of(mb, 4), "cur/1700000001.M99P9.host:2,S");
		assert_string_equal(name_of(mb, 5), "new/1700000001.M100P7.host");
		assert_string_equal(name_of(mb, 6), "new/1700000001.M1000000P1.host");
		mbox_close(mb);
		if (round == 0)   /* same sizes, no line ends: the sizes below come from the index */
			for (int n = 0; n < 6; n++) {
				static const char *const names[] = {
					"new/1700000001.M100P7.host", "cur/1700000001.M99P9.host:2,S",
					"new/1700000001.V803I1a2bM5.host", "new/1700000001.M1000000P1.host",
					"new/1700000000.M999999P1.host", "new/1700000001.12345_1.host",
				};
				put(md, names[n], "Subject:xyzabc");   /* 14 octets, as before */
			}
	}
	struct mbox *mb = open_ok(md, idx);
	for (size_t n = 1; n <= 6; n++)
		assert_int_equal(mbox_msg(mb, n)->size, 17);
	mbox_close(mb);
}

/* ---- sending ---------------------------------------------------------------- */

static void test_retr_and_top(void **state)
{
	(void)state;
	const char *md = make_maildir("retr");
	put(md, "new/1.a", "Subject: a\n\n.dot\nline\r\n..two\nend");
	put(md, "new/2.b", "Subject: b\r\nX: y\r\n\r\nbody1\r\nbody2\r\n");
	struct mbox *mb = open_ok(md, NULL);
	assert_int_equal(mbox_msg(mb, 1)->end, 32);
	assert_int_equal(mbox_msg(mb, 1)->size, 32 + 4);   /* the CR LF added at the end not counted */
	assert_sent(mb, 1, -1, "Subject: a\r\n\r\n..dot\r\nline\r\n...two\r\nend\r\n");
	assert_sent(mb, 1, 0, "Subject: a\r\n\r\n");
	assert_sent(mb, 1, 1, "Subject: a\r\n\r\n..dot\r\n");
	assert_sent(mb, 2, -1, "Subject: b\r\nX: y\r\n\r\nbody1\r\nbody2\r\n");
	assert_sent(mb, 2, 1, "Subject: b\r\nX: y\r\n\r\nbody1\r\n");
	/* without mbox_check_msg first, mbox_send opens it itself */
	int rc;
	char *got = sent(mb, 2, 0, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(got, "Subject: b\r\nX: y\r\n\r\n");
	free(got);
	mbox_close(mb);
}

static void test_removed_changed_moved(void **state)
{
	(void)state;
	const char *md = make_maildir("gone");
	put(md, "new/1.a", "Subject: a\n\na\n");
	put(md, "new/2.b", "Subject: b\n\nb\n");
	put(md, "new/3.c", "Subject: c\n\nc\n");
	struct mbox *mb = open_ok(md, NULL);
	assert_int_equal(unlink(in_md(md, "new/1.a")), 0);
	char why[MAX_REASON_LEN] = "";
	assert_int_equal(mbox_check_msg(mb, 1, why, sizeof(why)), -1);
	assert_string_equal(why, "message 1 was removed by another program");
	assert_non_null(strstr(logged, "message 1"));

	/* moved to cur/ with flags by another client: still served */
	assert_int_equal(rename(in_md(md, "new/2.b"), in_md(md, "cur/2.b:2,S")), 0);
	assert_sent(mb, 2, -1, "Subject: b\r\n\r\nb\r\n");
	char u[MAX_UIDL_LEN + 1];
	mbox_uidl(mb, 2, u);
	assert_string_equal(u, "2.b");

	/* rewritten with another size */
	put(md, "new/3.c", "Subject: c\n\nchanged\n");
	assert_int_equal(mbox_check_msg(mb, 3, why, sizeof(why)), -1);
	assert_string_equal(why, "message 3 was changed by another program");
	/* replaced by a symbolic link */
	assert_int_equal(unlink(in_md(md, "new/3.c")), 0);
	assert_int_equal(symlink("../cur/2.b:2,S", in_md(md, "new/3.c")), 0);
	assert_int_equal(mbox_check_msg(mb, 3, why, sizeof(why)), -1);
	assert_string_equal(why, "message 3 was changed by another program");
	/* a failed RETR leaves the session able to go on */
	int rc;
	char *got = sent(mb, 1, -1, &rc);
	assert_int_equal(rc, -1);
	free(got);
	assert_sent(mb, 2, -1, "Subject: b\r\n\r\nb\r\n");
	mbox_close(mb);
}

/* A stand-in for the keeper: counts the calls, hands over a descriptor. */
static int opened_through;
static int fake_open(void *ctx, const struct mbox *mb, size_t n, char *why, size_t whylen)
{
	opened_through += *(int *)ctx;
	return maildir_open_msg(mb, n, why, whylen);
}

static void test_open_msg_hook_used(void **state)
{
	(void)state;
	const char *md = make_maildir("hook");
	put(md, "new/1.a", "Subject: a\n\na\n");
	struct mbox *mb = open_ok(md, NULL);
	int one = 1;
	mb->maildir->open_msg = fake_open;
	mb->maildir->open_ctx = &one;
	opened_through = 0;
	assert_sent(mb, 1, -1, "Subject: a\r\n\r\na\r\n");
	assert_int_equal(opened_through, 1);
	assert_int_equal(mb->maildir->msg_fd, -1);   /* closed by the send */
	mbox_close(mb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_fields),
		cmocka_unit_test(test_name_stamps),
		cmocka_unit_test(test_name_invalid),
		cmocka_unit_test(test_uidl_plain_and_flags),
		cmocka_unit_test(test_uidl_derived),
		cmocka_unit_test_setup_teardown(test_scan_order_and_tmp_ignored, logcapture_setup,
						logcapture_teardown),
		cmocka_unit_test(test_scan_order_within_a_second),
		cmocka_unit_test(test_sizes_from_names_and_files),
		cmocka_unit_test_setup_teardown(test_bad_entries_skipped_and_logged,
						logcapture_setup, logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_missing_maildir_is_empty, logcapture_setup,
						logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_not_a_maildir_refused, logcapture_setup,
						logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_dir_problem, logcapture_setup,
						logcapture_teardown),
		cmocka_unit_test_setup_teardown(test_in_use_and_journal, logcapture_setup,
						logcapture_teardown),
		cmocka_unit_test(test_path_without_slash),
		cmocka_unit_test(test_limits),
		cmocka_unit_test_setup_teardown(test_duplicate_base_served_once, logcapture_setup,
						logcapture_teardown),
		cmocka_unit_test(test_index_second_open_reads_no_file),
		cmocka_unit_test(test_index_damaged_or_foreign_ignored),
		cmocka_unit_test(test_many_messages_and_a_long_index),
		cmocka_unit_test(test_retr_and_top),
		cmocka_unit_test_setup_teardown(test_removed_changed_moved, logcapture_setup,
						logcapture_teardown),
		cmocka_unit_test(test_open_msg_hook_used),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
