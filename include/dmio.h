/* dmio.h - libdmio: the Linux kernel's dm-io service, in userspace, on libaio.
 *
 * A request reads one region, or writes the same bytes to up to 64 regions
 * on opened block devices or image files, synchronously or asynchronously,
 * and reports per region what failed as a bitset: bit i of the error word is
 * set exactly when region i had an I/O error, a short transfer, or lies
 * beyond the end of its device.
 *
 * Two interfaces share one engine:
 *   - the seed's six calls (dm_io_sync, dm_io_async, dm_io_sync_bvec,
 *     dm_io_async_bvec, dm_io_sync_vm, dm_io_async_vm) with dm_io_get and
 *     dm_io_put, which use a process-wide default client;
 *   - the request interface (dm_io_client_create, dm_io) in the spirit of the
 *     kernel's later one: a client per user, a request naming memory,
 *     operation and flags.
 *
 * On top of the engine, a copier (dm_kcopyd_copy) copies regions to several
 * destinations in pieces, like the kernel's dm-kcopyd; below it, a write
 * log (dmio_write_log_create) records what reaches the devices, like the
 * kernel's dm-log-writes.
 *
 * All sizes are 512-byte sectors.  See dm_io(3), dm_io_request(3),
 * dm_kcopyd(3), dmio_bdev_open(3), dmio_fault(3), dmio_write_log(3) and
 * dmio_page_alloc(3).
 */
#ifndef DMIO_H
#define DMIO_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t sector_t; /* 512-byte units, always */

#define DMIO_SECTOR_SHIFT 9
#define DMIO_SECTOR_SIZE 512u
#define DMIO_PAGE_SIZE 4096u

/* The most regions one request may name: one bit each in an unsigned long. */
#define DM_IO_MAX_REGIONS ((unsigned int)(sizeof(unsigned long) * 8))

/* ---- devices ------------------------------------------------------------ */

/* An opened block device or regular (image) file. */
struct block_device;

/* Extra open flag: use buffered I/O even where O_DIRECT would work. */
#define DMIO_OPEN_BUFFERED 0x40000000

struct block_device *dmio_bdev_open(const char *path, int flags);
/* The same, with an NBD export's timeout (see dmio_bdev_set_timeout) set
 * from the start: it bounds the connection attempt too. */
struct block_device *dmio_bdev_open_timeout(const char *path, int flags, unsigned int timeout_s);
void dmio_bdev_close(struct block_device *bdev);

const char *dmio_bdev_path(const struct block_device *bdev);
sector_t dmio_bdev_sectors(const struct block_device *bdev);
unsigned int dmio_bdev_logical_block_size(const struct block_device *bdev);
int dmio_bdev_is_direct(const struct block_device *bdev);
int dmio_bdev_is_blockdev(const struct block_device *bdev);
int dmio_bdev_is_remote(const struct block_device *bdev);
/* Does path name an NBD export (a URI dmio_bdev_open takes)? */
int dmio_bdev_path_is_remote(const char *path);
/* NBD exports: is a connection alive (1 for local devices); connect again
 * once all are dead (0, or -errno). */
int dmio_bdev_is_connected(struct block_device *bdev);
int dmio_bdev_reconnect(struct block_device *bdev);
int dmio_bdev_disconnect(struct block_device *bdev);
/* NBD exports: drop a connection whose commands go unanswered this long
 * (default DMIO_REMOTE_DEFAULT_TIMEOUT_S; 0: wait forever). */
#define DMIO_REMOTE_DEFAULT_TIMEOUT_S 30
int dmio_bdev_set_timeout(struct block_device *bdev, unsigned int seconds);
unsigned int dmio_bdev_max_io_sectors(const struct block_device *bdev);
int dmio_bdev_set_max_io_sectors(struct block_device *bdev, unsigned int sectors);

/* Counters of what reached the device.  Pieces whose result fault
 * injection decided (failed or dropped) never reach it: they count in
 * injected, and the failed ones in errors too.  inflight is the number of
 * pieces submitted and not yet completed: a load measure for read
 * balancing. */
struct dmio_bdev_stats {
	uint64_t reads, writes, flushes, discards;
	uint64_t read_bytes, write_bytes;
	uint64_t errors;   /* pieces that failed, on the device or injected */
	uint64_t injected; /* pieces failed or dropped by fault injection */
	unsigned int inflight;
	/* How long a read piece takes, from submission to completion, as a
	 * moving average (the last ~8 reads weigh most); 0 before any. */
	uint64_t read_latency_us;
};
void dmio_bdev_get_stats(const struct block_device *bdev, struct dmio_bdev_stats *stats);

/* ---- memory ------------------------------------------------------------- */

/* A 4096-byte page.  A struct page pointer is the page-aligned address of its
 * memory, so any page-aligned memory may be named as a page. */
struct page;

struct page *dmio_page_alloc(void);
void dmio_page_free(struct page *page);
void *dmio_page_address(struct page *page);
struct page *dmio_virt_to_page(const void *addr);

struct page_list {
	struct page_list *next;
	struct page *page;
};

/* One piece of memory: bv_len bytes starting bv_offset bytes into bv_page.
 * bv_offset + bv_len may exceed a page when the memory behind is contiguous. */
struct bio_vec {
	struct page *bv_page;
	unsigned int bv_len;
	unsigned int bv_offset;
};

/* ---- regions and notification ------------------------------------------- */

struct io_region {
	struct block_device *bdev;
	sector_t sector;
	sector_t count;
};

/* error: bit i set iff region i failed.  Runs exactly once per request, on
 * the client's completion thread, or inside the submitting call when no I/O
 * was in flight by the end of dispatch (e.g. every region empty).  Callbacks
 * of different requests may run at the same time; they must not block. */
typedef void (*io_notify_fn)(unsigned long error, void *context);

/* ---- the seed's calls --------------------------------------------------- */

#define DMIO_READ 0
#define DMIO_WRITE 1

int dm_io_get(unsigned int num_pages);
void dm_io_put(unsigned int num_pages);

int dm_io_sync(unsigned int num_regions, struct io_region *where, int rw,
	       struct page_list *pl, unsigned int offset, unsigned long *error_bits);
int dm_io_async(unsigned int num_regions, struct io_region *where, int rw,
		struct page_list *pl, unsigned int offset, io_notify_fn fn, void *context);
int dm_io_sync_bvec(unsigned int num_regions, struct io_region *where, int rw,
		    struct bio_vec *bvec, unsigned long *error_bits);
int dm_io_async_bvec(unsigned int num_regions, struct io_region *where, int rw,
		     struct bio_vec *bvec, io_notify_fn fn, void *context);
int dm_io_sync_vm(unsigned int num_regions, struct io_region *where, int rw,
		  void *data, unsigned long *error_bits);
int dm_io_async_vm(unsigned int num_regions, struct io_region *where, int rw,
		   void *data, io_notify_fn fn, void *context);

/* ---- the request interface ---------------------------------------------- */

struct dm_io_client;

struct dm_io_client *dm_io_client_create(unsigned int num_pages);
int dm_io_client_resize(unsigned int num_pages, struct dm_io_client *client);
void dm_io_client_destroy(struct dm_io_client *client);
/* libdmio's own: the client's completion thread also calls fn whenever fd
 * is readable, so that work arriving on fd (a FUSE session's requests)
 * is served by the thread that reaps its I/O; fn returns non-zero to stop
 * watching.  fd -1 stops, waiting for a running fn to return. */
typedef int (*dm_io_watch_fn)(void *context);
int dm_io_client_watch(struct dm_io_client *client, int fd, dm_io_watch_fn fn, void *context);

enum dm_io_mem_type {
	DM_IO_PAGE_LIST, /* ptr.pl, starting offset bytes into the first page */
	DM_IO_BVEC,      /* ptr.bvec, entries taken in array order */
	DM_IO_VMA,       /* ptr.vma, a contiguous virtual buffer */
	DM_IO_KMEM,      /* ptr.addr, a plain buffer (may be NULL when no data moves) */
};

struct dm_io_memory {
	enum dm_io_mem_type type;
	unsigned int offset; /* DM_IO_PAGE_LIST only */
	union {
		struct page_list *pl;
		struct bio_vec *bvec;
		void *vma;
		void *addr;
	} ptr;
};

struct dm_io_notify {
	io_notify_fn fn; /* NULL: the call is synchronous */
	void *context;
};

/* Operations (bi_op). */
#define DMIO_DISCARD 2      /* deallocate; device content afterwards undefined */
#define DMIO_WRITE_ZEROES 3 /* make the regions read back as zeroes */
#define DMIO_FLUSH 4        /* make completed writes durable on every region's device */

/* Flags (bi_op_flags). */
#define DMIO_REQ_PREFLUSH 0x1 /* flush each region's device before the data */
#define DMIO_REQ_FUA 0x2      /* complete only once the data is durable */
#define DMIO_REQ_SYNC 0x4     /* accepted for the kernel's sake; no effect */

struct dm_io_request {
	int bi_op;
	unsigned int bi_op_flags;
	struct dm_io_memory mem;
	struct dm_io_notify notify;
	struct dm_io_client *client; /* NULL: the process-wide default client */
};

int dm_io(struct dm_io_request *io_req, unsigned int num_regions,
	  struct io_region *where, unsigned long *sync_error_bits);

/* ---- copying regions (kcopyd) ------------------------------------------- */

/* The kernel's dm-kcopyd: a job copies a region to 1..DM_IO_MAX_REGIONS
 * destinations (or zeroes them) in pieces.  Each piece is read from the
 * first source that yields it intact into pages of the client's own pool,
 * then written to every destination in one dm_io request.
 *
 * Every region of a job has the same count; a count of 0 is an empty job.
 * A call returns 0 and the notify function then runs exactly once, on the
 * copier's thread and never inside the submitting call; or it returns a
 * negative errno (-EINVAL for bad arguments) and the function never runs.
 * Without DM_KCOPYD_IGNORE_ERROR the first error stops the job: no new piece
 * starts, those in flight finish.  A piece no source yields is not written.
 * Check and notify functions run on the copier's thread; they may submit new
 * jobs, and must not destroy their own client.  See dm_kcopyd(3). */
struct dm_kcopyd_client;

/* read_err: nonzero when some piece could not be read intact from any source;
 * write_err: bit i set iff destination i failed some write.  Runs exactly once per job. */
typedef void (*dm_kcopyd_notify_fn)(int read_err, unsigned long write_err, void *context);
/* Called for each piece after it is read from a source and before it is
 * written: sector is the piece's offset in sectors from the start of the
 * source region, data/len the bytes.  Return 0 to accept; nonzero rejects
 * this source's copy of the piece (the copier then reads that piece from the
 * next source, and counts a read error if no source is accepted). */
typedef int (*dm_kcopyd_check_fn)(sector_t sector, const void *data, size_t len, void *context);

#define DM_KCOPYD_IGNORE_ERROR 0x1 /* go on with the other pieces after an error */
#define DM_KCOPYD_FUA 0x2          /* writes complete only once durable */

/* num_pages: the pool's size in 4096-byte pages (0: 256, i.e. 1 MiB). */
struct dm_kcopyd_client *dm_kcopyd_client_create(unsigned int num_pages);
/* Waits until every job has called back. */
void dm_kcopyd_client_destroy(struct dm_kcopyd_client *kc);
int dm_kcopyd_copy(struct dm_kcopyd_client *kc, const struct io_region *from,
		   unsigned int num_dests, const struct io_region *dests, unsigned int flags,
		   dm_kcopyd_notify_fn fn, void *context);
int dm_kcopyd_copy_checked(struct dm_kcopyd_client *kc, unsigned int num_sources,
			   const struct io_region *sources, unsigned int num_dests,
			   const struct io_region *dests, unsigned int flags, dm_kcopyd_check_fn check,
			   dm_kcopyd_notify_fn fn, void *context);
int dm_kcopyd_zero(struct dm_kcopyd_client *kc, unsigned int num_dests,
		   const struct io_region *dests, unsigned int flags,
		   dm_kcopyd_notify_fn fn, void *context);

/* ---- fault injection ---------------------------------------------------- */

#define DMIO_FAULT_READ 0x1
#define DMIO_FAULT_WRITE 0x2 /* writes, discards and write-zeroes */
#define DMIO_FAULT_FLUSH 0x4

enum dmio_fault_action {
	DMIO_FAULT_EIO = 1, /* fail the I/O with EIO; nothing reaches the device */
	DMIO_FAULT_DROP,    /* writes: report success, write nothing */
	DMIO_FAULT_CORRUPT, /* reads: flip a bit in every sector read in range */
	DMIO_FAULT_DELAY,   /* complete delay_ms late */
};

struct dmio_fault {
	unsigned int ops;              /* DMIO_FAULT_READ | _WRITE | _FLUSH */
	enum dmio_fault_action action;
	sector_t sector;               /* first sector of the range */
	sector_t count;                /* sectors; 0: to the end of the device */
	unsigned int skip;             /* let the first `skip` matching I/Os pass */
	unsigned int every;            /* then act on every Nth match (0 or 1: each) */
	double probability;            /* then act with this chance (0: always) */
	unsigned int limit;            /* act at most this many times (0: no limit) */
	unsigned int delay_ms;         /* DMIO_FAULT_DELAY */
	uint64_t seed;                 /* random seed for probability (0: fixed default) */
};

int dmio_fault_add(struct block_device *bdev, const struct dmio_fault *rule);
int dmio_fault_remove(struct block_device *bdev, int id);
void dmio_fault_clear(struct block_device *bdev);
int dmio_fault_parse(const char *spec, struct dmio_fault *rule);
int64_t dmio_fault_hits(struct block_device *bdev, int id);

/* ---- recording writes (dm-log-writes) ----------------------------------- */

/* The kernel's dm-log-writes, in userspace: every write, flush, discard and
 * write-zeroes that completes successfully on an attached device is
 * appended to a file, data included, in completion order, so that a tool
 * can replay any prefix of it onto copies of the devices as they were and
 * see what a power cut at that instant would have left.  Failed and
 * dropped (fault-injected) I/O reached no device and is not recorded.
 * The file format is in dmio_write_log(3). */
struct dmio_write_log;

/* Creates (or truncates) the file; NULL with errno set on failure. */
struct dmio_write_log *dmio_write_log_create(const char *path);
/* Record the device's I/O as device dev_id; 0, -EINVAL, or -EBUSY when it
 * is already attached to a log. */
int dmio_write_log_attach(struct dmio_write_log *log, struct block_device *bdev, uint32_t dev_id);
/* Stop recording the device (dmio_bdev_close does it too). */
void dmio_write_log_detach(struct block_device *bdev);
/* Once no device is attached: close the file; 0, the first error met
 * writing it (recording stopped there), or -EBUSY (devices still attached;
 * nothing is done). */
int dmio_write_log_close(struct dmio_write_log *log);

/* ---- messages ----------------------------------------------------------- */

#define DMIO_LOG_ERR 3
#define DMIO_LOG_WARNING 4
#define DMIO_LOG_NOTICE 5

typedef void (*dmio_log_fn)(int level, const char *message, void *context);
void dmio_set_log_fn(dmio_log_fn fn, void *context);

#ifdef __cplusplus
}
#endif

#endif /* DMIO_H */
