/* pop3d: one POP3 session on stdin/stdout. Start-up, and the roles of the process model wired. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "auth.h"
#include "client.h"
#include "config_check.h"
#include "exitcode.h"
#include "hashcmd.h"
#include "limits.h"
#include "log.h"
#include "maildrop.h"
#include "mbox.h"
#include "options.h"
#include "outbuf.h"
#include "peer.h"
#include "preauth.h"
#include "privsep.h"
#include "proxy.h"
#include "recover.h"
#include "sandbox.h"
#include "session.h"
#include "update.h"

/* What the roles share: the settings, the client, the channels of this process. */
struct server {
	const struct config *cfg;
	struct auth_config auth;
	bool root;                  /* started as root: must drop privileges */
	struct maildrop md;         /* the worker's maildrop: its account, journal places, sandbox */
	struct privsep_config ps;   /* the process model's settings */
	struct session_config scfg; /* what both halves of the session are told */
	struct peer peer;           /* scfg.peer is peer.addr */
	bool expect_proxy;          /* the peer is a --trusted-proxy: a PROXY header comes first */
	int chan;                   /* greeter: the channel to the authenticator */
	int keeper;                 /* session process: the channel to the keeper */
	struct client_out *client;  /* its write timer is stopped for login and update */
};

#ifdef POP3D_FAULT_INJECTION
/* Test builds (tests/pop3d-fault): testhooks.c's crashes and XTEST. */
#include "testhooks.h"
#define UPDATE_HOOKS (&testhooks_update)
#define RECOVER_HOOKS (&testhooks_recover)
#define KEEPER_PROBE testhooks_keeper_probe

/* XTEST, with the channels this process has. */
static void test_command(void *ctx, int argc, char **args, struct outbuf *out)
{
	const struct server *srv = ctx;
	testhooks_command(srv->chan, srv->keeper, argc, args, out);
}
#define TEST_COMMAND test_command
#else
#define UPDATE_HOOKS NULL
#define RECOVER_HOOKS NULL
#define KEEPER_PROBE NULL
#define TEST_COMMAND NULL
#endif

/* ---- the authenticator's and the keeper's work (privsep.c runs them) ---- */

static enum auth_result role_authenticate(void *ctx, const char *user, const char *password,
					  struct account *acct)
{
	const struct server *srv = ctx;
	return auth_login(&srv->auth, user, password, acct);
}

static enum login_result role_take_maildrop(void *ctx, const struct account *acct,
					    struct mbox **mb, char *why, size_t whylen)
{
	struct server *srv = ctx;
	return maildrop_take(&srv->md, acct, mb, why, whylen);
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
	client_disarm(srv->client);   /* no SIGALRM while the authenticator works */
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
	client_disarm(srv->client);   /* nor in the middle of an update */
	return privsep_update(srv->keeper, mb, why, whylen);
}

static void session_release(void *ctx)
{
	const struct server *srv = ctx;
	privsep_release(srv->keeper);
}

/* ---- the PROXY header, from a --trusted-proxy peer ---- */

/* The client's address for everything that uses the peer: logs, --tls-only, the delays. */
static int take_proxied_peer(struct server *srv, const char *addr, bool tls)
{
	if (peer_from_proxy(&srv->peer, addr, tls) < 0)
		return -1;
	srv->scfg.plaintext_ok = peer_plaintext_ok(&srv->peer, srv->cfg->tls_only);
	return 0;
}

static int role_set_peer(void *ctx, const char *addr, bool tls)
{
	return take_proxied_peer(ctx, addr, tls);
}

/*
 * The greeter's PROXY header: the client it names becomes the peer, here and
 * in the authenticator.
 */
static int read_proxy_header(struct server *srv, char *buf, size_t *pending)
{
	struct proxy_info pi;
	if (client_read_proxy_header(srv->peer.addr, buf, pending, &pi) < 0)
		return -1;
	if (pi.have_addr && (take_proxied_peer(srv, pi.addr, pi.tls) < 0 ||
			     privsep_proxied_peer(srv->chan, pi.addr, pi.tls) < 0))
		return -1;
	return 0;
}

/* ---- the two halves of the session ---- */

/* The client's output, buffered, with its stall timer stopped for login and update. */
static int open_client(struct server *srv, struct client_out *co, struct outbuf *ob)
{
	srv->client = co;
	return client_open(co, ob, srv->cfg->timeout);
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
	struct time_limit limit = client_greeter_limit(srv->cfg);
	client_serve(&s, &ob, &co, &limit, buf, &pending);
	int status = client_exit_status(s.end);
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
	struct time_limit limit = client_session_limit(srv->cfg);
	client_serve(&s, &ob, &co, &limit, buf, &pending);
	session_log_summary(&s);
	int status = client_exit_status(s.end);
	session_free(&s);
	outbuf_free(&ob);
	return status;
}

/* ---- start-up of the process model ---- */

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
		.source = peer_source(&srv->peer),
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
	return preauth_prepare(cfg, &srv->ps);
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
	if (options_start(argc, argv, &cfg) < 0)
		return refuse_client(EXIT_CONFIG);
	if (options_parse(argc, argv, &cfg) < 0)
		return refuse_client(EXIT_USAGE);
	if (cfg.hash_mode)
		return hashcmd_run();
	struct server srv = {.cfg = &cfg, .root = geteuid() == 0};
	if (cfg.recover_path)
		return recover_run(&cfg, srv.root, RECOVER_HOOKS);
	srv.md = (struct maildrop){.cfg = &cfg, .root = srv.root, .recover_hooks = RECOVER_HOOKS,
				    .sandboxed = KEEPER_PROBE};
	if (config_check(&cfg, srv.root) < 0)
		return refuse_client(EXIT_CONFIG);
	srv.auth = (struct auth_config){
		.passwd_file = cfg.passwd_file,
		.mailbox_template = cfg.mailbox_template,
		.virtual_home = cfg.virt_home[0] ? cfg.virt_home : NULL,
	};
	options_serving();   /* stderr is no longer ours to write */
	peer_find(&srv.peer);
	srv.expect_proxy = cfg.trusted_proxies.count > 0 &&
			   proxy_trusted(&cfg.trusted_proxies, srv.peer.addr);
	if (client_install_signals() < 0) {
		log_msg(LOG_ERR, "cannot install signal handlers: %s", strerror(errno));
		return refuse_client(EXIT_CONFIG);
	}

	srv.scfg = (struct session_config){
		.peer = srv.peer.addr,
		.max_failed_logins = MAX_FAILED_LOGINS,
		.max_bad_commands = MAX_BAD_COMMANDS,
		.max_preauth_input = MAX_PREAUTH_INPUT,
		.plaintext_ok = peer_plaintext_ok(&srv.peer, cfg.tls_only),
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
