/* The greeter's place, as root: its unprivileged account (--preauth-user) and its empty root directory. */
#ifndef POP3D_PREAUTH_H
#define POP3D_PREAUTH_H

#include "options.h"
#include "privsep.h"

/*
 * As root, before the greeter is forked: its account into ps (--preauth-user,
 * else PREAUTH_USER, else PREAUTH_FALLBACK_USER; never uid or gid 0), and its
 * root ps->empty_dir made. 0, or -1 (logged).
 */
int preauth_prepare(const struct config *cfg, struct privsep_config *ps);

/*
 * dir made or checked: empty, root's, mode 0555 (not writable even by root's
 * own bit), in a root-owned directory nobody else may write (made 0755). 0, or -1 (logged).
 */
int preauth_empty_dir(const char *dir);

#endif
