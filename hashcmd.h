/* pop3d --hash: a password read from stdin (no echo on a terminal), its crypt(3) hash printed. */
#ifndef POP3D_HASHCMD_H
#define POP3D_HASHCMD_H

/*
 * One line of stdin (at most MAX_PASSWORD octets, its newline and a CR
 * dropped) hashed; the hash on stdout. The exit status: EXIT_USAGE for no
 * line, one too long or an empty password, EXIT_CONFIG when crypt(3) fails.
 */
int hashcmd_run(void);

#endif
