/*
 * The dotlocker (dotlocker.h): one dotlock, MAILBOX.lock, taken and released
 * for the keeper with the group that may create files in the spool.
 */
#define _GNU_SOURCE
#include "dotlocker.h"

#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "limits.h"
#include "lock.h"
#include "log.h"
#include "privsep.h"
#include "sandbox.h"

#define DOTLOCKER_EXIT_REFUSED 1   /* it ended on a request it refused */
#define DOTLOCKER_EXIT_SETUP   2   /* it could not become what it must be */

gid_t dotlocker_group(void)
{
	struct group *g = getgrnam(DOTLOCKER_GROUP);
	return g ? g->gr_gid : (gid_t)-1;
}

/* ---- the protocol ---- */

/* A request it answers now, or false: anything else ends it. */
static bool acceptable(const struct dl_request *rq, ssize_t n, bool holding)
{
	if (n != (ssize_t)sizeof(*rq))
		return false;
	if (rq->op == DL_TAKE)
		return !holding && rq->timeout <= LOCK_TIMEOUT_MAX;
	return rq->op == DL_RELEASE && holding && rq->timeout == 0;
}

static int answer(int fd, int32_t err, bool taken)
{
	struct dl_answer a = {.err = err, .taken = taken};
	ssize_t n;
	while ((n = send(fd, &a, sizeof(a), MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	return n == (ssize_t)sizeof(a) ? 0 : -1;
}

int dotlocker_serve(int fd, const char *mailbox)
{
	struct mail_lock lk;
	memset(&lk, 0, sizeof(lk));
	lk.fd = -1;
	int rc = 0;
	for (;;) {
		struct dl_request rq = {0};
		/* One more octet than a request: a longer message is seen as such, not cut. */
		unsigned char buf[sizeof(rq) + 1];
		ssize_t n;
		while ((n = recv(fd, buf, sizeof(buf), 0)) < 0 && errno == EINTR)
			;
		if (n == 0)
			break;   /* the keeper's end closed */
		if (n > 0)
			memcpy(&rq, buf, (size_t)n < sizeof(rq) ? (size_t)n : sizeof(rq));
		if (n < 0 || !acceptable(&rq, n, lk.dotlock != NULL)) {
			log_msg(LOG_ERR, "dotlocker: refused a request (%zd octets, operation %u) "
				"for %s", n, rq.op, LOG_Q(mailbox));
			rc = -1;
			break;
		}
		char why[MAX_REASON_LEN] = "";
		int32_t err = 0;
		if (rq.op == DL_TAKE && dotlock_take_here(mailbox, rq.timeout, &lk, why, sizeof(why)) < 0)
			err = errno ? errno : EIO;
		else if (rq.op == DL_RELEASE)
			dotlock_release_here(&lk);
		if (answer(fd, err, rq.op == DL_TAKE && lk.dotlock != NULL) < 0)
			break;
	}
	if (lk.dotlock)
		dotlock_release_here(&lk);   /* the keeper went without releasing it */
	return rc;
}

/* ---- the process ---- */

/* close_range(2) of [first, last], or one by one without it. */
static void close_between(unsigned first, unsigned last)
{
	if (first > last || syscall(SYS_close_range, first, last, 0U) == 0)
		return;
	for (unsigned fd = first; fd <= last && fd < MAX_CLOSE_FALLBACK; fd++)
		close((int)fd);
}

/* Close every descriptor but keep and chan (the log channel, or -1). */
static void close_all_but(int keep, int chan)
{
	unsigned lo = (unsigned)(chan >= 0 && chan < keep ? chan : keep);
	unsigned hi = (unsigned)(chan > keep ? chan : keep);
	if (lo > 0)
		close_between(0, lo - 1);
	if (hi > lo + 1)
		close_between(lo + 1, hi - 1);
	close_between(hi + 1, ~0U);
}

/* uid with gid group alone, for good. */
static int become(uid_t uid, gid_t group, char *why, size_t whylen)
{
	if (setgroups(0, NULL) < 0 || setresgid(group, group, group) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		snprintf(why, whylen, "cannot become uid %ju with group %ju: %s", (uintmax_t)uid,
			 (uintmax_t)group, strerror(errno));
		return -1;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != group || getegid() != group ||
	    getgroups(0, NULL) != 0 || (uid != 0 && setuid(0) == 0)) {
		snprintf(why, whylen, "the switch to uid %ju, group %ju did not take effect",
			 (uintmax_t)uid, (uintmax_t)group);
		return -1;
	}
	return 0;
}

static void dotlocker_main(int fd, const char *mailbox, uid_t uid, gid_t group)
{
	char why[MAX_REASON_LEN] = "";
	close_all_but(fd, privsep_log_channel());
	struct sandbox_paths paths = {.mailbox = mailbox, .dotlock_only = true};
	if (become(uid, group, why, sizeof(why)) < 0)
		goto fail;
	privsep_die_with_parent();   /* the switch cleared it */
	if (sandbox_no_privileges(why, sizeof(why)) < 0 ||
	    sandbox_landlock(&paths, why, sizeof(why)) < 0 ||
	    sandbox_seccomp_dotlocker(fd, why, sizeof(why)) < 0)
		goto fail;
	_exit(dotlocker_serve(fd, mailbox) == 0 ? 0 : DOTLOCKER_EXIT_REFUSED);
fail:
	log_msg(LOG_ERR, "dotlocker: %s", why);
	_exit(DOTLOCKER_EXIT_SETUP);
}

int dotlocker_start(const char *mailbox, uid_t uid, gid_t group)
{
	if (uid == 0) {
		errno = EPERM;
		return -1;   /* never a lock as root: there is no dotlocker for root */
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_msg(LOG_ERR, "dotlocker: socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t pid = privsep_fork();
	if (pid == 0) {
		close(sv[0]);
		dotlocker_main(sv[1], mailbox, uid, group);
	}
	close(sv[1]);
	if (pid < 0) {
		log_msg(LOG_ERR, "dotlocker: fork: %s", strerror(errno));
		close(sv[0]);
		return -1;
	}
	lock_use_dotlocker(sv[0], mailbox);
	return 0;
}
