#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The demo (scripts/demo.sh) inside the VM: serve a file on tmpfs as a
# virtio-blk disk with the example vduse-blk, put ext4 on it, write and read
# back files, run a verified fio job, and tear everything down.

. /lib/vmtest.sh
. /lib/vmtest-blk.sh

BACKING=/tmp/disk.img
say() { echo "demo: $*"; }
step() {
	_name=$1
	shift
	say "\$ $*"
	if "$@"; then pass "$_name"; else fail "$_name" "$* failed"; return 1; fi
}

say "kernel $(uname -r); backing file: 128 MiB on tmpfs at $BACKING"
dd if=/dev/zero of="$BACKING" bs=1M count=128 2>/dev/null

say "\$ vduse-blk --name vduse-blk0 --queues 2 $BACKING &"
if ! blk_start example vduse-blk0 2 rw "$BACKING"; then
	fail attach "no /dev/vda"
	show_log "$BLK_LOG"
	exit 1
fi
pass attach
sed 's/^/  vduse-blk: /' "$BLK_LOG"
say "\$ vdpa dev show"
vdpa dev show
say "/dev/vda: $(($(cat /sys/block/vda/size) / 2048)) MiB, $(ls /sys/block/vda/mq | wc -l) queues"

mkdir -p /mnt/disk
step mkfs mkfs.ext4 -q /dev/vda &&
	step mount mount -t ext4 /dev/vda /mnt/disk &&
	{
		say "writing 20 files of random data"
		i=0
		while [ $i -lt 20 ]; do
			dd if=/dev/urandom of=/mnt/disk/file$i bs=64k count=8 2>/dev/null
			i=$((i + 1))
		done
		(cd /mnt/disk && sha256sum file*) >/tmp/sums
		df -h /mnt/disk | sed 's/^/  /'
		step umount umount /mnt/disk &&
			echo 3 >/proc/sys/vm/drop_caches &&
			step remount mount -t ext4 -o ro /dev/vda /mnt/disk &&
			step read-back sh -c 'cd /mnt/disk && sha256sum -c /tmp/sums >/tmp/sums.out; rc=$?; tail -n 3 /tmp/sums.out; exit $rc' &&
			step umount-again umount /mnt/disk &&
			step fsck e2fsck -fn /dev/vda
	}

say "\$ fio: 4 KiB random writes, read back and verified (crc32c), 2 jobs, iodepth 16"
if fio --name=demo --filename=/dev/vda --thread --direct=1 --ioengine=io_uring --eta=never \
	--iodepth=16 --rw=randwrite --bs=4k --numjobs=2 --size=16M \
	--offset_increment=16M --verify=crc32c --verify_fatal=1 \
	--group_reporting --output=/tmp/fio.out; then
	grep -E 'write:|read:|err=' /tmp/fio.out | sed 's/^/  /'
	pass fio-verify
else
	show_log /tmp/fio.out
	fail fio-verify "fio reported an error"
fi

say "\$ kill -TERM vduse-blk"
rc=0
blk_stop example vduse-blk0 || rc=$?
sed 's/^/  vduse-blk: /' "$BLK_LOG" | tail -n 3
if [ "$rc" = 0 ] && wait_for 10 blk_no_vda && [ -z "$(vdpa dev show)" ]; then
	pass detach
else
	fail detach "exit status $rc; /dev/vda or the vdpa device left behind"
fi
