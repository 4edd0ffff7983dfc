#!/bin/sh
# fs-bench.sh - fio on a mounted dmiofs against fio on the raw image files,
# in the same run: mirrored 1 MiB writes (against fio writing both images
# at once), 1 MiB reads and 4 KiB random reads (against fio reading one
# image), all O_DIRECT through libaio.  Prints ratios, the daemon's CPU
# seconds per GiB and its peak memory.
#
#   bench/fs-bench.sh [--size 2G] [--runtime 10] [--reps 3] [--dir /var/tmp]
#
# Run from a build directory (it uses ./src/fuse/dmiofs and
# ./src/tools/mkfs.dmiofs), or set BUILD=.
set -eu
SIZE=2G RUNTIME=10 REPS=3 DIR=/var/tmp
BUILD=${BUILD:-$(pwd)}
while [ $# -gt 0 ]; do
	case $1 in
	--size) SIZE=$2; shift 2 ;;
	--runtime) RUNTIME=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--quick) SIZE=512M RUNTIME=3 REPS=1; shift ;;
	*) echo "usage: $0 [--size S] [--runtime S] [--reps N] [--dir D] [--quick]" >&2; exit 2 ;;
	esac
done
MKFS=$BUILD/src/tools/mkfs.dmiofs
. "$(dirname "$0")/mount.sh"
bench_workdir "$DIR" dmiofs-fsbench

# fio JOB-ARGS... : prints "MiB/s IOPS"
fio_run() {
	fio --output-format=json --time_based --runtime="$RUNTIME" --ioengine=libaio --direct=1 \
		--group_reporting "$@" >"$W/fio.json"
	python3 - "$W/fio.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
bw = (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 2**20
iops = j["read"]["iops"] + j["write"]["iops"]
print(f"{bw:.1f} {iops:.0f}")
PY
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$PID/status"; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "# fs-bench: $SIZE images in $W ($(df -T "$W" | awk 'NR==2 {print $2}')), ${RUNTIME}s runs, $REPS reps, $(nproc) CPUs, kernel $(uname -r)"
truncate -s "$SIZE" "$W/a.img" "$W/b.img"
# Raw baselines need real blocks, as the file system will have.
fallocate -l "$SIZE" "$W/a.img"; fallocate -l "$SIZE" "$W/b.img"
bytes=$(stat -c %s "$W/a.img")
fsize=$((bytes / 2 / 1048576))M

run_pair() { # name, raw args, fs args, fs_files
	name=$1 rawargs=$2 fsargs=$3
	for r in $(seq 1 "$REPS"); do
		# shellcheck disable=SC2086
		raw=$(fio_run $rawargs | awk '{print '"$4"'}')
		"$MKFS" -q --force "$W/a.img" "$W/b.img" 2>/dev/null
		bench_mount
		# lay the file down once so reads and overwrites have blocks
		fio --name=prep --filename="$MNT/f" --size="$fsize" --rw=write --bs=1M --ioengine=libaio \
			--direct=1 --iodepth=16 >/dev/null
		t0=$(cpu_ticks)
		# shellcheck disable=SC2086
		fs=$(fio_run --filename="$MNT/f" --size="$fsize" $fsargs | awk '{print '"$4"'}')
		t1=$(cpu_ticks)
		rss=$(rss_kib)
		bench_umount
		echo "$name rep $r: raw $raw, dmiofs $fs, daemon $(((t1 - t0)))/100 CPU s, peak RSS ${rss} KiB" >&2
		echo "$raw $fs $((t1 - t0)) $rss" >>"$W/$name.txt"
	done
	rawm=$(awk '{print $1}' "$W/$name.txt" | median)
	fsm=$(awk '{print $2}' "$W/$name.txt" | median)
	cpu=$(awk '{print $3}' "$W/$name.txt" | median)
	rss=$(awk '{print $4}' "$W/$name.txt" | sort -n | tail -1)
	echo "$name $rawm $fsm $cpu $rss"
}

{
	run_pair write "--name=raw --filename=$W/a.img:$W/b.img --rw=write --bs=1M --iodepth=16 --numjobs=1 --size=$fsize" \
		"--name=fs --rw=write --bs=1M --iodepth=16" '$1'
	run_pair read "--name=raw --filename=$W/a.img --rw=read --bs=1M --iodepth=16 --size=$fsize" \
		"--name=fs --rw=read --bs=1M --iodepth=16" '$1'
	run_pair randread "--name=raw --filename=$W/a.img --rw=randread --bs=4k --iodepth=32 --size=$fsize" \
		"--name=fs --rw=randread --bs=4k --iodepth=32" '$2'
} >"$W/summary.txt"
echo "| workload | unit | raw fio | dmiofs | ratio | daemon CPU s/GiB | daemon peak RSS |"
echo "|---|---|---|---|---|---|---|"
while read -r name raw fs cpu rss; do
	unit="MiB/s"; [ "$name" = randread ] && unit=IOPS
	# a mirrored write puts every byte on both images: compare device bytes
	mult=1; [ "$name" = write ] && mult=2 && unit="MiB/s of device writes"
	gib=$(python3 -c "r=$fs*$RUNTIME; print(r/1024 if '$name'!='randread' else r*4/1048576)")
	python3 -c "print('| $name | $unit | $raw | %.1f | %.3f | %.3f | %d MiB |' % ($fs*$mult, $fs*$mult/$raw if $raw else 0, ($cpu/100)/$gib if $gib else 0, $rss//1024))"
done <"$W/summary.txt"
