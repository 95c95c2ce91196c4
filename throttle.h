/*
 * Failed-login accounting shared by every session on the host: a fixed-size
 * table file in the state directory, touched by the authenticator only.
 *
 * Slots are keyed by SipHash-2-4, with a per-host secret kept in the file's
 * header, of the kind and the account name, the source prefix (IPv4 /32,
 * IPv6 /64) or both: no name, address or password is stored in clear.
 * A slot holds a failure level and the time of its last change; the delay it
 * asks for grows exponentially with the level, up to a cap, and a level is
 * forgotten per `decay` seconds of quiet. Each key may live in THROTTLE_PROBE
 * consecutive slots; a new key takes the weakest of them (the lowest level,
 * then the oldest). Updates are made under an OFD lock on the header; the
 * attempts on one account are serialized by an OFD lock on a byte of the
 * account's bucket past the end of the file.
 */
#ifndef POP3D_THROTTLE_H
#define POP3D_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

enum throttle_kind { TK_ACCOUNT = 1, TK_SOURCE, TK_KNOWN };

struct throttle_params {
	unsigned base;        /* seconds of delay after one failure (0: no delay) */
	unsigned cap;         /* seconds: the most a delay grows to */
	unsigned decay;       /* seconds of quiet that forget one failure */
	unsigned known_days;  /* a source stays known this long after a login (0: never known) */
};

struct throttle {
	int fd;               /* -1: no cross-session accounting */
	uint32_t nslots;
	uint8_t secret[16];
	struct throttle_params p;
	char path[4096];
};

struct throttle_slot {
	uint64_t key;         /* 0: empty */
	int64_t stamp;        /* ms since the epoch: last failure, or login (TK_KNOWN) */
	uint32_t kind;
	uint32_t level;
	uint64_t check;       /* keyed hash of the fields above: a bad one is never trusted */
};

/* Now, in ms since the epoch (the stamps' unit). */
int64_t throttle_now(void);

/* The keyed hash (exposed for the unit tests). */
uint64_t throttle_siphash(const uint8_t key[16], const void *data, size_t len);

/*
 * Open (creating or rebuilding) dir/THROTTLE_FILE. 0; -1 when the state
 * directory is unusable: logged, t->fd is -1 and every other call is a no-op.
 */
int throttle_open(struct throttle *t, const char *dir, const struct throttle_params *p);
void throttle_close(struct throttle *t);

/* The key of kind for name and/or source (either may be NULL as the kind needs). 0: none. */
uint64_t throttle_key(const struct throttle *t, enum throttle_kind kind, const char *name,
		      const char *source);

/* The slot of key into *s (zeroed when absent). 0, or -1. */
int throttle_get(struct throttle *t, uint64_t key, struct throttle_slot *s);
/* A failure for key at now: the level goes up by one (after decay). 0, or -1. */
int throttle_fail(struct throttle *t, uint64_t key, enum throttle_kind kind, int64_t now);
/* key's level to 0 (TK_KNOWN: stamped now). 0, or -1. */
int throttle_set(struct throttle *t, uint64_t key, enum throttle_kind kind, int64_t now);

/* The level left of s at now, after decay. */
unsigned throttle_level(const struct throttle_params *p, const struct throttle_slot *s, int64_t now);
/* Milliseconds still to wait at now before an attempt that slot s slows. */
uint64_t throttle_wait(const struct throttle_params *p, const struct throttle_slot *s, int64_t now);
/* Whether a TK_KNOWN slot s still makes its source known at now. */
bool throttle_known(const struct throttle_params *p, const struct throttle_slot *s, int64_t now);

/* The per-account lock: bucket of key, waiting until deadline (CLOCK_MONOTONIC). */
enum throttle_lock { TL_LOCKED, TL_TIMEOUT, TL_ERROR };
enum throttle_lock throttle_lock_account(struct throttle *t, uint64_t key,
					 const struct timespec *deadline);
void throttle_unlock_account(struct throttle *t, uint64_t key);

/* ---- one login attempt ---- */

struct throttle_attempt {
	uint64_t account, source, known;   /* keys; source and known 0 without a source */
	bool is_known;                     /* the source is known for the account */
	bool locked;                       /* the account's lock is held */
	unsigned delayed;                  /* seconds the attempt was held back */
};

/*
 * Before the password is checked: the account's lock (unless the source is
 * known for it) and the delays of the account (likewise) and of the source,
 * waited out here, never past deadline. source is NULL for a session without
 * an address. 0: check the password now; 1: the deadline came first (no
 * check, the lock not held). A broken table only logs: 0.
 */
int throttle_begin(struct throttle *t, const char *user, const char *source,
		   const struct timespec *deadline, struct throttle_attempt *a);
/* After the check: record its outcome and release the lock. */
void throttle_end(struct throttle *t, struct throttle_attempt *a, bool success);

#endif
