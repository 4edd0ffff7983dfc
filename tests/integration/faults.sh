#!/bin/sh
# Fault drills under load: fio jobs write and verify (crc32c, a seeded
# random pattern) on a two-device mount while dmiofs-ctl inject adds
# faults on device 1, one a phase: read errors (every other read), then
# corrupted reads, then reads and writes delayed 50 ms, then write errors
# (last: the device fails, and the file system goes on degraded).  fio
# must see no error at all.  Then: every phase's data verifies again; the
# counters (dmiofs-ctl errors --json) show read, checksum and write errors
# on device 1 and none on device 0; user.dmio.status and user.dmio.devices
# say what status --json says; inject --list lists the four faults, each
# hit, and --clear empties it.  A caller who is not root is refused the
# drills ("root only") but may read the status of a mount others may
# read.  Last, device 1 comes back at the next mount, is caught up, and
# alone holds every phase's data.
#
# FAULTS_SEED (default 2026, so that CI repeats the same run) may be set.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v fio >/dev/null || skip_all "no fio"
command -v python3 >/dev/null || skip_all "no python3"
command -v getfattr >/dev/null || skip_all "no getfattr (Debian package attr)"

PY="$top_srcdir/tests/integration/failday.py"
SEED=${FAULTS_SEED:-2026}
export CTL
diag "FAULTS_SEED=$SEED"

# What fio prints when a block does not hold what was written there.

# fio_phase NAME SEED [fio options...]: a phase's jobs on the mount, run
# in $T: 16 MiB of O_DIRECT random 64 KiB writes 16 at a time (libaio),
# 8 MiB of buffered ones, each block then read back and checked; the
# options come first (--verify_only, --startdelay).
fio_phase() {
	name=$1 seed=$2
	shift 2
	(cd "$T" && exec fio --directory="$MNT" --output="$T/fio-$name.out" "$@" \
		--ioengine=psync --rw=randwrite --bs=64k --randrepeat=1 --randseed="$seed" \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 \
		--name="$name-direct" --direct=1 --ioengine=libaio --iodepth=16 --size=16M \
		--name="$name-buffered" --size=8M) >"$T/fio-$name.stderr" 2>&1
}

# fio_clean NAME RC: fio exited 0, every job reports err=0, nothing was
# read back wrong, and something was read back.
fio_clean() {
	out="$T/fio-$1.out"
	cat "$T/fio-$1.stderr" >>"$out"
	fio_output_clean "$out" "$2"
}

# laid_out NAME: fio has made the phase's two files (10 s at most).
laid_out() {
	for _ in $(seq 1 200); do
		[ -s "$MNT/$1-direct.0.0" ] && [ -s "$MNT/$1-buffered.0.0" ] && return 0
		sleep 0.05
	done
	echo "fio did not lay out $1's files in 10 s"
	return 1
}

# injected KIND: dmiofs-ctl inject --list --json says KIND (on device 1)
# was hit.
injected() {
	"$CTL" inject "$MNT" --list --json >"$T/faults.json" || return 1
	grep -Eq "\"fault\":\"$1[^\"]*\",\"hits\":[1-9]" "$T/faults.json" && return 0
	echo "no hit of $1:"
	cat "$T/faults.json"
	return 1
}

fp() { python3 "$PY" "$@"; }

# checkv DESCRIPTION COMMAND...: as check, and the command's comment
# lines (what it found) are shown whatever the outcome.
checkv() {
	check "$@"
	grep '^# ' "$T/check.out"
}

images 2 256M
check "mkfs.dmiofs makes a two-device file system" fs_mkfs
must "it mounts (-o allow_other, for the caller who is not root)" fs_mount -o allow_other

phase=0
for fault in "read-error --every 2" corrupt delay=50 write-error; do
	phase=$((phase + 1))
	name="p$phase"
	kind=${fault%% *}
	# The jobs wait a second after laying out their files: the fault
	# is there for every write and read they make.
	fio_phase "$name" $((SEED + phase)) --startdelay=1 &
	fpid=$!
	check "phase $phase: fio lays out its files" laid_out "$name"
	# shellcheck disable=SC2086 # the fault's words are arguments
	check "phase $phase: dmiofs-ctl inject MNT 1 $fault" "$CTL" inject "$MNT" 1 $fault
	wait "$fpid"
	rc=$?
	check "phase $phase ($fault): fio wrote, read back and verified, no error" fio_clean "$name" "$rc"
	check "phase $phase: the $kind fault was hit" injected "$kind"
	"$CTL" errors --json "$MNT" >"$T/errors.json"
	case $kind in
	read-error) check "phase $phase: device 1 counted read errors, device 0 none" fp errors "$T/errors.json" 1 read ;;
	corrupt) check "phase $phase: device 1 counted checksum errors, device 0 none" fp errors "$T/errors.json" 1 checksum ;;
	write-error) check "phase $phase: device 1 counted write errors, device 0 none" fp errors "$T/errors.json" 1 write ;;
	esac
done
check "device 1 failed on the write error" fp wait "$MNT" 10 "$T/wait.json" failed 1
"$CTL" status "$MNT" >"$T/status" 2>&1
ok "$([ $? -eq 2 ]; echo $?)" "dmiofs-ctl status exits 2: degraded"

phase=0
for fault in 1 2 3 4; do
	phase=$((phase + 1))
	fio_phase "p$phase" $((SEED + phase)) --verify_only
	check "phase $phase's data verifies again (--verify_only)" fio_clean "p$phase" $?
done

"$CTL" errors --json "$MNT" >"$T/errors.json"
checkv "dmiofs-ctl errors --json: read, checksum and write errors on device 1, none on device 0" \
	fp errors "$T/errors.json" 1 read checksum write
check "user.dmio.status and user.dmio.devices say what status --json says" fp agree "$MNT"
"$CTL" inject "$MNT" --list --json >"$T/faults.json"
checkv "inject --list: the four faults on device 1, each hit" \
	fp faults "$T/faults.json" 1 read-error corrupt delay=50 write-error
check "inject --list (text) names them too" sh -c "
	'$CTL' inject '$MNT' --list >'$T/faults.txt' && [ \$(grep -c '^device 1 (.*d1.img): .*, [1-9][0-9]* hit(s)\$' '$T/faults.txt') -eq 4 ] ||
	{ cat '$T/faults.txt'; exit 1; }"
check "inject --clear" "$CTL" inject "$MNT" --clear
check "inject --list is empty" sh -c "
	'$CTL' inject '$MNT' --list --json | grep -qx '{\"faults\":\[\]}' && '$CTL' inject '$MNT' --list | grep -qx 'no fault injected'"

# way_for_others open|close: every folder on the way to the mount point
# lets others through (search permission), as the caller who is not root
# needs; close puts back the modes that were changed.
way_for_others() {
	if [ "$1" = open ]; then
		: >"$T/way"
		d=$(dirname "$MNT")
		while [ "$d" != / ]; do
			m=$(stat -c %a "$d")
			if [ $((0$m & 1)) -eq 0 ]; then
				echo "$m $d" >>"$T/way"
				chmod o+x "$d"
			fi
			d=$(dirname "$d")
		done
	else
		while read -r m d; do chmod "$m" "$d"; done <"$T/way"
	fi
}

# nobody_gets RC DESCRIPTION ARGS...: dmiofs-ctl ARGS run as nobody
# exits RC, a test point; what it printed is in $T/nobody.out.
nobody_gets() {
	want=$1 desc=$2
	shift 2
	setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" "$@" >"$T/nobody.out" 2>&1
	rc=$?
	if [ $rc -eq "$want" ]; then
		ok 0 "$desc"
	else
		ok 1 "$desc (exit $rc, not $want)"
		sed 's/^/#   /' "$T/nobody.out"
	fi
}

# A caller who is not root (nobody), on a mount others may read.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	way_for_others open
	chmod 755 "$MNT"
	nobody_gets 2 "not root: status works (exit 2: degraded)" status "$MNT"
	check "it shows device 1 failed" grep -Eq '^  1 +failed ' "$T/nobody.out"
	nobody_gets 0 "not root: errors works" errors "$MNT"
	nobody_gets 0 "not root: inject --list works" inject "$MNT" --list
	nobody_gets 1 "not root: inject is refused" inject "$MNT" 1 read-error
	check "with a message saying root only" grep -q 'fault drills are for root only' "$T/nobody.out"
	nobody_gets 1 "not root: inject --clear is refused" inject "$MNT" --clear
	check "with a message saying root only" grep -q 'root only' "$T/nobody.out"
	nobody_gets 1 "not root: errors --reset is refused" errors --reset "$MNT"
	check "with a message saying root only" grep -q 'root only' "$T/nobody.out"
	nobody_gets 1 "not root: scrub start is refused" scrub start "$MNT"
	check "with a message saying root only" grep -q 'root only' "$T/nobody.out"
	check "nothing was injected meanwhile, no scrub started" sh -c "
		'$CTL' inject '$MNT' --list | grep -qx 'no fault injected' && '$CTL' scrub status '$MNT' | grep -qx 'scrub: idle'"
	chmod 700 "$MNT"
	nobody_gets 1 "not root: status of a mount others may not read is refused" status "$MNT"
	check "with a message saying permission denied" grep -qi 'permission denied' "$T/nobody.out"
	chmod 755 "$MNT"
	way_for_others close
else
	ok 0 "# SKIP the caller who is not root: needs root and setpriv"
fi
check "unmount" fs_umount

check "both devices mount again" fs_mount || done_testing
check "device 1 is caught up: healthy" fp wait "$MNT" 60 "$T/wait.json" healthy 2
check "no error was counted on device 0" sh -c "'$CTL' errors --json '$MNT' >'$T/errors.json' &&
	python3 '$PY' errors '$T/errors.json' 1 read checksum write"
check "unmount" fs_umount
# shellcheck disable=SC2034 # fs_mount mounts IMAGES
IMAGES="$T/d1.img"
check "d1.img alone mounts" fs_mount || done_testing
phase=0
for fault in 1 2 3 4; do
	phase=$((phase + 1))
	fio_phase "p$phase" $((SEED + phase)) --verify_only
	check "d1.img alone: phase $phase's data verifies" fio_clean "p$phase" $?
done
check "unmount" fs_umount
done_testing
