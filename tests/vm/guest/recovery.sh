#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Crash recovery of vduse-blk on a real kernel (docs/recovery.md; run as
# /test.sh by /init): the daemon is SIGKILLed under load and started again
# with the same command line; the driver must see no I/O error and every
# byte written must read back.
#
#   fio-kills   fio verified random writes (iodepth 16, direct, a flush
#               every 16 writes) on the disk while the daemon is killed
#               and restarted 5 times at random moments
#   flush-kill  the daemon is killed while it holds a completed FLUSH
#               (VDUSE_BLK_TEST_HOLD_FLUSH_MS): the flush completes after
#               the restart
#   ext4-kills  files written to a mounted ext4 across 2 kills, compared,
#               then e2fsck clean
#   refusals    a restart without the log, with another file, with another
#               queue count: refused with a clear message, then the right
#               restart still works
#   clean-exit  SIGTERM: the device goes away and the log is removed
#   layout      virtio_blk runs on a packed ring (VIRTIO_F_RING_PACKED,
#               which vduse-blk offers with its log), split on the shim
#   *-split     (not on the shim, which is split anyway) the same daemon
#               with --no-packed: layout-split, fio-kills-split (2 kills,
#               2 loops), clean-exit-split
#   dead-refused (the shim only: upstream VDUSE never fails a device whose
#               daemon died) a restart after reconnect_timeout: the shim
#               failed the device, and vduse-blk says so
# Plus: no I/O error, hung task or blocked task in dmesg.

. /lib/vmtest.sh
. /lib/vmtest-blk.sh

NAME=vduse-blk0
BACKING=/tmp/backing.img
LOG=/run/vduse-blk/$NAME
QUEUES=2
KILLS=5
FIO_LOOPS=5
# Options of the pass (--no-packed for the split one).
EXTRA=
RECOVERED="recovered: packed"
# A serial of its own: a restart must rebuild the same log_id from it.
SERIAL=recovery-serial
truncate -s 64M "$BACKING"

# The one command line every restart repeats.
serve() {
	# shellcheck disable=SC2086
	vduse-blk --name "$NAME" --queues "$QUEUES" --serial "$SERIAL" -v \
		$EXTRA "$BACKING" "$@" 2>>"$BLK_LOG" &
	BLK_PID=$!
}

# restart: start the daemon again; wait until it served the disk again
# and recovered its queues on the ring layout of the pass ($RECOVERED:
# the library's line for a packed or a split queue).
restart() {
	: >"$BLK_LOG"
	serve
	if wait_for 60 blk_attached && blk_alive && grep -q "reconnected" "$BLK_LOG"; then
		wait_for 10 grep -q "$RECOVERED" "$BLK_LOG" && return 0
		echo "no '$RECOVERED' line from the restarted daemon:"
	else
		echo "the restarted daemon did not reconnect:"
	fi
	cat "$BLK_LOG"
	return 1
}

# kill_daemon: SIGKILL it and reap it.
kill_daemon() {
	kill -KILL "$BLK_PID"
	wait "$BLK_PID" 2>/dev/null
	return 0
}

# A random number of milliseconds from $1 to $2.
rand_ms() {
	_r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	echo $(($1 + _r % ($2 - $1 + 1)))
}

msleep() { usleep $(($1 * 1000)); }

# finish SECONDS PID: wait for a background job, at most SECONDS; on a
# timeout show where the I/O is stuck and kill it.
finish() {
	if wait_for "$1" sh -c "! kill -0 $2 2>/dev/null"; then
		wait "$2"
		return
	fi
	echo "still running after $1 s; requests in flight: $(cat /sys/block/vda/inflight)"
	tail -n 40 "$BLK_LOG"
	dmesg | tail -n 20
	kill -KILL "$2"
	wait "$2" 2>/dev/null
	return 124
}

fio_verify() {
	fio --name=recover --filename=/dev/vda --direct=1 --ioengine=libaio \
		--iodepth=16 --rw=randwrite --bs=4k --size=64M --loops="$FIO_LOOPS" --fsync=16 \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never \
		--output=/tmp/fio.out
}

check_fio_kills() {
	fio_verify &
	_fio=$!
	_i=1
	while [ "$_i" -le "$KILLS" ]; do
		msleep "$(rand_ms 300 2500)"
		if ! kill -0 "$_fio" 2>/dev/null; then
			echo "fio ended before kill $_i: make the job longer"
			wait "$_fio"
			return 1
		fi
		info "kill $_i of $KILLS"
		kill_daemon
		restart || { kill -KILL "$_fio"; return 1; }
		_i=$((_i + 1))
	done
	finish 240 "$_fio"
	_rc=$?
	if [ "$_rc" = 0 ] && grep -q 'err= 0' /tmp/fio.out &&
		! grep -q 'err= [1-9]' /tmp/fio.out; then
		return 0
	fi
	echo "fio exited with $_rc"
	show_log /tmp/fio.out
	return 1
}

# A FLUSH popped and executed but not yet completed when the daemon dies.
check_flush_kill() {
	kill -TERM "$BLK_PID"
	wait "$BLK_PID" || { echo "SIGTERM exit status $?"; return 1; }
	: >"$BLK_LOG"
	VDUSE_BLK_TEST_HOLD_FLUSH_MS=600000 serve
	wait_for 60 blk_attached && wait_for 30 blk_have_vda ||
		{ echo "no disk"; cat "$BLK_LOG"; return 1; }
	dd if=/dev/urandom of=/tmp/flush.bin bs=64k count=8 2>/dev/null
	# dd's fsync after its writes is the FLUSH the daemon holds.
	dd if=/tmp/flush.bin of=/dev/vda bs=64k conv=fsync 2>/tmp/dd.err &
	_dd=$!
	wait_for 60 grep -q "holding a flush" "$BLK_LOG" ||
		{ echo "the daemon never held a flush"; cat "$BLK_LOG"; return 1; }
	kill -0 "$_dd" 2>/dev/null || { echo "dd finished before the kill"; return 1; }
	kill_daemon
	restart || return 1
	finish 120 "$_dd" || { echo "dd failed:"; cat /tmp/dd.err; return 1; }
	dd if=/dev/vda of=/tmp/flush.out bs=64k count=8 iflag=direct 2>/dev/null
	cmp /tmp/flush.bin /tmp/flush.out
}

check_ext4_kills() {
	mkfs.ext4 -q -F /dev/vda || return 1
	mkdir -p /mnt/vda
	mount -t ext4 /dev/vda /mnt/vda || return 1
	dd if=/dev/urandom of=/tmp/ref.bin bs=64k count=16 2>/dev/null
	(
		for i in $(seq 1 40); do
			cp /tmp/ref.bin "/mnt/vda/f$i" || exit 1
			[ $((i % 8)) = 0 ] && sync
		done
		sync
	) &
	_w=$!
	for _k in 1 2; do
		msleep "$(rand_ms 300 1500)"
		info "ext4: kill $_k"
		kill_daemon
		restart || { kill -KILL "$_w"; return 1; }
	done
	finish 240 "$_w" || { echo "a writer failed"; return 1; }
	umount /mnt/vda || return 1
	echo 3 >/proc/sys/vm/drop_caches
	mount -t ext4 /dev/vda /mnt/vda || return 1
	_ok=1
	for i in $(seq 1 40); do
		cmp /tmp/ref.bin "/mnt/vda/f$i" || _ok=0
	done
	umount /mnt/vda || return 1
	e2fsck -fn /dev/vda || { echo "e2fsck found problems"; _ok=0; }
	[ "$_ok" = 1 ]
}

# refused WHAT PATTERN ARGS...: a restart with ARGS exits 1 saying PATTERN.
refused() {
	_what=$1 _pat=$2
	shift 2
	vduse-blk "$@" >/tmp/refused.log 2>&1
	_rc=$?
	if [ "$_rc" = 1 ] && grep -q -- "$_pat" /tmp/refused.log; then
		return 0
	fi
	echo "restart $_what: status $_rc, wanted 1 and '$_pat':"
	cat /tmp/refused.log
	return 1
}

check_refusals() {
	_ok=1
	kill_daemon
	mv "$LOG" /tmp/log.saved
	refused "without the log" "no in-flight log at $LOG" \
		--name "$NAME" --queues "$QUEUES" --serial "$SERIAL" "$BACKING" || _ok=0
	mv /tmp/log.saved "$LOG"
	truncate -s 64M /tmp/other.img
	refused "with another file" "log_id differs" \
		--name "$NAME" --queues "$QUEUES" --serial "$SERIAL" /tmp/other.img || _ok=0
	refused "with another queue count" "queue count" \
		--name "$NAME" --queues 1 --serial "$SERIAL" "$BACKING" || _ok=0
	refused "with another block size" "config space differs" \
		--name "$NAME" --queues "$QUEUES" --serial "$SERIAL" --block-size 4096 "$BACKING" || _ok=0
	restart || _ok=0
	dd if=/dev/vda of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null || _ok=0
	[ "$_ok" = 1 ]
}

check_clean_exit() {
	kill -TERM "$BLK_PID"
	wait "$BLK_PID" || { echo "exit status $?"; return 1; }
	wait_for 10 blk_no_vda || { echo "/dev/vda still there"; return 1; }
	[ ! -e "$LOG" ] || { echo "$LOG left behind"; return 1; }
	[ "$(ls /dev/vduse)" = control ] || { echo "device left: $(ls /dev/vduse)"; return 1; }
}

SHIM_PARAMS=/sys/module/vduse_shim/parameters
[ -d "$SHIM_PARAMS" ] && RECOVERED="recovered: avail"

check_dead_refused() {
	echo 2 >"$SHIM_PARAMS/reconnect_timeout" || return 1
	: >"$BLK_LOG"
	serve
	wait_for 60 blk_attached && wait_for 30 blk_have_vda ||
		{ echo "no disk"; cat "$BLK_LOG"; return 1; }
	kill_daemon
	sleep 4
	refused "after reconnect_timeout" "failed it after its timeout" \
		--name "$NAME" --queues "$QUEUES" --serial "$SERIAL" "$BACKING"
}

# The ring layout virtio_blk negotiated: bit 34 (VIRTIO_F_RING_PACKED) of
# the device's features in sysfs, a string of '0'/'1' from bit 0.
check_layout() {
	_f=$(cat /sys/block/vda/device/features) || return 1
	_bit=$(echo "$_f" | cut -c35)
	info "features $_f: packed bit '$_bit', want '$1'"
	[ "$_bit" = "$1" ]
}

check_dmesg() {
	if dmesg | grep -E 'I/O error|blocked for more than|hung_task|rcu.*stall' >/tmp/dmesg.bad; then
		cat /tmp/dmesg.bad
		return 1
	fi
}

: >"$BLK_LOG"
serve
if wait_for 60 blk_attached && blk_alive && wait_for 30 blk_have_vda; then
	pass start
	[ -e "$LOG" ] && pass log-created || fail log-created "no $LOG"
	# Upstream VDUSE passes packed rings to virtio_blk; the shim strips
	# the bit (docs/kernel-shim.md).
	if [ -d "$SHIM_PARAMS" ]; then
		check layout check_layout 0
	else
		check layout check_layout 1
	fi
	check fio-kills check_fio_kills
	check flush-kill check_flush_kill
	check ext4-kills check_ext4_kills
	check refusals check_refusals
	check clean-exit check_clean_exit
else
	fail start "no disk"
	show_log "$BLK_LOG"
fi
# Split rings with the log too (the shim's run is split throughout).
if [ ! -d "$SHIM_PARAMS" ]; then
	EXTRA=--no-packed KILLS=2 FIO_LOOPS=2 RECOVERED="recovered: avail"
	: >"$BLK_LOG"
	serve
	if wait_for 60 blk_attached && blk_alive && wait_for 30 blk_have_vda; then
		pass start-split
		check layout-split check_layout 0
		check fio-kills-split check_fio_kills
		check clean-exit-split check_clean_exit
	else
		fail start-split "no disk"
		show_log "$BLK_LOG"
	fi
	EXTRA=
fi
check dmesg-clean check_dmesg
# Last: it leaves a dead device behind.
if [ -d "$SHIM_PARAMS" ]; then
	check dead-refused check_dead_refused
fi
