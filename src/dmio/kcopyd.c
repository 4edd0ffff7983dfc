/* kcopyd.c - the copier, libdmio's dm-kcopyd: a job copies one region to
 * several destinations (or zeroes them) in pieces.  Each piece is read from
 * the first source that yields it intact into pages of the client's own
 * pool, then written to every destination in one dm_io request.
 *
 * One thread per client drives every job: it starts pieces while the pool
 * has room, moves each piece on when its I/O completes, and runs the
 * callers' check and notify functions.  The dm_io completion thread only
 * hands finished pieces over, so no caller code runs on it and a slow
 * callback never holds up completions; and submitting a job only queues
 * it, so a notify function may submit the next job without waiting. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_POOL_PAGES 256 /* 1 MiB */
/* The pool is cut into this many pieces, so that many are in flight... */
#define PIECES_PER_POOL 8
/* ...of at most 128 KiB each: large enough that per-request costs vanish,
 * small enough that a job of a few MiB still has several pieces in flight. */
#define MAX_PIECE_PAGES 32
#define SECTORS_PER_PAGE (DMIO_PAGE_SIZE >> DMIO_SECTOR_SHIFT)

enum piece_stage { STAGE_READ, STAGE_WRITE };

struct kcopyd_job;

/* A stretch of a job on its way from a source to the destinations.  It is
 * also a slot of the pool with its pages, so a piece in flight is pool
 * memory in use and nothing is allocated per piece. */
struct kcopyd_piece {
	struct kcopyd_piece *next; /* the free list or the done queue */
	struct dm_kcopyd_client *kc;
	struct kcopyd_job *job;
	sector_t offset;           /* sectors from the start of every region */
	sector_t count;
	unsigned int source;       /* the source being read */
	enum piece_stage stage;
	unsigned long error;       /* bits of its last dm_io request */
	void *data;                /* its pages, contiguous for the check function */
	struct page_list *pages;   /* the same pages as dm_io takes them */
};

struct kcopyd_job {
	struct kcopyd_job *next;   /* the incoming, run or finished queue */
	dm_kcopyd_check_fn check;
	dm_kcopyd_notify_fn fn;
	void *context;
	unsigned int flags;
	unsigned int num_sources;  /* 0: zero the destinations */
	unsigned int num_dests;
	sector_t count;            /* of every region */
	sector_t piece_sectors;
	/* The rest belongs to the copier's thread. */
	sector_t next_offset;      /* where the next piece starts */
	unsigned int in_flight;    /* pieces started and not finished */
	bool queued;               /* on the run queue */
	bool stopped;              /* an error ended it (no IGNORE_ERROR) */
	int read_err;
	unsigned long write_err;
	struct io_region *sources, *dests; /* into regions[] */
	struct io_region regions[];        /* the sources, then the destinations */
};

struct job_queue {
	struct kcopyd_job *head, *tail;
};

struct dm_kcopyd_client {
	struct dm_io_client *io_client; /* the copier's own: its callbacks are ours alone */
	pthread_t thread;

	/* Protects the fields down to the blank line.  A leaf: never held
	 * across dm_io() or a caller's function. */
	pthread_mutex_t lock;
	pthread_cond_t wake;     /* work for the thread, or stopping */
	pthread_cond_t idle;     /* jobs fell to 0 */
	struct job_queue incoming;                /* submitted, not yet taken */
	struct kcopyd_piece *done_head, *done_tail; /* I/O finished, not yet taken */
	unsigned int jobs;       /* submitted and not yet called back */
	bool stopping;

	/* The copier's thread alone touches these once it runs. */
	struct job_queue run;    /* jobs with pieces left to start, served in turn */
	struct kcopyd_piece *free_pieces;
	unsigned int piece_pages;
	struct kcopyd_piece *pieces;
	struct page_list *links;
	void *memory;
};

/* The client whose thread this is: destroying it from its own callback
 * would wait for itself. */
static __thread const struct dm_kcopyd_client *current_copier;

/* ---- queues ---------------------------------------------------------------- */

static void job_queue_push(struct job_queue *q, struct kcopyd_job *job)
{
	job->next = NULL;
	if (q->tail)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
}

static struct kcopyd_job *job_queue_pop(struct job_queue *q)
{
	struct kcopyd_job *job = q->head;

	if (job) {
		q->head = job->next;
		if (!q->head)
			q->tail = NULL;
	}
	return job;
}

/* dm_io's callback for every request of a piece: hand the piece to the
 * copier's thread.  It runs on the dm_io completion thread, or inside dm_io()
 * on the copier's thread when no part of the request reached a device
 * (fault injection, a region beyond its device's end). */
static void piece_io_done(unsigned long error, void *context)
{
	struct kcopyd_piece *piece = context;
	struct dm_kcopyd_client *kc = piece->kc;

	piece->error = error;
	piece->next = NULL;
	pthread_mutex_lock(&kc->lock);
	if (kc->done_tail)
		kc->done_tail->next = piece;
	else
		kc->done_head = piece;
	kc->done_tail = piece;
	pthread_cond_signal(&kc->wake);
	pthread_mutex_unlock(&kc->lock);
}

/* ---- the I/O of a piece ---------------------------------------------------- */

static void piece_submit(struct kcopyd_piece *piece, struct dm_io_request *req, unsigned int num_regions,
			 struct io_region *where)
{
	int err;

	req->notify.fn = piece_io_done;
	req->notify.context = piece;
	req->client = piece->kc->io_client;
	/* With more pieces in flight than the dm_io client has request
	 * objects, this waits for one; its completion thread returns them
	 * without needing ours. */
	err = dm_io(req, num_regions, where, NULL);
	if (err) {
		/* The job was checked, so this is no caller's mistake (at worst
		 * memory ran out on the way): count it as the I/O failing. */
		dmio_log(DMIO_LOG_ERR, "kcopyd: dm_io refused a piece: %s", strerror(-err));
		piece_io_done(num_regions == DM_IO_MAX_REGIONS ? ~0UL : (1UL << num_regions) - 1, piece);
	}
}

/* The piece's stretch of a region of its job. */
static struct io_region piece_region(const struct kcopyd_piece *piece, const struct io_region *r)
{
	return (struct io_region){ r->bdev, r->sector + piece->offset, piece->count };
}

static struct dm_io_memory piece_memory(const struct kcopyd_piece *piece)
{
	return (struct dm_io_memory){ .type = DM_IO_PAGE_LIST, .offset = 0, .ptr.pl = piece->pages };
}

static void piece_read(struct kcopyd_piece *piece)
{
	struct io_region where = piece_region(piece, &piece->job->sources[piece->source]);
	struct dm_io_request req = { .bi_op = DMIO_READ, .mem = piece_memory(piece) };

	piece->stage = STAGE_READ;
	piece_submit(piece, &req, 1, &where);
}

/* One request for every destination: dm_io fans the bytes out. */
static void piece_write(struct kcopyd_piece *piece)
{
	const struct kcopyd_job *job = piece->job;
	struct io_region where[DM_IO_MAX_REGIONS];
	struct dm_io_request req = {
		.bi_op = job->num_sources ? DMIO_WRITE : DMIO_WRITE_ZEROES,
		.bi_op_flags = (job->flags & DM_KCOPYD_FUA) ? DMIO_REQ_FUA : 0,
		.mem = piece_memory(piece),
	};

	for (unsigned int i = 0; i < job->num_dests; i++)
		where[i] = piece_region(piece, &job->dests[i]);
	piece->stage = STAGE_WRITE;
	piece_submit(piece, &req, job->num_dests, where);
}

/* ---- the life of a piece (the copier's thread) ----------------------------- */

static bool job_has_pieces_left(const struct kcopyd_job *job)
{
	return !job->stopped && job->next_offset < job->count;
}

static void piece_start(struct kcopyd_piece *piece, struct kcopyd_job *job)
{
	sector_t left = job->count - job->next_offset;

	piece->job = job;
	piece->offset = job->next_offset;
	piece->count = left < job->piece_sectors ? left : job->piece_sectors;
	piece->source = 0;
	job->next_offset += piece->count;
	job->in_flight++;
	if (job->num_sources)
		piece_read(piece);
	else
		piece_write(piece);
}

static void piece_finish(struct kcopyd_piece *piece, bool failed, struct job_queue *finished)
{
	struct dm_kcopyd_client *kc = piece->kc;
	struct kcopyd_job *job = piece->job;

	if (failed && !(job->flags & DM_KCOPYD_IGNORE_ERROR))
		job->stopped = true;
	piece->job = NULL;
	piece->next = kc->free_pieces;
	kc->free_pieces = piece;
	/* A job still queued is finished by the run loop when it comes round. */
	if (--job->in_flight == 0 && !job->queued)
		job_queue_push(finished, job);
}

static bool piece_passes_check(const struct kcopyd_piece *piece)
{
	const struct kcopyd_job *job = piece->job;

	return !job->check ||
	       job->check(piece->offset, piece->data, (size_t)piece->count << DMIO_SECTOR_SHIFT, job->context) == 0;
}

/* A piece's dm_io request finished: move it on to its next step. */
static void piece_advance(struct kcopyd_piece *piece, struct job_queue *finished)
{
	struct kcopyd_job *job = piece->job;

	if (piece->stage == STAGE_WRITE) {
		job->write_err |= piece->error;
		piece_finish(piece, piece->error != 0, finished);
		return;
	}
	if (!piece->error && piece_passes_check(piece)) {
		piece_write(piece);
		return;
	}
	if (++piece->source < job->num_sources) {
		piece_read(piece);
		return;
	}
	/* No source gave it: the destinations keep what they hold there
	 * rather than receive zeroes or a rejected copy. */
	job->read_err = 1;
	piece_finish(piece, true, finished);
}

/* Start pieces while the pool has some, one per job in turn, so that jobs
 * share the pool and a long job does not hold back short ones. */
static void start_pieces(struct dm_kcopyd_client *kc, struct job_queue *finished)
{
	struct kcopyd_job *job;

	while ((job = kc->run.head)) {
		if (job_has_pieces_left(job)) {
			struct kcopyd_piece *piece = kc->free_pieces;

			if (!piece)
				return; /* a piece coming back wakes us */
			kc->free_pieces = piece->next;
			job_queue_pop(&kc->run);
			piece_start(piece, job);
			if (job_has_pieces_left(job)) {
				job_queue_push(&kc->run, job);
				continue;
			}
		} else {
			job_queue_pop(&kc->run);
		}
		job->queued = false;
		if (!job->in_flight)
			job_queue_push(finished, job);
	}
}

/* ---- the copier's thread ----------------------------------------------------- */

/* Take what was submitted and what completed; wait when there is nothing.
 * False once the client is being destroyed (it has no jobs left then). */
static bool take_work(struct dm_kcopyd_client *kc, struct kcopyd_job **jobs, struct kcopyd_piece **pieces)
{
	pthread_mutex_lock(&kc->lock);
	while (!kc->incoming.head && !kc->done_head && !kc->stopping)
		pthread_cond_wait(&kc->wake, &kc->lock);
	*jobs = kc->incoming.head;
	*pieces = kc->done_head;
	kc->incoming.head = kc->incoming.tail = NULL;
	kc->done_head = kc->done_tail = NULL;
	pthread_mutex_unlock(&kc->lock);
	return *jobs || *pieces;
}

static void call_back(struct dm_kcopyd_client *kc, struct job_queue *finished)
{
	struct kcopyd_job *job;

	while ((job = job_queue_pop(finished))) {
		job->fn(job->read_err, job->write_err, job->context);
		free(job);
		/* Counted down only now: destroy returns after the last callback. */
		pthread_mutex_lock(&kc->lock);
		if (--kc->jobs == 0)
			pthread_cond_broadcast(&kc->idle);
		pthread_mutex_unlock(&kc->lock);
	}
}

static void *copier_main(void *arg)
{
	struct dm_kcopyd_client *kc = arg;
	struct kcopyd_piece *pieces;
	struct kcopyd_job *jobs;

	current_copier = kc;
	while (take_work(kc, &jobs, &pieces)) {
		struct job_queue finished = { NULL, NULL };

		/* Pieces first: they give back the pool the new jobs need. */
		while (pieces) {
			struct kcopyd_piece *next = pieces->next;

			piece_advance(pieces, &finished);
			pieces = next;
		}
		while (jobs) {
			struct kcopyd_job *next = jobs->next;

			jobs->queued = true;
			job_queue_push(&kc->run, jobs);
			jobs = next;
		}
		start_pieces(kc, &finished);
		/* Last: I/O runs on while callers' callbacks do. */
		call_back(kc, &finished);
	}
	return NULL;
}

/* ---- jobs -------------------------------------------------------------------- */

static int check_regions(unsigned int n, const struct io_region *r, sector_t count)
{
	for (unsigned int i = 0; i < n; i++) {
		sector_t block;

		if (!r[i].bdev || r[i].count != count)
			return -EINVAL;
		if (count > (UINT64_MAX >> DMIO_SECTOR_SHIFT) || r[i].sector > (UINT64_MAX >> DMIO_SECTOR_SHIFT) - count)
			return -EINVAL;
		/* dm_io would refuse every piece of it: say so now, once. */
		block = dmio_bdev_logical_block_size(r[i].bdev) >> DMIO_SECTOR_SHIFT;
		if ((r[i].sector | count) & (block - 1))
			return -EINVAL;
	}
	return 0;
}

/* As large as the pool's pieces, no larger than any device takes in one
 * request, and a whole number of every device's logical blocks. */
static sector_t piece_sectors_for(const struct dm_kcopyd_client *kc, const struct kcopyd_job *job)
{
	sector_t sectors = (sector_t)kc->piece_pages * SECTORS_PER_PAGE;
	sector_t block = 1; /* the largest logical block: the others divide it */

	for (unsigned int i = 0; i < job->num_sources + job->num_dests; i++) {
		const struct block_device *bdev = job->regions[i].bdev;
		sector_t limit = dmio_bdev_max_io_sectors(bdev);
		sector_t lbs = dmio_bdev_logical_block_size(bdev) >> DMIO_SECTOR_SHIFT;

		if (limit < sectors)
			sectors = limit;
		if (lbs > block)
			block = lbs;
	}
	sectors -= sectors % block;
	/* A logical block never exceeds a page, so it always fits a piece. */
	return sectors ? sectors : block;
}

static int job_new(struct dm_kcopyd_client *kc, unsigned int num_sources, const struct io_region *sources,
		   unsigned int num_dests, const struct io_region *dests, unsigned int flags,
		   dm_kcopyd_check_fn check, dm_kcopyd_notify_fn fn, void *context, struct kcopyd_job **out)
{
	unsigned int all_flags = DM_KCOPYD_IGNORE_ERROR | DM_KCOPYD_FUA;
	unsigned int n = num_sources + num_dests;
	struct kcopyd_job *job;
	sector_t count;
	int err;

	if (!kc || !fn || !dests || num_dests == 0 || num_dests > DM_IO_MAX_REGIONS || (flags & ~all_flags))
		return -EINVAL;
	if (num_sources > DM_IO_MAX_REGIONS || (num_sources && !sources))
		return -EINVAL;
	count = num_sources ? sources[0].count : dests[0].count;
	err = check_regions(num_sources, sources, count);
	if (!err)
		err = check_regions(num_dests, dests, count);
	if (err)
		return err;
	job = calloc(1, sizeof(*job) + n * sizeof(job->regions[0]));
	if (!job)
		return -ENOMEM;
	job->check = check;
	job->fn = fn;
	job->context = context;
	job->flags = flags;
	job->num_sources = num_sources;
	job->num_dests = num_dests;
	job->count = count;
	job->sources = job->regions;
	job->dests = job->regions + num_sources;
	if (num_sources)
		memcpy(job->sources, sources, num_sources * sizeof(*sources));
	memcpy(job->dests, dests, num_dests * sizeof(*dests));
	job->piece_sectors = piece_sectors_for(kc, job);
	*out = job;
	return 0;
}

/* Queue the job for the copier's thread: never waits, so it is safe from a
 * callback and from any thread. */
static int job_submit(struct dm_kcopyd_client *kc, struct kcopyd_job *job)
{
	pthread_mutex_lock(&kc->lock);
	if (kc->stopping) {
		pthread_mutex_unlock(&kc->lock);
		free(job);
		return -ESHUTDOWN;
	}
	kc->jobs++;
	job_queue_push(&kc->incoming, job);
	pthread_cond_signal(&kc->wake);
	pthread_mutex_unlock(&kc->lock);
	return 0;
}

DMIO_EXPORT int dm_kcopyd_copy_checked(struct dm_kcopyd_client *kc, unsigned int num_sources,
				       const struct io_region *sources, unsigned int num_dests,
				       const struct io_region *dests, unsigned int flags, dm_kcopyd_check_fn check,
				       dm_kcopyd_notify_fn fn, void *context)
{
	struct kcopyd_job *job;
	int err;

	if (num_sources == 0) /* 0 sources means zeroing, which has its own call */
		return -EINVAL;
	err = job_new(kc, num_sources, sources, num_dests, dests, flags, check, fn, context, &job);
	return err ? err : job_submit(kc, job);
}

DMIO_EXPORT int dm_kcopyd_copy(struct dm_kcopyd_client *kc, const struct io_region *from, unsigned int num_dests,
			       const struct io_region *dests, unsigned int flags, dm_kcopyd_notify_fn fn,
			       void *context)
{
	return dm_kcopyd_copy_checked(kc, 1, from, num_dests, dests, flags, NULL, fn, context);
}

/* Zeroes go as DMIO_WRITE_ZEROES: the device makes them (fallocate on an
 * image, BLKZEROOUT on a block device) and no page of zeroes crosses memory. */
DMIO_EXPORT int dm_kcopyd_zero(struct dm_kcopyd_client *kc, unsigned int num_dests, const struct io_region *dests,
			       unsigned int flags, dm_kcopyd_notify_fn fn, void *context)
{
	struct kcopyd_job *job;
	int err = job_new(kc, 0, NULL, num_dests, dests, flags, NULL, fn, context, &job);

	return err ? err : job_submit(kc, job);
}

/* ---- clients ----------------------------------------------------------------- */

/* Cut the pool into pieces of piece_pages contiguous pages, each with the
 * page list dm_io reads and writes through.  The memory is touched now so
 * that copying never page-faults. */
static int pool_carve(struct dm_kcopyd_client *kc, unsigned int num_pages)
{
	unsigned int piece_pages = num_pages / PIECES_PER_POOL, npieces;
	size_t pages;

	if (piece_pages < 1)
		piece_pages = 1;
	if (piece_pages > MAX_PIECE_PAGES)
		piece_pages = MAX_PIECE_PAGES;
	kc->piece_pages = piece_pages;
	npieces = num_pages / piece_pages;
	pages = (size_t)npieces * piece_pages;
	if (posix_memalign(&kc->memory, DMIO_PAGE_SIZE, pages * DMIO_PAGE_SIZE)) {
		kc->memory = NULL;
		return -ENOMEM;
	}
	memset(kc->memory, 0, pages * DMIO_PAGE_SIZE);
	kc->links = calloc(pages, sizeof(*kc->links));
	kc->pieces = calloc(npieces, sizeof(*kc->pieces));
	if (!kc->links || !kc->pieces)
		return -ENOMEM;
	for (size_t p = 0; p < pages; p++) {
		kc->links[p].page = dmio_virt_to_page((char *)kc->memory + p * DMIO_PAGE_SIZE);
		kc->links[p].next = (p + 1) % piece_pages ? &kc->links[p + 1] : NULL;
	}
	for (unsigned int i = npieces; i-- > 0;) {
		struct kcopyd_piece *piece = &kc->pieces[i];

		piece->kc = kc;
		piece->pages = &kc->links[(size_t)i * piece_pages];
		piece->data = dmio_page_address(piece->pages->page);
		piece->next = kc->free_pieces;
		kc->free_pieces = piece;
	}
	return 0;
}

static void client_free_memory(struct dm_kcopyd_client *kc)
{
	free(kc->pieces);
	free(kc->links);
	free(kc->memory);
	free(kc);
}

DMIO_EXPORT struct dm_kcopyd_client *dm_kcopyd_client_create(unsigned int num_pages)
{
	struct dm_kcopyd_client *kc = calloc(1, sizeof(*kc));
	int err;

	if (!kc) {
		errno = ENOMEM;
		return NULL;
	}
	err = pool_carve(kc, num_pages ? num_pages : DEFAULT_POOL_PAGES);
	if (err) {
		client_free_memory(kc);
		errno = -err;
		return NULL;
	}
	/* The pieces' pages are page-aligned, so dm_io needs no bounce pages
	 * of its own beyond its floor. */
	kc->io_client = dm_io_client_create(0);
	if (!kc->io_client) {
		err = errno;
		client_free_memory(kc);
		errno = err;
		return NULL;
	}
	pthread_mutex_init(&kc->lock, NULL);
	pthread_cond_init(&kc->wake, NULL);
	pthread_cond_init(&kc->idle, NULL);
	err = pthread_create(&kc->thread, NULL, copier_main, kc);
	if (err) {
		pthread_cond_destroy(&kc->idle);
		pthread_cond_destroy(&kc->wake);
		pthread_mutex_destroy(&kc->lock);
		dm_io_client_destroy(kc->io_client);
		client_free_memory(kc);
		errno = err;
		return NULL;
	}
	return kc;
}

DMIO_EXPORT void dm_kcopyd_client_destroy(struct dm_kcopyd_client *kc)
{
	if (!kc)
		return;
	if (current_copier == kc) {
		dmio_log(DMIO_LOG_ERR, "dm_kcopyd_client_destroy called from its own callback: refused");
		return;
	}
	pthread_mutex_lock(&kc->lock);
	while (kc->jobs)
		pthread_cond_wait(&kc->idle, &kc->lock);
	kc->stopping = true;
	pthread_cond_signal(&kc->wake);
	pthread_mutex_unlock(&kc->lock);
	pthread_join(kc->thread, NULL);
	/* Every piece is back: its job called back only once it was. */
	dm_io_client_destroy(kc->io_client);
	pthread_cond_destroy(&kc->idle);
	pthread_cond_destroy(&kc->wake);
	pthread_mutex_destroy(&kc->lock);
	client_free_memory(kc);
}
