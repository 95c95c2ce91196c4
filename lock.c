/*
 * Mailbox locks as Debian's MDAs take them (dotlock + fcntl, flock optional),
 * and the one-session lock that keeps a second POP3 session out without
 * ever blocking mail delivery.
 */
#define _GNU_SOURCE
#include "lock.h"

#include "dotlocker.h"
#include "fileio.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"

#define TEMP_NAME_ATTEMPTS 100   /* unique temp names tried before giving up */
#define HOST_PART_MAX      64    /* octets of the host name in a temp name */


/* ---- method list -------------------------------------------------------- */

static unsigned method_bit(const char *word, size_t len)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "dotlock", LOCK_DOTLOCK },
		{ "fcntl", LOCK_FCNTL },
		{ "flock", LOCK_FLOCK },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && strncasecmp(word, names[i].name, len) == 0)
			return names[i].bit;
	return 0;
}

int lock_parse_methods(const char *spec, unsigned *methods)
{
	if (!spec)
		return -1;
	unsigned bits = 0;
	for (const char *p = spec;; ) {
		size_t len = strcspn(p, ",");
		unsigned bit = method_bit(p, len);
		if (!bit)
			return -1;   /* unknown or empty word */
		bits |= bit;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	*methods = bits;
	return 0;
}

/* ---- waiting ------------------------------------------------------------ */

static struct timespec deadline_after(unsigned seconds)
{
	struct timespec t;
	if (clock_gettime(CLOCK_MONOTONIC, &t) < 0) {
		t.tv_sec = 0;   /* cannot happen on Linux; a passed deadline means one try */
		t.tv_nsec = 0;
		return t;
	}
	t.tv_sec += (time_t)seconds;
	return t;
}

static bool time_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static bool deadline_passed(const struct timespec *deadline)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return true;
	return !time_before(&now, deadline);
}

/* Sleep LOCK_RETRY_USEC (less if the deadline is nearer); false once the deadline has passed. */
static bool pause_before_retry(const struct timespec *deadline)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0 || !time_before(&now, deadline))
		return false;
	struct timespec wake = now;
	wake.tv_nsec += (long)LOCK_RETRY_USEC * 1000L;
	wake.tv_sec += wake.tv_nsec / 1000000000L;
	wake.tv_nsec %= 1000000000L;
	if (time_before(deadline, &wake))
		wake = *deadline;
	int rc;
	while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, NULL)) == EINTR)
		;
	return rc == 0;
}

/* ---- dotlock ------------------------------------------------------------ */

static char *concat(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	if (alen > SIZE_MAX - blen - 1)
		return NULL;
	char *s = malloc(alen + blen + 1);
	if (!s)
		return NULL;
	memcpy(s, a, alen);
	memcpy(s + alen, b, blen + 1);
	return s;
}

/* The host name, reduced to octets that are safe in a file name. */
static void host_part(char *buf, size_t buflen)
{
	if (gethostname(buf, buflen) < 0)
		snprintf(buf, buflen, "localhost");
	buf[buflen - 1] = '\0';
	for (char *p = buf; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			*p = '_';
}

/*
 * Create a unique temporary file in the mailbox's directory, as liblockfile
 * does: the name carries pid, a counter and the host name, so hosts sharing
 * the directory over NFS never collide. Returns its path, or NULL with errno.
 */
static char *create_temp_lock(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	char host[HOST_PART_MAX + 1];
	host_part(host, sizeof(host));

	for (unsigned attempt = 0; attempt < TEMP_NAME_ATTEMPTS; attempt++) {
		char name[128];
		snprintf(name, sizeof(name), DOTLOCK_TEMP_PREFIX ".pop3d.%ld.%u.%s", (long)getpid(),
			 attempt, host);
		char *tmp = concat(path, dirlen, name);
		if (!tmp)
			return NULL;
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0) {
			int err = errno;
			free(tmp);
			if (err == EEXIST || err == EINTR)
				continue;   /* left over by an earlier process with our pid */
			errno = err;
			return NULL;
		}
		/* The content is our pid, as liblockfile writes it (readers may check it). */
		char pid[32];
		int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		ssize_t w;
		while ((w = write(fd, pid, (size_t)len)) < 0 && errno == EINTR)
			;
		int err = w == len ? 0 : (w < 0 ? errno : ENOSPC);
		/* Durable before the link: after a power cut the lock names a pid, never nothing. */
		if (err == 0 && fsync_retry(fd) < 0)
			err = errno;
		if (close(fd) < 0 && err == 0)
			err = errno;
		if (err) {
			unlink(tmp);
			free(tmp);
			errno = err;
			return NULL;
		}
		return tmp;
	}
	errno = EEXIST;
	return NULL;
}

/*
 * One attempt of the NFS-safe link method: link() the temp file to the lock
 * name, then trust only the temp file's link count (link() may report failure
 * over NFS when it worked). 1 taken, 0 held by someone else, -1 error.
 */
static int dotlock_attempt(const char *tmp, const char *lockpath, struct mail_lock *lk)
{
	int link_errno = link(tmp, lockpath) == 0 ? 0 : errno;
	struct stat st;
	if (lstat(tmp, &st) < 0)
		return -1;
	if (st.st_nlink >= 2) {
		lk->dotlock_dev = st.st_dev;
		lk->dotlock_ino = st.st_ino;
		return 1;
	}
	if (link_errno == EEXIST || link_errno == EINTR || link_errno == 0)
		return 0;
	errno = link_errno;
	return -1;
}

/* What is found at a dotlock's name. */
enum lock_look {
	LOOK_GONE,    /* nothing there (or it changed while we looked): look again */
	LOOK_LOCK,    /* a lock: empty, a pid line, or a symbolic link; none holds mail */
	LOOK_OTHER,   /* anything else (a mailbox, say): never broken */
};

/* Empty, or a pid line as lockers write it ("1234\n"); *pid its pid, 0 if none. */
static bool parse_pid_line(const char *buf, size_t n, long *pid)
{
	size_t i = 0;
	long v = 0;
	while (i < n && (buf[i] == ' ' || buf[i] == '\t'))
		i++;
	for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		if (v < 100000000L)   /* no pid is that large: stays non-zero, never overflows */
			v = v * 10 + (buf[i] - '0');
	while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	*pid = v;
	return i == n;
}

/* Read what lockpath holds, if it is still the file lstat saw. LOOK_* */
static enum lock_look dotlock_read(const char *lockpath, const struct stat *seen, long *pid)
{
	char buf[DOTLOCK_MAX_SIZE + 1];
	int fd;
	while ((fd = open(lockpath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)) < 0 &&
	       errno == EINTR)
		;
	if (fd < 0)
		return errno == ENOENT ? LOOK_GONE : LOOK_OTHER;
	struct stat st;
	ssize_t n = -1;
	bool same = fstat(fd, &st) == 0 && st.st_ino == seen->st_ino && st.st_dev == seen->st_dev;
	if (same)
		n = pread_full(fd, buf, sizeof(buf), 0);
	close(fd);
	if (!same)
		return LOOK_GONE;
	if (n < 0 || n > DOTLOCK_MAX_SIZE)
		return LOOK_OTHER;
	return parse_pid_line(buf, (size_t)n, pid) ? LOOK_LOCK : LOOK_OTHER;
}

/*
 * Does lockpath look like a lock? Only a small file that is empty or holds a
 * pid line, or a symbolic link (a lock style that holds no mail either), may
 * be broken: never a file that holds mail (a mailbox whose name ends in .lock).
 */
static enum lock_look dotlock_inspect(const char *lockpath, struct stat *st, long *pid)
{
	*pid = 0;
	if (lstat(lockpath, st) < 0) {
		memset(st, 0, sizeof(*st));   /* st_mode 0: "cannot be examined" */
		return errno == ENOENT ? LOOK_GONE : LOOK_OTHER;
	}
	if (S_ISLNK(st->st_mode))
		return LOOK_LOCK;
	if (!S_ISREG(st->st_mode) || st->st_size > DOTLOCK_MAX_SIZE)
		return LOOK_OTHER;
	return dotlock_read(lockpath, st, pid);
}

/*
 * When this system booted, on the CLOCK_REALTIME scale (the keeper cannot
 * read /proc under Landlock); 0 if unknown. Rounded down a second, so a lock
 * made just after boot is never taken for older.
 */
static time_t boot_time(void)
{
	struct timespec now, up;
	if (clock_gettime(CLOCK_REALTIME, &now) < 0 || clock_gettime(CLOCK_BOOTTIME, &up) < 0)
		return 0;
	return now.tv_sec - up.tv_sec - 1;
}

/* Why the lock (which looks like one) is stale, or NULL while it may be held. */
static const char *stale_reason(const struct stat *st, long pid)
{
	/* A lock from before this boot has no holder: a power cut or crash left it. */
	if (st->st_mtime < boot_time())
		return "made before this boot";
	if (time(NULL) - st->st_mtime > DOTLOCK_STALE_AGE)
		return "too old";
	if (pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return "its process is gone";
	return NULL;
}

/* The name still leads to the inode we judged (nobody replaced it meanwhile). */
static bool still_named(const char *path, const struct stat *seen)
{
	struct stat st;
	return lstat(path, &st) == 0 && st.st_dev == seen->st_dev && st.st_ino == seen->st_ino;
}

/*
 * Remove lockpath when it is a stale lock (see stale_reason). true when it
 * is gone (broken, or vanished by itself), so retry at once. Something at
 * that name that is no lock is logged once (*told) and never removed.
 */
static bool dotlock_break_stale(const char *lockpath, bool *told)
{
	struct stat st;
	long pid;
	enum lock_look look = dotlock_inspect(lockpath, &st, &pid);
	if (look == LOOK_GONE)
		return true;
	if (look == LOOK_OTHER) {
		if (!*told && st.st_mode == 0)
			log_msg(LOG_WARNING, "%s cannot be examined (%s), never removed", lockpath,
				strerror(errno));
		else if (!*told)
			log_msg(LOG_WARNING, "%s is not a lock (a %s of %jd octets, owner uid %ju), "
				"never removed: the mailbox stays locked while it is there", lockpath,
				S_ISREG(st.st_mode) ? "file" : "non-regular file",
				(intmax_t)st.st_size, (uintmax_t)st.st_uid);
		*told = true;
		return false;
	}
	const char *why = stale_reason(&st, pid);
	if (!why)
		return false;
	if (!still_named(lockpath, &st))
		return true;
	if (unlink(lockpath) < 0 && errno != ENOENT) {
		log_msg(LOG_WARNING, "cannot remove stale dotlock %s: %s", LOG_Q(lockpath), strerror(errno));
		return false;
	}
	log_msg(LOG_NOTICE, "removed stale dotlock %s (%s)", LOG_Q(lockpath), why);
	return true;
}

/* Dotlock errors that mean "this directory is not ours to write in". */
static bool dir_not_writable(int err)
{
	return err == EACCES || err == EPERM || err == EROFS;
}

static void dotlock_why(int err, char *why, size_t whylen)
{
	if (err == ETIMEDOUT)
		set_why(why, whylen, "mailbox is locked by another process");
	else
		set_why(why, whylen, "cannot create dotlock: %s", strerror(err));
}

/* Take PATH.lock here. 0 taken or skipped (directory not writable), -1 with errno and why. */
static int dotlock_take_local(const char *path, const struct timespec *deadline,
			      struct mail_lock *lk, char *why, size_t whylen)
{
	char *lockpath = concat(path, strlen(path), DOTLOCK_SUFFIX);
	if (!lockpath) {
		set_why(why, whylen, "out of memory");
		return -1;
	}
	char *tmp = create_temp_lock(path);
	if (!tmp) {
		int err = errno;
		if (dir_not_writable(err)) {
			/* Debian's /var/mail is root:mail 2775: fcntl has to do. */
			log_msg(LOG_WARNING, "cannot create a dotlock for %s (%s); relying on fcntl",
				LOG_Q(path), strerror(err));
			free(lockpath);
			return 0;
		}
		set_why(why, whylen, "cannot create dotlock: %s", strerror(err));
		free(lockpath);
		errno = err;
		return -1;
	}

	int rc;
	bool told = false;
	for (;;) {
		rc = dotlock_attempt(tmp, lockpath, lk);
		if (rc != 0)
			break;
		/* Retry at once after breaking a stale lock, but never past the deadline. */
		if (dotlock_break_stale(lockpath, &told) && !deadline_passed(deadline))
			continue;
		if (!pause_before_retry(deadline)) {
			rc = -1;
			errno = ETIMEDOUT;
			break;
		}
	}
	int err = errno;
	if (unlink(tmp) < 0)
		log_msg(LOG_WARNING, "cannot remove temporary lock file %s: %s", LOG_Q(tmp), strerror(errno));
	free(tmp);

	if (rc < 0) {
		dotlock_why(err, why, whylen);
		free(lockpath);
		errno = err;
		return -1;
	}
	lk->dotlock = lockpath;
	lk->held |= LOCK_DOTLOCK;
	return 0;
}

/* Does the lock file hold our pid, as we wrote it? */
static bool dotlock_has_our_pid(const char *lockpath)
{
	char want[32], got[32];
	int wlen = snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	int fd = open(lockpath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n;
	while ((n = read(fd, got, sizeof(got))) < 0 && errno == EINTR)
		;
	close(fd);
	return n == wlen && memcmp(got, want, (size_t)wlen) == 0;
}

/*
 * Remove our dotlock, unless someone broke it and another process holds it
 * now. The inode alone does not prove it (a new file may reuse the number),
 * so the pid written into it must match too.
 */
static void dotlock_release_local(struct mail_lock *lk)
{
	struct stat st;
	if (lstat(lk->dotlock, &st) < 0) {
		log_msg(LOG_WARNING, "our dotlock %s is gone: %s", LOG_Q(lk->dotlock), strerror(errno));
	} else if (st.st_dev != lk->dotlock_dev || st.st_ino != lk->dotlock_ino ||
		   !dotlock_has_our_pid(lk->dotlock)) {
		log_msg(LOG_WARNING, "dotlock %s was taken over by another process; left alone",
			LOG_Q(lk->dotlock));
	} else if (unlink(lk->dotlock) < 0 && errno != ENOENT) {
		log_msg(LOG_ERR, "cannot remove dotlock %s: %s", LOG_Q(lk->dotlock), strerror(errno));
	} else if (fsync_parent_dir(lk->dotlock) < 0) {
		/* A journal's directory sync may have made the lock durable: so must its removal be. */
		log_msg(LOG_WARNING, "cannot sync the directory of dotlock %s: %s", LOG_Q(lk->dotlock),
			strerror(errno));
	}
	free(lk->dotlock);
	lk->dotlock = NULL;
}

/* ---- through the dotlocker ---------------------------------------------- */

static int dotlocker_fd = -1;      /* the keeper's end; -1: none */
static char *dotlocker_mailbox;    /* the one mailbox it locks */

void lock_use_dotlocker(int fd, const char *mailbox)
{
	lock_forget_dotlocker();
	dotlocker_mailbox = strdup(mailbox);
	if (dotlocker_mailbox)
		dotlocker_fd = fd;
	else
		close(fd);   /* no dotlocker then: the dotlock is skipped with its log line */
}

void lock_forget_dotlocker(void)
{
	if (dotlocker_fd >= 0)
		close(dotlocker_fd);
	dotlocker_fd = -1;
	free(dotlocker_mailbox);
	dotlocker_mailbox = NULL;
}

static bool through_dotlocker(const char *path)
{
	return dotlocker_fd >= 0 && strcmp(path, dotlocker_mailbox) == 0;
}

/* Whole seconds until the deadline, rounded up; 0 once it has passed. */
static unsigned seconds_left(const struct timespec *deadline)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0 || !time_before(&now, deadline))
		return 0;
	time_t s = deadline->tv_sec - now.tv_sec + (deadline->tv_nsec > now.tv_nsec ? 1 : 0);
	return s > LOCK_TIMEOUT_MAX ? LOCK_TIMEOUT_MAX : (unsigned)s;
}

/* One request, one answer. 0, or -1 with errno (EIO: the dotlocker is gone or refused). */
static int dotlocker_call(uint32_t op, unsigned timeout, struct dl_answer *a)
{
	struct dl_request rq = {.op = op, .timeout = timeout};
	ssize_t n;
	while ((n = send(dotlocker_fd, &rq, sizeof(rq), MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(rq))
		while ((n = recv(dotlocker_fd, a, sizeof(*a), 0)) < 0 && errno == EINTR)
			;
	if (n != (ssize_t)sizeof(*a)) {
		log_msg(LOG_ERR, "the dotlocker of %s did not answer: %s", LOG_Q(dotlocker_mailbox),
			n < 0 ? strerror(errno) : "it has ended");
		errno = EIO;
		return -1;
	}
	return 0;
}

static int dotlock_take_remote(const char *path, const struct timespec *deadline,
			       struct mail_lock *lk, char *why, size_t whylen)
{
	struct dl_answer a;
	if (dotlocker_call(DL_TAKE, seconds_left(deadline), &a) < 0) {
		dotlock_why(EIO, why, whylen);
		return -1;
	}
	if (a.err != 0) {
		dotlock_why(a.err, why, whylen);
		errno = a.err;
		return -1;
	}
	if (!a.taken)
		return 0;   /* skipped: the dotlocker logged why */
	lk->dotlock = concat(path, strlen(path), DOTLOCK_SUFFIX);
	lk->dotlock_remote = true;
	lk->held |= LOCK_DOTLOCK;
	if (!lk->dotlock) {   /* taken, but no name to release it by: give it back now */
		dotlocker_call(DL_RELEASE, 0, &a);
		set_why(why, whylen, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static void dotlock_release_remote(struct mail_lock *lk)
{
	struct dl_answer a;
	if (dotlocker_fd >= 0 && dotlocker_call(DL_RELEASE, 0, &a) == 0 && a.err != 0)
		log_msg(LOG_ERR, "the dotlocker cannot remove %s: %s", LOG_Q(lk->dotlock),
			strerror(a.err));
	free(lk->dotlock);
	lk->dotlock = NULL;
	lk->dotlock_remote = false;
}

static int dotlock_take(const char *path, const struct timespec *deadline,
			struct mail_lock *lk, char *why, size_t whylen)
{
	if (through_dotlocker(path))
		return dotlock_take_remote(path, deadline, lk, why, whylen);
	return dotlock_take_local(path, deadline, lk, why, whylen);
}

static void dotlock_release(struct mail_lock *lk)
{
	if (lk->dotlock_remote)
		dotlock_release_remote(lk);
	else
		dotlock_release_local(lk);
}

int dotlock_take_here(const char *path, unsigned timeout, struct mail_lock *lk,
		      char *why, size_t whylen)
{
	memset(lk, 0, sizeof(*lk));
	lk->fd = -1;
	struct timespec deadline = deadline_after(timeout);
	return dotlock_take_local(path, &deadline, lk, why, whylen);
}

void dotlock_release_here(struct mail_lock *lk)
{
	if (lk->dotlock)
		dotlock_release_local(lk);
	lk->held = 0;
}

/* ---- fcntl and flock ---------------------------------------------------- */

/*
 * An open-file-description lock on the whole file. It conflicts with the
 * classic POSIX locks the MDAs take, but unlike those it is not dropped when
 * some other descriptor of this process on the same file is closed.
 * 1 locked, 0 busy, -1 error.
 */
static int fcntl_attempt(int fd)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	for (;;) {
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
			return 1;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EACCES)
			return 0;
		return -1;
	}
}

static void fcntl_release(int fd)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		if (errno != EINTR) {
			log_msg(LOG_ERR, "cannot release fcntl lock: %s", strerror(errno));
			return;
		}
	}
}

#ifdef POP3D_TEST_FLOCK_AS_FCNTL
/*
 * The test build (tests/pop3d-nfslock, tests/test_lock_nfs): flock(2) as the
 * Linux NFS client gives it, a whole-file lock of the fcntl family owned by
 * the open file, so it conflicts with the MDAs' fcntl locks.
 */
static int flock_call(int fd, int op)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = (op & LOCK_UN) ? F_UNLCK : F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		errno = EWOULDBLOCK;
	return -1;
}

bool flock_is_emulated(int fd)
{
	(void)fd;
	return true;
}
#else
#define flock_call flock

/* Filesystems whose Linux client implements flock(2) with byte-range locks on the server. */
#define FS_NFS   0x6969UL
#define FS_CIFS  0xFF534D42UL
#define FS_SMB2  0xFE534D42UL

bool flock_is_emulated(int fd)
{
	struct statfs sf;
	if (fstatfs(fd, &sf) < 0)
		return false;   /* cannot happen on an open file; the flock path is then the safe guess */
	unsigned long type = (unsigned long)sf.f_type & 0xFFFFFFFFUL;
	return type == FS_NFS || type == FS_CIFS || type == FS_SMB2;
}
#endif

/* 1 locked, 0 busy, -1 error. */
static int flock_attempt(int fd)
{
	for (;;) {
		if (flock_call(fd, LOCK_EX | LOCK_NB) == 0)
			return 1;
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
}

static void flock_release(int fd)
{
	while (flock_call(fd, LOCK_UN) < 0) {
		if (errno != EINTR) {
			log_msg(LOG_ERR, "cannot release flock: %s", strerror(errno));
			return;
		}
	}
}

/* Retry attempt(fd) until it succeeds or the deadline passes. 0, or -1 with errno. */
static int wait_for_lock(int (*attempt)(int fd), int fd, const struct timespec *deadline)
{
	for (;;) {
		int rc = attempt(fd);
		if (rc > 0)
			return 0;
		if (rc < 0)
			return -1;
		if (!pause_before_retry(deadline)) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

static int take_fd_lock(int (*attempt)(int fd), int fd, const struct timespec *deadline,
			const char *kind, char *why, size_t whylen)
{
	if (wait_for_lock(attempt, fd, deadline) == 0)
		return 0;
	int err = errno;
	if (err == ETIMEDOUT)
		set_why(why, whylen, "mailbox is locked by another process");
	else
		set_why(why, whylen, "cannot %s-lock mailbox: %s", kind, strerror(err));
	errno = err;
	return -1;
}

/* ---- the mailbox lock --------------------------------------------------- */

int mailbox_lock(const char *path, int fd, unsigned methods, unsigned timeout,
		 struct mail_lock *lk, char *why, size_t whylen)
{
	memset(lk, 0, sizeof(*lk));
	lk->fd = -1;
	struct timespec deadline = deadline_after(timeout);

	if ((methods & LOCK_DOTLOCK) && dotlock_take(path, &deadline, lk, why, whylen) < 0)
		goto fail;
	if (fd < 0)
		return 0;   /* no mailbox file yet: only the dotlock applies */
	lk->fd = fd;
	if (methods & LOCK_FCNTL) {
		if (take_fd_lock(fcntl_attempt, fd, &deadline, "fcntl", why, whylen) < 0)
			goto fail;
		lk->held |= LOCK_FCNTL;
	}
	/* Where flock is emulated it is our fcntl lock again (same owner, the open file): taking it
	 * adds nothing, and releasing it would release the fcntl lock. */
	bool same_as_fcntl = (lk->held & LOCK_FCNTL) && flock_is_emulated(fd);
	if ((methods & LOCK_FLOCK) && !same_as_fcntl) {
		if (take_fd_lock(flock_attempt, fd, &deadline, "flock", why, whylen) < 0)
			goto fail;
		lk->held |= LOCK_FLOCK;
	}
	return 0;

fail:;
	int err = errno;
	mailbox_unlock(lk);
	errno = err;
	return -1;
}

void mailbox_unlock(struct mail_lock *lk)
{
	int saved = errno;
	if (lk->held & LOCK_FLOCK)
		flock_release(lk->fd);
	if (lk->held & LOCK_FCNTL)
		fcntl_release(lk->fd);
	if (lk->dotlock)
		dotlock_release(lk);
	lk->held = 0;
	lk->fd = -1;
	errno = saved;
}

/* ---- who may create files beside a mailbox ------------------------------ */

static bool in_groups(gid_t g, const struct account_creds *who)
{
	if (g == who->gid)
		return true;
	for (size_t i = 0; i < who->ngroups; i++)
		if (who->groups[i] == g)
			return true;
	return false;
}

void spool_access_decide(const struct stat *dir, const struct account_creds *who,
			 struct spool_access *out)
{
	const mode_t wx_user = S_IWUSR | S_IXUSR, wx_group = S_IWGRP | S_IXGRP,
		     wx_other = S_IWOTH | S_IXOTH;
	mode_t m = dir->st_mode;
	bool can;
	/* The kernel uses the first class the account is in, even when a later one grants more. */
	if (who->uid == 0)
		can = true;
	else if (who->uid == dir->st_uid)
		can = (m & wx_user) == wx_user;
	else if (in_groups(dir->st_gid, who))
		can = (m & wx_group) == wx_group;
	else
		can = (m & wx_other) == wx_other;
	out->group = dir->st_gid;
	if (can)
		out->who = SPOOL_ACCOUNT;
	else if (who->uid != dir->st_uid && !in_groups(dir->st_gid, who) && (m & wx_group) == wx_group)
		out->who = SPOOL_GROUP;
	else
		out->who = SPOOL_NOBODY;
}

/* The supplementary groups the account will have: n of them into groups (at most *n). */
static void account_groups(const char *account, gid_t gid, gid_t *groups, size_t *n)
{
	int got;
	if (geteuid() != 0) {
		got = getgroups((int)*n, groups);
	} else if (account) {
		got = (int)*n;
		/* More than MAX_ACCOUNT_GROUPS: the first ones (-1 but got filled): a "no" at worst. */
		if (getgrouplist(account, gid, groups, &got) < 0 && got > (int)*n)
			got = (int)*n;
	} else {
		got = 0;
	}
	*n = got < 0 ? 0 : (size_t)got;
}

int spool_access(const char *mailbox, const char *account, uid_t uid, gid_t gid,
		 struct spool_access *out)
{
	out->who = SPOOL_ACCOUNT;
	out->group = gid;
	char dir[MAX_PATH_LEN];
	struct stat st;
	if (parent_dir(mailbox, dir, sizeof(dir)) < 0 || stat(dir, &st) < 0)
		return -1;
	gid_t groups[MAX_ACCOUNT_GROUPS];
	size_t n = MAX_ACCOUNT_GROUPS;
	account_groups(account, gid, groups, &n);
	struct account_creds who = {.uid = uid, .gid = gid, .groups = groups, .ngroups = n};
	spool_access_decide(&st, &who, out);
	return 0;
}

/* ---- the one-session lock ----------------------------------------------- */

/* flock on the mailbox itself: the MDAs use dotlock + fcntl, so this never blocks them. */
static int session_flock(int fd)
{
	int rc = flock_attempt(fd);
	if (rc > 0)
		return 0;
	if (rc == 0)
		errno = EWOULDBLOCK;
	return -1;
}

/*
 * When the MDAs use flock we must not hold one for the session: bind an
 * abstract AF_UNIX socket named after the file instead. The name is freed by
 * the kernel when the socket is closed or the process dies; it is per host
 * (and per network namespace).
 */
static int session_socket(int fd, int *holder)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	int len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "pop3d-session-%ju-%ju",
			   (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
	if (len < 0 || (size_t)len >= sizeof(sa.sun_path) - 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
	if (bind(s, (struct sockaddr *)&sa, salen) < 0) {
		int err = errno == EADDRINUSE ? EWOULDBLOCK : errno;
		close(s);
		errno = err;
		return -1;
	}
	*holder = s;
	return 0;
}

/* The lock file is usable only if it is a plain file of ours, with no other name. */
static int check_lock_file(int lfd, const char *lockfile)
{
	struct stat st;
	if (fstat(lfd, &st) < 0)
		return -1;
	if (!is_own_plain_file(&st)) {
		log_msg(LOG_ERR, "%s: the session lock file is not a plain file of uid %ju alone; "
			"remove it", LOG_Q(lockfile), (uintmax_t)geteuid());
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* The name still leads to the file we locked (nobody removed or replaced it meanwhile). */
static bool lock_file_still_named(int lfd, const char *lockfile)
{
	struct stat held, named;
	return fstat(lfd, &held) == 0 && lstat(lockfile, &named) == 0 &&
	       held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

/*
 * Where flock is emulated with byte-range locks (NFS), a lock on the mailbox
 * would conflict with the MDAs' fcntl locks for the whole session: take an
 * open-file-description lock on a file of its own instead, seen by every host
 * that shares the spool. The file is never removed (removing it would let two
 * sessions lock two different files). 1 locked (*holder set), 0 busy, -1
 * error; errno ENOLCK: the file cannot be created here (not writable).
 */
static int session_lock_file(const char *lockfile, int *holder)
{
	for (int attempt = 0; attempt < SESSION_LOCK_ATTEMPTS; attempt++) {
		int lfd;
		do
			lfd = open(lockfile, O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
		while (lfd < 0 && errno == EINTR);
		if (lfd < 0) {
			if (errno == EACCES || errno == EPERM || errno == EROFS)
				errno = ENOLCK;
			return -1;
		}
		int rc = check_lock_file(lfd, lockfile) < 0 ? -1 : fcntl_attempt(lfd);
		if (rc == 1 && lock_file_still_named(lfd, lockfile)) {
			*holder = lfd;
			return 1;
		}
		int err = errno;
		close(lfd);
		errno = err;
		if (rc <= 0)
			return rc;
	}
	log_msg(LOG_ERR, "%s: the session lock file keeps being replaced", LOG_Q(lockfile));
	errno = EAGAIN;
	return -1;
}

/* Busy is EWOULDBLOCK for the callers. */
static int busy_or_error(int rc)
{
	if (rc == 0)
		errno = EWOULDBLOCK;
	return rc > 0 ? 0 : -1;
}

int session_lock(int fd, const char *lockfile, unsigned methods, int *holder)
{
	*holder = -1;
	if (flock_is_emulated(fd)) {
		/* Never flock here: it would be an fcntl lock on the mailbox, blocking delivery. */
		if (!lockfile)
			return session_socket(fd, holder);
		int rc = session_lock_file(lockfile, holder);
		if (rc >= 0 || errno != ENOLCK)
			return busy_or_error(rc);
		log_msg(LOG_WARNING, "%s: flock is emulated with fcntl locks here and the session "
			"lock file cannot be created: the session lock holds on this host only "
			"(--journal-dir names a directory the users can write)", LOG_Q(lockfile));
		return session_socket(fd, holder);
	}
	if (methods & LOCK_FLOCK)
		return session_socket(fd, holder);
	return session_flock(fd);
}
