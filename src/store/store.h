/* store.h - the mirrored store: a mounted dmiofs file system without FUSE,
 * and mounting and unmounting it (store.c).
 *
 * Metadata lives in memory (meta.h) under one lock; every change is a set
 * of records applied to memory and appended to the log (apply.h), which a
 * committer thread writes to every device (journal.h, group commit).  File
 * data is written copy-on-write through libdmio to every copy of a chunk,
 * and referenced by the log only once every copy is on its device. */
#ifndef DMIOFS_STORE_H
#define DMIOFS_STORE_H

#include <glib.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "alloc.h"
#include "bufpool.h"
#include "devices.h"
#include "format.h"
#include "meta.h"

struct store_options {
	bool read_only;
	unsigned int commit_interval_ms; /* 0: 5000 */
	bool verbose;
	bool allow_rollback; /* mount an older checkpoint if the newest is lost (fsck -y) */
	bool no_degraded;    /* refuse to mount with a device missing */
	bool no_background;  /* no background worker (fsck): nothing copied, scrubbed or healed */
	const char *keep;    /* a split brain: keep the history of this device's part */
	const char *write_mostly; /* devices joined by ':' read only when no other copy serves */
	unsigned int nbd_timeout; /* seconds an NBD export may leave commands unanswered (0: 30) */
	uint64_t rebuild_rate; /* bytes/s for catch-up and rebuilds (0: the default) */
	struct events *events; /* where events go besides the log (events.h); may be NULL */
	struct dmio_write_log *write_log; /* record every write to it (tests: power cuts) */
	bool no_mount_checkpoint; /* tests: mount as if the checkpoint after a replay did
				   * not fit (a full metadata area) */
	int heal_delay;        /* seconds a device is away before its copies are made elsewhere
			        * (0: the default, 60; -1: at once) */
};

struct sync_waiter;
struct mender;
struct events;

/* An event loop's lane: a data client whose completion thread also
 * serves a descriptor, and whose reads and writes started on that thread
 * go through it (data_client), so each loop reaps what it started. */
#define STORE_MAX_LANES 8
#define STORE_CLIENT_PAGES 1024 /* 4 MiB of bounce pages for a data client's own I/O */
struct data_lane {
	struct store *st;
	struct dm_io_client *client; /* lane 0: st->client; the others their own */
	dm_io_watch_fn fn;
	void *ctx;
};

struct store {
	GMutex lock; /* metadata, allocator, log buffer, device states */
	struct dm_io_client *client;      /* file data (and lane 0's) */
	struct data_lane lanes[STORE_MAX_LANES]; /* the event loops' (data_serve_fd) */
	struct dm_io_client *meta_client; /* superblocks, checkpoints, the log: never behind data */
	struct dm_io_client *sync_client; /* log commits started by a sync (journal.c); its
					   * completions take the lock, so nothing else uses it */
	struct store_options opt;
	uint32_t ndevices, copies;
	uint32_t write_mostly; /* devices read only when no other copy can serve, by index */
	uint32_t line;         /* mount: the devices whose metadata is loaded (by index) */
	uint32_t discarded;    /* mount: devices of the part of a split brain not kept */
	struct sdev dev[DMIOFS_MAX_DEVICES];
	struct superblock sb; /* the file system's fields (per-device ones: device 0) */
	struct layout layout;
	struct meta meta;
	struct alloc alloc;

	/* the log */
	GByteArray *pending;   /* records applied in memory, not yet committed */
	uint64_t next_seq;     /* the seq the pending records will commit as */
	uint64_t durable_seq;  /* the newest commit on stable storage */
	uint64_t settled_seq;  /* the newest a replay applies without checking its data
				* (journal_durable): blocks freed up to it are reusable */
	uint64_t last_unordered; /* the newest unordered commit written */
	uint64_t log_pos;      /* ring offset of the next commit */
	uint32_t log_chain;    /* header CRC of the last commit (0 after a checkpoint) */
	uint64_t lazy_blocks;  /* data blocks mapped by lazy commits not yet flushed, */
	gint64 lazy_since;     /* and when the first of them landed (0: none) */
	bool log_left_out;     /* replay left commits out (their data had not landed) */
	uint64_t replay_checked; /* commits the replay applied only once their data
				  * checked: until a commit settles them, a later
				  * replay checks them again */
	uint64_t log_used;     /* ring bytes the newest checkpoint still needs */
	uint32_t ckpt_slot;    /* slot of the newest checkpoint */
	uint64_t ckpt_seq;
	bool sync_wanted, stopping;
	bool committing;       /* a commit is on its way to the devices (lock to change) */
	GCond commit_cond;     /* the committer waits for work */
	GCond landed_cond;     /* waiting for the commit on its way (committing) */
	GCond durable_cond;    /* syncs wait for the committer */
	GThread *committer;
	struct sync_waiter *waiters;
	int broken;            /* -EIO once metadata cannot be written */
	struct bufpool buffers; /* data I/O buffers */
	GThreadPool *starter;  /* runs data operations a range lock let go */
	uint64_t commits, checkpoints;
	atomic_uint repairs;   /* bad copies being rewritten (readpath.c) */
	struct mender *mender; /* the background worker (mender.h) */
	GPtrArray *drills;     /* fault drills injected (admin.c) */
	struct rec_scrub scrub; /* the scrub (scrub.c), as its records say */
	bool opened_read_only;   /* the devices were opened O_RDONLY (-o ro) */
	gint64 fault_log_second; /* ioerr.c: I/O errors logged this second, */
	unsigned int fault_log_lines, fault_log_held; /* and held back */
};

/* Mount: open and check the devices, load the newest checkpoint, replay
 * the log.  On failure *why says which device and what is wrong. */
int store_open(const char *const *paths, uint32_t n, const struct store_options *opt, struct store **out,
	       GString *why);
/* Unmount: commit, checkpoint, mark clean. */
int store_close(struct store *st);
/* mount -o remount,ro: stop the background work, checkpoint and mark the
 * devices clean, then refuse every change (EROFS) as a read-only mount
 * does; remount,rw undoes it.  A file system mounted read-only from the
 * start has its devices open read-only: -EROFS, said in why. */
int store_remount(struct store *st, bool read_only, GString *why);

#endif
