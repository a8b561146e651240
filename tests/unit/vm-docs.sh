#!/bin/sh
# SPDX-License-Identifier: MIT
#
# docs/vm-tests.md must name every VM test the meson files register
# (a test('vm-...') anywhere in the tree).  Usage: vm-docs.sh SOURCE-ROOT
set -u
top=$1
doc=$top/docs/vm-tests.md
[ -f "$doc" ] || { echo "FAIL: $doc is missing"; exit 1; }
names=$(cd "$top" && find . -name meson.build -not -path './build*' -exec \
	sed -n "s/^ *test('\(vm-[^']*\)'.*/\1/p" {} +)
[ -n "$names" ] || { echo "FAIL: no vm-* test found in the meson files"; exit 1; }
fails=0
for n in $names; do
	if grep -q -- "\*\*$n\*\*" "$doc"; then
		echo "ok   $n"
	else
		echo "FAIL $n is not described in docs/vm-tests.md (as **$n**)"
		fails=$((fails + 1))
	fi
done
exit "$fails"
