#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Turn the guest's
#   BENCH <contender> <queues> <workload> <rep> <iops> <bw> [<p50> <p99>]
# console lines into tables: the median of the repetitions, the spread, and
# the ratio to the loop device (the median over the repetitions of the
# ratio to loop's run in the same repetition, and its range). Each vduse
# contender is shown at its best queue count (highest geometric mean of its
# ratios to loop over the throughput workloads), then every queue count
# measured, then the completion latency at iodepth 1 (workload qd1read),
# median p50 and p99 in microseconds.
#
#   bench/report.sh CONSOLE-LOG
set -euo pipefail

log=$1
grep '^BENCH ' "$log" | awk '
function median(key,   n, i, j, t, v) {
	n = cnt[key]
	for (i = 1; i <= n; i++) v[i] = val[key, i]
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
	lo[key] = v[1]; hi[key] = v[n]
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
# The ratio to loop: the median over the repetitions of the IOPS over
# those of the loop run in the same repetition (a change in the load of
# the host between repetitions cancels out), with its min-max.
function ratio(k, w) {
	return (k SUBSEP "r") in cnt ? sprintf("%.2fx", rmed[k]) : "-"
}
function ratio_range(k) {
	return (k SUBSEP "r") in cnt ? sprintf("%.2f-%.2f", lo[k SUBSEP "r"], hi[k SUBSEP "r"]) : ""
}
function row(c, q, w,   k) {
	k = c SUBSEP q SUBSEP w
	printf "%-20s %6s  %-9s %10.0f %9.1f  %-13s %7s %-11s\n", c, q, w, iops[k], bw[k] / 1024,
		sprintf("%.0f-%.0f", lo[k SUBSEP "i"], hi[k SUBSEP "i"]), ratio(k, w), ratio_range(k)
}
function latrow(c, q, w,   k) {
	k = c SUBSEP q SUBSEP w
	printf "%-20s %6s  %10.0f %7s  %8.0f %-13s %8.0f %-13s\n", c, q, iops[k], ratio(k, w),
		p50[k], sprintf("(%.0f-%.0f)", lo[k SUBSEP "p50"], hi[k SUBSEP "p50"]),
		p99[k], sprintf("(%.0f-%.0f)", lo[k SUBSEP "p99"], hi[k SUBSEP "p99"])
}
{
	k = $2 SUBSEP $3 SUBSEP $4
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	if (!(($2 SUBSEP $3) in cq)) { cq[$2, $3] = 1; qs[$2] = qs[$2] " " $3 }
	if (!($2 in cs)) { cs[$2] = 1; cl[++nc] = $2 }
	if (!($4 in ws)) { ws[$4] = 1; wl[++nw] = $4 }
	cnt[k SUBSEP "i"]++; val[k SUBSEP "i", cnt[k SUBSEP "i"]] = $6
	rep[k, $5] = $6; reps[k] = reps[k] " " $5
	cnt[k SUBSEP "b"]++; val[k SUBSEP "b", cnt[k SUBSEP "b"]] = $7
	if (NF >= 9 && $8 != "-") {
		cnt[k SUBSEP "p50"]++; val[k SUBSEP "p50", cnt[k SUBSEP "p50"]] = $8
		cnt[k SUBSEP "p99"]++; val[k SUBSEP "p99", cnt[k SUBSEP "p99"]] = $9
	}
}
END {
	if (nk == 0) { print "no BENCH lines in the log" > "/dev/stderr"; exit 1 }
	for (i = 1; i <= nk; i++) {
		iops[order[i]] = median(order[i] SUBSEP "i")
		bw[order[i]] = median(order[i] SUBSEP "b")
		split(order[i], p, SUBSEP)
		n = split(substr(reps[order[i]], 2), rl, " ")
		for (j = 1; j <= n; j++) {
			l = "loop" SUBSEP 1 SUBSEP p[3] SUBSEP rl[j]
			if (!(l in rep) || rep[l] <= 0) continue
			kr = order[i] SUBSEP "r"
			cnt[kr]++; val[kr, cnt[kr]] = rep[order[i], rl[j]] / rep[l]
		}
		if ((order[i] SUBSEP "r") in cnt) rmed[order[i]] = median(order[i] SUBSEP "r")
		if (cnt[order[i] SUBSEP "p50"]) {
			p50[order[i]] = median(order[i] SUBSEP "p50")
			p99[order[i]] = median(order[i] SUBSEP "p99")
		}
	}
	# best queue count per contender, on the throughput workloads
	for (c = 1; c <= nc; c++) {
		name = cl[c]; n = split(substr(qs[name], 2), qlist, " ")
		best[name] = qlist[1]; bestscore = -1
		for (i = 1; i <= n; i++) {
			s = 0; m = 0
			for (w = 1; w <= nw; w++) {
				if (wl[w] == "qd1read") continue
				k = name SUBSEP qlist[i] SUBSEP wl[w]
				if ((k in rmed) && rmed[k] > 0) {
					s += log(rmed[k]); m++
				}
			}
			score = m ? exp(s / m) : 0
			if (score > bestscore) { bestscore = score; best[name] = qlist[i] }
		}
	}
	hdr = sprintf("%-20s %6s  %-9s %10s %9s  %-13s %7s %-11s", "device", "queues", "workload", "IOPS", "MiB/s", "IOPS min-max", "vs loop", "(min-max)")
	print "Each contender at its best queue count (median of the repetitions):"
	print hdr
	for (c = 1; c <= nc; c++)
		for (w = 1; w <= nw; w++)
			if (wl[w] != "qd1read" && (cl[c] SUBSEP best[cl[c]] SUBSEP wl[w]) in iops) row(cl[c], best[cl[c]], wl[w])
	print ""
	print "Every queue count measured:"
	print hdr
	for (c = 1; c <= nc; c++) {
		n = split(substr(qs[cl[c]], 2), qlist, " ")
		for (i = 1; i <= n; i++)
			for (w = 1; w <= nw; w++)
				if (wl[w] != "qd1read" && (cl[c] SUBSEP qlist[i] SUBSEP wl[w]) in iops) row(cl[c], qlist[i], wl[w])
	}
	if (!("qd1read" in ws)) exit 0
	print ""
	print "4 KiB random read at iodepth 1: completion latency in us, median (min-max):"
	printf "%-20s %6s  %10s %7s  %8s %-13s %8s %-13s\n", "device", "queues", "IOPS", "vs loop", "p50", "", "p99", ""
	for (c = 1; c <= nc; c++) {
		n = split(substr(qs[cl[c]], 2), qlist, " ")
		for (i = 1; i <= n; i++)
			if (cnt[cl[c] SUBSEP qlist[i] SUBSEP "qd1read" SUBSEP "p50"]) latrow(cl[c], qlist[i], "qd1read")
	}
}'
