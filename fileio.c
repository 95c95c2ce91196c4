/* Small file helpers shared by the modules that touch the mailbox. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"

ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {  /* no progress: do not spin */
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	if (!why || whylen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

bool is_own_plain_file(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == geteuid() && st->st_nlink == 1;
}

int fsync_retry(int fd)
{
	int r;
	while ((r = fsync(fd)) < 0 && errno == EINTR)
		;
	return r;
}

const char *file_kind(mode_t mode)
{
	return S_ISREG(mode) ? "a regular file" : S_ISDIR(mode) ? "a directory" :
		S_ISLNK(mode) ? "a symbolic link" : S_ISFIFO(mode) ? "a FIFO" :
		S_ISCHR(mode) || S_ISBLK(mode) ? "a device" : S_ISSOCK(mode) ? "a socket" :
		"a special file";
}

int parent_dir(const char *path, char *dir, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
	if (len >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, slash ? path : ".", len);
	dir[len] = '\0';
	return 0;
}

int fsync_parent_dir(const char *path)
{
	char dir[MAX_PATH_LEN + 1];
	if (parent_dir(path, dir, sizeof(dir)) < 0)
		return -1;
	int fd;
	while ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		return -1;
	int r = fsync_retry(fd);
	int err = errno;
	close(fd);
	if (r < 0 && err != EINVAL) {
		errno = err;
		return -1;
	}
	return 0;
}

int is_own_file_of_format(int fd, const char *magic, size_t magic_len, size_t zero_len)
{
	return is_file_of_format(fd, geteuid(), magic, magic_len, zero_len);
}

int is_file_of_format(int fd, uid_t uid, const char *magic, size_t magic_len, size_t zero_len)
{
	struct stat st;
	unsigned char head[FORMAT_HEAD_MAX];
	if (magic_len > sizeof(head) || zero_len > sizeof(head)) {
		errno = EINVAL;
		return -1;
	}
	if (fstat(fd, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode) || st.st_uid != uid || st.st_nlink != 1)
		return 0;
	if (st.st_size == 0)
		return 1;
	ssize_t n = pread_full(fd, head, magic_len > zero_len ? magic_len : zero_len, 0);
	if (n < 0)
		return -1;
	if ((size_t)n >= magic_len && memcmp(head, magic, magic_len) == 0)
		return 1;
	if ((size_t)n < zero_len)
		return 0;
	for (size_t i = 0; i < zero_len; i++)
		if (head[i] != 0)
			return 0;
	return 1;
}

bool path_names_fd(const char *path, int fd)
{
	struct stat held, named;
	return fstat(fd, &held) == 0 && lstat(path, &named) == 0 &&
	       held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}
