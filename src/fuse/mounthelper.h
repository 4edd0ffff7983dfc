/* mounthelper.h - dmiofs as mount(8)'s helper.  mount(8) runs
 * /sbin/mount.fuse.dmiofs SOURCE TARGET [-sfnv] [-N NS] [-o OPTS] [-t TYPE]
 * for an fstab line of type fuse.dmiofs; those words mean other things to
 * dmiofs (-s is one thread, -f the foreground), so they are translated
 * first.  A remount is not a mount: it goes to dmiofs-ctl (mounthelper.c). */
#ifndef DMIOFS_MOUNTHELPER_H
#define DMIOFS_MOUNTHELPER_H

#include <stdbool.h>

#define MOUNT_HELPER_NAME "mount.fuse.dmiofs"

/* Called as mount.fuse.dmiofs?  Then *argc and *argv become dmiofs's own
 * arguments.  Returns -1 to go on, or an exit status (a fake mount, -f,
 * does nothing; bad arguments exit 2). */
int mounthelper_translate(int *argc, char ***argv);

/* The exit status as mount(8) reads a helper's: a failed mount is 32
 * ("mount failure"), as util-linux's own helpers say; others unchanged. */
int mounthelper_exit_status(int status);

/* Make the dmiofs mounted at mountpoint read-only (1) or writable again
 * (0), or keep it as it is (-1: a remount naming neither ro nor rw),
 * through dmiofs-ctl remount; returns only on failure (exit status). */
int mounthelper_remount(const char *mountpoint, int read_only);

#endif
