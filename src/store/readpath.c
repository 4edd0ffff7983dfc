/* readpath.c - reading file data: from one copy chosen by load, every
 * block's CRC32C checked, failing over to another copy on an error or a
 * mismatch, and rewriting the bad copy from the good one. */
#include <errno.h>
#include <string.h>

#include "extmap.h"
#include "apply.h"
#include "bufpool.h"
#include "data.h"
#include "ioerr.h"
#include "rangelock.h"
#include "readpath.h"

#define MAX_ATTEMPTS 3 /* restarts when the blocks were rewritten under us */

/* ---- plans ---------------------------------------------------------------- */

struct rplan *rplan_new(struct store *st, uint64_t ino)
{
	struct rplan *p = g_new0(struct rplan, 1);

	p->st = st;
	p->ino = ino;
	return p;
}

void rplan_free(struct rplan *p)
{
	for (uint32_t i = 0; i < p->nruns; i++) {
		g_free(p->runs[i].csums);
		g_free(p->runs[i].good);
		dio_free(p->runs[i].spare);
	}
	g_free(p->runs);
	g_free(p);
}

static void add_run(struct rplan *p, const struct chunk *c, const struct extent *e, uint64_t from, uint64_t to,
		    uint8_t *dst)
{
	struct rrun *r;

	p->runs = g_renew(struct rrun, p->runs, p->nruns + 1);
	r = &p->runs[p->nruns++];
	memset(r, 0, sizeof(*r));
	r->plan = p;
	r->fblock = from;
	r->n = (uint32_t)(to - from);
	r->chunk = e->chunk;
	r->cblock = e->cblock + (uint32_t)(from - e->fblock);
	r->csums = g_memdup2(ext_csums_const(e) + (from - e->fblock), r->n * sizeof(uint32_t));
	r->good = g_new0(uint64_t, (r->n + 63) / 64);
	r->ncopies = c->ncopies;
	memcpy(r->stripes, c->stripes, sizeof(r->stripes));
	for (uint32_t k = 0; k < c->ncopies; k++)
		if (alloc_stale_count(c, k, r->cblock, r->n))
			r->stale |= 1u << k;
	r->dst = dst;
}

void rplan_add(struct rplan *p, struct dinode *in, uint64_t fblock, uint64_t n, uint8_t *dst)
{
	uint64_t end = fblock + n, at = fblock;

	struct ext_pos pos;

	for (const struct extent *e = ext_seek(in, fblock, &pos); e && e->fblock < end; e = ext_next(in, &pos)) {
		uint64_t from = MAX(e->fblock, fblock), to = MIN(e->fblock + e->nblocks, end);
		struct chunk *c = alloc_chunk(&p->st->alloc, e->chunk);

		if (from > at) /* a hole reads as zeroes */
			memset(dst + (at - fblock) * DMIOFS_BLOCK, 0, (from - at) * DMIOFS_BLOCK);
		if (c)
			add_run(p, c, e, from, to, dst + (from - fblock) * DMIOFS_BLOCK);
		else
			memset(dst + (from - fblock) * DMIOFS_BLOCK, 0, (to - from) * DMIOFS_BLOCK);
		at = to;
	}
	if (at < end)
		memset(dst + (at - fblock) * DMIOFS_BLOCK, 0, (end - at) * DMIOFS_BLOCK);
}

/* ---- choosing a copy -------------------------------------------------------- */

static uint64_t copy_offset(const struct rrun *r, uint32_t k)
{
	return r->stripes[k].offset + (uint64_t)r->cblock * DMIOFS_BLOCK;
}

/* How a copy would serve a read now: its reads in flight, how long a read
 * takes there lately (0: none was timed yet, so unknown), and whether it
 * is an NBD export. */
struct copy_load {
	unsigned int inflight;
	uint64_t latency;
	bool remote;
};

static struct copy_load copy_load(const struct sdev *d)
{
	struct dmio_bdev_stats s;

	dmio_bdev_get_stats(d->bdev, &s);
	return (struct copy_load){ s.inflight, s.read_latency_us, dmio_bdev_is_remote(d->bdev) };
}

/* Is a much slower than b: an NBD export next to a local disk, or one
 * export farther than another?  Local disks always count as alike, and
 * so do devices within MUCH_SLOWER of each other: they are balanced by
 * their queues, which is what they differ in, not by the noise in their
 * timings (one read that found the host's cache).  A device not timed yet
 * is alike to any. */
#define MUCH_SLOWER 4
static bool much_slower(struct copy_load a, struct copy_load b)
{
	if (!a.remote && !b.remote)
		return false;
	return a.latency && b.latency && a.latency > MUCH_SLOWER * b.latency;
}

/* Would a answer a read before b?  Alike devices: the shorter queue; a
 * much slower one only when its queue is shorter by more than it is slower
 * (reads in flight times latency). */
static bool sooner(struct copy_load a, struct copy_load b)
{
	if (much_slower(a, b) || much_slower(b, a))
		return (uint64_t)(a.inflight + 1) * a.latency < (uint64_t)(b.inflight + 1) * b.latency;
	return a.inflight < b.inflight;
}

/* The copy expected to answer first; write-mostly devices only when no
 * other copy can serve.  A sequential stream stays on its device unless
 * that device is much slower than the one chosen. */
static int choose_copy(struct store *st, const struct rrun *r)
{
	int best = -1, stream = -1;
	struct copy_load best_load = { 0, 0, false }, stream_load = { 0, 0, false };
	bool best_wm = false, stream_wm = false;

	for (uint32_t k = 0; k < r->ncopies; k++) {
		uint32_t dev = r->stripes[k].dev;
		struct sdev *d = &st->dev[dev];
		bool wm = st->write_mostly & (1u << dev);
		struct copy_load load;

		if (((r->tried | r->stale) & (1u << k)) || !dev_written(d))
			continue;
		load = copy_load(d);
		if (__atomic_load_n(&d->next_read, __ATOMIC_RELAXED) == copy_offset(r, k)) {
			stream = (int)k;
			stream_load = load;
			stream_wm = wm;
		}
		if (best < 0 || (best_wm && !wm) || (best_wm == wm && sooner(load, best_load))) {
			best = (int)k;
			best_load = load;
			best_wm = wm;
		}
	}
	if (stream >= 0 && (!stream_wm || best_wm) && !much_slower(stream_load, best_load))
		return stream;
	return best;
}

/* ---- repair ----------------------------------------------------------------------- */

struct repair {
	struct range_op op; /* first: the range lock hands this back */
	struct store *st;
	uint64_t ino;
	struct rrun run;    /* what was read, csums owned */
	uint32_t bad;       /* copies to rewrite */
	uint8_t *data;
	unsigned long bits;
	uint32_t map[DMIOFS_MAX_COPIES];
	uint32_t nregions;
};

/* Is [fblock, fblock + n) still where the run says, with the same CRCs? */
static bool run_still_mapped(struct dinode *in, const struct rrun *r)
{
	struct ext_pos p;
	const struct extent *e = ext_seek(in, r->fblock, &p);

	if (!e)
		return false;
	if (e->fblock > r->fblock || e->fblock + e->nblocks < r->fblock + r->n || e->chunk != r->chunk ||
	    e->cblock + (r->fblock - e->fblock) != r->cblock)
		return false;
	return !memcmp(ext_csums_const(e) + (r->fblock - e->fblock), r->csums, r->n * sizeof(uint32_t));
}

static void repair_finish(struct repair *rp)
{
	struct store *st = rp->st;
	struct range_op *ready = NULL;
	struct dinode *in;

	g_mutex_lock(&st->lock);
	for (uint32_t k = 0; k < rp->nregions; k++) {
		uint32_t dev = rp->run.stripes[rp->map[k]].dev;

		struct io_fault f = { .dev = dev, .ino = rp->ino, .fblock = rp->run.fblock, .n = rp->run.n };

		if (rp->bits & (1UL << k))
			f = (struct io_fault){ ERR_WRITE, dev, rp->ino, rp->run.fblock, rp->run.n, IO_OP_WRITE, rp->run.chunk,
					       1UL << rp->map[k] };
		else
			f.kind = ERR_REPAIRED;
		ioerr_note(st, true, &f);
	}
	in = meta_inode(&st->meta, rp->ino);
	if (in) {
		ready = range_release(in, &rp->op);
		store_release_inode(st, in);
	}
	g_mutex_unlock(&st->lock);
	range_start_ready(st, ready);
	dio_free(rp->data);
	g_free(rp->run.csums);
	g_free(rp);
	atomic_fetch_sub(&st->repairs, 1);
}

static void repair_written(unsigned long error, void *ctx)
{
	struct repair *rp = ctx;

	rp->bits = error;
	repair_finish(rp);
}

static void repair_start(struct range_op *op)
{
	struct repair *rp = (struct repair *)op;
	struct store *st = rp->st;
	struct io_region where[DMIOFS_MAX_COPIES];
	struct dm_io_request req = {
		.bi_op = DMIO_WRITE,
		.mem = { .type = DM_IO_VMA, .ptr.vma = rp->data },
		.notify = { repair_written, rp },
		.client = data_client(st),
	};
	struct dinode *in;
	bool still;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, rp->ino);
	still = in && run_still_mapped(in, &rp->run) && !st->opt.read_only;
	rp->nregions = 0;
	for (uint32_t k = 0; still && k < rp->run.ncopies; k++) {
		struct sdev *d = &st->dev[rp->run.stripes[k].dev];

		if (!(rp->bad & (1u << k)) || !dev_written(d))
			continue;
		where[rp->nregions] = (struct io_region){ d->bdev, copy_offset(&rp->run, k) >> DMIO_SECTOR_SHIFT,
							  (uint64_t)rp->run.n * (DMIOFS_BLOCK >> DMIO_SECTOR_SHIFT) };
		rp->map[rp->nregions++] = k;
	}
	g_mutex_unlock(&st->lock);
	/* Rewritten meanwhile, or nothing left to write to: the good copy
	 * already stands. */
	if (!rp->nregions || dm_io(&req, rp->nregions, where, NULL)) {
		rp->nregions = 0;
		repair_finish(rp);
	}
}

/* Rewrite the copies of the run that were bad, from the good data, under
 * the inode's range lock so the blocks cannot change owner meanwhile. */
static void schedule_repair(struct store *st, uint64_t ino, const struct rrun *run)
{
	struct repair *rp = g_new0(struct repair, 1);
	struct dinode *in;
	bool go = false;

	atomic_fetch_add(&st->repairs, 1); /* store_close waits for them */
	rp->st = st;
	rp->ino = ino;
	rp->run = *run;
	rp->run.csums = g_memdup2(run->csums, run->n * sizeof(uint32_t));
	rp->run.good = NULL;
	rp->run.spare = NULL;
	rp->bad = run->bad;
	rp->data = dio_alloc((size_t)run->n * DMIOFS_BLOCK);
	rp->op.first = run->fblock;
	rp->op.last = run->fblock + run->n - 1;
	rp->op.start = repair_start;
	if (!rp->data) {
		g_free(rp->run.csums);
		g_free(rp);
		atomic_fetch_sub(&st->repairs, 1);
		return;
	}
	memcpy(rp->data, run->dst, (size_t)run->n * DMIOFS_BLOCK);
	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (in)
		go = range_acquire(in, &rp->op);
	g_mutex_unlock(&st->lock);
	if (!in) {
		dio_free(rp->data);
		g_free(rp->run.csums);
		g_free(rp);
		atomic_fetch_sub(&st->repairs, 1);
	} else if (go) {
		repair_start(&rp->op);
	}
}

/* ---- reading ------------------------------------------------------------------------- */

static void run_issue(struct rrun *r);

static void plan_run_done(struct rplan *p)
{
	if (atomic_fetch_sub(&p->pending, 1) == 1)
		p->done(p);
}

/* Where the copy being read lands: dst the first time, the spare buffer
 * after that, so blocks already verified are never overwritten. */
static uint8_t *landing(struct rrun *r)
{
	return r->tried == (1u << r->cur) ? r->dst : r->spare;
}

/* Take over every block of the copy just read that is still missing and
 * matches its checksum.  False when some block of this copy is bad (all
 * are checked, so that repair knows which copies to rewrite). */
static bool run_take_good_blocks(struct rrun *r)
{
	uint8_t *src = landing(r);
	bool all_good = true;

	for (uint32_t b = 0; b < r->n; b++) {
		uint8_t *block = src + (size_t)b * DMIOFS_BLOCK;
		bool have = r->good[b / 64] & (1ull << (b % 64));

		if (dmiofs_crc(block, DMIOFS_BLOCK) != r->csums[b]) {
			all_good = false;
			continue;
		}
		if (have)
			continue;
		if (src != r->dst)
			memcpy(r->dst + (size_t)b * DMIOFS_BLOCK, block, DMIOFS_BLOCK);
		r->good[b / 64] |= 1ull << (b % 64);
		r->ngood++;
	}
	return all_good;
}

/* Do the run's blocks still belong to the file as mapped?  A read takes
 * no lock: the file may have been rewritten and the blocks reused since. */
static bool run_current(struct rrun *r)
{
	struct store *st = r->plan->st;
	struct dinode *in;
	bool current;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, r->plan->ino);
	current = in && run_still_mapped(in, r);
	g_mutex_unlock(&st->lock);
	return current;
}

static void run_read_done(unsigned long error, void *ctx)
{
	struct rrun *r = ctx;
	struct rplan *p = r->plan;
	uint32_t dev = r->stripes[r->cur].dev;
	bool all_good = !error && run_take_good_blocks(r);

	/* A mismatch on blocks that changed owner meanwhile is no device's
	 * fault: count nothing, let the read start over on the new mapping. */
	if (!error && !all_good && !run_current(r)) {
		p->failed = true;
		plan_run_done(p);
		return;
	}
	if (error || !all_good) {
		struct io_fault f = { error ? ERR_READ : ERR_CSUM, dev, p->ino, r->fblock, r->n, IO_OP_READ, r->chunk,
				      1UL << r->cur };

		ioerr_note(p->st, false, &f);
		r->bad |= 1u << r->cur;
	}
	/* Blocks still missing come from the next copy, block by block. */
	if (r->ngood < r->n) {
		run_issue(r);
		return;
	}
	if (r->bad)
		schedule_repair(p->st, p->ino, r);
	plan_run_done(p);
}

/* Read the run from the next copy worth trying. */
static void run_issue(struct rrun *r)
{
	struct rplan *p = r->plan;
	struct store *st = p->st;
	struct dm_io_request req = {
		.bi_op = DMIO_READ,
		.mem = { .type = DM_IO_VMA, .ptr.vma = r->dst },
		.notify = { run_read_done, r },
		.client = data_client(st),
	};
	struct io_region where;
	int k = choose_copy(st, r), err;

	if (k < 0) {
		p->failed = true; /* every copy is gone or bad */
		plan_run_done(p);
		return;
	}
	r->cur = (uint32_t)k;
	r->tried |= 1u << k;
	if (landing(r) == NULL) {
		r->spare = dio_alloc((size_t)r->n * DMIOFS_BLOCK);
		if (!r->spare) {
			p->failed = true;
			plan_run_done(p);
			return;
		}
	}
	req.mem.ptr.vma = landing(r);
	if (p->pages) {
		r->pl.page = dmio_virt_to_page(landing(r));
		r->pl.next = NULL;
		req.mem = (struct dm_io_memory){ .type = DM_IO_PAGE_LIST, .ptr.pl = &r->pl };
	}
	where = (struct io_region){ st->dev[r->stripes[k].dev].bdev, copy_offset(r, (uint32_t)k) >> DMIO_SECTOR_SHIFT,
				    (uint64_t)r->n * (DMIOFS_BLOCK >> DMIO_SECTOR_SHIFT) };
	__atomic_store_n(&st->dev[r->stripes[k].dev].next_read, copy_offset(r, (uint32_t)k) + (uint64_t)r->n * DMIOFS_BLOCK,
			 __ATOMIC_RELAXED);
	err = dm_io(&req, 1, &where, NULL);
	if (err) {
		/* Refused before any I/O (out of memory, a bug): no device's
		 * fault, so nothing is counted against one; the read fails. */
		g_warning("a read of inode %llu could not be submitted: %s", (unsigned long long)p->ino,
			  g_strerror(-err));
		p->failed = true;
		plan_run_done(p);
	}
}

void rplan_start(struct rplan *p)
{
	p->failed = false;
	atomic_store(&p->pending, p->nruns + 1);
	for (uint32_t i = 0; i < p->nruns; i++)
		run_issue(&p->runs[i]);
	plan_run_done(p);
}

/* Were any of the failed runs rewritten since the plan was made? */
bool rplan_stale(struct rplan *p)
{
	struct dinode *in;
	bool stale = false;

	g_mutex_lock(&p->st->lock);
	in = meta_inode(&p->st->meta, p->ino);
	for (uint32_t i = 0; in && i < p->nruns && !stale; i++)
		stale = !run_still_mapped(in, &p->runs[i]);
	g_mutex_unlock(&p->st->lock);
	return stale;
}

/* ---- data_read ---------------------------------------------------------------------------- */

struct read_op {
	struct store *st;
	uint64_t ino, off, b0, nblk;
	size_t size;
	uint8_t *buf;
	struct rplan *plan;
	int attempts;
	data_read_fn fn;
	void *ctx;
};

static int read_plan(struct read_op *op)
{
	struct store *st = op->st;
	struct dinode *in;
	int err = 0;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, op->ino);
	if (!in) {
		err = -ENOENT;
	} else {
		op->plan = rplan_new(st, op->ino);
		rplan_add(op->plan, in, op->b0, op->nblk, op->buf);
	}
	g_mutex_unlock(&st->lock);
	return err;
}

static void read_finish(struct read_op *op, int err)
{
	if (op->plan)
		rplan_free(op->plan);
	op->fn(op->ctx, err, err ? NULL : (const char *)op->buf + (op->off - op->b0 * DMIOFS_BLOCK), op->size);
	bufpool_put(&op->st->buffers, op->buf, op->nblk * DMIOFS_BLOCK);
	g_free(op);
}

static void read_done(struct rplan *p)
{
	struct read_op *op = p->ctx;

	if (!p->failed) {
		read_finish(op, 0);
		return;
	}
	if (++op->attempts < MAX_ATTEMPTS && rplan_stale(p)) {
		int err;

		rplan_free(op->plan);
		op->plan = NULL;
		err = read_plan(op);
		if (!err) {
			op->plan->done = read_done;
			op->plan->ctx = op;
			rplan_start(op->plan);
		} else {
			read_finish(op, err);
		}
		return;
	}
	read_finish(op, -EIO);
}

void data_read(struct store *st, uint64_t ino, uint64_t off, size_t size, data_read_fn fn, void *ctx)
{
	struct read_op *op;
	struct dinode *in;
	int err = 0;

	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, ino);
	if (!in)
		err = -ENOENT;
	else if (S_ISDIR(in->mode))
		err = -EISDIR;
	else if (!S_ISREG(in->mode))
		err = -EINVAL;
	else if (off >= in->size)
		size = 0;
	else if (size > in->size - off)
		size = in->size - off;
	g_mutex_unlock(&st->lock);
	if (err || !size) {
		fn(ctx, err, "", 0);
		return;
	}
	op = g_new0(struct read_op, 1);
	op->st = st;
	op->ino = ino;
	op->off = off;
	op->size = size;
	op->b0 = off / DMIOFS_BLOCK;
	op->nblk = (off + size - 1) / DMIOFS_BLOCK - op->b0 + 1;
	op->fn = fn;
	op->ctx = ctx;
	op->buf = bufpool_get(&st->buffers, op->nblk * DMIOFS_BLOCK);
	if (!op->buf) {
		g_free(op);
		fn(ctx, -ENOMEM, NULL, 0);
		return;
	}
	err = read_plan(op);
	if (err) {
		read_finish(op, err);
		return;
	}
	op->plan->done = read_done;
	op->plan->ctx = op;
	rplan_start(op->plan);
}

/* The lane whose watcher runs on this thread, once it has run. */
static __thread const struct data_lane *this_lane;

struct dm_io_client *data_client(struct store *st)
{
	return this_lane && this_lane->st == st ? this_lane->client : st->client;
}

static int serve_lane(void *ctx)
{
	const struct data_lane *lane = ctx;

	this_lane = lane;
	return lane->fn(lane->ctx);
}

int data_serve_fd(struct store *st, unsigned int lane, int fd, dm_io_watch_fn fn, void *ctx)
{
	struct data_lane *l;

	if (lane >= STORE_MAX_LANES)
		return -EINVAL;
	l = &st->lanes[lane];
	if (fd < 0)
		return l->client ? dm_io_client_watch(l->client, -1, NULL, NULL) : 0;
	if (!l->client)
		l->client = lane ? dm_io_client_create(STORE_CLIENT_PAGES) : st->client;
	if (!l->client)
		return -errno;
	l->st = st;
	l->fn = fn;
	l->ctx = ctx;
	return dm_io_client_watch(l->client, fd, serve_lane, l);
}
