#!/bin/sh
# Bad input: mkfs.dmiofs and dmiofs refuse what they must not touch, with a
# message that names the device and the reason, and destroy nothing: every
# image holds the same bytes after a refusal as before it.  A superblock
# overwritten on one device is served by its other copy (and repaired);
# both copies gone on a device is a clear refusal.
. "$(dirname "$0")/lib.sh"
require_fuse
[ -r /dev/fuse ] && [ -w /dev/fuse ] || skip_all "no access to /dev/fuse"


SIZE=32M

# sums FILE...: one line per image, its checksum (to compare before/after).
sums() {
	md5sum "$@" | awk '{print $1}'
}

# refused DESCRIPTION PATTERN COMMAND...: the command fails (not by a
# signal or a timeout), prints a message matching PATTERN (grep -E) on
# stderr, and leaves every image of $GUARD byte for byte as it was.
refused() {
	desc=$1
	pattern=$2
	shift 2
	before=$(sums $GUARD)
	timeout 60 "$@" >"$T/out" 2>"$T/err"
	rc=$?
	after=$(sums $GUARD)
	if grep -q " $MNT " /proc/mounts; then # it should not have mounted
		fusermount3 -u "$MNT" 2>/dev/null
		sleep 0.5
	fi
	if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then
		ok 1 "$desc (exit status $rc)"
		sed 's/^/#   /' "$T/out" "$T/err"
	elif ! grep -Eq -- "$pattern" "$T/err"; then
		ok 1 "$desc (message)"
		diag "want a message matching: $pattern"
		sed 's/^/#   got: /' "$T/err"
	elif [ "$before" != "$after" ]; then
		ok 1 "$desc (an image changed)"
	else
		ok 0 "$desc"
		sed 's/^/#   says: /' "$T/err"
	fi
}

# refused_mount DESCRIPTION PATTERN DEVICES [OPTIONS...]: dmiofs DEVICES MNT,
# in the background as a user would run it (the parent reports the error),
# is refused.
refused_mount() {
	desc=$1 pattern=$2 devices=$3
	shift 3
	refused "$desc" "$pattern" "$DMIOFS" "$@" "$devices" "$MNT"
}

D0="$T/d0.img"
D1="$T/d1.img"

# ---- mkfs.dmiofs -----------------------------------------------------------

truncate -s $SIZE "$T/ext4.img" "$D0" "$D1"
mkfs.ext4 -q -F "$T/ext4.img" >/dev/null 2>&1 || skip_all "mkfs.ext4 failed"
GUARD="$T/ext4.img $D0 $D1"
refused "mkfs refuses an image holding ext4 (and writes no other device)" \
	"ext4\.img.*(ext4).*--force" "$MKFS" "$D0" "$T/ext4.img"
check "the ext4 file system is still intact" e2fsck -fn "$T/ext4.img"
refused "mkfs refuses the same image twice" "d0\.img.*same device" "$MKFS" "$D0" "$D0"
ln "$D0" "$T/hardlink.img"
refused "mkfs refuses two names of one image" "hardlink\.img.*same device as .*d0\.img" "$MKFS" "$D0" "$T/hardlink.img"
ln -s "$D0" "$T/symlink.img"
refused "mkfs refuses an image and a symlink to it" "same device" "$MKFS" "$T/symlink.img" "$D0"
truncate -s 4M "$T/small.img"
GUARD="$T/small.img $D0 $D1"
refused "mkfs refuses a too-small image" "small\.img.*too small" "$MKFS" "$D0" "$T/small.img"
refused "mkfs refuses --copies 3 on two devices" "3 copies.*2 given" "$MKFS" --copies 3 "$D0" "$D1"
refused "mkfs refuses a missing path" "nowhere\.img.*No such file" "$MKFS" "$D0" "$T/nowhere.img"
refused "mkfs refuses a directory" "$T.*not a block device or a regular file" "$MKFS" "$D0" "$T"
refused "mkfs refuses a bad --meta-size" "meta-size" "$MKFS" --meta-size lots "$D0" "$D1"
refused "mkfs refuses --copies 0" "copies 0" "$MKFS" --copies 0 "$D0" "$D1"
# A DOS partition table: one partition entry and the 0x55AA signature.
truncate -s $SIZE "$T/mbr.img"
python3 - "$T/mbr.img" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 30000)
    f.seek(446); f.write(entry)
    f.seek(510); f.write(b"\x55\xaa")
PY
GUARD="$T/mbr.img $D0 $D1"
refused "mkfs refuses an image holding a partition table" "mbr\.img.*partition table.*--force" "$MKFS" "$D0" "$T/mbr.img"

GUARD="$D1"
check "mkfs --force accepts the ext4 image" "$MKFS" -q --force "$D0" "$T/ext4.img"
check "no ext4 signature is left" sh -c "! blkid -p '$T/ext4.img' | grep -q ext4"
IMAGES="$D0:$T/ext4.img"
must "the forced file system mounts" fs_mount
check "and works" sh -c "echo hello >'$MNT/x' && [ \"\$(cat '$MNT/x')\" = hello ]"
check "unmount" fs_umount
GUARD="$D0 $T/ext4.img"
refused "mkfs refuses a device of a dmiofs file system" "d0\.img holds dmiofs \(file system [0-9a-f-]{36}, device .*of 2.*\).*--force" \
	"$MKFS" "$D0" "$D1"

# ---- dmiofs: the file system used for the mount tests --------------------------

rm -f "$T"/*.img
images 2 $SIZE
UUID=$("$MKFS" $(image_args) | sed -n 's/^dmiofs: created file system \([0-9a-f-]*\).*/\1/p')
ok $([ -n "$UUID" ]; echo $?) "mkfs.dmiofs makes a two-device file system ($UUID)"
must "it mounts" fs_mount
head -c 3000000 /dev/urandom >"$T/data"
check "a file is written" cp "$T/data" "$MNT/file"
check "unmount" fs_umount
truncate -s $SIZE "$T/other0.img" "$T/other1.img"
"$MKFS" -q "$T/other0.img" "$T/other1.img"
truncate -s $SIZE "$T/zero.img"
truncate -s $SIZE "$T/ext4.img"
mkfs.ext4 -q -F "$T/ext4.img" >/dev/null 2>&1
GUARD="$D0 $D1 $T/other0.img $T/other1.img $T/zero.img $T/ext4.img"

# One device of two holds everything: that mounts degraded (degraded.sh);
# -o nodegraded refuses it, naming the device missing.
refused_mount "mount with one device of two and -o nodegraded is refused" \
	"device 1 .* is missing; -o nodegraded refuses" "$D0" -o nodegraded
refused_mount "mount with a device of another file system is refused" \
	"other1\.img belongs to file system [0-9a-f-]{36}, .*d0\.img to $UUID: not one file system" "$D0:$T/other1.img"
refused_mount "mount with three devices for a two-device file system is refused" \
	"other0\.img belongs to file system [0-9a-f-]{36}, .*d0\.img to $UUID: not one file system" \
	"$D0:$D1:$T/other0.img"
refused_mount "mount with an all-zero image is refused" "zero\.img: not a dmiofs device" "$D0:$T/zero.img"
refused_mount "mount with an ext4 image is refused" "ext4\.img: not a dmiofs device" "$T/ext4.img:$D1"
refused_mount "mount with the same image twice is refused" "d0\.img: given twice" "$D0:$D0"
ln -s "$D1" "$T/link1.img"
refused_mount "mount with an image and a symlink to it is refused" "same device" "$D1:$T/link1.img"
refused_mount "mount with a missing path and -o nodegraded is refused" \
	"missing\.img.* is missing; -o nodegraded refuses" "$D0:$T/missing.img" -o nodegraded
refused "mount on a missing mount point is refused" "nomount.*(No such file|does it exist)" \
	"$DMIOFS" "$D0:$D1" "$T/nomount"
refused "mount on a regular file is refused" "data.*not a directory" "$DMIOFS" "$D0:$D1" "$T/data"
refused "mount with no devices is refused" "usage|bad arguments|devices given" "$DMIOFS" "" "$MNT"
cp "$D1" "$T/short.img"
truncate -s 24M "$T/short.img"
GUARD="$GUARD $T/short.img"
refused_mount "mount with a device shrunk since mkfs is refused" "short\.img.*smaller than" "$D0:$T/short.img"
rm -f "$T/short.img"
GUARD="$D0 $D1 $T/other0.img $T/other1.img $T/zero.img $T/ext4.img"

must "after all that, the file system mounts" fs_mount
check "and its file is intact" cmp "$T/data" "$MNT/file"

# ---- the devices are locked while mounted -----------------------------------------

MNT1=$MNT
MNT="$T/mnt2"
mkdir "$MNT"
refused_mount "a second mount of the mounted images is refused" "d[01]\.img: in use by the dmiofs file system mounted at" \
	"$D0:$D1"
refused "mkfs on a mounted image is refused" "d[01]\.img.*(busy|in use|holds dmiofs)" "$MKFS" --force "$D0" "$D1"
MNT=$MNT1
check "the first mount still works" cmp "$T/data" "$MNT/file"
check "status is healthy" sh -c "getfattr --only-values --absolute-names -n user.dmio.status '$MNT' | grep -qx status=healthy"
check "unmount" fs_umount

# ---- superblocks ------------------------------------------------------------------------

backup_offset() { # the last 4 KiB block of an image, in 4 KiB blocks
	echo $(($(stat -c %s "$1") / 4096 - 1))
}
garbage() { # garbage IMAGE BLOCK: 4 KiB of random bytes over block BLOCK
	head -c 4096 /dev/urandom | dd of="$1" bs=4096 seek="$2" conv=notrunc status=none
}

garbage "$D0" 0
must "with the primary superblock of one device overwritten, it mounts" fs_mount
check "the data is intact" cmp "$T/data" "$MNT/file"
check "status is healthy" sh -c "getfattr --only-values --absolute-names -n user.dmio.status '$MNT' | grep -qx status=healthy"
check "unmount" fs_umount
garbage "$D0" "$(backup_offset "$D0")"
must "the primary was repaired: with the backup now overwritten, it still mounts" fs_mount
check "the data is still intact" cmp "$T/data" "$MNT/file"
check "unmount" fs_umount
garbage "$D1" "$(backup_offset "$D1")"
must "with the backup superblock of the other device overwritten, it mounts" fs_mount
check "the data is intact" cmp "$T/data" "$MNT/file"
check "unmount" fs_umount

garbage "$D1" 0
garbage "$D1" "$(backup_offset "$D1")"
GUARD="$D0 $D1"
refused_mount "both superblocks of one device overwritten: refused" "d1\.img: .*superblock" "$D0:$D1"
dd if=/dev/zero of="$D1" bs=4096 count=1 conv=notrunc status=none
dd if=/dev/zero of="$D1" bs=4096 seek="$(backup_offset "$D1")" count=1 conv=notrunc status=none
refused_mount "both superblocks of one device zeroed: refused" "d1\.img: .*superblock" "$D0:$D1"
check "no mount is left behind" sh -c "! grep -q ' $T/' /proc/mounts"
done_testing
