/* syncfloor - what one synchronous 4 KiB write costs on a two-device
 * mirror, for each way of making it durable, with no FUSE and no dmiofs
 * in the way: the floor each commit design can reach on these devices.
 *
 *   bench/syncfloor [-t SECONDS] DEV0 DEV1
 *
 * (built with the rest, not installed; or cc -O2 -o syncfloor
 * bench/syncfloor.c -laio)
 *
 * DEV0 and DEV1 are image files or block devices of at least 72 MiB; their
 * first 72 MiB are OVERWRITTEN.  Every operation writes 4 KiB of data in
 * the first 64 MiB (a new place each time, as copy-on-write does) and,
 * where the design has one, a 4 KiB log block after it, on both devices at
 * once, with O_DIRECT through libaio; "then" waits for the step before.
 *
 *   ordered     data, then flush, then the log block with FUA
 *               (a commit sent with PREFLUSH and FUA)
 *   unordered   data, then the log block with FUA and a flush together
 *               (dmiofs's commit for a sync since ecfaeb7)
 *   wthenf      data, then the log block, then a flush
 *   eager       data and the log block together, then a flush
 *               (the log block written with the data, an fsync flushes)
 *   intent      the data in the log block with FUA, nothing else
 *               (an intent log: one write per device)
 *   floor       data, then a flush (no log: ext4 overwriting in place)
 *
 * FUA is RWF_DSYNC, a flush is fdatasync, as libdmio sends them to files.
 * Prints one line per design: operations per second and the median and
 * 99th percentile of one operation's latency in microseconds.  Each design
 * runs SECONDS (default 5) and the designs take turns twice, to even out
 * a machine whose speed drifts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define DATA_BYTES (64L << 20)
#define LOG_AT DATA_BYTES
#define LOG_BLOCKS 2048

enum step { DATA, LOG, LOG_FUA, FLUSH, NONE };

struct design {
	const char *name;
	enum step phases[3][2]; /* up to three phases of up to two steps each */
};

static const struct design designs[] = {
	{ "ordered", { { DATA, NONE }, { FLUSH, NONE }, { LOG_FUA, NONE } } },
	{ "unordered", { { DATA, NONE }, { LOG_FUA, FLUSH }, { NONE, NONE } } },
	{ "wthenf", { { DATA, NONE }, { LOG, NONE }, { FLUSH, NONE } } },
	{ "eager", { { DATA, LOG }, { FLUSH, NONE }, { NONE, NONE } } },
	{ "intent", { { LOG_FUA, NONE }, { NONE, NONE }, { NONE, NONE } } },
	{ "floor", { { DATA, NONE }, { FLUSH, NONE }, { NONE, NONE } } },
};
#define NDESIGNS (sizeof(designs) / sizeof(designs[0]))

static io_context_t ctx;
static int fds[2];
static char *buf;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "syncfloor: %s: %s\n", what, strerror(err));
	exit(1);
}

static void prep(struct iocb *cb, int fd, enum step s, long n)
{
	switch (s) {
	case DATA:
		io_prep_pwrite(cb, fd, buf, BLOCK, (n * 16 % (DATA_BYTES / BLOCK)) * BLOCK);
		break;
	case LOG:
	case LOG_FUA:
		io_prep_pwrite(cb, fd, buf, BLOCK, LOG_AT + (n % LOG_BLOCKS) * BLOCK);
		cb->aio_rw_flags = s == LOG_FUA ? RWF_DSYNC : 0;
		break;
	case FLUSH:
		io_prep_fdsync(cb, fd);
		break;
	case NONE:
		break;
	}
}

/* One phase: its steps on both devices at once; wait for all of them. */
static void run_phase(const enum step *steps, long n)
{
	struct iocb cbs[4], *list[4];
	struct io_event ev[4];
	int count = 0, got = 0;

	for (int s = 0; s < 2 && steps[s] != NONE; s++)
		for (int d = 0; d < 2; d++) {
			memset(&cbs[count], 0, sizeof(cbs[count]));
			prep(&cbs[count], fds[d], steps[s], n);
			list[count] = &cbs[count];
			count++;
		}
	if (!count)
		return;
	if (io_submit(ctx, count, list) != count)
		die("io_submit", EIO);
	while (got < count) {
		int r = io_getevents(ctx, 1, 4, ev, NULL);

		if (r < 0)
			die("io_getevents", -r);
		for (int i = 0; i < r; i++)
			if ((long)ev[i].res < 0)
				die("a write or flush", (int)-(long)ev[i].res);
		got += r;
	}
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void run_design(const struct design *d, double seconds, double *rate, double *lat, long *nlat, long max)
{
	double start = now(), t;
	long n = 0;

	while ((t = now()) - start < seconds) {
		for (int p = 0; p < 3; p++)
			run_phase(d->phases[p], n);
		if (*nlat < max)
			lat[(*nlat)++] = (now() - t) * 1e6;
		n++;
	}
	*rate += (double)n / (now() - start);
}

int main(int argc, char **argv)
{
	double seconds = 5, rate[NDESIGNS] = { 0 };
	long max = 1000000, nlat[NDESIGNS] = { 0 };
	double *lat[NDESIGNS];
	int opt, err;

	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt != 't' || (seconds = atof(optarg)) <= 0) {
			fprintf(stderr, "usage: syncfloor [-t SECONDS] DEV0 DEV1 (their first 72 MiB are overwritten)\n");
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: syncfloor [-t SECONDS] DEV0 DEV1 (their first 72 MiB are overwritten)\n");
		return 2;
	}
	for (int d = 0; d < 2; d++) {
		fds[d] = open(argv[optind + d], O_RDWR | O_DIRECT);
		if (fds[d] < 0)
			die(argv[optind + d], errno);
		if (lseek(fds[d], 0, SEEK_END) < LOG_AT + LOG_BLOCKS * BLOCK) {
			fprintf(stderr, "syncfloor: %s: smaller than 72 MiB\n", argv[optind + d]);
			return 1;
		}
	}
	if ((err = io_setup(16, &ctx)))
		die("io_setup", -err);
	if ((err = posix_memalign((void **)&buf, BLOCK, BLOCK)))
		die("memory", err);
	memset(buf, 0x5a, BLOCK);
	for (size_t i = 0; i < NDESIGNS; i++)
		if (!(lat[i] = malloc(sizeof(double) * (size_t)max)))
			die("memory", ENOMEM);
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < NDESIGNS; i++)
			run_design(&designs[i], seconds / 2, &rate[i], lat[i], &nlat[i], max);
	printf("%-10s %9s %8s %8s\n", "design", "ops/s", "p50 us", "p99 us");
	for (size_t i = 0; i < NDESIGNS; i++) {
		qsort(lat[i], (size_t)nlat[i], sizeof(double), by_value);
		printf("%-10s %9.0f %8.0f %8.0f\n", designs[i].name, rate[i] / 2, lat[i][nlat[i] / 2],
		       lat[i][nlat[i] * 99 / 100]);
		free(lat[i]);
	}
	io_destroy(ctx);
	return 0;
}
