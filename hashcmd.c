/* pop3d --hash: a password read from stdin (no echo on a terminal), its crypt(3) hash printed. */
#define _GNU_SOURCE
#include "hashcmd.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth.h"
#include "exitcode.h"
#include "limits.h"

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

int hashcmd_run(void)
{
	char pass[MAX_PASSWORD + 2], hash[512];
	if (read_password_line(pass, sizeof(pass)) < 0) {
		explicit_bzero(pass, sizeof(pass));   /* what an over-long line left */
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
