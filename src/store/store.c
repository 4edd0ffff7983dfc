/* store.c - mounting and unmounting a dmiofs file system (store.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply.h"
#include "checkpoint.h"
#include "journal.h"
#include "mounts.h"
#include "rangelock.h"
#include "store.h"

#define CLIENT_PAGES 1024 /* 4 MiB of bounce pages for the store's own I/O */

static void free_after_commit(void *ctx, uint32_t chunk, uint32_t cblock, uint32_t n)
{
	struct store *st = ctx;

	alloc_free_after(&st->alloc, st->next_seq, chunk, cblock, n);
}

/* ---- mount ------------------------------------------------------------------ */

#define BUSY_WAIT_MS 10000

/* Does another program hold the device (its exclusive open, or the lock
 * libdmio takes on image files)?  Tested without keeping it. */
static bool device_busy(const char *path)
{
	struct stat st;
	int fd;
	bool busy;

	if (stat(path, &st))
		return false;
	if (S_ISBLK(st.st_mode)) {
		fd = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);
		busy = fd < 0 && errno == EBUSY;
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		busy = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) && errno == EWOULDBLOCK;
	}
	if (fd >= 0)
		close(fd);
	return busy;
}

/* A device in use may be held by a daemon finishing an unmount (umount
 * returns before it has written its last checkpoint): unless it is
 * mounted, wait a little for it to be let go. */
static int open_waiting(struct sdev *d, const char *path, int flags, GString *why)
{
	gint64 deadline = g_get_monotonic_time() + BUSY_WAIT_MS * 1000;
	char *mnt = dmiofs_mounted_at(path);

	if (mnt) {
		g_string_append_printf(why, "%s: in use by the dmiofs file system mounted at %s", path, mnt);
		g_free(mnt);
		d->path = g_strdup(path);
		return -EBUSY;
	}
	while (device_busy(path) && g_get_monotonic_time() < deadline)
		g_usleep(100 * 1000);
	return dev_open(d, path, flags, why);
}

/* A device given twice would otherwise fail on its own lock, as if another
 * program held it: say what is wrong instead. */
static bool given_twice(const char *const *paths, uint32_t n, GString *why)
{
	static const char once[] = "every device of the file system is given once";

	for (uint32_t i = 1; i < n; i++) {
		struct stat a, b;

		if (stat(paths[i], &a))
			continue; /* store_open says why it cannot be opened */
		for (uint32_t j = 0; j < i; j++) {
			if (stat(paths[j], &b))
				continue;
			if (S_ISBLK(a.st_mode) && S_ISBLK(b.st_mode) ? a.st_rdev == b.st_rdev
								       : a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
				if (!strcmp(paths[i], paths[j]))
					g_string_printf(why, "%s: given twice; %s", paths[i], once);
				else
					g_string_printf(why, "%s and %s are the same device; %s", paths[j], paths[i], once);
				return true;
			}
		}
	}
	return false;
}

static int open_devices(struct store *st, const char *const *paths, uint32_t n, GString *why)
{
	struct sdev given[DMIOFS_MAX_DEVICES];
	int flags = st->opt.read_only ? O_RDONLY : O_RDWR;
	uint32_t opened = 0;
	int err = 0;

	if (!n || n > DMIOFS_MAX_DEVICES) {
		g_string_append_printf(why, "%u devices given: a file system has 1 to %u", n, DMIOFS_MAX_DEVICES);
		return -EINVAL;
	}
	if (given_twice(paths, n, why))
		return -EINVAL;
	memset(given, 0, sizeof(given));
	for (; opened < n && !err; opened++) {
		err = open_waiting(&given[opened], paths[opened], flags, why);
		if (!err)
			err = dev_read_sb(st->meta_client, &given[opened], why);
	}
	if (!err) {
		uint32_t newest = 0;

		for (uint32_t i = 1; i < n; i++)
			if (given[i].sb.generation > given[newest].sb.generation)
				newest = i;
		/* The newest superblock speaks for the file system. */
		if (newest) {
			struct sdev t = given[0];

			given[0] = given[newest];
			given[newest] = t;
		}
		err = devs_assemble(given, n, st->dev, why);
	}
	if (err) {
		for (uint32_t i = 0; i < opened; i++)
			dev_close(&given[i]);
		memset(st->dev, 0, sizeof(st->dev));
		return err;
	}
	st->sb = given[0].sb;
	st->ndevices = st->sb.ndevices;
	st->copies = st->sb.copies;
	return 0;
}

struct mark_ctx {
	struct store *st;
	int err;
	uint64_t bad_ino;
};

static void mark_inode_blocks(gpointer key, gpointer value, gpointer data)
{
	struct dinode *in = value;
	struct mark_ctx *m = data;

	(void)key;
	if (m->err || !S_ISREG(in->mode))
		return;
	for (uint32_t i = 0; i < in->next && !m->err; i++) {
		m->err = alloc_mark_used(&m->st->alloc, in->u.ext[i].chunk, in->u.ext[i].cblock, in->u.ext[i].nblocks);
		if (m->err)
			m->bad_ino = in->ino;
	}
}

/* Inodes with no name left when mounting were open-unlinked at a crash. */
static void collect_orphans(gpointer key, gpointer value, gpointer data)
{
	struct dinode *in = value;

	(void)key;
	if (!in->nlink && in->ino != ROOT_INO)
		rec_put_ino(data, REC_INODE_FREE, in->ino);
}

/* The device states the speaking superblock recorded, applied as records
 * like every other change of state; the checkpoint and the log may
 * change them further. */
static int apply_superblock_states(struct store *st)
{
	GByteArray *r = g_byte_array_new();
	int err;

	for (uint32_t i = 0; i < st->ndevices; i++)
		rec_put_dev_state(r, i, st->sb.devs[i].state);
	err = store_apply_all(st, r->data, r->len);
	g_byte_array_free(r, TRUE);
	return err;
}

static int load_metadata(struct store *st, GString *why, bool *dirty)
{
	struct ckpt_header h;
	struct mark_ctx mark = { st, 0, 0 };
	uint64_t commits = 0;
	GByteArray *orphans;
	int err;

	layout_from_sb(&st->sb, &st->layout);
	meta_init(&st->meta);
	{
		uint64_t bytes[DMIOFS_MAX_DEVICES];

		for (uint32_t i = 0; i < st->ndevices; i++)
			bytes[i] = st->sb.devs[i].bytes;
		alloc_init(&st->alloc, &st->layout, st->ndevices, st->copies, bytes);
	}
	err = apply_superblock_states(st);
	if (err) {
		g_string_append(why, "the superblock's device table does not apply");
		return err;
	}
	err = checkpoint_load(st, &h, why);
	if (err)
		return err;
	err = journal_replay(st, h.log_pos, h.seq + 1, &commits);
	if (err) {
		g_string_append_printf(why, "the metadata log does not replay: %s", g_strerror(-err));
		return err;
	}
	if (!meta_inode(&st->meta, ROOT_INO)) {
		g_string_append(why, "the metadata has no root directory");
		return -EUCLEAN;
	}
	g_hash_table_foreach(st->meta.inodes, mark_inode_blocks, &mark);
	if (mark.err) {
		g_string_append_printf(why, "inode %llu maps blocks another file or chunk does not allow; run fsck.dmiofs",
				       (unsigned long long)mark.bad_ino);
		return mark.err;
	}
	st->meta.on_free = free_after_commit;
	st->meta.free_ctx = st;
	{
		uint64_t total, avail;

		alloc_space(&st->alloc, &total, &avail);
		st->alloc.reserve = MIN(64, total / 100 + 2);
	}
	orphans = g_byte_array_new();
	g_hash_table_foreach(st->meta.inodes, collect_orphans, orphans);
	*dirty = commits > 0 || orphans->len > 0;
	if (orphans->len && !st->opt.read_only)
		err = store_log(st, orphans);
	g_byte_array_free(orphans, TRUE);
	if (st->opt.verbose)
		g_message("loaded checkpoint %llu and %llu log commit(s)", (unsigned long long)h.seq,
			  (unsigned long long)commits);
	return err;
}

static bool superblocks_need_rewrite(const struct store *st)
{
	for (uint32_t i = 0; i < st->ndevices; i++)
		if (st->dev[i].bdev && st->dev[i].state == DEV_HEALTHY &&
		    (!st->dev[i].sb_primary_ok || !st->dev[i].sb_backup_ok))
			return true;
	return false;
}

static void store_free(struct store *st)
{
	if (st->starter)
		g_thread_pool_free(st->starter, FALSE, TRUE);
	for (uint32_t i = 0; i < DMIOFS_MAX_DEVICES; i++)
		dev_close(&st->dev[i]);
	meta_destroy(&st->meta);
	alloc_destroy(&st->alloc);
	if (st->pending)
		g_byte_array_free(st->pending, TRUE);
	if (st->client)
		dm_io_client_destroy(st->client);
	if (st->meta_client)
		dm_io_client_destroy(st->meta_client);
	if (st->buffers.size)
		bufpool_destroy(&st->buffers);
	g_mutex_clear(&st->lock);
	g_cond_clear(&st->commit_cond);
	g_cond_clear(&st->durable_cond);
	g_free(st);
}

int store_open(const char *const *paths, uint32_t n, const struct store_options *opt, struct store **out,
	       GString *why)
{
	struct store *st = g_new0(struct store, 1);
	bool dirty = false;
	int err;

	g_mutex_init(&st->lock);
	g_cond_init(&st->commit_cond);
	g_cond_init(&st->durable_cond);
	if (opt)
		st->opt = *opt;
	st->pending = g_byte_array_new();
	bufpool_init(&st->buffers, (1u << 20) + 2 * DMIOFS_BLOCK, 8);
	st->starter = g_thread_pool_new(range_run_started, NULL, 4, FALSE, NULL);
	st->client = dm_io_client_create(CLIENT_PAGES);
	st->meta_client = dm_io_client_create(256);
	if (!st->client || !st->meta_client) {
		err = -errno;
		g_string_append_printf(why, "cannot start libdmio: %s", g_strerror(errno));
		store_free(st);
		return err;
	}
	err = open_devices(st, paths, n, why);
	if (!err)
		err = load_metadata(st, why, &dirty);
	if (!err && !st->opt.read_only) {
		g_mutex_lock(&st->lock);
		/* After a crash: one checkpoint on every device, so all agree.
		 * If it does not fit (a full metadata area), the log still
		 * holds everything: mount anyway, so files can be deleted. */
		if (dirty)
			err = checkpoint_write(st);
		if (err == -ENOSPC) {
			g_warning("the metadata area is full: mounting without a checkpoint; delete files to make room");
			err = 0;
		}
		if (!err && (dirty || superblocks_need_rewrite(st) || (st->sb.flags & SB_CLEAN)))
			err = store_write_superblocks(st, false);
		g_mutex_unlock(&st->lock);
		if (err)
			g_string_append_printf(why, "cannot write to the devices: %s", g_strerror(-err));
	}
	if (err) {
		store_free(st);
		return err;
	}
	if (!st->opt.read_only)
		journal_start(st);
	*out = st;
	return 0;
}

int store_close(struct store *st)
{
	int err = 0;

	/* Rewrites of bad copies a read started finish first. */
	while (atomic_load(&st->repairs))
		g_usleep(1000);
	if (!st->opt.read_only) {
		journal_stop(st);
		g_mutex_lock(&st->lock);
		err = st->broken;
		if (!err)
			err = checkpoint_write(st);
		if (!err)
			err = store_write_superblocks(st, true);
		g_mutex_unlock(&st->lock);
	}
	store_free(st);
	return err;
}
