/* Helpers shared by the cmocka unit tests. */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	abort();
}

ssize_t memsink_write(void *ctx, const void *buf, size_t len)
{
	struct memsink *ms = ctx;
	if (ms->fail_after >= 0 && ms->writes >= ms->fail_after) {
		errno = EPIPE;
		return -1;
	}
	ms->writes++;
	if (ms->len + len + 1 > ms->cap) {
		size_t cap = ms->cap ? ms->cap : 4096;
		while (cap < ms->len + len + 1)
			cap *= 2;
		char *p = realloc(ms->data, cap);
		if (!p)
			die("realloc");
		ms->data = p;
		ms->cap = cap;
	}
	memcpy(ms->data + ms->len, buf, len);
	ms->len += len;
	ms->data[ms->len] = '\0';
	return (ssize_t)len;
}

void memsink_reset(struct memsink *ms)
{
	free(ms->data);
	memset(ms, 0, sizeof(*ms));
	ms->fail_after = -1;
}

const char *memsink_str(struct memsink *ms)
{
	if (!ms->data)
		memsink_write(ms, "", 0);
	return ms->data ? ms->data : "";
}

const char *test_tmpdir(void)
{
	static char dir[256];
	if (dir[0])
		return dir;
	if (mkdir("tests/tmp", 0755) < 0 && errno != EEXIST)
		die("mkdir tests/tmp");
	snprintf(dir, sizeof(dir), "tests/tmp/unit.XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp");
	return dir;
}

const char *test_path(const char *name)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];
	snprintf(b, sizeof(bufs[0]), "%s/%s", test_tmpdir(), name);
	return b;
}

static void write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write");
		p += n;
		len -= (size_t)n;
	}
}

void test_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path);
	write_all(fd, data, len);
	close(fd);
}

void test_append_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		die(path);
	write_all(fd, data, len);
	close(fd);
}

char *test_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("fstat");
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		die("malloc");
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read");
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	if (len)
		*len = got;
	return buf;
}

int test_memfd(const void *data, size_t len)
{
	int fd = memfd_create("mbox", 0);
	if (fd < 0)
		die("memfd_create");
	write_all(fd, data, len);
	if (lseek(fd, 0, SEEK_SET) < 0)
		die("lseek");
	return fd;
}
