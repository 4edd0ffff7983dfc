/* test-request.c - the request interface (struct dm_io_request, dm_io(),
 * dm_io_client_create/resize/destroy) on image files: every memory type
 * synchronously and asynchronously on private and default clients, flush,
 * pre-flush and FUA, discard and write-zeroes, splitting at the device's
 * limit (with a failing piece in the middle), when the callback runs, calls
 * made from inside a callback, pool exhaustion and resizing, and bad input.
 *
 * The tests reach the library's internals (internal.h) only to ask on which
 * completion thread a callback runs and how big a client's pools are. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "testutil.h"

#define IMG_BYTES (4u << 20)
#define IMG_SECTORS ((sector_t)(IMG_BYTES >> 9))
#define NDEV 3
#define FILL 0x5A

struct fixture {
	char *dir;
	struct tu_devices d;
	struct dm_io_client *client; /* a private client at its floor size */
};

static void setup(struct fixture *f, gconstpointer data)
{
	(void)data;
	f->dir = tu_tmpdir_new();
	tu_devices_open(&f->d, f->dir, "d", NDEV, IMG_BYTES, FILL);
	f->client = dm_io_client_create(0);
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

/* Counter deltas since a snapshot. */
struct snap {
	struct dmio_bdev_stats s[NDEV];
};

static void snap_take(struct fixture *f, struct snap *sn)
{
	for (int i = 0; i < NDEV; i++)
		dmio_bdev_get_stats(f->d.bdev[i], &sn->s[i]);
}

static struct dmio_bdev_stats delta(struct fixture *f, const struct snap *sn, int dev)
{
	return tu_stats_since(f->d.bdev[dev], &sn->s[dev]);
}

/* A callback that also records where and when it ran. */
struct probe {
	struct tu_waiter w;
	struct dm_io_client *client; /* the client whose thread should run it */
	gint on_thread;              /* callbacks that ran on that thread */
	gint64 when;                 /* monotonic time of the last callback */
};

static void probe_init(struct probe *p, struct dm_io_client *client)
{
	memset(p, 0, sizeof(*p));
	tu_waiter_init(&p->w);
	p->client = client;
}

static void probe_notify(unsigned long error, void *context)
{
	struct probe *p = context;

	if (p->client && client_on_completion_thread(p->client))
		g_atomic_int_inc(&p->on_thread);
	p->when = g_get_monotonic_time();
	tu_waiter_notify(error, &p->w); /* publishes the above under its lock */
}

static unsigned int probe_calls(struct probe *p)
{
	unsigned int calls;

	g_mutex_lock(&p->w.lock);
	calls = p->w.calls;
	g_mutex_unlock(&p->w.lock);
	return calls;
}

static void sleep_until(gint64 when)
{
	gint64 now = g_get_monotonic_time();

	if (when > now)
		g_usleep((gulong)(when - now));
}

static int add_fault(struct block_device *bdev, unsigned int ops, enum dmio_fault_action action, sector_t sector,
		     sector_t count, unsigned int delay_ms, unsigned int limit)
{
	struct dmio_fault rule = {
		.ops = ops,
		.action = action,
		.sector = sector,
		.count = count,
		.delay_ms = delay_ms,
		.limit = limit,
	};
	int id = dmio_fault_add(bdev, &rule);

	g_assert_cmpint(id, >, 0);
	return id;
}

static unsigned int pool_total_pages(struct dm_io_client *c, unsigned int *nfree)
{
	unsigned int total;

	pthread_mutex_lock(&c->lock);
	total = c->pages.total;
	*nfree = c->pages.nfree;
	pthread_mutex_unlock(&c->lock);
	return total;
}

/* ---- memory descriptions for every type ----------------------------------- */

enum mem_case { MC_PL, MC_PL_ODD, MC_BVEC, MC_VMA, MC_VMA_ODD, MC_KMEM, MC_KMEM_ODD };

struct span {
	char *addr;
	size_t len;
};

/* Caller memory of one type over an arena whose other bytes are guards. */
struct memdesc {
	struct dm_io_memory mem;
	char *arena;
	size_t arena_len;
	guint8 *is_data;
	struct span spans[64];
	unsigned int nspans;
	struct page_list *nodes;
	struct bio_vec *bv;
	size_t len;
};

static void md_add_span(struct memdesc *md, char *addr, size_t len)
{
	g_assert_cmpuint(md->nspans, <, G_N_ELEMENTS(md->spans));
	md->spans[md->nspans++] = (struct span){ addr, len };
	memset(md->is_data + (addr - md->arena), 1, len);
}

static struct memdesc *md_new(enum mem_case mc, size_t len)
{
	/* bvec entries as (offset, length) in their page: aligned and not */
	static const unsigned int shapes[][2] = { { 1024, 512 }, { 7, 1000 }, { 100, 2584 }, { 0, 4096 },
						  { 512, 3072 }, { 3, 509 },    { 0, 4096 } };
	struct memdesc *md = g_new0(struct memdesc, 1);
	unsigned int offset = mc == MC_PL ? 1536 : 100;
	unsigned int npages;
	size_t done = 0;

	md->len = len;
	switch (mc) {
	case MC_PL:
	case MC_PL_ODD:
		npages = (unsigned int)((offset + len + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE);
		md->arena_len = (size_t)npages * DMIO_PAGE_SIZE;
		md->arena = tu_aligned(md->arena_len);
		md->is_data = g_malloc0(md->arena_len);
		md->nodes = g_new0(struct page_list, npages);
		/* pages in reverse order: nothing is adjacent, nothing merges */
		for (unsigned int i = 0; i < npages; i++) {
			char *page = md->arena + (size_t)(npages - 1 - i) * DMIO_PAGE_SIZE;
			size_t start = i == 0 ? offset : 0;
			size_t n = MIN(DMIO_PAGE_SIZE - start, len - done);

			md->nodes[i].page = dmio_virt_to_page(page);
			md->nodes[i].next = i + 1 < npages ? &md->nodes[i + 1] : NULL;
			md_add_span(md, page + start, n);
			done += n;
		}
		md->mem = (struct dm_io_memory){ .type = DM_IO_PAGE_LIST, .offset = offset, .ptr.pl = md->nodes };
		break;
	case MC_BVEC:
		npages = 0;
		for (size_t left = len, k = 0; left; k++) {
			size_t n = MIN(shapes[k % G_N_ELEMENTS(shapes)][1], left);

			left -= n;
			npages++;
		}
		md->arena_len = (size_t)npages * DMIO_PAGE_SIZE;
		md->arena = tu_aligned(md->arena_len);
		md->is_data = g_malloc0(md->arena_len);
		md->bv = g_new0(struct bio_vec, npages);
		for (unsigned int i = 0; i < npages; i++) {
			char *page = md->arena + (size_t)(npages - 1 - i) * DMIO_PAGE_SIZE;
			unsigned int off = shapes[i % G_N_ELEMENTS(shapes)][0];
			size_t n = MIN(shapes[i % G_N_ELEMENTS(shapes)][1], len - done);

			md->bv[i] = (struct bio_vec){ dmio_virt_to_page(page), (unsigned int)n, off };
			md_add_span(md, page + off, n);
			done += n;
		}
		md->mem = (struct dm_io_memory){ .type = DM_IO_BVEC, .ptr.bvec = md->bv };
		break;
	default: {
		bool odd = mc == MC_VMA_ODD || mc == MC_KMEM_ODD;
		char *start;

		md->arena_len = len + 2 * DMIO_PAGE_SIZE;
		md->arena = tu_aligned(md->arena_len);
		md->is_data = g_malloc0(md->arena_len);
		start = md->arena + DMIO_PAGE_SIZE + (odd ? 3 : 0);
		md_add_span(md, start, len);
		md->mem = (mc == MC_VMA || mc == MC_VMA_ODD) ? tu_vma(start) : tu_kmem(start);
		break;
	}
	}
	return md;
}

static void md_free(struct memdesc *md)
{
	free(md->arena);
	g_free(md->is_data);
	g_free(md->nodes);
	g_free(md->bv);
	g_free(md);
}

static void md_scatter(struct memdesc *md, const char *src)
{
	for (unsigned int i = 0; i < md->nspans; i++) {
		memcpy(md->spans[i].addr, src, md->spans[i].len);
		src += md->spans[i].len;
	}
}

static void md_gather(const struct memdesc *md, char *dst)
{
	for (unsigned int i = 0; i < md->nspans; i++) {
		memcpy(dst, md->spans[i].addr, md->spans[i].len);
		dst += md->spans[i].len;
	}
}

/* Every byte outside the data still holds `byte`. */
static void md_assert_guards(const struct memdesc *md, int byte)
{
	for (size_t i = 0; i < md->arena_len; i++)
		if (!md->is_data[i] && md->arena[i] != (char)byte)
			g_assert_cmpuint(i, ==, SIZE_MAX); /* names the guard byte touched */
}

static void md_assert_holds(const struct memdesc *md, const char *want)
{
	char *got = g_malloc(md->len);

	md_gather(md, got);
	g_assert_cmpmem(got, md->len, want, md->len);
	g_free(got);
}

/* ---- 1. clients and memory types ----------------------------------------- */

static unsigned int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned int n = 0;

	g_assert_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void test_client_create_destroy(void)
{
	struct dm_io_client *c;
	unsigned int floor;

	c = dm_io_client_create(0);
	g_assert_nonnull(c);
	floor = c->pages.total;
	g_assert_cmpuint(floor, >, 0);
	dm_io_client_destroy(c);

	c = dm_io_client_create(1024);
	g_assert_nonnull(c);
	g_assert_cmpuint(c->pages.total, >=, 1024);
	g_assert_cmpuint(c->pages.nfree, ==, c->pages.total);
	dm_io_client_destroy(c);

	dm_io_client_destroy(NULL); /* a no-op */
	g_assert_cmpint(dm_io_client_resize(16, NULL), ==, -EINVAL);
}

/* Clients with I/O come and go without leaking descriptors; destroying one
 * waits for its last request, whose callback has run when destroy returns. */
static void test_client_with_io(struct fixture *f, gconstpointer data)
{
	char *buf = tu_aligned(8192), *back = tu_aligned(8192);
	struct io_region where = { f->d.bdev[0], 16, 16 };
	unsigned int fds_before, fds_after;
	struct probe p;
	gint64 start;

	(void)data;
	fds_before = count_fds();
	for (int round = 0; round < 8; round++) {
		struct dm_io_client *c = dm_io_client_create((unsigned int)round * 64);
		unsigned long bits = ~0UL;

		g_assert_nonnull(c);
		tu_pattern(buf, 8192, 100 + (uint32_t)round);
		g_assert_cmpint(tu_io_sync(c, DMIO_WRITE, 0, tu_kmem(buf), 1, &where, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
		memset(back, 0, 8192);
		g_assert_cmpint(tu_io_sync(c, DMIO_READ, 0, tu_kmem(back), 1, &where, &bits), ==, 0);
		g_assert_cmpmem(back, 8192, buf, 8192);
		dm_io_client_destroy(c);
	}
	fds_after = count_fds();
	g_assert_cmpuint(fds_after, ==, fds_before);

	/* destroy right after an async request that is held up for 200 ms */
	{
		struct dm_io_client *c = dm_io_client_create(0);

		probe_init(&p, c);
		add_fault(f->d.bdev[0], DMIO_FAULT_WRITE, DMIO_FAULT_DELAY, 0, 0, 200, 0);
		tu_pattern(buf, 8192, 200);
		start = g_get_monotonic_time();
		g_assert_cmpint(tu_io_async(c, DMIO_WRITE, 0, tu_kmem(buf), 1, &where, probe_notify, &p), ==, 0);
		dm_io_client_destroy(c);
		g_assert_cmpint(g_get_monotonic_time() - start, >=, 200000);
		g_assert_cmpuint(p.w.calls, ==, 1);
		g_assert_cmpuint(p.w.bits, ==, 0);
		g_assert_cmpint(p.on_thread, ==, 1);
		g_assert_cmpint(p.when - start, >=, 200000);
		tu_assert_image_holds(f->d.path[0], 16 * 512, buf, 8192);
		tu_waiter_clear(&p.w);
	}
	free(buf);
	free(back);
}

/* One memory type: sync write then async read, async write then sync read,
 * on a private client; guards around the data are never touched. */
static void test_mem_type(struct fixture *f, gconstpointer data)
{
	enum mem_case mc = (enum mem_case)GPOINTER_TO_INT(data);
	size_t len = 81 * 512; /* ends mid-page */
	struct memdesc *md = md_new(mc, len);
	char *want = g_malloc(len);
	struct io_region w1[2] = { { f->d.bdev[0], 0, len >> 9 }, { f->d.bdev[1], 2048, len >> 9 } };
	struct io_region w2[2] = { { f->d.bdev[2], 101, len >> 9 }, { f->d.bdev[0], 4096, len >> 9 } };
	unsigned long bits = ~0UL;
	struct snap sn;
	struct probe p;

	probe_init(&p, f->client);

	/* sync write to two devices */
	tu_pattern(want, len, 11 + (uint32_t)mc);
	memset(md->arena, 0xC3, md->arena_len);
	md_scatter(md, want);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, md->mem, 2, w1, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).write_bytes, ==, len);
	g_assert_cmpuint(delta(f, &sn, 1).write_bytes, ==, len);
	g_assert_cmpuint(delta(f, &sn, 2).write_bytes, ==, 0);
	tu_assert_image_holds(f->d.path[0], 0, want, len);
	tu_assert_image_holds(f->d.path[1], 2048 * 512, want, len);
	tu_assert_image_filled(f->d.path[0], len, FILL, 512); /* nothing past the end */
	md_assert_guards(md, 0xC3);

	/* async read of one of them */
	memset(md->arena, 0x3C, md->arena_len);
	g_assert_cmpint(tu_io_async(f->client, DMIO_READ, 0, md->mem, 1, &w1[1], probe_notify, &p), ==, 0);
	tu_waiter_wait(&p.w, 1);
	g_assert_cmpuint(p.w.bits, ==, 0);
	g_assert_cmpint(p.on_thread, ==, 1);
	md_assert_holds(md, want);
	md_assert_guards(md, 0x3C);
	g_assert_cmpuint(delta(f, &sn, 1).read_bytes, ==, len);

	/* async write, then a sync read */
	tu_pattern(want, len, 31 + (uint32_t)mc);
	md_scatter(md, want);
	g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, 0, md->mem, 2, w2, probe_notify, &p), ==, 0);
	tu_waiter_wait(&p.w, 2);
	g_assert_cmpuint(p.w.bits, ==, 0);
	g_assert_cmpint(p.on_thread, ==, 2);
	tu_assert_image_holds(f->d.path[2], 101 * 512, want, len);
	tu_assert_image_holds(f->d.path[0], 4096 * 512, want, len);
	tu_assert_image_filled(f->d.path[2], 100 * 512, FILL, 512);
	md_assert_guards(md, 0x3C);

	memset(md->arena, 0x99, md->arena_len);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, md->mem, 1, &w2[0], &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	md_assert_holds(md, want);
	md_assert_guards(md, 0x99);

	/* a read straddling the device's end fails before any I/O and hands
	 * back zeroes in exactly the data bytes, sync and async */
	{
		struct io_region past = { f->d.bdev[1], IMG_SECTORS - 8, len >> 9 };
		struct dmio_bdev_stats before;

		dmio_bdev_get_stats(f->d.bdev[1], &before);
		memset(md->arena, 0x77, md->arena_len);
		bits = 0;
		g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, md->mem, 1, &past, &bits), ==, -EIO);
		g_assert_cmpuint(bits, ==, 1);
		for (unsigned int i = 0; i < md->nspans; i++)
			tu_assert_bytes(md->spans[i].addr, 0, md->spans[i].len);
		md_assert_guards(md, 0x77);
		memset(md->arena, 0x78, md->arena_len);
		g_assert_cmpint(tu_io_async(f->client, DMIO_READ, 0, md->mem, 1, &past, probe_notify, &p), ==, 0);
		tu_waiter_wait(&p.w, 3);
		g_assert_cmpuint(p.w.bits, ==, 1);
		for (unsigned int i = 0; i < md->nspans; i++)
			tu_assert_bytes(md->spans[i].addr, 0, md->spans[i].len);
		md_assert_guards(md, 0x78);
		g_assert_cmpuint(tu_stats_since(f->d.bdev[1], &before).reads, ==, 0);
	}

	g_usleep(20000);
	g_assert_cmpuint(probe_calls(&p), ==, 3); /* exactly once per request */
	tu_waiter_clear(&p.w);
	md_free(md);
	g_free(want);
}

/* client NULL: the process-wide default client does the work, and its
 * completion thread runs the callback. */
static void test_default_client(struct fixture *f, gconstpointer data)
{
	size_t len = 64 * 1024;
	char *buf = tu_aligned(len), *back = g_malloc(len + 1) + 1;
	struct io_region where = { f->d.bdev[2], 512, len >> 9 };
	struct dm_io_client *def;
	unsigned long bits = ~0UL;
	struct probe p, other;

	(void)data;
	tu_pattern(buf, len, 41);
	g_assert_cmpint(tu_io_sync(NULL, DMIO_WRITE, DMIO_REQ_SYNC, tu_vma(buf), 1, &where, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	tu_assert_image_holds(f->d.path[2], 512 * 512, buf, len);
	def = dmio_default_client();
	g_assert_nonnull(def);
	g_assert_true(def != f->client);

	probe_init(&p, def);
	memset(back, 0, len);
	g_assert_cmpint(tu_io_async(NULL, DMIO_READ, 0, tu_kmem(back), 1, &where, probe_notify, &p), ==, 0);
	tu_waiter_wait(&p.w, 1);
	g_assert_cmpuint(p.w.bits, ==, 0);
	g_assert_cmpint(p.on_thread, ==, 1);
	g_assert_cmpmem(back, len, buf, len);

	/* and a private client's callback does not run there */
	probe_init(&other, def);
	g_assert_cmpint(tu_io_async(f->client, DMIO_READ, 0, tu_kmem(back), 1, &where, probe_notify, &other), ==, 0);
	tu_waiter_wait(&other.w, 1);
	g_assert_cmpint(other.on_thread, ==, 0);
	tu_waiter_clear(&p.w);
	tu_waiter_clear(&other.w);
	free(buf);
	g_free(back - 1);
}

/* ---- 2. flush and pre-flush ---------------------------------------------- */

static void test_flush_regions(struct fixture *f, gconstpointer data)
{
	/* dev0 named twice, dev1 with an empty region: one flush per region */
	struct io_region where[4] = {
		{ f->d.bdev[0], 0, 8 }, { f->d.bdev[1], 64, 0 }, { f->d.bdev[2], 100, 16 }, { f->d.bdev[0], 8, 8 },
	};
	struct dm_io_memory nomem = { .type = DM_IO_KMEM, .ptr.addr = NULL };
	unsigned long bits = ~0UL;
	struct snap sn;
	struct probe p;

	(void)data;
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_FLUSH, 0, nomem, 4, where, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).flushes, ==, 2);
	g_assert_cmpuint(delta(f, &sn, 1).flushes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 2).flushes, ==, 1);
	for (int i = 0; i < NDEV; i++) {
		struct dmio_bdev_stats d = delta(f, &sn, i);

		g_assert_cmpuint(d.writes, ==, 0);
		g_assert_cmpuint(d.reads, ==, 0);
		g_assert_cmpuint(d.discards, ==, 0);
		g_assert_cmpuint(d.write_bytes, ==, 0);
		g_assert_cmpuint(d.errors, ==, 0);
		g_assert_cmpuint(d.inflight, ==, 0);
	}

	/* async, with flags that make no difference to a flush */
	probe_init(&p, f->client);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_async(f->client, DMIO_FLUSH, DMIO_REQ_SYNC | DMIO_REQ_FUA, nomem, 3, where, probe_notify,
				 &p),
			==, 0);
	tu_waiter_wait(&p.w, 1);
	g_assert_cmpuint(p.w.bits, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).flushes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 1).flushes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 2).flushes, ==, 1);
	for (int i = 0; i < NDEV; i++) {
		g_assert_cmpuint(delta(f, &sn, i).writes, ==, 0);
		tu_assert_image_filled(f->d.path[i], 0, FILL, 128 * 512);
	}
	g_usleep(20000);
	g_assert_cmpuint(probe_calls(&p), ==, 1);
	tu_waiter_clear(&p.w);
}

/* WRITE|PREFLUSH: every region's device is flushed once, even the empty
 * region's, which gets no write; the data go out only after the flushes. */
static void test_preflush_write(struct fixture *f, gconstpointer data)
{
	size_t len = 8192;
	char *buf = tu_aligned(len);
	struct io_region where[3] = { { f->d.bdev[0], 0, len >> 9 }, { f->d.bdev[1], 0, 0 }, { f->d.bdev[2], 64, len >> 9 } };
	unsigned long bits = ~0UL;
	struct snap sn;
	struct probe p;
	gint64 start;

	(void)data;
	tu_pattern(buf, len, 51);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, DMIO_REQ_PREFLUSH, tu_kmem(buf), 3, where, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).flushes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 0).writes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 0).write_bytes, ==, len);
	g_assert_cmpuint(delta(f, &sn, 1).flushes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 1).writes, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 1).write_bytes, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 2).flushes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 2).writes, ==, 1);
	tu_assert_image_holds(f->d.path[0], 0, buf, len);
	tu_assert_image_filled(f->d.path[1], 0, FILL, len);
	tu_assert_image_holds(f->d.path[2], 64 * 512, buf, len);

	/* Order: hold dev0's flush for 300 ms.  Until it completes no data
	 * piece may be issued, not even to dev2 whose flush is long done. */
	add_fault(f->d.bdev[0], DMIO_FAULT_FLUSH, DMIO_FAULT_DELAY, 0, 0, 300, 0);
	probe_init(&p, f->client);
	tu_pattern(buf, len, 52);
	snap_take(f, &sn);
	start = g_get_monotonic_time();
	g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, DMIO_REQ_PREFLUSH | DMIO_REQ_FUA, tu_kmem(buf), 3, where,
				 probe_notify, &p),
			==, 0);
	sleep_until(start + 100000);
	g_assert_cmpuint(probe_calls(&p), ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).flushes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 2).flushes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 0).writes, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 2).writes, ==, 0);
	tu_waiter_wait(&p.w, 1);
	g_assert_cmpint(p.when - start, >=, 300000);
	g_assert_cmpuint(p.w.bits, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).writes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 1).writes, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 2).writes, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 1).flushes, ==, 1);
	tu_assert_image_holds(f->d.path[0], 0, buf, len);
	tu_assert_image_holds(f->d.path[2], 64 * 512, buf, len);
	tu_waiter_clear(&p.w);
	free(buf);
}

/* ---- 3. FUA --------------------------------------------------------------- */

static void test_fua_write(struct fixture *f, gconstpointer data)
{
	size_t len = 128 * 1024;
	char *buf = tu_aligned(len), *odd = g_malloc(len + 8) + 5;
	struct io_region where[2] = { { f->d.bdev[0], 256, len >> 9 }, { f->d.bdev[1], 0, len >> 9 } };
	unsigned long bits = ~0UL;
	struct snap sn;
	struct probe p;

	(void)data;
	tu_pattern(buf, len, 61);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, DMIO_REQ_FUA, tu_kmem(buf), 2, where, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	for (int i = 0; i < 2; i++) {
		g_assert_cmpuint(delta(f, &sn, i).writes, ==, 1);
		g_assert_cmpuint(delta(f, &sn, i).write_bytes, ==, len);
		g_assert_cmpuint(delta(f, &sn, i).errors, ==, 0);
	}
	tu_assert_image_holds(f->d.path[0], 256 * 512, buf, len);
	tu_assert_image_holds(f->d.path[1], 0, buf, len);

	/* async, through bounce pages */
	probe_init(&p, f->client);
	tu_pattern(odd, len, 62);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, DMIO_REQ_FUA | DMIO_REQ_SYNC, tu_kmem(odd), 2, where, probe_notify,
				 &p),
			==, 0);
	tu_waiter_wait(&p.w, 1);
	g_assert_cmpuint(p.w.bits, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).write_bytes, ==, len);
	g_assert_cmpuint(delta(f, &sn, 1).write_bytes, ==, len);
	tu_assert_image_holds(f->d.path[0], 256 * 512, odd, len);
	tu_assert_image_holds(f->d.path[1], 0, odd, len);
	tu_assert_image_filled(f->d.path[0], 255 * 512, FILL, 512);
	tu_assert_image_filled(f->d.path[0], 256 * 512 + len, FILL, 512);
	tu_waiter_clear(&p.w);
	free(buf);
	g_free(odd - 5);
}

/* ---- 4. discard and write-zeroes ------------------------------------------ */

static void test_deallocate(struct fixture *f, gconstpointer data)
{
	int op = GPOINTER_TO_INT(data);
	size_t span = 64 * 1024;
	char *pat = g_malloc(span), *zero = g_malloc0(span);
	struct io_region where[4] = {
		{ f->d.bdev[0], 33, 70 },                     /* starts and ends inside file system blocks */
		{ f->d.bdev[1], IMG_SECTORS - 8, 16 },       /* straddles the end */
		{ f->d.bdev[2], 0, 0 },                       /* empty */
		{ f->d.bdev[2], 64, 64 },                     /* block aligned */
	};
	unsigned long bits = 0;
	struct snap sn;
	struct probe p;
	struct stat st;

	tu_pattern(pat, span, 71);
	tu_raw_write(f->d.path[0], 0, pat, span);
	tu_raw_write(f->d.path[2], 0, pat, span);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_sync(f->client, op, 0, tu_kmem(NULL), 4, where, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1UL << 1);

	tu_assert_image_holds(f->d.path[0], 0, pat, 33 * 512);
	tu_assert_image_holds(f->d.path[0], 33 * 512, zero, 70 * 512);
	tu_assert_image_holds(f->d.path[0], 103 * 512, pat + 103 * 512, span - 103 * 512);
	tu_assert_image_holds(f->d.path[2], 0, pat, 32 * 1024);
	tu_assert_image_holds(f->d.path[2], 32 * 1024, zero, 32 * 1024);
	tu_assert_image_filled(f->d.path[2], span, FILL, 4096);
	tu_assert_image_filled(f->d.path[1], (IMG_SECTORS - 8) * 512, FILL, 4096);
	g_assert_cmpint(stat(f->d.path[1], &st), ==, 0);
	g_assert_cmpuint(st.st_size, ==, IMG_BYTES);

	g_assert_cmpuint(delta(f, &sn, 0).discards, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 1).discards, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 2).discards, ==, 1);
	for (int i = 0; i < NDEV; i++) {
		g_assert_cmpuint(delta(f, &sn, i).writes, ==, 0);
		g_assert_cmpuint(delta(f, &sn, i).write_bytes, ==, 0);
		g_assert_cmpuint(delta(f, &sn, i).reads, ==, 0);
	}

	/* async, with FUA, over a range that had data written through libdmio */
	{
		char *buf = tu_aligned(span);
		struct io_region r = { f->d.bdev[1], 1000, span >> 9 };
		struct io_region part = { f->d.bdev[1], 1008, 16 };

		tu_pattern(buf, span, 72);
		g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, NULL), ==, 0);
		probe_init(&p, f->client);
		snap_take(f, &sn);
		g_assert_cmpint(tu_io_async(f->client, op, DMIO_REQ_FUA, tu_kmem(NULL), 1, &part, probe_notify, &p), ==, 0);
		tu_waiter_wait(&p.w, 1);
		g_assert_cmpuint(p.w.bits, ==, 0);
		g_assert_cmpuint(delta(f, &sn, 1).discards, ==, 1);
		/* libdmio reads it back as zeroes too, not a stale cached copy */
		memset(buf, 0xEE, span);
		g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, tu_kmem(buf), 1, &r, NULL), ==, 0);
		tu_assert_bytes(buf + 8 * 512, 0, 16 * 512);
		tu_pattern(pat, span, 72);
		g_assert_cmpmem(buf, 8 * 512, pat, 8 * 512);
		g_assert_cmpmem(buf + 24 * 512, span - 24 * 512, pat + 24 * 512, span - 24 * 512);
		tu_waiter_clear(&p.w);
		free(buf);
	}
	g_free(pat);
	g_free(zero);
}

/* ---- 5. splitting at the device's limit ------------------------------------ */

static void test_split(struct fixture *f, gconstpointer data)
{
	size_t len = 256 * 1024;
	char *buf = tu_aligned(len), *back = tu_aligned(len);
	struct io_region where = { f->d.bdev[0], 1024, len >> 9 };
	unsigned int dflt = dmio_bdev_max_io_sectors(f->d.bdev[0]);
	unsigned long bits = ~0UL;
	struct snap sn;

	(void)data;
	g_assert_cmpuint(dflt, >=, 8);
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], 0), ==, -EINVAL);
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], (1u << 21) + 1), ==, -EINVAL);
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], UINT_MAX), ==, -EINVAL);
	g_assert_cmpuint(dmio_bdev_max_io_sectors(f->d.bdev[0]), ==, dflt);
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], 1u << 21), ==, 0);
	g_assert_cmpuint(dmio_bdev_max_io_sectors(f->d.bdev[0]), ==, 1u << 21);
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], 8), ==, 0);
	g_assert_cmpuint(dmio_bdev_max_io_sectors(f->d.bdev[0]), ==, 8);

	tu_pattern(buf, len, 81);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &where, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).writes, ==, 64);
	g_assert_cmpuint(delta(f, &sn, 0).write_bytes, ==, len);
	tu_assert_image_holds(f->d.path[0], 1024 * 512, buf, len);

	memset(back, 0, len);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, tu_kmem(back), 1, &where, &bits), ==, 0);
	g_assert_cmpuint(delta(f, &sn, 0).reads, ==, 64);
	g_assert_cmpuint(delta(f, &sn, 0).read_bytes, ==, len);
	g_assert_cmpmem(back, len, buf, len);

	/* bounced memory splits the same way */
	{
		char *odd = g_malloc(len + 2) + 1;

		tu_pattern(odd, len, 82);
		snap_take(f, &sn);
		g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(odd), 1, &where, &bits), ==, 0);
		g_assert_cmpuint(delta(f, &sn, 0).writes, ==, 64);
		tu_assert_image_holds(f->d.path[0], 1024 * 512, odd, len);
		g_free(odd - 1);
	}

	/* 512-byte pieces: one request needs more pieces than the client's
	 * whole pool, so it waits for its own pieces to come back */
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], 1), ==, 0);
	g_assert_cmpuint(len >> 9, >, f->client->pieces.total);
	for (int b = 0; b < 2; b++) {
		char *raw = g_malloc(len + 8), *mem = b ? raw + 5 : buf;
		struct probe p;

		probe_init(&p, f->client);
		tu_pattern(mem, len, 83 + (uint32_t)b);
		snap_take(f, &sn);
		g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, 0, tu_kmem(mem), 1, &where, probe_notify, &p), ==, 0);
		tu_waiter_wait(&p.w, 1);
		g_assert_cmpuint(p.w.bits, ==, 0);
		g_assert_cmpuint(delta(f, &sn, 0).writes, ==, len >> 9);
		tu_assert_image_holds(f->d.path[0], 1024 * 512, mem, len);
		memset(back, 0, len);
		g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, tu_kmem(back), 1, &where, &bits), ==, 0);
		g_assert_cmpuint(delta(f, &sn, 0).reads, ==, len >> 9);
		g_assert_cmpmem(back, len, mem, len);
		tu_waiter_clear(&p.w);
		g_free(raw);
	}
	free(buf);
	free(back);
}

/* One failing 4 KiB piece in the middle: the region's bit is set, every other
 * piece still lands (no cancel), and the other leg is whole. */
static void test_split_fault_write(struct fixture *f, gconstpointer data)
{
	size_t len = 256 * 1024, piece = 4096;
	char *buf = tu_aligned(len);
	struct io_region where[2] = { { f->d.bdev[0], 1024, len >> 9 }, { f->d.bdev[1], 0, len >> 9 } };
	unsigned long bits = 0;
	struct snap sn;
	int id;

	(void)data;
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], 8), ==, 0);
	id = add_fault(f->d.bdev[0], DMIO_FAULT_WRITE, DMIO_FAULT_EIO, 1024 + 32 * 8, 8, 0, 0);
	tu_pattern(buf, len, 91);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 2, where, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1UL << 0);
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 1);
	g_assert_cmpuint(delta(f, &sn, 0).writes, ==, 63);
	g_assert_cmpuint(delta(f, &sn, 0).write_bytes, ==, len - piece);
	g_assert_cmpuint(delta(f, &sn, 0).errors, ==, 1);
	g_assert_cmpuint(delta(f, &sn, 1).errors, ==, 0);
	tu_assert_image_holds(f->d.path[0], 1024 * 512, buf, 32 * piece);
	tu_assert_image_filled(f->d.path[0], 1024 * 512 + 32 * piece, FILL, piece);
	tu_assert_image_holds(f->d.path[0], 1024 * 512 + 33 * piece, buf + 33 * piece, len - 33 * piece);
	tu_assert_image_holds(f->d.path[1], 0, buf, len);
	free(buf);
}

/* Reads likewise: the failed pieces' memory is zero, the rest holds data;
 * direct and bounced memory, a fault straddling two pieces. */
static void test_split_fault_read(struct fixture *f, gconstpointer data)
{
	size_t len = 256 * 1024, piece = 4096;
	char *want = g_malloc(len);
	char *direct = tu_aligned(len), *odd = g_malloc(len + 4) + 3;
	char *bufs[2] = { direct, odd };
	struct io_region where = { f->d.bdev[0], 1024, len >> 9 };
	unsigned long bits = 0;
	struct snap sn;
	int id;

	(void)data;
	tu_pattern(want, len, 101);
	tu_raw_write(f->d.path[0], 1024 * 512, want, len);
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[0], 8), ==, 0);

	/* one piece: sync */
	id = add_fault(f->d.bdev[0], DMIO_FAULT_READ, DMIO_FAULT_EIO, 1024 + 32 * 8, 8, 0, 0);
	for (int b = 0; b < 2; b++) {
		memset(bufs[b], 0xAB, len);
		snap_take(f, &sn);
		g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, tu_kmem(bufs[b]), 1, &where, &bits), ==, -EIO);
		g_assert_cmpuint(bits, ==, 1);
		g_assert_cmpuint(delta(f, &sn, 0).reads, ==, 63);
		g_assert_cmpuint(delta(f, &sn, 0).read_bytes, ==, len - piece);
		g_assert_cmpuint(delta(f, &sn, 0).errors, ==, 1);
		g_assert_cmpmem(bufs[b], 32 * piece, want, 32 * piece);
		tu_assert_bytes(bufs[b] + 32 * piece, 0, piece);
		g_assert_cmpmem(bufs[b] + 33 * piece, len - 33 * piece, want + 33 * piece, len - 33 * piece);
	}
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 2);
	g_assert_cmpint(dmio_fault_remove(f->d.bdev[0], id), ==, 0);

	/* a rule straddling pieces 31 and 32: async */
	id = add_fault(f->d.bdev[0], DMIO_FAULT_READ, DMIO_FAULT_EIO, 1024 + 32 * 8 - 4, 8, 0, 0);
	for (int b = 0; b < 2; b++) {
		struct probe p;

		probe_init(&p, f->client);
		memset(bufs[b], 0xAB, len);
		snap_take(f, &sn);
		g_assert_cmpint(tu_io_async(f->client, DMIO_READ, 0, tu_kmem(bufs[b]), 1, &where, probe_notify, &p), ==, 0);
		tu_waiter_wait(&p.w, 1);
		g_assert_cmpuint(p.w.bits, ==, 1);
		g_assert_cmpuint(delta(f, &sn, 0).reads, ==, 62);
		g_assert_cmpuint(delta(f, &sn, 0).errors, ==, 2);
		g_assert_cmpmem(bufs[b], 31 * piece, want, 31 * piece);
		tu_assert_bytes(bufs[b] + 31 * piece, 0, 2 * piece);
		g_assert_cmpmem(bufs[b] + 33 * piece, len - 33 * piece, want + 33 * piece, len - 33 * piece);
		tu_waiter_clear(&p.w);
	}
	g_assert_cmpint(dmio_fault_hits(f->d.bdev[0], id), ==, 4);
	tu_assert_image_holds(f->d.path[0], 1024 * 512, want, len);
	free(direct);
	g_free(odd - 3);
	g_free(want);
}

/* ---- 6. the callback runs once, after the last piece ------------------------ */

static void test_callback_after_last_piece(struct fixture *f, gconstpointer data)
{
	size_t len = 32 * 1024;
	char *buf = tu_aligned(len);

	(void)data;
	tu_pattern(buf, len, 111);
	/* hold up one piece of each region in turn; region 2 also fails */
	for (int slow = 0; slow < NDEV; slow++) {
		struct io_region where[NDEV];
		struct snap sn;
		struct probe p;
		gint64 start;

		for (int i = 0; i < NDEV; i++) {
			where[i] = (struct io_region){ f->d.bdev[i], 2048, len >> 9 };
			g_assert_cmpint(dmio_bdev_set_max_io_sectors(f->d.bdev[i], 8), ==, 0);
			dmio_fault_clear(f->d.bdev[i]);
		}
		add_fault(f->d.bdev[slow], DMIO_FAULT_WRITE, DMIO_FAULT_DELAY, 2048 + 3 * 8, 8, 300, 1);
		add_fault(f->d.bdev[2], DMIO_FAULT_WRITE, DMIO_FAULT_EIO, 2048 + 5 * 8, 1, 0, 0);
		probe_init(&p, f->client);
		snap_take(f, &sn);
		start = g_get_monotonic_time();
		g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, 0, tu_kmem(buf), NDEV, where, probe_notify, &p), ==, 0);
		sleep_until(start + 100000);
		g_assert_cmpuint(probe_calls(&p), ==, 0);
		/* everything was issued; soon only the held piece is outstanding */
		g_assert_cmpuint(delta(f, &sn, 0).writes, ==, 8);
		g_assert_cmpuint(delta(f, &sn, 1).writes, ==, 8);
		g_assert_cmpuint(delta(f, &sn, 2).writes, ==, 7);
		while (probe_calls(&p) == 0 &&
		       delta(f, &sn, 0).inflight + delta(f, &sn, 1).inflight + delta(f, &sn, 2).inflight > 1)
			g_usleep(1000);
		g_assert_cmpuint(delta(f, &sn, slow).inflight, ==, 1);
		g_assert_cmpuint(delta(f, &sn, (slow + 1) % NDEV).inflight, ==, 0);
		g_assert_cmpuint(delta(f, &sn, (slow + 2) % NDEV).inflight, ==, 0);
		g_assert_cmpuint(probe_calls(&p), ==, 0);
		tu_waiter_wait(&p.w, 1);
		g_assert_cmpint(p.when - start, >=, 300000);
		g_assert_cmpuint(p.w.bits, ==, 1UL << 2);
		g_assert_cmpint(p.on_thread, ==, 1);
		g_usleep(50000);
		g_assert_cmpuint(probe_calls(&p), ==, 1);
		for (int i = 0; i < NDEV; i++)
			g_assert_cmpuint(delta(f, &sn, i).inflight, ==, 0);
		tu_waiter_clear(&p.w);
	}
	free(buf);
}

/* ---- 7. calls from inside a callback --------------------------------------- */

struct reenter {
	struct dm_io_client *client; /* NULL: the default client */
	struct io_region where;
	char *buf;
	int sync_ret;
	struct tu_waiter done;
};

static void reenter_sync_notify(unsigned long error, void *context)
{
	struct reenter *r = context;

	r->sync_ret = tu_io_sync(r->client, DMIO_WRITE, 0, tu_kmem(r->buf), 1, &r->where, NULL);
	tu_waiter_notify(error, &r->done);
}

static void seed_sync_notify(unsigned long error, void *context)
{
	struct reenter *r = context;

	r->sync_ret = dm_io_sync_vm(1, &r->where, DMIO_WRITE, r->buf, NULL);
	tu_waiter_notify(error, &r->done);
}

static void test_sync_from_callback(struct fixture *f, gconstpointer data)
{
	char *first = tu_aligned(4096), *second = tu_aligned(4096);
	struct io_region where = { f->d.bdev[0], 0, 8 };
	struct reenter r = { .client = f->client, .where = { f->d.bdev[1], 0, 8 }, .sync_ret = 1 };
	struct snap sn;

	(void)data;
	tu_pattern(first, 4096, 121);
	tu_pattern(second, 4096, 122);
	r.buf = second;
	tu_waiter_init(&r.done);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, 0, tu_kmem(first), 1, &where, reenter_sync_notify, &r), ==, 0);
	tu_waiter_wait(&r.done, 1);
	g_assert_cmpuint(r.done.bits, ==, 0);
	g_assert_cmpint(r.sync_ret, ==, -EDEADLK);
	g_assert_cmpuint(delta(f, &sn, 1).writes, ==, 0); /* the refused call did nothing */
	tu_assert_image_filled(f->d.path[1], 0, FILL, 4096);
	tu_assert_image_holds(f->d.path[0], 0, first, 4096);

	/* the client still works afterwards */
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(second), 1, &r.where, NULL), ==, 0);
	tu_assert_image_holds(f->d.path[1], 0, second, 4096);

	/* the default client through the seed's calls: the same rule */
	r.client = NULL;
	r.sync_ret = 1;
	r.where = (struct io_region){ f->d.bdev[2], 0, 8 };
	g_assert_cmpint(dm_io_async_vm(1, &where, DMIO_WRITE, first, seed_sync_notify, &r), ==, 0);
	tu_waiter_wait(&r.done, 2);
	g_assert_cmpint(r.sync_ret, ==, -EDEADLK);
	tu_assert_image_filled(f->d.path[2], 0, FILL, 4096);

	/* a request with no I/O completes inside dm_io(), on the caller's
	 * thread: there a sync call is fine */
	{
		struct io_region empty = { f->d.bdev[0], 0, 0 };

		r.client = f->client;
		r.sync_ret = 1;
		g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, 0, tu_kmem(NULL), 1, &empty, reenter_sync_notify, &r), ==,
				0);
		g_assert_cmpuint(r.done.calls, ==, 3); /* already ran */
		g_assert_cmpint(r.sync_ret, ==, 0);
		tu_assert_image_holds(f->d.path[2], 0, second, 4096);
	}
	tu_waiter_clear(&r.done);
	free(first);
	free(second);
}

#define CHAIN 8

struct chain {
	struct dm_io_client *client;
	struct block_device *bdev;
	char *buf; /* CHAIN pages */
	int link;  /* the request now running */
	int ret[CHAIN];
	unsigned long bits[CHAIN];
	gint thread_ok;
	struct tu_waiter done;
};

static void chain_notify(unsigned long error, void *context)
{
	struct chain *c = context;
	int n = c->link;

	c->bits[n] = error;
	if (client_on_completion_thread(c->client))
		c->thread_ok++;
	if (n + 1 < CHAIN) {
		struct io_region where = { c->bdev, 8 * (sector_t)(n + 1), 8 };

		c->link = n + 1;
		/* every link's memory is misaligned: it needs bounce pages from
		 * the pool, taken on the completion thread; links 3 and 6 also
		 * pre-flush, a second phase started from there */
		c->ret[n + 1] = tu_io_async(c->client, DMIO_WRITE, (n + 1) % 3 ? 0 : DMIO_REQ_PREFLUSH,
					 tu_kmem(c->buf + (size_t)(n + 1) * 4097), 1, &where, chain_notify, c);
		if (c->ret[n + 1])
			tu_waiter_notify(~0UL, &c->done);
		return;
	}
	tu_waiter_notify(0, &c->done);
}

/* An async call from inside a callback works: a chain of requests, each
 * submitted by the previous one's callback. */
static void test_async_chain_from_callback(struct fixture *f, gconstpointer data)
{
	struct chain c = { .client = f->client, .bdev = f->d.bdev[1] };
	struct io_region where = { f->d.bdev[1], 0, 8 };
	char *raw = g_malloc((size_t)CHAIN * 4097 + 4096);
	struct snap sn;

	(void)data;
	c.buf = raw;
	tu_pattern(c.buf, (size_t)CHAIN * 4097 + 4096, 131);
	tu_waiter_init(&c.done);
	snap_take(f, &sn);
	c.ret[0] = tu_io_async(f->client, DMIO_WRITE, 0, tu_kmem(c.buf), 1, &where, chain_notify, &c);
	g_assert_cmpint(c.ret[0], ==, 0);
	tu_waiter_wait(&c.done, 1);
	g_assert_cmpuint(c.done.bits, ==, 0);
	g_assert_cmpint(c.link, ==, CHAIN - 1);
	g_assert_cmpint(c.thread_ok, ==, CHAIN);
	for (int i = 0; i < CHAIN; i++) {
		g_assert_cmpint(c.ret[i], ==, 0);
		g_assert_cmpuint(c.bits[i], ==, 0);
		tu_assert_image_holds(f->d.path[1], 8 * 512 * (uint64_t)i, c.buf + (size_t)i * 4097, 4096);
	}
	g_assert_cmpuint(delta(f, &sn, 1).writes, ==, CHAIN);
	g_assert_cmpuint(delta(f, &sn, 1).flushes, ==, 2); /* links 3 and 6 */
	tu_assert_image_filled(f->d.path[1], 8 * 512 * CHAIN, FILL, 4096);
	tu_waiter_clear(&c.done);
	g_free(raw);
}

/* A watched descriptor is served by the client's completion thread: each
 * byte written to the pipe is read there, and a 'w' submits a write from
 * there, whose callback runs on the same thread; a 'q' stops the watch.
 * Unwatching (fd -1) returns with no call of fn running or to come. */
struct watch {
	struct dm_io_client *client;
	struct io_region where;
	char *buf;
	int fd;
	gint calls, on_thread, submitted;
	struct probe written;
	struct tu_waiter stopped;
};

static int watch_fn(void *context)
{
	struct watch *w = context;
	char c;

	g_atomic_int_inc(&w->calls);
	if (client_on_completion_thread(w->client))
		g_atomic_int_inc(&w->on_thread);
	g_assert_cmpint(read(w->fd, &c, 1), ==, 1);
	if (c == 'w') {
		g_assert_cmpint(tu_io_async(w->client, DMIO_WRITE, 0, tu_kmem(w->buf), 1, &w->where, probe_notify,
					    &w->written),
				==, 0);
		g_atomic_int_inc(&w->submitted);
	}
	if (c == 'q') {
		tu_waiter_notify(0, &w->stopped);
		return 1;
	}
	return 0;
}

static void test_client_watch(struct fixture *f, gconstpointer data)
{
	struct watch w = { .client = f->client, .where = { f->d.bdev[0], 64, 8 } };
	int p[2];

	(void)data;
	g_assert_cmpint(pipe(p), ==, 0);
	w.fd = p[0];
	w.buf = tu_aligned(4096);
	tu_pattern(w.buf, 4096, 77);
	probe_init(&w.written, f->client);
	tu_waiter_init(&w.stopped);
	g_assert_cmpint(dm_io_client_watch(NULL, p[0], watch_fn, &w), ==, -EINVAL);
	g_assert_cmpint(dm_io_client_watch(f->client, p[0], NULL, &w), ==, -EINVAL);
	g_assert_cmpint(dm_io_client_watch(f->client, p[0], watch_fn, &w), ==, 0);

	g_assert_cmpint(write(p[1], "w", 1), ==, 1);
	tu_waiter_wait(&w.written.w, 1);
	g_assert_cmpuint(w.written.w.bits, ==, 0);
	g_assert_cmpint(g_atomic_int_get(&w.written.on_thread), ==, 1);
	tu_assert_image_holds(f->d.path[0], 64 * 512, w.buf, 4096);

	g_assert_cmpint(write(p[1], "q", 1), ==, 1);
	tu_waiter_wait(&w.stopped, 1);
	g_assert_cmpint(write(p[1], "x", 1), ==, 1); /* stopped: nobody reads it */
	g_usleep(50 * 1000);
	g_assert_cmpint(g_atomic_int_get(&w.calls), ==, 2);

	/* watch again, then stop from outside: fn is not called after that */
	g_assert_cmpint(dm_io_client_watch(f->client, p[0], watch_fn, &w), ==, 0);
	while (g_atomic_int_get(&w.calls) < 3) /* the 'x' waiting in the pipe */
		g_usleep(1000);
	g_assert_cmpint(dm_io_client_watch(f->client, -1, NULL, NULL), ==, 0);
	g_assert_cmpint(write(p[1], "w", 1), ==, 1);
	g_usleep(50 * 1000);
	g_assert_cmpint(g_atomic_int_get(&w.calls), ==, 3);
	g_assert_cmpint(g_atomic_int_get(&w.on_thread), ==, 3);
	g_assert_cmpint(g_atomic_int_get(&w.submitted), ==, 1);
	close(p[0]);
	close(p[1]);
	tu_waiter_clear(&w.written.w);
	tu_waiter_clear(&w.stopped);
	free(w.buf);
}

/* Two clients watch one descriptor: each byte is read by one of them,
 * and when both are idle only one wakes for it (EPOLLEXCLUSIVE): the
 * other's thread sleeps on.  A client that stops watching is not called
 * again and the other goes on alone. */
struct shared_watch {
	struct dm_io_client *client[2];
	int fd;
	gint calls[2], bytes[2], tid[2];
};

struct shared_watcher {
	struct shared_watch *sw;
	int which;
};

static int shared_watch_fn(void *context)
{
	struct shared_watcher *me = context;
	struct shared_watch *sw = me->sw;
	char c;

	g_atomic_int_inc(&sw->calls[me->which]);
	g_assert_true(client_on_completion_thread(sw->client[me->which]));
	g_atomic_int_set(&sw->tid[me->which], (gint)gettid());
	if (read(sw->fd, &c, 1) == 1)
		g_atomic_int_inc(&sw->bytes[me->which]);
	return 0;
}

static int shared_bytes(struct shared_watch *sw)
{
	return g_atomic_int_get(&sw->bytes[0]) + g_atomic_int_get(&sw->bytes[1]);
}

/* Write one byte and wait until one of the watchers has read it. */
static void shared_feed_one(struct shared_watch *sw, int wfd)
{
	int before = shared_bytes(sw);

	g_assert_cmpint(write(wfd, "b", 1), ==, 1);
	while (shared_bytes(sw) == before)
		g_usleep(100);
}

/* How often a thread of this process went to sleep. */
static long thread_sleeps(int tid)
{
	char *path = g_strdup_printf("/proc/self/task/%d/status", tid), *text = NULL, *at;
	long n = -1;

	if (g_file_get_contents(path, &text, NULL, NULL) && (at = strstr(text, "voluntary_ctxt_switches:")))
		n = strtol(at + strlen("voluntary_ctxt_switches:"), NULL, 10);
	g_free(text);
	g_free(path);
	return n;
}

static void test_client_watch_shared(struct fixture *f, gconstpointer data)
{
	enum { BYTES = 200 };
	struct shared_watch sw = { .client = { f->client, dm_io_client_create(0) } };
	struct shared_watcher w0 = { &sw, 0 }, w1 = { &sw, 1 };
	int p[2], calls1;
	long sleeps1;

	(void)data;
	g_assert_nonnull(sw.client[1]);
	g_assert_cmpint(pipe2(p, O_NONBLOCK), ==, 0);
	sw.fd = p[0];
	/* Each thread makes itself known, alone; then client 0 watches
	 * first, so the kernel offers it each byte first. */
	g_assert_cmpint(dm_io_client_watch(sw.client[1], p[0], shared_watch_fn, &w1), ==, 0);
	shared_feed_one(&sw, p[1]);
	g_assert_cmpint(dm_io_client_watch(sw.client[1], -1, NULL, NULL), ==, 0);
	g_assert_cmpint(dm_io_client_watch(sw.client[0], p[0], shared_watch_fn, &w0), ==, 0);
	shared_feed_one(&sw, p[1]);
	g_assert_cmpint(dm_io_client_watch(sw.client[1], p[0], shared_watch_fn, &w1), ==, 0);
	g_assert_cmpint(g_atomic_int_get(&sw.bytes[0]), ==, 1);
	g_assert_cmpint(g_atomic_int_get(&sw.bytes[1]), ==, 1);

	sleeps1 = thread_sleeps(g_atomic_int_get(&sw.tid[1]));
	g_assert_cmpint(sleeps1, >=, 0);
	for (int i = 0; i < BYTES; i++)
		shared_feed_one(&sw, p[1]);
	g_assert_cmpint(shared_bytes(&sw), ==, BYTES + 2);
	/* Woken for every byte, client 1's thread would sleep again as
	 * often; exclusive, it wakes only when client 0 is busy. */
	g_assert_cmpint(thread_sleeps(g_atomic_int_get(&sw.tid[1])) - sleeps1, <, BYTES / 2);

	g_assert_cmpint(dm_io_client_watch(sw.client[0], -1, NULL, NULL), ==, 0);
	calls1 = g_atomic_int_get(&sw.calls[0]);
	for (int i = 0; i < 10; i++)
		shared_feed_one(&sw, p[1]);
	g_assert_cmpint(g_atomic_int_get(&sw.calls[0]), ==, calls1);
	g_assert_cmpint(shared_bytes(&sw), ==, BYTES + 12);
	g_assert_cmpint(dm_io_client_watch(sw.client[1], -1, NULL, NULL), ==, 0);
	dm_io_client_destroy(sw.client[1]);
	close(p[0]);
	close(p[1]);
}

/* Destroying a client from its own callback is refused (it would wait for
 * itself) and logged; resizing from there works; the client lives on. */
struct self_destroy {
	struct dm_io_client *client;
	int resize_ret;
	struct tu_waiter done;
};

static void self_destroy_notify(unsigned long error, void *context)
{
	struct self_destroy *sd = context;

	dm_io_client_destroy(sd->client);
	sd->resize_ret = dm_io_client_resize(256, sd->client);
	tu_waiter_notify(error, &sd->done);
}

struct log_capture {
	GMutex lock;
	int errors;
	char last[512];
};

static void capture_log(int level, const char *message, void *context)
{
	struct log_capture *lc = context;

	g_mutex_lock(&lc->lock);
	if (level == DMIO_LOG_ERR)
		lc->errors++;
	g_strlcpy(lc->last, message, sizeof(lc->last));
	g_mutex_unlock(&lc->lock);
}

static void test_destroy_from_callback(struct fixture *f, gconstpointer data)
{
	struct dm_io_client *c = dm_io_client_create(0);
	struct self_destroy sd = { .client = c, .resize_ret = 1 };
	struct io_region where = { f->d.bdev[0], 0, 8 };
	char *buf = tu_aligned(4096), *back = tu_aligned(4096);
	struct log_capture lc = { .errors = 0 };
	unsigned int nfree;

	(void)data;
	g_mutex_init(&lc.lock);
	tu_waiter_init(&sd.done);
	tu_pattern(buf, 4096, 191);
	dmio_set_log_fn(capture_log, &lc);
	g_assert_cmpint(tu_io_async(c, DMIO_WRITE, 0, tu_kmem(buf), 1, &where, self_destroy_notify, &sd), ==, 0);
	tu_waiter_wait(&sd.done, 1);
	dmio_set_log_fn(NULL, NULL);
	g_assert_cmpuint(sd.done.bits, ==, 0);
	g_assert_cmpint(lc.errors, ==, 1);
	g_assert_nonnull(strstr(lc.last, "refused"));
	g_assert_cmpint(sd.resize_ret, ==, 0);
	g_assert_cmpuint(pool_total_pages(c, &nfree), >=, 256);
	/* still alive and working */
	g_assert_cmpint(tu_io_sync(c, DMIO_READ, 0, tu_kmem(back), 1, &where, NULL), ==, 0);
	g_assert_cmpmem(back, 4096, buf, 4096);
	dm_io_client_destroy(c);
	tu_waiter_clear(&sd.done);
	g_mutex_clear(&lc.lock);
	free(buf);
	free(back);
}

/* A callback fires off more requests than the client has request objects
 * and pieces: none of the calls blocks or fails, all complete. */
#define BURST 300

struct burst {
	struct dm_io_client *client;
	struct block_device *bdev;
	char *buf;
	int bad_ret;
	gint64 submit_us; /* how long the callback took to submit them all */
	struct tu_waiter first, rest;
};

static void burst_notify(unsigned long error, void *context)
{
	struct burst *b = context;
	gint64 t0 = g_get_monotonic_time();

	for (unsigned int i = 0; i < BURST; i++) {
		struct io_region where = { b->bdev, (sector_t)i * 8, 8 };

		if (tu_io_async(b->client, DMIO_WRITE, 0, tu_kmem(b->buf + (size_t)i * 4096), 1, &where, tu_waiter_notify,
			     &b->rest))
			b->bad_ret++;
	}
	b->submit_us = g_get_monotonic_time() - t0;
	tu_waiter_notify(error, &b->first);
}

static void test_burst_from_callback(struct fixture *f, gconstpointer data)
{
	struct burst b = { .client = f->client, .bdev = f->d.bdev[2] };
	struct io_region where = { f->d.bdev[0], 0, 8 };
	struct snap sn;

	(void)data;
	g_assert_cmpuint(BURST, >, f->client->ios.total);
	g_assert_cmpuint(BURST, >, f->client->pieces.total);
	b.buf = tu_aligned((size_t)BURST * 4096);
	tu_pattern(b.buf, (size_t)BURST * 4096, 201);
	tu_waiter_init(&b.first);
	tu_waiter_init(&b.rest);
	snap_take(f, &sn);
	g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, 0, tu_kmem(b.buf), 1, &where, burst_notify, &b), ==, 0);
	tu_waiter_wait(&b.first, 1);
	tu_waiter_wait(&b.rest, BURST);
	g_assert_cmpint(b.bad_ret, ==, 0);
	g_assert_cmpuint(b.rest.all_bits, ==, 0);
	g_test_message("the callback submitted %d requests in %" G_GINT64_FORMAT " us", BURST, b.submit_us);
	g_assert_cmpuint(delta(f, &sn, 2).writes, ==, BURST);
	tu_assert_image_holds(f->d.path[2], 0, b.buf, (size_t)BURST * 4096);
	g_usleep(20000);
	g_assert_cmpuint(b.rest.calls, ==, BURST);
	tu_waiter_clear(&b.first);
	tu_waiter_clear(&b.rest);
	free(b.buf);
}

/* ---- 8. pool exhaustion and resizing --------------------------------------- */

#define NREQ 64
#define REQ_BYTES (1u << 20)

static unsigned int pool_total(struct dm_io_client *c, struct obj_pool *pool, unsigned int *nfree)
{
	unsigned int total;

	pthread_mutex_lock(&c->lock);
	total = pool->total;
	*nfree = pool->nfree;
	pthread_mutex_unlock(&c->lock);
	return total;
}

/* Request 0's callback notes how many others had finished before it. */
struct first_done {
	struct probe p;
	struct probe *others;
	unsigned int others_before;
};

static void first_notify(unsigned long error, void *context)
{
	struct first_done *fd = context;

	fd->others_before = probe_calls(fd->others);
	probe_notify(error, &fd->p);
}

/* 64 concurrent 1 MiB misaligned requests on a floor-sized client: they park
 * and resume, and never fail.  The first piece is held (300 ms, or 600 ms
 * when resizing) with every bounce page, so all the others must wait; growing the
 * pool lets them go on at once.  Shrinking while they run converges back to
 * the floor. */
static void exhaust(struct fixture *f, bool resize_up)
{
	char *path = tu_image_new(f->dir, "big.img", (uint64_t)NREQ * REQ_BYTES, 0);
	struct block_device *big = dmio_bdev_open(path, O_RDWR);
	struct dm_io_client *c = dm_io_client_create(0);
	char *raw = g_malloc((size_t)NREQ * REQ_BYTES + 8), *src = raw + 1;
	char *raw2 = g_malloc((size_t)NREQ * REQ_BYTES + 8), *dst = raw2 + 3;
	char *chunk = g_malloc(REQ_BYTES);
	unsigned int floor, total, nfree;
	struct dmio_bdev_stats before, d;
	struct first_done first;
	struct probe p;
	gint64 start;

	g_assert_nonnull(big);
	g_assert_nonnull(c);
	floor = pool_total(c, &c->pages, &nfree);
	g_assert_cmpuint(floor, <, REQ_BYTES / DMIO_PAGE_SIZE);
	tu_pattern(src, (size_t)NREQ * REQ_BYTES, 141);
	probe_init(&p, c);
	probe_init(&first.p, c);
	first.others = &p;
	add_fault(big, DMIO_FAULT_WRITE, DMIO_FAULT_DELAY, 0, 0, resize_up ? 600 : 300, 1);
	dmio_bdev_get_stats(big, &before);
	start = g_get_monotonic_time();
	for (unsigned int i = 0; i < NREQ; i++) {
		struct io_region where = { big, (sector_t)i * (REQ_BYTES >> 9), REQ_BYTES >> 9 };

		g_assert_cmpint(tu_io_async(c, DMIO_WRITE, 0, tu_kmem(src + (size_t)i * REQ_BYTES), 1, &where,
					 i ? probe_notify : first_notify, i ? (void *)&p : (void *)&first),
				==, 0);
	}
	sleep_until(start + 100000);
	d = tu_stats_since(big, &before);
	if (!resize_up) {
		/* the held piece has every bounce page: nothing else went out */
		g_assert_cmpuint(d.writes, ==, 1);
		g_assert_cmpuint(d.write_bytes, ==, (uint64_t)floor * DMIO_PAGE_SIZE);
		g_assert_cmpuint(probe_calls(&p) + probe_calls(&first.p), ==, 0);
		g_assert_cmpint(dm_io_client_resize(0, c), ==, 0);
	} else {
		g_assert_cmpuint(d.writes, ==, 1);
		g_assert_cmpuint(probe_calls(&p) + probe_calls(&first.p), ==, 0);
		/* parked requests resume now, while the first piece is held */
		g_assert_cmpint(dm_io_client_resize(4096, c), ==, 0);
		while (probe_calls(&p) == 0 && probe_calls(&first.p) == 0)
			g_usleep(1000);
		/* and shrink while they run */
		g_assert_cmpint(dm_io_client_resize(16, c), ==, 0);
		g_assert_cmpint(dm_io_client_resize(1024, c), ==, 0);
		g_assert_cmpint(dm_io_client_resize(0, c), ==, 0);
	}
	tu_waiter_wait(&first.p.w, 1);
	tu_waiter_wait(&p.w, NREQ - 1);
	if (resize_up) /* others finished while request 0 was held up */
		g_assert_cmpuint(first.others_before, >, 0);
	g_assert_cmpuint(first.p.w.bits, ==, 0);
	g_assert_cmpuint(p.w.all_bits, ==, 0);
	g_assert_cmpint(first.p.on_thread, ==, 1);
	g_assert_cmpint(p.on_thread, ==, NREQ - 1);
	d = tu_stats_since(big, &before);
	g_assert_cmpuint(d.write_bytes, ==, (uint64_t)NREQ * REQ_BYTES);
	g_assert_cmpuint(d.errors, ==, 0);
	for (unsigned int i = 0; i < NREQ; i++) {
		tu_raw_read(path, (uint64_t)i * REQ_BYTES, chunk, REQ_BYTES);
		if (memcmp(chunk, src + (size_t)i * REQ_BYTES, REQ_BYTES))
			g_assert_cmpuint(i, ==, NREQ); /* names the request whose data is wrong */
	}

	/* and read it all back the same way */
	dmio_fault_clear(big);
	memset(dst, 0, (size_t)NREQ * REQ_BYTES);
	for (unsigned int i = 0; i < NREQ; i++) {
		struct io_region where = { big, (sector_t)i * (REQ_BYTES >> 9), REQ_BYTES >> 9 };

		g_assert_cmpint(tu_io_async(c, DMIO_READ, 0, tu_kmem(dst + (size_t)i * REQ_BYTES), 1, &where, probe_notify,
					 &p),
				==, 0);
	}
	tu_waiter_wait(&p.w, 2 * NREQ - 1);
	g_assert_cmpuint(p.w.all_bits, ==, 0);
	g_assert_true(memcmp(dst, src, (size_t)NREQ * REQ_BYTES) == 0);
	g_usleep(20000);
	g_assert_cmpuint(probe_calls(&p), ==, 2 * NREQ - 1);
	g_assert_cmpuint(probe_calls(&first.p), ==, 1);

	/* idle: every pool full again, and back at its floor */
	g_assert_cmpuint(pool_total(c, &c->pages, &nfree), ==, floor);
	g_assert_cmpuint(nfree, ==, floor);
	total = pool_total(c, &c->pieces, &nfree);
	g_assert_cmpuint(nfree, ==, total);
	total = pool_total(c, &c->ios, &nfree);
	g_assert_cmpuint(nfree, ==, total);
	pthread_mutex_lock(&c->lock);
	g_assert_cmpuint(c->active_ios, ==, 0);
	g_assert_null(c->waitq_head);
	pthread_mutex_unlock(&c->lock);

	tu_waiter_clear(&p.w);
	tu_waiter_clear(&first.p.w);
	dm_io_client_destroy(c);
	dmio_bdev_close(big);
	g_free(raw);
	g_free(raw2);
	g_free(chunk);
	g_free(path);
}

static void test_pool_exhaustion(struct fixture *f, gconstpointer data)
{
	(void)data;
	exhaust(f, false);
}

static void test_pool_resize_under_io(struct fixture *f, gconstpointer data)
{
	(void)data;
	exhaust(f, true);
}

static void test_pool_resize_idle(struct fixture *f, gconstpointer data)
{
	size_t len = 1 << 20;
	char *raw = g_malloc(len + 8), *buf = raw + 7, *back = g_malloc(len);
	struct io_region where = { f->d.bdev[2], 0, len >> 9 };
	unsigned int floor, pieces_floor, total, nfree;

	(void)data;
	floor = pool_total(f->client, &f->client->pages, &nfree);
	pieces_floor = pool_total(f->client, &f->client->pieces, &nfree);
	g_assert_cmpint(dm_io_client_resize(4096, f->client), ==, 0);
	total = pool_total(f->client, &f->client->pages, &nfree);
	g_assert_cmpuint(total, >=, 4096);
	g_assert_cmpuint(nfree, ==, total);
	g_assert_cmpuint(pool_total(f->client, &f->client->pieces, &nfree), >=, pieces_floor);
	tu_pattern(buf, len, 151);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &where, NULL), ==, 0);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, tu_kmem(back), 1, &where, NULL), ==, 0);
	g_assert_cmpmem(back, len, buf, len);

	g_assert_cmpint(dm_io_client_resize(0, f->client), ==, 0);
	g_assert_cmpuint(pool_total(f->client, &f->client->pages, &nfree), ==, floor);
	g_assert_cmpuint(nfree, ==, floor);
	g_assert_cmpuint(pool_total(f->client, &f->client->pieces, &nfree), ==, pieces_floor);
	tu_pattern(buf, len, 152);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &where, NULL), ==, 0);
	tu_assert_image_holds(f->d.path[2], 0, buf, len);
	g_free(raw);
	g_free(back);
}

/* ---- 9. bad input ----------------------------------------------------------- */

static void test_bad_input(struct fixture *f, gconstpointer data)
{
	char *buf = tu_aligned(8192);
	struct io_region ok = { f->d.bdev[0], 0, 8 };
	struct dm_io_request req = { .bi_op = DMIO_WRITE, .mem = tu_kmem(buf), .client = f->client };
	static const int bad_ops[] = { -1, 5, 6, 100, INT_MIN };
	static const unsigned int bad_flags[] = { 0x8, 0x10, 0x80000000u, DMIO_REQ_FUA | 0x100 };
	static const int bad_types[] = { 4, 99, -1 };
	struct probe p;
	struct snap sn;

	(void)data;
	probe_init(&p, f->client);
	tu_pattern(buf, 8192, 161);
	snap_take(f, &sn);

	g_assert_cmpint(dm_io(NULL, 1, &ok, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io(&req, 1, NULL, NULL), ==, -EINVAL);
	g_assert_cmpint(dm_io(&req, 0, &ok, NULL), ==, -EINVAL);
	for (size_t i = 0; i < G_N_ELEMENTS(bad_ops); i++) {
		g_assert_cmpint(tu_io_sync(f->client, bad_ops[i], 0, tu_kmem(buf), 1, &ok, NULL), ==, -EINVAL);
		g_assert_cmpint(tu_io_async(f->client, bad_ops[i], 0, tu_kmem(buf), 1, &ok, probe_notify, &p), ==, -EINVAL);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad_flags); i++) {
		g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, bad_flags[i], tu_kmem(buf), 1, &ok, NULL), ==, -EINVAL);
		g_assert_cmpint(tu_io_async(f->client, DMIO_READ, bad_flags[i], tu_kmem(buf), 1, &ok, probe_notify, &p), ==,
				-EINVAL);
		g_assert_cmpint(tu_io_sync(f->client, DMIO_FLUSH, bad_flags[i], tu_kmem(NULL), 1, &ok, NULL), ==, -EINVAL);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad_types); i++) {
		struct dm_io_memory mem = { .type = (enum dm_io_mem_type)bad_types[i], .ptr.addr = buf };

		g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, mem, 1, &ok, NULL), ==, -EINVAL);
		g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, 0, mem, 1, &ok, probe_notify, &p), ==, -EINVAL);
		g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, mem, 1, &ok, NULL), ==, -EINVAL);
	}
	/* memory that visibly cannot hold the region */
	{
		struct page_list *pl = tu_page_list_new(1);
		struct dm_io_memory short_pl = { .type = DM_IO_PAGE_LIST, .offset = 512, .ptr.pl = pl };
		struct io_region eight_k = { f->d.bdev[0], 0, 16 };
		struct bio_vec bv[2] = { { dmio_virt_to_page(buf), 4096, 0 }, { NULL, 4096, 0 } };
		struct dm_io_memory hole = { .type = DM_IO_BVEC, .ptr.bvec = bv };

		g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, short_pl, 1, &eight_k, NULL), ==, -EINVAL);
		g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, hole, 1, &eight_k, NULL), ==, -EINVAL);
		for (int t = DM_IO_PAGE_LIST; t <= DM_IO_KMEM; t++) {
			struct dm_io_memory none = { .type = (enum dm_io_mem_type)t };

			g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, none, 1, &ok, NULL), ==, -EINVAL);
			g_assert_cmpint(tu_io_async(f->client, DMIO_READ, 0, none, 1, &ok, probe_notify, &p), ==,
					-EINVAL);
		}
		tu_page_list_free(pl);
	}
	g_usleep(20000);
	g_assert_cmpuint(probe_calls(&p), ==, 0); /* no callback for a refused request */
	for (int i = 0; i < NDEV; i++) {
		struct dmio_bdev_stats d = delta(f, &sn, i);

		g_assert_cmpuint(d.reads + d.writes + d.flushes + d.discards + d.errors, ==, 0);
	}
	tu_assert_image_filled(f->d.path[0], 0, FILL, 8192);

	/* empty regions only, no memory at all: allowed, nothing happens */
	for (int t = DM_IO_PAGE_LIST; t <= DM_IO_KMEM; t++) {
		struct dm_io_memory none = { .type = (enum dm_io_mem_type)t };
		struct io_region empty[2] = { { f->d.bdev[0], 0, 0 }, { f->d.bdev[1], 16, 0 } };
		unsigned long bits = ~0UL;

		g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, none, 2, empty, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
		bits = ~0UL;
		g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, none, 1, empty, &bits), ==, 0);
		g_assert_cmpuint(bits, ==, 0);
		g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, 0, none, 2, empty, probe_notify, &p), ==, 0);
		g_assert_cmpint(tu_io_async(NULL, DMIO_READ, 0, none, 1, empty, probe_notify, &p), ==, 0);
	}
	tu_waiter_wait(&p.w, 8);
	g_usleep(20000);
	g_assert_cmpuint(probe_calls(&p), ==, 8);
	g_assert_cmpuint(p.w.all_bits, ==, 0);
	for (int i = 0; i < NDEV; i++) {
		struct dmio_bdev_stats d = delta(f, &sn, i);

		g_assert_cmpuint(d.reads + d.writes + d.flushes + d.discards + d.errors, ==, 0);
	}

	/* a read names one region: more gets -EIO, all bits, no I/O, no callback */
	{
		struct io_region two[2] = { { f->d.bdev[0], 0, 8 }, { f->d.bdev[1], 0, 8 } };
		unsigned long bits = 0;

		g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, tu_kmem(buf), 2, two, &bits), ==, -EIO);
		g_assert_cmpuint(bits, ==, 3);
		g_assert_cmpint(tu_io_async(f->client, DMIO_READ, 0, tu_kmem(buf), 2, two, probe_notify, &p), ==, -EIO);
		g_usleep(20000);
		g_assert_cmpuint(probe_calls(&p), ==, 8);
		g_assert_cmpuint(delta(f, &sn, 0).reads, ==, 0);
	}
	tu_waiter_clear(&p.w);
	free(buf);
}

/* Alignment to a logical block size above 512, on a real such device. */
static void test_unaligned_lbs_device(struct fixture *f, gconstpointer data)
{
	(void)data;
	for (int i = 0; i < NDEV; i++) {
		unsigned int lbs = dmio_bdev_logical_block_size(f->d.bdev[i]);

		if (lbs > 512) {
			sector_t per = lbs >> 9;
			struct io_region bad[2] = { { f->d.bdev[i], 1, per }, { f->d.bdev[i], 0, per + 1 } };
			char *buf = tu_aligned(2 * lbs);

			for (int b = 0; b < 2; b++)
				g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &bad[b], NULL), ==,
						-EINVAL);
			free(buf);
			return;
		}
	}
	g_test_skip("every test image has a 512-byte logical block size here (no device with larger blocks)");
}

/* The same rule, with the device's block size set to 4096 from inside: a
 * region must start and end on a block, except when it moves no data. */
static void test_unaligned_lbs_simulated(struct fixture *f, gconstpointer data)
{
	struct block_device *b = f->d.bdev[0];
	unsigned int saved = b->lbs;
	char *buf = tu_aligned(16384);
	struct io_region r;
	unsigned long bits = 0;
	struct snap sn;

	(void)data;
	b->lbs = 4096;
	tu_pattern(buf, 16384, 171);
	snap_take(f, &sn);
	r = (struct io_region){ b, 1, 8 };
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, NULL), ==, -EINVAL);
	r = (struct io_region){ b, 8, 7 };
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, NULL), ==, -EINVAL);
	r = (struct io_region){ b, 8, 12 };
	g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, tu_kmem(buf), 1, &r, NULL), ==, -EINVAL);
	r = (struct io_region){ b, 4, 8 };
	g_assert_cmpint(tu_io_sync(f->client, DMIO_DISCARD, 0, tu_kmem(NULL), 1, &r, NULL), ==, -EINVAL);
	g_assert_cmpuint(delta(f, &sn, 0).writes + delta(f, &sn, 0).reads + delta(f, &sn, 0).discards, ==, 0);
	/* with another, aligned, region it is still the whole request that is refused */
	{
		struct io_region two[2] = { { f->d.bdev[1], 0, 8 }, { b, 3, 8 } };

		g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 2, two, NULL), ==, -EINVAL);
		tu_assert_image_filled(f->d.path[1], 0, FILL, 4096);
	}
	/* empty regions and flushes are not checked */
	r = (struct io_region){ b, 3, 0 };
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, &bits), ==, 0);
	r = (struct io_region){ b, 3, 5 };
	g_assert_cmpint(tu_io_sync(f->client, DMIO_FLUSH, 0, tu_kmem(NULL), 1, &r, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	/* aligned works */
	r = (struct io_region){ b, 16, 32 };
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 1, &r, &bits), ==, 0);
	tu_assert_image_holds(f->d.path[0], 16 * 512, buf, 16384);
	/* and the piece limit must be whole blocks */
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(b, 12), ==, -EINVAL);
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(b, 4), ==, -EINVAL);
	g_assert_cmpint(dmio_bdev_set_max_io_sectors(b, 16), ==, 0);
	b->lbs = saved;
	free(buf);
}

/* ---- 10. a device opened read-only ----------------------------------------- */

static void test_read_only_device(struct fixture *f, gconstpointer data)
{
	size_t len = 16384;
	char *path = tu_image_new(f->dir, "ro.img", 1 << 20, 0);
	char *orig = g_malloc(len), *buf = tu_aligned(len), *back = tu_aligned(len);
	struct block_device *ro;
	struct io_region where[2];
	struct dmio_bdev_stats before, d;
	unsigned long bits = 0;
	struct probe p;

	(void)data;
	tu_pattern(orig, len, 181);
	tu_raw_write(path, 4096, orig, len);
	ro = dmio_bdev_open(path, O_RDONLY);
	g_assert_nonnull(ro);
	where[0] = (struct io_region){ ro, 8, len >> 9 };
	where[1] = (struct io_region){ f->d.bdev[0], 8, len >> 9 };
	tu_pattern(buf, len, 182);
	dmio_bdev_get_stats(ro, &before);
	g_assert_cmpint(tu_io_sync(f->client, DMIO_WRITE, 0, tu_kmem(buf), 2, where, &bits), ==, -EIO);
	g_assert_cmpuint(bits, ==, 1UL << 0);
	tu_assert_image_holds(path, 4096, orig, len);
	tu_assert_image_holds(f->d.path[0], 4096, buf, len);

	probe_init(&p, f->client);
	g_assert_cmpint(tu_io_async(f->client, DMIO_WRITE, DMIO_REQ_FUA, tu_kmem(buf), 2, where, probe_notify, &p), ==, 0);
	tu_waiter_wait(&p.w, 1);
	g_assert_cmpuint(p.w.bits, ==, 1UL << 0);
	for (int op = DMIO_DISCARD; op <= DMIO_WRITE_ZEROES; op++) {
		bits = 0;
		g_assert_cmpint(tu_io_sync(f->client, op, 0, tu_kmem(NULL), 1, where, &bits), ==, -EIO);
		g_assert_cmpuint(bits, ==, 1);
	}
	d = tu_stats_since(ro, &before);
	g_assert_cmpuint(d.writes, ==, 0);
	g_assert_cmpuint(d.discards, ==, 0);
	tu_assert_image_holds(path, 4096, orig, len);

	/* reads work */
	memset(back, 0, len);
	bits = ~0UL;
	g_assert_cmpint(tu_io_sync(f->client, DMIO_READ, 0, tu_kmem(back), 1, where, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	g_assert_cmpmem(back, len, orig, len);
	g_assert_cmpuint(tu_stats_since(ro, &before).reads, ==, 1);
	tu_waiter_clear(&p.w);
	dmio_bdev_close(ro);
	g_free(path);
	g_free(orig);
	free(buf);
	free(back);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum mem_case mc;
	} mem_cases[] = {
		{ "page-list-offset", MC_PL },     { "page-list-odd-offset", MC_PL_ODD }, { "bvec", MC_BVEC },
		{ "vma", MC_VMA },                 { "vma-odd", MC_VMA_ODD },             { "kmem", MC_KMEM },
		{ "kmem-odd", MC_KMEM_ODD },
	};

	g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/request/" name, struct fixture, NULL, setup, fn, teardown)
#define ADD_DATA(name, data, fn) g_test_add(name, struct fixture, data, setup, fn, teardown)
	g_test_add_func("/request/client/create-destroy", test_client_create_destroy);
	ADD("client/with-io", test_client_with_io);
	for (size_t i = 0; i < G_N_ELEMENTS(mem_cases); i++) {
		char *name = g_strdup_printf("/request/mem/%s", mem_cases[i].name);

		ADD_DATA(name, GINT_TO_POINTER(mem_cases[i].mc), test_mem_type);
		g_free(name);
	}
	ADD("client/default", test_default_client);
	ADD("flush/regions", test_flush_regions);
	ADD("flush/preflush-write", test_preflush_write);
	ADD("fua-write", test_fua_write);
	ADD_DATA("/request/discard", GINT_TO_POINTER(DMIO_DISCARD), test_deallocate);
	ADD_DATA("/request/write-zeroes", GINT_TO_POINTER(DMIO_WRITE_ZEROES), test_deallocate);
	ADD("split/write-read", test_split);
	ADD("split/fault-write", test_split_fault_write);
	ADD("split/fault-read", test_split_fault_read);
	ADD("callback/after-last-piece", test_callback_after_last_piece);
	ADD("callback/sync-is-edeadlk", test_sync_from_callback);
	ADD("callback/async-chain", test_async_chain_from_callback);
	ADD("client/watch", test_client_watch);
	ADD("client/watch-shared", test_client_watch_shared);
	ADD("callback/destroy-refused", test_destroy_from_callback);
	ADD("callback/burst-beyond-pool", test_burst_from_callback);
	ADD("pool/exhaustion", test_pool_exhaustion);
	ADD("pool/resize-idle", test_pool_resize_idle);
	ADD("pool/resize-under-io", test_pool_resize_under_io);
	ADD("bad-input/request", test_bad_input);
	ADD("bad-input/unaligned-lbs-device", test_unaligned_lbs_device);
	ADD("bad-input/unaligned-lbs-simulated", test_unaligned_lbs_simulated);
	ADD("read-only-device", test_read_only_device);
	return g_test_run();
}
