/*
 * Unit tests for the Debian spool (issue 20): spool_access_decide, the one
 * function that says who may create files beside a mailbox, and the
 * dotlocker's protocol, driven directly through dotlocker_serve (in a child
 * of the test, without its sandbox) and through lock.c's routing.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dotlocker.h"
#include "limits.h"
#include "lock.h"
#include "log.h"
#include "testutil.h"

/* ---- the decision ---- */

#define SPOOL_UID 0
#define MAIL_GID 8
#define USER_UID 1000
#define USER_GID 1000

static struct spool_access decide(mode_t mode, uid_t owner, gid_t group, uid_t uid, gid_t gid,
				  const gid_t *groups, size_t n)
{
	struct stat st;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR | mode;
	st.st_uid = owner;
	st.st_gid = group;
	struct account_creds who = {.uid = uid, .gid = gid, .groups = groups, .ngroups = n};
	struct spool_access sa;
	spool_access_decide(&st, &who, &sa);
	return sa;
}

/* Debian's /var/mail: root:mail 2775, an account not in group mail: only mail may write. */
static void test_debian_spool_is_group_mail(void **state)
{
	(void)state;
	struct spool_access sa = decide(02775, SPOOL_UID, MAIL_GID, USER_UID, USER_GID, NULL, 0);
	assert_int_equal(sa.who, SPOOL_GROUP);
	assert_int_equal(sa.group, MAIL_GID);
}

/* An account in group mail (supplementary or primary) writes there itself. */
static void test_member_of_mail_writes(void **state)
{
	(void)state;
	const gid_t groups[] = {24, MAIL_GID};
	assert_int_equal(decide(02775, SPOOL_UID, MAIL_GID, USER_UID, USER_GID, groups, 2).who,
			 SPOOL_ACCOUNT);
	assert_int_equal(decide(02775, SPOOL_UID, MAIL_GID, USER_UID, MAIL_GID, NULL, 0).who,
			 SPOOL_ACCOUNT);
}

/* 1777 (some distributions), the account's own directory: the account writes. */
static void test_sticky_and_own_directory(void **state)
{
	(void)state;
	assert_int_equal(decide(01777, SPOOL_UID, SPOOL_UID, USER_UID, USER_GID, NULL, 0).who,
			 SPOOL_ACCOUNT);
	assert_int_equal(decide(0700, USER_UID, USER_GID, USER_UID, USER_GID, NULL, 0).who,
			 SPOOL_ACCOUNT);
}

/* Root's 0755 directory: nobody but root; write without search is no write. */
static void test_nobody_writes(void **state)
{
	(void)state;
	assert_int_equal(decide(0755, SPOOL_UID, SPOOL_UID, USER_UID, USER_GID, NULL, 0).who,
			 SPOOL_NOBODY);
	assert_int_equal(decide(0765, SPOOL_UID, MAIL_GID, USER_UID, USER_GID, NULL, 0).who,
			 SPOOL_NOBODY);   /* group write without search */
	assert_int_equal(decide(0577, USER_UID, USER_GID, USER_UID, USER_GID, NULL, 0).who,
			 SPOOL_NOBODY);   /* the owner's own bits decide, not other's */
}

/* A group member is judged by the group bits alone, as the kernel does. */
static void test_group_bits_decide_for_members(void **state)
{
	(void)state;
	const gid_t groups[] = {MAIL_GID};
	assert_int_equal(decide(0707, SPOOL_UID, MAIL_GID, USER_UID, USER_GID, groups, 1).who,
			 SPOOL_NOBODY);
}

/* Root may always (pop3d never serves as root, but the answer is still right). */
static void test_root_writes(void **state)
{
	(void)state;
	assert_int_equal(decide(0555, USER_UID, USER_GID, 0, 0, NULL, 0).who, SPOOL_ACCOUNT);
}

/* spool_access on a real directory: as this process (not root: its own groups). */
static void test_spool_access_of_a_path(void **state)
{
	(void)state;
	char box[MAX_PATH_LEN];
	snprintf(box, sizeof(box), "%s/box", test_tmpdir());
	struct spool_access sa;
	assert_int_equal(spool_access(box, NULL, geteuid(), getegid(), &sa), 0);
	assert_int_equal(sa.who, SPOOL_ACCOUNT);
	assert_int_equal(spool_access("/nonexistent-dir-of-pop3d/box", NULL, geteuid(), getegid(),
				      &sa), -1);
	assert_int_equal(sa.who, SPOOL_ACCOUNT);   /* as of old: the dotlock then says why */
}

/* ---- the dotlocker's protocol ---- */

struct dotlocker {
	pid_t pid;
	int fd;
	char box[MAX_PATH_LEN];
	char lock[MAX_PATH_LEN + 8];
};

static void start(struct dotlocker *d)
{
	snprintf(d->box, sizeof(d->box), "%s/box", test_tmpdir());
	snprintf(d->lock, sizeof(d->lock), "%s.lock", d->box);
	unlink(d->lock);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		close(sv[0]);
		_exit(dotlocker_serve(sv[1], d->box) == 0 ? 0 : 1);
	}
	close(sv[1]);
	d->fd = sv[0];
}

/* Its exit status. */
static int finish(struct dotlocker *d)
{
	close(d->fd);
	int st;
	assert_int_equal(waitpid(d->pid, &st, 0), d->pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Send len octets; the answer, or -1 when the dotlocker ended instead. */
static int ask(struct dotlocker *d, const void *msg, size_t len, struct dl_answer *a)
{
	assert_int_equal(send(d->fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
	ssize_t n = recv(d->fd, a, sizeof(*a), 0);
	return n == (ssize_t)sizeof(*a) ? 0 : -1;
}

static int ask_op(struct dotlocker *d, uint32_t op, uint32_t timeout, struct dl_answer *a)
{
	struct dl_request rq = {.op = op, .timeout = timeout};
	return ask(d, &rq, sizeof(rq), a);
}

static long lock_pid(const char *lock)
{
	size_t len;
	char *s = test_read_file(lock, &len);
	if (!s)
		return -1;
	long pid = strtol(s, NULL, 10);
	free(s);
	return pid;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void test_take_and_release(void **state)
{
	(void)state;
	struct dotlocker d;
	start(&d);
	struct dl_answer a;
	assert_int_equal(ask_op(&d, DL_TAKE, 5, &a), 0);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.taken, 1);
	assert_int_equal(lock_pid(d.lock), (long)d.pid);   /* its own pid, a live one */
	assert_int_equal(ask_op(&d, DL_RELEASE, 0, &a), 0);
	assert_int_equal(a.err, 0);
	assert_false(exists(d.lock));
	assert_int_equal(finish(&d), 0);
}

/* The keeper's end closes while the lock is held: released, and the dotlocker ends. */
static void test_release_when_keeper_goes(void **state)
{
	(void)state;
	struct dotlocker d;
	start(&d);
	struct dl_answer a;
	assert_int_equal(ask_op(&d, DL_TAKE, 5, &a), 0);
	assert_true(exists(d.lock));
	assert_int_equal(finish(&d), 0);
	assert_false(exists(d.lock));
}

/* Held by someone else: ETIMEDOUT after the timeout, nothing taken. */
static void test_busy_lock_times_out(void **state)
{
	(void)state;
	struct dotlocker d;
	start(&d);
	char other[32];
	snprintf(other, sizeof(other), "%ld\n", (long)getpid());
	test_write_file(d.lock, other, strlen(other));
	struct dl_answer a;
	assert_int_equal(ask_op(&d, DL_TAKE, 1, &a), 0);
	assert_int_equal(a.err, ETIMEDOUT);
	assert_int_equal(a.taken, 0);
	assert_int_equal(lock_pid(d.lock), (long)getpid());   /* left alone */
	assert_int_equal(finish(&d), 0);
	unlink(d.lock);
}

/* Every hostile message ends it at once; a lock it held is released first. */
static void test_hostile_messages_end_it(void **state)
{
	(void)state;
	struct {
		const char *what;
		bool take_first;
		unsigned char msg[64];
		size_t len;
	} cases[] = {
		{"unknown operation", false, {99, 0, 0, 0, 0, 0, 0, 0}, 8},
		{"short message", false, {DL_TAKE, 0, 0}, 3},
		{"long message (a path after the request)", false,
		 {DL_TAKE, 0, 0, 0, 5, 0, 0, 0, '/', 'e', 't', 'c', '/', 's', 'h', 'a', 'd', 'o', 'w'}, 19},
		{"release of nothing", false, {DL_RELEASE, 0, 0, 0, 0, 0, 0, 0}, 8},
		{"second take", true, {DL_TAKE, 0, 0, 0, 1, 0, 0, 0}, 8},
		{"release with a timeout", true, {DL_RELEASE, 0, 0, 0, 7, 0, 0, 0}, 8},
		{"a timeout past the limit", false, {DL_TAKE, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 8},
		{"empty message", true, {0}, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dotlocker d;
		start(&d);
		struct dl_answer a;
		if (cases[i].take_first) {
			assert_int_equal(ask_op(&d, DL_TAKE, 5, &a), 0);
			assert_int_equal(a.taken, 1);
		}
		if (cases[i].len == 0) {
			/* A zero-length packet reads as the end: the lock goes too. */
			assert_int_equal(send(d.fd, "", 0, MSG_NOSIGNAL), 0);
			assert_int_equal(recv(d.fd, &a, sizeof(a), 0), 0);
		} else if (ask(&d, cases[i].msg, cases[i].len, &a) == 0) {
			fail_msg("%s: answered (err %d)", cases[i].what, a.err);
		}
		int st = finish(&d);
		if (cases[i].len > 0 && st != 1)
			fail_msg("%s: exit status %d, expected 1 (refused)", cases[i].what, st);
		if (exists(d.lock))
			fail_msg("%s: the lock was left behind", cases[i].what);
	}
}

/* lock.c routes the mailbox's dotlock (and only that mailbox's) through the dotlocker. */
static void test_lock_routes_through_it(void **state)
{
	(void)state;
	struct dotlocker d;
	start(&d);
	lock_use_dotlocker(d.fd, d.box);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(d.box, -1, LOCK_DOTLOCK, 5, &lk, why, sizeof(why)), 0);
	assert_true(lk.held & LOCK_DOTLOCK);
	assert_int_equal(lock_pid(d.lock), (long)d.pid);   /* the dotlocker took it, not us */
	mailbox_unlock(&lk);
	assert_false(exists(d.lock));
	/* Another mailbox: locked here, as ever. */
	char other[MAX_PATH_LEN], other_lock[MAX_PATH_LEN + 8];
	snprintf(other, sizeof(other), "%s/other", test_tmpdir());
	snprintf(other_lock, sizeof(other_lock), "%s.lock", other);
	assert_int_equal(mailbox_lock(other, -1, LOCK_DOTLOCK, 5, &lk, why, sizeof(why)), 0);
	assert_int_equal(lock_pid(other_lock), (long)getpid());
	mailbox_unlock(&lk);
	/* The session process's step: no socket left; the dotlocker ends, holding nothing. */
	lock_forget_dotlocker();
	int st;
	assert_int_equal(waitpid(d.pid, &st, 0), d.pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_false(exists(d.lock));
}

/* A dotlocker that is gone: the lock fails with a reason, and nothing is left. */
static void test_gone_dotlocker_fails_the_lock(void **state)
{
	(void)state;
	struct dotlocker d;
	start(&d);
	lock_use_dotlocker(d.fd, d.box);
	kill(d.pid, SIGKILL);
	int st;
	assert_int_equal(waitpid(d.pid, &st, 0), d.pid);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(d.box, -1, LOCK_DOTLOCK, 1, &lk, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "cannot create dotlock"));
	assert_false(exists(d.lock));
	lock_forget_dotlocker();
}

int main(void)
{
	log_open("stderr");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_debian_spool_is_group_mail),
		cmocka_unit_test(test_member_of_mail_writes),
		cmocka_unit_test(test_sticky_and_own_directory),
		cmocka_unit_test(test_nobody_writes),
		cmocka_unit_test(test_group_bits_decide_for_members),
		cmocka_unit_test(test_root_writes),
		cmocka_unit_test(test_spool_access_of_a_path),
		cmocka_unit_test(test_take_and_release),
		cmocka_unit_test(test_release_when_keeper_goes),
		cmocka_unit_test(test_busy_lock_times_out),
		cmocka_unit_test(test_hostile_messages_end_it),
		cmocka_unit_test(test_lock_routes_through_it),
		cmocka_unit_test(test_gone_dotlocker_fails_the_lock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
