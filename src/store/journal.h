/* journal.h - the metadata log: group commit by a committer thread,
 * syncs that wait for it, and replay at mount (journal.c). */
#ifndef DMIOFS_JOURNAL_H
#define DMIOFS_JOURNAL_H

#include <stdint.h>

#include "store.h"

/* Mount: apply every intact commit from (pos, seq) on; *commits counts them. */
int journal_replay(struct store *st, uint64_t from_pos, uint64_t from_seq, uint64_t *commits);
/* The newest intact commit in device d's own log, following it from
 * the commit after its newest checkpoint (seq at pos): d's generation. */
uint64_t journal_last_seq_on(struct store *st, struct sdev *d, uint64_t pos, uint64_t seq);
int journal_start(struct store *st);
/* After journal_start at mount: when the replay applied commits only
 * once their data checked and no checkpoint followed (the metadata area
 * was full), write an ordered commit that settles them, before anything
 * may reuse the blocks they freed. */
int journal_settle_replay(struct store *st);
/* Commit what is pending and stop the committer. */
void journal_stop(struct store *st);
/* Lock held: every commit up to seq (and the data they map) is on
 * stable storage: answer for it.  Up to settled, a replay applies every
 * commit without checking its data: the blocks they freed may be reused. */
void journal_durable(struct store *st, uint64_t seq, uint64_t settled);
/* Lock held: ask the committer for a commit now. */
void journal_kick(struct store *st);

/* Durability of every record appended so far: store_sync waits for it;
 * store_sync_async calls fn once it holds (or failed), possibly at once. */
typedef void (*store_sync_fn)(int err, void *ctx);
int store_sync(struct store *st);
void store_sync_async(struct store *st, store_sync_fn fn, void *ctx);
/* Durability, and every block freed so far reusable: what a writer that
 * ran out of space waits for (it may take one commit more than a sync). */
int store_sync_frees(struct store *st);

#endif
