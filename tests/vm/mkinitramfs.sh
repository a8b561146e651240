#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build an uncompressed cpio (newc) initramfs for a VM test run:
# busybox-static, the flavor's modules (decompressed, with a load-order list),
# the project's build outputs, fio, vdpa, mkfs.ext4, e2fsck, any extra
# binaries, each with its ldd libraries and the loader, tests/vm/guest/init.sh
# as /init, tests/vm/guest/{lib,blk}.sh as /lib/vmtest{,-blk}.sh and the
# guest script as /test.sh.
#
#   tests/vm/mkinitramfs.sh --flavor F --guest SCRIPT --out FILE
#       [--build DIR] [--no-project] [--shim KO] [--bin FILE]... [--env K=V]...
#       [--module NAME]... [--foreign ROOT:FILE]...
#
# --build DIR    meson build directory (default: build); its
#                examples/vduse-blk and lib/libvduse.so* are required unless
#                --no-project is given.
# --shim KO      shim module for bookworm-shim (default: DIR/kernel/vduse_shim.ko
#                if it exists, else kernel/vduse_shim.ko).
# --bin FILE     extra program, installed as /usr/local/bin/NAME.
# --env K=V      exported to the guest scripts (via /etc/vmtest.env).
# --module NAME  one more module of the flavor's kernel to load (with its
#                dependencies), after the flavor's own.
# --foreign ROOT:FILE
#                FILE (a path inside ROOT, a Debian tree of another suite that
#                scripts/fetch-debs.sh extracted) at /opt/foreign/FILE, and
#                the libraries ROOT's own loader resolves for it in
#                /opt/foreign/lib with that loader: run it with
#                /opt/foreign/lib/ld-linux-x86-64.so.2 --library-path /opt/foreign/lib.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=tests/vm/flavor.sh
. "$here/flavor.sh"

flavor= guest= out= build=$top/build project=yes shim=
bins=() envs=() extra_modules=() foreign=()
while (($#)); do
	case $1 in
	--flavor) flavor=$2; shift 2 ;;
	--guest) guest=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--no-project) project=no; shift ;;
	--shim) shim=$2; shift 2 ;;
	--bin) bins+=("$2"); shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	--module) extra_modules+=("$2"); shift 2 ;;
	--foreign) foreign+=("$2"); shift 2 ;;
	*) echo "mkinitramfs: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ -n $flavor && -n $guest && -n $out ]] || {
	echo "usage: $0 --flavor F --guest SCRIPT --out FILE [options]" >&2
	exit 2
}
build=$(cd "$build" 2>/dev/null && pwd) || build=$top/build

if [[ $flavor == bookworm-shim && -z $shim ]]; then
	shim=$build/kernel/vduse_shim.ko
	[[ -f $shim ]] || shim=$top/kernel/vduse_shim.ko
fi
flavor_load "$flavor" "$shim"
VM_MODULES+=(${extra_modules[@]+"${extra_modules[@]}"})

die() { echo "mkinitramfs: $*" >&2; exit 1; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/vduse-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/local/lib,etc,lib/modules,proc,sys,dev,tmp,run,mnt}

# Copy FILE's libraries (as ldd resolves them on this machine) and the loader
# to the same paths inside the initramfs. The project's own libraries go to
# /usr/local/lib instead (below).
copy_libs() {
	local lib
	# "libx.so => /path (addr)" or "/lib64/ld-linux-x86-64.so.2 (addr)"
	for lib in $(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		[[ -e $stage$lib || $lib == "$build"/* ]] && continue
		mkdir -p "$stage$(dirname "$lib")"
		cp -L "$lib" "$stage$lib"
	done
	if ldd "$1" 2>&1 | grep -q 'not found'; then
		die "$1 has unresolved libraries: $(ldd "$1" | grep 'not found' | tr '\n' ' ')"
	fi
}

# install_bin FILE DEST-PATH: a program and its libraries.
install_bin() {
	[[ -f $1 && -x $1 ]] || die "missing program $1 (run scripts/setup.sh and build the project)"
	mkdir -p "$stage$(dirname "$2")"
	cp -L "$1" "$stage$2"
	copy_libs "$1"
}

# busybox and its applets (real programs installed below replace them)
bb=$(command -v busybox) || die "busybox not found"
ldd "$bb" >/dev/null 2>&1 && die "$bb is not static (install busybox-static)"
cp "$bb" "$stage/bin/busybox"
for applet in $("$stage/bin/busybox" --list-full); do
	[[ -e $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
done

need() { command -v "$1" || PATH=/usr/sbin:/sbin:$PATH command -v "$1" || die "$1 not found (run scripts/setup.sh)"; }
install_bin "$(need fio)" /usr/bin/fio
install_bin "$(need vdpa)" /usr/sbin/vdpa
install_bin "$(need mke2fs)" /usr/sbin/mkfs.ext4
install_bin "$(need e2fsck)" /usr/sbin/e2fsck
[[ -f /etc/mke2fs.conf ]] && cp /etc/mke2fs.conf "$stage/etc/"

if [[ $project == yes ]]; then
	install_bin "$build/examples/vduse-blk" /usr/local/bin/vduse-blk
	for f in "$build"/lib/libvduse.so*; do
		[[ -d $f ]] || cp -a "$f" "$stage/usr/local/lib/"
	done
	[[ -e $stage/usr/local/lib/libvduse.so.0 ]] || die "missing $build/lib/libvduse.so.0"
fi
for b in "${bins[@]}"; do
	[[ $b == */* ]] || b=$(need "$b")
	install_bin "$b" "/usr/local/bin/${b##*/}"
done

# install_foreign ROOT:FILE: a program of another Debian suite, its
# libraries as that suite's loader resolves them, and the loader.
install_foreign() {
	local root=${1%%:*} file=${1#*:} loader out lib
	loader=$root/usr/lib64/ld-linux-x86-64.so.2
	[[ -f $root/$file && -x $loader ]] ||
		die "missing $root/$file or its loader (run scripts/setup.sh)"
	mkdir -p "$stage/opt/foreign/lib" "$stage/opt/foreign/$(dirname "$file")"
	cp -L "$root/$file" "$stage/opt/foreign/$file"
	[[ -e $stage/opt/foreign/lib/ld-linux-x86-64.so.2 ]] ||
		cp -L "$loader" "$stage/opt/foreign/lib/"
	out=$("$loader" --library-path "$root/usr/lib/x86_64-linux-gnu" --list "$root/$file") ||
		die "$loader cannot list the libraries of $root/$file"
	if grep -q 'not found' <<<"$out"; then
		die "$root/$file has unresolved libraries: $(grep 'not found' <<<"$out" | tr '\n' ' ')"
	fi
	for lib in $(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$out"); do
		[[ -e $stage/opt/foreign/lib/${lib##*/} ]] || cp -L "$lib" "$stage/opt/foreign/lib/"
	done
}
for f in ${foreign[@]+"${foreign[@]}"}; do
	install_foreign "$f"
done

# modules, decompressed, and their load order
"$here/modules.sh" "$VM_MODDIR" "${VM_MODULES[@]}" >"$stage/modules.list"
while IFS= read -r ko; do
	name=${ko##*/}
	name=${name%%.ko*}.ko
	case $ko in
	*.xz) xz -dc "$ko" >"$stage/lib/modules/$name" ;;
	*.zst) zstd -qdc "$ko" >"$stage/lib/modules/$name" ;;
	*) cp "$ko" "$stage/lib/modules/$name" ;;
	esac
	echo "$name" >>"$stage/etc/vm-modules"
done <"$stage/modules.list"
rm "$stage/modules.list"

# guest scripts and environment
install -m 755 "$here/guest/init.sh" "$stage/init"
install -m 644 "$here/guest/lib.sh" "$stage/lib/vmtest.sh"
install -m 644 "$here/guest/blk.sh" "$stage/lib/vmtest-blk.sh"
install -m 755 "$guest" "$stage/test.sh"
{
	echo "VMTEST_FLAVOR=$flavor"
	echo "VMTEST_KERNEL=${VM_KERNEL##*/}"
	for e in "${envs[@]}"; do printf '%s\n' "$e"; done
} >"$stage/etc/vmtest.env"

mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio -o -0 -H newc --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
echo "mkinitramfs: $out ($(du -h "$out" | cut -f1)), kernel $VM_KERNEL" >&2
