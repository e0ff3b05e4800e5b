#!/bin/sh
# Renewal benchmarks, each side by side with its anchor in one run:
#  1. throughput of a renewal against the sandbox (no latency) vs the
#     sandbox's own capacity measured by wrk at the same concurrency;
#  2. client CPU per refresh vs the same workflow in Python with aiohttp
#     (Debian's python3-aiohttp) against the same sandbox;
#  3. with 200 ms of sandbox latency and 500 requests in flight: throughput
#     vs the ideal 500 / 0.2 s, and memory per refresh in flight;
#  4. resident memory over a 100 000-case run (journal included).
#   bench/renewal.sh [BUILD_DIR]     (RENEWAL_QUICK=1 for a short run)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
out="$top/build/bench-renewal"
sb_bin="$build/sandbox/truv-sandbox"
quick=${RENEWAL_QUICK:-0}
N=${RENEWAL_CASES:-3000}; C=${RENEWAL_CONCURRENCY:-32}; BIG=${RENEWAL_BIG:-100000}
[ "$quick" = 1 ] && { N=1000; BIG=10000; }
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;"
export LUA_CPATH="$build/lua/5.4/?.so;;"
export TRUV_CLIENT_ID=sandbox-client-id TRUV_SECRET=sandbox-secret
mkdir -p "$out"
pid=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop EXIT INT TERM

# start_sandbox ARGS...: sets pid, port, base
start_sandbox() {
  rm -f "$out/port"
  "$sb_bin" --port 0 --port-file "$out/port" --rate-limit 0 --realtime --time-scale 10000 \
    --threads 2 "$@" > "$out/sandbox.log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$out/port" ]; do
    i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log"; exit 1; }; sleep 0.01
  done
  port=$(cat "$out/port"); base="http://127.0.0.1:$port/v1/"
}
stat_total() { curl -s "http://127.0.0.1:$port/_sandbox/stats" | sed 's/.*"requests":{"total":\([0-9]*\).*/\1/'; }
json() { echo "$1" | sed "s/.*\"$2\": *\([0-9.]*\).*/\1/"; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }

echo "== 1. throughput vs the sandbox's capacity (wrk), concurrency $C, $N cases"
start_sandbox --seed-cases "$N" --mix active=1 --rng-seed 11 --cases-out "$out/cases.csv"
order=$(sed -n 2p "$out/cases.csv" | cut -d, -f2)
wrk_rps=$(wrk -t2 -c"$C" -d5s -H "X-Access-Client-Id: $TRUV_CLIENT_ID" -H "X-Access-Secret: $TRUV_SECRET" \
          "${base}orders/$order/" | awk '/Requests\/sec/ { print $2 }')
before=$(stat_total)
ours=$(lua5.4 "$top/bench/renewal_run.lua" "$base" "$out/cases.csv" "$out/j1" "$C" 0.01)
requests=$(( $(stat_total) - before ))
stop
ours_rps=$(awk "BEGIN { printf \"%.0f\", $requests / $(json "$ours" wall_s) }")
echo "wrk GET order: $wrk_rps req/s; renewal: $requests requests in $(json "$ours" wall_s) s = $ours_rps req/s"
echo "ratio renewal/wrk: $(ratio "$ours_rps" "$wrk_rps")x (target >= 0.7x)"
lua_cpu=$(json "$ours" cpu_s)

echo "== 2. client CPU per refresh vs Python aiohttp, concurrency $C, $N cases"
start_sandbox --seed-cases "$N" --mix active=1 --rng-seed 11 --cases-out "$out/cases.csv"
py=$(/usr/bin/python3 "$top/bench/renewal_aiohttp.py" "$base" "$out/cases.csv" "$C" "$out/py.journal")
stop
py_cpu=$(json "$py" cpu_s)
echo "lua-truv: $(awk "BEGIN { printf \"%.0f\", $lua_cpu / $N * 1e6 }") us/refresh; aiohttp: $(awk "BEGIN { printf \"%.0f\", $py_cpu / $N * 1e6 }") us/refresh ($(json "$py" requests) requests, $(json "$py" wall_s) s)"
echo "ratio lua-truv/aiohttp: $(ratio "$lua_cpu" "$py_cpu")x (target <= 0.1x)"

echo "== 3. 200 ms latency, 500 in flight"
start_sandbox --seed-cases 5000 --mix active=1 --rng-seed 12 --cases-out "$out/cases500.csv" --latency-ms 200
before=$(stat_total)
lat=$(lua5.4 "$top/bench/renewal_run.lua" "$base" "$out/cases500.csv" "$out/j3" 500 0.01)
requests=$(( $(stat_total) - before ))
stop
lat_rps=$(awk "BEGIN { printf \"%.0f\", $requests / $(json "$lat" wall_s) }")
echo "$requests requests in $(json "$lat" wall_s) s = $lat_rps req/s; ideal 2500 req/s; ratio $(ratio "$lat_rps" 2500)x (target >= 0.9x)"
echo "peak RSS $(json "$lat" rss_kb_max) KB"

echo "== 4. RSS over $BIG cases (journal included), concurrency 64"
start_sandbox --seed-cases "$BIG" --mix active=1 --rng-seed 13 --cases-out "$out/big.csv"
big=$(lua5.4 "$top/bench/renewal_run.lua" "$base" "$out/big.csv" "$out/j4" 64 0.01 $((BIG / 10)))
stop
echo "RSS (KB) every $((BIG / 10)) cases: $(echo "$big" | sed 's/.*"rss_series":\[\([^]]*\)\].*/\1/')"
echo "$BIG cases in $(json "$big" wall_s) s, $(json "$big" cpu_s) s CPU"
