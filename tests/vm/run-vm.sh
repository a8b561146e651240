#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Boot a flavor's kernel with an initramfs under QEMU TCG, stream the serial
# console to stdout (and to LOG), and judge the run from the guest's markers:
# it passes only if the guest printed "VMTEST DONE", a summary that agrees
# with the PASS/FAIL lines it printed, at least one PASS and no FAIL.
#
#   tests/vm/run-vm.sh --flavor F --initrd FILE [--log LOG] [--timeout SECONDS]
#       [--mem MIB] [--append 'KERNEL ARGS']
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/vm/flavor.sh
. "$here/flavor.sh"

flavor= initrd= log= timeout_s=600 mem=1024 append=
while (($#)); do
	case $1 in
	--flavor) flavor=$2; shift 2 ;;
	--initrd) initrd=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	*) echo "run-vm: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ -n $flavor && -f $initrd ]] || { echo "usage: $0 --flavor F --initrd FILE [--log LOG] [--timeout S]" >&2; exit 2; }
flavor_load "$flavor"
[[ -n $log ]] || log=${initrd%.cpio}.log

qemu=(
	qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "$mem"
	-nographic -no-reboot -kernel "$VM_KERNEL" -initrd "$initrd"
	-append "console=ttyS0 quiet panic=-1${append:+ $append}"
)
echo "run-vm: ${qemu[*]}" >&2
start=$(date +%s)
# Under multi-threaded TCG a guest kernel now and then dies while it boots
# (seen: an int3 Oops in enqueue_timer at 1 s, before init ran), which says
# nothing about the test.  A guest that never printed "VMTEST START" and
# whose kernel oopsed or panicked is booted again, twice at most; its log
# is kept as LOG.bootN.  Anything after VMTEST START is judged as it is.
for boot in 1 2 3; do
	set +e
	timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 | tr -d '\r' | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	((rc != 124 && rc != 137)) || break
	! grep -q '^VMTEST START' "$log" || break
	grep -qE 'Oops|Kernel panic' "$log" || break
	((boot < 3)) || break
	cp "$log" "$log.boot$boot"
	echo "run-vm: the guest kernel died before the test started (boot $boot, see $log.boot$boot); booting again" >&2
done
elapsed=$(($(date +%s) - start))

npass=$(grep -c '^VMTEST PASS ' "$log" || true)
nfail=$(grep -c '^VMTEST FAIL ' "$log" || true)
summary=$(grep -m1 '^VMTEST SUMMARY ' "$log" || true)
verdict=ok
if ((rc == 124 || rc == 137)); then
	verdict="VM killed after the ${timeout_s}s time limit"
elif ((rc != 0)); then
	verdict="QEMU exited with status $rc"
elif grep -q 'Kernel panic' "$log"; then
	verdict="guest kernel panic"
elif ! grep -q '^VMTEST DONE' "$log"; then
	verdict="guest did not finish (no VMTEST DONE)"
elif [[ $summary != "VMTEST SUMMARY pass=$npass fail=$nfail" ]]; then
	verdict="summary '$summary' disagrees with console (pass=$npass fail=$nfail)"
elif ((nfail > 0)); then
	verdict="$nfail check(s) failed"
elif ((npass == 0)); then
	verdict="no check passed"
fi

echo "run-vm: $flavor: $npass passed, $nfail failed in ${elapsed}s; log $log" >&2
if [[ $verdict != ok ]]; then
	grep '^VMTEST FAIL ' "$log" >&2 || true
	echo "run-vm: FAILED: $verdict" >&2
	exit 1
fi
echo "run-vm: PASSED" >&2
