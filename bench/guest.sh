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

RUNTIME=${BENCH_RUNTIME:-10}
REPS=${BENCH_REPS:-3}
SIZE_MB=${BENCH_SIZE_MB:-256}
FILE=/tmp/bench.img
LOG=/tmp/server.log
PID=

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

have_vda() { [ -b /dev/vda ]; }
no_vda() { [ ! -e /dev/vda ]; }
attached() { grep -q attached "$LOG" || ! kill -0 "$PID" 2>/dev/null; }

start_server() {
	: >"$LOG"
	case $1 in
	vduse-blk)
		vduse-blk --queues "$2" "$FILE" 2>"$LOG" &
		PID=$!
		wait_for 60 attached
		;;
	qsd)
		qemu-storage-daemon \
			--blockdev "driver=file,node-name=file0,filename=$FILE,aio=io_uring,cache.direct=on" \
			--export "type=vduse-blk,id=vduse0,node-name=file0,name=bench0,num-queues=$2,queue-size=256,writable=on" \
			>"$LOG" 2>&1 &
		PID=$!
		wait_for 60 test -e /dev/vduse/bench0 &&
			vdpa dev add name bench0 mgmtdev vduse >>"$LOG" 2>&1
		;;
	esac
	kill -0 "$PID" 2>/dev/null && wait_for 30 have_vda
}

stop_server() {
	[ "$1" = qsd ] && vdpa dev del bench0 >>"$LOG" 2>&1
	kill -TERM "$PID" 2>/dev/null
	wait "$PID"
	wait_for 10 no_vda
}

# The kernel's loop device: the reference.
fresh_file
if losetup /dev/loop0 "$FILE"; then
	bench_dev loop 1 /dev/loop0
	losetup -d /dev/loop0
else
	fail bench-loop-q1 "losetup failed"
fi

for server in vduse-blk qsd; do
	for queues in 1 2; do
		fresh_file
		if start_server "$server" "$queues"; then
			bench_dev "$server" "$queues" /dev/vda
			stop_server "$server" || fail "bench-$server-q$queues-stop" "server did not stop cleanly"
		else
			fail "bench-$server-q$queues" "device did not appear"
			show_log "$LOG"
			kill -KILL "$PID" 2>/dev/null
			wait "$PID" 2>/dev/null
		fi
	done
done
rm -f "$FILE"
exit 0
