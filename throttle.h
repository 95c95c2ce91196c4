/*
 * Failed-login accounting shared by every session on the host: a fixed-size
 * table file in the state directory, touched by the authenticator only
 * (doc/throttle.md explains the model and what each party gets).
 *
 * Three kinds of bucket, each "N failed checks at once, then one per SECS"
 * (a token bucket kept as its theoretical arrival time, GCRA):
 *
 *   account   the account's failures from sources not known for it
 *   source    a source's failures (IPv4 /32, IPv6 /64) across accounts, from
 *             sources not known for the account tried
 *   pair      the failures of one account from one source known for it
 *
 * Before a password is checked, every bucket that applies must hold a token,
 * else the attempt is refused at once and the client is told the wait; a
 * failed check takes a token from each, a correct password none. The account
 * and source buckets live in count-min sketches under conservative update
 * (several cells per key, the key's value the least of them, a cell only ever
 * raised): collisions can only overstate a key, and no flood of other keys
 * makes it forget a failure. A pair lives in the account's known-source mark
 * (a slot in the account's own window of the mark table), earned by a login
 * from that source and kept --known-source-days; each account keeps at most
 * THROTTLE_MARKS_PER_ACCOUNT marks, so other accounts' logins cannot evict them.
 * Every key is a SipHash-2-4 of the kind, the name and/or the source, with a
 * secret from the file's header: no name or address is stored in clear.
 */
#ifndef POP3D_THROTTLE_H
#define POP3D_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One bucket's rate: burst failures at once, then one per period seconds. */
struct throttle_rate {
	unsigned burst;       /* 0: no limit */
	unsigned period;      /* seconds */
};

struct throttle_params {
	struct throttle_rate account;   /* --throttle-account */
	struct throttle_rate known;     /* --throttle-known: one account from one known source */
	struct throttle_rate source;    /* --throttle-source */
	unsigned known_days;            /* a source stays known this long after a login (0: never) */
};

struct throttle {
	int fd;               /* -1: no cross-session accounting */
	uint8_t secret[16];
	struct throttle_params p;
	char path[4096];
};

/* The two sketches, and the mark table. */
enum throttle_sketch { TS_ACCOUNT = 0, TS_SOURCE = 1 };

/* A known-source mark: the account's bucket for one source it logged in from. */
struct throttle_mark {
	uint64_t key;         /* keyed hash of account and source prefix; 0: empty */
	int64_t login;        /* ms since the epoch: the last login from the source */
	int64_t tat;          /* ms: the pair's bucket (its theoretical arrival time) */
	uint32_t account;     /* keyed tag of the account: an account's marks are counted */
	uint32_t spare;
	uint64_t check;       /* keyed hash of the fields above: a bad one is never trusted */
};

/* "N/SECS" or "0" (no limit) into *r. 0, or -1 (the text is not one). */
int throttle_parse_rate(const char *text, struct throttle_rate *r);

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

/* ---- the buckets (exposed for the unit tests) ---- */

/* Milliseconds until a bucket at tat has a token at now (0: it has one). */
uint64_t throttle_rate_wait(const struct throttle_rate *r, int64_t tat, int64_t now);
/* The bucket's tat after one failure at now. */
int64_t throttle_rate_charge(const struct throttle_rate *r, int64_t tat, int64_t now);

/* Keys: an account by name, a source by its prefix, a pair by both. 0: none. */
uint64_t throttle_account_key(const struct throttle *t, const char *name);
uint64_t throttle_source_key(const struct throttle *t, const char *source);
uint64_t throttle_pair_key(const struct throttle *t, const char *name, const char *source);

/* A key's value in a sketch (the least of its cells), and one failure added. 0, or -1. */
int throttle_sketch_get(struct throttle *t, enum throttle_sketch s, uint64_t key, int64_t *tat);
int throttle_sketch_fail(struct throttle *t, enum throttle_sketch s, uint64_t key,
			 const struct throttle_rate *r, int64_t now);

/* The account's mark for pair (zeroed when it has none). 0, or -1. */
int throttle_mark_get(struct throttle *t, const char *name, uint64_t pair, struct throttle_mark *m);
/* A login from the pair's source: its mark made or stamped. 0, or -1. */
int throttle_mark_login(struct throttle *t, const char *name, uint64_t pair, int64_t now);
/* A failed check from the pair's known source: its bucket charged. 0, or -1. */
int throttle_mark_fail(struct throttle *t, const char *name, uint64_t pair, int64_t now);
/* Whether mark m makes its source known at now. */
bool throttle_mark_known(const struct throttle_params *p, const struct throttle_mark *m, int64_t now);

/* ---- one login attempt ---- */

struct throttle_attempt {
	uint64_t account, source, pair;   /* keys; source and pair 0 without a source */
	bool known;                       /* the source is known for the account */
	unsigned nlocks;
	off_t locks[2];                   /* the bucket locks held while the password is checked */
	unsigned wait;                    /* refused: seconds until a check is allowed */
	const char *user;                 /* the caller's, kept until throttle_end */
};

/*
 * Before the password is checked: 0, check it now (the buckets' locks are
 * held, so no other attempt on them is checked at the same time); 1, refuse
 * it without a check, a->wait seconds to go. Never waits more than
 * THROTTLE_HOLD_MSEC. source is NULL for a session without an address. A
 * broken table only logs: 0.
 */
int throttle_begin(struct throttle *t, const char *user, const char *source,
		   struct throttle_attempt *a);
/* After the check: a failure takes a token from each bucket; the locks go. */
void throttle_end(struct throttle *t, struct throttle_attempt *a, bool success);

#endif
