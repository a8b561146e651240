#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The programs the docs show build against the installed library with
# nothing but pkg-config: install the project into a scratch root, then
# compile and link with `cc -Wall -Werror $(pkg-config --cflags --libs
# libvduse)` docs/tutorial.md's examples/tutorial/ramdisk.c and the README's
# "Using it" snippet (extracted from README.md), and run each: without VDUSE
# on the host each must fail cleanly, saying why.
#   doc-build.sh SOURCE_ROOT BUILD_ROOT
set -euo pipefail

src=$1
build=$2
# shellcheck source=tests/install/scratch-install.sh
. "$src/tests/install/scratch-install.sh"

"$src/tests/unit/doc-code.py" extract "$src/README.md" "Using it" "$root/readme.c"

fails=0
# build NAME SOURCE EXPECTED-MESSAGE
build() {
	local name=$1 file=$2 want=$3 out rc
	# shellcheck disable=SC2086 # $flags is a list of words
	if ! cc -Wall -Werror -o "$root/$name" "$file" $flags; then
		echo "FAIL: $name ($file) does not build with '$flags'"
		fails=$((fails + 1))
		return
	fi
	if [[ -e /dev/vduse/control ]]; then
		echo "ok: $name builds (not run: this host has VDUSE)"
		return
	fi
	rc=0
	out=$(LD_LIBRARY_PATH=$libdir timeout 20 "$root/$name" 2>&1) || rc=$?
	if [[ $rc != 1 || $out != *"$want"* ]]; then
		echo "FAIL: $name exited with $rc (want 1) and printed:"
		echo "$out"
		echo "(want a line with '$want')"
		fails=$((fails + 1))
		return
	fi
	echo "ok: $name builds, and without VDUSE says: ${out//$'\n'/ | }"
}
build ramdisk "$src/examples/tutorial/ramdisk.c" "ramdisk: ramdisk0: No such device"
build readme "$root/readme.c" "blk0: No such device"
exit "$fails"
