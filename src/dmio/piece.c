/* piece.c - one piece of a request: a ranged I/O on one device that fits in
 * one iocb.  Mapping the caller's memory (directly, or through bounce pages
 * where it breaks the device's alignment), running it, and finishing it:
 * copying bounced reads out, zero-filling failed reads, injecting faults,
 * recording it in its device's write log. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"

/* Drop whole trailing bytes so the piece ends on a logical block. */
static size_t trim_to_block(struct dmio_piece *piece, size_t total)
{
	size_t keep = total & ~(size_t)(piece->bdev->lbs - 1);
	size_t excess = total - keep;

	while (excess) {
		struct iovec *last = &piece->iov[piece->niov - 1];

		if (last->iov_len <= excess) {
			excess -= last->iov_len;
			piece->niov--;
		} else {
			last->iov_len -= excess;
			excess = 0;
		}
	}
	return keep;
}

size_t piece_map_direct(struct dmio_piece *piece, const struct mem_cursor *start, size_t max_bytes)
{
	struct mem_cursor cur = *start;
	uintptr_t align_mask = piece->bdev->mem_align - 1;
	size_t total = 0;

	piece->niov = 0;
	while (total < max_bytes && piece->niov < DMIO_PIECE_MAX_IOV) {
		struct iovec *last = piece->niov ? &piece->iov[piece->niov - 1] : NULL;
		char *addr;
		size_t len;

		mem_cursor_peek(&cur, &addr, &len);
		if (len > max_bytes - total)
			len = max_bytes - total;
		if (((uintptr_t)addr | len) & align_mask)
			break;
		if (last && (char *)last->iov_base + last->iov_len == addr) {
			last->iov_len += len; /* adjacent pages: one segment */
		} else {
			piece->iov[piece->niov].iov_base = addr;
			piece->iov[piece->niov].iov_len = len;
			piece->niov++;
		}
		total += len;
		mem_cursor_advance(&cur, len);
	}
	return trim_to_block(piece, total);
}

size_t piece_map_bounce(struct dmio_piece *piece, struct mem_cursor *cur, size_t max_bytes)
{
	size_t bytes = (size_t)piece->nbounce * DMIO_PAGE_SIZE;
	size_t left;

	if (bytes > max_bytes)
		bytes = max_bytes;
	bytes &= ~(size_t)(piece->bdev->lbs - 1);
	if (piece->op == PIECE_READ)
		piece->user = *cur;
	left = bytes;
	for (piece->niov = 0; left; piece->niov++) {
		struct iovec *v = &piece->iov[piece->niov];

		v->iov_len = left < DMIO_PAGE_SIZE ? left : DMIO_PAGE_SIZE;
		if (piece->op == PIECE_WRITE)
			mem_cursor_copy_in(cur, v->iov_base, v->iov_len);
		left -= v->iov_len;
	}
	if (piece->op == PIECE_READ)
		mem_cursor_advance(cur, bytes);
	return bytes;
}

void piece_prepare_iocb(struct dmio_piece *piece, int efd)
{
	int fd = piece->bdev->fd;

	switch (piece->op) {
	case PIECE_READ:
		io_prep_preadv(&piece->iocb, fd, piece->iov, (int)piece->niov, (long long)piece->offset);
		break;
	case PIECE_WRITE:
		io_prep_pwritev2(&piece->iocb, fd, piece->iov, (int)piece->niov, (long long)piece->offset,
				 piece->fua ? RWF_DSYNC : 0);
		break;
	case PIECE_FLUSH:
		io_prep_fdsync(&piece->iocb, fd);
		break;
	default:
		break;
	}
	io_set_eventfd(&piece->iocb, efd);
	piece->iocb.data = piece;
}

static int discard_or_zero(struct dmio_piece *piece)
{
	struct block_device *bdev = piece->bdev;
	uint64_t range[2] = { piece->offset, piece->bytes };
	bool zero = piece->op == PIECE_ZEROES;

	if (bdev->blockdev)
		return ioctl(bdev->fd, zero ? BLKZEROOUT : BLKDISCARD, range) ? -errno : 0;
	if (zero && !fallocate(bdev->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)piece->offset,
			       (off_t)piece->bytes))
		return 0;
	/* A punched hole reads back as zeroes, so it serves both. */
	return fallocate(bdev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)piece->offset,
			 (off_t)piece->bytes)
		       ? -errno
		       : 0;
}

/* Worker-thread side of operations libaio cannot carry. */
void piece_run_sync(struct dmio_piece *piece)
{
	int err = 0;

	if (piece->op != PIECE_FLUSH)
		err = discard_or_zero(piece);
	if (!err && (piece->op == PIECE_FLUSH || piece->fua) && fdatasync(piece->bdev->fd))
		err = -errno;
	piece->res = err ? err : (long)piece->bytes;
}

/* The byte at offset `off` of the piece's data. */
static char *iov_byte(struct dmio_piece *piece, size_t off)
{
	for (unsigned int i = 0; i < piece->niov; i++) {
		if (off < piece->iov[i].iov_len)
			return (char *)piece->iov[i].iov_base + off;
		off -= piece->iov[i].iov_len;
	}
	return NULL;
}

static bool sector_corrupted(const struct fault_verdict *v, sector_t s)
{
	for (unsigned int i = 0; i < v->ncorrupt; i++)
		if (s >= v->corrupt[i].first && s < v->corrupt[i].end)
			return true;
	return false;
}

/* Flip the low bit of the first byte of every sector a rule covers, once
 * even where rules overlap. */
static void corrupt(struct dmio_piece *piece)
{
	sector_t first = piece->offset >> DMIO_SECTOR_SHIFT;
	sector_t end = first + (piece->bytes >> DMIO_SECTOR_SHIFT);

	for (sector_t s = first; s < end; s++) {
		char *byte;

		if (!sector_corrupted(&piece->fault, s))
			continue;
		byte = iov_byte(piece, (size_t)(s - first) << DMIO_SECTOR_SHIFT);
		if (byte)
			*byte ^= 0x01;
	}
}

static void finish_read(struct dmio_piece *piece, bool ok)
{
	if (ok && piece->fault.ncorrupt)
		corrupt(piece);
	if (piece->nbounce) {
		if (ok)
			for (unsigned int i = 0; i < piece->niov; i++)
				mem_cursor_copy_out(&piece->user, piece->iov[i].iov_base, piece->iov[i].iov_len);
		else
			mem_cursor_zero(&piece->user, piece->bytes);
		return;
	}
	/* A failed read must not pass off whatever the buffer held as data. */
	if (!ok)
		for (unsigned int i = 0; i < piece->niov; i++)
			memset(piece->iov[i].iov_base, 0, piece->iov[i].iov_len);
}

/* A moving average, 1/8 of each new sample: what read balancing between
 * a local disk and a remote export goes by.  Racing updates may lose a
 * sample, which an average can spare. */
static void note_read_latency(struct block_device *bdev, gint64 us)
{
	uint64_t old = atomic_load_explicit(&bdev->read_latency_us, memory_order_relaxed);
	uint64_t now = us > 0 ? (uint64_t)us : 1;

	atomic_store_explicit(&bdev->read_latency_us, old ? (old * 7 + now + 4) / 8 : now, memory_order_relaxed);
}

void piece_complete(struct dmio_piece *piece)
{
	struct dmio_io *io = piece->io;
	struct dm_io_client *client = io->client;
	struct block_device *bdev = piece->bdev;
	bool ok = piece->res == (long)piece->bytes;

	if (piece->fault.delay_ms && !piece->delayed) {
		client_delay_piece(client, piece);
		return;
	}
	if (bdev->remote && piece->on_device && remote_continue(piece))
		return;
	if (piece->on_device)
		atomic_fetch_sub(&bdev->inflight, 1);
	if (piece->on_device && piece->op == PIECE_READ && ok)
		note_read_latency(bdev, g_get_monotonic_time() - piece->start_us);
	/* Recorded here, before the request can complete: whoever waits for
	 * it sees its pieces in the log first, so the log's order never
	 * contradicts what the caller saw.  Injected results (!on_device)
	 * reached nothing and are not recorded. */
	if (atomic_load_explicit(&bdev->log, memory_order_relaxed) && ok && piece->on_device &&
	    piece->op != PIECE_READ)
		writelog_note_piece(piece);
	if (!ok)
		atomic_fetch_add(&bdev->errors, 1);
	if (piece->op == PIECE_READ)
		finish_read(piece, ok);
	if (!ok)
		atomic_fetch_or(&io->error_bits, 1UL << piece->region);
	client_put_piece(client, piece);
	atomic_fetch_sub(&bdev->pieces, 1); /* dmio_bdev_close may free it now */
	io_piece_done(io);
}
