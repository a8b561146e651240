#!/bin/sh
# SPDX-License-Identifier: MIT
# Run the host-side data-path benchmark (bench/hostbench.c): first natively
# (ns per request), then each case under callgrind, counting only the
# device side of each round (dp_round: pop, push and notify, no setup, no
# warm-up, no driver), and print instructions per request.
#
# usage: bench/hostbench.sh EXE [REQUESTS]
#   EXE       the built vduse-hostbench (e.g. build/bench/vduse-hostbench)
#   REQUESTS  requests per case under callgrind (default 20000)
# `meson compile -C BUILD hostbench` runs it on the build's program.
set -eu

exe=$1
n=${2:-20000}
apis=${HOSTBENCH_APIS:-"single batch"}

command -v valgrind >/dev/null || { echo "hostbench: valgrind is needed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for a in $apis; do
	"$exe" -a "$a"
	"$exe" -a "$a" -L -r 3 | tail -n +3
	"$exe" -a "$a" -p | tail -n +3
done

echo
echo "# callgrind: instructions per request in pop+push+notify ($n requests per case)"
printf '%-7s %-6s %-9s %5s %4s %12s\n' api ring layout batch log instr/req
for a in $apis; do
	for case in "split no" "split yes" "packed no"; do
		set -- $case
		ring=$1 log=$2
		for l in direct indirect; do
			for b in 1 32; do
				opt=
				[ "$log" = yes ] && opt=-L
				[ "$ring" = packed ] && opt=-p
				valgrind --tool=callgrind --toggle-collect=dp_round \
					--callgrind-out-file="$tmp/cg.out" \
					"$exe" -a "$a" -l "$l" -b "$b" -n "$n" -r 1 $opt \
					>"$tmp/out" 2>"$tmp/err" ||
					{ cat "$tmp/err" >&2; exit 1; }
				total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp/cg.out")
				[ -n "$total" ] || { echo "hostbench: no totals in the callgrind output" >&2; exit 1; }
				awk -v a="$a" -v r="$ring" -v l="$l" -v b="$b" -v g="$log" -v t="$total" -v n="$n" \
					'BEGIN { printf "%-7s %-6s %-9s %5d %4s %12.1f\n", a, r, l, b, g, t / n }'
			done
		done
	done
done
