/* Test builds only (tests/pop3d-fault): crashes at a chosen step of an update, and XTEST's probes of the sandbox. */
#define _GNU_SOURCE
#include "testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"
#include "privsep.h"

/* No process and no step has this number: what junk where a number belongs stands for. */
#define NO_NUMBER 0x7fffffff

/* The decimal number s (a pid, a step), else NO_NUMBER. */
static int number(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return errno || end == s || *end || v < 0 || v >= NO_NUMBER ? NO_NUMBER : (int)v;
}

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
	if (v && number(v) == step)
		kill(getpid(), SIGKILL);
	return 0;
}

void testhooks_keeper_probe(void)
{
	const char *v = getenv("POP3D_TEST_KEEPER_PROBE");
	char paths[MAX_PATH_LEN * 4];
	if (!v || snprintf(paths, sizeof(paths), "%s", v) >= (int)sizeof(paths))
		return;
	char *save = NULL;
	for (char *p = strtok_r(paths, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
		int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			log_msg(LOG_NOTICE, "keeper probe %s: opened", p);
		} else {
			log_msg(LOG_NOTICE, "keeper probe %s: refused (%s)", p, strerror(errno));
		}
	}
}

const struct update_hooks testhooks_update = {
	.fault = kill_at_step, .ctx = (void *)"POP3D_KILL_AT_STEP",
};
const struct update_hooks testhooks_recover = {
	.fault = kill_at_step, .ctx = (void *)"POP3D_KILL_RECOVER_AT_STEP",
};

/*
 * Test build only: XTEST probes the sandbox from inside. In the greeter,
 * "XTEST SYSCALL" makes a forbidden system call and "XTEST GARBAGE kind"
 * sends the authenticator a malformed message; after login, "XTEST OPEN
 * path" tries to open path and answers the errno; the probes below try
 * one attack each (CHMOD path, SIGNAL pid ...). In either, "XTEST LOG text"
 * sends the authenticator a log line of its choosing (each _ a blank).
 */

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
	return (int)syscall(SYS_rt_sigqueueinfo, number(a[0]), si.si_signo, &si);
}

static int probe_kill(char **a) { return kill(number(a[0]), SIGKILL); }

static int probe_pidfd(char **a)
{
	int fd = (int)syscall(SYS_pidfd_open, number(a[0]), 0);
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
	return prlimit(number(a[0]), RLIMIT_FSIZE, &none, NULL);
}

static int probe_nice(char **a) { return setpriority(PRIO_PROCESS, (id_t)number(a[0]), 19); }

/* SIGKILL to pid when the client's next line arrives. */
static int probe_setown(char **a)
{
	int fl = fcntl(STDIN_FILENO, F_GETFL);
	if (fl < 0 || fcntl(STDIN_FILENO, F_SETOWN, number(a[0])) < 0 ||
	    fcntl(STDIN_FILENO, F_SETSIG, SIGKILL) < 0)
		return -1;
	return fcntl(STDIN_FILENO, F_SETFL, fl | O_ASYNC);
}

/* The abstract name on a socket it already has: no new socket needed. */
static int probe_bind(int chan, int keeper, char **a)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strnlen(a[0], sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path + 1, a[0], n);
	int fd = keeper >= 0 ? keeper : chan;
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

void testhooks_command(int chan, int keeper, int argc, char **args, struct outbuf *out)
{
	if (argc == 1 && strcmp(args[0], "SYSCALL") == 0) {
		outbuf_flush(out);
		long fd = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
		outbuf_printf(out, "+OK socket returned %ld\r\n", fd);
	} else if (argc == 1 && strcmp(args[0], "DGRAM") == 0) {
		outbuf_flush(out);   /* a datagram could be sent to /dev/log unconnected */
		long fd = syscall(SYS_socket, AF_UNIX, SOCK_DGRAM, 0);
		outbuf_printf(out, "+OK socket returned %ld\r\n", fd);
	} else if (argc == 2 && strcmp(args[0], "GARBAGE") == 0 && chan >= 0) {
		garbage_message(chan, args[1], out);
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
	} else if (argc == 2 && strcmp(args[0], "OPENMSG") == 0 && keeper >= 0) {
		/* Any number, as a compromised session process could ask. */
		char why[MAX_REASON_LEN];
		int fd = privsep_open_msg(keeper, strtoul(args[1], NULL, 10), why, sizeof(why));
		if (fd >= 0) {
			close(fd);
			outbuf_puts(out, "+OK a descriptor\r\n");
		} else {
			outbuf_printf(out, "-ERR %s\r\n", why);
		}
	} else if (argc == 2 && strcmp(args[0], "BIND") == 0) {
		outbuf_flush(out);
		probe_answer(out, probe_bind(chan, keeper, args + 1));
	} else if (argc < 1 || !run_probe(argc, args, out)) {
		outbuf_puts(out, "-ERR XTEST SYSCALL | DGRAM | GARBAGE kind | LOG text | OPEN path | OPENMSG n | "
			    "probe args\r\n");
	}
}
