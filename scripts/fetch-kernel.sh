#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Fetch a Debian kernel from another suite into .cache/kernels/SUITE/ without
# touching the machine's own apt configuration.
#
#   scripts/fetch-kernel.sh [SUITE [PACKAGE-GLOB]]
#
# Defaults: SUITE=trixie, PACKAGE-GLOB='linux-image-6.12.*+deb13-amd64-unsigned'.
# Newer kernels (sid's 7.2, experimental's 7.3) are split: for a glob naming
# linux-binary-VER-amd64 (the image, usr/lib/modules/VER/vmlinuz), the
# matching linux-modules-VER-amd64 is fetched and extracted with it.
# The mirror URIs come from the machine's apt sources at run time; none are
# written into the repository. Once the kernel is extracted, this is a no-op.
set -euo pipefail

suite=${1:-trixie}
glob=${2:-'linux-image-6.12.*+deb13-amd64-unsigned'}
top=$(cd "$(dirname "$0")/.." && pwd)
dest=$top/.cache/kernels/$suite

if [[ -f $dest/PACKAGE ]] && { compgen -G "$dest/root/boot/vmlinuz-*" ||
	compgen -G "$dest/root/usr/lib/modules/*/vmlinuz"; } >/dev/null; then
	exit 0
fi

apt_dir=$top/.cache/apt-$suite
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest"

# The archive URIs of the machine's main (non-security) Debian sources.
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
	echo "fetch-kernel: no Debian mirror URI found in /etc/apt sources" >&2
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
	-o Debug::NoLocking=1
	-o APT::Sandbox::User=root
)

echo "fetch-kernel: updating package lists for $suite" >&2
apt-get "${apt_opts[@]}" -qq update

# Newest package whose name matches the glob.
pkg=$(apt-cache "${apt_opts[@]}" pkgnames "${glob%%[*?[]*}" |
	while read -r name; do
		# shellcheck disable=SC2053
		if [[ $name == $glob ]]; then echo "$name"; fi
	done | sort -V | tail -n 1)
if [[ -z $pkg ]]; then
	echo "fetch-kernel: no package matching '$glob' in $suite" >&2
	exit 1
fi

pkgs=("$pkg")
if [[ $pkg == linux-binary-* ]]; then
	pkgs+=("linux-modules-${pkg#linux-binary-}")
fi

echo "fetch-kernel: downloading ${pkgs[*]}" >&2
(cd "$apt_dir" && rm -f ./*.deb && apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}")
rm -rf "$dest/root"
mkdir -p "$dest/root"
for deb in "$apt_dir"/*.deb; do
	dpkg -x "$deb" "$dest/root"
done
rm -f "$apt_dir"/*.deb
echo "${pkgs[*]}" >"$dest/PACKAGE"
echo "fetch-kernel: ${pkgs[*]} extracted into $dest/root" >&2
