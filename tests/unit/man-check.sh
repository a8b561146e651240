#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The man pages in man/ agree with the library and render cleanly:
#  - every symbol of the version script has a section-3 page named after it;
#  - the NAME section of a section-3 page lists only exported functions and
#    public types of the header, and the page's own name among them;
#  - every vduse_*() call written in a page (SYNOPSIS, examples, text) is an
#    exported function, and every cross-reference "vduse_x(3)" or
#    "libvduse(7)" has a page;
#  - a link page is exactly ".so man3/TARGET.3" and TARGET's NAME lists it;
#  - .TH matches the file name and section;
#  - every other page renders with no warning under groff -ww -z -man;
#  - man/meson.build installs every page.
#  - with INCLUDE-DIR and LIBRARY, each man3 SYNOPSIS agrees with the
#    header, and the example program of libvduse(7) compiles and links
#    ($CC, warnings as errors).
# Usage: man-check.sh MAN-DIR libvduse.map libvduse.h [INCLUDE-DIR LIBRARY]
set -u
man=$1 map=$2 header=$3 incdir=${4:-} lib=${5:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
	echo "FAIL $*"
	fails=$((fails + 1))
}

command -v groff >/dev/null 2>&1 ||
	{ echo "FAIL groff is not installed (Debian: groff-base)"; exit 1; }
[ -f "$man/meson.build" ] || { echo "FAIL no $man/meson.build"; exit 1; }

# Names between "global:" and "local:" in the version script.
sed -n '/global:/,/local:/p' "$map" | grep -vE 'global:|local:' |
	tr -d ' \t;' | grep -v '^$' | sort -u >"$tmp/map"
[ -s "$tmp/map" ] || { echo "FAIL no symbols found in $map"; exit 1; }

# Public types: struct and enum definitions, function pointer typedefs.
{
	sed -nE 's/^(struct|enum) (vduse_[A-Za-z0-9_]+) \{.*/\2/p' "$header"
	sed -nE 's/^typedef .*\(\*(vduse_[A-Za-z0-9_]+)\).*/\1/p' "$header"
} | sort -u >"$tmp/types"
[ -s "$tmp/types" ] || { echo "FAIL no public types found in $header"; exit 1; }
sort -u "$tmp/map" "$tmp/types" >"$tmp/names"

# 1. Every exported symbol has a page.
while read -r sym; do
	[ -f "$man/$sym.3" ] || fail "$sym is exported but has no page $man/$sym.3"
done <"$tmp/map"

# The names of a page's NAME section (before "\-"), one per line.
name_section() {
	awk '/^\.SH /{ on = ($2 == "NAME") ; next } on' "$1" |
		tr '\n' ' ' | sed 's/\\-.*//' | tr ', ' '\n\n' | grep -v '^$'
}

pages=0
for f in "$man"/*.[378]; do
	[ -f "$f" ] || continue
	pages=$((pages + 1))
	base=${f##*/}
	sec=${base##*.}
	page=${base%.*}

	grep -qF "'$base'" "$man/meson.build" ||
		fail "$base is not installed by $man/meson.build"

	first=$(grep -v "^\.\\\\\"" "$f" | grep -v "^'\\\\\"" | head -n 1)
	case $first in
	.so\ *)
		target=${first#.so }
		case $target in
		man[378]/*.[378]) ;;
		*) fail "$base: .so target '$target' is not manN/PAGE.N"; continue ;;
		esac
		tfile=$man/${target#*/}
		if [ "$(grep -vc "^\.\\\\\"" "$f")" != 1 ]; then
			fail "$base: a link page holds only its .so line"
		elif [ ! -f "$tfile" ]; then
			fail "$base: links to $target, which does not exist"
		elif head -n 20 "$tfile" | grep -q '^\.so '; then
			fail "$base: links to $target, itself a link"
		elif ! name_section "$tfile" | grep -qxF "$page"; then
			fail "$base: $target's NAME section does not list $page"
		fi
		continue
		;;
	esac

	# .TH NAME SECTION ...
	set -- $(grep -m1 '^\.TH ' "$f")
	if [ $# -lt 3 ] ||
	   [ "$(printf %s "$2" | tr 'A-Z' 'a-z')" != "$page" ] ||
	   [ "$3" != "$sec" ]; then
		fail "$base: .TH does not say '$page $sec'"
	fi

	name_section "$f" >"$tmp/pagenames"
	[ -s "$tmp/pagenames" ] || fail "$base: no NAME section"
	if [ "$sec" = 3 ]; then
		grep -qxF "$page" "$tmp/pagenames" ||
			fail "$base: its NAME section does not list $page"
		grep -vxFf "$tmp/names" "$tmp/pagenames" >"$tmp/bad"
		while read -r n; do
			fail "$base: NAME lists $n, not an exported function or public type"
		done <"$tmp/bad"
	fi

	# Calls: "vduse_x(", "vduse_x (" and ".BR vduse_x ()", not "(3)".
	grep -oE 'vduse_[A-Za-z0-9_]+(\\f[BIRP]|")? ?\(([^0-9]|$)' "$f" |
		sed -E 's/(\\f[BIRP]|")? ?\(.*$//' | sort -u >"$tmp/calls"
	# References: "vduse_x (3)", ".BR vduse_x (3)", "\fBlibvduse\fP(7)".
	grep -oE '(vduse|libvduse)[-A-Za-z0-9_\\]*(\\f[BIRP]|")? ?\([378]\)' "$f" |
		sed -E -e 's/\\-/-/g' -e 's/(\\f[BIRP]|")? ?\(([378])\)$/.\2/' |
		sort -u >"$tmp/refs"
	grep -vxFf "$tmp/map" "$tmp/calls" >"$tmp/bad"
	while read -r n; do
		fail "$base: calls $n(), which libvduse does not export"
	done <"$tmp/bad"
	while read -r r; do
		[ -f "$man/$r" ] || fail "$base: refers to ${r%.*}(${r##*.}), which has no page"
	done <"$tmp/refs"

	# Render: any warning or error fails.
	if ! groff -ww -z -man "$f" >"$tmp/out" 2>&1 || [ -s "$tmp/out" ]; then
		fail "$base does not render cleanly:"
		sed 's/^/    /' "$tmp/out"
	fi
done
[ "$pages" -gt 0 ] || fail "no pages in $man"

# vduse-blk(8) names every option of examples/vduse-blk.c (its getopt_long
# table), long and short.
blk=$man/../examples/vduse-blk.c
sed -n '/struct option blk_long_opts\[\] = {/,/};/p' "$blk" 2>/dev/null |
	sed -nE "s/.*\{ \"([a-z-]+)\",.*, *('(.)'|[A-Z_]+) *\},.*/\1 \3/p" >"$tmp/opts"
[ -s "$tmp/opts" ] || fail "no options found in $blk (blk_long_opts)"
while read -r long short; do
	esc=$(printf '%s' "--$long" | sed 's/-/\\\\-/g')
	grep -qE -- "$esc([^A-Za-z\\\\]|\$)" "$man/vduse-blk.8" ||
		fail "vduse-blk.8 does not describe --$long"
	[ -z "$short" ] || grep -qE -- "\\\\-$short([^A-Za-z\\\\]|\$)" "$man/vduse-blk.8" ||
		fail "vduse-blk.8 does not describe -$short"
done <"$tmp/opts"

# Each man3 SYNOPSIS, as printed, agrees with the header: its prototypes
# and typedefs are compiled after the header (a different one conflicts),
# its structs are compiled under another tag and compared member by member
# (offset and size), its enumerators and numeric macros by value.
cat >"$tmp/synopsis.py" <<'PY'
# Turn the SYNOPSIS of a rendered man3 page into C checked against the header.
import re, sys
page, text = sys.argv[1], sys.stdin.read()
lines, on = [], False
for l in text.splitlines():
    if re.match(r'^[A-Z][A-Z ]*$', l):
        on = l == 'SYNOPSIS'
        continue
    if on and l.strip() and not l.strip().startswith('Link with'):
        lines.append(l.strip())
out, n, i = [], 0, 0
def tag(msg):
    global n
    n += 1
    return '"%s: %s"' % (page, msg.replace('"', "'"))
while i < len(lines):
    l = lines[i]
    if l.startswith('#include'):
        out.append(l); i += 1; continue
    m = re.match(r'#define (\w+) (.*)$', l)
    if m:
        name, val = m.groups()
        if val.startswith('"'):
            out.append('_Static_assert(sizeof(%s) == sizeof(%s), %s);' % (name, val, tag(l)))
        else:
            out.append('_Static_assert((%s) == (%s), %s);' % (name, val, tag(l)))
        i += 1; continue
    m = re.match(r'(struct|enum) (\w+) \{$', l)
    if m:
        kind, name = m.groups()
        body = []
        i += 1
        while i < len(lines) and lines[i] != '};':
            body.append(re.sub(r'/\*.*?\*/', '', lines[i]).strip()); i += 1
        i += 1
        if kind == 'enum':
            for b in body:
                e = re.match(r'(\w+) = (.*?),?$', b)
                if not e:
                    out.append('#error %s' % tag('cannot read enumerator ' + b)); continue
                out.append('_Static_assert((%s) == (%s), %s);' % (e.group(1), e.group(2), tag(b)))
            continue
        decls = ' '.join(body)
        out.append('struct man_chk_%s { %s };' % (name, decls))
        members = re.findall(r'\(\*(\w+)\)\s*\(', decls)
        for d in re.sub(r'\([^()]*\)\s*;', ';', decls).split(';'):
            d = d.strip()
            mm = re.search(r'(\w+)\s*(\[[^]]*\])?$', d)
            if d and not re.search(r'\(\*\w+\)', d) and mm:
                members.append(mm.group(1))
        out.append('_Static_assert(sizeof(struct man_chk_%s) == sizeof(struct %s), %s);'
                   % (name, name, tag('struct %s has another size' % name)))
        for mem in members:
            out.append('_Static_assert(offsetof(struct man_chk_%s, %s) == offsetof(struct %s, %s), %s);'
                       % (name, mem, name, mem, tag('member %s' % mem)))
            out.append('_Static_assert(sizeof(((struct man_chk_%s *)0)->%s) == sizeof(((struct %s *)0)->%s), %s);'
                       % (name, mem, name, mem, tag('member %s' % mem)))
        continue
    # A declaration: up to its ';'.
    d = l
    while not d.endswith(';') and i + 1 < len(lines):
        i += 1; d += ' ' + lines[i]
    out.append(d); i += 1
print('#include <stddef.h>')
print('\n'.join(out))
PY
if [ -n "$incdir" ]; then
	# One translation unit; #line names the page in every error.
	: >"$tmp/synopsis.c"
	for f in "$man"/*.3; do
		head -n 20 "$f" | grep -q '^\.so ' && continue
		base=${f##*/}
		groff -man -Tascii -P-cbou -rLL=250n "$f" 2>/dev/null |
			python3 "$tmp/synopsis.py" "$base" >"$tmp/page.c"
		if grep -q vduse "$tmp/page.c"; then
			printf '#line 1 "%s SYNOPSIS"\n' "$base" >>"$tmp/synopsis.c"
			cat "$tmp/page.c" >>"$tmp/synopsis.c"
		else
			fail "$base: nothing found in its SYNOPSIS"
		fi
	done
	if ! ${CC:-cc} -fsyntax-only -Wall -Werror -I"$incdir" \
	     -x c "$tmp/synopsis.c" >"$tmp/out" 2>&1; then
		fail "a SYNOPSIS does not agree with the header:"
		grep -E 'error' "$tmp/out" | sed 's/^/    /'
	fi
fi

# The complete program in libvduse(7) compiles and links as it is printed.
if [ -n "$incdir" ]; then
	sed -n '/^\.\\" example-begin/,/^\.\\" example-end/p' "$man/libvduse.7" |
		sed -e '/^\.EX$/d' -e '/^\.EE$/d' -e '/^\.\\"/d' \
		    -e 's/\\e/\\/g' -e 's/\\-/-/g' -e 's/\\&//g' >"$tmp/example.c"
	if ! grep -q 'int main' "$tmp/example.c"; then
		fail "libvduse.7: no example program between its example-begin/end comments"
	elif ! ${CC:-cc} -Wall -Wextra -Wno-unused-parameter -Werror \
	     -I"$incdir" -x c "$tmp/example.c" -x none "$lib" \
	     -o "$tmp/example" >"$tmp/out" 2>&1; then
		fail "libvduse.7: the example program does not build:"
		sed 's/^/    /' "$tmp/out"
	fi
fi

if [ "$fails" -eq 0 ]; then
	echo "man pages OK: $pages pages, $(wc -l <"$tmp/map") exported symbols covered"
fi
[ "$fails" -eq 0 ]
