#!/bin/sh
# The main job: mkfs two images, mount, write and read files, remount,
# and find everything still there, on both mirrors.
. "$(dirname "$0")/lib.sh"
require_fuse

images 2 256M
check "mkfs.dmiofs makes a two-device file system" fs_mkfs
check "dmiofs mounts it" fs_mount
head -c 5000000 /dev/urandom >"$T/data"
check "a file is written" cp "$T/data" "$MNT/file"
check "it reads back the same" cmp "$T/data" "$MNT/file"
check "a directory is made" mkdir "$MNT/dir"
check "status says healthy" sh -c "getfattr --only-values --absolute-names -n user.dmio.status '$MNT' | grep -qx 'status=healthy'"
check "the layout puts every extent on two distinct devices" sh -c "
	'$CTL' layout '$MNT/file' >'$T/layout' &&
	awk '/^extent /{n++} END{exit n<1}' '$T/layout' &&
	awk '/^region /{split(\$2,e,\"=\"); split(\$4,d,\"=\"); seen[e[2]\" \"d[2]]++; per[e[2]]++}
	     END{for (x in per) if (per[x]!=2) exit 1; for (y in seen) if (seen[y]!=1) exit 1}' '$T/layout'"
check "unmount is clean" fs_umount
check "it mounts again" fs_mount
check "the file survived the remount" cmp "$T/data" "$MNT/file"
check "the directory survived the remount" test -d "$MNT/dir"
check "unmount again" fs_umount

# Devices of different sizes: chunks go where the space is, every chunk on
# two distinct devices, and the capacity is what two copies allow.
rm -f "$T"/d*.img
truncate -s 96M "$T/d0.img"
truncate -s 192M "$T/d1.img"
truncate -s 288M "$T/d2.img"
IMAGES="$T/d0.img:$T/d1.img:$T/d2.img"
check "mkfs on three devices of 96, 192 and 288 MiB" fs_mkfs
check "mount them" fs_mount
check "the capacity is about half of the total (288 MiB), not limited by the smallest" sh -c "
	python3 -c \"import os; s = os.statvfs('$MNT'); c = s.f_blocks * s.f_frsize >> 20; assert 250 <= c <= 288, c\""
head -c 200000000 /dev/urandom >"$T/big"
check "200 MB fit (more than twice the smallest device)" cp "$T/big" "$MNT/big"
check "and read back" cmp "$T/big" "$MNT/big"
check "every extent is on two distinct devices, all three used" sh -c "
	'$CTL' layout '$MNT/big' >'$T/layout3' &&
	awk '/^region /{split(\$2,e,\"=\"); split(\$4,d,\"=\"); seen[e[2]\" \"d[2]]++; per[e[2]]++; used[d[2]]=1}
	     END{for (x in per) if (per[x]!=2) exit 1; for (y in seen) if (seen[y]!=1) exit 1; if (length(used)!=3) exit 1}' '$T/layout3'"
check "unmount" fs_umount
# libfuse's worker threads (-o no_event_loop): max_threads bounds them
# under a load that makes the default start more (threads the daemon and
# GLib's pools name themselves aside).  As
# many may stay idle as may work: libfuse counts a worker that ends for
# being idle one too many before its thread is gone, so with fewer a
# count can catch one ending and its replacement at once.
workers() { grep -cx dmiofs /proc/"$DAEMON_PID"/task/*/comm 2>/dev/null | awk -F: '{n += $NF} END {print n + 0}'; }
any_alive() { for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
peak_under_load() {
	peak=0 writers=""
	for i in 1 2 3 4 5 6 7 8; do
		dd if=/dev/zero of="$MNT/load$i" bs=4k count=2000 oflag=direct status=none &
		writers="$writers $!"
	done
	while any_alive $writers; do
		n=$(workers)
		[ "$n" -gt "$peak" ] && peak=$n
		sleep 0.02
	done
	for p in $writers; do wait "$p"; done
	echo "$peak"
}
check "mount with no_event_loop,max_threads=2,max_idle_threads=2,no_clone_fd" \
	fs_mount -o no_event_loop,max_threads=2,max_idle_threads=2,no_clone_fd
rest=$(workers)
limited=$(peak_under_load)
diag "unnamed threads at rest $rest, at most $limited under 8 writers"
check "8 writers find at most 2 worker threads more than at rest" test "$limited" -le $((rest + 2))
check "what they wrote is there" sh -c "for i in 1 2 3 4 5 6 7 8; do cmp -n 8192000 '$MNT/load'\$i /dev/zero || exit 1; done"
check "unmount" fs_umount
check "mount with no_event_loop and the default threads" fs_mount -o no_event_loop
unlimited=$(peak_under_load)
diag "at most $unlimited under 8 writers by default"
check "by default the same load starts more threads" test "$unlimited" -gt "$limited"
check "unmount" fs_umount
# The event loop (the default): the thread that reaps the data's I/O
# reads the writes from /dev/fuse and answers them, so the same load
# starts no worker thread at all.
check "mount with the event loop" fs_mount
rest=$(workers)
peak=$(peak_under_load)
diag "unnamed threads at rest $rest, at most $peak under 8 writers"
check "8 writers start no worker thread" test "$peak" -le "$rest"
check "what they wrote is there" sh -c "for i in 1 2 3 4 5 6 7 8; do cmp -n 8192000 '$MNT/load'\$i /dev/zero || exit 1; done"
check "unmount" fs_umount
# Three event loops: two more threads, each a data client's, and the
# requests of four jobs verify whichever loop serves them.
check "mount with event_loops=3" fs_mount -o event_loops=3
# (the loops start once the mount is reported done: wait for them)
workers_reach() {
	i=0
	while [ "$(workers)" -ne "$1" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	diag "unnamed threads at rest: $rest with one loop, $(workers) with three"
	test "$(workers)" -eq "$1"
}
check "event_loops=3 runs two threads more than one loop" workers_reach $((rest + 2))
loops_fio() {
	rm -f "$MNT"/load*
	(cd "$T" && fio --name=loops --directory="$MNT" --size=8M --numjobs=4 --rw=randrw --bs=4k --ioengine=libaio \
		--direct=1 --iodepth=16 --verify=crc32c --randseed=11 --output="$T/loops.out")
	fio_output_clean "$T/loops.out" $?
}
if command -v fio >/dev/null; then
	check "four fio jobs' direct random reads and writes verify" loops_fio
else
	ok 0 "four fio jobs' direct random reads and writes verify # SKIP no fio"
fi
check "unmount" fs_umount
check "event_loops=9 is refused" sh -c "! '$DMIOFS' -f -o event_loops=9 '$IMAGES' '$MNT' 2>'$T/err' && grep -q 'event_loops=9: want a number of event loops, 1 to 8' '$T/err' && ! grep -q ' $MNT fuse' /proc/mounts"
# max_background reaches the kernel: the FUSE control file system shows
# each connection's limit (mounted here if it is not).
CONNS=/sys/fs/fuse/connections
CTL_MOUNTED=""
if [ -d "$CONNS" ] && ! grep -q " $CONNS fusectl" /proc/mounts && mount -t fusectl fusectl "$CONNS" 2>/dev/null; then
	CTL_MOUNTED=yes
fi
check "mount with max_background=40" fs_mount -o max_background=40
conn_limit() {
	cat "$CONNS/$(mountpoint -d "$MNT" | cut -d: -f2)/max_background"
}
deep_fio() {
	rm -f "$MNT/big" "$MNT"/load* # room
	# from $T: fio leaves its verify state in the current folder
	(cd "$T" && fio --name=bg --filename="$MNT/bg" --size=16M --rw=randrw --bs=4k --ioengine=libaio \
		--direct=1 --iodepth=32 --verify=crc32c --randseed=7 --output="$T/bg.out")
	fio_output_clean "$T/bg.out" $?
}
if grep -q " $CONNS fusectl" /proc/mounts; then
	check "the kernel takes 40 background requests" test "$(conn_limit)" = 40
	fs_umount
	fs_mount
	check "by default, 64" test "$(conn_limit)" = 64
else
	ok 0 "the kernel takes 40 background requests # SKIP no FUSE control file system"
	ok 0 "by default, 64 # SKIP no FUSE control file system"
fi
if command -v fio >/dev/null; then
	check "fio's queue of 32 direct random reads and writes verifies" deep_fio
else
	ok 0 "fio's queue of 32 direct random reads and writes verifies # SKIP no fio"
fi
check "unmount" fs_umount
[ -z "$CTL_MOUNTED" ] || umount "$CONNS"
check "max_background=0 is refused" sh -c "! '$DMIOFS' -f -o max_background=0 '$IMAGES' '$MNT' 2>'$T/err' && grep -q 'max_background=0: want a number of requests, 1 to 65535' '$T/err' && ! grep -q ' $MNT fuse' /proc/mounts"
check "max_threads=0 is refused" sh -c "! '$DMIOFS' -f -o max_threads=0 '$IMAGES' '$MNT' 2>'$T/err' && grep -q 'max_threads=0: want a number of threads, 1 to 1024' '$T/err' && ! grep -q ' $MNT fuse' /proc/mounts"
done_testing
