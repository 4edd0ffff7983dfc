#!/bin/sh
# A sync's commit goes to the devices together with a flush, not after
# one (journal.c, unordered commits): a crash may then leave the commit on
# the devices without the data it maps.  The replay checks that data
# against the checksums the commit holds and leaves such a last commit out,
# so the file is as the sync before left it, whole, rather than a file
# whose blocks hold what their checksums refuse.
#
# The crash is made with the daemon's own fault drill: the data area of
# both devices drops every write while reporting success (a disk whose
# cache was lost), a file is overwritten and fdatasync'd, and the daemon
# is killed at once.  As a control, the same without the drill keeps the
# new data.
. "$(dirname "$0")/lib.sh"
require_fuse

SIZE_MB=64
images 2 ${SIZE_MB}M
must "mkfs.dmiofs makes a two-device file system" fs_mkfs

# pattern CHAR FILE: 8 KiB of CHAR.
pattern() {
	head -c 8192 /dev/zero | tr '\0' "$1" >"$2"
}
pattern A "$T/A"
pattern B "$T/B"
pattern C "$T/C"

# write_synced SRC: overwrite the file with SRC in place, O_DIRECT, and
# fdatasync it (one small sync: the commit goes out unordered).
write_synced() {
	dd if="$1" of="$MNT/f" bs=4096 count=2 oflag=direct conv=notrunc,fdatasync status=none
}

# The commit interval is long, so that the only commits are the syncs'.
must "it mounts (commits at most once a minute)" fs_mount -o commit=60000

# Where the data area starts on each device: the first block written on a
# new file system is the first block of the first chunk.
check "a first block is written" dd if="$T/A" of="$MNT/probe" bs=4096 count=1 conv=fsync status=none
"$CTL" layout "$MNT/probe" >"$T/layout" 2>&1
first_sector() {
	awk -v dev="$1" '/^region / {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["device"] == dev && (min == "" || v["sector"] + 0 < min)) min = v["sector"] + 0
	} END { if (min == "") exit 1; print min }' "$T/layout"
}
S0=$(first_sector 0) && S1=$(first_sector 1)
ok $? "the layout names its blocks on both devices"
[ -n "$S0" ] && [ -n "$S1" ] || { sed 's/^/#   /' "$T/layout"; done_testing; }

check "a file of A's is written and fdatasync'd" write_synced "$T/A"
check "it is overwritten with B's and fdatasync'd" write_synced "$T/B"
fs_kill
must "it mounts again after kill -9" fs_mount -o commit=60000
check "the file holds the B's: a sync whose data landed is kept" cmp "$T/B" "$MNT/f"

# up to the last MiB (the backup superblock, which nothing writes here)
LAST=$((SIZE_MB * 2048 - 2048 - 1))
check "device 0's data area drops writes" "$CTL" inject "$MNT" 0 drop-write --sectors "$S0-$LAST"
check "device 1's data area drops writes" "$CTL" inject "$MNT" 1 drop-write --sectors "$S1-$LAST"
check "the file is overwritten with C's and fdatasync'd (the devices lie)" write_synced "$T/C"
fs_kill
must "it mounts again after kill -9" fs_mount -o commit=60000
check "the file holds the B's: the sync whose data was lost is left out" cmp "$T/B" "$MNT/f"
check "the daemon said which commit it left out and why" grep -q "is left out: the data it maps did not reach" "$T/daemon.err"
check "the file reads without an error" sh -c "cat '$MNT/f' >/dev/null"
# That mount wrote a checkpoint, which takes the seq of the commit left
# out: killed at once, the next mount does not meet that commit again.
fs_kill
must "killed at once, it mounts again" fs_mount
check "nothing is left out this time" sh -c "! grep -q 'left out' '$T/daemon.err'"
check "the file still holds the B's" cmp "$T/B" "$MNT/f"
check "unmount is clean" fs_umount
check "fsck.dmiofs -n finds nothing to repair" "$FSCK" -n "$IMAGES"
done_testing
