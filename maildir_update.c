/*
 * Applying a Maildir's deletions at QUIT, journaled; finishing one a crash
 * interrupted.
 *
 * The promise is all or nothing: once the journal naming the files to
 * remove is durable, every one of them is removed (now, or by the recovery
 * at the next login or pop3d --recover); before that, none is. Only the
 * names in the journal are ever touched: mail delivered during the session
 * is not, kept messages are not renamed. A file that vanished meanwhile
 * (another client removed it, or moved it between new/ and cur/ or changed
 * its flags) is looked up by its base name, the part before ':'; gone
 * entirely is not an error.
 *
 * The journal, "<Maildir>/.pop3d-journal" (mbox_journal_path), is text:
 *   P3DMDJ1\n                      the magic (not the mbox journal's)
 *   <count>\n                      decimal, at most MAX_MESSAGES
 *   new/NAME\n or cur/NAME\n       count lines: the files to remove
 *   <sum>\n                        16 lowercase hex digits: FNV-1a 64 of
 *                                  every octet before this line
 * It is written under the temporary name (JOURNAL_TEMP_SUFFIX), fsynced,
 * renamed to its name (never over another file) and the Maildir fsynced, so
 * at its name it is always complete; a temporary one is a torn write, from
 * which nothing was applied, and is simply removed. An update holds an
 * flock on its journal from creation to removal: a recovery in another
 * process (a login at that instant) waits for it instead of racing it.
 *
 * maildirsize (Maildir++ quota): where "<Maildir>/maildirsize" exists, one
 * line "-<octets> -<count>\n" records the files a pass removed itself (its
 * unlinkat succeeded), after they are all gone and before the journal is.
 * A recovery counts only the files it removes, so no deletion is ever
 * recorded twice; files a crashed pass had removed before its line was
 * written (or synced, in a power cut) are not recorded at all: the quota
 * then counts them as used until maildirsize is recalculated from the
 * files, as Maildir++ implementations do (at the latest once it grows past
 * 5120 octets).
 * Failing to write that line is logged and does not fail the update: the
 * messages are gone, and the file is a cache.
 */
#define _GNU_SOURCE
#include "maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/limits.h>   /* NAME_MAX (<limits.h> may find ./limits.h) */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "lock.h"
#include "log.h"

#define MDJ_MAGIC       "P3DMDJ1\n"
#define MDJ_MAGIC_LEN   8
_Static_assert(sizeof(MDJ_MAGIC) - 1 == MDJ_MAGIC_LEN, "the magic is MDJ_MAGIC_LEN octets");
_Static_assert(MDJ_MAGIC_LEN <= FORMAT_HEAD_MAX, "is_own_file_of_format reads the magic");
#define MDJ_SUM_DIGITS  16
#define MDJ_SUBDIR_LEN  4                       /* "new/" or "cur/" */
#define MDJ_ENTRY_MAX   (MDJ_SUBDIR_LEN + NAME_MAX)   /* octets of an entry line, without LF */
/* The largest journal there can be: everything else is refused unread. */
#define MDJ_MAX_SIZE    ((off_t)MDJ_MAGIC_LEN + 16 /* the count line, and more */ + \
			 (off_t)MAX_MESSAGES * (MDJ_ENTRY_MAX + 1) + MDJ_SUM_DIGITS + 1)
#define MAILDIRSIZE     "maildirsize"           /* Maildir++'s quota file */

#define FNV_OFFSET      0xcbf29ce484222325ULL
#define FNV_PRIME       0x100000001b3ULL

/* What the internal steps return. */
enum {
	RC_OK = 0,
	RC_FAIL = -1,      /* an error: *why is set and it is logged */
	RC_CRASH = -2,     /* the fault hook said "crash here": touch nothing more */
};

enum { SUB_NEW, SUB_CUR, NSUB };
static const char *const subdir_name[NSUB] = {"new", "cur"};

/* One update or recovery in progress. */
struct mdop {
	const struct update_hooks *hooks;
	int step;
	const char *path;                /* the Maildir, for log lines */
	int dirfd;                       /* the Maildir (may be O_PATH: never synced itself) */
	int syncfd;                      /* the Maildir again, readable: to fsync it */
	int subfd[NSUB];                 /* new/ and cur/ */
	char jpath[MAX_PATH_LEN + 64];   /* the journal, for log lines */
	const char *jname;               /* ... its name in the Maildir */
	char tname[64];                  /* the temporary journal's name in the Maildir */
	char *why;
	size_t whylen;
	long removed;                    /* files this pass removed itself */
	off_t octets;                    /* ... their sizes */
	long gone;                       /* journaled files found nowhere (for the log) */
	char **vanished;                 /* journaled paths not where they were, to look up */
	size_t nvanished;
	size_t vanished_cap;
};

/* ---- errors, hooks ------------------------------------------------------------ */

/* update_error() of "<what>" (printf-style), errno its cause: RC_FAIL. */
static int fail(struct mdop *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct mdop *op, const char *fmt, ...)
{
	int err = errno;
	char what[MAX_PATH_LEN + 128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	errno = err;
	update_error(what, op->why, op->whylen);
	return RC_FAIL;
}

/* A point where the test hook may crash or fail the update (update.h). */
static int step(struct mdop *op, const char *what)
{
	op->step++;
	if (!op->hooks || !op->hooks->fault)
		return RC_OK;
	int r = op->hooks->fault(op->hooks->ctx, op->step, what);
	if (r > 0) {
		set_why(op->why, op->whylen, "crash injected at step %d (%s)", op->step, what);
		return RC_CRASH;
	}
	if (r < 0) {
		errno = -r;
		return fail(op, "%s: injected failure at step %d (%s)", op->path, op->step, what);
	}
	return RC_OK;
}

/* step() named "<what>-<n>": one per journaled file. */
static int step_n(struct mdop *op, const char *what, size_t n)
{
	char name[48];
	snprintf(name, sizeof(name), "%s-%zu", what, n);
	return step(op, name);
}

/* ---- setup ------------------------------------------------------------------- */

static int open_dir_at(int dfd, const char *name)
{
	int fd;
	while ((fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
	       errno == EINTR)
		;
	return fd;
}

/* path ends in '/'; dirfd is the Maildir (kept by the caller). */
static int op_init(struct mdop *op, const char *path, int dirfd, const struct update_hooks *hooks,
		   char *why, size_t whylen)
{
	memset(op, 0, sizeof(*op));
	op->hooks = hooks;
	op->path = path;
	op->dirfd = dirfd;
	op->syncfd = -1;
	op->subfd[SUB_NEW] = op->subfd[SUB_CUR] = -1;
	op->why = why;
	op->whylen = whylen;
	if (why && whylen > 0)
		why[0] = '\0';
	if (mbox_journal_path(path, NULL, op->jpath, sizeof(op->jpath)) < 0) {
		errno = ENAMETOOLONG;
		return fail(op, "%s: path too long", path);
	}
	op->jname = strrchr(op->jpath, '/') + 1;   /* path ends in '/': always there */
	int n = snprintf(op->tname, sizeof(op->tname), "%s%s", op->jname, JOURNAL_TEMP_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof(op->tname)) {
		errno = ENAMETOOLONG;
		return fail(op, "%s: journal name too long", path);
	}
	if ((op->syncfd = open_dir_at(dirfd, ".")) < 0)
		return fail(op, "cannot open %s", path);
	return RC_OK;
}

/* new/ and cur/: only when there is something to remove. */
static int op_open_subdirs(struct mdop *op)
{
	for (int s = 0; s < NSUB; s++)
		if (op->subfd[s] < 0 && (op->subfd[s] = open_dir_at(op->dirfd, subdir_name[s])) < 0)
			return fail(op, "cannot open %s%s", op->path, subdir_name[s]);
	return RC_OK;
}

static void op_free(struct mdop *op)
{
	if (op->syncfd >= 0)
		close(op->syncfd);
	for (int s = 0; s < NSUB; s++)
		if (op->subfd[s] >= 0)
			close(op->subfd[s]);
	for (size_t i = 0; i < op->nvanished; i++)
		free(op->vanished[i]);
	free(op->vanished);
	op->vanished = NULL;
	op->nvanished = 0;
}

static int fsync_fd(struct mdop *op, int fd, const char *what)
{
	/* Some file systems cannot sync a directory and say EINVAL: nothing to do. */
	if (fsync_retry(fd) < 0 && errno != EINVAL)
		return fail(op, "cannot sync %s", what);
	return RC_OK;
}

/* Make a create, rename or unlink in the Maildir itself durable. */
static int sync_maildir(struct mdop *op)
{
	return fsync_fd(op, op->syncfd, op->path);
}

/* ---- journal entries ----------------------------------------------------------- */

/*
 * Is e[0..len) a path this code may remove: "new/NAME" or "cur/NAME", NAME
 * a message name maildir_name_parse() accepts? No '/' and no leading '.' in
 * NAME are checked here as well: that is what keeps every unlinkat below
 * inside new/ or cur/, whatever else the parser allows.
 */
static bool entry_is_valid(const char *e, size_t len)
{
	struct maildir_name mn;
	if (len <= MDJ_SUBDIR_LEN || len > MDJ_ENTRY_MAX)
		return false;
	if (memcmp(e, "new/", MDJ_SUBDIR_LEN) != 0 && memcmp(e, "cur/", MDJ_SUBDIR_LEN) != 0)
		return false;
	const char *name = e + MDJ_SUBDIR_LEN;
	size_t nlen = len - MDJ_SUBDIR_LEN;
	if (name[0] == '.' || memchr(name, '/', nlen) || memchr(name, '\0', nlen))
		return false;
	return maildir_name_parse(name, nlen, &mn) == 0;
}

static int entry_subdir(const char *e)
{
	return e[0] == 'n' ? SUB_NEW : SUB_CUR;
}

/* The length of a name's base: the part before the first ':'. */
static size_t base_len(const char *name)
{
	return strcspn(name, ":");
}

/* ---- removing the files --------------------------------------------------------- */

/* What remove_file() found. */
enum { FILE_GONE = 0, FILE_REMOVED = 1, FILE_LEFT = 2 };

/* Remove sub/name, a regular file: FILE_REMOVED, FILE_GONE, FILE_LEFT (not a regular file), RC_FAIL. */
static int remove_file(struct mdop *op, int sub, const char *name)
{
	struct stat st;
	if (fstatat(op->subfd[sub], name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? FILE_GONE : fail(op, "cannot stat %s%s/%s", op->path,
						  subdir_name[sub], name);
	if (!S_ISREG(st.st_mode)) {
		/* Not what the scan found (it serves regular files only): not ours to remove. */
		log_msg(LOG_WARNING, "update %s: %s/%s is %s now, left alone", LOG_Q(op->path),
			subdir_name[sub], LOG_Q(name), file_kind(st.st_mode));
		return FILE_LEFT;
	}
	if (unlinkat(op->subfd[sub], name, 0) < 0)
		return errno == ENOENT ? FILE_GONE : fail(op, "cannot remove %s%s/%s", op->path,
							  subdir_name[sub], name);
	op->removed++;
	op->octets += st.st_size;
	return FILE_REMOVED;
}

/* A journaled path not where it was: kept, to be looked up by its base name. */
static int note_vanished(struct mdop *op, const char *entry)
{
	if (op->nvanished == op->vanished_cap) {
		size_t cap = op->vanished_cap ? 2 * op->vanished_cap : 64;
		char **v = realloc(op->vanished, cap * sizeof(*v));
		if (!v)
			return fail(op, "out of memory");
		op->vanished = v;
		op->vanished_cap = cap;
	}
	if (!(op->vanished[op->nvanished] = strdup(entry)))
		return fail(op, "out of memory");
	op->nvanished++;
	return RC_OK;
}

/* Remove journaled file number n (from 1), entry "new/NAME" or "cur/NAME". */
static int remove_entry(struct mdop *op, const char *entry, size_t n)
{
	int r = remove_file(op, entry_subdir(entry), entry + MDJ_SUBDIR_LEN);
	if (r == FILE_GONE)
		r = note_vanished(op, entry);
	if (r < 0)
		return r;
	return step_n(op, "unlinked", n);
}

/* Order of bases: qsort and bsearch of vanished paths ("new/" or "cur/" before each). */
static int base_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

static int vanished_cmp(const void *x, const void *y)
{
	const char *a = *(char *const *)x + MDJ_SUBDIR_LEN, *b = *(char *const *)y + MDJ_SUBDIR_LEN;
	return base_cmp(a, base_len(a), b, base_len(b));
}

struct base_key {
	const char *base;
	size_t len;
};

static int key_cmp(const void *k, const void *x)
{
	const struct base_key *key = k;
	const char *b = *(char *const *)x + MDJ_SUBDIR_LEN;
	return base_cmp(key->base, key->len, b, base_len(b));
}

/* Every file of sub whose base is a vanished one's: that message, moved or renamed. */
static int remove_moved_in(struct mdop *op, int sub, size_t *found)
{
	int fd = open_dir_at(op->subfd[sub], ".");
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		int rc = fail(op, "cannot read %s%s", op->path, subdir_name[sub]);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	int rc = RC_OK;
	struct dirent *de;
	for (errno = 0; rc == RC_OK && (de = readdir(d)) != NULL; errno = 0) {
		if (de->d_name[0] == '.')
			continue;
		struct base_key key = {de->d_name, base_len(de->d_name)};
		if (!bsearch(&key, op->vanished, op->nvanished, sizeof(*op->vanished), key_cmp))
			continue;
		int r = remove_file(op, sub, de->d_name);
		if (r < 0)
			rc = r;
		else if (r == FILE_REMOVED) {
			log_msg(LOG_INFO, "update %s: %s/%s was moved there by another program: "
				"removed", LOG_Q(op->path), subdir_name[sub], LOG_Q(de->d_name));
			rc = step_n(op, "found", ++*found);
		}
	}
	if (rc == RC_OK && errno != 0)
		rc = fail(op, "cannot read %s%s", op->path, subdir_name[sub]);
	closedir(d);
	return rc;
}

/* The vanished files, looked up by base name in cur/ and new/: one pass over each. */
static int remove_moved(struct mdop *op)
{
	if (op->nvanished == 0)
		return RC_OK;
	qsort(op->vanished, op->nvanished, sizeof(*op->vanished), vanished_cmp);
	size_t found = 0;
	int rc = remove_moved_in(op, SUB_CUR, &found);
	if (rc == RC_OK)
		rc = remove_moved_in(op, SUB_NEW, &found);
	if (rc == RC_OK && found < op->nvanished)
		op->gone = (long)(op->nvanished - found);
	return rc;
}

/* The removals made durable. */
static int sync_subdirs(struct mdop *op)
{
	for (int s = 0; s < NSUB; s++) {
		char what[MAX_PATH_LEN + 8];
		snprintf(what, sizeof(what), "%s%s", op->path, subdir_name[s]);
		int rc = fsync_fd(op, op->subfd[s], what);
		if (rc != RC_OK)
			return rc;
	}
	return step(op, "dirs-synced");
}

/* ---- maildirsize ------------------------------------------------------------- */

static void quota_not_recorded(struct mdop *op, const char *what)
{
	log_msg(LOG_WARNING, "update %s: %s (%ld files, %jd octets not recorded in %s; Maildir++ "
		"readers recalculate it)", LOG_Q(op->path), what, op->removed,
		(intmax_t)op->octets, MAILDIRSIZE);
}

/* The maildirsize of the Maildir, for appending: -1 when there is none of ours. */
static int open_maildirsize(struct mdop *op)
{
	int fd = openat(op->dirfd, MAILDIRSIZE,
			O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT) {   /* a link (ELOOP), a FIFO without reader (ENXIO) ... */
			char what[128];
			snprintf(what, sizeof(what), "%s cannot be opened: %s", MAILDIRSIZE,
				 strerror(errno));
			quota_not_recorded(op, what);
		}
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !is_own_plain_file(&st)) {
		quota_not_recorded(op, "maildirsize is not a regular file of ours with one link");
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * One line "-<octets> -<count>" for the files this pass removed, in one
 * write (O_APPEND: never in the middle of another writer's line). Only a
 * crash is returned; a failure is logged and the update goes on.
 */
static int record_quota(struct mdop *op)
{
	if (op->removed == 0)
		return RC_OK;
	int fd = open_maildirsize(op);
	if (fd < 0)
		return RC_OK;
	char line[64];
	int len = snprintf(line, sizeof(line), "-%jd -%ld\n", (intmax_t)op->octets, op->removed);
	ssize_t w;
	while ((w = write(fd, line, (size_t)len)) < 0 && errno == EINTR)
		;
	int rc = RC_OK;
	if (w != len) {
		char what[128];
		snprintf(what, sizeof(what), "cannot append to %s: %s", MAILDIRSIZE,
			 w < 0 ? strerror(errno) : "short write");
		quota_not_recorded(op, what);
	} else if ((rc = step(op, "maildirsize-written")) == RC_OK) {
		if (fsync_retry(fd) < 0)
			log_msg(LOG_WARNING, "update %s: cannot sync %s: %s", LOG_Q(op->path),
				MAILDIRSIZE, strerror(errno));
		rc = step(op, "maildirsize-synced");
	}
	close(fd);
	if (rc == RC_FAIL) {
		quota_not_recorded(op, "maildirsize may not be up to date");
		rc = RC_OK;
	}
	return rc;
}

/* ---- the journal ------------------------------------------------------------- */

static uint64_t fnv_add(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

/* A journal being written, through a buffer. */
struct jwriter {
	int fd;
	off_t off;
	uint64_t sum;
	size_t len;
	char buf[MAILDIR_JOURNAL_IO_SIZE];
};

static int jw_flush(struct mdop *op, struct jwriter *jw)
{
	if (jw->len > 0 && pwrite_all(jw->fd, jw->buf, jw->len, jw->off) < 0)
		return fail(op, "cannot write journal %s%s", op->path, op->tname);
	jw->off += (off_t)jw->len;
	jw->len = 0;
	return RC_OK;
}

static int jw_put(struct mdop *op, struct jwriter *jw, const char *s, size_t n, bool summed)
{
	if (summed)
		jw->sum = fnv_add(jw->sum, s, n);
	while (n > 0) {
		if (jw->len == sizeof(jw->buf) && jw_flush(op, jw) != RC_OK)
			return RC_FAIL;
		size_t k = sizeof(jw->buf) - jw->len < n ? sizeof(jw->buf) - jw->len : n;
		memcpy(jw->buf + jw->len, s, k);
		jw->len += k;
		s += k;
		n -= k;
	}
	return RC_OK;
}

static bool is_deleted(const struct mbox *mb, size_t i)
{
	return i >= mb->first && mb->msgs[i].deleted;
}

/* The journal's octets for mb's deletions, written to jw->fd. */
static int write_entries(struct mdop *op, const struct mbox *mb, size_t ndel, struct jwriter *jw)
{
	char count[24];
	int n = snprintf(count, sizeof(count), "%zu\n", ndel);
	int rc = jw_put(op, jw, MDJ_MAGIC, MDJ_MAGIC_LEN, true);
	if (rc == RC_OK)
		rc = jw_put(op, jw, count, (size_t)n, true);
	for (size_t i = 0; rc == RC_OK && i < mb->nmsgs; i++) {
		if (!is_deleted(mb, i))
			continue;
		const char *e = maildir_msg_path(mb, i);
		rc = jw_put(op, jw, e, strlen(e), true);
		if (rc == RC_OK)
			rc = jw_put(op, jw, "\n", 1, true);
	}
	char sum[MDJ_SUM_DIGITS + 2];
	snprintf(sum, sizeof(sum), "%016" PRIx64 "\n", jw->sum);
	if (rc == RC_OK)
		rc = jw_put(op, jw, sum, MDJ_SUM_DIGITS + 1, false);
	if (rc == RC_OK)
		rc = jw_flush(op, jw);
	return rc;
}

/*
 * The journal under its temporary name, written, synced and locked; fd gets
 * it. On a failure it is removed again.
 */
static int journal_create(struct mdop *op, const struct mbox *mb, size_t ndel, int *fd)
{
	*fd = openat(op->dirfd, op->tname, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0) {
		int rc = fail(op, "update %s: cannot create journal %s%s", op->path, op->path,
			      op->tname);
		if (errno == EEXIST)
			log_msg(LOG_ERR, "update %s: %s%s is in the way (the next login removes a torn "
				"journal of pop3d's; anything else, remove it), nothing applied",
				LOG_Q(op->path), LOG_Q(op->path), op->tname);
		return rc;
	}
	/* Fresh: nobody else can hold it. A recovery that removed it in this instant
	 * makes the rename below fail, with nothing applied. */
	int rc = RC_OK;
	if (flock(*fd, LOCK_EX | LOCK_NB) < 0)
		rc = fail(op, "cannot lock journal %s%s", op->path, op->tname);
	struct jwriter *jw = rc == RC_OK ? malloc(sizeof(*jw)) : NULL;
	if (rc == RC_OK && !jw)
		rc = fail(op, "out of memory");
	if (rc == RC_OK) {
		*jw = (struct jwriter){.fd = *fd, .sum = FNV_OFFSET};
		rc = write_entries(op, mb, ndel, jw);
		free(jw);
	}
	if (rc == RC_OK)
		rc = step(op, "journal-written");
	if (rc == RC_OK && fsync_retry(*fd) < 0)
		rc = fail(op, "cannot sync journal %s%s", op->path, op->tname);
	if (rc == RC_OK)
		rc = step(op, "journal-synced");
	if (rc == RC_FAIL) {
		unlinkat(op->dirfd, op->tname, 0);
		close(*fd);
		*fd = -1;
	}
	return rc;
}


/*
 * Rename from to to in the directory dirfd, never over an existing to
 * (EEXIST). Where the file system has no RENAME_NOREPLACE (NFS, FUSE:
 * EINVAL), a link and an unlink do the same; a crash between them leaves
 * both names, and the temporary one is removed by the recovery.
 */
static int rename_noreplace(int dirfd, const char *from, const char *to)
{
	if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
		return -1;
	if (linkat(dirfd, from, dirfd, to, 0) < 0)
		return -1;
	return unlinkat(dirfd, from, 0);
}
/* The journal at its name and durable: from here on every file in it goes. */
static int journal_commit(struct mdop *op)
{
	if (rename_noreplace(op->dirfd, op->tname, op->jname) < 0) {
		int rc = fail(op, "update %s: cannot rename journal %s%s to %s", op->path,
			      op->path, op->tname, op->jpath);
		if (errno == EEXIST)
			log_msg(LOG_ERR, "update %s: %s exists (a journal that needs recovery, or a "
				"file that is not pop3d's in its place), nothing applied",
				LOG_Q(op->path), LOG_Q(op->jpath));
		unlinkat(op->dirfd, op->tname, 0);
		return rc;
	}
	int rc = step(op, "journal-renamed");
	if (rc == RC_OK)
		rc = sync_maildir(op);
	if (rc == RC_OK)
		rc = step(op, "journal-dir-synced");
	if (rc == RC_FAIL) {
		/* Nothing removed yet: back out (if that fails too, recovery removes them all). */
		int err = errno;
		if (unlinkat(op->dirfd, op->jname, 0) == 0)
			fsync_retry(op->syncfd);
		errno = err;
	}
	return rc;
}

/* Every file is gone and recorded: the journal goes, and that is made durable. */
static int journal_remove(struct mdop *op)
{
	if (unlinkat(op->dirfd, op->jname, 0) < 0 && errno != ENOENT)
		return fail(op, "cannot remove journal %s", op->jpath);
	int rc = step(op, "journal-removed");
	if (rc == RC_OK)
		rc = sync_maildir(op);
	if (rc == RC_OK)
		rc = step(op, "dir-synced");
	return rc;
}

/* After the last unlink: the lookups, the syncs, maildirsize, the journal. */
static int finish_removals(struct mdop *op)
{
	int rc = remove_moved(op);
	if (rc == RC_OK)
		rc = sync_subdirs(op);
	if (rc == RC_OK)
		rc = record_quota(op);
	if (rc == RC_OK)
		rc = journal_remove(op);
	return rc;
}

/* ---- the update ------------------------------------------------------------------ */

/* How many messages are deleted; RC_FAIL when one has a path recovery would refuse. */
static int count_deleted(struct mdop *op, const struct mbox *mb, size_t *ndel)
{
	*ndel = 0;
	for (size_t i = 0; i < mb->nmsgs; i++) {
		if (!is_deleted(mb, i))
			continue;
		const char *e = maildir_msg_path(mb, i);
		if (!entry_is_valid(e, strlen(e))) {
			errno = EINVAL;
			return fail(op, "update %s: %s is no message path, nothing applied",
				    op->path, LOG_Q(e));
		}
		(*ndel)++;
	}
	return RC_OK;
}

static int remove_deleted(struct mdop *op, const struct mbox *mb)
{
	size_t n = 0;
	for (size_t i = 0; i < mb->nmsgs; i++) {
		if (!is_deleted(mb, i))
			continue;
		int rc = remove_entry(op, maildir_msg_path(mb, i), ++n);
		if (rc != RC_OK)
			return rc;
	}
	return finish_removals(op);
}

/* The session's list as the Maildir now is: the deleted messages dropped. */
static void drop_deleted(struct mbox *mb)
{
	size_t kept = 0;
	for (size_t i = 0; i < mb->nmsgs; i++)
		if (!is_deleted(mb, i))
			mb->msgs[kept++] = mb->msgs[i];
	mb->nmsgs = kept;
}

static int update(struct mdop *op, const struct mbox *mb)
{
	size_t ndel;
	int rc = count_deleted(op, mb, &ndel);
	if (rc != RC_OK || ndel == 0)
		return rc;
	if ((rc = op_open_subdirs(op)) != RC_OK)
		return rc;
	int jfd;   /* locked until the journal is gone */
	if ((rc = journal_create(op, mb, ndel, &jfd)) != RC_OK) {
		if (jfd >= 0)
			close(jfd);   /* a crash injected: the torn journal stays */
		return rc;
	}
	if ((rc = journal_commit(op)) == RC_OK) {
		rc = remove_deleted(op, mb);
		if (rc == RC_FAIL)
			log_msg(LOG_ERR, "update %s: interrupted, journal %s kept: the next login or "
				"pop3d --recover finishes it", LOG_Q(op->path), LOG_Q(op->jpath));
	}
	close(jfd);
	if (rc == RC_OK)
		log_msg(LOG_INFO, "update %s: %ld file%s removed, %jd octets%s", LOG_Q(op->path),
			op->removed, op->removed == 1 ? "" : "s", (intmax_t)op->octets,
			op->gone ? " (others were gone already)" : "");
	return rc;
}

enum mbox_status maildir_update(struct mbox *mb, const struct update_hooks *hooks,
				char *why, size_t whylen)
{
	if (!mb->maildir || mb->maildir->dirfd < 0 || !mb->path) {
		set_why(why, whylen, "cannot update the mailbox: no Maildir open");
		log_msg(LOG_ERR, "update %s: no Maildir open, nothing applied",
			LOG_Q(mb->path ? mb->path : "(none)"));
		return MBOX_TEMP;
	}
	struct mdop op;
	int rc = op_init(&op, mb->path, mb->maildir->dirfd, hooks, why, whylen);
	if (rc == RC_OK)
		rc = update(&op, mb);
	op_free(&op);
	if (rc != RC_OK)
		return MBOX_TEMP;
	if (why && whylen > 0)
		why[0] = '\0';   /* a maildirsize failure was logged: the update is done */
	drop_deleted(mb);
	return MBOX_OK;
}

/* ---- recovery -------------------------------------------------------------------- */

int maildir_journal_is_ours(int fd)
{
	/* A torn one may begin with zeros: its octets not written when the power went. */
	return is_own_file_of_format(fd, MDJ_MAGIC, MDJ_MAGIC_LEN, MDJ_MAGIC_LEN);
}

/* The journal being read: a line at a time. */
struct jreader {
	int fd;
	off_t off;             /* of buf[0] in the file */
	size_t pos, len;
	uint64_t sum;          /* of the lines read so far */
	char buf[MAILDIR_JOURNAL_IO_SIZE];
};

/* What jr_line() returns when there is no line. */
enum { JR_EOF = -1, JR_ERROR = -2 /* errno */, JR_BAD = -3 /* too long, or no LF at the end */ };

/*
 * The next line, without its LF, into line (MDJ_ENTRY_MAX + 1 octets,
 * NUL-terminated): its length, or JR_*.
 */
static ssize_t jr_line(struct jreader *jr, char *line, bool summed)
{
	size_t n = 0;
	for (;;) {
		if (jr->pos == jr->len) {
			jr->off += (off_t)jr->len;
			ssize_t r = pread_full(jr->fd, jr->buf, sizeof(jr->buf), jr->off);
			if (r < 0)
				return JR_ERROR;
			jr->pos = 0;
			jr->len = (size_t)r;
			if (r == 0)
				return n == 0 ? JR_EOF : JR_BAD;
		}
		char c = jr->buf[jr->pos++];
		if (summed)
			jr->sum = fnv_add(jr->sum, &c, 1);
		if (c == '\n') {
			line[n] = '\0';
			return (ssize_t)n;
		}
		if (n == MDJ_ENTRY_MAX)
			return JR_BAD;
		line[n++] = c;
	}
}

static void jr_rewind(struct jreader *jr)
{
	jr->off = 0;
	jr->pos = jr->len = 0;
	jr->sum = FNV_OFFSET;
}

/* Decimal digits only, no sign, no leading zero (but "0"), at most max. */
static bool parse_count(const char *s, size_t len, size_t max, size_t *out)
{
	if (len == 0 || len > 9 || (s[0] == '0' && len > 1))
		return false;
	size_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	*out = v;
	return v <= max;
}

/* The journal refused: kept for whoever looks at it. */
static int refuse(struct mdop *op, const char *what)
{
	errno = EPROTO;
	set_why(op->why, op->whylen, "cannot update the mailbox: its journal is damaged");
	log_msg(LOG_ERR, "recover %s: journal %s refused, nothing removed: %s; look at it, "
		"then remove it (the messages it names stay until then)", LOG_Q(op->path),
		LOG_Q(op->jpath), what);
	return RC_FAIL;
}

/* The whole journal checked before anything is removed; *count its entries. */
static int journal_check(struct mdop *op, struct jreader *jr, size_t *count)
{
	char line[MDJ_ENTRY_MAX + 1];
	struct stat st;
	if (fstat(jr->fd, &st) < 0)
		return fail(op, "cannot stat journal %s", op->jpath);
	if (st.st_size > MDJ_MAX_SIZE)
		return refuse(op, "larger than any journal pop3d writes");
	jr_rewind(jr);
	ssize_t n = jr_line(jr, line, true);
	if (n == JR_ERROR)
		return fail(op, "cannot read journal %s", op->jpath);
	if (n != MDJ_MAGIC_LEN - 1 || memcmp(line, MDJ_MAGIC, MDJ_MAGIC_LEN - 1) != 0)
		return refuse(op, "no magic line (a torn or foreign file)");
	if ((n = jr_line(jr, line, true)) < 0 || !parse_count(line, (size_t)n, MAX_MESSAGES, count))
		return n == JR_ERROR ? fail(op, "cannot read journal %s", op->jpath) :
			refuse(op, "no valid count line");
	for (size_t i = 0; i < *count; i++) {
		n = jr_line(jr, line, true);
		if (n == JR_ERROR)
			return fail(op, "cannot read journal %s", op->jpath);
		if (n < 0 || !entry_is_valid(line, (size_t)n)) {
			char what[64];
			snprintf(what, sizeof(what), "entry %zu is no new/NAME or cur/NAME", i + 1);
			return refuse(op, what);
		}
	}
	uint64_t want = jr->sum;
	char hex[MDJ_SUM_DIGITS + 1];
	snprintf(hex, sizeof(hex), "%016" PRIx64, want);
	n = jr_line(jr, line, false);
	if (n == JR_ERROR)
		return fail(op, "cannot read journal %s", op->jpath);
	if (n != MDJ_SUM_DIGITS || memcmp(line, hex, MDJ_SUM_DIGITS) != 0)
		return refuse(op, "its checksum does not match (torn or altered)");
	if ((n = jr_line(jr, line, false)) != JR_EOF)
		return n == JR_ERROR ? fail(op, "cannot read journal %s", op->jpath) :
			refuse(op, "octets after its checksum");
	return RC_OK;
}

/* Remove what the journal names and is still there, then finish as the update does. */
static int journal_replay(struct mdop *op, struct jreader *jr, size_t count)
{
	char line[MDJ_ENTRY_MAX + 1];
	jr_rewind(jr);
	ssize_t n = 0;
	for (int skip = 0; skip < 2 && n >= 0; skip++)   /* the magic and the count */
		n = jr_line(jr, line, false);
	for (size_t i = 0; n >= 0 && i < count; i++) {
		/* Checked above; read again, it must still be what was checked. */
		if ((n = jr_line(jr, line, false)) < 0 || !entry_is_valid(line, (size_t)n))
			break;
		int rc = remove_entry(op, line, i + 1);
		if (rc != RC_OK)
			return rc;
	}
	if (n < 0) {
		errno = EIO;
		return fail(op, "journal %s changed while being applied", op->jpath);
	}
	return finish_removals(op);
}

/*
 * Open a file found at name in the Maildir for recovery, if it is a journal
 * of ours (a regular file of our uid with one link, beginning with the magic,
 * empty, or with its first octets still zero: see journal_is_ours). *fd is -1
 * when there is none, or when it is someone else's: logged, left alone.
 */
static int open_found(struct mdop *op, const char *name, int *fd)
{
	/* Read-write: an exclusive flock needs it where flock is emulated (NFS). */
	*fd = openat(op->dirfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT)
		return RC_OK;
	/* A link, a FIFO, a directory, a file we may not write: not ours. */
	if (*fd < 0 && errno != ELOOP && errno != ENXIO && errno != EISDIR && errno != EACCES &&
	    errno != EPERM && errno != ETXTBSY)
		return fail(op, "cannot open %s%s", op->path, name);
	int ours = *fd < 0 ? 0 : maildir_journal_is_ours(*fd);
	if (ours < 0) {
		int rc = fail(op, "cannot read %s%s", op->path, name);
		close(*fd);
		*fd = -1;
		return rc;
	}
	if (ours == 0) {
		struct stat st;
		if (fstatat(op->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			log_msg(LOG_WARNING, "recover %s: %s is not a journal of pop3d's (%s, %jd "
				"octets, uid %ju, %ju links; expected a regular file of uid %ju with 1 "
				"link in pop3d's Maildir format): ignored and left alone",
				LOG_Q(op->path), name, file_kind(st.st_mode), (intmax_t)st.st_size,
				(uintmax_t)st.st_uid, (uintmax_t)st.st_nlink, (uintmax_t)geteuid());
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	return RC_OK;
}

/* Does name in the Maildir still name the file open on fd? */
static bool names_fd(const struct mdop *op, const char *name, int fd)
{
	struct stat held, named;
	return fstat(fd, &held) == 0 && fstatat(op->dirfd, name, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
	       held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

/*
 * The journal at name, ours and locked: an update in progress in another
 * process holds it until it is gone, and is waited for (at most LOCK_TIMEOUT
 * seconds). *fd -1: none (any more).
 */
static int take_found(struct mdop *op, const char *name, int *fd)
{
	for (int attempt = 0; attempt < SESSION_LOCK_ATTEMPTS; attempt++) {
		int rc = open_found(op, name, fd);
		if (rc != RC_OK || *fd < 0)
			return rc;
		for (unsigned long waited = 0; flock(*fd, LOCK_EX | LOCK_NB) < 0;) {
			if (errno == EINTR)
				continue;
			if (errno != EWOULDBLOCK || waited >= (unsigned long)LOCK_TIMEOUT * 1000000UL) {
				rc = fail(op, "recover %s: cannot lock %s%s%s", op->path, op->path, name,
					  errno == EWOULDBLOCK ? " (an update in progress holds it)" : "");
				close(*fd);
				*fd = -1;
				return rc;
			}
			struct timespec pause = {0, LOCK_RETRY_USEC * 1000L};
			nanosleep(&pause, NULL);
			waited += LOCK_RETRY_USEC;
		}
		if (names_fd(op, name, *fd))
			return RC_OK;
		close(*fd);   /* finished and removed while we waited: look again */
		*fd = -1;
	}
	return RC_OK;
}

/* A journal whose writing was cut short: nothing was removed from it. */
static int drop_torn(struct mdop *op, struct mbox_recovery *res)
{
	int fd;
	int rc = take_found(op, op->tname, &fd);
	if (rc != RC_OK || fd < 0)
		return rc;
	if (res)
		res->journal = true;   /* --recover: "no deletions left to apply, the journal removed" */
	if (unlinkat(op->dirfd, op->tname, 0) < 0 && errno != ENOENT)
		rc = fail(op, "cannot remove %s%s", op->path, op->tname);
	close(fd);
	if (rc != RC_OK)
		return rc;
	log_msg(LOG_NOTICE, "recover %s: %s removed (an interrupted update's torn journal; "
		"nothing had been removed)", LOG_Q(op->path), op->tname);
	if ((rc = step(op, "temp-removed")) == RC_OK)
		rc = sync_maildir(op);
	return rc;
}

/*
 * Where the journal's rename fell back to link + unlink (rename_noreplace),
 * a crash between the two leaves the journal under both names, one file of
 * two links that is no journal of ours to either name: the temporary name
 * goes first, so that the journal is found complete at its own.
 */
static int drop_second_name(struct mdop *op)
{
	struct stat t, j;
	if (fstatat(op->dirfd, op->tname, &t, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fstatat(op->dirfd, op->jname, &j, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(t.st_mode) || t.st_dev != j.st_dev || t.st_ino != j.st_ino ||
	    t.st_nlink != 2 || t.st_uid != geteuid())
		return RC_OK;
	if (unlinkat(op->dirfd, op->tname, 0) < 0 && errno != ENOENT)
		return fail(op, "cannot remove %s%s", op->path, op->tname);
	log_msg(LOG_NOTICE, "recover %s: %s removed (a second name of the journal, left by a "
		"crash while it was put in place)", LOG_Q(op->path), op->tname);
	return sync_maildir(op);
}

static int recover(struct mdop *op, struct mbox_recovery *res)
{
	int rc = drop_second_name(op);
	if (rc == RC_OK)
		rc = drop_torn(op, res);
	int jfd = -1;
	if (rc == RC_OK)
		rc = take_found(op, op->jname, &jfd);
	if (rc != RC_OK || jfd < 0)
		return rc;
	if (res)
		res->journal = true;
	struct jreader *jr = malloc(sizeof(*jr));
	size_t count = 0;
	if (!jr)
		rc = fail(op, "out of memory");
	else
		jr->fd = jfd;
	if (rc == RC_OK)
		rc = journal_check(op, jr, &count);
	if (rc == RC_OK)
		rc = op_open_subdirs(op);
	if (rc == RC_OK)
		rc = journal_replay(op, jr, count);
	free(jr);
	close(jfd);
	if (rc != RC_OK)
		return rc;
	if (res) {
		res->replayed = op->removed > 0;
		res->deletions = op->removed;
	}
	log_msg(LOG_NOTICE, "recover %s: interrupted update completed: %ld of %zu file%s removed "
		"now, %jd octets (the rest were removed before)", LOG_Q(op->path), op->removed,
		count, count == 1 ? "" : "s", (intmax_t)op->octets);
	return RC_OK;
}

/*
 * The session lock of the Maildir at dir (ending in '/'), open on dirfd, as
 * maildir_open() takes it: a live session's update is not a crash's to
 * finish. 1 taken (*holder to close, or -1: the lock is on dirfd), 0 held
 * by a session, -1 error.
 */
static int lock_out_sessions(const char *dir, int dirfd, unsigned lock_methods, int *holder,
			     char *why, size_t whylen)
{
	char lockfile[MAX_PATH_LEN];
	if (mbox_sidecar_path(dir, NULL, SESSION_LOCK_SUFFIX, lockfile, sizeof(lockfile)) < 0) {
		set_why(why, whylen, "Maildir path too long");
		return -1;
	}
	if (session_lock(dirfd, lockfile, lock_methods, holder) == 0)
		return 1;
	if (errno == EWOULDBLOCK)
		return 0;
	set_why(why, whylen, "cannot take the session lock: %s", strerror(errno));
	log_msg(LOG_ERR, "recover %s: cannot take the session lock: %s", LOG_Q(dir),
		strerror(errno));
	return -1;
}

int maildir_recover(const char *path, unsigned lock_methods, const struct update_hooks *hooks,
		    struct mbox_recovery *res, char *why, size_t whylen)
{
	if (res)
		*res = (struct mbox_recovery){.deletions = -1};
	char dir[MAX_PATH_LEN + 1];
	if (maildir_dir_path(path, dir, sizeof(dir) - 1) < 0) {
		set_why(why, whylen, "Maildir path too long");
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Never through a symbolic link; a missing Maildir, or one not to be served
	 * (maildir_dir_problem), has nothing to recover: opening it gives the reason. */
	int dirfd = open_dir_at(AT_FDCWD, dir);
	if (dirfd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EACCES))
		return 0;
	struct stat st;
	if (dirfd < 0 || fstat(dirfd, &st) < 0) {
		set_why(why, whylen, "cannot open the Maildir: %s", strerror(errno));
		log_msg(LOG_ERR, "recover %s: cannot open it: %s", LOG_Q(path), strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		return -1;
	}
	if (maildir_dir_problem(&st)) {
		close(dirfd);
		return 0;
	}
	if (strcmp(dir, "/") != 0)
		strcat(dir, "/");
	/*
	 * Only under the session lock: a login refused [IN-USE] must not take
	 * the live session's journal, still being written, for a torn one.
	 */
	int holder = -1;
	int locked = lock_out_sessions(dir, dirfd, lock_methods, &holder, why, whylen);
	if (locked <= 0) {
		if (locked == 0)
			log_msg(LOG_INFO, "recover %s: a session holds it: nothing recovered now",
				LOG_Q(path));
		close(dirfd);
		return locked;
	}
	struct mdop op;
	int rc = op_init(&op, dir, dirfd, hooks, why, whylen);
	if (rc == RC_OK)
		rc = recover(&op, res);
	op_free(&op);
	if (holder >= 0)
		close(holder);
	close(dirfd);   /* the lock goes with it: the login's open takes it again */
	return rc == RC_OK ? 0 : -1;
}
