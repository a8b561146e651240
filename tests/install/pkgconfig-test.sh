#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Install the project into a scratch root and build a program against it with
# nothing but `pkg-config --cflags --libs libvduse`, then run it.
#   pkgconfig-test.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail

src=$1
build=$2
# shellcheck source=tests/install/scratch-install.sh
. "$src/tests/install/scratch-install.sh"
# shellcheck disable=SC2086 # $flags is a list of words
cc -Wall -Werror -o "$root/prog" "$src/tests/install/consumer.c" $flags
out=$(LD_LIBRARY_PATH=$libdir "$root/prog")
want=$(meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
if [[ $out != "libvduse $want -ENODEV" && $out != "libvduse $want -EACCES" && $out != "libvduse $want ok" ]]; then
	echo "FAIL: consumer printed '$out' (library version $want)"
	exit 1
fi
echo "PASS: built with pkg-config flags '$flags'; consumer printed '$out'"
