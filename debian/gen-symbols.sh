#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Print libvduse0's symbols file (debian/libvduse0.symbols) made from the
# library's version script: every symbol of node LIBVDUSE_X.Y appeared in
# version X.Y.0 (LIBVDUSE_X.Y.Z: X.Y.Z). debian/rules runs it at every build
# and dh_makeshlibs (dpkg-gensymbols -c4) fails the build when the library
# exports anything else, so the map is the one list to keep current.
#
#   debian/gen-symbols.sh [lib/libvduse.map]
set -eu

map=${1:-lib/libvduse.map}
[ -r "$map" ] || { echo "gen-symbols: cannot read $map" >&2; exit 1; }

echo "libvduse.so.0 libvduse0 #MINVER#"
echo "* Build-Depends-Package: libvduse-dev"
# Drop comments, then read node names ("NODE {"), and the names listed
# ("name;") in a node's global: part.
sed -e 's,/\*.*\*/,,g' -e 's,#.*,,' "$map" | awk '
	function fail(msg) { print "gen-symbols: " FILENAME ":" NR ": " msg > "/dev/stderr"; bad = 1; exit 1 }
	/^[ \t]*$/ { next }
	/^[ \t]*[A-Za-z0-9_.]+[ \t]*\{/ {
		node = $1; sub(/\{.*/, "", node)
		ver = node
		if (sub(/^LIBVDUSE_/, "", ver) == 0 || ver !~ /^[0-9]+(\.[0-9]+)+$/)
			fail("node " node " is not LIBVDUSE_X.Y")
		if (split(ver, parts, ".") == 2) ver = ver ".0"
		printf " %s@%s %s\n", node, node, ver
		scope = ""; nodes++; next
	}
	/^[ \t]*(global|local):/ { scope = $1; sub(/:.*/, "", scope); next }
	/^[ \t]*\}/ { node = ""; next }
	{
		if (node == "") fail("a line outside a node: " $0)
		if (scope != "global") next
		sym = $1; sub(/;.*/, "", sym)
		if (sym !~ /^[A-Za-z_][A-Za-z0-9_]*$/) fail("not a symbol name: " $0)
		printf " %s@%s %s\n", sym, node, ver
		syms++
	}
	END {
		if (bad) exit 1
		if (!nodes || !syms) { print "gen-symbols: no symbols in the map" > "/dev/stderr"; exit 1 }
	}'
