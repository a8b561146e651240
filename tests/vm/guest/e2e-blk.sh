#!/bin/sh
# SPDX-License-Identifier: MIT
#
# End-to-end test of a VDUSE block device on a real kernel (run as /test.sh
# by /init). The device server is the project's example, vduse-blk
# (VMTEST_SERVER=example, the default), or qemu-storage-daemon's vduse-blk
# export (VMTEST_SERVER=qsd, used to check the harness itself).
# The backing file lives on the guest's tmpfs.

. /lib/vmtest.sh
. /lib/vmtest-blk.sh

SERVER=${VMTEST_SERVER:-example}
BACKING=/tmp/backing.img
BACKING_MB=64
case $SERVER in
example) NAME=vduse-blk0 EXTRA="--serial vmtest-serial --verbose" ;;
qsd) NAME=vduse0 EXTRA= ;;
*) fail setup "unknown VMTEST_SERVER=$SERVER"; exit 1 ;;
esac
info "server $SERVER, device $NAME, backing file ${BACKING_MB} MiB on tmpfs"

# start_dev NAME-OF-CHECK QUEUES rw|ro: start the server, wait for /dev/vda.
start_dev() {
	# shellcheck disable=SC2086
	if blk_start "$SERVER" "$NAME" "$2" "$3" "$BACKING" $EXTRA; then
		pass "$1"
		return 0
	fi
	fail "$1" "/dev/vda did not appear (server $SERVER, $2 queues, $3)"
	show_log "$BLK_LOG"
	return 1
}

# stop_dev NAME-OF-CHECK: SIGTERM the server, expect exit 0 and no leftovers.
stop_dev() {
	_check=$1
	_rc=0
	blk_stop "$SERVER" "$NAME" || _rc=$?
	if [ "$_rc" = 0 ]; then
		pass "$_check-exit"
	else
		fail "$_check-exit" "server exited with status $_rc after SIGTERM"
		show_log "$BLK_LOG"
	fi
	_left=
	wait_for 10 blk_no_vda || _left="$_left /dev/vda"
	[ -z "$(vdpa dev show 2>&1)" ] || _left="$_left vdpa:[$(vdpa dev show 2>&1 | tr '\n' ' ')]"
	[ "$(ls /dev/vduse 2>&1)" = control ] || _left="$_left /dev/vduse:[$(ls /dev/vduse 2>&1 | tr '\n' ' ')]"
	if [ -z "$_left" ]; then
		pass "$_check-clean"
	else
		fail "$_check-clean" "left behind:$_left"
	fi
}

# What the library negotiated with the kernel, from vduse-blk --verbose's
# "uapi:" lines (API version, VDUSE features, ring layout) and the library's
# own line (what the kernel offered), as INFO lines.  The version chosen
# must be the highest both speak: the kernel's, up to 1.
check_uapi() {
	grep -e 'uapi:' -e 'kernel: ' "$BLK_LOG" >/tmp/uapi.out || { echo "no uapi: line"; return 1; }
	while read -r _l; do info "uapi ${_l#*uapi: }"; done </tmp/uapi.out
	set -- $(sed -n 's/.*VDUSE API version \([0-9]*\) (kernel: \([0-9]*\)).*/\1 \2/p' /tmp/uapi.out)
	[ $# = 2 ] || { echo "no 'VDUSE API version N (kernel: M)' line"; return 1; }
	_want=$2
	[ "$_want" -gt 1 ] && _want=1
	[ "$1" = "$_want" ] || { echo "API version $1 chosen, kernel offers $2"; return 1; }
	grep -q "VDUSE API version $1," /tmp/uapi.out && grep -q 'ring layout' /tmp/uapi.out ||
		{ echo "vduse-blk --verbose did not say the API version and the ring layout"; return 1; }
	# With VDUSE_F_QUEUE_READY (7.3) the driver enables each queue by a
	# message: both queues must have been enabled that way.
	grep -q 'VDUSE features [A-Z_,]*QUEUE_READY' /tmp/uapi.out || return 0
	_n=$(grep -c 'SET_VQ_READY 1' "$BLK_LOG")
	info "uapi SET_VQ_READY enables: $_n"
	[ "$_n" -ge 2 ] || { echo "QUEUE_READY in use, but $_n SET_VQ_READY enables for 2 queues"; return 1; }
}

check_size() {
	_dev=$(($(cat /sys/block/vda/size) * 512))
	_file=$(stat -c %s "$BACKING")
	[ "$_dev" = "$_file" ] && return 0
	echo "device is $_dev bytes, backing file $_file bytes"
	return 1
}

check_queues() {
	_n=$(ls /sys/block/vda/mq | wc -l)
	[ "$_n" = "$1" ] && return 0
	echo "vda has $_n hardware queues, expected $1"
	return 1
}

check_vdpa_show() {
	vdpa dev show | tee /tmp/vdpa.out
	grep -q "^$NAME:" /tmp/vdpa.out
}

check_fio() {
	fio --name=verify --filename=/dev/vda --thread --direct=1 --eta=never \
		--ioengine=libaio --iodepth=16 --rw=randwrite --bs=4k \
		--numjobs=2 --size=4M --offset_increment=4M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 \
		--output=/tmp/fio.out
	_rc=$?
	[ "$_rc" = 0 ] && grep -q 'err= 0' /tmp/fio.out && ! grep -q 'err= [1-9]' /tmp/fio.out &&
		return 0
	show_log /tmp/fio.out
	return 1
}

check_ext4() {
	mkfs.ext4 -q -F /dev/vda || return 1
	mkdir -p /mnt/vda
	mount -t ext4 /dev/vda /mnt/vda || return 1
	dd if=/dev/urandom of=/tmp/ref.bin bs=1k count=3000 2>/dev/null
	cp /tmp/ref.bin /mnt/vda/a.bin
	echo "hello from libvduse" >/mnt/vda/b.txt
	mkdir /mnt/vda/dir && seq 1 2000 >/mnt/vda/dir/seq.txt
	umount /mnt/vda || return 1
	# Remount: everything read back now went through the device.
	echo 3 >/proc/sys/vm/drop_caches
	mount -t ext4 /dev/vda /mnt/vda || return 1
	_ok=1
	cmp /tmp/ref.bin /mnt/vda/a.bin || _ok=0
	[ "$(cat /mnt/vda/b.txt)" = "hello from libvduse" ] || { echo "b.txt differs"; _ok=0; }
	seq 1 2000 | cmp - /mnt/vda/dir/seq.txt || _ok=0
	umount /mnt/vda || return 1
	e2fsck -fn /dev/vda || { echo "e2fsck found problems"; _ok=0; }
	[ "$_ok" = 1 ]
}

# The driver resets the device (unbind and bind virtio_blk): the server
# stops and restarts its queues, and the disk comes back with its data.
check_driver_reset() {
	_vdev=$(basename "$(readlink -f /sys/block/vda/device)")
	_drv=/sys/bus/virtio/drivers/virtio_blk
	dd if=/dev/urandom of=/tmp/reset.bin bs=64k count=16 2>/dev/null
	dd if=/tmp/reset.bin of=/dev/vda bs=64k oflag=direct conv=fsync 2>/dev/null ||
		{ echo "write before the reset failed"; return 1; }
	echo "$_vdev" >"$_drv/unbind" || { echo "unbind $_vdev failed"; return 1; }
	wait_for 10 blk_no_vda || { echo "/dev/vda still there after unbind"; return 1; }
	echo "$_vdev" >"$_drv/bind" || { echo "bind $_vdev failed"; return 1; }
	wait_for 10 test -b /dev/vda || { echo "/dev/vda did not come back"; return 1; }
	dd if=/dev/vda of=/tmp/reset.out bs=64k count=16 iflag=direct 2>/dev/null ||
		{ echo "read after the reset failed"; return 1; }
	cmp /tmp/reset.bin /tmp/reset.out || return 1
	check_fio
}

check_read_only() {
	_ro=$(cat /sys/block/vda/ro)
	[ "$_ro" = 1 ] || { echo "/sys/block/vda/ro is $_ro"; return 1; }
	if dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct 2>/tmp/dd.err; then
		echo "a direct write to the read-only device succeeded"
		return 1
	fi
	info "write refused as expected: $(grep -v records /tmp/dd.err | head -n 1)"
}

# The ring layout virtio_blk negotiated: bit 34 (VIRTIO_F_RING_PACKED) of
# the device's features in sysfs, a string of '0'/'1' from bit 0.
check_layout() {
	_f=$(cat /sys/block/vda/device/features) || return 1
	_bit=$(echo "$_f" | cut -c35)
	info "features $_f: packed bit '$_bit', want '$1'"
	[ "$_bit" = "$1" ]
}

# vduse-blk offers packed rings by default, with its in-flight log too.
# Upstream VDUSE passes them to virtio_blk; the shim strips the bit
# (docs/kernel-shim.md), so there the driver stays on split rings.
want=1
[ -d /sys/module/vduse_shim ] && want=0

mkdir -p /tmp
dd if=/dev/zero of="$BACKING" bs=1M count="$BACKING_MB" 2>/dev/null ||
	{ fail setup "cannot create $BACKING"; exit 1; }

# Read-write device with two queues.
if start_dev attach 2 rw; then
	[ "$SERVER" = example ] && check uapi check_uapi
	[ "$SERVER" = example ] && check layout check_layout $want
	check size check_size
	check vdpa-show check_vdpa_show
	check queues check_queues 2
	if [ "$SERVER" = example ]; then
		check serial test "$(cat /sys/block/vda/serial 2>/dev/null)" = vmtest-serial
	fi
	check fio-verify check_fio
	check driver-reset check_driver_reset
	check ext4 check_ext4
	stop_dev detach
fi

# Read-only device.
if start_dev attach-ro 1 ro; then
	check read-only check_read_only
	stop_dev detach-ro
fi

# Packed virtqueues without the in-flight log, and split ones (with it)
# when vduse-blk is told --no-packed.
if [ "$SERVER" = example ]; then
	save_extra=$EXTRA
	EXTRA="$save_extra --no-log"
	if start_dev attach-packed 2 rw; then
		check layout-packed check_layout $want
		check uapi-packed check_uapi
		check fio-verify-packed check_fio
		check ext4-packed check_ext4
		stop_dev detach-packed
	fi
	EXTRA="$save_extra --no-packed"
	if start_dev attach-no-packed 2 rw; then
		check layout-split check_layout 0
		check fio-verify-split check_fio
		check driver-reset-split check_driver_reset
		check ext4-split check_ext4
		stop_dev detach-no-packed
	fi
	EXTRA=$save_extra
fi
exit 0
