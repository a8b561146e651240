#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Guest script (bookworm-shim): the shim with an independent VDUSE daemon,
# qemu-storage-daemon's vduse-blk export, attached with iproute2's vdpa tool.
# Needs: --bin qemu-storage-daemon.
. /lib/vmtest.sh

mount -t debugfs none /sys/kernel/debug 2>/dev/null
stats=/sys/kernel/debug/vduse_shim/stats

check control-node test -c /dev/vduse/control
dd if=/dev/urandom of=/tmp/img bs=1M count=64 2>/dev/null

qemu-storage-daemon \
	--blockdev driver=file,node-name=file0,filename=/tmp/img,cache.direct=off \
	--export type=vduse-blk,id=vduse0,node-name=file0,name=vduse0,num-queues=2,queue-size=256,writable=on \
	>/tmp/qsd.log 2>&1 &
qsd=$!
wait_for 10 test -c /dev/vduse/vduse0 || { fail qsd-create "no /dev/vduse/vduse0"; show_log /tmp/qsd.log; }

vdpa mgmtdev show >/tmp/mgmt.txt 2>&1
cat /tmp/mgmt.txt
check mgmtdev-show grep -q vduse /tmp/mgmt.txt

check dev-add vdpa dev add name vduse0 mgmtdev vduse
wait_for 20 test -b /dev/vda && pass blockdev || fail blockdev "no /dev/vda"
vdpa dev show >/tmp/dev.txt 2>&1
cat /tmp/dev.txt
check dev-show grep -q 'vduse0: type block mgmtdev vduse' /tmp/dev.txt
cat /sys/block/vda/size
check read-matches sh -c 'cmp -n 4194304 /dev/vda /tmp/img'

fio --name=v --filename=/dev/vda --rw=randwrite --bs=4k --size=32M \
	--ioengine=psync --numjobs=2 --offset_increment=32M --direct=1 \
	--verify=crc32c --do_verify=1 --runtime=60 >/tmp/fio.log 2>&1
rc=$?
tail -n 5 /tmp/fio.log
[ $rc = 0 ] && pass fio-verify || { fail fio-verify "fio exit $rc"; show_log /tmp/fio.log; }
cat $stats

check dev-del vdpa dev del vduse0
kill $qsd
wait $qsd
check qsd-gone sh -c '! test -e /dev/vduse/vduse0'
# One read(2) (each read runs the selftest again); a missing or empty file
# fails, as does any FAIL line.
dd if=/sys/kernel/debug/vduse_shim/selftest bs=64k count=1 of=/tmp/selftest.txt 2>/dev/null
cat /tmp/selftest.txt
check selftest sh -c "grep -q ': ok\$' /tmp/selftest.txt && ! grep -q FAIL /tmp/selftest.txt"
cat $stats
check rmmod rmmod vduse_shim
