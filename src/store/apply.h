/* apply.h - the record core: the one way metadata changes.
 *
 * An operation checks what it is about to do, builds records (records.h)
 * and hands them to store_log(), which applies them to memory with
 * store_apply() and appends them to the log's pending buffer; the
 * committer (journal.c) writes that buffer, and replay at mount applies
 * the very same records with the very same store_apply().  A device's
 * state and its error counters change this way too: nothing else writes
 * them.  Every function here wants the store lock held. */
#ifndef DMIOFS_APPLY_H
#define DMIOFS_APPLY_H

#include <glib.h>

#include "records.h"
#include "store.h"

/* Apply one record to memory: a record read from disk (checkpoint, log)
 * or one just built.  -EUCLEAN when it does not fit what memory holds. */
int store_apply(struct store *st, const struct record *rec);
/* Apply every record of the buffer, stopping at the first that does not. */
int store_apply_all(struct store *st, const uint8_t *buf, size_t len);
/* Apply records to memory and append them to the log.  -EROFS on a
 * read-only mount, the store's error once metadata cannot be written. */
int store_log(struct store *st, GByteArray *records);
/* Append records already applied to memory (the allocator's chunks). */
int store_append(struct store *st, GByteArray *records);
/* What I/O found (error counters, a device failed): logged where the
 * store is writable, applied to memory alone where it is not (a read-only
 * mount still counts what it saw). */
void store_note(struct store *st, GByteArray *records);

/* An inode nothing holds any more (no name, no lookup by the kernel, no
 * open file, no data operation in flight) is freed, by record. */
void store_release_inode(struct store *st, struct dinode *in);

/* Bytes the next checkpoint will take: an upper bound, kept cheaply. */
uint64_t store_meta_bytes(const struct store *st);
/* 0 if the checkpoint slot keeps room for `more` bytes while staying
 * under the given share of it (in 64ths), else -ENOSPC.  Growth of every
 * kind stops at its own share, so that what gives space back (truncate,
 * unlink) always finds room. */
int store_meta_room(const struct store *st, uint64_t more, unsigned int share64);
#define META_SHARE_NAMES 56 /* new names, xattrs: 7/8 of the slot */
#define META_SHARE_DATA 60  /* data writes: 15/16 */
#define META_SHARE_EDIT 62  /* punch, partial truncate: 31/32 */

#endif
