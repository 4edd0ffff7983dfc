/* journal.c - the metadata log: group commit by a committer thread, and
 * replay at mount.
 *
 * A commit is a 64-byte header (magic, seq, payload length and CRC) and
 * the records, padded to 4 KiB, written at the same place of the log ring
 * on every device in one dm-io request with PREFLUSH (so the data it
 * references is durable first) and FUA.  When the ring runs short, the
 * committer writes a checkpoint instead, which frees the ring.
 *
 * One commit is on its way at a time (st->committing).  The committer
 * thread writes them on its interval, when the log buffer fills, and
 * whenever a commit needs a wrap or a checkpoint; a sync (fsync) that
 * finds none on its way starts its own from the asking thread and is
 * answered from that write's completion (commit_here). */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "apply.h"
#include "checkpoint.h"
#include "ioerr.h"
#include "journal.h"
#include "waiter.h"

#define ROUND_UP(x, a) (((x) + (a)-1) / (a) * (a))
#define DEFAULT_INTERVAL_MS 5000
#define UNORDERED_MAX_BLOCKS 2048 /* 8 MiB of data */

struct sync_waiter {
	struct sync_waiter *next;
	uint64_t seq;
	store_sync_fn fn;
	void *ctx;
};

/* ---- writing --------------------------------------------------------------- */

/* A commit between taking the pending records and knowing it durable. */
struct commit {
	struct store *st;
	struct log_header h;
	uint8_t *buf;      /* header and records, padded to blocks */
	size_t total;
	uint64_t pos;      /* where it goes in the ring */
	uint64_t skipped;  /* ring bytes a wrap leaves unused before it */
	bool wrap;         /* a wrap marker goes at the old position first */
	uint64_t wrap_pos;
};

static size_t commit_bytes(size_t payload)
{
	return ROUND_UP(LOG_HEADER_BYTES + payload, DMIOFS_BLOCK);
}

/* A whole log block: the header and its payload, zero-padded. */
static uint8_t *log_block(const struct log_header *h, const uint8_t *payload, size_t len, size_t *total)
{
	uint8_t *buf;

	*total = commit_bytes(len);
	buf = dio_alloc(*total);
	if (!buf)
		return NULL;
	log_header_encode(h, buf);
	if (len) /* a wrap marker has no payload */
		memcpy(buf + LOG_HEADER_BYTES, payload, len);
	memset(buf + LOG_HEADER_BYTES + len, 0, *total - LOG_HEADER_BYTES - len);
	return buf;
}

/* Write one commit (or a wrap marker) at the ring position, on every
 * device in one request, with PREFLUSH (the data it references is durable
 * first) and FUA; no lock. */
static int write_at(struct store *st, uint64_t pos, const uint8_t *buf, size_t total, unsigned long *bits)
{
	return devs_write_same(st->meta_client, st->dev, st->ndevices, st->layout.log_offset + pos, buf, total,
			       DMIO_REQ_PREFLUSH | DMIO_REQ_FUA, bits);
}

/* Ring bytes this commit takes, the wrap it may cause included. */
static uint64_t ring_need(const struct store *st, size_t payload)
{
	uint64_t need = commit_bytes(payload);

	if (st->log_pos + need > st->layout.log_bytes)
		need += st->layout.log_bytes - st->log_pos;
	return need;
}

/* Would this commit take the ring past three quarters? */
static bool ring_short(const struct store *st, size_t payload)
{
	return st->log_used + ring_need(st, payload) > st->layout.log_bytes / 4 * 3;
}

/* Lock held.  Take the pending records as the next commit and say where
 * it goes; the caller has set st->committing.  NULL: no memory (the
 * records stay pending). */
static struct commit *commit_take(struct store *st, uint32_t flags)
{
	struct commit *c = g_new0(struct commit, 1);
	GByteArray *batch = st->pending;

	c->st = st;
	c->h = (struct log_header){ .seq = st->next_seq, .payload_bytes = batch->len, .flags = flags };
	memcpy(c->h.fs_uuid, st->sb.fs_uuid, 16);
	c->h.payload_crc = dmiofs_crc(batch->data, batch->len);
	c->buf = log_block(&c->h, batch->data, batch->len, &c->total);
	if (!c->buf) {
		g_free(c);
		return NULL;
	}
	c->pos = st->log_pos;
	if (c->pos + c->total > st->layout.log_bytes) {
		c->wrap = st->layout.log_bytes - c->pos >= DMIOFS_BLOCK;
		c->wrap_pos = c->pos;
		c->skipped = st->layout.log_bytes - c->pos;
		c->pos = 0;
	}
	st->next_seq++;
	st->pending = g_byte_array_new();
	g_byte_array_free(batch, TRUE);
	return c;
}

/* Lock held.  The commit is written (err 0) or lost: account for it and
 * free it; st->committing ends. */
static int commit_done(struct commit *c, int err, unsigned long bits)
{
	struct store *st = c->st;
	uint64_t seq = c->h.seq, end = c->pos + c->total, taken = c->skipped + c->total;

	dio_free(c->buf);
	g_free(c);
	st->committing = false;
	g_cond_broadcast(&st->landed_cond); /* not commit_cond: an idle committer need not wake */
	ioerr_fail_devices(st, bits, seq, "a metadata commit");
	if (err) {
		g_critical("metadata commit %llu failed on every device: %s; the file system is now read-only",
			   (unsigned long long)seq, g_strerror(-err));
		st->broken = -EIO;
		return err;
	}
	st->log_pos = end;
	st->log_used += taken;
	st->durable_seq = seq;
	st->commits++;
	alloc_release(&st->alloc, seq);
	return 0;
}

/* Called with the lock held, by the committer, no commit in flight;
 * drops the lock while the devices work. */
static int commit(struct store *st)
{
	unsigned long bits = 0, wrap_bits = 0;
	struct commit *c;
	int err = 0;

	st->committing = true;
	c = commit_take(st, 0);
	if (!c) {
		st->committing = false;
		return -ENOMEM;
	}
	g_mutex_unlock(&st->lock);
	if (c->wrap) {
		struct log_header wrap = { .seq = c->h.seq, .flags = LOG_WRAP };
		size_t total;
		uint8_t *block;

		memcpy(wrap.fs_uuid, st->sb.fs_uuid, 16);
		block = log_block(&wrap, NULL, 0, &total);
		err = block ? write_at(st, c->wrap_pos, block, total, &wrap_bits) : -ENOMEM;
		dio_free(block);
	}
	if (!err)
		err = write_at(st, c->pos, c->buf, c->total, &bits);
	g_mutex_lock(&st->lock);
	return commit_done(c, err, bits | wrap_bits);
}

static void wake_waiters(struct store *st);
static bool commit_here(struct store *st);

static void commit_written(int err, unsigned long bits, void *ctx)
{
	struct commit *c = ctx;
	struct store *st = c->st;

	g_mutex_lock(&st->lock);
	commit_done(c, err, bits);
	wake_waiters(st);
	if (st->waiters) /* syncs asked for while it was on its way */
		commit_here(st);
	g_mutex_unlock(&st->lock);
}

/* ---- unordered commits ----------------------------------------------------- */

/* May the pending records go out as an unordered commit, their write (FUA)
 * and a flush of every device sent at once rather than the flush first
 * (one device round trip per sync instead of two)?  A crash may then
 * leave the commit durable and the data it maps not; the replay tells by
 * the checksums in its extent records (unordered_data_landed) and drops
 * such a last commit, which nobody had been answered for.  So only file
 * records: chunks, stripes, devices and stale copies, which no checksum
 * vouches for, go ordered; and at most UNORDERED_MAX_BLOCKS mapped, the
 * most a mount may have to read back. */
static bool commit_may_be_unordered(const GByteArray *pending)
{
	const uint8_t *pos = pending->data, *end = pending->data + pending->len;
	uint64_t blocks = 0;
	struct record rec;
	int ret;

	while ((ret = rec_next(&pos, end, &rec)) > 0) {
		switch (rec.type) {
		case REC_EXTENT:
			blocks += rec.u.extent.nblocks;
			if (blocks > UNORDERED_MAX_BLOCKS)
				return false;
			break;
		case REC_INODE:
		case REC_INODE_FREE:
		case REC_LINK:
		case REC_UNLINK:
		case REC_PUNCH:
		case REC_SYMLINK:
		case REC_XATTR_SET:
		case REC_XATTR_DEL:
		case REC_FILE_ERRORS:
		case REC_NEXT_INO:
			break;
		default:
			return false;
		}
	}
	return ret == 0;
}

/* An unordered commit's two requests; the second to finish answers. */
struct unordered {
	struct commit *c;
	atomic_int left;
	atomic_int err;
	atomic_ulong bits;
};

static void unordered_part_done(int err, unsigned long bits, void *ctx)
{
	struct unordered *u = ctx;
	int none = 0;

	if (err)
		atomic_compare_exchange_strong(&u->err, &none, err);
	atomic_fetch_or(&u->bits, bits);
	if (atomic_fetch_sub(&u->left, 1) != 1)
		return;
	commit_written(atomic_load(&u->err), atomic_load(&u->bits), u->c);
	g_free(u);
}

/* Send the commit's write and a flush together; -errno when neither could
 * be sent (nothing will answer), else 0. */
static int send_unordered(struct store *st, struct commit *c)
{
	struct unordered *u = g_new0(struct unordered, 1);

	u->c = c;
	atomic_init(&u->left, 2);
	if (devs_write_same_async(st->sync_client, st->dev, st->ndevices, st->layout.log_offset + c->pos, c->buf,
				  c->total, DMIO_REQ_FUA, unordered_part_done, u)) {
		g_free(u);
		return -EIO;
	}
	if (devs_flush_async(st->sync_client, st->dev, st->ndevices, unordered_part_done, u))
		unordered_part_done(-EIO, 0, u); /* the write may still land: the commit failed all the same */
	return 0;
}

/* Lock held.  A sync was asked for: when nothing else commits and the
 * commit needs neither a checkpoint nor a wrap, write it from here and
 * answer the waiters from the completion of that write, rather than wake
 * the committer thread and have it wait for the devices (two thread
 * switches fewer for every fsync).  False: leave it to the committer. */
static bool commit_here(struct store *st)
{
	struct commit *c;
	bool unordered;
	int err;

	if (!st->sync_client || st->committing || st->stopping || st->broken || !st->pending->len ||
	    ring_short(st, st->pending->len) ||
	    st->log_pos + commit_bytes(st->pending->len) > st->layout.log_bytes)
		return false;
	unordered = commit_may_be_unordered(st->pending);
	st->committing = true;
	c = commit_take(st, unordered ? LOG_UNORDERED : 0);
	if (!c) {
		st->committing = false;
		return false;
	}
	if (unordered)
		err = send_unordered(st, c);
	else
		err = devs_write_same_async(st->sync_client, st->dev, st->ndevices, st->layout.log_offset + c->pos,
					    c->buf, c->total, DMIO_REQ_PREFLUSH | DMIO_REQ_FUA, commit_written, c);
	if (err) {
		commit_done(c, -EIO, 0); /* no device to write: broken; the committer answers */
		journal_kick(st);
	}
	return true;
}

/* Complete the waiters the durable seq covers (lock held; dropped to
 * call them). */
static void wake_waiters(struct store *st)
{
	struct sync_waiter **link = &st->waiters, *done = NULL;

	while (*link) {
		struct sync_waiter *w = *link;

		if (w->seq <= st->durable_seq || st->broken) {
			*link = w->next;
			w->next = done;
			done = w;
		} else {
			link = &w->next;
		}
	}
	g_cond_broadcast(&st->durable_cond);
	if (!done)
		return;
	g_mutex_unlock(&st->lock);
	while (done) {
		struct sync_waiter *next = done->next;

		done->fn(done->seq <= st->durable_seq ? 0 : -EIO, done->ctx);
		g_free(done);
		done = next;
	}
	g_mutex_lock(&st->lock);
}

static bool work_waiting(const struct store *st)
{
	return st->stopping || st->sync_wanted || st->pending->len >= st->layout.log_bytes / 16;
}

/* When the committer wakes: at the deadline, or sooner when the log held
 * fault lines back this second, to count them once it is over (syncs no
 * longer pass through the committer to do it). */
static gint64 wake_at(const struct store *st, gint64 deadline)
{
	if (st->fault_log_held)
		return MIN(deadline, (st->fault_log_second + 1) * G_USEC_PER_SEC);
	return deadline;
}

static gpointer committer_main(gpointer data)
{
	struct store *st = data;
	gint64 interval = (st->opt.commit_interval_ms ? st->opt.commit_interval_ms : DEFAULT_INTERVAL_MS) * 1000;

	g_mutex_lock(&st->lock);
	for (;;) {
		gint64 deadline = g_get_monotonic_time() + interval;

		while (!work_waiting(st) && g_cond_wait_until(&st->commit_cond, &st->lock, wake_at(st, deadline)))
			ioerr_say_held_back(st);
		st->sync_wanted = false;
		while (st->committing) /* one commit_here started is still on its way */
			g_cond_wait(&st->landed_cond, &st->lock);
		if (st->pending->len && !st->broken) {
			int err = ring_short(st, st->pending->len) ? checkpoint_write(st) : 1;

			/* A checkpoint that does not fit its slot (the metadata
			 * area is full): commit into the rest of the ring while it
			 * lasts, so that deleting files can make room again. */
			if (err == -ENOSPC &&
			    st->log_used + ring_need(st, st->pending->len) <= st->layout.log_bytes) {
				g_warning("the metadata area is full: no checkpoint fits; delete files to make room");
				err = 1;
			}
			if (err == 1)
				commit(st);
			else if (err)
				st->broken = -EIO;
		}
		wake_waiters(st);
		ioerr_say_held_back(st);
		if (st->stopping && (!st->pending->len || st->broken))
			break;
	}
	g_mutex_unlock(&st->lock);
	return NULL;
}

int journal_start(struct store *st)
{
	st->stopping = false;
	st->committer = g_thread_new("dmiofs-commit", committer_main, st);
	return 0;
}

/* Commit what is pending and stop the committer. */
void journal_stop(struct store *st)
{
	if (!st->committer)
		return;
	g_mutex_lock(&st->lock);
	st->stopping = true;
	g_cond_signal(&st->commit_cond);
	g_mutex_unlock(&st->lock);
	g_thread_join(st->committer);
	st->committer = NULL;
}

void journal_kick(struct store *st)
{
	st->sync_wanted = true;
	g_cond_signal(&st->commit_cond);
}

/* Lock held. */
static void sync_enqueue(struct store *st, store_sync_fn fn, void *ctx, bool *now)
{
	uint64_t target = st->pending->len ? st->next_seq : st->next_seq - 1;
	struct sync_waiter *w;

	*now = target <= st->durable_seq || st->broken;
	if (*now)
		return;
	w = g_new0(struct sync_waiter, 1);
	w->seq = target;
	w->fn = fn;
	w->ctx = ctx;
	w->next = st->waiters;
	st->waiters = w;
	if (!commit_here(st))
		journal_kick(st);
}

void store_sync_async(struct store *st, store_sync_fn fn, void *ctx)
{
	bool now;
	int broken;

	g_mutex_lock(&st->lock);
	sync_enqueue(st, fn, ctx, &now);
	broken = st->broken;
	g_mutex_unlock(&st->lock);
	if (now)
		fn(broken, ctx);
}

static void sync_woken(int err, void *ctx)
{
	waiter_done(ctx, err);
}

int store_sync(struct store *st)
{
	struct waiter w;
	int err;

	waiter_init(&w);
	store_sync_async(st, sync_woken, &w);
	err = (int)waiter_wait(&w);
	waiter_clear(&w);
	return err;
}

/* ---- replay ----------------------------------------------------------------- */

/* The commit with this seq at pos on device d, if d holds it intact: 0
 * and *payload (g_free) and *flags (LOG_WRAP: a wrap marker, no payload)
 * set, or -ENOENT. */
static int read_commit_on(struct store *st, struct sdev *d, uint64_t pos, uint64_t seq, uint8_t **payload,
			  size_t *len, uint32_t *flags)
{
	uint8_t *block = dio_alloc(DMIOFS_BLOCK), *buf = NULL;
	struct log_header h;
	size_t total;
	int found = -ENOENT;

	if (!block)
		return -ENOMEM;
	if (dev_read(st->meta_client, d, st->layout.log_offset + pos, block, DMIOFS_BLOCK) ||
	    log_header_decode(block, st->sb.fs_uuid, &h) || h.seq != seq)
		goto out;
	*flags = h.flags;
	if (h.flags & LOG_WRAP) {
		found = 0;
		goto out;
	}
	total = commit_bytes(h.payload_bytes);
	if (pos + total > st->layout.log_bytes || !(buf = dio_alloc(total)))
		goto out;
	if (!dev_read(st->meta_client, d, st->layout.log_offset + pos, buf, total) &&
	    dmiofs_crc(buf + LOG_HEADER_BYTES, h.payload_bytes) == h.payload_crc) {
		*payload = g_memdup2(buf + LOG_HEADER_BYTES, h.payload_bytes);
		*len = h.payload_bytes;
		found = 0;
	}
out:
	dio_free(buf);
	dio_free(block);
	return found;
}

static bool in_line(const struct store *st, uint32_t d)
{
	return (st->line & (1u << d)) && dev_written(&st->dev[d]);
}

/* The commit from the first device of the line being loaded that holds
 * it intact (or from `only`). */
static int read_commit(struct store *st, struct sdev *only, uint64_t pos, uint64_t seq, uint8_t **payload,
		       size_t *len, uint32_t *flags)
{
	int found = -ENOENT;

	if (only)
		return read_commit_on(st, only, pos, seq, payload, len, flags);
	for (uint32_t d = 0; d < st->ndevices && found == -ENOENT; d++)
		if (in_line(st, d))
			found = read_commit_on(st, &st->dev[d], pos, seq, payload, len, flags);
	return found;
}

/* Where the commit after one that ends at pos goes. */
static uint64_t next_commit_pos(const struct store *st, uint64_t pos)
{
	return pos + DMIOFS_BLOCK > st->layout.log_bytes ? 0 : pos;
}

/* Is there a commit (or wrap marker) seq at pos? */
static bool commit_exists(struct store *st, struct sdev *only, uint64_t pos, uint64_t seq)
{
	uint8_t *payload = NULL;
	size_t len = 0;
	uint32_t flags = 0;
	bool found = read_commit(st, only, pos, seq, &payload, &len, &flags) == 0;

	g_free(payload);
	return found;
}

/* Do the blocks extent record r maps in chunk c hold, on every copy of a
 * device in the line that is not known stale, the checksums r gives?  A
 * copy that lost the data while another kept it would be a copy that
 * silently differs: not landed either. */
static bool extent_landed(struct store *st, const struct chunk *c, const struct rec_extent *r)
{
	uint8_t *buf = dio_alloc((size_t)r->nblocks * DMIOFS_BLOCK);
	uint32_t checked = 0;
	bool landed = buf != NULL;

	for (uint32_t k = 0; landed && k < c->ncopies; k++) {
		if (!in_line(st, c->stripes[k].dev) || alloc_stale_count(c, k, r->cblock, r->nblocks))
			continue;
		if (dev_read(st->meta_client, &st->dev[c->stripes[k].dev],
			     c->stripes[k].offset + (uint64_t)r->cblock * DMIOFS_BLOCK, buf,
			     (size_t)r->nblocks * DMIOFS_BLOCK)) {
			landed = false;
			break;
		}
		for (uint32_t b = 0; landed && b < r->nblocks; b++)
			landed = dmiofs_crc(buf + (size_t)b * DMIOFS_BLOCK, DMIOFS_BLOCK) == rec_extent_csum(r, b);
		checked++;
	}
	dio_free(buf);
	return landed && checked;
}

/* An unordered commit that is the last in the log may have reached the
 * devices without the data it maps (the flush sent with it had not
 * finished): apply it only if every block its extent records map is on
 * every copy.  Nobody was answered for a commit that fails this. */
static bool unordered_data_landed(struct store *st, const uint8_t *payload, size_t len)
{
	const uint8_t *pos = payload, *end = payload + len;
	struct record rec;
	int ret;

	while ((ret = rec_next(&pos, end, &rec)) > 0) {
		const struct rec_extent *r = &rec.u.extent;
		const struct chunk *c;

		if (rec.type != REC_EXTENT)
			continue;
		c = alloc_chunk(&st->alloc, r->chunk);
		if (!c || r->nblocks > UNORDERED_MAX_BLOCKS || r->cblock > c->nblocks ||
		    r->nblocks > c->nblocks - r->cblock || !extent_landed(st, c, r))
			return false;
	}
	return ret == 0;
}

/* Follow the log from (*pos, *seq) while commits are intact, applying
 * each when apply is set; leaves *pos and *seq after the last one. */
static int walk_log(struct store *st, struct sdev *only, bool apply, uint64_t *pos, uint64_t *seq, uint64_t *used,
		    uint64_t *commits)
{
	for (;;) {
		uint8_t *payload = NULL;
		size_t len = 0;
		uint32_t flags = 0;
		int err;

		if (next_commit_pos(st, *pos) != *pos) { /* too little room left: the writer wrapped */
			*used += st->layout.log_bytes - *pos;
			*pos = 0;
		}
		err = read_commit(st, only, *pos, *seq, &payload, &len, &flags);
		if (err == -ENOENT)
			return 0;
		if (err)
			return err;
		if (flags & LOG_WRAP) {
			*used += st->layout.log_bytes - *pos;
			*pos = 0;
			continue;
		}
		if (apply && (flags & LOG_UNORDERED) &&
		    !commit_exists(st, only, next_commit_pos(st, *pos + commit_bytes(len)), *seq + 1) &&
		    !unordered_data_landed(st, payload, len)) {
			g_warning("log commit %llu is left out: the data it maps did not reach the devices before "
				  "the crash (no sync had been answered for it)",
				  (unsigned long long)*seq);
			st->log_left_out = true;
			g_free(payload);
			return 0;
		}
		err = apply ? store_apply_all(st, payload, len) : 0;
		g_free(payload);
		if (err) {
			g_critical("log commit %llu does not apply: %s", (unsigned long long)*seq, g_strerror(-err));
			return err;
		}
		*pos += commit_bytes(len);
		*used += commit_bytes(len);
		(*seq)++;
		(*commits)++;
	}
}

int journal_replay(struct store *st, uint64_t pos, uint64_t seq, uint64_t *commits)
{
	uint64_t used = 0;
	int err;

	*commits = 0;
	err = walk_log(st, NULL, true, &pos, &seq, &used, commits);
	if (err)
		return err;
	st->log_pos = pos;
	st->log_used = used;
	st->next_seq = seq;
	st->durable_seq = seq - 1;
	return 0;
}

uint64_t journal_last_seq_on(struct store *st, struct sdev *d, uint64_t pos, uint64_t seq)
{
	uint64_t used = 0, commits = 0;

	if (walk_log(st, d, false, &pos, &seq, &used, &commits))
		return 0;
	return seq - 1;
}
