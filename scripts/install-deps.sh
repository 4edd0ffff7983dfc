#!/bin/sh
# Install the Debian 12 packages dmiofs needs to build, test and benchmark.
# Everything comes from Debian's archive; nothing is downloaded elsewhere.
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config
libglib2.0-dev libjson-glib-dev libfuse3-dev fuse3 libaio-dev libblkid-dev libisal-dev libnbd-dev nbdkit
fio gnuplot-nox attr util-linux python3 openssl qemu-utils"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
