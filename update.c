/*
 * Applying deletions at QUIT: verified, journaled, crash-safe.
 *
 * The promise is that no message is ever lost. Deleting messages means moving
 * the kept data that follows the first deleted message (X) down to X and
 * truncating. Before the mailbox is touched, that kept data is copied into a
 * journal beside it and made durable; from then on a crash at any point can be
 * finished from the journal (mbox_recover), also when new mail was appended
 * after the crash. When nothing is kept after X, a truncate alone does it.
 */
#define _GNU_SOURCE   /* renameat2 */
#include "update.h"

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limits.h"
#include "lock.h"
#include "maildir.h"
#include "log.h"

/*
 * The journal file; every integer is little-endian.
 *   header  (JNL_HDR_SIZE): magic[8], version:u32, header size:u32, then u64s:
 *           X, S, L, data_sum, witness_len, witness_sum
 *   data    (L octets): the kept data, to be written at X
 *   trailer (JNL_TRL_SIZE): end magic[8], header_sum:u64
 * It is valid only when its size is exactly header + L + trailer and both
 * sums match; anything else is a journal whose writing was interrupted.
 */
#define JNL_MAGIC      JOURNAL_MAGIC
#define JNL_END_MAGIC  "P3DJEND\n"
#define JNL_MAGIC_LEN  JOURNAL_MAGIC_LEN
#define JNL_VERSION    1u
#define JNL_HDR_SIZE   JOURNAL_HEADER_SIZE
#define JNL_TRL_SIZE   16

/* What the internal steps return. */
enum {
	RC_OK = 0,
	RC_FAIL = -1,      /* an error: *why is set, the caller cleans up */
	RC_CRASH = -2,     /* the fault hook said "crash here": touch nothing more */
	RC_INVALID = -3,   /* (journal reading) the journal is incomplete or corrupt */
};

/* A 64-bit checksum, fed in pieces of any size (same result however split). */
struct sum {
	uint64_t acc;
	uint64_t len;
	uint64_t pend;     /* up to 7 octets not yet folded in */
	unsigned npend;
};

struct jhdr {
	off_t x;           /* where the kept data goes: the first deleted message */
	off_t s;           /* mailbox size when the journal was written */
	off_t l;           /* octets of kept data */
	uint64_t data_sum;
	off_t wlen;        /* witness: [s - wlen, s), octets the move never writes */
	uint64_t wsum;
};

/* One update or recovery in progress. */
struct op {
	const struct update_hooks *hooks;
	int step;
	const char *path;                /* the mailbox */
	char jpath[MAX_PATH_LEN + 64];   /* its journal */
	char tpath[MAX_PATH_LEN + 80];   /* the journal being rewritten by recovery */
	char dir[MAX_PATH_LEN + 1];      /* the directory holding the journal */
	unsigned char *buf;              /* COPY_CHUNK_SIZE: the only data buffer */
	char *why;
	size_t whylen;
	struct mbox_recovery *res;       /* a recovery's report, or NULL */
	const struct mbox_options *opt;  /* ... and the options to count messages with */
};

/* A journal being written. */
struct jwriter {
	int fd;
	off_t off;         /* next data offset in the journal file */
	struct sum sum;    /* of the data so far */
};

/* ---- checksum ---------------------------------------------------------- */

#define SUM_SEED 0x27D4EB2F165667C5ULL
#define SUM_P1   0x9E3779B185EBCA87ULL
#define SUM_P2   0xC2B2AE3D27D4EB4FULL
#define SUM_P3   0x165667B19E3779F9ULL

static uint64_t rotl64(uint64_t v, unsigned r)
{
	return (v << r) | (v >> (64 - r));
}

static uint64_t sum_fold(uint64_t acc, uint64_t word)
{
	return rotl64(acc ^ (word * SUM_P2), 31) * SUM_P1;
}

static uint64_t load_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void store_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static void store_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static uint32_t load_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void sum_init(struct sum *s)
{
	s->acc = SUM_SEED;
	s->len = 0;
	s->pend = 0;
	s->npend = 0;
}

static void sum_byte(struct sum *s, unsigned char c)
{
	s->pend |= (uint64_t)c << (8 * s->npend);
	if (++s->npend == 8) {
		s->acc = sum_fold(s->acc, s->pend);
		s->pend = 0;
		s->npend = 0;
	}
}

static void sum_add(struct sum *s, const void *data, size_t n)
{
	const unsigned char *p = data;
	s->len += n;
	for (; n > 0 && s->npend > 0; n--)
		sum_byte(s, *p++);
	for (; n >= 8; n -= 8, p += 8)
		s->acc = sum_fold(s->acc, load_le64(p));
	for (; n > 0; n--)
		sum_byte(s, *p++);
}

static uint64_t sum_final(const struct sum *s)
{
	uint64_t h = s->acc;
	if (s->npend > 0)
		h = sum_fold(h, s->pend);
	h ^= s->len * SUM_P3;
	h ^= h >> 33;
	h *= SUM_P2;
	h ^= h >> 29;
	h *= SUM_P3;
	h ^= h >> 32;
	return h;
}

static uint64_t sum_of(const void *data, size_t n)
{
	struct sum s;
	sum_init(&s);
	sum_add(&s, data, n);
	return sum_final(&s);
}

/* ---- errors, hooks -------------------------------------------------------- */

enum mbox_status journal_blocks_login(int dirfd, const char *name, const char *journal,
				      const char *mailbox, int (*is_ours)(int fd),
				      char *why, size_t whylen)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || errno == ELOOP || errno == ENXIO))
		return MBOX_OK;   /* none, or a symbolic link or socket: no journal of ours */
	int ours = fd < 0 ? -1 : is_ours(fd);
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (ours < 0) {
		set_why(why, whylen, "cannot check for a journal: %s", strerror(err));
		return MBOX_TEMP;
	}
	if (ours == 0)
		return MBOX_OK;   /* someone else's file: recovery logged it, it blocks nothing */
	set_why(why, whylen, "mailbox needs recovery");
	log_msg(LOG_ERR, "%s: an interrupted update left %s; run pop3d --recover",
		LOG_Q(mailbox), LOG_Q(journal));
	return MBOX_TEMP;
}

void update_error(const char *what, char *why, size_t whylen)
{
	int err = errno;
	bool full = err == ENOSPC || err == EDQUOT;
	set_why(why, whylen, "%s: %s", full ? "disk full" : "cannot update the mailbox",
		strerror(err));
	log_msg(LOG_ERR, "%s%s: %s", full ? "disk full: " : "", what, strerror(err));
	errno = err;
}

/* update_error() of "<what>" (printf-style), errno its cause: RC_FAIL. */
static int fail(struct op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct op *op, const char *fmt, ...)
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

/* The scanned part of the mailbox is not what the session saw. */
static int changed(struct op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int changed(struct op *op, const char *fmt, ...)
{
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	set_why(op->why, op->whylen, "mailbox was changed by another program");
	log_msg(LOG_WARNING, "update %s: nothing applied, mailbox was changed by another program: %s",
		LOG_Q(op->path), detail);
	return RC_FAIL;
}

/* A point of the update where the test hook may crash or fail it. */
static int step(struct op *op, const char *what)
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
		return fail(op, "injected failure at step %d (%s)", op->step, what);
	}
	return RC_OK;
}

/* ---- I/O ------------------------------------------------------------------ */

/* Exactly len octets at off; a file that ends early is an error (ENODATA). */
static int pread_exact(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread_full(fd, buf, len, off);
	if (n < 0)
		return -1;
	if ((size_t)n < len) {
		errno = ENODATA;
		return -1;
	}
	return 0;
}

static int fdatasync_retry(int fd)
{
	int r;
	while ((r = fdatasync(fd)) < 0 && errno == EINTR)
		;
	return r;
}

static int ftruncate_retry(int fd, off_t len)
{
	int r;
	while ((r = ftruncate(fd, len)) < 0 && errno == EINTR)
		;
	return r;
}

static void close_keep_errno(int fd)
{
	int err = errno;
	if (fd >= 0)
		close(fd);
	errno = err;
}

/* Make a create, rename or unlink in the mailbox directory durable. */
static int fsync_dir(struct op *op)
{
	int fd = open(op->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail(op, "cannot open directory %s", op->dir);
	int r = fsync_retry(fd);
	/* Some file systems cannot sync a directory and say EINVAL: nothing to do. */
	if (r < 0 && errno != EINVAL) {
		fail(op, "cannot sync directory %s", op->dir);
		close(fd);
		return RC_FAIL;
	}
	close(fd);
	return RC_OK;
}

/*
 * Test builds only (tests/pop3d-skip-*, the power-cut test of the test):
 * -DPOP3D_TEST_SKIP_FSYNC=journal, journal_dir, mailbox or
 * mailbox_before_journal leaves that one sync out. The production build has
 * no such define, and skip_sync() is always false there.
 */
#ifdef POP3D_TEST_SKIP_FSYNC
#define SKIP_STR2(x) #x
#define SKIP_STR(x) SKIP_STR2(x)
static bool skip_sync(const char *which)
{
	return strcmp(SKIP_STR(POP3D_TEST_SKIP_FSYNC), which) == 0;
}
#else
static inline bool skip_sync(const char *which)
{
	(void)which;
	return false;
}
#endif

/*
 * A journal describes the mailbox as it is now: its size S and the witness
 * octets at its end. Those must be on disk before the journal is: mail an MDA
 * appended without fsync (or whose fsync has not returned yet) may otherwise
 * be lost in a power cut while the journal survives, and recovery would find
 * a mailbox shorter than the journal says and refuse it at every login.
 */
static int sync_mailbox_before_journal(struct op *op, int mfd)
{
	if (skip_sync("mailbox_before_journal"))
		return RC_OK;
	if (fdatasync_retry(mfd) < 0)
		return fail(op, "cannot sync %s", op->path);
	return RC_OK;
}

static off_t min_off(off_t a, off_t b)
{
	return a < b ? a : b;
}

/* ---- setup ------------------------------------------------------------------ */

static int op_init(struct op *op, const char *path, const char *journal_dir,
		   const struct update_hooks *hooks, char *why, size_t whylen)
{
	memset(op, 0, sizeof(*op));
	op->hooks = hooks;
	op->path = path;
	op->why = why;
	op->whylen = whylen;
	if (why && whylen > 0)
		why[0] = '\0';
	size_t plen = strlen(path);
	if (plen == 0 || mbox_journal_path(path, journal_dir, op->jpath, sizeof(op->jpath)) < 0) {
		errno = ENAMETOOLONG;
		return fail(op, "bad mailbox path");
	}
	/* op->dir: where the journal lives, to make its creation and removal durable. */
	int n = snprintf(op->dir, sizeof(op->dir), "%s", op->jpath);
	if (n < 0 || (size_t)n >= sizeof(op->dir)) {
		errno = ENAMETOOLONG;
		return fail(op, "bad mailbox path");
	}
	n = snprintf(op->tpath, sizeof(op->tpath), "%s%s", op->jpath, JOURNAL_TEMP_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof(op->tpath)) {
		errno = ENAMETOOLONG;
		return fail(op, "bad mailbox path");
	}
	char *slash = strrchr(op->dir, '/');
	if (!slash)
		snprintf(op->dir, sizeof(op->dir), ".");
	else if (slash == op->dir)
		op->dir[1] = '\0';
	else
		*slash = '\0';
	return RC_OK;
}

/* The copy buffer, only for work that copies: recovery and the journaled move. */
static int op_alloc_buffer(struct op *op)
{
	if (!op->buf && !(op->buf = malloc(COPY_CHUNK_SIZE)))
		return fail(op, "cannot allocate the copy buffer");
	return RC_OK;
}

/* Is path there, or can we not tell (an error other than "no such file")? */
static bool may_exist(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 || (errno != ENOENT && errno != EACCES);
}

static void op_free(struct op *op)
{
	free(op->buf);
	op->buf = NULL;
}

/* ---- the journal ------------------------------------------------------------- */

static void encode_header(const struct jhdr *h, unsigned char *p)
{
	memcpy(p, JNL_MAGIC, JNL_MAGIC_LEN);
	store_le32(p + 8, JNL_VERSION);
	store_le32(p + 12, JNL_HDR_SIZE);
	store_le64(p + 16, (uint64_t)h->x);
	store_le64(p + 24, (uint64_t)h->s);
	store_le64(p + 32, (uint64_t)h->l);
	store_le64(p + 40, h->data_sum);
	store_le64(p + 48, (uint64_t)h->wlen);
	store_le64(p + 56, h->wsum);
}

/* The numbers must describe a move inside a sane file, whatever the octets said. */
static bool header_is_sane(const struct jhdr *h)
{
	if (h->x < 0 || h->l <= 0 || h->wlen <= 0 || h->s <= 0 || h->s > MAX_MAILBOX_SIZE)
		return false;
	if (h->x > h->s || h->l > h->s - h->x)
		return false;
	off_t gap = h->s - h->x - h->l;   /* octets removed: never 0 in a journal */
	return h->wlen == min_off(JOURNAL_WITNESS_SIZE, gap);
}

static int decode_header(const unsigned char *p, struct jhdr *h)
{
	if (memcmp(p, JNL_MAGIC, JNL_MAGIC_LEN) != 0 || load_le32(p + 12) != JNL_HDR_SIZE)
		return RC_INVALID;
	uint64_t v[6];
	for (int i = 0; i < 6; i++) {
		v[i] = load_le64(p + 16 + 8 * i);
		if (i != 3 && i != 5 && v[i] > (uint64_t)MAX_MAILBOX_SIZE)
			return RC_INVALID;
	}
	h->x = (off_t)v[0];
	h->s = (off_t)v[1];
	h->l = (off_t)v[2];
	h->data_sum = v[3];
	h->wlen = (off_t)v[4];
	h->wsum = v[5];
	return header_is_sane(h) ? RC_OK : RC_INVALID;
}

/* Checksum of the witness octets [s - wlen, s) of the mailbox as it is now. */
static int witness_sum(struct op *op, int mfd, off_t s, off_t wlen, uint64_t *out)
{
	if (pread_exact(mfd, op->buf, (size_t)wlen, s - wlen) < 0)
		return fail(op, "cannot read %s", op->path);
	*out = sum_of(op->buf, (size_t)wlen);
	return RC_OK;
}

static int journal_begin(struct op *op, const char *jpath, struct jwriter *jw)
{
	jw->fd = open(jpath, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (jw->fd < 0)
		return fail(op, "cannot create journal %s", jpath);
	jw->off = JNL_HDR_SIZE;
	sum_init(&jw->sum);
	return step(op, "journal-created");
}

/* Append [off, off + len) of src to the journal data, a chunk at a time. */
static int journal_append(struct op *op, struct jwriter *jw, int src, const char *srcname,
			  off_t off, off_t len)
{
	while (len > 0) {
		size_t n = (size_t)min_off(len, COPY_CHUNK_SIZE);
		if (pread_exact(src, op->buf, n, off) < 0)
			return fail(op, "cannot read %s", srcname);
		if (pwrite_all(jw->fd, op->buf, n, jw->off) < 0)
			return fail(op, "cannot write journal");
		sum_add(&jw->sum, op->buf, n);
		off += (off_t)n;
		len -= (off_t)n;
		jw->off += (off_t)n;
		int rc = step(op, "journal-chunk");
		if (rc != RC_OK)
			return rc;
	}
	return RC_OK;
}

/* Header and trailer, then fsync: from here on the journal is authoritative. */
static int journal_finish(struct op *op, struct jwriter *jw, struct jhdr *h)
{
	unsigned char hdr[JNL_HDR_SIZE], trl[JNL_TRL_SIZE];
	if (jw->off != JNL_HDR_SIZE + h->l) {
		errno = EIO;
		return fail(op, "journal data is %jd octets, %jd planned", (intmax_t)(jw->off - JNL_HDR_SIZE),
			    (intmax_t)h->l);
	}
	h->data_sum = sum_final(&jw->sum);
	encode_header(h, hdr);
	memcpy(trl, JNL_END_MAGIC, JNL_MAGIC_LEN);
	store_le64(trl + 8, sum_of(hdr, sizeof(hdr)));
	if (pwrite_all(jw->fd, hdr, sizeof(hdr), 0) < 0)
		return fail(op, "cannot write journal");
	int rc = step(op, "journal-header");
	if (rc != RC_OK)
		return rc;
	if (pwrite_all(jw->fd, trl, sizeof(trl), jw->off) < 0)
		return fail(op, "cannot write journal");
	rc = step(op, "journal-trailer");
	if (rc != RC_OK)
		return rc;
	if (!skip_sync("journal") && fsync_retry(jw->fd) < 0)
		return fail(op, "cannot sync journal");
	return step(op, "journal-synced");
}

static void journal_close(struct jwriter *jw)
{
	close_keep_errno(jw->fd);
	jw->fd = -1;
}

/*
 * Read and check a journal. RC_INVALID: incomplete or corrupt. RC_FAIL: it
 * cannot be read, or must not be trusted nor removed (not ours, a newer version).
 */
static int journal_read(struct op *op, int jfd, struct jhdr *h)
{
	struct stat st;
	if (fstat(jfd, &st) < 0)
		return fail(op, "cannot stat journal %s", op->jpath);
	/* In a shared mail spool anyone may plant a file by that name. */
	if (!is_own_plain_file(&st)) {
		errno = EPERM;
		return fail(op, "journal %s is not a plain file of ours, not touched", op->jpath);
	}
	unsigned char hdr[JNL_HDR_SIZE], trl[JNL_TRL_SIZE];
	if (st.st_size < JNL_HDR_SIZE + JNL_TRL_SIZE)
		return RC_INVALID;
	if (pread_exact(jfd, hdr, sizeof(hdr), 0) < 0)
		return fail(op, "cannot read journal %s", op->jpath);
	if (memcmp(hdr, JNL_MAGIC, JNL_MAGIC_LEN) == 0 && load_le32(hdr + 8) > JNL_VERSION) {
		errno = EPROTO;
		return fail(op, "journal %s has an unknown version, not touched", op->jpath);
	}
	if (load_le32(hdr + 8) != JNL_VERSION || decode_header(hdr, h) != RC_OK)
		return RC_INVALID;
	if (st.st_size != JNL_HDR_SIZE + h->l + JNL_TRL_SIZE)
		return RC_INVALID;
	if (pread_exact(jfd, trl, sizeof(trl), JNL_HDR_SIZE + h->l) < 0)
		return fail(op, "cannot read journal %s", op->jpath);
	if (memcmp(trl, JNL_END_MAGIC, JNL_MAGIC_LEN) != 0 ||
	    load_le64(trl + 8) != sum_of(hdr, sizeof(hdr)))
		return RC_INVALID;
	struct sum s;
	sum_init(&s);
	for (off_t done = 0; done < h->l;) {
		size_t n = (size_t)min_off(h->l - done, COPY_CHUNK_SIZE);
		if (pread_exact(jfd, op->buf, n, JNL_HDR_SIZE + done) < 0)
			return fail(op, "cannot read journal %s", op->jpath);
		sum_add(&s, op->buf, n);
		done += (off_t)n;
	}
	return sum_final(&s) == h->data_sum ? RC_OK : RC_INVALID;
}

/* ---- the move ------------------------------------------------------------------ */

/* The mailbox holds its new contents: make that durable, then drop the journal. */
static int finish_update(struct op *op, int mfd)
{
	if (!skip_sync("mailbox") && fsync_retry(mfd) < 0)
		return fail(op, "cannot sync %s", op->path);
	int rc = step(op, "mailbox-synced");
	if (rc != RC_OK)
		return rc;
	if (unlink(op->jpath) < 0)
		return fail(op, "cannot remove journal %s", op->jpath);
	if ((rc = step(op, "journal-removed")) != RC_OK)
		return rc;
	if ((rc = fsync_dir(op)) != RC_OK)
		return rc;
	return step(op, "dir-synced");
}

/*
 * Write the journal's data at X, truncate, remove the journal. Touches only
 * [X, X + L) and the size, so it can be repeated after a crash at any point.
 */
static int replay(struct op *op, int mfd, int jfd, const struct jhdr *h)
{
	struct sum s;
	sum_init(&s);
	for (off_t done = 0; done < h->l;) {
		size_t n = (size_t)min_off(h->l - done, COPY_CHUNK_SIZE);
		if (pread_exact(jfd, op->buf, n, JNL_HDR_SIZE + done) < 0)
			return fail(op, "cannot read journal %s", op->jpath);
		sum_add(&s, op->buf, n);
		if (pwrite_all(mfd, op->buf, n, h->x + done) < 0)
			return fail(op, "cannot write %s", op->path);
		done += (off_t)n;
		int rc = step(op, "mailbox-chunk");
		if (rc != RC_OK)
			return rc;
	}
	/* Never truncate after copying anything but the journaled octets. */
	if (sum_final(&s) != h->data_sum) {
		errno = EIO;
		return fail(op, "journal %s changed while being applied", op->jpath);
	}
	/* The data must be on disk before the truncate that makes it the only copy. */
	if (fdatasync_retry(mfd) < 0)
		return fail(op, "cannot sync %s", op->path);
	int rc = step(op, "mailbox-data-synced");
	if (rc != RC_OK)
		return rc;
	if (ftruncate_retry(mfd, h->x + h->l) < 0)
		return fail(op, "cannot truncate %s", op->path);
	if ((rc = step(op, "mailbox-truncated")) != RC_OK)
		return rc;
	return finish_update(op, mfd);
}

/* ---- recovery ------------------------------------------------------------------ */

/* Whether [s - wlen, s) still holds the original octets: no truncate yet. */
static int not_yet_truncated(struct op *op, int mfd, off_t size, const struct jhdr *h,
			     bool *yes)
{
	*yes = false;
	if (mfd < 0 || size < h->s)
		return RC_OK;
	uint64_t w;
	int rc = witness_sum(op, mfd, h->s, h->wlen, &w);
	if (rc != RC_OK)
		return rc;
	*yes = w == h->wsum;
	return RC_OK;
}

/*
 * Mail delivered after the crash, [h->s, size), would be cut by the replay's
 * truncate: first make a new journal whose kept data includes it, and put it
 * in place of the old one with a rename (crash-safe), then replay that.
 */
static int absorb_new_mail(struct op *op, int mfd, int *jfd, struct jhdr *h, off_t size)
{
	struct jhdr nh = { .x = h->x, .s = size, .l = h->l + (size - h->s), .wlen = h->wlen };
	struct jwriter jw;
	int rc = sync_mailbox_before_journal(op, mfd);
	if (rc != RC_OK)
		return rc;
	rc = journal_begin(op, op->tpath, &jw);
	if (rc == RC_FAIL && jw.fd < 0)
		return rc;   /* not created: nothing to clean up */
	if (rc == RC_OK)
		rc = journal_append(op, &jw, *jfd, op->jpath, JNL_HDR_SIZE, h->l);
	if (rc == RC_OK)
		rc = journal_append(op, &jw, mfd, op->path, h->s, size - h->s);
	if (rc == RC_OK)
		rc = witness_sum(op, mfd, nh.s, nh.wlen, &nh.wsum);
	if (rc == RC_OK)
		rc = journal_finish(op, &jw, &nh);
	journal_close(&jw);
	if (rc == RC_CRASH)
		return rc;
	if (rc == RC_OK && rename(op->tpath, op->jpath) < 0)
		rc = fail(op, "cannot rename %s to %s", op->tpath, op->jpath);
	if (rc != RC_OK) {
		unlink(op->tpath);
		return rc;
	}
	if ((rc = step(op, "journal-renamed")) != RC_OK)
		return rc;
	if ((rc = fsync_dir(op)) != RC_OK || (rc = step(op, "journal-dir-synced")) != RC_OK)
		return rc;
	int nfd = open(op->jpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (nfd < 0)
		return fail(op, "cannot open journal %s", op->jpath);
	close(*jfd);
	*jfd = nfd;
	log_msg(LOG_NOTICE, "recover %s: %jd octets delivered after the crash added to the journal",
		LOG_Q(op->path), (intmax_t)(size - h->s));
	*h = nh;
	return RC_OK;
}

/* The truncate was done: [X, X + L) must hold the kept data, mail after it stays. */
static int finish_truncated(struct op *op, int mfd, off_t size, const struct jhdr *h)
{
	if (mfd < 0 || size < h->x + h->l) {
		errno = EIO;
		return fail(op, "%s is shorter (%jd octets) than journal %s expects, journal kept",
			    op->path, (intmax_t)size, op->jpath);
	}
	struct sum s;
	sum_init(&s);
	for (off_t done = 0; done < h->l;) {
		size_t n = (size_t)min_off(h->l - done, COPY_CHUNK_SIZE);
		if (pread_exact(mfd, op->buf, n, h->x + done) < 0)
			return fail(op, "cannot read %s", op->path);
		sum_add(&s, op->buf, n);
		done += (off_t)n;
	}
	if (sum_final(&s) != h->data_sum) {
		errno = EIO;
		return fail(op, "%s does not match journal %s, journal kept", op->path, op->jpath);
	}
	return finish_update(op, mfd);
}

/* The client-visible messages of the mailbox at mfd, for a report (-1: none asked, or unknown). */
static long count_messages(const struct op *op, int mfd)
{
	if (!op->res)
		return -1;   /* nobody asks at a login: no second scan */
	if (mfd < 0)
		return 0;
	int fd = dup(mfd);
	struct mbox *mb;
	char why[MAX_REASON_LEN];
	if (fd < 0 || mbox_open_fd(&mb, fd, op->opt, why, sizeof(why)) != MBOX_OK)
		return -1;
	long n = (long)mbox_count(mb);
	mbox_close(mb);
	return n;
}

/*
 * Whether the mailbox at X already holds the journal's first octets: 1 when
 * the move has begun (or cannot be told from it), 0 when it has not.
 */
static int move_begun(struct op *op, int mfd, int jfd, const struct jhdr *h)
{
	unsigned char kept[MOVE_PROBE_SIZE];
	size_t n = (size_t)min_off(h->l, (off_t)sizeof(kept));
	if (mfd < 0 || pread_exact(jfd, kept, n, JNL_HDR_SIZE) < 0 ||
	    pread_exact(mfd, op->buf, n, h->x) < 0)
		return 1;
	return memcmp(kept, op->buf, n) == 0;
}

/* Finish a complete journal against the mailbox as it is now. */
static int apply_journal(struct op *op, int mfd, int *jfd, struct jhdr *h)
{
	struct stat st;
	off_t size = 0;
	if (mfd >= 0) {
		if (fstat(mfd, &st) < 0)
			return fail(op, "cannot stat %s", op->path);
		size = st.st_size;
	}
	bool before_truncate;
	int rc = not_yet_truncated(op, mfd, size, h, &before_truncate);
	if (rc != RC_OK)
		return rc;
	if (!before_truncate) {
		rc = finish_truncated(op, mfd, size, h);
		if (rc == RC_OK)
			log_msg(LOG_NOTICE, "recover %s: update had been applied, journal removed",
				LOG_Q(op->path));
		return rc;
	}
	if (size > h->s && (rc = absorb_new_mail(op, mfd, jfd, h, size)) != RC_OK)
		return rc;
	long before = -1;   /* a mailbox the move has begun to change: its count means nothing */
	if (op->res && move_begun(op, mfd, *jfd, h) == 0)
		before = count_messages(op, mfd);
	rc = replay(op, mfd, *jfd, h);
	if (rc == RC_OK && op->res) {
		long after = count_messages(op, mfd);
		op->res->replayed = true;
		op->res->deletions = before >= 0 && after >= 0 ? before - after : -1;
	}
	if (rc == RC_OK)
		log_msg(LOG_NOTICE, "recover %s: interrupted update completed, %jd octets moved to %jd, "
			"%jd octets removed", LOG_Q(op->path), (intmax_t)h->l, (intmax_t)h->x,
			(intmax_t)(h->s - h->x - h->l));
	return rc;
}

/*
 * Open a file found at a journal's name, if it is ours (journal_is_ours).
 * *fd is -1 when there is none, or when it is someone else's: that is logged
 * and left alone (never read as a journal, never removed, never in the way of
 * the login). RC_OK or RC_FAIL.
 */
static int open_found_journal(struct op *op, const char *path, int *fd)
{
	/* Non-blocking: a FIFO planted there must not hang us. */
	*fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT)
		return RC_OK;
	if (*fd < 0 && errno != ELOOP && errno != ENXIO)
		return fail(op, "cannot open %s", path);
	int ours = *fd < 0 ? 0 : journal_is_ours(*fd);
	if (ours < 0) {
		fail(op, "cannot read %s", path);
		close_keep_errno(*fd);
		*fd = -1;
		return RC_FAIL;
	}
	if (ours == 0) {
		struct stat st;
		if (lstat(path, &st) == 0)
			log_msg(LOG_WARNING, "recover %s: %s is not a journal of pop3d's (type %o, "
				"%jd octets, uid %ju, %ju links; expected a file of uid %ju with 1 link "
				"in pop3d's format): ignored and left alone", op->path, path,
				(unsigned)(st.st_mode & S_IFMT), (intmax_t)st.st_size,
				(uintmax_t)st.st_uid, (uintmax_t)st.st_nlink, (uintmax_t)geteuid());
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	return RC_OK;
}

/* Remove a file of ours found at path (fd open on it), with a log line. */
static int remove_found(struct op *op, const char *path, int fd, const char *what)
{
	if (!path_names_fd(path, fd))
		return RC_OK;   /* gone or replaced meanwhile: not the file we judged */
	if (unlink(path) < 0 && errno != ENOENT)
		return fail(op, "cannot remove %s", path);
	log_msg(LOG_NOTICE, "recover %s: %s removed (%s)", op->path, path, what);
	return fsync_dir(op);
}

/* A half-written rewrite by an earlier recovery (the real journal is intact): ours goes. */
static int drop_interrupted_rewrite(struct op *op)
{
	int fd;
	int rc = open_found_journal(op, op->tpath, &fd);
	if (rc != RC_OK || fd < 0)
		return rc;
	rc = remove_found(op, op->tpath, fd, "an interrupted rewrite of the journal");
	close_keep_errno(fd);
	return rc;
}

/* Recovery with the mailbox lock held; mfd is the mailbox or -1 if missing. */
static int recover_locked(struct op *op, int mfd)
{
	int jfd = -1;
	int rc = drop_interrupted_rewrite(op);
	if (rc == RC_OK)
		rc = open_found_journal(op, op->jpath, &jfd);
	if (rc != RC_OK || jfd < 0)
		return rc;
	if (op->res)
		op->res->journal = true;
	struct jhdr h;
	rc = journal_read(op, jfd, &h);
	if (rc == RC_INVALID) {
		rc = remove_found(op, LOG_Q(op->jpath), jfd, "an incomplete journal; the mailbox untouched");
		close_keep_errno(jfd);
		return rc;
	}
	if (rc == RC_OK)
		rc = apply_journal(op, mfd, &jfd, &h);
	close_keep_errno(jfd);
	return rc;
}

/* The mailbox, read-write; *mfd stays -1 when there is no file. */
static int open_mailbox(struct op *op, int *mfd)
{
	*mfd = open(op->path, O_RDWR | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (*mfd < 0)
		return errno == ENOENT ? RC_OK : fail(op, "cannot open %s", op->path);
	struct stat st;
	if (fstat(*mfd, &st) < 0)
		return fail(op, "cannot stat %s", op->path);
	if (!is_own_plain_file(&st)) {
		errno = EPERM;
		return fail(op, "%s is not a regular file of uid %ju with one link, not touched",
			    op->path, (uintmax_t)geteuid());
	}
	return RC_OK;
}

/* Recover from the journal in journal_dir (NULL: beside the mailbox), if there is one. */
static int recover_from(const char *path, const char *journal_dir, const struct mbox_options *opt,
			const struct update_hooks *hooks, struct mbox_recovery *res,
			char *why, size_t whylen)
{
	struct op op;
	if (op_init(&op, path, journal_dir, hooks, why, whylen) != RC_OK)
		return -1;
	op.res = res;
	op.opt = opt;
	/*
	 * Nearly always there is no journal: then no lock and no copy buffer. An
	 * unreadable directory (EACCES) counts as none: the login then fails on
	 * the mailbox itself, with its own reason.
	 */
	if (!may_exist(op.jpath) && !may_exist(op.tpath))
		return 0;
	if (op_alloc_buffer(&op) != RC_OK) {
		op_free(&op);
		return -1;
	}
	int mfd = -1;
	int rc = open_mailbox(&op, &mfd);
	struct mail_lock lk;
	if (rc == RC_OK && mailbox_lock(path, mfd, opt->lock_methods, opt->lock_timeout, &lk,
					why, whylen) < 0) {
		log_msg(LOG_ERR, "recover %s: cannot lock: %s", LOG_Q(path), why ? why : "");
		rc = RC_FAIL;
	} else if (rc == RC_OK) {
		rc = recover_locked(&op, mfd);
		mailbox_unlock(&lk);
	}
	close_keep_errno(mfd);
	op_free(&op);
	return rc == RC_OK ? 0 : -1;
}

/*
 * Every place an interrupted update may have left a journal: where journals
 * go now, beside the mailbox, and the other directory (journal_places_prepare),
 * so a changed spool mode or --journal-dir never strands one.
 */
int mbox_recover_report(const char *path, const struct mbox_options *opt,
			const struct update_hooks *hooks, struct mbox_recovery *res,
			char *why, size_t whylen)
{
	if (res)
		*res = (struct mbox_recovery){.deletions = -1};
	if (mbox_check_name(path, why, whylen) != MBOX_OK) {
		errno = EPERM;
		return -1;   /* a side file's name is never a mailbox: nothing to recover */
	}
	if (maildir_path_is(path))
		return maildir_recover(path, opt->lock_methods, hooks, res, why, whylen);
	if (recover_from(path, opt->journal_dir, opt, hooks, res, why, whylen) < 0)
		return -1;
	if (opt->journal_dir && recover_from(path, NULL, opt, hooks, res, why, whylen) < 0)
		return -1;
	if (opt->journal_alt_dir)   /* never the same as journal_dir (journal_places_prepare) */
		return recover_from(path, opt->journal_alt_dir, opt, hooks, res, why, whylen);
	return 0;
}

int mbox_recover_hooked(const char *path, const struct mbox_options *opt,
			const struct update_hooks *hooks, char *why, size_t whylen)
{
	return mbox_recover_report(path, opt, hooks, NULL, why, whylen);
}

int mbox_recover(const char *path, const struct mbox_options *opt, char *why, size_t whylen)
{
	return mbox_recover_hooked(path, opt, NULL, why, whylen);
}

/* ---- the journal directory of an account ------------------------------------------ */

static int open_dir_at(int dfd, const char *name)
{
	int fd;
	while ((fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0 &&
	       errno == EINTR)
		;
	return fd;
}

/* Root moves whatever is at DIR/name aside to DIR/name.planted.N: nothing is removed. */
static int move_aside(int dfd, const char *dir, const char *name, const char *what)
{
	for (unsigned n = 1; n <= JOURNAL_ASIDE_ATTEMPTS; n++) {
		char aside[64];
		snprintf(aside, sizeof(aside), "%s" JOURNAL_ASIDE_INFIX "%u", name, n);
		if (renameat2(dfd, name, dfd, aside, RENAME_NOREPLACE) == 0) {
			log_msg(LOG_WARNING, "journal directory %s/%s was %s: moved aside to %s/%s",
				dir, name, what, dir, aside);
			return 0;
		}
		if (errno == ENOENT)
			return 0;   /* gone by itself */
		if (errno != EEXIST)
			break;
	}
	log_msg(LOG_ERR, "journal directory %s/%s is %s and cannot be moved aside: %s", dir, name,
		what, strerror(errno));
	return -1;
}

/*
 * As root: DIR/name made or repaired for uid, 0700; the descriptor open on
 * it, or -1 (logged). A few tries: what is in the way is moved aside first.
 */
static int root_account_dir(int dfd, const char *dir, const char *name, uid_t uid, gid_t gid)
{
	bool made = false;
	for (int attempt = 0; attempt < 3; attempt++) {
		int fd = open_dir_at(dfd, name);
		if (fd < 0 && errno == ENOENT) {
			if (mkdirat(dfd, name, JOURNAL_DIR_MODE) < 0 && errno != EEXIST)
				break;
			made = errno != EEXIST;
			continue;
		}
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) < 0) {
			close(fd);
			break;
		}
		/* Root's (just made, or an administrator's) or the account's: fix it up. */
		if (fd >= 0 && (st.st_uid == uid || st.st_uid == 0 || made)) {
			if (((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) < 0) ||
			    ((st.st_mode & 07777) != JOURNAL_DIR_MODE &&
			     fchmod(fd, JOURNAL_DIR_MODE) < 0)) {
				int err = errno;
				close(fd);
				if (made)   /* ours, empty: not left half made (NFS root_squash) */
					unlinkat(dfd, name, AT_REMOVEDIR);
				errno = err;
				break;
			}
			return fd;
		}
		if (fd >= 0)
			close(fd);
		else if (errno != ELOOP && errno != ENOTDIR)
			break;
		if (move_aside(dfd, dir, name, fd >= 0 ? "a directory of another account" :
			       "not a directory") < 0)
			return -1;
	}
	log_msg(LOG_ERR, "journal directory %s/%s cannot be made for uid %ju: %s", dir, name,
		(uintmax_t)uid, strerror(errno));
	return -1;
}

/*
 * An older version kept journals in DIR itself. A journal of this mailbox
 * there, if it is uid's, moves into DIR/UID (same file system) for recovery.
 * -1 (logged) when one is there but cannot be moved: the mailbox may be
 * half updated, and only that journal can finish it.
 */
static int adopt_flat_journal(int dfd, int sub, const char *dir, const char *mailbox, uid_t uid)
{
	char flat[MAX_PATH_LEN + 64];
	if (mbox_journal_path(mailbox, dir, flat, sizeof(flat)) < 0)
		return 0;
	const char *base = strrchr(flat, '/') + 1;
	int fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_msg(LOG_WARNING, "%s: not a journal, ignored: %s", flat, strerror(errno));
		return 0;
	}
	int ours = is_file_of_format(fd, uid, JOURNAL_MAGIC, JOURNAL_MAGIC_LEN, JOURNAL_HEADER_SIZE);
	close(fd);
	if (ours == 0) {
		log_msg(LOG_WARNING, "%s is not a journal of uid %ju: ignored and left alone", flat,
			(uintmax_t)uid);
		return 0;
	}
	if (ours < 0 || renameat2(dfd, base, sub, base, RENAME_NOREPLACE) < 0) {
		log_msg(LOG_ERR, "cannot move journal %s into %s/%ju: %s", flat, dir, (uintmax_t)uid,
			strerror(errno));
		return -1;
	}
	if (fsync_retry(sub) < 0 || fsync_retry(dfd) < 0)
		log_msg(LOG_WARNING, "cannot sync %s after moving a journal: %s", dir, strerror(errno));
	log_msg(LOG_NOTICE, "journal %s (older layout) moved into %s/%ju, to be recovered", flat,
		dir, (uintmax_t)uid);
	return 0;
}

/* Not root: DIR/UID when it is ours (made when DIR lets us); else -1 (errno). */
static int own_account_dir(int dfd, const char *name)
{
	if (mkdirat(dfd, name, JOURNAL_DIR_MODE) < 0 && errno != EEXIST)
		return -1;
	int fd = open_dir_at(dfd, name);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != geteuid())) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

int journal_dir_prepare(const char *dir, const char *mailbox, uid_t uid, gid_t gid,
			char *out, size_t outlen, char *why, size_t whylen)
{
	char name[32];
	snprintf(name, sizeof(name), "%ju", (uintmax_t)uid);
	int n = snprintf(out, outlen, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= outlen) {
		log_msg(LOG_ERR, "--journal-dir %s: path too long", dir);
		set_why(why, whylen, "journal directory path too long");
		return -1;
	}
	int dfd = open_dir_at(AT_FDCWD, dir);
	if (dfd < 0) {
		/* As before: the journal cannot be written there, an update that needs one fails. */
		log_msg(LOG_WARNING, "--journal-dir %s: %s", dir, strerror(errno));
		return 0;
	}
	int sub = geteuid() == 0 ? root_account_dir(dfd, dir, name, uid, gid) :
		  own_account_dir(dfd, name);
	if (sub < 0) {
		/* Root cannot (NFS root_squash), or not root: the flat layout of old, which a
		 * planted file cannot block either (it is never taken for a journal). */
		log_msg(LOG_WARNING, "--journal-dir %s: no directory %s of uid %ju (%s): journals "
			"go to %s itself", dir, name, (uintmax_t)uid, strerror(errno), dir);
		snprintf(out, outlen, "%s", dir);
		close(dfd);
		return 0;
	}
	int rc = adopt_flat_journal(dfd, sub, dir, mailbox, uid);
	close(sub);
	close(dfd);
	if (rc < 0)
		set_why(why, whylen, "a journal of the older layout cannot be moved");
	return rc;
}

/* POP3D_JOURNAL_DIR/UID into out when it is a directory (out), else NULL. */
static const char *journal_default_dir(uid_t uid, char *out, size_t outlen)
{
	struct stat st;
	int n = snprintf(out, outlen, "%s/%ju", POP3D_JOURNAL_DIR, (uintmax_t)uid);
	if (n < 0 || (size_t)n >= outlen || lstat(out, &st) < 0 || !S_ISDIR(st.st_mode)) {
		out[0] = '\0';
		return NULL;
	}
	return out;
}

int journal_places_prepare(const char *configured, const char *mailbox, uid_t uid, gid_t gid,
			   bool beside_ok, struct journal_places *out, char *why, size_t whylen)
{
	out->dir[0] = out->alt[0] = '\0';
	const char *dir = configured;
	struct stat st;
	if (!dir && !beside_ok) {
		if (stat(POP3D_JOURNAL_DIR, &st) == 0 && S_ISDIR(st.st_mode))
			dir = POP3D_JOURNAL_DIR;
		else
			log_msg(LOG_ERR, "uid %ju cannot create files beside %s and the journal "
				"directory %s is missing (%s): an update will fail; create %s "
				"(owner root, mode 0755) or pass --journal-dir", (uintmax_t)uid,
				LOG_Q(mailbox), POP3D_JOURNAL_DIR, strerror(errno), POP3D_JOURNAL_DIR);
	}
	if (dir && journal_dir_prepare(dir, mailbox, uid, gid, out->dir, sizeof(out->dir),
				       why, whylen) < 0)
		return -1;
	journal_default_dir(uid, out->alt, sizeof(out->alt));
	if (strcmp(out->alt, out->dir) == 0)
		out->alt[0] = '\0';
	return 0;
}

/* ---- the update ------------------------------------------------------------------ */

struct plan {
	size_t first_del;   /* index of the first deleted message */
	size_t ndeleted;
	off_t x;            /* its From_ line: where kept data goes */
	off_t s;            /* current size */
	off_t l;            /* kept data after x, tail appended since the scan included */
};

static off_t region_end(const struct mbox *mb, size_t i)
{
	return i + 1 < mb->nmsgs ? mb->msgs[i + 1].start : mb->scanned;
}

static bool is_deleted(const struct mbox *mb, size_t i)
{
	return i >= mb->first && mb->msgs[i].deleted;   /* the pseudo message stays */
}

static bool any_deleted(const struct mbox *mb)
{
	for (size_t i = 0; i < mb->nmsgs; i++)
		if (is_deleted(mb, i))
			return true;
	return false;
}

static void make_plan(const struct mbox *mb, off_t size, struct plan *p)
{
	memset(p, 0, sizeof(*p));
	p->s = size;
	p->first_del = mb->nmsgs;
	for (size_t i = 0; i < mb->nmsgs; i++) {
		if (is_deleted(mb, i)) {
			if (p->first_del == mb->nmsgs)
				p->first_del = i;
			p->ndeleted++;
		} else if (p->first_del < i) {
			p->l += region_end(mb, i) - mb->msgs[i].start;
		}
	}
	p->x = mb->msgs[p->first_del].start;
	p->l += size - mb->scanned;
}

/* The file is the one scanned, grown at most; nothing scanned moved or changed. */
static int verify_unchanged(struct op *op, const struct mbox *mb, off_t *size)
{
	struct stat st, now;
	if (fstat(mb->fd, &st) < 0)
		return fail(op, "cannot stat %s", op->path);
	if (stat(op->path, &now) < 0)
		return errno == ENOENT ? changed(op, "it was removed") : fail(op, "cannot stat %s", op->path);
	if (now.st_dev != mb->dev || now.st_ino != mb->ino || st.st_dev != mb->dev ||
	    st.st_ino != mb->ino)
		return changed(op, "it was replaced by another file");
	if (st.st_nlink != 1)
		return changed(op, "it has %ju names now (a hard link)", (uintmax_t)st.st_nlink);
	if (st.st_size < mb->scanned)
		return changed(op, "it shrank from %jd to %jd octets", (intmax_t)mb->scanned,
			       (intmax_t)st.st_size);
	size_t bad;
	int intact = mbox_starts_intact(mb, &bad);
	if (intact < 0)
		return fail(op, "cannot read %s", op->path);
	if (!intact)
		return changed(op, "message %zu no longer starts at offset %jd", bad,
			       (intmax_t)mb->msgs[bad].start);
	for (size_t i = 0; i < mb->nmsgs; i++) {
		uint64_t hash[2];
		if (!is_deleted(mb, i))
			continue;
		if (mbox_rehash(mb, i, hash) < 0)
			return fail(op, "cannot read %s", op->path);
		if (hash[0] != mb->msgs[i].hash[0] || hash[1] != mb->msgs[i].hash[1])
			return changed(op, "deleted message %zu was modified", i);
	}
	*size = st.st_size;
	return RC_OK;
}

/* Nothing is kept after the first deleted message: cut the file there. */
static int truncate_only(struct op *op, const struct mbox *mb, const struct plan *p)
{
	if (ftruncate_retry(mb->fd, p->x) < 0)
		return fail(op, "cannot truncate %s", op->path);
	int rc = step(op, "mailbox-truncated");
	if (rc != RC_OK)
		return rc;
	if (fsync_retry(mb->fd) < 0)
		return fail(op, "cannot sync %s", op->path);
	if ((rc = step(op, "mailbox-synced")) != RC_OK)
		return rc;
	log_msg(LOG_INFO, "update %s: %zu message%s removed, %jd octets, by truncate", LOG_Q(op->path),
		p->ndeleted, p->ndeleted == 1 ? "" : "s", (intmax_t)(p->s - p->x));
	return RC_OK;
}

/* The kept data after X, in file order, coalescing neighbours, into the journal. */
static int journal_kept_data(struct op *op, const struct mbox *mb, const struct plan *p,
			     struct jwriter *jw)
{
	off_t from = -1, to = -1;   /* pending range */
	for (size_t i = p->first_del + 1; i < mb->nmsgs; i++) {
		if (is_deleted(mb, i))
			continue;
		off_t a = mb->msgs[i].start, b = region_end(mb, i);
		if (from >= 0 && a == to) {
			to = b;
			continue;
		}
		if (from >= 0) {
			int rc = journal_append(op, jw, mb->fd, op->path, from, to - from);
			if (rc != RC_OK)
				return rc;
		}
		from = a;
		to = b;
	}
	if (from >= 0 && to == mb->scanned) {
		to = p->s;   /* the tail appended since the scan joins the last range */
	} else if (p->s > mb->scanned) {
		if (from >= 0) {
			int rc = journal_append(op, jw, mb->fd, op->path, from, to - from);
			if (rc != RC_OK)
				return rc;
		}
		from = mb->scanned;
		to = p->s;
	}
	if (from < 0)
		return RC_OK;
	return journal_append(op, jw, mb->fd, op->path, from, to - from);
}

/* Write and sync the journal. On a failure it is removed again: nothing changed. */
static int write_update_journal(struct op *op, const struct mbox *mb, const struct plan *p,
				struct jhdr *h)
{
	h->x = p->x;
	h->s = p->s;
	h->l = p->l;
	h->wlen = min_off(JOURNAL_WITNESS_SIZE, p->s - p->x - p->l);
	struct jwriter jw;
	int rc = sync_mailbox_before_journal(op, mb->fd);
	if (rc != RC_OK)
		return rc;
	rc = journal_begin(op, op->jpath, &jw);
	if (rc == RC_FAIL && errno == EEXIST)
		log_msg(LOG_ERR, "update %s: %s exists (a journal that needs recovery, or a file "
			"that is not pop3d's in its place), nothing applied", LOG_Q(op->path), LOG_Q(op->jpath));
	if (rc == RC_FAIL && jw.fd < 0)
		return rc;   /* not created: nothing to clean up */
	if (rc == RC_OK)
		rc = journal_kept_data(op, mb, p, &jw);
	if (rc == RC_OK)
		rc = witness_sum(op, mb->fd, h->s, h->wlen, &h->wsum);
	if (rc == RC_OK)
		rc = journal_finish(op, &jw, h);
	journal_close(&jw);
	if (rc == RC_OK && !skip_sync("journal_dir"))
		rc = fsync_dir(op);
	if (rc == RC_OK)
		rc = step(op, "journal-dir-synced");
	if (rc == RC_FAIL) {
		int err = errno;
		unlink(op->jpath);
		fsync_dir(op);   /* best effort; a leftover would be dropped as incomplete */
		errno = err;
	}
	return rc;
}

static int move_through_journal(struct op *op, const struct mbox *mb, const struct plan *p)
{
	int rc = op_alloc_buffer(op);   /* a truncate needs none */
	if (rc != RC_OK)
		return rc;
	struct jhdr h;
	rc = write_update_journal(op, mb, p, &h);
	if (rc != RC_OK)
		return rc;
	int jfd = open(op->jpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (jfd < 0) {
		rc = fail(op, "cannot open journal %s", op->jpath);
		unlink(op->jpath);   /* the mailbox is still untouched */
		return rc;
	}
	rc = replay(op, mb->fd, jfd, &h);
	close(jfd);
	if (rc == RC_CRASH)
		return rc;
	if (rc == RC_FAIL) {
		/* The mailbox may be half moved: only the journal can finish it. */
		log_msg(LOG_ERR, "update %s: interrupted, trying recovery", LOG_Q(op->path));
		rc = recover_locked(op, mb->fd);
		if (rc != RC_OK) {
			log_msg(LOG_ERR, "update %s: recovery failed, journal %s kept for the next login",
				LOG_Q(op->path), LOG_Q(op->jpath));
			return rc;
		}
	}
	log_msg(LOG_INFO, "update %s: %zu message%s removed, %jd octets, by moving %jd octets "
		"through the journal", LOG_Q(op->path), p->ndeleted, p->ndeleted == 1 ? "" : "s",
		(intmax_t)(p->s - p->x - p->l),
		(intmax_t)p->l);
	return RC_OK;
}

static int update_locked(struct op *op, const struct mbox *mb)
{
	off_t size = 0;
	int rc = verify_unchanged(op, mb, &size);
	if (rc != RC_OK)
		return rc;
	struct plan p;
	make_plan(mb, size, &p);
	if (p.s - p.x - p.l <= 0) {   /* the scan gave a deleted message no octets */
		errno = EINVAL;
		return fail(op, "update %s: nothing to remove", op->path);
	}
	if (p.l == 0)
		return truncate_only(op, mb, &p);
	return move_through_journal(op, mb, &p);
}

enum mbox_status mbox_update_hooked(struct mbox *mb, const struct update_hooks *hooks,
				    char *why, size_t whylen)
{
	if (why && whylen > 0)
		why[0] = '\0';
	if (!any_deleted(mb))
		return MBOX_OK;
	if (mb->maildir)
		return maildir_update(mb, hooks, why, whylen);
	if (!mb->path || mb->fd < 0) {
		if (why && whylen > 0)
			snprintf(why, whylen, "mailbox opened without a path cannot be updated");
		return MBOX_TEMP;
	}
	struct op op;
	if (op_init(&op, mb->path, mb->opt.journal_dir, hooks, why, whylen) != RC_OK)
		return MBOX_TEMP;
	struct mail_lock lk;
	if (mailbox_lock(mb->path, mb->fd, mb->opt.lock_methods, mb->opt.lock_timeout, &lk,
			 why, whylen) < 0) {
		log_msg(LOG_ERR, "update %s: cannot lock, nothing applied: %s", LOG_Q(mb->path),
			why ? why : "");
		op_free(&op);
		return MBOX_TEMP;
	}
	int rc = update_locked(&op, mb);
	mailbox_unlock(&lk);
	op_free(&op);
	if (rc != RC_OK)
		return MBOX_TEMP;
	mbox_updated(mb);   /* after the lock, as at login: delivery need not wait for the index */
	return MBOX_OK;
}

enum mbox_status mbox_update(struct mbox *mb, char *why, size_t whylen)
{
	return mbox_update_hooked(mb, NULL, why, whylen);
}
