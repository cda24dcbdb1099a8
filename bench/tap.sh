#!/usr/bin/env bash
#  bench/tap.sh - broker throughput with a stalled tap reader beside no tap
#  (issue 5), and with a stalled SSE client of GET /v1/tap/stream beside
#  none (issue 22); writes bench/results/tap.md. BUILD=build-x bench/tap.sh
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
    echo
    echo "## A stalled SSE client of the console's tap stream (issue 22)"
    echo
    echo "bench_tap --sse: both brokers bind an inproc tap read by a gateway actor of their own, as in \`lakehouse up\`; A's gateway has no stream open (the anchor); B's has one GET /v1/tap/stream client that read the stream's hello and then never reads (4 KiB receive buffer; gateway/idle_timeout_s 3600, else the gateway would close the stalled connection after 30 s without bytes, before the runs end). Same client load, A B B A B A ... (each first in half the pairs), median of 11 runs of 3 s. Once the stream's ring (gateway/tap_buffer 1000) is full, B's hub stops reading the tap and B's tap drops its copies; after the runs the client reads what the stream holds, then five more requests are made, 0.2 s apart (so that the hub finds the gap after the last message it read; the first copy sent after a long stall can still be dropped, and the next gap tells it) and the client reads again: the stream tells it what it missed, the ring's \`dropped\` total and the \`gap\` events' missed (the tap's drops while the hub paused). Target: B within 5 % of A. The machine is shared: the runs in the order measured are listed under the table."
    echo
    "$BUILD/bench_tap" --sse --seconds 3 --runs 11 --depth 16 --body 1024
    echo
    echo "### The same two systems with no stream on B either (A/A: the noise floor of this comparison on this machine)"
    echo
    BENCH_TAP_NO_STALL=1 "$BUILD/bench_tap" --sse --seconds 3 --runs 11 --depth 16 --body 1024 \
        | sed -e 's/one SSE client, stalled/B, no SSE client either/' -e '/the stream, read at last/s/ | the stream, read at last: ring dropped \/ gap missed |$/ | |/'
} > "$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
