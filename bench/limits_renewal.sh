#!/bin/sh
# truv-renew under Truv's limits, before (main) and after (this tree), one
# run each: a time-compressed sandbox (--realtime --time-scale) whose tasks
# take durations from its model (log-normal median and spread, a share of
# slow providers) and whose rate limit is Truv's, scaled by the same factor;
# truv-renew polls with the same rate. Prints requests per case, the share
# of the rate budget used (requests sent / (rate x elapsed)) and 429s.
# Separate from the bare C client's "Under Truv's limits" benchmark.
#   bench/limits_renewal.sh [BUILD_DIR] [BEFORE_REF]   (default: main)
# LIMITS_CASES (600), LIMITS_SCALE (10), LIMITS_MEDIAN (30 virtual s),
# LIMITS_SPREAD (0.5), LIMITS_SLOW_SHARE (0.05), LIMITS_SLOW_FACTOR (5),
# LIMITS_RATE (300 a minute, Truv's)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
ref=${2:-main}
out="$top/build/bench-limits-renewal"
N=${LIMITS_CASES:-600}; SCALE=${LIMITS_SCALE:-10}; MEDIAN=${LIMITS_MEDIAN:-30}
SPREAD=${LIMITS_SPREAD:-0.5}; SLOW=${LIMITS_SLOW_SHARE:-0.05}; FACTOR=${LIMITS_SLOW_FACTOR:-5}
RATE=${LIMITS_RATE:-300}
wall_rate=$(awk "BEGIN { printf \"%d\", $RATE * $SCALE }")
poll=$(awk "BEGIN { print 2 / $SCALE }")     # Truv's quickstart's 2 s, compressed
rm -rf "$out"; mkdir -p "$out/before"
git -C "$top" archive "$ref" lua bin | tar -x -C "$out/before"
export LUA_CPATH="$build/lua/5.4/?.so;;"
export TRUV_CLIENT_ID=sandbox-client-id TRUV_SECRET=sandbox-secret
pid=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop EXIT INT TERM

start_sandbox() {
  rm -f "$out/port"
  "$build/sandbox/truv-sandbox" --port 0 --port-file "$out/port" --threads 2 \
    --realtime --time-scale "$SCALE" --rate-limit "$wall_rate" --seed-cases "$N" --mix active=1 \
    --rng-seed 7 --task-duration "$MEDIAN" --task-duration-spread "$SPREAD" \
    --slow-share "$SLOW" --slow-factor "$FACTOR" --cases-out "$out/cases.csv" \
    > "$out/sandbox.log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$out/port" ]; do
    i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log"; exit 1; }; sleep 0.01
  done
  port=$(cat "$out/port")
}

# run NAME TREE: one truv-renew run against a fresh sandbox
run() {
  start_sandbox
  t0=$(date +%s.%N)
  LUA_PATH="$2/lua/?.lua;$2/lua/?/init.lua;;" lua5.4 "$2/bin/truv-renew" --quiet \
    --journal "$out/$1.journal" --quota "$out/$1.quota" --base-url "http://127.0.0.1:$port/v1/" \
    --rate "$wall_rate" --poll-interval "$poll" "$out/cases.csv" > "$out/$1.out" 2>&1 || true
  t1=$(date +%s.%N)
  stats=$(curl -s "http://127.0.0.1:$port/_sandbox/stats")
  stop
  echo "$stats" > "$out/$1.stats.json"
  lua5.4 - "$1" "$out/$1.stats.json" "$t0" "$t1" "$N" "$wall_rate" "$SCALE" <<'LUA'
local name, path, t0, t1, n, rate, scale = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]),
                                           tonumber(arg[5]), tonumber(arg[6]), tonumber(arg[7])
local text = io.open(path):read("a")
local total = tonumber(text:match('"requests":{"total":(%d+)'))
local throttled = 0
for c in text:gmatch('"429":(%d+)') do throttled = throttled + tonumber(c) end
local refreshes = tonumber(text:match('"order_refreshes":(%d+)'))
local elapsed = t1 - t0
print(string.format("%-6s %d cases, %d refreshes: %d requests in %.1f s (%.0f virtual s) = "
  .. "%.2f requests per case; budget used %.0f %%; 429s %d", name, n, refreshes, total, elapsed,
  elapsed * scale, total / n, 100 * total / (rate / 60 * elapsed), throttled))
LUA
}

echo "== truv-renew under Truv's limits: $N cases, $RATE/min, tasks median ${MEDIAN}s spread $SPREAD," \
     "slow share $SLOW x$FACTOR, time x$SCALE"
run before "$out/before"
run after "$top"
