# lib.sh - shared by the integration tests (sourced, not run).
#
# Every test works in a temporary folder with image files, makes file
# systems with mkfs.dmiofs, mounts them with dmiofs in the foreground (so
# the test knows the daemon's pid), prints TAP, and always unmounts and
# removes its files on exit, whatever happened.
set -u
: "${top_builddir:?run through make check, or set top_builddir}"
: "${top_srcdir:=$top_builddir}"

MKFS="$top_builddir/src/tools/mkfs.dmiofs"
DMIOFS="$top_builddir/src/fuse/dmiofs"
FSCK="$top_builddir/src/tools/fsck.dmiofs"
CTL="$top_builddir/src/tools/dmiofs-ctl"
# The tests' Python programs import fsutil.py from beside this file.
PYTHONPATH="$(cd "$(dirname "$0")" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree
export PYTHONPATH PYTHONDONTWRITEBYTECODE

T=$(mktemp -d "${TMPDIR:-/tmp}/dmiofs-it-XXXXXX")
MNT="$T/mnt"
mkdir -p "$MNT"
DAEMON_PID=""
TEST_N=0
TEST_FAILED=0

it_cleanup() {
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$DAEMON_PID" 2>/dev/null
	fi
	if mountpoint -q "$MNT" 2>/dev/null || grep -q " $MNT " /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	fi
	rm -rf "$T"
}
trap it_cleanup EXIT
trap 'exit 130' INT TERM

# ok STATUS DESCRIPTION: a TAP test point from an exit status.
ok() {
	TEST_N=$((TEST_N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $TEST_N - $2"
	else
		echo "not ok $TEST_N - $2"
		TEST_FAILED=1
	fi
}

# check DESCRIPTION COMMAND...: run the command, a test point from it.
check() {
	desc=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then
		ok 0 "$desc"
	else
		ok 1 "$desc"
		sed 's/^/#   /' "$T/check.out"
	fi
}

# must DESCRIPTION COMMAND...: as check, but the test stops when it fails
# (after a failed mount the mount point is a plain directory: nothing
# after it would test dmiofs).
must() {
	desc=$1
	shift
	if "$@" >"$T/must.out" 2>&1; then
		ok 0 "$desc"
		return 0
	fi
	ok 1 "$desc"
	sed 's/^/#   /' "$T/must.out"
	echo "Bail out! $desc: failed"
	exit 1
}

diag() { echo "# $*"; }

# flip_byte FILE OFFSET: rot one byte of FILE by inverting all its bits, so
# the byte surely changes whatever it held (writing a fixed letter over
# random data leaves it as it was once in 256 runs).
flip_byte() {
	old=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf '%03o' $((old ^ 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

done_testing() {
	echo "1..$TEST_N"
	exit $TEST_FAILED
}

require_fuse() {
	[ -c /dev/fuse ] || skip_all "no /dev/fuse"
	command -v fusermount3 >/dev/null || skip_all "no fusermount3 (Debian package fuse3)"
}

# images N SIZE: $T/d0.img ... sparse image files; sets IMAGES (a:b:c).
images() {
	IMAGES=""
	i=0
	while [ "$i" -lt "$1" ]; do
		truncate -s "$2" "$T/d$i.img"
		IMAGES="${IMAGES:+$IMAGES:}$T/d$i.img"
		i=$((i + 1))
	done
}

# The images as separate arguments.
image_args() {
	echo "$IMAGES" | tr ':' ' '
}

fs_mkfs() {
	# shellcheck disable=SC2046
	"$MKFS" -q "$@" $(image_args)
}

# fs_mount [dmiofs options...]: mount IMAGES at MNT in the foreground
# (background process), wait until the mount is there.
fs_mount() {
	"$DMIOFS" -f "$@" "$IMAGES" "$MNT" 2>"$T/daemon.err" &
	DAEMON_PID=$!
	for _ in $(seq 1 200); do
		grep -q " $MNT fuse" /proc/mounts && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	diag "mount failed:"
	sed 's/^/#   /' "$T/daemon.err"
	DAEMON_PID=""
	return 1
}

# fs_umount: unmount and wait for the daemon to finish (it writes its
# checkpoint on the way out); fails if the daemon reports an error.
fs_umount() {
	[ -n "$DAEMON_PID" ] || return 1
	fusermount3 -u "$MNT" || return 1
	wait "$DAEMON_PID"
	rc=$?
	DAEMON_PID=""
	if [ $rc -ne 0 ]; then
		diag "daemon exited with $rc:"
		sed 's/^/#   /' "$T/daemon.err"
	fi
	return $rc
}

# fs_kill: the daemon dies at once (kill -9); the dead mount is cleared.
fs_kill() {
	[ -n "$DAEMON_PID" ] || return 1
	kill -9 "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=""
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	return 0
}

# What fio prints when data it reads back is wrong.
VERIFY_ERRORS='verify failed|bad magic|bad header|verify type mismatch|bad pattern|crc32c: verify|md5: verify|[^_]verify: '

# fio_output_clean OUT RC: fio exited 0 (RC), every job of its output file
# OUT reports err= 0, nothing was read back wrong, and something was read
# back (the verification itself); says what is wrong otherwise.
fio_output_clean() {
	if [ "$2" -ne 0 ]; then
		echo "fio exited with $2"
		tail -n 40 "$1"
		return 1
	fi
	if grep -Eiq "$VERIFY_ERRORS" "$1"; then
		echo "fio reported verify errors:"
		grep -Ei "$VERIFY_ERRORS" "$1" | head -n 20
		return 1
	fi
	if grep -E 'err= *[0-9]+' "$1" | grep -Evq 'err= *0[^0-9]' || ! grep -Eq 'err= *0' "$1"; then
		echo "a job reported an error, or none reported:"
		grep -E 'err= *[0-9]+' "$1"
		tail -n 40 "$1"
		return 1
	fi
	if ! grep -Eq '^ +read: IOPS=' "$1"; then
		echo "fio read nothing back"
		tail -n 40 "$1"
		return 1
	fi
	return 0
}

# xattr FILE NAME: the raw value of an xattr.
xattr() {
	getfattr --only-values --absolute-names -n "$2" "$1"
}
