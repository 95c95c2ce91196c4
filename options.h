/*
 * The command line: the one struct config every module takes its settings
 * from, its defaults, parsing, --help, and how a usage or configuration
 * error is reported (the log, stderr for humans, one -ERR line for the client).
 */
#ifndef POP3D_OPTIONS_H
#define POP3D_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "limits.h"
#include "proxy.h"
#include "throttle.h"

/* The parsed configuration: the only state shared across modules. */
struct config {
	const char *passwd_file;
	const char *mailbox_template;
	const char *virtual_user;
	const char *log_dest;
	const char *recover_path;
	size_t max_messages;
	off_t max_mailbox_size;
	const char *index_dir;   /* --index-dir template, NULL: no index files */
	const char *journal_dir; /* --journal-dir template, NULL: journal beside the mailbox */
	const char *preauth_user; /* --preauth-user: the greeter's account, as root */
	const char *state_dir;   /* --state-dir, NULL: none ("none") */
	struct proxy_trust trusted_proxies;  /* --trusted-proxy: may send a PROXY header */
	unsigned timeout;
	unsigned login_delay;
	unsigned lock_methods;
	unsigned max_session_time;
	unsigned login_timeout;  /* --login-timeout: seconds to log in */
	struct throttle_params throttle; /* --throttle-account, -known, -source, --known-source-days */
	bool hash_mode;
	bool tls_only;        /* refuse logins on connections not known to be encrypted */
	bool sandbox_strict;     /* --sandbox=strict: refuse to serve without every layer */
	bool sandbox_no_landlock; /* --sandbox=no-landlock: virtual users under --user without it */
	/* The --user account, looked up at start (config_check). */
	uid_t virt_uid;
	gid_t virt_gid;
	char virt_home[MAX_PATH_LEN];  /* "": none */
};

/* cfg with every default. 0, or -1 when a compiled-in default (limits.h) is not valid. */
int options_defaults(struct config *cfg);

/*
 * Start-up: cfg with every default, and the log opened before anything can
 * go wrong: --log wherever it stands on the command line, else syslog (also
 * when --log's file cannot be opened: that is logged there). 0, or -1
 * (reported: a configuration error).
 */
int options_start(int argc, char **argv, struct config *cfg);

/*
 * The command line into cfg. --help and --version print and exit. 0, or -1
 * after a usage error was reported (config_error).
 */
int options_parse(int argc, char **argv, struct config *cfg);

/* --help's text. */
void options_usage(FILE *f);

/*
 * The one place a usage or configuration error goes: the log, and stderr
 * when that is for humans (not the client's socket) until options_serving(),
 * a usage error with the pointer to --help. Never the client: it gets
 * refuse_client()'s line.
 */
void config_error(bool usage_error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Serving: stderr is no longer ours to write. */
void options_serving(void);

/*
 * The client's one line when pop3d cannot serve for its configuration; what
 * it already sent is drained, the log closed. Returns status.
 */
int refuse_client(int status);

#endif
