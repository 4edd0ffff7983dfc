/* assemble.h - which devices make up the file system at mount: opening
 * the devices given, their own generations, split brains, missing and
 * returning devices, and whether what is present holds every file
 * (assemble.c). */
#ifndef DMIOFS_ASSEMBLE_H
#define DMIOFS_ASSEMBLE_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* Open the devices given and read their superblocks; find each one's
 * own generation; refuse a split brain (unless st->opt.keep chooses a
 * part); place the devices by index as the newest one's superblock says
 * and set st->sb, st->layout, st->ndevices, st->copies and st->line (the
 * devices whose metadata is to be loaded).  A device that cannot be
 * opened or read counts as missing; one that is not of this file system
 * is refused.  On failure *why says which device and what is wrong. */
int assemble_open(struct store *st, const char *const *paths, uint32_t n, GString *why);

/* After the metadata is loaded: devices absent become missing, devices
 * back from being away (or of a discarded part) become returning, to be
 * caught up; refuses a device the history says went on alone, a mount
 * with a device missing under -o nodegraded, and one whose devices lack a
 * copy of some file (naming the files).  *changed when states changed
 * (the mount must write a checkpoint). */
int assemble_settle(struct store *st, bool *changed, GString *why);

/* The newest commit in device d's own metadata area: its newest
 * checkpoint, then its log from there; 0 when it has none intact. */
uint64_t assemble_own_generation(struct store *st, struct sdev *d);
/* Lock held: records making every copy on device k stale, for a device
 * whose own history cannot be trusted: it is rewritten whole. */
void assemble_put_all_stale(struct store *st, uint32_t k, GByteArray *r);

#endif
