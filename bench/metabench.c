/* metabench - metadata operations per second on a file system: create,
 * stat, rename and unlink N small files in a tree of directories, with T
 * threads, each phase timed on its own (bench/run compiles and runs it).
 *
 *   metabench [-t THREADS] [-n FILES] [-d FILES_PER_DIR] [-s BYTES] DIR
 *
 * DIR must exist and should be empty; the tree d0000/f0000000 ... is made
 * under it and removed again by the unlink phase.  Defaults: 1 thread,
 * 100000 files, 1000 per directory, 100 bytes each.  Thread t works on the
 * directories t, t+T, t+2T, ...; the phases are separated by a barrier, and
 * a phase's time runs from the barrier to the last thread's end.
 *
 *   create  mkdir the directory (not counted as an op), then per file
 *           open(O_CREAT|O_EXCL|O_WRONLY), write BYTES, close
 *   stat    stat(2) every file
 *   rename  rename(2) every file to a new name in its directory
 *   unlink  unlink(2) every file, then rmdir the directory (not counted)
 *
 * Prints one line of JSON: the parameters and, per phase, the seconds and
 * the files per second.  Exit status 1 on the first error (named on
 * standard error). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { CREATE, STAT, RENAME, UNLINK, NPHASES };
static const char *const phase_name[NPHASES] = { "create", "stat", "rename", "unlink" };

static const char *top;
static unsigned long nfiles, per_dir, bytes;
static unsigned nthreads;
static pthread_barrier_t start_barrier[NPHASES], end_barrier[NPHASES];
static char data[65536];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what, const char *path)
{
	fprintf(stderr, "metabench: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void dir_path(char *buf, size_t len, unsigned long d)
{
	snprintf(buf, len, "%s/d%04lu", top, d);
}

static void file_path(char *buf, size_t len, unsigned long i, char prefix)
{
	snprintf(buf, len, "%s/d%04lu/%c%07lu", top, i / per_dir, prefix, i);
}

static void do_phase(int phase, unsigned long d)
{
	char path[4096], path2[4096];
	unsigned long first = d * per_dir, last = first + per_dir;
	struct stat st;

	if (last > nfiles)
		last = nfiles;
	if (phase == CREATE) {
		dir_path(path, sizeof(path), d);
		if (mkdir(path, 0755))
			fail("mkdir", path);
	}
	for (unsigned long i = first; i < last; i++) {
		int fd;

		switch (phase) {
		case CREATE:
			file_path(path, sizeof(path), i, 'f');
			fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0)
				fail("create", path);
			if (bytes && write(fd, data, bytes) != (ssize_t)bytes)
				fail("write", path);
			if (close(fd))
				fail("close", path);
			break;
		case STAT:
			file_path(path, sizeof(path), i, 'f');
			if (stat(path, &st))
				fail("stat", path);
			if ((unsigned long)st.st_size != bytes) {
				errno = EIO;
				fail("stat (wrong size)", path);
			}
			break;
		case RENAME:
			file_path(path, sizeof(path), i, 'f');
			file_path(path2, sizeof(path2), i, 'r');
			if (rename(path, path2))
				fail("rename", path);
			break;
		case UNLINK:
			file_path(path, sizeof(path), i, 'r');
			if (unlink(path))
				fail("unlink", path);
			break;
		}
	}
	if (phase == UNLINK) {
		dir_path(path, sizeof(path), d);
		if (rmdir(path))
			fail("rmdir", path);
	}
}

static void *worker(void *arg)
{
	unsigned long t = (unsigned long)arg;
	unsigned long ndirs = (nfiles + per_dir - 1) / per_dir;

	for (int p = 0; p < NPHASES; p++) {
		pthread_barrier_wait(&start_barrier[p]);
		for (unsigned long d = t; d < ndirs; d += nthreads)
			do_phase(p, d);
		pthread_barrier_wait(&end_barrier[p]);
	}
	return NULL;
}

static unsigned long number(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0) {
		fprintf(stderr, "metabench: %s: want a positive whole number, not '%s'\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	pthread_t *tids;
	double secs[NPHASES];
	int c;

	nthreads = 1;
	nfiles = 100000;
	per_dir = 1000;
	bytes = 100;
	while ((c = getopt(argc, argv, "t:n:d:s:")) != -1) {
		switch (c) {
		case 't': nthreads = (unsigned)number(optarg, "-t"); break;
		case 'n': nfiles = number(optarg, "-n"); break;
		case 'd': per_dir = number(optarg, "-d"); break;
		case 's':
			bytes = strcmp(optarg, "0") ? number(optarg, "-s") : 0;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1)
		goto usage;
	if (bytes > sizeof(data)) {
		fprintf(stderr, "metabench: -s: at most %zu bytes\n", sizeof(data));
		return 2;
	}
	if (nthreads > 256) {
		fprintf(stderr, "metabench: -t: at most 256 threads\n");
		return 2;
	}
	top = argv[optind];
	memset(data, 'x', sizeof(data));
	for (int p = 0; p < NPHASES; p++) {
		pthread_barrier_init(&start_barrier[p], NULL, nthreads + 1);
		pthread_barrier_init(&end_barrier[p], NULL, nthreads + 1);
	}
	tids = calloc(nthreads, sizeof(*tids));
	if (!tids)
		return 1;
	for (unsigned long t = 0; t < nthreads; t++) {
		errno = pthread_create(&tids[t], NULL, worker, (void *)t);
		if (errno)
			fail("pthread_create", "");
	}
	for (int p = 0; p < NPHASES; p++) {
		double t0;

		pthread_barrier_wait(&start_barrier[p]);
		t0 = now();
		pthread_barrier_wait(&end_barrier[p]);
		secs[p] = now() - t0;
	}
	for (unsigned t = 0; t < nthreads; t++)
		pthread_join(tids[t], NULL);

	printf("{\"files\": %lu, \"threads\": %u, \"per_dir\": %lu, \"bytes\": %lu, \"phases\": {",
	       nfiles, nthreads, per_dir, bytes);
	for (int p = 0; p < NPHASES; p++)
		printf("%s\"%s\": {\"secs\": %.6f, \"ops_per_s\": %.1f}", p ? ", " : "", phase_name[p],
		       secs[p], secs[p] > 0 ? nfiles / secs[p] : 0.0);
	printf("}}\n");
	free(tids);
	return 0;

usage:
	fprintf(stderr, "usage: metabench [-t THREADS] [-n FILES] [-d FILES_PER_DIR] [-s BYTES] DIR\n");
	return 2;
}
