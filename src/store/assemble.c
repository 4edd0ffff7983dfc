/* assemble.c - which devices make up the file system at mount (assemble.h).
 *
 * Every device knows its own generation: the newest commit in its own
 * metadata area (every commit goes to every written device, so a device
 * that was away holds an older one).  Each also knows, from its
 * superblock, which others had left the file system when it last wrote,
 * and at which generation (left_at): the newest commit they may hold.  A
 * device holding more than another one's record of it left with has been
 * written without it: two parts of the mirror each went on alone, a split
 * brain, and nothing is merged silently.  Otherwise the device with the
 * newest generation speaks, devices behind it are caught up on what they
 * missed, and devices absent become missing. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extmap.h"
#include "apply.h"
#include "assemble.h"
#include "checkpoint.h"
#include "devlist.h"
#include "events.h"
#include "journal.h"
#include "mounts.h"

#define BUSY_WAIT_MS 10000
#define NAMED_FILES_MAX 10

/* A device as given on the command line. */
struct given {
	const char *path;
	struct sdev d;   /* d.bdev set once opened and its superblock read */
	bool absent;     /* could not be opened or read: it counts as missing */
	bool discarded;  /* of the part of a split brain that is not kept */
	uint32_t order;  /* its place in the list as the user gave it */
};

/* ---- opening ---------------------------------------------------------------- */

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
static int open_waiting(struct sdev *d, const char *path, int flags, unsigned int timeout_s, GString *why)
{
	gint64 deadline = g_get_monotonic_time() + BUSY_WAIT_MS * 1000;
	char *mnt;

	if (!device_busy(path))
		return dev_open_timed(d, path, flags, timeout_s, why);
	/* Asked only of a busy device: it reads the xattrs of the dmiofs
	 * mounts, which a hung daemon would not answer. */
	mnt = dmiofs_mounted_at(path);
	if (mnt) {
		g_string_append_printf(why, "%s: in use by the dmiofs file system mounted at %s", path, mnt);
		g_free(mnt);
		return -EBUSY;
	}
	while (device_busy(path) && g_get_monotonic_time() < deadline)
		g_usleep(100 * 1000);
	return dev_open_timed(d, path, flags, timeout_s, why);
}

/* A device given twice would otherwise fail on its own lock, as if another
 * program held it: say what is wrong instead. */
static bool given_twice(const char *const *paths, uint32_t n, GString *why)
{
	static const char once[] = "every device of the file system is given once";

	for (uint32_t i = 1; i < n; i++) {
		struct stat a, b;

		if (stat(paths[i], &a)) {
			/* opening it says why it cannot be opened; an NBD URI
			 * has no inode: its text names it */
			for (uint32_t j = 0; j < i; j++)
				if (dmio_bdev_path_is_remote(paths[i]) && !strcmp(paths[i], paths[j])) {
					g_string_printf(why, "%s: given twice; %s", paths[i], once);
					return true;
				}
			continue;
		}
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

/* Errors that mean "this device is not there", as a disk that died or
 * was unplugged would give, or a server that is down or out of reach:
 * the file system may mount without it.  (A TLS or protocol failure is a
 * mistake to fix, not an absence.) */
static bool counts_as_absent(const char *path, int err)
{
	if (dmio_bdev_path_is_remote(path) && dev_server_unreachable(err))
		return true;
	return err == -ENOENT || err == -ENXIO || err == -ENODEV || err == -EIO || err == -EACCES || err == -EPERM ||
	       err == -ENOMEDIUM;
}

/* Open one device and read its superblock.  A device that is not there
 * is noted absent; one that is there but not a device of a dmiofs file
 * system is an error: given by mistake, it is never written. */
static int open_given(struct store *st, struct given *g, GString *why)
{
	GString *reason = g_string_new(NULL);
	int flags = st->opt.read_only ? O_RDONLY : O_RDWR;
	int err = open_waiting(&g->d, g->path, flags, st->opt.nbd_timeout, reason);

	if (!err)
		err = dev_read_sb(st->meta_client, &g->d, reason);
	if (err && counts_as_absent(g->path, err)) {
		g_warning("%s; it counts as missing", reason->str);
		dev_close(&g->d);
		g->absent = true;
		err = 0;
	} else if (err) {
		g_string_append(why, reason->str);
		if (err == -ENODATA || err == -EUCLEAN)
			g_string_append(why, "; leave it out of the device list to mount without it (degraded)");
	}
	g_string_free(reason, TRUE);
	return err;
}

/* ---- generations and split brains --------------------------------------------- */

uint64_t assemble_own_generation(struct store *st, struct sdev *d)
{
	struct ckpt_header h;

	if (checkpoint_newest_on(st, d, &h))
		return 0;
	return journal_last_seq_on(st, d, h.log_pos, h.seq + 1);
}

/* The slot of device x's superblock table that holds device y. */
static const struct sb_dev *view_of(const struct given *x, const struct given *y)
{
	if (y->d.sb.dev_index >= x->d.sb.ndevices ||
	    memcmp(x->d.sb.devs[y->d.sb.dev_index].uuid, y->d.sb.dev_uuid, 16))
		return NULL;
	return &x->d.sb.devs[y->d.sb.dev_index];
}

/* Has y been written since x last wrote down that y had left?  (left_at
 * 0: a superblock written before it was recorded, which cannot tell.) */
static bool went_on_without(const struct given *x, const struct given *y)
{
	const struct sb_dev *v = view_of(x, y);

	return v && v->state != DEV_HEALTHY && v->state != DEV_RETURNING && v->left_at &&
	       y->d.generation > v->left_at;
}

static bool split_apart(const struct given *x, const struct given *y)
{
	return went_on_without(x, y) || went_on_without(y, x);
}

static void describe_split(const struct given *g, uint32_t n, GString *why)
{
	g_string_append(why, "split brain: parts of this mirror were each mounted and written without the other");
	for (uint32_t i = 0; i < n; i++)
		if (g[i].d.bdev)
			g_string_append_printf(why, "; %s (device %u) is at generation %llu", g[i].d.path,
					       g[i].d.sb.dev_index, (unsigned long long)g[i].d.generation);
	g_string_append(why, ". Nothing was changed. To choose: mount one part alone and add the other back "
			     "with dmiofs-ctl replace, or mount them together with -o keep=DEVICE to keep the "
			     "history of DEVICE's part (the other part's own writes are then overwritten)");
}

static bool same_device(const char *a, const char *b)
{
	struct stat x, y;

	if (stat(a, &x) || stat(b, &y))
		return !strcmp(a, b);
	if (S_ISBLK(x.st_mode) && S_ISBLK(y.st_mode))
		return x.st_rdev == y.st_rdev;
	return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* The event, before the devices are placed: the fs's identity from any
 * of them. */
static void split_brain_event(struct store *st, const struct given *g, uint32_t n, const char *message)
{
	for (uint32_t i = 0; i < n; i++)
		if (g[i].d.bdev) {
			st->sb = g[i].d.sb;
			break;
		}
	store_event(st, EVENT_SPLIT_BRAIN, -1, NULL, "%s", message);
}

/* Refuse a split brain, or with -o keep, mark the devices that are not
 * of the kept part discarded.  *keep is the index (into g) of the kept
 * device, or -1. */
static int settle_split(struct store *st, struct given *g, uint32_t n, int *keep, GString *why)
{
	bool split = false;

	*keep = -1;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++)
			if (g[i].d.bdev && g[j].d.bdev && split_apart(&g[i], &g[j]))
				split = true;
	if (st->opt.keep) {
		for (uint32_t i = 0; i < n && *keep < 0; i++)
			if (g[i].d.bdev && same_device(g[i].path, st->opt.keep))
				*keep = (int)i;
		if (*keep < 0) {
			g_string_append_printf(why, "keep=%s: not one of the devices given (or it cannot be read)",
					       st->opt.keep);
			return -EINVAL;
		}
	}
	if (!split)
		return 0;
	if (*keep < 0) {
		describe_split(g, n, why);
		split_brain_event(st, g, n, why->str);
		return -EUCLEAN;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!g[i].d.bdev || (int)i == *keep || !split_apart(&g[*keep], &g[i]))
			continue;
		g[i].discarded = true;
		g_warning("split brain: keeping the history of %s (generation %llu); %s (generation %llu) will be "
			  "rewritten from it",
			  g[*keep].d.path, (unsigned long long)g[*keep].d.generation, g[i].d.path,
			  (unsigned long long)g[i].d.generation);
	}
	return 0;
}

/* ---- assembling --------------------------------------------------------------- */

/* The device that speaks for the file system: of those kept, the newest
 * generation, then the newest superblock, then the one whose table knows
 * more devices (a device added online writes its superblock first), then
 * the first given. */
static int speaker(const struct given *g, uint32_t n)
{
	int best = -1;

	for (uint32_t i = 0; i < n; i++) {
		const struct sdev *d = &g[i].d;

		if (!d->bdev || g[i].discarded)
			continue;
		if (best < 0 || d->generation > g[best].d.generation ||
		    (d->generation == g[best].d.generation && d->sb.generation > g[best].d.sb.generation) ||
		    (d->generation == g[best].d.generation && d->sb.generation == g[best].d.sb.generation &&
		     d->sb.ndevices > g[best].d.sb.ndevices))
			best = (int)i;
	}
	return best;
}

/* Every device given that could be read belongs to the same file system. */
static int one_file_system(const struct given *g, uint32_t n, GString *why)
{
	const struct given *first = NULL;
	char a[37], b[37];

	/* The one given first is the reference: the odd one is named, in
	 * whatever order the devices were opened. */
	for (uint32_t i = 0; i < n; i++)
		if (g[i].d.bdev && (!first || g[i].order < first->order))
			first = &g[i];
	for (uint32_t i = 0; i < n; i++) {
		if (!g[i].d.bdev || &g[i] == first)
			continue;
		if (memcmp(g[i].d.sb.fs_uuid, first->d.sb.fs_uuid, 16)) {
			uuid_format(g[i].d.sb.fs_uuid, a);
			uuid_format(first->d.sb.fs_uuid, b);
			g_string_append_printf(why,
					       "%s belongs to file system %s, %s to %s: not one file system; leave out "
					       "the device that is not of this file system",
					       g[i].d.path, a, first->d.path, b);
			return -EINVAL;
		}
	}
	return 0;
}

/* Place every opened device at its index, as the speaker's table says. */
static int place_devices(struct store *st, struct given *g, uint32_t n, const struct superblock *sb, GString *why)
{
	for (uint32_t i = 0; i < n; i++) {
		struct sdev *d = &g[i].d;
		uint32_t k = d->sb.dev_index;

		if (!d->bdev)
			continue;
		if (k >= sb->ndevices || memcmp(d->sb.dev_uuid, sb->devs[k].uuid, 16)) {
			g_string_append_printf(why, "%s: its identity does not match device %u of the file system "
						    "(was it replaced?); leave it out of the device list",
					       d->path, k);
			return -EINVAL;
		}
		if (sb->devs[k].state == DEV_REMOVED) {
			g_string_append_printf(why, "%s: device %u was removed from the file system; leave it out of "
						    "the device list",
					       d->path, k);
			return -EINVAL;
		}
		if (st->dev[k].bdev) {
			g_string_append_printf(why, "%s and %s are the same device of the file system (index %u)",
					       st->dev[k].path, d->path, k);
			return -EINVAL;
		}
		if (d->bytes < d->sb.dev_bytes) {
			g_string_append_printf(why,
					       "%s: device is %llu bytes, smaller than the %llu it was made with; leave it "
					       "out of the device list to mount without it (degraded)",
					       d->path, (unsigned long long)d->bytes, (unsigned long long)d->sb.dev_bytes);
			return -EINVAL;
		}
		st->dev[k] = *d;
		memset(d, 0, sizeof(*d)); /* st->dev owns it now */
		dev_record(&st->dev[k], st->opt.write_log, k);
		if (!g[i].discarded)
			st->line |= 1u << k;
	}
	return 0;
}

/* A device given but absent, when it is the only one and exactly one
 * device of the file system is missing, was surely that one: status may
 * name it by the path the user knows. */
static void name_the_missing(struct store *st, const struct given *g, uint32_t n)
{
	const char *absent = NULL;
	int missing = -1, nabsent = 0, nmissing = 0;

	for (uint32_t i = 0; i < n; i++)
		if (g[i].absent) {
			absent = g[i].path;
			nabsent++;
		}
	for (uint32_t k = 0; k < st->sb.ndevices; k++)
		if (!st->dev[k].bdev && st->sb.devs[k].state != DEV_REMOVED) {
			missing = (int)k;
			nmissing++;
		}
	if (nabsent == 1 && nmissing == 1)
		st->dev[missing].path = devlist_canonical(absent);
}

/* Devices are taken in one order whatever the order given (by what they
 * are, not by name): two mounts of the same devices started at once then
 * never each hold one the other waits for. */
static gint by_identity(gconstpointer a, gconstpointer b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	struct stat sx, sy;
	bool hx = !stat(x, &sx), hy = !stat(y, &sy);
	uint64_t kx, ky, ix, iy;

	if (hx != hy)
		return hx ? -1 : 1; /* what cannot be found last */
	if (!hx)
		return strcmp(x, y);
	kx = S_ISBLK(sx.st_mode) ? sx.st_rdev : sx.st_dev;
	ky = S_ISBLK(sy.st_mode) ? sy.st_rdev : sy.st_dev;
	ix = S_ISBLK(sx.st_mode) ? 0 : sx.st_ino;
	iy = S_ISBLK(sy.st_mode) ? 0 : sy.st_ino;
	if (kx != ky)
		return kx < ky ? -1 : 1;
	return ix < iy ? -1 : ix > iy;
}

int assemble_open(struct store *st, const char *const *given_paths, uint32_t n, GString *why)
{
	const char **paths = g_memdup2(given_paths, n * sizeof(*paths));
	struct given *g;
	int err = 0, speaks, keep;
	uint32_t opened = 0;

	if (!n || n > DMIOFS_MAX_DEVICES) {
		g_string_append_printf(why, "%u devices given: a file system has 1 to %u", n, DMIOFS_MAX_DEVICES);
		g_free(paths);
		return -EINVAL;
	}
	if (given_twice(paths, n, why)) {
		g_free(paths);
		return -EINVAL;
	}
	qsort(paths, n, sizeof(*paths), by_identity);
	g = g_new0(struct given, n);
	for (uint32_t i = 0; i < n && !err; i++) {
		g[i].path = paths[i];
		for (uint32_t k = 0; k < n; k++)
			if (given_paths[k] == paths[i])
				g[i].order = k;
		err = open_given(st, &g[i], why);
		opened += !err && !g[i].absent;
	}
	if (!err && !opened) {
		g_string_append(why, "no device of the file system could be opened");
		err = -ENOENT;
	}
	if (!err)
		err = one_file_system(g, n, why);
	if (!err) {
		/* Every device has the same layout: any superblock gives it. */
		for (uint32_t i = 0; i < n; i++)
			if (g[i].d.bdev && !memcmp(&st->sb, &(struct superblock){ 0 }, sizeof(st->sb)))
				st->sb = g[i].d.sb;
		layout_from_sb(&st->sb, &st->layout);
		for (uint32_t i = 0; i < n; i++)
			if (g[i].d.bdev)
				g[i].d.generation = assemble_own_generation(st, &g[i].d);
		err = settle_split(st, g, n, &keep, why);
	}
	if (!err) {
		speaks = speaker(g, n);
		st->sb = g[speaks].d.sb;
		layout_from_sb(&st->sb, &st->layout);
		err = place_devices(st, g, n, &st->sb, why);
	}
	if (!err) {
		st->ndevices = st->sb.ndevices;
		st->copies = st->sb.copies;
		for (uint32_t i = 0; i < n; i++)
			if (g[i].discarded)
				st->discarded |= 1u << g[i].d.sb.dev_index;
		name_the_missing(st, g, n);
	}
	for (uint32_t i = 0; i < n; i++)
		dev_close(&g[i].d);
	g_free(g);
	g_free(paths);
	if (err) {
		for (uint32_t i = 0; i < DMIOFS_MAX_DEVICES; i++)
			dev_close(&st->dev[i]);
		memset(st->dev, 0, sizeof(st->dev));
	}
	return err;
}

/* ---- after loading: states, coverage ------------------------------------------------ */

void assemble_put_all_stale(struct store *st, uint32_t k, GByteArray *r)
{
	for (guint i = 0; i < st->alloc.chunks->len; i++) {
		struct chunk *c = alloc_chunk(&st->alloc, i);

		if (c && alloc_copy_on(c, k) >= 0)
			rec_put_stale(r, c->id, k, 0, c->nblocks, true);
	}
}

static void describe_missing(struct store *st, uint32_t k, GString *s)
{
	char uuid[37];

	uuid_format(st->sb.devs[k].uuid, uuid);
	g_string_append_printf(s, "device %u (%s%s%s, %llu MiB)", k, st->dev[k].path ? st->dev[k].path : "",
			       st->dev[k].path ? ", " : "", uuid, (unsigned long long)(st->sb.devs[k].bytes >> 20));
}

/* The state each device takes now: returning when it was away and is
 * back, missing when it is not here.  Refuses a device the loaded history
 * says went on alone. */
static int settle_states(struct store *st, GByteArray *r, GString *why)
{
	for (uint32_t k = 0; k < st->ndevices; k++) {
		struct sdev *d = &st->dev[k];
		bool discarded = st->discarded & (1u << k);

		if (d->state == DEV_REMOVED)
			continue;
		if (!d->bdev) {
			if (d->state == DEV_HEALTHY || d->state == DEV_RETURNING)
				rec_put_dev_state(r, k, DEV_MISSING, st->durable_seq);
			continue;
		}
		if (d->state == DEV_HEALTHY && !discarded)
			continue;
		if (d->state != DEV_RETURNING && d->left_at && d->generation > d->left_at && !discarded) {
			g_string_append_printf(why,
					       "split brain: %s (device %u) holds generation %llu, but the others "
					       "went on without it after generation %llu; mount one part alone, or "
					       "use -o keep=DEVICE to choose which part's history to keep",
					       d->path, k, (unsigned long long)d->generation, (unsigned long long)d->left_at);
			store_event(st, EVENT_SPLIT_BRAIN, (int)k, NULL, "%s", why->str);
			return -EUCLEAN;
		}
		if (discarded || (d->state != DEV_RETURNING && !d->left_at))
			assemble_put_all_stale(st, k, r);
		if (d->state != DEV_RETURNING || discarded)
			rec_put_dev_state(r, k, DEV_RETURNING, 0);
		/* Back before its copies were all made elsewhere: it stays. */
		if (d->leaving == LEAVE_HEAL)
			rec_put_dev_leave(r, k, UINT32_MAX, LEAVE_NOT);
	}
	return 0;
}

struct coverage {
	struct store *st;
	GHashTable *lacking; /* ino -> path (NULL until named) */
};

/* Does every block of the extent have a copy that can be read? */
static bool extent_covered(struct store *st, const struct extent *e)
{
	struct chunk *c = alloc_chunk(&st->alloc, e->chunk);
	uint64_t covered = 0;

	if (!c)
		return false;
	for (uint32_t k = 0; k < c->ncopies; k++)
		if (dev_written(&st->dev[c->stripes[k].dev]) && !c->stale[k])
			return true; /* a whole copy: the common case, at once */
	/* Block by block where copies are stale in different places. */
	for (uint32_t b = e->cblock; b < e->cblock + e->nblocks; b++) {
		for (uint32_t k = 0; k < c->ncopies; k++) {
			const struct sdev *d = &st->dev[c->stripes[k].dev];

			if (dev_written(d) && !alloc_stale_count(c, k, b, 1)) {
				covered++;
				break;
			}
		}
		if (covered != (uint64_t)(b - e->cblock + 1))
			return false;
	}
	return true;
}

static void check_inode_coverage(gpointer key, gpointer value, gpointer data)
{
	struct dinode *in = value;
	struct coverage *cov = data;

	(void)key;
	if (!S_ISREG(in->mode))
		return;
	struct ext_pos p;

	if (!S_ISREG(in->mode))
		return;
	for (const struct extent *e = ext_first(in, &p); e; e = ext_next(in, &p)) {
		if (!extent_covered(cov->st, e)) {
			g_hash_table_insert(cov->lacking, GSIZE_TO_POINTER(in->ino), NULL);
			return;
		}
	}
}

static void name_lacking(gpointer key, gpointer value, gpointer data)
{
	GString *why = data;

	if (why->len > 4096)
		return;
	if (value)
		g_string_append_printf(why, " %s;", (const char *)value);
	else
		g_string_append_printf(why, " inode %llu (no name);", (unsigned long long)GPOINTER_TO_SIZE(key));
}

/* Refuse a mount that would lack a copy of some data, naming the files. */
static int check_coverage(struct store *st, GString *why)
{
	struct coverage cov = { st, g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free) };
	guint lacking;

	g_hash_table_foreach(st->meta.inodes, check_inode_coverage, &cov);
	lacking = g_hash_table_size(cov.lacking);
	if (lacking) {
		g_string_append_printf(why, "the devices present lack a copy of %u file(s), so it does not mount; bring "
					    "back the missing device(s):",
				       lacking);
		for (uint32_t k = 0; k < st->ndevices; k++)
			if (!dev_written(&st->dev[k]) && st->dev[k].state != DEV_REMOVED) {
				g_string_append_c(why, ' ');
				describe_missing(st, k, why);
			}
		g_string_append(why, ". Files affected:");
		meta_name_inodes(&st->meta, cov.lacking, NAMED_FILES_MAX);
		g_hash_table_foreach(cov.lacking, name_lacking, why);
		if (lacking > NAMED_FILES_MAX)
			g_string_append_printf(why, " and %u more", lacking - NAMED_FILES_MAX);
	}
	g_hash_table_destroy(cov.lacking);
	return lacking ? -ENODEV : 0;
}

static bool any_away(struct store *st)
{
	for (uint32_t k = 0; k < st->ndevices; k++)
		if (st->dev[k].state == DEV_MISSING || st->dev[k].state == DEV_FAILED)
			return true;
	return false;
}

static bool any_missing(struct store *st, GString *why)
{
	bool missing = false;

	for (uint32_t k = 0; k < st->ndevices; k++) {
		if (st->dev[k].bdev || st->dev[k].state == DEV_REMOVED)
			continue;
		g_string_append(why, missing ? "; " : "");
		describe_missing(st, k, why);
		g_string_append(why, " is missing");
		missing = true;
	}
	return missing;
}

/* The devices that went missing or came back, said once the mount is
 * sure to go ahead (a refused mount changed nothing). */
static void say_changes(struct store *st, const GByteArray *r)
{
	const uint8_t *pos = r->data, *end = r->data + r->len;
	bool background = !st->opt.read_only && !st->opt.no_background;
	struct record rec;

	while (rec_next(&pos, end, &rec) > 0) {
		uint32_t k = rec.u.dev_state.dev;

		if (rec.type != REC_DEV_STATE)
			continue;
		if (rec.u.dev_state.state == DEV_MISSING) {
			GString *s = g_string_new(NULL);

			describe_missing(st, k, s);
			store_event(st, EVENT_DEVICE_MISSING, (int)k, NULL, "%s is missing: the file system is degraded",
				    s->str);
			g_string_free(s, TRUE);
		} else if (rec.u.dev_state.state == DEV_RETURNING) {
			store_event(st, EVENT_DEVICE_RETURNED, (int)k, NULL, "%s (device %u, generation %llu) is back%s",
				    st->dev[k].path, k, (unsigned long long)st->dev[k].generation,
				    background ? ": catching it up on what it missed"
					       : "; it is caught up on what it missed when mounted read-write");
		}
	}
	if (any_away(st))
		store_event(st, EVENT_DEGRADED, -1, NULL, "the file system is degraded: %s",
			    background ? "see dmiofs-ctl status" : "a device is missing or failed");
}

int assemble_settle(struct store *st, bool *changed, GString *why)
{
	GByteArray *r = g_byte_array_new();
	int err;

	if (st->opt.no_degraded && any_missing(st, why)) {
		g_string_append(why, "; -o nodegraded refuses to mount without it");
		g_byte_array_free(r, TRUE);
		return -ENODEV;
	}
	err = settle_states(st, r, why);
	if (!err && r->len)
		store_note(st, r);
	*changed = r->len > 0;
	if (!err)
		err = check_coverage(st, why);
	if (!err)
		say_changes(st, r);
	g_byte_array_free(r, TRUE);
	return err;
}
