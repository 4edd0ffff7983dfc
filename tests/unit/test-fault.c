/* test-fault.c - fault injection at the device layer (dmio_fault_add,
 * _remove, _clear, _hits, _parse) on image files: which I/O a rule catches,
 * what each action does to the error bits, the memory, the image and the
 * device's counters, the counting knobs (skip, every, limit, probability),
 * validation of rules and of their text form, and rules changed while I/O
 * is in flight. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define IMG_BYTES (4u << 20)
#define NDEV 3
#define FILL 0x5A

struct fixture {
	char *dir;
	struct tu_devices d;
	struct dm_io_client *client;
};

static void setup(struct fixture *f, gconstpointer data)
{
	(void)data;
	f->dir = tu_tmpdir_new();
	tu_devices_open(&f->d, f->dir, "d", NDEV, IMG_BYTES, FILL);
	f->client = dm_io_client_create(64);
	g_assert_nonnull(f->client);
}

static void teardown(struct fixture *f, gconstpointer data)
{
	(void)data;
	dm_io_client_destroy(f->client);
	tu_devices_close(&f->d);
	tu_tmpdir_free(f->dir);
}

/* ---- helpers ------------------------------------------------------------- */

static int io_sync(struct dm_io_client *client, int op, unsigned int flags, void *buf, unsigned int n,
		   struct io_region *where, unsigned long *bits)
{
	return tu_io_sync(client, op, flags, tu_kmem(buf), n, where, bits);
}

static int io_async(struct dm_io_client *client, int op, unsigned int flags, void *buf, unsigned int n,
		    struct io_region *where, io_notify_fn fn, void *context)
{
	return tu_io_async(client, op, flags, tu_kmem(buf), n, where, fn, context);
}

static struct dmio_bdev_stats stats_of(struct block_device *bdev)
{
	struct dmio_bdev_stats s;

	dmio_bdev_get_stats(bdev, &s);
	return s;
}

static int add(struct block_device *bdev, const struct dmio_fault *rule)
{
	int id = dmio_fault_add(bdev, rule);

	g_assert_cmpint(id, >, 0);
	return id;
}

static void sleep_until(gint64 when)
{
	gint64 now = g_get_monotonic_time();

	if (when > now)
		g_usleep((gulong)(when - now));
}

static unsigned int waiter_calls(struct tu_waiter *w)
{
	unsigned int calls;

	g_mutex_lock(&w->lock);
	calls = w->calls;
	g_mutex_unlock(&w->lock);
	return calls;
}

/* ---- 1. EIO on reads in a range -------------------------------------------- */

static void test_eio_read_range(struct fixture *f, gconstpointer data)
{
	static const struct {
		sector_t sector, count;
		bool fails;
	} reads[] = {
		{ 56, 16, true },  /* overlaps the start */
		{ 72, 8, false },  /* starts right after the range */
		{ 48, 16, false }, /* ends right at the range */
		{ 71, 1, true },   /* the last sector */
		{ 64, 8, true },   /* exactly the range */
		{ 0, 256, true },  /* covers it */
		{ 60, 4, false },
		{ 63, 2, true },
	};
	size_t span = 256 * 512;
	char *pat = g_malloc(span), *buf = tu_aligned(span), *odd = g_malloc(span + 2) + 1;
	struct dmio_fault rule = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_EIO, .sector = 64, .count = 8 };
	struct dmio_bdev_stats before;
	uint64_t fails = 0, passes = 0, pass_bytes = 0;
	int id;

	(void)data;
	tu_pattern(pat, span, 1);
	tu_raw_write(f->d.path[0], 0, pat, span);
	tu_raw_write(f->d.path[1], 0, pat, span);
	id = add(f->d.bdev[0], &rule);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 0);
	before = stats_of(f->d.bdev[0]);
	for (size_t i = 0; i < G_N_ELEMENTS(reads); i++) {
		for (int b = 0; b < 2; b++) { /* direct, then bounced memory */
			char *mem = b ? odd : buf;
			size_t len = reads[i].count << 9;
			struct io_region where = { f->d.bdev[0], reads[i].sector, reads[i].count };
			unsigned long bits = ~0UL;

			memset(mem, 0xAB, span);
			if (reads[i].fails) {
				g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, mem, 1, &where, &bits), ==, -EIO);
				g_assert_cmpuint(bits, ==, 1);
				tu_assert_bytes(mem, 0, len);
				fails++;
			} else {
				g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, mem, 1, &where, &bits), ==, 0);
				g_assert_cmpuint(bits, ==, 0);
				g_assert_cmpmem(mem, len, pat + reads[i].sector * 512, len);
				passes++;
				pass_bytes += len;
			}
			tu_assert_bytes(mem + len, 0xAB, span - len); /* nothing beyond the region */
		}
	}
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before).errors, ==, fails);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before).reads, ==, passes); /* failed pieces never reached it */
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before).read_bytes, ==, pass_bytes);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, (int64_t)fails);

	/* writes to the range pass; the other device is unaffected */
	{
		struct io_region w = { f->d.bdev[0], 64, 8 }, other = { f->d.bdev[1], 64, 8 };

		tu_pattern(buf, 4096, 2);
		g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &w, NULL), ==, 0);
		tu_assert_image_holds(f->d.path[0], 64 * 512, buf, 4096);
		g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &other, NULL), ==, 0);
		g_assert_cmpmem(buf, 4096, pat + 64 * 512, 4096);
		g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, (int64_t)fails);
		g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before).errors, ==, fails);
	}
	free(buf);
	g_free(odd - 1);
	g_free(pat);
}

/* Discards and write-zeroes count as writes. */
static void test_eio_discard(struct fixture *f, gconstpointer data)
{
	struct dmio_fault rule = { .ops = DMIO_FAULT_WRITE, .action = DMIO_FAULT_EIO, .sector = 100, .count = 1 };
	struct io_region where[2] = { { f->d.bdev[0], 96, 8 }, { f->d.bdev[1], 96, 8 } };
	struct dmio_bdev_stats before = stats_of(f->d.bdev[0]);
	unsigned long bits = 0;
	char zero[4096] = { 0 };
	int id;

	(void)data;
	id = add(f->d.bdev[0], &rule);
	for (int op = DMIO_DISCARD; op <= DMIO_WRITE_ZEROES; op++) {
		bits = 0;
		g_assert_cmpint(io_sync(f->client, op, 0, NULL, 2, where, &bits), ==, -EIO);
		g_assert_cmpuint(bits, ==, 1);
	}
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 2);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before).discards, ==, 0);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before).errors, ==, 2);
	tu_assert_image_filled(f->d.path[0], 96 * 512, FILL, 4096);
	tu_assert_image_holds(f->d.path[1], 96 * 512, zero, 4096);
}

/* ---- 2. counting: every, skip, limit, probability ---------------------------- */

/* n single-piece writes into the rule's range, each followed by a write
 * outside it and a read inside it (neither may count as a match); `fail` is
 * the mask of the in-range writes that must fail. */
static void run_counted(struct fixture *f, const struct dmio_fault *spec, unsigned int n, uint32_t fail)
{
	struct block_device *b = f->d.bdev[0];
	char *buf = tu_aligned(2048), *back = tu_aligned(2048);
	struct dmio_bdev_stats before = stats_of(b);
	unsigned int nfail = 0;
	int id = add(b, spec);

	for (unsigned int i = 0; i < n; i++) {
		struct io_region in = { b, (sector_t)i * 4, 4 }, out = { b, 4096 + (sector_t)i * 4, 4 };
		bool want_fail = fail & (1u << i);
		unsigned long bits = ~0UL;

		tu_pattern(buf, 2048, 100 + i);
		g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &in, &bits), ==, want_fail ? -EIO : 0);
		g_assert_cmpuint(bits, ==, want_fail ? 1 : 0);
		if (want_fail)
			tu_assert_image_filled(f->d.path[0], (uint64_t)i * 2048, FILL, 2048);
		else
			tu_assert_image_holds(f->d.path[0], (uint64_t)i * 2048, buf, 2048);
		nfail += want_fail;
		g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &out, &bits), ==, 0);
		g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, back, 1, &in, &bits), ==, 0);
		g_assert_cmpint(dmio_fault_hits(b, id), ==, nfail);
	}
	g_assert_cmpuint(tu_stats_since(b, &before).errors, ==, nfail);
	g_assert_cmpuint(tu_stats_since(b, &before).writes, ==, 2 * n - nfail);
	g_assert_cmpuint(tu_stats_since(b, &before).reads, ==, n);
	g_assert_cmpint(dmio_fault_remove(b, id), ==, 0);
	free(buf);
	free(back);
}

static const struct dmio_fault in_range_eio = {
	.ops = DMIO_FAULT_WRITE, .action = DMIO_FAULT_EIO, .sector = 0, .count = 64,
};

static void test_every(struct fixture *f, gconstpointer data)
{
	struct dmio_fault r = in_range_eio;

	(void)data;
	r.every = 3; /* the 3rd, 6th and 9th */
	run_counted(f, &r, 9, (1u << 2) | (1u << 5) | (1u << 8));
}

static void test_skip(struct fixture *f, gconstpointer data)
{
	struct dmio_fault r = in_range_eio;

	(void)data;
	r.skip = 2; /* the first two pass, then every one fails */
	run_counted(f, &r, 5, (1u << 2) | (1u << 3) | (1u << 4));
}

static void test_limit(struct fixture *f, gconstpointer data)
{
	struct dmio_fault r = in_range_eio;

	(void)data;
	r.limit = 1; /* acts once */
	run_counted(f, &r, 5, 1u << 0);
}

static void test_skip_every_limit(struct fixture *f, gconstpointer data)
{
	struct dmio_fault r = in_range_eio;

	(void)data;
	/* skip the 1st, then every 2nd of the rest (3rd, 5th, 7th, ...), twice */
	r.skip = 1;
	r.every = 2;
	r.limit = 2;
	run_counted(f, &r, 8, (1u << 2) | (1u << 4));
}

#define NPROB 200

static unsigned int prob_pattern(struct fixture *f, struct block_device *b, uint64_t seed, bool *failed, int n)
{
	struct dmio_fault r = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_EIO, .probability = 0.5, .seed = seed };
	struct io_region where = { b, 8, 8 };
	char *buf = tu_aligned(4096);
	unsigned int count = 0;
	int id = add(b, &r);

	for (int i = 0; i < n; i++) {
		unsigned long bits = 0;
		int ret = io_sync(f->client, DMIO_READ, 0, buf, 1, &where, &bits);

		failed[i] = ret == -EIO;
		g_assert_cmpuint(bits, ==, failed[i] ? 1 : 0);
		if (!failed[i])
			g_assert_cmpint(ret, ==, 0);
		count += failed[i];
	}
	g_assert_cmpint(dmio_fault_hits(b, id), ==, count);
	g_assert_cmpint(dmio_fault_remove(b, id), ==, 0);
	free(buf);
	return count;
}

static void test_probability(struct fixture *f, gconstpointer data)
{
	bool a[NPROB], b[NPROB], c[NPROB];
	unsigned int na, nb, nc;

	(void)data;
	na = prob_pattern(f, f->d.bdev[0], 42, a, NPROB);
	g_assert_cmpuint(na, >=, 60);
	g_assert_cmpuint(na, <=, 140);
	nb = prob_pattern(f, f->d.bdev[1], 42, b, NPROB); /* same seed, another device */
	g_assert_cmpuint(nb, ==, na);
	g_assert_cmpmem(b, sizeof(b), a, sizeof(a));
	nc = prob_pattern(f, f->d.bdev[2], 43, c, NPROB); /* another seed */
	g_assert_cmpuint(nc, >=, 60);
	g_assert_cmpuint(nc, <=, 140);
	g_assert_true(memcmp(a, c, sizeof(a)) != 0);
	/* seed 0: a fixed default, so also repeatable */
	prob_pattern(f, f->d.bdev[2], 0, a, 50);
	prob_pattern(f, f->d.bdev[2], 0, b, 50);
	g_assert_cmpmem(b, 50 * sizeof(bool), a, 50 * sizeof(bool));
}

/* ---- 3. DROP ------------------------------------------------------------------ */

static void test_drop(struct fixture *f, gconstpointer data)
{
	size_t len = 8192;
	char *buf = tu_aligned(len), *back = tu_aligned(len);
	struct dmio_fault rule = { .ops = DMIO_FAULT_WRITE, .action = DMIO_FAULT_DROP };
	struct io_region where[2] = { { f->d.bdev[0], 8, len >> 9 }, { f->d.bdev[1], 8, len >> 9 } };
	struct dmio_bdev_stats b0 = stats_of(f->d.bdev[0]), b1 = stats_of(f->d.bdev[1]);
	unsigned long bits = ~0UL;
	struct tu_waiter w;
	int id;

	(void)data;
	tu_waiter_init(&w);
	id = add(f->d.bdev[1], &rule);
	tu_pattern(buf, len, 3);
	g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 2, where, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	tu_assert_image_holds(f->d.path[0], 8 * 512, buf, len);
	tu_assert_image_filled(f->d.path[1], 8 * 512, FILL, len);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[1], id), ==, 1);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &b0).writes, ==, 1);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &b1).writes, ==, 0);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &b1).write_bytes, ==, 0);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &b1).errors, ==, 0);

	/* async, and through bounce pages */
	{
		char *odd = g_malloc(len + 4) + 3;

		tu_pattern(odd, len, 4);
		g_assert_cmpint(io_async(f->client, DMIO_WRITE, DMIO_REQ_FUA, odd, 2, where, tu_waiter_notify, &w), ==,
				0);
		tu_waiter_wait(&w, 1);
		g_assert_cmpuint(w.bits, ==, 0);
		tu_assert_image_holds(f->d.path[0], 8 * 512, odd, len);
		tu_assert_image_filled(f->d.path[1], 8 * 512, FILL, len);
		g_free(odd - 3);
	}

	/* write-zeroes dropped too; reads are not affected */
	bits = ~0UL;
	g_assert_cmpint(io_sync(f->client, DMIO_WRITE_ZEROES, 0, NULL, 1, &where[1], &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	tu_assert_image_filled(f->d.path[1], 8 * 512, FILL, len);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &b1).discards, ==, 0);
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, back, 1, &where[1], &bits), ==, 0);
	tu_assert_bytes(back, FILL, len);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[1], id), ==, 3);

	/* a dropped flush: success, nothing reaches the device */
	{
		struct dmio_fault fl = { .ops = DMIO_FAULT_FLUSH, .action = DMIO_FAULT_DROP };
		int fid = add(f->d.bdev[2], &fl);
		struct dmio_bdev_stats b2 = stats_of(f->d.bdev[2]);
		struct io_region all[NDEV] = { { f->d.bdev[0], 0, 0 }, { f->d.bdev[1], 0, 0 }, { f->d.bdev[2], 0, 0 } };

		bits = ~0UL;
		g_assert_cmpint(io_sync(f->client, DMIO_FLUSH, 0, NULL, NDEV, all, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
		g_assert_cmpuint(tu_stats_since(f->d.bdev[2], &b2).flushes, ==, 0);
		g_assert_cmpuint(tu_stats_since(f->d.bdev[2], &b2).errors, ==, 0);
		g_assert_cmpint(dmio_fault_hits(f->d.bdev[2], fid), ==, 1);
	}
	tu_waiter_clear(&w);
	free(buf);
	free(back);
}

/* ---- 4. CORRUPT ------------------------------------------------------------- */

/* buf holds sectors [first, first + n) of pat, except that the first byte
 * of each sector with corrupt[s - first] set is XORed with 0x01.  Compared
 * as one map per sector ('C' corrupted that way, '.' intact, '?' anything
 * else) so a failure shows which sectors are wrong. */
static void assert_corrupted(const char *buf, const char *pat, sector_t first, unsigned int n, const bool *corrupt)
{
	char *want_map = g_malloc0(n + 1), *got_map = g_malloc0(n + 1);

	for (unsigned int s = 0; s < n; s++) {
		const char *got = buf + (size_t)s * 512, *want = pat + (first + s) * 512;
		bool rest_same = memcmp(got + 1, want + 1, 511) == 0;

		want_map[s] = corrupt[s] ? 'C' : '.';
		if (rest_same && got[0] == want[0])
			got_map[s] = '.';
		else if (rest_same && (unsigned char)got[0] == ((unsigned char)want[0] ^ 0x01))
			got_map[s] = 'C';
		else
			got_map[s] = '?';
	}
	g_assert_cmpstr(got_map, ==, want_map);
	g_free(want_map);
	g_free(got_map);
}

static void test_corrupt(struct fixture *f, gconstpointer data)
{
	size_t span = 128 * 512;
	char *pat = g_malloc(span), *buf = tu_aligned(span), *odd = g_malloc(span + 8) + 5;
	struct dmio_fault rule = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_CORRUPT, .sector = 16, .count = 8 };
	struct io_region where = { f->d.bdev[0], 8, 32 };
	bool corrupt[32];
	struct dmio_bdev_stats before;
	unsigned long bits;
	int id;

	(void)data;
	tu_pattern(pat, span, 5);
	tu_raw_write(f->d.path[0], 0, pat, span);
	id = add(f->d.bdev[0], &rule);
	for (unsigned int s = 0; s < 32; s++)
		corrupt[s] = 8 + s >= 16 && 8 + s < 24;
	before = stats_of(f->d.bdev[0]);
	for (int b = 0; b < 2; b++) { /* direct, then bounced */
		char *mem = b ? odd : buf;

		bits = ~0UL;
		memset(mem, 0, span);
		g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, mem, 1, &where, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
		assert_corrupted(mem, pat, 8, 32, corrupt);
	}
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 2);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before).reads, ==, 2); /* it reached the device */
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before).errors, ==, 0);
	tu_assert_image_holds(f->d.path[0], 0, pat, span); /* the disk is untouched */
	g_assert_cmpint(dmio_fault_remove(f->d.bdev[0], id), ==, 0);

	/* a range straddling two pieces of a split read */
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], 8), ==, 0);
	rule.sector = 12;
	id = add(f->d.bdev[0], &rule);
	for (unsigned int s = 0; s < 32; s++)
		corrupt[s] = 8 + s >= 12 && 8 + s < 20;
	for (int b = 0; b < 2; b++) {
		char *mem = b ? odd : buf;

		bits = ~0UL;
		g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, mem, 1, &where, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
		assert_corrupted(mem, pat, 8, 32, corrupt);
	}
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 4); /* two pieces per read */
	g_assert_cmpint(dmio_fault_remove(f->d.bdev[0], id), ==, 0);

	/* count 0: to the end of the device */
	{
		struct dmio_fault tail = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_CORRUPT, .sector = 120 };
		struct io_region end = { f->d.bdev[0], 112, 16 };
		bool c16[16];

		add(f->d.bdev[0], &tail);
		for (unsigned int s = 0; s < 16; s++)
			c16[s] = s >= 8;
		g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &end, NULL), ==, 0);
		assert_corrupted(buf, pat, 112, 16, c16);
	}
	/* writes are not affected, and what they wrote is what the disk holds */
	{
		struct io_region wr = { f->d.bdev[0], 120, 8 };

		tu_pattern(buf, 4096, 6);
		g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &wr, NULL), ==, 0);
		tu_assert_image_holds(f->d.path[0], 120 * 512, buf, 4096);
	}
	free(buf);
	g_free(odd - 5);
	g_free(pat);
}

/* ---- 5. flushes ----------------------------------------------------------- */

static void test_flush_eio(struct fixture *f, gconstpointer data)
{
	struct dmio_fault rule = { .ops = DMIO_FAULT_FLUSH, .action = DMIO_FAULT_EIO };
	struct dmio_fault wr = { .ops = DMIO_FAULT_WRITE | DMIO_FAULT_READ, .action = DMIO_FAULT_EIO };
	struct io_region where[NDEV] = { { f->d.bdev[0], 0, 0 }, { f->d.bdev[1], 0, 0 }, { f->d.bdev[2], 0, 0 } };
	struct dmio_bdev_stats before[NDEV];
	char *buf = tu_aligned(4096);
	unsigned long bits = 0;
	struct tu_waiter w;
	int id;

	(void)data;
	tu_waiter_init(&w);
	id = add(f->d.bdev[1], &rule);
	add(f->d.bdev[2], &wr); /* a rule for data does not catch flushes */
	for (int i = 0; i < NDEV; i++)
		before[i] = stats_of(f->d.bdev[i]);
	g_assert_cmpint(io_sync(f->client, DMIO_FLUSH, 0, NULL, NDEV, where, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1UL << 1);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &before[0]).flushes, ==, 1);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &before[1]).flushes, ==, 0);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &before[1]).errors, ==, 1);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[2], &before[2]).flushes, ==, 1);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[2], &before[2]).errors, ==, 0);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[1], id), ==, 1);

	g_assert_cmpint(io_async(f->client, DMIO_FLUSH, 0, NULL, NDEV, where, tu_waiter_notify, &w), ==, 0);
	tu_waiter_wait(&w, 1);
	g_assert_cmpuint(w.bits, ==, 1UL << 1);

	/* the pre-flush of a write fails the same way; the other legs get data */
	{
		struct io_region data_where[2] = { { f->d.bdev[0], 16, 8 }, { f->d.bdev[1], 16, 8 } };

		tu_pattern(buf, 4096, 7);
		bits = 0;
		g_assert_cmpint(io_sync(f->client, DMIO_WRITE, DMIO_REQ_PREFLUSH, buf, 2, data_where, &bits), ==, -EIO);
		g_assert_cmpuint(bits, ==, 1UL << 1);
		tu_assert_image_holds(f->d.path[0], 16 * 512, buf, 4096);
		/* without the flag no flush happens, so nothing fails */
		bits = ~0UL;
		g_assert_cmpint(io_sync(f->client, DMIO_WRITE, DMIO_REQ_FUA, buf, 2, data_where, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
	}
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[1], id), ==, 3);
	tu_waiter_clear(&w);
	free(buf);
}

static void test_flush_delay(struct fixture *f, gconstpointer data)
{
	struct dmio_fault rule = { .ops = DMIO_FAULT_FLUSH, .action = DMIO_FAULT_DELAY, .delay_ms = 250 };
	struct io_region where[2] = { { f->d.bdev[0], 0, 0 }, { f->d.bdev[1], 0, 0 } };
	char *buf = tu_aligned(4096);
	unsigned long bits = ~0UL;
	struct tu_waiter w;
	gint64 start;
	int id;

	(void)data;
	tu_waiter_init(&w);
	id = add(f->d.bdev[0], &rule);
	start = g_get_monotonic_time();
	g_assert_cmpint(io_sync(f->client, DMIO_FLUSH, 0, NULL, 2, where, &bits), ==, 0);
	g_assert_cmpint(g_get_monotonic_time() - start, >=, 250000);
	g_assert_cmpuint(bits, ==, 0);

	start = g_get_monotonic_time();
	g_assert_cmpint(io_async(f->client, DMIO_FLUSH, 0, NULL, 2, where, tu_waiter_notify, &w), ==, 0);
	sleep_until(start + 80000);
	g_assert_cmpuint(waiter_calls(&w), ==, 0);
	tu_waiter_wait(&w, 1);
	g_assert_cmpint(g_get_monotonic_time() - start, >=, 250000);
	g_assert_cmpuint(w.bits, ==, 0);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 2);

	/* writes and reads do not match a flush rule */
	{
		struct io_region one = { f->d.bdev[0], 0, 8 };

		g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &one, NULL), ==, 0);
		g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &one, NULL), ==, 0);
		g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 2);
	}

	/* delayed and failed: the bit arrives late */
	{
		struct dmio_fault eio = { .ops = DMIO_FAULT_FLUSH, .action = DMIO_FAULT_EIO };

		add(f->d.bdev[0], &eio);
		bits = 0;
		start = g_get_monotonic_time();
		g_assert_cmpint(io_sync(f->client, DMIO_FLUSH, 0, NULL, 2, where, &bits), ==, -EIO);
		g_assert_cmpint(g_get_monotonic_time() - start, >=, 250000);
		g_assert_cmpuint(bits, ==, 1);
	}
	tu_waiter_clear(&w);
	free(buf);
}

/* ---- 6. remove and clear ----------------------------------------------------- */

static void test_remove_clear(struct fixture *f, gconstpointer data)
{
	struct block_device *b = f->d.bdev[0];
	struct dmio_fault all = { .ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE, .action = DMIO_FAULT_EIO };
	struct dmio_fault first = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_EIO, .sector = 0, .count = 8 };
	struct dmio_fault second = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_EIO, .sector = 8, .count = 8 };
	struct dmio_fault fl = { .ops = DMIO_FAULT_FLUSH, .action = DMIO_FAULT_EIO };
	struct io_region lo = { b, 0, 8 }, hi = { b, 8, 8 }, other = { f->d.bdev[1], 0, 8 };
	char *buf = tu_aligned(4096);
	int id, ida, idb, ids[3];
	unsigned long bits;

	(void)data;
	id = add(b, &all);
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &lo, NULL), ==, -EIO);
	g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &hi, NULL), ==, -EIO);
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &other, NULL), ==, 0); /* per device */
	g_assert_cmpint(dmio_fault_hits(b, id), ==, 2);
	g_assert_cmpint(dmio_fault_remove(b, id), ==, 0);
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &lo, NULL), ==, 0);
	g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &hi, NULL), ==, 0);
	g_assert_cmpint(dmio_fault_remove(b, id), ==, -ENOENT);
	g_assert_cmpint(dmio_fault_hits(b, id), ==, -ENOENT);
	g_assert_cmpint(dmio_fault_remove(b, 9999), ==, -ENOENT);
	g_assert_cmpint(dmio_fault_hits(b, 9999), ==, -ENOENT);
	g_assert_cmpint(dmio_fault_remove(b, 0), ==, -ENOENT);
	g_assert_cmpint(dmio_fault_remove(b, -1), ==, -ENOENT);
	g_assert_cmpint(dmio_fault_hits(b, -1), ==, -ENOENT);

	/* removing one of two leaves the other in force */
	ida = add(b, &first);
	idb = add(b, &second);
	g_assert_cmpint(ida, !=, id);
	g_assert_cmpint(idb, !=, ida);
	g_assert_cmpint(dmio_fault_remove(b, ida), ==, 0);
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &lo, NULL), ==, 0);
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &hi, NULL), ==, -EIO);
	g_assert_cmpint(dmio_fault_hits(b, idb), ==, 1);
	g_assert_cmpint(dmio_fault_hits(b, ida), ==, -ENOENT);

	/* clear removes everything */
	ids[0] = add(b, &all);
	ids[1] = add(b, &fl);
	ids[2] = add(b, &first);
	g_assert_cmpint(io_sync(f->client, DMIO_FLUSH, 0, NULL, 1, &lo, NULL), ==, -EIO);
	dmio_fault_clear(b);
	bits = ~0UL;
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &lo, &bits), ==, 0);
	g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &hi, &bits), ==, 0);
	g_assert_cmpint(io_sync(f->client, DMIO_FLUSH, 0, NULL, 1, &lo, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	for (int i = 0; i < 3; i++) {
		g_assert_cmpint(dmio_fault_hits(b, ids[i]), ==, -ENOENT);
		g_assert_cmpint(dmio_fault_remove(b, ids[i]), ==, -ENOENT);
	}
	g_assert_cmpint(dmio_fault_hits(b, idb), ==, -ENOENT);
	dmio_fault_clear(b);    /* twice is fine */
	dmio_fault_clear(NULL); /* and so is nothing */

	/* ids are not handed out again: a stale id cannot remove a new rule */
	id = add(b, &all);
	for (int i = 0; i < 3; i++)
		g_assert_cmpint(id, !=, ids[i]);
	g_assert_cmpint(id, !=, ida);
	g_assert_cmpint(id, !=, idb);
	g_assert_cmpint(dmio_fault_remove(b, ids[0]), ==, -ENOENT);
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &lo, NULL), ==, -EIO);
	free(buf);
}

/* ---- 7. validation ------------------------------------------------------------ */

static void test_validation(struct fixture *f, gconstpointer data)
{
	const struct dmio_fault eio = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_EIO };
	struct dmio_fault bad[20], good[8];
	unsigned int nbad = 0, ngood = 0;
	struct io_region where = { f->d.bdev[0], 0, 8 };
	char *buf = tu_aligned(4096);
	int ids[G_N_ELEMENTS(good)];

	(void)data;
	bad[nbad] = eio, bad[nbad++].ops = 0;
	bad[nbad] = eio, bad[nbad++].ops = 0x8;
	bad[nbad] = eio, bad[nbad++].ops = DMIO_FAULT_READ | 0x100;
	bad[nbad] = eio, bad[nbad++].probability = 1.5;
	bad[nbad] = eio, bad[nbad++].probability = -0.1;
	bad[nbad] = eio, bad[nbad++].probability = NAN;
	bad[nbad] = eio, bad[nbad++].probability = INFINITY;
	bad[nbad] = eio, bad[nbad].action = DMIO_FAULT_DROP, bad[nbad++].ops = DMIO_FAULT_READ;
	bad[nbad] = eio, bad[nbad].action = DMIO_FAULT_DROP, bad[nbad++].ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE;
	bad[nbad] = eio, bad[nbad].action = DMIO_FAULT_CORRUPT, bad[nbad++].ops = DMIO_FAULT_WRITE;
	bad[nbad] = eio, bad[nbad].action = DMIO_FAULT_CORRUPT, bad[nbad++].ops = DMIO_FAULT_READ | DMIO_FAULT_FLUSH;
	bad[nbad] = eio, bad[nbad].action = DMIO_FAULT_DELAY, bad[nbad++].delay_ms = 0;
	bad[nbad] = eio, bad[nbad].sector = UINT64_MAX, bad[nbad++].count = 1;
	bad[nbad] = eio, bad[nbad].sector = UINT64_MAX - 10, bad[nbad++].count = 20;
	bad[nbad] = eio, bad[nbad++].action = (enum dmio_fault_action)0;
	bad[nbad] = eio, bad[nbad++].action = (enum dmio_fault_action)99;
	for (unsigned int i = 0; i < nbad; i++)
		if (dmio_fault_add(f->d.bdev[0], &bad[i]) != -EINVAL)
			g_assert_cmpuint(i, ==, UINT_MAX); /* names the rule let through */
	g_assert_cmpint(dmio_fault_add(f->d.bdev[0], NULL), ==, -EINVAL);
	g_assert_cmpint(dmio_fault_add(NULL, &eio), ==, -EINVAL);
	/* none of them was installed */
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &where, NULL), ==, 0);
	g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, buf, 1, &where, NULL), ==, 0);

	/* the edges that are allowed */
	good[ngood] = eio, good[ngood].action = DMIO_FAULT_DROP, good[ngood++].ops = DMIO_FAULT_FLUSH;
	good[ngood] = eio, good[ngood].action = DMIO_FAULT_DROP, good[ngood++].ops = DMIO_FAULT_WRITE | DMIO_FAULT_FLUSH;
	good[ngood] = eio, good[ngood].sector = UINT64_MAX, good[ngood++].count = 0;
	good[ngood] = eio, good[ngood].sector = UINT64_MAX - 8, good[ngood++].count = 8;
	good[ngood] = eio, good[ngood].sector = 1u << 30, good[ngood++].probability = 1.0;
	good[ngood] = eio, good[ngood].sector = 1u << 30, good[ngood++].probability = 0.0;
	good[ngood] = eio, good[ngood].action = DMIO_FAULT_DELAY, good[ngood].delay_ms = 1,
	good[ngood++].ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE | DMIO_FAULT_FLUSH;
	for (unsigned int i = 0; i < ngood; i++) {
		ids[i] = dmio_fault_add(f->d.bdev[0], &good[i]);
		g_assert_cmpint(ids[i], >, 0);
		for (unsigned int j = 0; j < i; j++)
			g_assert_cmpint(ids[i], !=, ids[j]);
	}
	/* the EIO rules' ranges all miss sector 0 and DROP ignores reads: a
	 * read passes, 1 ms late (the DELAY rule covers everything) */
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &where, NULL), ==, 0);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], ids[ngood - 1]), ==, 1);
	free(buf);
}

/* ---- 8. the text form ----------------------------------------------------------- */

static void assert_rule(const struct dmio_fault *got, const struct dmio_fault *want)
{
	g_assert_cmpuint(got->ops, ==, want->ops);
	g_assert_cmpint(got->action, ==, want->action);
	g_assert_cmpuint(got->sector, ==, want->sector);
	g_assert_cmpuint(got->count, ==, want->count);
	g_assert_cmpuint(got->skip, ==, want->skip);
	g_assert_cmpuint(got->every, ==, want->every);
	g_assert_cmpfloat(got->probability, ==, want->probability);
	g_assert_cmpuint(got->limit, ==, want->limit);
	g_assert_cmpuint(got->delay_ms, ==, want->delay_ms);
	g_assert_cmpuint(got->seed, ==, want->seed);
}

static void test_parse_good(void)
{
	static const struct {
		const char *spec;
		struct dmio_fault want;
	} cases[] = {
		{ "action=eio,ops=read+write,sector=8,count=8,every=2",
		  { .ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE, .action = DMIO_FAULT_EIO, .sector = 8, .count = 8,
		    .every = 2 } },
		{ "action=corrupt,sector=0x10", { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_CORRUPT, .sector = 16 } },
		{ "action=delay,delay=50,ops=flush", { .ops = DMIO_FAULT_FLUSH, .action = DMIO_FAULT_DELAY, .delay_ms = 50 } },
		{ "action=drop", { .ops = DMIO_FAULT_WRITE, .action = DMIO_FAULT_DROP } },
		{ "action=eio", { .ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE, .action = DMIO_FAULT_EIO } },
		{ "action=error,ops=all,skip=3,limit=4,prob=0.25,seed=7",
		  { .ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE | DMIO_FAULT_FLUSH, .action = DMIO_FAULT_EIO, .skip = 3,
		    .limit = 4, .probability = 0.25, .seed = 7 } },
		{ "count=0x20,probability=1,delay_ms=5,action=delay",
		  { .ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE, .action = DMIO_FAULT_DELAY, .count = 32,
		    .probability = 1.0, .delay_ms = 5 } },
		{ "action=drop,ops=write|flush", { .ops = DMIO_FAULT_WRITE | DMIO_FAULT_FLUSH, .action = DMIO_FAULT_DROP } },
		{ "action=eio,sector=18446744073709551607,count=8",
		  { .ops = DMIO_FAULT_READ | DMIO_FAULT_WRITE, .action = DMIO_FAULT_EIO, .sector = UINT64_MAX - 8,
		    .count = 8 } },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct dmio_fault got;

		memset(&got, 0xA5, sizeof(got));
		if (dmio_fault_parse(cases[i].spec, &got) != 0)
			g_assert_cmpstr(cases[i].spec, ==, "(parsed)");
		assert_rule(&got, &cases[i].want);
	}
}

static void check_parse_rejects(const char *const *specs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct dmio_fault got, untouched;
		int ret;

		memset(&got, 0xA5, sizeof(got));
		memset(&untouched, 0xA5, sizeof(untouched));
		ret = dmio_fault_parse(specs[i], &got);
		if (ret != -EINVAL)
			g_assert_cmpstr(specs[i], ==, "(rejected with -EINVAL)");
		if (memcmp(&got, &untouched, sizeof(got)))
			g_assert_cmpstr(specs[i], ==, "(left the output untouched)");
	}
}

static void test_parse_bad(void)
{
	static const char *const specs[] = {
		"action=",
		"action=eio,sector=",
		"action=eio,count=",
		"action=eio,prob=",
		"action=eio,skip=",
		"action=eio,colour=red",
		"action=explode",
		"action=eio,ops=sideways",
		"action=eio,ops=read+sideways",
		"action=eio,prob=2",
		"action=eio,prob=-0.5",
		"action=eio,prob=nan",
		"action=eio,count=-1",
		"action=eio,count",
		"action=eio,count=8x",
		"action=eio,sector=8,skip=1x",
		"action=eio,every=4294967296",
		"action=eio,sector=99999999999999999999999",
		"=eio",
		"",
		"sector=8",             /* no action */
		"action=delay",         /* no delay */
		"action=drop,ops=read", /* makes no sense */
		"action=corrupt,ops=write",
		"action=eio,sector=18446744073709551615,count=1",
	};
	struct dmio_fault got;

	check_parse_rejects(specs, G_N_ELEMENTS(specs));
	memset(&got, 0xA5, sizeof(got));
	g_assert_cmpint(dmio_fault_parse(NULL, &got), ==, -EINVAL);
	g_assert_cmpint(dmio_fault_parse("action=eio", NULL), ==, -EINVAL);
}

/* An ops list with no operation in it is an empty value too. */
static void test_parse_empty_ops(void)
{
	static const char *const specs[] = {
		"action=eio,ops=",
		"action=drop,ops=+",
		"action=eio,ops=,sector=8",
	};

	g_test_set_nonfatal_assertions(); /* a known library bug: report every case */
	check_parse_rejects(specs, G_N_ELEMENTS(specs));
}

/* Two CORRUPT rules with a gap between them: only the sectors inside a
 * rule's range may be corrupted, not those in the gap. */
static void test_corrupt_two_rules(struct fixture *f, gconstpointer data)
{
	size_t span = 64 * 512;
	char *pat = g_malloc(span), *buf = tu_aligned(span);
	struct dmio_fault a = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_CORRUPT, .sector = 16, .count = 8 };
	struct dmio_fault b = { .ops = DMIO_FAULT_READ, .action = DMIO_FAULT_CORRUPT, .sector = 28, .count = 4 };
	struct io_region where = { f->d.bdev[0], 8, 32 };
	bool corrupt[32];
	int ida, idb;

	(void)data;
	g_test_set_nonfatal_assertions(); /* a known library bug: report every sector */
	tu_pattern(pat, span, 8);
	tu_raw_write(f->d.path[0], 0, pat, span);
	ida = add(f->d.bdev[0], &a);
	idb = add(f->d.bdev[0], &b);
	for (unsigned int s = 0; s < 32; s++) {
		sector_t abs = 8 + s;

		corrupt[s] = (abs >= 16 && abs < 24) || (abs >= 28 && abs < 32);
	}
	g_assert_cmpint(io_sync(f->client, DMIO_READ, 0, buf, 1, &where, NULL), ==, 0);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], ida), ==, 1);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], idb), ==, 1);
	assert_corrupted(buf, pat, 8, 32, corrupt);
	free(buf);
	g_free(pat);
}

/* ---- 9. rules changed while I/O is in flight --------------------------------- */

#define MAX_INFLIGHT 16

struct toggler {
	struct fixture *f;
	GMutex lock;
	GCond cond;
	unsigned int inflight;
	unsigned int submitted, completed;
	unsigned int ok, failed, wrong; /* by the bits each callback saw */
	int submit_errors;
	gboolean stop;
	char *buf;
};

static void toggler_notify(unsigned long error, void *context)
{
	struct toggler *t = context;

	g_mutex_lock(&t->lock);
	if (error == 0)
		t->ok++;
	else if (error == 1UL << 1)
		t->failed++;
	else
		t->wrong++;
	t->completed++;
	t->inflight--;
	g_cond_broadcast(&t->cond);
	g_mutex_unlock(&t->lock);
}

static gpointer writer_main(gpointer data)
{
	struct toggler *t = data;

	for (unsigned int i = 0;; i++) {
		struct io_region where[2] = {
			{ t->f->d.bdev[0], (sector_t)(i % 256) * 8, 8 },
			{ t->f->d.bdev[1], (sector_t)(i % 256) * 8, 8 },
		};
		int ret;

		g_mutex_lock(&t->lock);
		while (t->inflight >= MAX_INFLIGHT && !t->stop)
			g_cond_wait(&t->cond, &t->lock);
		if (t->stop) {
			g_mutex_unlock(&t->lock);
			break;
		}
		t->inflight++;
		t->submitted++;
		g_mutex_unlock(&t->lock);
		ret = io_async(t->f->client, DMIO_WRITE, 0, t->buf, 2, where, toggler_notify, t);
		if (ret) {
			g_mutex_lock(&t->lock);
			t->submit_errors++;
			t->inflight--;
			t->submitted--;
			g_mutex_unlock(&t->lock);
		}
	}
	return NULL;
}

static void test_runtime_toggle(struct fixture *f, gconstpointer data)
{
	struct dmio_fault eio = { .ops = DMIO_FAULT_WRITE, .action = DMIO_FAULT_EIO };
	struct dmio_fault slow = { .ops = DMIO_FAULT_WRITE, .action = DMIO_FAULT_DELAY, .delay_ms = 2, .every = 7 };
	struct dmio_bdev_stats b0 = stats_of(f->d.bdev[0]), b1 = stats_of(f->d.bdev[1]);
	struct toggler t = { .f = f };
	GThread *writer;
	int64_t hits = 0;

	(void)data;
	g_mutex_init(&t.lock);
	g_cond_init(&t.cond);
	t.buf = tu_aligned(4096);
	tu_pattern(t.buf, 4096, 9);
	writer = g_thread_new("writer", writer_main, &t);
	g_usleep(50000);
	for (int round = 0; round < 6; round++) {
		int id = dmio_fault_add(f->d.bdev[1], &eio);
		int sid = dmio_fault_add(f->d.bdev[0], &slow);

		g_assert_cmpint(id, >, 0);
		g_assert_cmpint(sid, >, 0);
		g_usleep(60000);
		hits += dmio_fault_hits(f->d.bdev[1], id);
		if (round % 2) {
			g_assert_cmpint(dmio_fault_remove(f->d.bdev[1], id), ==, 0);
			g_assert_cmpint(dmio_fault_remove(f->d.bdev[0], sid), ==, 0);
		} else {
			dmio_fault_clear(f->d.bdev[1]);
			dmio_fault_clear(f->d.bdev[0]);
		}
		g_usleep(60000);
	}
	g_mutex_lock(&t.lock);
	t.stop = TRUE;
	g_cond_broadcast(&t.cond);
	g_mutex_unlock(&t.lock);
	g_thread_join(writer);
	g_mutex_lock(&t.lock);
	while (t.completed < t.submitted)
		g_cond_wait(&t.cond, &t.lock);
	g_mutex_unlock(&t.lock);

	g_assert_cmpint(t.submit_errors, ==, 0);
	g_assert_cmpuint(t.wrong, ==, 0);
	g_assert_cmpuint(t.ok + t.failed, ==, t.submitted);
	g_assert_cmpuint(t.ok, >, 0);
	g_assert_cmpuint(t.failed, >, 0);
	/* hits read just before a rule went may lag the very last failures */
	g_assert_cmpint(hits, <=, (int64_t)t.failed);
	g_assert_cmpint(hits, >, 0);
	/* each request was one piece per device */
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &b0).writes, ==, t.submitted);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &b0).errors, ==, 0);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &b1).errors, ==, t.failed);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &b1).writes, ==, t.ok);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[0], &b0).inflight, ==, 0);
	g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &b1).inflight, ==, 0);
	/* and with every rule gone, writes pass */
	{
		struct io_region where[2] = { { f->d.bdev[0], 4096, 8 }, { f->d.bdev[1], 4096, 8 } };
		unsigned long bits = ~0UL;

		g_assert_cmpint(io_sync(f->client, DMIO_WRITE, 0, t.buf, 2, where, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
		tu_assert_image_holds(f->d.path[1], 4096 * 512, t.buf, 4096);
	}
	g_test_message("toggle: %u requests, %u ok, %u failed on the faulted leg", t.submitted, t.ok, t.failed);
	free(t.buf);
	g_mutex_clear(&t.lock);
	g_cond_clear(&t.cond);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/fault/" name, struct fixture, NULL, setup, fn, teardown)
	ADD("eio/read-range", test_eio_read_range);
	ADD("eio/discard", test_eio_discard);
	ADD("count/every", test_every);
	ADD("count/skip", test_skip);
	ADD("count/limit", test_limit);
	ADD("count/skip-every-limit", test_skip_every_limit);
	ADD("count/probability", test_probability);
	ADD("drop", test_drop);
	ADD("corrupt", test_corrupt);
	ADD("flush/eio", test_flush_eio);
	ADD("flush/delay", test_flush_delay);
	ADD("remove-clear", test_remove_clear);
	ADD("validation", test_validation);
	g_test_add_func("/fault/parse/good", test_parse_good);
	g_test_add_func("/fault/parse/bad", test_parse_bad);
	ADD("runtime-toggle", test_runtime_toggle);
	/* Last: these show library bugs (see the report) and use non-fatal
	 * assertions, so every other test has run before them. */
	g_test_add_func("/fault/parse/empty-ops", test_parse_empty_ops);
	ADD("corrupt/two-rules", test_corrupt_two_rules);
	return g_test_run();
}
