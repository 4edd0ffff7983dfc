#!/bin/bash
# run-bench.sh - libdmio against fio on the same two image files, same run.
#
# Three workloads, each compared with fio (libaio, O_DIRECT, same block size,
# depth and pattern) on the same files:
#   write     1 MiB sequential writes, each fanned out by one dm-io request to
#             both files, 16 requests in flight  <->  fio writing BOTH files at
#             once (two jobs in one group, iodepth=16 each); compared per
#             device byte: dmio's 2 x user bytes/s against fio's aggregate
#   read      1 MiB sequential reads of one file, depth 32
#   randread  4 KiB random reads of one file, depth 32 (IOPS)
# fio and dmio-bench alternate (fio first on odd repetitions, dmio first on
# even ones), REPS pairs per workload; the table shows medians and the ratio
# of the medians.  Absolute figures on shared machines are noise: the ratios
# are the result.
#
# CPU: both programs run under GNU time; CPU = user + system time of the
# whole process tree (fio's parent and job processes; dmio-bench's main and
# completion threads), divided by the GiB that reached the files.  The detail
# table adds fio's own job figure (usr_cpu + sys_cpu x job runtime) and
# dmio-bench's getrusage over the I/O window only.
#
# Usage: bench/run-bench.sh [--quick] [--size SIZE] [--runtime S] [--reps N]
#                           [--dir DIR] [--bench PATH] [--only WORKLOADS]
#                           [--log FILE] [--strict]
#   --quick       smoke test: 256M files, 2 s runs, 1 repetition
#   --size SIZE   size of each image file (default 2G; whole MiB)
#   --runtime S   seconds per run (default 10)
#   --reps N      fio/dmio pairs per workload (default 3)
#   --dir DIR     folder for the temporary image files (default /var/tmp;
#                 a tmpfs folder such as /dev/shm makes the runs CPU-bound)
#   --bench PATH  the dmio-bench program (or its libtool wrapper)
#   --only LIST   workloads to run, e.g. --only 'write read'
#   --log FILE    also write the header, raw dmio-bench lines and tables there
#   --strict      exit 3 when a target is missed
# Environment overrides: DIR, SIZE, RUNTIME, REPS, BENCH.
# The image files are removed at exit, also on INT and TERM.
# Run it from the build directory (it looks for ./bench/dmio-bench), or name
# the program with --bench / BENCH=.  Build optimised: CFLAGS='-O2 -g'.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
invocation="$0${*:+ $*}"
DIR=${DIR:-/var/tmp}
SIZE=${SIZE:-2G}
RUNTIME=${RUNTIME:-10}
REPS=${REPS:-3}
BENCH=${BENCH:-}
ONLY="write read randread"
LOG=""
STRICT=0

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) SIZE=256M RUNTIME=2 REPS=1 ;;
	--size) SIZE=$2; shift ;;
	--runtime) RUNTIME=$2; shift ;;
	--reps) REPS=$2; shift ;;
	--dir) DIR=$2; shift ;;
	--bench) BENCH=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--log) LOG=$2; shift ;;
	--strict) STRICT=1 ;;
	-h|--help) usage 0 ;;
	*) echo "run-bench.sh: unknown option $1" >&2; usage 2 >&2 ;;
	esac
	shift
done

die() { echo "run-bench.sh: $*" >&2; exit 1; }

# ---- tools --------------------------------------------------------------
command -v fio >/dev/null || die "fio not found (apt-get install fio)"
command -v python3 >/dev/null || die "python3 not found (used to parse fio's JSON)"
[ -x /usr/bin/time ] && /usr/bin/time -f %e true 2>/dev/null ||
	die "GNU time not found at /usr/bin/time (apt-get install time)"
command -v fallocate >/dev/null || die "fallocate not found (util-linux)"

if [ -z "$BENCH" ]; then
	for c in ./bench/dmio-bench "$here/dmio-bench"; do
		[ -x "$c" ] && { BENCH=$c; break; }
	done
fi
[ -n "$BENCH" ] && [ -x "$BENCH" ] ||
	die "dmio-bench not found: run from the build directory or pass --bench PATH"
# An uninstalled libtool wrapper is a shell script: run the real binary, so
# that the shell's own CPU time is not counted against libdmio.
bench_env=()
if head -c 200 "$BENCH" | grep -q 'wrapper script'; then
	bdir=$(cd "$(dirname "$BENCH")" && pwd)
	[ -x "$bdir/.libs/dmio-bench" ] || die "$BENCH is a libtool wrapper but $bdir/.libs/dmio-bench is missing"
	BENCH=$bdir/.libs/dmio-bench
	bench_env=(env "LD_LIBRARY_PATH=$bdir/../src/dmio/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
fi
fio_dir=$here/fio
for j in write-both read randread; do
	[ -r "$fio_dir/$j.fio" ] || die "missing fio job file $fio_dir/$j.fio"
done

# ---- image files ----------------------------------------------------------
[ -d "$DIR" ] || die "DIR=$DIR is not a folder"
WORK=$(mktemp -d "$DIR/dmio-bench.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
A=$WORK/a.img
B=$WORK/b.img
RES=$WORK/results.tsv
: >"$RES"

size_bytes=$(python3 -c '
import sys
s = sys.argv[1].strip().upper().rstrip("B").rstrip("I")
m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
print(int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s))' "$SIZE") || die "bad --size $SIZE"
[ $((size_bytes % (1 << 20))) -eq 0 ] || die "--size must be a whole number of MiB"

log() { echo "$*" >&2; [ -z "$LOG" ] || echo "$*" >>"$LOG"; }
[ -z "$LOG" ] || : >"$LOG"

fs_type=$(df -PT "$WORK" | awk 'NR == 2 { print $2 }')
fs_dev=$(df -PT "$WORK" | awk 'NR == 2 { print $1 }')
log "# dmio-bench vs fio, $(date -u '+%Y-%m-%d %H:%M UTC')"
log "# command: $invocation"
log "# settings: SIZE=$SIZE RUNTIME=$RUNTIME REPS=$REPS DIR=$DIR workloads: $ONLY"
log "# machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"\
" $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, kernel $(uname -r)"
log "# files: 2 x $SIZE in $WORK ($fs_type on $fs_dev); $(fio --version); dmio-bench $BENCH"

log "# preparing image files (fallocate, then written once with O_DIRECT)"
for f in "$A" "$B"; do
	fallocate -l "$size_bytes" "$f"
	dd if=/dev/zero of="$f" bs=1M count=$((size_bytes >> 20)) oflag=direct conv=notrunc,fsync status=none
done

# ---- runs -------------------------------------------------------------------
TIMEFMT='time_e=%e time_usr=%U time_sys=%S time_maxrss_kib=%M time_vcsw=%w time_ivcsw=%c'

# run_fio WORKLOAD REP
run_fio() {
	local wl=$1 rep=$2 job
	case $wl in
	write) job=write-both ;;
	*) job=$wl ;;
	esac
	FILE_A=$A FILE_B=$B RUNTIME=$RUNTIME /usr/bin/time -f "$TIMEFMT" -o "$WORK/time.out" \
		fio --output-format=json --output="$WORK/fio.json" "$fio_dir/$job.fio" ||
		die "fio failed on $wl (rep $rep)"
	python3 - "$wl" "$rep" "$WORK/fio.json" "$(cat "$WORK/time.out")" >>"$RES" <<'EOF'
import json, sys
wl, rep, path, timeline = sys.argv[1:5]
d = json.load(open(path))
t = dict(kv.split("=") for kv in timeline.split())
key = "write" if wl == "write" else "read"
jobs = d["jobs"]
if any(j.get("error") for j in jobs):
    sys.exit("fio reported an error")
secs = max(j["job_runtime"] for j in jobs) / 1000.0
dev_bytes = sum(j[key]["io_bytes"] for j in jobs)
ios = sum(j[key]["total_ios"] for j in jobs)
job_cpu = sum((j["usr_cpu"] + j["sys_cpu"]) / 100.0 * j["job_runtime"] / 1000.0 for j in jobs)
cpu = float(t["time_usr"]) + float(t["time_sys"])
gib = dev_bytes / 2**30
vcsw = int(t["time_vcsw"])
print("\t".join(str(x) for x in [
    wl, "fio", rep, dev_bytes / secs, ios / secs, cpu / gib, job_cpu / gib,
    t["time_maxrss_kib"], vcsw / ios, cpu * 1e6 / ios, secs, -1]))
EOF
	tail -n 1 "$RES" | awk -F'\t' -v r="$rep" '{ printf "  fio  %-8s rep %s: %9.1f MiB/s %9.0f IOPS  %.3f CPU s/GiB  rss %s KiB\n", $1, r, $4 / 1048576, $5, $6, $8 }' >&2
}

# run_dmio WORKLOAD REP
run_dmio() {
	local wl=$1 rep=$2 files out
	case $wl in
	write) files=(-f "$A" -f "$B") ;;
	*) files=(-f "$A") ;;
	esac
	"${bench_env[@]}" /usr/bin/time -f "$TIMEFMT" -o "$WORK/time.out" \
		"$BENCH" --mode "$wl" "${files[@]}" --runtime "$RUNTIME" >"$WORK/dmio.out" ||
		die "dmio-bench failed on $wl (rep $rep): $(cat "$WORK/dmio.out")"
	out=$(cat "$WORK/dmio.out")
	[ -z "$LOG" ] || echo "$out $(cat "$WORK/time.out")" >>"$LOG"
	python3 - "$wl" "$rep" "$out" "$(cat "$WORK/time.out")" >>"$RES" <<'EOF'
import sys
wl, rep, out, timeline = sys.argv[1:5]
r = dict(kv.split("=", 1) for kv in out.split()[1:])
t = dict(kv.split("=") for kv in timeline.split())
if r["errors"] != "0":
    sys.exit("dmio-bench reported errors")
secs = float(r["elapsed_s"])
dev_bytes = float(r["dev_bytes"])
ios = float(r["dev_iops"]) * secs
cpu = float(t["time_usr"]) + float(t["time_sys"])
gib = dev_bytes / 2**30
print("\t".join(str(x) for x in [
    wl, "dmio", rep, dev_bytes / secs, ios / secs, cpu / gib, float(r["cpu_s_per_dev_gib"]),
    t["time_maxrss_kib"], int(t["time_vcsw"]) / ios, cpu * 1e6 / ios, secs,
    int(r["maxrss_kib"]) - int(r["rss_before_kib"])]))
EOF
	tail -n 1 "$RES" | awk -F'\t' -v r="$rep" '{ printf "  dmio %-8s rep %s: %9.1f MiB/s %9.0f IOPS  %.3f CPU s/GiB  rss %s KiB\n", $1, r, $4 / 1048576, $5, $6, $8 }' >&2
}

for wl in $ONLY; do
	case $wl in write|read|randread) ;; *) die "unknown workload $wl" ;; esac
	log "# $wl: $REPS x (fio, dmio-bench), ${RUNTIME} s each"
	for rep in $(seq 1 "$REPS"); do
		if [ $((rep % 2)) -eq 1 ]; then
			run_fio "$wl" "$rep"; run_dmio "$wl" "$rep"
		else
			run_dmio "$wl" "$rep"; run_fio "$wl" "$rep"
		fi
	done
done

# ---- summary ------------------------------------------------------------------
summary=$(python3 - "$RES" "$STRICT" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
targets = {"write": 0.9, "read": 0.9, "randread": 0.8}
label = {"write": "write 1M x2 QD16", "read": "read 1M QD32", "randread": "randread 4k QD32"}
unit = {"write": "MiB/s/dev", "read": "MiB/s", "randread": "IOPS"}
med = lambda xs: statistics.median(xs)
out, missed = [], 0
hdr = ("| workload | unit | fio | dmio | ratio (per-rep range) | fio CPU s/GiB | dmio CPU s/GiB "
       "| fio max RSS | dmio max RSS |")
out += [hdr, "|" + "---|" * 9]
detail = ["", "| workload | fio job CPU s/GiB | dmio window CPU s/GiB | fio CPU us/IO | dmio CPU us/IO "
          "| fio vol. csw/IO | dmio vol. csw/IO | dmio RSS growth during I/O |", "|" + "---|" * 8]
verdicts = []
for wl in ["write", "read", "randread"]:
    f = [r for r in rows if r[0] == wl and r[1] == "fio"]
    d = [r for r in rows if r[0] == wl and r[1] == "dmio"]
    if not f or not d:
        continue
    col = 4 if wl == "randread" else 3
    scale = 1.0 if wl == "randread" else 1.0 / 2**20
    fv = med([float(r[col]) for r in f]) * scale
    dv = med([float(r[col]) for r in d]) * scale
    ratio = dv / fv
    pairs = sorted(float(b[col]) / float(a[col]) for a, b in zip(sorted(f, key=lambda r: int(r[2])), sorted(d, key=lambda r: int(r[2]))))
    m = lambda rs, i: med([float(r[i]) for r in rs])
    fmt = "%.0f" if wl == "randread" else "%.1f"
    out.append("| %s | %s | %s | %s | **%.3f** (%.3f-%.3f) | %.3f | %.3f | %.0f MiB | %.0f MiB |" % (
        label[wl], unit[wl], fmt % fv, fmt % dv, ratio, pairs[0], pairs[-1],
        m(f, 5), m(d, 5), m(f, 7) / 1024, m(d, 7) / 1024))
    detail.append("| %s | %.3f | %.3f | %.2f | %.2f | %.3f | %.3f | %d KiB |" % (
        label[wl], m(f, 6), m(d, 6), m(f, 9), m(d, 9), m(f, 8), m(d, 8), max(int(r[11]) for r in d)))
    ok = ratio >= targets[wl]
    missed += not ok
    verdicts.append("- %s: ratio %.3f, target >= %.1f: %s" % (label[wl], ratio, targets[wl],
                                                               "MET" if ok else "NOT MET"))
print("\n".join(out + detail + ["", "Targets:"] + verdicts))
print("__MISSED__=%d" % missed)
EOF
)
missed=$(echo "$summary" | sed -n 's/^__MISSED__=//p')
echo "$summary" | grep -v '^__MISSED__=' | tee -a ${LOG:-/dev/null}
log ""
log "CPU s/GiB: (user + system time of the whole process, from GNU time) / GiB written to or read"
log "from the files (device bytes: 2 per user byte in the fanned-out write).  Medians of $REPS."
if [ "$STRICT" = 1 ] && [ "$missed" != 0 ]; then
	exit 3
fi
exit 0
