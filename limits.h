/* Every limit of pop3d, in one place. */
#ifndef POP3D_LIMITS_H
#define POP3D_LIMITS_H

#define POP3D_NAME    "pop3d"
#define POP3D_VERSION "0.1.0"

/* Protocol (RFC 1939, RFC 2449, RFC 5034). */
#define MAX_COMMAND_LINE   255   /* octets of a command line, CRLF included */
#define MAX_SASL_LINE      1024  /* octets of an AUTH continuation line, CRLF included */
#define MAX_RESPONSE_LINE  512   /* octets of a status or listing line, CRLF included */
#define MAX_UIDL_LEN       70    /* characters of a unique-id */
#define MAX_USER_NAME      64    /* octets of a user name */
#define MAX_PASSWORD       192   /* octets of a password */

/* Session. */
#define DEFAULT_TIMEOUT       600  /* seconds; the RFC 1939 minimum autologout timer */
#define MAX_FAILED_LOGINS     3    /* the connection is closed after this many */
#define MAX_BAD_COMMANDS      20   /* unknown / malformed / wrong-state commands */
#define DEFAULT_LOGIN_DELAY   1    /* seconds of delay per failed login so far */
#define MAX_LOGIN_DELAY       10   /* seconds; cap for the growing delay */
#define MAX_PREAUTH_INPUT     (64 * 1024)  /* octets a client may send before logging in */
#define DEFAULT_SESSION_TIME  (24 * 3600)  /* seconds a session may last at most */
#define DEFAULT_LOGIN_TIMEOUT 180  /* seconds a session may take to log in (Dovecot's 3 minutes) */
#define CLIENT_READ_SIZE      4096 /* octets read from the client at a time (the most a handoff carries) */
#define MAX_REASON_LEN        256  /* octets of a reason given to the client in an -ERR */
#define MAX_LOG_LINE          900  /* octets of one log message */
#define MAX_FOUND_TEXT        200  /* a found file described for the log (mbox_describe_file) */
#define LOG_PREFIX_SIZE       64   /* octets of a --log=FILE line's time stamp, name and pid */
#define MAX_LOG_FIELD         256  /* octets of one quoted client-supplied field of it (log_quote) */
#define AUTH_FAIL_FLOOR_MSEC  100  /* ms before a failed password check is answered, at least (auth.h):
                                      yescrypt's default costs 22 ms here, sha512crypt's 2 ms */
#define AUTH_FAIL_CPU_MSEC    40   /* ms of CPU time a failed check uses, at least (auth.c) */
#define AUTH_FAIL_SPIN_USEC   2000 /* µs at the floor's end spent running, not asleep (auth.c) */

/* Process model (privsep.c). */
#define PREAUTH_USER          "pop3d"            /* default --preauth-user */
#define PREAUTH_FALLBACK_USER "nobody"           /* when that account does not exist */
#define PREAUTH_EMPTY_DIR     "/run/pop3d/empty" /* the greeter's root directory, as root */
#define MAX_CLOSE_FALLBACK    65536  /* descriptors closed one by one at start without close_range or /proc */

/* The client's address (peer.c). */
#define MAX_PEER_TEXT         64     /* octets of peer= as logged, NUL included: an address or a front end's text */

/* PROXY protocol (proxy.c), from --trusted-proxy peers only. */
#define MAX_TRUSTED_PROXIES   16     /* networks in --trusted-proxy */
#define PROXY_V1_MAX          107    /* octets of a v1 line, CRLF included (the specification's) */
#define PROXY_V2_MAX_LEN      512    /* octets after a v2 header's 16: addresses and TLVs */
#define PROXY_MAX_HEADER      (16 + PROXY_V2_MAX_LEN)
#define PROXY_TIMEOUT         5      /* seconds for the whole header to arrive */

/* Failed-login accounting across sessions (throttle.c). */
#define DEFAULT_STATE_DIR      "/var/lib/pop3d"  /* --state-dir */
#define THROTTLE_FILE          "throttle"        /* the table, in the state directory */
#define THROTTLE_CELLS         65536  /* cells of each sketch (account, source): 16 octets each */
#define THROTTLE_CELL_HASHES   4      /* cells a key is counted in; its value is the least */
#define THROTTLE_MARKS         131072 /* known-source marks (40 octets each) */
#define THROTTLE_PROBE         8      /* an account's marks live in this window of the table */
#define THROTTLE_MARKS_PER_ACCOUNT 4  /* known sources kept per account: its oldest goes first */
#define THROTTLE_LOCKS         (1ULL << 40) /* bucket locks (OFD byte locks past the table): none shared */
#define THROTTLE_HOLD_MSEC     1000   /* the most an attempt waits for another's check */
#define THROTTLE_POLL_MSEC     20     /* pause between tries of a held bucket lock */
#define DEFAULT_THROTTLE_ACCOUNT "6/150"  /* an account, from unknown sources: 30 checks the first hour */
#define DEFAULT_THROTTLE_KNOWN "4/360"    /* an account, from one known source: 14 the first hour */
#define DEFAULT_THROTTLE_SOURCE "30/15"   /* a source across accounts: 270 the first hour */
#define DEFAULT_KNOWN_DAYS     30     /* a source is known for an account this long after a login */
#define MAX_THROTTLE_SECONDS   86400  /* the most a rate's period may say */
#define MAX_THROTTLE_BURST     1000   /* the most a rate's burst may say */

/* Mailbox. */
#define MAX_MESSAGES       1000000              /* messages in one maildrop */
#define MAX_MAILBOX_SIZE   ((off_t)1 << 40)     /* octets; 1 TiB */
#define OUTBUF_SIZE        (64 * 1024)          /* output buffer */
#define SEND_MIN_ROOM      (4 * 1024)           /* RETR flushes the buffer when less is free */
#define COPY_CHUNK_SIZE    (256 * 1024)         /* read size while compacting */
#define MOVE_PROBE_SIZE    4096                 /* octets --recover compares: has a move begun? */
_Static_assert(MOVE_PROBE_SIZE <= COPY_CHUNK_SIZE, "the probe is read into the copy buffer");
#define WINDOW_SIZE        (256 * 1024)         /* octets of the mailbox mapped (or read) at a time */
#define WINDOW_MIN_AHEAD   4096                 /* a window is moved when fewer octets are left in it */

/* Maildir (maildir.c). */
#define MAILDIR_FIRST_MSGS   1024         /* message entries allocated at first, then doubled */
#define MAILDIR_FIRST_NAMES  (64 * 1024)  /* octets of the names pool at first, then doubled */
#define MAILDIR_READ_SIZE    (128 * 1024) /* read size while counting a file's line ends */

/* Locking, as Debian's MDAs and liblockfile do it. */
#define LOCK_TIMEOUT         30    /* seconds to wait for the mailbox lock */
#define LOCK_TIMEOUT_MAX     3600  /* seconds the dotlocker is ever asked to wait */
#define DOTLOCK_STALE_AGE    300   /* seconds after which a dotlock is stale */
#define LOCK_RETRY_USEC      100000 /* pause between lock attempts */
#define DOTLOCK_SUFFIX       ".lock"  /* MAILBOX.lock, the MDAs' name */
#define DOTLOCK_TEMP_PREFIX  ".lk"    /* temporary lock files: ours (".lk.pop3d.") and liblockfile's */
#define MAX_ACCOUNT_GROUPS   1024     /* supplementary groups looked at to tell who may write a spool */
#define DOTLOCK_MAX_SIZE     64       /* octets a dotlock may hold to be broken: empty or a pid line */

/* Files. Every name pop3d makes for a mailbox carries SIDE_FILE_MARK (mbox_is_side_file). */
#define SIDE_FILE_MARK     ".pop3d-"          /* in every suffix below */
#define JOURNAL_SUFFIX     ".pop3d-journal"  /* update journal beside the mailbox */
#define SESSION_LOCK_SUFFIX ".pop3d-session" /* session lock file where flock is emulated (NFS) */
#define SESSION_LOCK_ATTEMPTS 3           /* tries when the lock file is replaced under us */
#define JOURNAL_TEMP_SUFFIX ".new"          /* journal being rewritten by recovery */
#define JOURNAL_WITNESS_SIZE 4096         /* octets at the old end of file that tell "not yet truncated" */
#define MAILDIR_JOURNAL_IO_SIZE (64 * 1024) /* read / write size for a Maildir's update journal */
#ifndef POP3D_JOURNAL_DIR   /* the Makefile's JOURNALDIR */
#define POP3D_JOURNAL_DIR  "/var/lib/pop3d-journal" /* journals where the account cannot write beside its mailbox */
#endif
#define JOURNAL_DIR_MODE   0700           /* --journal-dir/UID, one per account */
#define JOURNAL_ASIDE_INFIX ".planted."   /* --journal-dir/UID.planted.N: what was in its place */
#define JOURNAL_ASIDE_ATTEMPTS 100        /* names tried for it */
#define INDEX_SUFFIX       ".pop3d-index"  /* index file in --index-dir: <mailbox name><suffix> */
#define MAILDIR_INDEX_SUFFIX ".pop3d-maildir-index" /* a Maildir's: <its name>.<path hash><suffix> */
#define INDEX_TAIL_SIZE    4096   /* octets before an index's end whose checksum it keeps */
#define INDEX_SAMPLES      64     /* message starts checked for "From " when loading an index */
#define INDEX_IO_SIZE      (64 * 1024)  /* read / write size for an index file */
#define MAX_PASSWD_LINE    4096  /* octets of a line of a --passwd file */
#define MAX_PATH_LEN       4096  /* octets of an expanded mailbox path */
#define PASSWD_READ_SIZE   4096  /* read size for a --passwd file */
#define GETPW_BUFFER_SIZE  16384 /* getpwnam_r / getspnam_r string buffer */

#endif
