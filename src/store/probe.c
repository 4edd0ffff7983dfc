/* probe.c - what a device holds before we write on it (probe.h): our own
 * superblocks, and every signature libblkid knows.
 *
 * libblkid reads a descriptor.  An NBD export has none, so it is shown a
 * copy: a sparse memory file of the export's size holding its first and
 * last REMOTE_EDGE bytes, where file systems, partition tables and RAID
 * members keep their signatures.  Wiping works on that copy, and the two
 * edges are written back. */
#define _GNU_SOURCE
#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe.h"
#include "rawdev.h"
#include "scan.h"

#define REMOTE_EDGE (1u << 20)

/* The edges of the device: [0, head) and [tail, bytes). */
static void edges(uint64_t bytes, uint64_t *head, uint64_t *tail)
{
	*head = bytes < REMOTE_EDGE ? bytes : REMOTE_EDGE;
	*tail = bytes - (bytes - *head < REMOTE_EDGE ? bytes - *head : REMOTE_EDGE);
	*head &= ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
	*tail = (*tail + DMIO_SECTOR_SIZE - 1) & ~(uint64_t)(DMIO_SECTOR_SIZE - 1);
}

/* Copy len bytes at off between the device and the memory file. */
static int copy_range(struct rawdev *dev, int memfd, uint64_t off, uint64_t len, bool to_device)
{
	char *buf;
	int err = 0;

	if (!len)
		return 0;
	buf = g_malloc(len);
	if (to_device) {
		err = pread(memfd, buf, len, (off_t)off) == (ssize_t)len ? rawdev_pwrite(dev, buf, len, off) : -EIO;
	} else {
		err = rawdev_pread(dev, buf, len, off);
		if (!err && pwrite(memfd, buf, len, (off_t)off) != (ssize_t)len)
			err = -errno;
	}
	g_free(buf);
	return err;
}

/* A memory file standing in for the export at path for libblkid: -errno,
 * or a descriptor, with the export still open in *dev. */
static int remote_copy_open(const char *path, bool writable, struct rawdev *dev)
{
	uint64_t head, tail;
	int memfd, err = rawdev_open(dev, path, writable);

	if (err)
		return err;
	edges(dev->bytes, &head, &tail);
	memfd = memfd_create("dmiofs-probe", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, (off_t)dev->bytes))
		err = -errno;
	if (!err)
		err = copy_range(dev, memfd, 0, head, false);
	if (!err)
		err = copy_range(dev, memfd, tail, dev->bytes - tail, false);
	if (err) {
		if (memfd >= 0)
			close(memfd);
		rawdev_close(dev);
		return err;
	}
	return memfd;
}

/* A probe of the device at path: on its own descriptor, or on a copy of an
 * export's edges (*memfd then >= 0). */
static blkid_probe new_probe(const char *path, int *memfd)
{
	struct rawdev dev;
	blkid_probe pr;

	*memfd = -1;
	if (!dmio_bdev_path_is_remote(path))
		return blkid_new_probe_from_filename(path);
	*memfd = remote_copy_open(path, false, &dev);
	if (*memfd < 0)
		return NULL;
	rawdev_close(&dev);
	pr = blkid_new_probe();
	if (pr && blkid_probe_set_device(pr, *memfd, 0, 0)) {
		blkid_free_probe(pr);
		pr = NULL;
	}
	return pr;
}

/* What is on the device now, or NULL when it looks unused: the
 * superblock scan.c reads, primary or backup. */
char *probe_dmiofs(const char *path)
{
	struct superblock sb;
	char uuid[37];

	if (scan_device(path, &sb))
		return NULL;
	uuid_format(sb.fs_uuid, uuid);
	return g_strdup_printf("dmiofs (file system %s, device index %u of %u devices)", uuid, sb.dev_index,
			       sb.ndevices);
}

/* A file system or partition table libblkid recognises, or NULL. */
char *probe_signature(const char *path)
{
	int memfd;
	blkid_probe pr = new_probe(path, &memfd);
	const char *type = NULL;
	char *what = NULL;

	if (!pr) {
		if (memfd >= 0)
			close(memfd);
		return NULL;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
	switch (blkid_do_safeprobe(pr)) {
	case 0:
		if (!blkid_probe_lookup_value(pr, "TYPE", &type, NULL))
			what = g_strdup_printf("a file system (%s)", type);
		else if (!blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL))
			what = g_strdup_printf("a partition table (%s)", type);
		else
			what = g_strdup("a signature libblkid recognises");
		break;
	case -2:
		what = g_strdup("several conflicting signatures");
		break;
	default:
		break;
	}
	blkid_free_probe(pr);
	if (memfd >= 0)
		close(memfd);
	return what;
}

/* Remove every signature libblkid finds on fd, as wipefs(8) would. */
static int wipe_fd(int fd)
{
	blkid_probe pr = blkid_new_probe();
	int err = 0;

	if (!pr || blkid_probe_set_device(pr, fd, 0, 0)) {
		err = -EIO;
	} else {
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC);
		blkid_probe_enable_partitions(pr, 1);
		blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
		while (blkid_do_probe(pr) == 0)
			if (blkid_do_wipe(pr, 0)) {
				err = -EIO;
				break;
			}
	}
	if (pr)
		blkid_free_probe(pr);
	return err;
}

/* The export's edges are wiped in the copy, then written back whole. */
static int wipe_remote(const char *path)
{
	struct rawdev dev;
	uint64_t head, tail;
	int memfd = remote_copy_open(path, true, &dev), err;

	if (memfd < 0)
		return memfd;
	edges(dev.bytes, &head, &tail);
	err = wipe_fd(memfd);
	if (!err)
		err = copy_range(&dev, memfd, 0, head, true);
	if (!err)
		err = copy_range(&dev, memfd, tail, dev.bytes - tail, true);
	if (!err)
		err = rawdev_sync(&dev);
	close(memfd);
	rawdev_close(&dev);
	return err;
}

int probe_wipe(const char *path)
{
	int fd, err;

	if (dmio_bdev_path_is_remote(path))
		return wipe_remote(path);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = wipe_fd(fd);
	if (!err && fsync(fd))
		err = -errno;
	close(fd);
	return err;
}
