/* format.h - dmiofs's on-disk format, version 1 (docs/FORMAT.md).
 *
 * Every device carries a superblock at both ends, a metadata area (two
 * checkpoint slots and a log ring, the same bytes on every device) and
 * chunk space.  All integers are little-endian; every metadata block is
 * checksummed with CRC32C. */
#ifndef DMIOFS_FORMAT_H
#define DMIOFS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DMIOFS_BLOCK 4096u
#define DMIOFS_BLOCK_SHIFT 12
#define DMIOFS_VERSION 1
#define DMIOFS_MAX_DEVICES 32
#define DMIOFS_MAX_COPIES 8
#define DMIOFS_LABEL_MAX 63
#define DMIOFS_RESERVED_HEAD (1u << 20) /* superblock, then nothing up to 1 MiB */
#define DMIOFS_NAME_MAX 255
/* The root reserve, in thousandths of the capacity: at most half of it. */
#define DMIOFS_ROOT_RESERVE_MAX 500

extern const uint8_t DMIOFS_SB_MAGIC[8];
extern const uint8_t DMIOFS_CKPT_MAGIC[8];
extern const uint8_t DMIOFS_LOG_MAGIC[8];

/* A device's state in the file system (docs/FORMAT.md section 10):
 * healthy devices are read and written; failed and missing ones neither;
 * a returning one is written, and read where its copies are not stale,
 * while the copies it missed are made again; a removed one is no longer
 * part of the file system (no chunk has a copy on it). */
enum dev_state { DEV_HEALTHY = 0, DEV_FAILED = 1, DEV_MISSING = 2, DEV_RETURNING = 3, DEV_REMOVED = 4 };
#define DEV_STATE_MAX DEV_REMOVED

/* Superblock flags. */
#define SB_CLEAN 0x1 /* unmounted cleanly: the newest checkpoint holds everything */

struct sb_dev {
	uint8_t uuid[16];
	uint64_t bytes;
	uint32_t state;   /* enum dev_state */
	uint64_t left_at; /* not healthy: the newest commit it may hold */
};

struct superblock {
	uint8_t fs_uuid[16];
	uint8_t dev_uuid[16];
	char label[DMIOFS_LABEL_MAX + 1];
	uint32_t copies;
	uint32_t ndevices;
	uint32_t dev_index;
	uint32_t block_size;
	uint64_t dev_bytes;   /* bytes of this device in use (a multiple of the block) */
	uint64_t meta_offset; /* metadata area, identical on every device */
	uint64_t meta_bytes;
	uint64_t ckpt_bytes;  /* each of the two checkpoint slots */
	uint64_t data_offset; /* chunk space */
	uint64_t chunk_bytes;
	uint64_t created;     /* seconds since the epoch */
	uint64_t generation;  /* the newest commit when this superblock was written */
	uint64_t ckpt_seq;
	uint32_t ckpt_slot;
	uint32_t flags;
	struct sb_dev devs[DMIOFS_MAX_DEVICES];
	/* Thousandths of the capacity only root may fill, as ext4's reserved
	 * blocks (mkfs.dmiofs -m); 0, as in superblocks written before it
	 * was defined, keeps none back. */
	uint32_t root_reserve_permille;
};

/* Where everything lies, the same for every device of a file system. */
struct layout {
	uint64_t meta_offset, meta_bytes, ckpt_bytes;
	uint64_t log_offset, log_bytes; /* the ring, after both slots */
	uint64_t data_offset, chunk_bytes;
};

/* Checkpoint slot header, in the first block of its slot. */
struct ckpt_header {
	uint8_t fs_uuid[16];    /* stale slots of an earlier file system never match */
	uint64_t seq;           /* the last commit it includes */
	uint64_t payload_bytes; /* records following the header block */
	uint32_t payload_crc;
	uint64_t log_pos;       /* ring offset where the commit after seq goes */
	uint64_t next_ino;
	uint64_t created;
};

/* Log commit header: the first 64 bytes of a 4 KiB-aligned commit. */
#define LOG_HEADER_BYTES 64
#define LOG_WRAP 0x1 /* no payload: the next commit is at the ring's start */
/* Written together with a flush, not after one: when it is the last
 * commit, the replay applies it only if the data its extent records map
 * is on the devices (journal.c).  Older daemons ignore the flag. */
#define LOG_UNORDERED 0x2
/* Written with no flush and no FUA (a commit no sync waits for): the
 * replay applies it only once a later commit vouches that a flush came
 * after it, or else only if the data its extent records map is on the
 * devices.  Older daemons ignore the flag. */
#define LOG_LAZY 0x4
/* prev_crc holds the header CRC of the commit before it (0 after a
 * checkpoint): a commit left over from before a crash, that a lost one
 * had preceded, never continues the log a replay went on with. */
#define LOG_CHAINED 0x8

struct log_header {
	uint8_t fs_uuid[16];
	uint64_t seq;
	uint32_t payload_bytes;
	uint32_t payload_crc;
	uint32_t flags;
	uint32_t prev_crc; /* LOG_CHAINED */
	uint32_t crc;      /* decode: the header's own CRC (what the next one chains to) */
};

uint32_t dmiofs_crc(const void *buf, size_t len);
uint32_t dmiofs_crc_extend(uint32_t crc, const void *buf, size_t len);

/* Superblock: encode into / decode from one 4 KiB block.  Decode returns
 * 0, or -EINVAL (not dmiofs), -EUCLEAN (checksum), -EPROTO (version). */
void sb_encode(const struct superblock *sb, uint8_t block[DMIOFS_BLOCK]);
int sb_decode(const uint8_t block[DMIOFS_BLOCK], struct superblock *sb);
/* Byte offset of the second superblock on a device of dev_bytes. */
uint64_t sb_backup_offset(uint64_t dev_bytes);

/* Decoders return -ESTALE for a header of another file system. */
void ckpt_header_encode(const struct ckpt_header *h, uint8_t block[DMIOFS_BLOCK]);
int ckpt_header_decode(const uint8_t block[DMIOFS_BLOCK], const uint8_t fs_uuid[16], struct ckpt_header *h);

void log_header_encode(const struct log_header *h, uint8_t out[LOG_HEADER_BYTES]);
int log_header_decode(const uint8_t in[LOG_HEADER_BYTES], const uint8_t fs_uuid[16], struct log_header *h);
/* The CRC an encoded header carries (the next commit's prev_crc). */
uint32_t log_header_crc(const uint8_t in[LOG_HEADER_BYTES]);

/* Choose the metadata and chunk sizes for devices whose smallest is
 * min_dev_bytes; meta_bytes 0 picks the default.  -ENOSPC if too small. */
int layout_choose(uint64_t min_dev_bytes, uint64_t meta_bytes, struct layout *out);
void layout_from_sb(const struct superblock *sb, struct layout *out);
/* The smallest device layout_choose accepts. */
uint64_t layout_min_bytes(uint64_t meta_bytes);
/* Chunks a device of dev_bytes holds. */
uint64_t layout_chunks(const struct layout *l, uint64_t dev_bytes);

const char *dev_state_name(uint32_t state);
void uuid_format(const uint8_t uuid[16], char out[37]);

#endif
