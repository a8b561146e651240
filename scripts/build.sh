#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Configure (if needed) and build the project with meson.  The unit tests
# and the examples are enabled explicitly: a missing cmocka or liburing
# fails here instead of silently dropping their suites.
#
#   scripts/build.sh [BUILD-DIR]      (default: build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}

opts=(-Dtests=enabled -Dexamples=enabled)
if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" "$top" "${opts[@]}"
else
	meson configure "$build" "${opts[@]}"
fi
ninja -C "$build"
