#!/usr/bin/env bash
#  bench/tap.sh - broker throughput with a stalled tap reader beside no tap
#  (issue 5); writes bench/results/tap.md. BUILD=build-x bench/tap.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
out=bench/results/tap.md
{
    echo "# Broker throughput with a stalled tap"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
    echo "- method: bench/tap.c: two brokers in one process (tcp loopback, 2 echo workers each, plain); one client, 16 requests in flight, 1 KiB bodies, 3 s per run; no tap and stalled tap interleaved A B A B, median of 5 runs; the stalled reader is a SUB that subscribed and never reads (tap_hwm 1000); no CPU pinning"
    echo
    "$BUILD/bench_tap" --seconds 3 --runs 5 --depth 16 --body 1024
} > "$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
