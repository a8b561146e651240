#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The benchmark inside the VM (run as /test.sh by tests/vm/guest/init.sh).
# Every contender is set up first, each on its own file on tmpfs, and stays
# up for the whole run:
#   loop        the kernel loop device (buffered: the file's tmpfs pages)
#   vduse-blk   the example, 1 and 2 queues (buffered: on tmpfs it copies
#               with preadv/pwritev in the queue thread)
#               (and vduse-blk-base, an older build of it, with BENCH_COMPARE)
#   qsd         qemu-storage-daemon's vduse-blk export, 1 and 2 queues
#               (aio=io_uring, cache.direct=on)
# Then the runs are interleaved, repetition -> workload -> contender, so
# that a change in the host's load hits every contender alike. Each run
# prints
#   BENCH <contender> <queues> <workload> <rep> <iops> <bw KiB/s> <p50 us> <p99 us>
# (p50/p99: completion latency). bench/report.sh turns them into tables.

. /lib/vmtest.sh

RUNTIME=${BENCH_RUNTIME:-10}
REPS=${BENCH_REPS:-3}
SIZE_MB=${BENCH_SIZE_MB:-256}
DIR=/mnt/bench
WORKLOADS="randread randwrite seqread qd1read"
# "name:queues": the contenders, in the order each workload runs them
# (bench/run.sh --contenders gives another list; the names it may use:
# loop, vduse-blk, vduse-blk-packed (vduse-blk --no-log, so that it offers
# packed rings), vduse-null (reads zeros and stores nothing: what VDUSE and
# the library cost without any I/O), vduse-null-poll (the same, busy-polling
# with kicks off: the floor under any daemon) and qsd; vduse-blk-WORD-...
# adds options to vduse-blk, one per word: ring (--wait=ring), runner
# (--wait=runner), pin (--pin), float (--no-pin), pollN (--poll-us=N),
# packed (--no-log), base (the --compare build's binary))
CONTENDERS=${BENCH_CONTENDERS:-"loop:1 vduse-blk:1 vduse-blk:2 qsd:1 qsd:2"}
# bench/run.sh --compare: an older build's vduse-blk as well
[ -n "${BENCH_COMPARE:-}" ] &&
	CONTENDERS="$CONTENDERS vduse-blk-base:1 vduse-blk-base:2"
NCONT=$(echo "$CONTENDERS" | wc -w)

info "bench: fio ${RUNTIME}s x $REPS per workload, ${SIZE_MB} MiB files on tmpfs, $(nproc) vCPUs"

# fio_run DEV WORKLOAD: one fio run; prints "<iops> <bw KiB/s> <p50> <p99>".
fio_run() {
	case $2 in
	randread) _args="--rw=randread --bs=4k --iodepth=32" ;;
	randwrite) _args="--rw=randwrite --bs=4k --iodepth=32" ;;
	seqread) _args="--rw=read --bs=1M --iodepth=8" ;;
	qd1read) _args="--rw=randread --bs=4k --iodepth=1" ;;
	esac
	# Terse v3: the read section is fields 6-46, the write section 47-87;
	# in each, iops is the 3rd field, bandwidth the 2nd and the 20 clat
	# percentiles ("P%=usec") fields 13-32.
	# shellcheck disable=SC2086
	fio --name="$2" --filename="$1" --thread --direct=1 --ioengine=io_uring \
		--numjobs=1 --time_based --runtime="$RUNTIME" --ramp_time=1 \
		--eta=never --output-format=terse --terse-version=3 $_args |
		awk -F';' -v wl="$2" '
			$5 != 0 { exit 1 }
			{
				b = wl == "randwrite" ? 41 : 0
				p50 = p99 = "-"
				for (i = 18 + b; i <= 37 + b; i++) {
					split($i, kv, "=")
					if (kv[1] == "50.000000%") p50 = kv[2]
					if (kv[1] == "99.000000%") p99 = kv[2]
				}
				print $(8 + b), $(7 + b), p50, p99; ok = 1
			}
			END { if (!ok) exit 1 }'
}

# The block device of vdpa device $1, if it has one.
vdpa_disk() {
	for _d in /sys/bus/vdpa/devices/"$1"/virtio*/block/*; do
		[ -e "$_d" ] && echo "/dev/${_d##*/}" && return 0
	done
	return 1
}

# srv_start SERVER QUEUES NAME FILE: start a VDUSE server in the background
# and set SRV_DEV to its block device. Its pid goes to /run/bench.NAME.pid,
# its output to /run/bench.NAME.log.
srv_start() {
	_log=/run/bench.$3.log
	case $1 in
	vduse-blk-packed)
		vduse-blk --no-log --name "$3" --queues "$2" "$4" >"$_log" 2>&1 &
		echo $! >"/run/bench.$3.pid"
		;;
	vduse-null | vduse-null-poll)
		_args=
		[ "$1" = vduse-null-poll ] && _args=--poll
		# shellcheck disable=SC2086
		vduse-null $_args --queues "$2" --name "$3" --size "$SIZE_MB" \
			>"$_log" 2>&1 &
		echo $! >"/run/bench.$3.pid"
		;;
	vduse-blk*)
		_bin=vduse-blk _args=
		for _w in $(echo "${1#vduse-blk}" | tr - ' '); do
			case $_w in
			base) _bin=vduse-blk-base ;;
			ring | runner) _args="$_args --wait=$_w" ;;
			pin) _args="$_args --pin" ;;
			float) _args="$_args --no-pin" ;;
			poll*) _args="$_args --poll-us=${_w#poll}" ;;
			packed) _args="$_args --no-log" ;;
			esac
		done
		# shellcheck disable=SC2086
		"$_bin" $_args --name "$3" --queues "$2" "$4" >"$_log" 2>&1 &
		echo $! >"/run/bench.$3.pid"
		;;
	qsd)
		qemu-storage-daemon \
			--blockdev "driver=file,node-name=file0,filename=$4,aio=io_uring,cache.direct=on" \
			--export "type=vduse-blk,id=vduse0,node-name=file0,name=$3,num-queues=$2,queue-size=256,writable=on" \
			>"$_log" 2>&1 &
		echo $! >"/run/bench.$3.pid"
		wait_for 60 test -e "/dev/vduse/$3" &&
			vdpa dev add name "$3" mgmtdev vduse >>"$_log" 2>&1
		;;
	esac
	SRV_DEV=
	wait_for 60 vdpa_disk "$3" >/dev/null && SRV_DEV=$(vdpa_disk "$3")
}

srv_stop() {
	[ "$1" = qsd ] && vdpa dev del "$2" >>"/run/bench.$2.log" 2>&1
	_pid=$(cat "/run/bench.$2.pid")
	kill -TERM "$_pid" 2>/dev/null
	wait "$_pid"
}

mkdir -p "$DIR"
if ! mount -t tmpfs -o size=$((SIZE_MB * NCONT + 64))m tmpfs "$DIR"; then
	fail bench-setup "cannot mount a tmpfs on $DIR"
	exit 0
fi

# Set up every contender; DEV_<n> is the device of contender number n.
n=0
ready=
for c in $CONTENDERS; do
	n=$((n + 1))
	name=${c%:*} queues=${c#*:}
	file=$DIR/$name-q$queues.img
	dd if=/dev/zero of="$file" bs=1M count="$SIZE_MB" 2>/dev/null
	case $name in
	loop) dev=/dev/loop0; losetup "$dev" "$file" || dev= ;;
	*) srv_start "$name" "$queues" "b$n" "$file"; dev=$SRV_DEV ;;
	esac
	if [ -b "$dev" ]; then
		eval "DEV_$n=$dev"
		ready="$ready $n"
		info "bench: $name with $queues queue(s) is $dev"
	else
		fail "bench-$name-q$queues" "device did not appear"
		[ "$name" != loop ] && show_log "/run/bench.b$n.log"
	fi
done

rep=1
while [ "$rep" -le "$REPS" ]; do
	for wl in $WORKLOADS; do
		n=0
		for c in $CONTENDERS; do
			n=$((n + 1))
			case " $ready " in *" $n "*) ;; *) continue ;; esac
			name=${c%:*} queues=${c#*:}
			eval "dev=\$DEV_$n"
			if r=$(fio_run "$dev" "$wl"); then
				echo "BENCH $name $queues $wl $rep $r"
			else
				fail "bench-$name-q$queues" "fio $wl failed on $dev"
				ready=$(echo " $ready " | sed "s/ $n / /")
			fi
		done
	done
	rep=$((rep + 1))
done

n=0
for c in $CONTENDERS; do
	n=$((n + 1))
	name=${c%:*} queues=${c#*:}
	eval "dev=\${DEV_$n:-}"
	[ -n "$dev" ] || continue
	case $name in
	loop) losetup -d "$dev" || fail bench-loop-stop "losetup -d failed" ;;
	*) srv_stop "$name" "b$n" ||
		fail "bench-$name-q$queues-stop" "server did not stop cleanly" ;;
	esac
	case " $ready " in *" $n "*) pass "bench-$name-q$queues" ;; esac
done
umount "$DIR"
exit 0
