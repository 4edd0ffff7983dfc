/* rawdev.c - see rawdev.h.  Scanning for superblocks and probing for other
 * file systems happen before a store exists, on whatever the user named:
 * for a local path the kernel reads it, for an NBD URI libdmio does,
 * through its default client, one synchronous request at a time. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "rawdev.h"

int rawdev_open(struct rawdev *r, const char *path, bool writable)
{
	off_t end;

	r->fd = -1;
	r->bdev = NULL;
	r->bytes = 0;
	if (dmio_bdev_path_is_remote(path)) {
		r->bdev = dmio_bdev_open(path, writable ? O_RDWR : O_RDONLY);
		if (!r->bdev)
			return -errno;
		r->bytes = dmio_bdev_sectors(r->bdev) << DMIO_SECTOR_SHIFT;
		return 0;
	}
	r->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
	if (r->fd < 0)
		return -errno;
	end = lseek(r->fd, 0, SEEK_END);
	r->bytes = end > 0 ? (uint64_t)end : 0;
	return 0;
}

/* A request on the export: whole sectors, so the caller's ranges are. */
static int remote_io(struct rawdev *r, int op, void *buf, size_t len, uint64_t off)
{
	struct io_region where = { r->bdev, off >> DMIO_SECTOR_SHIFT, len >> DMIO_SECTOR_SHIFT };
	unsigned long bits = 0;

	if ((off | len) & (DMIO_SECTOR_SIZE - 1) || off + len > r->bytes)
		return -EINVAL;
	return dm_io_sync_vm(1, &where, op, buf, &bits);
}

int rawdev_pread(struct rawdev *r, void *buf, size_t len, uint64_t off)
{
	ssize_t got;

	if (r->bdev)
		return remote_io(r, DMIO_READ, buf, len, off);
	got = pread(r->fd, buf, len, (off_t)off);
	if (got < 0)
		return -errno;
	return (size_t)got == len ? 0 : -EIO;
}

int rawdev_pwrite(struct rawdev *r, const void *buf, size_t len, uint64_t off)
{
	ssize_t put;

	if (r->bdev)
		return remote_io(r, DMIO_WRITE, (void *)buf, len, off);
	put = pwrite(r->fd, buf, len, (off_t)off);
	if (put < 0)
		return -errno;
	return (size_t)put == len ? 0 : -EIO;
}

int rawdev_sync(struct rawdev *r)
{
	struct io_region where = { r->bdev, 0, 0 };
	unsigned long bits = 0;

	if (r->bdev)
		return dm_io_sync_vm(1, &where, DMIO_FLUSH, NULL, &bits);
	return fsync(r->fd) ? -errno : 0;
}

void rawdev_close(struct rawdev *r)
{
	if (r->bdev)
		dmio_bdev_close(r->bdev);
	if (r->fd >= 0)
		close(r->fd);
	r->bdev = NULL;
	r->fd = -1;
}
