#!/usr/bin/env bash
#  bench/storage.sh - storaged benchmark of issue 6: PUT / GET of 4 KiB and
#  1 MiB objects and a 256 MiB multipart upload through the bus (fs
#  backend), beside the raw filesystem measured in the same run
#
#  bench/storage.sh [RUNS]       (default 5; BUILD=build-x to choose)
#
#  Runs $BUILD/bench_storage (bench/storage.c; everything in one process,
#  tcp loopback, one object at a time, raw and ours interleaved A B A B,
#  median of RUNS) in a directory under $TMPDIR (default /tmp: the same
#  filesystem for raw and ours) and writes bench/results/storage.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUNS=${1:-5}
results=bench/results
mkdir -p "$results"
out=$results/storage.md
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$BUILD/bench_storage" --runs "$RUNS" --out "$out.table"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
fs=$(df -PT "${TMPDIR:-/tmp}" | awk 'NR == 2 {print $2}')
sha=$(grep -q -w sha_ni /proc/cpuinfo && echo "SHA-NI" || echo "libsodium (no SHA-NI)")
{
    echo "# Storage (storaged, fs backend)"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), ${fs} under ${TMPDIR:-/tmp}; SHA-256 by ${sha}"
    echo "- load average (1/5/15 min) before: $load_before, after: $load_after (shared machine)"
    echo "- method: bench/storage.sh -> bench_storage (bench/storage.c): one process, broker on tcp loopback, storaged with its default 4 workers, one client calling one object at a time; raw = write + fsync + rename (put), open + read (get), in the same directory tree; raw and ours alternate object by object (A B A B), fresh keys each run, $RUNS runs; the 256 MiB upload alternates run by run; rates are the median over runs, ours/raw the median of the per-run ratios (min–max); no CPU pinning"
    echo
    cat "$out.table"
} > "$out.tmp"
rm -f "$out.table"
mv "$out.tmp" "$out"
cat "$out"
