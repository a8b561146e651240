#!/bin/sh
# SPDX-License-Identifier: MIT
#
# vduse-blk --umem on a real kernel (run as /test.sh): the bounce region
# backed by vduse-blk's own memory through VDUSE_IOTLB_REG_UMEM.
#  1. With hugepages reserved and RLIMIT_MEMLOCK unlimited: the library
#     logs the registration, data written and read back through the
#     device (dd + cmp, fio verify) is right.
#  2. vdpa dev del and vdpa dev add with the same vduse-blk: the reset
#     deregistered it, the new driver's I/O registers it again (no
#     registration left over), and the data is still there.
#  3. RLIMIT_MEMLOCK of 1 MiB, normal pages: the registration is refused
#     (ENOMEM, logged naming RLIMIT_MEMLOCK), the device falls back to the
#     kernel's pages and fio verify passes.

. /lib/vmtest.sh
. /lib/vmtest-blk.sh

NAME=umem0
BACKING=/tmp/umem.img
REG='registered (VDUSE_IOTLB_REG_UMEM)'

dd if=/dev/zero of="$BACKING" bs=1M count=32 2>/dev/null ||
	{ fail setup "cannot create $BACKING"; exit 0; }
dd if=/dev/urandom of=/tmp/ref.bin bs=64k count=32 2>/dev/null

verify() {
	fio --name=verify --filename=/dev/vda --thread --direct=1 --eta=never \
		--ioengine=libaio --iodepth=16 --rw=randwrite --bs=4k \
		--numjobs=2 --size=4M --offset=8M --offset_increment=4M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 \
		--output=/tmp/fio.out
	_rc=$?
	[ "$_rc" = 0 ] && grep -q 'err= 0' /tmp/fio.out &&
		! grep -q 'err= [1-9]' /tmp/fio.out && return 0
	show_log /tmp/fio.out
	return 1
}

write_ref() {
	dd if=/tmp/ref.bin of=/dev/vda bs=64k oflag=direct conv=fsync 2>/dev/null
}

read_ref() {
	dd if=/dev/vda of=/tmp/ref.out bs=64k count=32 iflag=direct 2>/dev/null &&
		cmp /tmp/ref.bin /tmp/ref.out
}

registrations() { grep -c "$REG" "$BLK_LOG"; }
registered_twice() { [ "$(registrations)" -ge 2 ]; }

stop() {
	_rc=0
	blk_stop example "$NAME" || _rc=$?
	check "$1-exit" test "$_rc" = 0
	[ "$_rc" = 0 ] || show_log "$BLK_LOG"
}

# 1. Hugepages (if the kernel reserves them) and no memlock limit.
echo 40 >/proc/sys/vm/nr_hugepages 2>/dev/null
info "hugepages reserved: $(cat /proc/sys/vm/nr_hugepages 2>/dev/null)"
ulimit -l unlimited
if ! blk_start example "$NAME" 1 rw "$BACKING" --umem --no-log --verbose; then
	fail umem-start "/dev/vda did not appear"
	show_log "$BLK_LOG"
	exit 0
fi
pass umem-start
info "bounce size $(cat /sys/class/vduse/$NAME/bounce_size 2>/dev/null)"
check umem-write write_ref
check umem-read read_ref
check umem-fio-verify verify
grep -e '--umem:' -e 'REG_UMEM' "$BLK_LOG" | while read -r l; do info "log: $l"; done
if grep -q "$REG" "$BLK_LOG"; then
	pass umem-registered
else
	fail umem-registered "no '$REG' in the log"
	show_log "$BLK_LOG"
fi
if [ "$(cat /proc/sys/vm/nr_hugepages)" -ge 32 ]; then
	check umem-hugepages grep -q -e '--umem: .* of huge pages' "$BLK_LOG"
fi

# 2. vdpa dev del, vdpa dev add: the same daemon, registered again.
vdpa dev del "$NAME" || fail umem-del "vdpa dev del failed"
check umem-del wait_for 20 blk_no_vda
check umem-deregistered grep -q 'bounce region deregistered (reset)' "$BLK_LOG"
vdpa dev add name "$NAME" mgmtdev vduse || fail umem-add "vdpa dev add failed"
check umem-add wait_for 30 blk_have_vda
check umem-read-after-add read_ref
check umem-fio-after-add verify
check umem-registered-again wait_for 10 registered_twice
check umem-no-leftover sh -c "! grep -q 'was left over' '$BLK_LOG'"
stop umem

# 3. RLIMIT_MEMLOCK 1 MiB, normal pages: refused, falls back, still works.
echo 0 >/proc/sys/vm/nr_hugepages 2>/dev/null
ulimit -l 1024
if ! blk_start example "$NAME" 1 rw "$BACKING" --umem --no-log --verbose; then
	fail memlock-start "/dev/vda did not appear"
	show_log "$BLK_LOG"
	exit 0
fi
pass memlock-start
check memlock-read read_ref
check memlock-fio-verify verify
grep -e '--umem:' -e 'REG_UMEM' "$BLK_LOG" | while read -r l; do info "log: $l"; done
check memlock-normal-pages grep -q -e '--umem: .* of normal pages' "$BLK_LOG"
check memlock-refused grep -q 'REG_UMEM of .*RLIMIT_MEMLOCK (1048576 bytes)' "$BLK_LOG"
check memlock-not-registered sh -c "! grep -q '$REG' '$BLK_LOG'"
stop memlock
