#!/bin/sh
# SPDX-License-Identifier: MIT
#
# /init of the VM test initramfs (busybox sh): mount the pseudo filesystems,
# load the modules listed in /etc/vm-modules, run /test.sh (under a time
# limit), scan dmesg, print the summary, power off.

export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
export LD_LIBRARY_PATH=/usr/local/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=768m tmpfs /tmp
mount -t tmpfs tmpfs /run
set -a
. /etc/vmtest.env
set +a
. /lib/vmtest.sh

echo "VMTEST START $VMTEST_FLAVOR $VMTEST_KERNEL $(uname -r)"

modules_ok=1
while read -r ko; do
	if ! out=$(insmod "/lib/modules/$ko" 2>&1); then
		fail modules "insmod $ko: $out"
		modules_ok=0
	fi
done </etc/vm-modules
[ "$modules_ok" = 1 ] && pass modules

# The host wants at least one PASS: one of /test.sh's own, not just ours.
before=$(grep -c '^PASS ' "$VMTEST_RESULTS")
timeout "${VMTEST_GUEST_TIMEOUT:-900}" sh /test.sh
rc=$?
[ "$rc" = 0 ] || fail guest-script "/test.sh exited with status $rc"
[ "$(grep -c '^PASS ' "$VMTEST_RESULTS")" -gt "$before" ] ||
	fail guest-script "/test.sh reported no passing check"

if dmesg | grep -E 'WARNING:|BUG:|Oops' >/run/dmesg-bad; then
	fail dmesg "kernel reported problems:"
	sed 's/^/    dmesg: /' /run/dmesg-bad
else
	pass dmesg
fi

npass=$(grep -c '^PASS ' "$VMTEST_RESULTS")
nfail=$(grep -c '^FAIL ' "$VMTEST_RESULTS")
echo "VMTEST SUMMARY pass=$npass fail=$nfail"
echo "VMTEST DONE"
sync
poweroff -f
