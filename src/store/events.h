/* events.h - what happens to the devices and the data, said in the log
 * and, when the administrator names one (-o event_program=PATH), handed
 * to a program with the details in DMIOFS_* environment variables, on a
 * thread of its own so that no I/O ever waits for it (events.c). */
#ifndef DMIOFS_EVENTS_H
#define DMIOFS_EVENTS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

enum event_kind {
	EVENT_DEVICE_FAILED,
	EVENT_DEVICE_MISSING,
	EVENT_DEGRADED,
	EVENT_DEVICE_RETURNED,
	EVENT_CAUGHT_UP,
	EVENT_REPAIRED,
	EVENT_SCRUB_DONE,
	EVENT_REBUILD_DONE,
	EVENT_SPLIT_BRAIN,
};

struct events;

/* program: NULL for the log alone; mountpoint for DMIOFS_MOUNTPOINT. */
struct events *events_new(const char *program, const char *mountpoint);
/* Waits for the programs already started or queued, then frees. */
void events_free(struct events *ev);
const char *event_name(enum event_kind kind);

/* The facts of one event.  dev < 0: not about one device.  extra: more
 * NAME=VALUE pairs (NULL-terminated; may be NULL). */
struct event {
	enum event_kind kind;
	const char *fs_uuid, *label, *status;
	int dev;
	const char *dev_path, *dev_uuid;
	const char *const *extra;
	bool logged; /* the message is in the log already (a refusal says it) */
};

/* Say it in the log, and queue the program (ev may be NULL: log only).
 * Never blocks on the program; repeats of the same event for the same
 * device within a second are folded into the next one (a fault drill
 * must not fork a program per read). */
void events_emit(struct events *ev, const struct event *e, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

struct store;

/* An event of the mounted file system st (lock held or not: it reads
 * names and states only), about device dev (-1: none), with extra
 * NAME=VALUE details (may be NULL). */
void store_event(struct store *st, enum event_kind kind, int dev, const char *const *extra, const char *fmt, ...)
	G_GNUC_PRINTF(5, 6);

#endif
