/* mender.c - the background worker (mender.h).
 *
 * Catch-up: a device back from being away holds stale copies of what was
 * written meanwhile, recorded block by block (STALE records).  The mender
 * walks the files' pieces that touch stale blocks, in device order, and
 * copies each from a copy that checks out, under the file's range lock;
 * each copy made good is recorded.  Stale blocks no file uses are simply
 * forgotten.  When a returning device has no stale block left it is
 * healthy again.  Progress survives a crash or an unmount in the records:
 * a catch-up interrupted resumes where it stood. */
#include <errno.h>
#include <string.h>

#include "extmap.h"
#include "apply.h"
#include "events.h"
#include "ioerr.h"
#include "journal.h"
#include "members.h"
#include "mender.h"
#include "rangelock.h"
#include "readpath.h"
#include "scrub.h"
#include "waiter.h"

#define COPIER_PAGES 512             /* 2 MiB of buffers for copies */
#define DEFAULT_REBUILD_RATE 64000000u /* bytes/s (64 MB/s): modest next to live I/O */
#define IDLE_WAKE_US (G_USEC_PER_SEC) /* look again this often when idle */
#define DEFAULT_HEAL_DELAY 60         /* seconds: a disk being re-plugged is caught up, not copied around */

struct mender {
	struct store *st;
	GThread *thread;
	GCond wake;          /* with st->lock */
	bool stopping, kicked;
	struct dm_kcopyd_client *kc;
	/* Connection attempts to NBD exports, off the mender's thread: a
	 * server that does not answer holds its attempt for nbd_timeout,
	 * and must not hold catch-ups and healing meanwhile. */
	GThreadPool *reconnector;
	/* the task, for status */
	enum mend_task task;
	gint64 task_started;
	uint64_t task_total, task_copied; /* blocks stale at most, bytes written */
	unsigned int fruitless;  /* passes in a row that made nothing good */
	/* the throttle: bytes allowed since throttle_start */
	gint64 throttle_start;
	uint64_t throttle_bytes;
};

const char *mend_task_name(enum mend_task t)
{
	switch (t) {
	case MEND_CATCH_UP:
		return "catch-up";
	case MEND_REPLACE:
		return "replace";
	case MEND_REMOVE:
		return "remove";
	case MEND_HEAL:
		return "rebuild";
	default:
		return "idle";
	}
}

/* ---- pacing --------------------------------------------------------------- */

/* Sleep as long as the rate wants after `bytes` more; false when the
 * mender is asked to stop meanwhile. */
static bool throttle(struct mender *m, uint64_t bytes, uint64_t rate)
{
	struct store *st = m->st;
	gint64 now = g_get_monotonic_time(), due;
	bool go;

	if (!rate)
		return true;
	/* A pause longer than a second forgets what was owed. */
	if (now - m->throttle_start > (gint64)G_USEC_PER_SEC + (gint64)(m->throttle_bytes * G_USEC_PER_SEC / rate)) {
		m->throttle_start = now;
		m->throttle_bytes = 0;
	}
	m->throttle_bytes += bytes;
	due = m->throttle_start + (gint64)(m->throttle_bytes * G_USEC_PER_SEC / rate);
	g_mutex_lock(&st->lock);
	/* A kick (a scrub paused or cancelled, a device back) ends the
	 * pause early: the caller looks again at what it is to do. */
	while (!m->stopping && !m->kicked && g_get_monotonic_time() < due &&
	       g_cond_wait_until(&m->wake, &st->lock, due))
		;
	m->kicked = false;
	go = !m->stopping;
	g_mutex_unlock(&st->lock);
	return go;
}

/* ---- one piece ---------------------------------------------------------------- */

struct copy_try {
	const uint32_t *csums;
	uint32_t n;
	bool rejected;      /* a block read did not match its checksum */
	struct waiter done;
	int read_err;
	unsigned long write_err;
};

/* The copier's check: every block of the piece read matches its checksum. */
static int blocks_match(sector_t sector, const void *data, size_t len, void *ctx)
{
	struct copy_try *t = ctx;
	uint64_t first = sector / (DMIOFS_BLOCK >> DMIO_SECTOR_SHIFT);

	if (sector % (DMIOFS_BLOCK >> DMIO_SECTOR_SHIFT) || len % DMIOFS_BLOCK)
		return t->rejected = true, -EINVAL;
	for (size_t off = 0; off < len; off += DMIOFS_BLOCK) {
		uint64_t b = first + off / DMIOFS_BLOCK;

		if (b >= t->n || dmiofs_crc((const uint8_t *)data + off, DMIOFS_BLOCK) != t->csums[b]) {
			t->rejected = true;
			return -EIO;
		}
	}
	return 0;
}

static void copy_done(int read_err, unsigned long write_err, void *ctx)
{
	struct copy_try *t = ctx;

	t->read_err = read_err;
	t->write_err = write_err;
	waiter_done(&t->done, 0);
}

/* What a piece needs, read under the lock. */
struct plan {
	uint32_t csum_n;
	uint32_t *csums;
	struct rec_stripe stripes[DMIOFS_MAX_COPIES];
	uint32_t ncopies;
	uint32_t sources, targets; /* copies, by index */
};

/* Lock held.  Does the file still map the piece as planned?  Its
 * checksums, and which copies can give and which must take. */
static bool plan_piece(struct store *st, struct dinode *in, const struct piece *p, struct plan *pl)
{
	struct ext_pos at;
	const struct extent *e;
	struct chunk *c;

	if (!S_ISREG(in->mode) || !(e = ext_seek(in, p->fblock, &at)))
		return false;
	if (e->fblock > p->fblock || e->fblock + e->nblocks < p->fblock + p->n || e->chunk != p->chunk ||
	    e->cblock + (p->fblock - e->fblock) != p->cblock)
		return false;
	c = alloc_chunk(&st->alloc, p->chunk);
	if (!c)
		return false;
	pl->csum_n = p->n;
	pl->csums = g_memdup2(ext_csums_const(e) + (p->fblock - e->fblock), p->n * sizeof(uint32_t));
	pl->ncopies = c->ncopies;
	memcpy(pl->stripes, c->stripes, sizeof(pl->stripes));
	pl->sources = pl->targets = 0;
	for (uint32_t k = 0; k < c->ncopies; k++) {
		const struct sdev *d = &st->dev[c->stripes[k].dev];

		if (!dev_written(d))
			continue;
		if (p->copies & (1u << k))
			pl->targets |= 1u << k;
		else if (!alloc_stale_count(c, k, p->cblock, p->n))
			pl->sources |= 1u << k;
	}
	return true;
}

static struct io_region region_of(struct store *st, const struct plan *pl, const struct piece *p, uint32_t k)
{
	return (struct io_region){ st->dev[pl->stripes[k].dev].bdev,
				   (pl->stripes[k].offset + (uint64_t)p->cblock * DMIOFS_BLOCK) >> DMIO_SECTOR_SHIFT,
				   (uint64_t)p->n * (DMIOFS_BLOCK >> DMIO_SECTOR_SHIFT) };
}

/* Copy the piece from source copy k to the targets: 0, or -EIO when the
 * source could not give it (counted against its device). */
static int copy_from(struct store *st, const struct piece *p, const struct plan *pl, uint32_t k,
		     struct mend_result *res)
{
	struct io_region from = region_of(st, pl, p, k), to[DMIOFS_MAX_COPIES];
	uint32_t map[DMIOFS_MAX_COPIES], nto = 0;
	struct copy_try t = { .csums = pl->csums, .n = pl->csum_n };
	int err;

	for (uint32_t j = 0; j < pl->ncopies; j++)
		if (pl->targets & (1u << j)) {
			map[nto] = j;
			to[nto++] = region_of(st, pl, p, j);
		}
	waiter_init(&t.done);
	err = dm_kcopyd_copy_checked(st->mender->kc, 1, &from, nto, to, DM_KCOPYD_IGNORE_ERROR, blocks_match,
				     copy_done, &t);
	if (!err)
		waiter_wait(&t.done);
	waiter_clear(&t.done);
	if (err) {
		g_warning("a copy of inode %llu could not be started: %s", (unsigned long long)p->ino, g_strerror(-err));
		return err;
	}
	for (uint32_t r = 0; r < nto; r++)
		if (t.write_err & (1UL << r))
			res->failed |= 1u << map[r];
	if (t.read_err) {
		ioerr_note(st, false,
			   &(struct io_fault){ t.rejected ? ERR_CSUM : ERR_READ, pl->stripes[k].dev, p->ino, p->fblock, p->n,
					       IO_OP_READ, p->chunk, 1UL << k });
		return -EIO;
	}
	res->made = pl->targets & ~res->failed;
	res->bytes += (uint64_t)nto * p->n * DMIOFS_BLOCK;
	return 0;
}

/* Lock held: record what the copy made good, and the devices that could
 * not take it (failed, as a write error in live I/O would). */
static void record_piece(struct store *st, const struct piece *p, const struct plan *pl, bool repairs,
			 const struct mend_result *res)
{
	struct chunk *c = alloc_chunk(&st->alloc, p->chunk);
	GByteArray *r = g_byte_array_new();
	unsigned long failed_devs = 0;

	for (uint32_t k = 0; k < pl->ncopies; k++) {
		uint32_t dev = pl->stripes[k].dev;
		int now = c ? alloc_copy_on(c, dev) : -1;

		if (res->failed & (1u << k)) {
			ioerr_note(st, true,
				   &(struct io_fault){ ERR_WRITE, dev, p->ino, p->fblock, p->n, IO_OP_WRITE, p->chunk, 1UL << k });
			failed_devs |= 1UL << dev;
		} else if (res->made & (1u << k)) {
			if (now >= 0 && alloc_stale_count(c, (uint32_t)now, p->cblock, p->n))
				rec_put_stale(r, p->chunk, dev, p->cblock, p->n, false);
			if (repairs)
				ioerr_note(st, true,
					   &(struct io_fault){ ERR_REPAIRED, dev, p->ino, p->fblock, p->n, IO_OP_NONE, 0, 0 });
		}
	}
	if (r->len)
		store_note(st, r);
	g_byte_array_free(r, TRUE);
	if (failed_devs)
		ioerr_fail_devices(st, failed_devs, st->next_seq - 1, "a copy's write");
}

int mender_mend_piece(struct store *st, const struct piece *p, bool repairs, struct mend_result *res)
{
	struct range_wait w;
	struct range_op *ready;
	struct plan pl = { 0 };
	struct dinode *in;
	bool planned;
	int err = -EIO;

	memset(res, 0, sizeof(*res));
	g_mutex_lock(&st->lock);
	in = meta_inode(&st->meta, p->ino);
	if (!in) {
		g_mutex_unlock(&st->lock);
		return 0; /* gone meanwhile: nothing to copy */
	}
	g_cond_init(&w.cond);
	range_acquire_wait(st, in, p->fblock, p->fblock + p->n - 1, &w);
	planned = plan_piece(st, in, p, &pl);
	g_mutex_unlock(&st->lock);

	if (!planned || !pl.targets) {
		err = 0;
	} else {
		for (uint32_t k = 0; k < pl.ncopies && err; k++)
			if (pl.sources & (1u << k))
				err = copy_from(st, p, &pl, k, res);
		res->lost = err != 0;
	}

	g_mutex_lock(&st->lock);
	if (planned && pl.targets)
		record_piece(st, p, &pl, repairs, res);
	in = meta_inode(&st->meta, p->ino);
	ready = range_release(in, &w.op);
	store_release_inode(st, in);
	g_mutex_unlock(&st->lock);
	g_cond_clear(&w.cond);
	range_start_ready(st, ready);
	g_free(pl.csums);
	if (res->lost)
		g_warning("inode %llu, blocks %llu..%llu: no copy checks out; the copies that miss them stay stale",
			  (unsigned long long)p->ino, (unsigned long long)p->fblock,
			  (unsigned long long)(p->fblock + p->n - 1));
	return err;
}

/* ---- catch-up ------------------------------------------------------------------ */

/* Copies of block b stale on a device that is written: to be made good. */
static uint32_t want_stale_written(struct store *st, const struct chunk *c, uint32_t b, void *ctx)
{
	uint32_t mask = 0;

	(void)ctx;
	for (uint32_t k = 0; k < c->ncopies; k++)
		if (c->stale[k] && dev_written(&st->dev[c->stripes[k].dev]) && alloc_stale_count(c, k, b, 1))
			mask |= 1u << k;
	return mask;
}

/* Lock held: stale blocks of written devices' copies. */
static uint64_t stale_written_blocks(struct store *st)
{
	uint64_t n = 0;

	for (uint32_t k = 0; k < st->ndevices; k++)
		if (dev_written(&st->dev[k]))
			n += st->alloc.dev_stale[k];
	return n;
}

/* Lock held: forget the stale blocks of written copies that no file uses
 * (blocks still waiting for a commit to free them are left for later). */
static void forget_unused_stale(struct store *st)
{
	GByteArray *r = g_byte_array_new();

	for (guint i = 0; i < st->alloc.chunks->len; i++) {
		struct chunk *c = alloc_chunk(&st->alloc, i);

		for (uint32_t k = 0; c && k < c->ncopies; k++)
			if (c->stale[k] && dev_written(&st->dev[c->stripes[k].dev]))
				alloc_put_unused_stale(c, k, r);
	}
	if (r->len)
		store_note(st, r);
	g_byte_array_free(r, TRUE);
}

/* Lock held: returning devices with nothing stale left are healthy. */
static void finish_returning(struct store *st)
{
	GByteArray *r = g_byte_array_new();
	uint32_t done = 0;

	for (uint32_t k = 0; k < st->ndevices; k++) {
		if (st->dev[k].state != DEV_RETURNING || !st->dev[k].bdev || st->alloc.dev_stale[k])
			continue;
		rec_put_dev_state(r, k, DEV_HEALTHY, 0);
		done |= 1u << k;
	}
	if (r->len)
		store_note(st, r);
	g_byte_array_free(r, TRUE);
	for (uint32_t k = 0; k < st->ndevices; k++)
		if (done & (1u << k))
			store_event(st, EVENT_CAUGHT_UP, (int)k, NULL, "%s (device %u) is caught up: healthy again",
				    st->dev[k].path, k);
}

/* Lock held: what making the stale copies good is part of. */
static enum mend_task task_now(struct store *st)
{
	switch (members_leaving(st)) {
	case LEAVE_REPLACE:
		return MEND_REPLACE;
	case LEAVE_REMOVE:
		return MEND_REMOVE;
	case LEAVE_HEAL:
		return MEND_HEAL;
	default:
		return MEND_CATCH_UP;
	}
}

static void begin_task(struct mender *m, enum mend_task task, uint64_t blocks)
{
	if (m->task != task) {
		m->task = task;
		m->task_started = g_get_monotonic_time();
		m->task_total = 0;
		m->task_copied = 0;
	}
	m->task_total = MAX(m->task_total, blocks);
}

/* One pass over what is stale; true when it made progress. */
static bool catch_up_pass(struct mender *m)
{
	struct store *st = m->st;
	uint64_t before, after;
	GArray *pieces;

	g_mutex_lock(&st->lock);
	before = stale_written_blocks(st);
	if (before)
		begin_task(m, task_now(st), before);
	g_mutex_unlock(&st->lock);
	if (!before)
		return false;
	pieces = inventory_pieces(st, want_stale_written, NULL);
	for (guint i = 0; i < pieces->len && !m->stopping; i++) {
		const struct piece *p = &g_array_index(pieces, struct piece, i);
		struct mend_result res;

		mender_mend_piece(st, p, false, &res);
		g_mutex_lock(&st->lock);
		m->task_copied += res.bytes;
		g_mutex_unlock(&st->lock);
		if (!throttle(m, res.bytes, st->opt.rebuild_rate ? st->opt.rebuild_rate : DEFAULT_REBUILD_RATE))
			break;
	}
	g_array_free(pieces, TRUE);
	g_mutex_lock(&st->lock);
	if (!m->stopping)
		forget_unused_stale(st);
	after = stale_written_blocks(st);
	g_mutex_unlock(&st->lock);
	return after < before;
}

/* ---- the worker ------------------------------------------------------------------- */

static unsigned int heal_delay(const struct store *st)
{
	if (st->opt.heal_delay < 0)
		return 0;
	return st->opt.heal_delay ? (unsigned int)st->opt.heal_delay : DEFAULT_HEAL_DELAY;
}

static bool writable(struct store *st)
{
	return !st->opt.read_only && !st->broken;
}

static void reconnect_job(gpointer data, gpointer user_data)
{
	struct store *st = user_data;
	uint32_t k = GPOINTER_TO_UINT(data) - 1;

	g_mutex_lock(&st->lock);
	if (writable(st))
		members_reconnect_one(st, k);
	else
		st->dev[k].reconnecting = false; /* remounted read-only, or broken, meanwhile */
	g_mutex_unlock(&st->lock);
}

/* Lock held: start the attempts that are due. */
static void reconnect_due(struct mender *m)
{
	uint32_t due = members_to_reconnect(m->st);

	for (uint32_t k = 0; due; k++, due >>= 1)
		if (due & 1)
			g_thread_pool_push(m->reconnector, GUINT_TO_POINTER(k + 1), NULL);
}

static gpointer mender_main(gpointer data)
{
	struct mender *m = data;
	struct store *st = m->st;

	g_mutex_lock(&st->lock);
	while (!m->stopping) {
		bool progress = false, stale, scrubbing;

		m->kicked = false;
		if (writable(st)) {
			reconnect_due(m);
			members_heal(st, heal_delay(st));
			members_drain(st);
		}
		stale = writable(st) && stale_written_blocks(st);
		scrubbing = writable(st) && st->scrub.state == SCRUB_RUNNING;
		finish_returning(st);
		g_mutex_unlock(&st->lock);
		if (stale) {
			progress = catch_up_pass(m);
			/* Stale blocks freed since wait for the commit that
			 * frees them; then they are forgotten. */
			if (!progress && !m->stopping)
				store_sync_frees(st);
		} else if (scrubbing) {
			scrub_run(st);
			progress = true;
		}
		g_mutex_lock(&st->lock);
		if (writable(st) && members_drain(st))
			progress = true;
		if (!stale_written_blocks(st) && !members_leaving(st))
			m->task = MEND_IDLE;
		finish_returning(st);
		/* Stale blocks no copy can give (lost) are tried again, but
		 * less and less often, so the log is not flooded. */
		m->fruitless = progress || !stale ? 0 : MIN(m->fruitless + 1, 6);
		if (!progress && !m->kicked && !m->stopping)
			g_cond_wait_until(&m->wake, &st->lock,
					  g_get_monotonic_time() + IDLE_WAKE_US * (1 << m->fruitless));
		if (st->scrub.state == SCRUB_RUNNING && !writable(st))
			progress = false; /* a broken store scrubs no more */
	}
	g_mutex_unlock(&st->lock);
	return NULL;
}

int mender_start(struct store *st)
{
	struct mender *m = g_new0(struct mender, 1);

	m->st = st;
	g_cond_init(&m->wake);
	m->kc = dm_kcopyd_client_create(COPIER_PAGES);
	if (!m->kc) {
		int err = -errno;

		g_cond_clear(&m->wake);
		g_free(m);
		return err;
	}
	/* One attempt at a time: exports are few, and waiting is the norm. */
	m->reconnector = g_thread_pool_new(reconnect_job, st, 1, FALSE, NULL);
	st->mender = m;
	m->thread = g_thread_new("dmiofs-mender", mender_main, m);
	return 0;
}

void mender_stop(struct store *st)
{
	struct mender *m = st->mender;

	if (!m)
		return;
	g_mutex_lock(&st->lock);
	m->stopping = true;
	g_cond_broadcast(&m->wake);
	g_mutex_unlock(&st->lock);
	g_thread_join(m->thread);
	/* The attempt under way ends (within nbd_timeout); those queued are
	 * dropped, and tried again by the next mender, if any. */
	g_thread_pool_free(m->reconnector, TRUE, TRUE);
	g_mutex_lock(&st->lock);
	for (uint32_t k = 0; k < st->ndevices; k++)
		st->dev[k].reconnecting = false;
	g_mutex_unlock(&st->lock);
	dm_kcopyd_client_destroy(m->kc);
	g_cond_clear(&m->wake);
	st->mender = NULL;
	g_free(m);
}

void mender_kick(struct store *st)
{
	if (!st->mender)
		return;
	st->mender->kicked = true;
	g_cond_broadcast(&st->mender->wake);
}

bool mender_pace(struct store *st, uint64_t bytes, uint64_t rate)
{
	return throttle(st->mender, bytes, rate);
}

bool mender_stopping(struct store *st)
{
	return st->mender->stopping;
}

bool mender_urgent(struct store *st)
{
	return stale_written_blocks(st) > 0;
}

void mender_progress(struct store *st, struct mend_progress *p)
{
	struct mender *m = st->mender;
	double secs;
	uint64_t left;

	memset(p, 0, sizeof(*p));
	p->eta = -1;
	if (!m || m->task == MEND_IDLE)
		return;
	left = stale_written_blocks(st);
	p->task = m->task;
	p->total_bytes = m->task_total * DMIOFS_BLOCK;
	p->done_bytes = m->task_total > left ? (m->task_total - left) * DMIOFS_BLOCK : 0;
	p->copied_bytes = m->task_copied;
	secs = (double)(g_get_monotonic_time() - m->task_started) / G_USEC_PER_SEC;
	p->rate = secs > 0 ? p->done_bytes / secs : 0;
	if (p->rate > 0)
		p->eta = (double)(p->total_bytes - p->done_bytes) / p->rate;
}
