#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Set the machine up, build, and run every test suite (unit and vm; in a
# full run also unit under ASan+UBSan and the fuzz harnesses).
# Exits non-zero if anything fails, or if fewer tests ran than the build
# registered (meson test --list).
#
#   scripts/test.sh [MESON-TEST-ARGS...]     e.g. scripts/test.sh --suite vm
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build

"$top/scripts/setup.sh"
"$top/scripts/build.sh" "$build"

rc=0
# all_ran DIR [MESON-TEST-ARGS...]: after `meson test` in DIR, every test
# the same arguments select has a result in its testlog.
all_ran() {
	local dir=$1 want ran
	shift
	want=$(meson test -C "$dir" --no-rebuild --list "$@" 2>/dev/null | grep -c ' / ' || true)
	ran=$(grep -c '"result"' "$dir/meson-logs/testlog.json" 2>/dev/null || true)
	if ((want == 0 || ran < want)); then
		echo "test.sh: $dir: $ran of the $want registered tests ran"
		rc=1
	fi
}

meson test -C "$build" --print-errorlogs "$@" || rc=$?
all_ran "$build" "$@"
dirs=("$build")

# The unit tests again under AddressSanitizer and UBSan (full runs only).
if (($# == 0)); then
	asan=$top/build-asan
	if [[ ! -f $asan/build.ninja ]]; then
		meson setup "$asan" "$top" -Db_sanitize=address,undefined \
			-Db_lundef=false -Dtests=enabled >/dev/null
	fi
	ninja -C "$asan" >/dev/null
	meson test -C "$asan" --suite unit --print-errorlogs || rc=$?
	all_ran "$asan" --suite unit
	dirs+=("$asan")

	# Each libFuzzer harness for a short fixed budget (clang build).
	fuzz=$top/build-fuzz
	if [[ ! -f $fuzz/build.ninja ]]; then
		CC=clang meson setup "$fuzz" "$top" -Dfuzz=enabled >/dev/null
	fi
	ninja -C "$fuzz" >/dev/null
	meson test -C "$fuzz" --suite fuzz --print-errorlogs || rc=$?
	all_ran "$fuzz" --suite fuzz
	dirs+=("$fuzz")
fi

# A plain closing line, counted from meson's own logs.
passed=0 failed=0 skipped=0
for d in "${dirs[@]}"; do
	json=$d/meson-logs/testlog.json
	[[ -f $json ]] || continue
	passed=$((passed + $(grep -c '"result": "OK"' "$json" || true)))
	failed=$((failed + $(grep -cE '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$json" || true)))
	skipped=$((skipped + $(grep -c '"result": "SKIP"' "$json" || true)))
	if ((rc != 0)); then
		echo "---- tail of $d/meson-logs/testlog.txt ----"
		tail -n 80 "$d/meson-logs/testlog.txt"
		echo "----"
	fi
done
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$rc"
