#!/bin/sh
# The main job, from a fresh Debian 12 machine: install what is needed,
# build, install, and run the libdmio demo on two image files: one write
# fanned out to both in a single dm-io request, each copy read back.
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
mkdir -p "$demo"
echo "== libdmio demo on $demo/disk0.img and $demo/disk1.img (64 MiB each)"
dmio-demo "$demo/disk0.img" "$demo/disk1.img"
echo
echo "== the same write with a fault injected: writes to disk1 fail with EIO"
dmio-demo --inject-device 1 --inject action=eio,ops=write "$demo/disk0.img" "$demo/disk1.img" || true
