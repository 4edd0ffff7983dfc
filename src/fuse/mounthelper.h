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

/* Make the dmiofs mounted at mountpoint read-only or writable again,
 * through dmiofs-ctl remount; returns only on failure (exit status). */
int mounthelper_remount(const char *mountpoint, bool read_only);

#endif
