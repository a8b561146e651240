#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Configure (if needed) and build the project with meson.
#
#   scripts/build.sh [BUILD-DIR]      (default: build)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}

if [[ ! -f $build/build.ninja ]]; then
	meson setup "$build" "$top"
fi
ninja -C "$build"
