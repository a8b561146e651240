#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Benchmark, in one boot of the trixie (6.12) VM, the kernel loop device,
# the example vduse-blk and qemu-storage-daemon's vduse-blk export (1 and 2
# queues each), each on a file on tmpfs, with fio (4 KiB random read and
# write at iodepth 32, 1 MiB sequential read at iodepth 8, 4 KiB random read
# at iodepth 1 for latency), runs interleaved repetition -> workload ->
# contender (bench/guest.sh), and print tables of IOPS, bandwidth, ratio to
# loop and qd1 latency, with the host's load average before and after.
# Figures from TCG emulation: compare them within a run, as ratios.
# --build DIR takes vduse-blk and libvduse from DIR, so an older commit's
# build can be measured with this script.
#
# --compare DIR adds DIR's vduse-blk (an older commit's build) as a
# contender of its own, "vduse-blk-base" with 1 and 2 queues, in the same
# boot; in the guest it uses this build's libvduse.
#
# --contenders "NAME:QUEUES ..." runs these instead of the default list
# (names in bench/guest.sh; loop must be one of them for the ratios).
#
#   bench/run.sh [--build DIR] [--no-build] [--runtime SECONDS] [--reps N]
#       [--size-mb MB] [--compare DIR] [--contenders LIST]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build runtime=10 reps=3 size_mb=256 do_build=yes compare= contenders=
while (($#)); do
	case $1 in
	--build) build=$2; shift 2 ;;
	--no-build) do_build=no; shift ;;
	--runtime) runtime=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--size-mb) size_mb=$2; shift 2 ;;
	--compare) compare=$2; shift 2 ;;
	--contenders) contenders=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--no-build] [--runtime S] [--reps N] [--size-mb MB] [--compare DIR] [--contenders LIST]" >&2; exit 2 ;;
	esac
done

if [[ $do_build == yes ]]; then
	"$top/scripts/setup.sh"
	"$top/scripts/build.sh" "$build"
fi

ncont=5 extra=(--bin "$build/examples/vduse-null")
if [[ -n $contenders ]]; then
	ncont=$(wc -w <<<"$contenders")
	extra+=(--env "BENCH_CONTENDERS='$contenders'")
fi
if [[ -n $compare ]]; then
	# $ORIGIN/../lib: beside a lib/ holding its libvduse for ldd here; in
	# the guest /usr/local/lib, this build's.
	cmp=$(mktemp -d "${TMPDIR:-/tmp}/vduse-bench.XXXXXX")
	trap 'rm -rf "$cmp"' EXIT
	mkdir -p "$cmp/bin" "$cmp/lib"
	cp -L "$compare/examples/vduse-blk" "$cmp/bin/vduse-blk-base"
	cp -a "$compare"/lib/libvduse.so* "$cmp/lib/"
	extra+=(--bin "$cmp/bin/vduse-blk-base" --env BENCH_COMPARE=1)
	ncont=$((ncont + 2))
fi
# 4 workloads x reps x (runtime + ramp + start-up), per contender, plus slack
limit=$((ncont * 4 * reps * (runtime + 4) + 300))
initrd=$build/vm/bench.cpio
log=$build/vm/bench.log
"$top/tests/vm/mkinitramfs.sh" --flavor trixie --build "$build" \
	--guest "$top/bench/guest.sh" --out "$initrd" --bin qemu-storage-daemon \
	--env "BENCH_RUNTIME=$runtime" --env "BENCH_REPS=$reps" \
	--env "BENCH_SIZE_MB=$size_mb" --env "VMTEST_GUEST_TIMEOUT=$limit" \
	"${extra[@]}"
rc=0
load_before=$(uptime)
# 5 files of size_mb on a tmpfs of the guest's own (bench/guest.sh)
"$top/tests/vm/run-vm.sh" --flavor trixie --initrd "$initrd" --log "$log" \
	--mem "$((size_mb * ncont + 1024))" \
	--timeout "$((limit + 60))" >/dev/null || rc=$?
load_after=$(uptime)

echo
echo "fio, io_uring, direct=1, ${runtime} s per run, $reps runs each, interleaved; Linux" \
	"$(sed -n 's/.*VMTEST START [^ ]* [^ ]* //p' "$log") under QEMU TCG, 2 vCPUs"
echo "vduse-blk from $build ($(git -C "$build" rev-parse --short HEAD 2>/dev/null || echo '?'))"
[[ -z $compare ]] ||
	echo "vduse-blk-base from $compare ($(git -C "$compare" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "host load before:$load_before"
echo "host load after: $load_after"
"$top/bench/report.sh" "$log"
if ((rc != 0)); then
	echo "bench: some contenders failed; see $log" >&2
fi
exit "$rc"
