#!/bin/sh
# nbd.sh - a mirror with one leg on an NBD server, against its legs alone,
# in one run: a local image and an nbdkit export (file plugin over a second
# image, on a unix socket).
#
#   legs alone: fio on the local image (libaio, O_DIRECT), and fio's own nbd
#     engine on the export;
#   the mirror: dmiofs on the local image and the export, fio on a file;
#   for scale, the same on a mirror of two local images (what the export
#     costs over a local second leg).
#
# Jobs: 1 MiB sequential writes and reads, queue depth 16 (libaio) or 16
# requests in flight (nbd).  Figures: MB/s, the mirror's writes against the
# slower leg alone (target: 0.8), its reads against the local image alone
# (target: 0.9), and the daemon's CPU seconds per GiB and peak RSS.
#
# --link-rate BITS puts nbdkit's rate filter in front of the export (rate=BITS
# for the server as a whole, reads and writes together: 1G is a 1 Gbit/s
# link), for the mirror of a network that is slower than this machine's
# own write path; the export's figures alone are then the link's.
#
# Usage: bench/nbd.sh [--size MiB] [--runtime S] [--link-rate BITS]
# (BUILD=build dir, default the source tree; TMPDIR decides where the
# images live)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top}
SIZE=1024
RUNTIME=15
LINK_RATE=""
while [ $# -gt 0 ]; do
	case $1 in
	--size) SIZE=$2; shift 2 ;;
	--runtime) RUNTIME=$2; shift 2 ;;
	--link-rate) LINK_RATE=$2; shift 2 ;;
	*) echo "usage: $0 [--size MiB] [--runtime S] [--link-rate BITS]" >&2; exit 2 ;;
	esac
done
for tool in fio nbdkit; do
	command -v "$tool" >/dev/null || { echo "nbd.sh: $tool is needed (scripts/install-deps.sh)" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/var/tmp}/dmiofs-nbd-bench.XXXXXX")
MNT=$W/mnt
PID=""
SERVER=""
cleanup() {
	if [ -n "$PID" ]; then fusermount3 -u "$MNT" 2>/dev/null; wait "$PID" 2>/dev/null || true; fi
	[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
mkdir -p "$MNT"
SOCK=$W/r.sock
URI="nbd+unix:///?socket=$SOCK"

serve() {
	rm -f "$W/r.pid"
	if [ -n "$LINK_RATE" ]; then
		set -- --filter=rate file "$W/remote.img" rate="$LINK_RATE"
	else
		set -- file "$W/remote.img"
	fi
	nbdkit -f -U "$SOCK" -P "$W/r.pid" "$@" 2>>"$W/nbdkit.err" &
	SERVER=$!
	while [ ! -s "$W/r.pid" ]; do
		kill -0 "$SERVER" 2>/dev/null || { cat "$W/nbdkit.err" >&2; exit 1; }
		sleep 0.05
	done
}

stop_server() {
	kill "$SERVER"
	wait "$SERVER" 2>/dev/null || true
	SERVER=""
}

# fio_mbs NAME RW [fio options...]: the job's bandwidth in MB/s.
fio_mbs() {
	name=$1 rw=$2
	shift 2
	fio --name="$name" --rw="$rw" --bs=1M --iodepth=16 --size="${SIZE}M" --runtime="$RUNTIME" --time_based \
		--group_reporting --output-format=json --output="$W/$name.json" "$@" >/dev/null
	python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))['jobs'][0]
print('%.0f' % ((j['read']['bw_bytes'] + j['write']['bw_bytes']) / 1e6))" "$W/$name.json"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

truncate -s $((SIZE + 256))M "$W/local.img" "$W/remote.img" "$W/local2.img"
# The images allocated, so no leg pays for allocating its blocks.
for img in local remote local2; do
	fallocate -l $((SIZE + 256))M "$W/$img.img"
done

# mount_mirror SOURCES: dmiofs in the foreground on a new file system.
mount_mirror() {
	"$BUILD/src/tools/mkfs.dmiofs" -q --force "$1" 2>/dev/null
	"$BUILD/src/fuse/dmiofs" -f "$1" "$MNT" 2>>"$W/daemon.err" &
	PID=$!
	while ! grep -q " $MNT fuse" /proc/mounts; do
		kill -0 "$PID" 2>/dev/null || { PID=""; cat "$W/daemon.err" >&2; exit 1; }
		sleep 0.05
	done
}

umount_mirror() {
	fusermount3 -u "$MNT"
	wait "$PID" || true
	PID=""
}

local_w=$(fio_mbs local-write write --filename="$W/local.img" --ioengine=libaio --direct=1)
local_r=$(fio_mbs local-read read --filename="$W/local.img" --ioengine=libaio --direct=1)
serve
nbd_w=$(fio_mbs nbd-write write --ioengine=nbd --uri="$URI")
nbd_r=$(fio_mbs nbd-read read --ioengine=nbd --uri="$URI")

mount_mirror "$W/local.img:$W/local2.img"
pair_w=$(fio_mbs pair-write write --filename="$MNT/f" --ioengine=libaio --direct=1)
pair_r=$(fio_mbs pair-read read --filename="$MNT/f" --ioengine=libaio --direct=1)
umount_mirror

mount_mirror "$W/local.img:$URI"
t0=$(cpu_ticks "$PID")
mirror_w=$(fio_mbs mirror-write write --filename="$MNT/f" --ioengine=libaio --direct=1)
t1=$(cpu_ticks "$PID")
mirror_r=$(fio_mbs mirror-read read --filename="$MNT/f" --ioengine=libaio --direct=1)
t2=$(cpu_ticks "$PID")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
wbytes=$(python3 -c "import json; print(json.load(open('$W/mirror-write.json'))['jobs'][0]['write']['io_bytes'])")
rbytes=$(python3 -c "import json; print(json.load(open('$W/mirror-read.json'))['jobs'][0]['read']['io_bytes'])")
hz=$(getconf CLK_TCK)

slower=$local_w
[ "$nbd_w" -lt "$slower" ] && slower=$nbd_w
python3 - "$local_w" "$local_r" "$nbd_w" "$nbd_r" "$mirror_w" "$mirror_r" "$slower" \
	"$((t1 - t0))" "$((t2 - t1))" "$hz" "$wbytes" "$rbytes" "$rss" "$pair_w" "$pair_r" "$LINK_RATE" <<'PY'
import sys
lw, lr, nw, nr, mw, mr, slower, tw, tr, hz, wb, rb, rss, pw, pr = map(int, sys.argv[1:16])
gib = 1 << 30
link = ", link %s bit/s" % sys.argv[16] if sys.argv[16] else ""
print("| job, 1 MiB, qd16 | local image | NBD export (fio nbd%s) | dmiofs: local + export | ratio | dmiofs: two local images |" % link)
print("|---|---:|---:|---:|---|---:|")
print("| sequential write, MB/s | %d | %d | %d | %.2f of the slower leg (target 0.8) | %d |" % (lw, nw, mw, mw / slower, pw))
print("| sequential read, MB/s | %d | %d | %d | %.2f of the local image (target 0.9) | %d |" % (lr, nr, mr, mr / lr, pr))
print()
print("daemon CPU: %.2f s/GiB written, %.2f s/GiB read; peak RSS %d MiB"
      % (tw / hz / (wb / gib), tr / hz / (rb / gib), rss // 1024))
PY
