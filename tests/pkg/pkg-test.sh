#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The Debian packages end to end (README.md, "Debian packages"):
#   build     dpkg-buildpackage -us -uc -b on a copy of the source tree (the
#             files git tracks or would track), so the tree stays clean;
#             the .debs go to OUT/debs
#   lintian   no error or warning
#   contents  each package holds what it must (library, symbols file made
#             from lib/libvduse.map, header, .pc, man pages of man/, the
#             systemd unit, the DKMS sources)
#   install   dpkg -i of the four packages in a throwaway root (an overlay
#             of this machine's / with any /usr/local libvduse removed,
#             in a private mount namespace): DKMS builds and installs the
#             shim for Debian 12's 6.1 kernel and skips two fake kernels
#             that it does not suit (a 6.12 one and a 6.1 one with vDPA);
#             a program builds with pkg-config against libvduse-dev and
#             runs; systemd-analyze verifies vduse-blk@.service; then the
#             purge removes the module and the sources
#   vm        Debian 12's 6.1 kernel boots with the module DKMS built, and
#             the packaged vduse-blk, run with the unit's command line,
#             serves a disk for verified I/O across two SIGKILLs and
#             restarts (tests/pkg/guest.sh)
#
#   tests/pkg/pkg-test.sh [--out DIR] [--build-only | --no-build] [--no-vm]
#       [--vm-lock FILE]
#
# --out DIR       work and output directory (default: .cache/pkg)
# --build-only    build the packages into DIR/debs and stop
# --no-build      test the packages already in DIR/debs
# --no-vm         stop before the VM
# --vm-lock FILE  hold flock FILE while the VM runs (by hand: /tmp/vm.lock;
#                 meson runs VM tests one at a time)
# Needs root (dpkg, mount namespaces) and scripts/setup.sh's packages.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

out=$top/.cache/pkg build=yes build_only=no vm=yes vm_lock=
while (($#)); do
	case $1 in
	--out) out=$2; shift 2 ;;
	--build-only) build_only=yes; shift ;;
	--no-build) build=no; shift ;;
	--no-vm) vm=no; shift ;;
	--vm-lock) vm_lock=$2; shift 2 ;;
	--in-root) shift; break ;;	# internal: the install phase, below
	*) echo "pkg-test: unknown argument $1" >&2; exit 2 ;;
	esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

step() { echo "pkg-test: $*" >&2; }
die() { echo "pkg-test: FAIL: $*" >&2; exit 1; }
nchecks=0
ok() { nchecks=$((nchecks + 1)); echo "pkg-test: ok: $*" >&2; }

NAME=pkg0	# the vduse-blk@ instance
shim_ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/kernel/dkms.conf")
[[ -n $shim_ver ]] || die "no PACKAGE_VERSION in kernel/dkms.conf"

# ---------------------------------------------------------------------------
# The install phase, in a private mount namespace (re-executed by unshare):
# ROOT is an overlay of / on a tmpfs; everything written vanishes with it.
if [[ ${1:-} == install ]]; then
	root=$out/root
	mount -t tmpfs -o size=2g pkgtest "$out/ovl"
	mkdir -p "$out/ovl/upper" "$out/ovl/work" "$root"
	mount -t overlay overlay \
		-o "lowerdir=/,upperdir=$out/ovl/upper,workdir=$out/ovl/work" "$root"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys"
	mount --rbind /dev "$root/dev"
	# No /run/systemd here: the maintainer scripts talk to no service
	# manager, and /tmp is the root's own.
	mount -t tmpfs tmpfs "$root/run"
	mount -t tmpfs tmpfs "$root/tmp"
	# The source tree at its own path, wherever the checkout is: a clone
	# under /tmp or /run would be hidden by the root's own.
	mkdir -p "$root$top"
	mount --bind "$top" "$root$top"
	in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"; }

	# A clean root as far as libvduse goes: whatever `meson install` left
	# in /usr/local is hidden.
	rm -f "$root"/usr/local/lib/*/libvduse* "$root"/usr/local/lib/libvduse* \
		"$root"/usr/local/lib/*/pkgconfig/libvduse.pc \
		"$root"/usr/local/include/libvduse.h "$root"/usr/local/bin/vduse-*
	in_root ldconfig

	# Debian 12's kernel with headers (setup.sh installs them), and two
	# fake kernels the shim does not suit: DKMS must skip both.
	kver=$(cd "$root/lib/modules" && ls -d 6.1.0-*-amd64 | sort -V | tail -n 1)
	[[ -n $kver && -e $root/lib/modules/$kver/build/include ]] ||
		die "no Debian 12 6.1 kernel headers in /lib/modules (run scripts/setup.sh)"
	for fake in 6.12.0-99-pkgtest 6.1.0-99-pkgtest-vdpa; do
		mkdir -p "$root/lib/modules/$fake/build/include"
		printf 'CONFIG_VIRTIO=y\nCONFIG_VDPA=m\nCONFIG_VDPA_USER=m\n' \
			>"$root/lib/modules/$fake/build/.config"
	done

	mkdir -p "$root/tmp/debs"
	for p in libvduse0 libvduse-dev vduse-blk vduse-shim-dkms; do
		cp "$out/debs/${p}_"*.deb "$root/tmp/debs/"
	done
	step "dpkg -i in the throwaway root"
	if ! in_root sh -c 'dpkg -i /tmp/debs/*.deb' >"$out/install.log" 2>&1; then
		cat "$out/install.log" >&2
		die "dpkg -i failed"
	fi
	ok "dpkg -i of libvduse0 libvduse-dev vduse-blk vduse-shim-dkms"
	grep -q "Building for .*$kver" "$out/install.log" ||
		{ cat "$out/install.log" >&2; die "the DKMS postinst did not build for $kver"; }
	[[ $(grep -c '^Skipped\.$' "$out/install.log") == 2 ]] ||
		{ cat "$out/install.log" >&2; die "the DKMS postinst did not skip the two fake kernels"; }

	status=$(in_root dkms status vduse-shim)
	echo "$status" | sed 's/^/pkg-test:   dkms status: /' >&2
	grep -qx "vduse-shim/$shim_ver, $kver, x86_64: installed" <<<"$status" ||
		die "dkms status: not installed for $kver: $status"
	! grep -q pkgtest <<<"$status" || die "dkms status: built for a fake kernel: $status"
	ok "DKMS built and installed vduse-shim $shim_ver for $kver, not for the fake kernels"
	for fake in 6.12.0-99-pkgtest 6.1.0-99-pkgtest-vdpa; do
		set +e
		msg=$(in_root dkms build -m vduse-shim -v "$shim_ver" -k "$fake" 2>&1)
		rc=$?
		set -e
		[[ $rc == 77 && $msg == *BUILD_EXCLUSIVE* ]] ||
			die "dkms build for $fake: exit $rc (want 77, BUILD_EXCLUSIVE): $msg"
	done
	ok "DKMS refuses the 6.12 kernel and the 6.1 kernel with vDPA (exit 77, BUILD_EXCLUSIVE)"

	ko=$(in_root modinfo -k "$kver" -F filename vduse_shim)
	[[ $ko == /lib/modules/$kver/updates/dkms/vduse_shim.ko* ]] ||
		die "modinfo -k $kver vduse_shim: $ko (want updates/dkms)"
	vermagic=$(in_root modinfo -F vermagic "$ko")
	[[ $vermagic == "$kver "* ]] || die "$ko: vermagic '$vermagic'"
	ok "$ko, vermagic $kver"

	lib=$(in_root ldd /usr/bin/vduse-blk | awk '$1 == "libvduse.so.0" { print $3 }')
	[[ $(in_root readlink -f "$lib") == /usr/lib/x86_64-linux-gnu/libvduse.so.0.* ]] ||
		die "vduse-blk uses libvduse.so.0 from '$lib', not the package's"
	in_root vduse-blk --help >/dev/null || die "vduse-blk --help failed"
	ok "vduse-blk runs, linked to $lib"

	cp "$top/tests/install/consumer.c" "$root/tmp/consumer.c"
	in_root sh -c 'cc -Wall -Werror -o /tmp/consumer /tmp/consumer.c $(pkg-config --cflags --libs libvduse)' ||
		die "a program does not build with pkg-config libvduse"
	ver=$(cd "$top" && dpkg-parsechangelog -S Version)
	cout=$(in_root /tmp/consumer) || true
	case $cout in
	"libvduse $ver -ENODEV" | "libvduse $ver -EACCES" | "libvduse $ver ok") ;;
	*) die "the consumer printed '$cout' (want libvduse $ver ...)" ;;
	esac
	ok "a program built with pkg-config against libvduse-dev prints '$cout'"

	unit=$(in_root sh -c 'ls /lib/systemd/system/vduse-blk@.service /usr/lib/systemd/system/vduse-blk@.service 2>/dev/null' | head -n 1)
	[[ -n $unit ]] || die "no vduse-blk@.service installed"
	# The instance's configuration, as a user would write it.
	mkdir -p "$root/etc/vduse-blk"
	printf 'FILE=/tmp/pkg-disk.img\nOPTIONS="--queues 2 --queue-size 128"\n' \
		>"$root/etc/vduse-blk/$NAME.conf"
	in_root systemd-analyze verify "vduse-blk@$NAME.service" >"$out/verify.log" 2>&1 ||
		{ cat "$out/verify.log" >&2; die "systemd-analyze verify vduse-blk@$NAME.service"; }
	[[ ! -s $out/verify.log ]] ||
		{ cat "$out/verify.log" >&2; die "systemd-analyze verify vduse-blk@$NAME.service printed warnings"; }
	ok "systemd-analyze verify vduse-blk@$NAME.service: clean"

	# The unit's command line as systemd expands it for this instance:
	# %i, $OPTIONS split at spaces, ${FILE} one word.
	exec_line=$(sed -n 's/^ExecStart=//p' "$root$unit")
	[[ -n $exec_line ]] || die "no ExecStart in $unit"
	(. "$root/etc/vduse-blk/$NAME.conf"
	 cmd=()
	 for w in $exec_line; do
		case $w in
		'$OPTIONS') read -ra o <<<"$OPTIONS"; cmd+=("${o[@]}") ;;
		'${FILE}') cmd+=("$FILE") ;;
		*'$'*) die "ExecStart word '$w' is not handled here" ;;
		*) cmd+=("${w//%i/$NAME}") ;;
		esac
	 done
	 echo "${cmd[*]}") >"$out/cmd"
	step "the unit's command line: $(cat "$out/cmd")"
	grep -qx "/usr/bin/vduse-blk --name $NAME --queues 2 --queue-size 128 /tmp/pkg-disk.img" "$out/cmd" ||
		die "unexpected ExecStart expansion: $(cat "$out/cmd")"
	grep -qx 'Restart=on-failure' "$root$unit" || die "$unit: no Restart=on-failure"

	# The guest's initramfs, made in the root so that ldd finds the
	# packaged libvduse and the module DKMS installed.
	if [[ $vm == yes ]]; then
		in_root "$top/tests/vm/mkinitramfs.sh" --flavor bookworm-shim \
			--guest "$here/guest.sh" --no-project --shim "$ko" \
			--bin /usr/bin/vduse-blk \
			--env "PKG_NAME=$NAME" --env "PKG_CMD='$(cat "$out/cmd")'" \
			--env VMTEST_GUEST_TIMEOUT=420 \
			--out /tmp/pkg.cpio >"$out/initramfs.log" 2>&1 ||
			{ cat "$out/initramfs.log" >&2; die "mkinitramfs in the root failed"; }
		cp "$root/tmp/pkg.cpio" "$out/pkg.cpio"
		ok "initramfs with the packaged vduse-blk, libvduse and $ko"
	fi

	step "dpkg --purge"
	if ! in_root dpkg --purge vduse-shim-dkms vduse-blk libvduse-dev libvduse0 \
		>"$out/purge.log" 2>&1; then
		cat "$out/purge.log" >&2
		die "dpkg --purge failed"
	fi
	[[ ! -e $root$ko && ! -e $root/usr/src/vduse-shim-$shim_ver &&
	   -z $(in_root dkms status vduse-shim) ]] ||
		die "the purge left the module, its sources or DKMS state"
	ok "the purge removed the module, the sources and DKMS's state"
	echo "$nchecks" >"$out/install.checks"
	exit 0
fi

# ---------------------------------------------------------------------------
# build: a copy of the tree, built in a temporary directory; outputs to OUT/debs.
((EUID == 0)) || die "run as root (dpkg -i into a throwaway root, mount namespaces)"
for tool in dpkg-buildpackage lintian dkms git; do
	command -v "$tool" >/dev/null || die "$tool is missing (run scripts/setup.sh)"
done
ver=$(cd "$top" && dpkg-parsechangelog -S Version)
mkdir -p "$out/ovl"
# The copy is built outside the tree (its meson.build files would be found
# by the tree's own checks); OUT/src.tar keeps what the contents checks
# below need of it.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/libvduse-pkg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [[ $build == yes ]]; then
	rm -rf "$out/debs" "$out/src.tar"
	mkdir -p "$out/debs" "$tmp/build"
	src=$tmp/build/libvduse-$ver
	mkdir -p "$src"
	step "copying the tree to $src"
	git -C "$top" ls-files -z --cached --others --exclude-standard |
		tar -C "$top" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$src" -xf -
	[[ -f $src/debian/rules ]] || die "no debian/rules in the copy"
	git -C "$top" ls-files -z --cached --others --exclude-standard -- man kernel lib/libvduse.map debian |
		tar -C "$top" --null -T - --ignore-failed-read -cf - 2>/dev/null >"$out/src.tar"

	step "dpkg-buildpackage -us -uc -b (log: $out/build.log)"
	t0=$(date +%s)
	if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
		dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1; then
		tail -n 60 "$out/build.log" >&2
		die "dpkg-buildpackage failed"
	fi
	mv "$tmp"/build/*.deb "$tmp"/build/*.changes "$tmp"/build/*.buildinfo "$out/debs/"
	debs=$(cd "$out/debs" && ls ./*.deb)
	ok "built in $(($(date +%s) - t0)) s: $(echo $debs | sed 's,\./,,g')"
fi
# What the packages were made from (man pages, kernel sources, the map).
[[ -f $out/src.tar ]] || die "no $out/src.tar: build first"
src=$tmp/src
mkdir -p "$src"
tar -C "$src" -xf "$out/src.tar"
for p in libvduse0 libvduse-dev vduse-blk vduse-shim-dkms; do
	ls "$out/debs/${p}_$ver"_*.deb >/dev/null 2>&1 || die "no $p package"
done
[[ $build_only == no ]] || { step "packages in $out/debs"; exit 0; }

step "lintian (log: $out/lintian.log)"
if ! lintian --fail-on error,warning "$out"/debs/*.changes >"$out/lintian.log" 2>&1; then
	cat "$out/lintian.log" >&2
	die "lintian reported errors or warnings"
fi
ok "lintian: no error or warning ($(grep -cE '^[IPX]: ' "$out/lintian.log" || true) info/pedantic/experimental tags)"

# contents
for p in libvduse0 libvduse-dev vduse-blk vduse-shim-dkms; do
	dpkg-deb -c "$out/debs/${p}_$ver"_*.deb | awk '{ print $6 }' >"$out/$p.contents"
done
has() {	# has PACKAGE PATH-REGEX: the package holds a file matching it
	grep -qE "^\./$2\$" "$out/$1.contents" || die "$1 has no $2"
}
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
has libvduse0 "usr/lib/$ma/libvduse\\.so\\.0"
has libvduse0 "usr/lib/$ma/libvduse\\.so\\.$ver"
has libvduse-dev "usr/include/libvduse\\.h"
has libvduse-dev "usr/lib/$ma/libvduse\\.so"
has libvduse-dev "usr/lib/$ma/pkgconfig/libvduse\\.pc"
has vduse-blk "usr/bin/vduse-blk"
has vduse-blk "(usr/)?lib/systemd/system/vduse-blk@\\.service"
has vduse-blk "usr/share/doc/vduse-blk/examples/example\\.conf"
for f in dkms.conf Kbuild Makefile $(cd "$src/kernel" && ls ./*.c ./*.h | grep -v '\.mod\.c$'); do
	has vduse-shim-dkms "usr/src/vduse-shim-$shim_ver/${f#./}"
done
nman=0
for m in "$src"/man/*.[378]; do
	[[ -e $m ]] || continue
	name=${m##*/} sec=${m##*.}
	pkg=libvduse-dev
	[[ $sec == 8 ]] && pkg=vduse-blk
	has "$pkg" "usr/share/man/man$sec/${name//./\\.}\\.gz"
	nman=$((nman + 1))
done
# The symbols file: exactly the map's symbols.
dpkg-deb --ctrl-tarfile "$out/debs/libvduse0_$ver"_*.deb | tar -xOf - ./symbols |
	grep '^ ' | sort >"$out/symbols.deb"
"$src/debian/gen-symbols.sh" "$src/lib/libvduse.map" | grep '^ ' | sort >"$out/symbols.map"
diff -u "$out/symbols.map" "$out/symbols.deb" >&2 ||
	die "libvduse0's symbols file differs from lib/libvduse.map"
# ... and what the packaged library exports (dpkg-gensymbols -c4 catches a
# symbol the file lacks, not one the library lacks).
mkdir -p "$tmp/lib0"
dpkg-deb -x "$out/debs/libvduse0_$ver"_*.deb "$tmp/lib0"
objdump -T "$tmp/lib0/usr/lib/$ma/libvduse.so.$ver" |
	awk '$2 == "g" && $(NF-1) ~ /^LIBVDUSE_/ { print $NF "@" $(NF-1) }' | sort >"$out/symbols.so"
sed 's/^ \([^ ]*\) .*/\1/' "$out/symbols.map" | sort | diff -u - "$out/symbols.so" >&2 ||
	die "lib/libvduse.map and the symbols libvduse.so.$ver exports differ"
ok "contents: library, $(wc -l <"$out/symbols.deb") symbols (= lib/libvduse.map = the library's exports), header, .pc, unit, DKMS sources, $nman man pages"

# install
rm -f "$out/install.checks"
step "installing into a throwaway root"
unshare -m --propagation private -- "$0" --out "$out" $([[ $vm == yes ]] || echo --no-vm) \
	--in-root install || die "the install phase failed"
[[ -f $out/install.checks ]] || die "the install phase did not finish"
nchecks=$((nchecks + $(cat "$out/install.checks")))
[[ $vm == yes ]] || { echo "pkg-test: $nchecks passed, 0 failed (no VM)"; exit 0; }

# vm
want=(modules pkg-lib pkg-attach pkg-recovery pkg-cmp pkg-stop dmesg)
step "booting Debian 12's kernel with the DKMS-built shim (log: $out/pkg-vm.log)"
vmrun=("$top/tests/vm/run-vm.sh" --flavor bookworm-shim --initrd "$out/pkg.cpio"
	--log "$out/pkg-vm.log" --timeout 480)
if [[ -n $vm_lock ]]; then
	flock "$vm_lock" "${vmrun[@]}" >/dev/null || die "the VM run failed (see $out/pkg-vm.log)"
else
	"${vmrun[@]}" >/dev/null || die "the VM run failed (see $out/pkg-vm.log)"
fi
for w in "${want[@]}"; do
	grep -qx "VMTEST PASS $w" "$out/pkg-vm.log" || die "the guest did not pass $w (see $out/pkg-vm.log)"
done
ok "the VM passed ${want[*]}"
echo "pkg-test: $nchecks passed, 0 failed"
