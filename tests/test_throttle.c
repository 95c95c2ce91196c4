/* Unit tests for throttle.c: rates, keys, the sketches, known-source marks, rebuilds, attempts. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"
#include "testutil.h"
#include "throttle.h"

/* account 3 at once then 1 per 10 s; known 2 then 1 per 20 s; source 5 then 1 per 2 s. */
static const struct throttle_params params = {
	.account = {3, 10}, .known = {2, 20}, .source = {5, 2}, .known_days = 2};

#define HEADER 64
#define CELL 16
#define MARK 40
static const off_t expected_size = HEADER + 2 * (off_t)THROTTLE_CELLS * CELL +
				   (off_t)THROTTLE_MARKS * MARK;

static char logtext[8192];

static void collect_log(int priority, const char *msg, void *ctx)
{
	(void)priority;
	(void)ctx;
	size_t used = strlen(logtext);
	snprintf(logtext + used, sizeof(logtext) - used, "%s\n", msg);
}

/* A fresh state directory (absolute, not yet created). */
static const char *state_dir(const char *name)
{
	static char dir[1024];
	char cwd[512];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(dir, sizeof(dir), "%s/%s", cwd, test_path(name));
	return dir;
}

static void open_table(struct throttle *t, const char *dir)
{
	assert_int_equal(throttle_open(t, dir, &params), 0);
	assert_true(t->fd >= 0);
}

static off_t table_size(const char *dir)
{
	char path[1100];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, THROTTLE_FILE);
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_siphash_vector(void **state)
{
	(void)state;
	/* The reference vector of the SipHash paper: key 00..0f, message 00..0e. */
	uint8_t key[16], msg[15];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	assert_true(throttle_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
}

static void test_parse_rate(void **state)
{
	(void)state;
	struct throttle_rate r;
	assert_int_equal(throttle_parse_rate("6/150", &r), 0);
	assert_int_equal(r.burst, 6);
	assert_int_equal(r.period, 150);
	assert_int_equal(throttle_parse_rate("0", &r), 0);
	assert_int_equal(r.burst, 0);
	assert_int_equal(throttle_parse_rate(DEFAULT_THROTTLE_ACCOUNT, &r), 0);
	assert_int_equal(throttle_parse_rate(DEFAULT_THROTTLE_KNOWN, &r), 0);
	assert_int_equal(throttle_parse_rate(DEFAULT_THROTTLE_SOURCE, &r), 0);
	static const char *const bad[] = {"", "6", "6/", "0/5", "6/0", "x/1", "/5", "1/86401",
					  "1001/1", "6/150x", "-1/5", "6/-5", "6//5", " 6/5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(throttle_parse_rate(bad[i], &r), -1);
	assert_int_equal(throttle_parse_rate(NULL, &r), -1);
}

static void test_rate(void **state)
{
	(void)state;
	const struct throttle_rate r = {3, 10};
	int64_t now = 1000000000000LL, tat = 0;
	/* Three failures at once, then one more per 10 s. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(throttle_rate_wait(&r, tat, now), 0);
		tat = throttle_rate_charge(&r, tat, now);
	}
	assert_int_equal(throttle_rate_wait(&r, tat, now), 10000);
	assert_int_equal(throttle_rate_wait(&r, tat, now + 4000), 6000);
	assert_int_equal(throttle_rate_wait(&r, tat, now + 10000), 0);
	tat = throttle_rate_charge(&r, tat, now + 10000);
	assert_int_equal(throttle_rate_wait(&r, tat, now + 10000), 10000);
	/* Quiet refills the bucket: 30 s later three at once again. */
	int64_t later = now + 50000;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(throttle_rate_wait(&r, tat, later), 0);
		tat = throttle_rate_charge(&r, tat, later);
	}
	assert_true(throttle_rate_wait(&r, tat, later) > 0);
	/* A tat far ahead (the clock set back, or the file's value) waits one period at most. */
	assert_int_equal(throttle_rate_wait(&r, now + 86400000LL * 365, now), 10000);
	/* No limit: never a wait. */
	const struct throttle_rate off = {0, 0};
	assert_int_equal(throttle_rate_wait(&off, now + 100000, now), 0);
}

static void test_keys(void **state)
{
	(void)state;
	struct throttle a, b;
	open_table(&a, state_dir("keys-a"));
	open_table(&b, state_dir("keys-b"));
	uint64_t acct = throttle_account_key(&a, "alice");
	assert_true(acct != 0);
	assert_true(acct == throttle_account_key(&a, "alice"));
	assert_true(acct != throttle_account_key(&a, "alicf"));
	assert_true(acct != throttle_account_key(&b, "alice"));    /* per-host secret */
	/* IPv4 /32, IPv6 /64, and a v4-mapped address is its IPv4 address. */
	assert_true(throttle_source_key(&a, "10.0.0.1") != throttle_source_key(&a, "10.0.0.2"));
	assert_true(throttle_source_key(&a, "10.0.0.1") == throttle_source_key(&a, "::ffff:10.0.0.1"));
	assert_true(throttle_source_key(&a, "::ffff:10.0.0.1") !=
		    throttle_source_key(&a, "::ffff:10.0.0.2"));
	assert_true(throttle_source_key(&a, "2001:db8:1:2::1") ==
		    throttle_source_key(&a, "2001:db8:1:2:ffff::9"));
	assert_true(throttle_source_key(&a, "2001:db8:1:2::1") !=
		    throttle_source_key(&a, "2001:db8:1:3::1"));
	uint64_t pair = throttle_pair_key(&a, "alice", "10.0.0.1");
	assert_true(pair != throttle_pair_key(&a, "bob", "10.0.0.1"));
	assert_true(pair != throttle_pair_key(&a, "alice", "10.0.0.2"));
	assert_true(pair == throttle_pair_key(&a, "alice", "::ffff:10.0.0.1"));
	assert_true(pair != acct && pair != throttle_source_key(&a, "10.0.0.1"));
	assert_true(throttle_pair_key(&a, "alice", NULL) == 0);   /* no source, no key */
	assert_true(throttle_source_key(&a, NULL) == 0);
	/* Keys are stable across opens; no name nor address reaches the file. */
	int64_t now = throttle_now();
	assert_int_equal(throttle_sketch_fail(&a, TS_ACCOUNT, acct, &params.account, now), 0);
	assert_int_equal(throttle_mark_login(&a, "alice", pair, now), 0);
	throttle_close(&a);
	open_table(&a, state_dir("keys-a"));
	assert_true(acct == throttle_account_key(&a, "alice"));
	int64_t tat;
	assert_int_equal(throttle_sketch_get(&a, TS_ACCOUNT, acct, &tat), 0);
	assert_true(tat >= now + 10000);
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", state_dir("keys-a"), THROTTLE_FILE);
	size_t len;
	char *data = test_read_file(path, &len);
	assert_null(memmem(data, len, "alice", 5));
	assert_null(memmem(data, len, "10.0.0.1", 8));
	assert_null(memmem(data, len, "\x0a\x00\x00\x01", 4));
	free(data);
	throttle_close(&a);
	throttle_close(&b);
}

/*
 * The flood of issue 18: failed logins to 50 000 accounts from 50 000
 * sources, and the attacker's own account logging in from 50 000 sources.
 * The victim's failures are not forgotten (a sketch never understates a key),
 * the owner's known source stays known, a fresh account is not locked out by
 * the others' single failures, and the file keeps its size.
 */
static void test_flood_forgets_nothing(void **state)
{
	(void)state;
	const char *dir = state_dir("flood");
	struct throttle t;
	open_table(&t, dir);
	assert_int_equal(table_size(dir), expected_size);
	int64_t now = throttle_now();
	uint64_t victim = throttle_account_key(&t, "victim");
	for (int i = 0; i < 3; i++)
		assert_int_equal(throttle_sketch_fail(&t, TS_ACCOUNT, victim, &params.account, now), 0);
	int64_t before;
	assert_int_equal(throttle_sketch_get(&t, TS_ACCOUNT, victim, &before), 0);
	assert_true(throttle_rate_wait(&params.account, before, now) > 0);
	uint64_t home = throttle_pair_key(&t, "victim", "192.0.2.10");
	assert_int_equal(throttle_mark_login(&t, "victim", home, now), 0);
	char name[32], src[32];
	for (int i = 0; i < 50000; i++) {
		snprintf(name, sizeof(name), "guess%d", i);
		snprintf(src, sizeof(src), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(throttle_sketch_fail(&t, TS_ACCOUNT, throttle_account_key(&t, name),
						      &params.account, now), 0);
		assert_int_equal(throttle_sketch_fail(&t, TS_SOURCE, throttle_source_key(&t, src),
						      &params.source, now), 0);
		assert_int_equal(throttle_mark_login(&t, "mallory",
						     throttle_pair_key(&t, "mallory", src), now), 0);
	}
	assert_int_equal(table_size(dir), expected_size);
	int64_t after;
	assert_int_equal(throttle_sketch_get(&t, TS_ACCOUNT, victim, &after), 0);
	assert_true(after >= before);   /* raised, perhaps, by a neighbour; never lowered */
	assert_true(throttle_rate_wait(&params.account, after, now) > 0);
	struct throttle_mark m;
	assert_int_equal(throttle_mark_get(&t, "victim", home, &m), 0);
	assert_true(throttle_mark_known(&params, &m, now));
	/* The attacker's own account keeps no more than its share of marks. */
	unsigned kept = 0;
	for (int i = 0; i < 50000; i++) {
		snprintf(src, sizeof(src), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(throttle_mark_get(&t, "mallory", throttle_pair_key(&t, "mallory", src),
						   &m), 0);
		kept += m.key != 0;
	}
	assert_int_equal(kept, THROTTLE_MARKS_PER_ACCOUNT);
	/*
	 * Accounts and sources with one failure each lock out hardly any fresh one.
	 * A sketch may overstate a fresh key (all four of its cells raised by others):
	 * 50 000 keys at once leave about 7 % of the cells three failures deep, so a
	 * fresh account (burst 3) waits in about 1 table in 20, the table's secret
	 * deciding which. Such a key waits one period (one failure too many), and a
	 * source (burst 5) never. More than 10 in 1000 would be a broken sketch.
	 */
	unsigned held = 0;
	for (int i = 0; i < 1000; i++) {
		int64_t tat;
		snprintf(name, sizeof(name), "fresh%d", i);
		assert_int_equal(throttle_sketch_get(&t, TS_ACCOUNT, throttle_account_key(&t, name),
						     &tat), 0);
		uint64_t wait = throttle_rate_wait(&params.account, tat, now);
		assert_true(wait <= params.account.period * 1000ULL);
		held += wait > 0;
		snprintf(src, sizeof(src), "172.16.%d.%d", i >> 8, i & 255);
		assert_int_equal(throttle_sketch_get(&t, TS_SOURCE, throttle_source_key(&t, src), &tat), 0);
		assert_int_equal(throttle_rate_wait(&params.source, tat, now), 0);
	}
	assert_true(held <= 10);
	throttle_close(&t);
}

/* An account's own logins replace its own oldest mark once it has its share. */
static void test_marks(void **state)
{
	(void)state;
	struct throttle t;
	open_table(&t, state_dir("marks"));
	int64_t now = throttle_now();
	struct throttle_mark m;
	uint64_t pairs[THROTTLE_MARKS_PER_ACCOUNT + 1];
	for (int i = 0; i <= THROTTLE_MARKS_PER_ACCOUNT; i++) {
		char src[32];
		snprintf(src, sizeof(src), "198.51.100.%d", i + 1);
		pairs[i] = throttle_pair_key(&t, "gina", src);
		assert_int_equal(throttle_mark_login(&t, "gina", pairs[i], now + i), 0);
	}
	assert_int_equal(throttle_mark_get(&t, "gina", pairs[0], &m), 0);
	assert_int_equal(m.key, 0);   /* the oldest went */
	for (int i = 1; i <= THROTTLE_MARKS_PER_ACCOUNT; i++) {
		assert_int_equal(throttle_mark_get(&t, "gina", pairs[i], &m), 0);
		assert_true(throttle_mark_known(&params, &m, now + 10));
	}
	/* A mark lapses after known_days; a failure charges the pair's own bucket. */
	assert_false(throttle_mark_known(&params, &m, now + 3LL * 86400 * 1000));
	assert_int_equal(throttle_mark_fail(&t, "gina", pairs[1], now), 0);
	assert_int_equal(throttle_mark_get(&t, "gina", pairs[1], &m), 0);
	assert_true(m.tat >= now + 20000);
	/* A new login keeps the pair's failures. */
	assert_int_equal(throttle_mark_login(&t, "gina", pairs[1], now + 100), 0);
	assert_int_equal(throttle_mark_get(&t, "gina", pairs[1], &m), 0);
	assert_true(m.tat >= now + 20000 && m.login == now + 100);
	/* --known-source-days 0: nothing is ever known. */
	struct throttle_params never = params;
	never.known_days = 0;
	assert_false(throttle_mark_known(&never, &m, now + 200));
	throttle_close(&t);
}

static void corrupt_at(const char *dir, off_t off, const char *bytes, size_t len)
{
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", dir, THROTTLE_FILE);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, len, off), (ssize_t)len);
	close(fd);
}

static void test_corrupt_and_truncated(void **state)
{
	(void)state;
	const char *dir = state_dir("corrupt");
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", dir, THROTTLE_FILE);
	struct throttle t;
	log_set_hook(collect_log, NULL);
	open_table(&t, dir);
	uint64_t k = throttle_account_key(&t, "dave");
	int64_t now = throttle_now();
	assert_int_equal(throttle_sketch_fail(&t, TS_ACCOUNT, k, &params.account, now), 0);
	throttle_close(&t);
	/* A cell with a bad check is not trusted: cleared, logged. */
	int64_t forged = now + 1000000;
	off_t cell = HEADER + (off_t)((k & 0xFFFF) % THROTTLE_CELLS) * CELL;
	corrupt_at(dir, cell, (const char *)&forged, sizeof(forged));
	logtext[0] = '\0';
	open_table(&t, dir);
	int64_t tat;
	assert_int_equal(throttle_sketch_get(&t, TS_ACCOUNT, k, &tat), 0);
	assert_true(tat < forged);
	assert_non_null(strstr(logtext, "corrupt cell"));
	/* A cell copied to another place does not pass either (its place is in its check). */
	char moved[CELL];
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	off_t other = HEADER + (off_t)(((k >> 16) & 0xFFFF) % THROTTLE_CELLS) * CELL;
	assert_int_equal(pread(fd, moved, CELL, other), CELL);
	close(fd);
	if (other != cell) {
		corrupt_at(dir, cell, moved, CELL);
		logtext[0] = '\0';
		assert_int_equal(throttle_sketch_get(&t, TS_ACCOUNT, k, &tat), 0);
		assert_non_null(strstr(logtext, "corrupt cell"));
	}
	/* A damaged mark likewise. */
	uint64_t pair = throttle_pair_key(&t, "dave", "10.1.1.1");
	assert_int_equal(throttle_mark_login(&t, "dave", pair, now), 0);
	struct throttle_mark m;
	throttle_close(&t);
	open_table(&t, dir);
	uint32_t start = (uint32_t)(k % THROTTLE_MARKS);
	off_t marks = HEADER + 2 * (off_t)THROTTLE_CELLS * CELL;
	/* Flip the login's low byte: writing a fixed one left it intact 1 run in 256. */
	off_t login = marks + (off_t)start * MARK + 8;
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	char byte;
	assert_int_equal(pread(fd, &byte, 1, login), 1);
	close(fd);
	byte = (char)~byte;
	corrupt_at(dir, login, &byte, 1);
	logtext[0] = '\0';
	assert_int_equal(throttle_mark_get(&t, "dave", pair, &m), 0);
	assert_int_equal(m.key, 0);
	assert_non_null(strstr(logtext, "corrupt, cleared"));
	throttle_close(&t);
	/* Truncated: rebuilt at the fixed size. */
	assert_int_equal(truncate(path, 1000), 0);
	logtext[0] = '\0';
	open_table(&t, dir);
	assert_non_null(strstr(logtext, "made a new empty table"));
	assert_int_equal(table_size(dir), expected_size);
	throttle_close(&t);
	/* A damaged header: rebuilt with a new secret. */
	corrupt_at(dir, 3, "X", 1);
	logtext[0] = '\0';
	open_table(&t, dir);
	assert_non_null(strstr(logtext, "corrupt header"));
	throttle_close(&t);
	/* Garbage of the right size too. */
	char junk[4096];
	memset(junk, 0xa5, sizeof(junk));
	corrupt_at(dir, 0, junk, sizeof(junk));
	logtext[0] = '\0';
	open_table(&t, dir);
	assert_non_null(strstr(logtext, "corrupt header"));
	throttle_close(&t);
	/* An unusable directory: logged, no table, every call a no-op. */
	char file_dir[1100];
	snprintf(file_dir, sizeof(file_dir), "%s", path);   /* a file where a directory should be */
	logtext[0] = '\0';
	assert_int_equal(throttle_open(&t, file_dir, &params), -1);
	assert_int_equal(t.fd, -1);
	assert_non_null(strstr(logtext, "no failed-login accounting"));
	struct throttle_attempt a;
	assert_int_equal(throttle_begin(&t, "dave", "10.1.1.1", &a), 0);
	throttle_end(&t, &a, false);
	log_set_hook(NULL, NULL);
}

/* One attempt from user at source: begin's verdict; ended with success (when checked). */
static int attempt(struct throttle *t, const char *user, const char *source, bool success,
		   struct throttle_attempt *a)
{
	int rc = throttle_begin(t, user, source, a);
	if (rc == 0)
		throttle_end(t, a, success);
	return rc;
}

static void test_attempts(void **state)
{
	(void)state;
	struct throttle t;
	open_table(&t, state_dir("attempts"));
	struct throttle_attempt a;
	/* The owner logs in from home, which becomes known. */
	assert_int_equal(attempt(&t, "frank", "198.51.100.7", true, &a), 0);
	assert_false(a.known);
	/* Guessers from three addresses use the account's three; the fourth is refused. */
	for (int i = 0; i < 3; i++) {
		char src[32];
		snprintf(src, sizeof(src), "203.0.113.%d", i + 1);
		assert_int_equal(attempt(&t, "frank", src, false, &a), 0);
	}
	double t0 = mono();
	assert_int_equal(attempt(&t, "frank", "203.0.113.50", true, &a), 1);
	assert_true(a.wait >= 9 && a.wait <= 10);
	assert_true(mono() - t0 < 0.5);   /* told, not held */
	assert_int_equal(a.nlocks, 0);
	/* The owner from home: the account's failures do not touch it, nor a success. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(attempt(&t, "frank", "198.51.100.7", true, &a), 0);
		assert_true(a.known);
	}
	/* Guessing from the owner's own address (a NAT): two, then refused, owner too. */
	assert_int_equal(attempt(&t, "frank", "198.51.100.7", false, &a), 0);
	assert_int_equal(attempt(&t, "frank", "198.51.100.7", false, &a), 0);
	assert_int_equal(attempt(&t, "frank", "198.51.100.7", true, &a), 1);
	assert_true(a.wait >= 19 && a.wait <= 20);
	/* ... the same address as v4-mapped IPv6 is the same source. */
	assert_int_equal(attempt(&t, "frank", "::ffff:198.51.100.7", true, &a), 1);
	/* The attacker's own account: logins take no token and give none back. */
	assert_int_equal(attempt(&t, "mallory", "203.0.113.1", true, &a), 0);
	assert_int_equal(attempt(&t, "frank", "203.0.113.1", false, &a), 1);
	/* Another user behind that address, known there, is not held. */
	assert_int_equal(attempt(&t, "gwen", "198.51.100.7", true, &a), 0);   /* new there */
	assert_int_equal(attempt(&t, "gwen", "198.51.100.7", true, &a), 0);
	assert_true(a.known);
	/* Spraying from one source: five accounts fail, the sixth is refused ... */
	for (int i = 0; i < 5; i++) {
		char name[32];
		snprintf(name, sizeof(name), "spray%d", i);
		assert_int_equal(attempt(&t, name, "192.0.2.200", false, &a), 0);
	}
	assert_int_equal(attempt(&t, "spray9", "192.0.2.200", false, &a), 1);
	assert_true(a.wait >= 1 && a.wait <= 2);
	/* ... but not an account that source is known for. */
	assert_int_equal(attempt(&t, "gwen", "198.51.100.7", true, &a), 0);
	assert_int_equal(attempt(&t, "hal", "192.0.2.200", true, &a), 1);   /* unknown: refused */
	/* A session without an address: only the account counts. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(attempt(&t, "no-such-user", NULL, false, &a), 0);
	assert_int_equal(attempt(&t, "no-such-user", NULL, false, &a), 1);
	assert_int_equal(a.source, 0);
	throttle_close(&t);
}

/*
 * Attempts on one bucket are checked one at a time: while another process
 * checks a password on frank's account, an attempt on it waits at most
 * THROTTLE_HOLD_MSEC and is refused; another account is not held up; once
 * the check failed, its token is gone for the next attempt.
 */
static void test_one_check_at_a_time(void **state)
{
	(void)state;
	const char *dir = state_dir("lock");
	struct throttle t;
	open_table(&t, dir);
	int ready[2], go[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct throttle c;
		struct throttle_attempt a;
		char x;
		close(go[1]);   /* a failed parent's exit ends the child */
		if (throttle_open(&c, dir, &params) < 0 ||
		    throttle_begin(&c, "frank", "203.0.113.1", &a) != 0 || a.nlocks == 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1 || read(go[0], &x, 1) != 1)
			_exit(1);
		throttle_end(&c, &a, false);   /* the "check" failed */
		throttle_close(&c);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	struct throttle_attempt a;
	double t0 = mono();
	assert_int_equal(throttle_begin(&t, "frank", "203.0.113.2", &a), 1);   /* held, then refused */
	double held = mono() - t0;
	assert_true(held >= THROTTLE_HOLD_MSEC / 1000.0 * 0.9);
	assert_true(held < THROTTLE_HOLD_MSEC / 1000.0 + 2.0);
	assert_int_equal(a.wait, 1);
	assert_int_equal(attempt(&t, "ida", "203.0.113.3", false, &a), 0);   /* another account */
	/* ... even one whose key matches frank's in its low bits (1024 lock stripes once
	 * held it, then refused it, about once in 250 runs of this test). */
	uint64_t frank = throttle_account_key(&t, "frank");
	char name[32];
	for (unsigned i = 0;; i++) {
		assert_true(i < 1000000);
		snprintf(name, sizeof(name), "stripe%u", i);
		if (throttle_account_key(&t, name) % 1024 == frank % 1024)
			break;
	}
	assert_int_equal(attempt(&t, name, "203.0.113.4", false, &a), 0);
	assert_int_equal(write(go[1], "x", 1), 1);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	int64_t tat;
	assert_int_equal(throttle_sketch_get(&t, TS_ACCOUNT, throttle_account_key(&t, "frank"), &tat), 0);
	assert_true(tat >= throttle_now() + 5000);   /* the child's failure was charged */
	close(ready[0]);
	close(go[1]);
	throttle_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vector),
		cmocka_unit_test(test_parse_rate),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_flood_forgets_nothing),
		cmocka_unit_test(test_marks),
		cmocka_unit_test(test_corrupt_and_truncated),
		cmocka_unit_test(test_attempts),
		cmocka_unit_test(test_one_check_at_a_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
