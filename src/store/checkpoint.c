/* checkpoint.c - checkpoints: every record needed to rebuild the file
 * system, written to the slot not holding the newest one, on every device.
 * The payload goes first; the header block, written last with PREFLUSH and
 * FUA, makes the slot count.  At mount the valid slot with the highest seq
 * wins, read from any device whose copy checks out. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "apply.h"
#include "checkpoint.h"
#include "ioerr.h"
#include "journal.h"

#define FLUSH_AT (1u << 20)

struct ckpt_writer {
	struct store *st;
	uint64_t offset; /* device offset of the next payload byte */
	uint64_t end;    /* end of the slot */
	uint64_t written;
	uint32_t crc;
	int err;
};

/* Write the whole 4 KiB blocks of out (all of it, padded, when last). */
static int writer_flush(struct ckpt_writer *w, GByteArray *out, bool last)
{
	size_t len = last ? out->len : out->len / DMIOFS_BLOCK * DMIOFS_BLOCK;
	size_t padded = (len + DMIOFS_BLOCK - 1) / DMIOFS_BLOCK * DMIOFS_BLOCK;
	unsigned long bits = 0;
	int err;

	if (w->err || !len)
		return w->err;
	w->crc = dmiofs_crc_extend(w->crc, out->data, len);
	w->written += len;
	if (w->offset + padded > w->end) {
		g_critical("the checkpoint does not fit its slot (%llu bytes): the metadata area is full",
			   (unsigned long long)(w->end - w->offset + w->written - len));
		return w->err = -ENOSPC;
	}
	if (padded > len)
		g_byte_array_set_size(out, (guint)padded), memset(out->data + len, 0, padded - len);
	err = devs_write_same(w->st->meta_client, w->st->dev, w->st->ndevices, w->offset, out->data, padded, 0, &bits);
	ioerr_fail_devices(w->st, bits, w->st->next_seq, "a checkpoint write");
	if (err)
		return w->err = err;
	w->offset += padded;
	g_byte_array_remove_range(out, 0, (guint)(last ? out->len : len));
	return 0;
}

static int flush_cb(void *ctx, GByteArray *out)
{
	return writer_flush(ctx, out, false);
}

/* The store's own state: devices and their counters, the scrub. */
static void serialize_devices(struct store *st, GByteArray *out)
{
	for (uint32_t i = 0; i < st->ndevices; i++) {
		struct rec_counters c = st->dev[i].err;

		rec_put_dev_add(out, i, st->sb.devs[i].uuid, st->sb.devs[i].bytes);
		rec_put_dev_state(out, i, st->dev[i].state, st->dev[i].left_at);
		if (st->dev[i].leaving)
			rec_put_dev_leave(out, i, st->dev[i].leave_target, st->dev[i].leaving);
		c.id = i;
		rec_put_counters(out, REC_DEV_COUNTERS, &c);
	}
	rec_put_scrub(out, &st->scrub);
}

int checkpoint_write(struct store *st)
{
	uint32_t slot = 1 - st->ckpt_slot;
	uint64_t base = st->layout.meta_offset + slot * st->layout.ckpt_bytes;
	struct ckpt_writer w = { st, base + DMIOFS_BLOCK, base + st->layout.ckpt_bytes, 0, 0xFFFFFFFFu, 0 };
	struct ckpt_header h = { .seq = st->next_seq };
	guint covered = st->pending->len; /* what the checkpoint will hold */
	GByteArray *out;
	uint8_t *block;
	unsigned long bits = 0;
	int err;

	/* A commit on its way has taken a seq and a place in the ring that
	 * this checkpoint would skip: let it land first (the lock, held from
	 * here on, keeps the next one from starting). */
	while (st->committing)
		g_cond_wait(&st->landed_cond, &st->lock);
	/* The estimate is an upper bound: refuse before overwriting the
	 * older slot with a checkpoint that cannot be finished. */
	if (store_meta_bytes(st) > st->layout.ckpt_bytes - DMIOFS_BLOCK)
		return -ENOSPC;
	out = g_byte_array_sized_new(FLUSH_AT + 65536);
	/* Devices first: chunks name them. */
	serialize_devices(st, out);
	alloc_serialize(&st->alloc, out);
	err = meta_serialize(&st->meta, out, FLUSH_AT, flush_cb, &w);
	if (!err)
		err = writer_flush(&w, out, true);
	g_byte_array_free(out, TRUE);
	if (err)
		return err;
	memcpy(h.fs_uuid, st->sb.fs_uuid, 16);
	h.payload_bytes = w.written;
	h.payload_crc = w.crc;
	h.log_pos = st->log_pos;
	h.next_ino = st->meta.next_ino;
	h.created = (uint64_t)time(NULL);
	block = dio_alloc(DMIOFS_BLOCK);
	if (!block)
		return -ENOMEM;
	ckpt_header_encode(&h, block);
	err = devs_write_same(st->meta_client, st->dev, st->ndevices, base, block, DMIOFS_BLOCK,
			      DMIO_REQ_PREFLUSH | DMIO_REQ_FUA, &bits);
	dio_free(block);
	ioerr_fail_devices(st, bits, h.seq, "a checkpoint write");
	if (err)
		return err;
	/* Everything in memory when it began is now durable, the pending
	 * records included; what was noted while it was written (a device
	 * that could not take it) is not in it, and stays pending. */
	st->next_seq++;
	g_byte_array_remove_range(st->pending, 0, covered);
	st->ckpt_slot = slot;
	st->ckpt_seq = h.seq;
	st->log_used = 0;
	st->log_chain = 0;
	st->checkpoints++;
	journal_durable(st, h.seq, h.seq);
	return 0;
}

/* The valid header of a slot on device d: 0, or why not. */
static int read_header_on(struct store *st, struct sdev *d, uint32_t slot, struct ckpt_header *h)
{
	uint8_t *block = dio_alloc(DMIOFS_BLOCK);
	int err;

	if (!block)
		return -ENOMEM;
	err = dev_read(st->meta_client, d, st->layout.meta_offset + slot * st->layout.ckpt_bytes, block, DMIOFS_BLOCK);
	if (!err)
		err = ckpt_header_decode(block, st->sb.fs_uuid, h);
	dio_free(block);
	return err;
}

int checkpoint_newest_on(struct store *st, struct sdev *d, struct ckpt_header *h)
{
	bool found = false;

	for (uint32_t slot = 0; slot < 2; slot++) {
		struct ckpt_header got;

		if (!read_header_on(st, d, slot, &got) && (!found || got.seq > h->seq)) {
			*h = got;
			found = true;
		}
	}
	return found ? 0 : -ENOENT;
}

/* The newest valid header of either slot over the devices of the line
 * being loaded, and which of them hold it (*holders, by index). */
static int newest_header(struct store *st, int skip_slot, struct ckpt_header *best, uint32_t *best_slot,
			 uint32_t *holders)
{
	bool found = false;

	*holders = 0;
	for (uint32_t slot = 0; slot < 2; slot++) {
		if ((int)slot == skip_slot)
			continue;
		for (uint32_t d = 0; d < st->ndevices; d++) {
			struct ckpt_header h;

			if (!(st->line & (1u << d)) || !st->dev[d].bdev || read_header_on(st, &st->dev[d], slot, &h))
				continue;
			if (found && h.seq == best->seq && slot == *best_slot) {
				*holders |= 1u << d;
			} else if (!found || h.seq > best->seq) {
				*best = h;
				*best_slot = slot;
				*holders = 1u << d;
				found = true;
			}
		}
	}
	return found ? 0 : -ENOENT;
}

/* The slot's payload from the first holder whose copy has the right CRC. */
static int read_payload(struct store *st, uint32_t slot, const struct ckpt_header *h, uint32_t holders, uint8_t **out)
{
	size_t padded = (h->payload_bytes + DMIOFS_BLOCK - 1) / DMIOFS_BLOCK * DMIOFS_BLOCK;
	uint64_t offset = st->layout.meta_offset + slot * st->layout.ckpt_bytes + DMIOFS_BLOCK;
	uint8_t *buf;

	if (h->payload_bytes > st->layout.ckpt_bytes - DMIOFS_BLOCK)
		return -EUCLEAN;
	buf = dio_alloc(padded);
	if (!buf)
		return -ENOMEM;
	for (uint32_t d = 0; d < st->ndevices; d++) {
		if (!(holders & (1u << d)) || (padded && dev_read(st->meta_client, &st->dev[d], offset, buf, padded)))
			continue;
		if (dmiofs_crc(buf, h->payload_bytes) == h->payload_crc) {
			*out = buf;
			return 0;
		}
		g_warning("%s: checkpoint %llu is damaged on this device; trying another copy", st->dev[d].path,
			  (unsigned long long)h->seq);
	}
	dio_free(buf);
	return -EUCLEAN;
}

int checkpoint_load(struct store *st, struct ckpt_header *h, GString *why)
{
	int skip = -1;

	for (int attempt = 0; attempt < 2; attempt++) {
		uint32_t slot = 0, holders;
		uint8_t *payload = NULL;
		int err = newest_header(st, skip, h, &slot, &holders);

		if (err == -ENOENT)
			break;
		if (err)
			return err;
		err = read_payload(st, slot, h, holders, &payload);
		if (err == -EUCLEAN && !st->opt.allow_rollback) {
			g_string_append_printf(why,
					       "checkpoint %llu is damaged on every device; mounting the older one would "
					       "lose what was written since; run fsck.dmiofs -y to accept that",
					       (unsigned long long)h->seq);
			return err;
		}
		if (err == -EUCLEAN) { /* every copy of the newest is bad: the older one */
			g_warning("checkpoint %llu is damaged on every device: rolling back to the older one",
				  (unsigned long long)h->seq);
			skip = (int)slot;
			continue;
		}
		if (err)
			return err;
		err = store_apply_all(st, payload, h->payload_bytes);
		dio_free(payload);
		if (err) {
			g_string_append_printf(why, "checkpoint %llu does not apply: %s", (unsigned long long)h->seq,
					       g_strerror(-err));
			return err;
		}
		st->ckpt_slot = slot;
		st->ckpt_seq = h->seq;
		if (h->next_ino > st->meta.next_ino)
			st->meta.next_ino = h->next_ino;
		return 0;
	}
	g_string_append(why, "no valid checkpoint on any device (the metadata area is damaged)");
	return -EUCLEAN;
}

int store_write_superblocks(struct store *st, bool clean)
{
	int written = 0;

	/* Every primary first, then every backup: a crash in between leaves
	 * one good copy of each. */
	for (int backup = 0; backup < 2; backup++) {
		for (uint32_t i = 0; i < st->ndevices; i++) {
			struct sdev *d = &st->dev[i];
			struct superblock sb = st->sb;

			if (!dev_written(d))
				continue;
			memcpy(sb.dev_uuid, d->sb.dev_uuid, 16);
			sb.dev_index = i;
			sb.dev_bytes = d->sb.dev_bytes;
			sb.generation = st->durable_seq;
			sb.ckpt_seq = st->ckpt_seq;
			sb.ckpt_slot = st->ckpt_slot;
			sb.flags = clean ? SB_CLEAN : 0;
			for (uint32_t k = 0; k < st->ndevices; k++) {
				sb.devs[k].state = st->dev[k].state;
				sb.devs[k].left_at = st->dev[k].left_at;
			}
			if (!dev_write_sb(st->meta_client, d, &sb, backup)) {
				written++;
				d->sb = sb;
			} else {
				g_warning("%s: writing its %s superblock failed", d->path, backup ? "backup" : "primary");
			}
		}
	}
	return written ? 0 : -EIO;
}
