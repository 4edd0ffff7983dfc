#!/bin/sh
# The fio jobs of bench/run (bench/fio/job-*.fio), run on a mounted
# two-device file system the way the benchmark runs them (1 job and 4,
# each job on its own region of one file laid down first), but short and
# with verify=crc32c: every block written carries a checksummed header
# that fio checks when it reads it back.  Not a timing test: it proves the
# fast paths the benchmark measures return the right bytes.  Last, the
# benchmark's metadata program (bench/metabench.c) checks what it made.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v fio >/dev/null || skip_all "no fio"
command -v cc >/dev/null || skip_all "no C compiler"
BENCH=$top_srcdir/bench
[ -f "$BENCH/fio/layout.fio" ] || skip_all "no bench/fio job files"

images 2 256M
REGION=$((4 * 1024 * 1024))

# job NAME NUMJOBS [fio options...]: the benchmark's job file NAME on the
# mount, each job on its own REGION, with verification (crc32c headers
# unless the options say otherwise).  fio checks a block read against the
# header of the write that made it, so a read job must read with the
# block size the file was written with.
job() {
	name=$1 numjobs=$2
	shift 2
	run_job "$BENCH/fio/$name.fio" "$name-$numjobs" "$numjobs" "$@"
}

# write_job NAME NUMJOBS [fio options...]: a write job writes its region
# once, not for a time (the job file with time_based=0), then reads it
# all back and checks every block.
write_job() {
	name=$1 numjobs=$2
	shift 2
	sed 's/^time_based=1$/time_based=0/' "$BENCH/fio/$name.fio" >"$T/$name.fio"
	RUNTIME=600 run_job "$T/$name.fio" "$name-$numjobs" "$numjobs" "$@"
}

run_job() {
	jobfile=$1 out="$T/$2.out" numjobs=$3
	shift 3
	(cd "$T" && FILE="$MNT/f" SIZE=$REGION RUNTIME=${RUNTIME:-1} NUMJOBS=$numjobs \
		fio --output="$out" --verify=crc32c --verify_fatal=1 "$@" "$jobfile") >"$out.stderr" 2>&1
	rc=$?
	cat "$out.stderr" >>"$out"
	fio_output_clean "$out" $rc
}

# Lay the whole file (4 regions) down in 1 MiB blocks with verification
# headers, as the benchmark lays it down before its read jobs.
lay_down() {
	out="$T/layout.out"
	(cd "$T" && FILE="$MNT/f" SIZE=$((4 * REGION)) fio --output="$out" --verify=crc32c "$BENCH/fio/layout.fio") \
		>"$out.stderr" 2>&1
	rc=$?
	cat "$out.stderr" >>"$out"
	fio_output_clean "$out" $rc
}

check "mkfs.dmiofs makes a two-device file system" fs_mkfs
check "dmiofs mounts it" fs_mount || done_testing
check "the benchmark's file is laid down and verified" lay_down
for n in 1 4; do
	check "seqread, $n job(s): every block verifies" job job-seqread $n
done
for n in 1 4; do
	check "seqwrite, $n job(s): written and verified" write_job job-seqwrite $n
done
# from here on the file holds 4 KiB blocks with headers
for n in 4 1; do
	check "randwrite, $n job(s): written and verified" write_job job-randwrite $n
done
for n in 1 4; do
	check "randread, $n job(s): every block verifies" job job-randread $n
done
# randrw reads blocks other jobs wrote, which fio's checks during a job
# that also writes refuse (another job's seed): its writes carry headers
# and a read-only pass over the whole file checks every block after it
check "randrw 70/30: written with verification headers" write_job job-randrw 1 --do_verify=0
printf '[all]\nfilename=${FILE}\nsize=%s\nrw=read\nbs=4k\ndirect=1\nioengine=libaio\niodepth=32\n' \
	$((4 * REGION)) >"$T/all.fio"
check "after randrw every 4 KiB block of the file verifies" run_job "$T/all.fio" all-4k 1
check "4 KiB writes each fdatasync'd: written and verified" write_job job-fsync 1 --size=1M
check "the file system is still healthy" sh -c "getfattr --only-values --absolute-names -n user.dmio.status '$MNT' | grep -qx 'status=healthy'"
check "the metadata benchmark builds" cc -O2 -pthread -o "$T/metabench" "$BENCH/metabench.c"
mkdir -p "$MNT/meta"
for n in 1 4; do
	# it stops at the first error: an O_EXCL create that finds a name, a
	# stat of the wrong size, a rename or unlink that fails
	check "metadata benchmark, $n thread(s): create, stat, rename, unlink" \
		"$T/metabench" -t "$n" -n 1000 -d 100 -s 100 "$MNT/meta"
done
check "the metadata benchmark left nothing behind" sh -c "[ -z \"\$(ls -A '$MNT/meta' 2>/dev/null)\" ]"
check "unmount is clean" fs_umount
done_testing
