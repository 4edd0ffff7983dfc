/* inventory.c - pieces of files in device order (inventory.h). */
#include "extmap.h"
#include "inventory.h"

#define INODES_PER_BATCH 1024 /* the lock is let go between batches */

static void add_piece(GArray *out, const struct dinode *in, const struct extent *e, uint32_t from, uint32_t n,
		      uint32_t copies)
{
	struct piece p = {
		.ino = in->ino,
		.fblock = e->fblock + from,
		.chunk = e->chunk,
		.cblock = e->cblock + from,
		.n = n,
		.copies = copies,
	};

	g_array_append_val(out, p);
}

/* Cut an extent into pieces where the wanted copies stay the same. */
static void extent_pieces(struct store *st, const struct dinode *in, const struct extent *e, piece_want_fn want,
			  void *ctx, GArray *out)
{
	struct chunk *c = alloc_chunk(&st->alloc, e->chunk);
	uint32_t b = 0;

	while (c && b < e->nblocks) {
		uint32_t mask = want(st, c, e->cblock + b, ctx), n = 1;

		while (b + n < e->nblocks && n < PIECE_MAX_BLOCKS && want(st, c, e->cblock + b + n, ctx) == mask)
			n++;
		if (mask)
			add_piece(out, in, e, b, n, mask);
		b += n;
	}
}

static int by_place(gconstpointer x, gconstpointer y)
{
	const struct piece *a = x, *b = y;

	if (a->chunk != b->chunk)
		return a->chunk < b->chunk ? -1 : 1;
	return a->cblock < b->cblock ? -1 : a->cblock > b->cblock;
}

GArray *inventory_pieces(struct store *st, piece_want_fn want, void *ctx)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(struct piece));
	GArray *inos = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	GHashTableIter it;
	gpointer key;

	g_mutex_lock(&st->lock);
	g_hash_table_iter_init(&it, st->meta.inodes);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		const struct dinode *in = key;

		if (S_ISREG(in->mode) && in->nextents)
			g_array_append_val(inos, in->ino);
	}
	g_mutex_unlock(&st->lock);
	for (guint i = 0; i < inos->len; i += INODES_PER_BATCH) {
		g_mutex_lock(&st->lock);
		for (guint j = i; j < inos->len && j < i + INODES_PER_BATCH; j++) {
			struct dinode *in = meta_inode(&st->meta, g_array_index(inos, uint64_t, j));

			struct ext_pos p;

			if (!in || !S_ISREG(in->mode))
				continue;
			for (const struct extent *e = ext_first(in, &p); e; e = ext_next(in, &p))
				extent_pieces(st, in, e, want, ctx, out);
		}
		g_mutex_unlock(&st->lock);
	}
	g_array_free(inos, TRUE);
	g_array_sort(out, by_place);
	return out;
}
