/* request.c - dm_io(): checking a request, then dispatching it in phases
 * (an optional pre-flush of every region's device, then the data) as pieces,
 * and calling the notify function exactly once when the last piece is done.
 *
 * A request holds one reference of its own (the dispatch guard) while its
 * pieces are being issued, so it cannot finish before dispatch has; whoever
 * drops the last reference moves it to its next phase or completes it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "internal.h"

#define SUBMIT_BATCH 32

static bool op_moves_data(int op)
{
	return op == DMIO_READ || op == DMIO_WRITE;
}

static int check_region(const struct dm_io_request *req, const struct io_region *r)
{
	sector_t lbs_mask;

	if (!r->bdev)
		return -EINVAL;
	/* Both ends must be expressible as byte offsets. */
	if (r->count > (UINT64_MAX >> DMIO_SECTOR_SHIFT) ||
	    r->sector > (UINT64_MAX >> DMIO_SECTOR_SHIFT) - r->count)
		return -EINVAL;
	lbs_mask = (r->bdev->lbs >> DMIO_SECTOR_SHIFT) - 1;
	if (req->bi_op != DMIO_FLUSH && r->count && ((r->sector | r->count) & lbs_mask))
		return -EINVAL; /* O_DIRECT would refuse it piece by piece */
	return 0;
}

static int check_request(const struct dm_io_request *req, unsigned int num_regions, const struct io_region *where)
{
	uint64_t max_bytes = 0;

	if (!req || !where || num_regions == 0 || num_regions > DM_IO_MAX_REGIONS)
		return -EINVAL;
	if (req->bi_op < DMIO_READ || req->bi_op > DMIO_FLUSH)
		return -EINVAL;
	if (req->bi_op_flags & ~(unsigned int)(DMIO_REQ_PREFLUSH | DMIO_REQ_FUA | DMIO_REQ_SYNC))
		return -EINVAL;
	for (unsigned int i = 0; i < num_regions; i++) {
		int err = check_region(req, &where[i]);

		if (err)
			return err;
		if ((where[i].count << DMIO_SECTOR_SHIFT) > max_bytes)
			max_bytes = where[i].count << DMIO_SECTOR_SHIFT;
	}
	if (!op_moves_data(req->bi_op))
		return 0;
	if ((unsigned int)req->mem.type > DM_IO_KMEM)
		return -EINVAL;
	return mem_check(&req->mem, max_bytes);
}

/* Regions that fail without any I/O: beyond the end of their device, or a
 * write to a device opened read-only. */
static unsigned long regions_failing_early(const struct dmio_io *io)
{
	unsigned long skip = 0;

	if (io->op == DMIO_FLUSH)
		return 0;
	for (unsigned int i = 0; i < io->num_regions; i++) {
		const struct io_region *r = &io->where[i];

		if (!r->count)
			continue;
		if (r->sector + r->count > r->bdev->sectors ||
		    (io->op != DMIO_READ && r->bdev->access == O_RDONLY))
			skip |= 1UL << i;
	}
	return skip;
}

/* Requests hold each device they name, so dmio_bdev_close waits for them. */
static void io_hold_devices(struct dmio_io *io)
{
	for (unsigned int i = 0; i < io->num_regions; i++)
		atomic_fetch_add(&io->where[i].bdev->requests, 1);
}

/* The devices of the request whose callback runs on this thread: a close
 * from that callback releases them itself instead of waiting for them. */
static __thread struct block_device **completing_devs;
static __thread unsigned int completing_n;

void io_release_own_device(struct block_device *bdev)
{
	for (unsigned int i = 0; i < completing_n; i++) {
		if (completing_devs[i] == bdev) {
			atomic_fetch_sub(&bdev->requests, 1);
			completing_devs[i] = NULL;
		}
	}
}

static void io_complete(struct dmio_io *io)
{
	unsigned long bits = atomic_load(&io->error_bits);
	io_notify_fn fn = io->fn;
	void *context = io->context;
	struct block_device *devs[DM_IO_MAX_REGIONS], **outer_devs = completing_devs;
	unsigned int n = io->num_regions, outer_n = completing_n;

	for (unsigned int i = 0; i < n; i++)
		devs[i] = io->where[i].bdev;
	client_put_io(io->client, io);
	completing_devs = devs;
	completing_n = n;
	fn(bits, context);
	completing_devs = outer_devs;
	completing_n = outer_n;
	/* Released after the callback: a close elsewhere returns only once it ran. */
	for (unsigned int i = 0; i < n; i++)
		if (devs[i])
			atomic_fetch_sub(&devs[i]->requests, 1);
}

static void io_enter_phase(struct dmio_io *io, enum io_phase phase)
{
	io->phase = phase;
	io->region = 0;
	io->region_done = 0;
	mem_cursor_init(&io->cursor, &io->mem);
	atomic_store(&io->pending, 1);
}

static void io_next_phase(struct dmio_io *io)
{
	if (io->phase == PHASE_PREFLUSH && io->op != DMIO_FLUSH) {
		/* A region whose pre-flush failed gets no data: writing it
		 * would break the ordering the flush was asked to give. */
		io->skip |= atomic_load(&io->error_bits);
		io_enter_phase(io, PHASE_DATA);
		io_pump(io, false);
		return;
	}
	io->phase = PHASE_DONE;
	io_complete(io);
}

void io_piece_done(struct dmio_io *io)
{
	if (atomic_fetch_sub(&io->pending, 1) == 1)
		io_next_phase(io);
}

/* Move the dispatch position to the next region with work left in this
 * phase; false when the phase is fully issued. */
static bool io_seek_work(struct dmio_io *io)
{
	if (io->phase == PHASE_PREFLUSH)
		return io->region < io->num_regions;
	while (io->region < io->num_regions) {
		const struct io_region *r = &io->where[io->region];

		if (!(io->skip & (1UL << io->region)) && io->region_done < (r->count << DMIO_SECTOR_SHIFT))
			return true;
		io->region++;
		io->region_done = 0;
		mem_cursor_init(&io->cursor, &io->mem); /* every region starts at the same bytes */
	}
	return false;
}

static enum piece_op data_piece_op(int op)
{
	switch (op) {
	case DMIO_READ:
		return PIECE_READ;
	case DMIO_WRITE:
		return PIECE_WRITE;
	case DMIO_DISCARD:
		return PIECE_DISCARD;
	default:
		return PIECE_ZEROES;
	}
}

/* Fill piece with the next stretch of the current region.  False when it
 * needs bounce pages and none are free. */
static bool io_build_piece(struct dmio_io *io, struct dmio_piece *piece)
{
	const struct io_region *r = &io->where[io->region];
	uint64_t left;
	size_t max_bytes, bytes;

	memset(&piece->fault, 0, sizeof(piece->fault));
	piece->io = io;
	piece->bdev = r->bdev;
	atomic_fetch_add(&r->bdev->pieces, 1);
	piece->region = io->region;
	piece->fua = io->flags & DMIO_REQ_FUA;
	piece->on_device = false;
	piece->delayed = false;
	piece->nbounce = 0;
	piece->niov = 0;
	if (io->phase == PHASE_PREFLUSH) {
		piece->op = PIECE_FLUSH;
		piece->offset = 0;
		piece->bytes = 0;
		io->region++;
		return true;
	}
	piece->op = data_piece_op(io->op);
	piece->offset = (r->sector << DMIO_SECTOR_SHIFT) + io->region_done;
	left = (r->count << DMIO_SECTOR_SHIFT) - io->region_done;
	if (!op_moves_data(io->op)) { /* discard, write-zeroes: the device splits */
		piece->bytes = left;
		io->region_done += left;
		return true;
	}
	max_bytes = (size_t)atomic_load(&r->bdev->max_io_sectors) << DMIO_SECTOR_SHIFT;
	if (left < max_bytes)
		max_bytes = (size_t)left;
	bytes = piece_map_direct(piece, &io->cursor, max_bytes);
	if (bytes) {
		mem_cursor_advance(&io->cursor, bytes);
	} else {
		size_t want = (max_bytes + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE;

		if (!client_get_bounce(io->client, piece, want < DMIO_PIECE_MAX_IOV ? (unsigned int)want
										 : DMIO_PIECE_MAX_IOV)) {
			atomic_fetch_sub(&r->bdev->pieces, 1);
			return false;
		}
		bytes = piece_map_bounce(piece, &io->cursor, max_bytes);
	}
	piece->bytes = bytes;
	io->region_done += bytes;
	return true;
}

static unsigned int fault_op_of(enum piece_op op)
{
	return op == PIECE_READ ? DMIO_FAULT_READ : op == PIECE_FLUSH ? DMIO_FAULT_FLUSH : DMIO_FAULT_WRITE;
}

static void account(struct dmio_piece *piece)
{
	struct block_device *bdev = piece->bdev;

	piece->on_device = true;
	atomic_fetch_add(&bdev->inflight, 1);
	switch (piece->op) {
	case PIECE_READ:
		piece->start_us = g_get_monotonic_time();
		atomic_fetch_add(&bdev->reads, 1);
		atomic_fetch_add(&bdev->read_bytes, piece->bytes);
		break;
	case PIECE_WRITE:
		atomic_fetch_add(&bdev->writes, 1);
		atomic_fetch_add(&bdev->write_bytes, piece->bytes);
		break;
	case PIECE_FLUSH:
		atomic_fetch_add(&bdev->flushes, 1);
		break;
	default:
		atomic_fetch_add(&bdev->discards, 1);
		break;
	}
}

/* Decide where the piece goes: nowhere (an injected result), to its NBD
 * server, to the worker (operations libaio cannot carry), or into the batch
 * for io_submit.
 * Returns true when it joined the batch. */
static bool route_piece(struct dm_io_client *client, struct dmio_piece *piece)
{
	fault_check(&piece->bdev->faults, fault_op_of(piece->op), piece->offset >> DMIO_SECTOR_SHIFT,
		    piece->bytes >> DMIO_SECTOR_SHIFT, &piece->fault);
	if (piece->fault.fail || piece->fault.drop) {
		atomic_fetch_add(&piece->bdev->injected, 1);
		piece->res = piece->fault.fail ? -EIO : (long)piece->bytes;
		client_push_done(client, piece);
		return false;
	}
	account(piece);
	if (piece->bdev->remote) {
		remote_submit(piece);
		return false;
	}
	if (piece->op == PIECE_DISCARD || piece->op == PIECE_ZEROES) {
		client_run_worker(client, piece);
		return false;
	}
	piece_prepare_iocb(piece, client->efd);
	return true;
}

static void submit_batch(struct dm_io_client *client, struct iocb **batch, unsigned int *count)
{
	unsigned int done = 0, n = *count;

	while (done < n) {
		int ret = io_submit(client->ctx, (long)(n - done), batch + done);
		struct dmio_piece *piece;

		if (ret > 0) {
			done += (unsigned int)ret;
			continue;
		}
		if (ret == -EAGAIN || ret == -EINTR || ret == 0)
			continue;
		piece = batch[done]->data;
		done++;
		if (piece->op == PIECE_FLUSH && ret == -EINVAL) {
			client_run_worker(client, piece); /* no async fsync here */
			continue;
		}
		piece->res = ret;
		client_push_done(client, piece);
	}
	*count = 0;
}

void io_unplug(struct dm_io_client *client)
{
	submit_batch(client, client->plug, &client->nplug);
}

/* Is this the completion thread, running a watcher, so holding back? */
static bool plugging(const struct dm_io_client *client)
{
	return client->plugged && client_on_completion_thread(client);
}

/* The batch goes to io_submit now, or, on a plugged completion thread,
 * joins the plug (which goes first when it has no room). */
static void submit_or_plug(struct dm_io_client *client, struct iocb **batch, unsigned int *count)
{
	if (!plugging(client)) {
		submit_batch(client, batch, count);
		return;
	}
	if (client->nplug + *count > DMIO_PLUG_MAX)
		io_unplug(client);
	memcpy(client->plug + client->nplug, batch, *count * sizeof(*batch));
	client->nplug += *count;
	*count = 0;
}

void io_pump(struct dmio_io *io, bool from_waitq)
{
	struct dm_io_client *client = io->client;
	struct iocb *batch[SUBMIT_BATCH];
	unsigned int nbatch = 0;
	bool first = true;

	while (io_seek_work(io)) {
		struct dmio_piece *piece;
		bool need_pages = false;

		if (first && !from_waitq && client_queue_behind_waiters(client, io))
			return;
		first = false;
		piece = client_get_piece(client);
		if (piece && !io_build_piece(io, piece)) {
			client_put_piece(client, piece);
			piece = NULL;
			need_pages = true;
		}
		if (!piece) {
			if (plugging(client))
				io_unplug(client); /* what it holds comes back sooner */
			submit_batch(client, batch, &nbatch);
			if (client_wait_for_resources(client, io, from_waitq, need_pages))
				return; /* the completion thread resumes it */
			continue;
		}
		atomic_fetch_add(&io->pending, 1);
		if (route_piece(client, piece)) {
			batch[nbatch++] = &piece->iocb;
			if (nbatch == SUBMIT_BATCH)
				submit_batch(client, batch, &nbatch);
		}
	}
	if (!nbatch) {
		io_piece_done(io); /* drop the dispatch guard; may complete here */
		return;
	}
	/* Drop the guard before the last submission: the batch keeps the
	 * request pending, so the completion thread, not this caller, runs the
	 * callback.  Completing here instead would let callbacks that resubmit
	 * nest ever deeper on the submitter's stack. */
	atomic_fetch_sub(&io->pending, 1);
	submit_or_plug(client, batch, &nbatch);
}

/* ---- synchronous waiting ------------------------------------------------- */

struct sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	bool done;
	unsigned long bits;
};

static void sync_notify(unsigned long error, void *context)
{
	struct sync_wait *w = context;

	pthread_mutex_lock(&w->lock);
	w->bits = error;
	w->done = true;
	pthread_cond_signal(&w->done_cond);
	pthread_mutex_unlock(&w->lock);
}

/* Uninterruptible: the I/O uses the caller's memory until it is done. */
static unsigned long sync_wait_done(struct sync_wait *w)
{
	int cancel_state;

	/* Cancelling the thread here would unwind the stack the I/O uses. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->done_cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	pthread_setcancelstate(cancel_state, NULL);
	pthread_cond_destroy(&w->done_cond);
	pthread_mutex_destroy(&w->lock);
	return w->bits;
}

/* ---- the call ------------------------------------------------------------ */

static void io_start(struct dmio_io *io)
{
	io_enter_phase(io, (io->op == DMIO_FLUSH || (io->flags & DMIO_REQ_PREFLUSH)) ? PHASE_PREFLUSH : PHASE_DATA);
	if (io->op == DMIO_READ && io->skip) { /* never hand back stale memory */
		mem_cursor_zero(&io->cursor, io->where[0].count << DMIO_SECTOR_SHIFT);
		mem_cursor_init(&io->cursor, &io->mem);
	}
	io_pump(io, false);
}

DMIO_EXPORT int dm_io(struct dm_io_request *req, unsigned int num_regions, struct io_region *where,
		      unsigned long *sync_error_bits)
{
	struct dm_io_client *client;
	struct sync_wait wait;
	struct dmio_io *io;
	int err = check_request(req, num_regions, where);

	if (err)
		return err;
	if (req->bi_op == DMIO_READ && num_regions > 1) {
		/* The kernel's answer: -EIO, no I/O, no callback.  Every
		 * region counts as failed, so -EIO still means "bits set". */
		if (!req->notify.fn && sync_error_bits)
			*sync_error_bits = num_regions == DM_IO_MAX_REGIONS ? ~0UL : (1UL << num_regions) - 1;
		return -EIO;
	}
	client = req->client ? req->client : dmio_default_client();
	if (!client)
		return errno ? -errno : -ENOMEM;
	if (!req->notify.fn && client_on_completion_thread(client))
		return -EDEADLK; /* it would wait for the thread it blocks */
	io = client_get_io(client);
	if (!io)
		return -ENOMEM;
	io->client = client;
	io->op = req->bi_op;
	io->flags = req->bi_op_flags;
	io->mem = req->mem;
	io->num_regions = num_regions;
	memcpy(io->where, where, num_regions * sizeof(*where));
	io_hold_devices(io);
	io->skip = regions_failing_early(io);
	atomic_store(&io->error_bits, io->skip);
	if (req->notify.fn) {
		io->fn = req->notify.fn;
		io->context = req->notify.context;
		io_start(io);
		return 0;
	}
	pthread_mutex_init(&wait.lock, NULL);
	pthread_cond_init(&wait.done_cond, NULL);
	wait.done = false;
	io->fn = sync_notify;
	io->context = &wait;
	io_start(io);
	wait.bits = sync_wait_done(&wait);
	if (sync_error_bits)
		*sync_error_bits = wait.bits;
	return wait.bits ? -EIO : 0;
}
