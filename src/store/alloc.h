/* alloc.h - space: chunks of chunk_bytes, each mapped to `copies` stripes
 * on distinct devices, and the 4 KiB blocks inside them.
 *
 * Chunks are recorded in the metadata (REC_CHUNK) and never move.  Block
 * usage is not recorded: it is rebuilt at mount from the extents.  Blocks
 * let go of are reused only once the commit that let go of them is
 * durable, so a crash never finds live metadata pointing at reused blocks. */
#ifndef DMIOFS_ALLOC_H
#define DMIOFS_ALLOC_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "records.h"

struct chunk {
	uint32_t id;
	uint32_t ncopies;
	struct rec_stripe stripes[DMIOFS_MAX_COPIES];
	uint32_t nblocks;
	uint32_t used;
	uint32_t hint;   /* where the next search starts */
	uint64_t *bitmap; /* bit set: block in use or waiting to be released */
	/* Per copy: blocks it does not hold (a write it missed while its
	 * device was away or failed), NULL when it holds them all. */
	uint64_t *stale[DMIOFS_MAX_COPIES];
	uint32_t nstale[DMIOFS_MAX_COPIES];
};

/* Where new chunks go: copies on devices that are written, and only when
 * too few of those have room, on devices away (their copy misses the
 * writes, recorded stale, until they return or the copy is made again
 * elsewhere); never on removed devices. */
enum place { PLACE_NONE, PLACE_SHORT, PLACE_WRITTEN };

struct alloc {
	struct layout layout;
	uint32_t ndevices, copies;
	uint64_t dev_chunks[DMIOFS_MAX_DEVICES]; /* chunk slots each device has */
	uint64_t dev_next[DMIOFS_MAX_DEVICES];   /* first slot never handed out */
	uint8_t dev_place[DMIOFS_MAX_DEVICES];   /* enum place: may it take new chunks */
	GPtrArray *chunks;  /* struct chunk *, by id */
	GArray *pending;    /* struct pending_free, oldest first */
	uint32_t current;   /* the chunk new blocks come from */
	uint64_t free_blocks;    /* in chunks, not counting pending ones */
	uint64_t pending_blocks;
	uint64_t reserve;        /* kept for truncates and punches on a full fs */
	uint64_t stale_runs;     /* runs of stale blocks: STALE records in a checkpoint */
	uint64_t stripes;        /* copies of all chunks: what their CHUNK records hold */
	uint64_t dev_stale[DMIOFS_MAX_DEVICES]; /* stale blocks of each device's copies */
};

void alloc_init(struct alloc *a, const struct layout *l, uint32_t ndevices, uint32_t copies,
		const uint64_t *dev_bytes);
void alloc_destroy(struct alloc *a);
int alloc_apply_chunk(struct alloc *a, const struct rec_chunk *c);
struct chunk *alloc_chunk(struct alloc *a, uint32_t id);
/* Mark blocks in use (mount: from the extents).  -EUCLEAN on overlap. */
int alloc_mark_used(struct alloc *a, uint32_t chunk, uint32_t cblock, uint32_t n);

/* Up to `want` contiguous blocks (at least one).  A new chunk, if one is
 * needed, is applied and recorded into records.  -ENOSPC when none. */
int alloc_blocks(struct alloc *a, uint32_t want, uint32_t *chunk, uint32_t *cblock, uint32_t *got,
		 GByteArray *records);
/* Blocks never referenced by durable metadata (a write that failed). */
void alloc_free_now(struct alloc *a, uint32_t chunk, uint32_t cblock, uint32_t n);
/* Blocks let go of by the commit `seq`: free once it is durable. */
void alloc_free_after(struct alloc *a, uint64_t seq, uint32_t chunk, uint32_t cblock, uint32_t n);
void alloc_release(struct alloc *a, uint64_t durable_seq);

/* Blocks a write may take now: free in chunks or in chunks still to make. */
uint64_t alloc_usable_blocks(const struct alloc *a);
/* Chunks that could still be created, given copies and free device space. */
uint64_t alloc_new_chunks_possible(const struct alloc *a);
void alloc_space(const struct alloc *a, uint64_t *total_blocks, uint64_t *free_blocks);
/* The root reserve in blocks: permille thousandths of the capacity (the
 * superblock's root_reserve_permille), as ext4 keeps its reserved blocks
 * for root. */
uint64_t alloc_root_reserve(const struct alloc *a, uint32_t permille);
/* Free blocks a file may not take: the few kept for the zeroing of
 * truncates and punches, and, unless the caller may use it (root, the
 * daemon's own work), the root reserve. */
uint64_t alloc_kept_back(const struct alloc *a, uint32_t root_permille, bool may_use_root_reserve);
/* Blocks a write of file data may take now: alloc_usable_blocks less
 * alloc_kept_back, counted in one pass (every write asks). */
uint64_t alloc_writable_blocks(const struct alloc *a, uint32_t root_permille, bool may_use_root_reserve);
void alloc_serialize(const struct alloc *a, GByteArray *out);
/* Blocks a device holds in chunks, for status. */
uint64_t alloc_dev_used_bytes(const struct alloc *a, uint32_t dev);

/* A device joins (or a removed device's index is taken again): its slots
 * are all free. */
void alloc_add_device(struct alloc *a, uint32_t dev, uint64_t dev_bytes);
/* Free chunk slots of a device. */
uint64_t alloc_free_slots(const struct alloc *a, uint32_t dev);
/* A chunk gains a copy on dev at offset (a slot of dev never used),
 * every block of it stale until made good; or loses its copy on dev. */
int alloc_apply_stripe_add(struct alloc *a, uint32_t chunk, uint32_t dev, uint64_t offset);
int alloc_apply_stripe_drop(struct alloc *a, uint32_t chunk, uint32_t dev);
/* Lock held: the offset of dev's next free slot (for STRIPE_ADD), or 0. */
uint64_t alloc_next_slot(const struct alloc *a, uint32_t dev);

/* Is block b of the chunk in use (or waiting for a commit to be free)? */
bool alloc_block_in_use(const struct chunk *c, uint32_t b);

/* ---- stale copies ---- */
/* The copy of chunk c on device dev, or -1. */
int alloc_copy_on(const struct chunk *c, uint32_t dev);
/* Set or clear the stale blocks of a copy (a STALE record). */
int alloc_apply_stale(struct alloc *a, uint32_t chunk, uint32_t dev, uint32_t cblock, uint32_t n, bool stale);
/* Stale blocks of copy k in [cblock, cblock + n). */
uint32_t alloc_stale_count(const struct chunk *c, uint32_t k, uint32_t cblock, uint32_t n);
/* Records that forget the stale blocks of copy k that no file uses
 * (free blocks need not be made good). */
void alloc_put_unused_stale(const struct chunk *c, uint32_t k, GByteArray *r);
/* The first stale run of copy k at or after *cblock: true and [*cblock,
 * *cblock + *n) set, or false when there is none. */
bool alloc_stale_next(const struct chunk *c, uint32_t k, uint32_t *cblock, uint32_t *n);

#endif
