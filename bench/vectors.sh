#!/usr/bin/env bash
#  bench/vectors.sh - the vectord benchmark of issue 8
#
#  bench/vectors.sh [COUNT [DIM]]     (default 100000 x 768; BUILD=build-x)
#
#  Builds bench/vectors.cpp (C++: it uses hnswlib directly as the anchor)
#  against $BUILD/liblakehouse.a with the same compiler flags as the
#  library, runs it once (ours and direct hnswlib interleaved, exact
#  search as ground truth; see the comment at the top of vectors.cpp) and
#  writes bench/results/vectors.md. No CPU pinning.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
COUNT=${1:-100000}
DIM=${2:-768}
RUNS=${RUNS:-3}
results=bench/results
mkdir -p "$results"
work=$(mktemp -d "${TMPDIR:-/tmp}/lh-bench-vectors.XXXXXX")
trap 'rm -rf "$work"' EXIT

[ -f "$BUILD/liblakehouse.a" ] || { echo "bench/vectors.sh: build $BUILD first (make BUILD=$BUILD)" >&2; exit 1; }
PKGS="libczmq libzmq msgpack sqlite3 libcurl libsodium lmdb libmicrohttpd jansson"
incs="-Iproto -Icommon -Ibroker -Igateway $(for d in actors/*/; do printf -- '-I%s ' "${d%/}"; done)"
#  hnswlib 0.6.2's headers define a few non-inline functions (cpuid, the
#  SIMD distance pointers); the bench and the library's shim both include
#  them, identically: the linker is told to keep one.
# shellcheck disable=SC2086
${CXX:-c++} ${CXXFLAGS:--O2 -g} -std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter $incs \
    $(pkg-config --cflags $PKGS) bench/vectors.cpp "$BUILD/liblakehouse.a" \
    $(pkg-config --libs $PKGS) -lpthread -lm -Wl,--allow-multiple-definition -o "$work/vectors"

out=$results/vectors.md
{
    echo "# vectord: index build, search and restart"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
    echo "- method: bench/vectors.sh $COUNT $DIM: $COUNT x $DIM clustered vectors (seeded), cosine, M 16,"
    echo "  ef_construction 200; builds single-threaded; 200 queries, single-threaded, ours and direct"
    echo "  interleaved, median of $RUNS runs; both compiled with the same flags (${CXXFLAGS:--O2 -g}, SSE);"
    echo "  ours = vectord's index (lh_vindex: LMDB log fsynced per 500-vector batch + the hnswlib shim;"
    echo "  searches read ids and metadata back from LMDB and pack msgpack); no bus, no CPU pinning."
    echo
    "$work/vectors" --count "$COUNT" --dim "$DIM" --runs "$RUNS" --dir "$work"
} > "$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
