/* Unit tests for throttle.c: keys, slots, eviction, decay, rebuilds, the account lock. */
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

static const struct throttle_params params = {.base = 1, .cap = 4, .decay = 60, .known_days = 2};

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

static const off_t expected_size = 64 + (off_t)THROTTLE_SLOTS * 32;

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

static void test_keys(void **state)
{
	(void)state;
	struct throttle a, b;
	open_table(&a, state_dir("keys-a"));
	open_table(&b, state_dir("keys-b"));
	uint64_t acct = throttle_key(&a, TK_ACCOUNT, "alice", NULL);
	assert_true(acct != 0);
	assert_true(acct == throttle_key(&a, TK_ACCOUNT, "alice", NULL));
	assert_true(acct != throttle_key(&a, TK_ACCOUNT, "alicf", NULL));
	assert_true(acct != throttle_key(&b, TK_ACCOUNT, "alice", NULL));    /* per-host secret */
	/* IPv4 /32, IPv6 /64 */
	assert_true(throttle_key(&a, TK_SOURCE, NULL, "10.0.0.1") !=
		    throttle_key(&a, TK_SOURCE, NULL, "10.0.0.2"));
	assert_true(throttle_key(&a, TK_SOURCE, NULL, "2001:db8:1:2::1") ==
		    throttle_key(&a, TK_SOURCE, NULL, "2001:db8:1:2:ffff::9"));
	assert_true(throttle_key(&a, TK_SOURCE, NULL, "2001:db8:1:2::1") !=
		    throttle_key(&a, TK_SOURCE, NULL, "2001:db8:1:3::1"));
	uint64_t known = throttle_key(&a, TK_KNOWN, "alice", "10.0.0.1");
	assert_true(known != throttle_key(&a, TK_KNOWN, "bob", "10.0.0.1"));
	assert_true(known != throttle_key(&a, TK_KNOWN, "alice", "10.0.0.2"));
	assert_true(throttle_key(&a, TK_KNOWN, "alice", NULL) == 0);   /* no source, no key */
	/* Keys are stable across opens; the name never reaches the file. */
	assert_int_equal(throttle_fail(&a, acct, TK_ACCOUNT, throttle_now()), 0);
	throttle_close(&a);
	open_table(&a, state_dir("keys-a"));
	assert_true(acct == throttle_key(&a, TK_ACCOUNT, "alice", NULL));
	struct throttle_slot s;
	assert_int_equal(throttle_get(&a, acct, &s), 0);
	assert_int_equal(s.level, 1);
	char path[1100];
	snprintf(path, sizeof(path), "%s/%s", state_dir("keys-a"), THROTTLE_FILE);
	size_t len;
	char *data = test_read_file(path, &len);
	assert_null(memmem(data, len, "alice", 5));
	free(data);
	throttle_close(&a);
	throttle_close(&b);
}

static void test_delay_and_decay(void **state)
{
	(void)state;
	struct throttle t;
	open_table(&t, state_dir("decay"));
	uint64_t k = throttle_key(&t, TK_ACCOUNT, "carol", NULL);
	int64_t now = 1000000000000LL;
	struct throttle_slot s;
	assert_int_equal(throttle_get(&t, k, &s), 0);
	assert_int_equal(throttle_wait(&params, &s, now), 0);   /* no failure: no delay */
	uint64_t waits[5];
	for (int i = 0; i < 5; i++) {
		assert_int_equal(throttle_fail(&t, k, TK_ACCOUNT, now), 0);
		assert_int_equal(throttle_get(&t, k, &s), 0);
		waits[i] = throttle_wait(&params, &s, now);
	}
	/* 1, 2, 4 s, then the cap of 4 s. */
	assert_int_equal(waits[0], 1000);
	assert_int_equal(waits[1], 2000);
	assert_int_equal(waits[2], 4000);
	assert_int_equal(waits[3], 4000);
	assert_int_equal(waits[4], 4000);
	assert_int_equal(throttle_wait(&params, &s, now + 1500), 2500);  /* counted from the failure */
	/* Each 60 s of quiet forgets one failure. */
	assert_int_equal(throttle_level(&params, &s, now), 5);
	assert_int_equal(throttle_level(&params, &s, now + 60000), 4);
	assert_int_equal(throttle_level(&params, &s, now + 3 * 60000 + 1), 2);
	assert_int_equal(throttle_level(&params, &s, now + 5 * 60000), 0);
	/* A failure after decay climbs from the decayed level. */
	assert_int_equal(throttle_fail(&t, k, TK_ACCOUNT, now + 4 * 60000), 0);
	assert_int_equal(throttle_get(&t, k, &s), 0);
	assert_int_equal(s.level, 2);
	/* A clock set back does not shorten anything. */
	assert_int_equal(throttle_wait(&params, &s, now), 2000);
	/* Known sources expire after known_days. */
	uint64_t kn = throttle_key(&t, TK_KNOWN, "carol", "192.0.2.1");
	assert_int_equal(throttle_set(&t, kn, TK_KNOWN, now), 0);
	assert_int_equal(throttle_get(&t, kn, &s), 0);
	assert_true(throttle_known(&params, &s, now + 86400000LL));
	assert_false(throttle_known(&params, &s, now + 2 * 86400000LL));
	throttle_close(&t);
}

static void test_eviction(void **state)
{
	(void)state;
	struct throttle t;
	open_table(&t, state_dir("evict"));
	int64_t now = throttle_now();
	/* Keys that share one probe window: the same value modulo the slot count. */
	uint64_t base = 12345;
	uint64_t strong = base;
	for (int i = 0; i < 5; i++)
		assert_int_equal(throttle_fail(&t, strong, TK_ACCOUNT, now), 0);
	for (uint64_t i = 1; i < THROTTLE_PROBE; i++)
		assert_int_equal(throttle_fail(&t, base + i * THROTTLE_SLOTS, TK_ACCOUNT, now + (int64_t)i), 0);
	/* The window is full: a new key takes the weakest, oldest slot. */
	uint64_t newcomer = base + (uint64_t)THROTTLE_PROBE * THROTTLE_SLOTS;
	assert_int_equal(throttle_fail(&t, newcomer, TK_ACCOUNT, now + 100), 0);
	struct throttle_slot s;
	assert_int_equal(throttle_get(&t, newcomer, &s), 0);
	assert_int_equal(s.level, 1);
	assert_int_equal(throttle_get(&t, strong, &s), 0);
	assert_int_equal(s.level, 5);                               /* the strong one stays */
	assert_int_equal(throttle_get(&t, base + 1 * THROTTLE_SLOTS, &s), 0);
	assert_int_equal(s.key, 0);                                 /* the oldest weak one went */
	assert_int_equal(throttle_get(&t, base + 2 * THROTTLE_SLOTS, &s), 0);
	assert_int_equal(s.level, 1);
	throttle_close(&t);
}

static void test_flood_keeps_size(void **state)
{
	(void)state;
	const char *dir = state_dir("flood");
	struct throttle t;
	open_table(&t, dir);
	assert_int_equal(table_size(dir), expected_size);
	uint64_t victim = throttle_key(&t, TK_ACCOUNT, "victim", NULL);
	int64_t now = throttle_now();
	for (int i = 0; i < 6; i++)
		assert_int_equal(throttle_fail(&t, victim, TK_ACCOUNT, now), 0);
	char name[32];
	for (int i = 0; i < 3 * THROTTLE_SLOTS; i++) {
		snprintf(name, sizeof(name), "guess%d", i);
		assert_int_equal(throttle_fail(&t, throttle_key(&t, TK_ACCOUNT, name, NULL),
					       TK_ACCOUNT, now + 1), 0);
	}
	assert_int_equal(table_size(dir), expected_size);
	struct throttle_slot s;
	assert_int_equal(throttle_get(&t, victim, &s), 0);
	assert_int_equal(s.level, 6);   /* a flood of one-failure names cannot evict it */
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
	uint64_t k = throttle_key(&t, TK_ACCOUNT, "dave", NULL);
	assert_int_equal(throttle_fail(&t, k, TK_ACCOUNT, throttle_now()), 0);
	throttle_close(&t);
	/* A slot with a bad check is not trusted: cleared, logged. */
	uint32_t level = 30;
	uint32_t idx = (uint32_t)(k % THROTTLE_SLOTS);
	corrupt_at(dir, 64 + (off_t)idx * 32 + 20, (const char *)&level, sizeof(level));
	logtext[0] = '\0';
	open_table(&t, dir);
	struct throttle_slot s;
	assert_int_equal(throttle_get(&t, k, &s), 0);
	assert_int_equal(s.key, 0);
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
	struct timespec dl = {0, 0};
	assert_int_equal(throttle_begin(&t, "dave", "10.1.1.1", &dl, &a), 0);
	throttle_end(&t, &a, false);
	log_set_hook(NULL, NULL);
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void in(struct timespec *ts, double secs)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)secs;
	ts->tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void test_lock_between_processes(void **state)
{
	(void)state;
	const char *dir = state_dir("lock");
	struct throttle t;
	open_table(&t, dir);
	uint64_t k = throttle_key(&t, TK_ACCOUNT, "erin", NULL);
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct throttle c;
		struct timespec dl;
		in(&dl, 5);
		if (throttle_open(&c, dir, &params) < 0 || throttle_lock_account(&c, k, &dl) != TL_LOCKED)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		usleep(1200000);
		_exit(0);   /* the lock goes with the process */
	}
	close(p[1]);
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	struct timespec dl;
	double t0 = mono();
	in(&dl, 0.3);
	assert_int_equal(throttle_lock_account(&t, k, &dl), TL_TIMEOUT);   /* bounded wait */
	assert_true(mono() - t0 >= 0.25);
	/* Another account's bucket is free meanwhile. */
	uint64_t other = k + 1;
	in(&dl, 0.1);
	assert_int_equal(throttle_lock_account(&t, other, &dl), TL_LOCKED);
	throttle_unlock_account(&t, other);
	in(&dl, 5);
	assert_int_equal(throttle_lock_account(&t, k, &dl), TL_LOCKED);  /* once the child is gone */
	assert_true(mono() - t0 >= 1.0);
	throttle_unlock_account(&t, k);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	throttle_close(&t);
}

static void test_attempts(void **state)
{
	(void)state;
	struct throttle t;
	const char *dir = state_dir("attempts");
	open_table(&t, dir);
	struct throttle_attempt a;
	struct timespec dl;
	in(&dl, 10);
	/* The owner logs in from a source, which becomes known. */
	assert_int_equal(throttle_begin(&t, "frank", "198.51.100.7", &dl, &a), 0);
	assert_false(a.is_known);
	throttle_end(&t, &a, true);
	/* A guesser fails from elsewhere, twice: the account's delay is 2 s. */
	for (int i = 0; i < 2; i++) {
		char src[32];
		snprintf(src, sizeof(src), "203.0.113.%d", i + 1);
		assert_int_equal(throttle_begin(&t, "frank", src, &dl, &a), 0);
		throttle_end(&t, &a, false);
	}
	/* The owner's known source skips it ... */
	double t0 = mono();
	assert_int_equal(throttle_begin(&t, "frank", "198.51.100.7", &dl, &a), 0);
	assert_true(a.is_known);
	assert_false(a.locked);
	assert_true(mono() - t0 < 0.2);
	throttle_end(&t, &a, true);
	/* ... a new source waits it out, holding the account's lock ... */
	t0 = mono();
	assert_int_equal(throttle_begin(&t, "frank", "203.0.113.99", &dl, &a), 0);
	assert_true(a.locked);
	assert_true(mono() - t0 >= 1.5);
	assert_true(a.delayed >= 1);
	throttle_end(&t, &a, false);
	/* ... and a deadline shorter than the delay: not checked (1). */
	in(&dl, 0.5);
	t0 = mono();
	assert_int_equal(throttle_begin(&t, "frank", "203.0.113.100", &dl, &a), 1);
	assert_false(a.locked);
	assert_true(mono() - t0 < 1.0);
	/* Unknown names are accounted alike, and a session without a source too. */
	in(&dl, 10);
	assert_int_equal(throttle_begin(&t, "no-such-user", NULL, &dl, &a), 0);
	throttle_end(&t, &a, false);
	t0 = mono();
	assert_int_equal(throttle_begin(&t, "no-such-user", NULL, &dl, &a), 0);
	assert_true(mono() - t0 >= 0.8);
	assert_int_equal(a.source, 0);
	throttle_end(&t, &a, false);
	throttle_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vector),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_delay_and_decay),
		cmocka_unit_test(test_eviction),
		cmocka_unit_test(test_flood_keeps_size),
		cmocka_unit_test(test_corrupt_and_truncated),
		cmocka_unit_test(test_lock_between_processes),
		cmocka_unit_test(test_attempts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
