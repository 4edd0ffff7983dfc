/* test-store-alloc.c - the chunk and block allocator (src/store/alloc.c):
 * chunks get their copies on distinct devices, the devices with the most
 * free slots first (so devices of different sizes fill in proportion);
 * alloc_new_chunks_possible predicts exactly what allocation then does;
 * a request stays in one piece whenever some chunk can hold it; ENOSPC;
 * blocks freed by a commit come back only once it is durable; overlapping
 * extents at mount are refused; chunk records are checked and round trip;
 * the root reserve is its share of the capacity, kept back from callers
 * other than root only.
 *
 * Every test body runs in a child process (g_test_trap_subprocess): one
 * failed assertion fails its own test and the others still run. */
#define _GNU_SOURCE
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "alloc.h"
#include "testutil.h"
#include "records.h"

#define MiB (1ull << 20)
#define CHUNK_BYTES MiB
#define PER_CHUNK ((uint32_t)(CHUNK_BYTES / DMIOFS_BLOCK)) /* 256 */
#define DATA_OFFSET (9 * MiB)

/* ---- running a body in a child ------------------------------------------- */


/* ---- helpers ---------------------------------------------------------------------- */

static void test_layout(struct layout *l)
{
	memset(l, 0, sizeof(*l));
	l->meta_offset = MiB;
	l->meta_bytes = 8 * MiB;
	l->ckpt_bytes = 3 * MiB;
	l->log_offset = 7 * MiB;
	l->log_bytes = 2 * MiB;
	l->data_offset = DATA_OFFSET;
	l->chunk_bytes = CHUNK_BYTES;
}

/* Devices holding slots[i] chunks each. */
static void make_alloc(struct alloc *a, const uint64_t *slots, uint32_t n, uint32_t copies)
{
	struct layout l;
	uint64_t bytes[DMIOFS_MAX_DEVICES] = { 0 };

	test_layout(&l);
	for (uint32_t i = 0; i < n; i++)
		bytes[i] = DATA_OFFSET + MiB + slots[i] * CHUNK_BYTES + 4096; /* a little spare at the end */
	alloc_init(a, &l, n, copies, bytes);
	for (uint32_t i = 0; i < n; i++)
		g_assert_cmpuint(a->dev_chunks[i], ==, slots[i]);
}

static uint32_t popcount_range(const uint64_t *map, uint32_t n)
{
	uint32_t c = 0;

	for (uint32_t i = 0; i < n; i++)
		c += (uint32_t)(map[i / 64] >> (i % 64) & 1);
	return c;
}

/* free_blocks and every chunk's used agree with the bitmaps. */
static void assert_consistent(const struct alloc *a)
{
	uint64_t free_blocks = 0;

	for (guint i = 0; i < a->chunks->len; i++) {
		const struct chunk *c = g_ptr_array_index(a->chunks, i);

		if (!c)
			continue;
		g_assert_cmpuint(c->id, ==, i);
		g_assert_cmpuint(c->nblocks, ==, PER_CHUNK);
		g_assert_cmpuint(popcount_range(c->bitmap, c->nblocks), ==, c->used);
		free_blocks += c->nblocks - c->used;
	}
	g_assert_cmpuint(a->free_blocks, ==, free_blocks);
}

static bool block_used(struct alloc *a, uint32_t chunk, uint32_t cblock)
{
	const struct chunk *c = alloc_chunk(a, chunk);

	return c->bitmap[cblock / 64] >> (cblock % 64) & 1;
}

/* Exactly one REC_CHUNK record in records, for chunk c; records emptied. */
static void assert_chunk_record(GByteArray *records, const struct chunk *c)
{
	const uint8_t *pos = records->data, *end = records->data + records->len;
	struct record r;

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_CHUNK);
	g_assert_cmpuint(r.u.chunk.id, ==, c->id);
	g_assert_cmpuint(r.u.chunk.ncopies, ==, c->ncopies);
	for (uint32_t k = 0; k < c->ncopies; k++) {
		g_assert_cmpuint(r.u.chunk.stripes[k].dev, ==, c->stripes[k].dev);
		g_assert_cmpuint(r.u.chunk.stripes[k].offset, ==, c->stripes[k].offset);
	}
	g_assert_cmpint(rec_next(&pos, end, &r), ==, 0);
	g_byte_array_set_size(records, 0);
}

/* Allocate whole chunks until ENOSPC, checking each new chunk: copies on
 * distinct devices, each at a slot never used before, the devices chosen
 * among those with the most free slots.  Returns the chunks made;
 * used[d] counts each device's slots. */
static uint64_t fill_with_chunks(struct alloc *a, uint64_t *used)
{
	GByteArray *records = g_byte_array_new();
	GHashTable *seen = g_hash_table_new(g_direct_hash, g_direct_equal);
	uint64_t made = 0;

	memset(used, 0, sizeof(uint64_t) * a->ndevices);
	for (;;) {
		uint64_t free_before[DMIOFS_MAX_DEVICES], predicted = alloc_new_chunks_possible(a);
		uint32_t chunk, cblock, got;
		const struct chunk *c;
		uint64_t least_chosen = UINT64_MAX, most_other = 0;
		bool chosen[DMIOFS_MAX_DEVICES] = { false };
		int err;

		for (uint32_t d = 0; d < a->ndevices; d++)
			free_before[d] = a->dev_chunks[d] - a->dev_next[d];
		err = alloc_blocks(a, PER_CHUNK, &chunk, &cblock, &got, records);
		if (err) {
			g_assert_cmpint(err, ==, -ENOSPC);
			g_assert_cmpuint(predicted, ==, 0);
			g_assert_cmpuint(records->len, ==, 0);
			break;
		}
		g_assert_cmpuint(predicted, >, 0);
		g_assert_cmpuint(alloc_new_chunks_possible(a), ==, predicted - 1);
		g_assert_cmpuint(chunk, ==, made);
		g_assert_cmpuint(cblock, ==, 0);
		g_assert_cmpuint(got, ==, PER_CHUNK);
		c = alloc_chunk(a, chunk);
		g_assert_nonnull(c);
		g_assert_cmpuint(c->ncopies, ==, a->copies);
		g_assert_cmpuint(c->used, ==, PER_CHUNK);
		assert_chunk_record(records, c);
		for (uint32_t k = 0; k < c->ncopies; k++) {
			const struct rec_stripe *s = &c->stripes[k];
			uint64_t slot = (s->offset - DATA_OFFSET) / CHUNK_BYTES;
			gpointer key = GUINT_TO_POINTER((guint)(s->dev << 20 | slot));

			g_assert_cmpuint(s->dev, <, a->ndevices);
			g_assert_cmpuint(s->offset, >=, DATA_OFFSET);
			g_assert_cmpuint((s->offset - DATA_OFFSET) % CHUNK_BYTES, ==, 0);
			g_assert_cmpuint(slot, <, a->dev_chunks[s->dev]);
			g_assert_false(chosen[s->dev]); /* distinct devices */
			chosen[s->dev] = true;
			g_assert_false(g_hash_table_contains(seen, key)); /* never the same slot twice */
			g_hash_table_add(seen, key);
			used[s->dev]++;
		}
		/* greedy: no device left out had more free slots than one chosen */
		for (uint32_t d = 0; d < a->ndevices; d++) {
			if (chosen[d])
				least_chosen = MIN(least_chosen, free_before[d]);
			else if (a->dev_place[d] == PLACE_WRITTEN)
				most_other = MAX(most_other, free_before[d]);
		}
		g_assert_cmpuint(least_chosen, >=, most_other);
		made++;
	}
	assert_consistent(a);
	g_hash_table_destroy(seen);
	g_byte_array_free(records, TRUE);
	return made;
}

/* ---- chunks ---------------------------------------------------------------------------- */

static void test_distinct_devices(void)
{
	static const uint64_t three[] = { 10, 10, 10 }, four[] = { 4, 4, 4, 4 };
	struct alloc a;
	uint64_t used[DMIOFS_MAX_DEVICES];

	make_alloc(&a, three, 3, 2);
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 15);
	for (int d = 0; d < 3; d++)
		g_assert_cmpuint(used[d], ==, 10);
	alloc_destroy(&a);

	make_alloc(&a, four, 4, 3);
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 5);
	g_assert_cmpuint(used[0] + used[1] + used[2] + used[3], ==, 15);
	alloc_destroy(&a);

	make_alloc(&a, four, 4, 4); /* every device in every chunk */
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 4);
	alloc_destroy(&a);
}

static void test_proportion(void)
{
	static const uint64_t big_small[] = { 8, 4, 4 }, mixed[] = { 20, 10, 10, 6 };
	struct alloc a;
	uint64_t used[DMIOFS_MAX_DEVICES];

	/* the big device takes a copy of every chunk, the small ones share */
	make_alloc(&a, big_small, 3, 2);
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 8);
	g_assert_cmpuint(used[0], ==, 8);
	g_assert_cmpuint(used[1], ==, 4);
	g_assert_cmpuint(used[2], ==, 4);
	alloc_destroy(&a);

	/* 46 slots, none above half: every slot gets used */
	make_alloc(&a, mixed, 4, 2);
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 23);
	for (int d = 0; d < 4; d++)
		g_assert_cmpuint(used[d], ==, mixed[d]);
	alloc_destroy(&a);
}

static void test_new_chunks_possible(void)
{
	static const struct {
		uint64_t slots[6];
		uint32_t n, copies;
		uint64_t want;
	} cases[] = {
		{ { 10, 10, 10 }, 3, 2, 15 },
		{ { 10, 1, 1 }, 3, 2, 2 },
		{ { 8, 4, 4 }, 3, 2, 8 },
		{ { 3, 3, 2 }, 3, 2, 4 },
		{ { 7, 7, 7, 7 }, 4, 3, 9 },
		{ { 10, 1 }, 2, 2, 1 },
		{ { 5 }, 1, 1, 5 },
		{ { 6, 0 }, 2, 2, 0 },
		{ { 10 }, 1, 2, 0 }, /* fewer devices than copies */
		{ { 9, 9, 9, 9, 9, 1 }, 6, 5, 9 },
		{ { 100, 60, 50, 10 }, 4, 2, 110 },
		{ { 100, 60, 50, 10 }, 4, 3, 60 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct alloc a;
		uint64_t used[DMIOFS_MAX_DEVICES];

		make_alloc(&a, cases[i].slots, cases[i].n, cases[i].copies);
		if (alloc_new_chunks_possible(&a) != cases[i].want)
			g_printerr("# case %zu: %llu predicted, %llu wanted\n", i,
				   (unsigned long long)alloc_new_chunks_possible(&a), (unsigned long long)cases[i].want);
		g_assert_cmpuint(alloc_new_chunks_possible(&a), ==, cases[i].want);
		/* and allocation really makes that many */
		g_assert_cmpuint(fill_with_chunks(&a, used), ==, cases[i].want);
		g_assert_cmpuint(alloc_new_chunks_possible(&a), ==, 0);
		alloc_destroy(&a);
	}
}

/* A failed device takes no new chunks while the devices written can hold
 * every copy, and the prediction knows it; when they cannot, the failed
 * devices take the copies the others cannot (written short). */
static void test_unusable_device(void)
{
	static const uint64_t three[] = { 10, 10, 10 };
	struct alloc a;
	uint64_t used[DMIOFS_MAX_DEVICES];

	make_alloc(&a, three, 3, 2);
	a.dev_place[1] = PLACE_SHORT;
	g_assert_cmpuint(alloc_new_chunks_possible(&a), ==, 10);
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 10);
	g_assert_cmpuint(used[1], ==, 0);
	alloc_destroy(&a);

	make_alloc(&a, three, 3, 2);
	a.dev_place[0] = a.dev_place[2] = PLACE_SHORT;
	g_assert_cmpuint(alloc_new_chunks_possible(&a), ==, 10);
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 10);
	g_assert_cmpuint(used[1], ==, 10);
	g_assert_cmpuint(used[0] + used[2], ==, 10);
	alloc_destroy(&a);

	make_alloc(&a, three, 3, 2);
	a.dev_place[0] = PLACE_NONE;
	a.dev_place[2] = PLACE_SHORT;
	g_assert_cmpuint(alloc_new_chunks_possible(&a), ==, 10);
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 10);
	g_assert_cmpuint(used[0], ==, 0);
	alloc_destroy(&a);

	make_alloc(&a, three, 3, 2);
	a.dev_place[0] = a.dev_place[2] = PLACE_NONE;
	g_assert_cmpuint(alloc_new_chunks_possible(&a), ==, 0);
	g_assert_cmpuint(fill_with_chunks(&a, used), ==, 0);
	alloc_destroy(&a);
}

/* ---- blocks ------------------------------------------------------------------------------ */

static void take(struct alloc *a, uint32_t want, uint32_t e_chunk, uint32_t e_cblock, uint32_t e_got,
		 GByteArray *records, bool new_chunk)
{
	uint32_t chunk = 999, cblock = 999, got = 999;

	g_assert_cmpint(alloc_blocks(a, want, &chunk, &cblock, &got, records), ==, 0);
	g_assert_cmpuint(chunk, ==, e_chunk);
	g_assert_cmpuint(cblock, ==, e_cblock);
	g_assert_cmpuint(got, ==, e_got);
	for (uint32_t b = 0; b < got; b++)
		g_assert_true(block_used(a, chunk, cblock + b));
	if (new_chunk)
		assert_chunk_record(records, alloc_chunk(a, chunk));
	else
		g_assert_cmpuint(records->len, ==, 0);
	assert_consistent(a);
}

static void test_keeps_request_whole(void)
{
	static const uint64_t slots[] = { 4, 4 };
	GByteArray *records = g_byte_array_new();
	struct alloc a;
	uint32_t chunk, cblock, got;

	make_alloc(&a, slots, 2, 2);
	g_assert_cmpint(alloc_blocks(&a, 0, &chunk, &cblock, &got, records), ==, -EINVAL);
	take(&a, PER_CHUNK, 0, 0, PER_CHUNK, records, true);
	take(&a, 1000, 1, 0, PER_CHUNK, records, true); /* at most a chunk at a time */
	/* holes: 3 and 2 blocks in chunk 0, 10 in chunk 1 */
	alloc_free_now(&a, 0, 10, 3);
	alloc_free_now(&a, 0, 50, 2);
	alloc_free_now(&a, 1, 100, 10);
	assert_consistent(&a);
	g_assert_cmpuint(a.free_blocks, ==, 15);

	/* the search starts in chunk 0, whose holes are too small: chunk 1 */
	a.current = 0;
	take(&a, 10, 1, 100, 10, records, false);
	/* a 3-block request fits the first hole exactly */
	take(&a, 3, 0, 10, 3, records, false);
	/* 5 fits no hole whole: a new chunk rather than splitting */
	take(&a, 5, 2, 0, 5, records, true);
	/* a whole chunk's worth prefers a new chunk to the 251 blocks left... */
	take(&a, PER_CHUNK, 3, 0, PER_CHUNK, records, true);
	/* ...which a request of their size then gets whole */
	take(&a, PER_CHUNK - 5, 2, 5, PER_CHUNK - 5, records, false);
	g_assert_cmpuint(alloc_new_chunks_possible(&a), ==, 0);
	/* no new chunk possible and no hole of 10: split over what is left */
	take(&a, 10, 0, 50, 2, records, false);
	g_assert_cmpint(alloc_blocks(&a, 1, &chunk, &cblock, &got, records), ==, -ENOSPC);
	g_assert_cmpuint(records->len, ==, 0);
	g_assert_cmpuint(a.free_blocks, ==, 0);
	alloc_destroy(&a);
	g_byte_array_free(records, TRUE);
}

static void test_enospc(void)
{
	static const uint64_t slots[] = { 2, 2 }, one[] = { 5 };
	GByteArray *records = g_byte_array_new();
	struct alloc a;
	uint32_t chunk, cblock, got;
	uint64_t total, avail;

	make_alloc(&a, slots, 2, 2);
	alloc_space(&a, &total, &avail);
	g_assert_cmpuint(total, ==, 2 * PER_CHUNK);
	g_assert_cmpuint(avail, ==, 2 * PER_CHUNK);
	take(&a, 100, 0, 0, 100, records, true);
	alloc_space(&a, &total, &avail);
	g_assert_cmpuint(total, ==, 2 * PER_CHUNK);
	g_assert_cmpuint(avail, ==, 2 * PER_CHUNK - 100);
	take(&a, 2 * PER_CHUNK, 1, 0, PER_CHUNK, records, true);
	take(&a, 2 * PER_CHUNK, 0, 100, PER_CHUNK - 100, records, false);
	g_assert_cmpint(alloc_blocks(&a, 1, &chunk, &cblock, &got, records), ==, -ENOSPC);
	g_assert_cmpint(alloc_blocks(&a, 1000, &chunk, &cblock, &got, records), ==, -ENOSPC);
	alloc_space(&a, &total, &avail);
	g_assert_cmpuint(avail, ==, 0);
	/* a block given back now is found again, wherever the search stands */
	alloc_free_now(&a, 1, 77, 1);
	take(&a, 8, 1, 77, 1, records, false);
	alloc_destroy(&a);

	/* more copies than devices: nothing can be allocated */
	make_alloc(&a, one, 1, 2);
	g_assert_cmpint(alloc_blocks(&a, 1, &chunk, &cblock, &got, records), ==, -ENOSPC);
	g_assert_cmpuint(records->len, ==, 0);
	alloc_space(&a, &total, &avail);
	g_assert_cmpuint(total, ==, 0);
	alloc_destroy(&a);
	g_byte_array_free(records, TRUE);
}

/* The root reserve is a share of the capacity (chunks made and still
 * possible), whatever is used; only callers who may not use it find it
 * kept back, on top of the blocks always kept for zeroing. */
static void test_root_reserve(void)
{
	static const uint64_t slots[] = { 10, 10 }, uneven[] = { 3, 7, 7 };
	GByteArray *records = g_byte_array_new();
	struct alloc a;

	make_alloc(&a, slots, 2, 2); /* 10 chunks: 2560 blocks */
	g_assert_cmpuint(alloc_root_reserve(&a, 0), ==, 0);
	g_assert_cmpuint(alloc_root_reserve(&a, 50), ==, 128);   /* 5% */
	g_assert_cmpuint(alloc_root_reserve(&a, 5), ==, 12);     /* 0.5%, rounded down */
	g_assert_cmpuint(alloc_root_reserve(&a, DMIOFS_ROOT_RESERVE_MAX), ==, 1280);
	a.reserve = 7; /* as the mount sets it */
	g_assert_cmpuint(alloc_kept_back(&a, 50, false), ==, 7 + 128);
	g_assert_cmpuint(alloc_kept_back(&a, 50, true), ==, 7);
	g_assert_cmpuint(alloc_kept_back(&a, 0, false), ==, 7);
	/* what a write may take: the usable blocks less those */
	g_assert_cmpuint(alloc_writable_blocks(&a, 50, false), ==, 2560 - 7 - 128);
	g_assert_cmpuint(alloc_writable_blocks(&a, 50, true), ==, 2560 - 7);
	/* filling it does not shrink the reserve: it is of the capacity */
	take(&a, 3 * PER_CHUNK, 0, 0, PER_CHUNK, records, true);
	take(&a, 3 * PER_CHUNK, 1, 0, PER_CHUNK, records, true);
	g_assert_cmpuint(alloc_root_reserve(&a, 50), ==, 128);
	g_assert_cmpuint(alloc_writable_blocks(&a, 50, false), ==, alloc_usable_blocks(&a) - 7 - 128);
	/* full for everyone but root: nothing, never an underflow */
	for (uint32_t i = 2; i < 10; i++)
		take(&a, PER_CHUNK, i, 0, PER_CHUNK, records, true);
	g_assert_cmpuint(alloc_usable_blocks(&a), ==, 0);
	g_assert_cmpuint(alloc_writable_blocks(&a, 50, false), ==, 0);
	g_assert_cmpuint(alloc_writable_blocks(&a, 50, true), ==, 0);
	alloc_destroy(&a);

	/* devices of different sizes: of the capacity two copies can use
	 * (17 slots make 8 chunks), not of the raw slots */
	make_alloc(&a, uneven, 3, 2);
	g_assert_cmpuint(alloc_root_reserve(&a, 100), ==, 8 * PER_CHUNK / 10);
	alloc_destroy(&a);
	g_byte_array_free(records, TRUE);
}

static void test_pending_frees(void)
{
	static const uint64_t slots[] = { 2, 2 };
	GByteArray *records = g_byte_array_new();
	struct alloc a;
	uint32_t chunk, cblock, got;
	uint64_t total, avail;

	make_alloc(&a, slots, 2, 2);
	take(&a, PER_CHUNK, 0, 0, PER_CHUNK, records, true);
	take(&a, PER_CHUNK, 1, 0, PER_CHUNK, records, true);
	alloc_free_after(&a, 5, 0, 0, 10);
	alloc_free_after(&a, 6, 0, 20, 5);
	alloc_free_after(&a, 7, 1, 0, 1);
	g_assert_cmpuint(a.pending_blocks, ==, 16);
	g_assert_cmpuint(a.free_blocks, ==, 0);
	assert_consistent(&a);
	/* statfs counts them as free already */
	alloc_space(&a, &total, &avail);
	g_assert_cmpuint(avail, ==, 16);
	/* but they are not handed out before their commit is durable */
	g_assert_cmpint(alloc_blocks(&a, 1, &chunk, &cblock, &got, records), ==, -ENOSPC);
	g_assert_true(block_used(&a, 0, 0));
	alloc_release(&a, 4);
	g_assert_cmpuint(a.pending_blocks, ==, 16);
	g_assert_cmpint(alloc_blocks(&a, 1, &chunk, &cblock, &got, records), ==, -ENOSPC);
	alloc_release(&a, 5);
	g_assert_cmpuint(a.pending_blocks, ==, 6);
	g_assert_cmpuint(a.free_blocks, ==, 10);
	assert_consistent(&a);
	g_assert_false(block_used(&a, 0, 0));
	g_assert_true(block_used(&a, 0, 20));
	take(&a, 20, 0, 0, 10, records, false);
	g_assert_cmpint(alloc_blocks(&a, 1, &chunk, &cblock, &got, records), ==, -ENOSPC);
	alloc_release(&a, 7); /* both remaining commits at once */
	g_assert_cmpuint(a.pending_blocks, ==, 0);
	g_assert_cmpuint(a.free_blocks, ==, 6);
	assert_consistent(&a);
	take(&a, 5, 0, 20, 5, records, false);
	take(&a, 5, 1, 0, 1, records, false);
	alloc_release(&a, 100); /* nothing left: no effect */
	g_assert_cmpuint(a.free_blocks, ==, 0);
	assert_consistent(&a);
	alloc_destroy(&a);
	g_byte_array_free(records, TRUE);
}

static void test_mark_used(void)
{
	static const uint64_t slots[] = { 3, 3 };
	struct rec_chunk c0 = { .id = 0, .ncopies = 2,
				.stripes = { { 0, DATA_OFFSET + 2 * CHUNK_BYTES }, { 1, DATA_OFFSET } } };
	struct alloc a;

	make_alloc(&a, slots, 2, 2);
	g_assert_cmpint(alloc_apply_chunk(&a, &c0), ==, 0);
	g_assert_cmpuint(a.free_blocks, ==, PER_CHUNK);
	g_assert_cmpuint(a.dev_next[0], ==, 3);
	g_assert_cmpuint(a.dev_next[1], ==, 1);
	g_assert_cmpint(alloc_mark_used(&a, 0, 10, 10), ==, 0);
	g_assert_cmpuint(alloc_chunk(&a, 0)->used, ==, 10);
	g_assert_cmpuint(a.free_blocks, ==, PER_CHUNK - 10);
	/* two extents sharing a block */
	g_assert_cmpint(alloc_mark_used(&a, 0, 19, 5), ==, -EUCLEAN);
	g_assert_cmpint(alloc_mark_used(&a, 0, 5, 6), ==, -EUCLEAN);
	g_assert_cmpint(alloc_mark_used(&a, 0, 0, PER_CHUNK), ==, -EUCLEAN);
	/* a refused mark changes nothing */
	g_assert_cmpuint(alloc_chunk(&a, 0)->used, ==, 10);
	g_assert_false(block_used(&a, 0, 20));
	g_assert_false(block_used(&a, 0, 5));
	assert_consistent(&a);
	g_assert_cmpint(alloc_mark_used(&a, 0, 20, 4), ==, 0);
	g_assert_cmpint(alloc_mark_used(&a, 0, 0, 10), ==, 0);
	/* beyond the chunk, or no chunk */
	g_assert_cmpint(alloc_mark_used(&a, 0, PER_CHUNK - 1, 2), ==, -EUCLEAN);
	g_assert_cmpint(alloc_mark_used(&a, 0, PER_CHUNK, 1), ==, -EUCLEAN);
	g_assert_cmpint(alloc_mark_used(&a, 0, 100, UINT32_MAX), ==, -EUCLEAN);
	g_assert_cmpint(alloc_mark_used(&a, 1, 0, 1), ==, -EUCLEAN);
	g_assert_cmpint(alloc_mark_used(&a, 12345, 0, 1), ==, -EUCLEAN);
	g_assert_cmpint(alloc_mark_used(&a, 0, PER_CHUNK - 1, 1), ==, 0);
	g_assert_cmpuint(alloc_chunk(&a, 0)->used, ==, 25);
	assert_consistent(&a);
	alloc_destroy(&a);
}

static void test_apply_chunk_checks(void)
{
	static const uint64_t slots[] = { 3, 3, 3 };
	struct alloc a;
	const struct rec_chunk good = { .id = 0, .ncopies = 2,
					.stripes = { { 0, DATA_OFFSET }, { 2, DATA_OFFSET + CHUNK_BYTES } } };
	struct rec_chunk c;

	make_alloc(&a, slots, 3, 2);
	g_assert_cmpint(alloc_apply_chunk(&a, &good), ==, 0);
	g_assert_cmpint(alloc_apply_chunk(&a, &good), ==, -EUCLEAN); /* the same id twice */

	c = good;
	c.id = 1;
	c.stripes[1].dev = 0;
	c.stripes[1].offset = DATA_OFFSET + 2 * CHUNK_BYTES;
	g_assert_cmpint(alloc_apply_chunk(&a, &c), ==, -EUCLEAN); /* both copies on device 0 */
	c = good;
	c.id = 1;
	c.stripes[0].dev = 3;
	g_assert_cmpint(alloc_apply_chunk(&a, &c), ==, -EUCLEAN); /* no device 3 */
	c = good;
	c.id = 1;
	c.stripes[0].offset = DATA_OFFSET + 4096;
	g_assert_cmpint(alloc_apply_chunk(&a, &c), ==, -EUCLEAN); /* not at a slot */
	c = good;
	c.id = 1;
	c.stripes[0].offset = DATA_OFFSET - CHUNK_BYTES;
	g_assert_cmpint(alloc_apply_chunk(&a, &c), ==, -EUCLEAN); /* in the metadata */
	c = good;
	c.id = 1;
	c.stripes[0].offset = DATA_OFFSET + 3 * CHUNK_BYTES;
	g_assert_cmpint(alloc_apply_chunk(&a, &c), ==, -EUCLEAN); /* past the device's slots */
	c = good;
	c.id = 1;
	c.ncopies = 0;
	g_assert_cmpint(alloc_apply_chunk(&a, &c), ==, -EUCLEAN);
	c = good;
	c.id = 1;
	c.ncopies = DMIOFS_MAX_COPIES + 1;
	g_assert_cmpint(alloc_apply_chunk(&a, &c), ==, -EUCLEAN);
	/* none of the refused ones left a trace */
	g_assert_cmpuint(a.chunks->len, ==, 1);
	g_assert_cmpuint(a.free_blocks, ==, PER_CHUNK);
	g_assert_cmpuint(a.dev_next[0], ==, 1);
	g_assert_cmpuint(a.dev_next[1], ==, 0);
	g_assert_cmpuint(a.dev_next[2], ==, 2);
	assert_consistent(&a);
	alloc_destroy(&a);
}

/* Chunk ids are handed out densely; a checkpoint or log naming a chunk
 * whose predecessors are missing is either refused, or the allocator
 * must still work (serialise, count space, report usage) with the gap. */
static void test_chunk_id_gap(void)
{
	static const uint64_t slots[] = { 3, 3 };
	struct alloc a;
	const struct rec_chunk c = { .id = 2, .ncopies = 2, .stripes = { { 0, DATA_OFFSET }, { 1, DATA_OFFSET } } };
	int err;

	make_alloc(&a, slots, 2, 2);
	err = alloc_apply_chunk(&a, &c);
	if (err) {
		g_assert_cmpint(err, ==, -EUCLEAN);
	} else {
		GByteArray *out = g_byte_array_new();
		uint64_t total, avail;

		alloc_serialize(&a, out);
		g_assert_cmpuint(out->len, >, 0);
		alloc_space(&a, &total, &avail);
		g_assert_cmpuint(alloc_dev_used_bytes(&a, 0), ==, 0);
		g_byte_array_free(out, TRUE);
	}
	alloc_destroy(&a);
}

static void test_serialize(void)
{
	static const uint64_t slots[] = { 6, 5, 4 };
	GByteArray *logged = g_byte_array_new(), *out = g_byte_array_new(), *none = g_byte_array_new();
	struct alloc a, b;
	uint32_t chunk, cblock, got;
	const uint8_t *pos, *end;
	struct record r;
	uint32_t n = 0;

	make_alloc(&a, slots, 3, 2);
	for (int i = 0; i < 4; i++)
		g_assert_cmpint(alloc_blocks(&a, PER_CHUNK - 6, &chunk, &cblock, &got, logged), ==, 0);
	g_assert_cmpuint(a.chunks->len, ==, 4);
	g_assert_cmpuint(alloc_dev_used_bytes(&a, 0) + alloc_dev_used_bytes(&a, 1) + alloc_dev_used_bytes(&a, 2), ==,
			 2ull * 4 * (PER_CHUNK - 6) * DMIOFS_BLOCK);
	/* the checkpoint form is the log form: the same records, in id order */
	alloc_serialize(&a, out);
	g_assert_cmpmem(out->data, out->len, logged->data, logged->len);

	make_alloc(&b, slots, 3, 2);
	pos = out->data;
	end = out->data + out->len;
	while (rec_next(&pos, end, &r) > 0) {
		const struct chunk *x = alloc_chunk(&a, n);

		g_assert_cmpint(r.type, ==, REC_CHUNK);
		g_assert_cmpuint(r.u.chunk.id, ==, n);
		g_assert_cmpint(alloc_apply_chunk(&b, &r.u.chunk), ==, 0);
		g_assert_cmpuint(alloc_chunk(&b, n)->ncopies, ==, x->ncopies);
		for (uint32_t k = 0; k < x->ncopies; k++) { /* field by field: the struct has padding */
			g_assert_cmpuint(alloc_chunk(&b, n)->stripes[k].dev, ==, x->stripes[k].dev);
			g_assert_cmpuint(alloc_chunk(&b, n)->stripes[k].offset, ==, x->stripes[k].offset);
		}
		n++;
	}
	g_assert_cmpuint(n, ==, 4);
	for (uint32_t d = 0; d < 3; d++)
		g_assert_cmpuint(b.dev_next[d], ==, a.dev_next[d]);
	g_assert_cmpuint(alloc_new_chunks_possible(&b), ==, alloc_new_chunks_possible(&a));
	/* usage is not in the records: every block of b is free until marked */
	g_assert_cmpuint(b.free_blocks, ==, 4 * PER_CHUNK);
	assert_consistent(&b);
	/* and the next chunk of each lands in the same place */
	g_byte_array_set_size(logged, 0);
	g_assert_cmpint(alloc_blocks(&a, PER_CHUNK, &chunk, &cblock, &got, logged), ==, 0);
	g_assert_cmpuint(chunk, ==, 4);
	for (int i = 0; i < 4; i++) /* fill b's chunks so it needs a new one too */
		g_assert_cmpint(alloc_mark_used(&b, (uint32_t)i, 0, PER_CHUNK), ==, 0);
	g_assert_cmpint(alloc_blocks(&b, PER_CHUNK, &chunk, &cblock, &got, none), ==, 0);
	g_assert_cmpuint(chunk, ==, 4);
	g_assert_cmpmem(none->data, none->len, logged->data, logged->len);
	alloc_destroy(&a);
	alloc_destroy(&b);
	g_byte_array_free(logged, TRUE);
	g_byte_array_free(out, TRUE);
	g_byte_array_free(none, TRUE);
}

/* ---- main ---------------------------------------------------------------------------------- */

/* ---- stale copies and moving copies -------------------------------------------------------- */

/* One chunk of two copies on devices 0 and 1, made through the records. */
static struct chunk *one_chunk(struct alloc *a)
{
	static const uint64_t three[] = { 4, 4, 4 };
	struct rec_chunk r = { .id = 0, .ncopies = 2, .stripes = { { 0, DATA_OFFSET }, { 1, DATA_OFFSET } } };

	make_alloc(a, three, 3, 2);
	g_assert_cmpint(alloc_apply_chunk(a, &r), ==, 0);
	return alloc_chunk(a, 0);
}

/* Stale blocks are counted per copy, per device and in runs (what a
 * checkpoint spends on them), and walked run by run. */
static void test_stale_runs(void)
{
	struct alloc a;
	struct chunk *c = one_chunk(&a);
	uint32_t at = 0, n = 0;

	g_assert_cmpint(alloc_apply_stale(&a, 0, 1, 10, 5, true), ==, 0);
	g_assert_cmpint(alloc_apply_stale(&a, 0, 1, 20, 5, true), ==, 0);
	g_assert_cmpuint(c->nstale[1], ==, 10);
	g_assert_cmpuint(a.dev_stale[1], ==, 10);
	g_assert_cmpuint(a.stale_runs, ==, 2);
	g_assert_cmpuint(alloc_stale_count(c, 1, 0, PER_CHUNK), ==, 10);
	g_assert_cmpuint(alloc_stale_count(c, 0, 0, PER_CHUNK), ==, 0);
	/* the gap filled: one run */
	g_assert_cmpint(alloc_apply_stale(&a, 0, 1, 15, 5, true), ==, 0);
	g_assert_cmpuint(a.stale_runs, ==, 1);
	g_assert_cmpuint(a.dev_stale[1], ==, 15);
	g_assert_true(alloc_stale_next(c, 1, &at, &n));
	g_assert_cmpuint(at, ==, 10);
	g_assert_cmpuint(n, ==, 15);
	/* a hole punched in it: two runs; setting what is set counts nothing */
	g_assert_cmpint(alloc_apply_stale(&a, 0, 1, 12, 2, false), ==, 0);
	g_assert_cmpint(alloc_apply_stale(&a, 0, 1, 10, 2, true), ==, 0);
	g_assert_cmpuint(a.stale_runs, ==, 2);
	g_assert_cmpuint(a.dev_stale[1], ==, 13);
	at = 12; /* past the first run */
	g_assert_true(alloc_stale_next(c, 1, &at, &n));
	g_assert_cmpuint(at, ==, 14);
	g_assert_cmpuint(n, ==, 11);
	at += n;
	g_assert_false(alloc_stale_next(c, 1, &at, &n));
	/* all made good: the bitmap goes */
	g_assert_cmpint(alloc_apply_stale(&a, 0, 1, 0, PER_CHUNK, false), ==, 0);
	g_assert_null(c->stale[1]);
	g_assert_cmpuint(a.stale_runs, ==, 0);
	g_assert_cmpuint(a.dev_stale[1], ==, 0);
	/* a device the chunk has no copy on, a range past the end */
	g_assert_cmpint(alloc_apply_stale(&a, 0, 2, 0, 1, true), ==, -EUCLEAN);
	g_assert_cmpint(alloc_apply_stale(&a, 0, 1, PER_CHUNK - 1, 2, true), ==, -EUCLEAN);
	g_assert_cmpint(alloc_apply_stale(&a, 1, 1, 0, 1, true), ==, -EUCLEAN);
	alloc_destroy(&a);
}

/* A copy added to a chunk is stale whole; the blocks no file uses are
 * forgotten by records; dropping a copy takes its staleness with it. */
static void test_stripe_add_drop(void)
{
	struct alloc a;
	struct chunk *c = one_chunk(&a);
	GByteArray *r = g_byte_array_new();
	const uint8_t *pos, *end;
	struct record rec;
	uint64_t off = alloc_next_slot(&a, 2);

	g_assert_cmpuint(off, ==, DATA_OFFSET);
	g_assert_cmpint(alloc_apply_stripe_add(&a, 0, 1, off), ==, -EUCLEAN); /* already a copy there */
	g_assert_cmpint(alloc_apply_stripe_add(&a, 0, 2, off + 1), ==, -EUCLEAN); /* not a slot */
	g_assert_cmpint(alloc_apply_stripe_add(&a, 0, 2, off), ==, 0);
	g_assert_cmpuint(c->ncopies, ==, 3);
	g_assert_cmpuint(a.stripes, ==, 3);
	g_assert_cmpuint(a.dev_stale[2], ==, PER_CHUNK);
	g_assert_cmpuint(alloc_free_slots(&a, 2), ==, 3);
	/* two blocks in use: only they stay stale */
	g_assert_cmpint(alloc_mark_used(&a, 0, 7, 2), ==, 0);
	alloc_put_unused_stale(c, 2, r);
	pos = r->data;
	end = r->data + r->len;
	while (rec_next(&pos, end, &rec) > 0)
		g_assert_cmpint(alloc_apply_stale(&a, rec.u.stale.chunk, rec.u.stale.dev, rec.u.stale.cblock,
						  rec.u.stale.n, rec.u.stale.stale),
				==, 0);
	g_assert_cmpuint(a.dev_stale[2], ==, 2);
	g_assert_cmpuint(alloc_stale_count(c, 2, 7, 2), ==, 2);
	/* drop the first copy: the others move down, staleness with them */
	g_assert_cmpint(alloc_apply_stripe_drop(&a, 0, 0), ==, 0);
	g_assert_cmpuint(c->ncopies, ==, 2);
	g_assert_cmpuint(c->stripes[0].dev, ==, 1);
	g_assert_cmpuint(c->stripes[1].dev, ==, 2);
	g_assert_cmpuint(alloc_stale_count(c, 1, 7, 2), ==, 2);
	g_assert_cmpint(alloc_apply_stripe_drop(&a, 0, 2), ==, 0);
	g_assert_cmpuint(a.dev_stale[2], ==, 0);
	g_assert_cmpuint(a.stale_runs, ==, 0);
	g_assert_cmpint(alloc_apply_stripe_drop(&a, 0, 1), ==, -EUCLEAN); /* the last copy stays */
	g_byte_array_free(r, TRUE);
	alloc_destroy(&a);
}

#define CASE(path, fn) tu_add_guarded_nodir("/store-alloc/" path, fn, 30)

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	CASE("chunks/distinct-devices", test_distinct_devices);
	CASE("chunks/proportion", test_proportion);
	CASE("chunks/new-chunks-possible", test_new_chunks_possible);
	CASE("chunks/unusable-device", test_unusable_device);
	CASE("chunks/apply-checks", test_apply_chunk_checks);
	CASE("chunks/id-gap", test_chunk_id_gap);
	CASE("chunks/serialize", test_serialize);
	CASE("blocks/keep-request-whole", test_keeps_request_whole);
	CASE("blocks/enospc", test_enospc);
	CASE("blocks/pending-frees", test_pending_frees);
	CASE("blocks/root-reserve", test_root_reserve);
	CASE("blocks/mark-used", test_mark_used);
	CASE("stale/runs", test_stale_runs);
	CASE("stale/stripe-add-drop", test_stripe_add_drop);
	return g_test_run();
}
