#!/bin/sh
# Run one test program with a TMPDIR of its own and remove that folder
# afterwards, whatever the outcome: a test that aborts on a failed
# assertion skips its own cleanup, and must not leave image files behind.
set -u
base=${TMPDIR:-/tmp}
dir=$(mktemp -d "$base/dmiofs-test-XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
TMPDIR=$dir
export TMPDIR
"$@"
