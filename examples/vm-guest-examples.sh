#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Guest script for the VM harness (tests/vm/vmtest.sh --guest): exercises the
# examples' options and request types beyond tests/vm/guest/e2e-blk.sh.
# Needs vduse-null and util-linux's blkdiscard and fallocate in the guest:
#
#   tests/vm/vmtest.sh --flavor trixie --guest examples/vm-guest-examples.sh \
#       --build build --bin build/examples/vduse-null \
#       --bin /usr/sbin/blkdiscard --bin /usr/bin/fallocate
#
# Results are "VMTEST PASS/FAIL name" lines (see tests/vm/guest/lib.sh).

. /lib/vmtest.sh

# busybox sh prefers its own applets, which lack -z: name util-linux's.
BLKDISCARD=/usr/local/bin/blkdiscard
FALLOCATE=/usr/local/bin/fallocate

BACKING=/tmp/ex.img
LOG=/tmp/ex.log
PID=
MB=1048576

server_alive() { kill -0 "$PID" 2>/dev/null; }
attached() { grep -q ' attached$' "$LOG" || ! server_alive; }
have_vda() { [ -b /dev/vda ]; }
no_leftovers() {
	[ ! -e /sys/block/vda ] && [ -z "$(vdpa dev show 2>&1)" ] &&
		[ "$(ls /dev/vduse 2>&1)" = control ]
}

# start NAME-OF-CHECK PROGRAM ARGS...: run a server, wait for /dev/vda.
start() {
	_check=$1
	shift
	: >"$LOG"
	"$@" 2>"$LOG" &
	PID=$!
	if wait_for 60 attached && server_alive && wait_for 30 have_vda; then
		pass "$_check"
		return 0
	fi
	fail "$_check" "no /dev/vda from: $*"
	kill -KILL "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	show_log "$LOG"
	return 1
}

# stop NAME-OF-CHECK [SIGNAL]: expect exit 0 and nothing left behind.
stop() {
	kill "-${2:-TERM}" "$PID" 2>/dev/null
	_rc=0
	wait "$PID" || _rc=$?
	if [ "$_rc" = 0 ] && wait_for 10 no_leftovers; then
		pass "$1"
	else
		fail "$1" "exit status $_rc, vdpa: $(vdpa dev show 2>&1)"
		show_log "$LOG"
	fi
}

# md5 of LEN MiB of FILE at OFF MiB, read with O_DIRECT when it is /dev/vda.
md5_of() {
	_flag=
	[ "$1" = /dev/vda ] && _flag=iflag=direct
	dd if="$1" bs=$MB skip="$2" count="$3" $_flag 2>/dev/null | md5sum | cut -d' ' -f1
}
zeros_md5() { dd if=/dev/zero bs=$MB count="$1" 2>/dev/null | md5sum | cut -d' ' -f1; }
fill_random() {
	dd if=/dev/urandom of=/tmp/rand.bin bs=$MB count="$3" 2>/dev/null &&
		dd if=/tmp/rand.bin of="$1" bs=$MB seek="$2" conv=notrunc,fsync \
			oflag=direct 2>/dev/null
}
sysfs() { cat "/sys/block/vda/$1"; }
expect_eq() { [ "$1" = "$2" ] && return 0; echo "got '$1', expected '$2'"; return 1; }
# fio OUTPUT ARGS...: run fio, show its output when it fails.
run_fio() {
	_out=$1
	shift
	fio --eta=never --output="$_out" "$@" && grep -q 'err= 0' "$_out" &&
		! grep -q 'err= [1-9]' "$_out" && return 0
	show_log "$_out"
	return 1
}
min() { [ "$1" -lt "$2" ] && echo "$1" || echo "$2"; }

mkdir -p /tmp
truncate -s 64M "$BACKING" || { fail setup "cannot create $BACKING"; exit 1; }

# BLK_EXTRA (--env, e.g. --no-packed): options every vduse-blk here gets,
# through a wrapper first on PATH that execs it (so $PID stays the
# server's).
if [ -n "${BLK_EXTRA:-}" ]; then
	_real=$(command -v vduse-blk) || { fail setup "no vduse-blk"; exit 1; }
	mkdir -p /tmp/xbin
	printf '#!/bin/sh\nexec %s %s "$@"\n' "$_real" "$BLK_EXTRA" >/tmp/xbin/vduse-blk
	chmod +x /tmp/xbin/vduse-blk
	PATH=/tmp/xbin:$PATH
	info "every vduse-blk runs with $BLK_EXTRA"
fi
# The ring layout virtio_blk negotiated with vduse-blk: packed (bit 34 of
# the features in sysfs), unless told --no-packed or on the shim, which
# strips the bit.
want_packed=1
case " ${BLK_EXTRA:-} " in *" --no-packed "*) want_packed=0 ;; esac
[ -d /sys/module/vduse_shim ] && want_packed=0

# 1. Four queues of 1024, 4 KiB blocks: geometry, discard, write zeroes,
#    flush, and data surviving the device's shutdown.
if start blk-4q-4k vduse-blk -n ex0 -q 4 -s 1024 -b 4096 --serial ex-serial "$BACKING"; then
	# The VDUSE uAPI the library chose, from its info line.
	info "uapi $(grep -m1 'kernel: ' "$LOG")"
	check uapi-line grep -q 'VDUSE API version [01] (kernel: [0-9]*), VDUSE features' "$LOG"
	check blk-layout expect_eq "$(sysfs device/features | cut -c35)" "$want_packed"
	check blk-lbs expect_eq "$(sysfs queue/logical_block_size)" 4096
	# virtio_blk uses at most one queue per CPU.
	check blk-nqueues expect_eq "$(ls /sys/block/vda/mq | wc -l)" "$(min 4 "$(nproc)")"
	check blk-discard-max test "$(sysfs queue/discard_max_bytes)" -gt 0
	check blk-wz-max test "$(sysfs queue/write_zeroes_max_bytes)" -gt 0
	check blk-fill fill_random /dev/vda 0 16
	ref=$(md5sum </tmp/rand.bin | cut -d' ' -f1)
	check blk-readback expect_eq "$(md5_of /dev/vda 0 16)" "$ref"
	# Big requests: many segments per request.
	check blk-big-read sh -c 'dd if=/dev/vda of=/dev/null bs=4M count=4 iflag=direct 2>/dev/null'
	check blk-discard $BLKDISCARD -o $((1 * MB)) -l $((2 * MB)) /dev/vda
	check blk-discard-zero expect_eq "$(md5_of /dev/vda 1 2)" "$(zeros_md5 2)"
	# Write zeroes with unmap allowed (BLKZEROOUT) and without (fallocate -z).
	check blk-zeroout $BLKDISCARD -z -o $((4 * MB)) -l $((2 * MB)) /dev/vda
	check blk-zeroout-zero expect_eq "$(md5_of /dev/vda 4 2)" "$(zeros_md5 2)"
	check blk-zero-range $FALLOCATE -z -o $((8 * MB)) -l $((2 * MB)) /dev/vda
	check blk-zero-range-zero expect_eq "$(md5_of /dev/vda 8 2)" "$(zeros_md5 2)"
	check blk-untouched expect_eq "$(md5_of /dev/vda 12 4)" \
		"$(dd if=/tmp/rand.bin bs=$MB skip=12 count=4 2>/dev/null | md5sum | cut -d' ' -f1)"
	check blk-flush sh -c 'dd if=/tmp/rand.bin of=/dev/vda bs=1M seek=20 count=4 conv=fsync 2>/dev/null'
	check blk-fio run_fio /tmp/fio-ex.out --name=mq --filename=/dev/vda \
		--direct=1 --ioengine=libaio --iodepth=32 --rw=randwrite \
		--bs=64k --numjobs=4 --size=8M --offset=24M \
		--offset_increment=8M --verify=crc32c --verify_fatal=1
	check blk-fio-var run_fio /tmp/fio-var.out --name=var --filename=/dev/vda \
		--direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite \
		--bsrange=4k-256k --size=8M --offset=56M --verify=crc32c \
		--verify_fatal=1
	stop blk-sigint INT
	# After shutdown the file holds what the device acknowledged.
	check blk-persist-data expect_eq "$(md5_of "$BACKING" 12 4)" \
		"$(dd if=/tmp/rand.bin bs=$MB skip=12 count=4 2>/dev/null | md5sum | cut -d' ' -f1)"
	check blk-persist-zero expect_eq "$(md5_of "$BACKING" 4 2)" "$(zeros_md5 2)"
	check blk-persist-flush expect_eq "$(md5_of "$BACKING" 20 4)" "$(md5_of /tmp/rand.bin 0 4)"
fi

# 2. --no-attach: attached by hand, SIGTERM without detaching first.
: >"$LOG"
vduse-blk -n ex1 --no-attach "$BACKING" 2>"$LOG" &
PID=$!
if wait_for 30 test -e /dev/vduse/ex1 && vdpa dev add name ex1 mgmtdev vduse &&
	wait_for 30 have_vda; then
	pass no-attach
	check no-attach-read sh -c 'dd if=/dev/vda of=/dev/null bs=1M count=8 iflag=direct 2>/dev/null'
	stop no-attach-exit
else
	fail no-attach "the device did not appear"
	show_log "$LOG"
	kill -KILL "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
fi

# 3. --no-attach, never attached: must still exit cleanly.
: >"$LOG"
vduse-blk -n ex2 --no-attach "$BACKING" 2>"$LOG" &
PID=$!
if wait_for 30 test -e /dev/vduse/ex2; then
	stop no-attach-unused
else
	fail no-attach-unused "/dev/vduse/ex2 did not appear"
	show_log "$LOG"
	kill -KILL "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
fi

# 4. The name is taken: a clear error, status 1, the first device unharmed.
if start dup-first vduse-blk -n ex3 "$BACKING"; then
	_rc=0
	vduse-blk -n ex3 "$BACKING" 2>/tmp/dup.err || _rc=$?
	check dup-exit expect_eq "$_rc" 1
	# It tries to reconnect (crash recovery), and the log is locked.
	check dup-message grep -q 'another process serves it' /tmp/dup.err
	_rc=0
	vduse-blk --no-log -n ex3 "$BACKING" 2>/tmp/dup.err || _rc=$?
	check dup-no-log-exit expect_eq "$_rc" 1
	check dup-no-log-message grep -q 'already exists' /tmp/dup.err
	check dup-still-works sh -c 'dd if=/dev/vda of=/dev/null bs=1M count=1 iflag=direct 2>/dev/null'
	stop dup-stop
fi

# 5. O_DIRECT backing file, on ext4 (tmpfs has O_DIRECT only since 6.6).
mkdir -p /mnt/ext
if truncate -s 96M /tmp/ext4.img && mkfs.ext4 -q -F /tmp/ext4.img &&
	mount -o loop -t ext4 /tmp/ext4.img /mnt/ext &&
	truncate -s 32M /mnt/ext/direct.img; then
	pass direct-setup
else
	fail direct-setup "cannot make an ext4 file system on a loop device"
fi
if start blk-direct vduse-blk -n ex4 --direct -q 2 /mnt/ext/direct.img; then
	check direct-fio run_fio /tmp/fio-d.out --name=d --filename=/dev/vda \
		--direct=1 --ioengine=libaio --iodepth=8 --rw=randwrite --bs=4k \
		--size=8M --verify=crc32c --verify_fatal=1
	stop direct-stop
fi
# 5b. --wait=ring (kicks, stop and I/O in each queue's io_uring) with a
#     busy-poll window, on ext4 so that the I/O goes through the ring; then
#     SIGTERM while the disk is busy.
if truncate -s 32M /mnt/ext/ring.img &&
	start blk-ring vduse-blk -n ex6 --wait=ring --poll-us=50 -q 2 /mnt/ext/ring.img; then
	check ring-fio run_fio /tmp/fio-r.out --name=r --filename=/dev/vda \
		--direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite --bs=4k \
		--size=8M --verify=crc32c --verify_fatal=1
	fio --name=ringbusy --filename=/dev/vda --direct=1 --eta=never \
		--ioengine=libaio --iodepth=32 --rw=randrw --bs=16k \
		--time_based --runtime=60 --output=/tmp/fio-rb.out &
	FIO=$!
	sleep 2
	stop ring-stop
	wait "$FIO"
fi
umount /mnt/ext 2>/dev/null

# 6. SIGTERM while the disk is busy: requests in flight are completed, the
#    server still exits 0 and leaves nothing behind.
if start busy vduse-blk -n ex5 -q 2 "$BACKING"; then
	fio --name=busy --filename=/dev/vda --direct=1 --eta=never \
		--ioengine=libaio --iodepth=32 --rw=randrw --bs=16k \
		--time_based --runtime=60 --output=/tmp/fio-busy.out &
	FIO=$!
	sleep 2
	stop busy-stop
	wait "$FIO"
	info "fio after the device went away: exit $?"
fi

# 7. vduse-null: zeros in, writes forgotten.
if start null vduse-null -n null0 -S 256; then
	check null-size expect_eq "$(sysfs size)" $((256 * 2048))
	check null-write sh -c 'dd if=/dev/urandom of=/dev/vda bs=1M count=2 oflag=direct 2>/dev/null'
	check null-zeros expect_eq "$(md5_of /dev/vda 0 2)" "$(zeros_md5 2)"
	check null-discard $BLKDISCARD /dev/vda
	check null-serial expect_eq "$(sysfs serial)" vduse-null
	stop null-stop
fi
# 7b. vduse-null --poll: the same, busy-polling with kicks off.
if start null-poll vduse-null --poll -n null1 -S 64; then
	check null-poll-write sh -c 'dd if=/dev/urandom of=/dev/vda bs=1M count=2 oflag=direct 2>/dev/null'
	check null-poll-zeros expect_eq "$(md5_of /dev/vda 0 2)" "$(zeros_md5 2)"
	stop null-poll-stop
fi
exit 0
