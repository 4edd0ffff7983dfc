#!/bin/sh
# fsck.dmiofs as util-linux's fsck(8) runs it, and as e2fsck behaves:
#   - fsck -t dmiofs runs fsck.dmiofs, fsck -t fuse.dmiofs (the type of an
#     /etc/fstab line) runs it as fsck.fuse.dmiofs; a clean check exits 0
#     and says "DEVS: clean, N/T files, M/T blocks";
#   - the devices as one DEV:DEV argument, as separate ones, or mixed;
#   - a rotten copy of a hard-linked file and a damaged superblock: -n
#     exits 4 and names every path of the file with its inode; -p and -y
#     repair (exit 1) and the next check is clean (exit 0);
#   - -C0 draws a bar, -C N writes "pass done total device" lines;
#   - exit 16 for a usage error, 8 for no device there or a file system
#     mounted (naming the mount point), 32 when interrupted;
#   - one device of three missing: -n exits 4, -p (at boot) exits 0.
. "$(dirname "$0")/lib.sh"
require_fuse
# Without util-linux's fsck(8) the points that run it are skipped.
HAVE_FSCK8=$(command -v fsck >/dev/null && echo yes)

TOOLS=$(cd "$(dirname "$FSCK")" && pwd)

# expect STATUS DESCRIPTION COMMAND...: a test point that COMMAND exits
# with STATUS; what it printed (both streams) is left in $T/out.  Skipped
# (and the said after it) when the command is fsck8 and there is none.
expect() {
	want=$1 desc=$2
	shift 2
	SKIPPED=""
	if [ "${1%_fstab}" = fsck8 ] && [ -z "$HAVE_FSCK8" ]; then
		SKIPPED=yes
		ok 0 "# SKIP $desc: no fsck(8) (util-linux)"
		return
	fi
	"$@" >"$T/out" 2>&1
	got=$?
	if [ "$got" -eq "$want" ]; then
		ok 0 "$desc"
	else
		ok 1 "$desc (exit $got, not $want)"
		sed 's/^/#   /' "$T/out"
	fi
}

# said DESCRIPTION PATTERN: a test point that the last output matches.
said() {
	if [ -n "$SKIPPED" ]; then
		ok 0 "# SKIP $1: no fsck(8) (util-linux)"
	elif grep -Eq -- "$2" "$T/out"; then
		ok 0 "$1"
	else
		ok 1 "$1"
		echo "#   no line matches: $2"
		sed 's/^/#   /' "$T/out"
	fi
}

# util-linux's fsck(8), finding this build's helpers first (run by
# expect, which shellcheck does not follow).
# shellcheck disable=SC2317
fsck8() {
	PATH="$TOOLS:$PATH" fsck "$@"
}

# The same, with the helper under the name an fstab line's type asks for.
# shellcheck disable=SC2317
fsck8_fstab() {
	PATH="$T/bin:$PATH" fsck "$@"
}

# Three devices, two copies: the devices can be given in every form.
images 3 64M
check "mkfs (three devices, two copies)" fs_mkfs
D0="$T/d0.img" D1="$T/d1.img" D2="$T/d2.img"
SUMMARY="^$IMAGES: clean, [0-9]+/[0-9]+ files, [0-9]+/[0-9]+ blocks\$"

check "mount" fs_mount
mkdir "$MNT/docs"
head -c 300000 /dev/urandom >"$T/data"
cp "$T/data" "$MNT/docs/report.bin"
ln "$MNT/docs/report.bin" "$MNT/docs/report.link"
ln "$MNT/docs/report.bin" "$MNT/other"
echo small >"$MNT/small"
"$CTL" layout "$MNT/docs/report.bin" >"$T/layout"
check "unmount" fs_umount
# Where block 0 of the file has its first copy: device and sector.
dev=$(awk '/^region extent=0 / { for (i = 1; i <= NF; i++) if ($i ~ /^device=/) { sub("device=", "", $i); print $i; exit } }' "$T/layout")
sector=$(awk '/^region extent=0 / { for (i = 1; i <= NF; i++) if ($i ~ /^sector=/) { sub("sector=", "", $i); print $i; exit } }' "$T/layout")
check "the layout names the device and sector of block 0's first copy" test -n "$dev" -a -n "$sector"

# ---- a clean file system, through fsck(8) ---------------------------------------------

expect 0 "fsck -N -t dmiofs: fsck(8) would run this build's fsck.dmiofs" fsck8 -N -t dmiofs "$IMAGES"
said "it names the program and the devices" "$TOOLS/fsck.dmiofs .*fsck.dmiofs $IMAGES"
expect 0 "fsck -t dmiofs DEV:DEV:DEV on a clean file system exits 0" fsck8 -t dmiofs "$IMAGES"
said "fsck(8) printed its banner" "^fsck from util-linux"
said "fsck.dmiofs printed e2fsck's one-line summary" "$SUMMARY"

mkdir "$T/bin"
ln -s "$FSCK" "$T/bin/fsck.fuse.dmiofs"
expect 0 "fsck -N -t fuse.dmiofs (an fstab line's type)" fsck8_fstab -N -t fuse.dmiofs "$IMAGES"
said "  would run fsck.fuse.dmiofs" "$T/bin/fsck.fuse.dmiofs .*fsck.fuse.dmiofs $IMAGES"
expect 0 "fsck -t fuse.dmiofs on a clean file system exits 0" fsck8_fstab -t fuse.dmiofs "$IMAGES"
said "called fsck.fuse.dmiofs, it prints the same summary" "$SUMMARY"
expect 0 "fsck -p -t fuse.dmiofs (as fsck -A at boot) exits 0" fsck8_fstab -p -t fuse.dmiofs "$IMAGES"
said "preening, it prints the summary" "$SUMMARY"
if [ -n "$SKIPPED" ]; then
	ok 0 "# SKIP  and no other line: no fsck(8) (util-linux)"
else
	check "  and no other line but fsck(8)'s banner" test "$(grep -cv '^fsck from util-linux' "$T/out")" -eq 1
fi

expect 0 "the devices as separate arguments" "$FSCK" -n "$D0" "$D1" "$D2"
said "  summary" "^$IMAGES: clean"
expect 0 "the devices mixed: DEV:DEV DEV" "$FSCK" -n "$D0:$D1" "$D2"
expect 0 "-f is accepted, and grouped options (-fn) too" "$FSCK" -fn "$IMAGES"
expect 0 "-V prints the version" "$FSCK" -V
said "  it names the program" "^fsck.dmiofs .*[0-9]"

# ---- progress ------------------------------------------------------------------------

expect 0 "-C0 on a clean file system exits 0" "$FSCK" -n -C0 "$IMAGES"
said "-C0 draws a progress bar on standard output" "$IMAGES: \|=*  *\| +[0-9.]+%"
expect 0 "-C 0 (the descriptor apart) too" "$FSCK" -n -C 0 "$IMAGES"
expect 0 "fsck -t dmiofs DEVS -- -C0: fsck(8) passes -C0 on" fsck8 -t dmiofs "$IMAGES" -- -C0
said "  the bar is drawn" "\| +[0-9.]+%"
"$FSCK" -n -C 3 "$IMAGES" 3>"$T/progress" >/dev/null 2>&1
ok $? "-C 3: the check exits 0"
check "-C 3 writes \"pass done total device\" lines to fd 3, e2fsck's format" \
	sh -c "grep -Evq '^[123] [0-9]+ [0-9]+ $IMAGES\$' '$T/progress' && exit 1; test -s '$T/progress'"
check "  the passes run 1, 2, 3 and the last line is pass 3 done" \
	sh -c "cut -d' ' -f1 '$T/progress' | uniq | tr -d '\n' | grep -qx 123 &&
	       tail -n 1 '$T/progress' | awk '{ exit !(\$1 == 3 && \$2 == \$3) }'"
expect 16 "-C on a descriptor that is not open is a usage error (16)" "$FSCK" -n -C 9 "$IMAGES"

# ---- usage and operational errors -------------------------------------------------------

expect 16 "an unknown option exits 16" "$FSCK" -Q "$IMAGES"
said "  it names the option" "-Q: unknown option"
expect 16 "through fsck(8) too" fsck8 -t dmiofs -Q "$IMAGES"
expect 16 "-n with -y exits 16" "$FSCK" -n -y "$IMAGES"
expect 16 "-p with -y exits 16" "$FSCK" -p -y "$IMAGES"
expect 16 "no device exits 16" "$FSCK" -n
expect 8 "a device that is not there (none of the file system's) exits 8" "$FSCK" -n "$T/nothere.img"
expect 8 "through fsck(8) too" fsck8 -t dmiofs "$T/nothere.img"

check "mount again" fs_mount
expect 8 "fsck -y of a mounted file system is refused (8)" "$FSCK" -y "$IMAGES"
said "  the message names the mount point" "mounted at $MNT"
expect 8 "fsck -p too" "$FSCK" -p "$IMAGES"
expect 8 "fsck -n too: the devices hold older metadata than the daemon" "$FSCK" -n "$IMAGES"
said "  it points to the online check" "dmiofs-ctl scrub start $MNT"
check "unmount" fs_umount

# interrupted: Ctrl-C (SIGINT) while the check waits for a device that
# another program holds, as flock(1) holds it here (as libdmio would):
# the check stops, says so, and exits 32.
interrupted() {
	flock "$D0" sleep 3 &
	holder=$!
	sleep 0.3
	"$FSCK" -n "$IMAGES" >"$T/out" 2>&1 &
	checker=$!
	sleep 1
	kill -INT "$checker"
	wait "$checker"
	rc=$?
	wait "$holder"
	return $rc
}

SKIPPED=""
if command -v flock >/dev/null; then
	interrupted
	ok "$([ $? -eq 32 ]; echo $?)" "SIGINT: exit 32 (canceled)"
else
	SKIPPED=yes
	ok 0 "# SKIP SIGINT: no flock(1) (util-linux)"
fi
said "  it says so" "canceled"

# ---- damage ------------------------------------------------------------------------

# damage: rot one byte of block 0's first copy; destroy the primary
# superblock of a device (the one after it).
damage() {
	flip_byte "$T/d$dev.img" $((sector * 512 + 100))
	dd if=/dev/urandom of="$T/d$(((dev + 1) % 3)).img" bs=4096 count=1 conv=notrunc status=none
}

damage
expect 4 "fsck -n -t dmiofs on a damaged file system exits 4" fsck8 -n -t dmiofs "$IMAGES"
said "it names the file by all its paths, and its inode" \
	"^problem: /docs/report.bin \(inode [0-9]+; also /docs/report.link and /other\): block 0: the copy on $T/d$dev.img does not match its checksum"
said "it names the damaged superblock" "d$(((dev + 1) % 3)).img: the primary superblock copy is damaged"
said "the summary counts the problems" "^$IMAGES: 2 problems, 0 repaired, "
expect 4 "fsck.dmiofs -n itself, the same" "$FSCK" -n "$IMAGES"

expect 1 "fsck -p -t dmiofs repairs both (exit 1)" fsck8 -p -t dmiofs "$IMAGES"
said "preening, each line names the file system" "^$IMAGES: problem: /docs/report.bin \(inode"
said "  and says what was repaired" "^$IMAGES:   repaired: copy rewritten from a good one"
expect 0 "a second check is clean (exit 0)" fsck8 -n -t dmiofs "$IMAGES"
said "  summary" "$SUMMARY"

"$FSCK" -y "$IMAGES" >/dev/null 2>&1 # clean whatever came before (the damage flips bits back)
damage
expect 1 "fsck.dmiofs -y repairs both (exit 1)" "$FSCK" -y "$IMAGES"
said "  the summary counts the repairs" "^$IMAGES: 2 problems, 2 repaired, "
expect 0 "a second check is clean (exit 0)" "$FSCK" -n "$IMAGES"

check "the file is intact through a mount" sh -c "
	'$DMIOFS' -f '$IMAGES' '$MNT' & pid=\$!
	while ! grep -q ' $MNT fuse' /proc/mounts; do kill -0 \$pid || exit 1; sleep 0.05; done
	cmp -s '$T/data' '$MNT/other'; rc=\$?
	test \$(stat -c %h '$MNT/other') -eq 3 || rc=1
	fusermount3 -u '$MNT'; wait \$pid; exit \$rc"

# A device missing is an error left for -n (exit 4), not for -p as at
# boot (exit 0): the file system mounts degraded, as it is made to.
mv "$D2" "$T/d2.away"
expect 4 "a device missing: fsck.dmiofs -n exits 4" "$FSCK" -n "$IMAGES"
said "  the summary says degraded" "^$IMAGES: degraded, "
expect 0 "a device missing: fsck -p (as at boot) exits 0" fsck8 -p -t dmiofs "$IMAGES"
said "  it names the device missing" "^$IMAGES: problem: device 2 .* is missing"
done_testing
