#!/bin/sh
# SPDX-License-Identifier: MIT
# The public ABI agrees with itself: every vduse_* function declared in the
# header is in the symbol map and vice versa, and every map symbol is
# exported by the shared library (and nothing else named vduse_* is).
# Usage: abi-check.sh libvduse.h libvduse.map libvduse.so
set -eu
header=$1 map=$2 so=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Preprocess (drops comments), then take identifiers called like functions.
${CC:-cc} -E -P -x c "$header" |
	grep -oE '\bvduse_[A-Za-z0-9_]+[[:space:]]*\(' |
	sed -E 's/[[:space:]]*\($//' | sort -u >"$tmp/header"

# Names between "global:" and "local:" in the version script.
sed -n '/global:/,/local:/p' "$map" | grep -vE 'global:|local:' |
	tr -d ' \t;' | grep -v '^$' | sort -u >"$tmp/map"

nm -D --defined-only "$so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' |
	grep '^vduse_' | sort -u >"$tmp/so"

status=0
report() {
	if [ -s "$2" ]; then
		echo "$1:"; sed 's/^/  /' "$2"; status=1
	fi
}
for f in header map so; do
	[ -s "$tmp/$f" ] || { echo "no symbols found in $f"; exit 1; }
done
comm -23 "$tmp/header" "$tmp/map" >"$tmp/a"
report "declared in $header but missing from $map" "$tmp/a"
comm -13 "$tmp/header" "$tmp/map" >"$tmp/b"
report "in $map but not declared in $header" "$tmp/b"
comm -23 "$tmp/map" "$tmp/so" >"$tmp/c"
report "in $map but not exported by $so" "$tmp/c"
comm -13 "$tmp/map" "$tmp/so" >"$tmp/d"
report "exported by $so but not in $map" "$tmp/d"
[ $status -eq 0 ] && echo "ABI OK: $(wc -l <"$tmp/map") symbols"
exit $status
