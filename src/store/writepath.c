/* writepath.c - writing file data copy-on-write: new blocks are
 * allocated, filled (merging the old bytes of partly written blocks),
 * checksummed and written to every healthy copy of their chunk in one
 * dm-io request per run; only then do the extent records that reference
 * them go to the log.  A write that reached no copy leaves no reference
 * and frees its blocks; one that missed some copies marks those devices
 * failed and still succeeds.  Also truncate, fallocate and SEEK_DATA. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extmap.h"
#include "apply.h"
#include "bufpool.h"
#include "data.h"
#include "fsops.h"
#include "ioerr.h"
#include "journal.h"
#include "rangelock.h"
#include "readpath.h"
#include "waiter.h"

#define WOP_KEEP_SIZE 0x1  /* zeroing inside the file: no size or time change */
#define WOP_RANGE_HELD 0x2 /* the caller holds the range lock */
#define WOP_SPARE_ROOT_RESERVE 0x4 /* not root's: the root reserve is not for it */
#define WOP_CLEAR_SETID 0x8 /* the writer's writes clear set-user-ID (struct caller) */
#define MAX_FILE_BYTES (1ull << 60)

struct wop;

struct wrun {
	struct wop *op;
	uint64_t fblock;
	uint32_t n, chunk, cblock;
	uint32_t ncopies;
	struct rec_stripe stripes[DMIOFS_MAX_COPIES];
	uint32_t map[DMIOFS_MAX_COPIES]; /* region -> copy */
	uint32_t nregions;
	unsigned long bits;              /* dm-io error bits, by region */
	int refused;                     /* dm_io() refused it: no device's fault */
};

struct wop {
	struct range_op range; /* first: the range lock hands this back */
	struct store *st;
	uint64_t ino, off;
	size_t size;
	uint64_t b0;
	uint32_t nblk;
	unsigned int flags;
	uint8_t *buf;          /* nblk blocks; the new bytes at off - b0 * 4 KiB */
	uint32_t *csums;
	struct wrun *runs;
	uint32_t nruns;
	struct rplan *rmw;     /* old contents of partly written blocks */
	uint8_t *old;          /* two blocks: head, tail */
	bool old_head, old_tail;
	atomic_uint pending;
	GByteArray *defer;     /* hand the records to the caller instead of logging */
	data_write_fn fn;
	void *ctx;
};

static struct rec_time now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (struct rec_time){ ts.tv_sec, (uint32_t)ts.tv_nsec };
}

static void wop_free(struct wop *op)
{
	if (op->rmw)
		rplan_free(op->rmw);
	bufpool_put(&op->st->buffers, op->buf, (size_t)op->nblk * DMIOFS_BLOCK);
	dio_free(op->old);
	g_free(op->csums);
	g_free(op->runs);
	g_free(op);
}

/* Give back the blocks of every run (lock held): nothing references them. */
static void free_runs(struct wop *op)
{
	for (uint32_t i = 0; i < op->nruns; i++)
		alloc_free_now(&op->st->alloc, op->runs[i].chunk, op->runs[i].cblock, op->runs[i].n);
	op->nruns = 0;
}

/* Release the range, let the inode go if nothing holds it, reply. */
static void wop_end(struct wop *op, ssize_t result, bool locked)
{
	struct store *st = op->st;
	struct range_op *ready = NULL;
	struct dinode *in;

	if (!locked)
		g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, op->ino);
	if (in && !(op->flags & WOP_RANGE_HELD)) {
		ready = range_release(in, &op->range);
		store_release_inode(st, in);
	}
	g_mutex_unlock(&st->lock);
	range_start_ready(st, ready);
	op->fn(op->ctx, result);
	wop_free(op);
}

/* ---- finishing ------------------------------------------------------------ */

static bool run_failed(const struct wrun *r)
{
	return !r->nregions || r->bits == (r->nregions == 64 ? ~0UL : (1UL << r->nregions) - 1);
}

/* The error bits of a run by copy of its chunk (dm-io numbers regions,
 * and regions skip copies on devices already failed). */
static unsigned long copy_bits(const struct wrun *run)
{
	unsigned long bits = 0;

	for (uint32_t k = 0; k < run->nregions; k++)
		if (run->bits & (1UL << k))
			bits |= 1UL << run->map[k];
	return bits;
}

/* Count the errors (lock held).  Copies that missed a write the others
 * took hold stale data now: their devices are failed.  When no copy took
 * it, the write fails and nothing refers to it: no device is blamed. */
static void note_write_errors(struct wop *op, GByteArray *r)
{
	for (uint32_t i = 0; i < op->nruns; i++) {
		struct wrun *run = &op->runs[i];
		bool whole = run_failed(run);

		if (run->refused) {
			g_warning("a write of inode %llu could not be submitted: %s; no device is blamed",
				  (unsigned long long)op->ino, g_strerror(-run->refused));
			continue;
		}
		for (uint32_t k = 0; k < run->nregions; k++) {
			uint32_t dev = run->stripes[run->map[k]].dev;

			if (!(run->bits & (1UL << k)))
				continue;
			ioerr_note(op->st, true,
				   &(struct io_fault){ ERR_WRITE, dev, op->ino, run->fblock, run->n, IO_OP_WRITE, run->chunk,
						       copy_bits(run) });
			if (!whole)
				ioerr_fail_device(op->st, dev, r);
		}
	}
}

/* The devices that took the run. */
static uint32_t devices_written(const struct wrun *run)
{
	uint32_t devs = 0;

	for (uint32_t k = 0; k < run->nregions; k++)
		if (!(run->bits & (1UL << k)))
			devs |= 1u << run->stripes[run->map[k]].dev;
	return devs;
}

/* Lock held.  Which copies of the run's blocks are stale now: those whose
 * device did not take the write (away, failed, or a copy added to the
 * chunk since the write began) miss it; those that took it hold it,
 * whatever they missed before. */
static void note_stale_copies(struct store *st, const struct wrun *run, GByteArray *r)
{
	struct chunk *c = alloc_chunk(&st->alloc, run->chunk);
	uint32_t took = devices_written(run);

	for (uint32_t k = 0; c && k < c->ncopies; k++) {
		uint32_t dev = c->stripes[k].dev, stale = alloc_stale_count(c, k, run->cblock, run->n);

		if (!(took & (1u << dev)) && stale < run->n)
			rec_put_stale(r, c->id, dev, run->cblock, run->n, true);
		else if ((took & (1u << dev)) && stale)
			rec_put_stale(r, c->id, dev, run->cblock, run->n, false);
	}
}

static void wop_finish(struct wop *op)
{
	struct store *st = op->st;
	struct dinode *in;
	GByteArray *r;
	ssize_t result = (ssize_t)op->size;
	bool failed = false;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, op->ino);
	for (uint32_t i = 0; i < op->nruns; i++)
		failed |= run_failed(&op->runs[i]);
	r = g_byte_array_new();
	note_write_errors(op, r);
	if (failed || !in) {
		free_runs(op);
		result = -EIO;
	} else {
		for (uint32_t i = 0; i < op->nruns; i++) {
			struct wrun *run = &op->runs[i];

			note_stale_copies(st, run, r);
			rec_put_extent(r, op->ino, run->fblock, run->n, run->chunk, run->cblock,
				       op->csums + (run->fblock - op->b0));
		}
		if (!(op->flags & WOP_KEEP_SIZE)) {
			struct rec_inode ri;

			inode_to_rec(in, &ri);
			if (op->off + op->size > ri.size)
				ri.size = op->off + op->size;
			if (op->flags & WOP_CLEAR_SETID)
				ri.mode = mode_without_setid(ri.mode);
			ri.mtime = ri.ctime = now();
			rec_put_inode(r, &ri);
		}
	}
	if (op->defer && !failed) {
		/* The caller logs these with its own records, in one commit. */
		g_byte_array_append(op->defer, r->data, r->len);
	} else if (r->len && store_log(st, r) && !failed) {
		free_runs(op); /* the log refused: nothing references the blocks */
		result = -EIO;
	}
	g_byte_array_free(r, TRUE);
	wop_end(op, result, true);
}

static void wop_put(struct wop *op)
{
	if (atomic_fetch_sub(&op->pending, 1) == 1)
		wop_finish(op);
}

/* ---- writing the runs ------------------------------------------------------- */

static void run_written(unsigned long error, void *ctx)
{
	struct wrun *run = ctx;

	run->bits = error;
	wop_put(run->op);
}

/* Where block b of the write comes from: the merged old page for a
 * partly written block that had old bytes, the copied request otherwise. */
static uint8_t *block_source(struct wop *op, uint32_t b)
{
	if (b == 0 && op->old_head)
		return op->old;
	if (b == op->nblk - 1 && op->old_tail)
		return op->old + DMIOFS_BLOCK;
	return op->buf + (size_t)b * DMIOFS_BLOCK;
}

/* The run's memory as a bio_vec array: the request's copy, with the
 * merged pages of partly written blocks spliced in at either end. */
static void run_bvec(struct wop *op, const struct wrun *run, struct bio_vec *bv)
{
	uint32_t first = (uint32_t)(run->fblock - op->b0), n = 0;

	for (uint32_t b = first; b < first + run->n; b++) {
		uint8_t *src = block_source(op, b);
		struct bio_vec *last = n ? &bv[n - 1] : NULL;

		if (last && (uint8_t *)dmio_page_address(last->bv_page) + last->bv_offset + last->bv_len == src) {
			last->bv_len += DMIOFS_BLOCK; /* contiguous: one entry */
			continue;
		}
		bv[n++] = (struct bio_vec){ dmio_virt_to_page(src), DMIOFS_BLOCK, 0 };
	}
}

static void issue_run(struct wop *op, struct wrun *run)
{
	struct store *st = op->st;
	struct io_region where[DMIOFS_MAX_COPIES];
	struct bio_vec bv[3]; /* head page, the copy, tail page */
	struct dm_io_request req = {
		.bi_op = DMIO_WRITE,
		.mem = { .type = DM_IO_BVEC, .ptr.bvec = bv },
		.notify = { run_written, run },
		.client = data_client(st),
	};

	run->nregions = 0;
	g_mutex_lock(&st->lock);
	for (uint32_t k = 0; k < run->ncopies; k++) {
		struct sdev *d = &st->dev[run->stripes[k].dev];

		if (!dev_written(d))
			continue; /* degraded: the others take the write, this copy is stale */
		where[run->nregions] = (struct io_region){
			d->bdev, (run->stripes[k].offset + (uint64_t)run->cblock * DMIOFS_BLOCK) >> DMIO_SECTOR_SHIFT,
			(uint64_t)run->n * (DMIOFS_BLOCK >> DMIO_SECTOR_SHIFT)
		};
		run->map[run->nregions++] = k;
	}
	g_mutex_unlock(&st->lock);
	run_bvec(op, run, bv);
	run->refused = run->nregions ? dm_io(&req, run->nregions, where, NULL) : 0;
	if (!run->nregions || run->refused) {
		run->bits = ~0UL;
		wop_put(op);
	}
}

static void wop_write(struct wop *op)
{
	for (uint32_t b = 0; b < op->nblk; b++)
		op->csums[b] = dmiofs_crc(block_source(op, b), DMIOFS_BLOCK);
	atomic_store(&op->pending, op->nruns + 1);
	for (uint32_t i = 0; i < op->nruns; i++)
		issue_run(op, &op->runs[i]);
	wop_put(op);
}

/* ---- preparing: old bytes, new blocks ---------------------------------------- */

static size_t delta(const struct wop *op)
{
	return (size_t)(op->off - op->b0 * DMIOFS_BLOCK);
}

/* The old pages are read; lay the new bytes over them. */
static void rmw_done(struct rplan *p)
{
	struct wop *op = p->ctx;
	size_t end = delta(op) + op->size, last = (size_t)(op->nblk - 1) * DMIOFS_BLOCK;

	if (p->failed) { /* the old bytes are lost on every copy: do not guess */
		g_mutex_lock(&op->st->lock);
		free_runs(op);
		wop_end(op, -EIO, true);
		return;
	}
	if (op->old_head)
		memcpy(op->old + delta(op), op->buf + delta(op), MIN(end, (size_t)DMIOFS_BLOCK) - delta(op));
	if (op->old_tail)
		memcpy(op->old + DMIOFS_BLOCK, op->buf + last, end - last);
	wop_write(op);
}

/* Lock held.  Which partly written blocks hold old bytes to keep (read
 * into pages through dm-io's page-list path, the new bytes laid over
 * them); the rest of a partial block is zero (a hole, or beyond the end of
 * file).  A single partial block is the head. */
static int plan_partial_blocks(struct wop *op, struct dinode *in)
{
	size_t end = delta(op) + op->size, total = (size_t)op->nblk * DMIOFS_BLOCK;
	uint64_t tail = op->b0 + op->nblk - 1;
	bool head_partial = delta(op) || (op->nblk == 1 && end < total);

	op->old_head = head_partial && ext_mapped_blocks(in, op->b0, 1);
	op->old_tail = op->nblk > 1 && end < total && ext_mapped_blocks(in, tail, 1);
	if (!op->old_head)
		memset(op->buf, 0, delta(op));
	if (!op->old_tail)
		memset(op->buf + end, 0, total - end);
	if (!op->old_head && !op->old_tail)
		return 0;
	op->old = dio_alloc(2 * DMIOFS_BLOCK);
	if (!op->old)
		return -ENOMEM;
	op->rmw = rplan_new(op->st, op->ino);
	op->rmw->pages = true;
	if (op->old_head)
		rplan_add(op->rmw, in, op->b0, 1, op->old);
	if (op->old_tail)
		rplan_add(op->rmw, in, tail, 1, op->old + DMIOFS_BLOCK);
	op->rmw->done = rmw_done;
	op->rmw->ctx = op;
	return 0;
}

/* Lock held.  New blocks for the whole range, as few runs as possible. */
static int allocate_runs(struct wop *op, GByteArray *records)
{
	struct alloc *a = &op->st->alloc;
	uint64_t fblock = op->b0;
	uint32_t left = op->nblk;

	op->runs = g_new0(struct wrun, op->nblk);
	while (left) {
		struct wrun *run = &op->runs[op->nruns];
		uint32_t got = 0;
		int err = alloc_blocks(a, left, &run->chunk, &run->cblock, &got, records);
		struct chunk *c;

		if (err)
			return err;
		c = alloc_chunk(a, run->chunk);
		run->op = op;
		run->fblock = fblock;
		run->n = got;
		run->ncopies = c->ncopies;
		memcpy(run->stripes, c->stripes, sizeof(run->stripes));
		op->nruns++;
		fblock += got;
		left -= got;
	}
	return 0;
}

/* What a write of nblk blocks in nruns extents adds to a checkpoint:
 * its extents, one more for an old extent it splits. */
static uint64_t write_meta_cost(uint64_t nblk, uint32_t nruns)
{
	return rec_bytes_extent(nblk) + nruns * rec_bytes_extent(0);
}

/* Lock held.  Does the write fit and leave free what it must: a few
 * blocks for the zeroing a truncate or a punch needs, so that space can
 * always be given back on a full file system, and the root reserve when
 * the writer is not root.  The zeroing itself may take them all. */
static bool leaves_kept_back(const struct wop *op)
{
	struct store *st = op->st;
	bool may_use_root_reserve = !(op->flags & WOP_SPARE_ROOT_RESERVE);

	if (op->flags & WOP_KEEP_SIZE)
		return true;
	return alloc_writable_blocks(&st->alloc, st->sb.root_reserve_permille, may_use_root_reserve) >= op->nblk;
}

/* Lock held.  Allocate; when full, wait once for frees the log holds back. */
static int allocate_or_wait(struct wop *op)
{
	struct store *st = op->st;
	GByteArray *records;
	int err;

	/* Every block costs its checksum in the checkpoint: a file system
	 * whose metadata area is full takes no more data. */
	if (store_meta_room(st, write_meta_cost(op->nblk, 1), META_SHARE_DATA))
		return -ENOSPC;
	if (!leaves_kept_back(op)) {
		if (!st->alloc.pending_blocks)
			return -ENOSPC;
		g_mutex_unlock(&st->lock);
		store_sync_frees(st);
		g_mutex_lock(&st->lock);
		if (!leaves_kept_back(op))
			return -ENOSPC;
	}
	records = g_byte_array_new();
	err = allocate_runs(op, records);

	if (err == -ENOSPC && st->alloc.pending_blocks) {
		free_runs(op);
		g_free(op->runs);
		op->runs = NULL;
		/* A chunk made meanwhile is in memory already: its record must
		 * reach the log before anything else can use the chunk. */
		if (records->len) {
			store_append(st, records);
			g_byte_array_set_size(records, 0);
		}
		g_mutex_unlock(&st->lock);
		store_sync_frees(st);
		g_mutex_lock(&st->lock);
		err = allocate_runs(op, records);
	}
	/* Now the runs are known: each is an extent record (one more may
	 * split an old extent).  New chunks are counted already. */
	if (!err && store_meta_room(st, write_meta_cost(op->nblk, op->nruns), META_SHARE_DATA))
		err = -ENOSPC;
	if (err)
		free_runs(op);
	/* New chunks go to the log now, ahead of the extents that use them
	 * (the allocator has already put them in memory). */
	if (records->len) {
		int lerr = store_append(st, records);

		if (!err)
			err = lerr;
	}
	g_byte_array_free(records, TRUE);
	return err;
}

static void wop_start(struct range_op *range)
{
	struct wop *op = (struct wop *)range;
	struct store *st = op->st;
	struct dinode *in;
	int err;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, op->ino);
	err = in ? (st->broken ? st->broken : 0) : -ENOENT;
	if (!err)
		err = plan_partial_blocks(op, in);
	if (!err)
		err = allocate_or_wait(op);
	if (err) {
		wop_end(op, err, true);
		return;
	}
	g_mutex_unlock(&st->lock);
	if (op->rmw)
		rplan_start(op->rmw);
	else
		wop_write(op);
}

/* ---- entry points -------------------------------------------------------------- */

static int check_writable_file(struct store *st, struct dinode *in)
{
	if (!in)
		return -ENOENT;
	if (S_ISDIR(in->mode))
		return -EISDIR;
	if (!S_ISREG(in->mode))
		return -EINVAL;
	if (st->opt.read_only)
		return -EROFS;
	return st->broken;
}

static struct wop *wop_new(struct store *st, uint64_t ino, uint64_t off, size_t size, unsigned int flags,
			   data_write_fn fn, void *ctx)
{
	struct wop *op = g_new0(struct wop, 1);

	op->st = st;
	op->ino = ino;
	op->off = off;
	op->size = size;
	op->flags = flags;
	op->b0 = off / DMIOFS_BLOCK;
	op->nblk = (uint32_t)((off + size - 1) / DMIOFS_BLOCK - op->b0 + 1);
	op->fn = fn;
	op->ctx = ctx;
	op->buf = bufpool_get(&st->buffers, (size_t)op->nblk * DMIOFS_BLOCK);
	op->csums = g_new(uint32_t, op->nblk);
	op->range.first = op->b0;
	op->range.last = op->b0 + op->nblk - 1;
	op->range.start = wop_start;
	if (!op->buf) {
		g_free(op->csums);
		g_free(op);
		return NULL;
	}
	return op;
}

static void wop_submit(struct wop *op)
{
	struct store *st = op->st;
	struct dinode *in;
	bool go = false;

	if (op->flags & WOP_RANGE_HELD) {
		wop_start(&op->range);
		return;
	}
	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, op->ino);
	if (in)
		go = range_acquire(in, &op->range);
	g_mutex_unlock(&st->lock);
	if (!in) {
		op->fn(op->ctx, -ENOENT);
		wop_free(op);
	} else if (go) {
		wop_start(&op->range);
	}
}

static void write_with_flags(struct store *st, uint64_t ino, uint64_t off, const struct iovec *iov, int iovcnt,
			     unsigned int flags, data_write_fn fn, void *ctx)
{
	size_t size = 0, at;
	struct wop *op;
	int err;

	for (int i = 0; i < iovcnt; i++)
		size += iov[i].iov_len;
	g_mutex_lock(&st->lock);
	err = check_writable_file(st, meta_inode(&st->meta, ino));
	g_mutex_unlock(&st->lock);
	if (!err && (off > MAX_FILE_BYTES || size > MAX_FILE_BYTES - off))
		err = -EFBIG;
	if (err || !size) {
		fn(ctx, err ? err : 0);
		return;
	}
	op = wop_new(st, ino, off, size, flags, fn, ctx);
	if (!op) {
		fn(ctx, -ENOMEM);
		return;
	}
	/* The caller's memory is only ours until we return. */
	at = delta(op);
	for (int i = 0; i < iovcnt; i++) {
		memcpy(op->buf + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	wop_submit(op);
}

void data_write(struct store *st, uint64_t ino, uint64_t off, const struct iovec *iov, int iovcnt,
		data_write_fn fn, void *ctx)
{
	write_with_flags(st, ino, off, iov, iovcnt, 0, fn, ctx);
}

void data_write_as(struct store *st, const struct caller *who, uint64_t ino, uint64_t off, const struct iovec *iov,
		   int iovcnt, data_write_fn fn, void *ctx)
{
	unsigned int flags = caller_may_use_root_reserve(who) ? 0 : WOP_SPARE_ROOT_RESERVE;

	if (who->clears_setid)
		flags |= WOP_CLEAR_SETID;
	write_with_flags(st, ino, off, iov, iovcnt, flags, fn, ctx);
}

/* ---- synchronous zeroing (truncate, punch) --------------------------------------- */

static void zeroed(void *ctx, ssize_t result)
{
	waiter_done(ctx, result);
}

/* Zero [off, off + len) inside one block, copy-on-write; the caller holds
 * the range lock and not the store lock.  The records that map the new
 * block are appended to records, for the caller to log with the rest of
 * its operation in one commit: a truncate or a punch is whole or absent
 * after a crash. */
static int zero_in_block(struct store *st, uint64_t ino, uint64_t off, size_t len, GByteArray *records)
{
	struct waiter w;
	struct wop *op;
	long result;

	waiter_init(&w);
	op = wop_new(st, ino, off, len, WOP_KEEP_SIZE | WOP_RANGE_HELD, zeroed, &w);
	if (!op) {
		waiter_clear(&w);
		return -ENOMEM;
	}
	op->defer = records;
	memset(op->buf + delta(op), 0, len);
	wop_submit(op);
	result = waiter_wait(&w);
	waiter_clear(&w);
	return result < 0 ? (int)result : 0;
}

/* Lock held: unmap whole blocks [first, end), where any are mapped. */
static void put_punch(struct dinode *in, uint64_t first, uint64_t end, GByteArray *r)
{
	if (end > first && ext_mapped_blocks(in, first, end - first))
		rec_put_punch(r, in->ino, first, end - first);
}

static uint64_t last_mapped_end(const struct dinode *in)
{
	const struct extent *e = ext_last(in);

	return e ? e->fblock + e->nblocks : 0;
}

/* Lock held on entry and exit; the range lock is held meanwhile.
 * Zeroing part of a block is a copy-on-write and needs a free block, so on
 * a full file system it fails with ENOSPC, even in a truncate or a punch
 * that gives space back.  Then let go of the whole blocks [first, end)
 * first (with new_size, when not 0, as the file's size meanwhile), wait
 * for that commit (blocks let go of are reusable once it is durable), and
 * zero again.  A crash in between leaves the smaller change, whole: the
 * punch without its edges, or a truncate to the next block boundary.
 * Returns -ENOSPC when nothing could be let go. */
static int zero_when_full(struct store *st, struct dinode *in, uint64_t first, uint64_t end, uint64_t new_size,
			  uint64_t off, size_t len, GByteArray *records)
{
	GByteArray *r = g_byte_array_new();
	int err;

	put_punch(in, first, end, r);
	if (r->len && new_size) {
		struct rec_inode ri;

		inode_to_rec(in, &ri);
		ri.size = new_size;
		ri.mtime = ri.ctime = now();
		rec_put_inode(r, &ri);
	}
	err = r->len ? store_log(st, r) : -ENOSPC;
	g_byte_array_free(r, TRUE);
	if (err)
		return err;
	g_mutex_unlock(&st->lock);
	err = store_sync_frees(st);
	if (!err)
		err = zero_in_block(st, in->ino, off, len, records);
	g_mutex_lock(&st->lock);
	return err;
}

/* Lock held on entry and exit; the range lock is held meanwhile. */
static int truncate_locked(struct store *st, struct dinode *in, uint64_t size)
{
	uint64_t old = in->size, boundary = (size + DMIOFS_BLOCK - 1) / DMIOFS_BLOCK * DMIOFS_BLOCK;
	struct rec_inode ri;
	GByteArray *r = g_byte_array_new();
	int err = 0;

	/* The tail of the new last block must read as zeroes if the file
	 * grows again: rewrite it now, while it is still in the file (one
	 * more extent at most: a truncate to a block boundary needs none, so
	 * space can always be given back). */
	if (size < old && size % DMIOFS_BLOCK && ext_mapped_blocks(in, size / DMIOFS_BLOCK, 1) &&
	    store_meta_room(st, 2 * rec_bytes_extent(1), 63)) {
		g_byte_array_free(r, TRUE);
		return -ENOSPC;
	}
	if (size < old && size % DMIOFS_BLOCK && ext_mapped_blocks(in, size / DMIOFS_BLOCK, 1)) {
		g_mutex_unlock(&st->lock);
		err = zero_in_block(st, in->ino, size, DMIOFS_BLOCK - size % DMIOFS_BLOCK, r);
		g_mutex_lock(&st->lock);
		if (err == -ENOSPC)
			err = zero_when_full(st, in, boundary / DMIOFS_BLOCK, last_mapped_end(in), MIN(boundary, old),
					     size, DMIOFS_BLOCK - size % DMIOFS_BLOCK, r);
		if (err) {
			g_byte_array_free(r, TRUE);
			return err;
		}
	}
	if (size < old)
		put_punch(in, (size + DMIOFS_BLOCK - 1) / DMIOFS_BLOCK, last_mapped_end(in), r);
	inode_to_rec(in, &ri);
	ri.size = size;
	ri.mtime = ri.ctime = now();
	rec_put_inode(r, &ri);
	err = store_log(st, r);
	g_byte_array_free(r, TRUE);
	return err;
}

/* Run fn on inode ino with the range [first, last] locked. */
static int with_range(struct store *st, uint64_t ino, uint64_t first, uint64_t last,
		      int (*fn)(struct store *st, struct dinode *in, void *arg), void *arg)
{
	struct range_wait w;
	struct range_op *ready;
	struct dinode *in;
	int err;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	err = check_writable_file(st, in);
	if (err) {
		g_mutex_unlock(&st->lock);
		return err;
	}
	g_cond_init(&w.cond);
	range_acquire_wait(st, in, first, last, &w);
	err = fn(st, in, arg);
	ready = range_release(in, &w.op);
	store_release_inode(st, in);
	g_mutex_unlock(&st->lock);
	g_cond_clear(&w.cond);
	range_start_ready(st, ready);
	return err;
}

static int truncate_cb(struct store *st, struct dinode *in, void *arg)
{
	return truncate_locked(st, in, *(uint64_t *)arg);
}

int data_truncate(struct store *st, uint64_t ino, uint64_t size)
{
	if (size > MAX_FILE_BYTES)
		return -EFBIG;
	return with_range(st, ino, size / DMIOFS_BLOCK, UINT64_MAX, truncate_cb, &size);
}

/* ---- fallocate -------------------------------------------------------------------- */

struct falloc_args {
	int mode;
	uint64_t off, len;
	bool may_use_root_reserve;
};

/* Zero the partial blocks at both ends of [off, end), unmap the whole
 * ones: the records go into r, for the caller to log in one piece. */
static int punch_locked(struct store *st, struct dinode *in, uint64_t off, uint64_t end, GByteArray *r)
{
	uint64_t first = (off + DMIOFS_BLOCK - 1) / DMIOFS_BLOCK, last = end / DMIOFS_BLOCK;
	/* two zeroed edges and a split extent: three more extents at most */
	int err = store_meta_room(st, 3 * rec_bytes_extent(1), META_SHARE_EDIT);

	if (err)
		return err;

	if (off % DMIOFS_BLOCK && ext_mapped_blocks(in, off / DMIOFS_BLOCK, 1)) {
		uint64_t stop = MIN(end, (off / DMIOFS_BLOCK + 1) * DMIOFS_BLOCK);

		g_mutex_unlock(&st->lock);
		err = zero_in_block(st, in->ino, off, stop - off, r);
		g_mutex_lock(&st->lock);
		if (err == -ENOSPC) /* full: the whole blocks go first */
			err = zero_when_full(st, in, first, last, 0, off, stop - off, r);
	}
	/* The tail block, unless the head's zeroing already covered it (a
	 * range inside one block that starts mid-block). */
	if (!err && end % DMIOFS_BLOCK && (off % DMIOFS_BLOCK == 0 || end / DMIOFS_BLOCK != off / DMIOFS_BLOCK) &&
	    ext_mapped_blocks(in, end / DMIOFS_BLOCK, 1)) {
		g_mutex_unlock(&st->lock);
		err = zero_in_block(st, in->ino, last * DMIOFS_BLOCK, end % DMIOFS_BLOCK, r);
		g_mutex_lock(&st->lock);
		if (err == -ENOSPC)
			err = zero_when_full(st, in, first, last, 0, last * DMIOFS_BLOCK, end % DMIOFS_BLOCK, r);
	}
	if (!err)
		put_punch(in, first, last, r);
	return err;
}

static int falloc_cb(struct store *st, struct dinode *in, void *arg)
{
	struct falloc_args *a = arg;
	uint64_t end = a->off + a->len;
	struct rec_inode ri;
	GByteArray *r = g_byte_array_new();
	int err = 0;

	if (a->mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		err = punch_locked(st, in, a->off, end, r);
	} else {
		/* Copy-on-write cannot promise future overwrites their space;
		 * what can be checked is that the range fits now. */
		uint64_t first = a->off / DMIOFS_BLOCK, n = (end - 1) / DMIOFS_BLOCK - first + 1;
		uint64_t usable = alloc_usable_blocks(&st->alloc) + st->alloc.pending_blocks;
		uint64_t kept = alloc_kept_back(&st->alloc, st->sb.root_reserve_permille, a->may_use_root_reserve);

		/* As a write of the range by the same caller would be judged. */
		usable = usable > kept ? usable - kept : 0;
		if (n - ext_mapped_blocks(in, first, n) > usable)
			err = -ENOSPC;
	}
	if (!err) {
		inode_to_rec(in, &ri);
		if (!(a->mode & FALLOC_FL_KEEP_SIZE) && end > ri.size)
			ri.size = end;
		/* As local file systems do, every successful fallocate
		 * changes the file's times. */
		ri.mtime = ri.ctime = now();
		rec_put_inode(r, &ri);
		if (r->len)
			err = store_log(st, r);
	}
	g_byte_array_free(r, TRUE);
	return err;
}

static int fallocate_checked(struct store *st, uint64_t ino, int mode, uint64_t off, uint64_t len,
			     bool may_use_root_reserve)
{
	struct falloc_args a = { mode, off, len, may_use_root_reserve };

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (!len)
		return -EINVAL;
	if (off > MAX_FILE_BYTES || len > MAX_FILE_BYTES - off)
		return -EFBIG;
	return with_range(st, ino, off / DMIOFS_BLOCK, (off + len - 1) / DMIOFS_BLOCK, falloc_cb, &a);
}

int data_fallocate(struct store *st, uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	return fallocate_checked(st, ino, mode, off, len, true);
}

int data_fallocate_as(struct store *st, const struct caller *who, uint64_t ino, int mode, uint64_t off,
		      uint64_t len)
{
	return fallocate_checked(st, ino, mode, off, len, caller_may_use_root_reserve(who));
}

/* ---- SEEK_DATA / SEEK_HOLE ---------------------------------------------------------- */

int data_seek(struct store *st, uint64_t ino, uint64_t off, int whence, uint64_t *out)
{
	struct dinode *in;
	int err = 0;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (!in) {
		err = -ENOENT;
	} else if (!S_ISREG(in->mode)) {
		err = -EINVAL;
	} else if (off >= in->size) {
		err = -ENXIO;
	} else if (whence == SEEK_DATA) {
		struct ext_pos p;
		const struct extent *e = ext_seek(in, off / DMIOFS_BLOCK, &p);
		uint64_t at = e ? MAX(off, e->fblock * DMIOFS_BLOCK) : in->size;

		if (at >= in->size)
			err = -ENXIO;
		else
			*out = at;
	} else if (whence == SEEK_HOLE) {
		uint64_t cur = off / DMIOFS_BLOCK;
		struct ext_pos p;

		for (const struct extent *e = ext_seek(in, cur, &p); e && e->fblock <= cur; e = ext_next(in, &p))
			cur = e->fblock + e->nblocks;
		*out = MIN(MAX(off, cur * DMIOFS_BLOCK), in->size);
	} else {
		err = -EINVAL;
	}
	g_mutex_unlock(&st->lock);
	return err;
}
