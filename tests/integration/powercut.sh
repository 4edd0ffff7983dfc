#!/bin/sh
# Power cuts at every flush point, the method of the kernel's
# dm-log-writes in userspace: the daemon records every write, flush,
# discard and write-zeroes its devices complete (-o log_writes, libdmio's
# dmio_write_log(3)) while powercut.py runs a seeded workload (files
# created, overwritten in place, appended to, renamed, deleted, in a few
# directories, some fsync'd); after the unmount, the log is replayed
# onto fresh copies of the images as mkfs left them:
#
#   - whole, it rebuilds both images byte for byte (nothing reached the
#     devices unrecorded), and they hold the tree the workload left;
#   - up to each of up to POWERCUT_POINTS flush points (flushes and FUA
#     writes, spread evenly, the last one included), fsck.dmiofs -n finds
#     nothing to repair, the file system mounts (read-only), and every
#     name whose state an fsync had made durable before that flush point
#     completed holds exactly that state (powercut.py says why this check
#     is exact).
#
#   - at up to POWERCUT_LOSSY_POINTS FUA writes (default 8, 3 under the
#     sanitizers), the same checks on a replay that leaves out what each
#     device's volatile cache could lose: its writes after its last flush.
#
#   - at up to POWERCUT_SOME_LOST_POINTS entries (default 12, 4 under the
#     sanitizers), the same checks when each device's cache lost about
#     half of what it could lose, chosen by a hash: lazy commits that
#     landed without their data, or after a lost one.
#
# POWERCUT_SEED (default 4242, so that CI repeats the same run) and
# POWERCUT_POINTS (default 40, 12 under the sanitizers) may be set; a failing run is repeated with
# the same seed.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v python3 >/dev/null || skip_all "no python3"

REPLAY="$top_builddir/tests/integration/replay-log"
PY="$top_srcdir/tests/integration/powercut.py"
POINTS=${POWERCUT_POINTS:-$([ -n "${DMIOFS_SANITIZED:-}" ] && echo 12 || echo 40)}
SEED=${POWERCUT_SEED:-4242}
diag "POWERCUT_SEED=$SEED POWERCUT_POINTS=$POINTS"
[ -x "$REPLAY" ] || { echo "Bail out! $REPLAY is not built (make check builds it)"; exit 1; }
started=$(date +%s)

# The images as mkfs left them (p*), and the copies a replay writes (r*).
images 2 64M
must "mkfs.dmiofs on two images" fs_mkfs
for i in 0 1; do
	cp --sparse=always "$T/d$i.img" "$T/p$i.img"
done
REAL_IMAGES=$IMAGES
REPLAYED_IMAGES="$T/r0.img:$T/r1.img"

# fresh_replay SEQ: r0/r1 are the pristine images with entries 1..SEQ
# applied; with REPLAY_MODE=--until-flushed, without what each device's
# cache may lose at the cut (what came after its last flush, FUA aside).
REPLAY_MODE=--until
fresh_replay() {
	for i in 0 1; do
		cp --sparse=always "$T/p$i.img" "$T/r$i.img" || return 1
	done
	"$REPLAY" "$T/writes.log" "$REPLAY_MODE" "$1" "$T/r0.img" "$T/r1.img"
}

# on_replay_mount COMMAND...: run it with the replayed images mounted
# read-only; the mount always goes away again.
on_replay_mount() {
	IMAGES=$REPLAYED_IMAGES
	fs_mount -o ro || { IMAGES=$REAL_IMAGES; return 1; }
	"$@"
	rc=$?
	fs_umount || rc=1
	IMAGES=$REAL_IMAGES
	return "$rc"
}

fsck_clean() {
	"$FSCK" -n "$REPLAYED_IMAGES"
}

# ---- the recorded run -----------------------------------------------------------

must "mount with -o log_writes" fs_mount -o "log_writes=$T/writes.log,commit=50"
check "the workload runs (seed $SEED)" python3 "$PY" workload "$MNT" "$T/journal" "$SEED"
must "unmount (the log is closed)" fs_umount
dump_log() {
	"$REPLAY" "$T/writes.log" --dump >"$T/entries"
}
must "the log reads back whole" dump_log
"$REPLAY" "$T/writes.log" --list >"$T/points"
total_points=$(wc -l <"$T/points")
diag "$(wc -l <"$T/entries") entries, $total_points flush points, $(du -k "$T/writes.log" | cut -f1) KiB of log"

# ---- the whole log ----------------------------------------------------------------

replays_to_devices() {
	fresh_replay "$(tail -n 1 "$T/entries" | cut -d' ' -f1)" &&
		cmp "$T/r0.img" "$T/d0.img" && cmp "$T/r1.img" "$T/d1.img"
}
must "replaying the whole log rebuilds both images byte for byte" replays_to_devices
check "the whole replay: fsck.dmiofs -n is clean" fsck_clean
check "the whole replay holds the tree the workload left" on_replay_mount python3 "$PY" final "$MNT" "$T/journal"

# ---- every flush point (up to POINTS of them) ---------------------------------------

# spread FILE WANT [LAST]: WANT lines of FILE, evenly spread, the first and
# the last included, and the last LAST lines on top.
spread() {
	awk -v n="$(wc -l <"$1")" -v want="$2" -v last="${3:-0}" '
	BEGIN { if (want > n) want = n; for (i = 0; i < want; i++) pick[want > 1 ? int(i * (n - 1) / (want - 1) + 0.5) + 1 : n] = 1
		for (i = n - last + 1; i <= n; i++) if (i >= 1) pick[i] = 1 }
	NR in pick' "$1"
}
# POINTS flush points, and the last eight on top: the unmount's checkpoint
# and superblock writes, where a cut leaves the two copies of a superblock
# apart.
spread "$T/points" "$POINTS" 8 >"$T/chosen"

# at_flush_point SEQ TIME_NS: the power cut right after entry SEQ.
at_flush_point() {
	fresh_replay "$1" || return 1
	fsck_clean || { echo "fsck.dmiofs -n is not clean"; return 1; }
	on_replay_mount python3 "$PY" check "$MNT" "$T/journal" "$2" >"$T/checked"
	rc=$?
	cat "$T/checked"
	sed -n 's/^checked \([0-9]*\) names$/\1/p' "$T/checked" >>"$T/counts"
	return "$rc"
}

: >"$T/counts"
while read -r seq time dev kind; do
	check "power cut after entry $seq ($kind on device $dev): fsck clean, mounts, fsync'd names intact" \
		at_flush_point "$seq" "$time"
done <"$T/chosen"
checked_points=$(wc -l <"$T/chosen")
names=$(awk '{ s += $1 } END { print s + 0 }' "$T/counts")
diag "$checked_points of $total_points flush points checked, $names fsync'd names checked in all, in $(($(date +%s) - started)) s"
ok "$([ "$checked_points" -gt 0 ] && [ "$names" -gt 0 ]; echo $?)" "the flush points checked fsync'd names"

# ---- cuts that take the devices' caches with them ------------------------------------

# lossy_cuts MODE FILE LOSS: a power cut after each entry of FILE, replayed
# with replay-log MODE (what the devices' caches lose, said as LOSS);
# counts the cuts whose mount left commits out.
lossy_cuts() {
	REPLAY_MODE=$1
	: >"$T/counts"
	left_out=0
	while read -r seq time dev kind; do
		check "power cut after entry $seq ($kind on device $dev), $3: fsck clean, mounts, fsync'd names intact" \
			at_flush_point "$seq" "$time"
		! grep -q "left out: the data" "$T/daemon.err" || left_out=$((left_out + 1))
	done <"$2"
	diag "$(wc -l <"$2") cuts with $3 checked ($left_out with commits left out), in $(($(date +%s) - started)) s in all"
}

# At FUA writes (commits, checkpoint headers, superblocks), evenly spread:
# the writes after each device's last flush are lost.  A small fsync's
# commit goes out together with its flush (journal.c, unordered commits),
# so some of these cuts hold a commit whose data is gone: the mount must
# leave it out, and no fsync had returned for it.
LOSSY=${POWERCUT_LOSSY_POINTS:-$([ -n "${DMIOFS_SANITIZED:-}" ] && echo 3 || echo 8)}
grep ' fua$' "$T/points" >"$T/fua-points"
spread "$T/fua-points" "$LOSSY" >"$T/chosen-lossy"
lossy_cuts --until-flushed "$T/chosen-lossy" "unflushed writes lost"
ok "$([ -s "$T/chosen-lossy" ]; echo $?)" "there were FUA writes to cut at"

# At writes with no FUA (data and lazy commits), evenly spread: of the
# writes after each device's last flush, about half are lost, chosen by a
# hash (replay-log --until-some-lost).  The committer's own commits go out
# with no flush (journal.c, lazy commits), so these cuts hold commits
# whose data is partly gone, and commits that outlived a lost one before
# them: the mount must leave them out, and no fsync had returned for them.
SOME=${POWERCUT_SOME_LOST_POINTS:-$([ -n "${DMIOFS_SANITIZED:-}" ] && echo 4 || echo 12)}
awk '$4 == "write" && $5 == "-"' "$T/entries" >"$T/plain"
spread "$T/plain" "$SOME" | cut -d" " -f1-4 >"$T/chosen-some"
lossy_cuts --until-some-lost "$T/chosen-some" "some unflushed writes lost"
ok "$([ -s "$T/chosen-some" ]; echo $?)" "there were entries to cut at"
done_testing
