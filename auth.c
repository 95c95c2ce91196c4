/* Accounts and passwords: system accounts or a virtual-users file, crypt(3). */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <shadow.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- User names and passwd file lines ---- */

/*
 * The code point of the well-formed UTF-8 sequence at p (RFC 3629 section 4:
 * shortest form, no surrogates, at most U+10FFFF) and its length in *len;
 * -1 when p does not start one. p is NUL-terminated: a cut sequence stops there.
 */
static long utf8_decode(const unsigned char *p, size_t *len)
{
	static const long min_of[5] = { 0, 0, 0x80, 0x800, 0x10000 };  /* shortest forms */
	size_t n = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 :
		   p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	if (n == 0)
		return -1;   /* a continuation octet, C0/C1 (overlong) or F5..FF */
	long cp = n == 1 ? p[0] : p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;   /* cut short (the NUL included) */
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min_of[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*len = n;
	return cp;
}

/* C0, DEL and C1 (U+0080..U+009F): never in a name. */
static bool control_char(long cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

const char *auth_name_encoding_problem(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;
	while (*p) {
		size_t n;
		long cp = utf8_decode(p, &n);
		if (cp < 0)
			return "not valid UTF-8";
		if (control_char(cp))
			return "control character";
		p += n;
	}
	return NULL;
}

/* ASCII: printable, minus what could make a path or a passwd field. Beyond it, UTF-8. */
static bool username_char_ok(unsigned char c)
{
	return c >= 0x80 || (c >= 0x21 && c <= 0x7e && c != '/' && c != '%' && c != ':');
}

bool auth_valid_username(const char *name)
{
	if (!name)
		return false;
	size_t len = strnlen(name, MAX_USER_NAME + 1);
	if (len == 0 || len > MAX_USER_NAME)
		return false;
	if (name[0] == '.' || name[0] == '-' || strstr(name, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!username_char_ok((unsigned char)name[i]))
			return false;
	return auth_name_encoding_problem(name) == NULL;
}

/* Remove one trailing "\n" or "\r\n". */
static void strip_line_end(char *line)
{
	size_t len = strlen(line);
	if (len == 0 || line[len - 1] != '\n')
		return;
	line[--len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
}

static bool is_blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t')
			return false;
	return true;
}

/* crypt(3) hashes are printable ASCII without spaces. */
static bool hash_field_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* Absolute (it is %-expanded later), valid % escapes, no control characters: why not, or NULL. */
static const char *mailbox_field_problem(const char *s)
{
	if (s[0] != '/')
		return "mailbox field not an absolute path";
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "control character in the mailbox field";
	return auth_template_problem(s) ? "bad % escape in the mailbox field" : NULL;
}

/* Cut s at its first ':' and return what follows, or NULL if there is none. */
static char *split_field(char *s)
{
	char *colon = strchr(s, ':');
	if (!colon)
		return NULL;
	*colon = '\0';
	return colon + 1;
}

/* Why a line that is not blank or a comment is no entry (NULL: it is one); fields cut. */
static const char *entry_problem(char *line, struct passwd_entry *e)
{
	char *hash = split_field(line);
	if (!hash)
		return "no ':' after the name";
	char *mailbox = split_field(hash);
	if (mailbox && strchr(mailbox, ':'))
		return "more than three fields";
	if (!line[0])
		return "empty name";
	if (!auth_valid_username(line))
		return "invalid user name";
	if (!hash[0])
		return "empty hash";
	if (!hash_field_ok(hash))
		return "hash not crypt(3)-like (blank or control character in it)";
	const char *why = mailbox ? mailbox_field_problem(mailbox) : NULL;
	if (why)
		return why;
	e->name = line;
	e->hash = hash;
	e->mailbox = mailbox;
	return NULL;
}

int passwd_parse_line(char *line, struct passwd_entry *e)
{
	e->name = e->hash = e->mailbox = e->problem = NULL;
	strip_line_end(line);
	if (line[0] == '#' || is_blank(line))
		return 0;
	e->problem = entry_problem(line, e);
	return e->problem ? -1 : 1;
}

/* ---- Hashes ---- */

/* '!' or '*' first marks a locked or disabled account (passwd(5), shadow(5)). */
static bool hash_usable(const char *hash)
{
	return hash && hash[0] != '\0' && hash[0] != '!' && hash[0] != '*';
}

/* No early exit: the time depends on the lengths only, never on the contents. */
static bool equal_const_time(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t n = la > lb ? la : lb;
	size_t diff = la ^ lb;
	for (size_t i = 0; i < n; i++) {
		unsigned char ca = (unsigned char)a[i < la ? i : la];
		unsigned char cb = (unsigned char)b[i < lb ? i : lb];
		diff |= (size_t)(ca ^ cb);
	}
	return diff == 0;
}

/* One crypt(3) run with setting; true if the result is setting itself. */
static bool crypt_matches(const char *password, const char *setting)
{
	struct crypt_data data;
	memset(&data, 0, sizeof(data));
	const char *out = crypt_rn(password, setting, &data, (int)sizeof(data));
	/* '*' first is libxcrypt's failure token, never a hash. */
	bool ok = out && out[0] != '*' && equal_const_time(out, setting);
	explicit_bzero(&data, sizeof(data));
	return ok;
}

/* Never a password, whatever a hash says of it. */
static bool password_empty(const char *password)
{
	return !password || !password[0];
}

const char *auth_password_problem(const char *password)
{
	if (password_empty(password))
		return "empty password";
	if (strnlen(password, MAX_PASSWORD + 1) > MAX_PASSWORD)
		return "password too long";
	return NULL;
}

bool auth_check_hash(const char *password, const char *hash)
{
	if (password_empty(password) || !hash_usable(hash))
		return false;
	return crypt_matches(password, hash);
}

/* A fresh setting for libcrypt's preferred method (yescrypt on Debian). */
static int gensalt_preferred(char out[CRYPT_GENSALT_OUTPUT_SIZE])
{
	const char *s = crypt_gensalt_rn(NULL, 0, NULL, 0, out, CRYPT_GENSALT_OUTPUT_SIZE);
	return s && s[0] != '*' ? 0 : -1;
}

int auth_make_hash(const char *password, char *out, size_t outlen)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (auth_password_problem(password) || gensalt_preferred(setting) < 0)
		return -1;
	struct crypt_data data;
	memset(&data, 0, sizeof(data));
	const char *hash = crypt_rn(password, setting, &data, (int)sizeof(data));
	int rc = -1;
	if (hash && hash[0] != '*') {
		size_t len = strlen(hash);
		if (len < outlen) {
			memcpy(out, hash, len + 1);
			rc = 0;
		}
	}
	explicit_bzero(&data, sizeof(data));
	return rc;
}

/*
 * The one place a login checks a password. It always runs crypt(3) exactly
 * once: against the account's hash when there is a usable one, otherwise
 * against a dummy setting of the same cost, result discarded. An unknown
 * user, a locked account or a refused request thus costs what a wrong
 * password costs.
 */
static bool verify_or_dummy(const char *password, const char *hash, const char *dummy)
{
	if (hash_usable(hash))
		return crypt_matches(password, hash);
	(void)crypt_matches(password, dummy);
	return false;
}

/* ---- Mailbox templates ---- */

/* A bounded string builder; one overflow poisons it (never truncate silently). */
struct strbuf {
	char *p;
	size_t len;
	size_t cap;       /* > 0; len < cap keeps room for the NUL */
	bool overflow;
};

static void strbuf_append(struct strbuf *sb, const char *s, size_t n)
{
	if (sb->overflow || n >= sb->cap - sb->len) {
		sb->overflow = true;
		return;
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
}

/*
 * What %c stands for in a template: the one list of escapes (%u, %h, %%).
 * NULL for an unknown one, and for %h without a home.
 */
static const char *escape_value(char c, const char *user, const char *home)
{
	switch (c) {
	case 'u': return user;
	case 'h': return home && home[0] ? home : NULL;
	case '%': return "%";
	default: return NULL;
	}
}

int auth_expand_mailbox(const char *tmpl, const char *user, const char *home,
			char *out, size_t outlen)
{
	if (!out || outlen == 0)
		return -1;
	out[0] = '\0';
	if (!tmpl || !user)
		return -1;
	struct strbuf sb = { .p = out, .len = 0, .cap = outlen, .overflow = false };
	for (const char *p = tmpl; *p; p++) {
		if (*p != '%') {
			strbuf_append(&sb, p, 1);
			continue;
		}
		p++;    /* a trailing lone '%' lands on the NUL: rejected below */
		const char *value = *p ? escape_value(*p, user, home) : NULL;
		if (!value) {
			out[0] = '\0';
			return -1;
		}
		strbuf_append(&sb, value, strlen(value));
	}
	if (sb.overflow) {
		out[0] = '\0';
		return -1;
	}
	out[sb.len] = '\0';
	return 0;
}

const char *auth_template_problem(const char *tmpl)
{
	static char why[64];
	for (const char *p = tmpl; *p; p++) {
		if (*p != '%')
			continue;
		if (!*++p)
			return "a lone '%' at its end (%u, %h and %% are known)";
		if (!escape_value(*p, "u", "/h")) {
			snprintf(why, sizeof(why), "unknown escape %%%c (%%u, %%h and %%%% are known)",
				 (unsigned char)*p >= 0x21 && (unsigned char)*p < 0x7f ? *p : '?');
			return why;
		}
	}
	char out[MAX_PATH_LEN];
	/* Absolute whatever %h and %u turn out to be: "/" first, or %h (a home is absolute). */
	if (auth_expand_mailbox(tmpl, "u", "/h", out, sizeof(out)) < 0)
		return "too long";
	if (out[0] != '/')
		return "not an absolute path (it must start with / or %h)";
	return NULL;
}

size_t auth_template_fixed_dir(const char *tmpl, char *out, size_t outlen)
{
	size_t end = 0;   /* after the last '/' before the first '%' */
	for (size_t i = 0; tmpl[i] && tmpl[i] != '%'; i++)
		if (tmpl[i] == '/')
			end = i + 1;
	if (end > 1)
		end--;            /* "/var/mail/" -> "/var/mail"; "/" stays */
	if (end == 0 || end >= outlen) {
		if (outlen)
			out[0] = '\0';
		return 0;
	}
	memcpy(out, tmpl, end);
	out[end] = '\0';
	return end;
}

/* ---- Reading the --passwd file ---- */

struct line_reader {
	int fd;
	size_t pos;
	size_t len;
	char buf[PASSWD_READ_SIZE];
};

enum line_status { LINE_EOF, LINE_OK, LINE_TOO_LONG, LINE_ERROR };

/* 1 when data was read, 0 at end of file, -1 on error. */
static int reader_fill(struct line_reader *r)
{
	ssize_t n;
	do
		n = read(r->fd, r->buf, sizeof(r->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	r->pos = 0;
	r->len = (size_t)n;
	return n > 0;
}

/*
 * The next line, its newline included, NUL-terminated in line[cap]. A line of
 * cap octets or more is consumed whole and reported as LINE_TOO_LONG.
 */
static enum line_status reader_next_line(struct line_reader *r, char *line, size_t cap,
					  size_t *linelen)
{
	size_t n = 0;
	bool too_long = false;
	for (;;) {
		if (r->pos == r->len) {
			int rc = reader_fill(r);
			if (rc < 0)
				return LINE_ERROR;
			if (rc == 0) {
				if (n == 0 && !too_long)
					return LINE_EOF;
				break;  /* a last line without newline */
			}
		}
		const char *start = r->buf + r->pos;
		size_t avail = r->len - r->pos;
		const char *nl = memchr(start, '\n', avail);
		size_t take = nl ? (size_t)(nl - start) + 1 : avail;
		if (!too_long && take < cap - n) {
			memcpy(line + n, start, take);
			n += take;
		} else {
			too_long = true;
		}
		r->pos += take;
		if (nl)
			break;
	}
	line[n] = '\0';
	*linelen = n;
	return too_long ? LINE_TOO_LONG : LINE_OK;
}

/* What a pass over the --passwd file found. */
struct passwd_scan {
	bool found;                     /* the user's first entry */
	char hash[MAX_PASSWD_LINE];
	bool has_mailbox;
	char mailbox[MAX_PASSWD_LINE];
	char dummy[MAX_PASSWD_LINE];    /* first usable hash in the file, "" if none */
};

/* 0, or -1 when src does not fit. */
static int copy_string(char *dst, size_t dstlen, const char *src)
{
	size_t len = strlen(src);
	if (len >= dstlen)
		return -1;
	memcpy(dst, src, len + 1);
	return 0;
}

/* A hash that crypt(3) will really work on: the right dummy for unknown users. */
static bool dummy_candidate(const char *hash)
{
	return hash_usable(hash) && crypt_checksalt(hash) != CRYPT_SALT_INVALID;
}

static void scan_note_entry(struct passwd_scan *scan, const struct passwd_entry *e,
			    const char *user)
{
	if (!scan->dummy[0] && dummy_candidate(e->hash))
		(void)copy_string(scan->dummy, sizeof(scan->dummy), e->hash);
	if (scan->found || !user || strcmp(e->name, user) != 0)
		return;  /* the first matching entry wins */
	/* Fields come from a line shorter than these buffers: the copies fit. */
	scan->found = copy_string(scan->hash, sizeof(scan->hash), e->hash) == 0;
	scan->has_mailbox = e->mailbox &&
		copy_string(scan->mailbox, sizeof(scan->mailbox), e->mailbox) == 0;
}

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* Parse one raw line; a NUL byte or an over-long line makes it malformed. */
static int scan_parse(char *line, size_t len, enum line_status st, struct passwd_entry *e)
{
	e->problem = st == LINE_TOO_LONG ?
		     "line too long (limit " STRINGIFY(MAX_PASSWD_LINE) " octets)" :
		     memchr(line, '\0', len) ? "NUL octet in the line" : NULL;
	if (e->problem)
		return -1;
	return passwd_parse_line(line, e);
}

/*
 * Malformed lines are logged once per session, not at every lookup (each
 * login attempt reads the whole file): once per version of the file, known
 * by device, inode, size and modification time.
 */
static bool already_reported(int fd)
{
	static struct stat reported;
	static bool have;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return false;
	bool same = have && st.st_dev == reported.st_dev && st.st_ino == reported.st_ino &&
		    st.st_size == reported.st_size &&
		    st.st_mtim.tv_sec == reported.st_mtim.tv_sec &&
		    st.st_mtim.tv_nsec == reported.st_mtim.tv_nsec;
	reported = st;
	have = true;
	return same;
}

/*
 * Read the whole file (also after a match, so every login costs the same),
 * noting user's first entry (user NULL: none) and a dummy hash. 0, or -1.
 */
static int scan_passwd_file(const char *path, const char *user, struct passwd_scan *scan)
{
	int fd;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		log_msg(LOG_ERR, "--passwd %s: cannot open: %s (expected a readable file of "
			"name:hash[:mailbox] lines)", path, strerror(errno));
		return -1;
	}
	bool quiet = already_reported(fd);
	struct line_reader reader = { .fd = fd, .pos = 0, .len = 0 };
	char line[MAX_PASSWD_LINE + 1];
	unsigned lineno = 0;
	int rc = 0;
	for (;;) {
		size_t len = 0;
		enum line_status st = reader_next_line(&reader, line, sizeof(line), &len);
		if (st == LINE_EOF)
			break;
		if (st == LINE_ERROR) {
			log_msg(LOG_ERR, "passwd file %s: read error: %s", path, strerror(errno));
			rc = -1;
			break;
		}
		if (lineno != (unsigned)-1)
			lineno++;
		struct passwd_entry e;
		int parsed = scan_parse(line, len, st, &e);
		if (parsed < 0 && !quiet)
			log_msg(LOG_WARNING, "passwd file %s line %u: malformed, skipped: %s",
				path, lineno, e.problem);
		else if (parsed > 0)
			scan_note_entry(scan, &e, user);
	}
	/* Read-only descriptor: a close error loses nothing. */
	(void)close(fd);
	explicit_bzero(line, sizeof(line));
	return rc;
}

int auth_check_passwd_file(const char *path)
{
	struct passwd_scan scan;
	memset(&scan, 0, sizeof(scan));
	int rc = scan_passwd_file(path, NULL, &scan);
	explicit_bzero(&scan, sizeof(scan));
	return rc;
}

/* ---- Logging in ---- */

/* A login attempt, after the checks that need no account data. */
struct login_request {
	const char *user;      /* the name as given (log only when valid) */
	const char *lookup;    /* the name to look up, NULL when refused */
	const char *phrase;    /* the password, "" when refused */
	const char *refusal;   /* why it fails whatever the password, or NULL */
};

static void request_init(struct login_request *req, const char *user, const char *password)
{
	req->user = user;
	req->lookup = user;
	req->phrase = password;
	req->refusal = NULL;
	if (!auth_valid_username(user))
		req->refusal = "invalid user name";
	else
		req->refusal = auth_password_problem(password);
	if (req->refusal) {
		req->lookup = NULL;
		req->phrase = "";
	}
}

/* The admin learns why; the client only ever sees AUTH_FAIL. Never the password. */
static void log_login_failure(const struct login_request *req, const char *reason)
{
	if (auth_valid_username(req->user))
		log_msg(LOG_NOTICE, "login failed for %s: %s", LOG_Q(req->user), reason);
	else
		log_msg(LOG_NOTICE, "login failed: %s", reason);
}

/* Name, home and expanded mailbox; AUTH_ERROR is a configuration problem. */
static enum auth_result fill_account(struct account *acct, const char *user,
				     const char *home, const char *tmpl)
{
	if (copy_string(acct->name, sizeof(acct->name), user) < 0 ||
	    copy_string(acct->home, sizeof(acct->home), home) < 0) {
		log_msg(LOG_ERR, "user %s: home directory path too long", LOG_Q(user));
		return AUTH_ERROR;
	}
	if (auth_expand_mailbox(tmpl, user, home, acct->mailbox, sizeof(acct->mailbox)) < 0) {
		log_msg(LOG_ERR, "user %s: mailbox template %s cannot be expanded "
			"(home %s): too long, bad %% sequence or %%h without a home",
			LOG_Q(user), LOG_Q(tmpl ? tmpl : "(none)"), LOG_Q(home));
		return AUTH_ERROR;
	}
	return AUTH_OK;
}

static enum auth_result login_virtual_scanned(const struct auth_config *cfg,
					      const struct login_request *req,
					      const struct passwd_scan *scan,
					      struct account *acct)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char *dummy = scan->dummy;
	if (!dummy[0]) {
		if (gensalt_preferred(setting) < 0) {
			log_msg(LOG_ERR, "crypt_gensalt failed: %s", strerror(errno));
			return AUTH_ERROR;
		}
		dummy = setting;
	}
	const char *hash = scan->found ? scan->hash : NULL;
	if (!verify_or_dummy(req->phrase, hash, dummy)) {
		const char *reason = req->refusal ? req->refusal :
			!scan->found ? "unknown user" :
			!hash_usable(hash) ? "account locked or without password" :
			"wrong password";
		log_login_failure(req, reason);
		return AUTH_FAIL;
	}
	acct->system = false;
	const char *home = cfg->virtual_home ? cfg->virtual_home : "";
	const char *tmpl = scan->has_mailbox ? scan->mailbox : cfg->mailbox_template;
	return fill_account(acct, req->user, home, tmpl);
}

static enum auth_result login_virtual(const struct auth_config *cfg,
				      const struct login_request *req, struct account *acct)
{
	struct passwd_scan scan;
	memset(&scan, 0, sizeof(scan));
	enum auth_result res = AUTH_ERROR;
	if (scan_passwd_file(cfg->passwd_file, req->lookup, &scan) == 0)
		res = login_virtual_scanned(cfg, req, &scan, acct);
	explicit_bzero(&scan, sizeof(scan));
	return res;
}

/* A system account as getpwnam_r / getspnam_r found it. */
struct system_lookup {
	struct passwd pw;
	char pwbuf[GETPW_BUFFER_SIZE];
	struct spwd sp;
	char spbuf[GETPW_BUFFER_SIZE];
	bool found;
	const char *hash;      /* a usable hash to verify, or NULL */
	const char *reason;    /* why there is none */
};

/* getpwnam_r(3): these mean "no such user", not a failure. */
static bool pw_not_found(int err)
{
	return err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM;
}

/* shadow(5): sp_expire is days since the epoch; -1 (or 0) means never. */
static bool shadow_expired(const struct spwd *sp)
{
	if (sp->sp_expire <= 0)
		return false;
	time_t now = time(NULL);
	return now != (time_t)-1 && (long)(now / 86400) >= sp->sp_expire;
}

static void lookup_take_hash(struct system_lookup *lk, const char *hash)
{
	if (hash_usable(hash))
		lk->hash = hash;
	else
		lk->reason = "account locked or without password";
}

/* The hash from /etc/shadow. Only an unreadable database is an error (-1). */
static int lookup_shadow(const char *name, struct system_lookup *lk)
{
	struct spwd *res = NULL;
	int err;
	do {
		errno = 0;
		err = getspnam_r(name, &lk->sp, lk->spbuf, sizeof(lk->spbuf), &res);
	} while (err == EINTR);
	if (res) {
		if (shadow_expired(&lk->sp))
			lk->reason = "account expired";
		else
			lookup_take_hash(lk, lk->sp.sp_pwdp);
		return 0;
	}
	if (!err)
		err = errno;
	/*
	 * Not root: /etc/shadow is not ours to read. glibc reports EACCES only
	 * when "files" is the last shadow source; after another source (Debian
	 * lists "files systemd") it is a plain "not found".
	 */
	if (err == EACCES || err == EPERM || (pw_not_found(err) && geteuid() != 0)) {
		log_msg(LOG_ERR, "user %s: shadow password could not be read "
			"(pop3d must be started as root for system accounts)", LOG_Q(name));
		lk->reason = "shadow password could not be read";
		return 0;
	}
	if (pw_not_found(err)) {
		lk->reason = "no shadow entry";
		return 0;
	}
	log_msg(LOG_ERR, "getspnam(%s): %s", LOG_Q(name), strerror(err));
	return -1;
}

/* Fill lk for name. Only an unreadable database is an error (-1). */
static int lookup_system_account(const char *name, struct system_lookup *lk)
{
	struct passwd *res = NULL;
	int err;
	do
		err = getpwnam_r(name, &lk->pw, lk->pwbuf, sizeof(lk->pwbuf), &res);
	while (err == EINTR);
	if (!res) {
		if (!pw_not_found(err)) {
			log_msg(LOG_ERR, "getpwnam(%s): %s", LOG_Q(name), strerror(err));
			return -1;
		}
		lk->reason = "unknown user";
		return 0;
	}
	lk->found = true;
	if (lk->pw.pw_uid == 0) {
		/* Never verify root's password here: no password oracle for root. */
		lk->reason = "root may not log in";
		return 0;
	}
	if (strcmp(lk->pw.pw_passwd, "x") == 0)
		return lookup_shadow(name, lk);
	lookup_take_hash(lk, lk->pw.pw_passwd);
	return 0;
}

static enum auth_result login_system_lookup(const struct auth_config *cfg,
					    const struct login_request *req,
					    struct system_lookup *lk, struct account *acct)
{
	char dummy[CRYPT_GENSALT_OUTPUT_SIZE];
	if (gensalt_preferred(dummy) < 0) {
		log_msg(LOG_ERR, "crypt_gensalt failed: %s", strerror(errno));
		return AUTH_ERROR;
	}
	lk->reason = req->refusal;
	if (req->lookup && lookup_system_account(req->lookup, lk) < 0)
		return AUTH_ERROR;
	if (!verify_or_dummy(req->phrase, lk->hash, dummy)) {
		log_login_failure(req, lk->hash ? "wrong password" :
				  lk->reason ? lk->reason : "no usable password");
		return AUTH_FAIL;
	}
	acct->system = true;
	acct->uid = lk->pw.pw_uid;
	acct->gid = lk->pw.pw_gid;
	return fill_account(acct, req->user, lk->pw.pw_dir ? lk->pw.pw_dir : "",
			    cfg->mailbox_template);
}

static enum auth_result login_system(const struct auth_config *cfg,
				     const struct login_request *req, struct account *acct)
{
	struct system_lookup lk;
	memset(&lk, 0, sizeof(lk));
	enum auth_result res = login_system_lookup(cfg, req, &lk, acct);
	explicit_bzero(&lk, sizeof(lk));
	return res;
}

enum auth_result auth_login(const struct auth_config *cfg, const char *user,
			    const char *password, struct account *acct)
{
	memset(acct, 0, sizeof(*acct));
	struct login_request req;
	request_init(&req, user, password);
	enum auth_result res = cfg->passwd_file ? login_virtual(cfg, &req, acct)
						: login_system(cfg, &req, acct);
	if (res != AUTH_OK)
		memset(acct, 0, sizeof(*acct));
	return res;
}

/* ---- The answer time of a failed check ---- */

void auth_check_begin(struct auth_clock *start)
{
	start->ok = clock_gettime(CLOCK_MONOTONIC, &start->wall) == 0 &&
		    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start->cpu) == 0;
}

static struct timespec ts_plus_nsec(struct timespec t, long long nsec)
{
	long long total = (long long)t.tv_nsec + nsec;
	t.tv_sec += (time_t)(total / 1000000000LL);
	t.tv_nsec = (long)(total % 1000000000LL);
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += 1000000000L;
	}
	return t;
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Run (not sleep) until clock reads until. */
static void spin_until(clockid_t clock, const struct timespec *until)
{
	struct timespec now;
	do {
		if (clock_gettime(clock, &now) < 0)
			return;
	} while (ts_before(&now, until));
}

void auth_fail_floor(const struct auth_clock *start)
{
	if (!start->ok) {   /* no clock: the whole floor, counted from now */
		struct timespec floor = ts_plus_nsec((struct timespec){0, 0},
						     AUTH_FAIL_FLOOR_MSEC * 1000000LL);
		while (nanosleep(&floor, &floor) < 0 && errno == EINTR)
			;
		return;
	}
	/*
	 * The same CPU time for every failure: after yescrypt a process (and its
	 * scheduling group) is owed less CPU than after sha512crypt, and under
	 * load it is woken later, by milliseconds.
	 */
	struct timespec cpu = ts_plus_nsec(start->cpu, AUTH_FAIL_CPU_MSEC * 1000000LL);
	spin_until(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	struct timespec until = ts_plus_nsec(start->wall, AUTH_FAIL_FLOOR_MSEC * 1000000LL);
	struct timespec wake = ts_plus_nsec(until, -AUTH_FAIL_SPIN_USEC * 1000LL);
	/* Absolute: after a signal's EINTR the sleep resumes toward the same instant. */
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, NULL) == EINTR)
		;
	/*
	 * The last stretch busy, so the answer leaves a running CPU whatever the
	 * check cost: a CPU that idled since a cheap hash wakes tens of
	 * microseconds later than one that ran yescrypt, and that shows.
	 */
	spin_until(CLOCK_MONOTONIC, &until);
}
