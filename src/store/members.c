/* members.c - adding, replacing, removing and healing devices (members.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "admin.h"
#include "apply.h"
#include "assemble.h"
#include "checkpoint.h"
#include "events.h"
#include "ioerr.h"
#include "journal.h"
#include "members.h"
#include "mender.h"
#include "probe.h"

#define ADDS_PER_STEP 256 /* new copies started at once: the commit stays small */
#define ANY_DEVICE UINT32_MAX

static const char *reason_word(uint32_t reason)
{
	switch (reason) {
	case LEAVE_REPLACE:
		return "replaced";
	case LEAVE_REMOVE:
		return "removed";
	case LEAVE_HEAL:
		return "lost";
	default:
		return "staying";
	}
}

/* ---- where copies can go -------------------------------------------------------------- */

/* May device d take a new copy of chunk c? */
static bool can_take(struct store *st, const struct chunk *c, uint32_t d, const uint64_t *free_slots)
{
	const struct sdev *dev = &st->dev[d];

	return dev_written(dev) && !dev->leaving && free_slots[d] && alloc_copy_on(c, d) < 0;
}

/* The best home for a new copy of c, not one of the devices `taken` by
 * its other new copies: the target when given, else the device with the
 * most room; -1 when none will do. */
static int home_for(struct store *st, const struct chunk *c, uint32_t target, uint32_t taken,
		    const uint64_t *free_slots)
{
	int best = -1;

	if (target != ANY_DEVICE)
		return !(taken & (1u << target)) && can_take(st, c, target, free_slots) ? (int)target : -1;
	for (uint32_t d = 0; d < st->ndevices; d++)
		if (!(taken & (1u << d)) && can_take(st, c, d, free_slots) &&
		    (best < 0 || free_slots[d] > free_slots[best]))
			best = (int)d;
	return best;
}

/* Copies of c on devices that stay (not leaving, not in `going`). */
static uint32_t staying_copies(struct store *st, const struct chunk *c, uint32_t going)
{
	uint32_t n = 0;

	for (uint32_t k = 0; k < c->ncopies; k++) {
		uint32_t d = c->stripes[k].dev;

		n += !st->dev[d].leaving && !(going & (1u << d));
	}
	return n;
}

static bool on_any(const struct chunk *c, uint32_t devs)
{
	for (uint32_t k = 0; k < c->ncopies; k++)
		if (devs & (1u << c->stripes[k].dev))
			return true;
	return false;
}

/* Lock held: could every chunk with a copy on the devices `going` (and
 * those already leaving) have `copies` copies on the others, as the drain
 * would place them?  *unplaced counts the chunks that could not. */
static bool can_drain(struct store *st, uint32_t going, uint32_t target, uint64_t *unplaced)
{
	uint64_t free_slots[DMIOFS_MAX_DEVICES];

	*unplaced = 0;
	for (uint32_t d = 0; d < st->ndevices; d++)
		free_slots[d] = alloc_free_slots(&st->alloc, d);
	for (guint i = 0; i < st->alloc.chunks->len; i++) {
		struct chunk *c = alloc_chunk(&st->alloc, i);
		uint32_t have, taken = going;

		if (!c || !on_any(c, going))
			continue;
		for (have = staying_copies(st, c, going); have < st->copies; have++) {
			int d = home_for(st, c, target, taken, free_slots);

			if (d < 0) {
				(*unplaced)++;
				break;
			}
			free_slots[d]--;
			taken |= 1u << d;
		}
	}
	return !*unplaced;
}

static uint32_t leaving_mask(struct store *st)
{
	uint32_t mask = 0;

	for (uint32_t d = 0; d < st->ndevices; d++)
		if (st->dev[d].leaving)
			mask |= 1u << d;
	return mask;
}

uint32_t members_leaving(struct store *st)
{
	for (uint32_t d = 0; d < st->ndevices; d++)
		if (st->dev[d].leaving)
			return st->dev[d].leaving;
	return LEAVE_NOT;
}

/* ---- draining ---------------------------------------------------------------------- */

/* Are the copies that stay whole (every one on a written device holds
 * every block), with at least one of them written? */
static bool staying_whole(struct store *st, const struct chunk *c)
{
	uint32_t whole = 0;

	for (uint32_t k = 0; k < c->ncopies; k++) {
		const struct sdev *d = &st->dev[c->stripes[k].dev];

		if (d->leaving)
			continue;
		if (dev_written(d) && c->nstale[k])
			return false;
		whole += dev_written(d);
	}
	return whole > 0;
}

/* The target of the devices leaving that c has a copy on, if one has. */
static uint32_t target_of(struct store *st, const struct chunk *c)
{
	for (uint32_t k = 0; k < c->ncopies; k++) {
		const struct sdev *d = &st->dev[c->stripes[k].dev];

		if (d->leaving && d->leave_target != ANY_DEVICE)
			return d->leave_target;
	}
	return ANY_DEVICE;
}

/* Records for one chunk with copies on leaving devices: new copies where
 * too few stay, the leaving copies dropped once the staying ones are
 * whole.  *adds counts the new copies. */
static void drain_chunk(struct store *st, struct chunk *c, uint64_t *free_slots, GByteArray *r, uint32_t *adds)
{
	uint32_t have = staying_copies(st, c, 0);

	if (have >= st->copies) {
		if (!staying_whole(st, c))
			return; /* the new copies are still being made */
		for (uint32_t k = 0; k < c->ncopies; k++)
			if (st->dev[c->stripes[k].dev].leaving)
				rec_put_stripe_drop(r, c->id, c->stripes[k].dev);
		return;
	}
	for (uint32_t taken = 0; have < st->copies && *adds < ADDS_PER_STEP; have++) {
		int d = home_for(st, c, target_of(st, c), taken, free_slots);

		if (d < 0 || c->ncopies + (uint32_t)__builtin_popcount(taken) >= DMIOFS_MAX_COPIES)
			return; /* nowhere to go (or no room in the chunk): it waits */
		taken |= 1u << d;
		rec_put_stripe_add(r, c->id, (uint32_t)d, alloc_next_slot(&st->alloc, (uint32_t)d) +
								  (alloc_free_slots(&st->alloc, (uint32_t)d) - free_slots[d]) *
									  st->layout.chunk_bytes);
		free_slots[d]--;
		(*adds)++;
	}
}

/* Lock held: the new copies just added need only what files use. */
static void forget_unused_on_new(struct store *st, const GByteArray *added, GByteArray *r)
{
	const uint8_t *pos = added->data, *end = added->data + added->len;
	struct record rec;

	while (rec_next(&pos, end, &rec) > 0) {
		struct chunk *c;
		int k;

		if (rec.type != REC_STRIPE_ADD || !(c = alloc_chunk(&st->alloc, rec.u.stripe.chunk)))
			continue;
		k = alloc_copy_on(c, rec.u.stripe.dev);
		if (k >= 0)
			alloc_put_unused_stale(c, (uint32_t)k, r);
	}
}

/* Lock held: leaving devices that hold no copy any more are removed;
 * the devices removed, by index. */
static uint32_t remove_drained(struct store *st, GByteArray *r)
{
	uint32_t removed = 0;

	uint32_t holding = 0;

	for (guint i = 0; i < st->alloc.chunks->len; i++) {
		struct chunk *c = alloc_chunk(&st->alloc, i);

		for (uint32_t k = 0; c && k < c->ncopies; k++)
			holding |= 1u << c->stripes[k].dev;
	}
	for (uint32_t d = 0; d < st->ndevices; d++) {
		if (!st->dev[d].leaving || (holding & (1u << d)))
			continue;
		rec_put_dev_state(r, d, DEV_REMOVED, 0);
		removed |= 1u << d;
	}
	return removed;
}

/* Lock held: said once the removals are applied (the status then is
 * what the event reports). */
static void say_removed(struct store *st, uint32_t removed, const uint32_t *reasons)
{
	for (uint32_t d = 0; d < st->ndevices; d++)
		if (removed & (1u << d))
			store_event(st, EVENT_REBUILD_DONE, (int)d, NULL,
				    "device %u (%s) %s: every chunk has its copies on the other devices again; it is "
				    "removed from the file system",
				    d, st->dev[d].path ? st->dev[d].path : "not present", reason_word(reasons[d]));
}

bool members_drain(struct store *st)
{
	uint32_t leaving = leaving_mask(st), adds = 0, removed, reasons[DMIOFS_MAX_DEVICES];
	uint64_t free_slots[DMIOFS_MAX_DEVICES];
	GByteArray *r, *more;
	bool changed;

	if (!leaving || st->opt.read_only || st->broken)
		return false;
	for (uint32_t d = 0; d < st->ndevices; d++)
		free_slots[d] = alloc_free_slots(&st->alloc, d);
	r = g_byte_array_new();
	for (guint i = 0; i < st->alloc.chunks->len; i++) {
		struct chunk *c = alloc_chunk(&st->alloc, i);

		if (c && on_any(c, leaving))
			drain_chunk(st, c, free_slots, r, &adds);
	}
	removed = remove_drained(st, r);
	for (uint32_t d = 0; d < st->ndevices; d++)
		reasons[d] = st->dev[d].leaving;
	changed = r->len > 0;
	if (changed && !store_log(st, r)) {
		say_removed(st, removed, reasons);
		more = g_byte_array_new();
		forget_unused_on_new(st, r, more);
		if (more->len)
			store_log(st, more);
		g_byte_array_free(more, TRUE);
		mender_kick(st);
	}
	g_byte_array_free(r, TRUE);
	return changed;
}

void members_heal(struct store *st, unsigned int heal_delay)
{
	gint64 now = g_get_monotonic_time();

	for (uint32_t d = 0; d < st->ndevices; d++) {
		struct sdev *dev = &st->dev[d];
		uint64_t unplaced;
		GByteArray *r;

		if ((dev->state != DEV_MISSING && dev->state != DEV_FAILED) || dev->leaving || dev->heal_refused ||
		    now - dev->away_since < (gint64)heal_delay * G_USEC_PER_SEC)
			continue;
		if (!can_drain(st, 1u << d, ANY_DEVICE, &unplaced)) {
			g_warning("device %u has been %s for %u s, but the others cannot hold its copies (%llu chunk(s) "
				  "would have nowhere to go): add or replace a device to restore redundancy",
				  d, dev_state_name(dev->state), heal_delay, (unsigned long long)unplaced);
			dev->heal_refused = true;
			continue;
		}
		g_warning("device %u has been %s for %u s: making its copies again on the other devices", d,
			  dev_state_name(dev->state), heal_delay);
		r = g_byte_array_new();
		rec_put_dev_leave(r, d, ANY_DEVICE, LEAVE_HEAL);
		store_log(st, r);
		g_byte_array_free(r, TRUE);
	}
}

/* Wait for the commit that holds what was just logged. */
static int durable(struct store *st, GString *why)
{
	int err = store_sync(st);

	if (err)
		g_string_append_printf(why, "it could not be made durable: %s", g_strerror(-err));
	return err;
}

/* ---- adding -------------------------------------------------------------------------------- */

static void random_uuid(uint8_t u[16])
{
	if (getrandom(u, 16, 0) != 16)
		for (int i = 0; i < 16; i++)
			u[i] = (uint8_t)g_random_int();
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
}

static bool same_file(const char *a, const char *b)
{
	struct stat x, y;

	if (a && b && (dmio_bdev_path_is_remote(a) || dmio_bdev_path_is_remote(b)))
		return !strcmp(a, b); /* an NBD export: its URI names it */
	if (!a || !b || stat(a, &x) || stat(b, &y))
		return false;
	if (S_ISBLK(x.st_mode) && S_ISBLK(y.st_mode))
		return x.st_rdev == y.st_rdev;
	return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* Lock held: log a change of the devices and write it everywhere at
 * once (a checkpoint, then the superblocks), so that every device's own
 * metadata and superblock know it before the answer goes out.  what says,
 * for a person, what could not be recorded. */
static int record_membership(struct store *st, GByteArray *r, const char *what, GString *why)
{
	int err = store_log(st, r);

	if (!err)
		err = checkpoint_write(st);
	if (!err)
		err = store_write_superblocks(st, false);
	if (err)
		g_string_append_printf(why, "%s could not be recorded: %s", what, g_strerror(-err));
	return err;
}

/* Lock held: is path a device this mount uses? */
static int member_at(struct store *st, const char *path)
{
	for (uint32_t k = 0; k < st->ndevices; k++)
		if (st->dev[k].bdev && same_file(st->dev[k].path, path))
			return (int)k;
	return -1;
}

/* Lock held: the index a new device takes. */
static int free_index(struct store *st)
{
	for (uint32_t k = 0; k < st->ndevices; k++)
		if (st->dev[k].state == DEV_REMOVED && !st->dev[k].bdev && !st->dev[k].reconnecting)
			return (int)k;
	return st->ndevices < DMIOFS_MAX_DEVICES ? (int)st->ndevices : -1;
}

/* Make the opened device d a new, empty device of the file system: its
 * superblocks first (a crash then leaves a device nobody lists), then
 * the record and a checkpoint on every device, then every superblock. */
static int join_new(struct store *st, struct sdev *d, uint32_t *index, GString *why)
{
	uint8_t uuid[16];
	uint64_t bytes = d->bytes & ~(uint64_t)(DMIOFS_BLOCK - 1);
	GByteArray *r;
	int k, err;

	if (!layout_chunks(&st->layout, bytes)) {
		g_string_append_printf(why, "%s: too small: it would hold no chunk (a device of this file system needs "
					    "at least %llu MiB)",
				       d->path,
				       (unsigned long long)((st->layout.data_offset + st->layout.chunk_bytes + (2u << 20)) >> 20));
		return -ENOSPC;
	}
	random_uuid(uuid);
	g_mutex_lock(&st->lock);
	k = free_index(st);
	if (k < 0) {
		g_string_append_printf(why, "the file system has %u devices already, the most it can have",
				       DMIOFS_MAX_DEVICES);
		g_mutex_unlock(&st->lock);
		return -ENOSPC;
	}
	d->sb = st->sb;
	memcpy(d->sb.dev_uuid, uuid, 16);
	d->sb.dev_index = (uint32_t)k;
	d->sb.dev_bytes = bytes;
	d->sb.ndevices = MAX(st->sb.ndevices, (uint32_t)k + 1);
	d->sb.devs[k] = (struct sb_dev){ .bytes = bytes, .state = DEV_HEALTHY };
	memcpy(d->sb.devs[k].uuid, uuid, 16);
	d->sb.generation = st->durable_seq;
	d->sb.flags = 0;
	d->state = DEV_HEALTHY;
	err = dev_clear_metadata_headers(st->meta_client, &st->layout, d, 1);
	for (int backup = 0; backup < 2 && !err; backup++)
		err = dev_write_sb(st->meta_client, d, &d->sb, backup);
	if (err) {
		g_string_append_printf(why, "%s: cannot write to it: %s", d->path, g_strerror(-err));
		g_mutex_unlock(&st->lock);
		return err;
	}
	dev_close(&st->dev[k]); /* a removed device's leftovers */
	st->dev[k] = *d;
	memset(d, 0, sizeof(*d));
	dev_record(&st->dev[k], st->opt.write_log, (uint32_t)k);
	for (uint32_t i = 0; i < st->ndevices; i++)
		st->dev[i].heal_refused = false; /* there may be room now */
	r = g_byte_array_new();
	rec_put_dev_add(r, (uint32_t)k, uuid, bytes);
	err = record_membership(st, r, "the new device", why);
	g_byte_array_free(r, TRUE);
	if (!err)
		g_message("%s joins the file system as device %d", st->dev[k].path, k);
	g_mutex_unlock(&st->lock);
	*index = (uint32_t)k;
	return err;
}

/* Bring back device k, away, as the opened device d: caught up on what
 * it missed, unless it went on alone meanwhile (a split brain). */
static int join_returning(struct store *st, struct sdev *d, uint32_t k, GString *why)
{
	uint64_t gen = assemble_own_generation(st, d);
	GByteArray *r;
	int err;

	g_mutex_lock(&st->lock);
	if (st->dev[k].left_at && gen > st->dev[k].left_at) {
		g_string_append_printf(why,
				       "%s (device %u) holds generation %llu, but the others went on without it after "
				       "generation %llu: it was written alone (a split brain); to rebuild it from this "
				       "file system, use dmiofs-ctl replace --force",
				       d->path, k, (unsigned long long)gen, (unsigned long long)st->dev[k].left_at);
		g_mutex_unlock(&st->lock);
		return -EUCLEAN;
	}
	d->state = st->dev[k].state;
	d->left_at = st->dev[k].left_at;
	d->err = st->dev[k].err;
	d->leaving = st->dev[k].leaving;
	d->leave_target = st->dev[k].leave_target;
	d->away_since = st->dev[k].away_since;
	d->generation = gen;
	g_free(st->dev[k].path);
	st->dev[k] = *d;
	memset(d, 0, sizeof(*d));
	dev_record(&st->dev[k], st->opt.write_log, k);
	r = g_byte_array_new();
	if (!st->dev[k].left_at)
		assemble_put_all_stale(st, k, r);
	rec_put_dev_state(r, k, DEV_RETURNING, 0);
	if (st->dev[k].leaving == LEAVE_HEAL) /* back before it was healed around: it stays */
		rec_put_dev_leave(r, k, ANY_DEVICE, LEAVE_NOT);
	/* Its metadata area is behind: the checkpoint makes it current. */
	err = record_membership(st, r, "the device's return", why);
	g_byte_array_free(r, TRUE);
	if (!err)
		store_event(st, EVENT_DEVICE_RETURNED, (int)k, NULL,
			    "%s (device %u, generation %llu) is back: catching it up on what it missed", st->dev[k].path,
			    k, (unsigned long long)gen);
	mender_kick(st);
	g_mutex_unlock(&st->lock);
	return err;
}

/* Open path for joining: not a device this mount uses (but the failed
 * device `replacing`, when not -1: an export whose server came back
 * blank, a disk swapped at the same name), not in use. */
static int open_candidate(struct store *st, const char *path, int replacing, struct sdev *d, GString *why)
{
	int k, err;

	g_mutex_lock(&st->lock);
	k = member_at(st, path);
	g_mutex_unlock(&st->lock);
	if (k >= 0 && k != replacing) {
		g_string_append_printf(why, "%s is device %d of this file system already", path, k);
		return -EEXIST;
	}
	if (st->opt.read_only || st->broken) {
		g_string_append(why, "the file system is mounted read-only");
		return -EROFS;
	}
	err = dev_open_timed(d, path, O_RDWR, st->opt.nbd_timeout, why);
	if (err)
		dev_close(d);
	return err;
}

/* What the device holds that joining it would destroy, or NULL. */
static char *holds_data(const char *path)
{
	char *what = probe_dmiofs(path);

	return what ? what : probe_signature(path);
}

/* Device k of this file system, as the superblock of the opened device
 * d says; -1 when it is not one of ours. */
static int identity_of(struct store *st, struct sdev *d)
{
	GString *ignore = g_string_new(NULL);
	int k = -1;

	if (!dev_read_sb(st->meta_client, d, ignore) && !memcmp(d->sb.fs_uuid, st->sb.fs_uuid, 16) &&
	    d->sb.dev_index < st->ndevices && !memcmp(st->sb.devs[d->sb.dev_index].uuid, d->sb.dev_uuid, 16) &&
	    st->dev[d->sb.dev_index].state != DEV_REMOVED)
		k = (int)d->sb.dev_index;
	g_string_free(ignore, TRUE);
	return k;
}

/* Open a device to join as a new one, refusing one that holds data
 * unless forced (and then wiping the signatures libblkid knows). */
static int open_new(struct store *st, const char *path, bool force, int replacing, struct sdev *d, GString *why)
{
	char *what = holds_data(path);
	int err;

	if (what && !force) {
		g_string_append_printf(why, "%s holds %s; nothing was written. Use --force to overwrite it", path, what);
		g_free(what);
		return -EEXIST;
	}
	g_free(what);
	if (force && (err = probe_wipe(path))) {
		g_string_append_printf(why, "%s: cannot erase its signatures: %s", path, g_strerror(-err));
		return err;
	}
	return open_candidate(st, path, replacing, d, why);
}

/* A device that failed while mounted is still open: taking it back is
 * catching it up (a flaky cable, a disk that was reset). */
static int readd_failed(struct store *st, uint32_t k, GString *why)
{
	GByteArray *r = g_byte_array_new();
	int err;

	rec_put_dev_state(r, k, DEV_RETURNING, 0);
	if (st->dev[k].leaving == LEAVE_HEAL)
		rec_put_dev_leave(r, k, ANY_DEVICE, LEAVE_NOT);
	err = record_membership(st, r, "the device's return", why);
	g_byte_array_free(r, TRUE);
	if (!err)
		store_event(st, EVENT_DEVICE_RETURNED, (int)k, NULL,
			    "%s (device %u) is taken back: catching it up on what it missed", st->dev[k].path, k);
	mender_kick(st);
	return err;
}

#define RECONNECT_MAX_WAIT_S 60

/* Is the export of device k, connected again, still that device of this
 * file system, and not written alone meanwhile?  0, or -errno with why. */
static int reconnected_same(struct store *st, uint32_t k, GString *why)
{
	struct sdev probe = st->dev[k]; /* the same bdev; its own superblock copy */
	GString *reason = g_string_new(NULL);
	int err = dev_read_sb(st->meta_client, &probe, reason);
	uint64_t gen;

	if (!err && (memcmp(probe.sb.fs_uuid, st->sb.fs_uuid, 16) || memcmp(probe.sb.dev_uuid, st->sb.devs[k].uuid, 16))) {
		g_string_append(reason, "it holds another device");
		err = -EMEDIUMTYPE;
	}
	if (err) {
		g_string_append_printf(why, "%s answers again, but is not device %u of this file system (%s)",
				       st->dev[k].path, k, reason->str);
		g_string_free(reason, TRUE);
		return err == -EIO ? -EIO : -EMEDIUMTYPE;
	}
	g_string_free(reason, TRUE);
	gen = assemble_own_generation(st, &probe);
	if (st->dev[k].left_at && gen > st->dev[k].left_at) {
		g_string_append_printf(why, "%s is back at generation %llu, past %llu where it left: it was written "
					    "alone (a split brain)",
				       st->dev[k].path, (unsigned long long)gen, (unsigned long long)st->dev[k].left_at);
		return -EUCLEAN;
	}
	return 0;
}

/* Device k, missing since the mount, is the export at path: open it and
 * bring it back if it is that device (never as a new one). */
static int rejoin_missing(struct store *st, uint32_t k, const char *path, GString *why)
{
	struct sdev d = { 0 };
	int err = open_candidate(st, path, -1, &d, why);
	bool same;

	if (err)
		return err;
	g_mutex_lock(&st->lock);
	same = identity_of(st, &d) == (int)k && !st->dev[k].bdev && st->dev[k].state == DEV_MISSING;
	g_mutex_unlock(&st->lock);
	if (!same) {
		g_string_append_printf(why, "%s answers again, but is not device %u of this file system", path, k);
		dev_close(&d);
		return -EMEDIUMTYPE;
	}
	err = join_returning(st, &d, k, why);
	dev_close(&d);
	return err;
}

/* A server that is simply still away: no news worth a warning. */
static bool unreachable(int err)
{
	return err == -ENOENT || dev_server_unreachable(err);
}

void members_reconnect_one(struct store *st, uint32_t k)
{
	struct sdev *dev = &st->dev[k];
	GString *why = g_string_new(NULL);
	char *path = g_strdup(dev->path);
	bool failed = dev->state == DEV_FAILED;
	int err;

	dev->reconnecting = true;
	g_mutex_unlock(&st->lock);
	if (failed) {
		err = dmio_bdev_reconnect(dev->bdev);
		if (!err && (err = reconnected_same(st, k, why)))
			dmio_bdev_disconnect(dev->bdev); /* not ours: let the server go */
	} else {
		err = rejoin_missing(st, k, path, why);
	}
	g_mutex_lock(&st->lock);
	dev = &st->dev[k]; /* rejoining replaced it */
	dev->reconnecting = false;
	if (!err && failed && dev->state == DEV_FAILED) {
		dev->reconnect_wait_s = 0;
		err = readd_failed(st, k, why);
	}
	g_free(path);
	if (err) {
		dev->reconnect_wait_s = MIN(MAX(2 * dev->reconnect_wait_s, 1u), RECONNECT_MAX_WAIT_S);
		dev->reconnect_at = g_get_monotonic_time() + (gint64)dev->reconnect_wait_s * G_USEC_PER_SEC;
		if (err == -EMEDIUMTYPE) /* the server lost it, or serves another export */
			g_warning("%s; it stays %s (trying again in %u s). If its server lost what it held, make "
				  "it a fresh copy: dmiofs-ctl replace MOUNTPOINT %u '%s'",
				  why->len ? why->str : "its server is back with another export", dev_state_name(dev->state),
				  dev->reconnect_wait_s, k, dev->path);
		else if (!unreachable(err)) /* a server out of reach is expected; anything else is news */
			g_warning("%s; it stays %s (trying again in %u s)", why->len ? why->str : g_strerror(-err),
				  dev_state_name(dev->state), dev->reconnect_wait_s);
	}
	g_string_free(why, TRUE);
}

uint32_t members_to_reconnect(struct store *st)
{
	gint64 now = g_get_monotonic_time();
	uint32_t due = 0;

	for (uint32_t k = 0; k < st->ndevices; k++) {
		struct sdev *dev = &st->dev[k];

		/* not one being replaced or removed: only healing gives way */
		bool staying = !dev->leaving || dev->leaving == LEAVE_HEAL;
		bool dropped = dev->state == DEV_FAILED && dev->bdev && dmio_bdev_is_remote(dev->bdev) &&
			       !dmio_bdev_is_connected(dev->bdev);
		bool away = dev->state == DEV_MISSING && !dev->bdev && dev->path && dmio_bdev_path_is_remote(dev->path);

		if (dev->state == DEV_HEALTHY && dev->bdev && dmio_bdev_is_remote(dev->bdev) &&
		    !dmio_bdev_is_connected(dev->bdev)) {
			ioerr_fail_disconnected(st, k); /* reconnected from the next look on */
			dev->reconnect_wait_s = 0;
			dev->reconnect_at = now;
			continue;
		}
		if (staying && (dropped || away) && !dev->reconnecting && now >= dev->reconnect_at) {
			dev->reconnecting = true; /* until members_reconnect_one is done with it */
			due |= 1u << k;
		}
	}
	return due;
}

int members_add(struct store *st, const char *path, bool force, uint32_t *index, GString *why)
{
	struct sdev d = { 0 };
	int k, err;

	g_mutex_lock(&st->lock);
	k = member_at(st, path);
	if (k >= 0 && st->dev[k].state == DEV_FAILED && !st->opt.read_only) {
		*index = (uint32_t)k;
		err = readd_failed(st, (uint32_t)k, why);
		g_mutex_unlock(&st->lock);
		return err;
	}
	g_mutex_unlock(&st->lock);
	err = open_candidate(st, path, -1, &d, why);

	if (err)
		return err;
	g_mutex_lock(&st->lock);
	k = identity_of(st, &d);
	if (k >= 0 && (st->dev[k].bdev || st->dev[k].state == DEV_HEALTHY || st->dev[k].state == DEV_RETURNING)) {
		g_string_append_printf(why, "%s claims to be device %d, which is here already", path, k);
		k = -2;
	}
	g_mutex_unlock(&st->lock);
	if (k == -2) {
		dev_close(&d);
		return -EEXIST;
	}
	if (k >= 0) {
		*index = (uint32_t)k;
		err = join_returning(st, &d, (uint32_t)k, why);
		dev_close(&d);
		return err;
	}
	dev_close(&d);
	err = open_new(st, path, force, -1, &d, why);
	if (!err)
		err = join_new(st, &d, index, why);
	dev_close(&d);
	if (!err)
		mender_kick(st);
	return err;
}

int members_replace(struct store *st, const char *old, const char *new_path, bool force, GString *why)
{
	struct sdev d = { 0 };
	uint32_t k, j, need = 0;
	int replacing = -1;
	uint64_t slots;
	GByteArray *r;
	int err;

	g_mutex_lock(&st->lock);
	err = admin_find_device(st, old, &k, why);
	if (!err && st->dev[k].leaving) {
		g_string_append_printf(why, "device %u is being %s already", k, reason_word(st->dev[k].leaving));
		err = -EALREADY;
	}
	for (guint i = 0; !err && i < st->alloc.chunks->len; i++) {
		struct chunk *c = alloc_chunk(&st->alloc, i);

		need += c && alloc_copy_on(c, k) >= 0;
	}
	/* A failed device may be replaced by what now answers at its own
	 * name: a fresh, empty device there, filled from the other copies. */
	if (!err && st->dev[k].state == DEV_FAILED)
		replacing = (int)k;
	g_mutex_unlock(&st->lock);
	if (err)
		return err;
	err = open_new(st, new_path, force, replacing, &d, why);
	if (err)
		return err;
	slots = layout_chunks(&st->layout, d.bytes & ~(uint64_t)(DMIOFS_BLOCK - 1));
	if (slots < need) {
		g_string_append_printf(why, "%s is too small: it holds %llu chunk(s), device %u has %u", new_path,
				       (unsigned long long)slots, k, need);
		dev_close(&d);
		return -ENOSPC;
	}
	err = join_new(st, &d, &j, why);
	dev_close(&d);
	if (err)
		return err;
	g_mutex_lock(&st->lock);
	r = g_byte_array_new();
	rec_put_dev_leave(r, k, j, LEAVE_REPLACE);
	err = store_log(st, r);
	g_byte_array_free(r, TRUE);
	if (err)
		g_string_append_printf(why, "the replacement could not be recorded: %s", g_strerror(-err));
	else
		g_message("device %u is being replaced by %s (device %u)", k, st->dev[j].path, j);
	mender_kick(st);
	g_mutex_unlock(&st->lock);
	/* Answered only once it is on disk: a crash then resumes it. */
	return err ? err : durable(st, why);
}

int members_remove(struct store *st, const char *spec, GString *why)
{
	uint64_t unplaced;
	uint32_t k, staying = 0;
	GByteArray *r;
	int err;

	g_mutex_lock(&st->lock);
	err = admin_find_device(st, spec, &k, why);
	if (!err && st->dev[k].leaving) {
		g_string_append_printf(why, "device %u is being %s already", k, reason_word(st->dev[k].leaving));
		err = -EALREADY;
	}
	for (uint32_t d = 0; d < st->ndevices; d++)
		staying += d != k && st->dev[d].state != DEV_REMOVED && !st->dev[d].leaving;
	if (!err && staying < st->copies) {
		g_string_append_printf(why, "device %u cannot go: %u device(s) would stay, and every block is kept on "
					    "%u; add a device first",
				       k, staying, st->copies);
		err = -ENOSPC;
	}
	if (!err && !can_drain(st, (1u << k) | leaving_mask(st), ANY_DEVICE, &unplaced)) {
		g_string_append_printf(why, "device %u cannot go: the other devices cannot hold its copies (%llu "
					    "chunk(s) would have nowhere to go); add a device first",
				       k, (unsigned long long)unplaced);
		err = -ENOSPC;
	}
	if (!err) {
		r = g_byte_array_new();
		rec_put_dev_leave(r, k, ANY_DEVICE, LEAVE_REMOVE);
		err = store_log(st, r);
		g_byte_array_free(r, TRUE);
		if (err)
			g_string_append_printf(why, "the removal could not be recorded: %s", g_strerror(-err));
		else
			g_message("device %u (%s) is being removed: its copies go to the other devices", k,
				  st->dev[k].path ? st->dev[k].path : "not present");
		mender_kick(st);
	}
	g_mutex_unlock(&st->lock);
	return err ? err : durable(st, why);
}
