/*
 * Test builds only (tests/pop3d-fault, compiled with -DPOP3D_FAULT_INJECTION,
 * never into ./pop3d): a SIGKILL at a chosen step of an update or a recovery,
 * for the crash tests, and XTEST, which probes the sandbox from inside.
 */
#ifndef POP3D_TESTHOOKS_H
#define POP3D_TESTHOOKS_H

#include "outbuf.h"
#include "update.h"

/* SIGKILL at step POP3D_KILL_AT_STEP of an update, POP3D_KILL_RECOVER_AT_STEP of a recovery. */
extern const struct update_hooks testhooks_update;
extern const struct update_hooks testhooks_recover;

/*
 * XTEST args: in the greeter, "SYSCALL" makes a forbidden system call and
 * "GARBAGE kind" sends the authenticator (chan) a malformed message; after
 * login, "OPEN path" tries to open path and answers the errno; the probes
 * try one attack each (CHMOD path, SIGNAL pid ...), "BIND name" on chan or
 * keeper. In either, "LOG text" sends the authenticator a log line of its
 * choosing (each _ a blank). chan, keeper: -1 where the process has none.
 */
void testhooks_command(int chan, int keeper, int argc, char **args, struct outbuf *out);

/*
 * In the keeper, just after its sandbox: try to open (read only) each path
 * of POP3D_TEST_KEEPER_PROBE (one per line) and log "keeper probe PATH:
 * opened" or "keeper probe PATH: refused (ERROR)", so the tests can see what
 * a keeper's Landlock lets it reach.
 */
void testhooks_keeper_probe(void);

#endif
