#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Set the machine up, build, and run every test suite (unit and vm).
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

# A plain closing line, counted from meson's own log.
json=$build/meson-logs/testlog.json
if [[ -f $json ]]; then
	passed=$(grep -c '"result": "OK"' "$json" || true)
	failed=$(grep -cE '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$json" || true)
	skipped=$(grep -c '"result": "SKIP"' "$json" || true)
	if ((rc != 0)); then
		echo "---- tail of $build/meson-logs/testlog.txt ----"
		tail -n 80 "$build/meson-logs/testlog.txt"
		echo "----"
	fi
	echo "tests: $passed passed, $failed failed, $skipped skipped"
fi
exit "$rc"
