/* scrub.c - the scrub (scrub.h).
 *
 * Piece by piece, in device order, every copy that should hold the data
 * (its device written, the copy not stale) is read and every block
 * checked against its checksum.  A copy found bad is counted as live I/O
 * would count it (the device's and the file's counters), made good from
 * a copy that checks out through the mender's copier, and read again to
 * see that it took.  Reads take no range lock: a piece found bad is
 * checked again under the lock before anything is counted or written, so
 * blocks rewritten meanwhile are not blamed on a device. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "extmap.h"
#include "apply.h"
#include "events.h"
#include "inventory.h"
#include "ioerr.h"
#include "journal.h"
#include "mender.h"
#include "scrub.h"

#define SAVE_EVERY_US (2 * G_USEC_PER_SEC) /* how often the position is recorded */

const char *scrub_state_name(uint32_t state)
{
	return state == SCRUB_RUNNING ? "running" : state == SCRUB_PAUSED ? "paused" : "idle";
}

const char *scrub_result_name(uint32_t result)
{
	return result == SCRUB_FINISHED ? "finished" : result == SCRUB_CANCELLED ? "cancelled" : "never run";
}

/* Lock held: record the scrub as it now stands. */
static int save(struct store *st, const struct rec_scrub *s)
{
	GByteArray *r = g_byte_array_new();
	int err;

	rec_put_scrub(r, s);
	err = store_log(st, r);
	g_byte_array_free(r, TRUE);
	return err;
}

int scrub_control(struct store *st, const char *action, uint64_t rate, GString *why)
{
	struct rec_scrub s;
	int err = 0;

	g_mutex_lock(&st->lock);
	s = st->scrub;
	if (!strcmp(action, "start")) {
		if (s.state != SCRUB_IDLE) {
			g_string_append_printf(why, "a scrub is %s already (dmiofs-ctl scrub cancel stops it)",
					       scrub_state_name(s.state));
			err = -EALREADY;
		} else {
			s = (struct rec_scrub){ .state = SCRUB_RUNNING, .result = s.result, .rate = rate,
						.started = (uint64_t)time(NULL) };
		}
	} else if (!strcmp(action, "pause")) {
		if (s.state != SCRUB_RUNNING) {
			g_string_append_printf(why, "no scrub is running (it is %s)", scrub_state_name(s.state));
			err = -EINVAL;
		}
		s.state = SCRUB_PAUSED;
	} else if (!strcmp(action, "resume")) {
		if (s.state != SCRUB_PAUSED) {
			g_string_append_printf(why, "no scrub is paused (it is %s)", scrub_state_name(s.state));
			err = -EINVAL;
		}
		s.state = SCRUB_RUNNING;
		if (rate)
			s.rate = rate;
	} else if (!strcmp(action, "cancel")) {
		if (s.state == SCRUB_IDLE) {
			g_string_append(why, "no scrub is running or paused");
			err = -EINVAL;
		}
		s.state = SCRUB_IDLE;
		s.result = SCRUB_CANCELLED;
		s.ended = (uint64_t)time(NULL);
	} else {
		g_string_append_printf(why, "scrub %s: want start, pause, resume or cancel", action);
		err = -EINVAL;
	}
	if (!err) {
		err = save(st, &s);
		if (err)
			g_string_append_printf(why, "the scrub's state cannot be recorded: %s", g_strerror(-err));
		else
			g_message("scrub %s", !strcmp(action, "start")	 ? "started"
					       : !strcmp(action, "pause") ? "paused"
					       : !strcmp(action, "resume") ? "resumed"
									   : "cancelled");
		mender_kick(st);
	}
	g_mutex_unlock(&st->lock);
	/* Answered once durable: a scrub started survives a crash. */
	if (!err && (err = store_sync(st)))
		g_string_append_printf(why, "the scrub's state could not be made durable: %s", g_strerror(-err));
	return err;
}

uint64_t scrub_total_bytes(struct store *st)
{
	uint64_t bytes = 0;

	for (guint i = 0; i < st->alloc.chunks->len; i++) {
		struct chunk *c = alloc_chunk(&st->alloc, i);

		if (c)
			bytes += (uint64_t)c->used * c->ncopies * DMIOFS_BLOCK;
	}
	return bytes;
}

/* ---- one piece ------------------------------------------------------------------ */

/* Copies worth reading: their device written, the copy not stale. */
static uint32_t want_readable(struct store *st, const struct chunk *c, uint32_t b, void *ctx)
{
	uint32_t mask = 0;

	(void)ctx;
	for (uint32_t k = 0; k < c->ncopies; k++)
		if (dev_written(&st->dev[c->stripes[k].dev]) && !alloc_stale_count(c, k, b, 1))
			mask |= 1u << k;
	return mask;
}

struct copies {
	uint32_t ncopies;
	struct rec_stripe stripes[DMIOFS_MAX_COPIES];
	uint32_t *csums;
};

/* Lock held: the piece's checksums and copies, when the file still maps
 * it as the inventory found it. */
static bool piece_now(struct store *st, const struct piece *p, struct copies *cp)
{
	struct dinode *in = meta_inode(&st->meta, p->ino);
	const struct extent *e;
	struct chunk *c;
	struct ext_pos at;

	if (!in || !S_ISREG(in->mode) || !(e = ext_seek(in, p->fblock, &at)))
		return false;
	c = alloc_chunk(&st->alloc, p->chunk);
	if (!c || e->fblock > p->fblock || e->fblock + e->nblocks < p->fblock + p->n || e->chunk != p->chunk ||
	    e->cblock + (p->fblock - e->fblock) != p->cblock)
		return false;
	cp->ncopies = c->ncopies;
	memcpy(cp->stripes, c->stripes, sizeof(cp->stripes));
	g_free(cp->csums);
	cp->csums = g_memdup2(ext_csums_const(e) + (p->fblock - e->fblock), p->n * sizeof(uint32_t));
	return true;
}

/* Read copy k of the piece and check each block: the blocks found bad (a
 * read error makes them all bad), -1 when the copy is not here. */
static int64_t check_copy(struct store *st, const struct piece *p, const struct copies *cp, uint32_t k,
			  uint8_t *buf, uint64_t *bad, bool *read_error)
{
	struct sdev *d = &st->dev[cp->stripes[k].dev];
	uint64_t offset = cp->stripes[k].offset + (uint64_t)p->cblock * DMIOFS_BLOCK;
	int64_t nbad = 0;

	*read_error = false;
	if (!dev_written(d))
		return -1;
	if (dev_read(st->client, d, offset, buf, (size_t)p->n * DMIOFS_BLOCK)) {
		*read_error = true;
		memset(bad, 0xff, ((p->n + 63) / 64) * sizeof(uint64_t));
		return p->n;
	}
	for (uint32_t b = 0; b < p->n; b++)
		if (dmiofs_crc(buf + (size_t)b * DMIOFS_BLOCK, DMIOFS_BLOCK) != cp->csums[b]) {
			bad[b / 64] |= 1ull << (b % 64);
			nbad++;
		}
	return nbad;
}

static bool bit(const uint64_t *map, uint32_t b)
{
	return map[b / 64] >> (b % 64) & 1;
}

struct findings {
	uint64_t *bad[DMIOFS_MAX_COPIES]; /* per copy: blocks found bad */
	uint32_t copies_bad;              /* copies with a bad block */
	uint64_t found, checked;
};

/* Make the bad blocks good: runs of blocks bad on the same copies are
 * copied from the others, then read again. */
static void repair(struct store *st, const struct piece *p, struct findings *f, uint8_t *buf, struct rec_scrub *s)
{
	uint32_t b = 0;

	while (b < p->n) {
		uint32_t mask = 0, n = 1, again;
		struct piece sub;
		struct mend_result res;
		struct copies cp = { 0 };

		for (uint32_t k = 0; k < DMIOFS_MAX_COPIES; k++)
			if (f->bad[k] && bit(f->bad[k], b))
				mask |= 1u << k;
		for (again = mask; b + n < p->n; n++) {
			uint32_t m = 0;

			for (uint32_t k = 0; k < DMIOFS_MAX_COPIES; k++)
				if (f->bad[k] && bit(f->bad[k], b + n))
					m |= 1u << k;
			if (m != again)
				break;
		}
		if (!mask) {
			b += n;
			continue;
		}
		sub = (struct piece){ p->ino, p->fblock + b, p->chunk, p->cblock + b, n, mask };
		mender_mend_piece(st, &sub, true, &res);
		g_mutex_lock(&st->lock);
		if (!piece_now(st, &sub, &cp))
			res.made = 0;
		g_mutex_unlock(&st->lock);
		/* Read what was written again: made good only if it reads right. */
		for (uint32_t k = 0; k < DMIOFS_MAX_COPIES; k++) {
			uint64_t bad[PIECE_MAX_BLOCKS / 64] = { 0 };
			bool read_error;
			int64_t still;

			if (!(mask & (1u << k)))
				continue;
			still = (res.made & (1u << k)) ? check_copy(st, &sub, &cp, k, buf, bad, &read_error) : n;
			if (still < 0)
				still = n;
			s->fixed += n - (uint64_t)still;
			s->unfixed += (uint64_t)still;
		}
		g_free(cp.csums);
		b += n;
	}
}

/* Count what a piece's copies showed, as live reads count it. */
static void count_findings(struct store *st, const struct piece *p, const struct copies *cp, const struct findings *f,
			   const bool *read_error)
{
	for (uint32_t k = 0; k < cp->ncopies; k++)
		if (f->copies_bad & (1u << k))
			ioerr_note(st, true,
				   &(struct io_fault){ read_error[k] ? ERR_READ : ERR_CSUM, cp->stripes[k].dev, p->ino, p->fblock,
						       p->n, IO_OP_READ, p->chunk, 1UL << k });
}

static void scrub_piece(struct store *st, const struct piece *p, uint8_t *buf, struct rec_scrub *s)
{
	struct copies cp = { 0 };
	struct findings f = { 0 };
	bool read_error[DMIOFS_MAX_COPIES] = { false }, current;

	g_mutex_lock(&st->lock);
	current = piece_now(st, p, &cp);
	g_mutex_unlock(&st->lock);
	if (!current)
		return;
	for (uint32_t k = 0; k < cp.ncopies; k++) {
		int64_t nbad;

		if (!(p->copies & (1u << k)))
			continue;
		f.bad[k] = g_new0(uint64_t, (p->n + 63) / 64);
		nbad = check_copy(st, p, &cp, k, buf, f.bad[k], &read_error[k]);
		if (nbad < 0)
			continue;
		f.checked += (uint64_t)p->n * DMIOFS_BLOCK;
		if (nbad) {
			f.copies_bad |= 1u << k;
			f.found += (uint64_t)nbad;
		}
	}
	s->checked += f.checked;
	if (f.copies_bad) {
		struct copies again = { 0 };
		unsigned int held_back = 0;
		char *name;

		/* Still the same blocks?  Then the copies are to blame. */
		g_mutex_lock(&st->lock);
		current = piece_now(st, p, &again) && !memcmp(again.csums, cp.csums, p->n * sizeof(uint32_t));
		if (current)
			count_findings(st, p, &cp, &f, read_error);
		/* Named (a walk of the tree) only for the lines the log's rate
		 * limit lets through: a rotten disk must not stall everything. */
		name = current && ioerr_log_allowed(st, &held_back) ? ioerr_file_name(st, p->ino) : NULL;
		g_mutex_unlock(&st->lock);
		g_free(again.csums);
		if (current) {
			s->found += f.found;
			if (name) {
				char *held = held_back ? g_strdup_printf(" (%u more I/O errors and repairs not logged)",
									 held_back)
						       : g_strdup("");

				g_warning("scrub: %s (inode %llu), bytes %llu-%llu: %llu bad block(s) in %u copy(ies); "
					  "repairing%s",
					  name, (unsigned long long)p->ino, (unsigned long long)p->fblock * DMIOFS_BLOCK,
					  (unsigned long long)(p->fblock + p->n) * DMIOFS_BLOCK - 1,
					  (unsigned long long)f.found, (unsigned int)__builtin_popcount(f.copies_bad), held);
				g_free(held);
			}
			repair(st, p, &f, buf, s);
		}
		g_free(name);
	}
	for (uint32_t k = 0; k < DMIOFS_MAX_COPIES; k++)
		g_free(f.bad[k]);
	g_free(cp.csums);
}

static void scrub_done_event(struct store *st, const struct rec_scrub *s)
{
	char *extra[5] = { g_strdup_printf("DMIOFS_CHECKED=%llu", (unsigned long long)s->checked),
			   g_strdup_printf("DMIOFS_FOUND=%llu", (unsigned long long)s->found),
			   g_strdup_printf("DMIOFS_REPAIRED=%llu", (unsigned long long)s->fixed),
			   g_strdup_printf("DMIOFS_UNREPAIRED=%llu", (unsigned long long)s->unfixed), NULL };

	store_event(st, EVENT_SCRUB_DONE, -1, (const char *const *)extra,
		    "scrub finished: %llu bytes checked, %llu bad block(s) found, %llu repaired, %llu left bad",
		    (unsigned long long)s->checked, (unsigned long long)s->found, (unsigned long long)s->fixed,
		    (unsigned long long)s->unfixed);
	for (int i = 0; extra[i]; i++)
		g_free(extra[i]);
}

/* ---- the run ------------------------------------------------------------------------ */

static bool before(const struct piece *p, const struct rec_scrub *s)
{
	return p->chunk < s->chunk || (p->chunk == s->chunk && p->cblock < s->cblock);
}

/* Lock held: may the scrub go on? */
static bool go_on(struct store *st, struct rec_scrub *s)
{
	/* pause and cancel change the recorded state; keep what was found */
	if (st->scrub.state != SCRUB_RUNNING)
		return false;
	s->rate = st->scrub.rate;
	return !mender_stopping(st) && !mender_urgent(st);
}

void scrub_run(struct store *st)
{
	uint8_t *buf = dio_alloc((size_t)PIECE_MAX_BLOCKS * DMIOFS_BLOCK);
	GArray *pieces = inventory_pieces(st, want_readable, NULL);
	gint64 saved = g_get_monotonic_time();
	struct rec_scrub s;
	guint i = 0;
	bool go;

	g_mutex_lock(&st->lock);
	s = st->scrub;
	go = buf && go_on(st, &s);
	g_mutex_unlock(&st->lock);
	while (i < pieces->len && before(&g_array_index(pieces, struct piece, i), &s))
		i++;
	for (; go && i < pieces->len; i++) {
		const struct piece *p = &g_array_index(pieces, struct piece, i);
		uint64_t read_before = s.checked;

		scrub_piece(st, p, buf, &s);
		s.chunk = p->chunk;
		s.cblock = p->cblock + p->n;
		go = mender_pace(st, s.checked - read_before, s.rate);
		g_mutex_lock(&st->lock);
		go = go && go_on(st, &s);
		if (st->scrub.state == SCRUB_RUNNING && (!go || g_get_monotonic_time() - saved > SAVE_EVERY_US)) {
			save(st, &s);
			saved = g_get_monotonic_time();
		}
		g_mutex_unlock(&st->lock);
	}
	g_mutex_lock(&st->lock);
	if (st->scrub.state != SCRUB_RUNNING && st->scrub.state != s.state) {
		/* Paused or cancelled meanwhile: keep what this run found. */
		s.state = st->scrub.state;
		s.result = st->scrub.result;
		s.ended = st->scrub.ended;
		save(st, &s);
	} else if (go && st->scrub.state == SCRUB_RUNNING) {
		s.state = SCRUB_IDLE;
		s.result = SCRUB_FINISHED;
		s.ended = (uint64_t)time(NULL);
		save(st, &s);
		scrub_done_event(st, &s);
	}
	g_mutex_unlock(&st->lock);
	g_array_free(pieces, TRUE);
	dio_free(buf);
}
