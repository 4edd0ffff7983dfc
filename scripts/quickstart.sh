#!/bin/sh
# The main job, from a fresh Debian 12 machine: install what is needed,
# build and install dmiofs, make a two-device mirrored file system on two
# image files, mount it, put a file in it and show its status.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh"
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p build
cd build
[ -f Makefile ] || ../configure --prefix=/usr/local >/dev/null
make -j"$(nproc)" >/dev/null
make install >/dev/null
ldconfig 2>/dev/null || true

demo=${DMIOFS_DEMO_DIR:-/var/tmp/dmiofs-demo}
mnt=$demo/mnt
mkdir -p "$mnt"
if grep -q " $mnt fuse.dmiofs" /proc/mounts; then
	umount "$mnt" # umount.fuse.dmiofs: returns once the daemon is done
fi
truncate -s 1G "$demo/disk0.img" "$demo/disk1.img"
echo "== mkfs.dmiofs on two 1 GiB image files"
mkfs.dmiofs --force --preallocate --label demo "$demo/disk0.img" "$demo/disk1.img"
echo
echo "== mount at $mnt"
dmiofs "$demo/disk0.img:$demo/disk1.img" "$mnt"
head -c 8M /dev/urandom >"$mnt/hello.bin"
sync "$mnt/hello.bin"
echo "wrote $mnt/hello.bin (8 MiB); its layout (every extent on both devices):"
getfattr --only-values --absolute-names -n user.dmio.layout "$mnt/hello.bin" | head -n 4
echo
echo "== dmiofs-ctl status $mnt"
dmiofs-ctl status "$mnt"
echo
echo "Mounted at $mnt; unmount with: umount $mnt"
