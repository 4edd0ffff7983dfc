#!/bin/sh
# The scripted fio jobs of tests/fio/ on a mounted two-device file system:
# every job writes with verify=crc32c and reads everything back (a wrong
# byte fails the job); after a remount each job's data is checked again
# from the devices (fio --verify_only); last, with the file system
# unmounted, the two copies of every extent of the written files are read
# straight from the image files and must be byte for byte the same.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v fio >/dev/null || skip_all "no fio"
command -v getfattr >/dev/null || skip_all "no getfattr (Debian package attr)"

JOBS=$(ls "$top_srcdir"/tests/fio/*.fio 2>/dev/null)
[ -n "$JOBS" ] || skip_all "no job files in $top_srcdir/tests/fio"

# run_fio NAME JOBFILE [fio options...]: run fio in $T (where it may leave
# its state files) on the mount; fails unless fio exits 0, every job
# reports err= 0, and no verify error is printed.
run_fio() {
	name=$1
	shift
	out="$T/fio-$name.out"
	(cd "$T" && fio --directory="$MNT" --output="$out" "$@") >"$out.stderr" 2>&1
	rc=$?
	cat "$out.stderr" >>"$out"
	fio_output_clean "$out" $rc
}

# mirror_pairs LAYOUT: one line per extent and extra copy,
# "EXTENT PATH0 SECTOR0 PATH1 SECTOR1 COUNT", copy 0 against copy k; fails
# unless every extent has the file system's number of copies, on distinct
# devices, with the same length.
mirror_pairs() {
	awk '
	/^size=/ { for (i = 1; i <= NF; i++) if ($i ~ /^copies=/) { split($i, c, "="); want = c[2] } }
	/^region / {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = substr($i, length(kv[1]) + 2) }
		e = v["extent"]; k = v["copy"]
		n[e]++; dev[e, k] = v["device"]; sec[e, k] = v["sector"]; cnt[e, k] = v["count"]; path[e, k] = v["path"]
		if (!(e in seen)) { seen[e] = 1; order[++ne] = e }
	}
	END {
		bad = 0
		for (j = 1; j <= ne; j++) {
			e = order[j]
			if (n[e] != want) { print "extent " e " has " n[e] " copies, not " want > "/dev/stderr"; bad = 1; continue }
			for (k = 1; k < n[e]; k++) {
				for (m = 0; m < k; m++)
					if (dev[e, k] == dev[e, m]) { print "extent " e ": two copies on device " dev[e, k] > "/dev/stderr"; bad = 1 }
				if (cnt[e, k] != cnt[e, 0]) { print "extent " e ": copies of different lengths" > "/dev/stderr"; bad = 1 }
				print e, path[e, 0], sec[e, 0], path[e, k], sec[e, k], cnt[e, 0]
			}
		}
		exit bad
	}' "$1"
}

# compare_mirrors LAYOUT: with the file system unmounted, read each copy of
# each extent from the image files (one Python process for all: a dd per
# copy cost two minutes); all must be identical.
compare_mirrors() {
	mirror_pairs "$1" >"$T/pairs" || return 1
	[ -s "$T/pairs" ] || { echo "no extents in $1"; return 1; }
	python3 "$top_srcdir/tests/integration/fsutil.py" compare-copies "$T/pairs"
}

images 2 384M
check "mkfs.dmiofs makes a two-device file system" fs_mkfs
check "dmiofs mounts it" fs_mount || done_testing

for job in $JOBS; do
	name=$(basename "$job" .fio)
	check "fio $name: written, read back and verified (crc32c)" run_fio "$name" "$job"
done
check "the file system is still healthy" sh -c "getfattr --only-values --absolute-names -n user.dmio.status '$MNT' | grep -qx 'status=healthy'"
check "no device counted an error" sh -c "getfattr --only-values --absolute-names -n user.dmio.devices '$MNT' >'$T/devices' &&
	! grep -Eq '(read|write|flush|checksum)_errors=[1-9]' '$T/devices'"
check "unmount is clean" fs_umount
check "it mounts again" fs_mount || done_testing

for job in $JOBS; do
	name=$(basename "$job" .fio)
	check "fio $name: after the remount, every block verifies (--verify_only)" run_fio "$name-verify" --verify_only "$job"
done

# The layouts of the files fio wrote, while mounted: dmiofs-ctl layout
# joins the pages of user.dmio.layout (a fragmented file's layout is
# longer than one xattr value may be).
: >"$T/layouts"
nolayout=""
for f in "$MNT"/*; do
	[ -f "$f" ] || continue
	b=$(basename "$f")
	if "$CTL" layout "$f" >"$T/layout.$b" 2>"$T/layout.err"; then
		echo "$b" >>"$T/layouts"
	else
		nolayout="$nolayout $b"
		diag "no layout for $b: $(cat "$T/layout.err")"
	fi
done
check "the large sequential file is among them" grep -qx 'seq-write-read.0.0' "$T/layouts"
ok "$([ -z "$nolayout" ]; echo $?)" "every file's layout can be read (missing:${nolayout:- none})"
check "unmount again" fs_umount
if [ -x "$FSCK" ]; then
	check "fsck.dmiofs -n: every copy of every block matches its checksum, nothing to repair" "$FSCK" -n "$IMAGES"
fi

while read -r b; do
	check "$b: both mirrors of every extent are byte-identical on the images" compare_mirrors "$T/layout.$b"
done <"$T/layouts"

# Again through the kernel's writeback cache, where the daemon offers it
# as an option (older daemons use it always, and were tested above).
if ASAN_OPTIONS=detect_leaks=0 "$DMIOFS" --help 2>&1 | grep -q -- '-o writeback '; then
	check "it mounts with -o writeback" fs_mount -o writeback || done_testing
	for job in $JOBS; do
		name=$(basename "$job" .fio)
		check "writeback cache: fio $name: written, read back and verified" run_fio "wb-$name" "$job"
	done
	check "writeback cache: unmount is clean" fs_umount
	check "it mounts again" fs_mount || done_testing
	for job in $JOBS; do
		name=$(basename "$job" .fio)
		check "writeback cache: fio $name: after the remount, every block verifies" run_fio "wb-$name-verify" --verify_only "$job"
	done
	check "unmount again" fs_umount
	if [ -x "$FSCK" ]; then
		check "fsck.dmiofs -n: nothing to repair" "$FSCK" -n "$IMAGES"
	fi
fi
done_testing
