#!/bin/bash
# bench/profile.sh - where the dmiofs daemon spends its time, as a flame graph.
#
#   bench/profile.sh [--job NAME] [--jobs N] [--seconds S] [--out DIR] [--keep]
#
# As root.  Makes two 1 GiB image files in a fresh folder under /var/tmp
# (fallocate'd, then written once with dd oflag=direct: no unwritten
# extents), mkfs.dmiofs --force, mounts them with dmiofs -f, lays a 400 MiB
# file down (bench/fio/layout.fio) and runs the benchmark's job
# bench/fio/job-NAME.fio on it (default randwrite) with N fio jobs (default
# 1; the output's names then end in -N).  In the middle of
# the job, perf record samples the daemon (all its threads) for S seconds
# (default 3) at 999 Hz with DWARF call graphs; then bench/flamegraph.py
# turns `perf script` into, in DIR:
#
#   NAME.svg       the flame graph (open it in a browser; hover for counts)
#   NAME-top.md    the 25 functions with the most self and total samples,
#                  and fio's result lines
#   NAME.folded    the folded stacks (flamegraph.pl reads them too)
#   NAME-fio.txt   fio's whole output
#   perf.data      only with --keep (DWARF call graphs make it large)
#
# DIR defaults to a new folder /var/tmp/dmiofs-prof-DATE.XXXX.  Binaries as
# bench/run finds them: $BUILD (a build directory) if set, else ./src/fuse
# and ./src/tools of the current directory, else build/ at the top of the
# source tree, else PATH.  Symbols need a build with -g (the default
# CFLAGS, -O2 -g, will do).  Needs perf (linux-perf), fio, fusermount3
# (fuse3) and /usr/bin/python3.  Everything is unmounted and removed on
# exit, failure or Ctrl-C.
set -euo pipefail
# shellcheck disable=SC2317 # cleanup is only called by the trap
{

ME=bench/profile.sh
BENCH=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$BENCH/.." && pwd)
PY=/usr/bin/python3
MiB=1048576
IMG_SIZE=$((1024 * MiB)) FSIZE=$((400 * MiB)) NUMJOBS=1

say() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() { say "$*"; exit 1; }
usage() { echo "usage: $ME [--job NAME] [--jobs N] [--seconds S] [--out DIR] [--keep]"; }

JOB=randwrite SECS=3 OUT="" KEEP=0
while [ $# -gt 0 ]; do
	case $1 in
	--keep) KEEP=1; shift; continue ;;
	-h | --help) usage; echo "(the comment at the top of $0 says more)"; exit 0 ;;
	--job=* | --jobs=* | --seconds=* | --out=*) opt=${1%%=*} val=${1#*=}; shift ;;
	--job | --jobs | --seconds | --out)
		[ $# -ge 2 ] || { usage >&2; exit 2; }
		opt=$1 val=$2; shift 2 ;;
	*) say "unknown argument '$1'"; usage >&2; exit 2 ;;
	esac
	case $opt in
	--job) JOB=$val ;;
	--jobs) NUMJOBS=$val ;;
	--seconds) SECS=$val ;;
	--out) OUT=$val ;;
	esac
done
case $SECS in '' | *[!0-9]* | 0) die "--seconds: want whole seconds, not '$SECS'" ;; esac
case $NUMJOBS in [1-9] | 1[0-6]) ;; *) die "--jobs: want 1 to 16 fio jobs, not '$NUMJOBS'" ;; esac
JOBFILE=$BENCH/fio/job-$JOB.fio
NAME=$JOB
[ "$NUMJOBS" = 1 ] || NAME=$JOB-$NUMJOBS
if [ ! -r "$JOBFILE" ]; then
	jobs=""
	for f in "$BENCH"/fio/job-*.fio; do f=${f##*/job-}; jobs="$jobs ${f%.fio}"; done
	die "--job: no $JOBFILE; the jobs are:$jobs"
fi
# fio runs PAD seconds before perf starts and PAD after it stops, so that
# the profile sees the job in its stride, not starting or ending.
PAD=2
RUNTIME=$((PAD + SECS + PAD))

# ---- prerequisites -------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run me as root (I mount a file system and profile its daemon)"
missing=""
for p in perf:linux-perf fio:fio fusermount3:fuse3 fallocate:util-linux; do
	command -v "${p%%:*}" >/dev/null 2>&1 || missing="$missing ${p#*:}"
done
[ -x "$PY" ] || missing="$missing python3"
[ -z "$missing" ] || die "missing:$missing; install with: apt-get install$missing"
[ -c /dev/fuse ] || die "/dev/fuse is missing (modprobe fuse)"

# ---- which dmiofs (as bench/run) ---------------------------------------------------
if [ -n "${BUILD:-}" ]; then
	DMIOFS=$BUILD/src/fuse/dmiofs MKFS=$BUILD/src/tools/mkfs.dmiofs FROM="BUILD=$BUILD"
elif [ -x src/fuse/dmiofs ] && [ -x src/tools/mkfs.dmiofs ]; then
	DMIOFS=$PWD/src/fuse/dmiofs MKFS=$PWD/src/tools/mkfs.dmiofs FROM="the current directory"
elif [ -x "$TOP/build/src/fuse/dmiofs" ] && [ -x "$TOP/build/src/tools/mkfs.dmiofs" ]; then
	DMIOFS=$TOP/build/src/fuse/dmiofs MKFS=$TOP/build/src/tools/mkfs.dmiofs FROM="$TOP/build"
elif command -v dmiofs >/dev/null && command -v mkfs.dmiofs >/dev/null; then
	DMIOFS=$(command -v dmiofs) MKFS=$(command -v mkfs.dmiofs) FROM="PATH (installed)"
else
	die "no dmiofs found: set BUILD to a build directory, run me from one, build in $TOP/build (scripts/quickstart.sh) or install it"
fi
for b in "$DMIOFS" "$MKFS"; do [ -x "$b" ] || die "$b: not found or not executable ($FROM)"; done
say "dmiofs from $FROM: $DMIOFS"

# ---- work and output folders, clean-up ---------------------------------------------
avail=$(df -B1 --output=avail /var/tmp | tail -1 | tr -d ' ')
[ "$avail" -ge $((2 * IMG_SIZE + 512 * MiB)) ] ||
	die "/var/tmp has $((avail / MiB)) MiB free; the two images need $((2 * IMG_SIZE / MiB + 512)) MiB"
if [ -z "$OUT" ]; then
	OUT=$(mktemp -d "/var/tmp/dmiofs-prof-$(date +%Y%m%d-%H%M).XXXX")
else
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)
fi
PERFDATA=$OUT/perf.data

W="" MNT="" DPID="" FIOPID="" PERFPID=""

is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }

cleanup() {
	local rc=$? p i
	set +e
	trap '' INT TERM
	for p in $PERFPID $FIOPID; do kill "$p" 2>/dev/null; done
	for p in $PERFPID $FIOPID; do wait "$p" 2>/dev/null; done
	if [ -n "$MNT" ] && is_mounted "$MNT"; then
		for i in 1 2 3 4 5; do
			fusermount3 -u "$MNT" 2>/dev/null && break
			sleep 1
		done
		is_mounted "$MNT" && fusermount3 -uz "$MNT" 2>/dev/null
	fi
	if [ -n "$DPID" ]; then
		# The daemon ends once unmounted; give it 60 s, then TERM it.
		for ((i = 0; i < 600; i++)); do
			kill -0 "$DPID" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$DPID" 2>/dev/null && kill -TERM "$DPID"
		wait "$DPID" 2>/dev/null
	fi
	if [ -n "$W" ] && [ -d "$W" ]; then
		[ -s "$W/dmiofs.err" ] && cp "$W/dmiofs.err" "$OUT/dmiofs.err"
		if awk -v w="$W/" 'index($2, w) == 1 { f = 1 } END { exit !f }' /proc/mounts; then
			say "something is still mounted under $W; not removing it"
		else
			rm -rf --one-file-system "$W"
		fi
	fi
	[ "$KEEP" = 1 ] || rm -f "$PERFDATA" "$PERFDATA.old"
	case $rc in
	0) ;;
	130 | 143) say "interrupted; partial results in $OUT" ;;
	*) say "failed (status $rc); partial results in $OUT" ;;
	esac
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
W=$(mktemp -d /var/tmp/dmiofs-profrun.XXXXXX)
MNT=$W/mnt
mkdir "$MNT"

# ---- images, file system, mount -------------------------------------------------------
for img in A B; do
	fallocate -l "$IMG_SIZE" "$W/$img.img"
	dd if=/dev/zero of="$W/$img.img" bs=4M count=$((IMG_SIZE / (4 * MiB))) oflag=direct conv=notrunc status=none
done
"$MKFS" -q --force "$W/A.img" "$W/B.img" >"$W/mkfs.out" 2>&1 ||
	{ cat "$W/mkfs.out" >&2; die "mkfs.dmiofs failed"; }
"$DMIOFS" -f "$W/A.img:$W/B.img" "$MNT" 2>"$W/dmiofs.err" &
DPID=$!
for ((i = 0; ; i++)); do
	is_mounted "$MNT" && break
	if ! kill -0 "$DPID" 2>/dev/null || [ "$i" -ge 600 ]; then
		cat "$W/dmiofs.err" >&2
		die "dmiofs did not mount on $MNT"
	fi
	sleep 0.05
done
say "mounted $MNT (dmiofs pid $DPID); laying down a $((FSIZE / MiB)) MiB file"
FILE=$MNT/f SIZE=$FSIZE fio --output="$W/layout.out" "$BENCH/fio/layout.fio" </dev/null ||
	{ cat "$W/layout.out" >&2; die "laying down $MNT/f failed"; }
sync "$MNT"

# ---- the job, and perf in the middle of it ---------------------------------------------
say "job-$JOB.fio for ${RUNTIME}s; perf records the daemon from ${PAD}s to $((PAD + SECS))s"
FILE=$MNT/f SIZE=$((FSIZE / NUMJOBS)) RUNTIME=$RUNTIME NUMJOBS=$NUMJOBS \
	fio --output="$OUT/$NAME-fio.txt" "$JOBFILE" </dev/null &
FIOPID=$!
sleep "$PAD"
kill -0 "$FIOPID" 2>/dev/null || { cat "$OUT/$NAME-fio.txt" >&2; die "fio ended early"; }
cpu_ticks() { sed 's/.*) //' "/proc/$DPID/stat" | awk '{print $12 + $13}'; }
t0=$(cpu_ticks)
perf record -q -F 999 --call-graph dwarf,16384 -p "$DPID" -o "$PERFDATA" -- sleep "$SECS" \
	</dev/null >"$W/perf-record.out" 2>&1 &
PERFPID=$!
wait "$PERFPID" || { cat "$W/perf-record.out" >&2; die "perf record failed"; }
PERFPID=""
t1=$(cpu_ticks)
wait "$FIOPID" || { cat "$OUT/$NAME-fio.txt" >&2; die "fio job-$JOB.fio failed"; }
FIOPID=""
grep -v '^\[ perf record' "$W/perf-record.out" >&2 || true
sync "$MNT"

# ---- the flame graph ----------------------------------------------------------------------
say "perf script and the flame graph (DWARF unwinding takes a while)"
perf script -i "$PERFDATA" >"$W/perf.txt" 2>"$W/perf-script.err" ||
	{ cat "$W/perf-script.err" >&2; die "perf script failed"; }
result=$(grep -E '^ *(read|write|trim): *IOPS=' "$OUT/$NAME-fio.txt" | sed 's/^ *//') || true
brief=$(awk '{ sub(/ *\(.*/, ""); printf "%s%s", (NR > 1 ? "; " : ""), $0 }' <<<"$result")
title="dmiofs, job-$JOB.fio, $NUMJOBS job(s): ${brief:-?} (perf ${SECS}s at 999 Hz)"
"$PY" "$BENCH/flamegraph.py" --title "$title" --top 25 "$W/perf.txt" >"$OUT/$NAME.svg" 2>"$W/top.md"
"$PY" "$BENCH/flamegraph.py" --folded "$W/perf.txt" >"$OUT/$NAME.folded"
{
	echo "# dmiofs: job-$JOB.fio"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs; dmiofs from $FROM."
	echo "fio: $NUMJOBS job(s) on a $((FSIZE / MiB)) MiB file for ${RUNTIME}s; perf record -F 999"
	echo "--call-graph dwarf,16384 of the daemon for the middle ${SECS}s, in which it used"
	awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v s="$SECS" \
		'BEGIN { printf "%.2f CPU seconds (%.0f %% of one CPU; about %d samples at 999 Hz).\n", t / hz, 100 * t / hz / s, 999 * t / hz }'
	echo
	echo '```'
	echo "${result:-(no result line; see $NAME-fio.txt)}"
	echo '```'
	echo
	cat "$W/top.md"
} >"$OUT/$NAME-top.md"
cat "$OUT/$NAME-top.md"
echo
say "flame graph: $OUT/$NAME.svg"
say "top functions: $OUT/$NAME-top.md; folded stacks: $OUT/$NAME.folded; fio: $OUT/$NAME-fio.txt"
[ "$KEEP" = 1 ] && say "perf data: $PERFDATA"
exit 0
}
