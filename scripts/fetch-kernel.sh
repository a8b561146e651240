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
# PACKAGE-GLOB is a bash extended glob (extglob).
# The mirror URIs come from the machine's apt sources at run time; none are
# written into the repository. Once the kernel is extracted, this is a no-op.
set -euo pipefail
shopt -s extglob

suite=${1:-trixie}
glob=${2:-'linux-image-6.12.*+deb13-amd64-unsigned'}
top=$(cd "$(dirname "$0")/.." && pwd)
dest=$top/.cache/kernels/$suite

if [[ -f $dest/PACKAGE ]] && { compgen -G "$dest/root/boot/vmlinuz-*" ||
	compgen -G "$dest/root/usr/lib/modules/*/vmlinuz"; } >/dev/null; then
	exit 0
fi

mkdir -p "$dest"
# shellcheck source=scripts/apt-suite.sh
. "$top/scripts/apt-suite.sh"
apt_suite_init "$top" "$suite" fetch-kernel

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
