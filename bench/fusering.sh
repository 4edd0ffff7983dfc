#!/bin/bash
# bench/fusering.sh - the FUSE transport's ceiling on this machine:
# /dev/fuse against FUSE over io_uring, with no storage behind either.
#
#   bench/fusering.sh [--rounds N] [--jobs "1 4"] [--seconds S]
#
# As root.  Builds bench/fusering.c (cc, Debian's liburing-dev), then for
# each round and each number of fio jobs mounts it in each mode in turn
# and runs fio's 4 KiB random reads at QD32 per job (libaio, O_DIRECT) on
# its 1 GiB file of zeros for S seconds (default 6), printing IOPS.  Since
# nothing is stored, the figures are what the transport alone allows: the
# most a FUSE file system could serve here, whatever it does behind.
#
# FUSE over io_uring needs Linux 6.14 or later and the fuse module's
# enable_uring parameter; if it is off, it is turned on for the run and
# off again at the end (this says so).  The mount point is a fresh folder
# under /var/tmp; everything is unmounted and removed on exit.
set -euo pipefail
{

ME=bench/fusering.sh
BENCH=$(cd "$(dirname "$0")" && pwd)
PARAM=/sys/module/fuse/parameters/enable_uring
say() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() { say "$*"; exit 1; }
usage() { echo "usage: $ME [--rounds N] [--jobs \"1 4\"] [--seconds S]"; }

ROUNDS=2 JOBS="1 4" SECS=6
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--jobs) JOBS=${2:?}; shift 2 ;;
	--seconds) SECS=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) say "unknown argument '$1'"; usage >&2; exit 2 ;;
	esac
done
case $ROUNDS$SECS in *[!0-9]* | '') die "--rounds and --seconds want whole numbers" ;; esac

[ "$(id -u)" = 0 ] || die "run me as root (I mount a file system)"
missing=""
for p in cc:gcc fio:fio python3:python3; do
	command -v "${p%%:*}" >/dev/null 2>&1 || missing="$missing ${p#*:}"
done
[ -r /usr/include/liburing.h ] || missing="$missing liburing-dev"
[ -z "$missing" ] || die "missing:$missing; install with: apt-get install$missing"
[ -w "$PARAM" ] || die "$PARAM is missing: this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)"

W=$(mktemp -d /var/tmp/dmiofs-fusering.XXXXXX)
MNT=$W/mnt WAS=$(cat "$PARAM")
mkdir "$MNT"
cleanup() {
	set +e
	if awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
		umount "$MNT" || umount -l "$MNT"
	fi
	if [ "$WAS" != "$(cat "$PARAM")" ]; then
		echo "$WAS" >"$PARAM" && say "enable_uring is $WAS again"
	fi
	rm -rf --one-file-system "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cc -O2 -Wall -pthread -o "$W/fusering" "$BENCH/fusering.c" -luring || die "cannot build $BENCH/fusering.c"
if [ "$WAS" != Y ]; then
	echo Y >"$PARAM"
	say "enable_uring was $WAS: Y for this run"
fi

# one MODE JOBS: mount, fio, unmount; prints the IOPS.  It runs in a
# command substitution: on a failure the main shell's clean-up unmounts,
# and the server ends with its mount.
one() {
	local server i
	"$W/fusering" "$MNT" "$1" 2>"$W/server.err" &
	server=$!
	for ((i = 0; i < 200; i++)); do
		awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts && break
		kill -0 "$server" 2>/dev/null || { cat "$W/server.err" >&2; die "fusering $1 did not mount"; }
		sleep 0.05
	done
	fio --name=r --filename="$MNT/f" --size=1g --rw=randread --bs=4k --direct=1 --ioengine=libaio \
		--iodepth=32 --numjobs="$2" --group_reporting --time_based --runtime="$SECS" --norandommap \
		--output-format=json >"$W/fio.json" || die "fio failed on fusering $1"
	umount "$MNT"
	wait "$server" || { cat "$W/server.err" >&2; die "fusering $1 failed"; }
	python3 -c "import json, sys; print('%.0f' % json.load(open(sys.argv[1]))['jobs'][0]['read']['iops'])" "$W/fio.json"
}

echo "# FUSE transport alone: 4 KiB random reads, QD32 per job, ${SECS}s ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs)"
echo
echo "| round | jobs | /dev/fuse, one thread, IOPS | io_uring, a ring per CPU, IOPS | io_uring / dev |"
echo "|---|---|---|---|---|"
for ((r = 1; r <= ROUNDS; r++)); do
	for j in $JOBS; do
		dev=$(one dev "$j")
		ring=$(one uring "$j")
		echo "| $r | $j | $dev | $ring | $(python3 -c "print('%.2f' % ($ring / $dev))") |"
	done
done
exit 0
}
