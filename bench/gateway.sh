#!/usr/bin/env bash
#  bench/gateway.sh - the HTTP gateway against nginx, same machine, same run
#
#  bench/gateway.sh [OUT]        (OUT default bench/results/gateway.md)
#
#  wrk -c1 and -c50 for GET /health (gateway only: answered from its health
#  snapshot) and POST /v1/bus/echo/echo (a 200-byte JSON body through the
#  broker to echo and back), each beside nginx returning a fixed 200 from
#  memory. Runs alternate nginx / gateway for each shape. The gateway runs
#  as tests/bin/lh_gateway_harness (broker + echo + gateway in one process,
#  default config, one log line per request to a file, as in production).
#
#  Environment: BUILD (default build), BENCH_SECONDS (per wrk run, 5),
#  BENCH_RUNS (runs per shape and system, median reported, 5).
#  Needs nginx and wrk; installs nginx-light and wrk from Debian if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SECONDS_PER=${BENCH_SECONDS:-5}
RUNS=${BENCH_RUNS:-5}
OUT=${1:-bench/results/gateway.md}
HARNESS=$BUILD/lh_gateway_harness

have_nginx () { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }
if ! command -v wrk >/dev/null || ! have_nginx; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y nginx-light wrk >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$HARNESS" ] || { echo "bench/gateway.sh: $HARNESS not built (make BUILD=$BUILD)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/lh-bench-gateway.XXXXXX)
HARNESS_PID=
cleanup () {
    [ -n "$HARNESS_PID" ] && kill "$HARNESS_PID" 2>/dev/null || true
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port () {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

#  nginx: a fixed 200 from memory, two workers (one per core), no logs
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes $(nproc);
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
    }
}
EOF
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon on;'

#  the gateway
mkfifo "$WORK/stdin"
sleep 100000 > "$WORK/stdin" &
HOLDER=$!
"$HARNESS" --set gateway/listen=127.0.0.1:0 < "$WORK/stdin" > "$WORK/harness.out" 2> "$WORK/harness.log" &
HARNESS_PID=$!
for _ in $(seq 100); do
    grep -q '^ready ' "$WORK/harness.out" 2>/dev/null && break
    sleep 0.1
done
kill $HOLDER 2>/dev/null || true
GATEWAY=$(awk '/^ready / { print $2 }' "$WORK/harness.out")
[ -n "$GATEWAY" ] || { echo "bench/gateway.sh: the gateway did not start" >&2; cat "$WORK/harness.log" >&2; exit 1; }

#  The 200-byte JSON body
cat > "$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"name":"worker-000123","role":"forklift operator","site":"warehouse-7","shift":"night","skills":["forklift","inventory","safety"],"rating":4.5,"active":true,"id":123456,"notes":"benchmark payload 200b"}'
wrk.headers["Content-Type"] = "application/json"
EOF

#  One wrk run: prints "req/s p50_us p99_us non2xx"
s_wrk () {
    local conns=$1 url=$2 script=${3:-}
    local threads=1; [ "$conns" -gt 1 ] && threads=2
    wrk -t$threads -c"$conns" -d"${SECONDS_PER}s" --latency ${script:+-s "$script"} "$url" \
    | awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return (v + 0) * 1000
            if (v ~ /s$/)  return (v + 0) * 1000000
            return v + 0
        }
        /Requests\/sec:/                 { rps = $2 }
        /^ +50%/                         { p50 = us($2) }
        /^ +99%/                         { p99 = us($2) }
        /Non-2xx or 3xx responses:/      { bad = $5 }
        END { printf "%d %d %d %d\n", rps, p50, p99, bad + 0 }'
}

#  Median of RUNS runs (by req/s): prints the median run's line
s_median () {
    sort -n | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RESULT
shapes=("health c1" "health c50" "echo c1" "echo c50")
for shape in "${shapes[@]}"; do
    read -r what conns <<< "$shape"
    conns=${conns#c}
    nginx_runs=$WORK/nginx.runs; gateway_runs=$WORK/gateway.runs
    : > "$nginx_runs"; : > "$gateway_runs"
    for _ in $(seq "$RUNS"); do
        s_wrk "$conns" "http://127.0.0.1:$NGINX_PORT/" >> "$nginx_runs"
        if [ "$what" = health ]; then
            s_wrk "$conns" "$GATEWAY/health" >> "$gateway_runs"
        else
            s_wrk "$conns" "$GATEWAY/v1/bus/echo/echo" "$WORK/post.lua" >> "$gateway_runs"
        fi
    done
    RESULT["$shape nginx"]=$(s_median < "$nginx_runs")
    RESULT["$shape gateway"]=$(s_median < "$gateway_runs")
done

mkdir -p "$(dirname "$OUT")"
{
    echo "# HTTP gateway vs nginx"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after"
    echo "- method: wrk ${SECONDS_PER} s per run (-t1 at -c1, -t2 at -c50), median of $RUNS runs by req/s, nginx and gateway alternated;"
    echo "  nginx: fixed 200 from memory, $(nproc) workers, no access log; gateway: lh_gateway_harness"
    echo "  (broker + 2 echo workers at credit 8 + gateway, 4 HTTP threads, in one process, request log on);"
    echo "  echo: POST /v1/bus/echo/echo with a 200-byte JSON body through the broker and back."
    echo "- targets: /health >= 0.8x nginx; echo >= 0.35x nginx with p99 <= 5 ms at -c50"
    echo
    echo "| shape | system | req/s | p50 µs | p99 µs | non-2xx | gateway/nginx |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for shape in "${shapes[@]}"; do
        read -r n_rps n_p50 n_p99 n_bad <<< "${RESULT["$shape nginx"]}"
        read -r g_rps g_p50 g_p99 g_bad <<< "${RESULT["$shape gateway"]}"
        ratio=$(awk -v g="$g_rps" -v n="$n_rps" 'BEGIN { if (n > 0) printf "%.2fx", g / n; else print "-" }')
        echo "| $shape | nginx (anchor) | $n_rps | $n_p50 | $n_p99 | $n_bad | |"
        echo "| $shape | gateway | $g_rps | $g_p50 | $g_p99 | $g_bad | $ratio |"
    done
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
