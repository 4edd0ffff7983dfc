/* scan.h - find the members of dmiofs file systems among the machine's
 * block devices, as `btrfs device scan` and `zpool import` find theirs:
 * libblkid cannot be taught our signature from here, so UUID= and LABEL=
 * sources, and `dmiofs-ctl scan`, look for themselves (scan.c). */
#ifndef DMIOFS_SCAN_H
#define DMIOFS_SCAN_H

#include <stdbool.h>

#include <glib.h>

#include "format.h"

struct member {
	char *path;            /* /dev/NAME */
	struct superblock sb;  /* the newer of its two superblocks */
};

/* Every block device that holds a dmiofs superblock, in /sys/class/block
 * order (g_ptr_array_free it: it frees the members). */
GPtrArray *scan_members(void);

/* The newer superblock of the device or image file at path: 0, or
 * -ENODATA when it holds none (or another negative errno). */
int scan_device(const char *path, struct superblock *out);

/* A label as udev encodes it in a link name and ID_FS_LABEL_ENC: '/'
 * and unsafe bytes as \xNN (g_free). */
char *scan_encode_label(const char *label);

/* What the newest superblock found of m's file system says of m:
 * "healthy", "failed", ..., "removed", or "no longer a member". */
const char *scan_member_state(GPtrArray *all, const struct member *m);

/* The devices of m's file system (removed ones not counted), as the
 * newest superblock found says. */
uint32_t scan_device_count(GPtrArray *all, const struct member *m);

/* The devices a mount source names, as paths (g_strfreev):
 *  - "UUID=<fs uuid>" and "LABEL=<label>": every block device holding a
 *    member of that file system;
 *  - one block device that is a member, when it is the only device named
 *    (alone): it and every other member found;
 *  - otherwise the list itself: paths separated by ':' (image files are
 *    always named one by one).
 * NULL, having said why in `why`, when a UUID or label matches nothing
 * (or a label names two file systems). */
char **scan_resolve_source(const char *source, bool alone, GString *why);

/* The devices of several sources (the arguments of dmiofs and
 * fsck.dmiofs: separate, colon-joined, or both), each resolved as above,
 * as absolute paths (symbolic links kept).
 * NULL, having said why, when a source names nothing. */
char **scan_resolve_sources(char *const *sources, int n, GString *why);

/* Make /dev/disk/by-uuid/<uuid> and /dev/disk/by-label/<label> links to
 * one present member of each file system found, as udev does for the file
 * systems libblkid knows: mount(8) resolves UUID= and LABEL= through them
 * before it runs our helper.  0 or a negative errno. */
int scan_make_links(GPtrArray *members);

#endif
