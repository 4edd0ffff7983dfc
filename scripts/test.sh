#!/bin/sh
# The whole test suite: a warnings-as-errors build with every unit and
# integration test, the same under AddressSanitizer and
# UndefinedBehaviorSanitizer, and `make distcheck` (which installs the
# library and compiles an outside program against it with pkg-config).
# Ends with one line: "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)
out=${DMIOFS_TEST_BUILD:-$top/_build-test}
status=0

# Whatever happens, the last line counts what ran.
give_up() {
	echo "$1" >&2
	echo "0 passed, 1 failed"
	exit 1
}
"$top/scripts/install-deps.sh" || give_up "installing dependencies failed"
autoreconf -fi >/dev/null 2>&1 || give_up "autoreconf failed"
rm -rf "$out"
mkdir -p "$out/plain" "$out/asan"

run_suite() { # name, build dir, configure flags...
	name=$1 dir=$2
	shift 2
	echo "== $name: configure $*"
	(cd "$dir" && "$top/configure" -q "$@" >configure.out 2>&1) || { cat "$dir/configure.out"; status=1; return; }
	echo "== $name: build"
	(cd "$dir" && make -j"$jobs" >make.out 2>&1) || { tail -n 40 "$dir/make.out"; status=1; return; }
	echo "== $name: make check"
	(cd "$dir" && make -j"$jobs" check >check.out 2>&1) || status=1
	grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP|XFAIL|# )' "$dir/check.out" | sed "s/^/   [$name] /"
	for log in $(grep -lE '^:test-result: (FAIL|ERROR|XPASS)' $(find "$dir/tests" -name '*.trs') 2>/dev/null); do
		echo "---- ${log%.trs}.log"
		tail -n 60 "${log%.trs}.log"
	done
}

run_suite plain "$out/plain" --enable-werror
run_suite asan "$out/asan" --enable-werror --enable-sanitizers

echo "== distcheck"
if (cd "$out/plain" && make -j"$jobs" distcheck >distcheck.out 2>&1); then
	distcheck=PASS
else
	distcheck=FAIL
	status=1
	tail -n 60 "$out/plain/distcheck.out"
fi
echo "   distcheck: $distcheck"

# Count every test point (TAP) of both suites, and distcheck as one.
passed=$(cat $(find "$out" -name '*.trs' -not -path '*/dmiofs-*/*') /dev/null | grep -cE '^:test-result: (PASS|XFAIL)')
failed=$(cat $(find "$out" -name '*.trs' -not -path '*/dmiofs-*/*') /dev/null | grep -cE '^:test-result: (FAIL|ERROR|XPASS)')
skipped=$(cat $(find "$out" -name '*.trs' -not -path '*/dmiofs-*/*') /dev/null | grep -cE '^:test-result: SKIP')
if [ "$distcheck" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
[ "$failed" -eq 0 ] || status=1
echo "($skipped skipped)"
echo "$passed passed, $failed failed"
exit $status
