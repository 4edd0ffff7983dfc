/* rawdev.h - a device's bytes read (and written) by offset before any store
 * is open: local paths with pread/pwrite, NBD exports through libdmio. */
#ifndef DMIOFS_RAWDEV_H
#define DMIOFS_RAWDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmio.h"

struct rawdev {
	int fd;                    /* a local path, or -1 */
	struct block_device *bdev; /* an NBD export, or NULL */
	uint64_t bytes;
};

/* 0 or -errno.  A local path is opened O_NONBLOCK (never waits on a drive
 * without media); an NBD export read-only unless writable is asked for. */
int rawdev_open(struct rawdev *r, const char *path, bool writable);
/* 0 or -errno: all of len at off, or nothing. */
int rawdev_pread(struct rawdev *r, void *buf, size_t len, uint64_t off);
int rawdev_pwrite(struct rawdev *r, const void *buf, size_t len, uint64_t off);
/* Flush what was written; 0 or -errno. */
int rawdev_sync(struct rawdev *r);
void rawdev_close(struct rawdev *r);

#endif
