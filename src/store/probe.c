/* probe.c - what a device holds before we write on it (probe.h): our own
 * superblocks, and every signature libblkid knows. */
#define _GNU_SOURCE
#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe.h"
#include "scan.h"

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
	blkid_probe pr = blkid_new_probe_from_filename(path);
	const char *type = NULL;
	char *what = NULL;

	if (!pr)
		return NULL;
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
	return what;
}

/* Remove every signature libblkid finds, as wipefs(8) would. */
int probe_wipe(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	blkid_probe pr;
	int err = 0;

	if (fd < 0)
		return -errno;
	pr = blkid_new_probe();
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
	if (!err && fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

