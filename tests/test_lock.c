/*
 * Unit tests for lock.c: method parsing, dotlock, fcntl (OFD), flock, session
 * lock. Built twice: tests/test_lock, and tests/test_lock_nfs against lock.c
 * built with POP3D_TEST_FLOCK_AS_FCNTL, where flock is emulated with fcntl
 * locks as on NFS (the flock-specific tests give way to their NFS forms).
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"
#include "lock.h"
#include "log.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

/*
 * The machine's uptime as lock.c sees it: clock_gettime is defined here, so
 * lock.c (linked into this program) calls this one. fake_uptime > 0 makes
 * CLOCK_BOOTTIME say so; everything else is the kernel's answer.
 */
static time_t fake_uptime;

int clock_gettime(clockid_t clk, struct timespec *ts)
{
	if (clk == CLOCK_BOOTTIME && fake_uptime > 0) {
		ts->tv_sec = fake_uptime;
		ts->tv_nsec = 0;
		return 0;
	}
	return (int)syscall(SYS_clock_gettime, clk, ts);
}

struct logbuf {
	char text[4096];
};

static void collect_log(int priority, const char *msg, void *ctx)
{
	struct logbuf *lb = ctx;
	size_t used = strlen(lb->text);
	snprintf(lb->text + used, sizeof(lb->text) - used, "%d:%s\n", priority, msg);
}

/* A fresh mailbox file in its own directory; returns its path (a static buffer, reused). */
static const char *make_mailbox(const char *dirname)
{
	static char path[512];
	const char *dir = test_path(dirname);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/mbox", dir);
	test_write_file(path, "From a\n\nbody\n", 13);
	return path;
}

static char *lock_name(const char *path)
{
	static char buf[600];
	snprintf(buf, sizeof(buf), "%s.lock", path);
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static char *session_lock_name(const char *path)
{
	static char buf[600];
	snprintf(buf, sizeof(buf), "%s%s", path, SESSION_LOCK_SUFFIX);
	return buf;
}

/* How many entries of the mailbox's directory are temporary lock files. */
static int count_temp_files(const char *path)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, ".lk", 3) == 0)
			n++;
	closedir(d);
	return n;
}

static int open_rw(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* In a child process: can a classic POSIX write lock be taken on path right now? */
static bool child_can_fcntl_lock(const char *path)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDWR);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		_exit(fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status) == 0;
}

/* A child holding a classic fcntl lock on path until release_holder(). */
struct holder {
	pid_t pid;
	int go;   /* closing it lets the child exit */
};

static struct holder child_hold_fcntl_lock(const char *path)
{
	int ready[2], go[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		int fd = open(path, O_RDWR);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
			_exit(2);
		if (write(ready[1], "x", 1) != 1)
			_exit(3);
		char c;
		while (read(go[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	struct holder h = { pid, go[1] };
	return h;
}

static void release_holder(struct holder *h)
{
	close(h->go);
	int status;
	assert_int_equal(waitpid(h->pid, &status, 0), h->pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- lock_parse_methods ------------------------------------------------- */

static void test_parse_methods(void **state)
{
	(void)state;
	unsigned m = 0;
	assert_int_equal(lock_parse_methods("dotlock", &m), 0);
	assert_int_equal(m, LOCK_DOTLOCK);
	assert_int_equal(lock_parse_methods("fcntl", &m), 0);
	assert_int_equal(m, LOCK_FCNTL);
	assert_int_equal(lock_parse_methods("flock", &m), 0);
	assert_int_equal(m, LOCK_FLOCK);
	assert_int_equal(lock_parse_methods("dotlock,fcntl", &m), 0);
	assert_int_equal(m, LOCK_DOTLOCK | LOCK_FCNTL);
	assert_int_equal(lock_parse_methods("flock,fcntl,dotlock", &m), 0);
	assert_int_equal(m, LOCK_DOTLOCK | LOCK_FCNTL | LOCK_FLOCK);
	assert_int_equal(lock_parse_methods("fcntl,fcntl", &m), 0);
	assert_int_equal(m, LOCK_FCNTL);

	const char *bad[] = { "", ",", "dotlock,", ",fcntl", "dotlock,,fcntl", "bogus",
			      "dot", "dotlocks", "fcntl flock", "fcntl;flock" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = 12345;
		assert_int_equal(lock_parse_methods(bad[i], &m), -1);
		assert_int_equal(m, 12345);   /* untouched on failure */
	}
	assert_int_equal(lock_parse_methods(NULL, &m), -1);
}

/* ---- dotlock ------------------------------------------------------------ */

static void test_dotlock_created_and_removed(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot1");
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 1, &lk, why, sizeof(why)), 0);
	assert_int_equal(lk.held, LOCK_DOTLOCK);

	struct stat st;
	assert_int_equal(lstat(lock_name(path), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_nlink, 1);   /* the temporary link is gone */
	assert_int_equal(count_temp_files(path), 0);
	char *content = test_read_file(lock_name(path), NULL);
	char pid[32];
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	assert_string_equal(content, pid);   /* liblockfile's format */
	free(content);

	mailbox_unlock(&lk);
	assert_false(exists(lock_name(path)));
	assert_null(lk.dotlock);
	assert_int_equal(lk.held, 0);
}

static void test_dotlock_foreign_fresh_times_out(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot2");
	char live[32];
	int n = snprintf(live, sizeof(live), "%ld\n", (long)getppid());  /* a live holder */
	test_write_file(lock_name(path), live, (size_t)n);
	struct mail_lock lk;
	char why[256] = "";
	errno = 0;
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 1, &lk, why, sizeof(why)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_non_null(strstr(why, "locked by another process"));
	assert_int_equal(lk.held, 0);
	assert_null(lk.dotlock);
	/* the foreign lock is left alone, and no temporary file is left behind */
	char *content = test_read_file(lock_name(path), NULL);
	assert_string_equal(content, live);
	free(content);
	assert_int_equal(count_temp_files(path), 0);
}

static void test_dotlock_stale_is_broken(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot3");
	test_write_file(lock_name(path), "99999\n", 6);
	struct timeval old[2];
	gettimeofday(&old[0], NULL);
	old[0].tv_sec -= DOTLOCK_STALE_AGE + 60;
	old[1] = old[0];
	assert_int_equal(utimes(lock_name(path), old), 0);

	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 1, &lk, why, sizeof(why)), 0);
	log_set_hook(NULL, NULL);
	assert_int_equal(lk.held, LOCK_DOTLOCK);
	assert_non_null(strstr(lb.text, "stale"));
	char *content = test_read_file(lock_name(path), NULL);
	assert_string_not_equal(content, "99999\n");   /* ours now */
	free(content);
	mailbox_unlock(&lk);
	assert_false(exists(lock_name(path)));
}

/* A fresh dotlock left by a process that died (SIGKILL mid-update) is broken at once. */
static void test_dotlock_of_dead_process_is_broken(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot-dead");
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child);  /* now surely not running */
	char dead[32];
	int n = snprintf(dead, sizeof(dead), "%ld\n", (long)child);
	test_write_file(lock_name(path), dead, (size_t)n);

	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 1, &lk, why, sizeof(why)), 0);
	log_set_hook(NULL, NULL);
	assert_int_equal(lk.held, LOCK_DOTLOCK);
	assert_non_null(strstr(lb.text, "process is gone"));
	mailbox_unlock(&lk);
	assert_false(exists(lock_name(path)));
}

static void test_dotlock_just_under_stale_age_is_kept(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot4");
	char live[32];
	int n = snprintf(live, sizeof(live), "%ld\n", (long)getppid());  /* a live holder */
	test_write_file(lock_name(path), live, (size_t)n);
	struct timeval t[2];
	gettimeofday(&t[0], NULL);
	t[0].tv_sec -= DOTLOCK_STALE_AGE - 60;
	t[1] = t[0];
	assert_int_equal(utimes(lock_name(path), t), 0);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 0, &lk, why, sizeof(why)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(exists(lock_name(path)));
}

/* Set path's times to `ago` seconds in the past. */
static void age_file(const char *path, time_t ago)
{
	struct timeval t[2];
	gettimeofday(&t[0], NULL);
	t[0].tv_sec -= ago;
	t[1] = t[0];
	assert_int_equal(utimes(path, t), 0);
}

/*
 * After a power cut: a lock from before this boot has no holder, whatever
 * pid it names (pids are reused) and however young it is. Broken at once.
 */
static void test_dotlock_from_before_boot_is_broken(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot-boot");
	char live[32];
	int n = snprintf(live, sizeof(live), "%ld\n", (long)getppid());  /* a live pid, by reuse */
	test_write_file(lock_name(path), live, (size_t)n);
	fake_uptime = 60;                       /* booted a minute ago ... */
	age_file(lock_name(path), 120);         /* ... the lock is two minutes old */
	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	struct mail_lock lk;
	char why[256] = "";
	int rc = mailbox_lock(path, -1, LOCK_DOTLOCK, 1, &lk, why, sizeof(why));
	log_set_hook(NULL, NULL);
	fake_uptime = 0;
	assert_int_equal(rc, 0);
	assert_non_null(strstr(lb.text, "before this boot"));
	mailbox_unlock(&lk);
	assert_false(exists(lock_name(path)));

	/* The same lock made after the boot is held: left alone. */
	test_write_file(lock_name(path), live, (size_t)n);
	fake_uptime = 600;
	age_file(lock_name(path), 120);
	rc = mailbox_lock(path, -1, LOCK_DOTLOCK, 0, &lk, why, sizeof(why));
	fake_uptime = 0;
	assert_int_equal(rc, -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_true(exists(lock_name(path)));
}

/*
 * Something at the dotlock's name that is no lock (another user's mailbox:
 * user "alice.lock" under /var/mail/%u) is never removed, however old;
 * the lock waits and times out. An old empty file or pid line is a lock.
 */
static void test_non_lock_at_dotlock_name_never_removed(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot-mail");
	static const char mail[] = "From bob Mon Jan  1 00:00:00 2024\n\nbob's mail\n";
	char big[DOTLOCK_MAX_SIZE + 2];
	memset(big, '1', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	const struct { const char *data; size_t len; } cases[] = {
		{ mail, sizeof(mail) - 1 },
		{ "123 bob\n", 8 },
		{ big, sizeof(big) },
		{ "12\n\0\0", 5 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_write_file(lock_name(path), cases[i].data, cases[i].len);
		age_file(lock_name(path), 3600);
		struct logbuf lb = { "" };
		log_set_hook(collect_log, &lb);
		struct mail_lock lk;
		char why[256] = "";
		int rc = mailbox_lock(path, -1, LOCK_DOTLOCK, 0, &lk, why, sizeof(why));
		log_set_hook(NULL, NULL);
		assert_int_equal(rc, -1);
		assert_int_equal(errno, ETIMEDOUT);
		assert_non_null(strstr(lb.text, "is not a lock"));
		size_t len;
		char *data = test_read_file(lock_name(path), &len);
		assert_non_null(data);
		assert_int_equal(len, cases[i].len);
		assert_memory_equal(data, cases[i].data, len);
		free(data);
	}
	/* An old empty lock (a locker that writes nothing, or a power cut) is broken. */
	test_write_file(lock_name(path), "", 0);
	age_file(lock_name(path), 3600);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 1, &lk, why, sizeof(why)), 0);
	mailbox_unlock(&lk);
	assert_false(exists(lock_name(path)));
}

static void test_dotlock_unlock_leaves_foreign_lock(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot5");
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 1, &lk, why, sizeof(why)), 0);
	/* someone broke our lock and took it: it is not ours to remove */
	assert_int_equal(unlink(lock_name(path)), 0);
	char live[32];
	int n = snprintf(live, sizeof(live), "%ld\n", (long)getppid());
	test_write_file(lock_name(path), live, (size_t)n);
	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	mailbox_unlock(&lk);
	log_set_hook(NULL, NULL);
	char *content = test_read_file(lock_name(path), NULL);
	assert_non_null(content);
	assert_string_equal(content, live);
	free(content);
	assert_non_null(strstr(lb.text, "taken over"));
}

static void test_dotlock_twice_in_one_process_conflicts(void **state)
{
	(void)state;
	const char *path = make_mailbox("dot6");
	struct mail_lock a, b;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 1, &a, why, sizeof(why)), 0);
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 0, &b, why, sizeof(why)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	mailbox_unlock(&a);
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK, 0, &b, why, sizeof(why)), 0);
	mailbox_unlock(&b);
}

/* Run in a child: the directory is not writable, so the dotlock is skipped with a warning. */
static int child_unwritable_dir(const char *dir, int fd)
{
	if (chdir(dir) < 0)
		return 10;
	if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
		return 11;
	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	struct mail_lock lk;
	char why[256] = "";
	if (mailbox_lock("mbox", fd, LOCK_DOTLOCK | LOCK_FCNTL, 1, &lk, why, sizeof(why)) < 0)
		return 12;
	if (lk.held != LOCK_FCNTL || lk.dotlock)
		return 13;
	if (!strstr(lb.text, "relying on fcntl"))
		return 14;
	if (exists("mbox.lock"))
		return 15;
	mailbox_unlock(&lk);
	return 0;
}

static void test_dotlock_skipped_when_directory_not_writable(void **state)
{
	(void)state;
	const char *path = make_mailbox("rodir");
	char dir[512];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	int fd = open_rw(path);   /* opened before privileges are dropped */
	assert_int_equal(chmod(dir, 0555), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_unwritable_dir(dir, fd));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(chmod(dir, 0755), 0);
	close(fd);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- fcntl -------------------------------------------------------------- */

static void test_fcntl_conflict_with_classic_lock_times_out(void **state)
{
	(void)state;
	const char *path = make_mailbox("fc1");
	int fd = open_rw(path);
	struct holder h = child_hold_fcntl_lock(path);
	struct mail_lock lk;
	char why[256] = "";
	errno = 0;
	assert_int_equal(mailbox_lock(path, fd, LOCK_FCNTL, 1, &lk, why, sizeof(why)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_non_null(strstr(why, "locked by another process"));
	assert_int_equal(lk.held, 0);
	release_holder(&h);
	assert_int_equal(mailbox_lock(path, fd, LOCK_FCNTL, 1, &lk, why, sizeof(why)), 0);
	assert_int_equal(lk.held, LOCK_FCNTL);
	mailbox_unlock(&lk);
	close(fd);
}

static void test_fcntl_released_on_unlock(void **state)
{
	(void)state;
	const char *path = make_mailbox("fc2");
	int fd = open_rw(path);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, fd, LOCK_FCNTL, 1, &lk, why, sizeof(why)), 0);
	assert_false(child_can_fcntl_lock(path));
	mailbox_unlock(&lk);
	assert_true(child_can_fcntl_lock(path));
	close(fd);
}

static void test_fcntl_survives_closing_another_descriptor(void **state)
{
	(void)state;
	const char *path = make_mailbox("fc3");
	int fd = open_rw(path);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, fd, LOCK_FCNTL, 1, &lk, why, sizeof(why)), 0);
	/* a classic POSIX lock would be dropped here; an OFD lock is not */
	int other = open_rw(path);
	close(other);
	assert_false(child_can_fcntl_lock(path));
	mailbox_unlock(&lk);
	close(fd);
}

static void test_failure_releases_what_was_taken(void **state)
{
	(void)state;
	const char *path = make_mailbox("fc4");
	int fd = open_rw(path);
	struct holder h = child_hold_fcntl_lock(path);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, fd, LOCK_DEFAULT, 1, &lk, why, sizeof(why)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_false(exists(lock_name(path)));   /* the dotlock taken first was released */
	assert_int_equal(count_temp_files(path), 0);
	release_holder(&h);

	assert_int_equal(mailbox_lock(path, fd, LOCK_DEFAULT, 1, &lk, why, sizeof(why)), 0);
	assert_int_equal(lk.held, LOCK_DOTLOCK | LOCK_FCNTL);
	assert_true(exists(lock_name(path)));
	assert_false(child_can_fcntl_lock(path));
	mailbox_unlock(&lk);
	assert_false(exists(lock_name(path)));
	assert_true(child_can_fcntl_lock(path));
	close(fd);
}

static void test_no_file_takes_only_the_dotlock(void **state)
{
	(void)state;
	const char *path = make_mailbox("nofile");
	assert_int_equal(unlink(path), 0);
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, -1, LOCK_DOTLOCK | LOCK_FCNTL | LOCK_FLOCK, 1,
				      &lk, why, sizeof(why)), 0);
	assert_int_equal(lk.held, LOCK_DOTLOCK);
	assert_true(exists(lock_name(path)));
	mailbox_unlock(&lk);
	assert_false(exists(lock_name(path)));
}

/* ---- flock -------------------------------------------------------------- */
/* Real flock(2): its tests give way to their NFS forms in the emulated build. */
#ifndef POP3D_TEST_FLOCK_AS_FCNTL

static void test_flock_method(void **state)
{
	(void)state;
	const char *path = make_mailbox("fl1");
	int fd = open_rw(path);
	int other = open_rw(path);   /* a separate open file: flock conflicts with it */
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, fd, LOCK_FLOCK, 1, &lk, why, sizeof(why)), 0);
	assert_int_equal(lk.held, LOCK_FLOCK);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	assert_true(child_can_fcntl_lock(path));   /* only flock was asked for */
	mailbox_unlock(&lk);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);

	/* and the other way round: a foreign flock makes us time out */
	assert_int_equal(mailbox_lock(path, fd, LOCK_FLOCK, 0, &lk, why, sizeof(why)), -1);
	assert_int_equal(errno, ETIMEDOUT);
	close(other);
	close(fd);
}

/* ---- the session lock --------------------------------------------------- */

static void test_session_lock_flock(void **state)
{
	(void)state;
	const char *path = make_mailbox("s1");
	const char *lf = session_lock_name(path);
	int fd1 = open_rw(path), fd2 = open_rw(path);
	int h1 = 99, h2 = 99;
	assert_int_equal(session_lock(fd1, lf, LOCK_DEFAULT, &h1), 0);
	assert_int_equal(h1, -1);   /* the lock lives on fd1 */
	assert_false(exists(lf));   /* flock is real here: no lock file */
	errno = 0;
	assert_int_equal(session_lock(fd2, lf, LOCK_DEFAULT, &h2), -1);
	assert_int_equal(errno, EWOULDBLOCK);

	/* it never blocks delivery: the MDA locks are still free */
	assert_true(child_can_fcntl_lock(path));
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, fd2, LOCK_DEFAULT, 0, &lk, why, sizeof(why)), 0);
	mailbox_unlock(&lk);

	close(fd1);   /* the session ends */
	assert_int_equal(session_lock(fd2, lf, LOCK_DEFAULT, &h2), 0);
	close(fd2);
}

static void test_session_lock_socket_when_mdas_use_flock(void **state)
{
	(void)state;
	char path[512], other_path[512];
	snprintf(path, sizeof(path), "%s", make_mailbox("s2"));
	snprintf(other_path, sizeof(other_path), "%s", make_mailbox("s2b"));
	unsigned methods = LOCK_DOTLOCK | LOCK_FCNTL | LOCK_FLOCK;
	int fd1 = open_rw(path), fd2 = open_rw(path), fd3 = open_rw(other_path);
	int h1 = -1, h2 = -1, h3 = -1;
	assert_int_equal(session_lock(fd1, NULL, methods, &h1), 0);
	assert_true(h1 >= 0);
	int fdflags = fcntl(h1, F_GETFD);
	assert_true(fdflags >= 0 && (fdflags & FD_CLOEXEC));

	errno = 0;
	assert_int_equal(session_lock(fd2, NULL, methods, &h2), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	assert_int_equal(h2, -1);

	/* no flock is held for the session: an MDA using flock is not blocked */
	assert_int_equal(flock(fd2, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(flock(fd2, LOCK_UN), 0);

	/* another mailbox is independent */
	assert_int_equal(session_lock(fd3, NULL, methods, &h3), 0);

	close(h1);
	assert_int_equal(session_lock(fd2, NULL, methods, &h2), 0);
	assert_true(h2 >= 0);
	close(h2);
	close(h3);
	close(fd1);
	close(fd2);
	close(fd3);
}

#endif /* !POP3D_TEST_FLOCK_AS_FCNTL */

static void test_session_lock_released_when_process_dies(void **state)
{
	(void)state;
	const char *path = make_mailbox("s3");
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDWR), h;
		if (fd < 0 || session_lock(fd, session_lock_name(path), LOCK_DEFAULT, &h) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	int fd = open_rw(path), h;
	assert_int_equal(session_lock(fd, session_lock_name(path), LOCK_DEFAULT, &h), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(session_lock(fd, session_lock_name(path), LOCK_DEFAULT, &h), 0);
	close(fd);
}

/* ---- where flock is emulated with fcntl locks (NFS): the test build -------- */
#ifdef POP3D_TEST_FLOCK_AS_FCNTL

static void test_emulated_session_lock_is_a_lock_file(void **state)
{
	(void)state;
	const char *path = make_mailbox("n1");
	char lf[600];
	snprintf(lf, sizeof(lf), "%s", session_lock_name(path));
	int fd1 = open_rw(path), fd2 = open_rw(path);
	int h1 = -1, h2 = -1;
	assert_int_equal(session_lock(fd1, lf, LOCK_DEFAULT, &h1), 0);
	assert_true(h1 >= 0);
	int fdflags = fcntl(h1, F_GETFD);
	assert_true(fdflags >= 0 && (fdflags & FD_CLOEXEC));
	struct stat st;
	assert_int_equal(lstat(lf, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	errno = 0;
	assert_int_equal(session_lock(fd2, lf, LOCK_DEFAULT, &h2), -1);
	assert_int_equal(errno, EWOULDBLOCK);

	/* delivery goes on during the session: the MDA's classic fcntl lock and ours */
	assert_true(child_can_fcntl_lock(path));
	struct mail_lock lk;
	char why[256] = "";
	assert_int_equal(mailbox_lock(path, fd2, LOCK_DEFAULT, 0, &lk, why, sizeof(why)), 0);
	mailbox_unlock(&lk);

	close(h1);   /* the session ends; the file stays (removing it would race) */
	assert_true(exists(lf));
	assert_int_equal(session_lock(fd2, lf, LOCK_DEFAULT, &h2), 0);
	close(h2);
	close(fd1);
	close(fd2);
}

/* The flock of the test build is the fcntl lock again: the real NFS case. */
static void test_emulated_flock_and_fcntl_do_not_conflict_with_each_other(void **state)
{
	(void)state;
	const char *path = make_mailbox("n2");
	int fd = open_rw(path);
	struct mail_lock lk;
	char why[256] = "";
	unsigned methods = LOCK_DOTLOCK | LOCK_FCNTL | LOCK_FLOCK;
	assert_int_equal(mailbox_lock(path, fd, methods, 1, &lk, why, sizeof(why)), 0);
	assert_int_equal(lk.held, LOCK_DOTLOCK | LOCK_FCNTL);
	assert_false(child_can_fcntl_lock(path));
	mailbox_unlock(&lk);
	assert_true(child_can_fcntl_lock(path));

	/* flock alone is still taken, and still excludes an MDA */
	assert_int_equal(mailbox_lock(path, fd, LOCK_FLOCK, 1, &lk, why, sizeof(why)), 0);
	assert_int_equal(lk.held, LOCK_FLOCK);
	assert_false(child_can_fcntl_lock(path));
	mailbox_unlock(&lk);
	close(fd);
}

static void assert_lock_file_refused(const char *path, const char *lf, const char *logged)
{
	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	int fd = open_rw(path), h = -1;
	errno = 0;
	assert_int_equal(session_lock(fd, lf, LOCK_DEFAULT, &h), -1);
	assert_int_not_equal(errno, EWOULDBLOCK);
	assert_int_equal(h, -1);
	log_set_hook(NULL, NULL);
	if (logged)
		assert_non_null(strstr(lb.text, logged));
	close(fd);
}

static void test_emulated_lock_file_symlink_refused(void **state)
{
	(void)state;
	const char *path = make_mailbox("n3");
	char lf[600], target[600];
	snprintf(lf, sizeof(lf), "%s", session_lock_name(path));
	snprintf(target, sizeof(target), "%s.elsewhere", path);
	assert_int_equal(symlink(target, lf), 0);
	assert_lock_file_refused(path, lf, NULL);
	assert_int_equal(errno, ELOOP);
	assert_false(exists(target));   /* nothing was created through the link */
}

static void test_emulated_lock_file_with_two_names_refused(void **state)
{
	(void)state;
	const char *path = make_mailbox("n4");
	char lf[600], other[600];
	snprintf(lf, sizeof(lf), "%s", session_lock_name(path));
	snprintf(other, sizeof(other), "%s.other", path);
	test_write_file(other, "", 0);
	assert_int_equal(link(other, lf), 0);
	assert_lock_file_refused(path, lf, "not a plain file");
}

static void test_emulated_lock_file_of_another_user_refused(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();   /* only root can give a file away */
	const char *path = make_mailbox("n5");
	char lf[600];
	snprintf(lf, sizeof(lf), "%s", session_lock_name(path));
	test_write_file(lf, "", 0);
	assert_int_equal(chown(lf, 65534, 65534), 0);
	assert_lock_file_refused(path, lf, "not a plain file");
}

/*
 * A spool the user cannot write (Debian's /var/mail without --journal-dir):
 * the per-host socket, with a warning, and never a lock on the mailbox.
 * 0 if all held, else the number of the check that failed.
 */
static int fallback_checks(const char *path, const char *lf)
{
	int fd1 = open(path, O_RDWR), fd2 = open(path, O_RDWR), h1 = -1, h2 = -1;
	if (fd1 < 0 || fd2 < 0)
		return 1;
	if (session_lock(fd1, lf, LOCK_DEFAULT, &h1) != 0 || h1 < 0)
		return 2;
	if (exists(lf))
		return 3;
	if (session_lock(fd2, lf, LOCK_DEFAULT, &h2) != -1 || errno != EWOULDBLOCK)
		return 4;
	if (!child_can_fcntl_lock(path))
		return 5;
	return 0;
}

/*
 * As root: the checks run as nobody on a mailbox of nobody's in a directory
 * of root's. That directory is a fresh one in /tmp, not under tests/tmp: the
 * source tree may sit below a directory nobody cannot enter (a package built
 * in a 0700 directory), and the test must not depend on it.
 */
static void unwritable_directory_as_nobody(struct logbuf *lb)
{
	char dir[] = "/tmp/pop3d-test-lock.XXXXXX", path[sizeof(dir) + 8], lf[600];
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/mbox", dir);
	snprintf(lf, sizeof(lf), "%s", session_lock_name(path));
	test_write_file(path, "From a\n\nbody\n", 13);
	assert_int_equal(chown(path, 65534, 65534), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(100);
		int rc = fallback_checks(path, lf);
		_exit(rc ? rc : strstr(lb->text, "holds on this host only") ? 0 : 6);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	int removed = unlink(path) == 0 && rmdir(dir) == 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(removed);   /* nothing else was left there */
}

static void test_emulated_unwritable_directory_falls_back_to_socket(void **state)
{
	(void)state;
	struct logbuf lb = { "" };
	log_set_hook(collect_log, &lb);
	if (geteuid() == 0) {
		unwritable_directory_as_nobody(&lb);
	} else {
		const char *path = make_mailbox("n6");
		char lf[600], dir[600];
		snprintf(lf, sizeof(lf), "%s", session_lock_name(path));
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		assert_int_equal(chmod(dir, 0555), 0);
		int rc = fallback_checks(path, lf);
		assert_int_equal(chmod(dir, 0755), 0);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(lb.text, "holds on this host only"));
	}
	log_set_hook(NULL, NULL);
}

#endif /* POP3D_TEST_FLOCK_AS_FCNTL */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_methods),
		cmocka_unit_test(test_dotlock_created_and_removed),
		cmocka_unit_test(test_dotlock_foreign_fresh_times_out),
		cmocka_unit_test(test_dotlock_stale_is_broken),
		cmocka_unit_test(test_dotlock_just_under_stale_age_is_kept),
		cmocka_unit_test(test_dotlock_of_dead_process_is_broken),
		cmocka_unit_test(test_dotlock_from_before_boot_is_broken),
		cmocka_unit_test(test_non_lock_at_dotlock_name_never_removed),
		cmocka_unit_test(test_dotlock_unlock_leaves_foreign_lock),
		cmocka_unit_test(test_dotlock_twice_in_one_process_conflicts),
		cmocka_unit_test(test_dotlock_skipped_when_directory_not_writable),
		cmocka_unit_test(test_fcntl_conflict_with_classic_lock_times_out),
		cmocka_unit_test(test_fcntl_released_on_unlock),
		cmocka_unit_test(test_fcntl_survives_closing_another_descriptor),
		cmocka_unit_test(test_failure_releases_what_was_taken),
		cmocka_unit_test(test_no_file_takes_only_the_dotlock),
#ifdef POP3D_TEST_FLOCK_AS_FCNTL
		cmocka_unit_test(test_emulated_session_lock_is_a_lock_file),
		cmocka_unit_test(test_emulated_flock_and_fcntl_do_not_conflict_with_each_other),
		cmocka_unit_test(test_emulated_lock_file_symlink_refused),
		cmocka_unit_test(test_emulated_lock_file_with_two_names_refused),
		cmocka_unit_test(test_emulated_lock_file_of_another_user_refused),
		cmocka_unit_test(test_emulated_unwritable_directory_falls_back_to_socket),
#else
		cmocka_unit_test(test_flock_method),
		cmocka_unit_test(test_session_lock_flock),
		cmocka_unit_test(test_session_lock_socket_when_mdas_use_flock),
#endif
		cmocka_unit_test(test_session_lock_released_when_process_dies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
