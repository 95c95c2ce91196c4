/*
 * The index file of a mailbox: the per-message entries of the last scan, so a
 * login rescans only what was appended since. A cache: every doubt means
 * "not usable", and the mailbox is scanned as if there were none.
 *
 * Layout, every integer little-endian:
 *   header (IDX_HDR_SIZE): magic[8], version:u32, entry size:u32, then u64s:
 *          dev, ino, size, mtime s, mtime ns, ctime s, ctime ns,
 *          messages, first, tail_sum, entries_sum, header_sum
 *   entries (IDX_ENTRY_SIZE each), u64s: start, end, hash0, hash1,
 *          body | dup << 44, size
 * header_sum covers the header octets before it; the file is exactly header
 * plus messages entries long.
 */
#define _GNU_SOURCE
#include "index.h"

#include "fileio.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"

#define IDX_MAGIC       "P3DINDX\n"
#define IDX_VERSION     2   /* 1: 56-octet entries */
#define IDX_HDR_SIZE    112
#define IDX_ENTRY_SIZE  48
#define IDX_DUP_SHIFT   44  /* body and dup share a u64 */
#define IDX_SUM_AT      (IDX_HDR_SIZE - 8)   /* header_sum: the last u64 of the header */
/* Entries per write: a multiple of 4, so each batch is whole checksum groups (4 * 48 = 6 * 32). */
#define IDX_BATCH       (INDEX_IO_SIZE / (4 * IDX_ENTRY_SIZE) * 4)

_Static_assert(IDX_BATCH > 0, "index I/O buffer too small");
_Static_assert(sizeof(struct mbox_msg) == IDX_ENTRY_SIZE, "index entries are read in place");

/* What the header says. */
struct idx_header {
	uint64_t dev, ino, size, mtime_s, mtime_ns, ctime_s, ctime_ns;
	uint64_t n, first, tail_sum, entries_sum;
};

/* ---- encoding ------------------------------------------------------------ */

static void put_le64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static uint32_t get_le32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

/*
 * A 64-bit checksum: four independent multiply-rotate lanes over 32-octet
 * groups (so a 5 MB index sums at memory speed), the rest word by word.
 * Fed in pieces, every piece but the last must be a multiple of 32 octets.
 */
#define SUM_SEED UINT64_C(0x9E3779B97F4A7C15)
#define SUM_MUL  UINT64_C(0xC2B2AE3D27D4EB4F)
#define SUM_GROUP 32

struct sum {
	uint64_t lane[4];
};

static inline uint64_t sum_round(uint64_t h, uint64_t w)
{
	h ^= w;
	return ((h << 29) | (h >> 35)) * SUM_MUL;
}

static void sum_init(struct sum *s)
{
	for (int i = 0; i < 4; i++)
		s->lane[i] = SUM_SEED + (uint64_t)i;
}

static void sum_feed(struct sum *s, const unsigned char *p, size_t n)
{
	for (; n >= SUM_GROUP; p += SUM_GROUP, n -= SUM_GROUP)
		for (int i = 0; i < 4; i++)
			s->lane[i] = sum_round(s->lane[i], get_le64(p + 8 * i));
	for (; n >= 8; p += 8, n -= 8)
		s->lane[0] = sum_round(s->lane[0], get_le64(p));
	for (; n > 0; p++, n--)
		s->lane[1] = sum_round(s->lane[1], *p);
}

static uint64_t sum_final(const struct sum *s)
{
	uint64_t h = s->lane[0];
	for (int i = 1; i < 4; i++)
		h = sum_round(h, s->lane[i]);
	return h ^ (h >> 31);
}

static uint64_t sum_of(const void *p, size_t n)
{
	struct sum s;
	sum_init(&s);
	sum_feed(&s, p, n);
	return sum_final(&s);
}

static void encode_header(const struct idx_header *h, unsigned char *p)
{
	memcpy(p, IDX_MAGIC, 8);
	put_le32(p + 8, IDX_VERSION);
	put_le32(p + 12, IDX_ENTRY_SIZE);
	const uint64_t v[] = { h->dev, h->ino, h->size, h->mtime_s, h->mtime_ns, h->ctime_s,
			       h->ctime_ns, h->n, h->first, h->tail_sum, h->entries_sum };
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		put_le64(p + 16 + 8 * i, v[i]);
	put_le64(p + IDX_SUM_AT, sum_of(p, IDX_SUM_AT));
}

/* -1 unless the octets are a header of this version with a matching sum. */
static int decode_header(const unsigned char *p, struct idx_header *h)
{
	if (memcmp(p, IDX_MAGIC, 8) != 0 || get_le32(p + 8) != IDX_VERSION ||
	    get_le32(p + 12) != IDX_ENTRY_SIZE || get_le64(p + IDX_SUM_AT) != sum_of(p, IDX_SUM_AT))
		return -1;
	uint64_t *v[] = { &h->dev, &h->ino, &h->size, &h->mtime_s, &h->mtime_ns, &h->ctime_s,
			  &h->ctime_ns, &h->n, &h->first, &h->tail_sum, &h->entries_sum };
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		*v[i] = get_le64(p + 16 + 8 * i);
	return 0;
}

static void encode_entry(const struct mbox_msg *m, unsigned char *p)
{
	put_le64(p, (uint64_t)m->start);
	put_le64(p + 8, (uint64_t)m->end);
	put_le64(p + 16, m->hash[0]);
	put_le64(p + 24, m->hash[1]);
	put_le64(p + 32, (uint64_t)m->body | (uint64_t)m->dup << IDX_DUP_SHIFT);
	put_le64(p + 40, (uint64_t)m->size);
}

static void decode_entry(const unsigned char *p, struct mbox_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->start = (off_t)get_le64(p);
	m->end = (off_t)get_le64(p + 8);
	m->hash[0] = get_le64(p + 16);
	m->hash[1] = get_le64(p + 24);
	uint64_t body_dup = get_le64(p + 32);
	m->body = (off_t)(body_dup & (((uint64_t)1 << IDX_DUP_SHIFT) - 1));
	m->dup = body_dup >> IDX_DUP_SHIFT;
	uint64_t size = get_le64(p + 40);
	/* out of range: a size entry_is_sane() refuses, not a truncated one it might take */
	m->size = size > (uint64_t)MAX_MAILBOX_SIZE * 4 ? -1 : (off_t)size;
}

/* ---- I/O ------------------------------------------------------------------ */

/* Checksum of the mailbox octets [size - INDEX_TAIL_SIZE, size): where an index stops. */
static int tail_sum(int fd, off_t size, uint64_t *out)
{
	unsigned char buf[INDEX_TAIL_SIZE];
	off_t from = size > INDEX_TAIL_SIZE ? size - INDEX_TAIL_SIZE : 0;
	size_t len = (size_t)(size - from);
	if (pread_full(fd, buf, len, from) != (ssize_t)len)
		return -1;
	*out = sum_of(buf, len);
	return 0;
}

int index_path(const char *dir, const char *mailbox, char *out, size_t outlen)
{
	const char *slash = strrchr(mailbox, '/');
	const char *base = slash ? slash + 1 : mailbox;
	if (!*base)
		return -1;
	int n = snprintf(out, outlen, "%s/%s%s", dir, base, INDEX_SUFFIX);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* ---- loading ------------------------------------------------------------- */

int index_file_open(const char *path, off_t min_len, off_t *len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_msg(LOG_DEBUG, "index %s: cannot open: %s", LOG_Q(path), strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_size < min_len) {
		log_msg(LOG_DEBUG, "index %s: not a regular file of ours", LOG_Q(path));
		close(fd);
		return -1;
	}
	*len = st.st_size;
	return fd;
}

/* The mailbox is the one indexed, unchanged or grown. */
static enum index_result compare_mailbox(const struct idx_header *h, const struct stat *st)
{
	if (h->dev != (uint64_t)st->st_dev || h->ino != (uint64_t)st->st_ino || h->n == 0 ||
	    h->size > (uint64_t)st->st_size)
		return INDEX_NONE;
	if (h->size < (uint64_t)st->st_size)
		return INDEX_GROWN;
	if (h->mtime_s != (uint64_t)st->st_mtim.tv_sec ||
	    h->mtime_ns != (uint64_t)st->st_mtim.tv_nsec ||
	    h->ctime_s != (uint64_t)st->st_ctim.tv_sec ||
	    h->ctime_ns != (uint64_t)st->st_ctim.tv_nsec)
		return INDEX_NONE;   /* same size, but written since: rewritten in place */
	return INDEX_SAME;
}

/* Message i fits between its neighbours and inside the indexed size. */
static bool entry_is_sane(const struct mbox_msg *m, size_t i, off_t prev_end, off_t size)
{
	if (i == 0 ? m->start != 0 : m->start < prev_end)
		return false;
	if (m->body < m->start + 5 || m->end < m->body || m->end > size)
		return false;
	off_t len = m->end - m->body;   /* as sent: each LF may gain a CR, a final CRLF */
	return m->size >= len && m->size <= 2 * len + 2 && m->dup <= i;
}

/* Entries read as stored, decoded where they are (a plain copy on little-endian hosts). */
static void decode_in_place(struct mbox_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct mbox_msg m;
		decode_entry((const unsigned char *)&msgs[i], &m);
		msgs[i] = m;
	}
}

/* Read the n entries after the header straight into msgs; check and decode them. */
static int read_entries(int ifd, const struct idx_header *h, struct mbox_msg *msgs)
{
	size_t len = (size_t)h->n * IDX_ENTRY_SIZE;
	if (pread_full(ifd, msgs, len, IDX_HDR_SIZE) != (ssize_t)len ||
	    sum_of(msgs, len) != h->entries_sum)
		return -1;
	decode_in_place(msgs, (size_t)h->n);
	off_t prev_end = 0;
	for (size_t i = 0; i < h->n; i++) {
		if (!entry_is_sane(&msgs[i], i, prev_end, (off_t)h->size))
			return -1;
		prev_end = msgs[i].end;
	}
	return 0;
}

/* "From " at the start of msgs[i], after an LF unless at offset 0. */
static bool from_line_at(int fd, const struct mbox_msg *m)
{
	char b[6];
	off_t at = m->start > 0 ? m->start - 1 : 0;
	size_t skip = m->start > 0 ? 0 : 1;
	if (pread_full(fd, b + skip, sizeof(b) - skip, at) != (ssize_t)(sizeof(b) - skip))
		return false;
	return (skip || b[0] == '\n') && memcmp(b + 1, "From ", 5) == 0;
}

/* Up to INDEX_SAMPLES messages, the first and the last among them, still start where indexed. */
static bool samples_in_place(int fd, const struct mbox_msg *msgs, size_t n)
{
	size_t step = n > INDEX_SAMPLES ? n / INDEX_SAMPLES : 1;
	for (size_t i = 0; i < n; i += step)
		if (!from_line_at(fd, &msgs[i]))
			return false;
	return from_line_at(fd, &msgs[n - 1]);
}

/* Validate the index on ifd against the mailbox; fill out. */
static enum index_result load_checked(int ifd, off_t ilen, int fd, const struct stat *st,
				      struct index_loaded *out)
{
	unsigned char raw[IDX_HDR_SIZE];
	struct idx_header h;
	if (pread_full(ifd, raw, sizeof(raw), 0) != (ssize_t)sizeof(raw) || decode_header(raw, &h) < 0)
		return INDEX_NONE;
	if (h.n > (uint64_t)(SIZE_MAX / sizeof(struct mbox_msg)) ||
	    h.n > (uint64_t)((INT64_MAX - IDX_HDR_SIZE) / IDX_ENTRY_SIZE) ||
	    (uint64_t)ilen != IDX_HDR_SIZE + h.n * IDX_ENTRY_SIZE || h.first > 1 || h.first > h.n)
		return INDEX_NONE;
	enum index_result res = compare_mailbox(&h, st);
	uint64_t tail;
	if (res == INDEX_NONE || tail_sum(fd, (off_t)h.size, &tail) < 0 || tail != h.tail_sum)
		return INDEX_NONE;
	struct mbox_msg *msgs = malloc((size_t)h.n * sizeof(*msgs));
	if (!msgs)
		return INDEX_NONE;
	if (read_entries(ifd, &h, msgs) < 0 || !samples_in_place(fd, msgs, (size_t)h.n)) {
		free(msgs);
		return INDEX_NONE;
	}
	out->msgs = msgs;
	out->n = (size_t)h.n;
	out->first = (size_t)h.first;
	out->resume = (off_t)h.size;
	if (res == INDEX_GROWN) {   /* the last message may go on: scan it again */
		out->n--;
		out->resume = msgs[out->n].start;
		if (out->n == 0)
			out->first = 0;
	}
	return res;
}

enum index_result index_load(const char *dir, const char *mailbox, int fd, const struct stat *st,
			     struct index_loaded *out)
{
	memset(out, 0, sizeof(*out));
	char path[MAX_PATH_LEN];
	if (index_path(dir, mailbox, path, sizeof(path)) < 0)
		return INDEX_NONE;
	off_t ilen;
	int ifd = index_file_open(path, IDX_HDR_SIZE, &ilen);
	if (ifd < 0)
		return INDEX_NONE;
	enum index_result res = load_checked(ifd, ilen, fd, st, out);
	close(ifd);
	if (res == INDEX_NONE)
		log_msg(LOG_DEBUG, "index %s: stale or damaged, rebuilding", LOG_Q(path));
	return res;
}

/* ---- saving -------------------------------------------------------------- */

int index_dir_open(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT && mkdir(dir, 0700) == 0)
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		log_msg(LOG_WARNING, "index directory %s: %s", LOG_Q(dir), strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(dfd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		log_msg(LOG_WARNING, "index directory %s: not ours alone, no index kept", LOG_Q(dir));
		close(dfd);
		return -1;
	}
	return dfd;
}

/* Entries after the header, a batch at a time; their checksum into *sum. */
static int write_entries(int tfd, const struct mbox *mb, uint64_t *sum)
{
	unsigned char *buf = malloc(IDX_BATCH * IDX_ENTRY_SIZE);
	if (!buf)
		return -1;
	struct sum s;
	sum_init(&s);
	int rc = 0;
	for (size_t i = 0; i < mb->nmsgs && rc == 0;) {
		size_t batch = mb->nmsgs - i < IDX_BATCH ? mb->nmsgs - i : IDX_BATCH;
		for (size_t k = 0; k < batch; k++)
			encode_entry(&mb->msgs[i + k], buf + k * IDX_ENTRY_SIZE);
		size_t len = batch * IDX_ENTRY_SIZE;
		sum_feed(&s, buf, len);
		rc = pwrite_all(tfd, buf, len, IDX_HDR_SIZE + (off_t)(i * IDX_ENTRY_SIZE));
		i += batch;
	}
	free(buf);
	*sum = sum_final(&s);
	return rc;
}

static int write_index(int tfd, const struct mbox *mb, const struct stat *st)
{
	struct idx_header h = {
		.dev = (uint64_t)st->st_dev, .ino = (uint64_t)st->st_ino,
		.size = (uint64_t)mb->scanned,
		.mtime_s = (uint64_t)st->st_mtim.tv_sec, .mtime_ns = (uint64_t)st->st_mtim.tv_nsec,
		.ctime_s = (uint64_t)st->st_ctim.tv_sec, .ctime_ns = (uint64_t)st->st_ctim.tv_nsec,
		.n = mb->nmsgs, .first = mb->first,
	};
	unsigned char raw[IDX_HDR_SIZE];
	if (tail_sum(mb->fd, mb->scanned, &h.tail_sum) < 0 ||
	    write_entries(tfd, mb, &h.entries_sum) < 0)
		return -1;
	encode_header(&h, raw);
	if (pwrite_all(tfd, raw, sizeof(raw), 0) < 0)
		return -1;
	while (fsync(tfd) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

int index_replace(const char *dir, const char *path, int (*write)(int fd, const void *ctx),
		  const void *ctx)
{
	char tmp[MAX_PATH_LEN + 32];
	if (snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		log_msg(LOG_WARNING, "index path %s is too long", LOG_Q(path));
		return -1;
	}
	int dfd = index_dir_open(dir);
	if (dfd < 0)
		return -1;
	const char *base = strrchr(path, '/') + 1, *tbase = strrchr(tmp, '/') + 1;
	unlinkat(dfd, tbase, 0);   /* left by a process of the same pid that died */
	int tfd = openat(dfd, tbase, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = tfd < 0 ? -1 : write(tfd, ctx);
	int err = errno;
	if (tfd >= 0 && close(tfd) < 0 && rc == 0) {
		rc = -1;
		err = errno;
	}
	if (rc == 0 && renameat(dfd, tbase, dfd, base) < 0) {
		rc = -1;
		err = errno;
	}
	if (rc < 0) {
		unlinkat(dfd, tbase, 0);
		log_msg(LOG_WARNING, "index %s: cannot write: %s", LOG_Q(path), strerror(err));
	}
	close(dfd);
	return rc;
}

struct mbox_index {
	const struct mbox *mb;
	const struct stat *st;
};

static int write_mbox_index(int fd, const void *ctx)
{
	const struct mbox_index *x = ctx;
	return write_index(fd, x->mb, x->st);
}

int index_save(const char *dir, const char *mailbox, const struct mbox *mb, const struct stat *st)
{
	char path[MAX_PATH_LEN];
	if (index_path(dir, mailbox, path, sizeof(path)) < 0) {
		log_msg(LOG_WARNING, "index path for %s is too long", LOG_Q(mailbox));
		return -1;
	}
	struct mbox_index x = {.mb = mb, .st = st};
	return index_replace(dir, path, write_mbox_index, &x);
}
