#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# One VM test: build the initramfs for a flavor and a guest script, boot it,
# judge the markers. The entry point meson's 'vm' suite calls.
#
#   tests/vm/vmtest.sh --flavor F --guest SCRIPT [--build DIR] [--timeout S]
#       [--append 'KERNEL ARGS']
#       [mkinitramfs options: --no-project --shim KO --bin FILE --env K=V
#        --module NAME --foreign ROOT:FILE]
#
# Files go to DIR/vm/NAME.cpio and DIR/vm/NAME.log, where NAME is the flavor
# and the guest script's name.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

flavor= guest= build=$top/build timeout_s=900 name=
vm_args=()
pass_on=()
while (($#)); do
	case $1 in
	--flavor) flavor=$2; pass_on+=("$1" "$2"); shift 2 ;;
	--guest) guest=$2; pass_on+=("$1" "$2"); shift 2 ;;
	--build) build=$2; pass_on+=("$1" "$2"); shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	--append) vm_args+=(--append "$2"); shift 2 ;;
	--no-project) pass_on+=("$1"); shift ;;
	--shim | --bin | --env | --module | --foreign) pass_on+=("$1" "$2"); shift 2 ;;
	*) echo "vmtest: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ -n $flavor && -n $guest ]] || { echo "usage: $0 --flavor F --guest SCRIPT [options]" >&2; exit 2; }

[[ -n $name ]] || { name=${guest##*/}; name=$flavor-${name%.sh}; }
initrd=$build/vm/$name.cpio
# The guest stops its test script a minute before the host kills the VM, so
# that a hang still ends with a summary (a later --env overrides this).
"$here/mkinitramfs.sh" --env "VMTEST_GUEST_TIMEOUT=$((timeout_s > 120 ? timeout_s - 60 : timeout_s / 2))" \
	"${pass_on[@]}" --out "$initrd"
"$here/run-vm.sh" --flavor "$flavor" --initrd "$initrd" --log "$build/vm/$name.log" \
	--timeout "$timeout_s" "${vm_args[@]}"
