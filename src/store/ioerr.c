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

#define LOG_LINES_PER_SECOND 5

static const char *fault_words(int kind)
{
	switch (kind) {
	case ERR_READ:
		return "read error";
	case ERR_WRITE:
		return "write error";
	case ERR_FLUSH:
		return "flush error";
	case ERR_CSUM:
		return "checksum error";
	default:
		return "repaired";
	}
}

/* Lock held: may another line go to the log now?  How many were held
 * back before it. */
static bool log_allowed(struct store *st, unsigned int *held_back)
{
	gint64 second = g_get_monotonic_time() / G_USEC_PER_SEC;

	if (second != st->fault_log_second) {
		st->fault_log_second = second;
		st->fault_log_lines = 0;
	}
	if (st->fault_log_lines >= LOG_LINES_PER_SECOND) {
		if (!st->fault_log_held++)
			g_cond_signal(&st->commit_cond); /* the committer counts them once the second is over */
		return false;
	}
	st->fault_log_lines++;
	*held_back = st->fault_log_held;
	st->fault_log_held = 0;
	return true;
}

bool ioerr_log_allowed(struct store *st, unsigned int *held_back)
{
	return log_allowed(st, held_back);
}

void ioerr_say_held_back(struct store *st)
{
	if (!st->fault_log_held || g_get_monotonic_time() / G_USEC_PER_SEC == st->fault_log_second)
		return;
	g_warning("%u more I/O errors and repairs were not logged (at most %d lines a second); "
		  "dmiofs-ctl errors counts them all",
		  st->fault_log_held, LOG_LINES_PER_SECOND);
	st->fault_log_held = 0;
}

/* Lock held: where the fault is, for a person: " in PATH, bytes A-B". */
char *ioerr_file_name(struct store *st, uint64_t ino)
{
	GHashTable *want = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	const char *path;
	char *name;

	g_hash_table_insert(want, GSIZE_TO_POINTER(ino), NULL);
	meta_name_inodes(&st->meta, want, 1);
	path = g_hash_table_lookup(want, GSIZE_TO_POINTER(ino));
	name = path ? g_strdup(path) : g_strdup_printf("inode %llu", (unsigned long long)ino);
	g_hash_table_destroy(want);
	return name;
}

static void describe_where(struct store *st, const struct io_fault *f, GString *where)
{
	char *name;

	if (!f->ino)
		return;
	name = ioerr_file_name(st, f->ino);
	g_string_append_printf(where, " in %s", name);
	g_free(name);
	if (f->n)
		g_string_append_printf(where, ", bytes %llu-%llu", (unsigned long long)f->fblock * DMIOFS_BLOCK,
				       (unsigned long long)(f->fblock + f->n) * DMIOFS_BLOCK - 1);
}

/* Lock held: say the fault in the log (a repair as an event, which the
 * log gets too), naming device, file and bytes. */
static void say_fault(struct store *st, const struct io_fault *f)
{
	const char *dev = f->dev < st->ndevices && st->dev[f->dev].path ? st->dev[f->dev].path : "?";
	unsigned int held_back;
	GString *line = g_string_new(NULL);

	if (!log_allowed(st, &held_back)) {
		g_string_free(line, TRUE);
		return;
	}
	g_string_append_printf(line, "%s (device %u): %s", dev, f->dev,
			       f->kind == ERR_REPAIRED ? "a bad copy was made good" : fault_words(f->kind));
	describe_where(st, f, line);
	if (held_back)
		g_string_append_printf(line, " (%u more I/O errors and repairs not logged)", held_back);
	if (f->kind == ERR_REPAIRED)
		store_event(st, EVENT_REPAIRED, (int)f->dev, NULL, "%s", line->str);
	else
		g_warning("%s", line->str);
	g_string_free(line, TRUE);
}

void ioerr_note(struct store *st, bool locked, const struct io_fault *f)
{
	GByteArray *r = g_byte_array_new();

	if (!locked)
		g_mutex_lock(&st->lock);
	if (f->dev < st->ndevices)
		put_device_count(st, f->dev, f->kind, r);
	if (f->ino) {
		struct dinode *in = meta_inode(&st->meta, f->ino);

		if (in) {
			struct rec_counters c = in->errors ? *in->errors : (struct rec_counters){ 0 };

			c.id = f->ino;
			c.count[f->kind]++;
			if (f->op != IO_OP_NONE) {
				c.last_bits = f->bits;
				c.last_op = f->op;
				c.last_chunk = f->chunk;
			}
			rec_put_counters(r, REC_FILE_ERRORS, &c);
		}
	}
	if (r->len)
		store_note(st, r);
	say_fault(st, f);
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

/* Lock held: say that the written device dev failed (because: why) and
 * made the file system degraded, and record it into r, left at commit
 * left_at.  False when it is not written (failed already, or away). */
static bool mark_failed(struct store *st, uint32_t dev, const char *why, uint64_t left_at, GByteArray *r)
{
	if (dev >= st->ndevices || !dev_written(&st->dev[dev]))
		return false;
	store_event(st, EVENT_DEVICE_FAILED, (int)dev, NULL,
		    "%s (device %u): %s: device marked failed; the file system is degraded", st->dev[dev].path, dev,
		    why);
	say_degraded(st, dev);
	rec_put_dev_state(r, dev, DEV_FAILED, left_at);
	return true;
}

void ioerr_fail_device(struct store *st, uint32_t dev, GByteArray *records)
{
	/* It has every commit up to the one being written, if any, and
	 * none after: the record goes into the commit after that. */
	mark_failed(st, dev, "a write failed", st->next_seq - 1, records);
}

void ioerr_fail_disconnected(struct store *st, uint32_t dev)
{
	GByteArray *r = g_byte_array_new();

	/* Nothing failed on it: it has every commit up to the last one. */
	if (mark_failed(st, dev, "the connection to its server was lost", st->next_seq - 1, r))
		store_note(st, r);
	g_byte_array_free(r, TRUE);
}

void ioerr_fail_devices(struct store *st, unsigned long bits, uint64_t left_at, const char *what)
{
	GByteArray *r = g_byte_array_new();
	char *why = g_strdup_printf("%s failed", what);

	for (uint32_t i = 0; i < st->ndevices; i++) {
		if (!(bits & (1UL << i)) || !dev_written(&st->dev[i]))
			continue;
		put_device_count(st, i, ERR_WRITE, r);
		mark_failed(st, i, why, left_at, r);
	}
	if (r->len)
		store_note(st, r);
	g_byte_array_free(r, TRUE);
	g_free(why);
}
