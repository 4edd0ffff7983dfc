/* scrub.h - reading every copy of every allocated block, checking every
 * checksum, and making bad copies good from a good one (scrub.c).  Its
 * state and findings are records (REC_SCRUB), so a scrub interrupted by
 * an unmount or a crash resumes at the next mount where it stood. */
#ifndef DMIOFS_SCRUB_H
#define DMIOFS_SCRUB_H

#include <glib.h>
#include <stdint.h>

#include "store.h"

/* start (rate: bytes/s, 0 no limit), pause, resume or cancel; -EALREADY,
 * -EINVAL with *why when the scrub is not in a state to. */
int scrub_control(struct store *st, const char *action, uint64_t rate, GString *why);

/* The mender's turn: scrub while the scrub runs and nothing more urgent
 * waits; returns when it is done, paused, cancelled, or interrupted. */
void scrub_run(struct store *st);

/* Lock held: bytes of copies a whole scrub reads (for progress). */
uint64_t scrub_total_bytes(struct store *st);
const char *scrub_state_name(uint32_t state);
const char *scrub_result_name(uint32_t result);

#endif
