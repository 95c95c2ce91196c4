/* Failed-login accounting across sessions: the table file (throttle.h). */
#define _GNU_SOURCE
#include "throttle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "limits.h"
#include "log.h"
#include "peer.h"

#define MAGIC        "POP3DTB2"
#define VERSION      2u
#define HEADER_SIZE  64
#define CELL_SIZE    16
#define MARK_SIZE    40
#define HEADER_CHECKED 40   /* octets of the header its check covers */
#define MARK_CHECKED   32   /* octets of a mark its check covers */

enum { TK_ACCOUNT = 1, TK_SOURCE, TK_PAIR };

struct header {
	char magic[8];
	uint32_t version;
	uint32_t cells;
	uint32_t marks;
	uint32_t spare;
	uint8_t secret[16];
	uint64_t check;
	uint8_t pad[HEADER_SIZE - 48];
};

/* One cell of a sketch: the largest tat of the keys counted in it. */
struct cell {
	int64_t tat;
	uint64_t check;       /* keyed hash of the cell's place and tat */
};

_Static_assert(sizeof(struct header) == HEADER_SIZE, "header layout");
_Static_assert(sizeof(struct cell) == CELL_SIZE, "cell layout");
_Static_assert(sizeof(struct throttle_mark) == MARK_SIZE, "mark layout");
_Static_assert(offsetof(struct header, check) == HEADER_CHECKED, "header check");
_Static_assert(offsetof(struct throttle_mark, check) == MARK_CHECKED, "mark check");
_Static_assert(THROTTLE_CELLS <= 65536 && THROTTLE_CELL_HASHES <= 4,
	       "a key's cells are 16-bit slices of its 64-bit hash");

/* ---- SipHash-2-4 ---- */

static uint64_t rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void sipround(uint64_t v[4])
{
	v[0] += v[1]; v[1] = rotl(v[1], 13); v[1] ^= v[0]; v[0] = rotl(v[0], 32);
	v[2] += v[3]; v[3] = rotl(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = rotl(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = rotl(v[1], 17); v[1] ^= v[2]; v[2] = rotl(v[2], 32);
}

static void sipblock(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	sipround(v);
	sipround(v);
	v[0] ^= m;
}

uint64_t throttle_siphash(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
			 k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
	size_t full = len - len % 8;
	for (size_t i = 0; i < full; i += 8)
		sipblock(v, le64(p + i));
	uint64_t last = (uint64_t)(len & 0xff) << 56;
	for (size_t i = 0; i < len % 8; i++)
		last |= (uint64_t)p[full + i] << (8 * i);
	sipblock(v, last);
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- rates ---- */

int throttle_parse_rate(const char *text, struct throttle_rate *r)
{
	char *end;
	if (!text || *text < '0' || *text > '9')
		return -1;
	errno = 0;
	unsigned long burst = strtoul(text, &end, 10);
	if (errno || burst > MAX_THROTTLE_BURST)
		return -1;
	if (*end == '\0' && burst == 0) {
		*r = (struct throttle_rate){0, 0};
		return 0;
	}
	if (*end != '/' || burst == 0 || end[1] < '0' || end[1] > '9')
		return -1;
	unsigned long period = strtoul(end + 1, &end, 10);
	if (errno || *end || period == 0 || period > MAX_THROTTLE_SECONDS)
		return -1;
	*r = (struct throttle_rate){(unsigned)burst, (unsigned)period};
	return 0;
}

int64_t throttle_now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A bucket's tat, never further ahead than a full bucket (a clock set back). */
static int64_t bounded_tat(const struct throttle_rate *r, int64_t tat, int64_t now)
{
	int64_t full = now + (int64_t)r->burst * r->period * 1000;
	return tat > full ? full : tat;
}

uint64_t throttle_rate_wait(const struct throttle_rate *r, int64_t tat, int64_t now)
{
	if (r->burst == 0)
		return 0;
	/* A token is there while tat is at most burst - 1 periods ahead. */
	int64_t allowed = now + (int64_t)(r->burst - 1) * r->period * 1000;
	tat = bounded_tat(r, tat, now);
	return tat > allowed ? (uint64_t)(tat - allowed) : 0;
}

int64_t throttle_rate_charge(const struct throttle_rate *r, int64_t tat, int64_t now)
{
	tat = bounded_tat(r, tat, now);
	return (tat > now ? tat : now) + (int64_t)r->period * 1000;
}

/* ---- the file ---- */

static off_t sketch_offset(enum throttle_sketch s, uint32_t i)
{
	return (off_t)HEADER_SIZE + ((off_t)s * THROTTLE_CELLS + i) * CELL_SIZE;
}

static off_t mark_offset(uint32_t i)
{
	return sketch_offset(TS_SOURCE + 1, 0) + (off_t)i * MARK_SIZE;
}

static off_t file_size(void)
{
	return mark_offset(THROTTLE_MARKS);
}

static int set_lock(int fd, short type, off_t start, off_t len, bool wait)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	int rc;
	do
		rc = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
	while (rc < 0 && errno == EINTR);
	return rc;
}

/* Every read and write of the table is made under this lock (a torn read is not corrupt). */
static int lock_table(struct throttle *t)
{
	if (set_lock(t->fd, F_WRLCK, 0, HEADER_SIZE, true) < 0) {
		log_msg(LOG_ERR, "state file %s: lock: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

static void unlock_table(struct throttle *t)
{
	set_lock(t->fd, F_UNLCK, 0, HEADER_SIZE, false);
}

static uint64_t header_check(const struct header *h)
{
	return throttle_siphash(h->secret, h, HEADER_CHECKED);
}

static bool header_fits(const struct header *h)
{
	return memcmp(h->magic, MAGIC, sizeof(h->magic)) == 0 && h->version == VERSION &&
	       h->check == header_check(h);
}

/* A new, empty table with a new secret (the table lock held). */
static int rebuild(struct throttle *t, const char *why)
{
	struct header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, MAGIC, sizeof(h.magic));
	h.version = VERSION;
	h.cells = THROTTLE_CELLS;
	h.marks = THROTTLE_MARKS;
	size_t got = 0;
	while (got < sizeof(h.secret)) {
		ssize_t n = getrandom(h.secret + got, sizeof(h.secret) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_msg(LOG_ERR, "state file %s: getrandom: %s", t->path, strerror(errno));
			return -1;
		}
		got += (size_t)n;
	}
	h.check = header_check(&h);
	if (ftruncate(t->fd, 0) < 0 || ftruncate(t->fd, file_size()) < 0 ||
	    pwrite_all(t->fd, &h, sizeof(h), 0) < 0) {
		log_msg(LOG_ERR, "state file %s: cannot rebuild: %s", t->path, strerror(errno));
		return -1;
	}
	log_msg(why ? LOG_WARNING : LOG_INFO, "state file %s: %s, made a new empty table",
		t->path, why ? why : "created");
	memcpy(t->secret, h.secret, sizeof(t->secret));
	explicit_bzero(&h, sizeof(h));
	return 0;
}

/* Read and check the header; a file that is not a table is rebuilt (table lock held). */
static int load(struct throttle *t)
{
	struct stat st;
	struct header h;
	if (fstat(t->fd, &st) < 0) {
		log_msg(LOG_ERR, "state file %s: %s", t->path, strerror(errno));
		return -1;
	}
	if (st.st_size == 0)
		return rebuild(t, NULL);
	ssize_t n = pread_full(t->fd, &h, sizeof(h), 0);
	if (n < 0) {
		log_msg(LOG_ERR, "state file %s: read: %s", t->path, strerror(errno));
		return -1;
	}
	const char *why = NULL;
	if ((size_t)n < sizeof(h) || !header_fits(&h))
		why = "corrupt header, or a table of an older pop3d";
	else if (h.cells != THROTTLE_CELLS || h.marks != THROTTLE_MARKS || st.st_size != file_size())
		why = "wrong size (truncated?)";
	if (why) {
		explicit_bzero(&h, sizeof(h));
		return rebuild(t, why);
	}
	memcpy(t->secret, h.secret, sizeof(t->secret));
	explicit_bzero(&h, sizeof(h));
	return 0;
}

/* dir: a directory of ours nobody else may write in; made 0700 when missing. */
static int check_dir(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_msg(LOG_WARNING, "state directory %s: cannot create: %s; "
			"no failed-login accounting across sessions", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		log_msg(LOG_WARNING, "state directory %s: %s; no failed-login accounting across "
			"sessions", dir, strerror(errno));
		return -1;
	}
	/* Sticky and writable by others (a 1733 --journal-dir) will do: nobody can replace
	 * our file there, and one planted in advance is not ours and is refused. */
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))) {
		log_msg(LOG_WARNING, "state directory %s: must be a directory of this user that "
			"nobody else may write in (or a sticky one); no failed-login accounting "
			"across sessions", dir);
		return -1;
	}
	return 0;
}

int throttle_open(struct throttle *t, const char *dir, const struct throttle_params *p)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->p = *p;
	errno = 0;
	if (snprintf(t->path, sizeof(t->path), "%s/%s", dir, THROTTLE_FILE) >= (int)sizeof(t->path)) {
		log_msg(LOG_WARNING, "state directory %s: path too long", dir);
		return -1;
	}
	if (check_dir(dir) < 0)
		return -1;
	int fd = open(t->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !is_own_plain_file(&st) || (st.st_mode & 077)) {
		log_msg(LOG_WARNING, "state file %s: %s; no failed-login accounting across sessions",
			t->path, fd < 0 ? strerror(errno) : "not a private regular file of this user");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	t->fd = fd;
	int rc = lock_table(t);
	if (rc == 0) {
		rc = load(t);
		unlock_table(t);
	}
	if (rc < 0) {
		log_msg(LOG_WARNING, "state file %s unusable: no failed-login accounting across "
			"sessions", t->path);
		throttle_close(t);
	}
	return rc;
}

void throttle_close(struct throttle *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	explicit_bzero(t->secret, sizeof(t->secret));
}

/* ---- keys ---- */

/* The source's prefix: IPv4 /32 (v4-mapped included), IPv6 /64, else the text itself. */
static size_t source_prefix(const char *source, uint8_t *out, size_t size)
{
	unsigned char a[16];
	switch (peer_address_bytes(source, a)) {   /* the one canonical form (peer.h) */
	case 4:
		memcpy(out, a, 4);
		return 4;
	case 16:
		memcpy(out, a, 8);
		return 8;
	default: {
		size_t n = strnlen(source, size);
		memcpy(out, source, n);
		return n;
	}
	}
}

/* kind, prefix length, prefix, name: no two inputs encode alike. */
static uint64_t make_key(const struct throttle *t, unsigned kind, const char *name,
			 const char *source)
{
	uint8_t buf[2 + 64 + MAX_SASL_LINE + 1];
	size_t len = 2;
	buf[0] = (uint8_t)kind;
	buf[1] = 0;
	if (source) {
		buf[1] = (uint8_t)source_prefix(source, buf + 2, 64);
		len += buf[1];
	}
	if (name) {
		size_t n = strnlen(name, MAX_SASL_LINE);
		memcpy(buf + len, name, n);
		len += n;
	}
	uint64_t k = throttle_siphash(t->secret, buf, len);
	explicit_bzero(buf, len);
	return k ? k : 1;
}

uint64_t throttle_account_key(const struct throttle *t, const char *name)
{
	return name ? make_key(t, TK_ACCOUNT, name, NULL) : 0;
}

uint64_t throttle_source_key(const struct throttle *t, const char *source)
{
	return source ? make_key(t, TK_SOURCE, NULL, source) : 0;
}

uint64_t throttle_pair_key(const struct throttle *t, const char *name, const char *source)
{
	return name && source ? make_key(t, TK_PAIR, name, source) : 0;
}

/* ---- the sketches ---- */

static uint64_t cell_check(const struct throttle *t, off_t where, int64_t tat)
{
	int64_t data[2] = {(int64_t)where, tat};
	return throttle_siphash(t->secret, data, sizeof(data));
}

/* A cell; one whose check fails is cleared (logged) and read as empty. Table lock held. */
static int read_cell(struct throttle *t, off_t where, struct cell *c)
{
	ssize_t n = pread_full(t->fd, c, sizeof(*c), where);
	if (n < 0) {
		log_msg(LOG_ERR, "state file %s: read: %s", t->path, strerror(errno));
		return -1;
	}
	if (n == (ssize_t)sizeof(*c) && ((c->tat == 0 && c->check == 0) ||
					 c->check == cell_check(t, where, c->tat)))
		return 0;
	log_msg(LOG_WARNING, "state file %s: a corrupt cell at %lld, cleared", t->path,
		(long long)where);
	memset(c, 0, sizeof(*c));
	if (pwrite_all(t->fd, c, sizeof(*c), where) < 0) {
		log_msg(LOG_ERR, "state file %s: write: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

static int write_cell(struct throttle *t, off_t where, int64_t tat)
{
	struct cell c = {.tat = tat, .check = cell_check(t, where, tat)};
	if (pwrite_all(t->fd, &c, sizeof(c), where) < 0) {
		log_msg(LOG_ERR, "state file %s: write: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

static off_t key_cell(enum throttle_sketch s, uint64_t key, unsigned j)
{
	return sketch_offset(s, (uint32_t)((key >> (16 * j)) & 0xFFFF) % THROTTLE_CELLS);
}

/* The key's value: the least of its cells, never less than its own (table lock held). */
static int sketch_read(struct throttle *t, enum throttle_sketch s, uint64_t key, int64_t *tat)
{
	struct cell c;
	for (unsigned j = 0; j < THROTTLE_CELL_HASHES; j++) {
		if (read_cell(t, key_cell(s, key, j), &c) < 0)
			return -1;
		if (j == 0 || c.tat < *tat)
			*tat = c.tat;
	}
	return 0;
}

int throttle_sketch_get(struct throttle *t, enum throttle_sketch s, uint64_t key, int64_t *tat)
{
	*tat = 0;
	if (t->fd < 0 || key == 0)
		return 0;
	if (lock_table(t) < 0)
		return -1;
	int rc = sketch_read(t, s, key, tat);
	unlock_table(t);
	return rc;
}

/* Conservative update: each cell is raised to the key's new value, never lowered. */
static int sketch_raise(struct throttle *t, enum throttle_sketch s, uint64_t key,
			const struct throttle_rate *r, int64_t now)
{
	int64_t tat;
	struct cell c;
	if (sketch_read(t, s, key, &tat) < 0)
		return -1;
	tat = throttle_rate_charge(r, tat, now);
	for (unsigned j = 0; j < THROTTLE_CELL_HASHES; j++) {
		off_t where = key_cell(s, key, j);
		if (read_cell(t, where, &c) < 0)
			return -1;
		if (c.tat < tat && write_cell(t, where, tat) < 0)
			return -1;
	}
	return 0;
}

int throttle_sketch_fail(struct throttle *t, enum throttle_sketch s, uint64_t key,
			 const struct throttle_rate *r, int64_t now)
{
	if (t->fd < 0 || key == 0)
		return 0;
	if (lock_table(t) < 0)
		return -1;
	int rc = sketch_raise(t, s, key, r, now);
	unlock_table(t);
	return rc;
}

/* ---- known-source marks ---- */

static uint64_t mark_check(const struct throttle *t, const struct throttle_mark *m)
{
	return throttle_siphash(t->secret, m, MARK_CHECKED);
}

/* Mark i; one whose check fails is cleared (logged) and read as empty. Table lock held. */
static int read_mark(struct throttle *t, uint32_t i, struct throttle_mark *m)
{
	ssize_t n = pread_full(t->fd, m, sizeof(*m), mark_offset(i));
	if (n < 0) {
		log_msg(LOG_ERR, "state file %s: read: %s", t->path, strerror(errno));
		return -1;
	}
	if (n == (ssize_t)sizeof(*m) && (m->key == 0 || m->check == mark_check(t, m)))
		return 0;
	log_msg(LOG_WARNING, "state file %s: mark %u is corrupt, cleared", t->path, i);
	memset(m, 0, sizeof(*m));
	if (pwrite_all(t->fd, m, sizeof(*m), mark_offset(i)) < 0) {
		log_msg(LOG_ERR, "state file %s: write: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

static int write_mark(struct throttle *t, uint32_t i, struct throttle_mark *m)
{
	m->check = mark_check(t, m);
	if (pwrite_all(t->fd, m, sizeof(*m), mark_offset(i)) < 0) {
		log_msg(LOG_ERR, "state file %s: write: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

bool throttle_mark_known(const struct throttle_params *p, const struct throttle_mark *m, int64_t now)
{
	return m->key != 0 && p->known_days > 0 && now >= m->login &&
	       now - m->login < (int64_t)p->known_days * 86400 * 1000;
}

/* The account's window of marks: where it starts, and the tag its marks carry. */
struct window {
	uint32_t start;
	uint32_t tag;
	struct throttle_mark m[THROTTLE_PROBE];
};

static int read_window(struct throttle *t, const char *name, struct window *w)
{
	uint64_t k = throttle_account_key(t, name);
	w->start = (uint32_t)(k % THROTTLE_MARKS);
	w->tag = (uint32_t)(k >> 32) ? (uint32_t)(k >> 32) : 1;
	for (uint32_t j = 0; j < THROTTLE_PROBE; j++)
		if (read_mark(t, (w->start + j) % THROTTLE_MARKS, &w->m[j]) < 0)
			return -1;
	return 0;
}

static int find_mark(const struct window *w, uint64_t pair)
{
	for (int j = 0; j < THROTTLE_PROBE; j++)
		if (w->m[j].key == pair)
			return j;
	return -1;
}

int throttle_mark_get(struct throttle *t, const char *name, uint64_t pair, struct throttle_mark *m)
{
	struct window w;
	memset(m, 0, sizeof(*m));
	if (t->fd < 0 || pair == 0)
		return 0;
	if (lock_table(t) < 0)
		return -1;
	int rc = read_window(t, name, &w);
	unlock_table(t);
	int j = rc == 0 ? find_mark(&w, pair) : -1;
	if (j >= 0)
		*m = w.m[j];
	return rc;
}

/* Live marks of the account tagged tag in the window. */
static unsigned marks_of(const struct throttle_params *p, const struct window *w, uint32_t tag,
			 int64_t now)
{
	unsigned n = 0;
	for (int j = 0; j < THROTTLE_PROBE; j++)
		n += throttle_mark_known(p, &w->m[j], now) && w->m[j].account == tag;
	return n;
}

/*
 * Where a new mark of the window's account goes: its own oldest once it has
 * its fill, else a free or lapsed place, else the oldest mark of the account
 * with the most marks here. An account's logins never evict a mark of an
 * account with fewer marks in the window than its own.
 */
static int place_for(const struct throttle_params *p, const struct window *w, int64_t now)
{
	bool own_full = marks_of(p, w, w->tag, now) >= THROTTLE_MARKS_PER_ACCOUNT;
	int best = -1;
	unsigned best_count = 0;
	for (int j = 0; j < THROTTLE_PROBE; j++) {
		const struct throttle_mark *m = &w->m[j];
		bool live = throttle_mark_known(p, m, now);
		if (!own_full && !live)
			return j;
		if (own_full && (!live || m->account != w->tag))
			continue;
		unsigned count = marks_of(p, w, m->account, now);
		if (best < 0 || count > best_count ||
		    (count == best_count && m->login < w->m[best].login)) {
			best = j;
			best_count = count;
		}
	}
	return best;
}

int throttle_mark_login(struct throttle *t, const char *name, uint64_t pair, int64_t now)
{
	struct window w;
	if (t->fd < 0 || pair == 0 || t->p.known_days == 0)
		return 0;
	if (lock_table(t) < 0)
		return -1;
	int rc = read_window(t, name, &w);
	if (rc == 0) {
		int j = find_mark(&w, pair);
		struct throttle_mark m = {.key = pair, .login = now, .account = w.tag};
		if (j >= 0)
			m.tat = w.m[j].tat;   /* the pair's failures stay */
		else
			j = place_for(&t->p, &w, now);
		if (j >= 0)
			rc = write_mark(t, (w.start + (uint32_t)j) % THROTTLE_MARKS, &m);
	}
	unlock_table(t);
	return rc;
}

int throttle_mark_fail(struct throttle *t, const char *name, uint64_t pair, int64_t now)
{
	struct window w;
	if (t->fd < 0 || pair == 0)
		return 0;
	if (lock_table(t) < 0)
		return -1;
	int rc = read_window(t, name, &w);
	int j = rc == 0 ? find_mark(&w, pair) : -1;
	if (j >= 0) {
		w.m[j].tat = throttle_rate_charge(&t->p.known, w.m[j].tat, now);
		rc = write_mark(t, (w.start + (uint32_t)j) % THROTTLE_MARKS, &w.m[j]);
	}
	unlock_table(t);
	return rc;
}

/* ---- the bucket locks ---- */

static off_t lock_offset(uint64_t key)
{
	return file_size() + (off_t)(key % THROTTLE_LOCKS);
}

static void release_locks(struct throttle *t, struct throttle_attempt *a)
{
	for (unsigned i = 0; i < a->nlocks; i++)
		set_lock(t->fd, F_UNLCK, a->locks[i], 1, false);
	a->nlocks = 0;
}

/* All of the attempt's locks, or none (no lock is waited for while another is held). */
static bool try_locks(struct throttle *t, struct throttle_attempt *a, const off_t *want,
		      unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (i > 0 && want[i] == want[0])
			continue;
		if (set_lock(t->fd, F_WRLCK, want[i], 1, false) < 0) {
			if (errno != EAGAIN && errno != EACCES)
				log_msg(LOG_ERR, "state file %s: bucket lock: %s", t->path,
					strerror(errno));
			release_locks(t, a);
			return false;
		}
		a->locks[a->nlocks++] = want[i];
	}
	return true;
}

static void nap_msec(unsigned msec)
{
	struct timespec ts = {.tv_sec = msec / 1000, .tv_nsec = (long)(msec % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The bucket locks, waiting up to THROTTLE_HOLD_MSEC for an attempt checked meanwhile. */
static bool take_locks(struct throttle *t, struct throttle_attempt *a)
{
	off_t want[2];
	unsigned n = 0;
	if (a->known) {
		want[n++] = lock_offset(a->pair);
	} else {
		want[n++] = lock_offset(a->account);
		if (a->source)
			want[n++] = lock_offset(a->source);
	}
	for (unsigned waited = 0;; waited += THROTTLE_POLL_MSEC) {
		if (try_locks(t, a, want, n))
			return true;
		if (waited >= THROTTLE_HOLD_MSEC)
			return false;
		nap_msec(THROTTLE_POLL_MSEC);
	}
}

/* ---- one attempt ---- */

/* Milliseconds until every bucket of the attempt has a token (the locks held). */
static int attempt_wait(struct throttle *t, const struct throttle_attempt *a, uint64_t *wait)
{
	int64_t now = throttle_now(), tat;
	struct throttle_mark m;
	*wait = 0;
	if (a->known) {
		if (throttle_mark_get(t, a->user, a->pair, &m) < 0)
			return -1;
		*wait = throttle_rate_wait(&t->p.known, m.tat, now);
		return 0;
	}
	if (throttle_sketch_get(t, TS_ACCOUNT, a->account, &tat) < 0)
		return -1;
	*wait = throttle_rate_wait(&t->p.account, tat, now);
	if (throttle_sketch_get(t, TS_SOURCE, a->source, &tat) < 0)
		return -1;
	uint64_t w = throttle_rate_wait(&t->p.source, tat, now);
	if (w > *wait)
		*wait = w;
	return 0;
}

int throttle_begin(struct throttle *t, const char *user, const char *source,
		   struct throttle_attempt *a)
{
	struct throttle_mark m;
	memset(a, 0, sizeof(*a));
	a->user = user;
	if (t->fd < 0)
		return 0;
	a->account = throttle_account_key(t, user);
	a->source = throttle_source_key(t, source);
	a->pair = throttle_pair_key(t, user, source);
	if (throttle_mark_get(t, user, a->pair, &m) < 0)
		return 0;
	a->known = throttle_mark_known(&t->p, &m, throttle_now());
	if (!take_locks(t, a)) {
		a->wait = 1;   /* another attempt on these buckets is being checked */
		return 1;
	}
	uint64_t wait;
	if (attempt_wait(t, a, &wait) < 0 || wait == 0)
		return 0;
	release_locks(t, a);
	a->wait = (unsigned)((wait + 999) / 1000);
	return 1;
}

void throttle_end(struct throttle *t, struct throttle_attempt *a, bool success)
{
	if (t->fd < 0)
		return;
	int64_t now = throttle_now();
	if (success) {
		/* Nothing is given back: a correct password took no token. */
		throttle_mark_login(t, a->user, a->pair, now);
	} else if (a->known) {
		throttle_mark_fail(t, a->user, a->pair, now);
	} else {
		throttle_sketch_fail(t, TS_ACCOUNT, a->account, &t->p.account, now);
		throttle_sketch_fail(t, TS_SOURCE, a->source, &t->p.source, now);
	}
	release_locks(t, a);
}
