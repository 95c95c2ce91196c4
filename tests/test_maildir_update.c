/*
 * Unit tests for maildir_update.c: a Maildir's deletions at QUIT applied
 * exactly, files that vanished or moved meanwhile, mail delivered during the
 * session untouched, maildirsize, a crash or a failure at every step followed
 * by recovery (all deleted or none, never a deletion recorded twice), and
 * hostile journals refused without removing anything.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"
#include "lock.h"
#include "maildir.h"
#include "mbox.h"
#include "update.h"
#include "testutil.h"
#include "logcapture.h"

#define MAX_MSGS 12
#define WHY_LEN  256
#define MAGIC    "P3DMDJ1\n"   /* the journal format, as the code comment documents it */

/* ---- A Maildir built by the tests, and the struct mbox a scan would give ---- */

struct md {
	char dir[512];                 /* "<tmp>/mdN" (no trailing '/') */
	char path[520];                /* ... with '/': what the session has */
	char jpath[600];               /* its journal */
	char tpath[640];               /* its temporary journal */
	size_t n;
	char rel[MAX_MSGS][128];       /* "new/NAME" or "cur/NAME" as scanned */
	size_t size[MAX_MSGS];
	struct mbox *mb;
};

/* snprintf that must not truncate (the test's buffers are sized for its names). */
static int fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < len);
	return n;
}

static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(p);
}

static void rm_rf(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *md_file(const struct md *m, const char *rel)
{
	static char bufs[4][800];
	static int next;
	char *b = bufs[next++ % 4];
	fmt(b, sizeof(bufs[0]), "%s/%s", m->dir, rel);
	return b;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void write_msg(const char *path, unsigned id, size_t size)
{
	char *p = malloc(size);
	assert_non_null(p);
	int n = snprintf(p, size, "Subject: message %u\n\n", id);
	memset(p + n, 'a' + (char)(id % 26), size - (size_t)n);
	p[size - 1] = '\n';
	test_write_file(path, p, size);
	free(p);
}

/* A Maildir of n messages, the odd ones in cur/ (with flags), scanned into m->mb. */
static void md_make(struct md *m, const char *name, size_t n)
{
	memset(m, 0, sizeof(*m));
	fmt(m->dir, sizeof(m->dir), "%s", test_path(name));
	fmt(m->path, sizeof(m->path), "%s/", m->dir);
	fmt(m->jpath, sizeof(m->jpath), "%s/.pop3d-journal", m->dir);
	fmt(m->tpath, sizeof(m->tpath), "%s.new", m->jpath);
	rm_rf(m->dir);
	assert_int_equal(mkdir(m->dir, 0700), 0);
	for (int s = 0; s < 3; s++)
		assert_int_equal(mkdir(md_file(m, (const char *[]){"new", "cur", "tmp"}[s]), 0700), 0);
	m->n = n;
	for (size_t i = 0; i < n; i++) {
		m->size[i] = 100 + 37 * i;
		if (i % 2)
			fmt(m->rel[i], sizeof(m->rel[i]), "cur/17000000%02zu.M%zuP42.host,S=%zu:2,S",
				 i, i, m->size[i]);
		else
			fmt(m->rel[i], sizeof(m->rel[i]), "new/17000000%02zu.M%zuP42.host,S=%zu",
				 i, i, m->size[i]);
		write_msg(md_file(m, m->rel[i]), (unsigned)i, m->size[i]);
	}
}

/* What maildir_open() would give: the struct mbox of a Maildir (maildir.h). */
static void md_scan(struct md *m)
{
	struct mbox *mb = mbox_alloc(NULL);
	assert_non_null(mb);
	mb->path = strdup(m->path);
	struct maildir *d = calloc(1, sizeof(*d));
	assert_true(mb->path && d);
	d->dirfd = open(m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d->dirfd >= 0);
	d->msg_fd = -1;
	d->names_cap = MAX_MSGS * 128;
	d->names = malloc(d->names_cap);
	mb->msgs = calloc(MAX_MSGS, sizeof(*mb->msgs));
	assert_true(d->names && mb->msgs);
	for (size_t i = 0; i < m->n; i++) {
		mb->msgs[i].start = (off_t)d->names_len;
		mb->msgs[i].end = (off_t)m->size[i];
		mb->msgs[i].size = (int64_t)m->size[i];
		memcpy(d->names + d->names_len, m->rel[i], strlen(m->rel[i]) + 1);
		d->names_len += strlen(m->rel[i]) + 1;
	}
	mb->nmsgs = m->n;
	mb->maildir = d;
	m->mb = mb;
}

static void md_close(struct md *m)
{
	mbox_close(m->mb);
	m->mb = NULL;
}

/* Mark messages deleted (0-based indices, ending with -1). */
static size_t md_dele(struct md *m, ...)
{
	va_list ap;
	va_start(ap, m);
	size_t n = 0;
	for (int i; (i = va_arg(ap, int)) >= 0; n++)
		m->mb->msgs[i].deleted = true;
	va_end(ap);
	return n;
}

static bool is_dele(const bool *dele, size_t i)
{
	return dele && dele[i];
}

/* Is scanned message i still there (by base name, in new/ or cur/)? */
static bool base_present(const struct md *m, size_t i)
{
	const char *rel = m->rel[i] + 4;
	size_t blen = strcspn(rel, ":");
	for (int s = 0; s < 2; s++) {
		char sub[800];
		fmt(sub, sizeof(sub), "%s/%s", m->dir, s ? "cur" : "new");
		DIR *d = opendir(sub);
		assert_non_null(d);
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (strncmp(de->d_name, rel, blen) == 0 &&
			    (de->d_name[blen] == '\0' || de->d_name[blen] == ':')) {
				closedir(d);
				return true;
			}
		closedir(d);
	}
	return false;
}

/* "all": every deleted message gone and every kept one there; "none": all there. */
enum outcome { NONE_DELETED, ALL_DELETED, MIXED };

static enum outcome md_outcome(const struct md *m, const bool *dele)
{
	size_t gone = 0, ndel = 0;
	for (size_t i = 0; i < m->n; i++) {
		bool there = base_present(m, i);
		if (!is_dele(dele, i) && !there)
			return MIXED;   /* a kept message lost */
		if (is_dele(dele, i)) {
			ndel++;
			gone += !there;
		}
	}
	return gone == 0 ? NONE_DELETED : gone == ndel ? ALL_DELETED : MIXED;
}

/* The maildirsize records after the first line: their count and octet sums. */
static void quota_records(const struct md *m, long *lines, long *octets, long *count)
{
	size_t len;
	char *s = test_read_file(md_file(m, "maildirsize"), &len);
	*lines = *octets = *count = 0;
	assert_non_null(s);
	char *save, *line = strtok_r(s, "\n", &save);   /* the quota definition */
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		long o, c;
		assert_int_equal(sscanf(line, "%ld %ld", &o, &c), 2);
		if (o < 0) {
			(*lines)++;
			*octets += -o;
			*count += -c;
		}
	}
	free(s);
}

#define QUOTA_HEAD "1000000S,100C\n4242 7\n"

static void add_maildirsize(const struct md *m)
{
	test_write_file(md_file(m, "maildirsize"), QUOTA_HEAD, strlen(QUOTA_HEAD));
	chmod(md_file(m, "maildirsize"), 0600);
}

/* ---- Fault hooks ---- */

struct fault {
	int at;          /* the step to act at, 0: none */
	int ret;         /* what the hook returns there */
	int steps;       /* steps seen */
	char name[48];   /* the name of step `at` */
};

static int fault_hook(void *ctx, int step, const char *what)
{
	struct fault *f = ctx;
	f->steps = step;
	if (step != f->at)
		return 0;
	fmt(f->name, sizeof(f->name), "%s", what);
	return f->ret;
}

static enum mbox_status update_with(struct md *m, struct fault *f)
{
	char why[WHY_LEN];
	struct update_hooks h = {.fault = fault_hook, .ctx = f};
	return mbox_update_hooked(m->mb, f ? &h : NULL, why, sizeof(why));
}

static int recover_with(struct md *m, struct fault *f, struct mbox_recovery *res)
{
	char why[WHY_LEN];
	struct update_hooks h = {.fault = fault_hook, .ctx = f};
	struct mbox_options opt;
	mbox_default_options(&opt);
	/* As pop3d --recover gives it: no trailing '/' (a directory with cur/ new/ tmp/). */
	return mbox_recover_report(m->dir, &opt, f ? &h : NULL, res, why, sizeof(why));
}

/* ---- The update ---- */

static void test_removes_exactly_the_deleted(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "exact", 7);
	md_scan(&m);
	md_dele(&m, 0, 3, 4, -1);
	assert_int_equal(update_with(&m, NULL), MBOX_OK);
	for (size_t i = 0; i < m.n; i++)
		assert_int_equal(exists(md_file(&m, m.rel[i])), !(i == 0 || i == 3 || i == 4));
	assert_false(exists(m.jpath));
	assert_false(exists(m.tpath));
	assert_false(exists(md_file(&m, "maildirsize")));   /* never created */
	/* The session's list is the Maildir as it now is. */
	assert_int_equal(m.mb->nmsgs, 4);
	assert_string_equal(maildir_msg_path(m.mb, 0), m.rel[1]);
	assert_string_equal(maildir_msg_path(m.mb, 3), m.rel[6]);
	for (size_t i = 0; i < m.mb->nmsgs; i++)
		assert_false(m.mb->msgs[i].deleted);
	assert_non_null(strstr(logged, "3 files removed"));
	md_close(&m);
}

static void test_nothing_deleted_writes_nothing(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "none", 3);
	md_scan(&m);
	struct fault f = {0};
	assert_int_equal(update_with(&m, &f), MBOX_OK);
	assert_int_equal(f.steps, 0);
	assert_int_equal(md_outcome(&m, NULL), NONE_DELETED);
	assert_int_equal(m.mb->nmsgs, 3);
	md_close(&m);
}

static void test_vanished_files_are_no_error(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "vanished", 5);
	md_scan(&m);
	md_dele(&m, 1, 2, 3, -1);
	add_maildirsize(&m);
	/* Another client removed two of them meanwhile. */
	assert_int_equal(unlink(md_file(&m, m.rel[1])), 0);
	assert_int_equal(unlink(md_file(&m, m.rel[2])), 0);
	assert_int_equal(update_with(&m, NULL), MBOX_OK);
	bool dele[MAX_MSGS] = {[1] = true, [2] = true, [3] = true};
	assert_int_equal(md_outcome(&m, dele), ALL_DELETED);
	long lines, octets, count;
	quota_records(&m, &lines, &octets, &count);
	/* Only the one this update removed is recorded: the others' remover records them. */
	assert_int_equal(lines, 1);
	assert_int_equal(count, 1);
	assert_int_equal(octets, (long)m.size[3]);
	assert_int_equal(m.mb->nmsgs, 2);
	md_close(&m);
}

static void test_moved_and_flag_changed_files(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "moved", 6);
	md_scan(&m);
	md_dele(&m, 0, 1, 2, -1);
	/* An IMAP server moved message 0 from new/ to cur/ and changed message 1's flags ... */
	const char *b0 = m.rel[0] + 4, *b1 = m.rel[1] + 4;
	char to0[300], to1[300];
	fmt(to0, sizeof(to0), "cur/%s:2,S", b0);
	fmt(to1, sizeof(to1), "cur/%.*s:2,RS", (int)strcspn(b1, ":"), b1);
	assert_int_equal(rename(md_file(&m, m.rel[0]), md_file(&m, to0)), 0);
	assert_int_equal(rename(md_file(&m, m.rel[1]), md_file(&m, to1)), 0);
	/* ... and moved kept message 4; a file whose name only begins like message 2's is another. */
	char to4[300], alike[300];
	fmt(to4, sizeof(to4), "cur/%s:2,S", m.rel[4] + 4);
	assert_int_equal(rename(md_file(&m, m.rel[4]), md_file(&m, to4)), 0);
	fmt(alike, sizeof(alike), "new/%sX", m.rel[2] + 4);
	write_msg(md_file(&m, alike), 99, 200);
	add_maildirsize(&m);
	assert_int_equal(update_with(&m, NULL), MBOX_OK);
	assert_false(exists(md_file(&m, to0)));
	assert_false(exists(md_file(&m, to1)));
	assert_false(exists(md_file(&m, m.rel[2])));
	assert_true(exists(md_file(&m, to4)));      /* kept messages never touched */
	assert_true(exists(md_file(&m, alike)));
	assert_true(exists(md_file(&m, m.rel[3])));
	assert_true(exists(md_file(&m, m.rel[5])));
	long lines, octets, count;
	quota_records(&m, &lines, &octets, &count);
	assert_int_equal(lines, 1);
	assert_int_equal(count, 3);
	assert_int_equal(octets, (long)(m.size[0] + m.size[1] + m.size[2]));
	assert_non_null(strstr(logged, "was moved there by another program"));
	md_close(&m);
}

static void test_mail_delivered_during_session_untouched(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "delivered", 4);
	md_scan(&m);
	md_dele(&m, 0, 1, 2, 3, -1);
	/* Delivered after the scan, one under a name close to a deleted one's. */
	write_msg(md_file(&m, "new/1800000000.M1P9.host"), 1, 300);
	write_msg(md_file(&m, "cur/1800000001.M2P9.host:2,"), 2, 300);
	char near[300];
	fmt(near, sizeof(near), "new/%.*s.x", (int)strcspn(m.rel[0] + 4, ","), m.rel[0] + 4);
	write_msg(md_file(&m, near), 3, 300);
	write_msg(md_file(&m, "tmp/1800000002.M3P9.host"), 4, 300);
	assert_int_equal(update_with(&m, NULL), MBOX_OK);
	assert_true(exists(md_file(&m, "new/1800000000.M1P9.host")));
	assert_true(exists(md_file(&m, "cur/1800000001.M2P9.host:2,")));
	assert_true(exists(md_file(&m, near)));
	assert_true(exists(md_file(&m, "tmp/1800000002.M3P9.host")));
	bool dele[MAX_MSGS] = {true, true, true, true};
	assert_int_equal(md_outcome(&m, dele), ALL_DELETED);
	assert_int_equal(m.mb->nmsgs, 0);
	md_close(&m);
}

static void test_maildirsize_line(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "quota", 5);
	md_scan(&m);
	md_dele(&m, 1, 4, -1);
	add_maildirsize(&m);
	assert_int_equal(update_with(&m, NULL), MBOX_OK);
	size_t len;
	char *s = test_read_file(md_file(&m, "maildirsize"), &len);
	char want[128];
	fmt(want, sizeof(want), "%s-%zu -2\n", QUOTA_HEAD, m.size[1] + m.size[4]);
	assert_string_equal(s, want);   /* Maildir++: one line, negative octets and count */
	free(s);
	md_close(&m);
}

static void test_maildirsize_link_not_followed(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "quotalink", 3);
	md_scan(&m);
	md_dele(&m, 0, -1);
	const char *target = test_path("quotalink-target");
	test_write_file(target, QUOTA_HEAD, strlen(QUOTA_HEAD));
	assert_int_equal(symlink("../quotalink-target", md_file(&m, "maildirsize")), 0);
	assert_int_equal(update_with(&m, NULL), MBOX_OK);
	size_t len;
	char *s = test_read_file(target, &len);
	assert_string_equal(s, QUOTA_HEAD);
	free(s);
	assert_non_null(strstr(logged, "not recorded in maildirsize"));
	md_close(&m);
}

/* ---- A crash or a failure at every step, then recovery ---- */

/* The deleted messages of the crash tests: 4 of 7, in new/ and cur/. */
static const bool crash_dele[MAX_MSGS] = {[0] = true, [1] = true, [4] = true, [5] = true};
static const int crash_order[] = {0, 1, 4, 5};
#define CRASH_NDEL 4

static void crash_setup(struct md *m, const char *name)
{
	md_make(m, name, 7);
	md_scan(m);
	md_dele(m, 0, 1, 4, 5, -1);
	add_maildirsize(m);
}

/* Octets of the deleted messages after the first `from` (in journal order). */
static long octets_after(const struct md *m, int from)
{
	long o = 0;
	for (int k = from; k < CRASH_NDEL; k++)
		o += (long)m->size[crash_order[k]];
	return o;
}

/*
 * What maildirsize must record, all passes together, when the update stopped
 * at step `name` and recovery finished it: every deletion once, except those
 * a pass removed before stopping ahead of its own line (documented).
 */
static void expect_records(const struct md *m, const char *name, enum outcome out)
{
	long lines, octets, count, want;
	quota_records(m, &lines, &octets, &count);
	int j;
	if (out == NONE_DELETED)
		want = 0;
	else if (sscanf(name, "unlinked-%d", &j) == 1)
		want = CRASH_NDEL - j;
	else if (strcmp(name, "dirs-synced") == 0)
		want = 0;
	else
		want = CRASH_NDEL;
	assert_int_equal(count, want);
	assert_int_equal(lines, want > 0);
	assert_int_equal(octets, want ? octets_after(m, CRASH_NDEL - (int)want) : 0);
}

static bool before_commit(const char *name)
{
	return strcmp(name, "journal-written") == 0 || strcmp(name, "journal-synced") == 0;
}

static void test_crash_at_every_step(void **state)
{
	(void)state;
	int at;
	for (at = 1;; at++) {
		struct md m;
		crash_setup(&m, "crash");
		struct fault f = {.at = at, .ret = 1};
		enum mbox_status st = update_with(&m, &f);
		if (f.steps < at) {   /* ran to the end: every step was tried */
			assert_int_equal(st, MBOX_OK);
			md_close(&m);
			break;
		}
		assert_int_equal(st, MBOX_TEMP);
		assert_int_equal(m.mb->nmsgs, 7);   /* the session's list unchanged */
		md_close(&m);
		/* A torn journal before the commit, the journal after it. */
		assert_int_equal(exists(m.tpath), before_commit(f.name));
		struct mbox_recovery res;
		assert_int_equal(recover_with(&m, NULL, &res), 0);
		assert_false(exists(m.jpath));
		assert_false(exists(m.tpath));
		enum outcome out = md_outcome(&m, crash_dele);
		assert_int_equal(out, before_commit(f.name) ? NONE_DELETED : ALL_DELETED);
		expect_records(&m, f.name, out);
		/* What --recover tells: a journal (or a torn one) but after its removal; what it removed. */
		bool left = strcmp(f.name, "journal-removed") != 0 && strcmp(f.name, "dir-synced") != 0;
		long redone = 0;
		int j;
		if (strcmp(f.name, "journal-renamed") == 0 || strcmp(f.name, "journal-dir-synced") == 0)
			redone = CRASH_NDEL;
		else if (sscanf(f.name, "unlinked-%d", &j) == 1)
			redone = CRASH_NDEL - j;
		assert_int_equal(res.journal, left);
		assert_int_equal(res.replayed, redone > 0);
		assert_int_equal(res.deletions, !left || before_commit(f.name) ? -1 : redone);
		/* Recovery again: nothing more to do, nothing recorded twice. */
		assert_int_equal(recover_with(&m, NULL, &res), 0);
		assert_false(res.journal);
		expect_records(&m, f.name, out);
	}
	/* journal written, synced, renamed, dir synced; 4 unlinks; dirs; maildirsize x2; removal x2 */
	assert_int_equal(at, 4 + CRASH_NDEL + 5 + 1);
}

/*
 * Where the rename fell back to link + unlink (NFS, FUSE), a crash between
 * the two leaves the journal under both names (one file, two links): the
 * recovery still finishes it, and leaves neither name.
 */
static void test_journal_under_two_names(void **state)
{
	(void)state;
	int at;
	for (at = 1;; at++) {   /* the step just after the journal is in place */
		struct md probe;
		crash_setup(&probe, "twonames-probe");
		struct fault f = {.at = at, .ret = 1};
		update_with(&probe, &f);
		md_close(&probe);
		assert_true(f.steps >= at);
		if (strcmp(f.name, "journal-renamed") == 0)
			break;
	}
	struct md m;
	crash_setup(&m, "twonames");
	struct fault f = {.at = at, .ret = 1};
	assert_int_equal(update_with(&m, &f), MBOX_TEMP);
	md_close(&m);
	assert_int_equal(link(m.jpath, m.tpath), 0);
	struct mbox_recovery res;
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_true(res.journal);
	assert_int_equal(res.deletions, CRASH_NDEL);
	assert_false(exists(m.jpath));
	assert_false(exists(m.tpath));
	assert_int_equal(md_outcome(&m, crash_dele), ALL_DELETED);
}

static void test_failure_at_every_step(void **state)
{
	(void)state;
	int at;
	for (at = 1;; at++) {
		struct md m;
		crash_setup(&m, "fail");
		struct fault f = {.at = at, .ret = -EIO};
		enum mbox_status st = update_with(&m, &f);
		if (f.steps < at) {
			assert_int_equal(st, MBOX_OK);
			md_close(&m);
			break;
		}
		bool quota = strncmp(f.name, "maildirsize-", 12) == 0;
		/* maildirsize is a cache: failing to record in it does not fail the update. */
		assert_int_equal(st, quota ? MBOX_OK : MBOX_TEMP);
		assert_int_equal(m.mb->nmsgs, quota ? 3 : 7);
		md_close(&m);
		bool nothing_yet = before_commit(f.name) || strcmp(f.name, "journal-renamed") == 0 ||
				   strcmp(f.name, "journal-dir-synced") == 0;
		/* Before the first unlink the update backs out completely by itself. */
		if (nothing_yet) {
			assert_false(exists(m.jpath));
			assert_false(exists(m.tpath));
			assert_int_equal(md_outcome(&m, crash_dele), NONE_DELETED);
		}
		assert_non_null(strstr(logged, "injected failure"));
		assert_int_equal(recover_with(&m, NULL, NULL), 0);
		assert_false(exists(m.jpath));
		enum outcome out = md_outcome(&m, crash_dele);
		assert_int_equal(out, nothing_yet ? NONE_DELETED : ALL_DELETED);
		expect_records(&m, f.name, out);
		logged[0] = '\0';
	}
	assert_int_equal(at, 4 + CRASH_NDEL + 5 + 1);
}

/* The client's reason says what failed, never a path; the log says where. */
static void test_disk_full_reason(void **state)
{
	(void)state;
	struct md m;
	crash_setup(&m, "diskfull");
	struct fault f = {.at = 1, .ret = -ENOSPC};   /* writing the journal */
	struct update_hooks h = {.fault = fault_hook, .ctx = &f};
	char why[WHY_LEN];
	assert_int_equal(mbox_update_hooked(m.mb, &h, why, sizeof(why)), MBOX_TEMP);
	md_close(&m);
	assert_non_null(strstr(why, "disk full"));
	assert_null(strstr(why, m.dir));
	assert_non_null(strstr(logged, m.dir));
	assert_false(exists(m.tpath));
	assert_false(exists(m.jpath));
	assert_int_equal(md_outcome(&m, crash_dele), NONE_DELETED);
}

static void test_crash_during_recovery(void **state)
{
	(void)state;
	for (int at = 1;; at++) {
		struct md m;
		crash_setup(&m, "crashrec");
		struct fault f = {.at = 6, .ret = 1};   /* the update dies after its 2nd unlink */
		assert_int_equal(update_with(&m, &f), MBOX_TEMP);
		assert_string_equal(f.name, "unlinked-2");
		md_close(&m);
		/* The next login's recovery dies too, at step `at` ... */
		struct fault g = {.at = at, .ret = 1};
		int rc = recover_with(&m, &g, NULL);
		bool done = g.steps < at;
		assert_int_equal(rc, done ? 0 : -1);
		/* ... and the one after finishes. */
		assert_int_equal(recover_with(&m, NULL, NULL), 0);
		assert_false(exists(m.jpath));
		assert_int_equal(md_outcome(&m, crash_dele), ALL_DELETED);
		long lines, octets, count;
		quota_records(&m, &lines, &octets, &count);
		assert_true(count <= CRASH_NDEL - 2);   /* never recorded twice */
		assert_true(lines <= 1);
		assert_int_equal(octets, octets_after(&m, CRASH_NDEL - (int)count));   /* the last ones */
		if (done)
			break;
	}
}

static void test_crash_with_moved_files(void **state)
{
	(void)state;
	for (int at = 1;; at++) {
		struct md m;
		crash_setup(&m, "crashmoved");
		/* Message 0 moved to cur/ and message 5's flags changed before QUIT. */
		char to0[300], to5[300];
		fmt(to0, sizeof(to0), "cur/%s:2,S", m.rel[0] + 4);
		fmt(to5, sizeof(to5), "cur/%.*s:2,RS", (int)strcspn(m.rel[5] + 4, ":"), m.rel[5] + 4);
		assert_int_equal(rename(md_file(&m, m.rel[0]), md_file(&m, to0)), 0);
		assert_int_equal(rename(md_file(&m, m.rel[5]), md_file(&m, to5)), 0);
		struct fault f = {.at = at, .ret = 1};
		enum mbox_status st = update_with(&m, &f);
		bool done = f.steps < at;
		md_close(&m);
		assert_int_equal(st, done ? MBOX_OK : MBOX_TEMP);
		if (!done) {
			assert_int_equal(recover_with(&m, NULL, NULL), 0);
			assert_int_equal(md_outcome(&m, crash_dele),
					 before_commit(f.name) ? NONE_DELETED : ALL_DELETED);
		} else {
			assert_int_equal(md_outcome(&m, crash_dele), ALL_DELETED);
		}
		assert_false(exists(m.jpath));
		long lines, octets, count;
		quota_records(&m, &lines, &octets, &count);
		assert_true(count <= CRASH_NDEL);
		assert_true(lines <= 1);
		if (done)
			break;
	}
}

/* ---- The journal ---- */

static uint64_t fnv(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

static void test_journal_format(void **state)
{
	(void)state;
	struct md m;
	crash_setup(&m, "format");
	struct fault f = {.at = 4, .ret = 1};   /* journal-dir-synced: complete, nothing removed */
	assert_int_equal(update_with(&m, &f), MBOX_TEMP);
	assert_string_equal(f.name, "journal-dir-synced");
	md_close(&m);
	size_t len;
	char *j = test_read_file(m.jpath, &len);
	assert_non_null(j);
	char want[2048];
	int n = fmt(want, sizeof(want), MAGIC "4\n%s\n%s\n%s\n%s\n", m.rel[0], m.rel[1],
			 m.rel[4], m.rel[5]);
	fmt(want + n, sizeof(want) - (size_t)n, "%016" PRIx64 "\n", fnv(want, (size_t)n));
	assert_string_equal(j, want);
	free(j);
	struct stat st;
	assert_int_equal(stat(m.jpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(md_outcome(&m, crash_dele), NONE_DELETED);
}

/* A journal of the given lines, with a right checksum, or a wrong one. */
static void write_journal(const char *path, const char *const *lines, size_t n, bool good_sum)
{
	char buf[4096];
	int len = fmt(buf, sizeof(buf), MAGIC "%zu\n", n);
	for (size_t i = 0; i < n; i++)
		len += fmt(buf + len, sizeof(buf) - (size_t)len, "%s\n", lines[i]);
	uint64_t sum = fnv(buf, (size_t)len) ^ (good_sum ? 0 : 1);
	len += fmt(buf + len, sizeof(buf) - (size_t)len, "%016" PRIx64 "\n", sum);
	test_write_file(path, buf, (size_t)len);
	chmod(path, 0600);
}

static void test_recover_complete_journal(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "replay", 4);
	add_maildirsize(&m);
	/* A complete journal; one file moved to cur/ since, one already gone. */
	const char *lines[] = {m.rel[0], m.rel[1], m.rel[2]};
	write_journal(m.jpath, lines, 3, true);
	char to0[300];
	fmt(to0, sizeof(to0), "cur/%s:2,S", m.rel[0] + 4);
	assert_int_equal(rename(md_file(&m, m.rel[0]), md_file(&m, to0)), 0);
	assert_int_equal(unlink(md_file(&m, m.rel[2])), 0);
	struct mbox_recovery res;
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_true(res.journal);
	assert_true(res.replayed);
	assert_int_equal(res.deletions, 2);
	bool dele[MAX_MSGS] = {true, true, true};
	assert_int_equal(md_outcome(&m, dele), ALL_DELETED);
	assert_false(exists(m.jpath));
	long lines_n, octets, count;
	quota_records(&m, &lines_n, &octets, &count);
	assert_int_equal(count, 2);
	assert_int_equal(octets, (long)(m.size[0] + m.size[1]));
	assert_non_null(strstr(logged, "interrupted update completed"));
}

static void test_recover_nothing(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "recnothing", 2);
	struct mbox_recovery res;
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_false(res.journal);
	assert_int_equal(md_outcome(&m, NULL), NONE_DELETED);
	/* A Maildir that does not exist: nothing to do. */
	char why[WHY_LEN];
	assert_int_equal(maildir_recover(test_path("no-such-maildir/"), LOCK_DEFAULT, NULL, &res, why, sizeof(why)), 0);
	assert_false(res.journal);
}

/*
 * A login refused [IN-USE] recovers before it finds the Maildir in use: the
 * live session's journal, being written (not yet locked), must not be taken
 * for a torn one and removed under it. Recovery waits for the session lock.
 */
static void test_recovery_leaves_a_live_session_alone(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "livesession", 3);
	struct mbox_options opt;
	mbox_default_options(&opt);
	struct mbox *live;   /* the session, holding the Maildir */
	char why[WHY_LEN];
	assert_int_equal(mbox_open(&live, m.path, &opt, why, sizeof(why)), MBOX_OK);
	write_journal(m.tpath, NULL, 0, false);   /* an update's journal, just created */
	struct mbox_recovery res;
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_false(res.journal);
	assert_true(exists(m.tpath));
	assert_int_equal(unlink(m.tpath), 0);
	mbox_msg(live, 2)->deleted = true;
	assert_int_equal(mbox_update(live, why, sizeof(why)), MBOX_OK);   /* its QUIT succeeds */
	assert_int_equal(mbox_count(live), 2);
	mbox_close(live);
	/* Once the session is gone, a torn journal is recovery's. */
	write_journal(m.tpath, NULL, 0, false);
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_false(exists(m.tpath));
}

static void test_torn_journal_removed(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "torn", 3);
	/* Under the temporary name: zeros (a power cut), a prefix, or even complete. */
	static const char zeros[32];
	const char *lines[] = {m.rel[0], m.rel[1]};
	for (int kind = 0; kind < 3; kind++) {
		if (kind == 0)
			test_write_file(m.tpath, zeros, sizeof(zeros));
		else if (kind == 1)
			test_write_file(m.tpath, MAGIC "2\nnew/", strlen(MAGIC) + 7);
		else
			write_journal(m.tpath, lines, 2, true);
		chmod(m.tpath, 0600);
		struct mbox_recovery res;
		assert_int_equal(recover_with(&m, NULL, &res), 0);
		assert_false(exists(m.tpath));
		assert_false(res.replayed);
		assert_int_equal(md_outcome(&m, NULL), NONE_DELETED);
	}
	assert_non_null(strstr(logged, "torn journal"));
}

static void test_pending_journal_blocks_update(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "pending", 3);
	md_scan(&m);
	md_dele(&m, 0, -1);
	const char *lines[] = {m.rel[1]};
	write_journal(m.jpath, lines, 1, true);
	assert_int_equal(update_with(&m, NULL), MBOX_TEMP);
	md_close(&m);
	assert_int_equal(md_outcome(&m, NULL), NONE_DELETED);
	assert_false(exists(m.tpath));
	assert_true(exists(m.jpath));   /* never replaced: only it can finish its update */
	assert_non_null(strstr(logged, "needs recovery"));
}

/* Every file of the Maildir, and one beside it, still there. */
static void assert_untouched(const struct md *m, const char *victim)
{
	assert_int_equal(md_outcome(m, NULL), NONE_DELETED);
	assert_true(exists(victim));
}

static void test_hostile_journals_refused(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "hostile", 3);
	const char *victim = test_path("victim");
	write_msg(victim, 7, 100);
	assert_int_equal(mkdir(md_file(&m, "new/sub"), 0700), 0);
	write_msg(md_file(&m, "new/sub/x"), 8, 100);
	write_msg(md_file(&m, "tmp/1700000000.M1P1.host"), 9, 100);
	write_msg(md_file(&m, "new/.hidden"), 10, 100);
	const char *bad[] = {
		"new/../../victim", "../victim", "cur/../../victim", "new/..", "new/.",
		"/etc/passwd", "new//etc/passwd", "new/sub/x", "tmp/1700000000.M1P1.host",
		"new/.hidden", "new/", "cur", "", "NEW/x", "new/a\tb", "new/a\rb",
		"maildirsize", ".pop3d-journal",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* A real message first: refused as a whole, before anything is removed. */
		const char *lines[] = {m.rel[0], bad[i], m.rel[1]};
		write_journal(m.jpath, lines, 3, true);
		struct mbox_recovery res;
		assert_int_equal(recover_with(&m, NULL, &res), -1);
		assert_true(exists(m.jpath));   /* kept for whoever looks at it */
		assert_untouched(&m, victim);
		assert_true(exists(md_file(&m, "new/sub/x")));
		assert_true(exists(md_file(&m, "tmp/1700000000.M1P1.host")));
		assert_true(exists(md_file(&m, "new/.hidden")));
	}
	assert_non_null(strstr(logged, "refused, nothing removed"));
	/* Garbage after our magic, a wrong count, a wrong checksum, octets after it. */
	const char *lines[] = {m.rel[0]};
	const char *garbage[] = {
		MAGIC "\x01\x02\xff\n", MAGIC "2\n", MAGIC "x\n", MAGIC "01\nnew/a\n",
		MAGIC "-1\n", MAGIC "99999999\n",
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		test_write_file(m.jpath, garbage[i], strlen(garbage[i]));
		assert_int_equal(recover_with(&m, NULL, NULL), -1);
		assert_untouched(&m, victim);
	}
	write_journal(m.jpath, lines, 1, false);
	assert_int_equal(recover_with(&m, NULL, NULL), -1);
	assert_untouched(&m, victim);
	/* A NUL inside a line, which would cut the name short: message 0's name, then junk. */
	char raw[512];
	int n = fmt(raw, sizeof(raw), MAGIC "1\n%s", m.rel[0]);
	memcpy(raw + n, "\0x\n", 3);
	n += 3;
	n += fmt(raw + n, sizeof(raw) - (size_t)n, "%016" PRIx64 "\n", fnv(raw, (size_t)n));
	test_write_file(m.jpath, raw, (size_t)n);
	assert_int_equal(recover_with(&m, NULL, NULL), -1);
	assert_untouched(&m, victim);
	write_journal(m.jpath, lines, 1, true);
	test_append_file(m.jpath, "new/x\n", 6);
	assert_int_equal(recover_with(&m, NULL, NULL), -1);
	assert_untouched(&m, victim);
	write_journal(m.jpath, lines, 1, true);
	test_append_file(m.jpath, "x", 1);   /* no LF */
	assert_int_equal(recover_with(&m, NULL, NULL), -1);
	assert_untouched(&m, victim);
	assert_int_equal(unlink(m.jpath), 0);
}

static void test_foreign_journals_left_alone(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "foreign", 3);
	const char *lines[] = {m.rel[0], m.rel[1]};
	/* Not in our format (an mbox journal's magic, text): not ours, left alone. */
	test_write_file(m.jpath, "P3DJRNL\nwhatever", 16);
	struct mbox_recovery res;
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_false(res.journal);
	assert_true(exists(m.jpath));
	assert_int_equal(md_outcome(&m, NULL), NONE_DELETED);
	/* A second name (a hard link someone made), a symbolic link, a FIFO. */
	write_journal(m.jpath, lines, 2, true);
	const char *other = test_path("foreign-link");
	unlink(other);
	assert_int_equal(link(m.jpath, other), 0);
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_true(exists(m.jpath));
	assert_int_equal(md_outcome(&m, NULL), NONE_DELETED);
	assert_int_equal(unlink(m.jpath), 0);
	assert_int_equal(symlink("../foreign-link", m.jpath), 0);
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_int_equal(md_outcome(&m, NULL), NONE_DELETED);
	assert_int_equal(unlink(m.jpath), 0);
	assert_int_equal(mkfifo(m.jpath, 0600), 0);
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	assert_int_equal(unlink(m.jpath), 0);
	/* Another owner's file, complete and valid: never trusted. */
	if (geteuid() == 0) {
		write_journal(m.jpath, lines, 2, true);
		assert_int_equal(chown(m.jpath, 4242, 4242), 0);
		assert_int_equal(recover_with(&m, NULL, &res), 0);
		assert_false(res.journal);
		assert_true(exists(m.jpath));
		assert_int_equal(md_outcome(&m, NULL), NONE_DELETED);
		/* The same under the temporary name: not removed either. */
		assert_int_equal(rename(m.jpath, m.tpath), 0);
		assert_int_equal(recover_with(&m, NULL, &res), 0);
		assert_true(exists(m.tpath));
	}
	assert_non_null(strstr(logged, "is not a journal of pop3d's"));
}

/* A recovery waits for an update in progress in another process (its journal locked). */
static void test_recovery_waits_for_update(void **state)
{
	(void)state;
	struct md m;
	md_make(&m, "waits", 3);
	const char *lines[] = {m.rel[0]};
	write_journal(m.jpath, lines, 1, true);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(m.jpath, O_RDWR);
		if (fd < 0 || flock(fd, LOCK_EX) < 0 || write(p[1], "x", 1) != 1)
			_exit(1);
		struct timespec t = {0, 300 * 1000 * 1000};
		nanosleep(&t, NULL);
		/* The update in progress finishes: the file goes, then the journal. */
		unlink(md_file(&m, m.rel[0]));
		unlink(m.jpath);
		_exit(0);
	}
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct mbox_recovery res;
	assert_int_equal(recover_with(&m, NULL, &res), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_false(res.journal);   /* it was the update's to finish */
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(waited >= 0.2);
	assert_true(exists(md_file(&m, m.rel[1])));
	close(p[0]);
	close(p[1]);
}

int main(void)
{
#define CASE(t) cmocka_unit_test_setup_teardown(t, logcapture_setup, logcapture_teardown)
	const struct CMUnitTest tests[] = {
		CASE(test_removes_exactly_the_deleted),
		CASE(test_nothing_deleted_writes_nothing),
		CASE(test_vanished_files_are_no_error),
		CASE(test_moved_and_flag_changed_files),
		CASE(test_mail_delivered_during_session_untouched),
		CASE(test_maildirsize_line),
		CASE(test_maildirsize_link_not_followed),
		CASE(test_crash_at_every_step),
		CASE(test_journal_under_two_names),
		CASE(test_recovery_leaves_a_live_session_alone),
		CASE(test_failure_at_every_step),
		CASE(test_disk_full_reason),
		CASE(test_crash_during_recovery),
		CASE(test_crash_with_moved_files),
		CASE(test_journal_format),
		CASE(test_recover_complete_journal),
		CASE(test_recover_nothing),
		CASE(test_torn_journal_removed),
		CASE(test_pending_journal_blocks_update),
		CASE(test_hostile_journals_refused),
		CASE(test_foreign_journals_left_alone),
		CASE(test_recovery_waits_for_update),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
