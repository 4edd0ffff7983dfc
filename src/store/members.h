/* members.h - changing which devices make up a mounted file system:
 * adding one, replacing one, removing one, and healing the loss of one
 * onto the others without a person (members.c).
 *
 * A device that leaves is drained, chunk by chunk: each chunk with a
 * copy on it gains a copy elsewhere (STRIPE_ADD: every block stale until
 * the mender has made it good, so only allocated data is copied), and
 * once that copy is whole the leaving one is dropped (STRIPE_DROP).  When
 * no chunk has a copy on it any more, the device is removed.  All of it is
 * records, so it resumes after an unmount or a crash. */
#ifndef DMIOFS_MEMBERS_H
#define DMIOFS_MEMBERS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* Add a device.  One that was a device of this file system and is away
 * (missing or failed) comes back and is caught up on what it missed; any
 * other becomes a new, empty device (refused when it holds data, unless
 * force).  *index is where it went. */
int members_add(struct store *st, const char *path, bool force, uint32_t *index, GString *why);
/* Replace device old (present or not) by the device at new_path: the new
 * one is added, the old one drained onto it, then removed. */
int members_replace(struct store *st, const char *old, const char *new_path, bool force, GString *why);
/* Drain a device onto the others and remove it; refused when the others
 * cannot hold its copies. */
int members_remove(struct store *st, const char *spec, GString *why);

/* Lock held, the mender's: devices away for heal_delay seconds whose
 * copies the others can hold start to be drained (self-healing). */
void members_heal(struct store *st, unsigned int heal_delay);
/* Lock held, the mender's: the NBD exports to connect again now (by
 * index), failed ones whose connections dropped and ones missing since
 * the mount, each at most every 1 s to 60 s (a backoff), each marked
 * reconnecting until members_reconnect_one has tried it.  A healthy
 * export whose connection was lost is failed here first. */
uint32_t members_to_reconnect(struct store *st);
/* Lock held, given up while connecting: try device k's export, marked
 * by members_to_reconnect.  One that answers as the same device is
 * caught up on what it missed, one that answers as another is refused,
 * loudly; one that does not answer is tried again later. */
void members_reconnect_one(struct store *st, uint32_t k);
/* Lock held, the mender's: give leaving devices' chunks their new copies,
 * drop the old ones that are no longer needed, and remove devices that
 * hold nothing any more.  True when it changed something. */
bool members_drain(struct store *st);
/* Lock held: is some device leaving, and why (LEAVE_*)? */
uint32_t members_leaving(struct store *st);

#endif
