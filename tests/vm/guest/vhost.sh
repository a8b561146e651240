#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The virtual-machine path (issue 11, docs/virtual-machines.md): vduse-blk
# bound to vhost_vdpa (--driver vhost) and driven, as a VMM would, by a
# userspace virtio driver: libblkio's virtio-blk-vhost-vdpa driver through
# trixie's qemu-io, run with trixie's own loader and libraries from
# /opt/foreign (tests/vm/mkinitramfs.sh --foreign). Each qemu-io run is a
# new consumer of /dev/vhost-vdpa-N: it maps its memory (a memfd of
# libblkio's) into the device's IOTLB, which the library reaches through
# IOTLB_GET_FD (VA mode), and unmaps it when it exits.
#
# virtio_vdpa is loaded too, before vhost_vdpa, so that the bus binds
# virtio_vdpa first and --driver vhost goes through the rebind.

. /lib/vmtest.sh

BACKING=/tmp/backing.img
BACKING_MB=64
NAME=vh0
LOG=/tmp/vduse-blk.log
NODE_OUT=/tmp/node
F=/opt/foreign
QMOD=$F/usr/lib/x86_64-linux-gnu/qemu
QOUT=/tmp/qio.out
PID=
NODE=

qemu_io() {
	QEMU_MODULE_DIR=$QMOD "$F/lib/ld-linux-x86-64.so.2" --library-path "$F/lib" \
		"$F/usr/bin/qemu-io" "$@"
}

# qio [-r] COMMAND...: one consumer: open $NODE, run qemu-io's -c commands,
# close. Fails on a non-zero exit or on any line qemu-io prints about a
# failure (a pattern mismatch in an aio callback only prints one).
# qio_args COMMAND...: QARGS, the -c options quoted for eval.
qio_args() {
	QARGS=
	for _c in "$@"; do QARGS="$QARGS -c '$_c'"; done
}

qio() {
	_ro=
	[ "$1" = -r ] && { _ro=-r; shift; }
	qio_args "$@"
	eval qemu_io $_ro --image-opts \
		"driver=virtio-blk-vhost-vdpa,path=$NODE,cache.direct=on" \
		"$QARGS" >"$QOUT" 2>&1
	_rc=$?
	if [ "$_rc" != 0 ]; then
		echo "qemu-io exited with status $_rc"
		show_log "$QOUT"
		return 1
	fi
	if grep -qiE 'fail|error|mismatch|abort' "$QOUT"; then
		echo "qemu-io reported a failure"
		show_log "$QOUT"
		return 1
	fi
	return 0
}

# The opposite, for negative controls: qio must fail.
qio_fails() {
	if qio "$@" >/tmp/qio-neg.out; then
		echo "qemu-io succeeded where it must fail: $*"
		show_log "$QOUT"
		return 1
	fi
	return 0
}

# start [vduse-blk options]: start vduse-blk --driver vhost, wait for the
# node it prints.
start() {
	: >"$LOG"
	: >"$NODE_OUT"
	env ${START_ENV:-} vduse-blk --name "$NAME" --driver vhost --no-log "$@" "$BACKING" \
		>"$NODE_OUT" 2>"$LOG" &
	PID=$!
	if ! wait_for 60 test -s "$NODE_OUT"; then
		echo "no node printed"
		show_log "$LOG"
		return 1
	fi
	NODE=$(cat "$NODE_OUT")
	case $NODE in
	/dev/vhost-vdpa-[0-9]*) ;;
	*) echo "printed '$NODE', not a /dev/vhost-vdpa-N"; return 1 ;;
	esac
	wait_for 10 test -c "$NODE" || { echo "$NODE is not a character device"; return 1; }
	_drv=$(basename "$(readlink "/sys/bus/vdpa/devices/$NAME/driver")")
	[ "$_drv" = vhost_vdpa ] || { echo "$NAME is bound to '$_drv'"; return 1; }
	[ -e "/sys/bus/vdpa/devices/$NAME/${NODE#/dev/}" ] ||
		{ echo "$NODE is not $NAME's vhost-vdpa device"; return 1; }
	# Bound to virtio_vdpa first (registered first), then rebound through
	# driver_override: no disk may be left.
	_ovr=$(cat "/sys/bus/vdpa/devices/$NAME/driver_override")
	[ "$_ovr" = vhost_vdpa ] || { echo "driver_override is '$_ovr': no rebind"; return 1; }
	[ ! -e /sys/block/vda ] || { echo "/dev/vda exists"; return 1; }
	info "$NAME is $NODE"
}

# stop: SIGTERM, exit status 0, nothing left on the bus or in /dev.
stop() {
	kill -TERM "$PID"
	wait "$PID"
	_rc=$?
	PID=
	[ "$_rc" = 0 ] || { echo "vduse-blk exited with status $_rc"; show_log "$LOG"; return 1; }
	wait_for 10 test ! -e "$NODE" || { echo "$NODE still there"; return 1; }
	[ -z "$(vdpa dev show 2>&1)" ] || { echo "vdpa: $(vdpa dev show 2>&1)"; return 1; }
	[ "$(ls /dev/vduse 2>&1)" = control ] || { echo "/dev/vduse: $(ls /dev/vduse)"; return 1; }
}

alive() {
	kill -0 "$PID" 2>/dev/null && return 0
	echo "vduse-blk died"
	show_log "$LOG"
	return 1
}

# bytes_are FILE OFFSET LEN CHAR: LEN bytes of FILE at OFFSET (multiples of
# 512) all equal the character CHAR.
bytes_are() {
	_n=$(dd if="$1" bs=512 skip=$(($2 / 512)) count=$(($3 / 512)) 2>/dev/null | wc -c)
	[ "$_n" = "$3" ] || { echo "read $_n of $3 bytes of $1"; return 1; }
	_other=$(dd if="$1" bs=512 skip=$(($2 / 512)) count=$(($3 / 512)) 2>/dev/null |
		tr -d "$4" | wc -c)
	[ "$_other" = 0 ] && return 0
	echo "$_other bytes of $1 at $2 (+$3) are not '$4'"
	return 1
}

# Counts of the server's fds and mappings: the same after every consumer.
fds() { ls "/proc/$PID/fd" | wc -l; }
maps() { wc -l <"/proc/$PID/maps"; }
same_resources() { [ "$(fds)" = "$1" ] && [ "$(maps)" = "$2" ]; }

check_pattern() {
	qio 'write -P 0x5a 0 4M' 'read -P 0x5a 0 4M' || return 1
	# The bytes are in the backing file (0x5a is 'Z').
	bytes_are "$BACKING" 0 4194304 Z || return 1
	# And a pattern written into the file is what the consumer reads.
	dd if=/dev/zero bs=65536 count=16 2>/dev/null | tr '\0' 'q' |
		dd of="$BACKING" bs=65536 seek=128 conv=notrunc 2>/dev/null || return 1
	qio 'read -P 0x71 8M 1M' || return 1
	# Negative control: a wrong pattern is noticed.
	qio_fails 'read -P 0x5b 0 4M'
}

check_consumers() {
	_fds=$(fds) _maps=$(maps) _i=1
	while [ "$_i" -le 40 ]; do
		_off=$((16 * 1048576 + _i * 65536))
		qio "write -P $_i $_off 64k" "read -P $_i $_off 64k" ||
			{ echo "consumer $_i"; return 1; }
		alive || return 1
		_i=$((_i + 1))
	done
	# Each consumer's data is still there for the next one.
	set --
	_i=1
	while [ "$_i" -le 40 ]; do
		_off=$((16 * 1048576 + _i * 65536))
		set -- "$@" "read -P $_i $_off 64k"
		_i=$((_i + 1))
	done
	qio "$@" || return 1
	# Nothing the consumers mapped is left in the server.
	wait_for 10 same_resources "$_fds" "$_maps" && return 0
	echo "server had $_fds fds and $_maps mappings, now $(fds) and $(maps)"
	return 1
}

# 64 writes and then 64 reads in flight at once, 4 patterns.
check_aio() {
	set --
	_i=0
	while [ "$_i" -lt 64 ]; do
		set -- "$@" "aio_write -P $((0x40 + _i % 4)) $((32 * 1048576 + _i * 65536)) 64k"
		_i=$((_i + 1))
	done
	set -- "$@" aio_flush
	_i=0
	while [ "$_i" -lt 64 ]; do
		set -- "$@" "aio_read -P $((0x40 + _i % 4)) $((32 * 1048576 + _i * 65536)) 64k"
		_i=$((_i + 1))
	done
	set -- "$@" aio_flush
	qio "$@" || return 1
	_n=$(grep -c '^read 65536/65536' "$QOUT")
	[ "$_n" = 64 ] || { echo "$_n of 64 aio reads completed"; return 1; }
	# Negative control: a wrong pattern in an aio read is noticed.
	qio_fails "aio_read -P 0x39 $((32 * 1048576)) 64k" aio_flush
}

# Sizes and offsets that are not powers of two, the smallest sector, an
# unaligned byte range (the block layer reads, modifies and writes), a
# request over 1 MiB and the last sector of the disk.
check_odd() {
	_last=$((BACKING_MB * 1048576 - 512))
	_b=$((24 * 1048576))
	qio "write -P 0x21 $((_b + 3584)) 1536" "read -P 0x21 $((_b + 3584)) 1536" \
		"write -P 0x22 $((_b + 53760)) 67072" "read -P 0x22 $((_b + 53760)) 67072" \
		"write -P 0x23 $((_b + 1000001)) 3" "read -P 0x23 $((_b + 1000001)) 3" \
		'write -P 0x24 40960512 1049088' 'read -P 0x24 40960512 1049088' \
		"write -P 0x25 $_last 512" "read -P 0x25 $_last 512" || return 1
	bytes_are "$BACKING" $((_b + 53760)) 67072 '"' || return 1
	bytes_are "$BACKING" 40960512 1049088 '$' || return 1
	# Past the end: refused.
	qio_fails "read $((_last + 512)) 512"
}

check_flush() {
	_b=$((44 * 1048576))
	qio "write -P 0x31 $_b 64k" flush "aio_write -P 0x32 $((_b + 65536)) 64k" \
		aio_flush flush "read -P 0x32 $((_b + 65536)) 64k" "read -P 0x31 $_b 64k"
}

holds() { grep -c 'holding a flush' "$LOG"; }
holds_above() { [ "$(holds)" -gt "$1" ]; }

# Consumers killed while their requests are in flight in the device, between
# consumers that finish: the device outlives them all, every finished
# consumer's data is verified, and nothing is leaked. The server holds each
# completed FLUSH for 50 ms (VDUSE_BLK_TEST_HOLD_FLUSH_MS, started so by the
# caller). A victim sends 48 concurrent 128 KiB writes; qemu-io is
# write-through, so each is followed by a FLUSH, and the victim is
# SIGKILLed as soon as the server holds one. So the consumer's reset and
# unmapping reach the server while it holds requests whose buffers and rings
# are in the dead consumer's memory.
check_stress() {
	_fds=$(fds) _maps=$(maps) _round=1 _mid=0 _retries=0
	while [ "$_round" -le 16 ]; do
		set --
		_i=0
		while [ "$_i" -lt 48 ]; do
			set -- "$@" "aio_write -P $_round $((48 * 1048576 + _i * 131072)) 128k"
			_i=$((_i + 1))
		done
		set -- "$@" aio_flush
		_held=$(holds)
		qio_args "$@"
		eval qemu_io --image-opts \
			"driver=virtio-blk-vhost-vdpa,path=$NODE,cache.direct=on" \
			"$QARGS" >/tmp/victim.out 2>&1 &
		_v=$!
		if wait_for 30 holds_above "$_held" && kill -KILL "$_v" 2>/dev/null; then
			_mid=$((_mid + 1))
		fi
		wait "$_v" 2>/dev/null
		alive || { echo "round $_round"; return 1; }
		# A finishing consumer right after it: writes, reads back. The
		# victim's fd may still be held for a moment after it died (by
		# its io_uring, torn down asynchronously): vhost_vdpa lets one
		# opener in at a time, and libblkio reports that as a failure
		# to connect. Only that is retried.
		_off=$((56 * 1048576 + _round * 65536))
		_tries=0
		until qio "write -P $((_round + 100)) $_off 64k" \
			"read -P $((_round + 100)) $_off 64k" >/tmp/qio-try.out; do
			if ! grep -q 'Failed to connect' "$QOUT" || [ "$_tries" -ge 50 ]; then
				cat /tmp/qio-try.out
				echo "round $_round: the next consumer failed"
				return 1
			fi
			_tries=$((_tries + 1))
			sleep 0.2
		done
		_retries=$((_retries + _tries))
		_round=$((_round + 1))
	done
	# All the finishing consumers' data at once, and in the backing file.
	set --
	_round=1
	while [ "$_round" -le 16 ]; do
		set -- "$@" "read -P $((_round + 100)) $((56 * 1048576 + _round * 65536)) 64k"
		_round=$((_round + 1))
	done
	qio "$@" || return 1
	bytes_are "$BACKING" $((56 * 1048576 + 16 * 65536)) 65536 "$(printf '\\%03o' 116)" ||
		return 1
	info "stress: $_mid of 16 victims killed while the server held a FLUSH of theirs, $_retries connection retries"
	# Meaningful only if the victims really died with a request held.
	[ "$_mid" -ge 12 ] || { echo "only $_mid victims killed during a held FLUSH"; return 1; }
	wait_for 10 same_resources "$_fds" "$_maps" && return 0
	echo "server had $_fds fds and $_maps mappings, now $(fds) and $(maps)"
	return 1
}

check_read_only() {
	_before=$(md5sum <"$BACKING")
	qio -r 'read -P 0x5a 0 64k' || return 1
	qio_fails 'write -P 0x66 0 64k' || return 1
	_after=$(md5sum <"$BACKING")
	[ "$_before" = "$_after" ] || { echo "the backing file changed"; return 1; }
}

# virtio_vdpa asked for by name: the host path, /dev/vda.
check_virtio() {
	: >"$LOG"
	vduse-blk --name "$NAME" --driver virtio --no-log "$BACKING" 2>"$LOG" &
	PID=$!
	wait_for 60 test -b /dev/vda || { echo "no /dev/vda"; show_log "$LOG"; return 1; }
	_drv=$(basename "$(readlink "/sys/bus/vdpa/devices/$NAME/driver")")
	[ "$_drv" = virtio_vdpa ] || { echo "$NAME is bound to '$_drv'"; return 1; }
	# What the vhost consumers wrote, read through the host's virtio_blk.
	bytes_are /dev/vda 0 4194304 Z || return 1
	NODE=/dev/vda
	stop
}

# vhost_vdpa not loaded: a clear error, exit status 1, nothing left.
check_not_loaded() {
	rmmod vhost_vdpa || { echo "rmmod vhost_vdpa failed"; return 1; }
	vduse-blk --name "$NAME" --driver vhost --no-log "$BACKING" >/dev/null 2>"$LOG"
	_rc=$?
	[ "$_rc" = 1 ] || { echo "exit status $_rc"; show_log "$LOG"; return 1; }
	grep -q 'modprobe vhost_vdpa' "$LOG" || { echo "no hint to load vhost_vdpa"; show_log "$LOG"; return 1; }
	[ -z "$(vdpa dev show 2>&1)" ] || { echo "vdpa: $(vdpa dev show 2>&1)"; return 1; }
	[ "$(ls /dev/vduse 2>&1)" = control ] || { echo "/dev/vduse: $(ls /dev/vduse)"; return 1; }
}

check modules-vhost test -d /sys/bus/vdpa/drivers/vhost_vdpa -a -d /sys/bus/vdpa/drivers/virtio_vdpa
check qemu-io qemu_io --version
dd if=/dev/zero of="$BACKING" bs=1M count="$BACKING_MB" 2>/dev/null ||
	{ fail setup "cannot create $BACKING"; exit 1; }

if check attach-vhost start --queues 2; then
	check pattern check_pattern
	check consumers check_consumers
	check aio check_aio
	check odd-sizes check_odd
	check flush check_flush
	check alive alive
	check detach stop
fi
START_ENV=VDUSE_BLK_TEST_HOLD_FLUSH_MS=50
if check attach-vhost-hold start; then
	check stress check_stress
	check stress-alive alive
	check detach-stress stop
fi
START_ENV=
if check attach-vhost-ro start --read-only; then
	check read-only check_read_only
	check detach-ro stop
fi
check driver-virtio check_virtio
check not-loaded check_not_loaded
[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
exit 0
