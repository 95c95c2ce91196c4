/* Failed-login accounting across sessions: the table file (throttle.h). */
#define _GNU_SOURCE
#include "throttle.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "limits.h"
#include "log.h"

#define MAGIC        "POP3DTB1"
#define VERSION      1u
#define HEADER_SIZE  64
#define SLOT_SIZE    32
#define CHECKED_SIZE 24   /* octets of a slot (or header) its check covers */

struct header {
	char magic[8];
	uint32_t version;
	uint32_t nslots;
	uint8_t secret[16];
	uint64_t check;
	uint8_t pad[HEADER_SIZE - 40];
};

_Static_assert(sizeof(struct throttle_slot) == SLOT_SIZE, "slot layout");
_Static_assert(sizeof(struct header) == HEADER_SIZE, "header layout");

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

/* ---- the file ---- */

static off_t file_size(uint32_t nslots)
{
	return (off_t)HEADER_SIZE + (off_t)nslots * SLOT_SIZE;
}

static off_t slot_offset(uint32_t i)
{
	return (off_t)HEADER_SIZE + (off_t)i * SLOT_SIZE;
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
	return throttle_siphash(h->secret, h, offsetof(struct header, check));
}

/* A new, empty table with a new secret (the table lock held). */
static int rebuild(struct throttle *t, const char *why)
{
	struct header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, MAGIC, sizeof(h.magic));
	h.version = VERSION;
	h.nslots = THROTTLE_SLOTS;
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
	if (ftruncate(t->fd, 0) < 0 || ftruncate(t->fd, file_size(THROTTLE_SLOTS)) < 0 ||
	    pwrite_all(t->fd, &h, sizeof(h), 0) < 0) {
		log_msg(LOG_ERR, "state file %s: cannot rebuild: %s", t->path, strerror(errno));
		return -1;
	}
	log_msg(why ? LOG_WARNING : LOG_INFO, "state file %s: %s, made a new empty table",
		t->path, why ? why : "created");
	memcpy(t->secret, h.secret, sizeof(t->secret));
	t->nslots = h.nslots;
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
	if ((size_t)n < sizeof(h) || memcmp(h.magic, MAGIC, sizeof(h.magic)) != 0 ||
	    h.version != VERSION || h.check != header_check(&h))
		why = "corrupt header";
	else if (h.nslots != THROTTLE_SLOTS || st.st_size != file_size(h.nslots))
		why = "wrong size (truncated?)";
	if (why) {
		explicit_bzero(&h, sizeof(h));
		return rebuild(t, why);
	}
	memcpy(t->secret, h.secret, sizeof(t->secret));
	t->nslots = h.nslots;
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

/* ---- keys and slots ---- */

/* The source's prefix: 4 octets of IPv4, 8 of IPv6, else the text itself. */
static size_t source_prefix(const char *source, uint8_t *out, size_t size)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, source, &a4) == 1) {
		memcpy(out, &a4, 4);
		return 4;
	}
	if (inet_pton(AF_INET6, source, &a6) == 1) {
		memcpy(out, &a6, 8);
		return 8;
	}
	size_t n = strnlen(source, size);
	memcpy(out, source, n);
	return n;
}

uint64_t throttle_key(const struct throttle *t, enum throttle_kind kind, const char *name,
		      const char *source)
{
	/* kind, prefix length, prefix, name: no two inputs encode alike. */
	uint8_t buf[2 + 64 + MAX_SASL_LINE + 1];
	size_t len = 2;
	buf[0] = (uint8_t)kind;
	buf[1] = 0;
	if (kind != TK_ACCOUNT) {
		if (!source)
			return 0;
		buf[1] = (uint8_t)source_prefix(source, buf + 2, 64);
		len += buf[1];
	}
	if (kind != TK_SOURCE) {
		if (!name)
			return 0;
		size_t n = strnlen(name, MAX_SASL_LINE);
		memcpy(buf + len, name, n);
		len += n;
	}
	uint64_t k = throttle_siphash(t->secret, buf, len);
	explicit_bzero(buf, len);
	return k ? k : 1;
}

static uint64_t slot_check(const struct throttle *t, const struct throttle_slot *s)
{
	return throttle_siphash(t->secret, s, CHECKED_SIZE);
}

/* Slot i, checked: a slot whose check fails is cleared (logged) and read as empty. */
static int read_slot(struct throttle *t, uint32_t i, struct throttle_slot *s)
{
	ssize_t n = pread_full(t->fd, s, sizeof(*s), slot_offset(i));
	if (n < 0) {
		log_msg(LOG_ERR, "state file %s: read: %s", t->path, strerror(errno));
		return -1;
	}
	if (n == (ssize_t)sizeof(*s) && (s->key == 0 || s->check == slot_check(t, s)))
		return 0;
	log_msg(LOG_WARNING, "state file %s: slot %u is corrupt, cleared", t->path, i);
	memset(s, 0, sizeof(*s));
	if (pwrite_all(t->fd, s, sizeof(*s), slot_offset(i)) < 0) {
		log_msg(LOG_ERR, "state file %s: write: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

static int write_slot(struct throttle *t, uint32_t i, struct throttle_slot *s)
{
	s->check = slot_check(t, s);
	if (pwrite_all(t->fd, s, sizeof(*s), slot_offset(i)) < 0) {
		log_msg(LOG_ERR, "state file %s: write: %s", t->path, strerror(errno));
		return -1;
	}
	return 0;
}

/* What a slot is worth keeping: known sources first, then the highest levels. */
static unsigned weight(const struct throttle_params *p, const struct throttle_slot *s, int64_t now)
{
	if (s->key == 0)
		return 0;
	if (s->kind == TK_KNOWN)
		return throttle_known(p, s, now) ? THROTTLE_KNOWN_WEIGHT : 0;
	return throttle_level(p, s, now);
}

/*
 * The slot of key (table lock held): *found tells whether it holds key, else
 * it is the one a new key takes (an empty one, else the weakest and oldest).
 */
static int find_slot(struct throttle *t, uint64_t key, int64_t now, uint32_t *idx,
		     struct throttle_slot *s, bool *found)
{
	struct throttle_slot cur;
	bool have = false;
	*found = false;
	for (uint32_t k = 0; k < THROTTLE_PROBE; k++) {
		uint32_t i = (uint32_t)((key + k) % t->nslots);
		if (read_slot(t, i, &cur) < 0)
			return -1;
		if (cur.key == key) {
			*idx = i;
			*s = cur;
			*found = true;
			return 0;
		}
		unsigned w = weight(&t->p, &cur, now);
		if (!have || w < weight(&t->p, s, now) ||
		    (w == weight(&t->p, s, now) && cur.stamp < s->stamp)) {
			*idx = i;
			*s = cur;
			have = true;
		}
	}
	return 0;
}

int throttle_get(struct throttle *t, uint64_t key, struct throttle_slot *s)
{
	memset(s, 0, sizeof(*s));
	if (t->fd < 0 || key == 0)
		return 0;
	uint32_t i;
	bool found;
	if (lock_table(t) < 0)
		return -1;
	int rc = find_slot(t, key, throttle_now(), &i, s, &found);
	unlock_table(t);
	if (rc == 0 && !found)
		memset(s, 0, sizeof(*s));
	return rc;
}

/* Change key's slot (taking one when it has none) under the table lock. */
static int update(struct throttle *t, uint64_t key, enum throttle_kind kind, int64_t now, bool fail)
{
	if (t->fd < 0 || key == 0)
		return 0;
	struct throttle_slot s;
	uint32_t i;
	bool found;
	if (lock_table(t) < 0)
		return -1;
	int rc = find_slot(t, key, now, &i, &s, &found);
	if (rc == 0) {
		unsigned level = found && fail ? throttle_level(&t->p, &s, now) : 0;
		s = (struct throttle_slot){.key = key, .stamp = now, .kind = (uint32_t)kind,
					   .level = fail && level < THROTTLE_MAX_LEVEL ? level + 1 : level};
		rc = write_slot(t, i, &s);
	}
	unlock_table(t);
	return rc;
}

int throttle_fail(struct throttle *t, uint64_t key, enum throttle_kind kind, int64_t now)
{
	return update(t, key, kind, now, true);
}

int throttle_set(struct throttle *t, uint64_t key, enum throttle_kind kind, int64_t now)
{
	return update(t, key, kind, now, false);
}

/* ---- delays ---- */

int64_t throttle_now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms since s was stamped; a clock set back counts as none. */
static uint64_t elapsed(const struct throttle_slot *s, int64_t now)
{
	return now > s->stamp ? (uint64_t)(now - s->stamp) : 0;
}

unsigned throttle_level(const struct throttle_params *p, const struct throttle_slot *s, int64_t now)
{
	if (s->key == 0 || s->kind == TK_KNOWN)
		return 0;
	unsigned level = s->level < THROTTLE_MAX_LEVEL ? s->level : THROTTLE_MAX_LEVEL;
	if (p->decay == 0)
		return level;
	uint64_t forgotten = elapsed(s, now) / ((uint64_t)p->decay * 1000);
	/* cppcheck-suppress knownConditionTrueFalse ; it takes the level for below 1 */
	return forgotten >= level ? 0 : level - (unsigned)forgotten;
}

uint64_t throttle_wait(const struct throttle_params *p, const struct throttle_slot *s, int64_t now)
{
	unsigned level = throttle_level(p, s, now);
	if (level == 0 || p->base == 0)
		return 0;
	uint64_t delay = p->base;
	for (unsigned k = 1; k < level && delay < p->cap; k++)
		delay *= 2;
	if (delay > p->cap)
		delay = p->cap;
	delay *= 1000;
	uint64_t gone = elapsed(s, now);
	return gone >= delay ? 0 : delay - gone;
}

bool throttle_known(const struct throttle_params *p, const struct throttle_slot *s, int64_t now)
{
	return s->key != 0 && s->kind == TK_KNOWN && p->known_days > 0 && now >= s->stamp &&
	       elapsed(s, now) < (uint64_t)p->known_days * 86400 * 1000;
}

/* ---- the per-account lock ---- */

static off_t bucket_offset(const struct throttle *t, uint64_t key)
{
	return file_size(t->nslots) + (off_t)(key % THROTTLE_LOCKS);
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Sleep msec, never past deadline. false when the deadline has come. */
static bool nap(unsigned msec, const struct timespec *deadline)
{
	struct timespec now, until;
	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0 || !before(&now, deadline))
		return false;
	until.tv_sec = now.tv_sec + msec / 1000;
	until.tv_nsec = now.tv_nsec + (long)(msec % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (before(deadline, &until))
		until = *deadline;
	int rc;
	while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL)) == EINTR)
		;
	return rc == 0;
}

enum throttle_lock throttle_lock_account(struct throttle *t, uint64_t key,
					 const struct timespec *deadline)
{
	if (t->fd < 0)
		return TL_ERROR;
	for (;;) {
		if (set_lock(t->fd, F_WRLCK, bucket_offset(t, key), 1, false) == 0)
			return TL_LOCKED;
		if (errno != EAGAIN && errno != EACCES) {
			log_msg(LOG_ERR, "state file %s: account lock: %s", t->path, strerror(errno));
			return TL_ERROR;
		}
		if (!nap(THROTTLE_POLL_MSEC, deadline))
			return TL_TIMEOUT;
	}
}

void throttle_unlock_account(struct throttle *t, uint64_t key)
{
	if (t->fd >= 0)
		set_lock(t->fd, F_UNLCK, bucket_offset(t, key), 1, false);
}

/* ---- one attempt ---- */

static unsigned seconds_since(const struct timespec *start)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return 0;
	long ms = (long)(now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
	return ms > 0 ? (unsigned)((ms + 500) / 1000) : 0;
}

int throttle_begin(struct throttle *t, const char *user, const char *source,
		   const struct timespec *deadline, struct throttle_attempt *a)
{
	memset(a, 0, sizeof(*a));
	if (t->fd < 0)
		return 0;
	struct timespec start;
	struct throttle_slot s;
	if (clock_gettime(CLOCK_MONOTONIC, &start) < 0)
		return 0;
	a->account = throttle_key(t, TK_ACCOUNT, user, NULL);
	a->source = source ? throttle_key(t, TK_SOURCE, NULL, source) : 0;
	a->known = source ? throttle_key(t, TK_KNOWN, user, source) : 0;
	if (throttle_get(t, a->known, &s) < 0)
		return 0;
	a->is_known = throttle_known(&t->p, &s, throttle_now());
	if (!a->is_known) {
		enum throttle_lock l = throttle_lock_account(t, a->account, deadline);
		if (l == TL_TIMEOUT) {
			a->delayed = seconds_since(&start);
			return 1;
		}
		a->locked = l == TL_LOCKED;
	}
	for (;;) {
		uint64_t wait = 0, w;
		int64_t now = throttle_now();
		if (!a->is_known) {
			if (throttle_get(t, a->account, &s) < 0)
				break;
			wait = throttle_wait(&t->p, &s, now);
		}
		if (throttle_get(t, a->source, &s) < 0)
			break;
		w = throttle_wait(&t->p, &s, now);
		if (w > wait)
			wait = w;
		if (wait == 0)
			break;
		if (!nap(wait > 1000000 ? 1000000u : (unsigned)wait, deadline)) {
			a->delayed = seconds_since(&start);
			if (a->locked)
				throttle_unlock_account(t, a->account);
			a->locked = false;
			return 1;
		}
	}
	a->delayed = seconds_since(&start);
	return 0;
}

void throttle_end(struct throttle *t, struct throttle_attempt *a, bool success)
{
	if (t->fd < 0)
		return;
	int64_t now = throttle_now();
	if (success) {
		/* A login through the delay proves the owner: the account's delay goes. From a
		 * known source it stays, or a polling owner would reset it for the guesser. */
		if (!a->is_known)
			throttle_set(t, a->account, TK_ACCOUNT, now);
		throttle_set(t, a->source, TK_SOURCE, now);
		if (t->p.known_days > 0)
			throttle_set(t, a->known, TK_KNOWN, now);
	} else {
		throttle_fail(t, a->account, TK_ACCOUNT, now);
		throttle_fail(t, a->source, TK_SOURCE, now);
	}
	if (a->locked)
		throttle_unlock_account(t, a->account);
	a->locked = false;
}
