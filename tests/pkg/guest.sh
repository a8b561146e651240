#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Guest side of tests/pkg/pkg-test.sh (run as /test.sh by /init, on Debian
# 12's kernel with the vduse_shim.ko that DKMS built from vduse-shim-dkms).
# PKG_CMD is the command line of vduse-blk@PKG_NAME.service, expanded from
# the packaged unit and a /etc/vduse-blk/PKG_NAME.conf that serves
# /tmp/pkg-disk.img.
#
#   pkg-lib         vduse-blk is the package's, linked to the package's
#                   libvduse.so.0 (no libvduse in /usr/local/lib)
#   pkg-attach      the unit's command line serves the disk as /dev/vda
#   pkg-recovery    fio verified writes on the disk while the daemon is
#                   SIGKILLed and started again with the same command line
#                   (what Restart=on-failure does): it reconnects, and fio
#                   ends without an error or a verify failure
#   pkg-cmp         512 KiB of random data written through /dev/vda (direct)
#                   read back equal, and found at the same offset in the file
#   pkg-stop        SIGTERM (systemctl stop): exit status 0, /dev/vda and the
#                   in-flight log are gone

. /lib/vmtest.sh
. /lib/vmtest-blk.sh

FILE=/tmp/pkg-disk.img
LOG=/run/vduse-blk/$PKG_NAME

serve() {
	$PKG_CMD 2>>"$BLK_LOG" &
	BLK_PID=$!
}

# The package's program and library (mkinitramfs put the program in
# /usr/local/bin and its libraries where ldd found them in the chroot).
mkdir -p /usr/bin
ln -sf /usr/local/bin/vduse-blk /usr/bin/vduse-blk
if { [ -f /usr/lib/x86_64-linux-gnu/libvduse.so.0 ] || [ -f /lib/x86_64-linux-gnu/libvduse.so.0 ]; } &&
	! ls /usr/local/lib/libvduse* >/dev/null 2>&1; then
	pass pkg-lib
else
	fail pkg-lib "no libvduse.so.0 in /usr/lib or /lib/x86_64-linux-gnu, or one in /usr/local/lib"
fi

truncate -s 64M "$FILE"
: >"$BLK_LOG"
serve
if wait_for 60 blk_attached && blk_alive && wait_for 30 blk_have_vda; then
	pass pkg-attach
else
	fail pkg-attach "no /dev/vda from: $PKG_CMD"
	show_log "$BLK_LOG"
	kill -KILL "$BLK_PID" 2>/dev/null
	exit 1
fi

# fio over 16 MiB, verified, at most 500 I/Os a second (so at least 16 s
# of writes and reads, whatever the host's speed); the daemon is killed
# twice while it runs.
fio --name=pkg --filename=/dev/vda --direct=1 --ioengine=psync --rw=randwrite \
	--bs=4k --size=16M --rate_iops=500 --numjobs=1 --verify=crc32c --verify_fatal=1 \
	--do_verify=1 --output=/tmp/fio.out >/dev/null 2>&1 &
fio_pid=$!
t0=$(date +%s)
ok=1
for k in 1 2; do
	sleep 2
	if ! kill -0 "$fio_pid" 2>/dev/null; then
		echo "fio ended before kill $k"
		ok=0
		break
	fi
	kill -KILL "$BLK_PID"
	wait "$BLK_PID" 2>/dev/null
	: >"$BLK_LOG"
	serve
	if ! { wait_for 60 blk_attached && blk_alive && grep -q reconnected "$BLK_LOG"; }; then
		echo "restart $k did not reconnect:"
		show_log "$BLK_LOG"
		ok=0
		break
	fi
done
if wait_for 300 sh -c "! kill -0 $fio_pid 2>/dev/null"; then
	wait "$fio_pid"
	fio_rc=$?
else
	kill -KILL "$fio_pid"
	fio_rc=124
fi
info "fio took $(($(date +%s) - t0)) s"
if [ "$ok" = 1 ] && [ "$fio_rc" = 0 ] && ! grep -qE 'err= *[1-9]' /tmp/fio.out; then
	pass pkg-recovery
else
	fail pkg-recovery "fio exit $fio_rc after 2 kills and restarts"
	show_log /tmp/fio.out
fi

dd if=/dev/urandom of=/tmp/pattern bs=64k count=8 2>/dev/null
if dd if=/tmp/pattern of=/dev/vda bs=64k seek=16 oflag=direct conv=fsync 2>/dev/null &&
	dd if=/dev/vda of=/tmp/back bs=64k skip=16 count=8 iflag=direct 2>/dev/null &&
	cmp /tmp/pattern /tmp/back &&
	dd if="$FILE" of=/tmp/infile bs=64k skip=16 count=8 2>/dev/null &&
	cmp /tmp/pattern /tmp/infile; then
	pass pkg-cmp
else
	fail pkg-cmp "what was written through /dev/vda did not read back"
fi

kill -TERM "$BLK_PID"
wait "$BLK_PID"
rc=$?
if [ "$rc" = 0 ] && wait_for 10 blk_no_vda && [ ! -e "$LOG" ]; then
	pass pkg-stop
else
	fail pkg-stop "exit status $rc; /dev/vda or $LOG still there"
	show_log "$BLK_LOG"
fi
