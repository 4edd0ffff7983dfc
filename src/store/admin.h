/* admin.h - what an administrator asks of a mounted file system, behind
 * dmiofs-ctl: naming devices, error counters, fault drills (admin.c).
 * Each returns 0 or a negative errno, and says why in *why for a person. */
#ifndef DMIOFS_ADMIN_H
#define DMIOFS_ADMIN_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdint.h>

#include "dmio.h"
#include "store.h"

/* A device of the file system named by its index, its path (any name of
 * the same file or block device) or its UUID. */
int admin_find_device(struct store *st, const char *spec, uint32_t *index, GString *why);

/* Per device counters and the files that met errors, as JSON. */
JsonNode *admin_errors(struct store *st);
/* Counters of every device and every file back to zero (by record). */
int admin_reset_errors(struct store *st, GString *why);

/* Fault drills on a device: a fault of a kind (read-error, write-error,
 * corrupt, drop-write, delay[=MS]) in [first, last] (sectors of the device;
 * count 0: everywhere), on every Nth I/O or with a probability. */
struct drill {
	char *kind;
	sector_t first, count;
	unsigned int every;
	double rate;
};
int admin_inject(struct store *st, uint32_t dev, const struct drill *d, GString *why);
JsonNode *admin_injected(struct store *st);
/* Clear the drills of one device (UINT32_MAX: of every device). */
int admin_clear_injected(struct store *st, uint32_t dev);
/* Unmount: forget the drills (the devices go). */
void admin_free(struct store *st);

#endif
