/*
 * The process model: one session, three roles, each a process with the
 * least it needs (sandbox.h lists their rights).
 *
 *   front end ──stdin/stdout──┐
 *                             │
 *   authenticator (as started: root under inetd)   verifies passwords, logs
 *     │  fixed-format messages over a socketpair    every child's lines, each
 *     │                                             marked with the child's role
 *     ├─ greeter   (--preauth-user, chroot, seccomp allowlist)
 *     │              greeting, CAPA, USER, PASS, AUTH, QUIT before login
 *     └─ worker: keeper  (the account, Landlock: the mailbox's directory)
 *                  │      takes the maildrop, applies deletions at QUIT
 *                  ├─ dotlocker  (Debian's spool only: the account with group mail,
 *                  │              MAILBOX.lock and nothing else; dotlocker.h)
 *                  └─ session  (the account, Landlock: no path at all)
 *                           the TRANSACTION state, from the greeter's handoff
 *
 * The greeter sends each credential attempt (PS_LOGIN) and waits; the
 * authenticator answers PS_ANSWER with a login_result. On success it has
 * already started the worker, whose keeper took the maildrop; the greeter
 * then sends PS_HANDOFF (the user name, the counters, every client octet it
 * had read past the login line), the authenticator relays it, and the
 * session process answers the login line and goes on from there.
 */
#ifndef POP3D_PRIVSEP_H
#define POP3D_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "auth.h"
#include "limits.h"
#include "mbox.h"
#include "session.h"
#include "throttle.h"

enum ps_type {
	PS_LOG = 1,     /* any child → authenticator: code priority, field 1 the line */
	PS_LOGIN,       /* greeter → authenticator: code the login_method, field 1 user,
			   field 2 password */
	PS_FAILED,      /* greeter → authenticator: a failed login; answered after the delay */
	PS_ANSWER,      /* code a login_result or mbox_status, field 1 a reason for the client */
	PS_HANDOFF,     /* greeter → (authenticator) → keeper: code bad commands, stamp
			   session start, field 1 user, field 2 unread client octets */
	PS_VIOLATION,   /* a sandboxed child's trapped system call: code its number */
	PS_UPDATE,      /* session → keeper: code message count, field 1 the deletion bitmap */
	PS_RELEASE,     /* session → keeper: give the maildrop up (before the QUIT answer) */
	PS_PEER,        /* greeter → authenticator, first if at all: the client's address from a
			   trusted PROXY header (field 1), code 1 when it came over TLS */
	PS_OPEN_MSG,    /* session → keeper: open Maildir message number code; answered
			   PS_ANSWER code 0 with the descriptor (SCM_RIGHTS), else 1 and a reason */
	PS_TYPES
};

/* Every message: this header, then field 1, then field 2 (no terminators). */
struct ps_header {
	uint32_t type;
	uint32_t code;
	int64_t stamp;
	uint32_t len1;
	uint32_t len2;
};

/* The largest message on a packet channel (PS_UPDATE goes over a stream). */
#define PS_MAX_PACKET (sizeof(struct ps_header) + MAX_SASL_LINE + 1 + CLIENT_READ_SIZE)

struct ps_packet {
	struct ps_header h;
	char data[PS_MAX_PACKET - sizeof(struct ps_header)];
};

/* A message that passed ps_check(): fields point into the packet. */
struct ps_msg {
	enum ps_type type;
	uint32_t code;
	int64_t stamp;
	const char *f1;
	size_t len1;
	const char *f2;
	size_t len2;
};

#define PS_ACCEPT(t) (1u << (t))

/*
 * Check a received packet of n octets: a known type that the receiver
 * accepts now (mask of PS_ACCEPT bits), lengths that add up to n and stay
 * within the type's limits, no NUL in a text field, a code in range.
 * 0 and *msg, or -1 with why.
 */
int ps_check(const struct ps_packet *p, size_t n, unsigned accept, struct ps_msg *msg,
	     char *why, size_t whylen);

/* A field as a C string into out (size > len, checked by ps_check's limits). */
void ps_field(const char *f, size_t len, char *out, size_t size);

/* One message in one write (a packet on SOCK_SEQPACKET). 0, or -1. */
int ps_send(int fd, enum ps_type type, uint32_t code, int64_t stamp,
	    const void *f1, size_t len1, const void *f2, size_t len2);

/* One packet: its length, 0 at EOF, -1 on error. */
ssize_t ps_recv(int fd, struct ps_packet *p);

/* ---- The process model ---- */

/* What the greeter hands the worker. */
struct handoff {
	char user[MAX_SASL_LINE + 1];
	unsigned bad_commands;
	time_t started;
	size_t pending_len;
	char pending[CLIENT_READ_SIZE];   /* client octets read past the login line */
};

struct privsep_config {
	bool root;                 /* started as root: the greeter drops to preauth_* */
	uid_t preauth_uid;
	gid_t preauth_gid;
	const char *empty_dir;     /* the greeter's root directory, as root */
	bool strict;               /* --sandbox=strict: refuse where a layer is missing */
	unsigned login_delay;      /* seconds per failed login so far */
	unsigned max_failed_logins;
	bool expect_proxy;         /* the greeter may report the client's address once, first */
	const char *state_dir;     /* --state-dir: failed-login accounting across sessions */
	struct throttle_params throttle;
	const char *source;        /* the peer address, NULL when unknown ("local") */
	const char *peer;          /* the peer as the log shows it */
	bool log_on_stderr;        /* --log=stderr: fd 2 stays, even when it is the client */
};

/* The bodies of the roles: pop3d.c puts them together (client.c, maildrop.c, auth.c). */
struct privsep_roles {
	void *ctx;
	/* The greeter, sandboxed: AUTHORIZATION through the channel chan. Its exit status. */
	int (*greet)(void *ctx, int chan);
	/* The authenticator: verify a password. */
	enum auth_result (*authenticate)(void *ctx, const char *user, const char *password,
					 struct account *acct);
	/* The keeper: become the account (then privsep_die_with_parent(): the drop
	 * cleared it), enter its sandbox, take the maildrop. */
	enum login_result (*take_maildrop)(void *ctx, const struct account *acct,
					   struct mbox **mb, char *why, size_t whylen);
	/* The session process: TRANSACTION and UPDATE from the handoff. Its exit status. */
	int (*transact)(void *ctx, struct mbox *mb, const struct handoff *h, int keeper);
	/* The authenticator: the client's address the greeter read from a PROXY header. 0, or -1. */
	int (*set_peer)(void *ctx, const char *addr, bool tls);
	/* The keeper: apply the deletions at QUIT. */
	enum mbox_status (*update)(void *ctx, struct mbox *mb, char *why, size_t whylen);
};

/* The authenticator: run one session through its three roles. The exit status. */
int privsep_run(const struct privsep_config *cfg, const struct privsep_roles *roles);

/*
 * In a child: SIGKILL when the parent dies, so that no process outlives the
 * session; the process ends at once if the parent is already gone. Each
 * child is forked with it; a change of credentials clears it, so a child
 * calls this again after its privilege drop.
 */
void privsep_die_with_parent(void);

/* In a child: every log line goes to the authenticator over chan. */
void privsep_forward_logs(int chan);

/* The channel privsep_forward_logs was given, or -1. */
int privsep_log_channel(void);

/* fork(2), the child bound to the parent's life (privsep_die_with_parent); as fork. */
pid_t privsep_fork(void);

/* The greeter's side. */
enum login_result privsep_login(int chan, const char *user, const char *password,
				enum login_method method, char *why, size_t whylen);
void privsep_login_failed(int chan);
int privsep_proxied_peer(int chan, const char *addr, bool tls);
int privsep_handoff(int chan, const struct session *s, const char *pending, size_t len);

/* The session process's side of the keeper. */
enum mbox_status privsep_update(int keeper, struct mbox *mb, char *why, size_t whylen);
void privsep_release(int keeper);
/*
 * The session process opens no path: the keeper opens Maildir message n
 * (1-based, of its own list) for it and sends the descriptor back. Returns
 * it, or -1 with the keeper's reason in why. A lost keeper ends the process.
 */
int privsep_open_msg(int keeper, size_t n, char *why, size_t whylen);

#endif
