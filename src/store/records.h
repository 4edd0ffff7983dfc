/* records.h - the metadata records that make up both the log and the
 * checkpoint.  A checkpoint is the records that rebuild the file system
 * from nothing; a log commit is the records of the operations since.
 *
 * Framing: u16 type, u16 reserved, u32 payload length, then the payload. */
#ifndef DMIOFS_RECORDS_H
#define DMIOFS_RECORDS_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

enum rec_type {
	REC_INODE = 1,        /* an inode's attributes, created or changed */
	REC_INODE_FREE = 2,   /* an inode is gone */
	REC_LINK = 3,         /* a name in a directory */
	REC_UNLINK = 4,       /* a name removed */
	REC_EXTENT = 5,       /* file blocks mapped to chunk blocks, with checksums */
	REC_PUNCH = 6,        /* file blocks unmapped (a hole) */
	REC_SYMLINK = 7,      /* a symlink's target */
	REC_XATTR_SET = 8,
	REC_XATTR_DEL = 9,
	REC_CHUNK = 10,       /* a chunk and its stripes */
	REC_DEV_STATE = 11,
	REC_DEV_COUNTERS = 12,
	REC_FILE_ERRORS = 13,
	REC_NEXT_INO = 14,
	REC_STALE = 15,       /* blocks of a chunk's copy on a device that missed writes, or made good */
	REC_SCRUB = 16,       /* the scrub's state, where it stands and what it found */
	REC_STRIPE_ADD = 17,  /* a chunk gains a copy on a device, every block of it stale */
	REC_STRIPE_DROP = 18, /* a chunk loses its copy on a device */
	REC_DEV_ADD = 19,     /* a device joins the file system (or is described, in a checkpoint) */
	REC_DEV_LEAVE = 20,   /* a device is to leave: its copies are made again elsewhere */
};

/* Why a device leaves (REC_DEV_LEAVE). */
enum { LEAVE_NOT = 0, LEAVE_REPLACE = 1, LEAVE_REMOVE = 2, LEAVE_HEAL = 3 };

/* The scrub: what it is doing, where it stands, what it found. */
enum { SCRUB_IDLE, SCRUB_RUNNING, SCRUB_PAUSED };
enum { SCRUB_NEVER, SCRUB_FINISHED, SCRUB_CANCELLED };

struct rec_scrub {
	uint32_t state;         /* SCRUB_IDLE, _RUNNING, _PAUSED */
	uint32_t result;        /* of the last run to end: SCRUB_NEVER, _FINISHED, _CANCELLED */
	uint32_t chunk, cblock; /* the next piece to check */
	uint64_t started, ended; /* seconds since the epoch (0: not yet) */
	uint64_t rate;          /* bytes/s read at most (0: no limit) */
	uint64_t checked;       /* bytes of copies read and checked */
	uint64_t found, fixed, unfixed; /* blocks of copies found bad, made good, left bad */
};

#define REC_HEADER_BYTES 8


struct rec_time {
	int64_t sec;
	uint32_t nsec;
};

struct rec_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t size, rdev;
	struct rec_time atime, mtime, ctime;
};

struct rec_extent {
	uint64_t ino;
	uint64_t fblock;
	uint64_t span;    /* PUNCH: blocks unmapped (may exceed 32 bits) */
	uint32_t nblocks;
	uint32_t chunk;
	uint32_t cblock;
	const uint8_t *csums; /* nblocks little-endian u32, into the record */
};

/* The CRC32C of the extent record's block i (i < nblocks). */
static inline uint32_t rec_extent_csum(const struct rec_extent *r, uint32_t i)
{
	const uint8_t *c = r->csums + 4 * (size_t)i;

	return (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
}

struct rec_stripe {
	uint32_t dev;
	uint64_t offset; /* bytes on the device */
};

struct rec_chunk {
	uint32_t id;
	uint32_t ncopies;
	struct rec_stripe stripes[DMIOFS_MAX_COPIES];
};

/* Error counters, per device or per file. */
enum { ERR_READ, ERR_WRITE, ERR_FLUSH, ERR_CSUM, ERR_REPAIRED, ERR_KINDS };

struct rec_counters {
	uint64_t id; /* device index or inode */
	uint64_t count[ERR_KINDS];
	uint64_t last_bits; /* files: last failed I/O, bit i = copy i of its chunk */
	uint32_t last_op;   /* 0 none, 1 read, 2 write */
	uint32_t last_chunk;
};

/* A decoded record; pointers point into the buffer it came from. */
struct record {
	enum rec_type type;
	union {
		struct rec_inode inode;
		uint64_t ino;       /* INODE_FREE, NEXT_INO */
		struct {
			uint64_t parent, ino;
			const char *name;
			size_t name_len;
		} link;             /* LINK, UNLINK (ino unused) */
		struct rec_extent extent; /* EXTENT, PUNCH (no chunk, csums) */
		struct {
			uint64_t ino;
			const char *target;
			size_t len;
		} symlink;
		struct {
			uint64_t ino;
			const char *name;
			size_t name_len;
			const uint8_t *value;
			uint32_t value_len;
		} xattr;
		struct rec_chunk chunk;
		struct {
			uint32_t dev, state;
			uint64_t left_at; /* 0 in records written before it was defined */
		} dev_state;
		struct {
			uint32_t chunk, dev, cblock, n;
			uint32_t stale; /* 1: the copy misses these blocks; 0: it holds them again */
		} stale;
		struct rec_counters counters; /* DEV_COUNTERS, FILE_ERRORS */
		struct rec_scrub scrub;
		struct {
			uint32_t chunk, dev;
			uint64_t offset; /* STRIPE_ADD */
		} stripe;
		struct {
			uint32_t index;
			uint8_t uuid[16];
			uint64_t bytes;
		} dev_add;
		struct {
			uint32_t dev, target; /* target: UINT32_MAX for any device */
			uint32_t reason;      /* LEAVE_*; LEAVE_NOT: it stays after all */
		} leave;
	} u;
};

/* Bytes each record takes, header included: the one place they are
 * counted, for the encoders below and for whoever must know in advance
 * what a checkpoint or an operation will spend. */
static inline size_t rec_bytes_inode(void) { return REC_HEADER_BYTES + 8 + 4 * 4 + 8 + 8 + 3 * 12; }
static inline size_t rec_bytes_ino(void) { return REC_HEADER_BYTES + 8; }
static inline size_t rec_bytes_link(size_t name_len) { return REC_HEADER_BYTES + 8 + 8 + 2 + name_len; }
static inline size_t rec_bytes_extent(uint64_t nblocks) { return REC_HEADER_BYTES + 8 + 8 + 4 + 4 + 4 + 4 * nblocks; }
static inline size_t rec_bytes_punch(void) { return REC_HEADER_BYTES + 8 + 8 + 8; }
static inline size_t rec_bytes_symlink(size_t len) { return REC_HEADER_BYTES + 8 + 2 + len; }
static inline size_t rec_bytes_xattr_set(size_t name_len, size_t value_len)
{
	return REC_HEADER_BYTES + 8 + 2 + name_len + 4 + value_len;
}
static inline size_t rec_bytes_xattr_del(size_t name_len) { return REC_HEADER_BYTES + 8 + 2 + name_len; }
static inline size_t rec_bytes_chunk(uint32_t ncopies) { return REC_HEADER_BYTES + 4 + 4 + 12 * (size_t)ncopies; }
static inline size_t rec_bytes_dev_state(void) { return REC_HEADER_BYTES + 4 + 4 + 8; }
static inline size_t rec_bytes_stale(void) { return REC_HEADER_BYTES + 5 * 4; }
static inline size_t rec_bytes_scrub(void) { return REC_HEADER_BYTES + 4 * 4 + 7 * 8; }
static inline size_t rec_bytes_stripe_add(void) { return REC_HEADER_BYTES + 4 + 4 + 8; }
static inline size_t rec_bytes_stripe_drop(void) { return REC_HEADER_BYTES + 4 + 4; }
static inline size_t rec_bytes_dev_add(void) { return REC_HEADER_BYTES + 4 + 4 + 16 + 8; }
static inline size_t rec_bytes_dev_leave(void) { return REC_HEADER_BYTES + 3 * 4; }
static inline size_t rec_bytes_counters(void) { return REC_HEADER_BYTES + 8 + 8 * ERR_KINDS + 8 + 4 + 4; }

void rec_put_inode(GByteArray *out, const struct rec_inode *in);
void rec_put_ino(GByteArray *out, enum rec_type type, uint64_t ino);
void rec_put_link(GByteArray *out, enum rec_type type, uint64_t parent, uint64_t ino, const char *name,
		  size_t len);
void rec_put_extent(GByteArray *out, uint64_t ino, uint64_t fblock, uint32_t nblocks, uint32_t chunk,
		    uint32_t cblock, const uint32_t *csums);
void rec_put_punch(GByteArray *out, uint64_t ino, uint64_t fblock, uint64_t nblocks);
void rec_put_symlink(GByteArray *out, uint64_t ino, const char *target, size_t len);
void rec_put_xattr_set(GByteArray *out, uint64_t ino, const char *name, size_t name_len, const void *value,
		       uint32_t value_len);
void rec_put_xattr_del(GByteArray *out, uint64_t ino, const char *name, size_t name_len);
void rec_put_chunk(GByteArray *out, const struct rec_chunk *c);
void rec_put_dev_state(GByteArray *out, uint32_t dev, uint32_t state, uint64_t left_at);
void rec_put_stale(GByteArray *out, uint32_t chunk, uint32_t dev, uint32_t cblock, uint32_t n, bool stale);
void rec_put_counters(GByteArray *out, enum rec_type type, const struct rec_counters *c);
void rec_put_scrub(GByteArray *out, const struct rec_scrub *s);
void rec_put_stripe_add(GByteArray *out, uint32_t chunk, uint32_t dev, uint64_t offset);
void rec_put_stripe_drop(GByteArray *out, uint32_t chunk, uint32_t dev);
void rec_put_dev_add(GByteArray *out, uint32_t index, const uint8_t uuid[16], uint64_t bytes);
void rec_put_dev_leave(GByteArray *out, uint32_t dev, uint32_t target, uint32_t reason);

/* Walk the records of buf: returns 1 and fills *rec while records remain,
 * 0 at the end, -EUCLEAN on a malformed record. */
int rec_next(const uint8_t **pos, const uint8_t *end, struct record *rec);

#endif
