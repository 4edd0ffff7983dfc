/* mounts.h - is a device part of a mounted dmiofs? */
#ifndef DMIOFS_MOUNTS_H
#define DMIOFS_MOUNTS_H

#include <stdbool.h>

#include <glib.h>

/* The mount point of the dmiofs file system mounted from path (a device
 * or image file, compared by identity, not by name), or NULL; g_free it. */
char *dmiofs_mounted_at(const char *path);
/* The mount points of every dmiofs mounted (g_ptr_array_free it). */
GPtrArray *dmiofs_mount_points(void);
/* The type of the file system mounted at path when path is a mount
 * point (fuse.dmiofs, ext4, ...), or NULL; g_free it. */
char *mount_type_at(const char *path);
/* The "major:minor" of the mount at path, read from /proc/self/mountinfo
 * without asking the file system anything (its daemon may hang), or NULL;
 * g_free it. */
char *mount_devno_at(const char *path);
/* Is the file system devno ("major:minor") mounted anywhere (a bind
 * mount of it, say)? */
bool devno_mounted(const char *devno);

#endif
