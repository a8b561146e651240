#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Command-line checks for vduse-blk that need no VDUSE: every case fails (or
# prints help) before a device is created.  Usage: test-cli.sh VDUSE-BLK
set -u

BIN=$1
TMP=$(mktemp -d) || exit 1
trap 'rm -rf "$TMP"' EXIT
fails=0

# expect NAME STATUS PATTERN ARGS...: run, check the exit status and that
# stdout+stderr match PATTERN (grep -E).
expect() {
	_name=$1 _want=$2 _pat=$3
	shift 3
	"$BIN" "$@" >"$TMP/out" 2>&1
	_rc=$?
	if [ "$_rc" != "$_want" ] || ! grep -Eq -- "$_pat" "$TMP/out"; then
		echo "FAIL $_name: status $_rc (want $_want), output:"
		sed 's/^/    /' "$TMP/out"
		fails=$((fails + 1))
	else
		echo "ok   $_name"
	fi
}

truncate -s 1M "$TMP/ok.img"
truncate -s 1000 "$TMP/odd.img"
truncate -s 4608 "$TMP/4608.img"
: >"$TMP/empty.img"

expect help 0 'Usage: vduse-blk' --help
for opt in --name --queues --queue-size --read-only --block-size --serial \
	--direct --no-attach --log --no-log --verbose --help SIGINT SIGTERM \
	Example 'vduse-blk0' 'default: 256' 'default: 512' \
	'default: /run/vduse-blk/NAME' 'Crash recovery' 'same command line' \
	'different FILE'; do
	expect "help-mentions-$opt" 0 "$opt" -h
done
expect no-file 2 'missing FILE'
expect two-files 2 'too many arguments' a b
expect unknown-option 2 "unrecognized option|invalid option" --bogus "$TMP/ok.img"
expect bad-number 2 "invalid number of queues: 'x'" -q x "$TMP/ok.img"
expect negative 2 'invalid queue size' -s -8 "$TMP/ok.img"
expect queues-0 2 'number of queues' -q 0 "$TMP/ok.img"
expect queues-257 2 'number of queues' -q 257 "$TMP/ok.img"
expect qsize-pow2 2 'queue size must be a power of 2' -s 100 "$TMP/ok.img"
expect qsize-big 2 'queue size' -s 65536 "$TMP/ok.img"
expect bsize-pow2 2 'block size' -b 1000 "$TMP/ok.img"
expect bsize-big 2 'block size' -b 8192 "$TMP/ok.img"
expect serial-long 2 'serial is longer than 20' --serial 012345678901234567890 "$TMP/ok.img"
expect empty-name 2 'name is empty' -n '' "$TMP/ok.img"
expect log-empty 2 '--log needs a path' --log '' "$TMP/ok.img"
expect log-name-slash 2 "bad device name 'a/b'" -n a/b "$TMP/ok.img"
expect missing 1 'cannot open .*nope.img' "$TMP/nope.img"
expect odd-size 1 'not a multiple of 512' "$TMP/odd.img"
expect bs-size 1 'not a multiple of the block size' -b 4096 "$TMP/4608.img"
expect empty 1 'is empty' "$TMP/empty.img"
expect chardev 1 'not a regular file or block device' /dev/null

# --direct: the block size must be a multiple of the file's O_DIRECT
# alignment, which -v reports before checking.  A 1000-byte file fails the
# size check (status 1) once the alignment check (status 2) passed, so no
# device is ever created.  tmpfs gives no STATX_DIOALIGN, so there the
# alignment is its 4096-byte block size and 512..2048 must be refused.
refused=0
for dir in "$TMP" /dev/shm; do
	[ -d "$dir" ] && [ -w "$dir" ] || continue
	img=$(mktemp "$dir/direct.XXXXXX") || continue
	truncate -s 1000 "$img"
	"$BIN" -v --direct -b 4096 "$img" >"$TMP/out" 2>&1
	align=$(sed -n 's/.*direct I\/O alignment \([0-9]*\) .*/\1/p' "$TMP/out")
	if [ -z "$align" ]; then
		if grep -q 'cannot open' "$TMP/out"; then
			echo "skip direct-$dir: no O_DIRECT here"
		else
			echo "FAIL direct-$dir: no alignment reported:"
			sed 's/^/    /' "$TMP/out"
			fails=$((fails + 1))
		fi
		rm -f "$img"
		continue
	fi
	for bs in 512 1024 2048 4096; do
		if [ "$bs" -lt "$align" ]; then
			expect "direct-$dir-$bs-below-$align" 2 \
				"--direct: the block size is below the backing file's direct I/O alignment \($align, .*use --block-size $align" \
				--direct -b "$bs" "$img"
			refused=$((refused + 1))
		else
			expect "direct-$dir-$bs-at-least-$align" 1 \
				'not a multiple of 512' --direct -b "$bs" "$img"
		fi
	done
	rm -f "$img"
done
[ "$refused" -gt 0 ] || echo "note: no file here needs more than 512-byte alignment; refusals not exercised"

[ "$fails" = 0 ] && echo "all passed" && exit 0
echo "$fails failed"
exit 1
