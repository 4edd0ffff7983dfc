/* alloc.c - chunk and block allocation (alloc.h). */
#include <errno.h>
#include <string.h>

#include "alloc.h"

struct pending_free {
	uint64_t seq;
	uint32_t chunk, cblock, n;
};

void alloc_init(struct alloc *a, const struct layout *l, uint32_t ndevices, uint32_t copies,
		const uint64_t *dev_bytes)
{
	memset(a, 0, sizeof(*a));
	a->layout = *l;
	a->ndevices = ndevices;
	a->copies = copies;
	for (uint32_t i = 0; i < ndevices; i++) {
		a->dev_chunks[i] = layout_chunks(l, dev_bytes[i]);
		a->dev_place[i] = PLACE_WRITTEN;
	}
	a->chunks = g_ptr_array_new();
	a->pending = g_array_new(FALSE, FALSE, sizeof(struct pending_free));
}

void alloc_destroy(struct alloc *a)
{
	if (!a->chunks)
		return;
	for (guint i = 0; i < a->chunks->len; i++) {
		struct chunk *c = g_ptr_array_index(a->chunks, i);

		for (uint32_t k = 0; c && k < DMIOFS_MAX_COPIES; k++)
			g_free(c->stale[k]);
		if (c)
			g_free(c->bitmap);
		g_free(c);
	}
	g_ptr_array_free(a->chunks, TRUE);
	g_array_free(a->pending, TRUE);
	a->chunks = NULL;
}

struct chunk *alloc_chunk(struct alloc *a, uint32_t id)
{
	return id < a->chunks->len ? g_ptr_array_index(a->chunks, id) : NULL;
}

static uint64_t slot_of(const struct alloc *a, uint64_t offset)
{
	return (offset - a->layout.data_offset) / a->layout.chunk_bytes;
}

int alloc_apply_chunk(struct alloc *a, const struct rec_chunk *r)
{
	uint32_t nblocks = (uint32_t)(a->layout.chunk_bytes / DMIOFS_BLOCK);
	struct chunk *c;

	if (r->ncopies == 0 || r->ncopies > DMIOFS_MAX_COPIES || alloc_chunk(a, r->id))
		return -EUCLEAN;
	for (uint32_t i = 0; i < r->ncopies; i++) {
		const struct rec_stripe *s = &r->stripes[i];

		if (s->dev >= a->ndevices || s->offset < a->layout.data_offset ||
		    (s->offset - a->layout.data_offset) % a->layout.chunk_bytes ||
		    slot_of(a, s->offset) >= a->dev_chunks[s->dev])
			return -EUCLEAN;
		for (uint32_t j = 0; j < i; j++)
			if (r->stripes[j].dev == s->dev)
				return -EUCLEAN; /* copies must be on distinct devices */
	}
	c = g_new0(struct chunk, 1);
	c->id = r->id;
	c->ncopies = r->ncopies;
	memcpy(c->stripes, r->stripes, sizeof(c->stripes));
	c->nblocks = nblocks;
	c->bitmap = g_new0(uint64_t, (nblocks + 63) / 64);
	if (r->id >= a->chunks->len)
		g_ptr_array_set_size(a->chunks, (gint)r->id + 1);
	g_ptr_array_index(a->chunks, r->id) = c;
	for (uint32_t i = 0; i < r->ncopies; i++) {
		uint64_t slot = slot_of(a, r->stripes[i].offset);

		if (slot + 1 > a->dev_next[r->stripes[i].dev])
			a->dev_next[r->stripes[i].dev] = slot + 1;
	}
	a->free_blocks += nblocks;
	a->stripes += r->ncopies;
	return 0;
}

static bool bit_test(const uint64_t *map, uint32_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void bits_set(uint64_t *map, uint32_t from, uint32_t n, bool on)
{
	for (uint32_t i = from; i < from + n; i++) {
		if (on)
			map[i / 64] |= 1ull << (i % 64);
		else
			map[i / 64] &= ~(1ull << (i % 64));
	}
}

int alloc_mark_used(struct alloc *a, uint32_t id, uint32_t cblock, uint32_t n)
{
	struct chunk *c = alloc_chunk(a, id);

	if (!c || cblock >= c->nblocks || n > c->nblocks - cblock)
		return -EUCLEAN;
	for (uint32_t i = cblock; i < cblock + n; i++)
		if (bit_test(c->bitmap, i))
			return -EUCLEAN; /* two extents share a block */
	bits_set(c->bitmap, cblock, n, true);
	c->used += n;
	a->free_blocks -= n;
	return 0;
}

/* A free run in the chunk: the first of at least `need` blocks (taking
 * up to want of it), searching from the hint and wrapping once. */
static bool chunk_take(struct chunk *c, uint32_t need, uint32_t want, uint32_t *cblock, uint32_t *got)
{
	for (uint32_t pass = 0; pass < 2; pass++) {
		uint32_t i = pass ? 0 : c->hint, stop = pass ? c->hint : c->nblocks;

		while (i < stop) {
			uint32_t run = 0;

			if (c->bitmap[i / 64] == ~0ull) { /* a full word: skip it whole */
				i = (i / 64 + 1) * 64;
				continue;
			}
			if (bit_test(c->bitmap, i)) {
				i++;
				continue;
			}
			while (i + run < c->nblocks && run < want && !bit_test(c->bitmap, i + run))
				run++;
			if (run < need) {
				i += run;
				continue;
			}
			*cblock = i;
			*got = run;
			bits_set(c->bitmap, i, run, true);
			c->used += run;
			c->hint = i + run < c->nblocks ? i + run : 0;
			return true;
		}
	}
	return false;
}

/* Does device d make a better home for a new copy than device e: one
 * that is written over one that is away, then the one with more room. */
static bool better_home(const struct alloc *a, uint32_t d, int e, const uint64_t *free_slots)
{
	if (e < 0)
		return true;
	if (a->dev_place[d] != a->dev_place[e])
		return a->dev_place[d] > a->dev_place[e];
	return free_slots[d] > free_slots[e];
}

/* Pick `copies` distinct devices for a new chunk, the best homes first. */
static int pick_devices(const struct alloc *a, uint32_t *devs)
{
	bool taken[DMIOFS_MAX_DEVICES] = { false };
	uint64_t free_slots[DMIOFS_MAX_DEVICES];

	for (uint32_t d = 0; d < a->ndevices; d++)
		free_slots[d] = a->dev_chunks[d] - a->dev_next[d];
	for (uint32_t k = 0; k < a->copies; k++) {
		int best = -1;

		for (uint32_t d = 0; d < a->ndevices; d++)
			if (!taken[d] && a->dev_place[d] != PLACE_NONE && free_slots[d] && better_home(a, d, best, free_slots))
				best = (int)d;
		/* A chunk no device would write is of no use. */
		if (best < 0 || (k == 0 && a->dev_place[best] != PLACE_WRITTEN))
			return -ENOSPC;
		taken[best] = true;
		devs[k] = (uint32_t)best;
	}
	return 0;
}

static int new_chunk(struct alloc *a, GByteArray *records, uint32_t *id)
{
	struct rec_chunk r = { .id = a->chunks->len, .ncopies = a->copies };
	uint32_t devs[DMIOFS_MAX_COPIES];
	int err = pick_devices(a, devs);

	if (err)
		return err;
	for (uint32_t k = 0; k < a->copies; k++) {
		r.stripes[k].dev = devs[k];
		r.stripes[k].offset = a->layout.data_offset + a->dev_next[devs[k]] * a->layout.chunk_bytes;
	}
	err = alloc_apply_chunk(a, &r);
	if (err)
		return err;
	rec_put_chunk(records, &r);
	*id = r.id;
	return 0;
}

/* Try every chunk, the current one first, for a run of at least need. */
static bool take_from_chunks(struct alloc *a, uint32_t need, uint32_t want, uint32_t *chunk, uint32_t *cblock,
			     uint32_t *got)
{
	uint32_t nchunks = a->chunks->len;

	for (uint32_t k = 0; k < nchunks; k++) {
		uint32_t id = (a->current + k) % nchunks;
		struct chunk *c = alloc_chunk(a, id);

		if (!c || c->nblocks - c->used < need)
			continue;
		if (chunk_take(c, need, want, cblock, got)) {
			a->current = id;
			*chunk = id;
			return true;
		}
	}
	return false;
}

int alloc_blocks(struct alloc *a, uint32_t want, uint32_t *chunk, uint32_t *cblock, uint32_t *got,
		 GByteArray *records)
{
	uint32_t per_chunk = (uint32_t)(a->layout.chunk_bytes / DMIOFS_BLOCK);
	uint32_t whole = want < per_chunk ? want : per_chunk;
	uint32_t id;

	if (!want)
		return -EINVAL;
	/* Keep a request in one piece where any chunk can; then a new chunk;
	 * only then split it over whatever space is left. */
	if (!take_from_chunks(a, whole, want, chunk, cblock, got)) {
		if (!new_chunk(a, records, &id)) {
			struct chunk *c = alloc_chunk(a, id);

			if (!chunk_take(c, 1, want, cblock, got))
				return -ENOSPC;
			a->current = id;
			*chunk = id;
		} else if (!take_from_chunks(a, 1, want, chunk, cblock, got)) {
			return -ENOSPC;
		}
	}
	a->free_blocks -= *got;
	return 0;
}

void alloc_free_now(struct alloc *a, uint32_t id, uint32_t cblock, uint32_t n)
{
	struct chunk *c = alloc_chunk(a, id);

	if (!c || cblock >= c->nblocks || n > c->nblocks - cblock)
		return;
	bits_set(c->bitmap, cblock, n, false);
	c->used -= n;
	a->free_blocks += n;
}

void alloc_free_after(struct alloc *a, uint64_t seq, uint32_t chunk, uint32_t cblock, uint32_t n)
{
	struct pending_free p = { seq, chunk, cblock, n };

	g_array_append_val(a->pending, p);
	a->pending_blocks += n;
}

void alloc_release(struct alloc *a, uint64_t durable_seq)
{
	guint done = 0;

	while (done < a->pending->len) {
		struct pending_free *p = &g_array_index(a->pending, struct pending_free, done);

		if (p->seq > durable_seq)
			break;
		alloc_free_now(a, p->chunk, p->cblock, p->n);
		a->pending_blocks -= p->n;
		done++;
	}
	if (done)
		g_array_remove_range(a->pending, 0, done);
}

struct home {
	uint8_t place;
	uint64_t free;
};

static int by_home_desc(const void *x, const void *y)
{
	const struct home *a = x, *b = y;

	if (a->place != b->place)
		return a->place < b->place ? 1 : -1;
	return a->free < b->free ? 1 : a->free > b->free ? -1 : 0;
}

uint64_t alloc_new_chunks_possible(const struct alloc *a)
{
	struct home homes[DMIOFS_MAX_DEVICES];
	uint32_t n = 0, k = a->copies;
	uint64_t chunks = 0;

	for (uint32_t d = 0; d < a->ndevices; d++)
		if (a->dev_place[d] != PLACE_NONE)
			homes[n++] = (struct home){ a->dev_place[d], a->dev_chunks[d] - a->dev_next[d] };
	/* As new_chunk allocates: the k best homes each give a slot; in
	 * steps, until the k-th would no longer be among the best. */
	for (;;) {
		uint64_t step;
		uint32_t left = 0;

		for (uint32_t i = 0; i < n; i++) /* devices without room are done */
			if (homes[i].free)
				homes[left++] = homes[i];
		n = left;
		if (n < k)
			break;
		qsort(homes, n, sizeof(homes[0]), by_home_desc);
		if (homes[0].place != PLACE_WRITTEN)
			break;
		step = homes[k - 1].free;
		for (uint32_t i = 0; i < k; i++)
			step = MIN(step, homes[i].free);
		if (n > k && homes[k].place == homes[k - 1].place)
			step = MIN(step, MAX(homes[k - 1].free - homes[k].free, 1));
		for (uint32_t i = 0; i < k; i++)
			homes[i].free -= step;
		chunks += step;
	}
	return chunks;
}

uint64_t alloc_usable_blocks(const struct alloc *a)
{
	return a->free_blocks + alloc_new_chunks_possible(a) * (a->layout.chunk_bytes / DMIOFS_BLOCK);
}

void alloc_space(const struct alloc *a, uint64_t *total_blocks, uint64_t *free_blocks)
{
	uint64_t per_chunk = a->layout.chunk_bytes / DMIOFS_BLOCK;
	uint64_t possible = alloc_new_chunks_possible(a) * per_chunk;

	*total_blocks = (uint64_t)a->chunks->len * per_chunk + possible;
	*free_blocks = a->free_blocks + a->pending_blocks + possible;
}

/* The root reserve of a file system of total_blocks. */
static uint64_t root_reserve_of(uint64_t total_blocks, uint32_t permille)
{
	return total_blocks * permille / 1000;
}

uint64_t alloc_root_reserve(const struct alloc *a, uint32_t permille)
{
	uint64_t total, free_blocks;

	if (!permille)
		return 0;
	alloc_space(a, &total, &free_blocks);
	return root_reserve_of(total, permille);
}

uint64_t alloc_kept_back(const struct alloc *a, uint32_t root_permille, bool may_use_root_reserve)
{
	return a->reserve + (may_use_root_reserve ? 0 : alloc_root_reserve(a, root_permille));
}

uint64_t alloc_writable_blocks(const struct alloc *a, uint32_t root_permille, bool may_use_root_reserve)
{
	uint64_t per_chunk = a->layout.chunk_bytes / DMIOFS_BLOCK;
	uint64_t possible = alloc_new_chunks_possible(a) * per_chunk; /* the costly part: once */
	uint64_t usable = a->free_blocks + possible;
	uint64_t kept = a->reserve;

	if (!may_use_root_reserve)
		kept += root_reserve_of((uint64_t)a->chunks->len * per_chunk + possible, root_permille);
	return usable > kept ? usable - kept : 0;
}

/* The stale runs of every copy of c, as records. */
static void serialize_stale(const struct chunk *c, GByteArray *out)
{
	for (uint32_t k = 0; k < c->ncopies; k++) {
		uint32_t at = 0, n;

		while (alloc_stale_next(c, k, &at, &n)) {
			rec_put_stale(out, c->id, c->stripes[k].dev, at, n, true);
			at += n;
		}
	}
}

void alloc_serialize(const struct alloc *a, GByteArray *out)
{
	for (guint i = 0; i < a->chunks->len; i++) {
		const struct chunk *c = g_ptr_array_index(a->chunks, i);
		struct rec_chunk r;

		if (!c)
			continue;
		r = (struct rec_chunk){ .id = c->id, .ncopies = c->ncopies };

		memcpy(r.stripes, c->stripes, sizeof(r.stripes));
		rec_put_chunk(out, &r);
		serialize_stale(c, out);
	}
}

static uint64_t run_starts(const uint64_t *map, uint32_t lo, uint32_t hi);

void alloc_add_device(struct alloc *a, uint32_t dev, uint64_t dev_bytes)
{
	a->dev_chunks[dev] = layout_chunks(&a->layout, dev_bytes);
	a->dev_next[dev] = 0;
	a->dev_place[dev] = PLACE_WRITTEN;
	a->dev_stale[dev] = 0;
	if (dev >= a->ndevices)
		a->ndevices = dev + 1;
}

uint64_t alloc_free_slots(const struct alloc *a, uint32_t dev)
{
	return a->dev_chunks[dev] - a->dev_next[dev];
}

uint64_t alloc_next_slot(const struct alloc *a, uint32_t dev)
{
	if (!alloc_free_slots(a, dev))
		return 0;
	return a->layout.data_offset + a->dev_next[dev] * a->layout.chunk_bytes;
}

int alloc_apply_stripe_add(struct alloc *a, uint32_t id, uint32_t dev, uint64_t offset)
{
	struct chunk *c = alloc_chunk(a, id);
	uint32_t k;

	if (!c || c->ncopies >= DMIOFS_MAX_COPIES || dev >= a->ndevices || alloc_copy_on(c, dev) >= 0 ||
	    offset < a->layout.data_offset || (offset - a->layout.data_offset) % a->layout.chunk_bytes ||
	    slot_of(a, offset) >= a->dev_chunks[dev])
		return -EUCLEAN;
	k = c->ncopies++;
	c->stripes[k] = (struct rec_stripe){ dev, offset };
	if (slot_of(a, offset) + 1 > a->dev_next[dev])
		a->dev_next[dev] = slot_of(a, offset) + 1;
	a->stripes++;
	/* Nothing is on the new copy yet: every block is stale. */
	c->stale[k] = g_new0(uint64_t, (c->nblocks + 63) / 64);
	bits_set(c->stale[k], 0, c->nblocks, true);
	c->nstale[k] = c->nblocks;
	a->dev_stale[dev] += c->nblocks;
	a->stale_runs++;
	return 0;
}

int alloc_apply_stripe_drop(struct alloc *a, uint32_t id, uint32_t dev)
{
	struct chunk *c = alloc_chunk(a, id);
	int k;

	if (!c || (k = alloc_copy_on(c, dev)) < 0 || c->ncopies < 2)
		return -EUCLEAN;
	if (c->stale[k]) {
		a->stale_runs -= run_starts(c->stale[k], 0, c->nblocks);
		a->dev_stale[dev] -= c->nstale[k];
		g_free(c->stale[k]);
	}
	for (uint32_t j = (uint32_t)k; j + 1 < c->ncopies; j++) {
		c->stripes[j] = c->stripes[j + 1];
		c->stale[j] = c->stale[j + 1];
		c->nstale[j] = c->nstale[j + 1];
	}
	c->ncopies--;
	c->stale[c->ncopies] = NULL;
	c->nstale[c->ncopies] = 0;
	memset(&c->stripes[c->ncopies], 0, sizeof(c->stripes[0]));
	a->stripes--;
	return 0;
}

bool alloc_block_in_use(const struct chunk *c, uint32_t b)
{
	return bit_test(c->bitmap, b);
}

/* ---- stale copies --------------------------------------------------------- */

int alloc_copy_on(const struct chunk *c, uint32_t dev)
{
	for (uint32_t k = 0; k < c->ncopies; k++)
		if (c->stripes[k].dev == dev)
			return (int)k;
	return -1;
}

/* Runs that begin in [lo, hi): what a change of the bits in [lo, hi - 1)
 * can add or take away. */
static uint64_t run_starts(const uint64_t *map, uint32_t lo, uint32_t hi)
{
	uint64_t n = 0;

	for (uint32_t i = lo; i < hi; i++)
		if (bit_test(map, i) && (i == 0 || !bit_test(map, i - 1)))
			n++;
	return n;
}

int alloc_apply_stale(struct alloc *a, uint32_t id, uint32_t dev, uint32_t cblock, uint32_t n, bool stale)
{
	struct chunk *c = alloc_chunk(a, id);
	uint32_t end, before;
	uint64_t *map;
	int k;

	if (!c || !n || cblock >= c->nblocks || n > c->nblocks - cblock || (k = alloc_copy_on(c, dev)) < 0)
		return -EUCLEAN;
	if (!c->stale[k]) {
		if (!stale)
			return 0;
		c->stale[k] = g_new0(uint64_t, (c->nblocks + 63) / 64);
	}
	map = c->stale[k];
	end = MIN(cblock + n + 1, c->nblocks);
	before = alloc_stale_count(c, (uint32_t)k, cblock, n);
	a->stale_runs -= run_starts(map, cblock, end);
	bits_set(map, cblock, n, stale);
	a->stale_runs += run_starts(map, cblock, end);
	c->nstale[k] += stale ? n - before : 0;
	c->nstale[k] -= stale ? 0 : before;
	a->dev_stale[dev] += stale ? n - before : 0;
	a->dev_stale[dev] -= stale ? 0 : before;
	if (!c->nstale[k]) {
		g_free(c->stale[k]);
		c->stale[k] = NULL;
	}
	return 0;
}

uint32_t alloc_stale_count(const struct chunk *c, uint32_t k, uint32_t cblock, uint32_t n)
{
	uint32_t count = 0;

	if (!c->stale[k])
		return 0;
	if (c->nstale[k] == c->nblocks)
		return n;
	for (uint32_t i = cblock; i < cblock + n; i++)
		count += bit_test(c->stale[k], i);
	return count;
}

void alloc_put_unused_stale(const struct chunk *c, uint32_t k, GByteArray *r)
{
	uint32_t at = 0, n;

	while (alloc_stale_next(c, k, &at, &n)) {
		for (uint32_t b = at; b < at + n;) {
			uint32_t run = 0;

			while (b + run < at + n && !bit_test(c->bitmap, b + run))
				run++;
			if (run)
				rec_put_stale(r, c->id, c->stripes[k].dev, b, run, false);
			b += run ? run : 1;
		}
		at += n;
	}
}

bool alloc_stale_next(const struct chunk *c, uint32_t k, uint32_t *cblock, uint32_t *n)
{
	const uint64_t *map = c->stale[k];
	uint32_t i = *cblock, run = 0;

	if (!map)
		return false;
	while (i < c->nblocks && !bit_test(map, i)) {
		if (!(i % 64) && !map[i / 64]) { /* an empty word: skip it whole */
			i += 64;
			continue;
		}
		i++;
	}
	while (i + run < c->nblocks && bit_test(map, i + run))
		run++;
	if (!run)
		return false;
	*cblock = i;
	*n = run;
	return true;
}

uint64_t alloc_dev_used_bytes(const struct alloc *a, uint32_t dev)
{
	uint64_t blocks = 0;

	for (guint i = 0; i < a->chunks->len; i++) {
		const struct chunk *c = g_ptr_array_index(a->chunks, i);

		for (uint32_t k = 0; c && k < c->ncopies; k++)
			if (c->stripes[k].dev == dev)
				blocks += c->used;
	}
	return blocks * DMIOFS_BLOCK;
}
