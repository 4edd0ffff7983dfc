/* dmio-bench - drive libdmio the way dm-raid1 drives dm-io, and measure it.
 *
 * Modes (all time-based, wrapping around the file, all through the seed's
 * dm_io_async_vm() on page-aligned buffers, each callback resubmitting its
 * slot so `depth` requests stay in flight):
 *   write     sequential writes of --bs bytes, each request fanned out to
 *             every --file at the same offset (one region per file)
 *   read      sequential reads of --bs bytes from the first --file
 *   randread  random reads of --bs bytes, --bs aligned, from the first --file
 *
 * The result is one line on stdout: "dmio-bench" and key=value pairs, among
 * them user_mib_s (bytes the caller asked for), dev_mib_s (bytes that went
 * to the files: files x user bytes for write), iops (requests/s), dev_iops
 * (pieces/s), cpu_s_per_dev_gib, cpu_us_per_req, vcsw (voluntary context
 * switches), lib_dev_bytes (the library's own counters, dmio_bdev_get_stats),
 * maxrss_kib and rss_before_kib (before the first request: the difference
 * is what the I/O path allocated).  --human adds a summary on stderr.
 * CPU is getrusage(RUSAGE_SELF) over the measured window (first submission
 * to the last completion), so it includes libdmio's completion thread.
 * Any error bit in any callback, or any refused submission, stops the run
 * and makes the exit status 1 (2: bad usage). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "dmio.h"

enum mode { MODE_WRITE, MODE_READ, MODE_RANDREAD };

static const char *const mode_names[] = { "write", "read", "randread" };

struct bench;

struct slot {
	struct bench *b;
	unsigned int index;
	void *buf;
	struct io_region where[DM_IO_MAX_REGIONS];
};

struct bench {
	enum mode mode;
	unsigned int nfiles;
	struct block_device *bdev[DM_IO_MAX_REGIONS];
	uint64_t bs;
	uint64_t blocks;       /* bs-sized blocks in the span used */
	unsigned int depth;
	uint64_t seed;
	struct slot *slots;
	void *buffers;         /* depth x bs, one mapping, as fio allocates */
	size_t buffers_len;

	atomic_uint_fast64_t next;   /* sequence number of the next request */
	atomic_uint_fast64_t done;   /* requests completed without error */
	atomic_uint inflight;
	atomic_bool stop;
	atomic_int failed;           /* first failure: -errno, or 1 for error bits */
	atomic_ulong error_bits;     /* union of every callback's error word */
	sem_t drained;               /* posted when the last in-flight request ends */
	sem_t wake;                  /* posted on failure: cut the run short */
};

/* ---- options ------------------------------------------------------------- */

static char *opt_mode = NULL;
static char **opt_files = NULL;
static char *opt_bs = NULL;
static char *opt_size = NULL;
static gint opt_depth = 0;
static gdouble opt_runtime = 10.0;
static gint64 opt_seed = 0x5eed;
static gint opt_get_pages = -1;
static gboolean opt_human = FALSE;
static gboolean opt_thp = FALSE;
static char *opt_fault = NULL;

static GOptionEntry entries[] = {
	{ "mode", 'm', 0, G_OPTION_ARG_STRING, &opt_mode, "write | read | randread", "MODE" },
	{ "file", 'f', 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_files,
	  "image file or block device (repeat: write fans out to each; reads use the first)", "PATH" },
	{ "bs", 'b', 0, G_OPTION_ARG_STRING, &opt_bs, "bytes per request (default 1M; 4k for randread)", "SIZE" },
	{ "size", 's', 0, G_OPTION_ARG_STRING, &opt_size, "span of each file used (default: all of the smallest)",
	  "SIZE" },
	{ "depth", 'd', 0, G_OPTION_ARG_INT, &opt_depth, "requests in flight (default 16 write, 32 reads)", "N" },
	{ "runtime", 't', 0, G_OPTION_ARG_DOUBLE, &opt_runtime, "seconds to run (default 10)", "S" },
	{ "seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed, "random offsets seed (randread)", "N" },
	{ "get-pages", 0, 0, G_OPTION_ARG_INT, &opt_get_pages,
	  "pages passed to dm_io_get (default: enough pieces and request objects for the depth)", "N" },
	{ "thp", 0, 0, G_OPTION_ARG_NONE, &opt_thp,
	  "back the buffers with transparent huge pages (diagnostic: fio does not)", NULL },
	{ "fault", 0, 0, G_OPTION_ARG_STRING, &opt_fault,
	  "inject a dmio_fault_parse(3) rule on the last --file (tests the error path)", "SPEC" },
	{ "human", 'H', 0, G_OPTION_ARG_NONE, &opt_human, "also print a readable summary on stderr", NULL },
	{ NULL, 0, 0, 0, NULL, NULL, NULL },
};

/* "4096", "4k", "1M", "2G", "1T" (binary multiples). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	guint64 v;

	errno = 0;
	v = g_ascii_strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (g_ascii_tolower(*end)) {
	case '\0':
		break;
	case 'k':
		v <<= 10;
		end++;
		break;
	case 'm':
		v <<= 20;
		end++;
		break;
	case 'g':
		v <<= 30;
		end++;
		break;
	case 't':
		v <<= 40;
		end++;
		break;
	default:
		return -1;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'b' || *end == 'B')
		end++;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/* ---- the I/O loop -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Block number of request number n: sequential modes walk the span and wrap;
 * randread hashes n, so no generator state is shared between threads. */
static uint64_t block_of(const struct bench *b, uint64_t n)
{
	if (b->mode == MODE_RANDREAD)
		return splitmix64(n ^ (b->seed * 0x2545f4914f6cdd1dULL)) % b->blocks;
	return n % b->blocks;
}

static void fail(struct bench *b, int why)
{
	int none = 0;

	atomic_compare_exchange_strong(&b->failed, &none, why);
	atomic_store(&b->stop, true);
	sem_post(&b->wake);
}

static void slot_done(struct bench *b)
{
	if (atomic_fetch_sub(&b->inflight, 1) == 1)
		sem_post(&b->drained);
}

static void notify(unsigned long error, void *context);

/* Issue the slot's next request; it counts as in flight until its callback,
 * or until here when the library refuses it. */
static void slot_submit(struct slot *s)
{
	struct bench *b = s->b;
	uint64_t n = atomic_fetch_add(&b->next, 1);
	sector_t sector = (block_of(b, n) * b->bs) >> DMIO_SECTOR_SHIFT;
	int rw = b->mode == MODE_WRITE ? DMIO_WRITE : DMIO_READ;
	int err;

	for (unsigned int i = 0; i < b->nfiles; i++)
		s->where[i].sector = sector;
	err = dm_io_async_vm(b->nfiles, s->where, rw, s->buf, notify, s);
	if (err) {
		fail(b, err < 0 ? err : -EIO);
		slot_done(b);
	}
}

/* On libdmio's completion thread: must not block. */
static void notify(unsigned long error, void *context)
{
	struct slot *s = context;
	struct bench *b = s->b;

	if (error) {
		atomic_fetch_or(&b->error_bits, error);
		fail(b, 1);
		slot_done(b);
		return;
	}
	atomic_fetch_add(&b->done, 1);
	if (atomic_load(&b->stop)) {
		slot_done(b);
		return;
	}
	slot_submit(s);
}

/* ---- set-up -------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int open_files(struct bench *b, uint64_t *span)
{
	int access = b->mode == MODE_WRITE ? O_RDWR : O_RDONLY;

	*span = UINT64_MAX;
	for (unsigned int i = 0; i < b->nfiles; i++) {
		uint64_t bytes;

		b->bdev[i] = dmio_bdev_open(opt_files[i], access);
		if (!b->bdev[i]) {
			fprintf(stderr, "dmio-bench: %s: %s\n", opt_files[i], strerror(errno));
			return -1;
		}
		if (!dmio_bdev_is_direct(b->bdev[i]))
			fprintf(stderr, "dmio-bench: %s: no O_DIRECT here; the figures measure the page cache\n",
				opt_files[i]);
		if (b->bs % dmio_bdev_logical_block_size(b->bdev[i])) {
			fprintf(stderr, "dmio-bench: %s: --bs is not a multiple of the logical block size %u\n",
				opt_files[i], dmio_bdev_logical_block_size(b->bdev[i]));
			return -1;
		}
		bytes = dmio_bdev_sectors(b->bdev[i]) << DMIO_SECTOR_SHIFT;
		if (bytes < *span)
			*span = bytes;
	}
	return 0;
}

/* Pages for dm_io_get: the library sizes its pools from them (pieces and
 * request objects: 128 + pages/8 each, pieces at most 512).  Ask for one
 * request's worth of pages, and more if the depth needs more pieces. */
static unsigned int pages_wanted(const struct bench *b)
{
	uint64_t max_piece = (uint64_t)dmio_bdev_max_io_sectors(b->bdev[0]) << DMIO_SECTOR_SHIFT;
	uint64_t pieces = (uint64_t)b->depth * b->nfiles * ((b->bs + max_piece - 1) / max_piece);
	uint64_t pages = (b->bs + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE;

	if (pieces > 128 && (pieces - 128) * 8 > pages)
		pages = (pieces - 128) * 8;
	if (b->depth > 128 && (uint64_t)(b->depth - 128) * 8 > pages)
		pages = (uint64_t)(b->depth - 128) * 8;
	return pages > UINT32_MAX / 2 ? UINT32_MAX / 2 : (unsigned int)pages;
}

static void print_result(const struct bench *b, unsigned int get_pages, double elapsed, const struct rusage *r0,
			 const struct rusage *r1, long buffers_kib, long rss_before_kib)
{
	uint64_t reqs = atomic_load(&b->done);
	double user_bytes = (double)reqs * (double)b->bs;
	double dev_bytes = user_bytes * (b->mode == MODE_WRITE ? b->nfiles : 1);
	double usr = tv_s(r1->ru_utime) - tv_s(r0->ru_utime);
	double sys = tv_s(r1->ru_stime) - tv_s(r0->ru_stime);
	double gib = 1024.0 * 1024.0 * 1024.0, mib = 1024.0 * 1024.0;
	long vcsw = r1->ru_nvcsw - r0->ru_nvcsw, ivcsw = r1->ru_nivcsw - r0->ru_nivcsw;
	uint64_t lib_bytes = 0, lib_ios = 0;

	/* The library's own counters: what actually went to the files. */
	for (unsigned int i = 0; i < b->nfiles; i++) {
		struct dmio_bdev_stats st;

		dmio_bdev_get_stats(b->bdev[i], &st);
		lib_bytes += st.read_bytes + st.write_bytes;
		lib_ios += st.reads + st.writes;
	}

	printf("dmio-bench mode=%s files=%u bs=%" PRIu64 " depth=%u span=%" PRIu64 " get_pages=%u direct=%d"
	       " elapsed_s=%.3f requests=%" PRIu64 " user_bytes=%.0f dev_bytes=%.0f"
	       " user_mib_s=%.2f dev_mib_s=%.2f iops=%.0f dev_iops=%.0f"
	       " cpu_usr_s=%.3f cpu_sys_s=%.3f cpu_s=%.3f cpu_s_per_user_gib=%.4f cpu_s_per_dev_gib=%.4f"
	       " cpu_us_per_req=%.2f vcsw=%ld ivcsw=%ld vcsw_per_req=%.3f"
	       " lib_dev_bytes=%" PRIu64 " lib_dev_ios=%" PRIu64 " maxrss_kib=%ld rss_before_kib=%ld buffers_kib=%ld thp=%d errors=%d error_bits=%#lx\n",
	       mode_names[b->mode], b->nfiles, b->bs, b->depth, b->blocks * b->bs, get_pages,
	       dmio_bdev_is_direct(b->bdev[0]), elapsed, reqs, user_bytes, dev_bytes, user_bytes / mib / elapsed,
	       dev_bytes / mib / elapsed, (double)reqs / elapsed,
	       (double)reqs * (b->mode == MODE_WRITE ? b->nfiles : 1) / elapsed, usr, sys, usr + sys,
	       user_bytes ? (usr + sys) / (user_bytes / gib) : 0.0, dev_bytes ? (usr + sys) / (dev_bytes / gib) : 0.0,
	       reqs ? (usr + sys) * 1e6 / (double)reqs : 0.0, vcsw, ivcsw, reqs ? (double)vcsw / (double)reqs : 0.0,
	       lib_bytes, lib_ios, r1->ru_maxrss, rss_before_kib, buffers_kib, opt_thp, atomic_load(&b->failed) != 0,
	       atomic_load(&b->error_bits));
	if (opt_human)
		fprintf(stderr,
			"%s: %u file(s), bs %" PRIu64 ", depth %u, %.2f s: %.1f MiB/s user, %.1f MiB/s device,"
			" %.0f IOPS; CPU %.2f s usr + %.2f s sys = %.3f s/GiB device; max RSS %ld KiB\n",
			mode_names[b->mode], b->nfiles, b->bs, b->depth, elapsed, user_bytes / mib / elapsed,
			dev_bytes / mib / elapsed, (double)reqs / elapsed, usr, sys,
			dev_bytes ? (usr + sys) / (dev_bytes / gib) : 0.0, r1->ru_maxrss);
}

int main(int argc, char **argv)
{
	GOptionContext *ctx = g_option_context_new("- drive libdmio on image files and measure it");
	GError *gerr = NULL;
	struct bench *b = g_new0(struct bench, 1);
	struct rusage r0, r1, rb;
	uint64_t span = 0, want_span = 0, stride;
	unsigned int get_pages;
	double t0, deadline, elapsed;
	int status = 0;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
		fprintf(stderr, "dmio-bench: %s\n", gerr->message);
		return 2;
	}
	g_option_context_free(ctx);

	if (!opt_mode || !strcmp(opt_mode, "write"))
		b->mode = MODE_WRITE;
	else if (!strcmp(opt_mode, "read"))
		b->mode = MODE_READ;
	else if (!strcmp(opt_mode, "randread"))
		b->mode = MODE_RANDREAD;
	else {
		fprintf(stderr, "dmio-bench: unknown --mode %s\n", opt_mode);
		return 2;
	}
	b->nfiles = opt_files ? g_strv_length(opt_files) : 0;
	if (!b->nfiles) {
		fprintf(stderr, "dmio-bench: name at least one --file\n");
		return 2;
	}
	if (b->mode != MODE_WRITE)
		b->nfiles = 1;
	if (b->nfiles > DM_IO_MAX_REGIONS) {
		fprintf(stderr, "dmio-bench: at most %u files\n", DM_IO_MAX_REGIONS);
		return 2;
	}
	b->bs = b->mode == MODE_RANDREAD ? 4096 : 1u << 20;
	if (opt_bs && (parse_size(opt_bs, &b->bs) || !b->bs || b->bs % DMIO_SECTOR_SIZE || b->bs > (1ULL << 30))) {
		fprintf(stderr, "dmio-bench: bad --bs %s (a multiple of 512, at most 1G)\n", opt_bs);
		return 2;
	}
	if (opt_size && parse_size(opt_size, &want_span)) {
		fprintf(stderr, "dmio-bench: bad --size %s\n", opt_size);
		return 2;
	}
	b->depth = opt_depth > 0 ? (unsigned int)opt_depth : b->mode == MODE_WRITE ? 16 : 32;
	if (opt_runtime <= 0) {
		fprintf(stderr, "dmio-bench: --runtime must be positive\n");
		return 2;
	}
	b->seed = (uint64_t)opt_seed;
	sem_init(&b->drained, 0, 0);
	sem_init(&b->wake, 0, 0);

	if (open_files(b, &span))
		return 1;
	if (opt_fault) {
		struct dmio_fault rule;
		int err = dmio_fault_parse(opt_fault, &rule);

		if (!err)
			err = dmio_fault_add(b->bdev[b->nfiles - 1], &rule);
		if (err < 0) {
			fprintf(stderr, "dmio-bench: --fault %s: %s\n", opt_fault, strerror(-err));
			return 2;
		}
	}
	if (want_span && want_span < span)
		span = want_span;
	b->blocks = span / b->bs;
	if (!b->blocks) {
		fprintf(stderr, "dmio-bench: the files are smaller than one --bs\n");
		return 1;
	}

	get_pages = opt_get_pages >= 0 ? (unsigned int)opt_get_pages : pages_wanted(b);
	if (dm_io_get(get_pages)) {
		fprintf(stderr, "dmio-bench: dm_io_get(%u) failed\n", get_pages);
		return 1;
	}

	/* One page-aligned area for all the buffers, as fio does (mem=malloc):
	 * how physically contiguous the pages are decides how many segments,
	 * and so how many block requests, a 1 MiB I/O becomes. */
	stride = (b->bs + DMIO_PAGE_SIZE - 1) & ~(uint64_t)(DMIO_PAGE_SIZE - 1); /* keep each 4096-aligned */
	b->buffers_len = (size_t)b->depth * stride;
	b->buffers = mmap(NULL, b->buffers_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->buffers == MAP_FAILED) {
		fprintf(stderr, "dmio-bench: out of memory\n");
		return 1;
	}
	if (opt_thp && madvise(b->buffers, b->buffers_len, MADV_HUGEPAGE))
		fprintf(stderr, "dmio-bench: madvise(MADV_HUGEPAGE): %s\n", strerror(errno));
	b->slots = g_new0(struct slot, b->depth);
	for (unsigned int i = 0; i < b->depth; i++) {
		struct slot *s = &b->slots[i];
		unsigned char *buf;

		s->b = b;
		s->index = i;
		s->buf = (char *)b->buffers + (size_t)i * stride;
		/* Touch every page now, with bytes that do not compress. */
		buf = s->buf;
		for (uint64_t j = 0; j < b->bs; j += 8) {
			uint64_t v = splitmix64(((uint64_t)i << 40) ^ j);

			memcpy(buf + j, &v, b->bs - j < 8 ? b->bs - j : 8);
		}
		for (unsigned int f = 0; f < b->nfiles; f++) {
			s->where[f].bdev = b->bdev[f];
			s->where[f].count = b->bs >> DMIO_SECTOR_SHIFT;
		}
	}
	getrusage(RUSAGE_SELF, &rb);

	/* Run: fill the queue, sleep until the deadline (or a failure), stop
	 * resubmitting, wait for what is in flight. */
	atomic_store(&b->inflight, b->depth);
	getrusage(RUSAGE_SELF, &r0);
	t0 = now_s();
	deadline = t0 + opt_runtime;
	for (unsigned int i = 0; i < b->depth; i++)
		slot_submit(&b->slots[i]);
	for (;;) {
		double left = deadline - now_s();
		struct timespec ts;
		int rc;

		if (left <= 0 || atomic_load(&b->stop))
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)left;
		ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		rc = sem_timedwait(&b->wake, &ts);
		if (rc && errno != ETIMEDOUT && errno != EINTR)
			break;
	}
	atomic_store(&b->stop, true);
	while (sem_wait(&b->drained) && errno == EINTR)
		;
	elapsed = now_s() - t0;
	getrusage(RUSAGE_SELF, &r1);

	print_result(b, get_pages, elapsed, &r0, &r1, (long)(b->buffers_len / 1024), rb.ru_maxrss);
	if (atomic_load(&b->failed)) {
		int why = atomic_load(&b->failed);

		if (why == 1)
			fprintf(stderr, "dmio-bench: I/O error, error bits %#lx\n", atomic_load(&b->error_bits));
		else
			fprintf(stderr, "dmio-bench: submission refused: %s\n", strerror(-why));
		status = 1;
	}

	dm_io_put(get_pages);
	for (unsigned int i = 0; i < b->nfiles; i++)
		dmio_bdev_close(b->bdev[i]);
	munmap(b->buffers, b->buffers_len);
	g_free(b->slots);
	sem_destroy(&b->drained);
	sem_destroy(&b->wake);
	g_free(b);
	g_strfreev(opt_files);
	g_free(opt_mode);
	g_free(opt_bs);
	g_free(opt_size);
	g_free(opt_fault);
	return status;
}
