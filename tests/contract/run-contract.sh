#!/bin/sh
# Build tests/contract/contract.c as an outside program would, with
# `pkg-config --cflags --libs dmio`, and run it.  Under `make check` the
# library is not installed yet, so pkg-config is pointed at a
# dmio-uninstalled.pc for this build tree (pkg-config prefers *-uninstalled
# files); under `make installcheck` it uses the installed dmio.pc.
set -u
: "${top_srcdir:?}" "${top_builddir:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/dmio-contract-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

if [ -z "${DMIO_INSTALLED_PKGCONFIG:-}" ]; then
	libs="$top_builddir/src/dmio/.libs"
	cat >"$work/dmio-uninstalled.pc" <<PC
Name: dmio
Description: libdmio from the build tree
Version: 0
Requires.private: glib-2.0 libnbd
Libs: -L$libs -ldmio -Wl,-rpath,$libs
Cflags: -I$top_srcdir/include
PC
	PKG_CONFIG_PATH="$work"
else
	PKG_CONFIG_PATH="$DMIO_INSTALLED_PKGCONFIG"
fi
export PKG_CONFIG_PATH

flags=$(pkg-config --cflags --libs dmio) || { echo "Bail out! pkg-config does not know dmio"; exit 1; }
# shellcheck disable=SC2086
if ! ${CC:-cc} ${CFLAGS:-} -Wall -Wextra -Werror -o "$work/contract" "$top_srcdir/tests/contract/contract.c" \
	$flags -lpthread ${LDFLAGS:-} >"$work/cc.out" 2>&1; then
	sed 's/^/# /' "$work/cc.out"
	echo "Bail out! the contract program does not compile against <dmio.h>"
	exit 1
fi
echo "# compiled with: $flags"
if [ -n "${DMIO_INSTALLED_PKGCONFIG:-}" ]; then
	export LD_LIBRARY_PATH="${DMIO_INSTALLED_LIBDIR:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
exec "$work/contract" "$work" "$@"
