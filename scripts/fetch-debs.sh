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

mkdir -p "$dest"
# shellcheck source=scripts/apt-suite.sh
. "$top/scripts/apt-suite.sh"
apt_suite_init "$top" "$suite" fetch-debs

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
