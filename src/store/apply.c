/* apply.c - the record core (apply.h): applying records, logging them,
 * and what they will cost in a checkpoint. */
#include <errno.h>
#include <string.h>

#include "apply.h"

static enum place place_of(uint32_t state)
{
	switch (state) {
	case DEV_HEALTHY:
	case DEV_RETURNING:
		return PLACE_WRITTEN;
	case DEV_FAILED:
	case DEV_MISSING:
		return PLACE_SHORT;
	default:
		return PLACE_NONE;
	}
}

static bool away(uint32_t state)
{
	return state == DEV_FAILED || state == DEV_MISSING;
}

static int apply_dev_state(struct store *st, uint32_t dev, uint32_t state, uint64_t left_at)
{
	struct sdev *d;

	if (dev >= st->ndevices || state > DEV_STATE_MAX)
		return -EUCLEAN;
	d = &st->dev[dev];
	if (away(state) && !away(d->state))
		d->away_since = g_get_monotonic_time();
	d->state = state;
	d->left_at = state == DEV_HEALTHY || state == DEV_RETURNING ? 0 : left_at;
	st->alloc.dev_place[dev] = d->leaving ? PLACE_NONE : place_of(state);
	st->sb.devs[dev].state = state;
	st->sb.devs[dev].left_at = d->left_at;
	if (state == DEV_REMOVED)
		d->leaving = LEAVE_NOT;
	return 0;
}

/* A device joins at index, or a checkpoint describes one that is there. */
static int apply_dev_add(struct store *st, uint32_t index, const uint8_t uuid[16], uint64_t bytes)
{
	struct sb_dev *t = &st->sb.devs[index];

	if (index >= DMIOFS_MAX_DEVICES || !bytes)
		return -EUCLEAN;
	if (index < st->ndevices && !memcmp(t->uuid, uuid, 16))
		return 0; /* known: the table already says so */
	if (index < st->ndevices && t->state != DEV_REMOVED)
		return -EUCLEAN; /* another device's place */
	memcpy(t->uuid, uuid, 16);
	t->bytes = bytes;
	t->state = DEV_HEALTHY;
	t->left_at = 0;
	st->dev[index].state = DEV_HEALTHY;
	st->dev[index].left_at = 0;
	st->dev[index].leaving = LEAVE_NOT;
	memset(&st->dev[index].err, 0, sizeof(st->dev[index].err));
	if (index >= st->ndevices)
		st->ndevices = st->sb.ndevices = index + 1;
	alloc_add_device(&st->alloc, index, bytes);
	return 0;
}

static int apply_dev_leave(struct store *st, uint32_t dev, uint32_t target, uint32_t reason)
{
	if (dev >= st->ndevices || st->dev[dev].state == DEV_REMOVED || (target != UINT32_MAX && target >= st->ndevices))
		return -EUCLEAN;
	st->dev[dev].leaving = reason;
	st->dev[dev].leave_target = target;
	/* A device leaving takes no new chunk. */
	st->alloc.dev_place[dev] = reason ? PLACE_NONE : place_of(st->dev[dev].state);
	return 0;
}

int store_apply(struct store *st, const struct record *rec)
{
	switch (rec->type) {
	case REC_CHUNK:
		return alloc_apply_chunk(&st->alloc, &rec->u.chunk);
	case REC_DEV_STATE:
		return apply_dev_state(st, rec->u.dev_state.dev, rec->u.dev_state.state, rec->u.dev_state.left_at);
	case REC_STALE:
		return alloc_apply_stale(&st->alloc, rec->u.stale.chunk, rec->u.stale.dev, rec->u.stale.cblock,
					 rec->u.stale.n, rec->u.stale.stale);
	case REC_DEV_COUNTERS:
		if (rec->u.counters.id >= st->ndevices)
			return -EUCLEAN;
		st->dev[rec->u.counters.id].err = rec->u.counters;
		return 0;
	case REC_SCRUB:
		st->scrub = rec->u.scrub;
		return 0;
	case REC_STRIPE_ADD:
		return alloc_apply_stripe_add(&st->alloc, rec->u.stripe.chunk, rec->u.stripe.dev, rec->u.stripe.offset);
	case REC_STRIPE_DROP:
		return alloc_apply_stripe_drop(&st->alloc, rec->u.stripe.chunk, rec->u.stripe.dev);
	case REC_DEV_ADD:
		return apply_dev_add(st, rec->u.dev_add.index, rec->u.dev_add.uuid, rec->u.dev_add.bytes);
	case REC_DEV_LEAVE:
		return apply_dev_leave(st, rec->u.leave.dev, rec->u.leave.target, rec->u.leave.reason);
	default:
		return meta_apply(&st->meta, rec);
	}
}

int store_apply_all(struct store *st, const uint8_t *buf, size_t len)
{
	const uint8_t *pos = buf, *end = buf + len;
	struct record rec;
	int ret;

	while ((ret = rec_next(&pos, end, &rec)) > 0) {
		ret = store_apply(st, &rec);
		if (ret)
			return ret;
	}
	return ret;
}

int store_log(struct store *st, GByteArray *records)
{
	int err;

	if (st->broken)
		return st->broken;
	if (st->opt.read_only)
		return -EROFS;
	err = store_apply_all(st, records->data, records->len);
	if (err) {
		/* Operations check before they build records, so this is a bug:
		 * stop writing rather than persist something inconsistent. */
		g_critical("records do not apply: %s; the file system is now read-only", g_strerror(-err));
		st->broken = -EIO;
		return -EIO;
	}
	g_byte_array_append(st->pending, records->data, records->len);
	if (st->pending->len >= st->layout.log_bytes / 16)
		g_cond_signal(&st->commit_cond);
	return 0;
}

int store_append(struct store *st, GByteArray *records)
{
	if (st->broken)
		return st->broken;
	if (st->opt.read_only)
		return -EROFS;
	g_byte_array_append(st->pending, records->data, records->len);
	return 0;
}

void store_note(struct store *st, GByteArray *records)
{
	if (store_log(st, records) && store_apply_all(st, records->data, records->len))
		g_warning("an error record does not apply; it is not kept");
}

void store_release_inode(struct store *st, struct dinode *in)
{
	GByteArray *r;

	if (in->nlink || in->nlookup || in->nopen || in->io || in->ino == ROOT_INO || st->opt.read_only ||
	    st->broken)
		return;
	r = g_byte_array_new();
	rec_put_ino(r, REC_INODE_FREE, in->ino);
	store_log(st, r);
	g_byte_array_free(r, TRUE);
}

uint64_t store_meta_bytes(const struct store *st)
{
	uint64_t devices = st->ndevices * (rec_bytes_dev_add() + rec_bytes_dev_state() + rec_bytes_counters() +
					   rec_bytes_dev_leave());

	return meta_estimate_bytes(&st->meta) + st->alloc.chunks->len * rec_bytes_chunk(0) +
	       st->alloc.stripes * (rec_bytes_chunk(1) - rec_bytes_chunk(0)) +
	       st->alloc.stale_runs * rec_bytes_stale() + devices + rec_bytes_ino() + rec_bytes_scrub();
}

int store_meta_room(const struct store *st, uint64_t more, unsigned int share64)
{
	return store_meta_bytes(st) + more > st->layout.ckpt_bytes / 64 * share64 ? -ENOSPC : 0;
}
