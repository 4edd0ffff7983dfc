#!/bin/sh
# admin.sh - dmiofs in the administrator's hands, through the real tools:
# /etc/fstab lines mounted by `mount -a` (twice: the second finds them
# mounted), UUID= and LABEL= sources on loop devices, `mount -o
# remount,ro|rw`, `umount` through umount.fuse.dmiofs followed at once by
# fsck of the devices, fsck(8) through fstab, `dmiofs-ctl scan`, and the
# daemon's log with and without a syslog at /dev/log.
#
# It runs in a private mount namespace of its own, where /etc/fstab is a
# file of the test's, /usr/sbin holds the helpers of this build beside the
# system's, and /dev/disk is a tmpfs: nothing of the machine's changes but
# the loop devices it borrows (given back on exit).
. "$(dirname "$0")/lib.sh"

require_fuse
if [ "$(id -u)" -ne 0 ] || ! command -v losetup >/dev/null || ! command -v unshare >/dev/null; then
	skip_all "needs root, losetup and unshare"
fi
if [ -z "${DMIOFS_ADMIN_NS:-}" ]; then
	# Again, inside a mount namespace of its own (lib.sh's folder is
	# left to the inner run: it makes and removes its own).
	rm -rf "$T"
	trap - EXIT
	DMIOFS_ADMIN_NS=1 exec unshare --mount --propagation private sh "$0" "$@"
fi

# Mounting over the system's /usr/sbin and /etc/fstab is only ever done
# in a mount namespace of our own.
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
	echo "Bail out! not in a private mount namespace"
	exit 1
fi

LOOPS=""
LISTENER_PID=""
admin_cleanup() {
	for m in "$T"/m*; do
		if grep -q " $m fuse" /proc/mounts; then
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		fi
	done
	[ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null
	for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
	# the namespace's own mounts go with it, but not before rm -rf is done
	umount "$SYS_SBIN" /etc/fstab /dev/disk 2>/dev/null
	it_cleanup
}
trap admin_cleanup EXIT

# ---- the namespace: our fstab, our helpers, our /dev/disk -------------------------
# A copy of the system's /usr/sbin (a few MB) with this build's helpers,
# mounted over it: never a mount of a system folder inside $T, which the
# cleanup removes.
SYS_SBIN=$(readlink -f /usr/sbin)
cp -a "$SYS_SBIN" "$T/sbin"
ln -sf "$DMIOFS" "$T/sbin/mount.fuse.dmiofs"
ln -sf "$CTL" "$T/sbin/umount.fuse.dmiofs"
ln -sf "$FSCK" "$T/sbin/fsck.fuse.dmiofs"
ln -sf "$FSCK" "$T/sbin/fsck.dmiofs"
mount --bind "$T/sbin" "$SYS_SBIN" || { echo "Bail out! cannot mount the helpers over $SYS_SBIN"; exit 1; }
: >"$T/fstab"
mount --bind "$T/fstab" /etc/fstab
mkdir -p /dev/disk 2>/dev/null
mount -t tmpfs tmpfs /dev/disk
# mount -o remount runs dmiofs-ctl from where it is installed; this one.
DMIOFS_CTL=$CTL
export DMIOFS_CTL

# loopdev SIZE NAME: LOOP is a loop device over a new image $T/NAME.img.
loopdev() {
	truncate -s "$1" "$T/$2.img"
	LOOP=$(losetup -f --show "$T/$2.img") || return 1
	LOOPS="$LOOPS $LOOP"
}

mounted_count() { grep -c " $1 fuse.dmiofs " /proc/mounts; }
daemon_of() { pgrep -f "$1( |\$)"; }

# ---- UUID= and LABEL= on loop devices; dmiofs-ctl scan --------------------------------
loopdev 192M l0 && L0=$LOOP && loopdev 192M l1 && L1=$LOOP || { ok 1 "two loop devices"; done_testing; }
must "mkfs.dmiofs --label admintest on two loop devices" "$MKFS" -q --label admintest "$L0" "$L1"
check "mkfs.dmiofs linked /dev/disk/by-label/admintest to a member at once" \
	sh -c "[ \"\$(readlink /dev/disk/by-label/admintest)\" = '$L0' ]"
rm -f /dev/disk/by-uuid/* /dev/disk/by-label/*
"$CTL" scan >"$T/scan.out" 2>&1
ok $? "dmiofs-ctl scan exits 0"
UUID=$(sed -n 's/^dmiofs UUID=\([0-9a-f-]*\) LABEL="admintest".*/\1/p' "$T/scan.out")
check "dmiofs-ctl scan names the file system by UUID and label" test -n "$UUID"
check "and lists both loop devices, as members 0 and 1, healthy" sh -c "
	grep -Eq '^  $L0 +0  healthy ' '$T/scan.out' && grep -Eq '^  $L1 +1  healthy ' '$T/scan.out'"
check "dmiofs-ctl scan --json says the same" sh -c "'$CTL' scan --json | python3 -c '
import json, sys
m = {d[\"device\"]: d for d in json.load(sys.stdin) if d[\"uuid\"] == \"$UUID\"}
assert sorted(m) == sorted([\"$L0\", \"$L1\"]), m
assert all(d[\"label\"] == \"admintest\" and d[\"state\"] == \"healthy\" for d in m.values())
'"
check "it links /dev/disk/by-uuid and by-label to a member, as udev would" sh -c "
	[ \"\$(readlink /dev/disk/by-uuid/$UUID)\" = '$L0' ] && [ \"\$(readlink /dev/disk/by-label/admintest)\" = '$L0' ]"

"$CTL" scan --udev "$L1" >"$T/udev.out" 2>&1
ok $? "dmiofs-ctl scan --udev DEVNODE (udev's IMPORT{program}) exits 0"
check "and gives the ID_FS_* properties blkid gives known file systems" sh -c "
	grep -qx ID_FS_TYPE=dmiofs '$T/udev.out' && grep -qx ID_FS_USAGE=filesystem '$T/udev.out' &&
	grep -qx ID_FS_UUID_ENC=$UUID '$T/udev.out' && grep -qx ID_FS_LABEL_ENC=admintest '$T/udev.out'"
check "dmiofs-ctl scan --udev on another device says nothing" sh -c "[ -z \"\$('$CTL' scan --udev /dev/null)\" ]"

# ---- fstab: mount -a twice ---------------------------------------------------------------
mkdir -p "$T/m1" "$T/m2" "$T/m3"
images 2 128M
fs_mkfs
cat >"$T/fstab" <<EOF
UUID=$UUID $T/m1 fuse.dmiofs defaults,nofail,_netdev,x-systemd.device-timeout=10s 0 2
$IMAGES $T/m2 fuse.dmiofs defaults,commit=1000 0 2
EOF
mount -a >"$T/mount.out" 2>&1
ok $? "mount -a mounts both fstab lines (UUID= on loop devices, image files by path)"
check "both are mounted" sh -c "[ $(mounted_count "$T/m1") -eq 1 ] && [ $(mounted_count "$T/m2") -eq 1 ]"
check "/proc/mounts shows the image files' source exactly as fstab gives it" \
	grep -q "^$IMAGES $T/m2 fuse.dmiofs " /proc/mounts
check "the UUID= line mounted both members" sh -c "getfattr --only-values -n user.dmio.devices '$T/m1' |
	grep -q 'path=$L0' && getfattr --only-values -n user.dmio.devices '$T/m1' | grep -q 'path=$L1'"
mount -a >"$T/mount2.out" 2>&1
ok $? "mount -a again exits 0"
check "and mounts nothing twice" sh -c "[ \$(grep -c ' $T/m[12] fuse.dmiofs ' /proc/mounts) -eq 2 ]"
check "findmnt finds it mounted by its fstab source" findmnt --source "$IMAGES" --target "$T/m2"
check "dmiofs-ctl status with no mount point lists both" sh -c "'$CTL' status >'$T/st.out'; grep -q 'at $T/m1: healthy' '$T/st.out' && grep -q 'at $T/m2: healthy' '$T/st.out'"

# ---- remount ro and back -------------------------------------------------------------------
echo "before remount" >"$T/m1/a"
mount -o remount,ro "$T/m1" >"$T/remount.out" 2>&1
ok $? "mount -o remount,ro exits 0"
check "the mount is read-only for the kernel" sh -c "grep ' $T/m1 fuse.dmiofs ' /proc/mounts | grep -q ' ro,'"
check "a write fails" sh -c "! echo x >'$T/m1/b'"
check "dmiofs-ctl status says read-only" sh -c "'$CTL' status '$T/m1' | grep -q 'read-only'"
check "what was written is there" grep -qx "before remount" "$T/m1/a"
mount -o remount,rw "$T/m1" >"$T/remount.out" 2>&1
ok $? "mount -o remount,rw exits 0"
check "writes work again" sh -c "echo after >'$T/m1/b' && grep -qx after '$T/m1/b'"
check "dmiofs-ctl status no longer says read-only" sh -c "! '$CTL' status '$T/m1' | grep -q 'read-only'"

# ---- umount means durable ---------------------------------------------------------------------
dd if=/dev/urandom of="$T/m1/big" bs=1M count=96 status=none
sum=$(md5sum <"$T/m1/big")
pid=$(daemon_of "$T/m1")
diag "the daemon of $T/m1: pid $pid"
umount "$T/m1"
ok $? "umount (through umount.fuse.dmiofs) exits 0"
# (gone, or a zombie its parent has not reaped yet: it has ended)
check "when it returns the daemon has ended" sh -c "[ -n '$pid' ] && ! ps -o stat= -p $pid | grep -qv '^Z'"
check "fsck.dmiofs -n of the loop devices at once: clean" "$FSCK" -n "$L0" "$L1"
dd if=/dev/urandom of="$T/m2/big" bs=1M count=48 status=none
sum2=$(md5sum <"$T/m2/big")
umount "$T/m2"
ok $? "umount of the image files' mount exits 0"
check "fsck.dmiofs -n of the images at once: clean" "$FSCK" -n "$IMAGES"

# ---- fsck(8) through fstab -----------------------------------------------------------------------
fsck -n "$T/m2" >"$T/fsck8.out" 2>&1
ok $? "fsck -n MOUNTPOINT (fstab, type fuse.dmiofs) runs fsck.fuse.dmiofs: exit 0"
check "and says the file system is clean" grep -qi "clean" "$T/fsck8.out"
fsck -n "$T/m1" >"$T/fsck8.out" 2>&1
ok $? "fsck -n of the UUID= line: exit 0"

# ---- mount by LABEL= on the command line, with what was written -------------------------
mount -t fuse.dmiofs LABEL=admintest "$T/m3" >"$T/mount3.out" 2>&1
ok $? "mount -t fuse.dmiofs LABEL=admintest MOUNTPOINT"
check "the file written before the umount is whole" sh -c "[ \"\$(md5sum <'$T/m3/big')\" = '$sum' ]"
check "dmiofs-ctl unmount waits for the daemon too" "$CTL" unmount "$T/m3"
check "nothing is mounted there any more" sh -c "[ $(mounted_count "$T/m3") -eq 0 ]"
mount -a >/dev/null 2>&1
check "mount -a brings both back; the image files' data is whole" sh -c "[ \"\$(md5sum <'$T/m2/big')\" = '$sum2' ]"
umount "$T/m1" && umount "$T/m2"
ok $? "umount both"

# ---- logs ------------------------------------------------------------------------------------------
# No syslog: /dev/log hidden (or absent), messages go to the log file.
if [ -e /dev/log ]; then mount --bind /dev/null /dev/log; fi
"$DMIOFS" -o "log=$T/daemon.log" "$IMAGES" "$T/m2" >"$T/bg.out" 2>&1
ok $? "dmiofs in the background with -o log=FILE and no syslog mounts"
check "the log file says it mounted" grep -q "mounted .* at $T/m2; messages go to $T/daemon.log" "$T/daemon.log"
umount "$T/m2"
# A member missing: the warning reaches the terminal while mounting, and the log.
mv "$T/d1.img" "$T/d1.away"
"$DMIOFS" -o "log=$T/daemon.log" "$IMAGES" "$T/m2" >"$T/bg.out" 2>&1
ok $? "mounted degraded in the background"
check "the terminal was told, while the parent waited" grep -q "d1.img.*missing" "$T/bg.out"
check "and the log file, with the device" grep -q "d1.img.*missing" "$T/daemon.log"
umount "$T/m2"
mv "$T/d1.away" "$T/d1.img"
if [ -e /dev/log ]; then umount /dev/log; fi
# A syslog listening at /dev/log: the messages go there.
python3 - "$T/devlog" "$T/syslog.out" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
EOF
LISTENER_PID=$!
for _ in $(seq 1 100); do [ -S "$T/devlog" ] && break; sleep 0.05; done
made_devlog=""
if [ ! -e /dev/log ]; then : >/dev/log && made_devlog=1; fi
mount --bind "$T/devlog" /dev/log
"$DMIOFS" "$IMAGES" "$T/m2" >"$T/bg.out" 2>&1
ok $? "dmiofs in the background with a syslog at /dev/log mounts"
for _ in $(seq 1 100); do grep -q "mounted .* at $T/m2; messages go to syslog" "$T/syslog.out" && break; sleep 0.05; done
check "the syslog got its messages, as dmiofs[pid]" grep -q "dmiofs\[[0-9]*\]: mounted .* at $T/m2; messages go to syslog" "$T/syslog.out"
umount "$T/m2"
umount /dev/log
[ -n "$made_devlog" ] && rm -f /dev/log

# ---- sync MOUNTPOINT commits the log ------------------------------------------------------
# (a bare sync(1) and syncfs(2) never reach a FUSE daemon: the kernel
# sends FUSE_SYNCFS to virtiofs only; `sync MOUNTPOINT` fsyncs the root.)
must "mounted in the foreground, a commit a minute" fs_mount -o commit=60000
echo "synced by sync MOUNTPOINT" >"$MNT/synced"
sync "$MNT"
ok $? "sync MOUNTPOINT exits 0"
fs_kill
must "killed with kill -9 at once; it mounts again" fs_mount
check "the file written before sync MOUNTPOINT is there" grep -qx "synced by sync MOUNTPOINT" "$MNT/synced"
check "unmount" fs_umount

# ---- dmiofs-ctl add takes a device list too ------------------------------------------------
truncate -s 128M "$T/n0.img" "$T/n1.img"
"$DMIOFS" -o "log=$T/daemon.log" "$IMAGES" "$T/m2" >"$T/bg.out" 2>&1
ok $? "mounted for dmiofs-ctl add"
check "dmiofs-ctl add MOUNTPOINT A:B --wait adds both" "$CTL" add "$T/m2" "$T/n0.img:$T/n1.img" --wait
check "the file system has four healthy devices" sh -c "'$CTL' status --json '$T/m2' | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s[\"device_count\"] == 4 and s[\"status\"] == \"healthy\", s
'"
check "the data is whole" sh -c "[ \"\$(md5sum <'$T/m2/big')\" = '$sum2' ]"
umount "$T/m2"
ok $? "umount"

done_testing
