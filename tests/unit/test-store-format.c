/* test-store-format.c - dmiofs's on-disk format (src/store/format.c and
 * codec.h): superblock, checkpoint and log headers round trip bit for bit
 * and every damaged or foreign one is refused with its own errno; the
 * root reserve has its place, reads as none from older superblocks and
 * past its maximum is impossible; the
 * layout chosen for devices of many sizes is self-consistent and agrees
 * with layout_min_bytes; CRC32C is the Castagnoli polynomial; the codec's
 * little-endian encoding and overflow flags.
 *
 * Every test body runs in a child process (g_test_trap_subprocess): one
 * failed assertion fails its own test and the others still run. */
#define _GNU_SOURCE
#include <errno.h>
#include <glib.h>
#include <string.h>

#include "codec.h"
#include "format.h"
#include "testutil.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* ---- running a body in a child ------------------------------------------- */


/* ---- helpers ----------------------------------------------------------------- */

static void fill_uuid(uint8_t u[16], uint8_t seed)
{
	for (int i = 0; i < 16; i++)
		u[i] = (uint8_t)(seed * 17 + i * 5 + 1);
}

/* A superblock as mkfs would write it for device 1 of two 64 MiB images. */
static void valid_sb(struct superblock *sb)
{
	memset(sb, 0, sizeof(*sb));
	fill_uuid(sb->fs_uuid, 1);
	fill_uuid(sb->dev_uuid, 2);
	g_strlcpy(sb->label, "mirror-test", sizeof(sb->label));
	sb->copies = 2;
	sb->ndevices = 2;
	sb->dev_index = 1;
	sb->block_size = DMIOFS_BLOCK;
	sb->dev_bytes = 64 * MiB;
	sb->meta_offset = DMIOFS_RESERVED_HEAD;
	sb->meta_bytes = 8 * MiB;
	sb->ckpt_bytes = 3 * MiB;
	sb->data_offset = 9 * MiB;
	sb->chunk_bytes = MiB;
	sb->created = 1700000000;
	sb->generation = 0x0102030405060708ull;
	sb->ckpt_seq = 0x1122334455667788ull;
	sb->ckpt_slot = 1;
	sb->flags = SB_CLEAN;
	for (int i = 0; i < 2; i++) {
		fill_uuid(sb->devs[i].uuid, (uint8_t)(10 + i));
		sb->devs[i].bytes = 64 * MiB + (uint64_t)i * 4096;
		sb->devs[i].state = i ? DEV_FAILED : DEV_HEALTHY;
	}
}

static void assert_sb_equal(const struct superblock *a, const struct superblock *b)
{
	g_assert_cmpmem(a->fs_uuid, 16, b->fs_uuid, 16);
	g_assert_cmpmem(a->dev_uuid, 16, b->dev_uuid, 16);
	g_assert_cmpstr(a->label, ==, b->label);
	g_assert_cmpuint(a->copies, ==, b->copies);
	g_assert_cmpuint(a->ndevices, ==, b->ndevices);
	g_assert_cmpuint(a->dev_index, ==, b->dev_index);
	g_assert_cmpuint(a->block_size, ==, b->block_size);
	g_assert_cmpuint(a->dev_bytes, ==, b->dev_bytes);
	g_assert_cmpuint(a->meta_offset, ==, b->meta_offset);
	g_assert_cmpuint(a->meta_bytes, ==, b->meta_bytes);
	g_assert_cmpuint(a->ckpt_bytes, ==, b->ckpt_bytes);
	g_assert_cmpuint(a->data_offset, ==, b->data_offset);
	g_assert_cmpuint(a->chunk_bytes, ==, b->chunk_bytes);
	g_assert_cmpuint(a->created, ==, b->created);
	g_assert_cmpuint(a->generation, ==, b->generation);
	g_assert_cmpuint(a->ckpt_seq, ==, b->ckpt_seq);
	g_assert_cmpuint(a->ckpt_slot, ==, b->ckpt_slot);
	g_assert_cmpuint(a->flags, ==, b->flags);
	g_assert_cmpuint(a->root_reserve_permille, ==, b->root_reserve_permille);
	for (int i = 0; i < DMIOFS_MAX_DEVICES; i++) {
		g_assert_cmpmem(a->devs[i].uuid, 16, b->devs[i].uuid, 16);
		g_assert_cmpuint(a->devs[i].bytes, ==, b->devs[i].bytes);
		g_assert_cmpuint(a->devs[i].state, ==, b->devs[i].state);
	}
}

/* Rewrite the CRC of a block whose CRC field (u32 LE) is at crc_at. */
static void fix_crc(uint8_t *block, size_t len, size_t crc_at)
{
	struct wbuf w;

	memset(block + crc_at, 0, 4);
	w = wbuf_init(block + crc_at, 4);
	put_u32(&w, dmiofs_crc(block, len));
}

static uint32_t le32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- CRC32C -------------------------------------------------------------------- */

static void test_crc(void)
{
	static const char check[] = "123456789";
	uint8_t big[10000];
	uint32_t whole, parts;

	/* The Castagnoli check value is 0xE3069283 after the final inversion;
	 * dmiofs stores the register (init ~0, no final xor).  Pinned: it is
	 * the on-disk format. */
	g_assert_cmphex(dmiofs_crc(check, 9), ==, ~0xE3069283u);
	g_assert_cmphex(dmiofs_crc("", 0), ==, 0xFFFFFFFFu);
	memset(big, 0, 4096);
	g_assert_cmphex(dmiofs_crc(big, 4096), ==, 0x6706BE76u); /* docs/FORMAT.md, section 3 */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + (i >> 8));
	whole = dmiofs_crc(big, sizeof(big));
	parts = dmiofs_crc_extend(dmiofs_crc(big, 1234), big + 1234, sizeof(big) - 1234);
	g_assert_cmphex(whole, ==, parts);
	big[5000] ^= 1;
	g_assert_cmphex(dmiofs_crc(big, sizeof(big)), !=, whole);
}

/* ---- superblock ------------------------------------------------------------------- */

static void test_sb_round_trip(void)
{
	struct superblock sb, out;
	uint8_t block[DMIOFS_BLOCK], again[DMIOFS_BLOCK];

	valid_sb(&sb);
	/* every device slot used, to catch a slot that does not round trip */
	sb.ndevices = DMIOFS_MAX_DEVICES;
	sb.copies = DMIOFS_MAX_COPIES;
	sb.dev_index = DMIOFS_MAX_DEVICES - 1;
	sb.root_reserve_permille = 123;
	for (int i = 0; i < DMIOFS_MAX_DEVICES; i++) {
		fill_uuid(sb.devs[i].uuid, (uint8_t)(40 + i));
		sb.devs[i].bytes = (uint64_t)(i + 1) << 33 | 0xABC000;
		sb.devs[i].state = (uint32_t)(i % 3);
	}
	memset(block, 0xEE, sizeof(block));
	sb_encode(&sb, block);
	g_assert_cmpmem(block, 8, DMIOFS_SB_MAGIC, 8);
	g_assert_cmpuint(le32_at(block + 8), ==, DMIOFS_VERSION);
	memset(&out, 0x55, sizeof(out));
	g_assert_cmpint(sb_decode(block, &out), ==, 0);
	assert_sb_equal(&sb, &out);
	/* encoding is deterministic: the decoded copy encodes to the same bytes */
	sb_encode(&out, again);
	g_assert_cmpmem(block, sizeof(block), again, sizeof(again));

	/* a label using all 64 bytes comes back terminated at 63 */
	valid_sb(&sb);
	memset(sb.label, 'L', sizeof(sb.label));
	sb_encode(&sb, block);
	g_assert_cmpint(sb_decode(block, &out), ==, 0);
	g_assert_cmpuint(strlen(out.label), ==, DMIOFS_LABEL_MAX);
	g_assert_cmpint(out.label[0], ==, 'L');
}

static void test_sb_bad_magic(void)
{
	struct superblock sb, out;
	uint8_t block[DMIOFS_BLOCK];

	valid_sb(&sb);
	sb_encode(&sb, block);
	block[3] ^= 0x20;
	fix_crc(block, DMIOFS_BLOCK, 12); /* a checksummed block that is not ours */
	g_assert_cmpint(sb_decode(block, &out), ==, -EINVAL);
	memset(block, 0, sizeof(block));
	g_assert_cmpint(sb_decode(block, &out), ==, -EINVAL);
	memset(block, 0xFF, sizeof(block));
	g_assert_cmpint(sb_decode(block, &out), ==, -EINVAL);
}

static void test_sb_bad_crc(void)
{
	static const size_t flips[] = { 12, 15, 16, 100, 300, 2000, DMIOFS_BLOCK - 1 };
	struct superblock sb, out;
	uint8_t block[DMIOFS_BLOCK], good[DMIOFS_BLOCK];

	valid_sb(&sb);
	sb_encode(&sb, good);
	for (size_t i = 0; i < G_N_ELEMENTS(flips); i++) {
		memcpy(block, good, sizeof(block));
		block[flips[i]] ^= 0x01;
		g_assert_cmpint(sb_decode(block, &out), ==, -EUCLEAN);
	}
	/* a version change without a new CRC is damage, not a version */
	memcpy(block, good, sizeof(block));
	block[8] = 2;
	g_assert_cmpint(sb_decode(block, &out), ==, -EUCLEAN);
}

static void test_sb_bad_version(void)
{
	static const uint32_t versions[] = { 0, 2, 0x100, 0xFFFFFFFFu };
	struct superblock sb, out;
	uint8_t block[DMIOFS_BLOCK];

	valid_sb(&sb);
	for (size_t i = 0; i < G_N_ELEMENTS(versions); i++) {
		struct wbuf w;

		sb_encode(&sb, block);
		w = wbuf_init(block + 8, 4);
		put_u32(&w, versions[i]);
		fix_crc(block, DMIOFS_BLOCK, 12);
		g_assert_cmpint(sb_decode(block, &out), ==, -EPROTO);
	}
}

/* One impossible value each, in a block with a good checksum. */
static void impossible(void (*mutate)(struct superblock *sb), const char *what)
{
	struct superblock sb, out;
	uint8_t block[DMIOFS_BLOCK];

	valid_sb(&sb);
	mutate(&sb);
	sb_encode(&sb, block);
	if (sb_decode(block, &out) != -EUCLEAN) {
		g_printerr("# a superblock with %s was not refused (sb_decode returned %d)\n", what,
			   sb_decode(block, &out));
		g_assert_cmpint(sb_decode(block, &out), ==, -EUCLEAN);
	}
}

static void m_block_size(struct superblock *sb) { sb->block_size = 512; }
static void m_block_size_big(struct superblock *sb) { sb->block_size = 8192; }
static void m_no_devices(struct superblock *sb) { sb->ndevices = 0; sb->copies = 0; sb->dev_index = 0; }
static void m_too_many_devices(struct superblock *sb) { sb->ndevices = DMIOFS_MAX_DEVICES + 1; }
static void m_no_copies(struct superblock *sb) { sb->copies = 0; }
static void m_copies_above_devices(struct superblock *sb) { sb->copies = 3; }
static void m_index_out_of_range(struct superblock *sb) { sb->dev_index = 2; }
static void m_chunk_zero(struct superblock *sb) { sb->chunk_bytes = 0; }
static void m_chunk_unaligned(struct superblock *sb) { sb->chunk_bytes = MiB + 512; }
static void m_data_inside_meta(struct superblock *sb) { sb->data_offset = sb->meta_offset + sb->meta_bytes - 4096; }
static void m_ckpt_too_big(struct superblock *sb) { sb->ckpt_bytes = sb->meta_bytes / 2; }

static void test_sb_impossible(void)
{
	impossible(m_block_size, "block_size 512");
	impossible(m_block_size_big, "block_size 8192");
	impossible(m_no_devices, "no devices");
	impossible(m_too_many_devices, "33 devices");
	impossible(m_no_copies, "0 copies");
	impossible(m_copies_above_devices, "3 copies on 2 devices");
	impossible(m_index_out_of_range, "device index 2 of 2");
	impossible(m_chunk_zero, "chunk_bytes 0");
	impossible(m_chunk_unaligned, "chunk_bytes not a multiple of the block");
	impossible(m_data_inside_meta, "chunk space inside the metadata area");
	impossible(m_ckpt_too_big, "two checkpoint slots filling the metadata area (no log)");
}

/* mkfs refuses more than DMIOFS_MAX_COPIES copies, and the allocator keeps
 * stripes in arrays of DMIOFS_MAX_COPIES (struct rec_chunk, pick_devices):
 * a superblock saying 9 copies of 10 devices is just as impossible. */
static void m_copies_above_max(struct superblock *sb)
{
	sb->ndevices = DMIOFS_MAX_COPIES + 2;
	sb->copies = DMIOFS_MAX_COPIES + 1;
}

static void test_sb_impossible_copies_above_max(void)
{
	impossible(m_copies_above_max, "9 copies (DMIOFS_MAX_COPIES is 8)");
}

/* A checkpoint slot holds at least its header block; with ckpt_bytes 0
 * both slots and the log start at the same byte. */
static void m_ckpt_zero(struct superblock *sb) { sb->ckpt_bytes = 0; }

static void test_sb_impossible_ckpt_zero(void)
{
	impossible(m_ckpt_zero, "checkpoint slots of 0 bytes");
}

/* The root reserve: a u32 of thousandths at byte 1488 (docs/FORMAT.md,
 * section 4), after left_at; a superblock written before it was defined
 * has zeroes there and keeps no reserve. */
static void test_sb_root_reserve(void)
{
	struct superblock sb, out;
	uint8_t block[DMIOFS_BLOCK];

	valid_sb(&sb);
	sb.root_reserve_permille = 50;
	sb_encode(&sb, block);
	g_assert_cmpuint(le32_at(block + 1488), ==, 50);
	for (size_t i = 1492; i < DMIOFS_BLOCK; i++)
		g_assert_cmpuint(block[i], ==, 0);
	g_assert_cmpint(sb_decode(block, &out), ==, 0);
	g_assert_cmpuint(out.root_reserve_permille, ==, 50);

	memset(block + 1488, 0, 4); /* as an older mkfs wrote it */
	fix_crc(block, DMIOFS_BLOCK, 12);
	g_assert_cmpint(sb_decode(block, &out), ==, 0);
	g_assert_cmpuint(out.root_reserve_permille, ==, 0);

	sb.root_reserve_permille = DMIOFS_ROOT_RESERVE_MAX;
	sb_encode(&sb, block);
	g_assert_cmpint(sb_decode(block, &out), ==, 0);
	g_assert_cmpuint(out.root_reserve_permille, ==, DMIOFS_ROOT_RESERVE_MAX);
}

static void m_reserve_above_max(struct superblock *sb) { sb->root_reserve_permille = DMIOFS_ROOT_RESERVE_MAX + 1; }

static void test_sb_impossible_reserve(void)
{
	impossible(m_reserve_above_max, "a root reserve above half the capacity");
}

static void test_sb_backup_offset(void)
{
	g_assert_cmpuint(sb_backup_offset(64 * MiB), ==, 64 * MiB - 4096);
	g_assert_cmpuint(sb_backup_offset(64 * MiB + 4095), ==, 64 * MiB - 4096);
	g_assert_cmpuint(sb_backup_offset(64 * MiB + 4096), ==, 64 * MiB);
	g_assert_cmpuint(sb_backup_offset(3 * GiB + 100), ==, 3 * GiB - 4096);
}

/* ---- checkpoint and log headers ------------------------------------------------ */

static void valid_ckpt(struct ckpt_header *h)
{
	memset(h, 0, sizeof(*h));
	fill_uuid(h->fs_uuid, 1);
	h->seq = 0xA1A2A3A4A5A6A7A8ull;
	h->payload_bytes = 3 * MiB - 4096 - 17;
	h->payload_crc = 0xDEADBEEF;
	h->log_pos = 123 * 4096;
	h->next_ino = 987654321012ull;
	h->created = 1700000001;
}

static void test_ckpt_header(void)
{
	struct ckpt_header h, out;
	uint8_t block[DMIOFS_BLOCK], other_fs[16], bad[DMIOFS_BLOCK];
	struct wbuf w;

	valid_ckpt(&h);
	memset(block, 0xEE, sizeof(block));
	ckpt_header_encode(&h, block);
	g_assert_cmpmem(block, 8, DMIOFS_CKPT_MAGIC, 8);
	memset(&out, 0, sizeof(out));
	g_assert_cmpint(ckpt_header_decode(block, h.fs_uuid, &out), ==, 0);
	g_assert_cmpmem(out.fs_uuid, 16, h.fs_uuid, 16);
	g_assert_cmpuint(out.seq, ==, h.seq);
	g_assert_cmpuint(out.payload_bytes, ==, h.payload_bytes);
	g_assert_cmphex(out.payload_crc, ==, h.payload_crc);
	g_assert_cmpuint(out.log_pos, ==, h.log_pos);
	g_assert_cmpuint(out.next_ino, ==, h.next_ino);
	g_assert_cmpuint(out.created, ==, h.created);

	/* another file system's slot */
	fill_uuid(other_fs, 2);
	g_assert_cmpint(ckpt_header_decode(block, other_fs, &out), ==, -ESTALE);
	/* damage anywhere, the CRC included */
	for (size_t at = 0; at < DMIOFS_BLOCK; at += 509) {
		if (at < 8)
			continue; /* the magic: below */
		memcpy(bad, block, sizeof(bad));
		bad[at] ^= 0x80;
		g_assert_cmpint(ckpt_header_decode(bad, h.fs_uuid, &out), ==, -EUCLEAN);
	}
	memcpy(bad, block, sizeof(bad));
	bad[13] ^= 0x80;
	g_assert_cmpint(ckpt_header_decode(bad, h.fs_uuid, &out), ==, -EUCLEAN);
	/* not a checkpoint: a superblock, zeroes */
	memcpy(bad, block, sizeof(bad));
	memcpy(bad, DMIOFS_SB_MAGIC, 8);
	fix_crc(bad, DMIOFS_BLOCK, 12);
	g_assert_cmpint(ckpt_header_decode(bad, h.fs_uuid, &out), ==, -EINVAL);
	memset(bad, 0, sizeof(bad));
	g_assert_cmpint(ckpt_header_decode(bad, h.fs_uuid, &out), ==, -EINVAL);
	/* a later version */
	memcpy(bad, block, sizeof(bad));
	w = wbuf_init(bad + 8, 4);
	put_u32(&w, DMIOFS_VERSION + 1);
	fix_crc(bad, DMIOFS_BLOCK, 12);
	g_assert_cmpint(ckpt_header_decode(bad, h.fs_uuid, &out), ==, -EPROTO);
}

static void test_log_header(void)
{
	struct log_header h = { .seq = 0x0102030405060708ull, .payload_bytes = 0xFFFFFFC0u, .payload_crc = 0x12345678,
				.flags = 0 };
	struct log_header out;
	uint8_t hdr[LOG_HEADER_BYTES], bad[LOG_HEADER_BYTES], other_fs[16];

	fill_uuid(h.fs_uuid, 3);
	memset(hdr, 0xEE, sizeof(hdr));
	log_header_encode(&h, hdr);
	g_assert_cmpmem(hdr, 8, DMIOFS_LOG_MAGIC, 8);
	memset(&out, 0, sizeof(out));
	g_assert_cmpint(log_header_decode(hdr, h.fs_uuid, &out), ==, 0);
	g_assert_cmpuint(out.seq, ==, h.seq);
	g_assert_cmpuint(out.payload_bytes, ==, h.payload_bytes);
	g_assert_cmphex(out.payload_crc, ==, h.payload_crc);
	g_assert_cmpuint(out.flags, ==, 0);
	g_assert_cmpmem(out.fs_uuid, 16, h.fs_uuid, 16);

	h.flags = LOG_WRAP;
	h.payload_bytes = 0;
	log_header_encode(&h, hdr);
	g_assert_cmpint(log_header_decode(hdr, h.fs_uuid, &out), ==, 0);
	g_assert_cmpuint(out.flags, ==, LOG_WRAP);
	g_assert_cmpuint(out.payload_bytes, ==, 0);

	fill_uuid(other_fs, 4);
	g_assert_cmpint(log_header_decode(hdr, other_fs, &out), ==, -ESTALE);
	for (size_t at = 8; at < LOG_HEADER_BYTES; at++) {
		memcpy(bad, hdr, sizeof(bad));
		bad[at] ^= 0x04;
		g_assert_cmpint(log_header_decode(bad, h.fs_uuid, &out), ==, -EUCLEAN);
	}
	memcpy(bad, hdr, sizeof(bad));
	bad[0] = 'X';
	g_assert_cmpint(log_header_decode(bad, h.fs_uuid, &out), ==, -EINVAL);
	memset(bad, 0, sizeof(bad));
	g_assert_cmpint(log_header_decode(bad, h.fs_uuid, &out), ==, -EINVAL);
}

/* ---- layout ------------------------------------------------------------------------ */

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* What every accepted layout must satisfy on a device of dev_bytes. */
static void check_layout(const struct layout *l, uint64_t dev_bytes)
{
	struct superblock sb, out;
	struct layout back;
	uint8_t block[DMIOFS_BLOCK];
	uint64_t chunks = layout_chunks(l, dev_bytes);

	g_assert_cmpuint(l->meta_offset, ==, DMIOFS_RESERVED_HEAD);
	g_assert_cmpuint(l->meta_bytes % MiB, ==, 0);
	g_assert_cmpuint(l->meta_bytes, >=, 8 * MiB);
	g_assert_cmpuint(l->meta_bytes, <=, 64 * GiB);
	g_assert_cmpuint(l->ckpt_bytes % MiB, ==, 0);
	g_assert_cmpuint(l->ckpt_bytes, >=, MiB);
	g_assert_cmpuint(2 * l->ckpt_bytes, <, l->meta_bytes);
	g_assert_cmpuint(l->log_offset, ==, l->meta_offset + 2 * l->ckpt_bytes);
	g_assert_cmpuint(l->log_offset + l->log_bytes, ==, l->meta_offset + l->meta_bytes);
	g_assert_cmpuint(l->log_bytes % DMIOFS_BLOCK, ==, 0);
	g_assert_cmpuint(l->log_bytes, >=, MiB);
	g_assert_cmpuint(l->data_offset, ==, l->meta_offset + l->meta_bytes);
	g_assert_true(is_pow2(l->chunk_bytes));
	g_assert_cmpuint(l->chunk_bytes, >=, MiB);
	g_assert_cmpuint(l->chunk_bytes, <=, 256 * MiB);
	g_assert_cmpuint(chunks, >=, 2);
	/* the chunks end before the backup superblock */
	g_assert_cmpuint(l->data_offset + chunks * l->chunk_bytes, <=, sb_backup_offset(dev_bytes));
	g_assert_cmpuint(l->data_offset + (chunks + 1) * l->chunk_bytes, >, dev_bytes - MiB);

	/* what the superblock says gives back the same layout, and passes decode */
	valid_sb(&sb);
	sb.dev_bytes = dev_bytes;
	sb.meta_offset = l->meta_offset;
	sb.meta_bytes = l->meta_bytes;
	sb.ckpt_bytes = l->ckpt_bytes;
	sb.data_offset = l->data_offset;
	sb.chunk_bytes = l->chunk_bytes;
	sb_encode(&sb, block);
	g_assert_cmpint(sb_decode(block, &out), ==, 0);
	layout_from_sb(&out, &back);
	g_assert_cmpmem(&back, sizeof(back), l, sizeof(*l));
}

static void test_layout_sizes(void)
{
	static const struct {
		uint64_t dev, meta, chunk;
	} want[] = {
		/* default metadata: 1/32 of the smallest device, 8 MiB .. 64 GiB,
		 * rounded down to 1 MiB (docs/FORMAT.md, section 11) */
		{ 12 * MiB, 8 * MiB, MiB },
		{ 32 * MiB, 8 * MiB, MiB },
		{ 64 * MiB, 8 * MiB, MiB },
		{ 200 * MiB, 8 * MiB, 2 * MiB },
		{ 300 * MiB, 9 * MiB, 4 * MiB },    /* 9.375 MiB rounds down */
		{ 1 * GiB, 32 * MiB, 8 * MiB },
		{ 16 * GiB, 512 * MiB, 128 * MiB },
		{ 100 * GiB, 3200 * MiB, 256 * MiB }, /* the chunk limit */
		{ 2048 * GiB, 64 * GiB, 256 * MiB },  /* both limits */
		{ 20000 * GiB, 64 * GiB, 256 * MiB },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
		struct layout l;

		g_assert_cmpint(layout_choose(want[i].dev, 0, &l), ==, 0);
		g_assert_cmpuint(l.meta_bytes, ==, want[i].meta);
		g_assert_cmpuint(l.chunk_bytes, ==, want[i].chunk);
		g_assert_cmpuint(l.ckpt_bytes, ==, (want[i].meta * 3 / 8) & ~(MiB - 1));
		check_layout(&l, want[i].dev);
	}
}

static void test_layout_explicit_meta(void)
{
	struct layout l;

	g_assert_cmpint(layout_choose(GiB, 32 * MiB + 12345, &l), ==, 0);
	g_assert_cmpuint(l.meta_bytes, ==, 32 * MiB);
	g_assert_cmpuint(l.ckpt_bytes, ==, 12 * MiB);
	g_assert_cmpuint(l.log_bytes, ==, 8 * MiB);
	g_assert_cmpuint(l.data_offset, ==, 33 * MiB);
	check_layout(&l, GiB);
	/* below 8 MiB of metadata is refused whatever the device */
	g_assert_cmpint(layout_choose(GiB, 7 * MiB, &l), ==, -EINVAL);
	g_assert_cmpint(layout_choose(GiB, 8 * MiB - 1, &l), ==, -EINVAL);
	/* metadata larger than the device leaves no chunk space */
	g_assert_cmpint(layout_choose(64 * MiB, 64 * MiB, &l), ==, -ENOSPC);
}

static void test_layout_too_small(void)
{
	static const uint64_t small[] = { 0, 4096, MiB, 8 * MiB, 11 * MiB, 12 * MiB - 4096, 12 * MiB - 1 };
	struct layout l;

	for (size_t i = 0; i < G_N_ELEMENTS(small); i++)
		g_assert_cmpint(layout_choose(small[i], 0, &l), ==, -ENOSPC);
}

/* layout_min_bytes is exactly the smallest device layout_choose accepts. */
static void test_layout_min_bytes(void)
{
	static const uint64_t metas[] = { 0, 8 * MiB, 9 * MiB, 16 * MiB + 4096, 64 * MiB, 100 * MiB + 12345,
					  4 * GiB, 64 * GiB };

	g_assert_cmpuint(layout_min_bytes(0), ==, 12 * MiB);
	for (size_t i = 0; i < G_N_ELEMENTS(metas); i++) {
		uint64_t min = layout_min_bytes(metas[i]);
		struct layout l;

		g_assert_cmpuint(min % DMIOFS_BLOCK, ==, 0);
		g_assert_cmpint(layout_choose(min, metas[i], &l), ==, 0);
		check_layout(&l, min);
		g_assert_cmpuint(layout_chunks(&l, min), ==, 2);
		g_assert_cmpint(layout_choose(min - DMIOFS_BLOCK, metas[i], &l), ==, -ENOSPC);
		g_assert_cmpint(layout_choose(min - 1, metas[i], &l), ==, -ENOSPC);
	}
	/* with the default metadata, every size from the minimum up is accepted */
	for (uint64_t dev = layout_min_bytes(0); dev <= 600 * MiB; dev += 7 * MiB + 4096) {
		struct layout l;

		g_assert_cmpint(layout_choose(dev, 0, &l), ==, 0);
		check_layout(&l, dev);
	}
}

static void test_layout_chunks(void)
{
	struct layout l;

	g_assert_cmpint(layout_choose(64 * MiB, 0, &l), ==, 0);
	/* 64 MiB - 9 MiB head and metadata - 1 MiB tail */
	g_assert_cmpuint(layout_chunks(&l, 64 * MiB), ==, 54);
	g_assert_cmpuint(layout_chunks(&l, 64 * MiB + MiB - 1), ==, 54);
	g_assert_cmpuint(layout_chunks(&l, 65 * MiB), ==, 55);
	g_assert_cmpuint(layout_chunks(&l, 10 * MiB), ==, 0);
	g_assert_cmpuint(layout_chunks(&l, 5 * MiB), ==, 0);
	g_assert_cmpuint(layout_chunks(&l, 0), ==, 0);
}

static void test_names(void)
{
	uint8_t u[16];
	char s[37];

	g_assert_cmpstr(dev_state_name(DEV_HEALTHY), ==, "healthy");
	g_assert_cmpstr(dev_state_name(DEV_FAILED), ==, "failed");
	g_assert_cmpstr(dev_state_name(DEV_MISSING), ==, "missing");
	g_assert_cmpstr(dev_state_name(77), ==, "unknown");
	for (int i = 0; i < 16; i++)
		u[i] = (uint8_t)(i * 0x11);
	uuid_format(u, s);
	g_assert_cmpstr(s, ==, "00112233-4455-6677-8899-aabbccddeeff");
}

/* ---- codec ---------------------------------------------------------------------------- */

static void test_codec_round_trip(void)
{
	uint8_t buf[64];
	struct wbuf w = wbuf_init(buf, sizeof(buf));
	struct rbuf r;
	const char *s;
	size_t len;
	uint8_t raw[3];

	put_u8(&w, 0xA5);
	put_u16(&w, 0xBEEF);
	put_u32(&w, 0x01020304);
	put_u64(&w, 0x1122334455667788ull);
	put_str(&w, "name", 4);
	put_zeros(&w, 3);
	put_bytes(&w, "xyz", 3);
	g_assert_false(w.overflow);
	g_assert_cmpuint((size_t)(w.p - buf), ==, 1 + 2 + 4 + 8 + 2 + 4 + 3 + 3);
	/* little-endian, byte for byte */
	{
		static const uint8_t expect[] = { 0xA5, 0xEF, 0xBE, 0x04, 0x03, 0x02, 0x01, 0x88, 0x77, 0x66, 0x55,
						  0x44, 0x33, 0x22, 0x11, 0x04, 0x00, 'n',  'a',  'm',  'e',  0,
						  0,    0,    'x',  'y',  'z' };

		g_assert_cmpmem(buf, sizeof(expect), expect, sizeof(expect));
	}
	r = rbuf_init(buf, (size_t)(w.p - buf));
	g_assert_cmphex(get_u8(&r), ==, 0xA5);
	g_assert_cmphex(get_u16(&r), ==, 0xBEEF);
	g_assert_cmphex(get_u32(&r), ==, 0x01020304);
	g_assert_cmphex(get_u64(&r), ==, 0x1122334455667788ull);
	s = get_str(&r, &len);
	g_assert_cmpuint(len, ==, 4);
	g_assert_cmpmem(s, len, "name", 4);
	skip_bytes(&r, 3);
	get_bytes(&r, raw, 3);
	g_assert_cmpmem(raw, 3, "xyz", 3);
	g_assert_false(r.overflow);
	g_assert_true(r.p == r.end);
}

static void test_codec_write_overflow(void)
{
	uint8_t buf[8];
	struct wbuf w;

	memset(buf, 0xCC, sizeof(buf));
	w = wbuf_init(buf, 6);
	put_u32(&w, 0x11111111);
	g_assert_false(w.overflow);
	put_u32(&w, 0x22222222); /* needs 4, 2 left: refused whole */
	g_assert_true(w.overflow);
	g_assert_cmpuint((size_t)(w.p - buf), ==, 4);
	g_assert_cmphex(buf[4], ==, 0xCC);
	g_assert_cmphex(buf[5], ==, 0xCC);
	put_u8(&w, 1); /* would fit, but overflow is sticky */
	g_assert_true(w.overflow);
	g_assert_cmphex(buf[4], ==, 0xCC);

	w = wbuf_init(buf, 5);
	put_str(&w, "abcd", 4); /* 2 + 4 > 5 */
	g_assert_true(w.overflow);
	w = wbuf_init(buf, 3);
	put_zeros(&w, 4);
	g_assert_true(w.overflow);
	g_assert_cmphex(buf[0], !=, 0); /* nothing written */
	w = wbuf_init(buf, 8);
	put_u64(&w, 1);
	g_assert_false(w.overflow);
	put_bytes(&w, "", 0);
	g_assert_false(w.overflow);
	put_u8(&w, 1);
	g_assert_true(w.overflow);
}

static void test_codec_read_overflow(void)
{
	uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t str[6] = { 10, 0, 'a', 'b', 'c', 'd' }; /* says 10 bytes, holds 4 */
	struct rbuf r;
	const char *s;
	size_t len;
	uint8_t out[4];

	r = rbuf_init(buf, 6);
	g_assert_cmphex(get_u32(&r), ==, 0x04030201);
	g_assert_cmphex(get_u32(&r), ==, 0); /* 2 left: refused, reads as 0 */
	g_assert_true(r.overflow);
	g_assert_cmpuint(get_u8(&r), ==, 0); /* sticky */
	g_assert_true(r.p == buf + 4);

	r = rbuf_init(buf, 7);
	g_assert_cmpuint(get_u64(&r), ==, 0);
	g_assert_true(r.overflow);

	r = rbuf_init(str, sizeof(str));
	s = get_str(&r, &len);
	g_assert_true(r.overflow);
	g_assert_cmpuint(len, ==, 0);
	g_assert_cmpstr(s, ==, "");

	r = rbuf_init(buf, 3);
	memset(out, 0xAA, sizeof(out));
	get_bytes(&r, out, 4);
	g_assert_true(r.overflow);
	for (int i = 0; i < 4; i++)
		g_assert_cmpuint(out[i], ==, 0); /* zeroed, not left with garbage */

	r = rbuf_init(buf, 3);
	skip_bytes(&r, 4);
	g_assert_true(r.overflow);
	g_assert_true(r.p == buf);

	r = rbuf_init(buf, 0);
	g_assert_cmpuint(get_u16(&r), ==, 0);
	g_assert_true(r.overflow);
}

/* ---- main ------------------------------------------------------------------------------ */

#define CASE(path, fn) tu_add_guarded_nodir("/store-format/" path, fn, 30)

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	CASE("crc32c", test_crc);
	CASE("sb/round-trip", test_sb_round_trip);
	CASE("sb/bad-magic", test_sb_bad_magic);
	CASE("sb/bad-crc", test_sb_bad_crc);
	CASE("sb/bad-version", test_sb_bad_version);
	CASE("sb/impossible", test_sb_impossible);
	CASE("sb/impossible-copies-above-max", test_sb_impossible_copies_above_max);
	CASE("sb/impossible-ckpt-zero", test_sb_impossible_ckpt_zero);
	CASE("sb/root-reserve", test_sb_root_reserve);
	CASE("sb/impossible-reserve", test_sb_impossible_reserve);
	CASE("sb/backup-offset", test_sb_backup_offset);
	CASE("ckpt-header", test_ckpt_header);
	CASE("log-header", test_log_header);
	CASE("layout/sizes", test_layout_sizes);
	CASE("layout/explicit-meta", test_layout_explicit_meta);
	CASE("layout/too-small", test_layout_too_small);
	CASE("layout/min-bytes", test_layout_min_bytes);
	CASE("layout/chunks", test_layout_chunks);
	CASE("names", test_names);
	CASE("codec/round-trip", test_codec_round_trip);
	CASE("codec/write-overflow", test_codec_write_overflow);
	CASE("codec/read-overflow", test_codec_read_overflow);
	return g_test_run();
}
