/*
 * Start-up checks of the configuration, before the greeting and before any
 * fork: what every login would trip over (the --user account, the path
 * templates and their fixed directories, the --passwd file), reported by
 * config_error.
 */
#ifndef POP3D_CONFIG_CHECK_H
#define POP3D_CONFIG_CHECK_H

#include <stdbool.h>

#include "options.h"

/* cfg checked; its --user account looked up (virt_uid, virt_gid, virt_home). 0, or -1 (reported). */
int config_check(struct config *cfg, bool root);

#endif
