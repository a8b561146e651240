#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The tutorial's RAM disk (examples/tutorial/ramdisk.c, docs/tutorial.md)
# in the guest: it attaches as /dev/vda of the size asked for, data written
# reads back (through the page cache and with O_DIRECT), what was not
# written reads as zeros, and SIGTERM detaches it with exit status 0.

. /lib/vmtest.sh

LOG=/tmp/ramdisk.log
MB=1048576

ramdisk tut0 32 >"$LOG" 2>&1 &
pid=$!
if wait_for 60 grep -q 'tut0 attached, 32 MiB' "$LOG" && wait_for 30 test -b /dev/vda; then
	pass attach
else
	fail attach "no /dev/vda"
	show_log "$LOG"
	kill -KILL "$pid" 2>/dev/null
	exit 1
fi
check size test "$(cat /sys/block/vda/size)" = $((32 * 2048))

# 4 MiB of random data at 1 MiB, and the last MiB, through the page cache.
dd if=/dev/urandom of=/tmp/rand bs=$MB count=5 2>/dev/null
dd if=/tmp/rand of=/dev/vda bs=$MB count=4 seek=1 conv=fsync 2>/dev/null &&
	dd if=/tmp/rand of=/dev/vda bs=$MB skip=4 count=1 seek=31 conv=fsync 2>/dev/null
check write test $? = 0
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/back bs=$MB skip=1 count=4 2>/dev/null
dd if=/dev/vda bs=$MB skip=31 count=1 2>/dev/null >>/tmp/back
check read-back cmp /tmp/rand /tmp/back
# Never written: zeros (so the check above did not compare zeros to zeros).
dd if=/dev/vda of=/tmp/zero bs=$MB count=1 2>/dev/null
check unwritten-zero cmp -n $MB /tmp/zero /dev/zero
check written-not-zero sh -c "! cmp -s -n $MB /tmp/back /dev/zero"

# Direct I/O with many requests in flight, every block verified.
if fio --name=tut --filename=/dev/vda --direct=1 --ioengine=io_uring \
	--iodepth=32 --rw=randwrite --bs=4k --size=16M --offset=8M \
	--verify=crc32c --verify_fatal=1 --eta=never --output=/tmp/fio.out; then
	pass fio-verify
else
	fail fio-verify "fio reported an error"
	show_log /tmp/fio.out
fi

kill -TERM "$pid"
wait "$pid"
rc=$?
show_log "$LOG"
if [ "$rc" = 0 ] && wait_for 10 sh -c '[ ! -e /sys/block/vda ]' && [ -z "$(vdpa dev show)" ]; then
	pass detach
else
	fail detach "exit status $rc; /dev/vda or the vdpa device left behind"
fi
