/* device.c - opening block devices, image files and NBD exports for libdmio.
 *
 * Block devices are opened exclusively (O_EXCL) with O_DIRECT; their size,
 * logical block size and request-size limit come from the kernel.  Image
 * files are locked with flock() against a second user and opened with
 * O_DIRECT where their file system allows it; where it does not, they fall
 * back to buffered I/O and say so once, here.  A URI names an NBD export,
 * which remote.c opens. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

/* Largest piece sent as one iocb when the device states no limit. */
#define DEFAULT_MAX_IO_SECTORS 2048 /* 1 MiB */

static unsigned int sysfs_max_io_sectors(dev_t rdev)
{
	char path[128];
	unsigned int kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/max_sectors_kb", major(rdev), minor(rdev));
	f = fopen(path, "re");
	if (!f) { /* a partition: the limits are its disk's */
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../queue/max_sectors_kb", major(rdev),
			 minor(rdev));
		f = fopen(path, "re");
	}
	if (!f)
		return DEFAULT_MAX_IO_SECTORS;
	if (fscanf(f, "%u", &kib) != 1 || kib < 4)
		kib = DEFAULT_MAX_IO_SECTORS / 2;
	fclose(f);
	return kib * 2;
}

/* Direct-I/O alignment the kernel asks of this file, if it says. */
static void statx_dio_align(int fd, unsigned int *offset_align, unsigned int *mem_align)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
	    stx.stx_dio_offset_align) {
		*offset_align = stx.stx_dio_offset_align;
		*mem_align = stx.stx_dio_mem_align ? stx.stx_dio_mem_align : *offset_align;
	}
}

static int open_blockdev(struct block_device *bdev, const char *path, int access, bool buffered)
{
	uint64_t bytes = 0;
	int lbs = 0;
	struct stat st;

	bdev->blockdev = true;
	bdev->direct = !buffered;
	bdev->fd = open(path, access | O_EXCL | O_CLOEXEC | (buffered ? 0 : O_DIRECT));
	if (bdev->fd < 0) {
		int err = errno;

		if (err == EBUSY)
			dmio_log(DMIO_LOG_ERR, "%s: device is in use (mounted or held by another program)", path);
		return -err;
	}
	if (ioctl(bdev->fd, BLKGETSIZE64, &bytes) || ioctl(bdev->fd, BLKSSZGET, &lbs) || fstat(bdev->fd, &st))
		return -errno;
	bdev->sectors = bytes >> DMIO_SECTOR_SHIFT;
	bdev->lbs = buffered ? DMIO_SECTOR_SIZE : (unsigned int)lbs;
	bdev->mem_align = buffered ? 1 : bdev->lbs;
	atomic_store(&bdev->max_io_sectors, sysfs_max_io_sectors(st.st_rdev));
	return 0;
}

static int open_image(struct block_device *bdev, const char *path, int access, bool buffered)
{
	struct stat st;

	bdev->fd = buffered ? -1 : open(path, access | O_CLOEXEC | O_DIRECT);
	bdev->direct = bdev->fd >= 0;
	if (!bdev->direct) {
		int err = errno;

		bdev->fd = open(path, access | O_CLOEXEC);
		if (bdev->fd < 0)
			return -errno;
		if (!buffered)
			dmio_log(DMIO_LOG_NOTICE, "%s: the file system does not allow O_DIRECT (%s); using buffered I/O",
				 path, strerror(err));
	}
	if (flock(bdev->fd, (access == O_RDONLY ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		int err = errno;

		dmio_log(DMIO_LOG_ERR, "%s: image file is in use by another program", path);
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	if (fstat(bdev->fd, &st))
		return -errno;
	bdev->sectors = (uint64_t)st.st_size >> DMIO_SECTOR_SHIFT;
	bdev->lbs = DMIO_SECTOR_SIZE;
	bdev->mem_align = 1;
	if (bdev->direct) {
		bdev->mem_align = DMIO_SECTOR_SIZE;
		statx_dio_align(bdev->fd, &bdev->lbs, &bdev->mem_align);
		if (bdev->lbs < DMIO_SECTOR_SIZE) /* sectors are our smallest unit */
			bdev->lbs = DMIO_SECTOR_SIZE;
	}
	atomic_store(&bdev->max_io_sectors, DEFAULT_MAX_IO_SECTORS);
	return 0;
}

static void bdev_free(struct block_device *bdev)
{
	remote_close(bdev);
	if (bdev->fd >= 0)
		close(bdev->fd);
	fault_set_destroy(&bdev->faults);
	pthread_mutex_destroy(&bdev->log_lock);
	free(bdev->path);
	free(bdev);
}

DMIO_EXPORT struct block_device *dmio_bdev_open(const char *path, int flags)
{
	return dmio_bdev_open_timeout(path, flags, DMIO_REMOTE_DEFAULT_TIMEOUT_S);
}

DMIO_EXPORT struct block_device *dmio_bdev_open_timeout(const char *path, int flags, unsigned int timeout_s)
{
	int access = flags & O_ACCMODE;
	bool buffered = flags & DMIO_OPEN_BUFFERED;
	struct block_device *bdev;
	struct stat st;
	int err;

	bool remote;

	if (!path || (access != O_RDWR && access != O_RDONLY) ||
	    (flags & ~(O_ACCMODE | DMIO_OPEN_BUFFERED | O_CLOEXEC))) {
		errno = EINVAL;
		return NULL;
	}
	remote = remote_is_uri(path);
	if (!remote && stat(path, &st))
		return NULL;
	if (!remote && !S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		errno = S_ISDIR(st.st_mode) ? EISDIR : ENOTBLK;
		return NULL;
	}
	bdev = calloc(1, sizeof(*bdev));
	if (!bdev || !(bdev->path = strdup(path))) {
		free(bdev);
		errno = ENOMEM;
		return NULL;
	}
	bdev->fd = -1;
	bdev->access = access;
	fault_set_init(&bdev->faults);
	pthread_mutex_init(&bdev->log_lock, NULL);
	if (remote)
		err = remote_open(bdev, path, access, timeout_s);
	else if (S_ISBLK(st.st_mode))
		err = open_blockdev(bdev, path, access, buffered);
	else
		err = open_image(bdev, path, access, buffered);
	if (!err && (bdev->lbs > DMIO_PAGE_SIZE || (bdev->lbs & (bdev->lbs - 1)))) {
		dmio_log(DMIO_LOG_ERR, "%s: logical block size %u is not supported (at most %u)", path, bdev->lbs,
			 DMIO_PAGE_SIZE);
		err = -EINVAL;
	}
	if (err) {
		bdev_free(bdev);
		errno = -err;
		return NULL;
	}
	return bdev;
}

DMIO_EXPORT void dmio_bdev_close(struct block_device *bdev)
{
	if (!bdev)
		return;
	/* Closing under I/O would let the descriptor be reused mid-flight:
	 * wait for every request and piece that still names this device. */
	io_release_own_device(bdev);
	while (atomic_load(&bdev->requests) || atomic_load(&bdev->pieces))
		usleep(1000);
	dmio_write_log_detach(bdev);
	bdev_free(bdev);
}

DMIO_EXPORT const char *dmio_bdev_path(const struct block_device *bdev)
{
	return bdev->path;
}

DMIO_EXPORT sector_t dmio_bdev_sectors(const struct block_device *bdev)
{
	return bdev->sectors;
}

DMIO_EXPORT unsigned int dmio_bdev_logical_block_size(const struct block_device *bdev)
{
	return bdev->lbs;
}

DMIO_EXPORT int dmio_bdev_is_direct(const struct block_device *bdev)
{
	return bdev->direct;
}

DMIO_EXPORT int dmio_bdev_is_blockdev(const struct block_device *bdev)
{
	return bdev->blockdev;
}

DMIO_EXPORT int dmio_bdev_path_is_remote(const char *path)
{
	return path && remote_is_uri(path);
}

DMIO_EXPORT int dmio_bdev_is_remote(const struct block_device *bdev)
{
	return bdev->remote != NULL;
}

DMIO_EXPORT int dmio_bdev_is_connected(struct block_device *bdev)
{
	return !bdev->remote || remote_connected(bdev);
}

DMIO_EXPORT int dmio_bdev_reconnect(struct block_device *bdev)
{
	return bdev->remote ? remote_reconnect(bdev) : -EOPNOTSUPP;
}

DMIO_EXPORT int dmio_bdev_set_timeout(struct block_device *bdev, unsigned int seconds)
{
	if (!bdev->remote)
		return -EOPNOTSUPP;
	remote_set_timeout(bdev, seconds);
	return 0;
}

DMIO_EXPORT int dmio_bdev_disconnect(struct block_device *bdev)
{
	if (!bdev->remote)
		return -EOPNOTSUPP;
	remote_disconnect(bdev);
	return 0;
}

DMIO_EXPORT unsigned int dmio_bdev_max_io_sectors(const struct block_device *bdev)
{
	return atomic_load(&bdev->max_io_sectors);
}

DMIO_EXPORT int dmio_bdev_set_max_io_sectors(struct block_device *bdev, unsigned int sectors)
{
	unsigned int lbs_sectors = bdev->lbs >> DMIO_SECTOR_SHIFT;

	if (sectors == 0 || sectors % lbs_sectors || sectors > (1u << 21))
		return -EINVAL;
	atomic_store(&bdev->max_io_sectors, sectors);
	return 0;
}

DMIO_EXPORT void dmio_bdev_get_stats(const struct block_device *bdev, struct dmio_bdev_stats *stats)
{
	stats->reads = atomic_load(&bdev->reads);
	stats->writes = atomic_load(&bdev->writes);
	stats->flushes = atomic_load(&bdev->flushes);
	stats->discards = atomic_load(&bdev->discards);
	stats->read_bytes = atomic_load(&bdev->read_bytes);
	stats->write_bytes = atomic_load(&bdev->write_bytes);
	stats->errors = atomic_load(&bdev->errors);
	stats->injected = atomic_load(&bdev->injected);
	stats->inflight = atomic_load(&bdev->inflight);
	stats->read_latency_us = atomic_load(&bdev->read_latency_us);
}
