/* ioerr.c - see ioerr.h.  Counters and states change only by records
 * (apply.h), logged where the store is writable. */
#include "apply.h"
#include "events.h"
#include "ioerr.h"

/* The device's counters with one more of `kind`, as a record. */
static void put_device_count(struct store *st, uint32_t dev, int kind, GByteArray *r)
{
	struct rec_counters c = st->dev[dev].err;

	c.id = dev;
	c.count[kind]++;
	rec_put_counters(r, REC_DEV_COUNTERS, &c);
}

void ioerr_note(struct store *st, bool locked, uint64_t ino, uint32_t dev, int kind, enum io_op op,
		uint32_t chunk, unsigned long bits)
{
	GByteArray *r = g_byte_array_new();

	if (!locked)
		g_mutex_lock(&st->lock);
	if (dev < st->ndevices)
		put_device_count(st, dev, kind, r);
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
		store_note(st, r);
	if (kind == ERR_REPAIRED && dev < st->ndevices)
		store_event(st, EVENT_REPAIRED, (int)dev, NULL, "%s (device %u): a bad copy of inode %llu was made good",
			    st->dev[dev].path ? st->dev[dev].path : "", dev, (unsigned long long)ino);
	if (!locked)
		g_mutex_unlock(&st->lock);
	g_byte_array_free(r, TRUE);
}

/* Lock held: the first device to fail makes the file system degraded. */
static void say_degraded(struct store *st, uint32_t dev)
{
	for (uint32_t k = 0; k < st->ndevices; k++)
		if (k != dev && (st->dev[k].state == DEV_FAILED || st->dev[k].state == DEV_MISSING))
			return; /* it was already */
	store_event(st, EVENT_DEGRADED, -1, NULL,
		    "the file system is degraded: device %u failed; the others hold the data (dmiofs-ctl status)", dev);
}

void ioerr_fail_device(struct store *st, uint32_t dev, GByteArray *records)
{
	if (dev >= st->ndevices || !dev_written(&st->dev[dev]))
		return;
	store_event(st, EVENT_DEVICE_FAILED, (int)dev, NULL,
		    "%s (device %u): a write failed: device marked failed; the file system is degraded",
		    st->dev[dev].path, dev);
	say_degraded(st, dev);
	/* It has every commit up to the one being written, if any, and
	 * none after: the record goes into the commit after that. */
	rec_put_dev_state(records, dev, DEV_FAILED, st->next_seq - 1);
}

void ioerr_fail_devices(struct store *st, unsigned long bits, uint64_t left_at, const char *what)
{
	GByteArray *r = g_byte_array_new();

	for (uint32_t i = 0; i < st->ndevices; i++) {
		if (!(bits & (1UL << i)) || !dev_written(&st->dev[i]))
			continue;
		store_event(st, EVENT_DEVICE_FAILED, (int)i, NULL,
			    "%s (device %u): %s failed: device marked failed; the file system is degraded",
			    st->dev[i].path, i, what);
		say_degraded(st, i);
		put_device_count(st, i, ERR_WRITE, r);
		rec_put_dev_state(r, i, DEV_FAILED, left_at);
	}
	if (r->len)
		store_note(st, r);
	g_byte_array_free(r, TRUE);
}
