/* mkfs.c - writing a new, empty file system (mkfs.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "mkfs.h"
#include "checkpoint.h"
#include "store.h"

static void random_uuid(uint8_t u[16])
{
	if (getrandom(u, 16, 0) != 16)
		for (int i = 0; i < 16; i++)
			u[i] = (uint8_t)g_random_int();
	u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80;
}

static int check_options(const struct format_options *opt, uint32_t n, uint32_t *copies, GString *why)
{
	*copies = opt->copies ? opt->copies : (n == 1 ? 1 : 2);
	if (!n || n > DMIOFS_MAX_DEVICES) {
		g_string_append_printf(why, "%u devices given: a file system has 1 to %u", n, DMIOFS_MAX_DEVICES);
		return -EINVAL;
	}
	if (*copies > n || *copies > DMIOFS_MAX_COPIES) {
		g_string_append_printf(why, "%u copies need %u distinct devices; %u given", *copies, *copies, n);
		return -EINVAL;
	}
	if (opt->label && strlen(opt->label) > DMIOFS_LABEL_MAX) {
		g_string_append_printf(why, "label longer than %u bytes", DMIOFS_LABEL_MAX);
		return -EINVAL;
	}
	if (opt->root_reserve_permille > DMIOFS_ROOT_RESERVE_MAX) {
		g_string_append_printf(why, "a root reserve of %u.%u%%: at most %u%%", opt->root_reserve_permille / 10,
				       opt->root_reserve_permille % 10, DMIOFS_ROOT_RESERVE_MAX / 10);
		return -EINVAL;
	}
	return 0;
}

static GByteArray *root_records(const struct format_options *opt)
{
	GByteArray *out = g_byte_array_new();
	struct timespec now;
	struct rec_inode root = { 0 };

	clock_gettime(CLOCK_REALTIME, &now);
	root.ino = ROOT_INO;
	root.mode = S_IFDIR | 0755;
	root.uid = opt->uid;
	root.gid = opt->gid;
	root.nlink = 2;
	root.atime = root.mtime = root.ctime = (struct rec_time){ now.tv_sec, (uint32_t)now.tv_nsec };
	rec_put_inode(out, &root);
	return out;
}

static void fill_superblock(struct store *st, const struct format_options *opt, uint32_t copies, uint32_t n)
{
	struct superblock *sb = &st->sb;

	memset(sb, 0, sizeof(*sb));
	random_uuid(sb->fs_uuid);
	g_strlcpy(sb->label, opt->label ? opt->label : "", sizeof(sb->label));
	sb->copies = copies;
	sb->ndevices = n;
	sb->block_size = DMIOFS_BLOCK;
	sb->meta_offset = st->layout.meta_offset;
	sb->meta_bytes = st->layout.meta_bytes;
	sb->ckpt_bytes = st->layout.ckpt_bytes;
	sb->data_offset = st->layout.data_offset;
	sb->chunk_bytes = st->layout.chunk_bytes;
	sb->created = (uint64_t)time(NULL);
	sb->root_reserve_permille = opt->root_reserve_permille;
	for (uint32_t i = 0; i < n; i++) {
		struct sdev *d = &st->dev[i];

		random_uuid(d->sb.dev_uuid);
		d->sb.dev_bytes = d->bytes & ~(uint64_t)(DMIOFS_BLOCK - 1);
		memcpy(sb->devs[i].uuid, d->sb.dev_uuid, 16);
		sb->devs[i].bytes = d->sb.dev_bytes;
		sb->devs[i].state = DEV_HEALTHY;
		d->state = DEV_HEALTHY;
	}
}

static int write_file_system(struct store *st, const struct format_options *opt, GString *why)
{
	uint64_t bytes[DMIOFS_MAX_DEVICES];
	GByteArray *root;
	int err;

	for (uint32_t i = 0; i < st->ndevices; i++)
		bytes[i] = st->dev[i].sb.dev_bytes;
	meta_init(&st->meta);
	alloc_init(&st->alloc, &st->layout, st->ndevices, st->copies, bytes);
	err = dev_clear_metadata_headers(st->client, &st->layout, st->dev, st->ndevices);
	if (err) {
		g_string_append_printf(why, "cannot write the metadata area: %s", g_strerror(-err));
		return err;
	}
	root = root_records(opt);
	err = meta_apply_all(&st->meta, root->data, root->len);
	g_byte_array_free(root, TRUE);
	st->next_seq = 1;
	st->ckpt_slot = 1; /* so the first checkpoint goes to slot 0 */
	if (!err)
		err = checkpoint_write(st);
	if (!err)
		err = store_write_superblocks(st, true);
	if (err)
		g_string_append_printf(why, "cannot write the new file system: %s", g_strerror(-err));
	return err;
}

static void fill_report(const struct store *st, struct format_report *r)
{
	uint64_t total, avail;

	memset(r, 0, sizeof(*r));
	memcpy(r->fs_uuid, st->sb.fs_uuid, 16);
	r->copies = st->copies;
	r->ndevices = st->ndevices;
	for (uint32_t i = 0; i < st->ndevices; i++) {
		memcpy(r->dev_uuid[i], st->dev[i].sb.dev_uuid, 16);
		r->dev_bytes[i] = st->dev[i].sb.dev_bytes;
	}
	alloc_space(&st->alloc, &total, &avail);
	r->capacity = total * DMIOFS_BLOCK;
	r->root_reserve = alloc_root_reserve(&st->alloc, st->sb.root_reserve_permille) * DMIOFS_BLOCK;
	r->layout = st->layout;
}

int store_format(const char *const *paths, uint32_t n, const struct format_options *opt,
		 struct format_report *report, GString *why)
{
	struct store *st = g_new0(struct store, 1);
	uint64_t smallest = UINT64_MAX;
	uint32_t copies;
	int err = check_options(opt, n, &copies, why);

	if (err) {
		g_free(st);
		return err;
	}
	st->pending = g_byte_array_new();
	st->client = dm_io_client_create(256);
	st->meta_client = st->client;
	if (!st->client) {
		err = -errno;
		goto out;
	}
	for (uint32_t i = 0; i < n && !err; i++) {
		err = dev_open(&st->dev[i], paths[i], O_RDWR, why);
		if (!err && st->dev[i].bytes < smallest)
			smallest = st->dev[i].bytes;
	}
	if (err)
		goto out;
	st->ndevices = n;
	st->copies = copies;
	err = layout_choose(smallest & ~(uint64_t)(DMIOFS_BLOCK - 1), opt->meta_bytes, &st->layout);
	if (err) {
		for (uint32_t i = 0; i < n; i++) {
			if (st->dev[i].bytes != smallest)
				continue;
			g_string_append_printf(why, "%s (%llu KiB): too small for dmiofs; every device needs at least %llu MiB%s",
					       st->dev[i].path, (unsigned long long)(smallest >> 10),
					       (unsigned long long)(layout_min_bytes(opt->meta_bytes) >> 20),
					       opt->meta_bytes ? " with this metadata size" : "");
			break;
		}
		goto out;
	}
	fill_superblock(st, opt, copies, n);
	err = write_file_system(st, opt, why);
	if (!err)
		fill_report(st, report);
out:
	for (uint32_t i = 0; i < DMIOFS_MAX_DEVICES; i++)
		dev_close(&st->dev[i]);
	meta_destroy(&st->meta);
	alloc_destroy(&st->alloc);
	g_byte_array_free(st->pending, TRUE);
	if (st->client)
		dm_io_client_destroy(st->client);
	g_free(st);
	return err;
}
