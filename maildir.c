/*
 * A Maildir maildrop: scanned at login (new/ and cur/), each message streamed
 * from its file.
 *
 * The scan reads the two directories, stats every entry (never following a
 * link), sorts the messages by delivery and takes each size as sent from the
 * name's ",W=" field, else from the index of an earlier login, else by
 * reading the file. Only the names pool and the 48-octet entries grow with
 * the number of messages; nothing grows with their size.
 *
 * The index (--index-dir): DIR/<Maildir's name>.<hash of its path>
 * MAILDIR_INDEX_SUFFIX, the sizes that had to be computed, so that the next
 * login reads no file again. A cache, never trusted blindly: it is used only
 * when it is a regular file of ours whose checksums match and that names this
 * Maildir's device and inode, and an entry only when the file's base name and
 * st_size are the ones indexed. Layout, integers little-endian:
 *   header (MDX_HDR_SIZE): magic[8], then u64s: version, dev, ino,
 *          entries, entries' octets, entries_sum, header_sum (of the octets
 *          before it);
 *   entries, in the order of the messages (key_cmp: stamp, microseconds,
 *          base name): u64
 *          st_size, u64 size as sent, u16 base length, the base's octets.
 */
#define _GNU_SOURCE
#include "maildir.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/limits.h>   /* NAME_MAX (<limits.h> can find ./limits.h under -iquote .) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "index.h"
#include "lock.h"
#include "log.h"

/* A subdirectory name, looked up without following a symbolic link. */
static bool has_subdir(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

bool maildir_path_is(const char *path)
{
	size_t len = strlen(path);
	if (len > 0 && path[len - 1] == '/')
		return true;   /* Postfix's and Dovecot's convention: a trailing slash */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool is = has_subdir(fd, "cur") && has_subdir(fd, "new") && has_subdir(fd, "tmp");
	close(fd);
	return is;
}

int maildir_dir_path(const char *path, char *out, size_t outlen)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len >= outlen)
		return -1;
	memcpy(out, path, len);
	out[len] = '\0';
	return 0;
}

const char *maildir_dir_problem(const struct stat *st)
{
	if (!S_ISDIR(st->st_mode))
		return "mailbox is not a Maildir (not a directory)";
	if (st->st_uid != geteuid())
		return "Maildir belongs to another account";
	if ((st->st_mode & S_IRWXU) != S_IRWXU)
		return "Maildir mode denies its owner access";
	return NULL;
}

/* ---- names ---------------------------------------------------------------- */

/* Leading decimal digits of p[0..n) into *v (saturating at UINT64_MAX); how many. */
static size_t read_digits(const char *p, size_t n, uint64_t *v, bool *overflow)
{
	size_t i = 0;
	uint64_t x = 0;
	*overflow = false;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		unsigned d = (unsigned)(p[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			*overflow = true;
		else
			x = x * 10 + d;
	}
	*v = *overflow ? UINT64_MAX : x;
	return i;
}

/*
 * A ",K=<digits>" field at base[at..len) (at just after the ','): its value
 * when the digits run to the next ',' or the base's end without overflowing.
 */
static bool size_field(const char *base, size_t len, size_t at, char key, uint64_t *v)
{
	if (at + 2 > len || base[at] != key || base[at + 1] != '=')
		return false;
	bool overflow;
	size_t n = read_digits(base + at + 2, len - at - 2, v, &overflow);
	size_t end = at + 2 + n;
	return n > 0 && !overflow && (end == len || base[end] == ',');
}

int maildir_name_parse(const char *name, size_t len, struct maildir_name *out)
{
	memset(out, 0, sizeof(*out));
	if (len == 0 || len > NAME_MAX || name[0] == '.')
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			return -1;   /* NUL too */
	}
	const char *colon = memchr(name, ':', len);
	out->base_len = colon ? (size_t)(colon - name) : len;
	bool overflow;
	read_digits(name, out->base_len, &out->stamp, &overflow);
	for (size_t i = 0; i < out->base_len; i++) {   /* the first of each field counts */
		if (name[i] != ',')
			continue;
		uint64_t v;
		if (!out->has_size && size_field(name, out->base_len, i + 1, 'S', &v)) {
			out->has_size = true;
			out->size = v;
		} else if (!out->has_vsize && size_field(name, out->base_len, i + 1, 'W', &v)) {
			out->has_vsize = true;
			out->vsize = v;
		}
	}
	return 0;
}

/* ---- SHA-256 (FIPS 180-4), for the derived unique-id ------------------------ */

struct sha256 {
	uint32_t h[8];
	unsigned char block[64];
	size_t fill;
	uint64_t bits;
};

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t ror32(uint32_t x, unsigned r)
{
	return (x >> r) | (x << (32 - r));
}

static void sha256_block(struct sha256 *s, const unsigned char *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
			      sha256_k[i] + w[i];
		uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g; g = f; f = e; e = d + t1;
		d = c; c = b; b = a; a = t1 + t2;
	}
	s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
	s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
					0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	memcpy(s->h, iv, sizeof(iv));
	s->fill = 0;
	s->bits = 0;
}

static void sha256_feed(struct sha256 *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	s->bits += (uint64_t)len * 8;
	while (len > 0) {
		size_t take = 64 - s->fill < len ? 64 - s->fill : len;
		memcpy(s->block + s->fill, p, take);
		s->fill += take;
		p += take;
		len -= take;
		if (s->fill == 64) {
			sha256_block(s, s->block);
			s->fill = 0;
		}
	}
}

static void sha256_final(struct sha256 *s, unsigned char out[32])
{
	uint64_t bits = s->bits;
	unsigned char pad[72] = { 0x80 };
	size_t padlen = (s->fill < 56 ? 56 : 120) - s->fill;
	for (int i = 0; i < 8; i++)
		pad[padlen + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
	sha256_feed(s, pad, padlen + 8);
	for (int i = 0; i < 8; i++)
		for (int k = 0; k < 4; k++)
			out[4 * i + k] = (unsigned char)(s->h[i] >> (24 - 8 * k));
}

/* ---- unique-ids ------------------------------------------------------------- */

#define DERIVED_HEX 32   /* hexadecimal digits of the hash in a derived unique-id */
_Static_assert(1 + DERIVED_HEX <= MAX_UIDL_LEN, "a derived unique-id fits");

static bool uidl_as_is(const char *base, size_t len)
{
	if (len == 0 || len > MAX_UIDL_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)base[i] < 0x21 || (unsigned char)base[i] > 0x7e)
			return false;
	return true;
}

void maildir_uidl_of(const char *name, size_t len, char *buf)
{
	const char *colon = memchr(name, ':', len);
	size_t base_len = colon ? (size_t)(colon - name) : len;
	if (uidl_as_is(name, base_len)) {
		memcpy(buf, name, base_len);
		buf[base_len] = '\0';
		return;
	}
	static const char hex[] = "0123456789abcdef";
	struct sha256 s;
	unsigned char d[32];
	sha256_init(&s);
	sha256_feed(&s, name, base_len);
	sha256_final(&s, d);
	buf[0] = 'X';
	for (int i = 0; i < DERIVED_HEX / 2; i++) {
		buf[1 + 2 * i] = hex[d[i] >> 4];
		buf[2 + 2 * i] = hex[d[i] & 0xf];
	}
	buf[1 + DERIVED_HEX] = '\0';
}

void maildir_uidl(const struct mbox *mb, size_t n, char *buf)
{
	const struct mbox_msg *m = mbox_msg(mb, n);
	if (!m || !mb->maildir) {
		buf[0] = '\0';
		return;
	}
	const char *name = mb->maildir->names + m->start + 4;   /* past "new/" or "cur/" */
	maildir_uidl_of(name, strlen(name), buf);
}

/* ---- the scan --------------------------------------------------------------- */

/*
 * While the scan runs, each entry keeps scratch fields, cleared before
 * maildir_open() returns: hash[0] its stamp, hash[1] these bits, from bit
 * MSG_BASE_SHIFT on the length of its base name, from MSG_USEC_SHIFT on its
 * microseconds (name_usecs).
 */
#define MSG_SIZED      1u   /* size known */
#define MSG_FROM_NAME  2u   /* ... from the name's ",W=": not indexed */
#define MSG_FROM_INDEX 4u   /* ... from the index: undone if the index proves bad */
#define MSG_DROP       8u   /* not a message after all (gone, or a duplicate) */
#define MSG_BITS_MASK  0xffffu
#define MSG_BASE_SHIFT 16
#define MSG_BASE_MASK  0xffffu
#define MSG_USEC_SHIFT 32
_Static_assert(NAME_MAX <= MSG_BASE_MASK, "a base length fits its scratch bits");

/* The scan of one Maildir (maildir_open). */
struct scan {
	struct mbox *mb;
	struct maildir *md;
	size_t cap;              /* entries allocated in mb->msgs */
	off_t total;             /* octets of the files so far (the size limit) */
	bool computed;           /* some size was computed: the index is out of date */
	char *why;
	size_t whylen;
};

static inline unsigned msg_bits(const struct mbox_msg *m)
{
	return (unsigned)(m->hash[1] & MSG_BITS_MASK);
}

static inline size_t msg_base_len(const struct mbox_msg *m)
{
	return (size_t)((m->hash[1] >> MSG_BASE_SHIFT) & MSG_BASE_MASK);
}

/* The name of msgs[i], past "new/" or "cur/". */
static const char *msg_name(const struct maildir *md, const struct mbox_msg *m)
{
	return md->names + m->start + 4;
}

static size_t base_len_of(const char *name)
{
	return strcspn(name, ":");
}

/*
 * The microseconds of a name (the digits after the first 'M' of its part
 * after the stamp, up to the next '.': Dovecot's and Courier's
 * "1733590000.M123456P789.host", Postfix's "1733590000.V803I1a2bM123456.host"),
 * saturating; 0 when it has none. Dovecot orders a second's deliveries so.
 */
static uint32_t name_usecs(const char *name, size_t base_len)
{
	size_t i = 0;
	while (i < base_len && name[i] >= '0' && name[i] <= '9')
		i++;
	if (i == base_len || name[i] != '.')
		return 0;
	for (i++; i < base_len && name[i] != '.'; i++) {
		if (name[i] != 'M')
			continue;
		uint64_t v = 0;
		for (i++; i < base_len && name[i] >= '0' && name[i] <= '9'; i++)
			if ((v = v * 10 + (unsigned)(name[i] - '0')) > UINT32_MAX)
				v = UINT32_MAX;
		return (uint32_t)v;
	}
	return 0;
}

/* What messages and index entries are ordered by. */
struct order_key {
	uint64_t stamp;
	uint32_t usecs;
	const char *base;
	size_t len;
};

static struct order_key msg_key(const struct maildir *md, const struct mbox_msg *m)
{
	return (struct order_key){ .stamp = m->hash[0], .usecs = (uint32_t)(m->hash[1] >> MSG_USEC_SHIFT),
				   .base = msg_name(md, m), .len = msg_base_len(m) };
}

/*
 * The order of delivery, as Dovecot gives its messages their UIDs: the stamp,
 * then the microseconds, then the base name. (Dovecot compares microseconds
 * only when both names have them; here a name without counts as 0, so the
 * order is total. They differ only for a mixture of both kinds of names
 * within one second.)
 */
static int key_cmp(const struct order_key *a, const struct order_key *b)
{
	if (a->stamp != b->stamp)
		return a->stamp < b->stamp ? -1 : 1;
	if (a->usecs != b->usecs)
		return a->usecs < b->usecs ? -1 : 1;
	int c = memcmp(a->base, b->base, a->len < b->len ? a->len : b->len);
	if (c != 0)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

/* The order of messages: by key_cmp, then the whole name (then cur/ before new/). */
static int msg_cmp(const struct maildir *md, const struct mbox_msg *a, const struct mbox_msg *b)
{
	struct order_key ka = msg_key(md, a), kb = msg_key(md, b);
	int c = key_cmp(&ka, &kb);
	if (c == 0)
		c = strcmp(msg_name(md, a), msg_name(md, b));
	if (c == 0)
		c = strcmp(md->names + a->start, md->names + b->start);   /* "cur/" < "new/" */
	return c;
}

_Static_assert(MAX_MESSAGES <= UINT32_MAX, "entry numbers fit in 32 bits");

/* qsort_r over entry numbers. */
static int order_cmp(const void *pa, const void *pb, void *arg)
{
	const struct scan *s = arg;
	const struct mbox_msg *msgs = s->mb->msgs;
	return msg_cmp(s->md, &msgs[*(const uint32_t *)pa], &msgs[*(const uint32_t *)pb]);
}

/*
 * Sort mb->msgs: their numbers are sorted, then the entries moved into that
 * order cycle by cycle, so the sort's scratch memory is 4 octets an entry,
 * not 48. 0, or -1 when out of memory.
 */
static int sort_msgs(struct scan *s)
{
	struct mbox_msg *msgs = s->mb->msgs;
	size_t n = s->mb->nmsgs;
	if (n < 2)
		return 0;
	uint32_t *order = malloc(n * sizeof(*order));
	if (!order)
		return -1;
	for (size_t i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, n, sizeof(*order), order_cmp, s);
	for (size_t i = 0; i < n; i++) {   /* msgs[j] becomes what msgs[order[j]] was */
		if (order[i] == i)
			continue;
		struct mbox_msg first = msgs[i];
		size_t j = i;
		for (;;) {
			size_t k = order[j];
			order[j] = (uint32_t)j;
			if (k == i) {
				msgs[j] = first;
				break;
			}
			msgs[j] = msgs[k];
			j = k;
		}
	}
	free(order);
	return 0;
}

/* Append "sub/name" to the names pool; its offset, or -1 when out of memory. */
static off_t add_name(struct maildir *md, const char *sub, const char *name, size_t len)
{
	size_t need = 4 + len + 1;
	if (md->names_len + need > md->names_cap) {
		size_t cap = md->names_cap ? md->names_cap : MAILDIR_FIRST_NAMES;
		while (cap < md->names_len + need) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		char *p = realloc(md->names, cap);
		if (!p)
			return -1;
		md->names = p;
		md->names_cap = cap;
	}
	off_t at = (off_t)md->names_len;
	char *d = md->names + md->names_len;
	memcpy(d, sub, 3);
	d[3] = '/';
	memcpy(d + 4, name, len + 1);
	md->names_len += need;
	return at;
}

/* Room for one more entry in mb->msgs (doubled up to the message limit). */
static bool room_for_msg(struct scan *s)
{
	struct mbox *mb = s->mb;
	if (mb->nmsgs < s->cap)
		return true;
	size_t cap = s->cap ? s->cap * 2 : MAILDIR_FIRST_MSGS;
	if (cap > mb->opt.max_messages)
		cap = mb->opt.max_messages;
	if (cap <= s->cap || cap > SIZE_MAX / sizeof(*mb->msgs))
		return false;
	struct mbox_msg *m = realloc(mb->msgs, cap * sizeof(*mb->msgs));
	if (!m)
		return false;
	mb->msgs = m;
	s->cap = cap;
	return true;
}

/* The name's ",W=" size, when it can be trusted for a file of st_size octets. */
static bool name_size(const struct maildir_name *nm, off_t st_size, int64_t *size)
{
	if (!nm->has_vsize || (nm->has_size && nm->size != (uint64_t)st_size))
		return false;   /* ",S=" says the file is not the one named: W says nothing */
	/* every LF may gain a CR, nothing else changes */
	if (nm->vsize < (uint64_t)st_size || nm->vsize > 2 * (uint64_t)st_size)
		return false;
	*size = (int64_t)nm->vsize;
	return true;
}

/* Log a skipped entry: sub/name and why. */
static void skip_entry(const struct mbox *mb, const char *sub, const char *name, const char *what)
{
	char path[NAME_MAX + 8];
	snprintf(path, sizeof(path), "%s/%s", sub, name);
	log_msg(LOG_WARNING, "Maildir %s: %s skipped: %s", LOG_Q(mb->path), LOG_Q(path), what);
}

/* One directory entry of sub/ (open on dfd): a message, or skipped with a log line. */
static enum mbox_status add_entry(struct scan *s, int dfd, const char *sub, const char *name)
{
	struct mbox *mb = s->mb;
	size_t len = strlen(name);
	struct maildir_name nm;
	if (maildir_name_parse(name, len, &nm) < 0) {
		skip_entry(mb, sub, name, name[0] == '.' ? "a dot name is never a message" :
			   "not a message file name (control characters)");
		return MBOX_OK;
	}
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)   /* ENOENT: moved or removed since readdir: not ours to see */
			skip_entry(mb, sub, name, strerror(errno));
		return MBOX_OK;
	}
	if (!S_ISREG(st.st_mode)) {
		char what[64];
		snprintf(what, sizeof(what), "%s, not a regular file", file_kind(st.st_mode));
		skip_entry(mb, sub, name, what);
		return MBOX_OK;
	}
	if (st.st_size == 0) {
		skip_entry(mb, sub, name, "an empty file");
		return MBOX_OK;
	}
	if (mb->nmsgs >= mb->opt.max_messages) {
		set_why(s->why, s->whylen, "mailbox has too many messages (the limit is %zu)",
			mb->opt.max_messages);
		return MBOX_PERM;
	}
	if (st.st_size > mb->opt.max_size - s->total) {
		set_why(s->why, s->whylen, "mailbox is too large (the limit is %jd octets)",
			(intmax_t)mb->opt.max_size);
		return MBOX_PERM;
	}
	off_t at = room_for_msg(s) ? add_name(s->md, sub, name, len) : -1;
	if (at < 0) {
		set_why(s->why, s->whylen, "out of memory");
		return MBOX_TEMP;
	}
	s->total += st.st_size;
	struct mbox_msg *m = &mb->msgs[mb->nmsgs++];
	memset(m, 0, sizeof(*m));
	m->start = at;
	m->end = st.st_size;
	m->hash[0] = nm.stamp;
	m->hash[1] = (uint64_t)name_usecs(name, nm.base_len) << MSG_USEC_SHIFT |
		     (uint64_t)nm.base_len << MSG_BASE_SHIFT;
	int64_t size;
	if (name_size(&nm, st.st_size, &size)) {
		m->size = size;
		m->hash[1] |= MSG_SIZED | MSG_FROM_NAME;
	}
	return MBOX_OK;
}

/* Every entry of sub/ (those starting with '.' are left out by add_entry). */
static enum mbox_status scan_subdir(struct scan *s, const char *sub)
{
	int dfd = openat(s->md->dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		int err = errno;
		if (dfd >= 0)
			close(dfd);
		log_msg(LOG_ERR, "Maildir %s: cannot read %s/: %s", LOG_Q(s->mb->path), sub,
			strerror(err));
		set_why(s->why, s->whylen, "cannot read the mailbox: %s", strerror(err));
		return MBOX_TEMP;
	}
	enum mbox_status st = MBOX_OK;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			int err = errno;
			if (err != 0) {
				log_msg(LOG_ERR, "Maildir %s: cannot read %s/: %s",
					LOG_Q(s->mb->path), sub, strerror(err));
				set_why(s->why, s->whylen, "cannot read the mailbox: %s",
					strerror(err));
				st = MBOX_TEMP;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		st = add_entry(s, dirfd(d), sub, de->d_name);
		if (st != MBOX_OK)
			break;
	}
	closedir(d);
	return st;
}

/* Is m's file in cur/? */
static bool in_cur(const struct maildir *md, const struct mbox_msg *m)
{
	return md->names[m->start] == 'c';
}

/*
 * A base name seen twice: a file moved from new/ to cur/ while the two were
 * read, or two files of one message (a copy). One is served, the one in cur/
 * (else the later): one unique-id, one message.
 */
static void drop_duplicates(struct scan *s)
{
	struct mbox *mb = s->mb;
	size_t keep = 0;
	for (size_t i = 1; i < mb->nmsgs; i++) {
		struct mbox_msg *a = &mb->msgs[keep], *b = &mb->msgs[i];
		struct order_key ka = msg_key(s->md, a), kb = msg_key(s->md, b);
		if (key_cmp(&ka, &kb) != 0) {
			keep = i;
			continue;
		}
		bool moved = !in_cur(s->md, a) && in_cur(s->md, b);
		struct mbox_msg *gone = in_cur(s->md, a) && !in_cur(s->md, b) ? b : a;
		struct stat st;
		if (!moved || fstatat(s->md->dirfd, s->md->names + a->start, &st,
				      AT_SYMLINK_NOFOLLOW) == 0)
			log_msg(LOG_WARNING, "Maildir %s: %s and %s are one message (the same base "
				"name): only %s is served", LOG_Q(mb->path),
				LOG_Q(s->md->names + a->start), LOG_Q(s->md->names + b->start),
				gone == a ? "the second" : "the first");
		gone->hash[1] |= MSG_DROP;
		if (gone == a)
			keep = i;
	}
}

/* Remove the entries marked MSG_DROP; clear the scratch fields. */
static void compact(struct mbox *mb)
{
	size_t kept = 0;
	for (size_t i = 0; i < mb->nmsgs; i++) {
		if (msg_bits(&mb->msgs[i]) & MSG_DROP)
			continue;
		mb->msgs[kept] = mb->msgs[i];
		mb->msgs[kept].hash[0] = 0;
		mb->msgs[kept].hash[1] = 0;
		kept++;
	}
	mb->nmsgs = kept;
}

/* ---- sizes by reading ------------------------------------------------------- */

/* Does the text start with a header field's name and its colon? */
static bool starts_with_field(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] != ':' && (unsigned char)p[i] >= 0x21 && (unsigned char)p[i] <= 0x7e)
		i++;
	return i > 0 && i < n && p[i] == ':';
}

/* LFs in p[0..n) without a CR before them (*prev: the octet before p). */
static off_t bare_lfs(const char *p, size_t n, unsigned char *prev)
{
	off_t bare = 0;
	const char *end = p + n, *q = p;
	while (q < end) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		if (!nl)
			break;
		unsigned char before = nl > p ? (unsigned char)nl[-1] : *prev;
		bare += before != '\r';
		q = nl + 1;
	}
	if (n > 0)
		*prev = (unsigned char)p[n - 1];
	return bare;
}

/*
 * Octets of the file on fd (len of them) as sent: LF not after CR counted as
 * CR LF (no CR LF counted for a missing final LF: Dovecot's ",W="). -1 when
 * it cannot be read whole; *no_header when its first line is not a field.
 */
static int64_t count_sent(int fd, off_t len, char *buf, bool *no_header)
{
	off_t done = 0, bare = 0;
	unsigned char prev = '\n';
	while (done < len) {
		size_t want = len - done < MAILDIR_READ_SIZE ? (size_t)(len - done) : MAILDIR_READ_SIZE;
		ssize_t got = read(fd, buf, want);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			if (got == 0)
				errno = ESTALE;   /* shorter than its fstat said */
			return -1;
		}
		if (done == 0)
			*no_header = !starts_with_field(buf, (size_t)got);
		bare += bare_lfs(buf, (size_t)got, &prev);
		done += got;
	}
	return (int64_t)(len + bare);
}

/* Open msgs[i]'s file for reading: never a link, never blocking on a FIFO. */
static int open_file_at(int dirfd, const char *path)
{
	int fd;
	do
		fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd;
}

/* Read msgs[i]'s file for its size; drop it (logged) when it is no longer a message. */
static void compute_size(struct scan *s, struct mbox_msg *m, char *buf)
{
	const char *path = s->md->names + m->start;
	int fd = open_file_at(s->md->dirfd, path);
	struct stat st;
	const char *problem = NULL;
	int err = 0;
	if (fd < 0)
		err = errno;
	else if (fstat(fd, &st) < 0)
		err = errno;
	else if (!S_ISREG(st.st_mode) || st.st_size != m->end)
		problem = "it changed while the Maildir was read";
	if (fd < 0 || err || problem) {
		if (fd >= 0)
			close(fd);
		if (err != ENOENT)   /* ENOENT: removed meanwhile, as if never seen */
			log_msg(LOG_WARNING, "Maildir %s: %s skipped: %s", LOG_Q(s->mb->path),
				LOG_Q(path), problem ? problem : strerror(err));
		m->hash[1] |= MSG_DROP;
		return;
	}
	bool no_header = false;
	int64_t size = count_sent(fd, m->end, buf, &no_header);
	err = errno;
	close(fd);
	if (size < 0) {
		log_msg(LOG_WARNING, "Maildir %s: %s skipped: cannot read it: %s", LOG_Q(s->mb->path),
			LOG_Q(path), err == ESTALE ? "it is shorter than it was" : strerror(err));
		m->hash[1] |= MSG_DROP;
		return;
	}
	if (no_header)
		log_msg(LOG_NOTICE, "Maildir %s: %s does not begin with a header field; served as "
			"it is", LOG_Q(s->mb->path), LOG_Q(path));
	m->size = size;
	m->hash[1] |= MSG_SIZED;
	s->computed = true;
}

/* Every size neither the name nor the index gave, by reading the files. */
static enum mbox_status compute_sizes(struct scan *s)
{
	char *buf = NULL;
	for (size_t i = 0; i < s->mb->nmsgs; i++) {
		struct mbox_msg *m = &s->mb->msgs[i];
		if (msg_bits(m) & (MSG_SIZED | MSG_DROP))
			continue;
		if (!buf && !(buf = malloc(MAILDIR_READ_SIZE))) {
			set_why(s->why, s->whylen, "out of memory");
			return MBOX_TEMP;
		}
		compute_size(s, m, buf);
	}
	free(buf);
	return MBOX_OK;
}

/* ---- the index -------------------------------------------------------------- */

#define MDX_MAGIC      "P3DMDIX\n"
#define MDX_VERSION    1
#define MDX_HDR_SIZE   64
#define MDX_SUM_AT     (MDX_HDR_SIZE - 8)
#define MDX_ENTRY_HEAD 18                       /* st_size, size, base length */
#define MDX_ENTRY_MAX  (MDX_ENTRY_HEAD + NAME_MAX)
_Static_assert(INDEX_IO_SIZE >= 2 * MDX_ENTRY_MAX, "the index buffer holds an entry");

static void put_le64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* A 64-bit checksum, fed in any pieces a word at a time (not a defence: a cache's check). */
#define SUM_SEED UINT64_C(0x9E3779B97F4A7C15)
#define SUM_MUL  UINT64_C(0xC2B2AE3D27D4EB4F)

static uint64_t sum_round(uint64_t h, uint64_t w)
{
	h ^= w;
	return ((h << 29) | (h >> 35)) * SUM_MUL;
}

static uint64_t sum_bytes(uint64_t h, const unsigned char *p, size_t n)
{
	h = sum_round(h, n);
	for (; n >= 8; p += 8, n -= 8)
		h = sum_round(h, get_le64(p));
	uint64_t t = 0;
	for (size_t i = 0; i < n; i++)
		t |= (uint64_t)p[i] << (8 * i);
	return sum_round(h, t);
}

/* "DIR/NAME.HASH<suffix>" for the Maildir at path (ending in '/'). -1 when too long. */
static int index_file(const char *dir, const char *path, char *out, size_t outlen)
{
	char md[MAX_PATH_LEN];
	if (maildir_dir_path(path, md, sizeof(md)) < 0)
		return -1;
	path = md;
	size_t len = strlen(md);
	size_t from = len;
	while (from > 0 && path[from - 1] != '/')
		from--;
	uint64_t h = UINT64_C(0xcbf29ce484222325);   /* FNV-1a of the path: Maildirs of one name */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)path[i]) * UINT64_C(0x100000001b3);
	int n = snprintf(out, outlen, "%s/%.*s.%016" PRIx64 "%s", dir, (int)(len - from),
			 path + from, h, MAILDIR_INDEX_SUFFIX);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Reading entries a buffer at a time. */
struct mdx_reader {
	int fd;
	unsigned char *buf;
	size_t len, pos;
	uint64_t left;          /* entries not read yet */
	uint64_t octets;        /* entry octets not read yet */
	uint64_t sum;
	bool bad;
};

struct mdx_entry {
	uint64_t st_size, size;
	struct order_key key;   /* its base, in the reader's buffer */
};

/* The next entry; false at the end or when the file is bad (r->bad). */
static bool mdx_next(struct mdx_reader *r, struct mdx_entry *e)
{
	if (r->left == 0 || r->bad)
		return false;
	if (r->len - r->pos < MDX_ENTRY_MAX) {   /* keep the unread rest, refill */
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
		while (r->len < INDEX_IO_SIZE) {
			ssize_t got = read(r->fd, r->buf + r->len, INDEX_IO_SIZE - r->len);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				r->bad = true;
				return false;
			}
			if (got == 0)
				break;
			r->len += (size_t)got;
		}
	}
	const unsigned char *p = r->buf + r->pos;
	size_t avail = r->len - r->pos;
	if (avail < MDX_ENTRY_HEAD) {
		r->bad = true;
		return false;
	}
	size_t blen = (size_t)p[16] | (size_t)p[17] << 8;
	struct maildir_name nm;
	if (avail < MDX_ENTRY_HEAD + blen || MDX_ENTRY_HEAD + blen > r->octets ||
	    maildir_name_parse((const char *)p + MDX_ENTRY_HEAD, blen, &nm) < 0 ||
	    nm.base_len != blen) {
		r->bad = true;
		return false;
	}
	e->st_size = get_le64(p);
	e->size = get_le64(p + 8);
	e->key.stamp = nm.stamp;
	e->key.base = (const char *)p + MDX_ENTRY_HEAD;
	e->key.len = blen;
	e->key.usecs = name_usecs(e->key.base, blen);
	r->sum = sum_bytes(r->sum, p, MDX_ENTRY_HEAD + blen);
	r->pos += MDX_ENTRY_HEAD + blen;
	r->octets -= MDX_ENTRY_HEAD + blen;
	r->left--;
	return true;
}

/* The header, when it is one of this version, for this Maildir (dir: its fstat). */
static bool read_header(int fd, const struct stat *dir, off_t flen, struct mdx_reader *r)
{
	unsigned char h[MDX_HDR_SIZE];
	if (pread_full(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h, MDX_MAGIC, 8) != 0 || get_le64(h + 8) != MDX_VERSION ||
	    get_le64(h + MDX_SUM_AT) != sum_bytes(SUM_SEED, h, MDX_SUM_AT) ||
	    get_le64(h + 16) != (uint64_t)dir->st_dev || get_le64(h + 24) != (uint64_t)dir->st_ino)
		return false;
	r->left = get_le64(h + 32);
	r->octets = get_le64(h + 40);
	r->sum = get_le64(h + 48);   /* expected; replaced by the running sum below */
	return r->octets == (uint64_t)(flen - MDX_HDR_SIZE) &&
	       lseek(fd, MDX_HDR_SIZE, SEEK_SET) == MDX_HDR_SIZE;
}

/*
 * Sizes from the index: both lists are in key_cmp order, so one walk
 * matches them, memory flat. An entry counts when the base name and the
 * file's st_size are the ones indexed. 1 when the whole index proved good.
 */
static int merge_index(struct scan *s, struct mdx_reader *r)
{
	struct mbox *mb = s->mb;
	struct mdx_entry e, prev = { 0 };
	char keep[NAME_MAX + 1];
	bool have_prev = false;
	size_t i = 0;
	while (mdx_next(r, &e)) {
		if (have_prev && key_cmp(&prev.key, &e.key) >= 0)
			return 0;   /* out of order: not written by us */
		for (; i < mb->nmsgs; i++) {
			struct mbox_msg *m = &mb->msgs[i];
			if (msg_bits(m) & MSG_DROP)
				continue;
			struct order_key k = msg_key(s->md, m);
			int c = key_cmp(&k, &e.key);
			if (c > 0)
				break;
			if (c < 0)
				continue;
			if (!(msg_bits(m) & MSG_SIZED) && e.st_size == (uint64_t)m->end &&
			    e.size >= e.st_size && e.size <= 2 * e.st_size) {
				m->size = (int64_t)e.size;
				m->hash[1] |= MSG_SIZED | MSG_FROM_INDEX;
			}
			i++;
			break;
		}
		/* the entry's octets are overwritten by the next refill: keep the key's copy */
		memcpy(keep, e.key.base, e.key.len);
		prev = e;
		prev.key.base = keep;
		have_prev = true;
	}
	return !r->bad && r->left == 0 && r->octets == 0;
}

/* Undo what a bad index gave. */
static void unmerge_index(struct mbox *mb)
{
	for (size_t i = 0; i < mb->nmsgs; i++)
		if (msg_bits(&mb->msgs[i]) & MSG_FROM_INDEX) {
			mb->msgs[i].hash[1] &= ~(uint64_t)(MSG_SIZED | MSG_FROM_INDEX);
			mb->msgs[i].size = 0;
		}
}

static void load_index(struct scan *s, const struct stat *dir)
{
	char path[MAX_PATH_LEN];
	if (index_file(s->md->index_dir, s->mb->path, path, sizeof(path)) < 0)
		return;
	off_t len;
	int fd = index_file_open(path, MDX_HDR_SIZE, &len);
	if (fd < 0)
		return;
	struct mdx_reader r = { .fd = fd };
	bool ok = false;
	uint64_t expected = 0;
	if (read_header(fd, dir, len, &r)) {
		expected = r.sum;
		r.sum = SUM_SEED;
		r.buf = malloc(INDEX_IO_SIZE);
		ok = r.buf && merge_index(s, &r) == 1 && r.sum == expected;
	}
	free(r.buf);
	close(fd);
	if (!ok) {
		unmerge_index(s->mb);
		log_msg(LOG_DEBUG, "index %s: stale or damaged, rebuilding", LOG_Q(path));
	}
}

/* Buffered sequential writes. */
struct mdx_writer {
	int fd;
	unsigned char *buf;
	size_t len;
	off_t off;
	int err;
};

static void mdx_flush(struct mdx_writer *w)
{
	if (w->len > 0 && !w->err && pwrite_all(w->fd, w->buf, w->len, w->off) < 0)
		w->err = errno ? errno : EIO;
	w->off += (off_t)w->len;
	w->len = 0;
}

/* The entries: every message whose size the name does not give. */
static void write_entries(struct mdx_writer *w, const struct scan *s, uint64_t *count,
			  uint64_t *sum)
{
	*count = 0;
	*sum = SUM_SEED;
	for (size_t i = 0; i < s->mb->nmsgs; i++) {
		const struct mbox_msg *m = &s->mb->msgs[i];
		if (msg_bits(m) & (MSG_FROM_NAME | MSG_DROP) || !(msg_bits(m) & MSG_SIZED))
			continue;
		const char *n = msg_name(s->md, m);
		size_t blen = msg_base_len(m);
		if (w->len + MDX_ENTRY_HEAD + blen > INDEX_IO_SIZE)
			mdx_flush(w);
		unsigned char *p = w->buf + w->len;
		put_le64(p, (uint64_t)m->end);
		put_le64(p + 8, (uint64_t)m->size);
		p[16] = (unsigned char)(blen & 0xff);
		p[17] = (unsigned char)(blen >> 8);
		memcpy(p + MDX_ENTRY_HEAD, n, blen);
		*sum = sum_bytes(*sum, p, MDX_ENTRY_HEAD + blen);
		w->len += MDX_ENTRY_HEAD + blen;
		(*count)++;
	}
	mdx_flush(w);
}

static int write_index(int fd, const struct scan *s, const struct stat *dir)
{
	struct mdx_writer w = { .fd = fd, .off = MDX_HDR_SIZE, .buf = malloc(INDEX_IO_SIZE) };
	if (!w.buf)
		return -1;
	uint64_t count, sum;
	write_entries(&w, s, &count, &sum);
	free(w.buf);
	if (w.err) {
		errno = w.err;
		return -1;
	}
	unsigned char h[MDX_HDR_SIZE] = { 0 };
	memcpy(h, MDX_MAGIC, 8);
	put_le64(h + 8, MDX_VERSION);
	put_le64(h + 16, (uint64_t)dir->st_dev);
	put_le64(h + 24, (uint64_t)dir->st_ino);
	put_le64(h + 32, count);
	put_le64(h + 40, (uint64_t)(w.off - MDX_HDR_SIZE));
	put_le64(h + 48, sum);
	put_le64(h + MDX_SUM_AT, sum_bytes(SUM_SEED, h, MDX_SUM_AT));
	if (pwrite_all(fd, h, sizeof(h), 0) < 0)
		return -1;
	return fsync_retry(fd);
}

/* Write the index atomically: a temporary file, fsync, rename. Logged when it fails. */
struct maildir_index {
	const struct scan *s;
	const struct stat *dir;
};

static int write_maildir_index(int fd, const void *ctx)
{
	const struct maildir_index *x = ctx;
	return write_index(fd, x->s, x->dir);
}

static void save_index(const struct scan *s, const struct stat *dir)
{
	char path[MAX_PATH_LEN];
	if (index_file(s->md->index_dir, s->mb->path, path, sizeof(path)) < 0) {
		log_msg(LOG_WARNING, "index path for %s is too long", LOG_Q(s->mb->path));
		return;
	}
	struct maildir_index x = {.s = s, .dir = dir};
	index_replace(s->md->index_dir, path, write_maildir_index, &x);
}

/* ---- opening ---------------------------------------------------------------- */

static int open_direct(void *ctx, const struct mbox *mb, size_t n, char *why, size_t whylen)
{
	(void)ctx;
	return maildir_open_msg(mb, n, why, whylen);
}

/* path with a '/' at its end (realloc'ed). -1: out of memory. */
static int end_in_slash(char **path)
{
	size_t len = strlen(*path);
	if (len > 0 && (*path)[len - 1] == '/')
		return 0;
	char *p = realloc(*path, len + 2);
	if (!p)
		return -1;
	p[len] = '/';
	p[len + 1] = '\0';
	*path = p;
	return 0;
}

/* A missing Maildir whose parent is missing too is worth a line: mail may go elsewhere. */
static void note_missing_parent(const char *path)
{
	char dir[MAX_PATH_LEN], parent[MAX_PATH_LEN];
	struct stat st;
	if (maildir_dir_path(path, dir, sizeof(dir)) < 0 ||
	    parent_dir(dir, parent, sizeof(parent)) < 0 || stat(parent, &st) == 0)
		return;
	const char *err = strerror(errno);
	if (errno == ENOENT || errno == ENOTDIR)
		log_msg(LOG_WARNING, "Maildir %s: its directory %s does not exist (%s); serving "
			"an empty maildrop", LOG_Q(path), LOG_Q(parent), err);
}

static enum mbox_status not_a_maildir(const struct mbox *mb, const char *found,
				      char *why, size_t whylen)
{
	log_msg(LOG_ERR, "Maildir %s refused, never touched: not a Maildir: found %s",
		LOG_Q(mb->path), found);
	set_why(why, whylen, "mailbox is not a Maildir");
	return MBOX_PERM;
}

/* Open the Maildir itself; a missing one leaves md->dirfd -1 (an empty maildrop). */
static enum mbox_status open_maildir(struct mbox *mb, struct stat *st, char *why, size_t whylen)
{
	struct maildir *md = mb->maildir;
	do
		md->dirfd = open(mb->path, O_RDONLY | O_DIRECTORY | O_NOCTTY | O_CLOEXEC);
	while (md->dirfd < 0 && errno == EINTR);
	if (md->dirfd < 0) {
		int err = errno;
		if (err == ENOENT) {
			note_missing_parent(mb->path);
			return MBOX_OK;
		}
		if (err == ENOTDIR)
			return not_a_maildir(mb, "no directory", why, whylen);
		set_why(why, whylen, "cannot open mailbox: %s", strerror(err));
		log_msg(LOG_ERR, "Maildir %s: cannot open: %s", LOG_Q(mb->path), strerror(err));
		return err == EACCES || err == EPERM || err == ELOOP || err == ENAMETOOLONG ?
			MBOX_PERM : MBOX_TEMP;
	}
	if (fstat(md->dirfd, st) < 0) {
		set_why(why, whylen, "cannot stat mailbox: %s", strerror(errno));
		return MBOX_TEMP;
	}
	const char *problem = maildir_dir_problem(st);
	if (problem) {
		log_msg(LOG_ERR, "Maildir %s refused: %s: found %s, mode %04o, owner uid %ju; "
			"expected " MAILDIR_EXPECTED " %ju",
			LOG_Q(mb->path), problem, file_kind(st->st_mode),
			(unsigned)(st->st_mode & 07777), (uintmax_t)st->st_uid, (uintmax_t)geteuid());
		set_why(why, whylen, "%s", problem);
		return MBOX_PERM;
	}
	/* tmp/ is the MDAs' (never read here): its absence does not make it no Maildir */
	bool cur = has_subdir(md->dirfd, "cur"), new = has_subdir(md->dirfd, "new");
	if (!cur || !new) {
		char found[96];
		snprintf(found, sizeof(found), "a directory without%s%s", cur ? "" : " cur/",
			 new ? "" : " new/");
		return not_a_maildir(mb, found, why, whylen);
	}
	return MBOX_OK;
}

/* The one-session lock, on the directory (flock works on one) or its lock file. */
static enum mbox_status take_session_lock(struct mbox *mb, char *why, size_t whylen)
{
	char lockfile[MAX_PATH_LEN];
	if (mbox_sidecar_path(mb->path, NULL, SESSION_LOCK_SUFFIX, lockfile, sizeof(lockfile)) < 0) {
		set_why(why, whylen, "mailbox path too long");
		return MBOX_TEMP;
	}
	int holder;
	if (session_lock(mb->maildir->dirfd, lockfile, mb->opt.lock_methods, &holder) < 0) {
		if (errno == EWOULDBLOCK) {
			set_why(why, whylen, "mailbox is in use by another session");
			return MBOX_IN_USE;
		}
		set_why(why, whylen, "cannot take the session lock: %s", strerror(errno));
		return MBOX_TEMP;
	}
	mb->session_fd = holder;
	return MBOX_OK;
}

/*
 * A journal of maildir_update() left in the Maildir: an update was
 * interrupted and the recovery before login (maildrop.c) could not finish it.
 * A file of another kind at its name blocks nothing (the recovery logged it).
 */
static enum mbox_status check_no_journal(const struct mbox *mb, char *why, size_t whylen)
{
	char journal[MAX_PATH_LEN];
	if (mbox_journal_path(mb->path, NULL, journal, sizeof(journal)) < 0) {
		set_why(why, whylen, "mailbox path is too long");
		return MBOX_PERM;
	}
	return journal_blocks_login(mb->maildir->dirfd, journal + strlen(mb->path), journal,
				    mb->path, maildir_journal_is_ours, why, whylen);
}

/* new/, then cur/; sorted by delivery; sizes from the names, the index, the files. */
static enum mbox_status scan_maildir(struct scan *s, const struct stat *dir)
{
	struct mbox *mb = s->mb;
	enum mbox_status st = scan_subdir(s, "new");
	if (st == MBOX_OK)
		st = scan_subdir(s, "cur");
	if (st != MBOX_OK)
		return st;
	if (sort_msgs(s) < 0) {
		set_why(s->why, s->whylen, "out of memory");
		return MBOX_TEMP;
	}
	drop_duplicates(s);
	if (s->md->index_dir)
		load_index(s, dir);
	st = compute_sizes(s);
	if (st != MBOX_OK)
		return st;
	if (s->computed && s->md->index_dir)
		save_index(s, dir);
	compact(mb);
	if (mb->nmsgs == 0) {
		free(mb->msgs);
		mb->msgs = NULL;
	} else if (mb->nmsgs < s->cap) {   /* give back the unused part */
		struct mbox_msg *m = realloc(mb->msgs, mb->nmsgs * sizeof(*mb->msgs));
		if (m)
			mb->msgs = m;
	}
	return MBOX_OK;
}

enum mbox_status maildir_open(struct mbox *mb, char *why, size_t whylen)
{
	struct maildir *md = calloc(1, sizeof(*md));
	if (!md || end_in_slash(&mb->path) < 0) {
		free(md);
		set_why(why, whylen, "out of memory");
		return MBOX_TEMP;
	}
	md->dirfd = -1;
	md->msg_fd = -1;
	md->open_msg = open_direct;
	mb->maildir = md;
	if (mb->opt.index_dir && !(md->index_dir = strdup(mb->opt.index_dir))) {
		set_why(why, whylen, "out of memory");
		return MBOX_TEMP;
	}
	mb->opt.index_dir = NULL;   /* the caller's string need not outlive this call */
	struct stat dir;
	enum mbox_status st = open_maildir(mb, &dir, why, whylen);
	if (st != MBOX_OK || md->dirfd < 0)
		return st;
	mb->dev = dir.st_dev;
	mb->ino = dir.st_ino;
	st = take_session_lock(mb, why, whylen);
	if (st == MBOX_OK)
		st = check_no_journal(mb, why, whylen);
	if (st != MBOX_OK)
		return st;
	struct scan s = { .mb = mb, .md = md, .why = why, .whylen = whylen };
	return scan_maildir(&s, &dir);
}

void maildir_free(struct maildir *md)
{
	if (!md)
		return;
	if (md->dirfd >= 0)
		close(md->dirfd);
	if (md->msg_fd >= 0)
		close(md->msg_fd);
	free(md->names);
	free(md->index_dir);
	free(md);
}

/* ---- messages --------------------------------------------------------------- */

/*
 * The file of base[0..len) in sub/ under whatever flags it has now (another
 * client moved it from new/ to cur/, or changed its flags). -1 with errno.
 */
static int open_by_base(int maildir_fd, const char *sub, const char *base, size_t len)
{
	int dfd = openat(maildir_fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	int fd = -1;
	errno = ENOENT;
	for (struct dirent *de; (de = readdir(d));) {
		if (strncmp(de->d_name, base, len) != 0 || (de->d_name[len] != ':' && de->d_name[len]))
			continue;
		fd = open_file_at(dirfd(d), de->d_name);
		if (fd >= 0 || errno != ENOENT)
			break;
	}
	int err = errno;
	closedir(d);
	errno = fd >= 0 ? 0 : err;
	return fd;
}

/* Message n's file wherever it is now: where the scan saw it, else by its base name. */
static int open_current(const struct maildir *md, const char *path)
{
	int fd = open_file_at(md->dirfd, path);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	const char *name = path + 4;
	size_t len = base_len_of(name);
	fd = open_by_base(md->dirfd, "cur", name, len);
	if (fd < 0 && errno == ENOENT)
		fd = open_by_base(md->dirfd, "new", name, len);
	return fd;
}

int maildir_open_msg(const struct mbox *mb, size_t n, char *why, size_t whylen)
{
	const struct mbox_msg *m = mbox_msg(mb, n);
	const struct maildir *md = mb->maildir;
	if (!m || !md || md->dirfd < 0) {
		set_why(why, whylen, "no such message");
		return -1;
	}
	const char *path = md->names + m->start;
	int fd = open_current(md, path);
	if (fd < 0) {
		int err = errno;
		char reason[MAX_REASON_LEN];
		if (err == ENOENT)
			set_why(reason, sizeof(reason), "message %zu was removed by another program", n);
		else if (err == ELOOP || err == ENXIO)   /* now a symbolic link, a socket */
			set_why(reason, sizeof(reason), "message %zu was changed by another program", n);
		else
			set_why(reason, sizeof(reason), "cannot open message %zu: %s", n, strerror(err));
		log_msg(LOG_WARNING, "Maildir %s: %s (%s: %s)", LOG_Q(mb->path), reason, LOG_Q(path),
			strerror(err));
		set_why(why, whylen, "%s", reason);
		return -1;
	}
	struct stat st;
	/* O_NONBLOCK stays: it changes nothing for the regular file checked below. */
	if (fstat(fd, &st) < 0) {
		set_why(why, whylen, "cannot open message %zu: %s", n, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size != m->end) {
		log_msg(LOG_WARNING, "Maildir %s: message %zu (%s) changed since login: %s of %jd "
			"octets, was %jd", LOG_Q(mb->path), n, LOG_Q(path), file_kind(st.st_mode),
			(intmax_t)st.st_size, (intmax_t)m->end);
		set_why(why, whylen, "message %zu was changed by another program", n);
		close(fd);
		return -1;
	}
	return fd;
}

int maildir_check_msg(const struct mbox *mb, size_t n, char *why, size_t whylen)
{
	struct maildir *md = mb->maildir;
	if (md->msg_fd >= 0) {
		close(md->msg_fd);
		md->msg_fd = -1;
	}
	int fd = md->open_msg(md->open_ctx, mb, n, why, whylen);
	if (fd < 0)
		return -1;
	md->msg_fd = fd;
	md->msg_n = n;
	return 0;
}

int maildir_send(const struct mbox *mb, size_t n, long lines, struct outbuf *ob)
{
	struct maildir *md = mb->maildir;
	const struct mbox_msg *m = mbox_msg(mb, n);
	if (!m)
		return -1;
	if (md->msg_fd < 0 || md->msg_n != n) {
		char why[MAX_REASON_LEN];
		if (maildir_check_msg(mb, n, why, sizeof(why)) < 0) {
			log_msg(LOG_ERR, "cannot send message %zu: %s", n, why);
			return -1;
		}
	}
	int fd = md->msg_fd;
	md->msg_fd = -1;
	int rc = mbox_stream_fd(fd, m->end, lines, ob);   /* opened for this send: at offset 0 */
	close(fd);
	return rc;
}
