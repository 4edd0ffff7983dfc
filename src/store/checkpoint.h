/* checkpoint.h - checkpoints and superblock updates (checkpoint.c). */
#ifndef DMIOFS_CHECKPOINT_H
#define DMIOFS_CHECKPOINT_H

#include <glib.h>
#include <stdbool.h>

#include "format.h"
#include "store.h"

/* Lock held: a new checkpoint of everything in memory, on every device
 * that takes writes.  -ENOSPC, touching nothing, when it cannot fit. */
int checkpoint_write(struct store *st);
/* Mount: the newest valid checkpoint header on device d alone. */
int checkpoint_newest_on(struct store *st, struct sdev *d, struct ckpt_header *h);
/* Mount: load the newest checkpoint of the line (st->line) that checks
 * out; *h is its header. */
int checkpoint_load(struct store *st, struct ckpt_header *h, GString *why);
/* Lock held: rewrite the superblocks of every device that takes writes. */
int store_write_superblocks(struct store *st, bool clean);

#endif
