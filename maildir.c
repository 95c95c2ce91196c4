/* A Maildir maildrop: scanned at login (new/ and cur/), each message streamed from its file. */
#define _GNU_SOURCE
#include "maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"

/* A subdirectory name, looked up without following a symbolic link. */
static bool has_subdir(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

bool maildir_path_is(const char *path)
{
	size_t len = strlen(path);
	if (len > 0 && path[len - 1] == '/')
		return true;   /* Postfix's and Dovecot's convention: a trailing slash */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool is = has_subdir(fd, "cur") && has_subdir(fd, "new") && has_subdir(fd, "tmp");
	close(fd);
	return is;
}

int maildir_dir_path(const char *path, char *out, size_t outlen)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len >= outlen)
		return -1;
	memcpy(out, path, len);
	out[len] = '\0';
	return 0;
}

const char *maildir_dir_problem(const struct stat *st)
{
	if (!S_ISDIR(st->st_mode))
		return "mailbox is not a Maildir (not a directory)";
	if (st->st_uid != geteuid())
		return "Maildir belongs to another account";
	if ((st->st_mode & S_IRWXU) != S_IRWXU)
		return "Maildir mode denies its owner access";
	return NULL;
}

/* ---- stubs: replaced by the scanner (helper H1) ---- */

int maildir_name_parse(const char *name, size_t len, struct maildir_name *out)
{
	(void)name; (void)len; (void)out;
	return -1;
}

void maildir_uidl_of(const char *name, size_t len, char *buf)
{
	(void)name; (void)len;
	buf[0] = '\0';
}

enum mbox_status maildir_open(struct mbox *mb, char *why, size_t whylen)
{
	(void)mb;
	set_why(why, whylen, "Maildir is not supported yet");
	return MBOX_PERM;
}

void maildir_free(struct maildir *md)
{
	if (!md)
		return;
	if (md->dirfd >= 0)
		close(md->dirfd);
	if (md->msg_fd >= 0)
		close(md->msg_fd);
	free(md->names);
	free(md->index_dir);
	free(md);
}

void maildir_uidl(const struct mbox *mb, size_t n, char *buf)
{
	(void)mb; (void)n;
	buf[0] = '\0';
}

int maildir_open_msg(const struct mbox *mb, size_t n, char *why, size_t whylen)
{
	(void)mb; (void)n;
	set_why(why, whylen, "Maildir is not supported yet");
	return -1;
}

int maildir_check_msg(const struct mbox *mb, size_t n, char *why, size_t whylen)
{
	(void)mb; (void)n;
	set_why(why, whylen, "Maildir is not supported yet");
	return -1;
}

int maildir_send(const struct mbox *mb, size_t n, long lines, struct outbuf *ob)
{
	(void)mb; (void)n; (void)lines; (void)ob;
	return -1;
}
