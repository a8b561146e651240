#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Fetch Debian packages of another suite, with every library they depend on,
# into .cache/debs/NAME/root/ (dpkg -x, nothing installed), without touching
# the machine's own apt configuration.
#
#   scripts/fetch-debs.sh SUITE NAME PACKAGE...
#
# The guest scripts run such binaries with the suite's own loader, e.g.
#   root/usr/lib64/ld-linux-x86-64.so.2 --library-path LIBDIRS root/usr/bin/qemu-io
# The mirror URIs come from the machine's apt sources at run time (as in
# scripts/fetch-kernel.sh); none are written into the repository. Once the
# same package list is extracted, this is a no-op.
set -euo pipefail

if (($# < 3)); then
	echo "usage: $0 SUITE NAME PACKAGE..." >&2
	exit 2
fi
suite=$1
name=$2
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
dest=$top/.cache/debs/$name
want="$suite $*"

if [[ -f $dest/REQUEST && $(cat "$dest/REQUEST") == "$want" && -d $dest/root ]]; then
	exit 0
fi

apt_dir=$top/.cache/apt-$suite
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest"

mirror_uris() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		awk '
			/^[[:space:]]*$/ { if (uris != "" && suites !~ /security/) print uris; uris = ""; suites = ""; next }
			/^URIs:/   { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
			/^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
			END { if (uris != "" && suites !~ /security/) print uris }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		awk '$1 == "deb" && $3 !~ /security/ { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f"
	done
}

uris=$(mirror_uris | tr ' ' '\n' | grep -E '^(https?|file)://' | sort -u | paste -sd ' ')
if [[ -z $uris ]]; then
	echo "fetch-debs: no Debian mirror URI found in /etc/apt sources" >&2
	exit 1
fi

sources=$apt_dir/sources.sources
cat >"$sources" <<SRC
Types: deb
URIs: $uris
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

apt_opts=(
	-o "Dir::Etc::SourceList=$sources"
	-o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::Cache=$apt_dir/cache"
	-o Dir::State::Status=/dev/null
	-o Debug::NoLocking=1
	-o APT::Sandbox::User=root
)

echo "fetch-debs: updating package lists for $suite" >&2
apt-get "${apt_opts[@]}" -qq update

# The packages and everything they pre-depend or depend on, recursively
# (virtual packages, shown as <name>, are provided by a real one listed too).
mapfile -t pkgs < <(apt-cache "${apt_opts[@]}" depends --recurse \
	--no-recommends --no-suggests --no-conflicts --no-breaks \
	--no-replaces --no-enhances "$@" | grep -E '^[a-z0-9]' | sort -u)
if ((${#pkgs[@]} == 0)); then
	echo "fetch-debs: could not resolve $*" >&2
	exit 1
fi

dl=$dest/debs
rm -rf "$dl" "$dest/root"
mkdir -p "$dl" "$dest/root"
echo "fetch-debs: downloading ${#pkgs[@]} packages" >&2
(cd "$dl" && apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}")
for deb in "$dl"/*.deb; do
	dpkg -x "$deb" "$dest/root"
done
rm -rf "$dl"
printf '%s\n' "${pkgs[@]}" >"$dest/PACKAGES"
echo "$want" >"$dest/REQUEST"
echo "fetch-debs: ${#pkgs[@]} packages extracted into $dest/root" >&2
