/* inspect.h - the read-only virtual xattrs: what dmiofs knows about a
 * file's layout and errors, and about the devices and the file system.
 * Line-oriented key=value text (dmiofs(8) documents every key). */
#ifndef DMIOFS_INSPECT_H
#define DMIOFS_INSPECT_H

#include <glib.h>
#include <stdint.h>

#include "store.h"

#define XATTR_LAYOUT "user.dmio.layout"
#define XATTR_ERRORS "user.dmio.errors"
#define XATTR_DEVICES "user.dmio.devices"
#define XATTR_STATUS "user.dmio.status"

/* The value of a virtual xattr of inode ino: 0 and *out (g_free), or
 * -ENODATA when the name is not one that inode has. */
int inspect_xattr(struct store *st, uint64_t ino, const char *name, char **out);
bool inspect_is_virtual(const char *name);

#endif
