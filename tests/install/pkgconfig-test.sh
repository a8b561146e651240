#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Install the project into a scratch root and build a program against it with
# nothing but `pkg-config --cflags --libs libvduse`, then run it.
#   pkgconfig-test.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail

src=$1
build=$2
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
cc -Wall -Werror -o "$root/prog" "$src/tests/install/consumer.c" $flags
libdir=$(pkg-config --define-variable=prefix="$root$prefix" --variable=libdir libvduse)
out=$(LD_LIBRARY_PATH=$libdir "$root/prog")
want=$(meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
if [[ $out != "libvduse $want -ENODEV" && $out != "libvduse $want -EACCES" && $out != "libvduse $want ok" ]]; then
	echo "FAIL: consumer printed '$out' (library version $want)"
	exit 1
fi
echo "PASS: built with pkg-config flags '$flags'; consumer printed '$out'"
