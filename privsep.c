/* The process model: authenticator, greeter and worker, and their messages. */
#define _GNU_SOURCE
#include "privsep.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lock.h"
#include "log.h"
#include "maildir.h"
#include "sandbox.h"

enum { EXIT_OK = 0, EXIT_SESSION = 1, EXIT_CONFIG = 78 };

/* ---- messages ---- */

/* The most each field of each type may carry (PS_UPDATE: checked by the keeper). */
static const struct { size_t max1, max2; bool text1, text2; } field_limits[PS_TYPES] = {
	[PS_LOG]       = {MAX_LOG_LINE, 0, true, false},
	[PS_LOGIN]     = {MAX_SASL_LINE, MAX_SASL_LINE, true, true},
	[PS_FAILED]    = {0, 0, false, false},
	[PS_ANSWER]    = {MAX_REASON_LEN, 0, true, false},
	[PS_HANDOFF]   = {MAX_SASL_LINE, CLIENT_READ_SIZE, true, false},
	[PS_VIOLATION] = {0, 0, false, false},
	[PS_UPDATE]    = {0, 0, false, false},
	[PS_RELEASE]   = {0, 0, false, false},
	[PS_PEER]      = {INET6_ADDRSTRLEN, 0, true, false},
};

int ps_check(const struct ps_packet *p, size_t n, unsigned accept, struct ps_msg *msg,
	     char *why, size_t whylen)
{
	const struct ps_header *h = &p->h;
	if (n < sizeof(*h)) {
		snprintf(why, whylen, "truncated header (%zu octets)", n);
		return -1;
	}
	if (h->type == 0 || h->type >= PS_TYPES || !(accept & PS_ACCEPT(h->type))) {
		snprintf(why, whylen, "unexpected message type %u", h->type);
		return -1;
	}
	if (h->len1 > field_limits[h->type].max1 || h->len2 > field_limits[h->type].max2) {
		snprintf(why, whylen, "oversized fields (%u, %u octets) in a message of type %u",
			 h->len1, h->len2, h->type);
		return -1;
	}
	if (n != sizeof(*h) + h->len1 + h->len2) {
		snprintf(why, whylen, "length %zu does not match its fields (%u + %u)",
			 n, h->len1, h->len2);
		return -1;
	}
	const char *f1 = p->data, *f2 = p->data + h->len1;
	if ((field_limits[h->type].text1 && memchr(f1, '\0', h->len1)) ||
	    (field_limits[h->type].text2 && memchr(f2, '\0', h->len2))) {
		snprintf(why, whylen, "NUL octet in a text field");
		return -1;
	}
	if ((h->type == PS_LOG && h->code > LOG_DEBUG) ||
	    (h->type == PS_ANSWER && h->code > LOGIN_DELAY) ||
	    (h->type == PS_PEER && h->code > 1) ||
	    (h->type == PS_LOGIN && h->code >= LOGIN_METHODS) ||
	    ((h->type == PS_LOGIN || h->type == PS_HANDOFF || h->type == PS_PEER) && h->len1 == 0)) {
		snprintf(why, whylen, "bad code %u or empty user in a message of type %u",
			 h->code, h->type);
		return -1;
	}
	*msg = (struct ps_msg){.type = (enum ps_type)h->type, .code = h->code, .stamp = h->stamp,
			       .f1 = f1, .len1 = h->len1, .f2 = f2, .len2 = h->len2};
	return 0;
}

void ps_field(const char *f, size_t len, char *out, size_t size)
{
	if (len >= size)
		len = size - 1;
	memcpy(out, f, len);
	out[len] = '\0';
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t r = read(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int ps_send(int fd, enum ps_type type, uint32_t code, int64_t stamp,
	    const void *f1, size_t len1, const void *f2, size_t len2)
{
	struct ps_packet p;
	if (len1 + len2 > sizeof(p.data))
		return -1;
	p.h = (struct ps_header){.type = type, .code = code, .stamp = stamp,
				 .len1 = (uint32_t)len1, .len2 = (uint32_t)len2};
	if (len1)
		memcpy(p.data, f1, len1);
	if (len2)
		memcpy(p.data + len1, f2, len2);
	int rc = write_all(fd, &p, sizeof(p.h) + len1 + len2);
	explicit_bzero(p.data, len1 + len2);   /* it may have carried a password */
	return rc;
}

ssize_t ps_recv(int fd, struct ps_packet *p)
{
	/* MSG_TRUNC: the real length of a packet larger than ours, so it is refused, not cut. */
	for (;;) {
		ssize_t n = recv(fd, p, sizeof(*p), MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static int send_text(int fd, enum ps_type type, uint32_t code, const char *text)
{
	return ps_send(fd, type, code, 0, text, strlen(text), NULL, 0);
}

/* ---- logging through the authenticator ---- */

static void forward_log(int priority, const char *msg, void *ctx)
{
	send_text(*(const int *)ctx, PS_LOG, (uint32_t)priority, msg);
}

static int log_chan = -1;   /* the hook's context: this process's channel, set once */

void privsep_forward_logs(int chan)
{
	log_chan = chan;
	log_close();   /* the inherited syslog socket or log file is the authenticator's */
	log_set_hook(forward_log, &log_chan);
}

int privsep_log_channel(void)
{
	return log_chan;
}

/* ---- the greeter's side ---- */

/* One answer from the authenticator; -1 when the channel failed. */
static int await_answer(int chan, struct ps_msg *msg, struct ps_packet *p)
{
	char why[MAX_REASON_LEN];
	ssize_t n = ps_recv(chan, p);
	if (n <= 0 || ps_check(p, (size_t)n, PS_ACCEPT(PS_ANSWER), msg, why, sizeof(why)) < 0)
		return -1;
	return 0;
}

enum login_result privsep_login(int chan, const char *user, const char *password,
				enum login_method method, char *why, size_t whylen)
{
	struct ps_packet p;
	struct ps_msg msg;
	size_t plen = strlen(password);
	int rc = ps_send(chan, PS_LOGIN, method, 0, user, strlen(user), password, plen);
	if (rc == 0)
		rc = await_answer(chan, &msg, &p);
	if (rc < 0) {
		snprintf(why, whylen, "authentication is temporarily unavailable");
		return LOGIN_SYS_TEMP;
	}
	ps_field(msg.f1, msg.len1, why, whylen);
	return (enum login_result)msg.code;
}

void privsep_login_failed(int chan)
{
	struct ps_packet p;
	struct ps_msg msg;
	if (ps_send(chan, PS_FAILED, 0, 0, NULL, 0, NULL, 0) == 0)
		await_answer(chan, &msg, &p);   /* after the delay; a lost channel ends the session anyway */
}

int privsep_proxied_peer(int chan, const char *addr, bool tls)
{
	return send_text(chan, PS_PEER, tls ? 1 : 0, addr);
}

int privsep_handoff(int chan, const struct session *s, const char *pending, size_t len)
{
	return ps_send(chan, PS_HANDOFF, s->bad_commands, (int64_t)s->started,
		       s->user, strlen(s->user), pending, len);
}

/* ---- the session process's side of the keeper ---- */

enum mbox_status privsep_update(int keeper, struct mbox *mb, char *why, size_t whylen)
{
	size_t count = mbox_count(mb), bytes = (count + 7) / 8;
	unsigned char *map = calloc(1, bytes ? bytes : 1);
	if (!map) {
		snprintf(why, whylen, "out of memory");
		return MBOX_TEMP;
	}
	for (size_t i = 0; i < count; i++)
		if (mbox_msg(mb, i + 1)->deleted)
			map[i / 8] |= (unsigned char)(1u << (i % 8));
	struct ps_header h = {.type = PS_UPDATE, .code = (uint32_t)count, .len1 = (uint32_t)bytes};
	struct ps_packet p;
	int rc = write_all(keeper, &h, sizeof(h));
	if (rc == 0)
		rc = write_all(keeper, map, bytes);
	free(map);
	if (rc == 0)
		rc = read_full(keeper, &p.h, sizeof(p.h));
	if (rc == 0 && (p.h.type != PS_ANSWER || p.h.len1 >= whylen || p.h.len2 != 0))
		rc = -1;
	if (rc == 0)
		rc = read_full(keeper, why, p.h.len1);
	if (rc < 0) {
		/* The keeper died in the middle of the update: nothing may be said of it. */
		log_msg(LOG_ERR, "the maildrop keeper was lost during the update");
		_exit(EXIT_SESSION);
	}
	why[p.h.len1] = '\0';
	return p.h.code <= MBOX_PERM ? (enum mbox_status)p.h.code : MBOX_TEMP;
}

/* The answer to PS_OPEN_MSG: its header carries the descriptor, if any. */
static int recv_with_fd(int sock, struct ps_header *h, int *fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = h, .iov_len = sizeof(*h)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
	*fd = -1;
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(fd, CMSG_DATA(c), sizeof(int));
	/* The rest of the header, if the stream gave only part of it. */
	if ((size_t)n < sizeof(*h) && read_full(sock, (char *)h + n, sizeof(*h) - (size_t)n) < 0) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -1;
	}
	return 0;
}

int privsep_open_msg(int keeper, size_t n, char *why, size_t whylen)
{
	struct ps_header h = {.type = PS_OPEN_MSG, .code = (uint32_t)n};
	int fd = -1;
	if (n > UINT32_MAX) {
		snprintf(why, whylen, "no such message");
		return -1;
	}
	if (write_all(keeper, &h, sizeof(h)) < 0 ||
	    recv_with_fd(keeper, &h, &fd) < 0 || h.type != PS_ANSWER || h.len1 >= whylen ||
	    h.len2 != 0 || read_full(keeper, why, h.len1) < 0) {
		log_msg(LOG_ERR, "the maildrop keeper was lost while opening a message");
		_exit(EXIT_SESSION);
	}
	why[h.len1] = '\0';
	if (h.code != 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int open_msg_through_keeper(void *ctx, const struct mbox *mb, size_t n, char *why,
				   size_t whylen)
{
	(void)mb;
	return privsep_open_msg((int)(intptr_t)ctx, n, why, whylen);
}

/* PS_OPEN_MSG in the keeper: message n of its own list, opened by maildir.c, sent back. */
static int answer_open_msg(int sock, const struct mbox *mb, uint32_t n)
{
	char why[MAX_REASON_LEN] = "";
	int fd = -1;
	if (!mb->maildir || n == 0 || n > mbox_count(mb))
		snprintf(why, sizeof(why), "no such message");
	else
		fd = maildir_open_msg(mb, n, why, sizeof(why));
	struct ps_header a = {.type = PS_ANSWER, .code = fd < 0, .len1 = (uint32_t)strlen(why)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = &a, .iov_len = sizeof(a)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t sent;
	do
		sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (fd >= 0)
		close(fd);
	if (sent < 0)
		return -1;
	/* The descriptor went with the first octet; the rest of the header may follow. */
	if ((size_t)sent < sizeof(a) && write_all(sock, (char *)&a + sent, sizeof(a) - (size_t)sent) < 0)
		return -1;
	return write_all(sock, why, a.len1);
}

void privsep_release(int keeper)
{
	struct ps_header h = {.type = PS_RELEASE};
	if (write_all(keeper, &h, sizeof(h)) == 0)
		read_full(keeper, &h, sizeof(h));   /* the keeper has closed the mailbox */
}

/* ---- one unit: no process of a session outlives the one that forked it ---- */

static pid_t parent;   /* in a child: its parent, as recorded before the fork */

static bool parent_alive(void)
{
	return getppid() == parent;
}

void privsep_die_with_parent(void)
{
	/* SIGKILL: nothing of the child runs once its parent has gone, not even a handler. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(EXIT_SESSION);
	if (!parent_alive())
		_exit(EXIT_SESSION);   /* the parent died before prctl took effect */
}

/* fork(2), the child bound to the parent's life (privsep.h: set again after a drop). */
static pid_t fork_bound(void)
{
	pid_t self = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		parent = self;
		privsep_die_with_parent();
	}
	return pid;
}

pid_t privsep_fork(void)
{
	return fork_bound();
}

/* ---- children and their ends ---- */

/* How a child ended, in the log; its exit status, or EXIT_SESSION after a signal. */
static int reap_status(pid_t pid, const char *role, bool violation_logged, int *signo)
{
	int st;
	*signo = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return EXIT_SESSION;
	*signo = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_SANDBOX) {
		if (!violation_logged)   /* its report was lost: say what we know */
			log_msg(LOG_CRIT, "sandbox violation: the %s (pid %ld) was stopped by its "
				"sandbox", role, (long)pid);
		return EXIT_SESSION;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WTERMSIG(st) == SIGSYS)
		log_msg(LOG_CRIT, "sandbox violation: the %s (pid %ld) was killed by seccomp",
			role, (long)pid);
	else if (!violation_logged)
		log_msg(LOG_ERR, "the %s (pid %ld) was killed by signal %d", role, (long)pid,
			WTERMSIG(st));
	return EXIT_SESSION;
}

static int reap(pid_t pid, const char *role, bool violation_logged)
{
	int signo;
	return reap_status(pid, role, violation_logged, &signo);
}

static void log_violation(const char *role, pid_t pid, uint32_t nr)
{
	char name[64];
	sandbox_syscall_name((int)nr, name, sizeof(name));
	log_msg(LOG_CRIT, "sandbox violation: the %s (pid %ld) made the forbidden system call "
		"%u (%s) and was stopped", role, (long)pid, nr, name);
}

/*
 * A log line from a child: its own text, sanitized again by log_msg, after
 * the child's role. No relayed line can pass for one of ours: the lines
 * fail2ban counts start right after "pop3d[PID]: ", a relayed one never does.
 */
static void relay_log(const struct ps_msg *msg, const char *role)
{
	char line[MAX_LOG_LINE + 1];
	ps_field(msg->f1, msg->len1, line, sizeof(line));
	log_msg((int)msg->code, "%s: %s", role, line);
}

/* ---- the greeter ---- */

static int become_preauth(const struct privsep_config *cfg, char *why, size_t whylen)
{
	if (!cfg->root)
		return 0;   /* an ordinary user: nothing to chroot or setuid to */
	if (chroot(cfg->empty_dir) < 0 || chdir("/") < 0) {
		snprintf(why, whylen, "chroot %s: %s", cfg->empty_dir, strerror(errno));
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(cfg->preauth_gid) < 0 || setuid(cfg->preauth_uid) < 0) {
		snprintf(why, whylen, "dropping to the pre-login account: %s", strerror(errno));
		return -1;
	}
	if (getuid() != cfg->preauth_uid || geteuid() != cfg->preauth_uid ||
	    getgid() != cfg->preauth_gid || getegid() != cfg->preauth_gid ||
	    getgroups(0, NULL) != 0 || setuid(0) == 0) {
		snprintf(why, whylen, "the drop to the pre-login account did not take effect");
		return -1;
	}
	return 0;
}

static int greeter_main(const struct privsep_config *cfg, const struct privsep_roles *roles,
			int chan)
{
	char why[MAX_REASON_LEN] = "";
	privsep_forward_logs(chan);
	if (become_preauth(cfg, why, sizeof(why)) < 0 ||
	    sandbox_no_privileges(why, sizeof(why)) < 0) {
		log_msg(LOG_ERR, "%s", why);   /* relayed as "greeter: ..." */
		return EXIT_CONFIG;
	}
	privsep_die_with_parent();   /* the drop cleared it; the allowlist has no prctl */
	sandbox_report_to(chan);
	if (sandbox_seccomp_greeter(STDIN_FILENO, STDOUT_FILENO, chan, why, sizeof(why)) < 0) {
		log_msg(LOG_ERR, "%s", why);
		return EXIT_CONFIG;
	}
	return roles->greet(roles->ctx, chan);
}

/* ---- the worker: keeper and session ---- */

/* Deletion requests from the session process until it lets go of the maildrop. */
static void keep_maildrop(const struct privsep_roles *roles, struct mbox *mb, int fd)
{
	struct ps_header h;
	while (mb && read_full(fd, &h, sizeof(h)) == 0) {
		char why[MAX_REASON_LEN] = "";
		uint32_t code = 0;
		if (h.type == PS_RELEASE && h.len1 == 0 && h.len2 == 0) {
			mbox_close(mb);
			mb = NULL;
		} else if (h.type == PS_OPEN_MSG && h.len1 == 0 && h.len2 == 0) {
			if (answer_open_msg(fd, mb, h.code) < 0)
				break;
			continue;
		} else if (h.type == PS_UPDATE && h.code == mbox_count(mb) &&
			   h.len1 == (h.code + 7u) / 8 && h.len2 == 0) {
			unsigned char *map = malloc(h.len1 ? h.len1 : 1);
			/* Its death kills us, but it may be dying now: a session that was
			 * killed applies no deletion. */
			if (!map || read_full(fd, map, h.len1) < 0 || !parent_alive()) {
				free(map);
				break;
			}
			for (size_t i = 0; i < h.code; i++)
				mbox_msg(mb, i + 1)->deleted = (map[i / 8] >> (i % 8)) & 1;
			free(map);
			code = roles->update(roles->ctx, mb, why, sizeof(why));
		} else {
			log_msg(LOG_ERR, "keeper: malformed request (type %u) from the session process",
				h.type);
			break;
		}
		struct ps_header a = {.type = PS_ANSWER, .code = code, .len1 = (uint32_t)strlen(why)};
		if (write_all(fd, &a, sizeof(a)) < 0 || write_all(fd, why, a.len1) < 0)
			break;
	}
	if (mb)
		mbox_close(mb);   /* no QUIT: nothing is deleted */
}

/*
 * The session process's view of a Maildir: message files come from the
 * keeper, over the channel; the Maildir's own descriptor is not kept.
 */
static void session_takes_maildir(struct maildir *md, int keeper)
{
	md->open_msg = open_msg_through_keeper;
	md->open_ctx = (void *)(intptr_t)keeper;
	if (md->dirfd >= 0)
		close(md->dirfd);
	md->dirfd = -1;
}

static int session_main(const struct privsep_roles *roles, struct mbox *mb,
			const struct handoff *ho, int keeper)
{
	char why[MAX_REASON_LEN];
	/* Reads the client: may open no path at all. The keeper logged a missing Landlock. */
	if (sandbox_landlock(NULL, why, sizeof(why)) < 0 ||
	    sandbox_seccomp_session(why, sizeof(why)) < 0) {
		log_msg(LOG_ERR, "session: %s", why);
		return EXIT_CONFIG;
	}
	return roles->transact(roles->ctx, mb, ho, keeper);
}

/* The relayed handoff, checked again: the keeper trusts no channel blindly. */
static int await_handoff(int chan, struct handoff *ho)
{
	struct ps_packet p;
	struct ps_msg msg;
	char why[MAX_REASON_LEN];
	ssize_t n;
	do
		n = ps_recv(chan, &p);
	while (n < 0 && errno == EINTR);
	if (n <= 0 || ps_check(&p, (size_t)n, PS_ACCEPT(PS_HANDOFF), &msg, why, sizeof(why)) < 0)
		return -1;
	ps_field(msg.f1, msg.len1, ho->user, sizeof(ho->user));
	ho->bad_commands = msg.code;
	ho->started = (time_t)msg.stamp;
	ho->pending_len = msg.len2;
	memcpy(ho->pending, msg.f2, msg.len2);
	return 0;
}

static int keeper_main(const struct privsep_roles *roles, const struct account *acct, int chan)
{
	char why[MAX_REASON_LEN] = "";
	struct mbox *mb = NULL;
	privsep_forward_logs(chan);
	sandbox_report_to(chan);   /* the keeper's and the session process's violations */
	int sv[2];   /* made before the sandbox, which allows no new socket pair */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_msg(LOG_ERR, "keeper: socketpair: %s", strerror(errno));
		send_text(chan, PS_ANSWER, LOGIN_SYS_TEMP, "mailbox is temporarily unavailable");
		return EXIT_SESSION;
	}
	enum login_result lr = roles->take_maildrop(roles->ctx, acct, &mb, why, sizeof(why));
	if (send_text(chan, PS_ANSWER, lr, why) < 0 || lr != LOGIN_OK) {
		mbox_close(mb);
		return EXIT_OK;
	}
	struct handoff *ho = calloc(1, sizeof(*ho));
	if (!ho || await_handoff(chan, ho) < 0 || strcmp(ho->user, acct->name) != 0) {
		/* A handoff for another name than the one authenticated: a greeter that lies. */
		if (ho && ho->user[0])
			log_msg(LOG_ERR, "keeper: refused a handoff for %s (authenticated: %s)",
				LOG_Q(ho->user), LOG_Q(acct->name));
		mbox_close(mb);
		free(ho);
		return EXIT_SESSION;
	}
	pid_t pid = fork_bound();
	if (pid == 0) {
		close(sv[0]);
		lock_forget_dotlocker();   /* only the keeper may ask for the dotlock */
		if (mb && mb->maildir)
			session_takes_maildir(mb->maildir, sv[1]);
		_exit(session_main(roles, mb, ho, sv[1]));
	}
	free(ho);
	close(sv[1]);
	if (pid < 0) {
		log_msg(LOG_ERR, "keeper: fork: %s", strerror(errno));
		mbox_close(mb);
		return EXIT_SESSION;
	}
	keep_maildrop(roles, mb, sv[0]);
	close(sv[0]);
	return reap(pid, "session process", true);
}

/* ---- the authenticator ---- */

struct monitor {
	const struct privsep_config *cfg;
	const struct privsep_roles *roles;
	int greeter_chan;
	pid_t greeter;
	int worker_chan;          /* -1 until a worker holds the maildrop */
	pid_t worker;
	unsigned failures;        /* failed logins so far, counted here, not by the greeter */
	bool owes_delay;          /* a failure was answered; PS_FAILED must come before a new PS_LOGIN */
	bool violation;           /* a child's sandbox stopped it (logged) */
	bool spoken;              /* the greeter has sent a message: too late for PS_PEER */
	bool state_broken;        /* the state directory was unusable (logged once) */
};

/*
 * Sleep secs, or less if the client hangs up meanwhile (true): a client gone
 * leaves no process waiting. The client is stdout: a pipe whose reader went
 * (POLLERR), or a socket the client closed (POLLRDHUP, POLLHUP).
 */
static bool client_left_during(unsigned secs)
{
	struct stat st;
	bool sock = fstat(STDOUT_FILENO, &st) == 0 && S_ISSOCK(st.st_mode);
	struct pollfd pfd = {.fd = STDOUT_FILENO, .events = sock ? POLLRDHUP : 0};
	struct timespec wait = {.tv_sec = (time_t)secs, .tv_nsec = 0};
	int n;
	/* Only hang-ups and errors can wake it: no event that wants reading or writing.
	 * ppoll, not poll: tests/security/login_delay.py tells this wait from the greeter's. */
	while ((n = ppoll(&pfd, 1, &wait, NULL)) < 0 && errno == EINTR)
		;
	return n > 0 && (pfd.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL));
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * At the handoff the client becomes the session process's alone: our stdin
 * and stdout, and stderr when it is the client too and not the log (inetd),
 * become /dev/null, so that their numbers are not reused.
 */
static void let_go_of_client(bool log_on_stderr)
{
	bool err_is_client = !log_on_stderr && (same_file(STDERR_FILENO, STDIN_FILENO) ||
						same_file(STDERR_FILENO, STDOUT_FILENO));
	int last = err_is_client ? STDERR_FILENO : STDOUT_FILENO;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		log_msg(LOG_ERR, "cannot open /dev/null (%s): closing the client's descriptors",
			strerror(errno));
	for (int fd = STDIN_FILENO; fd <= last; fd++) {
		int rc;
		if (null < 0)
			rc = close(fd) < 0 && errno != EINTR ? -1 : 0;   /* closed even on EINTR */
		else
			while ((rc = dup2(null, fd)) < 0 && errno == EINTR)
				;
		if (rc < 0)
			log_msg(LOG_ERR, "letting go of the client's descriptor %d: %s", fd,
				strerror(errno));
	}
	if (null > last)
		close(null);
}

/* Log lines and violations from the worker until its answer (or its end). */
static int worker_answer(struct monitor *m, int chan, struct ps_msg *msg, struct ps_packet *p)
{
	char why[MAX_REASON_LEN];
	for (;;) {
		ssize_t n = ps_recv(chan, p);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		unsigned accept = PS_ACCEPT(PS_LOG) | PS_ACCEPT(PS_VIOLATION) | PS_ACCEPT(PS_ANSWER);
		if (ps_check(p, (size_t)n, accept, msg, why, sizeof(why)) < 0) {
			log_msg(LOG_ERR, "malformed message from the worker: %s", why);
			return -1;
		}
		if (msg->type == PS_ANSWER)
			return 0;
		if (msg->type == PS_LOG) {
			relay_log(msg, "worker");
			continue;
		}
		log_violation("worker", m->worker, msg->code);
		m->violation = true;
		return -1;
	}
}

/* Fork the worker for acct; it answers whether it took the maildrop. */
static enum login_result start_worker(struct monitor *m, const struct account *acct,
				      char *why, size_t whylen)
{
	int sv[2];
	snprintf(why, whylen, "mailbox is temporarily unavailable; try again later");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_msg(LOG_ERR, "socketpair: %s", strerror(errno));
		return LOGIN_SYS_TEMP;
	}
	pid_t pid = fork_bound();
	if (pid == 0) {
		close(sv[0]);
		close(m->greeter_chan);
		_exit(keeper_main(m->roles, acct, sv[1]));
	}
	close(sv[1]);
	if (pid < 0) {
		log_msg(LOG_ERR, "fork: %s", strerror(errno));
		close(sv[0]);
		return LOGIN_SYS_TEMP;
	}
	m->worker = pid;
	struct ps_packet p;
	struct ps_msg msg;
	if (worker_answer(m, sv[0], &msg, &p) < 0 || msg.code == LOGIN_HANDOFF) {
		close(sv[0]);
		kill(pid, SIGKILL);
		reap(pid, "worker", m->violation);
		return LOGIN_SYS_TEMP;
	}
	enum login_result lr = (enum login_result)msg.code;
	ps_field(msg.f1, msg.len1, why, whylen);
	if (lr != LOGIN_OK) {
		close(sv[0]);
		reap(pid, "worker", m->violation);
		return lr;
	}
	m->worker_chan = sv[0];
	return LOGIN_OK;
}

static int answer(int chan, enum login_result r, const char *why)
{
	return send_text(chan, PS_ANSWER, r, why);
}

/*
 * Cross-session accounting before the check (throttle.h): the table is
 * opened for the attempt and closed after it, so no child inherits it.
 * 0: check now; 1: refused without a check, why says how long to wait.
 */
static int throttle_before(struct monitor *m, struct throttle *t, const char *user,
			   struct throttle_attempt *a, char *why, size_t whylen)
{
	memset(a, 0, sizeof(*a));
	t->fd = -1;
	if (m->state_broken || !m->cfg->state_dir)
		return 0;
	if (throttle_open(t, m->cfg->state_dir, &m->cfg->throttle) < 0) {
		m->state_broken = true;
		return 0;
	}
	if (throttle_begin(t, user, m->cfg->source, a) == 0)
		return 0;
	log_msg(LOG_NOTICE, "authentication throttled: user=%s peer=%s wait=%us",
		LOG_Q(user), m->cfg->peer, a->wait);
	snprintf(why, whylen, "too many failed logins; try again in %u seconds", a->wait);
	throttle_close(t);
	return 1;
}

static void throttle_after(struct throttle *t, struct throttle_attempt *a, bool success)
{
	throttle_end(t, a, success);
	throttle_close(t);
}

/* A login_method as the failed-login line names it (ps_check checked the range). */
static const char *login_method_name(uint32_t method)
{
	static const char *const names[LOGIN_METHODS] = {[METHOD_USER] = "USER",
							 [METHOD_PLAIN] = "PLAIN",
							 [METHOD_LOGIN] = "LOGIN"};
	return method < LOGIN_METHODS ? names[method] : "?";
}

static void check_credentials(struct monitor *m, const struct ps_msg *msg)
{
	struct auth_clock started;
	auth_check_begin(&started);   /* a failure's answer time counts from here (auth.h) */
	char user[MAX_SASL_LINE + 1], password[MAX_SASL_LINE + 1], why[MAX_REASON_LEN] = "";
	ps_field(msg->f1, msg->len1, user, sizeof(user));
	ps_field(msg->f2, msg->len2, password, sizeof(password));
	struct throttle t;
	struct throttle_attempt ta;
	if (throttle_before(m, &t, user, &ta, why, sizeof(why)) == 1) {
		/* Not checked: told at once to come back later, never [AUTH] (a client would ask
		 * its user for a new password), and not a failed login of this session. */
		explicit_bzero(password, sizeof(password));
		answer(m->greeter_chan, LOGIN_DELAY, why);
		return;
	}
	struct account acct;
	enum auth_result ar = m->roles->authenticate(m->roles->ctx, user, password, &acct);
	explicit_bzero(password, sizeof(password));
	if (ar == AUTH_ERROR)
		throttle_close(&t);   /* no guess was checked; closing drops the account's lock */
	else
		throttle_after(&t, &ta, ar == AUTH_OK);
	if (ar == AUTH_FAIL) {
		/* The line fail2ban counts: from what we know, never from a child's text. */
		log_msg(LOG_NOTICE, "authentication failed: user=%s peer=%s method=%s",
			LOG_Q(user), m->cfg->peer, login_method_name(msg->code));
		auth_fail_floor(&started);
		m->owes_delay = true;
		answer(m->greeter_chan, LOGIN_FAILED, "");
		return;
	}
	if (ar == AUTH_ERROR) {
		answer(m->greeter_chan, LOGIN_SYS_TEMP, "authentication is temporarily unavailable");
		return;
	}
	enum login_result lr = start_worker(m, &acct, why, sizeof(why));
	explicit_bzero(&acct, sizeof(acct));
	answer(m->greeter_chan, lr, why);
}

/*
 * The growing delay, enforced here: a greeter cannot guess faster by skipping
 * it. false when the client hung up meanwhile: the session is over.
 */
static bool delay_failure(struct monitor *m)
{
	m->failures++;
	m->owes_delay = false;
	unsigned delay = m->cfg->login_delay * m->failures;
	if (client_left_during(delay < MAX_LOGIN_DELAY ? delay : MAX_LOGIN_DELAY)) {
		log_msg(LOG_INFO, "client left during the delay after a failed login: peer=%s",
			m->cfg->peer);
		return false;
	}
	answer(m->greeter_chan, LOGIN_OK, "");
	return true;
}

static unsigned greeter_may_send(const struct monitor *m)
{
	unsigned accept = PS_ACCEPT(PS_LOG) | PS_ACCEPT(PS_VIOLATION);
	if (m->cfg->expect_proxy && !m->spoken)
		accept |= PS_ACCEPT(PS_PEER);
	if (m->worker_chan >= 0)
		return accept | PS_ACCEPT(PS_HANDOFF);
	accept |= PS_ACCEPT(PS_FAILED);
	if (!m->owes_delay && m->failures < m->cfg->max_failed_logins)
		accept |= PS_ACCEPT(PS_LOGIN);
	return accept;
}

/* The greeter's messages until it ends or hands the session over (1). */
static int serve_greeter(struct monitor *m)
{
	struct ps_packet p;
	struct ps_msg msg;
	char why[MAX_REASON_LEN];
	for (;;) {
		ssize_t n = ps_recv(m->greeter_chan, &p);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;   /* the greeter is gone */
		if (ps_check(&p, (size_t)n, greeter_may_send(m), &msg, why, sizeof(why)) < 0) {
			log_msg(LOG_ERR, "refused a malformed message from the greeter (pid %ld): %s",
				(long)m->greeter, why);
			kill(m->greeter, SIGKILL);
			explicit_bzero(&p, sizeof(p));
			return -1;
		}
		if (msg.type != PS_VIOLATION)
			m->spoken = true;
		switch (msg.type) {
		case PS_LOG:
			relay_log(&msg, "greeter");
			break;
		case PS_PEER: {
			char addr[INET6_ADDRSTRLEN + 1];
			ps_field(msg.f1, msg.len1, addr, sizeof(addr));
			if (m->roles->set_peer(m->roles->ctx, addr, msg.code == 1) < 0) {
				log_msg(LOG_ERR, "refused the client address the greeter (pid %ld) "
					"read from the PROXY header", (long)m->greeter);
				kill(m->greeter, SIGKILL);
				return -1;
			}
			break;
		}
		case PS_VIOLATION:
			log_violation("greeter", m->greeter, msg.code);
			m->violation = true;
			kill(m->greeter, SIGKILL);
			return -1;
		case PS_LOGIN:
			check_credentials(m, &msg);
			explicit_bzero(&p, sizeof(p));
			break;
		case PS_FAILED:
			if (!delay_failure(m))
				return 0;   /* closing the channel ends the greeter */
			break;
		case PS_HANDOFF:   /* checked: relayed as it came */
			let_go_of_client(m->cfg->log_on_stderr);
			if (write_all(m->worker_chan, &p, (size_t)n) < 0)
				return -1;
			return 1;
		default:
			return -1;
		}
	}
}

/* Log lines of the worker until it ends. */
static void serve_worker(struct monitor *m)
{
	struct ps_packet p;
	struct ps_msg msg;
	char why[MAX_REASON_LEN];
	for (;;) {
		ssize_t n = ps_recv(m->worker_chan, &p);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		unsigned accept = PS_ACCEPT(PS_LOG) | PS_ACCEPT(PS_VIOLATION);
		if (ps_check(&p, (size_t)n, accept, &msg, why, sizeof(why)) < 0) {
			log_msg(LOG_ERR, "refused a malformed message from the worker: %s", why);
			continue;
		}
		if (msg.type == PS_LOG) {
			relay_log(&msg, "worker");
		} else {
			log_violation("session process", m->worker, msg.code);
			m->violation = true;
		}
	}
}

int privsep_run(const struct privsep_config *cfg, const struct privsep_roles *roles)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_msg(LOG_ERR, "socketpair: %s", strerror(errno));
		return EXIT_CONFIG;
	}
	pid_t pid = fork_bound();
	if (pid == 0) {
		close(sv[0]);
		_exit(greeter_main(cfg, roles, sv[1]));
	}
	close(sv[1]);
	if (pid < 0) {
		log_msg(LOG_ERR, "fork: %s", strerror(errno));
		return EXIT_CONFIG;
	}
	struct monitor m = {.cfg = cfg, .roles = roles, .greeter_chan = sv[0], .greeter = pid,
			    .worker_chan = -1};
	int handed = serve_greeter(&m);
	close(m.greeter_chan);
	int status = reap(m.greeter, "greeter", m.violation);
	if (handed <= 0) {
		if (m.worker_chan >= 0) {   /* the greeter died between the answer and the handoff */
			close(m.worker_chan);
			reap(m.worker, "worker", m.violation);
		}
		return handed < 0 ? EXIT_SESSION : status;
	}
	serve_worker(&m);
	close(m.worker_chan);
	int signo;
	status = reap_status(m.worker, "worker", m.violation, &signo);
	if (signo && signo != SIGSYS && !m.violation) {
		/* A worker that crashed (a kill, the OOM killer) is a session that crashed: say so
		 * to the front end as a process that ran alone would. */
		signal(signo, SIG_DFL);
		raise(signo);
	}
	return m.violation ? EXIT_SESSION : status;
}
