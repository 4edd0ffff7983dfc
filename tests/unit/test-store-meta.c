/* test-store-meta.c - metadata records (src/store/records.c) and the
 * in-memory metadata they build (src/store/meta.c): every record type
 * round trips, malformed buffers are refused, a small tree applies, every
 * inconsistent record is refused with -EUCLEAN and changes nothing,
 * extents split, trim, merge and keep their checksums, the blocks let go
 * of reach on_free exactly, a checkpoint (meta_serialize) applied to a
 * fresh meta rebuilds the same tree, and meta_estimate_bytes follows the
 * metadata up and back down.
 *
 * Every test body runs in a child process (g_test_trap_subprocess): one
 * failed assertion fails its own test and the others still run. */
#define _GNU_SOURCE
#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "extmap.h"
#include "meta.h"
#include "testutil.h"
#include "records.h"


/* ---- running a body in a child ------------------------------------------- */


/* ---- building records ------------------------------------------------------- */

static struct rec_inode make_inode(uint64_t ino, uint32_t mode, uint32_t nlink, uint64_t size)
{
	struct rec_inode r = {
		.ino = ino,
		.mode = mode,
		.uid = 1000 + (uint32_t)ino,
		.gid = 2000 + (uint32_t)ino,
		.nlink = nlink,
		.size = size,
		.rdev = 0,
		.atime = { 1700000000 + (int64_t)ino, 1 },
		.mtime = { 1700000100 + (int64_t)ino, 2 },
		.ctime = { 1700000200 + (int64_t)ino, 3 },
	};

	return r;
}

static void put_inode(GByteArray *g, uint64_t ino, uint32_t mode, uint32_t nlink, uint64_t size)
{
	struct rec_inode r = make_inode(ino, mode, nlink, size);

	rec_put_inode(g, &r);
}

static void put_link(GByteArray *g, uint64_t parent, uint64_t ino, const char *name)
{
	rec_put_link(g, REC_LINK, parent, ino, name, strlen(name));
}

static void put_unlink(GByteArray *g, uint64_t parent, const char *name)
{
	rec_put_link(g, REC_UNLINK, parent, 0, name, strlen(name));
}

/* csums of an extent: a recognisable value per (chunk, cblock) */
static uint32_t csum_of(uint32_t chunk, uint32_t cblock)
{
	return 0xC5000000u ^ chunk << 16 ^ cblock;
}

static void put_extent(GByteArray *g, uint64_t ino, uint64_t fblock, uint32_t n, uint32_t chunk, uint32_t cblock)
{
	uint32_t *cs = g_new(uint32_t, n);

	for (uint32_t i = 0; i < n; i++)
		cs[i] = csum_of(chunk, cblock + i);
	rec_put_extent(g, ino, fblock, n, chunk, cblock, cs);
	g_free(cs);
}

/* Apply every record of g, then empty it; the first error. */
static int apply(struct meta *m, GByteArray *g)
{
	int err = meta_apply_all(m, g->data, g->len);

	g_byte_array_set_size(g, 0);
	return err;
}

static void apply_ok(struct meta *m, GByteArray *g)
{
	g_assert_cmpint(apply(m, g), ==, 0);
}

/* ---- on_free recorder --------------------------------------------------------- */

struct freed {
	uint32_t chunk, cblock, n;
};

static void record_free(void *ctx, uint32_t chunk, uint32_t cblock, uint32_t n)
{
	struct freed f = { chunk, cblock, n };

	g_array_append_val((GArray *)ctx, f);
}

static void assert_freed(GArray *log, const struct freed *want, guint n)
{
	if (log->len != n) {
		for (guint i = 0; i < log->len; i++) {
			const struct freed *f = &g_array_index(log, struct freed, i);

			g_printerr("# freed chunk=%u cblock=%u n=%u\n", f->chunk, f->cblock, f->n);
		}
	}
	g_assert_cmpuint(log->len, ==, n);
	for (guint i = 0; i < n; i++) {
		const struct freed *f = &g_array_index(log, struct freed, i);

		g_assert_cmpuint(f->chunk, ==, want[i].chunk);
		g_assert_cmpuint(f->cblock, ==, want[i].cblock);
		g_assert_cmpuint(f->n, ==, want[i].n);
	}
	g_array_set_size(log, 0);
}

/* A meta with a root directory and the recorder attached. */
static void meta_with_root(struct meta *m, GArray **freed)
{
	GByteArray *g = g_byte_array_new();

	meta_init(m);
	*freed = g_array_new(FALSE, FALSE, sizeof(struct freed));
	m->on_free = record_free;
	m->free_ctx = *freed;
	put_inode(g, ROOT_INO, S_IFDIR | 0755, 2, 0);
	apply_ok(m, g);
	g_byte_array_free(g, TRUE);
}

static void meta_done(struct meta *m, GArray *freed)
{
	meta_destroy(m);
	g_array_free(freed, TRUE);
}

/* ---- extent checks ---------------------------------------------------------------- */

struct want_ext {
	uint64_t fblock;
	uint32_t nblocks, chunk, cblock;
};

/* The inode's extents are exactly want, and every block's csum is the
 * one written for its (chunk, cblock). */
static void assert_extents(const struct dinode *in, const struct want_ext *want, uint32_t n)
{
	uint64_t blocks = 0;
	struct ext_pos p;
	const struct extent *e;
	uint32_t i = 0;

	if (in->nextents != n)
		for (e = ext_first(in, &p); e; e = ext_next(in, &p))
			g_printerr("# extent [%llu, +%u) chunk %u cblock %u\n", (unsigned long long)e->fblock,
				   e->nblocks, e->chunk, e->cblock);
	g_assert_cmpuint(in->nextents, ==, n);
	for (e = ext_first(in, &p); e; e = ext_next(in, &p), i++) {

		g_assert_cmpuint(e->fblock, ==, want[i].fblock);
		g_assert_cmpuint(e->nblocks, ==, want[i].nblocks);
		g_assert_cmpuint(e->chunk, ==, want[i].chunk);
		g_assert_cmpuint(e->cblock, ==, want[i].cblock);
		for (uint32_t b = 0; b < e->nblocks; b++)
			g_assert_cmphex(ext_csums_const(e)[b], ==, csum_of(e->chunk, e->cblock + b));
		blocks += e->nblocks;
	}
	g_assert_cmpuint(in->blocks, ==, blocks);
}

/* ---- records ------------------------------------------------------------------------ */

static void test_records_round_trip(void)
{
	GByteArray *g = g_byte_array_new();
	struct rec_inode in = {
		.ino = 0x0123456789ABCDEFull, .mode = S_IFREG | 04755, .uid = 0xFFFFFFFEu, .gid = 7, .nlink = 65000,
		.size = 0xFFFFFFFFFFFFull, .rdev = 0x0800000001ull,
		.atime = { -5, 999999999 }, .mtime = { INT64_MAX, 0 }, .ctime = { 0, 1 },
	};
	const uint32_t cs[3] = { 0x11111111, 0xFFFFFFFF, 0x00000001 };
	const uint8_t value[5] = { 'v', 0, 0xFF, 'x', 0 };
	struct rec_chunk ch = { .id = 77, .ncopies = 3,
				.stripes = { { 0, 9ull << 20 }, { 5, 1ull << 40 }, { 31, 0xFFFFF00000ull } } };
	struct rec_counters dc = { .id = 3, .count = { 1, 2, 3, 4, 5 }, .last_bits = 0x5, .last_op = 2,
				   .last_chunk = 9 };
	struct rec_counters fc = { .id = 1ull << 40, .count = { 10, 20, 30, 40, 50 }, .last_bits = ~0ull,
				   .last_op = 1, .last_chunk = UINT32_MAX };
	const struct rec_scrub sc = { .state = SCRUB_PAUSED, .result = SCRUB_CANCELLED, .chunk = 77, .cblock = 12,
				      .started = 1, .ended = 2, .rate = 3, .checked = 4, .found = 5, .fixed = 6,
				      .unfixed = UINT64_MAX };
	static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	const uint8_t *pos, *end;
	struct record r;

	rec_put_inode(g, &in);
	rec_put_ino(g, REC_INODE_FREE, 42);
	rec_put_link(g, REC_LINK, 1, 43, "hello", 5);
	rec_put_link(g, REC_UNLINK, 1, 43, "hello world", 5); /* only len bytes count */
	rec_put_extent(g, 44, 1ull << 40, 3, 12, 250, cs);
	rec_put_punch(g, 44, 100, 7);
	rec_put_symlink(g, 45, "../target/x", 11);
	rec_put_xattr_set(g, 46, "user.k", 6, value, sizeof(value));
	rec_put_xattr_set(g, 46, "user.empty", 10, "", 0);
	rec_put_xattr_del(g, 46, "user.k", 6);
	rec_put_chunk(g, &ch);
	rec_put_dev_state(g, 4, DEV_MISSING, 1ull << 45);
	rec_put_stale(g, 7, 3, 100, 28, true);
	rec_put_counters(g, REC_DEV_COUNTERS, &dc);
	rec_put_counters(g, REC_FILE_ERRORS, &fc);
	rec_put_ino(g, REC_NEXT_INO, 1ull << 50);
	rec_put_scrub(g, &sc);
	rec_put_stripe_add(g, 9, 2, 1ull << 33);
	rec_put_stripe_drop(g, 9, 1);
	rec_put_dev_add(g, 5, uuid, 1ull << 36);
	rec_put_dev_leave(g, 5, UINT32_MAX, LEAVE_HEAL);

	/* the framing of the first record: u16 type, u16 0, u32 length */
	g_assert_cmpuint(g->data[0] | g->data[1] << 8, ==, REC_INODE);
	g_assert_cmpuint(g->data[2] | g->data[3] << 8, ==, 0);
	g_assert_cmpuint(g->data[4] | g->data[5] << 8 | g->data[6] << 16 | (uint32_t)g->data[7] << 24, ==,
			 8 + 4 * 4 + 8 + 8 + 3 * 12);

	pos = g->data;
	end = g->data + g->len;
	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_INODE);
	g_assert_cmpuint(r.u.inode.ino, ==, in.ino);
	g_assert_cmphex(r.u.inode.mode, ==, in.mode);
	g_assert_cmpuint(r.u.inode.uid, ==, in.uid);
	g_assert_cmpuint(r.u.inode.gid, ==, in.gid);
	g_assert_cmpuint(r.u.inode.nlink, ==, in.nlink);
	g_assert_cmpuint(r.u.inode.size, ==, in.size);
	g_assert_cmpuint(r.u.inode.rdev, ==, in.rdev);
	g_assert_cmpint(r.u.inode.atime.sec, ==, -5);
	g_assert_cmpuint(r.u.inode.atime.nsec, ==, 999999999);
	g_assert_cmpint(r.u.inode.mtime.sec, ==, INT64_MAX);
	g_assert_cmpuint(r.u.inode.mtime.nsec, ==, 0);
	g_assert_cmpint(r.u.inode.ctime.sec, ==, 0);
	g_assert_cmpuint(r.u.inode.ctime.nsec, ==, 1);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_INODE_FREE);
	g_assert_cmpuint(r.u.ino, ==, 42);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_LINK);
	g_assert_cmpuint(r.u.link.parent, ==, 1);
	g_assert_cmpuint(r.u.link.ino, ==, 43);
	g_assert_cmpmem(r.u.link.name, r.u.link.name_len, "hello", 5);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_UNLINK);
	g_assert_cmpuint(r.u.link.parent, ==, 1);
	g_assert_cmpmem(r.u.link.name, r.u.link.name_len, "hello", 5);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_EXTENT);
	g_assert_cmpuint(r.u.extent.ino, ==, 44);
	g_assert_cmpuint(r.u.extent.fblock, ==, 1ull << 40);
	g_assert_cmpuint(r.u.extent.nblocks, ==, 3);
	g_assert_cmpuint(r.u.extent.chunk, ==, 12);
	g_assert_cmpuint(r.u.extent.cblock, ==, 250);
	for (int i = 0; i < 3; i++) {
		const uint8_t *c = r.u.extent.csums + 4 * i;

		g_assert_cmphex((uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24,
				==, cs[i]);
	}

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_PUNCH);
	g_assert_cmpuint(r.u.extent.ino, ==, 44);
	g_assert_cmpuint(r.u.extent.fblock, ==, 100);
	g_assert_cmpuint(r.u.extent.nblocks, ==, 7);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_SYMLINK);
	g_assert_cmpuint(r.u.symlink.ino, ==, 45);
	g_assert_cmpmem(r.u.symlink.target, r.u.symlink.len, "../target/x", 11);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_XATTR_SET);
	g_assert_cmpuint(r.u.xattr.ino, ==, 46);
	g_assert_cmpmem(r.u.xattr.name, r.u.xattr.name_len, "user.k", 6);
	g_assert_cmpmem(r.u.xattr.value, r.u.xattr.value_len, value, sizeof(value));

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_XATTR_SET);
	g_assert_cmpmem(r.u.xattr.name, r.u.xattr.name_len, "user.empty", 10);
	g_assert_cmpuint(r.u.xattr.value_len, ==, 0);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_XATTR_DEL);
	g_assert_cmpuint(r.u.xattr.ino, ==, 46);
	g_assert_cmpmem(r.u.xattr.name, r.u.xattr.name_len, "user.k", 6);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_CHUNK);
	g_assert_cmpuint(r.u.chunk.id, ==, 77);
	g_assert_cmpuint(r.u.chunk.ncopies, ==, 3);
	for (int i = 0; i < 3; i++) {
		g_assert_cmpuint(r.u.chunk.stripes[i].dev, ==, ch.stripes[i].dev);
		g_assert_cmpuint(r.u.chunk.stripes[i].offset, ==, ch.stripes[i].offset);
	}

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_DEV_STATE);
	g_assert_cmpuint(r.u.dev_state.dev, ==, 4);
	g_assert_cmpuint(r.u.dev_state.state, ==, DEV_MISSING);
	g_assert_cmpuint(r.u.dev_state.left_at, ==, 1ull << 45);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_STALE);
	g_assert_cmpuint(r.u.stale.chunk, ==, 7);
	g_assert_cmpuint(r.u.stale.dev, ==, 3);
	g_assert_cmpuint(r.u.stale.cblock, ==, 100);
	g_assert_cmpuint(r.u.stale.n, ==, 28);
	g_assert_cmpuint(r.u.stale.stale, ==, 1);

	for (int k = 0; k < 2; k++) {
		const struct rec_counters *c = k ? &fc : &dc;

		g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
		g_assert_cmpint(r.type, ==, k ? REC_FILE_ERRORS : REC_DEV_COUNTERS);
		g_assert_cmpuint(r.u.counters.id, ==, c->id);
		for (int i = 0; i < ERR_KINDS; i++)
			g_assert_cmpuint(r.u.counters.count[i], ==, c->count[i]);
		g_assert_cmphex(r.u.counters.last_bits, ==, c->last_bits);
		g_assert_cmpuint(r.u.counters.last_op, ==, c->last_op);
		g_assert_cmpuint(r.u.counters.last_chunk, ==, c->last_chunk);
	}

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_NEXT_INO);
	g_assert_cmpuint(r.u.ino, ==, 1ull << 50);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_SCRUB);
	g_assert_cmpmem(&r.u.scrub, sizeof(r.u.scrub), &sc, sizeof(sc));

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_STRIPE_ADD);
	g_assert_cmpuint(r.u.stripe.chunk, ==, 9);
	g_assert_cmpuint(r.u.stripe.dev, ==, 2);
	g_assert_cmpuint(r.u.stripe.offset, ==, 1ull << 33);
	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_STRIPE_DROP);
	g_assert_cmpuint(r.u.stripe.chunk, ==, 9);
	g_assert_cmpuint(r.u.stripe.dev, ==, 1);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_DEV_ADD);
	g_assert_cmpuint(r.u.dev_add.index, ==, 5);
	g_assert_cmpmem(r.u.dev_add.uuid, 16, uuid, 16);
	g_assert_cmpuint(r.u.dev_add.bytes, ==, 1ull << 36);
	g_assert_cmpint(rec_next(&pos, end, &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_DEV_LEAVE);
	g_assert_cmpuint(r.u.leave.dev, ==, 5);
	g_assert_cmpuint(r.u.leave.target, ==, UINT32_MAX);
	g_assert_cmpuint(r.u.leave.reason, ==, LEAVE_HEAL);

	g_assert_cmpint(rec_next(&pos, end, &r), ==, 0);
	g_assert_true(pos == end);
	/* every record is exactly as long as its size helper says */
	g_assert_cmpuint(g->len, ==,
			 rec_bytes_inode() + 2 * rec_bytes_ino() + rec_bytes_link(5) + rec_bytes_link(5) +
				 rec_bytes_extent(3) + rec_bytes_punch() + rec_bytes_symlink(11) +
				 rec_bytes_xattr_set(6, sizeof(value)) + rec_bytes_xattr_set(10, 0) +
				 rec_bytes_xattr_del(6) + rec_bytes_chunk(3) + rec_bytes_dev_state() + rec_bytes_stale() +
				 2 * rec_bytes_counters() + rec_bytes_scrub() + rec_bytes_stripe_add() +
				 rec_bytes_stripe_drop() + rec_bytes_dev_add() + rec_bytes_dev_leave());
	g_byte_array_free(g, TRUE);
}

static int decode_one(const GByteArray *g)
{
	const uint8_t *pos = g->data, *end = g->data + g->len;
	struct record r;
	int ret = rec_next(&pos, end, &r);

	if (ret == -EUCLEAN)
		g_assert_true(pos == g->data); /* the position does not move past garbage */
	return ret;
}

static void set_len(GByteArray *g, uint32_t len)
{
	g->data[4] = (uint8_t)len;
	g->data[5] = (uint8_t)(len >> 8);
	g->data[6] = (uint8_t)(len >> 16);
	g->data[7] = (uint8_t)(len >> 24);
}

static void test_records_malformed(void)
{
	GByteArray *g = g_byte_array_new();
	const uint32_t cs[2] = { 1, 2 };
	struct rec_chunk ch = { .id = 1, .ncopies = 2 };
	const uint8_t *pos = NULL;
	struct record r;

	/* nothing left: the end */
	g_assert_cmpint(rec_next(&pos, pos, &r), ==, 0);

	/* a header cut short */
	rec_put_ino(g, REC_INODE_FREE, 5);
	g_byte_array_set_size(g, 5);
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* the payload cut short */
	g_byte_array_set_size(g, 0);
	rec_put_ino(g, REC_INODE_FREE, 5);
	g_byte_array_set_size(g, g->len - 1);
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* a length running past the buffer */
	g_byte_array_set_size(g, 0);
	rec_put_ino(g, REC_INODE_FREE, 5);
	set_len(g, 0xFFFFFFFFu);
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* a payload longer than its fields */
	g_byte_array_set_size(g, 0);
	rec_put_ino(g, REC_INODE_FREE, 5);
	g_byte_array_append(g, (const guint8 *)"\0\0\0\0", 4);
	set_len(g, 12);
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* a payload shorter than its fields */
	g_byte_array_set_size(g, 0);
	rec_put_ino(g, REC_INODE_FREE, 5);
	set_len(g, 4);
	g_byte_array_set_size(g, 8 + 4);
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* unknown types */
	g_byte_array_set_size(g, 0);
	rec_put_ino(g, REC_INODE_FREE, 5);
	g->data[0] = 0;
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);
	g->data[0] = 15;
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);
	g->data[0] = 0xFF;
	g->data[1] = 0xFF;
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* an extent with fewer checksums than blocks */
	g_byte_array_set_size(g, 0);
	rec_put_extent(g, 3, 0, 2, 0, 0, cs);
	g->data[8 + 16] = 3; /* nblocks 3, csums for 2 */
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* a name longer than its record */
	g_byte_array_set_size(g, 0);
	rec_put_link(g, REC_LINK, 1, 2, "abc", 3);
	g->data[8 + 16] = 4;
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* a chunk with more copies than a chunk can have */
	g_byte_array_set_size(g, 0);
	rec_put_chunk(g, &ch);
	g->data[8 + 4] = DMIOFS_MAX_COPIES + 1;
	g_assert_cmpint(decode_one(g), ==, -EUCLEAN);

	/* a good record, then garbage: the good one decodes, then the error */
	g_byte_array_set_size(g, 0);
	rec_put_ino(g, REC_NEXT_INO, 9);
	g_byte_array_append(g, (const guint8 *)"\x01\x00", 2);
	pos = g->data;
	g_assert_cmpint(rec_next(&pos, g->data + g->len, &r), ==, 1);
	g_assert_cmpuint(r.u.ino, ==, 9);
	g_assert_cmpint(rec_next(&pos, g->data + g->len, &r), ==, -EUCLEAN);
	g_byte_array_free(g, TRUE);
}

/* ---- applying: a small tree ------------------------------------------------------- */

static void test_apply_tree(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *root, *a, *f, *l, *b;

	meta_with_root(&m, &freed);
	g_assert_cmpuint(m.nfiles, ==, 1);
	g_assert_cmpuint(m.next_ino, ==, ROOT_INO + 1);
	put_inode(g, 2, S_IFDIR | 0700, 3, 0);
	put_link(g, ROOT_INO, 2, "a");
	put_inode(g, 3, S_IFREG | 0644, 2, 8192);
	put_link(g, 2, 3, "f");
	put_link(g, ROOT_INO, 3, "hard");
	put_inode(g, 4, S_IFLNK | 0777, 1, 3);
	rec_put_symlink(g, 4, "a/f", 3);
	put_link(g, ROOT_INO, 4, "l");
	put_inode(g, 10, S_IFDIR | 0755, 2, 0);
	put_link(g, 2, 10, "b");
	put_extent(g, 3, 0, 2, 0, 5);
	rec_put_xattr_set(g, 3, "user.a", 6, "1", 1);
	apply_ok(&m, g);

	root = meta_inode(&m, ROOT_INO);
	a = meta_inode(&m, 2);
	f = meta_inode(&m, 3);
	l = meta_inode(&m, 4);
	b = meta_inode(&m, 10);
	g_assert_nonnull(root);
	g_assert_nonnull(a);
	g_assert_nonnull(f);
	g_assert_nonnull(l);
	g_assert_nonnull(b);
	g_assert_null(meta_inode(&m, 5));
	g_assert_cmpuint(m.nfiles, ==, 5);
	g_assert_cmpuint(m.next_ino, ==, 11);
	g_assert_true(dir_lookup(root, "a") == a);
	g_assert_true(dir_lookup(root, "hard") == f);
	g_assert_true(dir_lookup(root, "l") == l);
	g_assert_true(dir_lookup(a, "f") == f);
	g_assert_true(dir_lookup(a, "b") == b);
	g_assert_null(dir_lookup(root, "f"));
	g_assert_cmpuint(g_hash_table_size(root->u.entries), ==, 3);
	g_assert_cmpuint(g_hash_table_size(a->u.entries), ==, 2);
	g_assert_true(a->parent == root);
	g_assert_true(b->parent == a);
	g_assert_cmpstr(l->u.target, ==, "a/f");
	g_assert_cmpuint(f->nlink, ==, 2);
	g_assert_cmpuint(f->size, ==, 8192);
	g_assert_cmpuint(f->uid, ==, 1003);
	g_assert_cmpuint(f->gid, ==, 2003);
	g_assert_cmpint(f->mtime.sec, ==, 1700000103);
	g_assert_cmpuint(f->blocks, ==, 2);
	g_assert_nonnull(f->xattrs);
	g_assert_cmpstr(f->xattrs->name, ==, "user.a");
	g_assert_cmpuint(m.counts.inodes, ==, 5);
	g_assert_cmpuint(m.counts.links, ==, 5);
	g_assert_cmpuint(m.counts.name_bytes, ==, 1 + 1 + 4 + 1 + 1);
	g_assert_cmpuint(m.counts.extents, ==, 1);
	g_assert_cmpuint(m.counts.blocks, ==, 2);

	/* an attribute change keeps the contents */
	put_inode(g, 3, S_IFREG | 0600, 2, 100);
	apply_ok(&m, g);
	g_assert_true(meta_inode(&m, 3) == f);
	g_assert_cmphex(f->mode, ==, S_IFREG | 0600);
	g_assert_cmpuint(f->size, ==, 100);
	g_assert_cmpuint(f->nextents, ==, 1);

	/* unlink both names and free: the blocks go back, counts follow */
	put_unlink(g, 2, "f");
	put_unlink(g, ROOT_INO, "hard");
	put_inode(g, 3, S_IFREG | 0600, 0, 100);
	rec_put_ino(g, REC_INODE_FREE, 3);
	apply_ok(&m, g);
	g_assert_null(meta_inode(&m, 3));
	{
		const struct freed want[] = { { 0, 5, 2 } };

		assert_freed(freed, want, 1);
	}
	g_assert_cmpuint(m.nfiles, ==, 4);
	g_assert_cmpuint(m.counts.links, ==, 3);
	g_assert_cmpuint(m.counts.blocks, ==, 0);
	g_assert_cmpuint(m.counts.extents, ==, 0);

	/* an empty directory can go once unlinked */
	put_unlink(g, 2, "b");
	rec_put_ino(g, REC_INODE_FREE, 10);
	apply_ok(&m, g);
	g_assert_null(meta_inode(&m, 10));
	g_assert_cmpuint(g_hash_table_size(a->u.entries), ==, 0);

	/* NEXT_INO only moves forward */
	rec_put_ino(g, REC_NEXT_INO, 100);
	apply_ok(&m, g);
	g_assert_cmpuint(m.next_ino, ==, 100);
	rec_put_ino(g, REC_NEXT_INO, 50);
	apply_ok(&m, g);
	g_assert_cmpuint(m.next_ino, ==, 100);

	/* xattrs: replace, delete */
	rec_put_xattr_set(g, 2, "user.x", 6, "one", 3);
	rec_put_xattr_set(g, 2, "user.x", 6, "three", 5);
	apply_ok(&m, g);
	g_assert_nonnull(a->xattrs);
	g_assert_null(a->xattrs->next);
	g_assert_cmpmem(a->xattrs->value, a->xattrs->len, "three", 5);
	rec_put_xattr_del(g, 2, "user.x", 6);
	apply_ok(&m, g);
	g_assert_null(a->xattrs);

	/* destroying does not report frees */
	put_inode(g, 20, S_IFREG | 0644, 1, 4096);
	put_link(g, ROOT_INO, 20, "z");
	put_extent(g, 20, 0, 1, 3, 3);
	apply_ok(&m, g);
	g_assert_cmpuint(freed->len, ==, 0);
	meta_destroy(&m);
	g_assert_cmpuint(freed->len, ==, 0);
	g_array_free(freed, TRUE);
	g_byte_array_free(g, TRUE);
}

/* ---- applying: inconsistent records ------------------------------------------------ */

/* A tree to break: root, directory 2 "d" holding file 3 "f", file 4
 * "g" with one extent, symlink 5 "s". */
static void base_tree(struct meta *m, GArray **freed)
{
	GByteArray *g = g_byte_array_new();

	meta_with_root(m, freed);
	put_inode(g, 2, S_IFDIR | 0755, 2, 0);
	put_link(g, ROOT_INO, 2, "d");
	put_inode(g, 3, S_IFREG | 0644, 1, 0);
	put_link(g, 2, 3, "f");
	put_inode(g, 4, S_IFREG | 0644, 1, 4096);
	put_link(g, ROOT_INO, 4, "g");
	put_extent(g, 4, 0, 1, 0, 0);
	put_inode(g, 5, S_IFLNK | 0777, 1, 1);
	rec_put_symlink(g, 5, "t", 1);
	put_link(g, ROOT_INO, 5, "s");
	apply_ok(m, g);
	g_byte_array_free(g, TRUE);
}

/* The records in g are refused with -EUCLEAN and change nothing visible. */
static void refused(struct meta *m, GByteArray *g, const char *what)
{
	struct meta_counts before = m->counts;
	uint64_t nfiles = m->nfiles, next_ino = m->next_ino;
	int err = apply(m, g);

	if (err != -EUCLEAN)
		g_printerr("# %s: meta_apply returned %d, not -EUCLEAN\n", what, err);
	g_assert_cmpint(err, ==, -EUCLEAN);
	g_assert_cmpmem(&m->counts, sizeof(before), &before, sizeof(before));
	g_assert_cmpuint(m->nfiles, ==, nfiles);
	g_assert_cmpuint(m->next_ino, ==, next_ino);
}

static void test_reject_links(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *root, *d;
	char long_name[DMIOFS_NAME_MAX + 2];

	base_tree(&m, &freed);
	root = meta_inode(&m, ROOT_INO);
	d = meta_inode(&m, 2);

	put_link(g, ROOT_INO, 99, "ghost");
	refused(&m, g, "a link to a missing inode");
	g_assert_null(dir_lookup(root, "ghost"));

	put_link(g, 98, 3, "x");
	refused(&m, g, "a link in a missing directory");
	put_link(g, 4, 3, "x");
	refused(&m, g, "a link in a regular file");

	put_link(g, ROOT_INO, 3, "g");
	refused(&m, g, "a duplicate name");
	g_assert_true(dir_lookup(root, "g") == meta_inode(&m, 4));

	rec_put_link(g, REC_LINK, ROOT_INO, 3, "", 0);
	refused(&m, g, "an empty name");
	put_link(g, ROOT_INO, 3, ".");
	refused(&m, g, "the name .");
	put_link(g, ROOT_INO, 3, "..");
	refused(&m, g, "the name ..");
	put_link(g, ROOT_INO, 3, "a/b");
	refused(&m, g, "a name with a slash");
	rec_put_link(g, REC_LINK, ROOT_INO, 3, "a\0b", 3);
	refused(&m, g, "a name with a NUL");
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[DMIOFS_NAME_MAX + 1] = '\0';
	put_link(g, ROOT_INO, 3, long_name);
	refused(&m, g, "a 256-byte name");
	long_name[DMIOFS_NAME_MAX] = '\0';
	put_link(g, ROOT_INO, 3, long_name); /* 255 is fine */
	apply_ok(&m, g);

	put_unlink(g, ROOT_INO, "nothing");
	refused(&m, g, "an unlink of a missing name");
	put_unlink(g, 2, "g");
	refused(&m, g, "an unlink of a name in another directory");
	put_unlink(g, 99, "f");
	refused(&m, g, "an unlink in a missing directory");
	put_unlink(g, 4, "f");
	refused(&m, g, "an unlink in a regular file");
	g_assert_true(dir_lookup(d, "f") == meta_inode(&m, 3));

	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

static void test_reject_inodes(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();

	base_tree(&m, &freed);

	put_inode(g, 3, S_IFDIR | 0755, 2, 0);
	refused(&m, g, "a file turning into a directory");
	g_assert_true(S_ISREG(meta_inode(&m, 3)->mode));
	put_inode(g, 2, S_IFREG | 0644, 1, 0);
	refused(&m, g, "a directory turning into a file");
	put_inode(g, 5, S_IFREG | 0644, 1, 0);
	refused(&m, g, "a symlink turning into a file");
	put_inode(g, ROOT_INO, S_IFLNK | 0777, 1, 0);
	refused(&m, g, "the root turning into a symlink");
	put_inode(g, 0, S_IFREG | 0644, 1, 0);
	refused(&m, g, "inode 0");
	put_inode(g, 50, 0644, 1, 0);
	refused(&m, g, "an inode without a type");

	rec_put_ino(g, REC_INODE_FREE, 2);
	refused(&m, g, "freeing a non-empty directory");
	g_assert_nonnull(meta_inode(&m, 2));
	rec_put_ino(g, REC_INODE_FREE, ROOT_INO);
	refused(&m, g, "freeing the root");
	rec_put_ino(g, REC_INODE_FREE, 77);
	refused(&m, g, "freeing a missing inode");

	put_extent(g, 77, 0, 1, 0, 0);
	refused(&m, g, "an extent of a missing inode");
	put_extent(g, 2, 0, 1, 0, 0);
	refused(&m, g, "an extent of a directory");
	put_extent(g, 5, 0, 1, 0, 0);
	refused(&m, g, "an extent of a symlink");
	rec_put_extent(g, 3, 0, 0, 0, 0, NULL);
	refused(&m, g, "an extent of no blocks");
	put_extent(g, 3, UINT64_MAX - 1, 4, 0, 0);
	refused(&m, g, "an extent past the end of the block space");
	rec_put_punch(g, 3, 0, 0);
	refused(&m, g, "a punch of no blocks");
	rec_put_punch(g, 2, 0, 1);
	refused(&m, g, "a punch in a directory");

	rec_put_symlink(g, 3, "x", 1);
	refused(&m, g, "a target for a regular file");
	rec_put_symlink(g, 5, "again", 5);
	refused(&m, g, "a second target");
	g_assert_cmpstr(meta_inode(&m, 5)->u.target, ==, "t");
	rec_put_symlink(g, 66, "x", 1);
	refused(&m, g, "a target for a missing inode");

	rec_put_xattr_del(g, 3, "user.none", 9);
	refused(&m, g, "removing a missing xattr");
	rec_put_xattr_set(g, 66, "user.a", 6, "1", 1);
	refused(&m, g, "an xattr of a missing inode");
	rec_put_xattr_set(g, 3, "", 0, "1", 1);
	refused(&m, g, "an xattr without a name");
	{
		struct rec_counters c = { .id = 66 };

		rec_put_counters(g, REC_FILE_ERRORS, &c);
		refused(&m, g, "errors of a missing inode");
	}
	{
		struct rec_chunk ch = { .id = 0, .ncopies = 1 };

		rec_put_chunk(g, &ch); /* the store's business, not meta's */
		refused(&m, g, "a chunk record");
		rec_put_dev_state(g, 0, DEV_FAILED, 9);
		refused(&m, g, "a device state record");
	}
	/* what was refused left the tree as it was */
	g_assert_cmpuint(meta_inode(&m, 4)->nextents, ==, 1);
	g_assert_cmpuint(freed->len, ==, 0);
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

/* An inode still named in a directory cannot be freed: the directory
 * would keep a pointer to freed memory (dir_lookup would return it). */
static void test_reject_free_linked_inode(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();

	base_tree(&m, &freed);
	rec_put_ino(g, REC_INODE_FREE, 4); /* "g" in the root still names it */
	refused(&m, g, "freeing an inode that still has a name");
	g_assert_true(dir_lookup(meta_inode(&m, ROOT_INO), "g") == meta_inode(&m, 4));
	rec_put_ino(g, REC_INODE_FREE, 3); /* "d/f" */
	refused(&m, g, "freeing an inode named in a subdirectory");
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

/* ---- extents ------------------------------------------------------------------------ */

/* A regular file, inode 3, in a meta with the recorder. */
static struct dinode *file_meta(struct meta *m, GArray **freed)
{
	GByteArray *g = g_byte_array_new();

	meta_with_root(m, freed);
	put_inode(g, 3, S_IFREG | 0644, 1, 1 << 30);
	put_link(g, ROOT_INO, 3, "f");
	apply_ok(m, g);
	g_byte_array_free(g, TRUE);
	return meta_inode(m, 3);
}

static void test_extents_overwrite_split(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *in = file_meta(&m, &freed);

	put_extent(g, 3, 10, 10, 1, 100);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 10, 10, 1, 100 } };

		assert_extents(in, w, 1);
		assert_freed(freed, NULL, 0);
	}
	/* overwrite [13, 15) elsewhere: split in three, the old two blocks freed */
	put_extent(g, 3, 13, 2, 2, 0);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 10, 3, 1, 100 }, { 13, 2, 2, 0 }, { 15, 5, 1, 105 } };
		const struct freed f[] = { { 1, 103, 2 } };

		assert_extents(in, w, 3);
		assert_freed(freed, f, 1);
	}
	/* overwrite across all three: [11, 17) */
	put_extent(g, 3, 11, 6, 3, 50);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 10, 1, 1, 100 }, { 11, 6, 3, 50 }, { 17, 3, 1, 107 } };
		const struct freed f[] = { { 1, 101, 2 }, { 2, 0, 2 }, { 1, 105, 2 } };

		assert_extents(in, w, 3);
		assert_freed(freed, f, 3);
	}
	/* overwrite one extent exactly */
	put_extent(g, 3, 11, 6, 4, 0);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 10, 1, 1, 100 }, { 11, 6, 4, 0 }, { 17, 3, 1, 107 } };
		const struct freed f[] = { { 3, 50, 6 } };

		assert_extents(in, w, 3);
		assert_freed(freed, f, 1);
	}
	/* overwrite covering everything and more */
	put_extent(g, 3, 5, 20, 5, 5);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 5, 20, 5, 5 } };
		const struct freed f[] = { { 1, 100, 1 }, { 4, 0, 6 }, { 1, 107, 3 } };

		assert_extents(in, w, 1);
		assert_freed(freed, f, 3);
	}
	g_assert_cmpuint(m.counts.extents, ==, 1);
	g_assert_cmpuint(m.counts.blocks, ==, 20);
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

static void test_extents_punch(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *in = file_meta(&m, &freed);

	put_extent(g, 3, 10, 10, 1, 100);
	put_extent(g, 3, 30, 5, 2, 7);
	apply_ok(&m, g);
	/* a hole in the middle: split, csums of both halves kept */
	rec_put_punch(g, 3, 13, 4);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 10, 3, 1, 100 }, { 17, 3, 1, 107 }, { 30, 5, 2, 7 } };
		const struct freed f[] = { { 1, 103, 4 } };

		assert_extents(in, w, 3);
		assert_freed(freed, f, 1);
	}
	/* trim a head, a tail, and remove whole ones in one punch */
	rec_put_punch(g, 3, 11, 21); /* [11, 32) */
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 10, 1, 1, 100 }, { 32, 3, 2, 9 } };
		const struct freed f[] = { { 1, 101, 2 }, { 1, 107, 3 }, { 2, 7, 2 } };

		assert_extents(in, w, 2);
		assert_freed(freed, f, 3);
	}
	/* punching a hole frees nothing */
	rec_put_punch(g, 3, 11, 21);
	apply_ok(&m, g);
	assert_freed(freed, NULL, 0);
	/* trim the last extent's tail, then its head */
	rec_put_punch(g, 3, 34, 100);
	apply_ok(&m, g);
	rec_put_punch(g, 3, 0, 33);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 33, 1, 2, 10 } };
		const struct freed f[] = { { 2, 11, 1 }, { 1, 100, 1 }, { 2, 9, 1 } };

		assert_extents(in, w, 1);
		assert_freed(freed, f, 3);
	}
	g_assert_cmpuint(m.counts.extents, ==, 1);
	g_assert_cmpuint(m.counts.blocks, ==, 1);
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

/* A punch may cover more than 2^32 blocks (truncating a sparse file whose
 * data lies beyond 16 TiB): every block in it must be unmapped. */
static void test_extents_punch_huge(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *in = file_meta(&m, &freed);
	const uint64_t far = 5ull << 30; /* block 5 Gi: byte offset 20 TiB */

	put_extent(g, 3, 0, 1, 0, 0);
	put_extent(g, 3, far, 1, 0, 1);
	apply_ok(&m, g);
	rec_put_punch(g, 3, 0, far + 1); /* what truncate to 0 logs */
	apply_ok(&m, g);
	{
		const struct freed f[] = { { 0, 0, 1 }, { 0, 1, 1 } };

		if (in->nextents)
			g_printerr("# after punching [0, %llu), %u extent(s) remain, the last at block %llu\n",
				   (unsigned long long)(far + 1), in->nextents, (unsigned long long)ext_last(in)->fblock);
		g_assert_cmpuint(ext_mapped_blocks(in, 0, far + 1), ==, 0);
		assert_extents(in, NULL, 0);
		assert_freed(freed, f, 2);
	}
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

static void test_extents_merge(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *in = file_meta(&m, &freed);

	/* appended in order: one extent */
	put_extent(g, 3, 0, 4, 3, 0);
	put_extent(g, 3, 4, 4, 3, 4);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 0, 8, 3, 0 } };

		assert_extents(in, w, 1);
	}
	/* the gap filled last: merges with both sides */
	put_extent(g, 3, 12, 4, 3, 12);
	apply_ok(&m, g);
	g_assert_cmpuint(in->nextents, ==, 2);
	put_extent(g, 3, 8, 4, 3, 8);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 0, 16, 3, 0 } };

		assert_extents(in, w, 1);
	}
	/* contiguous in the file but not in the chunk, or another chunk: apart */
	put_extent(g, 3, 16, 2, 3, 20);
	put_extent(g, 3, 18, 2, 4, 22);
	put_extent(g, 3, 20, 2, 4, 24);
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 0, 16, 3, 0 }, { 16, 2, 3, 20 }, { 18, 4, 4, 22 } };

		assert_extents(in, w, 3);
	}
	/* a split and its healing: rewriting the same blocks in place merges back */
	assert_freed(freed, NULL, 0);
	rec_put_punch(g, 3, 5, 2);
	apply_ok(&m, g);
	g_assert_cmpuint(in->nextents, ==, 4);
	{
		const struct freed f[] = { { 3, 5, 2 } };

		assert_freed(freed, f, 1);
	}
	put_extent(g, 3, 5, 2, 3, 5);
	apply_ok(&m, g);
	assert_freed(freed, NULL, 0);
	{
		const struct want_ext w[] = { { 0, 16, 3, 0 }, { 16, 2, 3, 20 }, { 18, 4, 4, 22 } };

		assert_extents(in, w, 3);
	}
	/* an overwrite that becomes contiguous with its left neighbour */
	put_extent(g, 3, 16, 3, 3, 16); /* [16,19) right after [0,16) in chunk 3 */
	apply_ok(&m, g);
	{
		const struct want_ext w[] = { { 0, 19, 3, 0 }, { 19, 3, 4, 23 } };
		const struct freed f[] = { { 3, 20, 2 }, { 4, 22, 1 } };

		assert_extents(in, w, 2);
		assert_freed(freed, f, 2);
	}
	g_assert_cmpuint(m.counts.extents, ==, 2);
	g_assert_cmpuint(m.counts.blocks, ==, 22);
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

static void test_extents_mapped_and_find(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *in = file_meta(&m, &freed);
	struct ext_pos p;

	g_assert_cmpuint(ext_mapped_blocks(in, 0, 1000), ==, 0);
	g_assert_null(ext_seek(in, 0, &p));
	put_extent(g, 3, 10, 10, 1, 0);  /* [10, 20) */
	put_extent(g, 3, 30, 5, 2, 0);   /* [30, 35) */
	put_extent(g, 3, 35, 5, 3, 0);   /* [35, 40), another chunk */
	put_extent(g, 3, 1000, 1, 1, 50); /* [1000, 1001) */
	apply_ok(&m, g);
	g_assert_cmpuint(in->nextents, ==, 4);
	g_assert_cmpuint(ext_mapped_blocks(in, 0, 10), ==, 0);
	g_assert_cmpuint(ext_mapped_blocks(in, 0, 11), ==, 1);
	g_assert_cmpuint(ext_mapped_blocks(in, 15, 1), ==, 1);
	g_assert_cmpuint(ext_mapped_blocks(in, 19, 11), ==, 1);
	g_assert_cmpuint(ext_mapped_blocks(in, 20, 10), ==, 0);
	g_assert_cmpuint(ext_mapped_blocks(in, 12, 30), ==, 8 + 10);
	g_assert_cmpuint(ext_mapped_blocks(in, 0, 2000), ==, 10 + 5 + 5 + 1);
	g_assert_cmpuint(ext_mapped_blocks(in, 1000, 1), ==, 1);
	g_assert_cmpuint(ext_mapped_blocks(in, 1001, UINT32_MAX), ==, 0);
	g_assert_cmpuint(ext_seek(in, 0, &p)->fblock, ==, 10);
	g_assert_cmpuint(ext_seek(in, 19, &p)->fblock, ==, 10);
	g_assert_cmpuint(ext_seek(in, 20, &p)->fblock, ==, 30);
	g_assert_cmpuint(ext_seek(in, 34, &p)->fblock, ==, 30);
	g_assert_cmpuint(ext_seek(in, 35, &p)->fblock, ==, 35);
	g_assert_cmpuint(ext_seek(in, 500, &p)->fblock, ==, 1000);
	g_assert_null(ext_seek(in, 1001, &p));
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

/* Freeing a file gives back every block of every extent. */
static void test_extents_inode_free(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();

	file_meta(&m, &freed);
	put_extent(g, 3, 0, 3, 1, 10);
	put_extent(g, 3, 100, 2, 2, 20);
	put_unlink(g, ROOT_INO, "f");
	put_inode(g, 3, S_IFREG | 0644, 0, 0);
	rec_put_ino(g, REC_INODE_FREE, 3);
	apply_ok(&m, g);
	{
		struct freed f[] = { { 2, 20, 2 }, { 1, 10, 3 } };
		guint n = freed->len;

		/* in any order, each once */
		g_assert_cmpuint(n, ==, 2);
		if (g_array_index(freed, struct freed, 0).chunk == 1) {
			struct freed t = f[0];

			f[0] = f[1];
			f[1] = t;
		}
		assert_freed(freed, f, 2);
	}
	g_assert_cmpuint(m.counts.blocks, ==, 0);
	g_assert_cmpuint(m.counts.extents, ==, 0);
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

/* ---- serialise and rebuild ------------------------------------------------------------ */

static int collect_flush(void *ctx, GByteArray *out)
{
	GByteArray *all = ctx;

	g_byte_array_append(all, out->data, out->len);
	g_byte_array_set_size(out, 0);
	return 0;
}

static int failing_flush(void *ctx, GByteArray *out)
{
	(*(int *)ctx)++;
	return -EIO;
}

static bool xattr_in(const struct dinode *in, const struct xattr *x)
{
	for (const struct xattr *y = in->xattrs; y; y = y->next)
		if (!strcmp(x->name, y->name) && x->len == y->len && !memcmp(x->value, y->value, x->len))
			return true;
	return false;
}

static guint xattr_count(const struct dinode *in)
{
	guint n = 0;

	for (const struct xattr *x = in->xattrs; x; x = x->next)
		n++;
	return n;
}

static void assert_same_inode(const struct dinode *a, const struct dinode *b)
{
	g_assert_cmpuint(a->ino, ==, b->ino);
	g_assert_cmphex(a->mode, ==, b->mode);
	g_assert_cmpuint(a->uid, ==, b->uid);
	g_assert_cmpuint(a->gid, ==, b->gid);
	g_assert_cmpuint(a->nlink, ==, b->nlink);
	g_assert_cmpuint(a->size, ==, b->size);
	g_assert_cmpuint(a->rdev, ==, b->rdev);
	g_assert_cmpint(a->atime.sec, ==, b->atime.sec);
	g_assert_cmpuint(a->atime.nsec, ==, b->atime.nsec);
	g_assert_cmpint(a->mtime.sec, ==, b->mtime.sec);
	g_assert_cmpuint(a->mtime.nsec, ==, b->mtime.nsec);
	g_assert_cmpint(a->ctime.sec, ==, b->ctime.sec);
	g_assert_cmpuint(a->ctime.nsec, ==, b->ctime.nsec);
	g_assert_cmpuint(a->blocks, ==, b->blocks);
	if (S_ISREG(a->mode)) {
		struct ext_pos pa, pb;
		const struct extent *x, *y;

		g_assert_cmpuint(a->nextents, ==, b->nextents);
		for (x = ext_first(a, &pa), y = ext_first(b, &pb); x && y; x = ext_next(a, &pa), y = ext_next(b, &pb)) {

			g_assert_cmpuint(x->fblock, ==, y->fblock);
			g_assert_cmpuint(x->nblocks, ==, y->nblocks);
			g_assert_cmpuint(x->chunk, ==, y->chunk);
			g_assert_cmpuint(x->cblock, ==, y->cblock);
			g_assert_cmpmem(ext_csums_const(x), x->nblocks * 4, ext_csums_const(y), y->nblocks * 4);
		}
	} else if (S_ISDIR(a->mode)) {
		GHashTableIter it;
		gpointer name, child;

		g_assert_cmpuint(g_hash_table_size(a->u.entries), ==, g_hash_table_size(b->u.entries));
		g_hash_table_iter_init(&it, a->u.entries);
		while (g_hash_table_iter_next(&it, &name, &child)) {
			const struct dinode *other = g_hash_table_lookup(b->u.entries, name);

			g_assert_nonnull(other);
			g_assert_cmpuint(other->ino, ==, ((const struct dinode *)child)->ino);
		}
		if (a->ino != ROOT_INO && a->parent) {
			g_assert_nonnull(b->parent);
			g_assert_cmpuint(a->parent->ino, ==, b->parent->ino);
		}
	} else if (S_ISLNK(a->mode)) {
		g_assert_cmpstr(a->u.target, ==, b->u.target);
	}
	g_assert_cmpuint(xattr_count(a), ==, xattr_count(b));
	for (const struct xattr *x = a->xattrs; x; x = x->next)
		g_assert_true(xattr_in(b, x));
	g_assert_cmpint(!a->errors, ==, !b->errors);
	if (a->errors)
		g_assert_cmpmem(a->errors, sizeof(*a->errors), b->errors, sizeof(*b->errors));
}

static void assert_same_meta(struct meta *a, struct meta *b)
{
	GHashTableIter it;
	gpointer key, value;

	g_assert_cmpuint(g_hash_table_size(a->inodes), ==, g_hash_table_size(b->inodes));
	g_hash_table_iter_init(&it, a->inodes);
	while (g_hash_table_iter_next(&it, &key, &value)) {
		const struct dinode *x = value, *y = meta_inode(b, x->ino);

		g_assert_nonnull(y);
		assert_same_inode(x, y);
	}
	g_assert_cmpuint(a->next_ino, ==, b->next_ino);
	g_assert_cmpuint(a->nfiles, ==, b->nfiles);
	g_assert_cmpmem(&a->counts, sizeof(a->counts), &b->counts, sizeof(b->counts));
	g_assert_cmpuint(meta_estimate_bytes(a), ==, meta_estimate_bytes(b));
}

/* A tree with one of everything, left with some history (splits, frees). */
static void rich_tree(struct meta *m, GArray **freed)
{
	GByteArray *g = g_byte_array_new();
	struct rec_counters errs = { .id = 3, .count = { 1, 0, 2, 0, 1 }, .last_bits = 2, .last_op = 1,
				     .last_chunk = 1 };
	struct rec_inode dev = make_inode(8, S_IFCHR | 0600, 1, 0);

	meta_with_root(m, freed);
	put_inode(g, 2, S_IFDIR | 02775, 3, 0);
	put_link(g, ROOT_INO, 2, "dir");
	put_inode(g, 6, S_IFDIR | 0700, 2, 0);
	put_link(g, 2, 6, "sub");
	put_inode(g, 3, S_IFREG | 0644, 2, 1 << 20);
	put_link(g, 2, 3, "file");
	put_link(g, ROOT_INO, 3, "file-link");
	put_extent(g, 3, 0, 64, 1, 0);
	put_extent(g, 3, 10, 5, 2, 100); /* split */
	rec_put_punch(g, 3, 40, 3);
	put_extent(g, 3, 200, 1, 1, 255);
	rec_put_xattr_set(g, 3, "user.one", 8, "1", 1);
	rec_put_xattr_set(g, 3, "user.two", 8, "\0\1\2", 3);
	rec_put_xattr_set(g, 3, "trusted.empty", 13, "", 0);
	rec_put_counters(g, REC_FILE_ERRORS, &errs);
	put_inode(g, 4, S_IFLNK | 0777, 1, 8);
	rec_put_symlink(g, 4, "dir/file", 8);
	put_link(g, 6, 4, "link");
	put_inode(g, 5, S_IFREG | 0600, 0, 4096); /* open, unlinked: no name */
	put_extent(g, 5, 0, 1, 2, 0);
	put_inode(g, 7, S_IFIFO | 0644, 1, 0);
	put_link(g, ROOT_INO, 7, "fifo");
	dev.rdev = 0x0103;
	rec_put_inode(g, &dev);
	put_link(g, ROOT_INO, 8, "null");
	put_inode(g, 9, S_IFREG | 0644, 1, 0); /* empty file */
	put_link(g, 6, 9, "empty");
	rec_put_ino(g, REC_NEXT_INO, 40);
	apply_ok(m, g);
	g_byte_array_free(g, TRUE);
}

static void test_serialize_rebuild(void)
{
	struct meta a, b;
	GArray *freed, *freed_b;
	static const size_t flush_at[] = { 0, 1, 100, 1u << 20 };

	rich_tree(&a, &freed);
	g_array_set_size(freed, 0);
	for (size_t k = 0; k < G_N_ELEMENTS(flush_at); k++) {
		GByteArray *out = g_byte_array_new(), *all = g_byte_array_new();

		g_assert_cmpint(meta_serialize(&a, out, flush_at[k], collect_flush, all), ==, 0);
		g_byte_array_append(all, out->data, out->len);
		meta_init(&b);
		freed_b = g_array_new(FALSE, FALSE, sizeof(struct freed));
		b.on_free = record_free;
		b.free_ctx = freed_b;
		g_assert_cmpint(meta_apply_all(&b, all->data, all->len), ==, 0);
		g_assert_cmpuint(freed_b->len, ==, 0); /* a rebuild frees nothing */
		assert_same_meta(&a, &b);
		assert_same_meta(&b, &a);
		g_assert_true(meta_inode(&b, 3) == dir_lookup(meta_inode(&b, ROOT_INO), "file-link"));
		g_assert_true(meta_inode(&b, 6)->parent == meta_inode(&b, 2));

		/* and the rebuilt one serialises to a buffer of the same length */
		{
			GByteArray *again = g_byte_array_new();

			g_assert_cmpint(meta_serialize(&b, again, SIZE_MAX, collect_flush, NULL), ==, 0);
			g_assert_cmpuint(again->len, ==, all->len);
			g_byte_array_free(again, TRUE);
		}
		meta_done(&b, freed_b);
		g_byte_array_free(out, TRUE);
		g_byte_array_free(all, TRUE);
	}
	g_assert_cmpuint(freed->len, ==, 0); /* serialising frees nothing */
	meta_done(&a, freed);
}

static void test_serialize_flush_error(void)
{
	struct meta a;
	GArray *freed;
	GByteArray *out = g_byte_array_new();
	int calls = 0;

	rich_tree(&a, &freed);
	g_assert_cmpint(meta_serialize(&a, out, 1, failing_flush, &calls), ==, -EIO);
	g_assert_cmpint(calls, ==, 1); /* stops at the first error */
	meta_done(&a, freed);
	g_byte_array_free(out, TRUE);
}

/* ---- the checkpoint estimate ----------------------------------------------------------- */

/* The estimate is at least what a checkpoint of m really takes. */
static void assert_estimate_covers(struct meta *m)
{
	GByteArray *out = g_byte_array_new();

	g_assert_cmpint(meta_serialize(m, out, SIZE_MAX, collect_flush, NULL), ==, 0);
	g_assert_cmpuint(meta_estimate_bytes(m), >=, out->len);
	g_byte_array_free(out, TRUE);
}

static void test_estimate(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	uint64_t empty, e1, e2, e3;

	meta_with_root(&m, &freed);
	empty = meta_estimate_bytes(&m);
	assert_estimate_covers(&m);

	put_inode(g, 2, S_IFDIR | 0755, 2, 0);
	put_link(g, ROOT_INO, 2, "directory");
	apply_ok(&m, g);
	e1 = meta_estimate_bytes(&m);
	g_assert_cmpuint(e1, >, empty);
	assert_estimate_covers(&m);

	put_inode(g, 3, S_IFREG | 0644, 1, 0);
	put_link(g, 2, 3, "file");
	put_extent(g, 3, 0, 100, 1, 0);
	put_extent(g, 3, 500, 3, 2, 0);
	rec_put_xattr_set(g, 3, "user.name", 9, "value", 5);
	put_inode(g, 4, S_IFLNK | 0777, 1, 4);
	rec_put_symlink(g, 4, "file", 4);
	put_link(g, 2, 4, "sym");
	apply_ok(&m, g);
	e2 = meta_estimate_bytes(&m);
	g_assert_cmpuint(e2, >, e1);
	assert_estimate_covers(&m);

	/* more blocks in an extent: more checksums to store */
	put_extent(g, 3, 100, 50, 1, 100); /* merges into [0, 150) */
	apply_ok(&m, g);
	e3 = meta_estimate_bytes(&m);
	g_assert_cmpuint(e3, ==, e2 + 50 * 4);
	assert_estimate_covers(&m);

	/* and back: punch, remove, free */
	rec_put_punch(g, 3, 100, 50);
	apply_ok(&m, g);
	g_assert_cmpuint(meta_estimate_bytes(&m), ==, e2);
	rec_put_xattr_del(g, 3, "user.name", 9);
	put_unlink(g, 2, "file");
	put_unlink(g, 2, "sym");
	rec_put_ino(g, REC_INODE_FREE, 3);
	rec_put_ino(g, REC_INODE_FREE, 4);
	apply_ok(&m, g);
	g_assert_cmpuint(meta_estimate_bytes(&m), ==, e1);
	put_unlink(g, ROOT_INO, "directory");
	rec_put_ino(g, REC_INODE_FREE, 2);
	apply_ok(&m, g);
	g_assert_cmpuint(meta_estimate_bytes(&m), ==, empty);
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

/* A file that once had an I/O error is freed: its error record goes
 * with it, and so must its share of the estimate. */
static void test_estimate_file_errors_freed(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct rec_counters c = { .id = 3, .count = { 1 }, .last_op = 1 };
	uint64_t empty;

	meta_with_root(&m, &freed);
	empty = meta_estimate_bytes(&m);
	for (int round = 0; round < 3; round++) {
		put_inode(g, 3, S_IFREG | 0644, 1, 0);
		put_link(g, ROOT_INO, 3, "f");
		rec_put_counters(g, REC_FILE_ERRORS, &c);
		apply_ok(&m, g);
		g_assert_cmpuint(meta_estimate_bytes(&m), >, empty);
		assert_estimate_covers(&m);
		put_unlink(g, ROOT_INO, "f");
		rec_put_ino(g, REC_INODE_FREE, 3);
		apply_ok(&m, g);
		if (meta_estimate_bytes(&m) != empty)
			g_printerr("# round %d: %llu bytes estimated for an empty file system, %llu at the start\n",
				   round, (unsigned long long)meta_estimate_bytes(&m), (unsigned long long)empty);
		g_assert_cmpuint(meta_estimate_bytes(&m), ==, empty);
	}
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

/* A DEV_STATE record of version 1 (8 bytes, no left_at) still decodes,
 * with left_at 0 (unknown); a payload of any other length does not, nor
 * a STALE record whose flag is neither 0 nor 1. */
static void test_records_dev_state_v1(void)
{
	static const uint8_t v1[] = { 11, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0 };
	static const uint8_t twelve[] = { 11, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0 };
	static const uint8_t bad_stale[] = { 15, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
					     0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0 };
	const uint8_t *pos = v1;
	struct record r;

	g_assert_cmpint(rec_next(&pos, v1 + sizeof(v1), &r), ==, 1);
	g_assert_cmpint(r.type, ==, REC_DEV_STATE);
	g_assert_cmpuint(r.u.dev_state.dev, ==, 2);
	g_assert_cmpuint(r.u.dev_state.state, ==, DEV_FAILED);
	g_assert_cmpuint(r.u.dev_state.left_at, ==, 0);
	pos = twelve;
	g_assert_cmpint(rec_next(&pos, twelve + sizeof(twelve), &r), ==, -EUCLEAN);
	pos = bad_stale;
	g_assert_cmpint(rec_next(&pos, bad_stale + sizeof(bad_stale), &r), ==, -EUCLEAN);
}

/* ---- main ------------------------------------------------------------------------------ */

#define CASE(path, fn) tu_add_guarded_nodir("/store-meta/" path, fn, 30)

/* ---- a fragmented file: the leaves of the extent map against a model ------------- */

#define MODEL_BLOCKS 6000
#define UNMAPPED UINT64_MAX

/* A model of MODEL_BLOCKS blocks, all unmapped (g_free). */
static uint64_t *model_new(void)
{
	uint64_t *model = g_new(uint64_t, MODEL_BLOCKS);

	for (uint32_t b = 0; b < MODEL_BLOCKS; b++)
		model[b] = UNMAPPED;
	return model;
}

/* The map of a model block: chunk << 32 | cblock, or UNMAPPED. */
static void assert_map_matches(const struct dinode *in, const uint64_t *model, GArray *freed, uint64_t *nfreed)
{
	struct ext_pos p, back;
	const struct extent *e, *prev = NULL;
	uint64_t mapped = 0, at = 0;
	uint32_t n = 0;

	for (e = ext_first(in, &p); e; prev = e, e = ext_next(in, &p), n++) {
		g_assert_cmpuint(e->nblocks, >, 0);
		if (prev) {
			g_assert_cmpuint(prev->fblock + prev->nblocks, <=, e->fblock);
			/* neighbours that continue each other are one extent */
			g_assert_false(prev->fblock + prev->nblocks == e->fblock && prev->chunk == e->chunk &&
				       prev->cblock + prev->nblocks == e->cblock);
		}
		for (; at < e->fblock; at++)
			g_assert_cmphex(model[at], ==, UNMAPPED);
		for (uint32_t b = 0; b < e->nblocks; b++, at++) {
			g_assert_cmphex(model[at], ==, (uint64_t)e->chunk << 32 | (e->cblock + b));
			g_assert_cmphex(ext_csums_const(e)[b], ==, csum_of(e->chunk, e->cblock + b));
		}
		g_assert_true(ext_nth(in, n, &back) == e);
		mapped += e->nblocks;
	}
	for (; at < MODEL_BLOCKS; at++)
		g_assert_cmphex(model[at], ==, UNMAPPED);
	g_assert_cmpuint(n, ==, in->nextents);
	g_assert_cmpuint(mapped, ==, in->blocks);
	g_assert_true(ext_last(in) == prev);
	/* walking back from the end meets every extent once */
	back = p;
	n = 0;
	for (e = ext_prev(in, &back); e; e = ext_prev(in, &back))
		n++;
	g_assert_cmpuint(n, ==, in->nextents);
	/* a seek from every block finds the first extent that ends after it */
	e = ext_first(in, &p);
	for (uint64_t b = 0; b < MODEL_BLOCKS; b++) {
		while (e && e->fblock + e->nblocks <= b)
			e = ext_next(in, &p);
		g_assert_true(ext_seek(in, b, &back) == e);
	}
	for (guint i = (guint)*nfreed; i < freed->len; i++) /* nothing freed twice or made up */
		g_assert_cmpuint(g_array_index(freed, struct freed, i).n, >, 0);
	*nfreed = freed->len;
}

/* ops random writes (half of them continuing the one before, which
 * merges) and punches on a model; the map is checked every check_every. */
static uint32_t model_run(struct meta *m, struct dinode *in, GArray *freed, uint64_t *model, guint32 seed, int ops,
			  int check_every, uint32_t *next_cblock)
{
	GByteArray *g = g_byte_array_new();
	GRand *rand = g_rand_new_with_seed(seed);
	uint64_t nfreed = freed->len, last_end = 0;
	uint32_t most_leaves = 0, last_chunk = 1;

	for (int op = 0; op < ops; op++) {
		uint64_t fblock;
		/* mostly small, now and then one over many leaves */
		uint32_t n = g_rand_int_range(rand, 0, 20) ? (uint32_t)g_rand_int_range(rand, 1, 9)
							    : (uint32_t)g_rand_int_range(rand, 9, 600);
		uint32_t chunk = 1 + (uint32_t)g_rand_int_range(rand, 0, 3);

		fblock = (uint64_t)g_rand_int_range(rand, 0, (gint32)(MODEL_BLOCKS - n));
		if (g_rand_int_range(rand, 0, 10) == 0) {
			rec_put_punch(g, 3, fblock, n);
			for (uint32_t b = 0; b < n; b++)
				model[fblock + b] = UNMAPPED;
		} else {
			if (g_rand_boolean(rand) && last_end + n < MODEL_BLOCKS) {
				fblock = last_end; /* continues the last write: one extent */
				chunk = last_chunk;
			}
			put_extent(g, 3, fblock, n, chunk, *next_cblock);
			for (uint32_t b = 0; b < n; b++)
				model[fblock + b] = (uint64_t)chunk << 32 | (*next_cblock + b);
			*next_cblock += n;
			last_end = fblock + n;
			last_chunk = chunk;
		}
		apply_ok(m, g);
		most_leaves = MAX(most_leaves, in->nleaves);
		if (op % check_every == 0)
			assert_map_matches(in, model, freed, &nfreed);
	}
	assert_map_matches(in, model, freed, &nfreed);
	g_rand_free(rand);
	g_byte_array_free(g, TRUE);
	return most_leaves;
}

static void test_extents_many_leaves(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *in = file_meta(&m, &freed);
	uint64_t *model = model_new(), nfreed = 0;
	uint32_t next_cblock = 0, most_leaves = 0;
	/* DMIOFS_MODEL_SEEDS=N runs N seeds instead of 4 (a long hunt) */
	const char *seeds = g_getenv("DMIOFS_MODEL_SEEDS");
	guint32 nseeds = seeds ? (guint32)atoi(seeds) : 4;

	for (guint32 seed = 8; seed < 8 + nseeds; seed++)
		most_leaves = MAX(most_leaves, model_run(&m, in, freed, model, seed, 5000, 50, &next_cblock));
	g_assert_cmpuint(most_leaves, >, 10); /* the test reached the index, not one leaf */
	/* punch it all: every leaf goes */
	rec_put_punch(g, 3, 0, MODEL_BLOCKS);
	apply_ok(&m, g);
	for (uint32_t b = 0; b < MODEL_BLOCKS; b++)
		model[b] = UNMAPPED;
	assert_map_matches(in, model, freed, &nfreed);
	g_assert_cmpuint(in->nleaves, ==, 0);
	g_assert_cmpuint(m.counts.extents, ==, 0);
	{ /* every block written went back exactly once */
		uint64_t back = 0;

		for (guint i = 0; i < freed->len; i++)
			back += g_array_index(freed, struct freed, i).n;
		g_assert_cmpuint(back, ==, next_cblock);
	}
	g_free(model);
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

/* What fio's writeback did to a file of 512 one-block extents: a 1 MiB
 * write over its first half, then one over the next quarter.  The second
 * punch empties the tail of a leaf, which shrinks its memory on the way;
 * ext_remove then read the leaf's count through the pointer it had just
 * reallocated, and under a moving realloc stopped the punch there: the
 * old extents stayed, overlapping the new one (reads met blocks whose
 * checksums were not theirs). */
static void test_extents_punch_shrinking_leaf(void)
{
	struct meta m;
	GArray *freed;
	GByteArray *g = g_byte_array_new();
	struct dinode *in = file_meta(&m, &freed);
	uint64_t *model = model_new(), nfreed = 0;

	for (uint32_t b = 0; b < 512; b++) { /* every other cblock: no merges */
		put_extent(g, 3, b, 1, 4, 2 * b);
		model[b] = (uint64_t)4 << 32 | (2 * b);
	}
	put_extent(g, 3, 0, 256, 34, 768);
	put_extent(g, 3, 256, 256, 35, 0);
	apply_ok(&m, g);
	for (uint32_t b = 0; b < 256; b++) {
		model[b] = (uint64_t)34 << 32 | (768 + b);
		model[256 + b] = (uint64_t)35 << 32 | b;
	}
	assert_map_matches(in, model, freed, &nfreed);
	g_assert_cmpuint(in->nextents, ==, 2);
	g_free(model);
	meta_done(&m, freed);
	g_byte_array_free(g, TRUE);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	CASE("records/round-trip", test_records_round_trip);
	CASE("records/malformed", test_records_malformed);
	CASE("records/dev-state-version-1", test_records_dev_state_v1);
	CASE("apply/tree", test_apply_tree);
	CASE("reject/links", test_reject_links);
	CASE("reject/inodes", test_reject_inodes);
	CASE("reject/free-linked-inode", test_reject_free_linked_inode);
	CASE("extents/overwrite-split", test_extents_overwrite_split);
	CASE("extents/punch", test_extents_punch);
	CASE("extents/punch-over-2^32-blocks", test_extents_punch_huge);
	CASE("extents/merge", test_extents_merge);
	CASE("extents/mapped-and-find", test_extents_mapped_and_find);
	CASE("extents/many-leaves", test_extents_many_leaves);
	CASE("extents/inode-free", test_extents_inode_free);
	CASE("extents/punch-shrinking-leaf", test_extents_punch_shrinking_leaf);
	CASE("serialize/rebuild", test_serialize_rebuild);
	CASE("serialize/flush-error", test_serialize_flush_error);
	CASE("estimate/grows-and-shrinks", test_estimate);
	CASE("estimate/file-errors-freed", test_estimate_file_errors_freed);
	return g_test_run();
}
