/* test-writelog.c - the write log (dmio_write_log_create, _attach, _detach,
 * _close) on image files: writes, flushes, FUA, discards and write-zeroes
 * of two devices recorded in completion order with their data; many writes
 * in flight recorded once each, so that replaying the log onto the images
 * as they were gives the images as they are; failed and dropped writes not
 * recorded; detaching and closing a device stop the recording; a log that
 * cannot be written fails to be created, or reports its first error when
 * closed. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include "testutil.h"
#include "internal.h" /* writelog_crc32c: the format's checksum */

#define IMG_BYTES (4u << 20)
#define FILL 0x5A
#define SEED 0x776c6f67u /* every pattern's seed is this plus a per-use number */

/* ---- reading a log back, as dmio_write_log(3) describes it ------------------ */

enum { KIND_WRITE = 1, KIND_FLUSH = 2, KIND_DISCARD = 3, KIND_ZEROES = 4 };
#define FLAG_FUA 0x1
#define HEAD 64

struct entry {
	uint64_t seq, time_ns, offset, length;
	uint32_t dev_id;
	uint16_t kind, flags;
	const unsigned char *data; /* writes: into the log's bytes */
};

struct log_view {
	gchar *bytes;
	gsize size;
	GArray *entries; /* struct entry */
};

static uint64_t le(const unsigned char *p, unsigned int n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | p[n];
	return v;
}

static uint32_t crc_with_field_zero(const unsigned char *head, size_t crc_at)
{
	unsigned char copy[HEAD];

	memcpy(copy, head, HEAD);
	memset(copy + crc_at, 0, 4);
	return writelog_crc32c(0xFFFFFFFFu, copy, HEAD);
}

/* Read the whole log, checking what every reader must: magics, header
 * checksums, data checksums, sequence numbers 1, 2, ... and times that
 * never go back. */
static void log_view_read(struct log_view *v, const char *path)
{
	const unsigned char *p;
	uint64_t at = HEAD, prev_time = 0;
	GError *error = NULL;

	g_file_get_contents(path, &v->bytes, &v->size, &error);
	g_assert_no_error(error);
	v->entries = g_array_new(FALSE, TRUE, sizeof(struct entry));
	p = (const unsigned char *)v->bytes;
	g_assert_cmpuint(v->size, >=, HEAD);
	g_assert_cmpmem(p, 8, "DMIOWLOG", 8);
	g_assert_cmpuint(le(p + 8, 4), ==, 1);     /* version */
	g_assert_cmpuint(le(p + 12, 4), ==, HEAD); /* entry header size */
	g_assert_cmphex(le(p + 60, 4), ==, crc_with_field_zero(p, 60));
	while (at < v->size) {
		const unsigned char *h = p + at;
		struct entry e;

		g_assert_cmpuint(v->size - at, >=, HEAD);
		g_assert_cmpmem(h, 8, "DMIOWENT", 8);
		g_assert_cmphex(le(h + 60, 4), ==, crc_with_field_zero(h, 60));
		e = (struct entry){
			.seq = le(h + 8, 8),
			.time_ns = le(h + 16, 8),
			.offset = le(h + 24, 8),
			.length = le(h + 32, 8),
			.dev_id = (uint32_t)le(h + 40, 4),
			.kind = (uint16_t)le(h + 44, 2),
			.flags = (uint16_t)le(h + 46, 2),
		};
		g_assert_cmpuint(e.seq, ==, v->entries->len + 1);
		g_assert_cmpuint(e.time_ns, >=, prev_time);
		prev_time = e.time_ns;
		at += HEAD;
		if (e.kind == KIND_WRITE) {
			g_assert_cmpuint(v->size - at, >=, e.length);
			e.data = p + at;
			g_assert_cmphex(le(h + 48, 4), ==, writelog_crc32c(0xFFFFFFFFu, e.data, e.length));
			at += e.length;
		}
		g_array_append_val(v->entries, e);
	}
}

static void log_view_free(struct log_view *v)
{
	g_array_unref(v->entries);
	g_free(v->bytes);
}

static const struct entry *entry_at(const struct log_view *v, unsigned int i)
{
	g_assert_cmpuint(i, <, v->entries->len);
	return &g_array_index(v->entries, struct entry, i);
}

/* The entry says this about this device (data: for writes). */
static void assert_entry(const struct entry *e, uint32_t dev_id, uint16_t kind, uint16_t flags, uint64_t offset,
			 uint64_t length, const void *data)
{
	g_assert_cmpuint(e->dev_id, ==, dev_id);
	g_assert_cmpuint(e->kind, ==, kind);
	g_assert_cmphex(e->flags, ==, flags);
	g_assert_cmpuint(e->offset, ==, offset);
	g_assert_cmpuint(e->length, ==, length);
	if (data)
		g_assert_cmpmem(e->data, e->length, data, length);
}

/* Two entries of one request to two devices complete in either order:
 * the one for dev_id. */
static const struct entry *of_pair(const struct log_view *v, unsigned int first, uint32_t dev_id)
{
	const struct entry *a = entry_at(v, first), *b = entry_at(v, first + 1);

	g_assert_true(a->dev_id != b->dev_id);
	return a->dev_id == dev_id ? a : b;
}

/* ---- the set-up every case shares ------------------------------------------- */

struct rig {
	struct tu_devices d;
	struct dm_io_client *client;
	struct dmio_write_log *log;
	char *log_path;
};

static void rig_open(struct rig *r, const char *dir, unsigned int ndev)
{
	tu_devices_open(&r->d, dir, "d", ndev, IMG_BYTES, FILL);
	r->client = dm_io_client_create(64);
	g_assert_nonnull(r->client);
	r->log_path = g_build_filename(dir, "writes.log", NULL);
	r->log = dmio_write_log_create(r->log_path);
	g_assert_nonnull(r->log);
}

/* Close the devices (which detaches them), then the log: its result. */
static int rig_close(struct rig *r)
{
	int err;

	dm_io_client_destroy(r->client);
	tu_devices_close(&r->d);
	err = dmio_write_log_close(r->log);
	r->log = NULL;
	return err;
}

static void rig_free(struct rig *r)
{
	g_free(r->log_path);
}

static struct io_region region(struct block_device *bdev, sector_t sector, sector_t count)
{
	return (struct io_region){ bdev, sector, count };
}

static int io_sync(struct rig *r, int op, unsigned int flags, void *buf, unsigned int n, struct io_region *where)
{
	unsigned long bits = 0;
	int err = tu_io_sync(r->client, op, flags, tu_kmem(buf), n, where, &bits);

	g_assert_true((err == -EIO) == (bits != 0));
	return err;
}

static void *pattern(size_t len, uint32_t seed)
{
	void *buf = tu_aligned(len + DMIO_PAGE_SIZE);

	tu_pattern(buf, len + DMIO_PAGE_SIZE, SEED + seed);
	return buf;
}

/* ---- cases ---------------------------------------------------------------------- */

/* Every kind of entry, from two devices attached as 7 and 9, in the order
 * the calls completed, with the bytes that were written: through the
 * caller's memory and through bounce pages alike. */
static void test_kinds_in_order(const char *dir)
{
	struct rig r;
	struct log_view v;
	char *a = pattern(8192, 1), *b = pattern(12288, 2), *c = pattern(4096, 3);
	struct io_region where[2];

	rig_open(&r, dir, 2);
	g_assert_cmpint(dmio_write_log_attach(r.log, r.d.bdev[0], 7), ==, 0);
	g_assert_cmpint(dmio_write_log_attach(r.log, r.d.bdev[1], 9), ==, 0);

	where[0] = region(r.d.bdev[0], 16, 16);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, a, 1, where), ==, 0);
	where[0] = region(r.d.bdev[0], 128, 24);
	where[1] = region(r.d.bdev[1], 128, 24);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, b + 1, 2, where), ==, 0); /* unaligned: bounced */
	g_assert_cmpint(io_sync(&r, DMIO_FLUSH, 0, NULL, 2, where), ==, 0);
	where[0] = region(r.d.bdev[1], 256, 8);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, DMIO_REQ_PREFLUSH | DMIO_REQ_FUA, c, 1, where), ==, 0);
	where[0] = region(r.d.bdev[0], 512, 16);
	g_assert_cmpint(io_sync(&r, DMIO_DISCARD, 0, NULL, 1, where), ==, 0);
	where[0] = region(r.d.bdev[1], 1024, 8);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE_ZEROES, 0, NULL, 1, where), ==, 0);
	g_assert_cmpint(rig_close(&r), ==, 0);

	log_view_read(&v, r.log_path);
	g_assert_cmpuint(v.entries->len, ==, 9);
	assert_entry(entry_at(&v, 0), 7, KIND_WRITE, 0, 16 * 512, 8192, a);
	assert_entry(of_pair(&v, 1, 7), 7, KIND_WRITE, 0, 128 * 512, 12288, b + 1);
	assert_entry(of_pair(&v, 1, 9), 9, KIND_WRITE, 0, 128 * 512, 12288, b + 1);
	assert_entry(of_pair(&v, 3, 7), 7, KIND_FLUSH, 0, 0, 0, NULL);
	assert_entry(of_pair(&v, 3, 9), 9, KIND_FLUSH, 0, 0, 0, NULL);
	assert_entry(entry_at(&v, 5), 9, KIND_FLUSH, 0, 0, 0, NULL); /* the pre-flush: no FUA */
	assert_entry(entry_at(&v, 6), 9, KIND_WRITE, FLAG_FUA, 256 * 512, 4096, c);
	assert_entry(entry_at(&v, 7), 7, KIND_DISCARD, 0, 512 * 512, 8192, NULL);
	assert_entry(entry_at(&v, 8), 9, KIND_ZEROES, 0, 1024 * 512, 4096, NULL);
	log_view_free(&v);
	rig_free(&r);
	free(a);
	free(b);
	free(c);
}

#define ASYNC_SECTORS 64 /* 32 KiB a write, cut into pieces of 8 KiB */
#define ASYNC_PIECE_SECTORS 16

/* Replay the log's writes onto images of FILL bytes: gives dev_id's image. */
static char *replayed_image(const struct log_view *v, uint32_t dev_id)
{
	char *image = g_malloc(IMG_BYTES);

	memset(image, FILL, IMG_BYTES);
	for (unsigned int i = 0; i < v->entries->len; i++) {
		const struct entry *e = entry_at(v, i);

		if (e->dev_id != dev_id || e->kind == KIND_FLUSH)
			continue;
		g_assert_cmpuint(e->offset + e->length, <=, IMG_BYTES);
		if (e->kind == KIND_WRITE)
			memcpy(image + e->offset, e->data, e->length);
		else
			memset(image + e->offset, 0, e->length);
	}
	return image;
}

/* `count` writes in flight at once, `stride` sectors apart from `first`,
 * alternately to one device and to both; returns how many regions. */
static unsigned int async_round(struct rig *r, GPtrArray *bufs, unsigned int count, sector_t first, sector_t stride)
{
	size_t len = ASYNC_SECTORS << DMIO_SECTOR_SHIFT;
	unsigned int regions = 0;
	struct tu_waiter w;

	tu_waiter_init(&w);
	for (unsigned int i = 0; i < count; i++) {
		sector_t sector = first + i * stride;
		struct io_region where[2] = { region(r->d.bdev[0], sector, ASYNC_SECTORS),
					      region(r->d.bdev[1], sector + 8, ASYNC_SECTORS) };
		char *buf = pattern(len, 100 + bufs->len);

		g_ptr_array_add(bufs, buf);
		regions += 1 + i % 2;
		g_assert_cmpint(tu_io_async(r->client, DMIO_WRITE, 0, tu_kmem(buf), 1 + i % 2, where,
					    tu_waiter_notify, &w),
				==, 0);
	}
	tu_waiter_wait(&w, count);
	g_assert_cmphex(w.all_bits, ==, 0);
	tu_waiter_clear(&w);
	return regions;
}

/* Many writes in flight at once on two devices, in small pieces, then a
 * second round over half of each: each piece is recorded once, and
 * replaying the log onto the images as they were gives the images as they
 * are, byte for byte.  (Writes that overlap while both are in flight
 * have no defined result on any device, so only the rounds overlap.) */
static void test_async_replays_to_devices(const char *dir)
{
	GPtrArray *bufs = g_ptr_array_new_with_free_func(free);
	unsigned int regions;
	struct log_view v;
	struct rig r;

	rig_open(&r, dir, 2);
	for (unsigned int i = 0; i < 2; i++) {
		g_assert_cmpint(dmio_bdev_set_max_io_sectors(r.d.bdev[i], ASYNC_PIECE_SECTORS), ==, 0);
		g_assert_cmpint(dmio_write_log_attach(r.log, r.d.bdev[i], i), ==, 0);
	}
	regions = async_round(&r, bufs, 96, 0, ASYNC_SECTORS);
	regions += async_round(&r, bufs, 48, ASYNC_SECTORS / 2, 2 * ASYNC_SECTORS);

	/* Complete already: a piece is recorded before its request calls back. */
	log_view_read(&v, r.log_path);
	g_assert_cmpuint(v.entries->len, ==, regions * (ASYNC_SECTORS / ASYNC_PIECE_SECTORS));
	for (uint32_t dev = 0; dev < 2; dev++) {
		char *image = replayed_image(&v, dev);

		tu_assert_image_holds(r.d.path[dev], 0, image, IMG_BYTES);
		g_free(image);
	}
	log_view_free(&v);
	g_assert_cmpint(rig_close(&r), ==, 0);
	g_ptr_array_unref(bufs);
	rig_free(&r);
}

static int add_rule(struct block_device *bdev, unsigned int ops, enum dmio_fault_action action, sector_t sector,
		    sector_t count)
{
	struct dmio_fault rule = { .ops = ops, .action = action, .sector = sector, .count = count };
	int id = dmio_fault_add(bdev, &rule);

	g_assert_cmpint(id, >, 0);
	return id;
}

/* A write that failed (injected EIO), a dropped write and a failed flush
 * reached no device: only the one write that did is recorded. */
static void test_faults_not_recorded(const char *dir)
{
	char *buf = pattern(4096, 4);
	struct log_view v;
	struct io_region where[1];
	struct rig r;

	rig_open(&r, dir, 2);
	g_assert_cmpint(dmio_write_log_attach(r.log, r.d.bdev[0], 0), ==, 0);
	g_assert_cmpint(dmio_write_log_attach(r.log, r.d.bdev[1], 1), ==, 0);
	add_rule(r.d.bdev[0], DMIO_FAULT_WRITE, DMIO_FAULT_EIO, 0, 8);
	add_rule(r.d.bdev[0], DMIO_FAULT_WRITE, DMIO_FAULT_DROP, 64, 8);
	add_rule(r.d.bdev[1], DMIO_FAULT_FLUSH, DMIO_FAULT_EIO, 0, 0);

	where[0] = region(r.d.bdev[0], 0, 8);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, buf, 1, where), ==, -EIO);
	where[0] = region(r.d.bdev[0], 64, 8);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, buf, 1, where), ==, 0); /* a lie: dropped */
	where[0] = region(r.d.bdev[1], 0, 0);
	g_assert_cmpint(io_sync(&r, DMIO_FLUSH, 0, NULL, 1, where), ==, -EIO);
	where[0] = region(r.d.bdev[1], 8, 8);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, buf, 1, where), ==, 0);
	g_assert_cmpint(rig_close(&r), ==, 0);

	log_view_read(&v, r.log_path);
	g_assert_cmpuint(v.entries->len, ==, 1);
	assert_entry(entry_at(&v, 0), 1, KIND_WRITE, 0, 8 * 512, 4096, buf);
	log_view_free(&v);
	rig_free(&r);
	free(buf);
}

/* Detaching stops the recording, attaching again (under another number)
 * resumes it; a device is in one log at a time, a log with a device
 * attached cannot be closed, and closing the device detaches it. */
static void test_detach_and_reattach(const char *dir)
{
	char *a = pattern(4096, 5), *b = pattern(4096, 6), *c = pattern(4096, 7);
	struct block_device *bdev;
	struct io_region where[1];
	struct log_view v;
	struct rig r;

	rig_open(&r, dir, 1);
	bdev = r.d.bdev[0];
	where[0] = region(bdev, 0, 8);
	g_assert_cmpint(dmio_write_log_attach(r.log, bdev, 0), ==, 0);
	g_assert_cmpint(dmio_write_log_attach(r.log, bdev, 1), ==, -EBUSY);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, a, 1, where), ==, 0);
	dmio_write_log_detach(bdev);
	dmio_write_log_detach(bdev); /* twice: nothing */
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, b, 1, where), ==, 0);
	g_assert_cmpint(dmio_write_log_attach(r.log, bdev, 5), ==, 0);
	g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, c, 1, where), ==, 0);
	g_assert_cmpint(dmio_write_log_close(r.log), ==, -EBUSY);
	g_assert_cmpint(rig_close(&r), ==, 0); /* the device's close detached it */

	log_view_read(&v, r.log_path);
	g_assert_cmpuint(v.entries->len, ==, 2);
	assert_entry(entry_at(&v, 0), 0, KIND_WRITE, 0, 0, 4096, a);
	assert_entry(entry_at(&v, 1), 5, KIND_WRITE, 0, 0, 4096, c);
	log_view_free(&v);
	rig_free(&r);
	free(a);
	free(b);
	free(c);
}

/* A log that cannot be written is not created; bad arguments are refused. */
static void test_create_fails(const char *dir)
{
	char *missing = g_build_filename(dir, "no-such-folder", "writes.log", NULL);

	errno = 0;
	g_assert_null(dmio_write_log_create(missing));
	g_assert_cmpint(errno, ==, ENOENT);
	if (g_file_test("/dev/full", G_FILE_TEST_EXISTS)) {
		errno = 0;
		g_assert_null(dmio_write_log_create("/dev/full"));
		g_assert_cmpint(errno, ==, ENOSPC);
	}
	errno = 0;
	g_assert_null(dmio_write_log_create(NULL));
	g_assert_cmpint(errno, ==, EINVAL);
	g_assert_cmpint(dmio_write_log_attach(NULL, NULL, 0), ==, -EINVAL);
	g_assert_cmpint(dmio_write_log_close(NULL), ==, -EINVAL);
	dmio_write_log_detach(NULL);
	g_free(missing);
}

static void count_errors(int level, const char *message, void *context)
{
	(void)message;
	if (level <= DMIO_LOG_ERR)
		(*(unsigned int *)context)++;
}

#define LIMIT_BYTES (256u << 10)
#define BIG 65536u

/* The log's file may not grow past 256 KiB (RLIMIT_FSIZE; the case runs
 * in a process of its own): the fourth 64 KiB write does not fit.  The
 * writes themselves go on succeeding, the log keeps the three whole
 * entries, says so once, and its close reports the error. */
static void test_write_error_reported(const char *dir)
{
	struct rlimit limit = { .rlim_cur = LIMIT_BYTES, .rlim_max = RLIM_INFINITY };
	char *buf = pattern(BIG, 8);
	unsigned int errors = 0;
	struct io_region where[1];
	struct log_view v;
	struct rig r;

	rig_open(&r, dir, 1);
	g_assert_cmpint(dmio_write_log_attach(r.log, r.d.bdev[0], 0), ==, 0);
	dmio_set_log_fn(count_errors, &errors);
	signal(SIGXFSZ, SIG_IGN); /* an error from write(2), not a signal */
	g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &limit), ==, 0);
	where[0] = region(r.d.bdev[0], 0, BIG >> DMIO_SECTOR_SHIFT); /* below the limit in the image */
	for (int i = 0; i < 6; i++)
		g_assert_cmpint(io_sync(&r, DMIO_WRITE, 0, buf, 1, where), ==, 0);
	g_assert_cmpint(rig_close(&r), ==, -EFBIG);
	g_assert_cmpuint(errors, ==, 1);
	dmio_set_log_fn(NULL, NULL);

	log_view_read(&v, r.log_path);
	g_assert_cmpuint(v.entries->len, ==, 3);
	g_assert_cmpuint(v.size, ==, HEAD + 3 * (HEAD + BIG));
	log_view_free(&v);
	rig_free(&r);
	free(buf);
}

/* The checksum is dmiofs's (FORMAT.md section 3): no final inversion. */
static void test_crc_convention(void)
{
	unsigned char zeroes[4096] = { 0 };

	g_assert_cmphex(writelog_crc32c(0xFFFFFFFFu, "123456789", 9), ==, 0x1CF96D7Cu);
	g_assert_cmphex(writelog_crc32c(0xFFFFFFFFu, zeroes, sizeof(zeroes)), ==, 0x6706BE76u);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
#define CASE(path, fn) tu_add_guarded("/writelog/" path, fn, 60)
	g_test_add_func("/writelog/crc-convention", test_crc_convention);
	CASE("kinds-in-order", test_kinds_in_order);
	CASE("async-replays-to-devices", test_async_replays_to_devices);
	CASE("faults-not-recorded", test_faults_not_recorded);
	CASE("detach-and-reattach", test_detach_and_reattach);
	CASE("create-fails", test_create_fails);
	CASE("write-error-reported", test_write_error_reported);
	return g_test_run();
}
