/* meta.h - the file system's metadata, held in memory: inodes, directory
 * entries, extents with per-block checksums, symlink targets, xattrs and
 * per-file error records.  It changes only by applying records
 * (records.h), the same way live and at replay, so what the log says and
 * what memory holds cannot drift apart. */
#ifndef DMIOFS_META_H
#define DMIOFS_META_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "records.h"

#define ROOT_INO 1

/* File blocks [fblock, fblock + nblocks) live at chunk blocks
 * [cblock, cblock + nblocks) of chunk, with one CRC32C per block: kept in
 * the extent itself when there is one (most small files), in an array
 * otherwise.  Use ext_csums(). */
struct extent {
	uint64_t fblock;
	uint32_t nblocks;
	uint32_t chunk;
	uint32_t cblock;
	union {
		uint32_t one;
		uint32_t *many;
	} csum;
};

static inline uint32_t *ext_csums(struct extent *e)
{
	return e->nblocks == 1 ? &e->csum.one : e->csum.many;
}

static inline const uint32_t *ext_csums_const(const struct extent *e)
{
	return e->nblocks == 1 ? &e->csum.one : e->csum.many;
}

/* A time as the records carry it, packed: three per inode add up. */
struct ptime {
	int64_t sec;
	uint32_t nsec;
} __attribute__((packed));

struct inode_io;
struct ext_leaf;

struct xattr {
	struct xattr *next;
	uint32_t len;
	char *name;
	uint8_t value[];
};

/* One per file, held for the life of the mount: every byte counts (the
 * fields are ordered so that none is padding).  ino comes first: the
 * inode table hashes the inode by it. */
struct dinode {
	uint64_t ino;
	uint64_t size, rdev;
	uint64_t blocks;   /* blocks mapped (regular files) */
	uint64_t nlookup;  /* references the kernel holds */
	union {
		struct ext_leaf *leaf;    /* regular files: their extents (extmap.h) */
		struct ext_leaf **leaves;
		GHashTable *entries; /* directories: name -> struct dinode * */
		char *target;        /* symlinks */
	} u;
	struct dinode *parent;   /* directories: their one parent */
	struct xattr *xattrs;
	struct rec_counters *errors; /* NULL until an I/O error touched it */
	struct inode_io *io;     /* data I/O in flight (data.c), NULL when idle */
	uint32_t mode, uid, gid, nlink;
	uint32_t nopen;    /* open file handles */
	uint32_t nextents, nleaves; /* regular files: extents, leaves holding them */
	uint32_t nnames;   /* directory entries naming it */
	struct ptime atime, mtime, ctime;
};

/* Called for blocks an extent change lets go of. */
typedef void (*meta_free_fn)(void *ctx, uint32_t chunk, uint32_t cblock, uint32_t nblocks);

/* What a checkpoint would hold, counted as records are applied. */
struct meta_counts {
	uint64_t inodes, links, name_bytes, extents, blocks, other_bytes;
};

struct meta {
	GHashTable *inodes; /* a set of struct dinode *, found by &ino */
	struct meta_counts counts;
	uint64_t next_ino;
	uint64_t nfiles;    /* inodes */
	meta_free_fn on_free;
	void *free_ctx;
};

void meta_init(struct meta *m);
void meta_destroy(struct meta *m);
struct dinode *meta_inode(struct meta *m, uint64_t ino);

/* Apply one record.  -EUCLEAN when it does not fit what memory holds
 * (a corrupt log or checkpoint). */
int meta_apply(struct meta *m, const struct record *rec);
/* Apply every record of a buffer. */
int meta_apply_all(struct meta *m, const uint8_t *buf, size_t len);

void inode_to_rec(const struct dinode *in, struct rec_inode *r);
/* Give up to max inodes of `want` (keys: GSIZE_TO_POINTER(ino), values
 * g_free'd by the table) a path from the root, the first name the walk
 * finds: for messages that name the files a problem touches. */
void meta_name_inodes(struct meta *m, GHashTable *want, guint max);
struct dinode *dir_lookup(struct dinode *dir, const char *name);

/* Emit the records that rebuild m (a checkpoint), calling flush whenever
 * out holds at least flush_at bytes; returns the first error of flush. */
typedef int (*meta_flush_fn)(void *ctx, GByteArray *out);
int meta_serialize(struct meta *m, GByteArray *out, size_t flush_at, meta_flush_fn flush, void *ctx);

/* Bytes a checkpoint of m would take, kept up to date cheaply. */
uint64_t meta_estimate_bytes(const struct meta *m);

#endif
