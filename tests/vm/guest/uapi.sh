#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Linux 7.3's VDUSE features, proven through vhost-vdpa (run as /test.sh on
# the experimental flavor with vhost_vdpa loaded, and /usr/local/bin/
# vdpa-uapi, tests/vm/vdpa-uapi.c): vduse-blk --driver vhost serves a tmpfs
# file; vdpa-uapi enables queue 0 before DRIVER_OK and queue 1 after it,
# suspends the device and reads both queues' state back.  Then API version
# 1's address spaces: with queue 1 alone in group 1 and two spaces, the
# driver moves group 1 to space 1 and reads sector 0 through queue 1 there.

. /lib/vmtest.sh

BACKING=/tmp/uapi.img
LOG=/tmp/uapi.log
NODE_OUT=/tmp/uapi.node
BASE=5

alive() { kill -0 "$PID" 2>/dev/null; }
has_node() { [ -s "$NODE_OUT" ] || ! alive; }

dd if=/dev/zero of="$BACKING" bs=1M count=16 2>/dev/null ||
	{ fail setup "cannot create $BACKING"; exit 0; }
vduse-blk --name uapi0 --queues 2 --no-log --driver vhost --verbose \
	"$BACKING" >"$NODE_OUT" 2>"$LOG" &
PID=$!
if ! wait_for 60 has_node || ! alive; then
	fail attach-vhost "vduse-blk printed no vhost-vdpa node"
	show_log "$LOG"
	kill -KILL "$PID" 2>/dev/null
	exit 0
fi
NODE=$(cat "$NODE_OUT")
pass attach-vhost
grep -e 'kernel: ' -e 'uapi:' "$LOG" | while read -r l; do info "uapi ${l#*uapi: }"; done

# The features this test is about must be in use.
check features-in-use grep -q 'VDUSE features QUEUE_READY,SUSPEND' "$LOG"

vdpa-uapi "$NODE" "$BASE" >/tmp/tool.out 2>&1
rc=$?
while read -r l; do info "$l"; done </tmp/tool.out
check vdpa-uapi-exit test "$rc" = 0

# Queue 1 was enabled after DRIVER_OK: after the last DRIVER_OK status the
# device heard SET_VQ_READY for it and only then started it.  (The bus
# bound virtio_vdpa first: the status lines of that driver come before.)
queue1_after_driver_ok() {
	awk '
		/status 0x0f/ { ok = 1; ready = 0; started = 0; early = 0 }
		ok && !ready && /queue 1: started/ { early = 1 }
		ok && /queue 1: SET_VQ_READY 1/ { ready = 1 }
		ok && ready && /queue 1: started/ { started = 1 }
		END { exit !(started && !early) }
	' "$LOG" && return 0
	echo "after the last DRIVER_OK: no 'queue 1: SET_VQ_READY 1' then 'queue 1: started'"
	show_log "$LOG"
	return 1
}
check queue-ready-after-driver-ok queue1_after_driver_ok

# The suspend was answered and stopped both queues (before the reset that
# follows it), and the state read back after it is where the rings were:
# nothing was in flight.
suspended() {
	awk '
		/uapi0: suspended/ { s = 1; n = 0 }
		s && /queue [01]: stopped/ { n++ }
		s && /status 0x00/ { s = 0; stops = n }
		END { exit !(stops == 2) }
	' "$LOG" &&
		grep -q "base 0=$BASE" /tmp/tool.out &&
		grep -q "base 1=$BASE" /tmp/tool.out && return 0
	echo "no suspend stopping both queues, or not state $BASE for both"
	show_log "$LOG"
	return 1
}
check suspend suspended

kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
check detach test "$rc" = 0

# Address spaces: sector 0 holds 0x5a bytes; vdpa-uapi --asid reads it
# through queue 1 with its rings and buffers in address space 1 only.
dd if=/dev/zero bs=512 count=1 2>/dev/null | tr '\000' 'Z' |
	dd of="$BACKING" bs=512 count=1 conv=notrunc 2>/dev/null
: >"$NODE_OUT"
VDUSE_BLK_TEST_AS=2 vduse-blk --name uapi1 --queues 2 --no-log --driver vhost \
	--verbose "$BACKING" >"$NODE_OUT" 2>"$LOG" &
PID=$!
if wait_for 60 has_node && alive; then
	pass attach-groups
	vdpa-uapi --asid "$(cat "$NODE_OUT")" >/tmp/tool.out 2>&1
	rc=$?
	while read -r l; do info "$l"; done </tmp/tool.out
	check asid-read test "$rc" = 0
	check asid-moved grep -q 'uapi1: group 1 in address space 1' "$LOG"
	kill -TERM "$PID"
	rc=0
	wait "$PID" || rc=$?
	check detach-groups test "$rc" = 0
else
	fail attach-groups "vduse-blk with VDUSE_BLK_TEST_AS=2 printed no node"
	show_log "$LOG"
	kill -KILL "$PID" 2>/dev/null
fi
exit 0
