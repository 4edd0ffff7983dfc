/* format.c - encoding and checking dmiofs's on-disk structures, and the
 * choice of layout at mkfs time. */
#include <errno.h>
#include <isa-l/crc.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "format.h"

const uint8_t DMIOFS_SB_MAGIC[8] = { 'D', 'M', 'I', 'O', 'F', 'S', 'S', 'B' };
const uint8_t DMIOFS_CKPT_MAGIC[8] = { 'D', 'M', 'I', 'O', 'C', 'K', 'P', 'T' };
const uint8_t DMIOFS_LOG_MAGIC[8] = { 'D', 'M', 'I', 'O', 'L', 'O', 'G', '1' };

/* CRC32C (Castagnoli), hardware-accelerated by ISA-L. */
uint32_t dmiofs_crc_extend(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len) { /* ISA-L takes an int length */
		int n = len > (1u << 30) ? (1 << 30) : (int)len;

		crc = crc32_iscsi((unsigned char *)p, n, crc);
		p += n;
		len -= (size_t)n;
	}
	return crc;
}

uint32_t dmiofs_crc(const void *buf, size_t len)
{
	return dmiofs_crc_extend(0xFFFFFFFFu, buf, len);
}

/* ---- self-checking blocks ------------------------------------------------- */

/* Superblocks and checkpoint headers start alike: magic (8), version (4)
 * and the CRC32C of the whole block read with that CRC field as zero. */
#define HEADER_CRC_OFFSET 12

/* The CRC32C of a block whose own CRC field (4 bytes at crc_at) counts as
 * zero, without copying the block. */
static uint32_t crc_without_field(const uint8_t *block, size_t len, size_t crc_at)
{
	static const uint8_t zero[4];
	uint32_t crc = dmiofs_crc_extend(0xFFFFFFFFu, block, crc_at);

	crc = dmiofs_crc_extend(crc, zero, sizeof(zero));
	return dmiofs_crc_extend(crc, block + crc_at + 4, len - crc_at - 4);
}

static void seal(uint8_t *block, size_t len, size_t crc_at)
{
	struct wbuf c = wbuf_init(block + crc_at, 4);

	put_u32(&c, crc_without_field(block, len, crc_at));
}

static void header_put(struct wbuf *w, const uint8_t magic[8])
{
	put_bytes(w, magic, 8);
	put_u32(w, DMIOFS_VERSION);
	put_u32(w, 0); /* the CRC, sealed last */
}

/* -EINVAL: not this kind of block; -EUCLEAN: damaged; -EPROTO: another
 * version.  On success r stands after the header. */
static int header_check(struct rbuf *r, const uint8_t block[DMIOFS_BLOCK], const uint8_t magic[8])
{
	uint8_t got[8];
	uint32_t version, crc;

	get_bytes(r, got, 8);
	if (memcmp(got, magic, 8))
		return -EINVAL;
	version = get_u32(r);
	crc = get_u32(r);
	if (crc_without_field(block, DMIOFS_BLOCK, HEADER_CRC_OFFSET) != crc)
		return -EUCLEAN;
	return version == DMIOFS_VERSION ? 0 : -EPROTO;
}

/* ---- superblock --------------------------------------------------------- */

void sb_encode(const struct superblock *sb, uint8_t block[DMIOFS_BLOCK])
{
	struct wbuf w = wbuf_init(block, DMIOFS_BLOCK);

	header_put(&w, DMIOFS_SB_MAGIC);
	put_bytes(&w, sb->fs_uuid, 16);
	put_bytes(&w, sb->dev_uuid, 16);
	put_bytes(&w, sb->label, sizeof(sb->label));
	put_u32(&w, sb->copies);
	put_u32(&w, sb->ndevices);
	put_u32(&w, sb->dev_index);
	put_u32(&w, sb->block_size);
	put_u64(&w, sb->dev_bytes);
	put_u64(&w, sb->meta_offset);
	put_u64(&w, sb->meta_bytes);
	put_u64(&w, sb->ckpt_bytes);
	put_u64(&w, sb->data_offset);
	put_u64(&w, sb->chunk_bytes);
	put_u64(&w, sb->created);
	put_u64(&w, sb->generation);
	put_u64(&w, sb->ckpt_seq);
	put_u32(&w, sb->ckpt_slot);
	put_u32(&w, sb->flags);
	for (int i = 0; i < DMIOFS_MAX_DEVICES; i++) {
		put_bytes(&w, sb->devs[i].uuid, 16);
		put_u64(&w, sb->devs[i].bytes);
		put_u32(&w, sb->devs[i].state);
		put_u32(&w, 0);
	}
	for (int i = 0; i < DMIOFS_MAX_DEVICES; i++)
		put_u64(&w, sb->devs[i].left_at);
	put_u32(&w, sb->root_reserve_permille);
	put_zeros(&w, (size_t)(w.end - w.p));
	seal(block, DMIOFS_BLOCK, HEADER_CRC_OFFSET);
}

int sb_decode(const uint8_t block[DMIOFS_BLOCK], struct superblock *sb)
{
	struct rbuf r = rbuf_init(block, DMIOFS_BLOCK);
	int err = header_check(&r, block, DMIOFS_SB_MAGIC);

	if (err)
		return err;
	memset(sb, 0, sizeof(*sb));
	get_bytes(&r, sb->fs_uuid, 16);
	get_bytes(&r, sb->dev_uuid, 16);
	get_bytes(&r, sb->label, sizeof(sb->label));
	sb->label[DMIOFS_LABEL_MAX] = '\0';
	sb->copies = get_u32(&r);
	sb->ndevices = get_u32(&r);
	sb->dev_index = get_u32(&r);
	sb->block_size = get_u32(&r);
	sb->dev_bytes = get_u64(&r);
	sb->meta_offset = get_u64(&r);
	sb->meta_bytes = get_u64(&r);
	sb->ckpt_bytes = get_u64(&r);
	sb->data_offset = get_u64(&r);
	sb->chunk_bytes = get_u64(&r);
	sb->created = get_u64(&r);
	sb->generation = get_u64(&r);
	sb->ckpt_seq = get_u64(&r);
	sb->ckpt_slot = get_u32(&r);
	sb->flags = get_u32(&r);
	for (int i = 0; i < DMIOFS_MAX_DEVICES; i++) {
		get_bytes(&r, sb->devs[i].uuid, 16);
		sb->devs[i].bytes = get_u64(&r);
		sb->devs[i].state = get_u32(&r);
		(void)get_u32(&r);
	}
	/* Zero in superblocks written before it was defined: unknown. */
	for (int i = 0; i < DMIOFS_MAX_DEVICES; i++)
		sb->devs[i].left_at = get_u64(&r);
	/* Zero in superblocks written before it was defined: no reserve. */
	sb->root_reserve_permille = get_u32(&r);
	/* A checksummed block with impossible values is still not ours. */
	if (sb->block_size != DMIOFS_BLOCK || !sb->ndevices || sb->ndevices > DMIOFS_MAX_DEVICES ||
	    !sb->copies || sb->copies > sb->ndevices || sb->copies > DMIOFS_MAX_COPIES ||
	    sb->dev_index >= sb->ndevices || !sb->chunk_bytes || sb->ckpt_bytes < 2 * DMIOFS_BLOCK ||
	    sb->chunk_bytes % DMIOFS_BLOCK || sb->data_offset < sb->meta_offset + sb->meta_bytes ||
	    sb->ckpt_bytes * 2 >= sb->meta_bytes || sb->root_reserve_permille > DMIOFS_ROOT_RESERVE_MAX)
		return -EUCLEAN;
	return 0;
}

uint64_t sb_backup_offset(uint64_t dev_bytes)
{
	return (dev_bytes & ~(uint64_t)(DMIOFS_BLOCK - 1)) - DMIOFS_BLOCK;
}

/* ---- checkpoint and log headers ----------------------------------------- */

void ckpt_header_encode(const struct ckpt_header *h, uint8_t block[DMIOFS_BLOCK])
{
	struct wbuf w = wbuf_init(block, DMIOFS_BLOCK);

	header_put(&w, DMIOFS_CKPT_MAGIC);
	put_bytes(&w, h->fs_uuid, 16);
	put_u64(&w, h->seq);
	put_u64(&w, h->payload_bytes);
	put_u32(&w, h->payload_crc);
	put_u64(&w, h->log_pos);
	put_u64(&w, h->next_ino);
	put_u64(&w, h->created);
	put_zeros(&w, (size_t)(w.end - w.p));
	seal(block, DMIOFS_BLOCK, HEADER_CRC_OFFSET);
}

int ckpt_header_decode(const uint8_t block[DMIOFS_BLOCK], const uint8_t fs_uuid[16], struct ckpt_header *h)
{
	struct rbuf r = rbuf_init(block, DMIOFS_BLOCK);
	int err = header_check(&r, block, DMIOFS_CKPT_MAGIC);

	if (err)
		return err;
	get_bytes(&r, h->fs_uuid, 16);
	if (memcmp(h->fs_uuid, fs_uuid, 16))
		return -ESTALE;
	h->seq = get_u64(&r);
	h->payload_bytes = get_u64(&r);
	h->payload_crc = get_u32(&r);
	h->log_pos = get_u64(&r);
	h->next_ino = get_u64(&r);
	h->created = get_u64(&r);
	return 0;
}

#define LOG_HEADER_CRC_OFFSET 28 /* after magic, seq, payload length and CRC, flags */

void log_header_encode(const struct log_header *h, uint8_t out[LOG_HEADER_BYTES])
{
	struct wbuf w = wbuf_init(out, LOG_HEADER_BYTES);

	put_bytes(&w, DMIOFS_LOG_MAGIC, 8);
	put_u64(&w, h->seq);
	put_u32(&w, h->payload_bytes);
	put_u32(&w, h->payload_crc);
	put_u32(&w, h->flags);
	put_u32(&w, 0); /* header crc */
	put_bytes(&w, h->fs_uuid, 16);
	put_u32(&w, h->prev_crc);
	put_zeros(&w, (size_t)(w.end - w.p));
	seal(out, LOG_HEADER_BYTES, LOG_HEADER_CRC_OFFSET);
}

uint32_t log_header_crc(const uint8_t in[LOG_HEADER_BYTES])
{
	struct rbuf r = rbuf_init(in + LOG_HEADER_CRC_OFFSET, 4);

	return get_u32(&r);
}

int log_header_decode(const uint8_t in[LOG_HEADER_BYTES], const uint8_t fs_uuid[16], struct log_header *h)
{
	struct rbuf r = rbuf_init(in, LOG_HEADER_BYTES);
	uint8_t magic[8];
	uint32_t crc;

	get_bytes(&r, magic, 8);
	if (memcmp(magic, DMIOFS_LOG_MAGIC, 8))
		return -EINVAL;
	h->seq = get_u64(&r);
	h->payload_bytes = get_u32(&r);
	h->payload_crc = get_u32(&r);
	h->flags = get_u32(&r);
	crc = get_u32(&r);
	get_bytes(&r, h->fs_uuid, 16);
	h->prev_crc = get_u32(&r);
	h->crc = crc;
	if (crc_without_field(in, LOG_HEADER_BYTES, LOG_HEADER_CRC_OFFSET) != crc)
		return -EUCLEAN;
	return memcmp(h->fs_uuid, fs_uuid, 16) ? -ESTALE : 0;
}

/* ---- layout --------------------------------------------------------------- */

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static uint64_t pow2_floor(uint64_t v)
{
	uint64_t p = 1;

	while (p <= v / 2)
		p *= 2;
	return p;
}

static void layout_derive(struct layout *l)
{
	l->ckpt_bytes = (l->meta_bytes * 3 / 8) & ~(uint64_t)(MiB - 1);
	l->log_offset = l->meta_offset + 2 * l->ckpt_bytes;
	l->log_bytes = l->meta_bytes - 2 * l->ckpt_bytes;
}

int layout_choose(uint64_t min_dev_bytes, uint64_t meta_bytes, struct layout *l)
{
	uint64_t data;

	memset(l, 0, sizeof(*l));
	l->meta_offset = DMIOFS_RESERVED_HEAD;
	/* 1/32 of the smallest device, 8 MiB .. 64 GiB: a checkpoint slot
	 * (3/8 of it) then holds the 4-byte checksum of every data block
	 * with room to spare for the inodes and names. */
	if (!meta_bytes) {
		meta_bytes = min_dev_bytes / 32;
		if (meta_bytes < 8 * MiB)
			meta_bytes = 8 * MiB;
		if (meta_bytes > 64 * GiB)
			meta_bytes = 64 * GiB;
	}
	l->meta_bytes = meta_bytes & ~(uint64_t)(MiB - 1);
	if (l->meta_bytes < 8 * MiB)
		return -EINVAL;
	layout_derive(l);
	l->data_offset = l->meta_offset + l->meta_bytes;
	/* The tail keeps the backup superblock: stop 1 MiB short of the end. */
	if (min_dev_bytes < l->data_offset + 2 * MiB + MiB)
		return -ENOSPC;
	data = min_dev_bytes - MiB - l->data_offset;
	/* About 64 chunks on the smallest device, 1 MiB .. 256 MiB each. */
	l->chunk_bytes = pow2_floor(data / 64);
	if (l->chunk_bytes < MiB)
		l->chunk_bytes = MiB;
	if (l->chunk_bytes > 256 * MiB)
		l->chunk_bytes = 256 * MiB;
	return data >= 2 * l->chunk_bytes ? 0 : -ENOSPC;
}

uint64_t layout_min_bytes(uint64_t meta_bytes)
{
	uint64_t meta = meta_bytes ? meta_bytes & ~(uint64_t)(MiB - 1) : 8 * MiB;

	if (meta < 8 * MiB)
		meta = 8 * MiB;
	/* head, metadata, two 1 MiB chunks, the tail with the backup */
	return DMIOFS_RESERVED_HEAD + meta + 2 * MiB + MiB;
}

void layout_from_sb(const struct superblock *sb, struct layout *l)
{
	memset(l, 0, sizeof(*l));
	l->meta_offset = sb->meta_offset;
	l->meta_bytes = sb->meta_bytes;
	l->ckpt_bytes = sb->ckpt_bytes;
	l->log_offset = l->meta_offset + 2 * l->ckpt_bytes;
	l->log_bytes = l->meta_bytes - 2 * l->ckpt_bytes;
	l->data_offset = sb->data_offset;
	l->chunk_bytes = sb->chunk_bytes;
}

uint64_t layout_chunks(const struct layout *l, uint64_t dev_bytes)
{
	if (dev_bytes < l->data_offset + MiB)
		return 0;
	return (dev_bytes - MiB - l->data_offset) / l->chunk_bytes;
}

const char *dev_state_name(uint32_t state)
{
	switch (state) {
	case DEV_HEALTHY:
		return "healthy";
	case DEV_FAILED:
		return "failed";
	case DEV_MISSING:
		return "missing";
	case DEV_RETURNING:
		return "returning";
	case DEV_REMOVED:
		return "removed";
	}
	return "unknown";
}

void uuid_format(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
		 u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}
