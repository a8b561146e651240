#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Benchmark, in one boot of the trixie (6.12) VM, the kernel loop device,
# the example vduse-blk and qemu-storage-daemon's vduse-blk export, each on a
# file on tmpfs, with fio (4 KiB random read and write at iodepth 32, 1 MiB
# sequential read), and print a table of IOPS, bandwidth and ratio to loop.
# Figures from TCG emulation: compare them within a run, as ratios.
#
#   bench/run.sh [--build DIR] [--no-build] [--runtime SECONDS] [--reps N]
#       [--size-mb MB]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build runtime=10 reps=3 size_mb=256 do_build=yes
while (($#)); do
	case $1 in
	--build) build=$2; shift 2 ;;
	--no-build) do_build=no; shift ;;
	--runtime) runtime=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--size-mb) size_mb=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--no-build] [--runtime S] [--reps N] [--size-mb MB]" >&2; exit 2 ;;
	esac
done

if [[ $do_build == yes ]]; then
	"$top/scripts/setup.sh"
	"$top/scripts/build.sh" "$build"
fi

# 3 workloads x reps x (runtime + ramp), 5 contenders, plus slack
limit=$((5 * 3 * reps * (runtime + 3) + 300))
initrd=$build/vm/bench.cpio
log=$build/vm/bench.log
"$top/tests/vm/mkinitramfs.sh" --flavor trixie --build "$build" \
	--guest "$top/bench/guest.sh" --out "$initrd" --bin qemu-storage-daemon \
	--env "BENCH_RUNTIME=$runtime" --env "BENCH_REPS=$reps" \
	--env "BENCH_SIZE_MB=$size_mb" --env "VMTEST_GUEST_TIMEOUT=$limit"
rc=0
"$top/tests/vm/run-vm.sh" --flavor trixie --initrd "$initrd" --log "$log" \
	--timeout "$((limit + 60))" >/dev/null || rc=$?

echo
echo "fio, io_uring, direct=1, ${runtime} s per run, $reps runs each; Linux" \
	"$(sed -n 's/.*VMTEST START [^ ]* [^ ]* //p' "$log") under QEMU TCG, 2 vCPUs"
"$top/bench/report.sh" "$log"
if ((rc != 0)); then
	echo "bench: some contenders failed; see $log" >&2
fi
exit "$rc"
