#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The demo: set the machine up, build libvduse and its example block device,
# boot Debian's 6.12 kernel in QEMU and, inside it, serve a file as
# /dev/vda with the example: ext4 on it, files written and read back, a
# verified fio run, a clean teardown.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

echo "== setup"
"$top/scripts/setup.sh"
echo "== build"
"$top/scripts/build.sh" "$top/build"
echo "== VM (QEMU TCG, Linux 6.12, VDUSE)"
"$top/tests/vm/vmtest.sh" --flavor trixie --guest "$top/tests/vm/guest/demo.sh" \
	--build "$top/build" --name demo --timeout 600
