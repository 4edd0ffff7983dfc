/* ioerr.c - see ioerr.h. */
#include "ioerr.h"

/* Records reach memory even when the log cannot take them (read-only). */
static void persist(struct store *st, GByteArray *r)
{
	if (store_log(st, r)) {
		const uint8_t *pos = r->data, *end = r->data + r->len;
		struct record rec;

		while (rec_next(&pos, end, &rec) > 0)
			store_apply(st, &rec);
	}
}

void ioerr_note(struct store *st, bool locked, uint64_t ino, uint32_t dev, int kind, enum io_op op,
		uint32_t chunk, unsigned long bits)
{
	GByteArray *r = g_byte_array_new();

	if (!locked)
		g_mutex_lock(&st->lock);
	if (dev < st->ndevices) {
		struct rec_counters c = st->dev[dev].err;

		c.id = dev;
		c.count[kind]++;
		rec_put_counters(r, REC_DEV_COUNTERS, &c);
	}
	if (ino) {
		struct dinode *in = meta_inode(&st->meta, ino);

		if (in) {
			struct rec_counters c = in->errors ? *in->errors : (struct rec_counters){ 0 };

			c.id = ino;
			c.count[kind]++;
			if (op != IO_OP_NONE) {
				c.last_bits = bits;
				c.last_op = op;
				c.last_chunk = chunk;
			}
			rec_put_counters(r, REC_FILE_ERRORS, &c);
		}
	}
	if (r->len)
		persist(st, r);
	if (!locked)
		g_mutex_unlock(&st->lock);
	g_byte_array_free(r, TRUE);
}

void ioerr_fail_device(struct store *st, uint32_t dev, GByteArray *records)
{
	if (dev >= st->ndevices || st->dev[dev].state != DEV_HEALTHY)
		return;
	g_warning("%s: a write failed: device marked failed; the file system is degraded", st->dev[dev].path);
	rec_put_dev_state(records, dev, DEV_FAILED);
}
