/* pop3d --recover: repair a mailbox whose update was interrupted, as its owner, and say what was done. */
#ifndef POP3D_RECOVER_H
#define POP3D_RECOVER_H

#include <stdbool.h>

#include "options.h"
#include "update.h"

/*
 * Recover cfg->recover_path (as its owner when root) with the journal places
 * a session would use; the outcome on stdout and in the log. hooks: test
 * builds' faults, else NULL. The exit status (EXIT_NOINPUT: no such mailbox).
 */
int recover_run(const struct config *cfg, bool root, const struct update_hooks *hooks);

#endif
