/* Accounts and passwords: system accounts or a virtual-users file, crypt(3). */
#ifndef POP3D_AUTH_H
#define POP3D_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "limits.h"

struct auth_config {
	const char *passwd_file;       /* --passwd, NULL for system accounts */
	const char *mailbox_template;  /* --mailbox */
	const char *virtual_home;      /* home of the --user account, or NULL */
};

/* Who logged in and what to serve. */
struct account {
	char name[MAX_USER_NAME + 1];
	bool system;                   /* a system account: drop to uid/gid */
	uid_t uid;
	gid_t gid;
	char home[MAX_PATH_LEN];       /* "" when unknown */
	char mailbox[MAX_PATH_LEN];    /* expanded mailbox path */
};

/* One line of a --passwd file. Fields point into the parsed line. */
struct passwd_entry {
	const char *name;
	const char *hash;
	const char *mailbox;           /* NULL when the line has no third field */
	const char *problem;           /* why a malformed line is one, else NULL */
};

enum auth_result {
	AUTH_OK = 0,
	AUTH_FAIL,      /* unknown user or wrong password: indistinguishable */
	AUTH_ERROR,     /* the passwd file or the system could not be read */
};

/*
 * Why name is no user name for its encoding, or NULL: "not valid UTF-8" (RFC
 * 3629: an overlong form, a surrogate, beyond U+10FFFF, a cut sequence) or
 * "control character" (C0, DEL, C1). The one UTF-8 check of pop3d: the
 * session asks it of what a client sends, auth_valid_username of every name.
 */
const char *auth_name_encoding_problem(const char *name);

/*
 * Safe to put in a path and a log line: at most MAX_USER_NAME octets of
 * well-formed UTF-8; no '/', "..", '%', ':', blank or control character; no
 * '.' or '-' first. Compared octet for octet (no Unicode normalisation).
 */
bool auth_valid_username(const char *name);

/*
 * Parse one line (modified in place, trailing newline removed by the caller or
 * not). Returns 1 for an entry, 0 for a blank or comment line, -1 if malformed
 * (e->problem says why: "empty hash", "no ':' after the name" ...).
 */
int passwd_parse_line(char *line, struct passwd_entry *e);

/*
 * Why password can never log in (NULL when it may): empty (whatever the hash
 * would say of it), or longer than MAX_PASSWORD. Every path that checks or
 * makes a hash asks this.
 */
const char *auth_password_problem(const char *password);

/* crypt(3) the password with hash's settings, compare in constant time. */
bool auth_check_hash(const char *password, const char *hash);

/* A new hash with libcrypt's preferred method. 0, or -1 (also for a refused password). */
int auth_make_hash(const char *password, char *out, size_t outlen);

/*
 * Expand a mailbox template: %u user, %h home, %% '%'. Returns 0, or -1 when
 * the result is too long, %h is used without a home, or % is followed by
 * anything else.
 */
int auth_expand_mailbox(const char *tmpl, const char *user, const char *home,
			char *out, size_t outlen);

/*
 * Why a template (--mailbox, --index-dir, --journal-dir, a passwd file's
 * third field) can never expand to a usable path, or NULL: an unknown %
 * escape, a lone % at the end, too long, or not absolute (it must start with
 * '/' or %h). The text names no template (a static buffer, or a constant).
 */
const char *auth_template_problem(const char *tmpl);

/*
 * The directory part of tmpl that no expansion changes: up to the last '/'
 * before the first '%' ("/var/mail" of "/var/mail/%u", of "/var/mail/all"
 * and of "/var/mail/%u/inbox"; "" for "%h/mbox"). Its length, 0 when none.
 */
size_t auth_template_fixed_dir(const char *tmpl, char *out, size_t outlen);

/*
 * Start-up: read the --passwd file once, logging each malformed line with its
 * reason (later reads of the same file in this process do not repeat them).
 * 0, or -1 (logged) when it cannot be read.
 */
int auth_check_passwd_file(const char *path);

/*
 * Verify user/password and fill *acct. An unknown user costs the same crypt(3)
 * work as a wrong password. Invalid names fail like unknown users.
 */
enum auth_result auth_login(const struct auth_config *cfg, const char *user,
			    const char *password, struct account *acct);

/*
 * The answer time of a failed check. The work differs with the hash (an
 * unknown name costs the dummy's crypt(3), a known one its own hash's), so a
 * failed check is answered no earlier than AUTH_FAIL_FLOOR_MSEC after it
 * began: auth_check_begin() where the check's time starts to count,
 * auth_fail_floor() before the failure is answered. It also burns CPU up to
 * AUTH_FAIL_CPU_MSEC since the start, and spends the floor's last
 * AUTH_FAIL_SPIN_USEC running: the scheduler treats a process by the CPU it
 * used, and a CPU by how long it idled (see auth.c). The floor is above
 * yescrypt's and sha512crypt's default cost; a hash slower than it (bcrypt
 * cost 12, scrypt $7$) still shows through: keep every hash of a --passwd
 * file, and its first one (the unknown names' dummy) above all, cheaper.
 * Successful logins are not padded.
 */
struct auth_clock {
	struct timespec wall;   /* CLOCK_MONOTONIC */
	struct timespec cpu;    /* CLOCK_PROCESS_CPUTIME_ID */
	bool ok;
};
void auth_check_begin(struct auth_clock *start);
void auth_fail_floor(const struct auth_clock *start);

#endif
