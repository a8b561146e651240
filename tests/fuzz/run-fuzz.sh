#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Run one libFuzzer harness for a fixed budget over its seed corpus, as
# `meson test --suite fuzz` does.  New inputs go to a scratch corpus in the
# build directory (the seeds in the tree are only read); a crash, a leak, a
# timeout or a failed check makes libFuzzer exit non-zero, and so this.
#
#   run-fuzz.sh FUZZER SEED-DIR WORK-DIR SECONDS [LIBFUZZER-ARGS...]
set -euo pipefail

fuzzer=$1 seeds=$2 work=$3 secs=$4
shift 4

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# -runs bounds a run on a fast machine; -max_total_time bounds the rest.
"$fuzzer" -max_total_time="$secs" -runs=2000000 -timeout=10 \
	-error_exitcode=1 -timeout_exitcode=1 \
	-rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds"
