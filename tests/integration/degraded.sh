#!/bin/sh
# The day a disk fails: every case makes a new file system on image files,
# writes seeded files (failday.py records what each must hold), takes
# devices away or damages them, and checks what dmiofs does:
#
#   a  a backing image deleted: the mount is degraded (dmiofs-ctl status
#      exits 2 and names it, the xattrs say so), everything reads, new
#      files are written; replace puts a new image in its place, which
#      then holds everything alone;
#   b  a device away while files were written comes back: only what it
#      missed is copied to it (catch-up), then it is healthy and holds
#      everything alone;
#   c  a split brain (each device mounted and written alone) is refused
#      without a byte changed; each part still shows its own files;
#      -o keep=DEV keeps DEV's part and rewrites the other;
#   d  garbage over the data area of one image: every file reads right,
#      a scrub finds and fixes every bad block, a second finds none, the
#      counters blame that device only;
#   e  three devices, two copies, one deleted, -o heal_delay=1: the copies
#      are made again on the other two, the lost device leaves, healthy;
#   f  -o nodegraded refuses a device missing; with two of three devices
#      missing, the files that would lack a copy are named;
#   g  events: a device failing (an injected write error) and coming back
#      at the next mount run the event program in order;
#   h  the daemon killed (kill -9) during a catch-up, a scrub and a
#      replace, and the moment a scrub or a replace was started (what
#      dmiofs-ctl was told yes to must not be lost): each resumes at the
#      next mount and finishes.
#
# FAILDAY_SEED (default 1207, so that CI repeats the same run) may be set;
# FAILDAY_CASES (default abcdefgh) runs some of the cases.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v python3 >/dev/null || skip_all "no python3"
command -v getfattr >/dev/null || skip_all "no getfattr (Debian package attr)"

PY="$top_srcdir/tests/integration/failday.py"
SEED=${FAILDAY_SEED:-1207}
CASES=${FAILDAY_CASES:-abcdefgh}
export CTL
diag "FAILDAY_SEED=$SEED FAILDAY_CASES=$CASES"

# The event program: a line per event, "NAME DEVICE STATUS DEVICE_PATH".
EVENTS="$T/events.log"
# shellcheck disable=SC2016 # expanded by the event program, not here
printf '#!/bin/sh\nprintf "%%s %%s %%s %%s\\n" "$1" "${DMIOFS_DEVICE:--}" "$DMIOFS_STATUS" "${DMIOFS_DEVICE_PATH:--}" >>"%s"\n' \
	"$EVENTS" >"$T/event.sh"
chmod 755 "$T/event.sh"

# ---- helpers -------------------------------------------------------------------------

# fresh N SIZE [mkfs options...]: unmount what is left, remove the images
# of the case before, make N new ones and a file system on them.
fresh() {
	[ -z "$DAEMON_PID" ] || fs_umount
	rm -f "$T"/*.img "$T"/*.away "$T"/*.json "$EVENTS"
	n=$1 size=$2
	shift 2
	images "$n" "$size"
	fs_mkfs "$@"
}

# devs NAME...: the device list of the next mount ($T/NAME.img, in order).
devs() {
	IMAGES=""
	for d in "$@"; do IMAGES="${IMAGES:+$IMAGES:}$T/$d.img"; done
}

# mnt DESCRIPTION [dmiofs options...]: mount IMAGES, a test point; a case
# goes no further when it fails (mnt ... || return 0).
mnt() {
	desc=$1
	shift
	if fs_mount "$@" >"$T/mnt.out" 2>&1; then
		ok 0 "$desc"
		return 0
	fi
	ok 1 "$desc"
	sed 's/^/#   /' "$T/mnt.out"
	return 1
}

umnt() { check "$1" fs_umount; }

# checkv DESCRIPTION COMMAND...: as check, and the command's comment
# lines (what it found) are shown whatever the outcome.
checkv() {
	check "$@"
	grep '^# ' "$T/check.out"
}

# try DESCRIPTION COMMAND...: as check, and its status is the command's.
try() {
	desc=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then
		ok 0 "$desc"
		return 0
	fi
	ok 1 "$desc"
	sed 's/^/#   /' "$T/check.out"
	return 1
}

# refused OUT [dmiofs options...]: mounting IMAGES fails (dmiofs goes to
# the background only once mounted, else it exits 1 with the reason);
# what it printed lands in OUT.
refused() {
	out=$1
	shift
	if "$DMIOFS" "$@" "$IMAGES" "$MNT" >"$out" 2>&1; then
		echo "it mounted:"
		cat "$out"
		fusermount3 -u "$MNT"
		return 1
	fi
	return 0
}

# status_is CODE: dmiofs-ctl status exits CODE (its table in $T/status).
status_is() {
	"$CTL" status "$MNT" >"$T/status" 2>&1
	rc=$?
	[ $rc -eq "$1" ] && return 0
	echo "dmiofs-ctl status exited $rc, not $1:"
	cat "$T/status"
	return 1
}

# wait_event REGEX: the event log gets a matching line (10 s at most:
# the program runs on a thread of the daemon's own).
wait_event() {
	for _ in $(seq 1 200); do
		grep -Eq "$1" "$EVENTS" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "no event line matching '$1' in:"
	cat "$EVENTS" 2>/dev/null
	return 1
}

# has_event REGEX: the event log has a matching line already.
has_event() {
	grep -Eq "$1" "$EVENTS" 2>/dev/null && return 0
	echo "no event line matching '$1' in:"
	cat "$EVENTS" 2>/dev/null
	return 1
}

# line_of REGEX: the number of the first line of the event log matching.
line_of() {
	grep -En "$1" "$EVENTS" | head -n 1 | cut -d: -f1
}

# before_in_log A B: an event line matching A comes before one matching B.
before_in_log() {
	a=$(line_of "$1")
	b=$(line_of "$2")
	[ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ] && return 0
	echo "want '$1' before '$2' in:"
	cat "$EVENTS"
	return 1
}

fp() { python3 "$PY" "$@"; }

# hold SUM: the sha1 of every image, into $T/SUM.
hold() { (cd "$T" && sha1sum d*.img) >"$T/$1"; }
unchanged() { (cd "$T" && sha1sum -c --quiet "$T/$1"); }

MiB=1048576

# ---- a: a backing image deleted --------------------------------------------------

case_a() {
	fresh 2 128M
	devs d0 d1
	mnt "a: mount two devices" || return 0
	check "a: files are written" fp write "$MNT" "$T/a.json" "$SEED" f1:3000000 f2:1500000 sub/f3:700000 f4:5000
	umnt "a: unmount"
	rm -f "$T/d1.img"
	mnt "a: with d1.img deleted, it mounts (degraded)" || return 0
	check "a: dmiofs-ctl status exits 2" status_is 2
	check "a: it says DEGRADED" grep -q ': DEGRADED$' "$T/status"
	check "a: it names the missing device" grep -q "^  missing: $T/d1.img\$" "$T/status"
	check "a: its table has device 1 missing" grep -Eq "^  1 +missing .* $T/d1.img\$" "$T/status"
	xattr "$MNT" user.dmio.status >"$T/xstatus"
	check "a: user.dmio.status says status=degraded" grep -qx 'status=degraded' "$T/xstatus"
	check "a: user.dmio.status says missing=d1.img" grep -qx "missing=$T/d1.img" "$T/xstatus"
	xattr "$MNT" user.dmio.devices >"$T/xdevices"
	check "a: user.dmio.devices says device 1 state=missing present=no" \
		grep -Eq "^device=1 state=missing present=no .* path=$T/d1.img\$" "$T/xdevices"
	check "a: every file reads right" fp verify "$MNT" "$T/a.json" exact
	check "a: new files are written" fp write "$MNT" "$T/a.json" "$SEED" g1:2000000 sub/g2:300000
	truncate -s 128M "$T/new.img"
	check "a: dmiofs-ctl replace MNT 1 new.img --wait" "$CTL" replace "$MNT" 1 "$T/new.img" --wait
	check "a: dmiofs-ctl status exits 0: healthy" status_is 0
	check "a: the devices are d0.img and new.img, healthy" \
		fp devices "$MNT" "$T/d0.img=healthy" "$T/new.img=healthy"
	check "a: every file reads right" fp verify "$MNT" "$T/a.json" exact
	umnt "a: unmount"
	rm -f "$T/d0.img"
	devs d0 new
	mnt "a: with d0.img deleted too, new.img mounts (degraded)" || return 0
	check "a: new.img alone holds every file" fp verify "$MNT" "$T/a.json" exact
	check "a: status exits 2 and names d0.img missing" sh -c "
		'$CTL' status '$MNT' >'$T/status'; [ \$? -eq 2 ] && grep -q '^  missing: $T/d0.img\$' '$T/status'"
	umnt "a: unmount"
}

# ---- b: away, then back: catch-up ----------------------------------------------------

case_b() {
	fresh 2 128M
	devs d0 d1
	mnt "b: mount two devices" || return 0
	old=$((16 * MiB))
	check "b: 16 MiB of files are written" fp write "$MNT" "$T/b.json" "$SEED" \
		o1:$((4 * MiB)) o2:$((4 * MiB)) o3:$((4 * MiB)) o4:$((4 * MiB))
	umnt "b: unmount"
	mv "$T/d1.img" "$T/d1.away"
	mnt "b: d1.img moved away: it mounts degraded" || return 0
	away=$((1536 * 1024 + MiB + 512 * 1024 + 512 * 1024))
	check "b: while it is away, files are written and part of one overwritten ($away bytes)" sh -c "
		python3 '$PY' write '$MNT' '$T/b.json' '$SEED' n1:$((1536 * 1024)) n2:$MiB sub/n3:$((512 * 1024)) &&
		python3 '$PY' patch '$MNT' '$T/b.json' '$SEED' o2 $MiB $((512 * 1024))"
	umnt "b: unmount"
	mv "$T/d1.away" "$T/d1.img"
	used_before=$(du -B1 "$T/d1.img" | cut -f1)
	mnt "b: back with d1.img (a slow catch-up: -o rebuild_rate=2)" -o rebuild_rate=2 || return 0
	checkv "b: it catches up and is healthy" fp wait "$MNT" 60 "$T/b-wait.json" healthy 2
	check "b: the task seen was a catch-up, with device 1 returning" sh -c "
		grep -q '\"tasks\": \[\"catch-up\"\]' '$T/b-wait.json' && grep -q '\"1\": \[\"returning\", \"healthy\"\]' '$T/b-wait.json' ||
		{ cat '$T/b-wait.json'; exit 1; }"
	copied=$(fp copied "$T/b-wait.json" catch-up)
	diag "b: $away bytes written while away, $old before; the catch-up copied $copied bytes"
	ok "$([ "$copied" -ge $((away / 2)) ]; echo $?)" "b: the catch-up copied at least half of what was written while away ($copied)"
	ok "$([ "$copied" -lt $((3 * away)) ]; echo $?)" "b: and less than 3 times that"
	ok "$([ "$copied" -lt $((old / 2)) ]; echo $?)" "b: and far less than the $old bytes there before"
	check "b: every file reads right" fp verify "$MNT" "$T/b.json" exact
	umnt "b: unmount"
	grown=$(($(du -B1 "$T/d1.img" | cut -f1) - used_before))
	diag "b: d1.img's allocated bytes grew by $grown"
	ok "$([ "$grown" -lt $((3 * away)) ]; echo $?)" "b: d1.img grew by less than 3 times what it missed ($grown bytes)"
	devs d1
	mnt "b: d1.img alone mounts" || return 0
	check "b: it holds every file" fp verify "$MNT" "$T/b.json" exact
	umnt "b: unmount"
}

# ---- c: split brain ----------------------------------------------------------------

case_c() {
	fresh 2 128M
	devs d0 d1
	mnt "c: mount two devices" || return 0
	check "c: files are written" fp write "$MNT" "$T/c.json" "$SEED" base1:1000000 base2:2000000
	umnt "c: unmount"
	cp "$T/c.json" "$T/cA.json"
	cp "$T/c.json" "$T/cB.json"
	devs d0
	mnt "c: d0.img alone" || return 0
	check "c: part A written on d0.img alone" sh -c "
		python3 '$PY' write '$MNT' '$T/cA.json' '$SEED-A' a1:1500000 a2:$MiB &&
		python3 '$PY' patch '$MNT' '$T/cA.json' '$SEED-A' base2 4096 100000"
	umnt "c: unmount"
	devs d1
	mnt "c: d1.img alone" || return 0
	check "c: part B written on d1.img alone" sh -c "
		python3 '$PY' write '$MNT' '$T/cB.json' '$SEED-B' b1:1200000 &&
		python3 '$PY' patch '$MNT' '$T/cB.json' '$SEED-B' base1 0 300000"
	umnt "c: unmount"
	hold split.sum
	devs d0 d1
	check "c: both together are refused" refused "$T/split.err" -o event_program="$T/event.sh"
	check "c: the message says split brain" grep -q 'split brain' "$T/split.err"
	check "c: it names both devices with their generations" sh -c "
		grep -q '$T/d0.img (device 0) is at generation [0-9]' '$T/split.err' &&
		grep -q '$T/d1.img (device 1) is at generation [0-9]' '$T/split.err' || { cat '$T/split.err'; exit 1; }"
	check "c: the event program was told: split-brain" wait_event '^split-brain - '
	check "c: neither image changed" unchanged split.sum
	devs d0
	mnt "c: d0.img alone mounts" || return 0
	check "c: it shows part A, not B" fp verify "$MNT" "$T/cA.json" exact
	umnt "c: unmount"
	devs d1
	mnt "c: d1.img alone mounts" || return 0
	check "c: it shows part B, not A" fp verify "$MNT" "$T/cB.json" exact
	umnt "c: unmount"
	devs d0 d1
	mnt "c: -o keep=d1.img mounts both" -o keep="$T/d1.img" || return 0
	check "c: it shows part B" fp verify "$MNT" "$T/cB.json" exact
	check "c: d0.img is rewritten from d1.img: healthy" fp wait "$MNT" 60 "$T/c-wait.json" healthy 2
	umnt "c: unmount"
	devs d0
	mnt "c: d0.img alone mounts" || return 0
	check "c: it shows part B now" fp verify "$MNT" "$T/cB.json" exact
	umnt "c: unmount"
}

# ---- d: garbage over a data area, scrub ---------------------------------------------

case_d() {
	fresh 2 128M
	devs d0 d1
	mnt "d: mount two devices" || return 0
	check "d: 14 MiB of files are written" fp write "$MNT" "$T/d.json" "$SEED" \
		g1:$((2 * MiB)) g2:$((2 * MiB)) g3:$((2 * MiB)) g4:$((2 * MiB)) g5:$((2 * MiB)) g6:$((2 * MiB)) g7:$((2 * MiB))
	start=$(fp data-start "$MNT" 1)
	check "d: the layouts say where device 1's data starts" test -n "$start"
	umnt "d: unmount"
	[ -n "$start" ] || return 0
	diag "d: 8 MiB of garbage over d1.img from byte $start"
	fp garbage "$T/d1.img" "$start" $((8 * MiB)) "$SEED"
	mnt "d: it mounts" || return 0
	check "d: every file reads right" fp verify "$MNT" "$T/d.json" exact
	"$CTL" scrub start "$MNT" --wait --json >"$T/scrub1.json" 2>"$T/scrub.err"
	ok $? "d: dmiofs-ctl scrub start --wait exits 0"
	checkv "d: the scrub found bad blocks and fixed every one" fp scrub "$T/scrub1.json" found
	"$CTL" scrub start "$MNT" --wait --json >"$T/scrub2.json" 2>"$T/scrub.err"
	ok $? "d: a second scrub exits 0"
	checkv "d: it finds nothing" fp scrub "$T/scrub2.json" clean
	check "d: dmiofs-ctl scrub status says finished" sh -c "'$CTL' scrub status '$MNT' | grep -q '^last result: finished'"
	"$CTL" errors --json "$MNT" >"$T/errors.json"
	checkv "d: dmiofs-ctl errors: checksum errors on device 1 only" fp errors "$T/errors.json" 1 checksum exact
	check "d: every file still reads right" fp verify "$MNT" "$T/d.json" exact
	"$CTL" status "$MNT" >"$T/status.out" 2>&1
	ok $([ $? -eq 3 ] && grep -q ': ERRORS' "$T/status.out"; echo $?) \
		"d: dmiofs-ctl status says ERRORS and exits 3 (every device here, errors counted)"
	check "d: user.dmio.status says status=errors" sh -c "getfattr --only-values -n user.dmio.status '$MNT' | grep -qx status=errors"
	check "d: the log names the file, the device and the bytes of a checksum error" \
		grep -qE "d1.img \(device 1\): checksum error in /g[1-7], bytes [0-9]+-[0-9]+" "$T/daemon.err"
	check "d: and of a repair" grep -qE "d1.img \(device 1\): a bad copy was made good in /g[1-7], bytes" "$T/daemon.err"
	check "d: five lines a second at most: the log counts those held back" \
		grep -qE "[0-9]+ more I/O errors and repairs (were )?not logged" "$T/daemon.err"
	check "d: dmiofs-ctl errors --reset" "$CTL" errors --reset "$MNT"
	check "d: then dmiofs-ctl status says healthy, exit 0" "$CTL" status "$MNT"
	umnt "d: unmount"
	if [ -x "$FSCK" ]; then
		check "d: fsck.dmiofs -n: every copy is good again" "$FSCK" -n "$IMAGES"
	fi
}

# ---- e: three devices, one lost, healed ------------------------------------------------

case_e() {
	fresh 3 128M --copies=2
	devs d0 d1 d2
	mnt "e: mount three devices (two copies)" || return 0
	check "e: files are written" fp write "$MNT" "$T/e.json" "$SEED" \
		h1:1500000 h2:1500000 h3:1500000 h4:1500000 h5:1500000 h6:1500000 sub/h7:300000
	umnt "e: unmount"
	rm -f "$T/d2.img"
	mnt "e: d2.img deleted: it mounts with -o heal_delay=1" -o heal_delay=1,rebuild_rate=8,event_program="$T/event.sh" || return 0
	checkv "e: the copies are made again: healthy, two devices" fp wait "$MNT" 60 "$T/e-wait.json" healthy 2
	# On a loaded machine the first look may come after the rebuild is
	# done; the event log still says it ran.
	if grep -q '"tasks": \["rebuild"\]' "$T/e-wait.json"; then
		ok 0 "e: the task seen was a rebuild"
	else
		check "e: the rebuild was over at the first look; the event log says it ran" wait_event '^rebuild-done 2 '
	fi
	check "e: status exits 0" status_is 0
	check "e: the devices are d0.img and d1.img" fp devices "$MNT" "$T/d0.img=healthy" "$T/d1.img=healthy"
	check "e: the event program was told: device-missing (device 2)" wait_event "^device-missing 2 degraded $T/d2.img\$"
	check "e: the event program was told: rebuild-done (device 2)" wait_event '^rebuild-done 2 '
	check "e: rebuild-done says the status is healthy again" has_event '^rebuild-done 2 healthy '
	check "e: every file reads right" fp verify "$MNT" "$T/e.json" exact
	umnt "e: unmount"
	devs d0 d1
	mnt "e: d0.img and d1.img mount" || return 0
	check "e: healthy (status exits 0)" status_is 0
	check "e: every file reads right" fp verify "$MNT" "$T/e.json" exact
	umnt "e: unmount"
	for d in d0 d1; do
		devs "$d"
		mnt "e: $d.img alone mounts (it holds a copy of everything)" || continue
		check "e: $d.img alone: every file reads right" fp verify "$MNT" "$T/e.json" exact
		umnt "e: unmount"
	done
}

# ---- f: nodegraded, and files that would lack a copy -------------------------------------

case_f() {
	fresh 2 128M
	devs d0 d1
	mnt "f: mount two devices" || return 0
	check "f: a file is written" fp write "$MNT" "$T/f.json" "$SEED" only:100000
	umnt "f: unmount"
	rm -f "$T/d1.img"
	hold f.sum
	check "f: -o nodegraded refuses a mount with d1.img deleted" refused "$T/nodeg.err" -o nodegraded
	check "f: it says why, naming d1.img" sh -c "grep -q 'nodegraded' '$T/nodeg.err' && grep -q '$T/d1.img' '$T/nodeg.err' ||
		{ cat '$T/nodeg.err'; exit 1; }"
	devs d0
	check "f: -o nodegraded refuses d0.img alone" refused "$T/nodeg.err" -o nodegraded
	check "f: d0.img did not change" unchanged f.sum
	mnt "f: without -o nodegraded d0.img alone mounts" || return 0
	check "f: the file reads right" fp verify "$MNT" "$T/f.json" exact
	umnt "f: unmount"

	fresh 3 128M --copies=2
	devs d0 d1 d2
	mnt "f: mount three devices (two copies)" || return 0
	check "f: files are written" fp write "$MNT" "$T/f3.json" "$SEED" \
		k1:1500000 k2:1500000 k3:1500000 k4:1500000 k5:1500000 k6:1500000 k7:1500000 k8:1500000
	checkv "f: the layouts say which files lack a copy without d1 and d2" fp lacking "$MNT" "$T/lacking.json" 1 2
	umnt "f: unmount"
	rm -f "$T/d1.img" "$T/d2.img"
	hold f3.sum
	check "f: with d1.img and d2.img deleted, the mount is refused" \
		refused "$T/lack.err" -o event_program="$T/event.sh"
	check "f: the refusal names exactly the files that lack a copy" fp refusal "$T/lack.err" "$T/lacking.json"
	check "f: d0.img did not change" unchanged f3.sum
	check "f: a refused mount neither says nor tells the event program it is mounted degraded" sh -c "
		! grep -q 'mounted degraded' '$T/lack.err' && ! grep -q '^degraded ' '$EVENTS' 2>/dev/null ||
		{ cat '$T/lack.err' '$EVENTS'; exit 1; }"
}

# ---- g: events ----------------------------------------------------------------------

case_g() {
	fresh 2 128M
	devs d0 d1
	mnt "g: mount two devices with -o event_program" -o event_program="$T/event.sh" || return 0
	check "g: a file is written" fp write "$MNT" "$T/g.json" "$SEED" e1:$MiB
	check "g: inject MNT 1 write-error" "$CTL" inject "$MNT" 1 write-error
	check "g: a file is written all the same" fp write "$MNT" "$T/g.json" "$SEED" e2:$MiB
	check "g: device-failed 1 degraded d1.img" wait_event "^device-failed 1 degraded $T/d1.img\$"
	check "g: then degraded" wait_event '^degraded - degraded -$'
	check "g: in that order" before_in_log '^device-failed ' '^degraded '
	check "g: device 1 is failed" fp wait "$MNT" 10 "$T/g-wait.json" failed 1
	check "g: status exits 2" status_is 2
	check "g: every file reads right" fp verify "$MNT" "$T/g.json" exact
	umnt "g: unmount"
	mnt "g: mount again, the fault gone with the daemon" -o event_program="$T/event.sh" || return 0
	check "g: it catches up: healthy" fp wait "$MNT" 60 "$T/g-wait.json" healthy 2
	check "g: device-returned 1" wait_event "^device-returned 1 degraded $T/d1.img\$"
	check "g: caught-up 1 healthy" wait_event "^caught-up 1 healthy $T/d1.img\$"
	check "g: in that order" before_in_log '^device-returned ' '^caught-up '
	check "g: every file reads right" fp verify "$MNT" "$T/g.json" exact
	umnt "g: unmount"
	devs d1
	mnt "g: d1.img alone mounts" || return 0
	check "g: it holds the file written while it was failed" fp verify "$MNT" "$T/g.json" exact
	umnt "g: unmount"
}

# ---- h: killed during a catch-up, a scrub, a replace -----------------------------------

case_h() {
	fresh 2 128M
	devs d0 d1
	mnt "h: mount two devices" || return 0
	check "h: files are written" fp write "$MNT" "$T/h.json" "$SEED" p1:$((2 * MiB)) p2:$((2 * MiB)) p3:$((2 * MiB))
	umnt "h: unmount"
	mv "$T/d1.img" "$T/d1.away"
	mnt "h: d1.img away: it mounts degraded" || return 0
	check "h: 5 MiB more written while it is away" fp write "$MNT" "$T/h.json" "$SEED" q1:$((3 * MiB)) q2:$((2 * MiB))
	umnt "h: unmount"
	mv "$T/d1.away" "$T/d1.img"

	mnt "h: d1.img back, catch-up at 1 MB/s" -o rebuild_rate=1 || return 0
	check "h: the catch-up is under way (1 MiB done)" fp wait "$MNT" 30 "$T/h-wait.json" task catch-up $MiB
	fs_kill
	mnt "h: killed during the catch-up; it mounts again" || return 0
	checkv "h: the catch-up resumes and finishes: healthy" fp wait "$MNT" 60 "$T/h-wait.json" healthy 2
	check "h: every file reads right" fp verify "$MNT" "$T/h.json" exact
	umnt "h: unmount"
	devs d1
	mnt "h: d1.img alone mounts" || return 0
	check "h: it holds every file" fp verify "$MNT" "$T/h.json" exact
	umnt "h: unmount"

	# Both again: d0.img is caught up on what the mount of d1.img alone
	# recorded.
	devs d0 d1
	mnt "h: both again" || return 0
	check "h: healthy" fp wait "$MNT" 60 "$T/h-wait.json" healthy 2
	start=$(fp data-start "$MNT" 0)
	umnt "h: unmount"
	fp garbage "$T/d0.img" "${start:-0}" $((12 * MiB)) "$SEED"
	mnt "h: garbage over all of d0.img's data; mounted" || return 0
	check "h: a scrub at 2 MB/s starts" "$CTL" scrub start "$MNT" --rate 2
	fs_kill
	mnt "h: killed the moment the scrub started; it mounts again" || return 0
	# A scrub the daemon said yes to is recorded: it is not lost in a
	# crash that follows (the commit interval is 5 s).
	if ! try "h: the scrub started just before the kill resumes by itself" fp scrub-resumed "$MNT" 0; then
		diag "h: the scrub was lost: started again by hand"
		"$CTL" scrub start "$MNT" --rate 2 >/dev/null
	fi
	check "h: the scrub is under way, past the commit interval (14 MB checked)" \
		fp wait "$MNT" 30 "$T/h-wait.json" scrub-running 14000000
	fs_kill
	mnt "h: killed during the scrub; it mounts again" || return 0
	checkv "h: the scrub resumed where it stood, not from the start (3 MB checked)" fp scrub-resumed "$MNT" 3000000
	check "h: and finishes" fp wait "$MNT" 60 "$T/h-wait.json" scrub-done
	"$CTL" scrub status --json "$MNT" >"$T/scrub.json"
	check "h: nothing left bad" grep -q '"unfixed":0' "$T/scrub.json"
	check "h: every file reads right" fp verify "$MNT" "$T/h.json" exact
	umnt "h: unmount"
	if [ -x "$FSCK" ]; then
		check "h: fsck.dmiofs -n: every copy is good again" "$FSCK" -n "$IMAGES"
	fi

	rm -f "$T/d1.img"
	truncate -s 128M "$T/new.img" "$T/new2.img"
	mnt "h: d1.img deleted; mounted at 1 MB/s" -o rebuild_rate=1 || return 0
	check "h: dmiofs-ctl replace MNT 1 new.img" "$CTL" replace "$MNT" 1 "$T/new.img"
	check "h: the replace is under way, past the commit interval (6 MiB done)" \
		fp wait "$MNT" 30 "$T/h-wait.json" task replace $((6 * MiB))
	fs_kill
	devs d0 new
	# heal_delay: no self-healing may stand in for the replace.
	mnt "h: killed during the replace; d0.img and new.img mount" -o heal_delay=600 || return 0
	check "h: the replace resumed (device 1 is still being replaced)" fp leaving "$MNT" 1 replaced
	check "h: and finishes: healthy" fp wait "$MNT" 30 "$T/h-wait.json" healthy 2
	check "h: the devices are d0.img and new.img" fp devices "$MNT" "$T/d0.img=healthy" "$T/new.img=healthy"
	check "h: every file reads right" fp verify "$MNT" "$T/h.json" exact
	umnt "h: unmount"

	mnt "h: mounted at 1 MB/s" -o rebuild_rate=1 || return 0
	check "h: dmiofs-ctl replace MNT new.img new2.img" "$CTL" replace "$MNT" "$T/new.img" "$T/new2.img"
	fs_kill
	devs d0 new new2
	mnt "h: killed the moment the replace started; the three mount" -o heal_delay=600 || return 0
	alone=new
	if try "h: the replace said yes to just before the kill resumed" fp leaving "$MNT" 2 replaced; then
		check "h: and finishes: healthy" fp wait "$MNT" 30 "$T/h-wait.json" healthy 2
		check "h: the devices are d0.img and new2.img" fp devices "$MNT" "$T/d0.img=healthy" "$T/new2.img=healthy"
		alone=new2
	fi
	check "h: every file reads right" fp verify "$MNT" "$T/h.json" exact
	umnt "h: unmount"
	devs "$alone"
	mnt "h: $alone.img alone mounts" || return 0
	check "h: $alone.img alone holds every file" fp verify "$MNT" "$T/h.json" exact
	umnt "h: unmount"
}

for c in a b c d e f g h; do
	case "$CASES" in
	*$c*)
		started=$(date +%s)
		"case_$c"
		[ -z "$DAEMON_PID" ] || fs_umount
		diag "case $c: $(($(date +%s) - started)) s"
		;;
	esac
done
done_testing
