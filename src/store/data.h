/* data.h - file data: copy-on-write writes to every copy of a chunk,
 * checksummed reads from one copy with fail-over and repair. */
#ifndef DMIOFS_DATA_H
#define DMIOFS_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "store.h"

/* Reads hand their buffer to fn, valid only during the call. */
typedef void (*data_read_fn)(void *ctx, int err, const char *buf, size_t len);
typedef void (*data_write_fn)(void *ctx, ssize_t result);

/* Start a read or a write; fn runs exactly once, possibly before the call
 * returns, usually on libdmio's completion thread.  The write copies the
 * caller's memory before it returns. */
void data_read(struct store *st, uint64_t ino, uint64_t off, size_t size, data_read_fn fn, void *ctx);
void data_write(struct store *st, uint64_t ino, uint64_t off, const struct iovec *iov, int iovcnt,
		data_write_fn fn, void *ctx);

/* Let the thread that reaps lane's file data I/O also serve fd: it calls
 * fn whenever fd is readable (dm_io_client_watch(3)).  Lane 0 is the
 * store's data client; each other lane (below STORE_MAX_LANES) gets a
 * client of its own, so its reads and writes complete on its own thread.
 * fn may start reads and writes and anything that only touches memory,
 * never the synchronous calls below: they wait for the lanes' threads.
 * fd -1 stops the lane. */
int data_serve_fd(struct store *st, unsigned int lane, int fd, dm_io_watch_fn fn, void *ctx);

/* The client for file data started on this thread: its lane's on a lane's
 * thread, the store's data client elsewhere. */
struct dm_io_client *data_client(struct store *st);

/* Synchronous, for the metadata side. */
int data_truncate(struct store *st, uint64_t ino, uint64_t size);
int data_fallocate(struct store *st, uint64_t ino, int mode, uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE. */
int data_seek(struct store *st, uint64_t ino, uint64_t off, int whence, uint64_t *out);


#endif
