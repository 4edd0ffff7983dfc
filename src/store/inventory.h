/* inventory.h - the allocated data of chosen chunks, as pieces of files
 * in device order: what catch-up, rebuild and scrub walk, so that they
 * copy or read only blocks that hold data (inventory.c). */
#ifndef DMIOFS_INVENTORY_H
#define DMIOFS_INVENTORY_H

#include <glib.h>
#include <stdint.h>

#include "store.h"

#define PIECE_MAX_BLOCKS 256 /* 1 MiB: a copy of a piece holds its range lock this long */

/* Blocks [cblock, cblock + n) of a chunk, mapping blocks [fblock, ...) of
 * inode ino, whose copies `copies` (a mask by copy index) are wanted. */
struct piece {
	uint64_t ino, fblock;
	uint32_t chunk, cblock, n;
	uint32_t copies;
};

/* Lock held: the copies of block b of chunk c that are wanted (0: none). */
typedef uint32_t (*piece_want_fn)(struct store *st, const struct chunk *c, uint32_t b, void *ctx);

/* Every piece of every file whose blocks some copy is wanted for, cut
 * where the wanted copies change and at PIECE_MAX_BLOCKS, sorted by chunk
 * (chunks are placed in slot order, so that is device order) then block.
 * Takes the store lock in batches, never for the whole walk. */
GArray *inventory_pieces(struct store *st, piece_want_fn want, void *ctx);

#endif
