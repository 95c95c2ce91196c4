/* A file found where another was expected, described for the log with its owner's account. */
#include "found.h"

#include <pwd.h>

#include "mbox.h"

void found_describe(const struct stat *st, char *out, size_t outlen)
{
	const struct passwd *pw = getpwuid(st->st_uid);
	mbox_describe_file(st, pw ? pw->pw_name : "no account", out, outlen);
}
