#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The benchmark inside the VM (run as /test.sh by tests/vm/guest/init.sh).
# For each contender (kernel loop device, the example vduse-blk, and
# qemu-storage-daemon's vduse-blk export, the last two with 1 and 2 queues)
# on a fresh file on tmpfs, run each fio workload BENCH_REPS times and print
#   BENCH <contender> <queues> <workload> <rep> <iops> <bw KiB/s>
# bench/report.sh turns those lines into the table.

. /lib/vmtest.sh
. /lib/vmtest-blk.sh

RUNTIME=${BENCH_RUNTIME:-10}
REPS=${BENCH_REPS:-3}
SIZE_MB=${BENCH_SIZE_MB:-256}
FILE=/tmp/bench.img

info "bench: fio ${RUNTIME}s x $REPS per workload, ${SIZE_MB} MiB file on tmpfs, $(nproc) vCPUs"

# fio_run DEV WORKLOAD: one fio run; prints "<iops> <bw KiB/s>".
fio_run() {
	case $2 in
	randread) _args="--rw=randread --bs=4k --iodepth=32" ;;
	randwrite) _args="--rw=randwrite --bs=4k --iodepth=32" ;;
	seqread) _args="--rw=read --bs=1M --iodepth=8" ;;
	esac
	# shellcheck disable=SC2086
	fio --name="$2" --filename="$1" --thread --direct=1 --ioengine=io_uring \
		--numjobs=1 --time_based --runtime="$RUNTIME" --ramp_time=1 \
		--eta=never --output-format=terse --terse-version=3 $_args |
		awk -F';' -v wl="$2" '
			$5 != 0 { exit 1 }
			{ if (wl == "randwrite") print $49, $48; else print $8, $7; ok = 1 }
			END { if (!ok) exit 1 }'
}

# bench_dev CONTENDER QUEUES DEV: all workloads and repetitions.
bench_dev() {
	for _wl in randread randwrite seqread; do
		_rep=1
		while [ "$_rep" -le "$REPS" ]; do
			if ! _r=$(fio_run "$3" "$_wl"); then
				fail "bench-$1-q$2" "fio $_wl failed on $3"
				return 1
			fi
			echo "BENCH $1 $2 $_wl $_rep $_r"
			_rep=$((_rep + 1))
		done
	done
	pass "bench-$1-q$2"
}

fresh_file() {
	rm -f "$FILE"
	dd if=/dev/zero of="$FILE" bs=1M count="$SIZE_MB" 2>/dev/null
}

# The kernel's loop device: the reference.
fresh_file
if losetup /dev/loop0 "$FILE"; then
	bench_dev loop 1 /dev/loop0
	losetup -d /dev/loop0
else
	fail bench-loop-q1 "losetup failed"
fi

for server in example qsd; do
	label=$server
	[ "$server" = example ] && label=vduse-blk
	for queues in 1 2; do
		fresh_file
		if blk_start "$server" bench0 "$queues" rw "$FILE"; then
			bench_dev "$label" "$queues" /dev/vda
			{ blk_stop "$server" bench0 && wait_for 10 blk_no_vda; } ||
				fail "bench-$label-q$queues-stop" "server did not stop cleanly"
		else
			fail "bench-$label-q$queues" "device did not appear"
			show_log "$BLK_LOG"
		fi
	done
done
rm -f "$FILE"
exit 0
