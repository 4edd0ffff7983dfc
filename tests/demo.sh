#!/bin/sh
# The README's main job, as a test: dmio-demo fans one write out to two
# image files and reads each back; with a write fault on one device, its
# error bit shows and the copies differ.  Output is TAP.
set -u
: "${top_builddir:?}"
demo="$top_builddir/src/tools/dmio-demo"
work=$(mktemp -d "${TMPDIR:-/tmp}/dmio-demo-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }

out=$("$demo" "$work/a.img" "$work/b.img" 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
ok $rc "demo exits 0 on two healthy images"
echo "$out" | grep -q "fanned out to 2 region(s) in one request: ok, error bits 0x0"; ok $? "the write reports no error bits"
echo "$out" | grep -q "every copy holds the same bytes"; ok $? "both copies hold the same bytes"
[ "$(stat -c %s "$work/a.img")" -eq $((64 << 20)) ]; ok $? "image files are created at 64 MiB"

out=$("$demo" --inject-device 1 --inject action=eio,ops=write "$work/a.img" "$work/c.img" 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
[ $rc -eq 1 ]; ok $? "demo exits 1 when a copy differs"
echo "$out" | grep -q "error bits 0x2"; ok $? "the failed device's bit (bit 1) is set"
echo "$out" | grep -q "read back device 1: ok, error bits 0x0, DIFFERENT"; ok $? "device 1 did not receive the write"

"$demo" --inject action=nonsense "$work/a.img" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ]; ok $? "a bad fault rule is refused with exit status 2"
"$demo" "$work" >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ]; ok $? "a directory is refused"
echo "1..$n"
exit $failed
