/* mounts.h - is a device part of a mounted dmiofs? */
#ifndef DMIOFS_MOUNTS_H
#define DMIOFS_MOUNTS_H

/* The mount point of the dmiofs file system mounted from path (a device
 * or image file, compared by identity, not by name), or NULL; g_free it. */
char *dmiofs_mounted_at(const char *path);

#endif
