#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Prepare this machine for building libvduse and running its VM tests:
# install the Debian packages and fetch the trixie (6.12), sid (7.2) and
# experimental (7.3) kernels into .cache/.
# Idempotent, and quick when everything is already there. Run as root.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

packages=(
	# build
	meson ninja-build pkg-config gcc make
	liburing-dev libnl-3-dev libnl-genl-3-dev libcmocka-dev
	# fuzzing: clang and its libFuzzer/sanitizer runtimes (only recommended
	# by clang-14, so not pulled in by --no-install-recommends)
	clang clang-14 libclang-rt-14-dev
	# VM tests and bench
	qemu-system-x86 qemu-system-common qemu-utils
	busybox-static fio iproute2 e2fsprogs util-linux
	cpio gzip xz-utils zstd kmod coreutils
	# bookworm kernel (6.1) for the shim flavor, and headers to build the shim
	linux-image-amd64 linux-headers-amd64
	# the shim's static check (kernel/meson.build: shim-sparse)
	sparse
	# the Debian packages (debian/, tests/pkg/pkg-test.sh)
	build-essential debhelper dh-dkms dkms lintian systemd git python3
	# groff, for the man pages' unit test (tests/unit/man-check.sh)
	groff-base
	# to fetch the trixie, sid and experimental kernels
	apt debian-archive-keyring dpkg
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[[ $status == installed ]] || missing+=("$p")
done

if ((${#missing[@]})); then
	if ((EUID != 0)); then
		echo "setup: missing packages (${missing[*]}); run as root" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${packages[@]}" </dev/null
fi

"$top/scripts/fetch-kernel.sh" trixie 'linux-image-6.12.*+deb13-amd64-unsigned'
# Split packages from 7.x on: linux-binary-VER-amd64 brings linux-modules-VER-amd64.
# VER is 7.2 or 7.3 and maybe more of the version (7.2.13+deb14,
# 7.3.0-rc7), ending in a digit: the -rt and -cloud kernels are left out.
"$top/scripts/fetch-kernel.sh" sid 'linux-binary-7.2?(*[0-9])-amd64'
"$top/scripts/fetch-kernel.sh" experimental 'linux-binary-7.3?(*[0-9])-amd64'
# trixie's qemu-io with libblkio, for the vhost-vdpa VM test (vm-vhost-trixie)
"$top/scripts/fetch-debs.sh" trixie blkio-trixie qemu-utils qemu-block-extra libblkio1
echo "setup: ok" >&2
