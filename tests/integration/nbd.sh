#!/bin/sh
# A mirror with one leg on an NBD server: nbdkit serving an image file on a
# unix socket in the test's folder, and on loopback TCP.
#
#   - mkfs.dmiofs and dmiofs take a local image and an NBD URI joined by
#     ':' in one argument (the URI's own colons do not split it); status
#     names the export;
#   - files written, and fio verifying, read back right;
#   - the server killed under fio (kill -9): fio sees no error, the export
#     is failed, the file system degraded; a server back with another
#     export of the same size is refused (the daemon says so, the export
#     stays failed); the right server back: the export is reconnected and
#     caught up while mounted, healthy;
#   - the server killed while the mount is idle: the export is failed
#     within seconds (not at the next write), and reconnected when the
#     server is back;
#   - mounted while the server is down: degraded, the export missing; the
#     server starts: the export joins and is caught up, while mounted;
#   - unmounted: fsck.dmiofs is clean over the same list, and each side
#     alone (the local image, the export) holds every file;
#   - reads go to the local image when the export is slow (nbdkit's delay
#     filter: 20 ms a read), and never to an export mounted write_mostly;
#     status shows the export, connected, and how long its reads take;
#   - mkfs.dmiofs refuses an export holding another file system, and
#     --force wipes it;
#   - an attempt to reconnect that hangs (a listener that never answers
#     on the export's socket, nbd_timeout=20) holds no catch-up: a local
#     device failed (injected write error) and added back is caught up
#     within 10 s;
#   - dmiofs-ctl replace moves a local device's copies onto an export;
#   - the server back with a blank export: refused, with the command that
#     makes it a fresh copy; that command (replace by its own URI) fills
#     it from the local image, and it alone holds every file;
#   - an /etc/fstab line naming a local image and an export, with
#     _netdev, mounted by mount -a and unmounted by umount (in a private
#     mount namespace, with this build's helpers over /usr/sbin);
#   - an nbd://127.0.0.1:PORT/ URI with a port, after a local device;
#   - TLS with X.509 certificates (nbds://localhost:PORT/?tls-certificates=
#     DIR; certificates from tests/make-certs.sh, the server checking the
#     client's): mkfs, mount, files, fsck; a CA that did not sign the
#     server's certificate leaves the export missing, the mount degraded;
#     the right CA again: caught up, healthy;
#   - qemu-nbd as the server: written, verified, fsck, its export alone;
#   - a server in a network namespace the test makes, over a veth pair
#     with addresses of its own: the mirror written; the link taken down
#     under writes (no reply: after -o nbd_timeout=2 the connection is
#     dropped, the export fails, the writes complete, degraded); the link
#     up again (reconnected, caught up); the server hung (SIGSTOP) at
#     mount: the mount gives up on it after nbd_timeout, degraded, and
#     the export joins once it answers again.
. "$(dirname "$0")/lib.sh"
require_fuse
command -v nbdkit >/dev/null || skip_all "no nbdkit (Debian package nbdkit)"
command -v fio >/dev/null || skip_all "no fio"

SERVER_PID=""
NETNS=""
cleanup_all() {
	[ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
	it_cleanup
	if [ -n "$NETNS" ]; then
		ip link del "$NETNS-a" 2>/dev/null
		ip netns del "$NETNS" 2>/dev/null
	fi
}
trap cleanup_all EXIT

# server_ready TEST PATH: the server just started ($SERVER_PID) is ready
# once [ TEST PATH ] holds (its pid file written, its socket made); false
# when it died first, or after 20 s.
server_ready() {
	for _ in $(seq 1 400); do
		[ "$1" "$2" ] && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	[ "$1" "$2" ]
}

# serve IMAGE [--filter=F... KEY=VALUE...]: nbdkit's file plugin over
# IMAGE on the unix socket $T/r.sock, with those filters and their
# parameters (which nbdkit wants after the plugin's); returns once the
# server listens (its pid file).  No spaces in the arguments.
serve() {
	img=$1
	shift
	filters="" params=""
	for a in "$@"; do
		case $a in
		--filter=*) filters="$filters $a" ;;
		*) params="$params $a" ;;
		esac
	done
	rm -f "$T/r.sock" "$T/r.pid"
	# shellcheck disable=SC2086 # word splitting is the point
	nbdkit -f -U "$T/r.sock" -P "$T/r.pid" $filters file "$img" $params 2>"$T/nbdkit.err" &
	SERVER_PID=$!
	server_ready -s "$T/r.pid" && return 0
	sed 's/^/#   /' "$T/nbdkit.err"
	return 1
}

# stop_server [KILL]: SIGTERM (nbdkit then waits for its clients to
# disconnect: SIGKILL after 10 s), or SIGKILL at once.
stop_server() {
	kill "-${1:-TERM}" "$SERVER_PID" 2>/dev/null
	for _ in $(seq 1 100); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SERVER_PID" 2>/dev/null
	wait "$SERVER_PID" 2>/dev/null
	SERVER_PID=""
}

# every_device_healthy: no device is failed, missing or being caught up
# (60 s at most).  The errors the server's death left in the counters
# stay, so the file system itself may say ERRORS.
every_device_healthy() {
	for _ in $(seq 1 600); do
		"$CTL" status "$MNT" >"$T/status" 2>&1
		if head -n 1 "$T/status" | grep -Eq ': (healthy|ERRORS)' &&
			! grep -Eq 'failed|missing|returning|catch-up' "$T/status"; then
			return 0
		fi
		sleep 0.1
	done
	cat "$T/status"
	return 1
}

# write_files: three files of random bytes; their sums in $T/sums.
write_files() {
	for f in a b c; do
		head -c $((3 * 1048576 + 4097)) /dev/urandom >"$MNT/$f" || return 1
	done
	(cd "$MNT" && md5sum a b c) >"$T/sums"
}

files_intact() {
	(cd "$MNT" && md5sum -c --quiet "$T/sums")
}

fio_verify() {
	# fio keeps a verify state file in its folder when a job ends early: $T, not the build tree.
	(cd "$T" && fio --name=verify --filename="$MNT/fio.dat" --size=16M --rw=randwrite --bs=4k --direct=1 \
		--ioengine=libaio --iodepth=8 --verify=crc32c --do_verify=1 --randseed=4242 --loops="${1:-1}" \
		--verify_state_save=0 --output="$T/fio.out")
	fio_output_clean "$T/fio.out" $?
}

truncate -s 256M "$T/local.img" "$T/remote.img"
must "nbdkit serves an image on a unix socket" serve "$T/remote.img"
URI="nbd+unix:///?socket=$T/r.sock"
IMAGES="$T/local.img:$URI"

must "mkfs.dmiofs takes a local image and an NBD URI in one argument" "$MKFS" -q "$IMAGES"
must "dmiofs mounts them" fs_mount
check "status names the export, healthy" sh -c "\"$CTL\" status \"$MNT\" | grep -q 'healthy .*nbd+unix:///?socket=$T/r.sock'"
check "the devices xattr names the export" sh -c "getfattr --only-values -n user.dmio.devices \"$MNT\" | grep -q 'path=$URI'"
check "status says it is an NBD export, connected" sh -c "\"$CTL\" status \"$MNT\" | grep -q '^  device 1: NBD export, connected'"
check "status --json says so too" sh -c "\"$CTL\" status --json \"$MNT\" | grep -q '\"connected\" *: *true'"
write_files
check "three files read back right" files_intact
check "fio verifies random writes on the mirror" fio_verify

# ---- the server dies under fio ------------------------------------------------------
touch "$T/before-fio"
sleep 0.01 # a later write gets a later mtime, even on coarse clocks
fio_verify 3 >"$T/fio-kill.res" 2>&1 &
FIO_PID=$!
# Kill the server once fio's writes reach the export's image.
for _ in $(seq 1 600); do
	[ -n "$(find "$T/remote.img" -newer "$T/before-fio")" ] && break
	sleep 0.05
done
stop_server KILL
wait "$FIO_PID"
ok $? "fio sees no error when the server dies under it"
sed 's/^/#   /' "$T/fio-kill.res"
check "the export is failed and the file system degraded" sh -c "\"$CTL\" status \"$MNT\" | head -n 1 | grep -q DEGRADED && \"$CTL\" status \"$MNT\" | grep -q 'failed .*nbd+unix'"
check "files still read back right" files_intact

# daemon_said TEXT: the daemon's messages hold TEXT (60 s at most).
daemon_said() {
	for _ in $(seq 1 600); do
		grep -q "$1" "$T/daemon.err" && return 0
		sleep 0.1
	done
	tail -n 20 "$T/daemon.err"
	return 1
}

truncate -s 256M "$T/stranger.img"
must "a server comes back on the socket with another export of the same size" serve "$T/stranger.img"
check "the daemon refuses it, loudly" daemon_said "answers again, but is not device 1"
check "the export stays failed" sh -c "\"$CTL\" status \"$MNT\" | grep -q 'failed .*nbd+unix'"
stop_server
must "the right server comes back" serve "$T/remote.img"
check "the export is reconnected and caught up while mounted" every_device_healthy
check "files read back right after the catch-up" files_intact

# ---- the server dies while nothing is written --------------------------------------------
# status_says ERE: dmiofs-ctl status matches it (10 s at most).
status_says() {
	for _ in $(seq 1 100); do
		"$CTL" status "$MNT" 2>&1 | grep -Eq "$1" && return 0
		sleep 0.1
	done
	"$CTL" status "$MNT" | sed 's/^/#   /'
	return 1
}
stop_server KILL
check "an idle mount notices the lost server: the export is failed, degraded" status_says 'failed .*nbd\+unix'
check "the daemon says the connection was lost" daemon_said "the connection to its server was lost"
check "files read back right from the local image" files_intact
must "the server comes back" serve "$T/remote.img"
check "the export is reconnected, healthy" every_device_healthy
must "unmount" fs_umount

stop_server
must "dmiofs mounts with the server down" fs_mount
check "the export counts as missing: degraded" sh -c "\"$CTL\" status \"$MNT\" | grep -q 'missing .*nbd+unix'"
write_files
must "the server starts" serve "$T/remote.img"
check "the export joins and is caught up while mounted" every_device_healthy
check "files written meanwhile read back right" files_intact
check "fio's file verifies after the catch-up" sh -c "cd \"$T\" && fio --verify_state_save=0 --name=verify --filename=\"$MNT/fio.dat\" --size=16M --rw=randwrite --bs=4k --direct=1 --ioengine=libaio --verify=crc32c --verify_only=1 --randseed=4242 --output=\"$T/fio2.out\" >/dev/null && ! grep -Eiq 'verify failed|bad magic|crc32c: verify' \"$T/fio2.out\""
must "unmount" fs_umount
check "fsck.dmiofs is clean over the same list" "$FSCK" "$IMAGES"

IMAGES="$T/local.img"
must "the local image alone mounts read-only" fs_mount -o ro
check "the local image alone holds every file" files_intact
must "unmount" fs_umount
IMAGES="$URI"
must "the export alone mounts read-only" fs_mount -o ro
check "the export alone holds every file" files_intact
must "unmount" fs_umount
stop_server

# ---- reads stay local ---------------------------------------------------------------
# served_reads: the read commands the export's server logged.
served_reads() {
	grep -c ' Read id=' "$T/served.log"
}

rm -f "$T/served.log"
must "nbdkit serves the export again, 20 ms a read, logging commands" \
	serve "$T/remote.img" --filter=log --filter=delay rdelay=20ms logfile="$T/served.log"
IMAGES="$T/local.img:$URI"
must "mount the mirror" fs_mount
# Files written here, so they are in no cache: each read reaches a device.
write_files
must "unmount" fs_umount
must "mount again" fs_mount
before=$(served_reads)
ok "$([ "$before" -gt 0 ]; echo $?)" "the server's log counts reads (the mount read the export's superblock)"
check "every file reads right" files_intact
after=$(served_reads)
diag "the slow export served $((after - before)) of the reads"
ok "$([ $((after - before)) -le 8 ]; echo $?)" "the slow export serves a few reads at most (it is timed, then avoided)"
check "status shows how long the export's reads take" sh -c "\"$CTL\" status \"$MNT\" | grep -Eq '^  device 1: NBD export, connected, reads take [0-9.]+ ms'"
must "unmount" fs_umount
must "mount with -o write_mostly=URI" fs_mount -o "write_mostly=$URI"
check "status says the export is write-mostly" sh -c "\"$CTL\" status \"$MNT\" | grep -q '^  device 1: NBD export, connected, write-mostly'"
before=$(served_reads)
check "every file reads right" files_intact
after=$(served_reads)
ok "$([ "$after" -eq "$before" ]; echo $?)" "the write-mostly export serves no read"
must "unmount" fs_umount
"$DMIOFS" -f -o write_mostly=/nowhere.img "$IMAGES" "$MNT" >"$T/wm.out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "write_mostly: /nowhere.img: not a device of this file system" "$T/wm.out"
ok $? "write_mostly naming no device of the file system is refused, and says so"
sed 's/^/#   /' "$T/wm.out"
stop_server

# ---- refuse before destroying ----------------------------------------------------------
if command -v mkfs.ext4 >/dev/null; then
	truncate -s 64M "$T/ext4.img"
	mkfs.ext4 -q -F "$T/ext4.img" >/dev/null 2>&1
	truncate -s 64M "$T/other.img"
	must "nbdkit serves an image holding ext4" serve "$T/ext4.img"
	"$MKFS" -q "$T/other.img:$URI" >"$T/refuse.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && grep -q "holds a file system (ext4)" "$T/refuse.out"
	ok $? "mkfs.dmiofs refuses an export holding ext4, and says so"
	sed 's/^/#   /' "$T/refuse.out"
	check "--force wipes it and makes the file system" "$MKFS" -q --force "$T/other.img:$URI"
	stop_server
	check "ext4's signature is gone from the image" sh -c "! blkid -p \"$T/ext4.img\" | grep -q ext4"
fi

# ---- an attempt that hangs holds nothing else ---------------------------------------------------
# Three devices: two local images and an export.  The export's server
# dies and a listener that takes connections and never answers sits on
# its socket, so each attempt to reconnect hangs for nbd_timeout (20 s).
# Meanwhile a local device fails and is added back: its catch-up must not
# wait for the attempt.
truncate -s 128M "$T/h0.img" "$T/h1.img" "$T/h2.img"
must "nbdkit serves the third device" serve "$T/h2.img"
IMAGES="$T/h0.img:$T/h1.img:$URI"
must "mkfs.dmiofs on two local images and an export" "$MKFS" -q "$IMAGES"
must "mount them, -o nbd_timeout=20" fs_mount -o nbd_timeout=20
write_files
stop_server KILL
python3 -c '
import os, socket, sys, time
path, log = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(8)
held = []
while True:
    c, _ = s.accept()
    held.append(c)  # never a word: the handshake waits
    with open(log, "a") as f:
        f.write("connected\n")
' "$T/r.sock" "$T/silent.log" &
SILENT_PID=$!
check "the export is failed" status_says 'failed .*nbd\+unix'
attempt_under_way() {
	for _ in $(seq 1 100); do
		[ -s "$T/silent.log" ] && return 0
		sleep 0.1
	done
	return 1
}
check "an attempt to reconnect is under way, and hangs" attempt_under_way
check "dmiofs-ctl inject MNT 1 write-error" "$CTL" inject "$MNT" 1 write-error
head -c 65536 /dev/urandom >"$MNT/g" 2>/dev/null
sync
check "device 1 is failed" status_says '^ +1 +failed '
check "dmiofs-ctl inject MNT --clear" "$CTL" inject "$MNT" --clear
check "dmiofs-ctl add MNT the local image back" "$CTL" add "$MNT" "$T/h1.img"
check "it is caught up while the attempt still hangs (10 s at most, of its 20)" status_says '^ +1 +healthy '
check "files read back right" files_intact
kill "$SILENT_PID" 2>/dev/null
wait "$SILENT_PID" 2>/dev/null
must "unmount" fs_umount

# ---- dmiofs-ctl replace onto an export -------------------------------------------------
truncate -s 128M "$T/r0.img" "$T/r1.img" "$T/r2.img"
must "nbdkit serves an empty image" serve "$T/r2.img"
IMAGES="$T/r0.img:$T/r1.img"
must "mkfs.dmiofs on two local images" "$MKFS" -q "$T/r0.img" "$T/r1.img"
must "dmiofs mounts them" fs_mount
write_files
check "dmiofs-ctl replace MNT 1 URI --wait" "$CTL" replace "$MNT" 1 "$URI" --wait
check "the export holds device 1's copies now, healthy" sh -c "\"$CTL\" status \"$MNT\" | head -n 1 | grep -q healthy && \"$CTL\" status \"$MNT\" | grep -q 'healthy .*nbd+unix' && ! \"$CTL\" status \"$MNT\" | grep -q r1.img"
must "unmount" fs_umount
IMAGES="$URI"
must "the export alone mounts read-only" fs_mount -o ro
check "and holds every file" files_intact
must "unmount" fs_umount

# ---- the server comes back blank (its disk replaced, a memory export restarted) ---------------
IMAGES="$T/r0.img:$URI"
must "mount the local image and the export" fs_mount
stop_server KILL
rm -f "$T/r2.img" && truncate -s 128M "$T/r2.img"
must "the server comes back with a blank export" serve "$T/r2.img"
check "the daemon refuses it and says how to make it a fresh copy" daemon_said "make it a fresh copy: dmiofs-ctl replace MOUNTPOINT 2"
check "dmiofs-ctl replace MNT URI URI --wait: the export by its own name" "$CTL" replace "$MNT" "$URI" "$URI" --wait
check "the export is a healthy device again, filled from the local image" every_device_healthy
check "files read back right" files_intact
must "unmount" fs_umount
IMAGES="$URI"
must "the export alone mounts read-only" fs_mount -o ro
check "and holds every file" files_intact
must "unmount" fs_umount
stop_server

# ---- /etc/fstab: mount -a and umount, as an administrator would ------------------------
truncate -s 128M "$T/t0.img" "$T/t1.img"
must "nbdkit serves an image for the fstab line" serve "$T/t1.img"
must "mkfs.dmiofs on it" "$MKFS" -q "$T/t0.img:$URI"
SYS_SBIN=$(readlink -f /usr/sbin)
cp -a "$SYS_SBIN" "$T/sbin"
ln -sf "$DMIOFS" "$T/sbin/mount.fuse.dmiofs"
ln -sf "$CTL" "$T/sbin/umount.fuse.dmiofs"
echo "$T/t0.img:$URI $MNT fuse.dmiofs defaults,_netdev 0 0" >"$T/fstab"
# Inside the namespace: the helpers and the fstab are this test's, and the
# mount is unmounted before the namespace's last process leaves it.
cat >"$T/fstab.sh" <<SCRIPT
mount --make-rprivate /
mount --bind "$T/sbin" "$SYS_SBIN"
mount --bind "$T/fstab" /etc/fstab
mount -a -t fuse.dmiofs || exit 1
trap 'umount "$MNT" 2>/dev/null' EXIT
grep -q " $MNT fuse.dmiofs " /proc/mounts || exit 2
echo fstab >"$MNT/f" && [ "\$(cat "$MNT/f")" = fstab ] || exit 3
DMIOFS_CTL="$CTL" "$CTL" status "$MNT" | grep -q 'healthy .*nbd+unix' || exit 4
umount "$MNT" || exit 5
SCRIPT
unshare -m sh "$T/fstab.sh" >"$T/fstab.out" 2>&1
rc=$?
ok $rc "an fstab line with an NBD export and _netdev: mount -a, write, status, umount (step $rc failed if not 0)"
[ $rc -eq 0 ] || sed 's/^/#   /' "$T/fstab.out"
stop_server

# ---- TCP on loopback: a URI with a port after a local device -------------------------------
# serve_tcp IMAGE [nbdkit options...]: nbdkit's file plugin over IMAGE on
# 127.0.0.1, on the first free port of a range picked from the pid; sets
# PORT (empty when none was free) and SERVER_PID.
serve_tcp() {
	img=$1
	shift
	PORT=""
	for p in $(seq $((20000 + $$ % 20000)) $((20000 + $$ % 20000 + 20))); do
		rm -f "$T/t.pid"
		nbdkit -f -i 127.0.0.1 -p "$p" -P "$T/t.pid" "$@" file "$img" 2>"$T/nbdkit-tcp.err" &
		SERVER_PID=$!
		if server_ready -s "$T/t.pid"; then
			PORT=$p
			return 0
		fi
		wait "$SERVER_PID" 2>/dev/null
		SERVER_PID=""
	done
}

truncate -s 128M "$T/tcp-local.img" "$T/tcp-remote.img"
serve_tcp "$T/tcp-remote.img"
if [ -n "$PORT" ]; then
	IMAGES="$T/tcp-local.img:nbd://127.0.0.1:$PORT/"
	must "mkfs.dmiofs over nbd://127.0.0.1:$PORT/ after a local image" "$MKFS" -q "$IMAGES"
	must "dmiofs mounts it" fs_mount
	check "both devices are there, healthy" sh -c "\"$CTL\" status \"$MNT\" | head -n 1 | grep -q healthy && \"$CTL\" status \"$MNT\" | grep -q 'nbd://127.0.0.1:$PORT/'"
	write_files
	check "files read back right over TCP" files_intact
	must "unmount" fs_umount
	stop_server
else
	ok 1 "no free port for nbdkit on 127.0.0.1"
fi

# ---- TLS with X.509 certificates, as the README shows it ------------------------------------
# A CA of the test's own signs the server's certificate (for localhost)
# and the client's; the server checks the client's (--tls-verify-peer).
if command -v openssl >/dev/null; then
	mkdir "$T/pki"
	must "certificates made" sh "$top_srcdir/tests/make-certs.sh" "$T/pki"
	serve_tcp "$T/tcp-remote.img" --tls=require --tls-certificates="$T/pki/srv" --tls-verify-peer
	if [ -n "$PORT" ]; then
		IMAGES="$T/tcp-local.img:nbds://localhost:$PORT/?tls-certificates=$T/pki/cli"
		must "mkfs.dmiofs over nbds:// with certificates" "$MKFS" -q --force "$IMAGES"
		must "dmiofs mounts it" fs_mount
		check "both devices are there, healthy" sh -c "\"$CTL\" status \"$MNT\" | head -n 1 | grep -q healthy && \"$CTL\" status \"$MNT\" | grep -q '^  device 1: NBD export, connected'"
		write_files
		check "files read back right over TLS" files_intact
		must "unmount" fs_umount
		check "fsck.dmiofs is clean over TLS" "$FSCK" "$IMAGES"
		# A CA that did not sign the server's certificate: the export is
		# not trusted, so it counts as missing, and the mount is degraded.
		TRUSTED=$IMAGES
		IMAGES="$T/tcp-local.img:nbds://localhost:$PORT/?tls-certificates=$T/pki/stranger"
		must "mount with a CA that did not sign the server's certificate" fs_mount
		check "the untrusted export counts as missing" sh -c "\"$CTL\" status \"$MNT\" | grep -q 'missing .*nbds://localhost'"
		check "files read back right from the local image" files_intact
		must "unmount" fs_umount
		IMAGES=$TRUSTED
		must "mount with the right CA again" fs_mount
		check "the export is caught up, healthy" every_device_healthy
		check "files read back right" files_intact
		must "unmount" fs_umount
		stop_server
	else
		ok 1 "no free port for nbdkit on 127.0.0.1"
	fi
else
	diag "no openssl: skipping the certificate case"
fi

# ---- another server: qemu-nbd ------------------------------------------------------------------
# Any NBD server holds a mirror; qemu-nbd (qemu-utils) names its export
# and offers multi-conn.
if command -v qemu-nbd >/dev/null; then
	truncate -s 128M "$T/q-local.img" "$T/q-remote.img"
	rm -f "$T/q.sock"
	qemu-nbd -f raw -x data -k "$T/q.sock" --persistent --shared=4 "$T/q-remote.img" 2>"$T/qemu-nbd.err" &
	SERVER_PID=$!
	must "qemu-nbd serves an image on a unix socket" server_ready -S "$T/q.sock"
	Q_URI="nbd+unix:///data?socket=$T/q.sock"
	IMAGES="$T/q-local.img:$Q_URI"
	must "mkfs.dmiofs on a local image and a qemu-nbd export" "$MKFS" -q "$IMAGES"
	must "dmiofs mounts them" fs_mount
	write_files
	check "fio verifies random writes with qemu-nbd holding a copy" fio_verify
	must "unmount" fs_umount
	check "fsck.dmiofs is clean" "$FSCK" "$IMAGES"
	IMAGES="$Q_URI"
	must "the qemu-nbd export alone mounts read-only" fs_mount -o ro
	check "and holds every file" files_intact
	must "unmount" fs_umount
	stop_server
else
	diag "no qemu-nbd (Debian package qemu-utils): skipping it"
fi

# ---- another "machine": a network namespace behind a veth pair ------------------------
# The addresses are the test's own: a /30 of 10.213.0.0/16 picked from
# the pid, on links that exist only while it runs.
NS_NAME="dmiofs$$"
NET=$(( $$ % 16000 ))
HOST_IP="10.213.$((NET / 64)).$(( (NET % 64) * 4 + 1 ))"
FAR_IP="10.213.$((NET / 64)).$(( (NET % 64) * 4 + 2 ))"
if ip netns add "$NS_NAME" 2>/dev/null; then
	NETNS=$NS_NAME
	ip link add "$NETNS-a" type veth peer name "$NETNS-b" &&
		ip link set "$NETNS-b" netns "$NETNS" &&
		ip addr add "$HOST_IP/30" dev "$NETNS-a" && ip link set "$NETNS-a" up &&
		ip netns exec "$NETNS" ip addr add "$FAR_IP/30" dev "$NETNS-b" &&
		ip netns exec "$NETNS" ip link set "$NETNS-b" up &&
		ip netns exec "$NETNS" ip link set lo up
	ok $? "a network namespace with a veth pair ($HOST_IP here, $FAR_IP there)"
	truncate -s 128M "$T/ns-local.img" "$T/ns-remote.img"
	rm -f "$T/ns.pid"
	ip netns exec "$NETNS" nbdkit -f -i "$FAR_IP" -p 10809 -P "$T/ns.pid" file "$T/ns-remote.img" 2>"$T/ns.err" &
	SERVER_PID=$!
	ok "$(server_ready -s "$T/ns.pid"; echo $?)" "nbdkit listens in the namespace"
	IMAGES="$T/ns-local.img:nbd://$FAR_IP:10809/"
	must "mkfs.dmiofs over the veth pair" "$MKFS" -q "$IMAGES"
	must "dmiofs mounts it, -o nbd_timeout=2" fs_mount -o nbd_timeout=2
	write_files
	check "files read back right" files_intact
	# The link goes dark: nothing answers, nothing closes.  TCP alone
	# would wait minutes; after 2 s without a reply the connection is
	# dropped, the export fails, and the writes complete on the local leg.
	ip link set "$NETNS-a" down
	started=$(date +%s)
	check "writes complete with the link down" sh -c "for f in d e; do head -c 1048576 /dev/urandom >\"$MNT/\$f\" || exit 1; done; sync"
	waited=$(( $(date +%s) - started ))
	diag "the writes took $waited s"
	ok "$([ "$waited" -le 30 ]; echo $?)" "they waited for the timeout, not for TCP (30 s at most)"
	(cd "$MNT" && md5sum d e) >>"$T/sums"
	check "the export is failed: degraded" sh -c "\"$CTL\" status \"$MNT\" | grep -Eq 'failed .*nbd://$FAR_IP'"
	check "the daemon says why" grep -q "no answer for 2 s: dropping the connection" "$T/daemon.err"
	ip link set "$NETNS-a" up
	check "the link back: reconnected and caught up" every_device_healthy
	check "files read back right" files_intact
	must "unmount" fs_umount
	IMAGES="nbd://$FAR_IP:10809/"
	must "the far side alone mounts read-only" fs_mount -o ro
	check "and holds every file" files_intact
	must "unmount" fs_umount
	# A server that hangs (stopped): its kernel takes the connection, and
	# nothing answers the handshake.  The mount gives up on it after
	# nbd_timeout, not the 30 s default, and goes on degraded.
	kill -STOP "$SERVER_PID"
	IMAGES="$T/ns-local.img:nbd://$FAR_IP:10809/"
	started=$(date +%s)
	must "mount with the server hung, -o nbd_timeout=2" fs_mount -o nbd_timeout=2
	waited=$(( $(date +%s) - started ))
	ok "$([ "$waited" -le 15 ]; echo $?)" "the mount waited for nbd_timeout, not 30 s ($waited s)"
	check "the hung export counts as missing" sh -c "\"$CTL\" status \"$MNT\" | grep -Eq 'missing .*nbd://$FAR_IP'"
	kill -CONT "$SERVER_PID"
	check "the server answers again: the export joins, caught up" every_device_healthy
	check "files read back right" files_intact
	must "unmount" fs_umount
	# An unmount with the link dark: its last writes to the export go
	# unanswered, the export fails, and the unmount ends anyway.
	must "mount both again, -o nbd_timeout=2" fs_mount -o nbd_timeout=2
	ip link set "$NETNS-a" down
	started=$(date +%s)
	must "unmount with the link down" fs_umount
	waited=$(( $(date +%s) - started ))
	ok "$([ "$waited" -le 20 ]; echo $?)" "the unmount waited for the timeout, not for TCP ($waited s)"
	ip link set "$NETNS-a" up
	stop_server
else
	diag "no network namespaces here (ip netns add failed): skipping the veth case"
fi
done_testing
