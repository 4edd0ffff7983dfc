/* test-memory.c - libdmio's memory: the object pools behind its clients,
 * the one cursor that walks page lists, bio_vec arrays and buffers, the
 * coverage check done before any I/O, struct page, and the three seed
 * memory paths end to end on image files. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "internal.h"

#define IMG_BYTES (4u << 20)
#define NDEV 3

/* ---- helpers ------------------------------------------------------------ */

static void assert_zero(const void *mem, size_t len)
{
	const unsigned char *p = mem;

	for (size_t i = 0; i < len; i++)
		if (p[i]) {
			g_assert_cmpuint(i, ==, len); /* names the first non-zero byte */
			g_assert_cmpuint(p[i], ==, 0);
		}
}

static void assert_filled(const void *mem, size_t len, unsigned char fill)
{
	const unsigned char *p = mem;

	for (size_t i = 0; i < len; i++)
		if (p[i] != fill) {
			g_assert_cmpuint(i, ==, len);
			g_assert_cmpuint(p[i], ==, fill);
		}
}

/* ---- obj_pool ----------------------------------------------------------- */

static void test_pool_counts(void)
{
	struct obj_pool pool;
	void *obj[3];

	pool_init(&pool, 100, 64);
	g_assert_cmpuint(pool.obj_size, ==, 100);
	g_assert_cmpuint(pool.align, ==, 64);
	g_assert_cmpuint(pool.total, ==, 0);
	g_assert_cmpuint(pool.nfree, ==, 0);
	g_assert_cmpuint(pool.target, ==, 0);
	g_assert_null(pool_get(&pool));

	g_assert_cmpint(pool_resize(&pool, 10), ==, 0);
	g_assert_cmpuint(pool.total, ==, 10);
	g_assert_cmpuint(pool.nfree, ==, 10);
	g_assert_cmpuint(pool.target, ==, 10);
	for (int i = 0; i < 3; i++) {
		obj[i] = pool_get(&pool);
		g_assert_nonnull(obj[i]);
		g_assert_cmpuint((uintptr_t)obj[i] % 64, ==, 0);
		/* touched up front: zero past the free-list link */
		assert_zero((char *)obj[i] + sizeof(void *), 100 - sizeof(void *));
		for (int j = 0; j < i; j++)
			g_assert_true(obj[i] != obj[j]);
		memset(obj[i], 0xC3, 100); /* the whole object is ours */
	}
	g_assert_cmpuint(pool.nfree, ==, 7);
	g_assert_cmpuint(pool.total, ==, 10);
	g_assert_cmpint(pool_resize(&pool, 10), ==, 0); /* same target: nothing changes */
	g_assert_cmpuint(pool.nfree, ==, 7);
	g_assert_cmpuint(pool.total, ==, 10);
	for (int i = 0; i < 3; i++)
		pool_put(&pool, obj[i]);
	g_assert_cmpuint(pool.nfree, ==, 10);
	g_assert_cmpuint(pool.total, ==, 10);
	g_assert_cmpuint(pool_destroy(&pool), ==, 0);
	g_assert_cmpuint(pool.total, ==, 0);
	g_assert_cmpuint(pool.nfree, ==, 0);
	g_assert_cmpuint(pool.target, ==, 0);
	g_assert_null(pool_get(&pool));

	/* objects smaller than the link, and alignment below a pointer's */
	pool_init(&pool, 1, 1);
	g_assert_cmpuint(pool.obj_size, ==, sizeof(void *));
	g_assert_cmpuint(pool.align, ==, sizeof(void *));
	g_assert_cmpint(pool_resize(&pool, 3), ==, 0);
	obj[0] = pool_get(&pool);
	g_assert_cmpuint((uintptr_t)obj[0] % sizeof(void *), ==, 0);
	memset(obj[0], 0xFF, sizeof(void *));
	pool_put(&pool, obj[0]);
	g_assert_cmpuint(pool_destroy(&pool), ==, 0);
}

/* Shrinking frees what is free now and the rest as it comes back, so the
 * total converges to the target; growing works with objects out. */
static void test_pool_shrink_while_out(void)
{
	struct obj_pool pool;
	void *obj[8];

	pool_init(&pool, 256, 64);
	g_assert_cmpint(pool_resize(&pool, 8), ==, 0);
	for (int i = 0; i < 6; i++)
		obj[i] = pool_get(&pool);
	g_assert_cmpuint(pool.nfree, ==, 2);

	g_assert_cmpint(pool_resize(&pool, 2), ==, 0);
	g_assert_cmpuint(pool.target, ==, 2);
	g_assert_cmpuint(pool.total, ==, 6); /* the two free ones went */
	g_assert_cmpuint(pool.nfree, ==, 0);
	g_assert_null(pool_get(&pool));
	for (int i = 0; i < 4; i++) {
		pool_put(&pool, obj[i]);
		g_assert_cmpuint(pool.total, ==, 5 - (unsigned int)i);
		g_assert_cmpuint(pool.nfree, ==, 0);
	}
	pool_put(&pool, obj[4]);
	g_assert_cmpuint(pool.total, ==, 2);
	g_assert_cmpuint(pool.nfree, ==, 1);
	pool_put(&pool, obj[5]);
	g_assert_cmpuint(pool.total, ==, 2);
	g_assert_cmpuint(pool.nfree, ==, 2);

	/* grow with objects out */
	obj[0] = pool_get(&pool);
	obj[1] = pool_get(&pool);
	g_assert_cmpint(pool_resize(&pool, 5), ==, 0);
	g_assert_cmpuint(pool.total, ==, 5);
	g_assert_cmpuint(pool.nfree, ==, 3);
	for (int i = 2; i < 5; i++)
		obj[i] = pool_get(&pool);
	g_assert_null(pool_get(&pool));
	g_assert_cmpuint(pool.nfree, ==, 0);

	/* to zero with everything out: all freed on return */
	g_assert_cmpint(pool_resize(&pool, 0), ==, 0);
	g_assert_cmpuint(pool.total, ==, 5);
	for (int i = 0; i < 5; i++)
		pool_put(&pool, obj[i]);
	g_assert_cmpuint(pool.total, ==, 0);
	g_assert_cmpuint(pool.nfree, ==, 0);
	g_assert_cmpuint(pool_destroy(&pool), ==, 0);
}

/* A page pool hands out page-aligned, zeroed pages. */
static void test_pool_page_alignment(void)
{
	struct obj_pool pool;
	void *page[16];

	pool_init(&pool, DMIO_PAGE_SIZE, DMIO_PAGE_SIZE);
	g_assert_cmpint(pool_resize(&pool, 16), ==, 0);
	for (int i = 0; i < 16; i++) {
		page[i] = pool_get(&pool);
		g_assert_nonnull(page[i]);
		g_assert_cmpuint((uintptr_t)page[i] % DMIO_PAGE_SIZE, ==, 0);
		assert_zero((char *)page[i] + sizeof(void *), DMIO_PAGE_SIZE - sizeof(void *));
		for (int j = 0; j < i; j++)
			g_assert_true(page[i] != page[j]);
		memset(page[i], i, DMIO_PAGE_SIZE);
	}
	g_assert_null(pool_get(&pool));
	for (int i = 0; i < 16; i++)
		pool_put(&pool, page[i]);
	g_assert_cmpuint(pool.nfree, ==, 16);
	g_assert_cmpuint(pool_destroy(&pool), ==, 0);
}

/* pool_destroy says how many objects are still out; they stay the
 * caller's (plain heap memory). */
static void test_pool_destroy_in_use(void)
{
	struct obj_pool pool;
	void *a, *b;

	pool_init(&pool, 64, 64);
	g_assert_cmpint(pool_resize(&pool, 5), ==, 0);
	a = pool_get(&pool);
	b = pool_get(&pool);
	g_assert_cmpuint(pool_destroy(&pool), ==, 2);
	g_assert_cmpuint(pool.total, ==, 0);
	g_assert_cmpuint(pool.nfree, ==, 0);
	free(a);
	free(b);
	/* the pool can be filled again */
	g_assert_cmpint(pool_resize(&pool, 1), ==, 0);
	g_assert_cmpuint(pool.total, ==, 1);
	g_assert_cmpuint(pool_destroy(&pool), ==, 0);
}

/* ---- mem_cursor: page lists --------------------------------------------- */

#define PL_PAGES 4

struct pl_fixture {
	struct page_list *pl;
	struct page *page[PL_PAGES];
	char flat[PL_PAGES * DMIO_PAGE_SIZE]; /* what the pages hold, in order */
};

static void pl_setup(struct pl_fixture *f, gconstpointer data)
{
	struct page_list *p;
	int i = 0;

	(void)data;
	f->pl = tu_page_list_new(PL_PAGES);
	for (p = f->pl; p; p = p->next, i++) {
		f->page[i] = p->page;
		tu_pattern(dmio_page_address(p->page), DMIO_PAGE_SIZE, 100 + (uint32_t)i);
		memcpy(f->flat + i * DMIO_PAGE_SIZE, dmio_page_address(p->page), DMIO_PAGE_SIZE);
	}
	g_assert_cmpint(i, ==, PL_PAGES);
}

static void pl_teardown(struct pl_fixture *f, gconstpointer data)
{
	(void)data;
	tu_page_list_free(f->pl);
}

static void pl_gather(struct pl_fixture *f, char *out)
{
	for (int i = 0; i < PL_PAGES; i++)
		memcpy(out + i * DMIO_PAGE_SIZE, dmio_page_address(f->page[i]), DMIO_PAGE_SIZE);
}

static void test_cursor_page_list_walk(struct pl_fixture *f, gconstpointer data)
{
	static const unsigned int offsets[] = { 0, 100, 4095, 4096, 4096 + 300, 8192, 8192 + 4095, 12288 + 17 };
	const size_t total = PL_PAGES * DMIO_PAGE_SIZE;
	char *got = g_malloc(total);

	(void)data;
	for (size_t k = 0; k < G_N_ELEMENTS(offsets); k++) {
		unsigned int off = offsets[k];
		struct dm_io_memory mem = { .type = DM_IO_PAGE_LIST, .offset = off, .ptr.pl = f->pl };
		struct mem_cursor cur;
		char *addr;
		size_t len;

		/* peek names the byte at the offset, up to the end of its page */
		mem_cursor_init(&cur, &mem);
		mem_cursor_peek(&cur, &addr, &len);
		g_assert_true(addr == (char *)dmio_page_address(f->page[off / 4096]) + off % 4096);
		g_assert_cmpuint(len, ==, 4096 - off % 4096);

		/* copy_in reads the rest of the list, in order */
		memset(got, 0, total);
		mem_cursor_copy_in(&cur, got, total - off);
		g_assert_cmpmem(got, total - off, f->flat + off, total - off);

		/* advance lands where peek says, whatever the step */
		for (size_t step = 1, pos = off; pos + step < total; pos += step, step = step * 3 + 7) {
			mem_cursor_init(&cur, &mem);
			mem_cursor_advance(&cur, pos + step - off);
			mem_cursor_peek(&cur, &addr, &len);
			g_assert_true(addr == (char *)dmio_page_address(f->page[(pos + step) / 4096]) + (pos + step) % 4096);
			g_assert_cmpuint(len, ==, 4096 - (pos + step) % 4096);
		}
	}
	/* advancing to a page boundary, then peeking, moves to the next page */
	{
		struct dm_io_memory mem = { .type = DM_IO_PAGE_LIST, .offset = 100, .ptr.pl = f->pl };
		struct mem_cursor cur;
		char *addr;
		size_t len;

		mem_cursor_init(&cur, &mem);
		mem_cursor_advance(&cur, 3996);
		mem_cursor_peek(&cur, &addr, &len);
		g_assert_true(addr == dmio_page_address(f->page[1]));
		g_assert_cmpuint(len, ==, 4096);
		mem_cursor_advance(&cur, 0);
		mem_cursor_peek(&cur, &addr, &len);
		g_assert_true(addr == dmio_page_address(f->page[1]));
	}
	g_free(got);
}

static void test_cursor_page_list_write(struct pl_fixture *f, gconstpointer data)
{
	const size_t total = PL_PAGES * DMIO_PAGE_SIZE;
	struct dm_io_memory mem = { .type = DM_IO_PAGE_LIST, .offset = 100, .ptr.pl = f->pl };
	struct mem_cursor cur;
	char *src = g_malloc(10000), *want = g_malloc(total), *got = g_malloc(total);

	(void)data;
	/* copy_out writes exactly [100, 10100) and nothing else */
	tu_pattern(src, 10000, 7);
	mem_cursor_init(&cur, &mem);
	mem_cursor_copy_out(&cur, src, 10000);
	memcpy(want, f->flat, total);
	memcpy(want + 100, src, 10000);
	pl_gather(f, got);
	g_assert_cmpmem(got, total, want, total);

	/* the cursor moved on: the next copy continues at 10100 */
	mem_cursor_copy_out(&cur, src, 50);
	memcpy(want + 10100, src, 50);
	pl_gather(f, got);
	g_assert_cmpmem(got, total, want, total);

	/* zero from an offset past the first page: exactly [5000, 8000) */
	mem.offset = 5000;
	mem_cursor_init(&cur, &mem);
	mem_cursor_zero(&cur, 3000);
	memset(want + 5000, 0, 3000);
	pl_gather(f, got);
	g_assert_cmpmem(got, total, want, total);

	/* a cursor advanced before copying */
	mem.offset = 0;
	mem_cursor_init(&cur, &mem);
	mem_cursor_advance(&cur, 12000);
	mem_cursor_copy_out(&cur, src, 4384);
	memcpy(want + 12000, src, 4384);
	pl_gather(f, got);
	g_assert_cmpmem(got, total, want, total);
	g_free(src);
	g_free(want);
	g_free(got);
}

/* ---- mem_cursor: bio_vec ------------------------------------------------ */

static void test_cursor_bvec(void)
{
	char *pages = tu_aligned(4 * DMIO_PAGE_SIZE), *big = tu_aligned(3 * DMIO_PAGE_SIZE);
	char *p0 = pages, *p1 = pages + 4096, *p2 = pages + 8192;
	struct bio_vec bv[] = {
		{ NULL, 0, 0 },                       /* empty, no page */
		{ dmio_virt_to_page(p0), 100, 10 },
		{ NULL, 0, 0 },                       /* empty, in the middle */
		{ dmio_virt_to_page(p1), 0, 123 },    /* empty, with a page */
		{ dmio_virt_to_page(p1), 4096, 0 },   /* a whole page */
		{ dmio_virt_to_page(big), 6000, 1000 }, /* crosses into big's next page */
		{ dmio_virt_to_page(p2), 1, 4095 },   /* the last byte of a page */
	};
	const char *start[] = { NULL, p0 + 10, NULL, p1 + 123, p1, big + 1000, p2 + 4095 };
	const size_t total = 100 + 4096 + 6000 + 1;
	struct dm_io_memory mem = { .type = DM_IO_BVEC, .ptr.bvec = bv };
	char *flat = g_malloc(total), *got = g_malloc(total), *src = g_malloc(total);
	char *snap_pages = g_malloc(4 * DMIO_PAGE_SIZE), *snap_big = g_malloc(3 * DMIO_PAGE_SIZE);
	struct mem_cursor cur;
	size_t done = 0;
	char *addr;
	size_t len;

	tu_pattern(pages, 4 * DMIO_PAGE_SIZE, 11);
	tu_pattern(big, 3 * DMIO_PAGE_SIZE, 12);
	for (size_t i = 0; i < G_N_ELEMENTS(bv); i++) {
		if (bv[i].bv_len)
			memcpy(flat + done, start[i], bv[i].bv_len);
		done += bv[i].bv_len;
	}
	g_assert_cmpuint(done, ==, total);

	/* peek skips empty entries, and names each entry's bytes */
	mem_cursor_init(&cur, &mem);
	mem_cursor_peek(&cur, &addr, &len);
	g_assert_true(addr == p0 + 10);
	g_assert_cmpuint(len, ==, 100);
	mem_cursor_advance(&cur, 100);
	mem_cursor_peek(&cur, &addr, &len);
	g_assert_true(addr == p1);
	g_assert_cmpuint(len, ==, 4096);
	mem_cursor_advance(&cur, 4096 + 10);
	mem_cursor_peek(&cur, &addr, &len);
	g_assert_true(addr == big + 1010);
	g_assert_cmpuint(len, ==, 5990);
	mem_cursor_advance(&cur, 5990);
	mem_cursor_peek(&cur, &addr, &len);
	g_assert_true(addr == p2 + 4095);
	g_assert_cmpuint(len, ==, 1);

	/* copy_in reads the entries in array order */
	mem_cursor_init(&cur, &mem);
	mem_cursor_copy_in(&cur, got, total);
	g_assert_cmpmem(got, total, flat, total);
	/* and from the middle of an entry */
	mem_cursor_init(&cur, &mem);
	mem_cursor_advance(&cur, 50);
	mem_cursor_copy_in(&cur, got, 5000);
	g_assert_cmpmem(got, 5000, flat + 50, 5000);

	/* copy_out writes exactly the entries' bytes */
	memcpy(snap_pages, pages, 4 * DMIO_PAGE_SIZE);
	memcpy(snap_big, big, 3 * DMIO_PAGE_SIZE);
	tu_pattern(src, total, 13);
	mem_cursor_init(&cur, &mem);
	mem_cursor_copy_out(&cur, src, total);
	done = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(bv); i++) {
		if (bv[i].bv_len) {
			char *snap = start[i] >= big && start[i] < big + 3 * DMIO_PAGE_SIZE
					     ? snap_big + (start[i] - big)
					     : snap_pages + (start[i] - pages);

			memcpy(snap, src + done, bv[i].bv_len);
		}
		done += bv[i].bv_len;
	}
	g_assert_cmpmem(pages, 4 * DMIO_PAGE_SIZE, snap_pages, 4 * DMIO_PAGE_SIZE);
	g_assert_cmpmem(big, 3 * DMIO_PAGE_SIZE, snap_big, 3 * DMIO_PAGE_SIZE);

	/* zero [50, 250): the end of entry 1 and the head of entry 4 */
	mem_cursor_init(&cur, &mem);
	mem_cursor_advance(&cur, 50);
	mem_cursor_zero(&cur, 200);
	memset(snap_pages + 10 + 50, 0, 50);
	memset(snap_pages + 4096, 0, 150);
	g_assert_cmpmem(pages, 4 * DMIO_PAGE_SIZE, snap_pages, 4 * DMIO_PAGE_SIZE);
	g_assert_cmpmem(big, 3 * DMIO_PAGE_SIZE, snap_big, 3 * DMIO_PAGE_SIZE);

	free(pages);
	free(big);
	g_free(flat);
	g_free(got);
	g_free(src);
	g_free(snap_pages);
	g_free(snap_big);
}

/* ---- mem_cursor: contiguous buffers ------------------------------------- */

static void test_cursor_buffer(void)
{
	static const enum dm_io_mem_type types[] = { DM_IO_VMA, DM_IO_KMEM };
	const size_t total = 10000;
	char *buf = g_malloc(total), *want = g_malloc(total), *got = g_malloc(total);

	for (size_t t = 0; t < G_N_ELEMENTS(types); t++) {
		struct dm_io_memory mem = { .type = types[t], .ptr.addr = buf };
		struct mem_cursor cur;
		char *addr;
		size_t len;

		tu_pattern(buf, total, 20 + (uint32_t)t);
		memcpy(want, buf, total);
		mem_cursor_init(&cur, &mem);
		mem_cursor_peek(&cur, &addr, &len);
		g_assert_true(addr == buf);
		g_assert_cmpuint(len, ==, SIZE_MAX);
		mem_cursor_advance(&cur, 123);
		mem_cursor_peek(&cur, &addr, &len);
		g_assert_true(addr == buf + 123);
		g_assert_cmpuint(len, ==, SIZE_MAX);
		mem_cursor_copy_in(&cur, got, 500);
		g_assert_cmpmem(got, 500, buf + 123, 500);
		mem_cursor_peek(&cur, &addr, &len);
		g_assert_true(addr == buf + 623);

		tu_pattern(got, 1000, 30);
		mem_cursor_copy_out(&cur, got, 1000);
		memcpy(want + 623, got, 1000);
		mem_cursor_zero(&cur, 77);
		memset(want + 1623, 0, 77);
		g_assert_cmpmem(buf, total, want, total);
	}
	g_free(buf);
	g_free(want);
	g_free(got);
}

/* ---- mem_check ---------------------------------------------------------- */

static struct page_list *pl_node(struct page *page, struct page_list *next)
{
	struct page_list *pl = g_new0(struct page_list, 1);

	pl->page = page;
	pl->next = next;
	return pl;
}

static void test_mem_check(void)
{
	struct page *a = dmio_page_alloc(), *b = dmio_page_alloc(), *c = dmio_page_alloc();
	struct page_list *two = pl_node(a, pl_node(b, NULL));
	struct page_list *hole = pl_node(a, pl_node(NULL, pl_node(c, NULL)));
	struct dm_io_memory mem = { .type = DM_IO_PAGE_LIST, .ptr.pl = two };
	struct bio_vec *exact = g_new0(struct bio_vec, 3), *bad = g_new0(struct bio_vec, 2);
	char buf[16];

	/* page lists: offset + bytes must fit in the pages */
	g_assert_cmpint(mem_check(&mem, 0), ==, 0);
	g_assert_cmpint(mem_check(&mem, 8192), ==, 0);
	g_assert_cmpint(mem_check(&mem, 8193), ==, -EINVAL);
	mem.offset = 100;
	g_assert_cmpint(mem_check(&mem, 8092), ==, 0);
	g_assert_cmpint(mem_check(&mem, 8093), ==, -EINVAL);
	mem.offset = 4096;
	g_assert_cmpint(mem_check(&mem, 4096), ==, 0);
	g_assert_cmpint(mem_check(&mem, 4097), ==, -EINVAL);
	mem.offset = 8192;
	g_assert_cmpint(mem_check(&mem, 1), ==, -EINVAL);
	/* a NULL page counts only once the walk reaches it */
	mem.offset = 0;
	mem.ptr.pl = hole;
	g_assert_cmpint(mem_check(&mem, 4096), ==, 0);
	g_assert_cmpint(mem_check(&mem, 4097), ==, -EINVAL);
	g_assert_cmpint(mem_check(&mem, 3 * 4096), ==, -EINVAL);
	mem.ptr.pl = NULL;
	g_assert_cmpint(mem_check(&mem, 0), ==, 0);
	g_assert_cmpint(mem_check(&mem, 1), ==, -EINVAL);

	/* bio_vec arrays: exact coverage reads no entry past the last needed
	 * (the array is exactly that long: ASan would see an over-read) */
	exact[0] = (struct bio_vec){ a, 100, 0 };
	exact[1] = (struct bio_vec){ NULL, 0, 0 };
	exact[2] = (struct bio_vec){ b, 412, 100 };
	mem = (struct dm_io_memory){ .type = DM_IO_BVEC, .ptr.bvec = exact };
	g_assert_cmpint(mem_check(&mem, 512), ==, 0);
	g_assert_cmpint(mem_check(&mem, 100), ==, 0);
	g_assert_cmpint(mem_check(&mem, 0), ==, 0);
	bad[0] = (struct bio_vec){ a, 512, 0 };
	bad[1] = (struct bio_vec){ NULL, 512, 0 };
	mem.ptr.bvec = bad;
	g_assert_cmpint(mem_check(&mem, 512), ==, 0);
	g_assert_cmpint(mem_check(&mem, 513), ==, -EINVAL);
	bad[0].bv_page = NULL;
	g_assert_cmpint(mem_check(&mem, 1), ==, -EINVAL);
	mem.ptr.bvec = NULL;
	g_assert_cmpint(mem_check(&mem, 0), ==, 0);
	g_assert_cmpint(mem_check(&mem, 1), ==, -EINVAL);

	/* buffers: only NULL with bytes to move is visibly wrong */
	mem = (struct dm_io_memory){ .type = DM_IO_VMA, .ptr.vma = NULL };
	g_assert_cmpint(mem_check(&mem, 1), ==, -EINVAL);
	g_assert_cmpint(mem_check(&mem, 0), ==, 0);
	mem.ptr.vma = buf;
	g_assert_cmpint(mem_check(&mem, 1u << 30), ==, 0);
	mem = (struct dm_io_memory){ .type = DM_IO_KMEM, .ptr.addr = NULL };
	g_assert_cmpint(mem_check(&mem, 512), ==, -EINVAL);
	g_assert_cmpint(mem_check(&mem, 0), ==, 0);

	/* an unknown type */
	mem.type = (enum dm_io_mem_type)7;
	g_assert_cmpint(mem_check(&mem, 0), ==, -EINVAL);

	g_free(exact);
	g_free(bad);
	g_free(hole->next->next);
	g_free(hole->next);
	g_free(hole);
	g_free(two->next);
	g_free(two);
	dmio_page_free(a);
	dmio_page_free(b);
	dmio_page_free(c);
}

/* ---- struct page -------------------------------------------------------- */

static void test_page_alloc(void)
{
	struct page *page[8];
	char *heap = g_malloc(10000);

	for (int i = 0; i < 8; i++) {
		char *addr;

		page[i] = dmio_page_alloc();
		g_assert_nonnull(page[i]);
		addr = dmio_page_address(page[i]);
		g_assert_true(addr == (char *)page[i]);
		g_assert_cmpuint((uintptr_t)addr % DMIO_PAGE_SIZE, ==, 0);
		memset(addr, i, DMIO_PAGE_SIZE); /* all 4096 bytes are ours */
		for (unsigned int off = 0; off < DMIO_PAGE_SIZE; off += 1 + off / 2)
			g_assert_true(dmio_virt_to_page(addr + off) == page[i]);
		g_assert_true(dmio_virt_to_page(addr + DMIO_PAGE_SIZE - 1) == page[i]);
		g_assert_true(dmio_virt_to_page(addr + DMIO_PAGE_SIZE) == (struct page *)(addr + DMIO_PAGE_SIZE));
		g_assert_true(dmio_virt_to_page(addr - 1) == (struct page *)(addr - DMIO_PAGE_SIZE));
		for (int j = 0; j < i; j++)
			g_assert_true(page[i] != page[j]);
	}
	for (int i = 0; i < 8; i++) {
		assert_filled(dmio_page_address(page[i]), DMIO_PAGE_SIZE, (unsigned char)i);
		dmio_page_free(page[i]);
	}
	dmio_page_free(NULL);
	/* any memory: the page is the address rounded down */
	g_assert_cmpuint((uintptr_t)dmio_virt_to_page(heap + 5000), ==,
			 ((uintptr_t)heap + 5000) & ~(uintptr_t)(DMIO_PAGE_SIZE - 1));
	g_free(heap);
}

/* ---- end to end: the three seed memory paths on image files ------------- */


/* Memory described three ways over the same bytes. */
struct three_ways {
	/* page list: pages holding the data from `pl_offset` on */
	struct page_list *pl;
	unsigned int pl_offset;
	/* bio_vec: pieces of one contiguous buffer, then a terminator */
	char *bv_mem;
	struct bio_vec *bv;
	/* vm: a buffer at some alignment */
	char *vm_raw, *vm;
};

/* Cut [0, len) of `mem` into bio_vecs at the given byte boundaries. */
static struct bio_vec *bvec_over(char *mem, size_t len, const size_t *cuts, size_t ncuts)
{
	struct bio_vec *bv = g_new0(struct bio_vec, ncuts + 2);
	size_t from = 0;

	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		char *p = mem + from;

		bv[i].bv_page = dmio_virt_to_page(p);
		bv[i].bv_offset = (unsigned int)((uintptr_t)p & (DMIO_PAGE_SIZE - 1));
		bv[i].bv_len = (unsigned int)(to - from);
		from = to;
	}
	return bv;
}

static void three_ways_init(struct three_ways *m, size_t len, unsigned int pl_offset, size_t bv_start,
			    const size_t *cuts, size_t ncuts, size_t vm_misalign)
{
	unsigned int pages = (unsigned int)((pl_offset + len + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE);

	m->pl = tu_page_list_new(pages);
	m->pl_offset = pl_offset;
	m->bv_mem = tu_aligned(len + bv_start + DMIO_PAGE_SIZE);
	m->bv = bvec_over(m->bv_mem + bv_start, len, cuts, ncuts);
	m->vm_raw = tu_aligned(len + vm_misalign + DMIO_PAGE_SIZE);
	m->vm = m->vm_raw + vm_misalign;
}

static void three_ways_free(struct three_ways *m)
{
	tu_page_list_free(m->pl);
	free(m->bv_mem);
	g_free(m->bv);
	free(m->vm_raw);
}

/* Fill (or gather) the page list's bytes from (into) a flat buffer. */
static void pl_copy(struct three_ways *m, char *flat, size_t len, bool to_pages)
{
	size_t done = 0, off = m->pl_offset;

	for (struct page_list *p = m->pl; done < len; p = p->next) {
		size_t n;

		if (off >= DMIO_PAGE_SIZE) {
			off -= DMIO_PAGE_SIZE;
			continue;
		}
		n = MIN(DMIO_PAGE_SIZE - off, len - done);
		if (to_pages)
			memcpy((char *)dmio_page_address(p->page) + off, flat + done, n);
		else
			memcpy(flat + done, (char *)dmio_page_address(p->page) + off, n);
		done += n;
		off = 0;
	}
}

static void bv_copy(struct three_ways *m, char *flat, size_t len, bool to_mem)
{
	size_t done = 0;

	for (struct bio_vec *v = m->bv; done < len; v++) {
		char *p = (char *)dmio_page_address(v->bv_page) + v->bv_offset;

		if (to_mem)
			memcpy(p, flat + done, v->bv_len);
		else
			memcpy(flat + done, p, v->bv_len);
		done += v->bv_len;
	}
	g_assert_cmpuint(done, ==, len);
}

static void write_three_ways(struct tu_devices *d, sector_t sector, size_t len, const char *data,
			     struct three_ways *m)
{
	struct io_region where[NDEV];
	unsigned long bits = ~0UL;

	for (int i = 0; i < NDEV; i++)
		where[i] = (struct io_region){ d->bdev[i], sector, len >> 9 };
	pl_copy(m, (char *)data, len, true);
	bv_copy(m, (char *)data, len, true);
	memcpy(m->vm, data, len);
	g_assert_cmpint(dm_io_sync(1, &where[0], DMIO_WRITE, m->pl, m->pl_offset, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	g_assert_cmpint(dm_io_sync_bvec(1, &where[1], DMIO_WRITE, m->bv, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
	g_assert_cmpint(dm_io_sync_vm(1, &where[2], DMIO_WRITE, m->vm, &bits), ==, 0);
	g_assert_cmpuint(bits, ==, 0);
}

/* Read every device through every path: all nine give the data. */
static void read_three_ways(struct tu_devices *d, sector_t sector, size_t len, const char *data,
			    struct three_ways *m)
{
	char *got = g_malloc(len);

	for (int i = 0; i < NDEV; i++) {
		struct io_region where = { d->bdev[i], sector, len >> 9 };

		memset(got, 0, len);
		pl_copy(m, got, len, true);
		g_assert_cmpint(dm_io_sync(1, &where, DMIO_READ, m->pl, m->pl_offset, NULL), ==, 0);
		pl_copy(m, got, len, false);
		g_assert_cmpmem(got, len, data, len);

		memset(got, 0, len);
		bv_copy(m, got, len, true);
		g_assert_cmpint(dm_io_sync_bvec(1, &where, DMIO_READ, m->bv, NULL), ==, 0);
		bv_copy(m, got, len, false);
		g_assert_cmpmem(got, len, data, len);

		memset(m->vm, 0, len);
		g_assert_cmpint(dm_io_sync_vm(1, &where, DMIO_READ, m->vm, NULL), ==, 0);
		g_assert_cmpmem(m->vm, len, data, len);
	}
	g_free(got);
}

static void assert_images_identical(struct tu_devices *d)
{
	char *img[NDEV];

	for (int i = 0; i < NDEV; i++) {
		img[i] = g_malloc(IMG_BYTES);
		tu_raw_read(d->path[i], 0, img[i], IMG_BYTES);
	}
	for (int i = 1; i < NDEV; i++)
		g_assert_cmpmem(img[i], IMG_BYTES, img[0], IMG_BYTES);
	for (int i = 0; i < NDEV; i++)
		g_free(img[i]);
}

static void test_three_paths(const char *dir)
{
	const size_t len = 65536;
	/* aligned: whole pages; bvec cut at page multiples; vm page-aligned */
	static const size_t cuts_aligned[] = { 4096, 12288, 16384, 40960 };
	/* misaligned: odd offsets, odd lengths, entries crossing pages */
	static const size_t cuts_odd[] = { 1000, 1007, 5103, 5104, 20000, 33333, 60001 };
	struct tu_devices d;
	struct three_ways aligned_m, odd_m;
	char *data = g_malloc(len), *data2 = g_malloc(len), *img = g_malloc(IMG_BYTES), *want = g_malloc(IMG_BYTES);

	tu_devices_open(&d, dir, "m", NDEV, IMG_BYTES, 0x5A);
	tu_pattern(data, len, 81);
	tu_pattern(data2, len, 82);

	three_ways_init(&aligned_m, len, 0, 0, cuts_aligned, G_N_ELEMENTS(cuts_aligned), 0);
	write_three_ways(&d, 256, len, data, &aligned_m);
	three_ways_init(&odd_m, len, 1000, 777, cuts_odd, G_N_ELEMENTS(cuts_odd), 7);
	write_three_ways(&d, 1024, len, data2, &odd_m);
	/* a page-list offset past the first page skips it */
	odd_m.pl_offset = 4096 + 1000;
	tu_page_list_free(odd_m.pl);
	odd_m.pl = tu_page_list_new((unsigned int)((odd_m.pl_offset + len + 4095) / 4096));
	write_three_ways(&d, 4096, len, data, &odd_m);

	assert_images_identical(&d);
	tu_raw_read(d.path[0], 0, img, IMG_BYTES);
	memset(want, 0x5A, IMG_BYTES);
	memcpy(want + 256 * 512, data, len);
	memcpy(want + 1024 * 512, data2, len);
	memcpy(want + 4096 * 512, data, len);
	g_assert_cmpmem(img, IMG_BYTES, want, IMG_BYTES);

	read_three_ways(&d, 256, len, data, &aligned_m);
	read_three_ways(&d, 1024, len, data2, &odd_m);
	read_three_ways(&d, 4096, len, data, &aligned_m);

	three_ways_free(&aligned_m);
	three_ways_free(&odd_m);
	tu_devices_close(&d);
	g_free(data);
	g_free(data2);
	g_free(img);
	g_free(want);
}

/* bio_vecs whose bv_offset + bv_len runs past their page, over contiguous
 * memory: aligned (mapped directly) and misaligned (bounced). */
static void test_bvec_crossing_pages(const char *dir)
{
	const size_t len = 65536;
	char *mem = tu_aligned(len + DMIO_PAGE_SIZE), *want = g_malloc(len), *img = g_malloc(len);
	struct tu_devices d;
	struct bio_vec bv[] = {
		{ dmio_virt_to_page(mem), 10240, 0 },                  /* [0, 10240): three pages */
		{ dmio_virt_to_page(mem + 10240), 20480, 10240 % 4096 }, /* [10240, 30720): from mid-page */
		{ dmio_virt_to_page(mem + 30720), 12345, 30720 % 4096 }, /* odd length */
		{ dmio_virt_to_page(mem + 43065), 22471, 43065 % 4096 }, /* odd start */
	};
	struct io_region where;
	struct dmio_bdev_stats before, after;

	tu_devices_open(&d, dir, "m", NDEV, IMG_BYTES, 0x5A);
	tu_pattern(mem, len, 91);
	memcpy(want, mem, len);
	g_assert_cmpuint(bv[0].bv_len + bv[1].bv_len + bv[2].bv_len + bv[3].bv_len, ==, len);

	where = (struct io_region){ d.bdev[1], 2048, len >> 9 };
	dmio_bdev_get_stats(d.bdev[1], &before);
	g_assert_cmpint(dm_io_sync_bvec(1, &where, DMIO_WRITE, bv, NULL), ==, 0);
	dmio_bdev_get_stats(d.bdev[1], &after);
	g_assert_cmpuint(after.write_bytes - before.write_bytes, ==, len);
	tu_raw_read(d.path[1], 2048 * 512, img, len);
	g_assert_cmpmem(img, len, want, len);

	/* the whole thing as one entry starting mid-page, and read back */
	memset(mem, 0, len + DMIO_PAGE_SIZE);
	bv[0] = (struct bio_vec){ dmio_virt_to_page(mem + 512), (unsigned int)len, 512 };
	bv[1] = (struct bio_vec){ NULL, 0, 0 };
	g_assert_cmpint(dm_io_sync_bvec(1, &where, DMIO_READ, bv, NULL), ==, 0);
	g_assert_cmpmem(mem + 512, len, want, len);
	assert_zero(mem, 512);
	assert_zero(mem + 512 + len, DMIO_PAGE_SIZE - 512);

	tu_devices_close(&d);
	free(mem);
	g_free(want);
	g_free(img);
}

int main(int argc, char **argv)
{

	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/memory/pool/counts", test_pool_counts);
	g_test_add_func("/memory/pool/shrink-while-out", test_pool_shrink_while_out);
	g_test_add_func("/memory/pool/page-alignment", test_pool_page_alignment);
	g_test_add_func("/memory/pool/destroy-in-use", test_pool_destroy_in_use);
	g_test_add("/memory/cursor/page-list-walk", struct pl_fixture, NULL, pl_setup, test_cursor_page_list_walk,
		   pl_teardown);
	g_test_add("/memory/cursor/page-list-write", struct pl_fixture, NULL, pl_setup, test_cursor_page_list_write,
		   pl_teardown);
	g_test_add_func("/memory/cursor/bvec", test_cursor_bvec);
	g_test_add_func("/memory/cursor/buffer", test_cursor_buffer);
	g_test_add_func("/memory/mem-check", test_mem_check);
	g_test_add_func("/memory/page/alloc", test_page_alloc);
	tu_add_guarded("/memory/end-to-end/three-paths", test_three_paths, 60);
	tu_add_guarded("/memory/end-to-end/bvec-crossing-pages", test_bvec_crossing_pages, 60);
	return g_test_run();
}
