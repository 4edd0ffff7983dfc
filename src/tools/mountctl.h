/* mountctl.h - dmiofs-ctl's mount-side commands (mountctl.c):
 *   remount MOUNTPOINT ro|rw   (what mount -o remount runs)
 *   unmount MOUNTPOINT         (returns once the daemon has written its
 *                               last checkpoint and let go of the devices)
 *   scan                       (every member on the block devices)
 * and umount(8)'s helper, installed as umount.fuse.dmiofs. */
#ifndef DMIOFS_MOUNTCTL_H
#define DMIOFS_MOUNTCTL_H

#include <stdbool.h>

#define UMOUNT_HELPER_NAME "umount.fuse.dmiofs"

int ctl_remount(const char *mnt, bool read_only, bool json);
/* umount2(2) flags (MNT_FORCE, MNT_DETACH); 0 done, 1 failed. */
int ctl_unmount(const char *mnt, int flags, bool verbose);
int ctl_scan(bool json);
/* dmiofs-ctl scan --udev DEVNODE: KEY=VALUE lines for udev (59-dmiofs.rules). */
int ctl_scan_udev(const char *devnode);
/* umount.fuse.dmiofs TARGET [-flnrv] [-N NS] [-t TYPE]: exit status. */
int umount_helper_main(int argc, char **argv);

#endif
