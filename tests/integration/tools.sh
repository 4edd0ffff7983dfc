#!/bin/sh
# The tools and the error path a user sees: dmiofs-ctl status (table,
# JSON, exit status) and layout; a copy rotten on one image is read right
# through the mount, counted per device and per file, and rewritten;
# fsck.dmiofs finds a rotten copy and a damaged superblock read-only, and
# repairs both with -y; mount(8) through mount.fuse3, as from /etc/fstab.
. "$(dirname "$0")/lib.sh"
require_fuse

images 2 128M
check "mkfs" fs_mkfs --label tools
check "mount" fs_mount
head -c 3000000 /dev/urandom >"$T/data"
check "a file is written" cp "$T/data" "$MNT/file"

"$CTL" status "$MNT" >"$T/status" 2>&1
ok $? "dmiofs-ctl status exits 0 on a healthy file system"
check "the table says healthy and names the label" grep -q 'label "tools".*: healthy' "$T/status"
check "the table lists both devices" sh -c "grep -c 'healthy .*d[01].img' '$T/status' | grep -qx 2"
check "dmiofs-ctl status --json is JSON with both devices" sh -c "
	'$CTL' status --json '$MNT' | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j[\"status\"] == \"healthy\" and j[\"label\"] == \"tools\" and j[\"copies\"] == 2, j
assert len(j[\"devices\"]) == 2 and j[\"device_count\"] == 2, j
assert all(d[\"state\"] == \"healthy\" and d[\"checksum_errors\"] == 0 for d in j[\"devices\"]), j
'"
"$CTL" status "$T" >/dev/null 2>&1
ok "$([ $? -eq 1 ]; echo $?)" "dmiofs-ctl status on a folder that is not dmiofs exits 1"
"$CTL" layout "$MNT/file" >"$T/layout"
check "dmiofs-ctl layout prints the file's extents" grep -q '^extent index=0 ' "$T/layout"

# Where block 0 of the file is on device 0 (copy on d0.img).
sector=$(awk '/^region extent=0 / && / device=0 / { for (i = 1; i <= NF; i++) if ($i ~ /^sector=/) { sub("sector=", "", $i); print $i } }' "$T/layout")
check "the layout names the sector of extent 0 on device 0" test -n "$sector"
check "unmount" fs_umount

# Rot one byte of copy 0 (in the middle of the first block).
flip_byte "$T/d0.img" $((sector * 512 + 100))
"$FSCK" -n "$IMAGES" >"$T/fsck" 2>&1
ok "$([ $? -eq 4 ]; echo $?)" "fsck.dmiofs -n finds the rotten copy (exit 4)"
check "it names the device and the block" grep -q 'block 0: the copy on .*d0.img does not match its checksum' "$T/fsck"

check "mount again" fs_mount
check "the file reads right all the same" cmp "$T/data" "$MNT/file"
sleep 1 # the rewrite of the bad copy is asynchronous
check "the file's error record counts one checksum error and one repair" sh -c "
	getfattr --only-values --absolute-names -n user.dmio.errors '$MNT/file' >'$T/errors' &&
	grep -qx 'checksum_errors=1' '$T/errors' && grep -qx 'repaired=1' '$T/errors' &&
	grep -q '^last_failed copy=0 device=0 ' '$T/errors'"
check "device 0 counts them too" sh -c "
	getfattr --only-values --absolute-names -n user.dmio.devices '$MNT' | grep '^device=0 ' | grep -q 'checksum_errors=1 repaired=1'"
check "unmount" fs_umount
check "the bad copy was rewritten: fsck -n is clean" "$FSCK" -n "$IMAGES"
check "the counters persist across a remount" sh -c "
	'$DMIOFS' -f '$IMAGES' '$MNT' & pid=\$!
	while ! grep -q ' $MNT fuse' /proc/mounts; do kill -0 \$pid || exit 1; sleep 0.05; done
	getfattr --only-values --absolute-names -n user.dmio.devices '$MNT' | grep '^device=0 ' | grep -q 'checksum_errors=1'
	rc=\$?; fusermount3 -u '$MNT'; wait \$pid; exit \$rc"

# fsck repairs: a rotten copy and a destroyed primary superblock.
flip_byte "$T/d1.img" $((sector * 512 + 200))
dd if=/dev/urandom of="$T/d1.img" bs=4096 count=1 conv=notrunc status=none
"$FSCK" -n "$IMAGES" >"$T/fsck" 2>&1
ok "$([ $? -eq 4 ]; echo $?)" "fsck -n: a damaged superblock and a rotten copy are uncorrected errors (exit 4)"
check "it reports the superblock" grep -q 'd1.img: the primary superblock copy is damaged' "$T/fsck"
"$FSCK" -y "$IMAGES" >"$T/fsck" 2>&1
ok "$([ $? -eq 1 ]; echo $?)" "fsck -y repairs them (exit 1)"
check "fsck -n is clean afterwards" "$FSCK" -n "$IMAGES"

check "fsck on a mounted file system is refused (exit 8)" sh -c "
	'$DMIOFS' -f '$IMAGES' '$MNT' & pid=\$!
	while ! grep -q ' $MNT fuse' /proc/mounts; do kill -0 \$pid || exit 1; sleep 0.05; done
	'$FSCK' -n '$IMAGES' >/dev/null 2>&1; rc=\$?
	fusermount3 -u '$MNT'; wait \$pid; [ \$rc -eq 8 ]"

# As /etc/fstab would: mount(8) runs mount.fuse3, which runs dmiofs.  mount(8)
# hands its helpers no PATH, so the type "fuse" with PROGRAM#SOURCE names
# the daemon of this build (an installed one answers to fuse.dmiofs).
if [ "$(id -u)" -eq 0 ] && command -v mount.fuse3 >/dev/null; then
	mount -t fuse "$DMIOFS#$IMAGES" "$MNT" -o defaults,nofail 2>"$T/mount.err"
	ok $? "mount -t fuse DMIOFS#DEV:DEV MOUNTPOINT -o defaults works"
	check "the file is there" cmp "$T/data" "$MNT/file"
	check "umount works" umount "$MNT"
	# The daemon finishes its checkpoint after umount returns: wait for
	# it to let go of the images.
	for _ in $(seq 1 100); do "$FSCK" -n "$IMAGES" >/dev/null 2>&1 && break; sleep 0.1; done
	check "after umount the file system is clean" "$FSCK" -n "$IMAGES"
else
	ok 0 "# SKIP mount(8) needs root and mount.fuse3"
fi
done_testing
