/*
 * A main() for the fuzz targets without libFuzzer: runs each file named on
 * the command line (a directory: each file in it) once, or standard input
 * when there is none. For replaying seeds and crashes with any compiler, under
 * valgrind, and for AFL++ in file mode (afl-fuzz ... -- replay_mbox @@).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"

#define REPLAY_MAX_INPUT (16 << 20)

/* The whole of fd, malloc'd; NULL on error or when larger than REPLAY_MAX_INPUT. */
static unsigned char *slurp(int fd, size_t *len)
{
	size_t cap = 65536, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf) {
		if (n == cap) {
			unsigned char *p = cap < REPLAY_MAX_INPUT ? realloc(buf, cap * 2) : NULL;
			if (!p)
				break;
			buf = p;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0) {
			*len = n;
			return buf;
		}
		n += (size_t)r;
	}
	free(buf);
	return NULL;
}

static int run_fd(int fd, const char *name)
{
	size_t len = 0;
	unsigned char *data = slurp(fd, &len);
	if (!data) {
		fprintf(stderr, "%s: cannot read\n", name);
		return -1;
	}
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

static int run_path(const char *path);

static int run_dir(const char *path)
{
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		perror(path);
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char sub[4096];
		if (names[i]->d_name[0] != '.' &&
		    snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name) < (int)sizeof(sub) &&
		    run_path(sub) < 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

static int run_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int rc = S_ISDIR(st.st_mode) ? run_dir(path) : run_fd(fd, path);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return run_fd(STDIN_FILENO, "stdin") < 0;
	int rc = 0;
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i]) < 0)
			rc = 1;
	return rc;
}
