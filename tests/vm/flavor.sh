# SPDX-License-Identifier: MIT
#
# Sourced by the VM scripts: flavor_load FLAVOR [SHIM] sets
#   VM_KERNEL   the kernel image to boot
#   VM_MODDIR   the directory holding its modules
#   VM_MODULES  (array) modules to load in the guest, for tests/vm/modules.sh
#
# Flavors:
#   trixie         Debian 13's 6.12 kernel (scripts/fetch-kernel.sh puts it in
#                  .cache/) with the upstream vduse, vdpa, virtio_vdpa and
#                  virtio_blk modules.
#   sid            Debian sid's 7.2 kernel and experimental's 7.3 kernel
#   experimental   (split packages: linux-binary-VER, linux-modules-VER; see
#                  scripts/fetch-kernel.sh), with the same modules as trixie.
#   bookworm-shim  the machine's Debian 12 6.1 kernel (no VDPA) with virtio_blk
#                  and the out-of-tree shim module SHIM (default: the first of
#                  BUILD/kernel/vduse_shim.ko and kernel/vduse_shim.ko).
# All also get ext4 (for mkfs/mount checks) and loop (for the bench).

# Newest file matching a glob, or nothing.
flavor_newest() {
	local f
	for f in "$@"; do
		if [[ -e $f ]]; then echo "$f"; fi
	done | sort -V | tail -n 1
}

flavor_load() {
	local flavor=$1 shim=${2:-} top ver
	top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	local common=(?crc32c_generic ext4 loop)
	case $flavor in
	trixie)
		local root=$top/.cache/kernels/trixie/root
		VM_KERNEL=$(flavor_newest "$root"/boot/vmlinuz-6.12.*)
		ver=${VM_KERNEL##*/vmlinuz-}
		VM_MODDIR=$root/usr/lib/modules/$ver
		[[ -d $VM_MODDIR ]] || VM_MODDIR=$root/lib/modules/$ver
		VM_MODULES=(vhost_iotlb vdpa vduse virtio_vdpa virtio_blk "${common[@]}")
		;;
	sid | experimental)
		VM_KERNEL=$(flavor_newest "$top/.cache/kernels/$flavor/root"/usr/lib/modules/*/vmlinuz)
		VM_MODDIR=${VM_KERNEL%/vmlinuz}
		VM_MODULES=(vhost_iotlb vdpa vduse virtio_vdpa virtio_blk "${common[@]}")
		;;
	bookworm-shim)
		VM_KERNEL=$(flavor_newest /boot/vmlinuz-6.1.0-*-amd64)
		ver=${VM_KERNEL##*/vmlinuz-}
		VM_MODDIR=/lib/modules/$ver
		VM_MODULES=(${shim:+"$shim"} virtio_blk "${common[@]}")
		;;
	*)
		echo "flavor: unknown flavor '$flavor' (trixie, sid, experimental, bookworm-shim)" >&2
		return 1
		;;
	esac
	if [[ -z $VM_KERNEL || ! -f $VM_KERNEL ]]; then
		echo "flavor: no kernel for $flavor; run scripts/setup.sh" >&2
		return 1
	fi
	if [[ ! -d $VM_MODDIR ]]; then
		echo "flavor: no module directory $VM_MODDIR for $flavor" >&2
		return 1
	fi
}
