/* testutil.h - helpers shared by libdmio's unit tests: image files in a
 * temporary folder, patterns, raw reads that bypass libdmio, and a waiter
 * for asynchronous callbacks. */
#ifndef DMIO_TESTUTIL_H
#define DMIO_TESTUTIL_H

#include <glib.h>
#include <stdint.h>

#include "dmio.h"

/* A temporary folder removed (with everything in it) by tu_tmpdir_free. */
char *tu_tmpdir_new(void);
void tu_tmpdir_free(char *dir);

/* Create (or grow) an image file of `bytes` bytes filled with `fill`. */
char *tu_image_new(const char *dir, const char *name, uint64_t bytes, int fill);

/* Image files opened as libdmio devices. */
#define TU_MAX_DEVICES 8
struct tu_devices {
	unsigned int n;
	char *path[TU_MAX_DEVICES];
	struct block_device *bdev[TU_MAX_DEVICES];
};
/* n images PREFIX0.img... in dir, of `bytes` bytes filled with `fill`,
 * opened read-write. */
void tu_devices_open(struct tu_devices *d, const char *dir, const char *prefix, unsigned int n, uint64_t bytes,
		     int fill);
/* Clear their faults and close them; the files stay with their folder. */
void tu_devices_close(struct tu_devices *d);

/* Memory descriptions of one buffer. */
struct dm_io_memory tu_kmem(void *p);
struct dm_io_memory tu_vma(void *p);

/* One dm_io() call, synchronous (bits) or with a callback. */
int tu_io_sync(struct dm_io_client *client, int op, unsigned int flags, struct dm_io_memory mem, unsigned int n,
	       struct io_region *where, unsigned long *bits);
int tu_io_async(struct dm_io_client *client, int op, unsigned int flags, struct dm_io_memory mem, unsigned int n,
		struct io_region *where, io_notify_fn fn, void *context);

/* A device's counters since a snapshot of them (inflight: as it is now). */
struct dmio_bdev_stats tu_stats_since(struct block_device *bdev, const struct dmio_bdev_stats *before);

/* Deterministic bytes that differ per seed and per offset. */
void tu_pattern(void *buf, size_t len, uint32_t seed);

/* Read or write an image directly, bypassing libdmio. */
void tu_raw_read(const char *path, uint64_t offset, void *buf, size_t len);
void tu_raw_write(const char *path, uint64_t offset, const void *buf, size_t len);

/* Page-aligned memory (free()). */
void *tu_aligned(size_t len);
/* The image holds want[0, len) at offset / len bytes of byte there. */
void tu_assert_image_holds(const char *path, uint64_t offset, const void *want, size_t len);
void tu_assert_image_filled(const char *path, uint64_t offset, int byte, size_t len);
/* Every byte of mem[0, len) is byte (names the first that is not). */
void tu_assert_bytes(const void *mem, int byte, size_t len);

/* Page lists of freshly allocated pages. */
struct page_list *tu_page_list_new(unsigned int pages);
void tu_page_list_free(struct page_list *pl);

/* Run a test body in a child process: a failed assertion, a crash or a
 * hang (timeout_s) fails only that case.  The parent owns a temporary
 * folder the body is given, and removes it whatever happened. */
typedef void (*tu_body_fn)(const char *dir);
void tu_add_guarded(const char *path, tu_body_fn body, unsigned int timeout_s);
/* The same for bodies that need no folder. */
void tu_add_guarded_nodir(const char *path, void (*body)(void), unsigned int timeout_s);

/* An nbdkit server on a unix socket in dir, serving `plugin_args` (a
 * plugin and its parameters, optionally preceded by --filter=... and -r),
 * ready when tu_nbd_start returns; it dies with the process that started
 * it. */
struct tu_nbd {
	GPid pid;
	char *socket;
	char *uri; /* nbd+unix:///?socket=... */
};
void tu_nbd_start(struct tu_nbd *s, const char *dir, const char *name, const char *const *plugin_args);
/* Stop it: SIGTERM, or SIGKILL (a server that dies mid-flight). */
void tu_nbd_stop(struct tu_nbd *s, int sig);

/* Counts asynchronous completions and remembers the last error bits. */
struct tu_waiter {
	GMutex lock;
	GCond cond;
	unsigned int calls;
	unsigned long bits;
	unsigned long all_bits; /* OR of every call */
};
void tu_waiter_init(struct tu_waiter *w);
void tu_waiter_clear(struct tu_waiter *w);
void tu_waiter_notify(unsigned long error, void *context); /* an io_notify_fn */
/* Wait until `calls` callbacks have run; fails the test after 30 s. */
void tu_waiter_wait(struct tu_waiter *w, unsigned int calls);

#endif
