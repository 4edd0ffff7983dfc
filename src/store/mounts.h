/* mounts.h - is a device part of a mounted dmiofs? */
#ifndef DMIOFS_MOUNTS_H
#define DMIOFS_MOUNTS_H

#include <glib.h>

/* The mount point of the dmiofs file system mounted from path (a device
 * or image file, compared by identity, not by name), or NULL; g_free it. */
char *dmiofs_mounted_at(const char *path);
/* The mount points of every dmiofs mounted (g_ptr_array_free it). */
GPtrArray *dmiofs_mount_points(void);
/* The type of the file system mounted at path when path is a mount
 * point (fuse.dmiofs, ext4, ...), or NULL; g_free it. */
char *mount_type_at(const char *path);

#endif
