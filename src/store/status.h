/* status.h - the one typed description of a mounted file system's state,
 * and its renderings: JSON (the control channel, dmiofs-ctl --json) and
 * the text of the inspection xattrs user.dmio.status and
 * user.dmio.devices.  All three come from the same struct, so they
 * cannot disagree (status.c). */
#ifndef DMIOFS_STATUS_H
#define DMIOFS_STATUS_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "mender.h"
#include "store.h"

struct dev_status {
	uint32_t index;
	uint32_t state;     /* enum dev_state */
	bool present;       /* opened by this mount */
	char *path;         /* as last known; NULL when never known */
	char uuid[37];
	uint64_t size;      /* bytes of it in use by the file system */
	uint64_t used;      /* bytes of its chunks holding data */
	uint64_t stale;     /* bytes of its copies that missed writes */
	uint64_t left_at;   /* not healthy: the newest commit it may hold */
	uint32_t leaving;   /* LEAVE_*: its copies are being made elsewhere */
	uint64_t count[ERR_KINDS];
	bool remote;        /* an NBD export (path is its URI) */
	bool connected;     /* remote: a connection to its server lives */
	bool write_mostly;  /* read only when no other copy can serve */
	uint64_t read_latency_us; /* reads' service time lately (0: none yet) */
};

struct fs_status {
	bool degraded;      /* a device is not healthy, or not here */
	bool errors;        /* I/O errors counted since the counters were reset */
	char uuid[37];
	char *label;
	uint32_t copies;
	uint32_t devices;   /* in the file system (removed ones not counted) */
	uint32_t healthy;
	uint64_t capacity, used, free, files;
	uint64_t root_reserve; /* of free: bytes only root may fill */
	uint64_t meta_used, meta_capacity;
	uint64_t generation;
	bool read_only;
	struct mend_progress task;
	struct rec_scrub scrub;
	uint64_t scrub_total; /* bytes of copies a whole scrub reads */
	uint32_t ndev;      /* entries of dev[] (removed devices left out) */
	struct dev_status dev[DMIOFS_MAX_DEVICES];
};

/* A snapshot of the store's state (takes the lock). */
void store_status(struct store *st, struct fs_status *s);
void fs_status_clear(struct fs_status *s);

/* "degraded", else "errors" (I/O errors counted since the last reset:
 * silent corruption found and repaired is news too), else "healthy". */
const char *status_health(const struct fs_status *s);
/* The scrub's part of it, as dmiofs-ctl scrub status prints it. */
JsonNode *scrub_to_json(const struct fs_status *s);
/* The JSON object dmiofs-ctl status --json prints. */
JsonNode *status_to_json(const struct fs_status *s);
/* The text of user.dmio.status: key=value lines. */
void status_to_text(const struct fs_status *s, GString *out);
/* The text of user.dmio.devices: one line per device, path= last. */
void devices_to_text(const struct fs_status *s, GString *out);

#endif
