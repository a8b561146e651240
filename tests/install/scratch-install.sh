# SPDX-License-Identifier: MIT
#
# Sourced by the tests that build a program against the installed library
# with nothing but pkg-config: installs the build into a scratch root
# (removed on exit) and sets
#   root    the scratch root
#   flags   `pkg-config --cflags --libs libvduse` pointing into it
#   libdir  the library's directory in it (for LD_LIBRARY_PATH)
# The caller has set `src` and `build` and runs under `set -euo pipefail`.

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

meson install -C "$build" --destdir "$root" --no-rebuild >"$root/install.log" 2>&1 ||
	{ cat "$root/install.log"; exit 1; }
prefix=$(meson introspect "$build" --buildoptions |
	python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
pc=$(find "$root" -name libvduse.pc | head -n 1)
[[ -n $pc ]] || { echo "FAIL: libvduse.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --define-variable=prefix="$root$prefix" --cflags --libs libvduse)
libdir=$(pkg-config --define-variable=prefix="$root$prefix" --variable=libdir libvduse)
