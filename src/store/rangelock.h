/* rangelock.h - per-inode ordering of data operations on block ranges.
 *
 * Writes (and truncates, punches, repairs) of overlapping block ranges run
 * one after another, in the order they arrived; others run side by side.
 * Reads take no lock: they read what the extents said when they started,
 * and retry when a block they read was rewritten meanwhile. */
#ifndef DMIOFS_RANGELOCK_H
#define DMIOFS_RANGELOCK_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

struct range_op {
	struct range_op *next;       /* in the active or waiting list */
	struct range_op *ready_next; /* in the list range_release returns */
	uint64_t first, last;        /* blocks, inclusive */
	void (*start)(struct range_op *op); /* runs a queued op; without the store lock */
};

struct inode_io {
	struct range_op *active;
	struct range_op *waiting; /* in arrival order */
};

struct dinode;
struct store;

/* Store lock held.  True: the op holds the range and the caller runs it;
 * false: it is queued, and the range_release that frees its way returns it. */
bool range_acquire(struct dinode *in, struct range_op *op);
/* Store lock held.  Returns the queued ops that now hold their range (a
 * list through ->ready_next), for the caller to start once it has dropped
 * the lock.  Frees in->io when nothing is left. */
struct range_op *range_release(struct dinode *in, struct range_op *op);
/* Start them on the store's starter threads, never on the caller's: the
 * caller may be libdmio's completion thread, and a write may block
 * (waiting for a commit to free space). */
void range_start_ready(struct store *st, struct range_op *ready);
/* The starter threads' work function (store.c creates the pool). */
void range_run_started(gpointer op, gpointer unused);

/* Blocking acquire for synchronous operations: store lock held, dropped
 * while waiting. */
struct range_wait {
	struct range_op op;
	struct store *st;
	GCond cond;
	bool go;
};
void range_acquire_wait(struct store *st, struct dinode *in, uint64_t first, uint64_t last,
			struct range_wait *w);

#endif
