/* mender.h - the store's background worker: it makes copies good again
 * (catching up a returning device on what it missed, filling a copy added
 * to a chunk) and drives the state changes that follow (mender.c).
 * Copies go through libdmio's copier (dm_kcopyd), each piece checked
 * against its checksums, throttled. */
#ifndef DMIOFS_MENDER_H
#define DMIOFS_MENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "inventory.h"
#include "store.h"

enum mend_task { MEND_IDLE, MEND_CATCH_UP, MEND_REPLACE, MEND_REMOVE, MEND_HEAL };

/* What the mender is doing, for status (lock held to read). */
struct mend_progress {
	enum mend_task task;
	uint64_t done_bytes, total_bytes; /* of the task: stale blocks made good, of all */
	uint64_t copied_bytes;            /* written by the task, for the curious */
	double rate;                      /* bytes/s since the task began */
	double eta;                       /* seconds, or -1 when unknown */
};

/* Start the worker (read-write mounts) and stop it (before the journal). */
int mender_start(struct store *st);
void mender_stop(struct store *st);
/* Lock held: there may be work (a device came back, copies went stale). */
void mender_kick(struct store *st);
/* Lock held. */
void mender_progress(struct store *st, struct mend_progress *p);
/* For long work done on the mender's thread (the scrub): sleep as the
 * rate (bytes/s, 0: none) wants after `bytes`; false when the mender is
 * to stop.  Lock not held. */
bool mender_pace(struct store *st, uint64_t bytes, uint64_t rate);
/* Lock held: is the mender to stop, or is more urgent work waiting (copies
 * to make good) than what it is doing? */
bool mender_stopping(struct store *st);
bool mender_urgent(struct store *st);
const char *mend_task_name(enum mend_task t);

/* How a copy of a piece went. */
struct mend_result {
	uint32_t made;   /* copies (by index) now good */
	uint32_t failed; /* copies that could not be written */
	bool lost;       /* no copy of some block checks out */
	uint64_t bytes;  /* written */
};

/* Make the copies p->copies of a piece good again from one that checks
 * out, under the file's range lock (so its blocks cannot change owner);
 * records what it found (counters, stale blocks made good).  A piece the
 * file no longer maps as planned is left alone.  repairs: count each
 * copy made as a repair of its device (a scrub's, not a catch-up's). */
int mender_mend_piece(struct store *st, const struct piece *p, bool repairs, struct mend_result *res);

#endif
