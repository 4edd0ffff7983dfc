/* records.c - encoding and decoding metadata records (records.h). */
#include <errno.h>

#include "codec.h"
#include "records.h"

/* Append a record of `bytes` (rec_bytes_*(), header included): the
 * header, then the payload written by the caller into the space reserved
 * for it.  An encoder that writes more or less than its size helper says
 * is a bug; the wbuf's overflow flag catches the first kind in tests. */
static struct wbuf rec_begin(GByteArray *out, enum rec_type type, size_t bytes)
{
	guint start = out->len;
	struct wbuf w;

	g_byte_array_set_size(out, start + (guint)bytes);
	w = wbuf_init(out->data + start, bytes);
	put_u16(&w, (uint16_t)type);
	put_u16(&w, 0);
	put_u32(&w, (uint32_t)(bytes - REC_HEADER_BYTES));
	return w;
}

static void put_time(struct wbuf *w, const struct rec_time *t)
{
	put_u64(w, (uint64_t)t->sec);
	put_u32(w, t->nsec);
}

static void get_time(struct rbuf *r, struct rec_time *t)
{
	t->sec = (int64_t)get_u64(r);
	t->nsec = get_u32(r);
}

void rec_put_inode(GByteArray *out, const struct rec_inode *in)
{
	struct wbuf w = rec_begin(out, REC_INODE, rec_bytes_inode());

	put_u64(&w, in->ino);
	put_u32(&w, in->mode);
	put_u32(&w, in->uid);
	put_u32(&w, in->gid);
	put_u32(&w, in->nlink);
	put_u64(&w, in->size);
	put_u64(&w, in->rdev);
	put_time(&w, &in->atime);
	put_time(&w, &in->mtime);
	put_time(&w, &in->ctime);
}

void rec_put_ino(GByteArray *out, enum rec_type type, uint64_t ino)
{
	struct wbuf w = rec_begin(out, type, rec_bytes_ino());

	put_u64(&w, ino);
}

void rec_put_link(GByteArray *out, enum rec_type type, uint64_t parent, uint64_t ino, const char *name,
		  size_t len)
{
	struct wbuf w = rec_begin(out, type, rec_bytes_link(len));

	put_u64(&w, parent);
	put_u64(&w, ino);
	put_str(&w, name, len);
}

void rec_put_extent(GByteArray *out, uint64_t ino, uint64_t fblock, uint32_t nblocks, uint32_t chunk,
		    uint32_t cblock, const uint32_t *csums)
{
	struct wbuf w = rec_begin(out, REC_EXTENT, rec_bytes_extent(nblocks));

	put_u64(&w, ino);
	put_u64(&w, fblock);
	put_u32(&w, nblocks);
	put_u32(&w, chunk);
	put_u32(&w, cblock);
	for (uint32_t i = 0; i < nblocks; i++)
		put_u32(&w, csums[i]);
}

void rec_put_punch(GByteArray *out, uint64_t ino, uint64_t fblock, uint64_t nblocks)
{
	struct wbuf w = rec_begin(out, REC_PUNCH, rec_bytes_punch());

	put_u64(&w, ino);
	put_u64(&w, fblock);
	put_u64(&w, nblocks);
}

void rec_put_symlink(GByteArray *out, uint64_t ino, const char *target, size_t len)
{
	struct wbuf w = rec_begin(out, REC_SYMLINK, rec_bytes_symlink(len));

	put_u64(&w, ino);
	put_str(&w, target, len);
}

void rec_put_xattr_set(GByteArray *out, uint64_t ino, const char *name, size_t name_len, const void *value,
		       uint32_t value_len)
{
	struct wbuf w = rec_begin(out, REC_XATTR_SET, rec_bytes_xattr_set(name_len, value_len));

	put_u64(&w, ino);
	put_str(&w, name, name_len);
	put_u32(&w, value_len);
	put_bytes(&w, value, value_len);
}

void rec_put_xattr_del(GByteArray *out, uint64_t ino, const char *name, size_t name_len)
{
	struct wbuf w = rec_begin(out, REC_XATTR_DEL, rec_bytes_xattr_del(name_len));

	put_u64(&w, ino);
	put_str(&w, name, name_len);
}

void rec_put_chunk(GByteArray *out, const struct rec_chunk *c)
{
	struct wbuf w = rec_begin(out, REC_CHUNK, rec_bytes_chunk(c->ncopies));

	put_u32(&w, c->id);
	put_u32(&w, c->ncopies);
	for (uint32_t i = 0; i < c->ncopies; i++) {
		put_u32(&w, c->stripes[i].dev);
		put_u64(&w, c->stripes[i].offset);
	}
}

void rec_put_dev_state(GByteArray *out, uint32_t dev, uint32_t state, uint64_t left_at)
{
	struct wbuf w = rec_begin(out, REC_DEV_STATE, rec_bytes_dev_state());

	put_u32(&w, dev);
	put_u32(&w, state);
	put_u64(&w, left_at);
}

void rec_put_stale(GByteArray *out, uint32_t chunk, uint32_t dev, uint32_t cblock, uint32_t n, bool stale)
{
	struct wbuf w = rec_begin(out, REC_STALE, rec_bytes_stale());

	put_u32(&w, chunk);
	put_u32(&w, dev);
	put_u32(&w, cblock);
	put_u32(&w, n);
	put_u32(&w, stale);
}

void rec_put_counters(GByteArray *out, enum rec_type type, const struct rec_counters *c)
{
	struct wbuf w = rec_begin(out, type, rec_bytes_counters());

	put_u64(&w, c->id);
	for (int i = 0; i < ERR_KINDS; i++)
		put_u64(&w, c->count[i]);
	put_u64(&w, c->last_bits);
	put_u32(&w, c->last_op);
	put_u32(&w, c->last_chunk);
}

void rec_put_scrub(GByteArray *out, const struct rec_scrub *s)
{
	struct wbuf w = rec_begin(out, REC_SCRUB, rec_bytes_scrub());

	put_u32(&w, s->state);
	put_u32(&w, s->result);
	put_u32(&w, s->chunk);
	put_u32(&w, s->cblock);
	put_u64(&w, s->started);
	put_u64(&w, s->ended);
	put_u64(&w, s->rate);
	put_u64(&w, s->checked);
	put_u64(&w, s->found);
	put_u64(&w, s->fixed);
	put_u64(&w, s->unfixed);
}

void rec_put_stripe_add(GByteArray *out, uint32_t chunk, uint32_t dev, uint64_t offset)
{
	struct wbuf w = rec_begin(out, REC_STRIPE_ADD, rec_bytes_stripe_add());

	put_u32(&w, chunk);
	put_u32(&w, dev);
	put_u64(&w, offset);
}

void rec_put_stripe_drop(GByteArray *out, uint32_t chunk, uint32_t dev)
{
	struct wbuf w = rec_begin(out, REC_STRIPE_DROP, rec_bytes_stripe_drop());

	put_u32(&w, chunk);
	put_u32(&w, dev);
}

void rec_put_dev_add(GByteArray *out, uint32_t index, const uint8_t uuid[16], uint64_t bytes)
{
	struct wbuf w = rec_begin(out, REC_DEV_ADD, rec_bytes_dev_add());

	put_u32(&w, index);
	put_u32(&w, 0);
	put_bytes(&w, uuid, 16);
	put_u64(&w, bytes);
}

void rec_put_dev_leave(GByteArray *out, uint32_t dev, uint32_t target, uint32_t reason)
{
	struct wbuf w = rec_begin(out, REC_DEV_LEAVE, rec_bytes_dev_leave());

	put_u32(&w, dev);
	put_u32(&w, target);
	put_u32(&w, reason);
}

static void decode_payload(struct rbuf *r, struct record *rec)
{
	switch (rec->type) {
	case REC_INODE: {
		struct rec_inode *in = &rec->u.inode;

		in->ino = get_u64(r);
		in->mode = get_u32(r);
		in->uid = get_u32(r);
		in->gid = get_u32(r);
		in->nlink = get_u32(r);
		in->size = get_u64(r);
		in->rdev = get_u64(r);
		get_time(r, &in->atime);
		get_time(r, &in->mtime);
		get_time(r, &in->ctime);
		break;
	}
	case REC_INODE_FREE:
	case REC_NEXT_INO:
		rec->u.ino = get_u64(r);
		break;
	case REC_LINK:
	case REC_UNLINK:
		rec->u.link.parent = get_u64(r);
		rec->u.link.ino = get_u64(r);
		rec->u.link.name = get_str(r, &rec->u.link.name_len);
		break;
	case REC_EXTENT:
		rec->u.extent.ino = get_u64(r);
		rec->u.extent.fblock = get_u64(r);
		rec->u.extent.nblocks = get_u32(r);
		rec->u.extent.chunk = get_u32(r);
		rec->u.extent.cblock = get_u32(r);
		rec->u.extent.csums = r->p;
		skip_bytes(r, 4 * (size_t)rec->u.extent.nblocks);
		break;
	case REC_PUNCH: {
		uint64_t n;

		rec->u.extent.ino = get_u64(r);
		rec->u.extent.fblock = get_u64(r);
		n = get_u64(r);
		rec->u.extent.span = n;
		rec->u.extent.nblocks = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
		break;
	}
	case REC_SYMLINK:
		rec->u.symlink.ino = get_u64(r);
		rec->u.symlink.target = get_str(r, &rec->u.symlink.len);
		break;
	case REC_XATTR_SET:
	case REC_XATTR_DEL:
		rec->u.xattr.ino = get_u64(r);
		rec->u.xattr.name = get_str(r, &rec->u.xattr.name_len);
		if (rec->type == REC_XATTR_SET) {
			rec->u.xattr.value_len = get_u32(r);
			rec->u.xattr.value = r->p;
			skip_bytes(r, rec->u.xattr.value_len);
		}
		break;
	case REC_CHUNK:
		rec->u.chunk.id = get_u32(r);
		rec->u.chunk.ncopies = get_u32(r);
		if (rec->u.chunk.ncopies > DMIOFS_MAX_COPIES) {
			r->overflow = true;
			break;
		}
		for (uint32_t i = 0; i < rec->u.chunk.ncopies; i++) {
			rec->u.chunk.stripes[i].dev = get_u32(r);
			rec->u.chunk.stripes[i].offset = get_u64(r);
		}
		break;
	case REC_DEV_STATE:
		rec->u.dev_state.dev = get_u32(r);
		rec->u.dev_state.state = get_u32(r);
		/* Version 1 records stop here. */
		rec->u.dev_state.left_at = r->end - r->p == 8 ? get_u64(r) : 0;
		break;
	case REC_STALE:
		rec->u.stale.chunk = get_u32(r);
		rec->u.stale.dev = get_u32(r);
		rec->u.stale.cblock = get_u32(r);
		rec->u.stale.n = get_u32(r);
		rec->u.stale.stale = get_u32(r);
		if (rec->u.stale.stale > 1)
			r->overflow = true;
		break;
	case REC_DEV_COUNTERS:
	case REC_FILE_ERRORS:
		rec->u.counters.id = get_u64(r);
		for (int i = 0; i < ERR_KINDS; i++)
			rec->u.counters.count[i] = get_u64(r);
		rec->u.counters.last_bits = get_u64(r);
		rec->u.counters.last_op = get_u32(r);
		rec->u.counters.last_chunk = get_u32(r);
		break;
	case REC_STRIPE_ADD:
	case REC_STRIPE_DROP:
		rec->u.stripe.chunk = get_u32(r);
		rec->u.stripe.dev = get_u32(r);
		rec->u.stripe.offset = rec->type == REC_STRIPE_ADD ? get_u64(r) : 0;
		break;
	case REC_DEV_ADD:
		rec->u.dev_add.index = get_u32(r);
		(void)get_u32(r);
		get_bytes(r, rec->u.dev_add.uuid, 16);
		rec->u.dev_add.bytes = get_u64(r);
		break;
	case REC_DEV_LEAVE:
		rec->u.leave.dev = get_u32(r);
		rec->u.leave.target = get_u32(r);
		rec->u.leave.reason = get_u32(r);
		if (rec->u.leave.reason > LEAVE_HEAL)
			r->overflow = true;
		break;
	case REC_SCRUB:
		rec->u.scrub.state = get_u32(r);
		rec->u.scrub.result = get_u32(r);
		rec->u.scrub.chunk = get_u32(r);
		rec->u.scrub.cblock = get_u32(r);
		rec->u.scrub.started = get_u64(r);
		rec->u.scrub.ended = get_u64(r);
		rec->u.scrub.rate = get_u64(r);
		rec->u.scrub.checked = get_u64(r);
		rec->u.scrub.found = get_u64(r);
		rec->u.scrub.fixed = get_u64(r);
		rec->u.scrub.unfixed = get_u64(r);
		if (rec->u.scrub.state > SCRUB_PAUSED || rec->u.scrub.result > SCRUB_CANCELLED)
			r->overflow = true;
		break;
	default:
		r->overflow = true;
	}
}

int rec_next(const uint8_t **pos, const uint8_t *end, struct record *rec)
{
	struct rbuf hdr;
	uint32_t len;
	struct rbuf body;

	if (*pos == end)
		return 0;
	hdr = rbuf_init(*pos, (size_t)(end - *pos));
	rec->type = get_u16(&hdr);
	(void)get_u16(&hdr);
	len = get_u32(&hdr);
	if (hdr.overflow || (size_t)(hdr.end - hdr.p) < len)
		return -EUCLEAN;
	body = rbuf_init(hdr.p, len);
	decode_payload(&body, rec);
	if (body.overflow || body.p != body.end)
		return -EUCLEAN;
	*pos = hdr.p + len;
	return 1;
}
