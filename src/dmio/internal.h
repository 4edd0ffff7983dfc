/* internal.h - libdmio's private structures, shared by its files only. */
#ifndef DMIO_INTERNAL_H
#define DMIO_INTERNAL_H

#include <libaio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/uio.h>

#include <glib.h>

#include "dmio.h"

#define DMIO_EXPORT __attribute__((visibility("default")))

/* ---- messages (log.c) --------------------------------------------------- */

void dmio_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- object pools (pool.c) ---------------------------------------------- */

/* A free list of same-sized objects allocated once and touched up front, so
 * the I/O path takes memory without faulting or calling malloc.  The caller
 * serialises access (the client's lock). */
struct obj_pool {
	void *free;          /* singly linked through each object's first word */
	size_t obj_size;
	size_t align;
	unsigned int total;  /* objects owned, free or in use */
	unsigned int nfree;
	unsigned int target; /* total the pool is converging to */
};

void pool_init(struct obj_pool *pool, size_t obj_size, size_t align);
int pool_resize(struct obj_pool *pool, unsigned int target);
/* Set the target without allocating; surplus free objects are freed. */
void pool_set_target(struct obj_pool *pool, unsigned int target);
/* Allocate objects without touching the pool (so without its lock), then
 * hand them over under the lock. */
void *pool_alloc_chain(const struct obj_pool *pool, unsigned int count, unsigned int *made);
void pool_adopt_chain(struct obj_pool *pool, void *chain);
void *pool_get(struct obj_pool *pool);
void pool_put(struct obj_pool *pool, void *obj);
/* Frees every object; returns how many were still in use (leaked). */
unsigned int pool_destroy(struct obj_pool *pool);

/* ---- memory cursor (memory.c) ------------------------------------------- */

/* A position in a caller's memory description: the same walk serves the
 * page-list, bio_vec, vm and kmem paths. */
struct mem_cursor {
	enum dm_io_mem_type type;
	union {
		struct page_list *pl;
		struct bio_vec *bv;
		char *addr;
	} p;
	size_t off; /* bytes into the current element */
};

void mem_cursor_init(struct mem_cursor *cur, const struct dm_io_memory *mem);
/* The contiguous span at the cursor; *len is SIZE_MAX for vm/kmem. */
void mem_cursor_peek(struct mem_cursor *cur, char **addr, size_t *len);
void mem_cursor_advance(struct mem_cursor *cur, size_t n);
void mem_cursor_copy_out(struct mem_cursor *cur, const char *src, size_t n); /* src -> memory */
void mem_cursor_copy_in(struct mem_cursor *cur, char *dst, size_t n);        /* memory -> dst */
void mem_cursor_zero(struct mem_cursor *cur, size_t n);
/* 0 if the memory can supply `bytes`, -EINVAL if it visibly cannot. */
int mem_check(const struct dm_io_memory *mem, uint64_t bytes);

/* ---- fault injection (fault.c) ------------------------------------------ */

struct fault_rule;

struct fault_set {
	pthread_mutex_t lock;
	atomic_uint nrules; /* read without the lock on the I/O path */
	struct fault_rule *head;
	int next_id;
};

/* Sector ranges to corrupt in one piece; more rules than this widen the
 * last range to cover them. */
#define FAULT_MAX_CORRUPT 4

struct fault_range {
	sector_t first, end;
};

/* What the rules decided for one piece of I/O. */
struct fault_verdict {
	bool fail;          /* complete with -EIO, skip the device */
	bool drop;          /* complete as written, skip the device */
	unsigned int delay_ms;
	unsigned int ncorrupt;
	struct fault_range corrupt[FAULT_MAX_CORRUPT]; /* sectors to corrupt when read */
};

void fault_set_init(struct fault_set *set);
void fault_set_destroy(struct fault_set *set);
void dmio_fault_clear_set(struct fault_set *set);
void fault_check(struct fault_set *set, unsigned int op, sector_t sector, sector_t count,
		 struct fault_verdict *verdict);

/* ---- devices (device.c) ------------------------------------------------- */

struct remote;

struct block_device {
	int fd;              /* -1 for a remote device */
	struct remote *remote; /* an NBD export (remote.c), or NULL */
	int access;          /* O_RDWR or O_RDONLY */
	char *path;
	bool direct;
	bool blockdev;
	sector_t sectors;
	unsigned int lbs;       /* logical block size: offsets and lengths */
	unsigned int mem_align; /* memory address and segment alignment */
	atomic_uint max_io_sectors;
	struct fault_set faults;
	atomic_uint_fast64_t reads, writes, flushes, discards, read_bytes, write_bytes, errors, injected;
	atomic_uint inflight; /* pieces on the device: a load measure */
	atomic_uint_fast64_t read_latency_us; /* moving average of read pieces' service time */
	atomic_uint pieces;   /* pieces naming the device, from build to finish */
	atomic_uint requests; /* regions of unfinished requests naming it */
	/* The write log recording what completes here, and the device's
	 * number in it.  Set and cleared under log_lock, which an append
	 * also holds, so a detach returns only once no append uses the log;
	 * read without the lock only to skip all that when it is NULL.
	 * Lock order: log_lock, then the log's own lock. */
	_Atomic(struct dmio_write_log *) log;
	uint32_t log_dev_id;
	pthread_mutex_t log_lock;
};

/* request.c: dmio_bdev_close from a callback drops its own request's hold */
void io_release_own_device(struct block_device *bdev);

/* ---- remote devices: NBD exports through libnbd (remote.c) -------------- */

struct dmio_piece;

bool remote_is_uri(const char *path);
/* Connect to the export a URI names and fill in bdev's size and limits. */
int remote_open(struct block_device *bdev, const char *uri, int access, unsigned int timeout_s);
/* Once no piece names the device any more. */
void remote_close(struct block_device *bdev);
/* Send a piece as NBD commands; it completes through the client's done
 * queue like a worker job. */
void remote_submit(struct dmio_piece *piece);
/* Is any of its connections alive?  Make new ones when none is. */
bool remote_connected(struct block_device *bdev);
int remote_reconnect(struct block_device *bdev);
void remote_disconnect(struct block_device *bdev);
void remote_set_timeout(struct block_device *bdev, unsigned int seconds);
/* A finished piece that needs one more command (a flush standing in for
 * FUA the server lacks): true when it was sent, and the piece is not done. */
bool remote_continue(struct dmio_piece *piece);

/* ---- requests, pieces and clients --------------------------------------- */

enum piece_op { PIECE_READ, PIECE_WRITE, PIECE_FLUSH, PIECE_DISCARD, PIECE_ZEROES };

/* One ranged I/O against one device: one iocb, or one worker job. */
#define DMIO_PIECE_MAX_IOV 260

struct dmio_io;

struct dmio_piece {
	struct iocb iocb;
	struct dmio_piece *next;
	struct dmio_io *io;
	struct block_device *bdev;
	unsigned int region;
	enum piece_op op;
	bool fua;
	bool on_device;  /* reached the device (counted in stats and inflight) */
	bool delayed;    /* already served its injected delay */
	uint64_t offset; /* bytes */
	size_t bytes;
	long res;        /* bytes transferred or -errno */
	struct fault_verdict fault;
	gint64 due_us;   /* when a delayed piece completes */
	gint64 start_us; /* when a piece reached the device */
	atomic_uint remote_left; /* NBD commands of the piece not yet answered */
	atomic_int remote_err;   /* the first of their errors, -errno */
	unsigned int nbounce;   /* iov[] are this many bounce pages */
	struct mem_cursor user; /* the caller's memory behind a bounce piece */
	unsigned int niov;
	struct iovec iov[DMIO_PIECE_MAX_IOV];
};

enum io_phase { PHASE_PREFLUSH, PHASE_DATA, PHASE_DONE };

struct dmio_io {
	struct dmio_io *next; /* free list or wait queue */
	struct dm_io_client *client;
	bool from_heap;
	int op;
	unsigned int flags;
	struct dm_io_memory mem;
	io_notify_fn fn;
	void *context;
	unsigned int num_regions;
	unsigned long skip;   /* regions that fail without I/O */
	atomic_uint pending;  /* dispatch guard + pieces in flight */
	atomic_ulong error_bits;
	enum io_phase phase;
	unsigned int region;  /* dispatch position within the phase */
	uint64_t region_done; /* bytes of that region already issued */
	struct mem_cursor cursor;
	struct io_region where[DM_IO_MAX_REGIONS];
};

#define DMIO_PLUG_MAX 128 /* iocbs a plugged completion thread holds back */

struct dm_io_client {
	pthread_mutex_t lock;
	pthread_cond_t io_freed;  /* a request object came back */
	pthread_cond_t idle;      /* no request active */
	struct obj_pool pieces, pages, ios;
	unsigned int active_ios;
	struct dmio_piece *done_head, *done_tail; /* finished off the aio ring */
	struct dmio_io *waitq_head, *waitq_tail;  /* waiting for pieces or pages */
	bool stopping;
	io_context_t ctx;
	unsigned int ring_size;
	int efd;                  /* aio completions and wake-ups */
	pthread_t thread;
	GThreadPool *worker;      /* discard, write-zeroes, fallback flushes */
	GQueue delayed;           /* completion thread only: sorted by due_us */
	/* A descriptor the completion thread serves too (dm_io_client_watch):
	 * changed under watch_lock, which is held while fn runs. */
	pthread_mutex_t watch_lock;
	int watch_fd;
	int epfd; /* efd and watch_fd, once a descriptor was watched; else -1 */
	dm_io_watch_fn watch_fn;
	void *watch_ctx;
	/* While the watcher runs, the pieces it starts wait here and go to
	 * io_submit together when it returns (completion thread only): one
	 * system call and one doorbell for a batch of requests. */
	bool plugged;
	unsigned int nplug;
	struct iocb *plug[DMIO_PLUG_MAX];
};

/* client.c */
bool client_on_completion_thread(const struct dm_io_client *client);
void client_wake(struct dm_io_client *client);
void client_push_done(struct dm_io_client *client, struct dmio_piece *piece);
struct dmio_io *client_get_io(struct dm_io_client *client);
void client_put_io(struct dm_io_client *client, struct dmio_io *io);
struct dmio_piece *client_get_piece(struct dm_io_client *client);
unsigned int client_get_bounce(struct dm_io_client *client, struct dmio_piece *piece, unsigned int want);
void client_put_piece(struct dm_io_client *client, struct dmio_piece *piece);
bool client_wait_for_resources(struct dm_io_client *client, struct dmio_io *io, bool at_head, bool need_pages);
bool client_queue_behind_waiters(struct dm_io_client *client, struct dmio_io *io);
void client_run_worker(struct dm_io_client *client, struct dmio_piece *piece);
void client_delay_piece(struct dm_io_client *client, struct dmio_piece *piece);

/* piece.c */
size_t piece_map_direct(struct dmio_piece *piece, const struct mem_cursor *cur, size_t max_bytes);
size_t piece_map_bounce(struct dmio_piece *piece, struct mem_cursor *cur, size_t max_bytes);
void piece_prepare_iocb(struct dmio_piece *piece, int efd);
void piece_run_sync(struct dmio_piece *piece);
void piece_complete(struct dmio_piece *piece);

/* request.c */
void io_pump(struct dmio_io *io, bool from_waitq);
/* Completion thread: submit what a plug held back. */
void io_unplug(struct dm_io_client *client);
void io_piece_done(struct dmio_io *io);

/* writelog.c: append a piece that completed on its device to the device's
 * log, if it still has one (callers test bdev->log first, unlocked). */
void writelog_note_piece(const struct dmio_piece *piece);
/* CRC32C as dmiofs stores it (FORMAT.md section 3: start 0xFFFFFFFF, no
 * final inversion), ISA-L's crc32_iscsi without ISA-L. */
uint32_t writelog_crc32c(uint32_t crc, const void *buf, size_t len);

/* seed.c */
struct dm_io_client *dmio_default_client(void);

#endif /* DMIO_INTERNAL_H */
