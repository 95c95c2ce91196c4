/* The command line: struct config, its defaults, parsing, --help, reporting its errors. */
#define _GNU_SOURCE
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcode.h"
#include "lock.h"
#include "log.h"

/* Start-up errors also go to stderr (config_error): set once the log is open. */
static bool errors_on_stderr;

/*
 * stderr is for a human (a terminal, a script, a supervisor's log) unless it
 * is a socket: under inetd, xinetd, systemd's Accept=yes and stunnel it is
 * the client's connection.
 */
static bool stderr_is_for_humans(void)
{
	struct stat st;
	return fstat(STDERR_FILENO, &st) == 0 && !S_ISSOCK(st.st_mode);
}

/*
 * The one place a usage or configuration error goes: the log (syslog, or
 * --log wherever it stands on the command line), and stderr when that is
 * for humans, a usage error with the pointer to --help. Never the client:
 * it gets refuse_client()'s line.
 */
void config_error(bool usage_error, const char *fmt, ...)
{
	char msg[MAX_LOG_LINE];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_ERR, "%s%s", usage_error ? "usage error: " : "", msg);
	if (!errors_on_stderr)
		return;
	fprintf(stderr, "%s: %s\n", POP3D_NAME, msg);
	if (usage_error)
		fprintf(stderr, "Try '%s --help' for more information.\n", POP3D_NAME);
}

/* The client's one line when pop3d cannot serve for its configuration; returns status. */
int refuse_client(int status)
{
	static const char line[] = "-ERR [SYS/TEMP] server configuration error, see the server log\r\n";
	ssize_t n;
	do
		n = write(STDOUT_FILENO, line, sizeof(line) - 1);
	while (n < 0 && errno == EINTR);   /* no client (a closed or odd stdout): nothing lost */
	/*
	 * What the client already sent (up to what it may send before a login)
	 * is read and dropped: a socket closed with unread input is reset, and a
	 * reset can destroy the line before the client reads it.
	 */
	char sink[CLIENT_READ_SIZE];
	ssize_t got;
	for (size_t drained = 0; drained < MAX_PREAUTH_INPUT &&
	     (got = recv(STDIN_FILENO, sink, sizeof(sink), MSG_DONTWAIT)) > 0;)
		drained += (size_t)got;
	log_close();
	return status;
}

void options_usage(FILE *f)
{
	fprintf(f,
"Usage: pop3d [OPTION]...\n"
"Serve one POP3 session on standard input/output (from inetd, xinetd, systemd,\n"
"stunnel, tcpserver or socat) from a Unix mbox or a Maildir.\n"
"\n"
"  -P, --passwd=FILE       authenticate against FILE (virtual users: name:hash[:mailbox])\n"
"                          instead of the system accounts (getpwnam/getspnam + crypt(3))\n"
"  -m, --mailbox=TEMPLATE  mailbox path; %%u = user name, %%h = home directory, %%%% = '%%'\n"
"                          (default: /var/mail/%%u); absolute (/ or %%h first), and its\n"
"                          directory before the first %% must exist. A path ending in\n"
"                          '/' (%%h/Maildir/), or a directory holding cur/, new/ and\n"
"                          tmp/, is a Maildir; anything else is an mbox file\n"
"  -u, --user=ACCOUNT      when started as root, serve virtual users with ACCOUNT's uid/gid\n"
"  -t, --timeout=SECONDS   idle autologout timer (default %d, the RFC 1939 minimum)\n"
"  -L, --log=DEST          syslog (default, facility mail), stderr, or a file path\n"
"  -H, --hash              read a password on stdin, print a crypt(3) hash for a passwd file\n"
"  -l, --lock=METHODS      mailbox locking, a comma list of dotlock, fcntl, flock\n"
"                          (default: dotlock,fcntl, as Debian's MDAs lock). The lock is held\n"
"                          only while scanning at login and while updating at QUIT. With\n"
"                          flock listed, flock(2) is taken too, for MDAs configured to use it.\n"
"  -d, --login-delay=SECS  delay per failed login so far (default %d, 0 to disable)\n"
"  -T, --tls-only          refuse USER, PASS and AUTH unless the connection is known\n"
"                          to be encrypted: started by stunnel's exec (a non-TCP\n"
"                          stdin and REMOTE_HOST set) or coming from loopback\n"
"  -R, --recover=MAILBOX   repair MAILBOX if an update was interrupted, say what was\n"
"                          done, then exit (%d: no such mailbox)\n"
"      --max-messages=N    refuse a mailbox of more than N messages (default %d)\n"
"      --max-mailbox-size=SIZE  refuse a mailbox larger than SIZE octets at login;\n"
"                          K, M, G, T suffixes (default 1T)\n"
"      --max-session-time=SECONDS  end any session after this long (default %d)\n"
"      --login-timeout=SECONDS  close a session not logged in after this long\n"
"                          (default %d)\n"
"      --index-dir=TEMPLATE  keep an index file per mailbox in this directory, so a\n"
"                          login rescans only mail added since (%%u, %%h, %%%% as for\n"
"                          --mailbox; off by default); made 0700 if missing\n"
"      --journal-dir=TEMPLATE  write update journals in this directory instead of\n"
"                          beside the mailbox (%%u, %%h, %%%%; as root, in a directory\n"
"                          UID/ of each account's own in it). Default: beside the\n"
"                          mailbox where the user may create files there, else\n"
"                          " POP3D_JOURNAL_DIR "/UID (Debian's /var/mail). A Maildir's\n"
"                          journal is always in the Maildir\n"
"      --preauth-user=ACCOUNT  as root, the unprivileged account that reads the\n"
"                          client before login, chrooted in " PREAUTH_EMPTY_DIR "\n"
"                          (default " PREAUTH_USER ", else " PREAUTH_FALLBACK_USER ")\n"
"      --trusted-proxy=CIDR[,CIDR...]  a connection from these networks starts\n"
"                          with a PROXY protocol v1 or v2 header (HAProxy, nginx);\n"
"                          the client's address is taken from it\n"
"      --sandbox=strict    refuse to serve where a sandbox layer (seccomp, Landlock)\n"
"                          is unavailable (default: log it once and serve)\n"
"      --sandbox=no-landlock  serve virtual users of one --user account (as root)\n"
"                          on a kernel without Landlock, kept apart by seccomp\n"
"                          alone (default: refuse to serve them there)\n"
"      --state-dir=DIR     failed logins across sessions are counted in DIR/" THROTTLE_FILE "\n"
"                          (default " DEFAULT_STATE_DIR ", made 0700 if missing; 'none': off)\n"
"      --throttle-account=N/SECS  failed logins to one account from addresses not\n"
"                          known for it: N at once, then one per SECS; past that\n"
"                          an attempt is refused unchecked, [LOGIN-DELAY], with\n"
"                          the wait (default " DEFAULT_THROTTLE_ACCOUNT "; 0: no limit)\n"
"      --throttle-known=N/SECS  the same from one address known for the account\n"
"                          (default " DEFAULT_THROTTLE_KNOWN "; 0: no limit)\n"
"      --throttle-source=N/SECS  failed logins from one address (IPv4, IPv6 /64)\n"
"                          to accounts it is not known for\n"
"                          (default " DEFAULT_THROTTLE_SOURCE "; 0: no limit)\n"
"      --known-source-days=DAYS  an address that logged in to an account within\n"
"                          DAYS is known for it: only --throttle-known applies\n"
"                          (default %d; 0: no address is known)\n"
"  -V, --version           print the version and exit\n"
"  -h, --help              print this help and exit\n"
"\n"
"Exit status: 0 after QUIT (and a successful update), %d for a usage error,\n"
"%d for a configuration error, %d when the update failed, %d otherwise.\n"
"A usage or configuration error is logged; the client gets one -ERR line.\n",
		DEFAULT_TIMEOUT, DEFAULT_LOGIN_DELAY, EXIT_NOINPUT, MAX_MESSAGES, DEFAULT_SESSION_TIME,
		DEFAULT_LOGIN_TIMEOUT, DEFAULT_KNOWN_DAYS,
		EXIT_USAGE, EXIT_CONFIG, EXIT_UPDATE, EXIT_SESSION);
}

/* --sandbox=strict or no-landlock: the two contradict each other. */
static int parse_sandbox(const char *arg, struct config *cfg)
{
	if (strcmp(arg, "strict") == 0)
		cfg->sandbox_strict = true;
	else if (strcmp(arg, "no-landlock") == 0)
		cfg->sandbox_no_landlock = true;
	else {
		config_error(true, "--sandbox %s: expected 'strict' or 'no-landlock'", arg);
		return -1;
	}
	if (cfg->sandbox_strict && cfg->sandbox_no_landlock) {
		config_error(true, "--sandbox=strict and --sandbox=no-landlock contradict "
			     "each other");
		return -1;
	}
	return 0;
}

/* A positive decimal number of seconds; 0 or junk is a usage error. */
static int parse_seconds(const char *arg, bool allow_zero, unsigned *out)
{
	char *end;
	if (!arg || *arg < '0' || *arg > '9')
		return -1;
	errno = 0;
	unsigned long v = strtoul(arg, &end, 10);
	if (errno || *end || v > 1000000 || (v == 0 && !allow_zero))
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Options without a short form. */
enum { OPT_MAX_MESSAGES = 256, OPT_MAX_SIZE, OPT_MAX_SESSION_TIME, OPT_INDEX_DIR,
       OPT_JOURNAL_DIR, OPT_PREAUTH_USER, OPT_SANDBOX, OPT_TRUSTED_PROXY, OPT_STATE_DIR,
       OPT_THROTTLE_ACCOUNT, OPT_THROTTLE_KNOWN, OPT_THROTTLE_SOURCE, OPT_KNOWN_DAYS,
       OPT_LOGIN_TIMEOUT };

/* A throttle option's number: 0 (where allowed) to max. */
static int parse_throttle(const char *name, const char *arg, bool allow_zero, unsigned max,
			  unsigned *out)
{
	if (parse_seconds(arg, allow_zero, out) < 0 || *out > max) {
		config_error(true, "--%s %s: expected a number from %d to %u", name, arg,
			     allow_zero ? 0 : 1, max);
		return -1;
	}
	return 0;
}

/* A throttle rate, N/SECS or 0 (throttle.h). */
static int parse_rate(const char *name, const char *arg, struct throttle_rate *r)
{
	if (throttle_parse_rate(arg, r) < 0) {
		config_error(true, "--%s %s: expected N/SECS (N from 1 to %d, SECS from 1 to %d) "
			     "or 0", name, arg, MAX_THROTTLE_BURST, MAX_THROTTLE_SECONDS);
		return -1;
	}
	return 0;
}

/* A positive decimal count. */
static int parse_count(const char *arg, size_t *out)
{
	char *end;
	if (!arg || *arg < '0' || *arg > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (errno || *end || v == 0 || v > MAX_MESSAGES)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* A positive size in octets with an optional K, M, G or T suffix. */
static int parse_size(const char *arg, off_t *out)
{
	char *end;
	if (!arg || *arg < '0' || *arg > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: return -1;
	}
	if (errno || *end || v == 0 || v > ((unsigned long long)INT64_MAX >> shift))
		return -1;
	*out = (off_t)(v << shift);
	return 0;
}

/*
 * The options, for both passes over them (find_log_dest, parse_options). A
 * leading ':' makes getopt answer ':' for a missing argument; with opterr 0
 * getopt itself prints nothing (config_error says it, where it belongs).
 */
static const char shortopts[] = ":P:m:u:t:L:Hl:d:R:TVh";
static const struct option longopts[] = {
	{"passwd", required_argument, NULL, 'P'},
	{"mailbox", required_argument, NULL, 'm'},
	{"user", required_argument, NULL, 'u'},
	{"timeout", required_argument, NULL, 't'},
	{"log", required_argument, NULL, 'L'},
	{"hash", no_argument, NULL, 'H'},
	{"lock", required_argument, NULL, 'l'},
	{"login-delay", required_argument, NULL, 'd'},
	{"recover", required_argument, NULL, 'R'},
	{"tls-only", no_argument, NULL, 'T'},
	{"max-messages", required_argument, NULL, OPT_MAX_MESSAGES},
	{"max-mailbox-size", required_argument, NULL, OPT_MAX_SIZE},
	{"max-session-time", required_argument, NULL, OPT_MAX_SESSION_TIME},
	{"login-timeout", required_argument, NULL, OPT_LOGIN_TIMEOUT},
	{"index-dir", required_argument, NULL, OPT_INDEX_DIR},
	{"journal-dir", required_argument, NULL, OPT_JOURNAL_DIR},
	{"preauth-user", required_argument, NULL, OPT_PREAUTH_USER},
	{"sandbox", required_argument, NULL, OPT_SANDBOX},
	{"trusted-proxy", required_argument, NULL, OPT_TRUSTED_PROXY},
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{"throttle-account", required_argument, NULL, OPT_THROTTLE_ACCOUNT},
	{"throttle-known", required_argument, NULL, OPT_THROTTLE_KNOWN},
	{"throttle-source", required_argument, NULL, OPT_THROTTLE_SOURCE},
	{"known-source-days", required_argument, NULL, OPT_KNOWN_DAYS},
	{"version", no_argument, NULL, 'V'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* --log, wherever it stands: an error in an option before it is logged there too. */
static const char *find_log_dest(int argc, char **argv)
{
	const char *dest = "syslog";
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
		if (c == 'L')
			dest = optarg;
	optind = 0;   /* GNU getopt: 0 starts over, for parse_options */
	return dest;
}

/* What getopt refused ('?' unknown or ambiguous, ':' no argument), in words. */
static void bad_option(int c, char **argv)
{
	const char *arg = argv[optind - 1];
	bool long_form = strncmp(arg, "--", 2) == 0;
	if (c == ':' && long_form)
		config_error(true, "option '%s' needs an argument", arg);
	else if (c == ':')
		config_error(true, "option '-%c' needs an argument", optopt);
	else if (long_form || !optopt)
		config_error(true, "unrecognized or ambiguous option '%s'", arg);
	else
		config_error(true, "unrecognized option '-%c'", optopt);
}

int options_parse(int argc, char **argv, struct config *cfg)
{
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		switch (c) {
		case 'P': cfg->passwd_file = optarg; break;
		case 'm': cfg->mailbox_template = optarg; break;
		case 'u': cfg->virtual_user = optarg; break;
		case 'L': cfg->log_dest = optarg; break;
		case 'H': cfg->hash_mode = true; break;
		case 'R': cfg->recover_path = optarg; break;
		case 'T': cfg->tls_only = true; break;
		case OPT_INDEX_DIR: cfg->index_dir = optarg; break;
		case OPT_JOURNAL_DIR: cfg->journal_dir = optarg; break;
		case OPT_PREAUTH_USER: cfg->preauth_user = optarg; break;
		case OPT_TRUSTED_PROXY: {
			char why[MAX_REASON_LEN];
			if (proxy_trust_parse(optarg, &cfg->trusted_proxies, why, sizeof(why)) < 0) {
				config_error(true, "--trusted-proxy %s: %s", optarg, why);
				return -1;
			}
			break;
		}
		case OPT_STATE_DIR:
			if (*optarg != '/' && strcmp(optarg, "none") != 0) {
				config_error(true, "--state-dir %s: expected an absolute path or 'none'",
					     optarg);
				return -1;
			}
			cfg->state_dir = strcmp(optarg, "none") == 0 ? NULL : optarg;
			break;
		case OPT_THROTTLE_ACCOUNT:
			if (parse_rate("throttle-account", optarg, &cfg->throttle.account) < 0)
				return -1;
			break;
		case OPT_THROTTLE_KNOWN:
			if (parse_rate("throttle-known", optarg, &cfg->throttle.known) < 0)
				return -1;
			break;
		case OPT_THROTTLE_SOURCE:
			if (parse_rate("throttle-source", optarg, &cfg->throttle.source) < 0)
				return -1;
			break;
		case OPT_KNOWN_DAYS:
			if (parse_throttle("known-source-days", optarg, true, 3650,
					   &cfg->throttle.known_days) < 0)
				return -1;
			break;
		case OPT_SANDBOX:
			if (parse_sandbox(optarg, cfg) < 0)
				return -1;
			break;
		case OPT_MAX_MESSAGES:
			if (parse_count(optarg, &cfg->max_messages) < 0) {
				config_error(true, "--max-messages %s: expected a number from 1 to %d",
					     optarg, MAX_MESSAGES);
				return -1;
			}
			break;
		case OPT_MAX_SIZE:
			if (parse_size(optarg, &cfg->max_mailbox_size) < 0 ||
			    cfg->max_mailbox_size > MAX_MAILBOX_SIZE) {
				config_error(true, "--max-mailbox-size %s: expected a size like 500M, "
					     "at most 1T", optarg);
				return -1;
			}
			break;
		case OPT_MAX_SESSION_TIME:
			if (parse_seconds(optarg, false, &cfg->max_session_time) < 0) {
				config_error(true, "--max-session-time %s: expected a positive number of "
					     "seconds", optarg);
				return -1;
			}
			break;
		case OPT_LOGIN_TIMEOUT:
			if (parse_seconds(optarg, false, &cfg->login_timeout) < 0) {
				config_error(true, "--login-timeout %s: expected a positive number of "
					     "seconds", optarg);
				return -1;
			}
			break;
		case 't':
			if (parse_seconds(optarg, false, &cfg->timeout) < 0) {
				config_error(true, "--timeout %s: expected a positive number of "
					     "seconds", optarg);
				return -1;
			}
			break;
		case 'd':
			if (parse_seconds(optarg, true, &cfg->login_delay) < 0) {
				config_error(true, "--login-delay %s: expected a number of seconds",
					     optarg);
				return -1;
			}
			break;
		case 'l':
			if (lock_parse_methods(optarg, &cfg->lock_methods) < 0) {
				config_error(true, "--lock %s: expected a comma list of dotlock, fcntl, flock",
					     optarg);
				return -1;
			}
			break;
		case 'V':
			printf("%s %s\n", POP3D_NAME, POP3D_VERSION);
			exit(EXIT_OK);
		case 'h':
			options_usage(stdout);
			exit(EXIT_OK);
		default:
			bad_option(c, argv);
			return -1;
		}
	}
	if (optind < argc) {
		config_error(true, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}

/* ---- start-up: defaults and the log ---- */

/*
 * The log, before anything can go wrong: --log wherever it stands on the
 * command line, else syslog (also when --log's file cannot be opened: that
 * is logged there). Sets cfg->log_dest.
 */
static int open_log(int argc, char **argv, struct config *cfg)
{
	cfg->log_dest = find_log_dest(argc, argv);
	int rc = log_open(cfg->log_dest);
	int err = errno;
	if (rc < 0)
		(void)log_open("syslog");
	errors_on_stderr = stderr_is_for_humans() &&
			   (rc < 0 || strcmp(cfg->log_dest, "stderr") != 0);
	if (rc < 0)
		config_error(false, "--log %s: cannot open: %s (expected syslog, stderr or a file "
			     "pop3d may append to)", cfg->log_dest, strerror(err));
	return rc;
}

void options_serving(void)
{
	errors_on_stderr = false;
}

int options_defaults(struct config *cfg)
{
	*cfg = (struct config){
		.mailbox_template = "/var/mail/%u",
		.timeout = DEFAULT_TIMEOUT,
		.log_dest = "syslog",
		.login_delay = DEFAULT_LOGIN_DELAY,
		.lock_methods = LOCK_DEFAULT,
		.max_messages = MAX_MESSAGES,
		.max_mailbox_size = MAX_MAILBOX_SIZE,
		.max_session_time = DEFAULT_SESSION_TIME,
		.login_timeout = DEFAULT_LOGIN_TIMEOUT,
		.state_dir = DEFAULT_STATE_DIR,
		.throttle = {.known_days = DEFAULT_KNOWN_DAYS},
	};
	if (throttle_parse_rate(DEFAULT_THROTTLE_ACCOUNT, &cfg->throttle.account) < 0 ||
	    throttle_parse_rate(DEFAULT_THROTTLE_KNOWN, &cfg->throttle.known) < 0 ||
	    throttle_parse_rate(DEFAULT_THROTTLE_SOURCE, &cfg->throttle.source) < 0)
		return -1;
	return 0;
}

int options_start(int argc, char **argv, struct config *cfg)
{
	int defaults = options_defaults(cfg);
	if (open_log(argc, argv, cfg) < 0)
		return -1;
	if (defaults < 0) {
		config_error(false, "limits.h: a default --throttle-* rate is not a rate");
		return -1;
	}
	return 0;
}
