#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Turn the guest's "BENCH <contender> <queues> <workload> <rep> <iops> <bw>"
# console lines into a table: the median of the repetitions, the spread, and
# each figure's ratio to the loop device. Each vduse contender is shown at
# its best queue count (highest geometric mean of its IOPS ratios to loop),
# then every queue count measured.
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
function row(c, q, w,   k, ratio) {
	k = c SUBSEP q SUBSEP w
	ratio = (("loop" SUBSEP 1 SUBSEP w) in iops && iops["loop", 1, w] > 0) ? sprintf("%.2fx", iops[k] / iops["loop", 1, w]) : "-"
	printf "%-10s %6s  %-9s %10.0f %9.1f  %-17s %7s\n", c, q, w, iops[k], bw[k] / 1024,
		sprintf("%.0f-%.0f", lo[k SUBSEP "i"], hi[k SUBSEP "i"]), ratio
}
{
	k = $2 SUBSEP $3 SUBSEP $4
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	if (!(($2 SUBSEP $3) in cq)) { cq[$2, $3] = 1; qs[$2] = qs[$2] " " $3 }
	if (!($2 in cs)) { cs[$2] = 1; cl[++nc] = $2 }
	if (!($4 in ws)) { ws[$4] = 1; wl[++nw] = $4 }
	cnt[k SUBSEP "i"]++; val[k SUBSEP "i", cnt[k SUBSEP "i"]] = $6
	cnt[k SUBSEP "b"]++; val[k SUBSEP "b", cnt[k SUBSEP "b"]] = $7
}
END {
	if (nk == 0) { print "no BENCH lines in the log" > "/dev/stderr"; exit 1 }
	for (i = 1; i <= nk; i++) {
		iops[order[i]] = median(order[i] SUBSEP "i")
		bw[order[i]] = median(order[i] SUBSEP "b")
	}
	# best queue count per contender
	for (c = 1; c <= nc; c++) {
		name = cl[c]; n = split(substr(qs[name], 2), qlist, " ")
		best[name] = qlist[1]; bestscore = -1
		for (i = 1; i <= n; i++) {
			s = 0; m = 0
			for (w = 1; w <= nw; w++) {
				k = name SUBSEP qlist[i] SUBSEP wl[w]
				if ((k in iops) && (("loop" SUBSEP 1 SUBSEP wl[w]) in iops) && iops[k] > 0 && iops["loop", 1, wl[w]] > 0) {
					s += log(iops[k] / iops["loop", 1, wl[w]]); m++
				}
			}
			score = m ? exp(s / m) : 0
			if (score > bestscore) { bestscore = score; best[name] = qlist[i] }
		}
	}
	hdr = sprintf("%-10s %6s  %-9s %10s %9s  %-17s %7s", "device", "queues", "workload", "IOPS", "MiB/s", "IOPS min-max", "vs loop")
	print "Each contender at its best queue count (median of the repetitions):"
	print hdr
	for (c = 1; c <= nc; c++)
		for (w = 1; w <= nw; w++)
			if ((cl[c] SUBSEP best[cl[c]] SUBSEP wl[w]) in iops) row(cl[c], best[cl[c]], wl[w])
	print ""
	print "Every queue count measured:"
	print hdr
	for (i = 1; i <= nk; i++) { split(order[i], p, SUBSEP); row(p[1], p[2], p[3]) }
}'
