/* apply.c - the record core (apply.h): applying records, logging them,
 * and what they will cost in a checkpoint. */
#include <errno.h>

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

static int apply_dev_state(struct store *st, uint32_t dev, uint32_t state, uint64_t left_at)
{
	if (dev >= st->ndevices || state > DEV_STATE_MAX)
		return -EUCLEAN;
	st->dev[dev].state = state;
	st->dev[dev].left_at = state == DEV_HEALTHY ? 0 : left_at;
	st->alloc.dev_place[dev] = place_of(state);
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
	uint64_t devices = st->ndevices * (rec_bytes_dev_state() + rec_bytes_counters());

	return meta_estimate_bytes(&st->meta) + st->alloc.chunks->len * rec_bytes_chunk(st->copies) +
	       st->alloc.stale_runs * rec_bytes_stale() + devices + rec_bytes_ino() + rec_bytes_scrub();
}

int store_meta_room(const struct store *st, uint64_t more, unsigned int share64)
{
	return store_meta_bytes(st) + more > st->layout.ckpt_bytes / 64 * share64 ? -ENOSPC : 0;
}
