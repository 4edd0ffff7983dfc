# mount.sh - sourced by the file-system benchmarks (fs-bench.sh,
# meta-rss.sh): a work folder removed on exit, and a dmiofs daemon in the
# foreground on the two images a.img and b.img in it, always unmounted.
# Needs BUILD (a build directory).

# bench_workdir PARENT NAME: sets W (the work folder) and MNT.
bench_workdir() {
	W=$(mktemp -d "$1/$2.XXXXXX")
	MNT=$W/mnt
	PID=""
	trap bench_cleanup EXIT INT TERM
	mkdir -p "$MNT"
}

bench_cleanup() {
	if [ -n "$PID" ]; then fusermount3 -u "$MNT" 2>/dev/null; wait "$PID" 2>/dev/null || true; fi
	rm -rf "$W"
}

# Mount and wait until the kernel shows the mount; PID is the daemon's.
bench_mount() {
	"$BUILD/src/fuse/dmiofs" -f "$W/a.img:$W/b.img" "$MNT" 2>>"$W/daemon.err" &
	PID=$!
	while ! grep -q " $MNT fuse" /proc/mounts; do
		if ! kill -0 "$PID" 2>/dev/null; then
			PID=""
			echo "the mount failed:" >&2
			cat "$W/daemon.err" >&2
			exit 1
		fi
		sleep 0.1
	done
}

bench_umount() {
	fusermount3 -u "$MNT"
	wait "$PID"
	PID=""
}
