/* test-seed.c - the seed document's six calls and dm_io_get/put, on image
 * files: what every region receives, what the error bits say, and what bad
 * input is refused before any I/O. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

#define IMG_BYTES (8u << 20)
#define NDEV 3

struct fixture {
	char *dir;
	char *path[NDEV];
	struct block_device *bdev[NDEV];
};

static void setup(struct fixture *f, gconstpointer data)
{
	(void)data;
	f->dir = tu_tmpdir_new();
	for (int i = 0; i < NDEV; i++) {
		char name[16];

		g_snprintf(name, sizeof(name), "d%d.img", i);
		f->path[i] = tu_image_new(f->dir, name, IMG_BYTES, 0x5A);
		f->bdev[i] = dmio_bdev_open(f->path[i], O_RDWR);
		g_assert_nonnull(f->bdev[i]);
	}
	g_assert_cmpint(dm_io_get(256), ==, 0);
}

static void teardown(struct fixture *f, gconstpointer data)
{
	(void)data;
	dm_io_put(256);
	for (int i = 0; i < NDEV; i++) {
		dmio_bdev_close(f->bdev[i]);
		g_free(f->path[i]);
	}
	tu_tmpdir_free(f->dir);
}

/* A write to every region puts the same bytes, from the start of the same
 * memory, into each, even when the regions differ in place and length. */
static void test_vm_write_fans_out(struct fixture *f, gconstpointer data)
{
	size_t len = 256 * 1024;
	char *buf = tu_aligned(len);
	struct io_region where[NDEV] = {
		{ f->bdev[0], 0, len >> 9 },
		{ f->bdev[1], 2048, len >> 9 },
		{ f->bdev[2], 8, 16 }, /* a shorter region takes the head of the memory */
	};
	unsigned long bits = ~0UL;

	(void)data;
	tu_pattern(buf, len, 1);
	g_assert_cmpint(dm_io_sync_vm(NDEV, where, DMIO_WRITE, buf, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	tu_assert_image_holds(f->path[0], 0, buf, len);
	tu_assert_image_holds(f->path[1], 2048 * 512, buf, len);
	tu_assert_image_holds(f->path[2], 8 * 512, buf, 16 * 512);
	free(buf);
}

static void test_vm_read_back(struct fixture *f, gconstpointer data)
{
	size_t len = 3 * 1024 * 1024 + 4096; /* more than one piece */
	char *buf = tu_aligned(len), *back = tu_aligned(len);
	struct io_region where = { f->bdev[1], 24, len >> 9 };

	(void)data;
	tu_pattern(buf, len, 2);
	tu_raw_write(f->path[1], 24 * 512, buf, len);
	memset(back, 0, len);
	g_assert_cmpint(dm_io_sync_vm(1, &where, DMIO_READ, back, NULL), ==, 0);
	g_assert_cmpmem(back, len, buf, len);
	free(buf);
	free(back);
}

/* Page lists: data starts `offset` bytes into the first page, then whole
 * pages follow. */
static void test_page_list_offset(struct fixture *f, gconstpointer data)
{
	size_t len = 5 * 4096;
	unsigned int offset = 1536;
	struct page_list *pl = tu_page_list_new(7);
	char *want = g_malloc(len), *got = g_malloc(len);
	struct io_region where[2] = { { f->bdev[0], 64, len >> 9 }, { f->bdev[2], 0, len >> 9 } };
	struct page_list *p;
	size_t done = 0;

	(void)data;
	tu_pattern(want, len, 3);
	/* scatter the pattern into the pages as the page-list path reads them */
	for (p = pl; done < len; p = p->next) {
		size_t start = p == pl ? offset : 0, n = MIN(4096 - start, len - done);

		memcpy((char *)dmio_page_address(p->page) + start, want + done, n);
		done += n;
	}
	g_assert_cmpint(dm_io_sync(2, where, DMIO_WRITE, pl, offset, NULL), ==, 0);
	tu_assert_image_holds(f->path[0], 64 * 512, want, len);
	tu_assert_image_holds(f->path[2], 0, want, len);

	/* and a read lands at the same offsets */
	for (p = pl; p; p = p->next)
		memset(dmio_page_address(p->page), 0, 4096);
	g_assert_cmpint(dm_io_sync(1, &where[0], DMIO_READ, pl, offset, NULL), ==, 0);
	done = 0;
	for (p = pl; done < len; p = p->next) {
		size_t start = p == pl ? offset : 0, n = MIN(4096 - start, len - done);

		memcpy(got + done, (char *)dmio_page_address(p->page) + start, n);
		done += n;
	}
	g_assert_cmpmem(got, len, want, len);
	/* the bytes before the offset were not touched */
	for (unsigned int i = 0; i < offset; i++)
		g_assert_cmpint(((char *)dmio_page_address(pl->page))[i], ==, 0);
	tu_page_list_free(pl);
	g_free(want);
	g_free(got);
}

/* bvec entries honour their own length and offset, aligned or not. */
static void test_bvec_lengths_and_offsets(struct fixture *f, gconstpointer data)
{
	struct page_list *pl = tu_page_list_new(4);
	struct bio_vec bv[4] = {
		{ pl->page, 512, 1024 },                  /* aligned, partial page */
		{ pl->next->page, 1000, 7 },              /* misaligned: bounced */
		{ pl->next->next->page, 2584, 100 },      /* misaligned length */
		{ pl->next->next->next->page, 4096, 0 },  /* a whole page */
	};
	size_t total = 512 + 1000 + 2584 + 4096; /* 8192: 16 sectors */
	char *want = g_malloc0(total), *got = g_malloc(total);
	struct io_region where = { f->bdev[0], 40, total >> 9 };
	size_t done = 0;

	(void)data;
	tu_pattern(want, total, 4);
	for (int i = 0; i < 4; i++) {
		memcpy((char *)dmio_page_address(bv[i].bv_page) + bv[i].bv_offset, want + done, bv[i].bv_len);
		done += bv[i].bv_len;
	}
	g_assert_cmpuint(done, ==, total);
	g_assert_cmpint(dm_io_sync_bvec(1, &where, DMIO_WRITE, bv, NULL), ==, 0);
	tu_assert_image_holds(f->path[0], 40 * 512, want, total);

	for (int i = 0; i < 4; i++)
		memset(dmio_page_address(bv[i].bv_page), 0, 4096);
	g_assert_cmpint(dm_io_sync_bvec(1, &where, DMIO_READ, bv, NULL), ==, 0);
	done = 0;
	for (int i = 0; i < 4; i++) {
		memcpy(got + done, (char *)dmio_page_address(bv[i].bv_page) + bv[i].bv_offset, bv[i].bv_len);
		done += bv[i].bv_len;
	}
	g_assert_cmpmem(got, total, want, total);
	tu_page_list_free(pl);
	g_free(want);
	g_free(got);
}

/* Memory of any alignment works: it goes through bounce pages. */
static void test_misaligned_vm(struct fixture *f, gconstpointer data)
{
	size_t len = 1 << 20;
	char *raw = g_malloc(len + 64), *buf = raw + 3, *back = g_malloc(len + 64) + 1;
	struct io_region where[2] = { { f->bdev[0], 0, len >> 9 }, { f->bdev[1], 8, len >> 9 } };

	(void)data;
	tu_pattern(buf, len, 5);
	g_assert_cmpint(dm_io_sync_vm(2, where, DMIO_WRITE, buf, NULL), ==, 0);
	tu_assert_image_holds(f->path[0], 0, buf, len);
	tu_assert_image_holds(f->path[1], 8 * 512, buf, len);
	g_assert_cmpint(dm_io_sync_vm(1, &where[1], DMIO_READ, back, NULL), ==, 0);
	g_assert_cmpmem(back, len, buf, len);
	g_free(raw);
	g_free(back - 1);
}

/* Bit i is set exactly for the region that failed: here, one beyond the end
 * of its device.  The others are written; the sync call says -EIO. */
static void test_error_bit_beyond_end(struct fixture *f, gconstpointer data)
{
	size_t len = 8192;
	char *buf = tu_aligned(len), *before = g_malloc(len);
	sector_t end = IMG_BYTES >> 9;
	struct io_region where[3] = {
		{ f->bdev[0], 0, len >> 9 },
		{ f->bdev[1], end - 8, len >> 9 }, /* straddles the end */
		{ f->bdev[2], 0, len >> 9 },
	};
	unsigned long bits = 0;
	struct stat st;

	(void)data;
	tu_pattern(buf, len, 6);
	tu_raw_read(f->path[1], (end - 8) * 512, before, 4096);
	g_assert_cmpint(dm_io_sync_vm(3, where, DMIO_WRITE, buf, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1UL << 1);
	tu_assert_image_holds(f->path[0], 0, buf, len);
	tu_assert_image_holds(f->path[2], 0, buf, len);
	/* the failing region touched nothing, and the image did not grow */
	tu_assert_image_holds(f->path[1], (end - 8) * 512, before, 4096);
	g_assert_cmpint(stat(f->path[1], &st), ==, 0);
	g_assert_cmpuint(st.st_size, ==, IMG_BYTES);
	free(buf);
	g_free(before);
}

/* A read that fails hands back zeroes, never what the memory held. */
static void test_failed_read_is_zeroed(struct fixture *f, gconstpointer data)
{
	size_t len = 4096;
	char *buf = tu_aligned(len);
	struct io_region where = { f->bdev[0], (IMG_BYTES >> 9) - 4, len >> 9 };
	unsigned long bits = 0;

	(void)data;
	memset(buf, 0xAB, len);
	g_assert_cmpint(dm_io_sync_vm(1, &where, DMIO_READ, buf, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1);
	for (size_t i = 0; i < len; i++)
		g_assert_cmpint(buf[i], ==, 0);
	free(buf);
}

/* A read names exactly one region: more is refused without I/O. */
static void test_read_many_regions_refused(struct fixture *f, gconstpointer data)
{
	char *buf = tu_aligned(4096);
	struct io_region where[2] = { { f->bdev[0], 0, 8 }, { f->bdev[1], 0, 8 } };
	struct tu_waiter w;
	struct dmio_bdev_stats before, after;
	unsigned long bits = 0;

	(void)data;
	tu_waiter_init(&w);
	dmio_bdev_get_stats(f->bdev[0], &before);
	g_assert_cmpint(dm_io_sync_vm(2, where, DMIO_READ, buf, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 3);
	g_assert_cmpint(dm_io_async_vm(2, where, DMIO_READ, buf, tu_waiter_notify, &w), ==, -EIO);
	g_usleep(20000);
	g_assert_cmpuint(w.calls, ==, 0); /* no callback for a refused request */
	dmio_bdev_get_stats(f->bdev[0], &after);
	g_assert_cmpuint(after.reads, ==, before.reads);
	tu_waiter_clear(&w);
	free(buf);
}

/* A region with count 0 does no I/O and sets no bit. */
static void test_zero_count_region(struct fixture *f, gconstpointer data)
{
	char *buf = tu_aligned(4096);
	struct io_region where[3] = { { f->bdev[0], 0, 8 }, { f->bdev[1], 0, 0 }, { f->bdev[2], 0, 8 } };
	struct dmio_bdev_stats before, after;
	unsigned long bits = ~0UL;
	char *img = g_malloc(4096), *orig = g_malloc(4096);

	(void)data;
	memset(orig, 0x5A, 4096);
	tu_pattern(buf, 4096, 7);
	dmio_bdev_get_stats(f->bdev[1], &before);
	g_assert_cmpint(dm_io_sync_vm(3, where, DMIO_WRITE, buf, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	dmio_bdev_get_stats(f->bdev[1], &after);
	g_assert_cmpuint(after.writes, ==, before.writes);
	g_assert_cmpuint(after.flushes, ==, before.flushes);
	tu_raw_read(f->path[1], 0, img, 4096);
	g_assert_cmpmem(img, 4096, orig, 4096);
	free(buf);
	g_free(img);
	g_free(orig);
}

/* Every region empty: the async callback still runs, exactly once, bits 0. */
static void test_all_empty_async(struct fixture *f, gconstpointer data)
{
	struct io_region where[2] = { { f->bdev[0], 0, 0 }, { f->bdev[1], 100, 0 } };
	struct tu_waiter w;
	char page[512];

	(void)data;
	tu_waiter_init(&w);
	g_assert_cmpint(dm_io_async_vm(2, where, DMIO_WRITE, page, tu_waiter_notify, &w), ==, 0);
	tu_waiter_wait(&w, 1);
	g_usleep(20000);
	g_assert_cmpuint(w.calls, ==, 1);
	g_assert_cmpuint(w.bits, ==, 0);
	tu_waiter_clear(&w);
}

/* Async write then async read through the page-list path. */
static void test_async_page_list(struct fixture *f, gconstpointer data)
{
	struct page_list *pl = tu_page_list_new(16), *p;
	struct io_region where[NDEV];
	struct tu_waiter w;
	char *want = g_malloc(16 * 4096);
	int i = 0;

	(void)data;
	tu_waiter_init(&w);
	tu_pattern(want, 16 * 4096, 8);
	for (p = pl; p; p = p->next, i++)
		memcpy(dmio_page_address(p->page), want + i * 4096, 4096);
	for (i = 0; i < NDEV; i++)
		where[i] = (struct io_region){ f->bdev[i], 512 * (sector_t)i, 128 };
	g_assert_cmpint(dm_io_async(NDEV, where, DMIO_WRITE, pl, 0, tu_waiter_notify, &w), ==, 0);
	tu_waiter_wait(&w, 1);
	g_assert_cmpuint(w.bits, ==, 0);
	for (i = 0; i < NDEV; i++)
		tu_assert_image_holds(f->path[i], 512 * 512 * (uint64_t)i, want, 16 * 4096);
	for (p = pl; p; p = p->next)
		memset(dmio_page_address(p->page), 0, 4096);
	g_assert_cmpint(dm_io_async(1, &where[2], DMIO_READ, pl, 0, tu_waiter_notify, &w), ==, 0);
	tu_waiter_wait(&w, 2);
	g_assert_cmpuint(w.bits, ==, 0);
	i = 0;
	for (p = pl; p; p = p->next, i++)
		g_assert_cmpmem(dmio_page_address(p->page), 4096, want + i * 4096, 4096);
	tu_page_list_free(pl);
	g_free(want);
	tu_waiter_clear(&w);
}

/* Bad input gets -EINVAL before any I/O and touches nothing. */
static void test_bad_input(struct fixture *f, gconstpointer data)
{
	char *buf = tu_aligned(8192);
	struct io_region ok = { f->bdev[0], 0, 8 };
	struct io_region many[DM_IO_MAX_REGIONS + 1];
	struct io_region nulldev = { NULL, 0, 8 };
	struct io_region overflow = { f->bdev[0], UINT64_MAX - 4, 8 };
	struct io_region huge = { f->bdev[0], 0, UINT64_MAX / 256 };
	struct dmio_bdev_stats before, after;
	struct tu_waiter w;
	char *img = g_malloc(4096), *orig = g_malloc(4096);

	(void)data;
	tu_waiter_init(&w);
	tu_pattern(buf, 8192, 9);
	tu_raw_read(f->path[0], 0, orig, 4096);
	for (unsigned int i = 0; i <= DM_IO_MAX_REGIONS; i++)
		many[i] = ok;
	dmio_bdev_get_stats(f->bdev[0], &before);
	g_assert_cmpint(dm_io_sync_vm(0, &ok, DMIO_WRITE, buf, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_vm(DM_IO_MAX_REGIONS + 1, many, DMIO_WRITE, buf, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_vm(1, &ok, 7, buf, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_vm(1, &ok, -1, buf, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_vm(1, &ok, DMIO_WRITE, NULL, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync(1, &ok, DMIO_WRITE, NULL, 0, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_bvec(1, &ok, DMIO_WRITE, NULL, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_vm(1, &nulldev, DMIO_WRITE, buf, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_vm(1, &overflow, DMIO_WRITE, buf, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_vm(1, &huge, DMIO_WRITE, buf, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_sync_vm(1, NULL, DMIO_WRITE, buf, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_async_vm(1, &ok, DMIO_WRITE, buf, NULL, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io_async_vm(0, &ok, DMIO_WRITE, buf, tu_waiter_notify, &w), ==, -EINVAL);
	g_assert_cmpint(dm_io_async_vm(1, &nulldev, DMIO_WRITE, buf, tu_waiter_notify, &w), ==, -EINVAL);
	g_usleep(20000);
	g_assert_cmpuint(w.calls, ==, 0);
	dmio_bdev_get_stats(f->bdev[0], &after);
	g_assert_cmpuint(after.writes, ==, before.writes);
	g_assert_cmpuint(after.reads, ==, before.reads);
	tu_raw_read(f->path[0], 0, img, 4096);
	g_assert_cmpmem(img, 4096, orig, 4096);
	tu_waiter_clear(&w);
	free(buf);
	g_free(img);
	g_free(orig);
}

/* Up to 64 regions in one request; bit 63 works like bit 0. */
static void test_sixty_four_regions(struct fixture *f, gconstpointer data)
{
	struct io_region where[DM_IO_MAX_REGIONS];
	char *buf = tu_aligned(4096), *got = g_malloc(4096);
	unsigned long bits = 0;

	(void)data;
	g_assert_cmpuint(DM_IO_MAX_REGIONS, ==, 64);
	tu_pattern(buf, 4096, 10);
	for (unsigned int i = 0; i < DM_IO_MAX_REGIONS; i++)
		where[i] = (struct io_region){ f->bdev[i % NDEV], 8 * (sector_t)i, 8 };
	where[63].sector = IMG_BYTES >> 9; /* the last one lies beyond the end */
	g_assert_cmpint(dm_io_sync_vm(DM_IO_MAX_REGIONS, where, DMIO_WRITE, buf, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1UL << 63);
	for (unsigned int i = 0; i < 63; i++) {
		tu_raw_read(f->path[i % NDEV], 8 * 512 * (uint64_t)i, got, 4096);
		g_assert_cmpmem(got, 4096, buf, 4096);
	}
	free(buf);
	g_free(got);
}

static void test_get_put(void)
{
	g_assert_cmpint(dm_io_get(1024), ==, 0);
	g_assert_cmpint(dm_io_get(16), ==, 0);
	dm_io_put(16);
	dm_io_put(1024);
	/* the default client keeps working at its floor */
	g_assert_cmpint(dm_io_get(0), ==, 0);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/seed/" name, struct fixture, NULL, setup, fn, teardown)
	ADD("vm-write-fans-out", test_vm_write_fans_out);
	ADD("vm-read-back", test_vm_read_back);
	ADD("page-list-offset", test_page_list_offset);
	ADD("bvec-lengths-and-offsets", test_bvec_lengths_and_offsets);
	ADD("misaligned-vm", test_misaligned_vm);
	ADD("error-bit-beyond-end", test_error_bit_beyond_end);
	ADD("failed-read-is-zeroed", test_failed_read_is_zeroed);
	ADD("read-many-regions-refused", test_read_many_regions_refused);
	ADD("zero-count-region", test_zero_count_region);
	ADD("all-empty-async", test_all_empty_async);
	ADD("async-page-list", test_async_page_list);
	ADD("bad-input", test_bad_input);
	ADD("sixty-four-regions", test_sixty_four_regions);
	g_test_add_func("/seed/get-put", test_get_put);
	return g_test_run();
}
