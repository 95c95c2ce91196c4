/* pop3d: one POP3 session on stdin/stdout. Options, start-up, privileges. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "dotlocker.h"
#include "exitcode.h"
#include "fileio.h"
#include "limits.h"
#include "lock.h"
#include "log.h"
#include "mbox.h"
#include "options.h"
#include "outbuf.h"
#include "peer.h"
#include "privsep.h"
#include "proxy.h"
#include "sandbox.h"
#include "session.h"
#include "throttle.h"
#include "update.h"

/* Everything the session backend needs at login. */
struct server {
	const struct config *cfg;
	struct auth_config auth;
	bool root;                  /* started as root: must drop privileges */
	uid_t virt_uid;             /* --user account, for virtual users */
	gid_t virt_gid;
	char virt_home[MAX_PATH_LEN];
	struct journal_places journal;  /* the account's journal places: live as long as the mailbox */
	struct privsep_config ps;   /* the process model's settings */
	struct session_config scfg; /* what both halves of the session are told */
	struct peer peer;           /* scfg.peer is peer.addr */
	bool expect_proxy;          /* the peer is a --trusted-proxy: a PROXY header comes first */
	int chan;                   /* greeter: the channel to the authenticator */
	int keeper;                 /* session process: the channel to the keeper */
	struct client_out *client;  /* its write timer is stopped for login and update */
};

/* Set by SIGALRM: a write to the client has stalled past the timeout. */
static volatile sig_atomic_t write_timed_out;

struct client_out {
	int fd;
	unsigned timeout;
	bool armed;          /* the stall timer is running ... */
	time_t armed_at;     /* ... since this second (CLOCK_MONOTONIC_COARSE) */
	bool stalled;        /* the timer cut a write short: the client stopped reading */
};

/*
 * Start the stall timer for a write. alarm(2) is a system call, and RETR of
 * a large message is thousands of writes: the timer is re-armed at most once
 * a second, for one second more than the timeout, so that a write stalls for
 * at least the timeout (and at most a second longer) before it is given up.
 */
static void arm_write_timer(struct client_out *co)
{
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &now) < 0)
		now.tv_sec = co->armed_at + 1;   /* no clock: re-arm every time */
	if (co->armed && now.tv_sec == co->armed_at)
		return;
	write_timed_out = 0;
	alarm(co->timeout + 1);
	co->armed = true;
	co->armed_at = now.tv_sec;
}

/*
 * No write is under way: the session waits for input, or logs in or updates
 * the mailbox (lock waits, a scan, an fsync a stray SIGALRM must not cut).
 */
static void disarm_write_timer(struct client_out *co)
{
	if (!co || !co->armed)
		return;
	alarm(0);
	co->armed = false;
	write_timed_out = 0;
}

/* One line from stdin without its newline; echo off on a terminal. */
static int read_password_line(char *buf, size_t size)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		fputs("Password: ", stderr);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	bool ok = fgets(buf, (int)size, stdin) != NULL;
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (!ok)
		return -1;
	size_t len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (len == size - 1)
		return -1;  /* longer than we accept */
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return 0;
}

static int run_hash(void)
{
	char pass[MAX_PASSWORD + 2], hash[512];
	if (read_password_line(pass, sizeof(pass)) < 0) {
		fprintf(stderr, "pop3d: no password on standard input (at most %d octets)\n",
			MAX_PASSWORD);
		return EXIT_USAGE;
	}
	const char *problem = auth_password_problem(pass);
	if (problem) {   /* an empty one: no login could ever use it */
		fprintf(stderr, "pop3d: --hash: %s refused: no login accepts it\n", problem);
		return EXIT_USAGE;
	}
	int rc = auth_make_hash(pass, hash, sizeof(hash));
	explicit_bzero(pass, sizeof(pass));
	if (rc < 0) {
		fprintf(stderr, "pop3d: crypt(3) could not make a hash\n");
		return EXIT_CONFIG;
	}
	printf("%s\n", hash);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_CONFIG;
}

/* ---- privileges ---- */

/*
 * Become uid/gid for good, with the groups of account `name`, or none at all
 * for a uid without an account (name NULL); verify there is no way back.
 */
static int drop_privileges(const char *name, uid_t uid, gid_t gid)
{
	const char *who = name ? name : "a uid without an account";
	if (uid == 0) {
		log_msg(LOG_ERR, "refusing to serve a mailbox as root (user %s)", LOG_Q(who));
		return -1;
	}
	int groups = name ? initgroups(name, gid) : setgroups(0, NULL);
	if (groups < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_msg(LOG_ERR, "cannot drop privileges to %s (%ld:%ld): %s",
			LOG_Q(who), (long)uid, (long)gid, strerror(errno));
		return -1;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
	    setuid(0) == 0) {
		log_msg(LOG_ERR, "privilege drop to %s did not take effect", LOG_Q(who));
		return -1;
	}
	return 0;
}

/* What st describes, with its owner's account name: for the log, before any sandbox. */
static void describe_found(const struct stat *st, char *out, size_t outlen)
{
	struct passwd *pw = getpwuid(st->st_uid);
	mbox_describe_file(st, pw ? pw->pw_name : "no account", out, outlen);
}

/*
 * Who owns the mailbox at path (or, while it does not exist yet, its
 * directory). Root is never an answer: we do not serve mailboxes as root.
 */
static int mailbox_owner(const char *path, uid_t *uid, gid_t *gid, char *why, size_t whylen)
{
	struct stat st;
	char found[MAX_FOUND_TEXT];
	int rc = lstat(path, &st);
	if (rc < 0 && errno == ENOENT) {
		char dir[MAX_PATH_LEN];
		rc = parent_dir(path, dir, sizeof(dir)) < 0 ? -1 : lstat(dir, &st);
	} else if (rc == 0 && !S_ISREG(st.st_mode)) {
		describe_found(&st, found, sizeof(found));
		log_msg(LOG_ERR, "mailbox %s: found %s; expected a regular file", LOG_Q(path), found);
		snprintf(why, whylen, "mailbox is not a regular file");
		return -1;
	}
	if (rc < 0) {
		snprintf(why, whylen, "cannot find the mailbox's owner: %s", strerror(errno));
		return -1;
	}
	if (st.st_uid == 0) {
		describe_found(&st, found, sizeof(found));
		log_msg(LOG_ERR, "mailbox %s: found %s; expected a file (or, while there is none, "
			"a directory) of the account to serve it as, not root's; or --user to name "
			"that account", LOG_Q(path), found);
		snprintf(why, whylen, "mailbox belongs to root: set --user to serve it");
		return -1;
	}
	*uid = st.st_uid;
	*gid = st.st_gid;
	return 0;
}

/*
 * The mailbox cannot even be looked up (EACCES): name the directory on its
 * path that denies this uid the search (x) permission, rather than say
 * "Permission denied".
 */
static enum login_result explain_unreachable(const struct account *acct, char *why,
					     size_t whylen)
{
	char dir[MAX_PATH_LEN];
	snprintf(dir, sizeof(dir), "%s", acct->mailbox);
	struct stat st;
	char found[MAX_FOUND_TEXT] = "a directory it cannot look into";
	/* The deepest directory that can still be looked up is the one in the way. */
	for (char *slash = strrchr(dir, '/'); slash && slash > dir; slash = strrchr(dir, '/')) {
		*slash = '\0';
		if (stat(dir, &st) == 0) {
			describe_found(&st, found, sizeof(found));
			break;
		}
	}
	struct passwd *me = getpwuid(geteuid());
	log_msg(LOG_ERR, "mailbox %s for %s refused: directory %s denies search: found %s; "
		"expected search (x) permission for uid %ju (%s)", LOG_Q(acct->mailbox),
		LOG_Q(acct->name), LOG_Q(dir), found, (uintmax_t)geteuid(),
		me ? me->pw_name : "no account");
	snprintf(why, whylen, "mailbox directory is not accessible");
	return LOGIN_SYS_PERM;
}

/*
 * Before the worker's sandbox, which has no account names to look up: a
 * mailbox mbox_open would refuse (mbox_file_problem, the one rule) is refused
 * here, with the owner found and the one expected, by uid and name.
 */
static enum login_result check_mailbox_file(const struct account *acct, char *why,
					    size_t whylen)
{
	struct stat st;
	if (lstat(acct->mailbox, &st) < 0)
		return errno == EACCES ? explain_unreachable(acct, why, whylen) : LOGIN_OK;
	const char *problem = mbox_file_problem(&st);   /* missing: an empty maildrop */
	if (!problem)
		return LOGIN_OK;
	char found[MAX_FOUND_TEXT];
	describe_found(&st, found, sizeof(found));
	struct passwd *me = getpwuid(geteuid());
	log_msg(LOG_ERR, "mailbox %s for %s refused: %s: found %s; expected " MBOX_EXPECTED
		" %ju (%s)", LOG_Q(acct->mailbox), LOG_Q(acct->name), problem, found,
		(uintmax_t)geteuid(), me ? me->pw_name : "no account");
	snprintf(why, whylen, "%s", problem);
	return LOGIN_SYS_PERM;
}

/* Become uid for good: as its account when it has one, else with gid and no groups. */
static int drop_to_uid(uid_t uid, gid_t gid)
{
	struct passwd *pw = getpwuid(uid);
	return drop_privileges(pw ? pw->pw_name : NULL, uid, pw ? pw->pw_gid : gid);
}

/*
 * Switch, for good, to the account that owns the maildrop: the system account,
 * --user for virtual users, or without --user the mailbox file's owner. The
 * worker of each login attempt is a process of its own.
 */
/* Debian's spool: the dotlock through a process with group mail, forked while we are root. */
static void start_dotlocker_if_needed(const struct server *srv, const char *mailbox, uid_t uid,
				      const struct spool_access *sa)
{
	if (srv->root && sa->who == SPOOL_GROUP && sa->group == dotlocker_group() &&
	    (srv->cfg->lock_methods & LOCK_DOTLOCK))
		dotlocker_start(mailbox, uid, sa->group);
}

static enum login_result become_account(struct server *srv, const struct account *acct,
					const char *journal_dir, char *why, size_t whylen)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (srv->root) {
		uid = acct->system ? acct->uid : srv->virt_uid;
		gid = acct->system ? acct->gid : srv->virt_gid;
	}
	bool by_owner = srv->root && !acct->system && !srv->cfg->virtual_user;
	if (by_owner && mailbox_owner(acct->mailbox, &uid, &gid, why, whylen) < 0) {
		log_msg(LOG_ERR, "no account to serve %s for %s as: %s", LOG_Q(acct->mailbox),
			LOG_Q(acct->name), why);
		return LOGIN_SYS_PERM;
	}
	/* Who may write beside the mailbox, asked as root of the account uid is about to be. */
	const char *name = !srv->root ? NULL : acct->system ? acct->name : srv->cfg->virtual_user;
	struct passwd *pw = by_owner ? getpwuid(uid) : NULL;
	struct spool_access sa;
	spool_access(acct->mailbox, pw ? pw->pw_name : name, uid, pw ? pw->pw_gid : gid, &sa);
	start_dotlocker_if_needed(srv, acct->mailbox, uid, &sa);
	/* The account's own journal directory, made by root while it still can. */
	if (journal_places_prepare(journal_dir, acct->mailbox, uid, gid, sa.who == SPOOL_ACCOUNT,
				   &srv->journal, why, whylen) < 0)
		return LOGIN_SYS_TEMP;
	if (!srv->root)
		return LOGIN_OK;  /* an ordinary user serves mailboxes as itself */
	int rc = by_owner ? drop_to_uid(uid, gid)
			  : drop_privileges(acct->system ? acct->name : srv->cfg->virtual_user,
					    uid, gid);
	if (rc < 0) {
		snprintf(why, whylen, "cannot switch to the mailbox owner");
		return uid == 0 ? LOGIN_SYS_PERM : LOGIN_SYS_TEMP;
	}
	return LOGIN_OK;
}

#ifdef POP3D_FAULT_INJECTION
/*
 * Test build only (tests/pop3d-fault): SIGKILL ourselves at step N of an
 * update (POP3D_KILL_AT_STEP) or of a recovery (POP3D_KILL_RECOVER_AT_STEP),
 * so the crash tests can die at every point of the update for real.
 */
static int kill_at_step(void *ctx, int step, const char *what)
{
	const char *var = ctx;
	const char *v = getenv(var);
	(void)what;
	if (v && atoi(v) == step)
		kill(getpid(), SIGKILL);
	return 0;
}

static const struct update_hooks kill_in_update = {
	.fault = kill_at_step, .ctx = (void *)"POP3D_KILL_AT_STEP",
};
static const struct update_hooks kill_in_recovery = {
	.fault = kill_at_step, .ctx = (void *)"POP3D_KILL_RECOVER_AT_STEP",
};
#define UPDATE_HOOKS (&kill_in_update)
#define RECOVER_HOOKS (&kill_in_recovery)
#else
#define UPDATE_HOOKS NULL
#define RECOVER_HOOKS NULL
#endif

/* ---- the session backend ---- */

static enum login_result map_status(enum mbox_status st)
{
	switch (st) {
	case MBOX_OK: return LOGIN_OK;
	case MBOX_IN_USE: return LOGIN_IN_USE;
	case MBOX_PERM: return LOGIN_SYS_PERM;
	case MBOX_TEMP: break;
	}
	return LOGIN_SYS_TEMP;
}

/* What a client is told when its maildrop is stuck on something only the admin can fix. */
static const char temp_reason[] = "mailbox is temporarily unavailable; try again later";

static void mailbox_options(const struct server *srv, struct mbox_options *opt)
{
	mbox_default_options(opt);
	opt->lock_methods = srv->cfg->lock_methods;
	opt->max_messages = srv->cfg->max_messages;
	opt->max_size = srv->cfg->max_mailbox_size;
}

/* A directory template (--index-dir, --journal-dir) for this account, or NULL. */
static const char *expand_dir(const char *option, const char *tmpl, const struct account *acct,
			      char out[MAX_PATH_LEN])
{
	if (!tmpl)
		return NULL;
	if (auth_expand_mailbox(tmpl, acct->name, acct->home, out, MAX_PATH_LEN) < 0) {
		log_msg(LOG_ERR, "%s %s for %s: too long, bad %% sequence or %%h without a home",
			option, tmpl, LOG_Q(acct->name));
		return NULL;
	}
	return out;
}

/* ---- the authenticator's and the keeper's work (privsep.c runs them) ---- */

static enum auth_result role_authenticate(void *ctx, const char *user, const char *password,
					  struct account *acct)
{
	const struct server *srv = ctx;
	return auth_login(&srv->auth, user, password, acct);
}

/*
 * Virtual users sharing the --user account's uid, whom only the sandbox
 * keeps apart: Landlock is required (SANDBOX_SHARED_UID_LANDLOCK_ABI)
 * unless --sandbox=no-landlock. valgrind, which can load no sandbox at
 * all, was logged at start.
 */
static bool needs_landlock(const struct server *srv, int ll)
{
	return srv->root && srv->cfg->virtual_user && srv->cfg->passwd_file &&
	       !srv->cfg->sandbox_no_landlock && !sandbox_seccomp_skipped() &&
	       ll < SANDBOX_SHARED_UID_LANDLOCK_ABI;
}

/* The keeper's sandbox: Landlock to the maildrop's directories, then seccomp. */
static int enter_worker_sandbox(const struct server *srv, const struct sandbox_paths *paths,
				char *why, size_t whylen)
{
	char err[MAX_REASON_LEN] = "";
	if (sandbox_no_privileges(err, sizeof(err)) < 0)
		goto refuse;
	int ll = sandbox_landlock(paths, err, sizeof(err));
	if (ll < 0 || (ll == 0 && srv->cfg->sandbox_strict))
		goto refuse;
	if (needs_landlock(srv, ll)) {
		log_msg(LOG_ERR, "refusing to serve: virtual users share the uid of --user %s "
			"and need the kernel's Landlock (ABI %d or later) to be kept apart: %s; "
			"--sandbox=no-landlock serves them with seccomp alone",
			srv->cfg->virtual_user, SANDBOX_SHARED_UID_LANDLOCK_ABI, err);
		snprintf(why, whylen, "%s", temp_reason);
		return -1;
	}
	if (ll == 0)
		log_msg(LOG_WARNING, "serving without Landlock: %s", err);
	if (sandbox_seccomp_worker(err, sizeof(err)) < 0)
		goto refuse;
	return 0;
refuse:
	log_msg(LOG_ERR, "worker sandbox: %s%s", err,
		srv->cfg->sandbox_strict ? " (--sandbox=strict)" : "");
	snprintf(why, whylen, "%s", temp_reason);
	return -1;
}

static enum login_result role_take_maildrop(void *ctx, const struct account *acct,
					    struct mbox **mb, char *why, size_t whylen)
{
	struct server *srv = ctx;
	/* A name of another mailbox's side file is never served (nor recovered). */
	enum mbox_status named = mbox_check_name(acct->mailbox, why, whylen);
	if (named != MBOX_OK)
		return map_status(named);
	/* Where an interrupted update's journal would be is not optional. */
	char journal_dir[MAX_PATH_LEN];
	const char *jdir = expand_dir("--journal-dir", srv->cfg->journal_dir, acct, journal_dir);
	if (srv->cfg->journal_dir && !jdir) {
		snprintf(why, whylen, "%s", temp_reason);
		return LOGIN_SYS_TEMP;
	}
	enum login_result lr = become_account(srv, acct, jdir, why, whylen);
	if (lr != LOGIN_OK) {
		if (lr == LOGIN_SYS_TEMP)
			snprintf(why, whylen, "%s", temp_reason);
		return lr;
	}
	privsep_die_with_parent();   /* the drop cleared it */
	struct mbox_options opt;
	mailbox_options(srv, &opt);
	char index_dir[MAX_PATH_LEN];
	/* Without a usable index directory the login goes on, unindexed. */
	opt.index_dir = expand_dir("--index-dir", srv->cfg->index_dir, acct, index_dir);
	opt.journal_dir = srv->journal.dir[0] ? srv->journal.dir : NULL;   /* journal_places_prepare */
	opt.journal_alt_dir = srv->journal.alt[0] ? srv->journal.alt : NULL;
	struct sandbox_paths paths = {.mailbox = acct->mailbox, .journal_dir = opt.journal_dir,
				      .journal_alt_dir = opt.journal_alt_dir,
				      .index_dir = opt.index_dir};
	if ((lr = check_mailbox_file(acct, why, whylen)) != LOGIN_OK)
		return lr;
	if (enter_worker_sandbox(srv, &paths, why, whylen) < 0)
		return LOGIN_SYS_TEMP;
	if (mbox_recover_hooked(acct->mailbox, &opt, RECOVER_HOOKS, why, whylen) < 0) {
		log_msg(LOG_ERR, "recovery of %s failed: %s", LOG_Q(acct->mailbox), why);
		snprintf(why, whylen, "%s", temp_reason);
		return LOGIN_SYS_TEMP;
	}
	enum mbox_status st = mbox_open(mb, acct->mailbox, &opt, why, whylen);
	/* mbox's reasons name no path: the client may see them. */
	if (st != MBOX_OK)
		log_msg(LOG_WARNING, "cannot open mailbox %s for %s: %s", LOG_Q(acct->mailbox),
			LOG_Q(acct->name), why);
	return map_status(st);
}

static enum mbox_status role_update(void *ctx, struct mbox *mb, char *why, size_t whylen)
{
	(void)ctx;
	return mbox_update_hooked(mb, UPDATE_HOOKS, why, whylen);
}

/* ---- the session backends of the greeter and the session process ---- */

static enum login_result greeter_login(void *ctx, const char *user, const char *password,
				       enum login_method method, struct mbox **mb, char *why,
				       size_t whylen)
{
	struct server *srv = ctx;
	(void)mb;
	disarm_write_timer(srv->client);   /* no SIGALRM while the authenticator works */
	enum login_result r = privsep_login(srv->chan, user, password, method, why, whylen);
	return r == LOGIN_OK ? LOGIN_HANDOFF : r;
}

/* The growing delay slows password guessing; the authenticator applies it. */
static void greeter_login_failed(void *ctx, unsigned failures)
{
	struct server *srv = ctx;
	(void)failures;   /* counted by the authenticator, which a greeter cannot fool */
	privsep_login_failed(srv->chan);
}

/* Neither can happen: there is no maildrop before login, no login after it. */
static enum mbox_status no_update(void *ctx, struct mbox *mb, char *why, size_t whylen)
{
	(void)ctx;
	(void)mb;
	snprintf(why, whylen, "no maildrop");
	return MBOX_TEMP;
}

static enum login_result no_login(void *ctx, const char *user, const char *password,
				  enum login_method method, struct mbox **mb, char *why,
				  size_t whylen)
{
	(void)ctx;
	(void)user;
	(void)password;
	(void)method;
	(void)mb;
	snprintf(why, whylen, "already logged in");
	return LOGIN_SYS_TEMP;
}

static enum mbox_status session_update(void *ctx, struct mbox *mb, char *why, size_t whylen)
{
	struct server *srv = ctx;
	disarm_write_timer(srv->client);   /* nor in the middle of an update */
	return privsep_update(srv->keeper, mb, why, whylen);
}

static void session_release(void *ctx)
{
	const struct server *srv = ctx;
	privsep_release(srv->keeper);
}

/* ---- start-up checks ---- */

static int setup_virtual_user(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	if (!cfg->virtual_user)
		return 0;  /* as root, virtual mailboxes are then served as their owners */
	struct passwd *pw = getpwnam(cfg->virtual_user);
	if (!pw) {
		config_error(false, "--user %s: no such account (expected the name of a system "
			     "account)", cfg->virtual_user);
		return -1;
	}
	if (srv->root && pw->pw_uid == 0) {
		config_error(false, "--user %s: an account with uid 0 (expected an unprivileged "
			     "one: mailboxes are never served as root)", cfg->virtual_user);
		return -1;
	}
	if (!srv->root)
		log_msg(LOG_NOTICE, "not started as root: --user %s is ignored (its home is "
			"still used for %%h)", cfg->virtual_user);
	srv->virt_uid = pw->pw_uid;
	srv->virt_gid = pw->pw_gid;
	snprintf(srv->virt_home, sizeof(srv->virt_home), "%s", pw->pw_dir ? pw->pw_dir : "");
	return 0;
}

/*
 * A path template (--mailbox, --index-dir, --journal-dir; NULL: not set):
 * absolute, known % escapes (auth.c knows them), %h only where there is a
 * home, and the directory no expansion changes exists (/var/mail of
 * /var/mail/%u): else every login would fail, or find an empty maildrop.
 */
static int check_template(const struct server *srv, const char *option, const char *tmpl)
{
	if (!tmpl)
		return 0;
	const char *problem = auth_template_problem(tmpl);
	if (problem) {
		config_error(false, "%s %s: %s", option, tmpl, problem);
		return -1;
	}
	if (srv->cfg->passwd_file && strstr(tmpl, "%h") && !srv->virt_home[0]) {
		config_error(false, "%s %s uses %%h, which virtual users only have with --user",
			     option, tmpl);
		return -1;
	}
	char dir[MAX_PATH_LEN];
	struct stat st;
	if (auth_template_fixed_dir(tmpl, dir, sizeof(dir)) == 0)
		return 0;   /* %h/...: each home is its own */
	if (stat(dir, &st) < 0) {
		config_error(false, "%s %s: directory %s: %s (expected an existing directory)",
			     option, tmpl, dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		config_error(false, "%s %s: %s is not a directory (expected an existing directory)",
			     option, tmpl, dir);
		return -1;
	}
	return 0;
}

/* --passwd names a file pop3d can open and read (auth.c then reads its lines). */
static int check_passwd_file(const char *path)
{
	int fd;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	while (fd < 0 && errno == EINTR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		config_error(false, "--passwd %s: %s (expected a readable file of "
			     "name:hash[:mailbox] lines)", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);   /* read-only: nothing to lose */
	/* A directory cannot be read, a FIFO would hang every login; /dev/null is no users. */
	if (S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
		char found[MAX_FOUND_TEXT];
		describe_found(&st, found, sizeof(found));
		config_error(false, "--passwd %s: found %s (expected a regular file of "
			     "name:hash[:mailbox] lines)", path, found);
		return -1;
	}
	return 0;
}

/* Start-up, before the greeting and before any fork: what every login would trip over. */
static int check_config(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	if (setup_virtual_user(srv) < 0)
		return -1;
	if (check_template(srv, "--mailbox", cfg->mailbox_template) < 0 ||
	    check_template(srv, "--index-dir", cfg->index_dir) < 0 ||
	    check_template(srv, "--journal-dir", cfg->journal_dir) < 0)
		return -1;
	/* Readable, and its malformed lines logged (once: logins do not repeat them). */
	if (cfg->passwd_file && (check_passwd_file(cfg->passwd_file) < 0 ||
				 auth_check_passwd_file(cfg->passwd_file) < 0))
		return -1;
	srv->auth.passwd_file = cfg->passwd_file;
	srv->auth.mailbox_template = cfg->mailbox_template;
	srv->auth.virtual_home = srv->virt_home[0] ? srv->virt_home : NULL;
	return 0;
}

/* ---- I/O with the client ---- */

static void on_alarm(int sig)
{
	(void)sig;
	write_timed_out = 1;
}

static int install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;  /* a closed connection shows up as EPIPE */
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -1;
	sa.sa_handler = on_alarm;  /* no SA_RESTART: a stalled write returns EINTR */
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGALRM, &sa, NULL);
}

/* Writes to the client, giving up when one write stalls for the whole timeout. */
static ssize_t client_write(void *ctx, const void *buf, size_t len)
{
	struct client_out *co = ctx;
	if (co->stalled) {   /* not another whole timeout for the rest of a cut write */
		errno = ETIMEDOUT;
		return -1;
	}
	arm_write_timer(co);
	ssize_t n;
	do {
		n = write(co->fd, buf, len);
	} while (n < 0 && errno == EINTR && !write_timed_out);
	if (write_timed_out && (n < 0 || (size_t)n < len)) {
		co->stalled = true;
		log_msg(LOG_NOTICE, "the client stopped reading: a write stalled for %u s",
			co->timeout);
	}
	return n;
}

/* Wait for input: >0 bytes read, 0 EOF, -1 error, -2 timeout. */
static ssize_t client_read(char *buf, size_t size, unsigned timeout)
{
	struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
	for (;;) {
		int r = poll(&pfd, 1, (int)timeout * 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return -2;
		ssize_t n = read(STDIN_FILENO, buf, size);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n;
	}
}

/* How long one half of the session may last, counted from the session's start. */
struct time_limit {
	unsigned seconds;
	const char *what;   /* "session" or "login": the log line and the -ERR say which */
};

static struct time_limit session_limit(const struct config *cfg)
{
	return (struct time_limit){.seconds = cfg->max_session_time, .what = "session"};
}

/* The greeter's: the login deadline, unless the session's lifetime ends first. */
static struct time_limit greeter_limit(const struct config *cfg)
{
	if (cfg->login_timeout < cfg->max_session_time)
		return (struct time_limit){.seconds = cfg->login_timeout, .what = "login"};
	return session_limit(cfg);
}

/* Seconds until the session's lifetime ends (at least 1 while it lasts). */
static unsigned lifetime_left(const struct session *s, unsigned max_time)
{
	time_t used = time(NULL) - s->started;
	if (used < 0)
		used = 0;
	return (time_t)max_time > used ? (unsigned)((time_t)max_time - used) : 0;
}

/*
 * The session's input loop. buf (CLIENT_READ_SIZE octets) holds *pending
 * octets to feed first; when the session is handed over, the octets it left
 * unread are moved to the start of buf and *pending is their count.
 */
static void serve(struct session *s, struct outbuf *ob, struct client_out *co,
		  const struct time_limit *limit, char *buf, size_t *pending)
{
	unsigned timeout = co->timeout;
	if (*pending)
		session_feed(s, buf, *pending);
	ssize_t n = (ssize_t)*pending;
	while (s->end == END_NONE) {
		if (outbuf_flush(ob) < 0) {
			session_abort(s, END_IO_ERROR);
			break;
		}
		unsigned left = lifetime_left(s, limit->seconds);
		if (left == 0) {
			log_msg(LOG_NOTICE, "%s time limit of %u s reached: peer=%s", limit->what,
				limit->seconds, s->cfg->peer);
			outbuf_printf(ob, "-ERR %s time limit reached, closing\r\n", limit->what);
			session_abort(s, END_TIMEOUT);
			break;
		}
		disarm_write_timer(co);
		n = client_read(buf, CLIENT_READ_SIZE, left < timeout ? left : timeout);
		if (n == -2 && left <= timeout)
			continue;  /* the lifetime, not the idle timer, ran out */
		if (n == -2) {
			log_msg(LOG_NOTICE, "autologout timer expired after %u s: peer=%s",
				timeout, s->cfg->peer);
			outbuf_puts(ob, "-ERR autologout timer expired, closing\r\n");
			session_abort(s, END_TIMEOUT);
		} else if (n <= 0) {
			session_abort(s, n == 0 ? END_EOF : END_IO_ERROR);
		} else {
			session_feed(s, buf, (size_t)n);
		}
	}
	*pending = 0;
	if (s->end == END_HANDOFF && n > 0 && s->unread > 0) {
		memmove(buf, buf + (size_t)n - s->unread, s->unread);
		*pending = s->unread;
	}
	outbuf_flush(ob);
	disarm_write_timer(co);
	if (ob->failed && s->end == END_QUIT)
		log_msg(LOG_NOTICE, "connection lost before the QUIT answer: peer=%s", s->cfg->peer);
}

static int exit_status(enum session_end end)
{
	switch (end) {
	case END_QUIT: return EXIT_OK;
	case END_UPDATE_FAILED: return EXIT_UPDATE;
	default: return EXIT_SESSION;
	}
}

/* --recover's outcome: on stdout for whoever ran it, and in the log. */
static void recover_says(const char *path, const struct mbox_recovery *res)
{
	char what[160];
	if (!res->journal)
		snprintf(what, sizeof(what), "nothing to recover");
	else if (res->replayed && res->deletions >= 0)
		snprintf(what, sizeof(what), "recovered: %ld deletion%s applied", res->deletions,
			 res->deletions == 1 ? "" : "s");
	else if (res->replayed)
		snprintf(what, sizeof(what), "recovered: the deletions applied (not counted: the "
			 "interrupted update had begun moving mail)");
	else
		snprintf(what, sizeof(what), "recovered: no deletions left to apply, the "
			 "journal removed (see the log)");
	log_msg(LOG_NOTICE, "--recover %s: %s", path, what);
	printf("%s: %s\n", path, what);
}

static int run_recover(const struct server *srv)
{
	const char *path = srv->cfg->recover_path;
	char why[256] = "";
	struct stat st;
	if (lstat(path, &st) < 0 && errno == ENOENT) {
		config_error(false, "--recover %s: no such mailbox", path);
		return EXIT_NOINPUT;
	}
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (srv->root && mailbox_owner(path, &uid, &gid, why, sizeof(why)) < 0) {
		config_error(false, "--recover %s: %s", path, why);
		return EXIT_CONFIG;
	}
	struct mbox_options opt;
	mailbox_options(srv, &opt);
	/* %u and %h of --journal-dir are those of the account the mailbox is recovered as. */
	struct account self = { .name = "" };
	struct passwd *pw = getpwuid(uid);
	if (pw) {
		snprintf(self.name, sizeof(self.name), "%s", pw->pw_name);
		snprintf(self.home, sizeof(self.home), "%s", pw->pw_dir ? pw->pw_dir : "");
	}
	char journal_dir[MAX_PATH_LEN];
	const char *jdir = expand_dir("--journal-dir", srv->cfg->journal_dir, &self, journal_dir);
	if (srv->cfg->journal_dir && !jdir) {
		config_error(false, "--recover %s: cannot expand --journal-dir %s", path,
			     srv->cfg->journal_dir);
		return EXIT_CONFIG;
	}
	/*
	 * The places a session would use, made by root while it still can (an older
	 * layout's journal moved in); recovery only reads, so beside the mailbox
	 * counts as allowed and the default directory is the other place.
	 */
	struct journal_places places;
	if (journal_places_prepare(jdir, path, uid, gid, true, &places, why, sizeof(why)) < 0) {
		config_error(false, "--journal-dir %s: %s", jdir, why);
		return EXIT_CONFIG;
	}
	opt.journal_dir = places.dir[0] ? places.dir : NULL;
	opt.journal_alt_dir = places.alt[0] ? places.alt : NULL;
	if (srv->root) {
		struct spool_access sa;
		spool_access(path, pw ? pw->pw_name : NULL, uid, pw ? pw->pw_gid : gid, &sa);
		start_dotlocker_if_needed(srv, path, uid, &sa);
	}
	if (srv->root && drop_to_uid(uid, gid) < 0) {
		config_error(false, "--recover %s: cannot switch to its owner (uid %ju)", path,
			     (uintmax_t)uid);
		return EXIT_CONFIG;
	}
	struct mbox_recovery res;
	if (mbox_recover_report(path, &opt, RECOVER_HOOKS, &res, why, sizeof(why)) < 0) {
		config_error(false, "--recover %s: recovery failed: %s", path, why);
		return EXIT_UPDATE;
	}
	recover_says(path, &res);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_UPDATE;
}

#ifdef POP3D_FAULT_INJECTION
/*
 * Test build only: XTEST probes the sandbox from inside. In the greeter,
 * "XTEST SYSCALL" makes a forbidden system call and "XTEST GARBAGE kind"
 * sends the authenticator a malformed message; after login, "XTEST OPEN
 * path" tries to open path and answers the errno; the probes below try
 * one attack each (CHMOD path, SIGNAL pid ...). In either, "XTEST LOG text"
 * sends the authenticator a log line of its choosing (each _ a blank).
 */
#include <linux/landlock.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <sys/xattr.h>

static void garbage_message(int chan, const char *kind, struct outbuf *out)
{
	struct ps_packet p;
	memset(&p, 0, sizeof(p));
	p.h = (struct ps_header){.type = PS_LOGIN, .len1 = 5, .len2 = 6};
	memcpy(p.data, "alicesecret", 11);
	size_t n = sizeof(p.h) + 11;
	if (strcmp(kind, "short") == 0)
		n = 3;                                   /* not even a header */
	else if (strcmp(kind, "truncated") == 0)
		n -= 4;                                  /* fields shorter than announced */
	else if (strcmp(kind, "oversized") == 0)
		p.h.len1 = 1u << 30;                     /* a field past every limit */
	else if (strcmp(kind, "type") == 0)
		p.h.type = 99;                           /* no such message */
	else if (strcmp(kind, "nul") == 0)
		p.data[2] = '\0';                        /* a NUL inside the user name */
	else if (strcmp(kind, "handoff") == 0)
		p.h.type = PS_HANDOFF;                   /* a handoff nobody authorized */
	else if (strcmp(kind, "huge") == 0)
		n = sizeof(p);                           /* the largest packet, lengths not adding up */
	outbuf_puts(out, write(chan, &p, n) == (ssize_t)n ? "+OK sent\r\n" : "-ERR not sent\r\n");
}

/* A forged log line, as a compromised process would send it: any text at all. */
static void forged_log(const char *text, struct outbuf *out)
{
	char line[MAX_LOG_LINE];
	snprintf(line, sizeof(line), "%s", text);
	for (char *p = line; (p = strchr(p, '_')) != NULL; p++)
		*p = ' ';
	log_msg(LOG_NOTICE, "%s", line);   /* the hook sends it as it is: PS_LOG */
	outbuf_puts(out, "+OK sent\r\n");
}

/*
 * The attacks of one virtual user's session on another's files and
 * processes (tests/security/isolation.py): each makes the one call it names
 * and returns its result; the sandbox must refuse it or stop the process.
 */
static int probe_chmod(char **a) { return chmod(a[0], 0); }
static int probe_truncate(char **a) { return truncate(a[0], 0); }
static int probe_chown(char **a) { return chown(a[0], getuid(), getgid()); }

/* A second name for path: path.stolen (XTEST takes one argument). */
static int probe_link(char **a)
{
	char to[MAX_PATH_LEN];
	snprintf(to, sizeof(to), "%s.stolen", a[0]);
	return link(a[0], to);
}

static int probe_rename(char **a)
{
	char to[MAX_PATH_LEN];
	snprintf(to, sizeof(to), "%s.stolen", a[0]);
	return rename(a[0], to);
}
static int probe_unlink(char **a) { return unlink(a[0]); }

/* A new file at path (a dotlock of its own, say). */
static int probe_create(char **a)
{
	int fd = open(a[0], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return fd < 0 ? -1 : close(fd);
}
static int probe_setxattr(char **a) { return setxattr(a[0], "user.pop3d", "x", 1, 0); }

static int probe_stat(char **a)
{
	struct stat st;
	return stat(a[0], &st);
}

static int probe_utime(char **a)
{
	const struct timespec epoch[2] = {{.tv_sec = 0}, {.tv_sec = 0}};
	return utimensat(AT_FDCWD, a[0], epoch, 0);
}

static int probe_signal(char **a)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGKILL;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	return (int)syscall(SYS_rt_sigqueueinfo, atoi(a[0]), si.si_signo, &si);
}

static int probe_kill(char **a) { return kill(atoi(a[0]), SIGKILL); }

static int probe_pidfd(char **a)
{
	int fd = (int)syscall(SYS_pidfd_open, atoi(a[0]), 0);
	if (fd < 0)
		return -1;
	int rc = (int)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
	close(fd);
	return rc;
}

/* Writes to a file make bob's process die of SIGXFSZ. */
static int probe_prlimit(char **a)
{
	const struct rlimit none = {0, 0};
	return prlimit(atoi(a[0]), RLIMIT_FSIZE, &none, NULL);
}

static int probe_nice(char **a) { return setpriority(PRIO_PROCESS, (id_t)atoi(a[0]), 19); }

/* SIGKILL to pid when the client's next line arrives. */
static int probe_setown(char **a)
{
	int fl = fcntl(STDIN_FILENO, F_GETFL);
	if (fl < 0 || fcntl(STDIN_FILENO, F_SETOWN, atoi(a[0])) < 0 ||
	    fcntl(STDIN_FILENO, F_SETSIG, SIGKILL) < 0)
		return -1;
	return fcntl(STDIN_FILENO, F_SETFL, fl | O_ASYNC);
}

/* The abstract name on a socket it already has: no new socket needed. */
static int probe_bind(const struct server *srv, char **a)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strnlen(a[0], sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path + 1, a[0], n);
	int fd = srv->keeper >= 0 ? srv->keeper : srv->chan;
	return bind(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n));
}

/* Which Landlock ABI this process is told of (the tests' LD_PRELOAD shim may lie). */
static int probe_landlock(char **a)
{
	(void)a;
	return (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
}

static const struct probe {
	const char *name;
	int argc;
	int (*fn)(char **args);
} probes[] = {
	{"STAT", 1, probe_stat}, {"CHMOD", 1, probe_chmod}, {"TRUNCATE", 1, probe_truncate},
	{"UTIME", 1, probe_utime}, {"CHOWN", 1, probe_chown},
	{"LINK", 1, probe_link}, {"RENAME", 1, probe_rename}, {"UNLINK", 1, probe_unlink},
	{"CREATE", 1, probe_create},
	{"SETXATTR", 1, probe_setxattr}, {"SIGNAL", 1, probe_signal}, {"KILL", 1, probe_kill},
	{"PIDFD", 1, probe_pidfd}, {"PRLIMIT", 1, probe_prlimit}, {"NICE", 1, probe_nice},
	{"SETOWN", 1, probe_setown}, {"LANDLOCK", 0, probe_landlock},
};

/* "+OK done N" (the call's result) or "-ERR ENAME". */
static void probe_answer(struct outbuf *out, int rc)
{
	if (rc >= 0)
		outbuf_printf(out, "+OK done %d\r\n", rc);
	else
		outbuf_printf(out, "-ERR %s\r\n", strerrorname_np(errno));
}

/* One of the probes above, when args name one. */
static bool run_probe(int argc, char **args, struct outbuf *out)
{
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (strcmp(args[0], probes[i].name) != 0 || argc != probes[i].argc + 1)
			continue;
		outbuf_flush(out);   /* answered before a trap ends the process */
		probe_answer(out, probes[i].fn(args + 1));
		return true;
	}
	return false;
}

static void test_command(void *ctx, int argc, char **args, struct outbuf *out)
{
	const struct server *srv = ctx;
	if (argc == 1 && strcmp(args[0], "SYSCALL") == 0) {
		outbuf_flush(out);
		long fd = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
		outbuf_printf(out, "+OK socket returned %ld\r\n", fd);
	} else if (argc == 1 && strcmp(args[0], "DGRAM") == 0) {
		outbuf_flush(out);   /* a datagram could be sent to /dev/log unconnected */
		long fd = syscall(SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
		outbuf_printf(out, "+OK socket returned %ld\r\n", fd);
	} else if (argc == 2 && strcmp(args[0], "GARBAGE") == 0 && srv->chan >= 0) {
		garbage_message(srv->chan, args[1], out);
	} else if (argc == 2 && strcmp(args[0], "LOG") == 0) {
		forged_log(args[1], out);
	} else if (argc == 2 && strcmp(args[0], "OPEN") == 0) {
		int fd = open(args[1], O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			outbuf_puts(out, "+OK opened\r\n");
		} else {
			outbuf_printf(out, "-ERR %s\r\n", strerrorname_np(errno));
		}
	} else if (argc == 2 && strcmp(args[0], "BIND") == 0) {
		outbuf_flush(out);
		probe_answer(out, probe_bind(srv, args + 1));
	} else if (argc < 1 || !run_probe(argc, args, out)) {
		outbuf_puts(out, "-ERR XTEST SYSCALL | DGRAM | GARBAGE kind | LOG text | OPEN path | probe args\r\n");
	}
}
#define TEST_COMMAND test_command
#else
#define TEST_COMMAND NULL
#endif

/* ---- the PROXY header, from a --trusted-proxy peer ---- */

/* The client's address for everything that uses the peer: logs, --tls-only, the delays. */
static int take_proxied_peer(struct server *srv, const char *addr, bool tls)
{
	char canonical[MAX_PEER_TEXT];
	/* proxy.c's text already, but it comes from the greeter: an address or nothing. */
	if (!peer_canonical_text(addr, canonical, sizeof(canonical)))
		return -1;
	snprintf(srv->peer.addr, sizeof(srv->peer.addr), "%s", canonical);
	srv->peer.loopback = peer_is_loopback_text(canonical);
	srv->peer.encrypted = srv->peer.loopback || tls;
	srv->scfg.plaintext_ok = !srv->cfg->tls_only || srv->peer.encrypted;
	return 0;
}

static int role_set_peer(void *ctx, const char *addr, bool tls)
{
	return take_proxied_peer(ctx, addr, tls);
}

/*
 * The greeter, before its greeting: the whole header within PROXY_TIMEOUT,
 * mandatory from a trusted peer. What follows it stays in buf (*pending
 * octets) for the session: nothing read is lost, nothing guessed.
 */
static int read_proxy_header(struct server *srv, char *buf, size_t *pending)
{
	time_t deadline = time(NULL) + PROXY_TIMEOUT;
	size_t len = 0;
	for (;;) {
		struct proxy_info pi;
		size_t used;
		char why[128];
		enum proxy_status st = proxy_parse((const unsigned char *)buf, len, &used, &pi,
						   why, sizeof(why));
		if (st == PROXY_OK) {
			if (pi.have_addr && (take_proxied_peer(srv, pi.addr, pi.tls) < 0 ||
					     privsep_proxied_peer(srv->chan, pi.addr, pi.tls) < 0))
				return -1;
			memmove(buf, buf + used, len - used);
			*pending = len - used;
			return 0;
		}
		if (st == PROXY_BAD) {
			log_msg(LOG_WARNING, "bad PROXY header from trusted peer %s: %s; closing",
				srv->peer.addr, why);
			return -1;
		}
		time_t left = deadline - time(NULL);
		ssize_t n = left > 0 ? client_read(buf + len, CLIENT_READ_SIZE - len, (unsigned)left) : -2;
		if (n <= 0) {
			log_msg(LOG_WARNING, "%s PROXY header from trusted peer %s; closing",
				n == -2 ? "timeout waiting for the" : "connection closed before the",
				srv->peer.addr);
			return -1;
		}
		len += (size_t)n;
	}
}

/* ---- the two halves of the session ---- */

/* The client's output, buffered, with its stall timer, for either half. */
static int open_client(struct server *srv, struct client_out *co, struct outbuf *ob)
{
	*co = (struct client_out){.fd = STDOUT_FILENO, .timeout = srv->cfg->timeout};
	srv->client = co;
	if (outbuf_init(ob, OUTBUF_SIZE, client_write, co) < 0) {
		log_msg(LOG_ERR, "out of memory");
		return -1;
	}
	return 0;
}

static int role_greet(void *ctx, int chan)
{
	struct server *srv = ctx;
	srv->chan = chan;
	struct client_out co;
	struct outbuf ob;
	if (open_client(srv, &co, &ob) < 0)
		return EXIT_CONFIG;
	struct session_backend be = {
		.login = greeter_login,
		.login_failed = greeter_login_failed,
		.update = no_update,
		.test = TEST_COMMAND,
		.ctx = srv,
	};
	struct session s;
	char buf[CLIENT_READ_SIZE];
	size_t pending = 0;
	if (srv->expect_proxy && read_proxy_header(srv, buf, &pending) < 0) {
		outbuf_free(&ob);
		return EXIT_SESSION;   /* no greeting: the proxy sees a closed connection */
	}
	session_init(&s, &srv->scfg, &be, &ob);
	session_greeting(&s);
	struct time_limit limit = greeter_limit(srv->cfg);
	serve(&s, &ob, &co, &limit, buf, &pending);
	int status = exit_status(s.end);
	if (s.end == END_HANDOFF) {
		status = privsep_handoff(chan, &s, buf, pending) == 0 ? EXIT_OK : EXIT_SESSION;
		explicit_bzero(buf, sizeof(buf));
	} else {
		session_log_summary(&s);
	}
	session_free(&s);
	outbuf_free(&ob);
	return status;
}

static int role_transact(void *ctx, struct mbox *mb, const struct handoff *h, int keeper)
{
	struct server *srv = ctx;
	srv->chan = -1;
	srv->keeper = keeper;
	struct client_out co;
	struct outbuf ob;
	if (open_client(srv, &co, &ob) < 0) {
		mbox_close(mb);
		return EXIT_CONFIG;
	}
	struct session_backend be = {
		.login = no_login,
		.update = session_update,
		.release = session_release,
		.test = TEST_COMMAND,
		.ctx = srv,
	};
	struct session s;
	char buf[CLIENT_READ_SIZE];
	size_t pending = h->pending_len;
	memcpy(buf, h->pending, pending);
	session_init(&s, &srv->scfg, &be, &ob);
	session_resume(&s, h->user, h->bad_commands, h->started, mb);
	struct time_limit limit = session_limit(srv->cfg);
	serve(&s, &ob, &co, &limit, buf, &pending);
	session_log_summary(&s);
	int status = exit_status(s.end);
	session_free(&s);
	outbuf_free(&ob);
	return status;
}

/* ---- start-up of the process model ---- */

/* The greeter's account: --preauth-user, else pop3d, else nobody; never root. */
static int find_preauth_account(const struct config *cfg, struct privsep_config *ps)
{
	const char *name = cfg->preauth_user ? cfg->preauth_user : PREAUTH_USER;
	struct passwd *pw = getpwnam(name);
	if (!pw && !cfg->preauth_user) {
		log_msg(LOG_NOTICE, "no account %s for the pre-login process: using %s",
			PREAUTH_USER, PREAUTH_FALLBACK_USER);
		name = PREAUTH_FALLBACK_USER;
		pw = getpwnam(name);
	}
	if (!pw) {
		log_msg(LOG_ERR, "--preauth-user %s: no such account", name);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		log_msg(LOG_ERR, "--preauth-user %s: refusing an account with uid or gid 0", name);
		return -1;
	}
	ps->preauth_uid = pw->pw_uid;
	ps->preauth_gid = pw->pw_gid;
	return 0;
}

/*
 * dir exists as a root-owned directory nobody else may write, made with
 * mode if missing; exact: its mode made mode if it is not (no chmod when it is).
 */
static int root_owned_dir(const char *dir, mode_t mode, bool exact)
{
	struct stat st;
	if (mkdir(dir, mode) < 0 && errno != EEXIST) {
		log_msg(LOG_ERR, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		log_msg(LOG_ERR, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)) {
		log_msg(LOG_ERR, "%s must be a directory owned by root and writable by nobody else",
			dir);
		return -1;
	}
	if (exact && (st.st_mode & 07777) != mode && chmod(dir, mode) < 0) {
		log_msg(LOG_ERR, "chmod %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* The greeter's root: empty, root's, not writable even by root's own bit (made on first use). */
static int prepare_empty_dir(const char *dir)
{
	char parent[MAX_PATH_LEN];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (root_owned_dir(parent, 0755, false) < 0)
			return -1;
	}
	return root_owned_dir(dir, 0555, true);
}

static int setup_process_model(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	srv->ps = (struct privsep_config){
		.root = srv->root,
		.empty_dir = PREAUTH_EMPTY_DIR,
		.strict = cfg->sandbox_strict,
		.login_delay = cfg->login_delay,
		.max_failed_logins = MAX_FAILED_LOGINS,
		.expect_proxy = srv->expect_proxy,
		.state_dir = cfg->state_dir,
		.throttle = cfg->throttle,
		.peer = srv->scfg.peer,
		.log_on_stderr = strcmp(cfg->log_dest, "stderr") == 0,
		/* A session without an address has no source to count or to know. */
		.source = strcmp(srv->scfg.peer, "local") == 0 ||
			  strcmp(srv->scfg.peer, "unknown") == 0 ? NULL : srv->scfg.peer,
	};
	srv->chan = srv->keeper = -1;
	if (sandbox_seccomp_skipped()) {
		log_msg(cfg->sandbox_strict ? LOG_ERR : LOG_WARNING,
			"running under valgrind: the seccomp filters cannot be loaded%s",
			cfg->sandbox_strict ? "; --sandbox=strict refuses to serve" : "");
		if (cfg->sandbox_strict)
			return -1;
	}
	if (!srv->root) {
		if (cfg->preauth_user)
			log_msg(LOG_NOTICE, "not started as root: --preauth-user %s is ignored",
				cfg->preauth_user);
		return 0;
	}
	if (find_preauth_account(cfg, &srv->ps) < 0 || prepare_empty_dir(PREAUTH_EMPTY_DIR) < 0)
		return -1;
	return 0;
}

/* Without close_range(2) (Linux < 5.9, or a filter refusing it): what /proc lists. */
static int close_listed_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return -1;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end == '\0' && fd > STDERR_FILENO && fd != dirfd(dir))
			close((int)fd);   /* closed even when it says EINTR */
	}
	closedir(dir);
	return 0;
}

/*
 * Descriptors the front end left open (socat leaves 3, 4, 10, 251) are no
 * business of any process of the session: closed before anything is opened
 * or read, and so before log_open.
 */
static void close_inherited_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)STDERR_FILENO + 1, ~0U, 0U) == 0)
		return;
#endif
	if (close_listed_fds() == 0)
		return;
	struct rlimit rl;   /* no /proc either: every number up to the limit */
	int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MAX_CLOSE_FALLBACK ?
		  (int)rl.rlim_cur : MAX_CLOSE_FALLBACK;
	for (int fd = STDERR_FILENO + 1; fd < max; fd++)
		close(fd);
}

int main(int argc, char **argv)
{
	close_inherited_fds();
	struct config cfg;
	if (options_defaults(&cfg) < 0 || options_open_log(argc, argv, &cfg) < 0)
		return refuse_client(EXIT_CONFIG);
	if (options_parse(argc, argv, &cfg) < 0)
		return refuse_client(EXIT_USAGE);
	if (cfg.hash_mode)
		return run_hash();
	struct server srv = {.cfg = &cfg, .root = geteuid() == 0};
	if (cfg.recover_path)
		return run_recover(&srv);
	if (check_config(&srv) < 0)
		return refuse_client(EXIT_CONFIG);
	options_serving();   /* stderr is no longer ours to write */
	peer_find(&srv.peer);
	srv.expect_proxy = cfg.trusted_proxies.count > 0 &&
			   proxy_trusted(&cfg.trusted_proxies, srv.peer.addr);
	if (install_signals() < 0) {
		log_msg(LOG_ERR, "cannot install signal handlers: %s", strerror(errno));
		return refuse_client(EXIT_CONFIG);
	}

	srv.scfg = (struct session_config){
		.peer = srv.peer.addr,
		.max_failed_logins = MAX_FAILED_LOGINS,
		.max_bad_commands = MAX_BAD_COMMANDS,
		.max_preauth_input = MAX_PREAUTH_INPUT,
		.plaintext_ok = !cfg.tls_only || srv.peer.encrypted,
	};
	if (setup_process_model(&srv) < 0)
		return refuse_client(EXIT_CONFIG);
	struct privsep_roles roles = {
		.ctx = &srv,
		.greet = role_greet,
		.authenticate = role_authenticate,
		.take_maildrop = role_take_maildrop,
		.transact = role_transact,
		.set_peer = role_set_peer,
		.update = role_update,
	};
	int status = privsep_run(&srv.ps, &roles);
	log_close();
	return status;
}
