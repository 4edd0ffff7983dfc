#!/bin/sh
# mkfs.dmiofs's command line: devices as separate arguments, joined by ':'
# as dmiofs takes them, or both; -V; bad usage exits 2 with a usage line
# that shows every option; one device only with --copies 1; sparse images
# are warned about and --preallocate allocates them (or refuses, before
# writing anything, when there is no room); and the root reserve (-m):
# an ordinary user filling the file system gets ENOSPC while root may
# still write, and statfs shows it as free but not available.
. "$(dirname "$0")/lib.sh"

images 3 32M
D0=$T/d0.img
D1=$T/d1.img
D2=$T/d2.img

# exits WANT COMMAND...: the command exits with WANT (its output in $T/out).
exits() {
	want=$1
	shift
	"$@" >"$T/out" 2>&1
	rc=$?
	[ "$rc" -eq "$want" ] && return 0
	echo "exit status $rc, not $want:"
	cat "$T/out"
	return 1
}

# refused_as_usage REASON ARGS...: mkfs.dmiofs ARGS exits 2 and prints
# two lines: the reason (an extended regex), then a usage line that
# names every option.
refused_as_usage() {
	reason=$1
	shift
	"$MKFS" "$@" >"$T/out" 2>&1
	rc=$?
	cat "$T/out" # check shows it when this fails
	[ "$rc" -eq 2 ] && [ "$(wc -l <"$T/out")" -eq 2 ] && grep -Eq "^mkfs.dmiofs: .*$reason" "$T/out" || return 1
	for opt in -k -L -M -m --preallocate -f -q -V -h; do
		grep '^usage: mkfs.dmiofs ' "$T/out" | grep -qF -- "[$opt" || return 1
	done
}

usage_error() {
	desc=$1
	shift
	check "$desc" refused_as_usage "$@"
}

# fails_with_enospc COMMAND...: it fails, saying there is no space left.
fails_with_enospc() {
	if "$@" >"$T/out" 2>&1; then
		echo "it succeeded"
		return 1
	fi
	cat "$T/out"
	grep -q 'No space left on device' "$T/out"
}

# The images hold no dmiofs superblock (nothing was written to them).
untouched() {
	for img in "$@"; do
		[ "$(head -c 8 "$img")" != DMIOFSSB ] || return 1
	done
}

# The images have every byte allocated.
allocated() {
	for img in "$@"; do
		[ $(($(stat -c '%b * %B' "$img"))) -ge "$(stat -c %s "$img")" ] || return 1
	done
}

# Nothing of the images is allocated.
unallocated() {
	for img in "$@"; do
		[ "$(stat -c %b "$img")" -eq 0 ] || return 1
	done
}

# prints_version OPTION: mkfs.dmiofs OPTION prints its name and version only.
prints_version() {
	out=$("$MKFS" "$1") && [ "$out" = "mkfs.dmiofs $VERSION" ]
}

# lists_devices PATH...: the report in $T/out lists these devices, in
# this order, and no others.
lists_devices() {
	grep -q "^  devices:  $#\$" "$T/out" || return 1
	i=0
	for path in "$@"; do
		grep -q "^    $i  $path " "$T/out" || return 1
		i=$((i + 1))
	done
}

# warns_sparse IMAGE...: $T/out warns of each image: sparse, how much of
# it is not allocated (GLib puts a no-break space before the unit), and
# --preallocate.
warns_sparse() {
	for img in "$@"; do
		grep -q "^mkfs.dmiofs: warning: $img is sparse: [0-9.]*.MiB of its [0-9.]*.MiB are not allocated.*fills up.*--preallocate" "$T/out" ||
			return 1
	done
}

# ---- the command line ----------------------------------------------------------

# shellcheck disable=SC2154 # lib.sh makes sure of it
VERSION=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/config.h")
check "-V prints the version and exits 0" prints_version -V
check "--version too" prints_version --version
usage_error "an unknown option: exit 2 and the usage" "Unknown option" --frobnicate "$D0" "$D1"
usage_error "no device: exit 2 and the usage" "no device given"
usage_error "a bad --copies: exit 2" "copies" --copies two "$D0" "$D1"
usage_error "--reserve above 50: exit 2" "--reserve 51: a percentage.*0 to 50" --reserve 51 "$D0" "$D1"
usage_error "-m with two decimals: exit 2" "--reserve 0.25" -m 0.25 "$D0" "$D1"
usage_error "-m that is not a number: exit 2" "--reserve lots" -m lots "$D0" "$D1"
usage_error "an empty name in a device list: exit 2" "an empty device name" "$D0::$D1"
usage_error "-M, the metadata size, checked still" "--meta-size 4M" -M 4M "$D0" "$D1"
check "nothing was written by any of them" untouched "$D0" "$D1" "$D2"

# ---- one device ------------------------------------------------------------------

usage_error "one device without --copies 1 is refused" "no redundancy.*second device, or --copies 1" "$D0"
check "it says why: no redundancy, and what to do" grep -q "one device given: the file system would have no redundancy" "$T/out"
check "and writes nothing" untouched "$D0"
check "one device with --copies 1 is made" exits 0 "$MKFS" --copies 1 "$D0"
check "it says there is no redundancy" grep -q "copies:   1 (no redundancy" "$T/out"

# ---- devices: separate, joined by ':', or both -------------------------------------

check "two devices joined by ':'" exits 0 "$MKFS" --force "$D0:$D1"
check "make two devices" lists_devices "$D0" "$D1"
check "separate arguments" exits 0 "$MKFS" --force "$D1" "$D0"
check "make two devices, in the order given" lists_devices "$D1" "$D0"
check "a list and a separate device, mixed" exits 0 "$MKFS" --force "$D0:$D1" "$D2"
check "make three devices, in the order given" lists_devices "$D0" "$D1" "$D2"
truncate -s 32M "$T/with:colon.img"
check "a path holding ':' is two names (exit 1, the first not found)" exits 1 "$MKFS" "$T/with:colon.img" "$D0"
check "the message names the part before the ':'" grep -q "^mkfs.dmiofs: $T/with: No such file" "$T/out"

# ---- sparse images and --preallocate -------------------------------------------------

rm -f "$D0" "$D1" "$D2"
truncate -s 32M "$D0" "$D1"
check "sparse images are made, with a warning" exits 0 "$MKFS" -q "$D0" "$D1"
check "the warning names each image, what is unallocated and --preallocate" warns_sparse "$D0" "$D1"
rm -f "$D0" "$D1"
truncate -s 32M "$D0" "$D1"
check "--preallocate makes them" exits 0 "$MKFS" -q --preallocate "$D0" "$D1"
check "without a warning" test ! -s "$T/out"
check "and they are allocated whole" allocated "$D0" "$D1"

if [ "$(id -u)" -eq 0 ] && mkdir "$T/small" && mount -t tmpfs -o size=40M dmiofs-test "$T/small"; then
	trap 'umount "$T/small" 2>/dev/null; it_cleanup' EXIT
	truncate -s 32M "$T/small/a.img" "$T/small/b.img"
	check "--preallocate without room for both images is refused (exit 1)" \
		exits 1 "$MKFS" --preallocate "$T/small/a.img" "$T/small/b.img"
	check "it names them, what they need and what there is" \
		grep -Eq "^mkfs.dmiofs: $T/small/a.img, $T/small/b.img: cannot preallocate: 64\.0.MiB more are needed.*has [0-9.]+.MiB free; nothing was written" "$T/out"
	check "nothing was written or allocated" unallocated "$T/small/a.img" "$T/small/b.img"
	umount "$T/small"
else
	diag "not root, or no tmpfs: --preallocate without room is not tested"
fi

# ---- the root reserve --------------------------------------------------------------

# statfs_blocks: the mount's TOTAL, FREE and AVAIL blocks (4 KiB each).
statfs_blocks() {
	read -r TOTAL FREE AVAIL <<EOF
$(stat -f -c '%b %f %a' "$MNT")
EOF
}

# The blocks statfs keeps from ordinary users: about PERMILLE/1000 of the
# capacity, plus at most 64 kept for the zeroing of truncates.
reserve_shows() {
	statfs_blocks
	root=$((TOTAL * $1 / 1000))
	kept=$((FREE - AVAIL))
	[ "$kept" -ge "$root" ] && [ "$kept" -le $((root + 64)) ] && return 0
	echo "capacity $TOTAL blocks, free $FREE, available $AVAIL: $kept kept back, want $root (+ up to 64)"
	return 1
}

# as_nobody COMMAND...: run in the mount's world-writable folder as nobody
# (from there: the folders above the mount are not nobody's to enter).
as_nobody() {
	(cd "$MNT/pub" && setpriv --reuid=65534 --regid=65534 --clear-groups "$@")
}

# nobody_fills: nobody writes until the file system is full for him.
nobody_fills() {
	fails_with_enospc as_nobody dd if=/dev/zero of=fill bs=4k
}

# reserve_left PERMILLE: nothing is available, and the reserve is still free.
reserve_left() {
	statfs_blocks
	[ "$AVAIL" -eq 0 ] && [ "$FREE" -ge $((TOTAL * $1 / 1000)) ] && return 0
	echo "capacity $TOTAL blocks, free $FREE, available $AVAIL"
	return 1
}

# space_available: once the frees are durable, more than 4 MiB is available.
space_available() {
	sync "$MNT"
	statfs_blocks
	[ "$AVAIL" -gt 1000 ]
}

# status_reserve PERMILLE: user.dmio.status gives the reserve in bytes.
status_reserve() {
	statfs_blocks
	root=$((TOTAL * $1 / 1000))
	xattr "$MNT" user.dmio.status | grep -qx "root_reserve=$((root * 4096))"
}

# (require_fuse would skip the whole test, the points above included.)
if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	diag "no /dev/fuse or no fusermount3: the root reserve is not tested"
	done_testing
fi
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
	diag "not root, or no setpriv: the root reserve is not tested"
	done_testing
fi

check "mkfs with --reserve 10" exits 0 "$MKFS" --force --reserve 10 "$D0" "$D1"
check "it reports the reserve" grep -Eq "reserved: [0-9.]+.[KM]iB of it \(10%\) only root may fill" "$T/out"
must "mount" fs_mount
mkdir -m 1777 "$MNT/pub"
check "df: available is less than free by the reserve" reserve_shows 100
check "the status shows the reserve in bytes" status_reserve 100
check "nobody fills the file system until ENOSPC" nobody_fills
check "the file is nobody's" test "$(stat -c %u "$MNT/pub/fill")" -eq 65534
check "no space is available, but the reserve is still free" reserve_left 100
check "nobody cannot write another block (ENOSPC)" fails_with_enospc as_nobody dd if=/dev/zero of=more bs=4k count=1
check "nor fallocate one" fails_with_enospc as_nobody fallocate -l 4096 more2
check "root still writes 1 MiB" dd if=/dev/zero of="$MNT/root-file" bs=64k count=16 status=none
check "and fallocates" fallocate -l 4096 "$MNT/root-fallocated"
check "unmount" fs_umount
must "mount again" fs_mount
check "the reserve is kept across a remount (it is in the superblock)" status_reserve 100
check "nobody's file is removed" rm "$MNT/pub/fill"
check "and the space is available again" space_available
check "unmount" fs_umount

check "mkfs -m 0: no reserve" exits 0 "$MKFS" --force -m 0 "$D0" "$D1"
check "it says so" grep -q "reserved: none" "$T/out"
must "mount" fs_mount
check "df: available is free but for the blocks kept for truncates" reserve_shows 0
check "the status shows no reserve" status_reserve 0
check "unmount" fs_umount
done_testing
