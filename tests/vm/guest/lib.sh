# SPDX-License-Identifier: MIT
#
# Guest-side helpers, sourced by /init and by the test scripts (busybox sh).
# Every result is one console line the host parses:
#   VMTEST PASS name
#   VMTEST FAIL name reason
# and is also recorded in $VMTEST_RESULTS for the final summary.

VMTEST_RESULTS=/run/vmtest.results

pass() {
	echo "VMTEST PASS $1"
	echo "PASS $1" >>"$VMTEST_RESULTS"
}

fail() {
	_name=$1
	shift
	echo "VMTEST FAIL $_name ${*:-failed}"
	echo "FAIL $_name" >>"$VMTEST_RESULTS"
}

info() {
	echo "VMTEST INFO $*"
}

# check NAME COMMAND...: PASS if the command succeeds, else FAIL.
check() {
	_name=$1
	shift
	if "$@"; then
		pass "$_name"
	else
		fail "$_name" "command failed (exit $?): $*"
	fi
}

# wait_for SECONDS COMMAND...: poll (every 0.2 s) until the command succeeds.
wait_for() {
	_tries=$(($1 * 5))
	shift
	while [ "$_tries" -gt 0 ]; do
		"$@" && return 0
		_tries=$((_tries - 1))
		sleep 0.2
	done
	return 1
}

# Print a file to the console, each line prefixed, to explain a failure.
show_log() {
	[ -f "$1" ] && sed "s|^|    $1: |" "$1"
	return 0
}
