# SPDX-License-Identifier: MIT
#
# Guest-side helpers to run a VDUSE block device server (installed as
# /lib/vmtest-blk.sh; needs /lib/vmtest.sh). SERVER is "example" (the
# project's vduse-blk) or "qsd" (qemu-storage-daemon's vduse-blk export).
#
#   blk_start SERVER NAME QUEUES rw|ro FILE [EXAMPLE-OPTIONS...]
#       start the server in the background and wait for /dev/vda;
#       BLK_PID is its pid, BLK_LOG its output. Fails if /dev/vda does not
#       appear (the server is then killed).
#   blk_stop SERVER NAME
#       SIGTERM the server (after "vdpa dev del" for qsd) and wait for it;
#       returns its exit status.
#   blk_have_vda, blk_no_vda
#       whether /dev/vda is there, whether it is gone (node and sysfs entry).

BLK_LOG=/tmp/server.log
BLK_PID=

blk_alive() { kill -0 "$BLK_PID" 2>/dev/null; }
blk_attached() { grep -q attached "$BLK_LOG" || ! blk_alive; }
blk_have_vda() { [ -b /dev/vda ]; }
blk_no_vda() { [ ! -e /dev/vda ] && [ ! -e /sys/block/vda ]; }

blk_start() {
	_srv=$1 _name=$2 _queues=$3 _mode=$4 _file=$5
	shift 5
	: >"$BLK_LOG"
	case $_srv in
	example)
		_ro=
		[ "$_mode" = ro ] && _ro=--read-only
		vduse-blk --name "$_name" --queues "$_queues" $_ro "$@" "$_file" 2>"$BLK_LOG" &
		BLK_PID=$!
		wait_for 60 blk_attached
		;;
	qsd)
		_w=on
		[ "$_mode" = ro ] && _w=off
		qemu-storage-daemon \
			--blockdev "driver=file,node-name=file0,filename=$_file,aio=io_uring,cache.direct=on" \
			--export "type=vduse-blk,id=vduse0,node-name=file0,name=$_name,num-queues=$_queues,queue-size=256,writable=$_w" \
			>"$BLK_LOG" 2>&1 &
		BLK_PID=$!
		wait_for 60 test -e "/dev/vduse/$_name" &&
			vdpa dev add name "$_name" mgmtdev vduse >>"$BLK_LOG" 2>&1
		;;
	*)
		echo "blk_start: unknown server $_srv" >>"$BLK_LOG"
		return 1
		;;
	esac
	blk_alive && wait_for 30 blk_have_vda && return 0
	kill -KILL "$BLK_PID" 2>/dev/null
	wait "$BLK_PID" 2>/dev/null
	return 1
}

blk_stop() {
	[ "$1" = qsd ] && vdpa dev del "$2" >>"$BLK_LOG" 2>&1
	kill -TERM "$BLK_PID" 2>/dev/null
	wait "$BLK_PID"
}
