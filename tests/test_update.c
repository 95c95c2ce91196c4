/*
 * Unit tests for update.c: deletions applied byte for byte, verification
 * before the update, the journal, crash and failure at every step, recovery.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"
#include "mbox.h"
#include "update.h"
#include "testutil.h"

#define MAX_TEST_MSGS 16
#define WHY_LEN 256

/* ---- Mailboxes built by the tests ---- */

/* A mailbox file and each message's region (From_ line up to the next one). */
struct mbx {
	char path[512];
	char jpath[600];
	char tpath[640];
	size_t n;                      /* regions, the pseudo message included */
	bool pseudo;                   /* region 0 is the pseudo message */
	char *region[MAX_TEST_MSGS];
	size_t len[MAX_TEST_MSGS];
};

static const char pseudo_text[] =
	"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
	"Date: Mon, 01 Jan 2024 00:00:00 +0000\n"
	"From: Mail System Internal Data <MAILER-DAEMON@example.org>\n"
	"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
	"Message-ID: <1704067200@example.org>\n"
	"X-IMAP: 1704067200 0000000009\n"
	"Status: RO\n"
	"\n"
	"This text is part of the internal format of your mail folder, and is not\n"
	"a real message.  It is created automatically by the mail system software.\n"
	"\n";

/* Mail that arrives after login, or after a crash. */
static const char late_text[] =
	"From late@example.org Tue Jan  2 00:00:00 2024\n"
	"Subject: delivered during the session\n"
	"\n"
	"I came late.\n"
	"\n";

static const char post_text[] =
	"From post@example.org Wed Jan  3 00:00:00 2024\n"
	"Subject: delivered after the crash\n"
	"\n"
	"Hello after the crash.\n"
	"\n";

/* A message of about body octets, with its separating empty line; NUL-terminated. */
static char *make_region(unsigned id, size_t body, size_t *len)
{
	size_t cap = body + 512;
	char *p = malloc(cap);
	assert_non_null(p);
	int n = snprintf(p, cap,
			 "From sender%u@example.org Mon Jan  1 00:00:%02u 2024\n"
			 "From: Sender %u <sender%u@example.org>\n"
			 "Subject: message %u\n"
			 "Message-ID: <%u.test@example.org>\n"
			 "\n",
			 id, id % 60, id, id, id, id);
	assert_true(n > 0);
	size_t off = (size_t)n;
	for (unsigned line = 0; off < (size_t)n + body; line++) {
		char l[96];
		int ln = snprintf(l, sizeof(l), "line %06u of message %u: the quick brown fox\n",
				  line, id);
		memcpy(p + off, l, (size_t)ln);
		off += (size_t)ln;
	}
	p[off++] = '\n';
	p[off] = '\0';   /* usable as a string too */
	*len = off;
	return p;
}

static char *dup_bytes(const char *s, size_t len)
{
	char *p = malloc(len + 1);
	assert_non_null(p);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static void remove_leftovers(const struct mbx *m)
{
	char lock[600];
	snprintf(lock, sizeof(lock), "%s.lock", m->path);
	unlink(m->path);
	unlink(m->jpath);
	unlink(m->tpath);
	unlink(lock);
}

static void mbx_set_paths(struct mbx *m, const char *name)
{
	snprintf(m->path, sizeof(m->path), "%s/%s", test_tmpdir(), name);
	snprintf(m->jpath, sizeof(m->jpath), "%s%s", m->path, JOURNAL_SUFFIX);
	snprintf(m->tpath, sizeof(m->tpath), "%s%s", m->jpath, JOURNAL_TEMP_SUFFIX);
}

static char *mbx_original(const struct mbx *m, size_t *len);

/* Build name with messages of the given body sizes (after the pseudo message if asked). */
static void mbx_init(struct mbx *m, const char *name, size_t nsizes, const size_t *sizes,
		     bool pseudo)
{
	memset(m, 0, sizeof(*m));
	mbx_set_paths(m, name);
	remove_leftovers(m);
	m->pseudo = pseudo;
	if (pseudo) {
		m->len[0] = sizeof(pseudo_text) - 1;
		m->region[0] = dup_bytes(pseudo_text, m->len[0]);
		m->n = 1;
	}
	for (size_t i = 0; i < nsizes; i++, m->n++)
		m->region[m->n] = make_region((unsigned)i + 1, sizes[i], &m->len[m->n]);
	size_t len;
	char *all = mbx_original(m, &len);
	test_write_file(m->path, all, len);
	free(all);
}

static void mbx_free(struct mbx *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->region[i]);
	remove_leftovers(m);
}

/* The regions not deleted (NULL: none deleted), in order, then extra. */
static char *mbx_expect(const struct mbx *m, const bool *deleted, const char *extra,
			size_t *len)
{
	size_t total = extra ? strlen(extra) : 0;
	for (size_t i = 0; i < m->n; i++)
		total += m->len[i];
	char *p = malloc(total + 1);
	assert_non_null(p);
	size_t off = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (deleted && deleted[i])
			continue;
		memcpy(p + off, m->region[i], m->len[i]);
		off += m->len[i];
	}
	if (extra) {
		memcpy(p + off, extra, strlen(extra));
		off += strlen(extra);
	}
	p[off] = '\0';
	*len = off;
	return p;
}

static char *mbx_original(const struct mbx *m, size_t *len)
{
	return mbx_expect(m, NULL, NULL, len);
}

/* Offset of region i. */
static off_t mbx_offset(const struct mbx *m, size_t i)
{
	off_t off = 0;
	for (size_t k = 0; k < i; k++)
		off += (off_t)m->len[k];
	return off;
}

static struct mbox *mbx_open(const struct mbx *m)
{
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 2;
	struct mbox *mb = NULL;
	char why[WHY_LEN] = "";
	enum mbox_status st = mbox_open(&mb, m->path, &opt, why, sizeof(why));
	if (st != MBOX_OK)
		print_message("mbox_open %s: %s\n", m->path, why);
	assert_int_equal(st, MBOX_OK);
	assert_int_equal(mb->nmsgs, m->n);
	assert_int_equal(mb->first, m->pseudo ? 1 : 0);
	return mb;
}

/* Mark regions deleted through the client-visible numbering. */
static void mbx_mark(struct mbox *mb, const struct mbx *m, const bool *deleted)
{
	for (size_t i = m->pseudo ? 1 : 0; i < m->n; i++) {
		struct mbox_msg *msg = mbox_msg(mb, i + 1 - (m->pseudo ? 1 : 0));
		assert_non_null(msg);
		msg->deleted = deleted[i];
	}
}

static int recover_why(const struct mbx *m, const struct update_hooks *hooks, char *why)
{
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 2;
	why[0] = '\0';
	return mbox_recover_hooked(m->path, &opt, hooks, why, WHY_LEN);
}

/* Recovery that must succeed. */
static void assert_recovers(const struct mbx *m)
{
	char why[WHY_LEN];
	int rc = recover_why(m, NULL, why);
	if (rc != 0)
		print_message("mbox_recover %s: %s\n", m->path, why);
	assert_int_equal(rc, 0);
}

/* ---- Checks ---- */

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Whether path holds exactly exp; loud: say where it differs. */
static bool file_is(const char *path, const char *exp, size_t explen, bool loud)
{
	size_t len;
	char *got = test_read_file(path, &len);
	bool same = got && len == explen && memcmp(got, exp, len) == 0;
	if (loud && got && !same) {
		size_t i = 0;
		while (i < len && i < explen && got[i] == exp[i])
			i++;
		print_message("%s: %zu octets, expected %zu, first difference at %zu\n", path, len,
			      explen, i);
	}
	free(got);
	return same;
}

static bool file_equals(const char *path, const char *exp, size_t explen)
{
	return file_is(path, exp, explen, true);
}

static void assert_file(const char *path, const char *exp, size_t explen)
{
	assert_true(file_equals(path, exp, explen));
}

static void assert_no_journal(const struct mbx *m)
{
	assert_false(exists(m->jpath));
	assert_false(exists(m->tpath));
}

/* ---- Fault injection ---- */

struct fault {
	int crash_at;             /* step to crash at; 0 never */
	const char *crash_what;   /* or the first step of this name */
	int fail_at;              /* step to fail at; 0 never */
	const char *fail_what;    /* or the first step of this name */
	int fail_errno;
	const char *jpath;        /* watched: did a journal ever exist? */
	int calls;
	bool journal_seen;
};

static int fault_fn(void *ctx, int step, const char *what)
{
	struct fault *f = ctx;
	f->calls++;
	assert_int_equal(step, f->calls);   /* numbered 1, 2, 3 ... */
	if (f->jpath && exists(f->jpath))
		f->journal_seen = true;
	if (step == f->crash_at || (f->crash_what && strcmp(what, f->crash_what) == 0)) {
		f->crash_what = NULL;
		return 1;
	}
	if (step == f->fail_at || (f->fail_what && strcmp(what, f->fail_what) == 0)) {
		f->fail_what = NULL;
		return -f->fail_errno;
	}
	return 0;
}

static enum mbox_status update_with(struct mbox *mb, struct fault *f, char *why)
{
	struct update_hooks hooks = { .fault = fault_fn, .ctx = f };
	return mbox_update_hooked(mb, &hooks, why, WHY_LEN);
}

/* ---- Log capture ---- */

struct logcap {
	int update_lines;
	char last[512];
};

static void log_capture(int priority, const char *msg, void *ctx)
{
	struct logcap *lc = ctx;
	(void)priority;
	if (strncmp(msg, "update ", 7) == 0) {
		lc->update_lines++;
		snprintf(lc->last, sizeof(lc->last), "%s", msg);
	}
}

/* ---- What was logged: the details (paths, errors) that why must not carry ---- */

struct logtext {
	char text[8192];
	size_t len;
};

static void log_append(int priority, const char *msg, void *ctx)
{
	struct logtext *lt = ctx;
	(void)priority;
	int n = snprintf(lt->text + lt->len, sizeof(lt->text) - lt->len, "%s\n", msg);
	if (n > 0 && lt->len + (size_t)n < sizeof(lt->text))
		lt->len += (size_t)n;
}

/* Start collecting the log afresh. */
static void log_collect(struct logtext *lt)
{
	lt->len = 0;
	lt->text[0] = '\0';
	log_set_hook(log_append, lt);
}

/* The detail went to the log; why, which a client may see, names no file. */
static void assert_logged_not_told(struct logtext *lt, const char *detail, const char *why)
{
	log_set_hook(NULL, NULL);
	if (!strstr(lt->text, detail))
		print_message("log lacks \"%s\":\n%s", detail, lt->text);
	assert_non_null(strstr(lt->text, detail));
	if (strstr(why, test_tmpdir()))
		print_message("why names a file: %s\n", why);
	assert_null(strstr(why, test_tmpdir()));
}

/* ---- Deleting ---- */

static const size_t std_sizes[] = { 300, 1200, 300000, 50, 700, 4000 };
#define STD_N (sizeof(std_sizes) / sizeof(std_sizes[0]))

/* Open, delete, update, compare with the kept regions; del is per region. */
static void delete_case(const bool *del, bool pseudo, const char *late)
{
	struct mbx m;
	mbx_init(&m, "del", STD_N, std_sizes, pseudo);
	struct mbox *mb = mbx_open(&m);
	mbx_mark(mb, &m, del);
	if (late)
		test_append_file(m.path, late, strlen(late));
	char why[WHY_LEN] = "";
	struct fault f = { .jpath = m.jpath };
	enum mbox_status st = update_with(mb, &f, why);
	if (st != MBOX_OK)
		print_message("update: %s\n", why);
	assert_int_equal(st, MBOX_OK);
	mbox_close(mb);
	size_t len;
	char *exp = mbx_expect(&m, del, late, &len);
	assert_file(m.path, exp, len);
	assert_no_journal(&m);
	free(exp);
	mbx_free(&m);
}

static void test_delete_none(void **state)
{
	(void)state;
	struct mbx m;
	mbx_init(&m, "none", STD_N, std_sizes, false);
	struct stat before, after;
	assert_int_equal(stat(m.path, &before), 0);
	struct mbox *mb = mbx_open(&m);
	char why[WHY_LEN] = "";
	struct fault f = { .jpath = m.jpath };
	assert_int_equal(update_with(mb, &f, why), MBOX_OK);
	mbox_close(mb);
	assert_int_equal(f.calls, 0);   /* not a single step taken */
	assert_int_equal(stat(m.path, &after), 0);
	assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
		    after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	size_t len;
	char *orig = mbx_original(&m, &len);
	assert_file(m.path, orig, len);
	assert_no_journal(&m);
	free(orig);
	mbx_free(&m);
}

static void test_delete_first(void **state)
{
	(void)state;
	const bool del[STD_N] = { true };
	delete_case(del, false, NULL);
}

static void test_delete_middle(void **state)
{
	(void)state;
	const bool del[STD_N] = { [3] = true };
	delete_case(del, false, NULL);
	const bool del2[STD_N] = { [2] = true, [3] = true };   /* the multi-chunk one too */
	delete_case(del2, false, NULL);
}

static void test_delete_last(void **state)
{
	(void)state;
	const bool del[STD_N] = { [STD_N - 1] = true };
	delete_case(del, false, NULL);
}

static void test_delete_all(void **state)
{
	(void)state;
	bool del[STD_N];
	for (size_t i = 0; i < STD_N; i++)
		del[i] = true;
	delete_case(del, false, NULL);
}

static void test_delete_every_other(void **state)
{
	(void)state;
	bool odd[STD_N], even[STD_N];
	for (size_t i = 0; i < STD_N; i++) {
		odd[i] = i % 2 == 1;
		even[i] = i % 2 == 0;
	}
	delete_case(odd, false, NULL);
	delete_case(even, false, NULL);
}

static void test_pseudo_message_kept(void **state)
{
	(void)state;
	bool first[STD_N + 1] = { false, true };
	delete_case(first, true, NULL);
	bool all[STD_N + 1];
	for (size_t i = 0; i < STD_N + 1; i++)
		all[i] = i > 0;
	delete_case(all, true, NULL);
	/* Even a deleted flag on the pseudo message itself does not remove it. */
	struct mbx m;
	mbx_init(&m, "pseudo", STD_N, std_sizes, true);
	struct mbox *mb = mbx_open(&m);
	mb->msgs[0].deleted = true;
	mb->msgs[2].deleted = true;
	char why[WHY_LEN];
	assert_int_equal(mbox_update(mb, why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
	const bool exp_del[STD_N + 1] = { [2] = true };
	size_t len;
	char *exp = mbx_expect(&m, exp_del, NULL, &len);
	assert_file(m.path, exp, len);
	free(exp);
	mbx_free(&m);
}

static void test_mail_appended_after_login_kept(void **state)
{
	(void)state;
	const bool first[STD_N] = { true };
	delete_case(first, false, late_text);
	const bool last[STD_N] = { [STD_N - 1] = true };
	delete_case(last, false, late_text);
	bool all[STD_N];
	for (size_t i = 0; i < STD_N; i++)
		all[i] = true;
	delete_case(all, false, late_text);
	bool odd[STD_N + 1];   /* with the pseudo message: one region more */
	for (size_t i = 0; i < STD_N + 1; i++)
		odd[i] = i % 2 == 1;
	delete_case(odd, true, late_text);
}

/* Delete-all with nothing appended: one truncate, no journal, no copy. */
static void test_delete_all_truncates_without_journal(void **state)
{
	(void)state;
	for (int pseudo = 0; pseudo <= 1; pseudo++) {
		struct mbx m;
		mbx_init(&m, "trunc", STD_N, std_sizes, pseudo);
		struct mbox *mb = mbx_open(&m);
		bool del[STD_N + 1] = { false };
		for (size_t i = pseudo ? 1 : 0; i < m.n; i++)
			del[i] = true;
		mbx_mark(mb, &m, del);
		char why[WHY_LEN];
		struct fault f = { .jpath = m.jpath };
		assert_int_equal(update_with(mb, &f, why), MBOX_OK);
		mbox_close(mb);
		assert_true(f.calls > 0);         /* the hook did watch ... */
		assert_false(f.journal_seen);     /* ... and never saw a journal */
		struct stat st;
		assert_int_equal(stat(m.path, &st), 0);
		assert_int_equal(st.st_size, mbx_offset(&m, pseudo ? 1 : 0));
		mbx_free(&m);
	}
	/* Deleting the tail only is a truncate too. */
	struct mbx m;
	mbx_init(&m, "trunc", STD_N, std_sizes, false);
	struct mbox *mb = mbx_open(&m);
	const bool del[STD_N] = { [4] = true, [5] = true };
	mbx_mark(mb, &m, del);
	char why[WHY_LEN];
	struct fault f = { .jpath = m.jpath };
	assert_int_equal(update_with(mb, &f, why), MBOX_OK);
	mbox_close(mb);
	assert_false(f.journal_seen);
	size_t len;
	char *exp = mbx_expect(&m, del, NULL, &len);
	assert_file(m.path, exp, len);
	free(exp);
	mbx_free(&m);
}

/* A move goes through the journal: the hook sees it exist, and it is gone after. */
static void test_move_uses_journal(void **state)
{
	(void)state;
	struct mbx m;
	mbx_init(&m, "move", STD_N, std_sizes, false);
	struct mbox *mb = mbx_open(&m);
	const bool del[STD_N] = { true };
	mbx_mark(mb, &m, del);
	char why[WHY_LEN];
	struct fault f = { .jpath = m.jpath };
	assert_int_equal(update_with(mb, &f, why), MBOX_OK);
	mbox_close(mb);
	assert_true(f.journal_seen);
	assert_no_journal(&m);
	mbx_free(&m);
}

/*
 * --journal-dir: the journal goes to the journal directory, never beside the
 * mailbox; a crash in the middle of the move is repaired from there; and
 * while it is there, a login (mbox_open) is refused until recovery ran.
 */
static void test_journal_dir_crash_and_recover(void **state)
{
	(void)state;
	char jdir[600], jpath[1300];
	snprintf(jdir, sizeof(jdir), "%s/journals", test_tmpdir());
	assert_true(mkdir(jdir, 0700) == 0 || errno == EEXIST);
	struct mbx m;
	mbx_init(&m, "jdir", STD_N, std_sizes, false);
	assert_int_equal(mbox_journal_path(m.path, jdir, jpath, sizeof(jpath)), 0);
	assert_ptr_equal(strstr(jpath, jdir), jpath);
	unlink(jpath);

	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 2;
	opt.journal_dir = jdir;
	struct mbox *mb = NULL;
	char why[WHY_LEN] = "";
	assert_int_equal(mbox_open(&mb, m.path, &opt, why, sizeof(why)), MBOX_OK);
	const bool del[STD_N] = { true };
	mbx_mark(mb, &m, del);
	struct fault f = { .jpath = jpath, .crash_what = "mailbox-truncated" };
	assert_int_equal(update_with(mb, &f, why), MBOX_TEMP);
	mbox_close(mb);
	assert_true(f.journal_seen);       /* it was written in the journal directory */
	assert_true(exists(jpath));
	assert_false(exists(m.jpath));     /* and never beside the mailbox */

	/* Until recovered, a login (with the same --journal-dir) is refused. */
	assert_int_equal(mbox_open(&mb, m.path, &opt, why, sizeof(why)), MBOX_TEMP);
	assert_int_equal(mbox_recover(m.path, &opt, why, sizeof(why)), 0);
	assert_false(exists(jpath));
	size_t len;
	char *exp = mbx_expect(&m, del, NULL, &len);
	assert_file(m.path, exp, len);
	free(exp);
	assert_int_equal(mbox_open(&mb, m.path, &opt, why, sizeof(why)), MBOX_OK);
	mbox_close(mb);
	mbx_free(&m);
}

/*
 * A journal left where journals no longer go (the spool's mode changed, or
 * --journal-dir was added or dropped) is still found and recovered: from the
 * other directory (journal_alt_dir), and from beside the mailbox.
 */
static void crash_with_journal_in(const struct mbx *m, const char *jdir, const bool *del)
{
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 2;
	opt.journal_dir = jdir;
	struct mbox *mb = NULL;
	char why[WHY_LEN] = "";
	char jpath[1300];
	assert_int_equal(mbox_journal_path(m->path, jdir, jpath, sizeof(jpath)), 0);
	assert_int_equal(mbox_open(&mb, m->path, &opt, why, sizeof(why)), MBOX_OK);
	mbx_mark(mb, m, del);
	struct fault f = { .jpath = jpath, .crash_what = "mailbox-truncated" };
	assert_int_equal(update_with(mb, &f, why), MBOX_TEMP);
	mbox_close(mb);
	assert_true(exists(jpath));
}

static void test_journal_found_in_either_place(void **state)
{
	(void)state;
	char jdir[600];
	snprintf(jdir, sizeof(jdir), "%s/journals-either", test_tmpdir());
	assert_true(mkdir(jdir, 0700) == 0 || errno == EEXIST);
	const bool del[STD_N] = { false, true };
	size_t len;
	char why[WHY_LEN] = "";
	struct mbox *mb = NULL;
	for (int beside = 0; beside < 2; beside++) {
		struct mbx m;
		mbx_init(&m, beside ? "either-beside" : "either-dir", STD_N, std_sizes, false);
		crash_with_journal_in(&m, beside ? NULL : jdir, del);
		struct mbox_options opt;
		mbox_default_options(&opt);
		opt.lock_timeout = 2;
		/* Journals now go to the other place. */
		opt.journal_dir = beside ? jdir : NULL;
		opt.journal_alt_dir = beside ? NULL : jdir;
		assert_int_equal(mbox_open(&mb, m.path, &opt, why, sizeof(why)), MBOX_TEMP);
		assert_int_equal(mbox_recover(m.path, &opt, why, sizeof(why)), 0);
		char *exp = mbx_expect(&m, del, NULL, &len);
		assert_file(m.path, exp, len);
		free(exp);
		assert_int_equal(mbox_open(&mb, m.path, &opt, why, sizeof(why)), MBOX_OK);
		mbox_close(mb);
		assert_no_journal(&m);
		mbx_free(&m);
	}
}

static void test_log_line(void **state)
{
	(void)state;
	struct logcap lc = { 0 };
	log_set_hook(log_capture, &lc);
	const bool first[STD_N] = { true };
	delete_case(first, false, NULL);
	assert_int_equal(lc.update_lines, 1);
	assert_non_null(strstr(lc.last, "1 message removed"));
	assert_non_null(strstr(lc.last, "journal"));
	bool all[STD_N];
	for (size_t i = 0; i < STD_N; i++)
		all[i] = true;
	delete_case(all, false, NULL);
	assert_int_equal(lc.update_lines, 2);
	assert_non_null(strstr(lc.last, "6 messages removed"));
	assert_non_null(strstr(lc.last, "truncate"));
	log_set_hook(NULL, NULL);
}

/* ---- Verification before the update ---- */

/* Open, let tamper() change the file, delete del; the update must refuse. */
static void refused_case(const char *name, void (*tamper)(const struct mbx *m),
			 const bool *del)
{
	struct mbx m;
	mbx_init(&m, name, STD_N, std_sizes, false);
	struct mbox *mb = mbx_open(&m);
	mbx_mark(mb, &m, del);
	tamper(&m);
	size_t len;
	char *tampered = test_read_file(m.path, &len);
	assert_non_null(tampered);
	char why[WHY_LEN] = "";
	struct fault f = { .jpath = m.jpath };
	assert_int_equal(update_with(mb, &f, why), MBOX_TEMP);
	mbox_close(mb);
	assert_string_equal(why, "mailbox was changed by another program");
	assert_file(m.path, tampered, len);
	assert_false(f.journal_seen);
	assert_no_journal(&m);
	free(tampered);
	mbx_free(&m);
}

/* "Subject: message 2" becomes "Subject: massage 2", same length, same place. */
static void tamper_header(const struct mbx *m)
{
	int fd = open(m->path, O_WRONLY);
	assert_true(fd >= 0);
	const char *subj = strstr(m->region[1], "Subject: message");
	assert_non_null(subj);
	off_t off = mbx_offset(m, 1) + (subj - m->region[1]) + 10;
	assert_int_equal(pwrite(fd, "a", 1, off), 1);
	close(fd);
}

static void tamper_remove_message(const struct mbx *m)
{
	bool del[MAX_TEST_MSGS] = { [3] = true };
	size_t len;
	char *rest = mbx_expect(m, del, NULL, &len);
	test_write_file(m->path, rest, len);   /* same inode, rewritten */
	free(rest);
}

static void tamper_truncate(const struct mbx *m)
{
	assert_int_equal(truncate(m->path, mbx_offset(m, 5) + 10), 0);
}

static void tamper_replace(const struct mbx *m)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.new", m->path);
	size_t len;
	char *same = mbx_original(m, &len);
	test_write_file(tmp, same, len);   /* identical octets, another inode */
	assert_int_equal(rename(tmp, m->path), 0);
	free(same);
}

static void tamper_insert_in_kept(const struct mbx *m)
{
	/* A header added to kept message 1 moves every From_ line after it. */
	size_t len;
	char *orig = mbx_original(m, &len);
	size_t cut = (size_t)mbx_offset(m, 0) + (size_t)(strchr(m->region[0], '\n') - m->region[0]) + 1;
	const char *add = "Status: RO\n";
	int fd = open(m->path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, orig, cut), (ssize_t)cut);
	assert_int_equal(write(fd, add, strlen(add)), (ssize_t)strlen(add));
	assert_int_equal(write(fd, orig + cut, len - cut), (ssize_t)(len - cut));
	close(fd);
	free(orig);
}

static void test_refuse_changed_header_of_deleted(void **state)
{
	(void)state;
	const bool del[STD_N] = { [1] = true };
	refused_case("hdr", tamper_header, del);
}

static void test_refuse_message_removed(void **state)
{
	(void)state;
	const bool del[STD_N] = { [1] = true };
	refused_case("removed", tamper_remove_message, del);
}

static void test_refuse_truncated(void **state)
{
	(void)state;
	const bool del[STD_N] = { [0] = true };
	refused_case("truncated", tamper_truncate, del);
	const bool del_all[STD_N] = { true, true, true, true, true, true };
	refused_case("truncated", tamper_truncate, del_all);
}

static void test_refuse_replaced(void **state)
{
	(void)state;
	const bool del[STD_N] = { [0] = true };
	refused_case("replaced", tamper_replace, del);
}

static void test_refuse_kept_message_moved(void **state)
{
	(void)state;
	const bool del[STD_N] = { [4] = true };
	refused_case("moved", tamper_insert_in_kept, del);
}

/* ---- Crashes ---- */

/* ~10 messages; the kept data after the first deleted one spans several chunks. */
static const size_t crash_sizes[] = { 1000, 10000, 300000, 2000, 5000, 250000, 3000, 100000,
				      1000, 2000 };
#define CRASH_N (sizeof(crash_sizes) / sizeof(crash_sizes[0]))
static const bool crash_del[CRASH_N] = { [1] = true, [4] = true, [8] = true };

/* Mail after a crash that is longer than everything deleted: F >= S after a truncate. */
static char *big_post(void)
{
	size_t len;
	char *p = make_region(77, 40000, &len);
	return p;
}

/* The mailbox the crash tests start from: open, marked, late mail maybe appended. */
static struct mbox *crash_setup(struct mbx *m, bool late)
{
	mbx_init(m, "crash", CRASH_N, crash_sizes, false);
	struct mbox *mb = mbx_open(m);
	mbx_mark(mb, m, crash_del);
	if (late)
		test_append_file(m->path, late_text, strlen(late_text));
	return mb;
}

/* The two acceptable outcomes: nothing applied, or all applied; extra at the end. */
struct outcomes {
	char *orig, *applied;
	size_t orig_len, applied_len;
};

static void outcomes_init(struct outcomes *o, const struct mbx *m, bool late)
{
	o->orig = mbx_expect(m, NULL, late ? late_text : NULL, &o->orig_len);
	o->applied = mbx_expect(m, crash_del, late ? late_text : NULL, &o->applied_len);
}

static void outcomes_append(struct outcomes *o, const char *extra)
{
	size_t n = strlen(extra);
	o->orig = realloc(o->orig, o->orig_len + n + 1);
	o->applied = realloc(o->applied, o->applied_len + n + 1);
	assert_non_null(o->orig);
	assert_non_null(o->applied);
	memcpy(o->orig + o->orig_len, extra, n + 1);
	memcpy(o->applied + o->applied_len, extra, n + 1);
	o->orig_len += n;
	o->applied_len += n;
}

static void outcomes_free(struct outcomes *o)
{
	free(o->orig);
	free(o->applied);
}

/* Deliver extra into the mailbox and the expectations. */
static void deliver(const struct mbx *m, struct outcomes *o, const char *extra)
{
	test_append_file(m->path, extra, strlen(extra));
	outcomes_append(o, extra);
}

/*
 * After recovery: the file is one of the two outcomes, no journal is left,
 * and recovering again changes nothing. Returns whether it was applied.
 */
static bool check_recovered(const struct mbx *m, const struct outcomes *o)
{
	bool applied = file_is(m->path, o->applied, o->applied_len, false);
	bool orig = !applied && file_is(m->path, o->orig, o->orig_len, false);
	if (!applied && !orig) {
		file_is(m->path, o->applied, o->applied_len, true);
		file_is(m->path, o->orig, o->orig_len, true);
	}
	assert_true(applied || orig);
	assert_no_journal(m);
	assert_recovers(m);
	assert_true(file_equals(m->path, applied ? o->applied : o->orig,
				applied ? o->applied_len : o->orig_len));
	return applied;
}

/* Crash the update at step k; NULL post: no mail after the crash. false when k was past the end. */
static bool crash_update_at(int k, bool late, const char *post, bool *applied)
{
	struct mbx m;
	struct mbox *mb = crash_setup(&m, late);
	struct outcomes o;
	outcomes_init(&o, &m, late);
	char why[WHY_LEN] = "";
	struct fault f = { .crash_at = k };
	enum mbox_status st = update_with(mb, &f, why);
	mbox_close(mb);
	bool crashed = f.calls >= k;
	if (!crashed) {
		assert_int_equal(st, MBOX_OK);
		assert_true(file_equals(m.path, o.applied, o.applied_len));
		assert_no_journal(&m);
		*applied = true;
	} else {
		assert_int_equal(st, MBOX_TEMP);
		assert_non_null(strstr(why, "crash injected"));
		if (post)
			deliver(&m, &o, post);
		assert_recovers(&m);
		*applied = check_recovered(&m, &o);
	}
	outcomes_free(&o);
	mbx_free(&m);
	return crashed;
}

static void crash_every_step(bool late, const char *post)
{
	bool applied_before = false, applied = false;
	int k;
	for (k = 1; crash_update_at(k, late, post, &applied); k++) {
		/* Once the journal is durable the update is committed: no way back. */
		if (applied_before)
			assert_true(applied);
		applied_before |= applied;
	}
	assert_true(applied_before);
	/* 4+ journal chunks and 3+ mailbox chunks, plus the fixed steps. */
	assert_true(k > 15);
}

static void test_crash_at_every_step(void **state)
{
	(void)state;
	crash_every_step(false, NULL);
}

static void test_crash_at_every_step_then_mail(void **state)
{
	(void)state;
	crash_every_step(false, post_text);
	char *big = big_post();
	crash_every_step(true, big);
	free(big);
}

/* Crash the update at k, deliver, crash the recovery at j, deliver again, recover. */
static bool crash_recovery_at(int k, int j, const char *post2, bool *update_crashed)
{
	struct mbx m;
	struct mbox *mb = crash_setup(&m, true);
	struct outcomes o;
	outcomes_init(&o, &m, true);
	char why[WHY_LEN];
	struct fault f = { .crash_at = k };
	update_with(mb, &f, why);
	mbox_close(mb);
	*update_crashed = f.calls >= k;
	bool crashed = false;
	if (*update_crashed) {
		deliver(&m, &o, post_text);
		struct fault g = { .crash_at = j };
		struct update_hooks hooks = { .fault = fault_fn, .ctx = &g };
		int rc = recover_why(&m, &hooks, why);
		crashed = g.calls >= j;
		assert_int_equal(rc, crashed ? -1 : 0);
		if (crashed)
			assert_non_null(strstr(why, "crash injected"));
		if (crashed && post2)
			deliver(&m, &o, post2);
		assert_recovers(&m);
		check_recovered(&m, &o);
	}
	outcomes_free(&o);
	mbx_free(&m);
	return crashed;
}

static void test_crash_during_recovery(void **state)
{
	(void)state;
	char *big = big_post();
	int recovery_crashes = 0;
	bool update_crashed = true;
	for (int k = 1; update_crashed; k++) {
		for (int j = 1; crash_recovery_at(k, j, j % 2 ? big : late_text, &update_crashed); j++)
			recovery_crashes++;
	}
	free(big);
	assert_true(recovery_crashes > 50);
}

/* ---- Failures ---- */

/* An error at any step: nothing applied and no journal, or all applied (by recovery). */
static void test_failure_at_every_step(void **state)
{
	(void)state;
	int untouched = 0, completed = 0, k;
	for (k = 1;; k++) {
		struct mbx m;
		struct mbox *mb = crash_setup(&m, true);
		struct outcomes o;
		outcomes_init(&o, &m, true);
		char why[WHY_LEN] = "";
		struct fault f = { .fail_at = k, .fail_errno = EIO };
		enum mbox_status st = update_with(mb, &f, why);
		mbox_close(mb);
		bool past_end = f.calls < k;
		assert_no_journal(&m);
		if (st == MBOX_OK) {
			assert_true(file_equals(m.path, o.applied, o.applied_len));
			completed += !past_end;
		} else {
			assert_int_equal(st, MBOX_TEMP);
			assert_non_null(strstr(why, strerror(EIO)));
			assert_true(file_equals(m.path, o.orig, o.orig_len));
			untouched++;
		}
		outcomes_free(&o);
		mbx_free(&m);
		if (past_end)
			break;
	}
	assert_true(untouched > 3);
	assert_true(completed > 3);
}

static void test_disk_full_while_journaling(void **state)
{
	(void)state;
	const char *where[] = { "journal-created", "journal-chunk", "journal-header",
				"journal-trailer", "journal-synced" };
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		struct mbx m;
		struct mbox *mb = crash_setup(&m, false);
		struct outcomes o;
		outcomes_init(&o, &m, false);
		char why[WHY_LEN] = "";
		struct fault f = { .fail_what = where[i], .fail_errno = ENOSPC };
		assert_int_equal(update_with(mb, &f, why), MBOX_TEMP);
		mbox_close(mb);
		assert_true(strncmp(why, "disk full", 9) == 0);
		assert_true(file_equals(m.path, o.orig, o.orig_len));
		assert_no_journal(&m);
		outcomes_free(&o);
		mbx_free(&m);
	}
}

/* ---- The journal ---- */

/* Crash once the journal is durable and the mailbox still untouched. */
static void crash_with_journal(struct mbx *m, struct outcomes *o)
{
	struct mbox *mb = crash_setup(m, false);
	outcomes_init(o, m, false);
	char why[WHY_LEN];
	struct fault f = { .crash_what = "journal-dir-synced" };
	assert_int_equal(update_with(mb, &f, why), MBOX_TEMP);
	mbox_close(mb);
	assert_true(exists(m->jpath));
	assert_true(file_equals(m->path, o->orig, o->orig_len));
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	unsigned char c;
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_corrupt_journal_removed(void **state)
{
	(void)state;
	/* Control: the intact journal is applied. */
	struct mbx m;
	struct outcomes o;
	crash_with_journal(&m, &o);
	assert_recovers(&m);
	assert_true(file_equals(m.path, o.applied, o.applied_len));
	assert_no_journal(&m);
	outcomes_free(&o);
	mbx_free(&m);

	struct stat st;
	const off_t cuts[] = { 0, 30, 64, 64 + 1000, -1, -16 };   /* < 0: from the end */
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		crash_with_journal(&m, &o);
		assert_int_equal(stat(m.jpath, &st), 0);
		off_t cut = cuts[i] < 0 ? st.st_size + cuts[i] : cuts[i];
		assert_int_equal(truncate(m.jpath, cut), 0);
		assert_recovers(&m);
		assert_true(file_equals(m.path, o.orig, o.orig_len));
		assert_no_journal(&m);
		outcomes_free(&o);
		mbx_free(&m);
	}
	const off_t flips[] = { 20, 40, 64 + 5000, -3 };   /* header, sum, data, trailer */
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		crash_with_journal(&m, &o);
		assert_int_equal(stat(m.jpath, &st), 0);
		flip_byte(m.jpath, flips[i] < 0 ? st.st_size + flips[i] : flips[i]);
		assert_recovers(&m);
		assert_true(file_equals(m.path, o.orig, o.orig_len));
		assert_no_journal(&m);
		outcomes_free(&o);
		mbx_free(&m);
	}
}

static void test_journal_not_ours_is_kept(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();   /* only root can give the journal to someone else */
	struct logtext lt;   /* after skip(): the hook must not outlive this frame */
	log_collect(&lt);
	struct mbx m;
	struct outcomes o;
	crash_with_journal(&m, &o);
	assert_int_equal(chown(m.jpath, 65534, 65534), 0);
	char why[WHY_LEN];
	/* Someone else's file: never trusted nor removed, and never in the way of the login. */
	assert_int_equal(recover_why(&m, NULL, why), 0);
	assert_logged_not_told(&lt, "is not a journal of pop3d's", why);
	assert_true(exists(m.jpath));
	assert_true(file_equals(m.path, o.orig, o.orig_len));
	assert_int_equal(chown(m.jpath, 0, 0), 0);
	assert_recovers(&m);
	assert_true(file_equals(m.path, o.applied, o.applied_len));
	outcomes_free(&o);
	mbx_free(&m);
}

static void test_journal_without_mailbox_is_kept(void **state)
{
	(void)state;
	struct logtext lt;
	log_collect(&lt);
	struct mbx m;
	struct outcomes o;
	crash_with_journal(&m, &o);
	char aside[600];
	snprintf(aside, sizeof(aside), "%s.aside", m.path);
	assert_int_equal(rename(m.path, aside), 0);
	char why[WHY_LEN];
	assert_int_equal(recover_why(&m, NULL, why), -1);
	assert_logged_not_told(&lt, "journal kept", why);
	assert_true(exists(m.jpath));
	assert_false(exists(m.path));
	assert_int_equal(rename(aside, m.path), 0);
	assert_recovers(&m);
	assert_true(file_equals(m.path, o.applied, o.applied_len));
	outcomes_free(&o);
	mbx_free(&m);
}

/* Crash right after the truncate; the mailbox now holds the kept data at X. */
static void crash_after_truncate(struct mbx *m, struct outcomes *o)
{
	struct mbox *mb = crash_setup(m, false);
	outcomes_init(o, m, false);
	char why[WHY_LEN];
	struct fault f = { .crash_what = "mailbox-truncated" };
	assert_int_equal(update_with(mb, &f, why), MBOX_TEMP);
	mbox_close(mb);
	assert_true(exists(m->jpath));
	assert_true(file_equals(m->path, o->applied, o->applied_len));
}

/* Someone cut the mailbox below what the journal says was kept: hands off. */
static void test_mailbox_shorter_than_journal_is_kept(void **state)
{
	(void)state;
	struct logtext lt;
	log_collect(&lt);
	struct mbx m;
	struct outcomes o;
	crash_after_truncate(&m, &o);
	off_t x = mbx_offset(&m, 1);
	assert_int_equal(truncate(m.path, x + 100), 0);
	char why[WHY_LEN];
	assert_int_equal(recover_why(&m, NULL, why), -1);
	assert_logged_not_told(&lt, "journal kept", why);
	assert_true(exists(m.jpath));
	struct stat st;
	assert_int_equal(stat(m.path, &st), 0);
	assert_int_equal(st.st_size, x + 100);
	outcomes_free(&o);
	mbx_free(&m);
}

/* After the truncate, the kept data must be what the journal holds, or hands off. */
static void test_mailbox_not_matching_journal_is_kept(void **state)
{
	(void)state;
	struct logtext lt;
	log_collect(&lt);
	struct mbx m;
	struct outcomes o;
	crash_after_truncate(&m, &o);
	flip_byte(m.path, mbx_offset(&m, 1) + 5000);
	size_t len;
	char *before = test_read_file(m.path, &len);
	char why[WHY_LEN];
	assert_int_equal(recover_why(&m, NULL, why), -1);
	assert_logged_not_told(&lt, "does not match journal", why);
	assert_true(exists(m.jpath));
	assert_file(m.path, before, len);
	/* Put it right again: now the journal is finished and removed. */
	flip_byte(m.path, mbx_offset(&m, 1) + 5000);
	assert_recovers(&m);
	assert_true(file_equals(m.path, o.applied, o.applied_len));
	assert_no_journal(&m);
	free(before);
	outcomes_free(&o);
	mbx_free(&m);
}

static void test_existing_journal_blocks_update(void **state)
{
	(void)state;
	struct logtext lt;
	log_collect(&lt);
	struct mbx m;
	struct mbox *mb = crash_setup(&m, false);
	struct outcomes o;
	outcomes_init(&o, &m, false);
	test_write_file(m.jpath, "not ours", 8);
	char why[WHY_LEN] = "";
	assert_int_equal(mbox_update(mb, why, sizeof(why)), MBOX_TEMP);
	mbox_close(mb);
	assert_logged_not_told(&lt, "cannot create journal", why);
	assert_non_null(strstr(why, strerror(EEXIST)));
	assert_true(file_equals(m.path, o.orig, o.orig_len));
	assert_true(file_equals(m.jpath, "not ours", 8));
	outcomes_free(&o);
	mbx_free(&m);
}

static void test_recover_without_journal(void **state)
{
	(void)state;
	struct mbx m;
	mbx_init(&m, "calm", STD_N, std_sizes, false);
	size_t len;
	char *orig = mbx_original(&m, &len);
	assert_recovers(&m);
	assert_file(m.path, orig, len);
	/* A half-written rewrite left by a crashed recovery (header not yet written) is removed. */
	char half[JOURNAL_HEADER_SIZE + 4] = { 0 };
	memcpy(half + JOURNAL_HEADER_SIZE, "half", 4);
	test_write_file(m.tpath, half, sizeof(half));
	assert_recovers(&m);
	assert_file(m.path, orig, len);
	assert_no_journal(&m);
	/* A file of someone else's format at that name is left alone. */
	test_write_file(m.tpath, "half", 4);
	assert_recovers(&m);
	assert_file(m.path, orig, len);
	assert_true(exists(m.tpath));
	unlink(m.tpath);
	/* No mailbox and no journal: nothing to do. */
	mbx_free(&m);
	assert_recovers(&m);
	free(orig);
}

/* What a recovery did, for pop3d --recover: nothing, or the deletions it applied. */
static void test_recover_report(void **state)
{
	(void)state;
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 2;
	char why[WHY_LEN];
	int replays = 0;
	bool crashed = true;
	for (int k = 1; crashed; k++) {
		struct mbx m;
		mbx_init(&m, "report", STD_N, std_sizes, false);
		struct mbox_recovery res;
		assert_int_equal(mbox_recover_report(m.path, &opt, NULL, &res, why, WHY_LEN), 0);
		assert_false(res.journal);   /* no journal: nothing to recover */
		struct mbox *mb = mbx_open(&m);
		const bool del[STD_N] = { true, false, true };   /* two deletions */
		mbx_mark(mb, &m, del);
		struct fault f = { .crash_at = k };
		update_with(mb, &f, why);
		mbox_close(mb);
		crashed = f.calls >= k;
		bool journal = exists(m.jpath);
		assert_int_equal(mbox_recover_report(m.path, &opt, NULL, &res, why, WHY_LEN), 0);
		assert_int_equal(res.journal, crashed && journal);
		/* Counted while the move had not begun; once it has, the count is unknown. */
		if (res.replayed && res.deletions != -1) {
			assert_int_equal(res.deletions, 2);
			replays++;
		}
		mbx_free(&m);
	}
	assert_true(replays > 0);
}

/*
 * Another mailbox at a journal's name (user "alice.pop3d-journal" under
 * /var/mail/%u): it holds mail, so it is no journal of ours. Recovery must
 * neither read it as one nor remove it, nor fail the login over it.
 */
static void test_mail_at_journal_names_never_removed(void **state)
{
	(void)state;
	static const char mail[] = "From bob Mon Jan  1 00:00:00 2024\nSubject: mine\n\nbody\n";
	struct mbx m;
	mbx_init(&m, "collide", STD_N, std_sizes, false);
	size_t len;
	char *orig = mbx_original(&m, &len);
	const char *names[] = { m.jpath, m.tpath };
	for (size_t i = 0; i < 2; i++) {
		struct logtext lt;
		log_collect(&lt);
		test_write_file(names[i], mail, sizeof(mail) - 1);
		char why[WHY_LEN];
		assert_int_equal(recover_why(&m, NULL, why), 0);
		assert_logged_not_told(&lt, "is not a journal of pop3d's", why);
		assert_file(names[i], mail, sizeof(mail) - 1);
		assert_file(m.path, orig, len);
		/* The login goes on: the file is no journal that needs recovery. */
		struct mbox *mb = mbx_open(&m);
		mbox_close(mb);
		unlink(names[i]);
	}
	free(orig);
	mbx_free(&m);
}

/* A side file's name is never recovered as a mailbox (its journal would be another's). */
static void test_side_file_name_not_recovered(void **state)
{
	(void)state;
	struct mbx m;
	struct outcomes o;
	crash_with_journal(&m, &o);   /* a journal, as a user "crash.pop3d-journal" would find it */
	struct mbox_options opt;
	mbox_default_options(&opt);
	opt.lock_timeout = 1;
	char why[WHY_LEN] = "";
	assert_int_equal(mbox_recover(m.jpath, &opt, why, sizeof(why)), -1);
	assert_true(exists(m.jpath));
	assert_true(file_equals(m.path, o.orig, o.orig_len));
	assert_recovers(&m);   /* the victim's own login finishes it */
	assert_true(file_equals(m.path, o.applied, o.applied_len));
	outcomes_free(&o);
	mbx_free(&m);
}

/* A hard-linked mailbox is another file's name too: recovery does not write through it. */
static void test_recovery_refuses_hard_linked_mailbox(void **state)
{
	(void)state;
	struct mbx m;
	struct outcomes o;
	crash_with_journal(&m, &o);
	char other[600];
	snprintf(other, sizeof(other), "%s.other", m.path);
	assert_int_equal(link(m.path, other), 0);
	char why[WHY_LEN];
	assert_int_equal(recover_why(&m, NULL, why), -1);
	assert_true(file_equals(m.path, o.orig, o.orig_len));
	assert_true(exists(m.jpath));
	assert_int_equal(unlink(other), 0);
	assert_recovers(&m);
	assert_true(file_equals(m.path, o.applied, o.applied_len));
	outcomes_free(&o);
	mbx_free(&m);
}

static void test_unwritable_directory(void **state)
{
	(void)state;
	if (geteuid() == 0)
		skip();   /* root writes anywhere */
	struct logtext lt;   /* after skip(): the hook must not outlive this frame */
	log_collect(&lt);
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/ro", test_tmpdir());
	assert_int_equal(mkdir(dir, 0700), 0);
	struct mbx m;
	mbx_init(&m, "ro/mbox", STD_N, std_sizes, false);
	struct mbox *mb = mbx_open(&m);
	const bool del[STD_N] = { true };
	mbx_mark(mb, &m, del);
	assert_int_equal(chmod(dir, 0500), 0);
	char why[WHY_LEN] = "";
	enum mbox_status st = mbox_update(mb, why, sizeof(why));
	assert_int_equal(chmod(dir, 0700), 0);
	mbox_close(mb);
	assert_int_equal(st, MBOX_TEMP);
	assert_logged_not_told(&lt, "cannot create journal", why);
	assert_non_null(strstr(why, strerror(EACCES)));
	size_t len;
	char *orig = mbx_original(&m, &len);
	assert_file(m.path, orig, len);
	assert_no_journal(&m);
	free(orig);
	mbx_free(&m);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delete_none),
		cmocka_unit_test(test_delete_first),
		cmocka_unit_test(test_delete_middle),
		cmocka_unit_test(test_delete_last),
		cmocka_unit_test(test_delete_all),
		cmocka_unit_test(test_delete_every_other),
		cmocka_unit_test(test_pseudo_message_kept),
		cmocka_unit_test(test_mail_appended_after_login_kept),
		cmocka_unit_test(test_delete_all_truncates_without_journal),
		cmocka_unit_test(test_move_uses_journal),
		cmocka_unit_test(test_journal_dir_crash_and_recover),
		cmocka_unit_test(test_journal_found_in_either_place),
		cmocka_unit_test(test_log_line),
		cmocka_unit_test(test_refuse_changed_header_of_deleted),
		cmocka_unit_test(test_refuse_message_removed),
		cmocka_unit_test(test_refuse_truncated),
		cmocka_unit_test(test_refuse_replaced),
		cmocka_unit_test(test_refuse_kept_message_moved),
		cmocka_unit_test(test_crash_at_every_step),
		cmocka_unit_test(test_crash_at_every_step_then_mail),
		cmocka_unit_test(test_crash_during_recovery),
		cmocka_unit_test(test_failure_at_every_step),
		cmocka_unit_test(test_disk_full_while_journaling),
		cmocka_unit_test(test_corrupt_journal_removed),
		cmocka_unit_test(test_journal_not_ours_is_kept),
		cmocka_unit_test(test_journal_without_mailbox_is_kept),
		cmocka_unit_test(test_mailbox_shorter_than_journal_is_kept),
		cmocka_unit_test(test_mailbox_not_matching_journal_is_kept),
		cmocka_unit_test(test_existing_journal_blocks_update),
		cmocka_unit_test(test_recover_without_journal),
		cmocka_unit_test(test_recover_report),
		cmocka_unit_test(test_mail_at_journal_names_never_removed),
		cmocka_unit_test(test_side_file_name_not_recovered),
		cmocka_unit_test(test_recovery_refuses_hard_linked_mailbox),
		cmocka_unit_test(test_unwritable_directory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
