/* probe.h - what a device holds before we write on it: mkfs.dmiofs and
 * the online add and replace refuse a device that holds data (probe.c). */
#ifndef DMIOFS_PROBE_H
#define DMIOFS_PROBE_H

#include <glib.h>

#include "format.h"

/* A dmiofs superblock on the device, described, or NULL (g_free). */
char *probe_dmiofs(const char *path);
/* A file system or partition table libblkid recognises, or NULL (g_free). */
char *probe_signature(const char *path);
/* Remove every signature libblkid finds, as wipefs(8) would. */
int probe_wipe(const char *path);

#endif
