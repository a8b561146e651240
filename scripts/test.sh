#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Set the machine up, build, and run every test suite (unit and vm; in a
# full run also unit under ASan+UBSan and the fuzz harnesses).
# Exits non-zero if anything fails.
#
#   scripts/test.sh [MESON-TEST-ARGS...]     e.g. scripts/test.sh --suite vm
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build

"$top/scripts/setup.sh"
"$top/scripts/build.sh" "$build"

rc=0
meson test -C "$build" --print-errorlogs "$@" || rc=$?
dirs=("$build")

# The unit tests again under AddressSanitizer and UBSan (full runs only).
if (($# == 0)); then
	asan=$top/build-asan
	if [[ ! -f $asan/build.ninja ]]; then
		meson setup "$asan" "$top" -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null
	fi
	ninja -C "$asan" >/dev/null
	meson test -C "$asan" --suite unit --print-errorlogs || rc=$?
	dirs+=("$asan")

	# Each libFuzzer harness for a short fixed budget (clang build).
	fuzz=$top/build-fuzz
	if [[ ! -f $fuzz/build.ninja ]]; then
		CC=clang meson setup "$fuzz" "$top" -Dfuzz=enabled >/dev/null
	fi
	ninja -C "$fuzz" >/dev/null
	meson test -C "$fuzz" --suite fuzz --print-errorlogs || rc=$?
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
