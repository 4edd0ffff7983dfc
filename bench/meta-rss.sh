#!/bin/sh
# meta-rss.sh - the daemon's memory with many small files: mkfs two
# sparse images, mount, create N files of SIZE bytes (1000 per directory)
# with mkfiles, then remount and read the daemon's resident memory once the
# metadata is loaded from the checkpoint.  Prints bytes per file.
#
#   bench/meta-rss.sh [N] [SIZE]     (default 1000000 files of 100 bytes)
#
# Run from a build directory (./src/fuse/dmiofs, ./src/tools/mkfs.dmiofs).
set -eu
N=${1:-1000000}
SIZE=${2:-100}
BUILD=${BUILD:-$(pwd)}
. "$(dirname "$0")/mount.sh"
bench_workdir "${DIR:-/var/tmp}" dmiofs-rss
cc -O2 -o "$W/mkfiles" "$(dirname "$0")/mkfiles.c"
truncate -s 32G "$W/a.img" "$W/b.img"
"$BUILD/src/tools/mkfs.dmiofs" -q "$W/a.img" "$W/b.img"

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

bench_mount
empty=$(rss_kib)
start=$(date +%s)
"$W/mkfiles" "$MNT" "$N" "$SIZE"
secs=$(($(date +%s) - start))
busy=$(rss_kib)
bench_umount
bench_mount
sleep 2
loaded=$(rss_kib)
status=$(getfattr --only-values --absolute-names -n user.dmio.status "$MNT" | grep -E '^(files|metadata_used)=' | tr '\n' ' ')
bench_umount
echo "files: $N of $SIZE bytes in $((N / 1000 + 1)) directories, created in ${secs}s ($((N / (secs > 0 ? secs : 1))) files/s)"
echo "daemon RSS: empty mount $empty KiB; after creating $busy KiB; after a remount $loaded KiB"
echo "status: $status"
echo "per file after the remount: $(((loaded - empty) * 1024 / N)) bytes (RSS growth over an empty mount / files)"
