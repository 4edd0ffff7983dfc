/* test-kcopyd.c - the copier (dm_kcopyd_copy, _copy_checked, _zero and its
 * clients) on image files: copies to one or more destinations read back
 * identical, odd sizes, empty jobs and bad arguments; fail-over to the next
 * source on a read error or a rejected check; read and write errors in the
 * notify, with and without DM_KCOPYD_IGNORE_ERROR; zeroing; many jobs on a
 * small pool; callbacks that submit jobs; destroy waiting for jobs. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "testutil.h"

#define IMG_BYTES (16u << 20)
#define FILL 0x5A
#define SEED 0x6b637079u /* every pattern's seed is this plus a per-use number */
#define MiB (1u << 20)

static struct io_region region(struct block_device *bdev, sector_t sector, sector_t count)
{
	return (struct io_region){ bdev, sector, count };
}

/* Write a pattern of `len` bytes at `offset` of an image; returns it. */
static char *image_pattern(const char *path, uint64_t offset, size_t len, uint32_t seed)
{
	char *buf = g_malloc(len);

	tu_pattern(buf, len, SEED + seed);
	tu_raw_write(path, offset, buf, len);
	return buf;
}

/* ---- waiting for jobs: the shared waiter, read errors counted beside ---- */

/* A job's one context: what its notify function and, for a checked job,
 * its check function see. */
struct job_waiter {
	struct tu_waiter w; /* bits: write_err of the last job; all_bits: of every job */
	gint read_errs;     /* jobs that reported read_err */
	void *check_state;  /* the check function's own */
};

static void job_waiter_init(struct job_waiter *jw)
{
	tu_waiter_init(&jw->w);
	jw->read_errs = 0;
	jw->check_state = NULL;
}

static void *check_state_of(void *context)
{
	return ((struct job_waiter *)context)->check_state;
}

static void job_done(int read_err, unsigned long write_err, void *context)
{
	struct job_waiter *jw = context;

	if (read_err)
		g_atomic_int_inc(&jw->read_errs);
	tu_waiter_notify(write_err, &jw->w);
}

static unsigned int calls_so_far(struct job_waiter *jw)
{
	unsigned int calls;

	g_mutex_lock(&jw->w.lock);
	calls = jw->w.calls;
	g_mutex_unlock(&jw->w.lock);
	return calls;
}

struct outcome {
	int read_err;
	unsigned long write_err;
};

/* Submit one job (checked when nsrc > 1 or check is set; zeroing when nsrc
 * is 0) and wait for its callback. */
static struct outcome run_job(struct dm_kcopyd_client *kc, unsigned int nsrc, const struct io_region *src,
			      unsigned int ndst, const struct io_region *dst, unsigned int flags,
			      dm_kcopyd_check_fn check, void *check_state)
{
	struct job_waiter jw;
	struct outcome out;
	int err;

	job_waiter_init(&jw);
	jw.check_state = check_state;
	if (nsrc == 0)
		err = dm_kcopyd_zero(kc, ndst, dst, flags, job_done, &jw);
	else if (nsrc == 1 && !check)
		err = dm_kcopyd_copy(kc, src, ndst, dst, flags, job_done, &jw);
	else
		err = dm_kcopyd_copy_checked(kc, nsrc, src, ndst, dst, flags, check, job_done, &jw);
	g_assert_cmpint(err, ==, 0);
	tu_waiter_wait(&jw.w, 1);
	out.read_err = g_atomic_int_get(&jw.read_errs);
	out.write_err = jw.w.bits;
	g_assert_cmpuint(calls_so_far(&jw), ==, 1);
	tu_waiter_clear(&jw.w);
	return out;
}

/* Pieces of `sectors` on every device, so that fault rules and pieces line
 * up (pieces never exceed a device's limit). */
static void set_piece_limit(struct tu_devices *d, unsigned int sectors)
{
	for (unsigned int i = 0; i < d->n; i++)
		g_assert_cmpint(dmio_bdev_set_max_io_sectors(d->bdev[i], sectors), ==, 0);
}

static int add_fault(struct block_device *bdev, unsigned int ops, enum dmio_fault_action action, sector_t sector,
		     sector_t count)
{
	struct dmio_fault rule = { .ops = ops, .action = action, .sector = sector, .count = count };
	int id = dmio_fault_add(bdev, &rule);

	g_assert_cmpint(id, >, 0);
	return id;
}

static struct dmio_bdev_stats stats_of(struct block_device *bdev)
{
	struct dmio_bdev_stats s;

	dmio_bdev_get_stats(bdev, &s);
	return s;
}

/* ---- copies that work ----------------------------------------------------- */

/* 6 MiB from device 0 to 1, 2 and 3 destinations at other places; the
 * bytes around each destination stay untouched. */
static void test_copy_to_n_dests(const char *dir)
{
	const size_t len = 6 * MiB;
	const sector_t count = len >> 9, src_sector = 2048;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct tu_devices d;

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 4, IMG_BYTES, FILL);
	for (unsigned int n = 1; n <= 3; n++) {
		char *data = image_pattern(d.path[0], src_sector << 9, len, n);
		struct io_region from = region(d.bdev[0], src_sector, count), to[3];
		/* FUA on the last round: the same bytes, only durable sooner */
		unsigned int flags = n == 3 ? DM_KCOPYD_FUA : 0;
		struct outcome out;

		for (unsigned int i = 0; i < n; i++)
			to[i] = region(d.bdev[i + 1], 512 * (n + i), count);
		out = run_job(kc, 1, &from, n, to, flags, NULL, NULL);
		g_assert_cmpint(out.read_err, ==, 0);
		g_assert_cmpuint(out.write_err, ==, 0);
		for (unsigned int i = 0; i < n; i++) {
			uint64_t at = to[i].sector << 9;

			tu_assert_image_holds(d.path[i + 1], at, data, len);
			tu_assert_image_filled(d.path[i + 1], at - 4096, FILL, 4096);
			tu_assert_image_filled(d.path[i + 1], at + len, FILL, 4096);
		}
		/* The next round's destinations start from FILL again. */
		for (unsigned int i = 0; i < n; i++) {
			char *fill = g_malloc(len);

			memset(fill, FILL, len);
			tu_raw_write(d.path[i + 1], to[i].sector << 9, fill, len);
			g_free(fill);
		}
		g_free(data);
	}
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

/* A region a whole number of logical blocks long but of no round size, at
 * odd places, on a pool whose pieces do not divide it. */
static void test_copy_odd_size(const char *dir)
{
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(24); /* pieces of 3 pages */
	struct tu_devices d;
	sector_t unit, count, from_sector, to_sector;
	struct io_region from, to[2];
	struct outcome out;
	char *data;
	size_t len;

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 3, IMG_BYTES, FILL);
	unit = MAX(dmio_bdev_logical_block_size(d.bdev[0]), dmio_bdev_logical_block_size(d.bdev[1])) >> 9;
	unit = MAX(unit, (sector_t)(dmio_bdev_logical_block_size(d.bdev[2]) >> 9));
	count = unit * 2311; /* a prime number of blocks */
	from_sector = unit * 3;
	to_sector = unit * 1001;
	len = (size_t)count << 9;
	data = image_pattern(d.path[0], from_sector << 9, len, 10);
	from = region(d.bdev[0], from_sector, count);
	to[0] = region(d.bdev[1], to_sector, count);
	to[1] = region(d.bdev[2], to_sector + unit, count);
	out = run_job(kc, 1, &from, 2, to, 0, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 0);
	for (unsigned int i = 0; i < 2; i++) {
		uint64_t at = to[i].sector << 9;

		tu_assert_image_holds(d.path[i + 1], at, data, len);
		tu_assert_image_filled(d.path[i + 1], at - (unit << 9), FILL, unit << 9);
		tu_assert_image_filled(d.path[i + 1], at + len, FILL, unit << 9);
	}
	g_free(data);
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

/* A count of 0 calls back without error and without I/O, never inside the
 * call; so does zeroing nothing. */
static void test_empty_job(const char *dir)
{
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct tu_devices d;
	struct dmio_bdev_stats before0, before1;
	struct io_region from, to;
	struct outcome out;

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 2, IMG_BYTES, FILL);
	before0 = stats_of(d.bdev[0]);
	before1 = stats_of(d.bdev[1]);
	from = region(d.bdev[0], 100, 0);
	to = region(d.bdev[1], 200, 0);
	out = run_job(kc, 1, &from, 1, &to, 0, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 0);
	out = run_job(kc, 0, NULL, 1, &to, 0, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 0);
	g_assert_cmpuint(tu_stats_since(d.bdev[0], &before0).reads, ==, 0);
	g_assert_cmpuint(tu_stats_since(d.bdev[1], &before1).writes, ==, 0);
	g_assert_cmpuint(tu_stats_since(d.bdev[1], &before1).discards, ==, 0);
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

/* Every bad argument is refused with -EINVAL and its callback never runs:
 * after one good job, exactly one callback has run. */
static void test_bad_arguments(const char *dir)
{
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct io_region many[DM_IO_MAX_REGIONS + 1];
	struct io_region src[2], dst[2];
	struct job_waiter jw;
	struct tu_devices d;

	g_assert_nonnull(kc);
	job_waiter_init(&jw);
	tu_devices_open(&d, dir, "d", 3, IMG_BYTES, FILL);
	src[0] = region(d.bdev[0], 0, 64);
	src[1] = region(d.bdev[1], 0, 64);
	dst[0] = region(d.bdev[2], 0, 64);
	dst[1] = region(d.bdev[2], 1024, 64);
	for (unsigned int i = 0; i < G_N_ELEMENTS(many); i++)
		many[i] = region(d.bdev[2], 128 * i, 64);

	/* client, callback, counts of regions, arrays */
	g_assert_cmpint(dm_kcopyd_copy(NULL, src, 1, dst, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_copy(kc, src, 1, dst, 0, NULL, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_copy(kc, NULL, 1, dst, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_copy(kc, src, 1, NULL, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_copy(kc, src, 0, dst, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_copy(kc, src, DM_IO_MAX_REGIONS + 1, many, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_copy_checked(kc, 0, src, 1, dst, 0, NULL, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_copy_checked(kc, DM_IO_MAX_REGIONS + 1, many, 1, dst, 0, NULL, job_done, &jw), ==,
			-EINVAL);
	g_assert_cmpint(dm_kcopyd_zero(NULL, 1, dst, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_zero(kc, 0, dst, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_zero(kc, 1, dst, 0, NULL, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_zero(kc, DM_IO_MAX_REGIONS + 1, many, 0, job_done, &jw), ==, -EINVAL);
	/* unknown flags */
	g_assert_cmpint(dm_kcopyd_copy(kc, src, 1, dst, 0x100, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_zero(kc, 1, dst, 0x4, job_done, &jw), ==, -EINVAL);
	/* counts that differ: source and destination, two destinations, two sources */
	src[0].count = 72;
	g_assert_cmpint(dm_kcopyd_copy(kc, src, 1, dst, 0, job_done, &jw), ==, -EINVAL);
	src[0].count = 64;
	dst[1].count = 0;
	g_assert_cmpint(dm_kcopyd_copy(kc, src, 2, dst, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_zero(kc, 2, dst, 0, job_done, &jw), ==, -EINVAL);
	dst[1].count = 64;
	src[1].count = 8;
	g_assert_cmpint(dm_kcopyd_copy_checked(kc, 2, src, 1, dst, 0, NULL, job_done, &jw), ==, -EINVAL);
	src[1].count = 64;
	/* a NULL device, as source or destination, even in an empty job */
	src[1].bdev = NULL;
	g_assert_cmpint(dm_kcopyd_copy_checked(kc, 2, src, 1, dst, 0, NULL, job_done, &jw), ==, -EINVAL);
	src[1].bdev = d.bdev[1];
	dst[1].bdev = NULL;
	g_assert_cmpint(dm_kcopyd_copy(kc, src, 2, dst, 0, job_done, &jw), ==, -EINVAL);
	g_assert_cmpint(dm_kcopyd_zero(kc, 2, dst, 0, job_done, &jw), ==, -EINVAL);
	{
		struct io_region none_from = region(NULL, 0, 0), none_to = region(d.bdev[2], 0, 0);

		g_assert_cmpint(dm_kcopyd_copy(kc, &none_from, 1, &none_to, 0, job_done, &jw), ==, -EINVAL);
	}
	dst[1].bdev = d.bdev[2];
	/* a region that overflows when counted in bytes */
	{
		struct io_region huge_from = region(d.bdev[0], UINT64_MAX >> 9, 64);

		g_assert_cmpint(dm_kcopyd_copy(kc, &huge_from, 1, dst, 0, job_done, &jw), ==, -EINVAL);
	}
	/* misaligned to a device's logical block, where a block is more than a sector */
	if (dmio_bdev_logical_block_size(d.bdev[0]) > DMIO_SECTOR_SIZE) {
		struct io_region odd = region(d.bdev[0], 1, 64);

		g_assert_cmpint(dm_kcopyd_copy(kc, &odd, 1, dst, 0, job_done, &jw), ==, -EINVAL);
	}
	g_assert_cmpuint(calls_so_far(&jw), ==, 0);

	/* the same arrays, put right, are accepted: 64 destinations at once */
	g_assert_cmpint(dm_kcopyd_copy(kc, src, DM_IO_MAX_REGIONS, many, 0, job_done, &jw), ==, 0);
	tu_waiter_wait(&jw.w, 1);
	dm_kcopyd_client_destroy(kc); /* waits for every job: a stray one would show */
	g_assert_cmpuint(calls_so_far(&jw), ==, 1);
	g_assert_cmpuint(jw.w.all_bits, ==, 0);
	g_assert_cmpint(g_atomic_int_get(&jw.read_errs), ==, 0);
	dm_kcopyd_client_destroy(NULL); /* ignored */
	tu_waiter_clear(&jw.w);
	tu_devices_close(&d);
}

/* ---- fail-over between sources -------------------------------------------- */

#define PIECE_SECTORS 64 /* what set_piece_limit() imposes in these tests */

/* A read error on the first source: that piece alone comes from the second. */
static void test_read_error_falls_back(const char *dir)
{
	const size_t len = 2 * MiB;
	const sector_t count = len >> 9;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct dmio_bdev_stats before1;
	struct io_region from[2], to;
	struct tu_devices d;
	struct outcome out;
	char *data;

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 3, IMG_BYTES, FILL);
	set_piece_limit(&d, PIECE_SECTORS);
	data = image_pattern(d.path[0], 0, len, 20);
	tu_raw_write(d.path[1], 0, data, len);
	add_fault(d.bdev[0], DMIO_FAULT_READ, DMIO_FAULT_EIO, 5 * PIECE_SECTORS + 3, 1); /* in piece 5 */
	before1 = stats_of(d.bdev[1]);
	from[0] = region(d.bdev[0], 0, count);
	from[1] = region(d.bdev[1], 0, count);
	to = region(d.bdev[2], 4096, count);
	out = run_job(kc, 2, from, 1, &to, 0, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 0);
	tu_assert_image_holds(d.path[2], 4096 << 9, data, len);
	g_assert_cmpuint(tu_stats_since(d.bdev[1], &before1).reads, ==, 1);
	g_assert_cmpuint(tu_stats_since(d.bdev[1], &before1).read_bytes, ==, PIECE_SECTORS << 9);
	g_free(data);
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

/* The check function knows what the data should be (as a checksum would). */
struct verifier {
	const char *want;
	gint calls, rejected;
};

static int verify_piece(sector_t sector, const void *data, size_t len, void *context)
{
	struct verifier *v = check_state_of(context);

	g_atomic_int_inc(&v->calls);
	if (memcmp(data, v->want + (sector << 9), len) == 0)
		return 0;
	g_atomic_int_inc(&v->rejected);
	return 1;
}

/* Rot on the first source (bits flipped as it is read) in two pieces: the
 * check rejects those copies and the copier takes them from the second. */
static void test_check_rejects_rot(const char *dir)
{
	const size_t len = 2 * MiB;
	const sector_t count = len >> 9, at = 2048;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct verifier v = { 0 };
	struct dmio_bdev_stats before1;
	struct io_region from[2], to[2];
	struct tu_devices d;
	struct outcome out;
	char *data;

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 4, IMG_BYTES, FILL);
	set_piece_limit(&d, PIECE_SECTORS);
	data = image_pattern(d.path[0], at << 9, len, 30);
	tu_raw_write(d.path[1], at << 9, data, len);
	v.want = data;
	add_fault(d.bdev[0], DMIO_FAULT_READ, DMIO_FAULT_CORRUPT, at + 2 * PIECE_SECTORS + 10, 2);
	add_fault(d.bdev[0], DMIO_FAULT_READ, DMIO_FAULT_CORRUPT, at + 20 * PIECE_SECTORS, 1);
	before1 = stats_of(d.bdev[1]);
	from[0] = region(d.bdev[0], at, count);
	from[1] = region(d.bdev[1], at, count);
	to[0] = region(d.bdev[2], 0, count);
	to[1] = region(d.bdev[3], 8192, count);
	out = run_job(kc, 2, from, 2, to, 0, verify_piece, &v);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 0);
	tu_assert_image_holds(d.path[2], 0, data, len);
	tu_assert_image_holds(d.path[3], 8192 << 9, data, len);
	g_assert_cmpint(v.rejected, ==, 2);
	g_assert_cmpint(v.calls, ==, (int)(count / PIECE_SECTORS) + 2); /* every piece, and the two again */
	g_assert_cmpuint(tu_stats_since(d.bdev[1], &before1).reads, ==, 2);
	g_free(data);
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

static int reject_all(sector_t sector, const void *data, size_t len, void *context)
{
	(void)sector;
	(void)data;
	(void)len;
	g_atomic_int_inc((gint *)check_state_of(context));
	return -1;
}

/* A piece no source yields sets read_err and is not written: by read errors
 * on every source, or by a check that accepts no copy. */
static void test_all_sources_fail(const char *dir)
{
	const size_t len = 1 * MiB;
	const sector_t count = len >> 9, bad = 7 * PIECE_SECTORS;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct io_region from[3], to;
	struct tu_devices d;
	struct outcome out;
	gint checks = 0;
	char *data;

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 4, IMG_BYTES, FILL);
	set_piece_limit(&d, PIECE_SECTORS);
	data = image_pattern(d.path[0], 0, len, 40);
	tu_raw_write(d.path[1], 0, data, len);
	tu_raw_write(d.path[2], 0, data, len);
	for (unsigned int i = 0; i < 3; i++) {
		add_fault(d.bdev[i], DMIO_FAULT_READ, DMIO_FAULT_EIO, bad + i, 1);
		from[i] = region(d.bdev[i], 0, count);
	}
	to = region(d.bdev[3], 0, count);
	out = run_job(kc, 3, from, 1, &to, DM_KCOPYD_IGNORE_ERROR, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 1);
	g_assert_cmpuint(out.write_err, ==, 0);
	tu_assert_image_holds(d.path[3], 0, data, bad << 9);
	tu_assert_image_filled(d.path[3], bad << 9, FILL, PIECE_SECTORS << 9);
	tu_assert_image_holds(d.path[3], (bad + PIECE_SECTORS) << 9, data + ((bad + PIECE_SECTORS) << 9),
			      len - ((bad + PIECE_SECTORS) << 9));

	/* Rejected everywhere: each piece is offered once per source, and
	 * nothing reaches the destination. */
	for (unsigned int i = 0; i < 3; i++)
		dmio_fault_clear(d.bdev[i]);
	to = region(d.bdev[3], 4096, 4 * PIECE_SECTORS);
	for (unsigned int i = 0; i < 3; i++)
		from[i].count = 4 * PIECE_SECTORS;
	out = run_job(kc, 3, from, 1, &to, DM_KCOPYD_IGNORE_ERROR, reject_all, &checks);
	g_assert_cmpint(out.read_err, ==, 1);
	g_assert_cmpuint(out.write_err, ==, 0);
	g_assert_cmpint(checks, ==, 4 * 3);
	tu_assert_image_filled(d.path[3], 4096 << 9, FILL, 4 * PIECE_SECTORS << 9);
	g_free(data);
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

/* ---- write errors, and stopping at the first error ------------------------- */

/* A write error on the middle of three destinations sets exactly its bit;
 * with IGNORE_ERROR it and the others get every other piece. */
static void test_write_error_one_dest(const char *dir)
{
	const size_t len = 2 * MiB;
	const sector_t count = len >> 9, bad = 9 * PIECE_SECTORS;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct io_region from, to[3];
	struct tu_devices d;
	struct outcome out;
	char *data;

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 4, IMG_BYTES, FILL);
	set_piece_limit(&d, PIECE_SECTORS);
	data = image_pattern(d.path[0], 0, len, 50);
	from = region(d.bdev[0], 0, count);
	for (unsigned int i = 0; i < 3; i++)
		to[i] = region(d.bdev[i + 1], 0, count);
	add_fault(d.bdev[2], DMIO_FAULT_WRITE, DMIO_FAULT_EIO, bad, PIECE_SECTORS);
	out = run_job(kc, 1, &from, 3, to, DM_KCOPYD_IGNORE_ERROR, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 1UL << 1);
	tu_assert_image_holds(d.path[1], 0, data, len);
	tu_assert_image_holds(d.path[3], 0, data, len);
	tu_assert_image_holds(d.path[2], 0, data, bad << 9);
	tu_assert_image_filled(d.path[2], bad << 9, FILL, PIECE_SECTORS << 9);
	tu_assert_image_holds(d.path[2], (bad + PIECE_SECTORS) << 9, data + ((bad + PIECE_SECTORS) << 9),
			      len - ((bad + PIECE_SECTORS) << 9));
	g_free(data);
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

/* On a pool of 4 one-page pieces, an error in piece 3 of 512: without
 * IGNORE_ERROR the job stops (at most the pieces already in flight finish,
 * the far end is untouched); with it every other piece is copied.  Each
 * round copies to fresh destinations, len apart. */
static void test_stop_or_go_on(const char *dir)
{
	const size_t len = 2 * MiB;
	const sector_t count = len >> 9, piece = 8, bad = 3 * piece;
	const size_t bad_end = (bad + piece) << 9;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(4);
	struct dmio_bdev_stats before;
	struct io_region from, to[2];
	struct tu_devices d;
	struct outcome out;
	char *data;

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 3, IMG_BYTES, FILL);
	data = image_pattern(d.path[0], 0, len, 60);
	from = region(d.bdev[0], 0, count);

	/* a read error stops the job */
	to[0] = region(d.bdev[1], 0, count);
	to[1] = region(d.bdev[2], 0, count);
	add_fault(d.bdev[0], DMIO_FAULT_READ, DMIO_FAULT_EIO, bad, 1);
	before = stats_of(d.bdev[0]);
	out = run_job(kc, 1, &from, 2, to, 0, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 1);
	g_assert_cmpuint(out.write_err, ==, 0);
	/* pieces 0-2, and the three others in flight at most */
	g_assert_cmpuint(tu_stats_since(d.bdev[0], &before).reads, <=, 3 + 3);
	for (unsigned int i = 1; i <= 2; i++) {
		tu_assert_image_holds(d.path[i], 0, data, bad << 9);
		tu_assert_image_filled(d.path[i], bad << 9, FILL, piece << 9);
		tu_assert_image_filled(d.path[i], len / 2, FILL, len / 2);
	}
	dmio_fault_clear(d.bdev[0]);

	/* a write error on one destination stops it too */
	to[0].sector = to[1].sector = count;
	add_fault(d.bdev[2], DMIO_FAULT_WRITE, DMIO_FAULT_EIO, count + bad, 1);
	before = stats_of(d.bdev[0]);
	out = run_job(kc, 1, &from, 2, to, 0, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 1UL << 1);
	g_assert_cmpuint(tu_stats_since(d.bdev[0], &before).reads, <=, 4 + 3);
	tu_assert_image_holds(d.path[1], len, data, bad_end); /* the other destination took piece 3 */
	tu_assert_image_filled(d.path[1], len + len / 2, FILL, len / 2);
	tu_assert_image_filled(d.path[2], len + len / 2, FILL, len / 2);
	dmio_fault_clear(d.bdev[2]);

	/* with IGNORE_ERROR everything but the unreadable piece arrives */
	to[0].sector = to[1].sector = 2 * count;
	add_fault(d.bdev[0], DMIO_FAULT_READ, DMIO_FAULT_EIO, bad, 1);
	before = stats_of(d.bdev[0]);
	out = run_job(kc, 1, &from, 2, to, DM_KCOPYD_IGNORE_ERROR, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 1);
	g_assert_cmpuint(out.write_err, ==, 0);
	g_assert_cmpuint(tu_stats_since(d.bdev[0], &before).reads, ==, count / piece - 1);
	for (unsigned int i = 1; i <= 2; i++) {
		tu_assert_image_holds(d.path[i], 2 * len, data, bad << 9);
		tu_assert_image_filled(d.path[i], 2 * len + (bad << 9), FILL, piece << 9);
		tu_assert_image_holds(d.path[i], 2 * len + bad_end, data + bad_end, len - bad_end);
	}
	g_free(data);
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

/* ---- zeroing ---------------------------------------------------------------- */

static void test_zero(const char *dir)
{
	const size_t len = 3 * MiB + 4096;
	const sector_t count = len >> 9;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct io_region to[2];
	struct tu_devices d;
	struct outcome out;
	char *data[2];

	g_assert_nonnull(kc);
	tu_devices_open(&d, dir, "d", 2, IMG_BYTES, FILL);
	for (unsigned int i = 0; i < 2; i++) {
		data[i] = image_pattern(d.path[i], 0, IMG_BYTES, 70 + i);
		to[i] = region(d.bdev[i], 1024 + 8 * i, count);
	}
	out = run_job(kc, 0, NULL, 2, to, 0, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 0);
	for (unsigned int i = 0; i < 2; i++) {
		uint64_t at = to[i].sector << 9;

		tu_assert_image_holds(d.path[i], 0, data[i], at);
		tu_assert_image_filled(d.path[i], at, 0, len);
		tu_assert_image_holds(d.path[i], at + len, data[i] + at + len, IMG_BYTES - at - len);
	}
	/* FUA, and every write to one destination failing: the other is
	 * still zeroed throughout (IGNORE_ERROR), the failing one untouched */
	add_fault(d.bdev[1], DMIO_FAULT_WRITE, DMIO_FAULT_EIO, 0, 0);
	to[0].sector = to[1].sector = 12288;
	out = run_job(kc, 0, NULL, 2, to, DM_KCOPYD_FUA | DM_KCOPYD_IGNORE_ERROR, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 1UL << 1);
	tu_assert_image_filled(d.path[0], 12288 << 9, 0, len);
	tu_assert_image_holds(d.path[1], 12288 << 9, data[1] + (12288 << 9), len);
	g_free(data[0]);
	g_free(data[1]);
	dm_kcopyd_client_destroy(kc);
	tu_devices_close(&d);
}

/* ---- many jobs, callbacks, destroy -------------------------------------------- */

/* 50 jobs at once on a pool of 4 pages: they queue for pages, none fails. */
static void test_fifty_jobs_small_pool(const char *dir)
{
	const unsigned int jobs = 50;
	const size_t len = 160 * 1024; /* 40 pieces of a page each */
	const sector_t count = len >> 9;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(4);
	struct job_waiter jw;
	struct tu_devices d;
	char *data;

	g_assert_nonnull(kc);
	job_waiter_init(&jw);
	tu_devices_open(&d, dir, "d", 3, IMG_BYTES, FILL);
	data = image_pattern(d.path[0], 0, jobs * len, 80);
	for (unsigned int j = 0; j < jobs; j++) {
		struct io_region from = region(d.bdev[0], j * count, count);
		struct io_region to[2] = { region(d.bdev[1], (jobs - 1 - j) * count, count),
					   region(d.bdev[2], j * count + 8, count) };

		g_assert_cmpint(dm_kcopyd_copy(kc, &from, 2, to, 0, job_done, &jw), ==, 0);
	}
	tu_waiter_wait(&jw.w, jobs);
	g_assert_cmpuint(jw.w.all_bits, ==, 0);
	g_assert_cmpint(g_atomic_int_get(&jw.read_errs), ==, 0);
	for (unsigned int j = 0; j < jobs; j++) {
		tu_assert_image_holds(d.path[1], (jobs - 1 - j) * len, data + j * len, len);
		tu_assert_image_holds(d.path[2], j * len + 4096, data + j * len, len);
	}
	dm_kcopyd_client_destroy(kc);
	g_assert_cmpuint(calls_so_far(&jw), ==, jobs);
	tu_waiter_clear(&jw.w);
	g_free(data);
	tu_devices_close(&d);
}

/* A chain: each job's callback submits the next, which copies what the
 * previous one wrote one step further along device 1; the last callback
 * wakes the test. */
struct chain {
	struct dm_kcopyd_client *kc;
	struct block_device *bdev;
	sector_t count;
	unsigned int step, steps;
	int first_error; /* the first failure seen in a callback */
	struct job_waiter done;
};

static void chain_next(int read_err, unsigned long write_err, void *context)
{
	struct chain *c = context;
	struct io_region from, to;
	int err;

	if ((read_err || write_err) && !c->first_error)
		c->first_error = -EIO;
	if (++c->step == c->steps || c->first_error) {
		job_done(read_err, write_err, &c->done);
		return;
	}
	from = region(c->bdev, (c->step - 1) * c->count, c->count);
	to = region(c->bdev, c->step * c->count, c->count);
	err = dm_kcopyd_copy(c->kc, &from, 1, &to, 0, chain_next, c);
	if (err) {
		c->first_error = err;
		job_done(1, 0, &c->done);
	}
}

static void test_callback_submits(const char *dir)
{
	const size_t len = 96 * 1024;
	struct chain c = { .steps = 20, .count = len >> 9 };
	struct io_region from, to;
	struct tu_devices d;
	char *data;

	c.kc = dm_kcopyd_client_create(8);
	g_assert_nonnull(c.kc);
	job_waiter_init(&c.done);
	tu_devices_open(&d, dir, "d", 2, IMG_BYTES, FILL);
	c.bdev = d.bdev[1];
	data = image_pattern(d.path[0], 0, len, 90);
	from = region(d.bdev[0], 0, c.count);
	to = region(c.bdev, 0, c.count);
	c.step = 0;
	g_assert_cmpint(dm_kcopyd_copy(c.kc, &from, 1, &to, 0, chain_next, &c), ==, 0);
	tu_waiter_wait(&c.done.w, 1);
	g_assert_cmpint(c.first_error, ==, 0);
	g_assert_cmpuint(c.step, ==, c.steps);
	for (unsigned int i = 0; i < c.steps; i++)
		tu_assert_image_holds(d.path[1], i * len, data, len);
	dm_kcopyd_client_destroy(c.kc);
	tu_waiter_clear(&c.done.w);
	g_free(data);
	tu_devices_close(&d);
}

/* Destroy returns only once every job has called back: reads delayed by
 * 300 ms keep three jobs in flight when it is called. */
static void test_destroy_waits(const char *dir)
{
	const sector_t count = 256;
	struct dm_kcopyd_client *kc = dm_kcopyd_client_create(0);
	struct job_waiter jw;
	struct tu_devices d;
	struct dmio_fault delay = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_DELAY, .delay_ms = 300 };
	char *data;

	g_assert_nonnull(kc);
	job_waiter_init(&jw);
	tu_devices_open(&d, dir, "d", 2, IMG_BYTES, FILL);
	data = image_pattern(d.path[0], 0, 3 * count << 9, 100);
	g_assert_cmpint(dmio_fault_add(d.bdev[0], &delay), >, 0);
	for (unsigned int j = 0; j < 3; j++) {
		struct io_region from = region(d.bdev[0], j * count, count), to = region(d.bdev[1], j * count, count);

		g_assert_cmpint(dm_kcopyd_copy(kc, &from, 1, &to, 0, job_done, &jw), ==, 0);
	}
	dm_kcopyd_client_destroy(kc);
	g_assert_cmpuint(calls_so_far(&jw), ==, 3);
	g_assert_cmpuint(jw.w.all_bits, ==, 0);
	tu_assert_image_holds(d.path[1], 0, data, 3 * count << 9);
	tu_waiter_clear(&jw.w);
	g_free(data);
	tu_devices_close(&d);
}

/* Destroying a client from its own callback would wait for itself: it is
 * refused with a message, and the client goes on working. */
struct refusal {
	struct dm_kcopyd_client *kc;
	gint messages;
	struct job_waiter done;
};

static void count_message(int level, const char *message, void *context)
{
	struct refusal *r = context;

	if (level == DMIO_LOG_ERR && strstr(message, "dm_kcopyd_client_destroy"))
		g_atomic_int_inc(&r->messages);
}

static void destroy_own_client(int read_err, unsigned long write_err, void *context)
{
	struct refusal *r = context;

	dm_kcopyd_client_destroy(r->kc);
	job_done(read_err, write_err, &r->done);
}

static void test_destroy_from_callback(const char *dir)
{
	struct refusal r = { .messages = 0 };
	struct tu_devices d;
	struct io_region from, to;
	struct outcome out;

	r.kc = dm_kcopyd_client_create(0);
	g_assert_nonnull(r.kc);
	job_waiter_init(&r.done);
	tu_devices_open(&d, dir, "d", 2, IMG_BYTES, FILL);
	dmio_set_log_fn(count_message, &r);
	from = region(d.bdev[0], 0, 64);
	to = region(d.bdev[1], 0, 64);
	g_assert_cmpint(dm_kcopyd_copy(r.kc, &from, 1, &to, 0, destroy_own_client, &r), ==, 0);
	tu_waiter_wait(&r.done.w, 1);
	g_assert_cmpint(g_atomic_int_get(&r.messages), ==, 1);
	out = run_job(r.kc, 1, &from, 1, &to, 0, NULL, NULL);
	g_assert_cmpint(out.read_err, ==, 0);
	g_assert_cmpuint(out.write_err, ==, 0);
	dm_kcopyd_client_destroy(r.kc);
	dmio_set_log_fn(NULL, NULL);
	tu_waiter_clear(&r.done.w);
	tu_devices_close(&d);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
#define CASE(path, fn) tu_add_guarded("/kcopyd/" path, fn, 60)
	CASE("copy/one-two-three-dests", test_copy_to_n_dests);
	CASE("copy/odd-size", test_copy_odd_size);
	CASE("copy/empty", test_empty_job);
	CASE("bad-arguments", test_bad_arguments);
	CASE("fail-over/read-error", test_read_error_falls_back);
	CASE("fail-over/check-rejects-rot", test_check_rejects_rot);
	CASE("fail-over/all-sources-fail", test_all_sources_fail);
	CASE("errors/write-error-one-dest", test_write_error_one_dest);
	CASE("errors/stop-or-go-on", test_stop_or_go_on);
	CASE("zero", test_zero);
	CASE("concurrent/fifty-jobs-small-pool", test_fifty_jobs_small_pool);
	CASE("callback/submits-next-job", test_callback_submits);
	CASE("destroy/waits-for-jobs", test_destroy_waits);
	CASE("destroy/from-own-callback", test_destroy_from_callback);
	return g_test_run();
}
