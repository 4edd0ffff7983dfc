/* extmap.h - a regular file's extents in fblock order, held in leaves of
 * at most EXT_LEAF_MAX extents under a flat index of leaves.  A change in
 * the middle of a file of a million fragments moves at most one leaf and,
 * when a leaf splits or empties, one pointer per leaf, never the whole
 * map (the flat sorted array it replaces moved megabytes per random 4 KiB
 * write once a file had fragmented).  Small files pay one leaf sized to
 * their extents and no index.
 *
 * Extents are reached through positions: ext_seek finds one, ext_next and
 * ext_prev walk; a position stays valid until the map changes, except
 * through ext_insert and ext_remove, which update the position they are
 * given. */
#ifndef DMIOFS_EXTMAP_H
#define DMIOFS_EXTMAP_H

#include <stdint.h>

#include "meta.h"

#define EXT_LEAF_MAX 64

struct ext_pos {
	uint32_t leaf, at;
};

/* The first extent ending after fblock (NULL: none); *p is its position,
 * or the end of the map. */
struct extent *ext_seek(const struct dinode *in, uint64_t fblock, struct ext_pos *p);
struct extent *ext_first(const struct dinode *in, struct ext_pos *p);
/* The extent after / before the one at *p (NULL: none); *p moves to it. */
struct extent *ext_next(const struct dinode *in, struct ext_pos *p);
struct extent *ext_prev(const struct dinode *in, struct ext_pos *p);
/* The extent at *p, NULL at the end. */
struct extent *ext_at(const struct dinode *in, const struct ext_pos *p);
struct extent *ext_last(const struct dinode *in);
/* The n-th extent from the start (0-based), for paged listings. */
struct extent *ext_nth(const struct dinode *in, uint32_t n, struct ext_pos *p);

/* Blocks mapped in [fblock, fblock + n). */
uint64_t ext_mapped_blocks(const struct dinode *in, uint64_t fblock, uint64_t n);

/* Insert e before the extent at *p (or at the end); *p and the result
 * name the new extent.  The caller keeps the order. */
struct extent *ext_insert(struct dinode *in, struct ext_pos *p, const struct extent *e);
/* Remove the extent at *p (its checksums are the caller's); *p names the
 * one that followed it, or the end. */
void ext_remove(struct dinode *in, struct ext_pos *p);
/* Forget every extent and free the map (checksums are the caller's). */
void ext_clear(struct dinode *in);

#endif
