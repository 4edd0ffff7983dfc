/* journal.c - the metadata log: group commit by a committer thread, and
 * replay at mount.
 *
 * A commit is a 64-byte header (magic, seq, payload length and CRC, the
 * CRC of the header before it) and the records, padded to 4 KiB, written
 * at the same place of the log ring on every device in one dm-io request.
 * When the ring runs short, the committer writes a checkpoint instead,
 * which frees the ring.
 *
 * How a commit goes out depends on who waits for it:
 *   - lazy (LOG_LAZY): the committer's own commits, of file records and
 *     new chunks only, are plain writes with no flush: a stream of writes is not stalled
 *     by a flush of the devices every commit interval.  Nothing is
 *     answered for them, no block they free is reused, until a durable
 *     commit follows: when a sync asks, when the committer finds nothing
 *     new for a whole interval, or at the latest LAZY_MAX_US or
 *     LAZY_MAX_BLOCKS after the first.  The replay checks the data of
 *     lazy commits that no durable one follows;
 *   - ordered: PREFLUSH (the data it references, and the lazy commits
 *     before it, are durable first) and FUA;
 *   - unordered (LOG_UNORDERED): a small commit a sync writes itself, with
 *     FUA and a flush sent at once (see below).  It is answered for once
 *     both are done, but the replay checks its data, and that of the lazy
 *     commits before it, until another commit follows: the blocks they
 *     free wait for that (journal_durable).
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
/* How far lazy commits may run ahead of the last durable one: what a
 * mount after a power cut may have to read back (4 GiB of data), how old
 * the newest data a power cut can take may be (as ext4's writeback), and
 * how many freed extents wait to be reusable. */
#define LAZY_MAX_BLOCKS (1u << 20)
#define LAZY_MAX_US (30 * G_USEC_PER_SEC)
#define LAZY_MAX_FREES (1u << 18)

struct sync_waiter {
	struct sync_waiter *next;
	uint64_t seq;
	bool frees;        /* waits for seq settled, not only durable */
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
	uint64_t blocks;   /* data blocks its extent records map */
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
 * device in one request: with PREFLUSH (the data it references is durable
 * first) and FUA, or for a lazy commit plainly; no lock. */
static int write_at(struct store *st, uint64_t pos, const uint8_t *buf, size_t total, bool lazy, unsigned long *bits)
{
	return devs_write_same(st->meta_client, st->dev, st->ndevices, st->layout.log_offset + pos, buf, total,
			       lazy ? 0 : DMIO_REQ_PREFLUSH | DMIO_REQ_FUA, bits);
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
static struct commit *commit_take(struct store *st, uint32_t flags, uint64_t blocks)
{
	struct commit *c = g_new0(struct commit, 1);
	GByteArray *batch = st->pending;

	c->st = st;
	c->blocks = blocks;
	c->h = (struct log_header){ .seq = st->next_seq,
				    .payload_bytes = batch->len,
				    .flags = flags | LOG_CHAINED,
				    .prev_crc = st->log_chain };
	memcpy(c->h.fs_uuid, st->sb.fs_uuid, 16);
	c->h.payload_crc = dmiofs_crc(batch->data, batch->len);
	c->buf = log_block(&c->h, batch->data, batch->len, &c->total);
	if (!c->buf) {
		g_free(c);
		return NULL;
	}
	st->log_chain = log_header_crc(c->buf);
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
	uint64_t seq = c->h.seq, end = c->pos + c->total, taken = c->skipped + c->total, blocks = c->blocks;
	bool lazy = c->h.flags & LOG_LAZY, unordered = c->h.flags & LOG_UNORDERED;
	uint64_t settled = seq;

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
	st->commits++;
	if (lazy) {
		if (!st->lazy_since)
			st->lazy_since = g_get_monotonic_time();
		st->lazy_blocks += blocks;
		return 0;
	}
	/* The replay checks the data of an unordered commit that nothing
	 * follows, and of the lazy ones before it: it settles only the
	 * unordered one before it, if any. */
	if (unordered) {
		settled = st->last_unordered;
		st->last_unordered = seq;
	}
	journal_durable(st, seq, settled);
	return 0;
}

/* A block freed by a commit the replay may check, and reused, would make
 * that commit fail its check (its data would seem not to have landed) and
 * be left out with everything after it, though it was answered for, and
 * the blocks the state before it maps would hold other data.  So only
 * the frees of settled commits are let go. */
void journal_durable(struct store *st, uint64_t seq, uint64_t settled)
{
	st->durable_seq = seq;
	st->settled_seq = MAX(st->settled_seq, settled);
	st->lazy_since = 0;
	st->lazy_blocks = 0;
	alloc_release(&st->alloc, st->settled_seq);
}

/* Lock held: are there freed blocks a durable commit holds back, waiting
 * for one that settles it? */
static bool frees_unsettled(const struct store *st)
{
	return st->alloc.pending_blocks && st->settled_seq < st->durable_seq;
}

/* Lock held: does a waiter want frees let go that no commit has settled? */
static bool settle_asked(const struct store *st)
{
	for (const struct sync_waiter *w = st->waiters; w; w = w->next)
		if (w->frees && w->seq > st->settled_seq)
			return true;
	return false;
}

/* Called with the lock held, by the committer, no commit in flight;
 * drops the lock while the devices work.  lazy: written with no flush
 * (commit_may_be_lazy), mapping that many blocks. */
static int commit(struct store *st, bool lazy, uint64_t blocks)
{
	unsigned long bits = 0, wrap_bits = 0;
	struct commit *c;
	int err = 0;

	st->committing = true;
	c = commit_take(st, lazy ? LOG_LAZY : 0, blocks);
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
		err = block ? write_at(st, c->wrap_pos, block, total, lazy, &wrap_bits) : -ENOMEM;
		dio_free(block);
	}
	if (!err)
		err = write_at(st, c->pos, c->buf, c->total, lazy, &bits);
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

/* ---- which way a commit goes ----------------------------------------------- */

/* Do the pending records describe files and new chunks only, and how many
 * data blocks do their extent records map?  Stripes, devices and stale
 * copies make a commit that must be ordered: the replay can tell a file
 * commit whose data did not land by the checksums in its extent records,
 * and leave it out, but a change of copies is not checked that way.  A
 * new chunk is: left out with the commit, its space is free again. */
static bool file_records_only(const GByteArray *pending, uint64_t *blocks)
{
	const uint8_t *pos = pending->data, *end = pending->data + pending->len;
	struct record rec;
	int ret;

	*blocks = 0;
	while ((ret = rec_next(&pos, end, &rec)) > 0) {
		switch (rec.type) {
		case REC_EXTENT:
			*blocks += rec.u.extent.nblocks;
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
		case REC_CHUNK:
			break;
		default:
			return false;
		}
	}
	return ret == 0;
}

/* May the pending records go out as an unordered commit, their write (FUA)
 * and a flush of every device sent at once rather than the flush first
 * (one device round trip per sync instead of two)?  A crash may then
 * leave the commit durable and the data it maps not; the replay tells by
 * the checksums and drops such a last commit, which nobody had been
 * answered for.  At most UNORDERED_MAX_BLOCKS mapped, the most a mount
 * may have to read back on top of the lazy commits before it. */
static bool commit_may_be_unordered(const GByteArray *pending)
{
	uint64_t blocks;

	return file_records_only(pending, &blocks) && blocks <= UNORDERED_MAX_BLOCKS;
}

/* Lock held, by the committer.  May the pending records go out lazily
 * (no flush, no FUA; *blocks: what they map)?  Not when someone waits for
 * them (asked), not when there is nothing new (the commit is then only
 * there to make the lazy ones before it durable), and not past the
 * limits of how far lazy commits may run ahead of a durable one. */
static bool commit_may_be_lazy(const struct store *st, bool asked, uint64_t *blocks)
{
	*blocks = 0;
	if (asked || !st->pending->len || !file_records_only(st->pending, blocks))
		return false;
	if (st->lazy_blocks + *blocks > LAZY_MAX_BLOCKS || st->alloc.pending->len > LAZY_MAX_FREES)
		return false;
	return !st->lazy_since || g_get_monotonic_time() - st->lazy_since < LAZY_MAX_US;
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
 * switches fewer for every fsync).  With nothing pending but lazy commits
 * not yet flushed, the commit is empty: its flush is what the sync needs.
 * False: leave it to the committer. */
static bool commit_here(struct store *st)
{
	struct commit *c;
	bool unordered;
	int err;

	if (!st->sync_client || st->committing || st->stopping || st->broken ||
	    (!st->pending->len && !st->lazy_since && !settle_asked(st)) || ring_short(st, st->pending->len) ||
	    st->log_pos + commit_bytes(st->pending->len) > st->layout.log_bytes)
		return false;
	/* An ordered commit settles itself and all before it. */
	unordered = !settle_asked(st) && commit_may_be_unordered(st->pending);
	st->committing = true;
	c = commit_take(st, unordered ? LOG_UNORDERED : 0, 0);
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

static bool waiter_met(const struct store *st, const struct sync_waiter *w)
{
	return w->seq <= (w->frees ? st->settled_seq : st->durable_seq);
}

/* Complete the waiters the durable seq covers, or the settled one for
 * those that wait for frees (lock held; dropped to call them). */
static void wake_waiters(struct store *st)
{
	struct sync_waiter **link = &st->waiters, *done = NULL;

	while (*link) {
		struct sync_waiter *w = *link;

		if (waiter_met(st, w) || st->broken) {
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

		done->fn(waiter_met(st, done) ? 0 : -EIO, done->ctx);
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

/* Lock held, no commit on its way: write what is pending (lazily when it
 * may be), or a checkpoint when the ring runs short; with nothing pending
 * but lazy commits not flushed, an empty ordered commit flushes them. */
static void commit_or_checkpoint(struct store *st, bool asked)
{
	uint64_t blocks;
	bool lazy = commit_may_be_lazy(st, asked, &blocks);
	int err = ring_short(st, st->pending->len) ? checkpoint_write(st) : 1;

	/* A checkpoint that does not fit its slot (the metadata area is
	 * full): commit into the rest of the ring while it lasts, so that
	 * deleting files can make room again. */
	if (err == -ENOSPC && st->log_used + ring_need(st, st->pending->len) <= st->layout.log_bytes) {
		g_warning("the metadata area is full: no checkpoint fits; delete files to make room");
		err = 1;
	}
	if (err == 1)
		commit(st, lazy, blocks);
	else if (err)
		st->broken = -EIO;
}

static gpointer committer_main(gpointer data)
{
	struct store *st = data;
	gint64 interval = (st->opt.commit_interval_ms ? st->opt.commit_interval_ms : DEFAULT_INTERVAL_MS) * 1000;

	g_mutex_lock(&st->lock);
	for (;;) {
		gint64 deadline = g_get_monotonic_time() + interval;
		bool asked;

		while (!work_waiting(st) && g_cond_wait_until(&st->commit_cond, &st->lock, wake_at(st, deadline)))
			ioerr_say_held_back(st);
		asked = st->sync_wanted || st->stopping;
		st->sync_wanted = false;
		while (st->committing) /* one commit_here started is still on its way */
			g_cond_wait(&st->landed_cond, &st->lock);
		if ((st->pending->len || st->lazy_since || frees_unsettled(st) || settle_asked(st)) && !st->broken)
			commit_or_checkpoint(st, asked || st->waiters);
		wake_waiters(st);
		ioerr_say_held_back(st);
		if (st->stopping && ((!st->pending->len && !st->lazy_since) || st->broken))
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

/* Lock held.  frees: wait for the commits settled, not only durable. */
static void sync_enqueue(struct store *st, bool frees, store_sync_fn fn, void *ctx, bool *now)
{
	uint64_t target = st->pending->len ? st->next_seq : st->next_seq - 1;
	struct sync_waiter *w;

	*now = target <= (frees ? st->settled_seq : st->durable_seq) || st->broken;
	if (*now)
		return;
	w = g_new0(struct sync_waiter, 1);
	w->seq = target;
	w->frees = frees;
	w->fn = fn;
	w->ctx = ctx;
	w->next = st->waiters;
	st->waiters = w;
	if (!commit_here(st))
		journal_kick(st);
}

static void sync_async(struct store *st, bool frees, store_sync_fn fn, void *ctx)
{
	bool now;
	int broken;

	g_mutex_lock(&st->lock);
	sync_enqueue(st, frees, fn, ctx, &now);
	broken = st->broken;
	g_mutex_unlock(&st->lock);
	if (now)
		fn(broken, ctx);
}

static void sync_woken(int err, void *ctx)
{
	waiter_done(ctx, err);
}

void store_sync_async(struct store *st, store_sync_fn fn, void *ctx)
{
	sync_async(st, false, fn, ctx);
}

static int sync_wait(struct store *st, bool frees)
{
	struct waiter w;
	int err;

	waiter_init(&w);
	sync_async(st, frees, sync_woken, &w);
	err = (int)waiter_wait(&w);
	waiter_clear(&w);
	return err;
}

int store_sync(struct store *st)
{
	return sync_wait(st, false);
}

int store_sync_frees(struct store *st)
{
	return sync_wait(st, true);
}

int journal_settle_replay(struct store *st)
{
	bool unsettled;

	g_mutex_lock(&st->lock);
	unsettled = st->settled_seq < st->durable_seq;
	g_mutex_unlock(&st->lock);
	if (!unsettled)
		return 0;
	g_message("settling the %llu log commit%s whose data the replay checked, with an ordered commit",
		  (unsigned long long)st->replay_checked, st->replay_checked == 1 ? "" : "s");
	return sync_wait(st, true);
}

/* ---- replay ----------------------------------------------------------------- */

/* Where the log stands after a commit: the next one's place and seq, the
 * ring bytes used, and the CRC the next one chains to. */
struct log_cursor {
	uint64_t pos, seq, used;
	uint32_t chain;
};

/* A commit as read from a device. */
struct read_commit {
	uint8_t *payload; /* g_free */
	size_t len;
	uint32_t flags;   /* LOG_WRAP: a wrap marker, no payload */
	uint32_t crc;     /* its header's */
};

/* The commit after cursor `at` on device d, if d holds it intact and it
 * chains to the one before: 0 and *rc set, or -ENOENT. */
static int read_commit_on(struct store *st, struct sdev *d, const struct log_cursor *at, struct read_commit *rc)
{
	uint8_t *block = dio_alloc(DMIOFS_BLOCK), *buf = NULL;
	struct log_header h;
	size_t total;
	int found = -ENOENT;

	if (!block)
		return -ENOMEM;
	if (dev_read(st->meta_client, d, st->layout.log_offset + at->pos, block, DMIOFS_BLOCK) ||
	    log_header_decode(block, st->sb.fs_uuid, &h) || h.seq != at->seq)
		goto out;
	rc->flags = h.flags;
	rc->crc = h.crc;
	if (h.flags & LOG_WRAP) {
		found = 0;
		goto out;
	}
	/* Left over from before a crash, after a commit that was lost: the
	 * log went on without it. */
	if ((h.flags & LOG_CHAINED) && h.prev_crc != at->chain)
		goto out;
	total = commit_bytes(h.payload_bytes);
	if (at->pos + total > st->layout.log_bytes || !(buf = dio_alloc(total)))
		goto out;
	if (!dev_read(st->meta_client, d, st->layout.log_offset + at->pos, buf, total) &&
	    dmiofs_crc(buf + LOG_HEADER_BYTES, h.payload_bytes) == h.payload_crc) {
		rc->payload = g_memdup2(buf + LOG_HEADER_BYTES, h.payload_bytes);
		rc->len = h.payload_bytes;
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
static int read_commit(struct store *st, struct sdev *only, const struct log_cursor *at, struct read_commit *rc)
{
	int found = -ENOENT;

	if (only)
		return read_commit_on(st, only, at, rc);
	for (uint32_t d = 0; d < st->ndevices && found == -ENOENT; d++)
		if (in_line(st, d))
			found = read_commit_on(st, &st->dev[d], at, rc);
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

/* A commit no later one vouches for (a lazy one, or an unordered one that
 * is the last) may have reached the devices without the data it maps:
 * apply it only if every block its extent records map is on every copy.
 * Nobody was answered for a commit that fails this.  Its extents may be
 * in chunks it makes itself (new, so with no stale copy). */
static bool data_landed(struct store *st, const uint8_t *payload, size_t len)
{
	const uint8_t *pos = payload, *end = payload + len;
	GArray *made = g_array_new(FALSE, TRUE, sizeof(struct chunk));
	bool landed = true;
	struct record rec;
	int ret;

	while (landed && (ret = rec_next(&pos, end, &rec)) > 0) {
		const struct rec_extent *r = &rec.u.extent;
		const struct chunk *c;

		if (rec.type == REC_CHUNK) {
			struct chunk n = { .id = rec.u.chunk.id, .ncopies = MIN(rec.u.chunk.ncopies, DMIOFS_MAX_COPIES),
					   .nblocks = (uint32_t)(st->layout.chunk_bytes / DMIOFS_BLOCK) };

			memcpy(n.stripes, rec.u.chunk.stripes, sizeof(n.stripes));
			g_array_append_val(made, n);
		}
		if (rec.type != REC_EXTENT)
			continue;
		c = alloc_chunk(&st->alloc, r->chunk);
		for (guint i = 0; !c && i < made->len; i++)
			if (g_array_index(made, struct chunk, i).id == r->chunk)
				c = &g_array_index(made, struct chunk, i);
		landed = c && r->cblock <= c->nblocks && r->nblocks <= c->nblocks - r->cblock &&
			 extent_landed(st, c, r);
	}
	g_array_free(made, TRUE);
	return landed && ret == 0;
}

/* A commit read, not yet applied, and where the log stands after it. */
struct held {
	struct read_commit rc;
	struct log_cursor after;
};

static void held_clear(gpointer p)
{
	g_free(((struct held *)p)->rc.payload);
}

/* Apply the first n held commits (or the replay's walk without apply:
 * count them); *at and *commits follow. */
static int apply_held(struct store *st, bool apply, GArray *held, guint n, struct log_cursor *at,
		      uint64_t *commits)
{
	int err = 0;

	for (guint i = 0; i < n && !err; i++) {
		struct held *h = &g_array_index(held, struct held, i);

		err = apply ? store_apply_all(st, h->rc.payload, h->rc.len) : 0;
		if (err) {
			g_critical("log commit %llu does not apply: %s", (unsigned long long)at->seq,
				   g_strerror(-err));
			break;
		}
		*at = h->after;
		(*commits)++;
	}
	g_array_remove_range(held, 0, n);
	return err;
}

/* The commits no later one vouched for: each is applied if its data is
 * on the devices, and the log ends before the first that is not. */
static int apply_if_landed(struct store *st, GArray *held, struct log_cursor *at, uint64_t *commits)
{
	guint n = 0;

	if (held->len)
		g_message("checking the data of the last %u log commit%s, written after the devices' last flush",
			  held->len, held->len == 1 ? "" : "s");
	while (n < held->len) {
		struct held *h = &g_array_index(held, struct held, n);

		if (!data_landed(st, h->rc.payload, h->rc.len))
			break;
		n++;
	}
	if (n + 1 == held->len) {
		g_warning("log commit %llu is left out: the data it maps did not reach the devices before the "
			  "crash (no sync had been answered for it)",
			  (unsigned long long)(at->seq + n));
		st->log_left_out = true;
	} else if (n < held->len) {
		g_warning("log commits %llu to %llu are left out: the data they map did not reach the devices "
			  "before the crash (no sync had been answered for them)",
			  (unsigned long long)(at->seq + n), (unsigned long long)(at->seq + held->len - 1));
		st->log_left_out = true;
	}
	st->replay_checked = n;
	/* One by one, so each is checked against what the ones before it
	 * changed (a chunk, a stale copy). */
	return apply_held(st, true, held, n, at, commits);
}

/* Follow the log from *at while commits are intact and chained, applying
 * them when apply is set; leaves *at after the last one applied.  A
 * commit is held until a later one vouches that its data is durable: an
 * ordered commit (its PREFLUSH came after every earlier write), or any
 * commit after an unordered one (which was answered only once its flush
 * was done).  What no commit vouches for is checked by its data. */
static int walk_log(struct store *st, struct sdev *only, bool apply, struct log_cursor *at, uint64_t *commits)
{
	GArray *held = g_array_new(FALSE, FALSE, sizeof(struct held));
	struct log_cursor r = *at;
	int err = 0;

	g_array_set_clear_func(held, held_clear);
	for (;;) {
		struct held h = { 0 };

		if (r.pos + DMIOFS_BLOCK > st->layout.log_bytes) { /* too little room left: the writer wrapped */
			r.used += st->layout.log_bytes - r.pos;
			r.pos = 0;
		}
		err = read_commit(st, only, &r, &h.rc);
		if (err) {
			err = err == -ENOENT ? 0 : err;
			break;
		}
		if (h.rc.flags & LOG_WRAP) {
			r.used += st->layout.log_bytes - r.pos;
			r.pos = 0;
			continue;
		}
		if (held->len && (g_array_index(held, struct held, held->len - 1).rc.flags & LOG_UNORDERED) &&
		    (err = apply_held(st, apply, held, held->len, at, commits)))
			break;
		r.pos += commit_bytes(h.rc.len);
		r.used += commit_bytes(h.rc.len);
		r.seq++;
		r.chain = h.rc.crc;
		h.after = r;
		g_array_append_val(held, h);
		if (!apply || !(h.rc.flags & (LOG_LAZY | LOG_UNORDERED)))
			if ((err = apply_held(st, apply, held, held->len, at, commits)))
				break;
	}
	if (!err && held->len)
		err = apply_if_landed(st, held, at, commits);
	g_array_free(held, TRUE);
	return err;
}

int journal_replay(struct store *st, uint64_t pos, uint64_t seq, uint64_t *commits)
{
	struct log_cursor at = { .pos = pos, .seq = seq };
	int err;

	*commits = 0;
	st->replay_checked = 0;
	err = walk_log(st, NULL, true, &at, commits);
	if (err)
		return err;
	st->log_pos = at.pos;
	st->log_used = at.used;
	st->log_chain = at.chain;
	st->next_seq = at.seq;
	/* The commits applied after their data was checked are durable but
	 * not settled: the blocks they freed are free in memory already (the
	 * allocator is rebuilt from the extents), and reused before a commit
	 * settles them they would fail the next replay's check
	 * (journal_settle_replay). */
	st->durable_seq = at.seq - 1;
	st->settled_seq = at.seq - 1 - st->replay_checked;
	st->last_unordered = 0;
	return 0;
}

uint64_t journal_last_seq_on(struct store *st, struct sdev *d, uint64_t pos, uint64_t seq)
{
	struct log_cursor at = { .pos = pos, .seq = seq };
	uint64_t commits = 0;

	if (walk_log(st, d, false, &at, &commits))
		return 0;
	return at.seq - 1;
}
