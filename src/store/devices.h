/* devices.h - the devices of a file system: opening them, their
 * superblocks (two copies each), and checking that a set belongs together. */
#ifndef DMIOFS_DEVICES_H
#define DMIOFS_DEVICES_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "dmio.h"
#include "format.h"
#include "records.h"

struct sdev {
	char *path;
	struct block_device *bdev;
	uint64_t bytes;        /* what the device holds */
	struct superblock sb;  /* the newest valid copy read */
	bool sb_primary_ok, sb_backup_ok; /* the copy decodes */
	bool sb_stale;         /* both decode, but one is older: a crash between writing them */
	uint32_t state;        /* enum dev_state */
	uint64_t left_at;      /* not healthy: the newest commit it may hold */
	uint64_t generation;   /* at mount: the newest commit in its own metadata area */
	uint32_t leaving;      /* LEAVE_*: its copies are being made again elsewhere */
	uint32_t leave_target; /* the device they go to (UINT32_MAX: any) */
	gint64 away_since;     /* monotonic time it became failed or missing (self-healing) */
	bool heal_refused;     /* the others could not hold its copies: said once */
	/* An NBD export whose connection dropped: when to try again, the
	 * wait after that (doubling), and a try due or under way (on the
	 * mender's reconnect thread, without the store's lock: the device is
	 * not reused meanwhile). */
	gint64 reconnect_at;
	unsigned int reconnect_wait_s;
	bool reconnecting;
	struct rec_counters err; /* persistent error counters (ERR_*) */
	uint64_t next_read;      /* where a sequential stream on it would read next */
};

/* Is the device written (data and metadata alike)?  Healthy ones are,
 * and returning ones, while what they missed is copied to them. */
static inline bool dev_written(const struct sdev *d)
{
	return d->bdev && (d->state == DEV_HEALTHY || d->state == DEV_RETURNING);
}

/* Aligned buffers for direct I/O. */
void *dio_alloc(size_t len);
void dio_free(void *p);

/* A page list over len bytes at buf (g_free it): *offset is where buf
 * starts in its first page. */
struct page_list *page_list_of(const void *buf, size_t len, unsigned int *offset);

/* Synchronous I/O of whole blocks at byte offsets, through client. */
int dev_read(struct dm_io_client *client, struct sdev *d, uint64_t offset, void *buf, size_t len);
/* The same bytes to every device in devs that is written (dev_written),
 * in one request; *bits names the failures by index
 * into devs.  Returns -EIO only when every device failed. */
int devs_write_same(struct dm_io_client *client, struct sdev *devs, uint32_t n, uint64_t offset,
		    const void *buf, size_t len, unsigned int flags, unsigned long *bits);
/* The same, without waiting: fn(err, bits, ctx) runs once every device
 * is done, on the client's completion thread.  A nonzero return means it
 * was refused before any I/O, and fn is not called. */
typedef void (*devs_written_fn)(int err, unsigned long bits, void *ctx);
int devs_write_same_async(struct dm_io_client *client, struct sdev *devs, uint32_t n, uint64_t offset,
			  const void *buf, size_t len, unsigned int flags, devs_written_fn fn, void *ctx);
/* A flush (everything the devices completed made durable) of every device
 * written, asynchronously; fn as above.  Refused: -errno, no callback. */
int devs_flush_async(struct dm_io_client *client, struct sdev *devs, uint32_t n, devs_written_fn fn, void *ctx);

int dev_open(struct sdev *d, const char *path, int flags, GString *why);
/* The same, an NBD export giving up on a connection attempt, or dropping
 * a connection that leaves commands unanswered, after timeout_s seconds
 * (0: libdmio's default). */
int dev_open_timed(struct sdev *d, const char *path, int flags, unsigned int timeout_s, GString *why);
/* Does err say an NBD export's server is down or out of reach (refused,
 * timed out, no route, reset), rather than that something is wrong? */
bool dev_server_unreachable(int err);
/* Record the device's writes in log as device index (log NULL: nothing). */
void dev_record(struct sdev *d, struct dmio_write_log *log, uint32_t index);
void dev_close(struct sdev *d);

/* Zero the headers of both checkpoint slots and the log's first block on
 * every device of devs: what an earlier life left there could otherwise
 * look current. */
int dev_clear_metadata_headers(struct dm_io_client *client, const struct layout *l, struct sdev *devs, uint32_t n);

/* Read both superblock copies; 0 with d->sb set from the newest valid one,
 * -ENODATA when neither copy is dmiofs, -EUCLEAN when both are damaged. */
int dev_read_sb(struct dm_io_client *client, struct sdev *d, GString *why);
/* Write d's superblock (sb with this device's identity) to one copy. */
int dev_write_sb(struct dm_io_client *client, struct sdev *d, const struct superblock *sb, bool backup);

/* Check that devs (in the order given) form one file system and reorder
 * them by index into out[sb.ndevices].  Names the device and the reason. */
int devs_assemble(struct sdev *devs, uint32_t n, struct sdev *out, GString *why);

#endif
