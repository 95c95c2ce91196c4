/* pop3d's exit statuses (sysexits.h values where one fits), for every command and role. */
#ifndef POP3D_EXITCODE_H
#define POP3D_EXITCODE_H

enum {
	EXIT_OK = 0,
	EXIT_SESSION = 1,     /* no QUIT: lost connection, timeout, too many failures */
	EXIT_USAGE = 64,
	EXIT_NOINPUT = 66,    /* --recover: no such mailbox */
	EXIT_CONFIG = 78,
	EXIT_UPDATE = 75,     /* QUIT, but the deletions could not be applied */
};

#endif
