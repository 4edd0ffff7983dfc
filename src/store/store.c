/* store.c - mounting and unmounting a dmiofs file system (store.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "extmap.h"
#include "admin.h"
#include "apply.h"
#include "assemble.h"
#include "checkpoint.h"
#include "devlist.h"
#include "journal.h"
#include "mender.h"
#include "rangelock.h"
#include "store.h"

static void free_after_commit(void *ctx, uint32_t chunk, uint32_t cblock, uint32_t n)
{
	struct store *st = ctx;

	alloc_free_after(&st->alloc, st->next_seq, chunk, cblock, n);
}

/* ---- mount ------------------------------------------------------------------ */

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
	struct ext_pos p;

	for (const struct extent *e = ext_first(in, &p); e && !m->err; e = ext_next(in, &p)) {
		m->err = alloc_mark_used(&m->st->alloc, e->chunk, e->cblock, e->nblocks);
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
		rec_put_dev_state(r, i, st->sb.devs[i].state, st->sb.devs[i].left_at);
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
	bool changed = false;
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
	err = assemble_settle(st, &changed, why);
	if (err)
		return err;
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
	/* A commit left out is superseded by the checkpoint this calls for,
	 * which takes its seq: no later mount meets it, no device counts it
	 * in its generation. */
	*dirty = commits > 0 || orphans->len > 0 || changed || st->log_left_out;
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
		    (!st->dev[i].sb_primary_ok || !st->dev[i].sb_backup_ok || st->dev[i].sb_stale))
			return true;
	return false;
}

static void store_free(struct store *st)
{
	admin_free(st);
	if (st->starter)
		g_thread_pool_free(st->starter, FALSE, TRUE);
	for (uint32_t i = 0; i < DMIOFS_MAX_DEVICES; i++)
		dev_close(&st->dev[i]);
	meta_destroy(&st->meta);
	alloc_destroy(&st->alloc);
	if (st->pending)
		g_byte_array_free(st->pending, TRUE);
	for (unsigned int i = 1; i < STORE_MAX_LANES; i++)
		if (st->lanes[i].client)
			dm_io_client_destroy(st->lanes[i].client);
	if (st->client)
		dm_io_client_destroy(st->client);
	if (st->meta_client)
		dm_io_client_destroy(st->meta_client);
	if (st->sync_client)
		dm_io_client_destroy(st->sync_client);
	if (st->buffers.size)
		bufpool_destroy(&st->buffers);
	g_mutex_clear(&st->lock);
	g_cond_clear(&st->commit_cond);
	g_cond_clear(&st->landed_cond);
	g_cond_clear(&st->durable_cond);
	g_free(st);
}

/* -o write_mostly: the devices named, by index, path or UUID. */
static int resolve_write_mostly(struct store *st, GString *why)
{
	char **names;
	int err = 0;

	if (!st->opt.write_mostly)
		return 0;
	names = devlist_split(st->opt.write_mostly);
	for (char **n = names; *n && !err; n++) {
		uint32_t k;

		if (!**n)
			continue;
		err = admin_find_device(st, *n, &k, why);
		if (!err)
			st->write_mostly |= 1u << k;
		else
			g_string_prepend(why, "write_mostly: ");
	}
	g_strfreev(names);
	return err;
}

int store_open(const char *const *paths, uint32_t n, const struct store_options *opt, struct store **out,
	       GString *why)
{
	struct store *st = g_new0(struct store, 1);
	bool dirty = false;
	int err;

	g_mutex_init(&st->lock);
	g_cond_init(&st->commit_cond);
	g_cond_init(&st->landed_cond);
	g_cond_init(&st->durable_cond);
	if (opt)
		st->opt = *opt;
	st->pending = g_byte_array_new();
	/* Keep as many buffers as requests the kernel may have in flight
	 * (max_background, 64 by default): with 8 of 1 MiB, the event loop's
	 * 16-deep 1 MiB reads allocated and faulted in a fresh buffer for
	 * every other request and read at a quarter of the rate. */
	bufpool_init(&st->buffers, (1u << 20) + 2 * DMIOFS_BLOCK, 64, 64);
	st->starter = g_thread_pool_new(range_run_started, NULL, 4, FALSE, NULL);
	st->client = dm_io_client_create(STORE_CLIENT_PAGES);
	st->meta_client = dm_io_client_create(256);
	st->sync_client = dm_io_client_create(16);
	if (!st->client || !st->meta_client || !st->sync_client) {
		err = -errno;
		g_string_append_printf(why, "cannot start libdmio: %s", g_strerror(errno));
		store_free(st);
		return err;
	}
	st->opened_read_only = st->opt.read_only;
	err = assemble_open(st, paths, n, why);
	if (!err)
		err = load_metadata(st, why, &dirty);
	if (!err)
		err = resolve_write_mostly(st, why);
	if (!err && !st->opt.read_only) {
		g_mutex_lock(&st->lock);
		/* After a crash: one checkpoint on every device, so all agree.
		 * If it does not fit (a full metadata area), the log still
		 * holds everything: mount anyway, so files can be deleted. */
		if (dirty)
			err = st->opt.no_mount_checkpoint ? -ENOSPC : checkpoint_write(st);
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
	if (!st->opt.read_only) {
		journal_start(st);
		err = journal_settle_replay(st);
		if (err)
			g_string_append_printf(why, "cannot write the log commit that settles the replayed ones: %s",
					       g_strerror(-err));
		else if (!st->opt.no_background && (err = mender_start(st)))
			g_string_append_printf(why, "cannot start the background worker: %s", g_strerror(-err));
		if (err) {
			journal_stop(st);
			store_free(st);
			return err;
		}
	}
	*out = st;
	return 0;
}

/* Lock held: a consistent image, marked clean, as an unmount leaves it. */
static int write_clean(struct store *st)
{
	int err = st->broken;

	if (!err)
		err = checkpoint_write(st);
	if (!err)
		err = store_write_superblocks(st, true);
	return err;
}

int store_close(struct store *st)
{
	int err = 0;

	/* Rewrites of bad copies a read started finish first. */
	while (atomic_load(&st->repairs))
		g_usleep(1000);
	if (!st->opt.read_only) {
		mender_stop(st);
		journal_stop(st);
		g_mutex_lock(&st->lock);
		err = write_clean(st);
		g_mutex_unlock(&st->lock);
	}
	store_free(st);
	return err;
}

static int remount_read_only(struct store *st, GString *why)
{
	int err;

	while (atomic_load(&st->repairs))
		g_usleep(1000);
	mender_stop(st);
	journal_stop(st);
	g_mutex_lock(&st->lock);
	err = write_clean(st);
	if (!err)
		st->opt.read_only = true;
	g_mutex_unlock(&st->lock);
	if (err) {
		g_string_printf(why, "cannot write the last checkpoint: %s", g_strerror(-err));
		journal_start(st); /* it stays writable, as it was */
		if (!st->opt.no_background)
			mender_start(st);
	}
	return err;
}

static int remount_writable(struct store *st, GString *why)
{
	int err;

	g_mutex_lock(&st->lock);
	err = st->broken ? st->broken : store_write_superblocks(st, false);
	if (!err)
		st->opt.read_only = false;
	g_mutex_unlock(&st->lock);
	if (err) {
		g_string_printf(why, "cannot write to the devices: %s", g_strerror(-err));
		return err;
	}
	err = journal_start(st);
	if (!err && !st->opt.no_background)
		err = mender_start(st);
	if (err)
		g_string_printf(why, "cannot start the background work: %s", g_strerror(-err));
	return err;
}

int store_remount(struct store *st, bool read_only, GString *why)
{
	if (read_only == st->opt.read_only)
		return 0;
	if (!read_only && st->opened_read_only) {
		g_string_printf(why, "mounted read-only from the start (-o ro), its devices are open read-only: "
				     "unmount it and mount it again without ro");
		return -EROFS;
	}
	return read_only ? remount_read_only(st, why) : remount_writable(st, why);
}
