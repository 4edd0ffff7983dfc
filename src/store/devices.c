/* devices.c - devices, superblocks and assembly (devices.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"

void *dio_alloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, DMIOFS_BLOCK, len ? len : DMIOFS_BLOCK))
		return NULL;
	return p;
}

void dio_free(void *p)
{
	free(p);
}

struct page_list *page_list_of(const void *buf, size_t len, unsigned int *offset)
{
	uintptr_t first = (uintptr_t)buf & ~(uintptr_t)(DMIO_PAGE_SIZE - 1);
	size_t n = ((uintptr_t)buf + len - first + DMIO_PAGE_SIZE - 1) / DMIO_PAGE_SIZE;
	struct page_list *pl = g_new(struct page_list, n ? n : 1);

	for (size_t i = 0; i < n; i++) {
		pl[i].page = dmio_virt_to_page((const char *)first + i * DMIO_PAGE_SIZE);
		pl[i].next = i + 1 < n ? &pl[i + 1] : NULL;
	}
	*offset = (unsigned int)((uintptr_t)buf - first);
	return pl;
}

/* Metadata moves through dm-io's page-list path, as the kernel's dm-log
 * and kcopyd do: the pages are the buffer's own. */
int dev_read(struct dm_io_client *client, struct sdev *d, uint64_t offset, void *buf, size_t len)
{
	struct io_region where = { d->bdev, offset >> DMIO_SECTOR_SHIFT, len >> DMIO_SECTOR_SHIFT };
	struct dm_io_request req = {
		.bi_op = DMIO_READ,
		.mem = { .type = DM_IO_PAGE_LIST },
		.client = client,
	};
	int err;

	if (!d->bdev)
		return -ENODEV;
	req.mem.ptr.pl = page_list_of(buf, len, &req.mem.offset);
	err = dm_io(&req, 1, &where, NULL);
	g_free(req.mem.ptr.pl);
	return err;
}

/* The regions of a write of the same bytes to every device written:
 * where[r] is on device map[r]; returns how many. */
static uint32_t same_regions(struct sdev *devs, uint32_t n, uint64_t offset, size_t len, struct io_region *where,
			     uint32_t *map)
{
	uint32_t nr = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (!dev_written(&devs[i]))
			continue;
		where[nr] = (struct io_region){ devs[i].bdev, offset >> DMIO_SECTOR_SHIFT, len >> DMIO_SECTOR_SHIFT };
		map[nr++] = i;
	}
	return nr;
}

/* dm-io's error bits (by region) as bits by device; -EIO when every
 * region failed. */
static int bits_by_device(unsigned long got, const uint32_t *map, uint32_t nr, unsigned long *bits)
{
	*bits = 0;
	for (uint32_t r = 0; r < nr; r++)
		if (got & (1UL << r))
			*bits |= 1UL << map[r];
	return got == (nr == 64 ? ~0UL : (1UL << nr) - 1) ? -EIO : 0;
}

int devs_write_same(struct dm_io_client *client, struct sdev *devs, uint32_t n, uint64_t offset,
		    const void *buf, size_t len, unsigned int flags, unsigned long *bits)
{
	struct io_region where[DMIOFS_MAX_DEVICES];
	uint32_t map[DMIOFS_MAX_DEVICES], nr = same_regions(devs, n, offset, len, where, map);
	struct dm_io_request req = {
		.bi_op = DMIO_WRITE,
		.bi_op_flags = flags,
		.mem = { .type = DM_IO_PAGE_LIST },
		.client = client,
	};
	unsigned long got = 0;
	int err;

	*bits = 0;
	if (!nr)
		return -EIO;
	req.mem.ptr.pl = page_list_of(buf, len, &req.mem.offset);
	err = dm_io(&req, nr, where, &got);
	g_free(req.mem.ptr.pl);
	if (err && err != -EIO)
		return err;
	return bits_by_device(got, map, nr, bits);
}

struct write_same {
	struct page_list *pl;
	uint32_t map[DMIOFS_MAX_DEVICES], nr;
	devs_written_fn fn;
	void *ctx;
};

static void write_same_done(unsigned long error, void *context)
{
	struct write_same *w = context;
	unsigned long bits;
	int err = bits_by_device(error, w->map, w->nr, &bits);

	g_free(w->pl);
	w->fn(err, bits, w->ctx);
	g_free(w);
}

/* Send req (its mem set, its notify not yet) to [offset, offset + len) of
 * every device written; fn(err, bits, ctx) when done.  Refused before any
 * I/O: -errno, no callback, pl freed. */
static int same_async(struct dm_io_request *req, struct page_list *pl, struct sdev *devs, uint32_t n,
		      uint64_t offset, size_t len, devs_written_fn fn, void *ctx)
{
	struct io_region where[DMIOFS_MAX_DEVICES];
	struct write_same *w = g_new0(struct write_same, 1);
	int err;

	w->nr = same_regions(devs, n, offset, len, where, w->map);
	w->pl = pl;
	w->fn = fn;
	w->ctx = ctx;
	req->notify = (struct dm_io_notify){ write_same_done, w };
	err = w->nr ? dm_io(req, w->nr, where, NULL) : -EIO;
	if (err) {
		g_free(w->pl);
		g_free(w);
	}
	return err;
}

int devs_flush_async(struct dm_io_client *client, struct sdev *devs, uint32_t n, devs_written_fn fn, void *ctx)
{
	struct dm_io_request req = {
		.bi_op = DMIO_FLUSH,
		.mem = { .type = DM_IO_KMEM },
		.client = client,
	};

	return same_async(&req, NULL, devs, n, 0, 0, fn, ctx);
}

int devs_write_same_async(struct dm_io_client *client, struct sdev *devs, uint32_t n, uint64_t offset,
			  const void *buf, size_t len, unsigned int flags, devs_written_fn fn, void *ctx)
{
	struct dm_io_request req = {
		.bi_op = DMIO_WRITE,
		.bi_op_flags = flags,
		.mem = { .type = DM_IO_PAGE_LIST },
		.client = client,
	};

	req.mem.ptr.pl = page_list_of(buf, len, &req.mem.offset);
	return same_async(&req, req.mem.ptr.pl, devs, n, offset, len, fn, ctx);
}

int dev_open_timed(struct sdev *d, const char *path, int flags, unsigned int timeout_s, GString *why)
{
	char *abs = realpath(path, NULL);

	memset(d, 0, sizeof(*d));
	/* Recorded absolute, so status names it wherever it is read. */
	d->path = g_strdup(abs ? abs : path);
	free(abs);
	/* An export's timeout bounds its connection attempt too. */
	d->bdev = timeout_s ? dmio_bdev_open_timeout(path, flags, timeout_s) : dmio_bdev_open(path, flags);
	if (!d->bdev) {
		int err = errno;

		g_string_append_printf(why, "%s: cannot open: %s%s", path, g_strerror(err),
				       err == EBUSY ? " (mounted, or in use by another program)" : "");
		return -err;
	}
	d->bytes = dmio_bdev_sectors(d->bdev) << DMIO_SECTOR_SHIFT;
	if (dmio_bdev_logical_block_size(d->bdev) > DMIOFS_BLOCK) {
		g_string_append_printf(why, "%s: logical block size %u is above %u", path,
				       dmio_bdev_logical_block_size(d->bdev), DMIOFS_BLOCK);
		return -EINVAL;
	}
	return 0;
}

bool dev_server_unreachable(int err)
{
	return err == -ECONNREFUSED || err == -ETIMEDOUT || err == -EHOSTUNREACH || err == -ENETUNREACH ||
	       err == -EHOSTDOWN || err == -ECONNRESET || err == -ENOTCONN;
}

int dev_open(struct sdev *d, const char *path, int flags, GString *why)
{
	return dev_open_timed(d, path, flags, 0, why);
}

void dev_record(struct sdev *d, struct dmio_write_log *log, uint32_t index)
{
	int err;

	if (!log || !d->bdev)
		return;
	err = dmio_write_log_attach(log, d->bdev, index);
	if (err)
		g_warning("%s: its writes cannot be recorded: %s", d->path, g_strerror(-err));
}

void dev_close(struct sdev *d)
{
	if (d->bdev)
		dmio_bdev_close(d->bdev);
	d->bdev = NULL;
	g_free(d->path);
	d->path = NULL;
}

static int read_sb_copy(struct dm_io_client *client, struct sdev *d, uint64_t offset, struct superblock *sb)
{
	uint8_t *block = dio_alloc(DMIOFS_BLOCK);
	int err;

	if (!block)
		return -ENOMEM;
	err = dev_read(client, d, offset, block, DMIOFS_BLOCK);
	if (!err)
		err = sb_decode(block, sb);
	dio_free(block);
	return err;
}

int dev_read_sb(struct dm_io_client *client, struct sdev *d, GString *why)
{
	struct superblock primary, backup;
	int ep, eb;

	if (d->bytes < 2 * DMIOFS_BLOCK) {
		g_string_append_printf(why, "%s: too small to hold dmiofs", d->path);
		return -ENODATA;
	}
	ep = read_sb_copy(client, d, 0, &primary);
	eb = read_sb_copy(client, d, sb_backup_offset(d->bytes), &backup);
	/* The backup is where the device's end was at mkfs; if the device
	 * grew since, look where the primary says it is. */
	if (eb && !ep && primary.dev_bytes <= d->bytes)
		eb = read_sb_copy(client, d, sb_backup_offset(primary.dev_bytes), &backup);
	d->sb_primary_ok = !ep;
	d->sb_backup_ok = !eb;
	if (ep && eb) {
		if (ep == -EIO && eb == -EIO) {
			g_string_append_printf(why, "%s: its superblocks cannot be read: %s", d->path, g_strerror(EIO));
			return -EIO;
		}
		if (ep == -EINVAL && eb == -EINVAL) {
			g_string_append_printf(why, "%s: not a dmiofs device (no dmiofs superblock)", d->path);
			return -ENODATA;
		}
		g_string_append_printf(why, "%s: both dmiofs superblocks are damaged (%s, %s)", d->path,
				       ep == -EPROTO ? "unknown version" : "bad checksum",
				       eb == -EPROTO ? "unknown version" : "bad checksum");
		return -EUCLEAN;
	}
	if (!ep && !eb)
		d->sb = primary.generation >= backup.generation ? primary : backup;
	else
		d->sb = ep ? backup : primary;
	/* Both good but different: a power cut between the primaries and the
	 * backups (FORMAT.md 12) left the older; the mount rewrites both. */
	d->sb_stale = !ep && !eb && primary.generation != backup.generation;
	return 0;
}

int dev_clear_metadata_headers(struct dm_io_client *client, const struct layout *l, struct sdev *devs, uint32_t n)
{
	uint8_t *zero = dio_alloc(DMIOFS_BLOCK);
	const uint64_t offsets[3] = { l->meta_offset, l->meta_offset + l->ckpt_bytes, l->log_offset };
	unsigned long bits;
	int err = 0;

	if (!zero)
		return -ENOMEM;
	memset(zero, 0, DMIOFS_BLOCK);
	for (int i = 0; i < 3 && !err; i++) {
		err = devs_write_same(client, devs, n, offsets[i], zero, DMIOFS_BLOCK, 0, &bits);
		if (!err && bits)
			err = -EIO;
	}
	dio_free(zero);
	return err;
}

int dev_write_sb(struct dm_io_client *client, struct sdev *d, const struct superblock *sb, bool backup)
{
	uint8_t *block = dio_alloc(DMIOFS_BLOCK);
	unsigned long bits;
	int err;

	if (!block)
		return -ENOMEM;
	sb_encode(sb, block);
	err = devs_write_same(client, d, 1, backup ? sb_backup_offset(sb->dev_bytes) : 0, block, DMIOFS_BLOCK,
			      DMIO_REQ_FUA, &bits);
	dio_free(block);
	return err;
}

int devs_assemble(struct sdev *devs, uint32_t n, struct sdev *out, GString *why)
{
	const struct superblock *first = &devs[0].sb;
	char a[37], b[37];

	if (n != first->ndevices) {
		bool given[DMIOFS_MAX_DEVICES] = { false };

		uuid_format(first->fs_uuid, a);
		g_string_append_printf(why, "file system %s has %u devices, %u given", a, first->ndevices, n);
		for (uint32_t i = 0; i < n; i++)
			if (!memcmp(devs[i].sb.fs_uuid, first->fs_uuid, 16) && devs[i].sb.dev_index < DMIOFS_MAX_DEVICES)
				given[devs[i].sb.dev_index] = true;
		for (uint32_t k = 0; k < first->ndevices; k++) {
			if (given[k])
				continue;
			uuid_format(first->devs[k].uuid, b);
			g_string_append_printf(why, "; missing: device %u (%s, %llu MiB)", k, b,
					       (unsigned long long)(first->devs[k].bytes >> 20));
		}
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct superblock *sb = &devs[i].sb;

		if (memcmp(sb->fs_uuid, first->fs_uuid, 16)) {
			uuid_format(sb->fs_uuid, a);
			uuid_format(first->fs_uuid, b);
			g_string_append_printf(why, "%s belongs to file system %s, %s to %s: not one file system",
					       devs[i].path, a, devs[0].path, b);
			return -EINVAL;
		}
		if (memcmp(sb->dev_uuid, first->devs[sb->dev_index].uuid, 16)) {
			g_string_append_printf(why, "%s: its identity does not match device %u of the file system",
					       devs[i].path, sb->dev_index);
			return -EINVAL;
		}
		if (out[sb->dev_index].bdev) {
			g_string_append_printf(why, "%s and %s are the same device of the file system (index %u)",
					       out[sb->dev_index].path, devs[i].path, sb->dev_index);
			return -EINVAL;
		}
		if (devs[i].bytes < sb->dev_bytes) {
			g_string_append_printf(why, "%s: device is %llu bytes, smaller than the %llu it was made with",
					       devs[i].path, (unsigned long long)devs[i].bytes,
					       (unsigned long long)sb->dev_bytes);
			return -EINVAL;
		}
		out[sb->dev_index] = devs[i];
	}
	return 0;
}
